//! The edit, planned on the lossless model: which values are in effect where, the
//! marked lines setup-cache writes, adding to and removing from them, and the diff.

use super::*;

pub(super) const SUBS: &str = "substituters";
/// The comment on every line setup-cache writes, so that `--remove` takes out exactly
/// what it added and never a value or line the user wrote.
pub const MARK: &str = "# added by setup-cache";
pub(super) const KEYS: &str = "trusted-public-keys";

pub(super) fn same_url(a: &str, b: &str) -> bool {
    url::normalize(a) == url::normalize(b)
}

pub(super) fn sourced_at(s: &nixconf::Sourced) -> String {
    match &s.file {
        Some(f) => format!("{}:{}", f.display(), s.line),
        None => "Nix's default".to_owned(),
    }
}

/// Where `value` of list setting `name` is in effect from, if it is.
pub(super) fn in_effect(layers: &Layers, name: &str, value: &str) -> Option<String> {
    layers
        .effective(name)
        .iter()
        .find(|s| {
            if name == SUBS {
                same_url(&s.value, value)
            } else {
                s.value == value
            }
        })
        .map(sourced_at)
}

/// The last plain assignment of `name` (the one that resets earlier `extra-` values).
pub(super) fn last_reset(layers: &Layers, name: &str) -> Option<String> {
    layers
        .assignments()
        .iter()
        .rfind(|a| a.name == name && !a.is_extra)
        .map(|a| format!("{}:{}", a.file.display(), a.line))
}

/// The layers with the target file's content replaced by `conf`.
pub(super) fn simulate(layers: &Layers, target_idx: &[usize], conf: &NixConf) -> Layers {
    let mut l = layers.clone();
    for &i in target_idx {
        l.files[i].conf = conf.clone();
    }
    l
}

/// Whether setup-cache wrote this line: its comment is exactly [`MARK`].
pub(super) fn is_marked(line: &nixconf::Line) -> bool {
    line.comment()
        .is_some_and(|c| c.trim_end_matches([' ', '\t', '\r']) == MARK)
}

/// The last `extra-NAME` line setup-cache wrote (the only kind of line it appends to).
pub(super) fn last_extra_line(conf: &NixConf, name: &str) -> Option<usize> {
    conf.settings()
        .filter(|(l, s)| s.name == name && s.is_extra && is_marked(l))
        .map(|(l, _)| l.number)
        .last()
}

/// Adds `values` of list setting `name` to `conf` so that they take effect, without
/// ever editing a line the user wrote: appended to setup-cache's own last `extra-` line
/// when that keeps them in effect, else on a new marked line at the end.
pub(super) fn add_values(
    layers: &Layers,
    target_idx: &[usize],
    conf: &mut NixConf,
    name: &str,
    values: &[String],
) {
    let missing: Vec<&str> = {
        let now = simulate(layers, target_idx, conf);
        let mut m: Vec<&str> = Vec::new();
        for v in values {
            if in_effect(&now, name, v).is_none() && !m.contains(&v.as_str()) {
                m.push(v);
            }
        }
        m
    };
    if missing.is_empty() {
        return;
    }
    if let Some(line) = last_extra_line(conf, name) {
        let mut c = conf.clone();
        c.append_values(line, &missing);
        let after = simulate(layers, target_idx, &c);
        let duplicate = conf
            .line(line)
            .and_then(|l| l.setting())
            .is_some_and(|s| s.values.iter().any(|v| missing.contains(&v.as_str())));
        if !duplicate
            && (target_idx.is_empty()
                || missing.iter().all(|v| in_effect(&after, name, v).is_some()))
        {
            *conf = c;
            return;
        }
    }
    let mut c = conf.clone();
    c.append_line(&format!("extra-{name} = {} {MARK}", missing.join(" ")));
    let after = simulate(layers, target_idx, &c);
    // Never duplicate a value that a new line would not bring into effect either (a
    // later file or NIX_CONFIG resets the list): the report says what overrides it.
    let useless: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|v| count_values(conf, name, v) > 0 && in_effect(&after, name, v).is_none())
        .collect();
    let wanted: Vec<&str> = missing
        .iter()
        .copied()
        .filter(|v| !useless.contains(v))
        .collect();
    if !wanted.is_empty() {
        conf.append_line(&format!("extra-{name} = {} {MARK}", wanted.join(" ")));
    }
}

/// How many times `value` appears in `name` lines of `conf`.
pub(super) fn count_values(conf: &NixConf, name: &str, value: &str) -> usize {
    conf.settings()
        .filter(|(_, s)| s.name == name)
        .flat_map(|(_, s)| s.values.iter())
        .filter(|v| same_value(name, v, value))
        .count()
}

pub(super) fn same_value(name: &str, a: &str, b: &str) -> bool {
    if name == SUBS { same_url(a, b) } else { a == b }
}

