//! The request: the caches from the command line or cache.toml (checked with
//! cache.toml's own rules), and `--save`.

use super::*;

/// Where the caches come from, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct CacheArgs {
    /// `--config FILE`: the cache.toml to read.
    pub config: Option<PathBuf>,
    /// `--url URL`: a cache given directly.
    pub url: Option<String>,
    /// `--cachix NAME`: `https://NAME.cachix.org`.
    pub cachix: Option<String>,
    /// `--public-key NAME:BASE64`.
    pub public_key: Option<String>,
    /// `--token-env VAR`: the variable holding a private cache's netrc token.
    pub token_env: Option<String>,
    /// Where to look for cache.toml when `config` is not given.
    pub cwd: PathBuf,
    /// `--remove`: `--url` without `--public-key` is allowed (only the URL goes).
    pub remove: bool,
}

/// The caches to act on.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The caches, validated.
    pub caches: Vec<CacheSpec>,
    /// The cache.toml they came from (`None` when given with `--url` / `--cachix`).
    pub config: Option<PathBuf>,
    /// The flags that select these caches, for commands printed in advice
    /// (` --url U --public-key K` or ` --config FILE`).
    pub cli_args: String,
}

/// Validates the flags — with cache.toml's own rules ([`cachetoml::cache_url`],
/// [`cachetoml::check_token_env`], [`cachetoml::check_public_key`]) — and reads
/// cache.toml when no cache is given directly.
pub fn resolve_caches(a: &CacheArgs) -> Result<Resolved, SetupError> {
    if let Some(v) = &a.token_env {
        cachetoml::check_token_env(v)
            .map_err(|e| SetupError::Usage(format!("--token-env {v}: {}", e.message)))?;
    }
    let direct = if a.url.is_some() || a.cachix.is_some() {
        let flag = if a.url.is_some() { "--url" } else { "--cachix" };
        let u = cachetoml::cache_url(a.url.as_deref(), a.cachix.as_deref()).map_err(|e| {
            match e.field {
                "url" => SetupError::BadUrl {
                    flag: format!(
                        "--url {}",
                        crate::output::escape_controls(a.url.as_deref().unwrap_or(""))
                    ),
                    reason: e.message,
                },
                // Both given, or a Cachix name that is not one.
                _ if a.url.is_some() => {
                    SetupError::Usage("give either --url or --cachix, not both".into())
                }
                _ => SetupError::Usage(format!(
                    "--cachix {}: {}",
                    a.cachix.as_deref().unwrap_or(""),
                    e.message
                )),
            }
        })?;
        Some((flag, u))
    } else {
        None
    };
    if let Some((flag, u)) = direct {
        let key = match &a.public_key {
            Some(k) => k.trim().to_owned(),
            // Removing by URL alone is fine: only the substituter is taken out.
            None if a.remove => String::new(),
            None => {
                let page = match &a.cachix {
                    Some(name) => {
                        format!(" (Cachix shows it on https://app.cachix.org/cache/{name})")
                    }
                    None => String::new(),
                };
                return Err(SetupError::Usage(format!(
                    "{flag} needs --public-key NAME:BASE64, the key the cache signs with{page}"
                )));
            }
        };
        // Given, it must be a key, an empty one included (`--public-key ''` wrote an
        // empty marked line that no `--remove` took out).
        if a.public_key.is_some() {
            PublicKey::parse(&key).map_err(|reason| SetupError::BadKey {
                origin: "--public-key".into(),
                reason,
            })?;
        }
        let cli_args = format!(
            " --url {} --public-key {}",
            shell_quote(&u),
            shell_quote(&key)
        );
        return Ok(Resolved {
            caches: vec![CacheSpec {
                url: u,
                public_key: key,
                token_env: a.token_env.clone(),
            }],
            config: None,
            cli_args,
        });
    }
    if a.public_key.is_some() {
        return Err(SetupError::Usage(
            "--public-key goes with --url URL or --cachix NAME".into(),
        ));
    }
    let (path, toml) = cachetoml::locate(a.config.as_deref(), &a.cwd)?
        .ok_or_else(|| SetupError::NoCaches { dir: a.cwd.clone() })?;
    if toml.caches.is_empty() {
        return Err(SetupError::Usage(format!(
            "{}: no [[cache]] entry: add one (url + public-key) or pass --url URL --public-key KEY",
            path.display()
        )));
    }
    let caches = toml
        .caches
        .iter()
        .map(|c| CacheSpec {
            url: c.url.clone(),
            public_key: c.public_key.clone(),
            token_env: c.token_env.clone().or_else(|| a.token_env.clone()),
        })
        .collect();
    Ok(Resolved {
        caches,
        cli_args: format!(" --config {}", shell_quote(&path.display().to_string())),
        config: Some(path),
    })
}

/// Whether `caches` may be recorded in a cache.toml, a file teams commit: a URL with
/// credentials (`https://user:PASSWORD@host`) may not; its token goes in a variable.
pub fn check_save(caches: &[CacheSpec]) -> Result<(), SetupError> {
    match caches.iter().find(|c| crate::redact::url(&c.url) != c.url) {
        Some(c) => Err(SetupError::Usage(format!(
            "--save: `{}` carries credentials, and cache.toml is a file meant to be committed: pass the URL without them and the token with --token-env VAR (recorded as `token-env`, the token itself never written to cache.toml)",
            crate::redact::url(&c.url)
        ))),
        None => Ok(()),
    }
}

/// `--save`: adds the caches to cache.toml (created when missing), keeping its comments.
/// Returns the caches that were new there. `on_lock_wait` as in [`Request::on_lock_wait`].
pub fn save(
    path: &Path,
    caches: &[CacheSpec],
    on_lock_wait: fn(&Path),
) -> Result<Vec<String>, SetupError> {
    check_save(caches)?;
    // Read-modify-write under the same kind of lock as nix.conf: parallel `--save`s
    // cannot lose each other's entries.
    let _lock = fsutil::FileLock::acquire(path, on_lock_wait)?;
    let mut added = Vec::new();
    for c in caches {
        if cachetoml::save_cache(path, &c.url, &c.public_key, c.token_env.as_deref())? {
            added.push(c.url.clone());
        }
    }
    Ok(added)
}

/// The netrc entries (host, token) of the private caches, read from their token
/// variables: a missing, empty or multi-word token is an error before anything is
/// touched. None for `--remove`.
pub(super) fn tokens(req: &Request) -> Result<Vec<(String, String)>, SetupError> {
    if req.remove {
        return Ok(Vec::new());
    }
    let mut tokens = Vec::new();
    for c in &req.caches {
        let Some(var) = &c.token_env else { continue };
        let token = std::env::var(var)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| SetupError::TokenMissing {
                origin: crate::redact::url(&c.url),
                var: var.clone(),
            })?;
        let token = token.trim();
        // netrc is a stream of words: white space inside the token would make the rest
        // of it a new entry (`machine evil.example ...`).
        if token.contains(char::is_whitespace) {
            return Err(SetupError::BadToken { var: var.clone() });
        }
        let host = url::host(&c.url).unwrap_or_default().to_owned();
        tokens.push((host, token.to_owned()));
    }
    Ok(tokens)
}
