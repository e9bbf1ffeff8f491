//! Where the pipeline's files go: a `file://` directory, an HTTP cache (PUT) or an S3
//! bucket (presigned PUTs, multipart for big NARs), behind
//! one trait, with the spool that holds a compressed NAR between compressing and
//! uploading (memory for small NARs, a temporary file for big ones).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a file could not be stored in the cache. 5xx and 429 answers and connection
/// errors are retried before they are returned.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The server did not accept the upload: an answer other than 2xx (a redirect too),
    /// or S3's error document in a 200.
    #[error("HTTP error {status} uploading {url}{}", .body.as_deref().map(|b| format!("; the server answered: {b}")).unwrap_or_default())]
    Status {
        /// The object's URL, credentials hidden.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The first line of the server's answer.
        body: Option<String>,
    },
    /// No complete answer: the connection failed, timed out, or the answer did not end.
    #[error("{url}: {reason}")]
    Transport {
        /// The object's URL, credentials hidden.
        url: String,
        /// What went wrong (never with a presigned URL in it).
        reason: String,
    },
    /// A local file could not be written or read: the spool, a file of a `file://`
    /// cache.
    #[error("{path}: {source}")]
    Io {
        /// The file, or the object whose spooled body could not be read.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The time limit (`--timeout`) was reached: the object, or the last error before it.
    #[error("{0}: the time limit (--timeout) was reached")]
    Deadline(String),
}

impl SinkError {
    fn transient(&self) -> bool {
        match self {
            SinkError::Status { status, .. } => *status >= 500 || *status == 429,
            SinkError::Transport { .. } => true,
            _ => false,
        }
    }
}

/// A compressed NAR on its way: in memory until it outgrows
/// [`super::MEMORY_SPOOL`], then in a temporary file.
#[derive(Debug)]
pub struct Spool {
    mem: Vec<u8>,
    file: Option<tempfile::NamedTempFile>,
    dir: PathBuf,
    len: u64,
}

impl Spool {
    fn new(dir: PathBuf, size_hint: u64) -> io::Result<Self> {
        let mut s = Spool {
            mem: Vec::new(),
            file: None,
            dir,
            len: 0,
        };
        if size_hint as usize > super::MEMORY_SPOOL {
            s.spill()?;
        }
        Ok(s)
    }

    fn spill(&mut self) -> io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix(".push-cache-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        f.write_all(&self.mem)?;
        self.mem = Vec::new();
        self.file = Some(f);
        Ok(())
    }
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.file.is_none() && self.mem.len() + buf.len() > super::MEMORY_SPOOL {
            self.spill()?;
        }
        let n = match &mut self.file {
            Some(f) => f.write(buf)?,
            None => {
                self.mem.extend_from_slice(buf);
                buf.len()
            }
        };
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

/// The HTTP client of the uploading sinks: a keep-alive pool for `jobs` workers,
/// per-request timeouts, and no redirects (ureq would follow a redirected PUT as a GET
/// and call that a success).
fn upload_agent(jobs: usize) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(60))
        .timeout_write(Duration::from_secs(60))
        .max_idle_connections_per_host(jobs.max(1) * 2)
        .redirects(0)
        .user_agent(concat!("push-cache/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A spool in the temporary directory (for sinks that are not a local directory).
fn temp_spool(size_hint: u64) -> Result<Spool, SinkError> {
    Spool::new(std::env::temp_dir(), size_hint).map_err(|e| SinkError::Io {
        path: std::env::temp_dir().display().to_string(),
        source: e,
    })
}

/// Writes `nix-cache-info` through `sink` unless the cache `has` one; whether it did.
fn put_cache_info(
    sink: &dyn Sink,
    has: bool,
    store_dir: &str,
    deadline: Instant,
) -> Result<bool, SinkError> {
    if has {
        return Ok(false);
    }
    sink.put_bytes(
        "nix-cache-info",
        cache_info_text(store_dir).as_bytes(),
        "text/x-nix-cache-info",
        deadline,
    )?;
    Ok(true)
}

/// Runs `once` (given the time left) until it succeeds or fails for good: a transient
/// failure is tried again, at most `retries` times, after 0.5 s, 1 s, 2 s ... (at most
/// `250 ms << max_doubling`), never past `deadline`; a failure within 100 ms of the
/// deadline counts as the time limit. `what` names the object when the time is up
/// before an attempt.
fn retrying<T>(
    what: &str,
    retries: u32,
    max_doubling: u32,
    deadline: Instant,
    mut once: impl FnMut(Duration) -> Result<T, SinkError>,
) -> Result<T, SinkError> {
    let mut attempt = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SinkError::Deadline(what.to_owned()));
        }
        let err = match once(left) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if Instant::now() + Duration::from_millis(100) >= deadline {
            return Err(SinkError::Deadline(err.to_string()));
        }
        if !err.transient() || attempt >= retries {
            return Err(err);
        }
        attempt += 1;
        let pause = Duration::from_millis(250 << attempt.min(max_doubling));
        if Instant::now() + pause >= deadline {
            return Err(err);
        }
        std::thread::sleep(pause);
    }
}

