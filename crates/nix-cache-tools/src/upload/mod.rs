//! push-cache's own upload pipeline for `file://`, `http(s)://` and `s3://` binary caches: NARs
//! written straight from the store's files, compressed in parallel, signed, uploaded,
//! and a narinfo written for each path only once its references' narinfos are there.
//!
//! For each path, on one of `jobs` workers (largest NARs first, so one giant path does
//! not finish last):
//! 1. The NAR is serialized from `<store root>/<base name>` ([`crate::nar::dump`]),
//!    hashed and counted on the way, compressed ([`crate::compress`]), hashed again
//!    (the `FileHash`), and spooled: in memory up to [`MEMORY_SPOOL`] bytes, else to a
//!    temporary file (for `file://` caches straight into the cache's `nar/` directory),
//!    so memory stays bounded whatever the NAR's size.
//! 2. The NAR hash and size are compared with what the store database registered: a
//!    store path whose files changed since is refused with its name, never uploaded.
//! 3. The NAR goes to `nar/<nix32 filehash><ext>` ([`Sink::put_spooled`]: an atomic rename for
//!    `file://`, an HTTP PUT with `Content-Length` over a keep-alive pool for http,
//!    retried with backoff on 5xx, 429 and connection errors).
//!
//! A coordinator writes `<hashpart>.narinfo` exactly as Nix does ([`narinfo_for`]) for a
//! path whose NAR is up and whose references all have their narinfo in the cache (or
//! had it before), so an interrupted push never leaves a path without its references.
//! A path whose reference failed is not attempted. Everything stops at the deadline.

pub mod fresh;
mod sink;

pub(crate) use sink::S3Sink;
pub use sink::{FileSink, HttpSink, Sink, SinkError};

use crate::compress::Settings;
use crate::keys::SecretKey;
use crate::narinfo::NarInfo;
use crate::nixcli::PathInfo;
use crate::storepath::StorePath;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A compressed NAR up to this size is kept in memory between compressing and
/// uploading; bigger ones go to a temporary file.
const MEMORY_SPOOL: usize = 4 * 1024 * 1024;

/// How the pipeline runs.
#[derive(Debug)]
pub struct Options {
    /// The NARs' compression (method and level; the narinfos name the method).
    pub compression: Settings,
    /// Parallel workers (at least 1).
    pub jobs: usize,
    /// Signs every narinfo, next to the signatures the store registered.
    pub secret_key: Option<SecretKey>,
    /// Where the store's files really are (`/nix/store`, or `DIR/nix/store` for a
    /// chroot store).
    pub real_store_dir: PathBuf,
    /// The logical store directory the paths are named in (`/nix/store`): the
    /// `StoreDir` of the `nix-cache-info` written for a new cache.
    pub store_dir: String,
    /// Nothing is started after this, and it bounds every request.
    pub deadline: Instant,
    /// Extra attempts after a transient failure (5xx, 429, connection errors).
    pub retries: u32,
}

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its NAR and its narinfo are in the cache.
    Pushed {
        /// Bytes of the compressed NAR.
        file_size: u64,
    },
    /// It has no narinfo in the cache (its NAR may be there), and why.
    Failed(String),
}

/// The result of [`upload`], per path in the order given.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Every path given (twice if listed twice) with what became of it.
    pub outcomes: Vec<(StorePath, Outcome)>,
    /// Whether `nix-cache-info` was written because the cache had none.
    pub wrote_cache_info: bool,
}

/// What a push says while it runs, for the caller to show (a bar on a terminal, plain
/// lines otherwise): the library prints nothing itself. Sent from the upload threads.
/// The pipeline ([`upload`]) sends [`Progress::Started`] and [`Progress::Done`];
/// `push::run` passes those on and adds the rest. A dry run sends only
/// [`Progress::Failed`] and [`Progress::Note`] (its list of paths is the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// The upload begins, with this many paths to go.
    Begin {
        /// Paths to upload (or to report as failed).
        total: usize,
    },
    /// The upload of a path began.
    Started {
        /// The store path.
        path: &'a str,
        /// Its NAR size in bytes.
        nar_size: u64,
    },
    /// A path is in the cache.
    Done {
        /// The store path.
        path: &'a str,
        /// Its NAR size in bytes.
        nar_size: u64,
    },
    /// A path failed; the full reason is in the push report's `failures`.
    Failed {
        /// The store path.
        path: &'a str,
        /// The reason's first line, credentials hidden.
        reason: &'a str,
    },
    /// Worth saying at once: a failed attempt and whether it is retried (credentials
    /// hidden).
    Note(&'a str),
    /// The upload is over.
    End,
}

