//! Multi-user Nix for tests: an unprivileged user and a real `nix-daemon` on a test
//! socket with its own system configuration (`NIX_CONF_DIR`), serving the real store.
//! Needs root (to create the user, switch to it with `setpriv`, and run the daemon):
//! tests that use it fail with instructions when not root, they never skip.
//!
//! Include it from a test file with `#[path = "support/setup_daemon.rs"] mod setup_daemon;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The unprivileged account the tests run tools as (created when missing).
pub const TEST_USER: &str = "nct-setup";

pub fn require_root(what: &str) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    assert!(
        uid == "0",
        "{what} needs root (to create a test user, switch to it and start a nix-daemon): \
         run the tests as root, as `.ci/run` does in CI"
    );
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The test user, created with `useradd --system` if it does not exist yet.
pub fn test_user() -> User {
    require_root("creating the unprivileged test user");
    if id_of("-u", TEST_USER).is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .output()
            .expect("useradd is needed to create the test user (package passwd)");
        // Another test process may have created it in the meantime.
        assert!(
            out.status.success() || id_of("-u", TEST_USER).is_some(),
            "useradd {TEST_USER} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    User {
        name: TEST_USER.to_owned(),
        uid: id_of("-u", TEST_USER).unwrap(),
        gid: id_of("-g", TEST_USER).unwrap(),
    }
}

/// A directory tree the test user may enter: `root` (0755), `home` owned by the user.
pub struct SharedDir {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
}

impl SharedDir {
    pub fn new(user: &User) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).unwrap();
        SharedDir { dir, home }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A copy of `program` the user can execute (the build directory may be private).
    pub fn executable(&self, program: &Path) -> PathBuf {
        let dest = self.path().join(program.file_name().unwrap());
        if !dest.exists() {
            std::fs::copy(program, &dest).unwrap();
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dest
    }
}

/// `program` run as `user` through `setpriv`, with a clean environment: PATH, HOME and
/// XDG_CONFIG_HOME under `home`, NO_COLOR. Add the Nix variables yourself.
pub fn as_user(user: &User, home: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    as_user_in_groups(user, home, program, None)
}

/// [`as_user`], with the session's supplementary groups set to `groups` (gids, comma
/// separated) instead of those of the group database: a session that lags behind (or
/// runs ahead of) `/etc/group`.
pub fn as_user_in_groups(
    user: &User,
    home: &Path,
    program: impl AsRef<std::ffi::OsStr>,
    groups: Option<&str>,
) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg(groups.map_or_else(|| "--init-groups".to_owned(), |g| format!("--groups={g}")))
        .arg("--")
        .arg(program)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CONFIG_DIRS", home.join("no-xdg-dirs"))
        .env("NO_COLOR", "1")
        .current_dir(home);
    c
}

