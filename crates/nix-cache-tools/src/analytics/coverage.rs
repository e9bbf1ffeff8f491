//! Section 6: how much of a closure each binary cache already holds.
//!
//! Every cache is asked in parallel (one thread per cache, and the client's own bounded
//! worker pool per cache), each request with a timeout. `nix-cache-info` is honoured as
//! Nix honours it: a cache whose `StoreDir` is not this store's directory is unusable (Nix
//! refuses it), and `Priority` (or a `?priority=` URL parameter) orders the caches.
//! NAR bytes come from the local store's own sizes, which are what each narinfo's
//! `NarSize` says for the same path.

use super::{Coverage, Incomplete, Signatures};
use crate::binarycache::{BinaryCache, Found, QueryOptions, Signing};
use crate::keys::PublicKey;
use std::collections::BTreeSet;
use std::time::Duration;

/// One path of the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) path: String,
    pub(crate) nar_size: u64,
    /// Its NAR hash as narinfos write it (`sha256:<nix32>`), where the store's database
    /// was read (`None`: only the size is compared).
    pub(crate) nar_hash: Option<String>,
    /// Its references other than itself, as indices into the member list (a closure holds
    /// all of them).
    pub(crate) references: Vec<u32>,
}

/// The keys a narinfo's signatures are checked against: `trusted-public-keys` in effect,
/// and whether Nix requires a signature (`require-sigs`, true unless set false).
#[derive(Debug, Clone, Default)]
pub(crate) struct SigPolicy {
    pub(crate) keys: Vec<PublicKey>,
    pub(crate) require_sigs: bool,
    /// Keys that are not trusted but could be (cache.toml's): one that verifies an
    /// untrusted signature is the key to suggest, proven by that signature.
    pub(crate) candidates: Vec<PublicKey>,
}

/// At most this many present paths have their signatures checked per cache (an even
/// sample of them beyond that): ed25519 checks cost ~50 µs each.
const MAX_SIG_CHECKS: usize = 4096;

/// One cache is measured within this many `--timeout`s (60 s by default): queries not
/// answered by then count as failed (the rates are then a lower bound).
const MEASURE_ROUNDS: u32 = 6;

/// A cache whose first this many answers are all errors is not asked the rest.
const GIVE_UP_AFTER: usize = 32;

/// Examples of incomplete paths kept per cache.
const MAX_INCOMPLETE_EXAMPLES: usize = 5;

/// A cache to check and where it came from (`--cache`, `nix.conf`, `cache.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) from: String,
}

/// The `priority=N` store parameter of a URL, which overrides `nix-cache-info`.
fn url_priority(url: &str) -> Option<i32> {
    crate::url::store_param(url, "priority")?.parse().ok()
}

/// `part` of `whole` in percent, two decimals; a partial figure is never rounded to
/// 100 (one missing path of a million bytes is 99.99, not 100: a CI gate on `== 100`
/// must not pass) nor a non-zero one to 0.
fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    let r = (part as f64 * 10000.0 / whole as f64).round() / 100.0;
    if part < whole {
        r.min(99.99).max(if part > 0 { 0.01 } else { 0.0 })
    } else {
        r
    }
}

/// Not measured yet: totals of the closure, nothing known about the cache.
fn empty(target: &Target, closure: &[Member]) -> Coverage {
    Coverage {
        cache: target.url.clone(),
        from: target.from.clone(),
        priority: url_priority(&target.url),
        store_dir: None,
        measured: false,
        paths_total: closure.len() as u64,
        paths_present: None,
        nar_bytes_total: closure.iter().map(|m| m.nar_size).sum(),
        nar_bytes_present: None,
        hit_rate_paths: None,
        hit_rate_bytes: None,
        errors: 0,
        error: None,
        signatures: None,
        incomplete: None,
        other_contents: 0,
        nar_missing: 0,
        invalid_narinfos: 0,
        invalid_example: None,
    }
}

