//! Makes a synthetic Nix store for `bench/analytics.sh`, with the generator the
//! cache-analytics tests use (`tests/support/analytics_store.rs`: hub libraries, layered
//! references, `.drv` and `-source` paths, log-normal sizes, GC roots as
//! `gcroots/auto/root-K` links), so that the benchmark needs nothing outside the
//! repository:
//!
//!     cargo run --release --example mkstore -- DIR PATHS ROOTS [SEED]

#[path = "../../../tests/support/analytics_store.rs"]
mod analytics_store;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: Option<u64>| -> Option<u64> {
        match args.get(i) {
            Some(a) => a.parse().ok(),
            None => default,
        }
    };
    let (Some(dir), Some(paths), Some(roots), Some(seed)) = (
        args.first(),
        number(1, None),
        number(2, None),
        number(3, Some(1)),
    ) else {
        eprintln!("usage: mkstore DIR PATHS ROOTS [SEED]");
        return ExitCode::from(2);
    };
    let s = analytics_store::make(
        std::path::Path::new(dir),
        paths as usize,
        seed,
        roots as usize,
        false,
    );
    println!(
        "{dir}: {} paths, {} references, {} GC roots",
        s.paths.len(),
        s.refs.len(),
        s.roots.len()
    );
    ExitCode::SUCCESS
}
