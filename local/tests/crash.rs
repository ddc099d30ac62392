//! A crash of the real binary during uploads: `kill -9` while some requests are mid-PATCH,
//! some mid finishing PUT and others anywhere in between, a restart on the same data
//! folder, and the retries of clients that resume. What a user depends on: a finishing
//! PUT whose bytes were all recorded answers 201, any other retry a clear 4xx with where
//! to resume from (never a 500, never a 416 for a claim the dead process held), and every
//! stored blob hashes to its digest.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use support::{Generated, Server, agent, read_answer, send_head, send_head_of, start_upload};

const MIB: usize = 1024 * 1024;

fn blob(seed: u64, len: usize) -> (Vec<u8>, String) {
    let mut generated = Generated::new(seed, len as u64);
    let mut bytes = Vec::with_capacity(len);
    std::io::Read::read_to_end(&mut generated, &mut bytes).unwrap();
    (bytes, generated.digest())
}

fn with_digest(location: &str, digest: &str) -> String {
    let joiner = if location.contains('?') { '&' } else { '?' };
    format!("{location}{joiner}digest={digest}")
}

/// An upload as its client knows it.
#[derive(Clone)]
struct Job {
    seed: u64,
    digest: String,
    location: Option<String>,
    /// The PATCH with every byte was answered 202.
    patched: bool,
    /// The finishing PUT was answered 201.
    done: bool,
}

/// Every answer the clients got: none may be a 5xx.
#[derive(Default)]
struct Seen(Mutex<Vec<(String, u16)>>);

impl Seen {
    fn note(&self, what: &str, status: u16) -> u16 {
        self.0.lock().unwrap().push((what.to_string(), status));
        status
    }
}

const CHURN_LEN: usize = 2 * MIB;

/// Kills and restarts.
const ROUNDS: u64 = 4;

/// A client pushing blobs one after another until the server goes away, noting where
/// each stands.
fn churn(base: &str, first_seed: u64, jobs: &Mutex<Vec<Job>>, seen: &Seen, stop: &AtomicBool) {
    let mut seed = first_seed;
    while !stop.load(Ordering::Relaxed) {
        let (bytes, digest) = blob(seed, CHURN_LEN);
        let index = {
            let mut jobs = jobs.lock().unwrap();
            jobs.push(Job {
                seed,
                digest: digest.clone(),
                location: None,
                patched: false,
                done: false,
            });
            jobs.len() - 1
        };
        seed += 2;
        let Ok(start) = agent()
            .post(&format!("{base}/v2/acme/churn/blobs/uploads/"))
            .send_empty()
        else {
            return;
        };
        assert_eq!(seen.note("churn POST", start.status().as_u16()), 202);
        let location = start.headers()["location"].to_str().unwrap().to_string();
        jobs.lock().unwrap()[index].location = Some(location.clone());
        let Ok(patch) = agent().patch(&format!("{base}{location}")).send(&bytes[..]) else {
            return;
        };
        assert_eq!(seen.note("churn PATCH", patch.status().as_u16()), 202);
        jobs.lock().unwrap()[index].patched = true;
        let Ok(put) = agent()
            .put(&format!("{base}{}", with_digest(&location, &digest)))
            .send_empty()
        else {
            return;
        };
        assert_eq!(seen.note("churn PUT", put.status().as_u16()), 201);
        jobs.lock().unwrap()[index].done = true;
    }
}

/// The blob stored by a client that resumes `job` after the crash: the finishing PUT if
/// every byte was recorded; else where the upload stands (`GET`), the rest from there, and
/// the PUT; a new upload if the server lost it.
fn resume(base: &str, job: &Job, seen: &Seen) {
    if job.done {
        return;
    }
    let (bytes, digest) = blob(job.seed, CHURN_LEN);
    let Some(location) = &job.location else {
        push_whole(base, &bytes, &digest, seen);
        return;
    };
    if job.patched {
        let put = agent()
            .put(&format!("{base}{}", with_digest(location, &digest)))
            .send_empty()
            .unwrap();
        assert_eq!(seen.note("resumed PUT", put.status().as_u16()), 201);
        return;
    }
    let status = agent().get(&format!("{base}{location}")).call().unwrap();
    match seen.note("status after crash", status.status().as_u16()) {
        204 => {
            let stored = stored_bytes(status.headers()["range"].to_str().unwrap());
            // Every byte recorded, the 202 lost: only the PUT is left.
            if stored < CHURN_LEN {
                resume_patch(base, location, &bytes, stored, seen);
            }
            let put = agent()
                .put(&format!("{base}{}", with_digest(location, &digest)))
                .send_empty()
                .unwrap();
            assert_eq!(seen.note("resumed PUT", put.status().as_u16()), 201);
        }
        404 => push_whole(base, &bytes, &digest, seen),
        other => panic!("upload status after the crash: {other}"),
    }
}

