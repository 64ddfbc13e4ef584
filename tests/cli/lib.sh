# tests/cli/lib.sh: what the `clip` tool's shell tests share. Sourced as
#
#   source lib.sh CLIP_EXE [SOURCE_ROOT]
#
# it sets $clip, $here, $reference (from $CLIP_REFERENCE_DIR, else SOURCE_ROOT/../shared/reference),
# $check_py (safetensors_check.py) and $tmp (removed at exit), and defines pass, fail, run,
# contains and finish.

clip="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source_root="${2:-$here/../..}"
reference="${CLIP_REFERENCE_DIR:-$source_root/../shared/reference}"
# Absolute, so that links made to fixtures from the temporary directory resolve.
if [[ -d "$reference" ]]; then reference="$(cd "$reference" && pwd)"; fi
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

# check WHAT CONDITION...: pass or fail WHAT by whether CONDITION (a command) succeeds.
check() {
    local what="$1"
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
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

# finish NAME: the summary line, and the exit status.
finish() {
    echo "$1: $passed passed, $failed failed"
    ((failed == 0))
}
