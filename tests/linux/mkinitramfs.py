#!/usr/bin/env python3
"""Packs the test initramfs: busybox-static and tests/linux/init.sh as /init,
in the cpio "newc" format, uncompressed (output.cpio) or gzip-compressed
(output.cpio.gz). Needs no cpio tool and no root (device nodes are written
straight into the archive; every entry is owned by root).

Usage: mkinitramfs.py <busybox-binary> <init-script> <output.cpio[.gz]>
                      [<file or directory>:<path in archive> ...]

Each extra <file>:<path> is added as a regular file at <path>, with its
parent directories, e.g. build/linux/tracemgr.ko:lib/modules/tracemgr.ko;
it keeps its executable bits (mode 0755 if the file is executable, else
0644). A <directory>:<path> adds the whole tree under <path> ("/" for the
archive's root), e.g. build/linux/perf-root:/ : directories, files with
their permission bits, symbolic links as links; documentation, manual
pages and locales (usr/share/{doc,man,info,locale}) are left out.

The Linux guest's initramfs is uncompressed: with perf in it (31 MB, 11 MB
gzipped), inflating it cost the cloud kernel 3.3 s of guest time (-icount
shift=3) before /init; unpacking the plain archive costs 0.6 s.
"""
import gzip
import os
import stat
import sys

# Trees inside a directory argument that the guest never needs.
SKIPPED = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


class Archive:
    def __init__(self, out):
        self.out = out
        self.ino = 0
        self.names = {}  # path -> mode, to add each directory once
        self.bytes = 0

    def entry(self, name, mode, data=b"", rdev=(0, 0)):
        if name in self.names:
            if stat.S_ISDIR(mode) and stat.S_ISDIR(self.names[name]):
                return
            raise SystemExit(f"mkinitramfs: {name} is in the archive twice")
        self.names[name] = mode
        self.ino += 1
        nlink = 2 if stat.S_ISDIR(mode) else 1
        fields = (self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(name) + 1, 0)
        hdr = ("070701" + "".join(f"{v:08x}" for v in fields)).encode()
        out = hdr + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4)
        self.write(out)
        self.write(data)
        self.write(b"\0" * (-len(data) % 4))

    def write(self, b):
        self.out.write(b)
        self.bytes += len(b)

    def parents(self, path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.entry("/".join(parts[:i]), 0o040755)

    def file(self, src, path):
        self.parents(path)
        perm = 0o755 if os.access(src, os.X_OK) else 0o644
        with open(src, "rb") as f:
            self.entry(path, stat.S_IFREG | perm, f.read())

    def tree(self, src, dest):
        dest = dest.strip("/")
        if dest:
            self.parents(dest + "/x")
        for top, dirs, files in os.walk(src):
            rel = os.path.relpath(top, src)
            rel = "" if rel == "." else rel
            # Skipped trees are not walked; links to directories are
            # added as links, not followed.
            keep = []
            for d in sorted(dirs):
                r = os.path.join(rel, d)
                if r in SKIPPED:
                    continue
                if os.path.islink(os.path.join(top, d)):
                    files.append(d)
                else:
                    keep.append(d)
            dirs[:] = keep
            for name in sorted(dirs) + sorted(files):
                full = os.path.join(top, name)
                path = "/".join(p for p in (dest, rel, name) if p)
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    self.entry(path, 0o120777, os.readlink(full).encode())
                elif stat.S_ISDIR(st.st_mode):
                    self.entry(path, stat.S_IFDIR | 0o755)
                elif stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        self.entry(path, stat.S_IFREG | (st.st_mode & 0o7777), f.read())
                else:
                    raise SystemExit(f"mkinitramfs: {full} is neither a file, a directory nor a link")


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    busybox, init, dest = sys.argv[1:4]
    tmp = dest + ".tmp"
    if dest.endswith(".gz"):
        sink = gzip.open(tmp, "wb", compresslevel=6)
    else:
        sink = open(tmp, "wb")
    with sink as out:
        a = Archive(out)
        for d in ("bin", "dev", "proc", "sys"):
            a.entry(d, 0o040755)
        a.entry("tmp", 0o041777)
        a.entry("dev/console", 0o020600, rdev=(5, 1))
        a.entry("dev/null", 0o020666, rdev=(1, 3))
        with open(busybox, "rb") as f:
            a.entry("bin/busybox", 0o100755, f.read())
        a.entry("bin/sh", 0o120777, b"busybox")
        with open(init, "rb") as f:
            a.entry("init", 0o100755, f.read())
        for extra in sys.argv[4:]:
            src, path = extra.rsplit(":", 1)
            if os.path.isdir(src):
                a.tree(src, path)
            else:
                a.file(src, path.strip("/"))
        a.entry("TRAILER!!!", 0)
    os.replace(tmp, dest)
    print(f"mkinitramfs: {dest}: {len(a.names)} entries, {a.bytes} bytes, "
          f"{os.path.getsize(dest)} compressed")


if __name__ == "__main__":
    main()
