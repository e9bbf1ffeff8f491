//! Store path names: `/nix/store/<32-char nix32 hash>-<name>`.

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
}
