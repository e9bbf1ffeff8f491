#![allow(clippy::unwrap_used)]

use super::doc::classify;
use super::*;
use proptest::prelude::*;
use std::path::PathBuf;

#[test]
fn classifies_like_nix() {
    let text = "\
# comment
\t
substituters = https://a/ https://b/   # trailing
extra-binary-caches = https://c/
a=b
a =b
a= b
lonely
key =
include other.conf
!include  maybe.conf
include = x
value = https://x/#frag
";
    let c = NixConf::parse(text);
    let kinds: Vec<&LineKind> = c.lines().iter().map(|l| &l.kind).collect();
    assert_eq!(kinds[0], &LineKind::Comment);
    assert_eq!(kinds[1], &LineKind::Blank);
    let s = c.lines()[2].setting().unwrap();
    assert_eq!(
        (s.key.as_str(), s.name.as_str(), s.is_extra),
        ("substituters", "substituters", false)
    );
    assert_eq!(s.values, ["https://a/", "https://b/"]);
    let s = c.lines()[3].setting().unwrap();
    assert_eq!((s.name.as_str(), s.is_extra), ("substituters", true));
    assert!(matches!(
        kinds[4],
        LineKind::Invalid(Invalid::SingleToken { .. })
    ));
    assert!(matches!(
        kinds[5],
        LineKind::Invalid(Invalid::NoEquals { .. })
    ));
    assert!(matches!(
        kinds[6],
        LineKind::Invalid(Invalid::NoEquals { .. })
    ));
    assert!(matches!(
        kinds[7],
        LineKind::Invalid(Invalid::SingleToken { .. })
    ));
    assert_eq!(c.lines()[8].setting().unwrap().values, Vec::<String>::new());
    assert_eq!(
        kinds[9],
        &LineKind::Include {
            optional: false,
            path: "other.conf".into()
        }
    );
    assert_eq!(
        kinds[10],
        &LineKind::Include {
            optional: true,
            path: "maybe.conf".into()
        }
    );
    assert!(matches!(
        kinds[11],
        LineKind::Invalid(Invalid::BadInclude { words: 2 })
    ));
    assert_eq!(c.lines()[12].setting().unwrap().values, ["https://x/"]);
    assert_eq!(c.lines()[4].number, 5);
    let msg = match kinds[4] {
        LineKind::Invalid(i) => i.to_string(),
        _ => unreachable!(),
    };
    assert!(msg.contains("`a = VALUE`"), "{msg}");
    assert_eq!(c.render(), text);
}

#[test]
fn crlf_and_no_final_newline_survive() {
    let text = "a = b\r\nc = d\r\n\r\n# x\r\ne = f";
    let c = NixConf::parse(text);
    assert_eq!(c.render(), text);
    assert_eq!(c.newline(), "\r\n");
    assert!(!c.ends_with_newline());
    assert_eq!(c.lines()[4].setting().unwrap().values, ["f"]);
}

#[test]
fn append_then_remove_restores_bytes() {
    for text in ["", "a = b", "a = b\n", "a = b\r\nc = d", "x = y\r\n"] {
        let mut c = NixConf::parse(text);
        let n = c.append_line("extra-substituters = https://new/");
        assert!(c.render().contains("extra-substituters = https://new/"));
        assert_eq!(
            c.ends_with_newline(),
            NixConf::parse(text).ends_with_newline() || text.is_empty()
        );
        c.remove_line(n);
        assert_eq!(c.render(), text, "{text:?}");
    }
}

/// The edit is written, and the next run parses the file again before removing the line:
/// that must give back the original bytes too (a lone CR at the end once merged with the
/// added LF into a CRLF ending and was lost).
#[test]
fn append_write_parse_remove_restores_bytes() {
    for text in [
        "a = b\r",
        "\r",
        "a = b\r\nc = d\r",
        "x\n\r",
        "a = b\r\r",
        "a\r\nb",
    ] {
        let mut c = NixConf::parse(text);
        c.append_line("extra-substituters = https://new/");
        c.append_line("extra-trusted-public-keys = k:1");
        let mut again = NixConf::parse(&c.render());
        assert_eq!(
            again.lines()[again.lines().len() - 2].content,
            "extra-substituters = https://new/"
        );
        let n = again.lines().len();
        again.remove_line(n);
        again.remove_line(n - 1);
        assert_eq!(again.render(), text, "{text:?}");
    }
}

#[test]
fn append_values_keeps_comment_and_spacing() {
    let text = "extra-substituters =\thttps://a/   # mine\r\nnext = 1\n";
    let mut c = NixConf::parse(text);
    c.append_values(1, &["https://b/", "https://c/"]);
    assert_eq!(
        c.lines()[0].content,
        "extra-substituters =\thttps://a/ https://b/ https://c/   # mine"
    );
    assert_eq!(c.lines()[0].eol, "\r\n");
    assert_eq!(c.lines()[0].setting().unwrap().values.len(), 3);
    assert_eq!(
        c.remove_values(1, |v| v == "https://b/" || v == "https://c/"),
        2
    );
    assert_eq!(c.render(), text);
    // Removing the first value takes the gap after it.
    let mut c = NixConf::parse("k = a b c\n");
    c.remove_values(1, |v| v == "a");
    assert_eq!(c.render(), "k = b c\n");
    let mut c = NixConf::parse("k = a a b\n");
    assert_eq!(c.remove_values(1, |v| v == "a"), 2);
    assert_eq!(c.render(), "k = b\n");
}

