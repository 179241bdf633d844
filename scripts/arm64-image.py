#!/usr/bin/env python3
"""Writes a `docker load` archive of an image for another architecture.

usage: arm64-image.py ROOTFS_DIR TAG ARCH OUT.tar

`docker import --platform` on engine 20.10 still records amd64; an archive whose
config names the architecture loads as that architecture. The image has PATH=/bin and
`sh` as its command, like the amd64 base image the test bed imports.
"""
import hashlib, io, json, os, sys, tarfile

root, tag, arch, out = sys.argv[1:5]
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.GNU_FORMAT) as t:
    t.add(root, arcname=".", recursive=True)
layer_bytes = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
config = {
    "architecture": arch,
    "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created_by": "slipway test bed: busybox-static for " + arch}],
}
config_bytes = json.dumps(config).encode()
config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
manifest = [{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]
with tarfile.open(out, mode="w") as t:
    for name, data in [("layer.tar", layer_bytes), (config_name, config_bytes), ("manifest.json", json.dumps(manifest).encode())]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
