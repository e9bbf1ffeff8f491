//! Integration tests for setup-cache against real Nix.
mod support;

use support::*;

/// The test harness itself: a real closure, copied by plain `nix copy` into a signed
/// file:// cache served over HTTP, substitutes into a fresh chroot store.
#[test]
fn harness_substitutes_from_loopback_http_cache() {
    require_nix();
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("harness"));
    let paths = closure(&env, std::slice::from_ref(&top));
    assert_eq!(paths.len(), 4, "{paths:?}");
    let key = generate_key(&env, "harness-1");
    let cache_dir = env.path().join("cache");
    nix_copy_to_file_cache(&env, &cache_dir, &key, std::slice::from_ref(&top));
    let server = http::HttpCache::serve(&cache_dir);
    let chroot = env.path().join("chroot");
    let store = chroot.display().to_string();
    run_ok(env.nix(&[
        "copy",
        "--from",
        &server.url,
        "--to",
        &store,
        "--option",
        "trusted-public-keys",
        &key.public,
        &top,
    ]));
    let out = run_ok(env.nix(&["path-info", "--store", &store, "-r", &top]));
    assert_eq!(stdout(&out).lines().count(), 4);
    assert!(server.count("GET") >= 8, "{:?}", server.requests());
}
