//! What [`run`] reports: one status per cache, the netrc, Nix's own verdict, trust, and
//! the human rendering (the JSON is the serialized form).

use super::*;

/// What happened to one cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStatus {
    /// Written (or, in dry-run, would be) so that it takes effect.
    Added,
    /// Already in effect, with its key: nothing written.
    AlreadyConfigured,
    /// Taken out of the target (`--remove`).
    Removed,
    /// `--remove`: the target did not have it.
    NotPresent,
    /// Already in the target file, but a later file or `NIX_CONFIG` overrides it, and
    /// nothing in this file can change that.
    Overridden,
}

/// One cache's outcome (`caches[]` in the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct CacheReport {
    /// The substituter URL.
    pub url: String,
    /// Its key; for `--remove` by URL alone, the key named after its host that went too.
    pub public_key: String,
    /// What the edit did to it.
    pub status: CacheStatus,
    /// `file:line` the substituter is (or would be) in effect from; `None` if it is not.
    pub substituter_from: Option<String>,
    /// `file:line` the key is (or would be) in effect from; `None` if it is not.
    pub key_from: Option<String>,
    /// After the edit, is the cache in effect (add) / gone (remove) per the files?
    pub in_effect: bool,
    /// The assignment that keeps it from taking effect (or keeps it in effect after
    /// `--remove`), as `file:line`.
    pub overridden_by: Option<String>,
}

/// The netrc change for private caches (`netrc` in the JSON; tokens never shown).
#[derive(Debug, Clone, Serialize)]
pub struct NetrcReport {
    /// The netrc file (the `netrc-file` in effect, or the one beside the target).
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub path: PathBuf,
    /// The hosts whose entries were written or taken out.
    pub hosts: Vec<String>,
    /// What became of the file.
    pub action: NetrcAction,
}

/// What became of the netrc file (`written`, `removed`, `deleted` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetrcAction {
    /// The tokens' entries were written (added or updated).
    Written,
    /// `--remove` took the caches' entries out; others are left.
    Removed,
    /// `--remove` took out the last entry, so the file was deleted.
    Deleted,
}

impl std::fmt::Display for NetrcAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetrcAction::Written => "written",
            NetrcAction::Removed => "removed",
            NetrcAction::Deleted => "deleted",
        })
    }
}

/// The installed Nix's own view after the edit (`nix_check` in the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct NixCheck {
    /// The Nix asked (`Nix 2.26.3`, `Lix 2.91.1`), or `Nix (it did not start)`.
    pub version: String,
    /// True when Nix's own view agrees with what was asked for.
    pub ok: bool,
    /// Each disagreement, or why Nix could not be asked, with the line at fault.
    pub problems: Vec<String>,
}

/// Which nix.conf is edited (`user`, `system` or `file` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The user file Nix reads first (`~/.config/nix/nix.conf` by default).
    User,
    /// The system file the nix-daemon reads (`--system`).
    System,
    /// A file given with `--file`.
    File,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::User => "user",
            TargetKind::System => "system",
            TargetKind::File => "file",
        })
    }
}

/// Adding or removing (`add` / `remove` in the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Add the caches.
    Add,
    /// `--remove`: take them out.
    Remove,
}

/// The outcome, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The nix.conf edited (absolute).
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub target: PathBuf,
    /// Which kind of file it is.
    pub target_kind: TargetKind,
    /// Adding or removing.
    pub mode: Mode,
    /// Nothing was written: the diff shows what would be.
    pub dry_run: bool,
    /// Whether the target file was (or, in dry-run, would be) changed.
    pub changed: bool,
    /// `--remove` left the target without a byte, so it was (would be) deleted: Nix
    /// reads a missing nix.conf exactly like an empty one, and a file setup-cache created
    /// is gone again. The previous content is in `backup`.
    pub deleted: bool,
    /// The previous version, saved beside the target (`NAME.setup-cache.bak`).
    #[serde(serialize_with = "crate::output::lossy_opt_path")]
    pub backup: Option<PathBuf>,
    /// One entry per cache, in the order given.
    pub caches: Vec<CacheReport>,
    /// Unified diff of the change (netrc passwords redacted); empty when unchanged.
    pub diff: String,
    /// The netrc change, when there is one.
    pub netrc: Option<NetrcReport>,
    /// Why the target was not edited (exit 3), when it is a symlink or generated.
    pub managed: Option<Managed>,
    /// For a managed target: what to put in the Nix configuration instead.
    pub advice: Option<String>,
    /// Whether the nix-daemon will honour the caches (user files only).
    pub trust: Option<TrustReport>,
    /// What the installed Nix says after the edit.
    pub nix_check: Option<NixCheck>,
    /// Daemon restart command (system target).
    pub restart: Option<String>,
    /// Everything worth knowing that did not stop the run (each printed `warning: ...`).
    pub warnings: Vec<String>,
    /// The exit code this outcome maps to.
    pub exit_code: ExitCode,
}

