#!/bin/sh
# Run libFuzzer targets for a bounded time each (make fuzz).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
#
# Each target starts from a scratch copy of tests/fuzz/corpus/TARGET in
# BUILD_DIR/run/TARGET, so the committed corpus is never written; what a
# run adds stays in that scratch directory. A crash, leak, timeout or
# broken invariant leaves its input in BUILD_DIR/artifacts and makes this
# script exit 1 once every target has run.
set -u

if [ $# -lt 3 ]; then
    echo "usage: $0 BUILD_DIR SECONDS TARGET..." >&2
    exit 2
fi
build=$(cd "$1" && pwd)
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
art=$build/artifacts
failed=""

mkdir -p "$art"
for t in "$@"; do
    case $t in
    fuzz_request) opts="-max_len=8192 -timeout=20 -dict=$here/http.dict" ;;
    fuzz_http)    opts="-max_len=8192 -timeout=10 -dict=$here/http.dict" ;;
    fuzz_conf)    opts="-max_len=4096 -timeout=10 -dict=$here/conf.dict" ;;
    *)            opts="-timeout=10" ;;
    esac
    work=$build/run/$t
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp "$here/corpus/$t/"* "$work/corpus/"
    echo "fuzz: $t for ${secs}s"
    # shellcheck disable=SC2086
    "$build/$t" $opts -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$art/$t-" "$work/corpus" >"$work/log" 2>&1
    rc=$?
    last=$(grep -a '^#[0-9]' "$work/log" | tail -n 1)
    execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
    echo "  ${last:-no progress line}"
    if [ $rc -ne 0 ]; then
        echo "  FAILED (exit $rc); log: $work/log"
        grep -a -E 'invariant broken|ERROR:|SUMMARY:|runtime error|Test unit written' \
            "$work/log" | sed 's/^/  /' | head -n 12
        failed="$failed $t"
    else
        echo "  ok, ${execs:-?} exec/s"
    fi
done

if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed (inputs in $art)"
    exit 1
fi
echo "fuzz: all targets ran clean"
