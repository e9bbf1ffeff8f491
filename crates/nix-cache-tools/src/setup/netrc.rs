//! The netrc file Nix (curl) reads for private caches: `machine HOST password TOKEN`.
//!
//! Edits are lossless, as for nix.conf: setup-cache's entries are its own two lines, a
//! [`MARK`] comment and `machine HOST password TOKEN`, inserted at the top of the file
//! (curl uses the first entry that matches, and a `default` entry matches every host,
//! so an entry after one is never read; the top also needs no line break added to a
//! file without a final one). `--remove` takes out exactly those two lines, so add then
//! remove gives back the original bytes; a file setup-cache created starts with
//! [`CREATED`] and is deleted when nothing else is left. An entry the user wrote for
//! the host is never changed nor removed.

/// The comment line before each entry setup-cache writes (curl skips a line whose first
/// word starts with `#`).
pub const MARK: &str = "# added by setup-cache";

/// [`MARK`] for an entry appended to a file that had no final line break: setup-cache
/// added the one before it, and `--remove` takes it out again.
pub const MARK_AFTER_BREAK: &str = "# added by setup-cache, with the line break before it";

/// The first line of a netrc setup-cache created.
pub const CREATED: &str =
    "# created by setup-cache; entries below `# added by setup-cache` are its own";

/// The lines of `text`, each with its line break.
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn is_line(line: &str, what: &str) -> bool {
    line.trim_end_matches(['\n', '\r']) == what
}

/// `machine HOST password TOKEN`: the token, when `line` is setup-cache's entry for host.
fn our_entry<'a>(line: &'a str, host: &str) -> Option<&'a str> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next(), w.next(), w.next(), w.next()) {
        (Some("machine"), Some(h), Some("password"), Some(token), None) if h == host => Some(token),
        _ => None,
    }
}

/// Index of the marker line of setup-cache's entry for `host` (its entry follows).
fn ours(lines: &[&str], host: &str) -> Option<usize> {
    (0..lines.len().saturating_sub(1)).find(|&i| {
        (is_line(lines[i], MARK) || is_line(lines[i], MARK_AFTER_BREAK))
            && our_entry(lines[i + 1], host).is_some()
    })
}

/// What [`add`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// The new text (an entry inserted, or setup-cache's own entry given the new token).
    Text(String),
    /// Nothing to change: the entry is there with this token.
    Unchanged,
    /// The user has an entry of their own for the host, with other credentials: it is
    /// theirs, and left as it is (curl uses it, not a second one).
    TheirsKept,
}

/// The netrc with setup-cache's entry for `host` carrying `token`. `text` is `None`
/// when the file does not exist (then it is created, starting with [`CREATED`]).
pub fn add(text: Option<&str>, host: &str, token: &str) -> Added {
    let Some(text) = text else {
        return Added::Text(format!(
            "{CREATED}\n{MARK}\nmachine {host} password {token}\n"
        ));
    };
    // The file's own line ending (a CRLF netrc stays CRLF).
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let entry = format!("machine {host} password {token}{nl}");
    let lines = split_lines(text);
    if let Some(i) = ours(&lines, host) {
        if our_entry(lines[i + 1], host) == Some(token) {
            return Added::Unchanged;
        }
        let mut out: String = lines[..=i].concat();
        out.push_str(&entry);
        out.push_str(&lines[i + 2..].concat());
        return Added::Text(out);
    }
    if let Some((_, password)) = lookup_machine(text, host) {
        return if password == token {
            Added::Unchanged
        } else {
            Added::TheirsKept
        };
    }
    // Before the first entry (curl stops at the first match, and `default` matches
    // every host), after any words outside an entry (curl would read them as this
    // entry's), after the line that says setup-cache created the file; else at the end.
    let at = usize::from(lines.first().is_some_and(|l| is_line(l, CREATED)));
    let at = (at..lines.len())
        .find(|&i| {
            matches!(
                lines[i].split_whitespace().next(),
                Some("machine" | "default" | "macdef")
            )
        })
        .unwrap_or(lines.len());
    // Never between one of setup-cache's markers and its entry.
    let at = if at > 0 && (is_line(lines[at - 1], MARK) || is_line(lines[at - 1], MARK_AFTER_BREAK))
    {
        at - 1
    } else {
        at
    };
    let (before, after) = (lines[..at].concat(), lines[at..].concat());
    if before.is_empty() || before.ends_with('\n') {
        return Added::Text(format!("{before}{MARK}{nl}{entry}{after}"));
    }
    // The end of a file without a final line break: the marker says it added one.
    Added::Text(format!("{before}{nl}{MARK_AFTER_BREAK}{nl}{entry}{after}"))
}

