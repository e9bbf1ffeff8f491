//! Reading Nix's SQLite database directly, and strictly read-only: analysing a store
//! changes no byte under its `nix/var` — no file created, written, truncated or deleted.
//!
//! SQLite's own `mode=ro` is not enough: on a WAL database it creates `db.sqlite-wal` and
//! `db.sqlite-shm` where it may, and maps (and writes) an existing `-shm`; a hot journal
//! or a -wal next to a 0-page database is deleted even by a read-only connection. So the
//! files are checked here first, and the database is opened in one of two ways that
//! never write:
//!
//! - no `-wal` with data: `immutable=1` — the database file alone, no locks, no WAL, no
//!   journal, nothing created ([`OpenMode::Immutable`]);
//! - a `-wal` with data (a writer's uncheckpointed commits, or Nix ≥ 2.22's persistent
//!   WAL): the `unix-none` VFS (no file locks, so no writer is ever blocked) with
//!   `locking_mode=EXCLUSIVE` set before the first read, which makes SQLite keep the
//!   wal-index in heap memory instead of the `-shm` file, and no checkpoint on close
//!   ([`OpenMode::WalPrivateIndex`]). The `-shm` is never opened.
//!
//! Refused before SQLite sees them, each with an error naming the file: anything but a
//! regular file (a FIFO or a device would block or never end), an empty file, a file
//! that is not an SQLite database or is shorter than one page, a hot rollback journal
//! (`db.sqlite-journal` with a live header: a write was interrupted, and reading past
//! it would show a half-written database), and, once open, a database without Nix's
//! tables. Neither mode takes locks, so a writer can change the files during the read:
//! [`load_graph`] compares the files' identity, size and times before and after and
//! reads again when they changed.

use super::graph::{Graph, GraphBuilder};
use crate::nixcli::PathInfo;
use crate::storepath::StorePath;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How the database was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenMode {
    /// `immutable=1`: the database file alone (there is no `-wal` with data).
    Immutable,
    /// The `-wal` is read too, through a wal-index in this process's memory (the `-shm`
    /// file is not used), without locks.
    WalPrivateIndex,
}

/// The message already includes the underlying error, which is deliberately not also
/// exposed as `source()`: printing the chain (`{:#}`) would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the store database `{path}` read-only: {error}")]
    Open {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error("cannot read the store database `{path}`: {error}")]
    Read {
        path: PathBuf,
        error: rusqlite::Error,
    },
    #[error(
        "permission denied reading the store database `{}` ({error}): {} is not open to you. Run as the store's owner (e.g. with sudo), or ask them to open it (`chmod a+rx DIR` on the directory, `chmod a+r` on the files)",
        .path.display(),
        .blocked.as_ref().map(|d| format!("the directory {}", d.display())).unwrap_or_else(|| "it".to_owned())
    )]
    PermissionDenied {
        path: PathBuf,
        /// The directory on the way that may not be entered or read, when one is.
        blocked: Option<PathBuf>,
        error: std::io::Error,
    },
    #[error("the store database `{}` is damaged: it lists {error}; nothing was read or changed. Check it with `nix-store --verify` as the store's owner", .path.display())]
    BadPath {
        path: PathBuf,
        error: crate::storepath::NotAStorePath,
    },
    #[error("cannot read the store database `{}`: {error}", .path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the store database `{}` is {kind}, not a regular file: nothing was read; point `--store` at a real store", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("the store database `{}` is empty (0 bytes): it is damaged; nothing was read or changed. Restore it from a backup or re-create the store (Nix's own repair is `nix-store --verify --repair` as the store's owner)", .path.display())]
    Empty { path: PathBuf },
    #[error("the store database `{}` is not an SQLite database ({reason}): it is damaged; nothing was read or changed. Restore it from a backup, or re-create the store", .path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("`{}` is not a Nix store database: it has no {missing} table; nothing was read or changed. Check that `--store` names a Nix store (its database is DIR/nix/var/nix/db/db.sqlite)", .path.display())]
    Foreign {
        path: PathBuf,
        missing: &'static str,
    },
    #[error("`{}` is a rollback journal left by an interrupted write to the store database: reading past it would show a half-written database, so nothing was read. Let Nix roll it back by running any store command as the store's owner, e.g. `nix-store --verify{store_hint}`", .journal.display())]
    HotJournal {
        journal: PathBuf,
        /// ` --store DIR` for the command shown (empty for the machine's store).
        store_hint: String,
    },
    #[error("the store database `{}` kept changing while it was read ({tries} tries): try again when Nix is idle", .path.display())]
    Changing { path: PathBuf, tries: usize },
}

