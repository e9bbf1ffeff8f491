//! Reading Nix's SQLite database directly, read-only.
//!
//! Opening order: `mode=ro` first (works as root, and for everyone from Nix 2.22 on,
//! where the WAL files persist); then `immutable=1`, but only when there is no `-wal`
//! file next to the database, i.e. no writer holds changes SQLite would have to merge
//! (with one, an immutable read could miss committed paths). When neither is possible the
//! caller falls back to `nix path-info`.

use super::graph::{Graph, GraphBuilder};
use crate::nixcli::PathInfo;
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

/// What [`read_closure`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Closure {
    /// Every path reachable from the roots, sorted by path, as `nix path-info` would
    /// give it: `path`, `nar_size` and `references` (full paths, sorted, self references
    /// kept); the other fields are not read.
    pub paths: Vec<PathInfo>,
    /// Roots that are not valid paths in this database.
    pub missing_roots: Vec<String>,
}

/// The closure of `roots` only (a store can hold 500k paths; a push needs a few
/// thousand): each root by the `path` index, then its references breadth-first, one
/// indexed query per path, all from one read snapshot. Nothing is written.
pub fn read_closure(conn: &Connection, db: &Path, roots: &[String]) -> Result<Closure, DbError> {
    let rd = |source| DbError::Read {
        path: db.to_owned(),
        source,
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
    let info = |path: String, nar: Option<i64>| PathInfo {
        path,
        valid: true,
        nar_size: nar.unwrap_or(0).max(0) as u64,
        ..PathInfo::default()
    };
    // id -> index in `nodes`; `nodes[i].0` is the id.
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut nodes: Vec<(i64, PathInfo)> = Vec::new();
    let mut out = Closure::default();
    for root in roots {
        let found: Option<(i64, Option<i64>)> = by_path
            .query_row([root], |r| Ok((r.get(0)?, r.get(1)?)))
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
    out.paths = nodes.into_iter().map(|(_, p)| p).collect();
    out.paths.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
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
    fn reads_only_the_closure_of_the_roots() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = d.path().join("db.sqlite");
        {
            let c = Connection::open(&p).unwrap_or_else(|e| panic!("{e}"));
            c.execute_batch(
                "CREATE TABLE ValidPaths (id integer primary key, path text unique, narSize integer, deriver text);
                 CREATE TABLE Refs (referrer integer, reference integer);
                 INSERT INTO ValidPaths VALUES (1, '/nix/store/top', 30, NULL), (2, '/nix/store/mid', 20, NULL),
                   (3, '/nix/store/leaf', NULL, NULL), (4, '/nix/store/other', 5, NULL), (5, '/nix/store/top2', 7, NULL);
                 INSERT INTO Refs VALUES (1, 2), (1, 3), (2, 3), (2, 2), (4, 3), (5, 2);
                 PRAGMA journal_mode=wal;",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let (conn, _) = open(&p).unwrap_or_else(|e| panic!("{e}"));
        let roots = [
            "/nix/store/top".to_owned(),
            "/nix/store/top2".to_owned(),
            "/nix/store/gone".to_owned(),
        ];
        let c = read_closure(&conn, &p, &roots).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.missing_roots, ["/nix/store/gone"]);
        let got: Vec<(&str, u64, Vec<&str>)> = c
            .paths
            .iter()
            .map(|n| {
                (
                    n.path.as_str(),
                    n.nar_size,
                    n.references.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/nix/store/leaf", 0, vec![]),
                (
                    "/nix/store/mid",
                    20,
                    vec!["/nix/store/leaf", "/nix/store/mid"]
                ),
                (
                    "/nix/store/top",
                    30,
                    vec!["/nix/store/leaf", "/nix/store/mid"]
                ),
                ("/nix/store/top2", 7, vec!["/nix/store/mid"]),
            ],
            "`other` is not in the closure; self references kept"
        );
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