/// The caller's [`Progress`] callback, as [`upload`] and `push::run` take it.
pub type OnProgress<'a> = &'a (dyn Fn(Progress<'_>) + Sync);

/// One path's NAR, compressed and on its way.
struct Packed {
    nar_hash: String,
    nar_size: u64,
    file_hash: String,
    file_size: u64,
}

fn expected_nar_hash(info: &PathInfo) -> Option<String> {
    info.nar_hash
        .as_deref()
        .and_then(crate::narinfo::nar_hash_nix32)
}

/// Writes the NAR of `info.path`, compressed, to the sink's `nar/` and returns its
/// hashes; refuses a path whose files no longer match the registered hash.
fn pack_and_put(info: &PathInfo, sink: &dyn Sink, opts: &Options) -> Result<Packed, String> {
    let base = info.path.base_name();
    let src = opts.real_store_dir.join(base);
    // zstd splits a big NAR over every core in little memory; multithreaded xz needs
    // ~130 MiB per thread at its default level, so xz stays on one thread (memory
    // bounded whatever the NAR's size).
    let threads = if info.nar_size > 32 * 1024 * 1024
        && opts.compression.method == crate::compress::Method::Zstd
    {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        1
    };
    let settings = opts.compression.with_threads(threads);
    let mut spool = sink.spool(info.nar_size).map_err(|e| e.to_string())?;
    let (nar_digest, nar_size, file_digest, file_size) = {
        let file_hasher = crate::nar::HashingWriter::new(&mut spool);
        let encoder =
            crate::compress::Encoder::new(file_hasher, settings).map_err(|e| e.to_string())?;
        // The deadline holds while a NAR is written and compressed too (a big one with xz
        // takes minutes): past it, the write fails and the spool is dropped.
        let timed = Timed {
            inner: encoder,
            deadline: opts.deadline,
        };
        let mut nar_hasher = crate::nar::HashingWriter::new(timed);
        crate::nar::dump(&src, &mut nar_hasher).map_err(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                "the time limit (--timeout) was reached while its NAR was compressed".to_owned()
            } else {
                format!("cannot read {}: {e}", src.display())
            }
        })?;
        nar_hasher.flush().map_err(|e| e.to_string())?;
        let (timed, nar_size, nar_digest) = nar_hasher.finish();
        let encoder = timed.inner;
        let file_hasher = encoder.finish().map_err(|e| e.to_string())?;
        let (_, file_size, file_digest) = file_hasher.finish();
        (nar_digest, nar_size, file_digest, file_size)
    };
    let nar_hash = crate::nar::sha256_nix32(&nar_digest);
    if let Some(want) = expected_nar_hash(info) {
        if want != nar_hash || info.nar_size != nar_size {
            return Err(format!(
                "the store path is corrupted: its files hash to {nar_hash} ({nar_size} bytes) but the store database registered {want} ({} bytes); nothing was uploaded. Repair it with `nix-store --verify --check-contents --repair`, or rebuild it",
                info.nar_size
            ));
        }
    }
    let file_hash = crate::nar::sha256_nix32(&file_digest);
    let rel = format!(
        "nar/{}{}",
        file_hash.trim_start_matches("sha256:"),
        opts.compression.method.extension()
    );
    sink.put_spooled(spool, &rel, "application/x-nix-nar", opts.deadline)
        .map_err(|e| e.to_string())?;
    Ok(Packed {
        nar_hash,
        nar_size,
        file_hash,
        file_size,
    })
}

/// A writer that fails (`TimedOut`) once the deadline has passed.
struct Timed<W> {
    inner: W,
    deadline: Instant,
}

impl<W: Write> Write for Timed<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if Instant::now() >= self.deadline {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the time limit (--timeout) was reached",
            ));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The narinfo Nix writes for `info` uploaded as `packed`: the registered signatures
/// kept, and ours added when there is a key.
fn narinfo_for(
    info: &PathInfo,
    nar_hash: &str,
    nar_size: u64,
    file_hash: &str,
    file_size: u64,
    opts: &Options,
) -> NarInfo {
    let mut refs: Vec<String> = info
        .references
        .iter()
        .map(|r| r.base_name().to_owned())
        .collect();
    refs.sort();
    refs.dedup();
    let mut n = NarInfo {
        store_path: info.path.to_string(),
        url: format!(
            "nar/{}{}",
            file_hash.trim_start_matches("sha256:"),
            opts.compression.method.extension()
        ),
        compression: opts.compression.method.narinfo_name().to_owned(),
        file_hash: Some(file_hash.to_owned()),
        file_size: Some(file_size),
        nar_hash: nar_hash.to_owned(),
        nar_size,
        references: refs,
        deriver: info.deriver.as_ref().map(|d| d.base_name().to_owned()),
        sigs: info.signatures.clone(),
        ca: info.ca.clone(),
        extra: Vec::new(),
    };
    if let Some(k) = &opts.secret_key {
        if let Ok(fp) = n.fingerprint() {
            let sig = k.sign(&fp);
            if !n.sigs.contains(&sig) {
                n.sigs.push(sig);
            }
        }
    }
    n
}

