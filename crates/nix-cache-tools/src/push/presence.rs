//! The push's presence step: the client for the target, its `nix-cache-info`, and what
//! the cache already holds — proven, path by path — so that only the rest is uploaded.
//! A narinfo that proves nothing (garbage, another path's, other contents, its NAR
//! gone) is replaced where the upload can replace it, and fails the path where it
//! cannot (`nix copy` reads it first and stops).

use super::attempt::{self, Deadline};
use super::backend::Target;
use super::{Options, PushError, Report};
use crate::binarycache::{BinaryCache, Found, QueryOptions};
use crate::nixcli::PathInfo;
use crate::redact;
use crate::storepath::{DEFAULT_STORE_DIR, StorePath};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the presence step works on.
pub(super) struct Ask<'a> {
    /// The cache client and whether the cache has a `nix-cache-info` (`None`: a target
    /// this client cannot ask, such as `ssh-ng://`).
    pub(super) cache: Option<&'a (BinaryCache, bool)>,
    /// The closure to push, references first.
    pub(super) ordered: &'a [StorePath],
    pub(super) nodes: &'a BTreeMap<StorePath, PathInfo>,
    pub(super) target: &'a Target,
    pub(super) opts: &'a Options,
    pub(super) deadline: &'a Deadline,
}

impl Ask<'_> {
    /// What is left to upload. `native`: the upload is push-cache's own pipeline, which
    /// writes narinfos itself and so replaces those that prove nothing.
    pub(super) fn run(&self, native: bool, report: &mut Report) -> Todo {
        // A cache without `nix-cache-info` is new: Nix writes that file when it first
        // opens a binary cache, before any upload. Asking it about every path would only
        // find them all missing (and `nix copy` checks again anyway), so it is not asked.
        report.queried = self.cache.is_some();
        let mut todo = match self.cache {
            Some((cache, true)) => self.ask_cache(cache, native, report),
            _ => Todo {
                to_push: self.ordered.to_vec(),
                ..Todo::default()
            },
        };
        if native && !todo.unusable.is_empty() {
            todo.replace_unusable(self.ordered, report);
        }
        todo
    }

    /// Asks the cache about every path of `ordered`, in parallel within the deadline: what
    /// it holds is already cached (in the report), what it lacks or could not answer for is
    /// pushed, and a narinfo that proves nothing is replaced where that is possible.
    fn ask_cache(&self, cache: &BinaryCache, native: bool, report: &mut Report) -> Todo {
        let Ask {
            ordered,
            nodes,
            target,
            opts,
            deadline,
            ..
        } = *self;
        // S3 services answer each request after a fixed delay rather than by load (seen
        // ~20 ms per request from s3s-fs even on loopback; AWS documents tens of ms):
        // more requests in flight, not faster ones, make the presence check quick.
        let s3 = matches!(target, Target::Store(u) if u.starts_with("s3://"));
        let q = QueryOptions {
            jobs: opts.jobs.unwrap_or(if s3 { 64 } else { 16 }),
            deadline: Some(deadline.instant()),
            ..QueryOptions::default()
        };
        let found = cache.query_detailed(ordered, &q);
        let mut todo = Todo::default();
        let mut errors = 0usize;
        for (path, f) in ordered.iter().cloned().zip(found) {
            // A narinfo for other contents than this store's (another NAR hash or size: a
            // corrupted or forged entry, re-signed or not) is no proof either: Nix would
            // download it and fail with "hash mismatch".
            let f = match (f, nodes.get(&path)) {
                (
                    Found::Present {
                        nar_size, nar_hash, ..
                    },
                    Some(local),
                ) if (local.nar_size != 0 && nar_size != local.nar_size)
                    || local
                        .nar_hash
                        .as_deref()
                        .and_then(crate::narinfo::nar_hash_nix32)
                        .is_some_and(|h| nar_hash.as_deref() != Some(h.as_str())) =>
                {
                    Found::Invalid(format!(
                        "it describes other contents than this store's {path} (another NarHash or NarSize)"
                    ))
                }
                (f, _) => f,
            };
            match f {
                Found::Present { .. } => report.already_cached.push(path),
                Found::Absent => todo.to_push.push(path),
                Found::Invalid(why) | Found::NarMissing(why) => {
                    match replace_invalid(cache, &path, &why, opts.dry_run, report) {
                        Ok(()) => todo.to_push.push(path),
                        Err(message) => {
                            todo.reasons.insert(path.clone(), why);
                            todo.unusable.insert(path, message);
                        }
                    }
                }
                Found::Error(e) => {
                    if errors == 0 {
                        report.warnings.push(format!(
                            "could not ask {} about {path}: {e}; such paths are pushed {}",
                            cache.display_url(),
                            if native {
                                "(an upload writes over what may be there)"
                            } else {
                                "(nix copy checks again)"
                            },
                        ));
                    }
                    errors += 1;
                    todo.to_push.push(path);
                }
            }
        }
        if errors > 1 {
            report.warnings.push(format!(
                "the cache did not answer for {errors} paths in all"
            ));
        }
        todo
    }
}

