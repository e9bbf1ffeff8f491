//! What cache-analytics asks the installed Nix, always with no configuration read (an
//! empty `NIX_CONF_DIR`, no user files, no `NIX_CONFIG`), so that a broken nix.conf —
//! the thing being checked — cannot make the questions fail: which Nix it is, the
//! settings it knows and their types, whether it accepts a few unusual values, and
//! whether its daemon trusts this user. The rules in [`super::config`] take the answers
//! as inputs.

use crate::cmd::{Cmd, Runner};
use crate::nixconf::Layers;
use crate::trust::UserTrust;
use std::collections::BTreeMap;
use std::path::Path;

/// The type of a setting, as far as checking a value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true` / `false` (and `yes`/`no`, `1`/`0`).
    Bool,
    /// A whole number (some take a size suffix or `auto`).
    Int,
    /// A space-separated list: `extra-` appends to it.
    List,
    /// A `name=value` map (`access-tokens`): `extra-` appends to it, as to a list.
    Map,
    /// A string, path or anything else not checked.
    Other,
}

/// The settings this Nix knows, with their types.
#[derive(Debug, Clone, Default)]
pub struct NixSettings {
    /// Every setting name (aliases included) and its type.
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

    pub(super) fn kind(&self, name: &str) -> Option<Kind> {
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

/// [`UserTrust`] for the current user ([`crate::trust::user_trust`]).
pub fn detect_trust(
    env: &crate::nixconf::Env,
    nix: Option<&crate::nixcli::Nix>,
    runner: &Runner,
) -> UserTrust {
    crate::trust::user_trust(env, runner, nix)
}

/// A number setting's value that is plainly fine: digits (or `max-jobs = auto`).
pub(super) fn plain_number(name: &str, v: &str) -> bool {
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

/// Why a substituter value is not a store Nix can open, if it is not: quoted (nix.conf
/// values are never quoted, so the quotes become part of the URL) or no store reference
/// at all (not `SCHEME://...`, an absolute path, `auto`, `daemon` or `local`).
pub(super) fn bad_store_value(v: &str) -> Option<BadStore> {
    if v.starts_with(['"', '\'']) || v.ends_with(['"', '\'']) {
        Some(BadStore::Quoted)
    } else if crate::url::scheme(v).is_some()
        || v.starts_with('/')
        || matches!(v, "auto" | "daemon" | "local")
    {
        None
    } else {
        Some(BadStore::NotAStore)
    }
}

/// See [`bad_store_value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BadStore {
    /// `"https://x"` or `'https://x'`.
    Quoted,
    /// `notaurl`.
    NotAStore,
}

/// `(name, value)` of every `substituters` / `trusted-substituters` value that is not a
/// store Nix can open ([`bad_store_value`]). Nix 2.34 parses every substituter while it
/// loads the configuration and refuses to start on such a value; 2.26 and older start
/// and fail (or warn) only when the store is used. The installed Nix is asked
/// ([`ask_nix_about_values`]) which of the two it is.
pub fn bad_stores(layers: &Layers) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (a, v, _) in bad_store_assignments(layers) {
        let pair = (a.name.to_owned(), v.to_owned());
        if !out.contains(&pair) {
            out.push(pair);
        }
    }
    out
}

/// Every `substituters` / `trusted-substituters` value that is no store Nix can open,
/// with its line and why: the one walk [`bad_stores`] and the configuration check share.
pub(super) fn bad_store_assignments<'a>(
    layers: &'a Layers,
) -> Vec<(crate::nixconf::Assignment<'a>, &'a str, BadStore)> {
    let mut out = Vec::new();
    for a in layers.assignments() {
        if !matches!(a.name, "substituters" | "trusted-substituters") {
            continue;
        }
        for v in a.values {
            if let Some(why) = bad_store_value(v) {
                out.push((a.clone(), v.as_str(), why));
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
