//! Section 5: is the Nix configuration sound? Checks every layer Nix reads (system file,
//! user files, `XDG_CONFIG_DIRS`, `NIX_USER_CONF_FILES`, `NIX_CONFIG`, includes), as
//! loaded by [`crate::nixconf`], and reports each problem at its file and line with what
//! to do:
//!
//! - lines Nix rejects (`a=b`, `a =b`), missing `include`s, include cycles, bad values
//!   for boolean and integer settings (all fatal for every `nix` command) — errors;
//! - malformed `trusted-public-keys` — errors;
//! - a substituter that is quoted or not a store URL — an error where the installed Nix
//!   refuses to start with it (2.34 does), else a warning (2.26 and older start);
//! - substituters no trusted key could sign, keys no substituter uses, `require-sigs =
//!   false`, plain-http caches other than loopback, a `substituters =` line that drops
//!   cache.nixos.org, a setting assigned twice in one file, unknown settings (judged
//!   against Nix's own list when `nix` is available), user-level caches an untrusted
//!   user's daemon ignores — warnings;
//! - the same cache or key listed twice — info.
//!
//! [`check`] is pure and runs one function per rule: the layers, Nix's settings list and
//! verdicts, and the trust status are inputs (asked by [`super::nixquery`]), so every
//! rule is tested on fixture files without touching the machine.

use super::nixquery::{BadStore, plain_number};
pub use super::nixquery::{Kind, NixSettings};
use super::{Finding, Severity};
use crate::cachetoml::CacheToml;
use crate::keys::PublicKey;
use crate::nixconf::{Assignment, LayerKind, Layers, LoadError, Sourced};
use crate::url;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Whether the daemon honours this user's substituters and keys.
pub(crate) use crate::trust::UserTrust as Trust;

/// Is the file at `idx` the system file or something it includes (what the daemon reads)?
fn is_system(layers: &Layers, idx: usize) -> bool {
    let mut i = idx;
    loop {
        let f = &layers.files[i];
        match (f.kind, f.included_from) {
            (LayerKind::System, _) => return true,
            (LayerKind::Include, Some((parent, _))) => i = parent,
            _ => return false,
        }
    }
}

/// A list setting in force from the system file and its includes only.
fn system_effective(layers: &Layers, name: &str) -> Vec<Sourced> {
    let a: Vec<_> = layers
        .assignments()
        .into_iter()
        .filter(|a| is_system(layers, a.file_index))
        .collect();
    crate::nixconf::effective_of(&a, name)
}

/// A list setting in force, each value once (the first occurrence: Nix keeps duplicates
/// in the list, and they are reported separately as such).
fn effective_unique(layers: &Layers, name: &str) -> Vec<Sourced> {
    let mut out: Vec<Sourced> = Vec::new();
    for s in layers.effective(name) {
        if !out
            .iter()
            .any(|o| url::normalize(&o.value) == url::normalize(&s.value))
        {
            out.push(s);
        }
    }
    out
}

/// A `substituters` / `trusted-public-keys` line (`extra-` or not) that a later plain
/// assignment of the same setting replaces — in the same file, a later file or
/// `NIX_CONFIG` — does nothing: a warning at that line, naming the one that resets it.
/// (A plain line set again in its own file is [`set_again`]'s warning, at the same line.)
fn dead_list_lines(layers: &Layers) -> Vec<Finding> {
    let all = layers.assignments();
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        if !matches!(a.name, "substituters" | "trusted-public-keys") {
            continue;
        }
        let Some(reset) = all[i + 1..]
            .iter()
            .find(|b| b.name == a.name && !b.is_extra)
        else {
            continue;
        };
        if !a.is_extra && reset.file_index == a.file_index {
            continue;
        }
        out.push(finding(
            Severity::Warning,
            a.file,
            a.line,
            format!(
                "This line does nothing: `{} = ...` at {}:{} sets `{}` again, replacing every value set before it, this line's too.",
                reset.key,
                reset.file.display(),
                reset.line,
                a.name
            ),
            format!(
                "Move these values to {}:{}, or write `extra-{}` there to add to them instead of replacing them.",
                reset.file.display(),
                reset.line,
                a.name
            ),
        ));
    }
    out
}

/// Inputs of [`check`].
#[derive(Debug, Clone, Copy)]
pub struct ConfigCheck<'a> {
    /// Every layer Nix reads, as loaded by [`crate::nixconf::load`].
    pub layers: &'a Layers,
    /// Nix's settings (from [`super::nixquery::nix_settings`]) or [`NixSettings::builtin`].
    pub settings: &'a NixSettings,
    /// Whether the daemon honours this user's caches.
    pub trust: &'a Trust,
    /// The project's cache description, when there is one.
    pub cache_toml: Option<&'a CacheToml>,
    /// Nix's own verdict on the unusual number values ([`super::nixquery::unusual_numbers`]),
    /// from [`super::nixquery::ask_nix_about_values`]: `(name, value) → accepted`. Empty without Nix.
    pub nix_verdicts: &'a BTreeMap<(String, String), bool>,
    /// How the installed Nix reads `s3://` stores (asked only when a substituter in
    /// effect is one): `(version, support)`; `None` without Nix.
    pub s3: Option<(crate::nixcli::NixVersion, crate::nixcli::S3Support)>,
}

