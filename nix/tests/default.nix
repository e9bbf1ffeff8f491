# Tests of the flake's `lib` and modules that need only Nix, no nixpkgs.
# Evaluates to { count; failures = [ { name; expected; got; } ]; }; ./check.nix turns
# that into a pass/fail, and tests/flake.rs asserts failures == [ ].
let
  inherit (builtins)
    attrNames
    filter
    hashString
    length
    readDir
    readFile
    substring
    stringLength
    tryEval
    ;

  cacheTools = import ../lib.nix;
  stub = import ./module-stub.nix;

  fixture = name: ./fixtures + "/${name}";

  hasInfix =
    infix: s:
    stringLength infix <= stringLength s
    && builtins.any (i: substring i (stringLength infix) s == infix) (
      builtins.genList (i: i) (stringLength s - stringLength infix + 1)
    );

  throws = v: !(tryEval (builtins.deepSeq v v)).success;

  key1 = "nanna-coder.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
  key2 = "other.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
  anyKey = "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

  fullSettings = {
    extra-substituters = [
      "https://nanna-coder.cachix.org"
      "https://other.cachix.org"
    ];
    extra-trusted-public-keys = [
      key1
      key2
    ];
  };

  urlErrors = url: cacheTools.cacheConfigErrors { cache = [ { inherit url; public-key = anyKey; } ]; };
  keyErrors = key: cacheTools.cacheConfigErrors { cache = [ { url = "https://x.org"; public-key = key; } ]; };
  pushErrors = to: cacheTools.cacheConfigErrors { push = { inherit to; }; };

  # A stand-in for pkgs in mkApps: writeText names the file after a hash of its text, and
  # writeShellScript returns the script itself, so `program` shows what the app runs.
  appPkgs = {
    writeText = name: text: "/nix/store/${hashString "sha256" text}-${name}";
    writeShellScript = _name: text: text;
    callPackage = _: _: throw "mkApps built the package although `package` was given";
  };
  stubPackage = "/nix/store/stub-nix-cache-tools";
  apps = config: cacheTools.mkApps {
    pkgs = appPkgs;
    package = stubPackage;
    inherit config;
  };

  nixosModule = ../modules/nixos.nix;
  homeModule = ../modules/home.nix;
  evalModule =
    module: definitions:
    (stub.evalModule {
      inherit module definitions;
      at = [
        "services"
        "nix-cache-tools"
      ];
    }).config;

  badFixtures = filter (n: substring 0 4 n == "bad-") (attrNames (readDir ./fixtures));
  expectOf =
    name:
    let
      m = builtins.match "# expect: ([^\n]*)\n.*" (readFile (fixture name));
    in
    if m == null then throw "${name}: no '# expect: ...' first line" else builtins.head m;

  badCases = builtins.listToAttrs (
    map (name: {
      name = "bad fixture ${name}";
      value =
        let
          errors = cacheTools.cacheConfigErrors (fixture name);
        in
        {
          expr = {
            rejected = throws (cacheTools.readCacheConfig (fixture name));
            firstErrorHasExpectedText = errors != [ ] && hasInfix (expectOf name) (builtins.head errors);
            namesFile = errors != [ ] && hasInfix (toString (fixture name)) (builtins.head errors);
          };
          expected = {
            rejected = true;
            firstErrorHasExpectedText = true;
            namesFile = true;
          };
        };
    }) badFixtures
  );

  cases = badCases // {
    "nixSettings, file order, url and cachix forms" = {
      expr = cacheTools.nixSettings (fixture "good-full.toml");
      expected = fullSettings;
    };
    "nixSettings of a minimal file" = {
      expr = cacheTools.nixSettings (fixture "good-minimal.toml");
      expected = {
        extra-substituters = [ "http://127.0.0.1:8080" ];
        extra-trusted-public-keys = [ "local-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      };
    };
    "nixSettings with no [[cache]] is empty" = {
      expr = cacheTools.nixSettings (fixture "good-push-only.toml");
      expected = {
        extra-substituters = [ ];
        extra-trusted-public-keys = [ ];
      };
    };
    "readCacheConfig: the parsed description" = {
      expr = cacheTools.readCacheConfig (fixture "good-full.toml");
      expected = {
        _type = "nix-cache-tools.cache-config";
        file = toString (fixture "good-full.toml");
        caches = [
          {
            url = "https://nanna-coder.cachix.org";
            public-key = key1;
            cachix = null;
            token-env = null;
          }
          {
            url = "https://other.cachix.org";
            public-key = key2;
            cachix = "other";
            token-env = "CACHIX_AUTH_TOKEN";
          }
        ];
        push = {
          to = "cachix:nanna-coder";
          filter = "(-source$|nixpkgs\\.tar\\.gz$)";
          secret-key-file = "/run/secrets/cache-signing-key";
        };
      };
    };
    "readCacheConfig takes a path as a string too" = {
      expr = cacheTools.nixSettings (toString (fixture "good-full.toml"));
      expected = fullSettings;
    };
    "nixSettings takes the parsed description" = {
      expr = cacheTools.nixSettings (cacheTools.readCacheConfig (fixture "good-full.toml"));
      expected = fullSettings;
    };
    "nixSettings takes an attribute set shaped like cache.toml" = {
      expr = cacheTools.nixSettings {
        cache = [
          {
            url = "https://nanna-coder.cachix.org";
            public-key = key1;
          }
          {
            cachix = "other";
            public-key = key2;
          }
        ];
      };
      expected = fullSettings;
    };
    "an attribute set is validated like a file" = {
      expr = cacheTools.cacheConfigErrors { cache = [ { cachix = "a b"; public-key = anyKey; } ]; };
      expected = [
        "nix-cache-tools: <attribute set>: `cache.cachix` (in the 1st [[cache]]): `a b` is not a Cachix cache name (letters, digits and `-` only)"
      ];
    };
    "duplicate keys are listed once, in first-seen order" = {
      expr = cacheTools.nixSettings {
        cache = [
          {
            url = "https://a.example.org";
            public-key = anyKey;
          }
          {
            url = "https://b.example.org";
            public-key = " ${anyKey} ";
          }
        ];
      };
      expected = {
        extra-substituters = [
          "https://a.example.org"
          "https://b.example.org"
        ];
        extra-trusted-public-keys = [ anyKey ];
      };
    };
    "toCacheToml round-trips" = {
      expr =
        let
          c = cacheTools.readCacheConfig (fixture "good-full.toml");
        in
        cacheTools.cacheConfig (builtins.fromTOML (cacheTools.toCacheToml c)) // { file = c.file; };
      expected = cacheTools.readCacheConfig (fixture "good-full.toml");
    };
    "substituter URLs Nix accepts" = {
      expr = map urlErrors [
        "https://cache.nixos.org"
        "https://nanna-coder.cachix.org/"
        "http://127.0.0.1:8080"
        "file:///var/cache/nix"
        "s3://bucket?region=eu-west-1"
        "ssh-ng://builder@host"
        "HTTPS://Upper.example.org"
        "http://[::1]:80/"
      ];
      expected = [
        [ ]
        [ ]
        [ ]
        [ ]
        [ ]
        [ ]
        [ ]
        [ ]
      ];
    };
    "substituter URLs Nix cannot use" = {
      expr = map (u: length (urlErrors u)) [
        "cache.nixos.org"
        "ftp://x"
        "https://"
        "https://user@:443/"
        "https://x/#frag"
        "https://x y"
        "http://[::1"
      ];
      expected = [
        1
        1
        1
        1
        1
        1
        1
      ];
    };
    "public keys" = {
      expr = map (k: keyErrors k == [ ]) [
        "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
        key1
        "x:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY"
        ":6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
        "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=="
        "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShj!="
        "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=x"
        "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
      ];
      expected = [
        true
        true
        false
        false
        false
        false
        false
        false
      ];
    };
    "push targets" = {
      expr = map (t: pushErrors t == [ ]) [
        "cachix:team"
        "attic:team"
        "attic:server:team"
        "file:///var/cache/nix"
        "s3://bucket"
        "cachix:"
        "cachix:a/b"
        "attic:"
        "nowhere"
      ];
      expected = [
        true
        true
        true
        true
        true
        false
        false
        false
        false
      ];
    };
    "the first error is the first in the file" = {
      expr = length (cacheTools.cacheConfigErrors {
        colour = 1;
        cache = [ { url = "x"; } ];
        push.to = "nowhere";
      });
      expected = 3;
    };

    "mkApps: three apps, each running its tool with the file's own text" = {
      expr =
        let
          a = apps (fixture "good-full.toml");
          configPath = "/nix/store/${hashString "sha256" (readFile (fixture "good-full.toml"))}-cache.toml";
        in
        builtins.mapAttrs (name: app: {
          inherit (app) type;
          hasDescription = app.meta.description != "";
          setsConfig = hasInfix "export CACHE_TOOLS_CONFIG=${configPath}\n" app.program;
          runsTool = hasInfix "exec ${stubPackage}/bin/${name} \"$@\"" app.program;
        }) a;
      expected =
        let
          ok = {
            type = "app";
            hasDescription = true;
            setsConfig = true;
            runsTool = true;
          };
        in
        {
          setup-cache = ok;
          push-cache = ok;
          cache-analytics = ok;
        };
    };
    "mkApps from an attribute set writes it as cache.toml" = {
      expr =
        let
          cfg = {
            cache = [
              {
                cachix = "team";
                public-key = anyKey;
              }
            ];
          };
        in
        hasInfix "/nix/store/${hashString "sha256" (cacheTools.toCacheToml cfg)}-cache.toml" (apps cfg).setup-cache.program;
      expected = true;
    };
    "mkApps: push-cache refuses a relative push.secret-key-file, the others run" = {
      expr =
        let
          a = apps (fixture "good-relative-secret.toml");
        in
        builtins.mapAttrs (_: app: throws app.program) a;
      expected = {
        push-cache = true;
        setup-cache = false;
        cache-analytics = false;
      };
    };
    "mkApps refuses a bad cache.toml" = {
      expr = throws (apps (fixture "bad-unknown-key.toml")).setup-cache.program;
      expected = true;
    };

    "NixOS module: nix.settings, trusted users, tools, warning for a private cache" = {
      expr = evalModule nixosModule {
        enable = true;
        configFile = fixture "good-full.toml";
        trustedUsers = [ "@wheel" ];
        installTools = true;
      };
      expected = {
        nix.settings = fullSettings // {
          trusted-users = [
            "root"
            "@wheel"
          ];
        };
        environment.systemPackages = [ { stubPackage = "package.nix"; } ];
        warnings = [
          "services.nix-cache-tools: the cache https://other.cachix.org is private (token-env = CACHIX_AUTH_TOKEN). Nix reads its token from a netrc file: set nix.settings.netrc-file to a file outside the Nix store containing `machine other.cachix.org password <the token>`."
        ];
      };
    };
    "NixOS module: defaults leave trusted-users alone" = {
      expr = evalModule nixosModule {
        enable = true;
        configFile = fixture "good-minimal.toml";
      };
      expected = {
        nix.settings = cacheTools.nixSettings (fixture "good-minimal.toml");
        warnings = [ ];
      };
    };
    "NixOS module: disabled sets nothing and reads nothing" = {
      expr = evalModule nixosModule { configFile = fixture "bad-unknown-key.toml"; };
      expected = { };
    };
    "NixOS module: a bad cache.toml fails evaluation" = {
      expr = throws (evalModule nixosModule {
        enable = true;
        configFile = fixture "bad-malformed-key.toml";
      });
      expected = true;
    };
    "home-manager module: nix.settings and home.packages" = {
      expr = evalModule homeModule {
        enable = true;
        configFile = fixture "good-minimal.toml";
        installTools = true;
      };
      expected = {
        nix.settings = cacheTools.nixSettings (fixture "good-minimal.toml");
        home.packages = [ { stubPackage = "package.nix"; } ];
        warnings = [ ];
      };
    };
    "home-manager module has no trustedUsers (a user cannot grant trust)" = {
      expr = throws (evalModule homeModule {
        enable = true;
        configFile = fixture "good-minimal.toml";
        trustedUsers = [ "me" ];
      });
      expected = true;
    };
  };

  failures = map (name: {
    inherit name;
    inherit (cases.${name}) expected;
    got = cases.${name}.expr;
  }) (filter (name: cases.${name}.expr != cases.${name}.expected) (attrNames cases));
in
{
  count = length (attrNames cases);
  inherit failures;
  names = attrNames cases;
}
