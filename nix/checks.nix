# `nix flake check` beyond building the package: clippy, rustfmt, and the Nix library
# tests (nix/tests, the same ones `cargo test --test flake` runs) in the build sandbox.
{
  pkgs,
  package,
}:
let
  inherit (pkgs) lib;
  sources = import ./source.nix { inherit lib; };
in
{
  inherit package;

  clippy = pkgs.stdenv.mkDerivation {
    name = "nix-cache-tools-clippy";
    src = sources.lint;
    cargoDeps = pkgs.rustPlatform.importCargoLock { lockFile = ../Cargo.lock; };
    nativeBuildInputs = [
      pkgs.rustPlatform.cargoSetupHook
      pkgs.cargo
      pkgs.rustc
      pkgs.clippy
    ];
    buildPhase = ''
      runHook preBuild
      export HOME=$TMPDIR
      cargo clippy --workspace --all-targets --offline --locked -- -D warnings
      runHook postBuild
    '';
    installPhase = "touch $out";
  };

  fmt =
    pkgs.runCommand "nix-cache-tools-rustfmt"
      {
        nativeBuildInputs = [
          pkgs.cargo
          pkgs.rustfmt
        ];
      }
      ''
        export HOME=$TMPDIR
        cp -r ${sources.lint} source && chmod -R u+w source && cd source
        cargo fmt --all --check
        touch $out
      '';

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
