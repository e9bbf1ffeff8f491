//! The store as a flat graph: paths indexed `0..n` in one string arena, NAR sizes in a
//! `Vec<u64>`, references in compressed sparse rows. Every algorithm here is iterative
//! and allocation-free per path, so a 200,000-path store is walked in milliseconds.

use std::collections::HashMap;

/// Store paths, their NAR sizes and references.
#[derive(Debug, Default, Clone)]
pub(crate) struct Graph {
    arena: String,
    starts: Vec<u32>,
    nar: Vec<u64>,
    ref_start: Vec<u32>,
    refs: Vec<u32>,
    /// `(output, derivation)`: the derivation a live output keeps alive under
    /// `keep-derivations` (the output's deriver, listed in `DerivationOutputs`).
    output_deriver: Vec<(u32, u32)>,
    /// `(derivation, output)` from `DerivationOutputs`: what `keep-outputs` keeps alive.
    drv_outputs: Vec<(u32, u32)>,
}

/// Builds a [`Graph`]: paths first, then references by index.
#[derive(Debug, Default)]
pub(crate) struct GraphBuilder {
    g: Graph,
    edges: Vec<(u32, u32)>,
}

impl GraphBuilder {
    pub(crate) fn with_capacity(paths: usize, refs: usize) -> Self {
        let mut g = Graph {
            arena: String::with_capacity(paths * 56),
            starts: Vec::with_capacity(paths + 1),
            nar: Vec::with_capacity(paths),
            ..Graph::default()
        };
        g.starts.push(0);
        GraphBuilder {
            g,
            edges: Vec::with_capacity(refs),
        }
    }

    /// Adds a path; returns its index.
    pub(crate) fn push_path(&mut self, path: &str, nar_size: u64) -> u32 {
        let idx = self.g.nar.len() as u32;
        self.g.arena.push_str(path);
        self.g.starts.push(self.g.arena.len() as u32);
        self.g.nar.push(nar_size);
        idx
    }

    pub(crate) fn len(&self) -> usize {
        self.g.nar.len()
    }

    pub(crate) fn path(&self, idx: u32) -> &str {
        self.g.path(idx)
    }

    /// `referrer` references `reference`. Self references are dropped: they change no
    /// closure.
    pub(crate) fn push_ref(&mut self, referrer: u32, reference: u32) {
        if referrer != reference {
            self.edges.push((referrer, reference));
        }
    }

    /// Records `DerivationOutputs`-style facts: `drv` lists `output` as an output, and
    /// whether `output`'s deriver is `drv`.
    pub(crate) fn push_drv_output(&mut self, drv: u32, output: u32, output_deriver_is_drv: bool) {
        self.g.drv_outputs.push((drv, output));
        if output_deriver_is_drv && self.g.path(drv).ends_with(".drv") {
            self.g.output_deriver.push((output, drv));
        }
    }

    pub(crate) fn finish(mut self) -> Graph {
        let n = self.g.nar.len();
        let (start, adj) = csr(n, &self.edges);
        self.g.ref_start = start;
        self.g.refs = adj;
        self.g
    }
}

/// Compressed sparse rows from an edge list (counting sort by source).
fn csr(n: usize, edges: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; n + 1];
    for &(a, _) in edges {
        start[a as usize + 1] += 1;
    }
    for i in 0..n {
        start[i + 1] += start[i];
    }
    let mut fill = start.clone();
    let mut adj = vec![0u32; edges.len()];
    for &(a, b) in edges {
        let slot = &mut fill[a as usize];
        adj[*slot as usize] = b;
        *slot += 1;
    }
    (start, adj)
}

/// Edges beyond references that the GC follows (deriver, outputs), as CSR.
struct ExtraEdges {
    starts: Vec<u32>,
    targets: Vec<u32>,
}

impl ExtraEdges {
    /// Where the extra edges of `v` lead (none when there are no extra edges at all).
    fn of(&self, v: u32) -> &[u32] {
        if self.starts.is_empty() {
            return &[];
        }
        &self.targets[self.starts[v as usize] as usize..self.starts[v as usize + 1] as usize]
    }
}

