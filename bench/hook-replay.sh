#!/bin/sh
# Capture one push's pre-receive input (stdin, quarantine variables, quarantined objects) and
# replay pushgate's pre-receive on it by hand, for profiling. Local files only.
#
#   bench/hook-replay.sh capture <server.git> <client-repo> <refspec> <dir>
#       copies <server.git> to <dir>/server.git, pushes <refspec> from <client-repo> into it
#       with a hook that saves its input and rejects (so the refs do not move)
#   bench/hook-replay.sh run <dir> [wrapper...]
#       runs `pushgate pre-receive` as git would, under an optional wrapper:
#       bench/hook-replay.sh run /tmp/cap perf stat -r 1
#       bench/hook-replay.sh run /tmp/cap perf record -g --call-graph dwarf -o /tmp/perf.data
#       bench/hook-replay.sh run /tmp/cap strace -c -f
#
# Environment: PUSHGATE (binary, default target/release/pushgate next to this script),
# PUSHGATE_CONFIG and PUSHGATE_USER as for a real push (bench/push.py --keep leaves a config).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
pushgate=${PUSHGATE:-$here/target/release/pushgate}

case ${1:-} in
capture)
    [ $# -eq 5 ] || { echo "usage: $0 capture <server.git> <client-repo> <refspec> <dir>" >&2; exit 2; }
    server=$2 client=$3 refspec=$4 dir=$5
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    rm -rf "$dir/server.git" "$dir/quarantine"
    cp -a "$server" "$dir/server.git"
    rm -f "$dir/server.git/hooks/pre-receive" "$dir/server.git/hooks/post-receive" "$dir/server.git/hooks/update"
    cat > "$dir/server.git/hooks/pre-receive" <<EOF
#!/bin/sh
cat > '$dir/stdin'
env | grep -E '^GIT_(DIR|OBJECT_DIRECTORY|ALTERNATE_OBJECT_DIRECTORIES|QUARANTINE_PATH)=' | sed "s/=\(.*\)/='\1'/; s/^/export /" > '$dir/env'
cp -a "\$GIT_QUARANTINE_PATH" '$dir/quarantine'
exit 1
EOF
    chmod +x "$dir/server.git/hooks/pre-receive"
    (cd "$client" && git push -q "$dir/server.git" "$refspec" 2>/dev/null) || true
    rm "$dir/server.git/hooks/pre-receive"
    [ -s "$dir/stdin" ] || { echo "capture failed: no hook input saved" >&2; exit 1; }
    echo "captured $(wc -l < "$dir/stdin") update(s) in $dir"
    ;;
run)
    [ $# -ge 2 ] || { echo "usage: $0 run <dir> [wrapper...]" >&2; exit 2; }
    dir=$(cd "$2" && pwd)
    shift 2
    . "$dir/env"
    [ -d "$GIT_QUARANTINE_PATH" ] || cp -a "$dir/quarantine" "$GIT_QUARANTINE_PATH"
    cd "$dir/server.git"
    exec "$@" "$pushgate" --chain-dir "$dir/server.git/hooks" pre-receive < "$dir/stdin"
    ;;
*)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
