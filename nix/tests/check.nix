# "ok: N tests" when every case in ./default.nix passes, else an error listing failures.
let
  report = import ./default.nix;
in
if report.failures == [ ] then
  "ok: ${toString report.count} tests"
else
  throw "nix/tests: ${toString (builtins.length report.failures)} of ${toString report.count} failed:\n${
    builtins.concatStringsSep "\n" (
      map (
        f: "- ${f.name}\n    expected: ${builtins.toJSON f.expected}\n    got:      ${builtins.toJSON f.got}"
      ) report.failures
    )
  }"
