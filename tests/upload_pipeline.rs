//! The native upload pipeline (`nix_cache_tools::upload`) against real Nix: what it
//! writes to `file://` and HTTP caches must be substituted by Nix into a fresh chroot
//! store with the cache's key, for every compression, and pass `nix store verify`; a
//! store path whose files changed after registration is refused by name.
#![allow(clippy::unwrap_used)]
mod support;

use nix_cache_tools::compress::{Method, Settings};
use nix_cache_tools::keys::SecretKey;
use nix_cache_tools::nixcli::{PathInfo, parse_path_info};
use nix_cache_tools::storepath::StorePath;
use nix_cache_tools::upload::{self, FileSink, HttpSink, Outcome, Sink};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::*;

struct Fixture {
    env: NixEnv,
    top: String,
    infos: BTreeMap<StorePath, PathInfo>,
    /// Dependency order (references first).
    order: Vec<StorePath>,
    key: KeyPair,
}

fn fixture(tag: &str) -> Fixture {
    require_nix();
    let env = NixEnv::new();
    // A closure with a bigger file (compresses like text), an executable and a symlink.
    let expr = format!(
        r#"let
  leaf = mk "leaf-{tag}" "mkdir -p $out/bin $out/share; i=0; while [ $i -lt 3000 ]; do echo line $i of {tag} >> $out/share/big; i=$((i+1)); done; printf '#!/bin/sh\necho hi\n' > $out/bin/hi; chmod +x $out/bin/hi; ln -s ../share/big $out/bin/link";
  mid = mk "mid-{tag}" "mkdir $out; echo ${{leaf}} > $out/ref";
in mk "top-{tag}" "echo ${{mid}} > $out""#
    );
    let top = build(&env, &expr).remove(0);
    let out = run_ok(env.nix(&["path-info", "--json", "-r", &top]));
    let infos: BTreeMap<StorePath, PathInfo> = parse_path_info(&stdout(&out), "/nix/store")
        .unwrap()
        .into_iter()
        .map(|i| (i.path.clone(), i))
        .collect();
    // `nix-store -qR` lists references first.
    let order = closure(&env, std::slice::from_ref(&top))
        .iter()
        .map(|p| StorePath::new(p, "/nix/store").unwrap())
        .collect();
    let key = generate_key(&env, &format!("{tag}.example-1"));
    Fixture {
        env,
        top,
        infos,
        order,
        key,
    }
}

fn options(f: &Fixture, method: Method) -> upload::Options {
    upload::Options {
        compression: Settings::new(method, None).unwrap(),
        jobs: 3,
        secret_key: Some(SecretKey::read(&f.key.secret_file).unwrap()),
        real_store_dir: "/nix/store".into(),
        store_dir: "/nix/store".into(),
        deadline: upload::deadline_in(Duration::from_secs(120)),
        retries: 2,
    }
}

fn push(f: &Fixture, sink: &dyn Sink, opts: &upload::Options) -> upload::Results {
    upload::upload(&f.order, &f.infos, &BTreeSet::new(), sink, opts, &|_| {})
}

