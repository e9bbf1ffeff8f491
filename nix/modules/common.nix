# What the NixOS / nix-darwin module and the home-manager module share: the options that
# name a cache.toml, and the settings and warnings computed from it. Uses only the few
# `lib` functions listed in nix/tests/module-stub.nix, so tests can evaluate the modules
# without nixpkgs.
{
  lib,
  pkgs,
  cfg,
  # Option path shown in messages, e.g. "services.nix-cache-tools".
  prefix,
}:
let
  cacheTools = import ../lib.nix;
  config = cacheTools.cacheConfig cfg.configFile;
  private = builtins.filter (c: c.token-env != null) config.caches;
  host =
    url:
    let
      m = builtins.match "[^:]*://([^@/]*@)?([^/:?]*).*" url;
    in
    if m == null then url else builtins.elemAt m 1;
in
{
  options = {
    enable = lib.mkEnableOption "the binary caches described in a cache.toml (nix-cache-tools)";

    configFile = lib.mkOption {
      type = lib.types.either lib.types.path lib.types.attrs;
      example = lib.literalExpression "./cache.toml";
      description = ''
        The project's cache.toml (read and validated at evaluation time, errors name the
        key), or the same description as an attribute set (`{ cache = [ { url = ...;
        public-key = ...; } ]; }`, or what `lib.readCacheConfig` returns). Its caches are
        added with `extra-substituters` / `extra-trusted-public-keys`, so cache.nixos.org
        and every other configured cache stay.
      '';
    };

    installTools = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Also install setup-cache, push-cache and cache-analytics.";
    };

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = lib.literalExpression "nix-cache-tools built with this configuration's pkgs";
      description = "The package providing the three tools (for `installTools`).";
    };
  };

  settings = cacheTools.nixSettings config;

  warnings = map (
    c:
    "${prefix}: the cache ${c.url} is private (token-env = ${c.token-env}). Nix reads its token from a netrc file: set nix.settings.netrc-file to a file outside the Nix store containing `machine ${host c.url} password <the token>`."
  ) private;
}
