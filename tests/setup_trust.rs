//! setup-cache's trust verdicts checked against what a real nix-daemon (Debian's nix-bin
//! 2.8 in CI) does for an unprivileged user: the tool's exit code must match whether the
//! daemon then really substitutes from the cache. Every child runs with a time limit.
#![allow(clippy::unwrap_used)]
#[path = "support/setup_daemon.rs"]
mod setup_daemon;
mod support;

use serde_json::Value;
use setup_daemon::{Daemon, SharedDir, User, output_within};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_setup-cache");
/// Longest any single child (tool, `nix-store --realise`) may take.
const LIMIT: Duration = Duration::from_secs(120);
/// A well-formed public key nobody signs with.
const OTHER_KEY: &str = "other.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

fn finish(out: Output) -> Run {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("--json output is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    Run {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr,
    }
}

fn warnings(r: &Run) -> Vec<String> {
    r.json["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings list: {}", r.json))
        .iter()
        .map(|w| w.as_str().unwrap().to_owned())
        .collect()
}

/// A signed closure in a file:// cache directory whose top path is NOT in the store, an
/// unprivileged user, and a system configuration directory for a test daemon.
struct World {
    env: NixEnv,
    user: User,
    shared: SharedDir,
    bin: PathBuf,
    conf_dir: PathBuf,
    top: String,
    key: KeyPair,
    cache_dir: PathBuf,
}

fn world(tag: &str) -> World {
    require_nix();
    let user = setup_daemon::test_user();
    let shared = SharedDir::new(&user);
    let bin = shared.executable(Path::new(BIN));
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique(tag));
    let key = generate_key(&env, &format!("{tag}-cache-1"));
    let cache_dir = env.path().join("cache");
    nix_copy_to_file_cache(&env, &cache_dir, &key, std::slice::from_ref(&top));
    run_ok(env.command("nix-store").args(["--delete", &top]));
    let conf_dir = shared.path().join("etc-nix");
    std::fs::create_dir_all(&conf_dir).unwrap();
    World {
        env,
        user,
        shared,
        bin,
        conf_dir,
        top,
        key,
        cache_dir,
    }
}

impl World {
    fn write_system(&self, text: &str) {
        std::fs::write(self.conf_dir.join("nix.conf"), text).unwrap();
    }

    fn daemon(&self) -> Daemon {
        Daemon::start(&self.conf_dir, &self.shared.path().join("daemon.sock"))
    }

    /// setup-cache as the unprivileged user, through `daemon`, with `--json`.
    fn tool(&self, daemon: &Daemon, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut c = setup_daemon::as_user(&self.user, &self.shared.home, &self.bin);
        daemon.client_env(&mut c);
        c.args(args).arg("--json");
        for (k, v) in vars {
            c.env(k, v);
        }
        finish(output_within(c, LIMIT))
    }

    /// `nix-store --realise TOP` as the user, through `daemon`.
    fn realise(&self, daemon: &Daemon) -> Output {
        let mut c = setup_daemon::as_user(&self.user, &self.shared.home, "nix-store");
        daemon.client_env(&mut c);
        c.args(["--realise", &self.top]);
        output_within(c, LIMIT)
    }

    /// `program` as root (a home of its own in the test's directory), through `daemon`.
    fn as_root(&self, daemon: &Daemon, program: &str) -> Command {
        let root_home = self.env.path().join("root-home");
        std::fs::create_dir_all(&root_home).unwrap();
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &root_home)
            .env("XDG_CONFIG_HOME", root_home.join(".config"))
            .env("XDG_CONFIG_DIRS", root_home.join("no-xdg-dirs"))
            .current_dir(&root_home);
        daemon.client_env(&mut c);
        c
    }

    fn user_conf(&self) -> PathBuf {
        self.shared.home.join(".config/nix/nix.conf")
    }

    /// After a substitution: the path out of the store again, and the user's nix.conf
    /// gone, for the next case to start from nothing.
    fn forget(&self) {
        run_ok(self.env.command("nix-store").args(["--delete", &self.top]));
        let _ = std::fs::remove_file(self.user_conf());
    }
}

const BASE: &str = "sandbox = false\nsubstituters =\ntrusted-users = root\n";