impl DbError {
    /// The database exists but this user may not read it (or a directory on the way).
    pub(crate) fn is_permission_denied(&self) -> bool {
        matches!(self, DbError::PermissionDenied { .. })
    }
}

/// Percent-encodes what SQLite's URI parser would misread in a file name.
fn uri_path(path: &Path) -> String {
    let mut s = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' | b' ' => s.push_str(&format!("%{b:02X}")),
            _ => s.push(b as char),
        }
    }
    s
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The deepest directory above `path` that exists but may not be entered.
fn blocked_dir(path: &Path) -> Option<PathBuf> {
    let ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    for dir in ancestors.into_iter().rev() {
        if std::fs::read_dir(dir).is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
            || std::fs::metadata(dir.join("."))
                .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        {
            return Some(dir.to_owned());
        }
    }
    None
}

fn io_err(path: &Path, e: std::io::Error) -> DbError {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        DbError::PermissionDenied {
            path: path.to_owned(),
            blocked: blocked_dir(path),
            error: e,
        }
    } else {
        DbError::Io {
            path: path.to_owned(),
            error: e,
        }
    }
}

/// Reads up to `n` bytes from the start of a regular file, without blocking (a FIFO
/// swapped in after the type check does not wait for a writer) and after checking the
/// type of what was opened.
fn read_head(path: &Path, n: usize) -> Result<(Vec<u8>, std::fs::Metadata), DbError> {
    use std::io::Read;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    let m = f.metadata().map_err(|e| io_err(path, e))?;
    if !m.file_type().is_file() {
        return Err(DbError::NotRegular {
            path: path.to_owned(),
            kind: crate::fsutil::describe_type(m.file_type()),
        });
    }
    let mut buf = Vec::with_capacity(n);
    f.take(n as u64)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(path, e))?;
    Ok((buf, m))
}

/// What a companion file (`-wal`, `-journal`) is: absent, or a regular file of this size.
fn companion(path: &Path, db: &Path) -> Result<Option<u64>, DbError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(Some(m.len())),
        Ok(m) => Err(DbError::NotRegular {
            path: path.to_owned(),
            kind: crate::fsutil::describe_type(m.file_type()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(if path.parent().is_some() { path } else { db }, e)),
    }
}

/// The checked facts about a database before it is opened.
struct Checked {
    /// The database file itself (symlinks resolved: SQLite keeps `-wal` next to it).
    real: PathBuf,
    wal_has_data: bool,
}

/// The checks of the module docs, before SQLite opens anything.
fn check_files(path: &Path, store_hint: &str) -> Result<Checked, DbError> {
    // Type first (stat does not block on a FIFO), then the real path.
    let m = std::fs::metadata(path).map_err(|e| io_err(path, e))?;
    if !m.file_type().is_file() {
        return Err(DbError::NotRegular {
            path: path.to_owned(),
            kind: crate::fsutil::describe_type(m.file_type()),
        });
    }
    let real = std::fs::canonicalize(path).map_err(|e| io_err(path, e))?;
    let (head, m) = read_head(&real, 100)?;
    if m.len() == 0 {
        return Err(DbError::Empty {
            path: path.to_owned(),
        });
    }
    let damaged = |reason: String| DbError::Damaged {
        path: path.to_owned(),
        reason,
    };
    if head.len() < 100 || &head[..16] != b"SQLite format 3\0" {
        return Err(damaged("its header is not SQLite's".to_owned()));
    }
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(damaged(format!("invalid page size {page_size}")));
    }
    if m.len() < page_size {
        // SQLite would take it for an empty database, and delete a -wal or journal.
        return Err(damaged(format!(
            "{} bytes, less than one page of {page_size}",
            m.len()
        )));
    }
    let journal = sibling(&real, "-journal");
    if let Some(len) = companion(&journal, path)? {
        // A journal is hot when its header is live; a zeroed or empty one (journal_mode
        // PERSIST / TRUNCATE leftovers) is not.
        if len > 0 {
            let (jh, _) = read_head(&journal, 28)?;
            if jh.iter().any(|&b| b != 0) {
                return Err(DbError::HotJournal {
                    journal,
                    store_hint: store_hint.to_owned(),
                });
            }
        }
    }
    // A WAL shorter than its 32-byte header plus one frame holds no commit.
    let wal_has_data = companion(&sibling(&real, "-wal"), path)?.is_some_and(|n| n > 32);
    Ok(Checked { real, wal_has_data })
}

