//! Substituter / store URIs as Nix understands them.

/// Why a URL cannot go into nix.conf as a substituter. Each variant holds the URL as
/// given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// No `SCHEME://`.
    #[error("`{0}` is not a store URL: expected SCHEME://..., e.g. https://cache.example.org")]
    NoScheme(String),
    /// A scheme other than http, https, file, s3, ssh, ssh-ng and gs (`ftp://`,
    /// `unix://`).
    #[error(
        "`{url}` uses the scheme `{scheme}`, which Nix cannot substitute from: use one of http, https, file, s3, ssh, ssh-ng, gs"
    )]
    UnknownScheme {
        /// The URL.
        url: String,
        /// Its scheme, lowercased.
        scheme: String,
    },
    /// A `file://` URL whose path is not absolute (`file://cache`).
    #[error(
        "`{0}` is not an absolute file URL: Nix reads `file://` + an absolute path, e.g. file:///var/cache/nix (three slashes)"
    )]
    RelativeFile(String),
    /// Nothing between `://` and the path (any scheme but `file`).
    #[error("`{0}` has no host after `://`")]
    NoHost(String),
    /// An `ssh://` / `ssh-ng://` host starting with `-`: ssh would read it as an option
    /// (`ssh://-oProxyCommand=...` runs a command); Nix refuses it too.
    #[error(
        "`{0}` names a host starting with `-`, which ssh would take as an option: give the host name"
    )]
    OptionHost(String),
    /// A control character (an escape sequence, `^A`), which no URL has; the URL is shown
    /// with it escaped.
    #[error(
        "`{url}` contains the control character U+{code:04X}, which no URL has: type the URL again"
    )]
    Control {
        /// The URL, its control characters escaped.
        url: String,
        /// The first control character's code point.
        code: u32,
    },
    /// White space or `#`, which nix.conf would split on or cut at.
    #[error("`{url}` contains `{ch}`, which Nix's config parser would cut or split: {why}")]
    BadChar {
        /// The URL.
        url: String,
        /// The character (white space is looked for before `#`).
        ch: char,
        /// What nix.conf would do with it.
        why: &'static str,
    },
}

/// Schemes a binary cache substituter may use (`local`/`daemon` are stores, not caches).
const SCHEMES: &[&str] = &["http", "https", "file", "s3", "ssh", "ssh-ng", "gs"];

