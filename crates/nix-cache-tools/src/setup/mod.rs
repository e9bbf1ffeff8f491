//! `setup-cache`: add a binary cache (substituter + public key) to the nix.conf Nix
//! reads, safely; or take it out again.
//!
//! What [`run`] does, in order:
//! 1. Picks the target: the highest-priority user file ([`nixconf::Env::default_user_file`]),
//!    `$NIX_CONF_DIR/nix.conf` for [`Target::System`] (its `nix.custom.conf` include on a
//!    Determinate Systems install), or an explicit file.
//! 2. Refuses symlinks and files inside the Nix store (NixOS, nix-darwin, home-manager)
//!    and prints what to put in the Nix configuration instead ([`ExitCode::StoreManaged`]).
//! 3. Under a lock on the target, loads every layer Nix reads ([`nixconf::load`]) and
//!    plans the edit on the lossless model: a value already in effect is left alone;
//!    otherwise it is appended to the last `extra-` line setup-cache wrote (marked
//!    [`MARK`]) when that keeps it in effect (simulated over all layers), else added on a
//!    new marked `extra-` line at the end. A line the user wrote is never edited by an
//!    add; `--remove` takes a cache out of the marked lines, or, when none holds it, out
//!    of the user's lines (with a warning).
//! 4. Writes atomically (backup of the previous version next to it), the netrc file for
//!    private caches with mode 0600, or in dry-run mode only prints the unified diff.
//! 5. Checks trust (will the nix-daemon honour a user-level substituter?) and asks Nix
//!    itself whether the cache is now in effect.
//!
//! Nothing here installs software or runs `nix-env`; the only programs run are `id` and
//! read-only `nix` queries.

pub mod managed;
pub mod netrc;

use crate::trust;
pub use crate::trust::{StoreMode, TrustInput, TrustReport, TrustStatus, assess};
pub use managed::Managed;

use crate::cachetoml::{self, CacheTomlError};
use crate::cmd::{Runner, shell_quote};
use crate::fsutil::{self, FsError};
use crate::keys::{KeyError, PublicKey};
use crate::nixcli::{self, Nix};
use crate::nixconf::{self, Env, Layers, NixConf};
use crate::url;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// One cache to configure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheSpec {
    pub url: String,
    pub public_key: String,
    /// Environment variable holding the netrc token of a private cache.
    pub token_env: Option<String>,
}

/// Which nix.conf to edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The user file Nix reads first.
    User,
    /// `$NIX_CONF_DIR/nix.conf`, or `nix.custom.conf` on Determinate installs.
    System,
    /// This file.
    File(PathBuf),
}

pub use crate::cli::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no cache given: no cache.toml in {} or its parents.\n  Run from your project's directory, or pass --config FILE, or give the cache directly: --url URL --public-key KEY (or --cachix NAME --public-key KEY)",
        .dir.display()
    )]
    NoCaches { dir: PathBuf },
    #[error(transparent)]
    CacheToml(#[from] CacheTomlError),
    #[error("{flag}: {reason}")]
    BadUrl { flag: String, reason: String },
    #[error("{origin}: {reason}")]
    BadKey { origin: String, reason: KeyError },
    #[error("{0}")]
    Usage(String),
    #[error(
        "the token in ${var} contains white space or a line break: a netrc token is one word, and anything after the space would become a netrc entry of its own; set {var} to the token alone"
    )]
    BadToken { var: String },
    #[error(
        "{origin}: the private cache's token is read from ${var}, which is not set: `export {var}=...` first (the token is only written to the netrc file, never printed)"
    )]
    TokenMissing { origin: String, var: String },
    /// No usable default target; the message says why and what to pass.
    #[error("{0}")]
    NoUserFile(String),
    #[error("`{}` is not UTF-8 text; setup-cache only edits UTF-8 nix.conf files: fix its encoding or edit it by hand", .path.display())]
    NotUtf8 { path: PathBuf },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl SetupError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SetupError::NoCaches { .. }
            | SetupError::BadUrl { .. }
            | SetupError::BadKey { .. }
            | SetupError::Usage(_)
            | SetupError::TokenMissing { .. }
            | SetupError::BadToken { .. }
            | SetupError::NoUserFile(_) => ExitCode::Usage,
            // A cache.toml that cannot be used is exit 1 in every tool.
            SetupError::CacheToml(_) | SetupError::NotUtf8 { .. } | SetupError::Fs(_) => {
                ExitCode::Error
            }
        }
    }
}

/// Where the caches come from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct CacheArgs {
    pub config: Option<PathBuf>,
    pub url: Option<String>,
    pub cachix: Option<String>,
    pub public_key: Option<String>,
    pub token_env: Option<String>,
    /// Where to look for cache.toml when `config` is not given.
    pub cwd: PathBuf,
    /// `--remove`: `--url` without `--public-key` is allowed (only the URL goes).
    pub remove: bool,
}

/// The caches to act on.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub caches: Vec<CacheSpec>,
    /// The cache.toml they came from (`None` when given with `--url` / `--cachix`).
    pub config: Option<PathBuf>,
    /// The flags that select these caches, for commands printed in advice
    /// (` --url U --public-key K` or ` --config FILE`).
    pub cli_args: String,
}

