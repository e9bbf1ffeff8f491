//! Integration tests for setup-cache against real Nix (Debian's nix-bin 2.8 in CI): the
//! real binary, an isolated configuration, and assertions on what Nix then does.
#![allow(clippy::unwrap_used)]
#[path = "support/setup_daemon.rs"]
mod setup_daemon;
mod support;

use nix_cache_tools::nixconf::{LineKind, NixConf};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_setup-cache");
/// A well-formed public key nobody signs with.
const OTHER_KEY: &str = "other.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

fn finish(out: std::process::Output, json: bool) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = if json {
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!("--json output is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
        })
    } else {
        Value::Null
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr,
    }
}

/// Runs setup-cache with `--json` in the isolated environment.
fn setup_cache(env: &NixEnv, args: &[&str]) -> Run {
    let out = env.command(BIN).args(args).arg("--json").output().unwrap();
    finish(out, true)
}

fn cache_args<'a>(url: &'a str, key: &'a str) -> Vec<&'a str> {
    vec!["--url", url, "--public-key", key]
}

fn has_url(list: &[String], url: &str) -> bool {
    list.iter()
        .any(|u| u.trim_end_matches('/') == url.trim_end_matches('/'))
}

/// Every line of `old` is still in `new` at the same number, unchanged, except setting
/// lines that only gained `added` values at their end (comment kept); lines after the
/// old ones are new `extra-` lines. The old last line may have gained its newline.
fn assert_only_appended(old: &str, new: &str, added: &[&str], what: &str) {
    let (o, n) = (NixConf::parse(old), NixConf::parse(new));
    assert!(
        n.lines().len() >= o.lines().len(),
        "{what}: lines were removed"
    );
    for l in o.lines() {
        let nl = n.line(l.number).unwrap();
        let last = l.number == o.lines().len();
        assert!(
            nl.eol == l.eol || (last && l.eol.is_empty()),
            "{what}: line {} changed its ending",
            l.number
        );
        if nl.content == l.content {
            continue;
        }
        let (os, ns) = (l.setting(), nl.setting());
        let ok = match (os, ns) {
            (Some(os), Some(ns)) => {
                ns.key == os.key
                    && ns.values.starts_with(&os.values)
                    && ns.values[os.values.len()..]
                        .iter()
                        .all(|v| added.contains(&v.as_str()))
                    && nl.comment() == l.comment()
            }
            _ => false,
        };
        assert!(
            ok,
            "{what}: line {} was changed:\n- {}\n+ {}",
            l.number, l.content, nl.content
        );
    }
    for nl in &n.lines()[o.lines().len()..] {
        match &nl.kind {
            LineKind::Setting(s)
                if s.is_extra && s.values.iter().all(|v| added.contains(&v.as_str())) => {}
            other => panic!("{what}: unexpected new line {:?} ({other:?})", nl.content),
        }
    }
}

/// The corpus: (file, role). Every file in tests/corpus/nixconf must be listed here and
/// in its SOURCES.md.
const CORPUS: &[(&str, &str)] = &[
    ("debian-nix-bin-2.8.conf", "system"),
    ("nix-installer-multi-user.conf", "system"),
    ("nixos-23.05-generated.conf", "system"),
    ("nix-darwin-generated.conf", "system"),
    ("home-manager-generated.conf", "user"),
    ("determinate-installer-0.x.conf", "system"),
    ("determinate/nix.conf", "determinate"),
    ("robertkruk-macbook-no-final-newline.conf", "user"),
    ("levonk-global.conf", "system"),
    ("bryango-chezroot-system.conf", "system"),
    ("sylvorg-quoted-values.conf", "system"),
    ("goblin-minimal.conf", "system"),
    ("a-h-devcontainer.conf", "system"),
    ("a-h-dotfiles-commented.conf", "user"),
    ("tikhonjelvis-user.conf", "user"),
    ("chris-martin-user.conf", "user"),
    ("bryango-cheznous-user.conf", "user"),
    ("bryango-cheznous-user-crlf.conf", "user"),
    ("alerque-single-quoted.conf", "user"),
    ("doomhammer-user.conf", "user"),
    ("leandros-user.conf", "user"),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/nixconf")
}

#[test]
fn corpus_is_complete_and_sourced() {
    let dir = corpus_dir();
    let sources = std::fs::read_to_string(dir.join("SOURCES.md")).unwrap();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("determinate")).unwrap())
    {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "conf") {
            files.push(p.strip_prefix(&dir).unwrap().display().to_string());
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    for f in &files {
        let listed = CORPUS.iter().any(|(c, _)| c == f) || f == "determinate/nix.custom.conf";
        assert!(listed, "{f} is not in CORPUS");
        assert!(
            sources.contains(&format!("`{f}`")),
            "{f} has no source in SOURCES.md"
        );
    }
    let crlf = std::fs::read(dir.join("bryango-cheznous-user-crlf.conf")).unwrap();
    assert!(
        crlf.windows(2).any(|w| w == b"\r\n"),
        "the CRLF fixture lost its CRLF (check .gitattributes)"
    );
    let nonl = std::fs::read(dir.join("robertkruk-macbook-no-final-newline.conf")).unwrap();
    assert_ne!(nonl.last(), Some(&b'\n'));
}

