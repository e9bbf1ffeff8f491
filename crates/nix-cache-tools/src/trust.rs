//! Will the nix-daemon honour a user-level substituter? (Trust in multi-user installs.)
//!
//! The daemon keeps a client's substituters only for trusted users (`trusted-users`,
//! `@group`, `*`), or when the URL is in its own `substituters` / `trusted-substituters`
//! exactly as given, or after appending a `/` (never after removing one: Nix's
//! daemon checks the set for `url` and for `url + "/"`); the keys must then be in its own
//! `trusted-public-keys`. `netrc-file` is a setting it takes only from trusted users, so
//! an untrusted user's token never reaches it: a private cache needs an entry in the
//! daemon's own netrc. Root and single-user installs (a store the user can write) are
//! always trusted.

use crate::cmd::{Cmd, Runner, shell_quote};
use crate::fsutil::{self, Follow};
use crate::nixconf::{self, Env, Layers};
use crate::setup::CacheSpec;
use crate::{redact, url};
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

/// What the daemon's own netrc file holds, as far as this user can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetrcState {
    /// No file there: the daemon sends no credentials.
    Missing,
    /// The user may not read it (normal: root's, mode 0600), so its entries are unknown.
    NotReadable,
    /// Something the daemon cannot use either (a directory, a FIFO, far too big).
    Unusable(String),
    /// Its `machine` names (lowercase) and whether a `default` entry matches every host.
    Read {
        machines: Vec<String>,
        default: bool,
    },
}

/// The netrc the daemon reads: its `netrc-file`, by default `$NIX_CONF_DIR/netrc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DaemonNetrc {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// What this user can tell of it.
    pub(crate) state: NetrcState,
}

/// Where the daemon's configuration was learned ([`TrustInput::daemon`]).
#[derive(Debug, Clone)]
pub(crate) struct DaemonFacts {
    pub(crate) source: nixconf::daemon::Source,
    /// The user files it reads (root's `~/.config/nix/nix.conf`, ...), highest first.
    pub(crate) user_files: Vec<PathBuf>,
}

/// What the verdict took for the nix-daemon's configuration: the `trust.daemon_config`
/// object of setup-cache's JSON (through the daemon only).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DaemonConfig {
    /// `running-daemon` (its environment read from `/proc`) or `assumed` (a service
    /// manager's defaults: root's home, no Nix variables).
    pub from: &'static str,
    /// The daemon's pid, when read from the running process.
    pub pid: Option<u32>,
    /// Why its environment could not be read, when assumed.
    pub why_assumed: Option<String>,
    /// The files it reads that exist (and `NIX_CONFIG` when set), in the order applied.
    pub files: Vec<String>,
    /// Files it reads that this user may not (root's user file, normally), judged as
    /// setting nothing.
    pub unreadable: Vec<String>,
}

/// Everything the verdict depends on, gathered apart from deciding so tests can build it.
#[derive(Debug, Clone)]
pub struct TrustInput {
    /// The user's name (`id -un`, else the uid).
    pub(crate) user: String,
    /// The effective uid (0: root).
    pub(crate) uid: u32,
    /// The user's groups as the daemon finds them (`id -Gn USER`: the group database,
    /// not this session's groups, which lag behind a `usermod -aG` until the next login),
    /// for `@group` entries of `trusted-users`.
    pub(crate) groups: Vec<String>,
    pub(crate) store_mode: StoreMode,
    /// The configuration the daemon reads: `$NIX_CONF_DIR/nix.conf` and its includes, the
    /// user files of the account it runs as, its `NIX_CONFIG` ([`nixconf::daemon`]).
    pub(crate) system: Layers,
    /// How the daemon's environment was learned, and its user files (through the daemon
    /// only).
    pub(crate) daemon: Option<DaemonFacts>,
    /// `$NIX_CONF_DIR/nix.conf`, as reasons and fixes name it.
    pub(crate) system_file: PathBuf,
    /// The daemon's netrc (private caches).
    pub(crate) daemon_netrc: DaemonNetrc,
    /// `nix store info --json` → `trusted` (Nix ≥ 2.15), `None` where Nix cannot tell.
    pub(crate) nix_says: Option<bool>,
}

/// The verdict on the user's caches (`trust.status` in setup-cache's JSON: `trusted`,
/// `allowed`, `untrusted`).
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

/// The verdict with its explanation and fix: the `trust` object of setup-cache's JSON.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrustReport {
    /// The verdict.
    pub status: TrustStatus,
    /// The user judged (`id -un`, else the uid).
    pub user: String,
    /// How the user reaches the store (`local`, `daemon`).
    pub store_mode: StoreMode,
    /// Plain explanation.
    pub reason: String,
    /// Exact fix (lines to add, commands to run) when `Untrusted`.
    pub fix: Option<String>,
    /// Caches the daemon will ignore.
    pub ignored: Vec<String>,
    /// Private caches the daemon would fetch without credentials: the user's netrc is
    /// not used and the daemon's own netrc has no entry for the host.
    pub missing_credentials: Vec<String>,
    /// What the daemon's configuration was taken to be (through the daemon only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_config: Option<DaemonConfig>,
    /// Caveats for the report's warnings list (not repeated in the JSON `trust` object).
    #[serde(skip)]
    pub(crate) warnings: Vec<String>,
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
        // Set, but to nothing (`trusted-users =`): the line that emptied it.
        None => match l
            .assignments()
            .iter()
            .rev()
            .find(|a| a.name == name && !a.is_extra)
        {
            Some(a) => format!("{}:{}", a.file.display(), a.line),
            None => format!("{} (Nix's default)", file.display()),
        },
    }
}

