# A stand-in for nixpkgs, for tests/flake.rs only: nixpkgs cannot be fetched on the
# machines the tests run on, so the tests run this repository's flake, and the template's,
# with `--override-input nixpkgs path:<a copy of this directory>`.
#
# It has just what nix-cache-tools' Nix code touches, written for this purpose (nothing
# here comes from nixpkgs): a few `lib` functions, `callPackage`, and packages that build
# for real with the host's own tools instead of nixpkgs' — the host's Rust toolchain,
# C compiler and coreutils, made visible in the build sandbox by the test's
# `sandbox-paths`. `host.nix`, written by the test beside this file, says where they
# are: { toolchain; vendor; cache; } (see pkgs.nix). Builds use Nix's sandbox (a chroot
# store always does), so they see nothing but their inputs and those host paths.
{
  description = "Stand-in nixpkgs for nix-cache-tools' flake tests";

  outputs =
    { self }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      lib = import ./lib.nix;
      host = import ./host.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs systems (system: import ./pkgs.nix { inherit lib host system; });
    };
}
