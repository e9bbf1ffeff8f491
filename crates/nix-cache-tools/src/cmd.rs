//! The one wrapper through which every external program (`nix`, `cachix`, `attic`,
//! `systemctl`...) is run.
//!
//! A [`Cmd`] is a plain description (program, argv, environment, stdin) built apart from
//! running it, so tests can check the exact argument vector without running anything.
//! A [`Runner`] runs it. Dry-run is decided here and only here ([`Runner::skips`], also
//! asked by push-cache's streaming runner): a command that changes something is recorded
//! ([`Runner::skipped`], for the report) instead of run when the runner is in dry-run
//! mode, while commands marked
//! [`Cmd::read_only`] (queries) still run. Every failure carries the full command
//! line, the exit status and the program's stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// A command to run: program, arguments, environment changes and optional stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    read_only: bool,
    timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            cwd: None,
            read_only: false,
            timeout: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Bytes written to the program's stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Marks the command as a query that changes nothing: it runs even in dry-run mode.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Kills the program (SIGKILL) when it runs longer than `limit`; the run then fails
    /// with [`CmdError::TimedOut`].
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The time limit set with [`Cmd::timeout`].
    pub fn time_limit(&self) -> Option<Duration> {
        self.timeout
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// Program followed by its arguments, lossily converted for display and tests.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    pub fn stdin_bytes(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The command line as a user could paste it into a POSIX shell.
    pub fn display(&self) -> String {
        self.argv()
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn to_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            c.current_dir(dir);
        }
        c
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Quotes one word for a POSIX shell, leaving plain words as they are.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,^".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished (or dry-run) command produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the command was not run because of dry-run.
    pub status: Option<ExitStatus>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn was_run(&self) -> bool {
        self.status.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("`{program}` was not found on PATH (needed to run `{cmdline}`){hint}")]
    NotFound {
        program: String,
        cmdline: String,
        hint: String,
    },
    #[error("could not run `{cmdline}`: {source}")]
    Spawn {
        cmdline: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmdline}` did not finish within {} s and was killed{}", .after.as_secs(), stderr_tail(.stderr))]
    TimedOut {
        cmdline: String,
        after: Duration,
        stderr: String,
    },
    #[error("`{cmdline}` failed ({status}){}", stderr_tail(.stderr))]
    Failed {
        cmdline: String,
        status: String,
        stderr: String,
        stdout: String,
    },
}

impl CmdError {
    /// The program's stderr, when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            CmdError::Failed { stderr, .. } | CmdError::TimedOut { stderr, .. } => Some(stderr),
            _ => None,
        }
    }

    /// The program was killed by a signal it did not get from us (e.g. the kernel's
    /// OOM killer, SIGSEGV): running it again would most likely end the same way.
    pub fn killed_by_signal(&self) -> bool {
        matches!(self, CmdError::Failed { status, .. } if status.starts_with("killed by signal"))
    }
}

fn stderr_tail(stderr: &str) -> String {
    let s = stderr.trim_end();
    if s.is_empty() {
        return " with no output on stderr".to_owned();
    }
    // Keep the end, where programs put the actual error; a whole build log is noise.
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(25);
    let mut out = String::from(":\n");
    if start > 0 {
        out.push_str(&format!("  ... ({start} earlier lines of stderr)\n"));
    }
    for l in &lines[start..] {
        out.push_str("  ");
        out.push_str(l);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// A hint printed when a program is missing.
pub(crate) fn install_hint(program: &str) -> &'static str {
    match program {
        "nix" | "nix-store" | "nix-build" | "nix-instantiate" => {
            ": install Nix (https://nixos.org/download) or run from a shell where `nix` is on PATH"
        }
        "cachix" => {
            ": run inside `nix shell nixpkgs#cachix`, or add `cachix` to your CI image (this tool never installs it)"
        }
        "attic" => {
            ": run inside `nix shell nixpkgs#attic-client`, or add the attic client to your CI image (this tool never installs it)"
        }
        _ => "",
    }
}