/// The file an administrator's `extra-NAME` lines must go in for the daemon to use them:
/// the system file, unless a file the daemon reads after it (root's user file, ...) sets
/// one of `names` plainly, which resets an `extra-` line of the system file: then the
/// last such file.
fn extra_target(l: &Layers, names: &[&str], system_file: &Path) -> PathBuf {
    let root_of = |mut i: usize| {
        while let Some((parent, _)) = l.files[i].included_from {
            i = parent;
        }
        i
    };
    l.assignments()
        .iter()
        .filter(|a| !a.is_extra && names.contains(&a.name))
        .map(|a| root_of(a.file_index))
        .filter(|&r| Some(&r) != l.roots.first() && l.files[r].kind != nixconf::LayerKind::EnvVar)
        .max_by_key(|&r| l.roots.iter().position(|&x| x == r))
        .map_or_else(|| system_file.to_owned(), |r| l.files[r].path.clone())
}

/// Whether the daemon keeps substituter `url` from an untrusted user, given its own
/// `substituters` + `trusted-substituters`: exactly as Nix's daemon decides it (string
/// membership of `url`, or of `url + "/"` when `url` does not end in `/`).
fn daemon_allows(allowed: &[String], url: &str) -> bool {
    allowed.iter().any(|a| a == url)
        || (!url.ends_with('/') && allowed.iter().any(|a| *a == format!("{url}/")))
}

/// The daemon's netrc path and what this user can learn of it.
fn daemon_netrc(system: &Layers, conf_dir: &Path) -> DaemonNetrc {
    let path = system
        .effective_scalar("netrc-file")
        .map(|s| s.value)
        .filter(|v| !v.is_empty())
        .map_or_else(|| conf_dir.join("netrc"), PathBuf::from);
    let state = match fsutil::read_regular(&path, fsutil::MAX_TEXT_FILE, Follow::Symlinks) {
        Ok(None) => NetrcState::Missing,
        Ok(Some(f)) => {
            let (machines, default) =
                crate::setup::netrc::hosts(&String::from_utf8_lossy(&f.bytes));
            NetrcState::Read { machines, default }
        }
        Err(e) if e.io.kind() == std::io::ErrorKind::PermissionDenied => NetrcState::NotReadable,
        Err(e) => NetrcState::Unusable(e.to_string()),
    };
    DaemonNetrc { path, state }
}

/// Warnings for caches reached over plain HTTP other than loopback (as cache-analytics
/// flags them): the traffic, and a private cache's token, can be read on the way.
pub(crate) fn transport_warnings(caches: &[CacheSpec]) -> Vec<String> {
    caches
        .iter()
        .filter(|c| url::scheme(&c.url).as_deref() == Some("http") && !url::is_loopback(&c.url))
        .map(|c| {
            let u = redact::url(&c.url);
            let https = format!("https://{}", u.split_once("://").map_or("", |(_, r)| r));
            let token = match &c.token_env {
                Some(var) => format!(
                    " The token from ${var} is sent in the clear too: anyone on the way can copy it."
                ),
                None => String::new(),
            };
            format!(
                "`{u}` is plain HTTP: anyone on the network path can see what you download (signatures still protect its integrity: Nix refuses paths not signed by a trusted key).{token} Use `{https}` if the cache serves HTTPS."
            )
        })
        .collect()
}

/// The `s3://` caches among `caches`, as messages show them (credentials hidden).
pub(crate) fn s3_urls(caches: &[CacheSpec]) -> Vec<String> {
    caches
        .iter()
        .filter(|c| url::scheme(&c.url).as_deref() == Some("s3"))
        .map(|c| redact::url(&c.url))
        .collect()
}

/// The verdict for `caches`, given the facts.
pub fn assess(
    input: &TrustInput,
    caches: &[CacheSpec],
    restart: &str,
    cache_args: &str,
) -> TrustReport {
    let mut r = decide(input, caches, restart, cache_args);
    // A system file this user may not read (mode 0600) is judged as if it set nothing:
    // the verdict may be wrong, and says so.
    if input.nix_says.is_none() {
        let quiet: Vec<&Path> = unreadable_user_files(input).collect();
        for e in &input.system.errors {
            if let nixconf::LoadError::Unreadable { file, reason } = e
                && !quiet.contains(&file.as_path())
            {
                r.warnings.push(format!(
                    "could not read {} ({reason}), which the nix-daemon reads: this verdict takes Nix's defaults for what it sets (trusted-users, trusted-substituters, ...) and may be wrong; ask the administrator, or run with a Nix that answers `nix store info` (2.15 and later)",
                    file.display()
                ));
            }
        }
    }
    if input.store_mode == StoreMode::Daemon {
        let s3 = s3_urls(caches);
        if !s3.is_empty() {
            r.reason.push_str(&format!(
                "; {} is fetched by the nix-daemon, so the S3 credentials that count are the nix-daemon's (its environment, or ~/.aws of the user it runs as, normally root), not yours",
                s3.join(", ")
            ));
        }
    }
    r
}

