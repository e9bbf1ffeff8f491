//! Nix itself, before and after the edit: the installed version (which decides the
//! layers read), whether the nix-daemon will honour the caches, whether Nix now has
//! them in effect, and the file and line when Nix cannot start with the configuration.

use super::*;

/// The installed Nix, found before anything else, or why it could not be asked.
pub(super) struct NixProbe {
    pub(super) nix: Option<Nix>,
    /// Why Nix cannot be asked: the configuration stops it, or `nix --version` failed.
    pub(super) failed: Option<String>,
}

impl NixProbe {
    /// When the configuration as this tool reads it already stops Nix (an include
    /// cycle, a missing include, a line Nix rejects, a FIFO), Nix is not run at all
    /// (Nix 2.8 recurses without end on a self-including nix.conf) and what stops it is
    /// kept, with its file and line. A `nix` on PATH that cannot print its version is
    /// kept the same way, so that the check reports Nix failing instead of being
    /// skipped silently. Nix is looked for only when the request asks it something.
    pub(super) fn run(req: &Request) -> NixProbe {
        let blocking: Vec<String> = nixconf::load(&req.env)
            .errors
            .iter()
            // An unreadable file, or bytes that are not UTF-8 (Nix reads bytes: a comment
            // may hold any), are for Nix itself to judge: it is asked.
            .filter(|e| {
                !matches!(
                    e,
                    nixconf::LoadError::Unreadable { .. } | nixconf::LoadError::NotUtf8 { .. }
                )
            })
            .map(ToString::to_string)
            .collect();
        if !blocking.is_empty() {
            return NixProbe {
                nix: None,
                failed: Some(format!(
                    "Nix cannot start with this configuration: {}",
                    blocking.join("; ")
                )),
            };
        }
        if !(req.ask_nix || req.check_trust) || which::which("nix").is_err() {
            return NixProbe {
                nix: None,
                failed: None,
            };
        }
        match Nix::detect(Runner::new(), None) {
            Ok(n) => NixProbe {
                nix: Some(n),
                failed: None,
            },
            Err(e) => NixProbe {
                nix: None,
                failed: Some(e.to_string()),
            },
        }
    }
}

/// After the edit: the daemon restart for the system file, warnings about how the
/// caches are reached, the trust verdict for a user file, and Nix's own check.
pub(super) fn verify(req: &Request, probe: &NixProbe, view: &View, report: &mut Report) {
    let system = view.at.system();
    if system {
        report.restart = Some(restart_command(view.at.determinate).to_owned());
    }
    if !req.remove {
        report
            .warnings
            .extend(trust::transport_warnings(&req.caches));
    }
    if req.check_trust && !req.remove && !system {
        let input = trust::gather(&req.env, &Runner::new(), probe.nix.as_ref());
        let t = assess(&input, &req.caches, restart_command(false), &req.cli_args);
        report.warnings.extend(t.warnings.iter().cloned());
        report.trust = Some(t);
    }
    if req.ask_nix && !req.dry_run && !view.judged_idx.is_empty() {
        report.nix_check = match (&probe.nix, &probe.failed) {
            (Some(n), _) => Some(ask_nix(
                n,
                req,
                view.real_idx.is_empty().then_some(view.at.target.as_path()),
            )),
            (None, Some(e)) => Some(not_started(&view.real, e)),
            (None, None) => None,
        };
    }
    if !req.remove {
        if let Some(nix) = &probe.nix {
            s3_support(nix, req, report);
        }
    }
    if let Some(c) = &mut report.nix_check {
        for p in &mut c.problems {
            if let Some(at) = locate_nix_error(&view.real, p) {
                if !p.contains(&at) {
                    p.push_str(&format!(" (the value Nix rejects is at {at})"));
                }
            }
        }
    }
}

