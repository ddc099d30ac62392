//! What the tests of the real binaries (registry-local, registry-admin, upload-service)
//! share: starting one (a free port, its log in a file, wait until it listens), the AWS
//! resources of a test against moto's server, a process's memory from
//! `/proc/<pid>/status`, raw HTTP/1.1 over a socket (for requests no client library sends:
//! headers without their body, a trickle), and blob bytes made as they are sent.
//!
//! May call: the binaries (as processes), std, ureq, sha2. Each test file uses part of it.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port: bind to 0, note it, let it go.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// registry-local listening on `port`, over `data_dir`: the rest of its arguments and
/// environment are the caller's to add.
pub fn registry_local_on(port: u16, data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_registry-local"));
    command
        .args(["--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir);
    command
}

/// One of the package's servers, running on a port, its log in a file. Dropping it kills
/// it (SIGKILL: no chance to finish anything).
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// The binary over `data_dir` with `args`, logging to `data_dir/../<port>.log`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        Server::start_on(data_dir, free_port(), args)
    }

    /// The same on a given port (a restart where clients already point).
    pub fn start_on(data_dir: &Path, port: u16, args: &[&str]) -> Server {
        let log = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join(format!("registry-local-{port}-{}.log", std::process::id()));
        let mut command = registry_local_on(port, data_dir);
        command
            .args(args)
            .env_remove("QUAYSIDE_BACKEND")
            .env("RUST_LOG", "info");
        Server::spawn(command, port, log, false, Duration::from_secs(60))
    }

    /// Starts `command`, which is to listen on `port`, and waits until it does (for up to
    /// `wait`; then the test fails with its log). Its standard output goes to the file
    /// `log`; its standard error too if `stderr_too` (a panic, after the log lines), else
    /// nowhere.
    pub fn spawn(
        mut command: Command,
        port: u16,
        log: PathBuf,
        stderr_too: bool,
        wait: Duration,
    ) -> Server {
        let program = Path::new(command.get_program())
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        command.stdout(std::fs::File::create(&log).unwrap());
        if stderr_too {
            command.stderr(std::fs::OpenOptions::new().append(true).open(&log).unwrap());
        } else {
            command.stderr(Stdio::null());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{program} starts: {e}"));
        let server = Server {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + wait;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not listen: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/<pid>/status` field in KiB: `VmHWM` (peak resident memory), `VmRSS`.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} not in /proc/{}/status", self.pid()))
    }

    /// `kill -9`: no chance to tidy up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // A guard against a hang, not a measure: every read in these tests expects an
        // answer long before.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Names of AWS resources of one test only (`<prefix>-<pid>-<nanos>`), as registry-local
/// reads them from its environment: table, bucket, KMS key alias and topic.
pub fn aws_names(prefix: &str) -> Vec<(&'static str, String)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("{prefix}-{}-{nanos}", std::process::id());
    vec![
        ("QUAYSIDE_TABLE", name.clone()),
        ("QUAYSIDE_BUCKET", name.clone()),
        ("QUAYSIDE_KMS_KEY", format!("alias/{name}")),
        ("QUAYSIDE_TOPIC", name),
    ]
}

/// The binary at `path` with the resource names `env`, against moto's server: a test of the
/// AWS backend fails (never skips) without `AWS_ENDPOINT_URL`.
pub fn aws_command(path: &str, env: &[(&'static str, String)]) -> Command {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL is not set: this test needs moto's server; run tests/run"
    );
    let mut command = Command::new(path);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

/// `registry-local provision` of the resources `env` names, which must succeed.
pub fn provision(env: &[(&'static str, String)]) {
    let provisioned = aws_command(env!("CARGO_BIN_EXE_registry-local"), env)
        .arg("provision")
        .output()
        .expect("registry-local provision runs");
    assert!(
        provisioned.status.success(),
        "provision failed: {}",
        String::from_utf8_lossy(&provisioned.stderr)
    );
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// An HTTP/1.1 answer as read off a socket.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one answer (head, and a body of its `Content-Length`) from `stream`.
pub fn read_answer(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("the head broke off"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Whether the server closed the connection: a read gets the end, or a reset.
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// Starts an upload; its `Location` path.
pub fn start_upload(server: &Server, repo: &str) -> String {
    let start = agent()
        .post(&format!("{}/v2/{repo}/blobs/uploads/", server.base))
        .send_empty()
        .unwrap();
    assert_eq!(start.status(), 202);
    start.headers()["location"].to_str().unwrap().to_string()
}

/// `len` bytes that do not compress (xorshift64*), made as they are read and hashed on the
/// way, so that a test sends gigabytes without holding them.
pub struct Generated {
    state: u64,
    left: u64,
    pub hasher: Sha256,
}

impl Generated {
    pub fn new(seed: u64, len: u64) -> Generated {
        Generated {
            // Odd and distinct for every seed (xorshift needs a state that is not zero).
            state: (seed << 1) | 1,
            left: len,
            hasher: Sha256::new(),
        }
    }

    /// `sha256:<hex>` of what was read.
    pub fn digest(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }

    /// The whole stream's digest, generated and dropped.
    pub fn digest_of(seed: u64, len: u64) -> String {
        let mut generated = Generated::new(seed, len);
        std::io::copy(&mut generated, &mut std::io::sink()).unwrap();
        generated.digest()
    }
}

impl Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX))
            & !7;
        let n = if n == 0 {
            buf.len().min(self.left as usize)
        } else {
            n
        };
        for word in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let value = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&value[..word.len()]);
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

/// `sha256:<hex>` of everything `reader` gives, and how many bytes that was.
pub fn digest_of_reader(mut reader: impl Read) -> (String, u64) {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    (format!("sha256:{}", hex::encode(hasher.finalize())), total)
}

/// Writes the head of a `method` request of `target` with a body of `len` bytes; the body
/// is the caller's to send (or not).
pub fn send_head_of(
    stream: &mut TcpStream,
    method: &str,
    target: &str,
    len: impl std::fmt::Display,
) {
    send_head(
        stream,
        &format!("{method} {target} HTTP/1.1\nHost: x\nContent-Length: {len}\n\n"),
    );
}

/// Writes a request head; the body, if any, is the caller's to send (or not).
pub fn send_head(stream: &mut TcpStream, head: &str) {
    stream
        .write_all(head.replace('\n', "\r\n").as_bytes())
        .unwrap();
}
