"""The Lambda deployment on one machine: serves the HTTP API as the deployed stack would, over
the AWS endpoint in AWS_ENDPOINT_URL (moto in the tests), until killed.

    tests/deployment/serve --addr 127.0.0.1:5000 [--template template.yaml] [--state-dir DIR]
                           [--parameter KEY=VALUE]... [--release] [--no-build] [--bin-dir DIR]

- Reads the routes, functions, their environments and the stream's event source mapping from
  SAM's own transform of the template (sam_template.translate), not from a list here.
- Builds each function as `sam build` does (its crate alone, its own features), copies the
  binary into the harness's bin folder, and runs it as its own process against a Lambda
  runtime API served here: one invocation per process at a time, more processes as requests
  overlap, each function's Timeout (apigw.py, runtime.py).
- Provisions the table, bucket, key and topic with `registry-local provision` (its default
  names, or QUAYSIDE_TABLE / _BUCKET / _KMS_KEY / _TOPIC) and resolves each Ref/GetAtt of the
  functions' environments to them; anything it does not emulate stops it at start.
- Runs each ECS service the template creates (the upload service) as processes of its binary
  with the container's resolved environment, behind its load balancer (a local proxy whose
  address stands for the balancer's DNS name), as tasks.py describes; their logs go to
  STATE_DIR/logs/<binary>-<n>.log.
- Runs notify-push on the table's stream as its event source mapping does (streams.py), with a
  checkpoint per shard in STATE_DIR/checkpoints.json.
- Logs one line per invocation on stderr; the functions' own output goes to
  STATE_DIR/logs/<function>.log. Prints `serving on http://HOST:PORT` when ready.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import apigw  # noqa: E402
import runtime  # noqa: E402
from apigw import (  # noqa: E402
    API_MAX_REQUEST_BYTES,
    API_TIMEOUT_SECONDS,
    LAMBDA_MAX_PAYLOAD_BYTES,
    BadResponse,
    Router,
    TemplateError,
    build_event,
    gateway_error,
    map_response,
    routes_from_template,
)
from resolve import Resolver, Unresolvable, function_environment, parameter_values  # noqa: E402
from runtime import FunctionSpec, Pool, read_chunked  # noqa: E402
from sam_template import function_builds, lambda_functions, translate  # noqa: E402
from streams import Checkpoints, EventSourceMapping  # noqa: E402
from tasks import LoadBalancer, free_port, service_specs, wait_listening  # noqa: E402

ROOT = HERE.parent.parent
ACCOUNT = "123456789012"
STACK = "quayside"


class Fatal(Exception):
    pass


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- Building, as `sam build` (cargo-lambda) builds each function: its crate alone.


def package_name(crate_dir: Path) -> str:
    with open(crate_dir / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["name"]


def cargo_build(root: Path, package: str, binary: str | None, release: bool, dest: Path) -> Path:
    """`cargo build -p PACKAGE` alone (its own features), the executable copied to dest at
    once (a later workspace build would overwrite target/<profile>/<name> with a
    feature-unified one). A warning in a crate of the workspace fails it: a crate built with
    only its own features is where a feature gap shows (an item only some features use)."""
    cmd = ["cargo", "build", "--locked", "-p", package, "--message-format=json"]
    if release:
        cmd.append("--release")
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
    exe = None
    warnings = []
    assert proc.stdout is not None
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-message":
            diagnostic = msg.get("message") or {}
            rendered = diagnostic.get("rendered") or ""
            sys.stderr.write(rendered)
            # Cargo replays a cached crate's warnings, so a rebuild-free run still sees them.
            if diagnostic.get("level") == "warning" and msg.get("package_id", "").startswith(f"path+{root.as_uri()}"):
                warnings.append(rendered)
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        target = msg.get("target") or {}
        if "bin" not in target.get("kind", []):
            continue
        if binary and target.get("name") != binary:
            continue
        exe = msg["executable"]
        if binary:
            # Copy now, before anything else in this invocation could replace it.
            copy_atomic(Path(exe), dest / binary)
    if proc.wait() != 0:
        raise Fatal(f"cargo build -p {package} failed")
    if warnings:
        raise Fatal(f"cargo build -p {package} (its own features) warned {len(warnings)} time(s): see above")
    if exe is None:
        raise Fatal(f"cargo build -p {package} produced no binary {binary or ''}")
    name = binary or Path(exe).name
    if not binary:
        copy_atomic(Path(exe), dest / name)
    return dest / name


def copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)


# --- Provisioning and resolving the template's references.


def provision(root: Path, release: bool, build: bool, env: dict[str, str]) -> dict[str, str]:
    """`registry-local provision`; returns its table, bucket, key and topic."""
    profile = "release" if release else "debug"
    exe = root / "target" / profile / "registry-local"
    if build:
        cmd = ["cargo", "build", "--locked", "-p", "registry-local", "--features", "aws"] + (["--release"] if release else [])
        if subprocess.run(cmd, cwd=root, stdout=subprocess.DEVNULL).returncode != 0:
            raise Fatal("cargo build -p registry-local failed")
    if not exe.exists():
        raise Fatal(f"{exe} is missing: run without --no-build once, or `cargo build -p registry-local --features aws`")
    out = subprocess.run([str(exe), "provision"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise Fatal(f"registry-local provision failed:\n{out.stderr.strip()}")
    done: dict[str, str] = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^(table|bucket|key|topic)\s+(\S+)", line)
        if m:
            done[m.group(1)] = m.group(2)
    missing = {"table", "bucket", "key", "topic"} - set(done)
    if missing:
        raise Fatal(f"registry-local provision did not name its {', '.join(sorted(missing))}:\n{out.stdout}")
    return done


def aws_session(region: str) -> Any:
    import boto3

    return boto3.session.Session(region_name=region)


def emulated_resources(translated: dict[str, Any], done: dict[str, str], session: Any, region: str, function_names: dict[str, str]) -> tuple[dict[str, str], dict[tuple[str, str], str], dict[str, Any]]:
    """Ref and GetAtt values of the template's resources the harness provides: the one table,
    bucket, key and topic `provision` made, the functions, the log groups."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    ddb = session.client("dynamodb", endpoint_url=endpoint)
    kms = session.client("kms", endpoint_url=endpoint)
    table = ddb.describe_table(TableName=done["table"])["Table"]
    key = kms.describe_key(KeyId=done["key"])["KeyMetadata"]
    topic_arn = done["topic"]
    facts = {"table": table, "key": key}
    refs: dict[str, str] = {}
    atts: dict[tuple[str, str], str] = {}
    by_type: dict[str, list[str]] = {}
    for lid, r in (translated.get("Resources") or {}).items():
        by_type.setdefault(r.get("Type", ""), []).append(lid)

    def one(kind: str) -> str | None:
        ids = by_type.get(kind, [])
        return ids[0] if len(ids) == 1 else None  # two of a kind: not emulated (fails if referenced)

    if (t := one("AWS::DynamoDB::Table")):
        refs[t] = table["TableName"]
        atts[(t, "Arn")] = table["TableArn"]
        if table.get("LatestStreamArn"):
            atts[(t, "StreamArn")] = table["LatestStreamArn"]
    if (b := one("AWS::S3::Bucket")):
        refs[b] = done["bucket"]
        atts[(b, "Arn")] = f"arn:aws:s3:::{done['bucket']}"
        atts[(b, "DomainName")] = f"{done['bucket']}.s3.amazonaws.com"
        atts[(b, "RegionalDomainName")] = f"{done['bucket']}.s3.{region}.amazonaws.com"
    if (k := one("AWS::KMS::Key")):
        refs[k] = key["KeyId"]
        atts[(k, "Arn")] = key["Arn"]
        atts[(k, "KeyId")] = key["KeyId"]
    if (s := one("AWS::SNS::Topic")):
        refs[s] = topic_arn
        atts[(s, "TopicArn")] = topic_arn
        atts[(s, "TopicName")] = topic_arn.rsplit(":", 1)[-1]
    for lid in by_type.get("AWS::Lambda::Function", []):
        refs[lid] = function_names[lid]
        atts[(lid, "Arn")] = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function_names[lid]}"
    for lid in by_type.get("AWS::Logs::LogGroup", []):
        refs[lid] = f"/aws/lambda/{STACK}-{lid}"
        atts[(lid, "Arn")] = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{refs[lid]}:*"
    return refs, atts, facts


