# NixOS and nix-darwin module: the caches of a cache.toml in the system's nix.settings
# (read by the daemon, so they apply to every user), optionally with trusted users.
#
#   imports = [ cache-tools.nixosModules.default ];   # or darwinModules.default
#   services.nix-cache-tools = { enable = true; configFile = ./cache.toml; };
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.nix-cache-tools;
  common = import ./common.nix {
    inherit lib pkgs cfg;
    prefix = "services.nix-cache-tools";
  };
in
{
  options.services.nix-cache-tools = common.options // {
    trustedUsers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "@wheel" ];
      description = ''
        Users (or `@group`s) to add to the daemon's `trusted-users`, so they may pass
        their own substituters and keys. Leave empty unless they need that: a trusted user
        can effectively act as root on the store. `root` is kept in the list.
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        nix.settings = common.settings;
        warnings = common.warnings;
      }
      (lib.mkIf (cfg.trustedUsers != [ ]) {
        # NixOS's own default for trusted-users is [ "root" ]; a definition here replaces
        # that default, so root is listed again.
        nix.settings.trusted-users = [ "root" ] ++ cfg.trustedUsers;
      })
      (lib.mkIf cfg.installTools { environment.systemPackages = [ cfg.package ]; })
    ]
  );
}