/// Validates the flags — with cache.toml's own rules ([`cachetoml::cache_url`],
/// [`cachetoml::check_token_env`], [`cachetoml::check_public_key`]) — and reads
/// cache.toml when no cache is given directly.
pub fn resolve_caches(a: &CacheArgs) -> Result<Resolved, SetupError> {
    if let Some(v) = &a.token_env {
        cachetoml::check_token_env(v)
            .map_err(|e| SetupError::Usage(format!("--token-env {v}: {}", e.message)))?;
    }
    let direct = if a.url.is_some() || a.cachix.is_some() {
        let flag = if a.url.is_some() { "--url" } else { "--cachix" };
        let u = cachetoml::cache_url(a.url.as_deref(), a.cachix.as_deref()).map_err(|e| {
            match e.field {
                "url" => SetupError::BadUrl {
                    flag: format!("--url {}", a.url.as_deref().unwrap_or("")),
                    reason: e.message,
                },
                // Both given, or a Cachix name that is not one.
                _ if a.url.is_some() => {
                    SetupError::Usage("give either --url or --cachix, not both".into())
                }
                _ => SetupError::Usage(format!(
                    "--cachix {}: {}",
                    a.cachix.as_deref().unwrap_or(""),
                    e.message
                )),
            }
        })?;
        Some((flag, u))
    } else {
        None
    };
    if let Some((flag, u)) = direct {
        let key = match &a.public_key {
            Some(k) => k.trim().to_owned(),
            // Removing by URL alone is fine: only the substituter is taken out.
            None if a.remove => String::new(),
            None => {
                let page = match &a.cachix {
                    Some(name) => {
                        format!(" (Cachix shows it on https://app.cachix.org/cache/{name})")
                    }
                    None => String::new(),
                };
                return Err(SetupError::Usage(format!(
                    "{flag} needs --public-key NAME:BASE64, the key the cache signs with{page}"
                )));
            }
        };
        if !key.is_empty() {
            PublicKey::parse(&key).map_err(|reason| SetupError::BadKey {
                origin: "--public-key".into(),
                reason,
            })?;
        }
        let cli_args = format!(
            " --url {} --public-key {}",
            shell_quote(&u),
            shell_quote(&key)
        );
        return Ok(Resolved {
            caches: vec![CacheSpec {
                url: u,
                public_key: key,
                token_env: a.token_env.clone(),
            }],
            config: None,
            cli_args,
        });
    }
    if a.public_key.is_some() {
        return Err(SetupError::Usage(
            "--public-key goes with --url URL or --cachix NAME".into(),
        ));
    }
    let (path, toml) = cachetoml::locate(a.config.as_deref(), &a.cwd)?
        .ok_or_else(|| SetupError::NoCaches { dir: a.cwd.clone() })?;
    if toml.caches.is_empty() {
        return Err(SetupError::Usage(format!(
            "{}: no [[cache]] entry: add one (url + public-key) or pass --url URL --public-key KEY",
            path.display()
        )));
    }
    let caches = toml
        .caches
        .iter()
        .map(|c| CacheSpec {
            url: c.url.clone(),
            public_key: c.public_key.clone(),
            token_env: c.token_env.clone().or_else(|| a.token_env.clone()),
        })
        .collect();
    Ok(Resolved {
        caches,
        cli_args: format!(" --config {}", shell_quote(&path.display().to_string())),
        config: Some(path),
    })
}

/// `--save`: adds the caches to cache.toml (created when missing), keeping its comments.
/// Returns the caches that were new there.
pub fn save(path: &Path, caches: &[CacheSpec]) -> Result<Vec<String>, SetupError> {
    // Read-modify-write under the same kind of lock as nix.conf: parallel `--save`s
    // cannot lose each other's entries.
    let _lock = fsutil::FileLock::acquire(path)?;
    let mut added = Vec::new();
    for c in caches {
        if cachetoml::save_cache(path, &c.url, &c.public_key, c.token_env.as_deref())? {
            added.push(c.url.clone());
        }
    }
    Ok(added)
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct Request {
    pub caches: Vec<CacheSpec>,
    pub target: Target,
    pub remove: bool,
    pub dry_run: bool,
    /// The configuration environment (normally [`Env::from_process`]).
    pub env: Env,
    /// Ask the installed `nix` afterwards whether the cache is in effect.
    pub ask_nix: bool,
    /// Check whether the nix-daemon trusts this user.
    pub check_trust: bool,
    /// The flags selecting the caches, for printed commands ([`Resolved::cli_args`]).
    pub cli_args: String,
}

/// What happened to one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    Added,
    AlreadyConfigured,
    Removed,
    NotPresent,
    /// Already in the target file, but a later file or `NIX_CONFIG` overrides it, and
    /// nothing in this file can change that.
    Overridden,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    pub url: String,
    pub public_key: String,
    pub status: CacheStatus,
    /// `file:line` the substituter is (or would be) in effect from; `None` if it is not.
    pub substituter_from: Option<String>,
    pub key_from: Option<String>,
    /// After the edit, is the cache in effect (add) / gone (remove) per the files?
    pub in_effect: bool,
    /// The assignment that keeps it from taking effect (or keeps it in effect after
    /// `--remove`), as `file:line`.
    pub overridden_by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetrcReport {
    pub path: PathBuf,
    pub hosts: Vec<String>,
    /// `written`, `removed`, `deleted` (file removed: no entry left) or `unchanged`.
    pub action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct NixCheck {
    pub version: String,
    /// True when Nix's own view agrees with what was asked for.
    pub ok: bool,
    pub problems: Vec<String>,
}

/// Which nix.conf is edited (`user`, `system` or `file` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    User,
    System,
    File,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::User => "user",
            TargetKind::System => "system",
            TargetKind::File => "file",
        })
    }
}

/// Adding or removing (`add` / `remove` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Add,
    Remove,
}

/// The outcome, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: PathBuf,
    pub target_kind: TargetKind,
    pub mode: Mode,
    pub dry_run: bool,
    /// Whether the target file was (or, in dry-run, would be) changed.
    pub changed: bool,
    /// `--remove` left the target without a byte, so it was (would be) deleted: Nix
    /// reads a missing nix.conf exactly like an empty one, and a file setup-cache created
    /// is gone again. The previous content is in `backup`.
    pub deleted: bool,
    pub backup: Option<PathBuf>,
    pub caches: Vec<CacheReport>,
    /// Unified diff of the change (netrc passwords redacted); empty when unchanged.
    pub diff: String,
    pub netrc: Option<NetrcReport>,
    pub managed: Option<Managed>,
    /// For a managed target: what to put in the Nix configuration instead.
    pub advice: Option<String>,
    pub trust: Option<TrustReport>,
    pub nix_check: Option<NixCheck>,
    /// Daemon restart command (system target).
    pub restart: Option<String>,
    pub warnings: Vec<String>,
    pub exit_code: ExitCode,
}

pub use crate::nixconf::restart_command;

const SUBS: &str = "substituters";
/// The comment on every line setup-cache writes, so that `--remove` takes out exactly
/// what it added and never a value or line the user wrote.
pub const MARK: &str = "# added by setup-cache";
const KEYS: &str = "trusted-public-keys";

fn same_url(a: &str, b: &str) -> bool {
    url::normalize(a) == url::normalize(b)
}

