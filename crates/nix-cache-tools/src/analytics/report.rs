//! The report cache-analytics produces: its sections, findings and recommendations.
//! The JSON output is these types serialized (`schema_version` [`JSON_SCHEMA_VERSION`]);
//! docs/cache-analytics.md describes every field.

use super::diff;
use crate::store::Source;
use serde::Serialize;
use std::path::PathBuf;

/// Version of the JSON layout; bumped on incompatible changes.
pub const JSON_SCHEMA_VERSION: u32 = 3;

pub use crate::cli::ExitCode;

/// How serious a finding is. `--check` fails on `Error` and `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something that stops Nix or makes it ignore a cache: fix it.
    Error,
    /// Probably not what was meant (a dead line, an untrusted cache, a lower bound).
    Warning,
    /// Worth knowing; nothing is wrong.
    Info,
}

impl Severity {
    /// The name used in the JSON and the text output.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The emoji the Markdown summary shows it with.
    pub(crate) fn icon(self) -> &'static str {
        match self {
            Severity::Error => "❌",
            Severity::Warning => "⚠️",
            Severity::Info => "ℹ️",
        }
    }
}

/// One problem or observation, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// Which section it is about.
    pub area: Area,
    /// The file the finding is about (a nix.conf layer, `NIX_CONFIG`, the store database).
    pub file: Option<String>,
    /// 1-based line in `file`.
    pub line: Option<usize>,
    /// What is wrong and what to do about it, in one sentence or two.
    pub message: String,
    /// The exact fix (a command or the line to write), when there is one.
    pub what_to_do: String,
}

impl Finding {
    /// A finding about no file in particular.
    pub(crate) fn new(
        severity: Severity,
        area: Area,
        message: impl Into<String>,
        what_to_do: impl Into<String>,
    ) -> Self {
        Finding {
            severity,
            area,
            file: None,
            line: None,
            message: message.into(),
            what_to_do: what_to_do.into(),
        }
    }

    /// The same finding, about `file` (at `line`, when it is about one line).
    pub(crate) fn at(self, file: &std::path::Path, line: Option<usize>) -> Self {
        self.with_file(Some(file.display().to_string()), line)
    }

    /// The same finding, about `file` (a path, or `NIX_CONFIG`) when there is one.
    pub(crate) fn with_file(self, file: Option<String>, line: Option<usize>) -> Self {
        Finding { file, line, ..self }
    }
}

/// A part of the store: how many paths, and their NAR bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Share {
    /// Valid paths in this part.
    pub paths: u64,
    /// The sum of their NAR sizes, in bytes.
    pub nar_bytes: u64,
}

/// The filesystem the store directory is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    /// Where it is mounted.
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub mount_point: PathBuf,
    /// Its size, in bytes.
    pub total_bytes: u64,
    /// The bytes free for an unprivileged user.
    pub available_bytes: u64,
}

/// Section 1.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSection {
    /// What was passed as `--store` (null: the default store).
    pub uri: Option<String>,
    /// `/`, or the directory of a chroot store.
    #[serde(serialize_with = "crate::output::lossy_path")]
    pub root: PathBuf,
    /// The logical store directory (`/nix/store`), as store paths name it.
    pub store_dir: String,
    /// False when there is no store database at all.
    pub exists: bool,
    /// Valid paths.
    pub paths: u64,
    /// The sum of their NAR sizes (`narSize`), in bytes.
    pub nar_bytes: u64,
    /// Reference edges between valid paths (self-references included).
    pub references: u64,
    /// Paths named `*.drv`.
    pub drv: Share,
    /// Paths named `*-source` (fetched sources, flake inputs).
    pub source_paths: Share,
    /// The filesystem that holds the store directory (null when it cannot be found).
    pub filesystem: Option<Filesystem>,
}

/// A store path and its own NAR size (section 2, and a closure's contents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathEntry {
    /// The full store path.
    pub path: String,
    /// Its NAR size, in bytes.
    pub nar_size: u64,
}

/// One entry of section 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosureEntry {
    /// The rooted store path.
    pub path: String,
    /// Sum of the NAR sizes of its closure (`nix path-info -S`).
    pub closure_size: u64,
    /// How many paths its closure has.
    pub closure_paths: u64,
    /// The link to delete to release it (the first of `roots`).
    pub root: String,
    /// Every GC root link that keeps this path.
    pub roots: Vec<String>,
    /// What deleting this root alone would make garbage: the paths of its closure that
    /// no other GC root keeps (same keep-derivations / keep-outputs rules as `gc`).
    /// `None` when the GC roots could not be read.
    pub freed_if_deleted: Option<crate::store::graph::ClosureSize>,
    /// The other listed root whose closure has the most bytes in common with this one
    /// (null when it shares nothing with them; only the first 64 listed are compared).
    pub shares_most_with: Option<SharedWith>,
}

