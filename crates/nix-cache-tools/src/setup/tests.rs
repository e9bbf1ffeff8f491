use super::*;
use std::fs;

const KEY_A: &str = "a.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
const KEY_B: &str = "b.example-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";

struct T {
    dir: tempfile::TempDir,
    env: Env,
}

impl T {
    fn new(system: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/nix.conf"), system).unwrap();
        let env = Env {
            nix_conf_dir: Some(dir.path().join("etc")),
            xdg_config_home: Some(dir.path().join("cfg")),
            xdg_config_dirs: Some(dir.path().join("none").into_os_string()),
            home: Some(dir.path().join("home")),
            cwd: Some(dir.path().to_owned()),
            ..Env::default()
        };
        T { dir, env }
    }
    fn user(&self) -> PathBuf {
        self.dir.path().join("cfg/nix/nix.conf")
    }
    fn req(&self, caches: &[(&str, &str)]) -> Request {
        Request {
            caches: caches
                .iter()
                .map(|(u, k)| CacheSpec {
                    url: (*u).into(),
                    public_key: (*k).into(),
                    token_env: None,
                })
                .collect(),
            target: Target::User,
            remove: false,
            dry_run: false,
            env: self.env.clone(),
            ask_nix: false,
            check_trust: false,
            cli_args: String::new(),
            on_lock_wait: |_| {},
        }
    }
    fn write_user(&self, text: &str) {
        fs::create_dir_all(self.user().parent().unwrap()).unwrap();
        fs::write(self.user(), text).unwrap();
    }
    fn read_user(&self) -> String {
        fs::read_to_string(self.user()).unwrap()
    }
}

#[test]
fn exit_codes_are_distinct_and_documented() {
    let help = ExitCode::help(crate::cli::Tool::SetupCache);
    for c in [
        ExitCode::Ok,
        ExitCode::Error,
        ExitCode::Usage,
        ExitCode::StoreManaged,
        ExitCode::Untrusted,
        ExitCode::NotInEffect,
    ] {
        assert!(
            help.contains(&format!(
                "  {}  {}",
                c.code(),
                c.describe(crate::cli::Tool::SetupCache)
            )),
            "{help}"
        );
    }
    assert_eq!(
        SetupError::NoUserFile(String::new()).exit_code(),
        ExitCode::Usage
    );
    assert_eq!(SetupError::Usage("x".into()).exit_code(), ExitCode::Usage);
}

#[test]
fn adds_creates_and_is_idempotent() {
    let t = T::new("substituters =\n");
    let r = run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    assert_eq!(r.exit_code, ExitCode::Ok);
    assert!(r.changed && r.backup.is_none());
    assert_eq!(
        t.read_user(),
        format!(
            "extra-substituters = http://a.example {MARK}\nextra-trusted-public-keys = {KEY_A} {MARK}\n"
        )
    );
    assert_eq!(r.caches[0].status, CacheStatus::Added);
    let r = run(&t.req(&[("http://a.example/", KEY_A)])).unwrap();
    assert_eq!(
        (r.changed, r.caches[0].status),
        (false, CacheStatus::AlreadyConfigured)
    );
    assert!(
        r.caches[0]
            .substituter_from
            .as_deref()
            .unwrap()
            .ends_with("nix.conf:1")
    );
}

#[test]
fn appends_to_an_extra_line_only_when_that_stays_in_effect() {
    // The user's own lines are never edited: new marked lines at the end.
    let t = T::new("");
    t.write_user("extra-substituters = http://x.example # mine\ntrusted-public-keys = k:1\n");
    let r = run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    assert_eq!(
        t.read_user(),
        format!(
            "extra-substituters = http://x.example # mine\ntrusted-public-keys = k:1\nextra-substituters = http://a.example {MARK}\nextra-trusted-public-keys = {KEY_A} {MARK}\n"
        )
    );
    assert_eq!(r.backup.as_deref(), Some(backup_path(&t.user()).as_path()));
    assert_eq!(
        fs::read_to_string(backup_path(&t.user())).unwrap(),
        "extra-substituters = http://x.example # mine\ntrusted-public-keys = k:1\n"
    );

    // A later plain `substituters =` resets the tool's own extra- line: add at the end
    // instead.
    let t = T::new("");
    t.write_user(&format!(
        "extra-substituters = http://x.example {MARK}\nsubstituters = https://cache.nixos.org/\n"
    ));
    run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    let text = t.read_user();
    assert!(
        text.starts_with(&format!("extra-substituters = http://x.example {MARK}\nsubstituters = https://cache.nixos.org/\nextra-substituters = http://a.example {MARK}\n")),
        "{text}"
    );
}

