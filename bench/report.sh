#!/usr/bin/env bash
# bench/report.sh: runs bench-gemm and bench-elementwise and prints clip against its peers.
#
#   bench/report.sh [BUILD_DIR] [extra Google Benchmark flags...]
#
# BUILD_DIR defaults to build (configured with -Dbench=true, Google Benchmark installed).
# REPS (default 3) repetitions per benchmark; the tables show the medians. CLIP_NUM_THREADS sets
# the threads of both clip and the peers. The raw JSON stays in $OUT_DIR (default a temp dir).
# Figures from a loaded machine are noise: the script prints the load average before and after.
set -euo pipefail

build=${1:-build}
shift || true
reps=${REPS:-3}
out_dir=${OUT_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/clip-bench.XXXXXX")}
mkdir -p "$out_dir"

gemm_exe=$build/bench/bench-gemm
ew_exe=$build/bench/bench-elementwise
for exe in "$gemm_exe" "$ew_exe"; do
    if [[ ! -x $exe ]]; then
        echo "report.sh: $exe not found; build with: meson setup $build -Dbench=true && meson compile -C $build" >&2
        exit 1
    fi
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before: $(load)   (nproc $(nproc))"

common=(--benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true
        --benchmark_out_format=json --benchmark_format=console)
echo "running $gemm_exe ..." >&2
"$gemm_exe" "${common[@]}" --benchmark_out="$out_dir/gemm.json" "$@" >"$out_dir/gemm.txt"
echo "running $ew_exe ..." >&2
"$ew_exe" "${common[@]}" --benchmark_out="$out_dir/elementwise.json" "$@" >"$out_dir/elementwise.txt"

echo "load average after:  $(load)"
echo "raw results: $out_dir/{gemm,elementwise}.{json,txt}"
echo

python3 - "$out_dir/gemm.json" "$out_dir/elementwise.json" <<'PY'
import json, re, sys

def medians(path):
    """run_name -> benchmark entry, the median aggregate when there are repetitions."""
    with open(path) as f:
        doc = json.load(f)
    out = {}
    for b in doc["benchmarks"]:
        if b.get("error_occurred"):
            out[b["run_name"]] = {"error": b.get("error_message", "error")}
            continue
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        out[b["run_name"]] = b
    return doc.get("context", {}), out

def ratio(a, b):
    return f"{a / b:6.2f}" if a and b else "     -"

def num(x, fmt="{:8.1f}"):
    return fmt.format(x) if isinstance(x, (int, float)) else f"{'-':>8}"

ctx, gemm = medians(sys.argv[1])
reps = max([b.get("repetitions", 1) for b in gemm.values()] + [1])
print(f"GEMM  x[M,K] · w[N,K]ᵀ, GFLOP/s (median of {reps}), threads {ctx.get('clip_threads', '?')}; "
      f"plain = w.t(), packed = packed_weights, fused = packed + bias + quick_gelu, sgemm = dnnl_sgemm")
rows = {}
for name, b in gemm.items():
    m = re.match(r"gemm/(\w+)/M:(\d+)/K:(\d+)/N:(\d+)", name)
    if not m:
        continue
    v, shape = m.group(1), tuple(int(g) for g in m.groups()[1:])
    if "error" in b:
        print(f"  {name}: FAILED: {b['error']}")
        continue
    rows.setdefault(shape, {})[v] = b
hdr = (f"{'M':>4} {'K':>5} {'N':>5} | {'plain':>8} {'packed':>8} {'fused':>8} {'sgemm':>8} |"
       f" {'plain/sg':>8} {'pack/sg':>8} {'fused/sg':>8} | cold ms: {'plain':>6} {'packed':>6} {'sgemm':>6}")
print(hdr)
print("-" * len(hdr))
def gf(r, v):
    return r.get(v, {}).get("GFLOP/s")
def cold(r, v):
    c = r.get(v, {}).get("cold_ms")
    return f"{c:6.2f}" if isinstance(c, (int, float)) else f"{'-':>6}"
for shape in sorted(rows, key=lambda s: (-s[0], s[1], s[2])):
    r = rows[shape]
    p, k, f, s = gf(r, "clip_plain"), gf(r, "clip_packed"), gf(r, "clip_fused"), gf(r, "dnnl_sgemm")
    print(f"{shape[0]:>4} {shape[1]:>5} {shape[2]:>5} | {num(p)} {num(k)} {num(f)} {num(s)} |"
          f"   {ratio(p, s)}   {ratio(k, s)}   {ratio(f, s)} |          {cold(r, 'clip_plain')} "
          f"{cold(r, 'clip_packed')} {cold(r, 'dnnl_sgemm')}")
over = {}
for name, b in gemm.items():
    m = re.match(r"gemm_overhead/(\w+)/", name)
    if m and "error" not in b:
        over[m.group(1)] = b.get("real_time")
if over:
    print("fixed cost of one call (1x16x16 product), µs: " +
          ", ".join(f"{v} {t:.2f}" for v, t in over.items() if isinstance(t, (int, float))))
plans = [n for n, b in gemm.items() if b.get("plans")]
if plans:
    print("WARNING: oneDNN plans created inside the timed loop:", ", ".join(plans))
print()

_, ew = medians(sys.argv[2])
bw = {}
for name, b in ew.items():
    m = re.match(r"ew/(\w+)/threads:(\d+)", name)
    if m:
        bw.setdefault(m.group(1), {})[int(m.group(2))] = b.get("GB/s") if "error" not in b else None
print("Element-wise, GB/s (bytes moved / time, 1e9 B/s); ratios against memcpy with the same threads,")
print("and clip against its peer (raw_fma: the same 3-read-1-write traffic hand-written; dnnl_*: oneDNN)")
peers = {"clip_fma_chain": "raw_fma", "clip_gelu_chain": "raw_fma", "clip_quick_gelu_chain": "raw_fma",
         "clip_layer_norm": "dnnl_layer_norm", "clip_softmax": "dnnl_softmax"}
hdr = (f"{'kernel':<22} | {'1 thread':>8} {'2 threads':>9} | {'/memcpy 1T':>10} {'/memcpy 2T':>10} |"
       f" {'peer':<16} {'/peer 1T':>8} {'/peer 2T':>8}")
print(hdr)
print("-" * len(hdr))
mc = bw.get("memcpy", {})
order = ["memcpy", "raw_fma", "clip_fma_chain", "clip_gelu_chain", "clip_quick_gelu_chain",
         "clip_layer_norm", "dnnl_layer_norm", "clip_softmax", "dnnl_softmax"]
for kernel in order + sorted(set(bw) - set(order)):
    if kernel not in bw:
        continue
    one, two = bw[kernel].get(1), bw[kernel].get(2)
    line = f"{kernel:<22} | {num(one)} {num(two, '{:9.1f}')} |     {ratio(one, mc.get(1))}     {ratio(two, mc.get(2))} |"
    peer = peers.get(kernel)
    if peer in bw:
        line += f" {peer:<16}   {ratio(one, bw[peer].get(1))}   {ratio(two, bw[peer].get(2))}"
    print(line)
print("(layer_norm [400,768] and softmax [4800,50] are cache-resident and allocate their output.)")
PY
