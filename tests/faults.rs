//! A fault-injecting HTTP proxy in front of moto's server: the AWS SDK's clients are pointed
//! at it ([`quayside::aws::Aws::with_endpoint`]) and it passes each request on to moto,
//! unless a rule says to fail it (an answer of the test's choosing, such as DynamoDB's
//! throttling), to delay it, or to pass it on and then drop moto's answer (the write took
//! effect, the client never hears so, and the SDK tries again). Each connection carries one
//! request: simple, and every answer is framed by its connection's end.
//!
//! Operations are named as the SDK names them, `Service.Operation`: DynamoDB's and KMS's
//! from `X-Amz-Target`, S3's from the method, query and headers of a path-style request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What to do to a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer this instead of passing the request on.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Pass it on, and drop moto's answer: the connection closes with no response.
    DropAnswer,
    /// Wait this long, then pass it on.
    Delay(Duration),
}

impl Fault {
    /// DynamoDB's answer to a table over its provisioned rate.
    pub fn dynamodb_throttled() -> Fault {
        Fault::Answer {
            status: 400,
            content_type: "application/x-amz-json-1.0",
            body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected: rate exceeded"}"#.into(),
        }
    }

    /// DynamoDB's answer to a transaction of two actions, the first of whose items another
    /// transaction in flight holds: cancelled, no condition failed.
    pub fn dynamodb_transaction_conflict() -> Fault {
        Fault::Answer {
            status: 400,
            content_type: "application/x-amz-json-1.0",
            body: r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"injected: Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict, None]","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"None"}]}"#.into(),
        }
    }

    /// S3's answer to a prefix over its request rate.
    pub fn s3_slow_down() -> Fault {
        Fault::Answer {
            status: 503,
            content_type: "application/xml",
            body: "<Error><Code>SlowDown</Code><Message>injected: reduce your request rate</Message></Error>".into(),
        }
    }
}

#[derive(Debug)]
struct Rule {
    operation: String,
    fault: Fault,
    /// How many more requests it applies to.
    left: u32,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Requests seen, by operation (each try of the SDK counts).
    seen: HashMap<String, u32>,
}

/// The proxy, on a free port of 127.0.0.1, for as long as the test's runtime runs.
pub struct FaultProxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl FaultProxy {
    /// A proxy to `target` (`http://host:port`).
    pub async fn start(target: &str) -> FaultProxy {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = Arc::clone(&shared);
                let target = target.clone();
                tokio::spawn(async move {
                    // A connection the client dropped is no failure of the proxy's.
                    let _ = serve(client, &target, &state).await;
                });
            }
        });
        FaultProxy { url, state }
    }

    /// Applies `fault` to the next `times` requests of `operation` (`DynamoDB.UpdateItem`).
    pub fn inject(&self, operation: &str, fault: Fault, times: u32) {
        self.state.lock().expect("proxy state").rules.push(Rule {
            operation: operation.into(),
            fault,
            left: times,
        });
    }

    /// Removes every rule: requests pass untouched.
    pub fn clear(&self) {
        self.state.lock().expect("proxy state").rules.clear();
    }

    /// How many requests of `operation` the proxy has seen (every try).
    pub fn seen(&self, operation: &str) -> u32 {
        let state = self.state.lock().expect("proxy state");
        state.seen.get(operation).copied().unwrap_or_default()
    }
}

async fn serve(client: TcpStream, target: &str, state: &Mutex<State>) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    let mut head = Vec::new();
    loop {
        let before = head.len();
        if client.read_until(b'\n', &mut head).await? == 0 {
            return Ok(());
        }
        if head[before..] == *b"\r\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked(&mut client).await?
    } else {
        let length = header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        client.read_exact(&mut body).await?;
        body
    };
    let operation = operation(&request_line, &header, &body);
    let fault = {
        let mut state = state.lock().expect("proxy state");
        *state.seen.entry(operation.clone()).or_default() += 1;
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.operation == operation && r.left > 0);
        rule.map(|r| {
            r.left -= 1;
            r.fault.clone()
        })
    };
    let mut client = client.into_inner();
    match fault {
        Some(Fault::Answer {
            status,
            content_type,
            body,
        }) => {
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            return client.shutdown().await;
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DropAnswer) | None => {}
    }
    // Passed on over a connection of its own, closed after the answer.
    let mut upstream = TcpStream::connect(target).await?;
    let mut forwarded = Vec::with_capacity(head.len() + body.len());
    forwarded.extend_from_slice(request_line.as_bytes());
    forwarded.extend_from_slice(b"\r\n");
    for (name, value) in &headers {
        if name != "connection" {
            forwarded.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    forwarded.extend_from_slice(b"connection: close\r\n\r\n");
    forwarded.extend_from_slice(&body);
    upstream.write_all(&forwarded).await?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer).await?;
    if matches!(fault, Some(Fault::DropAnswer)) {
        // The write took effect; the client hears nothing of it.
        return Ok(());
    }
    client.write_all(&with_connection_close(&answer)).await?;
    client.shutdown().await
}

/// A chunked body as sent (chunks, last chunk, trailers), to pass on unchanged.
async fn read_chunked(client: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        client.read_until(b'\n', &mut raw).await?;
        let size_line = String::from_utf8_lossy(&raw[start..]).to_string();
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other("bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                let before = raw.len();
                if client.read_until(b'\n', &mut raw).await? == 0 || raw[before..] == *b"\r\n" {
                    return Ok(raw);
                }
            }
        }
        let mut chunk = vec![0; size + 2];
        client.read_exact(&mut chunk).await?;
        raw.extend_from_slice(&chunk);
    }
}

/// moto's answer with `connection: close`, so that the client opens a new connection for
/// its next request (this one ends with the answer).
fn with_connection_close(answer: &[u8]) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut out: Vec<u8> = Vec::with_capacity(answer.len() + 19);
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&answer[end + 4..]);
    out
}

/// The SDK's name of the request's operation.
fn operation<'a>(
    request_line: &str,
    header: &impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
) -> String {
    if let Some(target) = header("x-amz-target") {
        let (service, op) = target.split_once('.').unwrap_or(("", target));
        let service = if service.starts_with("DynamoDBStreams") {
            "DynamoDBStreams"
        } else if service.starts_with("DynamoDB") {
            "DynamoDB"
        } else if service.starts_with("TrentService") {
            "KMS"
        } else {
            service
        };
        return format!("{service}.{op}");
    }
    if String::from_utf8_lossy(body).contains("Action=Publish") {
        return "SNS.Publish".into();
    }
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let uri = parts.next().unwrap_or_default();
    let query = uri.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let has = |name: &str| {
        query
            .split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    };
    let op = match method {
        "POST" if has("uploads") => "CreateMultipartUpload",
        "POST" if has("uploadId") => "CompleteMultipartUpload",
        "POST" if has("delete") => "DeleteObjects",
        "PUT" if has("partNumber") => "UploadPart",
        "PUT" if header("x-amz-copy-source").is_some() => "CopyObject",
        "PUT" => "PutObject",
        "DELETE" if has("uploadId") => "AbortMultipartUpload",
        "DELETE" => "DeleteObject",
        "GET" if has("uploads") => "ListMultipartUploads",
        "GET" if has("list-type") => "ListObjectsV2",
        "GET" => "GetObject",
        "HEAD" => "HeadObject",
        other => other,
    };
    format!("S3.{op}")
}
