#!/usr/bin/env bash
# tests/cli/index.sh: `clip index` and `clip search` end to end: a folder of 1,000 generated
# images is indexed with a progress bar, broken files are skipped and listed, re-runs embed only
# what changed, searches return the brute-force top k, an index refuses another model, and a run
# killed with SIGKILL leaves the previous index intact.
#
#   index.sh CLIP_EXE [SOURCE_ROOT]
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

check "index --help" run "help" 0 "$clip" index --help
check "search --help" run "help" 0 "$clip" search --help
mkdir -p "$tmp/empty"
if run "empty folder" 1 "$clip" index --model ViT-B/32 --images "$tmp/empty" --out "$tmp/e.index" \
    && contains "$tmp/stderr" "no .jpg, .jpeg or .png files" && [[ ! -e "$tmp/e.index" ]]; then
    pass "index of an empty folder: exit 1, says so, nothing written"
else
    fail "index of an empty folder: exit 1, says so, nothing written"
fi
if run "missing folder" 1 "$clip" index --model ViT-B/32 --images "$tmp/nowhere" --out "$tmp/e.index" && contains "$tmp/stderr" "nowhere"; then
    pass "index of a missing folder: exit 1, names it"
else
    fail "index of a missing folder: exit 1, names it"
fi
printf 'not an index' >"$tmp/garbage.index"
if run "garbage index" 1 "$clip" search --index "$tmp/garbage.index" --model ViT-B/32 --text x && contains "$tmp/stderr" "garbage.index"; then
    pass "search of a file that is no index: exit 1, names it"
else
    fail "search of a file that is no index: exit 1, names it"
fi
if run "no query" 1 "$clip" search --index "$tmp/garbage.index" --model ViT-B/32 && contains "$tmp/stderr" "--text or --image"; then
    pass "search without a query: exit 1"
else
    fail "search without a query: exit 1"
fi

vocab="$reference/bpe_simple_vocab_16e6.txt.gz"
e2e="$reference/e2e.safetensors"
images="$reference/images"
if [[ ! -f "$e2e" || ! -f "$vocab" || ! -d "$images" ]]; then
    echo "skipped: index/search checks on the reference model, fixtures not found at $reference (set CLIP_REFERENCE_DIR)"
    finish index
    exit
fi

# 1,000 generated PNGs in 10 subfolders, one real JPEG, one broken JPEG, and a file that is no image.
folder="$tmp/photos"
python3 "$here/make_images.py" "$folder" 1000 7
cp "$images/rocket.jpg" "$folder/group-00/rocket.jpg"
head -c 3000 "$images/rocket.jpg" >"$folder/group-01/broken.jpg"
printf 'notes' >"$folder/notes.txt"
index="$tmp/photos.index"

if run "index" 3 "$clip" index --model "$e2e" --images "$folder" --out "$index" --batch 50 \
    && contains "$tmp/stderr" "embedding [##############################] 1002/1002 (100%)" \
    && contains "$tmp/stdout" "indexed 1001 images" && contains "$tmp/stderr" "skipped 1 file(s)" && contains "$tmp/stderr" "broken.jpg"; then
    pass "index of 1,002 image files: progress bar to 100%, 1,001 indexed, the broken one listed, exit 3"
else
    fail "index of 1,002 image files: progress bar to 100%, 1,001 indexed, the broken one listed, exit 3"
fi
if [[ "$("${check_py[@]}" index-paths "$index" | wc -l)" -eq 1001 ]] && ! "${check_py[@]}" index-paths "$index" | grep -q 'broken\|notes'; then
    pass "the index holds the 1,001 readable images, not the broken file or the text file"
else
    fail "the index holds the 1,001 readable images, not the broken file or the text file"
fi

# Searches: the brute-force top 10 over the stored embeddings, for an image and two text queries
# (their embeddings from `clip embed`, the same model and preprocessing).
query_image="$folder/group-01/image-00311.png"
"$clip" embed --model "$e2e" --vocab "$vocab" --image "$query_image" --text "a red square" "a photo of a rocket" \
    --out "$tmp/queries.safetensors" >/dev/null
if run "search image" 0 "$clip" search --index "$index" --model "$e2e" --image "$query_image" --top-k 10 --json \
    && "${check_py[@]}" search "$index" "$tmp/queries.safetensors" image_embeds 10 <"$tmp/stdout" >>"$tmp/stderr" 2>&1 \
    && [[ "$(python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["results"][0]["path"])' <"$tmp/stdout")" == "$query_image" ]]; then
    pass "search --image: the brute-force top 10, the image itself first"
else
    fail "search --image: the brute-force top 10, the image itself first"
fi
if run "search text" 0 "$clip" search --index "$index" --model "$e2e" --vocab "$vocab" --text "a red square" "a photo of a rocket" --top-k 10 --json \
    && "${check_py[@]}" search "$index" "$tmp/queries.safetensors" text_embeds 10 <"$tmp/stdout" >>"$tmp/stderr" 2>&1; then
    pass "search --text (2 queries): the brute-force top 10 of each"
else
    fail "search --text (2 queries): the brute-force top 10 of each"
fi
if run "search text output" 0 "$clip" search --index "$index" --model "$e2e" --vocab "$vocab" --text "a red square" --top-k 3 \
    && [[ "$(wc -l <"$tmp/stdout")" -eq 4 ]] && [[ "$(head -1 "$tmp/stdout")" == "text: a red square" ]]; then
    pass "search text output: the query, then its top 3"
else
    fail "search text output: the query, then its top 3"
fi

