#!/usr/bin/env python3
"""A neutral reader of the registry for tests/clients: what a client pushed, as the registry
serves it, checked with nothing but the distribution API (Python's standard library).

    reg.py COMMAND REPO REF-OR-DIGEST

with REG_ADDR (host:port), REG_USER and REG_PASS in the environment (token auth: the
challenge's realm is asked with HTTP Basic, as every client does). Commands:

    digest REPO REF      the manifest's digest: Docker-Content-Digest, checked against the
                         body's sha256; exit 3 when the registry answers 404
    platforms REPO REF   an index or list: one line per child, `os/arch digest`
    layers REPO REF      the layer digests of a manifest (of every child, for an index)
    cat REPO REF FILE    the bytes of FILE in the image's layers (an oras artifact's layer
                         is the file itself), each blob checked against its digest

Every other answer is an error (exit 1) that names the request, status and body.
"""
import base64
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

ADDR = os.environ["REG_ADDR"]
AUTH = base64.b64encode(f"{os.environ.get('REG_USER', '')}:{os.environ.get('REG_PASS', '')}".encode()).decode()
ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
tokens = {}


class Redirect(urllib.request.HTTPRedirectHandler):
    """Follows a blob's redirect (to S3 on AWS) without the registry's token, as clients do."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
        return new


opener = urllib.request.build_opener(Redirect())


class NotFound(Exception):
    pass


def fail(msg):
    print(f"reg.py: {msg}", file=sys.stderr)
    sys.exit(1)


def token(challenge):
    params = {}
    for part in challenge[len("Bearer "):].split(","):
        k, _, v = part.strip().partition("=")
        params[k] = v.strip('"')
    realm = params.pop("realm")
    params.pop("error", None)
    url = realm + "?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, headers={"Authorization": f"Basic {AUTH}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        fail(f"GET {url}: {e.code} {e.read()[:500]!r}")
    return body.get("token") or body["access_token"]


def get(path, accept=None, method="GET"):
    """GET (or HEAD) http://ADDR/v2/PATH: (headers, body); NotFound on 404."""
    url = f"http://{ADDR}/v2/{path}"
    for attempt in range(2):
        headers = {}
        if accept:
            headers["Accept"] = accept
        if "bearer" in tokens:
            headers["Authorization"] = f"Bearer {tokens['bearer']}"
        req = urllib.request.Request(url, headers=headers, method=method)
        try:
            with opener.open(req, timeout=60) as r:
                return r.headers, r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code == 401 and attempt == 0 and e.headers.get("WWW-Authenticate", "").startswith("Bearer "):
                tokens["bearer"] = token(e.headers["WWW-Authenticate"])
                continue
            if e.code == 404:
                raise NotFound(f"{method} {url}: 404 {body[:300]!r}")
            fail(f"{method} {url}: {e.code} {body[:500]!r}")
    fail(f"GET {url}: still 401 with a token")


def manifest(repo, ref):
    headers, body = get(f"{repo}/manifests/{ref}", ACCEPT)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    header = headers.get("Docker-Content-Digest")
    if header and header != digest:
        fail(f"GET {repo}/manifests/{ref}: Docker-Content-Digest {header}, body is {digest}")
    if ref.startswith("sha256:") and ref != digest:
        fail(f"GET {repo}/manifests/{ref}: the body is {digest}")
    return digest, json.loads(body)


def blob(repo, digest):
    _, body = get(f"{repo}/blobs/{digest}")
    got = "sha256:" + hashlib.sha256(body).hexdigest()
    if got != digest:
        fail(f"GET {repo}/blobs/{digest}: the body is {got}")
    return body


def images(repo, ref):
    digest, m = manifest(repo, ref)
    if "manifests" in m:
        return [manifest(repo, child["digest"])[1] for child in m["manifests"]]
    return [m]


def main():
    cmd, repo, ref = sys.argv[1:4]
    tokens.clear()
    try:
        if cmd == "digest":
            print(manifest(repo, ref)[0])
        elif cmd == "platforms":
            _, m = manifest(repo, ref)
            if "manifests" not in m:
                fail(f"{repo}:{ref} is not an index: {m.get('mediaType')}")
            for child in m["manifests"]:
                p = child.get("platform", {})
                print(f"{p.get('os')}/{p.get('architecture')} {child['digest']}")
        elif cmd == "layers":
            for image in images(repo, ref):
                for layer in image["layers"]:
                    print(layer["digest"])
        elif cmd == "cat":
            want = sys.argv[4].lstrip("/")
            for image in images(repo, ref):
                for layer in image["layers"]:
                    data = blob(repo, layer["digest"])
                    if data[:2] == b"\x1f\x8b":
                        data = gzip.decompress(data)
                    try:
                        with tarfile.open(fileobj=io.BytesIO(data)) as t:
                            for member in t.getmembers():
                                if member.name.lstrip("./") == want:
                                    sys.stdout.buffer.write(t.extractfile(member).read())
                                    return
                    except tarfile.TarError:
                        if layer.get("annotations", {}).get("org.opencontainers.image.title") == want:
                            sys.stdout.buffer.write(data)
                            return
            fail(f"{repo}:{ref} has no {want}")
        else:
            fail(f"unknown command {cmd}")
    except NotFound as e:
        print(f"reg.py: {e}", file=sys.stderr)
        sys.exit(3)


main()
