//! The local Nix store, read fast and exactly.
//!
//! [`load`] reads every valid path with its NAR size and references into a flat
//! [`graph::Graph`] — straight from the SQLite database, strictly read-only ([`db`]),
//! or through `nix path-info --all --json` ([`pathinfo`]) for a remote store and for the
//! machine's store when its database may not be read — and finds the GC roots
//! ([`roots`]). The [`Source`] used is always recorded, so a report can say where
//! its numbers came from. A store that does not exist is [`Source::Missing`], not an
//! error: reporting it is the caller's job.

pub(crate) mod db;
pub(crate) mod graph;
pub(crate) mod location;
pub(crate) mod pathinfo;
pub(crate) mod roots;

use crate::cmd::Runner;
use crate::nixcli::{Nix, NixError};
use crate::storepath::StorePath;
use graph::Graph;
use location::{StoreKind, StoreLocation};
use roots::GcRoot;
use std::path::PathBuf;

/// Where the numbers came from: cache-analytics' JSON `source`, its `kind` one of
/// `sqlite`, `nix-path-info`, `missing`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// The SQLite database, opened read-only.
    Sqlite {
        /// The `db.sqlite` that was read.
        database: PathBuf,
        /// `immutable` or `wal-private-index`: how it was opened, see [`db::OpenMode`].
        mode: db::OpenMode,
    },
    /// `nix path-info --all --json`.
    NixPathInfo {
        /// The command line that was run, shell-quoted.
        command: String,
        /// Why the database was not read directly, when it was tried.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// There is no store database at this location.
    Missing {
        /// Where the database was looked for.
        database: PathBuf,
    },
}

impl Source {
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::Sqlite { database, mode } => format!(
                "store database {} (read-only, {})",
                database.display(),
                match mode {
                    db::OpenMode::Immutable => "immutable",
                    db::OpenMode::WalPrivateIndex => "with its -wal, private wal-index",
                }
            ),
            Source::NixPathInfo {
                command,
                reason: None,
            } => format!("`{command}`"),
            Source::NixPathInfo {
                command,
                reason: Some(r),
            } => format!("`{command}` (the database could not be read: {r})"),
            Source::Missing { database } => format!("no store database at {}", database.display()),
        }
    }
}

/// Which source to use: also the `--source` value of push-cache and cache-analytics
/// (one set of names for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SourcePref {
    /// The database of a local store; `nix path-info` for a remote store, or for the
    /// machine's store when its database may not be read.
    #[default]
    Auto,
    /// Only the database (an error when it cannot be read; `db` is accepted too).
    #[value(alias = "db")]
    Database,
    /// Only `nix path-info` (what a non-root user on an old daemon gets).
    Nix,
}

/// The one rule both tools read a store by ([`load`] for cache-analytics, push-cache's
/// closure): the database first, unless `--source nix`; when the database cannot be
/// read, `nix path-info` instead only under `--source auto`, and only where letting Nix
/// open the store does no harm.
impl SourcePref {
    /// Whether the database is read at all.
    pub(crate) fn tries_database(self) -> bool {
        self != SourcePref::Nix
    }

    /// After the database failed: ask `nix path-info`? `nix_may_open` says whether Nix
    /// may open this store without harm (for a report: only the machine's store refusing
    /// this user, never a damaged, foreign or chroot database Nix would write to; for a
    /// push: always, since `nix copy` opens it anyway).
    pub(crate) fn falls_back(self, nix_may_open: bool) -> bool {
        self == SourcePref::Auto && nix_may_open
    }
}

/// Reads the closure of `roots` from the database of the store Nix uses here
/// (`NIX_REMOTE`, as `nix copy` will), or says why it cannot: the store is not
/// local, has no database, or a root is not valid in it.
pub(crate) fn closure_from_db(
    roots: &[StorePath],
) -> Result<std::collections::BTreeMap<StorePath, crate::nixcli::PathInfo>, String> {
    let remote = std::env::var("NIX_REMOTE").ok();
    let loc = StoreLocation::parse(remote.as_deref());
    if loc.kind != StoreKind::Local {
        return Err(format!("the store `{}` is not local", loc.display()));
    }
    let dbp = loc.db_path();
    if !dbp.is_file() {
        return Err(format!("there is no store database at {}", dbp.display()));
    }
    let (conn, _) = db::open(&dbp).map_err(|e| e.to_string())?;
    let closure =
        db::read_closure(&conn, &dbp, roots, &loc.store_dir).map_err(|e| e.to_string())?;
    if let Some(r) = closure.missing_roots.first() {
        return Err(format!("{r} is not a valid path in {}", dbp.display()));
    }
    Ok(closure
        .paths
        .into_iter()
        .map(|i| (i.path.clone(), i))
        .collect())
}