def check_table(translated: dict[str, Any], table: dict[str, Any]) -> list[str]:
    """Where the table `provision` made differs from the one the template declares."""
    notes = []
    decl = None
    for lid, r in (translated.get("Resources") or {}).items():
        if r.get("Type") == "AWS::DynamoDB::Table":
            decl = r.get("Properties") or {}
    if decl is None:
        return notes
    want_keys = sorted((k["AttributeName"], k["KeyType"]) for k in decl.get("KeySchema", []))
    have_keys = sorted((k["AttributeName"], k["KeyType"]) for k in table.get("KeySchema", []))
    if want_keys != have_keys:
        notes.append(f"key schema: template {want_keys}, provisioned {have_keys}")
    want_view = (decl.get("StreamSpecification") or {}).get("StreamViewType")
    have_view = (table.get("StreamSpecification") or {}).get("StreamViewType")
    if want_view != have_view:
        notes.append(f"stream view type: template {want_view}, provisioned {have_view}")
    want_gsi = sorted(g["IndexName"] for g in decl.get("GlobalSecondaryIndexes", []))
    have_gsi = sorted(g["IndexName"] for g in table.get("GlobalSecondaryIndexes", []))
    if want_gsi != have_gsi:
        notes.append(f"indexes: template {want_gsi}, provisioned {have_gsi}")
    return notes


