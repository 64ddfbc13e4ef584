#!/usr/bin/env bash
# The embedded demo: build clip, then train a small CLIP from scratch on the built-in synthetic
# shapes (examples/train/synthetic-small.json: a ModifiedResNet image tower, 5.7 M parameters;
# 2,000 steps of 64 pairs, about 3.5 minutes on 2 cores) and classify held-out
# images zero-shot among all 36 shape-colour classes, including combinations never seen in
# training. Prints the zero-shot top-1 for seen and unseen combinations with chance level, and
# writes demo-output/predictions.png (test images with their predicted classes) and the trained
# weights under demo-output/run/. Arguments are passed to `clip train` (e.g. --steps 200).
# Runs from any cwd; reuses (reconfigures) build/ when it exists.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

bash scripts/install_deps.sh

if [[ -f build/meson-private/coredata.dat ]]; then
    meson setup --reconfigure build
else
    rm -rf build
    meson setup build --buildtype=release
fi
meson compile -C build -j 2 examples/clip/clip

mkdir -p demo-output
rm -rf demo-output/run
exec build/examples/clip/clip train --dataset-type synthetic --config examples/train/synthetic-small.json \
    --batch-size 64 --steps 2000 --lr 1e-3 --warmup 50 --wd 0.1 --seed 1 --log-every 100 --zeroshot-frequency 500 \
    --save demo-output/run --grid demo-output/predictions.png "$@"
