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
    let not_regular = |kind: std::fs::FileType| {
        crate::fsutil::FsError::new(
            "failed to open",
            &path,
            std::io::Error::other(format!(
                "it is {}, not a regular file",
                crate::fsutil::describe_type(kind)
            )),
        )
    };
    if let Ok(m) = std::fs::metadata(&path)
        && !m.is_file()
    {
        return Err(not_regular(m.file_type()));
    }
    // Never blocks, even when the path is swapped for a FIFO after that check: without a
    // reader the open fails at once (ENXIO), with one it is refused below.
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| crate::fsutil::FsError::new("failed to open", &path, e))?
    };
    let kind = f
        .metadata()
        .map_err(|e| crate::fsutil::FsError::new("failed to open", &path, e))?
        .file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
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

/// `text` with its control characters escaped (`\u{1b}`), as an error may quote what a
/// user typed: an escape sequence pasted into a flag must not drive the terminal.
/// Text without any is returned as it is.
pub(crate) fn escape_controls(text: &str) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        text.to_owned()
    }
}

/// Text that came from outside (a server's answer, a cache's key name or `StoreDir`,
/// Nix quoting a server), made safe for every output: control characters (an ANSI
/// escape would retitle or clear the terminal) become spaces, runs of white space one
/// space, and the characters that make Markdown or HTML in a CI job summary (`<`, `>`,
/// `[`, `]`, `` ` ``, `|`) their look-alikes `‹ › ( ) ' ¦`; at most `max` characters.
/// The `<redacted>` of [`crate::redact`] stays as it is, so that text is redacted first
/// (a secret is matched before any character of it is replaced).
pub(crate) fn untrusted(text: &str, max: usize) -> String {
    let parts: Vec<String> = text
        .split(crate::redact::REDACTED)
        .map(|p| untrusted_part(p, max))
        .collect();
    let joined = parts.join(crate::redact::REDACTED);
    match joined.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &joined[..i]),
        None => joined,
    }
}

fn untrusted_part(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut space = false;
    let mut count = 0;
    for c in text.chars() {
        let c = match c {
            c if c.is_control() || c.is_whitespace() => ' ',
            '<' => '‹',
            '>' => '›',
            '[' => '(',
            ']' => ')',
            '`' => '\'',
            '|' => '¦',
            c => c,
        };
        if c == ' ' && space {
            continue;
        }
        space = c == ' ';
        if count == max {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    out
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

    #[test]
    fn untrusted_text_cannot_drive_a_terminal_or_a_summary() {
        let t = untrusted(
            "k\x1b]0;pwned\x07\x1b[2J </details><img src=//evil.example/p.png> [Fix](//evil) `x` a|b\r\nnext",
            200,
        );
        assert!(!t.chars().any(char::is_control), "{t:?}");
        for bad in ['<', '>', '[', ']', '`', '|'] {
            assert!(!t.contains(bad), "{bad} in {t:?}");
        }
        assert!(t.contains("‹img src=//evil.example/p.png›"), "{t}");
        assert_eq!(untrusted("abcdef", 3), "abc…");
        assert_eq!(untrusted("a \t\n b", 10), "a b");
        assert_eq!(untrusted("u:<redacted>@h <b>", 40), "u:<redacted>@h ‹b›");
    }
}