/// A binary cache the pipeline writes to.
pub trait Sink: Sync {
    /// The cache's URL, for messages.
    fn url(&self) -> &str;
    /// A spool for a NAR of about `size_hint` bytes.
    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError>;
    /// Stores the spooled bytes as `rel` (relative to the cache root).
    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError>;
    /// Stores `bytes` as `rel`.
    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError>;
    /// Writes `nix-cache-info` when the cache has none; whether it did.
    fn ensure_cache_info(&self, store_dir: &str, deadline: Instant) -> Result<bool, SinkError>;
}

fn cache_info_text(store_dir: &str) -> String {
    // What Nix writes when it creates a binary cache.
    format!("StoreDir: {store_dir}\n")
}

/// How old a spool file must be to count as left behind by an interrupted push.
const STALE_SPOOL_AGE: Duration = Duration::from_secs(3600);

/// A `file://` cache: files appear by rename, so a reader never sees half a file.
#[derive(Debug)]
pub struct FileSink {
    url: String,
    dir: PathBuf,
}

impl FileSink {
    /// The cache at `url`, whose directory is `dir`: its `nar/` is made, and spool files
    /// an interrupted push left there over an hour ago are removed.
    pub fn new(url: &str, dir: &Path) -> Result<Self, SinkError> {
        let io = |source| SinkError::Io {
            path: dir.join("nar").display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir.join("nar")).map_err(io)?;
        let sink = FileSink {
            url: url.to_owned(),
            dir: dir.to_owned(),
        };
        sink.remove_stale_spools(STALE_SPOOL_AGE);
        Ok(sink)
    }

    /// Removes `.push-cache-*.tmp` files older than `age` from the cache and its `nar/`:
    /// what an interrupted push (Ctrl-C, SIGKILL) left half-written. Younger ones may be
    /// another push's, under way, and are left alone. Returns how many went.
    fn remove_stale_spools(&self, age: Duration) -> usize {
        let mut n = 0;
        for d in [self.dir.clone(), self.dir.join("nar")] {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let old = e
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a >= age);
                if name.starts_with(".push-cache-")
                    && name.ends_with(".tmp")
                    && old
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    n += 1;
                }
            }
        }
        n
    }

    fn io(&self, rel: &str, source: io::Error) -> SinkError {
        SinkError::Io {
            path: self.dir.join(rel).display().to_string(),
            source,
        }
    }

    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let target = self.dir.join(rel);
        let parent = target.parent().unwrap_or(&self.dir);
        let mut f = tempfile::Builder::new()
            .prefix(".push-cache-")
            .suffix(".tmp")
            .tempfile_in(parent)
            .map_err(|e| self.io(rel, e))?;
        f.write_all(bytes).map_err(|e| self.io(rel, e))?;
        set_readable(f.as_file()).map_err(|e| self.io(rel, e))?;
        f.persist(&target).map_err(|e| self.io(rel, e.error))?;
        Ok(())
    }
}

/// `Err` once the deadline has passed: nothing is written after it.
fn past(deadline: Instant, what: &Path) -> Result<(), SinkError> {
    if Instant::now() >= deadline {
        return Err(SinkError::Deadline(what.display().to_string()));
    }
    Ok(())
}

/// Cache files are for everyone to read (a tempfile starts as 0600).
fn set_readable(f: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
}

