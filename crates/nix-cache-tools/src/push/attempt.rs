//! Running an upload attempt: the one place for the time bound of a push, which
//! failures are worth another try, and the reason shown for a failed path. Used for
//! `nix copy`, `cachix push` and `attic push` alike (and meant for a native upload
//! later).
//!
//! - [`Deadline`]: the `--timeout` of the whole push. Every child gets the time left
//!   ([`crate::cmd::Cmd::timeout`]); when none is left nothing more is started.
//! - [`retryable`]: a program killed by a signal (the kernel's OOM killer, SIGSEGV), or
//!   by us at the deadline, is not run again; nor is one that could not be started.
//! - [`reason`]: the line that says what went wrong — for Nix's HTTP uploads the HTTP
//!   status and the first line of the server's answer — with credentials hidden.
//! - [`nix_options`]: settings that keep Nix's own retries and stalls small (Nix 2.8
//!   defaults: 5 `download-attempts` with backoff, 300 s `stalled-download-timeout`).

use crate::cmd::{Cmd, CmdError, Output, Runner};
use crate::redact;
use std::time::{Duration, Instant};

/// The default `--timeout`: a few minutes for the whole upload.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Attempts Nix makes of each HTTP transfer itself (its default is 5).
pub(super) const NIX_DOWNLOAD_ATTEMPTS: u32 = 2;

/// The end of the time a push may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadline {
    end: Instant,
    limit: Duration,
}

impl Deadline {
    /// `limit` from now.
    pub(super) fn after(limit: Duration) -> Self {
        let now = Instant::now();
        Deadline {
            // A limit past what the clock holds is no limit.
            end: now
                .checked_add(limit)
                .unwrap_or_else(|| now + Duration::from_secs(crate::cli::MAX_TIMEOUT_SECS)),
            limit,
        }
    }

    /// The moment it ends.
    pub(super) fn instant(&self) -> Instant {
        self.end
    }

