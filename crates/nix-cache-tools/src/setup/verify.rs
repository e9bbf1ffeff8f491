//! After the edit: ask Nix itself whether the caches are in effect, and name the file
//! and line when Nix cannot start with the configuration.

use super::*;

/// Nix names a store it cannot parse by its value, not by its line (Nix 2.34 parses
/// every substituter while loading the configuration: `Cannot parse Nix store '"https://x"'`;
/// 2.8 says `don't know how to open Nix store 'x'`): the `file:line` that holds it.
pub(super) fn locate_nix_error(layers: &Layers, msg: &str) -> Option<String> {
    let line = msg.lines().find(|l| l.contains("Nix store '"))?;
    let rest = &line[line.find("Nix store '")? + "Nix store '".len()..];
    let value = &rest[..rest.rfind('\'')?];
    layers
        .assignments()
        .iter()
        .rfind(|a| a.values.iter().any(|v| v == value))
        .map(|a| format!("{}:{}", a.file.display(), a.line))
}

/// Asks Nix whether each cache is (add) / is no longer (remove) in effect.
pub(super) fn ask_nix(nix: &Nix, req: &Request) -> NixCheck {
    let version = nix.version().to_string();
    let cfg = match nix.show_config() {
        Ok(c) => c,
        Err(e) => {
            return NixCheck {
                version,
                ok: false,
                problems: vec![format!("could not ask Nix: {e}")],
            };
        }
    };
    let get = |k: &str| cfg.get(k).map(nixcli::setting_strings).unwrap_or_default();
    let subs = get(SUBS);
    let keys = get(KEYS);
    let mut problems = Vec::new();
    for c in &req.caches {
        let has_url = subs.iter().any(|s| same_url(s, &c.url));
        let has_key = keys.contains(&c.public_key);
        if req.remove {
            if has_url {
                problems.push(format!(
                    "Nix still has {} in substituters (set in another file or NIX_CONFIG)",
                    c.url
                ));
            }
        } else {
            if !has_url {
                problems.push(format!(
                    "Nix does not have {} in substituters: a later file or NIX_CONFIG sets `substituters` (Nix has: {})",
                    c.url,
                    subs.join(" ")
                ));
            }
            if !has_key {
                problems.push(format!(
                    "Nix does not have the key {} in trusted-public-keys: a later file or NIX_CONFIG sets it",
                    c.public_key
                ));
            }
        }
    }
    NixCheck {
        version,
        ok: problems.is_empty(),
        problems,
    }
}
