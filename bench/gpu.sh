#!/usr/bin/env bash
# GPU encoder and training-step throughput: `clip bench --device cuda` against PyTorch on the same GPU
# (../shared/peers/bench_torch.py --device cuda), one line of JSON per measurement, then a table of
# the ratios. Usage:
#   bench/gpu.sh [BUILD_DIR] [--rounds N]
# Precisions: f32 (both sides), bf16 (clip's 16-bit weights with f32 accumulation against
# PyTorch's autocast). A fifth word `tf32` runs clip with --tf32 against PyTorch's default f32,
# whose cuDNN convolutions use TF32 (torch.backends.cudnn.allow_tf32) while its products do not:
# the fair pairing for ResNets. CLIP_GPU_CONFIGS ("model task batch dtype [tf32]" lines) sets
# another list.
# PYTHON picks the interpreter that has a CUDA PyTorch (default python3).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
rounds=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        *) build="$1"; shift ;;
    esac
done
clip_exe="$build/examples/clip/clip"
peers="${CLIP_PEERS_DIR:-$repo_root/../shared/peers}"
python="${PYTHON:-python3}"
[[ -x "$clip_exe" ]] || { echo "no $clip_exe: build first (meson setup $build && meson compile -C $build)"; exit 1; }
[[ -f "$peers/bench_torch.py" ]] || { echo "no peers at $peers"; exit 1; }
command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1 || { echo "no NVIDIA GPU here (nvidia-smi found none)"; exit 1; }

configs=(
    "ViT-B/32 encode_image 1 float32"
    "ViT-B/32 encode_image 8 float32"
    "ViT-B/32 encode_image 64 float32"
    "ViT-B/32 encode_image 256 float32"
    "ViT-B/32 encode_text 32 float32"
    "ViT-B/32 encode_text 256 float32"
    "ViT-B/32 encode_image 64 bfloat16"
    "ViT-B/32 encode_image 256 bfloat16"
    "ViT-B/32 encode_text 256 bfloat16"
    "RN50 encode_image 8 float32"
    "RN50 encode_image 64 float32"
    "RN50 encode_image 64 float32 tf32"
    "RN50 encode_image 256 float32 tf32"
    "ViT-B/32 train_step 32 float32"
    "ViT-B/32 train_step 256 float32"
    "small train_step 32 float32"
    "RN50 train_step 32 float32"
    "RN50 train_step 32 float32 tf32"
    "ViT-B/32 train_step 256 bfloat16"
)
if [[ -n "${CLIP_GPU_CONFIGS:-}" ]]; then mapfile -t configs <<< "$CLIP_GPU_CONFIGS"; fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for ((round = 1; round <= rounds; ++round)); do
    for config in "${configs[@]}"; do
        read -r model task batch dtype setting <<< "$config"
        label="$dtype${setting:+ $setting}"
        "$clip_exe" bench --device cuda --model "$model" --task "$task" --batch "$batch" --dtype "$dtype" \
            ${setting:+--$setting} --iters 30 --warmup 3 --json | sed "s/^{/$label\t{/" | tee -a "$log"
        "$python" "$peers/bench_torch.py" --device cuda --model "$model" --task "$task" --batch "$batch" \
            --dtype "$dtype" --min-time 2 | sed "s/^{/$label\t{/" | tee -a "$log"
    done
done
python3 - "$log" <<'PY'
import json, statistics, sys
groups = {}
for line in open(sys.argv[1]):
    label, _, text = line.partition("\t")
    if not text.startswith("{"):
        continue
    r = json.loads(text)
    key = (r["model"], r["task"], r["batch"], label)
    groups.setdefault(key, {}).setdefault(r["peer"], []).append(r["items_per_s"])
print("| model | task | batch | dtype | clip | PyTorch | clip / PyTorch |")
print("|---|---|---|---|---|---|---|")
for (model, task, batch, dtype), peers in groups.items():
    c, t = statistics.median(peers.get("clip", [0])), statistics.median(peers.get("pytorch", [0]))
    print(f"| {model} | {task} | {batch} | {dtype} | {c:.1f} | {t:.1f} | {c / t if t else float('nan'):.2f} |")
PY
