#!/usr/bin/env bash
# tests/examples/run.sh: the example programs run and say what they should, on the reference
# fixtures (the preset one needs none).
#
#   run.sh BUILD_EXAMPLES_DIR [SOURCE_ROOT]
set -uo pipefail

bin="$1"
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$bin/clip/clip" "${2:-}"

if run "preset" 0 "$bin/clip-preset" RN50 && contains "$tmp/stdout" "RN50: 102007137 parameters" \
    && contains "$tmp/stdout" "logits per image [4, 3]"; then
    pass "clip-preset RN50: parameter count and logits"
else
    fail "clip-preset RN50: parameter count and logits"
fi
check "clip-preset with an unknown preset: exit 1" run "preset unknown" 1 "$bin/clip-preset" ViT-Z/99
check "clip-zero-shot without arguments: usage, exit 2" run "usage" 2 "$bin/clip-zero-shot"

vocab="$reference/bpe_simple_vocab_16e6.txt.gz"
e2e="$reference/e2e.safetensors"
images="$reference/images"
if [[ ! -f "$e2e" || ! -f "$vocab" || ! -d "$images" ]]; then
    echo "skipped: clip-zero-shot and clip-search on the reference model, fixtures not found at $reference"
    finish examples
    exit
fi
if run "zero-shot" 0 "$bin/clip-zero-shot" "$e2e" "$vocab" "cat,rocket,astronaut,coffee" "$images/rocket.jpg" "$images/chelsea_cat.png" \
    && [[ "$(wc -l <"$tmp/stdout")" -eq 8 ]] && contains "$tmp/stdout" "%  rocket"; then
    pass "clip-zero-shot: two images, top 3 each"
else
    fail "clip-zero-shot: two images, top 3 each"
fi
if run "search" 0 "$bin/clip-search" "$e2e" "$vocab" "$images" "a rocket on a launch pad at night" 2 \
    && [[ "$(wc -l <"$tmp/stdout")" -eq 2 ]] && contains "$tmp/stdout" "$images/"; then
    pass "clip-search: the top 2 of the reference photos"
else
    fail "clip-search: the top 2 of the reference photos"
fi
finish examples