/// Nix's daemon keeps an untrusted user's substituter only when it is in its
/// `substituters` / `trusted-substituters` exactly, or is so after adding a `/`; it never
/// drops one. setup-cache must give the same answer as the daemon in both directions.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn trailing_slash_is_matched_exactly_as_the_daemon_matches() {
    let w = world("slash");
    let server = http::HttpCache::serve(&w.cache_dir);
    w.write_system(&format!(
        "{BASE}trusted-substituters = {}\ntrusted-public-keys = {}\n",
        server.url, w.key.public
    ));
    let daemon = w.daemon();

    // The admin allowed `http://HOST:PORT`; the user adds `http://HOST:PORT/`.
    let slash = format!("{}/", server.url);
    let r = w.tool(
        &daemon,
        &["--url", &slash, "--public-key", &w.key.public],
        &[],
    );
    assert_eq!(
        r.code, 4,
        "the daemon ignores `{slash}` when only `{}` is allowed, so the tool must say exit 4:\n{}\n{}",
        server.url, r.stdout, r.stderr
    );
    assert_eq!(
        r.json["trust"]["status"], "untrusted",
        "{}",
        r.json["trust"]
    );
    assert_eq!(r.json["trust"]["ignored"], serde_json::json!([slash]));
    let reason = r.json["trust"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("`{}`", server.url)) && reason.contains("exactly"),
        "the reason must name the URL the system allows and say it must match exactly: {reason}"
    );
    let fix = r.json["trust"]["fix"].as_str().unwrap();
    assert!(
        fix.contains(&format!("--url {} --public-key", server.url)),
        "the fix must offer the allowed URL: {fix}"
    );
    // And the daemon really ignores it.
    let out = w.realise(&daemon);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "the daemon must not substitute from `{slash}`"
    );
    assert!(
        err.contains(&format!("ignoring untrusted substituter '{slash}'")),
        "{err}"
    );
    assert!(
        !server
            .requests()
            .iter()
            .any(|q| q.path.ends_with(".narinfo")),
        "the daemon asked the ignored cache: {:?}",
        server.requests()
    );

    // The fix with no administrator, exactly as printed, run by the user: the daemon then
    // substitutes.
    let cmd = fix
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("setup-cache --remove"))
        .unwrap_or_else(|| panic!("no user command in the fix:\n{fix}"));
    let mut c = setup_daemon::as_user(&w.user, &w.shared.home, "sh");
    daemon.client_env(&mut c);
    c.arg("-c")
        .arg(cmd.replace("setup-cache ", "\"$NCT_BIN\" "))
        .env("NCT_BIN", &w.bin);
    let out = output_within(c, LIMIT);
    assert!(
        out.status.success(),
        "{cmd}:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let out = w.realise(&daemon);
    assert!(
        out.status.success(),
        "after `{cmd}` the daemon must substitute: {}",
        stderr(&out)
    );
    run_ok(w.env.command("nix-store").args(["--delete", &w.top]));

    // The reverse works: the admin allowed `http://HOST:PORT/`, the user adds it without
    // the slash; the daemon adds the `/` and substitutes, and the tool says so (exit 0).
    std::fs::remove_file(w.user_conf()).unwrap();
    w.write_system(&format!(
        "{BASE}trusted-substituters = {slash}\ntrusted-public-keys = {}\n",
        w.key.public
    ));
    let daemon = daemon.restart();
    let r = w.tool(
        &daemon,
        &["--url", &server.url, "--public-key", &w.key.public],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["trust"]["status"], "allowed", "{}", r.json["trust"]);
    let out = w.realise(&daemon);
    assert!(
        out.status.success(),
        "the daemon substitutes `{}` when `{slash}` is allowed: {}",
        server.url,
        stderr(&out)
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|q| q.path.ends_with(".narinfo") && q.status == 200)
    );

    // s3:// through the daemon: the verdict says whose credentials count.
    let r = w.tool(
        &daemon,
        &[
            "--url",
            "s3://nct-test-bucket?region=eu-west-1",
            "--public-key",
            OTHER_KEY,
            "--dry-run",
        ],
        &[],
    );
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let reason = r.json["trust"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("s3://")
            && reason.contains("the nix-daemon's")
            && reason.contains("not yours"),
        "{reason}"
    );
}

