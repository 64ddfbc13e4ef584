#!/usr/bin/env python3
"""Reads safetensors files with the standard library only (struct + json), for tests/cli/check.sh.

  safetensors_check.py compare OUT NAME REF REF_NAME [TOL [abs]]
                                                       tensors equal within TOL * max(1, max|ref|), TOL 1e-4;
                                                       with "abs", within TOL. NAME[a:b] (either name)
                                                       compares rows a..b-1 of the first axis
  safetensors_check.py convert IN NAME DTYPE OUT      writes IN's tensor NAME as DTYPE (F16, BF16) to OUT
  safetensors_check.py names FILE                      the tensor names, one a line
  safetensors_check.py parameters FILE                 element count, BatchNorm statistics excluded
  safetensors_check.py bench-json                      stdin: one JSON line per measurement
  safetensors_check.py shape FILE NAME                 the tensor's dtype and shape, e.g. "F32 [3, 224, 224]"
  safetensors_check.py token-case CASES FIELD WHICH    a case of tokenizer_cases.json: WHICH is an id or
                                                       "long" (the first that raises without truncate), or
                                                       "fits-non-ascii" (the first non-ASCII one that does not);
                                                       FIELD text prints the raw text (no newline),
                                                       FIELD row its tokenize_truncate row as JSON
  safetensors_check.py zeroshot IO LABELS [TOL]        stdin: `clip zeroshot --json` lines, image i on line i;
                                                       each label's probability equals softmax(IO's
                                                       logits_per_image[i]) at the label's line in LABELS
                                                       (the captions IO was made with), within TOL (1e-4)
  safetensors_check.py search INDEX QUERIES NAME K     stdin: `clip search --json` lines, query i on line i; each
                                                       equals the brute-force top K of the index's embeddings
                                                       against row i of QUERIES:NAME (normalised), in double
  safetensors_check.py index-paths INDEX               the indexed paths, one a line
"""
import json
import math
import struct
import sys

FORMATS = {"F32": "f", "F64": "d", "F16": "e", "I64": "q", "I32": "i", "U8": "B"}


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n)), 8 + n


def read(path, name):
    """(shape, dtype, values) of tensor `name`; "name[a:b]" gives rows a..b-1 of the first axis."""
    rows = None
    if name.endswith("]") and "[" in name:
        name, _, bounds = name[:-1].rpartition("[")
        rows = [int(b) for b in bounds.split(":")]
    shape, dtype, values = read_whole(path, name)
    if rows is None:
        return shape, dtype, values
    a, b = rows
    if not 0 <= a <= b <= shape[0]:
        sys.exit(f"{path}:{name} has {shape[0]} rows, cannot take rows [{a}:{b}]")
    row = math.prod(shape[1:])
    return [b - a] + shape[1:], dtype, values[a * row:b * row]


def read_whole(path, name):
    h, start = header(path)
    if name not in h:
        sys.exit(f"{path}: no tensor {name!r} (has {sorted(k for k in h if k != '__metadata__')})")
    entry = h[name]
    begin, end = entry["data_offsets"]
    with open(path, "rb") as f:
        f.seek(start + begin)
        data = f.read(end - begin)
    if entry["dtype"] == "BF16":
        raw = struct.unpack(f"<{len(data) // 2}H", data)
        values = [struct.unpack("<f", struct.pack("<I", v << 16))[0] for v in raw]
    else:
        code = FORMATS[entry["dtype"]]
        values = list(struct.unpack(f"<{len(data) // struct.calcsize(code)}{code}", data))
    return entry["shape"], entry["dtype"], values


def compare(out, name, ref, ref_name, tolerance="1e-4", mode="relative"):
    shape, dtype, got = read(out, name)
    ref_shape, _, want = read(ref, ref_name)
    if dtype != "F32":
        sys.exit(f"{out}:{name} is {dtype}, expected F32")
    if shape != ref_shape:
        sys.exit(f"{out}:{name} has shape {shape}, {ref}:{ref_name} has {ref_shape}")
    diff = max((abs(a - b) for a, b in zip(got, want)), default=0.0)
    if mode == "abs":
        bound = float(tolerance)
    elif mode == "relative":
        bound = float(tolerance) * max(1.0, max((abs(b) for b in want), default=0.0))
    else:
        sys.exit(f"unknown tolerance mode {mode!r} (expected abs)")
    if not diff <= bound or any(math.isnan(a) for a in got):
        sys.exit(f"{out}:{name} vs {ref}:{ref_name}: max abs diff {diff:.3g} > {bound:.3g}")
    print(f"{name} {shape} matches {ref_name}: max abs diff {diff:.3g} (bound {bound:.3g})")


