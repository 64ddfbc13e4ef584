#!/usr/bin/env bash
# tests/cli/check.sh: the `clip` tool end to end: help, exit statuses and messages, `info` on the
# reference checkpoints, `embed` against the PyTorch reference outputs (from tensors, and from
# image files and captions), `tokenize` and `preprocess` against OpenAI's tokenizer and transform,
# `bench --json`.
#
#   check.sh CLIP_EXE [SOURCE_ROOT]
#
# The reference fixtures come from $CLIP_REFERENCE_DIR, else SOURCE_ROOT/../shared/reference;
# without them only the help and error checks run. Numbers are compared by
# safetensors_check.py (Python standard library only).
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# ---- help and usage (no fixtures needed) ----------------------------------------------------
for command in "" embed tokenize preprocess info bench; do
    # shellcheck disable=SC2086  # an empty $command must vanish
    if run "help" 0 "$clip" $command --help && contains "$tmp/stdout" "Usage"; then
        pass "clip $command --help"
    else
        fail "clip $command --help"
    fi
done

if run "unknown subcommand" 2 "$clip" frobnicate; then pass "unknown subcommand: exit 2"; else fail "unknown subcommand: exit 2"; fi
if run "no subcommand" 2 "$clip" && contains "$tmp/stderr" "embed, zeroshot, index, search, train, tokenize, preprocess, info or bench"; then
    pass "no subcommand: exit 2, every command listed"
else
    fail "no subcommand: exit 2, every command listed"
fi
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

# tokenize/preprocess/embed errors that need no fixture.
if run "no vocabulary" 1 env -u CLIP_VOCAB "$clip" tokenize "a photo of a cat" \
    && contains "$tmp/stderr" "--vocab" && contains "$tmp/stderr" "CLIP_VOCAB"; then
    pass "tokenize without a vocabulary: exit 1, names --vocab and CLIP_VOCAB"
else
    fail "tokenize without a vocabulary: exit 1, names --vocab and CLIP_VOCAB"
fi
if run "tokenize without text" 2 "$clip" tokenize --vocab "$tmp/v.txt.gz"; then pass "tokenize without TEXT: exit 2"; else fail "tokenize without TEXT: exit 2"; fi
if run "missing image" 1 "$clip" preprocess "$tmp/no-such-image.png" --out "$tmp/p.safetensors" \
    && contains "$tmp/stderr" "no-such-image.png" && [[ ! -e "$tmp/p.safetensors" ]]; then
    pass "preprocess of a missing file: exit 1, names it, nothing written"
else
    fail "preprocess of a missing file: exit 1, names it, nothing written"
fi
# Garbage bytes under an image's name (fixed, so that the check cannot pass or fail by chance).
{ printf 'not an image'; head -c 2048 /dev/zero | tr '\0' '\377'; } >"$tmp/bad.jpg"
if run "corrupt image" 1 "$clip" preprocess "$tmp/bad.jpg" --out "$tmp/p.safetensors" \
    && contains "$tmp/stderr" "bad.jpg" && [[ ! -e "$tmp/p.safetensors" ]]; then
    pass "preprocess of a corrupt file: exit 1, names it, nothing written"
else
    fail "preprocess of a corrupt file: exit 1, names it, nothing written"
fi
if run "same basename" 1 "$clip" preprocess "$tmp/a/cat.png" "$tmp/b/cat.png" --out "$tmp/p.safetensors" \
    && contains "$tmp/stderr" "share the file name 'cat.png'"; then
    pass "preprocess of two files named alike: exit 1, clear message"
else
    fail "preprocess of two files named alike: exit 1, clear message"
fi
# The image files are checked before the model is built, so the preset costs nothing here.
if run "embed missing image" 1 "$clip" embed --model ViT-B/32 --image "$tmp/no-such-image.png" --out "$tmp/x.safetensors" \
    && contains "$tmp/stderr" "no-such-image.png" && [[ ! -e "$tmp/x.safetensors" ]]; then
    pass "embed --image of a missing file: exit 1, names it"
else
    fail "embed --image of a missing file: exit 1, names it"
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