/// Uploads `paths` (every one described in `infos`) to `sink`. `present` are paths the
/// cache already holds (their narinfos count as written). `on_event` sees each path
/// start and land; failures are in the [`Results`].
pub fn upload(
    paths: &[StorePath],
    infos: &BTreeMap<StorePath, PathInfo>,
    present: &BTreeSet<StorePath>,
    sink: &dyn Sink,
    opts: &Options,
    on_event: OnProgress<'_>,
) -> Results {
    let wrote_cache_info = match sink.ensure_cache_info(&opts.store_dir, opts.deadline) {
        Ok(wrote) => wrote,
        Err(e) => {
            let why = format!("could not write nix-cache-info: {e}");
            return all_failed(paths, &why);
        }
    };
    let pipeline = Pipeline {
        infos,
        sink,
        opts,
        on_event,
    };
    let queue = Mutex::new(largest_first(paths, infos).into_iter());
    let (tx, rx) = mpsc::channel::<Packing>();
    let mut coordinator = Coordinator {
        pipeline,
        wanted: paths.iter().collect(),
        done: BTreeMap::new(),
        have: present.iter().cloned().collect(),
        failed: BTreeMap::new(),
        outcome: BTreeMap::new(),
    };
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1).min(paths.len().max(1)) {
            let tx = tx.clone();
            let queue = &queue;
            s.spawn(move || pipeline.pack_all(queue, &tx));
        }
        drop(tx);
        for (p, r) in rx {
            coordinator.arrived(p, r);
        }
        coordinator.finish();
    });
    let outcomes = paths
        .iter()
        .map(|p| {
            let o = coordinator
                .outcome
                .get(p)
                .cloned()
                .unwrap_or_else(|| Outcome::Failed("not attempted".to_owned()));
            (p.clone(), o)
        })
        .collect();
    Results {
        outcomes,
        wrote_cache_info,
    }
}

/// Every path failed for the same reason (nothing could start).
fn all_failed(paths: &[StorePath], why: &str) -> Results {
    let mut results = Results::default();
    for p in paths {
        results
            .outcomes
            .push((p.clone(), Outcome::Failed(why.to_owned())));
    }
    results
}

/// Each path once (the first time it is listed), largest NAR first.
fn largest_first<'p>(
    paths: &'p [StorePath],
    infos: &BTreeMap<StorePath, PathInfo>,
) -> Vec<&'p StorePath> {
    let mut seen = BTreeSet::new();
    let mut order: Vec<&StorePath> = paths.iter().filter(|p| seen.insert(*p)).collect();
    order.sort_by_key(|p| std::cmp::Reverse(infos.get(*p).map_or(0, |i| i.nar_size)));
    order
}

/// What a worker reports for a path: its NAR uploaded, or why not.
type Packing = (StorePath, Result<Packed, String>);

/// What the workers and the coordinator share.
#[derive(Clone, Copy)]
struct Pipeline<'a> {
    infos: &'a BTreeMap<StorePath, PathInfo>,
    sink: &'a dyn Sink,
    opts: &'a Options,
    on_event: OnProgress<'a>,
}

impl Pipeline<'_> {
    /// One worker: NARs of the paths it takes off the shared `queue`, until it is empty;
    /// past the deadline each path is only reported as not attempted.
    fn pack_all(self, queue: &Mutex<std::vec::IntoIter<&StorePath>>, tx: &mpsc::Sender<Packing>) {
        loop {
            let next = queue.lock().ok().and_then(|mut q| q.next());
            let Some(p) = next else { break };
            let Some(info) = self.infos.get(p) else {
                let _ = tx.send((p.clone(), Err("no path info".to_owned())));
                continue;
            };
            if Instant::now() >= self.opts.deadline {
                let _ = tx.send((
                    p.clone(),
                    Err("not attempted: the time limit (--timeout) was reached".to_owned()),
                ));
                continue;
            }
            (self.on_event)(Progress::Started {
                path: p,
                nar_size: info.nar_size,
            });
            let r = pack_and_put(info, self.sink, self.opts);
            let _ = tx.send((p.clone(), r));
        }
    }

    /// `p`'s references other than itself.
    fn refs_of(&self, p: &StorePath) -> Vec<StorePath> {
        self.infos
            .get(p)
            .map(|i| i.references.iter().filter(|r| *r != p).cloned().collect())
            .unwrap_or_default()
    }
}

