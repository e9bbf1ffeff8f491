//! "Lossless means lossless": `setup-cache --remove` after an add gives back the exact
//! original bytes, checked with the real binary and the real Nix (2.8 here): the cases
//! reported in issue 8 (a user's empty `extra-` line, a lone final CR, values the user
//! had already written), the marked `netrc-file` line, `--save` on a CRLF cache.toml,
//! and generated files. Every run of the binary has a time limit.
#![allow(clippy::unwrap_used)]
mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_setup-cache");
const MARK: &str = "# added by setup-cache";
const URL: &str = "http://127.0.0.1:1/lossless";
const KEY: &str = "lossless-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
const URL2: &str = "http://127.0.0.1:1/lossless-2";
const KEY2: &str = "lossless2-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
/// Far more than a run takes (a fraction of a second); only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(60);

struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, killing it (and failing the test) past [`LIMIT`].
fn bounded(mut cmd: Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > LIMIT {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn setup_cache(env: &NixEnv, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = env.command(BIN);
    cmd.args(args).arg("--json");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = bounded(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}):\n{stdout}\n{stderr}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        json,
        stdout,
        stderr,
    }
}

fn has_url(list: &[String], url: &str) -> bool {
    list.iter()
        .any(|u| u.trim_end_matches('/') == url.trim_end_matches('/'))
}

fn write_user(env: &NixEnv, text: &str) {
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), text).unwrap();
}