/// Why a store could not be read (one that does not exist is [`Source::Missing`], not
/// an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database of a local store could not be read. Nix is asked instead only when
    /// it is the machine's store refusing this user (under [`SourcePref::Auto`]); a
    /// damaged, foreign or changing database, a chroot store or `--source database`
    /// end here.
    #[error(transparent)]
    Db(#[from] db::DbError),
    // `error` is shown, not chained as a source: `{:#}` would print it twice.
    #[error("{error}{}{}", .db_error.as_ref().map(|e| format!(" (tried because the database could not be read: {e})")).unwrap_or_default(), .hint.as_deref().unwrap_or_default())]
    /// `nix path-info` (or `nix --version` before it) gave no answer.
    Nix {
        /// What went wrong with Nix.
        error: Box<NixError>,
        /// Why the database was not read instead, when it was tried.
        db_error: Option<String>,
        /// What to try instead, when the `--store` argument looks like a mistake.
        hint: Option<String>,
    },
}

/// A loaded store.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) source: Source,
    pub(crate) graph: Graph,
    /// GC roots to valid paths, with the index of the path each keeps.
    pub(crate) roots: Vec<(GcRoot, u32)>,
    /// False when the store has no GC roots we can see (a remote store).
    pub(crate) roots_known: bool,
    /// GC-root directories (or entries) this user could not read: roots there are
    /// missing from `roots`.
    pub(crate) unreadable_roots: Vec<roots::Unreadable>,
}

/// Reads the store at `loc`.
///
/// Under [`SourcePref::Auto`] the database of a local store is read directly; `nix
/// path-info` is asked instead only where that is safe and useful: a remote store, or
/// the machine's own store when this user may not read its database (Nix then goes
/// through the daemon). A local database that is damaged, empty, foreign or behind a
/// hot journal is an error, never a reason to let Nix open it (Nix would write to it).
pub(crate) fn load(
    loc: &StoreLocation,
    pref: SourcePref,
    runner: &Runner,
) -> Result<Store, StoreError> {
    let dbp = loc.db_path();
    let store_hint = match &loc.uri {
        Some(u) => format!(" --store {}", crate::cmd::shell_quote(u)),
        None => String::new(),
    };
    let missing = loc.kind == StoreKind::Local
        && matches!(std::fs::symlink_metadata(&dbp), Err(e)
            if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR));
    let (graph, source) = if missing {
        (Graph::default(), Source::Missing { database: dbp })
    } else {
        let db_result = if loc.kind == StoreKind::Local && pref.tries_database() {
            Some(db::load_graph(&dbp, &store_hint))
        } else {
            None
        };
        match db_result {
            Some(Ok((g, mode))) => (
                g,
                Source::Sqlite {
                    database: dbp,
                    mode,
                },
            ),
            Some(Err(e)) if !pref.falls_back(e.is_permission_denied() && is_machine_store(loc)) => {
                return Err(e.into());
            }
            other => {
                let db_error = match other {
                    Some(Err(e)) => Some(e.to_string()),
                    _ => None,
                };
                let fail = |error: NixError| StoreError::Nix {
                    error: Box::new(error),
                    db_error: db_error.clone(),
                    hint: bare_directory_hint(loc),
                };
                let private = private_state(loc, &dbp)?;
                let uri = private.as_ref().map(|(u, _)| u.clone()).or(loc.uri.clone());
                let nix = Nix::detect(runner.clone(), uri).map_err(fail)?;
                let (g, command) = pathinfo::read_graph(&nix, &loc.store_dir).map_err(fail)?;
                drop(private);
                (
                    g,
                    Source::NixPathInfo {
                        command,
                        reason: db_error,
                    },
                )
            }
        }
    };
    let roots_known = loc.kind == StoreKind::Local;
    let (roots, unreadable_roots) = if roots_known && !graph.is_empty() {
        let found = roots::find_roots_reporting(&loc.state_dir(), &loc.store_dir, &|_| true);
        (resolve_roots(&graph, found.roots), found.unreadable)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Store {
        source,
        graph,
        roots,
        roots_known,
        unreadable_roots,
    })
}

