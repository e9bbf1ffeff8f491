//! After a push: forget this machine's "not in this cache" answers for what was pushed.
//!
//! Nix keeps narinfo lookups in a SQLite disk cache
//! (`$XDG_CACHE_HOME/nix/binary-cache-v6.sqlite`, `-v7` on Nix 2.34, else under
//! `~/.cache/nix`): table
//! `BinaryCaches(id, url, ...)` and `NARs(cache, hashPart, ..., present, timestamp)`,
//! where `present = 0` is a negative answer, trusted for `narinfo-cache-negative-ttl`
//! (an hour by default). A `nix build` right after a push would then still rebuild
//! what was just pushed (NixOS/nix#4028). [`forget_negative`] deletes exactly those
//! rows: negative ones, of this cache URL, for the pushed paths' hash parts. Positive
//! entries and other caches are left alone.

use crate::storepath::StorePath;
use rusqlite::{Connection, OpenFlags, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory of the narinfo disk cache of the user running this process
/// (`$XDG_CACHE_HOME/nix`, else `~/.cache/nix`).
pub(crate) fn disk_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))?;
    Some(base.join("nix"))
}

/// The disk cache files Nix versions use: `binary-cache-v6.sqlite` (Nix 2.8 to 2.2x),
/// `binary-cache-v7.sqlite` (Nix 2.34; same `BinaryCaches` / `NARs` tables).
const DISK_CACHE_FILES: [&str; 2] = ["binary-cache-v7.sqlite", "binary-cache-v6.sqlite"];

/// [`forget_negative_in`] for every disk cache file in `dir` (what each installed Nix
/// version keeps); the total.
pub fn forget_negative(dir: &Path, cache_url: &str, paths: &[StorePath]) -> Result<usize, String> {
    let mut n = 0;
    for f in DISK_CACHE_FILES {
        n += forget_negative_in(&dir.join(f), cache_url, paths)?;
    }
    Ok(n)
}

/// Deletes the negative lookups of `paths` in the cache `cache_url` from the disk
/// cache at `db`; returns how many there were. A missing disk cache is `Ok(0)`.
fn forget_negative_in(db: &Path, cache_url: &str, paths: &[StorePath]) -> Result<usize, String> {
    if !db.is_file() {
        return Ok(0);
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let url = crate::binarycache::strip_store_params(cache_url).trim_end_matches('/');
    let tx = conn
        .unchecked_transaction()
        .map_err(|e| format!("{}: {e}", db.display()))?;
    let mut n = 0;
    {
        let mut del = tx
            .prepare(
                "DELETE FROM NARs WHERE present = 0 AND hashPart = ?1 AND cache IN \
                 (SELECT id FROM BinaryCaches WHERE url = ?2 OR url = ?3)",
            )
            .map_err(|e| format!("{}: {e}", db.display()))?;
        let slash = format!("{url}/");
        for p in paths {
            n += del
                .execute(params![p.hash_part(), url, slash])
                .map_err(|e| format!("{}: {e}", db.display()))?;
        }
    }
    tx.commit().map_err(|e| format!("{}: {e}", db.display()))?;
    Ok(n)
}