/// What [`remove`] leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The text without setup-cache's entry for the host.
    pub text: String,
    /// Whether setup-cache had an entry for it.
    pub had_ours: bool,
    /// Whether an entry the user wrote for the host is still there.
    pub theirs_left: bool,
}

impl Removed {
    /// Whether nothing is left but the line saying setup-cache created the file.
    pub fn only_created_marker(&self) -> bool {
        let lines = split_lines(&self.text);
        matches!(lines.as_slice(), [l] if is_line(l, CREATED))
    }
}

/// The netrc without setup-cache's entry for `host` (its two lines, exactly).
pub fn remove(text: &str, host: &str) -> Removed {
    let lines = split_lines(text);
    let (text, had_ours) = match ours(&lines, host) {
        Some(i) => {
            let mut out: String = lines[..i].concat();
            if is_line(lines[i], MARK_AFTER_BREAK) && i + 2 == lines.len() {
                // The line break it added, as it wrote it.
                let added = if lines[i].ends_with("\r\n") {
                    "\r\n"
                } else {
                    "\n"
                };
                if out.ends_with(added) {
                    out.truncate(out.len() - added.len());
                }
            }
            out.push_str(&lines[i + 2..].concat());
            (out, true)
        }
        None => (text.to_owned(), false),
    };
    let theirs_left = lookup_machine(&text, host).is_some();
    Removed {
        text,
        had_ours,
        theirs_left,
    }
}

/// The tokens of a netrc as curl reads them: comment lines (first word starting with
/// `#`) and `macdef` bodies (to the next empty line) skipped.
fn tokens(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_macdef = false;
    for line in text.lines() {
        if in_macdef {
            in_macdef = !line.trim().is_empty();
            continue;
        }
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_some_and(|w| w.starts_with('#')) {
            continue;
        }
        let mut prev = None;
        for w in words {
            if prev == Some("macdef") {
                in_macdef = true;
            }
            out.push(w);
            prev = Some(w);
        }
    }
    out
}

