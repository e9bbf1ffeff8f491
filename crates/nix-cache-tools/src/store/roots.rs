//! GC roots, found the way Nix's `LocalStore::findRoots` finds them (minus runtime roots,
//! which only Nix can see through /proc):
//!
//! - everything under `STATE/gcroots` and `STATE/profiles`, recursively, where `STATE`
//!   is `ROOT/nix/var/nix` (`ROOT` is `/`, or the directory of a chroot store);
//! - a symlink whose target is in the store directory (`/nix/store/...`, also a file
//!   inside a store path) roots that path;
//! - any other symlink is an indirect root (`gcroots/auto/<hash>` → `/home/u/proj/result`):
//!   when its target exists and is itself a symlink into the store, that link (the
//!   `result` the user can delete) roots the path;
//! - a regular file roots the store path named by its base name;
//! - roots to paths that are not valid are skipped, as Nix skips them.
//!
//! Nothing is opened: directories are listed, links read with `readlink`, other files
//! judged by name, so a FIFO or a device among the roots (or as a link's target) is
//! never read. A directory (or entry) this user may not read is not skipped silently:
//! it is listed in [`FoundRoots::unreadable`], because the roots in it are missing and
//! paths they keep would be counted as garbage.

use std::path::{Path, PathBuf};

/// One GC root: the link to delete to release it, and the store path it keeps.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct GcRoot {
    /// The symlink (or file) that holds the root, as a real filesystem path.
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub link: PathBuf,
    /// The store path it roots.
    pub path: String,
    /// For an indirect root: the link under `gcroots/auto` that points at `link`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::output::lossy_opt_path"
    )]
    pub via: Option<PathBuf>,
}

/// A place under the GC-root directories that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    /// The directory or entry (cache-analytics' JSON `gc.unreadable_roots[].path`).
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub path: PathBuf,
    /// The error, e.g. "Permission denied (os error 13)".
    pub error: String,
}

/// What [`find_roots_reporting`] found.
#[derive(Debug, Clone, Default)]
pub(crate) struct FoundRoots {
    pub(crate) roots: Vec<GcRoot>,
    /// Directories or entries that could not be read: roots there are missing.
    pub(crate) unreadable: Vec<Unreadable>,
}

/// The roots [`find_roots_reporting`] finds, without what could not be read.
#[cfg(test)]
pub(crate) fn find_roots(
    state_dir: &Path,
    store_dir: &str,
    is_valid: &dyn Fn(&str) -> bool,
) -> Vec<GcRoot> {
    find_roots_reporting(state_dir, store_dir, is_valid).roots
}

/// Finds the GC roots of the store whose state directory is `state_dir`, and names
/// what could not be read. `is_valid` says whether a store path is valid in this store.
pub(crate) fn find_roots_reporting(
    state_dir: &Path,
    store_dir: &str,
    is_valid: &dyn Fn(&str) -> bool,
) -> FoundRoots {
    let mut out = Vec::new();
    let mut unreadable = Vec::new();
    for sub in ["gcroots", "profiles"] {
        walk(
            &state_dir.join(sub),
            store_dir,
            is_valid,
            &mut out,
            &mut unreadable,
        );
    }
    // A link found both directly and through another link (a profile generation) is one
    // root; keep the direct finding.
    out.sort_by(|a, b| {
        (&a.link, &a.path, a.via.is_some()).cmp(&(&b.link, &b.path, b.via.is_some()))
    });
    out.dedup_by(|b, a| a.link == b.link && a.path == b.path);
    FoundRoots {
        roots: out,
        unreadable,
    }
}

fn in_store<'a>(target: &'a str, store_dir: &str) -> Option<&'a str> {
    crate::storepath::to_store_path(target, store_dir)
}

