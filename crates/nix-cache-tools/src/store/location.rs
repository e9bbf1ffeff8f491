//! Where a store lives, from what the user passes as Nix's `--store`.
//!
//! Nix rules (2.8 → today): a string without `://` that contains a `/` is a directory and
//! means the chroot store `local?root=DIR`; `local?root=DIR` says the same explicitly;
//! `auto`, `local`, `daemon` and `unix://...` are the machine's store under `/`. A chroot
//! store keeps its database at `DIR/nix/var/nix/db/db.sqlite` and its GC roots under
//! `DIR/nix/var/nix/gcroots`, while its store paths are still named `/nix/store/...`.

use std::path::{Path, PathBuf};

/// How the store is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum StoreKind {
    /// A local store on this machine (possibly a chroot store under `root`): its database
    /// and GC roots can be read directly.
    Local,
    /// Anything else Nix can open (`ssh://`, `file://`, `https://`...): only `nix
    /// path-info` can tell what it holds, and it has no GC roots we can see.
    Remote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoreLocation {
    /// What to pass to `nix --store` (`None`: Nix's default store).
    pub(crate) uri: Option<String>,
    pub(crate) kind: StoreKind,
    /// `/` for the machine's store, `DIR` for a chroot store.
    pub(crate) root: PathBuf,
    /// The logical store directory, `/nix/store`.
    pub(crate) store_dir: String,
}

impl StoreLocation {
    /// Reads a `--store` argument the way Nix does. `None` is the default store.
    pub(crate) fn parse(arg: Option<&str>) -> Self {
        let local = |root: PathBuf, uri: Option<String>| StoreLocation {
            uri,
            kind: StoreKind::Local,
            root,
            store_dir: crate::storepath::DEFAULT_STORE_DIR.to_owned(),
        };
        let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
            return local(PathBuf::from("/"), None);
        };
        let (base, query) = arg.split_once('?').unwrap_or((arg, ""));
        let root_param = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "root")
            .map(|(_, v)| PathBuf::from(v));
        if !arg.contains("://") && base.contains('/') {
            // A directory: Nix makes it absolute against the current directory.
            let dir = absolute(Path::new(base));
            return local(dir, Some(arg.to_owned()));
        }
        match base {
            "auto" | "local" | "daemon" => local(
                root_param
                    .map(|r| absolute(&r))
                    .unwrap_or_else(|| "/".into()),
                Some(arg.to_owned()),
            ),
            b if b.starts_with("unix://") => local(PathBuf::from("/"), Some(arg.to_owned())),
            _ => StoreLocation {
                uri: Some(arg.to_owned()),
                kind: StoreKind::Remote,
                root: PathBuf::from("/"),
                store_dir: crate::storepath::DEFAULT_STORE_DIR.to_owned(),
            },
        }
    }

    /// `ROOT/nix/var/nix`.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.root.join("nix/var/nix")
    }

    /// `ROOT/nix/var/nix/db/db.sqlite`.
    pub(crate) fn db_path(&self) -> PathBuf {
        self.state_dir().join("db/db.sqlite")
    }

    /// Where the store's files really are: `ROOT/nix/store`.
    pub(crate) fn real_store_dir(&self) -> PathBuf {
        self.root.join(self.store_dir.trim_start_matches('/'))
    }

    /// How to name this store to the user.
    pub(crate) fn display(&self) -> String {
        match &self.uri {
            Some(u) => u.clone(),
            None => "the default store (/nix/store)".to_owned(),
        }
    }
}

/// `p` made absolute against the current directory and cleaned of `.` and `..` without
/// touching the filesystem, as Nix's `absPath` does (`./s` → `/cwd/s`, not `/cwd/./s`).
fn absolute(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(p),
            Err(_) => return p.to_owned(),
        }
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_nix() {
        let d = StoreLocation::parse(None);
        assert_eq!(
            (d.kind, d.root.as_path()),
            (StoreKind::Local, Path::new("/"))
        );
        assert_eq!(d.db_path(), Path::new("/nix/var/nix/db/db.sqlite"));
        let c = StoreLocation::parse(Some("/tmp/s"));
        assert_eq!(c.root, Path::new("/tmp/s"));
        assert_eq!(c.db_path(), Path::new("/tmp/s/nix/var/nix/db/db.sqlite"));
        assert_eq!(c.uri.as_deref(), Some("/tmp/s"));
        let q = StoreLocation::parse(Some("local?root=/tmp/q"));
        assert_eq!(
            (q.kind, q.root.as_path()),
            (StoreKind::Local, Path::new("/tmp/q"))
        );
        assert_eq!(StoreLocation::parse(Some("daemon")).root, Path::new("/"));
        assert_eq!(
            StoreLocation::parse(Some("unix:///run/x.sock")).kind,
            StoreKind::Local
        );
        assert_eq!(
            StoreLocation::parse(Some("https://cache.nixos.org")).kind,
            StoreKind::Remote
        );
        assert_eq!(
            StoreLocation::parse(Some("ssh-ng://builder")).kind,
            StoreKind::Remote
        );
        assert_eq!(StoreLocation::parse(Some("auto")).root, Path::new("/"));
    }

    #[test]
    fn relative_directories_are_made_clean_and_absolute() {
        let cwd = std::env::current_dir().unwrap_or_else(|e| panic!("{e}"));
        let c = StoreLocation::parse(Some("./s"));
        assert_eq!(c.root, cwd.join("s"));
        assert_eq!(c.uri.as_deref(), Some("./s"));
        assert_eq!(
            StoreLocation::parse(Some("/tmp/a/./b/../s")).root,
            Path::new("/tmp/a/s")
        );
        assert_eq!(
            StoreLocation::parse(Some("local?root=/tmp/./q")).root,
            Path::new("/tmp/q")
        );
    }
}