fn tmp_env() -> (tempfile::TempDir, Env) {
    let d = tempfile::tempdir().unwrap();
    let env = Env {
        nix_conf_dir: Some(d.path().join("etc")),
        xdg_config_home: Some(d.path().join("cfg")),
        xdg_config_dirs: Some(d.path().join("xdg").into_os_string()),
        home: Some(d.path().join("home")),
        ..Env::default()
    };
    (d, env)
}

fn write(p: &std::path::Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn layers_order_includes_and_effective() {
    let (d, mut env) = tmp_env();
    write(
        &d.path().join("etc/nix.conf"),
        "substituters = https://sys/\ntrusted-users = root @wheel\n!include nix.custom.conf\ninclude missing.conf\n",
    );
    write(
        &d.path().join("etc/nix.custom.conf"),
        "extra-substituters = https://custom/\n",
    );
    write(
        &d.path().join("xdg/nix/nix.conf"),
        "extra-substituters = https://xdgdirs/\n",
    );
    write(
        &d.path().join("cfg/nix/nix.conf"),
        "extra-binary-caches = https://user/\n",
    );
    let l = load(&env);
    let kinds: Vec<LayerKind> = l.roots.iter().map(|&i| l.files[i].kind).collect();
    assert_eq!(
        kinds,
        [LayerKind::System, LayerKind::XdgConfigDirs, LayerKind::User]
    );
    assert!(
        matches!(&l.errors[..], [LoadError::MissingInclude { line: 4, .. }]),
        "{:?}",
        l.errors
    );
    let subs: Vec<String> = l
        .effective("substituters")
        .into_iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(
        subs,
        [
            "https://sys/",
            "https://custom/",
            "https://xdgdirs/",
            "https://user/"
        ]
    );
    let user = &l.effective("substituters")[3];
    assert_eq!(
        (user.file.clone().unwrap(), user.line),
        (d.path().join("cfg/nix/nix.conf"), 1)
    );
    let custom = &l.effective("substituters")[1];
    let ci = l.file_index(&d.path().join("etc/nix.custom.conf")).unwrap();
    assert_eq!(l.files[ci].kind, LayerKind::Include);
    assert_eq!(custom.line, 1);
    assert!(l.files[ci].describe(&l).contains("nix.conf:3"));
    assert_eq!(l.effective("trusted-users").len(), 2);
    let keys = l.effective("trusted-public-keys");
    assert_eq!((keys.len(), keys[0].file.is_none()), (1, true));

    // NIX_CONFIG comes last; a plain set there resets everything before.
    env.nix_config = Some("substituters = https://env/\nextra-substituters = https://env2/".into());
    let l = load(&env);
    let subs: Vec<String> = l
        .effective("substituters")
        .into_iter()
        .map(|s| s.value)
        .collect();
    assert_eq!(subs, ["https://env/", "https://env2/"]);

    // NIX_USER_CONF_FILES replaces the XDG files; the first entry has the highest priority.
    env.nix_config = None;
    write(&d.path().join("u1.conf"), "substituters = https://first/\n");
    write(
        &d.path().join("u2.conf"),
        "substituters = https://second/\n",
    );
    env.nix_user_conf_files = Some(
        format!(
            "{}:{}",
            d.path().join("u1.conf").display(),
            d.path().join("u2.conf").display()
        )
        .into(),
    );
    let l = load(&env);
    assert_eq!(l.effective("substituters")[0].value, "https://first/");
    assert_eq!(env.default_user_file().unwrap(), d.path().join("u1.conf"));
}

#[test]
fn include_cycles_are_reported_not_followed() {
    let (d, env) = tmp_env();
    write(&d.path().join("etc/nix.conf"), "include a.conf\n");
    write(&d.path().join("etc/a.conf"), "include nix.conf\nx = 1\n");
    let l = load(&env);
    assert!(
        l.errors
            .iter()
            .any(|e| matches!(e, LoadError::IncludeCycle { .. })),
        "{:?}",
        l.errors
    );
}

#[test]
fn default_user_file_follows_xdg_then_home() {
    let env = Env {
        home: Some(PathBuf::from("/h")),
        ..Env::default()
    };
    assert_eq!(
        env.default_user_file().unwrap(),
        PathBuf::from("/h/.config/nix/nix.conf")
    );
    let env = Env {
        home: Some(PathBuf::from("/h")),
        xdg_config_home: Some("/x".into()),
        ..Env::default()
    };
    assert_eq!(
        env.default_user_file().unwrap(),
        PathBuf::from("/x/nix/nix.conf")
    );
    assert_eq!(
        Env::default().system_file(),
        PathBuf::from("/etc/nix/nix.conf")
    );
}

fn conf_text() -> impl Strategy<Value = String> {
    // Lines built from pieces that matter to the parser, plus arbitrary text.
    let piece = prop_oneof![
        Just("substituters".to_owned()),
        Just("extra-substituters".to_owned()),
        Just("include".to_owned()),
        Just("!include".to_owned()),
        Just("=".to_owned()),
        Just("#".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n".to_owned()),
        Just("\n".to_owned()),
        Just("https://x/".to_owned()),
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn parse_render_identity_structured(text in conf_text()) {
        prop_assert_eq!(NixConf::parse(&text).render(), text);
    }

    #[test]
    fn parse_render_identity_arbitrary(text in any::<String>()) {
        prop_assert_eq!(NixConf::parse(&text).render(), text);
    }

    #[test]
    fn edits_touch_only_their_lines(text in conf_text(), pick in any::<prop::sample::Index>()) {
        let orig = NixConf::parse(&text);
        // Appending a line keeps every existing line's content.
        let mut c = orig.clone();
        let n = c.append_line("extra-substituters = https://new/");
        for l in orig.lines() {
            prop_assert_eq!(&c.lines()[l.number - 1].content, &l.content);
        }
        prop_assert_eq!(c.line(n).unwrap().setting().unwrap().values.clone(), vec!["https://new/".to_owned()]);
        c.remove_line(n);
        prop_assert_eq!(c.render(), text.clone());
        // Also when the file is written and parsed again in between.
        let mut c = orig.clone();
        let n = c.append_line("extra-substituters = https://new/");
        let mut c = NixConf::parse(&c.render());
        prop_assert_eq!(c.lines().len(), n);
        c.remove_line(n);
        prop_assert_eq!(c.render(), text.clone());

        // Appending values to one setting line changes that line only, and removing
        // them restores it.
        let settings: Vec<usize> = orig.settings().map(|(l, _)| l.number).collect();
        if !settings.is_empty() {
            let target = settings[pick.index(settings.len())];
            let mut c = orig.clone();
            c.append_values(target, &["https://added-1/", "https://added-2/"]);
            for l in orig.lines() {
                if l.number != target {
                    prop_assert_eq!(c.line(l.number).unwrap().raw(), l.raw());
                }
            }
            let before = orig.line(target).unwrap().setting().unwrap().values.clone();
            let after = c.line(target).unwrap().setting().unwrap().values.clone();
            prop_assert_eq!(&after[..before.len()], &before[..]);
            prop_assert_eq!(&after[before.len()..], &["https://added-1/".to_owned(), "https://added-2/".to_owned()][..]);
            c.remove_values(target, |v| v.starts_with("https://added-"));
            prop_assert_eq!(c.render(), text);
        }
    }
}

#[test]
fn invalid_lines_say_what_to_write() {
    let msg = |line: &str| match classify(line) {
        LineKind::Invalid(i) => i.to_string(),
        other => panic!("{line}: {other:?}"),
    };
    assert!(msg("a=b").contains("write `a = VALUE`"), "{}", msg("a=b"));
    assert!(msg("a =b").contains("write `a = VALUE`"));
    assert!(msg("a= b").contains("write `a = VALUE`"));
    assert!(msg("a b").contains("write `a = VALUE`"));
    assert!(msg("include").contains("exactly one path"));
    // A value is never echoed (it may be a token, a line of a key file or of
    // /proc/self/environ), nor a word that is not a setting's name.
    for (line, secret) in [
        ("access-tokens=github.com=ghp_LEAKA", "ghp_LEAKA"),
        ("access-tokens =github.com=ghp_LEAKB", "ghp_LEAKB"),
        ("ghp_RAWTOKEN0123456789abcdefghijklmnop", "RAWTOKEN"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "OPENSSH"),
        (
            "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==",
            "b3BlbnNzaC1rZXkt",
        ),
        ("GITHUB_TOKEN=ghs_ENVSECRET", "ghs_ENVSECRET"),
        ("password hunter2", "hunter2"),
    ] {
        assert!(!msg(line).contains(secret), "{line}: {}", msg(line));
    }
    assert!(msg("-----BEGIN OPENSSH PRIVATE KEY-----").contains("not a setting name"));
}

#[test]
fn empty_variables_mean_what_they_mean_to_nix() {
    let env = Env {
        home: Some(PathBuf::from("/h")),
        xdg_config_home: Some(PathBuf::new()),
        xdg_config_dirs: Some(Default::default()),
        ..Env::default()
    };
    assert_eq!(
        env.user_files(),
        [(PathBuf::from("/nix/nix.conf"), LayerKind::User)]
    );
    assert!(env.xdg_config_home_is_empty());
    let env = Env {
        nix_user_conf_files: Some(Default::default()),
        ..env
    };
    assert!(env.user_files().is_empty());
    assert_eq!(env.default_user_file(), None);
}