/// A configuration finding at `file:line` (line 0: about the whole file).
fn finding(
    sev: Severity,
    file: &Path,
    line: usize,
    message: String,
    what_to_do: String,
) -> Finding {
    Finding::new(sev, super::Area::Config, message, what_to_do).at(file, (line > 0).then_some(line))
}

const NIXOS_CACHE: &str = "https://cache.nixos.org";

/// A substituter with the store setting `trusted=1` (`https://c.example?trusted=1`): Nix
/// takes its paths without a signature, so it needs no key.
fn marked_trusted(url_: &str) -> bool {
    url_.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k == "trusted" && nix_bool(v) == Some(true))
    })
}

/// A boolean value as Nix parses it (`BaseSetting<bool>`, 2.8 → today): `true`, `yes`,
/// `1` and `false`, `no`, `0`; anything else is a fatal error.
pub fn nix_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "yes" | "1" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Runs every rule, in the order the module doc lists them; findings come in file/line
/// order within each rule.
pub fn check(c: &ConfigCheck<'_>) -> Vec<Finding> {
    let layers = c.layers;
    let subs = effective_unique(layers, "substituters");
    let mut out: Vec<Finding> = layers.errors.iter().map(load_error).collect();
    let mut seen = BTreeMap::new();
    for a in &layers.assignments() {
        out.extend(setting_value(c.settings, c.nix_verdicts, a));
        out.extend(set_again(&mut seen, a));
    }
    out.extend(dead_list_lines(layers));
    out.extend(bad_store_values(c.nix_verdicts, layers));
    let (keys, bad_keys) = trusted_keys(layers);
    out.extend(bad_keys);
    out.extend(require_sigs_off(layers));
    out.extend(plain_http(&subs));
    out.extend(s3_unreadable(c.s3, &subs));
    out.extend(drops_default_cache(layers, &subs));
    if require_sigs(layers) {
        out.extend(unpaired(c.cache_toml, layers, &subs, &keys));
    }
    out.extend(listed_twice(layers));
    if let Trust::Untrusted { user } = c.trust {
        out.extend(ignored_by_daemon(layers, &subs, user));
    }
    if let Some(t) = c.cache_toml {
        out.extend(project_caches_missing(t, &subs));
    }
    out
}

/// A problem loading the configuration: an invalid line, a missing include, a cycle, a
/// file that is not a regular one or too large (all stop Nix); an unreadable or
/// non-UTF-8 file (skipped).
fn load_error(e: &LoadError) -> Finding {
    match e {
        LoadError::InvalidLine { file, line, reason } => finding(
            Severity::Error,
            file,
            *line,
            // The parser's reason already says that Nix rejects the line.
            if reason.contains("Nix rejects") {
                format!("{reason}.")
            } else {
                format!("Nix rejects this line, and then every nix command fails: {reason}.")
            },
            "Fix the line as shown, then check with `nix show-config` (or `nix config show`)."
                .to_owned(),
        ),
        LoadError::MissingInclude { file, line, target } => finding(
            Severity::Error,
            file,
            *line,
            format!(
                "`include {}` names a file that does not exist; Nix stops with \"file not found\".",
                target.display()
            ),
            format!(
                "Create {}, fix the path (it is relative to this file's directory), or write `!include` to make it optional.",
                target.display()
            ),
        ),
        LoadError::IncludeCycle { file, line, target } => finding(
            Severity::Error,
            file,
            *line,
            format!("Include cycle: {} is already being read.", target.display()),
            "Remove one of the include lines that form the cycle.".to_owned(),
        ),
        LoadError::Unreadable { file, reason } => finding(
            Severity::Warning,
            file,
            0,
            format!(
                "The file cannot be read ({reason}); Nix skips it, so its settings are not in force."
            ),
            format!(
                "Make it readable: `chmod a+r {}`.",
                crate::cmd::shell_quote(&file.display().to_string())
            ),
        ),
        LoadError::NotRegular { file, what } => finding(
            Severity::Error,
            file,
            0,
            format!("The file is {what}, not a regular file: Nix blocks or fails reading it."),
            "Point the include or setting at a regular file.".to_owned(),
        ),
        LoadError::TooLarge { file, reason } => finding(
            Severity::Error,
            file,
            0,
            format!("The file was not read: {reason}."),
            "Check that the path names the nix.conf you meant.".to_owned(),
        ),
        LoadError::NotUtf8 { file } => finding(
            Severity::Warning,
            file,
            0,
            "The file is not UTF-8 text; it could not be checked.".to_owned(),
            "Convert it to UTF-8 (e.g. `iconv -t UTF-8`).".to_owned(),
        ),
    }
}