/// Nix's verdict on each signed narinfo: trusted when one `Sig` verifies with a trusted
/// key of its name. A signature whose key name is trusted but which does not verify
/// means the cache signs with another key of that name (a rotated or mistyped key).
fn check_signatures(
    found: &[&Signing],
    policy: &SigPolicy,
    trusted_url: bool,
    cap: usize,
) -> Signatures {
    let step = found.len().div_ceil(cap.max(1)).max(1);
    let mut s = Signatures {
        required: policy.require_sigs && !trusted_url,
        ..Signatures::default()
    };
    let (mut untrusted, mut mismatched) = (BTreeSet::new(), BTreeSet::new());
    for sign in found.iter().step_by(step) {
        s.checked += 1;
        let trusted = sign.fingerprint.as_deref().is_some_and(|fp| {
            sign.sigs
                .iter()
                .any(|sig| policy.keys.iter().any(|k| k.verify(fp, sig)))
        });
        if trusted {
            s.trusted += 1;
        } else if sign.sigs.is_empty() {
            if sign.content_addressed {
                s.content_addressed += 1;
            } else {
                s.unsigned += 1;
            }
        } else {
            s.untrusted += 1;
            if s.suggested_key.is_none() {
                s.suggested_key = sign.fingerprint.as_deref().and_then(|fp| {
                    policy
                        .candidates
                        .iter()
                        .find(|k| sign.sigs.iter().any(|sig| k.verify(fp, sig)))
                        .map(ToString::to_string)
                });
            }
            for sig in &sign.sigs {
                // The cache's words: a name made safe for every output.
                let name = crate::output::untrusted(
                    sig.split_once(':').map_or(sig.as_str(), |(n, _)| n),
                    100,
                );
                let name = name.as_str();
                if policy.keys.iter().any(|k| k.name == name) {
                    mismatched.insert(name.to_owned());
                } else {
                    untrusted.insert(name.to_owned());
                }
            }
        }
    }
    s.untrusted_keys = untrusted.into_iter().collect();
    s.mismatched_keys = mismatched.into_iter().collect();
    s
}

/// Paths the cache holds without one of their references.
fn incomplete(closure: &[Member], present: &[bool]) -> Incomplete {
    let mut out = Incomplete::default();
    for (m, _) in closure.iter().zip(present).filter(|(_, p)| **p) {
        let Some(&missing) = m.references.iter().find(|&&r| !present[r as usize]) else {
            continue;
        };
        out.paths += 1;
        if out.examples.len() < MAX_INCOMPLETE_EXAMPLES {
            out.examples.push(super::MissingReference {
                path: m.path.clone(),
                missing: closure[missing as usize].path.clone(),
            });
        }
    }
    out
}