/// The closure bytes two listed roots have in common.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedWith {
    /// The other root's link.
    pub root: String,
    /// The store path it keeps.
    pub path: String,
    /// The NAR bytes of the paths both closures hold.
    pub nar_bytes: u64,
}

/// Section 4.
#[derive(Debug, Clone, Serialize)]
pub struct GcSection {
    /// GC root links found (symlinks under gcroots/ and profiles/).
    pub roots: u64,
    /// Distinct store paths they keep.
    pub root_paths: u64,
    /// Paths the roots keep alive (their closures, under the keep-* rules).
    pub live_paths: u64,
    /// Paths `nix-store --gc` would delete.
    pub dead_paths: u64,
    /// The NAR bytes of the dead paths (an upper bound of what a GC frees on disk).
    pub dead_nar_bytes: u64,
    /// `keep-derivations` in effect: a live output keeps its deriver.
    pub keep_derivations: bool,
    /// `keep-outputs` in effect: a live derivation keeps its outputs.
    pub keep_outputs: bool,
    /// Always false: roots of running processes (seen through `/proc`) and temporary
    /// roots are not counted (one of the `caveats`).
    pub runtime_roots_counted: bool,
    /// GC-root directories or entries that could not be read (e.g. another user's
    /// `gcroots/per-user/NAME`): the roots in them are not counted.
    pub unreadable_roots: Vec<crate::store::roots::Unreadable>,
    /// True when `unreadable_roots` is not empty: paths kept only by those roots are
    /// counted as dead, so `dead_paths` / `dead_nar_bytes` are an upper bound.
    pub dead_is_upper_bound: bool,
    /// Where the figures may differ from what `nix-store --gc` does, in words.
    pub caveats: Vec<String>,
    /// Every dead path, sorted (only with `--list-dead`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead: Option<Vec<String>>,
}

/// Section 5.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigSection {
    /// Whether the configuration was checked.
    pub checked: bool,
    /// Every configuration file Nix reads here, in order, with whether it exists.
    pub files: Vec<ConfigFile>,
    /// Also in [`Report::findings`] (area `config`), where the JSON has them, once.
    #[serde(skip)]
    pub findings: Vec<Finding>,
}

/// One configuration file Nix reads.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFile {
    /// The file (or `NIX_CONFIG`).
    pub path: String,
    /// Which layer it is: `system`, `user`, `XDG_CONFIG_DIRS`, `include`, ...
    pub layer: String,
    /// Whether it exists (Nix reads a missing layer as empty).
    pub exists: bool,
}

/// The closure given with `--closure`.
#[derive(Debug, Clone, Serialize)]
pub struct ClosureSection {
    /// The paths given with `--closure`, as store paths.
    pub requested: Vec<String>,
    /// Paths in their closure.
    pub paths: u64,
    /// The closure's NAR bytes.
    pub nar_bytes: u64,
    /// Every path of the closure, largest first: what a later `--baseline` run compares
    /// with.
    pub contents: Vec<PathEntry>,
}

/// Section 6: one cache's share of the `--closure`.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    /// The cache's URL (credentials `<redacted>` in every output).
    pub cache: String,
    /// Where the cache came from: `--cache`, `nix.conf`, `Nix's default` (the built-in
    /// `https://cache.nixos.org/` when no file sets `substituters`), `cache.toml`.
    pub from: String,
    /// The cache's priority as Nix takes it (`Priority:` in `nix-cache-info`, or
    /// `?priority=` in the URL; 50 when neither names one); null when not measured.
    pub priority: Option<i32>,
    /// The `StoreDir` its `nix-cache-info` names; null when not measured.
    pub store_dir: Option<String>,
    /// False when the cache could not be asked (unreachable, an HTTP error for
    /// `nix-cache-info`, every narinfo query failed): then `error` says why, and the
    /// `*_present` and `hit_rate_*` fields are null, never 0.
    pub measured: bool,
    /// Paths in the closure.
    pub paths_total: u64,
    /// Of those, the paths the cache holds (a valid narinfo).
    pub paths_present: Option<u64>,
    /// The closure's NAR bytes.
    pub nar_bytes_total: u64,
    /// The NAR bytes of the paths the cache holds.
    pub nar_bytes_present: Option<u64>,
    /// `paths_present / paths_total` in percent (100 for an empty closure).
    pub hit_rate_paths: Option<f64>,
    /// `nar_bytes_present / nar_bytes_total` in percent.
    pub hit_rate_bytes: Option<f64>,
    /// Paths whose query failed (timeouts, server errors) while others answered: the
    /// rates are then a lower bound.
    pub errors: u64,
    /// Why the cache could not be measured.
    pub error: Option<String>,
    /// Nix's verdict on the signatures of the narinfos the cache holds (null when the
    /// configuration was not read, or the cache not measured).
    pub signatures: Option<Signatures>,
    /// Paths the cache holds without one of their references (null when not measured).
    pub incomplete: Option<Incomplete>,
    /// Narinfos that name a path of the closure but another `NarSize` than this store's:
    /// other contents (corrupted, or another build of a non-reproducible path), which
    /// Nix would refuse on download ("hash mismatch"). Not counted as present.
    pub other_contents: u64,
    /// Good narinfos whose NAR is not in the cache: Nix finds the path there, then fails
    /// to download it. Not counted as present.
    pub nar_missing: u64,
    /// Narinfos that are there but prove nothing (garbage, truncated, too big, another
    /// path's): Nix cannot use them. Not counted as present.
    pub invalid_narinfos: u64,
    /// Why the first of them proves nothing.
    pub invalid_example: Option<String>,
}