/// The rest of a blob from `stored`, as a resuming client sends it.
fn resume_patch(base: &str, location: &str, bytes: &[u8], stored: usize, seen: &Seen) {
    let mut patch = agent()
        .patch(&format!("{base}{location}"))
        .header("content-range", format!("{stored}-{}", CHURN_LEN - 1))
        .send(&bytes[stored..])
        .unwrap();
    let status = seen.note("resumed PATCH", patch.status().as_u16());
    let body = patch.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 202, "{body}");
}

fn push_whole(base: &str, bytes: &[u8], digest: &str, seen: &Seen) {
    let post = agent()
        .post(&format!(
            "{base}/v2/acme/churn/blobs/uploads/?digest={digest}"
        ))
        .send(bytes)
        .unwrap();
    assert_eq!(seen.note("monolithic POST", post.status().as_u16()), 201);
}

/// Bytes an upload holds, from its `Range` (`0-0` when none).
fn stored_bytes(range: &str) -> usize {
    match range.split_once('-') {
        Some(("0", "0")) => 0,
        Some((_, end)) => end.parse::<usize>().unwrap() + 1,
        None => panic!("range {range:?}"),
    }
}

/// Every blob file hashes to its name.
fn check_blob_files(data_dir: &Path) -> usize {
    let mut checked = 0;
    for entry in std::fs::read_dir(data_dir.join("blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temporary file, named by no one
        }
        let (digest, _) = support::digest_of_reader(std::fs::File::open(entry.path()).unwrap());
        assert_eq!(digest, format!("sha256:{name}"));
        checked += 1;
    }
    checked
}