fn corpus_case(file: &str, role: &str) {
    let url = "http://127.0.0.1:1/corpus-cache";
    let key = "corpus-cache-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let original = std::fs::read_to_string(corpus_dir().join(file)).unwrap();
    let env = NixEnv::new();
    let mut args = cache_args(url, key);
    let target = match role {
        "user" => {
            std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
            std::fs::write(env.user_conf(), &original).unwrap();
            env.user_conf()
        }
        "system" => {
            std::fs::write(env.system_conf(), &original).unwrap();
            args.push("--system");
            env.system_conf()
        }
        _ => {
            std::fs::write(env.system_conf(), &original).unwrap();
            let custom =
                std::fs::read_to_string(corpus_dir().join("determinate/nix.custom.conf")).unwrap();
            std::fs::write(env.nix_conf_dir.join("nix.custom.conf"), custom).unwrap();
            args.push("--system");
            env.nix_conf_dir.join("nix.custom.conf")
        }
    };
    let before = std::fs::read_to_string(&target).unwrap();

    // Nix 2.34 parses every substituter while loading the configuration, and refuses
    // quoted values that 2.8 and 2.26 accept: where the installed Nix cannot start with
    // this file, setup-cache still writes its lines but says so (exit 5), naming the
    // line that holds the value Nix rejects.
    let nix_starts = env.nix(&["--version"]).output().unwrap().status.success();
    if !nix_starts {
        let r = setup_cache(&env, &args);
        assert_eq!(r.code, 5, "{file}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.json["nix_check"]["ok"], false, "{file}");
        let problem = r.json["nix_check"]["problems"][0]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            problem.contains("Cannot parse Nix store")
                && problem.contains(&format!(
                    "the value Nix rejects is at {}:",
                    target.display()
                )),
            "{file}: {problem}"
        );
        let after = std::fs::read_to_string(&target).unwrap();
        assert_only_appended(&before, &after, &[url, key], file);
        return;
    }

    let r = setup_cache(&env, &args);
    assert_eq!(r.code, 0, "{file}: {}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["target"], target.display().to_string(), "{file}");
    assert_eq!(r.json["caches"][0]["status"], "added", "{file}");
    assert_eq!(
        r.json["nix_check"]["ok"], true,
        "{file}: {}",
        r.json["nix_check"]
    );
    let after = std::fs::read_to_string(&target).unwrap();
    assert_only_appended(&before, &after, &[url, key], file);
    if role == "determinate" {
        assert_eq!(
            std::fs::read_to_string(env.system_conf()).unwrap(),
            original,
            "{file}: nix.conf was touched"
        );
    }
    // Nix itself has the cache in effect.
    assert!(
        has_url(&env.nix_setting("substituters"), url),
        "{file}: Nix: {:?}",
        env.nix_setting("substituters")
    );
    assert!(
        env.nix_setting("trusted-public-keys")
            .contains(&key.to_owned()),
        "{file}"
    );

    // Idempotent.
    let r = setup_cache(&env, &args);
    assert_eq!(
        (r.code, &r.json["changed"]),
        (0, &Value::Bool(false)),
        "{file}: {}",
        r.stdout
    );
    assert_eq!(
        r.json["caches"][0]["status"], "already-configured",
        "{file}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        after,
        "{file}: second run changed the file"
    );

    // --remove restores the exact bytes.
    args.push("--remove");
    let r = setup_cache(&env, &args);
    assert_eq!(r.code, 0, "{file}: {}\n{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        before,
        "{file}: --remove did not restore the bytes"
    );
    assert!(!has_url(&env.nix_setting("substituters"), url), "{file}");
}

#[test]
fn corpus_user_files() {
    require_nix();
    for (file, role) in CORPUS.iter().filter(|(_, r)| *r == "user") {
        corpus_case(file, role);
    }
}

#[test]
fn corpus_system_files() {
    require_nix();
    for (file, role) in CORPUS.iter().filter(|(_, r)| *r != "user") {
        corpus_case(file, role);
    }
}

/// A real closure, signed, in a file:// cache served over HTTP; after setup-cache, a
/// fresh chroot store substitutes it using only the configuration the tool wrote.
#[test]
fn end_to_end_substitutes_with_written_config_and_refuses_wrong_key() {
    require_nix();
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("e2e"));
    let key = generate_key(&env, "e2e-cache-1");
    let cache_dir = env.path().join("cache");
    nix_copy_to_file_cache(&env, &cache_dir, &key, std::slice::from_ref(&top));
    let server = http::HttpCache::serve(&cache_dir);

    // Wrong key first: Nix must refuse the unsigned-for-it paths.
    let r = setup_cache(&env, &cache_args(&server.url, OTHER_KEY));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let chroot = env.path().join("chroot-wrong");
    let out = env
        .command("nix-store")
        .args(["--store", &chroot.display().to_string(), "--realise", &top])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "substitution must fail with a key that did not sign the paths"
    );
    let err = stderr(&out);
    assert!(server.count("GET") > 0, "Nix never asked the cache: {err}");
    let out = env
        .nix(&["path-info", "--store", &chroot.display().to_string(), &top])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "path must not be valid in the chroot store"
    );
    let r = setup_cache(
        &env,
        &[&cache_args(&server.url, OTHER_KEY)[..], &["--remove"]].concat(),
    );
    assert_eq!(r.code, 0);

    // Right key: substitutes the whole closure.
    let r = setup_cache(&env, &cache_args(&server.url, &key.public));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let conf = std::fs::read_to_string(env.user_conf()).unwrap();
    assert!(
        conf.contains(&format!("extra-substituters = {}", server.url)),
        "{conf}"
    );
    let chroot = env.path().join("chroot");
    let store = chroot.display().to_string();
    run_ok(
        env.command("nix-store")
            .args(["--store", &store, "--realise", &top]),
    );
    let out = run_ok(env.nix(&["path-info", "--store", &store, "-r", &top]));
    assert_eq!(stdout(&out).lines().count(), 4, "{}", stdout(&out));
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.path.ends_with(".narinfo") && r.status == 200)
    );
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn trust_untrusted_user_is_told_the_fix_and_nix_really_ignores_the_cache() {
    require_nix();
    let user = setup_daemon::test_user();
    let shared = setup_daemon::SharedDir::new(&user);
    let bin = shared.executable(Path::new(BIN));

    // A path that is in the HTTP cache but not in the store.
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("trust"));
    let key = generate_key(&env, "trust-cache-1");
    let cache_dir = env.path().join("cache");
    nix_copy_to_file_cache(&env, &cache_dir, &key, std::slice::from_ref(&top));
    run_ok(env.command("nix-store").args(["--delete", &top]));
    let server = http::HttpCache::serve(&cache_dir);

    let conf_dir = shared.path().join("etc-nix");
    std::fs::create_dir_all(&conf_dir).unwrap();
    let system_conf = "sandbox = false\nsubstituters =\ntrusted-users = root\n";
    std::fs::write(conf_dir.join("nix.conf"), system_conf).unwrap();
    let daemon = setup_daemon::Daemon::start(&conf_dir, &shared.path().join("daemon.sock"));

    let tool = |daemon: &setup_daemon::Daemon| {
        let mut c = setup_daemon::as_user(&user, &shared.home, &bin);
        daemon.client_env(&mut c);
        c.args(["--url", &server.url, "--public-key", &key.public, "--json"]);
        finish(c.output().unwrap(), true)
    };
    let r = tool(&daemon);
    assert_eq!(
        r.code, 4,
        "untrusted user must get exit 4:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(r.json["trust"]["status"], "untrusted", "{}", r.json);
    let fix = r.json["trust"]["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("extra-trusted-users = {}", user.name)),
        "{fix}"
    );
    assert!(
        fix.contains(&format!("extra-trusted-substituters = {}", server.url)),
        "{fix}"
    );
    assert!(fix.contains("restart"), "{fix}");
    let reason = r.json["trust"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("trusted-users") && reason.contains(&user.name),
        "{reason}"
    );
    let user_conf = shared.home.join(".config/nix/nix.conf");
    assert!(
        std::fs::read_to_string(&user_conf)
            .unwrap()
            .contains(&server.url)
    );

    // Nix really ignores it: the daemon drops the substituter and the path cannot be
    // realised.
    let realise = |daemon: &setup_daemon::Daemon| {
        let mut c = setup_daemon::as_user(&user, &shared.home, "nix-store");
        daemon.client_env(&mut c);
        c.args(["--realise", &top]).output().unwrap()
    };
    let out = realise(&daemon);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "an untrusted user's substituter must be ignored"
    );
    assert!(err.contains("ignoring untrusted substituter"), "{err}");
    assert!(
        !server
            .requests()
            .iter()
            .any(|r| r.path.ends_with(".narinfo")),
        "the daemon asked the untrusted cache: {:?}",
        server.requests()
    );

    // Fix (a) as the administrator would: trust the substituter and its key for all
    // users, restart the daemon. The tool now says "allowed" and the daemon substitutes.
    std::fs::write(
        conf_dir.join("nix.conf"),
        format!(
            "{system_conf}extra-trusted-substituters = {}\nextra-trusted-public-keys = {}\n",
            server.url, key.public
        ),
    )
    .unwrap();
    let daemon = daemon.restart();
    let r = tool(&daemon);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["trust"]["status"], "allowed", "{}", r.json["trust"]);
    let out = realise(&daemon);
    assert!(
        out.status.success(),
        "after fix (a) the daemon must substitute: {}",
        stderr(&out)
    );
    run_ok(env.command("nix-store").args(["--delete", &top]));

    // Fix (b) instead: trust the user. Now the user's own key is honoured too.
    std::fs::write(
        conf_dir.join("nix.conf"),
        format!("{system_conf}extra-trusted-users = {}\n", user.name),
    )
    .unwrap();
    let daemon = daemon.restart();
    let r = tool(&daemon);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["trust"]["status"], "trusted");
    assert_eq!(r.json["caches"][0]["status"], "already-configured");
    let out = realise(&daemon);
    assert!(
        out.status.success(),
        "after fix (b) the daemon must substitute: {}",
        stderr(&out)
    );
}