#[test]
fn overridden_by_nix_config_is_reported() {
    let mut t = T::new("");
    t.env.nix_config = Some("substituters = https://only.example".into());
    let r = run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    assert_eq!(r.exit_code, ExitCode::NotInEffect);
    assert_eq!(r.caches[0].overridden_by.as_deref(), Some("NIX_CONFIG:1"));
    assert!(r.human().contains("NOT in effect"), "{}", r.human());
    assert!(
        r.human().contains("unset it, or add the cache to it"),
        "{}",
        r.human()
    );
}

#[test]
fn remove_restores_bytes_and_dry_run_writes_nothing() {
    for original in [
        "a = b",
        "a = b\r\nc = d\r\n",
        "",
        "extra-substituters = http://x.example   # c\n",
    ] {
        let t = T::new("");
        if !original.is_empty() {
            t.write_user(original);
        }
        let mut req = t.req(&[("http://a.example", KEY_A), ("http://b.example", KEY_B)]);
        req.dry_run = true;
        let r = run(&req).unwrap();
        assert!(
            r.changed && r.diff.contains("+extra-trusted-public-keys"),
            "{}",
            r.diff
        );
        assert_eq!(
            fs::read_to_string(t.user()).ok().unwrap_or_default(),
            original
        );
        req.dry_run = false;
        run(&req).unwrap();
        req.remove = true;
        let r = run(&req).unwrap();
        assert!(r.caches.iter().all(|c| c.status == CacheStatus::Removed));
        if original.is_empty() {
            // The tool created the file; taking the caches out deletes it again.
            assert!(r.deleted && !t.user().exists(), "{}", r.human());
        } else {
            assert!(!r.deleted);
            assert_eq!(t.read_user(), original, "{original:?}");
        }
        // No lock file (or anything else but the backup) is left next to nix.conf.
        let mut names: Vec<String> = fs::read_dir(t.user().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let expect: &[&str] = if original.is_empty() {
            &["nix.conf.setup-cache.bak"]
        } else {
            &["nix.conf", "nix.conf.setup-cache.bak"]
        };
        assert_eq!(names, expect, "{original:?}");
        let r = run(&req).unwrap();
        assert!(!r.changed && r.caches.iter().all(|c| c.status == CacheStatus::NotPresent));
    }
}

#[test]
fn system_target_follows_determinate_include() {
    let t = T::new("build-users-group = nixbld\n!include nix.custom.conf\n");
    let mut req = t.req(&[("http://a.example", KEY_A)]);
    req.target = Target::System;
    let r = run(&req).unwrap();
    assert_eq!(r.target, t.dir.path().join("etc/nix.custom.conf"));
    assert!(r.restart.is_some());
    assert_eq!(
        fs::read_to_string(t.dir.path().join("etc/nix.conf")).unwrap(),
        "build-users-group = nixbld\n!include nix.custom.conf\n"
    );
    assert!(
        fs::read_to_string(&r.target)
            .unwrap()
            .contains("extra-substituters = http://a.example")
    );
}

#[test]
fn symlinks_are_never_written_through() {
    let t = T::new("");
    let real = t.dir.path().join("dotfiles-nix.conf");
    fs::write(&real, "x = 1\n").unwrap();
    fs::create_dir_all(t.user().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, t.user()).unwrap();
    let r = run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    assert_eq!(r.exit_code, ExitCode::StoreManaged);
    assert!(matches!(r.managed, Some(Managed::Symlink { .. })));
    assert!(r.advice.unwrap().contains("--file"));
    assert_eq!(fs::read_to_string(&real).unwrap(), "x = 1\n");
}

#[test]
fn resolves_flags_and_cache_toml() {
    let d = tempfile::tempdir().unwrap();
    let a = CacheArgs {
        cwd: d.path().to_owned(),
        ..CacheArgs::default()
    };
    assert!(matches!(
        resolve_caches(&a),
        Err(SetupError::NoCaches { .. })
    ));
    let bad = CacheArgs {
        url: Some("https://x.example".into()),
        public_key: Some("x:AAAA".into()),
        ..a.clone()
    };
    let e = resolve_caches(&bad).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage);
    assert!(e.to_string().contains("--public-key"), "{e}");
    // Given empty (for an add or a remove), it is no key either.
    for remove in [false, true] {
        let empty = CacheArgs {
            url: Some("https://x.example".into()),
            public_key: Some(String::new()),
            remove,
            ..a.clone()
        };
        let e = resolve_caches(&empty).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage, "{e}");
    }
    // Control characters: refused, and never echoed raw.
    for (url, key) in [
        ("https://a.exa\u{1}mple", KEY_A.to_owned()),
        ("https://a.example/\u{1b}[2J", KEY_A.to_owned()),
        ("https://a.example", format!("\u{1b}[31m{KEY_A}")),
    ] {
        let bad = CacheArgs {
            url: Some(url.into()),
            public_key: Some(key),
            ..a.clone()
        };
        let e = resolve_caches(&bad).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::Usage, "{e}");
        assert!(!e.to_string().contains(['\u{1}', '\u{1b}']), "{e:?}");
    }
    let cachix = CacheArgs {
        cachix: Some("nanna-coder".into()),
        public_key: Some(KEY_A.into()),
        ..a.clone()
    };
    assert_eq!(
        resolve_caches(&cachix).unwrap().caches[0].url,
        "https://nanna-coder.cachix.org"
    );
    fs::write(d.path().join("cache.toml"), format!("[[cache]]\nurl = \"https://t.example\"\npublic-key = \"{KEY_B}\"\ntoken-env = \"TOK\"\n")).unwrap();
    let r = resolve_caches(&a).unwrap();
    assert_eq!(r.caches[0].token_env.as_deref(), Some("TOK"));
    assert!(r.cli_args.contains("--config"));
}