/// A last line of defence under the checks above: while a [`guard::ReadOnly`] is held on
/// this thread, SQLite's Unix VFS opens every file `O_RDONLY | O_NONBLOCK` (never
/// `O_CREAT`), cannot unlink, and skips the `fchown` it otherwise does as root on every
/// `-wal` it opens (which changes the file's ctime, and its owner when the WAL's owner
/// differs from the database's). Installed once through SQLite's documented
/// `xSetSystemCall`; outside a guard (other threads, other connections) every call goes
/// to the original function unchanged.
mod guard {
    #![allow(unsafe_code)]
    use rusqlite::ffi;
    use std::cell::Cell;
    use std::ffi::{CStr, c_char, c_int};
    use std::sync::OnceLock;

    thread_local! {
        static ACTIVE: Cell<u32> = const { Cell::new(0) };
    }

    type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_int) -> c_int;
    type FchownFn = unsafe extern "C" fn(c_int, libc::uid_t, libc::gid_t) -> c_int;
    type UnlinkFn = unsafe extern "C" fn(*const c_char) -> c_int;

    // The originals, stored before any wrapper is installed (so a wrapper never runs
    // without them).
    static ORIG_OPEN: OnceLock<OpenFn> = OnceLock::new();
    static ORIG_FCHOWN: OnceLock<FchownFn> = OnceLock::new();
    static ORIG_UNLINK: OnceLock<UnlinkFn> = OnceLock::new();
    static INSTALLED: OnceLock<bool> = OnceLock::new();

    fn active() -> bool {
        ACTIVE.with(|a| a.get() > 0)
    }

    fn set_errno(e: c_int) {
        // SAFETY: errno is a thread-local int; each libc names its accessor differently.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        unsafe {
            *libc::__errno_location() = e
        };
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        unsafe {
            *libc::__error() = e
        };
    }

    unsafe extern "C" fn ro_open(path: *const c_char, flags: c_int, mode: c_int) -> c_int {
        let flags = if active() {
            let write =
                libc::O_RDWR | libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_EXCL;
            (flags & !write) | libc::O_RDONLY | libc::O_NONBLOCK
        } else {
            flags
        };
        match ORIG_OPEN.get() {
            // SAFETY: the function SQLite itself would have called, with its arguments.
            Some(f) => unsafe { f(path, flags, mode) },
            None => {
                set_errno(libc::EIO);
                -1
            }
        }
    }

    unsafe extern "C" fn ro_fchown(fd: c_int, uid: libc::uid_t, gid: libc::gid_t) -> c_int {
        if active() {
            return 0;
        }
        match ORIG_FCHOWN.get() {
            // SAFETY: as above.
            Some(f) => unsafe { f(fd, uid, gid) },
            None => {
                set_errno(libc::EIO);
                -1
            }
        }
    }

    unsafe extern "C" fn ro_unlink(path: *const c_char) -> c_int {
        if active() {
            set_errno(libc::EPERM);
            return -1;
        }
        match ORIG_UNLINK.get() {
            // SAFETY: as above.
            Some(f) => unsafe { f(path) },
            None => {
                set_errno(libc::EIO);
                -1
            }
        }
    }

    /// Installs the wrappers (once per process). False when SQLite's Unix VFS does not
    /// allow it; the caller then refuses to open anything.
    pub fn install() -> bool {
        *INSTALLED.get_or_init(|| {
            // SAFETY: sqlite3_vfs_find returns a static VFS object or null. The
            // xGetSystemCall / xSetSystemCall methods are SQLite's documented way to
            // wrap the Unix VFS's system calls (shared by every `unix*` VFS); the
            // function types are the ones SQLite declares for "open", "fchown" and
            // "unlink" (`int(const char*,int,int)`, `int(int,uid_t,gid_t)`,
            // `int(const char*)`).
            unsafe {
                let vfs = ffi::sqlite3_vfs_find(c"unix".as_ptr());
                if vfs.is_null() || (*vfs).iVersion < 3 {
                    return false;
                }
                let (Some(get), Some(set)) = ((*vfs).xGetSystemCall, (*vfs).xSetSystemCall) else {
                    return false;
                };
                let orig = |name: &CStr| get(vfs, name.as_ptr());
                let (Some(o), Some(f), Some(u)) = (orig(c"open"), orig(c"fchown"), orig(c"unlink"))
                else {
                    return false;
                };
                let _ = ORIG_OPEN.set(std::mem::transmute::<unsafe extern "C" fn(), OpenFn>(o));
                let _ = ORIG_FCHOWN.set(std::mem::transmute::<unsafe extern "C" fn(), FchownFn>(f));
                let _ = ORIG_UNLINK.set(std::mem::transmute::<unsafe extern "C" fn(), UnlinkFn>(u));
                let wrap: [(&CStr, unsafe extern "C" fn()); 3] = [
                    (
                        c"open",
                        std::mem::transmute::<OpenFn, unsafe extern "C" fn()>(ro_open),
                    ),
                    (
                        c"fchown",
                        std::mem::transmute::<FchownFn, unsafe extern "C" fn()>(ro_fchown),
                    ),
                    (
                        c"unlink",
                        std::mem::transmute::<UnlinkFn, unsafe extern "C" fn()>(ro_unlink),
                    ),
                ];
                wrap.iter()
                    .all(|(name, f)| set(vfs, name.as_ptr(), Some(*f)) == ffi::SQLITE_OK)
            }
        })
    }

    /// While alive, SQLite calls on this thread cannot create, write, unlink or chown.
    #[derive(Debug)]
    pub struct ReadOnly(());

    impl ReadOnly {
        pub fn new() -> Self {
            ACTIVE.with(|a| a.set(a.get() + 1));
            ReadOnly(())
        }
    }

    impl Drop for ReadOnly {
        fn drop(&mut self) {
            ACTIVE.with(|a| a.set(a.get().saturating_sub(1)));
        }
    }
}

