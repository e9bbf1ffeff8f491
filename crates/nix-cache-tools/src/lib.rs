//! # nix-cache-tools
//!
//! The library behind three small binaries that make Nix binary caches painless for a
//! team: `setup-cache` (onboarding: add a substituter and its key to nix.conf, safely),
//! `push-cache` (upload a build's closure, filtered and signed, skipping what is there)
//! and `cache-analytics` (store size, largest paths and closures, config validity and
//! cache coverage, fast).
//!
//! All logic lives here; the binaries parse arguments (through [`cli`]), call the
//! library, print its report and return the [`cli::ExitCode`] it maps to. Modules:
//!
//! - [`cmd`]: the one wrapper for running external programs (argv apart from running,
//!   dry-run, stderr and exit status in every failure).
//! - [`nixcli`]: the installed Nix through its CLI, across versions 2.8 → today and Lix.
//! - [`cachetoml`]: the project's `cache.toml`.
//! - [`nixconf`]: nix.conf as Nix reads it: lossless files, the layer stack, settings in
//!   force with provenance.
//! - [`keys`], [`url`], [`nix32`], [`storepath`]: Nix's small formats.
//! - [`fsutil`]: atomic writes, locks, errors that name the path.
//! - [`cli`]: the contract of the three binaries: exit codes, errors (as JSON too),
//!   `--summary`, man pages and completions.
//! - [`output`]: terminal conventions, printing that survives a closed pipe.
//! - [`redact`]: secrets hidden from every output (URL credentials, access tokens,
//!   netrc passwords).
//! - [`setup`]: setup-cache: add / remove a cache in nix.conf, safely, trust-aware.
//! - [`trust`]: will the nix-daemon honour a user's caches (setup-cache's verdicts,
//!   cache-analytics' findings).
//! - [`compress`]: NAR compression (zstd, xz, none) as caches name it.
//! - [`nar`]: Nix archives written straight from the store, streaming, hashed.
//! - [`narinfo`]: the `.narinfo` format, fingerprints and signature checks.
//! - [`binarycache`]: a client for `file://`, `http(s)://` and `s3://` binary caches
//!   (which paths does a cache hold, queried in parallel).
//! - [`s3`]: `s3://` URIs, AWS credentials, signed requests, multipart journal.
//! - [`store`]: the local store read fast (SQLite, `nix path-info` fallback), GC roots.
//! - [`analytics`]: the `cache-analytics` report: model, sections, renderers.
//! - [`upload`]: push-cache's own pipeline for `file://`, `http(s)://` and `s3://` caches: NARs
//!   from the store, compressed in parallel, signed, narinfos in dependency order.
//! - [`push`]: push-cache (closure, filter, skip what is cached, upload, report).
// The modules the binaries do not use are crate-private; the docs (built with
// `--document-private-items` for whoever works on the code) still link to them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod analytics;
pub(crate) mod binarycache;
pub mod cachetoml;
pub mod cli;
pub(crate) mod cmd;
pub mod compress;
pub(crate) mod fsutil;
pub mod keys;
pub(crate) mod nar;
pub mod narinfo;
pub(crate) mod nix32;
pub mod nixcli;
pub mod nixconf;
pub mod output;
pub mod push;
pub mod redact;
pub(crate) mod s3;
pub mod setup;
pub mod store;
pub mod storepath;
pub mod trust;
pub mod upload;
pub mod url;
