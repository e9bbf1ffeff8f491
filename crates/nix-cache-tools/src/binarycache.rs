//! A small client for a Nix binary cache, by URL: `file:///dir` (read from disk) or
//! `http(s)://host[/prefix]` (through `ureq`, with timeouts). Used by `push-cache` to skip
//! what a cache already holds and by `cache-analytics` for cache-coverage reports.
//!
//! What it does:
//! - [`BinaryCache::cache_info`]: reads `nix-cache-info` (`StoreDir`, `WantMassQuery`,
//!   `Priority`); `Ok(None)` when the cache has none (e.g. an empty directory that
//!   `nix copy` has not initialised yet). One that exists but is not one — not text,
//!   no `StoreDir` line, more than [`MAX_CACHE_INFO`] bytes — is
//!   [`CacheError::NotABinaryCache`].
//! - [`BinaryCache::query`]: "which of these store paths does the cache have", in
//!   parallel on a bounded number of worker threads ([`QueryOptions::jobs`], at most
//!   [`MAX_JOBS`]), each request with its own timeout. Presence is proven: a path is
//!   [`Presence::Present`] only when its narinfo was read (`GET`, at most
//!   [`MAX_NARINFO`] bytes), parses, and names exactly that store path. A narinfo that
//!   is garbage, truncated, too big or for another path is [`Presence::Absent`] (the
//!   path is not usable from the cache; [`BinaryCache::query_detailed`] says why);
//!   404, 403 or 410 (as Nix reads them; for `file://` a missing file) too. Anything
//!   else is [`Presence::Error`] with a message — never a panic, and one bad path does
//!   not stop the others. Results come back in input order.
//!
//! Every read is bounded in size (a body past its cap is refused after reading at most
//! cap + 1 bytes, or at once when `Content-Length` says so) and in time (the client's
//! timeout covers the whole request, so a server that trickles its answer is cut off).
//! Error messages never show credentials of the URL ([`crate::redact`]).
//!
//! Store URL parameters (`?secret-key=...`, `?compression=...`, `?priority=...`) are Nix
//! store settings, not part of the HTTP address: they are stripped. Other schemes
//! (`ssh-ng://`, ...) are not handled here: [`BinaryCache::with_timeout`] returns
//! [`CacheError::Unsupported`] and callers fall back to Nix; `s3://` is asked through
//! presigned requests ([`crate::s3`]).

use crate::narinfo::{NarInfo, narinfo_file_name};
use crate::redact;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Redirects followed for one request (curl's default for Nix is more; five is plenty for
/// a CDN or an object store in front of a cache).
const MAX_REDIRECTS: usize = 5;

/// The most a `nix-cache-info` may hold: a real one is three short lines.
pub(crate) const MAX_CACHE_INFO: u64 = 64 * 1024;
/// The most a `.narinfo` may hold: a real one is well under 10 KiB, even with
/// thousands of references.
pub(crate) const MAX_NARINFO: u64 = 1024 * 1024;
/// The most worker threads a query uses (each holds at most one narinfo in memory).
pub(crate) const MAX_JOBS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    #[error(
        "`{0}` is not a cache this client can read: use file:///path, http(s)://host or s3://bucket (other store URIs go through `nix`)"
    )]
    Unsupported(String),
    #[error("`{path}` is not a store path (no 32-character hash part)")]
    NotAStorePath { path: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    /// An S3 bucket refused to let its `nix-cache-info` be read (403): wrong or missing
    /// credentials, not a missing cache.
    #[error(
        "{url}: the bucket refused the request ({reason}); check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile= in the URI"
    )]
    S3Refused { url: String, reason: String },
    #[error(
        "{url}: the answer is larger than {} KiB, far more than such a file ever holds; it was not read",
        .cap / 1024
    )]
    TooBig { url: String, cap: u64 },
    #[error(
        "{url} is not a binary cache: {reason} (a binary cache's nix-cache-info is a few lines of text such as `StoreDir: /nix/store`); check the URL"
    )]
    NotABinaryCache { url: String, reason: String },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
}

/// `std::stoi` as Nix applies it to `Priority`: an optional sign and digits at the start
/// (what follows them is ignored), within an `int`.
fn stoi(v: &str) -> Option<i32> {
    let v = v.trim_start();
    let sign = usize::from(v.starts_with(['-', '+']));
    let digits = v[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    v[..sign + digits].parse().ok()
}

/// The contents of `nix-cache-info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub(crate) struct CacheInfo {
    pub store_dir: Option<String>,
    pub want_mass_query: Option<bool>,
    /// `Priority:` as Nix reads it (a C++ `int`: negative allowed).
    pub priority: Option<i32>,
}

impl CacheInfo {
    /// Reads the file as a binary cache serves it: it must be text and name its
    /// `StoreDir` (an absolute path). `Err` says what is wrong.
    pub(crate) fn parse_strict(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "its nix-cache-info is not text (not UTF-8)".to_owned())?;
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err("its nix-cache-info is not text (control characters)".to_owned());
        }
        let info = Self::parse(text);
        // Nix reads `Priority` with `std::stoi` and refuses the whole cache when that
        // fails (no number, or one past an `int`).
        if let Some(v) = text.lines().find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim() == "Priority")
                .map(|(_, v)| v.trim())
        }) && stoi(v).is_none()
        {
            return Err(format!(
                "its nix-cache-info has `Priority: {}`, which Nix cannot read as a number (Nix refuses the cache)",
                crate::output::untrusted(v, 40)
            ));
        }
        match &info.store_dir {
            None => Err("its nix-cache-info has no `StoreDir:` line".to_owned()),
            Some(d) if !d.starts_with('/') => Err(format!(
                "the StoreDir of its nix-cache-info is `{}`, not an absolute path",
                d.chars().take(80).collect::<String>()
            )),
            Some(_) => Ok(info),
        }
    }

    /// Lenient: every `Key: value` line Nix reads; anything else is skipped.
    pub(crate) fn parse(text: &str) -> Self {
        let mut info = CacheInfo::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "StoreDir" => info.store_dir = Some(v.to_owned()),
                "WantMassQuery" => info.want_mass_query = Some(v == "1" || v == "true"),
                "Priority" => info.priority = stoi(v),
                _ => {}
            }
        }
        info
    }
}