impl Sink for FileSink {
    fn url(&self) -> &str {
        &self.url
    }

    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError> {
        Spool::new(self.dir.join("nar"), size_hint).map_err(|e| self.io("nar", e))
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        _content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        past(deadline, &self.dir.join(rel))?;
        match spool.file {
            Some(f) => {
                set_readable(f.as_file()).map_err(|e| self.io(rel, e))?;
                f.persist(self.dir.join(rel))
                    .map_err(|e| self.io(rel, e.error))?;
                Ok(())
            }
            None => self.write_new(rel, &spool.mem),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        _content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        past(deadline, &self.dir.join(rel))?;
        self.write_new(rel, bytes)
    }

    fn ensure_cache_info(&self, store_dir: &str, _deadline: Instant) -> Result<bool, SinkError> {
        if self.dir.join("nix-cache-info").exists() {
            return Ok(false);
        }
        self.write_new("nix-cache-info", cache_info_text(store_dir).as_bytes())?;
        Ok(true)
    }
}

/// An HTTP(S) cache that takes uploads by PUT (nginx WebDAV, most self-hosted caches).
#[derive(Debug)]
pub struct HttpSink {
    url: String,
    agent: ureq::Agent,
    retries: u32,
    has_cache_info: bool,
    headers: Vec<(String, String)>,
}

impl HttpSink {
    /// `has_cache_info`: whether the cache already has one (the caller asked).
    pub fn new(url: &str, jobs: usize, retries: u32, has_cache_info: bool) -> Self {
        let agent = upload_agent(jobs);
        HttpSink {
            url: url.trim_end_matches('/').to_owned(),
            agent,
            retries,
            has_cache_info,
            headers: Vec::new(),
        }
    }

    /// Sends this header with every upload (e.g. `Authorization` from the netrc).
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn put<'b>(
        &self,
        rel: &str,
        content_type: &str,
        len: u64,
        body: &mut dyn FnMut() -> io::Result<Box<dyn Read + 'b>>,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let url = format!("{}/{rel}", self.url);
        retrying(
            &crate::redact::url(&url),
            self.retries,
            4,
            deadline,
            |left| {
                let reader = body().map_err(|e| SinkError::Io {
                    path: url.clone(),
                    source: e,
                })?;
                let mut req = self
                    .agent
                    .put(&url)
                    .timeout(left)
                    .set("Content-Type", content_type)
                    .set("Content-Length", &len.to_string());
                for (k, v) in &self.headers {
                    req = req.set(k, v);
                }
                let r = req.send(reader);
                Err(match r {
                    // The answer must end too (within the time left): a server that never
                    // finishes answering has not confirmed the upload.
                    Ok(resp) if !(200..300).contains(&resp.status()) => SinkError::Status {
                        url: crate::redact::url(&url),
                        status: resp.status(),
                        body: Some(match resp.header("Location") {
                            Some(to) => format!(
                                "the cache redirected the upload to {}; use that URL",
                                crate::redact::url(to)
                            ),
                            None => "the upload was not accepted (not a 2xx answer)".to_owned(),
                        }),
                    },
                    Ok(resp) => {
                        let mut sinkhole = Vec::new();
                        match resp
                            .into_reader()
                            .take(64 * 1024)
                            .read_to_end(&mut sinkhole)
                        {
                            Ok(_) => return Ok(()),
                            Err(e) => SinkError::Transport {
                                url: crate::redact::url(&url),
                                reason: format!("the answer to the upload did not end: {e}"),
                            },
                        }
                    }
                    Err(ureq::Error::Status(status, resp)) => {
                        let mut first = String::new();
                        let _ = resp.into_reader().take(1024).read_to_string(&mut first);
                        let line = first.lines().find(|l| !l.trim().is_empty()).map(|l| {
                            let l = l.trim();
                            l.chars().take(200).collect::<String>()
                        });
                        SinkError::Status {
                            url: crate::redact::url(&url),
                            status,
                            body: line,
                        }
                    }
                    Err(ureq::Error::Transport(t)) => SinkError::Transport {
                        url: crate::redact::url(&url),
                        reason: t.to_string(),
                    },
                })
            },
        )
    }
}

impl Sink for HttpSink {
    fn url(&self) -> &str {
        &self.url
    }

    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError> {
        temp_spool(size_hint)
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let len = spool.len;
        match &spool.file {
            Some(f) => {
                let path = f.path().to_owned();
                self.put(
                    rel,
                    content_type,
                    len,
                    &mut || Ok(Box::new(std::fs::File::open(&path)?)),
                    deadline,
                )
            }
            None => self.put(
                rel,
                content_type,
                len,
                &mut || Ok(Box::new(&spool.mem[..])),
                deadline,
            ),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.put(
            rel,
            content_type,
            bytes.len() as u64,
            &mut || Ok(Box::new(bytes)),
            deadline,
        )
    }

    fn ensure_cache_info(&self, store_dir: &str, deadline: Instant) -> Result<bool, SinkError> {
        put_cache_info(self, self.has_cache_info, store_dir, deadline)
    }
}

/// What an S3 request sends.
enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of the file at `path` from `offset` on (a part of a spooled NAR).
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

impl Body<'_> {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Body::Empty => Box::new(io::empty()),
            Body::Bytes(b) => Box::new(*b),
            Body::File { path, offset, len } => {
                use std::io::Seek;
                let mut f = std::fs::File::open(path)?;
                f.seek(io::SeekFrom::Start(*offset))?;
                Box::new(f.take(*len))
            }
        })
    }
}

