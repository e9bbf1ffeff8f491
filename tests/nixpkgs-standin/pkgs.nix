# The packages of the stand-in nixpkgs (see flake.nix). `host` (host.nix, written by the
# test) says where the host's tools are; the test makes each of them visible in the build
# sandbox (`sandbox-paths`) along with /bin/sh, /usr, /lib, /lib64 and /etc/alternatives:
#   toolchain  the Rust toolchain directory (`rustc --print sysroot`): cargo, rustc, clippy,
#              rustfmt
#   vendor     the crates of Cargo.lock, vendored (`cargo vendor`): importCargoLock's result
#   cache      a writable directory where Rust builds keep their target directory, so the
#              same source is compiled once for every Nix version the suite runs
# Everything that is not the host's toolchain is built here for real: the Rust package
# (`cargo build --release` and its unit tests, as buildRustPackage does), text files,
# scripts, and the checks' derivations. Stubbed, and failing if used: nixfmt-rfc-style.
{
  lib,
  host,
  system,
}:
let
  # The attributes `derivation` can take as environment variables: not functions, not sets
  # other than derivations (such as meta, or buildRustPackage's cargoLock).
  envOf =
    set:
    builtins.listToAttrs (
      builtins.concatMap (
        n:
        let
          v = set.${n};
        in
        if builtins.isFunction v || (builtins.isAttrs v && !(v ? outPath)) then
          [ ]
        else
          [
            {
              name = n;
              value = v;
            }
          ]
      ) (builtins.attrNames set)
    );

  # A much smaller stdenv.mkDerivation: the phases of `builder.sh`, host tools on PATH.
  mkDerivation =
    attrs@{
      nativeBuildInputs ? [ ],
      meta ? { },
      passthru ? { },
      ...
    }:
    let
      name = attrs.name or "${attrs.pname}-${attrs.version}";
      drv = derivation (
        envOf (
          removeAttrs attrs [
            "meta"
            "passthru"
          ]
        )
        // {
          inherit name system nativeBuildInputs;
          builder = "/bin/sh";
          args = [ ./builder.sh ];
        }
        // (if attrs ? cargoDeps then { cargoCache = host.cache; } else { })
      );
    in
    drv // passthru // { inherit meta; };

  runCommand =
    name: env: script:
    mkDerivation (
      env
      // {
        inherit name;
        buildPhase = script;
      }
    );

  # The host's tools as packages: links in $out/bin to the files `glob` matches.
  hostTools =
    name: glob:
    runCommand name { } ''
      mkdir -p "$out/bin"
      for f in ${glob}; do
        [ -e "$f" ] || { echo "${glob}: nothing there (is it in sandbox-paths?)" >&2; exit 1; }
        ln -s "$f" "$out/bin/"
      done
    '';
  toolchain = hostTools "host-rust-toolchain" "${host.toolchain}/bin/*";

  writeText =
    name: text:
    mkDerivation {
      inherit name text;
      passAsFile = [ "text" ];
      buildPhase = ''cp "$textPath" "$out"'';
    };

  # POSIX sh on the host instead of nixpkgs' bash (the scripts of nix/lib.nix are POSIX).
  writeShellScript =
    name: text:
    mkDerivation {
      inherit name text;
      passAsFile = [ "text" ];
      buildPhase = ''
        { echo '#!/bin/sh'; cat "$textPath"; } > "$out"
        chmod +x "$out"
      '';
    };

  rustPlatform = {
    # Cargo.lock's crates, vendored by the test (nixpkgs fetches them one by one).
    importCargoLock = _: host.vendor;
    # Its work (pointing cargo at cargoDeps) is done by builder.sh for any cargoDeps.
    cargoSetupHook = runCommand "cargo-setup-hook" { } ''mkdir "$out"'';
    buildRustPackage =
      {
        pname,
        version,
        src,
        cargoLock,
        cargoTestFlags ? [ ],
        postInstall ? "",
        meta ? { },
        ...
      }:
      mkDerivation {
        inherit pname version src meta postInstall;
        cargoDeps = rustPlatform.importCargoLock cargoLock;
        nativeBuildInputs = [ toolchain ];
        cargoTestFlags = toString cargoTestFlags;
        # The workspace's release profile (thin LTO, 4 codegen units) is for the real
        # package; the suite checks that the package builds, installs and runs, so the
        # stand-in builds it quicker (CI builds it cold on 2 cores).
        buildPhase = ''
          export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
            CARGO_PROFILE_RELEASE_OPT_LEVEL=1
          cargo build --release --offline --locked
          cargo test --release --offline --locked $cargoTestFlags
          mkdir -p "$out/bin"
          find "$CARGO_TARGET_DIR/release" -maxdepth 1 -type f -perm -u+x -exec cp {} "$out/bin/" \;
          eval "$postInstall"
        '';
      };
  };

  pkgs = {
    inherit
      lib
      system
      mkDerivation
      runCommand
      writeText
      writeShellScript
      rustPlatform
      ;
    # Builds run where they are built (no cross compilation here).
    stdenv = {
      inherit mkDerivation;
      buildPlatform.canExecute = _: true;
      hostPlatform = { };
    };
    callPackage =
      fn: args:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) pkgs // args);
    emptyFile = runCommand "empty-file" { } ''touch "$out"'';
    cargo = toolchain;
    rustc = toolchain;
    clippy = toolchain;
    rustfmt = toolchain;
    nix = hostTools "host-nix" "/usr/bin/nix*";
    nixfmt-rfc-style = writeShellScript "nixfmt-stand-in" ''
      echo "nixfmt is not part of the stand-in nixpkgs of the tests" >&2
      exit 1
    '';
    mkShell =
      {
        packages ? [ ],
        ...
      }:
      runCommand "nix-shell" { nativeBuildInputs = packages; } ''echo "$nativeBuildInputs" > "$out"'';
  };
in
pkgs