#[test]
fn overridden_values_are_not_duplicated_on_rerun() {
    let mut t = T::new("");
    t.env.nix_config = Some("substituters = https://only.example".into());
    run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    let first = t.read_user();
    let r = run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    assert_eq!(t.read_user(), first);
    assert!(!r.changed);
    assert_eq!(r.caches[0].status, CacheStatus::Overridden);
    assert_eq!(r.exit_code, ExitCode::NotInEffect);
}

#[test]
fn a_file_named_differently_is_still_recognised_as_read_by_nix() {
    let t = T::new("!include custom.conf\n");
    fs::write(t.dir.path().join("etc/custom.conf"), "").unwrap();
    let mut req = t.req(&[("http://a.example", KEY_A)]);
    req.target = Target::File(t.dir.path().join("etc/./custom.conf"));
    let r = run(&req).unwrap();
    // (The only warning: http://a.example is plain HTTP.)
    assert!(
        r.warnings.iter().all(|w| w.contains("plain HTTP")),
        "{:?}",
        r.warnings
    );
    assert_eq!(r.exit_code, ExitCode::Ok);
    // A file Nix does not read gets a warning.
    req.target = Target::File(t.dir.path().join("elsewhere.conf"));
    let r = run(&req).unwrap();
    assert!(
        r.warnings[0].contains("Nix does not read"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn remove_deletes_a_file_it_empties_and_dry_run_says_so() {
    let t = T::new("");
    let mut req = t.req(&[("http://a.example", KEY_A)]);
    run(&req).unwrap();
    assert!(t.user().exists());
    req.remove = true;
    req.dry_run = true;
    let r = run(&req).unwrap();
    assert!(r.deleted && t.user().exists());
    assert!(r.human().contains("would delete"), "{}", r.human());
    req.dry_run = false;
    let r = run(&req).unwrap();
    assert!(r.deleted && !t.user().exists());
    assert!(r.human().contains("deleted"), "{}", r.human());
    let backup = r.backup.expect("the removed content is kept");
    assert!(
        fs::read_to_string(backup)
            .unwrap()
            .contains("http://a.example")
    );
    // A file with anything else left in it (even a blank line) is kept.
    t.write_user("\n");
    req.remove = false;
    run(&req).unwrap();
    req.remove = true;
    let r = run(&req).unwrap();
    assert!(!r.deleted);
    assert_eq!(t.read_user(), "\n");
}

#[test]
fn remove_by_url_alone_takes_the_key_named_after_its_host() {
    let t = T::new("");
    let cachix_key = "team.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let shared_key = "shared.example-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let original = "# mine\nextra-trusted-public-keys = other.example-12:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n";
    t.write_user(original);
    let req = t.req(&[
        ("https://team.cachix.org", cachix_key),
        ("https://shared.example/a", shared_key),
        ("https://shared.example/b", shared_key),
    ]);
    run(&req).unwrap();
    // `--remove --cachix team` (no key): the substituter and its key go.
    let mut rm = t.req(&[("https://team.cachix.org", "")]);
    rm.remove = true;
    let r = run(&rm).unwrap();
    assert_eq!(r.caches[0].status, CacheStatus::Removed);
    assert_eq!(r.caches[0].public_key, cachix_key);
    assert!(
        !t.read_user().contains("team.cachix.org"),
        "{}",
        t.read_user()
    );
    // A key still needed by another substituter on the same host stays.
    let mut rm = t.req(&[("https://shared.example/a", "")]);
    rm.remove = true;
    let r = run(&rm).unwrap();
    assert_eq!(r.caches[0].public_key, "");
    assert!(t.read_user().contains(shared_key), "{}", t.read_user());
    let mut rm = t.req(&[("https://shared.example/b", "")]);
    rm.remove = true;
    run(&rm).unwrap();
    // Only keys named after the host ever go: the user's own key line is untouched.
    assert_eq!(t.read_user(), original);
}

#[test]
fn remove_on_a_fresh_account_creates_nothing() {
    let t = T::new("");
    let mut req = t.req(&[("http://a.example", KEY_A)]);
    req.remove = true;
    let r = run(&req).unwrap();
    assert!(!r.changed && r.caches[0].status == CacheStatus::NotPresent);
    assert!(
        !t.dir.path().join("cfg").exists(),
        "a directory was created"
    );
}

#[test]
fn remove_says_how_to_take_out_a_cache_set_in_another_file() {
    let t = T::new("extra-substituters = http://a.example\n");
    let mut req = t.req(&[("http://a.example", KEY_A)]);
    req.remove = true;
    let r = run(&req).unwrap();
    assert_eq!(r.exit_code, ExitCode::NotInEffect);
    let sys = t.dir.path().join("etc/nix.conf");
    let want = format!(
        "still in effect from {}:1: take it out there too: setup-cache --remove --file {} --url http://a.example --public-key {KEY_A}",
        sys.display(),
        sys.display()
    );
    assert!(r.human().contains(&want), "{}", r.human());
}

#[test]
fn remove_keeps_an_emptied_file_that_a_plain_include_needs() {
    // Nix stops when a file named by `include` is missing; `!include` skips it.
    for (include, kept) in [("include", true), ("!include", false)] {
        let t = T::new(&format!("{include} extra.conf\n"));
        let extra = t.dir.path().join("etc/extra.conf");
        let mut req = t.req(&[("http://a.example", KEY_A)]);
        req.target = Target::File(extra.clone());
        run(&req).unwrap();
        req.remove = true;
        let r = run(&req).unwrap();
        assert_eq!(r.caches[0].status, CacheStatus::Removed);
        assert_eq!((r.deleted, extra.exists()), (!kept, kept), "{include}");
        if kept {
            assert_eq!(fs::read_to_string(&extra).unwrap(), "");
        }
    }
}

#[test]
fn a_store_nix_cannot_parse_is_located_at_its_line() {
    let t = T::new("substituters = https://cache.nixos.org/\n");
    let user = t.user();
    fs::create_dir_all(user.parent().unwrap()).unwrap();
    fs::write(
        &user,
        "# mine\nextra-substituters = \"https://x.cachix.org\"\n",
    )
    .unwrap();
    let layers = nixconf::load(&t.env);
    // Nix 2.34's wording, and Nix 2.8's.
    for msg in [
        "`nix --version` failed (exit status 1):\n  error: Cannot parse Nix store '\"https://x.cachix.org\"'",
        "error: don't know how to open Nix store '\"https://x.cachix.org\"'",
    ] {
        assert_eq!(
            super::locate_nix_error(&layers, msg),
            Some(format!("{}:2", user.display())),
            "{msg}"
        );
    }
    assert_eq!(
        super::locate_nix_error(&layers, "error: something else"),
        None
    );
}

/// Add then remove, through `run` on the user file; returns (after add, after remove).
fn add_then_remove(original: &str, caches: &[(&str, &str)]) -> (String, Option<String>) {
    let t = T::new("substituters =\n");
    t.write_user(original);
    let mut req = t.req(caches);
    let r = run(&req).unwrap();
    assert_eq!(r.exit_code, ExitCode::Ok, "{}", r.human());
    let added = t.read_user();
    req.remove = true;
    let r = run(&req).unwrap();
    assert!(
        r.caches.iter().all(|c| c.status == CacheStatus::Removed),
        "{}",
        r.human()
    );
    (added, fs::read_to_string(t.user()).ok())
}

#[test]
fn a_users_empty_extra_line_is_never_edited_nor_deleted() {
    for original in [
        "extra-substituters = # team caches go here\n",
        "extra-substituters = # team caches go here",
        "# mine\r\nextra-substituters =\r\nextra-trusted-public-keys = # keys\r\n",
    ] {
        let (added, removed) = add_then_remove(original, &[("http://a.example", KEY_A)]);
        assert!(
            added.starts_with(original.trim_end_matches(['\r', '\n'])),
            "{added:?}"
        );
        assert!(
            added.contains(&format!("extra-substituters = http://a.example {MARK}")),
            "{added:?}"
        );
        assert_eq!(removed.as_deref(), Some(original), "{original:?}");
    }
}

#[test]
fn a_lone_cr_at_the_end_survives_add_and_remove() {
    for original in [
        "a = b\r",
        "\r",
        "a = b\r\nc = d\r",
        "x = 1\n\r",
        "a = b\r\r",
    ] {
        let (_, removed) = add_then_remove(original, &[("http://a.example", KEY_A)]);
        assert_eq!(removed.as_deref(), Some(original), "{original:?}");
    }
}

#[test]
fn values_the_user_wrote_survive_add_and_remove() {
    // Written, but reset by a later plain `substituters =` / `trusted-public-keys =`.
    let original = format!(
        "extra-substituters = http://a.example\nextra-trusted-public-keys = {KEY_A}\nsubstituters = https://cache.nixos.org/\ntrusted-public-keys = k:1\n"
    );
    let (added, removed) = add_then_remove(&original, &[("http://a.example", KEY_A)]);
    assert!(added.starts_with(&original), "{added}");
    assert_eq!(removed.as_deref(), Some(original.as_str()));
    // The URL is the user's and in effect, only the key is missing: the key is added,
    // and --remove takes out what the add wrote and nothing of the user's.
    let original = "extra-substituters = http://a.example/ # ours\n";
    let (added, removed) = add_then_remove(original, &[("http://a.example", KEY_A)]);
    assert_eq!(
        added,
        format!("{original}extra-trusted-public-keys = {KEY_A} {MARK}\n")
    );
    assert_eq!(removed.as_deref(), Some(original));
}

#[test]
fn added_lines_are_marked_and_the_tool_appends_only_to_its_own() {
    let t = T::new("substituters =\n");
    t.write_user("extra-substituters = http://x.example # mine\n");
    run(&t.req(&[("http://a.example", KEY_A)])).unwrap();
    let first = t.read_user();
    assert_eq!(
        first,
        format!(
            "extra-substituters = http://x.example # mine\nextra-substituters = http://a.example {MARK}\nextra-trusted-public-keys = {KEY_A} {MARK}\n"
        )
    );
    run(&t.req(&[("http://b.example", KEY_B)])).unwrap();
    assert_eq!(
        t.read_user(),
        format!(
            "extra-substituters = http://x.example # mine\nextra-substituters = http://a.example http://b.example {MARK}\nextra-trusted-public-keys = {KEY_A} {KEY_B} {MARK}\n"
        )
    );
    let mut rm = t.req(&[("http://b.example", KEY_B)]);
    rm.remove = true;
    run(&rm).unwrap();
    assert_eq!(t.read_user(), first);
}

#[test]
fn remove_of_a_value_the_user_wrote_takes_it_out_of_their_lines() {
    // Not added by setup-cache (no marked line has it): removed from the user's lines;
    // a line left without a value goes, one that still has values keeps its comment.
    let t = T::new("substituters =\n");
    t.write_user(&format!(
        "extra-substituters = http://x.example http://a.example # mine\nextra-trusted-public-keys = {KEY_A} # key\nextra-substituters = # empty\n"
    ));
    let mut rm = t.req(&[("http://a.example", KEY_A)]);
    rm.remove = true;
    let r = run(&rm).unwrap();
    assert_eq!(r.caches[0].status, CacheStatus::Removed);
    assert_eq!(
        t.read_user(),
        "extra-substituters = http://x.example # mine\nextra-substituters = # empty\n"
    );
}

mod lossless {
    //! Property: `--remove` after an add gives back the original bytes. The exceptions
    //! are documented: a cache the add did not write at all (already in effect, or only
    //! in this file and overridden so that nothing here helps) is taken out of the
    //! user's own lines, and one an earlier run added (on marked lines) out of those,
    //! exactly as `--remove` alone would.
    use super::*;
    use proptest::prelude::*;

    const CACHES: [(&str, &str); 3] = [
        ("http://a.example", KEY_A),
        ("http://b.example", KEY_B),
        (
            "https://c.example/sub",
            "c.example-1:Iq8o8qFFDF1sNYmpx0wwRkaOPL5K4DuKxHwRpn1gQbE=",
        ),
    ];

    fn line() -> impl Strategy<Value = String> {
        let cache = || (0..CACHES.len()).prop_map(|i| CACHES[i]);
        prop_oneof![
            Just("extra-substituters = # team caches go here".to_owned()),
            Just("extra-substituters =".to_owned()),
            Just("extra-trusted-public-keys = # keys".to_owned()),
            Just("substituters = https://cache.nixos.org/".to_owned()),
            Just("substituters =".to_owned()),
            Just("trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=".to_owned()),
            Just("# a comment".to_owned()),
            Just(String::new()),
            Just(" \t".to_owned()),
            Just("\r".to_owned()),
            Just("a = b".to_owned()),
            Just("!include extra.conf".to_owned()),
            Just("include extra.conf".to_owned()),
            cache().prop_map(|(u, _)| format!("extra-substituters = {u}")),
            cache().prop_map(|(u, _)| format!("extra-substituters = {u}/ # mine")),
            cache().prop_map(|(u, _)| format!("binary-caches = {u} https://cache.nixos.org")),
            cache().prop_map(|(u, _)| format!("substituters = https://x.example {u}")),
            cache().prop_map(|(_, k)| format!("extra-trusted-public-keys = {k}")),
            cache().prop_map(|(_, k)| format!("trusted-public-keys = {k}\t# key")),
            cache().prop_map(|(_, k)| format!("extra-binary-cache-public-keys = k:1 {k}")),
            // Lines an earlier run of setup-cache wrote.
            cache().prop_map(|(u, _)| format!("extra-substituters = {u} {MARK}")),
            cache().prop_map(|(_, k)| format!("extra-trusted-public-keys = {k} {MARK}")),
            Just(format!("extra-substituters = http://old.example {MARK}")),
        ]
    }

    fn file() -> impl Strategy<Value = String> {
        let eol = prop_oneof![Just("\n"), Just("\r\n"), Just("\r\n"), Just("\n")];
        let last = prop_oneof![
            Just("\n"),
            Just("\r\n"),
            Just(""),
            Just("\r"),
            Just("\r\n\r")
        ];
        (
            prop::collection::vec((line(), eol, any::<bool>()), 0..8),
            last,
        )
            .prop_map(|(lines, last)| {
                let mut s = String::new();
                for (l, e, cr) in lines {
                    s.push_str(&l);
                    if cr {
                        // A lone CR inside a line (before its ending).
                        s.push('\r');
                    }
                    s.push_str(e);
                }
                s.push_str(last);
                s
            })
    }

    struct Case {
        t: T,
        include: String,
    }

    fn setup(original: &str, include: &str, nix_config: bool) -> Case {
        let mut t = T::new("substituters =\n");
        if nix_config {
            t.env.nix_config = Some("substituters = https://only.example".into());
        }
        t.write_user(original);
        fs::write(t.user().with_file_name("extra.conf"), include).unwrap();
        Case {
            t,
            include: include.to_owned(),
        }
    }

    fn req_for(c: &Case, picked: &[usize], remove: bool) -> Request {
        let caches: Vec<(&str, &str)> = picked.iter().map(|&i| CACHES[i]).collect();
        let mut r = c.t.req(&caches);
        r.remove = remove;
        r
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn add_then_remove_gives_back_the_original_bytes(
            original in file(),
            include in file(),
            picked in prop::sample::subsequence(vec![0usize, 1, 2], 1..=3),
            nix_config in prop::bool::weighted(0.15),
        ) {
            let c = setup(&original, &include, nix_config);
            let add = run(&req_for(&c, &picked, false)).unwrap();
            if !nix_config {
                prop_assert_eq!(add.exit_code, ExitCode::Ok, "{}", add.human());
            }
            let added = c.t.read_user();
            // Idempotent: a second add writes nothing.
            let again = run(&req_for(&c, &picked, false)).unwrap();
            prop_assert!(!again.changed, "second add changed:\n{}", again.diff);
            prop_assert_eq!(&c.t.read_user(), &added);

            // Caches the add did not write, and caches an earlier run of setup-cache
            // added (on marked lines already): `--remove` takes these out as it would
            // without the add; everything else goes back to the original bytes. A cache
            // whose URL this add wrote, though an earlier run marked its key, got its own
            // copy of the key: that one goes back to the original bytes too.
            let orig_conf = NixConf::parse(&original);
            let added_conf = NixConf::parse(&added);
            let not_written: Vec<usize> = picked
                .iter()
                .zip(&add.caches)
                .filter(|(i, r)| {
                    let (url, key) = CACHES[**i];
                    let spec = CacheSpec { url: url.into(), public_key: key.into(), token_env: None };
                    let url_written = !on_marked_line(&orig_conf, SUBS, url)
                        && count_values(&added_conf, SUBS, url) > count_values(&orig_conf, SUBS, url);
                    r.status != CacheStatus::Added || (added_here(&orig_conf, &spec) && !url_written)
                })
                .map(|(&i, _)| i)
                .collect();
            let expect = if not_written.is_empty() {
                Some(original.clone())
            } else {
                // What `--remove` of those caches alone does to the original.
                let e = setup(&original, &include, nix_config);
                run(&req_for(&e, &not_written, true)).unwrap();
                fs::read_to_string(e.t.user()).ok()
            };
            let rm = run(&req_for(&c, &picked, true)).unwrap();
            let got = fs::read_to_string(c.t.user()).ok();
            // An empty file that `--remove` empties again is deleted (documented).
            let got = if original.is_empty() { got.or_else(|| Some(String::new())) } else { got };
            prop_assert_eq!(got, expect, "after add:\n{:?}\nremove: {}", added, rm.human());
            // The included file is never touched.
            prop_assert_eq!(fs::read_to_string(c.t.user().with_file_name("extra.conf")).unwrap(), c.include.clone());
        }

        /// One cache per run, as a user adds them over time, then removed one by one in
        /// any order: the original bytes again, whenever every add wrote its cache.
        #[test]
        fn adds_and_removes_in_any_order_give_back_the_original_bytes(
            original in file(),
            include in file(),
            order in Just(vec![0usize, 1, 2]).prop_shuffle(),
            removal in Just(vec![0usize, 1, 2]).prop_shuffle(),
        ) {
            let orig_conf = NixConf::parse(&original);
            let c = setup(&original, &include, false);
            let mut all_added = true;
            for &i in &order {
                let r = run(&req_for(&c, &[i], false)).unwrap();
                prop_assert_eq!(r.exit_code, ExitCode::Ok, "{}", r.human());
                let spec = CacheSpec { url: CACHES[i].0.into(), public_key: CACHES[i].1.into(), token_env: None };
                all_added &= r.caches[0].status == CacheStatus::Added && !added_here(&orig_conf, &spec);
            }
            let added = c.t.read_user();
            for &i in &removal {
                run(&req_for(&c, &[i], true)).unwrap();
            }
            if all_added {
                let got = fs::read_to_string(c.t.user()).ok().unwrap_or_default();
                prop_assert_eq!(got, original, "after the adds:\n{:?}", added);
            }
        }
    }
}

#[test]
fn a_setting_value_nix_rejects_is_located_at_the_line_that_sets_it() {
    let t = T::new("require-sigs = maybe\ncores = 2\n");
    let user = t.user();
    fs::create_dir_all(user.parent().unwrap()).unwrap();
    fs::write(&user, "# mine\ncores = lots\n").unwrap();
    let layers = nixconf::load(&t.env);
    let system = t.dir.path().join("etc/nix.conf");
    // Every Nix names the setting and the value, never the line.
    for (msg, at) in [
        (
            "error: Boolean setting 'require-sigs' has invalid value 'maybe'",
            format!("{}:1", system.display()),
        ),
        (
            "error: setting 'cores' has invalid value 'lots'",
            format!("{}:2", user.display()),
        ),
    ] {
        assert_eq!(super::locate_nix_error(&layers, msg), Some(at), "{msg}");
    }
}

/// Runs `req` as an add or a remove and returns the user file afterwards (`None`:
/// deleted).
fn step(t: &T, caches: &[(&str, &str)], remove: bool) -> Option<String> {
    let mut req = t.req(caches);
    req.remove = remove;
    let r = run(&req).unwrap();
    assert!(
        matches!(r.exit_code, ExitCode::Ok),
        "{:?}: {}",
        r.exit_code,
        r.human()
    );
    fs::read_to_string(t.user()).ok()
}

/// Two caches that share one key (a cache at two URLs): removing one leaves the other
/// its key, in either order, and removing both gives back the original bytes.
#[test]
fn a_key_two_added_caches_share_stays_until_both_are_removed() {
    let keys_of = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("extra-trusted-public-keys"))
            .flat_map(|l| {
                l.split_whitespace()
                    .skip(2)
                    .take_while(|w| !w.starts_with('#'))
            })
            .filter(|w| *w == KEY_A)
            .count()
    };
    for first_removed in ["http://a.example", "http://b.example"] {
        let t = T::new("substituters =\n");
        let original = "# mine\n";
        t.write_user(original);
        step(&t, &[("http://a.example", KEY_A)], false);
        step(&t, &[("http://b.example", KEY_A)], false);
        let after = step(&t, &[(first_removed, KEY_A)], true).unwrap();
        assert_eq!(keys_of(&after), 1, "{first_removed}: {after}");
        let other = if first_removed.contains("a.") {
            "http://b.example"
        } else {
            "http://a.example"
        };
        assert!(after.contains(other), "{after}");
        let end = step(&t, &[(other, KEY_A)], true);
        assert_eq!(end.as_deref(), Some(original), "{first_removed}");
    }
    // Both in one run, then each alone.
    let t = T::new("substituters =\n");
    t.write_user("");
    step(
        &t,
        &[("http://a.example", KEY_A), ("http://b.example", KEY_A)],
        false,
    );
    let after = step(&t, &[("http://a.example", KEY_A)], true).unwrap();
    assert_eq!(keys_of(&after), 1, "{after}");
    assert_eq!(step(&t, &[("http://b.example", KEY_A)], true), None);
}

/// A key of the same name but another number goes with a cache only when it is that
/// cache's rotated key: named after its host, or no other cache setup-cache added is left
/// that could use it — never another cache's key that merely shares the name.
#[test]
fn removing_a_cache_keeps_another_caches_key_of_the_same_name() {
    const M1: &str = "mycache-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    const M2: &str = "mycache-2:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let t = T::new("substituters =\n");
    t.write_user("# x\n");
    step(&t, &[("https://a.example", M1)], false);
    step(&t, &[("https://b.example", M2)], false);
    let after = step(&t, &[("https://a.example", M1)], true).unwrap();
    assert!(
        after.contains(M2) && after.contains("https://b.example"),
        "{after}"
    );
    assert!(!after.contains(M1), "{after}");
    assert_eq!(
        step(&t, &[("https://b.example", M2)], true).as_deref(),
        Some("# x\n")
    );
    // A real rotation: the same cache, its key replaced; removing it takes both out.
    let t = T::new("substituters =\n");
    t.write_user("# x\n");
    step(&t, &[("https://a.example", M1)], false);
    step(&t, &[("https://a.example", M2)], false);
    assert_eq!(
        step(&t, &[("https://a.example", M2)], true).as_deref(),
        Some("# x\n")
    );
    // Rotated keys named after the host go with it even when other caches stay.
    const A1: &str = "a.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
    const A2: &str = "a.example-2:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4=";
    let t = T::new("substituters =\n");
    t.write_user("# x\n");
    step(&t, &[("https://a.example", A1)], false);
    step(&t, &[("https://a.example", A2)], false);
    step(&t, &[("https://c.example", KEY_B)], false);
    let after = step(&t, &[("https://a.example", A2)], true).unwrap();
    assert!(!after.contains(A1) && !after.contains(A2), "{after}");
    assert!(after.contains(KEY_B), "{after}");
}

/// A URL with a password lands in nix.conf, which others may read: a warning saying how
/// to keep it private; none when the file is the user's alone (mode 0600).
#[test]
fn a_password_in_the_url_is_warned_about_where_others_may_read_it() {
    use std::os::unix::fs::PermissionsExt;
    let url = "https://u:hunter2pw@a.example";
    let t = T::new("substituters =\n");
    let r = run(&t.req(&[(url, KEY_A)])).unwrap();
    let w = r.warnings.join("\n");
    assert!(
        w.contains("holds a password") && w.contains("--token-env"),
        "{w}"
    );
    assert!(!w.contains("hunter2pw"), "{w}");
    let t = T::new("substituters =\n");
    t.write_user("# mine\n");
    fs::set_permissions(t.user(), fs::Permissions::from_mode(0o600)).unwrap();
    let r = run(&t.req(&[(url, KEY_A)])).unwrap();
    assert!(
        !r.warnings.iter().any(|w| w.contains("holds a password")),
        "{:?}",
        r.warnings
    );
}
