//! `cache-analytics`: store size, largest paths and closures, garbage, config validity and
//! cache coverage, fast. All logic is in `nix_cache_tools::analytics`.

use anyhow::Context;
use clap::{Parser, ValueEnum};
use nix_cache_tools::analytics::{self, ExitCode, render};
use nix_cache_tools::cli::{self, Tool};
use nix_cache_tools::output::{self, Stream};
use nix_cache_tools::store::SourcePref;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Markdown,
    Json,
}

/// Store size, largest paths and closures, garbage, nix.conf validity and binary cache
/// coverage of a closure — read straight from the store database, in well under a second.
#[derive(Debug, Parser)]
#[command(name = "cache-analytics", version, after_help = ExitCode::help(Tool::CacheAnalytics))]
struct Cli {
    /// The store, as Nix's --store takes it: a directory is a chroot store
    /// (local?root=DIR); default: `NIX_REMOTE` as Nix reads it, else the machine's store.
    #[arg(long, value_name = "URI|DIR", env = "NIX_REMOTE", hide_env = true)]
    store: Option<String>,
    /// How many largest paths and closures to list.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The sections of the table and Markdown reports, comma-separated: coverage, config,
    /// diff, findings, recommendations, store, paths, closures, gc (default: all; the JSON
    /// always has everything).
    #[arg(long, value_name = "LIST", default_value = "all", value_parser = render::Sections::parse)]
    sections: render::Sections,
    /// Also append the Markdown report to $GITHUB_STEP_SUMMARY (when it is set).
    #[arg(long)]
    summary: bool,
    /// Exit with 9 when the report has any error or warning (for CI gates).
    #[arg(long)]
    check: bool,
    /// Check how much of the closure of PATH (a store path or a link to one, like
    /// ./result) each cache holds. Takes several paths; repeatable.
    #[arg(long = "closure", value_name = "PATH", num_args = 1..)]
    closures: Vec<String>,
    /// A binary cache to check coverage against, instead of the substituters in effect.
    /// Takes several URLs; repeatable.
    #[arg(long = "cache", value_name = "URL", num_args = 1.., value_parser = cache_url)]
    caches: Vec<String>,
    /// Compare the --closure with the closure of a previous `--format json` report
    /// (e.g. the main branch's, kept as a CI artifact): paths and packages added and
    /// removed, versions changed, size and hit-rate deltas.
    #[arg(
        long,
        value_name = "REPORT.json",
        requires = "closures",
        conflicts_with = "compare"
    )]
    baseline: Option<std::path::PathBuf>,
    /// Compare the closures of two paths of the store (store paths or links to them).
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Vec<String>,
    /// The project's cache.toml (its caches are also checked for coverage).
    #[arg(long, value_name = "FILE", env = "CACHE_TOOLS_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Where to read the store from.
    #[arg(long, value_enum, default_value_t = SourcePref::Auto, env = "CACHE_ANALYTICS_SOURCE")]
    source: SourcePref,
    /// Seconds before a cache query gives up.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=nix_cache_tools::cli::MAX_TIMEOUT_SECS))]
    timeout: u64,
    /// List every dead path in the JSON output (gc.dead), like `nix-store --gc --print-dead`
    /// (needs --format json).
    #[arg(long)]
    list_dead: bool,
    /// Print the man page or the completions of a shell (man, complete-bash,
    /// complete-zsh, complete-fish, complete-elvish, complete-powershell) and exit.
    #[arg(long, value_enum, value_name = "KIND")]
    generate: Option<cli::Generate>,
}

/// A `--cache` value must at least be a store URL Nix could substitute from.
fn cache_url(s: &str) -> Result<String, String> {
    nix_cache_tools::url::validate_substituter(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

/// Flags that parse but ask for something the tool cannot do: usage errors (exit 2)
/// naming the flag and what to write instead.
fn usage_problem(cli: &Cli) -> Option<String> {
    if cli.list_dead && cli.format != Format::Json {
        return Some(
            "--list-dead adds the list of dead paths to the JSON report: use it with --format json (the table and Markdown give their number and size)".to_owned(),
        );
    }
    for c in cli.closures.iter().chain(&cli.compare) {
        let in_store = nix_cache_tools::storepath::to_store_path(
            c,
            nix_cache_tools::storepath::DEFAULT_STORE_DIR,
        )
        .is_some();
        if !in_store && std::fs::symlink_metadata(c).is_err() {
            let flag = if cli.closures.contains(c) {
                "--closure"
            } else {
                "--compare"
            };
            return Some(format!(
                "{flag} {c}: there is no such file or store path; pass a store path or a link to one (e.g. ./result after `nix build`)"
            ));
        }
    }
    None
}

fn main() -> std::process::ExitCode {
    let cli: Cli = match cli::parse_args(Tool::CacheAnalytics) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(kind) = cli.generate {
        return cli::print_generated::<Cli>(kind);
    }
    let json = cli.format == Format::Json;
    if let Some(problem) = usage_problem(&cli) {
        return cli::fail(Tool::CacheAnalytics, &problem, ExitCode::Usage, json);
    }
    match run(&cli) {
        Ok(code) => code.into(),
        // A store URI or a cache URL may carry credentials: `fail` hides them.
        Err(e) => cli::fail(
            Tool::CacheAnalytics,
            &format!("{e:#}"),
            ExitCode::Error,
            json,
        ),
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // The error names the file and line already.
    let cache_toml =
        nix_cache_tools::cachetoml::locate(cli.config.as_deref(), &cwd)?.map(|(_, t)| t);
    let baseline = match &cli.baseline {
        Some(p) => Some(analytics::diff::Side::read_baseline(p)?),
        None => None,
    };
    let opts = analytics::Options {
        baseline,
        compare: match cli.compare.as_slice() {
            [old, new] => Some((old.clone(), new.clone())),
            _ => None,
        },
        store: cli.store.clone(),
        top: cli.top,
        source: cli.source,
        closures: cli.closures.clone(),
        caches: cli.caches.clone(),
        list_dead: cli.list_dead,
        cache_toml,
        timeout: std::time::Duration::from_secs(cli.timeout),
        ..analytics::Options::default()
    };
    let report = analytics::analyze(&opts).with_context(|| {
        format!(
            "could not read the store {}",
            cli.store.as_deref().unwrap_or("(default)")
        )
    })?;
    let text = match cli.format {
        Format::Json => render::json(&report),
        Format::Markdown => render::markdown_sections(&report, cli.sections),
        Format::Table => render::table_sections(
            &report,
            output::is_tty(Stream::Stdout),
            output::color_enabled(Stream::Stdout),
            cli.sections,
        ),
    };
    nix_cache_tools::output::print(&text);
    if cli.summary {
        let md = if cli.format == Format::Markdown {
            text
        } else {
            render::markdown_sections(&report, cli.sections)
        };
        cli::write_summary(Tool::CacheAnalytics, &md)
            .context("could not write the job summary ($GITHUB_STEP_SUMMARY)")?;
    }
    Ok(report.exit_code(cli.check))
}