#[test]
fn read_only_directory_is_an_error_naming_the_file() {
    require_nix();
    let user = setup_daemon::test_user();
    let shared = setup_daemon::SharedDir::new(&user);
    let bin = shared.executable(Path::new(BIN));
    let ro = shared.path().join("readonly");
    std::fs::create_dir_all(&ro).unwrap();
    let target = ro.join("nix.conf");
    let mut c = setup_daemon::as_user(&user, &shared.home, &bin);
    c.env("NIX_CONF_DIR", shared.path().join("no-etc"))
        .env("NIX_REMOTE", "local")
        .args(["--url", "http://127.0.0.1:1/ro", "--public-key", OTHER_KEY])
        .arg("--file")
        .arg(&target);
    let r = finish(c.output().unwrap(), false);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&ro.display().to_string()), "{}", r.stderr);
    assert!(r.stderr.contains("ermission denied"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_dir(&ro).unwrap().count(),
        0,
        "something was written"
    );
}

#[test]
fn store_managed_targets_get_the_snippet_and_nothing_is_written() {
    require_nix();
    let env = NixEnv::new();
    // A real store file, as home-manager / NixOS link it.
    let src = env.path().join("nix.conf");
    std::fs::write(&src, "experimental-features = nix-command\n").unwrap();
    let stored = stdout(&run_ok(env.command("nix-store").arg("--add").arg(&src)))
        .trim()
        .to_owned();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&stored, env.user_conf()).unwrap();
    let url = "http://127.0.0.1:1/managed";
    let r = setup_cache(&env, &cache_args(url, OTHER_KEY));
    assert_eq!(r.code, 3, "{}", r.stdout);
    let advice = r.json["advice"].as_str().unwrap();
    assert!(
        advice.contains("home-manager") && advice.contains("nix.settings"),
        "{advice}"
    );
    assert!(
        advice.contains(&format!("extra-substituters = [ \"{url}\" ]")),
        "{advice}"
    );
    assert_eq!(
        std::fs::read_link(env.user_conf()).unwrap(),
        PathBuf::from(&stored)
    );

    // The system file on NixOS.
    std::fs::remove_file(env.system_conf()).unwrap();
    std::os::unix::fs::symlink(&stored, env.system_conf()).unwrap();
    let r = setup_cache(
        &env,
        &[&cache_args(url, OTHER_KEY)[..], &["--system"]].concat(),
    );
    assert_eq!(r.code, 3);
    let advice = r.json["advice"].as_str().unwrap();
    assert!(
        advice.contains("NixOS") && advice.contains(&format!("substituters = [ \"{url}\" ]")),
        "{advice}"
    );

    // A plain symlink (dotfiles): pointed to the real file.
    let env = NixEnv::new();
    let real = env.path().join("dotfiles-nix.conf");
    std::fs::write(&real, "a = b\n").unwrap();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, env.user_conf()).unwrap();
    let r = setup_cache(&env, &cache_args(url, OTHER_KEY));
    assert_eq!(r.code, 3);
    assert!(
        r.json["advice"]
            .as_str()
            .unwrap()
            .contains(&format!("--file {}", real.display()))
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "a = b\n");
}

