//! The upload to `file://`, `http(s)://` and `s3://` caches through push-cache's own pipeline
//! ([`crate::upload`]), as [`super::run`] uses it unless `--via nix`: what to compress
//! with, where the store's files are, which credentials an HTTP cache gets (the netrc
//! Nix would use), and the report.

use super::{Failure, Options, PushError, Report, Reporter};
use crate::compress::{self, Method, Settings};
use crate::keys::SecretKey;
use crate::nixcli::PathInfo;
use crate::storepath::StorePath;
use crate::upload::{self, FileSink, HttpSink, Outcome, S3Sink, Sink};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

/// The part size of multipart uploads to S3 unless `?multipart-chunk-size=` says.
const S3_PART_SIZE: u64 = 32 * 1024 * 1024;

/// The compression: `--compression` / `--compression-level`, else the target URI's
/// `?compression=` (as Nix reads it), else zstd at its default level.
pub(super) fn settings(opts: &Options, uri: &str) -> Result<Settings, PushError> {
    let bad = PushError::BadTarget;
    let from_uri = compress::from_store_uri(uri).map_err(bad)?;
    let method = match &opts.compression {
        Some(m) => Method::parse(m).map_err(PushError::BadTarget)?,
        None => from_uri.map_or(Method::Zstd, |s| s.method),
    };
    let level = opts
        .compression_level
        .or(from_uri.filter(|s| s.method == method).map(|s| s.level));
    Settings::new(method, level).map_err(PushError::BadTarget)
}

/// The default number of upload workers: compression keeps a core busy, uploads wait on
/// the network, so twice the cores (at least 4, at most 16).
pub(super) fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .saturating_mul(2)
        .clamp(4, 16)
}

/// `Authorization: Basic ...` for `host` from the netrc Nix would use for it (the
/// `netrc-file` in force, else `$NIX_CONF_DIR/netrc`): `nix copy` uploads with those
/// credentials, so the native upload does too.
fn netrc_auth(host: &str) -> Option<String> {
    use base64::Engine;
    let env = crate::nixconf::Env::from_process();
    let layers = crate::nixconf::load(&env);
    let file = layers
        .effective_scalar("netrc-file")
        .map(|s| std::path::PathBuf::from(s.value))
        .unwrap_or_else(|| env.conf_dir().join("netrc"));
    let text = crate::fsutil::read_optional(&file).ok().flatten()?;
    let (login, password) = crate::setup::netrc::lookup(&String::from_utf8_lossy(&text), host)?;
    // A server may echo it in an error: hidden from every output like any secret.
    crate::redact::register_secret(&password);
    let raw = format!("{}:{password}", login.unwrap_or_default());
    let header = base64::engine::general_purpose::STANDARD.encode(raw);
    crate::redact::register_secret(&header);
    Some(format!("Basic {header}"))
}

/// Everything the native upload needs from [`super::run`].
pub(super) struct Native<'a> {
    pub(super) uri: &'a str,
    pub(super) nodes: &'a BTreeMap<StorePath, PathInfo>,
    /// Paths the cache holds already (their narinfos count as written).
    pub(super) present: &'a BTreeSet<StorePath>,
    /// Whether the cache has a `nix-cache-info` (else one is written first).
    pub(super) initialised: bool,
    /// For `s3://`: the bucket the presence queries used, credentials and all.
    pub(super) s3_bucket: Option<std::sync::Arc<crate::s3::S3Bucket>>,
    pub(super) key_file: Option<&'a Path>,
    pub(super) deadline: Instant,
    pub(super) progress: &'a Reporter<'a>,
}

