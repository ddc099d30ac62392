//! What the tests of the real registry-local binary share: starting it (as
//! `registry_local.rs` does: a free port, wait until it listens), its memory from
//! `/proc/<pid>/status`, raw HTTP/1.1 over a socket (for requests no client library sends:
//! headers without their body, a trickle), and blob bytes made as they are sent.
//!
//! May call: the binary (as a process), std, ureq, sha2. Each test file uses part of it.
#![allow(dead_code)]

use sha2::{Digest as _, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// The binary over `data_dir` with `args`, logging to `data_dir/../<port>.log`.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        // A free port: bind to 0, note it, let it go.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Server::start_on(data_dir, port, args)
    }

    /// The same on a given port (a restart where clients already point).
    pub fn start_on(data_dir: &Path, port: u16, args: &[&str]) -> Server {
        let log = data_dir
            .parent()
            .unwrap_or(data_dir)
            .join(format!("registry-local-{port}-{}.log", std::process::id()));
        let child = Command::new(env!("CARGO_BIN_EXE_registry-local"))
            .args(["--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env_remove("QUAYSIDE_BACKEND")
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("registry-local starts");
        let server = Server {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry-local did not listen: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
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

/// Writes a request head; the body, if any, is the caller's to send (or not).
pub fn send_head(stream: &mut TcpStream, head: &str) {
    stream
        .write_all(head.replace('\n', "\r\n").as_bytes())
        .unwrap();
}
