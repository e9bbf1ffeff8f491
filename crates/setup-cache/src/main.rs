//! `setup-cache`: add a binary cache to the nix.conf Nix reads. All logic is in
//! `nix_cache_tools::setup`; this parses flags, calls it, prints, and exits.
// Doc comments on the arguments are `--help` text, not rustdoc: URLs stay bare there.
#![allow(rustdoc::bare_urls)]

use anyhow::Context;
use clap::Parser;
use nix_cache_tools::cli::{self, Tool};
use nix_cache_tools::nixconf::Env;
use nix_cache_tools::setup::{self, CacheArgs, ExitCode, Request, SetupError, Target};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  setup-cache                          # the caches in ./cache.toml, into your user nix.conf
  setup-cache --dry-run                # show the diff, write nothing
  setup-cache --cachix nanna-coder --public-key 'nanna-coder.cachix.org-1:...'
  sudo setup-cache --system            # for every user (restart the daemon afterwards)
  setup-cache --remove                 # take the caches out again
";

fn after_help() -> String {
    format!("{EXAMPLES}\n{}", ExitCode::help(Tool::SetupCache))
}

/// Add a binary cache (substituter + public key) to the nix.conf Nix reads: as
/// `extra-substituters` / `extra-trusted-public-keys`, so cache.nixos.org and every other
/// cache stay. Lossless, atomic, idempotent, reversible; never installs anything.
#[derive(Debug, Parser)]
#[command(name = "setup-cache", version, after_help = after_help())]
struct Args {
    /// cache.toml to read (default: ./cache.toml or the first one in a parent directory)
    #[arg(long, value_name = "FILE", env = "CACHE_TOOLS_CONFIG")]
    config: Option<PathBuf>,
    /// A cache given directly instead of cache.toml (needs --public-key)
    #[arg(long, value_name = "URL", conflicts_with = "cachix")]
    url: Option<String>,
    /// A Cachix cache: same as --url https://NAME.cachix.org
    #[arg(long, value_name = "NAME")]
    cachix: Option<String>,
    /// The cache's public key, NAME:BASE64 (32 bytes)
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    /// Private cache: write a netrc entry with the token read from this variable
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Edit this nix.conf instead of the user file Nix reads
    #[arg(long, value_name = "PATH", conflicts_with = "system")]
    file: Option<PathBuf>,
    /// Edit the system nix.conf ($NIX_CONF_DIR/nix.conf, nix.custom.conf on Determinate)
    #[arg(long)]
    system: bool,
    /// Take the cache(s) out again
    #[arg(long)]
    remove: bool,
    /// Print the unified diff; write nothing
    #[arg(long)]
    dry_run: bool,
    /// Print what was done as JSON on stdout
    #[arg(long)]
    json: bool,
    /// Also record --url/--cachix and --public-key in cache.toml (--config, else ./cache.toml)
    #[arg(long)]
    save: bool,
    /// Print the man page or the completions of a shell (man, complete-bash,
    /// complete-zsh, complete-fish, complete-elvish, complete-powershell) and exit.
    #[arg(long, value_enum, value_name = "KIND")]
    generate: Option<cli::Generate>,
}

fn run(args: &Args) -> anyhow::Result<(setup::Report, Option<String>)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let resolved = setup::resolve_caches(&CacheArgs {
        config: args.config.clone(),
        url: args.url.clone(),
        cachix: args.cachix.clone(),
        public_key: args.public_key.clone(),
        token_env: args.token_env.clone(),
        cwd: cwd.clone(),
        remove: args.remove,
    })?;
    let mut saved = None;
    if args.save {
        if resolved.config.is_some() {
            return Err(SetupError::Usage(
                "--save records a cache given with --url/--cachix and --public-key in cache.toml"
                    .into(),
            )
            .into());
        }
        setup::check_save(&resolved.caches)?;
        let path = args
            .config
            .clone()
            .unwrap_or_else(|| cwd.join("cache.toml"));
        if args.dry_run {
            saved = Some(format!("would record the cache in {}", path.display()));
        } else {
            let added =
                setup::save(&path, &resolved.caches, say_waiting_for_lock).context("--save")?;
            saved = Some(if added.is_empty() {
                format!("{} already lists the cache", path.display())
            } else {
                format!("recorded {} in {}", added.join(", "), path.display())
            });
        }
    }
    let target = match (&args.file, args.system) {
        (Some(f), _) => Target::File(f.clone()),
        (None, true) => Target::System,
        (None, false) => Target::User,
    };
    let req = Request {
        caches: resolved.caches,
        target,
        remove: args.remove,
        dry_run: args.dry_run,
        env: Env::from_process(),
        ask_nix: true,
        check_trust: true,
        cli_args: resolved.cli_args,
        on_lock_wait: say_waiting_for_lock,
    };
    let report = setup::run(&req)?;
    Ok((report, saved))
}

/// Another run holds the lock on the directory: said at once, since the wait may be long.
fn say_waiting_for_lock(dir: &Path) {
    nix_cache_tools::output::eprintln(&format!(
        "setup-cache: waiting for another run that holds the lock on {} (another setup-cache editing this directory; stop it, or wait)...",
        dir.display()
    ));
}

fn exit_code_of(err: &anyhow::Error) -> ExitCode {
    err.chain()
        .find_map(|e| e.downcast_ref::<SetupError>())
        .map_or(ExitCode::Error, SetupError::exit_code)
}

fn main() -> std::process::ExitCode {
    // Every text printed goes through `redact::urls_in`: whatever a message quotes (a
    // URL given with credentials, say), a password never reaches the terminal or a log.
    let hide = nix_cache_tools::redact::urls_in;
    // A bad command line exits with 2, and with --json its message is JSON on stdout
    // like every other error.
    let args: Args = match cli::parse_args(Tool::SetupCache) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if let Some(kind) = args.generate {
        return cli::print_generated::<Args>(kind);
    }
    match run(&args) {
        Ok((report, saved)) => {
            if args.json {
                let mut v = serde_json::to_value(&report).unwrap_or_default();
                if let (Some(s), Some(obj)) = (saved, v.as_object_mut()) {
                    obj.insert("saved".into(), serde_json::Value::String(s));
                }
                nix_cache_tools::output::println(&nix_cache_tools::redact::json_pretty(&v));
            } else {
                nix_cache_tools::output::print(&hide(&report.human()));
                if let Some(s) = saved {
                    nix_cache_tools::output::println(&format!("  {}", hide(&s)));
                }
            }
            report.exit_code.into()
        }
        Err(err) => cli::fail(
            Tool::SetupCache,
            &format!("{err:#}"),
            exit_code_of(&err),
            args.json,
        ),
    }
}
