//! Push targets and the exact commands that upload to them (argv built here, run by
//! [`crate::cmd::Runner`]).

use crate::cmd::Cmd;
use crate::nixcli::Nix;
use crate::storepath::StorePath;
use std::path::Path;

/// Where paths go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// Any Nix store URI, through `nix copy --to`.
    Store(String),
    /// `cachix:NAME`, through `cachix push NAME`.
    Cachix(String),
    /// `attic:[SERVER:]CACHE`, through `attic push [SERVER:]CACHE`.
    Attic(String),
}

impl Target {
    /// Parses a `--to` / `push.to` value (already checked by
    /// [`crate::cachetoml::validate_push_target`]).
    pub(super) fn parse(to: &str) -> Result<Self, String> {
        crate::cachetoml::validate_push_target(to)?;
        Ok(if let Some(n) = to.strip_prefix("cachix:") {
            Target::Cachix(n.to_owned())
        } else if let Some(c) = to.strip_prefix("attic:") {
            Target::Attic(c.to_owned())
        } else {
            Target::Store(to.to_owned())
        })
    }

    /// The program that uploads, as looked up on PATH.
    pub(super) fn program(&self) -> &'static str {
        match self {
            Target::Store(_) => "nix",
            Target::Cachix(_) => "cachix",
            Target::Attic(_) => "attic",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Credentials in the URL are never shown.
            Target::Store(u) => f.write_str(&crate::redact::url(u)),
            Target::Cachix(n) => write!(f, "cachix:{n}"),
            Target::Attic(c) => write!(f, "attic:{c}"),
        }
    }
}

/// Adds `secret-key=FILE` to a store URI's parameters, so Nix signs what it uploads.
pub(super) fn with_secret_key(uri: &str, key_file: &Path) -> String {
    // Already there (the key came from the URI itself): not twice.
    if crate::url::store_param(uri, "secret-key").is_some() {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}secret-key={}", key_file.display())
}

/// `nix copy [OPTIONS] --no-recursive --to URI PATHS...`: exactly these paths, nothing
/// of their closure (the caller orders them and knows the references are there).
/// `options` are `--option NAME VALUE` pairs (see [`super::attempt::nix_options`]).
pub(super) fn nix_copy(nix: &Nix, uri: &str, paths: &[StorePath], options: &[String]) -> Cmd {
    nix.command(["copy"])
        .args(options)
        .args(["--no-recursive", "--to", uri])
        .args(paths.iter().map(StorePath::as_str))
}

