# The source sets the derivations build from, each filtered to what it needs, so that
# editing the README, the flake or nix/ does not rebuild the package.
#
# `builtins.path` with a filter, not nixpkgs' `lib.fileset`: on Nix < 2.14 (no
# `builtins.readFileType`) `lib.fileset` falls back to `readDir (dirOf root)`, which
# for a flake's `../.` reads /nix/store itself, and pure evaluation forbids that
# ("access to absolute path '/nix/store' is forbidden"). `builtins.path` works the
# same on every Nix from 2.8 on.
{ lib }:
let
  root = ../.;
  rootStr = toString root;

  # The path of `path` relative to the repository root ("" for the root itself).
  relative =
    path:
    let
      p = toString path;
    in
    if p == rootStr then "" else lib.removePrefix (rootStr + "/") p;

  # Keeps exactly the repository-relative paths in `keep` (files or whole
  # directories), and the directories on the way to them.
  filterFor =
    keep: path: type:
    let
      rel = relative path;
    in
    rel == ""
    || builtins.any (
      k: rel == k || lib.hasPrefix (k + "/") rel || (type == "directory" && lib.hasPrefix (rel + "/") k)
    ) keep;

  source =
    name: keep:
    builtins.path {
      path = root;
      inherit name;
      filter = filterFor keep;
    };

  # What cargo needs to build and unit-test the workspace. tests/ is included because the
  # crate manifests name ../../tests/*.rs as [[test]] targets: cargo 1.95 builds --lib and
  # --bins without those files (checked), but any command that selects the test targets
  # fails without them, and the price is only a rebuild when a test file changes.
  cargoFiles = [
    "Cargo.toml"
    "Cargo.lock"
    "crates"
    "tests"
  ];
  lintFiles = cargoFiles ++ [
    "clippy.toml"
    "rustfmt.toml"
    ".rustfmt.toml"
  ];
  nixFiles = [
    "nix/lib.nix"
    "nix/modules"
    "nix/tests"
  ];
in
{
  build = source "nix-cache-tools-source" cargoFiles;
  # The same plus the lint configuration, for the clippy and rustfmt checks.
  lint = source "nix-cache-tools-lint-source" lintFiles;
  # The Nix library, its modules and their tests (no Rust at all).
  nix = source "nix-cache-tools-nix-source" nixFiles;

  # The lists and the filter, for tests.
  keep = {
    build = cargoFiles;
    lint = lintFiles;
    nix = nixFiles;
  };
  inherit filterFor;
}
