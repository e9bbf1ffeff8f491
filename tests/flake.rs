//! Tests of the flake. nixpkgs cannot be fetched on these machines; what is checked:
//!
//! - every `.nix` file in the repository parses;
//! - `lib` evaluates (`--eval --strict --json`, compared as parsed JSON), and every bad
//!   fixture under `nix/tests/fixtures` fails with the message its first line names;
//! - the same fixtures give the same verdict, on the same key, in the Rust parser;
//! - `outputs` evaluates, with its output names, per-system attribute names and `lib`,
//!   when `nixpkgs` throws if touched;
//! - the NixOS and home-manager modules compute the expected `config` (with a small stand-in
//!   for the nixpkgs `lib` functions they use), and `nix/package.nix` the expected
//!   arguments to `buildRustPackage`;
//! - the template's `nixConfig` matches its `cache.toml`, and its outputs evaluate;
//! - `flake.lock` is a valid lock with nixpkgs as the only input;
//! - the flake and its template built, checked and run by Nix (`nix build`, `nix run` of
//!   each app, `nix flake check`, `nix flake init -t`) with nixpkgs overridden by the
//!   stand-in in `tests/nixpkgs-standin`, which builds with the host's toolchain.
//!
//! Pure evaluation uses `--store dummy://`. Without Nix these tests fail (never skip):
//! `.ci/run` installs it.

// Helpers outside #[test] functions unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

mod support;

use nix_cache_tools::cachetoml;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

fn nix_instantiate(args: &[&str]) -> Output {
    let out = Command::new("nix-instantiate")
        .args(args)
        .current_dir(root())
        .output();
    match out {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run nix-instantiate ({e}): these tests need a real Nix. Run `.ci/run` once, or \
             `sudo apt-get install -y nix-bin` (Debian/Ubuntu)"
        ),
    }
}

/// A Nix string literal for a path (paths in these tests have no `"`, `\` or `${`).
fn nix_str(p: &Path) -> String {
    let s = p.display().to_string();
    assert!(
        !s.contains(['"', '\\', '$']),
        "unexpected characters in {s}"
    );
    format!("\"{s}\"")
}

/// A Nix path expression for a file of the repository.
fn nix_path(rel: &str) -> String {
    format!("(/. + {})", nix_str(&root().join(rel)))
}

