//! What a build added: two closures compared, path by path and package by package, in
//! the manner of nvd / dix. The old side is a previous `--format json` report
//! (`--baseline`, e.g. the main branch's, kept as a CI artifact) or a second closure of
//! the same store (`--compare OLD NEW`).

use super::PathEntry;
use crate::fsutil::{self, Follow};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A baseline report bigger than this is not one (a 100,000-path closure is ~15 MiB).
const MAX_BASELINE: u64 = 256 * 1024 * 1024;

/// One side of a comparison.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// What it is: `baseline FILE (PATHS)` or the store path given.
    pub(crate) label: String,
    /// Every path of the closure, `(path, nar_size)`.
    pub(crate) paths: Vec<(String, u64)>,
    /// `(cache URL, hit_rate_bytes)` of each cache measured for it.
    pub(crate) coverage: Vec<(String, f64)>,
}

/// A `--baseline` file that is not a usable report: unreadable, not JSON, or without
/// `closure.contents`.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the baseline report {}: {reason}", path.display())]
pub struct BaselineError {
    path: PathBuf,
    reason: String,
}

impl Side {
    /// Reads a report written by `cache-analytics --closure PATH --format json`.
    pub fn read_baseline(path: &Path) -> Result<Side, BaselineError> {
        let fail = |reason: String| BaselineError {
            path: path.to_owned(),
            reason,
        };
        let bytes = fsutil::read_regular(path, MAX_BASELINE, Follow::Symlinks)
            .map_err(|e| fail(e.to_string()))?
            .ok_or_else(|| fail("there is no such file".to_owned()))?
            .bytes;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            fail(format!(
                "not JSON ({e}): pass a report of `cache-analytics --format json`"
            ))
        })?;
        let closure = v.get("closure").filter(|c| !c.is_null()).ok_or_else(|| {
            fail(
                "it has no closure: make it with `cache-analytics --closure PATH --format json`"
                    .to_owned(),
            )
        })?;
        let contents = closure
            .get("contents")
            .and_then(|c| c.as_array())
            .ok_or_else(|| {
                fail("its closure has no `contents` (a report of an older cache-analytics): make it again with this version".to_owned())
            })?;
        let mut paths = Vec::with_capacity(contents.len());
        for (i, e) in contents.iter().enumerate() {
            let p = e.get("path").and_then(|p| p.as_str());
            let n = e.get("nar_size").and_then(serde_json::Value::as_u64);
            match (p, n) {
                (Some(p), Some(n)) if p.starts_with('/') => paths.push((p.to_owned(), n)),
                _ => {
                    return Err(fail(format!(
                        "closure.contents[{i}] is not {{\"path\": \"/nix/store/...\", \"nar_size\": N}}"
                    )));
                }
            }
        }
        let requested: Vec<&str> = closure
            .get("requested")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().filter_map(|x| x.as_str()).collect())
            .unwrap_or_default();
        let coverage = v
            .get("coverage")
            .and_then(|c| c.as_array())
            .map(|rows| {
                rows.iter()
                    .filter_map(|c| {
                        Some((
                            c.get("cache")?.as_str()?.to_owned(),
                            c.get("hit_rate_bytes")?.as_f64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Side {
            label: format!("baseline {} ({})", path.display(), requested.join(" ")),
            paths,
            coverage,
        })
    }
}

/// Totals of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// The side's [`Side::label`].
    pub label: String,
    /// Paths of its closure.
    pub paths: u64,
    /// NAR bytes of its closure.
    pub nar_bytes: u64,
}

/// `added`, `removed` or `changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new closure.
    Added,
    /// Only in the old closure.
    Removed,
    /// In both, with other versions.
    Changed,
}

/// A package (name without version) whose versions differ between the sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// The name as Nix's `DrvName` splits it off (`hello` of `hello-2.12.1`).
    pub name: String,
    /// Whether it was added, removed or changed versions.
    pub kind: ChangeKind,
    /// Its versions on each side (empty where it is absent; `""` for a path without a
    /// version), sorted.
    pub old: Vec<String>,
    /// Its versions in the new closure, as `old`.
    pub new: Vec<String>,
    /// NAR bytes of its paths, new minus old.
    pub delta_nar_bytes: i64,
}

/// One cache's hit rate (bytes) on each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageDelta {
    /// The cache URL, as the new run names it.
    pub cache: String,
    /// Percent of the old closure's NAR bytes the cache held (`hit_rate_bytes`).
    pub old_hit_rate_bytes: f64,
    /// Percent of the new closure's NAR bytes it holds.
    pub new_hit_rate_bytes: f64,
    /// New minus old, in percentage points (two decimals).
    pub delta: f64,
}

