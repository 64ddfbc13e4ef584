#!/usr/bin/env bash
# Consumer check: copy tests/consumer/ to a temporary directory, symlink this repository as its
# subprojects/clip, configure (forcing the subproject even if a clip.pc is installed), build and
# run it. Usage: tests/consumer/check.sh [workdir]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="${1:-}"
if [[ -z "$work" ]]; then
    work="$(mktemp -d /tmp/clip-consumer.XXXXXX)"
    trap 'rm -rf "$work"' EXIT  # only a directory this script made itself
elif [[ -e "$work" && -n "$(ls -A "$work")" ]]; then
    echo "$0: $work is not empty" >&2
    exit 1
fi
mkdir -p "$work/subprojects"

cp "$repo_root/tests/consumer/meson.build" "$repo_root/tests/consumer/main.cpp" "$work/"
ln -s "$repo_root" "$work/subprojects/clip"

meson setup "$work/build" "$work" --force-fallback-for=clip -Dwerror=true
meson compile -C "$work/build" -j 2
"$work/build/clip-consumer"