/// Every entry: `(Some(host))` for `machine HOST`, `None` for `default`, with its
/// login and password.
fn entries(text: &str) -> Vec<(Option<&str>, Option<&str>, Option<&str>)> {
    let words = tokens(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let host = match words[i] {
            "machine" => {
                i += 2;
                Some(words.get(i - 1).copied().unwrap_or(""))
            }
            "default" => {
                i += 1;
                None
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let (mut login, mut password) = (None, None);
        while i < words.len() && !matches!(words[i], "machine" | "default") {
            match words[i] {
                "login" => login = words.get(i + 1).copied(),
                "password" => password = words.get(i + 1).copied(),
                "account" | "macdef" => {}
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        out.push((host, login, password));
    }
    out
}

/// The `machine` names (lowercase, as curl compares them) of every entry, and whether
/// there is a `default` entry.
pub(crate) fn hosts(text: &str) -> (Vec<String>, bool) {
    let mut default = false;
    let mut machines = Vec::new();
    for (host, _, _) in entries(text) {
        match host {
            Some(h) => machines.push(h.to_ascii_lowercase()),
            None => default = true,
        }
    }
    (machines, default)
}

/// The `machine HOST` entry's login and password, ignoring `default`.
fn lookup_machine<'a>(text: &'a str, host: &str) -> Option<(Option<&'a str>, &'a str)> {
    entries(text)
        .into_iter()
        .find(|(h, _, p)| *h == Some(host) && p.is_some())
        .and_then(|(_, l, p)| Some((l, p?)))
}

/// The `login` (if any) and `password` curl uses for `host`: the first entry that
/// matches, `machine HOST` or `default` (which matches every host, so an entry after it
/// is never reached).
pub fn lookup(text: &str, host: &str) -> Option<(Option<String>, String)> {
    entries(text)
        .into_iter()
        .find(|(h, _, _)| h.is_none_or(|h| h == host))
        .and_then(|(_, l, p)| Some((l.map(str::to_owned), p?.to_owned())))
}

/// The text with every password / account value replaced by `<redacted>`, for diffs
/// (see [`crate::redact::netrc`]).
pub fn redact(text: &str) -> String {
    crate::redact::netrc(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: Added) -> String {
        match a {
            Added::Text(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn add_then_remove_gives_back_the_original_bytes() {
        for original in [
            "",
            "# mine\n",
            "# mine",
            "# mine\r\nmachine a.example password x\r\n",
            "machine a.example password x\r\nmachine b.example password y",
            "machine a.example password x",
            "machine a.example login me password old\r\nmachine b.example\n  password bpw\n",
            "default login anon password anonpw\n",
            "password orphan\nmachine a.example password x",
            "macdef init\ncd /x\n\nmachine a.example password x\n",
        ] {
            let added = text(add(Some(original), "c.example", "tok"));
            assert_eq!(
                lookup(&added, "c.example"),
                Some((None, "tok".into())),
                "{added:?}"
            );
            // A new token replaces setup-cache's own, still exactly reversible.
            let again = text(add(Some(&added), "c.example", "tok2"));
            assert_eq!(
                lookup(&again, "c.example"),
                Some((None, "tok2".into())),
                "{again:?}"
            );
            assert_eq!(add(Some(&again), "c.example", "tok2"), Added::Unchanged);
            // A CRLF file gets CRLF lines.
            if original.contains("\r\n") && !original.replace("\r\n", "").contains('\n') {
                assert!(!again.replace("\r\n", "").contains('\n'), "{again:?}");
            }
            let r = remove(&again, "c.example");
            assert!(r.had_ours && !r.theirs_left, "{r:?}");
            assert_eq!(r.text, original);
            assert!(!r.only_created_marker());
        }
    }

    #[test]
    fn a_file_setup_cache_created_goes_when_its_last_entry_does() {
        let t = text(add(None, "c.example", "tok"));
        let t = text(add(Some(&t), "d.example", "tok"));
        let r = remove(&t, "c.example");
        assert!(!r.only_created_marker(), "{r:?}");
        let r = remove(&r.text, "d.example");
        assert!(r.only_created_marker(), "{r:?}");
        // Three hosts on a file without a final line break, taken out in any order.
        let original = "# mine";
        let mut t = original.to_owned();
        for h in ["a.example", "b.example", "c.example"] {
            t = text(add(Some(&t), h, "tok"));
        }
        for h in ["b.example", "c.example", "a.example"] {
            assert_eq!(lookup(&t, h), Some((None, "tok".into())), "{t:?}");
            t = remove(&t, h).text;
        }
        assert_eq!(t, original);
    }

    #[test]
    fn an_entry_the_user_wrote_is_theirs() {
        let mine = "machine c.example login me password mine\n";
        assert_eq!(add(Some(mine), "c.example", "tok"), Added::TheirsKept);
        assert_eq!(add(Some(mine), "c.example", "mine"), Added::Unchanged);
        let r = remove(mine, "c.example");
        assert_eq!(r.text, mine);
        assert!(!r.had_ours && r.theirs_left);
    }

    #[test]
    fn lookup_reads_as_curl_reads() {
        let t = "# machine c.example password COMMENTED\nmachine a.example\n  login me\n  password\n  A\nmachine b.example password B\ndefault password D\nmachine late.example password L\n";
        assert_eq!(
            lookup(t, "a.example"),
            Some((Some("me".into()), "A".into()))
        );
        assert_eq!(lookup(t, "b.example"), Some((None, "B".into())));
        assert_eq!(lookup(t, "c.example"), Some((None, "D".into())));
        // After `default`, never reached.
        assert_eq!(lookup(t, "late.example"), Some((None, "D".into())));
        assert_eq!(lookup("machine x login y", "x"), None);
        // A macro's body is not read as entries.
        assert_eq!(lookup("macdef m\nmachine x password P\n\n", "x"), None);
    }

    #[test]
    fn redaction_hides_secrets() {
        let r = redact("machine x password SECRET\n+machine y login u account ACC\n");
        assert!(!r.contains("SECRET") && !r.contains("ACC"), "{r}");
        assert!(r.contains("machine x password <redacted>"));
    }
}