/// `netrc-file` is a setting the daemon takes only from trusted users: an untrusted user's
/// token never reaches it, so a private cache needs the token in the daemon's own netrc.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn private_cache_for_an_untrusted_user_needs_the_daemons_netrc() {
    let w = world("private");
    let token = "nct-trust-token-5c1d0e";
    let var = "NCT_TRUST_TOKEN";
    let server = setup_daemon::AuthCache::serve(&w.cache_dir, token);
    // The admin allowed the cache and its key for every user; only the token is missing.
    w.write_system(&format!(
        "{BASE}trusted-substituters = {}\ntrusted-public-keys = {}\n",
        server.url, w.key.public
    ));
    let daemon = w.daemon();
    let args = [
        "--url",
        &server.url,
        "--public-key",
        &w.key.public,
        "--token-env",
        var,
    ];
    let r = w.tool(&daemon, &args, &[(var, token)]);
    assert!(
        !r.stdout.contains(token) && !r.stderr.contains(token),
        "token leaked"
    );
    assert_eq!(
        r.code, 4,
        "the daemon fetches without the user's token, so the tool must say exit 4:\n{}\n{}",
        r.stdout, r.stderr
    );
    let trust = &r.json["trust"];
    assert_eq!(trust["status"], "untrusted", "{trust}");
    assert_eq!(
        trust["missing_credentials"],
        serde_json::json!([server.url])
    );
    let daemon_netrc = w.conf_dir.join("netrc");
    let reason = trust["reason"].as_str().unwrap();
    assert!(
        reason.contains("netrc-file") && reason.contains(&daemon_netrc.display().to_string()),
        "{reason}"
    );
    let fix = trust["fix"].as_str().unwrap();
    let cmd = fix
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("sudo ") && l.contains("setup-cache --system"))
        .unwrap_or_else(|| panic!("no sudo setup-cache --system command in the fix:\n{fix}"));
    assert!(
        cmd.contains(&format!("--preserve-env={var}"))
            && cmd.contains(&format!("--token-env {var}")),
        "{cmd}"
    );
    assert!(fix.contains("restart"), "{fix}");
    assert!(
        fix.contains(&format!("extra-trusted-users = {}", w.user.name)),
        "{fix}"
    );

    // The daemon really fetches without credentials, and substitution fails.
    let out = w.realise(&daemon);
    assert!(
        !out.status.success(),
        "the daemon must not have the user's token: {}",
        stderr(&out)
    );
    let reqs = server.requests();
    assert!(!reqs.is_empty(), "the daemon never asked the cache");
    assert!(
        reqs.iter().all(|q| !q.authorized),
        "the daemon sent the token: {reqs:?}"
    );

    // The fix exactly as printed, run by the administrator (root; `sudo` left out), then
    // the daemon restart: now the daemon sends the token and substitutes.
    let rest = cmd.split_once("setup-cache ").map(|(_, r)| r).unwrap();
    let admin_home = w.shared.path().join("admin-home");
    std::fs::create_dir_all(&admin_home).unwrap();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("exec \"$NCT_BIN\" {rest}"))
        .env_clear()
        .env("NCT_BIN", BIN)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", &admin_home)
        .env("XDG_CONFIG_HOME", admin_home.join(".config"))
        .env("XDG_CONFIG_DIRS", admin_home.join("no-xdg-dirs"))
        .env("NIX_CONF_DIR", &w.conf_dir)
        .env("NIX_REMOTE", "local")
        .env(var, token)
        .current_dir(&admin_home);
    let out = output_within(c, LIMIT);
    assert!(
        out.status.success(),
        "the printed fix failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = std::fs::read_to_string(&daemon_netrc).unwrap();
    assert!(text.contains(&format!("password {token}")), "daemon netrc");
    assert_eq!(
        std::fs::metadata(&daemon_netrc)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let daemon = daemon.restart();
    let out = w.realise(&daemon);
    assert!(
        out.status.success(),
        "after the printed fix the daemon must substitute: {}",
        stderr(&out)
    );
    assert!(server.requests().iter().any(|q| q.authorized));

    // And the tool now relies on the daemon's netrc (which the user may not read).
    let r = w.tool(&daemon, &args, &[(var, token)]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["trust"]["status"], "allowed", "{}", r.json["trust"]);
    let reason = r.json["trust"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&daemon_netrc.display().to_string()),
        "{reason}"
    );
}