fn open_mode(real: &Path, mode: OpenMode) -> Result<Connection, rusqlite::Error> {
    if !guard::install() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some("SQLite's Unix VFS cannot be made read-only here".to_owned()),
        ));
    }
    let _ro = guard::ReadOnly::new();
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let c = match mode {
        OpenMode::Immutable => {
            Connection::open_with_flags(format!("file:{}?immutable=1", uri_path(real)), flags)?
        }
        OpenMode::WalPrivateIndex => {
            let c = Connection::open_with_flags(
                format!("file:{}?vfs=unix-none", uri_path(real)),
                flags,
            )?;
            // Before anything reads the file: the wal-index then lives in heap memory.
            c.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            c.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
            c
        }
    };
    c.pragma_update(None, "query_only", true)?;
    // Opening is lazy: the first read is what fails on a file that is not a database.
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(c)
}

/// Opens the database read-only, as described in the module docs. `store_hint` is
/// ` --store DIR` for commands in error messages (empty for the machine's store).
pub(crate) fn open_checked(
    path: &Path,
    store_hint: &str,
) -> Result<(Connection, OpenMode), DbError> {
    let ck = check_files(path, store_hint)?;
    let mode = if ck.wal_has_data {
        OpenMode::WalPrivateIndex
    } else {
        OpenMode::Immutable
    };
    let conn = open_mode(&ck.real, mode).map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            DbError::Damaged {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::CannotOpen
                && std::fs::File::open(sibling(&ck.real, "-wal"))
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied) =>
        {
            DbError::PermissionDenied {
                path: sibling(&ck.real, "-wal"),
                blocked: None,
                error: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            }
        }
        e => DbError::Open {
            path: path.to_owned(),
            error: e,
        },
    })?;
    let _ro = guard::ReadOnly::new();
    for table in ["ValidPaths", "Refs"] {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| DbError::Read {
                path: path.to_owned(),
                error: e,
            })?;
        if n == 0 {
            return Err(DbError::Foreign {
                path: path.to_owned(),
                missing: table,
            });
        }
    }
    Ok((conn, mode))
}

/// [`open_checked`] with no store hint.
pub(crate) fn open(path: &Path) -> Result<(Connection, OpenMode), DbError> {
    open_checked(path, "")
}

/// `(dev, ino, size, mtime, mtime_ns, ctime, ctime_ns)` of a file.
type FileStamp = (u64, u64, u64, i64, i64, i64, i64);

/// Identity, size and times of the database and its `-wal`: equal before and after a
/// read means no writer changed them in between.
fn fingerprint(path: &Path) -> Vec<Option<FileStamp>> {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    [real.clone(), sibling(&real, "-wal")]
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p).ok().map(|m| {
                (
                    m.dev(),
                    m.ino(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            })
        })
        .collect()
}