/// With --json, even a bad command line answers in JSON (exit code 2, as documented).
#[test]
fn unknown_flag_with_json_is_a_json_usage_error() {
    let env = NixEnv::new();
    let out = env
        .command(BIN)
        .args(["--json", "--no-such-flag"])
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!((r.code, &r.json["exit_code"]), (2, &Value::from(2)));
    assert!(
        r.json["error"].as_str().unwrap().contains("--no-such-flag"),
        "{}",
        r.json
    );
    // Without --json: clap's message on stderr, nothing on stdout.
    let out = env.command(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty() && stderr(&out).contains("--no-such-flag"));
}

#[test]
fn malformed_key_or_url_writes_nothing() {
    let env = NixEnv::new();
    let r = setup_cache(
        &env,
        &cache_args("http://127.0.0.1:1/x", "short-1:AAAAAAAAAAAAAAAAAAAAAA=="),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--public-key") && r.stderr.contains("16 bytes"),
        "{}",
        r.stderr
    );
    assert!(r.json["error"].as_str().unwrap().contains("32"));
    let r = setup_cache(&env, &cache_args("ftp://127.0.0.1/x", OTHER_KEY));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--url") && r.stderr.contains("ftp"),
        "{}",
        r.stderr
    );
    let r = setup_cache(&env, &cache_args("http://127.0.0.1:1/x", "no-colon"));
    assert_eq!(r.code, 2);
    assert!(!env.user_conf().exists() && !env.user_conf().parent().unwrap().exists());
    // Usage errors from clap keep the conventional 2.
    let out = env.command(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn concurrent_runs_lose_nothing() {
    require_nix();
    let env = NixEnv::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.command(BIN)
                .args(["--url", &format!("http://127.0.0.1:1/parallel-{i}")])
                .args([
                    "--public-key",
                    &format!("parallel-{i}-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(env.user_conf()).unwrap();
    let conf = NixConf::parse(&text);
    assert_eq!(conf.invalid_lines().count(), 0, "{text}");
    let subs = env.nix_setting("substituters");
    let keys = env.nix_setting("trusted-public-keys");
    for i in 0..8 {
        assert!(
            has_url(&subs, &format!("http://127.0.0.1:1/parallel-{i}")),
            "{i}: {text}"
        );
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("parallel-{i}-1:"))),
            "{i}: {text}"
        );
    }
}

#[test]
fn concurrent_saves_lose_nothing() {
    require_nix();
    let env = NixEnv::new();
    let toml = env.path().join("project/cache.toml");
    std::fs::create_dir_all(toml.parent().unwrap()).unwrap();
    std::fs::write(&toml, "# team caches\n").unwrap();
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.command(BIN)
                .args(["--url", &format!("http://127.0.0.1:1/saved-{i}")])
                .args([
                    "--public-key",
                    &format!("saved-{i}-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="),
                ])
                .arg("--save")
                .arg("--config")
                .arg(&toml)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.starts_with("# team caches\n"), "{text}");
    for i in 0..8 {
        assert!(
            text.contains(&format!("url = \"http://127.0.0.1:1/saved-{i}\"")),
            "{i}: {text}"
        );
    }
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), "max-jobs = 2").unwrap();
    let out = env
        .command(BIN)
        .args(cache_args("http://127.0.0.1:1/dry", OTHER_KEY))
        .arg("--dry-run")
        .output()
        .unwrap();
    let r = finish(out, false);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("+extra-substituters = http://127.0.0.1:1/dry"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("-max-jobs = 2") && r.stdout.contains("\\ No newline at end of file"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(env.user_conf()).unwrap(),
        "max-jobs = 2"
    );
    let names: Vec<_> = std::fs::read_dir(env.user_conf().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "dry run left files behind: {names:?}");
}

#[test]
fn nix_config_override_is_reported_with_its_own_exit_code() {
    require_nix();
    let env = NixEnv::new();
    let url = "http://127.0.0.1:1/overridden";
    let out = env
        .command(BIN)
        .env("NIX_CONFIG", "substituters = http://127.0.0.1:1/only-this")
        .args(cache_args(url, OTHER_KEY))
        .arg("--json")
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 5, "{}", r.stdout);
    assert_eq!(r.json["caches"][0]["overridden_by"], "NIX_CONFIG:1");
    assert_eq!(
        r.json["nix_check"]["ok"], false,
        "Nix itself must disagree: {}",
        r.json
    );
    assert!(
        r.json["nix_check"]["problems"][0]
            .as_str()
            .unwrap()
            .contains(url)
    );
}

