//! The environment the nix-daemon runs with, which decides the configuration it reads:
//! not only `$NIX_CONF_DIR/nix.conf`, but also the user files of the account it runs as
//! (root's `~/.config/nix/nix.conf`, `/etc/xdg/nix/nix.conf`) and its own `NIX_CONFIG`,
//! unless its service sets `NIX_USER_CONF_FILES` — the daemon loads its settings exactly
//! as any Nix process does.
//!
//! Where this process may (root, or the daemon's own user), the running daemon is found
//! through `/proc` — the process named `nix-daemon` holding the listening socket this
//! client connects to, in the same root directory — and its environment read from
//! `/proc/PID/environ`. Elsewhere (another user; no `/proc`, as on macOS; a daemon not
//! started yet under socket activation) it is assumed to be what systemd and launchd give
//! a service that sets nothing: root's home from the password database, no XDG or Nix
//! variables, so root's `~/.config/nix/nix.conf` and `/etc/xdg/nix/nix.conf` count.

use super::Env;
use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Nix's default state directory (`NIX_STATE_DIR`).
const DEFAULT_STATE_DIR: &str = "/nix/var/nix";
/// More than any environment or socket table a machine has; bounds each `/proc` read.
const MAX_PROC_READ: u64 = 8 * 1024 * 1024;
/// The kernel's `__SO_ACCEPTCON` flag in `/proc/net/unix`: a listening socket.
const SO_ACCEPTCON: u32 = 0x0001_0000;

/// How [`DaemonEnv::env`] was learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Read from the running daemon's `/proc/PID/environ`.
    Process { pid: u32 },
    /// Not readable here; the defaults a service manager gives (see the module doc).
    Assumed { why: String },
}

/// The nix-daemon's environment, as far as this process can learn it.
#[derive(Debug, Clone)]
pub(crate) struct DaemonEnv {
    pub(crate) env: Env,
    pub(crate) source: Source,
}

