"""moto's server with DynamoDB's atomicity: what tests/run, tests/clients and
tests/conformance start.

    .venv/bin/python tests/moto_server.py -H 127.0.0.1 -p PORT

moto serves each request on a thread of its own, and its DynamoDB backend takes no lock: two
conditional PutItems on one item can both pass their condition (two writers both claim one
upload session: a race test then fails where real DynamoDB cannot), and concurrent
transactions lose acknowledged writes (../shared/FIELD-NOTES.md). DynamoDB applies each
request atomically. So this runs moto's own application with one lock around every DynamoDB
request (`X-Amz-Target: DynamoDB_20120810.*`); S3, KMS, SNS, SQS and the streams API stay
concurrent.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Callable, Iterable

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

DYNAMODB_TARGET = "DynamoDB_20120810."


class AtomicDynamoDB:
    """WSGI middleware: DynamoDB requests one at a time, whole (the body is produced inside
    the lock, since moto may build it lazily)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET):
            return self.app(environ, start_response)
        with self.lock:
            return [b"".join(self.app(environ, start_response))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]
    run_simple(args.host, args.port, AtomicDynamoDB(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
