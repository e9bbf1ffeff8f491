//! `cache.toml`: a project's binary caches, described once and read by all three tools
//! and by the flake (`builtins.fromTOML`).
//!
//! ```toml
//! [[cache]]
//! url = "https://nanna-coder.cachix.org"     # or: cachix = "nanna-coder"
//! public-key = "nanna-coder.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4="
//! # token-env = "CACHIX_AUTH_TOKEN"
//!
//! [push]
//! to = "cachix:nanna-coder"
//! filter = '(-source$|nixpkgs\.tar\.gz$)'
//! # secret-key-file = "/run/secrets/cache-signing-key"
//! ```
//!
//! Parsing keeps spans, so every error names the file, the line and the key. Writing
//! (`setup-cache --save`) goes through `toml_edit`, so comments and layout survive.

use crate::keys::PublicKey;
use crate::url;
use std::fmt;
use std::path::{Path, PathBuf};
use toml_edit::{ImDocument, Item, Table};

/// The file name every tool looks for, in the current directory and its parents.
pub(crate) const FILE_NAME: &str = "cache.toml";

/// The default push filter: sources and nixpkgs tarballs are cheap to refetch.
pub(crate) const DEFAULT_PUSH_FILTER: &str = r"(-source$|nixpkgs\.tar\.gz$)";

/// A cache.toml, read and checked: its `[[cache]]` entries and its `[push]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheToml {
    /// Where it was read from (`None` when parsed from a string).
    pub(crate) path: Option<PathBuf>,
    /// The `[[cache]]` entries, in file order.
    pub caches: Vec<Cache>,
    /// The `[push]` table, when there is one.
    pub(crate) push: Option<Push>,
}

/// One `[[cache]]` entry: a binary cache the project's builds may be substituted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// Substituter URL (`https://NAME.cachix.org` for `cachix = "NAME"`).
    pub url: String,
    /// Set when the entry was given as `cachix = "NAME"`.
    pub(crate) cachix: Option<String>,
    /// `public-key`: the key the cache signs with, `NAME:BASE64` (checked: 32 bytes).
    pub public_key: String,
    /// Environment variable holding a netrc password/token for a private cache.
    pub(crate) token_env: Option<String>,
    /// 1-based line of the `[[cache]]` header.
    pub(crate) line: usize,
}

/// The `[push]` table: push-cache's defaults for this project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Push {
    /// `cachix:NAME`, `attic:CACHE` or a Nix store URI.
    pub(crate) to: Option<String>,
    /// A regex over store paths: closure paths it matches are left out (unless a pushed
    /// path references them).
    pub(crate) filter: Option<String>,
    /// Resolved against the directory holding cache.toml when relative.
    pub(crate) secret_key_file: Option<PathBuf>,
    /// 1-based line of the `[push]` header.
    pub(crate) line: usize,
}

/// What is wrong with a cache.toml, shown as ``FILE:LINE: `KEY`: MESSAGE`` (line and key
/// when known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CacheTomlError {
    /// The file, as given (or the name passed to the parser).
    pub(crate) file: String,
    /// 1-based line of the error, when it has one.
    pub(crate) line: Option<usize>,
    /// The key at fault, dotted (`cache.public-key`, `push.to`), when there is one.
    pub key: Option<String>,
    /// What is wrong (and, where it can say, what to write instead).
    pub(crate) message: String,
}

impl fmt::Display for CacheTomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Looks for `cache.toml` in `start` and its parents.
pub(crate) fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

/// The project's cache.toml, as every tool finds it: `config` (`--config` /
/// `CACHE_TOOLS_CONFIG`) when given, else the first `cache.toml` in `cwd` or a parent;
/// `None` when there is none. The one place the tools load it.
pub fn locate(
    config: Option<&Path>,
    cwd: &Path,
) -> Result<Option<(PathBuf, CacheToml)>, CacheTomlError> {
    let Some(path) = config.map(Path::to_path_buf).or_else(|| find(cwd)) else {
        return Ok(None);
    };
    let toml = load(&path)?;
    Ok(Some((path, toml)))
}

