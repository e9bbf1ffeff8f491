{
  description = "A project whose binary caches are described in cache.toml";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    cache-tools.url = "github:nix-cache-tools/nix-cache-tools";
    cache-tools.inputs.nixpkgs.follows = "nixpkgs";
  };

  # The caches of ./cache.toml, offered to whoever runs this flake: Nix asks before using
  # them (or uses them with accept-flake-config = true), and only a trusted user's
  # substituters count. nixConfig must be written out literally; `nix flake check` fails
  # when it no longer matches cache.toml and prints the value to paste here.
  nixConfig = {
    extra-substituters = [ "https://nanna-coder.cachix.org" ];
    extra-trusted-public-keys = [
      "nanna-coder.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4="
    ];
  };

  outputs =
    {
      self,
      nixpkgs,
      cache-tools,
    }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      cacheSettings = cache-tools.lib.nixSettings ./cache.toml;
      nixConfig = (import ./flake.nix).nixConfig;
    in
    {
      # nix run .#setup-cache    adds the caches above to your nix.conf
      # nix run .#push-cache     pushes a build to [push] to
      # nix run .#cache-analytics
      # All flags work: nix run .#setup-cache -- --dry-run
      apps = forAllSystems (
        pkgs:
        cache-tools.lib.mkApps {
          inherit pkgs;
          config = ./cache.toml;
        }
      );

      # Fails when built (`nix flake check`), not when evaluated, so that `nix flake show`
      # and the apps keep working while the two disagree.
      checks = forAllSystems (pkgs: {
        nixconfig-matches-cache-toml =
          pkgs.runCommand "nixconfig-matches-cache-toml" { }
            (
              if
                nixConfig.extra-substituters == cacheSettings.extra-substituters
                && nixConfig.extra-trusted-public-keys == cacheSettings.extra-trusted-public-keys
              then
                "touch $out"
              else
                ''
                  echo ${
                    nixpkgs.lib.escapeShellArg "flake.nix: nixConfig differs from cache.toml; set it to ${builtins.toJSON cacheSettings}"
                  } >&2
                  exit 1
                ''
            );
      });

      # For machines of this project (NixOS / nix-darwin / home-manager), instead of
      # setup-cache:
      #   imports = [ cache-tools.nixosModules.default ];
      #   services.nix-cache-tools = { enable = true; configFile = ./cache.toml; };
    };
}