/// Opens the database and reads the whole graph, again (up to three times) when a
/// writer changed the files during the read.
pub(crate) fn load_graph(path: &Path, store_hint: &str) -> Result<(Graph, OpenMode), DbError> {
    const TRIES: usize = 3;
    let mut last_err = None;
    for _ in 0..TRIES {
        let before = fingerprint(path);
        let result = open_checked(path, store_hint)
            .and_then(|(c, mode)| read_graph(&c, path).map(|g| (g, mode)));
        let changed = fingerprint(path) != before;
        match result {
            Ok(r) if !changed => return Ok(r),
            // A read torn by a concurrent checkpoint can fail: that is a change too.
            Err(e) if !changed => return Err(e),
            Ok(_) => {}
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err
        .filter(|e| !matches!(e, DbError::Read { .. } | DbError::Open { .. }))
        .unwrap_or(DbError::Changing {
            path: path.to_owned(),
            tries: TRIES,
        }))
}

/// Maps database ids (sparse after garbage collection) to dense indices.
enum IdMap {
    Direct(Vec<u32>),
    Sorted(Vec<i64>),
}

impl IdMap {
    fn new(ids: Vec<i64>) -> Self {
        let max = ids.last().copied().unwrap_or(0).max(0) as usize;
        if max <= ids.len() * 4 + 1024 {
            let mut t = vec![u32::MAX; max + 1];
            for (i, &id) in ids.iter().enumerate() {
                if id >= 0 {
                    t[id as usize] = i as u32;
                }
            }
            IdMap::Direct(t)
        } else {
            IdMap::Sorted(ids)
        }
    }

    fn get(&self, id: i64) -> Option<u32> {
        match self {
            IdMap::Direct(t) => usize::try_from(id)
                .ok()
                .and_then(|i| t.get(i))
                .copied()
                .filter(|&x| x != u32::MAX),
            IdMap::Sorted(ids) => ids.binary_search(&id).ok().map(|i| i as u32),
        }
    }
}

/// Reads every valid path, its NAR size and references (and, when the store has them,
/// derivation outputs and derivers for the garbage collector's rules) in one sequential
/// scan per table.
pub(crate) fn read_graph(conn: &Connection, path: &Path) -> Result<Graph, DbError> {
    let _ro = guard::ReadOnly::new();
    let rd = |error| DbError::Read {
        path: path.to_owned(),
        error,
    };
    // One read transaction: every table is read from the same snapshot even while Nix
    // writes (a GC between two SELECTs could otherwise leave references to paths that are
    // gone). Dropped, i.e. rolled back, at the end: nothing is written.
    let _snapshot = conn.unchecked_transaction().map_err(rd)?;
    let count = |sql: &str| -> Result<usize, DbError> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as usize)
            .map_err(rd)
    };
    // `max(rowid)` is O(1); the counts are only capacity hints.
    let hint_paths = count("SELECT coalesce(max(id), 0) FROM ValidPaths")?;
    let hint_refs = count("SELECT coalesce(max(rowid), 0) FROM Refs")?;
    let mut b = GraphBuilder::with_capacity(hint_paths, hint_refs);
    let mut ids: Vec<i64> = Vec::with_capacity(hint_paths);
    {
        // Rows come in id order (the INTEGER PRIMARY KEY is the rowid).
        let mut stmt = conn
            .prepare("SELECT id, path, narSize FROM ValidPaths")
            .map_err(rd)?;
        let mut rows = stmt.query([]).map_err(rd)?;
        while let Some(row) = rows.next().map_err(rd)? {
            let id: i64 = row.get(0).map_err(rd)?;
            let p = row
                .get_ref(1)
                .map_err(rd)?
                .as_str()
                .map_err(|e| rd(e.into()))?;
            let nar: Option<i64> = row.get(2).map_err(rd)?;
            b.push_path(p, nar.unwrap_or(0).max(0) as u64);
            ids.push(id);
        }
    }
    let ids = IdMap::new(ids);
    {
        let mut stmt = conn
            .prepare("SELECT referrer, reference FROM Refs")
            .map_err(rd)?;
        let mut rows = stmt.query([]).map_err(rd)?;
        while let Some(row) = rows.next().map_err(rd)? {
            let a: i64 = row.get(0).map_err(rd)?;
            let r: i64 = row.get(1).map_err(rd)?;
            if let (Some(a), Some(r)) = (ids.get(a), ids.get(r)) {
                b.push_ref(a, r);
            }
        }
    }
    read_derivation_facts(conn, &ids, &mut b).map_err(rd)?;
    Ok(b.finish())
}

