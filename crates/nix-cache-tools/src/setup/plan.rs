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
    // A marked line without a value was not left by an add (remove deletes a line it
    // empties): someone wrote it, and `--remove` must not delete it later.
    conf.settings()
        .filter(|(l, s)| s.name == name && s.is_extra && is_marked(l) && !s.values.is_empty())
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

/// The planned edit: what the target and the netrc will hold.
pub(super) struct Edit {
    /// The target's new content on the lossless model, and rendered.
    pub(super) conf: NixConf,
    pub(super) text: String,
    pub(super) netrc: NetrcChange,
    /// Keys taken out by their name: named after the host of a cache removed by URL
    /// alone (`--remove --cachix NAME`), or an earlier key of a removed cache
    /// ([`rotated_keys`]).
    pub(super) by_name: Vec<String>,
    pub(super) warnings: Vec<String>,
}

impl Edit {
    fn new(conf: NixConf, netrc: NetrcChange, by_name: Vec<String>, warnings: Vec<String>) -> Self {
        Edit {
            text: conf.render(),
            conf,
            netrc,
            by_name,
            warnings,
        }
    }
}

/// Plans the edit `req` asks for on what the files hold now; pure.
pub(super) fn plan(req: &Request, view: &View, cur: &Current, tokens: &[(String, String)]) -> Edit {
    if req.remove {
        plan_remove(req, view, cur)
    } else {
        plan_add(req, view, cur, tokens)
    }
}

fn plan_add(req: &Request, view: &View, cur: &Current, tokens: &[(String, String)]) -> Edit {
    let mut conf = cur.conf.clone();
    let urls: Vec<String> = req.caches.iter().map(|c| c.url.clone()).collect();
    add_values(&view.judged, &view.judged_idx, &mut conf, SUBS, &urls);
    let shared = shared_keys(req, &cur.conf, &conf);
    let keys: Vec<String> = req
        .caches
        .iter()
        .filter(|c| !shared.contains(&c.url.as_str()))
        .map(|c| c.public_key.clone())
        .collect();
    add_values(&view.judged, &view.judged_idx, &mut conf, KEYS, &keys);
    for c in req
        .caches
        .iter()
        .filter(|c| shared.contains(&c.url.as_str()))
    {
        if key_for(&conf, &c.url).is_none() {
            conf.append_line(&format!(
                "extra-{KEYS} = {} {MARK_FOR}{}",
                c.public_key, c.url
            ));
        }
    }
    let mut warnings = password_warnings(req, cur, &conf);
    let netrc = if tokens.is_empty() {
        NetrcChange::Keep
    } else {
        add_tokens(req, view, cur, tokens, &mut conf, &mut warnings)
    };
    Edit::new(conf, netrc, Vec::new(), warnings)
}

/// A URL with a password written into a nix.conf others may read (nix.conf is 0644 as
/// a rule, and a new one is made so): said, with the way that keeps it private.
fn password_warnings(req: &Request, cur: &Current, conf: &NixConf) -> Vec<String> {
    let others_read = cur.read.as_ref().is_none_or(|(_, r)| r.mode & 0o044 != 0);
    req.caches
        .iter()
        .filter(|c| others_read && crate::redact::url(&c.url) != c.url)
        .filter(|c| count_values(conf, SUBS, &c.url) > count_values(&cur.conf, SUBS, &c.url))
        .map(|c| {
            format!(
                "{} holds a password, and {} may be read by other users of this machine: give the token with --token-env VAR instead (it goes to a netrc entry, mode 0600) and the URL without it",
                crate::redact::url(&c.url),
                if cur.read.is_some() { "this nix.conf" } else { "the new nix.conf" }
            )
        })
        .collect()
}

/// The caches (by URL) that get their own copy of their key, on a line marked
/// [`MARK_FOR`] their URL: a key two caches added by setup-cache share (one cache at two
/// URLs), so that `--remove` of either leaves the other its key. A cache this run added
/// (its URL written now by `conf`, on none of setup-cache's lines before) whose key is
/// on setup-cache's lines already, from an earlier run or for an earlier cache of this
/// run.
fn shared_keys<'a>(req: &'a Request, orig: &NixConf, conf: &NixConf) -> Vec<&'a str> {
    let mut keyed_here: Vec<&str> = Vec::new();
    let mut shared = Vec::new();
    for c in &req.caches {
        let key = c.public_key.as_str();
        let new = !key.is_empty()
            && !on_marked_line(orig, SUBS, &c.url)
            && count_values(conf, SUBS, &c.url) > count_values(orig, SUBS, &c.url);
        if !new {
            continue;
        }
        if on_marked_line(orig, KEYS, key) || keyed_here.contains(&key) {
            shared.push(c.url.as_str());
        } else {
            keyed_here.push(key);
        }
    }
    shared
}

