#!/usr/bin/env bash
# 52-package: `make deb` builds a .deb into the build directory that holds
# corral, corralctl, the configuration as a conffile, the three man pages,
# the systemd unit with the settings operators rely on, the logrotate file
# and bash completion; lintian reports no error; every man page renders
# without a warning; the shipped configuration is valid; corral --version,
# corralctl --help and each command's help answer; the completion completes.
#
# The package is inspected with dpkg-deb, not installed: tests of several
# checkouts may run side by side on one machine, and dpkg holds one lock.
. "$(dirname "$0")/lib.sh"
need dpkg-buildpackage
need dpkg-deb
need lintian
need man

# -- man pages, from the source tree ----------------------------------------------------------
for page in "$REPO_ROOT"/packaging/man/*.[0-9]; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    assert_eq "" "$out" "man --warnings $(basename "$page")"
    LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null > page.txt
    assert_contains "$(cat page.txt)" "NAME" "$(basename "$page") renders"
done

# -- make deb -------------------------------------------------------------------------------
make -C "$REPO_ROOT" deb BUILD="$TEST_DIR/build" > deb.log 2>&1 ||
    fail "make deb failed: $(tail -n 30 deb.log)"
deb=$(ls "$TEST_DIR"/build/corral_*_*.deb 2>/dev/null | grep -v dbgsym | head -n 1)
[ -n "$deb" ] || fail "no .deb in the build directory: $(ls "$TEST_DIR/build")"

dpkg-deb -c "$deb" | awk '{ print $1, $NF }' > contents.txt
for want in "-rwxr-xr-x ./usr/sbin/corral" "-rwxr-xr-x ./usr/bin/corralctl" \
            "-rw-r--r-- ./etc/corral/corral.yaml" "-rw-r--r-- ./etc/logrotate.d/corral" \
            "-rw-r--r-- ./lib/systemd/system/corral.service" \
            "-rw-r--r-- ./usr/share/man/man8/corral.8.gz" \
            "-rw-r--r-- ./usr/share/man/man8/corralctl.8.gz" \
            "-rw-r--r-- ./usr/share/man/man5/corral.yaml.5.gz" \
            "-rw-r--r-- ./usr/share/bash-completion/completions/corralctl"; do
    grep -qxF -- "$want" contents.txt || fail "the package lacks \"$want\"; it has:
$(cat contents.txt)"
done
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles > conffiles.txt ||
    fail "no conffiles in the package"
grep -qx /etc/corral/corral.yaml conffiles.txt || fail "corral.yaml is not a conffile"
dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./postinst > postinst.txt || fail "no postinst"
assert_match 'adduser .*--system .*corral' "$(cat postinst.txt)" "postinst creates the corral user"
sh -n postinst.txt || fail "postinst is not valid sh"

lintian --fail-on error "$deb" > lintian.txt 2>&1 || fail "lintian: $(cat lintian.txt)"
if grep -q '^E: ' lintian.txt; then
    fail "lintian errors: $(grep '^E: ' lintian.txt)"
fi

# -- what is inside ---------------------------------------------------------------------------
dpkg-deb -x "$deb" root || fail "dpkg-deb -x"
unit=root/lib/systemd/system/corral.service
for line in "ExecReload=/usr/bin/corralctl reload" "Restart=on-failure" "NoNewPrivileges=yes" \
            "ProtectSystem=strict" "ProtectHome=yes" "PrivateTmp=yes" \
            "AmbientCapabilities=CAP_NET_BIND_SERVICE" \
            "ExecStart=/usr/sbin/corral -c /etc/corral/corral.yaml"; do
    grep -qxF "$line" "$unit" || fail "corral.service lacks \"$line\""
done
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$unit" > analyze.txt 2>&1 || true
    if grep -qi 'unknown\|invalid' analyze.txt; then
        fail "systemd-analyze verify: $(cat analyze.txt)"
    fi
fi
assert_contains "$(cat root/etc/logrotate.d/corral)" "corralctl reopen" "logrotate reopens"
for page in root/usr/share/man/man8/corral.8.gz root/usr/share/man/man8/corralctl.8.gz \
            root/usr/share/man/man5/corral.yaml.5.gz; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    assert_eq "" "$out" "man --warnings on the packaged $(basename "$page")"
done

# the shipped configuration: valid once postinst has created user corral
root/usr/sbin/corral -t -c root/etc/corral/corral.yaml > check.txt 2>&1
rc=$?
if getent passwd corral >/dev/null; then
    assert_eq 0 "$rc" "corral -t on the shipped configuration: $(cat check.txt)"
else
    assert_eq 1 "$rc" "corral -t before the corral user exists"
    assert_match '^root/etc/corral/corral\.yaml:[0-9]+:7: "user" "corral" is not a user on this system$' \
        "$(cat check.txt)" "the only complaint is the missing account"
    sed 's/^user: corral$/user: root/' root/etc/corral/corral.yaml > shipped-as-root.yaml
    root/usr/sbin/corral -t -c shipped-as-root.yaml > check2.txt 2>&1 ||
        fail "the shipped configuration with an existing user: $(cat check2.txt)"
fi

# the container image's and the Kubernetes ConfigMap's configurations too
# (user corral exists in the image; here root stands in for it)
sed 's/^user: corral$/user: root/' "$REPO_ROOT/packaging/container.yaml" > container.yaml
root/usr/sbin/corral -t -c container.yaml > check3.txt 2>&1 ||
    fail "packaging/container.yaml: $(cat check3.txt)"
sed -n '/^  corral.yaml: |$/,$p' "$REPO_ROOT/packaging/k8s/configmap.yaml" | tail -n +2 |
    sed -e 's/^    //' -e 's/^user: corral$/user: root/' > configmap.yaml
grep -q '^listen:' configmap.yaml || fail "no configuration found in the ConfigMap"
root/usr/sbin/corral -t -c configmap.yaml > check4.txt 2>&1 ||
    fail "the ConfigMap's corral.yaml: $(cat check4.txt)"

# -- versions and help ------------------------------------------------------------------------
assert_match '^corral [0-9]+\.[0-9]+\.[0-9]+$' "$(root/usr/sbin/corral --version)" "corral --version"
assert_match '^corralctl [0-9]+\.[0-9]+\.[0-9]+$' "$(root/usr/bin/corralctl --version)" \
    "corralctl --version"
root/usr/bin/corralctl --help > help.txt || fail "corralctl --help"
commands=$(sed -n '/^commands:/,/^$/p' help.txt | awk 'NF { print $1 }' | grep -v '^commands:')
assert_eq "status workers routes upstreams top metrics stats describe reload stop reopen check help" \
    "$(printf '%s\n' "$commands" | paste -sd' ')" "commands listed by corralctl --help"
for c in $commands; do
    root/usr/bin/corralctl "$c" --help > c.txt 2>&1 || fail "corralctl $c --help: $(cat c.txt)"
    assert_match "^usage: corralctl \[-n NAME\] $c" "$(head -n 1 c.txt)" "corralctl $c --help"
    root/usr/bin/corralctl help "$c" > h.txt 2>&1 || fail "corralctl help $c"
    assert_eq "$(cat c.txt)" "$(cat h.txt)" "corralctl help $c equals $c --help"
done

# -- bash completion ----------------------------------------------------------------------------
complete_words() {      # complete_words WORD...: what completing the last word offers
    bash -c '
        _init_completion() {
            COMPREPLY=(); words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
            cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}
        }
        _filedir() { :; }
        complete() { :; }
        . "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
        _corralctl
        printf "%s\n" "${COMPREPLY[@]}" | sort' _ \
        root/usr/share/bash-completion/completions/corralctl corralctl "$@"
}
assert_eq "$(printf '%s\n' stats status stop)" "$(complete_words st)" "completing \"st\""
assert_eq "--json" "$(complete_words status --j)" "completing status --j"
assert_eq "$(printf '%s\n' reload reopen)" "$(complete_words -n x re)" "completing after -n NAME"
assert_eq "--fast" "$(complete_words stop --f)" "completing stop --f"
log "ok"