/// Evaluates `expr` strictly and returns its JSON value; panics with stderr on failure.
fn eval_json(expr: &str) -> Value {
    let out = nix_instantiate(&[
        "--store", "dummy://", "--eval", "--strict", "--json", "--expr", expr,
    ]);
    assert!(
        out.status.success(),
        "nix-instantiate failed ({}) on\n{expr}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Evaluates `expr`, which must fail; returns stderr.
fn eval_err(expr: &str) -> String {
    let out = nix_instantiate(&[
        "--store", "dummy://", "--eval", "--strict", "--json", "--expr", expr,
    ]);
    assert!(
        !out.status.success(),
        "expected an evaluation error from\n{expr}\ngot {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lib() -> String {
    format!("(import {})", nix_path("nix/lib.nix"))
}

fn fixture(name: &str) -> String {
    nix_path(&format!("nix/tests/fixtures/{name}"))
}

fn fixtures_dir() -> PathBuf {
    root().join("nix/tests/fixtures")
}

/// `bad-*.toml` fixtures with the text their first line (`# expect: ...`) promises.
fn bad_fixtures() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bad-") && n.ends_with(".toml"))
        .map(|n| {
            let text = std::fs::read_to_string(fixtures_dir().join(&n)).unwrap();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{n}: first line must be `# expect: ...`"))
                .to_owned();
            (n, expect)
        })
        .collect();
    v.sort();
    v
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let name = name.to_string_lossy();
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            if !(name.starts_with('.') || name == "target" || name.starts_with("result")) {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let mut files = Vec::new();
    nix_files(&root(), &mut files);
    let rel: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for must in [
        "flake.nix",
        "nix/lib.nix",
        "nix/package.nix",
        "nix/modules/nixos.nix",
        "nix/modules/home.nix",
        "nix/tests/default.nix",
        "templates/default/flake.nix",
    ] {
        assert!(
            rel.iter().any(|r| r == must),
            "{must} not found among {rel:?}"
        );
    }
    for f in &files {
        let out = nix_instantiate(&["--parse", &f.display().to_string()]);
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn nix_test_cases_all_pass() {
    let report = eval_json(&format!(
        "let r = import {}; in {{ inherit (r) count failures; }}",
        nix_path("nix/tests/default.nix")
    ));
    assert_eq!(
        report["failures"],
        json!([]),
        "failing cases in nix/tests/default.nix"
    );
    assert!(report["count"].as_u64().unwrap() >= 40, "{report}");
}

#[test]
fn bad_fixtures_fail_naming_file_key_and_fix() {
    let bad = bad_fixtures();
    let names: Vec<&str> = bad.iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "bad-unknown-key.toml",
        "bad-missing-public-key.toml",
        "bad-malformed-key.toml",
        "bad-url-and-cachix.toml",
    ] {
        assert!(names.contains(&must), "{must} missing: {names:?}");
    }
    for (name, expect) in &bad {
        let path = fixtures_dir().join(name);
        for expr in [
            format!("{}.readCacheConfig {}", lib(), fixture(name)),
            format!("{}.nixSettings {}", lib(), fixture(name)),
            format!("{}.nixSettings {}", lib(), nix_str(&path)),
        ] {
            let err = eval_err(&expr);
            assert!(
                err.contains(expect.as_str()),
                "{name}: expected\n  {expect}\nin\n{err}"
            );
            assert!(
                err.contains(&path.display().to_string()),
                "{name}: the file is not named:\n{err}"
            );
        }
    }
}

/// The Nix validation mirrors crates/nix-cache-tools/src/cachetoml.rs: every fixture gets
/// the same verdict from both, bad ones on the same key, good ones the same caches.
#[test]
fn fixtures_agree_with_the_rust_parser() {
    let mut seen = 0;
    for (name, _) in bad_fixtures() {
        let path = fixtures_dir().join(&name);
        let rust = cachetoml::load(&path).expect_err(&format!("Rust accepted {name}"));
        let nix = eval_json(&format!("{}.cacheConfigErrors {}", lib(), fixture(&name)));
        let first = nix[0]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no Nix error: {nix}"));
        let nix_key = first.split('`').nth(1).unwrap();
        assert_eq!(
            Some(nix_key),
            rust.key.as_deref(),
            "{name}: Nix says {first}, Rust says {rust}"
        );
        seen += 1;
    }
    for name in [
        "good-full.toml",
        "good-minimal.toml",
        "good-push-only.toml",
        "good-relative-secret.toml",
    ] {
        let rust = cachetoml::load(&fixtures_dir().join(name)).unwrap_or_else(|e| panic!("{e}"));
        let nix = eval_json(&format!("{}.nixSettings {}", lib(), fixture(name)));
        let urls: Vec<&str> = rust.caches.iter().map(|c| c.url.as_str()).collect();
        let keys: Vec<&str> = rust.caches.iter().map(|c| c.public_key.as_str()).collect();
        assert_eq!(
            nix,
            json!({"extra-substituters": urls, "extra-trusted-public-keys": keys}),
            "{name}"
        );
        seen += 1;
    }
    assert!(seen >= 15);
}

const KEY1: &str = "nanna-coder.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
const KEY2: &str = "other.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

fn full_settings() -> Value {
    json!({
        "extra-substituters": ["https://nanna-coder.cachix.org", "https://other.cachix.org"],
        "extra-trusted-public-keys": [KEY1, KEY2],
    })
}

#[test]
fn lib_reads_and_converts_cache_toml() {
    let path = fixtures_dir().join("good-full.toml");
    assert_eq!(
        eval_json(&format!(
            "{}.readCacheConfig {}",
            lib(),
            fixture("good-full.toml")
        )),
        json!({
            "_type": "nix-cache-tools.cache-config",
            "file": path.display().to_string(),
            "caches": [
                {"url": "https://nanna-coder.cachix.org", "public-key": KEY1, "cachix": null, "token-env": null},
                {"url": "https://other.cachix.org", "public-key": KEY2, "cachix": "other", "token-env": "CACHIX_AUTH_TOKEN"},
            ],
            "push": {
                "to": "cachix:nanna-coder",
                "filter": r"(-source$|nixpkgs\.tar\.gz$)",
                "secret-key-file": "/run/secrets/cache-signing-key",
            },
        })
    );
    // A path, a string path, the parsed description, or a cache.toml-shaped attribute set.
    for arg in [
        fixture("good-full.toml"),
        nix_str(&path),
        format!("({}.readCacheConfig {})", lib(), fixture("good-full.toml")),
        format!(
            r#"{{ cache = [ {{ url = "https://nanna-coder.cachix.org"; public-key = "{KEY1}"; }} {{ cachix = "other"; public-key = "{KEY2}"; }} ]; }}"#
        ),
    ] {
        assert_eq!(
            eval_json(&format!("{}.nixSettings {arg}", lib())),
            full_settings(),
            "{arg}"
        );
    }
    // toCacheToml writes what fromTOML reads back to the same settings.
    assert_eq!(
        eval_json(&format!(
            "let l = {}; in l.nixSettings (builtins.fromTOML (l.toCacheToml {}))",
            lib(),
            fixture("good-full.toml")
        )),
        full_settings()
    );
    // Invalid TOML is Nix's own parse error (no line numbers through fromTOML otherwise).
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("cache.toml");
    std::fs::write(&broken, "[[cache]\n").unwrap();
    let err = eval_err(&format!("{}.nixSettings {}", lib(), nix_str(&broken)));
    assert!(err.contains("TOML"), "{err}");
}

#[test]
fn mk_apps_wraps_each_tool_with_the_config() {
    // writeText names the store file after the text's hash, writeShellScript returns the
    // script: `program` then shows exactly what the app runs.
    let v = eval_json(&format!(
        r#"let
          apps = {lib}.mkApps {{
            pkgs = {{
              writeText = name: text: "/nix/store/${{builtins.hashString "sha256" text}}-${{name}}";
              writeShellScript = name: text: text;
              callPackage = _: _: "/nix/store/stub-nix-cache-tools";
            }};
            config = {fixture};
          }};
        in builtins.mapAttrs (_: a: {{ inherit (a) type program; inherit (a.meta) description; }}) apps"#,
        lib = lib(),
        fixture = fixture("good-full.toml"),
    ));
    let hash = {
        let out = Command::new("sha256sum")
            .arg(fixtures_dir().join("good-full.toml"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    let obj = v.as_object().unwrap();
    let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["cache-analytics", "push-cache", "setup-cache"]);
    for (name, app) in obj {
        assert_eq!(app["type"], "app");
        assert!(!app["description"].as_str().unwrap().is_empty());
        let program = app["program"].as_str().unwrap();
        assert!(
            program.contains(&format!(
                "export CACHE_TOOLS_CONFIG=/nix/store/{hash}-cache.toml\n"
            )),
            "{program}"
        );
        assert!(
            program.contains(&format!(
                "exec /nix/store/stub-nix-cache-tools/bin/{name} \"$@\""
            )),
            "{program}"
        );
    }
}

/// Evaluates a module of this flake with nix/tests/module-stub.nix.
fn module_config(module: &str, definitions: &str) -> Value {
    eval_json(&format!(
        r#"(import {stub}).evalModule {{
          module = {module};
          at = [ "services" "nix-cache-tools" ];
          definitions = {definitions};
        }}"#,
        stub = nix_path("nix/tests/module-stub.nix"),
        module = nix_path(module),
    ))
}

#[test]
fn modules_set_nix_settings_from_cache_toml() {
    let full = fixture("good-full.toml");
    let warning = "services.nix-cache-tools: the cache https://other.cachix.org is private (token-env = \
                   CACHIX_AUTH_TOKEN). Nix reads its token from a netrc file: set nix.settings.netrc-file \
                   to a file outside the Nix store containing `machine other.cachix.org password <the token>`.";
    let mut settings = full_settings();
    settings["trusted-users"] = json!(["root", "@wheel"]);
    assert_eq!(
        module_config(
            "nix/modules/nixos.nix",
            &format!(r#"{{ enable = true; configFile = {full}; trustedUsers = [ "@wheel" ]; }}"#)
        ),
        json!({
            "config": { "nix": { "settings": settings }, "warnings": [warning] },
            "options": ["configFile", "enable", "installTools", "package", "trustedUsers"],
        })
    );
    assert_eq!(
        module_config(
            "nix/modules/home.nix",
            &format!("{{ enable = true; configFile = {full}; }}")
        ),
        json!({
            "config": { "nix": { "settings": full_settings() }, "warnings": [warning] },
            "options": ["configFile", "enable", "installTools", "package"],
        })
    );
    // Disabled: nothing set, and the file is not even read.
    assert_eq!(
        module_config(
            "nix/modules/nixos.nix",
            &format!("{{ configFile = {}; }}", fixture("bad-unknown-key.toml"))
        )["config"],
        json!({})
    );
}

/// The flake's outputs with a nixpkgs that throws when touched.
const OUTPUTS: &str = r#"
  flake = import (ROOT + "/flake.nix");
  nixpkgs = throw "nixpkgs was touched";
  self = outputs // { outPath = ROOT; };
  outputs = flake.outputs { inherit self nixpkgs; };
  names = builtins.attrNames;
  perSystem = o: builtins.mapAttrs (_: names) o;
"#;

#[test]
fn flake_outputs_evaluate_without_nixpkgs() {
    let v = eval_json(&format!(
        r#"let ROOT = {root}; {OUTPUTS} in {{
          outputs = names outputs;
          inputs = names flake.inputs;
          nixpkgsUrl = flake.inputs.nixpkgs.url;
          hasNixConfig = flake ? nixConfig;
          packages = perSystem outputs.packages;
          apps = perSystem outputs.apps;
          appMeta = builtins.mapAttrs (_: a: {{ inherit (a) type; d = a.meta.description != ""; }}) outputs.apps.x86_64-linux;
          devShells = perSystem outputs.devShells;
          checks = perSystem outputs.checks;
          formatter = names outputs.formatter;
          lib = names outputs.lib;
          settings = outputs.lib.nixSettings {fixture};
          overlay = names (outputs.overlays.default {{ callPackage = p: _: baseNameOf p; }} {{ }});
          overlayPackage = (outputs.overlays.default {{ callPackage = p: _: baseNameOf p; }} {{ }}).nix-cache-tools;
          modules = builtins.mapAttrs (_: m: map baseNameOf m.default.imports) {{
            inherit (outputs) nixosModules darwinModules homeModules;
          }};
          template = {{
            inherit (outputs.templates.default) description;
            hasFlake = builtins.pathExists (outputs.templates.default.path + "/flake.nix");
            hasCacheToml = builtins.pathExists (outputs.templates.default.path + "/cache.toml");
          }};
        }}"#,
        root = nix_path(""),
        fixture = fixture("good-full.toml"),
    ));
    let systems = [
        "aarch64-darwin",
        "aarch64-linux",
        "x86_64-darwin",
        "x86_64-linux",
    ];
    let per_system = |names: Value| {
        Value::Object(
            systems
                .iter()
                .map(|s| (s.to_string(), names.clone()))
                .collect(),
        )
    };
    let description = v["template"]["description"].clone();
    assert!(description.as_str().is_some_and(|d| !d.is_empty()));
    assert_eq!(
        v,
        json!({
            "outputs": ["apps", "checks", "darwinModules", "devShells", "formatter", "homeModules",
                        "lib", "nixosModules", "overlays", "packages", "templates"],
            "inputs": ["nixpkgs"],
            "nixpkgsUrl": "github:NixOS/nixpkgs/nixos-25.05",
            "hasNixConfig": false,
            "packages": per_system(json!(["default", "nix-cache-tools"])),
            "apps": per_system(json!(["cache-analytics", "push-cache", "setup-cache"])),
            "appMeta": {
                "cache-analytics": {"type": "app", "d": true},
                "push-cache": {"type": "app", "d": true},
                "setup-cache": {"type": "app", "d": true},
            },
            "devShells": per_system(json!(["default"])),
            "checks": per_system(json!(["clippy", "fmt", "nix-lib", "package"])),
            "formatter": systems,
            "lib": ["cacheConfig", "cacheConfigErrors", "mkApps", "nixSettings", "readCacheConfig",
                    "toCacheToml", "toolDescriptions"],
            "settings": full_settings(),
            "overlay": ["nix-cache-tools"],
            "overlayPackage": "package.nix",
            "modules": {
                "nixosModules": ["nixos.nix"],
                "darwinModules": ["nixos.nix"],
                "homeModules": ["home.nix"],
            },
            "template": {"description": description, "hasFlake": true, "hasCacheToml": true},
        })
    );
}

#[test]
fn package_expression_builds_from_cargo_lock_with_the_workspace_version() {
    // nix/package.nix called with a stand-in `lib` and a buildRustPackage that returns its
    // arguments; the source filter (nix/source.nix, `builtins.path`, no lib.fileset)
    // applied to the repository's own entries.
    let v = eval_json(&format!(
        r#"let
          ROOT = {root};
          rel = p: builtins.substring (builtins.stringLength (toString ROOT) + 1) 1000 (toString p);
          lib = {{
            removePrefix = pre: s:
              let n = builtins.stringLength pre;
              in if builtins.substring 0 n s == pre then builtins.substring n (builtins.stringLength s) s else s;
            hasPrefix = pre: s: builtins.substring 0 (builtins.stringLength pre) s == pre;
            licenses = {{ mit = "MIT"; asl20 = "Apache-2.0"; }};
            platforms.unix = [ "unix" ];
            optionalString = c: s: if c then s else "";
          }};
          args = import (ROOT + "/nix/package.nix") {{
            inherit lib;
            stdenv = {{ buildPlatform.canExecute = _: true; hostPlatform = {{ }}; }};
            rustPlatform.buildRustPackage = a: a;
          }};
          cross = import (ROOT + "/nix/package.nix") {{
            inherit lib;
            stdenv = {{ buildPlatform.canExecute = _: false; hostPlatform = {{ }}; }};
            rustPlatform.buildRustPackage = a: a;
          }};
          sources = import (ROOT + "/nix/source.nix") {{ inherit lib; }};
          entries = builtins.readDir ROOT;
          kept = set: builtins.filter (n: sources.filterFor sources.keep.${{set}} (ROOT + "/${{n}}") entries.${{n}})
            (builtins.attrNames entries);
          keeps = set: p: type: sources.filterFor sources.keep.${{set}} (ROOT + "/${{p}}") type;
        in {{
          inherit (args) pname version cargoTestFlags;
          generates_man = builtins.match ".*--generate man.*" args.postInstall != null;
          cross_post_install = cross.postInstall;
          build = kept "build";
          nix = kept "nix";
          nested = {{
            lib_rs = keeps "build" "crates/nix-cache-tools/src/lib.rs" "regular";
            readme = keeps "build" "README.md" "regular";
            nix_lib = keeps "build" "nix/lib.nix" "regular";
            nix_dir_for_nix = keeps "nix" "nix" "directory";
            nix_package_for_nix = keeps "nix" "nix/package.nix" "regular";
            nix_module_for_nix = keeps "nix" "nix/modules/common.nix" "regular";
          }};
          lockFile = rel args.cargoLock.lockFile;
          inherit (args.meta) mainProgram license;
        }}"#,
        root = nix_path(""),
    ));
    let cargo_toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let doc: toml_edit::ImDocument<String> = toml_edit::ImDocument::parse(cargo_toml).unwrap();
    let version = doc["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        v,
        json!({
            "pname": "nix-cache-tools",
            "version": version,
            "cargoTestFlags": ["--workspace", "--lib", "--bins"],
            // Man pages and completions are generated by the built tools, except when
            // they cannot run where they are built.
            "generates_man": true,
            "cross_post_install": "",
            "build": ["Cargo.lock", "Cargo.toml", "crates", "tests"],
            "nix": ["nix"],
            "nested": {
                "lib_rs": true,
                "readme": false,
                "nix_lib": false,
                "nix_dir_for_nix": true,
                "nix_package_for_nix": false,
                "nix_module_for_nix": true,
            },
            "lockFile": "Cargo.lock",
            "mainProgram": "setup-cache",
            "license": ["MIT", "Apache-2.0"],
        })
    );
}

#[test]
fn template_nix_config_matches_its_cache_toml_and_outputs_evaluate() {
    let v = eval_json(&format!(
        r#"let
          ROOT = {root};
          {OUTPUTS}
          template = import (ROOT + "/templates/default/flake.nix");
          genAttrs = ns: f: builtins.listToAttrs (map (n: {{ name = n; value = f n; }}) ns);
          stubPkgs = {{
            writeText = name: text: "/nix/store/stub-${{name}}";
            writeShellScript = name: text: text;
            callPackage = _: _: "/nix/store/stub-nix-cache-tools";
            runCommand = name: env: script: script;
          }};
          stubNixpkgs = {{
            lib = {{ inherit genAttrs; escapeShellArg = s: "'${{s}}'"; }};
            legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ] (_: stubPkgs);
          }};
          t = template.outputs {{ self = t; nixpkgs = stubNixpkgs; cache-tools = outputs; }};
        in {{
          nixConfig = template.nixConfig;
          fromCacheToml = outputs.lib.nixSettings (ROOT + "/templates/default/cache.toml");
          inputs = builtins.mapAttrs (_: i: i.url or null) template.inputs;
          follows = template.inputs.cache-tools.inputs.nixpkgs.follows;
          apps = builtins.attrNames t.apps.x86_64-linux;
          program = t.apps.x86_64-linux.setup-cache.program;
          check = t.checks.aarch64-darwin.nixconfig-matches-cache-toml;
        }}"#,
        root = nix_path(""),
    ));
    assert_eq!(v["nixConfig"], v["fromCacheToml"]);
    assert_eq!(
        v["inputs"],
        json!({"nixpkgs": "github:NixOS/nixpkgs/nixos-25.05", "cache-tools": "github:nix-cache-tools/nix-cache-tools"})
    );
    assert_eq!(v["follows"], "nixpkgs");
    assert_eq!(
        v["apps"],
        json!(["cache-analytics", "push-cache", "setup-cache"])
    );
    assert_eq!(
        v["program"],
        "# CACHE_TOOLS_CONFIG means the same as --config; an explicit --config still wins.\n\
         export CACHE_TOOLS_CONFIG=/nix/store/stub-cache.toml\n\
         exec /nix/store/stub-nix-cache-tools/bin/setup-cache \"$@\"\n"
    );
    assert_eq!(v["check"], "touch $out");
}

#[test]
fn flake_lock_locks_only_nixpkgs() {
    let text = std::fs::read_to_string(root().join("flake.lock")).unwrap();
    let lock: Value = serde_json::from_str(&text).expect("flake.lock is JSON");
    assert_eq!(lock["version"], 7);
    assert_eq!(lock["root"], "root");
    let nodes = lock["nodes"].as_object().unwrap();
    let mut names: Vec<&str> = nodes.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["nixpkgs", "root"]);
    assert_eq!(nodes["root"], json!({"inputs": {"nixpkgs": "nixpkgs"}}));
    let n = &nodes["nixpkgs"];
    assert_eq!(
        n["original"],
        json!({"owner": "NixOS", "repo": "nixpkgs", "ref": "nixos-25.05", "type": "github"})
    );
    let locked = &n["locked"];
    assert_eq!(
        (&locked["owner"], &locked["repo"], &locked["type"]),
        (&json!("NixOS"), &json!("nixpkgs"), &json!("github"))
    );
    let rev = locked["rev"].as_str().unwrap();
    assert!(
        rev.len() == 40 && rev.chars().all(|c| c.is_ascii_hexdigit()),
        "{rev}"
    );
    let nar = locked["narHash"].as_str().unwrap();
    assert!(
        nar.starts_with("sha256-") && nar.len() == 7 + 44 && nar.ends_with('='),
        "{nar}"
    );
    assert!(locked["lastModified"].as_u64().is_some());
    // The lock matches what flake.nix asks for.
    let url = eval_json(&format!(
        "(import {}).inputs.nixpkgs.url",
        nix_path("flake.nix")
    ));
    assert_eq!(url, "github:NixOS/nixpkgs/nixos-25.05");
}

#[test]
fn nix_check_script_runs() {
    // The script `checks.<system>.nix-lib` runs in the build sandbox, run here as is.
    let out = Command::new("sh")
        .arg(root().join("nix/tests/run.sh"))
        .arg(root())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "nix/tests/run.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("\nok   bad-").count(),
        bad_fixtures().len(),
        "{stdout}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `lib` through Nix's real flake machinery (`nix eval path:...`), with the real
/// flake.lock: it evaluates without fetching nixpkgs (there is no network here). Uses a
/// chroot store in a temporary directory, so nothing touches the machine's store.
#[test]
fn real_flake_lib_evaluates_without_nixpkgs() {
    support::require_nix();
    let env = support::NixEnv::with_system_conf(
        "experimental-features = nix-command flakes\nsubstituters =\naccept-flake-config = false\n",
    );
    let ours = env.path().join("nix-cache-tools");
    std::fs::create_dir_all(&ours).unwrap();
    for f in ["flake.nix", "flake.lock"] {
        std::fs::copy(root().join(f), ours.join(f)).unwrap();
    }
    copy_tree(&root().join("nix"), &ours.join("nix"));
    copy_tree(&root().join("templates"), &ours.join("templates"));

    let store = env.path().join("store").display().to_string();
    let ours_ref = format!("path:{}", ours.display());
    let meta = support::run_ok({
        let mut c = env.command("nix");
        c.args(["--store", &store, "flake", "metadata", "--json", &ours_ref]);
        c
    });
    let meta: Value = serde_json::from_slice(&meta.stdout).unwrap();
    assert_eq!(
        meta["locks"]["nodes"]["root"]["inputs"],
        json!({"nixpkgs": "nixpkgs"})
    );

    let key = "team.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    let out = support::run_ok({
        let mut c = env.command("nix");
        c.args(["--store", &store, "eval", "--json", "--no-write-lock-file"])
            .arg(format!("{ours_ref}#lib"))
            .arg("--apply")
            .arg(format!(
                r#"l: l.nixSettings {{ cache = [ {{ cachix = "team"; public-key = "{key}"; }} ]; }}"#
            ));
        c
    });
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"extra-substituters": ["https://team.cachix.org"], "extra-trusted-public-keys": [key]})
    );
}

