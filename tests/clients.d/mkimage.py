#!/usr/bin/env python3
"""Makes small images from scratch, for tests/clients (no internet: nothing is pulled).

    mkimage.py OUT NONCE

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
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

out, nonce = sys.argv[1], sys.argv[2]
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
