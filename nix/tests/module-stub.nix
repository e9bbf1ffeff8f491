# Evaluates this flake's modules without nixpkgs: a stand-in for the few nixpkgs `lib`
# functions they use, and a tiny evaluator that fills option defaults and returns the
# `config` the module defines.
#
# The real module system merges lazily and checks types; here mkIf / mkMerge resolve at
# once and types are names only. That is enough to check what the modules set from a
# cache.toml; it is not a NixOS evaluation (see the README for what was not checked).
let
  inherit (builtins)
    attrNames
    foldl'
    isAttrs
    isList
    mapAttrs
    ;

  # Definitions merged like the module system merges them for these options: attribute
  # sets recursively, lists concatenated.
  merge =
    a: b:
    a
    // mapAttrs (
      n: v:
      if a ? ${n} && isAttrs v && isAttrs a.${n} then
        merge a.${n} v
      else if a ? ${n} && isList v && isList a.${n} then
        a.${n} ++ v
      else
        v
    ) b;

  lib = rec {
    mkIf = condition: content: if condition then content else { };
    mkMerge = foldl' merge { };
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption =
      what:
      mkOption {
        type = types.bool;
        default = false;
        description = "Whether to enable ${what}.";
      };
    literalExpression = text: {
      _type = "literalExpression";
      inherit text;
    };
    types = {
      bool = "bool";
      str = "str";
      path = "path";
      attrs = "attrs";
      package = "package";
      listOf = t: "listOf ${t}";
      either = a: b: "either ${a} ${b}";
    };
  };

  getPath = path: set: foldl' (s: n: s.${n}) set path;
  setPath = path: value: builtins.foldl' (v: n: { ${n} = v; }) value (builtins.genList (i: builtins.elemAt path (builtins.length path - 1 - i)) (builtins.length path));

  # What `pkgs` the modules may touch: only callPackage, for the default `package`.
  pkgs = {
    callPackage = path: _: {
      stubPackage = baseNameOf (toString path);
    };
  };
in
{
  inherit lib pkgs;

  # evalModule { module = ../modules/nixos.nix; at = [ "services" "nix-cache-tools" ];
  #              definitions = { enable = true; configFile = ...; }; }
  # → { config = what the module sets; options = the option names it declares; }
  evalModule =
    {
      module,
      at,
      definitions,
    }:
    let
      result = import module {
        inherit lib pkgs;
        config = setPath at values;
      };
      options = getPath at result.options;
      unknown = builtins.filter (n: !(options ? ${n})) (attrNames definitions);
      values = mapAttrs (
        n: o:
        definitions.${n} or (if o ? default then o.default else throw "option ${n} is used but has no value")
      ) options;
    in
    if unknown != [ ] then
      throw "the module has no option ${builtins.head unknown}"
    else
      {
        config = result.config;
        options = attrNames options;
      };
}
