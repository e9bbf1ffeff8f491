# setup-cache, push-cache and cache-analytics, built from Cargo.lock with nixpkgs'
# rustPlatform (nixos-25.05: rustc 1.86, the workspace's rust-version).
{
  lib,
  rustPlatform,
}:
let
  workspace = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package;
  sources = import ./source.nix { inherit lib; };
in
rustPlatform.buildRustPackage {
  pname = "nix-cache-tools";
  inherit (workspace) version;
  src = sources.build;

  cargoLock.lockFile = ../Cargo.lock;

  # The check phase runs the unit tests of every crate. The integration tests in tests/
  # need a real Nix run as root (chroot stores, a nix-daemon, an HTTP cache on loopback),
  # which the build sandbox does not have; CI runs them (.ci/run).
  cargoTestFlags = [
    "--workspace"
    "--lib"
    "--bins"
  ];

  meta = {
    description = "Nix binary caches made painless: setup-cache, push-cache, cache-analytics";
    homepage = workspace.repository;
    license = [
      lib.licenses.mit
      lib.licenses.asl20
    ];
    mainProgram = "setup-cache";
    platforms = lib.platforms.unix;
  };
}