/// The marker of a key's copy for one cache ([`shared_keys`]): `MARK_FOR` + URL.
pub(super) const MARK_FOR: &str = "# added by setup-cache for ";

/// The URL a line's [`MARK_FOR`] names, if it has one.
fn marked_for(line: &nixconf::Line) -> Option<&str> {
    line.comment()?
        .trim_end_matches([' ', '\t', '\r'])
        .strip_prefix(MARK_FOR)
}

/// The line holding the key copy for cache `url`, if any.
fn key_for(conf: &NixConf, url: &str) -> Option<usize> {
    conf.settings()
        .find(|(l, s)| s.name == KEYS && marked_for(l).is_some_and(|u| same_url(u, url)))
        .map(|(l, _)| l.number)
}

/// The netrc with an entry per token, and the `netrc-file` line when Nix would not
/// otherwise read that netrc.
fn add_tokens(
    req: &Request,
    view: &View,
    cur: &Current,
    tokens: &[(String, String)],
    conf: &mut NixConf,
    warnings: &mut Vec<String>,
) -> NetrcChange {
    let mut text = cur.netrc.clone();
    for (host, token) in tokens {
        match netrc::add(text.as_deref(), host, token) {
            netrc::Added::Text(t) => text = Some(t),
            netrc::Added::Unchanged => {}
            netrc::Added::TheirsKept => warnings.push(format!(
                "{} already has an entry of yours for {host}, with other credentials: it is left as it is, and curl uses it; if the token changed, put it there yourself",
                cur.netrc_path.display()
            )),
        }
    }
    let change = match text {
        Some(t) if cur.netrc.as_deref() != Some(t.as_str()) => NetrcChange::Write(t),
        _ => NetrcChange::Keep,
    };
    let now = simulate(&view.judged, &view.judged_idx, conf);
    let current = now
        .effective_scalar("netrc-file")
        .map(|s| PathBuf::from(s.value));
    let needs_line = match &current {
        Some(c) => *c != cur.netrc_path,
        None => cur.netrc_path != req.env.conf_dir().join("netrc"),
    };
    if needs_line {
        if let Some(c) = current.filter(|c| c.exists()) {
            warnings.push(format!(
                "netrc-file was {}; it now points to {}: copy any other entries you need from the old file",
                c.display(),
                cur.netrc_path.display()
            ));
        }
        conf.append_line(&format!("netrc-file = {} {MARK}", cur.netrc_path.display()));
    }
    change
}

/// What setup-cache added is taken out of its own marked lines only, so that add+remove
/// gives back the original bytes. A cache none of whose values is on a marked line was
/// written by the user: it is taken out of their lines (a line left without a value
/// goes) and a warning says so.
fn plan_remove(req: &Request, view: &View, cur: &Current) -> Edit {
    let mut conf = cur.conf.clone();
    let ours: Vec<bool> = req.caches.iter().map(|c| added_here(&conf, c)).collect();
    let by_name = remove_caches(req, view, &ours, &mut conf);
    let mut warnings = user_line_warnings(req, &view.at.target, &ours, &cur.conf, &conf, &by_name);
    for k in &by_name {
        if req
            .caches
            .iter()
            .any(|c| !c.public_key.is_empty() && c.public_key != *k)
        {
            warnings.push(format!(
                "also {} {k}: an earlier key of the same cache (the same name, another number) that setup-cache added",
                if req.dry_run { "would take out" } else { "took out" }
            ));
        }
    }
    let netrc = match &cur.netrc {
        Some(text) => netrc_without(&req.caches, text, &cur.netrc_path, &mut warnings),
        None => NetrcChange::Keep,
    };
    // The `netrc-file` line setup-cache added goes with the last netrc entry, or once
    // no substituter setup-cache added is left to need it.
    if netrc == NetrcChange::Delete || !conf.settings().any(|(l, s)| s.name == SUBS && is_marked(l))
    {
        remove_values(&mut conf, "netrc-file", Lines::Marked, &|_| true);
    }
    Edit::new(conf, netrc, by_name, warnings)
}

/// The caches setup-cache added itself (`Lines::Marked`) or the user wrote (`Lines::All`).
fn picked<'a>(caches: &'a [CacheSpec], ours: &[bool], lines: Lines) -> Vec<&'a CacheSpec> {
    caches
        .iter()
        .zip(ours)
        .filter(|(_, o)| **o == (lines == Lines::Marked))
        .map(|(c, _)| c)
        .collect()
}