fn sourced_at(s: &nixconf::Sourced) -> String {
    match &s.file {
        Some(f) => format!("{}:{}", f.display(), s.line),
        None => "Nix's default".to_owned(),
    }
}

/// Where `value` of list setting `name` is in effect from, if it is.
fn in_effect(layers: &Layers, name: &str, value: &str) -> Option<String> {
    layers
        .effective(name)
        .iter()
        .find(|s| {
            if name == SUBS {
                same_url(&s.value, value)
            } else {
                s.value == value
            }
        })
        .map(sourced_at)
}

/// The last plain assignment of `name` (the one that resets earlier `extra-` values).
fn last_reset(layers: &Layers, name: &str) -> Option<String> {
    layers
        .assignments()
        .iter()
        .rfind(|a| a.name == name && !a.is_extra)
        .map(|a| format!("{}:{}", a.file.display(), a.line))
}

/// The layers with the target file's content replaced by `conf`.
fn simulate(layers: &Layers, target_idx: &[usize], conf: &NixConf) -> Layers {
    let mut l = layers.clone();
    for &i in target_idx {
        l.files[i].conf = conf.clone();
    }
    l
}

/// Whether setup-cache wrote this line: its comment is exactly [`MARK`].
fn is_marked(line: &nixconf::Line) -> bool {
    line.comment()
        .is_some_and(|c| c.trim_end_matches([' ', '\t', '\r']) == MARK)
}

/// The last `extra-NAME` line setup-cache wrote (the only kind of line it appends to).
fn last_extra_line(conf: &NixConf, name: &str) -> Option<usize> {
    conf.settings()
        .filter(|(l, s)| s.name == name && s.is_extra && is_marked(l))
        .map(|(l, _)| l.number)
        .last()
}

/// Adds `values` of list setting `name` to `conf` so that they take effect, without
/// ever editing a line the user wrote: appended to setup-cache's own last `extra-` line
/// when that keeps them in effect, else on a new marked line at the end.
fn add_values(
    layers: &Layers,
    target_idx: &[usize],
    conf: &mut NixConf,
    name: &str,
    values: &[String],
) {
    let missing: Vec<&str> = {
        let now = simulate(layers, target_idx, conf);
        let mut m: Vec<&str> = Vec::new();
        for v in values {
            if in_effect(&now, name, v).is_none() && !m.contains(&v.as_str()) {
                m.push(v);
            }
        }
        m
    };
    if missing.is_empty() {
        return;
    }
    if let Some(line) = last_extra_line(conf, name) {
        let mut c = conf.clone();
        c.append_values(line, &missing);
        let after = simulate(layers, target_idx, &c);
        let duplicate = conf
            .line(line)
            .and_then(|l| l.setting())
            .is_some_and(|s| s.values.iter().any(|v| missing.contains(&v.as_str())));
        if !duplicate
            && (target_idx.is_empty()
                || missing.iter().all(|v| in_effect(&after, name, v).is_some()))
        {
            *conf = c;
            return;
        }
    }
    let mut c = conf.clone();
    c.append_line(&format!("extra-{name} = {} {MARK}", missing.join(" ")));
    let after = simulate(layers, target_idx, &c);
    // Never duplicate a value that a new line would not bring into effect either (a
    // later file or NIX_CONFIG resets the list): the report says what overrides it.
    let useless: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|v| count_values(conf, name, v) > 0 && in_effect(&after, name, v).is_none())
        .collect();
    let wanted: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|v| !useless.contains(v))
        .collect();
    if !wanted.is_empty() {
        conf.append_line(&format!("extra-{name} = {} {MARK}", wanted.join(" ")));
    }
}

/// How many times `value` appears in `name` lines of `conf`.
fn count_values(conf: &NixConf, name: &str, value: &str) -> usize {
    conf.settings()
        .filter(|(_, s)| s.name == name)
        .flat_map(|(_, s)| s.values.iter())
        .filter(|v| same_value(name, v, value))
        .count()
}

fn same_value(name: &str, a: &str, b: &str) -> bool {
    if name == SUBS { same_url(a, b) } else { a == b }
}

/// Whether `value` is on a `name` line setup-cache wrote.
fn on_marked_line(conf: &NixConf, name: &str, value: &str) -> bool {
    conf.settings()
        .filter(|(l, s)| s.name == name && is_marked(l))
        .any(|(_, s)| s.values.iter().any(|v| same_value(name, v, value)))
}

/// Whether setup-cache added (part of) cache `c` to `conf`: its URL or key is on a
/// marked line (for a cache given by URL alone: a key named after its host is).
fn added_here(conf: &NixConf, c: &CacheSpec) -> bool {
    on_marked_line(conf, SUBS, &c.url)
        || (!c.public_key.is_empty() && on_marked_line(conf, KEYS, &c.public_key))
        || (c.public_key.is_empty()
            && url::host(&c.url).is_some_and(|h| {
                conf.settings()
                    .filter(|(l, s)| s.name == KEYS && is_marked(l))
                    .flat_map(|(_, s)| s.values.iter())
                    .any(|v| crate::keys::named_after(v, h))
            }))
}

/// How many of `values` (setting name, value) `conf` holds.
fn count_values_all(conf: &NixConf, values: &[(&str, &str)]) -> usize {
    values.iter().map(|(n, v)| count_values(conf, n, v)).sum()
}

/// The numbers of the lines that hold one of `values` (setting name, value).
fn lines_with(conf: &NixConf, values: &[(&str, &str)]) -> Vec<usize> {
    conf.settings()
        .filter(|(_, s)| {
            values
                .iter()
                .any(|(n, v)| s.name == *n && s.values.iter().any(|x| same_value(n, x, v)))
        })
        .map(|(l, _)| l.number)
        .collect()
}

/// Which lines [`remove_values`] edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// Only lines setup-cache wrote ([`MARK`]).
    Marked,
    /// Every line, the user's own included.
    All,
}

