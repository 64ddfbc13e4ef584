#!/usr/bin/env bash
# tests/cli/distributed.sh: `mpirun -np 2 clip train` (two processes, one thread each) against one
# process on the same global batch: after six steps every tensor agrees within 1e-5 relative
# error (‖a − b‖ / ‖a‖), with and without --local-loss (--gather-with-grad, the exact
# global-batch gradient; compare-weights also prints the largest elementwise difference), with
# --loss siglip (each rank's images against both ranks' texts), and with --accum-freq 2 (two
# micro-batches of 8 per rank and step against one process's two of 16: 32 pairs a step, ClipLoss
# with --local-loss and SigLIP); a run killed
# after its step-3 checkpoint and resumed on two ranks ends where the uninterrupted one ends;
# resuming with another world size is refused; killing one rank stops the other with an error
# within a bounded time; a rank that stops answering makes the other fail with a timeout.
#
#   distributed.sh CLIP_EXE SOURCE_ROOT COMPARE_WEIGHTS_EXE MPIRUN
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1" "$2"
compare="$3"
mpirun="$4"
tiny="$here/../../examples/train/tiny.json"

# Open MPI refuses root unless told; one host, shared memory between the two ranks (no ptrace
# single-copy: containers forbid it), no core binding (the test may share its cores).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none
mpi=("$mpirun" -np 2)

common=(--dataset-type synthetic --config "$tiny" --steps 6 --lr 1e-3 --warmup 2 --seed 5 --log-every 1 --threads 1 --val-num-samples 36)
weights() { echo "$1/step-00000006/weights.safetensors"; }

if ! run "one process, batch 16" 0 "$clip" train "${common[@]}" --batch-size 16 --save "$tmp/single"; then
    fail "one process, batch 16"
    finish distributed
    exit
fi
for mode in global local; do
    flags=(--gather-with-grad)
    [[ $mode == local ]] && flags+=(--local-loss)
    if run "two ranks $mode" 0 "${mpi[@]}" "$clip" train "${common[@]}" --batch-size 8 "${flags[@]}" --save "$tmp/two-$mode" \
        && contains "$tmp/stdout" "2 ranks (mpi) of 8 pairs" \
        && "$compare" "$(weights "$tmp/single")" "$(weights "$tmp/two-$mode")" 1e-5 >"$tmp/compare" 2>&1; then
        pass "mpirun -np 2, batch 8 per rank, ${flags[*]}: the weights of one process at batch 16 after 6 steps ($(cat "$tmp/compare"))"
    else
        cat "$tmp/compare" >>"$tmp/stderr" 2>/dev/null
        fail "mpirun -np 2, batch 8 per rank, ${flags[*]}: the weights of one process at batch 16"
    fi
    cp "$tmp/stdout" "$tmp/stdout-$mode"
done
# The same against one process for SigLIP and for --accum-freq 2: ONE_PROCESS_FLAGS -- TWO_RANK_FLAGS.
equivalent() {
    local name="$1" single=() two=()
    shift
    while [[ $1 != -- ]]; do single+=("$1"); shift; done
    shift
    two=("$@")
    if ! run "one process, $name" 0 "$clip" train "${common[@]}" "${single[@]}" --save "$tmp/single-$name"; then
        fail "one process, ${single[*]}"
        return
    fi
    if run "two ranks, $name" 0 "${mpi[@]}" "$clip" train "${common[@]}" "${two[@]}" --save "$tmp/two-$name" \
        && "$compare" "$(weights "$tmp/single-$name")" "$(weights "$tmp/two-$name")" 1e-5 >"$tmp/compare" 2>&1; then
        pass "mpirun -np 2, ${two[*]}: the weights of one process at ${single[*]} after 6 steps ($(cat "$tmp/compare"))"
    else
        cat "$tmp/compare" >>"$tmp/stderr" 2>/dev/null
        fail "mpirun -np 2, ${two[*]}: the weights of one process at ${single[*]}"
    fi
}
equivalent siglip --batch-size 16 --loss siglip -- --batch-size 8 --gather-with-grad --loss siglip
# A step of --accum-freq 2 reads two micro-batches of --batch-size on every rank: 2 × 2 × 8 pairs
# on two ranks, 2 × 16 in one process, the same 32 samples of the epoch's shuffle.
equivalent accum --batch-size 16 --accum-freq 2 -- --batch-size 8 --accum-freq 2 --gather-with-grad --local-loss
if contains "$tmp/stdout" "steps of 32 pairs" && contains "$tmp/stdout" "2 ranks (mpi) of 16 pairs" \
    && contains "$tmp/stdout" "2 micro-batches of 8 pairs per rank"; then
    pass "--accum-freq 2 on two ranks of --batch-size 8: steps of 32 pairs, two micro-batches of 8 on each rank"
else
    fail "--accum-freq 2 on two ranks of --batch-size 8: steps of 32 pairs, two micro-batches of 8 on each rank"
fi
equivalent accum-siglip --batch-size 16 --accum-freq 2 --loss siglip -- --batch-size 8 --accum-freq 2 --gather-with-grad --loss siglip

# Without --gather-with-grad a rank keeps only its own rows' gradient (OpenCLIP's detached
# gather): the average is 1/2 of the global-batch gradient, which Adam nearly ignores; the run
# trains, and is not the same computation.
if run "two ranks, detached gather" 0 "${mpi[@]}" "$clip" train "${common[@]}" --batch-size 8 --save "$tmp/two-detached" \
    && ! "$compare" "$(weights "$tmp/two-global")" "$(weights "$tmp/two-detached")" 0 >/dev/null 2>&1; then
    pass "mpirun -np 2 without --gather-with-grad trains (another gradient)"