/// An S3 bucket (`s3://`, see [`crate::s3`]): objects PUT through presigned URLs; a NAR
/// bigger than one part goes up as a multipart upload of `part_size` parts, one part at
/// a time, aborted when it fails. 429 and 503 ("SlowDown") answers are retried with a
/// growing pause, as are other 5xx answers and connection errors.
#[derive(Debug)]
pub(crate) struct S3Sink {
    bucket: std::sync::Arc<crate::s3::S3Bucket>,
    agent: ureq::Agent,
    retries: u32,
    has_cache_info: bool,
    part_size: u64,
    journal: Option<crate::s3::Journal>,
}

/// The smallest part S3 takes (all but the last part of an upload).
const S3_MIN_PART: u64 = 5 * 1024 * 1024;

impl S3Sink {
    pub(crate) fn new(
        bucket: std::sync::Arc<crate::s3::S3Bucket>,
        jobs: usize,
        retries: u32,
        has_cache_info: bool,
        part_size: u64,
    ) -> Self {
        let agent = upload_agent(jobs);
        S3Sink {
            bucket,
            agent,
            retries,
            has_cache_info,
            part_size: part_size.max(S3_MIN_PART),
            journal: None,
        }
    }

    /// Records the multipart uploads it starts there (see [`crate::s3::Journal`]).
    pub(crate) fn with_journal(mut self, journal: Option<crate::s3::Journal>) -> Self {
        self.journal = journal;
        self
    }

    /// Aborts the multipart uploads to this bucket that pushes from this machine began
    /// and could not finish (killed); how many. One that S3 no longer knows is forgotten.
    pub(crate) fn abort_abandoned(&self, deadline: Instant) -> usize {
        let Some(journal) = &self.journal else {
            return 0;
        };
        let mut aborted = 0;
        for p in journal.abandoned(&self.bucket) {
            match self.call(
                &p.key,
                "DELETE",
                &|| self.bucket.abort_multipart(&p.key, &p.upload_id),
                None,
                &Body::Empty,
                deadline,
            ) {
                Ok(_) => {
                    aborted += 1;
                    journal.forget(&p);
                }
                Err(SinkError::Status { status: 404, .. }) => journal.forget(&p),
                Err(_) => {}
            }
        }
        aborted
    }

    /// One request, retried while the answer is transient; the ETag header and the
    /// (capped) body of a 2xx answer. `sign` makes a fresh presigned URL per attempt.
    fn call(
        &self,
        key: &str,
        method: &str,
        sign: &dyn Fn() -> String,
        content_type: Option<&str>,
        body: &Body<'_>,
        deadline: Instant,
    ) -> Result<(Option<String>, String), SinkError> {
        let shown = self.bucket.shown(key);
        retrying(&shown, self.retries, 5, deadline, |left| {
            let reader = body.reader().map_err(|e| SinkError::Io {
                path: shown.clone(),
                source: e,
            })?;
            let mut req = self
                .agent
                .request(method, &sign())
                .timeout(left)
                .set("Content-Length", &body.len().to_string());
            if let Some(t) = content_type {
                req = req.set("Content-Type", t);
            }
            let read_body = |resp: ureq::Response| {
                let mut text = String::new();
                let r = resp.into_reader().take(64 * 1024).read_to_string(&mut text);
                r.map(|_| text)
            };
            Err(match req.send(reader) {
                Ok(resp) if (200..300).contains(&resp.status()) => {
                    let etag = resp.header("ETag").map(str::to_owned);
                    match read_body(resp) {
                        // CompleteMultipartUpload can fail with a 200 and an error document.
                        Ok(text) if text.contains("<Error>") => SinkError::Status {
                            url: shown.clone(),
                            status: 200,
                            body: crate::s3::error_summary(&text),
                        },
                        Ok(text) => return Ok((etag, text)),
                        Err(e) => SinkError::Transport {
                            url: shown.clone(),
                            reason: format!("the answer did not end: {e}"),
                        },
                    }
                }
                Ok(resp) => SinkError::Status {
                    url: shown.clone(),
                    status: resp.status(),
                    body: Some(
                        "the bucket answered with a redirect; check region= and endpoint="
                            .to_owned(),
                    ),
                },
                Err(ureq::Error::Status(status, resp)) => SinkError::Status {
                    url: shown.clone(),
                    status,
                    body: read_body(resp)
                        .ok()
                        .and_then(|t| crate::s3::error_summary(&t)),
                },
                Err(ureq::Error::Transport(t)) => SinkError::Transport {
                    url: shown.clone(),
                    // Never ureq's Display: it starts with the presigned URL.
                    reason: crate::binarycache::transport_reason(&t),
                },
            })
        })
    }

