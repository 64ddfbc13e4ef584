#!/usr/bin/env bash
# tests/cli/zeroshot.sh: `clip zeroshot` end to end: the probabilities on the reference photos
# equal the ones computed from the reference model's own outputs (softmax of CLIP.forward's
# logits, with the captions as labels and "{}" as the template), the output forms, and the errors.
#
#   zeroshot.sh CLIP_EXE [SOURCE_ROOT]
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

check "zeroshot --help" run "help" 0 "$clip" zeroshot --help
if run "no labels" 2 "$clip" zeroshot --model ViT-B/32 x.jpg --labels a --labels-file b.txt && contains "$tmp/stderr" "excludes"; then
    pass "zeroshot --labels with --labels-file: usage error"
else
    fail "zeroshot --labels with --labels-file: usage error"
fi
# Labels and templates are checked before the model is built, so the preset costs nothing here.
if run "missing labels file" 1 "$clip" zeroshot --model ViT-B/32 --labels-file "$tmp/no-labels.txt" x.jpg \
    && contains "$tmp/stderr" "no-labels.txt"; then
    pass "zeroshot with a missing labels file: exit 1, names it"
else
    fail "zeroshot with a missing labels file: exit 1, names it"
fi
if run "no labels at all" 1 "$clip" zeroshot --model ViT-B/32 x.jpg && contains "$tmp/stderr" "--labels"; then
    pass "zeroshot without labels: exit 1, names --labels"
else
    fail "zeroshot without labels: exit 1, names --labels"
fi
if run "bad template" 1 "$clip" zeroshot --model ViT-B/32 --labels a,b --template "a photo" x.jpg \
    && contains "$tmp/stderr" "no {} for the label"; then
    pass "zeroshot with a template without {}: exit 1, says so"
else
    fail "zeroshot with a template without {}: exit 1, says so"
fi
if run "repeated label" 1 "$clip" zeroshot --model ViT-B/32 --labels cat,dog,cat x.jpg && contains "$tmp/stderr" "appears twice"; then
    pass "zeroshot with a repeated label: exit 1, says so"
else
    fail "zeroshot with a repeated label: exit 1, says so"
fi

vocab="$reference/bpe_simple_vocab_16e6.txt.gz"
e2e="$reference/e2e.safetensors"
e2e_io="$reference/e2e_io.safetensors"
images="$reference/images"
if [[ ! -f "$e2e" || ! -f "$vocab" || ! -d "$images" ]]; then
    echo "skipped: zeroshot checks on the reference model, fixtures not found at $reference (set CLIP_REFERENCE_DIR)"
    finish zeroshot
    exit
fi

e2e_images=("$images/chelsea_cat.png" "$images/rocket.jpg" "$images/camera_gray_small.png" "$images/astronaut_rgba_portrait.png")
printf '%s\n' "a photo of a cat" "a rocket on a launch pad at night" "a black and white photo of a man with a camera" \
    "an astronaut in an orange suit" "a cup of coffee" >"$tmp/captions.txt"
zs=("$clip" zeroshot --model "$e2e" --vocab "$vocab")

# The reference: captions as labels, "{}" as the template, so each class embedding is the
# normalised text feature and the probabilities are softmax(logits_per_image). --batch 3 splits
# the 4 images 3 + 1.
if run "zeroshot json" 0 "${zs[@]}" --labels-file "$tmp/captions.txt" --template "{}" --top-k 5 --json --batch 3 "${e2e_images[@]}" \
    && "${check_py[@]}" zeroshot "$e2e_io" "$tmp/captions.txt" <"$tmp/stdout" >>"$tmp/stderr" 2>&1; then
    pass "zeroshot --json on the reference photos: softmax(logits_per_image) within 1e-4"
else
    fail "zeroshot --json on the reference photos: softmax(logits_per_image) within 1e-4"
fi
# --top-k 2 keeps the two best of the same ranking, as text.
if run "zeroshot text" 0 "${zs[@]}" --labels-file "$tmp/captions.txt" --template "{}" --top-k 2 "${e2e_images[@]}" \
    && [[ "$(wc -l <"$tmp/stdout")" -eq 12 ]] && [[ "$(head -1 "$tmp/stdout")" == "${e2e_images[0]}" ]]; then
    pass "zeroshot text output: the image, then its top 2"
else
    fail "zeroshot text output: the image, then its top 2"
fi
# The built-in ImageNet set and a templates file.
printf 'a photo of a {}.\nart of the {}.\n' >"$tmp/templates.txt"
for templates in imagenet "$tmp/templates.txt"; do
    if run "zeroshot templates" 0 "${zs[@]}" --labels "cat, rocket,astronaut" --templates "$templates" --json "${e2e_images[1]}" \
        && python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); assert sorted(r["labels"])==["astronaut","cat","rocket"]; assert abs(sum(r["probs"])-1)<1e-5' <"$tmp/stdout"; then
        pass "zeroshot --templates $(basename "$templates"): three labels, probabilities sum to 1"
    else
        fail "zeroshot --templates $(basename "$templates"): three labels, probabilities sum to 1"
    fi
done
# A broken image among good ones: the good ones are classified, the broken one named, exit 1.
head -c 5000 "$images/rocket.jpg" >"$tmp/cut.jpg"
if run "broken image" 1 "${zs[@]}" --labels "cat,rocket" --json "${e2e_images[0]}" "$tmp/cut.jpg" "$tmp/missing.png" \
    && [[ "$(wc -l <"$tmp/stdout")" -eq 1 ]] && contains "$tmp/stderr" "cut.jpg" && contains "$tmp/stderr" "missing.png" \
    && contains "$tmp/stderr" "2 of 3 images could not be read"; then
    pass "zeroshot with broken images: the others classified, each named, exit 1"
else
    fail "zeroshot with broken images: the others classified, each named, exit 1"
fi
# vit.safetensors has a 1000-token table; the vocabulary beside it has 49408 tokens.
if run "wrong vocab" 1 env -u CLIP_VOCAB "$clip" zeroshot --model "$reference/vit.safetensors" --labels a,b "${e2e_images[0]}" \
    && contains "$tmp/stderr" "49408 tokens" && contains "$tmp/stderr" "1000 rows"; then
    pass "zeroshot with a vocabulary larger than the model's token table: exit 1, says so"
else
    fail "zeroshot with a vocabulary larger than the model's token table: exit 1, says so"
fi
cp "$e2e" "$tmp/alone.safetensors"
if run "no vocab" 1 env -u CLIP_VOCAB "$clip" zeroshot --model "$tmp/alone.safetensors" --labels a,b "${e2e_images[0]}" \
    && contains "$tmp/stderr" "--vocab"; then
    pass "zeroshot without a vocabulary: exit 1, names --vocab"
else
    fail "zeroshot without a vocabulary: exit 1, names --vocab"
fi

finish zeroshot