/// A configuration Nix refuses (an `include` of a missing file) is not silently skipped:
/// the file is edited (the problem is not ours to fix), but the check with Nix fails
/// with Nix's own message and exit code 5, and the warning says what to do.
#[test]
fn a_configuration_nix_refuses_is_reported_not_skipped() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), "include missing.conf\n").unwrap();
    let r = setup_cache(&env, &cache_args("http://127.0.0.1:1/c", OTHER_KEY));
    assert_eq!(r.code, 5, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["nix_check"]["ok"], false, "{}", r.json);
    let problem = r.json["nix_check"]["problems"][0].as_str().unwrap();
    assert!(problem.contains("missing.conf"), "{problem}");
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("missing.conf") && warnings.contains("!include"),
        "{warnings}"
    );
}

/// A user who already points `netrc-file` at their own netrc (in the file being edited)
/// gets the new entry there, next to their other credentials, not a second netrc that
/// would hide them.
#[test]
fn private_cache_uses_the_netrc_file_the_user_already_set() {
    require_nix();
    let env = NixEnv::new();
    let own = env.path().join("my-netrc");
    std::fs::write(&own, "machine other.example password keep-me\n").unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    let conf = format!("netrc-file = {}\n", own.display());
    std::fs::write(env.user_conf(), &conf).unwrap();
    let url = "http://127.0.0.1:1/own-netrc";
    let out = env
        .command(BIN)
        .env("NCT_OWN_TOKEN", "tok-123")
        .args(cache_args(url, OTHER_KEY))
        .args(["--token-env", "NCT_OWN_TOKEN", "--json"])
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["netrc"]["path"], own.display().to_string());
    assert_eq!(
        std::fs::read_to_string(&own).unwrap(),
        // Its entry first, marked as setup-cache's, every byte of theirs after it.
        "# added by setup-cache\nmachine 127.0.0.1 password tok-123\nmachine other.example password keep-me\n"
    );
    assert!(!env.user_conf().with_file_name("netrc").exists());
    let text = std::fs::read_to_string(env.user_conf()).unwrap();
    assert_eq!(text.matches("netrc-file").count(), 1, "{text}");
    assert_eq!(
        env.nix_config()["netrc-file"]["value"],
        own.display().to_string()
    );
    // --remove takes only our entry out and keeps the user's file and line.
    let out = env
        .command(BIN)
        .args(cache_args(url, OTHER_KEY))
        .arg("--remove")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&own).unwrap(),
        "machine other.example password keep-me\n"
    );
    assert_eq!(std::fs::read_to_string(env.user_conf()).unwrap(), conf);
}

#[test]
fn private_cache_gets_a_netrc_and_the_token_is_never_shown() {
    require_nix();
    let env = NixEnv::new();
    let token = "tok-3f9a1c-very-secret";
    let url = "http://127.0.0.1:1/private";
    let out = env
        .command(BIN)
        .env("NCT_TEST_TOKEN", token)
        .args(cache_args(url, OTHER_KEY))
        .args(["--token-env", "NCT_TEST_TOKEN", "--json"])
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        !r.stdout.contains(token) && !r.stderr.contains(token),
        "token leaked"
    );
    let netrc = env.user_conf().with_file_name("netrc");
    assert_eq!(
        std::fs::metadata(&netrc).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&netrc).unwrap(),
        format!(
            "{}\n# added by setup-cache\nmachine 127.0.0.1 password {token}\n",
            nix_cache_tools::setup::netrc::CREATED
        )
    );
    let cfg = env.nix_config();
    assert_eq!(cfg["netrc-file"]["value"], netrc.display().to_string());
    // Dry run of the same: the diff never shows the token either.
    let out = env
        .command(BIN)
        .env("NCT_TEST_TOKEN", "another-secret-value")
        .args(cache_args("http://127.0.0.2:1/private2", OTHER_KEY))
        .args(["--token-env", "NCT_TEST_TOKEN", "--dry-run"])
        .output()
        .unwrap();
    let r = finish(out, false);
    assert!(
        r.stdout.contains("password <redacted>") && !r.stdout.contains("another-secret-value"),
        "{}",
        r.stdout
    );
    // And it says what it would do, not what it did.
    assert!(
        r.stdout.contains("would be written (mode 0600)") && !r.stdout.contains("} written ("),
        "{}",
        r.stdout
    );
    // Missing variable: usage error, nothing written.
    let out = env
        .command(BIN)
        .env_remove("NCT_TEST_TOKEN")
        .args(cache_args("http://127.0.0.3:1/p", OTHER_KEY))
        .args(["--token-env", "NCT_TEST_TOKEN"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("NCT_TEST_TOKEN"));
    // Remove: netrc entry and file gone, and the nix.conf the tool created gone too
    // (it did not exist before), with no lock file left behind.
    let out = env
        .command(BIN)
        .args(cache_args(url, OTHER_KEY))
        .arg("--remove")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!netrc.exists());
    assert!(!env.user_conf().exists());
    assert!(!env.user_conf().with_file_name("nix.conf.lock").exists());
}

