# home-manager module: the caches of a cache.toml in the user's nix.settings
# (~/.config/nix/nix.conf). home-manager writes that file only when `nix.package` is set.
#
# A user-level setting takes effect only for a trusted user (or root, or a single-user
# install) or for URLs the system already lists in `trusted-substituters`; otherwise the
# daemon ignores it. Use the NixOS / nix-darwin module (option `trustedUsers`) for that.
#
#   imports = [ cache-tools.homeModules.default ];   # same option name as the NixOS module
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
  options.services.nix-cache-tools = common.options;

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        nix.settings = common.settings;
        warnings = common.warnings;
      }
      (lib.mkIf cfg.installTools { home.packages = [ cfg.package ]; })
    ]
  );
}
