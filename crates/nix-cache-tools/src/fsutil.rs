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

pub fn read_to_string(path: &Path) -> Result<String, FsError> {
    fs::read_to_string(path).map_err(|e| FsError::new("failed to read", path, e))
}

/// Reads a file as bytes; `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FsError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("failed to read", path, e)),
    }
}

/// Replaces `path` with `contents` atomically. An existing file keeps its mode and (when
/// we may set it) owner; a new one gets 0644. Missing parent directories are created.
/// Refuses to replace a symlink.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FsError> {
    write_atomic_mode(path, contents, None)
}

/// Like [`write_atomic`], with an explicit mode for the file (e.g. 0600 for netrc).
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: Option<u32>) -> Result<(), FsError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let existing = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(FsError::new(
                "refusing to write through the symlink",
                path,
                io::Error::other("the target is a symbolic link"),
            ));
        }
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(FsError::new("failed to inspect", path, e)),
    };
    fs::create_dir_all(dir).map_err(|e| FsError::new("failed to create directory", dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}.",
            path.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        ))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| FsError::new("failed to create a temporary file in", dir, e))?;
    tmp.write_all(contents)
        .map_err(|e| FsError::new("failed to write", tmp.path(), e))?;
    let perm_mode = mode
        .or(existing.as_ref().map(|m| m.mode() & 0o7777))
        .unwrap_or(0o644);
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(perm_mode))
        .map_err(|e| FsError::new("failed to set permissions on", tmp.path(), e))?;
    if let Some(m) = &existing {
        // Keep the owner: only possible (and only needed) when we are root.
        let _ = std::os::unix::fs::chown(tmp.path(), Some(m.uid()), Some(m.gid()));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| FsError::new("failed to sync", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| FsError::new("failed to replace", path, e.error))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// An exclusive advisory lock (`flock`) on the directory that holds a file, released on
/// drop. Locking the directory rather than a `<file>.lock` next to it leaves nothing
/// behind in the user's configuration directory, and it also covers the temporary file
/// and the backup written there.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Blocks until the lock on `target`'s directory is held (the directory is created
    /// when missing).
    pub fn acquire(target: &Path) -> Result<Self, FsError> {
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
        match flock(&file, libc::LOCK_EX) {
            Ok(()) => Ok(FileLock { file, path }),
            // NFS emulates flock with POSIX locks, which need a file open for writing:
            // there (and wherever directories cannot be locked) fall back to a lock
            // file next to the target, which every run on that file system then uses.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EBADF | libc::ENOLCK | libc::EINVAL | libc::EOPNOTSUPP)
                ) =>
            {
                Self::acquire_lock_file(target)
            }
            Err(e) => Err(FsError::new("failed to lock", &path, e)),
        }
    }

    fn acquire_lock_file(target: &Path) -> Result<Self, FsError> {
        let mut name = target.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        let path = target.with_file_name(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| FsError::new("failed to open lock file", &path, e))?;
        flock(&file, libc::LOCK_EX).map_err(|e| FsError::new("failed to lock", &path, e))?;
        Ok(FileLock { file, path })
    }

    /// The locked directory (or, where directories cannot be locked, `<target>.lock`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = flock(&self.file, libc::LOCK_UN);
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
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nix.conf");
        let l = FileLock::acquire(&target).unwrap();
        assert_eq!(l.path(), dir.path());
        let f = File::open(l.path()).unwrap();
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
    fn error_names_the_path_and_the_cause_once() {
        let e = read_to_string(Path::new("/nonexistent-dir/x.conf")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert!(chain.contains("`/nonexistent-dir/x.conf`"), "{chain}");
        assert_eq!(chain.matches("os error 2").count(), 1, "{chain}");
    }
}