impl Report {
    /// The report before anything is read: nothing changed yet.
    pub(super) fn start(req: &Request, at: &Resolution) -> Report {
        Report {
            target: at.target.clone(),
            target_kind: at.kind,
            mode: if req.remove { Mode::Remove } else { Mode::Add },
            dry_run: req.dry_run,
            changed: false,
            deleted: false,
            backup: None,
            caches: Vec::new(),
            diff: String::new(),
            netrc: None,
            managed: None,
            advice: None,
            trust: None,
            nix_check: None,
            restart: None,
            warnings: Vec::new(),
            exit_code: ExitCode::Ok,
        }
    }

    /// A target NixOS, nix-darwin or home-manager generates: nothing is written, and
    /// the advice says what to put in that configuration instead.
    pub(super) fn managed(mut self, m: Managed, req: &Request) -> Report {
        self.advice = Some(managed::advice(
            &m,
            &self.target,
            &req.caches,
            req.remove,
            &req.cli_args,
        ));
        self.managed = Some(m);
        self.exit_code = ExitCode::StoreManaged;
        self
    }

    /// Records the planned edit: whether the target changes or goes, each cache's
    /// status, the diffs (secrets redacted), the netrc change and the plan's warnings.
    pub(super) fn record(&mut self, req: &Request, view: &View, cur: &Current, edit: &Edit) {
        self.changed = edit.text != cur.text();
        // Never delete a file a plain `include` names: Nix stops when that one is missing.
        self.deleted = req.remove
            && self.changed
            && edit.text.is_empty()
            && !required_by_include(&view.real, &view.real_idx);
        self.caches = cache_reports(req, view, cur, edit);
        self.diff = diff(
            &self.target,
            &crate::redact::nixconf(cur.text()),
            &crate::redact::nixconf(&edit.text),
        );
        if let Some(after) = edit.netrc.text() {
            let before = netrc::redact(cur.netrc.as_deref().unwrap_or(""));
            self.diff
                .push_str(&diff(&cur.netrc_path, &before, &netrc::redact(after)));
            self.netrc = Some(NetrcReport {
                path: cur.netrc_path.clone(),
                hosts: req
                    .caches
                    .iter()
                    .filter_map(|c| url::host(&c.url))
                    .map(str::to_owned)
                    .collect(),
                action: match (req.remove, &edit.netrc) {
                    (false, _) => NetrcAction::Written,
                    (true, NetrcChange::Delete) => NetrcAction::Deleted,
                    (true, _) => NetrcAction::Removed,
                },
            });
        }
        self.warnings.extend(edit.warnings.iter().cloned());
    }

    /// The exit code the outcome maps to: untrusted first, then not in effect.
    pub(super) fn verdict(&self) -> ExitCode {
        if self
            .trust
            .as_ref()
            .is_some_and(|t| t.status == TrustStatus::Untrusted)
        {
            ExitCode::Untrusted
        } else if self.caches.iter().any(|c| !c.in_effect)
            || self.nix_check.as_ref().is_some_and(|c| !c.ok)
        {
            ExitCode::NotInEffect
        } else {
            ExitCode::Ok
        }
    }

