//! `push-cache`: upload a build's closure to a binary cache, filtered, signed, skipping
//! what the cache already holds.
//!
//! Steps of [`run`]:
//! 1. **Roots**: the given store paths, `result` links and installables (`.#pkg`, built
//!    with `nix build --no-link --json`), or every `./result*` link in the directory.
//! 2. **Closure**, with NAR sizes and references: straight from the store's SQLite
//!    database when it opens read-only ([`crate::store::db::read_closure`]: only the
//!    closure, by index), else `nix path-info --json --recursive` (both JSON shapes, see
//!    [`crate::nixcli`]). `--source` / `PUSH_CACHE_SOURCE` forces one.
//! 3. **Filter** ([`plan`]): the regex is matched against every path of the closure. A
//!    match that a pushed path references is pushed anyway (a binary cache must never
//!    hold a path whose references it lacks: Nix refuses to add one) with a warning that
//!    names both paths; every other match is left out and listed.
//! 4. **Skip what is there**: for `file://` and `http(s)://` targets every `.narinfo` is
//!    asked for in parallel ([`crate::binarycache`]); only missing paths go. A cache
//!    without `nix-cache-info` is new (Nix writes it before any upload) and not asked.
//! 5. **Upload** in dependency order with `nix copy --no-recursive --to URI`: exactly
//!    the missing paths are uploaded (their references the cache already has are passed
//!    too, as hints Nix skips, so it need not check them one request at a time). Paths
//!    are grouped by dependency level; a big level is split over parallel `nix copy`
//!    processes, small ones share one. Nix writes each `.narinfo` only after its NAR;
//!    its "copying path" lines drive the progress. `cachix push` and `attic push` for
//!    those targets. A failed `nix copy` is retried path by path with backoff; a path
//!    that still fails is reported, paths that reference it are not attempted (the cache
//!    would hold them with a missing reference), the others go.
//!
//! Dry-run lives in the command runner: queries run, uploads are printed.

pub mod attempt;
pub mod backend;
mod native;
pub mod plan;

use crate::binarycache::{BinaryCache, Found, QueryOptions};
use crate::cachetoml::{self, CacheTomlError};
use crate::cmd::{CmdError, Runner};
use crate::keys::{KeyError, SecretKey};
use crate::nixcli::{Nix, NixError, NixVersion, PathInfo};
use crate::output::{self, human_bytes};
use crate::redact;
use crate::store::SourcePref;
use crate::store::location::{StoreKind, StoreLocation};
use crate::storepath::{self, DEFAULT_STORE_DIR};
use attempt::Deadline;
use backend::Target;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a push filter is, for error messages.
pub const FILTER_HINT: &str = "the filter is a regex (Rust `regex` syntax) matched against each full store path, e.g. '(-source$|nixpkgs\\.tar\\.gz$)'";

/// Checks a `--filter` value (the front end rejects a bad one as a usage error).
pub fn check_filter(src: &str) -> Result<(), String> {
    Regex::new(src)
        .map(|_| ())
        .map_err(|e| format!("{e}\n{FILTER_HINT}"))
}

/// Exit codes of `push-cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Everything that had to go was pushed (or nothing had to), or the push was
    /// skipped for lack of credentials without `--require-push`.
    Success = 0,
    /// An error before anything was uploaded: bad config, key, filter, path, Nix failure.
    Error = 1,
    /// Bad command line (clap).
    Usage = 2,
    /// Some paths could not be uploaded after retries; the others were.
    PushFailed = 3,
    /// Nothing was pushed for lack of credentials, and `--require-push` was given.
    NotPushed = 4,
    /// The program needed for the target (`nix`, `cachix`, `attic`) is not on PATH.
    MissingProgram = 5,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The table shown in `--help` and the README.
    pub const HELP: &'static str = "Exit codes:
  0  pushed (or nothing to push; or skipped for lack of credentials)
  1  error before uploading (cache.toml, key, path, cache, nix)
  2  bad command line (also a --to that is no push target, a --filter that is no regex)
  3  some paths failed to upload after retries (the others were pushed)
  4  no credentials and --require-push
  5  the program for the target (nix, cachix, attic) is not on PATH";
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error(transparent)]
    Config(#[from] CacheTomlError),
    #[error(
        "no push target: pass --to URI (cachix:NAME, attic:CACHE, file:///dir, https://host, s3://bucket, ssh-ng://host) or set `to` under [push] in cache.toml"
    )]
    NoTarget,
    /// The message names the target and what to use instead.
    #[error("{0}")]
    BadTarget(String),
    #[error("the push filter `{regex}` is not a valid regex: {reason}\n{FILTER_HINT}")]
    BadFilter { regex: String, reason: String },
    #[error(
        "the secret key file `{path}` is unusable: {error}; make one with `nix key generate-secret --key-name NAME > FILE` (nothing was uploaded)"
    )]
    SecretKey { path: PathBuf, error: KeyError },
    #[error(
        "nothing to push: no paths given and no ./result* links in {dir}; run `nix build` first, or pass store paths or installables (e.g. `.#default`), or --stdin"
    )]
    NothingGiven { dir: PathBuf },
    #[error(
        "`{arg}` is not in the Nix store (it resolves to {resolved}); pass a store path, a result link or an installable"
    )]
    NotInStore { arg: String, resolved: String },
    #[error("{path} is not a valid path in the local store: build or fetch it first")]
    InvalidPath { path: String },
    #[error(
        "`{url}` has StoreDir {found}, but this store is {expected}: the cache is for another store"
    )]
    StoreDirMismatch {
        url: String,
        found: String,
        expected: String,
    },
    /// `reason` names the URL (every [`crate::binarycache::CacheError`] does).
    #[error(
        "could not read the cache: {reason}; check the URL (--to, or `to` under [push] in cache.toml) and that the cache is up (nothing was uploaded)"
    )]
    CacheRead { url: String, reason: String },
    /// The message names the URL and what is wrong with its `nix-cache-info`.
    #[error("{0} (nothing was uploaded)")]
    NotABinaryCache(String),
    #[error("`{program}` is not on PATH; it is needed to push to {target}{hint}")]
    MissingProgram {
        program: String,
        target: String,
        hint: String,
    },
    #[error("push required (--require-push) but not possible: {reason}")]
    NotPushed { reason: String },
    #[error("could not read standard input: {0}")]
    Stdin(String),
    #[error("--source database: {0}; use --source auto (or nix) to ask Nix instead")]
    Database(String),
    #[error(transparent)]
    Nix(#[from] NixError),
    #[error(transparent)]
    Cmd(#[from] CmdError),
}

impl PushError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            PushError::NotPushed { .. } => ExitCode::NotPushed,
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
    pub to: Option<String>,
    /// `--config FILE`; else `cache.toml` is searched from `cwd` up.
    pub config: Option<PathBuf>,
    pub filter: Option<String>,
    pub no_filter: bool,
    pub secret_key_file: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub dry_run: bool,
    pub require_push: bool,
    /// Progress bar instead of plain lines (the caller decides: stderr is a terminal).
    pub progress_bar: bool,
    /// Where the closure is read from (`--source`).
    pub source: SourcePref,
    /// `--timeout`: the most the upload (cache queries and every upload process) may
    /// take; [`attempt::DEFAULT_TIMEOUT`] when `None`.
    pub timeout: Option<Duration>,
    /// `--via nix`: upload to file:// and http(s):// with `nix copy` instead of the
    /// native pipeline.
    pub via_nix: bool,
    /// `--compression` (zstd, xz, none) and `--compression-level` for the native
    /// pipeline; default: the URI's `?compression=`, else zstd.
    pub compression: Option<String>,
    pub compression_level: Option<i32>,
    /// `--no-refresh`: leave this machine's narinfo disk cache alone after a push.
    pub no_refresh: bool,
    pub cwd: PathBuf,
}