/// The coordinator: narinfos in dependency order, as NARs complete.
struct Coordinator<'a> {
    pipeline: Pipeline<'a>,
    /// The paths asked for.
    wanted: BTreeSet<&'a StorePath>,
    /// NARs uploaded whose narinfo is not written yet.
    done: BTreeMap<StorePath, Packed>,
    /// Paths whose narinfo is in the cache.
    have: BTreeSet<StorePath>,
    failed: BTreeMap<StorePath, String>,
    outcome: BTreeMap<StorePath, Outcome>,
}

impl Coordinator<'_> {
    /// A worker's report on `p`; then every narinfo that can be written is.
    fn arrived(&mut self, p: StorePath, r: Result<Packed, String>) {
        match r {
            Ok(pk) => {
                self.done.insert(p, pk);
            }
            Err(e) => {
                self.failed.insert(p, e);
            }
        }
        self.settle();
    }

    /// Writes narinfos and fails blocked paths until neither changes anything.
    fn settle(&mut self) {
        loop {
            let wrote = self.write_ready();
            let blocked = self.fail_blocked();
            if !wrote && !blocked {
                break;
            }
        }
    }

    /// Writes the narinfo of every uploaded NAR whose references all have theirs; whether
    /// there was any.
    fn write_ready(&mut self) -> bool {
        let ready: Vec<StorePath> = self
            .done
            .keys()
            .filter(|p| {
                self.pipeline
                    .refs_of(p)
                    .iter()
                    .all(|r| self.have.contains(r))
            })
            .cloned()
            .collect();
        let mut progressed = false;
        for p in ready {
            let Some(pk) = self.done.remove(&p) else {
                continue;
            };
            let Some(info) = self.pipeline.infos.get(&p) else {
                continue;
            };
            self.write_narinfo(p, info, &pk);
            progressed = true;
        }
        progressed
    }

    fn write_narinfo(&mut self, p: StorePath, info: &PathInfo, pk: &Packed) {
        let Pipeline {
            sink,
            opts,
            on_event,
            ..
        } = self.pipeline;
        let n = narinfo_for(
            info,
            &pk.nar_hash,
            pk.nar_size,
            &pk.file_hash,
            pk.file_size,
            opts,
        );
        let r = sink.put_bytes(
            &n.file_name(),
            n.render().as_bytes(),
            "text/x-nix-narinfo",
            opts.deadline,
        );
        match r {
            Ok(()) => {
                on_event(Progress::Done {
                    path: &p,
                    nar_size: pk.nar_size,
                });
                self.outcome.insert(
                    p.clone(),
                    Outcome::Pushed {
                        file_size: pk.file_size,
                    },
                );
                self.have.insert(p);
            }
            Err(e) => {
                self.failed
                    .insert(p, format!("could not write its narinfo: {e}"));
            }
        }
    }

    /// Fails every uploaded path waiting for a reference that failed (or is not coming);
    /// whether there was any.
    fn fail_blocked(&mut self) -> bool {
        let blocked: Vec<(StorePath, StorePath)> = self
            .done
            .keys()
            .filter_map(|p| {
                self.pipeline
                    .refs_of(p)
                    .into_iter()
                    .find(|r| {
                        self.failed.contains_key(r)
                            || (!self.have.contains(r) && !self.wanted.contains(r))
                    })
                    .map(|r| (p.clone(), r))
            })
            .collect();
        let progressed = !blocked.is_empty();
        for (p, r) in blocked {
            self.done.remove(&p);
            let why = if self.failed.contains_key(&r) {
                format!(
                    "its reference {r} failed to upload, so its narinfo was not written (the cache would hold it without that reference)"
                )
            } else {
                format!("its narinfo was not written: its reference {r} is not in the cache")
            };
            self.failed.insert(p, why);
        }
        progressed
    }

    /// After the last worker: what is still waiting fails, and every failure is reported.
    fn finish(&mut self) {
        self.settle();
        for (p, _) in std::mem::take(&mut self.done) {
            self.failed.insert(
                p,
                "its NAR was uploaded but not its narinfo: a reference never made it".to_owned(),
            );
        }
        for (p, why) in std::mem::take(&mut self.failed) {
            self.outcome.insert(p, Outcome::Failed(why));
        }
    }
}

/// A deadline `limit` from now.
pub fn deadline_in(limit: Duration) -> Instant {
    Instant::now() + limit
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_nar_being_compressed_stops_at_the_deadline() {
        // The writer between the NAR and the compressor: fine before the deadline, an
        // error after it, so a long compression cannot outlive --timeout.
        let mut w = Timed {
            inner: Vec::new(),
            deadline: Instant::now() + Duration::from_secs(60),
        };
        w.write_all(b"before").unwrap();
        w.deadline = Instant::now();
        let e = w.write_all(b"after").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(w.inner, b"before");
    }
}
