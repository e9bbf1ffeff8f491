//! The `cache-analytics` report: what is in the store, what is taking the space, what can
//! go, whether the Nix configuration is sound, and how much of a closure each binary cache
//! already holds.
//!
//! [`analyze`] builds a [`Report`] (sections 1–7 of the tool) from [`Options`]; the
//! [`render`] module prints it as terminal tables, as a CI job summary in Markdown
//! (a ✅/⚠️ headline, one section per area, a collapsed "what to do" under each finding)
//! or as JSON (`serde_json` of the [`Report`], keys documented in the README).
//!
//! Speed: the store is read in one sequential scan per table (see [`crate::store`]);
//! closure sizes of the GC roots use one iterative DFS each over a shared
//! generation-stamped visited array; garbage is one multi-source DFS; the largest paths
//! come from a selection, not a full sort. A 200,000-path store takes a fraction of a
//! second; `nix path-info --all -s --json` takes seconds on the same store.

pub mod config;
pub mod coverage;
pub mod diff;
mod nixquery;
pub mod render;
mod report;

use crate::cmd::Runner;
use crate::store::location::StoreLocation;
use crate::store::{self, Source, SourcePref, StoreError};
use std::path::{Path, PathBuf};

pub use report::*;

/// What to analyse.
#[derive(Debug, Clone)]
pub struct Options {
    /// Nix's `--store` (a directory = chroot store; `None`: the default store).
    pub store: Option<String>,
    /// How many largest paths / closures to list.
    pub top: usize,
    /// Where the store's numbers come from: its database, `nix path-info`, or either.
    pub source: SourcePref,
    /// Store paths (or symlinks to them, like `./result`) whose closure coverage to check.
    pub closures: Vec<String>,
    /// Caches to check instead of the substituters in effect.
    pub caches: Vec<String>,
    /// List every dead path in the JSON (`gc.dead`).
    pub list_dead: bool,
    /// `keep-derivations` for the garbage figures; `None`: the value in effect, else
    /// Nix's default (true).
    pub keep_derivations: Option<bool>,
    /// `keep-outputs` for the garbage figures; `None`: the value in effect, else Nix's
    /// default (false).
    pub keep_outputs: Option<bool>,
    /// Check the Nix configuration (section 5).
    pub check_config: bool,
    /// The environment that decides which nix.conf files are read (default: this
    /// process's).
    pub nix_env: Option<crate::nixconf::Env>,
    /// The project's cache.toml: its caches are coverage targets and are checked against
    /// the substituters in effect.
    pub cache_toml: Option<crate::cachetoml::CacheToml>,
    /// `--baseline`: the closure of a previous report, compared with `closures`.
    pub baseline: Option<diff::Side>,
    /// `--compare OLD NEW`: two paths of the store whose closures are compared.
    pub compare: Option<(String, String)>,
    /// Per-request timeout for cache queries.
    pub timeout: std::time::Duration,
    /// Runs the `nix` queries (version, settings, `path-info` when the database cannot
    /// be read).
    pub runner: Runner,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            store: None,
            top: 10,
            source: SourcePref::Auto,
            closures: Vec::new(),
            caches: Vec::new(),
            list_dead: false,
            keep_derivations: None,
            keep_outputs: None,
            check_config: true,
            nix_env: None,
            cache_toml: None,
            timeout: std::time::Duration::from_secs(10),
            baseline: None,
            compare: None,
            runner: Runner::new(),
        }
    }
}

/// Why there is no report at all (everything else is a finding in the report).
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    /// The store could not be read: neither its database nor `nix path-info`.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Builds the report.
pub fn analyze(opts: &Options) -> Result<Report, AnalyticsError> {
    let loc = StoreLocation::parse(opts.store.as_deref());
    let st = store::load(&loc, opts.source, &opts.runner)?;
    let mut cx = Ctx {
        opts,
        store_hint: match &loc.uri {
            Some(u) => format!(" --store {}", crate::cmd::shell_quote(u)),
            None => String::new(),
        },
        loc,
        st,
        findings: Vec::new(),
        recs: Vec::new(),
    };
    let store = cx.store_section();
    let largest_paths = cx
        .st
        .graph
        .largest(opts.top)
        .into_iter()
        .map(|i| PathEntry {
            path: cx.st.graph.path(i).to_owned(),
            nar_size: cx.st.graph.nar_size(i),
        })
        .collect();
    let root_paths = cx.root_paths();
    // Configuration before garbage: keep-derivations / keep-outputs decide what the
    // collector keeps.
    let (config, layers) = cx.config_section();
    let gc = cx.gc_section(&root_paths, layers.as_ref());
    let largest_closures = cx.largest_closures(&root_paths, gc.as_ref());
    cx.recommend_biggest_root(&largest_closures, store.nar_bytes);
    let closure = cx.closure_section();
    let coverage = match &closure {
        // No valid path given (each one already has its error finding): nothing to ask
        // the caches about.
        Some((_, members)) if !members.is_empty() => cx.coverage_section(members, layers.as_ref()),
        _ => Vec::new(),
    };
    let diff = cx.diff_section(closure.as_ref().map(|(c, _)| c), &coverage);
    cx.recommend_config_fixes(&config.findings);
    let secrets = layers.as_ref().map(secret_values).unwrap_or_default();
    let mut config = config;
    let mut coverage = coverage;
    let hide = |t: &mut String| *t = hide_secrets(t, &secrets);
    for f in config.findings.iter_mut().chain(cx.findings.iter_mut()) {
        hide(&mut f.message);
        hide(&mut f.what_to_do);
    }
    for r in &mut cx.recs {
        hide(&mut r.message);
        if let Some(c) = &mut r.command {
            hide(c);
        }
    }
    for c in &mut coverage {
        hide(&mut c.cache);
        if let Some(e) = &mut c.error {
            hide(e);
        }
    }
    let mut findings = cx.findings;
    findings.extend(config.findings.iter().cloned());
    findings.sort_by_key(|f| f.severity);
    Ok(Report {
        secrets,
        schema_version: JSON_SCHEMA_VERSION,
        source: cx.st.source.clone(),
        store,
        largest_paths,
        largest_closures,
        gc,
        config,
        closure: closure.map(|(c, _)| c),
        coverage,
        diff,
        findings,
        recommendations: cx.recs,
    })
}