/// Removes `matches` values from the `name` lines of `conf` chosen by `which`; lines
/// this leaves without a value are deleted (with their line ending, so a file that
/// ended without a newline still does). Returns how many values were removed.
fn remove_values(
    conf: &mut NixConf,
    name: &str,
    which: Lines,
    matches: &dyn Fn(&str) -> bool,
) -> usize {
    let lines: Vec<(usize, usize)> = conf
        .settings()
        .filter(|(l, s)| s.name == name && (which == Lines::All || is_marked(l)))
        .map(|(l, s)| (l.number, s.values.len()))
        .collect();
    let mut removed = 0;
    let mut emptied = Vec::new();
    for (n, before) in lines {
        let r = conf.remove_values(n, matches);
        removed += r;
        if r > 0 && r == before {
            emptied.push(n);
        }
    }
    for n in emptied.into_iter().rev() {
        conf.remove_line(n);
    }
    removed
}

/// Whether a plain `include` line (not `!include`) of a file Nix reads names the target.
fn required_by_include(layers: &Layers, target_idx: &[usize]) -> bool {
    layers.files.iter().any(|f| {
        f.includes.iter().any(|&(line, child)| {
            target_idx.contains(&child)
                && f.conf.line(line).is_some_and(|l| {
                    matches!(
                        l.kind,
                        nixconf::LineKind::Include {
                            optional: false,
                            ..
                        }
                    )
                })
        })
    })
}

/// A file this tool may rewrite, read safely: a regular file of bounded size, never
/// through a symlink (`O_NOFOLLOW`), from the descriptor that was checked; its text and
/// identity (for the same-file check at write time). `None` when it does not exist.
fn read_file(path: &Path) -> Result<Option<(String, fsutil::ReadFile)>, SetupError> {
    match fsutil::read_regular(path, fsutil::MAX_TEXT_FILE, fsutil::Follow::NoSymlinks)? {
        None => Ok(None),
        Some(f) => match String::from_utf8(f.bytes.clone()) {
            Ok(t) => Ok(Some((t, f))),
            Err(_) => Err(SetupError::NotUtf8 {
                path: path.to_owned(),
            }),
        },
    }
}

/// The same path, or two names of the same existing file (`./`, `..`, hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn backup_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(".setup-cache.bak");
    target.with_file_name(name)
}

fn diff(path: &Path, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let p = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&p, &p)
        .to_string()
}

struct Resolution {
    target: PathBuf,
    kind: TargetKind,
    determinate: bool,
}

fn resolve_target(req: &Request, layers: &Layers) -> Result<Resolution, SetupError> {
    Ok(match &req.target {
        Target::User => {
            if req.env.xdg_config_home_is_empty() {
                return Err(SetupError::NoUserFile(
                    "XDG_CONFIG_HOME is set but empty, so Nix reads /nix/nix.conf as your user file: \
                     unset XDG_CONFIG_HOME (or set it to ~/.config), or pass --file PATH"
                        .into(),
                ));
            }
            let target = req.env.default_user_file().ok_or_else(|| {
                SetupError::NoUserFile(if req.env.nix_user_conf_files.is_some() {
                    "NIX_USER_CONF_FILES is set but empty, so Nix reads no user nix.conf: unset it, \
                     or pass --file PATH or --system"
                        .into()
                } else {
                    "cannot tell where your user nix.conf is: HOME and XDG_CONFIG_HOME are both \
                     unset; pass --file PATH"
                        .into()
                })
            })?;
            Resolution {
                target,
                kind: TargetKind::User,
                determinate: false,
            }
        }
        Target::File(p) => {
            let abs = if p.is_absolute() {
                p.clone()
            } else {
                req.env.cwd.clone().unwrap_or_default().join(p)
            };
            Resolution {
                target: abs,
                kind: TargetKind::File,
                determinate: false,
            }
        }
        Target::System => {
            let sys = req.env.system_file();
            // Determinate Systems: nix.conf is the installer's; user settings go in the
            // file it includes, nix.custom.conf.
            match layers.determinate_custom_conf().map(ToOwned::to_owned) {
                Some(c) => Resolution {
                    target: c,
                    kind: TargetKind::System,
                    determinate: true,
                },
                None => Resolution {
                    target: sys,
                    kind: TargetKind::System,
                    determinate: false,
                },
            }
        }
    })
}

/// Netrc path for the target: the `netrc-file` in force when the target file itself
/// sets it (the user's own netrc, whose other entries must keep working); else next to a
/// user file; for the system file, the `netrc-file` in force or `$NIX_CONF_DIR/netrc`
/// (Nix's default).
fn netrc_path(req: &Request, layers: &Layers, target: &Path, system: bool) -> PathBuf {
    if let Some(s) = layers.effective_scalar("netrc-file") {
        if !s.value.is_empty() && s.file.as_deref().is_some_and(|f| same_file(f, target)) {
            return PathBuf::from(s.value);
        }
    }
    if system {
        return layers
            .effective_scalar("netrc-file")
            .map(|s| PathBuf::from(s.value))
            .unwrap_or_else(|| req.env.conf_dir().join("netrc"));
    }
    target.parent().unwrap_or(Path::new(".")).join("netrc")
}

