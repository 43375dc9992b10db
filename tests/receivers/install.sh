#!/usr/bin/env bash
# Install the pinned receiver libraries into DIR: a Python virtual environment (DIR/venv,
# from requirements.txt) and an npm prefix (DIR/node_modules, from package-lock.json), from
# the registries the machine's pip and npm are set up for. Nothing is installed outside DIR.
# A DIR already holding these pins is left as it is.
#
# Usage: install.sh DIR
# Exit status: 0 installed (or already there); 3 a registry is unreachable (the reason on
# stderr); 1 anything else (a missing tool, a failed install with the registries up).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:?usage: install.sh DIR}"
PY="${PYTHON:-python3}"

fail() { echo "install.sh: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || fail "no $PY: install python3 and python3-venv (.ci/run does)"
"$PY" -c 'import ensurepip, venv' 2>/dev/null || fail "$PY has no venv/ensurepip: install python3-venv (.ci/run does)"
command -v node >/dev/null && command -v npm >/dev/null || fail "no node/npm: install nodejs and npm (.ci/run does)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || fail "node $(node --version) is too old: the pinned @octokit/webhooks needs node 20 or newer"

pins="$(cat "$HERE/requirements.txt" "$HERE/package.json" "$HERE/package-lock.json" | sha256sum | cut -d' ' -f1)"
pins="$pins $("$PY" -c 'import sys; print(sys.version.split()[0])') node-$major"
if [ -f "$DIR/pins" ] && [ "$(cat "$DIR/pins")" = "$pins" ]; then
  exit 0
fi

# The pins are written last: an interrupted install never looks installed.
rm -rf "$DIR" && mkdir -p "$DIR" || fail "cannot create $DIR"

# A registry is unreachable when the client cannot even reach its index: checked only after
# an install failed, so a working install never depends on this probe.
unreachable_pypi() {
  local index="${PIP_INDEX_URL:-$("$DIR/venv/bin/python" -m pip config get global.index-url 2>/dev/null || true)}"
  index="${index:-https://pypi.org/simple/}"
  ! "$DIR/venv/bin/python" - "$index" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=20).read(1)
EOF
}

"$PY" -m venv "$DIR/venv" || fail "$PY -m venv failed"
if ! out="$("$DIR/venv/bin/python" -m pip install --no-input --disable-pip-version-check --quiet \
      -r "$HERE/requirements.txt" 2>&1)"; then
  if unreachable_pypi; then
    echo "the Python package index is unreachable (pip install failed): $(printf '%s' "$out" | tail -n 1)" >&2
    exit 3
  fi
  fail "pip install -r requirements.txt failed with the index reachable:
$out"
fi

cp "$HERE/package.json" "$HERE/package-lock.json" "$DIR/"
if ! out="$(npm ci --prefix "$DIR" --no-audit --no-fund --ignore-scripts --loglevel=error 2>&1)"; then
  if ! npm ping --loglevel=error >/dev/null 2>&1; then
    echo "the npm registry is unreachable (npm ci failed): $(printf '%s' "$out" | head -n 1)" >&2
    exit 3
  fi
  fail "npm ci failed with the registry reachable:
$out"
fi

echo "$pins" > "$DIR/pins"