/// What [`read_closure`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Closure {
    /// Every path reachable from the roots, sorted by path, as `nix path-info` would
    /// give it: `path`, `nar_size`, `references` (full paths, sorted, self references
    /// kept), `nar_hash` (as the database keeps it, `sha256:<base16>`), `deriver`,
    /// `signatures` and `ca`; `closure_size` is not computed.
    pub(crate) paths: Vec<PathInfo>,
    /// Roots that are not valid paths in this database.
    pub(crate) missing_roots: Vec<StorePath>,
}

/// The closure of `roots` only (a store can hold 500k paths; a push needs a few
/// thousand): each root by the `path` index, then its references breadth-first, one
/// indexed query per path, all from one read snapshot. Nothing is written.
/// Every path in it is checked to be a store path under `store_dir`: a database that
/// lists anything else is damaged ([`DbError::BadPath`]), and nothing of it is read.
pub(crate) fn read_closure(
    conn: &Connection,
    db: &Path,
    roots: &[StorePath],
    store_dir: &str,
) -> Result<Closure, DbError> {
    let _ro = guard::ReadOnly::new();
    let rd = |error| DbError::Read {
        path: db.to_owned(),
        error,
    };
    let _snapshot = conn.unchecked_transaction().map_err(rd)?;
    let mut by_path = conn
        .prepare("SELECT id, narSize FROM ValidPaths WHERE path = ?1")
        .map_err(rd)?;
    let mut refs_of = conn
        .prepare(
            "SELECT v.id, v.path, v.narSize FROM Refs r JOIN ValidPaths v ON v.id = r.reference \
             WHERE r.referrer = ?1",
        )
        .map_err(rd)?;
    let checked = |path: &str| {
        StorePath::new(path, store_dir).map_err(|error| DbError::BadPath {
            path: db.to_owned(),
            error,
        })
    };
    let info = |path: StorePath, nar: Option<i64>| PathInfo {
        valid: true,
        nar_size: nar.unwrap_or(0).max(0) as u64,
        ..PathInfo::invalid(path)
    };
    // id -> index in `nodes`; `nodes[i].0` is the id.
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut nodes: Vec<(i64, PathInfo)> = Vec::new();
    let mut out = Closure::default();
    for root in roots {
        let found: Option<(i64, Option<i64>)> = by_path
            .query_row([root.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(rd)?;
        match found {
            Some((id, nar)) => {
                if let std::collections::hash_map::Entry::Vacant(v) = index.entry(id) {
                    v.insert(nodes.len());
                    nodes.push((id, info(root.clone(), nar)));
                }
            }
            None => out.missing_roots.push(root.clone()),
        }
    }
    let mut next = 0;
    while next < nodes.len() {
        let id = nodes[next].0;
        let mut refs = Vec::new();
        let mut rows = refs_of.query([id]).map_err(rd)?;
        while let Some(row) = rows.next().map_err(rd)? {
            let rid: i64 = row.get(0).map_err(rd)?;
            let rpath: String = row.get(1).map_err(rd)?;
            let rpath = checked(&rpath)?;
            let nar: Option<i64> = row.get(2).map_err(rd)?;
            if let std::collections::hash_map::Entry::Vacant(v) = index.entry(rid) {
                v.insert(nodes.len());
                nodes.push((rid, info(rpath.clone(), nar)));
            }
            refs.push(rpath);
        }
        refs.sort();
        nodes[next].1.references = refs;
        next += 1;
    }
    // What a narinfo needs besides: the NAR hash (`sha256:<base16>` in the database),
    // deriver, signatures and content address.
    let mut details = conn
        .prepare("SELECT hash, deriver, sigs, ca FROM ValidPaths WHERE id = ?1")
        .map_err(rd)?;
    for (id, p) in &mut nodes {
        let (hash, deriver, sigs, ca): (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = details
            .query_row([*id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(rd)?;
        p.nar_hash = hash.filter(|h| !h.is_empty());
        p.deriver = deriver
            .filter(|d| !d.is_empty())
            .map(|d| checked(&d))
            .transpose()?;
        p.signatures = sigs
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        p.ca = ca.filter(|c| !c.is_empty());
    }
    out.paths = nodes.into_iter().map(|(_, p)| p).collect();
    out.paths.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The NAR hash the database records for each of `paths` (`sha256:...` as Nix stores
/// it; `None` for a path it does not list), in one read snapshot. Nothing is written.
pub(crate) fn nar_hashes(
    conn: &Connection,
    db: &Path,
    paths: &[&str],
) -> Result<Vec<Option<String>>, DbError> {
    let _ro = guard::ReadOnly::new();
    let rd = |error| DbError::Read {
        path: db.to_owned(),
        error,
    };
    let _snapshot = conn.unchecked_transaction().map_err(rd)?;
    let mut q = conn
        .prepare("SELECT hash FROM ValidPaths WHERE path = ?1")
        .map_err(rd)?;
    paths
        .iter()
        .map(
            |p| match q.query_row([p], |r| r.get::<_, Option<String>>(0)) {
                Ok(h) => Ok(h.filter(|h| !h.is_empty())),
                Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
                Err(e) => Err(rd(e)),
            },
        )
        .collect()
}

/// `DerivationOutputs` and derivers, needed for `keep-derivations` / `keep-outputs`.
/// Skipped entirely (one probe) on stores that have none.
fn read_derivation_facts(
    conn: &Connection,
    ids: &IdMap,
    b: &mut GraphBuilder,
) -> Result<(), rusqlite::Error> {
    let any: Option<i64> = conn
        .query_row("SELECT drv FROM DerivationOutputs LIMIT 1", [], |r| {
            r.get(0)
        })
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if any.is_none() {
        return Ok(());
    }
    // Paths are looked up by their 32-character hash part, borrowed from the graph's
    // arena: no string is allocated per path.
    let key = |p: &str| -> Option<[u8; 32]> {
        let h = crate::storepath::base_name(p).as_bytes().get(..32)?;
        let mut k = [0u8; 32];
        k.copy_from_slice(h);
        Some(k)
    };
    let facts = {
        let mut index: HashMap<[u8; 32], u32> = HashMap::with_capacity(b.len());
        for i in 0..b.len() as u32 {
            if let Some(k) = key(b.path(i)) {
                index.insert(k, i);
            }
        }
        let find = |p: &str| {
            key(p)
                .and_then(|k| index.get(&k).copied())
                .filter(|&i| b.path(i) == p)
        };
        let mut deriver = vec![u32::MAX; b.len()];
        let mut stmt =
            conn.prepare("SELECT id, deriver FROM ValidPaths WHERE deriver IS NOT NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let d = row.get_ref(1)?.as_str().unwrap_or("");
            if let (Some(i), Some(di)) = (ids.get(id), find(d)) {
                deriver[i as usize] = di;
            }
        }
        let mut stmt = conn.prepare("SELECT drv, path FROM DerivationOutputs")?;
        let mut rows = stmt.query([])?;
        let mut facts = Vec::new();
        while let Some(row) = rows.next()? {
            let drv: i64 = row.get(0)?;
            let out = row.get_ref(1)?.as_str().unwrap_or("");
            if let (Some(d), Some(o)) = (ids.get(drv), find(out)) {
                facts.push((d, o, deriver[o as usize] == d));
            }
        }
        facts
    };
    for (d, o, is) in facts {
        b.push_drv_output(d, o, is);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_dense_and_sparse() {
        let dense = IdMap::new(vec![1, 4, 7]);
        assert!(matches!(dense, IdMap::Direct(_)));
        let sparse = IdMap::new(vec![1, 4, 9_000_000]);
        assert!(matches!(sparse, IdMap::Sorted(_)));
        for m in [&dense, &sparse] {
            assert_eq!(m.get(1), Some(0));
            assert_eq!(m.get(4), Some(1));
            assert_eq!(m.get(2), None);
            assert_eq!(m.get(-1), None);
        }
        assert_eq!(dense.get(7), Some(2));
        assert_eq!(sparse.get(9_000_000), Some(2));
    }

    /// A store database with `rows` (`'@NAME` standing for `'` and
    /// [`StorePath::fake`]`(NAME)`), opened read-only.
    fn closure_db(dir: &Path, rows: &str) -> (Connection, PathBuf) {
        let p = dir.join("db.sqlite");
        let zeros = format!("'/nix/store/{}-", "0".repeat(crate::storepath::HASH_LEN));
        {
            let c = Connection::open(&p).unwrap_or_else(|e| panic!("{e}"));
            let sql = format!(
                "CREATE TABLE ValidPaths (id integer primary key, path text unique, narSize integer, deriver text,
                   hash text, sigs text, ca text);
                 CREATE TABLE Refs (referrer integer, reference integer);
                 {}
                 PRAGMA journal_mode=wal;",
                rows.replace("'@", &zeros)
            );
            c.execute_batch(&sql).unwrap_or_else(|e| panic!("{e}"));
        }
        let (conn, _) = open(&p).unwrap_or_else(|e| panic!("{e}"));
        (conn, p)
    }

    #[test]
    fn reads_only_the_closure_of_the_roots() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (conn, p) = closure_db(
            d.path(),
            "INSERT INTO ValidPaths (id, path, narSize, deriver) VALUES (1, '@top', 30, NULL), (2, '@mid', 20, NULL),
               (3, '@leaf', NULL, NULL), (4, '@other', 5, NULL), (5, '@top2', 7, NULL);
             UPDATE ValidPaths SET hash = 'sha256:00ff', sigs = 'k-1:AAAA k-2:BBBB', deriver = '@top.drv' WHERE id = 1;
             INSERT INTO Refs VALUES (1, 2), (1, 3), (2, 3), (2, 2), (4, 3), (5, 2);",
        );
        let roots = ["top", "top2", "gone"].map(StorePath::fake);
        let c = read_closure(&conn, &p, &roots, "/nix/store").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.missing_roots, [StorePath::fake("gone")]);
        let got: Vec<(&str, u64, Vec<&str>)> = c
            .paths
            .iter()
            .map(|n| {
                (
                    n.path.name(),
                    n.nar_size,
                    n.references.iter().map(StorePath::name).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("leaf", 0, vec![]),
                ("mid", 20, vec!["leaf", "mid"]),
                ("top", 30, vec!["leaf", "mid"]),
                ("top2", 7, vec!["mid"]),
            ],
            "`other` is not in the closure; self references kept"
        );
        // What a narinfo needs comes along.
        let top = c.paths.iter().find(|p| p.path.name() == "top").unwrap();
        assert_eq!(top.nar_hash.as_deref(), Some("sha256:00ff"));
        assert_eq!(top.signatures, ["k-1:AAAA", "k-2:BBBB"]);
        assert_eq!(top.deriver, Some(StorePath::fake("top.drv")));
        assert_eq!(top.ca, None);
    }

    /// A damaged database listing something that is not a store path — which push-cache
    /// would otherwise read a NAR from, `..` and all — is an error naming the database
    /// and the entry; no closure is returned.
    #[test]
    fn a_closure_through_an_entry_that_is_no_store_path_is_an_error() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for bad in ["/nix/store/..", "/etc/shadow", "/nix/store/x/../../etc"] {
            let (conn, p) = closure_db(
                d.path(),
                &format!(
                    "INSERT INTO ValidPaths (id, path, narSize) VALUES (1, '@top', 30), (2, '{bad}', 1);
                     INSERT INTO Refs VALUES (1, 2);"
                ),
            );
            let e = read_closure(&conn, &p, &[StorePath::fake("top")], "/nix/store").unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, DbError::BadPath { .. }), "{text}");
            assert!(
                text.contains(&p.display().to_string()) && text.contains("is not a store path"),
                "{text}"
            );
            drop(conn);
            std::fs::remove_file(&p).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn reads_a_database_with_sparse_ids_read_only() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("db.sqlite");
        {
            let c = Connection::open(&p).unwrap_or_else(|e| panic!("{e}"));
            c.execute_batch(
                "CREATE TABLE ValidPaths (id integer primary key, path text, narSize integer, deriver text);
                 CREATE TABLE Refs (referrer integer, reference integer);
                 CREATE TABLE DerivationOutputs (drv integer, id text, path text);
                 INSERT INTO ValidPaths VALUES (5, '/nix/store/a', 10, NULL), (9000000, '/nix/store/b', NULL, NULL);
                 INSERT INTO Refs VALUES (5, 9000000), (5, 5), (9000000, 77);
                 PRAGMA journal_mode=wal;",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let (conn, mode) = open(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode, OpenMode::Immutable);
        let g = read_graph(&conn, &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.len(), 2);
        assert_eq!(
            (g.nar_size(0), g.nar_size(1)),
            (10, 0),
            "NULL narSize is 0, as Nix reads it"
        );
        assert_eq!(g.references(0), [1], "self reference dropped");
        assert!(
            g.references(1).is_empty(),
            "a reference to a missing id is ignored"
        );
    }
}