/// A path that could not be uploaded, and why (credentials hidden).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

/// What happened; `--json` prints the serialized form.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    pub target: String,
    /// Pushed paths (with `dry_run`: what would be pushed), in upload order.
    pub pushed: Vec<String>,
    pub already_cached: Vec<String>,
    pub filtered: Vec<String>,
    pub failed: Vec<String>,
    pub nar_bytes_pushed: u64,
    pub dry_run: bool,
    /// Why nothing was pushed (no credentials), when it was skipped.
    pub skipped: Option<String>,
    /// Filtered paths pushed anyway: (path, a pushed path that references it).
    #[serde(skip)]
    pub kept: Vec<(String, String)>,
    /// Every failed path with the reason.
    pub failures: Vec<Failure>,
    /// How the upload went: `native` (push-cache's own pipeline), `nix copy`,
    /// `cachix push` or `attic push` (empty when nothing had to go).
    pub via: String,
    /// The NAR compression of the native pipeline (`zstd`, `xz`, `none`).
    pub compression: Option<String>,
    /// Bytes of the compressed NARs uploaded (native pipeline).
    pub file_bytes_pushed: u64,
    /// Seconds the upload took (native pipeline).
    pub seconds: Option<f64>,
    /// Stale "not in this cache" answers of this machine's Nix forgotten after the push.
    pub refreshed: Option<usize>,
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub filter: Option<String>,
    /// Whether the target was asked what it holds (file://, http(s)://).
    #[serde(skip)]
    pub queried: bool,
    #[serde(skip)]
    pub sizes: BTreeMap<String, u64>,
}

impl Report {
    pub fn exit_code(&self) -> ExitCode {
        if self.failed.is_empty() {
            ExitCode::Success
        } else {
            ExitCode::PushFailed
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The final human summary.
    pub fn summary_text(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("push skipped: {why}");
        }
        let mut s = String::new();
        let verb = if self.dry_run { "would push" } else { "pushed" };
        if self.pushed.is_empty() && self.failed.is_empty() {
            if self.queried {
                s.push_str(&format!(
                    "nothing to push: all {} paths are already cached in {}",
                    self.already_cached.len(),
                    self.target
                ));
            } else {
                s.push_str(&format!("nothing to push to {}", self.target));
            }
        } else {
            s.push_str(&format!(
                "{verb} {} paths ({} NAR) to {}",
                self.pushed.len(),
                human_bytes(self.nar_bytes_pushed),
                self.target
            ));
            if self.queried {
                s.push_str(&format!("; {} already cached", self.already_cached.len()));
            }
        }
        s.push_str(&format!("; {} left out by the filter", self.filtered.len()));
        if !self.kept.is_empty() {
            s.push_str(&format!(
                " ({} matching path(s) pushed anyway: referenced by pushed paths)",
                self.kept.len()
            ));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!("; {} FAILED", self.failed.len()));
        }
        if let (Some(c), false) = (&self.compression, self.dry_run) {
            if self.file_bytes_pushed > 0 {
                s.push_str(&format!(
                    "; uploaded {} as {c} ({:.0}% of the NAR bytes)",
                    human_bytes(self.file_bytes_pushed),
                    100.0 * self.file_bytes_pushed as f64 / self.nar_bytes_pushed.max(1) as f64
                ));
                if let Some(t) = self.seconds {
                    s.push_str(&format!(
                        " in {t:.1} s ({}/s of NAR)",
                        human_bytes((self.nar_bytes_pushed as f64 / t.max(0.001)) as u64)
                    ));
                }
            }
        }
        if let Some(n) = self.refreshed.filter(|n| *n > 0) {
            s.push_str(&format!(
                "\nforgot {n} stale 'not in this cache' answer(s) of this machine's Nix for the pushed paths (--no-refresh keeps them)"
            ));
        }
        s
    }

