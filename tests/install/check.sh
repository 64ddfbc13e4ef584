#!/usr/bin/env bash
# Install check: stage `meson install` of a configured build directory into a DESTDIR, then build
# tests/install/main.cpp with only `pkg-config --cflags --libs clip` from that staging area and
# run it.
#
# clip.pc is generated relocatable (prefix=${pcfiledir}/...), so pointing PKG_CONFIG_PATH at the
# staged pkgconfig directory is enough. PKG_CONFIG_SYSROOT_DIR is deliberately not used: pkgconf
# would prefix it to every -I, including the system eigen3 path that clip.pc pulls in through
# Requires (-I/usr/include/eigen3 -> $DESTDIR/usr/include/eigen3, which does not exist).
#
# Usage: tests/install/check.sh [build-dir] [destdir]   (defaults: build-test, a fresh temp dir)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build_dir="${1:-$repo_root/build-test}"
destdir="${2:-}"
if [[ -z "$destdir" ]]; then
    destdir="$(mktemp -d /tmp/clip-install.XXXXXX)"
    trap 'rm -rf "$destdir"' EXIT  # only a staging area this script made itself
elif [[ -e "$destdir" && -n "$(ls -A "$destdir")" ]]; then
    echo "$0: $destdir is not empty" >&2
    exit 1
fi
mkdir -p "$destdir"
destdir="$(cd "$destdir" && pwd)"

meson install -C "$build_dir" --destdir "$destdir" --no-rebuild --quiet

pc_file="$(find "$destdir" -name clip.pc -path '*/pkgconfig/*' | head -n 1)"
if [[ -z "$pc_file" ]]; then
    echo "install check: no clip.pc under $destdir" >&2
    exit 1
fi
header="$(find "$destdir" -path '*/include/clip/clip.hpp' | head -n 1)"
if [[ -z "$header" ]]; then
    echo "install check: no include/clip/clip.hpp under $destdir" >&2
    exit 1
fi

PKG_CONFIG_PATH="$(dirname "$pc_file")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
unset PKG_CONFIG_SYSROOT_DIR
flags="$(pkg-config --cflags --libs clip)"
echo "install check: pkg-config --cflags --libs clip = $flags"

# The staged headers must be the ones used, not a copy elsewhere on the include path.
case "$flags" in
    *"$destdir"*) ;;
    *) echo "install check: clip.pc does not point into $destdir" >&2; exit 1 ;;
esac

# shellcheck disable=SC2086 # the pkg-config flags must split into words
"${CXX:-g++}" -std=c++20 -Wall -Wextra -o "$destdir/clip-install-check" \
    "$repo_root/tests/install/main.cpp" $flags
"$destdir/clip-install-check"