impl Native<'_> {
    /// Uploads `to_push` and fills the report: pushed, failed with reasons, bytes.
    pub(super) fn run(
        &self,
        opts: &Options,
        to_push: &[StorePath],
        report: &mut Report,
    ) -> Result<(), PushError> {
        let compression = settings(opts, self.uri)?;
        report.compression = Some(compression.method.narinfo_name().to_owned());
        report.via = super::Via::Native;
        if opts.dry_run {
            report.pushed.extend(to_push.iter().cloned());
            return Ok(());
        }
        let secret_key = match self.key_file {
            Some(k) => Some(SecretKey::read(k).map_err(|e| PushError::SecretKey {
                path: k.to_owned(),
                error: e,
            })?),
            None => None,
        };
        let jobs = opts.jobs.unwrap_or_else(default_jobs);
        let remote = std::env::var("NIX_REMOTE").ok();
        let loc = crate::store::location::StoreLocation::parse(remote.as_deref());
        let upload_opts = upload::Options {
            compression,
            jobs,
            secret_key,
            real_store_dir: loc.real_store_dir(),
            store_dir: loc.store_dir.clone(),
            deadline: self.deadline,
            retries: 3,
        };
        let clean = crate::binarycache::strip_store_params(self.uri).trim_end_matches('/');
        let sink = self.sink(clean, &upload_opts, report)?;
        let started = Instant::now();
        let results = upload::upload(
            to_push,
            self.nodes,
            self.present,
            sink.as_ref(),
            &upload_opts,
            &|p| self.progress.send(p),
        );
        report.seconds = Some(started.elapsed().as_secs_f64());
        self.record(results, report);
        if !opts.no_refresh && !report.pushed.is_empty() {
            forget_stale_answers(clean, report);
        }
        Ok(())
    }

    /// Where the files go for `clean` (the URI without store parameters): a `file://`
    /// directory, an S3 bucket (after aborting the multipart uploads an interrupted push
    /// left), else an HTTP cache with the netrc's credentials.
    fn sink(
        &self,
        clean: &str,
        upload_opts: &upload::Options,
        report: &mut Report,
    ) -> Result<Box<dyn Sink>, PushError> {
        let jobs = upload_opts.jobs;
        Ok(match clean.strip_prefix("file://") {
            Some(dir) => Box::new(FileSink::new(clean, Path::new(dir)).map_err(|e| {
                PushError::CacheRead {
                    url: crate::redact::url(clean),
                    reason: e.to_string(),
                }
            })?),
            None if clean.starts_with("s3://") => {
                let bucket = self.s3_bucket.clone().ok_or_else(|| PushError::CacheRead {
                    url: clean.to_owned(),
                    reason: "no S3 client was opened for it".to_owned(),
                })?;
                // S3 takes 5 MiB at least (S3Sink raises a smaller one).
                let part_size = bucket.part_size().unwrap_or(S3_PART_SIZE);
                let sink = S3Sink::new(
                    bucket,
                    jobs,
                    upload_opts.retries,
                    self.initialised,
                    part_size,
                )
                .with_journal(crate::s3::Journal::default_location());
                let aborted = sink.abort_abandoned(self.deadline);
                if aborted > 0 {
                    report.warnings.push(format!(
                        "aborted {aborted} multipart upload(s) to {clean} that an interrupted push from this machine had left unfinished"
                    ));
                }
                Box::new(sink)
            }
            None => {
                let mut s = HttpSink::new(clean, jobs, upload_opts.retries, self.initialised);
                if let Some(auth) = crate::url::host(clean).and_then(netrc_auth) {
                    s = s.header("Authorization", &auth);
                }
                Box::new(s)
            }
        })
    }

    /// The pipeline's outcomes in the report: pushed paths and compressed bytes, failed
    /// paths with their reasons (credentials hidden).
    fn record(&self, results: upload::Results, report: &mut Report) {
        for (p, o) in results.outcomes {
            match o {
                Outcome::Pushed { file_size } => {
                    report.file_bytes_pushed += file_size;
                    report.pushed.push(p);
                }
                Outcome::Failed(why) => {
                    let why = crate::redact::urls_in(&why);
                    self.progress.failed(&p, &why);
                    report.failed.push(p.clone());
                    report.failures.push(Failure {
                        path: p,
                        reason: why,
                    });
                }
            }
        }
    }
}

/// Forgets this machine's "not in this cache" answers of `cache_url` for the pushed
/// paths ([`upload::fresh`]); a warning when the disk cache cannot be changed.
fn forget_stale_answers(cache_url: &str, report: &mut Report) {
    if let Some(db) = upload::fresh::disk_cache_dir() {
        match upload::fresh::forget_negative(&db, cache_url, &report.pushed) {
            Ok(n) => report.refreshed = Some(n),
            Err(e) => report.warnings.push(format!(
                "could not forget this machine's stale 'not in this cache' answers ({e}); a build in the next hour may not see the pushed paths: nix build --option narinfo-cache-negative-ttl 0"
            )),
        }
    }
}