/// Runs setup-cache. Bad input (tokens, unreadable or non-UTF-8 files) is an error
/// before anything is written; a managed target is a report with exit code 3.
pub fn run(req: &Request) -> Result<Report, SetupError> {
    for c in &req.caches {
        crate::redact::register_url_secrets(&c.url);
    }
    // `nix` on PATH that cannot even print its version usually means the configuration
    // already stops it (a missing `include`, a syntax error): remembered, and reported
    // as the check with Nix failing instead of skipping the check silently.
    let mut nix_failed = None;
    // The configuration as this tool reads it, before anything runs Nix: when it already
    // stops Nix (an include cycle, a missing include, a line Nix rejects, a FIFO), Nix is
    // not asked at all (Nix 2.8 recurses without end on a self-including nix.conf), and
    // what stops it is reported with its file and line instead.
    let blocking: Vec<String> = nixconf::load(&req.env)
        .errors
        .iter()
        .filter(|e| !matches!(e, nixconf::LoadError::Unreadable { .. }))
        .map(ToString::to_string)
        .collect();
    if !blocking.is_empty() {
        nix_failed = Some(format!(
            "Nix cannot start with this configuration: {}",
            blocking.join("; ")
        ));
    }
    let nix = if (req.ask_nix || req.check_trust) && blocking.is_empty() {
        match which::which("nix") {
            Ok(_) => Nix::detect(Runner::new(), None)
                .map_err(|e| nix_failed = Some(e.to_string()))
                .ok(),
            Err(_) => None,
        }
    } else {
        None
    };
    // Read the layers the installed Nix reads (NIX_CONFIG_HOME only from 2.25 on).
    let req = &Request {
        env: match &nix {
            Some(n) => req.env.clone().for_nix_version(n.version()),
            None => req.env.clone(),
        },
        ..req.clone()
    };
    let pre_layers = nixconf::load(&req.env);
    let Resolution {
        target,
        kind,
        determinate,
    } = resolve_target(req, &pre_layers)?;
    let system = kind == TargetKind::System;
    let mut report = Report {
        target: target.clone(),
        target_kind: kind,
        mode: if req.remove { Mode::Remove } else { Mode::Add },
        dry_run: req.dry_run,
        changed: false,
        deleted: false,
        backup: None,
        caches: Vec::new(),
        diff: String::new(),
        netrc: None,
        managed: None,
        advice: None,
        trust: None,
        nix_check: None,
        restart: None,
        warnings: Vec::new(),
        exit_code: ExitCode::Ok,
    };

    if let Some(m) = managed::detect(&target, system) {
        report.advice = Some(managed::advice(
            &m,
            &target,
            &req.caches,
            req.remove,
            &req.cli_args,
        ));
        report.managed = Some(m);
        report.exit_code = ExitCode::StoreManaged;
        return Ok(report);
    }

    // Only a regular file (or nothing) may be edited: a device node, FIFO, socket or
    // directory is an error naming it, before anything is written.
    fsutil::check_regular_or_missing(&target, fsutil::Follow::NoSymlinks)?;

    // Tokens first: a missing one is an error before anything is touched.
    let mut tokens = Vec::new();
    if !req.remove {
        for c in &req.caches {
            if let Some(var) = &c.token_env {
                let token = std::env::var(var)
                    .ok()
                    .filter(|t| !t.trim().is_empty())
                    .ok_or_else(|| SetupError::TokenMissing {
                        origin: crate::redact::url(&c.url),
                        var: var.clone(),
                    })?;
                let token = token.trim();
                // netrc is a stream of words: white space inside the token would make
                // the rest of it a new entry (`machine evil.example ...`).
                if token.contains(char::is_whitespace) {
                    return Err(SetupError::BadToken { var: var.clone() });
                }
                let host = url::host(&c.url).unwrap_or_default().to_owned();
                tokens.push((host, token.to_owned()));
            }
        }
    }

    // Everything from reading to writing happens under the lock, so concurrent runs
    // cannot lose each other's edits.
    // `--remove` with no directory for the target has nothing to take out: no lock, so
    // that the lock does not create `~/.config/nix` just to find it empty.
    let nothing_to_remove = req.remove && target.parent().is_some_and(|d| !d.exists());
    let _lock = if req.dry_run || nothing_to_remove {
        None
    } else {
        Some(fsutil::FileLock::acquire(&target)?)
    };
    if _lock.is_some() {
        let netrc_guess = target.with_file_name("netrc");
        for stale in [target.clone(), backup_path(&target), netrc_guess]
            .iter()
            .flat_map(|p| fsutil::remove_stale_temps(p))
        {
            report.warnings.push(format!(
                "removed {}, a temporary file an interrupted earlier run left behind",
                stale.display()
            ));
        }
    }
    let real_layers = nixconf::load(&req.env);
    let real_idx: Vec<usize> = real_layers
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| same_file(&f.path, &target))
        .map(|(i, _)| i)
        .collect();
    let reads_target = !real_idx.is_empty();
    // What the edit is judged against: every layer for the user file; for --system only
    // the system layers (the daemon reads nothing else); for --file only that file.
    let layers = match &req.target {
        Target::User => real_layers.clone(),
        Target::System => nixconf::load(&req.env.system_only()),
        Target::File(_) => nixconf::load_alone(&target),
    };
    let target_idx: Vec<usize> = layers
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| same_file(&f.path, &target))
        .map(|(i, _)| i)
        .collect();
    if !reads_target {
        report.warnings.push(format!(
            "Nix does not read {} in this environment (it is not {} nor included from it): the change has no effect until it is",
            target.display(),
            match req.env.default_user_file() {
                Some(u) => format!("{} nor {}", req.env.system_file().display(), u.display()),
                None => req.env.system_file().display().to_string(),
            }
        ));
    }
    for e in &real_layers.errors {
        // Nix skips unreadable top-level files silently; everything else stops it.
        if !matches!(e, nixconf::LoadError::Unreadable { .. }) {
            report
                .warnings
                .push(format!("configuration problem Nix will hit: {e}"));
        }
    }
    // Read through the descriptor of the very file checked, never through a symlink
    // swapped in since (O_NOFOLLOW); the write later replaces only that same file.
    let target_read = read_file(&target)?;
    let target_expect = fsutil::Expect::after_read(target_read.as_ref().map(|(_, f)| f));
    let old_text = target_read.as_ref().map(|(t, _)| t.clone());
    let old = old_text.clone().unwrap_or_default();
    let mut conf = NixConf::parse(&old);
    let before = simulate(&layers, &target_idx, &conf);

    let urls: Vec<String> = req.caches.iter().map(|c| c.url.clone()).collect();
    let keys: Vec<String> = req.caches.iter().map(|c| c.public_key.clone()).collect();
    let net_path = netrc_path(req, &before, &target, system);
    let mut netrc_new: Option<Option<String>> = None; // Some(None) = delete the file
    // The netrc is read only when it may change: for a token to write (an error then
    // stops the run), or for entries to take out (when it cannot be read then, and no
    // cache removed is a private one, the removal goes on and says what it left).
    let netrc_read = if tokens.is_empty() && !req.remove {
        None
    } else {
        match read_file(&net_path) {
            Ok(r) => r,
            Err(e) if req.remove && req.caches.iter().all(|c| c.token_env.is_none()) => {
                report.warnings.push(format!(
                    "{e}: the netrc was left as it is; take out any entry for {} yourself",
                    req.caches
                        .iter()
                        .filter_map(|c| url::host(&c.url))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                None
            }
            Err(e) => return Err(e),
        }
    };
    let netrc_expect = fsutil::Expect::after_read(netrc_read.as_ref().map(|(_, f)| f));
    let old_netrc = netrc_read.map(|(t, _)| t);

    let mut by_name: Vec<String> = Vec::new();
    if req.remove {
        // What setup-cache added is taken out of its own marked lines only, so that
        // add+remove gives back the original bytes. A cache none of whose values is on a
        // marked line was written by the user: it is taken out of their lines (a line
        // left without a value goes) and a warning says so.
        let orig = conf.clone();
        let ours: Vec<bool> = req.caches.iter().map(|c| added_here(&conf, c)).collect();
        let pick = |mode: Lines| -> Vec<&CacheSpec> {
            req.caches
                .iter()
                .zip(&ours)
                .filter(|(_, o)| **o == (mode == Lines::Marked))
                .map(|(c, _)| c)
                .collect()
        };
        for mode in [Lines::Marked, Lines::All] {
            let urls: Vec<&str> = pick(mode).iter().map(|c| c.url.as_str()).collect();
            remove_values(&mut conf, SUBS, mode, &|v| {
                urls.iter().any(|u| same_url(u, v))
            });
        }
        // A cache removed by URL alone (`--remove --cachix NAME`): its key goes too when
        // it is named after the cache's host (`HOST-1:...`, as Cachix and most caches
        // name them) and no substituter left in effect is on that host.
        let now = simulate(&layers, &target_idx, &conf);
        let hosts_left: Vec<String> = now
            .effective(SUBS)
            .iter()
            .filter_map(|s| url::host(&s.value).map(str::to_owned))
            .collect();
        for mode in [Lines::Marked, Lines::All] {
            let named: Vec<String> = pick(mode)
                .iter()
                .filter(|c| c.public_key.is_empty())
                .filter_map(|c| url::host(&c.url))
                .filter(|h| !hosts_left.iter().any(|l| l == h))
                .flat_map(|h| {
                    conf.settings()
                        .filter(|(l, s)| s.name == KEYS && (mode == Lines::All || is_marked(l)))
                        .flat_map(|(_, s)| s.values.iter())
                        .filter(|v| crate::keys::named_after(v, h))
                        .cloned()
                        .collect::<Vec<_>>()
                })
                .collect();
            let keys: Vec<&str> = pick(mode)
                .iter()
                .map(|c| c.public_key.as_str())
                .filter(|k| !k.is_empty())
                .collect();
            remove_values(&mut conf, KEYS, mode, &|v| {
                keys.contains(&v) || named.iter().any(|k| k == v)
            });
            by_name.extend(named);
        }
        for c in pick(Lines::All) {
            let mut values = vec![(SUBS, c.url.as_str())];
            if !c.public_key.is_empty() {
                values.push((KEYS, c.public_key.as_str()));
            } else if let Some(h) = url::host(&c.url) {
                values.extend(
                    by_name
                        .iter()
                        .filter(|k| crate::keys::named_after(k, h))
                        .map(|k| (KEYS, k.as_str())),
                );
            }
            if count_values_all(&conf, &values) < count_values_all(&orig, &values) {
                let lines: Vec<String> = lines_with(&orig, &values)
                    .iter()
                    .map(usize::to_string)
                    .collect();
                report.warnings.push(format!(
                    "{} was not added by setup-cache (no line marked `{MARK}` has it): {} of the line(s) you wrote, {} line {}",
                    c.url,
                    if req.dry_run { "would be taken out" } else { "taken out" },
                    target.display(),
                    lines.join(", ")
                ));
            }
        }
        if let Some(text) = &old_netrc {
            let mut t = text.clone();
            let mut any = false;
            for c in &req.caches {
                let host = url::host(&c.url).unwrap_or_default();
                let (n, had) = netrc::remove(&t, host);
                any |= had;
                t = n;
            }
            if any {
                if netrc::has_entries(&t) {
                    netrc_new = Some(Some(t));
                } else {
                    netrc_new = Some(None);
                }
            }
        }
        // The `netrc-file` line setup-cache added goes with the last netrc entry, or
        // once no substituter setup-cache added is left to need it.
        if matches!(netrc_new, Some(None))
            || !conf.settings().any(|(l, s)| s.name == SUBS && is_marked(l))
        {
            remove_values(&mut conf, "netrc-file", Lines::Marked, &|_| true);
        }
    } else {
        add_values(&layers, &target_idx, &mut conf, SUBS, &urls);
        add_values(&layers, &target_idx, &mut conf, KEYS, &keys);
        if !tokens.is_empty() {
            let mut t = old_netrc.clone().unwrap_or_default();
            for (host, token) in &tokens {
                t = netrc::upsert(&t, host, token);
            }
            if old_netrc.as_deref() != Some(t.as_str()) {
                netrc_new = Some(Some(t));
            }
            let now = simulate(&layers, &target_idx, &conf);
            let current = now
                .effective_scalar("netrc-file")
                .map(|s| PathBuf::from(s.value));
            let default = req.env.conf_dir().join("netrc");
            let needs_line = match &current {
                Some(c) => *c != net_path,
                None => net_path != default,
            };
            if needs_line {
                if let Some(c) = current.filter(|c| c.exists()) {
                    report.warnings.push(format!(
                        "netrc-file was {}; it now points to {}: copy any other entries you need from the old file",
                        c.display(),
                        net_path.display()
                    ));
                }
                conf.append_line(&format!("netrc-file = {} {MARK}", net_path.display()));
            }
        }
    }

    // What the edit leads to where Nix reads the file: for --file F that Nix reads here,
    // every layer (a later file may still reset the list), though what to write was
    // judged on F alone.
    let (eff_layers, eff_idx) = match &req.target {
        Target::File(_) if reads_target => (&real_layers, &real_idx),
        _ => (&layers, &target_idx),
    };
    let after = simulate(eff_layers, eff_idx, &conf);
    let new_text = conf.render();
    report.changed = new_text != old;
    // Never delete a file a plain `include` names: Nix stops when that one is missing.
    report.deleted = req.remove
        && report.changed
        && new_text.is_empty()
        && !required_by_include(&real_layers, &real_idx);
    for c in &req.caches {
        let (s_before, k_before) = (
            in_effect(&before, SUBS, &c.url),
            in_effect(&before, KEYS, &c.public_key),
        );
        let (s_after, k_after) = (
            in_effect(&after, SUBS, &c.url),
            in_effect(&after, KEYS, &c.public_key),
        );
        let old_conf = NixConf::parse(&old);
        let counts = |cf: &NixConf| {
            (
                count_values(cf, SUBS, &c.url),
                count_values(cf, KEYS, &c.public_key),
            )
        };
        let (s_old, k_old) = counts(&old_conf);
        let (s_new, k_new) = counts(&conf);
        let status = if req.remove {
            if s_new < s_old || k_new < k_old {
                CacheStatus::Removed
            } else {
                CacheStatus::NotPresent
            }
        } else if s_before.is_some() && k_before.is_some() {
            CacheStatus::AlreadyConfigured
        } else if s_new > s_old || k_new > k_old {
            CacheStatus::Added
        } else {
            CacheStatus::Overridden
        };
        let effective_ok = if req.remove {
            s_after.is_none()
        } else {
            eff_idx.is_empty() || (s_after.is_some() && k_after.is_some())
        };
        let overridden_by = if effective_ok {
            None
        } else if req.remove {
            s_after.clone()
        } else if s_after.is_none() {
            last_reset(&after, SUBS)
        } else {
            last_reset(&after, KEYS)
        };
        // Removed by URL alone: the key that went with it (named after its host).
        let public_key = if c.public_key.is_empty() {
            url::host(&c.url)
                .and_then(|h| by_name.iter().find(|k| crate::keys::named_after(k, h)))
                .cloned()
                .unwrap_or_default()
        } else {
            c.public_key.clone()
        };
        report.caches.push(CacheReport {
            url: c.url.clone(),
            public_key,
            status,
            substituter_from: s_after,
            key_from: k_after,
            in_effect: effective_ok,
            overridden_by,
        });
    }

    report.diff = diff(
        &target,
        &crate::redact::nixconf(&old),
        &crate::redact::nixconf(&new_text),
    );
    if let Some(n) = &netrc_new {
        let before_n = netrc::redact(old_netrc.as_deref().unwrap_or(""));
        let after_n = netrc::redact(n.as_deref().unwrap_or(""));
        report.diff.push_str(&diff(&net_path, &before_n, &after_n));
        let hosts = req
            .caches
            .iter()
            .filter_map(|c| url::host(&c.url))
            .map(str::to_owned)
            .collect();
        report.netrc = Some(NetrcReport {
            path: net_path.clone(),
            hosts,
            action: match (req.remove, n) {
                (false, _) => "written",
                (true, Some(_)) => "removed",
                (true, None) => "deleted",
            },
        });
    }

    if !req.dry_run {
        if let Some(n) = &netrc_new {
            match n {
                Some(text) if !req.remove || old_netrc.is_some() => {
                    fsutil::replace_file(
                        &net_path,
                        text.as_bytes(),
                        &fsutil::Replace {
                            mode: Some(0o600),
                            owner: None,
                            expect: netrc_expect,
                        },
                    )?;
                }
                None => fsutil::remove_file_checked(&net_path, netrc_expect)?,
                _ => {}
            }
        }
        if report.changed {
            if let Some((prev, read)) = &target_read {
                // The backup is the user's file as it was: same owner and mode, so a user
                // can read the backup root made of their nix.conf.
                let b = backup_path(&target);
                fsutil::replace_file(
                    &b,
                    prev.as_bytes(),
                    &fsutil::Replace {
                        mode: Some(read.mode & 0o7777),
                        owner: Some((read.uid, read.gid)),
                        expect: fsutil::Expect::Any,
                    },
                )?;
                report.backup = Some(b);
            }
            if report.deleted {
                fsutil::remove_file_checked(&target, target_expect)?;
            } else {
                fsutil::replace_file(
                    &target,
                    new_text.as_bytes(),
                    &fsutil::Replace {
                        expect: target_expect,
                        ..fsutil::Replace::default()
                    },
                )?;
            }
        }
    }

    if system {
        report.restart = Some(restart_command(determinate).to_owned());
    }

    if !req.remove {
        report
            .warnings
            .extend(trust::transport_warnings(&req.caches));
    }
    if req.check_trust && !req.remove && !system {
        let input = trust::gather(&req.env, &Runner::new(), nix.as_ref());
        let t = assess(&input, &req.caches, restart_command(false), &req.cli_args);
        report.warnings.extend(t.warnings.iter().cloned());
        report.trust = Some(t);
    }

    if req.ask_nix && !req.dry_run && !target_idx.is_empty() {
        if let Some(n) = &nix {
            report.nix_check = Some(ask_nix(n, req));
        } else if let Some(e) = &nix_failed {
            let at = locate_nix_error(&real_layers, e)
                .map(|at| format!(" (the value Nix rejects is at {at})"))
                .unwrap_or_default();
            report.nix_check = Some(NixCheck {
                version: "Nix (it did not start)".to_owned(),
                ok: false,
                problems: vec![format!(
                    "could not ask Nix, so nothing is in effect until this is fixed: {e}{at}"
                )],
            });
        }
    }
    if let Some(c) = &mut report.nix_check {
        for p in &mut c.problems {
            if let Some(at) = locate_nix_error(&real_layers, p) {
                if !p.contains(&at) {
                    p.push_str(&format!(" (the value Nix rejects is at {at})"));
                }
            }
        }
    }

    report.exit_code = if report
        .trust
        .as_ref()
        .is_some_and(|t| t.status == TrustStatus::Untrusted)
    {
        ExitCode::Untrusted
    } else if report.caches.iter().any(|c| !c.in_effect)
        || report.nix_check.as_ref().is_some_and(|c| !c.ok)
    {
        ExitCode::NotInEffect
    } else {
        ExitCode::Ok
    };
    Ok(report)
}

/// Nix names a store it cannot parse by its value, not by its line (Nix 2.34 parses
/// every substituter while loading the configuration: `Cannot parse Nix store '"https://x"'`;
/// 2.8 says `don't know how to open Nix store 'x'`): the `file:line` that holds it.
fn locate_nix_error(layers: &Layers, msg: &str) -> Option<String> {
    let line = msg.lines().find(|l| l.contains("Nix store '"))?;
    let rest = &line[line.find("Nix store '")? + "Nix store '".len()..];
    let value = &rest[..rest.rfind('\'')?];
    layers
        .assignments()
        .iter()
        .rfind(|a| a.values.iter().any(|v| v == value))
        .map(|a| format!("{}:{}", a.file.display(), a.line))
}

/// Asks Nix whether each cache is (add) / is no longer (remove) in effect.
fn ask_nix(nix: &Nix, req: &Request) -> NixCheck {
    let version = nix.version().to_string();
    let cfg = match nix.show_config() {
        Ok(c) => c,
        Err(e) => {
            return NixCheck {
                version,
                ok: false,
                problems: vec![format!("could not ask Nix: {e}")],
            };
        }
    };
    let get = |k: &str| cfg.get(k).map(nixcli::setting_strings).unwrap_or_default();
    let subs = get(SUBS);
    let keys = get(KEYS);
    let mut problems = Vec::new();
    for c in &req.caches {
        let has_url = subs.iter().any(|s| same_url(s, &c.url));
        let has_key = keys.contains(&c.public_key);
        if req.remove {
            if has_url {
                problems.push(format!(
                    "Nix still has {} in substituters (set in another file or NIX_CONFIG)",
                    c.url
                ));
            }
        } else {
            if !has_url {
                problems.push(format!(
                    "Nix does not have {} in substituters: a later file or NIX_CONFIG sets `substituters` (Nix has: {})",
                    c.url,
                    subs.join(" ")
                ));
            }
            if !has_key {
                problems.push(format!(
                    "Nix does not have the key {} in trusted-public-keys: a later file or NIX_CONFIG sets it",
                    c.public_key
                ));
            }
        }
    }
    NixCheck {
        version,
        ok: problems.is_empty(),
        problems,
    }
}

impl Report {
    /// The human-readable report.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let dry = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        o.push_str(&format!(
            "setup-cache: {} ({} nix.conf){dry}\n",
            self.target.display(),
            self.target_kind
        ));
        if let Some(a) = &self.advice {
            o.push_str("nothing written: ");
            o.push_str(a);
            o.push('\n');
            return o;
        }
        for c in &self.caches {
            let what = match (c.status, self.dry_run) {
                (CacheStatus::Added, false) => "added",
                (CacheStatus::Added, true) => "would add",
                (CacheStatus::AlreadyConfigured, _) => "already configured",
                (CacheStatus::Removed, false) => "removed",
                (CacheStatus::Removed, true) => "would remove",
                (CacheStatus::NotPresent, _) => "not in this file",
                (CacheStatus::Overridden, _) => "in this file but overridden",
            };
            o.push_str(&format!("  {what}: {}\n", c.url));
            if !self.dry_run || c.status == CacheStatus::AlreadyConfigured {
                if let Some(f) = &c.substituter_from {
                    o.push_str(&format!("    substituter in effect from {f}\n"));
                }
                if let Some(f) = &c.key_from {
                    o.push_str(&format!("    key {} in effect from {f}\n", c.public_key));
                }
            }
            if let Some(by) = &c.overridden_by {
                if self.mode == Mode::Remove {
                    let how = if by.starts_with("NIX_CONFIG:") {
                        "unset the NIX_CONFIG environment variable or take the cache out of it"
                            .to_owned()
                    } else {
                        let file = by.rsplit_once(':').map_or(by.as_str(), |(f, _)| f);
                        format!(
                            "take it out there too: setup-cache --remove --file {} {} (as root for a system file)",
                            shell_quote(file),
                            match c.public_key.is_empty() {
                                true => format!("--url {}", shell_quote(&c.url)),
                                false => format!(
                                    "--url {} --public-key {}",
                                    shell_quote(&c.url),
                                    shell_quote(&c.public_key)
                                ),
                            }
                        )
                    };
                    o.push_str(&format!("    still in effect from {by}: {how}\n"));
                } else if by.starts_with("NIX_CONFIG:") {
                    o.push_str(&format!(
                        "    NOT in effect: the NIX_CONFIG environment variable ({by}) sets the list again after every file; unset it, or add the cache to it as extra-substituters / extra-trusted-public-keys\n"
                    ));
                } else {
                    o.push_str(&format!(
                        "    NOT in effect: {by} sets the list again after this file; add the cache there, or remove that line\n"
                    ));
                }
            }
        }
        if !self.diff.is_empty() && self.dry_run {
            o.push('\n');
            o.push_str(&self.diff);
            if !self.diff.ends_with('\n') {
                o.push('\n');
            }
        }
        if !self.changed && !self.dry_run {
            o.push_str("  file unchanged\n");
        }
        if self.deleted {
            let verb = if self.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            o.push_str(&format!(
                "  {verb} {}: nothing left in it (Nix reads no file like an empty one)\n",
                self.target.display()
            ));
        }
        if let Some(b) = &self.backup {
            o.push_str(&format!("  previous version saved as {}\n", b.display()));
        }
        if let Some(n) = &self.netrc {
            o.push_str(&format!(
                "  netrc {} {} (mode 0600) for {}\n",
                n.path.display(),
                n.action,
                n.hosts.join(", ")
            ));
        }
        if let Some(c) = &self.nix_check {
            if c.ok {
                let state = if self.mode == Mode::Remove {
                    "no longer in effect"
                } else {
                    "in effect"
                };
                o.push_str(&format!(
                    "  checked with {} (the client's view): {state}\n",
                    c.version
                ));
            } else {
                for p in &c.problems {
                    o.push_str(&format!("  checked with {}: {p}\n", c.version));
                }
            }
        }
        if let Some(t) = &self.trust {
            match t.status {
                TrustStatus::Trusted => o.push_str(&format!("  trust: ok, {}\n", t.reason)),
                TrustStatus::Allowed => o.push_str(&format!("  trust: ok, {}\n", t.reason)),
                TrustStatus::Untrusted => {
                    o.push_str(&format!("\nNOT USABLE YET: {}.\n", t.reason));
                    if let Some(f) = &t.fix {
                        o.push_str(&format!("Fix: {f}\n"));
                    }
                }
            }
        }
        if let Some(r) = &self.restart {
            if self.changed {
                o.push_str(&format!(
                    "  the nix-daemon reads this file only at start: {r}\n"
                ));
            }
        }
        for w in &self.warnings {
            o.push_str(&format!("warning: {w}\n"));
        }
        o
    }
}

#[cfg(test)]
mod tests;
