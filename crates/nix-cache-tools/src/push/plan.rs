//! What to push, decided from the closure alone (no I/O): the filter applied to every
//! path, filtered paths kept when a pushed path references them, and dependency order.

use crate::nixcli::PathInfo;
use crate::storepath::StorePath;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Plan {
    /// Paths to push, references before the paths that refer to them.
    pub(super) ordered: Vec<StorePath>,
    /// Filtered paths kept because a pushed path references them: (kept, referrer).
    pub(super) kept: Vec<(StorePath, StorePath)>,
    /// Paths the filter leaves out (no pushed path references them), sorted.
    pub(super) filtered: Vec<StorePath>,
}

/// Applies `filter` (matched against the full store path, like cachix-action's
/// `pushFilter`) to every path of `closure`. A matching path is still pushed when a path
/// that is pushed references it — Nix refuses to add a path to a binary cache while its
/// references are missing there — and such paths are reported in [`Plan::kept`] with one
/// referrer each. `closure` maps each store path to its info (only `references` is read;
/// self references allowed); references outside it are ignored.
pub(super) fn plan(closure: &BTreeMap<StorePath, PathInfo>, filter: Option<&Regex>) -> Plan {
    let matches = |p: &str| filter.is_some_and(|f| f.is_match(p));

    // Start from every unfiltered path, then pull in what they reference, transitively.
    let mut chosen: BTreeSet<&StorePath> = BTreeSet::new();
    let mut kept: Vec<(StorePath, StorePath)> = Vec::new();
    let mut stack: Vec<&StorePath> = Vec::new();
    for p in closure.keys() {
        if !matches(p) {
            chosen.insert(p);
            stack.push(p);
        }
    }
    while let Some(p) = stack.pop() {
        let Some(node) = closure.get(p) else { continue };
        for r in &node.references {
            let Some((r, _)) = closure.get_key_value(r) else {
                continue;
            };
            if chosen.insert(r) {
                kept.push((r.clone(), p.clone()));
                stack.push(r);
            }
        }
    }
    kept.sort();

    let filtered = closure
        .keys()
        .filter(|p| !chosen.contains(p))
        .cloned()
        .collect();

    Plan {
        ordered: topo_order(&chosen, closure),
        kept,
        filtered,
    }
}

/// Depth-first post-order over `set` (iterative: closures can be long chains), so every
/// path comes after its references. Deterministic: roots and edges visited sorted.
fn topo_order(
    set: &BTreeSet<&StorePath>,
    closure: &BTreeMap<StorePath, PathInfo>,
) -> Vec<StorePath> {
    let mut state: HashMap<&StorePath, u8> = HashMap::new(); // 1 = on stack, 2 = done
    let mut out = Vec::with_capacity(set.len());
    for &root in set {
        if state.contains_key(root) {
            continue;
        }
        // (node, index of the next reference to visit)
        let mut stack: Vec<(&StorePath, usize)> = vec![(root, 0)];
        state.insert(root, 1);
        while let Some((node, i)) = stack.pop() {
            let refs: Vec<&StorePath> = closure
                .get(node)
                .map(|n| {
                    let mut r: Vec<&StorePath> = n
                        .references
                        .iter()
                        .filter(|r| *r != node && set.contains(r))
                        .collect();
                    r.sort_unstable();
                    r
                })
                .unwrap_or_default();
            if let Some(&next) = refs.get(i) {
                stack.push((node, i + 1));
                if !state.contains_key(next) {
                    state.insert(next, 1);
                    stack.push((next, 0));
                }
                // A reference already on the stack would be a cycle, which store
                // closures do not have (beyond self references); ignore it.
            } else {
                state.insert(node, 2);
                out.push(node.clone());
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(path: &str, refs: &[&str]) -> (StorePath, PathInfo) {
        info(
            StorePath::fake(path),
            refs.iter().map(|r| StorePath::fake(r)).collect(),
        )
    }

    fn info(path: StorePath, references: Vec<StorePath>) -> (StorePath, PathInfo) {
        let i = PathInfo {
            valid: true,
            nar_size: 1,
            references,
            ..PathInfo::invalid(path.clone())
        };
        (path, i)
    }

    fn pos(order: &[StorePath], p: &str) -> usize {
        order.iter().position(|x| x.ends_with(p)).unwrap()
    }

    #[test]
    fn filter_applies_to_every_path_and_keeps_referenced_ones() {
        let closure: BTreeMap<_, _> = [
            n("aaa-top", &["aaa-top", "bbb-mid", "ccc-lib-source"]),
            n("bbb-mid", &["ddd-leaf"]),
            n("ccc-lib-source", &["eee-patch-source"]),
            n("eee-patch-source", &[]),
            n("ddd-leaf", &[]),
            n("fff-standalone-source", &[]),
            n("ggg-nixpkgs.tar.gz", &[]),
        ]
        .into_iter()
        .collect();
        let re = Regex::new(crate::cachetoml::DEFAULT_PUSH_FILTER).unwrap();
        let p = plan(&closure, Some(&re));
        assert_eq!(
            p.filtered,
            [
                StorePath::fake("fff-standalone-source"),
                StorePath::fake("ggg-nixpkgs.tar.gz")
            ]
        );
        // Kept transitively: top → lib-source → patch-source.
        assert_eq!(
            p.kept,
            [
                (
                    StorePath::fake("ccc-lib-source"),
                    StorePath::fake("aaa-top")
                ),
                (
                    StorePath::fake("eee-patch-source"),
                    StorePath::fake("ccc-lib-source")
                ),
            ]
        );
        assert_eq!(p.ordered.len(), 5);
        assert!(pos(&p.ordered, "ddd-leaf") < pos(&p.ordered, "bbb-mid"));
        assert!(pos(&p.ordered, "bbb-mid") < pos(&p.ordered, "aaa-top"));
        assert!(pos(&p.ordered, "eee-patch-source") < pos(&p.ordered, "ccc-lib-source"));
        assert!(pos(&p.ordered, "ccc-lib-source") < pos(&p.ordered, "aaa-top"));
    }

    #[test]
    fn no_filter_pushes_everything_in_order() {
        let closure = [n("aaa-x", &["bbb-y-source"]), n("bbb-y-source", &[])]
            .into_iter()
            .collect();
        let p = plan(&closure, None);
        assert!(p.filtered.is_empty() && p.kept.is_empty());
        assert_eq!(
            p.ordered,
            [StorePath::fake("bbb-y-source"), StorePath::fake("aaa-x")]
        );
    }

    #[test]
    fn long_chains_do_not_overflow_the_stack() {
        let closure = (0..50_000)
            .map(|i| {
                let refs = if i > 0 {
                    vec![StorePath::fake(&format!("p{:08}", i - 1))]
                } else {
                    vec![]
                };
                info(StorePath::fake(&format!("p{i:08}")), refs)
            })
            .collect();
        let p = plan(&closure, None);
        assert_eq!(p.ordered.len(), 50_000);
        assert!(p.ordered.windows(2).all(|w| w[0] < w[1]));
    }
}