/// Plain HTTP to anything but loopback: a warning, as cache-analytics gives.
#[test]
fn plain_http_that_is_not_loopback_gets_a_warning() {
    require_nix();
    let env = NixEnv::new();
    let run = |extra: &[&str], url: &str| {
        let mut c = env.command(BIN);
        c.args([
            "--url",
            url,
            "--public-key",
            OTHER_KEY,
            "--dry-run",
            "--json",
        ])
        .args(extra)
        .env("NCT_HTTP_TOKEN", "tok-http-1");
        finish(output_within(c, LIMIT))
    };
    for (url, warned) in [
        ("http://cache.example.com", true),
        ("HTTP://cache.example.com:8080/sub", true),
        ("http://127.0.0.1:5000", false),
        ("http://localhost:8080/", false),
        ("http://[::1]:80", false),
        ("https://cache.example.com", false),
    ] {
        for target in [&[][..], &["--system"][..]] {
            let r = run(target, url);
            assert_eq!(r.code, 0, "{url}: {}\n{}", r.stdout, r.stderr);
            let w: Vec<String> = warnings(&r)
                .into_iter()
                .filter(|w| w.contains("plain HTTP"))
                .collect();
            assert_eq!(!w.is_empty(), warned, "{url} {target:?}: {w:?}");
            if warned {
                assert!(w[0].contains(url) && w[0].contains("signature"), "{}", w[0]);
            }
        }
    }
    // With a token the warning says the token goes in the clear too; never the token.
    let r = run(
        &["--token-env", "NCT_HTTP_TOKEN"],
        "http://cache.example.com",
    );
    let w = warnings(&r);
    assert!(
        w.iter()
            .any(|w| w.contains("plain HTTP") && w.contains("token")),
        "{w:?}"
    );
    assert!(!r.stdout.contains("tok-http-1"));
    // Text output shows it as a warning line.
    let out = output_within(
        {
            let mut c = env.command(BIN);
            c.args([
                "--url",
                "http://cache.example.com",
                "--public-key",
                OTHER_KEY,
                "--dry-run",
            ]);
            c
        },
        LIMIT,
    );
    assert!(
        stdout(&out).contains("warning: `http://cache.example.com` is plain HTTP"),
        "{}",
        stdout(&out)
    );
}

