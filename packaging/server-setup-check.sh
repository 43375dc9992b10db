#!/bin/bash
# Performs README's "Server setup" on this machine, as far as a test can, in a throw-away
# prefix, and checks every step: a temporary user (pgsetup-<pid>) standing for `git`, the
# directories and their owners, the configuration, a repository made and installed as that
# user, SSH keys with pushgate's forced command and an sshd of its own on 127.0.0.1, nginx +
# fcgiwrap on 127.0.0.1 from hooks-templates/nginx-git-http.conf, pushes over both that
# pushgate decides (one accepted, one denied with pushgate's message), the systemd unit's
# ExecStart run in the background, and `pushgate doctor` as that user saying all ok.
#
#   sudo packaging/server-setup-check.sh        (root only; Debian; not part of .ci/run:
#                                                it installs packages and adds a user)
#
# PUSHGATE=/path/to/pushgate picks the binary (default: <target>/release/pushgate, built
# with `cargo build --release` when missing). It installs git, openssh-server, nginx,
# fcgiwrap and apache2-utils when missing (HTTP is skipped, said so, when that fails).
# Nothing outside the prefix is changed but those packages (whose installation may start
# nginx's own service) and /run/sshd: no system service is configured, started or stopped
# by the script, and the user, its processes and the prefix are removed on exit.
# One line per step, `ok` or `FAIL: what happened`; exit 1 when any step FAILs.
set -u
umask 022

here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "server-setup-check: run as root (it adds a user and runs sshd)" >&2; exit 2; }

failures=0
ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'skip  %s\n' "$*"; }
# step NAME CMD...: runs CMD, output to $T/log/<n>; ok, or FAIL with its last lines.
n=0
step() {
    local what=$1; shift
    n=$((n + 1))
    if "$@" > "$T/log/$n" 2>&1; then ok "$what"; return 0; fi
    fail "$what: $(tail -n 5 "$T/log/$n" | tr '\n' ' ')"
    return 1
}

U="pgsetup-$$"
T=$(mktemp -d /tmp/pgsetup.XXXXXX)
chmod 0755 "$T"
mkdir -p "$T/log" "$T/run" "$T/client"
pids=()
user_made=

cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    [ -f "$T/run/nginx.pid" ] && kill "$(cat "$T/run/nginx.pid")" 2>/dev/null
    sleep 0.5
    if [ -n "$user_made" ]; then
        # what the temporary user still runs (ssh sessions, detached deliverers): ours
        for pid in $(pgrep -u "$U" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
        sleep 0.2
        userdel "$U" >/dev/null 2>&1 || echo "server-setup-check: could not remove user $U" >&2
        getent group "$U" >/dev/null && groupdel "$U" >/dev/null 2>&1
    fi
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_git() { runuser -u "$U" -- "$@"; }
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}
wait_for() { # wait_for SECONDS CMD...
    local i
    for i in $(seq $(($1 * 10))); do "${@:2}" && return 0; sleep 0.1; done
    return 1
}

# The prefix's paths, standing for README's.
SRV="$T/srv/git"                    # /srv/git
ETC="$T/etc/pushgate"               # /etc/pushgate
LIB="$T/var/lib/pushgate"           # /var/lib/pushgate
LOGDIR="$T/var/log/pushgate"        # /var/log/pushgate
HOMEDIR="$T/home/$U"                # /home/git
BINDIR="$T/bin"                     # /usr/local/bin
CFG="$ETC/config.toml"