#[derive(Debug, Clone)]
pub(crate) struct QueryOptions {
    /// Worker threads (at least 1, at most [`MAX_JOBS`]).
    pub jobs: usize,
    /// Extra attempts after a transport error or a 5xx answer.
    pub retries: u32,
    /// When set, no request runs past this moment (each gets at most the time left);
    /// paths not asked by then are [`Presence::Error`].
    pub deadline: Option<std::time::Instant>,
    /// When set, a cache whose first this many answers are all errors (down, refusing,
    /// slowing down) is not asked the rest: those are [`Found::Error`] at once.
    pub give_up_after: Option<usize>,
    /// Whether a good narinfo's NAR must be in the cache too, else [`Found::NarMissing`]:
    /// a `stat` of each for `file://`; over HTTP and S3 a `HEAD` for a sample, then for
    /// all once one is missing ([`BinaryCache::query_detailed`]). On by default; a NAR
    /// named by an absolute URL (another host) is not asked.
    pub check_nar: bool,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            jobs: 16,
            retries: 1,
            deadline: None,
            give_up_after: None,
            check_nar: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub(crate) enum Presence {
    Present {
        /// `NarSize` of the narinfo.
        nar_size: Option<u64>,
        file_size: Option<u64>,
    },
    Absent,
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct PathStatus {
    pub path: String,
    pub presence: Presence,
}

impl PathStatus {
    pub(crate) fn is_present(&self) -> bool {
        matches!(self.presence, Presence::Present { .. })
    }
}

/// What [`BinaryCache::query_detailed`] found for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// The narinfo was read, parses and names this path.
    Present {
        nar_size: u64,
        file_size: Option<u64>,
        /// Its `URL`: where its NAR is.
        nar_url: String,
        /// Its `NarHash` as `sha256:<nix32>` (`None` when it is no sha256 Nix reads).
        nar_hash: Option<String>,
        /// What a signature check needs: its `Sig` lines, the fingerprint they cover
        /// (`None` when its `NarHash` is not one Nix can sign) and whether it has a `CA`.
        signing: Box<Signing>,
    },
    /// No narinfo (404, 403, 410; a missing file).
    Absent,
    /// A narinfo is there but proves nothing: why (garbage, truncated, too big, another
    /// path's). [`BinaryCache::query`] counts it as absent.
    Invalid(String),
    /// The narinfo is good but the NAR it names is not in the cache: Nix would find the
    /// path, then fail to download it. Why, naming the NAR. Counted as absent.
    NarMissing(String),
    /// The cache could not be asked (transport error, 5xx, timeout).
    Error(String),
}

/// The parts of a narinfo its signatures are checked with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Signing {
    /// `Sig` lines, `NAME:BASE64`.
    pub sigs: Vec<String>,
    /// What the signatures cover ([`NarInfo::fingerprint`]).
    pub fingerprint: Option<String>,
    /// The narinfo has a `CA` line: a content-addressed path, which Nix accepts without a
    /// signature when its address checks.
    pub content_addressed: bool,
}

impl Found {
    pub(crate) fn presence(self) -> Presence {
        match self {
            Found::Present {
                nar_size,
                file_size,
                ..
            } => Presence::Present {
                nar_size: Some(nar_size),
                file_size,
            },
            Found::Absent | Found::Invalid(_) | Found::NarMissing(_) => Presence::Absent,
            Found::Error(e) => Presence::Error(e),
        }
    }
}

#[derive(Debug, Clone)]
enum Base {
    File(PathBuf),
    Http(String),
    /// Requests are presigned for the bucket (anonymous without credentials).
    S3(std::sync::Arc<crate::s3::S3Bucket>),
}

/// A binary cache reachable by this process.
#[derive(Debug, Clone)]
pub(crate) struct BinaryCache {
    url: String,
    base: Base,
    agent: ureq::Agent,
    /// The time limit of each request.
    timeout: Duration,
}