/// One assignment judged against Nix's settings: a name this Nix does not know, `extra-`
/// on a setting that is not a list, a boolean or a number Nix rejects.
fn setting_value(
    settings: &NixSettings,
    verdicts: &BTreeMap<(String, String), bool>,
    a: &Assignment<'_>,
) -> Option<Finding> {
    let v = a.values.join(" ");
    match settings.kind(a.name) {
        None if settings.complete => Some(finding(
            Severity::Warning,
            a.file,
            a.line,
            format!("`{}` is not a setting this Nix knows (it prints \"warning: unknown setting '{}'\" and ignores the line).", a.key, a.key),
            "Check the spelling against `nix show-config` (or `nix config show`); remove the line if it is for another Nix version.".to_owned(),
        )),
        Some(k) if a.is_extra && !matches!(k, Kind::List | Kind::Map) && settings.complete => {
            Some(finding(
                Severity::Warning,
                a.file,
                a.line,
                format!("`{}`: `extra-` only works on list settings, and `{}` is not one; Nix ignores the line as an unknown setting.", a.key, a.name),
                format!(
                    "Write `{} = {}` instead.",
                    a.name,
                    crate::redact::setting_value(a.name, &v)
                ),
            ))
        }
        // `sandbox` is shown as a boolean but also takes `relaxed`.
        Some(Kind::Bool)
            if !a.is_extra
                && nix_bool(&v).is_none()
                && !(a.name == "sandbox" && v == "relaxed") =>
        {
            Some(finding(
                Severity::Error,
                a.file,
                a.line,
                format!("`{}` must be `true` or `false` (Nix also takes `yes`/`no`, `1`/`0`), not `{v}`; Nix stops with \"Boolean setting '{}' has invalid value\".", a.key, a.name),
                format!("Write `{} = true` or `{} = false`.", a.key, a.key),
            ))
        }
        Some(Kind::Int) if !a.is_extra && !number_accepted(verdicts, a.name, &v) => {
            Some(finding(
                Severity::Error,
                a.file,
                a.line,
                format!("`{}` must be a whole number, not `{v}`; Nix stops with \"setting '{}' has invalid value\".", a.key, a.name),
                format!("Write a number, e.g. `{} = 4`{}.", a.key, if a.name == "max-jobs" { " or `max-jobs = auto`" } else { "" }),
            ))
        }
        _ => None,
    }
}

/// Whether Nix takes `name = v` for a number setting: plain digits always; else Nix's
/// own verdict when it was asked; without one, digits with an optional sign or size
/// suffix (`min-free = 1G` works on newer Nix, not on 2.8).
fn number_accepted(verdicts: &BTreeMap<(String, String), bool>, name: &str, v: &str) -> bool {
    let lenient = || {
        let digits = v.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(v);
        digits.parse::<i64>().is_ok()
    };
    plain_number(name, v)
        || verdicts
            .get(&(name.to_owned(), v.to_owned()))
            .copied()
            .unwrap_or_else(lenient)
}

/// A substituter that is not a store Nix can open ([`super::nixquery::bad_store_value`]): an error when
/// the installed Nix refused to start with it (2.34 parses every substituter at start-up:
/// `Cannot parse Nix store '"https://x"'`), else a warning, since Nix 2.26 and older start
/// but cannot use it, and a newer Nix stops every command on it.
fn bad_store_values(verdicts: &BTreeMap<(String, String), bool>, layers: &Layers) -> Vec<Finding> {
    let mut out = Vec::new();
    for (a, v, why) in super::nixquery::bad_store_assignments(layers) {
        let shown = crate::redact::url(v);
        let rejected = verdicts.get(&(a.name.to_owned(), v.to_owned())) == Some(&false);
        let effect = if rejected {
            "the installed Nix refuses to start with it, so every nix command fails"
        } else {
            "this Nix cannot open it, and Nix 2.3x (2.34 and later) refuses to start with it, so every nix command fails there"
        };
        let (what, fix) = match why {
            BadStore::Quoted => (
                format!(
                    "`{shown}` in `{}` is quoted; nix.conf values are never quoted, so Nix takes the quotes as part of the URL",
                    a.key
                ),
                format!(
                    "Remove the quotes: `{} = {}`.",
                    a.key,
                    crate::redact::url(v.trim_matches(['"', '\'']))
                ),
            ),
            BadStore::NotAStore => (
                format!(
                    "`{shown}` in `{}` is not a store URL (`https://...`, `s3://...`, `file:///...`)",
                    a.key
                ),
                "Write the cache's full URL, or remove the value.".to_owned(),
            ),
        };
        out.push(finding(
            if rejected {
                Severity::Error
            } else {
                Severity::Warning
            },
            a.file,
            a.line,
            format!("{what}: {effect}."),
            fix,
        ));
    }
    out
}

