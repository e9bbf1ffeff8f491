//! Careful file writes: every error names the path, writes are atomic (temp file in the
//! same directory, fsync, rename, directory fsync), permissions and owner are kept, and
//! symlinks are never written through.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The message already includes the I/O error, so it is deliberately not also exposed as
/// the error's `source()`: printing the chain (`{:#}`) would repeat it.
#[derive(Debug, thiserror::Error)]
#[error("{action} `{}`: {io}{hint}", .path.display())]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    pub io: io::Error,
    pub hint: String,
}

impl FsError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => {
                " (permission denied: run as a user who may write there, e.g. with sudo for system files)".to_owned()
            }
            _ if source.raw_os_error() == Some(libc::EROFS) => {
                " (read-only file system: on NixOS or home-manager this file is generated; change the Nix configuration instead)".to_owned()
            }
            _ => String::new(),
        };
        FsError {
            action,
            path: path.to_owned(),
            io: source,
            hint,
        }
    }
}

/// The most any small text file the tools read may hold (nix.conf and its includes,
/// netrc, key files, cache.toml, `nix-cache-info`): far above any real one, and a bound
/// on memory when a path names `/dev/zero` or a multi-gigabyte file.
pub(crate) const MAX_TEXT_FILE: u64 = 4 * 1024 * 1024;

/// Whether [`read_regular`] may open a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    /// Read what a link points to (files Nix reads: includes, key files).
    Symlinks,
    /// Refuse a link at the last component (`O_NOFOLLOW`): files this tool may write
    /// afterwards, where a link swapped in between check and read must not be read.
    NoSymlinks,
}

/// A file read by [`read_regular`]: its bytes and the identity of the very file read
/// (from `fstat` of the descriptor), so a later write can check it replaces that file.
#[derive(Debug, Clone)]
pub(crate) struct ReadFile {
    pub bytes: Vec<u8>,
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// "a FIFO (named pipe)", "a character device", ... for error messages.
pub(crate) fn describe_type(ft: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, ft: fs::FileType) -> FsError {
    FsError::new(
        "refusing to use",
        path,
        io::Error::other(format!(
            "it is {}, not a regular file; only regular files are read or written",
            describe_type(ft)
        )),
    )
}

/// `Err` naming the path and its type when something other than a regular file (or a
/// symlink to one, with `follow`) is at `path`; `Ok(false)` when nothing is there.
pub(crate) fn check_regular_or_missing(path: &Path, follow: Follow) -> Result<bool, FsError> {
    let m = match follow {
        Follow::Symlinks => fs::metadata(path),
        Follow::NoSymlinks => fs::symlink_metadata(path),
    };
    match m {
        Ok(m) if m.file_type().is_file() => Ok(true),
        Ok(m) if m.file_type().is_symlink() => Err(FsError::new(
            "refusing to follow the symlink",
            path,
            io::Error::other("the target is a symbolic link"),
        )),
        Ok(m) => Err(not_regular(path, m.file_type())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::new("failed to inspect", path, e)),
    }
}

/// Reads a regular file of at most `cap` bytes; `Ok(None)` when it does not exist.
///
/// Never blocks and never reads without bound: the file is opened with `O_NONBLOCK`
/// (a FIFO does not wait for a writer), the descriptor is `fstat`ed and anything but a
/// regular file (FIFO, device node such as `/dev/zero`, socket, directory) is an error
/// naming the path and its type; a file larger than `cap` is an error too. With
/// [`Follow::NoSymlinks`] a symlink at `path` is refused by the kernel (`O_NOFOLLOW`),
/// so a link swapped in after a check is never read through.
pub(crate) fn read_regular(
    path: &Path,
    cap: u64,
    follow: Follow,
) -> Result<Option<ReadFile>, FsError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // A cheap look first, so a device is never even opened (opening some has effects).
    if !check_regular_or_missing(path, follow)? {
        return Ok(None);
    }
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if follow == Follow::NoSymlinks {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(FsError::new(
                "refusing to follow the symlink",
                path,
                io::Error::other("the target became a symbolic link"),
            ));
        }
        Err(e) => return Err(FsError::new("failed to read", path, e)),
    };
    let m = file
        .metadata()
        .map_err(|e| FsError::new("failed to inspect", path, e))?;
    if !m.file_type().is_file() {
        return Err(not_regular(path, m.file_type()));
    }
    if m.len() > cap {
        return Err(too_big(path, cap));
    }
    let mut bytes = Vec::with_capacity(m.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FsError::new("failed to read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big(path, cap));
    }
    Ok(Some(ReadFile {
        bytes,
        dev: m.dev(),
        ino: m.ino(),
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
    }))
}