else
    fail "mpirun -np 2 without --gather-with-grad trains (another gradient)"
fi

# Killed after a checkpoint (SIGKILL to mpirun's job), resumed on two ranks: the weights of the
# uninterrupted two-rank run, bit for bit (batches of 64 per rank, about 10 ms a step, and 120
# steps, so that the kill lands mid-run even on a loaded machine).
resumable=(--dataset-type synthetic --config "$tiny" --steps 120 --lr 1e-3 --warmup 2 --seed 6 --log-every 10 --threads 1
           --val-num-samples 36 --batch-size 64 --gather-with-grad --save-steps 3)
run "uninterrupted two ranks" 0 "${mpi[@]}" "$clip" train "${resumable[@]}" --save "$tmp/straight" || fail "uninterrupted two-rank run"
"${mpi[@]}" "$clip" train "${resumable[@]}" --save "$tmp/killed" --dist-timeout 20 >"$tmp/stdout" 2>"$tmp/stderr" &
job=$!
for _ in $(seq 3000); do
    grep -q "saved .*step-00000003" "$tmp/stderr" 2>/dev/null && break
    sleep 0.01
done
pkill -9 -P "$job" 2>/dev/null
kill -9 "$job" 2>/dev/null
wait "$job" 2>/dev/null
killed_at="$(cat "$tmp/killed/latest" 2>/dev/null)"
final="step-00000120/weights.safetensors"
if [[ -n "$killed_at" && "$killed_at" != step-00000120 ]] \
    && run "resume" 0 "${mpi[@]}" "$clip" train "${resumable[@]}" --save "$tmp/killed" --resume "$tmp/killed" \
    && contains "$tmp/stderr" "resumed" \
    && cmp -s "$tmp/straight/$final" "$tmp/killed/$final"; then
    pass "two ranks killed with SIGKILL after $killed_at, resumed on two ranks: the uninterrupted run's weights, bit for bit"
else
    echo "  (killed at: '$killed_at')" >>"$tmp/stderr"
    fail "two ranks killed and resumed: the uninterrupted run's weights"
fi
if run "resume, one process" 1 "$clip" train "${resumable[@]}" --save "$tmp/killed" --resume "$tmp/killed" \
    && contains "$tmp/stderr" "other settings"; then
    pass "a two-rank run resumed in one process: refused (other settings)"
else
    fail "a two-rank run resumed in one process: refused (other settings)"
fi

# The pid of rank R of the job started by mpirun process $1.
rank_pid() {
    local pid
    for pid in $(pgrep -f -- "$clip train"); do
        [[ "$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -x "OMPI_COMM_WORLD_RANK=$2")" ]] || continue
        [[ "$(ps -o ppid= -p "$pid" | tr -d ' ')" == "$1" ]] && { echo "$pid"; return; }
    done
}
long=(--dataset-type synthetic --config "$tiny" --steps 100000 --lr 1e-3 --warmup 2 --seed 5 --log-every 1 --threads 1)

# One rank killed: mpirun stops the other and reports it, within a bounded time.
"${mpi[@]}" "$clip" train "${long[@]}" --batch-size 8 --gather-with-grad --dist-timeout 60 >"$tmp/stdout" 2>"$tmp/stderr" &
job=$!
for _ in $(seq 1200); do grep -q "^step 3/" "$tmp/stdout" 2>/dev/null && break; sleep 0.05; done
victim="$(rank_pid "$job" 1)"
[[ -n "$victim" ]] && kill -9 "$victim"
start=$SECONDS
for _ in $(seq 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
wait "$job"
status=$?
elapsed=$((SECONDS - start))
if [[ -n "$victim" && $status -ne 0 && $elapsed -le 30 ]] && grep -qiE "signal 9|killed" "$tmp/stderr"; then
    pass "rank 1 killed with SIGKILL: the job stops with an error in ${elapsed}s (status $status)"
else
    echo "  (victim: '$victim', status $status after ${elapsed}s)" >>"$tmp/stderr"
    kill -9 "$job" 2>/dev/null
    fail "rank 1 killed with SIGKILL: the job stops with an error within 30 s"
fi

# One rank stopped (SIGSTOP: alive, silent): the other's collective times out with a message
# naming the operation, and the job ends.
"${mpi[@]}" "$clip" train "${long[@]}" --batch-size 8 --gather-with-grad --dist-timeout 3 >"$tmp/stdout" 2>"$tmp/stderr" &
job=$!
for _ in $(seq 1200); do grep -q "^step 3/" "$tmp/stdout" 2>/dev/null && break; sleep 0.05; done
victim="$(rank_pid "$job" 1)"
[[ -n "$victim" ]] && kill -STOP "$victim"
start=$SECONDS
for _ in $(seq 600); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
[[ -n "$victim" ]] && kill -9 "$victim" 2>/dev/null
wait "$job"
status=$?
elapsed=$((SECONDS - start))
if [[ -n "$victim" && $status -ne 0 && $elapsed -le 40 ]] && contains "$tmp/stderr" "did not complete within 3 s"; then
    pass "rank 1 stopped: rank 0 times out after 3 s with a clear error, the job ends in ${elapsed}s"
else
    echo "  (victim: '$victim', status $status after ${elapsed}s)" >>"$tmp/stderr"
    kill -9 "$job" 2>/dev/null
    fail "rank 1 stopped: rank 0 times out with a clear error"
fi

finish distributed
