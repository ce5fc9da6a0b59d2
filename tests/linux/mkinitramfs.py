#!/usr/bin/env python3
"""Packs the test initramfs: busybox-static and tests/linux/init.sh as /init,
in the cpio "newc" format, gzip-compressed. Needs no cpio tool and no root
(device nodes are written straight into the archive).

Usage: mkinitramfs.py <busybox-binary> <init-script> <output.cpio.gz>
                      [<file>:<path in archive> ...]

Each extra <file>:<path> is added as a regular file (mode 0644) at <path>,
with its parent directories, e.g. build/linux/tracemgr.ko:lib/modules/tracemgr.ko.
"""
import gzip
import os
import sys


def entry(ino, name, mode, data=b"", rdev=(0, 0), nlink=1):
    hdr = "070701" + "".join(
        f"{v:08x}"
        for v in (
            ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
            len(name) + 1, 0,
        )
    )
    out = hdr.encode() + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def main():
    busybox, init, dest = sys.argv[1:4]
    files = [
        ("bin", 0o040755, b"", (0, 0)),
        ("dev", 0o040755, b"", (0, 0)),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("dev/null", 0o020666, b"", (1, 3)),
        ("proc", 0o040755, b"", (0, 0)),
        ("sys", 0o040755, b"", (0, 0)),
        ("tmp", 0o041777, b"", (0, 0)),
        ("bin/busybox", 0o100755, open(busybox, "rb").read(), (0, 0)),
        ("bin/sh", 0o120777, b"busybox", (0, 0)),
        ("init", 0o100755, open(init, "rb").read(), (0, 0)),
    ]
    for extra in sys.argv[4:]:
        src, path = extra.rsplit(":", 1)
        path = path.strip("/")
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if all(f[0] != d for f in files):
                files.append((d, 0o040755, b"", (0, 0)))
        files.append((path, 0o100644, open(src, "rb").read(), (0, 0)))
    blob = b""
    for ino, (name, mode, data, rdev) in enumerate(files, start=1):
        blob += entry(ino, name, mode, data, rdev, 2 if mode & 0o040000 else 1)
    blob += entry(0, "TRAILER!!!", 0)
    tmp = dest + ".tmp"
    with gzip.open(tmp, "wb", compresslevel=6) as f:
        f.write(blob)
    os.replace(tmp, dest)


if __name__ == "__main__":
    main()