/// Runs [`Cmd`]s; in dry-run mode it records the mutating ones instead of running them.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    dry_run: bool,
    /// The commands dry-run mode did not run, shared by every clone of this runner.
    skipped: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Runner {
    pub fn new() -> Self {
        Runner::default()
    }

    /// The command lines dry-run mode did not run (by this runner or a clone), in order.
    pub(crate) fn skipped(&self) -> Vec<String> {
        self.skipped.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    pub fn is_dry_run(&self) -> bool {
        self.dry_run
    }

    /// In dry-run mode, a command not marked [`Cmd::read_only`] is not run: this records
    /// its command line (credentials in URLs hidden) for [`Runner::skipped`] and returns
    /// true. Every runner of external programs asks this first, so dry-run is decided
    /// here only.
    pub fn skips(&self, cmd: &Cmd) -> bool {
        if self.dry_run && !cmd.read_only {
            if let Ok(mut s) = self.skipped.lock() {
                s.push(crate::redact::urls_in(&cmd.display()));
            }
            true
        } else {
            false
        }
    }

    /// Runs the command to completion, capturing stdout and stderr. A non-zero exit is an
    /// error carrying the command line, status and stderr. In dry-run mode a command not
    /// marked read-only is recorded ([`Runner::skipped`]) and not run.
    pub fn run(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        check(cmd, self.execute(cmd, None)?)
    }

    /// Like [`Runner::run`] but a non-zero exit status is returned, not an error.
    pub fn run_unchecked(&self, cmd: &Cmd) -> Result<Output, CmdError> {
        self.execute(cmd, None)
    }

    /// Like [`Runner::run`], but calls `on_line` with each line the program writes to
    /// stderr as it comes (for progress, e.g. `nix copy`'s "copying path" lines). The
    /// whole stderr is still returned, and in the error on failure.
    pub fn run_streaming(
        &self,
        cmd: &Cmd,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Output, CmdError> {
        check(cmd, self.execute(cmd, Some(on_line))?)
    }

    /// The one place a child process is started: dry-run, echo, stdin fed from a thread,
    /// stdout drained by another while stderr is read here line by line, so no pipe can
    /// fill up and deadlock either side.
    fn execute(
        &self,
        cmd: &Cmd,
        mut on_line: Option<&mut dyn FnMut(&str)>,
    ) -> Result<Output, CmdError> {
        use std::io::{BufRead, Read};
        if self.skips(cmd) {
            return Ok(Output::default());
        }
        let mut command = cmd.to_command();
        command
            .stdin(if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| spawn_error(cmd, e))?;
        let writer = match (child.stdin.take(), cmd.stdin.clone()) {
            (Some(mut pipe), Some(bytes)) => Some(std::thread::spawn(move || {
                // A child that exits without reading all of stdin is not our error: its
                // exit status tells what happened.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let stdout_reader = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = out.read_to_end(&mut buf);
                buf
            })
        });
        // stderr is read on a thread and handed over line by line, so that this thread
        // can stop waiting at the time limit even while a grandchild keeps the pipe open.
        let (line_tx, line_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(err);
                loop {
                    let mut line = Vec::new();
                    if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = cmd.timeout.map(|t| std::time::Instant::now() + t);
        let mut stderr = Vec::new();
        let mut timed_out = false;
        let mut take = |line: Vec<u8>, stderr: &mut Vec<u8>| {
            if let Some(f) = on_line.as_mut() {
                f(String::from_utf8_lossy(&line).trim_end());
            }
            stderr.extend_from_slice(&line);
        };
        loop {
            let next = match deadline {
                None => line_rx.recv().map_err(|_| true),
                Some(d) => {
                    let left = d.saturating_duration_since(std::time::Instant::now());
                    line_rx
                        .recv_timeout(left)
                        .map_err(|e| e == std::sync::mpsc::RecvTimeoutError::Disconnected)
                }
            };
            match next {
                Ok(line) => take(line, &mut stderr),
                // The pipe closed: the program (and whatever it started) is done.
                Err(true) => break,
                // The time limit: kill it, and keep what it still says for a moment.
                Err(false) => {
                    timed_out = true;
                    let _ = child.kill();
                    let grace = std::time::Instant::now() + Duration::from_millis(500);
                    while let Ok(line) = line_rx
                        .recv_timeout(grace.saturating_duration_since(std::time::Instant::now()))
                    {
                        take(line, &mut stderr);
                    }
                    break;
                }
            }
        }
        let status = child.wait().map_err(|e| CmdError::Spawn {
            cmdline: cmd.display(),
            source: e,
        })?;
        if timed_out {
            return Err(CmdError::TimedOut {
                cmdline: cmd.display(),
                after: cmd.timeout.unwrap_or_default(),
                stderr: String::from_utf8_lossy(&stderr).into_owned(),
            });
        }
        let stdout = stdout_reader
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(Output {
            stdout,
            stderr,
            status: Some(status),
        })
    }
}

/// A run that exited non-zero becomes [`CmdError::Failed`].
fn check(cmd: &Cmd, out: Output) -> Result<Output, CmdError> {
    match out.status {
        Some(status) if !status.success() => Err(CmdError::Failed {
            cmdline: cmd.display(),
            status: describe_status(status),
            stderr: out.stderr_str(),
            stdout: out.stdout_str(),
        }),
        _ => Ok(out),
    }
}

fn spawn_error(cmd: &Cmd, e: std::io::Error) -> CmdError {
    let program = cmd.program.to_string_lossy().into_owned();
    if e.kind() == std::io::ErrorKind::NotFound {
        let base = Path::new(&program)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone());
        CmdError::NotFound {
            hint: install_hint(&base).to_owned(),
            program,
            cmdline: cmd.display(),
        }
    } else {
        CmdError::Spawn {
            cmdline: cmd.display(),
            source: e,
        }
    }
}

/// "exit status 3" or "killed by signal 9".
pub(crate) fn describe_status(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exit status {c}"),
        None => "unknown exit status".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_built_apart_from_running() {
        let c = Cmd::new("nix")
            .args(["copy", "--to", "file:///tmp/c"])
            .arg("/nix/store/x y");
        assert_eq!(
            c.argv(),
            ["nix", "copy", "--to", "file:///tmp/c", "/nix/store/x y"]
        );
        assert_eq!(c.display(), "nix copy --to file:///tmp/c '/nix/store/x y'");
    }

    #[test]
    fn failure_carries_cmdline_status_and_stderr() {
        let c = Cmd::new("sh").args(["-c", "echo oops >&2; exit 3"]);
        let err = Runner::new().run(&c).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c 'echo oops >&2; exit 3'"), "{msg}");
        assert!(msg.contains("exit status 3"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
    }

    #[test]
    fn missing_program_is_named_with_a_hint() {
        let c = Cmd::new("cachix-definitely-missing-xyz").arg("push");
        let err = Runner::new().run(&c).unwrap_err();
        assert!(matches!(err, CmdError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("cachix-definitely-missing-xyz"));
    }

    #[test]
    fn dry_run_skips_mutations_but_runs_queries() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let touch = Cmd::new("touch").arg(&marker);
        let out = Runner::new().dry_run(true).run(&touch).unwrap();
        assert!(!out.was_run());
        assert!(!marker.exists());
        let out = Runner::new()
            .dry_run(true)
            .run(&touch.clone().read_only())
            .unwrap();
        assert!(out.was_run());
        assert!(marker.exists());
    }

    #[test]
    fn streaming_sees_each_stderr_line() {
        let c = Cmd::new("sh").args(["-c", "echo a >&2; echo out; echo b >&2; exit 2"]);
        let mut lines = Vec::new();
        let err = Runner::new()
            .run_streaming(&c, &mut |l| lines.push(l.to_owned()))
            .unwrap_err();
        assert_eq!(lines, ["a", "b"]);
        assert!(err.to_string().contains("exit status 2"), "{err}");
        let ok = Runner::new()
            .run_streaming(&Cmd::new("echo").arg("hi"), &mut |_| {})
            .unwrap();
        assert_eq!(ok.stdout, b"hi\n");
        let dry = Runner::new()
            .dry_run(true)
            .run_streaming(&c, &mut |_| {})
            .unwrap();
        assert!(!dry.was_run());
    }

    #[test]
    fn a_program_past_its_time_limit_is_killed() {
        let started = std::time::Instant::now();
        let c = Cmd::new("sh")
            .args(["-c", "echo begun >&2; sleep 30"])
            .timeout(Duration::from_millis(300));
        let err = Runner::new().run(&c).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(matches!(err, CmdError::TimedOut { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("did not finish within 0 s") && msg.contains("begun"),
            "{msg}"
        );
        // Within its limit, a program runs normally.
        let ok = Cmd::new("true").timeout(Duration::from_secs(20));
        assert!(Runner::new().run(&ok).is_ok());
    }

    #[test]
    fn a_program_killed_by_a_signal_says_so() {
        let c = Cmd::new("sh").args(["-c", "kill -9 $$"]);
        let err = Runner::new().run(&c).unwrap_err();
        assert!(err.killed_by_signal(), "{err}");
        let c = Cmd::new("sh").args(["-c", "exit 1"]);
        assert!(!Runner::new().run(&c).unwrap_err().killed_by_signal());
    }

    #[test]
    fn stdin_is_fed_and_large_output_does_not_deadlock() {
        let input: Vec<u8> = (0..200_000).map(|i| b'a' + (i % 26) as u8).collect();
        let c = Cmd::new("sh")
            .args(["-c", "cat; cat /dev/null >&2"])
            .stdin(input.clone());
        let out = Runner::new().run(&c).unwrap();
        assert_eq!(out.stdout, input);
    }
}
