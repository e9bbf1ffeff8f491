//! setup-cache under hostile input (issue 8): special files where a nix.conf, an
//! include, a netrc or a cache.toml should be, files too big to read, include cycles,
//! symlinks, planted secrets, stale temporary files, another run holding the lock, keys
//! and URLs that would write a broken line. Every run is bounded in time
//! ([`run_bounded`]) and every file touched is in a temporary directory.
#![allow(clippy::unwrap_used)]
#[path = "support/setup_daemon.rs"]
mod setup_daemon;
mod support;

use serde_json::Value;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_setup-cache");
const KEY: &str = "team.example-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
const URL: &str = "https://team.example";

fn tool(env: &NixEnv, args: &[&str]) -> Command {
    let mut c = env.command(BIN);
    c.args(args);
    c
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", stdout(out), stderr(out)))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn special_files_as_target_are_refused_and_left_alone() {
    require_nix();
    let env = NixEnv::new();
    let dir = env.path().join("special");
    std::fs::create_dir(&dir).unwrap();
    let dev = dir.join("devnode");
    mknod_null(&dev);
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let sock = dir.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let subdir = dir.join("adir");
    std::fs::create_dir(&subdir).unwrap();
    let before = listing(&dir);
    for (path, what) in [
        (&dev, "character device"),
        (&fifo, "FIFO"),
        (&sock, "socket"),
        (&subdir, "directory"),
    ] {
        let p = path.to_str().unwrap();
        for extra in [&[][..], &["--remove"][..], &["--dry-run"][..]] {
            let mut args = vec!["--file", p, "--url", URL, "--public-key", KEY];
            args.extend_from_slice(extra);
            let out = run_bounded(&mut tool(&env, &args), 30);
            assert_eq!(out.status.code(), Some(1), "{what} {extra:?}: {out:?}");
            let err = stderr(&out);
            assert!(err.contains(p) && err.contains(what), "{what}: {err}");
        }
    }
    // Nothing was written: no backup beside them, the device is still a device.
    assert_eq!(listing(&dir), before);
    assert!(
        std::fs::symlink_metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn a_fifo_or_device_as_the_default_target_netrc_or_cache_toml_never_hangs() {
    require_nix();
    // The user nix.conf itself is a FIFO.
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    mkfifo(&env.user_conf());
    let out = run_bounded(&mut tool(&env, &["--url", URL, "--public-key", KEY]), 30);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("FIFO"), "{}", stderr(&out));

    // The netrc a private cache would be written to is a FIFO.
    let env = NixEnv::new();
    let netrc = env.user_conf().with_file_name("netrc");
    std::fs::create_dir_all(netrc.parent().unwrap()).unwrap();
    mkfifo(&netrc);
    let mut c = tool(
        &env,
        &["--url", URL, "--public-key", KEY, "--token-env", "T"],
    );
    c.env("T", "tok");
    let out = run_bounded(&mut c, 30);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("netrc"), "{}", stderr(&out));
    assert!(
        !env.user_conf().exists(),
        "nix.conf written though the netrc failed"
    );

    // cache.toml given with --config is a FIFO, then /dev/zero.
    let env = NixEnv::new();
    let toml = env.path().join("cache.toml");
    mkfifo(&toml);
    for config in [toml.to_str().unwrap(), "/dev/zero"] {
        let out = run_bounded(&mut tool(&env, &["--config", config]), 30);
        // An unusable cache.toml is exit 1, in every tool (docs/conventions.md).
        assert_eq!(out.status.code(), Some(1), "{config}: {out:?}");
        assert!(stderr(&out).contains(config), "{}", stderr(&out));
    }
}