/// One path's closure: how many paths and their NAR bytes (its own included), what
/// `nix path-info -S` calls the closure size. Also what one root alone keeps alive
/// ([`Graph::exclusive`]): cache-analytics' JSON `freed_if_deleted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ClosureSize {
    /// Number of paths.
    pub paths: u64,
    /// Their NAR sizes summed, in bytes.
    pub nar_bytes: u64,
}

impl Graph {
    pub(crate) fn len(&self) -> usize {
        self.nar.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nar.is_empty()
    }

    pub(crate) fn path(&self, idx: u32) -> &str {
        let i = idx as usize;
        &self.arena[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    pub(crate) fn nar_size(&self, idx: u32) -> u64 {
        self.nar[idx as usize]
    }

    pub(crate) fn references(&self, idx: u32) -> &[u32] {
        let i = idx as usize;
        &self.refs[self.ref_start[i] as usize..self.ref_start[i + 1] as usize]
    }

    pub(crate) fn ref_count(&self) -> usize {
        self.refs.len()
    }

    pub(crate) fn paths(&self) -> impl Iterator<Item = (u32, &str)> {
        (0..self.len() as u32).map(move |i| (i, self.path(i)))
    }

    /// A map from full store path to index (built on demand; the hot paths never need it).
    pub(crate) fn index(&self) -> HashMap<&str, u32> {
        self.paths().map(|(i, p)| (p, i)).collect()
    }

    #[cfg(test)]
    pub(crate) fn total_nar(&self) -> u64 {
        self.nar.iter().sum()
    }

    /// The `n` largest paths by NAR size, largest first (ties by path name).
    pub(crate) fn largest(&self, n: usize) -> Vec<u32> {
        let mut idx: Vec<u32> = (0..self.len() as u32).collect();
        let cmp = |a: &u32, b: &u32| {
            self.nar[*b as usize]
                .cmp(&self.nar[*a as usize])
                .then_with(|| self.path(*a).cmp(self.path(*b)))
        };
        if n < idx.len() && n > 0 {
            idx.select_nth_unstable_by(n - 1, cmp);
            idx.truncate(n);
        }
        idx.sort_unstable_by(cmp);
        idx.truncate(n);
        idx
    }

    /// Exact closure sizes of `starts`: one iterative DFS each, sharing one
    /// generation-stamped visited array (no set allocated per start).
    pub(crate) fn closure_sizes(&self, starts: &[u32]) -> Vec<ClosureSize> {
        let mut stamp = vec![0u32; self.len()];
        let mut stack: Vec<u32> = Vec::new();
        let mut out = Vec::with_capacity(starts.len());
        for (k, &s) in starts.iter().enumerate() {
            let gen_ = k as u32 + 1;
            let mut size = ClosureSize {
                paths: 0,
                nar_bytes: 0,
            };
            stamp[s as usize] = gen_;
            stack.push(s);
            while let Some(v) = stack.pop() {
                size.paths += 1;
                size.nar_bytes += self.nar[v as usize];
                for &r in self.references(v) {
                    if stamp[r as usize] != gen_ {
                        stamp[r as usize] = gen_;
                        stack.push(r);
                    }
                }
            }
            out.push(size);
        }
        out
    }

    /// Every path of the closure of `starts` (references only), as a mask.
    pub(crate) fn closure_mask(&self, starts: &[u32]) -> Vec<bool> {
        self.reach(starts, false, false)
    }

    /// Paths the garbage collector keeps: everything reachable from `roots` through
    /// references, plus, as Nix's GC does, the deriver `.drv` of a live output with
    /// `keep-derivations` (default true) and the outputs of a live derivation with
    /// `keep-outputs` (default false). One multi-source DFS.
    pub(crate) fn live_mask(
        &self,
        roots: &[u32],
        keep_derivations: bool,
        keep_outputs: bool,
    ) -> Vec<bool> {
        self.reach(roots, keep_derivations, keep_outputs)
    }

    /// For each of `roots`, the paths and NAR bytes that only it keeps alive (under the
    /// same rules as [`Graph::live_mask`]): what deleting that root alone would make
    /// garbage. Each path is owned by the first root that reaches it, and becomes shared
    /// — with everything below it — when a second one does: every path changes state at
    /// most twice, so the whole is linear in the graph, however many roots.
    pub(crate) fn exclusive(
        &self,
        roots: &[u32],
        keep_derivations: bool,
        keep_outputs: bool,
    ) -> Vec<ClosureSize> {
        const NONE: u32 = u32::MAX;
        const SHARED: u32 = u32::MAX - 1;
        let extra = self.extra_edges(keep_derivations, keep_outputs);
        let mut owner = vec![NONE; self.len()];
        let mut stack: Vec<(u32, bool)> = Vec::new();
        for (k, &r) in roots.iter().enumerate() {
            let k = k as u32;
            stack.push((r, false));
            // (path, reached through a path that is already shared)
            while let Some((v, shared)) = stack.pop() {
                let o = &mut owner[v as usize];
                let shared = if shared {
                    if *o == SHARED {
                        continue;
                    }
                    *o = SHARED;
                    true
                } else if *o == NONE {
                    *o = k;
                    false
                } else if *o == k || *o == SHARED {
                    continue;
                } else {
                    *o = SHARED;
                    true
                };
                for &r in self.references(v).iter().chain(extra.of(v)) {
                    // Only what the visit would change: a path already shared, or already
                    // this root's (when not passing on "shared"), stays as it is.
                    let o = owner[r as usize];
                    if o != SHARED && (shared || o != k) {
                        stack.push((r, shared));
                    }
                }
            }
        }
        let mut out = vec![ClosureSize::default(); roots.len()];
        for (i, &o) in owner.iter().enumerate() {
            if (o as usize) < roots.len() {
                out[o as usize].paths += 1;
                out[o as usize].nar_bytes += self.nar_size(i as u32);
            }
        }
        out
    }

    /// For each pair `(a, b)` of `roots` (at most 64), the NAR bytes their closures
    /// (references only) have in common: `shared[a][b]`. One DFS per root marking a bit
    /// per path, then one pass over the paths.
    pub(crate) fn shared_bytes(&self, roots: &[u32]) -> Vec<Vec<u64>> {
        let roots = &roots[..roots.len().min(64)];
        let mut bits = vec![0u64; self.len()];
        let mut stack: Vec<u32> = Vec::new();
        for (k, &r) in roots.iter().enumerate() {
            let bit = 1u64 << k;
            bits[r as usize] |= bit;
            stack.push(r);
            while let Some(v) = stack.pop() {
                for &c in self.references(v) {
                    if bits[c as usize] & bit == 0 {
                        bits[c as usize] |= bit;
                        stack.push(c);
                    }
                }
            }
        }
        let mut shared = vec![vec![0u64; roots.len()]; roots.len()];
        for (i, &b) in bits.iter().enumerate() {
            if b.count_ones() < 2 {
                continue;
            }
            let n = self.nar_size(i as u32);
            let mut rest = b;
            while rest != 0 {
                let a = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                let mut later = rest;
                while later != 0 {
                    let c = later.trailing_zeros() as usize;
                    later &= later - 1;
                    shared[a][c] += n;
                    shared[c][a] += n;
                }
            }
        }
        shared
    }

    /// The derivation edges the GC follows under these settings.
    fn extra_edges(&self, keep_derivations: bool, keep_outputs: bool) -> ExtraEdges {
        let mut e = Vec::new();
        if keep_derivations {
            e.extend_from_slice(&self.output_deriver);
        }
        if keep_outputs {
            e.extend_from_slice(&self.drv_outputs);
        }
        let (starts, targets) = if e.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            csr(self.len(), &e)
        };
        ExtraEdges { starts, targets }
    }

    fn reach(&self, starts: &[u32], keep_derivations: bool, keep_outputs: bool) -> Vec<bool> {
        let n = self.len();
        let extra = self.extra_edges(keep_derivations, keep_outputs);
        let mut seen = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        for &s in starts {
            if !seen[s as usize] {
                seen[s as usize] = true;
                stack.push(s);
            }
        }
        while let Some(v) = stack.pop() {
            for &r in self.references(v).iter().chain(extra.of(v)) {
                if !seen[r as usize] {
                    seen[r as usize] = true;
                    stack.push(r);
                }
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Graph {
        // a -> b -> c, a -> c, d -> c, e (alone), c self-ref
        let mut b = GraphBuilder::with_capacity(5, 4);
        for (p, s) in [
            ("/s/a", 1),
            ("/s/b", 10),
            ("/s/c", 100),
            ("/s/d.drv", 1000),
            ("/s/e", 10000),
        ] {
            b.push_path(p, s);
        }
        b.push_ref(0, 1);
        b.push_ref(1, 2);
        b.push_ref(0, 2);
        b.push_ref(3, 2);
        b.push_ref(2, 2);
        // d.drv built a (a's deriver is d.drv)
        b.push_drv_output(3, 0, true);
        b.finish()
    }

    #[test]
    fn what_each_root_alone_keeps() {
        let g = sample();
        let cs = |paths, nar_bytes| ClosureSize { paths, nar_bytes };
        // Roots a and d share c; b is a's alone.
        assert_eq!(
            g.exclusive(&[0, 3], false, false),
            vec![cs(2, 11), cs(1, 1000)]
        );
        // keep-derivations: a's deriver d.drv is kept by a as well.
        assert_eq!(g.exclusive(&[0, 3], true, false), vec![cs(2, 11), cs(0, 0)]);
        // A root inside another root's closure frees nothing; the other keeps it all.
        assert_eq!(g.exclusive(&[1, 0], false, false), vec![cs(0, 0), cs(1, 1)]);
        // Order does not matter, and a lone root keeps its whole closure.
        assert_eq!(g.exclusive(&[0, 1], false, false), vec![cs(1, 1), cs(0, 0)]);
        assert_eq!(g.exclusive(&[4], false, false), vec![cs(1, 10000)]);
    }

    #[test]
    fn bytes_each_pair_of_roots_shares() {
        let g = sample();
        // a = {a, b, c}, d = {d, c}, b = {b, c}, e = {e}.
        let s = g.shared_bytes(&[0, 3, 1, 4]);
        assert_eq!(s[0][1], 100);
        assert_eq!(s[1][0], 100);
        assert_eq!(s[0][2], 110);
        assert_eq!(s[1][2], 100);
        assert_eq!(s[0][3], 0);
        assert_eq!(s[3][3], 0);
    }

    #[test]
    fn closures_and_liveness() {
        let g = sample();
        assert_eq!(g.len(), 5);
        let c = g.closure_sizes(&[0, 3, 4, 0]);
        assert_eq!(
            c[0],
            ClosureSize {
                paths: 3,
                nar_bytes: 111
            }
        );
        assert_eq!(
            c[1],
            ClosureSize {
                paths: 2,
                nar_bytes: 1100
            }
        );
        assert_eq!(
            c[2],
            ClosureSize {
                paths: 1,
                nar_bytes: 10000
            }
        );
        assert_eq!(c[3], c[0]);
        let live = g.live_mask(&[0], false, false);
        assert_eq!(live, [true, true, true, false, false]);
        let live = g.live_mask(&[0], true, false);
        assert_eq!(live, [true, true, true, true, false]);
        let live = g.live_mask(&[3], false, true);
        assert_eq!(live, [true, true, true, true, false]);
        let live = g.live_mask(&[3], true, false);
        assert_eq!(live, [false, false, true, true, false]);
    }

    #[test]
    fn largest_is_sorted_and_bounded() {
        let g = sample();
        let top: Vec<&str> = g.largest(2).into_iter().map(|i| g.path(i)).collect();
        assert_eq!(top, ["/s/e", "/s/d.drv"]);
        assert_eq!(g.largest(10).len(), 5);
        assert!(g.largest(0).is_empty());
        assert_eq!(g.total_nar(), 11111);
    }
}
