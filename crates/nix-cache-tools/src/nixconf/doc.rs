//! One nix.conf file as a lossless, line-classified document.

use std::fmt;

/// Separators of Nix's `tokenizeString` default: space, tab, CR, LF. Nothing else (no
/// form feed, no Unicode space) splits a nix.conf line.
pub(crate) fn is_sep(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// The tokens Nix sees on a line: the text before the first `#`, split on separators.
pub(crate) fn tokens(content: &str) -> Vec<&str> {
    let before_comment = content.split('#').next().unwrap_or("");
    before_comment
        .split(is_sep)
        .filter(|t| !t.is_empty())
        .collect()
}

/// The three list settings whose old names Nix still accepts.
pub(crate) const ALIASES: &[(&str, &str)] = &[
    ("binary-caches", "substituters"),
    ("binary-cache-public-keys", "trusted-public-keys"),
    ("trusted-binary-caches", "trusted-substituters"),
];

/// The canonical name of a setting: `binary-caches` → `substituters`, others unchanged.
pub(crate) fn canonical_name(name: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, canon)| canon)
}

/// A `key = values` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The key as written (`extra-binary-caches`).
    pub key: String,
    /// Alias-resolved name without `extra-` (`substituters`).
    pub(crate) name: String,
    /// Written as `extra-NAME`: appends instead of replacing.
    pub is_extra: bool,
    /// Value tokens (Nix joins them with one space; list settings split them again).
    pub values: Vec<String>,
}

/// Why Nix refuses a line. Every one of these makes every `nix` command fail with
/// "illegal configuration line" (2.8) / "syntax error in configuration line" (later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// `a=b`, `a=`, `word`: one token only.
    SingleToken {
        /// The line's only token.
        token: String,
    },
    /// `a =b`, `a= b`, `a b`: the second token is not exactly `=`.
    NoEquals {
        /// The first token.
        key: String,
        /// The token where `=` should stand.
        second: String,
    },
    /// `include` / `!include` without exactly one path after it.
    BadInclude {
        /// How many words follow the keyword.
        words: usize,
    },
}

/// `name` as it can be shown: a word shaped like a setting's name is shown as it is;
/// anything else (a token, a line of a key file) only by its length, since a line Nix
/// rejects may be a secret that was never meant to be a setting.
fn shown_name(word: &str) -> String {
    let is_name = word.len() <= 64
        && word.starts_with(|c: char| c.is_ascii_lowercase() || c == '!')
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '!');
    if is_name {
        format!("`{word}`")
    } else {
        format!(
            "a word of {} characters that is not a setting name",
            word.chars().count()
        )
    }
}

/// The messages name the setting at most, never a value: a rejected line may hold a
/// secret (`access-tokens=...`, a line of an SSH key or of `/proc/self/environ` pulled
/// in by `include`), and these messages reach terminals, JSON and CI summaries.
impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REJECTS: &str = "(Nix rejects the line and then every nix command fails)";
        match self {
            Invalid::SingleToken { token } => match token.split_once('=') {
                Some((k, _)) if !k.is_empty() => write!(
                    f,
                    "{} needs spaces around `=`: write `{} = VALUE` {REJECTS}",
                    shown_name(k),
                    if shown_name(k).starts_with('`') {
                        k
                    } else {
                        "NAME"
                    }
                ),
                _ => write!(
                    f,
                    "{} alone is not a setting: write `NAME = VALUE` {REJECTS}",
                    shown_name(token)
                ),
            },
            Invalid::NoEquals { key, .. } => {
                let k = key.trim_end_matches('=');
                let name = shown_name(k);
                write!(
                    f,
                    "`=` must stand alone between spaces after {name}: write `{} = VALUE` {REJECTS}",
                    if name.starts_with('`') { k } else { "NAME" }
                )
            }
            Invalid::BadInclude { words } => write!(
                f,
                "an include line takes exactly one path, found {words} words: write `include PATH` or `!include PATH` (Nix rejects the line)"
            ),
        }
    }
}

/// What a line is, as Nix's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Nothing but spaces/tabs (or nothing).
    Blank,
    /// Only a comment (`#` after optional white space).
    Comment,
    /// `key = values`.
    Setting(Setting),
    /// `include PATH` (`optional: false`, missing file is fatal) or `!include PATH`.
    Include {
        /// `!include`: Nix skips the file when it does not exist.
        optional: bool,
        /// The path as written; a relative one is resolved against the including
        /// file's directory.
        path: String,
    },
    /// A line Nix rejects, and why.
    Invalid(Invalid),
}

