#!/bin/sh
# Build pushgate in release mode and install the binary and the hook templates.
#   ./install.sh [--prefix DIR] [--demo]
# Default prefix: /usr/local as root, ~/.local otherwise. --demo runs `pushgate demo` after.
set -eu
prefix=""
demo=0
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 2; }; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --demo) demo=1; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$prefix" ]; then
  if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
fi
here=$(cd "$(dirname "$0")" && pwd)
command -v cargo >/dev/null 2>&1 || { echo "install.sh: cargo is needed (https://rustup.rs)" >&2; exit 1; }
command -v git >/dev/null 2>&1 || { echo "install.sh: git is needed" >&2; exit 1; }
cargo build --release --locked --manifest-path "$here/Cargo.toml"
mkdir -p "$prefix/bin" "$prefix/share/pushgate"
install -m 0755 "$here/target/release/pushgate" "$prefix/bin/pushgate.new"
mv -f "$prefix/bin/pushgate.new" "$prefix/bin/pushgate"
rm -rf "$prefix/share/pushgate/hooks-templates"
cp -R "$here/hooks-templates" "$prefix/share/pushgate/hooks-templates"
echo "installed $prefix/bin/pushgate and $prefix/share/pushgate/hooks-templates"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" ;; esac
if [ "$demo" = 1 ]; then exec "$prefix/bin/pushgate" demo; fi