/// Whether the installed Nix can read the `s3://` caches asked for: one without an S3
/// store (Debian's 2.8 and 2.26) skips them, so they are not in effect (a problem of the
/// Nix check, exit 5; a warning with `--dry-run`); one that sends unsigned requests
/// (Debian's 2.34) reads only buckets open to anonymous reads (a warning).
fn s3_support(nix: &Nix, req: &Request, report: &mut Report) {
    let s3 = trust::s3_urls(&req.caches);
    if s3.is_empty() {
        return;
    }
    let (list, version) = (s3.join(", "), nix.version());
    match nix.s3_support() {
        Some(nixcli::S3Support::None) => {
            let why = format!(
                "{version} was built without S3 support (it says \"don't know how to open Nix store\" for s3://): it skips {list} with a warning and builds instead. Point Nix at the bucket's HTTPS endpoint instead (e.g. https://BUCKET.s3.REGION.amazonaws.com, an R2 public or custom domain, Garage's website endpoint; a private one with --token-env), or use a Nix built with S3 support"
            );
            match &mut report.nix_check {
                Some(c) => {
                    c.ok = false;
                    c.problems.push(why);
                }
                None => report.warnings.push(why),
            }
        }
        Some(nixcli::S3Support::Unsigned) => report.warnings.push(format!(
            "{version} reads s3:// stores but does not sign its requests, even with AWS credentials set: {list} works only if the bucket allows anonymous reads. For a private bucket, point Nix at an HTTPS endpoint with --token-env, or use a Nix that signs S3 requests"
        )),
        Some(nixcli::S3Support::Signed) | None => {}
    }
}

/// The check when Nix could not be asked: why, and the line that stops it.
fn not_started(layers: &Layers, why: &str) -> NixCheck {
    let at = locate_nix_error(layers, why)
        .map(|at| format!(" (the value Nix rejects is at {at})"))
        .unwrap_or_default();
    NixCheck {
        version: "Nix (it did not start)".to_owned(),
        ok: false,
        problems: vec![format!(
            "could not ask Nix, so nothing is in effect until this is fixed: {why}{at}"
        )],
    }
}

/// The `file:line` of the value that stops Nix, from its error message. Nix names the
/// value, never the line: a store it cannot parse (Nix 2.34 parses every substituter
/// while loading the configuration: `Cannot parse Nix store '"https://x"'`; 2.8 says
/// `don't know how to open Nix store 'x'`), or a setting with a value of the wrong type
/// (every version: `Boolean setting 'require-sigs' has invalid value 'maybe'`,
/// `setting 'cores' has invalid value 'x'`). The last line that assigns it wins, as in Nix.
pub(super) fn locate_nix_error(layers: &Layers, msg: &str) -> Option<String> {
    let quoted_after = |line: &str, marker: &str| -> Option<String> {
        let rest = &line[line.find(marker)? + marker.len()..];
        Some(rest[..rest.find('\'')?].to_owned())
    };
    let all = layers.assignments();
    let found = msg.lines().find_map(|l| {
        if let Some(i) = l.find("Nix store '") {
            let rest = &l[i + "Nix store '".len()..];
            let value = &rest[..rest.rfind('\'')?];
            return all.iter().rfind(|a| a.values.iter().any(|v| v == value));
        }
        let name = quoted_after(l, "setting '")?;
        let value = quoted_after(l, "invalid value '");
        all.iter()
            .rfind(|a| {
                (a.name == name || a.key == name)
                    && value.as_ref().is_none_or(|v| a.values.join(" ") == *v)
            })
            .or_else(|| all.iter().rfind(|a| a.name == name || a.key == name))
    })?;
    Some(format!("{}:{}", found.file.display(), found.line))
}

/// Asks Nix whether each cache is (add) / is no longer (remove) in effect.
/// `unread`: the target, when Nix does not read it in this environment (that is then
/// why a cache is not in effect, and the problem says so).
pub(super) fn ask_nix(nix: &Nix, req: &Request, unread: Option<&std::path::Path>) -> NixCheck {
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
        // Nix 2.34 prints each store's parameters sorted by name.
        let has_url = subs.iter().any(|s| crate::url::same_store(s, &c.url));
        let has_key = keys.contains(&c.public_key);
        if req.remove {
            if has_url {
                problems.push(format!(
                    "Nix still has {} in substituters (set in another file or NIX_CONFIG)",
                    c.url
                ));
            }
        } else if let Some(target) = unread.filter(|_| !(has_url && has_key)) {
            problems.push(format!(
                "Nix does not have {} in effect: it does not read {} in this environment (not its system or user nix.conf, nor included from one)",
                c.url,
                target.display()
            ));
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