/// The socket a client of the daemon connects to, as Nix picks it: the path of a
/// `NIX_REMOTE=unix://PATH`, else `NIX_DAEMON_SOCKET_PATH`, else
/// `$NIX_STATE_DIR/daemon-socket/socket`.
pub(crate) fn socket_path(var: impl Fn(&str) -> Option<OsString>) -> PathBuf {
    if let Some(remote) = var("NIX_REMOTE") {
        let remote = remote.to_string_lossy();
        if let Some(rest) = remote.strip_prefix("unix://") {
            let path = rest.split('?').next().unwrap_or_default();
            if !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    if let Some(p) = var("NIX_DAEMON_SOCKET_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let state = var("NIX_STATE_DIR")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from);
    state.join("daemon-socket/socket")
}

/// The daemon behind this process's socket: found under `/proc` where this process may
/// look, else assumed; `client` gives `NIX_CONF_DIR` for the assumption (the daemon
/// normally shares the client's system directory).
pub(crate) fn discover(client: &Env) -> DaemonEnv {
    let socket = socket_path(|k| std::env::var_os(k));
    discover_in(Path::new("/proc"), &socket, client, passwd_home)
}

fn discover_in(
    proc: &Path,
    socket: &Path,
    client: &Env,
    home_of: impl Fn(u32) -> Option<PathBuf>,
) -> DaemonEnv {
    let found = find_daemon(proc, socket).and_then(|pid| {
        let env = process_env(proc, pid, &home_of)?;
        Ok(DaemonEnv {
            env,
            source: Source::Process { pid },
        })
    });
    found.unwrap_or_else(|why| DaemonEnv {
        env: Env {
            nix_conf_dir: client.nix_conf_dir.clone(),
            home: home_of(0),
            cwd: Some(PathBuf::from("/")),
            ..Env::default()
        },
        source: Source::Assumed { why },
    })
}

fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_PROC_READ)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// The inodes of the listening sockets bound at `socket` (`/proc/net/unix`).
fn listening_inodes(proc: &Path, socket: &Path) -> Result<Vec<u64>, String> {
    let table = read_capped(&proc.join("net/unix"))
        .map_err(|e| format!("cannot read {}/net/unix: {e}", proc.display()))?;
    let want = socket.as_os_str().as_bytes();
    let inodes = table
        .split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|row| {
            let (flags, inode, path) = unix_row(row)?;
            (flags & SO_ACCEPTCON != 0 && path == want).then_some(inode)
        })
        .collect::<Vec<u64>>();
    if inodes.is_empty() {
        return Err(format!("no process listens on {}", socket.display()));
    }
    Ok(inodes)
}

/// One row of `/proc/net/unix`: `Num RefCount Protocol Flags Type St Inode Path`, the
/// inode padded to five columns, then one space and the path (absent for an unbound
/// socket), which is the rest of the row, spaces included. Gives flags, inode, path.
fn unix_row(row: &[u8]) -> Option<(u32, u64, &[u8])> {
    let mut rest = row;
    let mut fields = [&b""[..]; 7];
    for field in &mut fields {
        let start = rest.iter().position(|b| *b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        *field = &rest[..end];
        rest = &rest[end..];
    }
    let path = rest.strip_prefix(b" ")?;
    let flags = u32::from_str_radix(std::str::from_utf8(fields[3]).ok()?, 16).ok()?;
    let inode = std::str::from_utf8(fields[6]).ok()?.parse().ok()?;
    Some((flags, inode, path))
}

/// The pid of the `nix-daemon` holding a listening socket at `socket`, in this process's
/// root directory.
fn find_daemon(proc: &Path, socket: &Path) -> Result<u32, String> {
    let inodes = listening_inodes(proc, socket)?;
    let wanted: Vec<OsString> = inodes
        .iter()
        .map(|i| OsString::from(format!("socket:[{i}]")))
        .collect();
    let own_root = std::fs::read_link(proc.join("self/root")).ok();
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .map_err(|e| format!("cannot list {}: {e}", proc.display()))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut hidden = false;
    for pid in pids {
        let dir = proc.join(pid.to_string());
        let Ok(comm) = std::fs::read(dir.join("comm")) else {
            continue;
        };
        if comm.trim_ascii() != b"nix-daemon" {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(dir.join("fd")) else {
            hidden = true;
            continue;
        };
        let holds = fds
            .filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| wanted.contains(&t.into())));
        if holds && std::fs::read_link(dir.join("root")).ok() == own_root {
            return Ok(pid);
        }
    }
    Err(if hidden {
        "the nix-daemon's process belongs to another user (normally root)".to_owned()
    } else {
        format!("no nix-daemon process holds {}", socket.display())
    })
}

/// The environment of process `pid`, as its Nix settings depend on it.
fn process_env(
    proc: &Path,
    pid: u32,
    home_of: impl Fn(u32) -> Option<PathBuf>,
) -> Result<Env, String> {
    let dir = proc.join(pid.to_string());
    let environ = read_capped(&dir.join("environ"))
        .map_err(|e| format!("cannot read the nix-daemon's environment (pid {pid}): {e}"))?;
    let vars: Vec<(&[u8], &[u8])> = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((&kv[..eq], &kv[eq + 1..]))
        })
        .collect();
    // The first definition is the one getenv(3) returns.
    let var = |k: &str| {
        vars.iter()
            .find(|(name, _)| *name == k.as_bytes())
            .map(|(_, v)| OsStr::from_bytes(v).to_owned())
    };
    let non_empty = |k: &str| var(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    // Nix: $HOME, else the password database's entry of the effective uid.
    let euid = std::fs::read_to_string(dir.join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    Ok(Env {
        nix_conf_dir: non_empty("NIX_CONF_DIR"),
        nix_user_conf_files: var("NIX_USER_CONF_FILES"),
        xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
        xdg_config_dirs: var("XDG_CONFIG_DIRS"),
        home: var("HOME").map(PathBuf::from).or_else(|| home_of(euid)),
        nix_config: var("NIX_CONFIG").map(|v| v.to_string_lossy().into_owned()),
        nix_config_home: non_empty("NIX_CONFIG_HOME"),
        cwd: std::fs::read_link(dir.join("cwd")).ok(),
    })
}

/// The home directory of `uid` in the password database (getpwuid_r).
#[allow(unsafe_code)]
fn passwd_home(uid: u32) -> Option<PathBuf> {
    let mut buf = vec![0_u8; 16 * 1024];
    // SAFETY: all-zero bytes are a valid `passwd` (null pointers, zero ids).
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes only into `pw` and `buf` (of the length given) and sets
    // `result` to `&pw` or null; the strings read below live in `buf`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &raw mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut result,
        )
    };
    if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
        return None;
    }
    // SAFETY: `pw_dir` is non-null and points at a NUL-terminated string inside `buf`.
    let dir = unsafe { std::ffi::CStr::from_ptr(pw.pw_dir) };
    Some(PathBuf::from(OsString::from_vec(dir.to_bytes().to_vec())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn var_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_socket_is_the_one_nix_connects_to() {
        assert_eq!(
            socket_path(var_of(&[])),
            Path::new("/nix/var/nix/daemon-socket/socket")
        );
        assert_eq!(
            socket_path(var_of(&[("NIX_STATE_DIR", "/s")])),
            Path::new("/s/daemon-socket/socket")
        );
        assert_eq!(
            socket_path(var_of(&[
                ("NIX_STATE_DIR", "/s"),
                ("NIX_DAEMON_SOCKET_PATH", "/run/d.sock")
            ])),
            Path::new("/run/d.sock")
        );
        assert_eq!(
            socket_path(var_of(&[
                ("NIX_REMOTE", "unix:///x/y.sock?trusted=1"),
                ("NIX_DAEMON_SOCKET_PATH", "/run/d.sock")
            ])),
            Path::new("/x/y.sock")
        );
        assert_eq!(
            socket_path(var_of(&[
                ("NIX_REMOTE", "daemon"),
                ("NIX_DAEMON_SOCKET_PATH", "/run/d.sock")
            ])),
            Path::new("/run/d.sock")
        );
    }

    /// A fake `/proc`: `net/unix`, `self/root`, and processes with comm, fds, environ.
    struct FakeProc(tempfile::TempDir);

    impl FakeProc {
        fn new(unix_rows: &[&str]) -> Self {
            let d = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(d.path().join("net")).unwrap();
            let mut table = "Num       RefCount Protocol Flags    Type St Inode Path\n".to_owned();
            for r in unix_rows {
                table.push_str(r);
                table.push('\n');
            }
            std::fs::write(d.path().join("net/unix"), table).unwrap();
            std::fs::create_dir_all(d.path().join("self")).unwrap();
            symlink("/", d.path().join("self/root")).unwrap();
            FakeProc(d)
        }

        fn process(&self, pid: u32, comm: &str, sockets: &[u64], root: &str, environ: &[u8]) {
            let dir = self.0.path().join(pid.to_string());
            std::fs::create_dir_all(dir.join("fd")).unwrap();
            std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            symlink("/dev/null", dir.join("fd/0")).unwrap();
            for (i, s) in sockets.iter().enumerate() {
                symlink(format!("socket:[{s}]"), dir.join(format!("fd/{}", i + 3))).unwrap();
            }
            symlink(root, dir.join("root")).unwrap();
            symlink("/var/empty", dir.join("cwd")).unwrap();
            std::fs::write(dir.join("environ"), environ).unwrap();
            std::fs::write(dir.join("status"), "Name:\tx\nUid:\t0\t0\t0\t0\n").unwrap();
        }
    }

    const SOCK: &str = "/nix/var/nix/daemon-socket/socket";

    fn client() -> Env {
        Env {
            nix_conf_dir: Some(PathBuf::from("/client/etc")),
            ..Env::default()
        }
    }

    fn home(uid: u32) -> Option<PathBuf> {
        Some(PathBuf::from(format!("/home-of-{uid}")))
    }

    #[test]
    fn the_daemon_holding_the_listening_socket_gives_its_environment() {
        let p = FakeProc::new(&[
            // A connected socket at the same path (a client's), not listening.
            "0000000000000000: 00000003 00000000 00000000 0001 03 111 /nix/var/nix/daemon-socket/socket",
            "0000000000000000: 00000002 00000000 00010000 0001 01   222 /nix/var/nix/daemon-socket/socket",
            "0000000000000000: 00000002 00000000 00010000 0001 01   333 /run/other socket",
            "0000000000000000: 00000002 00000000 00010000 0001 01   444",
        ]);
        // systemd holds the socket too (socket activation); a nix-daemon in another
        // root (a chroot's), and one holding only the client's end, do not count.
        p.process(1, "systemd", &[222], "/", b"HOME=/wrong\0");
        p.process(40, "nix-daemon", &[111], "/", b"HOME=/wrong\0");
        p.process(41, "nix-daemon", &[222], "/srv/chroot", b"HOME=/wrong\0");
        p.process(
            42,
            "nix-daemon",
            &[222],
            "/",
            b"PATH=/bin\0HOME=/root-home\0NIX_CONF_DIR=/etc/daemon-nix\0\
              XDG_CONFIG_DIRS=/etc/x1:/etc/x2\0NIX_CONFIG=extra-trusted-users = alice\0HOME=/second\0",
        );
        let d = discover_in(p.0.path(), Path::new(SOCK), &client(), home);
        assert_eq!(d.source, Source::Process { pid: 42 });
        assert_eq!(d.env.home.as_deref(), Some(Path::new("/root-home")));
        assert_eq!(d.env.conf_dir(), Path::new("/etc/daemon-nix"));
        assert_eq!(
            d.env.nix_config.as_deref(),
            Some("extra-trusted-users = alice")
        );
        assert_eq!(d.env.cwd.as_deref(), Some(Path::new("/var/empty")));
        let files: Vec<PathBuf> = d.env.user_files().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            files,
            [
                "/root-home/.config/nix/nix.conf",
                "/etc/x1/nix/nix.conf",
                "/etc/x2/nix/nix.conf"
            ]
            .map(PathBuf::from)
        );

        // A path with a space is matched whole.
        p.process(50, "nix-daemon", &[333], "/", b"NIX_USER_CONF_FILES=\0");
        let d = discover_in(p.0.path(), Path::new("/run/other socket"), &client(), home);
        assert_eq!(d.source, Source::Process { pid: 50 });
        assert!(d.env.user_files().is_empty(), "{:?}", d.env.user_files());
        // Without HOME: the password database's home of its effective uid.
        assert_eq!(d.env.home.as_deref(), Some(Path::new("/home-of-0")));
        let d = discover_in(p.0.path(), Path::new("/run/other"), &client(), home);
        assert!(matches!(d.source, Source::Assumed { .. }), "{:?}", d.source);
    }

    #[test]
    fn where_the_daemon_cannot_be_seen_a_service_managers_defaults_are_assumed() {
        let p = FakeProc::new(&[
            "0000000000000000: 00000002 00000000 00010000 0001 01 222 /nix/var/nix/daemon-socket/socket",
        ]);
        // Root's process, whose fds another user may not list.
        let dir = p.0.path().join("7");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("comm"), "nix-daemon\n").unwrap();
        let d = discover_in(p.0.path(), Path::new(SOCK), &client(), home);
        let Source::Assumed { why } = &d.source else {
            panic!("{:?}", d.source)
        };
        assert!(why.contains("another user"), "{why}");
        assert_eq!(d.env.conf_dir(), Path::new("/client/etc"));
        let files: Vec<PathBuf> = d.env.user_files().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            files,
            ["/home-of-0/.config/nix/nix.conf", "/etc/xdg/nix/nix.conf"].map(PathBuf::from)
        );
        assert!(d.env.nix_config.is_none());
        // No /proc at all (macOS).
        let d = discover_in(Path::new("/no/such/proc"), Path::new(SOCK), &client(), home);
        assert!(matches!(d.source, Source::Assumed { .. }));
    }

    #[test]
    fn roots_home_comes_from_the_password_database() {
        assert!(passwd_home(0).is_some_and(|h| h.is_absolute()));
    }
}