/// One line: its text without the line ending, its line ending, its 1-based number and
/// its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based.
    pub number: usize,
    /// The line without its ending (a lone `\r` inside stays here).
    pub content: String,
    /// `"\n"`, `"\r\n"` or `""` (last line of a file without a final newline).
    pub eol: String,
    /// What the line is to Nix.
    pub kind: LineKind,
}

impl Line {
    fn new(number: usize, content: String, eol: String) -> Self {
        let kind = classify(&content);
        Line {
            number,
            content,
            eol,
            kind,
        }
    }

    /// The line exactly as in the file, ending included.
    #[cfg(test)]
    pub(crate) fn raw(&self) -> String {
        format!("{}{}", self.content, self.eol)
    }

    /// The setting, when the line is `key = values`.
    pub fn setting(&self) -> Option<&Setting> {
        match &self.kind {
            LineKind::Setting(s) => Some(s),
            _ => None,
        }
    }

    /// The comment part, `#` included, if any.
    pub fn comment(&self) -> Option<&str> {
        self.content.find('#').map(|i| &self.content[i..])
    }
}

/// Classifies one line (without its ending) the way Nix's config parser does.
pub(crate) fn classify(content: &str) -> LineKind {
    let toks = tokens(content);
    if toks.is_empty() {
        return if content.contains('#') {
            LineKind::Comment
        } else {
            LineKind::Blank
        };
    }
    let optional = toks[0] == "!include";
    if toks[0] == "include" || optional {
        // Nix checks for include before it checks `=`: `include = x` is a bad include.
        if toks.len() != 2 {
            return LineKind::Invalid(Invalid::BadInclude {
                words: toks.len() - 1,
            });
        }
        return LineKind::Include {
            optional,
            path: toks[1].to_owned(),
        };
    }
    if toks.len() < 2 {
        return LineKind::Invalid(Invalid::SingleToken {
            token: toks[0].to_owned(),
        });
    }
    if toks[1] != "=" {
        return LineKind::Invalid(Invalid::NoEquals {
            key: toks[0].to_owned(),
            second: toks[1].to_owned(),
        });
    }
    let key = toks[0].to_owned();
    let (is_extra, base) = match key.strip_prefix("extra-") {
        Some(b) => (true, b),
        None => (false, key.as_str()),
    };
    LineKind::Setting(Setting {
        name: canonical_name(base).to_owned(),
        is_extra,
        values: toks[2..].iter().map(|t| (*t).to_owned()).collect(),
        key,
    })
}

/// A nix.conf file as a list of lines; rendering it gives back the input byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NixConf {
    lines: Vec<Line>,
}