fn too_big(path: &Path, cap: u64) -> FsError {
    FsError::new(
        "refusing to read",
        path,
        io::Error::other(format!(
            "it is larger than {} MiB, far more than such a file ever holds: check that the path is right",
            cap / (1024 * 1024)
        )),
    )
}

/// [`read_regular`] of a text file Nix reads (following symlinks), capped at
/// [`MAX_TEXT_FILE`]; `Ok(None)` when missing.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    Ok(read_regular(path, MAX_TEXT_FILE, Follow::Symlinks)?.map(|f| f.bytes))
}

/// [`read_optional`] as UTF-8 text; a missing file is an error.
pub(crate) fn read_to_string(path: &Path) -> Result<String, FsError> {
    let bytes = read_optional(path)?.ok_or_else(|| {
        FsError::new(
            "failed to read",
            path,
            io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        FsError::new(
            "failed to read",
            path,
            io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
        )
    })
}

/// Replaces `path` with `contents` atomically. An existing file keeps its mode and (when
/// we may set it) owner; a new one gets 0644. Missing parent directories are created.
/// Refuses to replace a symlink or anything that is not a regular file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    write_atomic_mode(path, contents, None)
}

/// Like [`write_atomic`], with an explicit mode for the file (e.g. 0600 for netrc).
pub(crate) fn write_atomic_mode(
    path: &Path,
    contents: &[u8],
    mode: Option<u32>,
) -> Result<(), FsError> {
    replace_file(
        path,
        contents,
        &Replace {
            mode,
            ..Replace::default()
        },
    )
}

/// What [`replace_file`] must find at the path it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Expect {
    /// Whatever regular file is there, or nothing.
    #[default]
    Any,
    /// Nothing: the file did not exist when it was read.
    Missing,
    /// The very file that was read ([`ReadFile::dev`], [`ReadFile::ino`]).
    Same { dev: u64, ino: u64 },
}

impl Expect {
    /// What a later write must find after `read` (`None`: the file did not exist).
    pub(crate) fn after_read(read: Option<&ReadFile>) -> Self {
        match read {
            Some(f) => Expect::Same {
                dev: f.dev,
                ino: f.ino,
            },
            None => Expect::Missing,
        }
    }
}

/// Options of [`replace_file`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Replace {
    /// Permission bits; default: the replaced file's, else 0644.
    pub mode: Option<u32>,
    /// `(uid, gid)`; default: the replaced file's. Set only where we may (root).
    pub owner: Option<(u32, u32)>,
    pub expect: Expect,
}

/// The temporary files this module writes next to `name`: `.NAME.nct-XXXXXXXX.tmp`.
fn temp_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut t = std::ffi::OsString::from(".");
    t.push(name);
    t.push(format!(
        ".nct-{:08x}.tmp",
        (u64::from(std::process::id()) << 20
            ^ u64::from(nanos)
            ^ N.fetch_add(1, Ordering::Relaxed) << 40)
            & 0xffff_ffff
    ));
    t
}

