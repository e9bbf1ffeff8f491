//! A small client for a Nix binary cache, by URL: `file:///dir` (read from disk) or
//! `http(s)://host[/prefix]` (through `ureq`, with timeouts). Used by `push-cache` to skip
//! what a cache already holds and by `cache-analytics` for cache-coverage reports.
//!
//! What it does:
//! - [`BinaryCache::cache_info`]: reads `nix-cache-info` (`StoreDir`, `WantMassQuery`,
//!   `Priority`); `Ok(None)` when the cache has none (e.g. an empty directory that
//!   `nix copy` has not initialised yet).
//! - [`BinaryCache::narinfo`]: fetches and parses one `<hashpart>.narinfo`.
//! - [`BinaryCache::query`]: "which of these store paths does the cache have", in
//!   parallel on a bounded number of worker threads ([`QueryOptions::jobs`]), each
//!   request with its own timeout. Every path gets a [`PathStatus`]: [`Presence::Present`]
//!   (with `NarSize`/`FileSize` when the narinfo was read with [`Probe::Get`]),
//!   [`Presence::Absent`] (404, 403 or 410, as Nix itself reads them; for `file://` a
//!   missing file), or [`Presence::Error`] with a message — never a panic, and one bad
//!   path does not stop the others. Results come back in input order.
//!
//! Store URL parameters (`?secret-key=...`, `?compression=...`, `?priority=...`) are Nix
//! store settings, not part of the HTTP address: they are stripped. Other schemes
//! (`s3://`, `ssh-ng://`, ...) are not handled here: [`BinaryCache::new`] returns
//! [`CacheError::Unsupported`] and callers fall back to Nix.
//!
//! ```no_run
//! use nix_cache_tools::binarycache::{BinaryCache, QueryOptions, Presence};
//! let cache = BinaryCache::new("https://cache.nixos.org")?;
//! let paths = vec!["/nix/store/xcp9cav49dmsjbwdjlmkjxj10gkpx553-hello-2.10".to_owned()];
//! for st in cache.query(&paths, &QueryOptions::default()) {
//!     match st.presence {
//!         Presence::Present { nar_size, .. } => println!("{} cached ({nar_size:?} bytes)", st.path),
//!         Presence::Absent => println!("{} missing", st.path),
//!         Presence::Error(e) => eprintln!("{}: {e}", st.path),
//!     }
//! }
//! # Ok::<(), nix_cache_tools::binarycache::CacheError>(())
//! ```

use crate::narinfo::{NarInfo, NarInfoError, narinfo_file_name};
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "`{0}` is not a cache this client can read: use file:///path or http(s)://host (other store URIs go through `nix`)"
    )]
    Unsupported(String),
    #[error("`{path}` is not a store path (no 32-character hash part)")]
    NotAStorePath { path: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: {source}")]
    NarInfo {
        url: String,
        #[source]
        source: NarInfoError,
    },
}

/// The contents of `nix-cache-info`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CacheInfo {
    pub store_dir: Option<String>,
    pub want_mass_query: Option<bool>,
    pub priority: Option<u32>,
}

impl CacheInfo {
    pub fn parse(text: &str) -> Self {
        let mut info = CacheInfo::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "StoreDir" => info.store_dir = Some(v.to_owned()),
                "WantMassQuery" => info.want_mass_query = Some(v == "1" || v == "true"),
                "Priority" => info.priority = v.parse().ok(),
                _ => {}
            }
        }
        info
    }
}

/// How [`BinaryCache::query`] asks for a narinfo over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Probe {
    /// `HEAD` (for `file://`, a file existence check): cheapest, sizes unknown.
    #[default]
    Head,
    /// `GET` and parse: gives `NarSize` and `FileSize`.
    Get,
}

