//! Reading Nix's SQLite database directly, read-only.
//!
//! Opening order: `mode=ro` first (works as root, and for everyone from Nix 2.22 on,
//! where the WAL files persist); then `immutable=1`, but only when there is no `-wal`
//! file next to the database, i.e. no writer holds changes SQLite would have to merge
//! (with one, an immutable read could miss committed paths). When neither is possible the
//! caller falls back to `nix path-info`.

use super::graph::{Graph, GraphBuilder};
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How the database was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenMode {
    /// `mode=ro`: a normal read-only connection that sees concurrent writers' commits.
    ReadOnly,
    /// `immutable=1`: no locks, no WAL; used only when no `-wal` file exists.
    Immutable,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the store database `{path}` read-only: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot read the store database `{path}`: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
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

fn open_with(path: &Path, param: &str) -> Result<Connection, rusqlite::Error> {
    let uri = format!("file:{}?{param}", uri_path(path));
    let c = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Opening is lazy: the first read is what fails on a WAL database we cannot map.
    c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    Ok(c)
}

/// Opens the database read-only, as described in the module docs.
pub fn open(path: &Path) -> Result<(Connection, OpenMode), DbError> {
    match open_with(path, "mode=ro") {
        Ok(c) => Ok((c, OpenMode::ReadOnly)),
        Err(e) => {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            let wal_has_data = std::fs::metadata(PathBuf::from(wal)).is_ok_and(|m| m.len() > 0);
            if wal_has_data {
                return Err(DbError::Open {
                    path: path.to_owned(),
                    source: e,
                });
            }
            open_with(path, "immutable=1")
                .map(|c| (c, OpenMode::Immutable))
                .map_err(|_| DbError::Open {
                    path: path.to_owned(),
                    source: e,
                })
        }
    }
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
pub fn read_graph(conn: &Connection, path: &Path) -> Result<Graph, DbError> {
    let rd = |source| DbError::Read {
        path: path.to_owned(),
        source,
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
        assert_eq!(mode, OpenMode::ReadOnly);
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
