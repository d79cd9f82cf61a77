#!/usr/bin/env bash
# 24-corralctl-top: `corralctl top` on a terminal (a tmux pane) shows the
# totals and a row per worker, keeps its lines within the pane's width
# after a resize, quits on 'q' and on Ctrl-C, and gives the terminal back
# (canonical mode and echo on, main screen). Without a terminal, --count N
# prints N plain blocks, each with a row per worker.
. "$(dirname "$0")/lib.sh"
. "$LIB_DIR/ctl-lib.sh"
need tmux

PORT=$(free_port)
export PORT
cat > corral.yaml <<EOF
workers: 2
listen: [ { address: "127.0.0.1:$PORT" } ]
routes:
  - { name: ping, match: { path: /ping }, respond: { status: 200, body: "pong\n" } }
EOF
start_corral corral.yaml
wait_listeners "$PORT" 2 || fail "expected 2 LISTEN sockets on $PORT"
newconn_requests 20 /ping || fail "GET /ping"
WORKERS=$(worker_pids | paste -sd' ')

# -- without a terminal --------------------------------------------------------------
"$CORRALCTL" top --count 3 --interval 0.2 > top.txt 2> top.err < /dev/null
assert_eq 0 "$?" "top --count 3 exit status (stderr: $(cat top.err))"
assert_eq 3 "$(grep -c '^corral top - ' top.txt)" "three blocks"
assert_eq 3 "$(grep -c '^SLOT ' top.txt)" "a workers table per block"
for p in $WORKERS; do
    assert_eq 3 "$(grep -cE "^ +[0-9]+ +[0-9]+ +$p " top.txt)" "a row for worker $p per block"
done
assert_eq 3 "$(grep -c '^ping ' top.txt)" "a routes table per block"

# -- on a terminal -----------------------------------------------------------------------
SOCK="$TEST_DIR/tmux.sock"
TMUX_SOCKETS+=("$SOCK")
T=(tmux -S "$SOCK")
unset TMUX
"${T[@]}" -f /dev/null new-session -d -s top -x 150 -y 40 \
    "env PS1='$ ' bash --norc --noprofile" || fail "tmux new-session"
"${T[@]}" set-option -t top remain-on-exit on > /dev/null

screen() { "${T[@]}" capture-pane -p -t top; }
_screen_has() { screen | grep -qE -- "$1"; }
# the pane's last non-empty line is a bare prompt (capture-pane drops its blank)
_prompt_back() { [ "$(screen | grep . | tail -n 1)" = '$' ]; }

start_top() {
    "${T[@]}" send-keys -t top "clear; $CORRALCTL -n $CORRAL_NAME top --interval 0.3" Enter
    wait_for 10 _screen_has '^SLOT +ID +PID' || fail "top did not draw; screen:
$(screen)"
}

# stty settings of the pane's terminal, from inside it
stty_now() {
    "${T[@]}" send-keys -t top "clear; stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | paste -sd, - | sed 's/^/STTY:/'" Enter
    wait_for 5 _screen_has '^STTY:' || fail "no stty output; screen:
$(screen)"
    screen | grep '^STTY:' | tail -n 1
}
assert_eq "STTY:icanon,echo" "$(stty_now)" "terminal settings before top"

start_top
_rows() {
    local p s
    s=$(screen)
    for p in $WORKERS; do
        printf '%s\n' "$s" | grep -qE "^ +[0-9]+ +[0-9]+ +$p +1 +running " || return 1
    done
    printf '%s\n' "$s" | grep -q "^instance $CORRAL_NAME  master $CORRAL_PID"
}
wait_for 10 _rows || fail "top shows no row per worker; screen:
$(screen)"

# resize: every line fits the new width
"${T[@]}" resize-window -t top -x 60 -y 20 2>/dev/null ||
    "${T[@]}" resize-pane -t top -x 60 -y 20
_narrow() {
    local w
    w=$(screen | awk '{ if (length($0) > m) m = length($0) } END { print m + 0 }')
    [ "$w" -le 60 ] && screen | grep -q '^SLOT'
}
wait_for 10 _narrow || fail "lines wider than 60 after the resize; screen:
$(screen)"
"${T[@]}" resize-window -t top -x 150 -y 40 2>/dev/null ||
    "${T[@]}" resize-pane -t top -x 150 -y 40

# q quits and gives the terminal back
"${T[@]}" send-keys -t top q
wait_for 5 _prompt_back || fail "no shell prompt after q; screen:
$(screen)"
assert_eq "STTY:icanon,echo" "$(stty_now)" "terminal settings after q"
if screen | grep -q '^SLOT'; then
    fail "top's screen is still shown after q (alternate screen not left)"
fi

# Ctrl-C quits and gives the terminal back too
start_top
"${T[@]}" send-keys -t top C-c
wait_for 5 _prompt_back || fail "no shell prompt after Ctrl-C; screen:
$(screen)"
assert_eq "STTY:icanon,echo" "$(stty_now)" "terminal settings after Ctrl-C"

"${T[@]}" kill-server 2>/dev/null
log "ok"