/// Whether `entry` is a temporary file a write of `name` left behind: ours only,
/// `.NAME.nct-XXXXXXXX.tmp` with 8 lowercase hex digits ([`temp_name`]). A looser match
/// (any `.NAME.WORD.tmp`) would delete a user's own `.nix.conf.backup.tmp`.
fn is_temp_of(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|e| e.strip_prefix(name))
        .and_then(|e| e.strip_prefix(".nct-"))
        .and_then(|e| e.strip_suffix(".tmp"))
        .is_some_and(|h| {
            h.len() == 8
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// Removes temporary files a killed earlier run left next to `path` (between creating
/// its temporary file and renaming it). Call it holding the [`FileLock`] of `path`:
/// then no other run is writing one. Returns the files removed.
pub(crate) fn remove_stale_temps(path: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    for e in rd.flatten() {
        let entry = e.file_name();
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file
            && is_temp_of(&entry.to_string_lossy(), &name)
            && fs::remove_file(e.path()).is_ok()
        {
            removed.push(e.path());
        }
    }
    removed
}

fn rx(action: &'static str, path: &Path, e: rustix::io::Errno) -> FsError {
    FsError::new(action, path, io::Error::from_raw_os_error(e.raw_os_error()))
}

/// What is at `name` in `dir` (not following a symlink): `None` when nothing is.
fn stat_at(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    path: &Path,
) -> Result<Option<rustix::fs::Stat>, FsError> {
    match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(rx("failed to inspect", path, e)),
    }
}

/// `dev_t` / `ino_t` differ in width between platforms.
#[allow(clippy::unnecessary_cast)]
fn same_id(st: &rustix::fs::Stat, dev: u64, ino: u64) -> bool {
    st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

fn check_expected(
    st: Option<&rustix::fs::Stat>,
    expect: Expect,
    path: &Path,
) -> Result<(), FsError> {
    let changed = || {
        FsError::new(
            "refusing to replace",
            path,
            io::Error::other(
                "it changed since it was read (another program replaced or created it): nothing was written; run again",
            ),
        )
    };
    if let Some(st) = st {
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        if ft == rustix::fs::FileType::Symlink {
            return Err(FsError::new(
                "refusing to write through the symlink",
                path,
                io::Error::other("the target is a symbolic link"),
            ));
        }
        if ft != rustix::fs::FileType::RegularFile {
            let meta = fs::symlink_metadata(path)
                .map_err(|e| FsError::new("failed to inspect", path, e))?;
            return Err(not_regular(path, meta.file_type()));
        }
    }
    match (expect, st) {
        (Expect::Any, _) | (Expect::Missing, None) => Ok(()),
        (Expect::Same { dev, ino }, Some(st)) if same_id(st, dev, ino) => Ok(()),
        _ => Err(changed()),
    }
}

/// Replaces `path` with `contents` atomically, relative to a descriptor of its
/// directory: a temporary file created there (`O_EXCL`, `O_NOFOLLOW`), written, given
/// its mode and owner, synced, checked against [`Replace::expect`] and renamed over the
/// old name (a rename replaces a symlink's name, never writes through it), then the
/// directory is synced. Only a regular file or nothing may be at `path`; a symlink, a
/// device node, a FIFO, a socket or a directory is an error naming its type, and
/// nothing is written. On any error the temporary file is removed.
pub(crate) fn replace_file(path: &Path, contents: &[u8], opts: &Replace) -> Result<(), FsError> {
    use rustix::fs::{Mode, OFlags};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        FsError::new(
            "refusing to write",
            path,
            io::Error::other("the path has no file name"),
        )
    })?;
    // A quick look before creating directories for nothing.
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(FsError::new(
                "refusing to write through the symlink",
                path,
                io::Error::other("the target is a symbolic link"),
            ));
        }
        Ok(m) if !m.file_type().is_file() => return Err(not_regular(path, m.file_type())),
        _ => {}
    }
    fs::create_dir_all(dir).map_err(|e| FsError::new("failed to create directory", dir, e))?;
    let dirfd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| rx("failed to open the directory", dir, e))?;
    let before = stat_at(&dirfd, name, path)?;
    check_expected(before.as_ref(), opts.expect, path)?;
    let tmp = temp_name(name);
    let tmp_path = dir.join(&tmp);
    let fd = rustix::fs::openat(
        &dirfd,
        &tmp,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| rx("failed to create a temporary file in", dir, e))?;
    let result = (|| {
        let mut f = File::from(fd);
        f.write_all(contents)
            .map_err(|e| FsError::new("failed to write", &tmp_path, e))?;
        let perm_mode = opts
            .mode
            .or(before.as_ref().map(|st| st.st_mode & 0o7777))
            .unwrap_or(0o644);
        let owner = opts
            .owner
            .or(before.as_ref().map(|st| (st.st_uid, st.st_gid)));
        if let Some((uid, gid)) = owner {
            // Only possible (and only needed) when we are root; before the mode, since
            // chown clears set-id bits.
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        f.set_permissions(fs::Permissions::from_mode(perm_mode))
            .map_err(|e| FsError::new("failed to set permissions on", &tmp_path, e))?;
        f.sync_all()
            .map_err(|e| FsError::new("failed to sync", &tmp_path, e))?;
        // The file replaced must still be the one read.
        check_expected(stat_at(&dirfd, name, path)?.as_ref(), opts.expect, path)?;
        rustix::fs::renameat(&dirfd, &tmp, &dirfd, name)
            .map_err(|e| rx("failed to replace", path, e))
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dirfd, &tmp, rustix::fs::AtFlags::empty());
        return result;
    }
    let _ = rustix::fs::fsync(&dirfd);
    Ok(())
}

