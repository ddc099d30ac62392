//! Checks before bytes, through the real binary: what a request's headers decide (the
//! token gate, declared sizes, the upload limit) is answered before its body is read, and
//! read by a client that is still sending; slow clients are cut off by the timeouts; the
//! server speaks HTTP/1.1 only.

mod support;

use std::io::Write;
use support::{
    Server, agent, closed_by_server, read_answer, send_head, send_head_of, start_upload,
};

const MIB: u64 = 1024 * 1024;

/// registry-local with `args`, over a data folder of its own (there as long as the test
/// holds it).
fn serve(args: &[&str]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), args);
    (dir, server)
}

#[test]
fn a_tokenless_patch_declaring_400_mib_gets_401_at_once_and_nothing_is_read() {
    let (_dir, server) = serve(&["--auth"]);
    let before = server.memory_kib("VmHWM");
    let mut stream = server.connect();
    // Only the headers: the answer must not wait for a body.
    send_head(
        &mut stream,
        &format!(
            "PATCH /v2/acme/big/blobs/uploads/0b7c9a0e-9d6b-4a8b-8b7e-2f1d2d9a6c11 HTTP/1.1\n\
             Host: x\nContent-Length: {}\n\n",
            400 * MIB
        ),
    );
    let answer = read_answer(&mut stream).unwrap();
    assert_eq!(answer.status, 401, "{answer:?}");
    assert!(answer.body.contains("UNAUTHORIZED"), "{}", answer.body);
    assert!(answer.header("www-authenticate").is_some());
    // The body was not read: the connection cannot carry another request.
    assert_eq!(answer.header("connection"), Some("close"));
    let grown = server.memory_kib("VmHWM").saturating_sub(before);
    assert!(grown < 8 * 1024, "the server grew by {grown} KiB");
}

#[test]
fn a_content_length_over_the_largest_blob_gets_413_before_a_byte_is_sent() {
    let (_dir, server) = serve(&["--max-blob-bytes", "1048576"]);
    let location = start_upload(&server, "acme/big");
    for (method, target) in [
        ("PATCH", location.clone()),
        (
            "PUT",
            with_digest(&location, &format!("sha256:{}", "0".repeat(64))),
        ),
        (
            "POST",
            format!(
                "/v2/acme/big/blobs/uploads/?digest=sha256:{}",
                "0".repeat(64)
            ),
        ),
    ] {
        let mut stream = server.connect();
        send_head_of(&mut stream, method, &target, 2 * MIB);
        let answer = read_answer(&mut stream).unwrap();
        assert_eq!(answer.status, 413, "{method}: {answer:?}");
        assert!(answer.body.contains("SIZE_INVALID"), "{}", answer.body);
    }
    // The refused requests left the upload as it was: it takes a chunk that fits.
    let patch = agent()
        .patch(&format!("{}{location}", server.base))
        .send(&[1u8; 1000][..])
        .unwrap();
    assert_eq!(patch.status(), 202);
    assert_eq!(patch.headers()["range"], "0-999");
}

/// `location` (with or without a query) and `digest=`.
fn with_digest(location: &str, digest: &str) -> String {
    let joiner = if location.contains('?') { '&' } else { '?' };
    format!("{location}{joiner}digest={digest}")
}

