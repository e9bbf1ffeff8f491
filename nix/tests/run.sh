#!/bin/sh
# Runs the Nix library tests with nix-instantiate (no nixpkgs needed):
#   1. nix/tests/check.nix: every case in nix/tests/default.nix (lib and modules);
#   2. every nix/tests/fixtures/bad-*.toml must make readCacheConfig fail, with the
#      message its first line (`# expect: ...`) gives.
# Used by the flake's `checks.<system>.nix-lib`; `cargo test --test flake` runs the same
# cases from Rust. Usage: sh nix/tests/run.sh [REPO_ROOT]
set -eu
root=$(cd "${1:-.}" && pwd)

# dummy://: evaluation only, no store is opened or written.
nix-instantiate --store dummy:// --eval --strict "$root/nix/tests/check.nix"

status=0
for f in "$root"/nix/tests/fixtures/bad-*.toml; do
  expect=$(sed -n '1s/^# expect: //p' "$f")
  if [ -z "$expect" ]; then
    echo "FAIL $f: no '# expect: ...' first line" >&2
    status=1
    continue
  fi
  if out=$(nix-instantiate --store dummy:// --eval --strict --arg lib "import $root/nix/lib.nix" \
    --argstr file "$f" -E '{ lib, file }: lib.readCacheConfig file' 2>&1); then
    echo "FAIL $f: readCacheConfig accepted it" >&2
    status=1
  else
    case $out in
      *"$expect"*) echo "ok   $(basename "$f")" ;;
      *)
        printf 'FAIL %s: expected the error to contain\n  %s\ngot\n%s\n' "$f" "$expect" "$out" >&2
        status=1
        ;;
    esac
  fi
done
exit $status