/// A client for a `file://`, `http(s)://` or `s3://` target (`None` for other targets),
/// each request bounded by 30 s or `--timeout` when that is less. Nothing is sent yet.
pub(super) fn open_client(
    target: &Target,
    opts: &Options,
) -> Result<Option<BinaryCache>, PushError> {
    let Target::Store(uri) = target else {
        return Ok(None);
    };
    if !crate::binarycache::is_supported(uri) {
        return Ok(None);
    }
    let limit = opts.timeout.unwrap_or(attempt::DEFAULT_TIMEOUT);
    let per_request = limit.min(Duration::from_secs(30));
    BinaryCache::with_timeout(uri, per_request)
        .map(Some)
        .map_err(|e| PushError::CacheRead {
            url: redact::url(uri),
            reason: e.to_string(),
        })
}

/// What is left to upload once the cache has been asked.
#[derive(Default)]
pub(super) struct Todo {
    /// Paths to upload, references first.
    pub(super) to_push: Vec<StorePath>,
    /// Paths whose narinfo in the cache is there but proves nothing, and that `nix copy`
    /// cannot replace (it reads that narinfo first and stops): failed from the start,
    /// with the reason.
    pub(super) unusable: BTreeMap<StorePath, String>,
    /// Why each of [`Todo::unusable`]'s narinfos proves nothing.
    reasons: BTreeMap<StorePath, String>,
}

impl Todo {
    /// For the native pipeline, which writes narinfos itself: a narinfo that proves
    /// nothing is replaced, so those paths go again (in `ordered`'s order).
    fn replace_unusable(&mut self, ordered: &[StorePath], report: &mut Report) {
        for p in self.unusable.keys() {
            let why = self
                .reasons
                .get(p)
                .map_or(String::new(), |w| format!(" ({w})"));
            report.warnings.push(format!(
                "the cache's narinfo for {p} proves nothing{why}; it is replaced"
            ));
        }
        let again: BTreeSet<&StorePath> = self.unusable.keys().chain(self.to_push.iter()).collect();
        self.to_push = ordered
            .iter()
            .filter(|p| again.contains(p))
            .cloned()
            .collect();
        self.unusable.clear();
    }
}

/// A narinfo for `path` that proves nothing (`why`): in a `file://` cache it is removed
/// and Nix writes a good one (`Ok`: push the path); elsewhere, or when it cannot be
/// removed, why the path cannot be pushed.
fn replace_invalid(
    cache: &BinaryCache,
    path: &str,
    why: &str,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), String> {
    let Some(dir) = cache.local_dir() else {
        return Err(format!(
            "the cache holds a narinfo for it that proves nothing ({why}); nix copy reads it before uploading and cannot replace it: delete that file from the cache, then push again"
        ));
    };
    report.warnings.push(format!(
        "the cache's narinfo for {path} proves nothing ({why}); replacing it"
    ));
    if !dry_run {
        let file = dir.join(crate::narinfo::narinfo_file_name(path).unwrap_or_default());
        if let Err(e) = crate::fsutil::remove_file_checked(&file, crate::fsutil::Expect::Any) {
            return Err(format!(
                "the cache holds a narinfo that proves nothing ({why}), and it could not be removed: {e}"
            ));
        }
    }
    Ok(())
}

/// Checks the cache's `StoreDir`; returns whether it has a `nix-cache-info` at all.
pub(super) fn check_store_dir(cache: &BinaryCache) -> Result<bool, PushError> {
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