/// `cachix push [-j N] NAME` with the paths on stdin, one per line. Cachix pushes
/// closures; the caller passes a set closed under references, so nothing else goes.
pub(super) fn cachix_push(name: &str, jobs: Option<usize>, paths: &[StorePath]) -> Cmd {
    let mut c = Cmd::new("cachix").arg("push");
    if let Some(j) = jobs {
        c = c.args(["--jobs".to_owned(), j.to_string()]);
    }
    let mut stdin = paths
        .iter()
        .map(StorePath::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    stdin.push('\n');
    c.arg(name).stdin(stdin)
}

/// `attic push [-j N] --no-closure [SERVER:]CACHE PATHS...`. Paths go as arguments: every
/// attic release takes them there (`--stdin` only exists in newer ones); `--no-closure`
/// uploads exactly the set given (attic checks itself what the server already has).
pub(super) fn attic_push(cache: &str, jobs: Option<usize>, paths: &[StorePath]) -> Cmd {
    let mut c = Cmd::new("attic").arg("push");
    if let Some(j) = jobs {
        c = c.args(["--jobs".to_owned(), j.to_string()]);
    }
    c.arg("--no-closure")
        .arg(cache)
        .args(paths.iter().map(StorePath::as_str))
}

/// Why pushing to this target cannot work without credentials, or `None` when some are
/// there. `s3` is an `s3://` target's bucket as opened (its credentials read then);
/// `env` looks up environment variables (injected for tests).
pub(super) fn missing_credentials(
    target: &Target,
    s3: Option<&crate::s3::S3Bucket>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let config_home = env("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".config")));
    match target {
        // A credentials file that cannot be read is not "no credentials": opening the
        // bucket reported it already.
        Target::Store(uri) if uri.starts_with("s3://") => s3.filter(|b| b.is_anonymous()).map(|b| {
            format!(
                "no S3 credentials to push to {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials (profile= in the URI, or AWS_PROFILE); in CI, secrets are not given to pull requests from forks",
                b.url()
            )
        }),
        Target::Store(_) => None,
        Target::Cachix(name) => {
            if set("CACHIX_AUTH_TOKEN") || set("CACHIX_SIGNING_KEY") {
                return None;
            }
            // `cachix authtoken` stores the token in cachix.dhall.
            let dhall = config_home.map(|d| d.join("cachix/cachix.dhall"));
            if dhall
                .as_ref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .is_some_and(|t| t.contains("authToken"))
            {
                return None;
            }
            Some(format!(
                "no Cachix credentials (neither CACHIX_AUTH_TOKEN nor CACHIX_SIGNING_KEY is set, and no `cachix authtoken` config) to push to cachix:{name}; \
                 in CI, secrets are not given to pull requests from forks"
            ))
        }
        Target::Attic(cache) => {
            let file = config_home.map(|d| d.join("attic/config.toml"));
            if file.as_ref().is_some_and(|p| p.is_file()) {
                return None;
            }
            Some(format!(
                "no attic login (no {}) to push to attic:{cache}; run `attic login NAME URL TOKEN` first",
                file.map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.config/attic/config.toml".to_owned())
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cmd::Runner;
    use crate::nixcli::NixVersion;

    #[test]
    fn targets() {
        assert_eq!(
            Target::parse("cachix:foo").unwrap(),
            Target::Cachix("foo".into())
        );
        assert_eq!(
            Target::parse("attic:srv:foo").unwrap(),
            Target::Attic("srv:foo".into())
        );
        assert_eq!(
            Target::parse("file:///tmp/c").unwrap(),
            Target::Store("file:///tmp/c".into())
        );
        assert!(Target::parse("/tmp/c").is_err());
        assert_eq!(
            Target::parse("cachix:foo").unwrap().to_string(),
            "cachix:foo"
        );
        assert_eq!(
            Target::parse("https://u:PLANTED@h/x").unwrap().to_string(),
            "https://u:<redacted>@h/x"
        );
    }

    #[test]
    fn commands() {
        let nix = Nix::with_version(
            NixVersion::parse("nix (Nix) 2.8.0").unwrap(),
            None,
            Runner::new(),
        );
        let uri = with_secret_key("file:///tmp/c", Path::new("/k.sec"));
        assert_eq!(uri, "file:///tmp/c?secret-key=/k.sec");
        assert_eq!(
            with_secret_key("s3://b?region=x", Path::new("/k")),
            "s3://b?region=x&secret-key=/k"
        );
        let paths = vec![StorePath::fake("a-x"), StorePath::fake("b-y")];
        assert_eq!(
            nix_copy(
                &nix,
                &uri,
                &paths,
                &["--option".into(), "a".into(), "1".into()]
            )
            .argv(),
            [
                "nix",
                "--extra-experimental-features",
                "nix-command",
                "copy",
                "--option",
                "a",
                "1",
                "--no-recursive",
                "--to",
                "file:///tmp/c?secret-key=/k.sec",
                paths[0].as_str(),
                paths[1].as_str()
            ]
        );
        let c = cachix_push("team", Some(4), &paths);
        assert_eq!(c.argv(), ["cachix", "push", "--jobs", "4", "team"]);
        assert_eq!(
            c.stdin_bytes().unwrap(),
            format!("{}\n{}\n", paths[0], paths[1]).as_bytes()
        );
        assert_eq!(
            attic_push("srv:team", None, &paths).argv(),
            [
                "attic",
                "push",
                "--no-closure",
                "srv:team",
                paths[0].as_str(),
                paths[1].as_str()
            ]
        );
    }

    #[test]
    fn credentials() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().display().to_string();
        let env_with = |vars: Vec<(&'static str, String)>| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };
        let cachix = Target::Cachix("team".into());
        let none = env_with(vec![("XDG_CONFIG_HOME", home.clone())]);
        let why = missing_credentials(&cachix, None, &none).unwrap();
        assert!(why.contains("CACHIX_AUTH_TOKEN"), "{why}");
        let tok = env_with(vec![("CACHIX_AUTH_TOKEN", "t".into())]);
        assert_eq!(missing_credentials(&cachix, None, &tok), None);
        let empty = env_with(vec![("CACHIX_SIGNING_KEY", String::new())]);
        assert!(missing_credentials(&cachix, None, &empty).is_some());
        std::fs::create_dir_all(dir.path().join("cachix")).unwrap();
        std::fs::write(
            dir.path().join("cachix/cachix.dhall"),
            "{ authToken = \"x\", hostname = \"https://cachix.org\", binaryCaches = [] : List { name : Text, secretKey : Text } }",
        )
        .unwrap();
        assert_eq!(missing_credentials(&cachix, None, &none), None);
        let attic = Target::Attic("team".into());
        assert!(
            missing_credentials(&attic, None, &none)
                .unwrap()
                .contains("attic login")
        );
        assert_eq!(
            missing_credentials(&Target::Store("file:///x".into()), None, &none),
            None
        );
    }
}