fn decide(
    input: &TrustInput,
    caches: &[CacheSpec],
    restart: &str,
    cache_args: &str,
) -> TrustReport {
    if let Some(why) = trusted_because(input) {
        return verdict(input, TrustStatus::Trusted, why);
    }
    // The daemon refuses the connection of a user who is neither trusted nor allowed:
    // no cache at all, whatever the configuration.
    // Nix's default is `*` (everyone); `allowed-users =` set empty allows no one.
    let allowed = values(&input.system, "allowed-users");
    if input.store_mode == StoreMode::Daemon
        && input.nix_says.is_none()
        && !matches_user(&allowed, input)
    {
        let mut r = verdict(
            input,
            TrustStatus::Untrusted,
            format!(
                "the nix-daemon refuses you altogether: you (`{}`) are not in allowed-users = {} ({}) nor in trusted-users, so no nix command of yours reaches the store",
                input.user,
                allowed.join(" "),
                where_set(&input.system, "allowed-users", &input.system_file)
            ),
        );
        r.fix = Some(format!(
            "Ask the administrator to add you to `allowed-users` in {} (or to `trusted-users`), then restart the daemon ({restart})",
            extra_target(
                &input.system,
                &["allowed-users", "trusted-users"],
                &input.system_file
            )
            .display()
        ));
        r.ignored = caches.iter().map(|c| redact::url(&c.url)).collect();
        return r;
    }
    let u = Untrusted::gather(input, caches);
    let (relies, warnings) = u.relies_on_daemon_netrc(restart);
    if u.ignored.is_empty() && u.missing.is_empty() {
        let mut r = verdict(
            input,
            TrustStatus::Allowed,
            format!(
                "{}, but the system configuration already allows these caches (trusted-substituters and trusted-public-keys){relies}",
                u.who
            ),
        );
        r.warnings = warnings;
        return r;
    }
    let mut r = verdict(
        input,
        TrustStatus::Untrusted,
        format!("{}{relies}", u.reasons().join("; ")),
    );
    r.fix = Some(u.fix(restart, cache_args));
    r.ignored = u.ignored_urls();
    r.missing_credentials = u
        .missing
        .iter()
        .map(|(c, _, _)| redact::url(&c.url))
        .collect();
    r.warnings = warnings;
    r
}

/// A report with `status` and `reason`, nothing ignored, no fix.
fn verdict(input: &TrustInput, status: TrustStatus, reason: String) -> TrustReport {
    TrustReport {
        status,
        user: input.user.clone(),
        store_mode: input.store_mode,
        reason,
        fix: None,
        ignored: Vec::new(),
        missing_credentials: Vec::new(),
        daemon_config: daemon_config(input),
        warnings: Vec::new(),
    }
}

/// [`DaemonConfig`] from the facts.
fn daemon_config(input: &TrustInput) -> Option<DaemonConfig> {
    use nixconf::daemon::Source;
    let d = input.daemon.as_ref()?;
    let (from, pid, why_assumed) = match &d.source {
        Source::Process { pid } => ("running-daemon", Some(*pid), None),
        Source::Assumed { why } => ("assumed", None, Some(why.clone())),
    };
    let files = input
        .system
        .files
        .iter()
        .filter(|f| f.exists)
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect();
    Some(DaemonConfig {
        from,
        pid,
        why_assumed,
        files,
        unreadable: unreadable_user_files(input)
            .map(|f| f.to_string_lossy().into_owned())
            .collect(),
    })
}

/// The daemon's user files this user may not read (root's, normally): no warning, as
/// they are unreadable on every machine where root's home is private.
fn unreadable_user_files(input: &TrustInput) -> impl Iterator<Item = &Path> {
    input.system.errors.iter().filter_map(|e| match e {
        nixconf::LoadError::Unreadable { file, .. }
            if input
                .daemon
                .as_ref()
                .is_some_and(|d| d.user_files.contains(file)) =>
        {
            Some(file.as_path())
        }
        _ => None,
    })
}

/// Why the user is trusted (root, a single-user install, `trusted-users`, or Nix's own
/// answer, which wins), or `None`.
fn trusted_because(input: &TrustInput) -> Option<String> {
    // Root is trusted when it opens the store itself; through the daemon, root is a user
    // like any other (in `trusted-users` by default, and not when the admin leaves it
    // out: the daemon has no rule for uid 0).
    if input.uid == 0 && input.store_mode == StoreMode::Local {
        return Some("you are root, whom Nix always trusts".into());
    }
    if input.store_mode == StoreMode::Local {
        return Some(
            "single-user install: you open the Nix store directly, so your settings apply".into(),
        );
    }
    let trusted_users = values(&input.system, "trusted-users");
    let matched = trusted_users.iter().find(|t| user_entry_matches(t, input));
    let by_config = matched.is_some();
    if !input.nix_says.unwrap_or(by_config) {
        return None;
    }
    Some(match (input.nix_says, matched) {
        (_, Some(m)) => format!(
            "`{m}` is in trusted-users ({})",
            where_set(&input.system, "trusted-users", &input.system_file)
        ),
        (Some(true), None) => "the nix-daemon reports you as trusted".into(),
        _ => "trusted".into(),
    })
}

