#!/usr/bin/env bash
# Full check of the repository, as CI runs it (.ci/run):
#   1. build-test/  warnings as errors, -O2 with assertions, all meson tests
#   2. build-asan/  AddressSanitizer + UBSan at -O1, warnings as errors, meson tests (no examples/bench)
#   3. install      meson install into a DESTDIR, compile a program against the staged clip.pc
#   4. consumer     a separate Meson project that pulls clip in as a subproject
# Ends with one summary line per stage and "N passed, N failed" (meson tests of both builds plus
# the install and consumer checks). Exits non-zero if anything failed. Runs from any cwd.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root" || exit 1

bash scripts/install_deps.sh || { echo "install_deps failed"; echo "0 passed, 1 failed"; exit 1; }

jobs="${CLIP_JOBS:-2}"  # parallel compile/test jobs; CLIP_JOBS=1 on a busy machine
passed=0
failed=0
summary=()

# meson setup, or reconfigure an existing build dir with the given options.
setup() {
    local dir="$1"; shift
    if [[ -f "$dir/meson-private/coredata.dat" ]]; then
        meson setup --reconfigure "$dir" "$@"
    else
        rm -rf "$dir"
        meson setup "$dir" "$@"
    fi
}

# Build and test one build directory; add its meson test counts to the totals.
# Usage: run_suite NAME DIR [meson test args...] -- [meson setup args...]
run_suite() {
    local name="$1" dir="$2"; shift 2
    local test_args=()
    while [[ $# -gt 0 && "$1" != "--" ]]; do test_args+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    echo
    echo "=== $name: $dir ($*)"
    if ! setup "$dir" "$@"; then
        summary+=("$name: FAILED (meson setup)"); failed=$((failed + 1)); return
    fi
    if ! meson compile -C "$dir" -j "$jobs"; then
        summary+=("$name: FAILED (build)"); failed=$((failed + 1)); return
    fi
    local log="$dir/meson-logs/test-summary.txt" rc=0
    meson test -C "$dir" --print-errorlogs --num-processes "$jobs" "${test_args[@]}" 2>&1 \
        | tee "$log" || rc=$?
    # meson test ends with "Ok: N", "Expected Fail: N", "Fail: N", "Unexpected Pass: N",
    # "Skipped: N", "Timeout: N".
    count() { awk -v k="$1" '$0 ~ "^" k ":" { n = $NF } END { print n + 0 }' "$log"; }
    local ok xfail fail xpass skipped timeout
    ok=$(count "Ok"); xfail=$(count "Expected Fail"); fail=$(count "Fail")
    xpass=$(count "Unexpected Pass"); skipped=$(count "Skipped"); timeout=$(count "Timeout")
    local good=$((ok + xfail)) bad=$((fail + xpass + timeout))
    if [[ $rc -ne 0 && $bad -eq 0 ]]; then
        bad=1  # meson test failed without reaching its summary
    fi
    passed=$((passed + good)); failed=$((failed + bad))
    if [[ $bad -eq 0 ]]; then
        summary+=("$name: ok ($good passed, $skipped skipped)")
    else
        summary+=("$name: FAILED ($good passed, $bad failed, $skipped skipped)")
    fi
}

# Usage: run_check NAME COMMAND...
run_check() {
    local name="$1"; shift
    echo
    echo "=== $name"
    if "$@"; then
        summary+=("$name: ok"); passed=$((passed + 1))
    else
        summary+=("$name: FAILED"); failed=$((failed + 1))
    fi
}

# No -g in either build: debug information costs a third of the compile time of these
# template-heavy translation units, and CI has 90 minutes. Assertions stay on (b_ndebug=false).
run_suite "tests (werror, -O2)" build-test -- \
    -Dwerror=true -Doptimization=2 -Ddebug=false -Db_ndebug=false

ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
run_suite "tests (asan+ubsan)" build-asan --timeout-multiplier 3 -- \
    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true \
    -Doptimization=1 -Ddebug=false -Db_ndebug=false -Dbench=false -Dexamples=false

if [[ -f build-test/build.ninja ]]; then
    run_check "install check" bash tests/install/check.sh "$repo_root/build-test"
else
    summary+=("install check: FAILED (no build-test to install)"); failed=$((failed + 1))
fi
run_check "consumer check" bash tests/consumer/check.sh
# The oneDNN backend must really be in the test programs, not silently the reference fallback.
run_check "tests link libdnnl" bash -c 'ldd build-test/tests/test-ops | grep -q libdnnl'

echo
echo "=== summary"
for line in "${summary[@]}"; do
    echo "$line"
done
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