# 1. pushgate
bin=${PUSHGATE:-}
if [ -z "$bin" ]; then
    target=${CARGO_TARGET_DIR:-$here/target}
    case "$target" in /*) ;; *) target="$here/$target" ;; esac
    bin="$target/release/pushgate"
    [ -x "$bin" ] || step "cargo build --release" nice cargo build --release --locked --manifest-path "$here/Cargo.toml"
fi
install -d -m 0755 "$BINDIR"
step "1. pushgate installed in the prefix ($BINDIR/pushgate)" install -m 0755 "$bin" "$BINDIR/pushgate" || exit 1
PG="$BINDIR/pushgate"

# 2. The git user
missing=()
for p in git openssh-server openssh-client; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    step "2. apt-get install -y ${missing[*]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi
if step "2. adduser --system --group --home $HOMEDIR --shell /bin/sh $U" \
    adduser --system --group --home "$HOMEDIR" --shell /bin/sh "$U"; then
    user_made=1
else
    exit 1
fi
step "2. usermod -p '*' $U (not locked: sshd would refuse its keys)" usermod -p '*' "$U"
# (passwd -S says L for '*' too; sshd refuses only a password beginning with '!')
step "2. the account has a shell and is not locked" \
    bash -c "getent passwd '$U' | grep -q ':/bin/sh\$' && getent shadow '$U' | cut -d: -f2 | grep -qv '^!'"

# 3. Directories
step "3. directories made, owned by $U" bash -c "
    install -d -o '$U' -g '$U' -m 0755 '$SRV' &&
    install -d -o '$U' -g '$U' -m 0700 '$LIB' '$LOGDIR' '$HOMEDIR/.ssh' &&
    install -d -m 0755 '$ETC' '$ETC/keys'"
step "3. owners and modes are as README says" bash -c "
    [ \"\$(stat -c '%U' '$HOMEDIR')\" = '$U' ] &&
    [ \"\$(stat -c '%U %a' '$SRV')\" = '$U 755' ] &&
    [ \"\$(stat -c '%U %a' '$LIB')\" = '$U 700' ] &&
    [ \"\$(stat -c '%U %a' '$LOGDIR')\" = '$U 700' ] &&
    [ \"\$(stat -c '%U %a' '$HOMEDIR/.ssh')\" = '$U 700' ] &&
    [ \"\$(stat -c '%U %a' '$ETC/keys')\" = 'root 755' ]"

# 4. The configuration: README's, plus a rule that denies (to see pushgate decide) and a
# post extension (to see the deliverer deliver).
install -d -o "$U" -g "$U" -m 0755 "$T/delivered"
cat > "$BINDIR/record" <<EOF
#!/bin/sh
cat > "$T/delivered/\$PUSHGATE_EVENT_ID.json"
EOF
chmod 0755 "$BINDIR/record"
cat > "$CFG" <<EOF
repos_root = "$SRV"
[spool]
dir = "$LIB/spool"
[audit]
file = "$LOGDIR/audit.jsonl"

[[rule]]
refs = ["refs/heads/frozen"]
users = ["*"]
deny = ["write"]
message = "frozen is frozen (server-setup-check)"

[[rule]]
users = ["*"]
allow = ["read", "write"]

[[extension]]
name = "record"
type = "script"
phase = "post"
command = ["$BINDIR/record"]
EOF
chmod 0644 "$CFG"
step "4. pushgate check" "$PG" check --config "$CFG"
step "4. the configuration is readable by $U" as_git "$PG" check --config "$CFG"

# 5. Repositories, as the git user
REPO="$SRV/team/app.git"
step "5. git init --bare $REPO as $U" as_git git init --bare "$REPO"
step "5. pushgate install as $U" as_git "$PG" --config "$CFG" install "$REPO"
step "5. the repository and its hooks belong to $U" bash -c "
    [ -z \"\$(find '$REPO' ! -user '$U' -print -quit)\" ] &&
    [ -e '$REPO/hooks/pre-receive' ]"

# A commit to push, by root as a client would (its own HOME).
export HOME="$T/client" GIT_CONFIG_NOSYSTEM=1
git config --global user.name "Setup Check"
git config --global user.email "check@example.org"
git config --global init.defaultBranch main
git config --global protocol.version 2
git init -q "$T/client/work" && git -C "$T/client/work" commit -q --allow-empty -m "first" ||
    fail "a client commit to push"

# 6. SSH
ssh-keygen -q -t ed25519 -N '' -C alice -f "$T/client/alice" && cp "$T/client/alice.pub" "$ETC/keys/alice.pub"
step "6. pushgate keys > authorized_keys" bash -c "
    '$PG' keys --config '$CFG' '$ETC/keys' > '$HOMEDIR/.ssh/authorized_keys' &&
    chown '$U:$U' '$HOMEDIR/.ssh/authorized_keys' && chmod 0600 '$HOMEDIR/.ssh/authorized_keys'"
step "6. authorized_keys runs pushgate shell alice, with no pty or forwarding" \
    grep -q "^command=\"'$PG' --config '$CFG' shell alice\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty ssh-ed25519 \|^command=\"'$PG' .*shell alice\",no-port-forwarding,no-X11-forwarding,no-agent-forwarding,no-pty ssh-ed25519 " \
    "$HOMEDIR/.ssh/authorized_keys"

SSHP=$(free_port)
install -d -m 0700 "$T/sshd"
ssh-keygen -q -t ed25519 -N '' -f "$T/sshd/host_ed25519"
cat > "$T/sshd/sshd_config" <<EOF
Port $SSHP
ListenAddress 127.0.0.1
HostKey $T/sshd/host_ed25519
PidFile $T/run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
AllowUsers $U
AcceptEnv LANG LC_*
UsePAM yes
StrictModes yes
EOF
install -d -m 0755 /run/sshd   # privilege separation; Debian's sshd makes it when started as a service
if step "6. sshd -t (own config, host key, 127.0.0.1:$SSHP)" /usr/sbin/sshd -t -f "$T/sshd/sshd_config"; then
    /usr/sbin/sshd -D -e -f "$T/sshd/sshd_config" 2> "$T/log/sshd.log" &
    pids+=($!)
    step "6. sshd listens on 127.0.0.1:$SSHP" wait_for 10 bash -c "ss -Htln 'sport = :$SSHP' | grep -q ."
fi
export GIT_SSH_COMMAND="ssh -p $SSHP -i $T/client/alice -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=$T/client/known_hosts -o LogLevel=ERROR"
SSHURL="ssh://$U@127.0.0.1:$SSHP/team/app.git"
step "6. git push over ssh (alice, main): accepted" git -C "$T/client/work" push "$SSHURL" HEAD:refs/heads/main
step "6. git clone $U@127.0.0.1:team/app.git (README's form)" git clone -q "$U@127.0.0.1:team/app.git" "$T/client/clone-ssh"
step "6. the clone has main" git -C "$T/client/clone-ssh" rev-parse --verify -q refs/remotes/origin/main
git -C "$T/client/work" push "$SSHURL" HEAD:refs/heads/frozen > "$T/log/ssh-deny" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "frozen is frozen (server-setup-check)" "$T/log/ssh-deny"; then
    ok "6. git push over ssh to frozen: denied with pushgate's message"
else
    fail "6. git push over ssh to frozen (exit $rc): $(tr '\n' ' ' < "$T/log/ssh-deny")"
fi
step "6. an interactive login is refused" bash -c "! ssh -p $SSHP -i '$T/client/alice' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile='$T/client/known_hosts' $U@127.0.0.1 sh -c 'echo shell' | grep -q '^shell$'"
step "6. the audit log has alice's pushes via ssh" grep -q '"via":"ssh"' "$LOGDIR/audit.jsonl"

# 7. HTTP: nginx authenticates, fcgiwrap runs git http-backend (and so the hooks) as the git user
http_ok=1
missing=()
for p in nginx fcgiwrap apache2-utils; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    # policy-rc.d is not touched: on a machine with systemd the packages start their
    # services as usual; nothing below uses them.
    if ! step "7. apt-get install -y ${missing[*]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; then
        skip "7. HTTP: nginx/fcgiwrap could not be installed; the HTTP steps are skipped"
        http_ok=
    fi
fi
if [ -n "$http_ok" ]; then
    HTTPP=$(free_port)
    NG="$T/nginx"
    install -d -m 0755 "$NG"
    install -d -o www-data -g www-data -m 0700 "$NG/tmp"
    cp /etc/nginx/fastcgi_params "$NG/fastcgi_params"
    step "7. htpasswd -c git.htpasswd alice" htpasswd -b -c "$NG/git.htpasswd" alice s3cret
    chmod 0644 "$NG/git.htpasswd"
    # The template as is, but for TLS (a test has no certificate) and the prefix's paths.
    sed -e "s|listen 443 ssl;|listen 127.0.0.1:$HTTPP;|" \
        -e '/ssl_certificate/d' \
        -e "s|/etc/nginx/git.htpasswd|$NG/git.htpasswd|" \
        -e "s|/srv/git|$SRV|" \
        -e "s|/etc/pushgate/config.toml|$CFG|" \
        -e "s|unix:/run/fcgiwrap.socket|unix:$T/run/fcgiwrap/fcgiwrap.socket|" \
        "$here/hooks-templates/nginx-git-http.conf" > "$NG/git.conf"
    cat > "$NG/nginx.conf" <<EOF
user www-data;
worker_processes 1;
pid $T/run/nginx.pid;
error_log $NG/error.log;
events { worker_connections 64; }
http {
    access_log $NG/access.log;
    client_body_temp_path $NG/tmp/body;
    fastcgi_temp_path $NG/tmp/fastcgi;
    proxy_temp_path $NG/tmp/proxy;
    uwsgi_temp_path $NG/tmp/uwsgi;
    scgi_temp_path $NG/tmp/scgi;
    include $NG/git.conf;
}
EOF
    step "7. the template has no path left to substitute" bash -c "! grep -n '[ :]/srv/git\|[ :]/etc/pushgate\|[ :]/run/fcgiwrap\|listen 443' '$NG/git.conf'"
    # fcgiwrap as the repositories' owner; its socket for nginx's www-data (the template's
    # SocketUser=www-data: here the socket is made by fcgiwrap, then given to www-data).
    install -d -o "$U" -g "$U" -m 0755 "$T/run/fcgiwrap"
    as_git fcgiwrap -c 2 -s "unix:$T/run/fcgiwrap/fcgiwrap.socket" > "$T/log/fcgiwrap.log" 2>&1 &
    pids+=($!)
    if step "7. fcgiwrap runs as $U on a socket" wait_for 10 test -S "$T/run/fcgiwrap/fcgiwrap.socket"; then
        chown www-data "$T/run/fcgiwrap/fcgiwrap.socket" && chmod 0600 "$T/run/fcgiwrap/fcgiwrap.socket"
    fi
    step "7. nginx -t (config from hooks-templates/nginx-git-http.conf)" nginx -t -p "$NG" -c "$NG/nginx.conf"
    step "7. nginx runs on 127.0.0.1:$HTTPP" bash -c "nginx -p '$NG' -c '$NG/nginx.conf' && $(declare -f wait_for); wait_for 10 test -s '$T/run/nginx.pid'"
    HTTPURL="http://alice:s3cret@127.0.0.1:$HTTPP/team/app.git"
    step "7. git push over http without a password: refused" bash -c "! GIT_TERMINAL_PROMPT=0 git -C '$T/client/work' push 'http://127.0.0.1:$HTTPP/team/app.git' HEAD:refs/heads/anon"
    step "7. git push over http (alice, via-http): accepted" git -C "$T/client/work" push "$HTTPURL" HEAD:refs/heads/via-http
    step "7. git clone over http" git clone -q "$HTTPURL" "$T/client/clone-http"
    git -C "$T/client/work" push "$HTTPURL" HEAD:refs/heads/frozen > "$T/log/http-deny" 2>&1
    rc=$?
    if [ $rc -ne 0 ] && grep -q "frozen is frozen (server-setup-check)" "$T/log/http-deny"; then
        ok "7. git push over http to frozen: denied with pushgate's message"
    else
        fail "7. git push over http to frozen (exit $rc): $(tr '\n' ' ' < "$T/log/http-deny")"
    fi
    step "7. the audit log has alice's push via http" grep -q '"via":"http"' "$LOGDIR/audit.jsonl"
fi

# 8. Secrets: one file per secret, owned by git, 0600 (named by secret_file)
step "8. install -o $U -g $U -m 0600 /dev/stdin ci.secret" bash -c "echo s3cret | install -o '$U' -g '$U' -m 0600 /dev/stdin '$ETC/ci.secret' && [ \"\$(stat -c '%U %a' '$ETC/ci.secret')\" = '$U 600' ]"

# 9. Delivery as a service: the unit's User, Environment and ExecStart, paths substituted
UNIT="$T/pushgate-deliver.service"
sed -e "s|@BINDIR@|$BINDIR|g" -e "s|/etc/pushgate/|$ETC/|g" "$here/hooks-templates/pushgate-deliver.service" > "$UNIT"
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
unit_user=$(sed -n 's/^User=//p' "$UNIT")
unit_env=$(sed -n 's/^Environment=//p' "$UNIT")
step "9. the unit runs as git, with PUSHGATE_CONFIG, ExecStart=$exec_start" bash -c "
    [ '$unit_user' = git ] && [ '$unit_env' = 'PUSHGATE_CONFIG=$CFG' ] && [ '${exec_start%% *}' = '$PG' ]"
if command -v systemd-analyze >/dev/null && [ -d /run/systemd/system ]; then
    step "9. systemd-analyze verify" systemd-analyze verify "$UNIT"
fi
# shellcheck disable=SC2086 # ExecStart is split into words as systemd does (no quotes in it)
# setpriv execs (runuser would stay the parent and die of the SIGTERM itself), as User= does
setpriv --reuid="$U" --regid="$U" --init-groups env -i PATH=/usr/bin:/bin HOME="$HOMEDIR" "$unit_env" $exec_start > "$T/log/deliver.out" 2> "$T/log/deliver.err" &
deliver_pid=$!
pids+=($deliver_pid)
sleep 2
step "9. ExecStart (deliver --watch) keeps running as $U" kill -0 "$deliver_pid"
git -C "$T/client/work" commit -q --allow-empty -m "second"
step "9. a push while it runs" git -C "$T/client/work" push "$SSHURL" HEAD:refs/heads/main
pushes=2; [ -n "$http_ok" ] && pushes=3
step "9. the post extension was told of every accepted push ($pushes)" wait_for 15 bash -c "[ \$(ls '$T/delivered' | wc -l) -ge $pushes ]"

# 10. Check it all, as the hooks' user
as_git env PUSHGATE_CONFIG="$CFG" "$PG" doctor > "$T/log/doctor" 2>&1
rc=$?
sed 's/^/      doctor: /' "$T/log/doctor"
if [ $rc -eq 0 ] && ! grep -qv '^ok' "$T/log/doctor"; then
    ok "10. pushgate doctor as $U: all ok"
else
    fail "10. pushgate doctor as $U (exit $rc): not all ok"
fi

# The unit's stop: SIGTERM, a clean exit
kill -TERM "$deliver_pid"
step "9. deliver --watch stops on SIGTERM" wait_for 10 bash -c "! kill -0 $deliver_pid 2>/dev/null"
wait "$deliver_pid"
rc=$?
[ $rc -eq 0 ] && ok "9. deliver --watch exits 0 on SIGTERM" || fail "9. deliver --watch exited $rc on SIGTERM: $(tail -n 3 "$T/log/deliver.err" | tr '\n' ' ')"

if [ $failures -gt 0 ]; then
    echo "server-setup-check: $failures step(s) FAILED"
    exit 1
fi
echo "server-setup-check: every step ok"