impl NixConf {
    /// Parses any text. Never fails: lines Nix would reject are [`LineKind::Invalid`].
    pub fn parse(text: &str) -> Self {
        let mut lines = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (line, eol, next) = match rest.find('\n') {
                Some(i) => {
                    let body = &rest[..i];
                    match body.strip_suffix('\r') {
                        Some(b) => (b, "\r\n", &rest[i + 1..]),
                        None => (body, "\n", &rest[i + 1..]),
                    }
                }
                None => (rest, "", ""),
            };
            lines.push(Line::new(lines.len() + 1, line.to_owned(), eol.to_owned()));
            rest = next;
        }
        NixConf { lines }
    }

    /// The file's text, byte for byte what was parsed plus the edits made.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            s.push_str(&l.content);
            s.push_str(&l.eol);
        }
        s
    }

    /// Every line, in file order (`lines()[i].number == i + 1`).
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Line `number` (1-based).
    pub fn line(&self, number: usize) -> Option<&Line> {
        number.checked_sub(1).and_then(|i| self.lines.get(i))
    }

    /// Whether the last line ends with a newline (true for an empty file).
    #[cfg(test)]
    pub(crate) fn ends_with_newline(&self) -> bool {
        self.lines.last().is_none_or(|l| !l.eol.is_empty())
    }

    /// The file's own line ending: `\r\n` when most lines use it, else `\n`.
    pub(crate) fn newline(&self) -> &'static str {
        let crlf = self.lines.iter().filter(|l| l.eol == "\r\n").count();
        let lf = self.lines.iter().filter(|l| l.eol == "\n").count();
        if crlf > lf { "\r\n" } else { "\n" }
    }

    /// Every `key = value` line, in file order.
    pub(crate) fn settings(&self) -> impl Iterator<Item = (&Line, &Setting)> {
        self.lines
            .iter()
            .filter_map(|l| l.setting().map(|s| (l, s)))
    }

    /// Lines Nix would reject.
    pub fn invalid_lines(&self) -> impl Iterator<Item = (&Line, &Invalid)> {
        self.lines.iter().filter_map(|l| match &l.kind {
            LineKind::Invalid(i) => Some((l, i)),
            _ => None,
        })
    }

    /// Adds `text` (one line, no line ending) after the last line and returns its number.
    /// The file keeps its final-newline state: a file that ended without a newline gets
    /// one before the new line and the new line goes without, so removing the line
    /// again ([`NixConf::remove_line`]) restores the original bytes — also after the
    /// text is written and parsed again: a last line ending in a lone CR gets `\r\n`,
    /// never a bare `\n` that would merge with that CR into one CRLF ending.
    pub(crate) fn append_line(&mut self, text: &str) -> usize {
        debug_assert!(!text.contains('\n'));
        let nl = self.newline();
        let eol = match self.lines.last_mut() {
            Some(last) if last.eol.is_empty() => {
                last.eol = if last.content.ends_with('\r') {
                    "\r\n".to_owned()
                } else {
                    nl.to_owned()
                };
                ""
            }
            _ => nl,
        };
        let n = self.lines.len() + 1;
        self.lines
            .push(Line::new(n, text.to_owned(), eol.to_owned()));
        n
    }

    /// Removes line `number`. Removing the last line of a file that ends without a
    /// newline also takes the newline off the line before, mirroring
    /// [`NixConf::append_line`].
    pub(crate) fn remove_line(&mut self, number: usize) {
        let Some(i) = number.checked_sub(1).filter(|i| *i < self.lines.len()) else {
            return;
        };
        let removed = self.lines.remove(i);
        if removed.eol.is_empty() && i == self.lines.len() {
            if let Some(prev) = self.lines.last_mut() {
                prev.eol.clear();
            }
        }
        self.renumber();
    }

    /// Replaces the text of line `number`, keeping its line ending.
    pub(crate) fn set_line(&mut self, number: usize, text: &str) {
        debug_assert!(!text.contains('\n'));
        if let Some(l) = number.checked_sub(1).and_then(|i| self.lines.get_mut(i)) {
            *l = Line::new(number, text.to_owned(), std::mem::take(&mut l.eol));
        }
    }

    /// Appends value tokens to a setting line, right after its last value (before any
    /// trailing white space or comment): `a = x  # c` → `a = x y  # c`.
    pub(crate) fn append_values(&mut self, number: usize, values: &[&str]) {
        let Some(line) = self.line(number) else {
            return;
        };
        if line.setting().is_none() || values.is_empty() {
            return;
        }
        let content = &line.content;
        let code_end = content.find('#').unwrap_or(content.len());
        let end = content[..code_end].trim_end_matches(is_sep).len();
        let mut text = String::with_capacity(content.len() + 64);
        text.push_str(&content[..end]);
        for v in values {
            text.push(' ');
            text.push_str(v);
        }
        text.push_str(&content[end..]);
        self.set_line(number, &text);
    }

    /// Removes every value token equal to one of `values` (compared with `same`) from a
    /// setting line, with the white space before it (or after it, for the first value),
    /// so that removing what [`NixConf::append_values`] added restores the line. Returns
    /// how many tokens were removed.
    pub(crate) fn remove_values(&mut self, number: usize, same: impl Fn(&str) -> bool) -> usize {
        let Some(line) = self.line(number) else {
            return 0;
        };
        if line.setting().is_none() {
            return 0;
        }
        let mut text = line.content.clone();
        let mut removed = 0;
        while let Some((s, e)) = first_value_cut(&text, &same) {
            text.replace_range(s..e, "");
            removed += 1;
        }
        if removed > 0 {
            self.set_line(number, &text);
        }
        removed
    }

    fn renumber(&mut self) {
        for (i, l) in self.lines.iter_mut().enumerate() {
            l.number = i + 1;
        }
    }
}

impl fmt::Display for NixConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::str::FromStr for NixConf {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(NixConf::parse(s))
    }
}

/// Byte ranges of the tokens before the comment.
fn token_spans(content: &str) -> Vec<(usize, usize)> {
    let code_end = content.find('#').unwrap_or(content.len());
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in content[..code_end].char_indices() {
        match (is_sep(c), start) {
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, code_end));
    }
    spans
}

/// The byte range to cut to drop the first value token matching `same`, with the white
/// space before it (after it, for a first value followed by others).
fn first_value_cut(content: &str, same: &impl Fn(&str) -> bool) -> Option<(usize, usize)> {
    let spans = token_spans(content);
    // Tokens 0 and 1 are the key and `=`.
    let idx = (2..spans.len()).find(|&i| same(&content[spans[i].0..spans[i].1]))?;
    let (s, e) = spans[idx];
    Some(if idx == 2 && idx + 1 < spans.len() {
        (s, spans[idx + 1].0)
    } else if idx == 2 {
        // The only value: back to `key =` as it was before a value was appended.
        (spans[1].1, e)
    } else {
        (spans[idx - 1].1, e)
    })
}