/// The whole comparison (`diff` in the JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// The old side: the baseline report's closure, or `--compare`'s OLD.
    pub old: Totals,
    /// The new side: this run's `--closure`, or `--compare`'s NEW.
    pub new: Totals,
    /// Paths of the new closure minus those of the old.
    pub delta_paths: i64,
    /// NAR bytes of the new closure minus those of the old.
    pub delta_nar_bytes: i64,
    /// Paths only in the new closure, largest first.
    pub added: Vec<PathEntry>,
    /// Paths only in the old closure, largest first.
    pub removed: Vec<PathEntry>,
    /// Packages added, removed or with other versions, largest growth first.
    pub packages: Vec<PackageChange>,
    /// Caches measured on both sides (by URL).
    pub coverage: Vec<CoverageDelta>,
}

/// Output names Nix appends after the version (`hello-2.12-man`).
const OUTPUT_SUFFIXES: &[&str] = &[
    "dev", "man", "lib", "bin", "doc", "info", "out", "debug", "static", "devdoc",
];

/// `(name, version)` of a store path, as Nix's `DrvName` splits them: the version starts
/// at the first `-` followed by a character that is not a letter; an output suffix
/// (`-dev`, `-man`, ...) is not part of the version.
fn split_name(path: &str) -> (&str, &str) {
    let base = crate::storepath::name(path).unwrap_or(crate::storepath::base_name(path));
    let base = base.strip_suffix(".drv").unwrap_or(base);
    let mut name_end = base.len();
    for (i, _) in base.match_indices('-') {
        if base[i + 1..]
            .chars()
            .next()
            .is_some_and(|c| !c.is_ascii_alphabetic())
        {
            name_end = i;
            break;
        }
    }
    let name = &base[..name_end];
    let mut version = base.get(name_end + 1..).unwrap_or("");
    if let Some((v, out)) = version.rsplit_once('-') {
        if OUTPUT_SUFFIXES.contains(&out) {
            version = v;
        }
    }
    (name, version)
}

fn entries<'a>(paths: impl Iterator<Item = (&'a String, &'a u64)>) -> Vec<PathEntry> {
    let mut v: Vec<PathEntry> = paths
        .map(|(p, n)| PathEntry {
            path: p.clone(),
            nar_size: *n,
        })
        .collect();
    v.sort_by(|a, b| {
        b.nar_size
            .cmp(&a.nar_size)
            .then_with(|| a.path.cmp(&b.path))
    });
    v
}