/// Nix substitutes the closure from `url` into a fresh chroot store trusting only `key`.
fn substitute(f: &Fixture, url: &str, what: &str) {
    let chroot = f.env.path().join(format!("chroot-{what}"));
    let store = chroot.display().to_string();
    run_ok(f.env.nix(&[
        "copy",
        "--from",
        url,
        "--to",
        &store,
        "--option",
        "trusted-public-keys",
        &f.key.public,
        &f.top,
    ]));
    let out = run_ok(f.env.nix(&["path-info", "--store", &store, "-r", &f.top]));
    let mut got: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let mut want = f.order.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{what}");
    // The executable and the symlink came through as such.
    let leaf = f.order.iter().find(|p| p.contains("-leaf-")).unwrap();
    let real = chroot.join(leaf.trim_start_matches('/'));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(real.join("bin/hi"))
        .unwrap()
        .permissions()
        .mode();
    assert!(mode & 0o100 != 0, "{what}: not executable");
    assert!(
        std::fs::symlink_metadata(real.join("bin/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // And the cache's copies verify with the key.
    run_ok(f.env.nix(&[
        "store",
        "verify",
        "--store",
        url,
        "--option",
        "trusted-public-keys",
        &f.key.public,
        "-r",
        &f.top,
    ]));
}

#[test]
fn file_cache_every_compression_is_substituted_by_nix() {
    let f = fixture("upfile");
    for method in [Method::Zstd, Method::Xz, Method::None] {
        let dir = f.env.path().join(format!("cache-{method}"));
        let url = format!("file://{}", dir.display());
        let sink = FileSink::new(&url, &dir).unwrap();
        let r = push(&f, &sink, &options(&f, method));
        assert!(r.wrote_cache_info);
        for (p, o) in &r.outcomes {
            assert!(matches!(o, Outcome::Pushed { .. }), "{method}: {p}: {o:?}");
        }
        // Narinfos name the compression and the NAR file Nix will fetch.
        let hash = nix_cache_tools::storepath::hash_part(&f.top).unwrap();
        let ni = std::fs::read_to_string(dir.join(format!("{hash}.narinfo"))).unwrap();
        assert!(ni.contains(&format!("Compression: {method}\n")), "{ni}");
        assert!(
            ni.contains("URL: nar/") && ni.contains(method.extension()),
            "{ni}"
        );
        assert!(ni.contains("Sig: upfile.example-1:"), "{ni}");
        substitute(&f, &url, &method.to_string());
    }
}

#[test]
fn http_cache_is_substituted_by_nix() {
    let f = fixture("uphttp");
    // Each compression, each to its own cache, substituted into its own fresh store.
    for method in [Method::Zstd, Method::Xz, Method::None] {
        let server =
            http::HttpCache::serve_writable(&f.env.path().join(format!("served-{method}")));
        let sink = HttpSink::new(&server.url, 3, 2, false);
        let r = push(&f, &sink, &options(&f, method));
        for (p, o) in &r.outcomes {
            assert!(matches!(o, Outcome::Pushed { .. }), "{method}: {p}: {o:?}");
        }
        // nix-cache-info first; no narinfo before its references' narinfos.
        let puts: Vec<String> = server
            .requests()
            .into_iter()
            .filter(|q| q.method == "PUT")
            .map(|q| q.path)
            .collect();
        assert_eq!(puts[0], "/nix-cache-info", "{puts:?}");
        let pos = |p: &str| {
            let h = nix_cache_tools::storepath::hash_part(p).unwrap();
            puts.iter()
                .position(|q| q == &format!("/{h}.narinfo"))
                .unwrap()
        };
        for (p, i) in &f.infos {
            for r in i.references.iter().filter(|r| *r != p) {
                assert!(pos(r) < pos(p), "{r} after {p}: {puts:?}");
            }
        }
        substitute(&f, &server.url, &format!("http-{method}"));
    }
}

#[test]
fn a_corrupted_store_path_is_refused_by_name() {
    let f = fixture("upbad");
    // A chroot store holding the closure, whose leaf file is then changed behind Nix's
    // back (what a disk error or a careless `chmod -R`/edit does).
    let chroot = f.env.path().join("bad-store");
    let store = chroot.display().to_string();
    run_ok(
        f.env
            .nix(&["copy", "--no-check-sigs", "--to", &store, &f.top]),
    );
    let leaf = f
        .order
        .iter()
        .find(|p| p.contains("-leaf-"))
        .unwrap()
        .clone();
    let file = chroot.join(leaf.trim_start_matches('/')).join("share/big");
    use std::os::unix::fs::PermissionsExt;
    let dir = file.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&file, "tampered\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let cache = f.env.path().join("cache-bad");
    let url = format!("file://{}", cache.display());
    let sink = FileSink::new(&url, &cache).unwrap();
    let mut opts = options(&f, Method::Zstd);
    opts.real_store_dir = chroot.join("nix/store");
    let r = push(&f, &sink, &opts);
    let by: BTreeMap<_, _> = r.outcomes.into_iter().collect();
    match &by[&leaf] {
        Outcome::Failed(why) => assert!(why.contains("corrupted"), "{why}"),
        o => panic!("the corrupted leaf was pushed: {o:?}"),
    }
    // What references it was not given a narinfo either; no narinfo for the leaf.
    for p in &f.order {
        assert!(matches!(by[p], Outcome::Failed(_)), "{p}: {:?}", by[p]);
        let h = nix_cache_tools::storepath::hash_part(p).unwrap();
        assert!(!cache.join(format!("{h}.narinfo")).exists(), "{p}");
    }
}

#[test]
fn negative_lookups_of_pushed_paths_are_forgotten() {
    let f = fixture("upfresh");
    let server = http::HttpCache::serve_writable(&f.env.path().join("served"));
    std::fs::write(
        f.env.path().join("served/nix-cache-info"),
        "StoreDir: /nix/store\n",
    )
    .unwrap();
    // Nix asks the cache before the push and remembers "not there" (for an hour).
    let ask = || {
        f.env
            .nix(&[
                "path-info",
                "--store",
                &server.url,
                "--option",
                "trusted-public-keys",
                &f.key.public,
                &f.top,
            ])
            .output()
            .unwrap()
    };
    assert!(!ask().status.success());
    let sink = HttpSink::new(&server.url, 2, 1, true);
    let r = push(&f, &sink, &options(&f, Method::Zstd));
    assert!(
        r.outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Pushed { .. }))
    );
    // Still "not there" for Nix: its negative answer is cached.
    let out = ask();
    assert!(!out.status.success(), "{}", stderr(&out));
    let db = f.env.home.join(".cache/nix");
    let n = upload::fresh::forget_negative(&db, &server.url, &f.order).unwrap();
    assert!(n >= 1, "{n}");
    let out = ask();
    assert!(out.status.success(), "{}", stderr(&out));
    // Nothing else is touched: a second pass finds nothing to forget.
    assert_eq!(
        upload::fresh::forget_negative(&db, &server.url, &f.order).unwrap(),
        0
    );
}

#[test]
fn narinfos_say_what_nix_copy_says() {
    let f = fixture("upsame");
    let ours = f.env.path().join("ours");
    let sink = FileSink::new(&format!("file://{}", ours.display()), &ours).unwrap();
    push(&f, &sink, &options(&f, Method::Zstd));
    let theirs = f.env.path().join("theirs");
    run_ok(f.env.nix(&[
        "copy",
        "--to",
        &format!(
            "file://{}?compression=zstd&secret-key={}",
            theirs.display(),
            f.key.secret_file.display()
        ),
        &f.top,
    ]));
    let public = nix_cache_tools::keys::PublicKey::parse(&f.key.public).unwrap();
    for p in &f.order {
        let name = nix_cache_tools::narinfo::narinfo_file_name(p).unwrap();
        let read = |d: &std::path::Path| {
            nix_cache_tools::narinfo::NarInfo::parse(
                &std::fs::read_to_string(d.join(&name)).unwrap(),
            )
            .unwrap()
        };
        let (a, b) = (read(&ours), read(&theirs));
        assert_eq!(a.store_path, b.store_path);
        assert_eq!(a.nar_hash, b.nar_hash, "{p}");
        assert_eq!(a.nar_size, b.nar_size, "{p}");
        assert_eq!(a.references, b.references, "{p}");
        assert_eq!(a.deriver, b.deriver, "{p}");
        assert_eq!(a.ca, b.ca, "{p}");
        assert_eq!(a.compression, b.compression, "{p}");
        assert!(
            a.url.ends_with(".nar.zst") && b.url.ends_with(".nar.zst"),
            "{p}"
        );
        // Both signed with the key, over the same fingerprint.
        assert!(a.verify(&public) && b.verify(&public), "{p}");
        assert_eq!(a.fingerprint().unwrap(), b.fingerprint().unwrap(), "{p}");
    }
}

/// A cache that redirects uploads has stored nothing: the upload fails and says where
/// the cache sent it (ureq would otherwise follow the PUT with a GET and call it done).
#[test]
fn a_redirected_upload_is_a_failure() {
    use std::sync::Arc;
    let f = fixture("upredir");
    let root = f.env.path().join("served");
    let hostile: http::Hostile = Arc::new(|m: &str, p: &str| {
        if m == "PUT" && !p.starts_with("/nix-cache-info") {
            Some(http::Answer::Redirect(format!("/elsewhere{p}")))
        } else if p.starts_with("/elsewhere/") {
            Some(http::Answer::Body(b"ok".to_vec()))
        } else {
            None
        }
    });
    let server = http::HttpCache::serve_hostile(&root, true, hostile);
    let sink = HttpSink::new(&server.url, 2, 1, false);
    let r = push(&f, &sink, &options(&f, Method::Zstd));
    for (p, o) in &r.outcomes {
        match o {
            Outcome::Failed(why) => assert!(
                why.contains("redirected") || why.contains("reference"),
                "{p}: {why}"
            ),
            o => panic!("{p}: {o:?}"),
        }
    }
}

/// Nothing starts or is written after the deadline (the writer between NAR and
/// compressor stops a compression under way: `upload::tests`), and nothing half-written
/// is left in the cache.
#[test]
fn the_deadline_holds_while_compressing() {
    let f = fixture("updead");
    let dir = f.env.path().join("cache-dead");
    let sink = FileSink::new(&format!("file://{}", dir.display()), &dir).unwrap();
    let mut opts = options(&f, Method::Xz);
    opts.deadline = std::time::Instant::now();
    let started = std::time::Instant::now();
    let r = push(&f, &sink, &opts);
    assert!(started.elapsed() < Duration::from_secs(10));
    for (p, o) in &r.outcomes {
        assert!(
            matches!(o, Outcome::Failed(w) if w.contains("time limit")),
            "{p}: {o:?}"
        );
    }
    // Nothing half-written stays in the cache's nar/ directory.
    let left: Vec<_> = std::fs::read_dir(dir.join("nar")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A path listed twice is uploaded once and reported the same both times.
#[test]
fn a_path_listed_twice_is_pushed_once() {
    let f = fixture("uptwice");
    let dir = f.env.path().join("cache-twice");
    let sink = FileSink::new(&format!("file://{}", dir.display()), &dir).unwrap();
    let mut paths = f.order.clone();
    paths.push(StorePath::new(&f.top, "/nix/store").unwrap());
    let r = upload::upload(
        &paths,
        &f.infos,
        &BTreeSet::new(),
        &sink,
        &options(&f, Method::Zstd),
        &|_| {},
    );
    assert_eq!(r.outcomes.len(), paths.len());
    assert!(
        r.outcomes
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Pushed { .. })),
        "{:?}",
        r.outcomes
    );
    assert_eq!(
        std::fs::read_dir(dir.join("nar")).unwrap().count(),
        f.order.len()
    );
}