/// Reads and validates a cache.toml file.
pub fn load(path: &Path) -> Result<CacheToml, CacheTomlError> {
    // A regular file of bounded size only: a FIFO or /dev/zero named by --config must
    // neither hang nor fill memory.
    let text = crate::fsutil::read_to_string(path).map_err(|e| CacheTomlError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message: format!("cannot read the file: {}{}", e.io, e.hint),
    })?;
    let mut c = parse(&text, &path.display().to_string())?;
    if let Some(push) = &mut c.push {
        if let Some(k) = &push.secret_key_file {
            if k.is_relative() {
                let dir = path.parent().unwrap_or(Path::new("."));
                push.secret_key_file = Some(dir.join(k));
            }
        }
    }
    c.path = Some(path.to_owned());
    Ok(c)
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|s| {
            self.text[..s.start.min(self.text.len())]
                .matches('\n')
                .count()
                + 1
        })
    }
    fn err(
        &self,
        span: Option<std::ops::Range<usize>>,
        key: Option<&str>,
        msg: impl Into<String>,
    ) -> CacheTomlError {
        CacheTomlError {
            file: self.file.to_owned(),
            line: self.line_of(span),
            key: key.map(str::to_owned),
            message: msg.into(),
        }
    }
    fn string(
        &self,
        table: &Table,
        key: &str,
        prefix: &str,
    ) -> Result<Option<String>, CacheTomlError> {
        let Some(item) = table.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(self.err(
                item.span()
                    .or_else(|| table.key(key).and_then(|k| k.span())),
                Some(&format!("{prefix}{key}")),
                format!("must be a string, e.g. {key} = \"...\""),
            )),
        }
    }
    fn only_keys(
        &self,
        table: &Table,
        allowed: &[&str],
        prefix: &str,
    ) -> Result<(), CacheTomlError> {
        for (k, _) in table.iter() {
            if !allowed.contains(&k) {
                let span = table.key(k).and_then(|key| key.span());
                return Err(self.err(
                    span,
                    Some(&format!("{prefix}{k}")),
                    format!("unknown key; allowed here: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// Parses cache.toml text; `file` names it in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<CacheToml, CacheTomlError> {
    let ctx = Ctx { file, text };
    let doc = ImDocument::parse(text).map_err(|e| CacheTomlError {
        file: file.to_owned(),
        line: ctx.line_of(e.span()),
        key: None,
        message: format!("not valid TOML: {}", e.message()),
    })?;
    let root = doc.as_table();
    ctx.only_keys(root, &["cache", "push"], "")?;

    let mut caches = Vec::new();
    if let Some(item) = root.get("cache") {
        let tables: Vec<&Table> = match item {
            Item::ArrayOfTables(a) => a.iter().collect(),
            _ => {
                return Err(ctx.err(
                    item.span()
                        .or_else(|| root.key("cache").and_then(|k| k.span())),
                    Some("cache"),
                    "must be a list of tables: write each cache under its own `[[cache]]` header",
                ));
            }
        };
        for t in tables {
            caches.push(parse_cache(&ctx, t)?);
        }
    }

    let push = match root.get("push") {
        None => None,
        Some(Item::Table(t)) => Some(parse_push(&ctx, t)?),
        Some(other) => {
            return Err(ctx.err(other.span(), Some("push"), "must be a table: `[push]`"));
        }
    };

    Ok(CacheToml {
        path: None,
        caches,
        push,
    })
}

/// What is wrong with one field of a cache description (a `[[cache]]` table of
/// cache.toml, or the same given as setup-cache's flags): the field's name
/// (`url`, `cachix`, `public-key`, `token-env`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidField {
    pub(crate) field: &'static str,
    pub(crate) message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> InvalidField {
    InvalidField {
        field,
        message: message.into(),
    }
}

/// The substituter URL of a cache given as `url` or `cachix` (exactly one of them). The
/// one rule for cache.toml and setup-cache's `--url` / `--cachix`.
pub(crate) fn cache_url(url: Option<&str>, cachix: Option<&str>) -> Result<String, InvalidField> {
    match (url, cachix) {
        (Some(_), Some(_)) => Err(invalid("cachix", "give either `url` or `cachix`, not both")),
        (Some(u), None) => {
            url::validate_substituter(u).map_err(|e| invalid("url", e.to_string()))?;
            Ok(u.to_owned())
        }
        (None, Some(name)) if url::is_cachix_name(name) => Ok(url::cachix_url(name)),
        (None, Some(name)) => Err(invalid(
            "cachix",
            format!("`{name}` is not a Cachix cache name (letters, digits and `-` only)"),
        )),
        (None, None) => Err(invalid(
            "url",
            "missing: each cache needs `url = \"https://...\"` or `cachix = \"NAME\"`",
        )),
    }
}

/// A cache's public key must be `NAME:BASE64` of 32 bytes.
pub(crate) fn check_public_key(key: &str) -> Result<(), InvalidField> {
    PublicKey::parse(key)
        .map(drop)
        .map_err(|e| invalid("public-key", e.to_string()))
}

/// `token-env` names an environment variable: letters, digits and `_`, not starting with
/// a digit.
pub(crate) fn check_token_env(name: &str) -> Result<(), InvalidField> {
    let ok = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "token-env",
            format!("`{name}` is not an environment variable name (letters, digits, `_`)"),
        ))
    }
}

fn parse_cache(ctx: &Ctx, t: &Table) -> Result<Cache, CacheTomlError> {
    let line = ctx.line_of(t.span()).unwrap_or(0);
    let at = |key: &str| t.get(key).and_then(|i| i.span()).or(t.span());
    let fail = |e: InvalidField| {
        let span = if t.contains_key(e.field) {
            at(e.field)
        } else {
            t.span()
        };
        ctx.err(span, Some(&format!("cache.{}", e.field)), e.message)
    };
    ctx.only_keys(t, &["url", "cachix", "public-key", "token-env"], "cache.")?;
    let url_v = ctx.string(t, "url", "cache.")?;
    let cachix = ctx.string(t, "cachix", "cache.")?;
    let url = cache_url(url_v.as_deref(), cachix.as_deref()).map_err(fail)?;
    let public_key = ctx.string(t, "public-key", "cache.")?.ok_or_else(|| {
        ctx.err(
            t.span(),
            Some("cache.public-key"),
            "missing: the cache's public key, NAME:BASE64 (shown on the cache's page or by `nix key convert-secret-to-public`)",
        )
    })?;
    check_public_key(&public_key).map_err(fail)?;
    let token_env = ctx.string(t, "token-env", "cache.")?;
    if let Some(v) = &token_env {
        check_token_env(v).map_err(fail)?;
    }
    Ok(Cache {
        url,
        cachix,
        public_key,
        token_env,
        line,
    })
}

fn parse_push(ctx: &Ctx, t: &Table) -> Result<Push, CacheTomlError> {
    ctx.only_keys(t, &["to", "filter", "secret-key-file"], "push.")?;
    let at = |key: &str| t.get(key).and_then(|i| i.span()).or(t.span());
    let to = ctx.string(t, "to", "push.")?;
    if let Some(to) = &to {
        validate_push_target(to).map_err(|m| ctx.err(at("to"), Some("push.to"), m))?;
    }
    let filter = ctx.string(t, "filter", "push.")?;
    if let Some(f) = &filter {
        regex::Regex::new(f).map_err(|e| {
            ctx.err(
                at("filter"),
                Some("push.filter"),
                format!(
                    "not a valid regex ({}); write a regex matched against each store path, in single quotes so backslashes stay as they are, e.g. filter = '{DEFAULT_PUSH_FILTER}'",
                    e.to_string().lines().last().unwrap_or("").trim()
                ),
            )
        })?;
    }
    let secret_key_file = ctx
        .string(t, "secret-key-file", "push.")?
        .map(PathBuf::from);
    Ok(Push {
        to,
        filter,
        secret_key_file,
        line: ctx.line_of(t.span()).unwrap_or(0),
    })
}

/// `cachix:NAME`, `attic:[SERVER:]CACHE`, or a store URI with a scheme.
pub fn validate_push_target(to: &str) -> Result<(), String> {
    // A name that starts with `-` would reach `cachix push` / `attic push` as an option.
    if let Some(name) = to.strip_prefix("cachix:") {
        if !url::is_cachix_name(name) || name.starts_with('-') {
            return Err(format!(
                "`{to}`: expected cachix:NAME (letters, digits, `-` and `_`, not starting with `-`)"
            ));
        }
        return Ok(());
    }
    if let Some(name) = to.strip_prefix("attic:") {
        if name.is_empty() || name.starts_with('-') || name.contains(char::is_whitespace) {
            return Err(format!(
                "`{to}`: expected attic:CACHE or attic:SERVER:CACHE (not starting with `-`)"
            ));
        }
        return Ok(());
    }
    if url::option_like_ssh_host(to) {
        return Err(format!(
            "`{to}` names a host starting with `-`, which ssh would take as an option: give the host name"
        ));
    }
    if to.contains(char::is_control) {
        return Err(format!(
            "`{}` contains a control character, which no push target has: type it again",
            crate::output::escape_controls(to)
        ));
    }
    let hint = "use cachix:NAME, attic:CACHE, or a Nix store URI such as file:///path, https://host, s3://bucket, ssh-ng://host";
    match url::scheme(to) {
        None => Err(format!("`{to}` is not a push target: {hint}")),
        // The store types Nix opens by URI (`nix help-stores`); anything else (`ftp://`)
        // would only fail in `nix copy`, after the build, with retries.
        Some(scheme) if !PUSH_SCHEMES.contains(&scheme.as_str()) => Err(format!(
            "`{to}`: Nix has no store of type `{scheme}`: {hint} (store types: {})",
            PUSH_SCHEMES.join(", ")
        )),
        Some(_) => Ok(()),
    }
}

/// The URI schemes of the stores Nix can copy to: binary caches (`file`, `http`,
/// `https`, `s3`), remote stores (`ssh`, `ssh-ng`, `mounted-ssh-ng`), and local and
/// daemon stores (`local`, `daemon`, `unix`, `local-overlay`).
const PUSH_SCHEMES: &[&str] = &[
    "file",
    "http",
    "https",
    "s3",
    "ssh",
    "ssh-ng",
    "mounted-ssh-ng",
    "local",
    "daemon",
    "unix",
    "local-overlay",
];

/// Adds a `[[cache]]` entry to the cache.toml at `path` (created when missing), keeping
/// every comment and the layout of what is there. Returns `false` when an entry with
/// that URL already exists (nothing written).
/// `url_` is written as `cachix = "NAME"` when it is `https://NAME.cachix.org` (the same
/// URL, as the file's own example writes it); a private cache keeps its `token-env`, so
/// everyone who runs `setup-cache` from this file gets the netrc entry too.
pub(crate) fn save_cache(
    path: &Path,
    url_: &str,
    public_key: &str,
    token_env: Option<&str>,
) -> Result<bool, CacheTomlError> {
    let text = match crate::fsutil::read_optional(path) {
        Ok(Some(b)) => String::from_utf8(b).map_err(|_| CacheTomlError {
            file: path.display().to_string(),
            line: None,
            key: None,
            message: "cannot read the file: not UTF-8 text".to_owned(),
        })?,
        Ok(None) => String::new(),
        Err(e) => {
            return Err(CacheTomlError {
                file: path.display().to_string(),
                line: None,
                key: None,
                message: format!("cannot read the file: {}{}", e.io, e.hint),
            });
        }
    };
    let existing = parse(&text, &path.display().to_string())?;
    if existing
        .caches
        .iter()
        .any(|c| url::normalize(&c.url) == url::normalize(url_))
    {
        return Ok(false);
    }
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| CacheTomlError {
                file: path.display().to_string(),
                line: None,
                key: None,
                message: e.to_string(),
            })?;
    let mut t = Table::new();
    match url::cachix_name(url_) {
        Some(name) => t.insert("cachix", toml_edit::value(name)),
        None => t.insert("url", toml_edit::value(url_)),
    };
    t.insert("public-key", toml_edit::value(public_key));
    if let Some(v) = token_env {
        t.insert("token-env", toml_edit::value(v));
    }
    match doc.get_mut("cache") {
        Some(Item::ArrayOfTables(a)) => a.push(t),
        _ => {
            // Comments after the last table (all of them, in a file with no table yet)
            // are the document's trailing decor, which toml_edit prints after every
            // table: keep them above the new entry instead of moving them below it.
            let mut trailing = doc.trailing().as_str().unwrap_or("").to_owned();
            if !trailing.trim().is_empty() {
                // A last comment without a newline would swallow the `[[cache]]` header.
                if !trailing.ends_with('\n') {
                    trailing.push('\n');
                }
                t.decor_mut().set_prefix(trailing);
                doc.set_trailing("");
            }
            let mut a = toml_edit::ArrayOfTables::new();
            a.push(t);
            doc.insert("cache", Item::ArrayOfTables(a));
        }
    }
    let out = keep_layout(&text, &doc.to_string());
    crate::fsutil::write_atomic(path, out.as_bytes()).map_err(|e| CacheTomlError {
        file: path.display().to_string(),
        line: None,
        key: None,
        message: e.to_string(),
    })?;
    Ok(true)
}

/// `toml_edit` prints every line ending as `\n` and always ends with one. When its
/// output is `text` (read with `\r\n` as `\n`, final newline aside) plus one inserted
/// piece, that piece goes into `text` itself, so every byte of the file stays as it was:
/// CRLF endings, and a missing final newline. The piece gets the file's line ending
/// (CRLF when most lines have it). Anything else (never seen) falls back to the output
/// with the file's line ending.
fn keep_layout(text: &str, out: &str) -> String {
    let crlf = text.matches("\r\n").count();
    let nl = if crlf > text.matches('\n').count() - crlf {
        "\r\n"
    } else {
        "\n"
    };
    let lf = text.replace("\r\n", "\n");
    // toml_edit ends its output with a newline even when the file had none: first try
    // without it (an entry inserted before the end), then with it.
    let no_final = !text.is_empty() && !text.ends_with('\n');
    let trimmed = out.strip_suffix('\n').filter(|_| no_final);
    let Some((prefix, out)) = trimmed
        .into_iter()
        .chain([out])
        .find_map(|o| insertion_point(&lf, o).map(|p| (p, o)))
    else {
        return if nl == "\n" {
            out.to_owned()
        } else {
            out.replace('\n', "\r\n")
        };
    };
    let suffix = lf.len() - prefix;
    let mut piece = out[prefix..out.len() - suffix].to_owned();
    // The byte offset in `text` of offset `prefix` in `lf`.
    let b = text.as_bytes();
    let (mut i, mut j) = (0, 0);
    while j < prefix {
        i += if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        j += 1;
    }
    if nl == "\r\n" {
        piece = piece.replace('\n', "\r\n");
    }
    let mut s = String::with_capacity(text.len() + piece.len());
    s.push_str(&text[..i]);
    s.push_str(&piece);
    s.push_str(&text[i..]);
    s
}

/// Where `out` is `lf` with one piece inserted: the offset in `lf`, if it is.
fn insertion_point(lf: &str, out: &str) -> Option<usize> {
    let prefix = lf
        .char_indices()
        .zip(out.chars())
        .find(|((_, a), b)| a != b)
        .map_or(lf.len().min(out.len()), |((i, _), _)| i);
    let max_suffix = lf.len().min(out.len()) - prefix;
    let suffix = lf[prefix..]
        .chars()
        .rev()
        .zip(out[prefix..].chars().rev())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a.len_utf8())
        .scan(0, |n, l| {
            *n += l;
            Some(*n)
        })
        .take_while(|n| *n <= max_suffix)
        .last()
        .unwrap_or(0);
    (prefix + suffix == lf.len()).then_some(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"# our caches
[[cache]]                       # one or more caches to pull from
url = "https://nanna-coder.cachix.org"
public-key = "nanna-coder.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4="

[[cache]]
cachix = "other"
public-key = "other.cachix.org-1:U/8OwBxzrmKhrghm7KtNA3cRnYR5ioKlB637gbc2BF4="
token-env = "CACHIX_AUTH_TOKEN"

[push]
to = "cachix:nanna-coder"
filter = '(-source$|nixpkgs\.tar\.gz$)'
"#;

    #[test]
    fn parses_the_documented_format() {
        let c = parse(EXAMPLE, "cache.toml").unwrap();
        assert_eq!(c.caches.len(), 2);
        assert_eq!(c.caches[0].url, "https://nanna-coder.cachix.org");
        assert_eq!(c.caches[0].line, 2);
        assert_eq!(c.caches[1].url, "https://other.cachix.org");
        assert_eq!(c.caches[1].cachix.as_deref(), Some("other"));
        assert_eq!(c.caches[1].token_env.as_deref(), Some("CACHIX_AUTH_TOKEN"));
        let p = c.push.unwrap();
        assert_eq!(p.to.as_deref(), Some("cachix:nanna-coder"));
        assert_eq!(p.filter.as_deref(), Some(DEFAULT_PUSH_FILTER));
    }

    fn err(text: &str) -> CacheTomlError {
        parse(text, "cache.toml").unwrap_err()
    }

    #[test]
    fn one_rule_for_files_and_flags() {
        assert_eq!(
            cache_url(None, Some("team")).unwrap(),
            "https://team.cachix.org"
        );
        assert_eq!(
            cache_url(Some("https://c.example"), None).unwrap(),
            "https://c.example"
        );
        let field = |r: Result<String, InvalidField>| r.unwrap_err().field;
        assert_eq!(
            field(cache_url(Some("https://c.example"), Some("t"))),
            "cachix"
        );
        assert_eq!(field(cache_url(None, Some("no.dots"))), "cachix");
        assert_eq!(field(cache_url(Some("notaurl"), None)), "url");
        assert_eq!(field(cache_url(None, None)), "url");
        assert!(check_token_env("CACHIX_AUTH_TOKEN").is_ok());
        for bad in ["", "1X", "A-B", "A B"] {
            assert_eq!(
                check_token_env(bad).unwrap_err().field,
                "token-env",
                "{bad:?}"
            );
        }
        assert_eq!(check_public_key("x:y").unwrap_err().field, "public-key");
        // The file's error names the line and key of the field.
        let e = err(
            "[[cache]]\ncachix = \"no.dots\"\npublic-key = \"a-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"\n",
        );
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("cache.cachix")));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err("[[cache]]\nurl = \"https://x.org\"\npublic-key = \"x:AAAA\"\n");
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("cache.public-key"))
        );
        assert!(
            e.to_string()
                .starts_with("cache.toml:3: `cache.public-key`:"),
            "{e}"
        );

        let e = err(
            "[[cache]]\nurl = \"https://x.org\"\npublic-key = \"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"\nprio = 3\n",
        );
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("cache.prio")));

        let e = err("[push]\nfilter = '(unclosed'\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("push.filter")));
        assert!(e.message.contains("unclosed group"), "{e}");
        assert!(e.message.contains(DEFAULT_PUSH_FILTER), "{e}");

        let e = err("[push]\nto = \"nowhere\"\n");
        assert_eq!(e.key.as_deref(), Some("push.to"));

        let e = err("colour = 1\n");
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("colour")));

        let e = err("[[cache]]\nurl = \"cache.example.org\"\n");
        assert_eq!(e.key.as_deref(), Some("cache.url"));

        let e = err("[[cache]\n");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn save_keeps_comments_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache.toml");
        std::fs::write(
            &p,
            "# team caches\n\n[push] # where CI pushes\nto = \"file:///tmp/c\"\n",
        )
        .unwrap();
        let key = "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
        assert!(save_cache(&p, "https://x.example", key, None).unwrap());
        let only_comments = dir.path().join("only-comments.toml");
        std::fs::write(&only_comments, "# team caches\n").unwrap();
        save_cache(&only_comments, "https://x.example", key, None).unwrap();
        let text = std::fs::read_to_string(&only_comments).unwrap();
        assert!(text.starts_with("# team caches\n[[cache]]\n"), "{text}");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# team caches\n\n[push] # where CI pushes\n"),
            "{text}"
        );
        let c = load(&p).unwrap();
        assert_eq!(c.caches[0].url, "https://x.example");
        assert!(!save_cache(&p, "https://x.example/", key, None).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
    }

    /// `--save` keeps the file's line endings (CRLF stays CRLF, also in the new entry),
    /// its final-newline state and every byte around the new entry.
    #[test]
    fn save_keeps_line_endings_and_the_final_newline_state() {
        let key = "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
        let entry = format!("[[cache]]\nurl = \"https://x.example\"\npublic-key = \"{key}\"\n");
        let crlf = |s: &str| s.replace('\n', "\r\n");
        let first = "[[cache]]\nurl = \"https://a.example\" # c\npublic-key = \"a-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"\n";
        let push = "[push]\nto = \"file:///tmp/c\"\n";
        // (original, expected)
        let cases = [
            (
                crlf("# team caches\n"),
                crlf(&format!("# team caches\n{entry}")),
            ),
            (
                crlf(&format!("# team caches\n\n{first}\n{push}")),
                crlf(&format!("# team caches\n\n{first}\n{entry}\n{push}")),
            ),
            (
                crlf(first.trim_end()),
                format!(
                    "{}\r\n\r\n{}",
                    crlf(first.trim_end()),
                    crlf(entry.trim_end())
                ),
            ),
            (
                push.trim_end().to_owned(),
                format!("{push}\n{}", entry.trim_end()),
            ),
            (
                format!("{}# crlf comment\r\n", push),
                format!("{push}# crlf comment\r\n{entry}"),
            ),
        ];
        for (original, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("cache.toml");
            std::fs::write(&p, &original).unwrap();
            assert!(save_cache(&p, "https://x.example", key, None).unwrap());
            let text = std::fs::read_to_string(&p).unwrap();
            assert_eq!(text, expected, "{original:?}");
            assert!(
                load(&p)
                    .unwrap()
                    .caches
                    .iter()
                    .any(|c| c.url == "https://x.example")
            );
        }
    }

    proptest::proptest! {
        /// Whatever the layout, `--save` only inserts: the original bytes are all still
        /// there, in order, around one new piece; an all-CRLF file stays all-CRLF.
        #[test]
        fn save_only_inserts(
            lines in proptest::collection::vec((0usize..6, proptest::bool::ANY), 0..8),
            final_newline in proptest::bool::ANY,
        ) {
            let pieces = [
                "# team caches",
                "",
                "[[cache]]\nurl = \"https://a.example\" # c\npublic-key = \"a-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"",
                "[push]\nto = \"file:///tmp/c\"",
                "  # indented",
                "[[cache]]\ncachix = \"b\"\npublic-key = \"b.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\"",
            ];
            let mut seen_push = false;
            let mut original = String::new();
            for (k, crlf) in &lines {
                // One [push] table at most, and [[cache]] tables before it.
                if *k == 3 { if seen_push { continue; } seen_push = true; }
                if seen_push && (*k == 2 || *k == 5) { continue; }
                let nl = if *crlf { "\r\n" } else { "\n" };
                original.push_str(&pieces[*k].replace('\n', nl));
                original.push_str(nl);
            }
            if !final_newline {
                original = original.trim_end_matches(['\r', '\n']).to_owned();
            }
            proptest::prop_assume!(parse(&original, "c.toml").is_ok());
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("cache.toml");
            std::fs::write(&p, &original).unwrap();
            let key = "x-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
            proptest::prop_assert!(save_cache(&p, "https://x.example", key, None).unwrap());
            let text = std::fs::read_to_string(&p).unwrap();
            let (o, t) = (original.as_bytes(), text.as_bytes());
            let pre = o.iter().zip(t).take_while(|(a, b)| a == b).count();
            let suf = o[pre..].iter().rev().zip(t[pre..].iter().rev()).take_while(|(a, b)| a == b).count();
            proptest::prop_assert_eq!(pre + suf, o.len(), "{:?} -> {:?}", original, text);
            let all_crlf = original.contains('\n') && !original.replace("\r\n", "").contains('\n');
            if all_crlf {
                proptest::prop_assert!(!text.replace("\r\n", "").contains('\n'), "{:?}", text);
            }
            proptest::prop_assert_eq!(original.ends_with('\n') || original.is_empty(), text.ends_with('\n'), "{:?}", text);
            proptest::prop_assert!(load(&p).unwrap().caches.iter().any(|c| c.url == "https://x.example"));
        }
    }

    #[test]
    fn save_writes_cachix_names_and_keeps_token_env() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cache.toml");
        let key = "team.cachix.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=";
        assert!(save_cache(&p, "https://team.cachix.org", key, Some("TEAM_TOKEN")).unwrap());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("cachix = \"team\"\n") && !text.contains("url ="),
            "{text}"
        );
        let c = load(&p).unwrap();
        assert_eq!(c.caches[0].url, "https://team.cachix.org");
        assert_eq!(c.caches[0].token_env.as_deref(), Some("TEAM_TOKEN"));
        // Not a Cachix URL (a path after the host): written as url.
        save_cache(&p, "https://team.cachix.org.example/x", key, None).unwrap();
        let c = load(&p).unwrap();
        assert_eq!(c.caches[1].url, "https://team.cachix.org.example/x");
        assert_eq!(c.caches[1].token_env, None);
    }

    #[test]
    fn push_targets_that_would_be_options_are_refused() {
        for bad in [
            "cachix:--version",
            "cachix:-j",
            "cachix:a b",
            "attic:--help",
            "ssh-ng://-oProxyCommand=x",
            "ssh://u@-oProxyCommand=x",
            "ftp://x.example",
            "gopher://x",
            "http://a/\u{1b}[2J",
        ] {
            let e = validate_push_target(bad).unwrap_err();
            assert!(!e.contains('\u{1b}'), "{e:?}");
        }
        for good in [
            "cachix:nanna-coder",
            "attic:srv:cache",
            "ssh-ng://builder",
            "file:///c",
            "s3://b?region=x",
            "unix:///run/nix.sock",
        ] {
            assert_eq!(validate_push_target(good), Ok(()), "{good}");
        }
    }
}