#[test]
fn uploads_survive_a_kill_9_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let seen = Seen::default();
    let mut server = Server::start(&data, &[]);
    let base = server.base.clone();
    // A PATCH of `bytes` to the upload at `location`; the PUT that finishes it as `digest`,
    // with no body.
    let patch = |location: &str, bytes: &[u8]| {
        agent()
            .patch(&format!("{base}{location}"))
            .send(bytes)
            .unwrap()
    };
    let finish = |location: &str, digest: &str| {
        agent()
            .put(&format!("{base}{}", with_digest(location, digest)))
            .send_empty()
            .unwrap()
    };

    // Mid-PATCH: 4 MiB recorded, then a chunk of 8 MiB of which 2 are sent.
    let (whole1, digest1) = blob(1, 12 * MIB);
    let u1 = start_upload(&server, "acme/one");
    let first = patch(&u1, &whole1[..4 * MIB]);
    assert_eq!(first.status(), 202);
    let mut mid_patch = server.connect();
    send_head(
        &mut mid_patch,
        &format!(
            "PATCH {u1} HTTP/1.1\nHost: x\nContent-Range: {}-{}\nContent-Length: {}\n\n",
            4 * MIB,
            12 * MIB - 1,
            8 * MIB
        ),
    );
    mid_patch.write_all(&whole1[4 * MIB..6 * MIB]).unwrap();

    // Mid finishing PUT, the whole blob in its body (containerd, oras): 3 of 8 MiB sent.
    let (whole2, digest2) = blob(2, 8 * MIB);
    let u2 = start_upload(&server, "acme/two");
    let mut mid_put = server.connect();
    send_head_of(&mut mid_put, "PUT", &with_digest(&u2, &digest2), 8 * MIB);
    mid_put.write_all(&whole2[..3 * MIB]).unwrap();

    // Finished, but the client never saw the 201 (it retries the PUT).
    let (whole3, digest3) = blob(3, 3 * MIB);
    let u3 = start_upload(&server, "acme/three");
    assert_eq!(patch(&u3, &whole3).status(), 202);
    assert_eq!(finish(&u3, &digest3).status(), 201);

    // Every byte sent, the finishing PUT not yet.
    let (whole4, digest4) = blob(4, 5 * MIB);
    let u4 = start_upload(&server, "acme/four");
    assert_eq!(patch(&u4, &whole4).status(), 202);

    // Clients pushing small blobs one after another, killed wherever they are: at a
    // POST, mid-PATCH, at the finishing PUT; restarted and resumed, in several rounds so
    // that kills land in more of the places a request can be.
    let (mut mid_patch, mut mid_put) = (Some(mid_patch), Some(mid_put));
    let mut all_jobs = Vec::new();
    for round in 0..ROUNDS {
        let jobs = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for client in 0..2u64 {
                let (base, jobs, seen, stop) = (&base, &jobs, &seen, &stop);
                let first_seed = 100 + round * 1000 + client;
                scope.spawn(move || churn(base, first_seed, jobs, seen, stop));
            }
            // Until the clients have finished a few blobs, so the kill lands among them.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while jobs.lock().unwrap().iter().filter(|j| j.done).count() < 4 {
                assert!(std::time::Instant::now() < deadline, "the clients stalled");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            server.kill();
            stop.store(true, Ordering::Relaxed);
        });
        drop(mid_patch.take());
        drop(mid_put.take());
        server = Server::start_on(&data, server.port, &[]);
        if round == 0 {
            // Mid-PATCH: the recorded 4 MiB stand; the rest resumes from there at once (no claim
            // of the dead process in the way).
            let status = agent().get(&format!("{base}{u1}")).call().unwrap();
            assert_eq!(status.status(), 204);
            let stored = stored_bytes(status.headers()["range"].to_str().unwrap());
            assert_eq!(stored, 4 * MIB);
            let rest = agent()
                .patch(&format!("{base}{u1}"))
                .header("content-range", format!("{stored}-{}", 12 * MIB - 1))
                .send(&whole1[stored..])
                .unwrap();
            assert_eq!(seen.note("u1 PATCH", rest.status().as_u16()), 202);
            let put1 = finish(&u1, &digest1);
            assert_eq!(seen.note("u1 PUT", put1.status().as_u16()), 201);

            // Mid finishing PUT: sent again, whole.
            let mut retry2 = server.connect();
            send_head_of(&mut retry2, "PUT", &with_digest(&u2, &digest2), 8 * MIB);
            retry2.write_all(&whole2).unwrap();
            let put2 = read_answer(&mut retry2).unwrap();
            assert_eq!(seen.note("u2 PUT", put2.status), 201, "{put2:?}");

            // Finished before the crash: the retried PUT answers as the first did.
            let again3 = finish(&u3, &digest3);
            assert_eq!(seen.note("u3 PUT", again3.status().as_u16()), 201);

            // Every byte recorded before the crash: the PUT finishes it.
            let put4 = finish(&u4, &digest4);
            assert_eq!(seen.note("u4 PUT", put4.status().as_u16()), 201);
        }
        let jobs = jobs.into_inner().unwrap();
        for job in &jobs {
            resume(&base, job, &seen);
        }
        all_jobs.extend(jobs);
    }
    let jobs = all_jobs;

    // Every blob is there, whole, in its repository.
    let mut expected = vec![
        ("acme/one", digest1),
        ("acme/two", digest2),
        ("acme/three", digest3),
        ("acme/four", digest4),
    ];
    expected.extend(jobs.iter().map(|j| ("acme/churn", j.digest.clone())));
    for (repo, digest) in &expected {
        let mut got = agent()
            .get(&format!("{base}/v2/{repo}/blobs/{digest}"))
            .call()
            .unwrap();
        assert_eq!(got.status(), 200, "{repo} {digest}");
        let (pulled, _) = support::digest_of_reader(got.body_mut().as_reader());
        assert_eq!(&pulled, digest);
    }
    let files = check_blob_files(&data);
    let answers = seen.0.lock().unwrap();
    let failures: Vec<_> = answers.iter().filter(|(_, s)| *s >= 500).collect();
    assert!(failures.is_empty(), "{failures:?}");
    eprintln!(
        "{} churn uploads ({} in flight at the kill), {files} blob files checked",
        jobs.len(),
        jobs.iter().filter(|j| !j.done).count()
    );
}