    /// The human-readable report.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let dry = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        o.push_str(&format!(
            "setup-cache: {} ({} nix.conf){dry}\n",
            self.target.display(),
            self.target_kind
        ));
        if let Some(a) = &self.advice {
            o.push_str(&format!("nothing written: {a}\n"));
            return o;
        }
        for c in &self.caches {
            o.push_str(&self.human_cache(c));
        }
        o.push_str(&self.human_files());
        o.push_str(&self.human_checks());
        for w in &self.warnings {
            o.push_str(&format!("warning: {w}\n"));
        }
        o
    }

    /// One cache: what happened, where it is in effect from, what overrides it.
    fn human_cache(&self, c: &CacheReport) -> String {
        let what = match (c.status, self.dry_run) {
            (CacheStatus::Added, false) => "added",
            (CacheStatus::Added, true) => "would add",
            (CacheStatus::AlreadyConfigured, _) => "already configured",
            (CacheStatus::Removed, false) => "removed",
            (CacheStatus::Removed, true) => "would remove",
            (CacheStatus::NotPresent, _) => "not in this file",
            (CacheStatus::Overridden, _) => "in this file but overridden",
        };
        let mut o = format!("  {what}: {}\n", c.url);
        if !self.dry_run || c.status == CacheStatus::AlreadyConfigured {
            if let Some(f) = &c.substituter_from {
                o.push_str(&format!("    substituter in effect from {f}\n"));
            }
            if let Some(f) = &c.key_from {
                o.push_str(&format!("    key {} in effect from {f}\n", c.public_key));
            }
        }
        let Some(by) = &c.overridden_by else { return o };
        if self.mode == Mode::Remove {
            let how = if by.starts_with("NIX_CONFIG:") {
                "unset the NIX_CONFIG environment variable or take the cache out of it".to_owned()
            } else {
                let file = by.rsplit_once(':').map_or(by.as_str(), |(f, _)| f);
                format!(
                    "take it out there too: setup-cache --remove --file {} {} (as root for a system file)",
                    shell_quote(file),
                    match c.public_key.is_empty() {
                        true => format!("--url {}", shell_quote(&c.url)),
                        false => format!(
                            "--url {} --public-key {}",
                            shell_quote(&c.url),
                            shell_quote(&c.public_key)
                        ),
                    }
                )
            };
            o.push_str(&format!("    still in effect from {by}: {how}\n"));
        } else if by.starts_with("NIX_CONFIG:") {
            o.push_str(&format!(
                "    NOT in effect: the NIX_CONFIG environment variable ({by}) sets the list again after every file; unset it, or add the cache to it as extra-substituters / extra-trusted-public-keys\n"
            ));
        } else {
            o.push_str(&format!(
                "    NOT in effect: {by} sets the list again after this file; add the cache there, or remove that line\n"
            ));
        }
        o
    }

    /// The files: the diff (dry run), unchanged / deleted, the backup, the netrc.
    fn human_files(&self) -> String {
        let mut o = String::new();
        if !self.diff.is_empty() && self.dry_run {
            o.push('\n');
            o.push_str(&self.diff);
            if !self.diff.ends_with('\n') {
                o.push('\n');
            }
        }
        if !self.changed && !self.dry_run {
            o.push_str("  file unchanged\n");
        }
        if self.deleted {
            let verb = if self.dry_run {
                "would delete"
            } else {
                "deleted"
            };
            o.push_str(&format!(
                "  {verb} {}: nothing left in it (Nix reads no file like an empty one)\n",
                self.target.display()
            ));
        }
        if let Some(b) = &self.backup {
            o.push_str(&format!("  previous version saved as {}\n", b.display()));
        }
        if let Some(n) = &self.netrc {
            let done = if self.dry_run {
                format!("would be {}", n.action)
            } else {
                n.action.to_string()
            };
            o.push_str(&format!(
                "  netrc {} {done} (mode 0600) for {}\n",
                n.path.display(),
                n.hosts.join(", ")
            ));
        }
        o
    }

    /// Nix's own check, the trust verdict (with its fix) and the daemon restart.
    fn human_checks(&self) -> String {
        let mut o = String::new();
        if let Some(c) = &self.nix_check {
            if c.ok {
                let state = if self.mode == Mode::Remove {
                    "no longer in effect"
                } else {
                    "in effect"
                };
                o.push_str(&format!(
                    "  checked with {} (the client's view): {state}\n",
                    c.version
                ));
            } else {
                for p in &c.problems {
                    o.push_str(&format!("  checked with {}: {p}\n", c.version));
                }
            }
        }
        if let Some(t) = &self.trust {
            match t.status {
                TrustStatus::Trusted | TrustStatus::Allowed => {
                    o.push_str(&format!("  trust: ok, {}\n", t.reason));
                }
                TrustStatus::Untrusted => {
                    o.push_str(&format!("\nNOT USABLE YET: {}.\n", t.reason));
                    if let Some(f) = &t.fix {
                        o.push_str(&format!("Fix: {f}\n"));
                    }
                }
            }
        }
        if let Some(r) = self.restart.as_ref().filter(|_| self.changed) {
            o.push_str(&format!(
                "  the nix-daemon reads this file only at start: {r}\n"
            ));
        }
        o
    }
}