    fn put_object(
        &self,
        key: &str,
        body: &Body<'_>,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.call(
            key,
            "PUT",
            &|| self.bucket.put(key),
            Some(content_type),
            body,
            deadline,
        )
        .map(drop)
    }

    /// A multipart upload of the file at `path` (`len` bytes), aborted when a step fails.
    fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        let (_, answer) = self.call(
            key,
            "POST",
            &|| self.bucket.create_multipart(key),
            Some(content_type),
            &Body::Empty,
            deadline,
        )?;
        let upload_id = crate::s3::upload_id(&answer).ok_or_else(|| SinkError::Transport {
            url: self.bucket.shown(key),
            reason: "the answer to CreateMultipartUpload has no UploadId".to_owned(),
        })?;
        let parts = || -> Result<(), SinkError> {
            let mut etags = Vec::new();
            let mut offset = 0;
            let mut number: u16 = 1;
            while offset < len {
                let part = self.part_size.min(len - offset);
                let body = Body::File {
                    path,
                    offset,
                    len: part,
                };
                let (etag, _) = self.call(
                    key,
                    "PUT",
                    &|| self.bucket.upload_part(key, number, &upload_id),
                    None,
                    &body,
                    deadline,
                )?;
                etags.push(etag.ok_or_else(|| SinkError::Transport {
                    url: self.bucket.shown(key),
                    reason: format!("the answer to part {number} has no ETag"),
                })?);
                offset += part;
                number = number.checked_add(1).ok_or_else(|| SinkError::Transport {
                    url: self.bucket.shown(key),
                    reason: "more than 65535 parts: raise ?multipart-chunk-size=".to_owned(),
                })?;
            }
            let (url, xml) = self.bucket.complete_multipart(key, &upload_id, &etags);
            self.call(
                key,
                "POST",
                &|| url.clone(),
                Some("application/xml"),
                &Body::Bytes(xml.as_bytes()),
                deadline,
            )
            .map(drop)
        };
        let entry = self
            .journal
            .as_ref()
            .and_then(|j| j.begin(&self.bucket, key, &upload_id));
        let result = parts();
        let finished = result.is_ok()
            || self
                // With a little time of its own: parts left behind cost storage.
                .call(
                    key,
                    "DELETE",
                    &|| self.bucket.abort_multipart(key, &upload_id),
                    None,
                    &Body::Empty,
                    Instant::now() + Duration::from_secs(10),
                )
                .is_ok();
        // An upload that could not be aborted stays in the journal for the next push.
        if finished {
            if let Some(j) = &self.journal {
                j.done(entry);
            }
        }
        result
    }
}

impl Sink for S3Sink {
    fn url(&self) -> &str {
        self.bucket.url()
    }

    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError> {
        temp_spool(size_hint)
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        match &spool.file {
            Some(f) if spool.len > self.part_size => {
                self.put_multipart(rel, f.path(), spool.len, content_type, deadline)
            }
            Some(f) => self.put_object(
                rel,
                &Body::File {
                    path: f.path(),
                    offset: 0,
                    len: spool.len,
                },
                content_type,
                deadline,
            ),
            None => self.put_object(rel, &Body::Bytes(&spool.mem), content_type, deadline),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        self.put_object(rel, &Body::Bytes(bytes), content_type, deadline)
    }

    fn ensure_cache_info(&self, store_dir: &str, deadline: Instant) -> Result<bool, SinkError> {
        put_cache_info(self, self.has_cache_info, store_dir, deadline)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spools_an_interrupted_push_left_are_removed_when_old() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::new("file:///x", d.path()).unwrap();
        std::fs::write(d.path().join("nar/.push-cache-AbCd12.tmp"), "half").unwrap();
        std::fs::write(d.path().join("nar/keep.nar.zst"), "a NAR").unwrap();
        // Young: maybe another push's, under way.
        assert_eq!(sink.remove_stale_spools(STALE_SPOOL_AGE), 0);
        assert_eq!(sink.remove_stale_spools(Duration::ZERO), 1);
        let left: Vec<_> = std::fs::read_dir(d.path().join("nar"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["keep.nar.zst"]);
    }
}