/// Whether an entry of `trusted-users` / `allowed-users` names the user: `*`, their
/// name, or `@GROUP` of one of their groups (as the daemon's `matchUser`).
fn user_entry_matches(entry: &str, input: &TrustInput) -> bool {
    entry == "*"
        || entry == input.user
        || entry
            .strip_prefix('@')
            .is_some_and(|g| input.groups.iter().any(|ug| ug == g))
}

/// Whether any entry of `list` names the user ([`user_entry_matches`]).
fn matches_user(list: &[String], input: &TrustInput) -> bool {
    list.iter().any(|e| user_entry_matches(e, input))
}

/// A private cache: its spec, the variable with its token, its host (lowercase).
type Private<'a> = (&'a CacheSpec, &'a str, String);

/// What the daemon does with an untrusted user's caches: the facts the verdict, its
/// reasons and its fix are worded from.
struct Untrusted<'a> {
    input: &'a TrustInput,
    /// The system's `substituters` and `trusted-substituters`.
    sys_subs: Vec<String>,
    /// The system's `trusted-public-keys`.
    sys_keys: Vec<String>,
    /// Caches the daemon ignores: URL not allowed or key not trusted.
    ignored: Vec<&'a CacheSpec>,
    /// Private caches the daemon's netrc has an entry for (or may have: unreadable).
    served: Vec<Private<'a>>,
    /// Private caches the daemon would fetch without credentials.
    missing: Vec<Private<'a>>,
    /// "you (`USER`, groups: ...) are not in trusted-users = ... (where it is set)".
    who: String,
}

impl<'a> Untrusted<'a> {
    fn gather(input: &'a TrustInput, caches: &'a [CacheSpec]) -> Self {
        let sys_subs: Vec<String> = values(&input.system, "substituters")
            .into_iter()
            .chain(values(&input.system, "trusted-substituters"))
            .collect();
        let sys_keys = values(&input.system, "trusted-public-keys");
        // `require-sigs = false` in the system file: the daemon takes unsigned paths (and
        // paths signed by any key) from the caches it allows.
        let sigs_required = input
            .system
            .effective_scalar("require-sigs")
            .and_then(|v| crate::analytics::config::nix_bool(&v.value))
            .unwrap_or(true);
        let ignored: Vec<&CacheSpec> = caches
            .iter()
            .filter(|c| {
                !(daemon_allows(&sys_subs, &c.url)
                    && (!sigs_required || sys_keys.contains(&c.public_key)))
            })
            .collect();
        let covered = |host: &str| match &input.daemon_netrc.state {
            NetrcState::Read { machines, default } => {
                *default || machines.iter().any(|m| m == host)
            }
            NetrcState::NotReadable => true,
            NetrcState::Missing | NetrcState::Unusable(_) => false,
        };
        let (served, missing) = caches
            .iter()
            .filter_map(|c| {
                let var = c.token_env.as_deref()?;
                Some((
                    c,
                    var,
                    url::host(&c.url).unwrap_or_default().to_ascii_lowercase(),
                ))
            })
            .partition(|(_, _, h)| covered(h));
        let trusted_users = values(&input.system, "trusted-users");
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
        Untrusted {
            input,
            sys_subs,
            sys_keys,
            ignored,
            served,
            missing,
            who,
        }
    }

    /// The system's entry for `c`'s URL up to a trailing `/` that the daemon will not
    /// match.
    fn near_miss(&self, c: &CacheSpec) -> Option<String> {
        self.sys_subs
            .iter()
            .find(|s| {
                url::normalize(s) == url::normalize(&c.url)
                    && !daemon_allows(&[(*s).clone()], &c.url)
            })
            .cloned()
    }

    fn ignored_urls(&self) -> Vec<String> {
        self.ignored.iter().map(|c| redact::url(&c.url)).collect()
    }

    /// For the private caches the daemon's netrc serves: the sentence (`; ...`) saying
    /// that the verdict relies on that file, and warnings where it could not be read.
    fn relies_on_daemon_netrc(&self, restart: &str) -> (String, Vec<String>) {
        let netrc = &self.input.daemon_netrc;
        let net_path = netrc.path.display();
        let mut relies = Vec::new();
        let mut warnings = Vec::new();
        for (c, var, host) in &self.served {
            if netrc.state == NetrcState::NotReadable {
                relies.push(format!(
                    "the nix-daemon fetches {} with the credentials of its own netrc, {net_path} (your netrc-file is a setting it takes only from trusted users), which you may not read: it is assumed to hold an entry for {host}",
                    redact::url(&c.url)
                ));
                warnings.push(format!(
                    "could not check that the nix-daemon's netrc {net_path} has an entry for {host} (you may not read it), and the daemon does not use yours: if substitution from {} fails with HTTP 401 or 403, an administrator runs: {}, then {restart}",
                    redact::url(&c.url),
                    admin_cmd(c, var)
                ));
            } else {
                relies.push(format!(
                    "the nix-daemon fetches {} with the entry for {host} in its own netrc, {net_path} (your netrc-file is a setting it takes only from trusted users)",
                    redact::url(&c.url)
                ));
            }
        }
        let relies = if relies.is_empty() {
            String::new()
        } else {
            format!("; {}", relies.join("; "))
        };
        (relies, warnings)
    }

