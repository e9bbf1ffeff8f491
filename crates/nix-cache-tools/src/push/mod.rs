//! `push-cache`: upload a build's closure to a binary cache, filtered, signed, skipping
//! what the cache already holds.
//!
//! Steps of [`run`], plan → upload → report, each in its own file:
//! 1. **Roots and closure** (`roots.rs`): the given store paths, `result` links and
//!    installables (`.#pkg`, built with `nix build --no-link --json`), or every
//!    `./result*` link in the directory; the closure with NAR sizes, hashes and
//!    references straight from the store's SQLite database when it opens read-only
//!    ([`crate::store::db::read_closure`]: only the closure, by index), else `nix
//!    path-info --json --recursive`. `--source` / `PUSH_CACHE_SOURCE` forces one.
//! 2. **Filter** ([`plan`], pure): the regex is matched against every path of the
//!    closure. A match that a pushed path references is pushed anyway (a binary cache
//!    must never hold a path whose references it lacks) with a warning naming both
//!    paths; every other match is left out and listed.
//! 3. **Skip what is there**: for `file://`, `http(s)://` and `s3://` targets every `.narinfo` is
//!    read in parallel ([`crate::binarycache`]) and counts only when it parses and names
//!    the path. A cache without `nix-cache-info` is new and not asked.
//! 4. **Upload**: `file://`, `http(s)://` and `s3://` through push-cache's own pipeline
//!    (`native.rs`, [`crate::upload`]); other store URIs and `--via nix` through `nix
//!    copy`, Cachix and attic through their CLIs (`copy.rs`, [`backend`], with the time
//!    limits, retries and failure reasons of [`attempt`]).
//! 5. **Report** (`report.rs`): text, `--json`, Markdown; [`Progress`] events for the
//!    caller to show.
//!
//! Dry-run: queries run, nothing is uploaded; the commands that would run are in
//! [`Report::would_run`] for the binary to print.

mod attempt;
mod backend;
mod copy;
mod native;
mod plan;
mod presence;
mod report;
mod roots;

pub use crate::upload::{OnProgress, Progress};
use copy::{Upload, upload_with_tool};
use presence::Todo;
use report::Reporter;
pub use report::{Failure, Kept, Report, Via};
use roots::{read_closure, resolve_roots};

use crate::binarycache::{BinaryCache, QueryOptions};
use crate::cachetoml::{self, CacheTomlError};
use crate::cmd::{CmdError, Runner};
use crate::keys::{KeyError, SecretKey};
use crate::nixcli::{Nix, NixError, NixVersion, PathInfo};
use crate::output::human_bytes;
use crate::redact;
use crate::store::SourcePref;
use crate::storepath::{self, DEFAULT_STORE_DIR, StorePath};
use attempt::Deadline;
use backend::Target;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a push filter is, for error messages.
const FILTER_HINT: &str = "the filter is a regex (Rust `regex` syntax) matched against each full store path, e.g. '(-source$|nixpkgs\\.tar\\.gz$)'";

/// Checks a `--filter` value (the front end rejects a bad one as a usage error).
pub fn check_filter(src: &str) -> Result<(), String> {
    Regex::new(src)
        .map(|_| ())
        .map_err(|e| format!("{e}\n{FILTER_HINT}"))
}

pub use crate::cli::ExitCode;

