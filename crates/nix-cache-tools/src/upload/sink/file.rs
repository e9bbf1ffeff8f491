//! A `file://` cache: a directory, written by rename.
use super::*;

/// How old a spool file must be to count as left behind by an interrupted push.
const STALE_SPOOL_AGE: Duration = Duration::from_secs(3600);

/// A `file://` cache: files appear by rename, so a reader never sees half a file.
#[derive(Debug)]
pub struct FileSink {
    url: String,
    dir: PathBuf,
}

impl FileSink {
    /// The cache at `url`, whose directory is `dir`: its `nar/` is made, and spool files
    /// an interrupted push left there over an hour ago are removed.
    pub fn new(url: &str, dir: &Path) -> Result<Self, SinkError> {
        let io = |source| SinkError::Io {
            path: dir.join("nar").display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir.join("nar")).map_err(io)?;
        let sink = FileSink {
            url: url.to_owned(),
            dir: dir.to_owned(),
        };
        sink.remove_stale_spools(STALE_SPOOL_AGE);
        Ok(sink)
    }

    /// Removes `.push-cache-*.tmp` files older than `age` from the cache and its `nar/`:
    /// what an interrupted push (Ctrl-C, SIGKILL) left half-written. Younger ones may be
    /// another push's, under way, and are left alone. Returns how many went.
    fn remove_stale_spools(&self, age: Duration) -> usize {
        let mut n = 0;
        for d in [self.dir.clone(), self.dir.join("nar")] {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let old = e
                    .metadata()
                    .ok()
                    .filter(|m| m.is_file())
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|a| a >= age);
                if name.starts_with(".push-cache-")
                    && name.ends_with(".tmp")
                    && old
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    n += 1;
                }
            }
        }
        n
    }

    fn io(&self, rel: &str, source: io::Error) -> SinkError {
        SinkError::Io {
            path: self.dir.join(rel).display().to_string(),
            source,
        }
    }

    fn write_new(&self, rel: &str, bytes: &[u8]) -> Result<(), SinkError> {
        let target = self.dir.join(rel);
        let parent = target.parent().unwrap_or(&self.dir);
        let mut f = tempfile::Builder::new()
            .prefix(".push-cache-")
            .suffix(".tmp")
            .tempfile_in(parent)
            .map_err(|e| self.io(rel, e))?;
        f.write_all(bytes).map_err(|e| self.io(rel, e))?;
        set_readable(f.as_file()).map_err(|e| self.io(rel, e))?;
        f.persist(&target).map_err(|e| self.io(rel, e.error))?;
        Ok(())
    }
}

/// `Err` once the deadline has passed: nothing is written after it.
fn past(deadline: Instant, what: &Path) -> Result<(), SinkError> {
    if Instant::now() >= deadline {
        return Err(SinkError::Deadline(what.display().to_string()));
    }
    Ok(())
}

/// Cache files are for everyone to read (a tempfile starts as 0600).
fn set_readable(f: &std::fs::File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
}

impl Sink for FileSink {
    fn url(&self) -> &str {
        &self.url
    }

    fn spool(&self, size_hint: u64) -> Result<Spool, SinkError> {
        Spool::new(self.dir.join("nar"), size_hint).map_err(|e| self.io("nar", e))
    }

    fn put_spooled(
        &self,
        spool: Spool,
        rel: &str,
        _content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        past(deadline, &self.dir.join(rel))?;
        match spool.file {
            Some(f) => {
                set_readable(f.as_file()).map_err(|e| self.io(rel, e))?;
                f.persist(self.dir.join(rel))
                    .map_err(|e| self.io(rel, e.error))?;
                Ok(())
            }
            None => self.write_new(rel, &spool.mem),
        }
    }

    fn put_bytes(
        &self,
        rel: &str,
        bytes: &[u8],
        _content_type: &str,
        deadline: Instant,
    ) -> Result<(), SinkError> {
        past(deadline, &self.dir.join(rel))?;
        self.write_new(rel, bytes)
    }

    fn ensure_cache_info(&self, store_dir: &str, _deadline: Instant) -> Result<bool, SinkError> {
        if self.dir.join("nix-cache-info").exists() {
            return Ok(false);
        }
        self.write_new("nix-cache-info", cache_info_text(store_dir).as_bytes())?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spools_an_interrupted_push_left_are_removed_when_old() {
        let d = tempfile::tempdir().unwrap();
        let sink = FileSink::new("file:///x", d.path()).unwrap();
        std::fs::write(d.path().join("nar/.push-cache-AbCd12.tmp"), "half").unwrap();
        std::fs::write(d.path().join("nar/keep.nar.zst"), "a NAR").unwrap();
        // Young: maybe another push's, under way.
        assert_eq!(sink.remove_stale_spools(STALE_SPOOL_AGE), 0);
        assert_eq!(sink.remove_stale_spools(Duration::ZERO), 1);
        let left: Vec<_> = std::fs::read_dir(d.path().join("nar"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["keep.nar.zst"]);
    }
}
