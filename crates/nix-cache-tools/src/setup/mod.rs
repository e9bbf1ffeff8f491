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
//! Files, by phase, in the order [`run`] calls them: `verify` (the installed Nix,
//! asked first: its version decides the layers read), `request` (flags or cache.toml,
//! `--save`, the tokens), `target` (which file, the layers it is judged against, the
//! netrc, what the files hold now), `apply` (the lock; later the backup and atomic
//! writes), `plan` (the edit on the lossless model, pure), `report` (the outcome, each
//! cache's status and the rendering), `verify` again (trust, Nix's own verdict); trust
//! itself is [`crate::trust`].

mod apply;
mod managed;
pub mod netrc;
mod plan;
mod report;
mod request;
mod target;
mod verify;

use crate::nixconf::restart_command;
pub(crate) use plan::MARK;
use plan::*;
pub use report::{
    CacheReport, CacheStatus, Mode, NetrcAction, NetrcReport, NixCheck, Report, TargetKind,
};
pub use request::{CacheArgs, Resolved, check_save, resolve_caches, save};
use target::*;
use verify::*;

use crate::trust;
use crate::trust::assess;
pub use crate::trust::{TrustReport, TrustStatus};
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
    /// The substituter URL, as it is written to nix.conf.
    pub url: String,
    /// The cache's public key, `NAME:BASE64`; empty for `--remove` by URL alone.
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

/// Why setup-cache did nothing: bad input, or a file it could not use. Each is found
/// before anything is written; [`SetupError::exit_code`] maps it to the shared codes.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "no cache given: no cache.toml in {} or its parents.\n  Run from your project's directory, or pass --config FILE, or give the cache directly: --url URL --public-key KEY (or --cachix NAME --public-key KEY)",
        .dir.display()
    )]
    /// No cache flag was given and no cache.toml was found.
    NoCaches {
        /// The directory the search for cache.toml started from.
        dir: PathBuf,
    },
    /// cache.toml could not be read or is invalid (the error names the file and line).
    #[error(transparent)]
    CacheToml(#[from] CacheTomlError),
    /// `--url` / `--cachix` is not a URL Nix accepts as a substituter.
    #[error("{flag}: {reason}")]
    BadUrl {
        /// The flag and its value, as given.
        flag: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A public key that does not parse, or that would write a broken line.
    #[error("{origin}: {reason}")]
    BadKey {
        /// Where the key came from: the flag, or cache.toml's file and line.
        origin: String,
        /// What is wrong with it.
        reason: KeyError,
    },
    /// Flags that do not go together, or a value they cannot take.
    #[error("{0}")]
    Usage(String),
    #[error(
        "the token in ${var} contains white space or a line break: a netrc token is one word, and anything after the space would become a netrc entry of its own; set {var} to the token alone"
    )]
    /// The token variable holds more than one word.
    BadToken {
        /// The name of the environment variable.
        var: String,
    },
    #[error(
        "{origin}: the private cache's token is read from ${var}, which is not set: `export {var}=...` first (the token is only written to the netrc file, never printed)"
    )]
    /// The token variable of a private cache is unset or empty.
    TokenMissing {
        /// The cache's URL, credentials redacted.
        origin: String,
        /// The name of the environment variable.
        var: String,
    },
    /// No usable default target; the message says why and what to pass.
    #[error("{0}")]
    NoUserFile(String),
    #[error("`{}` is not UTF-8 text; setup-cache only edits UTF-8 nix.conf files: fix its encoding or edit it by hand", .path.display())]
    /// The nix.conf or netrc to edit is not UTF-8 text.
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// Running as one user (root) on a nix.conf of another, the netrc that file names
    /// belongs to neither: it is not read, shown nor written.
    #[error(
        "{} (owned by uid {target_owner}) names the netrc {}, which {}: setup-cache, run by another user (uid {me}), reads and writes only a netrc of the file's owner. Point `netrc-file` at a file of uid {target_owner}, or run setup-cache as that user",
        .target.display(),
        .netrc.display(),
        .why
    )]
    ForeignNetrc {
        /// The nix.conf edited.
        target: PathBuf,
        /// Its owner.
        target_owner: u32,
        /// The netrc it names.
        netrc: PathBuf,
        /// What is wrong with it: "is owned by uid N", "would be made in ..., not theirs".
        why: String,
        /// Who runs setup-cache.
        me: u32,
    },
    /// A file could not be read, locked or written (the error names the path and why).
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl SetupError {
    /// Bad input is [`ExitCode::Usage`] (2); a file that cannot be used is
    /// [`ExitCode::Error`] (1), as in the other tools.
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
            SetupError::CacheToml(_)
            | SetupError::NotUtf8 { .. }
            | SetupError::ForeignNetrc { .. }
            | SetupError::Fs(_) => ExitCode::Error,
        }
    }
}

/// Everything [`run`] needs.
#[derive(Debug, Clone)]
pub struct Request {
    /// The caches to add or remove.
    pub caches: Vec<CacheSpec>,
    /// The nix.conf to edit.
    pub target: Target,
    /// `--remove`: take the caches out instead of adding them.
    pub remove: bool,
    /// `--dry-run`: plan and report (with the diff), write nothing.
    pub dry_run: bool,
    /// The configuration environment (normally [`Env::from_process`]).
    pub env: Env,
    /// Ask the installed `nix` afterwards whether the cache is in effect.
    pub ask_nix: bool,
    /// Check whether the nix-daemon trusts this user.
    pub check_trust: bool,
    /// The flags selecting the caches, for printed commands ([`Resolved::cli_args`]).
    pub cli_args: String,
    /// Called once, with the locked directory, when another run holds the lock on the
    /// target's directory for more than a moment (the binary says it is waiting; the
    /// library prints nothing).
    pub on_lock_wait: fn(&Path),
}

/// Runs setup-cache. Bad input (tokens, unreadable or non-UTF-8 files) is an error
/// before anything is written; a managed target is a report with exit code 3.
pub fn run(req: &Request) -> Result<Report, SetupError> {
    for c in &req.caches {
        crate::redact::register_url_secrets(&c.url);
    }
    let probe = NixProbe::run(req);
    // Read the layers the installed Nix reads (NIX_CONFIG_HOME only from 2.25 on).
    let req = &Request {
        env: match &probe.nix {
            Some(n) => req.env.clone().for_nix_version(n.version()),
            None => req.env.clone(),
        },
        ..req.clone()
    };
    let at = resolve_target(req, &nixconf::load(&req.env))?;
    let mut report = Report::start(req, &at);
    if let Some(m) = managed::detect(&at.target, at.system()) {
        return Ok(report.managed(m, req));
    }
    // Only a regular file (or nothing) may be edited: a device node, FIFO, socket or
    // directory is an error naming it, before anything is written.
    fsutil::check_regular_or_missing(&at.target, fsutil::Follow::NoSymlinks)?;
    let tokens = request::tokens(req)?;
    let _lock = apply::lock(req, &at.target, &mut report.warnings)?;
    let view = View::load(req, at, &mut report.warnings);
    let cur = Current::read(req, &view, !tokens.is_empty(), &mut report.warnings)?;
    let edit = plan::plan(req, &view, &cur, &tokens);
    report.record(req, &view, &cur, &edit);
    if !req.dry_run {
        apply::write(&view.at.target, &cur, &edit, &mut report)?;
    }
    verify::verify(req, &probe, &view, &mut report);
    report.exit_code = report.verdict();
    Ok(report)
}

#[cfg(test)]
mod tests;