#[test]
fn includes_of_special_or_huge_files_are_bounded_and_named() {
    require_nix();
    let env = NixEnv::new();
    let fifo = env.path().join("inc.fifo");
    mkfifo(&fifo);
    let huge = env.path().join("huge.conf");
    // 5 MiB of comments: more than any nix.conf, less than would hurt the test machine.
    std::fs::write(&huge, "# padding\n".repeat(5 * 1024 * 1024 / 10)).unwrap();
    for target in [fifo.to_str().unwrap(), "/dev/zero", huge.to_str().unwrap()] {
        std::fs::write(
            env.system_conf(),
            format!("{BASE_SYSTEM_CONF}include {target}\n"),
        )
        .unwrap();
        // Under an address-space limit of 512 MiB: reading /dev/zero or the huge file
        // without bound would fail here, not just be slow.
        let mut c = env.command("prlimit");
        c.args([
            "--as=536870912",
            "--",
            BIN,
            "--url",
            URL,
            "--public-key",
            KEY,
            "--json",
        ]);
        let out = run_bounded(&mut c, 60);
        let j = json(&out);
        let all = format!("{j}");
        assert!(all.contains(target), "{target}: {all}");
        // The edit is made (the user file is fine) but it is not in effect: Nix cannot
        // start with this configuration, and the report says why, with the file.
        assert_eq!(j["exit_code"], 5, "{target}: {all}");
        assert!(
            j["nix_check"]["problems"][0]
                .as_str()
                .unwrap()
                .contains(target),
            "{all}"
        );
    }
    // A huge target is refused and left as it was.
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::copy(&huge, env.user_conf()).unwrap();
    let out = run_bounded(&mut tool(&env, &["--url", URL, "--public-key", KEY]), 30);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_eq!(
        std::fs::metadata(env.user_conf()).unwrap().len(),
        std::fs::metadata(&huge).unwrap().len()
    );
}

