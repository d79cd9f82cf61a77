#!/usr/bin/env bash
# 22-corralctl-errors: every way a segment can be wrong gives one line on
# stderr naming the problem and exit 1, never a crash: no segment, garbage,
# an empty or truncated file, another layout major, a copy of a live
# segment under another name, a segment whose master pid is dead (reload,
# stop, reopen refuse; reading still works, with a warning), a pid that is
# alive but not corral, a segment the user may not read. The files are the
# test's own, under names of their own, removed at the end.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"

MAGIC=0x31534d48524f4343        # CR_SHM_MAGIC, shm/layout.h
S=ctl$$                         # scratch segment names start so

READERS="status workers routes upstreams metrics stats top"
SIGNALLERS="reload stop reopen"

# every command, one line on stderr containing NEEDLE, exit 1
all_fail() {
    local name=$1 needle=$2 c
    for c in $READERS $SIGNALLERS; do
        if [ "$c" = top ]; then
            ctl -n "$name" top --count 1 --interval 0.1
        else
            ctl -n "$name" "$c"
        fi
        one_error_line "$c on $3" "$needle"
    done
}

# -- no segment --------------------------------------------------------------------
all_fail "$S-missing" "no corral instance \"$S-missing\"" "a missing segment"

# -- garbage, empty, truncated, other major ------------------------------------------
shm_scratch "$S-garbage"
f=$SCRATCH
head -c 65536 /dev/urandom > "$f"
all_fail "$S-garbage" "bad magic" "a garbage file"

shm_scratch "$S-empty"
f=$SCRATCH
: > "$f"
all_fail "$S-empty" "truncated" "an empty file"

shm_scratch "$S-short"
f=$SCRATCH
python3 - "$f" "$MAGIC" <<'EOF'
import struct, sys
open(sys.argv[1], "wb").write(struct.pack("<QHH", int(sys.argv[2], 16), 1, 0) + b"\0" * 100)
EOF
all_fail "$S-short" "truncated" "a truncated header"

shm_scratch "$S-major"
f=$SCRATCH
python3 - "$f" "$MAGIC" <<'EOF'
import struct, sys
d = bytearray(65536)
struct.pack_into("<QHH", d, 0, int(sys.argv[2], 16), 99, 3)
open(sys.argv[1], "wb").write(d)
EOF
all_fail "$S-major" "layout version 99.3" "another layout major"

# -- copies of a live segment -----------------------------------------------------------
PORT=$(free_port)
cat > corral.yaml <<EOF
workers: 1
listen: [ { address: "127.0.0.1:$PORT" } ]
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
EOF
start_corral corral.yaml
live=/dev/shm/corral.$CORRAL_NAME
[ -f "$live" ] || fail "no segment $live for the running instance"
assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/ping")" "GET /ping"

# patch FILE [NAME] [PID] [SIZE]: the header's name, master pid, or length.
# Offsets from struct cr_shm_header in shm/layout.h (master_pid at 28, name
# at 168); a changed layout bumps the major version, which would show here.
patch_copy() {
    python3 - "$@" <<'EOF'
import struct, sys
path, name, pid, size = (sys.argv[1:] + ["", "", ""])[:4]
d = bytearray(open(path, "rb").read())
if name:
    d[168:168 + 64] = name.encode() + b"\0" * (64 - len(name))
if pid:
    struct.pack_into("<i", d, 28, int(pid))
if size:
    d = d[:int(size)]
open(path, "wb").write(d)
EOF
}
size=$(stat -c %s "$live")

shm_scratch "$S-copy"
f=$SCRATCH
cp "$live" "$f"
for c in $SIGNALLERS; do
    ctl -n "$S-copy" "$c"
    one_error_line "$c on a copy under another name" "belongs to instance \"$CORRAL_NAME\""
done

shm_scratch "$S-cut"
f=$SCRATCH
cp "$live" "$f"
patch_copy "$f" "$S-cut" "" $((size / 2))
all_fail "$S-cut" "does not match its header" "a segment cut short"

# a master pid that is dead: a process of ours that has exited
sh -c 'exit 0' &
dead=$!
wait "$dead"
shm_scratch "$S-dead"
f=$SCRATCH
cp "$live" "$f"
patch_copy "$f" "$S-dead" "$dead"
for c in $SIGNALLERS; do
    ctl -n "$S-dead" "$c"
    one_error_line "$c with a dead master pid" "master pid $dead of instance \"$S-dead\" is not running"
done
# reading a stale segment works, with one warning line
ctl -n "$S-dead" status --interval 0
assert_eq 0 "$CTL_RC" "status of a stale segment (stderr: $CTL_ERR)"
assert_contains "$CTL_OUT" "(not running)" "status marks the master as not running"
assert_eq 1 "$(printf '%s\n' "$CTL_ERR" | grep -c .)" "one warning line"
assert_contains "$CTL_ERR" "is not running" "the warning"

# a master pid that is alive but not corral (this shell)
shm_scratch "$S-notcorral"
f=$SCRATCH
cp "$live" "$f"
patch_copy "$f" "$S-notcorral" "$$"
for c in $SIGNALLERS; do
    ctl -n "$S-notcorral" "$c"
    one_error_line "$c with a pid that is not corral" "pid $$ named by"
done
alive $$ || fail "this shell got a signal meant for a master"

# a corral process that is not this instance's master: a worker of the live one
wpid=$(worker_pids | head -n1)
shm_scratch "$S-worker"
f=$SCRATCH
cp "$live" "$f"
patch_copy "$f" "$S-worker" "$wpid"
ctl -n "$S-worker" reload
one_error_line "reload with a worker's pid" "not the master of instance \"$S-worker\""
alive "$wpid" || fail "the worker got a signal meant for a master"

# -- permission ---------------------------------------------------------------------------
shm_scratch "$S-perm"
f=$SCRATCH
cp "$live" "$f"
patch_copy "$f" "$S-perm"
chmod 0600 "$f"
if [ "$(id -u)" = 0 ]; then
    need setpriv
    as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
else
    chmod 0000 "$f"
    as_nobody=()
fi
for c in status metrics reload; do
    "${as_nobody[@]}" "$CORRALCTL" -n "$S-perm" "$c" > ctl.out 2> ctl.err < /dev/null
    CTL_RC=$?
    CTL_OUT=$(cat ctl.out)
    CTL_ERR=$(cat ctl.err)
    one_error_line "$c without permission" "Permission denied"
done

# nothing of ours was signalled, and the live instance is fine
alive "$CORRAL_PID" || fail "the live master died"
ctl_ok status --interval 0
assert_eq 200 "$(http_code "http://127.0.0.1:$PORT/ping")" "GET /ping at the end"

log "ok"
