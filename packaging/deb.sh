#!/bin/sh
# Build pushgate's Debian package with cargo-deb (`cargo install cargo-deb`): a release
# build, then the files the package ships that the binary makes (man page, completions)
# and the systemd unit with the packaged binary's path, into <target>/release/assets/,
# where Cargo.toml's [package.metadata.deb] takes them from. Honours CARGO_TARGET_DIR.
#   packaging/deb.sh [cargo deb options...]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
command -v cargo-deb >/dev/null 2>&1 || { echo "packaging/deb.sh: cargo-deb is needed (cargo install cargo-deb)" >&2; exit 1; }
cargo build --release --locked --manifest-path "$here/Cargo.toml"
target=${CARGO_TARGET_DIR:-$here/target}
case "$target" in /*) ;; *) target="$here/$target" ;; esac
bin="$target/release/pushgate"
assets="$target/release/assets"
mkdir -p "$assets"
"$bin" manpage | gzip -9n > "$assets/pushgate.1.gz"
"$bin" completions bash > "$assets/pushgate.bash"
"$bin" completions zsh > "$assets/_pushgate"
"$bin" completions fish > "$assets/pushgate.fish"
sed "s|@BINDIR@|/usr/bin|g" "$here/hooks-templates/pushgate-deliver.service" > "$assets/pushgate-deliver.service"
cd "$here"
exec cargo deb --no-build --locked "$@"