/// Where `nix path-info` may read a local store without writing to it: Nix opens a
/// local store's database read-write (it creates the schema in an empty file,
/// checkpoints and deletes a WAL, rolls back a journal, makes `temproots` and per-user
/// directories), so it is pointed at a private copy of the database directory instead
/// (`local?root=ROOT&state=COPY`, every Nix since 2.4 takes `state`); the store's files
/// stay where they are, read only. `None` for a store Nix reaches through the daemon (the
/// machine's store, for a user who is not root) or one that is not local. The copy goes
/// when the returned directory is dropped.
fn private_state(
    loc: &StoreLocation,
    dbp: &std::path::Path,
) -> Result<Option<(String, tempfile::TempDir)>, StoreError> {
    if loc.kind != StoreKind::Local
        || (is_machine_store(loc) && !rustix::process::geteuid().is_root())
    {
        return Ok(None);
    }
    let io = |error: std::io::Error| db::DbError::Io {
        path: dbp.to_owned(),
        error,
    };
    // Only regular files (through a link, as SQLite opens them): a FIFO or a device is
    // never opened, let alone copied.
    match std::fs::metadata(dbp) {
        Ok(m) if m.is_file() => {}
        Ok(m) => {
            return Err(db::DbError::NotRegular {
                path: dbp.to_owned(),
                kind: crate::fsutil::describe_type(m.file_type()),
            }
            .into());
        }
        Err(e) => return Err(io(e).into()),
    }
    let tmp = tempfile::Builder::new()
        .prefix("cache-analytics-state-")
        .tempdir()
        .map_err(io)?;
    let copy = tmp.path().join("db");
    std::fs::create_dir(&copy).map_err(io)?;
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-journal", "schema"] {
        let from = dbp.with_file_name(name);
        if std::fs::metadata(&from).is_ok_and(|m| m.is_file()) {
            std::fs::copy(&from, copy.join(name)).map_err(io)?;
        }
    }
    let mut uri = format!(
        "local?root={}&state={}",
        loc.root.display(),
        tmp.path().display()
    );
    if loc.store_dir != crate::storepath::DEFAULT_STORE_DIR {
        uri.push_str(&format!("&store={}", loc.store_dir));
    }
    Ok(Some((uri, tmp)))
}

/// The machine's store under `/`, which a non-root user reaches through the daemon.
fn is_machine_store(loc: &StoreLocation) -> bool {
    loc.kind == StoreKind::Local && loc.root == std::path::Path::new("/")
}

/// Nix reads a `--store` word without `/` or `://` (`chroot`) as a store type, not as a
/// directory: when a directory of that name exists, say how to name it.
fn bare_directory_hint(loc: &StoreLocation) -> Option<String> {
    let uri = loc.uri.as_deref()?;
    if loc.kind != StoreKind::Remote || uri.contains("://") || uri.contains('/') {
        return None;
    }
    let word = uri.split('?').next().unwrap_or(uri);
    std::path::Path::new(word).is_dir().then(|| {
        format!(
            "\n  hint: `--store {uri}` is read as a store type, not a directory; for the chroot store in ./{word} write `--store ./{word}`"
        )
    })
}

/// Keeps the roots whose path is valid, with its index: one pass over the store against
/// the (small) set of rooted paths, instead of an index of the whole store.
fn resolve_roots(graph: &Graph, found: Vec<GcRoot>) -> Vec<(GcRoot, u32)> {
    let mut wanted: std::collections::HashMap<&str, u32> =
        found.iter().map(|r| (r.path.as_str(), u32::MAX)).collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    for (i, p) in graph.paths() {
        if let Some(slot) = wanted.get_mut(p) {
            *slot = i;
        }
    }
    let idx: Vec<u32> = found.iter().map(|r| wanted[r.path.as_str()]).collect();
    found
        .into_iter()
        .zip(idx)
        .filter(|(_, i)| *i != u32::MAX)
        .collect()
}
