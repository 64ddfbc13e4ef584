#!/usr/bin/env bash
# Build clip and run the demo program (examples/demo/, target clip-demo). Arguments are passed to
# the demo. Runs from any cwd; reuses (reconfigures) build/ when it exists.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install_deps.sh

if [[ -f build/meson-private/coredata.dat ]]; then
    meson setup --reconfigure build
else
    rm -rf build
    meson setup build
fi
meson compile -C build -j 2 examples/demo/clip-demo

exec build/examples/demo/clip-demo "$@"