/// Deletes `path`, but only when it is still what `expect` says (the file read).
pub(crate) fn remove_file_checked(path: &Path, expect: Expect) -> Result<(), FsError> {
    use rustix::fs::{Mode, OFlags};
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default();
    let dirfd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| rx("failed to open the directory", dir, e))?;
    let st = stat_at(&dirfd, name, path)?;
    if st.is_none() {
        return Ok(());
    }
    check_expected(st.as_ref(), expect, path)?;
    rustix::fs::unlinkat(&dirfd, name, rustix::fs::AtFlags::empty())
        .map_err(|e| rx("failed to remove", path, e))?;
    let _ = rustix::fs::fsync(&dirfd);
    Ok(())
}

/// An exclusive advisory lock (`flock`) on the directory that holds a file, released on
/// drop. Locking the directory rather than a `<file>.lock` next to it leaves nothing
/// behind in the user's configuration directory, and it also covers the temporary file
/// and the backup written there.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
}

impl FileLock {
    /// Blocks until the lock on `target`'s directory is held (the directory is created
    /// when missing). When another process holds it for more than a moment, `on_wait`
    /// is called once with the locked path (the caller says so: the wait cannot wait
    /// for a report) and the wait goes on.
    pub(crate) fn acquire(target: &Path, on_wait: LockWait) -> Result<Self, FsError> {
        let path = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        fs::create_dir_all(&path)
            .map_err(|e| FsError::new("failed to create directory", &path, e))?;
        // A directory opens read-only, which is all flock needs: this works in a
        // directory we may not write to, and the write itself then names the problem.
        let file = File::open(&path)
            .map_err(|e| FsError::new("failed to open the directory to lock", &path, e))?;
        match lock_telling_when_waiting(&file, &path, on_wait) {
            Ok(()) => Ok(FileLock { file }),
            // NFS emulates flock with POSIX locks, which need a file open for writing:
            // there (and wherever directories cannot be locked) fall back to a lock
            // file next to the target, which every run on that file system then uses.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADF | libc::ENOLCK | libc::EINVAL | libc::EOPNOTSUPP)
                ) =>
            {
                Self::acquire_lock_file(target, on_wait)
            }
            Err(e) => Err(FsError::new("failed to lock", &path, e)),
        }
    }

    fn acquire_lock_file(target: &Path, on_wait: LockWait) -> Result<Self, FsError> {
        let mut name = target.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let path = target.with_file_name(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| FsError::new("failed to open lock file", &path, e))?;
        lock_telling_when_waiting(&file, &path, on_wait)
            .map_err(|e| FsError::new("failed to lock", &path, e))?;
        Ok(FileLock { file })
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

/// How long a lock may be busy before the wait is announced.
const LOCK_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Called once when a lock is busy for more than a moment, with the path locked.
pub(crate) type LockWait = fn(&Path);

/// Takes the lock; when another process holds it for more than a moment, calls
/// `on_wait` and keeps waiting.
fn lock_telling_when_waiting(file: &File, path: &Path, on_wait: LockWait) -> io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match flock(file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                if start.elapsed() >= LOCK_NOTICE_AFTER {
                    on_wait(path);
                    return flock(file, libc::LOCK_EX);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

#[allow(unsafe_code)]
fn flock(file: &File, op: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor we own for the duration of the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_keeps_mode_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/nix.conf");
        write_atomic(&p, b"a = b\n").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"a = b\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"c = d\n").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        let link = dir.path().join("link.conf");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = write_atomic(&link, b"x").unwrap_err();
        assert!(e.to_string().contains("link.conf"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"c = d\n");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn reads_only_regular_files_never_through_a_swapped_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nix.conf");
        fs::write(&f, "a = b\n").unwrap();
        let secret = dir.path().join("root-only");
        fs::write(&secret, "SECRET").unwrap();
        let r = read_regular(&f, 100, Follow::NoSymlinks).unwrap().unwrap();
        assert_eq!(r.bytes, b"a = b\n");
        // The file is swapped for a link between a check and the read: the read (the
        // kernel, through O_NOFOLLOW) refuses, whatever the check saw before.
        fs::remove_file(&f).unwrap();
        std::os::unix::fs::symlink(&secret, &f).unwrap();
        let e = read_regular(&f, 100, Follow::NoSymlinks).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        // Includes may be links: they are followed when asked.
        assert_eq!(
            read_regular(&f, 100, Follow::Symlinks)
                .unwrap()
                .unwrap()
                .bytes,
            b"SECRET"
        );
        // Size cap and special files.
        assert!(read_regular(&secret, 3, Follow::Symlinks).is_err());
        let e = read_regular(Path::new("/dev/zero"), 100, Follow::Symlinks).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        assert!(
            read_regular(&dir.path().join("none"), 1, Follow::NoSymlinks)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn replace_refuses_a_file_that_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nix.conf");
        fs::write(&f, "old\n").unwrap();
        let read = read_regular(&f, 100, Follow::NoSymlinks).unwrap();
        let expect = Expect::after_read(read.as_ref());
        // Another program replaces the file after we read it.
        let other = dir.path().join("other");
        fs::write(&other, "theirs\n").unwrap();
        fs::rename(&other, &f).unwrap();
        let opts = Replace {
            expect,
            ..Replace::default()
        };
        let e = replace_file(&f, b"ours\n", &opts).unwrap_err();
        assert!(e.to_string().contains("changed since it was read"), "{e}");
        assert_eq!(fs::read(&f).unwrap(), b"theirs\n");
        assert!(remove_file_checked(&f, expect).is_err());
        // A file that appeared where none was read is not replaced either.
        let g = dir.path().join("new.conf");
        let missing = Expect::after_read(None);
        fs::write(&g, "appeared\n").unwrap();
        let opts = Replace {
            expect: missing,
            ..Replace::default()
        };
        assert!(replace_file(&g, b"x", &opts).is_err());
        // No temporary file is left by the refusals.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["new.conf", "nix.conf"]);
        // And a device node is never replaced by a regular file.
        let e = replace_file(Path::new("/dev/null"), b"x", &Replace::default()).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
    }

    #[test]
    fn stale_temps_of_this_file_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("nix.conf");
        // Ours, and names a user may give their own files, which stay.
        let theirs = [
            ".netrc.nct-0badf00d.tmp",
            ".nix.conf.20240101.tmp",
            ".nix.conf.Ab12Cd.tmp",
            ".nix.conf.backup.tmp",
            ".nix.conf.keep",
            ".nix.conf.nct-0BADF00D.tmp",
            ".nix.conf.nct-notes.tmp",
        ];
        for n in theirs.iter().chain([&".nix.conf.nct-0badf00d.tmp"]) {
            fs::write(dir.path().join(n), "x").unwrap();
        }
        assert_eq!(remove_stale_temps(&f).len(), 1);
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, theirs);
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nix.conf");
        let l = FileLock::acquire(&target, |_| {}).unwrap();
        let f = File::open(dir.path()).unwrap();
        use std::os::fd::AsRawFd;
        #[allow(unsafe_code)]
        // SAFETY: non-blocking flock probe on an owned fd.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(r, -1);
        drop(l);
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        assert_eq!(r, 0);
        // Nothing is left in the directory: no `nix.conf.lock`.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_busy_lock_is_told_to_the_caller_once_and_then_taken() {
        static WAITED_ON: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nix.conf");
        let held = FileLock::acquire(&target, |_| panic!("the lock was free")).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(LOCK_NOTICE_AFTER * 2);
            drop(held);
        });
        let taken = FileLock::acquire(&target, |p| WAITED_ON.lock().unwrap().push(p.into()));
        releaser.join().unwrap();
        assert!(taken.is_ok());
        assert_eq!(*WAITED_ON.lock().unwrap(), [dir.path().to_owned()]);
    }

    #[test]
    fn error_names_the_path_and_the_cause_once() {
        let e = read_to_string(Path::new("/nonexistent-dir/x.conf")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert!(chain.contains("`/nonexistent-dir/x.conf`"), "{chain}");
        assert_eq!(chain.matches("os error 2").count(), 1, "{chain}");
    }
}