    /// The time left (zero once it has passed).
    pub(super) fn left(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    /// Whether no time is left.
    pub(super) fn expired(&self) -> bool {
        self.left().is_zero()
    }

    /// Why a path was not (fully) attempted once the time is up.
    pub(super) fn expired_reason(&self) -> String {
        format!(
            "not attempted: the push reached its time limit (--timeout {} s)",
            self.limit.as_secs()
        )
    }

    /// Sleeps `d`, or less when the deadline comes first.
    pub(super) fn sleep(&self, d: Duration) {
        std::thread::sleep(d.min(self.left()));
    }
}

/// `--option NAME VALUE` pairs for every `nix copy`: few retries of its own, no long
/// stalls, a connect timeout — all within the time left.
pub(super) fn nix_options(deadline: &Deadline) -> Vec<String> {
    let secs = |d: Duration| d.as_secs().max(1).to_string();
    let left = deadline.left();
    [
        ("download-attempts", NIX_DOWNLOAD_ATTEMPTS.to_string()),
        (
            "stalled-download-timeout",
            secs(left.min(Duration::from_secs(60))),
        ),
        ("connect-timeout", secs(left.min(Duration::from_secs(15)))),
    ]
    .into_iter()
    .flat_map(|(k, v)| ["--option".to_owned(), k.to_owned(), v])
    .collect()
}

/// Runs `cmd` with the time left, streaming stderr lines to `on_line`. In dry-run mode
/// the command is printed (credentials hidden) and not run. With no time left it is
/// not started: [`CmdError::TimedOut`] after zero seconds.
pub(super) fn run(
    runner: &Runner,
    cmd: Cmd,
    deadline: &Deadline,
    on_line: &mut dyn FnMut(&str),
) -> Result<Output, CmdError> {
    if runner.skips(&cmd) {
        return Ok(Output::default());
    }
    let left = deadline.left();
    if left.is_zero() {
        return Err(CmdError::TimedOut {
            cmdline: cmd.display(),
            after: Duration::ZERO,
            stderr: String::new(),
        });
    }
    runner.run_streaming(&cmd.timeout(left), on_line)
}

/// Whether another attempt may help: not for a program that was killed (by a signal
/// such as the OOM killer's, or at the deadline) or could not be started.
pub(super) fn retryable(e: &CmdError) -> bool {
    !(e.killed_by_signal()
        || matches!(
            e,
            CmdError::TimedOut { .. } | CmdError::NotFound { .. } | CmdError::Spawn { .. }
        ))
}

/// What went wrong, in one line, credentials hidden: Nix's (last) `error:` line and,
/// when it quotes the server's answer (`response body:`), its first line; else the
/// last line of stderr; plus how the program ended when that says more (a signal, the
/// time limit).
pub(super) fn reason(e: &CmdError) -> String {
    let how = match e {
        CmdError::TimedOut { after, .. } if after.is_zero() => {
            return "not attempted: the push reached its time limit (--timeout)".to_owned();
        }
        CmdError::TimedOut { .. } => Some("killed at the push's time limit (--timeout)".to_owned()),
        CmdError::Failed { status, .. } if e.killed_by_signal() => Some(format!(
            "{status} (not retried: a signal such as the kernel's OOM killer ends it the same way again)"
        )),
        CmdError::Failed { status, .. } => Some(status.clone()),
        CmdError::NotFound { .. } | CmdError::Spawn { .. } => {
            return redact::urls_in(&e.to_string());
        }
    };
    let said = e.stderr().and_then(error_line);
    let text = match (said, how) {
        (Some(s), Some(h)) if e.killed_by_signal() || matches!(e, CmdError::TimedOut { .. }) => {
            format!("{h}: {s}")
        }
        (Some(s), _) => s,
        (None, Some(h)) => format!("{h}, with no error message"),
        (None, None) => "failed".to_owned(),
    };
    // Nix quotes the server's answer: never able to drive a terminal or a summary.
    crate::output::untrusted(&redact::urls_in(&text), 500)
}

/// Nix's last `error:` line (without the prefix), with the first line of the response
/// body it quotes; else the last non-empty line.
fn error_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    // An error, else a warning about one (Nix's "warning: error: ...; retrying"), else
    // whatever came last.
    let start = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("error:"))
        .or_else(|| {
            lines
                .iter()
                .rposition(|l| l.trim_start().starts_with("warning: error:"))
        })
        .or_else(|| lines.iter().rposition(|l| !l.trim().is_empty()))?;
    let first = lines[start].trim();
    let first = first.strip_prefix("warning:").unwrap_or(first).trim();
    let first = first.strip_prefix("error:").unwrap_or(first).trim();
    let mut out = first.to_owned();
    let rest = &lines[start + 1..];
    if let Some(i) = rest.iter().position(|l| l.trim() == "response body:") {
        if let Some(body) = rest[i + 1..]
            .iter()
            .map(|l| l.trim())
            .take_while(|l| !l.starts_with("error:") && !l.starts_with("warning:"))
            .find(|l| !l.is_empty())
        {
            let body = match body.rfind("; retrying in ") {
                Some(i) => &body[..i],
                None => body,
            };
            out.push_str("; the server answered: ");
            out.push_str(body);
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn failed(status: &str, stderr: &str) -> CmdError {
        CmdError::Failed {
            cmdline: "nix copy --to http://u:PW@h".into(),
            status: status.into(),
            stderr: stderr.into(),
            stdout: String::new(),
        }
    }

    #[test]
    fn reasons_name_the_http_status_and_the_answer() {
        // As Nix 2.8 prints a PUT answered with 500.
        let err = "copying 1 paths...\n\
copying path '/nix/store/y8cy-exp' to 'http://user:PLANTED@127.0.0.1:1'...\n\
warning: error: unable to upload 'http://user:PLANTED@127.0.0.1:1/nar/09kx.nar.xz': HTTP error 500 ('Internal Server Error')\n\
\n       response body:\n\n       Internal Server Error: disk quota exceeded\n       second line; retrying in 256 ms\n\
error: while uploading to HTTP binary cache at 'http://user:PLANTED@127.0.0.1:1': error: unable to upload 'http://user:PLANTED@127.0.0.1:1/nar/09kx.nar.xz': HTTP error 500 ('Internal Server Error')\n\
\n              response body:\n\n              Internal Server Error: disk quota exceeded\n              second line\n";
        let r = reason(&failed("exit status 1", err));
        assert_eq!(
            r,
            "while uploading to HTTP binary cache at 'http://user:<redacted>@127.0.0.1:1': error: unable to upload 'http://user:<redacted>@127.0.0.1:1/nar/09kx.nar.xz': HTTP error 500 ('Internal Server Error'); the server answered: Internal Server Error: disk quota exceeded"
        );
        assert!(retryable(&failed("exit status 1", err)));
        let r = reason(&failed(
            "exit status 1",
            "error: NAR info file 'x.narinfo' is corrupt\n",
        ));
        assert_eq!(r, "NAR info file 'x.narinfo' is corrupt");
        let r = reason(&failed("exit status 1", ""));
        assert_eq!(r, "exit status 1, with no error message");
    }

    #[test]
    fn killed_programs_are_not_retried() {
        let e = failed("killed by signal 9", "copying 1 paths...\n");
        assert!(!retryable(&e));
        assert!(
            reason(&e).starts_with("killed by signal 9 (not retried"),
            "{}",
            reason(&e)
        );
        let t = CmdError::TimedOut {
            cmdline: "nix copy".into(),
            after: Duration::from_secs(3),
            stderr: "error: unable to upload 'x': Timeout was reached (28)\n".into(),
        };
        assert!(!retryable(&t));
        assert!(reason(&t).contains("time limit") && reason(&t).contains("Timeout was reached"));
        // Killed while Nix was waiting to retry: its warning says what failed.
        let t = CmdError::TimedOut {
            cmdline: "nix copy".into(),
            after: Duration::from_secs(3),
            stderr: "copying 1 paths...\nwarning: error: unable to upload 'x': HTTP error 500 ('Internal Server Error')\n\n       response body:\n\n       Internal Server Error: disk quota exceeded; retrying in 320 ms\n".into(),
        };
        assert_eq!(
            reason(&t),
            "killed at the push's time limit (--timeout): unable to upload 'x': HTTP error 500 ('Internal Server Error'); the server answered: Internal Server Error: disk quota exceeded"
        );
    }

    #[test]
    fn deadline_bounds_children_and_options() {
        let d = Deadline::after(Duration::from_secs(30));
        let o = nix_options(&d);
        assert_eq!(
            o[..3],
            ["--option", "download-attempts", "2"].map(str::to_owned)
        );
        assert!(o.contains(&"stalled-download-timeout".to_owned()));
        let gone = Deadline::after(Duration::ZERO);
        assert!(gone.expired());
        let r = run(&Runner::new(), Cmd::new("true"), &gone, &mut |_| {});
        assert!(matches!(r, Err(CmdError::TimedOut { .. })));
        let t = std::time::Instant::now();
        let r = run(
            &Runner::new(),
            Cmd::new("sleep").arg("30"),
            &Deadline::after(Duration::from_millis(300)),
            &mut |_| {},
        );
        assert!(matches!(r, Err(CmdError::TimedOut { .. })), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
