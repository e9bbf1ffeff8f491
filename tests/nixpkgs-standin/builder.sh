# The builder of the stand-in nixpkgs' derivations (pkgs.nix), run by the host's /bin/sh
# in Nix's build sandbox: the outline of nixpkgs' stdenv, no more.
#   1. PATH: the host's /usr/bin and /bin, and bin/ of each of $nativeBuildInputs;
#   2. $src, when set, copied to ./source (writable), which becomes the working directory;
#   3. $cargoDeps, when set: cargo reads the crates from there, offline, and keeps its
#      target directory in the host's cache (see "Rust builds" below);
#   4. $buildPhase, then $installPhase, with `runHook` a no-op.
set -eu
PATH=/usr/bin:/bin
for p in ${nativeBuildInputs:-}; do
  if [ -d "$p/bin" ]; then PATH=$p/bin:$PATH; fi
done
export PATH
runHook() { :; }

if [ -n "${src:-}" ]; then
  cp -Rp "$src" source # keeping the store's file times (see "Rust builds")
  chmod -R u+w source
  cd source
fi

# Rust builds. The target directory lives outside the sandbox, in $cargoCache/target/$name,
# so that the second Nix version of a test run reuses the first one's work. Cargo judges
# a workspace crate fresh by file times, and every file from the store has the same time:
# when $src is not the store path the last build of $name used, the sources get the
# current time so cargo rebuilds them (same store path = same content). The vendored
# crates are judged by version, as cargo does for any registry.
if [ -n "${cargoDeps:-}" ]; then
  mkdir -p .cargo "$cargoCache/target/$name"
  cat > .cargo/config.toml <<EOF
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "$cargoDeps"
EOF
  export CARGO_HOME=$PWD/.cargo-home CARGO_TARGET_DIR=$cargoCache/target/$name
  if [ "$(cat "$CARGO_TARGET_DIR/.source" 2>/dev/null || true)" != "${src:-}" ]; then
    find . -type f -exec touch {} +
  fi
fi

eval "${buildPhase:-}"
eval "${installPhase:-}"

if [ -n "${cargoDeps:-}" ]; then
  echo "${src:-}" > "$CARGO_TARGET_DIR/.source"
fi