#[test]
fn a_client_sending_a_large_body_after_a_401_reads_the_401() {
    let (_dir, server) = serve(&["--auth"]);
    let chunk = vec![0x5au8; MIB as usize];
    // As a client that writes its whole request before it reads (no reset may come
    // first), with Content-Length and with chunks as docker sends a layer.
    for chunked in [false, true] {
        let mut stream = server.connect();
        let framing = if chunked {
            "Transfer-Encoding: chunked".to_string()
        } else {
            format!("Content-Length: {}", 300 * MIB)
        };
        send_head(
            &mut stream,
            &format!(
                "PATCH /v2/acme/big/blobs/uploads/0b7c9a0e-9d6b-4a8b-8b7e-2f1d2d9a6c11 HTTP/1.1\n\
                 Host: x\n{framing}\n\n"
            ),
        );
        for _ in 0..300 {
            if chunked {
                write!(stream, "{:x}\r\n", chunk.len()).unwrap();
            }
            stream
                .write_all(&chunk)
                .unwrap_or_else(|e| panic!("chunked {chunked}: writing the body: {e}"));
            if chunked {
                stream.write_all(b"\r\n").unwrap();
            }
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n").unwrap();
        }
        let answer = read_answer(&mut stream)
            .unwrap_or_else(|e| panic!("chunked {chunked}: reading the answer: {e}"));
        assert_eq!(answer.status, 401, "{answer:?}");
        assert!(answer.body.contains("UNAUTHORIZED"), "{}", answer.body);
        assert!(closed_by_server(&mut stream));
    }
}