# ---- tokenize, preprocess and embed from files and captions (end to end) -------------------
vocab="$reference/bpe_simple_vocab_16e6.txt.gz"
e2e="$reference/e2e.safetensors"
e2e_io="$reference/e2e_io.safetensors"
cases="$reference/tokenizer_cases.json"
images="$reference/images"
if [[ ! -f "$e2e" || ! -f "$vocab" || ! -f "$cases" || ! -d "$images" ]]; then
    echo "skipped: tokenize/preprocess/embed-from-files checks, e2e fixtures not found at $reference (set CLIP_REFERENCE_DIR)"
elif ! command -v python3 >/dev/null 2>&1; then
    echo "skipped: tokenize/preprocess/embed-from-files checks, python3 not found (it compares the outputs)"
else
    # tokenize: the rows of clip.tokenize(text, truncate=True) for texts that fit, so equal to
    # clip.tokenize(text). The texts come from the JSON through python3 (no shell quoting);
    # 0 is "a photo of a cat", 22 German and Swedish letters, 26 Chinese.
    token_case() { "${check_py[@]}" token-case "$cases" "$@"; }
    texts=()
    rows=()
    for id in 0 22 26; do
        texts+=("$(token_case text "$id")")
        rows+=("$(token_case row "$id")")
        if run "tokenize" 0 "$clip" tokenize --vocab "$vocab" "${texts[-1]}" && [[ "$(cat "$tmp/stdout")" == "${rows[-1]}" ]]; then
            pass "tokenize (case $id: ${texts[-1]}): the reference row"
        else
            echo "  (expected: ${rows[-1]})" >>"$tmp/stderr"
            fail "tokenize (case $id: ${texts[-1]}): the reference row"
        fi
    done
    if run "tokenize 3 texts" 0 "$clip" tokenize --vocab "$vocab" "${texts[@]}" \
        && [[ "$(cat "$tmp/stdout")" == "$(printf '%s\n' "${rows[@]}")" ]]; then
        pass "tokenize of 3 texts: 3 lines, in order"
    else
        fail "tokenize of 3 texts: 3 lines, in order"
    fi
    if run "tokenize CLIP_VOCAB" 0 env CLIP_VOCAB="$vocab" "$clip" tokenize "${texts[0]}" && [[ "$(cat "$tmp/stdout")" == "${rows[0]}" ]]; then
        pass "tokenize with CLIP_VOCAB instead of --vocab"
    else
        fail "tokenize with CLIP_VOCAB instead of --vocab"
    fi
    # 76 ids: one more than fits.
    long_text="$(token_case text long)"
    if run "tokenize too long" 1 "$clip" tokenize --vocab "$vocab" "$long_text" \
        && contains "$tmp/stderr" "is too long for context length 77" && contains "$tmp/stderr" "--truncate" \
        && [[ ! -s "$tmp/stdout" ]]; then
        pass "tokenize of a too long text: exit 1, the library's message"
    else
        fail "tokenize of a too long text: exit 1, the library's message"
    fi
    if run "tokenize --truncate" 0 "$clip" tokenize --vocab "$vocab" --truncate "$long_text" \
        && [[ "$(cat "$tmp/stdout")" == "$(token_case row long)" ]]; then
        pass "tokenize --truncate of a too long text: the reference row"
    else
        fail "tokenize --truncate of a too long text: the reference row"
    fi
    if run "tokenize --context-length" 0 "$clip" tokenize --vocab "$vocab" --context-length 5 --truncate "${texts[0]}" \
        && [[ "$(cat "$tmp/stdout")" == "[49406, 320, 1125, 539, 49407]" ]]; then
        pass "tokenize --context-length 5 --truncate"
    else
        fail "tokenize --context-length 5 --truncate"
    fi

    # preprocess: exactly clip._transform(224) (the file holds Pillow/torchvision's output).
    expected="$reference/preprocess_expected.safetensors"
    if run "preprocess" 0 "$clip" preprocess --size 224 "$images/chelsea_cat.png" "$images/rocket.jpg" --out "$tmp/p.safetensors"; then
        ok=1
        names="$("${check_py[@]}" names "$tmp/p.safetensors" | tr '\n' ' ')"
        if [[ "$names" != "chelsea_cat.png rocket.jpg " ]]; then
            echo "  (tensors: $names)" >>"$tmp/stderr"
            ok=0
        fi
        for name in chelsea_cat.png rocket.jpg; do
            "${check_py[@]}" compare "$tmp/p.safetensors" "$name" "$expected" "$name" 1e-6 abs >>"$tmp/stdout" 2>>"$tmp/stderr" || ok=0
        done
        if ((ok)); then pass "preprocess --size 224: the reference tensors"; else fail "preprocess --size 224: the reference tensors"; fi
    else
        fail "preprocess --size 224: the reference tensors"
    fi
    # A JPEG cut short: a valid header, then the data ends.
    head -c 5000 "$images/rocket.jpg" >"$tmp/cut.jpg"
    if run "truncated jpeg" 1 "$clip" preprocess "$images/chelsea_cat.png" "$tmp/cut.jpg" --out "$tmp/p2.safetensors" \
        && contains "$tmp/stderr" "cut.jpg" && contains "$tmp/stderr" "truncated" && [[ ! -e "$tmp/p2.safetensors" ]]; then
        pass "preprocess of a truncated JPEG: exit 1, names it, nothing written"
    else
        fail "preprocess of a truncated JPEG: exit 1, names it, nothing written"
    fi
    # The default size is 224; a grey image smaller than that is upscaled.
    if run "preprocess default size" 0 "$clip" preprocess "$images/camera_gray_small.png" --out "$tmp/p1.safetensors" \
        && "${check_py[@]}" compare "$tmp/p1.safetensors" camera_gray_small.png "$expected" camera_gray_small.png 1e-6 abs \
            >>"$tmp/stdout" 2>>"$tmp/stderr"; then
        pass "preprocess without --size: 224, the reference tensor"
    else
        fail "preprocess without --size: 224, the reference tensor"
    fi
    # What preprocess writes ([3, R, R] per image) is what embed --images-from takes.
    if run "embed preprocessed" 0 "$clip" embed --model "$e2e" --images-from "$tmp/p1.safetensors:camera_gray_small.png" --out "$tmp/pe.safetensors" \
        && "${check_py[@]}" compare "$tmp/pe.safetensors" image_embeds "$e2e_io" "image_features[2:3]" >>"$tmp/stdout" 2>>"$tmp/stderr"; then
        pass "embed --images-from one preprocessed image [3, 224, 224]: the reference features"
    else
        fail "embed --images-from one preprocessed image [3, 224, 224]: the reference features"
    fi

    # embed: image files and captions, end to end, against the reference encoder outputs.
    e2e_images=("$images/chelsea_cat.png" "$images/rocket.jpg" "$images/camera_gray_small.png" "$images/astronaut_rgba_portrait.png")
    captions=("a photo of a cat" "a rocket on a launch pad at night" "a black and white photo of a man with a camera"
        "an astronaut in an orange suit" "a cup of coffee")
    # embed_compare OUT PAIR...: each PAIR is OUT_NAME=REF_NAME, compared against e2e_io.
    embed_compare() {
        local out="$1" ok=1 pair
        shift
        for pair in "$@"; do
            "${check_py[@]}" compare "$out" "${pair%%=*}" "$e2e_io" "${pair#*=}" >>"$tmp/stdout" 2>>"$tmp/stderr" || ok=0
        done
        ((ok))
    }
    if run "embed e2e" 0 "$clip" embed --model "$e2e" --vocab "$vocab" --image "${e2e_images[@]}" --text "${captions[@]}" \
            --out "$tmp/e.safetensors" \
        && [[ "$("${check_py[@]}" names "$tmp/e.safetensors" | tr '\n' ' ')" == "image_embeds text_embeds logit_scale " ]] \
        && embed_compare "$tmp/e.safetensors" image_embeds=image_features text_embeds=text_features \
        && "${check_py[@]}" compare "$tmp/e.safetensors" logit_scale "$e2e" logit_scale >>"$tmp/stdout" 2>>"$tmp/stderr"; then
        pass "embed --image FILES --text CAPTIONS: the reference features (file -> preprocess -> encode)"
    else
        fail "embed --image FILES --text CAPTIONS: the reference features (file -> preprocess -> encode)"
    fi
    # Row order: --images-from rows, then --image files; --tokens-from rows, then --text. --batch 3
    # splits every source.
    if run "embed combined" 0 "$clip" embed --model "$e2e" --vocab "$vocab" --batch 3 \
            --images-from "$e2e_io:image" --image "${e2e_images[@]:1:2}" \
            --tokens-from "$e2e_io:text" --text "${captions[4]}" "${captions[0]}" --out "$tmp/c.safetensors" \
        && embed_compare "$tmp/c.safetensors" "image_embeds[0:4]=image_features" "image_embeds[4:6]=image_features[1:3]" \
            "text_embeds[0:5]=text_features" "text_embeds[5:6]=text_features[4:5]" "text_embeds[6:7]=text_features[0:1]"; then
        pass "embed --images-from + --image, --tokens-from + --text: rows in the documented order"
    else
        fail "embed --images-from + --image, --tokens-from + --text: rows in the documented order"
    fi
    # The vocabulary: CLIP_VOCAB, or the file beside the model; a model alone in a directory
    # (a link to e2e.safetensors) has none beside it.
    mkdir -p "$tmp/alone"
    ln -sf "$e2e" "$tmp/alone/e2e.safetensors"
    if run "embed CLIP_VOCAB" 0 env CLIP_VOCAB="$vocab" "$clip" embed --model "$tmp/alone/e2e.safetensors" --text "${captions[@]}" \
            --out "$tmp/t.safetensors" \
        && embed_compare "$tmp/t.safetensors" text_embeds=text_features; then
        pass "embed --text with CLIP_VOCAB instead of --vocab"
    else
        fail "embed --text with CLIP_VOCAB instead of --vocab"
    fi
    if run "embed vocabulary beside the model" 0 env -u CLIP_VOCAB "$clip" embed --model "$e2e" --text "${captions[@]}" \
            --out "$tmp/t2.safetensors" \
        && embed_compare "$tmp/t2.safetensors" text_embeds=text_features; then
        pass "embed --text with the vocabulary beside the model"
    else
        fail "embed --text with the vocabulary beside the model"
    fi
    if run "embed no vocabulary" 1 env -u CLIP_VOCAB "$clip" embed --model "$tmp/alone/e2e.safetensors" --text "${captions[0]}" \
            --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "--vocab" && contains "$tmp/stderr" "CLIP_VOCAB" && [[ ! -e "$tmp/x.safetensors" ]]; then
        pass "embed --text without a vocabulary: exit 1, names --vocab and CLIP_VOCAB"
    else
        fail "embed --text without a vocabulary: exit 1, names --vocab and CLIP_VOCAB"
    fi
    if run "embed too long" 1 "$clip" embed --model "$e2e" --vocab "$vocab" --text "$long_text" --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "is too long for context length 77" && [[ ! -e "$tmp/x.safetensors" ]]; then
        pass "embed --text too long: exit 1, nothing written"
    else
        fail "embed --text too long: exit 1, nothing written"
    fi
    if run "embed --truncate" 0 "$clip" embed --model "$e2e" --vocab "$vocab" --truncate --text "$long_text" --out "$tmp/t3.safetensors"; then
        pass "embed --text too long with --truncate"
    else
        fail "embed --text too long with --truncate"
    fi
    if run "embed missing image" 1 "$clip" embed --model "$e2e" --image "$images/rocket.jpg" "$tmp/no-such-image.jpg" \
            --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "no-such-image.jpg" && [[ ! -e "$tmp/x.safetensors" ]]; then
        pass "embed --image of a missing file: exit 1, names it, nothing written"
    else
        fail "embed --image of a missing file: exit 1, names it, nothing written"
    fi
    if run "embed corrupt image" 1 "$clip" embed --model "$e2e" --image "$images/rocket.jpg" "$tmp/bad.jpg" --out "$tmp/x.safetensors" \
        && contains "$tmp/stderr" "bad.jpg" && [[ ! -e "$tmp/x.safetensors" ]]; then
        pass "embed --image of a corrupt file: exit 1, names it, nothing written"
    else
        fail "embed --image of a corrupt file: exit 1, names it, nothing written"
    fi
fi

finish cli
