//! The contract the three tools share, checked on all three binaries at once: one set of
//! exit codes (the same unusable cache.toml is the same code everywhere, each `--help`
//! table is the generated one), errors answered in JSON when JSON was asked for (a bad
//! command line included), each error said once, and `--summary` without
//! `$GITHUB_STEP_SUMMARY` saying so in the same words.

mod support;

use nix_cache_tools::cli::{ExitCode, Tool};
use serde_json::Value;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Output;
use support::NixEnv;

/// The three binaries: built beside this test's own by `cargo test --workspace`.
fn bin(tool: Tool) -> PathBuf {
    let here = PathBuf::from(env!("CARGO_BIN_EXE_cache-analytics"));
    let p = here.with_file_name(tool.name());
    assert!(
        p.exists(),
        "{} is not built: run the suite with `cargo test --workspace`",
        p.display()
    );
    p
}

const TOOLS: [Tool; 3] = [Tool::SetupCache, Tool::PushCache, Tool::CacheAnalytics];

/// The arguments that make `tool` answer in JSON.
fn json_flag(tool: Tool) -> &'static [&'static str] {
    match tool {
        Tool::CacheAnalytics => &["--format", "json"],
        _ => &["--json"],
    }
}

/// Arguments that get each tool as far as reading its cache.toml, and no further
/// without one.
fn doing_something(tool: Tool, env: &NixEnv) -> Vec<String> {
    match tool {
        Tool::SetupCache => vec![
            "--dry-run".into(),
            "--file".into(),
            env.path().join("nix.conf").display().to_string(),
        ],
        Tool::PushCache => vec!["--dry-run".into(), "/nix/store/x".into()],
        Tool::CacheAnalytics => vec![
            "--store".into(),
            env.path().join("none").display().to_string(),
        ],
    }
}

fn run(env: &NixEnv, tool: Tool, args: &[String]) -> Output {
    let mut c = env.command(bin(tool));
    c.args(args)
        .current_dir(env.path())
        .env_remove("GITHUB_STEP_SUMMARY");
    support::run_bounded(&mut c, 60)
}

fn json_error(tool: Tool, out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{}: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            tool.name(),
            support::stdout(out),
            support::stderr(out)
        )
    })
}

#[test]
fn an_unusable_cache_toml_is_exit_1_in_every_tool_said_once_and_in_json() {
    let env = NixEnv::new();
    let broken = env.path().join("cache.toml");
    std::fs::write(
        &broken,
        "[[cache]]\nurl = \"https://c.example\"\npublic-key = 42\n",
    )
    .unwrap();
    let fifo = env.path().join("fifo.toml");
    support::mkfifo(&fifo);
    for file in [&broken, &fifo] {
        for tool in TOOLS {
            let mut args = vec!["--config".to_owned(), file.display().to_string()];
            args.extend(doing_something(tool, &env));
            let out = run(&env, tool, &args);
            let err = support::stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{} {}: {err}",
                tool.name(),
                file.display()
            );
            assert!(
                err.starts_with(&format!("{}: error: ", tool.name())),
                "{err}"
            );
            // Named once: no "could not use X: X: ..." wrapping.
            assert_eq!(
                err.matches(&*file.display().to_string()).count(),
                1,
                "{} {}: {err}",
                tool.name(),
                file.display()
            );
            let mut args_json: Vec<String> =
                json_flag(tool).iter().map(|s| (*s).to_owned()).collect();
            args_json.extend(args);
            let out = run(&env, tool, &args_json);
            assert_eq!(out.status.code(), Some(1));
            let j = json_error(tool, &out);
            assert_eq!(j["exit_code"], 1, "{j}");
            assert!(
                j["error"]
                    .as_str()
                    .unwrap()
                    .contains(&*file.display().to_string()),
                "{j}"
            );
        }
    }
}

#[test]
fn a_bad_command_line_is_exit_2_and_json_when_json_was_asked_for() {
    let env = NixEnv::new();
    for tool in TOOLS {
        let mut args: Vec<String> = json_flag(tool).iter().map(|s| (*s).to_owned()).collect();
        args.push("--no-such-flag".into());
        let out = run(&env, tool, &args);
        assert_eq!(out.status.code(), Some(2), "{}", tool.name());
        let j = json_error(tool, &out);
        assert_eq!(j["exit_code"], 2, "{j}");
        assert!(
            j["error"].as_str().unwrap().contains("--no-such-flag"),
            "{j}"
        );
        assert!(support::stderr(&out).starts_with(&format!("{}: error: ", tool.name())));
        // Without JSON asked for, nothing on stdout.
        let out = run(&env, tool, &["--no-such-flag".to_owned()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty(), "{}", support::stdout(&out));
    }
}

#[test]
fn each_help_shows_the_generated_exit_code_table() {
    let env = NixEnv::new();
    for tool in TOOLS {
        let help = support::stdout(&run(&env, tool, &["--help".to_owned()]));
        let table = ExitCode::help(tool);
        // clap wraps long lines: compare the words.
        let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words(&help).contains(&words(&table)),
            "{}:\n{help}\nwants:\n{table}",
            tool.name()
        );
        // No number is shown with two meanings across the tools.
        for c in ExitCode::ALL {
            if !c.tools().contains(&tool) {
                assert!(
                    !help.contains(&format!("\n  {}  ", c.code())),
                    "{}: {c:?}",
                    tool.name()
                );
            }
        }
    }
}