#[test]
fn cache_toml_config_save_and_the_readme_command() {
    require_nix();
    let env = NixEnv::new();
    let project = env.path().join("project");
    std::fs::create_dir_all(project.join("sub")).unwrap();
    // README: `setup-cache --dry-run` without a cache.toml: a clear usage error.
    let out = env
        .command(BIN)
        .arg("--dry-run")
        .current_dir(project.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no cache.toml") && stderr(&out).contains("--url"),
        "{}",
        stderr(&out)
    );

    // --save records a cache given by flags in ./cache.toml, keeping comments.
    std::fs::write(project.join("cache.toml"), "# team caches\n").unwrap();
    let out = env
        .command(BIN)
        .args(cache_args("http://127.0.0.1:1/saved", OTHER_KEY))
        .args(["--save", "--dry-run"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(project.join("cache.toml")).unwrap(),
        "# team caches\n"
    );
    let out = env
        .command(BIN)
        .args(cache_args("http://127.0.0.1:1/saved", OTHER_KEY))
        .arg("--save")
        .current_dir(&project)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let toml = std::fs::read_to_string(project.join("cache.toml")).unwrap();
    assert!(
        toml.starts_with("# team caches\n") && toml.contains("url = \"http://127.0.0.1:1/saved\""),
        "{toml}"
    );

    // From a subdirectory, the parent's cache.toml is found: already configured.
    let out = env
        .command(BIN)
        .arg("--json")
        .current_dir(project.join("sub"))
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json["caches"][0]["status"], "already-configured");

    // CACHE_TOOLS_CONFIG (what the flake's app wrappers set) works like --config.
    let elsewhere = env.path().join("elsewhere.toml");
    std::fs::write(
        &elsewhere,
        format!("[[cache]]\nurl = \"http://127.0.0.1:1/from-env\"\npublic-key = \"{OTHER_KEY}\"\n"),
    )
    .unwrap();
    let out = env
        .command(BIN)
        .env("CACHE_TOOLS_CONFIG", &elsewhere)
        .args(["--dry-run", "--json"])
        .current_dir(env.path())
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(
        r.json["caches"][0]["url"], "http://127.0.0.1:1/from-env",
        "{}",
        r.stdout
    );

    // --help documents every exit code.
    let help = stdout(&run_ok(env.command(BIN).arg("--help")));
    for code in 0..=5 {
        assert!(help.contains(&format!("\n  {code}  ")), "{help}");
    }
}

#[test]
fn readme_documents_every_flag_and_exit_code() {
    let section = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/setup-cache.md"),
    )
    .unwrap();
    let help = String::from_utf8(Command::new(BIN).arg("--help").output().unwrap().stdout).unwrap();
    for word in help.split_whitespace().filter(|w| w.starts_with("--")) {
        let flag: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if flag.len() > 2 {
            assert!(
                section.contains(&flag),
                "docs/setup-cache.md does not mention {flag}"
            );
        }
    }
    for code in 0..=5 {
        assert!(
            section.contains(&format!("| {code} |")),
            "the reference does not list exit code {code}"
        );
    }
}

/// docs/setup-cache.md's `--json` example has exactly the keys the tool prints (top level, each
/// cache, trust, nix_check), so the documented shape cannot drift from the real one.
#[test]
fn readme_json_example_has_the_real_shape() {
    require_nix();
    let section = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/setup-cache.md"),
    )
    .unwrap();
    let block = section.split("```json\n").nth(1).expect("a ```json block");
    let example: Value = serde_json::from_str(&block[..block.find("```").unwrap()])
        .expect("the --json example of docs/setup-cache.md is JSON");
    let env = NixEnv::new();
    let real = setup_cache(&env, &cache_args("http://127.0.0.1:1/shape", OTHER_KEY)).json;
    fn keys(v: &Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
    assert_eq!(keys(&example), keys(&real), "top level");
    for part in ["trust", "nix_check"] {
        assert_eq!(keys(&example[part]), keys(&real[part]), "{part}");
    }
    assert_eq!(
        keys(&example["caches"][0]),
        keys(&real["caches"][0]),
        "caches[]"
    );
}

/// The test harness itself: a real closure, copied by plain `nix copy` into a signed
/// file:// cache served over HTTP, substitutes into a fresh chroot store.
#[test]
fn harness_substitutes_from_loopback_http_cache() {
    require_nix();
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("harness"));
    let paths = closure(&env, std::slice::from_ref(&top));
    assert_eq!(paths.len(), 4, "{paths:?}");
    let key = generate_key(&env, "harness-1");
    let cache_dir = env.path().join("cache");
    nix_copy_to_file_cache(&env, &cache_dir, &key, std::slice::from_ref(&top));
    let server = http::HttpCache::serve(&cache_dir);
    let chroot = env.path().join("chroot");
    let store = chroot.display().to_string();
    run_ok(env.nix(&[
        "copy",
        "--from",
        &server.url,
        "--to",
        &store,
        "--option",
        "trusted-public-keys",
        &key.public,
        &top,
    ]));
    let out = run_ok(env.nix(&["path-info", "--store", &store, "-r", &top]));
    assert_eq!(stdout(&out).lines().count(), 4);
    assert!(server.count("GET") >= 8, "{:?}", server.requests());
}

/// Nix's own view (`nix show-config`) of a list setting, with extra environment.
fn nix_list(env: &NixEnv, vars: &[(&str, &str)], name: &str) -> Vec<String> {
    let mut c = env.nix(&["show-config", "--json"]);
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = run_ok(c);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    nix_cache_tools::nixcli::setting_strings(&v[name]["value"])
}

