"""Lambda, as the deployment harness emulates it: each function binary runs as its own
process (a "sandbox") against a runtime API the harness serves on a port of its own, one
invocation at a time; a pool per function starts more sandboxes when invocations overlap (up
to a cap, then they queue), kills a sandbox whose invocation outlives the function's Timeout
(Lambda resets the sandbox) and forgets one that crashed.

Runtime API (2018-06-01): GET /runtime/invocation/next, POST /runtime/invocation/{id}/response,
POST /runtime/invocation/{id}/error, POST /runtime/init/error.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from apigw import LAMBDA_MAX_PAYLOAD_BYTES

PREFIX = "/2018-06-01/runtime"

# Run in each child before exec (serve.py sets it: die with the harness).
PREEXEC: Callable[[], None] | None = None

_spawn_requests: "collections.deque" = collections.deque()
_spawn_cond = threading.Condition()
_spawner: threading.Thread | None = None


def _spawner_loop() -> None:
    while True:
        with _spawn_cond:
            while not _spawn_requests:
                _spawn_cond.wait()
            args, kwargs, box, done = _spawn_requests.popleft()
        try:
            box.append(subprocess.Popen(*args, **kwargs))
        except BaseException as e:  # handed back to the caller
            box.append(e)
        done.set()


def popen(*args: Any, **kwargs: Any) -> subprocess.Popen:
    """Popen from one long-lived thread: PR_SET_PDEATHSIG (PREEXEC) fires when the thread
    that forked the child ends, and request threads end after each request."""
    global _spawner
    with _spawn_cond:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawner_loop, name="spawner", daemon=True)
            _spawner.start()
        box: list[Any] = []
        done = threading.Event()
        _spawn_requests.append((args, kwargs, box, done))
        _spawn_cond.notify()
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


@dataclass
class FunctionSpec:
    logical_id: str
    name: str  # AWS_LAMBDA_FUNCTION_NAME
    command: list[str]
    env: dict[str, str]
    timeout_s: float
    memory_mb: int
    log_path: str | None = None
    region: str = "us-east-1"
    account: str = "123456789012"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


@dataclass
class Invocation:
    payload: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=lambda: f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0")
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes | None = None
    error: str | None = None  # set when the invocation failed (function error, crash, timeout, ...)
    error_kind: str | None = None  # "function", "timeout", "crash", "init", "payload"
    cold: bool = False
    init_ms: float | None = None
    started: float | None = None  # when the sandbox took it
    ended: float | None = None
    pid: int | None = None
    peak_rss_kb: int | None = None
    cancelled: bool = False

    def finish(self, result: bytes | None = None, error: str | None = None, kind: str | None = None) -> bool:
        if self.done.is_set():
            return False
        self.result = result
        self.error = error
        self.error_kind = kind
        self.ended = time.monotonic()
        self.done.set()
        return True


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM of a live process, in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class _RuntimeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    sandbox: "Sandbox"  # set on the subclass

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, status: int, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body or {}).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return read_chunked(self.rfile)
        return b""

    def do_GET(self) -> None:
        if self.path == f"{PREFIX}/invocation/next":
            inv = self.sandbox.next_invocation()
            if inv is None:  # the sandbox is being stopped
                self._reply(500, {"errorMessage": "sandbox stopped", "errorType": "Runtime.Stopped"})
                return
            deadline_ms = int((time.time() + self.sandbox.spec.timeout_s) * 1000)
            self._reply(
                200,
                raw=inv.payload,
                headers={
                    "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": self.sandbox.spec.arn,
                    "Lambda-Runtime-Trace-Id": inv.trace_id,
                },
            )
            return
        self._reply(404, {"errorMessage": f"no such path {self.path}", "errorType": "InvalidRequest"})

    def do_POST(self) -> None:
        body = self._body()
        parts = self.path[len(PREFIX):].strip("/").split("/") if self.path.startswith(PREFIX) else []
        if parts == ["init", "error"]:
            self.sandbox.init_error(body)
            self._reply(202, {"status": "OK"})
            return
        if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            request_id = parts[1]
            if parts[2] == "response" and len(body) > LAMBDA_MAX_PAYLOAD_BYTES:
                self.sandbox.complete(request_id, None, f"Response payload size ({len(body)} bytes) exceeded maximum allowed payload size ({LAMBDA_MAX_PAYLOAD_BYTES} bytes).", "payload")
                self._reply(413, {"errorMessage": f"Exceeded maximum allowed payload size ({LAMBDA_MAX_PAYLOAD_BYTES} bytes).", "errorType": "RequestEntityTooLarge"})
                return
            ok = (
                self.sandbox.complete(request_id, body, None, None)
                if parts[2] == "response"
                else self.sandbox.complete(request_id, None, body.decode("utf-8", "replace") or "function error", "function")
            )
            if not ok:
                self._reply(400, {"errorMessage": f"unknown or finished invocation {request_id}", "errorType": "InvalidRequestID"})
                return
            self._reply(202, {"status": "OK"})
            return
        self._reply(404, {"errorMessage": f"no such path {self.path}", "errorType": "InvalidRequest"})


def read_chunked(rfile: Any, limit: int | None = None) -> bytes:
    """A chunked body; stops (returns what it has plus one byte) once past `limit`."""
    out = bytearray()
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("connection closed inside a chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers
                t = rfile.readline(65537)
                if t in (b"\r\n", b"\n", b""):
                    break
            return bytes(out)
        if limit is not None and len(out) + size > limit:
            raise OverflowError(len(out) + size)
        out += rfile.read(size)
        rfile.readline(3)


class Sandbox:
    _ids = itertools.count(1)

    def __init__(self, spec: FunctionSpec, pool: "Pool", first: Invocation | None):
        self.spec = spec
        self.pool = pool
        self.id = next(self._ids)
        self.cond = threading.Condition()
        self.pending: Invocation | None = first
        self.current: Invocation | None = None
        self.dead = False
        self.init_done = False
        self.init_failure: str | None = None
        # The process may ask for its first event before popen (on another thread) returns
        # its pid: the runtime API waits for it.
        self.pid: int | None = None
        self.spawned = threading.Event()
        handler = type("Handler", (_RuntimeHandler,), {"sandbox": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name=f"runtime-{spec.logical_id}-{self.id}", daemon=True).start()
        env = dict(spec.env)
        env.update(
            {
                "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
                "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
            }
        )
        self.log = open(spec.log_path, "ab", buffering=0) if spec.log_path else subprocess.DEVNULL
        self.started = time.monotonic()
        self.proc = popen(
            spec.command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
            preexec_fn=PREEXEC,
        )
        self.pid = self.proc.pid
        self.spawned.set()
        threading.Thread(target=self._watch, name=f"watch-{spec.logical_id}-{self.id}", daemon=True).start()

    # Called by the runtime API's handler threads.

    def next_invocation(self) -> Invocation | None:
        self.spawned.wait()
        with self.cond:
            if not self.init_done:
                self.init_done = True
                init_ms = (time.monotonic() - self.started) * 1000
                if self.pending is not None:
                    self.pending.cold = True
                    self.pending.init_ms = init_ms
            while self.pending is None and not self.dead:
                self.cond.wait()
            if self.dead:
                return None
            inv, self.pending = self.pending, None
            self.current = inv
            inv.started = time.monotonic()
            inv.pid = self.pid
        timer = threading.Timer(self.spec.timeout_s, self._timeout, args=(inv,))
        timer.daemon = True
        timer.start()
        return inv

    def complete(self, request_id: str, result: bytes | None, error: str | None, kind: str | None) -> bool:
        with self.cond:
            inv = self.current
            if inv is None or inv.request_id != request_id:
                return False
            self.current = None
        inv.peak_rss_kb = peak_rss_kb(self.pid)
        inv.finish(result, error, kind)
        self.pool._idle(self)
        return True

    def init_error(self, body: bytes) -> None:
        with self.cond:
            self.init_failure = body.decode("utf-8", "replace")
        # The runtime exits after reporting; _watch fails what was waiting.

    # Called by the pool.

    def assign(self, inv: Invocation) -> None:
        with self.cond:
            assert self.pending is None and self.current is None
            self.pending = inv
            self.cond.notify_all()

    def stop(self) -> None:
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # Internals.

    def _timeout(self, inv: Invocation) -> None:
        with self.cond:
            if self.current is not inv or inv.done.is_set():
                return
            self.current = None
        inv.peak_rss_kb = peak_rss_kb(self.pid)
        inv.finish(None, f"Task timed out after {self.spec.timeout_s:.2f} seconds", "timeout")
        self.stop()  # Lambda resets the sandbox after a timeout

    def _watch(self) -> None:
        code = self.proc.wait()
        with self.cond:
            self.dead = True
            self.cond.notify_all()
            victims = [i for i in (self.current, self.pending) if i is not None]
            self.current = self.pending = None
            failure = self.init_failure
        for inv in victims:
            if failure is not None or not self.init_done:
                inv.finish(None, f"Runtime.ExitError: init failed (exit {code}): {failure or ''}".strip(), "init")
            else:
                inv.finish(None, f"Runtime.ExitError: the process exited with {code}", "crash")
        self.server.shutdown()
        self.server.server_close()
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        self.pool._gone(self)


class Pool:
    """The sandboxes of one function."""

    def __init__(self, spec: FunctionSpec, max_sandboxes: int = 8):
        self.spec = spec
        self.max = max_sandboxes
        self.lock = threading.Lock()
        self.sandboxes: list[Sandbox] = []
        self.idle: list[Sandbox] = []
        self.queue: collections.deque[Invocation] = collections.deque()
        self.closed = False

    def submit(self, inv: Invocation) -> None:
        with self.lock:
            if self.closed:
                inv.finish(None, "the harness is stopping", "crash")
                return
            if self.idle:
                sb = self.idle.pop()
                sb.assign(inv)
            elif len(self.sandboxes) < self.max:
                self.sandboxes.append(Sandbox(self.spec, self, inv))
            else:
                self.queue.append(inv)

    def cancel(self, inv: Invocation) -> None:
        """Drops an invocation still queued (its caller gave up)."""
        with self.lock:
            try:
                self.queue.remove(inv)
                inv.cancelled = True
            except ValueError:
                pass

    def invoke(self, payload: bytes, wait_s: float | None = None) -> Invocation:
        inv = Invocation(payload)
        self.submit(inv)
        if not inv.done.wait(wait_s):
            self.cancel(inv)
        return inv

    def _idle(self, sb: Sandbox) -> None:
        with self.lock:
            if sb.dead or sb not in self.sandboxes:
                return
            if self.queue:
                sb.assign(self.queue.popleft())
            else:
                self.idle.append(sb)

    def _gone(self, sb: Sandbox) -> None:
        with self.lock:
            if sb in self.sandboxes:
                self.sandboxes.remove(sb)
            if sb in self.idle:
                self.idle.remove(sb)
            if self.queue and not self.closed and len(self.sandboxes) < self.max:
                self.sandboxes.append(Sandbox(self.spec, self, self.queue.popleft()))

    def close(self) -> None:
        with self.lock:
            self.closed = True
            sandboxes = list(self.sandboxes)
            queued = list(self.queue)
            self.queue.clear()
        for inv in queued:
            inv.finish(None, "the harness is stopping", "crash")
        for sb in sandboxes:
            sb.stop()
