//! Uploads through other programs: `nix copy` (store URIs push-cache has no pipeline
//! for, and `--via nix`), `cachix push` and `attic push`, with retries, time limits and
//! a reason for every failed path.

use super::*;

/// Pauses between retries of a failed upload.
pub(super) const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// The path in Nix's `copying path '/nix/store/...' to '...'...` progress line.
pub(super) fn copying_path(line: &str) -> Option<&str> {
    let rest = line.trim_start().strip_prefix("copying path '")?;
    rest.split('\'').next()
}

/// How many `nix copy` processes run at once: Nix compresses on about one core per
/// process, so independent paths go faster spread over the machine's cores.
pub(super) fn upload_processes(uri: &str) -> usize {
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
pub(super) fn stages(
    to_push: &[StorePath],
    references: &dyn Fn(&StorePath) -> Vec<StorePath>,
    procs: usize,
) -> Vec<Vec<Vec<StorePath>>> {
    // A `nix` process costs ~25 ms to start and open both stores; compressing a path
    // (xz, the default) ~3 ms even when it is small: from ~16 paths a second process
    // pays for itself on an idle core.
    const MIN_PER_PROCESS: usize = 16;
    let mut level: BTreeMap<&StorePath, usize> = BTreeMap::new();
    let mut levels: Vec<Vec<StorePath>> = Vec::new();
    for p in to_push {
        let l = references(p)
            .iter()
            .filter(|r| *r != p)
            .filter_map(|r| level.get(r))
            .map(|l| l + 1)
            .max()
            .unwrap_or(0);
        level.insert(p, l);
        if levels.len() <= l {
            levels.resize(l + 1, Vec::new());
        }
        levels[l].push(p.clone());
    }
    let mut out: Vec<Vec<Vec<StorePath>>> = Vec::new();
    let mut serial: Vec<StorePath> = Vec::new();
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
        out.push(lv.chunks(per).map(<[StorePath]>::to_vec).collect());
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
pub(super) fn with_references(
    paths: &[StorePath],
    nodes: &BTreeMap<StorePath, PathInfo>,
) -> Vec<StorePath> {
    let own: BTreeSet<&StorePath> = paths.iter().collect();
    let refs: BTreeSet<&StorePath> = paths
        .iter()
        .filter_map(|p| nodes.get(p))
        .flat_map(|i| i.references.iter())
        .filter(|r| !own.contains(r))
        .collect();
    paths.iter().chain(refs).cloned().collect()
}

/// One push through `nix copy`: what it needs, for [`Upload::run`].
pub(super) struct Upload<'a> {
    pub(super) nix: &'a Nix,
    pub(super) uri: &'a str,
    pub(super) nodes: &'a BTreeMap<StorePath, PathInfo>,
    pub(super) cache: Option<&'a BinaryCache>,
    pub(super) progress: &'a Reporter<'a>,
    pub(super) deadline: &'a Deadline,
}

impl Upload<'_> {
    fn size_of(&self, p: &str) -> u64 {
        self.nodes.get(p).map(|i| i.nar_size).unwrap_or(0)
    }

    /// `nix copy` of `paths` (with their references as hints), within the time left.
    fn copy(&self, paths: &[StorePath], on_line: &mut dyn FnMut(&str)) -> Result<(), CmdError> {
        let cmd = backend::nix_copy(
            self.nix,
            self.uri,
            &with_references(paths, self.nodes),
            &attempt::nix_options(self.deadline),
        );
        attempt::run(self.nix.runner(), cmd, self.deadline, on_line).map(|_| ())
    }

    /// Which of `paths` the cache now proves to hold (none when it cannot be asked).
    fn present(&self, paths: &[StorePath]) -> BTreeSet<StorePath> {
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
                .zip(paths)
                .filter(|(s, _)| s.is_present())
                .map(|(_, p)| p.clone())
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    fn pushed(&self, p: &StorePath, tally: &mut Tally<'_>) {
        self.progress.done(p, self.size_of(p));
        tally.report.pushed.push(p.clone());
    }

    fn fail(&self, p: StorePath, why: String, tally: &mut Tally<'_>) {
        self.progress.failed(&p, &why);
        tally.failed.insert(p, why);
    }

    /// Uploads `to_push` (references first). `failed` starts with the paths known to be
    /// impossible; their dependents are not attempted. Every failure gets its reason.
    pub(super) fn run(
        &self,
        to_push: &[StorePath],
        failed: BTreeMap<StorePath, String>,
        report: &mut Report,
    ) -> Result<(), PushError> {
        let nodes = self.nodes;
        let refs = |p: &StorePath| {
            nodes
                .get(p)
                .map(|i| i.references.clone())
                .unwrap_or_default()
        };
        let mut tally = Tally { failed, report };
        for stage in stages(to_push, &refs, upload_processes(self.uri)) {
            let chunks = self.ready_chunks(stage, &mut tally);
            let results = self.copy_chunks(&chunks);
            let retry = self.record_chunks(&chunks, results, &mut tally)?;
            let retry = self.retry_together(retry, &mut tally);
            self.retry_each(retry, &mut tally);
        }
        let Tally { failed, report, .. } = tally;
        for (p, e) in failed {
            report.failed.push(p.clone());
            report.failures.push(Failure { path: p, reason: e });
        }
        Ok(())
    }

    /// The chunks of a stage without the paths that cannot go: those whose reference
    /// failed earlier (the cache would hold them without that reference), and all once
    /// the deadline has passed.
    fn ready_chunks(
        &self,
        stage: Vec<Vec<StorePath>>,
        tally: &mut Tally<'_>,
    ) -> Vec<Vec<StorePath>> {
        let mut chunks: Vec<Vec<StorePath>> = Vec::new();
        for chunk in stage {
            let mut ready = Vec::new();
            for p in chunk {
                if let Some(r) = failed_reference(&p, self.nodes, &tally.failed) {
                    let why = format!("not attempted: its reference {r} failed to upload");
                    self.fail(p, why, tally);
                } else if self.deadline.expired() {
                    self.fail(p, self.deadline.expired_reason(), tally);
                } else {
                    ready.push(p);
                }
            }
            if !ready.is_empty() {
                chunks.push(ready);
            }
        }
        chunks
    }

    /// One `nix copy` per chunk, all at the same time (Nix uploads references first, in
    /// parallel): how each ended (the paths Nix announces go to progress as it runs).
    fn copy_chunks(&self, chunks: &[Vec<StorePath>]) -> Vec<Result<(), CmdError>> {
        let nodes = self.nodes;
        std::thread::scope(|s| {
            let handles: Vec<_> = chunks
                .iter()
                .map(|chunk| {
                    s.spawn(move || {
                        let mut seen = BTreeSet::new();
                        self.copy(chunk, &mut |line| {
                            if let Some(p) = copying_path(line) {
                                if nodes.contains_key(p) && seen.insert(p.to_owned()) {
                                    self.progress.started(p, self.size_of(p));
                                }
                            }
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CmdError::Failed {
                            cmdline: "nix copy".to_owned(),
                            status: "upload thread panicked".to_owned(),
                            stderr: String::new(),
                            stdout: String::new(),
                        })
                    })
                })
                .collect()
        })
    }

    /// What the chunks' `nix copy` runs did: their paths pushed, or, after a failure,
    /// kept when the cache holds them and else to be retried (or failed when another
    /// attempt cannot help). Returns the paths to retry; an unusable Nix is an error.
    fn record_chunks(
        &self,
        chunks: &[Vec<StorePath>],
        results: Vec<Result<(), CmdError>>,
        tally: &mut Tally<'_>,
    ) -> Result<Vec<StorePath>, PushError> {
        let mut retry: Vec<StorePath> = Vec::new();
        for (chunk, result) in chunks.iter().zip(results) {
            match result {
                Ok(()) => {
                    for p in chunk {
                        self.pushed(p, tally);
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
                            self.pushed(p, tally);
                        } else if again {
                            retry.push(p.clone());
                        } else {
                            self.fail(p.clone(), why.clone(), tally);
                        }
                    }
                }
            }
        }
        Ok(retry)
    }

    /// The whole remainder once more, after a pause: a transient failure then costs one
    /// more `nix copy`, not one per path. Returns what is still missing.
    fn retry_together(&self, retry: Vec<StorePath>, tally: &mut Tally<'_>) -> Vec<StorePath> {
        if retry.is_empty() {
            return retry;
        }
        self.deadline.sleep(RETRY_DELAYS[0]);
        let again = self.copy(&retry, &mut |_| {});
        let present: BTreeSet<StorePath> = match &again {
            Ok(()) => retry.iter().cloned().collect(),
            Err(_) => self.present(&retry),
        };
        let give_up = match &again {
            Err(e) if !attempt::retryable(e) => Some(attempt::reason(e)),
            _ => None,
        };
        let mut rest = Vec::new();
        for p in retry {
            if present.contains(&p) {
                self.pushed(&p, tally);
            } else if let Some(why) = &give_up {
                self.fail(p, why.clone(), tally);
            } else {
                rest.push(p);
            }
        }
        rest
    }

    /// What is still missing, one path at a time in dependency order: at once, then after
    /// each remaining pause — while there is time.
    fn retry_each(&self, retry: Vec<StorePath>, tally: &mut Tally<'_>) {
        for p in retry {
            if let Some(r) = failed_reference(&p, self.nodes, &tally.failed) {
                let why = format!("not attempted: its reference {r} failed to upload");
                self.fail(p, why, tally);
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
                self.pushed(&p, tally);
            } else {
                self.fail(p, last_err, tally);
            }
        }
    }
}

/// What a push through `nix copy` has found out so far.
struct Tally<'r> {
    /// Paths that failed or cannot go, with the reason.
    failed: BTreeMap<StorePath, String>,
    report: &'r mut Report,
}

pub(super) fn failed_reference<'a>(
    p: &StorePath,
    nodes: &'a BTreeMap<StorePath, PathInfo>,
    failed: &BTreeMap<StorePath, String>,
) -> Option<&'a StorePath> {
    nodes.get(p).and_then(|i| {
        i.references
            .iter()
            .find(|r| *r != p && failed.contains_key(*r))
    })
}

/// `cachix push` / `attic push`: one command for the whole set, retried with backoff
/// (both tools skip what the cache already holds, so a retry only sends what is left),
/// within the deadline; a program killed by a signal is not run again.
pub(super) fn upload_with_tool(
    runner: &Runner,
    cmd: &crate::cmd::Cmd,
    to_push: &[StorePath],
    nodes: &BTreeMap<StorePath, PathInfo>,
    progress: &Reporter<'_>,
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
                progress.done(p, size_of(p));
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
