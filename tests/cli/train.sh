#!/usr/bin/env bash
# tests/cli/train.sh: `clip train` end to end: one step from a CSV of the reference photos and
# captions equals the library's step (train-step-check), the saved weights load as a model, and a
# run killed with SIGKILL and resumed ends with the same weights as an uninterrupted run.
#
#   train.sh CLIP_EXE SOURCE_ROOT TRAIN_STEP_CHECK_EXE
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$1" "$2"
step_check="$3"
tiny="$here/../../examples/train/tiny.json"

check "train --help" run "help" 0 "$clip" train --help
if run "no architecture" 1 "$clip" train --steps 2 && contains "$tmp/stderr" "--model PRESET, --config"; then
    pass "train without an architecture: exit 1, says what to give"
else
    fail "train without an architecture: exit 1, says what to give"
fi
if run "csv without data" 1 "$clip" train --dataset-type csv --config "$tiny" --steps 2 && contains "$tmp/stderr" "--train-data"; then
    pass "train --dataset-type csv without --train-data: exit 1"
else
    fail "train --dataset-type csv without --train-data: exit 1"
fi

# A run killed with SIGKILL after its step-10 checkpoint, then resumed, ends where an
# uninterrupted run ends, bit for bit (the tiny config on the synthetic data). A step takes
# about 2 ms, so the run is long enough (a second or more) for the kill to land before its end.
common=(--dataset-type synthetic --config "$tiny" --batch-size 16 --steps 1000 --lr 1e-3 --warmup 5 --seed 3 --log-every 100 --threads 2)
if run "uninterrupted" 0 "$clip" train "${common[@]}" --save "$tmp/straight" && contains "$tmp/stdout" "zero-shot top-1 (unseen combinations)"; then
    "$clip" train "${common[@]}" --save "$tmp/killed" --save-steps 10 >"$tmp/stdout" 2>"$tmp/stderr" &
    pid=$!
    for _ in $(seq 3000); do
        grep -q "saved .*step-00000010" "$tmp/stderr" 2>/dev/null && break
        sleep 0.01
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    killed_at="$(cat "$tmp/killed/latest" 2>/dev/null)"
    if [[ -n "$killed_at" && "$killed_at" != step-00001000 ]] && run "resume" 0 "$clip" train "${common[@]}" --save "$tmp/killed" --resume "$tmp/killed" \
        && contains "$tmp/stderr" "resumed" \
        && cmp -s "$tmp/straight/step-00001000/weights.safetensors" "$tmp/killed/step-00001000/weights.safetensors"; then
        pass "killed with SIGKILL at $killed_at and resumed: the same weights as the uninterrupted run"
    else
        echo "  (killed at: $killed_at)" >>"$tmp/stderr"
        fail "killed with SIGKILL and resumed: the same weights as the uninterrupted run"
    fi
    if run "resume other settings" 1 "$clip" train "${common[@]}" --wd 0.5 --save "$tmp/killed" --resume "$tmp/killed" \
        && contains "$tmp/stderr" "other settings"; then
        pass "resume with other settings: refused"
    else
        fail "resume with other settings: refused"
    fi
else
    fail "uninterrupted synthetic run"
fi

vocab="$reference/bpe_simple_vocab_16e6.txt.gz"
e2e="$reference/e2e.safetensors"
images="$reference/images"
if [[ ! -f "$e2e" || ! -f "$vocab" || ! -d "$images" ]]; then
    echo "skipped: the CSV step on the reference model, fixtures not found at $reference"
    finish train
    exit
fi
# One step from OpenCLIP's CSV format (tab-separated, filepath/title), fine-tuning e2e.
{
    printf 'filepath\ttitle\n'
    printf '%s\t%s\n' "$images/chelsea_cat.png" "a photo of a cat" "$images/rocket.jpg" "a rocket on a launch pad at night" \
        "$images/camera_gray_small.png" "a black and white photo of a man with a camera" \
        "$images/astronaut_rgba_portrait.png" "an astronaut in an orange suit"
} >"$tmp/photos.csv"
if run "csv step" 0 "$clip" train --dataset-type csv --train-data "$tmp/photos.csv" --init "$e2e" --vocab "$vocab" --batch-size 4 \
        --steps 1 --lr 1e-3 --wd 0.2 --warmup 0 --lr-scheduler const --no-augment --no-shuffle --save "$tmp/csv" \
    && run "step check" 0 "$step_check" "$reference" "$tmp/csv/step-00000001/weights.safetensors" 1e-3 0.2; then
    pass "one step from a CSV of the reference photos (--init, --no-augment, --no-shuffle, const lr): the library's step, bit for bit"
else
    fail "one step from a CSV of the reference photos (--init, --no-augment, --no-shuffle, const lr): the library's step, bit for bit"
fi
if run "load trained" 0 "$clip" info --model "$tmp/csv/step-00000001/weights.safetensors" && grep -qE "^scheme: +openai$" "$tmp/stdout"; then
    pass "the trained weights load as a model, OpenAI names kept"
else
    fail "the trained weights load as a model, OpenAI names kept"
fi
finish train
