//! Section 5: is the Nix configuration sound? Checks every layer Nix reads (system file,
//! user files, `XDG_CONFIG_DIRS`, `NIX_USER_CONF_FILES`, `NIX_CONFIG`, includes), as
//! loaded by [`crate::nixconf`], and reports each problem at its file and line with what
//! to do:
//!
//! - lines Nix rejects (`a=b`, `a =b`), missing `include`s, include cycles, bad values
//!   for boolean and integer settings (all fatal for every `nix` command) — errors;
//! - malformed `trusted-public-keys` — errors;
//! - substituters no trusted key could sign, keys no substituter uses, `require-sigs =
//!   false`, plain-http caches other than loopback, a `substituters =` line that drops
//!   cache.nixos.org, a setting assigned twice in one file, unknown settings (judged
//!   against Nix's own list when `nix` is available), user-level caches an untrusted
//!   user's daemon ignores — warnings;
//! - the same cache or key listed twice — info.
//!
//! [`check`] is pure: the layers, Nix's settings list and the trust status are inputs,
//! so every rule is tested on fixture files without touching the machine.

use super::{Finding, Severity};
use crate::cachetoml::CacheToml;
use crate::cmd::{Cmd, Runner};
use crate::keys::PublicKey;
use crate::nixconf::{ConfFile, LayerKind, Layers, LoadError, Sourced};
use crate::url;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The type of a setting, as far as checking a value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    List,
    /// A `name=value` map (`access-tokens`): `extra-` appends to it, as to a list.
    Map,
    Other,
}

/// The settings this Nix knows, with their types.
#[derive(Debug, Clone, Default)]
pub struct NixSettings {
    pub types: BTreeMap<String, Kind>,
    /// Whether the list is Nix's own (from `show-config`), so unknown names can be judged.
    pub complete: bool,
}

impl NixSettings {
    /// From `nix show-config --json` / `nix config show --json` (names, aliases, and the
    /// JSON type of each value).
    pub fn from_show_config(json: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = v.as_object().ok_or("expected a JSON object")?;
        let mut types = BTreeMap::new();
        for (name, s) in obj {
            let kind = match s.get("value").or_else(|| s.get("defaultValue")) {
                Some(serde_json::Value::Bool(_)) => Kind::Bool,
                Some(serde_json::Value::Number(_)) => Kind::Int,
                Some(serde_json::Value::Array(_)) => Kind::List,
                Some(serde_json::Value::Object(_)) => Kind::Map,
                _ => Kind::Other,
            };
            types.insert(name.clone(), kind);
            if let Some(aliases) = s.get("aliases").and_then(|a| a.as_array()) {
                for a in aliases.iter().filter_map(|a| a.as_str()) {
                    types.insert(a.to_owned(), kind);
                }
            }
        }
        Ok(NixSettings {
            types,
            complete: true,
        })
    }

    /// A small built-in list for when `nix` is not available: value checks for common
    /// settings, no unknown-setting judgement.
    pub fn builtin() -> Self {
        let mut types = BTreeMap::new();
        for b in [
            "require-sigs",
            "sandbox",
            "keep-derivations",
            "keep-outputs",
            "auto-optimise-store",
            "fallback",
            "builders-use-substitutes",
            "substitute",
            "accept-flake-config",
            "keep-going",
        ] {
            types.insert(b.to_owned(), Kind::Bool);
        }
        for i in [
            "cores",
            "max-jobs",
            "connect-timeout",
            "download-attempts",
            "narinfo-cache-negative-ttl",
            "narinfo-cache-positive-ttl",
            "min-free",
            "max-free",
            "http-connections",
        ] {
            types.insert(i.to_owned(), Kind::Int);
        }
        for l in [
            "substituters",
            "trusted-substituters",
            "trusted-public-keys",
            "trusted-users",
            "allowed-users",
            "experimental-features",
            "extra-platforms",
            "system-features",
            "sandbox-paths",
        ] {
            types.insert(l.to_owned(), Kind::List);
        }
        types.insert("access-tokens".to_owned(), Kind::Map);
        NixSettings {
            types,
            complete: false,
        }
    }

    fn kind(&self, name: &str) -> Option<Kind> {
        self.types.get(name).copied()
    }
}

/// Runs `cmd` with no configuration at all (an empty `NIX_CONF_DIR`, no user files, no
/// `NIX_CONFIG`): Nix refuses to start, even for `--version`, when a nix.conf line is
/// invalid, and a broken nix.conf is exactly what is being checked.
fn isolated(cmd: Cmd, empty: &Path) -> Cmd {
    cmd.env("NIX_CONF_DIR", empty)
        .env("NIX_USER_CONF_FILES", empty.join("none"))
        .env_remove("NIX_CONFIG")
}

