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
    fn redaction_hides_secrets() {
        let r = redact("machine x password SECRET\n+machine y login u account ACC\n");
        assert!(!r.contains("SECRET") && !r.contains("ACC"), "{r}");
        assert!(r.contains("machine x password <redacted>"));
    }
}