/// Adds the caches with the real binary, checks Nix has them in effect, removes them
/// again and checks the file is byte for byte `original` and Nix no longer has them.
/// Returns the file as the add left it.
fn round_trip(env: &NixEnv, original: &str, caches: &[(&str, &str)]) -> String {
    write_user(env, original);
    let mut args = Vec::new();
    for (u, k) in caches {
        // One run per cache, as a user adding them one at a time.
        args.push(vec!["--url", *u, "--public-key", *k]);
    }
    for a in &args {
        let r = setup_cache(env, a, &[]);
        assert_eq!(r.code, 0, "{original:?}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.json["caches"][0]["status"], "added", "{original:?}");
        assert_eq!(
            r.json["nix_check"]["ok"], true,
            "{original:?}: {}",
            r.stdout
        );
    }
    let added = std::fs::read_to_string(env.user_conf()).unwrap();
    let subs = env.nix_setting("substituters");
    let keys = env.nix_setting("trusted-public-keys");
    for (u, k) in caches {
        assert!(has_url(&subs, u), "{original:?}: Nix has {subs:?}");
        assert!(
            keys.iter().any(|x| x == k),
            "{original:?}: Nix has {keys:?}"
        );
    }
    // Idempotent: nothing written the second time.
    for a in &args {
        let r = setup_cache(env, a, &[]);
        assert_eq!(r.json["changed"], false, "{original:?}: {}", r.stdout);
    }
    // Removed in the opposite order from the adds.
    for a in args.iter().rev() {
        let mut a = a.clone();
        a.push("--remove");
        let r = setup_cache(env, &a, &[]);
        assert_eq!(r.code, 0, "{original:?}: {}\n{}", r.stdout, r.stderr);
        assert_eq!(r.json["caches"][0]["status"], "removed", "{original:?}");
    }
    assert_eq!(
        std::fs::read_to_string(env.user_conf()).unwrap(),
        original,
        "--remove did not give back the original bytes; after the add the file was:\n{added:?}"
    );
    let subs = env.nix_setting("substituters");
    for (u, _) in caches {
        assert!(!has_url(&subs, u), "{original:?}: Nix still has {subs:?}");
    }
    added
}

#[test]
fn a_users_empty_extra_line_is_kept_and_never_deleted() {
    require_nix();
    for original in [
        "extra-substituters = # team caches go here\n",
        "extra-substituters = # team caches go here",
        "max-jobs = 2\r\nextra-substituters = # team caches go here\r\nextra-trusted-public-keys =\r\n",
    ] {
        let env = NixEnv::new();
        let added = round_trip(&env, original, &[(URL, KEY), (URL2, KEY2)]);
        // The user's line is untouched; the tool's values are on its own marked lines.
        assert!(
            added.starts_with(original.trim_end_matches(['\r', '\n'])),
            "{added:?}"
        );
        assert!(
            added.contains(&format!("extra-substituters = {URL} {URL2} {MARK}")),
            "{added:?}"
        );
    }
}

#[test]
fn a_lone_cr_at_the_end_survives() {
    require_nix();
    for original in [
        "max-jobs = 2\r",
        "\r",
        "max-jobs = 2\r\ncores = 1\r",
        "cores = 1\n\r",
    ] {
        let env = NixEnv::new();
        round_trip(&env, original, &[(URL, KEY)]);
    }
}

#[test]
fn values_the_user_already_wrote_survive() {
    require_nix();
    // Written, but reset by a later plain assignment: the add makes them take effect
    // with its own lines, and --remove takes only those out again.
    let original = format!(
        "extra-substituters = {URL} # mine\nextra-trusted-public-keys = {KEY}\nsubstituters = http://127.0.0.1:1/other\ntrusted-public-keys = other-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n"
    );
    let env = NixEnv::new();
    let added = round_trip(&env, &original, &[(URL, KEY)]);
    assert!(added.starts_with(&original), "{added:?}");
    // The URL in effect already (the user's), only the key added: --remove keeps the URL.
    let original = format!("extra-substituters = {URL}/\n");
    let env = NixEnv::new();
    write_user(&env, &original);
    let r = setup_cache(&env, &["--url", URL, "--public-key", KEY], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        std::fs::read_to_string(env.user_conf()).unwrap(),
        format!("{original}extra-trusted-public-keys = {KEY} {MARK}\n")
    );
    let rm = ["--url", URL, "--public-key", KEY, "--remove"];
    let r = setup_cache(&env, &rm, &[]);
    assert_eq!(std::fs::read_to_string(env.user_conf()).unwrap(), original);
    // The URL is still in effect from the user's own line: said so, with exit code 5...
    assert_eq!(r.code, 5, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["caches"][0]["status"], "removed");
    let line1 = format!("{}:1", env.user_conf().display());
    assert_eq!(r.json["caches"][0]["overridden_by"], line1.as_str());
    // ...and a second --remove takes it out of the user's line.
    let r = setup_cache(&env, &rm, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    // Nothing left in the file: deleted, as documented.
    assert!(!env.user_conf().exists());
}

#[test]
fn remove_of_a_cache_the_user_wrote_takes_it_out_of_their_lines_and_says_so() {
    require_nix();
    let env = NixEnv::new();
    write_user(
        &env,
        &format!(
            "extra-substituters = http://127.0.0.1:1/keep {URL} # mine\nextra-trusted-public-keys = {KEY}\n"
        ),
    );
    let r = setup_cache(&env, &["--url", URL, "--public-key", KEY, "--remove"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json["caches"][0]["status"], "removed");
    assert_eq!(
        std::fs::read_to_string(env.user_conf()).unwrap(),
        "extra-substituters = http://127.0.0.1:1/keep # mine\n"
    );
    let warnings = r.json["warnings"].to_string();
    assert!(
        warnings.contains("was not added by setup-cache") && warnings.contains("line 1, 2"),
        "{warnings}"
    );
    assert!(!has_url(&env.nix_setting("substituters"), URL));
}

#[test]
fn the_netrc_file_line_is_marked_and_goes_with_the_last_entry() {
    require_nix();
    let env = NixEnv::new();
    let original = "# mine\nmax-jobs = 2";
    write_user(&env, original);
    let tok = [("NCT_LOSSLESS_TOKEN", "tok-lossless-1")];
    let add = [
        "--url",
        URL,
        "--public-key",
        KEY,
        "--token-env",
        "NCT_LOSSLESS_TOKEN",
    ];
    let r = setup_cache(&env, &add, &tok);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let netrc = env.user_conf().with_file_name("netrc");
    let text = std::fs::read_to_string(env.user_conf()).unwrap();
    assert!(
        text.contains(&format!("netrc-file = {} {MARK}", netrc.display())),
        "{text:?}"
    );
    // Nix reads the path without the comment.
    assert_eq!(
        env.nix_config()["netrc-file"]["value"],
        netrc.display().to_string()
    );
    // A second, public cache; removing the private one first keeps the netrc-file line
    // only while a substituter setup-cache added is left.
    let r = setup_cache(&env, &["--url", URL2, "--public-key", KEY2], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = setup_cache(&env, &["--url", URL, "--public-key", KEY, "--remove"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(!netrc.exists(), "the netrc had only this entry");
    let r = setup_cache(
        &env,
        &["--url", URL2, "--public-key", KEY2, "--remove"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(std::fs::read_to_string(env.user_conf()).unwrap(), original);
}

#[test]
fn save_keeps_a_crlf_cache_toml_crlf() {
    require_nix();
    let env = NixEnv::new();
    let project = env.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let original = "# team caches\r\n[push]\r\nto = \"file:///tmp/c\"";
    let toml = project.join("cache.toml");
    std::fs::write(&toml, original).unwrap();
    let mut cmd = env.command(BIN);
    cmd.args(["--url", URL, "--public-key", KEY, "--save"])
        .current_dir(&project);
    let out = bounded(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.starts_with(original), "{text:?}");
    assert!(!text.replace("\r\n", "").contains('\n'), "{text:?}");
    assert!(!text.ends_with('\n'), "{text:?}");
    assert!(text.contains(&format!("url = \"{URL}\"\r\n")), "{text:?}");
}

/// A cache whose key was rotated (added again with its new key `NAME-2`): `--remove`
/// with the new key takes out the whole cache, the old key setup-cache added for it
/// too, and gives back the file as it was before either add. A marked line with no
/// value (left by hand) is never the line an add appends to, so it survives.
#[test]
fn a_rotated_key_goes_with_its_cache_and_empty_marked_lines_stay() {
    require_nix();
    let env = NixEnv::new();
    let original = "# mine\n";
    write_user(&env, original);
    let k1 = "lossless-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let k2 = "lossless-2:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    for k in [k1, k2] {
        let r = setup_cache(&env, &["--url", URL, "--public-key", k], &[]);
        assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    }
    let keys = env.nix_setting("trusted-public-keys");
    assert!(
        keys.iter().any(|k| k == k1) && keys.iter().any(|k| k == k2),
        "{keys:?}"
    );
    let r = setup_cache(&env, &["--url", URL, "--public-key", k2, "--remove"], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.json["warnings"].to_string().contains(k1),
        "the old key is named: {}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(env.user_conf()).unwrap(), original);
    let keys = env.nix_setting("trusted-public-keys");
    assert!(!keys.iter().any(|k| k == k1 || k == k2), "{keys:?}");
    round_trip(
        &env,
        &format!("extra-trusted-public-keys = {MARK}\nextra-substituters = {MARK}\n"),
        &[(URL, KEY), (URL2, KEY2)],
    );
}

/// The netrc is edited as losslessly as nix.conf: add with a token then `--remove` gives
/// back its exact bytes (or no file, when there was none) — a netrc of comments only, one
/// without a final line break, one with a `default` entry (setup-cache's entry goes
/// before it: curl stops at `default`), one with an entry the user wrote for the host
/// (kept as it is, never removed, with a warning).
#[test]
fn the_netrc_comes_back_byte_for_byte() {
    require_nix();
    let host_url = "http://127.0.0.1:1/private";
    let cases: &[Option<&str>] = &[
        None,
        Some("# mine\n"),
        Some("machine a.example password x"),
        Some("default login anon password anonpw\n"),
        Some("machine 127.0.0.1 login me password mine\n"),
    ];
    for original in cases {
        let env = NixEnv::new();
        let netrc = env.user_conf().with_file_name("my-netrc");
        write_user(&env, &format!("netrc-file = {}\n", netrc.display()));
        if let Some(t) = original {
            std::fs::write(&netrc, t).unwrap();
        }
        let add = ["--url", host_url, "--public-key", KEY, "--token-env", "TOK"];
        let r = setup_cache(&env, &add, &[("TOK", "tok-PLANTED")]);
        assert_eq!(r.code, 0, "{original:?}: {}\n{}", r.stdout, r.stderr);
        let text = std::fs::read_to_string(&netrc).unwrap();
        let theirs = original.is_some_and(|t| t.contains("login me"));
        let (_, password) = nix_cache_tools::setup::netrc::lookup(&text, "127.0.0.1").unwrap();
        if theirs {
            assert_eq!(Some(text.as_str()), *original);
            assert_eq!(password, "mine");
            assert!(
                r.json["warnings"].to_string().contains("entry of yours"),
                "{}",
                r.stdout
            );
        } else {
            // curl would send the token.
            assert_eq!(password, "tok-PLANTED", "{text:?}");
        }
        let mut rm = add[..4].to_vec();
        rm.push("--remove");
        let r = setup_cache(&env, &rm, &[]);
        assert_eq!(r.code, 0, "{original:?}: {}\n{}", r.stdout, r.stderr);
        match original {
            Some(t) => assert_eq!(&std::fs::read_to_string(&netrc).unwrap(), t),
            None => assert!(!netrc.exists(), "{:?}", std::fs::read_to_string(&netrc)),
        }
    }
}

/// cache.toml is committed: `--save` of a URL with a password is refused (exit 2, also
/// with `--dry-run`), naming the way that keeps the token out (`--token-env`), and
/// nothing is written anywhere.
#[test]
fn save_never_writes_a_password_into_cache_toml() {
    require_nix();
    let env = NixEnv::new();
    let project = env.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let toml = project.join("cache.toml");
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut cmd = env.command(BIN);
        cmd.args([
            "--url",
            "https://u:SAVEDSECRET@team.example",
            "--public-key",
            KEY,
            "--save",
        ])
        .args(extra)
        .current_dir(&project);
        let out = bounded(cmd);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(
            all.contains("--token-env") && !all.contains("SAVEDSECRET"),
            "{all}"
        );
        assert!(!toml.exists(), "{extra:?}");
        assert!(!env.user_conf().exists(), "{extra:?}");
    }
}

mod generated {
    //! Generated user files, a few through the real binary (the library's property test
    //! in `setup::tests::lossless` runs hundreds).
    use super::*;
    use proptest::prelude::*;

    /// Lines before the reset: the user's own values for the caches among them.
    fn before() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("extra-substituters = # team caches go here".to_owned()),
            Just("extra-trusted-public-keys =".to_owned()),
            Just("# a comment".to_owned()),
            Just(String::new()),
            Just("\r".to_owned()),
            Just("!include extra.conf".to_owned()),
            Just(format!("extra-substituters = {URL}/ # mine")),
            Just(format!("extra-binary-cache-public-keys = {KEY}")),
            Just(format!("substituters = {URL2}")),
        ]
    }

    /// Lines after it: nothing that names the caches or resets the lists.
    fn after() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("extra-substituters = # team caches go here".to_owned()),
            Just("extra-trusted-public-keys =".to_owned()),
            Just("# a comment".to_owned()),
            Just(String::new()),
            Just("\r".to_owned()),
            Just("max-jobs = 2".to_owned()),
        ]
    }

    fn lines(
        s: impl Strategy<Value = String>,
        max: usize,
    ) -> impl Strategy<Value = Vec<(String, &'static str)>> {
        prop::collection::vec((s, prop_oneof![Just("\n"), Just("\r\n")]), 0..max)
    }

    /// A file that ends with `last` (`\n`, `\r\n`, nothing or a lone CR). With
    /// `reset`, a plain `substituters =` / `trusted-public-keys =` stands between the
    /// two parts, so the values above it are the user's but not in effect and the add
    /// always writes both caches.
    fn file(reset: bool, includes: bool) -> impl Strategy<Value = String> {
        let last = prop_oneof![Just("\n"), Just("\r\n"), Just(""), Just("\r")];
        let first = if includes {
            before().boxed()
        } else {
            after().boxed()
        };
        (lines(first, 5), lines(after(), 4), last).prop_map(move |(a, b, last)| {
            let mut s = String::new();
            for (l, e) in a {
                s.push_str(&l);
                s.push_str(e);
            }
            if reset {
                s.push_str("substituters = http://127.0.0.1:1/reset\ntrusted-public-keys = r-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n");
            }
            for (l, e) in b {
                s.push_str(&l);
                s.push_str(e);
            }
            // The last line's ending replaced by `last`.
            let body = s.strip_suffix('\n').map(|b| b.strip_suffix('\r').unwrap_or(b));
            match body {
                Some(b) => format!("{b}{last}"),
                None => s,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn add_then_remove_with_the_binary(original in file(true, true), include in file(false, false)) {
            require_nix();
            let env = NixEnv::new();
            std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
            let extra = env.user_conf().with_file_name("extra.conf");
            std::fs::write(&extra, &include).unwrap();
            round_trip(&env, &original, &[(URL, KEY), (URL2, KEY2)]);
            prop_assert_eq!(std::fs::read_to_string(Path::new(&extra)).unwrap(), include);
        }
    }
}
