"""tests/upload-service-image's assembly: the OCI layout it writes is valid (every digest
and size right, skopeo reads it), its entrypoint is the binary, and the binary taken out of
the layer starts and answers the load balancer's health check.

Uses target/debug/upload-service, which tests/run builds, gzipped fast (the static release
build for Fargate is the same assembly of another binary).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.machinery
import importlib.util
import io
import json
import os
import socket
import subprocess
import tarfile
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "tests" / "upload-service-image"
BINARY = ROOT / "target" / "debug" / "upload-service"


def load_script():
    loader = importlib.machinery.SourceFileLoader("upload_service_image", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def blob(layout: Path, descriptor: dict) -> bytes:
    algorithm, hexd = descriptor["digest"].split(":")
    data = (layout / "blobs" / algorithm / hexd).read_bytes()
    assert hashlib.sha256(data).hexdigest() == hexd, descriptor["digest"]
    assert len(data) == descriptor["size"], descriptor
    return data


class ImageAssembly(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if not BINARY.exists():
            raise AssertionError(f"{BINARY} is missing: tests/run builds it first")
        cls.tmp = tempfile.TemporaryDirectory()
        cls.layout = Path(cls.tmp.name) / "layout"
        cls.digest = load_script().assemble(BINARY, cls.layout, "amd64", "v1", level=1)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.tmp.cleanup()

    def manifest(self) -> dict:
        index = json.loads((self.layout / "index.json").read_text())
        [entry] = index["manifests"]
        self.assertEqual(entry["annotations"]["org.opencontainers.image.ref.name"], "v1")
        self.assertEqual(entry["digest"], self.digest)
        self.assertEqual(entry["platform"], {"architecture": "amd64", "os": "linux"})
        return json.loads(blob(self.layout, entry))

    def test_a_valid_layout_that_skopeo_reads(self) -> None:
        self.assertEqual(json.loads((self.layout / "oci-layout").read_text()), {"imageLayoutVersion": "1.0.0"})
        manifest = self.manifest()
        config = json.loads(blob(self.layout, manifest["config"]))
        [layer] = manifest["layers"]
        raw = gzip.decompress(blob(self.layout, layer))
        self.assertEqual(config["rootfs"]["diff_ids"], [f"sha256:{hashlib.sha256(raw).hexdigest()}"])
        out = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{self.layout}:v1"], capture_output=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(hashlib.sha256(out.stdout).hexdigest(), self.digest.split(":")[1])

    def test_the_entrypoint_is_the_binary_and_it_starts(self) -> None:
        manifest = self.manifest()
        config = json.loads(blob(self.layout, manifest["config"]))
        self.assertEqual(config["config"]["Entrypoint"], ["/upload-service"])
        self.assertEqual(config["config"]["ExposedPorts"], {"8080/tcp": {}})
        raw = gzip.decompress(blob(self.layout, manifest["layers"][0]))
        root = Path(self.tmp.name) / "rootfs"
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            names = tar.getnames()
            self.assertIn("upload-service", names)
            self.assertIn("etc/ssl/certs/ca-certificates.crt", names)
            self.assertEqual(tar.getmember("upload-service").mode, 0o755)
            tar.extractall(root, filter="tar")
        entrypoint = root / config["config"]["Entrypoint"][0].lstrip("/")
        self.assertEqual(entrypoint.read_bytes(), BINARY.read_bytes())
        # It starts, and answers the health check, with no AWS call made yet.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "QUAYSIDE_ADDR": f"127.0.0.1:{port}",
               "SSL_CERT_FILE": str(root / "etc/ssl/certs/ca-certificates.crt")}
        proc = subprocess.Popen([str(entrypoint)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        self.assertEqual((r.status, r.read()), (200, b"ok\n"))
                    break
                except OSError:
                    self.assertIsNone(proc.poll(), "the binary exited")
                    self.assertLess(time.monotonic(), deadline, "no health check answer")
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    def test_the_assembly_is_reproducible(self) -> None:
        again = Path(self.tmp.name) / "again"
        self.assertEqual(load_script().assemble(BINARY, again, "amd64", "v1", level=1), self.digest)


if __name__ == "__main__":
    unittest.main()
