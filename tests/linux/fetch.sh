#!/bin/sh
# Fetches Debian's arm64 kernel (LINUX_FLAVOUR: cloud-arm64, the default, or
# arm64, the generic one) and busybox-static through apt, with a
# project-local apt state under build/linux/apt (the host's apt configuration
# is not touched), and extracts them under build/linux/: the kernel's Image,
# and from its modules the CoreSight ones (drivers/hwtracing/coresight) with
# every module they depend on (the `depends=` of their .modinfo, read with
# aarch64-linux-gnu-objcopy), in build/linux/kmod-root/lib/modules/<kver>/
# with a modules.dep for them (the package has none: depmod writes it when
# the package is installed), so that the guest can `modprobe coresight`.
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

if [ -f "$out/kernel/Image" ] && [ -x "$out/busybox/bin/busybox" ] &&
   [ -f "$out/kmod-root/lib/modules/$(cat "$out/kernel/version")/modules.dep" ]; then
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

kver=${kpkg#linux-image-}
if [ ! -f "$out/kernel/Image" ] || [ ! -f "$out/kmod-root/lib/modules/$kver/modules.dep" ]; then
    rm -rf "$out/kernel.x"; mkdir -p "$out/kernel.x"
    dpkg-deb -x "$kpkg"_*_arm64.deb "$out/kernel.x"
    mkdir -p "$out/kernel"
    cp "$out/kernel.x"/boot/vmlinuz-* "$out/kernel/Image"
    cp "$out/kernel.x"/boot/config-* "$out/kernel/config" 2>/dev/null || true
    ls "$out/kernel.x"/boot/vmlinuz-* | sed 's|.*/vmlinuz-||' > "$out/kernel/version"
    kver=$(cat "$out/kernel/version")
    # The CoreSight modules and what they depend on, recursively.
    objcopy=aarch64-linux-gnu-objcopy
    command -v $objcopy >/dev/null || { echo "fetch: $objcopy missing (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 1; }
    mods=$out/kernel.x/lib/modules/$kver
    kr=$out/kmod-root/lib/modules/$kver
    rm -rf "$out/kmod-root"; mkdir -p "$kr"
    modpath() { # modpath <name>: the module's path under kernel/ ('-' and '_' alike)
        f=$(echo "$1" | sed 's/[-_]/[-_]/g')
        (cd "$mods" && find kernel -name "$f.ko" | head -1)
    }
    moddeps() { # moddeps <path>: the names in its depends=
        $objcopy -O binary --only-section=.modinfo "$mods/$1" /dev/stdout |
            tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '
    }
    todo=$(cd "$mods" && find kernel/drivers/hwtracing/coresight -name '*.ko' | sort)
    kept=" "
    while [ -n "$todo" ]; do
        more=
        for m in $todo; do
            case $kept in *" $m "*) continue ;; esac
            kept="$kept$m "
            mkdir -p "$kr/$(dirname "$m")"
            cp "$mods/$m" "$kr/$m"
            deps=
            for d in $(moddeps "$m"); do
                p=$(modpath "$d")
                [ -n "$p" ] || { echo "fetch: $m depends on $d, which the package does not ship" >&2; exit 1; }
                deps="$deps $p"
                more="$more $p"
            done
            # modules.dep lists every module a module needs, not only its
            # direct ones: filled in below, once all are known.
            echo "$m:$deps" >> "$kr/modules.direct"
        done
        todo=$more
    done
    # The transitive closure of each line, in load order (deepest first).
    closure() ( # closure <path>: its dependencies, those of each before it
        for d in $(sed -n "s|^$1:||p" "$kr/modules.direct"); do
            closure "$d"
            echo "$d"
        done
    )
    : > "$kr/modules.dep"
    for m in $(cut -d: -f1 "$kr/modules.direct"); do
        # modprobe loads the list from its end: nearest dependency first in
        # the line, the deepest last.
        echo "$m: $(closure "$m" | awk '!seen[$0]++' | tac | tr '\n' ' ' | sed 's/ $//')" >> "$kr/modules.dep"
    done
    rm "$kr/modules.direct"
    rm -rf "$out/kernel.x"
fi
if [ ! -x "$out/busybox/bin/busybox" ]; then
    rm -rf "$out/busybox"; mkdir -p "$out/busybox"
    dpkg-deb -x busybox-static_*_arm64.deb "$out/busybox"
fi
echo "fetch: kernel $(cat "$out/kernel/version"), busybox in $out/busybox, $(wc -l < "$out/kmod-root/lib/modules/$kver/modules.dep") modules in $out/kmod-root"