/// The signatures of one cache's narinfos for the closure, checked as Nix checks them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Signatures {
    /// Narinfos checked (every present one, or an even sample of 4096).
    pub checked: u64,
    /// Signed by a key in `trusted-public-keys`.
    pub trusted: u64,
    /// Signed, but by no trusted key: Nix ignores them when signatures are required.
    pub untrusted: u64,
    /// No signature and not content-addressed.
    pub unsigned: u64,
    /// No signature but a `CA` line: Nix accepts them when the address checks.
    pub content_addressed: u64,
    /// Names of keys that signed untrusted paths and are not trusted under any key.
    pub untrusted_keys: Vec<String>,
    /// Key names that are trusted but whose signatures do not verify: the cache signs
    /// with another key of that name.
    pub mismatched_keys: Vec<String>,
    /// A key from cache.toml, `NAME:BASE64`, that verifies the untrusted signatures
    /// checked (proven by one of them): the key to add. Null when none does.
    pub suggested_key: Option<String>,
    /// Whether Nix requires a signature from this cache (`require-sigs`, and no
    /// `?trusted=1` on its URL).
    pub required: bool,
}

/// Paths a cache holds whose references it does not all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Incomplete {
    /// How many such paths.
    pub paths: u64,
    /// The first few, each with one reference the cache lacks.
    pub examples: Vec<MissingReference>,
}

/// A path a cache holds, and one of its references the cache lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingReference {
    /// The path the cache holds.
    pub path: String,
    /// A reference of it the cache does not hold.
    pub missing: String,
}

/// The part of the report a finding or recommendation is about (lowercase in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    /// The store itself: missing, empty, its filesystem nearly full.
    Store,
    /// Garbage and GC roots.
    Gc,
    /// The Nix configuration.
    Config,
    /// The `--closure` paths.
    Closure,
    /// What the caches hold of the closure, and their signatures.
    Coverage,
}

/// Something worth doing that the report found (freeing space, pushing, a fix).
#[derive(Debug, Clone, Serialize)]
pub struct Recommendation {
    /// Which section it comes from.
    pub area: Area,
    /// What to do and why, in a sentence.
    pub message: String,
    /// A command to run, when there is one.
    pub command: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`JSON_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Where the store numbers came from.
    pub source: Source,
    /// Section 1: the store as a whole.
    pub store: StoreSection,
    /// Section 2: the largest paths by NAR size, largest first.
    pub largest_paths: Vec<PathEntry>,
    /// Section 3: the rooted closures, by what deleting their root frees.
    pub largest_closures: Vec<ClosureEntry>,
    /// Null for a store whose GC roots cannot be seen (a remote store) or a missing one.
    pub gc: Option<GcSection>,
    /// Section 5: the configuration files checked.
    pub config: ConfigSection,
    /// The `--closure` paths (null without it).
    pub closure: Option<ClosureSection>,
    /// Section 6: one entry per cache (empty without `--closure`).
    pub coverage: Vec<Coverage>,
    /// `--baseline` / `--compare`: what changed between the two closures.
    pub diff: Option<diff::Diff>,
    /// Every finding of every section (config findings included), errors first.
    pub findings: Vec<Finding>,
    /// What to do next, most useful first.
    pub recommendations: Vec<Recommendation>,
    /// Secret values of the configuration (`access-tokens` / `extra-access-tokens`),
    /// which every rendering hides (URL credentials are hidden by their shape).
    #[serde(skip)]
    pub secrets: Vec<String>,
}

impl Report {
    /// Errors and warnings: what `--check` fails on.
    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity <= Severity::Warning)
            .count()
    }

    /// How many findings have severity `s`.
    pub(crate) fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// The exit code for this report.
    pub fn exit_code(&self, check: bool) -> ExitCode {
        if check && self.problems() > 0 {
            ExitCode::CheckFailed
        } else {
            ExitCode::Ok
        }
    }
}