/// A setting assigned twice in one file (not `extra-`): the earlier line does nothing, a
/// warning at that line naming the one that replaces it. `seen` maps (file, setting) to the line it was last set on.
fn set_again(seen: &mut BTreeMap<(usize, String), usize>, a: &Assignment<'_>) -> Option<Finding> {
    if a.is_extra {
        return None;
    }
    let prev = seen.insert((a.file_index, a.name.to_owned()), a.line)?;
    Some(finding(
        Severity::Warning,
        a.file,
        prev,
        format!(
            "This line does nothing: `{}` is set again at line {} of the same file, which replaces it.",
            a.name, a.line
        ),
        format!(
            "Keep one of the two lines (use `extra-{}` to add to a list).",
            a.name
        ),
    ))
}

/// The `trusted-public-keys` in effect that parse, and an error for each that does not.
fn trusted_keys(layers: &Layers) -> (Vec<(Sourced, PublicKey)>, Vec<Finding>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for k in effective_unique(layers, "trusted-public-keys") {
        match PublicKey::parse(&k.value) {
            Ok(pk) => good.push((k, pk)),
            Err(e) => bad.extend(k.file.as_ref().map(|file| finding(
                Severity::Error,
                file,
                k.line,
                format!("`{}` is not a valid public key: {e}.", k.value),
                "Copy the key exactly as the cache publishes it: NAME:BASE64 of 32 bytes (44 characters ending in `=`).".to_owned(),
            ))),
        }
    }
    (good, bad)
}

/// Whether signatures are required (`require-sigs`, true unless set to false).
fn require_sigs(layers: &Layers) -> bool {
    layers
        .effective_scalar("require-sigs")
        .is_none_or(|s| nix_bool(&s.value) != Some(false))
}

/// `require-sigs = false` in effect.
fn require_sigs_off(layers: &Layers) -> Option<Finding> {
    let rs = layers
        .effective_scalar("require-sigs")
        .filter(|s| nix_bool(&s.value) == Some(false))?;
    Some(finding(
        Severity::Warning,
        rs.file.as_ref()?,
        rs.line,
        "`require-sigs = false`: Nix accepts unsigned paths from every substituter, so anyone who can answer for a cache URL can put anything in your store.".to_owned(),
        "Remove the line, and add each cache's key to `extra-trusted-public-keys` instead.".to_owned(),
    ))
}

/// Substituters over plain HTTP, other than loopback.
fn plain_http(subs: &[Sourced]) -> Vec<Finding> {
    subs.iter()
        .filter(|s| url::scheme(&s.value).as_deref() == Some("http") && !url::is_loopback(&s.value))
        .filter_map(|s| {
            Some(finding(
                Severity::Warning,
                s.file.as_ref()?,
                s.line,
                format!("`{}` is plain HTTP: what is downloaded can be read and (for unsigned metadata) tampered with on the way.", crate::redact::url(&s.value)),
                format!("Use `{}` if the cache serves HTTPS.", crate::redact::url(&s.value.replacen("http://", "https://", 1))),
            ))
        })
        .collect()
}

/// `s3://` substituters the installed Nix cannot use: one built without an S3 store
/// (Debian's 2.8 and 2.26) skips them with a warning; one that sends unsigned requests
/// (Debian's 2.34) reads only buckets open to anonymous reads.
fn s3_unreadable(
    s3: Option<(crate::nixcli::NixVersion, crate::nixcli::S3Support)>,
    subs: &[Sourced],
) -> Vec<Finding> {
    use crate::nixcli::S3Support;
    let Some((version, support)) = s3 else {
        return Vec::new();
    };
    subs.iter()
        .filter(|s| url::scheme(&s.value).as_deref() == Some("s3"))
        .filter_map(|s| {
            let shown = crate::redact::url(&s.value);
            let (sev, message) = match support {
                S3Support::None => (
                    Severity::Warning,
                    format!("`{shown}` is never used: {version} was built without S3 support (\"don't know how to open Nix store\"), so it skips this cache and builds instead."),
                ),
                S3Support::Unsigned => (
                    Severity::Info,
                    format!("`{shown}`: {version} reads s3:// stores without signing its requests, so this cache works only if the bucket allows anonymous reads."),
                ),
                S3Support::Signed => return None,
            };
            Some(finding(
                sev,
                s.file.as_ref()?,
                s.line,
                message,
                "Use the bucket's HTTPS endpoint as the substituter (a public or custom domain, a website endpoint; a private bucket with a netrc token), or a Nix built with S3 support that signs its requests.".to_owned(),
            ))
        })
        .collect()
}