/// Whether `value` is on a `name` line setup-cache wrote.
pub(super) fn on_marked_line(conf: &NixConf, name: &str, value: &str) -> bool {
    conf.settings()
        .filter(|(l, s)| s.name == name && is_marked(l))
        .any(|(_, s)| s.values.iter().any(|v| same_value(name, v, value)))
}

/// Whether setup-cache added (part of) cache `c` to `conf`: its URL or key is on a
/// marked line (for a cache given by URL alone: a key named after its host is).
pub(super) fn added_here(conf: &NixConf, c: &CacheSpec) -> bool {
    on_marked_line(conf, SUBS, &c.url)
        || (!c.public_key.is_empty() && on_marked_line(conf, KEYS, &c.public_key))
        || (c.public_key.is_empty()
            && url::host(&c.url).is_some_and(|h| {
                conf.settings()
                    .filter(|(l, s)| s.name == KEYS && is_marked(l))
                    .flat_map(|(_, s)| s.values.iter())
                    .any(|v| crate::keys::named_after(v, h))
            }))
}

/// How many of `values` (setting name, value) `conf` holds.
pub(super) fn count_values_all(conf: &NixConf, values: &[(&str, &str)]) -> usize {
    values.iter().map(|(n, v)| count_values(conf, n, v)).sum()
}

/// The numbers of the lines that hold one of `values` (setting name, value).
pub(super) fn lines_with(conf: &NixConf, values: &[(&str, &str)]) -> Vec<usize> {
    conf.settings()
        .filter(|(_, s)| {
            values
                .iter()
                .any(|(n, v)| s.name == *n && s.values.iter().any(|x| same_value(n, x, v)))
        })
        .map(|(l, _)| l.number)
        .collect()
}

/// Which lines [`remove_values`] edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lines {
    /// Only lines setup-cache wrote ([`MARK`]).
    Marked,
    /// Every line, the user's own included.
    All,
}

/// Removes `matches` values from the `name` lines of `conf` chosen by `which`; lines
/// this leaves without a value are deleted (with their line ending, so a file that
/// ended without a newline still does). Returns how many values were removed.
pub(super) fn remove_values(
    conf: &mut NixConf,
    name: &str,
    which: Lines,
    matches: &dyn Fn(&str) -> bool,
) -> usize {
    let lines: Vec<(usize, usize)> = conf
        .settings()
        .filter(|(l, s)| s.name == name && (which == Lines::All || is_marked(l)))
        .map(|(l, s)| (l.number, s.values.len()))
        .collect();
    let mut removed = 0;
    let mut emptied = Vec::new();
    for (n, before) in lines {
        let r = conf.remove_values(n, matches);
        removed += r;
        if r > 0 && r == before {
            emptied.push(n);
        }
    }
    for n in emptied.into_iter().rev() {
        conf.remove_line(n);
    }
    removed
}

/// Whether a plain `include` line (not `!include`) of a file Nix reads names the target.
pub(super) fn required_by_include(layers: &Layers, target_idx: &[usize]) -> bool {
    layers.files.iter().any(|f| {
        f.includes.iter().any(|&(line, child)| {
            target_idx.contains(&child)
                && f.conf.line(line).is_some_and(|l| {
                    matches!(
                        l.kind,
                        nixconf::LineKind::Include {
                            optional: false,
                            ..
                        }
                    )
                })
        })
    })
}

/// A file this tool may rewrite, read safely: a regular file of bounded size, never
/// through a symlink (`O_NOFOLLOW`), from the descriptor that was checked; its text and
/// identity (for the same-file check at write time). `None` when it does not exist.
pub(super) fn read_file(path: &Path) -> Result<Option<(String, fsutil::ReadFile)>, SetupError> {
    match fsutil::read_regular(path, fsutil::MAX_TEXT_FILE, fsutil::Follow::NoSymlinks)? {
        None => Ok(None),
        Some(f) => match String::from_utf8(f.bytes.clone()) {
            Ok(t) => Ok(Some((t, f))),
            Err(_) => Err(SetupError::NotUtf8 {
                path: path.to_owned(),
            }),
        },
    }
}

/// The same path, or two names of the same existing file (`./`, `..`, hard links).
pub(super) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

pub(super) fn backup_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_owned();
    name.push(".setup-cache.bak");
    target.with_file_name(name)
}

pub(super) fn diff(path: &Path, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let p = path.display().to_string();
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&p, &p)
        .to_string()
}

/// What becomes of the netrc file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NetrcChange {
    /// Left as it is.
    Keep,
    /// Written with this text (mode 0600).
    Write(String),
    /// Deleted: `--remove` took out its last entry.
    Delete,
}

impl NetrcChange {
    /// The file's new text (empty when deleted); `None` when it is kept.
    pub(super) fn text(&self) -> Option<&str> {
        match self {
            NetrcChange::Keep => None,
            NetrcChange::Write(t) => Some(t),
            NetrcChange::Delete => Some(""),
        }
    }
}
