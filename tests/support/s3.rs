//! A real S3-compatible server for the tests: `s3s-fs` (crates.io, `cargo install
//! s3s-fs@0.14.1 --features binary`; `.ci/install` installs it), serving a directory on
//! 127.0.0.1. With keys it checks every request's AWS Signature V4 and refuses the rest;
//! without, it serves anonymous requests, so a second server on the same directory plays
//! the bucket's public read endpoint (what Nix substitutes from over plain HTTP).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const ACCESS_KEY: &str = "AKIANCTTESTKEY000001";
pub const SECRET_KEY: &str = "nct-test-secret-Zq8VhX0pM3kLr7uT2yWb";

/// The server binary: `NCT_S3S_FS` (set by .ci/test-on-nix inside a chroot, where the
/// host's binary is under /host), else `s3s-fs` on PATH, else ~/.cargo/bin/s3s-fs.
pub fn s3s_fs() -> PathBuf {
    if let Some(p) = std::env::var_os("NCT_S3S_FS").filter(|p| !p.is_empty()) {
        return p.into();
    }
    if let Some(p) = super::on_path("s3s-fs") {
        return p;
    }
    let home =
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo/bin/s3s-fs");
    assert!(
        home.is_file(),
        "the S3 tests need s3s-fs, a real S3 server: run `.ci/install`, or `cargo install --locked s3s-fs@0.14.1 --features binary`"
    );
    home
}

pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: PathBuf,
}

impl S3Server {
    /// Serves `root` (each directory in it is a bucket); `keys` make it check signatures.
    pub fn start(root: &Path, keys: Option<(&str, &str)>) -> Self {
        Self::start_inner(root, keys, None)
    }

    /// [`S3Server::start`], also answering virtual-hosted requests (`BUCKET.DOMAIN`).
    pub fn start_with_domain(root: &Path, keys: Option<(&str, &str)>, domain: &str) -> Self {
        Self::start_inner(root, keys, Some(domain))
    }