#[test]
fn summary_without_github_step_summary_says_so_in_both_tools() {
    support::require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("summary"));
    let cache = env.path().join("cache");
    let store = env.path().join("none");
    for (tool, args) in [
        (
            Tool::PushCache,
            vec![
                "--summary",
                "--no-filter",
                "--to",
                &format!("file://{}", cache.display()),
                &top,
            ],
        ),
        (
            Tool::CacheAnalytics,
            vec!["--summary", "--store", store.to_str().unwrap()],
        ),
    ] {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let out = run(&env, tool, &args);
        let err = support::stderr(&out);
        assert!(out.status.success(), "{}: {err}", tool.name());
        assert!(
            err.contains(&format!(
                "{}: --summary: GITHUB_STEP_SUMMARY is not set, no summary written",
                tool.name()
            )),
            "{}: {err}",
            tool.name()
        );
    }
}

/// `$GITHUB_STEP_SUMMARY` naming a FIFO (with or without a reader) or a directory: never
/// a hang, an error naming it; push-cache keeps the push's exit code (the push is done),
/// cache-analytics, whose report it is, exits 1.
#[test]
fn a_summary_that_is_no_regular_file_is_refused_without_hanging() {
    support::require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("sumfifo"));
    let cache = env.path().join("cache");
    let store = env.path().join("none");
    let fifo = env.path().join("summary.fifo");
    support::run_ok(std::process::Command::new("mkfifo").arg(&fifo));
    // A reader that holds the FIFO open for the whole test, never reading.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(&fifo)
        .unwrap();
    let dir = env.path().join("summary.dir");
    std::fs::create_dir(&dir).unwrap();
    let mut reader = Some(reader);
    // The FIFO with a reader, the directory, then the FIFO with no reader (where a
    // plain open blocks for ever).
    for (i, target) in [&fifo, &dir, &fifo].into_iter().enumerate() {
        if i == 2 {
            drop(reader.take());
        }
        for (tool, args, code) in [
            (
                Tool::PushCache,
                vec![
                    "--summary".to_owned(),
                    "--no-filter".to_owned(),
                    "--to".to_owned(),
                    format!("file://{}", cache.display()),
                    top.clone(),
                ],
                0,
            ),
            (
                Tool::CacheAnalytics,
                vec![
                    "--summary".to_owned(),
                    "--store".to_owned(),
                    store.display().to_string(),
                ],
                1,
            ),
        ] {
            let mut c = std::process::Command::new(bin(tool));
            c.args(&args)
                .env("GITHUB_STEP_SUMMARY", target)
                .env("HOME", env.path())
                .env("NIX_REMOTE", "local");
            let started = std::time::Instant::now();
            let out = support::run_bounded(&mut c, 60);
            let err = support::stderr(&out);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "{}: hung",
                tool.name()
            );
            assert_eq!(out.status.code(), Some(code), "{}: {err}", tool.name());
            assert!(
                err.contains(&target.display().to_string()) && err.contains("not a regular file"),
                "{}: {err}",
                tool.name()
            );
        }
    }
}

/// `O_NONBLOCK`, so that opening the FIFO's read end does not wait for a writer.
fn libc_o_nonblock() -> i32 {
    0o4000
}

/// `--timeout` past a week is refused (exit 2), never a panic on the deadline.
#[test]
fn a_timeout_past_a_week_is_a_usage_error() {
    let env = NixEnv::new();
    for tool in [Tool::PushCache, Tool::CacheAnalytics] {
        let out = run(
            &env,
            tool,
            &["--timeout".to_owned(), "18446744073709551615".to_owned()],
        );
        assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
        assert!(
            support::stderr(&out).contains("1..=604800"),
            "{}",
            support::stderr(&out)
        );
    }
}

/// Runs `c` with stderr a pipe whose reader has already gone (`tool 2>&1 | head -1`
/// after the first line, a CI step whose log collector died): writes to it fail with
/// EPIPE. Stdout is collected.
fn with_stderr_closed(c: &mut std::process::Command) -> Output {
    // A socket whose peer has gone: every write fails with EPIPE, as on such a pipe.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    drop(ours);
    let child = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::os::fd::OwnedFd::from(theirs))
        .spawn()
        .expect("spawn");
    child.wait_with_output().expect("wait")
}

/// A closed stderr changes nothing but what is seen: the tool does its work and exits
/// with its own code, never a panic (101), as `eprintln!` would make it.
#[test]
fn a_closed_stderr_changes_no_outcome() {
    support::require_nix();
    let env = NixEnv::new();
    for tool in TOOLS {
        let mut c = env.command(bin(tool));
        c.arg("--no-such-flag").current_dir(env.path());
        let out = with_stderr_closed(&mut c);
        assert_eq!(out.status.code(), Some(2), "{}", tool.name());
    }
    // A push that prints a line per path gets every path there.
    let top = support::build_small_closure(&env, "closed-stderr");
    let paths = support::closure(&env, std::slice::from_ref(&top));
    let cache = env.path().join("cache");
    let mut c = env.command(bin(Tool::PushCache));
    c.args(["--no-filter", "--to"])
        .arg(format!("file://{}", cache.display()))
        .arg(&top)
        .current_dir(env.path());
    let out = with_stderr_closed(&mut c);
    assert_eq!(out.status.code(), Some(0));
    let narinfos = std::fs::read_dir(&cache)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".narinfo")
        })
        .count();
    assert_eq!(narinfos, paths.len());
}