/// A `substituters =` line that leaves cache.nixos.org out of the list in effect (store
/// parameters such as `?priority=10` do not make it another cache).
fn drops_default_cache(layers: &Layers, subs: &[Sourced]) -> Option<Finding> {
    if subs
        .iter()
        .any(|s| url::normalize(s.value.split('?').next().unwrap_or("")) == NIXOS_CACHE)
    {
        return None;
    }
    let assignments = layers.assignments();
    let a = assignments
        .iter()
        .rfind(|a| a.name == "substituters" && !a.is_extra)?;
    let (message, fix) = if a.values.is_empty() {
        (
            format!(
                "`{} =` with no value turns substitution off and drops {NIXOS_CACHE}: every path is built locally.",
                a.key
            ),
            format!(
                "Remove the line (the default is {NIXOS_CACHE}/), or list the caches to use with `extra-substituters = URL`."
            ),
        )
    } else {
        (
            format!(
                "`{} = {}` replaces the default list and drops {NIXOS_CACHE}: everything from nixpkgs will be built locally.",
                a.key,
                a.values.join(" ")
            ),
            format!(
                "Write `extra-substituters = {}` instead (keeps the defaults), or add {NIXOS_CACHE}/ to this line.",
                a.values.join(" ")
            ),
        )
    };
    Some(finding(Severity::Warning, a.file, a.line, message, fix))
}

