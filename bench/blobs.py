#!/usr/bin/env python3
"""Blob benchmark: big layers pushed and pulled by skopeo, registry-local (embedded backend,
release build) against the CNCF distribution registry v3.1.1 (filesystem storage), both on
127.0.0.1, in one run (issue 11).

    bench/blobs.py                                   # build, run at full size, print the tables
    bench/blobs.py --layer-mib 64 --concurrent-mib 32 # a quick smoke run
    bench/blobs.py --rounds 2 --json blobs.json
    bench/blobs.py --layer-mib 768 --skip-concurrent  # the size of the issue's "before" figures

Two measurements, each server in turn, the order alternating between rounds, and every server
process fresh (empty data folder) for each measurement of each round:

1. one image with one `--layer-mib` MiB layer of random (incompressible) bytes, written by this
   script as an OCI layout (uncompressed tar layer, config, manifest, index.json, oci-layout):
   `skopeo copy --preserve-digests` pushes it (no recompression on the way), then skopeo pulls
   it back into a new OCI layout (`--dest-oci-accept-uncompressed-layers`) and the pulled
   layer's SHA-256 is checked against the pushed one.
2. `--concurrent` (4) images, each with one `--concurrent-mib` MiB random layer, pushed by as
   many skopeo processes at once to different repositories, then pulled back the same way:
   wall time from the first start to the last exit.

Peak RSS is the server's `VmHWM` (/proc/<pid>/status), read after the push; the script then
resets it (`echo 5 > /proc/<pid>/clear_refs`, which sets it to the current RSS) so that the
reading after the pull is the pull's own peak. "Peak" in the summary is the larger of the two.
Server CPU is its user + system time over the step (all threads). Times include skopeo's own
start and its reading of the source; skopeo runs on the same cores as the server.

Needs `skopeo` (apt) and `/work/shared/tools/bin/registry3` (or `--distribution-bin`; upstream:
`go install github.com/distribution/distribution/v3/cmd/registry@v3.1.1`). The registry-local
binary is copied into the work folder before the first measurement, so a build that replaces
target/release/registry-local meanwhile does not change what is measured. Free disk space is
checked first (about 3× the larger measurement's bytes: the sources, the server's copy, and
then either the parts of an upload being joined or the pulled copy; `--source-dir /dev/shm`
moves the sources off the disk); pulled copies and server data are deleted between
measurements and everything at the end. Nothing else should run on the machine
meanwhile: the script prints the load average before and after.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
CHUNK = 16 * MiB
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
SERVERS = ("quayside", "distribution")

# Every process this script starts, so that all of them die with it, whatever happens.
CHILDREN = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+", " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    return open("/proc/loadavg").read().split()[:3]


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(int(mem) / 1024 / 1024, 1)}


def tool_version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


# --- the OCI layouts -------------------------------------------------------------------------

def write_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def make_layout(layout, mib, seed):
    """An OCI layout with one image (tag `latest`) whose one layer is an uncompressed tar of one
    file of `mib` MiB of seeded pseudo-random bytes (Mersenne Twister: incompressible, and the
    same digest every run). Returns the layer's digest and size."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    rng = random.Random(seed)
    size = mib * MiB
    info = tarfile.TarInfo("random.bin")
    info.size, info.mtime, info.mode = size, 0, 0o644
    sha = hashlib.sha256()
    temp = blobs / ".layer"
    with open(temp, "wb") as f:
        for part in [info.tobuf(format=tarfile.USTAR_FORMAT)]:
            sha.update(part)
            f.write(part)
        left = size
        while left:
            part = rng.randbytes(min(CHUNK, left))
            sha.update(part)
            f.write(part)
            left -= len(part)
        # (size is a multiple of 512: no padding) and the end-of-archive marker.
        end = bytes(1024)
        sha.update(end)
        f.write(end)
        layer_size = f.tell()
    layer = f"sha256:{sha.hexdigest()}"
    temp.rename(blobs / sha.hexdigest())
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    }, separators=(",", ":")).encode()
    config_digest, config_size = write_blob(layout, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer, "size": layer_size}],
    }, separators=(",", ":")).encode()
    manifest_digest, manifest_size = write_blob(layout, manifest)
    (layout / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return {"layer": layer, "size": layer_size}


def make_layouts(work, name, mibs, seed0):
    out = []
    for i, mib in enumerate(mibs):
        layout = work / f"{name}-{i}"
        t = time.time()
        made = make_layout(layout, mib, seed0 + i)
        log(f"made {layout} ({mib} MiB layer {made['layer'][:19]}…) in {time.time() - t:.1f} s")
        out.append({"dir": layout, **made})
    return out


def check_pulled(layout, expected):
    """The pulled layout's one layer is the pushed one: same digest in its manifest, and its
    file hashes to it."""
    index = json.loads((layout / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs" / "sha256" / manifest_digest.split(":")[1]).read_bytes())
    layer = manifest["layers"][0]["digest"]
    if layer != expected:
        raise SystemExit(f"{layout}: pulled layer {layer}, pushed {expected} (recompressed?)")
    sha = hashlib.sha256()
    with open(layout / "blobs" / "sha256" / layer.split(":")[1], "rb") as f:
        while block := f.read(CHUNK):
            sha.update(block)
    if f"sha256:{sha.hexdigest()}" != expected:
        raise SystemExit(f"{layout}: the pulled layer's bytes hash to sha256:{sha.hexdigest()}, not {expected}")


# --- the servers -----------------------------------------------------------------------------

def distribution_config(path, port, storage):
    """Writes distribution's configuration to `path`: 127.0.0.1:`port`, files in `storage`,
    no log but errors, deletes allowed (also bench/load.py's)."""
    path.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")


def start(cmd, env=None, log_file=None):
    out = open(log_file, "a") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    CHILDREN.append(proc)
    return proc


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in CHILDREN:
        CHILDREN.remove(proc)


def stop_all():
    # The newest first: the clients, so that no upload holds a server's graceful shutdown.
    for proc in list(reversed(CHILDREN)):
        try:
            stop(proc)
        except Exception as e:  # keep stopping the others
            log(f"stopping {proc.pid}: {e}")


def wait_for(url, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within {timeout} s")


def proc_status(pid, field):
    """A `kB` field of /proc/<pid>/status, in MB (10^6 bytes)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise SystemExit(f"no {field} for {pid}")


def reset_peak(pid):
    """Sets VmHWM to the current RSS (Linux ≥ 4.0)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """One fresh server process over an empty data folder."""

    def __init__(self, name, args, work, label):
        self.name = name
        self.data = work / f"{name}-data"
        shutil.rmtree(self.data, ignore_errors=True)
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        log_file = work / f"{name}.log"
        with open(log_file, "a") as f:
            f.write(f"--- {label}\n")
        if name == "quayside":
            self.proc = start([args.quayside_bin, "--addr", self.addr, "--data-dir", str(self.data)],
                              env={"RUST_LOG": "warn"}, log_file=log_file)
        else:
            self.data.mkdir()
            config = work / "distribution.yml"
            distribution_config(config, port, self.data)
            self.proc = start([args.distribution_bin, "serve", str(config)],
                              env={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "none"},
                              log_file=log_file)
        self.pid = self.proc.pid
        wait_for(f"http://{self.addr}/v2/", self.proc, name)

    def alive(self, step):
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited with {self.proc.returncode} during {step}")

    def close(self):
        stop(self.proc)
        shutil.rmtree(self.data, ignore_errors=True)


# --- the measurements ------------------------------------------------------------------------

def skopeo_push(layout, addr, repo):
    return ["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
            "--dest-tls-verify=false", f"oci:{layout}:latest", f"docker://{addr}/{repo}:latest"]


def skopeo_pull(addr, repo, layout):
    return ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
            "--dest-oci-accept-uncompressed-layers", f"docker://{addr}/{repo}:latest",
            f"oci:{layout}:latest"]


def timed(cmds, work):
    """Runs the commands at once; the wall time from the first start to the last exit. Their
    output goes to files and the wait is a poll: a blocking read or wait would hold off a
    SIGTERM's handler, and with it the clean-up, until the copies end."""
    for cmd in cmds:
        log("+", " ".join(cmd))
    outputs = [open(work / f"skopeo-{i}.log", "w+b") for i in range(len(cmds))]
    t = time.perf_counter()
    procs = []
    for cmd, out in zip(cmds, outputs):
        procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        CHILDREN.append(procs[-1])
    try:
        while any(p.poll() is None for p in procs):
            time.sleep(0.005)
    except BaseException:
        # Before the server's own clean-up: its graceful shutdown would wait for the copies.
        for p in procs:
            stop(p)
        raise
    wall = time.perf_counter() - t
    for p, cmd, out in zip(procs, cmds, outputs):
        CHILDREN.remove(p)
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{text}")
    return wall


def measure(name, args, work, label, images, repos):
    """Pushes `images` (at once if several) to a fresh `name` server, then pulls them back."""
    server = Server(name, args, work, label)
    pulled = [work / f"pulled-{i}" for i in range(len(images))]
    try:
        cpu = cpu_seconds(server.pid)
        push_s = timed([skopeo_push(img["dir"], server.addr, repo) for img, repo in zip(images, repos)], work)
        server.alive("the push")
        push_rss = proc_status(server.pid, "VmHWM")
        push_cpu = cpu_seconds(server.pid) - cpu
        reset_peak(server.pid)
        cpu = cpu_seconds(server.pid)
        pull_s = timed([skopeo_pull(server.addr, repo, out) for repo, out in zip(repos, pulled)], work)
        server.alive("the pull")
        pull_rss = proc_status(server.pid, "VmHWM")
        pull_cpu = cpu_seconds(server.pid) - cpu
    finally:
        server.close()
    try:
        for img, out in zip(images, pulled):
            check_pulled(out, img["layer"])
    finally:
        for out in pulled:
            shutil.rmtree(out, ignore_errors=True)
    mb = sum(img["size"] for img in images) / 1e6
    result = {"push_s": push_s, "pull_s": pull_s, "push_rss_mb": push_rss, "pull_rss_mb": pull_rss,
              "peak_rss_mb": max(push_rss, pull_rss), "push_cpu_s": push_cpu, "pull_cpu_s": pull_cpu,
              "push_mb_s": mb / push_s, "pull_mb_s": mb / pull_s}
    log(f"  {label}, {name}: push {push_s:.2f} s (RSS {push_rss:.1f} MB, CPU {push_cpu:.2f} s), "
        f"pull {pull_s:.2f} s (RSS {pull_rss:.1f} MB, CPU {pull_cpu:.2f} s)")
    return result


def rounds(kind, args, work, images, repos, servers):
    runs = []
    for round_ in range(args.rounds):
        # Each round starts with another server, so none always runs first.
        order = servers[round_ % len(servers):] + servers[:round_ % len(servers)]
        for position, name in enumerate(order):
            label = f"{kind}, round {round_ + 1}"
            runs.append({"round": round_ + 1, "position": position + 1, "server": name,
                         **measure(name, args, work, label, images, repos)})
    return runs


def summary(runs, servers):
    """Per server: median times over the rounds, the largest RSS."""
    out = {}
    for name in servers:
        mine = [r for r in runs if r["server"] == name]
        if not mine:
            continue
        out[name] = {k: statistics.median(r[k] for r in mine)
                     for k in ("push_s", "pull_s", "push_cpu_s", "pull_cpu_s", "push_mb_s", "pull_mb_s")}
        for k in ("push_rss_mb", "pull_rss_mb", "peak_rss_mb"):
            out[name][k] = max(r[k] for r in mine)
    return out


# --- the tables ------------------------------------------------------------------------------

def print_tables(title, runs, servers, targets):
    s = summary(runs, servers)
    q, d = s.get("quayside"), s.get("distribution")
    print(f"\n{title}\n")
    print("| server | push s | push MB/s | pull s | pull MB/s | peak RSS push / pull MB "
          "| server CPU push / pull s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in s.items():
        print(f"| {name} | {r['push_s']:.2f} | {r['push_mb_s']:.0f} | {r['pull_s']:.2f} | "
              f"{r['pull_mb_s']:.0f} | {r['push_rss_mb']:.1f} / {r['pull_rss_mb']:.1f} | "
              f"{r['push_cpu_s']:.2f} / {r['pull_cpu_s']:.2f} |")
    if q and d:
        print(f"| quayside ÷ distribution | {q['push_s'] / d['push_s']:.2f}× | | "
              f"{q['pull_s'] / d['pull_s']:.2f}× | | "
              f"{q['push_rss_mb'] / d['push_rss_mb']:.2f}× / {q['pull_rss_mb'] / d['pull_rss_mb']:.2f}× | "
              f"{q['push_cpu_s'] / max(d['push_cpu_s'], 0.01):.2f}× / "
              f"{q['pull_cpu_s'] / max(d['pull_cpu_s'], 0.01):.2f}× |")
    if len(runs) > len(s):
        print("\nEvery run (position: first or second in its round):\n")
        print("| round | position | server | push s | pull s | peak RSS push / pull MB |")
        print("|---:|---:|---|---:|---:|---:|")
        for r in runs:
            print(f"| {r['round']} | {r['position']} | {r['server']} | {r['push_s']:.2f} | "
                  f"{r['pull_s']:.2f} | {r['push_rss_mb']:.1f} / {r['pull_rss_mb']:.1f} |")
    if q and targets:
        print("\n| target | measured | |\n|---|---|---|")
        for what, value, ok in targets(q, d):
            print(f"| {what} | {value} | {'met' if ok else 'missed'} |")


def single_targets(q, d):
    out = []
    if d:
        for step in ("push", "pull"):
            ratio = q[f"{step}_s"] / d[f"{step}_s"]
            out.append((f"{step} time ≤ distribution's (aim 0.7×)",
                        f"{q[f'{step}_s']:.2f} s against {d[f'{step}_s']:.2f} s: {ratio:.3f}×"
                        + (" (aim met)" if ratio <= 0.7 else ""), ratio <= 1))
    peak = q["peak_rss_mb"]
    out.append(("peak RSS < 96 MB (aim 64 MB)", f"{peak:.1f} MB" + (" (aim met)" if peak < 64 else ""),
                peak < 96))
    return out


def concurrent_targets(q, d):
    return [("peak RSS < 256 MB", f"{q['peak_rss_mb']:.1f} MB", q["peak_rss_mb"] < 256)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=1,
                   help="measure each server this many times, the order alternating; report medians")
    p.add_argument("--layer-mib", type=int, default=1100, help="the layer of the single-image measurement")
    p.add_argument("--concurrent", type=int, default=4, help="images pushed and pulled at once")
    p.add_argument("--concurrent-mib", type=int, default=1024, help="the layer of each concurrent image")
    p.add_argument("--skip-concurrent", action="store_true", help="only the single-image measurement")
    p.add_argument("--skip-single", action="store_true", help="only the concurrent measurement")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list of quayside, distribution")
    p.add_argument("--no-build", action="store_true", help="use target/release/registry-local as it is")
    p.add_argument("--quayside-bin", default=str(ROOT / "target/release/registry-local"))
    p.add_argument("--distribution-bin", default="/work/shared/tools/bin/registry3")
    p.add_argument("--work-dir", default=None, help="where the temporary folder goes (default: $TMPDIR)")
    p.add_argument("--source-dir", default=None,
                   help="where the generated OCI layouts go (default: the work folder); e.g. /dev/shm "
                        "when the disk is short")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    if unknown := set(servers) - set(SERVERS):
        raise SystemExit(f"unknown servers {unknown}")
    if args.layer_mib <= 0 or args.concurrent_mib <= 0 or args.concurrent <= 0:
        raise SystemExit("sizes and counts must be positive")

    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is missing (apt-get install skopeo)")
    if "distribution" in servers and not os.access(args.distribution_bin, os.X_OK):
        raise SystemExit(f"{args.distribution_bin}: not an executable (see --distribution-bin)")
    if "quayside" in servers and not args.no_build:
        run(["cargo", "build", "--release", "-p", "registry-local", "--bin", "registry-local"], cwd=ROOT)

    single = not args.skip_single
    concurrent = not args.skip_concurrent
    # One measurement at a time: its sources, and the server's copy plus either the parts of
    # an upload being joined (registry-local) or the pulled copy. 1 GiB to spare everywhere.
    largest = MiB * max(args.layer_mib if single else 0,
                        args.concurrent * args.concurrent_mib if concurrent else 0)
    parent = Path(args.work_dir or tempfile.gettempdir())
    sources = Path(args.source_dir) if args.source_dir else None
    needs = {parent: 2 * largest}
    if sources is None or os.stat(sources).st_dev == os.stat(parent).st_dev:
        needs[parent] += largest
    else:
        needs[sources] = largest
    for folder, need in needs.items():
        free = shutil.disk_usage(folder).free
        log(f"disk: {free / 2**30:.1f} GiB free under {folder}, about {need / 2**30:.1f} GiB needed there")
        if free < need + 2**30:
            raise SystemExit(f"not enough free disk under {folder}: {free / 2**30:.1f} GiB free, "
                             f"{(need + 2**30) / 2**30:.1f} GiB wanted (--work-dir or --source-dir "
                             "elsewhere, or smaller sizes)")

    def on_signal(signum, _frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    work = Path(tempfile.mkdtemp(prefix="quayside-blobs-", dir=parent))
    source_work = Path(tempfile.mkdtemp(prefix="quayside-blobs-src-", dir=sources)) if sources else work
    results = {}
    try:
        if "quayside" in servers:
            # A copy: another build may replace target/release/registry-local during the run.
            binary = work / "registry-local"
            shutil.copy2(args.quayside_bin, binary)
            log(f"registry-local: {args.quayside_bin} ({time.ctime(os.path.getmtime(args.quayside_bin))})")
            args.quayside_bin = str(binary)
        before = loadavg()
        log(f"load average before: {' '.join(before)}")
        if single:
            images = make_layouts(source_work, "single", [args.layer_mib], seed0=1100)
            results["single"] = rounds("single", args, work, images, ["bench/big"], servers)
            for img in images:
                shutil.rmtree(img["dir"])
        if concurrent:
            images = make_layouts(source_work, "concurrent", [args.concurrent_mib] * args.concurrent, seed0=2000)
            repos = [f"bench/concurrent-{i}" for i in range(args.concurrent)]
            results["concurrent"] = rounds("concurrent", args, work, images, repos, servers)
            for img in images:
                shutil.rmtree(img["dir"])
        after = loadavg()
        log(f"load average after: {' '.join(after)}")
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(source_work, ignore_errors=True)

    m = machine()
    skopeo = tool_version(["skopeo", "--version"])
    print(f"\n{m['nproc']} cores, {m['cpu']}, {m['memory_gib']} GiB; {skopeo}; distribution v3.1.1 "
          f"(filesystem storage, in-memory blob descriptor cache); {args.rounds} round(s), medians "
          f"(RSS: the largest); load average {' '.join(before)} before, {' '.join(after)} after")
    if "single" in results:
        print_tables(f"One image, one {args.layer_mib} MiB random layer (uncompressed tar), skopeo push "
                     "then pull:", results["single"], servers, single_targets)
    if "concurrent" in results:
        print_tables(f"{args.concurrent} images at once, each one {args.concurrent_mib} MiB random layer, "
                     f"{args.concurrent} skopeo pushes to different repositories, then {args.concurrent} "
                     "pulls (wall time of all; MB/s of all bytes):",
                     results["concurrent"], servers, concurrent_targets)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": m, "skopeo": skopeo, "rounds": args.rounds, "layer_mib": args.layer_mib,
            "concurrent": args.concurrent, "concurrent_mib": args.concurrent_mib,
            "loadavg_before": before, "loadavg_after": after,
            "results": {k: {"runs": v, "summary": summary(v, servers)} for k, v in results.items()},
        }, indent=2))


if __name__ == "__main__":
    main()