/// The library's reading of the layers agrees with Nix itself: system file with
/// includes, XDG_CONFIG_DIRS, the user file, NIX_USER_CONF_FILES order, NIX_CONFIG,
/// aliases, plain resets and defaults.
#[test]
fn layer_model_agrees_with_nix() {
    use nix_cache_tools::nixconf::{self, Env};
    require_nix();
    let env = NixEnv::with_system_conf(
        "sandbox = false\nsubstituters = http://s1\n!include sys-extra.conf\n!include missing-is-fine.conf\nextra-substituters = http://s3\n",
    );
    std::fs::write(
        env.nix_conf_dir.join("sys-extra.conf"),
        "extra-substituters = http://s2\n",
    )
    .unwrap();
    let xdg = env.path().join("xdg-dirs");
    std::fs::create_dir_all(xdg.join("nix")).unwrap();
    std::fs::write(
        xdg.join("nix/nix.conf"),
        "extra-binary-caches = http://x1\ntrusted-users = @wheel\n",
    )
    .unwrap();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(
        env.user_conf(),
        "extra-substituters = http://u1 http://s1\nextra-binary-cache-public-keys = u1-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\nextra-trusted-users = alice\n",
    )
    .unwrap();
    let model = |e: &Env, name: &str| -> Vec<String> {
        nixconf::load(e)
            .effective(name)
            .into_iter()
            .map(|s| s.value.trim_end_matches('/').to_owned())
            .collect()
    };
    let nix_norm = |vars: &[(&str, &str)], name: &str| -> Vec<String> {
        nix_list(&env, vars, name)
            .into_iter()
            .map(|s| s.trim_end_matches('/').to_owned())
            .collect()
    };
    let xdg_s = xdg.display().to_string();
    let mut e = Env {
        nix_conf_dir: Some(env.nix_conf_dir.clone()),
        xdg_config_home: Some(env.xdg_config_home.clone()),
        xdg_config_dirs: Some(xdg.clone().into_os_string()),
        home: Some(env.home.clone()),
        ..Env::default()
    };
    for name in ["substituters", "trusted-public-keys", "trusted-users"] {
        let nix = nix_norm(&[("XDG_CONFIG_DIRS", &xdg_s)], name);
        assert_eq!(model(&e, name), nix, "{name}");
    }
    assert_eq!(
        model(&e, "substituters"),
        [
            "http://s1",
            "http://s2",
            "http://s3",
            "http://x1",
            "http://u1",
            "http://s1"
        ]
    );

    // Set but empty is not unset for Nix: no XDG_CONFIG_DIRS at all.
    let no_dirs = Env {
        xdg_config_dirs: Some(Default::default()),
        ..e.clone()
    };
    assert_eq!(
        model(&no_dirs, "substituters"),
        nix_norm(&[("XDG_CONFIG_DIRS", "")], "substituters")
    );
    assert!(!model(&no_dirs, "substituters").contains(&"http://x1".to_owned()));

    // NIX_CONFIG comes last; a plain set there resets.
    e.nix_config = Some("extra-substituters = http://e1".into());
    let vars = [
        ("XDG_CONFIG_DIRS", xdg_s.as_str()),
        ("NIX_CONFIG", "extra-substituters = http://e1"),
    ];
    assert_eq!(model(&e, "substituters"), nix_norm(&vars, "substituters"));
    e.nix_config = Some("substituters = http://e2\nextra-substituters = http://e3".into());
    let vars = [
        ("XDG_CONFIG_DIRS", xdg_s.as_str()),
        (
            "NIX_CONFIG",
            "substituters = http://e2\nextra-substituters = http://e3",
        ),
    ];
    assert_eq!(model(&e, "substituters"), nix_norm(&vars, "substituters"));

    // NIX_USER_CONF_FILES replaces the XDG files, the first entry applied last.
    let (f1, f2) = (env.path().join("f1.conf"), env.path().join("f2.conf"));
    std::fs::write(&f1, "extra-substituters = http://f1\n").unwrap();
    std::fs::write(&f2, "substituters = http://f2\n").unwrap();
    let files = format!("{}:{}", f1.display(), f2.display());
    let e = Env {
        nix_user_conf_files: Some(files.clone().into()),
        nix_config: None,
        ..e
    };
    let vars = [("NIX_USER_CONF_FILES", files.as_str())];
    assert_eq!(model(&e, "substituters"), nix_norm(&vars, "substituters"));
    assert_eq!(model(&e, "substituters"), ["http://f2", "http://f1"]);
}

#[test]
fn nix_user_conf_files_first_entry_is_the_target_and_wins() {
    require_nix();
    let env = NixEnv::new();
    let (f1, f2) = (env.path().join("f1.conf"), env.path().join("f2.conf"));
    std::fs::write(&f2, "substituters = http://127.0.0.1:1/reset\n").unwrap();
    let files = format!("{}:{}", f1.display(), f2.display());
    let url = "http://127.0.0.1:1/first";
    let out = env
        .command(BIN)
        .env("NIX_USER_CONF_FILES", &files)
        .args(cache_args(url, OTHER_KEY))
        .arg("--json")
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.json["target"], f1.display().to_string());
    assert_eq!(r.json["nix_check"]["ok"], true);
    // Writing into the lower-priority file instead: overridden, and Nix agrees.
    let other = "http://127.0.0.1:1/second";
    let out = env
        .command(BIN)
        .env("NIX_USER_CONF_FILES", &files)
        .args(cache_args(other, OTHER_KEY))
        .args(["--json", "--file"])
        .arg(&f2)
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(
        r.code, 0,
        "f2's own reset comes before the appended line: {}",
        r.stdout
    );
    std::fs::write(&f1, "substituters = http://127.0.0.1:1/f1-reset\n").unwrap();
    let third = "http://127.0.0.1:1/third";
    let out = env
        .command(BIN)
        .env("NIX_USER_CONF_FILES", &files)
        .args(cache_args(third, OTHER_KEY))
        .args(["--json", "--file"])
        .arg(&f2)
        .output()
        .unwrap();
    let r = finish(out, true);
    assert_eq!(r.code, 5, "{}", r.stdout);
    assert_eq!(
        r.json["caches"][0]["overridden_by"],
        format!("{}:1", f1.display())
    );
    assert_eq!(r.json["nix_check"]["ok"], false);
}

#[test]
fn permissions_are_kept_and_the_previous_version_is_backed_up() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), "max-jobs = 4\n").unwrap();
    std::fs::set_permissions(env.user_conf(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let r = setup_cache(&env, &cache_args("http://127.0.0.1:1/perm", OTHER_KEY));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::metadata(env.user_conf())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
    let backup = PathBuf::from(r.json["backup"].as_str().unwrap());
    assert_eq!(
        backup,
        env.user_conf().with_file_name("nix.conf.setup-cache.bak")
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "max-jobs = 4\n");
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o640
    );
}

