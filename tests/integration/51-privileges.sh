#!/usr/bin/env bash
# 51-privileges: run as root with user:/group: set. The master stays root;
# workers and the admin process run as that user and group, with no
# capabilities left, yet serve a port below 1024, and so does a worker
# respawned after kill -9 and every worker of a reloaded generation. The
# stats segment and the access log belong to that user and group, mode
# 0640: corralctl works for a member of the group and not for another
# user. A master that is not root refuses a user it cannot become.
#
# The test creates three system users (the service user, a member of its
# group, an outsider) and removes them when it ends.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
need useradd
need userdel
need runuser

[ "$(id -u)" = 0 ] || fail "this test must run as root (it switches users)"

SVC="crs$$"
MEMBER="crm$$"
OTHER="cro$$"
cleanup_users() {
    local u
    for u in "$MEMBER" "$OTHER" "$SVC"; do
        id "$u" >/dev/null 2>&1 && userdel "$u" >/dev/null 2>&1
    done
    getent group "$SVC" >/dev/null && groupdel "$SVC" >/dev/null 2>&1
    return 0
}
trap 'rc=$?; stop_all_users; (exit $rc); stop_all' EXIT
# the users go after corral has stopped (stop_all exits), so stop it first
stop_all_users() {
    local kind pid
    while read -r kind pid; do
        [ "$kind" = corral ] && alive "$pid" && is_ours corral "$pid" && kill -TERM "$pid"
    done < <(sort -u "$TEST_DIR/.pids")
    _masters_gone() {
        local kind pid
        while read -r kind pid; do
            [ "$kind" = corral ] && alive "$pid" && return 1
        done < <(sort -u "$TEST_DIR/.pids")
        return 0
    }
    wait_for 20 _masters_gone
    _no_svc_procs() { ! pgrep -u "$SVC" >/dev/null 2>&1; }
    id "$SVC" >/dev/null 2>&1 && wait_for 10 _no_svc_procs
    cleanup_users
}

useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$SVC" ||
    fail "useradd $SVC"
useradd --system --no-create-home --shell /usr/sbin/nologin -G "$SVC" "$MEMBER" ||
    fail "useradd $MEMBER"
useradd --system --no-create-home --shell /usr/sbin/nologin "$OTHER" || fail "useradd $OTHER"
SVC_UID=$(id -u "$SVC")
SVC_GID=$(id -g "$SVC")

# the other users must reach the binaries and the test directory
chmod 0755 "$TEST_DIR"
cp "$CORRALCTL" "$TEST_DIR/corralctl"
chmod 0755 "$TEST_DIR/corralctl"

# a free port below 1024
LOWPORT=$(python3 - <<'EOF'
import random, socket
ports = list(range(600, 1024))
random.shuffle(ports)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
EOF
)
[ -n "$LOWPORT" ] || fail "no free port below 1024"
APORT=$(free_port)
BPORT=$(start_backend b1)
cat > corral.yaml <<EOF
workers: 2
user: $SVC
listen: [ "127.0.0.1:$LOWPORT" ]
admin: { address: "127.0.0.1:$APORT" }
access_log: { path: $TEST_DIR/access.log, format: json, buffer: 0 }
upstreams:
  app: { servers: [ "127.0.0.1:$BPORT" ] }
routes:
  - { name: app, match: { path_prefix: / }, upstream: app }
EOF
start_corral corral.yaml
wait_listeners "$LOWPORT" 2 || fail "expected 2 listeners on port $LOWPORT"
assert_eq 200 "$(http_code "http://127.0.0.1:$LOWPORT/")" "GET on port $LOWPORT"

# check_ids PID WHAT: real, effective, saved and fs ids are the service
# user's, no supplementary group but its own, no capability left
check_ids() {
    local st
    st=$(cat "/proc/$1/status") || fail "$2: no /proc/$1/status"
    assert_eq "Uid: $SVC_UID $SVC_UID $SVC_UID $SVC_UID" \
        "$(printf '%s\n' "$st" | grep '^Uid:' | tr -s '\t ' ' ')" "$2: uids"
    assert_eq "Gid: $SVC_GID $SVC_GID $SVC_GID $SVC_GID" \
        "$(printf '%s\n' "$st" | grep '^Gid:' | tr -s '\t ' ' ')" "$2: gids"
    assert_eq "Groups: $SVC_GID" \
        "$(printf '%s\n' "$st" | grep '^Groups:' | tr -s '\t ' ' ' | sed 's/ $//')" "$2: groups"
    assert_eq "CapEff: 0000000000000000" \
        "$(printf '%s\n' "$st" | grep '^CapEff:' | tr -s '\t ' ' ')" "$2: capabilities"
}