/// The installed Nix (`None` when `nix` is not on PATH), found even when the
/// configuration is broken. Its commands name no store: the configuration (and the
/// daemon's trust) is the machine's, whatever store is analysed.
pub fn detect_nix(runner: &Runner) -> Option<crate::nixcli::Nix> {
    let empty = tempfile::tempdir().ok()?;
    let out = runner
        .run(&isolated(
            Cmd::new("nix")
                .arg("--version")
                .read_only()
                .timeout(crate::nixcli::QUICK_QUERY_TIMEOUT),
            empty.path(),
        ))
        .ok()?;
    let v = crate::nixcli::NixVersion::parse(&out.stdout_str())?;
    Some(crate::nixcli::Nix::with_version(v, None, runner.clone()))
}

/// Asks the installed Nix for its settings list without reading any configuration (an
/// empty `NIX_CONF_DIR`, no user files, no `NIX_CONFIG`), so a broken nix.conf — the
/// thing being checked — cannot make the question fail. `None` when `nix` is missing.
pub fn nix_settings(nix: &crate::nixcli::Nix, runner: &Runner) -> Option<NixSettings> {
    let empty = tempfile::tempdir().ok()?;
    let cmd = isolated(nix.show_config_cmd(), empty.path());
    let out = runner.run(&cmd).ok()?;
    NixSettings::from_show_config(&out.stdout_str()).ok()
}

/// Whether the daemon honours this user's substituters and keys.
pub use crate::trust::UserTrust as Trust;

/// [`Trust`] for the current user ([`crate::trust::user_trust`]).
pub fn detect_trust(
    env: &crate::nixconf::Env,
    nix: Option<&crate::nixcli::Nix>,
    runner: &Runner,
) -> Trust {
    crate::trust::user_trust(env, runner, nix)
}

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
/// (A plain line set again in its own file is the "set again" warning instead.)
fn dead_list_lines(layers: &Layers, out: &mut Vec<Finding>) {
    let all = layers.assignments();
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
}

/// Inputs of [`check`].
#[derive(Debug, Clone, Copy)]
pub struct ConfigCheck<'a> {
    pub layers: &'a Layers,
    /// Nix's settings (from [`nix_settings`]) or [`NixSettings::builtin`].
    pub settings: &'a NixSettings,
    pub trust: &'a Trust,
    pub cache_toml: Option<&'a CacheToml>,
    /// Nix's own verdict on the unusual number values ([`unusual_numbers`]), from
    /// [`ask_nix_about_values`]: `(name, value) → accepted`. Empty without Nix.
    pub nix_verdicts: &'a BTreeMap<(String, String), bool>,
}

/// A number setting's value that is plainly fine: digits (or `max-jobs = auto`).
fn plain_number(name: &str, v: &str) -> bool {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())) || (name == "max-jobs" && v == "auto")
}

/// `(name, value)` of every number setting whose value is not plain digits (`1G`, `-1`,
/// `many`): whether Nix takes a size suffix or a sign depends on its version and the
/// setting, so the installed Nix is asked about these few ([`ask_nix_about_values`]).
pub fn unusual_numbers(layers: &Layers, settings: &NixSettings) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for a in layers.assignments() {
        let v = a.values.join(" ");
        if !a.is_extra && settings.kind(a.name) == Some(Kind::Int) && !plain_number(a.name, &v) {
            let pair = (a.name.to_owned(), v);
            if !out.contains(&pair) {
                out.push(pair);
            }
        }
    }
    out
}

/// Asks the installed Nix whether it accepts each `name = value`, one isolated
/// `show-config` per pair (a file with that line only).
pub fn ask_nix_about_values(
    nix: &crate::nixcli::Nix,
    runner: &Runner,
    pairs: &[(String, String)],
) -> BTreeMap<(String, String), bool> {
    let mut out = BTreeMap::new();
    for (name, value) in pairs {
        let Ok(dir) = tempfile::tempdir() else {
            continue;
        };
        if std::fs::write(dir.path().join("nix.conf"), format!("{name} = {value}\n")).is_err() {
            continue;
        }
        let cmd = isolated(nix.show_config_cmd(), dir.path()).env("NIX_CONF_DIR", dir.path());
        let accepted = runner
            .run_unchecked(&cmd)
            .ok()
            .and_then(|o| o.status)
            .is_some_and(|s| s.success());
        out.insert((name.clone(), value.clone()), accepted);
    }
    out
}

