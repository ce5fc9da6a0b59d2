#!/bin/sh
# Fetches Debian's arm64 kernel (LINUX_FLAVOUR: cloud-arm64, the default, or
# arm64, the generic one) and busybox-static through apt, with a
# project-local apt state under build/linux/apt (the host's apt configuration
# is not touched), and extracts them under build/linux/.
#
# Sources: the same mirror and suites as the host's Debian sources
# (deb.debian.org bookworm, bookworm-updates, bookworm-security), signed by
# the host's Debian archive keyring. Idempotent: skips what is already there.
#
# Usage: [LINUX_FLAVOUR=cloud-arm64|arm64] tests/linux/fetch.sh [build-dir]
# (default: build/linux); one build directory per flavour.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/linux}
apt=$out/apt
mkdir -p "$out/debs"

if [ -f "$out/kernel/Image" ] && [ -x "$out/busybox/bin/busybox" ]; then
    echo "fetch: kernel and busybox already in $out"
    exit 0
fi

. "$root/tests/linux/apt-env.sh"
apt_env "$apt" arm64
apt_update_for "$apt" arm64

# The meta package depends on the versioned image package.
flavour=${LINUX_FLAVOUR:-cloud-arm64}
case $flavour in
    cloud-arm64|arm64) ;;
    *) echo "fetch: LINUX_FLAVOUR must be cloud-arm64 or arm64, not $flavour" >&2; exit 1 ;;
esac
kpkg=$(apt-cache depends "linux-image-$flavour:arm64" | sed -n 's/^ *Depends: \(linux-image-[0-9][^: ]*\).*/\1/p' | head -1)
[ -n "$kpkg" ] || { echo "fetch: cannot resolve linux-image-$flavour's kernel package" >&2; exit 1; }
kpkg=${kpkg%:arm64}
echo "fetch: kernel package $kpkg"

cd "$out/debs"
for p in "$kpkg:arm64" busybox-static:arm64; do
    name=${p%%:*}
    ls ${name}_*_arm64.deb >/dev/null 2>&1 || apt-get -q download "$p"
done

if [ ! -f "$out/kernel/Image" ]; then
    rm -rf "$out/kernel.x"; mkdir -p "$out/kernel.x"
    dpkg-deb -x "$kpkg"_*_arm64.deb "$out/kernel.x"
    mkdir -p "$out/kernel"
    cp "$out/kernel.x"/boot/vmlinuz-* "$out/kernel/Image"
    cp "$out/kernel.x"/boot/config-* "$out/kernel/config" 2>/dev/null || true
    ls "$out/kernel.x"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' > "$out/kernel/version"
    rm -rf "$out/kernel.x"
fi
if [ ! -x "$out/busybox/bin/busybox" ]; then
    rm -rf "$out/busybox"; mkdir -p "$out/busybox"
    dpkg-deb -x busybox-static_*_arm64.deb "$out/busybox"
fi
echo "fetch: kernel $(cat "$out/kernel/version"), busybox in $out/busybox"