/// Takes the caches' URLs and keys out of `conf`; returns the keys taken out by name.
fn remove_caches(req: &Request, view: &View, ours: &[bool], conf: &mut NixConf) -> Vec<String> {
    for lines in [Lines::Marked, Lines::All] {
        let urls: Vec<&str> = picked(&req.caches, ours, lines)
            .iter()
            .map(|c| c.url.as_str())
            .collect();
        remove_values(conf, SUBS, lines, &|v| urls.iter().any(|u| same_url(u, v)));
    }
    // A cache removed by URL alone (`--remove --cachix NAME`): its key goes too when it
    // is named after the cache's host (`HOST-1:...`, as Cachix and most caches name
    // them) and no substituter left in effect is on that host.
    let now = simulate(&view.judged, &view.judged_idx, conf);
    let hosts_left: Vec<String> = now
        .effective(SUBS)
        .iter()
        .filter_map(|s| url::host(&s.value).map(str::to_owned))
        .collect();
    let mut by_name = Vec::new();
    for lines in [Lines::Marked, Lines::All] {
        let caches = picked(&req.caches, ours, lines);
        let mut named = keys_named_after(conf, &caches, &hosts_left, lines);
        if lines == Lines::Marked {
            named.extend(rotated_keys(conf, &caches, &hosts_left));
        }
        let keys: Vec<&str> = caches
            .iter()
            .map(|c| c.public_key.as_str())
            .filter(|k| !k.is_empty())
            .collect();
        // A cache with its own copy of a shared key ([`shared_keys`]): that copy
        // goes, and the key stays on setup-cache's lines for the cache it was added for.
        let mut own_copy: Vec<&str> = Vec::new();
        if lines == Lines::Marked {
            for c in &caches {
                while let Some(n) = key_for(conf, &c.url) {
                    conf.remove_line(n);
                    own_copy.push(c.url.as_str());
                }
            }
        }
        let keys: Vec<&str> = caches
            .iter()
            .filter(|c| !own_copy.contains(&c.url.as_str()))
            .map(|c| c.public_key.as_str())
            .filter(|k| keys.contains(k))
            .collect();
        remove_values(conf, KEYS, lines, &|v| {
            keys.contains(&v) || named.iter().any(|k| k == v)
        });
        by_name.extend(named);
    }
    by_name
}

/// Earlier keys of the caches setup-cache added, on its own lines: a key of the same
/// name but for its number (`NAME-1` when `NAME-2` is removed, a rotated key) goes with
/// the cache, so that removing a cache whose key was rotated takes all of it out.
///
/// A key of that name is only the cache's own when nothing says it may be another's:
/// it is named after the cache's host (`HOST-1`, and no substituter left is on that
/// host), or no substituter setup-cache added is left at all. Another cache that merely
/// uses a key of the same name (`mycache-2` for a second bucket) keeps it.
fn rotated_keys(conf: &NixConf, caches: &[&CacheSpec], hosts_left: &[String]) -> Vec<String> {
    let family = |k: &str| {
        k.split_once(':')
            .map(|(name, _)| crate::keys::name_base(name).to_owned())
    };
    let ours_left = conf.settings().any(|(l, s)| s.name == SUBS && is_marked(l));
    let families: Vec<(String, &str, Option<&str>)> = caches
        .iter()
        .filter(|c| !c.public_key.is_empty())
        .filter_map(|c| {
            Some((
                family(&c.public_key)?,
                c.public_key.as_str(),
                url::host(&c.url),
            ))
        })
        .collect();
    conf.settings()
        .filter(|(l, s)| s.name == KEYS && is_marked(l))
        .flat_map(|(_, s)| s.values.iter())
        .filter(|v| {
            families.iter().any(|(f, k, host)| {
                v.as_str() != *k
                    && family(v).as_deref() == Some(f)
                    && (!ours_left
                        || host.is_some_and(|h| {
                            crate::keys::named_after(v, h) && !hosts_left.iter().any(|l| l == h)
                        }))
            })
        })
        .cloned()
        .collect()
}