fn walk(
    path: &Path,
    store_dir: &str,
    is_valid: &dyn Fn(&str) -> bool,
    out: &mut Vec<GcRoot>,
    unreadable: &mut Vec<Unreadable>,
) {
    let mut note = |p: &Path, e: std::io::Error| {
        // Gone in the meantime (a `result` deleted during the walk) is not a gap.
        if e.kind() != std::io::ErrorKind::NotFound {
            unreadable.push(Unreadable {
                path: p.to_owned(),
                error: e.to_string(),
            });
        }
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return note(path, e),
    };
    let ft = meta.file_type();
    if ft.is_dir() {
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => return note(path, e),
        };
        let mut entries: Vec<PathBuf> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => entries.push(e.path()),
                Err(e) => note(path, e),
            }
        }
        entries.sort();
        for e in entries {
            walk(&e, store_dir, is_valid, out, unreadable);
        }
    } else if ft.is_symlink() {
        let target = match std::fs::read_link(path) {
            Ok(t) => t,
            Err(e) => return note(path, e),
        };
        let target_s = target.to_string_lossy();
        if target_s.starts_with(&format!("{store_dir}/")) {
            if let Some(sp) = in_store(&target_s, store_dir).filter(|p| is_valid(p)) {
                out.push(GcRoot {
                    link: path.to_owned(),
                    path: sp.to_owned(),
                    via: None,
                });
            }
            return;
        }
        // Indirect root: the link's target (resolved like Nix's absPath, lexically).
        let abs = lexical_abs(&target, path.parent().unwrap_or(Path::new("/")));
        let m2 = match std::fs::symlink_metadata(&abs) {
            Ok(m) => m,
            // A stale indirect root (the `result` was deleted) is no root, as for Nix.
            Err(e) => return note(&abs, e),
        };
        if !m2.file_type().is_symlink() {
            return;
        }
        let t2 = match std::fs::read_link(&abs) {
            Ok(t) => t,
            Err(e) => return note(&abs, e),
        };
        let t2 = t2.to_string_lossy();
        if let Some(sp) = in_store(&t2, store_dir).filter(|p| is_valid(p)) {
            out.push(GcRoot {
                link: abs,
                path: sp.to_owned(),
                via: Some(path.to_owned()),
            });
        }
    } else if ft.is_file() {
        let base = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sp = format!("{store_dir}/{base}");
        if crate::storepath::is_store_path(&sp, store_dir) && is_valid(&sp) {
            out.push(GcRoot {
                link: path.to_owned(),
                path: sp,
                via: None,
            });
        }
    }
}

/// `target` made absolute against `dir` and cleaned of `.`/`..` without touching the
/// filesystem (Nix's `absPath` + `canonPath`).
fn lexical_abs(target: &Path, dir: &Path) -> PathBuf {
    let joined = if target.is_absolute() {
        target.to_owned()
    } else {
        dir.join(target)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn direct_indirect_profile_and_invalid_roots() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = t.path().join("nix/var/nix");
        let auto = state.join("gcroots/auto");
        let prof = state.join("profiles/per-user/root");
        std::fs::create_dir_all(&auto).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&prof).unwrap_or_else(|e| panic!("{e}"));
        let a = "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-a";
        let b = "/nix/store/xj5gbkqjpb65ilmdi7a23vdqmcfzgdd1-b";
        let gone = "/nix/store/00000000000000000000000000000000-gone";
        let ok = |p: &str| p == a || p == b;
        symlink(format!("{a}/bin/a"), state.join("gcroots/direct"))
            .unwrap_or_else(|e| panic!("{e}"));
        symlink(gone, state.join("gcroots/invalid")).unwrap_or_else(|e| panic!("{e}"));
        let result = t.path().join("proj/result");
        std::fs::create_dir_all(result.parent().unwrap_or(t.path()))
            .unwrap_or_else(|e| panic!("{e}"));
        symlink(b, &result).unwrap_or_else(|e| panic!("{e}"));
        symlink(&result, auto.join("abc")).unwrap_or_else(|e| panic!("{e}"));
        symlink(t.path().join("proj/dangling"), auto.join("stale"))
            .unwrap_or_else(|e| panic!("{e}"));
        symlink(a, prof.join("profile-1-link")).unwrap_or_else(|e| panic!("{e}"));
        symlink("profile-1-link", prof.join("profile")).unwrap_or_else(|e| panic!("{e}"));
        let roots = find_roots(&state, "/nix/store", &ok);
        let got: Vec<(String, &str)> = roots
            .iter()
            .map(|r| {
                (
                    r.link
                        .strip_prefix(t.path())
                        .unwrap_or(&r.link)
                        .display()
                        .to_string(),
                    r.path.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("nix/var/nix/gcroots/direct".to_owned(), a),
                (
                    "nix/var/nix/profiles/per-user/root/profile-1-link".to_owned(),
                    a
                ),
                ("proj/result".to_owned(), b),
            ]
        );
        assert_eq!(roots[2].via.as_deref(), Some(auto.join("abc").as_path()));
    }
}