/// Checks one cache. `closure` is every path of the closure; `policy`, when known, the
/// keys its signatures are checked with. A cache that cannot be asked is
/// `measured: false` with its `error`, never 0%.
fn check_one(
    target: &Target,
    closure: &[Member],
    store_dir: &str,
    policy: Option<&SigPolicy>,
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
                cov.store_dir = Some(crate::output::untrusted(sd, 200));
                // Exactly, as Nix compares it: `/nix/store/` is another prefix, refused.
                if sd != store_dir {
                    cov.error = Some(format!(
                        "the cache is for the store directory {}, not {store_dir}: Nix will not use it",
                        crate::output::untrusted(sd, 200)
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
    let paths: Vec<String> = closure.iter().map(|m| m.path.clone()).collect();
    // Bounded, whatever the cache does: each request within `timeout`, the whole cache
    // within MEASURE_ROUNDS of them, and a cache whose first answers are all errors
    // (down, 429 to everything) not asked the rest.
    let opts = QueryOptions {
        deadline: Some(std::time::Instant::now() + timeout * MEASURE_ROUNDS),
        give_up_after: Some(GIVE_UP_AFTER),
        ..QueryOptions::default()
    };
    let found = cache.query_detailed(&paths, &opts);
    let (mut present, mut bytes, mut first_error) = (0u64, 0u64, None);
    let mut held = vec![false; closure.len()];
    let mut signing = Vec::new();
    for ((f, m), held) in found.iter().zip(closure).zip(&mut held) {
        match f {
            // Other contents than this store's path (another NarSize or NarHash: a
            // corrupted or forged entry, re-signed or not): Nix would fail on its NAR with
            // "hash mismatch". The same rule as push-cache's.
            Found::Present {
                nar_size, nar_hash, ..
            } if (*nar_size != m.nar_size && m.nar_size != 0)
                || m.nar_hash
                    .as_ref()
                    .is_some_and(|h| nar_hash.as_ref() != Some(h)) =>
            {
                cov.other_contents += 1;
            }
            Found::Present { signing: s, .. } => {
                present += 1;
                bytes += m.nar_size;
                *held = true;
                signing.push(&**s);
            }
            Found::NarMissing(_) => cov.nar_missing += 1,
            Found::Invalid(why) => {
                cov.invalid_narinfos += 1;
                cov.invalid_example.get_or_insert_with(|| why.clone());
            }
            Found::Absent => {}
            Found::Error(e) => {
                cov.errors += 1;
                first_error.get_or_insert_with(|| e.clone());
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
    cov.signatures = policy.map(|p| {
        check_signatures(
            &signing,
            p,
            crate::url::store_param(&target.url, "trusted") == Some("1"),
            MAX_SIG_CHECKS,
        )
    });
    cov.incomplete = Some(incomplete(closure, &held));
    cov
}

/// Checks every target in parallel; results sorted by priority (Nix's order: lower
/// first, 50 when unset), then as given.
pub(crate) fn check_all(
    targets: &[Target],
    closure: &[Member],
    store_dir: &str,
    policy: Option<&SigPolicy>,
    timeout: Duration,
) -> Vec<Coverage> {
    let mut out: Vec<Coverage> = std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| s.spawn(move || check_one(t, closure, store_dir, policy, timeout)))
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
    fn a_partial_rate_is_never_shown_as_all_or_nothing() {
        assert_eq!(rate(12_001_240, 12_001_600), 99.99);
        assert_eq!(rate(1, 1_000_000), 0.01);
        assert_eq!(
            (rate(3, 4), rate(0, 4), rate(4, 4), rate(0, 0)),
            (75.0, 0.0, 100.0, 100.0)
        );
    }

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

    fn signing(key: Option<&crate::keys::SecretKey>, fp: &str, ca: bool) -> Signing {
        Signing {
            sigs: key.map(|k| k.sign(fp)).into_iter().collect(),
            fingerprint: Some(fp.to_owned()),
            content_addressed: ca,
        }
    }

    #[test]
    fn signatures_sorted_into_nix_verdicts_and_sampled_beyond_the_cap() {
        let seed = [7u8; 32];
        let b64 = |b: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(b)
        };
        let mk = |name: &str, seed: [u8; 32]| {
            let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
            let mut full = seed.to_vec();
            full.extend_from_slice(sk.verifying_key().as_bytes());
            crate::keys::SecretKey::parse(&format!("{name}:{}", b64(&full)))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let team = mk("team-1", seed);
        let rotated = mk("team-1", [8u8; 32]);
        let other = mk("other-1", [9u8; 32]);
        let policy = SigPolicy {
            keys: vec![team.public()],
            require_sigs: true,
            candidates: vec![],
        };
        let fp = "1;/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b;sha256:x;1;";
        let all = [
            signing(Some(&team), fp, false),
            signing(Some(&rotated), fp, false),
            signing(Some(&other), fp, false),
            signing(None, fp, false),
            signing(None, fp, true),
        ];
        let refs: Vec<&Signing> = all.iter().collect();
        let s = check_signatures(&refs, &policy, false, 10);
        assert_eq!(
            (
                s.checked,
                s.trusted,
                s.untrusted,
                s.unsigned,
                s.content_addressed
            ),
            (5, 1, 2, 1, 1)
        );
        assert_eq!(s.untrusted_keys, vec!["other-1"]);
        assert_eq!(s.mismatched_keys, vec!["team-1"]);
        assert!(s.required);
        assert_eq!(s.suggested_key, None);
        // A candidate key is suggested only when a signature proves it: a key of the
        // right name that verifies nothing is not.
        let with = |candidates| SigPolicy {
            candidates,
            ..policy.clone()
        };
        let s = check_signatures(
            &refs,
            &with(vec![mk("other-1", [1u8; 32]).public()]),
            false,
            10,
        );
        assert_eq!(s.suggested_key, None);
        let s = check_signatures(
            &refs,
            &with(vec![other.public(), rotated.public()]),
            false,
            10,
        );
        assert!(s.suggested_key.is_some(), "{s:?}");
        let want = [rotated.public().to_string(), other.public().to_string()];
        assert!(want.contains(s.suggested_key.as_ref().unwrap()), "{s:?}");
        // ?trusted=1 on the URL: Nix does not require signatures from that cache.
        assert!(!check_signatures(&refs, &policy, true, 10).required);
        // Beyond the cap an even sample, never more checks than the cap.
        let many: Vec<&Signing> = std::iter::repeat_n(&all[0], 21).collect();
        let s = check_signatures(&many, &policy, false, 10);
        assert!(s.checked <= 10 && s.checked > 5, "{s:?}");
        assert_eq!(s.trusted, s.checked);
    }

    #[test]
    fn incomplete_paths_name_one_missing_reference() {
        let m = |p: &str, refs: Vec<u32>| Member {
            path: p.to_owned(),
            nar_size: 1,
            nar_hash: None,
            references: refs,
        };
        let closure = [m("top", vec![1, 2]), m("mid", vec![2]), m("leaf", vec![])];
        let i = incomplete(&closure, &[true, true, false]);
        assert_eq!(i.paths, 2);
        assert_eq!(i.examples[1].path, "mid");
        assert_eq!(i.examples[1].missing, "leaf");
        assert_eq!(incomplete(&closure, &[false, true, true]).paths, 0);
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
            &[Member {
                path: "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-b".into(),
                nar_size: 10,
                nar_hash: None,
                references: vec![],
            }],
            "/nix/store",
            None,
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