/// The keys on `lines` named after the host of a cache given without a key, unless a
/// substituter left in effect is on that host.
fn keys_named_after(
    conf: &NixConf,
    caches: &[&CacheSpec],
    hosts_left: &[String],
    lines: Lines,
) -> Vec<String> {
    caches
        .iter()
        .filter(|c| c.public_key.is_empty())
        .filter_map(|c| url::host(&c.url))
        .filter(|h| !hosts_left.iter().any(|l| l == h))
        .flat_map(|h| {
            conf.settings()
                .filter(|(l, s)| s.name == KEYS && (lines == Lines::All || is_marked(l)))
                .flat_map(|(_, s)| s.values.iter())
                .filter(|v| crate::keys::named_after(v, h))
                .cloned()
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A warning for each cache taken out of lines the user wrote, naming them.
fn user_line_warnings(
    req: &Request,
    target: &Path,
    ours: &[bool],
    orig: &NixConf,
    conf: &NixConf,
    by_name: &[String],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in picked(&req.caches, ours, Lines::All) {
        let mut values = vec![(SUBS, c.url.as_str())];
        if !c.public_key.is_empty() {
            values.push((KEYS, c.public_key.as_str()));
        } else if let Some(h) = url::host(&c.url) {
            values.extend(
                by_name
                    .iter()
                    .filter(|k| crate::keys::named_after(k, h))
                    .map(|k| (KEYS, k.as_str())),
            );
        }
        if count_values_all(conf, &values) < count_values_all(orig, &values) {
            let lines: Vec<String> = lines_with(orig, &values)
                .iter()
                .map(usize::to_string)
                .collect();
            warnings.push(format!(
                "{} was not added by setup-cache (no line marked `{MARK}` has it): {} of the line(s) you wrote, {} line {}",
                c.url,
                if req.dry_run { "would be taken out" } else { "taken out" },
                target.display(),
                lines.join(", ")
            ));
        }
    }
    warnings
}

/// The netrc without setup-cache's entries for `caches`' hosts (exactly the lines it
/// added); deleted when it was setup-cache's file and nothing else is left. An entry
/// the user wrote for one of them stays, with a warning.
fn netrc_without(
    caches: &[CacheSpec],
    text: &str,
    path: &Path,
    warnings: &mut Vec<String>,
) -> NetrcChange {
    let mut t = text.to_owned();
    let mut any = false;
    let mut last = None;
    for c in caches {
        let host = url::host(&c.url).unwrap_or_default();
        let r = netrc::remove(&t, host);
        if r.theirs_left {
            warnings.push(format!(
                "{} keeps the entry for {host} that you wrote (setup-cache removes only the entries it added)",
                path.display()
            ));
        }
        any |= r.had_ours;
        t.clone_from(&r.text);
        last = Some(r);
    }
    match last {
        _ if !any => NetrcChange::Keep,
        Some(r) if r.only_created_marker() => NetrcChange::Delete,
        _ => NetrcChange::Write(t),
    }
}

/// One report per cache: what the edit does to it, and whether it is in effect after.
pub(super) fn cache_reports(
    req: &Request,
    view: &View,
    cur: &Current,
    edit: &Edit,
) -> Vec<CacheReport> {
    let (layers, idx) = view.effect(req);
    let after = simulate(layers, idx, &edit.conf);
    req.caches
        .iter()
        .map(|c| cache_report(req, c, cur, edit, &after, idx.is_empty()))
        .collect()
}

fn cache_report(
    req: &Request,
    c: &CacheSpec,
    cur: &Current,
    edit: &Edit,
    after: &Layers,
    not_read: bool,
) -> CacheReport {
    let s_before = in_effect(&cur.before, SUBS, &c.url);
    let k_before = in_effect(&cur.before, KEYS, &c.public_key);
    let s_after = in_effect(after, SUBS, &c.url);
    let k_after = in_effect(after, KEYS, &c.public_key);
    let counts = |cf: &NixConf| {
        (
            count_values(cf, SUBS, &c.url),
            count_values(cf, KEYS, &c.public_key),
        )
    };
    let (s_old, k_old) = counts(&cur.conf);
    let (s_new, k_new) = counts(&edit.conf);
    let status = if req.remove {
        if s_new < s_old || k_new < k_old {
            CacheStatus::Removed
        } else {
            CacheStatus::NotPresent
        }
    } else if s_before.is_some() && k_before.is_some() {
        CacheStatus::AlreadyConfigured
    } else if s_new > s_old || k_new > k_old {
        CacheStatus::Added
    } else {
        CacheStatus::Overridden
    };
    let in_effect = if req.remove {
        s_after.is_none()
    } else {
        not_read || (s_after.is_some() && k_after.is_some())
    };
    let overridden_by = if in_effect {
        None
    } else if req.remove {
        s_after.clone()
    } else if s_after.is_none() {
        last_reset(after, SUBS)
    } else {
        last_reset(after, KEYS)
    };
    // Removed by URL alone: the key that went with it (named after its host).
    let public_key = if c.public_key.is_empty() {
        url::host(&c.url)
            .and_then(|h| edit.by_name.iter().find(|k| crate::keys::named_after(k, h)))
            .cloned()
            .unwrap_or_default()
    } else {
        c.public_key.clone()
    };
    CacheReport {
        url: c.url.clone(),
        public_key,
        status,
        substituter_from: s_after,
        key_from: k_after,
        in_effect,
        overridden_by,
    }
}
