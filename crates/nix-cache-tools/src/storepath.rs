//! Store path names: `/nix/store/<32-char nix32 hash>-<name>`, and [`StorePath`], the
//! checked form in which paths cross module boundaries.

use std::borrow::Borrow;
use std::fmt;

/// The store directory of every standard Nix installation (also of a chroot store,
/// whose files are under `ROOT/nix/store`).
pub const DEFAULT_STORE_DIR: &str = "/nix/store";
/// Characters in a store path's hash part.
pub(crate) const HASH_LEN: usize = 32;

/// The 32-character hash part of a store path or base name, if it has one.
pub fn hash_part(path: &str) -> Option<&str> {
    let base = path.rsplit('/').next().unwrap_or(path);
    let h = base.get(..HASH_LEN)?;
    (base.as_bytes().get(HASH_LEN) == Some(&b'-') && crate::nix32::is_valid(h)).then_some(h)
}

/// The name after `<hash>-`, e.g. `hello-2.12` for `/nix/store/<hash>-hello-2.12`.
pub fn name(path: &str) -> Option<&str> {
    hash_part(path)?;
    let base = path.rsplit('/').next().unwrap_or(path);
    base.get(HASH_LEN + 1..)
}

/// Base name (`<hash>-<name>`) of a full store path.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// True when `path` looks like `<store_dir>/<hash>-<name>` with nothing after.
pub(crate) fn is_store_path(path: &str, store_dir: &str) -> bool {
    path.strip_prefix(store_dir)
        .and_then(|r| r.strip_prefix('/'))
        .is_some_and(|base| {
            !base.contains('/') && hash_part(base).is_some() && base.len() > HASH_LEN + 1
        })
}

/// Cuts `/nix/store/<hash>-name/bin/x` to `/nix/store/<hash>-name`.
pub fn to_store_path<'a>(path: &'a str, store_dir: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(store_dir)?.strip_prefix('/')?;
    let base_len = rest.find('/').unwrap_or(rest.len());
    let full = &path[..store_dir.len() + 1 + base_len];
    is_store_path(full, store_dir).then_some(full)
}

/// A full store path, `<store dir>/<32-character nix32 hash>-<name>` with nothing after
/// the name: checked once, where it enters the program (the store database, Nix's
/// output, a narinfo, the command line), so that whoever holds one can take its parts,
/// and build file names from its base name, without checking again.
///
/// It reads as the `&str` it is (`Deref`, `Borrow<str>`: a map keyed by `StorePath` is
/// looked up with a `&str`) and serializes as that string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct StorePath(String);

/// A string that is not a store path, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}` is not a store path: {reason}")]
pub struct NotAStorePath {
    /// The string, as given.
    pub path: String,
    /// What is wrong (outside the store directory, no hash, ...).
    pub reason: &'static str,
}

impl StorePath {
    /// `path` when it is a store path directly under `store_dir`.
    pub fn new(path: &str, store_dir: &str) -> Result<Self, NotAStorePath> {
        let bad = |reason| NotAStorePath {
            path: path.to_owned(),
            reason,
        };
        let base = path
            .strip_prefix(store_dir)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| bad("not under the store directory"))?;
        Self::check_base(base).map_err(bad)?;
        Ok(StorePath(path.to_owned()))
    }

    /// `<store_dir>/<base>` for a base name (`<hash>-<name>`, as narinfos and
    /// `--json-format 2` give references).
    pub fn from_base_name(base: &str, store_dir: &str) -> Result<Self, NotAStorePath> {
        Self::check_base(base).map_err(|reason| NotAStorePath {
            path: base.to_owned(),
            reason,
        })?;
        Ok(StorePath(format!("{store_dir}/{base}")))
    }

    fn check_base(base: &str) -> Result<(), &'static str> {
        if base.contains('/') {
            return Err("something follows the store path's name");
        }
        if hash_part(base).is_none() {
            return Err("no 32-character nix32 hash at the start of its name");
        }
        let name = &base[HASH_LEN + 1..];
        // Nix's rule for names: these characters only, and not `.` or `..` alone.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "+-._?=".contains(c);
        if name.is_empty() || name.len() > 211 || !name.chars().all(allowed) {
            return Err("its name is empty, too long or has characters Nix does not allow");
        }
        // A leading dot is allowed (by accident from Nix 2.4, officially since the fix for
        // NixOS/nix#912): `.` and `..` are not, nor names whose first dash-separated part
        // is one of them. The most any Nix version accepts is accepted here.
        let first = name.split('-').next().unwrap_or(name);
        if first == "." || first == ".." {
            return Err("its name is `.` or `..` (or starts with `.-` / `..-`)");
        }
        Ok(())
    }

    /// `/nix/store/<32 zeros>-<name>`, for unit tests: paths that sort by name.
    #[cfg(test)]
    pub(crate) fn fake(name: &str) -> Self {
        Self::new(
            &format!("{DEFAULT_STORE_DIR}/{}-{name}", "0".repeat(HASH_LEN)),
            DEFAULT_STORE_DIR,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        base_name(&self.0)
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        &self.base_name()[..HASH_LEN]
    }

    /// The name after `<hash>-`.
    pub fn name(&self) -> &str {
        &self.base_name()[HASH_LEN + 1..]
    }
}