/// What every section reads, and what they add to.
struct Ctx<'a> {
    opts: &'a Options,
    loc: StoreLocation,
    st: store::Store,
    /// ` --store URI` for commands the report suggests (empty for the default store).
    store_hint: String,
    findings: Vec<Finding>,
    recs: Vec<Recommendation>,
}

impl Ctx<'_> {
    fn exists(&self) -> bool {
        !matches!(self.st.source, Source::Missing { .. })
    }

    /// Section 1, with findings for a missing or empty store and a nearly full disk.
    fn store_section(&mut self) -> StoreSection {
        let g = &self.st.graph;
        let (mut drv, mut src, mut total) = (Share::default(), Share::default(), 0u64);
        for (i, p) in g.paths() {
            let n = g.nar_size(i);
            total += n;
            if p.ends_with(".drv") {
                drv.paths += 1;
                drv.nar_bytes += n;
            } else if p.ends_with("-source") {
                src.paths += 1;
                src.nar_bytes += n;
            }
        }
        let exists = self.exists();
        let loc = &self.loc;
        let filesystem = if loc.kind == store::location::StoreKind::Local && exists {
            filesystem_of(&loc.real_store_dir())
        } else {
            None
        };
        let root_is_file =
            loc.uri.is_some() && std::fs::metadata(&loc.root).is_ok_and(|m| !m.is_dir());
        if !exists && root_is_file {
            self.findings.push(Finding::new(
                Severity::Error,
                Area::Store,
                format!(
                    "`--store {}` is a file, not a directory: there is no store to report on.",
                    loc.display()
                ),
                "Pass the directory of a chroot store (the DIR of `nix copy --to DIR`, holding DIR/nix/var/nix/db/db.sqlite), a store URI such as `local?root=DIR`, or leave out `--store` for the machine's store.".to_owned(),
            ).at(&loc.root, None));
        } else if !exists {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Store,
                format!(
                    "There is no Nix store at {} (no database at {}): nothing to report on.",
                    loc.display(),
                    loc.db_path().display()
                ),
                "Check the `--store` argument (a directory is a chroot store whose database is DIR/nix/var/nix/db/db.sqlite), or install Nix.".to_owned(),
            ).at(&loc.db_path(), None));
        } else if g.is_empty() {
            self.findings.push(Finding::new(
                Severity::Info,
                Area::Store,
                format!("The store {} has no valid paths.", loc.display()),
                "Nothing to do: build something first.".to_owned(),
            ));
        }
        if let Some(fs) = &filesystem {
            if fs.total_bytes > 0 && fs.available_bytes.saturating_mul(10) < fs.total_bytes {
                self.findings.push(Finding::new(
                    Severity::Warning,
                    Area::Store,
                    format!(
                        "The filesystem holding the store has only {} free of {}: builds may fail with \"No space left on device\".",
                        crate::output::human_bytes(fs.available_bytes),
                        crate::output::human_bytes(fs.total_bytes)
                    ),
                    format!(
                        "Free space: `nix-collect-garbage --delete-older-than 14d`, or `nix-store{} --gc`.",
                        self.store_hint
                    ),
                ).at(&fs.mount_point, None));
            }
        }
        StoreSection {
            uri: loc.uri.clone(),
            root: loc.root.clone(),
            store_dir: loc.store_dir.clone(),
            exists,
            paths: g.len() as u64,
            nar_bytes: total,
            references: g.ref_count() as u64,
            drv,
            source_paths: src,
            filesystem,
        }
    }

    /// The distinct rooted paths.
    fn root_paths(&self) -> Vec<u32> {
        let mut root_paths: Vec<u32> = self.st.roots.iter().map(|(_, i)| *i).collect();
        root_paths.sort_unstable();
        root_paths.dedup();
        root_paths
    }

    /// Section 3: the roots whose deletion frees most (by closure size when the GC roots
    /// are not known), each with what deleting it alone frees and the listed root it
    /// shares most with.
    fn largest_closures(&self, root_paths: &[u32], gc: Option<&GcSection>) -> Vec<ClosureEntry> {
        let g = &self.st.graph;
        let sizes = g.closure_sizes(root_paths);
        let freed = gc.map(|gc| g.exclusive(root_paths, gc.keep_derivations, gc.keep_outputs));
        let mut order: Vec<usize> = (0..root_paths.len()).collect();
        order.sort_by(|&a, &b| {
            let by_freed = freed.as_ref().map_or(std::cmp::Ordering::Equal, |f| {
                f[b].nar_bytes.cmp(&f[a].nar_bytes)
            });
            by_freed
                .then_with(|| sizes[b].nar_bytes.cmp(&sizes[a].nar_bytes))
                .then_with(|| g.path(root_paths[a]).cmp(g.path(root_paths[b])))
        });
        order.truncate(self.opts.top);
        let listed: Vec<u32> = order.iter().map(|&k| root_paths[k]).collect();
        let shared = g.shared_bytes(&listed);
        let link_of = |idx: u32| -> Vec<String> {
            self.st
                .roots
                .iter()
                .filter(|(_, i)| *i == idx)
                .map(|(r, _)| r.link.display().to_string())
                .collect()
        };
        let mut entries: Vec<ClosureEntry> = order
            .iter()
            .map(|&k| {
                let links = link_of(root_paths[k]);
                ClosureEntry {
                    path: g.path(root_paths[k]).to_owned(),
                    closure_size: sizes[k].nar_bytes,
                    closure_paths: sizes[k].paths,
                    root: links.first().cloned().unwrap_or_default(),
                    roots: links,
                    freed_if_deleted: freed.as_ref().map(|f| f[k]),
                    shares_most_with: None,
                }
            })
            .collect();
        let with: Vec<Option<SharedWith>> = (0..entries.len())
            .map(|a| {
                let row = shared.get(a)?;
                let (b, &bytes) = row
                    .iter()
                    .enumerate()
                    .filter(|&(b, _)| b != a)
                    .max_by(|x, y| x.1.cmp(y.1).then_with(|| y.0.cmp(&x.0)))?;
                (bytes > 0).then(|| SharedWith {
                    root: entries[b].root.clone(),
                    path: entries[b].path.clone(),
                    nar_bytes: bytes,
                })
            })
            .collect();
        for (e, w) in entries.iter_mut().zip(with) {
            e.shares_most_with = w;
        }
        entries
    }

    /// Section 5, and the layers read (for the GC settings and the substituters in effect).
    fn config_section(&self) -> (ConfigSection, Option<crate::nixconf::Layers>) {
        let opts = self.opts;
        if !opts.check_config {
            return (ConfigSection::default(), None);
        }
        let nix = nixquery::detect_nix(&opts.runner);
        let mut env = opts
            .nix_env
            .clone()
            .unwrap_or_else(crate::nixconf::Env::from_process);
        if let Some(n) = &nix {
            env = env.for_nix_version(n.version());
        }
        let layers = crate::nixconf::load(&env);
        let settings = nix
            .as_ref()
            .and_then(|n| nixquery::nix_settings(n, &opts.runner))
            .unwrap_or_else(config::NixSettings::builtin);
        let trust = nixquery::detect_trust(&env, nix.as_ref(), &opts.runner);
        let nix_verdicts = match &nix {
            Some(n) => nixquery::ask_nix_about_values(
                n,
                &opts.runner,
                &[
                    nixquery::unusual_numbers(&layers, &settings),
                    nixquery::bad_stores(&layers),
                ]
                .concat(),
            ),
            None => Default::default(),
        };
        let s3 = nix.as_ref().filter(|_| {
            layers
                .effective("substituters")
                .iter()
                .any(|s| crate::url::scheme(&s.value).as_deref() == Some("s3"))
        });
        let s3 = s3.and_then(|n| Some((n.version(), n.s3_support()?)));
        let section = ConfigSection {
            checked: true,
            files: layers
                .files
                .iter()
                .map(|f| ConfigFile {
                    path: f.path.display().to_string(),
                    layer: f.kind.to_string(),
                    exists: f.exists,
                })
                .collect(),
            findings: config::check(&config::ConfigCheck {
                layers: &layers,
                settings: &settings,
                trust: &trust,
                cache_toml: opts.cache_toml.as_ref(),
                nix_verdicts: &nix_verdicts,
                s3,
            }),
        };
        (section, Some(layers))
    }

    /// Section 4 (null when the roots cannot be seen), with the "collect garbage"
    /// recommendation.
    fn gc_section(
        &mut self,
        root_paths: &[u32],
        layers: Option<&crate::nixconf::Layers>,
    ) -> Option<GcSection> {
        if !self.st.roots_known || !self.exists() {
            return None;
        }
        // The last assignment of a boolean setting under any of its names (Nix 2.8 still
        // accepts `gc-keep-derivations` / `gc-keep-outputs`).
        let conf_bool = |names: &[&str]| {
            layers.and_then(|l| {
                l.assignments()
                    .into_iter()
                    .rfind(|a| !a.is_extra && names.contains(&a.name))
                    .and_then(|a| config::nix_bool(&a.values.join(" ")))
            })
        };
        let keep_derivations = self
            .opts
            .keep_derivations
            .or_else(|| conf_bool(&["keep-derivations", "gc-keep-derivations"]))
            .unwrap_or(true);
        let keep_outputs = self
            .opts
            .keep_outputs
            .or_else(|| conf_bool(&["keep-outputs", "gc-keep-outputs"]))
            .unwrap_or(false);
        let g = &self.st.graph;
        let live = g.live_mask(root_paths, keep_derivations, keep_outputs);
        let (mut dead_paths, mut dead_bytes, mut dead_list) = (0u64, 0u64, Vec::new());
        for (i, alive) in live.iter().enumerate() {
            if !alive {
                dead_paths += 1;
                dead_bytes += g.nar_size(i as u32);
                if self.opts.list_dead {
                    dead_list.push(g.path(i as u32).to_owned());
                }
            }
        }
        dead_list.sort_unstable();
        if dead_paths > 0 {
            self.recs.push(Recommendation {
                area: Area::Gc,
                message: format!(
                    "Collect garbage: {}{} path{} ({}) {} not reachable from any GC root{}. The disk space freed is at most that (less for files `nix-store --optimise` hard-linked, and running programs' runtime roots are kept).",
                    if self.st.unreadable_roots.is_empty() { "" } else { "at most " },
                    render::thousands(dead_paths),
                    if dead_paths == 1 { "" } else { "s" },
                    crate::output::human_bytes(dead_bytes),
                    if dead_paths == 1 { "is" } else { "are" },
                    if self.st.unreadable_roots.is_empty() { "" } else { " this user can read (some root directories could not be read)" }
                ),
                command: Some(format!("nix-store{} --gc", self.store_hint)),
            });
        }
        let unreadable = self.st.unreadable_roots.clone();
        if !unreadable.is_empty() {
            let names: Vec<String> = unreadable
                .iter()
                .take(5)
                .map(|u| format!("{} ({})", u.path.display(), u.error))
                .collect();
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Gc,
                format!(
                    "{} GC-root location{} could not be read: {}{}. Roots there are not counted, so paths they keep are counted as garbage: the garbage figure is an upper bound.",
                    unreadable.len(),
                    if unreadable.len() == 1 { "" } else { "s" },
                    names.join(", "),
                    if unreadable.len() > 5 { ", ..." } else { "" }
                ),
                "Run the report as the store's owner (e.g. with sudo) to see every root; `nix-store --gc --print-roots` lists them too.".to_owned(),
            ).at(&unreadable[0].path, None));
        }
        Some(GcSection {
            dead_is_upper_bound: !unreadable.is_empty(),
            unreadable_roots: unreadable,
            roots: self.st.roots.len() as u64,
            root_paths: root_paths.len() as u64,
            live_paths: g.len() as u64 - dead_paths,
            dead_paths,
            dead_nar_bytes: dead_bytes,
            keep_derivations,
            keep_outputs,
            runtime_roots_counted: false,
            caveats: vec![
                "Runtime roots (files open by running programs, seen by Nix through /proc) and temporary roots are not counted: `nix-store --gc` may keep a few of these paths.".to_owned(),
                "Freed disk space can be smaller than the NAR bytes: files deduplicated by `nix-store --optimise` (auto-optimise-store) are hard links that free nothing until every link is gone.".to_owned(),
            ],
            dead: self.opts.list_dead.then_some(dead_list),
        })
    }

    /// "Release the root whose deletion frees most" when that is a tenth of the store or
    /// more (without known GC roots: when one root keeps a quarter of the store).
    fn recommend_biggest_root(&mut self, closures: &[ClosureEntry], total: u64) {
        let Some(top) = closures.first() else {
            return;
        };
        let worth_it = match top.freed_if_deleted {
            Some(f) => f.nar_bytes > 0 && f.nar_bytes.saturating_mul(10) >= total,
            None => top.closure_size.saturating_mul(4) >= total && closures.len() > 1,
        };
        if top.closure_size > 0 && total > 0 && worth_it {
            let mut advice = release_advice(Path::new(&top.root), &self.store_hint);
            let others: Vec<&str> = top.roots.iter().skip(1).map(String::as_str).collect();
            if !others.is_empty() {
                advice.0.push_str(&format!(
                    " It is also kept by {}: release {} too.",
                    others.join(", "),
                    if others.len() == 1 {
                        "that link"
                    } else {
                        "those links"
                    }
                ));
            }
            self.recs.push(Recommendation {
                area: Area::Gc,
                message: match top.freed_if_deleted {
                    Some(f) => format!(
                        "Deleting the GC root {} → {} frees {} ({:.0}% of the store; its closure is {}). {}",
                        top.root,
                        top.path,
                        crate::output::human_bytes(f.nar_bytes),
                        f.nar_bytes as f64 * 100.0 / total as f64,
                        crate::output::human_bytes(top.closure_size),
                        advice.0
                    ),
                    None => format!(
                        "The largest GC root, {} → {}, keeps {} ({:.0}% of the store). {}",
                        top.root,
                        top.path,
                        crate::output::human_bytes(top.closure_size),
                        top.closure_size as f64 * 100.0 / total as f64,
                        advice.0
                    ),
                },
                command: advice.1,
            });
        }
    }

    /// Each member's NAR hash from the store's database, where that is what was read
    /// (the graph keeps only sizes: a million hashes would slow every report), so that
    /// coverage compares contents as push-cache does. Left out when it cannot be read.
    fn add_nar_hashes(&self, members: &mut [coverage::Member]) {
        let store::Source::Sqlite { database, .. } = &self.st.source else {
            return;
        };
        let Ok((conn, _)) = store::db::open(database) else {
            return;
        };
        let paths: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
        if let Ok(hashes) = store::db::nar_hashes(&conn, database, &paths) {
            for (m, h) in members.iter_mut().zip(hashes) {
                m.nar_hash = h.as_deref().and_then(crate::narinfo::nar_hash_nix32);
            }
        }
    }

    /// The `--closure` section and its members `(path, nar_size)`; an error finding for
    /// each argument that is not a valid path of the store.
    fn closure_section(&mut self) -> Option<(ClosureSection, Vec<coverage::Member>)> {
        if self.opts.closures.is_empty() {
            return None;
        }
        let g = &self.st.graph;
        let index = g.index();
        let mut starts = Vec::new();
        for c in &self.opts.closures {
            match resolve_closure_arg(c, &self.loc.store_dir).and_then(|p| index.get(p.as_str()).copied()) {
                Some(i) => starts.push(i),
                None => self.findings.push(Finding::new(
                    Severity::Error,
                    Area::Closure,
                    format!("`{c}` is not a valid path in {}.", self.loc.display()),
                    format!(
                        "Build it first (`nix build`), or pass a store path that `nix path-info{} PATH` knows.",
                        self.store_hint
                    ),
                )),
            }
        }
        let mut members = closure_members(g, &starts);
        self.add_nar_hashes(&mut members);
        let mut contents: Vec<PathEntry> = members
            .iter()
            .map(|m| PathEntry {
                path: m.path.clone(),
                nar_size: m.nar_size,
            })
            .collect();
        contents.sort_by(|a, b| {
            b.nar_size
                .cmp(&a.nar_size)
                .then_with(|| a.path.cmp(&b.path))
        });
        let section = ClosureSection {
            requested: self.opts.closures.clone(),
            paths: members.len() as u64,
            nar_bytes: members.iter().map(|m| m.nar_size).sum(),
            contents,
        };
        Some((section, members))
    }

    /// Section 6: every `--cache`, else the substituters in effect and cache.toml's caches.
    fn coverage_section(
        &mut self,
        members: &[coverage::Member],
        layers: Option<&crate::nixconf::Layers>,
    ) -> Vec<Coverage> {
        let targets = coverage_targets(self.opts, layers);
        let project_keys: Vec<crate::keys::PublicKey> = self
            .opts
            .cache_toml
            .iter()
            .flat_map(|t| &t.caches)
            .filter_map(|c| crate::keys::PublicKey::parse(&c.public_key).ok())
            .collect();
        let policy = layers.map(|l| coverage::SigPolicy {
            candidates: project_keys,
            ..sig_policy(l)
        });
        let rows = coverage::check_all(
            &targets,
            members,
            &self.loc.store_dir,
            policy.as_ref(),
            self.opts.timeout,
        );
        for c in &rows {
            self.coverage_findings(c);
        }
        // Only when every cache was measured and holds nothing: a cache that could not be
        // asked may hold it all.
        if !members.is_empty()
            && rows
                .iter()
                .all(|c| c.measured && c.paths_present == Some(0))
        {
            self.recs.push(Recommendation {
                area: Area::Coverage,
                message: "No cache in effect holds any of this closure: add a binary cache for the project and push to it.".to_owned(),
                command: Some("setup-cache --url URL --public-key KEY".to_owned()),
            });
        }
        rows
    }

    /// Narinfos the cache has that Nix cannot use: other contents, garbage, a NAR gone.
    fn narinfo_findings(&mut self, c: &Coverage, shown: &str) {
        if c.other_contents > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} narinfos at {shown} name paths of the closure but describe other contents (another NarHash or NarSize than this store's): Nix would download them and fail (\"hash mismatch\"); they are not counted as present.",
                    c.other_contents
                ),
                "Push this store's paths again (`push-cache` replaces such narinfos), or find out which build made the cache's (a path that does not build reproducibly).".to_owned(),
            ));
        }
        if c.invalid_narinfos > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} narinfos at {shown} for paths of the closure prove nothing (e.g. {}): Nix cannot use them; they are not counted as present.",
                    c.invalid_narinfos,
                    crate::output::untrusted(c.invalid_example.as_deref().unwrap_or(""), 200)
                ),
                "Push the closure again: `push-cache` replaces such narinfos. If every narinfo is garbage, check that the URL is the cache's (a web page answers everything with HTML).".to_owned(),
            ));
        }
        if c.nar_missing > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} narinfos at {shown} name paths of the closure whose NAR is not in the cache: Nix finds them there, then fails to download them; they are not counted as present.",
                    c.nar_missing
                ),
                "Push the closure again: `push-cache` uploads a path whose NAR is gone.".to_owned(),
            ));
        }
    }

    /// What one cache's coverage means: not measured, failed queries (a lower bound),
    /// untrusted signatures, an incomplete closure in the cache, the rest to push.
    fn coverage_findings(&mut self, c: &Coverage) {
        let opts = self.opts;
        let shown = crate::redact::url(&c.cache);
        if !c.measured {
            let e = c.error.as_deref().unwrap_or("unknown error");
            // A scheme this client cannot query (s3://, ssh-ng://) is a limit of the
            // report, not a problem of the cache: info, so `--check` does not fail on it.
            let severity = if crate::binarycache::is_supported(&c.cache) {
                Severity::Warning
            } else {
                Severity::Info
            };
            self.findings.push(Finding::new(
                severity,
                Area::Coverage,
                format!(
                    "The cache {shown} could not be checked, so its coverage was not measured: {e}."
                ),
                "Check the URL and that the cache is reachable (`curl -I URL/nix-cache-info`)."
                    .to_owned(),
            ));
            return;
        }
        let (present, rate_bytes) = (
            c.paths_present.unwrap_or(0),
            c.hit_rate_bytes.unwrap_or(0.0),
        );
        if c.errors > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} of {} queries to {shown} failed (counted as absent): its coverage is a lower bound.",
                    c.errors, c.paths_total
                ),
                "Run again, or raise `--timeout`, when the cache answers reliably.".to_owned(),
            ));
        }
        self.narinfo_findings(c, &shown);
        self.signature_findings(c, &shown);
        // The command that pushes the rest of the closure to this cache.
        let push = format!(
            "push-cache --to {} {}",
            crate::cmd::shell_quote(&c.cache),
            opts.closures
                .iter()
                .map(|p| crate::cmd::shell_quote(p))
                .collect::<Vec<_>>()
                .join(" ")
        );
        if let Some(inc) = c.incomplete.as_ref().filter(|i| i.paths > 0) {
            let ex = &inc.examples[0];
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{shown} holds {} path{} of the closure without all of its references (e.g. {} but not {}): Nix substitutes a path only once its references are valid, so it has to get them elsewhere or build them.",
                    inc.paths,
                    if inc.paths == 1 { "" } else { "s" },
                    ex.path,
                    ex.missing
                ),
                format!("Push the whole closure: `{push}`."),
            ));
        }
        if present < c.paths_total && c.from != "nix.conf" && c.from != "Nix's default" {
            self.recs.push(Recommendation {
                area: Area::Coverage,
                message: format!(
                    "{shown} has {present} of {} paths ({rate_bytes:.1}% of the bytes) of the closure: push the rest so others download instead of building.",
                    c.paths_total
                ),
                command: Some(push),
            });
        }
    }

    /// `--baseline` (against this run's closure and coverage) or `--compare OLD NEW`.
    fn diff_section(
        &mut self,
        closure: Option<&ClosureSection>,
        coverage: &[Coverage],
    ) -> Option<diff::Diff> {
        let side_of = |label: String, contents: &[PathEntry]| diff::Side {
            label,
            paths: contents
                .iter()
                .map(|e| (e.path.clone(), e.nar_size))
                .collect(),
            coverage: Vec::new(),
        };
        if let (Some(base), Some(c)) = (&self.opts.baseline, closure) {
            let mut new = side_of(c.requested.join(" "), &c.contents);
            new.coverage = coverage
                .iter()
                .filter_map(|c| Some((c.cache.clone(), c.hit_rate_bytes?)))
                .collect();
            return Some(diff::compare(base, &new));
        }
        let (old, new) = self.opts.compare.as_ref()?;
        let g = &self.st.graph;
        let index = g.index();
        let mut sides = Vec::new();
        for arg in [old, new] {
            match resolve_closure_arg(arg, &self.loc.store_dir).and_then(|p| index.get(p.as_str()).copied()) {
                Some(i) => {
                    let members = closure_members(g, &[i]);
                    let contents: Vec<PathEntry> = members
                        .into_iter()
                        .map(|m| PathEntry {
                            path: m.path,
                            nar_size: m.nar_size,
                        })
                        .collect();
                    sides.push(side_of(arg.clone(), &contents));
                }
                None => self.findings.push(Finding::new(
                    Severity::Error,
                    Area::Closure,
                    format!("--compare: `{arg}` is not a valid path in {}.", self.loc.display()),
                    format!(
                        "Build it first (`nix build`), or pass a store path that `nix path-info{} PATH` knows.",
                        self.store_hint
                    ),
                )),
            }
        }
        match sides.as_slice() {
            [o, n] => Some(diff::compare(o, n)),
            _ => None,
        }
    }

    /// Findings when Nix would ignore what a cache holds: signed by keys nobody trusts,
    /// by another key of a trusted name, or not signed at all.
    fn signature_findings(&mut self, c: &Coverage, shown: &str) {
        let Some(s) = c.signatures.as_ref().filter(|s| s.required) else {
            return;
        };
        if s.untrusted > 0 {
            let mut whose = Vec::new();
            if !s.untrusted_keys.is_empty() {
                whose.push(format!(
                    "signed by {}, not in trusted-public-keys",
                    s.untrusted_keys.join(", ")
                ));
            }
            if !s.mismatched_keys.is_empty() {
                whose.push(format!(
                    "signed as {}, a trusted name, but not by the trusted key of that name: the cache signs with another key of that name (a new or mistyped key)",
                    s.mismatched_keys.join(", ")
                ));
            }
            let fix = match (&s.suggested_key, s.untrusted_keys.is_empty()) {
                // Proven by a signature it verifies.
                (Some(k), _) => format!(
                    "Add the cache's key from cache.toml, which verifies these signatures: `extra-trusted-public-keys = {k}` (`setup-cache` writes it)."
                ),
                (None, false) => format!(
                    "Add the public key named {} to `extra-trusted-public-keys = NAME:BASE64` (ask the cache's owner for it), or re-sign the paths with a trusted key (`nix store sign`).",
                    s.untrusted_keys.join(" / ")
                ),
                (None, true) => format!(
                    "Ask the cache's owner for its current public key and put it in place of the trusted key named {} (and in cache.toml), or re-sign the paths with the trusted key (`nix store sign`).",
                    s.mismatched_keys.join(" / ")
                ),
            };
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} of {} narinfos checked at {shown} have no signature Nix can verify ({}): Nix ignores those paths (\"untrusted public key\") and builds them.",
                    s.untrusted,
                    s.checked,
                    whose.join("; ")
                ),
                fix,
            ));
        }
        if s.unsigned > 0 {
            self.findings.push(Finding::new(
                Severity::Warning,
                Area::Coverage,
                format!(
                    "{} of {} narinfos checked at {shown} have no signature: with require-sigs on, Nix ignores those paths.",
                    s.unsigned, s.checked
                ),
                "Sign when pushing: `push-cache --secret-key-file KEYFILE` (or `nix store sign --key-file KEYFILE`).".to_owned(),
            ));
        }
    }

    /// "Fix the configuration" first among the recommendations when it has problems.
    fn recommend_config_fixes(&mut self, config_findings: &[Finding]) {
        let problems: Vec<&Finding> = config_findings
            .iter()
            .filter(|f| f.severity <= Severity::Warning)
            .collect();
        if let Some(first) = problems.first() {
            self.recs.insert(
                0,
                Recommendation {
                    area: Area::Config,
                    message: format!(
                        "Fix the {} configuration problem{} among the findings (section `config`), starting with {}:{}.",
                        problems.len(),
                        if problems.len() == 1 { "" } else { "s" },
                        first.file.as_deref().unwrap_or("?"),
                        first.line.map(|l| l.to_string()).unwrap_or_default()
                    ),
                    command: None,
                },
            );
        }
    }
}

