#!/usr/bin/env python3
"""Upload service benchmark (issue 12): one big layer pushed by skopeo over the AWS backend at
moto, two ways, in one run:

- `registry-local`: `registry-local --backend aws` takes the layer itself (what a CI job with
  IAM credentials does; the peer of the service, same code path into S3);
- `upload-service`: `registry-local --backend aws --auth --upload-service URL` (standing in for
  the Lambda API: start-upload hands the session over with a capability) and `upload-service`
  taking the layer, as the deployment runs it; skopeo logs in with a user's password.

    bench/upload_service.py                      # release build, a 1024 MiB layer, 2 rounds
    bench/upload_service.py --layer-mib 128 --rounds 1

Each measurement gets fresh resources at one moto (`tests/moto_server.py`): table, bucket, key
and topic of its own. Reported per way: the push's wall time (skopeo's start to its exit,
the layout read from the page cache), the peak RSS (`VmHWM`) and CPU seconds of the process
that took the layer, and the ratio service / registry-local. moto keeps S3 in memory and is on
the same two cores: these are figures of the code path and its overheads, not of S3.
Uses bench/blobs.py's layouts and process helpers. Nothing else should run meanwhile.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import blobs  # noqa: E402
from blobs import cpu_seconds, free_port, log, make_layout, proc_status, start, stop, stop_all, wait_for  # noqa: E402

ROOT = blobs.ROOT
PASSWORD = "bench-upload-service"


def moto(work):
    port = free_port()
    proc = start([str(ROOT / ".venv/bin/python"), str(ROOT / "tests/moto_server.py"), "-p", str(port)],
                 log_file=work / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
            break
        except OSError:
            if time.time() > deadline:
                raise SystemExit("moto did not start")
            time.sleep(0.1)
    return proc, {
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true",
        "QUAYSIDE_AWS_ATTEMPT_TIMEOUT": "60s", "QUAYSIDE_AWS_CALL_TIMEOUT": "120s",
    }


def resources(env, name):
    env = {**env, "QUAYSIDE_TABLE": name, "QUAYSIDE_BUCKET": name, "QUAYSIDE_KMS_KEY": f"alias/{name}",
           "QUAYSIDE_TOPIC": name}
    subprocess.run([str(ROOT / "target/release/registry-local"), "provision"], env={**os.environ, **env},
                   check=True, stdout=subprocess.DEVNULL)
    return env


def push(layout, addr, creds=None):
    cmd = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout}:latest", f"docker://{addr}/bench/big:latest"]
    t = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t


def measure(way, env, layout, work, run):
    bin_dir = ROOT / "target/release"
    env = resources(env, f"bench-{way}-{run}")
    port = free_port()
    addr = f"127.0.0.1:{port}"
    if way == "registry-local":
        taker = start([str(bin_dir / "registry-local"), "--backend", "aws", "--addr", addr, "--data-dir",
                       str(work / f"data-{run}"), "--publish-events", "never"], env=env,
                      log_file=work / f"{way}-{run}.log")
        wait_for(f"http://{addr}/v2/", taker, way)
        seconds = push(layout, addr)
    else:
        subprocess.run([str(bin_dir / "registry-admin"), "--backend", "aws", "user", "add", "bench"],
                       env={**os.environ, **env}, input=f"{PASSWORD}\n", text=True, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service_port = free_port()
        taker = start([str(bin_dir / "upload-service"), "--addr", f"127.0.0.1:{service_port}"], env=env,
                      log_file=work / f"{way}-{run}.log")
        wait_for(f"http://127.0.0.1:{service_port}/health", taker, "upload-service")
        api = start([str(bin_dir / "registry-local"), "--backend", "aws", "--auth", "--addr", addr,
                     "--upload-service", f"http://127.0.0.1:{service_port}", "--data-dir",
                     str(work / f"data-{run}"), "--publish-events", "never"], env=env,
                    log_file=work / f"api-{run}.log")
        try:
            urllib.request.urlopen(f"http://{addr}/v2/", timeout=30)
        except urllib.error.HTTPError:
            pass  # 401: up
        except OSError:
            time.sleep(1)
        seconds = push(layout, addr, f"bench:{PASSWORD}")
        stop(api)
    rss = proc_status(taker.pid, "VmHWM")
    cpu = cpu_seconds(taker.pid)
    stop(taker)
    return {"seconds": seconds, "rss_mb": rss, "cpu_s": cpu}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer-mib", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-build", action="store_true")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "registry-local", "--features", "aws"],
                       cwd=ROOT, check=True)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-upload-service-{os.getpid()}"
    work.mkdir(parents=True)
    layout = work / "layout"
    log(f"load before: {blobs.loadavg()}")
    made = make_layout(layout, args.layer_mib, 42)
    log(f"layout of {made['size'] / blobs.MiB:.0f} MiB made")
    proc, env = moto(work)
    runs = {"registry-local": [], "upload-service": []}
    try:
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for way in order:
                got = measure(way, env, layout, work, r)
                log(f"round {r + 1} {way}: {got['seconds']:.1f} s, peak RSS {got['rss_mb']:.1f} MB, CPU {got['cpu_s']:.1f} s")
                runs[way].append(got)
    finally:
        stop_all()
    log(f"load after: {blobs.loadavg()}")
    best = {way: min(rs, key=lambda g: g["seconds"]) for way, rs in runs.items()}
    print(f"\n{args.layer_mib} MiB layer, skopeo push over the AWS backend at moto (best of {args.rounds}):\n")
    print("| way | push (s) | peak RSS of the taker (MB) | its CPU (s) |")
    print("|---|---|---|---|")
    for way, got in best.items():
        print(f"| {way} | {got['seconds']:.1f} | {got['rss_mb']:.1f} | {got['cpu_s']:.1f} |")
    a, b = best["registry-local"], best["upload-service"]
    print(f"\nupload-service / registry-local: time {b['seconds'] / a['seconds']:.2f}×, "
          f"RSS {b['rss_mb'] / a['rss_mb']:.2f}×, CPU {b['cpu_s'] / a['cpu_s']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps({"layer_mib": args.layer_mib, "runs": runs}, indent=2))


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
