//! After a push: forget this machine's "not in this cache" answers for what was pushed.
//!
//! Nix keeps narinfo lookups in a SQLite disk cache
//! (`$XDG_CACHE_HOME/nix/binary-cache-v6.sqlite`, else `~/.cache/nix/...`): table
//! `BinaryCaches(id, url, ...)` and `NARs(cache, hashPart, ..., present, timestamp)`,
//! where `present = 0` is a negative answer, trusted for `narinfo-cache-negative-ttl`
//! (an hour by default). A `nix build` right after a push would then still rebuild
//! what was just pushed (NixOS/nix#4028). [`forget_negative`] deletes exactly those
//! rows: negative ones, of this cache URL, for the pushed paths' hash parts. Positive
//! entries and other caches are left alone.

use rusqlite::{Connection, OpenFlags, params};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The narinfo disk cache of the user running this process.
pub fn disk_cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache")))?;
    Some(base.join("nix/binary-cache-v6.sqlite"))
}

/// Deletes the negative lookups of `paths` in the cache `cache_url` from the disk
/// cache at `db`; returns how many there were. A missing disk cache is `Ok(0)`.
pub fn forget_negative(db: &Path, cache_url: &str, paths: &[String]) -> Result<usize, String> {
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
            if let Some(h) = crate::storepath::hash_part(p) {
                n += del
                    .execute(params![h, url, slash])
                    .map_err(|e| format!("{}: {e}", db.display()))?;
            }
        }
    }
    tx.commit().map_err(|e| format!("{}: {e}", db.display()))?;
    Ok(n)
}