/// Compares `old` with `new`.
pub(crate) fn compare(old: &Side, new: &Side) -> Diff {
    let o: HashMap<&String, &u64> = old.paths.iter().map(|(p, n)| (p, n)).collect();
    let n: HashMap<&String, &u64> = new.paths.iter().map(|(p, s)| (p, s)).collect();
    let added = entries(
        new.paths
            .iter()
            .filter(|(p, _)| !o.contains_key(p))
            .map(|(p, s)| (p, s)),
    );
    let removed = entries(
        old.paths
            .iter()
            .filter(|(p, _)| !n.contains_key(p))
            .map(|(p, s)| (p, s)),
    );
    // name -> (old versions, new versions, old bytes, new bytes)
    type Acc = (BTreeSet<String>, BTreeSet<String>, u64, u64);
    let mut by_name: BTreeMap<&str, Acc> = BTreeMap::new();
    for (p, s) in &old.paths {
        let (name, v) = split_name(p);
        let e = by_name.entry(name).or_default();
        e.0.insert(v.to_owned());
        e.2 += s;
    }
    for (p, s) in &new.paths {
        let (name, v) = split_name(p);
        let e = by_name.entry(name).or_default();
        e.1.insert(v.to_owned());
        e.3 += s;
    }
    let mut packages: Vec<PackageChange> = by_name
        .into_iter()
        .filter(|(_, (ov, nv, _, _))| ov != nv)
        .map(|(name, (ov, nv, ob, nb))| PackageChange {
            name: name.to_owned(),
            kind: if ov.is_empty() {
                ChangeKind::Added
            } else if nv.is_empty() {
                ChangeKind::Removed
            } else {
                ChangeKind::Changed
            },
            old: ov.into_iter().collect(),
            new: nv.into_iter().collect(),
            delta_nar_bytes: nb as i64 - ob as i64,
        })
        .collect();
    packages.sort_by(|a, b| {
        b.delta_nar_bytes
            .cmp(&a.delta_nar_bytes)
            .then_with(|| a.name.cmp(&b.name))
    });
    let coverage = new
        .coverage
        .iter()
        .filter_map(|(cache, new_rate)| {
            let (_, old_rate) = old
                .coverage
                .iter()
                .find(|(c, _)| crate::url::normalize(c) == crate::url::normalize(cache))?;
            Some(CoverageDelta {
                cache: cache.clone(),
                old_hit_rate_bytes: *old_rate,
                new_hit_rate_bytes: *new_rate,
                delta: ((new_rate - old_rate) * 100.0).round() / 100.0,
            })
        })
        .collect();
    let totals = |s: &Side| Totals {
        label: s.label.clone(),
        paths: s.paths.len() as u64,
        nar_bytes: s.paths.iter().map(|(_, n)| n).sum(),
    };
    let (ot, nt) = (totals(old), totals(new));
    Diff {
        delta_paths: nt.paths as i64 - ot.paths as i64,
        delta_nar_bytes: nt.nar_bytes as i64 - ot.nar_bytes as i64,
        old: ot,
        new: nt,
        added,
        removed,
        packages,
        coverage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh";

    #[test]
    fn names_and_versions_split_as_nix_does() {
        assert_eq!(
            split_name(&format!("{H}-hello-2.12.1")),
            ("hello", "2.12.1")
        );
        assert_eq!(
            split_name(&format!("{H}-hello-2.12.1-man")),
            ("hello", "2.12.1")
        );
        assert_eq!(
            split_name(&format!("{H}-gtk+3-3.24.41-dev")),
            ("gtk+3", "3.24.41")
        );
        assert_eq!(split_name(&format!("{H}-source")), ("source", ""));
        assert_eq!(
            split_name(&format!("{H}-nix-cache-tools-0.1.0")),
            ("nix-cache-tools", "0.1.0")
        );
        assert_eq!(
            split_name(&format!("{H}-python3.12-requests-2.31.0")),
            ("python3.12-requests", "2.31.0")
        );
        assert_eq!(
            split_name(&format!("{H}-glibc-2.39-52")),
            ("glibc", "2.39-52")
        );
    }

    #[test]
    fn paths_packages_and_coverage_compared() {
        let side = |label: &str, paths: &[(&str, u64)], cov: &[(&str, f64)]| Side {
            label: label.to_owned(),
            paths: paths
                .iter()
                .map(|(p, n)| (format!("{H}-{p}"), *n))
                .collect(),
            coverage: cov.iter().map(|(c, r)| ((*c).to_owned(), *r)).collect(),
        };
        let old = side(
            "old",
            &[
                ("openssl-3.0.13", 100),
                ("app-1.0", 10),
                ("gone-1", 5),
                ("source", 7),
            ],
            &[("https://c.example", 80.0)],
        );
        let mut new = side(
            "new",
            &[
                ("openssl-3.0.14", 120),
                ("app-1.0", 10),
                ("zlib-1.3", 50),
                ("source", 7),
            ],
            &[
                ("https://c.example/", 60.5),
                ("https://other.example", 10.0),
            ],
        );
        // The same name-version under another hash is a path change, not a version change.
        new.paths[1].0 = new.paths[1].0.replace("4qlx", "5qlx");
        let d = compare(&old, &new);
        assert_eq!((d.old.paths, d.new.paths, d.delta_paths), (4, 4, 0));
        assert_eq!(d.delta_nar_bytes, 187 - 122);
        let added: Vec<(&str, u64)> = d
            .added
            .iter()
            .map(|e| (split_name(&e.path).0, e.nar_size))
            .collect();
        assert_eq!(added, vec![("openssl", 120), ("zlib", 50), ("app", 10)]);
        assert_eq!(d.removed.len(), 3);
        let pk: Vec<(&str, ChangeKind, i64)> = d
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.kind, p.delta_nar_bytes))
            .collect();
        assert_eq!(
            pk,
            vec![
                ("zlib", ChangeKind::Added, 50),
                ("openssl", ChangeKind::Changed, 20),
                ("gone", ChangeKind::Removed, -5)
            ]
        );
        assert_eq!(d.packages[1].old, vec!["3.0.13"]);
        assert_eq!(d.packages[1].new, vec!["3.0.14"]);
        assert_eq!(d.coverage.len(), 1);
        assert_eq!(d.coverage[0].delta, -19.5);
    }
}
