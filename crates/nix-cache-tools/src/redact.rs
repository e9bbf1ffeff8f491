//! Secrets never leave the process: every text the tools print (diffs, tables, JSON,
//! Markdown, `$GITHUB_STEP_SUMMARY`, error messages) goes through one of these first
//! wherever it may quote a file or a URL a user gave.
//!
//! What counts as a secret:
//! - credentials in URLs: `https://user:pass@host` → `https://user:<redacted>@host`,
//!   `https://TOKEN@host` → `https://<redacted>@host` ([`url`](fn@url), [`urls_in`]);
//! - values of nix.conf's `access-tokens` / `extra-access-tokens` (`host=TOKEN` →
//!   `host=<redacted>`) ([`setting_value`], [`nixconf`]);
//! - netrc `password` and `account` values in every layout netrc allows (on one line,
//!   or the value on the next line: netrc is a stream of words) and `macdef` bodies
//!   ([`netrc`]).
//!
//! Secret key files are never quoted at all (see [`crate::keys`]).

/// What replaces a secret.
pub(crate) const REDACTED: &str = "<redacted>";

/// Secrets this process was given (the password of a URL on the command line, say):
/// [`urls_in`] hides them wherever they appear, also where a program quotes them in a
/// form that is no URL (Nix 2.26 prints an ssh store as `'user:PASSWORD@host'`).
static KNOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Remembers the credentials of `url` (its userinfo's password, or a token given as the
/// whole userinfo of a non-ssh URL) as secrets to hide from every output.
pub(crate) fn register_url_secrets(url: &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return;
    };
    let secret = match userinfo.split_once(':') {
        Some((_, pw)) => pw,
        None if scheme.starts_with("ssh") => return,
        None => userinfo,
    };
    register_secret(secret);
    // What an HTTP client sends for it (`Authorization: Basic base64(user:password)`,
    // the userinfo percent-decoded), which a server may echo in an error.
    if !scheme.starts_with("ssh") {
        use base64::Engine;
        let decoded: Vec<u8> = percent_decode(userinfo);
        let raw = if userinfo.contains(':') {
            decoded
        } else {
            [decoded.as_slice(), b":"].concat()
        };
        register_secret(&base64::engine::general_purpose::STANDARD.encode(&raw));
        if let Ok(pw) = String::from_utf8(percent_decode(secret)) {
            register_secret(&pw);
        }
    }
}

/// `%XX` sequences decoded, as URL userinfo is before it is sent.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Remembers `secret` (a token, a password from a netrc) to hide from every output.
/// Secrets shorter than 4 characters cannot be told from other text and are not kept.
pub(crate) fn register_secret(secret: &str) {
    if secret.len() >= 4 {
        if let Ok(mut k) = KNOWN.lock() {
            if !k.iter().any(|s| s == secret) {
                k.push(secret.to_owned());
            }
        }
    }
}

/// Settings whose values are secrets (alias-resolved names, without `extra-`).
pub(crate) fn is_secret_setting(name: &str) -> bool {
    let base = name.strip_prefix("extra-").unwrap_or(name);
    // `access-tokens`, and what a typo or another tool makes of it (`acces-tokens`,
    // `access-token`, `github-token`): a value under such a name is surely a secret, even
    // where Nix ignores the line as unknown.
    base == "access-tokens" || base.contains("token") || base.contains("password")
}

/// Pretty JSON of `value` with [`urls_in`] applied to every string in it, before it is
/// serialized: redacting the serialized text instead would miss a password with a `"`
/// or `\\` in it (JSON escapes those, so the text no longer holds the secret as it is).
pub fn json_pretty<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(mut v) => {
            json_strings(&mut v, &urls_in);
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".to_owned())
        }
        Err(_) => "{}".to_owned(),
    }
}

/// Applies `hide` to every string in `v` (keys and structure untouched).
pub(crate) fn json_strings(v: &mut serde_json::Value, hide: &dyn Fn(&str) -> String) {
    match v {
        serde_json::Value::String(s) => *s = hide(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| json_strings(x, hide)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| json_strings(x, hide)),
        _ => {}
    }
}