# Re-runs: the broken file is tried again; a changed file is re-embedded, a deleted one dropped.
if run "rerun" 3 "$clip" index --model "$e2e" --images "$folder" --out "$index" \
    && contains "$tmp/stdout" "(0 embedded, 1001 unchanged, 0 removed)"; then
    pass "re-run: nothing re-embedded"
else
    fail "re-run: nothing re-embedded"
fi
rm "$folder/group-01/broken.jpg" "$folder/group-02/image-00002.png"
python3 "$here/make_images.py" "$tmp/other" 1 99
sleep 0.01
cp "$tmp/other/group-00/image-00000.png" "$folder/group-00/image-00000.png"
if run "rerun changed" 0 "$clip" index --model "$e2e" --images "$folder" --out "$index" \
    && contains "$tmp/stdout" "indexed 1000 images" && contains "$tmp/stdout" "(1 embedded, 999 unchanged, 1 removed)"; then
    pass "re-run after a change and a deletion: 1 embedded, 1 removed, exit 0"
else
    fail "re-run after a change and a deletion: 1 embedded, 1 removed, exit 0"
fi
if run "up to date" 0 "$clip" index --model "$e2e" --images "$folder" --out "$index" && contains "$tmp/stdout" "up to date"; then
    pass "re-run with nothing changed: up to date"
else
    fail "re-run with nothing changed: up to date"
fi

# Another spelling of the folder is the same folder; --ann on an up-to-date index adds the graph.
if run "spelling" 0 "$clip" index --model "$e2e" --images "$folder/./" --out "$index" && contains "$tmp/stdout" "up to date"; then
    pass "re-run with --images DIR/./: up to date"
else
    fail "re-run with --images DIR/./: up to date"
fi
if run "ann later" 0 "$clip" index --model "$e2e" --images "$folder" --out "$index" --ann always \
    && contains "$tmp/stdout" "built its HNSW graph" && "${check_py[@]}" names "$index" | grep -qx hnsw \
    && run "ann never" 0 "$clip" index --model "$e2e" --images "$folder" --out "$index" --ann never \
    && contains "$tmp/stdout" "removed its HNSW graph" && ! "${check_py[@]}" names "$index" | grep -qx hnsw; then
    pass "--ann always / never on an up-to-date index: the graph added, then removed"
else
    fail "--ann always / never on an up-to-date index: the graph added, then removed"
fi

# Another model: refused, the index untouched.
cp "$index" "$tmp/before.index"
for command in index search; do
    if [[ $command == index ]]; then args=(index --images "$folder" --out "$index"); else args=(search --index "$index" --image "$query_image"); fi
    if run "other model" 1 "$clip" "${args[@]}" --model "$reference/vit.safetensors" \
        && contains "$tmp/stderr" "built by another model" && cmp -s "$index" "$tmp/before.index"; then
        pass "$command with another model: exit 1, says so, index untouched"
    else
        fail "$command with another model: exit 1, says so, index untouched"
    fi
done

# The HNSW graph: approximate search agrees with exact search here.
if run "ann" 0 "$clip" index --model "$e2e" --images "$folder" --out "$tmp/ann.index" --ann always \
    && contains "$tmp/stdout" "with an HNSW graph"; then
    pass "index --ann always: the graph is built"
else
    fail "index --ann always: the graph is built"
fi
if run "ann search" 0 "$clip" search --index "$tmp/ann.index" --model "$e2e" --image "$query_image" --top-k 10 --json \
    && cp "$tmp/stdout" "$tmp/approximate.json" \
    && run "exact search" 0 "$clip" search --index "$tmp/ann.index" --model "$e2e" --image "$query_image" --top-k 10 --json --exact \
    && python3 -c '
import json, sys
a = {r["path"] for r in json.load(open(sys.argv[1]))["results"]}
e = {r["path"] for r in json.load(open(sys.argv[2]))["results"]}
sys.exit(0 if len(a & e) >= 9 else f"recall@10 {len(a & e)}/10")' "$tmp/approximate.json" "$tmp/stdout" 2>>"$tmp/stderr"; then
    pass "search through the HNSW graph: at least 9 of the exact top 10"
else
    fail "search through the HNSW graph: at least 9 of the exact top 10"
fi

# SIGKILL during a run: the previous index stays as it was. The preset's speed (tens of images a
# second here) leaves time to kill the run mid-way.
small="$tmp/small"
mkdir -p "$small"
cp "$images/rocket.jpg" "$images/chelsea_cat.png" "$small/"
if run "small index" 0 "$clip" index --model ViT-B/32 --images "$small" --out "$tmp/small.index"; then
    cp "$tmp/small.index" "$tmp/small-before.index"
    cp -r "$folder" "$small/more"
    "$clip" index --model ViT-B/32 --images "$small" --out "$tmp/small.index" --batch 8 --save-every 1000 >"$tmp/stdout" 2>"$tmp/stderr" &
    pid=$!
    for _ in $(seq 600); do
        grep -q "embedding \[" "$tmp/stderr" 2>/dev/null && break
        sleep 0.1
    done
    sleep 1
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    status=$?
    cmp -s "$tmp/small.index" "$tmp/small-before.index"
    same=$?
    if [[ $status -eq 137 && $same -eq 0 ]] && contains "$tmp/stderr" "embedding [" \
        && run "search after kill" 0 "$clip" search --index "$tmp/small.index" --model ViT-B/32 --image "$images/rocket.jpg" --top-k 1; then
        pass "index killed with SIGKILL mid-run: the previous index intact and usable"
    else
        echo "  (status $status, cmp $same)" >>"$tmp/stderr"
        fail "index killed with SIGKILL mid-run: the previous index intact and usable"
    fi
else
    fail "index killed with SIGKILL mid-run: the previous index intact and usable"
fi

finish index