/// setup-cache never installs anything: `nix-env` (and package managers) placed first on
/// PATH as recording stand-ins are never called, through add, re-add and remove.
#[test]
fn never_runs_nix_env_or_installers() {
    require_nix();
    let env = NixEnv::new();
    let shims = env.path().join("shims");
    std::fs::create_dir_all(&shims).unwrap();
    let log = env.path().join("called.log");
    for name in ["nix-env", "apt-get", "brew", "cachix", "curl"] {
        let p = shims.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho {name} \"$@\" >> {}\nexit 1\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for extra in [&[][..], &[][..], &["--remove"][..]] {
        let out = env
            .command(BIN)
            .env("PATH", &path)
            .args(["--cachix", "nct-test", "--public-key", OTHER_KEY])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(
        !log.exists(),
        "called: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// The model calls a line invalid exactly when Nix itself refuses the file.
#[test]
fn invalid_line_classification_matches_nix() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.nix_conf_dir.join("exists.conf"), "").unwrap();
    let lines = [
        "a=b",
        "max-jobs =4",
        "max-jobs= 4",
        "max-jobs 4",
        "lonely",
        "include",
        "include = exists.conf",
        "!include a b",
        "max-jobs = 4",
        "max-jobs\t=\t4",
        "max-jobs = 4\r",
        "substituters =",
        "  # only a comment = x",
        "substituters = http://x/#frag",
        "!include does-not-exist.conf",
        "extra-substituters = http://a http://b   # c",
    ];
    for line in lines {
        std::fs::write(env.user_conf(), format!("{line}\n")).unwrap();
        let model_ok = NixConf::parse(line).invalid_lines().count() == 0;
        let out = env.nix(&["show-config", "--json"]).output().unwrap();
        assert_eq!(
            out.status.success(),
            model_ok,
            "{line:?}: Nix {} it, the model says {}: {}",
            if out.status.success() {
                "accepts"
            } else {
                "rejects"
            },
            if model_ok { "valid" } else { "invalid" },
            stderr(&out)
        );
    }
}

#[test]
fn empty_xdg_config_home_is_explained_not_guessed() {
    let env = NixEnv::new();
    let out = env
        .command(BIN)
        .env("XDG_CONFIG_HOME", "")
        .args(cache_args("http://127.0.0.1:1/x", OTHER_KEY))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nix/nix.conf"), "{}", stderr(&out));
    assert!(!env.user_conf().exists());
}

/// NIX_CONFIG_HOME exists only from Nix 2.25: with Nix 2.8 it must not move the target.
#[test]
fn nix_config_home_is_ignored_where_nix_ignores_it() {
    require_nix();
    let env = NixEnv::new();
    let elsewhere = env.path().join("nix-config-home");
    let out = env
        .command(BIN)
        .env("NIX_CONFIG_HOME", &elsewhere)
        .args(cache_args("http://127.0.0.1:1/nch", OTHER_KEY))
        .arg("--json")
        .output()
        .unwrap();
    let r = finish(out, true);
    let version = stdout(&run_ok(env.command("nix").arg("--version")));
    let v = nix_cache_tools::nixcli::NixVersion::parse(&version).unwrap();
    let expected = if v.at_least(2, 25) {
        elsewhere.join("nix.conf")
    } else {
        env.user_conf()
    };
    assert_eq!(
        r.json["target"],
        expected.display().to_string(),
        "{}",
        r.stdout
    );
    assert_eq!(r.json["nix_check"]["ok"], true, "{}", r.stdout);
}

/// setup-cache tells whether the installed Nix can read an `s3://` cache at all, judged
/// the way Nix itself behaves here: Nix is asked to open a bucket on a server that
/// checks signatures, with the right credentials. A Nix without an S3 store (Debian's
/// 2.8, 2.26) makes the added cache "not in effect" (exit 5, the HTTPS endpoint as the
/// fix); one whose requests the server refuses unsigned (Debian's 2.34) gets a warning
/// that only anonymous-read buckets work; one that signs, neither.
#[test]
fn setup_cache_says_whether_this_nix_can_read_an_s3_cache() {
    require_nix();
    let env = NixEnv::new();
    let (_server, uri) = support::s3::signed_cache_bucket(&env.path().join("s3"));
    let (reads, said) = support::s3::nix_reads_s3(&env, &uri);
    let key = "team-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    let out = env
        .command(BIN)
        .args(["--url", &uri, "--public-key", key, "--json"])
        .output()
        .unwrap();
    let run = finish(out, true);
    let (report, code) = (run.json, Some(run.code));
    let text = report.to_string();
    if reads == support::s3::NixReadsS3::Never {
        assert_eq!(code, Some(5), "{said}\n{report:#}");
        let problems = report["nix_check"]["problems"].to_string();
        assert!(
            problems.contains("built without S3 support") && problems.contains("HTTPS endpoint"),
            "{problems}"
        );
    } else if reads == support::s3::NixReadsS3::Unsigned {
        assert_eq!(code, Some(0), "{said}\n{report:#}");
        assert!(
            report["warnings"]
                .to_string()
                .contains("does not sign its requests"),
            "{said}\n{report:#}"
        );
    } else {
        assert_eq!(code, Some(0), "{said}\n{report:#}");
        assert!(
            !text.contains("S3 support") && !text.contains("does not sign"),
            "{report:#}"
        );
    }
    // The line is written either way: Nix accepts it (and a Nix with S3 support uses it).
    let conf = std::fs::read_to_string(env.user_conf()).unwrap();
    assert!(
        conf.contains(&format!("extra-substituters = {uri}")),
        "{conf}"
    );
}
