#!/usr/bin/env bash
# Data-parallel training throughput on one host: `mpirun -np 2 clip train` with one thread per
# rank against one process with two threads, on the same global batch, alternated (A B A B ...)
# in one sitting; prints each run's samples/s and the medians. The model is bench_torch.py's
# `small` configuration (examples/train/small.json) on the synthetic shapes. Usage:
#   bench/distributed.sh [BUILD_DIR] [--rounds N] [--steps N] [--batch GLOBAL] [--local-loss]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="build"
rounds=3
steps=40
batch=32
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --local-loss) extra+=(--local-loss); shift ;;
        *) build="$1"; shift ;;
    esac
done
clip_exe="$build/examples/clip/clip"
[[ -x "$clip_exe" ]] || { echo "no $clip_exe: build first"; exit 1; }
command -v mpirun >/dev/null || { echo "no mpirun: apt-get install openmpi-bin libopenmpi-dev"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_hwloc_base_binding_policy=none

common=(train --dataset-type synthetic --config "$repo_root/examples/train/small.json" --steps "$steps" --warmup 1
        --lr 1e-4 --log-every "$steps" --zeroshot-frequency 0 --val-num-samples 36)
# The samples/s of the last progress line (the whole run after the first step's plans: the
# window starts at step 1).
rate() { grep -o '[0-9.]* samples/s' | tail -n 1 | cut -d' ' -f1; }
one=() two=()
echo "uptime before: $(uptime)"
for ((r = 0; r < rounds; ++r)); do
    one+=("$("$clip_exe" "${common[@]}" --batch-size "$batch" --threads 2 2>/dev/null | rate)")
    two+=("$(mpirun -np 2 "$clip_exe" "${common[@]}" --batch-size $((batch / 2)) --threads 1 --gather-with-grad "${extra[@]}" 2>/dev/null | rate)")
    echo "round $((r + 1)): 1 rank x 2 threads ${one[-1]} samples/s; 2 ranks x 1 thread ${two[-1]} samples/s"
done
echo "uptime after:  $(uptime)"
python3 - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]
two = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(one), statistics.median(two)
print(f"median: 1 rank x 2 threads {a:.1f} samples/s, 2 ranks x 1 thread {b:.1f} samples/s, ratio {b / a:.2f}")
PY