/// This repository's flake and its template, built and run by Nix, with nixpkgs replaced
/// (`--override-input`) by the stand-in in tests/nixpkgs-standin, whose packages build
/// for real with the host's Rust toolchain and C compiler in Nix's build sandbox.
struct FlakeRun {
    env: support::NixEnv,
    ours: String,
    standin: String,
}

impl FlakeRun {
    fn new() -> Self {
        support::require_nix();
        assert!(
            support::is_root(),
            "the flake test builds in Nix's sandbox as root: run the tests as root (CI does)"
        );
        // Cargo's target directory (this binary is TARGET/debug/deps/flake-*): the stand-in
        // keeps the vendored crates and its Rust builds under TARGET/flake-standin, shared
        // by every Nix version the suite runs (.ci/test-on-nix binds it into the chroots).
        let exe = std::env::current_exe().unwrap();
        let cache = exe.ancestors().nth(3).unwrap().join("flake-standin");
        support::run_ok(
            Command::new("sh")
                .arg(root().join("tests/nixpkgs-standin/vendor.sh"))
                .arg(&cache),
        );
        // In a chroot of .ci/test-on-nix the host's root is bound at NCT_HOST_ROOT, and
        // NCT_RUST_SYSROOT names the host's toolchain: the sandbox sees the host's tools at
        // their host paths, so every Nix version builds with the very same ones.
        let host_root = std::env::var("NCT_HOST_ROOT").unwrap_or_default();
        let sysroot = std::env::var("NCT_RUST_SYSROOT").unwrap_or_else(|_| {
            let out = support::run_ok(Command::new("rustc").args(["--print", "sysroot"]));
            support::stdout(&out).trim().to_owned()
        });
        // `sandbox-paths` replaces Nix's default (/bin/sh only). Sources are resolved to
        // real files and directories: Nix 2.34 recreates a link in the sandbox instead of
        // binding what it points to (Debian's /bin/sh -> dash, /bin -> usr/bin), where
        // the link's target is missing or the next path cannot be created under it.
        let mut sandbox_paths: Vec<String> = [
            ("/bin/sh", "/usr/bin/sh"),
            ("/usr", "/usr"),
            ("/lib", "/usr/lib"),
            ("/lib64", "/usr/lib64"),
            ("/etc/alternatives", "/etc/alternatives"),
            (sysroot.as_str(), sysroot.as_str()),
        ]
        .into_iter()
        .map(|(inside, host)| {
            let source = Path::new(&format!("{host_root}{host}"))
                .canonicalize()
                .unwrap_or_else(|e| panic!("{host_root}{host}: {e}"));
            format!("{inside}={}", source.display())
        })
        .collect();
        sandbox_paths.push(cache.display().to_string());
        // The machine's store (in a chroot, the chroot's), as a user's `nix build` uses: Nix
        // 2.8 evaluates a flake's paths in a chroot store (`--store DIR`) to their real
        // location outside /nix/store, and then `nix flake check` rejects the template
        // ("template '%s' has a bad 'path' attribute"). The sandbox is on: builds see only
        // their inputs and the paths above.
        let env = support::NixEnv::with_system_conf(&format!(
            "experimental-features = nix-command flakes\nsubstituters =\n\
             accept-flake-config = false\nbuild-users-group =\nsandbox = true\n\
             sandbox-paths = {}\n",
            sandbox_paths.join(" ")
        ));
        let ours = env.path().join("nix-cache-tools");
        std::fs::create_dir_all(&ours).unwrap();
        for f in [
            "flake.nix",
            "flake.lock",
            "Cargo.toml",
            "Cargo.lock",
            "clippy.toml",
        ] {
            std::fs::copy(root().join(f), ours.join(f)).unwrap();
        }
        for d in ["nix", "templates", "crates", "tests"] {
            copy_tree(&root().join(d), &ours.join(d));
        }
        let standin = env.path().join("nixpkgs-standin");
        copy_tree(&root().join("tests/nixpkgs-standin"), &standin);
        std::fs::write(
            standin.join("host.nix"),
            format!(
                "{{\n  toolchain = {};\n  vendor = {};\n  cache = {};\n}}\n",
                nix_str(Path::new(&sysroot)),
                nix_str(&cache.join("vendor")),
                nix_str(&cache)
            ),
        )
        .unwrap();
        FlakeRun {
            ours: format!("path:{}", ours.display()),
            standin: format!("path:{}", standin.display()),
            env,
        }
    }

