//! What to push: the store paths for the arguments (paths, result links, installables,
//! stdin), and their closure, from the store database or `nix path-info`.

use super::*;

/// The closure of `roots` with NAR sizes and references (hashes and signatures are not
/// needed: `nix copy` reads those itself). From the store database when `pref` allows
/// and it opens read-only: no Nix process, and only the closure is read. Else (a non-root
/// user before Nix 2.22, a store that is not local, a root the database does not know)
/// from `nix path-info --json --recursive`, whose answer then decides.
pub(super) fn read_closure(
    roots: &[StorePath],
    pref: SourcePref,
    nix: &Nix,
) -> Result<BTreeMap<StorePath, PathInfo>, PushError> {
    // `nix copy` opens the store anyway: falling back to Nix does no harm here.
    if pref.tries_database() {
        match crate::store::closure_from_db(roots) {
            Ok(nodes) => return Ok(nodes),
            Err(why) if !pref.falls_back(true) => return Err(PushError::Database(why)),
            Err(_) => {}
        }
    }
    let mut nodes = BTreeMap::new();
    for i in nix.path_info(roots, true)? {
        if !i.valid {
            return Err(PushError::InvalidPath { path: i.path });
        }
        nodes.insert(i.path.clone(), i);
    }
    Ok(nodes)
}

/// Store paths for the arguments, stdin lines or `./result*` links.
pub(super) fn resolve_roots(opts: &Options, nix: &Nix) -> Result<Vec<StorePath>, PushError> {
    let mut args: Vec<String> = opts.args.clone();
    if let Some(lines) = &opts.stdin_paths {
        args.extend(
            lines
                .iter()
                .map(|l| l.trim())
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if args.is_empty() && opts.stdin_paths.is_none() {
        args = result_links(&opts.cwd);
        if args.is_empty() {
            return Err(PushError::NothingGiven {
                dir: opts.cwd.clone(),
            });
        }
    }
    let mut roots = BTreeSet::new();
    let mut installables = Vec::new();
    for arg in &args {
        let p = opts.cwd.join(arg);
        // A store path (or a file in one) is itself, even when it is a symlink: a store
        // path may be a link to another one, or out of the store.
        let as_given = p.display().to_string();
        let found = if let Some(sp) = storepath::to_store_path(&as_given, DEFAULT_STORE_DIR) {
            sp.to_owned()
        } else if std::fs::symlink_metadata(&p).is_ok() {
            let real_s = first_store_target(&p).map_err(|e| PushError::NotInStore {
                arg: arg.clone(),
                resolved: format!("nothing ({e})"),
            })?;
            match storepath::to_store_path(&real_s, DEFAULT_STORE_DIR) {
                Some(sp) => sp.to_owned(),
                None => {
                    return Err(PushError::NotInStore {
                        arg: arg.clone(),
                        resolved: real_s,
                    });
                }
            }
        } else if let Some(sp) = storepath::to_store_path(arg, DEFAULT_STORE_DIR) {
            sp.to_owned()
        } else {
            installables.push(arg.clone());
            continue;
        };
        let path =
            StorePath::new(&found, DEFAULT_STORE_DIR).map_err(|e| PushError::NotInStore {
                arg: arg.clone(),
                resolved: e.to_string(),
            })?;
        roots.insert(path);
    }
    if !installables.is_empty() {
        roots.extend(build_installables(nix, &installables, &opts.cwd)?);
    }
    Ok(roots.into_iter().collect())
}

/// Where a link (`./result`) leads: its targets followed one at a time, stopping at the
/// first inside the store (which may itself be a link), else where the chain ends.
fn first_store_target(link: &Path) -> std::io::Result<String> {
    let mut cur = link.to_path_buf();
    for _ in 0..40 {
        let s = cur.display().to_string();
        if storepath::to_store_path(&s, DEFAULT_STORE_DIR).is_some() {
            return Ok(s);
        }
        match std::fs::read_link(&cur) {
            Ok(t) => {
                cur = if t.is_absolute() {
                    t
                } else {
                    cur.parent().unwrap_or(Path::new("/")).join(t)
                };
            }
            Err(_) => return std::fs::canonicalize(&cur).map(|p| p.display().to_string()),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Every `result*` symlink in `dir` (what `nix build` leaves), sorted.
pub(super) fn result_links(dir: &Path) -> Vec<String> {
    let mut links: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("result"))
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    links
}

/// `nix build --no-link --json INSTALLABLES` (2.8 has no `--print-out-paths`): the
/// output paths. Runs in dry-run too: building is not uploading, and what would be
/// pushed cannot be known without it.
pub(super) fn build_installables(
    nix: &Nix,
    installables: &[String],
    cwd: &Path,
) -> Result<Vec<StorePath>, PushError> {
    let cmd = nix
        .command([
            "--extra-experimental-features",
            "flakes",
            "build",
            "--no-link",
            "--json",
        ])
        .args(installables)
        .current_dir(cwd)
        .read_only();
    let out = nix.runner().run(&cmd)?;
    let parse_error = |reason| {
        PushError::Nix(NixError::Parse {
            cmdline: cmd.display(),
            reason,
        })
    };
    parse_build_json(&out.stdout_str())
        .map_err(parse_error)?
        .iter()
        .map(|p| {
            StorePath::new(p, DEFAULT_STORE_DIR)
                .map_err(|e| parse_error(format!("Nix printed {e}")))
        })
        .collect()
}

/// Output paths from `nix build --json`: `[{"drvPath":..,"outputs":{"out":"/nix/store/.."}}]`
/// (opaque store paths appear as `{"path": ..}`).
pub(super) fn parse_build_json(json: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    let items = v.as_array().ok_or("expected a JSON array")?;
    let mut out = Vec::new();
    for item in items {
        if let Some(outputs) = item.get("outputs").and_then(|o| o.as_object()) {
            out.extend(
                outputs
                    .values()
                    .filter_map(|p| p.as_str())
                    .map(str::to_owned),
            );
        } else if let Some(p) = item.get("path").and_then(|p| p.as_str()) {
            out.push(p.to_owned());
        }
    }
    Ok(out)
}
