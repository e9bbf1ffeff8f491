//! What a push did, and how it is shown: the [`Report`] (`--json`, the summary line,
//! Markdown for `$GITHUB_STEP_SUMMARY`), and the `Reporter` that sends [`Progress`]
//! events, credentials hidden, to the caller (push-cache draws them on stderr: a bar on
//! a terminal, one plain line per path otherwise).

use super::*;

/// A path that could not be uploaded, and why (credentials hidden).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The store path.
    pub path: StorePath,
    /// Why, e.g. Nix's error line with the server's answer, or `not attempted: ...`.
    pub reason: String,
}

/// A path the filter matched that was pushed anyway: a pushed path references it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Kept {
    /// The matching path.
    pub path: StorePath,
    /// A pushed path that references it.
    pub referenced_by: StorePath,
}

/// How the upload went: the `via` of the JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub enum Via {
    /// Nothing had to go.
    #[default]
    #[serde(rename = "")]
    Nothing,
    /// push-cache's own pipeline (`file://`, `http(s)://`, `s3://`).
    #[serde(rename = "native")]
    Native,
    /// `nix copy` (other store URIs, `--via nix`).
    #[serde(rename = "nix copy")]
    NixCopy,
    /// `cachix push`.
    #[serde(rename = "cachix push")]
    Cachix,
    /// `attic push`.
    #[serde(rename = "attic push")]
    Attic,
}

/// What happened; `--json` prints the serialized form.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Report {
    /// The target as given (`--to` or cache.toml), credentials hidden.
    pub target: String,
    /// Pushed paths (with `dry_run`: what would be pushed), in upload order.
    pub pushed: Vec<StorePath>,
    /// Paths to push that the cache already holds (queried targets only).
    pub already_cached: Vec<StorePath>,
    /// Paths the filter left out (matching paths that had to go are in `pushed`).
    pub filtered: Vec<StorePath>,
    /// Paths not uploaded after retries, or not attempted (a reference failed, the time
    /// ran out); [`Report::failures`] says why.
    pub failed: Vec<StorePath>,
    /// Sum of the NAR sizes of `pushed`, in bytes.
    pub nar_bytes_pushed: u64,
    /// `--dry-run` was given.
    pub dry_run: bool,
    /// Why nothing was pushed (no credentials), when it was skipped.
    pub skipped: Option<String>,
    /// Paths the filter matched that were pushed anyway, each with a pushed path that
    /// references it.
    pub kept: Vec<Kept>,
    /// Every failed path with the reason.
    pub failures: Vec<Failure>,
    /// How the upload went (`""` in the JSON when nothing had to go).
    pub via: Via,
    /// The NAR compression of the native pipeline (`zstd`, `xz`, `none`).
    pub compression: Option<String>,
    /// Bytes of the compressed NARs uploaded (native pipeline).
    pub file_bytes_pushed: u64,
    /// Seconds the upload took (native pipeline).
    pub seconds: Option<f64>,
    /// Stale "not in this cache" answers of this machine's Nix forgotten after the push.
    pub refreshed: Option<usize>,
    /// Everything the push warned about (the binary prints them on stderr without
    /// `--json`).
    pub warnings: Vec<String>,
    /// The filter in effect (`--filter`, or cache.toml's), if any.
    pub filter: Option<String>,
    /// `--dry-run`: the commands that would have run (`nix copy`, `cachix push`, `attic
    /// push`), credentials hidden; the binary prints each as `would run: ...`.
    pub would_run: Vec<String>,
    /// Whether the target was asked what it holds (file://, http(s)://, s3://).
    #[serde(skip)]
    pub(super) queried: bool,
    /// NAR size in bytes of every path of the closure (for the dry run's list and the
    /// Markdown table).
    #[serde(skip)]
    pub sizes: BTreeMap<StorePath, u64>,
}

impl Report {
    /// [`ExitCode::PushFailed`] (6) when a path failed, else [`ExitCode::Ok`].
    pub fn exit_code(&self) -> ExitCode {
        if self.failed.is_empty() {
            ExitCode::Ok
        } else {
            ExitCode::PushFailed
        }
    }

    /// The `--json` report, pretty-printed, credentials hidden in every string.
    pub fn to_json(&self) -> String {
        crate::redact::json_pretty(self)
    }

