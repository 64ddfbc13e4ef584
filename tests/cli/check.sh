#!/usr/bin/env bash
# tests/cli/check.sh: the `clip` tool end to end: help, exit statuses and messages, `info` on the
# reference checkpoints, `embed` against the PyTorch reference outputs, `bench --json`.
#
#   check.sh CLIP_EXE [SOURCE_ROOT]
#
# The reference fixtures come from $CLIP_REFERENCE_DIR, else SOURCE_ROOT/../shared/reference;
# without them only the help and error checks run. Numbers are compared by
# safetensors_check.py (Python standard library only).
set -uo pipefail

clip="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_root="${2:-$here/../..}"
reference="${CLIP_REFERENCE_DIR:-$source_root/../shared/reference}"
check_py=(python3 "$here/safetensors_check.py")

tmp="$(mktemp -d /tmp/clip-cli-check.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok:   $1"; }
fail() {
    failed=$((failed + 1))
    echo "FAIL: $1"
    echo "  stdout: $(head -c 2000 "$tmp/stdout")"
    echo "  stderr: $(head -c 2000 "$tmp/stderr")"
}

# run WHAT EXPECTED_STATUS CMD...: runs CMD, keeps its output in $tmp/stdout and $tmp/stderr, and
# returns 0 when the status is EXPECTED_STATUS ("nonzero" accepts any failure).
run() {
    local what="$1" expected="$2"
    shift 2
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local status=$?
    if [[ "$expected" == nonzero && $status -ne 0 ]] || [[ "$status" == "$expected" ]]; then
        return 0
    fi
    echo "  ($what: exit status $status, expected $expected)" >>"$tmp/stderr"
    return 1
}

# contains FILE TEXT: FILE contains TEXT literally.
contains() { grep -qF -- "$2" "$1"; }

# ---- help and usage (no fixtures needed) ----------------------------------------------------
for command in "" embed info bench; do
    # shellcheck disable=SC2086  # an empty $command must vanish
    if run "help" 0 "$clip" $command --help && contains "$tmp/stdout" "Usage"; then
        pass "clip $command --help"
    else
        fail "clip $command --help"
    fi
done

if run "unknown subcommand" 2 "$clip" frobnicate; then pass "unknown subcommand: exit 2"; else fail "unknown subcommand: exit 2"; fi
if run "no subcommand" 2 "$clip"; then pass "no subcommand: exit 2"; else fail "no subcommand: exit 2"; fi
if run "bad task" 2 "$clip" bench --task encode_video; then pass "bench --task encode_video: exit 2"; else fail "bench --task encode_video: exit 2"; fi

if run "missing model" 1 "$clip" info --model "$tmp/no-such-model.safetensors" \
    && contains "$tmp/stderr" "clip: " && contains "$tmp/stderr" "no-such-model.safetensors"; then
    pass "missing model file: exit 1, message names the file"
else
    fail "missing model file: exit 1, message names the file"
fi

if run "no :NAME" nonzero "$clip" embed --model "$tmp/m.safetensors" --images-from "$tmp/in.safetensors" --out "$tmp/o.safetensors" \
    && contains "$tmp/stderr" "FILE.safetensors:NAME"; then
    pass "--images-from without :NAME: clear message"
else
    fail "--images-from without :NAME: clear message"
fi

if run "no inputs" 1 "$clip" embed --model ViT-B/32 --out "$tmp/o.safetensors" && contains "$tmp/stderr" "nothing to encode"; then
    pass "embed without inputs: exit 1"
else
    fail "embed without inputs: exit 1"
fi

# A preset needs no file: OpenAI's ViT-B/32 has 151,277,313 parameters.
if run "info preset" 0 "$clip" info --model ViT-B/32 && contains "$tmp/stdout" "random init (preset)" \
    && grep -qE '^parameters: +151,277,313$' "$tmp/stdout"; then
    pass "info --model ViT-B/32: preset, 151,277,313 parameters"
else
    fail "info --model ViT-B/32: preset, 151,277,313 parameters"
fi

# ---- with the reference fixtures ------------------------------------------------------------
if [[ ! -f "$reference/vit.safetensors" ]]; then
    echo "skipped: info/embed/bench checks, reference not found at $reference (set CLIP_REFERENCE_DIR)"
elif ! command -v python3 >/dev/null 2>&1; then
    echo "skipped: info/embed/bench checks, python3 not found (it compares the outputs)"