/// The part of a store URL before `?` (Nix store parameters are not HTTP queries).
pub(crate) fn strip_store_params(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// True for URLs [`BinaryCache::with_timeout`] accepts.
pub(crate) fn is_supported(url: &str) -> bool {
    let u = strip_store_params(url);
    u.starts_with("file://")
        || u.starts_with("http://")
        || u.starts_with("https://")
        || u.starts_with("s3://")
}

impl BinaryCache {
    /// A client for `url`, with a 10 s connect and 30 s per-request timeout.
    #[cfg(test)]
    pub(crate) fn new(url: &str) -> Result<Self, CacheError> {
        Self::with_timeout(url, Duration::from_secs(30))
    }

    /// A client whose every request gives up after `timeout`.
    pub(crate) fn with_timeout(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let clean = strip_store_params(url).trim_end_matches('/');
        let base = if let Some(p) = clean.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(CacheError::Unsupported(redact::url(url)));
            }
            Base::File(PathBuf::from(p))
        } else if clean.starts_with("http://") || clean.starts_with("https://") {
            Base::Http(clean.to_owned())
        } else if clean.starts_with("s3://") {
            // The whole URI: its parameters say where the bucket is and how to sign.
            let bucket = crate::s3::S3Bucket::open(url).map_err(|e| CacheError::Io {
                url: redact::url(clean),
                source: std::io::Error::other(e.to_string()),
            })?;
            Base::S3(std::sync::Arc::new(bucket))
        } else {
            return Err(CacheError::Unsupported(redact::url(url)));
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            // Keep a connection per worker thread alive (ureq keeps one by default).
            .max_idle_connections_per_host(64)
            .user_agent(concat!("nix-cache-tools/", env!("CARGO_PKG_VERSION")))
            // Followed by `call`, which goes only to http(s) locations (ureq 2 panics on
            // a redirect to `file:` and other schemes).
            .redirects(0)
            .build();
        Ok(BinaryCache {
            url: clean.to_owned(),
            base,
            agent,
            timeout,
        })
    }

    #[cfg(test)]
    /// The cache URL without store parameters or trailing slash.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The bucket, with the credentials read when the client was made, for `s3://`
    /// caches: the upload signs with the very credentials the queries used.
    pub(crate) fn s3_bucket(&self) -> Option<std::sync::Arc<crate::s3::S3Bucket>> {
        match &self.base {
            Base::S3(b) => Some(std::sync::Arc::clone(b)),
            _ => None,
        }
    }

    /// The cache's directory, for `file://` caches.
    pub(crate) fn local_dir(&self) -> Option<&std::path::Path> {
        match &self.base {
            Base::File(p) => Some(p),
            Base::Http(_) | Base::S3(_) => None,
        }
    }

    /// The cache URL as it may be shown: credentials hidden.
    pub(crate) fn display_url(&self) -> String {
        redact::url(&self.url)
    }

    /// Where a GET of `rel` goes (for S3 a presigned URL, never shown).
    fn location(&self, rel: &str) -> String {
        match &self.base {
            Base::File(p) => p.join(rel).display().to_string(),
            Base::Http(u) => format!("{u}/{rel}"),
            Base::S3(b) => b.get(rel),
        }
    }

    /// Where `rel` is, as it may be shown in a message.
    fn shown(&self, rel: &str) -> String {
        match &self.base {
            Base::S3(b) => b.shown(rel),
            _ => redact::url(&self.location(rel)),
        }
    }

    /// Reads a file of the cache of at most `cap` bytes; `Ok(None)` when it is not
    /// there. A bigger one is [`CacheError::TooBig`], refused when its `Content-Length`
    /// (or its size on disk) says so, else after at most `cap + 1` bytes.
    pub(crate) fn get_file_capped(
        &self,
        rel: &str,
        cap: u64,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        self.get_until(rel, cap, None)
    }

    /// [`BinaryCache::get_file_capped`], over HTTP ending at `until` at the latest.
    fn get_until(
        &self,
        rel: &str,
        cap: u64,
        until: Option<std::time::Instant>,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        match &self.base {
            Base::File(p) => {
                let path = p.join(rel);
                match std::fs::metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Ok(m) if m.is_file() && m.len() > cap => {
                        return Err(CacheError::TooBig {
                            url: self.shown(rel),
                            cap,
                        });
                    }
                    _ => {}
                }
                // Never through a link: anyone who may write the cache directory could
                // point a narinfo at a file of this user's (a netrc, a key).
                match crate::fsutil::read_regular(&path, cap, crate::fsutil::Follow::NoSymlinks) {
                    Ok(Some(f)) => Ok(Some(f.bytes)),
                    Ok(None) => Ok(None),
                    Err(e) => Err(CacheError::Io {
                        url: self.shown(rel),
                        source: std::io::Error::other(e.to_string()),
                    }),
                }
            }
            Base::Http(_) | Base::S3(_) => {
                let loc = self.location(rel);
                match self.call("GET", &loc, rel, until)? {
                    Ok(resp) => {
                        let too_big = CacheError::TooBig {
                            url: self.shown(rel),
                            cap,
                        };
                        if resp
                            .header("Content-Length")
                            .and_then(|l| l.trim().parse::<u64>().ok())
                            .is_some_and(|l| l > cap)
                        {
                            return Err(too_big);
                        }
                        let mut buf = Vec::new();
                        resp.into_reader()
                            .take(cap + 1)
                            .read_to_end(&mut buf)
                            .map_err(|e| CacheError::Io {
                                url: self.shown(rel),
                                source: e,
                            })?;
                        if buf.len() as u64 > cap {
                            return Err(too_big);
                        }
                        Ok(Some(buf))
                    }
                    // S3 answers 403 for a missing key to whoever may not list the
                    // bucket, so a narinfo's 403 is "absent"; but nix-cache-info is what
                    // tells a bucket that refuses these credentials from an empty one.
                    Err(ureq::Error::Status(403, resp))
                        if rel == "nix-cache-info" && matches!(self.base, Base::S3(_)) =>
                    {
                        let mut text = String::new();
                        let _ = resp.into_reader().take(4096).read_to_string(&mut text);
                        Err(CacheError::S3Refused {
                            url: self.shown(rel),
                            reason: match crate::s3::error_summary(&text) {
                                Some(why) => format!("403 {why}"),
                                None => "HTTP 403".to_owned(),
                            },
                        })
                    }
                    Err(ureq::Error::Status(code, _)) if is_absent_status(code) => Ok(None),
                    Err(e) => Err(http_error(self.shown(rel), e)),
                }
            }
        }
    }

    /// `method` (`GET`, `HEAD`) of `loc`, within `until`, following redirects as curl
    /// does for Nix — at most [`MAX_REDIRECTS`], and only to `http(s)` locations: a
    /// redirect elsewhere (`file:`, `ftp:`) is an error, never followed. `rel` names the
    /// file in messages. The inner result is ureq's (status errors included).
    fn call(
        &self,
        method: &str,
        loc: &str,
        rel: &str,
        until: Option<std::time::Instant>,
    ) -> Result<Result<ureq::Response, ureq::Error>, CacheError> {
        let mut loc = loc.to_owned();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.agent.request(method, &loc);
            if let Some(until) = until {
                let left = until.saturating_duration_since(std::time::Instant::now());
                req = req.timeout(left.min(self.timeout).max(Duration::from_millis(1)));
            }
            let resp = match req.call() {
                Ok(r) if (300..400).contains(&r.status()) => r,
                other => return Ok(other),
            };
            let bad = |why: String| CacheError::Transport {
                url: self.shown(rel),
                reason: why,
            };
            let Some(next) = resp.header("Location") else {
                return Err(bad(format!(
                    "HTTP {} without a Location to go to",
                    resp.status()
                )));
            };
            let next = ::url::Url::parse(&loc)
                .and_then(|base| base.join(next))
                .map_err(|_| bad("redirected to a location that is no URL".to_owned()))?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "redirected to {}, which is not http(s): not followed",
                    crate::output::untrusted(&redact::url(next.as_str()), 120)
                )));
            }
            loc = next.into();
        }
        Err(CacheError::Transport {
            url: self.shown(rel),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Why the NAR a good narinfo names (its `URL`) is not in the cache, or `None` when it
    /// is (or cannot be asked: an absolute URL, another host's; a server that does not
    /// answer `HEAD`).
    fn nar_missing(
        &self,
        url: &str,
        until: Option<std::time::Instant>,
    ) -> Result<Option<String>, CacheError> {
        if url.contains("://") {
            return Ok(None);
        }
        // What Nix writes is `nar/<nix32>.nar[.xz|.zst|...]`; anything outside the
        // cache, or with characters no file name of a cache has, is never asked for.
        let plain = |c: char| c.is_ascii_alphanumeric() || "._+-=".contains(c);
        if url.starts_with('/')
            || url
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
            || !url.chars().all(|c| c == '/' || plain(c))
        {
            return Ok(Some(format!(
                "its URL `{}` is no file of the cache",
                crate::output::untrusted(url, 120)
            )));
        }
        let missing = || {
            Some(format!(
                "its narinfo is there but not its NAR, {}: Nix would fail to download it",
                self.shown(url)
            ))
        };
        match &self.base {
            Base::File(dir) => match std::fs::symlink_metadata(dir.join(url)) {
                Ok(m) if m.is_file() => Ok(None),
                Ok(m) => Ok(Some(format!(
                    "its NAR {} is {}, not a regular file",
                    self.shown(url),
                    crate::fsutil::describe_type(m.file_type())
                ))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(missing()),
                Err(e) => Err(CacheError::Io {
                    url: self.shown(url),
                    source: e,
                }),
            },
            Base::Http(_) | Base::S3(_) => {
                let loc = match &self.base {
                    Base::S3(b) => b.head(url),
                    _ => self.location(url),
                };
                match self.call("HEAD", &loc, url, until)? {
                    Ok(_) => Ok(None),
                    Err(ureq::Error::Status(code, _)) if is_absent_status(code) => Ok(missing()),
                    // A server that does not do HEAD: not asked, as Nix never asks.
                    Err(ureq::Error::Status(405 | 501, _)) => Ok(None),
                    Err(e) => Err(http_error(self.shown(url), e)),
                }
            }
        }
    }

    /// `nix-cache-info`, or `None` when the cache has none. One that is there but is
    /// not one (not text, no `StoreDir`, larger than [`MAX_CACHE_INFO`]) is
    /// [`CacheError::NotABinaryCache`].
    pub(crate) fn cache_info(&self) -> Result<Option<CacheInfo>, CacheError> {
        let not_one = |reason: String| CacheError::NotABinaryCache {
            url: self.display_url(),
            reason,
        };
        let bytes = match self.get_file_capped("nix-cache-info", MAX_CACHE_INFO) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(CacheError::TooBig { cap, .. }) => {
                return Err(not_one(format!(
                    "its nix-cache-info is larger than {} KiB",
                    cap / 1024
                )));
            }
            Err(e) => return Err(e),
        };
        CacheInfo::parse_strict(&bytes).map(Some).map_err(not_one)
    }

    /// One path: read its narinfo and check it names the path.
    fn check_one(
        &self,
        path: &str,
        until: Option<std::time::Instant>,
        check_nar: bool,
    ) -> Result<Found, CacheError> {
        let name = narinfo_file_name(path).ok_or_else(|| CacheError::NotAStorePath {
            path: path.to_owned(),
        })?;
        if let Base::File(dir) = &self.base {
            // A FIFO, device, directory or symbolic link in place of a narinfo is no
            // narinfo (and is never opened, nor followed).
            if let Ok(m) = std::fs::symlink_metadata(dir.join(&name)) {
                if !m.is_file() {
                    return Ok(Found::Invalid(format!(
                        "{} is {}, not a regular file",
                        self.shown(&name),
                        crate::fsutil::describe_type(m.file_type())
                    )));
                }
            }
        }
        let bytes = match self.get_until(&name, MAX_NARINFO, until) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Found::Absent),
            Err(e @ CacheError::TooBig { .. }) => return Ok(Found::Invalid(e.to_string())),
            Err(e) => return Err(e),
        };
        let url = self.shown(&name);
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return Ok(Found::Invalid(format!("{url}: not text (not UTF-8)")));
        };
        let info = match NarInfo::parse(text) {
            Ok(i) => i,
            Err(e) => return Ok(Found::Invalid(format!("{url}: {e}"))),
        };
        let same = if path.starts_with('/') {
            info.store_path == path
        } else {
            info.store_path.rsplit('/').next() == Some(path)
        };
        if !same {
            return Ok(Found::Invalid(format!(
                "{url}: it is the narinfo of {}, not of {path}",
                info.store_path
            )));
        }
        if check_nar && let Some(why) = self.nar_missing(&info.url, until)? {
            return Ok(Found::NarMissing(why));
        }
        Ok(Found::Present {
            nar_size: info.nar_size,
            file_size: info.file_size,
            nar_url: info.url.clone(),
            nar_hash: crate::narinfo::nar_hash_nix32(&info.nar_hash),
            signing: Box::new(Signing {
                fingerprint: info.fingerprint().ok(),
                content_addressed: info.ca.is_some(),
                sigs: info.sigs,
            }),
        })
    }

    fn query_one(&self, path: &str, opts: &QueryOptions, check_nar: bool) -> Found {
        /// Attempts after a "slow down" (1, 2, 4, 8 s apart, within the deadline).
        const SLOW_DOWN_RETRIES: u32 = 4;
        let mut attempt = 0;
        loop {
            if opts
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d)
            {
                return Found::Error("not asked: the time limit was reached".to_owned());
            }
            match self.check_one(path, opts.deadline, check_nar) {
                Ok(f) => return f,
                Err(e) => {
                    // 429 and 503 are "slow down" (S3's SlowDown, a rate-limiting
                    // proxy): asked again after a pause that doubles each time; other
                    // 5xx and transport errors after a short one.
                    let status = match &e {
                        CacheError::Status { status, .. } => Some(*status),
                        _ => None,
                    };
                    let slow_down = matches!(status, Some(429 | 503));
                    let transient = matches!(&e, CacheError::Transport { .. })
                        || slow_down
                        || status.is_some_and(|s| s >= 500);
                    // A throttled cache is asked a few more times than a failing one.
                    let limit = if slow_down {
                        opts.retries.max(SLOW_DOWN_RETRIES)
                    } else {
                        opts.retries
                    };
                    if transient && attempt < limit {
                        attempt += 1;
                        let pause = if slow_down {
                            Duration::from_millis(500 << attempt.min(4))
                        } else {
                            Duration::from_millis(200 * u64::from(attempt))
                        };
                        let pause = opts.deadline.map_or(pause, |d| {
                            pause.min(d.saturating_duration_since(std::time::Instant::now()))
                        });
                        std::thread::sleep(pause);
                        continue;
                    }
                    return Found::Error(e.to_string());
                }
            }
        }
    }

    /// Asks the cache for each path's narinfo, in parallel on at most `opts.jobs`
    /// threads (at most [`MAX_JOBS`]). Results are in the order of `paths`. A path is
    /// present only when its narinfo parses and names it (see [`Found`]).
    pub(crate) fn query<S: AsRef<str> + Sync>(
        &self,
        paths: &[S],
        opts: &QueryOptions,
    ) -> Vec<PathStatus> {
        self.query_detailed(paths, opts)
            .into_iter()
            .zip(paths)
            .map(|(f, path)| PathStatus {
                path: path.as_ref().to_owned(),
                presence: f.presence(),
            })
            .collect()
    }

    /// [`BinaryCache::query`], saying why a narinfo that is there does not count.
    ///
    /// NARs ([`QueryOptions::check_nar`]): every one for `file://` (a `stat`); over HTTP
    /// and S3, where each is a request more, an even sample of [`NAR_SAMPLE`] first — a
    /// cache that lost NARs (a lifecycle rule, a half-synced mirror) loses many — and all
    /// of them once the sample finds one missing.
    pub(crate) fn query_detailed<S: AsRef<str> + Sync>(
        &self,
        paths: &[S],
        opts: &QueryOptions,
    ) -> Vec<Found> {
        let jobs = opts.jobs.clamp(1, MAX_JOBS).min(paths.len().max(1));
        let every = matches!(self.base, Base::File(_));
        let stride = if every {
            1
        } else {
            (paths.len() / NAR_SAMPLE).max(1)
        };
        let sampled = |i: usize| opts.check_nar && i % stride == 0;
        // Answers so far that were errors, and whether any was not.
        let (errors, answered) = (
            AtomicUsize::new(0),
            std::sync::atomic::AtomicBool::new(false),
        );
        let mut results = in_parallel(paths.len(), jobs, |i| {
            let failing = opts.give_up_after.is_some_and(|n| {
                !answered.load(Ordering::Relaxed) && errors.load(Ordering::Relaxed) >= n
            });
            if failing {
                return Found::Error(format!(
                    "not asked: the cache's first {} answers were all errors",
                    errors.load(Ordering::Relaxed)
                ));
            }
            let f = self.query_one(paths[i].as_ref(), opts, sampled(i));
            if matches!(f, Found::Error(_)) {
                errors.fetch_add(1, Ordering::Relaxed);
            } else {
                answered.store(true, Ordering::Relaxed);
            }
            f
        })
        .into_iter()
        .map(|f| f.unwrap_or_else(|| Found::Error("query thread failed".to_owned())))
        .collect::<Vec<Found>>();
        if stride > 1 && results.iter().any(|f| matches!(f, Found::NarMissing(_))) {
            let rest: Vec<usize> = (0..results.len())
                .filter(|&i| !sampled(i) && matches!(results[i], Found::Present { .. }))
                .collect();
            let checked = in_parallel(rest.len(), jobs, |k| match &results[rest[k]] {
                Found::Present { nar_url, .. } => match self.nar_missing(nar_url, opts.deadline) {
                    Ok(None) => None,
                    Ok(Some(why)) => Some(Found::NarMissing(why)),
                    Err(e) => Some(Found::Error(e.to_string())),
                },
                _ => None,
            });
            for (k, f) in checked.into_iter().enumerate() {
                if let Some(Some(f)) = f {
                    results[rest[k]] = f;
                }
            }
        }
        results
    }
}