    /// `nix ARGS -- PROGRAM_ARGS` (no `--` when there are none) with nixpkgs overridden;
    /// the flake's own lock is never rewritten. Bounded: a cold build takes minutes.
    fn nix(&self, cwd: &Path, args: &[&str], program_args: &[&str]) -> Output {
        let mut c = self.env.command("nix");
        c.current_dir(cwd).args(args).args([
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            &self.standin,
        ]);
        if !program_args.is_empty() {
            c.arg("--").args(program_args);
        }
        support::run_bounded(&mut c, 1200)
    }

    fn nix_ok(&self, cwd: &Path, args: &[&str], program_args: &[&str]) -> Output {
        let out = self.nix(cwd, args, program_args);
        assert!(
            out.status.success(),
            "nix {args:?} -- {program_args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
            out.status,
            support::stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// The flake as a user meets it, on every Nix the suite runs: `nix build`, the three apps
/// through `nix run` (a push that a fresh store then substitutes from), `nix flake check`,
/// and the template: `nix flake init -t`, its apps bound to its own cache.toml, and a
/// cache.toml that drifted from nixConfig failing `nix flake check` only.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn flake_is_built_checked_and_run_by_nix_with_a_stand_in_nixpkgs() {
    let run = FlakeRun::new();
    let dir = run.env.path().to_path_buf();
    let ours = run.ours.clone();
    let manifest: toml_edit::DocumentMut = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let version = manifest["workspace"]["package"]["version"]
        .as_str()
        .unwrap()
        .to_owned();

    // nix build .#default: the three tools, built from Cargo.lock.
    let result = dir.join("result");
    run.nix_ok(
        &dir,
        &[
            "build",
            &format!("{ours}#default"),
            "--out-link",
            result.to_str().unwrap(),
        ],
        &[],
    );
    for tool in ["setup-cache", "push-cache", "cache-analytics"] {
        let out = support::run_ok(Command::new(result.join("bin").join(tool)).arg("--version"));
        assert_eq!(support::stdout(&out).trim(), format!("{tool} {version}"));
        // The package installs each tool's man page and completions, generated from it.
        let share = result.join("share");
        let man = std::fs::read_to_string(share.join(format!("man/man1/{tool}.1"))).unwrap();
        assert!(
            man.contains(&format!(".TH {tool} 1")) && man.contains("Exit codes"),
            "{man}"
        );
        for (file, says) in [
            (format!("bash-completion/completions/{tool}"), "complete -F"),
            (format!("zsh/site-functions/_{tool}"), "#compdef"),
            (
                format!("fish/vendor_completions.d/{tool}.fish"),
                "complete -c",
            ),
        ] {
            let text = std::fs::read_to_string(share.join(&file)).unwrap();
            assert!(
                text.contains(says) && text.contains("version"),
                "{file}: {text}"
            );
        }
    }
    let package = std::fs::read_link(&result).unwrap();

    // nix run .#setup-cache -- --dry-run: says what it would add, writes nothing.
    let key = "team.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    let out = run.nix_ok(
        &dir,
        &["run", &format!("{ours}#setup-cache")],
        &[
            "--dry-run",
            "--json",
            "--url",
            "https://team.cachix.org",
            "--public-key",
            key,
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("setup-cache --json ({e}): {}", support::stdout(&out)));
    assert!(
        report.to_string().contains("https://team.cachix.org"),
        "{report}"
    );
    assert!(
        !run.env.user_conf().exists(),
        "--dry-run wrote {:?}",
        run.env.user_conf()
    );

    // nix run .#cache-analytics -- --format json: the store this Nix uses, counted exactly.
    let all = run.env.nix(&["path-info", "--all"]).output().unwrap();
    let paths = support::stdout(&all).lines().count();
    let out = run.nix_ok(
        &dir,
        &["run", &format!("{ours}#cache-analytics")],
        &["--format", "json", "--closure", package.to_str().unwrap()],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["store"]["paths"],
        json!(paths),
        "{}",
        report["store"]
    );

    // nix run .#push-cache to a file:// cache, signed; a fresh store substitutes from it.
    let secret = dir.join("cache.sec");
    let public = dir.join("cache.pub");
    let out =
        support::run_ok(
            run.env
                .nix(&["key", "generate-secret", "--key-name", "flake-test-1"]),
        );
    std::fs::write(&secret, &out.stdout).unwrap();
    let out = support::run_ok({
        let mut c = run.env.nix(&["key", "convert-secret-to-public"]);
        c.stdin(std::fs::File::open(&secret).unwrap());
        c
    });
    std::fs::write(&public, &out.stdout).unwrap();
    let cache = format!("file://{}", dir.join("binary-cache").display());
    let out = run.nix_ok(
        &dir,
        &["run", &format!("{ours}#push-cache")],
        &[
            "--json",
            "--to",
            &cache,
            "--secret-key-file",
            secret.to_str().unwrap(),
            result.to_str().unwrap(),
        ],
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pushed"], json!([package]), "{report}");
    let fresh = format!("local?root={}", dir.join("fresh").display());
    support::run_ok(
        run.env.nix(&[
            "copy",
            "--from",
            &cache,
            "--to",
            &fresh,
            "--option",
            "trusted-public-keys",
            std::str::from_utf8(&std::fs::read(&public).unwrap())
                .unwrap()
                .trim(),
            package.to_str().unwrap(),
        ]),
    );
    support::run_ok(
        run.env
            .nix(&["path-info", "--store", &fresh, package.to_str().unwrap()]),
    );

    // nix flake check: the package, clippy, rustfmt and the Nix library tests, built.
    run.nix_ok(&dir, &["flake", "check", &ours], &[]);

    // The template, as a consumer starts from it.
    let consumer = dir.join("consumer");
    std::fs::create_dir_all(&consumer).unwrap();
    support::run_ok({
        let mut c = run.env.command("nix");
        c.current_dir(&consumer)
            .args(["flake", "init", "-t", &format!("{ours}#default")]);
        c
    });
    for f in ["flake.nix", "cache.toml", "README.md"] {
        assert!(
            consumer.join(f).is_file(),
            "nix flake init did not write {f}"
        );
    }
    let consumer_ref = format!("path:{}", consumer.display());
    let with_us = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--override-input", "cache-tools", &ours].map(String::from))
            .collect()
    };
    let check = with_us(&["flake", "check", &consumer_ref]);
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    run.nix_ok(&consumer, &check, &[]);
    // Its setup-cache reads the consumer's cache.toml (through CACHE_TOOLS_CONFIG), even
    // when run from a directory that has none; a cache.toml edited without nixConfig
    // still runs and shows, and fails `nix flake check`, saying what to write.
    let toml = std::fs::read_to_string(consumer.join("cache.toml")).unwrap();
    assert!(
        toml.contains("cachix = \"nanna-coder\""),
        "the template's cache.toml changed: {toml}"
    );
    std::fs::write(
        consumer.join("cache.toml"),
        toml.replace("nanna-coder", "drifted-team"),
    )
    .unwrap();
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let setup = with_us(&["run", &format!("{consumer_ref}#setup-cache")]);
    let setup: Vec<&str> = setup.iter().map(String::as_str).collect();
    let out = run.nix_ok(&elsewhere, &setup, &["--dry-run", "--json"]);
    assert!(
        support::stdout(&out).contains("https://drifted-team.cachix.org"),
        "{}",
        support::stdout(&out)
    );
    let show = with_us(&["flake", "show", &consumer_ref]);
    let show: Vec<&str> = show.iter().map(String::as_str).collect();
    run.nix_ok(&consumer, &show, &[]);
    let out = run.nix(&consumer, &check, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a drifted cache.toml passed nix flake check"
    );
    assert!(
        err.contains("flake.nix: nixConfig differs from cache.toml")
            && err.contains("drifted-team.cachix.org"),
        "{err}"
    );
}
