//! Where the pipeline's files go: a `file://` directory, an HTTP cache (PUT) or an S3
//! bucket (presigned PUTs, multipart for big NARs), behind
//! one trait, with the spool that holds a compressed NAR between compressing and
//! uploading (memory for small NARs, a temporary file for big ones).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod file;
mod http;
mod s3;

pub use file::FileSink;
pub use http::HttpSink;
pub(crate) use s3::S3Sink;

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
    /// A spool for a NAR of about `size_hint` bytes: in memory, or a temporary file
    /// for a big one (a `file://` cache spools in its own directory, to rename it).
    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError> {
        temp_spool(size_hint)
    }
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
