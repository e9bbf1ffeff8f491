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
