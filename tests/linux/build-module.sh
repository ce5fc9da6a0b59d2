#!/bin/sh
# Builds the tracemgr kernel modules (guest-api/linux/) for the Debian arm64
# cloud kernel that fetch.sh fetched, on this (x86-64 or arm64) machine.
#
# Through the same project-local apt state as fetch.sh (build/linux/apt; the
# host's apt configuration is not touched) it downloads, at exactly the
# kernel's package version:
#   linux-headers-<kver>:arm64         (the flavour's headers, Module.symvers)
#   linux-headers-<abi>-common:all     (the common headers)
#   linux-kbuild-6.1:<host arch>       (Kbuild's host tools, run on this machine)
# extracts them under build/linux/headers/, points the headers' `scripts` and
# `tools` links at the extracted kbuild, and runs
#   make -C <headers> M=<module dir> ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-
# The modules are copied to build/linux/tracemgr.ko and tracemgr_cs.ko (which
# needs the kernel's coresight.ko loaded first). Needs aarch64-linux-gnu-gcc
# (Debian: apt-get install gcc-aarch64-linux-gnu) unless the host is arm64.
# Idempotent: skips downloads and extraction already done.
#
# Usage: tests/linux/build-module.sh [build-dir]   (default: build/linux)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/linux}
mkdir -p "$out"
out=$(cd "$out" && pwd)
apt=$out/apt
src=$root/guest-api/linux

"$root/tests/linux/fetch.sh" "$out"
kver=$(cat "$out/kernel/version")                  # e.g. 6.1.0-56-cloud-arm64
abi=$(echo "$kver" | sed 's/-\(cloud-\)\{0,1\}arm64$//')  # e.g. 6.1.0-56
kdeb=$(ls "$out/debs/linux-image-${kver}"_*_arm64.deb | head -1)
pver=$(basename "$kdeb" | sed 's/^[^_]*_\(.*\)_arm64\.deb$/\1/')   # e.g. 6.1.192-2
series=$(echo "$abi" | cut -d. -f1,2)                # e.g. 6.1
host=$(dpkg --print-architecture)
echo "build-module: kernel $kver, package version $pver, kbuild for $host"

hdr=$out/headers
if [ ! -f "$hdr/.done-$pver" ]; then
    # The same apt state as fetch.sh, with the host architecture added to
    # the sources (linux-kbuild runs on the build machine).
    . "$root/tests/linux/apt-env.sh"
    archs=arm64
    [ "$host" = arm64 ] || archs=arm64,$host
    apt_env "$apt" "$archs"
    apt_update_for "$apt" arm64 "$host"
    cd "$out/debs"
    for p in "linux-headers-$kver:arm64" "linux-headers-$abi-common" "linux-kbuild-$series:$host"; do
        name=${p%%:*}
        ls "${name}_${pver}"_*.deb >/dev/null 2>&1 || apt-get -q download "$p=$pver"
    done
    rm -rf "$hdr"; mkdir -p "$hdr"
    for d in "linux-headers-${kver}_${pver}"_arm64.deb \
             "linux-headers-${abi}-common_${pver}"_all.deb \
             "linux-kbuild-${series}_${pver}_${host}".deb; do
        dpkg-deb -x "$d" "$hdr"
    done
    # The packages link to absolute paths (/usr/src/..., /usr/lib/linux-kbuild-6.1):
    # re-point every absolute link inside the tree into the tree.
    find "$hdr" -type l | while read -r l; do
        t=$(readlink "$l")
        case $t in
        /*) ln -sfn "$hdr$t" "$l" ;;
        esac
    done
    # The flavour's Makefile includes the common one by its absolute path.
    sed -i "s|/usr/src/|$hdr/usr/src/|" "$hdr/usr/src/linux-headers-$kver/Makefile"
    touch "$hdr/.done-$pver"
fi

kdir=$hdr/usr/src/linux-headers-$kver
[ -d "$kdir/scripts/" ] || { echo "build-module: $kdir/scripts does not resolve" >&2; exit 1; }
cross=
if [ "$(uname -m)" != aarch64 ]; then
    cross=aarch64-linux-gnu-
    command -v ${cross}gcc >/dev/null || {
        echo "build-module: ${cross}gcc missing (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }
fi
# Build in a copy of the module's sources, so that no build output lands in
# the source tree.
mod=$out/module
mkdir -p "$mod"
cp "$src/tracemgr.c" "$src/tracemgr_cs.c" "$src/Kbuild" "$mod/"
cp "$root/guest-api/include/tracemgr.h" "$mod/"
make -C "$kdir" M="$mod" ARCH=arm64 CROSS_COMPILE=$cross W=1 modules
for ko in tracemgr tracemgr_cs; do
    cp "$mod/$ko.ko" "$out/$ko.ko"
    echo "build-module: $out/$ko.ko ($(modinfo -F vermagic "$out/$ko.ko" 2>/dev/null || echo "vermagic unknown"))"
done
