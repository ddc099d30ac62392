#!/usr/bin/env python3
"""Load benchmark: registry-local (embedded backend, release build) against the CNCF
distribution registry (Debian's `docker-registry`), and a bare in-memory server as the
machine's ceiling, all on 127.0.0.1, in one run, with the same load tool (oha) and the same
concurrency.

    bench/load.py                        # build, install what is missing, run, print the table
    bench/load.py --duration 10 --warmup 2 --connections 32 --json results.json

On a fresh Debian machine, as root, it installs what is missing: `docker-registry` and
`skopeo` with apt, `oha` with `cargo install`. Both registries get the `tiny` image of
tests/fixtures/oci-layout pushed by skopeo; then each request kind is driven at each server
for `--warmup` seconds (discarded) and `--duration` seconds (measured), one server at a
time. Then manifest GET by tag once more on every server at one fixed rate (half of what
distribution sustained): at 32 connections the fastest servers outrun the load generator,
whose own scheduling then sets their p99, so p99 is also compared where none is saturated.
Nothing else should run on the machine meanwhile: the script prints the load average before
and after, and the client shares the cores with the server under test.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blobs import cpu_seconds, distribution_config, free_port, loadavg, log, machine, run, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LAYOUT = ROOT / "tests" / "fixtures" / "oci-layout"
REPO = "bench/tiny"
TAG = "latest"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"


def have(tool):
    return shutil.which(tool) is not None


def ensure_tools():
    """apt for docker-registry and skopeo, cargo install for oha: only what is missing."""
    cargo_bin = Path.home() / ".cargo" / "bin"
    os.environ["PATH"] = f"{os.environ['PATH']}:{cargo_bin}"
    missing = [pkg for tool, pkg in [("docker-registry", "docker-registry"),
                                     ("skopeo", "skopeo")] if not have(tool)]
    if missing:
        run(["apt-get", "update"])
        run(["apt-get", "install", "-y", *missing], env={**os.environ,
                                                       "DEBIAN_FRONTEND": "noninteractive"})
    if not have("oha"):
        # (oha 1.16 does not build without its TLS feature.)
        run(["cargo", "install", "oha", "--locked"])


def request(url, method="GET", headers=None, body=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def oha(url, method, headers, body_file, seconds, connections, rate=None):
    """One oha run (at most `rate` requests/s when given); returns its JSON summary."""
    cmd = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds}s",
           "-c", str(connections), "-m", method]
    if rate:
        cmd += ["-q", str(rate)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if body_file:
        cmd += ["-D", str(body_file)]
    cmd.append(url)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def measure(url, kind, args, pid, rate=None):
    method, headers, body_file, expect = kind["method"], kind["headers"], kind.get("body"), kind["status"]
    if args.warmup > 0:
        oha(url, method, headers, body_file, args.warmup, args.connections, rate)
    cpu_before = cpu_seconds(pid)
    result = oha(url, method, headers, body_file, args.duration, args.connections, rate)
    cpu = cpu_seconds(pid) - cpu_before
    codes = result.get("statusCodeDistribution", {})
    wrong = {c: n for c, n in codes.items() if int(c) != expect}
    # oha cancels the requests in flight when the time is up: not the server's errors.
    errors = {e: n for e, n in result.get("errorDistribution", {}).items()
              if e != "aborted due to deadline"}
    if wrong or errors:
        log(f"  !! {url}: unexpected statuses {wrong} errors {errors}")
    pct = result["latencyPercentiles"]
    return {
        "rps": result["summary"]["requestsPerSec"],
        "p50_ms": pct["p50"] * 1000,
        "p99_ms": pct["p99"] * 1000,
        "requests": sum(codes.values()),
        # The server's CPU time per answered request: what contention on a shared machine
        # changes least.
        "cpu_us": cpu * 1e6 / max(1, sum(codes.values())),
        "unexpected": sum(wrong.values()) + sum(errors.values()),
    }


def median_run(measured):
    """The run with the median requests/s (its latencies with it), and every run."""
    ordered = sorted(measured, key=lambda r: r["rps"])
    return {**ordered[len(ordered) // 2], "runs": measured}


def start(cmd, env=None, log_file=None):
    out = open(log_file, "w") if log_file else subprocess.DEVNULL
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def push(addr, work):
    layout = work / "layout"
    if not layout.exists():
        shutil.copytree(LAYOUT, layout)
    run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
         f"oci:{layout}:tiny", f"docker://{addr}/{REPO}:{TAG}"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="measured seconds per run")
    p.add_argument("--warmup", type=int, default=2, help="discarded seconds before each run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every kind this many times, servers in turn; report the median")
    p.add_argument("--servers", default="quayside,distribution,bare",
                   help="comma list of quayside, distribution, bare")
    p.add_argument("--kinds", default="", help="only request kinds whose name contains one of these (comma list)")
    p.add_argument("--no-build", action="store_true", help="use the binaries in target/release as they are")
    p.add_argument("--quayside-bin", default=str(ROOT / "target/release/registry-local"))
    p.add_argument("--bare-bin", default=str(ROOT / "target/release/examples/bare-server"))
    p.add_argument("--also", action="append", default=[], metavar="NAME=BINARY",
                   help="another registry-local build to measure beside quayside (e.g. before=/tmp/old)")
    p.add_argument("--fixed-rate", type=int, default=None, metavar="REQ_PER_S",
                   help="also measure manifest GET by tag at this rate on every server "
                        "(default: half of distribution's req/s; 0: skip)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    also = dict(a.split("=", 1) for a in args.also)
    servers = args.servers.split(",")

    ensure_tools()
    if not args.no_build:
        run(["cargo", "build", "--release", "-p", "registry-local", "--bin", "registry-local",
             "--example", "bare-server"], cwd=ROOT)

    index = json.loads((LAYOUT / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "tiny")
    digest = desc["digest"]
    manifest = (LAYOUT / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()
    layer = json.loads(manifest)["layers"][-1]["digest"]

    work = Path(tempfile.mkdtemp(prefix="quayside-bench-"))
    manifest_file = work / "manifest.json"
    manifest_file.write_bytes(manifest)
    procs = []
    bases = {}
    pids = {}
    try:
        if "quayside" in servers:
            port = free_port()
            procs.append(start([args.quayside_bin, "--addr", f"127.0.0.1:{port}",
                                "--data-dir", str(work / "quayside")],
                               env={"RUST_LOG": "warn"}, log_file=work / "quayside.log"))
            bases["quayside"] = f"http://127.0.0.1:{port}"
            pids["quayside"] = procs[-1].pid
            wait_for(bases["quayside"] + "/v2/", procs[-1], "registry-local")
        for name, binary in also.items():
            port = free_port()
            procs.append(start([binary, "--addr", f"127.0.0.1:{port}", "--data-dir", str(work / name)],
                               env={"RUST_LOG": "warn"}, log_file=work / f"{name}.log"))
            bases[name] = f"http://127.0.0.1:{port}"
            pids[name] = procs[-1].pid
            wait_for(bases[name] + "/v2/", procs[-1], name)
        if "distribution" in servers:
            port = free_port()
            config = work / "distribution.yml"
            distribution_config(config, port, work / "distribution")
            procs.append(start(["docker-registry", "serve", str(config)],
                               log_file=work / "distribution.log"))
            bases["distribution"] = f"http://127.0.0.1:{port}"
            pids["distribution"] = procs[-1].pid
            wait_for(bases["distribution"] + "/v2/", procs[-1], "docker-registry")
        if "bare" in servers:
            port = free_port()
            procs.append(start([args.bare_bin, f"127.0.0.1:{port}", str(manifest_file), OCI_MANIFEST],
                               log_file=work / "bare.log"))
            bases["bare"] = f"http://127.0.0.1:{port}"
            pids["bare"] = procs[-1].pid
            wait_for(f"{bases['bare']}/v2/{REPO}/manifests/{TAG}", procs[-1], "bare-server")

        for name in ("quayside", *also, "distribution"):
            if name in bases:
                push(bases[name].removeprefix("http://"), work)
        # The same bytes and digest everywhere, or the comparison means nothing.
        for name, base in bases.items():
            status, headers, body = request(f"{base}/v2/{REPO}/manifests/{TAG}", headers={"Accept": ACCEPT})
            got = {k.lower(): v for k, v in headers.items()}
            if status != 200 or body != manifest or got.get("docker-content-digest") != digest:
                raise SystemExit(f"{name} serves another manifest: {status} {got}")

        manifest_url = f"/v2/{REPO}/manifests"
        accept = {"Accept": ACCEPT}
        kinds = [
            {"name": "GET /v2/", "method": "GET", "path": "/v2/", "headers": {}, "status": 200,
             "servers": ["quayside", "distribution"]},
            {"name": "manifest GET by tag", "method": "GET", "path": f"{manifest_url}/{TAG}",
             "headers": accept, "status": 200, "servers": ["quayside", "distribution", "bare"]},
            {"name": "manifest GET by digest", "method": "GET", "path": f"{manifest_url}/{digest}",
             "headers": accept, "status": 200, "servers": ["quayside", "distribution", "bare"]},
            {"name": "manifest HEAD by tag", "method": "HEAD", "path": f"{manifest_url}/{TAG}",
             "headers": accept, "status": 200, "servers": ["quayside", "distribution", "bare"]},
            {"name": "manifest HEAD by digest", "method": "HEAD", "path": f"{manifest_url}/{digest}",
             "headers": accept, "status": 200, "servers": ["quayside", "distribution", "bare"]},
            {"name": "blob HEAD", "method": "HEAD", "path": f"/v2/{REPO}/blobs/{layer}",
             "headers": {}, "status": 200, "servers": ["quayside", "distribution"]},
            {"name": "manifest PUT", "method": "PUT", "path": f"{manifest_url}/{TAG}",
             "headers": {"Content-Type": OCI_MANIFEST}, "body": manifest_file, "status": 201,
             "servers": ["quayside", "distribution"]},
        ]
        if args.kinds:
            wanted = args.kinds.split(",")
            kinds = [k for k in kinds if any(w in k["name"] for w in wanted)]

        before = loadavg()
        log(f"load average before: {' '.join(before)}")
        runs = {}
        for round_ in range(args.rounds):
            for kind in kinds:
                names = [n for n in [*kind["servers"], *(also if "quayside" in kind["servers"] else [])]
                         if n in bases]
                # Each round starts with another server, so none always runs first.
                names = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in names:
                    log(f"round {round_ + 1}, {kind['name']}: {name}")
                    runs.setdefault((kind["name"], name), []).append(
                        measure(bases[name] + kind["path"], kind, args, pids[name]))
        results = []
        for kind in kinds:
            row = {"kind": kind["name"]}
            for (k, name), measured in runs.items():
                if k == kind["name"]:
                    row[name] = median_run(measured)
            results.append(row)
        # At 32 connections the fastest servers outrun the load generator on a shared
        # machine, and their p99 is then oha's own scheduling (the bare server's too). At a
        # rate every server sustains, the p99 is the server's.
        fixed = {}
        by_tag = next((k for k in kinds if k["name"] == "manifest GET by tag"), None)
        dist_rps = next((r["distribution"]["rps"] for r in results
                         if r["kind"] == "manifest GET by tag" and "distribution" in r), None)
        rate = args.fixed_rate if args.fixed_rate is not None else int(dist_rps / 2) if dist_rps else 0
        if by_tag and rate > 0:
            for name in [n for n in ("quayside", *also, "distribution", "bare") if n in bases]:
                log(f"fixed rate {rate}/s, manifest GET by tag: {name}")
                fixed[name] = measure(bases[name] + by_tag["path"], by_tag, args, pids[name], rate)
        after = loadavg()
        log(f"load average after: {' '.join(after)}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    print_table(results, args, before, after, also)
    print_fixed(fixed, rate)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "duration_s": args.duration, "warmup_s": args.warmup,
            "connections": args.connections, "rounds": args.rounds, "loadavg_before": before, "loadavg_after": after,
            "results": results, "fixed_rate": {"rate": rate, "results": fixed}}, indent=2))


def print_fixed(fixed, rate):
    if not fixed:
        return
    print(f"\nmanifest GET by tag at the same offered load, {rate:,} req/s (every server below "
          "saturation):\n")
    print("| server | req/s | p50 ms | p99 ms | p99 ÷ distribution's |")
    print("|---|---:|---:|---:|---:|")
    d = fixed.get("distribution")
    for name, r in fixed.items():
        ratio = f"{r['p99_ms'] / d['p99_ms']:.3f}" if d else "–"
        print(f"| {name} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {ratio} |")


def print_table(results, args, before, after, also):
    m = machine()
    print(f"\n{m['nproc']} cores, {m['cpu']}, {m['memory_gib']} GiB; oha, {args.connections} connections, "
          f"{args.duration} s after {args.warmup} s warm-up, median of {args.rounds} round(s); "
          f"load average {' '.join(before)} before, {' '.join(after)} after\n")
    print("| request | quayside req/s | p50 / p99 ms | distribution req/s | p50 / p99 ms "
          "| quayside ÷ distribution req/s | p99 ratio | bare req/s | quayside ÷ bare |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        q, d, b = row.get("quayside"), row.get("distribution"), row.get("bare")

        def cell(r):
            if not r:
                return "–", "–"
            flag = f" ({r['unexpected']} wrong)" if r["unexpected"] else ""
            return f"{r['rps']:,.0f}{flag}", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"

        qr, ql = cell(q)
        dr, dl = cell(d)
        ratio = f"{q['rps'] / d['rps']:.1f}×" if q and d else "–"
        p99 = f"{q['p99_ms'] / d['p99_ms']:.3f}" if q and d else "–"
        br = f"{b['rps']:,.0f}" if b else "–"
        share = f"{100 * q['rps'] / b['rps']:.0f} %" if q and b else "–"
        print(f"| {row['kind']} | {qr} | {ql} | {dr} | {dl} | {ratio} | {p99} | {br} | {share} |")
    names = [n for n in ("quayside", *also, "distribution", "bare") if any(n in row for row in results)]
    print("\nServer CPU time per answered request (µs, user + system, all threads):\n")
    print("| request | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in results:
        cells = [f"{row[n]['cpu_us']:.1f}" if n in row else "–" for n in names]
        print(f"| {row['kind']} | " + " | ".join(cells) + " |")
    for name in also:
        print(f"\n{name} (another registry-local build, same run):\n")
        print(f"| request | {name} req/s | p50 / p99 ms | quayside ÷ {name} req/s |")
        print("|---|---:|---:|---:|")
        for row in results:
            o, q = row.get(name), row.get("quayside")
            if o:
                ratio = f"{q['rps'] / o['rps']:.2f}×" if q else "–"
                print(f"| {row['kind']} | {o['rps']:,.0f} | {o['p50_ms']:.2f} / {o['p99_ms']:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
