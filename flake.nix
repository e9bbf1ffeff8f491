{
  description = "nix-cache-tools: Nix binary caches made painless (setup-cache, push-cache, cache-analytics) and a lib to use them from other flakes";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  # No nixConfig on purpose. Nix applies a flake's nixConfig only after asking (or with
  # accept-flake-config = true), and substituters only for trusted users; a prompt on every
  # `nix run` of this repository, for a cache its users never asked for, is exactly the
  # friction this project removes. Consumers describe their own caches in cache.toml, and
  # `lib.nixSettings` gives the matching nixConfig / nix.settings (see templates/default).

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];

      # builtins only, so the attribute names of every per-system output are known without
      # instantiating nixpkgs (tests/flake.rs checks that with a nixpkgs that throws).
      forAllSystems =
        f:
        builtins.listToAttrs (
          map (system: {
            name = system;
            value = f system;
          }) systems
        );
      pkgsFor = system: nixpkgs.legacyPackages.${system};

      cacheToolsLib = import ./nix/lib.nix;
      tools = builtins.attrNames cacheToolsLib.toolDescriptions;
    in
    {
      # System-independent and free of nixpkgs: readCacheConfig, cacheConfig,
      # cacheConfigErrors, nixSettings, toCacheToml, mkApps (takes the caller's pkgs).
      lib = cacheToolsLib;

      packages = forAllSystems (
        system:
        let
          package = (pkgsFor system).callPackage ./nix/package.nix { };
        in
        {
          default = package;
          nix-cache-tools = package;
        }
      );

      # The tools as they are, reading cache.toml from the current directory or its
      # parents (or --config). Other flakes get apps bound to their own cache.toml from
      # lib.mkApps.
      apps = forAllSystems (
        system:
        builtins.listToAttrs (
          map (name: {
            inherit name;
            value = {
              type = "app";
              program = "${self.packages.${system}.default}/bin/${name}";
              meta.description = cacheToolsLib.toolDescriptions.${name};
            };
          }) tools
        )
      );

      devShells = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          default = pkgs.mkShell {
            packages = [
              pkgs.cargo
              pkgs.rustc
              pkgs.clippy
              pkgs.rustfmt
              pkgs.nix
              pkgs.nixfmt-rfc-style
            ];
          };
        }
      );

      checks = forAllSystems (
        system:
        import ./nix/checks.nix {
          pkgs = pkgsFor system;
          package = self.packages.${system}.default;
        }
      );

      formatter = forAllSystems (system: (pkgsFor system).nixfmt-rfc-style);

      # `prev` unused, but older `nix flake check` insists on the argument names final/prev.
      overlays.default = final: prev: {
        nix-cache-tools = final.callPackage ./nix/package.nix { };
      };

      # Set nix.settings from a cache.toml: `services.nix-cache-tools = { enable = true;
      # configFile = ./cache.toml; }`. The NixOS module also works with nix-darwin.
      # Wrapped in `imports` so errors point at the module's file.
      nixosModules.default.imports = [ ./nix/modules/nixos.nix ];
      darwinModules.default.imports = [ ./nix/modules/nixos.nix ];
      homeModules.default.imports = [ ./nix/modules/home.nix ];

      templates.default = {
        path = ./templates/default;
        description = "A project with its own cache.toml: nix run .#setup-cache / .#push-cache / .#cache-analytics for its caches";
      };
    };
}