def convert(path, name, dtype, out):
    shape, _, values = read(path, name)
    if dtype == "BF16":  # round to nearest even on the upper 16 bits
        bits = [struct.unpack("<I", struct.pack("<f", v))[0] for v in values]
        data = struct.pack(f"<{len(bits)}H", *(((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits))
    else:
        data = struct.pack(f"<{len(values)}{FORMATS[dtype]}", *values)
    text = json.dumps({name: {"dtype": dtype, "shape": shape, "data_offsets": [0, len(data)]}}).encode()
    text += b" " * (-len(text) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def parameters(path):
    h, _ = header(path)
    return sum(math.prod(e["shape"]) for k, e in h.items()
               if k != "__metadata__" and "running_" not in k and "num_batches_tracked" not in k)


def bench_json():
    fields = {"model": str, "task": str, "batch": int, "threads": int, "items_per_s": (int, float),
              "ms_per_batch": (int, float), "peak_rss_mb": (int, float)}
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not lines:
        sys.exit("bench printed nothing")
    for line in lines:
        row = json.loads(line)
        for key, kind in fields.items():
            if not isinstance(row.get(key), kind):
                sys.exit(f"bench line lacks {key!r} of type {kind}: {line}")
        if not row["items_per_s"] > 0 or not row["ms_per_batch"] > 0:
            sys.exit(f"bench line has non-positive timings: {line}")
    print(f"{len(lines)} JSON line(s) with {', '.join(fields)}")


def zeroshot(io, labels_file, tolerance="1e-4"):
    with open(labels_file, encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    shape, _, logits = read(io, "logits_per_image")
    n, m = shape
    if m != len(labels):
        sys.exit(f"{labels_file} has {len(labels)} labels, {io}:logits_per_image has {m} columns")
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) != n:
        sys.exit(f"expected {n} JSON lines (one per image), got {len(lines)}")
    worst = 0.0
    for i, line in enumerate(lines):
        row = json.loads(line)
        if sorted(row) != ["image", "labels", "probs"] or len(row["labels"]) != len(row["probs"]):
            sys.exit(f"line {i}: expected image, labels, probs of one length: {line}")
        top = max(logits[i * m:(i + 1) * m])
        exps = [math.exp(v - top) for v in logits[i * m:(i + 1) * m]]
        want = {label: e / sum(exps) for label, e in zip(labels, exps)}
        if row["probs"] != sorted(row["probs"], reverse=True):
            sys.exit(f"line {i}: probabilities not in decreasing order: {row['probs']}")
        for label, p in zip(row["labels"], row["probs"]):
            worst = max(worst, abs(p - want[label]))
    if not worst <= float(tolerance):
        sys.exit(f"zero-shot probabilities differ from softmax(logits_per_image) by {worst:.3g} > {tolerance}")
    print(f"{n} images: probabilities within {worst:.3g} of softmax(logits_per_image)")


def index_paths(index):
    _, _, offsets = read(index, "path_offsets")
    h, start = header(index)
    begin, end = h["path_bytes"]["data_offsets"]
    with open(index, "rb") as f:
        f.seek(start + begin)
        data = f.read(end - begin)
    return [data[offsets[i]:offsets[i + 1]].decode("utf-8", "surrogateescape") for i in range(len(offsets) - 1)]


def search(index, queries, name, k, tolerance=1e-5):
    k = int(k)
    (n, d), _, rows = read(index, "embeddings")
    paths = index_paths(index)
    (q, qd), _, wanted = read(queries, name)
    if qd != d:
        sys.exit(f"queries have {qd} columns, the index {d}")
    lines = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if len(lines) != q:
        sys.exit(f"expected {q} JSON lines (one per query), got {len(lines)}")
    for i, line in enumerate(lines):
        query = wanted[i * d:(i + 1) * d]
        norm = math.sqrt(sum(v * v for v in query))
        scores = {paths[r]: sum(a * b for a, b in zip(rows[r * d:(r + 1) * d], query)) / norm for r in range(n)}
        best = sorted(scores.values(), reverse=True)[:k]
        results = json.loads(line)["results"]
        if len(results) != min(k, n):
            sys.exit(f"query {i}: {len(results)} results, expected {min(k, n)}")
        if len({r["path"] for r in results}) != len(results):
            sys.exit(f"query {i}: a path appears twice: {results}")
        for rank, r in enumerate(results):
            # Each result scores what brute force gives it, and ranks where brute force puts it (up
            # to float rounding between the tool's f32 and this double computation).
            if abs(scores[r["path"]] - r["score"]) > tolerance:
                sys.exit(f"query {i}: {r['path']} scored {r['score']}, brute force {scores[r['path']]}")
            if abs(best[rank] - r["score"]) > tolerance:
                sys.exit(f"query {i}: rank {rank} scored {r['score']}, brute force's rank {rank} is {best[rank]}")
    print(f"{q} queries: the brute-force top {k} of {n}")


def token_case(cases_file, field, which):
    with open(cases_file, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    if which == "long":
        case = next(c for c in cases if c["raises_without_truncate"])
    elif which == "fits-non-ascii":
        case = next(c for c in cases if not c["raises_without_truncate"] and not c["text"].isascii())
    else:
        case = next(c for c in cases if str(c["id"]) == which)
    if field == "text":
        sys.stdout.buffer.write(case["text"].encode("utf-8"))
    elif field == "row":
        print(json.dumps(case["tokenize_truncate"]))
    else:
        sys.exit(f"unknown field {field!r}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "compare":
        compare(*args)
    elif command == "convert":
        convert(*args)
    elif command == "names":
        h, _ = header(args[0])
        print("\n".join(k for k in h if k != "__metadata__"))
    elif command == "parameters":
        print(parameters(args[0]))
    elif command == "bench-json":
        bench_json()
    elif command == "shape":
        _, dtype, _ = read(args[0], args[1])
        print(dtype, header(args[0])[0][args[1]]["shape"])
    elif command == "token-case":
        token_case(*args)
    elif command == "zeroshot":
        zeroshot(*args)
    elif command == "search":
        search(*args)
    elif command == "index-paths":
        print("\n".join(index_paths(args[0])))
    else:
        sys.exit(f"unknown command {command!r}")
