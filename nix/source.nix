# The source sets the derivations build from, each filtered to what it needs, so that
# editing the README, the flake or nix/ does not rebuild the package.
{ lib }:
let
  inherit (lib) fileset;
  root = ../.;

  # What cargo needs to build and unit-test the workspace. tests/ is included because the
  # crate manifests name ../../tests/*.rs as [[test]] targets: cargo 1.95 builds --lib and
  # --bins without those files (checked), but any command that selects the test targets
  # fails without them, and the price is only a rebuild when a test file changes.
  cargoFiles = fileset.unions [
    ../Cargo.toml
    ../Cargo.lock
    ../crates
    ../tests
  ];
in
{
  build = fileset.toSource {
    inherit root;
    fileset = cargoFiles;
  };

  # The same plus the lint configuration, for the clippy and rustfmt checks.
  lint = fileset.toSource {
    inherit root;
    fileset = fileset.unions [
      cargoFiles
      (fileset.maybeMissing ../clippy.toml)
      (fileset.maybeMissing ../rustfmt.toml)
      (fileset.maybeMissing ../.rustfmt.toml)
    ];
  };

  # The Nix library, its modules and their tests (no Rust at all).
  nix = fileset.toSource {
    inherit root;
    fileset = fileset.unions [
      ./lib.nix
      ./modules
      ./tests
    ];
  };
}
