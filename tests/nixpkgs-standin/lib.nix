# The nixpkgs `lib` functions nix-cache-tools' flake, package and template use, with the
# same meaning (nixpkgs' manual), written from builtins.
let
  inherit (builtins) stringLength substring listToAttrs;
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
in
{
  genAttrs =
    names: f:
    listToAttrs (
      map (name: {
        inherit name;
        value = f name;
      }) names
    );

  inherit hasPrefix;

  optionalString = cond: s: if cond then s else "";

  escapeShellArg = arg: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString arg) + "'";

  removePrefix =
    prefix: s:
    if hasPrefix prefix s then
      substring (stringLength prefix) (stringLength s - stringLength prefix) s
    else
      s;

  licenses = {
    mit.spdxId = "MIT";
    asl20.spdxId = "Apache-2.0";
  };

  platforms.unix = [
    "x86_64-linux"
    "aarch64-linux"
    "x86_64-darwin"
    "aarch64-darwin"
  ];
}
