#!/usr/bin/env python3
"""Lambda-side figures of every function: stripped release binary size (x86_64 and arm64,
built by cargo-lambda), time from process start to the first answered request under a local
Lambda runtime API, peak RSS, and the AWS calls each request makes.

    bench/lambda.py                    # build both architectures, run, print the tables
    bench/lambda.py --no-build --rounds 5 --json lambda.json

How it measures:

- The binaries come from `cargo lambda build --release [--arm64] -p <function>`, one function
  per invocation (so each links only the features of its own crate, as `sam build` does),
  into target/lambda-bench/<arch>/<function>/bootstrap. Their size is the file's size
  (cargo-lambda strips release builds).
- A moto server stands in for AWS (no network), provisioned by `registry-local provision`,
  with a user `bench` (`registry-admin --backend aws user add`), who owns the namespace
  `bench`. Between the functions and moto sits a counting proxy: every SDK request it
  forwards is one AWS call of the invocation in progress (retries would count too).
- Every function checks tokens: the `token` function runs first and issues one (HTTP Basic
  as `bench`), which every later event carries as `Authorization: Bearer`.
- A minimal runtime API (this script) serves `GET /2018-06-01/runtime/invocation/next` with
  API Gateway v2 events and takes the responses. For each function the x86_64 bootstrap is
  started with the variables Lambda sets (AWS_LAMBDA_RUNTIME_API, AWS_LAMBDA_FUNCTION_NAME,
  credentials, region, QUAYSIDE_*). "Init" is process start → the first `/next`; "first
  answer" is process start → the first response posted, AWS calls included. Peak RSS is
  VmHWM from /proc after the last event, just before the process is stopped.
- The functions run in an order that makes every request succeed: uploads, then the
  manifest push, then the reads, then deletes. Each function's first event is the one
  timed; the others only set up later functions or count AWS calls of more request kinds.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

ROOT = Path(__file__).resolve().parent.parent
# Where the bootstraps are built: <dir>/<arch>/<function>/bootstrap (--lambda-dir).
LAMBDA_DIR = ROOT / "target" / "lambda-bench"
LAYOUT = ROOT / "tests" / "fixtures" / "oci-layout"
FUNCTIONS = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "Cargo.toml").exists())
NS, REPO = "bench", "tiny"
USER, PASSWORD = "bench", "bench-password-not-secret"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFEST_ROUTE = "/v2/{namespace}/{repo}/manifests/{reference}"
BLOB_ROUTE = "/v2/{namespace}/{repo}/blobs/{digest}"
UPLOADS_ROUTE = "/v2/{namespace}/{repo}/blobs/uploads/"
UPLOAD_ROUTE = "/v2/{namespace}/{repo}/blobs/uploads/{uuid}"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------
# The AWS call counter: a proxy in front of moto.


class Calls:
    """AWS calls, attributed to the invocation in progress."""

    def __init__(self):
        self.lock = threading.Lock()
        self.current = None
        self.by_invocation = {}
        # Milliseconds the invocation waited on moto (through this proxy), to tell the
        # emulator's latency from the function's own time.
        self.ms_by_invocation = {}

    def record(self, operation, ms):
        with self.lock:
            if self.current is not None:
                self.by_invocation.setdefault(self.current, []).append(operation)
                self.ms_by_invocation[self.current] = self.ms_by_invocation.get(self.current, 0) + ms


CALLS = Calls()


def operation(method, path, headers, body):
    auth = headers.get("Authorization", "")
    service = "?"
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0].split("/")
        if len(scope) >= 4:
            service = scope[3]
    target = headers.get("X-Amz-Target")
    if target:
        return f"{service}.{target.split('.', 1)[-1]}"
    if service == "sns" or service == "sqs":
        action = dict(parse_qsl(body.decode(errors="replace"))).get("Action", "?")
        return f"{service}.{action}"
    if service == "s3":
        query = path.split("?", 1)[1] if "?" in path else ""
        detail = ",".join(k for k, _ in parse_qsl(query, keep_blank_values=True) if k != "x-id")
        return f"s3.{method}{'?' + detail if detail else ''}"
    return f"{service}.{method}"


def proxy_handler(upstream):
    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go in two writes: without TCP_NODELAY, Nagle holds the body
        # until the client's delayed ACK, 40 ms per response on a kept-alive connection.
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))

        def forward(self):
            body = self.read_body()
            started = time.monotonic()
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("transfer-encoding", "connection", "content-length")}
            headers["Content-Length"] = str(len(body))
            conn = http.client.HTTPConnection(*upstream, timeout=30)
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            CALLS.record(operation(self.command, self.path, self.headers, body),
                         (time.monotonic() - started) * 1000)
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = forward

    return Proxy


# ---------------------------------------------------------------------------------------
# The runtime API.


class Runtime:
    """One function process at a time: a queue of events, the answers, the timings."""

    def __init__(self):
        self.cond = threading.Condition()
        self.name = None
        # Bumped for each function: a `/next` still waiting from a stopped process must not
        # take the next function's events.
        self.generation = 0
        self.reset(None, [])

    def reset(self, name, events):
        """`events`: each a dict, or a function of no argument that makes it when its turn
        comes (for ids only earlier answers know)."""
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
            self.name = name
            self.events = list(events)
            self.next_index = 0
            self.answers = []
            self.first_next = None
            self.first_answer = None
            self.waiting_after_last = False
            self.sent_at = {}

    def next_event(self):
        with self.cond:
            generation = self.generation
            if self.first_next is None:
                self.first_next = time.monotonic()
            while self.next_index >= len(self.events):
                self.waiting_after_last = True
                self.cond.notify_all()
                self.cond.wait()
                if self.generation != generation:
                    return None
            i = self.next_index
            self.next_index += 1
            event = self.events[i]
            if callable(event):
                event = event()
            CALLS.current = (self.name, i)
            self.sent_at[i] = time.monotonic()
            return i, event

    def answer(self, i, payload, error=False):
        with self.cond:
            if self.first_answer is None:
                self.first_answer = time.monotonic()
            CALLS.current = None
            took = (time.monotonic() - self.sent_at[i]) * 1000 if i in self.sent_at else None
            self.answers.append({"index": i, "error": error, "payload": payload, "ms": took})
            self.cond.notify_all()

    def wait_done(self, proc, timeout=60):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.waiting_after_last:
                if proc.poll() is not None:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
            return True


RUNTIME = Runtime()


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as the proxy's

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        framing = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        for name, value in [*(headers or {}).items(), *framing]:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self.reply(404)
        taken = RUNTIME.next_event()
        if taken is None:
            self.close_connection = True
            return
        i, event = taken
        body = json.dumps(event).encode()
        self.reply(200, body, {
            "Lambda-Runtime-Aws-Request-Id": f"{i}-{uuid.uuid4()}",
            "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 30000),
            "Lambda-Runtime-Invoked-Function-Arn":
                f"arn:aws:lambda:us-east-1:123456789012:function:{RUNTIME.name}",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
        })

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0) or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.strip("/").split("/")
        if parts[:3] == ["2018-06-01", "runtime", "invocation"] and len(parts) == 5:
            i = int(parts[3].split("-", 1)[0])
            try:
                payload = json.loads(body or b"null")
            except ValueError:
                payload = body.decode(errors="replace")
            RUNTIME.answer(i, payload, error=parts[4] == "error")
            return self.reply(202, b"{}")
        if parts[:3] == ["2018-06-01", "runtime", "init"]:
            log(f"  init error: {body[:300]!r}")
            RUNTIME.answer(-1, body.decode(errors="replace"), error=True)
            return self.reply(202, b"{}")
        self.reply(404)


# ---------------------------------------------------------------------------------------
# Events.


BEARER = {}


def apigw(method, route, path, params, headers=None, query="", body=None):
    """An API Gateway v2 event, made when its turn comes (so that it carries the token the
    token function issued)."""
    return lambda: make_event(method, route, path, params, headers, query, body)


def make_event(method, route, path, params, headers, query, body):
    request_id = str(uuid.uuid4())
    headers = dict(headers or {})
    if "token" in BEARER and "authorization" not in headers:
        headers["authorization"] = f"Bearer {BEARER['token']}"
    now = time.time()
    event = {
        "version": "2.0",
        "routeKey": f"{method} {route}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "bench.execute-api.us-east-1.amazonaws.com",
                    "user-agent": "quayside-bench", **headers},
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench",
            "domainName": "bench.execute-api.us-east-1.amazonaws.com", "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "quayside-bench"},
            "requestId": request_id, "routeKey": f"{method} {route}", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "pathParameters": params,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(parse_qsl(query))
    if body is not None:
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
        event["headers"]["content-length"] = str(len(body))
    return event


def repo_params(**more):
    return {"namespace": NS, "repo": REPO, **more}


def manifest_event(method, reference, **kw):
    return apigw(method, MANIFEST_ROUTE, f"/v2/{NS}/{REPO}/manifests/{reference}",
                 repo_params(reference=reference), **kw)


def blob_event(method, digest):
    return apigw(method, BLOB_ROUTE, f"/v2/{NS}/{REPO}/blobs/{digest}", repo_params(digest=digest))


def upload_id(answers, n):
    """The upload id in the Location of the n-th upload session a start-upload opened."""
    sessions = [a for a in answers if a["payload"] and isinstance(a["payload"], dict)
                and a["payload"].get("statusCode") == 202]
    location = header(sessions[n]["payload"], "location")
    return location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[1]


def header(response, name):
    for k, v in (response.get("headers") or {}).items():
        if k.lower() == name:
            return v
    for k, v in (response.get("multiValueHeaders") or {}).items():
        if k.lower() == name:
            return v[0]
    return None


def scenario(state):
    """(function, [(label, event, or a function of nothing that makes it)]) in running order.
    `state` carries the token from the token function and the upload ids from start-upload
    to the functions after them."""
    index = json.loads((LAYOUT / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "tiny")
    digest = desc["digest"]
    blob = lambda d: (LAYOUT / "blobs" / "sha256" / d.split(":")[1]).read_bytes()
    manifest = blob(digest)
    parsed = json.loads(manifest)
    blobs = [parsed["config"]["digest"]] + [l["digest"] for l in parsed["layers"]]
    chunk = b"quayside benchmark blob\n"
    chunk_digest = "sha256:" + hashlib.sha256(chunk).hexdigest()
    uploads = f"/v2/{NS}/{REPO}/blobs/uploads/"

    def start(d=None):
        query = f"digest={d}" if d else ""
        return apigw("POST", UPLOADS_ROUTE, uploads, repo_params(), query=query,
                     body=blob(d) if d else None)

    def upload(method, n, **kw):
        return lambda: apigw(method, UPLOAD_ROUTE, uploads + state["uploads"][n],
                             repo_params(uuid=state["uploads"][n]), **kw)()

    outbox = {"event": "repo_push", "repository": f"{NS}/{REPO}", "namespace": NS,
              "updated_tags": ["latest"], "digest": digest, "media_type": OCI_MANIFEST,
              "time": "2026-11-28T00:00:00Z"}
    stream_event = {"Records": [{
        "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"ApproximateCreationDateTime": 1795836420.0,
                     "Keys": {"pk": {"S": f"{NS}/{REPO}"}, "sk": {"S": "EVENT#2026#1"}},
                     "NewImage": {"pk": {"S": f"{NS}/{REPO}"}, "sk": {"S": "EVENT#2026#1"},
                                  "event": {"S": json.dumps(outbox)}},
                     "SequenceNumber": "1", "SizeBytes": 300, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/quayside/stream/x"}]}
    accept = {"accept": f"{OCI_MANIFEST},application/vnd.docker.distribution.manifest.v2+json"}
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    token_query = ("service=quayside&scope=repository:bench/tiny:pull,push,delete"
                   "&scope=registry:catalog:*")
    plan = [
        # The token function's cold request is an anonymous one (what an anonymous pull
        # sends); the Basic one after it pays for argon2id, by design, and gives the token
        # every later event carries.
        ("token", [("GET /v2/auth (anonymous)", apigw("GET", "/v2/auth", "/v2/auth", {},
                                                      query="service=quayside&scope=repository:bench/tiny:pull")),
                   ("GET /v2/auth (Basic)", apigw("GET", "/v2/auth", "/v2/auth", {}, query=token_query,
                                                  headers={"authorization": basic}))]),
        ("api-version", [("GET /v2/", apigw("GET", "/v2/", "/v2/", {}))]),
        ("start-upload", [
            ("POST monolithic (config)", start(blobs[0])),
            *[(f"POST monolithic (layer {i})", start(d)) for i, d in enumerate(blobs[1:])],
            *[("POST (session)", start()) for _ in range(3)],
        ]),
        ("patch-upload", [("PATCH chunk", upload("PATCH", 0, body=chunk))]),
        ("finish-upload", [("PUT ?digest=", upload("PUT", 0, query=f"digest={chunk_digest}"))]),
        ("upload-status", [("GET status", upload("GET", 1))]),
        ("cancel-upload", [("DELETE upload", upload("DELETE", 2))]),
        ("write-manifest", [
            ("PUT OCI manifest by tag", manifest_event("PUT", "latest", body=manifest,
                                                       headers={"content-type": OCI_MANIFEST})),
            ("PUT by a second tag", manifest_event("PUT", "doomed", body=manifest,
                                                   headers={"content-type": OCI_MANIFEST})),
            ("PUT by digest", manifest_event("PUT", digest, body=manifest,
                                             headers={"content-type": OCI_MANIFEST})),
        ]),
        ("fetch-manifest", [
            ("GET by tag", manifest_event("GET", "latest", headers=accept)),
            ("GET by digest", manifest_event("GET", digest, headers=accept)),
            ("HEAD by tag", manifest_event("HEAD", "latest", headers=accept)),
            ("HEAD by digest", manifest_event("HEAD", digest, headers=accept)),
        ]),
        ("fetch-blob", [("HEAD blob", blob_event("HEAD", blobs[-1])),
                        ("GET blob (307)", blob_event("GET", blobs[-1]))]),
        ("list-tags", [("GET tags/list", apigw("GET", "/v2/{namespace}/{repo}/tags/list",
                                               f"/v2/{NS}/{REPO}/tags/list", repo_params()))]),
        ("catalog", [("GET _catalog", apigw("GET", "/v2/_catalog", "/v2/_catalog", {}))]),
        ("list-referrers", [("GET referrers", apigw(
            "GET", "/v2/{namespace}/{repo}/referrers/{digest}",
            f"/v2/{NS}/{REPO}/referrers/{digest}", repo_params(digest=digest)))]),
        ("delete-blob", [("DELETE blob", blob_event("DELETE", chunk_digest))]),
        ("delete-manifest", [("DELETE by tag", manifest_event("DELETE", "doomed"))]),
        ("notify-push", [("stream batch, 1 outbox event", stream_event)]),
    ]
    # The first request again, warm, where repeating it changes nothing.
    repeatable = {"token", "api-version", "write-manifest", "fetch-manifest", "fetch-blob",
                  "list-tags", "catalog", "list-referrers", "upload-status", "notify-push"}
    return [(name, events + [(events[0][0] + ", again (warm)", events[0][1])] if name in repeatable else events)
            for name, events in plan]


# ---------------------------------------------------------------------------------------


def build(arch, functions):
    out = LAMBDA_DIR / arch
    for name in functions:
        cmd = ["cargo", "lambda", "build", "--release", "-p", name, "--lambda-dir", str(out)]
        if arch == "arm64":
            cmd.insert(4, "--arm64")
        log("+", " ".join(cmd))
        subprocess.run(cmd, check=True, cwd=ROOT)
    return out


def sizes(arch):
    out = {}
    for name in FUNCTIONS:
        path = LAMBDA_DIR / arch / name / "bootstrap"
        if path.exists():
            described = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout
            out[name] = {"bytes": path.stat().st_size, "stripped": ", stripped" in described}
    return out


def vm_hwm_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def run_function(name, events, env, state):
    bootstrap = LAMBDA_DIR / "x86_64" / name / "bootstrap"
    if name == "token":
        BEARER.clear()  # its requests carry Basic credentials or none
    RUNTIME.reset(name, [ev for _, ev in events])
    fenv = {**env, "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/11/28/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}"}
    t0 = time.monotonic()
    proc = subprocess.Popen([str(bootstrap)], env=fenv, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=bootstrap.parent)
    done = RUNTIME.wait_done(proc)
    rss = vm_hwm_kib(proc.pid) if proc.poll() is None else None
    proc.kill()
    output = proc.communicate()[0].decode(errors="replace")
    if not done:
        log(f"  {name} did not take all its events:\n{output[-2000:]}")
    answers = sorted(RUNTIME.answers, key=lambda a: a["index"])
    if name == "start-upload":
        state["uploads"] = [upload_id(answers, n) for n in range(3)]
    basic = next((a for a in answers if a["index"] == 1), None)
    if name == "token" and basic and isinstance(basic["payload"], dict):
        body = basic["payload"].get("body") or "{}"
        if basic["payload"].get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        BEARER["token"] = json.loads(body).get("token")
    return {
        "init_ms": (RUNTIME.first_next - t0) * 1000 if RUNTIME.first_next else None,
        "first_answer_ms": (RUNTIME.first_answer - t0) * 1000 if RUNTIME.first_answer else None,
        "peak_rss_kib": rss,
        "answers": answers,
    }


def status_of(answer):
    payload = answer["payload"]
    if answer["error"]:
        return "error"
    if isinstance(payload, dict) and "statusCode" in payload:
        return payload["statusCode"]
    return "ok"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-build", action="store_true", help="use target/lambda-bench as it is")
    p.add_argument("--arch", default="x86_64,arm64", help="architectures to build and size")
    p.add_argument("--rounds", type=int, default=5, help="cold starts per function (median, max RSS)")
    p.add_argument("--functions", default="", help="comma list (default: all)")
    p.add_argument("--lambda-dir", type=Path, default=ROOT / "target" / "lambda-bench",
                   help="where the bootstraps are (and are built): DIR/<arch>/<function>/bootstrap")
    p.add_argument("--local-bin", type=Path, default=ROOT / "target" / "release",
                   help="where registry-local and registry-admin are (release build)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    global LAMBDA_DIR
    LAMBDA_DIR = args.lambda_dir
    archs = args.arch.split(",")
    functions = args.functions.split(",") if args.functions else FUNCTIONS

    venv = ROOT / ".venv"
    os.environ["PATH"] = f"{venv / 'bin'}:{os.environ['PATH']}:{Path.home() / '.cargo' / 'bin'}"
    if not shutil.which("moto_server") or not shutil.which("cargo-lambda"):
        if not (venv / "bin" / "pip").exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "moto[server]", "cargo-lambda"], check=True)

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "registry-local", "--bins"],
                       check=True, cwd=ROOT)
        for arch in archs:
            build(arch, functions)
    size = {arch: sizes(arch) for arch in archs}

    work = Path(tempfile.mkdtemp(prefix="quayside-lambda-bench-"))
    moto_port, proxy_port, runtime_port = free_port(), free_port(), free_port()
    moto = subprocess.Popen([shutil.which("moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    servers = [ThreadingHTTPServer(("127.0.0.1", proxy_port), proxy_handler(("127.0.0.1", moto_port))),
               ThreadingHTTPServer(("127.0.0.1", runtime_port), RuntimeApi)]
    for s in servers:
        s.daemon_threads = True
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", moto_port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy_port}",
            "QUAYSIDE_TABLE": "quayside-bench", "QUAYSIDE_BUCKET": "quayside-bench",
            "QUAYSIDE_KMS_KEY": "alias/quayside-bench", "QUAYSIDE_TOPIC": "quayside-bench",
            "_HANDLER": "bootstrap", "LAMBDA_TASK_ROOT": "/var/task",
            "QUAYSIDE_AUTH_REALM": "https://bench.execute-api.us-east-1.amazonaws.com/v2/auth",
        }
        direct = {**os.environ, **env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "RUST_LOG": "warn"}
        out = subprocess.run([str(args.local_bin / "registry-local"), "provision"], env=direct,
                             check=True, capture_output=True, text=True).stdout
        env["QUAYSIDE_TOPIC_ARN"] = next(line.split()[1] for line in out.splitlines()
                                         if line.startswith("topic"))
        subprocess.run([str(args.local_bin / "registry-admin"), "--backend", "aws", "user", "add", USER],
                       env=direct, input=PASSWORD + "\n", check=True, capture_output=True, text=True)

        state = {}
        runs = {}
        for round_ in range(args.rounds):
            for name, events in scenario(state):
                if name not in functions:
                    continue
                if not (LAMBDA_DIR / "x86_64" / name / "bootstrap").exists():
                    log(f"  {name}: no x86_64 bootstrap, skipped")
                    continue
                CALLS.by_invocation.clear()
                CALLS.ms_by_invocation.clear()
                result = run_function(name, events, env, state)
                result["calls"] = [CALLS.by_invocation.get((name, i), []) for i in range(len(events))]
                result["aws_ms"] = [CALLS.ms_by_invocation.get((name, i), 0.0) for i in range(len(events))]
                result["labels"] = [label for label, _ in events]
                runs.setdefault(name, []).append(result)
                first = result["first_answer_ms"]
                log(f"round {round_ + 1} {name}: first answer "
                    f"{f'{first:.1f} ms' if first is not None else 'none'}, "
                    f"statuses {[status_of(a) for a in result['answers']]}")
    finally:
        for s in servers:
            s.shutdown()
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)

    report(functions, archs, size, runs, args)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def report(functions, archs, size, runs, args):
    def mb(n):
        return f"{n / 1e6:.1f}" if n else "–"

    def ms(x):
        return f"{x:.1f}" if x is not None else "–"

    print(f"\nCold starts: {args.rounds} per function (median; peak RSS the largest), x86_64, "
          "moto behind a counting proxy as AWS, 128 MB declared.\n")
    print("| function | x86_64 MB | arm64 MB | init ms | first answer ms | of which AWS (moto) ms "
          "| first answer less AWS ms | peak RSS MB | first request: status, AWS calls |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    summary = {}
    for name in functions:
        rs = runs.get(name, [])
        answered = [r for r in rs if r["first_answer_ms"] is not None]
        init = median([r["init_ms"] for r in rs])
        first = median([r["first_answer_ms"] for r in answered])
        rss = max((r["peak_rss_kib"] or 0) for r in rs) if rs else None
        aws = median([r["aws_ms"][0] for r in answered])
        own = median([r["first_answer_ms"] - r["aws_ms"][0] for r in answered])
        calls = ""
        if rs:
            last = rs[-1]
            ops = last["calls"][0]
            first_status = status_of(last["answers"][0]) if last["answers"] else "none"
            calls = f"{first_status}, {len(ops)}: {', '.join(ops) or '–'}"
        sizes_ = [size.get(a, {}).get(name, {}).get("bytes") for a in ("x86_64", "arm64")]
        print(f"| {name} | {mb(sizes_[0])} | {mb(sizes_[1])} | {ms(init)} | {ms(first)} | {ms(aws)} "
              f"| {ms(own)} | {rss / 1024:.1f} | {calls} |" if rs else
              f"| {name} | {mb(sizes_[0])} | {mb(sizes_[1])} | – | – | – | – | – | – |")
        summary[name] = {"sizes": {a: size.get(a, {}).get(name) for a in archs},
                         "init_ms": init, "first_answer_ms": first, "aws_ms": aws, "own_ms": own,
                         "peak_rss_kib": rss, "runs": rs}
    print("\nAWS calls per request (last round; the first request of each function is its cold one, "
          "the others run warm; ms from the event handed out to the answer, moto's latency included):\n")
    print("| function | request | status | ms | calls | operations |")
    print("|---|---|---:|---:|---:|---|")
    for name in functions:
        rs = runs.get(name)
        if not rs:
            continue
        last = rs[-1]
        for i, label in enumerate(last["labels"]):
            answer = next((a for a in last["answers"] if a["index"] == i), None)
            ops = last["calls"][i]
            took = f"{answer['ms']:.1f}" if answer and answer.get("ms") is not None else "–"
            print(f"| {name} | {label} | {status_of(answer) if answer else '–'} | {took} | {len(ops)} | "
                  f"{', '.join(ops) or '–'} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
