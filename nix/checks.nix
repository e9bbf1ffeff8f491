# `nix flake check` beyond building the package: clippy, rustfmt, and the Nix library
# tests (nix/tests, the same ones `cargo test --test flake` runs) in the build sandbox.
{
  pkgs,
  package,
}:
let
  inherit (pkgs) lib;
  sources = import ./source.nix { inherit lib; };

  # A cargo command over the workspace, offline against the dependencies vendored from
  # Cargo.lock (the same vendoring buildRustPackage uses).
  cargoCheck =
    name: tools: command:
    pkgs.stdenv.mkDerivation {
      name = "nix-cache-tools-${name}";
      src = sources.lint;
      cargoDeps = pkgs.rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };
      nativeBuildInputs = [
        pkgs.rustPlatform.cargoSetupHook
        pkgs.cargo
        pkgs.rustc
      ] ++ tools;
      buildPhase = ''
        runHook preBuild
        export HOME=$TMPDIR
        ${command}
        runHook postBuild
      '';
      installPhase = "touch $out";
    };
in
{
  inherit package;

  clippy = cargoCheck "clippy" [
    pkgs.clippy
  ] "cargo clippy --workspace --all-targets --offline --locked -- -D warnings";

  fmt = cargoCheck "rustfmt" [ pkgs.rustfmt ] "cargo fmt --all --check";

  nix-lib =
    pkgs.runCommand "nix-cache-tools-nix-lib-tests"
      {
        nativeBuildInputs = [ pkgs.nix ];
      }
      ''
        # Evaluation only (run.sh uses --store dummy://); keep Nix's own files in $TMPDIR.
        export HOME=$TMPDIR/home NIX_CONF_DIR=$TMPDIR/etc NIX_STATE_DIR=$TMPDIR/state \
          NIX_LOG_DIR=$TMPDIR/log
        mkdir -p "$HOME" "$NIX_CONF_DIR"
        sh ${sources.nix}/nix/tests/run.sh ${sources.nix}
        touch $out
      '';
}
