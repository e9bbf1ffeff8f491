//! `push-cache`: thin front end; all logic is in `nix_cache_tools::push`.
// Doc comments on the arguments are `--help` text, not rustdoc.
#![allow(rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

mod progress;

use anyhow::Context;
use clap::Parser;
use nix_cache_tools::cli::{self, Tool};
use nix_cache_tools::output::{self, human_bytes};
use nix_cache_tools::push::{self, ExitCode, Options};
use nix_cache_tools::redact;
use nix_cache_tools::store::SourcePref;
use std::io::Read;
use std::path::PathBuf;

/// Upload the closure of a build to a binary cache, filtered, signed, skipping what the
/// cache already holds.
///
/// Targets: file://, http(s):// (PUT) and s3:// (signed AWS requests) through
/// push-cache's own pipeline (NARs from the store, zstd, parallel, signed), any other
/// Nix store URI (ssh-ng://, ssh://...) through `nix copy`, `cachix:NAME` through `cachix push`, `attic:CACHE` through
/// `attic push`.
#[derive(Debug, Parser)]
#[command(name = "push-cache", version, after_help = ExitCode::help(Tool::PushCache))]
struct Args {
    /// Store paths, `result` links or installables (`.#pkg`, built with `nix build`).
    /// Default: every ./result* link in the current directory.
    #[arg(value_name = "PATH|INSTALLABLE")]
    paths: Vec<String>,
    /// Also read paths from standard input, one per line.
    #[arg(long)]
    stdin: bool,
    /// Where to push: cachix:NAME, attic:[SERVER:]CACHE or a Nix store URI
    /// (default: `to` under [push] in cache.toml).
    #[arg(long, value_name = "URI", value_parser = push_target)]
    to: Option<String>,
    /// cache.toml to read (default: ./cache.toml or the first one in a parent directory).
    #[arg(long, value_name = "FILE", env = "CACHE_TOOLS_CONFIG")]
    config: Option<PathBuf>,
    /// Leave out closure paths whose store path matches REGEX (default: `filter` under
    /// [push] in cache.toml, else `(-source$|nixpkgs\.tar\.gz$)`). Paths that a pushed
    /// path references are pushed anyway, with a warning.
    #[arg(long, value_name = "REGEX", conflicts_with = "no_filter", value_parser = push_filter)]
    filter: Option<String>,
    /// Push the whole closure, filtering nothing.
    #[arg(long)]
    no_filter: bool,
    /// Sign what is pushed with this Nix secret key (Nix store URIs only; default:
    /// `secret-key-file` under [push]). A bad key is an error before any upload.
    #[arg(long, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// Parallel cache queries (default 16; 64 for s3://) and upload workers (default:
    /// twice the cores, 4 to 16); passed to cachix/attic as --jobs.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// NAR compression of push-cache's own pipeline (file://, http(s)://, s3://): zstd,
    /// xz or none (default: the target URI's `?compression=`, else zstd). Other targets
    /// refuse it (exit 2).
    #[arg(long, value_name = "METHOD", value_parser = ["zstd", "xz", "none"])]
    compression: Option<String>,
    /// Compression level (zstd 1-19, default 3; xz 0-9, default 6).
    #[arg(long, value_name = "N", allow_negative_numbers = false)]
    compression_level: Option<i32>,
    /// Upload to file://, http(s):// and s3:// with `nix copy` instead of the native
    /// pipeline (the compression then comes from the URI's `?compression=`).
    #[arg(long, value_name = "nix", value_parser = ["nix"])]
    via: Option<String>,
    /// After pushing, leave this machine's Nix narinfo cache as it is (by default its
    /// stale "not in this cache" answers for the pushed paths are forgotten).
    #[arg(long)]
    no_refresh: bool,
    /// Print what would be pushed, with sizes, and upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Fail (exit 7) instead of skipping when there are no credentials for the target.
    #[arg(long)]
    require_push: bool,
    /// Print a JSON report on stdout, and nothing else there.
    #[arg(long)]
    json: bool,
    /// Append a Markdown summary to $GITHUB_STEP_SUMMARY when it is set.
    #[arg(long)]
    summary: bool,
    /// Where the closure is read from: `auto` (the store database when it opens
    /// read-only, else `nix path-info`), `database` only, or `nix` (`nix path-info`).
    #[arg(long, value_enum, value_name = "SOURCE", default_value_t = SourcePref::Auto, env = "PUSH_CACHE_SOURCE")]
    source: SourcePref,
    /// The most the upload may take, in seconds: cache queries and every upload process
    /// (nix copy, cachix, attic) get the time left, and nothing starts after it; paths
    /// not uploaded by then fail (exit 6). Builds of installables are not counted.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, env = "PUSH_CACHE_TIMEOUT",
          value_parser = clap::value_parser!(u64).range(1..=nix_cache_tools::cli::MAX_TIMEOUT_SECS))]
    timeout: u64,
    /// Print the man page or the completions of a shell (man, complete-bash,
    /// complete-zsh, complete-fish, complete-elvish, complete-powershell) and exit.
    #[arg(long, value_enum, value_name = "KIND")]
    generate: Option<cli::Generate>,
}

