"""A tiny Lambda function for the harness's own tests: speaks the runtime API like
lambda_runtime does and answers what the event's `rawPath` (or FAKE_MODE) asks for.

    /echo      200 with the event as JSON body
    /crash     exits with status 3 mid-invocation
    /sleep/N   sleeps N seconds, then 200
    /error     posts to /error (a function error)
    /big/N     a response of N bytes of body
    /bad       a response that is not JSON
    /init-fail (FAKE_MODE=init-fail) reports /init/error and exits
"""

import json
import os
import sys
import time
import urllib.request

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
BASE = f"http://{API}/2018-06-01/runtime"


def post(path: str, body: bytes) -> int:
    req = urllib.request.Request(BASE + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def main() -> None:
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
                 "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_LOG_GROUP_NAME"):
        if name not in os.environ:
            post("/init/error", json.dumps({"errorMessage": f"{name} missing"}).encode())
            sys.exit(2)
    if os.environ.get("FAKE_MODE") == "init-fail":
        post("/init/error", b'{"errorMessage":"init failed on purpose","errorType":"Fake"}')
        sys.exit(1)
    while True:
        with urllib.request.urlopen(BASE + "/invocation/next") as r:
            rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
            assert r.headers["Lambda-Runtime-Deadline-Ms"]
            assert r.headers["Lambda-Runtime-Invoked-Function-Arn"]
            event = json.loads(r.read())
        path = event.get("rawPath", "/echo") if isinstance(event, dict) else "/echo"
        if "Records" in event:
            fails = [{"itemIdentifier": s} for s in os.environ.get("FAKE_FAIL_SEQS", "").split(",") if s]
            with open(os.environ["FAKE_RECORD_LOG"], "a") as f:
                for rec in event["Records"]:
                    f.write(rec["dynamodb"]["SequenceNumber"] + "\n")
            post(f"/invocation/{rid}/response", json.dumps({"batchItemFailures": fails}).encode())
            continue
        if path == "/crash":
            os._exit(3)
        if path.startswith("/sleep/"):
            time.sleep(float(path.rsplit("/", 1)[1]))
        if path == "/error":
            post(f"/invocation/{rid}/error", b'{"errorMessage":"boom","errorType":"Fake"}')
            continue
        if path == "/bad":
            post(f"/invocation/{rid}/response", b"not json")
            continue
        if path.startswith("/big/"):
            body = "x" * int(path.rsplit("/", 1)[1])
            code = post(f"/invocation/{rid}/response", json.dumps({"statusCode": 200, "body": body}).encode())
            if code == 413:
                post(f"/invocation/{rid}/error", b'{"errorMessage":"response too large","errorType":"Runtime"}')
            continue
        resp = {
            "statusCode": 200,
            "headers": {"content-type": "application/json", "x-pid": str(os.getpid())},
            "cookies": ["a=1", "b=2"],
            "body": json.dumps(event),
            "isBase64Encoded": False,
        }
        post(f"/invocation/{rid}/response", json.dumps(resp).encode())


if __name__ == "__main__":
    main()
