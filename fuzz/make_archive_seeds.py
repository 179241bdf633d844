#!/usr/bin/env python3
"""Writes seed inputs for the `archive` fuzz target into the directory given.

Each seed is one flag byte and an archive: flag 0 and a .tar.gz (fed as it is), or
flag 1 and a plain .tar (the target wraps it in gzip). The archives cover what the
upload check must tell apart: files, directories, links inside and outside the
tree, GNU long names, pax headers, devices, pipes and `..` paths.
"""
import gzip
import io
import os
import sys
import tarfile


def member(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


ARCHIVES = {
    "good": [
        member("Dockerfile", data=b"FROM alpine\nCOPY . /app\n"),
        member("app", tarfile.DIRTYPE, mode=0o755),
        member("app/run.sh", data=b"#!/bin/sh\necho hi\n", mode=0o4755),
        member("app/link", tarfile.SYMTYPE, link="run.sh"),
        member("app/hard", tarfile.LNKTYPE, link="app/run.sh"),
        member("./", tarfile.DIRTYPE),
    ],
    "long-names": [
        member("d" * 120 + "/" + "f" * 120, data=b"x"),
        member("l" * 150, tarfile.SYMTYPE, link="t" * 150),
    ],
    "escapes": [
        member("a/../../x", data=b"x"),
        member("/etc/passwd", data=b"x"),
        member("up", tarfile.SYMTYPE, link="../.."),
        member("abs", tarfile.SYMTYPE, link="/etc"),
        member("hl", tarfile.LNKTYPE, link="../x"),
    ],
    "link-chain": [
        member("a", tarfile.SYMTYPE, link="."),
        member("a/b", tarfile.SYMTYPE, link=".."),
        member("a/b/c", tarfile.SYMTYPE, link=".."),
        member("p", tarfile.SYMTYPE, link="q/r"),
        member("q", tarfile.DIRTYPE),
        member("q/r", tarfile.DIRTYPE),
        member("loop1", tarfile.SYMTYPE, link="loop2"),
        member("loop2", tarfile.SYMTYPE, link="loop1"),
    ],
    "special": [
        member("dev", tarfile.CHRTYPE),
        member("blk", tarfile.BLKTYPE),
        member("fifo", tarfile.FIFOTYPE),
    ],
    "empty": [],
}


def tar_bytes(members, fmt):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    # Drop tarfile's padding to a 10 KiB record: two zero blocks end an archive.
    body = out.getvalue().rstrip(b"\0")
    body += b"\0" * (-len(body) % 512)
    return body + b"\0" * 1024


def main():
    into = sys.argv[1]
    os.makedirs(into, exist_ok=True)
    formats = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT, "ustar": tarfile.USTAR_FORMAT}
    for name, members in ARCHIVES.items():
        for fname, fmt in formats.items():
            try:
                raw = tar_bytes(members, fmt)
            except ValueError:  # ustar cannot hold long names
                continue
            with open(os.path.join(into, f"{name}-{fname}.tgz"), "wb") as f:
                f.write(b"\x00" + gzip.compress(raw, mtime=0))
            with open(os.path.join(into, f"{name}-{fname}.tar"), "wb") as f:
                f.write(b"\x01" + raw)


if __name__ == "__main__":
    main()