/// The scheme of a URL, lowercased (`https` for `https://x`).
pub(crate) fn scheme(url: &str) -> Option<String> {
    let (s, _) = url.split_once("://")?;
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')
    {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// Checks a URL before it goes into nix.conf or cache.toml.
pub fn validate_substituter(url: &str) -> Result<(), UrlError> {
    if let Some(ch) = url.chars().find(|c| c.is_whitespace()) {
        return Err(UrlError::BadChar {
            url: crate::output::escape_controls(url),
            ch,
            why: "nix.conf values are split on white space",
        });
    }
    if let Some(ch) = url.chars().find(|c| c.is_control()) {
        return Err(UrlError::Control {
            url: crate::output::escape_controls(url),
            code: u32::from(ch),
        });
    }
    if url.contains('#') {
        return Err(UrlError::BadChar {
            url: url.to_owned(),
            ch: '#',
            why: "`#` starts a comment in nix.conf, even inside a value",
        });
    }
    let scheme = scheme(url).ok_or_else(|| UrlError::NoScheme(url.to_owned()))?;
    if !SCHEMES.contains(&scheme.as_str()) {
        return Err(UrlError::UnknownScheme {
            url: url.to_owned(),
            scheme,
        });
    }
    if scheme == "file"
        && !url
            .split_once("://")
            .is_some_and(|(_, p)| p.starts_with('/'))
    {
        return Err(UrlError::RelativeFile(url.to_owned()));
    }
    if scheme != "file" && host(url).is_none_or(str::is_empty) {
        return Err(UrlError::NoHost(url.to_owned()));
    }
    if option_like_ssh_host(url) {
        return Err(UrlError::OptionHost(url.to_owned()));
    }
    Ok(())
}

/// An `ssh://` / `ssh-ng://` URI whose `[user@]host` starts with `-` (either part):
/// ssh would read it as an option (`-oProxyCommand=...` runs a command).
pub(crate) fn option_like_ssh_host(url: &str) -> bool {
    let authority = url.split_once("://").map_or("", |(_, r)| r);
    let user_host = authority.split(['/', '?']).next().unwrap_or("");
    scheme(url).is_some_and(|s| s.starts_with("ssh"))
        && (user_host.starts_with('-') || host(url).is_some_and(|h| h.starts_with('-')))
}

/// The host of `scheme://[user@]host[:port]/...`, without port or user.
pub(crate) fn host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// The value of store parameter `name` in a store URI's query (`?priority=40&...`):
/// Nix store settings, not part of an HTTP address.
pub(crate) fn store_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    uri.split_once('?')?
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Nix compares substituter URLs after dropping a trailing slash.
pub(crate) fn normalize(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// Whether two store URIs name the same store as `nix config show` prints them: Nix
/// 2.34 parses every substituter into a store reference and prints its parameters
/// sorted by name (`s3://b?region=r&endpoint=e` shows as `s3://b?endpoint=e&region=r`);
/// 2.8-2.26 print the value as written. A trailing slash of the address is dropped, as
/// in [`normalize`].
pub(crate) fn same_store(a: &str, b: &str) -> bool {
    let parts = |u: &str| {
        let (base, query) = u.split_once('?').unwrap_or((u, ""));
        let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
        params.sort_unstable();
        (normalize(base).to_owned(), params.join("&"))
    };
    parts(a) == parts(b)
}

/// `https://NAME.cachix.org` for a Cachix cache name.
pub(crate) fn cachix_url(name: &str) -> String {
    format!("https://{name}.cachix.org")
}

/// A Cachix cache name: letters, digits, `-` and `_`, not empty.
pub(crate) fn is_cachix_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The cache name of `https://NAME.cachix.org[/]`, if the URL is one.
pub(crate) fn cachix_name(url: &str) -> Option<&str> {
    normalize(url)
        .strip_prefix("https://")
        .and_then(|h| h.strip_suffix(".cachix.org"))
        .filter(|n| is_cachix_name(n))
}

/// True for `http://localhost`, `http://127.x.y.z`, `http://[::1]`: plain HTTP there is fine.
pub(crate) fn is_loopback(url: &str) -> bool {
    match host(url) {
        Some(h) => {
            h == "localhost"
                || h == "::1"
                || h.parse::<std::net::Ipv4Addr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        for ok in [
            "https://cache.nixos.org",
            "https://nanna-coder.cachix.org/",
            "http://127.0.0.1:8080",
            "file:///var/cache/nix",
            "s3://bucket?region=eu-west-1",
            "ssh-ng://builder@host",
        ] {
            validate_substituter(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert!(matches!(
            validate_substituter("cache.nixos.org"),
            Err(UrlError::NoScheme(_))
        ));
        assert!(matches!(
            validate_substituter("ftp://x"),
            Err(UrlError::UnknownScheme { .. })
        ));
        assert!(matches!(
            validate_substituter("https://"),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            validate_substituter("https://x/#frag"),
            Err(UrlError::BadChar { ch: '#', .. })
        ));
    }

    #[test]
    fn store_parameters() {
        let u = "file:///c?compression=zstd&secret-key=/k.sec&priority=40";
        assert_eq!(store_param(u, "secret-key"), Some("/k.sec"));
        assert_eq!(store_param(u, "priority"), Some("40"));
        assert_eq!(store_param(u, "compression-level"), None);
        assert_eq!(store_param("https://h", "priority"), None);
    }

    #[test]
    fn hosts_and_loopback() {
        assert_eq!(
            host("https://user@cache.example.org:443/x"),
            Some("cache.example.org")
        );
        assert_eq!(host("http://[::1]:80/"), Some("::1"));
        assert!(is_loopback("http://127.0.0.1:5000"));
        assert!(is_loopback("http://localhost/"));
        assert!(!is_loopback("http://cache.example.org"));
        assert_eq!(cachix_url("nanna-coder"), "https://nanna-coder.cachix.org");
        assert_eq!(
            cachix_name("https://nanna-coder.cachix.org/"),
            Some("nanna-coder")
        );
        assert_eq!(cachix_name("https://a.b.cachix.org"), None);
        assert_eq!(cachix_name("https://cache.nixos.org"), None);
        assert!(!is_cachix_name("") && !is_cachix_name("a b"));
    }

    #[test]
    fn same_store_ignores_the_order_of_parameters() {
        assert!(same_store(
            "s3://b?region=us-east-1&endpoint=127.0.0.1:9&scheme=http",
            "s3://b?endpoint=127.0.0.1:9&region=us-east-1&scheme=http"
        ));
        assert!(same_store(
            "https://c.example.org/",
            "https://c.example.org"
        ));
        assert!(!same_store("s3://b?region=a", "s3://b?region=b"));
        assert!(!same_store("s3://b?region=a", "s3://c?region=a"));
    }

    #[test]
    fn an_ssh_host_that_reads_as_an_option_is_refused() {
        for u in [
            "ssh://-oProxyCommand=touch${IFS}/tmp/x",
            "ssh-ng://-oProxyCommand=x@h",
            "ssh://user@-oProxyCommand=x",
        ] {
            assert_eq!(
                validate_substituter(u),
                Err(UrlError::OptionHost(u.to_owned())),
                "{u}"
            );
        }
        assert_eq!(validate_substituter("ssh-ng://builder.example"), Ok(()));
        assert_eq!(validate_substituter("https://-weird.example"), Ok(()));
    }
}
