//! The netrc file Nix (curl) reads for private caches: `machine HOST password TOKEN`.
//!
//! Entries start at a line whose first word is `machine` (or `default`) and run until the
//! next such line; other entries and comments are kept as they are.

fn starts_entry(line: &str) -> bool {
    matches!(line.split_whitespace().next(), Some("machine" | "default"))
}

fn entry_host(line: &str) -> Option<&str> {
    let mut w = line.split_whitespace();
    match (w.next(), w.next()) {
        (Some("machine"), Some(h)) => Some(h),
        _ => None,
    }
}

/// Line ranges `[start, end)` of the entries for `host`.
fn entry_ranges(lines: &[&str], host: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if entry_host(lines[i]) == Some(host) {
            let mut j = i + 1;
            while j < lines.len() && !starts_entry(lines[j]) {
                j += 1;
            }
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// The netrc text with exactly one entry for `host` carrying `token`: an existing entry
/// is replaced in place, otherwise one is appended.
pub fn upsert(text: &str, host: &str, token: &str) -> String {
    let entry = format!("machine {host} password {token}\n");
    let lines = split_lines(text);
    let ranges = entry_ranges(&lines, host);
    let mut out = String::new();
    match ranges.first() {
        Some(&(first_start, _)) => {
            for (i, l) in lines.iter().enumerate() {
                if i == first_start {
                    out.push_str(&entry);
                }
                if ranges.iter().any(|&(s, e)| i >= s && i < e) {
                    continue;
                }
                out.push_str(l);
            }
        }
        None => {
            out.push_str(text);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&entry);
        }
    }
    out
}

/// The netrc text without the entries for `host`, and whether any was there.
pub fn remove(text: &str, host: &str) -> (String, bool) {
    let lines = split_lines(text);
    let ranges = entry_ranges(&lines, host);
    let out = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !ranges.iter().any(|&(s, e)| *i >= s && *i < e))
        .map(|(_, l)| *l)
        .collect();
    (out, !ranges.is_empty())
}

/// The `login` (if any) and `password` netrc gives for `host`: its `machine` entry,
/// else the `default` entry, read as curl reads netrc (a stream of words).
pub fn lookup(text: &str, host: &str) -> Option<(Option<String>, String)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut best: Option<(Option<String>, String)> = None;
    let mut i = 0;
    while i < words.len() {
        let (matches, is_default) = match words[i] {
            "machine" => {
                let m = words.get(i + 1) == Some(&host);
                i += 2;
                (m, false)
            }
            "default" => {
                i += 1;
                (true, true)
            }
            "macdef" => {
                // A macro body runs to an empty line; its words are not tokens.
                i += 2;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let (mut login, mut password) = (None, None);
        while i < words.len() && !matches!(words[i], "machine" | "default" | "macdef") {
            match words[i] {
                "login" => login = words.get(i + 1).map(|s| (*s).to_owned()),
                "password" => password = words.get(i + 1).map(|s| (*s).to_owned()),
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
        if let (true, Some(p)) = (matches, password) {
            if !is_default {
                return Some((login, p));
            }
            best.get_or_insert((login, p));
        }
    }
    best
}

/// Whether any `machine`/`default` entry is left.
pub fn has_entries(text: &str) -> bool {
    text.lines().any(starts_entry)
}

/// The text with every password / account value replaced by `<redacted>`, for diffs
/// (see [`crate::redact::netrc`]).
pub fn redact(text: &str) -> String {
    crate::redact::netrc(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_replaces_or_appends_and_remove_restores() {
        let base =
            "# mine\nmachine a.example login me password old\nmachine b.example\n  password bpw\n";
        let t = upsert(base, "b.example", "NEW");
        assert_eq!(
            t,
            "# mine\nmachine a.example login me password old\nmachine b.example password NEW\n"
        );
        let t = upsert("machine a.example password x", "c.example", "tok");
        assert_eq!(
            t,
            "machine a.example password x\nmachine c.example password tok\n"
        );
        let (r, had) = remove(&upsert(base, "c.example", "tok"), "c.example");
        assert!(had);
        assert_eq!(r, base);
        assert!(!has_entries("# only a comment\n"));
    }

    #[test]
    fn lookup_finds_the_host_then_the_default() {
        let t = "default password D\nmachine a.example\n  login me\n  password\n  A\nmachine b.example password B";
        assert_eq!(
            lookup(t, "a.example"),
            Some((Some("me".into()), "A".into()))
        );
        assert_eq!(lookup(t, "b.example"), Some((None, "B".into())));
        assert_eq!(lookup(t, "c.example"), Some((None, "D".into())));
        assert_eq!(lookup("machine x login y", "x"), None);
    }

    #[test]
    fn redaction_hides_secrets() {
        let r = redact("machine x password SECRET\n+machine y login u account ACC\n");
        assert!(!r.contains("SECRET") && !r.contains("ACC"), "{r}");
        assert!(r.contains("machine x password <redacted>"));
    }
}
