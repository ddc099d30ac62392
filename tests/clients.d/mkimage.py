#!/usr/bin/env python3
"""Makes small images from scratch, for tests/clients (no internet: nothing is pulled).

    mkimage.py OUT NONCE [--big-mib N [--big-formats docker,oci]]

writes, for linux/amd64 and linux/arm64, one image each whose only layer holds `hello.txt`
("quayside <NONCE> <platform>"), so that every client and target pushes bytes no other run
pushed:

    OUT/hello-<arch>.txt          the file, alone (oras pushes it, buildah copies it)
    OUT/layout/                   an OCI image layout (regctl): tags `amd64`, `arm64`, `multi`
                                  (an OCI index of both)
    OUT/oci-<arch>.tar            a one-image OCI layout archive tagged `<arch>` (ctr, podman)
    OUT/oci-multi.tar             the layout as an archive, the index tagged `multi` (ctr import)
    OUT/docker-<arch>.tar         a `docker save` archive of the image (docker load, crane
                                  push), its RepoTags `clients/hello:<arch>`
    OUT/digests.json              the manifests' digests in the layout: amd64, arm64, multi

With --big-mib N, also a linux/amd64 image whose one layer holds `hello.txt` ("quayside <NONCE>
big") and `big.bin`, N MiB of random bytes (incompressible: the blob is N MiB gzipped too), for
the clients' 300 MiB push through the deployment's upload service. Written as it is made, a MiB
at a time (never the whole layer in memory), its digests computed on the way; only the formats
asked for (--big-formats, both by default):

    OUT/big/docker.tar            docker: a `docker save` archive, RepoTags `clients/big:amd64`
                                  (the layer uncompressed, as docker saves it: docker gzips it
                                  when pushing)
    OUT/big/oci.tar               oci: an OCI layout archive, the image tagged `big`, its layer
                                  gzipped at level 1 (ctr import, podman pull oci-archive:)
    OUT/big/hello.txt             the small file, alone
    OUT/big/digests.json          diff_id (the uncompressed layer's digest, the same in both
                                  formats) and layer_size; with oci, also manifest, layer (the
                                  gzipped blob's digest) and blob_size
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
import zlib

parser = argparse.ArgumentParser(description="Makes small images from scratch, for tests/clients.")
parser.add_argument("out")
parser.add_argument("nonce")
parser.add_argument("--big-mib", type=int, default=0, help="also the big image, its layer N MiB")
parser.add_argument("--big-formats", default="docker,oci", help="docker, oci or both (docker,oci)")
args = parser.parse_args()
out, nonce = args.out, args.nonce
os.makedirs(f"{out}/layout/blobs/sha256", exist_ok=True)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def blob(data):
    """Writes data into the layout; answers its descriptor's digest and size."""
    hexd = sha(data)
    with open(f"{out}/layout/blobs/sha256/{hexd}", "wb") as f:
        f.write(data)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def tar_of(files):
    """An uncompressed tar of {name: bytes}, deterministic."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def archive(path, files):
    with open(path, "wb") as f:
        f.write(tar_of(files))


def layout_files(index):
    """The files of an OCI layout holding `index` and every blob in the layout folder."""
    files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
             "index.json": json.dumps(index).encode()}
    for name in sorted(os.listdir(f"{out}/layout/blobs/sha256")):
        with open(f"{out}/layout/blobs/sha256/{name}", "rb") as f:
            files[f"blobs/sha256/{name}"] = f.read()
    return files


images = {}
for arch in ("amd64", "arm64"):
    text = f"quayside {nonce} linux/{arch}\n".encode()
    with open(f"{out}/hello-{arch}.txt", "wb") as f:
        f.write(text)
    layer = tar_of({"hello.txt": text})
    gz = gzip.compress(layer, mtime=0)
    config = json.dumps({
        "architecture": arch,
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(layer)}"]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "tests/clients"}],
    }, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **blob(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **blob(gz)}],
    }, separators=(",", ":")).encode()
    images[arch] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **blob(manifest),
        "platform": {"architecture": arch, "os": "linux"},
    }
    archive(f"{out}/docker-{arch}.tar", {
        f"{sha(config)}.json": config,
        f"{sha(layer)}/layer.tar": layer,
        "manifest.json": json.dumps([{
            "Config": f"{sha(config)}.json",
            "RepoTags": [f"clients/hello:{arch}"],
            "Layers": [f"{sha(layer)}/layer.tar"],
        }]).encode(),
    })

index = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [images["amd64"], images["arm64"]],
}, separators=(",", ":")).encode()
multi = {"mediaType": "application/vnd.oci.image.index.v1+json", **blob(index)}


def tagged(desc, tag):
    return {**desc, "annotations": {"org.opencontainers.image.ref.name": tag}}


top = {"schemaVersion": 2, "manifests": [tagged(images["amd64"], "amd64"),
                                         tagged(images["arm64"], "arm64"),
                                         tagged(multi, "multi")]}
for name, data in layout_files(top).items():
    if "/" not in name:
        with open(f"{out}/layout/{name}", "wb") as f:
            f.write(data)
for arch in ("amd64", "arm64"):
    archive(f"{out}/oci-{arch}.tar",
            layout_files({"schemaVersion": 2, "manifests": [tagged(images[arch], arch)]}))
archive(f"{out}/oci-multi.tar", layout_files({"schemaVersion": 2, "manifests": [tagged(multi, "multi")]}))
json.dump({"amd64": images["amd64"]["digest"], "arm64": images["arm64"]["digest"],
           "multi": multi["digest"]}, open(f"{out}/digests.json", "w"))


# --- The big image (--big-mib) ----------------------------------------------------------------
MIB = 1 << 20
BLOCK = tarfile.BLOCKSIZE


def header(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padding(size):
    return b"\0" * (-size % BLOCK)


class Archive:
    """A tar written as it goes: small members whole, a big one streamed; the end as tarfile
    writes it (two zero blocks, then zeros to a whole record)."""

    def __init__(self, path):
        self.f = open(path, "wb")

    def add(self, name, data):
        self.f.write(header(name, len(data)) + data + padding(len(data)))

    def begin(self, name=None, size=None):
        """Starts a streamed member: its header now when its name and size are known, else a
        placeholder that end() fills in."""
        self.at = self.f.tell()
        self.f.write(header(name, size) if name else b"\0" * BLOCK)
        self.written = 0

    def write(self, data):
        self.f.write(data)
        self.written += len(data)

    def end(self, name=None):
        self.f.write(padding(self.written))
        if name:
            self.f.seek(self.at)
            self.f.write(header(name, self.written))
            self.f.seek(0, os.SEEK_END)

    def close(self):
        self.f.write(b"\0" * (2 * BLOCK))
        self.f.write(b"\0" * (-self.f.tell() % tarfile.RECORDSIZE))
        self.f.close()


def big_layer(hello, mib):
    """The layer's tar, a piece at a time: hello.txt, then big.bin (mib MiB from os.urandom);
    and its size, known beforehand."""
    size = BLOCK + len(hello) + len(padding(len(hello))) + BLOCK + mib * MIB + 2 * BLOCK

    def pieces():
        yield header("hello.txt", len(hello)) + hello + padding(len(hello))
        yield header("big.bin", mib * MIB)
        for _ in range(mib):
            yield os.urandom(MIB)
        yield b"\0" * (2 * BLOCK)

    return size, pieces()


def big(mib, formats):
    os.makedirs(f"{out}/big", exist_ok=True)
    hello = f"quayside {nonce} big\n".encode()
    with open(f"{out}/big/hello.txt", "wb") as f:
        f.write(hello)
    layer_size, pieces = big_layer(hello, mib)
    diff = hashlib.sha256()
    docker = oci = None
    if "docker" in formats:
        docker = Archive(f"{out}/big/docker.tar")
        docker.begin("big/layer.tar", layer_size)
    if "oci" in formats:
        oci = Archive(f"{out}/big/oci.tar")
        oci.add("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        oci.begin()  # blobs/sha256/<the gzipped layer's digest>, known at its end
        gz = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip -1, no name, mtime 0
        blob = hashlib.sha256()
    total = 0
    for piece in pieces:
        total += len(piece)
        diff.update(piece)
        if docker:
            docker.write(piece)
        if oci:
            data = gz.compress(piece)
            blob.update(data)
            oci.write(data)
    assert total == layer_size, (total, layer_size)
    diff_id = f"sha256:{diff.hexdigest()}"
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "tests/clients --big-mib"}],
    }, separators=(",", ":")).encode()
    digests = {"diff_id": diff_id, "layer_size": layer_size}
    if docker:
        docker.end()
        docker.add(f"{sha(config)}.json", config)
        docker.add("manifest.json", json.dumps([{
            "Config": f"{sha(config)}.json",
            "RepoTags": ["clients/big:amd64"],
            "Layers": ["big/layer.tar"],
        }]).encode())
        docker.close()
    if oci:
        data = gz.flush()
        blob.update(data)
        oci.write(data)
        layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                 "digest": f"sha256:{blob.hexdigest()}", "size": oci.written}
        oci.end(f"blobs/sha256/{blob.hexdigest()}")
        oci.add(f"blobs/sha256/{sha(config)}", config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{sha(config)}", "size": len(config)},
            "layers": [layer],
        }, separators=(",", ":")).encode()
        oci.add(f"blobs/sha256/{sha(manifest)}", manifest)
        oci.add("index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{sha(manifest)}", "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": "big"},
        }]}).encode())
        oci.close()
        digests.update({"manifest": f"sha256:{sha(manifest)}", "layer": layer["digest"],
                        "blob_size": layer["size"]})
    with open(f"{out}/big/digests.json", "w") as f:
        json.dump(digests, f)


if args.big_mib:
    formats = set(args.big_formats.split(","))
    if not formats or formats - {"docker", "oci"}:
        parser.error(f"--big-formats: docker, oci or both, not {args.big_formats!r}")
    big(args.big_mib, formats)
