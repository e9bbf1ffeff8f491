//! Shared support for the integration tests: every test runs the real binaries against
//! the real Nix (Debian's nix-bin 2.8 in CI), in an isolated environment.
//!
//! - [`NixEnv`]: a temporary HOME / XDG_CONFIG_HOME / NIX_CONF_DIR, so a test never reads
//!   or writes the machine's nix.conf, and commands built from it see only that.
//! - [`build`]: real store paths from `builtins.derivation` with builder `/bin/sh`.
//! - [`http::HttpCache`]: a binary cache served over HTTP on 127.0.0.1 (GET/HEAD/PUT).
//!
//! Tests that need Nix call [`require_nix`]: without Nix they fail under `CI=true`
//! (where `.ci/run` installs it) and say how to install it elsewhere.
#![allow(dead_code, clippy::unwrap_used)]

pub mod http;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

/// Panics with instructions when Nix is missing. Never skips: a test that needs Nix and
/// cannot run is a failure.
pub fn require_nix() {
    let ok = Command::new("nix")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "these tests need a real Nix: run `.ci/run` once, or `sudo apt-get install -y nix-bin` \
         (Debian/Ubuntu) and run the tests as root with NIX_REMOTE=local"
    );
}

pub fn is_root() -> bool {
    // SAFETY-free: read the effective uid from /proc to avoid a libc dependency here.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A `NarHash` that belongs to no path here: what a forged narinfo carries.
pub const FOREIGN_NAR_HASH: &str = "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s";

/// Rewrites the `FIELD: value` line of the narinfo `file` to `value` (a forged or
/// corrupted entry); returns the text it had.
pub fn set_narinfo_field(file: &Path, field: &str, value: &str) -> String {
    let old = std::fs::read_to_string(file).unwrap();
    let prefix = format!("{field}: ");
    let new: String = old
        .lines()
        .map(|l| {
            if l.starts_with(&prefix) {
                format!("{prefix}{value}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_ne!(new, old, "{} has no {field} line to change", file.display());
    std::fs::write(file, new).unwrap();
    old
}

/// A unique token per call in this process, to make derivations no other test builds.
pub fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{tag}-{}-{}-{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// The system-level nix.conf every isolated environment starts with: what Debian's
/// nix-bin needs to build here (no sandbox) and no network substituter (only loopback is
/// reachable, and cache.nixos.org lookups would just time out).
pub const BASE_SYSTEM_CONF: &str = "sandbox = false\nsubstituters =\n";

/// An isolated configuration environment in a temporary directory.
pub struct NixEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub xdg_config_home: PathBuf,
    pub nix_conf_dir: PathBuf,
}

/// The store is made ready once per test process, before any test's Nix touches it.
static STORE_READY: std::sync::Once = std::sync::Once::new();

impl NixEnv {
    pub fn new() -> Self {
        Self::with_system_conf(BASE_SYSTEM_CONF)
    }

    /// On a fresh machine the first Nix commands create the store (its directories,
    /// `gcroots/profiles`, the database). Nix 2.8 does not do that safely from several
    /// processes at once — parallel tests' first builds then fail with `creating symlink
    /// from '/nix/var/nix/gcroots/profiles' ...: File exists` or `SQLite database
    /// '/nix/var/nix/db/db.sqlite' is busy` — so one `nix-store --init` goes first.
    fn store_ready(&self) {
        STORE_READY.call_once(|| {
            // Where it cannot (no Nix, not allowed), the tests' own commands say why.
            if on_path("nix-store").is_some() {
                let _ = self.command("nix-store").arg("--init").output();
            }
        });
    }

    pub fn with_system_conf(system_conf: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let xdg_config_home = home.join(".config");
        let nix_conf_dir = dir.path().join("etc-nix");
        std::fs::create_dir_all(&xdg_config_home).unwrap();
        std::fs::create_dir_all(&nix_conf_dir).unwrap();
        std::fs::write(nix_conf_dir.join("nix.conf"), system_conf).unwrap();
        let env = NixEnv {
            dir,
            home,
            xdg_config_home,
            nix_conf_dir,
        };
        env.store_ready();
        env
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn system_conf(&self) -> PathBuf {
        self.nix_conf_dir.join("nix.conf")
    }

    pub fn user_conf(&self) -> PathBuf {
        self.xdg_config_home.join("nix/nix.conf")
    }

    /// A command with this environment: HOME, XDG_CONFIG_HOME, NIX_CONF_DIR set;
    /// NIX_USER_CONF_FILES, NIX_CONFIG, XDG_CONFIG_DIRS cleared; NO_COLOR set;
    /// NIX_REMOTE=local (single-user, root) unless the caller overrides it.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg_config_home)
            .env("XDG_CONFIG_DIRS", self.dir.path().join("no-xdg-dirs"))
            .env("NIX_CONF_DIR", &self.nix_conf_dir)
            .env_remove("NIX_USER_CONF_FILES")
            .env_remove("NIX_CONFIG")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("NO_COLOR", "1")
            .env("NIX_REMOTE", "local")
            .current_dir(self.dir.path());
        c
    }

    /// `nix --extra-experimental-features nix-command ARGS` in this environment.
    pub fn nix(&self, args: &[&str]) -> Command {
        let mut c = self.command("nix");
        c.args(["--extra-experimental-features", "nix-command"])
            .args(args);
        c
    }

    /// The settings Nix itself reports in this environment (`nix show-config --json` on
    /// 2.8-2.19, `nix config show --json` later).
    pub fn nix_config(&self) -> serde_json::Value {
        for args in [
            &["config", "show", "--json"][..],
            &["show-config", "--json"][..],
        ] {
            let out = self.nix(args).output().unwrap();
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).unwrap();
            }
        }
        panic!("neither `nix config show` nor `nix show-config` worked");
    }

    /// A list-valued setting as Nix reports it.
    pub fn nix_setting(&self, name: &str) -> Vec<String> {
        let cfg = self.nix_config();
        let v = &cfg[name]["value"];
        match v {
            serde_json::Value::Array(a) => {
                a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()
            }
            serde_json::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
            other => panic!("setting {name}: unexpected {other}"),
        }
    }
}

impl Default for NixEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a command, panicking with its stderr when it fails.
pub fn run_ok(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds a Nix expression into the real store (`nix-build`, NIX_REMOTE=local) and
/// returns the output paths. The expression may use `mk name script [deps]`, which makes
/// a `builtins.derivation` with builder `/bin/sh`.
pub fn build(env: &NixEnv, expr_body: &str) -> Vec<String> {
    let expr = format!(
        r#"let
  mk = name: script: builtins.derivation {{
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    args = [ "-c" script ];
    PATH = "/bin:/usr/bin";
  }};
in {expr_body}"#
    );
    let file = env.path().join(format!("{}.nix", unique("expr")));
    std::fs::write(&file, expr).unwrap();
    let out = run_ok(env.command("nix-build").arg(&file).arg("--no-out-link"));
    stdout(&out).lines().map(str::to_owned).collect()
}

/// A small closure: `top` depends on `mid` and on a `-source` path; `mid` on `leaf`.
/// Every path includes `tag`, so each call makes new store paths. Returns `top`.
pub fn build_small_closure(env: &NixEnv, tag: &str) -> String {
    let expr = format!(
        r#"let
  leaf = mk "leaf-{tag}" "mkdir $out; echo leaf > $out/data";
  src = mk "{tag}-source" "mkdir $out; echo src > $out/file";
  mid = mk "mid-{tag}" "mkdir $out; echo ${{leaf}} > $out/ref";
in mk "top-{tag}" "mkdir $out; echo ${{mid}} ${{src}} > $out/refs""#
    );
    build(env, &expr).remove(0)
}

/// Every path of the closure of `paths` (`nix-store -qR`).
pub fn closure(env: &NixEnv, paths: &[String]) -> Vec<String> {
    let out = run_ok(env.command("nix-store").arg("-qR").args(paths));
    stdout(&out).lines().map(str::to_owned).collect()
}

/// A fresh signing key pair (`nix-store --generate-binary-cache-key`), as files.
pub struct KeyPair {
    pub name: String,
    pub secret_file: PathBuf,
    pub public: String,
}

pub fn generate_key(env: &NixEnv, name: &str) -> KeyPair {
    let secret_file = env.path().join(format!("{name}.sec"));
    let public_file = env.path().join(format!("{name}.pub"));
    run_ok(
        env.command("nix-store")
            .arg("--generate-binary-cache-key")
            .arg(name)
            .arg(&secret_file)
            .arg(&public_file),
    );
    KeyPair {
        name: name.to_owned(),
        secret_file,
        public: std::fs::read_to_string(&public_file)
            .unwrap()
            .trim()
            .to_owned(),
    }
}

/// Copies `paths` (with their closure) into a `file://` binary cache at `dir`, signed
/// with `key`. Uses plain `nix copy`, independent of the tools under test.
pub fn nix_copy_to_file_cache(env: &NixEnv, dir: &Path, key: &KeyPair, paths: &[String]) {
    let to = format!(
        "file://{}?secret-key={}",
        dir.display(),
        key.secret_file.display()
    );
    let mut c = env.nix(&["copy", "--to", &to]);
    c.args(paths);
    run_ok(c);
}

/// Runs a command to completion, but kills it and panics when it is still running after
/// `secs` seconds: for runs that must not hang (FIFOs, endless bodies, cycles). Its
/// output is drained while it runs, so a talkative program cannot block on a full pipe.
pub fn run_bounded(cmd: &mut Command, secs: u64) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    let what = format!("{cmd:?}");
    // Its own process group, so that a timeout kills what it started too (nix copy).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = pipe.read_to_end(&mut b);
            b
        })
    };
    let out_t = drain(Box::new(child.stdout.take().unwrap()));
    let err_t = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!("{what} was still running after {secs} s (killed)");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // A grandchild that keeps the pipes open must not hang the test either.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(out_t.is_finished() && err_t.is_finished()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} exited but its output pipes stayed open"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Where `program` is on PATH (`command -v`), if it is.
pub fn on_path(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// The real `nix` on PATH (for probes put in front of it).
pub fn real_nix() -> PathBuf {
    on_path("nix").unwrap_or_default()
}

/// Makes a FIFO (named pipe) at `path`.
pub fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// Makes a character device node at `path` with the numbers of /dev/null (1, 3): a real
/// device node inside a temporary directory (needs root).
pub fn mknod_null(path: &Path) {
    run_ok(Command::new("mknod").arg(path).args(["c", "1", "3"]));
}

/// Asserts that none of `secrets` appears in `text`.
pub fn assert_no_secret(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows the secret {s:?}:\n{text}");
    }
}
