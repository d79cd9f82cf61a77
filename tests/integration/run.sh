#!/usr/bin/env bash
# run.sh - run corral's integration tests.
#
#   tests/integration/run.sh            every tests/integration/[0-9][0-9]-*.sh
#   tests/integration/run.sh 05 12      only the tests whose name starts so
#
# Each test runs in a fresh temporary directory (removed afterwards) under
# `timeout 180`, with CORRAL set to the absolute path of the binary (default:
# build/corral under the repository root). Prints PASS/FAIL per test, the
# tail of a failed test's output and of corral's log, then "N passed, N
# failed"; exits 1 if any test failed. A test cannot pass by skipping: a
# missing tool fails it.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
: "${CORRAL:=$ROOT/build/corral}"
case "$CORRAL" in
    /*) ;;
    *) CORRAL="$(pwd)/$CORRAL" ;;
esac
export CORRAL
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
SANITIZER_RE='(ERROR|WARNING): [A-Za-z]+Sanitizer|runtime error:'

passed=0
failed=0
failed_names=()

# Last resort after a test: anything it recorded and left running is
# stopped by pid (after checking the pid is still that process).
reap_leftovers() {
    local dir=$1 kind pid exe
    [ -f "$dir/.pids" ] || return 0
    sort -u "$dir/.pids" | while read -r kind pid; do
        [ -r "/proc/$pid/stat" ] || continue
        case "$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" in
            ""|Z|X) continue ;;     # gone, or a zombie waiting for its parent
        esac
        case "$kind" in
            corral|worker)
                exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
                case "$exe" in "$CORRAL"|"$CORRAL (deleted)") ;; *) continue ;; esac ;;
            backend)
                tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q 'backend\.py' || continue ;;
            *) continue ;;
        esac
        echo "  (left running by the test: $kind $pid; killed)"
        kill -KILL "$pid" 2>/dev/null
    done
}

selected() {
    local name=$1 p
    [ "${#FILTERS[@]}" -eq 0 ] && return 0
    for p in "${FILTERS[@]}"; do
        case "$name" in "$p"*) return 0 ;; esac
    done
    return 1
}

FILTERS=("$@")

for t in "$HERE"/[0-9][0-9]-*.sh; do
    [ -f "$t" ] || continue
    name=$(basename "$t" .sh)
    selected "$name" || continue
    dir=$(mktemp -d)
    start=$(date +%s)
    if command -v timeout >/dev/null 2>&1; then
        (cd "$dir" && TEST_DIR="$dir" timeout -k 15 "$TEST_TIMEOUT" bash "$t") \
            > "$dir/.output" 2>&1 < /dev/null
        rc=$?
    else
        echo "required tool not found: timeout" > "$dir/.output"
        rc=127
    fi
    secs=$(( $(date +%s) - start ))
    if [ "$rc" = 0 ]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name"
        if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
            echo "  (timed out after ${TEST_TIMEOUT} s)"
        else
            echo "  (exit status $rc after ${secs} s)"
        fi
        failed=$((failed + 1))
        failed_names+=("$name")
        echo "  --- tail of test output"
        tail -n 40 "$dir/.output" | sed 's/^/  | /'
        for f in "$dir"/corral*.log; do
            [ -f "$f" ] || continue
            if grep -Eq "$SANITIZER_RE" "$f" && ! grep -q 'sanitizer report in' "$dir/.output"; then
                echo "  --- sanitizer report in $(basename "$f")"
                grep -Em1 -A 40 "$SANITIZER_RE" "$f" | sed 's/^/  | /'
            fi
            echo "  --- tail of $(basename "$f")"
            tail -n 25 "$f" | sed 's/^/  | /'
        done
    fi
    reap_leftovers "$dir"
    rm -rf "$dir"
done

if [ "$failed" -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
