//! Will the nix-daemon honour a user-level substituter? (Trust in multi-user installs.)
//!
//! The daemon keeps a client's substituters only for trusted users (`trusted-users`,
//! `@group`, `*`), or when the URL is already in its own `substituters` /
//! `trusted-substituters`; the keys must then be in its own `trusted-public-keys`.
//! Root and single-user installs (a store the user can write) are always trusted.

use super::CacheSpec;
use crate::cmd::{Cmd, Runner};
use crate::nixconf::{self, Env, Layers};
use crate::url;
use std::path::{Path, PathBuf};

/// How the client reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreMode {
    /// The user opens the store directly (single-user install, root, `NIX_REMOTE=local`).
    Local,
    /// Through the nix-daemon.
    Daemon,
}

/// Everything the verdict depends on, gathered apart from deciding so tests can build it.
#[derive(Debug, Clone)]
pub struct TrustInput {
    pub user: String,
    pub uid: u32,
    pub groups: Vec<String>,
    pub store_mode: StoreMode,
    /// The system configuration the daemon reads (`$NIX_CONF_DIR/nix.conf` + includes).
    pub system: Layers,
    pub system_file: PathBuf,
    /// `nix store info --json` → `trusted` (Nix ≥ 2.15), `None` where Nix cannot tell.
    pub nix_says: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrustStatus {
    /// The daemon uses what the user configures.
    Trusted,
    /// Not trusted, but the system configuration already allows every cache asked for.
    Allowed,
    /// The daemon will ignore the user-level substituter.
    Untrusted,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrustReport {
    pub status: TrustStatus,
    pub user: String,
    pub store_mode: StoreMode,
    /// Plain explanation.
    pub reason: String,
    /// Exact fix (lines to add, commands to run) when `Untrusted`.
    pub fix: Option<String>,
    /// Caches the daemon will ignore.
    pub ignored: Vec<String>,
}

fn values(l: &Layers, name: &str) -> Vec<String> {
    l.effective(name).into_iter().map(|s| s.value).collect()
}

fn where_set(l: &Layers, name: &str, file: &Path) -> String {
    match l
        .effective(name)
        .iter()
        .rev()
        .find_map(|s| s.file.clone().map(|f| (f, s.line)))
    {
        Some((f, line)) => format!("{}:{line}", f.display()),
        None => format!("{} (Nix's default)", file.display()),
    }
}

/// The verdict for `caches`, given the facts.
pub fn assess(
    input: &TrustInput,
    caches: &[CacheSpec],
    restart: &str,
    cache_args: &str,
) -> TrustReport {
    let base = |status, reason: String| TrustReport {
        status,
        user: input.user.clone(),
        store_mode: input.store_mode,
        reason,
        fix: None,
        ignored: Vec::new(),
    };
    if input.uid == 0 {
        return base(
            TrustStatus::Trusted,
            "you are root, whom Nix always trusts".into(),
        );
    }
    if input.store_mode == StoreMode::Local {
        return base(
            TrustStatus::Trusted,
            "single-user install: you open the Nix store directly, so your settings apply".into(),
        );
    }
    let trusted_users = values(&input.system, "trusted-users");
    let matched = trusted_users.iter().find(|t| {
        *t == "*"
            || **t == input.user
            || t.strip_prefix('@')
                .is_some_and(|g| input.groups.iter().any(|ug| ug == g))
    });
    let by_config = matched.is_some();
    let trusted = input.nix_says.unwrap_or(by_config);
    if trusted {
        let why = match (input.nix_says, matched) {
            (_, Some(m)) => format!(
                "`{m}` is in trusted-users ({})",
                where_set(&input.system, "trusted-users", &input.system_file)
            ),
            (Some(true), None) => "the nix-daemon reports you as trusted".into(),
            _ => "trusted".into(),
        };
        return base(TrustStatus::Trusted, why);
    }
    let sys_subs: Vec<String> = values(&input.system, "substituters")
        .into_iter()
        .chain(values(&input.system, "trusted-substituters"))
        .collect();
    let sys_keys = values(&input.system, "trusted-public-keys");
    let ignored: Vec<&CacheSpec> = caches
        .iter()
        .filter(|c| {
            let url_ok = sys_subs
                .iter()
                .any(|s| url::normalize(s) == url::normalize(&c.url));
            let key_ok = sys_keys.contains(&c.public_key);
            !(url_ok && key_ok)
        })
        .collect();
    let who = format!(
        "you (`{}`, groups: {}) are not in trusted-users = {} ({})",
        input.user,
        if input.groups.is_empty() {
            "none".to_owned()
        } else {
            input.groups.join(" ")
        },
        if trusted_users.is_empty() {
            "(empty)".to_owned()
        } else {
            trusted_users.join(" ")
        },
        where_set(&input.system, "trusted-users", &input.system_file),
    );
    if ignored.is_empty() {
        return base(
            TrustStatus::Allowed,
            format!(
                "{who}, but the system configuration already allows these caches (trusted-substituters and trusted-public-keys)"
            ),
        );
    }
    let sys = input.system_file.display();
    let urls: Vec<&str> = ignored.iter().map(|c| c.url.as_str()).collect();
    let keys: Vec<&str> = ignored.iter().map(|c| c.public_key.as_str()).collect();
    let cmd = format!("sudo setup-cache --system{cache_args}");
    let fix = format!(
        "as an administrator, do ONE of these, then restart the daemon ({restart}):\n\
         \x20 a) allow this cache for all users: add to {sys}\n\
         \x20      extra-trusted-substituters = {}\n\
         \x20      extra-trusted-public-keys = {}\n\
         \x20    (or make it everyone's default: {cmd})\n\
         \x20 b) trust your user: add to {sys}\n\
         \x20      extra-trusted-users = {}",
        urls.join(" "),
        keys.join(" "),
        input.user,
    );
    let mut r = base(
        TrustStatus::Untrusted,
        format!(
            "the nix-daemon ignores substituters and keys from users it does not trust, and {who}; \
             so your nix.conf entry for {} has no effect (Nix warns \"ignoring untrusted substituter\")",
            urls.join(", ")
        ),
    );
    r.fix = Some(fix);
    r.ignored = urls.iter().map(|u| (*u).to_owned()).collect();
    r
}

/// How this process reaches the store, as Nix decides it (`NIX_REMOTE`, else `auto`:
/// local when the state directory is writable, else the daemon).
pub fn store_mode() -> StoreMode {
    let remote = std::env::var("NIX_REMOTE").unwrap_or_default();
    match remote.as_str() {
        "daemon" => StoreMode::Daemon,
        r if r.starts_with("unix://") || r.starts_with("ssh") => StoreMode::Daemon,
        "" | "auto" => {
            let state = std::env::var_os("NIX_STATE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
            if writable(&state) {
                StoreMode::Local
            } else {
                StoreMode::Daemon
            }
        }
        _ => StoreMode::Local,
    }
}

#[allow(unsafe_code)]
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access(2) on a NUL-terminated path we own; no memory is retained.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[allow(unsafe_code)]
fn euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Gathers the facts for this process: user and groups (`id`), store mode, the system
/// configuration, and what Nix says when it can.
pub fn gather(env: &Env, runner: &Runner, nix: Option<&crate::nixcli::Nix>) -> TrustInput {
    let id = |flag: &str| {
        runner
            .run(
                &Cmd::new("id")
                    .arg(flag)
                    .read_only()
                    .timeout(crate::nixcli::QUICK_QUERY_TIMEOUT),
            )
            .map(|o| o.stdout_str().trim().to_owned())
            .unwrap_or_default()
    };
    let uid = euid();
    let user = {
        let u = id("-un");
        if u.is_empty() { uid.to_string() } else { u }
    };
    let groups = id("-Gn").split_whitespace().map(str::to_owned).collect();
    let sys_env = Env {
        nix_conf_dir: env.nix_conf_dir.clone(),
        nix_user_conf_files: Some(Default::default()),
        ..Env::default()
    };
    let store_mode = store_mode();
    let nix_says = match (store_mode, nix) {
        (StoreMode::Daemon, Some(n)) => n.store_trusted(),
        _ => None,
    };
    TrustInput {
        user,
        uid,
        groups,
        store_mode,
        system: nixconf::load(&sys_env),
        system_file: env.system_file(),
        nix_says,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(system_conf: &str, user: &str, groups: &[&str]) -> (tempfile::TempDir, TrustInput) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("nix.conf"), system_conf).unwrap();
        let env = Env {
            nix_conf_dir: Some(d.path().to_owned()),
            nix_user_conf_files: Some(Default::default()),
            ..Env::default()
        };
        let i = TrustInput {
            user: user.into(),
            uid: 1000,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            store_mode: StoreMode::Daemon,
            system: nixconf::load(&env),
            system_file: env.system_file(),
            nix_says: None,
        };
        (d, i)
    }

    fn cache() -> Vec<CacheSpec> {
        vec![CacheSpec {
            url: "https://c.example".into(),
            public_key: "c-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=".into(),
            token_env: None,
        }]
    }

    const RESTART: &str = "sudo systemctl restart nix-daemon";
    const AGAIN: &str = " --url https://c.example --public-key K";

    fn status(i: &TrustInput) -> TrustStatus {
        assess(i, &cache(), RESTART, AGAIN).status
    }

    #[test]
    fn verdicts() {
        let (_d, i) = input("trusted-users = root\n", "alice", &["alice", "users"]);
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Untrusted);
        let fix = r.fix.unwrap();
        assert!(fix.contains("extra-trusted-users = alice"), "{fix}");
        assert!(
            fix.contains("extra-trusted-substituters = https://c.example"),
            "{fix}"
        );
        assert!(fix.contains(RESTART));
        assert!(r.reason.contains(":1"), "{}", r.reason);

        let (_d, i) = input(
            "trusted-users = root @wheel\n",
            "alice",
            &["alice", "wheel"],
        );
        assert_eq!(status(&i), TrustStatus::Trusted);
        let (_d, i) = input("extra-trusted-users = *\n", "bob", &[]);
        assert_eq!(status(&i), TrustStatus::Trusted);
        let (_d, i) = input(
            "trusted-substituters = https://c.example/\nextra-trusted-public-keys = c-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n",
            "bob",
            &[],
        );
        assert_eq!(status(&i), TrustStatus::Allowed);
        // URL allowed but key missing: still ignored (the daemon drops user keys).
        let (_d, i) = input("trusted-substituters = https://c.example\n", "bob", &[]);
        assert_eq!(status(&i), TrustStatus::Untrusted);
        // Nix's own answer wins.
        let (_d, mut i) = input("trusted-users = root\n", "bob", &[]);
        i.nix_says = Some(true);
        assert_eq!(status(&i), TrustStatus::Trusted);
        let (_d, mut i) = input("trusted-users = root\n", "bob", &[]);
        i.store_mode = StoreMode::Local;
        assert_eq!(status(&i), TrustStatus::Trusted);
    }
}