/// Why a push could not go ahead (paths that fail to upload are in the [`Report`]
/// instead); [`PushError::exit_code`] is the exit code for it.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// cache.toml (`--config`, or the one found from `cwd` up) cannot be read or is
    /// invalid; the error names file, line and key.
    #[error(transparent)]
    Config(#[from] CacheTomlError),
    /// Neither `--to` nor `to` under `[push]` in cache.toml names a target.
    #[error(
        "no push target: pass --to URI (cachix:NAME, attic:CACHE, file:///dir, https://host, s3://bucket, ssh-ng://host) or set `to` under [push] in cache.toml"
    )]
    NoTarget,
    /// The message names the target and what to use instead.
    #[error("{0}")]
    BadTarget(String),
    /// A flag that cannot apply (`--compression-level 99`, `--compression` with `--via
    /// nix`): a bad command line, exit 2.
    #[error("{0}")]
    BadFlag(String),
    /// [`Options::filter`] is not a regex (push-cache rejects a bad `--filter` as a usage
    /// error first, and cache.toml's `filter` is checked as the file is read).
    #[error("the push filter `{regex}` is not a valid regex: {reason}\n{FILTER_HINT}")]
    BadFilter {
        /// The filter as written.
        regex: String,
        /// What the regex parser objects to.
        reason: String,
    },
    /// The secret key file cannot be read or holds no Nix secret key.
    #[error(
        "the secret key file `{path}` is unusable: {error}; make one with `nix key generate-secret --key-name NAME > FILE` (nothing was uploaded)"
    )]
    SecretKey {
        /// The file (relative ones taken from `cwd`).
        path: PathBuf,
        /// What is wrong with it.
        error: KeyError,
    },
    /// No arguments, no `--stdin`, and no `result*` link in the working directory.
    #[error(
        "nothing to push: no paths given and no ./result* links in {dir}; run `nix build` first, or pass store paths or installables (e.g. `.#default`), or --stdin"
    )]
    NothingGiven {
        /// The directory searched for `result*` links.
        dir: PathBuf,
    },
    /// An existing file or link argument that leads outside the store.
    #[error(
        "`{arg}` is not in the Nix store (it resolves to {resolved}); pass a store path, a result link or an installable"
    )]
    NotInStore {
        /// The argument as given.
        arg: String,
        /// Where it leads, or `nothing (...)` with why it leads nowhere.
        resolved: String,
    },
    /// `nix path-info` reports a path of the closure as not valid in the store.
    #[error("{path} is not a valid path in the local store: build or fetch it first")]
    InvalidPath {
        /// The store path.
        path: StorePath,
    },
    /// The cache's `nix-cache-info` names another store directory: Nix would refuse its
    /// paths.
    #[error(
        "`{url}` has StoreDir {found}, but this store is {expected}: the cache is for another store"
    )]
    StoreDirMismatch {
        /// The cache, credentials hidden.
        url: String,
        /// The cache's `StoreDir`.
        found: String,
        /// This store's directory.
        expected: String,
    },
    /// `reason` names the URL (every [`crate::binarycache::CacheError`] does).
    #[error(
        "could not read the cache: {reason}; check the URL (--to, or `to` under [push] in cache.toml) and that the cache is up (nothing was uploaded)"
    )]
    CacheRead {
        /// The cache, credentials hidden.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The message names the URL and what is wrong with its `nix-cache-info`.
    #[error("{0} (nothing was uploaded)")]
    NotABinaryCache(String),
    /// `cachix` or `attic` is not on PATH (a missing `nix` shows as its first command
    /// failing: [`PushError::Nix`] or [`PushError::Cmd`]).
    #[error("`{program}` is not on PATH; it is needed to push to {target}{hint}")]
    MissingProgram {
        /// The program looked up.
        program: String,
        /// The target it uploads to, credentials hidden.
        target: String,
        /// How to get it (`: run inside ...`), or empty.
        hint: String,
    },
    /// `--require-push`, and no credentials for the target.
    #[error("push required (--require-push) but not possible: {reason}")]
    NotPushed {
        /// Which credentials are missing, and where they would come from.
        reason: String,
    },
    /// `--stdin`: standard input could not be read (the I/O error).
    #[error("could not read standard input: {0}")]
    Stdin(String),
    /// `--source database`: the closure could not be read from the store database (why).
    #[error("--source database: {0}; use --source auto (or nix) to ask Nix instead")]
    Database(String),
    /// A `nix` query (`nix path-info`, a build's JSON) failed or could not be read.
    #[error(transparent)]
    Nix(#[from] NixError),
    /// A command failed: `nix build` of an installable, or `nix copy` that could not be
    /// started at all.
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

impl PushError {
    /// [`ExitCode::NotPushed`] (7), [`ExitCode::MissingProgram`] (8) when `cachix`,
    /// `attic` or `nix` is not on PATH, else [`ExitCode::Error`] (1).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PushError::NotPushed { .. } => ExitCode::NotPushed,
            // No --to and no cache.toml target is setup-cache's "no cache.toml / --url".
            PushError::BadFlag(_) | PushError::NoTarget => ExitCode::Usage,
            PushError::MissingProgram { .. } => ExitCode::MissingProgram,
            PushError::Cmd(CmdError::NotFound { .. })
            | PushError::Nix(NixError::Cmd(CmdError::NotFound { .. })) => ExitCode::MissingProgram,
            _ => ExitCode::Error,
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Store paths, result links, installables.
    pub args: Vec<String>,
    /// Lines read from stdin (`--stdin`), already split by the caller.
    pub stdin_paths: Option<Vec<String>>,
    /// `--to`: `cachix:NAME`, `attic:[SERVER:]CACHE` or a Nix store URI; else `to` under
    /// `[push]` in cache.toml.
    pub to: Option<String>,
    /// `--config FILE`; else `cache.toml` is searched from `cwd` up.
    pub config: Option<PathBuf>,
    /// `--filter`: a regex matched against each full store path; else cache.toml's,
    /// else [`cachetoml::DEFAULT_PUSH_FILTER`].
    pub filter: Option<String>,
    /// `--no-filter`: the whole closure is pushed.
    pub no_filter: bool,
    /// `--secret-key-file`: the Nix secret key to sign with (store URIs only); else
    /// cache.toml's, else the URI's `?secret-key=`.
    pub secret_key_file: Option<PathBuf>,
    /// `--jobs`: parallel cache queries (default 16, 64 for `s3://`) and upload workers
    /// (default twice the cores, 4 to 16); cachix and attic get it as `--jobs`.
    pub jobs: Option<usize>,
    /// `--dry-run`: the cache is asked, nothing is uploaded; the report's `pushed` is what
    /// would be.
    pub dry_run: bool,
    /// `--require-push`: no credentials is [`PushError::NotPushed`] instead of a
    /// skipped push.
    pub require_push: bool,
    /// Where the closure is read from (`--source`).
    pub source: SourcePref,
    /// `--timeout`: the most the upload (cache queries and every upload process) may
    /// take; [`attempt::DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
    /// `--via nix`: upload to file:// and http(s):// with `nix copy` instead of the
    /// native pipeline.
    pub via_nix: bool,
    /// `--compression` (zstd, xz, none) for the native pipeline; default: the URI's
    /// `?compression=`, else zstd.
    pub compression: Option<String>,
    /// `--compression-level` (zstd 1-19, xz 0-9); default: the URI's
    /// `?compression-level=` when the method is the URI's, else the method's own (zstd 3,
    /// xz 6).
    pub compression_level: Option<i32>,
    /// `--no-refresh`: leave this machine's narinfo disk cache alone after a push.
    pub no_refresh: bool,
    /// The working directory: relative arguments, `result*` links and the cache.toml
    /// search start here.
    pub cwd: PathBuf,
}

/// Runs a push. Per-path progress goes to `on_progress` as it happens (the caller shows
/// it; the library prints nothing); warnings, failures and the commands a dry run did
/// not run are in the [`Report`], which the caller prints (summary or JSON).
pub fn run(opts: &Options, on_progress: OnProgress<'_>) -> Result<Report, PushError> {
    let mut setup = Setup::resolve(opts)?;
    let mut report = Report {
        target: setup.target.to_string(),
        dry_run: opts.dry_run,
        filter: setup.filter_src.clone(),
        warnings: std::mem::take(&mut setup.warnings),
        ..Report::default()
    };
    // Opened before anything is built: for `s3://` this reads the credentials, once,
    // for the whole push (whether to skip it, the queries, the upload).
    let client = presence::open_client(&setup.target, opts)?;
    if skip_without_credentials(&setup.target, client.as_ref(), opts, &mut report)? {
        return Ok(report);
    }
    check_program(&setup.target)?;
    let nix = push_nix(Runner::new().dry_run(opts.dry_run));
    let Some(closure) = plan_closure(opts, &nix, setup.filter.as_ref(), &mut report)? else {
        return Ok(report);
    };

    // From here on the push is bounded in time.
    let deadline = Deadline::after(opts.timeout.unwrap_or(attempt::DEFAULT_TIMEOUT));
    let cache = match client {
        Some(c) => {
            let initialised = presence::check_store_dir(&c)?;
            Some((c, initialised))
        }
        None => None,
    };
    let native = matches!(&setup.target, Target::Store(uri) if crate::binarycache::is_supported(uri))
        && !opts.via_nix;
    let todo = presence::Ask {
        cache: cache.as_ref(),
        ordered: &closure.plan.ordered,
        nodes: &closure.nodes,
        target: &setup.target,
        opts,
        deadline: &deadline,
    }
    .run(native, &mut report);
    if todo.to_push.is_empty() && todo.unusable.is_empty() {
        return Ok(report);
    }

    let progress = Reporter::new(on_progress, opts.dry_run);
    progress.begin(todo.to_push.len() + todo.unusable.len());
    for (p, why) in &todo.unusable {
        progress.failed(p, why);
    }
    let push = Push {
        opts,
        target: &setup.target,
        nix: &nix,
        nodes: &closure.nodes,
        cache: cache.as_ref(),
        key_file: setup.key_file.as_deref(),
        deadline: &deadline,
        progress: &progress,
    };
    let uploaded = push.upload(native, todo, &mut report);
    progress.finish();
    report.would_run = nix.runner().skipped();
    uploaded?;
    let size_of = |p: &str| closure.nodes.get(p).map(|i| i.nar_size).unwrap_or(0);
    report.nar_bytes_pushed = report.pushed.iter().map(|p| size_of(p)).sum();
    Ok(report)
}

/// What the flags and cache.toml ask for, checked (the first phase of [`run`]).
struct Setup {
    target: Target,
    /// The filter in effect (`None` with `--no-filter`), as given.
    filter_src: Option<String>,
    filter: Option<Regex>,
    /// The secret key to sign with (read once, so it is usable); store URIs only.
    key_file: Option<PathBuf>,
    /// For the report: the key's, and that the target signs by itself.
    warnings: Vec<String>,
}

impl Setup {
    /// Flags win over cache.toml. A bad target, filter or key is an error before anything
    /// else happens.
    fn resolve(opts: &Options) -> Result<Self, PushError> {
        let config = cachetoml::locate(opts.config.as_deref(), &opts.cwd)?.map(|(_, t)| t);
        let push_cfg = config.as_ref().and_then(|c| c.push.clone());
        let to = opts
            .to
            .clone()
            .or_else(|| push_cfg.as_ref().and_then(|p| p.to.clone()))
            .ok_or(PushError::NoTarget)?;
        crate::redact::register_url_secrets(&to);
        let target = Target::parse(&to).map_err(PushError::BadTarget)?;
        check_compression_flags(opts, &target)?;
        let filter_src = if opts.no_filter {
            None
        } else {
            Some(
                opts.filter
                    .clone()
                    .or_else(|| push_cfg.as_ref().and_then(|p| p.filter.clone()))
                    .unwrap_or_else(|| cachetoml::DEFAULT_PUSH_FILTER.to_owned()),
            )
        };
        let filter = match &filter_src {
            Some(src) => Some(Regex::new(src).map_err(|e| PushError::BadFilter {
                regex: src.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        // `--secret-key-file`, else cache.toml's, else the store URI's `?secret-key=`
        // (what `nix copy` would sign with): the native pipeline signs with it too.
        let key_file = opts
            .secret_key_file
            .clone()
            .or_else(|| push_cfg.as_ref().and_then(|p| p.secret_key_file.clone()))
            .or_else(|| crate::url::store_param(&to, "secret-key").map(PathBuf::from));
        // Warnings go into the report: the library prints nothing itself.
        let mut warnings = Vec::new();
        let key_file = match key_file {
            Some(k) => check_key(k, &target, &opts.cwd, &mut warnings)?,
            None => None,
        };
        Ok(Setup {
            target,
            filter_src,
            filter,
            key_file,
            warnings,
        })
    }
}

/// `--compression` / `--compression-level` set push-cache's own pipeline: an error (exit
/// 2) where no such pipeline runs (`--via nix`, `ssh-ng://`, Cachix, attic: the URI's
/// `?compression=` is what `nix copy` reads), or with a level out of the method's range.
fn check_compression_flags(opts: &Options, target: &Target) -> Result<(), PushError> {
    if opts.compression.is_none() && opts.compression_level.is_none() {
        return Ok(());
    }
    match target {
        Target::Store(uri) if crate::binarycache::is_supported(uri) && !opts.via_nix => {
            native::settings(opts, uri).map(drop).map_err(|e| match e {
                PushError::BadTarget(m) if opts.compression_level.is_some() => {
                    PushError::BadFlag(format!("--compression-level: {m}"))
                }
                other => other,
            })
        }
        Target::Store(uri) => Err(PushError::BadFlag(format!(
            "--compression and --compression-level set push-cache's own pipeline, which does not upload to {} {}: write the compression into the store URI for `nix copy` instead (`?compression=zstd`)",
            crate::redact::url(uri),
            if opts.via_nix { "with --via nix" } else { "(nix copy does)" }
        ))),
        _ => Err(PushError::BadFlag(
            "--compression and --compression-level set push-cache's own pipeline; Cachix and attic compress by themselves".to_owned(),
        )),
    }
}

/// Reads the secret key `k` (relative to `cwd`) once, so a bad one fails the push before
/// any upload; its warnings go to `warnings`. `None` for Cachix and attic, which sign by
/// themselves (with a warning that the key is ignored).
fn check_key(
    k: PathBuf,
    target: &Target,
    cwd: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<PathBuf>, PushError> {
    let k = if k.is_relative() { cwd.join(k) } else { k };
    let (_, key_warnings) =
        SecretKey::read_with_warnings(&k).map_err(|e| PushError::SecretKey {
            path: k.clone(),
            error: e,
        })?;
    warnings.extend(key_warnings);
    if matches!(target, Target::Store(_)) {
        return Ok(Some(k));
    }
    warnings.push(format!(
        "--secret-key-file is ignored for {target}: {}",
        match target {
            Target::Cachix(_) => "Cachix signs with CACHIX_SIGNING_KEY or on its servers",
            _ => "attic signs on the server",
        }
    ));
    Ok(None)
}

/// No credentials for the target (e.g. a fork's pull request): `true` when the push is
/// skipped cleanly (the report says why), [`PushError::NotPushed`] with
/// `--require-push`; a dry run goes on, with a warning.
fn skip_without_credentials(
    target: &Target,
    client: Option<&BinaryCache>,
    opts: &Options,
    report: &mut Report,
) -> Result<bool, PushError> {
    let env = |k: &str| std::env::var(k).ok();
    let bucket = client.and_then(BinaryCache::s3_bucket);
    let Some(why) = backend::missing_credentials(target, bucket.as_deref(), &env) else {
        return Ok(false);
    };
    if opts.require_push {
        return Err(PushError::NotPushed { reason: why });
    }
    if !opts.dry_run {
        report.skipped = Some(why);
        return Ok(true);
    }
    report
        .warnings
        .push(format!("{why}; a real run would skip the push"));
    Ok(false)
}

/// The uploading program must be there (nix is checked by running it).
fn check_program(target: &Target) -> Result<(), PushError> {
    if !matches!(target, Target::Store(_)) && which::which(target.program()).is_err() {
        return Err(PushError::MissingProgram {
            program: target.program().to_owned(),
            target: target.to_string(),
            hint: crate::cmd::install_hint(target.program()).to_owned(),
        });
    }
    Ok(())
}

/// The Nix push-cache runs. It only runs `nix path-info --json`, `nix build --json` and
/// `nix copy --no-recursive`, whose flags and output are read the same way from 2.8 on,
/// so it does not spend a process asking Nix its version. A missing `nix` shows up as the
/// first command failing with an install hint (exit code 8).
fn push_nix(runner: Runner) -> Nix {
    Nix::with_version(
        NixVersion {
            major: 2,
            minor: 8,
            patch: 0,
            lix: false,
        },
        None,
        runner,
    )
}

/// The closure of the roots and what of it to push.
struct Closure {
    nodes: BTreeMap<StorePath, PathInfo>,
    plan: plan::Plan,
}

/// Roots and closure, then the filter: sizes, left-out and kept paths (with a warning
/// for each kept one) go into the report. `None` when standard input named no path.
fn plan_closure(
    opts: &Options,
    nix: &Nix,
    filter: Option<&Regex>,
    report: &mut Report,
) -> Result<Option<Closure>, PushError> {
    let roots = resolve_roots(opts, nix)?;
    if roots.is_empty() {
        // Only possible with --stdin and empty input (e.g. CI found no new paths).
        report
            .warnings
            .push("no paths on standard input".to_owned());
        return Ok(None);
    }
    let nodes = read_closure(&roots, opts.source, nix)?;
    report.sizes = nodes.iter().map(|(p, i)| (p.clone(), i.nar_size)).collect();
    let plan = plan::plan(&nodes, filter);
    for (kept, by) in &plan.kept {
        report.warnings.push(format!(
            "pushing {kept} although it matches the filter: {by} references it, and a cache must not hold a path without its references"
        ));
    }
    report.filtered = plan.filtered.clone();
    report.kept = plan
        .kept
        .iter()
        .map(|(path, by)| Kept {
            path: path.clone(),
            referenced_by: by.clone(),
        })
        .collect();
    Ok(Some(Closure { nodes, plan }))
}

/// Everything the upload needs, whichever way it goes.
struct Push<'a> {
    opts: &'a Options,
    target: &'a Target,
    nix: &'a Nix,
    nodes: &'a BTreeMap<StorePath, PathInfo>,
    /// The cache client and whether the cache has a `nix-cache-info`.
    cache: Option<&'a (BinaryCache, bool)>,
    key_file: Option<&'a Path>,
    deadline: &'a Deadline,
    progress: &'a Reporter<'a>,
}

impl Push<'_> {
    /// Uploads `todo` the target's way: the native pipeline (`native`), `nix copy`, or
    /// Cachix's and attic's CLIs.
    fn upload(&self, native: bool, todo: Todo, report: &mut Report) -> Result<(), PushError> {
        let Todo {
            to_push, unusable, ..
        } = todo;
        match self.target {
            Target::Store(uri) if native => {
                let present: BTreeSet<StorePath> = report.already_cached.iter().cloned().collect();
                native::Native {
                    uri,
                    nodes: self.nodes,
                    present: &present,
                    initialised: self.cache.is_some_and(|(_, i)| *i),
                    s3_bucket: self.cache.and_then(|(c, _)| c.s3_bucket()),
                    key_file: self.key_file,
                    deadline: self.deadline.instant(),
                    progress: self.progress,
                }
                .run(self.opts, &to_push, report)
            }
            Target::Store(uri) => {
                report.via = Via::NixCopy;
                let uri = match self.key_file {
                    Some(k) => backend::with_secret_key(uri, k),
                    None => uri.clone(),
                };
                let upload = Upload {
                    nix: self.nix,
                    uri: &uri,
                    nodes: self.nodes,
                    cache: self.cache.map(|(c, _)| c),
                    progress: self.progress,
                    deadline: self.deadline,
                };
                upload.run(&to_push, unusable, report)
            }
            Target::Cachix(name) => {
                report.via = Via::Cachix;
                let cmd = backend::cachix_push(name, self.opts.jobs, &to_push);
                self.with_tool(&cmd, &to_push, report);
                Ok(())
            }
            Target::Attic(c) => {
                report.via = Via::Attic;
                let cmd = backend::attic_push(c, self.opts.jobs, &to_push);
                self.with_tool(&cmd, &to_push, report);
                Ok(())
            }
        }
    }

    fn with_tool(&self, cmd: &crate::cmd::Cmd, to_push: &[StorePath], report: &mut Report) {
        upload_with_tool(
            self.nix.runner(),
            cmd,
            to_push,
            self.nodes,
            self.progress,
            self.deadline,
            report,
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::copy::{copying_path, stages};
    use super::roots::{parse_build_json, result_links};
    use super::*;

    /// Every event a push sends, each as `{:?}`.
    fn events(dry_run: bool) -> Vec<String> {
        let seen = std::sync::Mutex::new(Vec::new());
        let on = |p: Progress<'_>| seen.lock().unwrap().push(format!("{p:?}"));
        let r = Reporter::new(&on, dry_run);
        r.begin(2);
        r.started("/nix/store/a", 1);
        r.done("/nix/store/a", 1);
        r.line("PUT https://ci:hunter2@cache.example/x failed, retrying");
        r.failed(
            "/nix/store/b",
            "HTTP 500 from https://ci:hunter2@cache.example\nbody",
        );
        r.finish();
        seen.into_inner().unwrap()
    }

    #[test]
    fn progress_reaches_the_caller_with_credentials_hidden() {
        let all = events(false);
        assert_eq!(all.len(), 6, "{all:?}");
        assert!(all[0].starts_with("Begin { total: 2"), "{all:?}");
        assert!(all[5].starts_with("End"), "{all:?}");
        assert!(all.iter().all(|e| !e.contains("hunter2")), "{all:?}");
        // A failure's first line only: the rest is in the report.
        assert!(
            all[4].contains("reason: \"HTTP 500 from https://ci:"),
            "{all:?}"
        );
        assert!(!all[4].contains("body"), "{all:?}");
    }

    #[test]
    fn a_dry_run_sends_only_notes_and_failures() {
        let dry = events(true);
        assert_eq!(dry.len(), 2, "{dry:?}");
        assert!(
            dry[0].starts_with("Note(") && dry[1].starts_with("Failed {"),
            "{dry:?}"
        );
    }

    #[test]
    fn errors_and_reports_map_to_exit_codes() {
        assert_eq!(
            PushError::NotPushed { reason: "x".into() }.exit_code(),
            ExitCode::NotPushed
        );
        assert_eq!(PushError::NoTarget.exit_code(), ExitCode::Usage);
        assert_eq!(PushError::BadFlag("x".into()).exit_code(), ExitCode::Usage);
        let r = Report {
            failed: vec![StorePath::fake("x")],
            ..Report::default()
        };
        assert_eq!(r.exit_code(), ExitCode::PushFailed);
        assert_eq!(Report::default().exit_code(), ExitCode::Ok);
    }

    #[test]
    fn stages_keep_references_in_earlier_stages() {
        // 200 leaves, 4 groups of 50, one top: leaves split 2 ways, then groups and top
        // share one serial stage.
        let leaves: Vec<StorePath> = (0..200)
            .map(|i| StorePath::fake(&format!("l{i:03}")))
            .collect();
        let groups: Vec<StorePath> = (0..4).map(|g| StorePath::fake(&format!("g{g}"))).collect();
        let top = StorePath::fake("top");
        let mut order = leaves.clone();
        order.extend(groups.clone());
        order.push(top.clone());
        let refs = |p: &StorePath| -> Vec<StorePath> {
            if let Some(g) = p.name().strip_prefix('g') {
                let g: usize = g.parse().unwrap();
                leaves[g * 50..(g + 1) * 50].to_vec()
            } else if *p == top {
                groups.clone()
            } else {
                vec![p.clone()]
            }
        };
        let st = stages(&order, &refs, 2);
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(st[0].len(), 2);
        assert_eq!(st[0][0].len() + st[0][1].len(), 200);
        assert_eq!(st[1].len(), 1);
        assert_eq!(st[1][0].last().unwrap(), &top);
        // One process: everything in one serial stage, order kept.
        let one = stages(&order, &refs, 1);
        assert_eq!(one, vec![vec![order.clone()]]);
        // Few paths: no split.
        assert_eq!(
            stages(&order[..10], &refs, 4),
            vec![vec![order[..10].to_vec()]]
        );
        // 50 missing leaves (the 95%-cached benchmark) already go over 2 processes.
        let st = stages(&order[..50], &refs, 2);
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].len(), st[0][0].len(), st[0][1].len()), (2, 25, 25));
    }

    #[test]
    fn nix_progress_lines() {
        assert_eq!(
            copying_path(
                "copying path '/nix/store/qhsja92yh2jqmzhab1fgp3p44p1dr0vr-leaf' to 'file:///tmp/c'..."
            ),
            Some("/nix/store/qhsja92yh2jqmzhab1fgp3p44p1dr0vr-leaf")
        );
        assert_eq!(copying_path("copying 2 paths..."), None);
    }

    #[test]
    fn build_json_both_forms() {
        let j = r#"[{"drvPath":"/nix/store/1iil-top.drv","outputs":{"out":"/nix/store/7yg7-top","dev":"/nix/store/8aaa-top-dev"}},{"path":"/nix/store/9bbb-src"}]"#;
        let mut v = parse_build_json(j).unwrap();
        v.sort();
        assert_eq!(
            v,
            [
                "/nix/store/7yg7-top",
                "/nix/store/8aaa-top-dev",
                "/nix/store/9bbb-src"
            ]
        );
        assert!(parse_build_json("{}").is_err());
    }

    #[test]
    fn json_has_the_documented_keys() {
        let r = Report {
            target: "file:///c".into(),
            pushed: vec![StorePath::fake("a")],
            nar_bytes_pushed: 5,
            ..Report::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "target",
            "pushed",
            "already_cached",
            "filtered",
            "failed",
            "nar_bytes_pushed",
            "dry_run",
            "skipped",
            "failures",
            "via",
            "compression",
            "file_bytes_pushed",
            "seconds",
            "refreshed",
            "warnings",
            "kept",
            "filter",
            "would_run",
        ] {
            assert!(keys.contains(&k), "{k} missing in {keys:?}");
        }
        assert_eq!(keys.len(), 18, "{keys:?}");
        assert!(r.markdown().contains("| pushed | 1 | 5 B |"));
    }

    #[test]
    fn result_links_are_found() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/nix/store/x", d.path().join("result")).unwrap();
        std::os::unix::fs::symlink("/nix/store/y", d.path().join("result-dev")).unwrap();
        std::fs::write(d.path().join("result.txt"), "not a link").unwrap();
        assert_eq!(result_links(d.path()), ["result", "result-dev"]);
    }
}