    fn start_inner(root: &Path, keys: Option<(&str, &str)>, domain: Option<&str>) -> Self {
        std::fs::create_dir_all(root).unwrap();
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut c = Command::new(s3s_fs());
            c.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            if let Some((ak, sk)) = keys {
                c.args(["--access-key", ak, "--secret-key", sk]);
            }
            if let Some(d) = domain {
                c.args(["--domain", d]);
            }
            let mut child = c
                .arg(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("could not start s3s-fs: {e}"));
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return S3Server {
                        child,
                        port,
                        root: root.to_owned(),
                    };
                }
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken in between: another one
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("s3s-fs did not start serving {}", root.display());
    }

    /// `s3://BUCKET?endpoint=127.0.0.1:PORT&scheme=http` and `extra` parameters.
    pub fn uri(&self, bucket: &str, extra: &str) -> String {
        format!(
            "s3://{bucket}?endpoint=127.0.0.1:{}&scheme=http&region=us-east-1{extra}",
            self.port
        )
    }

    /// The bucket as a plain HTTP binary cache (path-style), for Nix to substitute from.
    pub fn http_url(&self, bucket: &str) -> String {
        format!("http://127.0.0.1:{}/{bucket}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the [`SlowDownProxy`] saw: when, what, and whether it answered 503.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: std::time::Instant,
    pub method: String,
    pub path: String,
    pub slowed: bool,
}

/// A proxy in front of an S3 server that answers the first `per_object` PUTs of every
/// object with `503 SlowDown` (S3's "reduce your request rate"), and forwards everything
/// else unchanged (one request per connection). Records every request.
pub struct SlowDownProxy {
    pub port: u16,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl SlowDownProxy {
    pub fn start(upstream: u16, per_object: usize) -> Self {
        Self::start_on(
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            upstream,
            per_object,
        )
    }

    /// [`SlowDownProxy::start`] on a socket bound already (its port known before the
    /// upstream starts).
    pub fn start_on(listener: std::net::TcpListener, upstream: u16, per_object: usize) -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Seen>::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let mut head = Vec::new();
                    let mut line = String::new();
                    let mut len = 0usize;
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if !lower.starts_with("connection:") {
                            head.push(line.clone());
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let mut words = head[0].split_whitespace();
                    let method = words.next().unwrap_or("").to_owned();
                    let target = words.next().unwrap_or("").to_owned();
                    let path = target.split('?').next().unwrap_or("").to_owned();
                    let mut client = client;
                    let slowed = {
                        let mut l = log.lock().unwrap();
                        let before = l
                            .iter()
                            .filter(|s| s.method == "PUT" && s.path == path && s.slowed)
                            .count();
                        let slowed = method == "PUT" && before < per_object;
                        l.push(Seen {
                            at: std::time::Instant::now(),
                            method: method.clone(),
                            path: path.clone(),
                            slowed,
                        });
                        slowed
                    };
                    if slowed {
                        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                        let _ = write!(
                            client,
                            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                            xml.len()
                        );
                        return;
                    }
                    let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let mut req = head.concat();
                    req.push_str("Connection: close\r\n\r\n");
                    if up.write_all(req.as_bytes()).is_err() || up.write_all(&body).is_err() {
                        return;
                    }
                    let mut answer = Vec::new();
                    let _ = up.read_to_end(&mut answer);
                    // The upstream's answer, told to close (one request per connection).
                    let text = String::from_utf8_lossy(&answer);
                    let (h, rest) = match text.find("\r\n\r\n") {
                        Some(i) => (answer[..i].to_vec(), answer[i + 4..].to_vec()),
                        None => (answer.clone(), Vec::new()),
                    };
                    let h: String = String::from_utf8_lossy(&h)
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .map(|l| format!("{l}\r\n"))
                        .collect();
                    let _ = client.write_all(format!("{h}Connection: close\r\n\r\n").as_bytes());
                    let _ = client.write_all(&rest);
                });
            }
        });
        SlowDownProxy { port, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// What the installed Nix does with an `s3://` store, found by asking it to open a
/// bucket on a server that checks signatures, with the right credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NixReadsS3 {
    /// "don't know how to open Nix store" (no S3 store in this build).
    Never,
    /// It opens the store but the server refuses its requests (sent unsigned).
    Unsigned,
    /// It reads the bucket.
    Signed,
}

/// Asks the Nix of `env` to open `uri` (a bucket of `server` holding a nix-cache-info)
/// with the server's credentials; also returns what Nix printed.
pub fn nix_reads_s3(env: &super::NixEnv, uri: &str) -> (NixReadsS3, String) {
    let sub = if env
        .nix(&["store", "info", "--help"])
        .output()
        .unwrap()
        .status
        .success()
    {
        "info"
    } else {
        "ping"
    };
    let asked = env
        .nix(&[
            "store",
            sub,
            "--store",
            uri,
            "--option",
            "download-attempts",
            "1",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    let said = super::stderr(&asked);
    let verdict = if said.contains("don't know how to open Nix store") {
        NixReadsS3::Never
    } else if asked.status.success() {
        NixReadsS3::Signed
    } else {
        assert!(
            said.contains("403") || said.contains("AccessDenied"),
            "Nix failed on the bucket for another reason: {said}"
        );
        NixReadsS3::Unsigned
    };
    (verdict, said)
}

/// A server that checks signatures, with one bucket `nixcache` holding a
/// `nix-cache-info`, under `root`; and the bucket's `s3://` URI.
pub fn signed_cache_bucket(root: &Path) -> (S3Server, String) {
    std::fs::create_dir_all(root.join("nixcache")).unwrap();
    std::fs::write(
        root.join("nixcache/nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
    )
    .unwrap();
    let server = S3Server::start(root, Some((ACCESS_KEY, SECRET_KEY)));
    let uri = server.uri("nixcache", "");
    (server, uri)
}