/// Every secret value in the configuration files Nix reads: the tokens of
/// `access-tokens` / `extra-access-tokens` lines (`host=TOKEN` gives `TOKEN`; a word
/// without `=` is taken whole), also from lines Nix rejects.
pub fn secret_values(layers: &crate::nixconf::Layers) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in &layers.files {
        for line in f.conf.lines() {
            let code = line.content.split('#').next().unwrap_or("");
            let key = code.split_whitespace().next().unwrap_or("");
            let key = key.split('=').next().unwrap_or(key);
            if !crate::redact::is_secret_setting(crate::nixconf::canonical_name(key)) {
                continue;
            }
            let Some((_, value)) = code.split_once('=') else {
                continue;
            };
            for word in value.split_whitespace() {
                let secret = word.split_once('=').map_or(word, |(_, t)| t);
                // Very short values would blank out unrelated text; they are hidden
                // where they are quoted (redact::setting_value) all the same.
                if secret.len() >= 4 && !out.iter().any(|o| o == secret) {
                    out.push(secret.to_owned());
                }
            }
        }
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// `text` with every known secret and every URL credential replaced by `<redacted>`.
pub fn hide_secrets(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_owned();
    for s in secrets {
        if t.contains(s.as_str()) {
            t = t.replace(s.as_str(), crate::redact::REDACTED);
        }
    }
    crate::redact::urls_in(&t)
}

/// How to release a GC root: `rm` for a plain link (`./result`), but never for a profile
/// generation (`P-N-link` next to the profile link `P`): removing that by hand can leave the
/// profile pointing nowhere; `nix-env --delete-generations` is the way, and the current
/// generation cannot go at all. Returns the sentence to show and the command, if any.
fn release_advice(root: &Path, store_hint: &str) -> (String, Option<String>) {
    let generation = root.file_name().and_then(|f| {
        let f = f.to_str()?;
        let (profile, n) = f.strip_suffix("-link")?.rsplit_once('-')?;
        (!profile.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .then(|| (root.with_file_name(profile), n.to_owned(), f.to_owned()))
    });
    if let Some((profile, n, name)) = generation {
        if let Ok(current) = std::fs::read_link(&profile) {
            let p = profile.display().to_string();
            if current.as_os_str() == name.as_str() || current == root {
                return (
                    format!(
                        "It is the current generation of the profile {p}, which cannot be deleted: remove what it holds from the profile (`nix-env --profile {p} --uninstall NAME`) or switch generations first."
                    ),
                    None,
                );
            }
            return (
                format!(
                    "It is generation {n} of the profile {p}: delete it with nix-env (removing the link by hand can leave the profile broken), then collect garbage."
                ),
                Some(format!(
                    "nix-env{store_hint} --profile {} --delete-generations {n}",
                    crate::cmd::shell_quote(&p)
                )),
            );
        }
    }
    (
        "Remove the link if it is no longer needed, then collect garbage.".to_owned(),
        Some(format!(
            "rm {}",
            crate::cmd::shell_quote(&root.display().to_string())
        )),
    )
}

/// The caches whose coverage is measured: `--cache` URLs, else the substituters in
/// effect and cache.toml's caches, each once.
fn coverage_targets(
    opts: &Options,
    layers: Option<&crate::nixconf::Layers>,
) -> Vec<coverage::Target> {
    let mut targets: Vec<coverage::Target> = Vec::new();
    let mut add = |url: &str, from: &str| {
        if !targets
            .iter()
            .any(|t| crate::url::normalize(&t.url) == crate::url::normalize(url))
        {
            targets.push(coverage::Target {
                url: url.to_owned(),
                from: from.to_owned(),
            });
        }
    };
    if !opts.caches.is_empty() {
        for c in &opts.caches {
            add(c, "--cache");
        }
    } else {
        for s in layers
            .map(|l| l.effective("substituters"))
            .unwrap_or_default()
        {
            // No file: Nix's built-in default (https://cache.nixos.org/).
            add(
                &s.value,
                if s.file.is_some() {
                    "nix.conf"
                } else {
                    "Nix's default"
                },
            );
        }
        for c in opts.cache_toml.iter().flat_map(|t| &t.caches) {
            add(&c.url, "cache.toml");
        }
    }
    targets
}

/// A `--closure` argument as a store path: a store path (or a file inside one) as is, a
/// symlink (`./result`) followed until it points into the store.
/// The closure of `starts`, each member with its references as member indices.
fn closure_members(g: &store::graph::Graph, starts: &[u32]) -> Vec<coverage::Member> {
    let mask = g.closure_mask(starts);
    let mut position = vec![u32::MAX; mask.len()];
    let mut next = 0u32;
    for (i, m) in mask.iter().enumerate() {
        if *m {
            position[i] = next;
            next += 1;
        }
    }
    mask.iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(i, _)| coverage::Member {
            path: g.path(i as u32).to_owned(),
            nar_size: g.nar_size(i as u32),
            nar_hash: None,
            references: g
                .references(i as u32)
                .iter()
                .filter(|&&r| r as usize != i)
                .map(|&r| position[r as usize])
                .collect(),
        })
        .collect()
}

/// The keys and `require-sigs` in effect in `layers`, as Nix builds its key set
/// (`getDefaultPublicKeys`, 2.8 → today): the `trusted-public-keys`, then the public
/// halves of the readable `secret-key-files` (Nix trusts what it signs itself), one key
/// per name, the first of each name winning (a map by name: a second `name:KEY` with the
/// same name is ignored). A key Nix could not parse is left out (the configuration check
/// reports it); an unreadable secret key file is skipped, as Nix skips it.
fn sig_policy(layers: &crate::nixconf::Layers) -> coverage::SigPolicy {
    let mut keys: Vec<crate::keys::PublicKey> = Vec::new();
    let trusted = layers
        .effective("trusted-public-keys")
        .into_iter()
        .filter_map(|k| crate::keys::PublicKey::parse(&k.value).ok());
    let own = layers
        .effective("secret-key-files")
        .into_iter()
        .filter_map(|f| crate::keys::SecretKey::read(std::path::Path::new(&f.value)).ok())
        .map(|s| s.public());
    for k in trusted.chain(own) {
        if !keys.iter().any(|x| x.name == k.name) {
            keys.push(k);
        }
    }
    coverage::SigPolicy {
        keys,
        candidates: Vec::new(),
        require_sigs: layers
            .effective_scalar("require-sigs")
            .and_then(|v| config::nix_bool(&v.value))
            .unwrap_or(true),
    }
}

fn resolve_closure_arg(arg: &str, store_dir: &str) -> Option<String> {
    if let Some(p) = crate::storepath::to_store_path(arg, store_dir) {
        return Some(p.to_owned());
    }
    let mut cur = PathBuf::from(arg);
    for _ in 0..40 {
        let target = std::fs::read_link(&cur).ok()?;
        let target = if target.is_absolute() {
            target
        } else {
            cur.parent().unwrap_or(Path::new("/")).join(target)
        };
        let s = target.to_string_lossy().into_owned();
        if let Some(p) = crate::storepath::to_store_path(&s, store_dir) {
            return Some(p.to_owned());
        }
        cur = target;
    }
    None
}

/// Size and free space of the filesystem holding `dir` (or its nearest existing parent).
fn filesystem_of(dir: &Path) -> Option<Filesystem> {
    let mut d = dir.to_owned();
    while !d.exists() {
        d = d.parent()?.to_owned();
    }
    let d = d.canonicalize().unwrap_or(d);
    let disks = sysinfo::Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .filter(|disk| d.starts_with(disk.mount_point()))
        .max_by_key(|disk| disk.mount_point().as_os_str().len())
        .map(|disk| Filesystem {
            mount_point: disk.mount_point().to_owned(),
            total_bytes: disk.total_space(),
            available_bytes: disk.available_space(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `name:base64(seed ++ public)`, as `nix key generate-secret` writes it.
    fn secret_text(name: &str, seed: u8) -> (String, String) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let mut raw = vec![seed; 32];
        raw.extend_from_slice(sk.verifying_key().as_bytes());
        (
            format!("{name}:{}", b64.encode(&raw)),
            format!("{name}:{}", b64.encode(sk.verifying_key().as_bytes())),
        )
    }

    /// Nix's key set: a second key of a name already trusted is ignored (the first of
    /// each name wins), and what `secret-key-files` sign is trusted.
    #[test]
    fn the_keys_in_effect_are_nix_s_key_set() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_, a1) = secret_text("a-1", 1);
        let (_, a2) = secret_text("a-1", 2);
        let (b_secret, b_public) = secret_text("b-1", 3);
        let sec = d.path().join("b.sec");
        std::fs::write(&sec, &b_secret).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            d.path().join("nix.conf"),
            format!(
                "trusted-public-keys = {a1} {a2}\nsecret-key-files = {} {}\n",
                sec.display(),
                d.path().join("missing.sec").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let env = crate::nixconf::Env {
            nix_conf_dir: Some(d.path().to_owned()),
            nix_user_conf_files: Some(Default::default()),
            ..Default::default()
        };
        let p = sig_policy(&crate::nixconf::load(&env));
        let keys: Vec<String> = p.keys.iter().map(ToString::to_string).collect();
        assert_eq!(keys, [a1, b_public]);
        assert!(p.require_sigs);
    }

    #[test]
    fn a_profile_generation_is_released_with_nix_env_not_rm() {
        use std::os::unix::fs::symlink;
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = t.path();
        let sp = "/nix/store/4qlx2j065zn4jpg4bs70kqq4r8kjliwh-a";
        for g in ["prof-1-link", "prof-2-link"] {
            symlink(sp, d.join(g)).unwrap_or_else(|e| panic!("{e}"));
        }
        symlink("prof-2-link", d.join("prof")).unwrap_or_else(|e| panic!("{e}"));
        symlink(sp, d.join("result")).unwrap_or_else(|e| panic!("{e}"));
        // An old generation: nix-env, with the store.
        let (msg, cmd) = release_advice(&d.join("prof-1-link"), " --store /s");
        assert!(msg.contains("generation 1 of the profile"), "{msg}");
        assert_eq!(
            cmd.as_deref(),
            Some(
                format!(
                    "nix-env --store /s --profile {} --delete-generations 1",
                    d.join("prof").display()
                )
                .as_str()
            )
        );
        // The current one: no command that would break the profile.
        let (msg, cmd) = release_advice(&d.join("prof-2-link"), "");
        assert!(msg.contains("current generation"), "{msg}");
        assert_eq!(cmd, None);
        // A plain link (./result): rm it.
        let (_, cmd) = release_advice(&d.join("result"), "");
        assert_eq!(cmd, Some(format!("rm {}", d.join("result").display())));
        // `x-1-link` with no profile link next to it is a plain link too.
        let (_, cmd) = release_advice(&d.join("other-1-link"), "");
        assert!(cmd.unwrap_or_default().starts_with("rm "));
    }

    #[test]
    fn severity_orders_errors_first() {
        let mut v = vec![Severity::Info, Severity::Error, Severity::Warning];
        v.sort();
        assert_eq!(v, [Severity::Error, Severity::Warning, Severity::Info]);
    }
}
