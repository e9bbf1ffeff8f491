#!/bin/sh
# Vendors the crates of Cargo.lock into CACHE/vendor (`cargo vendor`), where the stand-in
# nixpkgs' importCargoLock finds them; again only when Cargo.lock changed. Run by
# tests/flake.rs, and by .ci/test-on-nix before it enters a chroot that has no cargo.
#   sh tests/nixpkgs-standin/vendor.sh CACHE
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${1:?usage: vendor.sh CACHE}
want=$(sha256sum "$root/Cargo.lock" | cut -d' ' -f1)
if [ "$(cat "$cache/vendor/.cargo-lock-sha256" 2>/dev/null || true)" = "$want" ]; then
  exit 0
fi
if ! command -v cargo >/dev/null; then
  echo "error: $cache/vendor does not hold the crates of $root/Cargo.lock, and there is no cargo here to vendor them: run \`sh $0 $cache\` where cargo is" >&2
  exit 1
fi
mkdir -p "$cache"
rm -rf "$cache/vendor.tmp"
cargo vendor --locked --manifest-path "$root/Cargo.toml" "$cache/vendor.tmp" >/dev/null
echo "$want" > "$cache/vendor.tmp/.cargo-lock-sha256"
rm -rf "$cache/vendor"
mv "$cache/vendor.tmp" "$cache/vendor"