/// The daemon's own rules, each checked against what it then really does: root is no
/// special case through the daemon (only `trusted-users` counts); `@group` means the
/// group database, not the groups of the client's session; `require-sigs = false` in the
/// system file lets the daemon take an allowed cache's paths whatever key signed them.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one fixture (built paths, a server), three daemons in turn"
)]
fn the_daemon_judges_root_groups_and_signatures_by_its_own_rules() {
    let w = world("rules");
    let server = http::HttpCache::serve(&w.cache_dir);
    let add = [
        "--url",
        server.url.as_str(),
        "--public-key",
        w.key.public.as_str(),
    ];

    // 1. `@users` is trusted; this session has the group `users`, the group database
    //    does not list the user in it. The daemon goes by the database.
    let users_gid = String::from_utf8(
        Command::new("getent")
            .args(["group", "users"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split(':')
    .nth(2)
    .unwrap()
    .to_owned();
    w.write_system(&format!("{BASE}trusted-users = root @users\n"));
    let daemon = w.daemon();
    let session = |program: &std::ffi::OsStr| {
        let mut c =
            setup_daemon::as_user_in_groups(&w.user, &w.shared.home, program, Some(&users_gid));
        daemon.client_env(&mut c);
        c
    };
    let mut c = session(w.bin.as_os_str());
    c.args(add).arg("--json");
    let r = finish(output_within(c, LIMIT));
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let mut c = session(std::ffi::OsStr::new("nix-store"));
    c.args(["--realise", &w.top]);
    let out = output_within(c, LIMIT);
    assert!(!out.status.success(), "the daemon trusted a session group");
    assert!(
        stderr(&out).contains("ignoring untrusted substituter"),
        "{}",
        stderr(&out)
    );
    drop(daemon);
    let _ = std::fs::remove_file(w.user_conf());

    // 2. Root through the daemon, which trusts only the test user.
    w.write_system(&format!(
        "sandbox = false\nsubstituters =\ntrusted-users = {}\n",
        w.user.name
    ));
    let daemon = w.daemon();
    let as_root = |program: &str| w.as_root(&daemon, program);
    let mut c = as_root(BIN);
    c.args(add).arg("--json");
    let r = finish(output_within(c, LIMIT));
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("whom Nix always trusts"), "{}", r.stdout);
    let mut c = as_root("nix-store");
    c.args(["--realise", &w.top]);
    let out = output_within(c, LIMIT);
    assert!(!out.status.success(), "the daemon trusted root");
    assert!(
        stderr(&out).contains("ignoring untrusted substituter"),
        "{}",
        stderr(&out)
    );
    drop(daemon);

    // 3. The cache is allowed and signatures are not required: no key needed, exit 0,
    //    and the daemon substitutes though it trusts no key.
    w.write_system(&format!(
        "{BASE}trusted-substituters = {}\nrequire-sigs = false\n",
        server.url
    ));
    let daemon = w.daemon();
    let r = w.tool(
        &daemon,
        &["--url", &server.url, "--public-key", OTHER_KEY],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["trust"]["status"], "allowed", "{}", r.json["trust"]);
    let out = w.realise(&daemon);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(daemon);
    w.forget();

    // 4. The user is not in `allowed-users`: the daemon refuses every connection of
    //    theirs, whatever the system allows.
    w.write_system(&format!(
        "{BASE}trusted-substituters = {}\ntrusted-public-keys = {}\nallowed-users = root\n",
        server.url, w.key.public
    ));
    let daemon = w.daemon();
    let r = w.tool(&daemon, &add, &[]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.json["trust"]["reason"]
            .to_string()
            .contains("allowed-users"),
        "{}",
        r.json["trust"]
    );
    let out = w.realise(&daemon);
    assert!(
        !out.status.success(),
        "the daemon let a user not allowed in"
    );
    drop(daemon);

    // 5. A system file the user may not read, which trusts them: a verdict from Nix's
    //    defaults would be wrong. Nix 2.15+ answers `nix store info` (trusted: exit 0);
    //    where it cannot, an "untrusted" verdict must say it could not read the file.
    w.write_system(&format!("{BASE}trusted-users = root {}\n", w.user.name));
    std::fs::set_permissions(
        w.conf_dir.join("nix.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let daemon = w.daemon();
    let r = w.tool(&daemon, &add, &[]);
    if r.code != 0 {
        assert!(
            warnings(&r)
                .iter()
                .any(|w| w.contains("could not read") && w.contains("may be wrong")),
            "{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    let out = w.realise(&daemon);
    assert!(
        out.status.success(),
        "the daemon trusts the user: {}",
        stderr(&out)
    );
    drop(daemon);
    w.forget();

    // 6. The URL allowed, its key not: the daemon asks the cache, then refuses its paths;
    //    the reason says that, not "ignoring untrusted substituter".
    w.write_system(&format!("{BASE}trusted-substituters = {}\n", server.url));
    std::fs::set_permissions(
        w.conf_dir.join("nix.conf"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let daemon = w.daemon();
    let r = w.tool(&daemon, &add, &[]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    let reason = r.json["trust"]["reason"].to_string();
    assert!(reason.contains("not signed by any of the keys"), "{reason}");
    let out = w.realise(&daemon);
    assert!(
        !out.status.success(),
        "the daemon took paths signed by a key it does not trust"
    );
}

/// The daemon reads the user file of the account it runs as (root's
/// `~/.config/nix/nix.conf` under systemd) after the system file. Root through the daemon
/// can see the daemon's environment, so setup-cache judges by what the daemon really
/// reads: trusted here, though the system file leaves root out, as the daemon proves by
/// substituting.
#[test]
fn the_daemons_own_user_file_is_read_as_the_daemon_reads_it() {
    let w = world("daemon-home");
    let server = http::HttpCache::serve(&w.cache_dir);
    w.write_system(&format!(
        "sandbox = false\nsubstituters =\ntrusted-users = {}\n",
        w.user.name
    ));
    let daemon_user_file = Daemon::home_of(&w.conf_dir).join(".config/nix/nix.conf");
    std::fs::create_dir_all(daemon_user_file.parent().unwrap()).unwrap();
    std::fs::write(&daemon_user_file, "extra-trusted-users = root\n").unwrap();
    let daemon = Daemon::start_with(&w.conf_dir, &w.shared.path().join("daemon.sock"), true);

    let mut c = w.as_root(&daemon, BIN);
    c.args([
        "--url",
        &server.url,
        "--public-key",
        &w.key.public,
        "--json",
    ]);
    let r = finish(output_within(c, LIMIT));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let trust = &r.json["trust"];
    assert_eq!(trust["status"], "trusted", "{trust}");
    let reason = trust["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{}:1", daemon_user_file.display())),
        "{reason}"
    );
    assert_eq!(trust["daemon_config"]["from"], "running-daemon", "{trust}");
    assert!(
        trust["daemon_config"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == &Value::from(daemon_user_file.display().to_string())),
        "{trust}"
    );
    let mut c = w.as_root(&daemon, "nix-store");
    c.args(["--realise", &w.top]);
    let out = output_within(c, LIMIT);
    assert!(
        out.status.success(),
        "the daemon trusts root through its own user file: {}",
        stderr(&out)
    );
}
