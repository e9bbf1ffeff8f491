//! Output conventions shared by the three tools: tables on a terminal, JSON for
//! machines, Markdown for CI; no colour when `NO_COLOR` is set or the stream is not a
//! terminal; progress bars only on a terminal.

use std::io::IsTerminal;

/// One of the two streams the tools write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output: the report, the JSON.
    Stdout,
    /// Standard error: messages and progress bars.
    Stderr,
}

/// Whether `stream` is a terminal.
pub fn is_tty(stream: Stream) -> bool {
    match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    }
}

/// Colour only on a terminal and only when `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
pub fn color_enabled(stream: Stream) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && is_tty(stream) && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Progress bars draw on stderr, and only when it is a terminal.
pub fn progress_enabled() -> bool {
    is_tty(Stream::Stderr) && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// Appends Markdown to the file named by `$GITHUB_STEP_SUMMARY`. Returns the path written,
/// or `None` when the variable is unset (not in GitHub Actions).
pub(crate) fn append_step_summary(
    markdown: &str,
) -> Result<Option<std::path::PathBuf>, crate::fsutil::FsError> {
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let path = std::path::PathBuf::from(path);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| crate::fsutil::FsError::new("failed to open", &path, e))?;
    let mut text = markdown.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    f.write_all(text.as_bytes())
        .map_err(|e| crate::fsutil::FsError::new("failed to append to", &path, e))?;
    Ok(Some(path))
}

/// Writes `text` to stdout. When the reader has gone (`tool --json | head -1`), the
/// program ends quietly with exit code 0, as ripgrep does, instead of panicking the way
/// `println!` does on a broken pipe.
pub fn print(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Writes `text` and a line break to stderr, where messages, warnings and progress go.
/// A stderr nobody reads any more (`tool 2>&1 | head -1`, a CI log collector that died)
/// is ignored: the tool goes on and ends with its own exit code, where `eprintln!` would
/// panic (exit 101) and cut a push short.
pub fn eprintln(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// [`print()`] with a line break after `text`.
pub fn println(text: &str) {
    print(&format!("{text}\n"));
}

/// `1536` → `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Serializes a path as a string even when it is not UTF-8 (lossily, `�` for the bad
/// bytes): serde refuses such a path, and a report must never come out as `null`.
pub(crate) fn lossy_path<S: serde::Serializer>(
    p: &std::path::Path,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// [`lossy_path`] for an optional path.
#[allow(
    clippy::ref_option,
    reason = "the signature serde's `serialize_with` calls"
)]
pub(crate) fn lossy_opt_path<S: serde::Serializer>(
    p: &Option<std::path::PathBuf>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => s.serialize_some(&p.to_string_lossy()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
