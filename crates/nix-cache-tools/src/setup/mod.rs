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
//!
//! Files, by phase: `request` (flags or cache.toml, `--save`), `target` (which file, the
//! netrc), `plan` (the edit on the lossless model, pure), this file's [`run`] (the
//! orchestration: lock, read, plan, back up and write atomically), `verify` (Nix's own
//! verdict), `report` (the outcome and its rendering); trust is [`crate::trust`].

pub mod managed;
pub mod netrc;
mod plan;
mod report;
mod request;
mod target;
mod verify;

pub use crate::nixconf::restart_command;
use plan::*;
pub use report::{CacheReport, CacheStatus, Mode, NetrcReport, NixCheck, Report, TargetKind};
pub use request::{CacheArgs, Resolved, resolve_caches, save};
use target::*;
use verify::*;

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
    let mut netrc_new = NetrcChange::Keep;
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
                netrc_new = if netrc::has_entries(&t) {
                    NetrcChange::Write(t)
                } else {
                    NetrcChange::Delete
                };
            }
        }
        // The `netrc-file` line setup-cache added goes with the last netrc entry, or
        // once no substituter setup-cache added is left to need it.
        if netrc_new == NetrcChange::Delete
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
                netrc_new = NetrcChange::Write(t);
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
    if let Some(after) = netrc_new.text() {
        let before_n = netrc::redact(old_netrc.as_deref().unwrap_or(""));
        let after_n = netrc::redact(after);
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
            action: match (req.remove, &netrc_new) {
                (false, _) => "written",
                (true, NetrcChange::Delete) => "deleted",
                (true, _) => "removed",
            },
        });
    }

    if !req.dry_run {
        {
            match &netrc_new {
                NetrcChange::Write(text) if !req.remove || old_netrc.is_some() => {
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
                NetrcChange::Delete => fsutil::remove_file_checked(&net_path, netrc_expect)?,
                NetrcChange::Write(_) | NetrcChange::Keep => {}
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

#[cfg(test)]
mod tests;