impl std::ops::Deref for StorePath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for StorePath {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for StorePath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for StorePath {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl PartialEq<str> for StorePath {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for StorePath {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for StorePath {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<StorePath> for String {
    fn eq(&self, other: &StorePath) -> bool {
        *self == other.0
    }
}

impl PartialEq<StorePath> for &str {
    fn eq(&self, other: &StorePath) -> bool {
        *self == other.0
    }
}

impl From<StorePath> for String {
    fn from(p: StorePath) -> String {
        p.0
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let p = "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b-1.0";
        assert_eq!(hash_part(p), Some("4qlx2j065zn4jpg4bs70kqq4r8kjliwh"));
        assert_eq!(name(p), Some("b-1.0"));
        assert!(is_store_path(p, DEFAULT_STORE_DIR));
        assert!(!is_store_path("/nix/store/short-x", DEFAULT_STORE_DIR));
        assert_eq!(
            to_store_path(&format!("{p}/bin/b"), DEFAULT_STORE_DIR),
            Some(p)
        );
        assert_eq!(to_store_path("/etc/passwd", DEFAULT_STORE_DIR), None);
    }

    #[test]
    fn a_store_path_is_checked_once_where_it_is_made() {
        let p = StorePath::new(
            "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b-1.0",
            "/nix/store",
        )
        .unwrap();
        assert_eq!(p.hash_part(), "4qlx2j065zn4jpg4bs70kqq4r8kjliwh");
        assert_eq!(p.name(), "b-1.0");
        assert_eq!(p.base_name(), "4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b-1.0");
        assert_eq!(
            StorePath::from_base_name(p.base_name(), "/nix/store").unwrap(),
            p
        );
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        let map: std::collections::BTreeMap<StorePath, u8> = [(p.clone(), 1)].into();
        assert_eq!(map.get(p.as_str()), Some(&1));
        for bad in [
            "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b/bin/x",
            "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-",
            "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-..",
            "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-a b",
            "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x",
            "/nix/store/..",
            "/other/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b",
            "/nix/store4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b",
        ] {
            let e = StorePath::new(bad, "/nix/store").unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("`{bad}` is not a store path: ")),
                "{e}"
            );
        }
        assert!(StorePath::from_base_name("..", "/nix/store").is_err());
        for bad in ["..", ".-x", "..-x", "."] {
            let base = format!("4qlx2j065zn4jpg4bs70kqq4r8kjliwh-{bad}");
            assert!(
                StorePath::from_base_name(&base, "/nix/store").is_err(),
                "{base}"
            );
        }
        // Nix allows a leading dot in a name otherwise.
        for good in [".envrc", "..x", ".a-1.0"] {
            let base = format!("4qlx2j065zn4jpg4bs70kqq4r8kjliwh-{good}");
            assert!(
                StorePath::from_base_name(&base, "/nix/store").is_ok(),
                "{base}"
            );
        }
    }
}