#[test]
fn a_slow_loris_is_cut_off_by_the_header_timeout() {
    let (_dir, server) = serve(&["--header-timeout", "2s"]);
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte, then a second's wait for an answer (the read timeout), and again.
    let mut sent = 0;
    let mut closed = false;
    for byte in head {
        if stream.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        let mut one = [0u8; 1];
        match std::io::Read::read(&mut stream, &mut one) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("an answer to a request not yet sent"),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "the server waited for all {sent} bytes of the head");
    assert!(sent < head.len());
    // A client that sends its head at once is served.
    let ok = agent().get(&format!("{}/v2/", server.base)).call().unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn over_the_upload_limit_a_request_gets_429_before_its_body_is_read() {
    let (_dir, server) = serve(&["--max-uploads", "1"]);
    let first = start_upload(&server, "acme/one");
    // Starting an upload sends no blob bytes: it takes no slot.
    let second = start_upload(&server, "acme/two");
    // The only slot, held by a body half sent.
    let mut sending = server.connect();
    send_head_of(&mut sending, "PATCH", &first, 2 * MIB);
    sending.write_all(&vec![1u8; MIB as usize]).unwrap();
    // Which of two requests the server takes first is not known here (on a loaded machine
    // the second's head may be read first): ask until one of them is refused, and go on
    // with the other as the holder (a real client would honour Retry-After).
    let waiting = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    let (refused, mut holder, rest, free) = 'asked: {
        // Short reads: a request holding the slot waits for its body, and says nothing.
        let short = Some(std::time::Duration::from_secs(2));
        sending.set_read_timeout(short).unwrap();
        for _ in 0..100 {
            let mut probe = server.connect();
            probe.set_read_timeout(short).unwrap();
            send_head_of(&mut probe, "PATCH", &second, MIB);
            match read_answer(&mut probe) {
                Ok(got) if got.status == 429 => break 'asked (got, sending, MIB, second),
                Ok(got) => panic!("a request waiting for its slot got {got:?}"),
                // The probe holds the slot: the first request is the one refused, if its
                // head was read by now.
                Err(e) if waiting(&e) => match read_answer(&mut sending) {
                    Ok(got) if got.status == 429 => break 'asked (got, probe, MIB, first),
                    Ok(got) => panic!("a request waiting for its slot got {got:?}"),
                    Err(e) if waiting(&e) => {}
                    Err(e) => panic!("{e}"),
                },
                Err(e) => panic!("{e}"),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("neither request was refused");
    };
    holder
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    assert!(refused.body.contains("TOOMANYREQUESTS"), "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("connection"), Some("close"));
    // The holder finishes; the slot is free again for the other session.
    holder.write_all(&vec![1u8; rest as usize]).unwrap();
    let done = read_answer(&mut holder).unwrap();
    assert_eq!(done.status, 202, "{done:?}");
    let patch = agent()
        .patch(&format!("{}{free}", server.base))
        .send(&[2u8; 100][..])
        .unwrap();
    assert_eq!(patch.status(), 202);
}

#[test]
fn a_stalled_body_is_dropped_and_the_upload_resumes() {
    let (_dir, server) = serve(&["--body-idle-timeout", "2s"]);
    let location = start_upload(&server, "acme/slow");
    let mut stream = server.connect();
    send_head_of(&mut stream, "PATCH", &location, 4 * MIB);
    stream.write_all(&vec![3u8; MIB as usize]).unwrap();
    // No more bytes: the server gives up on the body and says so.
    let answer = read_answer(&mut stream).unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("BLOB_UPLOAD_INVALID"),
        "{}",
        answer.body
    );
    assert!(closed_by_server(&mut stream));
    // The upload is let go at once: the client resumes from its Range.
    let status = agent()
        .get(&format!("{}{location}", server.base))
        .call()
        .unwrap();
    assert_eq!(status.status(), 204);
    let range = status.headers()["range"].to_str().unwrap().to_string();
    let stored: u64 = match range.split_once('-') {
        Some(("0", "0")) => 0,
        Some((_, end)) => end.parse::<u64>().unwrap() + 1,
        None => panic!("range {range}"),
    };
    let rest = vec![3u8; (4 * MIB - stored) as usize];
    let patch = agent()
        .patch(&format!("{}{location}", server.base))
        .header("content-range", format!("{stored}-{}", 4 * MIB - 1))
        .send(&rest[..])
        .unwrap();
    assert_eq!(patch.status(), 202);
    assert_eq!(
        patch.headers()["range"],
        format!("0-{}", 4 * MIB - 1).as_str()
    );
}

#[test]
fn a_client_gone_mid_patch_does_not_hold_the_upload() {
    let (_dir, server) = serve(&[]);
    let location = start_upload(&server, "acme/gone");
    {
        let mut stream = server.connect();
        send_head_of(&mut stream, "PATCH", &location, 8 * MIB);
        stream.write_all(&vec![4u8; MIB as usize]).unwrap();
        // Dropped: the client went away (a network failure, a killed push).
    }
    // The retry of a client that resumes: it may race the server noticing the close, and
    // then gets 416 for a while (as the spec says); what it must not get is 416 for
    // the lease's 15 minutes.
    let mut last = 0;
    for _ in 0..100 {
        let patch = agent()
            .patch(&format!("{}{location}", server.base))
            .send(&vec![4u8; 8 * MIB as usize][..])
            .unwrap();
        last = patch.status().as_u16();
        if last != 416 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(last, 202);
}

#[test]
fn the_server_speaks_http_1_1_only() {
    let (_dir, server) = serve(&[]);
    // HTTP/2 with prior knowledge (h2c), as `curl --http2-prior-knowledge` starts it.
    let mut stream = server.connect();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let mut reply = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut reply);
    // An HTTP/2 server would answer with its SETTINGS frame (type 4); this one answers
    // nothing, or an HTTP/1.1 error.
    assert!(
        reply.is_empty() || reply.starts_with(b"HTTP/1.1 "),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn bad_paths_and_broken_chunked_bodies_get_the_registrys_400() {
    let (_dir, server) = serve(&[]);
    let request = |head: &str, body: &[u8]| {
        let mut stream = server.connect();
        send_head(&mut stream, head);
        stream.write_all(body).unwrap();
        read_answer(&mut stream).unwrap()
    };
    // A path segment that decodes to no UTF-8.
    let answer = request("GET /v2/acme/%FF/tags/list HTTP/1.1\nHost: x\n\n", b"");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(answer.body.contains("NAME_INVALID"), "{}", answer.body);
    // A chunked body whose chunk size is not hex: a bad request, not a size.
    let broken = b"zz\r\nabc\r\n0\r\n\r\n";
    let location = start_upload(&server, "acme/app");
    let answer = request(
        &format!("PATCH {location} HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n"),
        broken,
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.body.contains("BLOB_UPLOAD_INVALID"),
        "{}",
        answer.body
    );
    let answer = request(
        "PUT /v2/acme/app/manifests/t HTTP/1.1\nHost: x\n\
         Content-Type: application/vnd.oci.image.index.v1+json\nTransfer-Encoding: chunked\n\n",
        broken,
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/json"));
}
