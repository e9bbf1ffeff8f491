//! Section 6: how much of a closure each binary cache already holds.
//!
//! Every cache is asked in parallel (one thread per cache, and the client's own bounded
//! worker pool per cache), each request with a timeout. `nix-cache-info` is honoured as
//! Nix honours it: a cache whose `StoreDir` is not this store's directory is unusable (Nix
//! refuses it), and `Priority` (or a `?priority=` URL parameter) orders the caches.
//! NAR bytes come from the local store's own sizes, which are what each narinfo's
//! `NarSize` says for the same path.

use super::Coverage;
use crate::binarycache::{self, BinaryCache, QueryOptions};
use std::time::Duration;

/// A cache to check and where it came from (`--cache`, `nix.conf`, `cache.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub from: String,
}

/// The `priority=N` store parameter of a URL, which overrides `nix-cache-info`.
fn url_priority(url: &str) -> Option<u32> {
    crate::url::store_param(url, "priority")?.parse().ok()
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        100.0
    } else {
        (part as f64 * 10000.0 / whole as f64).round() / 100.0
    }
}

/// Not measured yet: totals of the closure, nothing known about the cache.
fn empty(target: &Target, closure: &[(String, u64)]) -> Coverage {
    Coverage {
        cache: target.url.clone(),
        from: target.from.clone(),
        priority: url_priority(&target.url),
        store_dir: None,
        measured: false,
        paths_total: closure.len() as u64,
        paths_present: None,
        nar_bytes_total: closure.iter().map(|(_, s)| s).sum(),
        nar_bytes_present: None,
        hit_rate_paths: None,
        hit_rate_bytes: None,
        errors: 0,
        error: None,
    }
}

/// Checks one cache. `closure` is `(path, nar_size)` of every path of the closure.
/// A cache that cannot be asked is `measured: false` with its `error`, never 0%.
pub fn check_one(
    target: &Target,
    closure: &[(String, u64)],
    store_dir: &str,
    timeout: Duration,
) -> Coverage {
    let mut cov = empty(target, closure);
    let cache = match BinaryCache::with_timeout(&target.url, timeout) {
        Ok(c) => c,
        Err(e) => {
            cov.error = Some(e.to_string());
            return cov;
        }
    };
    match cache.cache_info() {
        Ok(Some(info)) => {
            // Nix gives a cache whose nix-cache-info names none priority 50.
            cov.priority = cov.priority.or(info.priority).or(Some(50));
            if let Some(sd) = &info.store_dir {
                cov.store_dir = Some(sd.clone());
                if sd.trim_end_matches('/') != store_dir {
                    cov.error = Some(format!(
                        "the cache is for the store directory {sd}, not {store_dir}: Nix will not use it"
                    ));
                    return cov;
                }
            }
        }
        Ok(None) => {
            cov.error = Some(
                "the cache has no nix-cache-info: Nix does not treat it as a binary cache"
                    .to_owned(),
            );
            return cov;
        }
        Err(e) => {
            cov.error = Some(format!("could not read nix-cache-info: {e}"));
            return cov;
        }
    }
    let paths: Vec<String> = closure.iter().map(|(p, _)| p.clone()).collect();
    let statuses = cache.query(&paths, &QueryOptions::default());
    let (mut present, mut bytes, mut first_error) = (0u64, 0u64, None);
    for (st, (_, size)) in statuses.iter().zip(closure) {
        match &st.presence {
            binarycache::Presence::Present { .. } => {
                present += 1;
                bytes += size;
            }
            binarycache::Presence::Absent => {}
            binarycache::Presence::Error(e) => {
                cov.errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if !closure.is_empty() && cov.errors == closure.len() as u64 {
        cov.error = Some(format!(
            "every narinfo query failed, e.g. {}",
            first_error.unwrap_or_default()
        ));
        return cov;
    }
    cov.measured = true;
    cov.paths_present = Some(present);
    cov.nar_bytes_present = Some(bytes);
    cov.hit_rate_paths = Some(rate(present, cov.paths_total));
    cov.hit_rate_bytes = Some(rate(bytes, cov.nar_bytes_total));
    cov
}

/// Checks every target in parallel; results sorted by priority (Nix's order: lower
/// first, 50 when unset), then as given.
pub fn check_all(
    targets: &[Target],
    closure: &[(String, u64)],
    store_dir: &str,
    timeout: Duration,
) -> Vec<Coverage> {
    let mut out: Vec<Coverage> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| s.spawn(move || check_one(t, closure, store_dir, timeout)))
            .collect();
        handles
            .into_iter()
            .zip(targets)
            .map(|(h, t)| {
                h.join().unwrap_or_else(|_| Coverage {
                    error: Some("internal error while querying".to_owned()),
                    ..empty(t, closure)
                })
            })
            .collect()
    });
    out.sort_by_key(|c| c.priority.unwrap_or(50));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_param_and_rates() {
        assert_eq!(
            url_priority("https://c.example?priority=30&trusted=1"),
            Some(30)
        );
        assert_eq!(url_priority("https://c.example"), None);
        assert_eq!(rate(1, 3), 33.33);
        assert_eq!(rate(0, 0), 100.0);
    }

    #[test]
    fn file_cache_with_foreign_store_dir_is_unusable() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            d.path().join("nix-cache-info"),
            "StoreDir: /gnu/store\nPriority: 10\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let t = Target {
            url: format!("file://{}", d.path().display()),
            from: "--cache".into(),
        };
        let c = check_one(
            &t,
            &[("/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b".into(), 10)],
            "/nix/store",
            Duration::from_secs(5),
        );
        assert!(!c.measured);
        assert_eq!(c.paths_present, None);
        assert_eq!(c.priority, Some(10));
        assert!(
            c.error.as_deref().unwrap_or("").contains("/gnu/store"),
            "{c:?}"
        );
    }
}