    /// Why the caches do not work: ignored substituters and keys, private caches
    /// without credentials.
    fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if !self.ignored.is_empty() {
            // The URL allowed but not the key: the daemon asks the cache, then refuses
            // every path it offers; else it never asks the cache at all.
            let says = if self
                .ignored
                .iter()
                .all(|c| daemon_allows(&self.sys_subs, &c.url))
            {
                "the daemon refuses its paths: \"not signed by any of the keys in 'trusted-public-keys'\""
            } else {
                "Nix warns \"ignoring untrusted substituter\""
            };
            let mut r = format!(
                "the nix-daemon ignores substituters and keys from users it does not trust, and {}; \
                 so your nix.conf entry for {} has no effect ({says})",
                self.who,
                self.ignored_urls().join(", ")
            );
            for c in &self.ignored {
                if let Some(s) = self.near_miss(c) {
                    r.push_str(&format!(
                        "; the system configuration allows `{}`, not `{}`: the daemon compares URLs exactly (it only adds a missing trailing `/`, it never removes one)",
                        redact::url(&s),
                        redact::url(&c.url)
                    ));
                }
            }
            reasons.push(r);
        }
        if !self.missing.is_empty() {
            reasons.push(self.missing_reason());
        }
        reasons
    }

    fn missing_reason(&self) -> String {
        let netrc = &self.input.daemon_netrc;
        let net_path = netrc.path.display();
        let state = match &netrc.state {
            NetrcState::Missing => format!("its own netrc, {net_path}, does not exist"),
            NetrcState::Unusable(e) => format!("its own netrc cannot be used: {e}"),
            _ => format!(
                "its own netrc, {net_path}, has no entry for {}",
                self.missing
                    .iter()
                    .map(|(_, _, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let lead = if self.ignored.is_empty() {
            format!("{}, and the ", self.who)
        } else {
            "also, the ".to_owned()
        };
        format!(
            "{lead}nix-daemon, which does the downloading, takes netrc-file only from trusted users: it would fetch {} without your token, since {state}",
            self.missing
                .iter()
                .map(|(c, _, _)| redact::url(&c.url))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The exact fix: the URL as the system allows it (no administrator needed), else
    /// what an administrator does, then the daemon's restart.
    fn fix(&self, restart: &str, cache_args: &str) -> String {
        let system = &self.input.system;
        let allow_in = extra_target(
            system,
            &[
                "substituters",
                "trusted-substituters",
                "trusted-public-keys",
            ],
            &self.input.system_file,
        );
        let trust_in = extra_target(system, &["trusted-users"], &self.input.system_file);
        let net_path = self.input.daemon_netrc.path.display();
        let mut fix = String::new();
        let exact: Vec<String> = self
            .ignored
            .iter()
            .filter(|c| self.sys_keys.contains(&c.public_key))
            .filter_map(|c| {
                self.near_miss(c).map(|s| {
                    format!(
                        "setup-cache --remove --url {} && setup-cache --url {} --public-key {}",
                        shell_quote(&c.url),
                        shell_quote(&s),
                        shell_quote(&c.public_key)
                    )
                })
            })
            .collect();
        if !exact.is_empty() {
            fix.push_str(&format!(
                "use the URL exactly as the system configuration allows it (no administrator needed):\n\x20     {}\n\
                 or, ",
                exact.join("\n      ")
            ));
        }
        fix.push_str(&format!(
            "as an administrator, do ONE of these, then restart the daemon ({restart}):\n"
        ));
        if !self.ignored.is_empty() {
            let keys: Vec<&str> = self.ignored.iter().map(|c| c.public_key.as_str()).collect();
            fix.push_str(&format!(
                "\x20 a) allow this cache for all users: add to {}\n\
                 \x20      extra-trusted-substituters = {}\n\
                 \x20      extra-trusted-public-keys = {}\n",
                allow_in.display(),
                self.ignored_urls().join(" "),
                keys.join(" "),
            ));
            if self.missing.is_empty() {
                fix.push_str(&format!(
                    "\x20    (or make it everyone's default: sudo setup-cache --system{cache_args})\n"
                ));
            } else {
                fix.push_str(&format!(
                    "\x20    and give the daemon the token (its netrc, {net_path}; this also makes the cache everyone's default):\n"
                ));
            }
        } else {
            fix.push_str(&format!(
                "\x20 a) give the daemon the token (its netrc, {net_path}; this also makes the cache everyone's default):\n"
            ));
        }
        for (c, var, _) in &self.missing {
            fix.push_str(&format!("\x20      {}\n", admin_cmd(c, var)));
        }
        fix.push_str(&format!(
            "\x20 b) trust your user: add to {}\n\
             \x20      extra-trusted-users = {}",
            trust_in.display(),
            self.input.user,
        ));
        fix
    }
}

/// What an administrator runs to give the daemon a private cache's token.
fn admin_cmd(c: &CacheSpec, var: &str) -> String {
    format!(
        "sudo --preserve-env={var} setup-cache --system --url {} --public-key {} --token-env {var}",
        shell_quote(&c.url),
        shell_quote(&c.public_key)
    )
}

/// How this process reaches the store, as Nix decides it (`NIX_REMOTE`, else `auto`:
/// local when the state directory is writable, else the daemon).
fn store_mode() -> StoreMode {
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

/// Whether the nix-daemon takes this user's settings (substituters, keys, netrc-file):
/// what cache-analytics judges the user's configuration by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserTrust {
    /// Root, a single-user install, or a user in `trusted-users`.
    Trusted,
    /// A multi-user install and the user is not in `trusted-users`.
    Untrusted {
        /// The user's name (`id -un`, else the uid).
        user: String,
    },
}

/// [`UserTrust`] from the facts [`gather`] collects, by the rules [`assess`] applies.
pub(crate) fn user_trust(
    env: &Env,
    runner: &Runner,
    nix: Option<&crate::nixcli::Nix>,
) -> UserTrust {
    let facts = gather(env, runner, nix);
    // With no cache to ask about, `assess` says `Trusted` exactly when the user is.
    match assess(&facts, &[], "", "").status {
        TrustStatus::Trusted => UserTrust::Trusted,
        _ => UserTrust::Untrusted { user: facts.user },
    }
}

/// Gathers the facts for this process: user and groups (`id`), store mode, the system
/// configuration, and what Nix says when it can.
pub(crate) fn gather(env: &Env, runner: &Runner, nix: Option<&crate::nixcli::Nix>) -> TrustInput {
    let id = |args: &[&str]| {
        runner
            .run(
                &Cmd::new("id")
                    .args(args)
                    .read_only()
                    .timeout(crate::nixcli::QUICK_QUERY_TIMEOUT),
            )
            .map(|o| o.stdout_str().trim().to_owned())
            .unwrap_or_default()
    };
    let uid = euid();
    let user = {
        let u = id(&["-un"]);
        if u.is_empty() { uid.to_string() } else { u }
    };
    // The daemon matches `@group` with the group database (getgrnam's members, and the
    // primary group), never the client's session: so does this.
    let mut groups = id(&["-Gn", "--", user.as_str()]);
    if groups.is_empty() {
        groups = id(&["-Gn"]);
    }
    let groups = groups.split_whitespace().map(str::to_owned).collect();
    let store_mode = store_mode();
    let nix_says = match (store_mode, nix) {
        (StoreMode::Daemon, Some(n)) => n.store_trusted(),
        _ => None,
    };
    // Through the daemon: what it reads (its system file, its own user files and
    // NIX_CONFIG). Opening the store directly, the user is trusted whatever it says;
    // the system layers alone are kept for the facts reported.
    let (daemon_env, daemon) = match store_mode {
        StoreMode::Daemon => {
            let d = nixconf::daemon::discover(env);
            let mut e = d.env;
            if let Some(n) = nix {
                e = e.for_nix_version(n.version());
            }
            let user_files = e.user_files().into_iter().map(|(f, _)| f).collect();
            let facts = DaemonFacts {
                source: d.source,
                user_files,
            };
            (e, Some(facts))
        }
        StoreMode::Local => (env.system_only(), None),
    };
    let system = nixconf::load(&daemon_env);
    TrustInput {
        user,
        uid,
        groups,
        store_mode,
        daemon_netrc: daemon_netrc(&system, &daemon_env.conf_dir()),
        system,
        daemon,
        system_file: daemon_env.system_file(),
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
            daemon: None,
            system_file: env.system_file(),
            daemon_netrc: DaemonNetrc {
                path: d.path().join("netrc"),
                state: NetrcState::Missing,
            },
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
        // Set empty: the reason names the line that emptied it, not Nix's default.
        let (_d, i) = input("sandbox = false\ntrusted-users =\n", "alice", &[]);
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert!(
            r.reason.contains("nix.conf:2") && !r.reason.contains("default"),
            "{}",
            r.reason
        );
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

    /// The daemon reads the user file of the account it runs as after the system file:
    /// what it sets counts, and a fix's `extra-` line goes after its plain settings.
    #[test]
    fn the_daemons_own_user_file_counts() {
        let with_daemon_user_file = |system: &str, daemon_user: &str| {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("nix.conf"), system).unwrap();
            let user_file = d.path().join("root-home/.config/nix/nix.conf");
            std::fs::create_dir_all(user_file.parent().unwrap()).unwrap();
            std::fs::write(&user_file, daemon_user).unwrap();
            let env = Env {
                nix_conf_dir: Some(d.path().to_owned()),
                home: Some(d.path().join("root-home")),
                xdg_config_dirs: Some(Default::default()),
                ..Env::default()
            };
            let (_, mut i) = input("", "alice", &["alice"]);
            i.system = nixconf::load(&env);
            i.system_file = env.system_file();
            i.daemon = Some(DaemonFacts {
                source: nixconf::daemon::Source::Process { pid: 7 },
                user_files: vec![user_file.clone()],
            });
            (d, user_file, i)
        };
        let (_d, user_file, i) =
            with_daemon_user_file("trusted-users = root\n", "extra-trusted-users = alice\n");
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Trusted);
        assert!(
            r.reason.contains(&format!("{}:1", user_file.display())),
            "{}",
            r.reason
        );
        let dc = r.daemon_config.unwrap();
        assert_eq!((dc.from, dc.pid), ("running-daemon", Some(7)));
        assert!(
            dc.files.contains(&user_file.display().to_string()),
            "{:?}",
            dc.files
        );

        // Root's user file resets what the system file grants: untrusted, and the fix's
        // lines go in root's file, where they come after the reset.
        let (_d, user_file, i) = with_daemon_user_file(
            "trusted-users = root alice\ntrusted-substituters = https://c.example\n",
            "trusted-users = root\ntrusted-substituters =\n",
        );
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Untrusted);
        assert!(
            r.reason.contains(&format!("{}:1", user_file.display())),
            "{}",
            r.reason
        );
        let fix = r.fix.unwrap();
        assert_eq!(
            fix.matches(&format!("add to {}", user_file.display()))
                .count(),
            2,
            "{fix}"
        );
        // Extra lines only there: the system file keeps the fix.
        let (_d, _, i) =
            with_daemon_user_file("trusted-users = root\n", "extra-trusted-users = bob\n");
        let fix = assess(&i, &cache(), RESTART, AGAIN).fix.unwrap();
        assert_eq!(
            fix.matches(&format!("add to {}", i.system_file.display()))
                .count(),
            2,
            "{fix}"
        );
    }

    /// Root's user file is unreadable to everyone else on most machines: judged as
    /// setting nothing, said in `daemon_config`, no warning on every run.
    #[test]
    fn an_unreadable_daemon_user_file_is_noted_not_warned_about() {
        let (_d, mut i) = input("trusted-users = root\n", "alice", &[]);
        let hidden = PathBuf::from("/root/.config/nix/nix.conf");
        i.system.errors.push(nixconf::LoadError::Unreadable {
            file: hidden.clone(),
            reason: "Permission denied".into(),
        });
        i.daemon = Some(DaemonFacts {
            source: nixconf::daemon::Source::Assumed {
                why: "another user".into(),
            },
            user_files: vec![hidden.clone()],
        });
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        let dc = r.daemon_config.unwrap();
        assert_eq!(dc.from, "assumed");
        assert_eq!(dc.unreadable, [hidden.display().to_string()]);
        // The system file unreadable is still warned about.
        i.system.errors.push(nixconf::LoadError::Unreadable {
            file: i.system_file.clone(),
            reason: "Permission denied".into(),
        });
        let r = assess(&i, &cache(), RESTART, AGAIN);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    }

    const KEY: &str = "c-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

    fn spec(url: &str, token_env: Option<&str>) -> CacheSpec {
        CacheSpec {
            url: url.into(),
            public_key: KEY.into(),
            token_env: token_env.map(str::to_owned),
        }
    }

    /// Nix's daemon: `url` or `url + "/"` must be in the set, nothing else.
    #[test]
    fn substituter_urls_match_exactly_as_the_daemon_matches() {
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(daemon_allows(&set(&["http://h:1"]), "http://h:1"));
        assert!(daemon_allows(&set(&["http://h:1/"]), "http://h:1"));
        assert!(!daemon_allows(&set(&["http://h:1"]), "http://h:1/"));
        assert!(!daemon_allows(&set(&["http://h:1/"]), "http://h:1//"));
        assert!(!daemon_allows(
            &set(&["https://C.example"]),
            "https://c.example"
        ));
        assert!(!daemon_allows(
            &set(&["https://c.example?priority=10"]),
            "https://c.example"
        ));
        assert!(!daemon_allows(&set(&[]), "https://c.example"));

        for (system, user, want) in [
            (
                "trusted-substituters = http://h:1",
                "http://h:1/",
                TrustStatus::Untrusted,
            ),
            (
                "trusted-substituters = http://h:1/",
                "http://h:1",
                TrustStatus::Allowed,
            ),
            (
                "substituters = http://h:1",
                "http://h:1/",
                TrustStatus::Untrusted,
            ),
            (
                "substituters = http://h:1/",
                "http://h:1",
                TrustStatus::Allowed,
            ),
            (
                "extra-trusted-substituters = http://h:1",
                "http://h:1",
                TrustStatus::Allowed,
            ),
        ] {
            let (_d, i) = input(
                &format!("{system}\ntrusted-public-keys = {KEY}\n"),
                "bob",
                &[],
            );
            let r = assess(&i, &[spec(user, None)], RESTART, AGAIN);
            assert_eq!(r.status, want, "{system} / {user}: {}", r.reason);
            if want == TrustStatus::Untrusted {
                assert!(r.reason.contains("exactly"), "{}", r.reason);
                let fix = r.fix.unwrap();
                assert!(
                    fix.starts_with("use the URL exactly") && fix.contains("--url http://h:1 "),
                    "{fix}"
                );
                assert_eq!(r.ignored, vec![user.to_owned()]);
            }
        }
        // Nix's default substituter is `https://cache.nixos.org/`: the URL without the
        // slash is allowed, because the daemon adds it.
        let (_d, i) = input(
            "trusted-public-keys = cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n",
            "bob",
            &[],
        );
        let c = CacheSpec {
            url: "https://cache.nixos.org".into(),
            public_key: "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=".into(),
            token_env: None,
        };
        assert_eq!(
            assess(&i, &[c], RESTART, AGAIN).status,
            TrustStatus::Allowed
        );
    }

    #[test]
    fn netrc_machines_in_every_layout() {
        let (m, d) = crate::setup::netrc::hosts(
            "# comment machine hidden\nmachine A.example password x\nmachine\nb.example\nlogin u password machine\n\
             macdef init\nmachine in-macro\n\nmachine c.example\n",
        );
        assert_eq!(m, ["a.example", "b.example", "c.example"]);
        assert!(!d);
        let (m, d) = crate::setup::netrc::hosts("default login u password p\n");
        assert!(m.is_empty() && d);
    }

    fn private_input(netrc: NetrcState) -> (tempfile::TempDir, TrustInput) {
        let (d, mut i) = input(
            &format!("trusted-substituters = https://c.example\ntrusted-public-keys = {KEY}\n"),
            "bob",
            &[],
        );
        i.daemon_netrc.state = netrc;
        (d, i)
    }

    /// netrc-file is taken only from trusted users: the daemon's own netrc decides.
    #[test]
    fn private_cache_needs_the_daemons_netrc() {
        let c = [spec("https://c.example", Some("C_TOKEN"))];
        for state in [
            NetrcState::Missing,
            NetrcState::Read {
                machines: vec!["other.example".into()],
                default: false,
            },
            NetrcState::Unusable("it is a directory".into()),
        ] {
            let (_d, i) = private_input(state.clone());
            let r = assess(&i, &c, RESTART, AGAIN);
            assert_eq!(r.status, TrustStatus::Untrusted, "{state:?}");
            assert_eq!(r.missing_credentials, ["https://c.example"]);
            assert!(r.ignored.is_empty());
            assert!(r.reason.contains("netrc-file"), "{}", r.reason);
            let fix = r.fix.unwrap();
            assert!(
                fix.contains(
                    "sudo --preserve-env=C_TOKEN setup-cache --system --url https://c.example --public-key c-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY= --token-env C_TOKEN"
                ),
                "{fix}"
            );
            assert!(
                fix.contains(RESTART) && fix.contains("extra-trusted-users = bob"),
                "{fix}"
            );
        }
        // The daemon's netrc has the host (or a default entry): allowed, and it says so.
        for state in [
            NetrcState::Read {
                machines: vec!["c.example".into()],
                default: false,
            },
            NetrcState::Read {
                machines: vec![],
                default: true,
            },
        ] {
            let (_d, i) = private_input(state);
            let r = assess(&i, &c, RESTART, AGAIN);
            assert_eq!(r.status, TrustStatus::Allowed, "{}", r.reason);
            assert!(r.reason.contains("its own netrc"), "{}", r.reason);
            assert!(r.warnings.is_empty());
        }
        // Root's netrc the user may not read: relied on, with a warning saying so.
        let (_d, i) = private_input(NetrcState::NotReadable);
        let r = assess(&i, &c, RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Allowed);
        assert!(
            r.warnings[0].contains("could not check"),
            "{:?}",
            r.warnings
        );
        // Not allowed AND no credentials: one fix covering both.
        let (_d, i) = input("trusted-users = root\n", "bob", &[]);
        let r = assess(&i, &c, RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Untrusted);
        assert_eq!(r.ignored, ["https://c.example"]);
        assert_eq!(r.missing_credentials, ["https://c.example"]);
        let fix = r.fix.unwrap();
        assert!(
            fix.contains("extra-trusted-substituters = https://c.example")
                && fix.contains("--token-env C_TOKEN")
                && !fix.contains("sudo setup-cache --system --url"),
            "{fix}"
        );
        // Trusted users and single-user installs: their own netrc is used.
        let (_d, i) = input("trusted-users = root bob\n", "bob", &[]);
        assert_eq!(assess(&i, &c, RESTART, AGAIN).status, TrustStatus::Trusted);
    }

    #[test]
    fn s3_credentials_are_the_daemons() {
        let c = [spec("s3://bucket?region=eu-west-1", None)];
        let (_d, i) = input("trusted-users = root bob\n", "bob", &[]);
        let r = assess(&i, &c, RESTART, AGAIN);
        assert_eq!(r.status, TrustStatus::Trusted);
        assert!(
            r.reason
                .contains("s3://bucket?region=eu-west-1 is fetched by the nix-daemon")
                && r.reason.contains("not yours"),
            "{}",
            r.reason
        );
        let (_d, mut i) = input("", "bob", &[]);
        i.uid = 0;
        assert!(
            assess(&i, &c, RESTART, AGAIN)
                .reason
                .contains("the nix-daemon's")
        );
        // Opening the store directly, the user's own process fetches: no such sentence.
        i.store_mode = StoreMode::Local;
        assert!(!assess(&i, &c, RESTART, AGAIN).reason.contains("S3"));
    }

    #[test]
    fn plain_http_other_than_loopback_is_warned_about() {
        let w = transport_warnings(&[
            spec("http://cache.example.com", Some("T")),
            spec("http://user:pw@cache2.example.com/x", None),
            spec("http://127.0.0.1:8080", None),
            spec("http://localhost/", None),
            spec("http://[::1]:5000", None),
            spec("https://cache.example.com", None),
        ]);
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(w[0].contains("`http://cache.example.com` is plain HTTP") && w[0].contains("$T"));
        assert!(w[0].contains("Use `https://cache.example.com`"), "{}", w[0]);
        assert!(
            !w[1].contains("pw") && w[1].contains("<redacted>"),
            "{}",
            w[1]
        );
    }
}