else
    vit="$reference/vit.safetensors"
    vit_io="$reference/vit_io.safetensors"

    # info: the scheme and the parameter count (every tensor of the checkpoint is a parameter).
    want="$("${check_py[@]}" parameters "$vit")"
    for variant in openai huggingface; do
        if [[ $variant == openai ]]; then args=(--model "$vit"); else
            args=(--model "$reference/vit_hf.safetensors" --config "$reference/vit_hf_config.json"); fi
        if run "info" 0 "$clip" info "${args[@]}" && grep -qE "^scheme: +$variant\$" "$tmp/stdout" \
            && [[ "$(grep -E '^parameters:' "$tmp/stdout" | tr -dc '0-9')" == "$want" ]]; then
            pass "info ($variant): scheme and $want parameters"
        else
            fail "info ($variant): scheme and $want parameters"
        fi
    done

    # embed: against the reference encoder outputs. --batch 3 splits the 4 images 3 + 1.
    # embed_case NAME EXPECTED_TENSORS IO_FILE CLIP_ARGS...
    embed_case() {
        local name="$1" expected="$2" io="$3"
        shift 3
        local out="$tmp/$name.safetensors"
        if ! run "embed" 0 "$clip" embed "$@" --out "$out"; then fail "embed ($name)"; return; fi
        local names
        names="$("${check_py[@]}" names "$out" | tr '\n' ' ')"
        if [[ "$names" != "$expected " ]]; then
            echo "  (tensors: $names; expected: $expected)" >>"$tmp/stderr"
            fail "embed ($name): output tensors"
            return
        fi
        local ok=1
        for pair in image_embeds:image_features text_embeds:text_features; do
            if [[ " $names " == *" ${pair%%:*} "* ]]; then
                "${check_py[@]}" compare "$out" "${pair%%:*}" "$io" "${pair#*:}" >>"$tmp/stdout" 2>>"$tmp/stderr" || ok=0
            fi
        done
        # The stored log value, as in the OpenAI checkpoint (vit_hf holds the same weights).
        "${check_py[@]}" compare "$out" logit_scale "$reference/${name%%_*}.safetensors" logit_scale \
            >>"$tmp/stdout" 2>>"$tmp/stderr" || ok=0
        if ((ok)); then pass "embed ($name): matches the reference"; else fail "embed ($name): matches the reference"; fi
    }
    both="image_embeds text_embeds logit_scale"
    embed_case vit "$both" "$vit_io" --model "$vit" --images-from "$vit_io:image" --tokens-from "$vit_io:text" --batch 3
    embed_case vit_hf "$both" "$vit_io" --model "$reference/vit_hf.safetensors" --config "$reference/vit_hf_config.json" \
        --images-from "$vit_io:image" --tokens-from "$vit_io:text"
    embed_case vit_text_only "text_embeds logit_scale" "$vit_io" --model "$vit" --tokens-from "$vit_io:text" --batch 1
    if [[ -f "$reference/resnet.safetensors" ]]; then
        embed_case resnet "$both" "$reference/resnet_io.safetensors" --model "$reference/resnet.safetensors" \
            --images-from "$reference/resnet_io.safetensors:image" --tokens-from "$reference/resnet_io.safetensors:text" --batch 2
    fi

    # embed: f16/bf16 images are converted to f32; their rounding (2^-11, 2^-8 relative) moves
    # the outputs by more than the f32 tolerance.
    for dtype in F16 BF16; do
        "${check_py[@]}" convert "$vit_io" image "$dtype" "$tmp/image_$dtype.safetensors"
        if run "embed $dtype" 0 "$clip" embed --model "$vit" --images-from "$tmp/image_$dtype.safetensors:image" \
                --out "$tmp/$dtype.safetensors" \
            && "${check_py[@]}" compare "$tmp/$dtype.safetensors" image_embeds "$vit_io" image_features 5e-3 \
                >>"$tmp/stdout" 2>>"$tmp/stderr"; then
            pass "embed ($dtype images): converted, close to the reference"
        else
            fail "embed ($dtype images): converted, close to the reference"
        fi
    done

    # embed: errors that need a real model.
    if run "missing tensor" 1 "$clip" embed --model "$vit" --images-from "$vit_io:no_such_tensor" --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "no_such_tensor"; then
        pass "embed with a missing tensor: exit 1, message names it"
    else
        fail "embed with a missing tensor: exit 1, message names it"
    fi
    if run "wrong shape" 1 "$clip" embed --model "$vit" --images-from "$vit_io:text" --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "[N, 3, 32, 32]" && [[ ! -e "$tmp/x.safetensors" ]]; then
        pass "embed with wrongly shaped images: exit 1, shapes named, nothing written"
    else
        fail "embed with wrongly shaped images: exit 1, shapes named, nothing written"
    fi

    # bench --json: one valid JSON line with the peer fields.
    if run "bench" 0 "$clip" bench --model "$vit" --task encode_image --batch 2 --threads 1 --iters 2 --json \
        && "${check_py[@]}" bench-json <"$tmp/stdout" >>"$tmp/stderr" 2>&1; then
        pass "bench --json"
    else
        fail "bench --json"
    fi
fi

echo "cli: $passed passed, $failed failed"
((failed == 0))