    /// The final human summary.
    pub fn summary_text(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("push skipped: {why}");
        }
        let mut s = String::new();
        let verb = if self.dry_run { "would push" } else { "pushed" };
        if self.pushed.is_empty() && self.failed.is_empty() {
            if self.queried {
                s.push_str(&format!(
                    "nothing to push: all {} paths are already cached in {}",
                    self.already_cached.len(),
                    self.target
                ));
            } else {
                s.push_str(&format!("nothing to push to {}", self.target));
            }
        } else {
            s.push_str(&format!(
                "{verb} {} paths ({} NAR) to {}",
                self.pushed.len(),
                human_bytes(self.nar_bytes_pushed),
                self.target
            ));
            if self.queried {
                s.push_str(&format!("; {} already cached", self.already_cached.len()));
            }
        }
        s.push_str(&format!("; {} left out by the filter", self.filtered.len()));
        if !self.kept.is_empty() {
            s.push_str(&format!(
                " ({} matching path(s) pushed anyway: referenced by pushed paths)",
                self.kept.len()
            ));
        }
        if !self.failed.is_empty() {
            s.push_str(&format!("; {} FAILED", self.failed.len()));
        }
        if let (Some(c), false) = (&self.compression, self.dry_run) {
            if self.file_bytes_pushed > 0 {
                s.push_str(&format!(
                    "; uploaded {} as {c} ({:.0}% of the NAR bytes)",
                    human_bytes(self.file_bytes_pushed),
                    100.0 * self.file_bytes_pushed as f64 / self.nar_bytes_pushed.max(1) as f64
                ));
                if let Some(t) = self.seconds {
                    s.push_str(&format!(
                        " in {t:.1} s ({}/s of NAR)",
                        human_bytes((self.nar_bytes_pushed as f64 / t.max(0.001)) as u64)
                    ));
                }
            }
        }
        if let Some(n) = self.refreshed.filter(|n| *n > 0) {
            s.push_str(&format!(
                "\nforgot {n} stale 'not in this cache' answer(s) of this machine's Nix for the pushed paths (--no-refresh keeps them)"
            ));
        }
        s
    }

    /// A Markdown table for `$GITHUB_STEP_SUMMARY`.
    pub fn markdown(&self) -> String {
        let mut m = String::new();
        let head = if !self.failed.is_empty() {
            "❌"
        } else if self.skipped.is_some() {
            "⚠️"
        } else {
            "✅"
        };
        m.push_str(&format!("### {head} push-cache → `{}`\n\n", self.target));
        if let Some(why) = &self.skipped {
            m.push_str(&format!("Push skipped: {why}\n"));
            return m;
        }
        let bytes = |ps: &[StorePath]| {
            human_bytes(
                ps.iter()
                    .map(|p| self.sizes.get(p).copied().unwrap_or(0))
                    .sum(),
            )
        };
        m.push_str("| | paths | NAR size |\n|---|---:|---:|\n");
        let pushed_label = if self.dry_run { "would push" } else { "pushed" };
        m.push_str(&format!(
            "| {pushed_label} | {} | {} |\n",
            self.pushed.len(),
            human_bytes(self.nar_bytes_pushed)
        ));
        if self.queried {
            m.push_str(&format!(
                "| already cached | {} | {} |\n",
                self.already_cached.len(),
                bytes(&self.already_cached)
            ));
        }
        m.push_str(&format!(
            "| filtered out | {} | {} |\n",
            self.filtered.len(),
            bytes(&self.filtered)
        ));
        m.push_str(&format!(
            "| failed | {} | {} |\n",
            self.failed.len(),
            bytes(&self.failed)
        ));
        if self.file_bytes_pushed > 0 {
            m.push_str(&format!(
                "\nUploaded {} of {} NARs ({:.0}%)",
                human_bytes(self.file_bytes_pushed),
                self.compression.as_deref().unwrap_or("compressed"),
                100.0 * self.file_bytes_pushed as f64 / self.nar_bytes_pushed.max(1) as f64
            ));
            if let Some(t) = self.seconds {
                m.push_str(&format!(
                    " in {t:.1} s, {}/s of NAR",
                    human_bytes((self.nar_bytes_pushed as f64 / t.max(0.001)) as u64)
                ));
            }
            m.push_str(".\n");
        }
        if !self.failures.is_empty() {
            m.push_str("\n<details><summary>Failed paths</summary>\n\n");
            for f in &self.failures {
                let first = f.reason.lines().next().unwrap_or("");
                m.push_str(&format!("- `{}`: {first}\n", f.path));
            }
            m.push_str("\n</details>\n");
        }
        m
    }
}

/// Hands progress to the caller: whatever it quotes (Nix's messages) with secrets
/// hidden, and in a dry run only failures and notes.
pub(super) struct Reporter<'a> {
    on_progress: OnProgress<'a>,
    dry_run: bool,
}

impl<'a> Reporter<'a> {
    pub(super) fn new(on_progress: OnProgress<'a>, dry_run: bool) -> Self {
        Reporter {
            on_progress,
            dry_run,
        }
    }

    /// Passes `p` on (in a dry run, only failures and notes).
    pub(super) fn send(&self, p: Progress<'_>) {
        let quiet = matches!(
            p,
            Progress::Begin { .. }
                | Progress::Started { .. }
                | Progress::Done { .. }
                | Progress::End
        );
        if !(quiet && self.dry_run) {
            (self.on_progress)(p);
        }
    }

    pub(super) fn begin(&self, total: usize) {
        self.send(Progress::Begin { total });
    }

    /// A line worth saying now; whatever it quotes (Nix's messages), secrets are hidden.
    pub(super) fn line(&self, text: &str) {
        self.send(Progress::Note(&redact::urls_in(text)));
    }

    /// The upload of `path` began (Nix's "copying path" line, or a native worker).
    pub(super) fn started(&self, path: &str, nar_size: u64) {
        self.send(Progress::Started { path, nar_size });
    }

    pub(super) fn done(&self, path: &str, nar_size: u64) {
        self.send(Progress::Done { path, nar_size });
    }

    pub(super) fn failed(&self, path: &str, why: &str) {
        let why = redact::urls_in(why);
        let reason = why.lines().next().unwrap_or("");
        self.send(Progress::Failed { path, reason });
    }

    pub(super) fn finish(&self) {
        self.send(Progress::End);
    }
}