/// A running `nix-daemon` on its own socket, reading `conf_dir/nix.conf`. Killed on drop.
pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    pub conf_dir: PathBuf,
    /// Whether it reads its home's user file ([`Daemon::start_with`]).
    own_user_file: bool,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon with `NIX_CONF_DIR=conf_dir` and waits for its socket. It reads
    /// no user file (`NIX_USER_CONF_FILES=`).
    pub fn start(conf_dir: &Path, socket: &Path) -> Self {
        Self::start_with(conf_dir, socket, false)
    }

    /// The home the daemon runs with: `conf_dir/daemon-home`.
    pub fn home_of(conf_dir: &Path) -> PathBuf {
        conf_dir.join("daemon-home")
    }

    /// Like [`Daemon::start`]; with `own_user_file`, the daemon also reads the user file
    /// of its home ([`Daemon::home_of`]`/.config/nix/nix.conf`), as a nix-daemon started
    /// by systemd reads root's (its XDG_CONFIG_DIRS points into `conf_dir`, so the
    /// machine's `/etc/xdg` is not read).
    pub fn start_with(conf_dir: &Path, socket: &Path, own_user_file: bool) -> Self {
        require_root("starting a nix-daemon");
        let _ = std::fs::remove_file(socket);
        let log = socket.with_extension("log");
        let root_home = Self::home_of(conf_dir);
        std::fs::create_dir_all(&root_home).unwrap();
        let mut c = Command::new("nix-daemon");
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", &root_home);
        if own_user_file {
            c.env("XDG_CONFIG_DIRS", conf_dir.join("daemon-xdg"));
        } else {
            c.env("XDG_CONFIG_HOME", root_home.join(".config"))
                .env("NIX_USER_CONF_FILES", "");
        }
        let child = c
            .env("NIX_CONF_DIR", conf_dir)
            .env("NIX_DAEMON_SOCKET_PATH", socket)
            .env("NIX_REMOTE", "local")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
            .spawn()
            .expect("nix-daemon must be on PATH (Debian package nix-bin)");
        let start = Instant::now();
        while !socket.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nix-daemon did not create {} within 20 s; its stderr: {}",
                socket.display(),
                std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            socket: socket.to_owned(),
            conf_dir: conf_dir.to_owned(),
            own_user_file,
            log,
        }
    }

    /// Stops and starts again, so the daemon re-reads nix.conf (as after
    /// `systemctl restart nix-daemon`).
    pub fn restart(self) -> Self {
        let (conf, sock, own) = (
            self.conf_dir.clone(),
            self.socket.clone(),
            self.own_user_file,
        );
        drop(self);
        Daemon::start_with(&conf, &sock, own)
    }

    /// Environment a client needs to talk to this daemon.
    pub fn client_env(&self, c: &mut Command) {
        c.env("NIX_REMOTE", "daemon")
            .env("NIX_DAEMON_SOCKET_PATH", &self.socket)
            .env("NIX_CONF_DIR", &self.conf_dir);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only the daemon process this test started, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Runs `c` and returns its output, or kills it and panics when it has not finished
/// within `limit` ([`crate::support::run_bounded`]): no test waits for a child without bound.
pub fn output_within(mut c: Command, limit: Duration) -> std::process::Output {
    crate::support::run_bounded(&mut c, limit.as_secs().max(1))
}

/// One request to an [`AuthCache`]: the path and whether it carried the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub method: String,
    pub path: String,
    /// `Authorization: Basic` with the right password (any user name).
    pub authorized: bool,
    /// Some `Authorization` header was sent at all.
    pub sent_credentials: bool,
}

/// A private binary cache on 127.0.0.1: serves `root` (GET/HEAD) only to requests with
/// HTTP basic auth whose password is `password` (what curl sends from a netrc entry
/// `machine 127.0.0.1 password TOKEN`), answers 401 otherwise. Stopped on drop.
pub struct AuthCache {
    pub url: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<AuthRequest>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl AuthCache {
    pub fn serve(root: &Path, password: &str) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (root, log2, stop2, password) = (
            root.to_owned(),
            log.clone(),
            stop.clone(),
            password.to_owned(),
        );
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (root, log, password) = (root.clone(), log2.clone(), password.clone());
                        std::thread::spawn(move || {
                            let _ = serve_auth(stream, &root, &password, &log);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        AuthCache { url, log, stop }
    }

    pub fn requests(&self) -> Vec<AuthRequest> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for AuthCache {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn basic_password(header: &str) -> Option<String> {
    use base64::Engine;
    let b64 = header.trim().strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.split_once(':').map(|(_, p)| p.to_owned())
}

fn serve_auth(
    stream: std::net::TcpStream,
    root: &Path,
    password: &str,
    log: &std::sync::Mutex<Vec<AuthRequest>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = match (parts.next(), parts.next()) {
            (Some(m), Some(t)) => (m.to_owned(), t.to_owned()),
            _ => return Ok(()),
        };
        let (mut auth, mut close) = (None, false);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => auth = Some(v.trim().to_owned()),
                "connection" => close = v.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let path = target.split('?').next().unwrap_or("").to_owned();
        let authorized = auth
            .as_deref()
            .and_then(basic_password)
            .is_some_and(|p| p == password);
        log.lock().unwrap().push(AuthRequest {
            method: method.clone(),
            path: path.clone(),
            authorized,
            sent_credentials: auth.is_some(),
        });
        let file = root.join(path.trim_start_matches('/'));
        let (status, extra, body) = if !authorized {
            (
                "401 Unauthorized",
                "WWW-Authenticate: Basic realm=\"private cache\"\r\n",
                Vec::new(),
            )
        } else if path.split('/').any(|c| c == "..") || !file.is_file() {
            ("404 Not Found", "", Vec::new())
        } else {
            ("200 OK", "", std::fs::read(&file)?)
        };
        write!(
            out,
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nContent-Type: application/octet-stream\r\n{}\r\n",
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        )?;
        if method != "HEAD" {
            out.write_all(&body)?;
        }
        out.flush()?;
        if close {
            return Ok(());
        }
    }
}
