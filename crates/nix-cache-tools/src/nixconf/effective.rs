//! Settings in force over all layers, with the file and line each value came from.

use super::layers::{LayerKind, Layers};
use std::path::{Path, PathBuf};

/// `substituters` when nothing sets it.
pub(crate) const DEFAULT_SUBSTITUTERS: &[&str] = &["https://cache.nixos.org/"];
/// `trusted-public-keys` when nothing sets it.
pub(crate) const DEFAULT_TRUSTED_PUBLIC_KEYS: &[&str] =
    &["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="];
/// `trusted-users` when nothing sets it.
pub(crate) const DEFAULT_TRUSTED_USERS: &[&str] = &["root"];
/// `allowed-users` when nothing sets it: everyone may connect to the daemon.
pub(crate) const DEFAULT_ALLOWED_USERS: &[&str] = &["*"];

/// Nix's default for a setting this module knows, or `None`.
pub(crate) fn default_of(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "substituters" => Some(DEFAULT_SUBSTITUTERS),
        "trusted-public-keys" => Some(DEFAULT_TRUSTED_PUBLIC_KEYS),
        "trusted-users" => Some(DEFAULT_TRUSTED_USERS),
        "allowed-users" => Some(DEFAULT_ALLOWED_USERS),
        "trusted-substituters" => None,
        _ => None,
    }
}

/// One `key = value` line of the stack, in application order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment<'a> {
    /// Index into [`Layers::files`].
    pub(crate) file_index: usize,
    pub(crate) file: &'a Path,
    pub(crate) kind: LayerKind,
    pub(crate) line: usize,
    /// Alias-resolved, without `extra-`.
    pub(crate) name: &'a str,
    /// The key as written.
    pub(crate) key: &'a str,
    pub(crate) is_extra: bool,
    pub(crate) values: &'a [String],
}

/// Where a value in force came from. `file` is `None` for Nix's built-in default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Sourced {
    /// One value: a list setting gives one per token, a scalar its tokens joined by one
    /// space.
    pub value: String,
    /// The file that set it (the literal `NIX_CONFIG` for the environment variable);
    /// `None` for Nix's default.
    pub file: Option<PathBuf>,
    /// 1-based line in `file`; 0 for a default.
    pub line: usize,
}

impl Layers {
    /// Every setting line of every file, in the order Nix applies them (system file,
    /// user files from lowest to highest priority, `NIX_CONFIG`; an included file's
    /// lines where its include line is). Missing files contribute nothing.
    pub(crate) fn assignments(&self) -> Vec<Assignment<'_>> {
        let mut out = Vec::new();
        for &r in &self.roots {
            self.walk(r, &mut out);
        }
        out
    }

    fn walk<'a>(&'a self, idx: usize, out: &mut Vec<Assignment<'a>>) {
        let f = &self.files[idx];
        for line in f.conf.lines() {
            if let Some(s) = line.setting() {
                out.push(Assignment {
                    file_index: idx,
                    file: &f.path,
                    kind: f.kind,
                    line: line.number,
                    name: &s.name,
                    key: &s.key,
                    is_extra: s.is_extra,
                    values: &s.values,
                });
            } else if let Some(&(_, child)) = f.includes.iter().find(|(l, _)| *l == line.number) {
                self.walk(child, out);
            }
        }
    }

    /// The value of a list setting in force (`substituters`, `trusted-public-keys`,
    /// `trusted-users`, ...): a plain assignment replaces, `extra-` appends, later wins,
    /// duplicates are kept (as Nix keeps them); Nix's default when nothing sets it.
    pub fn effective(&self, name: &str) -> Vec<Sourced> {
        effective_of(&self.assignments(), name)
    }

    /// The last plain value of a scalar setting (`require-sigs`, `netrc-file`, ...), or
    /// `None` when no file sets it.
    pub(crate) fn effective_scalar(&self, name: &str) -> Option<Sourced> {
        self.assignments()
            .into_iter()
            .rfind(|a| a.name == name && !a.is_extra)
            .map(|a| Sourced {
                value: a.values.join(" "),
                file: Some(a.file.to_owned()),
                line: a.line,
            })
    }

    /// The top-level file at `path`, if it is part of the stack.
    #[cfg(test)]
    pub(crate) fn file_index(&self, path: &Path) -> Option<usize> {
        self.files.iter().position(|f| f.path == path)
    }
}

/// [`Layers::effective`] over an explicit list of assignments (e.g. only some layers).
pub(crate) fn effective_of(assignments: &[Assignment<'_>], name: &str) -> Vec<Sourced> {
    let mut cur: Vec<Sourced> = default_of(name)
        .unwrap_or(&[])
        .iter()
        .map(|v| Sourced {
            value: (*v).to_owned(),
            file: None,
            line: 0,
        })
        .collect();
    for a in assignments.iter().filter(|a| a.name == name) {
        if !a.is_extra {
            cur.clear();
        }
        // Nix keeps duplicates in list settings (`show-config` prints them), so do we.
        cur.extend(a.values.iter().map(|v| Sourced {
            value: v.clone(),
            file: Some(a.file.to_owned()),
            line: a.line,
        }));
    }
    cur
}