/// How many NARs [`BinaryCache::query_detailed`] asks about over HTTP and S3 before it
/// has found one missing.
pub(crate) const NAR_SAMPLE: usize = 64;

/// `f(0..n)` on at most `jobs` threads, results in order (`None` where a thread died).
fn in_parallel<T: Send + Clone>(
    n: usize,
    jobs: usize,
    f: impl Fn(usize) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = vec![None; n];
    let slots = std::sync::Mutex::new(&mut results);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    if let Ok(mut slots) = slots.lock() {
                        slots[i] = Some(r);
                    }
                }
            });
        }
    });
    results
}

fn is_absent_status(code: u16) -> bool {
    matches!(code, 404 | 403 | 410)
}

fn http_error(url: String, e: ureq::Error) -> CacheError {
    match e {
        ureq::Error::Status(status, _) => CacheError::Status { url, status },
        ureq::Error::Transport(t) => CacheError::Transport {
            url,
            reason: transport_reason(&t),
        },
    }
}

/// What went wrong, without the URL: ureq's `Display` starts with it, and
/// [`CacheError::Transport`] already names it.
pub(crate) fn transport_reason(t: &ureq::Transport) -> String {
    redact::urls_in(&transport_text(t))
}

fn transport_text(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HELLO: &str = "StorePath: /nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10\nURL: nar/x.nar.xz\nCompression: xz\nNarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\nNarSize: 206104\nReferences: \n";

    #[test]
    fn cache_info_parses() {
        assert_eq!(
            CacheInfo::parse_strict(b"StoreDir: /nix/store\nPriority: -5\n")
                .unwrap()
                .priority,
            Some(-5)
        );
        assert_eq!(CacheInfo::parse("Priority: 30abc").priority, Some(30));
        for bad in ["Priority: 99999999999999999999", "Priority: high"] {
            let e = CacheInfo::parse_strict(format!("StoreDir: /nix/store\n{bad}\n").as_bytes())
                .unwrap_err();
            assert!(e.contains("Nix refuses"), "{e}");
        }
        let i = CacheInfo::parse("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
        assert_eq!(i.store_dir.as_deref(), Some("/nix/store"));
        assert_eq!(i.want_mass_query, Some(true));
        assert_eq!(i.priority, Some(40));
    }

    #[test]
    fn urls() {
        assert!(matches!(
            BinaryCache::new("ssh-ng://builder"),
            Err(CacheError::Unsupported(_))
        ));
        let c = BinaryCache::new("s3://team-cache?region=eu-west-1&profile=ci").unwrap();
        assert_eq!(c.url(), "s3://team-cache");
        assert_eq!(c.local_dir(), None);
        let c = BinaryCache::new("file:///tmp/c?secret-key=/k&compression=zstd").unwrap();
        assert_eq!(c.url(), "file:///tmp/c");
        assert_eq!(c.local_dir(), Some(std::path::Path::new("/tmp/c")));
        let c = BinaryCache::new("https://cache.example.org/prefix/?priority=10").unwrap();
        assert_eq!(c.url(), "https://cache.example.org/prefix");
        assert!(is_supported("http://127.0.0.1:1234"));
        assert!(!is_supported("ssh-ng://host"));
    }

    #[test]
    fn file_cache_query_reports_each_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
        std::fs::write(
            dir.path().join("xcp9cav49dmsjbwdjlmkjxj10gkpx553.narinfo"),
            HELLO,
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("nar")).unwrap();
        std::fs::write(dir.path().join("nar/x.nar.xz"), "").unwrap();
        std::fs::write(
            dir.path().join("00000000000000000000000000000000.narinfo"),
            "garbage",
        )
        .unwrap();
        let c = BinaryCache::new(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(
            c.cache_info().unwrap().unwrap().store_dir.as_deref(),
            Some("/nix/store")
        );
        let paths: Vec<String> = [
            "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
            "/nix/store/11111111111111111111111111111111-absent",
            "/nix/store/00000000000000000000000000000000-broken",
            "not-a-store-path",
        ]
        .map(str::to_owned)
        .to_vec();
        let r = c.query(
            &paths,
            &QueryOptions {
                jobs: 3,
                ..QueryOptions::default()
            },
        );
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].presence,
            Presence::Present {
                nar_size: Some(206104),
                file_size: None
            }
        );
        assert_eq!(r[1].presence, Presence::Absent);
        // Garbage proves nothing: absent (so a push replaces it), and why.
        assert_eq!(r[2].presence, Presence::Absent);
        let d = c.query_detailed(&paths[2..3], &QueryOptions::default());
        assert!(
            matches!(&d[0], Found::Invalid(e) if e.contains("00000000000000000000000000000000.narinfo") && e.contains("not `Key: value`")),
            "{d:?}"
        );
        assert!(matches!(&r[3].presence, Presence::Error(_)));
        assert_eq!(r.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), paths);
        assert!(c.query::<&str>(&[], &QueryOptions::default()).is_empty());
        // The default probe proves presence the same way: a garbage narinfo is no proof.
        let head = c.query(&paths[..3], &QueryOptions::default());
        assert_eq!(head[0].presence, r[0].presence);
        assert_eq!(head[1].presence, Presence::Absent);
        assert_eq!(head[2].presence, Presence::Absent);
    }

    /// An HTTP server on 127.0.0.1, one request per connection: the `n`th request (from
    /// 0) for `path` gets `reply(n, path)`, without the body for a HEAD.
    fn answering(reply: fn(usize, &str) -> (u16, &'static str)) -> String {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for (n, s) in l.incoming().enumerate() {
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                let (code, body) = reply(n, &path);
                let body = if method == "HEAD" { "" } else { body };
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        url
    }

    /// A tiny HTTP server: `/<hash>.narinfo` answers by the first character of the hash
    /// (`x` 200 with HELLO, `1` 404, `2` 403, `5` 500); `/nar/...` 200 (HELLO's NAR).
    fn tiny_server() -> String {
        answering(|_, path| match path.chars().nth(1) {
            _ if path.starts_with("/nar/") => (200, ""),
            Some('x') => (200, HELLO),
            Some('1') => (404, ""),
            Some('2') => (403, ""),
            _ => (500, ""),
        })
    }

    #[test]
    fn http_query_head_and_get() {
        let c = BinaryCache::new(&tiny_server()).unwrap();
        let paths: Vec<String> = [
            "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
            "/nix/store/11111111111111111111111111111111-absent",
            "/nix/store/22222222222222222222222222222222-forbidden",
            "/nix/store/55555555555555555555555555555555-broken",
        ]
        .map(str::to_owned)
        .to_vec();
        let head = c.query(
            &paths,
            &QueryOptions {
                retries: 0,
                ..QueryOptions::default()
            },
        );
        assert_eq!(
            head[0].presence,
            Presence::Present {
                nar_size: Some(206104),
                file_size: None
            }
        );
        assert_eq!(head[1].presence, Presence::Absent);
        assert_eq!(head[2].presence, Presence::Absent);
        assert!(
            matches!(&head[3].presence, Presence::Error(e) if e.contains("500")),
            "{head:?}"
        );
        let get = c.query(
            &paths,
            &QueryOptions {
                retries: 1,
                jobs: 2,
                ..QueryOptions::default()
            },
        );
        assert_eq!(
            get[0].presence,
            Presence::Present {
                nar_size: Some(206104),
                file_size: None
            }
        );
        assert_eq!(get[1].presence, Presence::Absent);
        assert!(matches!(&get[3].presence, Presence::Error(_)));
        assert_eq!(
            c.cache_info().unwrap_err().to_string(),
            format!("{}/nix-cache-info: HTTP 500", c.url())
        );
    }

    /// A cache that says "slow down" (429, then 503) to the first requests is asked again
    /// after a pause: the path is found, not an error.
    #[test]
    fn slow_down_answers_are_retried_after_a_pause() {
        let url = answering(|n, _| match n {
            0 => (429, ""),
            1 => (503, ""),
            _ => (200, HELLO),
        });
        let c = BinaryCache::with_timeout(&url, Duration::from_secs(5)).unwrap();
        let paths = ["/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10"];
        let started = std::time::Instant::now();
        let d = c.query_detailed(&paths, &QueryOptions::default());
        assert!(matches!(&d[0], Found::Present { .. }), "{d:?}");
        // Two pauses, 1 s then 2 s: it did wait, as a throttled server asks.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn http_errors_are_per_path_not_panics() {
        // A port nothing listens on: every path reports a transport error, quickly.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let c =
            BinaryCache::with_timeout(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2))
                .unwrap();
        let paths = vec!["/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10".to_owned(); 3];
        let r = c.query(
            &paths,
            &QueryOptions {
                retries: 0,
                ..QueryOptions::default()
            },
        );
        assert!(
            r.iter().all(|s| matches!(s.presence, Presence::Error(_))),
            "{r:?}"
        );
        // The URL is named once (ureq's own message starts with it too).
        let e = c.cache_info().unwrap_err().to_string();
        let url = format!("http://127.0.0.1:{port}/nix-cache-info");
        assert!(e.starts_with(&format!("{url}: Connection Failed")), "{e}");
        assert_eq!(e.matches(&url).count(), 1, "{e}");
    }

    /// How the hostile test server answers a GET.
    enum Reply {
        Body(&'static str),
        /// 200 with `Content-Length` of 5 GB, then bytes as fast as the client reads.
        Huge,
        /// 200, chunked, no length, endless.
        Endless,
        /// 200 with `StoreDir: /nix/store\n` repeated, one byte every 200 ms, for ever.
        Trickle,
        /// That status, no body.
        Status(u16),
        /// 302 to that location.
        Redirect(&'static str),
    }

    /// A server on 127.0.0.1 answering every request with `reply(path)`; it counts the
    /// bytes it managed to send, so a test can check the client stopped reading.
    fn hostile_server(
        reply: fn(&str) -> Reply,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent2 = sent.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let sent = sent2.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = r.read_line(&mut line);
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let chunk = vec![b'x'; 64 * 1024];
                    // Bounded: at most 8 GiB or 10 minutes, whichever first.
                    let until = std::time::Instant::now() + Duration::from_secs(600);
                    let mut send = |b: &[u8]| -> bool {
                        let ok = s.write_all(b).is_ok();
                        if ok {
                            sent.fetch_add(b.len() as u64, Ordering::SeqCst);
                        }
                        ok && std::time::Instant::now() < until
                            && sent.load(Ordering::SeqCst) < 8 << 30
                    };
                    match reply(&path) {
                        Reply::Redirect(to) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                        }
                        Reply::Status(code) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                        }
                        Reply::Body(b) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
                                b.len()
                            );
                        }
                        Reply::Huge => {
                            if send(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n") {
                                while send(&chunk) {}
                            }
                        }
                        Reply::Endless => {
                            if send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") {
                                let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
                                c.extend_from_slice(&chunk);
                                c.extend_from_slice(b"\r\n");
                                while send(&c) {}
                            }
                        }
                        Reply::Trickle => {
                            if send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n") {
                                for b in b"StoreDir: /nix/store\n".iter().cycle() {
                                    std::thread::sleep(Duration::from_millis(200));
                                    if !send(&[*b]) {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                });
            }
        });
        (url, sent)
    }

    /// A good narinfo proves presence only with its NAR there: `HEAD` over HTTP, a file
    /// for `file://`. A server without `HEAD` and a NAR on another host are not asked; a
    /// URL outside the cache is never asked.
    #[test]
    fn a_narinfo_without_its_nar_is_no_proof() {
        fn narinfo(hash: &str, url: &str) -> String {
            format!(
                "StorePath: /nix/store/{hash}-p\nURL: {url}\nCompression: none\nNarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\nNarSize: 8\nReferences: \n"
            )
        }
        const CASES: [(&str, &str); 6] = [
            ("11111111111111111111111111111111", "nar/here.nar"),
            ("22222222222222222222222222222222", "nar/gone.nar"),
            ("33333333333333333333333333333333", "nar/nohead.nar"),
            ("44444444444444444444444444444444", "../../etc/passwd"),
            (
                "55555555555555555555555555555555",
                "http://elsewhere.example/n.nar",
            ),
            ("66666666666666666666666666666666", "nar/\u{1b}[2J.nar"),
        ];
        let (url, _) = hostile_server(|p| {
            for (hash, nar) in CASES {
                if p == format!("/{hash}.narinfo") {
                    return Reply::Body(narinfo(hash, nar).leak());
                }
            }
            match p {
                "/nar/here.nar" => Reply::Body("12345678"),
                "/nar/nohead.nar" => Reply::Status(405),
                _ => Reply::Status(404),
            }
        });
        let paths: Vec<String> = CASES
            .iter()
            .map(|(h, _)| format!("/nix/store/{h}-p"))
            .collect();
        let c = BinaryCache::new(&url).unwrap();
        let d = c.query_detailed(&paths, &QueryOptions::default());
        assert!(matches!(d[0], Found::Present { .. }), "{d:?}");
        assert!(
            matches!(&d[1], Found::NarMissing(e) if e.contains("/nar/gone.nar") && e.contains("not its NAR")),
            "{d:?}"
        );
        assert!(matches!(d[2], Found::Present { .. }), "{d:?}");
        assert!(
            matches!(&d[3], Found::NarMissing(e) if e.contains("no file of the cache")),
            "{d:?}"
        );
        assert!(matches!(d[4], Found::Present { .. }), "{d:?}");
        assert!(
            matches!(&d[5], Found::NarMissing(e) if !e.contains('\u{1b}')),
            "{d:?}"
        );
        assert_eq!(
            c.query(&paths, &QueryOptions::default())[1].presence,
            Presence::Absent
        );
        // Not asked when the caller says so.
        let unchecked = c.query_detailed(
            &paths[1..2],
            &QueryOptions {
                check_nar: false,
                ..QueryOptions::default()
            },
        );
        assert!(
            matches!(unchecked[0], Found::Present { .. }),
            "{unchecked:?}"
        );

        // file://: the NAR must be a regular file, never followed through a link.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nar")).unwrap();
        std::fs::write(dir.path().join("nar/here.nar"), "12345678").unwrap();
        std::os::unix::fs::symlink("here.nar", dir.path().join("nar/link.nar")).unwrap();
        for (hash, nar) in [
            ("11111111111111111111111111111111", "nar/here.nar"),
            ("22222222222222222222222222222222", "nar/gone.nar"),
            ("33333333333333333333333333333333", "nar/link.nar"),
        ] {
            std::fs::write(
                dir.path().join(format!("{hash}.narinfo")),
                narinfo(hash, nar),
            )
            .unwrap();
        }
        let c = BinaryCache::new(&format!("file://{}", dir.path().display())).unwrap();
        let d = c.query_detailed(&paths[..3], &QueryOptions::default());
        assert!(matches!(d[0], Found::Present { .. }), "{d:?}");
        assert!(
            matches!(&d[1], Found::NarMissing(e) if e.contains("gone.nar")),
            "{d:?}"
        );
        assert!(
            matches!(&d[2], Found::NarMissing(e) if e.contains("symbolic link")),
            "{d:?}"
        );
    }

    /// Over HTTP a sample of NARs is asked first; once one is missing, all are.
    #[test]
    fn a_missing_nar_in_the_sample_makes_every_nar_asked() {
        let (url, _) = hostile_server(|p| {
            if let Some(hash) = p.strip_prefix('/').and_then(|r| r.strip_suffix(".narinfo")) {
                return Reply::Body(
                    format!(
                        "StorePath: /nix/store/{hash}-p\nURL: nar/{hash}.nar\nCompression: none\nNarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\nNarSize: 8\nReferences: \n"
                    )
                    .leak(),
                );
            }
            // One NAR in ten is gone.
            if p.ends_with("7.nar") {
                Reply::Status(404)
            } else {
                Reply::Body("12345678")
            }
        });
        let paths: Vec<String> = (0..200).map(|i| format!("/nix/store/{i:0>32}-p")).collect();
        let c = BinaryCache::new(&url).unwrap();
        let d = c.query_detailed(&paths, &QueryOptions::default());
        let missing: Vec<usize> = (0..200)
            .filter(|&i| matches!(d[i], Found::NarMissing(_)))
            .collect();
        assert_eq!(
            missing,
            (0..200).filter(|i| i % 10 == 7).collect::<Vec<_>>()
        );
        assert!(
            d.iter()
                .enumerate()
                .all(|(i, f)| i % 10 == 7 || matches!(f, Found::Present { .. }))
        );
    }

    /// Redirects are followed to http(s) only: one to `file:` (which made ureq panic) or
    /// another scheme is an error naming it, for nix-cache-info, narinfos and NARs.
    #[test]
    fn redirects_go_to_http_only() {
        let (url, _) = hostile_server(|p| match p {
            "/nix-cache-info" => Reply::Redirect("/real/nix-cache-info"),
            "/real/nix-cache-info" => Reply::Body("StoreDir: /nix/store\n"),
            "/xcp9cav49dmsjbwdjlmkjxj10gkpx553.narinfo" => Reply::Redirect("file:///etc/passwd"),
            "/11111111111111111111111111111111.narinfo" => Reply::Redirect("ftp://x.example/n"),
            "/22222222222222222222222222222222.narinfo" => Reply::Redirect("/loop"),
            "/loop" => Reply::Redirect("/loop"),
            _ => Reply::Status(404),
        });
        let c = BinaryCache::new(&url).unwrap();
        assert_eq!(
            c.cache_info().unwrap().unwrap().store_dir.as_deref(),
            Some("/nix/store")
        );
        let paths = [
            "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
            "/nix/store/11111111111111111111111111111111-p",
            "/nix/store/22222222222222222222222222222222-p",
        ];
        let d = c.query_detailed(
            &paths,
            &QueryOptions {
                retries: 0,
                ..QueryOptions::default()
            },
        );
        assert!(
            matches!(&d[0], Found::Error(e) if e.contains("file:///etc/passwd") && e.contains("not followed")),
            "{d:?}"
        );
        assert!(
            matches!(&d[1], Found::Error(e) if e.contains("ftp://")),
            "{d:?}"
        );
        assert!(
            matches!(&d[2], Found::Error(e) if e.contains("redirects")),
            "{d:?}"
        );
    }

    #[test]
    fn nix_cache_info_that_is_no_cache_info_is_not_a_binary_cache() {
        for (text, why) in [
            (
                "<html><body>Welcome to nginx!</body></html>\n",
                "no `StoreDir:` line",
            ),
            ("\u{1}\u{2}garbage\u{0}", "not text"),
            ("StoreDir: relative\n", "not an absolute path"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("nix-cache-info"), text).unwrap();
            let c = BinaryCache::new(&format!("file://{}", dir.path().display())).unwrap();
            let e = c.cache_info().unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "file://{} is not a binary cache: ",
                    dir.path().display()
                )) && e.contains(why),
                "{e}"
            );
        }
        // Not UTF-8, and too big (on disk: never read).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("nix-cache-info"), [0xff, 0xfe, b'\n']).unwrap();
        let c = BinaryCache::new(&format!("file://{}", dir.path().display())).unwrap();
        assert!(c.cache_info().unwrap_err().to_string().contains("not text"));
        let f = std::fs::File::create(dir.path().join("nix-cache-info")).unwrap();
        f.set_len(5_000_000_000).unwrap();
        let e = c.cache_info().unwrap_err().to_string();
        assert!(
            e.contains("is not a binary cache: its nix-cache-info is larger than 64 KiB"),
            "{e}"
        );
        // A FIFO is refused without waiting for a writer.
        std::fs::remove_file(dir.path().join("nix-cache-info")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(dir.path().join("nix-cache-info"))
            .status()
            .unwrap();
        assert!(made.success());
        assert!(c.cache_info().is_err());
        // A good one still reads.
        std::fs::remove_file(dir.path().join("nix-cache-info")).unwrap();
        std::fs::write(
            dir.path().join("nix-cache-info"),
            "StoreDir: /nix/store\r\n",
        )
        .unwrap();
        assert_eq!(
            c.cache_info().unwrap().unwrap().store_dir.as_deref(),
            Some("/nix/store")
        );
    }

    #[test]
    fn huge_endless_and_trickling_answers_are_cut() {
        let (url, sent) = hostile_server(|p| match p {
            "/nix-cache-info" => Reply::Huge,
            _ => Reply::Endless,
        });
        let c = BinaryCache::with_timeout(&url, Duration::from_secs(20)).unwrap();
        let t = std::time::Instant::now();
        let e = c.cache_info().unwrap_err().to_string();
        assert!(
            e.contains(&format!("{url} is not a binary cache")) && e.contains("64 KiB"),
            "{e}"
        );
        // Endless narinfos: each refused after 1 MiB + 1 bytes, so absent, quickly.
        let paths: Vec<String> = (0..8)
            .map(|i| format!("/nix/store/{}-x", i.to_string().repeat(32)))
            .collect();
        let d = c.query_detailed(&paths, &QueryOptions::default());
        for f in &d {
            assert!(
                matches!(f, Found::Invalid(e) if e.contains("larger than 1024 KiB")),
                "{d:?}"
            );
        }
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        // What the server could push into sockets is far from 8 GiB: the client stopped.
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            sent.load(Ordering::SeqCst) < 512 << 20,
            "{}",
            sent.load(Ordering::SeqCst)
        );

        // A trickle is cut by the request's time limit.
        let (url, _) = hostile_server(|_| Reply::Trickle);
        let c = BinaryCache::with_timeout(&url, Duration::from_secs(2)).unwrap();
        let t = std::time::Instant::now();
        let e = c.cache_info().unwrap_err().to_string();
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "{:?} {e}",
            t.elapsed()
        );
        assert!(e.contains("nix-cache-info"), "{e}");
        let r = c.query(
            &["/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10".to_owned()],
            &QueryOptions {
                retries: 0,
                ..QueryOptions::default()
            },
        );
        assert!(matches!(r[0].presence, Presence::Error(_)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn only_a_narinfo_that_parses_and_names_the_path_proves_presence() {
        let (url, _) = hostile_server(|p| match p {
            "/xcp9cav49dmsjbwdjlmkjxj10gkpx553.narinfo" => Reply::Body(HELLO),
            // Another path's narinfo.
            "/11111111111111111111111111111111.narinfo" => Reply::Body(HELLO),
            // Truncated (no NarSize) and garbage.
            "/22222222222222222222222222222222.narinfo" => Reply::Body(
                "StorePath: /nix/store/22222222222222222222222222222222-t\nURL: nar/x.nar\nNarHash: sha256:16mvl7v0ylzcg2n3xzjn41qhzbmgcn5iyarx16nn5l2r36n2kqci\n",
            ),
            _ => Reply::Body("<html>hello</html>"),
        });
        let c = BinaryCache::new(&url).unwrap();
        let paths: Vec<String> = [
            "/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10",
            "/nix/store/11111111111111111111111111111111-other",
            "/nix/store/22222222222222222222222222222222-t",
            "/nix/store/33333333333333333333333333333333-garbage",
        ]
        .map(str::to_owned)
        .to_vec();
        let r = c.query(&paths, &QueryOptions::default());
        assert!(r[0].is_present());
        assert!(
            r[1..].iter().all(|s| s.presence == Presence::Absent),
            "{r:?}"
        );
        let d = c.query_detailed(&paths, &QueryOptions::default());
        assert!(
            matches!(&d[1], Found::Invalid(e) if e.contains("is the narinfo of /nix/store/xcp9")),
            "{d:?}"
        );
        assert!(
            matches!(&d[2], Found::Invalid(e) if e.contains("NarSize")),
            "{d:?}"
        );
        assert!(
            matches!(&d[3], Found::Invalid(e) if e.contains("not `Key: value`")),
            "{d:?}"
        );
    }

    #[test]
    fn credentials_in_the_url_are_never_in_errors() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let c = BinaryCache::with_timeout(
            &format!("http://user:PLANTEDPW@127.0.0.1:{port}"),
            Duration::from_secs(2),
        )
        .unwrap();
        let e = c.cache_info().unwrap_err().to_string();
        assert!(
            !e.contains("PLANTEDPW") && e.contains("user:<redacted>@127.0.0.1"),
            "{e}"
        );
        let r = c.query(
            &["/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10".to_owned()],
            &QueryOptions {
                retries: 0,
                ..QueryOptions::default()
            },
        );
        assert!(!format!("{r:?}").contains("PLANTEDPW"), "{r:?}");
        assert!(!c.display_url().contains("PLANTEDPW"));
        let e = BinaryCache::new("s3://AKIA:PLANTEDPW@bucket")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("PLANTEDPW"), "{e}");
    }

    /// Proving presence costs no extra connections: narinfos are read on kept-alive
    /// connections, at most one per worker.
    #[test]
    fn http_query_keeps_connections_alive() {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let conns = std::sync::Arc::new(AtomicUsize::new(0));
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c2.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("");
                        let (code, body) = if path.starts_with("/xcp9") {
                            (200, HELLO)
                        } else if path.starts_with("/nar/") {
                            (200, "")
                        } else {
                            (404, "")
                        };
                        // One write: split writes meet Nagle and delayed ACKs.
                        let answer = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let c = BinaryCache::new(&url).unwrap();
        let mut paths: Vec<String> = (0..200)
            .map(|i| format!("/nix/store/{:0>32}-p", i % 10))
            .collect();
        paths.push("/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10".to_owned());
        let r = c.query(
            &paths,
            &QueryOptions {
                jobs: 4,
                ..QueryOptions::default()
            },
        );
        assert!(r.last().unwrap().is_present());
        assert_eq!(
            r.iter().filter(|s| s.presence == Presence::Absent).count(),
            200
        );
        let n = conns.load(Ordering::SeqCst);
        assert!(n <= 4, "{n} connections for 201 narinfos on 4 workers");
    }
}
