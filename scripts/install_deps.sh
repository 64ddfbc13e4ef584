#!/usr/bin/env bash
# Install the Debian packages clip's build, tests, examples and benchmarks need, and only those
# that are missing. Safe to run repeatedly: when everything is present it does nothing and never
# touches the network. Works as root (CI, containers) or as a user with sudo.
set -euo pipefail

packages=(
    meson
    ninja-build
    pkg-config
    g++
    libdnnl-dev       # oneDNN CPU backend (CMake config only, no .pc)
    libxsimd-dev      # SIMD element-wise kernels
    libeigen3-dev     # reference backend
    nlohmann-json3-dev  # JSON: safetensors headers, configs
    libjpeg62-turbo-dev # JPEG decoding (libjpeg-turbo)
    libpng-dev        # PNG decoding
    libutf8proc-dev   # tokenizer: Unicode categories, case mapping, normalisation
    zlib1g-dev        # tokenizer: the gzip-compressed BPE vocabulary
    doctest-dev       # tests
    libbenchmark-dev  # bench/
    libcli11-dev      # the clip command-line tool (examples/clip)
    libhnswlib-dev    # approximate embedding search (include/clip/search/hnsw.hpp)
    libopenmpi-dev    # multi-process training (include/clip/dist/mpi.hpp)
    openmpi-bin       # mpirun, for the distributed training tests
)

missing=()
for p in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$p")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

sudo=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install_deps: missing ${missing[*]}, and not root and no sudo to install them" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "install_deps: installing ${missing[*]}"
log="$(mktemp /tmp/clip-install-deps.XXXXXX.log)"
export DEBIAN_FRONTEND=noninteractive
if ! { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
       && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
              --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    echo "install_deps: apt-get failed; its output:" >&2
    cat "$log" >&2
    exit 1
fi
rm -f "$log"
echo "install_deps: done"