#[test]
fn a_self_including_nix_conf_is_reported_without_running_nix() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), "include nix.conf\n").unwrap();
    // A probe in front of the real nix: it records that it ran, then runs Nix.
    let bin = env.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let marker = env.path().join("nix-ran");
    let real = real_nix();
    std::fs::write(
        bin.join("nix"),
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec {} \"$@\"\n",
            marker.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("nix"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut c = tool(&env, &["--url", URL, "--public-key", KEY, "--json"]);
    c.env("PATH", path);
    let out = run_bounded(&mut c, 30);
    let j = json(&out);
    assert_eq!(j["exit_code"], 5, "{j}");
    let problem = j["nix_check"]["problems"][0].as_str().unwrap().to_owned();
    assert!(
        problem.contains("include cycle")
            && problem.contains(&format!("{}:1", env.user_conf().display())),
        "{problem}"
    );
    assert!(
        !marker.exists(),
        "nix was run: {:?}",
        std::fs::read_to_string(&marker)
    );
}

#[test]
fn secrets_never_reach_any_output() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    let netrc = env.user_conf().with_file_name("netrc");
    std::fs::write(
        env.user_conf(),
        format!(
            "access-tokens = github.com=ghp_PLANTED_A\nextra-access-tokens = gitlab.com=glpat-PLANTED_B\nnetrc-file = {}\n\
             access-tokens=github.com=ghp_PLANTED_F\n!include token.txt\n!include id_ed25519\n",
            netrc.display()
        ),
    )
    .unwrap();
    // Files Nix rejects as configuration, whose lines the warnings must not quote: a raw
    // token, an SSH private key.
    let dir = env.user_conf().parent().unwrap().to_owned();
    std::fs::write(dir.join("token.txt"), "ghp_PLANTED_G\n").unwrap();
    std::fs::write(
        dir.join("id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmPLANTED_H\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    // A netrc in the layouts curl reads: a password on its own line and the secret on
    // the next one; `password` as a login's value, then the real password; a quoted
    // password with a space; a macro whose body is secret. The last lines are those the
    // diff shows as context.
    std::fs::write(
        &netrc,
        "machine other.example\n  login me\n  password\n  PLANTED_C\n\
         macdef init\ncd PLANTED_L\n\n\
         machine o.example login password password PLANTED_I\n\
         machine y.example password \"PLANTED_J PLANTED_K\"\n",
    )
    .unwrap();
    let secrets = [
        "ghp_PLANTED_A",
        "glpat-PLANTED_B",
        "PLANTED_C",
        "PLANTED_D",
        "PLANTED_E",
        "PLANTED_F",
        "PLANTED_G",
        "PLANTED_H",
        "OPENSSH",
        "PLANTED_I",
        "PLANTED_J",
        "PLANTED_K",
        "PLANTED_L",
    ];
    let url = "https://user:PLANTED_D@team.example";
    for mode in [
        &["--dry-run"][..],
        &["--dry-run", "--json"][..],
        &[][..],
        &["--remove", "--json"][..],
    ] {
        let mut args = vec!["--url", url, "--public-key", KEY, "--token-env", "TOK"];
        args.extend_from_slice(mode);
        let mut c = tool(&env, &args);
        c.env("TOK", "PLANTED_E");
        let out = run_bounded(&mut c, 30);
        let all = format!("{}\n{}", stdout(&out), stderr(&out));
        assert!(
            out.status.code().is_some_and(|c| c == 0 || c == 5),
            "{mode:?}: {all}"
        );
        assert_no_secret(&all, &secrets, &format!("setup-cache {mode:?}"));
        assert!(all.contains("<redacted>"), "{mode:?}: {all}");
    }
    // A password with characters JSON escapes (`"`, `\`) is hidden in --json too.
    for mode in [&["--dry-run", "--json"][..], &["--json"][..]] {
        let mut args = vec![
            "--url",
            "https://u:ab\"PLANTED_Q\\x@quoted.example",
            "--public-key",
            KEY,
        ];
        args.extend_from_slice(mode);
        let out = run_bounded(&mut tool(&env, &args), 30);
        let all = format!("{}\n{}", stdout(&out), stderr(&out));
        assert!(!all.contains("PLANTED_Q"), "{mode:?}: {all}");
        assert!(all.contains("<redacted>"), "{mode:?}: {all}");
    }
    // An error that quotes the URL hides its password too.
    let out = run_bounded(
        &mut tool(
            &env,
            &["--url", "https://user:PLANTED_D@", "--public-key", KEY],
        ),
        30,
    );
    assert_eq!(out.status.code(), Some(2));
    assert_no_secret(&stderr(&out), &secrets, "error");
}

#[test]
fn a_token_with_white_space_is_refused_before_anything_is_written() {
    require_nix();
    let env = NixEnv::new();
    for token in ["abc\nmachine evil.example password x", "abc def", "a\tb"] {
        let mut c = tool(
            &env,
            &["--url", URL, "--public-key", KEY, "--token-env", "TOK"],
        );
        c.env("TOK", token);
        let out = run_bounded(&mut c, 30);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(stderr(&out).contains("$TOK"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("evil"), "{}", stderr(&out));
        assert!(!env.user_conf().exists());
        assert!(!env.user_conf().with_file_name("netrc").exists());
    }
}

#[test]
fn remove_goes_on_when_the_netrc_cannot_be_read_and_no_private_cache_is_removed() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    let fifo = env.path().join("netrc.fifo");
    mkfifo(&fifo);
    let out = run_bounded(&mut tool(&env, &["--url", URL, "--public-key", KEY]), 30);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let conf = std::fs::read_to_string(env.user_conf()).unwrap();
    std::fs::write(
        env.user_conf(),
        format!("netrc-file = {}\n{conf}", fifo.display()),
    )
    .unwrap();
    let out = run_bounded(&mut tool(&env, &["--remove", "--url", URL, "--json"]), 30);
    let j = json(&out);
    assert_eq!(j["caches"][0]["status"], "removed", "{j}");
    assert!(format!("{}", j["warnings"]).contains("netrc"), "{j}");
    assert!(
        !std::fs::read_to_string(env.user_conf())
            .unwrap()
            .contains(URL)
    );
}

#[test]
fn stale_temporary_files_of_a_killed_run_are_cleaned_up() {
    require_nix();
    let env = NixEnv::new();
    let d = env.user_conf().parent().unwrap().to_owned();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(".nix.conf.nct-0badf00d.tmp"), "half-written").unwrap();
    // A user's own files of similar names are theirs, and stay.
    for n in [".nix.conf.backup.tmp", ".nix.conf.keep.txt"] {
        std::fs::write(d.join(n), "not ours").unwrap();
    }
    let out = run_bounded(
        &mut tool(&env, &["--url", URL, "--public-key", KEY, "--json"]),
        30,
    );
    let j = json(&out);
    assert_eq!(j["exit_code"], 0, "{j}");
    assert_eq!(
        listing(&d),
        [".nix.conf.backup.tmp", ".nix.conf.keep.txt", "nix.conf"],
        "{}",
        j["warnings"]
    );
    assert!(format!("{}", j["warnings"]).contains("interrupted"), "{j}");
}

#[test]
fn a_second_run_says_it_waits_for_the_lock() {
    require_nix();
    let env = NixEnv::new();
    let d = env.user_conf().parent().unwrap().to_owned();
    std::fs::create_dir_all(&d).unwrap();
    // Another holder of the same lock (flock on the directory) for 3 seconds.
    let mut holder = Command::new("flock")
        .arg(&d)
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = std::time::Instant::now();
    let out = run_bounded(&mut tool(&env, &["--url", URL, "--public-key", KEY]), 30);
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(start.elapsed() >= std::time::Duration::from_secs(2));
    assert!(
        stderr(&out).contains("waiting for another run"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_backup_of_another_users_file_keeps_its_owner_and_mode() {
    require_nix();
    let user = setup_daemon::test_user();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(env.user_conf(), "# theirs\n").unwrap();
    std::os::unix::fs::chown(env.user_conf(), Some(user.uid), Some(user.gid)).unwrap();
    std::fs::set_permissions(env.user_conf(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = run_bounded(&mut tool(&env, &["--url", URL, "--public-key", KEY]), 30);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for p in [
        env.user_conf(),
        env.user_conf().with_file_name("nix.conf.setup-cache.bak"),
    ] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (user.uid, user.gid, 0o640),
            "{p:?}"
        );
    }
}

#[test]
fn a_symlinked_netrc_is_never_read_through() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    let secret = env.path().join("root-only");
    std::fs::write(&secret, "machine private.example password PLANTED_F\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, env.user_conf().with_file_name("netrc")).unwrap();
    let mut c = tool(
        &env,
        &[
            "--dry-run",
            "--url",
            URL,
            "--public-key",
            KEY,
            "--token-env",
            "TOK",
        ],
    );
    c.env("TOK", "tok");
    let out = run_bounded(&mut c, 30);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(all.contains("symlink"), "{all}");
    assert_no_secret(&all, &["private.example", "PLANTED_F"], "dry run");
}

#[test]
fn keys_and_urls_that_would_write_a_broken_line_are_refused() {
    require_nix();
    let env = NixEnv::new();
    for (args, says) in [
        (
            vec![
                "--url",
                URL,
                "--public-key",
                &*format!("trusted-public-keys = {KEY}"),
            ],
            "paste only NAME:BASE64",
        ),
        (
            vec![
                "--url",
                URL,
                "--public-key",
                "team #1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
            ],
            "paste only NAME:BASE64",
        ),
        (
            vec!["--url", "file://relative/path", "--public-key", KEY],
            "absolute",
        ),
    ] {
        let out = run_bounded(&mut tool(&env, &args), 30);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        assert!(!env.user_conf().exists());
    }
}

#[test]
fn system_and_file_targets_are_judged_by_what_they_are_read_by() {
    require_nix();
    let env = NixEnv::new();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(
        env.user_conf(),
        format!("extra-substituters = {URL}\nextra-trusted-public-keys = {KEY}\n"),
    )
    .unwrap();
    // The daemon reads only the system file: --system writes the cache there although
    // the user's own file already has it.
    let out = run_bounded(
        &mut tool(
            &env,
            &["--system", "--url", URL, "--public-key", KEY, "--json"],
        ),
        30,
    );
    let j = json(&out);
    assert_eq!(j["caches"][0]["status"], "added", "{j}");
    assert!(
        std::fs::read_to_string(env.system_conf())
            .unwrap()
            .contains(URL)
    );
    // --file F for a file Nix does not read here: F is judged alone and written.
    let f = env.path().join("for-another-machine.conf");
    let out = run_bounded(
        &mut tool(
            &env,
            &[
                "--file",
                f.to_str().unwrap(),
                "--url",
                URL,
                "--public-key",
                KEY,
                "--json",
            ],
        ),
        30,
    );
    let j = json(&out);
    assert_eq!(j["caches"][0]["status"], "added", "{j}");
    assert!(std::fs::read_to_string(&f).unwrap().contains(URL));
    // A cache in effect nowhere else: exit 5, and Nix's check says why — Nix does not
    // read F — not that "a later file" resets it.
    let out = run_bounded(
        &mut tool(
            &env,
            &[
                "--file",
                f.to_str().unwrap(),
                "--url",
                "https://elsewhere.example",
                "--public-key",
                KEY,
                "--json",
            ],
        ),
        30,
    );
    let j = json(&out);
    assert_eq!(out.status.code(), Some(5), "{j}");
    let problems = j["nix_check"]["problems"].to_string();
    assert!(
        problems.contains("does not read") && !problems.contains("a later file"),
        "{j}"
    );
    // --file F for a file Nix reads (an include of the system file): written too,
    // though the user file already has the cache in effect.
    let inc = env.nix_conf_dir.join("team.conf");
    std::fs::write(
        env.system_conf(),
        format!("{BASE_SYSTEM_CONF}!include team.conf\n"),
    )
    .unwrap();
    let out = run_bounded(
        &mut tool(
            &env,
            &[
                "--file",
                inc.to_str().unwrap(),
                "--url",
                URL,
                "--public-key",
                KEY,
                "--json",
            ],
        ),
        30,
    );
    let j = json(&out);
    assert_eq!(j["caches"][0]["status"], "added", "{j}");
    assert_eq!(j["exit_code"], 0, "{j}");
    assert!(std::fs::read_to_string(&inc).unwrap().contains(URL));
}

/// Root editing another user's nix.conf: the `netrc-file` that file names is that
/// user's choice, so root reads and writes it only when it is that user's file (or is
/// made in that user's directory, owned by them). A user naming a file of root's (think
/// /etc/shadow) gets an error naming both, and the file is neither read, shown, written
/// nor re-permissioned.
#[test]
fn root_never_follows_another_users_netrc_file_to_a_file_not_theirs() {
    require_nix();
    let user = setup_daemon::test_user();
    let env = NixEnv::new();
    let theirs = env.path().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(user.uid), Some(user.gid)).unwrap();
    let roots = env.path().join("rootfile");
    std::fs::write(&roots, "ROOTDATA_PLANTED\n").unwrap();
    std::fs::set_permissions(&roots, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = theirs.join("nix.conf");
    let write_conf = |netrc: &Path| {
        std::fs::write(&conf, format!("netrc-file = {}\n", netrc.display())).unwrap();
        std::os::unix::fs::chown(&conf, Some(user.uid), Some(user.gid)).unwrap();
    };
    write_conf(&roots);
    let before = std::fs::read_to_string(&conf).unwrap();
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "--file",
            conf.to_str().unwrap(),
            "--url",
            URL,
            "--public-key",
            KEY,
            "--token-env",
            "TOK",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    for extra in [&["--dry-run"][..], &[][..], &["--json"][..]] {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut c = tool(&env, &a);
        c.env("TOK", "tok_PLANTED");
        let out = run_bounded(&mut c, 30);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {all}");
        assert!(
            all.contains(roots.to_str().unwrap()) && all.contains("another user"),
            "{all}"
        );
        assert!(
            !all.contains("ROOTDATA") && !all.contains("tok_PLANTED"),
            "{all}"
        );
        let m = std::fs::metadata(&roots).unwrap();
        assert_eq!(m.mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read_to_string(&roots).unwrap(),
            "ROOTDATA_PLANTED\n"
        );
        assert_eq!(
            std::fs::read_to_string(&conf).unwrap(),
            before,
            "nothing written"
        );
    }
    // Their own netrc file, in their directory (missing, then present): written, and
    // theirs, so that their Nix can read it.
    let own = theirs.join("my-netrc");
    write_conf(&own);
    let a = args(&[]);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut c = tool(&env, &a);
    // Nix reads their file here, so the check finds the cache in effect.
    c.env("TOK", "tok_PLANTED")
        .env("NIX_USER_CONF_FILES", &conf);
    let out = run_bounded(&mut c, 30);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let m = std::fs::metadata(&own).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (user.uid, user.gid, 0o600)
    );
    assert!(
        std::fs::read_to_string(&own)
            .unwrap()
            .contains("tok_PLANTED")
    );
}

/// A change that cannot be made whole is not made in part: when the backup cannot be
/// written (here a directory stands where it goes), the run fails naming it before the
/// netrc gets the token or nix.conf changes.
#[test]
fn nothing_is_written_when_the_backup_cannot_be() {
    require_nix();
    let env = NixEnv::new();
    let d = env.user_conf().parent().unwrap().to_owned();
    std::fs::create_dir_all(d.join("nix.conf.setup-cache.bak")).unwrap();
    std::fs::write(env.user_conf(), "a = b\n").unwrap();
    let mut c = tool(
        &env,
        &["--url", URL, "--public-key", KEY, "--token-env", "TOK"],
    );
    c.env("TOK", "tok_PLANTED");
    let out = run_bounded(&mut c, 30);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("nix.conf.setup-cache.bak"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(env.user_conf()).unwrap(), "a = b\n");
    assert!(
        !d.join("netrc").exists(),
        "the token was written: {:?}",
        std::fs::read_to_string(d.join("netrc"))
    );
}

/// Odd names and bytes get true answers: an include with bytes that are not UTF-8 (Nix
/// reads bytes) does not make setup-cache claim Nix cannot start; a target whose name
/// is not UTF-8 is still a string in the JSON; `NIX_USER_CONF_FILES=dir/` (a directory
/// path) is refused instead of writing a file `dir` Nix never reads.
#[test]
fn odd_names_and_bytes_get_true_answers() {
    use std::os::unix::ffi::OsStrExt as _;
    require_nix();
    let env = NixEnv::new();
    let d = env.user_conf().parent().unwrap().to_owned();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("inc.conf"), b"# caf\xe9\nsandbox = false\n").unwrap();
    std::fs::write(env.user_conf(), "include inc.conf\n").unwrap();
    let nix_starts = env.nix(&["show-config"]).output().unwrap().status.success();
    let out = run_bounded(
        &mut tool(&env, &["--url", URL, "--public-key", KEY, "--json"]),
        30,
    );
    let j = json(&out);
    if nix_starts {
        assert_eq!(j["exit_code"], 0, "{j:#}");
        assert!(!j.to_string().contains("cannot start"), "{j:#}");
    }
    let odd = d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.conf"));
    let mut c = tool(&env, &["--url", URL, "--public-key", KEY, "--json"]);
    c.arg("--file").arg(&odd);
    let j = json(&run_bounded(&mut c, 30));
    assert!(
        j["target"].as_str().is_some_and(|t| t.contains("caf")),
        "{j:#}"
    );
    let dir = env.path().join("confdir");
    let mut c = tool(&env, &["--url", URL, "--public-key", KEY]);
    c.env("NIX_USER_CONF_FILES", format!("{}/", dir.display()));
    let out = run_bounded(&mut c, 30);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stderr(&out).contains("directory path"), "{}", stderr(&out));
    assert!(!dir.exists());
}