#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Worker threads (at least 1).
    pub jobs: usize,
    pub probe: Probe,
    /// Extra attempts after a transport error or a 5xx answer.
    pub retries: u32,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            jobs: 16,
            probe: Probe::Head,
            retries: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Presence {
    Present {
        /// `NarSize` when the narinfo was read ([`Probe::Get`]).
        nar_size: Option<u64>,
        file_size: Option<u64>,
    },
    Absent,
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathStatus {
    pub path: String,
    pub presence: Presence,
}

impl PathStatus {
    pub fn is_present(&self) -> bool {
        matches!(self.presence, Presence::Present { .. })
    }
}

#[derive(Debug, Clone)]
enum Base {
    File(PathBuf),
    Http(String),
}

/// A binary cache reachable by this process.
#[derive(Debug, Clone)]
pub struct BinaryCache {
    url: String,
    base: Base,
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
}

/// The part of a store URL before `?` (Nix store parameters are not HTTP queries).
pub fn strip_store_params(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// True for URLs [`BinaryCache::new`] accepts.
pub fn is_supported(url: &str) -> bool {
    let u = strip_store_params(url);
    u.starts_with("file://") || u.starts_with("http://") || u.starts_with("https://")
}

impl BinaryCache {
    /// A client for `url`, with a 10 s connect and 30 s per-request timeout.
    pub fn new(url: &str) -> Result<Self, CacheError> {
        Self::with_timeout(url, Duration::from_secs(30))
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, CacheError> {
        let clean = strip_store_params(url).trim_end_matches('/');
        let base = if let Some(p) = clean.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(CacheError::Unsupported(url.to_owned()));
            }
            Base::File(PathBuf::from(p))
        } else if clean.starts_with("http://") || clean.starts_with("https://") {
            Base::Http(clean.to_owned())
        } else {
            return Err(CacheError::Unsupported(url.to_owned()));
        };
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            // Keep a connection per worker thread alive (ureq keeps one by default).
            .max_idle_connections_per_host(64)
            .user_agent(concat!("nix-cache-tools/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(BinaryCache {
            url: clean.to_owned(),
            base,
            agent,
            headers: Vec::new(),
        })
    }

    /// Sends this header with every HTTP request (e.g. `Authorization` for a private cache).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The cache URL without store parameters or trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cache's directory, for `file://` caches.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        match &self.base {
            Base::File(p) => Some(p),
            Base::Http(_) => None,
        }
    }

    fn location(&self, rel: &str) -> String {
        match &self.base {
            Base::File(p) => p.join(rel).display().to_string(),
            Base::Http(u) => format!("{u}/{rel}"),
        }
    }

    /// Reads a file of the cache; `Ok(None)` when it is not there (404/403/410).
    pub fn get_file(&self, rel: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let loc = self.location(rel);
        match &self.base {
            Base::File(p) => match std::fs::read(p.join(rel)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(CacheError::Io {
                    url: loc,
                    source: e,
                }),
            },
            Base::Http(_) => {
                let mut req = self.agent.get(&loc);
                for (k, v) in &self.headers {
                    req = req.set(k, v);
                }
                match req.call() {
                    Ok(resp) => {
                        let mut buf = Vec::new();
                        resp.into_reader()
                            .take(64 * 1024 * 1024)
                            .read_to_end(&mut buf)
                            .map_err(|e| CacheError::Io {
                                url: loc,
                                source: e,
                            })?;
                        Ok(Some(buf))
                    }
                    Err(ureq::Error::Status(code, _)) if is_absent_status(code) => Ok(None),
                    Err(e) => Err(http_error(loc, e)),
                }
            }
        }
    }

    /// Whether a file exists (HEAD over HTTP).
    pub fn has_file(&self, rel: &str) -> Result<bool, CacheError> {
        let loc = self.location(rel);
        match &self.base {
            Base::File(p) => Ok(p.join(rel).is_file()),
            Base::Http(_) => {
                let mut req = self.agent.head(&loc);
                for (k, v) in &self.headers {
                    req = req.set(k, v);
                }
                match req.call() {
                    Ok(_) => Ok(true),
                    Err(ureq::Error::Status(code, _)) if is_absent_status(code) => Ok(false),
                    Err(e) => Err(http_error(loc, e)),
                }
            }
        }
    }

    /// `nix-cache-info`, or `None` when the cache has none.
    pub fn cache_info(&self) -> Result<Option<CacheInfo>, CacheError> {
        Ok(self
            .get_file("nix-cache-info")?
            .map(|b| CacheInfo::parse(&String::from_utf8_lossy(&b))))
    }

    /// The narinfo of `store_path` (a full path or base name), `None` when absent.
    pub fn narinfo(&self, store_path: &str) -> Result<Option<NarInfo>, CacheError> {
        let name = narinfo_file_name(store_path).ok_or_else(|| CacheError::NotAStorePath {
            path: store_path.to_owned(),
        })?;
        let Some(bytes) = self.get_file(&name)? else {
            return Ok(None);
        };
        NarInfo::parse(&String::from_utf8_lossy(&bytes))
            .map(Some)
            .map_err(|e| CacheError::NarInfo {
                url: self.location(&name),
                source: e,
            })
    }

    fn query_one(&self, path: &str, opts: &QueryOptions) -> Presence {
        let mut attempt = 0;
        loop {
            let r = match (&self.base, opts.probe) {
                (_, Probe::Get) => self.narinfo(path).map(|n| match n {
                    Some(n) => Presence::Present {
                        nar_size: Some(n.nar_size),
                        file_size: n.file_size,
                    },
                    None => Presence::Absent,
                }),
                (_, Probe::Head) => match narinfo_file_name(path) {
                    None => Err(CacheError::NotAStorePath {
                        path: path.to_owned(),
                    }),
                    Some(name) => self.has_file(&name).map(|yes| {
                        if yes {
                            Presence::Present {
                                nar_size: None,
                                file_size: None,
                            }
                        } else {
                            Presence::Absent
                        }
                    }),
                },
            };
            match r {
                Ok(p) => return p,
                Err(e) => {
                    let transient = matches!(&e, CacheError::Transport { .. })
                        || matches!(&e, CacheError::Status { status, .. } if *status >= 500);
                    if transient && attempt < opts.retries {
                        attempt += 1;
                        std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                        continue;
                    }
                    return Presence::Error(e.to_string());
                }
            }
        }
    }

    /// Asks the cache for each path's narinfo, in parallel on at most `opts.jobs`
    /// threads. Results are in the order of `paths`.
    pub fn query(&self, paths: &[String], opts: &QueryOptions) -> Vec<PathStatus> {
        let jobs = opts.jobs.max(1).min(paths.len().max(1));
        let next = AtomicUsize::new(0);
        let mut results: Vec<Option<Presence>> = vec![None; paths.len()];
        let slots = std::sync::Mutex::new(&mut results);
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = paths.get(i) else { break };
                        let p = self.query_one(path, opts);
                        if let Ok(mut slots) = slots.lock() {
                            slots[i] = Some(p);
                        }
                    }
                });
            }
        });
        paths
            .iter()
            .zip(results)
            .map(|(path, p)| PathStatus {
                path: path.clone(),
                presence: p.unwrap_or_else(|| Presence::Error("query thread failed".to_owned())),
            })
            .collect()
    }
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
fn transport_reason(t: &ureq::Transport) -> String {
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
        let i = CacheInfo::parse("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
        assert_eq!(i.store_dir.as_deref(), Some("/nix/store"));
        assert_eq!(i.want_mass_query, Some(true));
        assert_eq!(i.priority, Some(40));
    }

    #[test]
    fn urls() {
        assert!(matches!(
            BinaryCache::new("s3://bucket"),
            Err(CacheError::Unsupported(_))
        ));
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
                probe: Probe::Get,
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
        assert!(
            matches!(&r[2].presence, Presence::Error(e) if e.contains("narinfo")),
            "{:?}",
            r[2]
        );
        assert!(matches!(&r[3].presence, Presence::Error(_)));
        assert_eq!(r.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), paths);
        assert!(c.query(&[], &QueryOptions::default()).is_empty());
        // HEAD-like probe: existence only.
        let head = c.query(&paths[..3], &QueryOptions::default());
        let present = Presence::Present {
            nar_size: None,
            file_size: None,
        };
        assert_eq!(head[0].presence, present);
        assert_eq!(head[1].presence, Presence::Absent);
        assert_eq!(head[2].presence, present);
    }

    /// A tiny HTTP server: `/<hash>.narinfo` answers by the first character of the hash
    /// (`x` 200 with HELLO, `1` 404, `2` 403, `5` 500), one request per connection.
    fn tiny_server() -> String {
        use std::io::{BufRead, BufReader, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        std::thread::spawn(move || {
            for s in l.incoming() {
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
                let (code, body) = match path.chars().nth(1) {
                    Some('x') => (200, HELLO),
                    Some('1') => (404, ""),
                    Some('2') => (403, ""),
                    _ => (500, ""),
                };
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
                nar_size: None,
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
                probe: Probe::Get,
                retries: 1,
                jobs: 2,
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
}