    /// A Markdown table for `$GITHUB_STEP_SUMMARY`.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let head = if !self.failed.is_empty() {
            "❌"
        } else if self.skipped.is_some() {
            "⚠️"
        } else {
            "✅"
        };
        m.push_str(&format!("### {head} push-cache → `{}`\n\n", self.target));
        if let Some(why) = &self.skipped {
            m.push_str(&format!("Push skipped: {why}\n"));
            return m;
        }
        let bytes = |ps: &[String]| {
            human_bytes(
                ps.iter()
                    .map(|p| self.sizes.get(p).copied().unwrap_or(0))
                    .sum(),
            )
        };
        m.push_str("| | paths | NAR size |\n|---|---:|---:|\n");
        let pushed_label = if self.dry_run { "would push" } else { "pushed" };
        m.push_str(&format!(
            "| {pushed_label} | {} | {} |\n",
            self.pushed.len(),
            human_bytes(self.nar_bytes_pushed)
        ));
        if self.queried {
            m.push_str(&format!(
                "| already cached | {} | {} |\n",
                self.already_cached.len(),
                bytes(&self.already_cached)
            ));
        }
        m.push_str(&format!(
            "| filtered out | {} | {} |\n",
            self.filtered.len(),
            bytes(&self.filtered)
        ));
        m.push_str(&format!(
            "| failed | {} | {} |\n",
            self.failed.len(),
            bytes(&self.failed)
        ));
        if self.file_bytes_pushed > 0 {
            m.push_str(&format!(
                "\nUploaded {} of {} NARs ({:.0}%)",
                human_bytes(self.file_bytes_pushed),
                self.compression.as_deref().unwrap_or("compressed"),
                100.0 * self.file_bytes_pushed as f64 / self.nar_bytes_pushed.max(1) as f64
            ));
            if let Some(t) = self.seconds {
                m.push_str(&format!(
                    " in {t:.1} s, {}/s of NAR",
                    human_bytes((self.nar_bytes_pushed as f64 / t.max(0.001)) as u64)
                ));
            }
            m.push_str(".\n");
        }
        if !self.failures.is_empty() {
            m.push_str("\n<details><summary>Failed paths</summary>\n\n");
            for f in &self.failures {
                let first = f.reason.lines().next().unwrap_or("");
                m.push_str(&format!("- `{}`: {first}\n", f.path));
            }
            m.push_str("\n</details>\n");
        }
        m
    }
}