# --- The API.


class Harness:
    def __init__(self) -> None:
        self.router: Router | None = None
        self.pools: dict[str, Pool] = {}
        self.binaries: dict[str, str] = {}
        self.port = 0
        self.mapping: EventSourceMapping | None = None

    def log_invocation(self, function: str, route: str, status: int | str, inv: Any, latency_ms: float, note: str = "", bytes_in: int = 0) -> None:
        dur = ((inv.ended or time.monotonic()) - inv.started) * 1000 if inv and inv.started else 0.0
        start = "-"
        if inv and inv.started:
            start = f"cold init_ms={inv.init_ms:.1f}" if inv.cold and inv.init_ms is not None else "warm"
        rss = inv.peak_rss_kb if inv and inv.peak_rss_kb is not None else "-"
        extra = f" {note}" if note else ""
        log(
            f"invoke function={function} route=\"{route}\" status={status} bytes_in={bytes_in} duration_ms={dur:.1f} "
            f"latency_ms={latency_ms:.1f} start={start} peak_rss_kb={rss}{extra}"
        )


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # A request line that does not parse (a TLS ClientHello: docker's `manifest` command
    # tries https first) still gets a status line, so the client falls back to http as it
    # does with any HTTP server; http.server's default (HTTP/0.9) answers without one.
    default_request_version = "HTTP/1.0"
    disable_nagle_algorithm = True
    harness: Harness
    server_version = "quayside-harness"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle_expect_100(self) -> bool:
        n = self.headers.get("Content-Length")
        if n and n.isdigit() and int(n) > API_MAX_REQUEST_BYTES:
            self._gateway(413, close=True)
            return False
        return super().handle_expect_100()

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, request_id: str, head: bool, close: bool = False) -> None:
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        seen = set()
        for k, v in headers:
            lk = k.lower()
            if lk in ("connection", "transfer-encoding", "apigw-requestid"):
                continue
            if lk == "content-length" and not head:
                continue
            seen.add(lk)
            self.send_header(k, v)
        if not head or "content-length" not in seen:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("apigw-requestid", request_id)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _gateway(self, status: int, close: bool = False, request_id: str = "") -> int:
        s, h, b = gateway_error(status)
        self._send(s, list(h.items()), b, request_id or uuid.uuid4().hex[:16], self.command == "HEAD", close)
        return s

    def _dispatch(self) -> None:
        h = self.harness
        t0 = time.monotonic()
        request_id = uuid.uuid4().hex[:16]
        raw = self.path
        if raw.startswith("http://") or raw.startswith("https://"):
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        raw_path, _, raw_query = raw.partition("?")
        # The body, within API Gateway's 10 MB.
        body = b""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            try:
                body = read_chunked(self.rfile, API_MAX_REQUEST_BYTES)
            except OverflowError:
                self._gateway(413, close=True, request_id=request_id)
                log(f"gateway route=\"{self.command} {raw_path}\" status=413 request body over {API_MAX_REQUEST_BYTES} bytes")
                return
        elif length:
            if not length.isdigit():
                self._gateway(413, close=True, request_id=request_id)  # unreadable: refuse and close
                return
            n = int(length)
            if n > API_MAX_REQUEST_BYTES:
                self._gateway(413, close=True, request_id=request_id)
                log(f"gateway route=\"{self.command} {raw_path}\" status=413 request body of {n} bytes over {API_MAX_REQUEST_BYTES}")
                return
            body = self.rfile.read(n)
        assert h.router is not None
        found = h.router.match(self.command, raw_path)
        if found is None:
            self._gateway(404, request_id=request_id)
            return
        route, params = found
        event = build_event(
            method=self.command,
            raw_path=raw_path,
            raw_query=raw_query,
            headers=list(self.headers.items()),
            body=body if (length or body) else None,
            route=route,
            path_parameters=params,
            source_ip=self.client_address[0],
            server_port=h.port,
            request_id=request_id,
        )
        payload = json.dumps(event, separators=(",", ":")).encode()
        function = h.binaries[route.function]
        if len(payload) > LAMBDA_MAX_PAYLOAD_BYTES:
            # Lambda refuses the invocation (RequestEntityTooLargeException) before the function.
            status = self._gateway(500, request_id=request_id)
            h.log_invocation(function, route.key, status, None, (time.monotonic() - t0) * 1000,
                             f"refused: event of {len(payload)} bytes over Lambda's {LAMBDA_MAX_PAYLOAD_BYTES}")
            return
        pool = h.pools[route.function]
        wait = API_TIMEOUT_SECONDS
        if route.timeout_ms:
            wait = min(wait, route.timeout_ms / 1000)
        inv = pool.invoke(payload, wait_s=max(0.0, wait - (time.monotonic() - t0)))
        latency = (time.monotonic() - t0) * 1000
        if not inv.done.is_set():
            status = self._gateway(503, request_id=request_id)
            h.log_invocation(function, route.key, status, inv, latency, "integration timeout (API Gateway's 30 s)", bytes_in=len(body))
            return
        if inv.error is not None:
            status = self._gateway(500, request_id=request_id)
            h.log_invocation(function, route.key, status, inv, latency, f"{inv.error_kind}: {inv.error[:300]!r}", bytes_in=len(body))
            return
        try:
            status, headers, rbody = map_response(inv.result or b"")
        except BadResponse as e:
            status = self._gateway(500, request_id=request_id)
            h.log_invocation(function, route.key, status, inv, latency, f"malformed response: {e}", bytes_in=len(body))
            return
        # Logged before the answer goes out, so a client that reads the log after its
        # answer finds the line (the tests count uploaded bytes from it).
        h.log_invocation(function, route.key, status, inv, latency, bytes_in=len(body))
        self._send(status, headers, rbody, request_id, self.command == "HEAD")

    def _safe_dispatch(self) -> None:
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _safe_dispatch


