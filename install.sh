#!/bin/sh
# Build pushgate in release mode and install the binary, its man page and shell
# completions, the hook templates, the systemd unit and the logrotate file.
#   ./install.sh [--prefix DIR] [--demo]
# Default prefix: /usr/local as root, ~/.local otherwise. --demo runs `pushgate demo` after.
# Honours CARGO_TARGET_DIR.
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
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target="$here/$target" ;; esac
built="$target/release/pushgate"
[ -x "$built" ] || { echo "install.sh: the build left no $built" >&2; exit 1; }
share="$prefix/share/pushgate"
mkdir -p "$prefix/bin" "$share" "$prefix/share/man/man1" \
  "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
  "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$built" "$prefix/bin/pushgate.new"
mv -f "$prefix/bin/pushgate.new" "$prefix/bin/pushgate"
bin="$prefix/bin/pushgate"
"$bin" manpage > "$prefix/share/man/man1/pushgate.1"
"$bin" completions bash > "$prefix/share/bash-completion/completions/pushgate"
"$bin" completions zsh > "$prefix/share/zsh/site-functions/_pushgate"
"$bin" completions fish > "$prefix/share/fish/vendor_completions.d/pushgate.fish"
rm -rf "$share/hooks-templates"
cp -R "$here/hooks-templates" "$share/hooks-templates"
sed "s|@BINDIR@|$prefix/bin|g" "$here/hooks-templates/pushgate-deliver.service" > "$share/pushgate-deliver.service"
cp "$here/hooks-templates/pushgate.logrotate" "$share/pushgate.logrotate"
echo "installed $bin, its man page and completions, and $share (hook templates, systemd unit, logrotate)"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" ;; esac
if [ "$demo" = 1 ]; then exec "$prefix/bin/pushgate" demo; fi
