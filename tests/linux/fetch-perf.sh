#!/bin/sh
# Fetches Debian bookworm's arm64 perf (linux-perf, the perf of the 6.1
# kernel) and every package it needs at run time, through the same
# project-local apt state as fetch.sh (build/linux/apt; the host's apt
# configuration is not touched), and builds a guest root tree from them:
#
#   <build-dir>/perf-root/    usr/bin/perf, the dynamic loader at
#                             /lib/ld-linux-aarch64.so.1 and every shared
#                             object perf's DT_NEEDED closure reaches
#
# Dependencies are resolved recursively from apt's own data (Depends and
# Pre-Depends, arm64; the first of each group of alternatives; a virtual
# package by its first provider); `:any` dependencies (the perl and python3
# interpreters, which only perf's scripts use) are not followed. Every
# package is downloaded into <build-dir>/debs and extracted with dpkg-deb -x
# into <build-dir>/perf.x; perf-root takes from that tree only perf, the
# loader and the shared objects perf's dynamic section names (recursively),
# so documentation, locales, the Python standard library and the Perl
# modules stay out of the guest. A shared object that cannot be found there
# is an error. Needs aarch64-linux-gnu-readelf (binutils-aarch64-linux-gnu).
# Idempotent: skips what is already there.
#
# Usage: tests/linux/fetch-perf.sh [build-dir]   (default: build/linux)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/linux}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)
apt=$out/apt
readelf=aarch64-linux-gnu-readelf
command -v $readelf >/dev/null || { echo "fetch-perf: $readelf missing (apt-get install binutils-aarch64-linux-gnu)" >&2; exit 1; }

. "$root/tests/linux/apt-env.sh"
apt_env "$apt" arm64
apt_update_for "$apt" arm64

pver=$(apt-cache policy linux-perf:arm64 | sed -n 's/^ *Candidate: //p')
[ -n "$pver" ] && [ "$pver" != "(none)" ] || { echo "fetch-perf: no linux-perf:arm64 in the package lists" >&2; exit 1; }
if [ "$(cat "$out/perf-root.done" 2>/dev/null)" = "$pver" ]; then
    echo "fetch-perf: linux-perf $pver already in $out/perf-root"
    exit 0
fi
echo "fetch-perf: linux-perf $pver"

# Breadth first over apt-cache depends: one call per round for every
# package new in that round.
depends() {
    apt-cache depends --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances "$@" | awk '
        /^[^ ]/ { alt = 0; next }            # a package heading
        /^ [ |](Pre)?Depends: / {
            first = !alt                     # the first of an or-group
            alt = ($1 ~ /^\|/)               # the next line is its alternative
            virt = 0
            if (!first) next
            name = $2
            if (name ~ /:any>?$/) { want = 0; next }   # interpreters
            if (name ~ /^</) { virt = 1; want = 1; next }  # take its first provider
            want = 0
            print name
            next
        }
        /^    / { if (virt && want) { print $1; want = 0 } }
    '
}
seen=" "
round=linux-perf:arm64
all=
while [ -n "$round" ]; do
    next=
    for p in $round; do
        case $seen in *" $p "*) continue ;; esac
        seen="$seen$p "
        all="$all $p"
        next="$next $p"
    done
    [ -n "$next" ] || break
    # shellcheck disable=SC2086
    # An arm64 package comes as name:arm64, an arch-all one as its name.
    round=$(depends $next | sort -u)
    new=
    for p in $round; do
        case $seen in *" $p "*) ;; *) new="$new $p" ;; esac
    done
    round=$new
done
echo "fetch-perf: $(echo $all | wc -w) packages:$all"

cd "$out/debs"
for p in $all; do
    name=${p%%:*}
    ls "${name}"_*_arm64.deb "${name}"_*_all.deb >/dev/null 2>&1 || apt-get -q download "$p" ||
        { echo "fetch-perf: cannot download $p" >&2; exit 1; }
done

rm -rf "$out/perf.x" "$out/perf-root" "$out/perf-root.done"
mkdir -p "$out/perf.x" "$out/perf-root"
for p in $all; do
    name=${p%%:*}
    # The newest deb of that name here (what apt-get download fetched).
    deb=$(ls "${name}"_*_arm64.deb "${name}"_*_all.deb 2>/dev/null | sort -V | tail -1)
    dpkg-deb -x "$deb" "$out/perf.x"
done

# perf-root: perf, the loader, and the DT_NEEDED closure. ld.so searches
# (without an ld.so.cache) the multiarch directories Debian builds it with,
# /lib/aarch64-linux-gnu and /usr/lib/aarch64-linux-gnu, then /lib, /usr/lib.
x=$out/perf.x
r=$out/perf-root
copy() ( # copy <path inside x>: the file, and a link with its target
    p=$1
    [ -e "$r/$p" ] || [ -L "$r/$p" ] && return 0
    mkdir -p "$r/$(dirname "$p")"
    if [ -L "$x/$p" ]; then
        t=$(readlink "$x/$p")
        ln -s "$t" "$r/$p"
        case $t in
        /*) copy "${t#/}" ;;
        *) copy "$(dirname "$p")/$t" ;;
        esac
    else
        cp -p "$x/$p" "$r/$p"
    fi
)
find_lib() { # find_lib <soname>: its path inside x
    for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
        if [ -e "$x/$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 1
}
needed() { $readelf -d "$1" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

copy usr/bin/perf
interp=$($readelf -l "$x/usr/bin/perf" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ -n "$interp" ] || { echo "fetch-perf: usr/bin/perf names no program interpreter" >&2; exit 1; }
copy "${interp#/}"
todo=$(needed "$x/usr/bin/perf")
done_libs=" "
missing=
while [ -n "$todo" ]; do
    more=
    for so in $todo; do
        case $done_libs in *" $so "*) continue ;; esac
        done_libs="$done_libs$so "
        if p=$(find_lib "$so"); then
            copy "$p"
            more="$more $(needed "$x/$p")"
        else
            missing="$missing $so"
        fi
    done
    todo=$more
done
[ -z "$missing" ] || { echo "fetch-perf: shared objects not found in the packages:$missing" >&2; exit 1; }
rm -rf "$x"
echo "$pver" > "$out/perf-root.done"
echo "fetch-perf: $(echo $done_libs | wc -w) shared objects, $(du -sh "$r" | cut -f1) in $r"