/// `--to` must name a push target: a usage error (exit 2) naming the flag otherwise.
fn push_target(s: &str) -> Result<String, String> {
    nix_cache_tools::cachetoml::validate_push_target(s).map(|()| s.to_owned())
}

/// `--filter` must be a regex: a usage error (exit 2) naming the flag otherwise.
fn push_filter(s: &str) -> Result<String, String> {
    push::check_filter(s).map(|()| s.to_owned())
}

fn main() -> std::process::ExitCode {
    // A bad command line exits with 2; with --json its message is JSON on stdout, as
    // every other error is.
    let args: Args = match cli::parse_args(Tool::PushCache) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(kind) = args.generate {
        return cli::print_generated::<Args>(kind);
    }
    match run(&args) {
        Ok(code) => code.into(),
        Err(e) => {
            // Credentials in URLs (--to, cache.toml, Nix's messages) are never shown.
            let code = e
                .downcast_ref::<push::PushError>()
                .map(push::PushError::exit_code)
                .unwrap_or(ExitCode::Error);
            cli::fail(Tool::PushCache, &format!("{e:#}"), code, args.json)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let stdin_paths = if args.stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| push::PushError::Stdin(e.to_string()))?;
        Some(text.lines().map(str::to_owned).collect())
    } else {
        None
    };
    let opts = Options {
        args: args.paths.clone(),
        stdin_paths,
        to: args.to.clone(),
        config: args.config.clone(),
        filter: args.filter.clone(),
        no_filter: args.no_filter,
        secret_key_file: args.secret_key_file.clone(),
        jobs: args.jobs.map(usize::from),
        dry_run: args.dry_run,
        require_push: args.require_push,
        source: args.source,
        timeout: Some(std::time::Duration::from_secs(args.timeout)),
        via_nix: args.via.is_some(),
        compression: args.compression.clone(),
        compression_level: args.compression_level,
        no_refresh: args.no_refresh,
        cwd: std::env::current_dir().context("cannot read the current directory")?,
    };
    let display = progress::Display::new(output::progress_enabled() && !args.json);
    let report = push::run(&opts, &|p| display.show(p))?;

    if args.json {
        nix_cache_tools::output::println(&redact::urls_in(&report.to_json()));
        if let Some(why) = &report.skipped {
            nix_cache_tools::output::eprintln(&format!("push skipped: {why}"));
        }
    } else {
        if report.dry_run {
            for p in &report.pushed {
                let size = report.sizes.get(p).copied().unwrap_or(0);
                nix_cache_tools::output::println(&format!(
                    "would push {p} ({})",
                    human_bytes(size)
                ));
            }
        }
        if !report.filtered.is_empty() {
            nix_cache_tools::output::eprintln(&format!(
                "left out by the filter {}:",
                report.filter.as_deref().unwrap_or("")
            ));
            for p in &report.filtered {
                nix_cache_tools::output::eprintln(&format!("  {p}"));
            }
        }
        for f in &report.failures {
            nix_cache_tools::output::eprintln(&format!(
                "failed: {}: {}",
                f.path,
                redact::urls_in(&f.reason)
            ));
        }
        for w in &report.warnings {
            nix_cache_tools::output::eprintln(&format!("warning: {}", redact::urls_in(w)));
        }
        for c in &report.would_run {
            nix_cache_tools::output::eprintln(&format!("would run: {c}"));
        }
        nix_cache_tools::output::println(&redact::urls_in(&report.summary_text()));
    }
    // The push is done: a summary that cannot be written is a warning, and the exit code
    // stays the push's.
    if args.summary {
        if let Err(e) = cli::write_summary(Tool::PushCache, &redact::urls_in(&report.markdown())) {
            nix_cache_tools::output::eprintln(&format!(
                "warning: could not write the job summary ($GITHUB_STEP_SUMMARY): {e}"
            ));
        }
    }
    Ok(report.exit_code())
}