fn finding(
    sev: Severity,
    file: &Path,
    line: usize,
    message: String,
    what_to_do: String,
) -> Finding {
    Finding {
        severity: sev,
        area: super::Area::Config,
        file: Some(file.display().to_string()),
        line: (line > 0).then_some(line),
        message,
        what_to_do,
    }
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

/// Runs every rule; findings come in file/line order within each rule.
pub fn check(c: &ConfigCheck<'_>) -> Vec<Finding> {
    let layers = c.layers;
    let mut out = Vec::new();

    // Loading problems: invalid lines, missing includes, cycles, unreadable files.
    for e in &layers.errors {
        match e {
            LoadError::InvalidLine { file, line, reason } => out.push(finding(
                Severity::Error,
                file,
                *line,
                // The parser's reason already says that Nix rejects the line.
                if reason.contains("Nix rejects") {
                    format!("{reason}.")
                } else {
                    format!("Nix rejects this line, and then every nix command fails: {reason}.")
                },
                "Fix the line as shown, then check with `nix show-config` (or `nix config show`).".to_owned(),
            )),
            LoadError::MissingInclude { file, line, target } => out.push(finding(
                Severity::Error,
                file,
                *line,
                format!("`include {}` names a file that does not exist; Nix stops with \"file not found\".", target.display()),
                format!("Create {}, fix the path (it is relative to this file's directory), or write `!include` to make it optional.", target.display()),
            )),
            LoadError::IncludeCycle { file, line, target } => out.push(finding(
                Severity::Error,
                file,
                *line,
                format!("Include cycle: {} is already being read.", target.display()),
                "Remove one of the include lines that form the cycle.".to_owned(),
            )),
            LoadError::Unreadable { file, reason } => out.push(finding(
                Severity::Warning,
                file,
                0,
                format!("The file cannot be read ({reason}); Nix skips it, so its settings are not in force."),
                format!("Make it readable: `chmod a+r {}`.", crate::cmd::shell_quote(&file.display().to_string())),
            )),
            LoadError::NotRegular { file, what } => out.push(finding(
                Severity::Error,
                file,
                0,
                format!("The file is {what}, not a regular file: Nix blocks or fails reading it."),
                "Point the include or setting at a regular file.".to_owned(),
            )),
            LoadError::TooLarge { file, reason } => out.push(finding(
                Severity::Error,
                file,
                0,
                format!("The file was not read: {reason}."),
                "Check that the path names the nix.conf you meant.".to_owned(),
            )),
            LoadError::NotUtf8 { file } => out.push(finding(
                Severity::Warning,
                file,
                0,
                "The file is not UTF-8 text; it could not be checked.".to_owned(),
                "Convert it to UTF-8 (e.g. `iconv -t UTF-8`).".to_owned(),
            )),
        }
    }

    let assignments = layers.assignments();
    let file_of = |i: usize| -> &ConfFile { &layers.files[i] };

    // Values, unknown names, duplicates within a file.
    let mut seen_in_file: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for a in &assignments {
        let f = &file_of(a.file_index).path;
        let kind = c.settings.kind(a.name);
        match kind {
            None if c.settings.complete => {
                out.push(finding(
                    Severity::Warning,
                    f,
                    a.line,
                    format!("`{}` is not a setting this Nix knows (it prints \"warning: unknown setting '{}'\" and ignores the line).", a.key, a.key),
                    "Check the spelling against `nix show-config` (or `nix config show`); remove the line if it is for another Nix version.".to_owned(),
                ));
            }
            Some(k)
                if a.is_extra && !matches!(k, Kind::List | Kind::Map) && c.settings.complete =>
            {
                out.push(finding(
                    Severity::Warning,
                    f,
                    a.line,
                    format!("`{}`: `extra-` only works on list settings, and `{}` is not one; Nix ignores the line as an unknown setting.", a.key, a.name),
                    format!(
                        "Write `{} = {}` instead.",
                        a.name,
                        crate::redact::setting_value(a.name, &a.values.join(" "))
                    ),
                ))
            }
            Some(Kind::Bool) if !a.is_extra => {
                let v = a.values.join(" ");
                // `sandbox` is shown as a boolean but also takes `relaxed`.
                let ok = nix_bool(&v).is_some() || (a.name == "sandbox" && v == "relaxed");
                if !ok {
                    out.push(finding(
                        Severity::Error,
                        f,
                        a.line,
                        format!("`{}` must be `true` or `false` (Nix also takes `yes`/`no`, `1`/`0`), not `{v}`; Nix stops with \"Boolean setting '{}' has invalid value\".", a.key, a.name),
                        format!("Write `{} = true` or `{} = false`.", a.key, a.key),
                    ));
                }
            }
            Some(Kind::Int) if !a.is_extra => {
                let v = a.values.join(" ");
                // Without Nix's verdict: digits with an optional sign or size suffix
                // (`min-free = 1G` works on newer Nix, not on 2.8; Nix decides when it can).
                let lenient = || {
                    let digits = v.strip_suffix(['K', 'M', 'G', 'T']).unwrap_or(&v);
                    digits.parse::<i64>().is_ok()
                };
                let ok = plain_number(a.name, &v)
                    || c
                        .nix_verdicts
                        .get(&(a.name.to_owned(), v.clone()))
                        .copied()
                        .unwrap_or_else(lenient);
                if !ok {
                    out.push(finding(
                        Severity::Error,
                        f,
                        a.line,
                        format!("`{}` must be a whole number, not `{v}`; Nix stops with \"setting '{}' has invalid value\".", a.key, a.name),
                        format!("Write a number, e.g. `{} = 4`{}.", a.key, if a.name == "max-jobs" { " or `max-jobs = auto`" } else { "" }),
                    ));
                }
            }
            _ => {}
        }
        if !a.is_extra {
            if let Some(prev) = seen_in_file.insert((a.file_index, a.name.to_owned()), a.line) {
                out.push(finding(
                    Severity::Warning,
                    f,
                    a.line,
                    format!(
                        "`{}` is set again here; line {prev} of the same file has no effect.",
                        a.name
                    ),
                    format!(
                        "Keep one of the two lines (use `extra-{}` to add to a list).",
                        a.name
                    ),
                ));
            }
        }
    }

    dead_list_lines(layers, &mut out);

    // Keys: malformed ones are errors.
    let mut good_keys: Vec<(Sourced, PublicKey)> = Vec::new();
    for k in effective_unique(layers, "trusted-public-keys") {
        match PublicKey::parse(&k.value) {
            Ok(pk) => good_keys.push((k, pk)),
            Err(e) => {
                if let Some(file) = &k.file {
                    out.push(finding(
                        Severity::Error,
                        file,
                        k.line,
                        format!("`{}` is not a valid public key: {e}.", k.value),
                        "Copy the key exactly as the cache publishes it: NAME:BASE64 of 32 bytes (44 characters ending in `=`).".to_owned(),
                    ));
                }
            }
        }
    }

    let subs = effective_unique(layers, "substituters");
    let require_sigs = layers
        .effective_scalar("require-sigs")
        .map(|s| nix_bool(&s.value) != Some(false))
        .unwrap_or(true);
    if let Some(rs) = layers
        .effective_scalar("require-sigs")
        .filter(|s| nix_bool(&s.value) == Some(false))
    {
        if let Some(file) = &rs.file {
            out.push(finding(
                Severity::Warning,
                file,
                rs.line,
                "`require-sigs = false`: Nix accepts unsigned paths from every substituter, so anyone who can answer for a cache URL can put anything in your store.".to_owned(),
                "Remove the line, and add each cache's key to `extra-trusted-public-keys` instead.".to_owned(),
            ));
        }
    }

    // Plain http other than loopback.
    for s in &subs {
        if url::scheme(&s.value).as_deref() == Some("http") && !url::is_loopback(&s.value) {
            if let Some(file) = &s.file {
                out.push(finding(
                    Severity::Warning,
                    file,
                    s.line,
                    format!("`{}` is plain HTTP: what is downloaded can be read and (for unsigned metadata) tampered with on the way.", crate::redact::url(&s.value)),
                    format!("Use `{}` if the cache serves HTTPS.", crate::redact::url(&s.value.replacen("http://", "https://", 1))),
                ));
            }
        }
    }

    // A `substituters =` line that drops cache.nixos.org.
    // Store parameters (`?priority=10`) do not make it another cache.
    let has_nixos = subs
        .iter()
        .any(|s| url::normalize(s.value.split('?').next().unwrap_or("")) == NIXOS_CACHE);
    if !has_nixos {
        if let Some(a) = assignments
            .iter()
            .rfind(|a| a.name == "substituters" && !a.is_extra)
        {
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
            out.push(finding(
                Severity::Warning,
                &file_of(a.file_index).path,
                a.line,
                message,
                fix,
            ));
        }
    }

    // Substituters and keys that pair with nothing.
    if require_sigs {
        let toml_pairs: Vec<(String, String)> = c
            .cache_toml
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
            .filter(|s| !good_keys.iter().any(|(_, k)| pairs(&s.value, &k.name)))
            .collect();
        // A key for a `trusted-substituters` cache is not orphaned: users turn that cache
        // on when they need it (the system-side set-up for untrusted users).
        let on_demand = effective_unique(layers, "trusted-substituters");
        let lone_keys: Vec<&(Sourced, PublicKey)> = good_keys
            .iter()
            .filter(|(_, k)| {
                !signable.iter().any(|s| pairs(&s.value, &k.name))
                    && !on_demand.iter().any(|s| pairs(&s.value, &k.name))
            })
            .collect();
        // A key whose name matches no URL may still be the key of a substituter whose
        // URL matches no key (a self-hosted cache named freely): only report when there
        // is nothing on the other side to pair with.
        if lone_keys.is_empty() {
            for s in &lone_subs {
                if let Some(file) = &s.file {
                    out.push(finding(
                        Severity::Warning,
                        file,
                        s.line,
                        format!("No trusted public key can sign `{}`: with require-sigs on, Nix ignores everything it offers.", s.value),
                        "Add the cache's public key: `extra-trusted-public-keys = NAME:KEY` (e.g. `setup-cache --url URL --public-key KEY`).".to_owned(),
                    ));
                }
            }
        }
        if lone_subs.is_empty() {
            for (k, pk) in &lone_keys {
                if let Some(file) = &k.file {
                    out.push(finding(
                        Severity::Warning,
                        file,
                        k.line,
                        format!("The key `{}` belongs to no substituter in effect: it trusts signatures nobody here downloads.", pk.name),
                        "Add its cache to `extra-substituters`, or remove the key.".to_owned(),
                    ));
                }
            }
        }
    }

    // The same cache or key listed twice.
    for name in [
        "substituters",
        "trusted-public-keys",
        "trusted-substituters",
    ] {
        let mut cur: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for a in assignments.iter().filter(|a| a.name == name) {
            if !a.is_extra {
                cur.clear();
            }
            let f = &file_of(a.file_index).path;
            for v in a.values {
                let key = if name == "trusted-public-keys" {
                    v.clone()
                } else {
                    url::normalize(v).to_owned()
                };
                if let Some((pf, pl)) = cur.get(&key) {
                    out.push(finding(
                        Severity::Info,
                        f,
                        a.line,
                        format!("`{v}` is already in `{name}` (from {pf}:{pl})."),
                        "Remove the duplicate.".to_owned(),
                    ));
                } else {
                    cur.insert(key, (f.display().to_string(), a.line));
                }
            }
        }
    }

    // User-level caches an untrusted user's daemon ignores.
    if let Trust::Untrusted { user } = c.trust {
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
        for s in &subs {
            let from_user = s
                .file
                .as_ref()
                .and_then(|f| layers.files.iter().position(|x| &x.path == f))
                .is_some_and(|i| !is_system(layers, i));
            if from_user && !sys_subs.contains(url::normalize(&s.value)) {
                if let Some(file) = &s.file {
                    out.push(finding(
                        Severity::Warning,
                        file,
                        s.line,
                        format!("`{}` is set in a user file, but `{user}` is not a trusted user: the nix-daemon ignores it (\"ignoring untrusted substituter\"), and user-level keys are dropped too.", s.value),
                        format!("In {sys_file} add `trusted-users = root {user}` (or `trusted-substituters = {}` plus its key in `trusted-public-keys`), then restart the daemon: `{}`.", s.value, layers.daemon_restart_command()),
                    ));
                }
            }
        }
    }

    // cache.toml caches not in effect: informational (setup-cache fixes it).
    if let Some(t) = c.cache_toml {
        for cache in &t.caches {
            if !subs
                .iter()
                .any(|s| url::normalize(&s.value) == url::normalize(&cache.url))
            {
                out.push(Finding {
                    severity: Severity::Info,
                    area: super::Area::Config,
                    file: t.path.as_ref().map(|p| p.display().to_string()),
                    line: Some(cache.line),
                    message: format!(
                        "The project's cache {} is not among the substituters in effect here.",
                        cache.url
                    ),
                    what_to_do:
                        "Run `setup-cache` (or `nix run .#setup-cache`) to add it with its key."
                            .to_owned(),
                });
            }
        }
    }
    out
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
        // A plain line set again in the same file is the "set again" warning, once.
        let f = lines(&run(&format!(
            "substituters = https://a.example.org\nsubstituters = https://cache.nixos.org\ntrusted-public-keys = {NIXOS_KEY}\n"
        )));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].2.contains("is set again here"), "{f:#?}");
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