/// One URL with the credentials of its authority hidden.
pub(crate) fn url(u: &str) -> String {
    urls_in(u)
}

/// `text` with the credentials of every `scheme://user:pass@host` in it hidden, and
/// every secret given to [`register_url_secrets`].
pub fn urls_in(text: &str) -> String {
    let mut out = urls_only(text);
    if let Ok(k) = KNOWN.lock() {
        for s in k.iter() {
            if out.contains(s.as_str()) {
                out = hide_known(&out, s);
            }
        }
    }
    out
}

/// Secrets at least this long are hidden wherever they appear; shorter ones only where
/// they stand as a word of their own, so that a password such as `example` or `setup`
/// does not also blank out `a.example.org` or `setup-cache` in the same output.
const HIDDEN_ANYWHERE: usize = 16;

/// `text` with every occurrence of `secret` that [`HIDDEN_ANYWHERE`] says to hide
/// replaced by [`REDACTED`].
fn hide_known(text: &str, secret: &str) -> String {
    if secret.len() >= HIDDEN_ANYWHERE {
        return text.replace(secret, REDACTED);
    }
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
    // Inside a longer word: next to a word character, or to a `.` that joins it to one
    // (`a.example.org`), unlike a full stop ending a sentence.
    let joined_before =
        |i: usize| i > 0 && (word(b[i - 1]) || (b[i - 1] == b'.' && i > 1 && word(b[i - 2])));
    let joined_after = |j: usize| {
        j < b.len() && (word(b[j]) || (b[j] == b'.' && j + 1 < b.len() && word(b[j + 1])))
    };
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (i, _) in text.match_indices(secret) {
        if i < last {
            continue;
        }
        let j = i + secret.len();
        if !joined_before(i) && !joined_after(j) {
            out.push_str(&text[last..i]);
            out.push_str(REDACTED);
            last = j;
        }
    }
    out.push_str(&text[last..]);
    out
}

fn urls_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (before, after) = rest.split_at(i + 3);
        out.push_str(before);
        // The authority ends at the first `/`, `?`, `#`, white space, quote or backtick.
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '`' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        // An ssh user name is no secret (`ssh-ng://nix@builder`); a password is.
        let ssh = before[..before.len() - 3]
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '+'))
            .next()
            .is_some_and(|scheme| scheme.starts_with("ssh"));
        match authority.rfind('@') {
            Some(at) if ssh && !authority[..at].contains(':') => out.push_str(authority),
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) if !user.is_empty() => {
                        out.push_str(user);
                        out.push(':');
                        out.push_str(REDACTED);
                    }
                    _ => out.push_str(REDACTED),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The value of nix.conf setting `name` as it may be shown: secrets hidden.
pub(crate) fn setting_value(name: &str, value: &str) -> String {
    if is_secret_setting(name) {
        value
            .split_whitespace()
            .map(|t| match t.split_once('=') {
                Some((host, _)) => format!("{host}={REDACTED}"),
                None => REDACTED.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        urls_in(value)
    }
}

/// nix.conf text with every secret hidden, line for line (for diffs): the values of
/// `access-tokens` lines and URL credentials anywhere. Line endings, comments and
/// white space are kept, so a diff of two redacted texts lines up with the real one.
pub(crate) fn nixconf(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body_end = line.trim_end_matches(['\n', '\r']).len();
        let (body, eol) = line.split_at(body_end);
        let (code, comment) = match body.find('#') {
            Some(i) => body.split_at(i),
            None => (body, ""),
        };
        let key = code.split_whitespace().next().unwrap_or("");
        let key = key.split('=').next().unwrap_or(key);
        if is_secret_setting(crate::nixconf::canonical_name(key)) {
            match code.find('=') {
                Some(eq) => {
                    let (lhs, rhs) = code.split_at(eq + 1);
                    out.push_str(lhs);
                    let lead = rhs.len() - rhs.trim_start().len();
                    out.push_str(&rhs[..lead]);
                    let value = rhs.trim();
                    out.push_str(&setting_value(key, value));
                    out.push_str(&rhs[lead + value.len()..]);
                }
                None => out.push_str(&urls_in(code)),
            }
        } else {
            out.push_str(&urls_in(code));
        }
        out.push_str(&urls_in(comment));
        out.push_str(eol);
    }
    out
}

/// The length of the netrc token at the start of `s` (not white space): a word, or a
/// quoted string up to its closing quote (backslash escapes the next character; an
/// unclosed quote runs to the end of the line).
fn netrc_token_len(s: &str) -> usize {
    if !s.starts_with('"') {
        return s.find(char::is_whitespace).unwrap_or(s.len());
    }
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            '\n' => return i,
            _ => {}
        }
    }
    s.len()
}