def _pdeathsig() -> None:
    """In the child: die with the harness, even if it is SIGKILLed."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests/deployment/serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", help="HOST:PORT to serve the API on (port 0: any free port)")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument("--state-dir", default=None, help="checkpoints and function logs (default: target/deployment/state)")
    p.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE", help="a template parameter (repeatable)")
    p.add_argument("--release", action="store_true", help="build and run release binaries (default: debug)")
    p.add_argument("--no-build", action="store_true", help="use the binaries already in the bin folder")
    p.add_argument("--build-only", action="store_true", help="build the function binaries and registry-local, then stop (tests/run, before starting harnesses with --no-build)")
    p.add_argument("--bin-dir", default=None, help="where the function binaries are (default: target/deployment/<profile>)")
    p.add_argument("--max-sandboxes", type=int, default=8, help="processes per function at most; more requests queue")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    if args.build_only and args.no_build:
        raise Fatal("--build-only and --no-build contradict each other")
    if not args.addr and not args.build_only:
        raise Fatal("--addr HOST:PORT is required")
    host, _, port_s = (args.addr or "127.0.0.1:0").rpartition(":")
    if not host or not port_s.isdigit():
        raise Fatal(f"--addr {args.addr!r}: expected HOST:PORT")
    template = Path(args.template).resolve()
    root = template.parent
    profile = "release" if args.release else "debug"
    bin_dir = Path(args.bin_dir).resolve() if args.bin_dir else root / "target" / "deployment" / profile
    state_dir = Path(args.state_dir).resolve() if args.state_dir else root / "target" / "deployment" / "state"
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if not os.environ.get("AWS_ENDPOINT_URL") and not args.build_only:
        log("warning: AWS_ENDPOINT_URL is not set: the harness provisions in and talks to your real AWS account")

    overrides = {}
    for kv in args.parameter:
        k, sep, v = kv.partition("=")
        if not sep:
            raise Fatal(f"--parameter {kv!r}: expected KEY=VALUE")
        overrides[k] = v

    # 1. The template, as CloudFormation gets it.
    translated = translate(template)
    builds = function_builds(template)
    lambdas = lambda_functions(translated)
    routes = routes_from_template(translated)
    mappings = {lid: r for lid, r in translated["Resources"].items() if r.get("Type") == "AWS::Lambda::EventSourceMapping"}
    others = sorted(
        f"{lid} ({r.get('Type')})" for lid, r in translated["Resources"].items()
        if r.get("Type") in ("AWS::SQS::Queue", "AWS::Events::Rule", "AWS::Lambda::Url", "AWS::ApiGateway::RestApi")
    )
    if others:
        raise Fatal(f"the template declares what the harness does not emulate: {', '.join(others)}")
    for lid in lambdas:
        if lid not in builds:
            raise Fatal(f"{lid}: an AWS::Lambda::Function not declared as an AWS::Serverless::Function with a local CodeUri")

    function_names = {lid: f"{STACK}-{lid}" for lid in lambdas}

    # 2. The binaries.
    binaries: dict[str, Path] = {}
    bin_names: dict[str, str] = {}
    for lid, b in builds.items():
        crate = root / b["crate_dir"]
        pkg = package_name(crate)
        name = b["binary"] or pkg
        bin_names[lid] = name
        binaries[lid] = bin_dir / name
    if not args.no_build:
        for lid in sorted(builds):
            t = time.monotonic()
            crate = root / builds[lid]["crate_dir"]
            cargo_build(root, package_name(crate), builds[lid]["binary"] or None, args.release, bin_dir)
            log(f"built {bin_names[lid]} ({profile}, -p {package_name(crate)} alone) in {time.monotonic() - t:.1f} s")
    missing = [str(p) for p in binaries.values() if not p.exists()]
    if missing:
        raise Fatal(f"missing function binaries (run without --no-build once): {', '.join(missing)}")
    if args.build_only:
        cmd = ["cargo", "build", "--locked", "-p", "registry-local", "--features", "aws"] + (["--release"] if args.release else [])
        if subprocess.run(cmd, cwd=root).returncode != 0:
            raise Fatal("cargo build -p registry-local failed")
        log(f"built {len(binaries)} function binaries into {bin_dir} in {time.monotonic() - t_start:.1f} s")
        return 0

    # 3. Provision, resolve.
    t_prov = time.monotonic()
    child_env = dict(os.environ)
    done = provision(root, args.release, not args.no_build, child_env)
    session = aws_session(region)
    refs, atts, facts = emulated_resources(translated, done, session, region, function_names)
    for note in check_table(translated, facts["table"]):
        log(f"warning: the provisioned table differs from template.yaml's: {note}")
    params = parameter_values(translated, overrides)
    pseudo = {
        "AWS::Region": region, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK,
        "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": "",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT}:stack/{STACK}/harness",
    }
    resolver = Resolver(translated, params, pseudo, refs, atts)
    passthrough = {
        k: v for k, v in os.environ.items()
        if k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "QUAYSIDE_S3_PATH_STYLE", "RUST_BACKTRACE",
                 # moto on a busy machine answers far slower than AWS: the tests may give
                 # AWS calls more time than the template's 5 s / 15 s.
                 "QUAYSIDE_AWS_ATTEMPT_TIMEOUT", "QUAYSIDE_AWS_CALL_TIMEOUT")
        or k.startswith("AWS_ENDPOINT_URL")
    }
    # 3b. The ECS services (the upload service), behind their load balancers: before the
    # functions, whose environment may name a balancer's address.
    balancers: dict[str, LoadBalancer] = {}
    tasks: list[subprocess.Popen] = []
    for svc in service_specs(translated, resolver):
        exe = root / "target" / profile / svc.binary
        if not exe.exists():
            raise Fatal(f"{exe} is missing: run without --no-build once, or `cargo build -p registry-local --features aws`")
        lb = balancers.setdefault(svc.load_balancer, LoadBalancer(host))
        atts[(svc.load_balancer, "DNSName")] = f"127.0.0.1:{lb.port}"
        for n in range(1, svc.desired + 1):
            port = free_port()
            env = dict(svc.environment)
            env.update(passthrough)
            env.update({"QUAYSIDE_ADDR": f"127.0.0.1:{port}", "AWS_REGION": region, "AWS_DEFAULT_REGION": region})
            log_path = state_dir / "logs" / f"{svc.binary}-{n}.log"
            task = runtime.popen(
                [str(exe)], env=env, stdin=subprocess.DEVNULL, stdout=open(log_path, "ab", buffering=0),
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=runtime.PREEXEC,
            )
            tasks.append(task)
            wait_listening(port, lambda task=task: task.poll() is None, log_path)
            lb.backends.append(port)
        lb.start()
        log(f"{svc.logical_id}: {svc.desired} task(s) of {svc.binary} behind {svc.load_balancer} on 127.0.0.1:{lb.port}")

    harness = Harness()
    for lid, fn in lambdas.items():
        props = fn.get("Properties") or {}
        try:
            env = function_environment(resolver, lid, fn)
        except Unresolvable as e:
            hint = ""
            if "RegistryApi" in str(e):
                hint = f" (the API's own URL cannot be known; try --parameter AuthRealm=http://{args.addr}/v2/auth)"
            raise Fatal(f"{e}{hint}") from None
        log_group = f"/aws/lambda/{function_names[lid]}"
        lc = props.get("LoggingConfig") or {}
        log_format = str(lc.get("LogFormat") or "Text")
        if lc.get("LogGroup"):
            log_group = str(resolver.resolve(lc["LogGroup"], f"{lid} LoggingConfig"))
        memory = int(props.get("MemorySize", 128))
        env.update(passthrough)
        env.update({
            # What Lambda sets in every sandbox (reserved: the template cannot override them).
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_FUNCTION_NAME": function_names[lid],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_LOG_GROUP_NAME": log_group,
            # As Lambda sets it from LoggingConfig.LogFormat (JSON only when asked).
            **({"AWS_LAMBDA_LOG_FORMAT": "JSON"} if log_format.upper() == "JSON" else {}),
            "_HANDLER": str(props.get("Handler", "bootstrap")),
            "LAMBDA_TASK_ROOT": str(bin_dir),
            "LAMBDA_RUNTIME_DIR": "/var/runtime",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        })
        spec = FunctionSpec(
            logical_id=lid,
            name=function_names[lid],
            command=[str(binaries[lid])],
            env=env,
            timeout_s=float(props.get("Timeout", 3)),
            memory_mb=memory,
            log_path=str(state_dir / "logs" / f"{bin_names[lid]}.log"),
            region=region,
            account=ACCOUNT,
        )
        harness.pools[lid] = Pool(spec, args.max_sandboxes)
        harness.binaries[lid] = bin_names[lid]
    harness.router = Router(routes)
    for r in routes:
        if r.path != "/" and r.path.endswith("/"):
            log(f"note: route {r.method} {r.path} ends with '/': served as {r.key} (API Gateway drops a route's "
                f"trailing slash and routes /p and /p/ alike; see aws/serverless-application-model#1949 for a report "
                f"of such a route not being created at all)")
    routed = {r.function for r in routes}
    for lid in sorted(set(lambdas) - routed - {(m["Properties"]["FunctionName"] or {}).get("Ref") for m in mappings.values()}):
        log(f"warning: {lid} has no route and no event source: nothing invokes it")

    # 4. The stream's event source mappings.
    checkpoints = Checkpoints(str(state_dir / "checkpoints.json"))
    esms: list[EventSourceMapping] = []
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    for mid, m in mappings.items():
        p = m["Properties"]
        target = (p.get("FunctionName") or {}).get("Ref")
        if target not in harness.pools:
            raise Fatal(f"{mid}: FunctionName {p.get('FunctionName')!r} is not a function of the template")
        source = resolver.resolve(p["EventSourceArn"], f"{mid} EventSourceArn")
        if ":dynamodb:" not in source or "/stream/" not in source:
            raise Fatal(f"{mid}: event source {source} is not a DynamoDB stream (not emulated)")
        if p.get("Enabled") is False:
            continue
        filters = [json.loads(f["Pattern"]) for f in ((p.get("FilterCriteria") or {}).get("Filters") or [])]
        pool = harness.pools[target]
        fname = bin_names[target]

        def invoke(payload: bytes, pool: Pool = pool, fname: str = fname, mid: str = mid) -> tuple[bytes | None, str | None]:
            t0 = time.monotonic()
            if len(payload) > LAMBDA_MAX_PAYLOAD_BYTES:
                return None, "batch over Lambda's 6 MB"
            inv = pool.invoke(payload)  # the function's Timeout bounds it
            n = len(json.loads(payload)["Records"])
            status = "ok" if inv.error is None else inv.error_kind
            harness.log_invocation(fname, f"{mid} ({n} records)", status, inv, (time.monotonic() - t0) * 1000)
            return inv.result, inv.error

        unsupported = sorted(set(p) - {
            "BatchSize", "EventSourceArn", "FunctionName", "MaximumBatchingWindowInSeconds",
            "StartingPosition", "FunctionResponseTypes", "FilterCriteria", "Enabled",
        })
        if unsupported:
            log(f"warning: {mid}: {', '.join(unsupported)} not emulated")
        esm = EventSourceMapping(
            streams_client=session.client("dynamodbstreams", endpoint_url=endpoint),
            stream_arn=source,
            region=region,
            invoke=invoke,
            checkpoints=checkpoints,
            starting_position=p.get("StartingPosition", "LATEST"),
            batch_size=int(p.get("BatchSize", 100)),
            window_s=float(p.get("MaximumBatchingWindowInSeconds", 0)),
            report_item_failures="ReportBatchItemFailures" in (p.get("FunctionResponseTypes") or []),
            filters=filters,
            log=log,
        )
        esms.append(esm)

    # 5. Serve.
    handler = type("Handler", (ApiHandler,), {"harness": harness})
    server = ThreadingHTTPServer((host, int(port_s)), handler)
    server.daemon_threads = True
    harness.port = server.server_address[1]
    for esm in esms:
        esm.start()

    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if stopping.is_set():
            return
        stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        f"ready in {time.monotonic() - t_start:.1f} s (provision and resolve {time.monotonic() - t_prov:.1f} s): "
        f"{len(routes)} routes, {len(lambdas)} functions, {len(esms)} stream mapping(s); "
        f"table {done['table']}, bucket {done['bucket']}, topic {done['topic']}; function logs in {state_dir / 'logs'}"
    )
    shown_host = host if host not in ("0.0.0.0", "::") else "127.0.0.1"
    print(f"serving on http://{shown_host}:{harness.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        for esm in esms:
            esm.stop_event.set()
        for pool in harness.pools.values():
            pool.close()
        for lb in balancers.values():
            lb.stop()
        for task in tasks:
            task.terminate()
        for esm in esms:
            esm.stop()
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    runtime.PREEXEC = _pdeathsig
    try:
        sys.exit(main(sys.argv[1:]))
    except (Fatal, Unresolvable, TemplateError) as e:
        log(f"serve: {e}")
        sys.exit(1)