/// Pauses between retries of a failed upload.
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// Progress: a bar on a terminal, one plain line per path otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(total: usize, bar: bool) -> Self {
        let bar = (bar && total > 0).then(|| {
            let b = indicatif::ProgressBar::with_draw_target(
                Some(total as u64),
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} paths {msg}",
            ) {
                b.set_style(style.progress_chars("=> "));
            }
            b
        });
        Progress { bar }
    }

    /// A line of progress; whatever it quotes (Nix's messages), secrets are hidden.
    fn line(&self, text: &str) {
        let text = redact::urls_in(text);
        match &self.bar {
            Some(b) => b.println(text),
            None => eprintln!("{text}"),
        }
    }

    /// Nix started uploading `path` (its "copying path" line).
    fn started(&self, path: &str, size: u64) {
        match &self.bar {
            Some(b) => {
                b.set_message(storepath::name(path).unwrap_or(path).to_owned());
                b.inc(1);
            }
            None => eprintln!("pushing {path} ({})", human_bytes(size)),
        }
    }

    fn done(&self, path: &str, size: u64, dry_run: bool) {
        match &self.bar {
            Some(b) => {
                b.set_message(storepath::name(path).unwrap_or(path).to_owned());
                b.inc(1);
            }
            // A dry run's list is the caller's output (stdout), not progress.
            None if dry_run => {}
            None => eprintln!("pushed {path} ({})", human_bytes(size)),
        }
    }

    fn failed(&self, path: &str, why: &str) {
        let first = why.lines().next().unwrap_or(why);
        self.line(&format!("FAILED {path}: {first}"));
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Runs a push. Warnings and per-path progress go to stderr; the caller prints the
/// [`Report`] (summary or JSON).
pub fn run(opts: &Options) -> Result<Report, PushError> {
    // Configuration: flags win over cache.toml.
    let config = match &opts.config {
        Some(p) => Some(cachetoml::load(p)?),
        None => match cachetoml::find(&opts.cwd) {
            Some(p) => Some(cachetoml::load(&p)?),
            None => None,
        },
    };
    let push_cfg = config.as_ref().and_then(|c| c.push.clone());
    let to = opts
        .to
        .clone()
        .or_else(|| push_cfg.as_ref().and_then(|p| p.to.clone()))
        .ok_or(PushError::NoTarget)?;
    crate::redact::register_url_secrets(&to);
    let target = Target::parse(&to).map_err(PushError::BadTarget)?;
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
    let key_file = opts
        .secret_key_file
        .clone()
        .or_else(|| push_cfg.as_ref().and_then(|p| p.secret_key_file.clone()));

    // A bad key is an error before anything else happens.
    let key_file = match key_file {
        Some(k) => {
            let k = if k.is_relative() { opts.cwd.join(k) } else { k };
            let (_, warnings) =
                SecretKey::read_with_warnings(&k).map_err(|e| PushError::SecretKey {
                    path: k.clone(),
                    error: e,
                })?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            if !matches!(target, Target::Store(_)) {
                eprintln!(
                    "warning: --secret-key-file is ignored for {target}: {}",
                    match target {
                        Target::Cachix(_) =>
                            "Cachix signs with CACHIX_SIGNING_KEY or on its servers",
                        _ => "attic signs on the server",
                    }
                );
                None
            } else {
                Some(k)
            }
        }
        None => None,
    };

    let mut report = Report {
        target: target.to_string(),
        dry_run: opts.dry_run,
        filter: filter_src.clone(),
        ..Report::default()
    };

    // No credentials (e.g. a fork's pull request): skip cleanly, or fail when required.
    let env = |k: &str| std::env::var(k).ok();
    if let Some(why) = backend::missing_credentials(&target, &env) {
        if opts.require_push {
            return Err(PushError::NotPushed { reason: why });
        }
        if !opts.dry_run {
            report.skipped = Some(why);
            return Ok(report);
        }
        eprintln!("warning: {why}; a real run would skip the push");
    }

    // The uploading program must be there (nix is checked by running it below).
    if !matches!(target, Target::Store(_)) && which::which(target.program()).is_err() {
        return Err(PushError::MissingProgram {
            program: target.program().to_owned(),
            target: target.to_string(),
            hint: crate::cmd::install_hint(target.program()).to_owned(),
        });
    }

    let runner = Runner::new().dry_run(opts.dry_run);
    // push-cache only runs `nix path-info --json`, `nix build --json` and `nix copy
    // --no-recursive`, whose flags and output are read the same way from 2.8 on, so it
    // does not spend a process asking Nix its version. A missing `nix` shows up as the
    // first command failing with an install hint (exit code 5).
    let nix = Nix::with_version(
        NixVersion {
            major: 2,
            minor: 8,
            patch: 0,
            lix: false,
        },
        None,
        runner.clone(),
    );

    // Roots and closure.
    let roots = resolve_roots(opts, &nix)?;
    if roots.is_empty() {
        // Only possible with --stdin and empty input (e.g. CI found no new paths).
        eprintln!("no paths on standard input");
        return Ok(report);
    }
    let nodes = read_closure(&roots, opts.source, &nix)?;
    report.sizes = nodes.iter().map(|(p, i)| (p.clone(), i.nar_size)).collect();
    let plan = plan::plan(&nodes, filter.as_ref());
    for (kept, by) in &plan.kept {
        eprintln!(
            "warning: pushing {kept} although it matches the filter: {by} references it, and a cache must not hold a path without its references"
        );
    }
    if !plan.filtered.is_empty() {
        eprintln!(
            "left out by the filter {}:",
            filter_src.as_deref().unwrap_or("")
        );
        for p in &plan.filtered {
            eprintln!("  {p}");
        }
    }
    report.filtered = plan.filtered.clone();
    report.kept = plan.kept.clone();

    // From here on the push is bounded in time.
    let deadline = Deadline::after(opts.timeout.unwrap_or(attempt::DEFAULT_TIMEOUT));

    // Ask the cache what it has.
    let mut to_push = plan.ordered.clone();
    let cache = match &target {
        Target::Store(uri) if crate::binarycache::is_supported(uri) => {
            let per_request = deadline.left().min(Duration::from_secs(30));
            let cache =
                BinaryCache::with_timeout(uri, per_request).map_err(|e| PushError::CacheRead {
                    url: redact::url(uri),
                    reason: e.to_string(),
                })?;
            let initialised = check_store_dir(&cache)?;
            Some((cache, initialised))
        }
        _ => None,
    };
    // A cache without `nix-cache-info` is new: Nix writes that file when it first opens
    // a binary cache, before any upload. Asking it about every path would only find them
    // all missing (and `nix copy` checks again anyway), so it is not asked.
    report.queried = cache.is_some();
    // Paths whose narinfo in the cache is there but proves nothing, and that `nix copy`
    // cannot replace (it reads that narinfo first and stops): failed from the start.
    let mut unusable: BTreeMap<String, String> = BTreeMap::new();
    if let Some((cache, true)) = &cache {
        let q = QueryOptions {
            jobs: opts.jobs.unwrap_or(16),
            deadline: Some(deadline.instant()),
            ..QueryOptions::default()
        };
        let found = cache.query_detailed(&to_push, &q);
        let mut missing = Vec::new();
        let mut errors = 0usize;
        for (path, f) in to_push.iter().cloned().zip(found) {
            match f {
                Found::Present { .. } => report.already_cached.push(path),
                Found::Absent => missing.push(path),
                Found::Invalid(why) => match cache.local_dir() {
                    // In a file:// cache the bad narinfo is removed, and Nix writes a
                    // good one.
                    Some(dir) => {
                        eprintln!(
                            "warning: the cache's narinfo for {path} proves nothing ({why}); replacing it"
                        );
                        if !opts.dry_run {
                            let file = dir
                                .join(crate::narinfo::narinfo_file_name(&path).unwrap_or_default());
                            if let Err(e) = crate::fsutil::remove_file_checked(
                                &file,
                                crate::fsutil::Expect::Any,
                            ) {
                                unusable.insert(
                                    path,
                                    format!("the cache holds a narinfo that proves nothing ({why}), and it could not be removed: {e}"),
                                );
                                continue;
                            }
                        }
                        missing.push(path);
                    }
                    None => {
                        let why = format!(
                            "the cache holds a narinfo for it that proves nothing ({why}); nix copy reads it before uploading and cannot replace it: delete that file from the cache, then push again"
                        );
                        unusable.insert(path, why);
                    }
                },
                Found::Error(e) => {
                    if errors == 0 {
                        eprintln!(
                            "warning: could not ask {} about {path}: {e}; such paths are pushed (nix copy checks again)",
                            cache.display_url(),
                        );
                    }
                    errors += 1;
                    missing.push(path);
                }
            }
        }
        if errors > 1 {
            eprintln!("warning: the cache did not answer for {errors} paths in all");
        }
        to_push = missing;
    }

    // The native pipeline writes narinfos itself: one that proves nothing is replaced.
    let native = matches!(&target, Target::Store(uri) if crate::binarycache::is_supported(uri))
        && !opts.via_nix;
    if native && !unusable.is_empty() {
        for p in unusable.keys() {
            report.warnings.push(format!(
                "the cache's narinfo for {p} proves nothing; it is replaced"
            ));
        }
        let again: BTreeSet<&String> = unusable.keys().chain(to_push.iter()).collect();
        to_push = plan
            .ordered
            .iter()
            .filter(|p| again.contains(p))
            .cloned()
            .collect();
        unusable.clear();
    }
    let size_of = |p: &str| nodes.get(p).map(|i| i.nar_size).unwrap_or(0);
    if to_push.is_empty() && unusable.is_empty() {
        return Ok(report);
    }

    let progress = Progress::new(
        to_push.len() + unusable.len(),
        opts.progress_bar && !opts.dry_run,
    );
    for (p, why) in &unusable {
        progress.failed(p, why);
    }
    match &target {
        Target::Store(uri) if native => {
            let present: BTreeSet<String> = report.already_cached.iter().cloned().collect();
            native::Native {
                uri,
                nodes: &nodes,
                present: &present,
                initialised: cache.as_ref().is_some_and(|(_, i)| *i),
                key_file: key_file.as_deref(),
                deadline: deadline.instant(),
                progress: &progress,
            }
            .run(opts, &to_push, &mut report)?;
        }
        Target::Store(uri) => {
            report.via = "nix copy".to_owned();
            let uri = match &key_file {
                Some(k) => backend::with_secret_key(uri, k),
                None => uri.clone(),
            };
            let upload = Upload {
                nix: &nix,
                uri: &uri,
                nodes: &nodes,
                cache: cache.as_ref().map(|(c, _)| c),
                progress: &progress,
                deadline: &deadline,
            };
            upload.run(&to_push, unusable, &mut report)?;
        }
        Target::Cachix(name) => {
            report.via = "cachix push".to_owned();
            let cmd = backend::cachix_push(name, opts.jobs, &to_push);
            upload_with_tool(
                &runner,
                &cmd,
                &to_push,
                &nodes,
                &progress,
                &deadline,
                &mut report,
            );
        }
        Target::Attic(c) => {
            report.via = "attic push".to_owned();
            let cmd = backend::attic_push(c, opts.jobs, &to_push);
            upload_with_tool(
                &runner,
                &cmd,
                &to_push,
                &nodes,
                &progress,
                &deadline,
                &mut report,
            );
        }
    }
    progress.finish();
    report.nar_bytes_pushed = report.pushed.iter().map(|p| size_of(p)).sum();
    Ok(report)
}

/// The closure of `roots` with NAR sizes and references (hashes and signatures are not
/// needed: `nix copy` reads those itself). From the store database when `pref` allows
/// and it opens read-only: no Nix process, and only the closure is read. Else (a non-root
/// user before Nix 2.22, a store that is not local, a root the database does not know)
/// from `nix path-info --json --recursive`, whose answer then decides.
fn read_closure(
    roots: &[String],
    pref: SourcePref,
    nix: &Nix,
) -> Result<BTreeMap<String, PathInfo>, PushError> {
    if pref != SourcePref::Nix {
        match closure_from_db(roots) {
            Ok(nodes) => return Ok(nodes),
            Err(why) if pref == SourcePref::Database => return Err(PushError::Database(why)),
            Err(_) => {}
        }
    }
    let mut nodes = BTreeMap::new();
    for i in nix.path_info(roots, true)? {
        if !i.valid {
            return Err(PushError::InvalidPath { path: i.path });
        }
        nodes.insert(i.path.clone(), i);
    }
    Ok(nodes)
}

/// [`read_closure`] from the database of the store Nix uses here (`NIX_REMOTE`, as
/// `nix copy` will), or why it cannot be read.
fn closure_from_db(roots: &[String]) -> Result<BTreeMap<String, PathInfo>, String> {
    let remote = std::env::var("NIX_REMOTE").ok();
    let loc = StoreLocation::parse(remote.as_deref());
    if loc.kind != StoreKind::Local {
        return Err(format!("the store `{}` is not local", loc.display()));
    }
    let db = loc.db_path();
    if !db.is_file() {
        return Err(format!("there is no store database at {}", db.display()));
    }
    let (conn, _) = crate::store::db::open(&db).map_err(|e| e.to_string())?;
    let closure = crate::store::db::read_closure(&conn, &db, roots).map_err(|e| e.to_string())?;
    if let Some(r) = closure.missing_roots.first() {
        return Err(format!("{r} is not a valid path in {}", db.display()));
    }
    Ok(closure
        .paths
        .into_iter()
        .map(|i| (i.path.clone(), i))
        .collect())
}

/// Checks the cache's `StoreDir`; returns whether it has a `nix-cache-info` at all.
fn check_store_dir(cache: &BinaryCache) -> Result<bool, PushError> {
    let info = cache.cache_info().map_err(|e| match e {
        crate::binarycache::CacheError::NotABinaryCache { .. } => {
            PushError::NotABinaryCache(e.to_string())
        }
        _ => PushError::CacheRead {
            url: cache.display_url(),
            reason: e.to_string(),
        },
    })?;
    let initialised = info.is_some();
    if let Some(dir) = info.and_then(|i| i.store_dir) {
        if dir != DEFAULT_STORE_DIR {
            return Err(PushError::StoreDirMismatch {
                url: cache.display_url(),
                found: dir,
                expected: DEFAULT_STORE_DIR.to_owned(),
            });
        }
    }
    Ok(initialised)
}

/// Store paths for the arguments, stdin lines or `./result*` links.
fn resolve_roots(opts: &Options, nix: &Nix) -> Result<Vec<String>, PushError> {
    let mut args: Vec<String> = opts.args.clone();
    if let Some(lines) = &opts.stdin_paths {
        args.extend(
            lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if args.is_empty() && opts.stdin_paths.is_none() {
        args = result_links(&opts.cwd);
        if args.is_empty() {
            return Err(PushError::NothingGiven {
                dir: opts.cwd.clone(),
            });
        }
    }
    let mut roots = BTreeSet::new();
    let mut installables = Vec::new();
    for arg in &args {
        let p = opts.cwd.join(arg);
        if std::fs::symlink_metadata(&p).is_ok() {
            let real = std::fs::canonicalize(&p).map_err(|e| PushError::NotInStore {
                arg: arg.clone(),
                resolved: format!("nothing ({e})"),
            })?;
            let real_s = real.display().to_string();
            match storepath::to_store_path(&real_s, DEFAULT_STORE_DIR) {
                Some(sp) => {
                    roots.insert(sp.to_owned());
                }
                None => {
                    return Err(PushError::NotInStore {
                        arg: arg.clone(),
                        resolved: real_s,
                    });
                }
            }
        } else if let Some(sp) = storepath::to_store_path(arg, DEFAULT_STORE_DIR) {
            roots.insert(sp.to_owned());
        } else {
            installables.push(arg.clone());
        }
    }
    if !installables.is_empty() {
        roots.extend(build_installables(nix, &installables, &opts.cwd)?);
    }
    Ok(roots.into_iter().collect())
}

/// Every `result*` symlink in `dir` (what `nix build` leaves), sorted.
pub fn result_links(dir: &Path) -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("result"))
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

/// `nix build --no-link --json INSTALLABLES` (2.8 has no `--print-out-paths`): the
/// output paths. Runs in dry-run too: building is not uploading, and what would be
/// pushed cannot be known without it.
fn build_installables(
    nix: &Nix,
    installables: &[String],
    cwd: &Path,
) -> Result<Vec<String>, PushError> {
    let cmd = nix
        .command([
            "--extra-experimental-features",
            "flakes",
            "build",
            "--no-link",
            "--json",
        ])
        .args(installables)
        .current_dir(cwd)
        .read_only();
    let out = nix.runner().run(&cmd)?;
    parse_build_json(&out.stdout_str()).map_err(|reason| {
        PushError::Nix(NixError::Parse {
            cmdline: cmd.display(),
            reason,
        })
    })
}

/// Output paths from `nix build --json`: `[{"drvPath":..,"outputs":{"out":"/nix/store/.."}}]`
/// (opaque store paths appear as `{"path": ..}`).
pub fn parse_build_json(json: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = v.as_array().ok_or("expected a JSON array")?;
    let mut out = Vec::new();
    for item in items {
        if let Some(outputs) = item.get("outputs").and_then(|o| o.as_object()) {
            out.extend(
                outputs
                    .values()
                    .filter_map(|p| p.as_str())
                    .map(str::to_owned),
            );
        } else if let Some(p) = item.get("path").and_then(|p| p.as_str()) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}

/// The path in Nix's `copying path '/nix/store/...' to '...'...` progress line.
fn copying_path(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("copying path '")?;
    rest.split('\'').next()
}

/// How many `nix copy` processes run at once: Nix compresses on about one core per
/// process, so independent paths go faster spread over the machine's cores.
fn upload_processes(uri: &str) -> usize {
    // Only for local caches: parallel `nix` processes writing to a remote store share
    // Nix's narinfo disk cache (~/.cache/nix/binary-cache-v6.sqlite), and two of them
    // creating it at once fail ("constraint failed", seen with Nix 2.8). Remote uploads
    // are parallel inside one `nix copy` anyway (`http-connections`).
    if !uri.starts_with("file://") {
        return 1;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Splits `to_push` (references first) into stages run one after the other; the chunks
/// of one stage hold no references to each other and run in parallel. A path's level is
/// one more than the highest level of the paths it references in `to_push`; a level with
/// enough paths is split `procs` ways, consecutive small levels share one `nix copy`
/// (which orders them itself).
pub(crate) fn stages(
    to_push: &[String],
    references: &dyn Fn(&str) -> Vec<String>,
    procs: usize,
) -> Vec<Vec<Vec<String>>> {
    // A `nix` process costs ~25 ms to start and open both stores; compressing a path
    // (xz, the default) ~3 ms even when it is small: from ~16 paths a second process
    // pays for itself on an idle core.
    const MIN_PER_PROCESS: usize = 16;
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<String>> = Vec::new();
    for p in to_push {
        let l = references(p)
            .iter()
            .filter(|r| r.as_str() != p.as_str())
            .filter_map(|r| level.get(r.as_str()))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        level.insert(p, l);
        if levels.len() <= l {
            levels.resize(l + 1, Vec::new());
        }
        levels[l].push(p.clone());
    }
    let mut out: Vec<Vec<Vec<String>>> = Vec::new();
    let mut serial: Vec<String> = Vec::new();
    for lv in levels {
        let k = (lv.len() / MIN_PER_PROCESS).clamp(1, procs.max(1));
        if k == 1 {
            serial.extend(lv);
            continue;
        }
        if !serial.is_empty() {
            out.push(vec![std::mem::take(&mut serial)]);
        }
        let per = lv.len().div_ceil(k);
        out.push(lv.chunks(per).map(<[String]>::to_vec).collect());
    }
    if !serial.is_empty() {
        out.push(vec![serial]);
    }
    out
}

/// `paths` followed by the references they have outside `paths` — paths the cache
/// already holds (or that an earlier stage uploaded). Nix checks that every reference
/// of an uploaded path is in the cache, one request at a time; given them too, it learns
/// in one parallel query that they are there and copies nothing for them. So what is
/// uploaded is still exactly `paths`, without hundreds of sequential narinfo requests
/// to a remote cache.
fn with_references(paths: &[String], nodes: &BTreeMap<String, PathInfo>) -> Vec<String> {
    let own: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
    let refs: BTreeSet<&str> = paths
        .iter()
        .filter_map(|p| nodes.get(p))
        .flat_map(|i| i.references.iter().map(String::as_str))
        .filter(|r| !own.contains(r))
        .collect();
    paths
        .iter()
        .cloned()
        .chain(refs.into_iter().map(str::to_owned))
        .collect()
}

/// One push through `nix copy`: what it needs, for [`Upload::run`].
struct Upload<'a> {
    nix: &'a Nix,
    uri: &'a str,
    nodes: &'a BTreeMap<String, PathInfo>,
    cache: Option<&'a BinaryCache>,
    progress: &'a Progress,
    deadline: &'a Deadline,
}

impl Upload<'_> {
    fn size_of(&self, p: &str) -> u64 {
        self.nodes.get(p).map(|i| i.nar_size).unwrap_or(0)
    }

    /// `nix copy` of `paths` (with their references as hints), within the time left.
    fn copy(&self, paths: &[String], on_line: &mut dyn FnMut(&str)) -> Result<(), CmdError> {
        let cmd = backend::nix_copy(
            self.nix,
            self.uri,
            &with_references(paths, self.nodes),
            &attempt::nix_options(self.deadline),
        );
        attempt::run(self.nix.runner(), cmd, self.deadline, on_line).map(|_| ())
    }

    /// Which of `paths` the cache now proves to hold (none when it cannot be asked).
    fn present(&self, paths: &[String]) -> BTreeSet<String> {
        match self.cache {
            Some(c) if !self.deadline.expired() => c
                .query(
                    paths,
                    &QueryOptions {
                        deadline: Some(self.deadline.instant()),
                        ..QueryOptions::default()
                    },
                )
                .into_iter()
                .filter(|s| s.is_present())
                .map(|s| s.path)
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    fn pushed(&self, p: &str, started: &BTreeSet<String>, report: &mut Report) {
        if !started.contains(p) {
            self.progress
                .done(p, self.size_of(p), self.nix.runner().is_dry_run());
        }
        report.pushed.push(p.to_owned());
    }

    fn fail(&self, p: String, why: String, failed: &mut BTreeMap<String, String>) {
        self.progress.failed(&p, &why);
        failed.insert(p, why);
    }

    /// Uploads `to_push` (references first). `failed` starts with the paths known to be
    /// impossible; their dependents are not attempted. Every failure gets its reason.
    fn run(
        &self,
        to_push: &[String],
        mut failed: BTreeMap<String, String>,
        report: &mut Report,
    ) -> Result<(), PushError> {
        let nodes = self.nodes;
        let refs = |p: &str| {
            nodes
                .get(p)
                .map(|i| i.references.clone())
                .unwrap_or_default()
        };
        let mut started: BTreeSet<String> = BTreeSet::new();
        for stage in stages(to_push, &refs, upload_processes(self.uri)) {
            // Paths whose reference failed earlier cannot go: the cache would hold them
            // without that reference. Nothing starts after the deadline.
            let mut chunks: Vec<Vec<String>> = Vec::new();
            for chunk in stage {
                let mut ready = Vec::new();
                for p in chunk {
                    if let Some(r) = failed_reference(&p, nodes, &failed) {
                        let why = format!("not attempted: its reference {r} failed to upload");
                        self.fail(p, why, &mut failed);
                    } else if self.deadline.expired() {
                        self.fail(p, self.deadline.expired_reason(), &mut failed);
                    } else {
                        ready.push(p);
                    }
                }
                if !ready.is_empty() {
                    chunks.push(ready);
                }
            }
            // Each chunk is one `nix copy` (Nix uploads references first, in parallel);
            // the chunks of a stage run at the same time.
            let results: Vec<(BTreeSet<String>, Result<(), CmdError>)> = std::thread::scope(|s| {
                let handles: Vec<_> = chunks
                    .iter()
                    .map(|chunk| {
                        s.spawn(move || {
                            let mut seen = BTreeSet::new();
                            let r = self.copy(chunk, &mut |line| {
                                if let Some(p) = copying_path(line) {
                                    if nodes.contains_key(p) && seen.insert(p.to_owned()) {
                                        self.progress.started(p, self.size_of(p));
                                    }
                                }
                            });
                            (seen, r)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                BTreeSet::new(),
                                Err(CmdError::Failed {
                                    cmdline: "nix copy".to_owned(),
                                    status: "upload thread panicked".to_owned(),
                                    stderr: String::new(),
                                    stdout: String::new(),
                                }),
                            )
                        })
                    })
                    .collect()
            });
            let mut retry: Vec<String> = Vec::new();
            for (chunk, (seen, result)) in chunks.iter().zip(results) {
                started.extend(seen);
                match result {
                    Ok(()) => {
                        for p in chunk {
                            self.pushed(p, &started, report);
                        }
                    }
                    Err(e @ (CmdError::NotFound { .. } | CmdError::Spawn { .. })) => {
                        // Nix itself is unusable: nothing else will work either.
                        return Err(PushError::Cmd(e));
                    }
                    Err(e) => {
                        let why = attempt::reason(&e);
                        let again = attempt::retryable(&e) && !self.deadline.expired();
                        self.progress.line(&format!(
                            "upload of {} paths failed{}: {why}",
                            chunk.len(),
                            if again {
                                ", retrying what is missing"
                            } else {
                                " (not retried)"
                            }
                        ));
                        // Keep what made it; retry the rest (or give up on it).
                        let present = self.present(chunk);
                        for p in chunk {
                            if present.contains(p) {
                                self.pushed(p, &started, report);
                            } else if again {
                                retry.push(p.clone());
                            } else {
                                self.fail(p.clone(), why.clone(), &mut failed);
                            }
                        }
                    }
                }
            }
            // First the whole remainder once more, after a pause: a transient failure
            // then costs one more `nix copy`, not one per path.
            if !retry.is_empty() {
                self.deadline.sleep(RETRY_DELAYS[0]);
                let again = self.copy(&retry, &mut |_| {});
                let present: BTreeSet<String> = match &again {
                    Ok(()) => retry.iter().cloned().collect(),
                    Err(_) => self.present(&retry),
                };
                let give_up = match &again {
                    Err(e) if !attempt::retryable(e) => Some(attempt::reason(e)),
                    _ => None,
                };
                let mut rest = Vec::new();
                for p in std::mem::take(&mut retry) {
                    if present.contains(&p) {
                        self.pushed(&p, &started, report);
                    } else if let Some(why) = &give_up {
                        self.fail(p, why.clone(), &mut failed);
                    } else {
                        rest.push(p);
                    }
                }
                retry = rest;
            }
            // Then what is still missing, one path at a time in dependency order: at
            // once, then after each remaining pause — while there is time.
            for p in retry {
                if let Some(r) = failed_reference(&p, nodes, &failed) {
                    let why = format!("not attempted: its reference {r} failed to upload");
                    self.fail(p, why, &mut failed);
                    continue;
                }
                let mut last_err = self.deadline.expired_reason();
                let mut ok = false;
                for delay in [Duration::ZERO, RETRY_DELAYS[1], RETRY_DELAYS[2]] {
                    self.deadline.sleep(delay);
                    if self.deadline.expired() {
                        break;
                    }
                    match self.copy(std::slice::from_ref(&p), &mut |_| {}) {
                        Ok(()) => {
                            ok = true;
                            break;
                        }
                        Err(e) => {
                            last_err = attempt::reason(&e);
                            if !attempt::retryable(&e) {
                                break;
                            }
                        }
                    }
                }
                if ok {
                    self.pushed(&p, &started, report);
                } else {
                    self.fail(p, last_err, &mut failed);
                }
            }
        }
        for (p, e) in failed {
            report.failed.push(p.clone());
            report.failures.push(Failure { path: p, reason: e });
        }
        Ok(())
    }
}

fn failed_reference<'a>(
    p: &str,
    nodes: &'a BTreeMap<String, PathInfo>,
    failed: &BTreeMap<String, String>,
) -> Option<&'a str> {
    nodes.get(p).and_then(|i| {
        i.references
            .iter()
            .find(|r| r.as_str() != p && failed.contains_key(r.as_str()))
            .map(String::as_str)
    })
}

/// `cachix push` / `attic push`: one command for the whole set, retried with backoff
/// (both tools skip what the cache already holds, so a retry only sends what is left),
/// within the deadline; a program killed by a signal is not run again.
fn upload_with_tool(
    runner: &Runner,
    cmd: &crate::cmd::Cmd,
    to_push: &[String],
    nodes: &BTreeMap<String, PathInfo>,
    progress: &Progress,
    deadline: &Deadline,
    report: &mut Report,
) {
    let size_of = |p: &str| nodes.get(p).map(|i| i.nar_size).unwrap_or(0);
    let mut result = attempt::run(runner, cmd.clone(), deadline, &mut |_| {});
    for delay in RETRY_DELAYS {
        match &result {
            Err(e) if attempt::retryable(e) && !deadline.expired() => {
                progress.line(&format!(
                    "`{}` failed, retrying in {} ms: {}",
                    cmd.argv()
                        .iter()
                        .take(2)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                    delay.as_millis(),
                    attempt::reason(e)
                ));
                deadline.sleep(delay);
                result = attempt::run(runner, cmd.clone(), deadline, &mut |_| {});
            }
            _ => break,
        }
    }
    match result {
        Ok(_) => {
            for p in to_push {
                progress.done(p, size_of(p), runner.is_dry_run());
                report.pushed.push(p.clone());
            }
        }
        Err(e) => {
            let why = attempt::reason(&e);
            for p in to_push {
                report.failed.push(p.clone());
                report.failures.push(Failure {
                    path: p.clone(),
                    reason: why.clone(),
                });
            }
            progress.line(&format!("FAILED: {why}"));
        }
    }
}

/// Appends the Markdown summary to `$GITHUB_STEP_SUMMARY` when set; returns the file.
pub fn write_step_summary(report: &Report) -> Result<Option<PathBuf>, crate::fsutil::FsError> {
    output::append_step_summary(&redact::urls_in(&report.markdown()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(ExitCode::Success.code(), 0);
        assert_eq!(ExitCode::Error.code(), 1);
        assert_eq!(ExitCode::Usage.code(), 2);
        assert_eq!(ExitCode::PushFailed.code(), 3);
        assert_eq!(ExitCode::NotPushed.code(), 4);
        assert_eq!(ExitCode::MissingProgram.code(), 5);
        for c in 0..=5 {
            assert!(ExitCode::HELP.contains(&format!("  {c}  ")), "{c}");
        }
        assert_eq!(
            PushError::NotPushed { reason: "x".into() }.exit_code(),
            ExitCode::NotPushed
        );
        assert_eq!(PushError::NoTarget.exit_code(), ExitCode::Error);
        let r = Report {
            failed: vec!["/nix/store/x".into()],
            ..Report::default()
        };
        assert_eq!(r.exit_code(), ExitCode::PushFailed);
        assert_eq!(Report::default().exit_code(), ExitCode::Success);
    }

    #[test]
    fn stages_keep_references_in_earlier_stages() {
        // 200 leaves, 4 groups of 50, one top: leaves split 2 ways, then groups and top
        // share one serial stage.
        let leaves: Vec<String> = (0..200).map(|i| format!("/nix/store/l{i:03}")).collect();
        let groups: Vec<String> = (0..4).map(|g| format!("/nix/store/g{g}")).collect();
        let mut order = leaves.clone();
        order.extend(groups.clone());
        order.push("/nix/store/top".to_owned());
        let refs = |p: &str| -> Vec<String> {
            if let Some(g) = p.strip_prefix("/nix/store/g") {
                let g: usize = g.parse().unwrap();
                leaves[g * 50..(g + 1) * 50].to_vec()
            } else if p == "/nix/store/top" {
                groups.clone()
            } else {
                vec![p.to_owned()]
            }
        };
        let st = stages(&order, &refs, 2);
        assert_eq!(st.len(), 2, "{st:?}");
        assert_eq!(st[0].len(), 2);
        assert_eq!(st[0][0].len() + st[0][1].len(), 200);
        assert_eq!(st[1].len(), 1);
        assert_eq!(st[1][0].last().unwrap(), "/nix/store/top");
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
            pushed: vec!["/nix/store/a".into()],
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
        ] {
            assert!(keys.contains(&k), "{k} missing in {keys:?}");
        }
        assert_eq!(keys.len(), 15, "{keys:?}");
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