/// netrc text with every `password` / `account` value and `macdef` body hidden. netrc
/// is a stream of white-space separated tokens, read as curl reads them: each keyword
/// that takes one is followed by its value (which is never a keyword, even when it reads
/// `password`), a value may stand on the line after its keyword, and a `"quoted value"`
/// (curl 7.84+) is one token, spaces and `\"` included. White space is kept exactly.
pub(crate) fn netrc(text: &str) -> String {
    /// What the next token is the value of.
    enum Value {
        Secret,
        Plain,
        MacroName,
    }
    let mut out = String::with_capacity(text.len());
    let mut value_of: Option<Value> = None;
    let mut in_macdef = false;
    let mut rest = text;
    while !rest.is_empty() {
        if in_macdef {
            // A macro body runs to the next empty line.
            match rest.find("\n\n") {
                Some(i) => {
                    let body = &rest[..i];
                    // Keep the line that names the macro (up to the first newline).
                    let first_nl = body.find('\n').map_or(body.len(), |n| n + 1);
                    out.push_str(&body[..first_nl]);
                    if first_nl < body.len() {
                        out.push_str(REDACTED);
                    }
                    out.push_str("\n\n");
                    rest = &rest[i + 2..];
                }
                None => {
                    let first_nl = rest.find('\n').map_or(rest.len(), |n| n + 1);
                    out.push_str(&rest[..first_nl]);
                    if first_nl < rest.len() {
                        out.push_str(REDACTED);
                        out.push('\n');
                    }
                    rest = "";
                }
            }
            in_macdef = false;
            continue;
        }
        let ws = rest.len() - rest.trim_start().len();
        out.push_str(&rest[..ws]);
        rest = &rest[ws..];
        if rest.is_empty() {
            break;
        }
        let word_len = netrc_token_len(rest);
        let word = &rest[..word_len];
        rest = &rest[word_len..];
        match value_of.take() {
            // A value is never read as a keyword (`login password password SECRET`).
            Some(Value::Secret) => {
                out.push_str(REDACTED);
                continue;
            }
            Some(Value::Plain) => {
                out.push_str(word);
                continue;
            }
            Some(Value::MacroName) => {
                out.push_str(word);
                in_macdef = true;
                continue;
            }
            None => {}
        }
        out.push_str(word);
        value_of = match word {
            "password" | "account" => Some(Value::Secret),
            "machine" | "login" => Some(Value::Plain),
            "macdef" => Some(Value::MacroName),
            _ => None,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_hidden() {
        assert_eq!(
            url("https://user:pa55@cache.example.org/x"),
            "https://user:<redacted>@cache.example.org/x"
        );
        assert_eq!(url("https://TOKEN@h"), "https://<redacted>@h");
        assert_eq!(url("https://h/a@b"), "https://h/a@b");
        assert_eq!(
            urls_in("from `s3://k:s@b?x=1` and http://a:b@c:8080"),
            "from `s3://k:<redacted>@b?x=1` and http://a:<redacted>@c:8080"
        );
        assert_eq!(urls_in("no url here"), "no url here");
        assert_eq!(url("ssh-ng://nix@builder"), "ssh-ng://nix@builder");
        assert_eq!(url("ssh://nix:pw@builder"), "ssh://nix:<redacted>@builder");
    }

    #[test]
    fn registered_secrets_are_hidden_in_any_form() {
        register_url_secrets("ssh://user:s3cr3tPW@host");
        assert_eq!(
            urls_in("failed to start SSH connection to 'user:s3cr3tPW@127.0.0.1:1'"),
            "failed to start SSH connection to 'user:<redacted>@127.0.0.1:1'"
        );
        register_url_secrets("https://tok3nABC@host");
        assert!(!urls_in("token tok3nABC").contains("tok3nABC"));
        register_url_secrets("ssh-ng://nix@builder");
        assert_eq!(urls_in("nix@builder"), "nix@builder");
        // What an HTTP client sends for URL credentials, echoed by a server.
        register_url_secrets("http://alice:s3cret%21PW@127.0.0.1:1");
        assert_eq!(
            urls_in("you sent Basic YWxpY2U6czNjcmV0IVBX and s3cret!PW"),
            "you sent Basic <redacted> and <redacted>"
        );
    }

    /// A short secret that is also part of the text around it (`example`, `setup`) is
    /// hidden where it stands alone, not inside host names, key names or words.
    #[test]
    fn short_secrets_are_hidden_as_words_only() {
        register_url_secrets("https://x:example@a.example");
        register_url_secrets("https://x:setup@b.example");
        assert_eq!(
            urls_in("would add https://a.example/ with key test.example.org-1: ok"),
            "would add https://a.example/ with key test.example.org-1: ok"
        );
        assert_eq!(
            urls_in("# added by setup-cache; the server said: bad password example."),
            "# added by setup-cache; the server said: bad password <redacted>."
        );
        assert_eq!(urls_in("pw=setup,"), "pw=<redacted>,");
        // A long one goes wherever it is.
        register_secret("0123456789abcdefXYZ");
        assert_eq!(urls_in("a0123456789abcdefXYZb"), "a<redacted>b");
    }

    #[test]
    fn values_of_misspelt_token_settings_are_hidden_too() {
        let r = nixconf(
            "acces-tokens = github.com=ghp_TYPO1\naccess-token = ghp_TYPO2\nmy-password = pw3\n",
        );
        for s in ["ghp_TYPO1", "ghp_TYPO2", "pw3"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
    }

    #[test]
    fn access_tokens_are_hidden_line_for_line() {
        let text = "a = b\r\nextra-access-tokens = github.com=ghp_SECRET  gitlab.com=glpat-X # mine\naccess-tokens=SECRET2\nsubstituters = https://u:PW@h\n";
        let r = nixconf(text);
        for s in ["ghp_SECRET", "glpat-X", "SECRET2", "PW"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        assert!(r.starts_with("a = b\r\nextra-access-tokens = github.com=<redacted>"));
        assert!(r.contains("# mine\n"));
        assert_eq!(r.lines().count(), text.lines().count());
        assert_eq!(
            setting_value("access-tokens", "github.com=x y"),
            "github.com=<redacted> <redacted>"
        );
    }

    #[test]
    fn netrc_passwords_in_every_layout() {
        let text = "machine a login me password ONE\nmachine b\n  password\n  TWO\ndefault account THREE password\tFOUR\nmacdef init\ncd /FIVE\n\nmachine c password SIX";
        let r = netrc(text);
        for s in ["ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        assert!(
            r.contains("machine a login me password <redacted>\n"),
            "{r}"
        );
        assert!(r.contains("machine c"), "{r}");
        assert_eq!(r.lines().count(), text.lines().count(), "{r}");
        // A value that reads like a keyword is still a value; a quoted password with
        // spaces (and an escaped quote) is one token; an unclosed quote hides the line.
        let text = "machine o login password password SEVEN
machine y password \"EIGHT \\\" NINE\" login u
machine z password \"TEN ELEVEN\nmachine w login password\n";
        let r = netrc(text);
        for s in ["SEVEN", "EIGHT", "NINE", "TEN", "ELEVEN"] {
            assert!(!r.contains(s), "{s} in {r}");
        }
        assert!(r.contains("login password password <redacted>"), "{r}");
        assert!(r.contains("<redacted> login u"), "{r}");
        assert!(r.contains("machine w login password\n"), "{r}");
    }
}