/// Substituters no trusted key can sign and keys no substituter uses (with signatures
/// required). A key pairs with a substituter when its name names the cache's host, or
/// when cache.toml gives them together.
fn unpaired(
    cache_toml: Option<&CacheToml>,
    layers: &Layers,
    subs: &[Sourced],
    keys: &[(Sourced, PublicKey)],
) -> Vec<Finding> {
    let toml_pairs: Vec<(String, String)> = cache_toml
        .map(|t| {
            t.caches
                .iter()
                .map(|k| {
                    (
                        url::normalize(&k.url).to_owned(),
                        k.public_key.split(':').next().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let pairs = |s: &str, k: &str| {
        crate::keys::names_cache(k, s)
            || toml_pairs
                .iter()
                .any(|(u, n)| u == url::normalize(s) && n == k)
    };
    let signable: Vec<&Sourced> = subs
        .iter()
        .filter(|s| {
            !s.value.starts_with("daemon")
                && !s.value.starts_with("local")
                && !s.value.starts_with("auto")
                && !marked_trusted(&s.value)
        })
        .collect();
    let lone_subs: Vec<&&Sourced> = signable
        .iter()
        .filter(|s| !keys.iter().any(|(_, k)| pairs(&s.value, &k.name)))
        .collect();
    // A key for a `trusted-substituters` cache is not orphaned: users turn that cache on
    // when they need it (the system-side set-up for untrusted users).
    let on_demand = effective_unique(layers, "trusted-substituters");
    let lone_keys: Vec<&(Sourced, PublicKey)> = keys
        .iter()
        .filter(|(_, k)| {
            !signable.iter().any(|s| pairs(&s.value, &k.name))
                && !on_demand.iter().any(|s| pairs(&s.value, &k.name))
        })
        .collect();
    // A key whose name matches no URL may still be the key of a substituter whose URL
    // matches no key (a self-hosted cache named freely): only report when there is
    // nothing on the other side to pair with.
    let mut out = Vec::new();
    if lone_keys.is_empty() {
        out.extend(lone_subs.iter().filter_map(|s| Some(finding(
            Severity::Warning,
            s.file.as_ref()?,
            s.line,
            format!("No trusted public key can sign `{}`: with require-sigs on, Nix ignores everything it offers.", s.value),
            "Add the cache's public key: `extra-trusted-public-keys = NAME:KEY` (e.g. `setup-cache --url URL --public-key KEY`).".to_owned(),
        ))));
    }
    if lone_subs.is_empty() {
        out.extend(lone_keys.iter().filter_map(|(k, pk)| Some(finding(
            Severity::Warning,
            k.file.as_ref()?,
            k.line,
            format!("The key `{}` belongs to no substituter in effect: it trusts signatures nobody here downloads.", pk.name),
            "Add its cache to `extra-substituters`, or remove the key.".to_owned(),
        ))));
    }
    out
}

/// The same cache or key listed twice in the list in effect (info).
fn listed_twice(layers: &Layers) -> Vec<Finding> {
    let assignments = layers.assignments();
    let mut out = Vec::new();
    for name in [
        "substituters",
        "trusted-public-keys",
        "trusted-substituters",
    ] {
        let mut cur: BTreeMap<String, (String, usize, bool)> = BTreeMap::new();
        for a in assignments.iter().filter(|a| a.name == name) {
            if !a.is_extra {
                cur.clear();
            }
            // setup-cache writes a key once per cache it added with it (two URLs of one
            // cache): its own marked copies are no mistake to report.
            let marked = layers.files[a.file_index]
                .conf
                .line(a.line)
                .and_then(|l| l.comment())
                .is_some_and(|c| c.starts_with(crate::setup::MARK));
            for v in a.values {
                let key = if name == "trusted-public-keys" {
                    v.clone()
                } else {
                    url::normalize(v).to_owned()
                };
                if let Some((_, _, true)) = cur.get(&key).filter(|_| marked) {
                } else if let Some((pf, pl, _)) = cur.get(&key) {
                    out.push(finding(
                        Severity::Info,
                        a.file,
                        a.line,
                        format!("`{v}` is already in `{name}` (from {pf}:{pl})."),
                        "Remove the duplicate.".to_owned(),
                    ));
                } else {
                    cur.insert(key, (a.file.display().to_string(), a.line, marked));
                }
            }
        }
    }
    out
}

/// User-level caches the daemon of an untrusted `user` ignores: set in a user file and
/// not allowed by the system files.
fn ignored_by_daemon(layers: &Layers, subs: &[Sourced], user: &str) -> Vec<Finding> {
    let sys_subs: BTreeSet<String> = system_effective(layers, "substituters")
        .into_iter()
        .chain(system_effective(layers, "trusted-substituters"))
        .map(|s| url::normalize(&s.value).to_owned())
        .collect();
    let sys_file = layers
        .roots
        .first()
        .map(|&i| layers.files[i].path.display().to_string())
        .unwrap_or_else(|| "/etc/nix/nix.conf".to_owned());
    subs.iter()
        .filter(|s| {
            let from_user = s
                .file
                .as_ref()
                .and_then(|f| layers.files.iter().position(|x| &x.path == f))
                .is_some_and(|i| !is_system(layers, i));
            from_user && !sys_subs.contains(url::normalize(&s.value))
        })
        .filter_map(|s| Some(finding(
            Severity::Warning,
            s.file.as_ref()?,
            s.line,
            format!("`{}` is set in a user file, but `{user}` is not a trusted user: the nix-daemon ignores it (\"ignoring untrusted substituter\"), and user-level keys are dropped too.", s.value),
            format!("In {sys_file} add `trusted-users = root {user}` (or `trusted-substituters = {}` plus its key in `trusted-public-keys`), then restart the daemon: `{}`.", s.value, layers.daemon_restart_command()),
        )))
        .collect()
}

/// cache.toml's caches that are not in effect here (info: setup-cache fixes it).
fn project_caches_missing(t: &CacheToml, subs: &[Sourced]) -> Vec<Finding> {
    t.caches
        .iter()
        .filter(|cache| {
            !subs
                .iter()
                .any(|s| url::normalize(&s.value) == url::normalize(&cache.url))
        })
        .map(|cache| {
            Finding::new(
                Severity::Info,
                super::Area::Config,
                format!(
                    "The project's cache {} is not among the substituters in effect here.",
                    cache.url
                ),
                "Run `setup-cache` (or `nix run .#setup-cache`) to add it with its key.".to_owned(),
            )
            .with_file(
                t.path.as_ref().map(|p| p.display().to_string()),
                Some(cache.line),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conf: &str) -> Vec<Finding> {
        run_with(conf, &BTreeMap::new())
    }

    fn run_with(conf: &str, verdicts: &BTreeMap<(String, String), bool>) -> Vec<Finding> {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("nix.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
        let env = crate::nixconf::Env {
            nix_conf_dir: Some(d.path().to_owned()),
            nix_user_conf_files: Some(Default::default()),
            ..Default::default()
        };
        let layers = crate::nixconf::load(&env);
        check(&ConfigCheck {
            layers: &layers,
            settings: &NixSettings::builtin(),
            trust: &Trust::Trusted,
            cache_toml: None,
            nix_verdicts: verdicts,
            s3: None,
        })
    }

    #[test]
    fn nix_decides_unusual_numbers() {
        let mut v = BTreeMap::new();
        v.insert(("min-free".to_owned(), "1G".to_owned()), false);
        let f = run_with("min-free = 1G\n", &v);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("not `1G`"), "{f:?}");
        v.insert(("min-free".to_owned(), "1G".to_owned()), true);
        assert_eq!(run_with("min-free = 1G\n", &v), vec![]);
    }

    #[test]
    fn values_nix_accepts_are_not_flagged() {
        assert_eq!(
            run("sandbox = relaxed\nmax-jobs = auto\nmin-free = 1G\ncores = 0\n"),
            vec![]
        );
        let f = run("sandbox = maybe\ncores = lots\n");
        assert_eq!(
            f.iter().map(|f| (f.line, f.severity)).collect::<Vec<_>>(),
            [(Some(1), Severity::Error), (Some(2), Severity::Error)]
        );
    }

    #[test]
    fn quoted_and_non_url_substituters_are_flagged_at_their_line() {
        let conf = "extra-substituters = \"https://x.cachix.org\" 'https://u:SECRET@y.org'\nextra-trusted-substituters = notaurl /srv/cache auto\nextra-substituters = https://ok.example s3://b?region=x\n";
        let bad = |f: &[Finding]| {
            lines(f)
                .into_iter()
                .filter(|x| x.2.contains("quoted") || x.2.contains("not a store URL"))
                .collect::<Vec<_>>()
        };
        // Without Nix's verdict (or where it started, as 2.26 and older do): warnings.
        let f = bad(&run(conf));
        assert_eq!(
            f.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
            [
                (1, Severity::Warning),
                (1, Severity::Warning),
                (2, Severity::Warning)
            ],
            "{f:#?}"
        );
        assert!(
            f[0].2
                .contains("Remove the quotes: `extra-substituters = https://x.cachix.org`"),
            "{f:#?}"
        );
        assert!(f[0].2.contains("Nix 2.3x"), "{f:#?}");
        assert!(f.iter().all(|x| !x.2.contains("SECRET")), "{f:#?}");
        assert!(f[2].2.contains("`notaurl`"), "{f:#?}");
        // Nix 2.34 refuses to start with the quoted one: that one is an error.
        let mut v = BTreeMap::new();
        v.insert(
            (
                "substituters".to_owned(),
                "\"https://x.cachix.org\"".to_owned(),
            ),
            false,
        );
        let f = bad(&run_with(conf, &v));
        assert_eq!(f[0].1, Severity::Error, "{f:#?}");
        assert!(
            f[0].2.contains("the installed Nix refuses to start"),
            "{f:#?}"
        );
        assert_eq!((f[1].1, f[2].1), (Severity::Warning, Severity::Warning));
    }

    /// `(line, severity, message + what to do)` of every finding.
    fn lines(f: &[Finding]) -> Vec<(usize, Severity, String)> {
        f.iter()
            .map(|f| {
                (
                    f.line.unwrap_or(0),
                    f.severity,
                    format!("{} {}", f.message, f.what_to_do),
                )
            })
            .collect()
    }

    const NIXOS_KEY: &str = "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";

    #[test]
    fn require_sigs_false_is_a_warning_at_its_line() {
        let f = lines(&run("sandbox = false\nrequire-sigs = false\n"));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].0, f[0].1), (2, Severity::Warning));
        assert!(f[0].2.contains("`require-sigs = false`"), "{f:#?}");
        assert!(f[0].2.contains("Remove the line"), "{f:#?}");
        assert_eq!(run("require-sigs = true\n"), vec![]);
    }

    #[test]
    fn plain_http_is_flagged_except_on_loopback() {
        let conf = format!(
            "extra-substituters = http://127.0.0.1:5000 http://localhost:8080/ http://[::1]:80 http://cache.example.com\nextra-trusted-public-keys = cache.example.com-1:{}\n",
            NIXOS_KEY.split_once(':').map(|(_, k)| k).unwrap_or("")
        );
        let f = lines(&run(&conf));
        let http: Vec<_> = f.iter().filter(|x| x.2.contains("plain HTTP")).collect();
        assert_eq!(http.len(), 1, "{f:#?}");
        assert_eq!((http[0].0, http[0].1), (1, Severity::Warning));
        assert!(http[0].2.contains("`http://cache.example.com`"), "{f:#?}");
        assert!(http[0].2.contains("https://cache.example.com"), "{f:#?}");
    }

    #[test]
    fn substituters_line_dropping_the_default_cache() {
        let f = lines(&run("substituters =\n"));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].0, f[0].1), (1, Severity::Warning));
        assert!(f[0].2.contains("turns substitution off"), "{f:#?}");
        // Keeping cache.nixos.org on the line is fine.
        let ok =
            format!("substituters = https://cache.nixos.org/\ntrusted-public-keys = {NIXOS_KEY}\n");
        assert_eq!(run(&ok), vec![]);
        // Store parameters do not make it another cache.
        let ok = format!(
            "substituters = https://cache.nixos.org/?priority=10\ntrusted-public-keys = {NIXOS_KEY}\n"
        );
        assert_eq!(run(&ok), vec![]);
        // `extra-substituters` keeps the defaults: nothing is dropped.
        let f = lines(&run(
            "extra-substituters = https://nix-community.cachix.org\nextra-trusted-public-keys = nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs=\n",
        ));
        assert_eq!(f, vec![]);
    }

    #[test]
    fn lines_a_later_plain_assignment_resets_do_nothing() {
        let conf = format!(
            "extra-substituters = http://plain.example.org\n\
             extra-trusted-public-keys = plain.example.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n\
             substituters = https://cache.nixos.org\n\
             trusted-public-keys = {NIXOS_KEY}\n"
        );
        let f = lines(&run(&conf));
        let dead: Vec<_> = f
            .iter()
            .filter(|(_, _, m)| m.contains("This line does nothing"))
            .collect();
        assert_eq!(dead.len(), 2, "{f:#?}");
        assert_eq!((dead[0].0, dead[0].1), (1, Severity::Warning));
        assert!(dead[0].2.contains(":3 sets `substituters` again"), "{f:#?}");
        assert_eq!(dead[1].0, 2);
        assert!(
            dead[1].2.contains(":4 sets `trusted-public-keys` again"),
            "{f:#?}"
        );
        // The plain-http cache is not in force, so not flagged as such.
        assert!(
            !f.iter()
                .any(|(_, _, m)| m.contains("plain HTTP") || m.contains("http://")),
            "{f:#?}"
        );
        // A plain line set again in the same file: one warning, at the line that does
        // nothing, naming the line that replaces it.
        let f = lines(&run(&format!(
            "substituters = https://a.example.org\nsubstituters = https://cache.nixos.org\ntrusted-public-keys = {NIXOS_KEY}\n"
        )));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].0, f[0].1), (1, Severity::Warning), "{f:#?}");
        assert!(
            f[0].2.contains("This line does nothing") && f[0].2.contains("line 2"),
            "{f:#?}"
        );
    }

    #[test]
    fn a_key_with_no_substituter_and_a_substituter_with_no_key() {
        let f = lines(&run(
            "extra-trusted-public-keys = orphan.example.net-1:iPaBGrXY/G0xd/m3YJrg/Ov9oYflBGti04u1OeiLdNc=\n",
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].0, f[0].1), (1, Severity::Warning));
        assert!(f[0].2.contains("belongs to no substituter"), "{f:#?}");
        let f = lines(&run(
            "# a cache\n\nextra-substituters = https://nokey.example.org\n",
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].0, f[0].1), (3, Severity::Warning));
        assert!(f[0].2.contains("No trusted public key can sign"), "{f:#?}");
        assert!(f[0].2.contains("extra-trusted-public-keys"), "{f:#?}");
        // With require-sigs off the pairing does not matter (the one warning is about that).
        let f = lines(&run(
            "require-sigs = false\nextra-substituters = https://nokey.example.org\n",
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
    }

    #[test]
    fn duplicates_and_aliases() {
        let f = lines(&run(&format!(
            "trusted-public-keys = {NIXOS_KEY}\nextra-trusted-public-keys = {NIXOS_KEY}\nbinary-caches = https://cache.nixos.org\nextra-substituters = https://cache.nixos.org/\n"
        )));
        let mut f = f;
        f.sort();
        assert_eq!(
            f.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
            [(2, Severity::Info), (4, Severity::Info)],
            "{f:#?}"
        );
        assert!(
            f[0].2.contains("already in `trusted-public-keys`"),
            "{f:#?}"
        );
        // `binary-caches` is the old name of `substituters`.
        assert!(f[1].2.contains("already in `substituters`"), "{f:#?}");
        // setup-cache's own copies, one per cache that uses the key: no finding.
        let mark = crate::setup::MARK;
        let f = lines(&run(&format!(
            "extra-substituters = https://a.example {mark}\nextra-trusted-public-keys = {NIXOS_KEY} {mark}\nextra-substituters = https://b.example {mark}\nextra-trusted-public-keys = {NIXOS_KEY} {mark} for https://b.example\n"
        )));
        assert!(!f.iter().any(|x| x.2.contains("already in")), "{f:#?}");
    }

    #[test]
    fn syntax_nix_rejects_is_an_error_at_its_line() {
        for bad in ["cores=4", "cores =4", "cores= 4"] {
            let f = lines(&run(&format!("# c\n{bad}\n")));
            assert_eq!(
                f.iter()
                    .filter(|x| x.2.matches("Nix rejects").count() == 1)
                    .count(),
                1,
                "said once: {f:#?}"
            );
            assert_eq!(
                f.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
                [(2, Severity::Error)],
                "{bad}: {f:#?}"
            );
        }
    }

    #[test]
    fn booleans_as_nix_parses_them() {
        // Nix 2.8 → today: yes/no/1/0 are booleans too (checked with nix show-config).
        assert_eq!(
            run("keep-outputs = yes\nfallback = no\nkeep-derivations = 1\nsandbox = 0\n"),
            vec![]
        );
        let f = lines(&run("keep-outputs = on\n"));
        assert_eq!((f.len(), f[0].0, f[0].1), (1, 1, Severity::Error), "{f:#?}");
        // `require-sigs = no` / `0` turn signatures off just like `false`.
        for off in ["no", "0"] {
            let f = lines(&run(&format!("require-sigs = {off}\n")));
            assert_eq!(f.len(), 1, "{off}: {f:#?}");
            assert!(f[0].2.contains("`require-sigs = false`"), "{off}: {f:#?}");
        }
    }

    #[test]
    fn a_key_for_a_trusted_substituter_is_not_orphaned() {
        // What the untrusted-user fix writes in the system file: users may opt in.
        let conf = "trusted-substituters = https://nix-community.cachix.org\nextra-trusted-public-keys = nix-community.cachix.org-1:mB9FSh9qf2dCimDSUo8Zy7bkq5CX+/rkCWyvRCYg3Fs=\n";
        assert_eq!(run(conf), vec![]);
        // A key for neither is still reported.
        let f = lines(&run(
            "trusted-substituters = https://nix-community.cachix.org\nextra-trusted-public-keys = orphan.example.net-1:iPaBGrXY/G0xd/m3YJrg/Ov9oYflBGti04u1OeiLdNc=\n",
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].2.contains("belongs to no substituter"), "{f:#?}");
    }

    #[test]
    fn a_cache_marked_trusted_needs_no_key() {
        // Nix takes unsigned paths from a substituter with `?trusted=1`.
        assert_eq!(
            run("extra-substituters = http://127.0.0.1:5000?trusted=1\n"),
            vec![]
        );
        let f = lines(&run(
            "extra-substituters = https://nokey.example.org?trusted=0\n",
        ));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].2.contains("No trusted public key can sign"), "{f:#?}");
    }
}
