#!/usr/bin/env bash
# Side-by-side encoder throughput: clip against PyTorch (../shared/peers/bench_torch.py) and,
# with --ort, ONNX Runtime (../shared/peers/bench_ort.sh), on the same models, batches and
# threads, alternating the programs (A B A B ...) in one sitting as the peers' README asks, and
# reporting the median of each and the ratio. Usage:
#   bench/peers.sh [BUILD_DIR] [--rounds N] [--ort] [--threads T] [--train] [--int8]
# --train times training steps (the `small` configuration at batch 32, ViT-B/32 at batch 8:
# both towers, ClipLoss, backward, AdamW) instead of the encoders; CLIP_PEERS_CONFIGS
# ("model task batch [text-length]" lines) sets any other list; a text length of `captions`
# gives clip real-length captions (8-20 tokens), which the peers run as full 77-token rows as
# they always do. --int8 times clip with --precision int8 (the
# peers stay fp32, as the int8 target is stated against them).
# Needs ../shared/peers/setup.sh to have been run once (it installs Debian's python3-torch).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
rounds=2
threads=2
with_ort=0
train=0
clip_precision=f32
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --ort) with_ort=1; shift ;;
        --train) train=1; shift ;;
        --int8) clip_precision=int8; shift ;;
        *) build="$1"; shift ;;
    esac
done
clip_exe="$build/examples/clip/clip"
peers="${CLIP_PEERS_DIR:-$repo_root/../shared/peers}"
[[ -x "$clip_exe" ]] || { echo "no $clip_exe: build first (meson setup $build && meson compile -C $build)"; exit 1; }
[[ -f "$peers/bench_torch.py" ]] || { echo "no peers at $peers"; exit 1; }

# model task batch
configs=(
    "ViT-B/32 encode_image 1"
    "ViT-B/32 encode_image 8"
    "ViT-B/32 encode_image 32"
    "ViT-B/32 encode_text 1"
    "ViT-B/32 encode_text 32"
    "RN50 encode_image 8"
)
[[ $train -eq 1 ]] && configs=("small train_step 32" "ViT-B/32 train_step 8")
[[ -n "${CLIP_PEERS_CONFIGS:-}" ]] && mapfile -t configs <<< "$CLIP_PEERS_CONFIGS"

results="$(mktemp -d /tmp/clip-peers.XXXXXX)"
echo "uptime before: $(uptime)"
for config in "${configs[@]}"; do
    read -r model task batch length <<< "$config"
    length="${length:-full}"
    for ((r = 0; r < rounds; ++r)); do
        "$clip_exe" bench --model "$model" --task "$task" --batch "$batch" --threads "$threads" --iters 5 --json \
            --precision "$clip_precision" --text-length "$length" \
            >> "$results/clip.jsonl"
        /usr/bin/python3 "$peers/bench_torch.py" --model "$model" --task "$task" --batch "$batch" \
            --threads "$threads" 2>/dev/null | tail -n 1 >> "$results/torch.jsonl"
        if [[ $with_ort -eq 1 ]]; then
            bash "$peers/bench_ort.sh" --model "$model" --task "$task" --batch "$batch" --threads "$threads" \
                2>/dev/null | tail -n 1 >> "$results/ort.jsonl" || true
        fi
    done
done
echo "uptime after:  $(uptime)"
echo "raw results: $results"

python3 - "$results" <<'PY'
import json, pathlib, statistics, sys
root = pathlib.Path(sys.argv[1])
def load(name):
    out = {}
    path = root / name
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        out.setdefault((d["model"], d["task"], int(d["batch"])), {}).setdefault(d.get("text_length", "full"), []).append(float(d["items_per_s"]))
    return out
clip, torch, ort = load("clip.jsonl"), load("torch.jsonl"), load("ort.jsonl")
header = f"{'model':10} {'task':13} {'batch':>5} | {'clip/s':>8} {'torch/s':>8} {'clip/torch':>10}"
if ort:
    header += f" | {'ort/s':>8} {'clip/ort':>8}"
print(header)
print("-" * len(header))
def peer(table, key):  # the peers always run full rows
    runs = [v for values in table.get(key, {}).values() for v in values]
    return statistics.median(runs) if runs else float("nan")
for key, lengths in clip.items():
    t = peer(torch, key)
    o = peer(ort, key)
    for length, values in lengths.items():
        c = statistics.median(values)
        task = key[1] if key[1] != "encode_text" or length == "full" else f"{key[1]}:{length}"
        line = f"{key[0]:10} {task:13} {key[2]:>5} | {c:8.2f} {t:8.2f} {c / t:10.2f}"
        if ort:
            line += f" | {o:8.2f} {c / o:8.2f}"
        print(line)
PY