assert_eq 0 "$(awk '/^Uid:/ { print $3 }' "/proc/$CORRAL_PID/status")" "the master stays root"
mapfile -t kids < <(worker_pids)
assert_eq 3 "${#kids[@]}" "two workers and the admin process"
for p in "${kids[@]}"; do
    check_ids "$p" "child $p"
done
assert_eq "$SVC" "$(ps -o user= -p "${kids[0]}" | tr -d ' ')" "ps shows the service user"

# -- files: owned by the service user and group, 0640 ---------------------------------------
SEG="/dev/shm/corral.$CORRAL_NAME"
assert_eq "$SVC:$SVC 640" "$(stat -c '%U:%G %a' "$SEG")" "stats segment owner and mode"
assert_eq "$SVC:$SVC 640" "$(stat -c '%U:%G %a' access.log)" "access log owner and mode"

# -- corralctl: the group yes, others no ---------------------------------------------------
runuser -u "$MEMBER" -- "$TEST_DIR/corralctl" -n "$CORRAL_NAME" status --interval 0 \
    > member.out 2>&1 || fail "corralctl status as a member of $SVC: $(cat member.out)"
assert_contains "$(cat member.out)" "$CORRAL_PID" "status as a group member names the master"
if runuser -u "$OTHER" -- "$TEST_DIR/corralctl" -n "$CORRAL_NAME" status --interval 0 \
    > other.out 2>&1; then
    fail "corralctl status worked for $OTHER, who is not in group $SVC"
fi
assert_contains "$(cat other.out)" "ermission denied" "status as an outsider is refused"

# -- a respawned worker binds the low port again ----------------------------------------------
export EXPECT_WORKER_EXITS=1
victim=$(ss -Hltnp "sport = :$LOWPORT" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
[ -n "$victim" ] || fail "no worker pid on port $LOWPORT"
kill -KILL "$victim"
_respawned() {
    [ "$(count_listeners "$LOWPORT")" = 2 ] &&
        ! ss -Hltnp "sport = :$LOWPORT" | grep -q "pid=$victim,"
}
wait_for 20 _respawned || fail "no worker listening on $LOWPORT again after kill -9 $victim"
for p in $(ss -Hltnp "sport = :$LOWPORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    check_ids "$p" "respawned generation worker $p"
done
assert_eq 200 "$(http_code "http://127.0.0.1:$LOWPORT/")" "GET after the respawn"

# -- a reload: every new worker binds the low port ---------------------------------------------
old=$(ss -Hltnp "sport = :$LOWPORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u | paste -sd' ')
"$CORRALCTL" reload > reload.out 2>&1 || fail "reload: $(cat reload.out)"
_new_gen() {
    local p
    [ "$(count_listeners "$LOWPORT")" = 2 ] || return 1
    for p in $(ss -Hltnp "sport = :$LOWPORT" | grep -o 'pid=[0-9]*' | cut -d= -f2); do
        case " $old " in *" $p "*) return 1 ;; esac
    done
}
wait_for 30 _new_gen || fail "the reloaded generation does not listen on $LOWPORT"
for p in $(ss -Hltnp "sport = :$LOWPORT" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    check_ids "$p" "reloaded worker $p"
done
assert_eq 200 "$(http_code "http://127.0.0.1:$LOWPORT/")" "GET after the reload"
_logged() { [ "$(wc -l < access.log)" -ge 3 ]; }
wait_for 10 _logged || fail "access log lines written by unprivileged workers"

# -- a master that is not root cannot become another user ---------------------------------------
cp "$CORRAL" "$TEST_DIR/corral-copy"
chmod 0755 "$TEST_DIR/corral-copy"
sed -e "s/^name:.*/name: $CORRAL_NAME-x/" -e "s/$LOWPORT/$(free_port)/" corral.yaml > other.yaml
chmod 0644 other.yaml
if runuser -u "$OTHER" -- timeout 20 "$TEST_DIR/corral-copy" -c "$TEST_DIR/other.yaml" \
    > refuse.out 2>&1; then
    fail "corral started as $OTHER with user: $SVC"
fi
assert_contains "$(cat refuse.out)" "only root can switch" "a non-root master refuses"
log "ok"
