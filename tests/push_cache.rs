//! Integration tests for push-cache: the real binary against the real Nix (Debian's
//! nix-bin 2.8 in CI), real closures, real binary caches (file:// and HTTP with PUT on
//! 127.0.0.1), recording stand-ins for cachix and attic.
#![allow(clippy::unwrap_used)]
mod support;

use nix_cache_tools::keys::PublicKey;
use nix_cache_tools::narinfo::NarInfo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

/// A build for the push tests: `top` → `mid` → `leaf`, and `top` → `<tag>-lib-source`
/// (a `-source` path that is a runtime reference); plus `<tag>-extra-source`, standalone,
/// as CI's list of new paths holds. `result` and `result-extra` link to them in `work`.
struct Build {
    env: NixEnv,
    work: PathBuf,
    top: String,
    standalone: String,
    /// Closure of `top` (4 paths).
    closure: Vec<String>,
    kept_source: String,
}

fn build_fixture(tag: &str) -> Build {
    require_nix();
    let env = NixEnv::new();
    let tag = unique(tag);
    let expr = format!(
        r#"let
  leaf = mk "leaf-{tag}" "mkdir $out; echo leaf > $out/data";
  src = mk "{tag}-lib-source" "mkdir $out; echo src > $out/file";
  mid = mk "mid-{tag}" "mkdir $out; echo ${{leaf}} > $out/ref";
  top = mk "top-{tag}" "mkdir $out; echo ${{mid}} ${{src}} > $out/refs";
  extra = mk "{tag}-extra-source" "mkdir $out; echo standalone > $out/file";
in [ top extra ]"#
    );
    let outs = build(&env, &expr);
    let (top, standalone) = (outs[0].clone(), outs[1].clone());
    let work = env.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // push-cache looks for cache.toml in the directory and its parents: an empty one here
    // keeps whatever lies in /tmp out of the tests.
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    std::os::unix::fs::symlink(&top, work.join("result")).unwrap();
    std::os::unix::fs::symlink(&standalone, work.join("result-extra")).unwrap();
    let closure = closure(&env, std::slice::from_ref(&top));
    assert_eq!(closure.len(), 4, "{closure:?}");
    let kept_source = closure
        .iter()
        .find(|p| p.ends_with("-lib-source"))
        .unwrap()
        .clone();
    Build {
        env,
        work,
        top,
        standalone,
        closure,
        kept_source,
    }
}

fn push_cache(env: &NixEnv, cwd: &Path, args: &[&str]) -> Command {
    let mut c = env.command(env!("CARGO_BIN_EXE_push-cache"));
    c.current_dir(cwd)
        .args(args)
        .env_remove("CACHIX_AUTH_TOKEN")
        .env_remove("CACHIX_SIGNING_KEY")
        .env_remove("CACHE_TOOLS_CONFIG");
    c
}

/// Nix retries failed HTTP transfers itself (`download-attempts`, 5 by default, with
/// exponential backoff). With one attempt, the failure tests exercise push-cache's own
/// retries, and quickly.
fn no_nix_retries(mut c: Command) -> Command {
    c.env("NIX_CONFIG", "download-attempts = 1");
    c
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

fn strings(v: &Value) -> Vec<String> {
    let mut s: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

fn narinfo_in(dir: &Path, path: &str) -> Option<NarInfo> {
    let name = nix_cache_tools::narinfo::narinfo_file_name(path).unwrap();
    let text = std::fs::read_to_string(dir.join(name)).ok()?;
    Some(NarInfo::parse(&text).unwrap())
}

/// Every narinfo in the cache directory points at a NAR file that is there.
fn assert_no_dangling_narinfo(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "narinfo") {
            let ni = NarInfo::parse(&std::fs::read_to_string(&p).unwrap()).unwrap();
            assert!(
                dir.join(&ni.url).is_file(),
                "{} points at missing {}",
                p.display(),
                ni.url
            );
            n += 1;
        }
    }
    n
}

#[test]
fn file_cache_whole_closure_signed_filtered_then_all_cached() {
    let b = build_fixture("pfile");
    let key = generate_key(&b.env, "pfile-1");
    let public = PublicKey::parse(&key.public).unwrap();
    let cache = b.env.path().join("cache");
    let to = format!("file://{}", cache.display());
    let key_file = key.secret_file.display().to_string();

    // No paths given: every ./result* link.
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--secret-key-file", &key_file],
    ));
    let err = stderr(&out);
    // The kept source is named together with the path that references it.
    assert!(
        err.lines()
            .any(|l| l.contains("warning") && l.contains(&b.kept_source) && l.contains(&b.top)),
        "{err}"
    );
    assert!(
        err.contains(&b.standalone),
        "the left-out path is listed: {err}"
    );
    // Not a terminal: one plain line per path (no bar, no escape codes), then the summary
    // with paths and NAR bytes pushed, already cached and filtered.
    for p in &b.closure {
        let lines = err
            .lines()
            .filter(|l| l.starts_with(&format!("pushing {p} (")) && l.ends_with(" B)"))
            .count();
        assert_eq!(lines, 1, "{p}: {err}");
    }
    assert!(!err.contains('\x1b') && !err.contains('\r'), "{err:?}");
    let o = stdout(&out);
    assert!(
        o.starts_with("pushed 4 paths (")
            && o.contains(&format!(
                " NAR) to {to}; 0 already cached; 1 left out by the filter"
            )),
        "{o}"
    );

    for p in &b.closure {
        let ni = narinfo_in(&cache, p).unwrap_or_else(|| panic!("no narinfo for {p}"));
        assert_eq!(&ni.store_path, p);
        assert!(
            ni.verify(&public),
            "{p}: no valid signature by {}: {:?}",
            key.public,
            ni.sigs
        );
    }
    assert!(
        narinfo_in(&cache, &b.standalone).is_none(),
        "standalone source was pushed"
    );
    assert_eq!(assert_no_dangling_narinfo(&cache), 4);

    // Second push: nothing uploaded, all reported cached; --json alone on stdout.
    let before: Vec<_> = std::fs::read_dir(cache.join("nar")).unwrap().collect();
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--secret-key-file", &key_file, "--json"],
    ));
    let j = json(&out);
    assert_eq!(j["target"], Value::String(to.clone()));
    assert!(strings(&j["pushed"]).is_empty());
    assert_eq!(strings(&j["already_cached"]), sorted(&b.closure));
    assert_eq!(strings(&j["filtered"]), std::slice::from_ref(&b.standalone));
    assert!(strings(&j["failed"]).is_empty());
    assert_eq!(j["nar_bytes_pushed"], 0);
    // The kept path and its warning are in the JSON, and nothing is said on stderr but
    // progress: the library prints nothing itself.
    assert_eq!(j["kept"][0]["path"], b.kept_source.as_str(), "{j}");
    assert_eq!(j["kept"][0]["referenced_by"], b.top.as_str(), "{j}");
    assert!(j["warnings"].to_string().contains(&b.kept_source), "{j}");
    assert!(j["filter"].is_string(), "{j}");
    let err = stderr(&out);
    assert!(
        !err.contains("warning") && !err.contains("left out by the filter"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(cache.join("nar")).unwrap().collect();
    assert_eq!(before.len(), after.len());

    // And the human summary says so.
    let out = run_ok(push_cache(&b.env, &b.work, &["--to", &to]));
    assert!(
        stdout(&out).contains("all 4 paths are already cached"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn http_cache_with_put_is_usable_by_a_fresh_store() {
    let b = build_fixture("phttp");
    let key = generate_key(&b.env, "phttp-1");
    let server = http::HttpCache::serve_writable(&b.env.path().join("served"));
    let key_file = key.secret_file.display().to_string();
    let summary = b.env.path().join("step-summary.md");
    let out = run_ok(
        push_cache(
            &b.env,
            &b.work,
            &[
                "--to",
                &server.url,
                "--secret-key-file",
                &key_file,
                "--json",
                "--summary",
                &b.top,
            ],
        )
        .env("GITHUB_STEP_SUMMARY", &summary),
    );
    let j = json(&out);
    assert_eq!(strings(&j["pushed"]), sorted(&b.closure));
    let nar_total: u64 = j["nar_bytes_pushed"].as_u64().unwrap();
    assert!(nar_total > 0);
    assert!(server.count("PUT") >= 8, "{:?}", server.requests());
    // A new cache (no nix-cache-info yet) is not asked about every path: nothing can be
    // there. The first narinfo request comes after Nix created nix-cache-info.
    let reqs = server.requests();
    let first_put = reqs.iter().position(|r| r.method == "PUT").unwrap();
    assert_eq!(reqs[first_put].path, "/nix-cache-info", "{reqs:?}");
    assert!(
        !reqs[..first_put]
            .iter()
            .any(|r| r.path.ends_with(".narinfo")),
        "{reqs:?}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("| pushed | 4 |"), "{md}");

    // A fresh chroot store substitutes the closure from it, trusting only the key.
    let chroot = b.env.path().join("chroot").display().to_string();
    run_ok(b.env.nix(&[
        "copy",
        "--from",
        &server.url,
        "--to",
        &chroot,
        "--option",
        "trusted-public-keys",
        &key.public,
        &b.top,
    ]));
    let out = run_ok(b.env.nix(&["path-info", "--store", &chroot, "-r", &b.top]));
    assert_eq!(
        sorted(&stdout(&out).lines().map(str::to_owned).collect::<Vec<_>>()),
        sorted(&b.closure)
    );
}

#[test]
fn dry_run_uploads_nothing() {
    let b = build_fixture("pdry");
    let server = http::HttpCache::serve_writable(&b.env.path().join("served"));
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--dry-run"],
    ));
    let o = stdout(&out);
    for p in &b.closure {
        assert!(
            o.lines().any(|l| l.starts_with("would push")
                && l.contains(p.as_str())
                && l.contains(" B)")),
            "{o}"
        );
    }
    assert!(o.contains("would push 4 paths"), "{o}");
    assert_eq!(server.count("PUT"), 0, "{:?}", server.requests());
    // Through `nix copy` (--via nix), the command that would run is shown instead.
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--via", "nix", "--dry-run"],
    ));
    assert!(stderr(&out).contains("would run: nix"), "{}", stderr(&out));
    assert_eq!(server.count("PUT"), 0, "{:?}", server.requests());
    // The same commands in the JSON report, for a script, and then not on stderr.
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--via", "nix", "--dry-run", "--json"],
    ));
    let j: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let would: Vec<&str> = j["would_run"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        !would.is_empty()
            && would
                .iter()
                .all(|c| c.starts_with("nix ") && c.contains(" copy ")),
        "{would:?}"
    );
    assert!(!stderr(&out).contains("would run"), "{}", stderr(&out));
    assert!(!b.env.path().join("served").join("nix-cache-info").exists());

    let dir = b.env.path().join("file-cache");
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &[
            "--to",
            &format!("file://{}", dir.display()),
            "--dry-run",
            "--json",
        ],
    ));
    assert_eq!(json(&out)["dry_run"], true);
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn transient_500_is_retried() {
    // The native pipeline retries each request; `nix copy` (--via nix) is run again for
    // what is missing.
    for via in [&[][..], &["--via", "nix"][..]] {
        let b = build_fixture("pretry");
        let fails = Arc::new(AtomicUsize::new(0));
        let f2 = fails.clone();
        // The first two NAR uploads answer 500.
        let fault: http::Fault = Arc::new(move |method: &str, path: &str| {
            (method == "PUT" && path.starts_with("/nar/") && f2.fetch_add(1, Ordering::SeqCst) < 2)
                .then_some(500)
        });
        let root = b.env.path().join("served");
        let server = http::HttpCache::serve_with_faults(&root, true, fault);
        let mut args = vec!["--to", server.url.as_str(), "--json", &b.top];
        args.extend_from_slice(via);
        let out = run_ok(no_nix_retries(push_cache(&b.env, &b.work, &args)));
        assert_eq!(
            strings(&json(&out)["pushed"]),
            sorted(&b.closure),
            "{via:?}"
        );
        // (Through `nix copy`, Nix 2.8 leaves the retry to push-cache, which says
        // "retrying what is missing"; Nix 2.34 retries the upload itself.)
        assert!(server.requests().iter().filter(|r| r.status == 500).count() >= 2);
        assert_eq!(assert_no_dangling_narinfo(&root), 4, "{via:?}");
    }
}

#[test]
fn failed_upload_leaves_no_dangling_narinfo_and_the_rest_goes() {
    let b = build_fixture("pfail");
    let mid = b
        .closure
        .iter()
        .find(|p| p.contains("-mid-"))
        .unwrap()
        .clone();
    let mid_hash = nix_cache_tools::storepath::hash_part(&mid)
        .unwrap()
        .to_owned();
    // Every upload of mid's narinfo fails: mid cannot be pushed, top (which references
    // it) must not be attempted, leaf and the kept source still go.
    let fault: http::Fault = Arc::new(move |method: &str, path: &str| {
        (method == "PUT" && path == format!("/{mid_hash}.narinfo")).then_some(500)
    });
    let root = b.env.path().join("served");
    let server = http::HttpCache::serve_with_faults(&root, true, fault);
    let out = no_nix_retries(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--json", &b.top],
    ))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(strings(&j["failed"]), sorted(&[mid.clone(), b.top.clone()]));
    let mut pushed = strings(&j["pushed"]);
    pushed.sort();
    assert_eq!(pushed.len(), 2, "{pushed:?}");
    assert!(pushed.contains(&b.kept_source));
    assert!(
        stderr(&out).contains(&format!("its reference {mid} failed")),
        "{}",
        stderr(&out)
    );
    assert_eq!(assert_no_dangling_narinfo(&root), 2);
    assert!(narinfo_in(&root, &b.top).is_none());

    // Every NAR upload fails: no narinfo at all may appear.
    let root2 = b.env.path().join("served2");
    let fault: http::Fault = Arc::new(|method: &str, path: &str| {
        (method == "PUT" && path.starts_with("/nar/")).then_some(500)
    });
    let server2 = http::HttpCache::serve_with_faults(&root2, true, fault);
    let leaf = b
        .closure
        .iter()
        .find(|p| p.contains("-leaf-"))
        .unwrap()
        .clone();
    let out = no_nix_retries(push_cache(&b.env, &b.work, &["--to", &server2.url, &leaf]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 FAILED"), "{}", stdout(&out));
    assert_eq!(assert_no_dangling_narinfo(&root2), 0);
}

/// The closure read from the store database and from `nix path-info` gives the same
/// plan: same upload order, same already-cached, filtered and kept paths, same sizes.
/// And the database source really runs no Nix process: with no `nix` on PATH a dry run
/// (which only prints the upload) still works, while `--source nix` cannot.
#[test]
fn database_and_nix_path_info_give_the_same_plan() {
    let b = build_fixture("psource");
    let key = generate_key(&b.env, "psource");
    let dir = b.env.path().join("cache");
    let leaf = b
        .closure
        .iter()
        .find(|p| p.contains("-leaf-"))
        .unwrap()
        .clone();
    nix_copy_to_file_cache(&b.env, &dir, &key, std::slice::from_ref(&leaf));
    let to = format!("file://{}", dir.display());
    let run = |source: &str| {
        let mut c = push_cache(&b.env, &b.work, &["--to", &to, "--dry-run", "--json"]);
        c.env("PUSH_CACHE_SOURCE", source);
        run_ok(c)
    };
    let (db, nix) = (run("database"), run("nix"));
    let (jdb, jnix) = (json(&db), json(&nix));
    assert_eq!(jdb, jnix, "database vs nix path-info");
    assert_eq!(strings(&jdb["already_cached"]), vec![leaf.clone()]);
    assert_eq!(strings(&jdb["filtered"]), vec![b.standalone.clone()]);
    assert_eq!(jdb["pushed"].as_array().unwrap().len(), 3);
    assert_eq!(
        jdb["pushed"].as_array().unwrap().last().unwrap(),
        &Value::from(b.top.clone()),
        "references first"
    );
    // The human output (warnings naming the kept source, sizes of what would go) too.
    let human = |source: &str| {
        let mut c = push_cache(&b.env, &b.work, &["--to", &to, "--dry-run"]);
        c.env("PUSH_CACHE_SOURCE", source);
        let out = run_ok(c);
        (stdout(&out), stderr(&out))
    };
    let (hdb, hnix) = (human("database"), human("nix"));
    assert_eq!(hdb, hnix);
    assert!(
        hdb.1.contains(&format!("pushing {}", b.kept_source)),
        "{}",
        hdb.1
    );
    assert!(hdb.0.contains(" B)"), "{}", hdb.0);

    // No nix on PATH: the database source still plans (nothing else needs Nix in a dry
    // run), `--source nix` is the missing-program error.
    let empty_bin = b.env.path().join("no-nix-bin");
    std::fs::create_dir_all(&empty_bin).unwrap();
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--dry-run", "--json", "--source", "database"],
    );
    c.env("PATH", &empty_bin);
    let out = run_ok(c);
    assert_eq!(json(&out), jdb);
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--dry-run", "--source", "nix"],
    );
    c.env("PATH", &empty_bin);
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));

    // A store that is not local cannot be read from a database: `--source database`
    // says so; `auto` falls back to Nix (which then fails on the bogus store).
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--dry-run", "--source", "database"],
    );
    c.env("NIX_REMOTE", "ssh://nowhere.invalid");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--source database: the store `ssh://nowhere.invalid` is not local"),
        "{}",
        stderr(&out)
    );
}

/// A cache nobody answers for: exit 1 before any upload, the URL named once, and what
/// to check.
#[test]
fn unreachable_cache_is_one_clear_error() {
    let b = build_fixture("punreach");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    let out = push_cache(&b.env, &b.work, &["--to", &url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let info = format!("{url}/nix-cache-info");
    assert_eq!(err.matches(&info).count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "push-cache: error: could not read the cache: {info}: Connection Failed"
        )),
        "{err}"
    );
    assert!(err.contains("check the URL (--to"), "{err}");
}

/// CI cancels a job by killing its process group. Killed with SIGKILL in the middle of
/// an upload (a NAR on its way, some paths already complete), the cache holds no
/// narinfo whose NAR or references are missing; a second run pushes the rest.
#[test]
fn killed_upload_leaves_a_consistent_cache_and_resumes() {
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let b = build_fixture("pkill");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let f2 = in_flight.clone();
    // Every NAR upload is held for a while before the server reads it: the kill lands
    // while one is on its way.
    let fault: http::Fault = Arc::new(move |method: &str, path: &str| {
        if method == "PUT" && path.starts_with("/nar/") {
            f2.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(700));
            f2.fetch_sub(1, Ordering::SeqCst);
        }
        None
    });
    let root = b.env.path().join("served");
    let server = http::HttpCache::serve_with_faults(&root, true, fault);
    // One upload worker: NARs go one by one, so a narinfo is written while the next NAR
    // is still on its way.
    let mut cmd = push_cache(&b.env, &b.work, &["--to", &server.url, "-j", "1", &b.top]);
    cmd.process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let narinfo_puts = |s: &http::HttpCache| {
        s.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(".narinfo") && r.status == 201)
            .count()
    };
    let start = Instant::now();
    while !(narinfo_puts(&server) >= 1 && in_flight.load(Ordering::SeqCst) >= 1) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no upload in flight after a narinfo: {:?}",
            server.requests()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "push-cache ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The whole process group: push-cache and its `nix copy`.
    let pgid = format!("-{}", child.id());
    run_ok(Command::new("kill").args(["-KILL", "--", &pgid]));
    let status = child.wait().unwrap();
    assert!(!status.success());
    // Let the held request finish on the server side (it may still store its NAR: a NAR
    // without a narinfo is harmless).
    std::thread::sleep(Duration::from_millis(1000));

    let present: Vec<String> = b
        .closure
        .iter()
        .filter(|p| narinfo_in(&root, p).is_some())
        .cloned()
        .collect();
    assert!(
        !present.is_empty() && present.len() < b.closure.len(),
        "killed part-way: {present:?}"
    );
    assert_eq!(assert_no_dangling_narinfo(&root), present.len());
    for p in &present {
        let ni = narinfo_in(&root, p).unwrap();
        for r in &ni.references {
            assert!(
                root.join(format!("{}.narinfo", &r[..32])).is_file(),
                "{p} is in the cache without its reference {r}"
            );
        }
    }

    // Run again: what made it counts as cached, the rest goes, the cache is complete.
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--json", &b.top],
    ));
    let j = json(&out);
    assert_eq!(strings(&j["already_cached"]), sorted(&present));
    let mut all = strings(&j["pushed"]);
    all.extend(strings(&j["already_cached"]));
    assert_eq!(sorted(&all), sorted(&b.closure));
    assert_eq!(assert_no_dangling_narinfo(&root), b.closure.len());
}

/// docs/push-cache.md names every flag of `--help` and every exit code,
/// and its `--json` example has exactly the keys the tool prints.
#[test]
fn readme_documents_every_flag_exit_code_and_json_key() {
    let section = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/push-cache.md"),
    )
    .unwrap();
    let help = stdout(&run_ok(
        Command::new(env!("CARGO_BIN_EXE_push-cache")).arg("--help"),
    ));
    for word in help.split_whitespace().filter(|w| w.starts_with("--")) {
        let flag: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if flag.len() > 2 && flag != "--help" && flag != "--version" {
            assert!(
                section.contains(&format!("`{flag}")),
                "docs/push-cache.md does not document {flag}"
            );
        }
    }
    for code in [0, 1, 2, 6, 7, 8] {
        assert!(help.contains(&format!("\n  {code}  ")), "{help}");
        assert!(
            section.contains(&format!("| {code} |")),
            "the reference does not list exit code {code}"
        );
    }
    let json_start = section.find("```json\n").unwrap() + "```json\n".len();
    let json_end = json_start + section[json_start..].find("```").unwrap();
    let example: Value = serde_json::from_str(&section[json_start..json_end]).unwrap();
    let real: Value =
        serde_json::from_str(&nix_cache_tools::push::Report::default().to_json()).unwrap();
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&example), keys(&real));
}

/// A stand-in for `cachix` / `attic` that records its argv (one per line) and stdin.
fn stand_in(bin: &Path, name: &str, record: &Path) {
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{rec}/{name}.argv'\ncat > '{rec}/{name}.stdin'\necho \"{name} stand-in done\" >&2\n",
        rec = record.display()
    );
    let p = bin.join(name);
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn cachix_and_attic_get_exact_argv_and_stdin() {
    let b = build_fixture("pcachix");
    let bin = b.env.path().join("bin");
    let rec = b.env.path().join("rec");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&rec).unwrap();
    stand_in(&bin, "cachix", &rec);
    stand_in(&bin, "attic", &rec);

    // With a token: `cachix push NAME`, closure minus the filtered path on stdin,
    // references first.
    let out = run_ok(
        push_cache(&b.env, &b.work, &["--to", "cachix:team", "--json"])
            .env("PATH", path_with(&bin))
            .env("CACHIX_AUTH_TOKEN", "secret-token"),
    );
    assert_eq!(
        std::fs::read_to_string(rec.join("cachix.argv")).unwrap(),
        "push\nteam\n"
    );
    let sent: Vec<String> = std::fs::read_to_string(rec.join("cachix.stdin"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(sorted(&sent), sorted(&b.closure));
    let pos = |s: &str| sent.iter().position(|p| p.contains(s)).unwrap();
    assert!(
        pos("-leaf-") < pos("-mid-")
            && pos("-mid-") < pos("-top-")
            && pos("-lib-source") < pos("-top-")
    );
    assert_eq!(
        strings(&json(&out)["filtered"]),
        std::slice::from_ref(&b.standalone)
    );
    assert!(!stdout(&out).contains("secret-token") && !stderr(&out).contains("secret-token"));

    // --jobs is passed on.
    run_ok(
        push_cache(&b.env, &b.work, &["--to", "cachix:team", "-j", "3"])
            .env("PATH", path_with(&bin))
            .env("CACHIX_SIGNING_KEY", "k"),
    );
    assert_eq!(
        std::fs::read_to_string(rec.join("cachix.argv")).unwrap(),
        "push\n--jobs\n3\nteam\n"
    );

    // No credentials (a fork's pull request): skipped, exit 0, cachix not run.
    std::fs::remove_file(rec.join("cachix.argv")).unwrap();
    let out =
        run_ok(push_cache(&b.env, &b.work, &["--to", "cachix:team"]).env("PATH", path_with(&bin)));
    assert!(
        stdout(&out).starts_with("push skipped: "),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("CACHIX_AUTH_TOKEN"));
    assert!(!rec.join("cachix.argv").exists());
    let out = run_ok(
        push_cache(&b.env, &b.work, &["--to", "cachix:team", "--json"])
            .env("PATH", path_with(&bin)),
    );
    assert!(
        json(&out)["skipped"]
            .as_str()
            .unwrap()
            .contains("CACHIX_AUTH_TOKEN")
    );
    // ... and an error with --require-push.
    let out = push_cache(&b.env, &b.work, &["--to", "cachix:team", "--require-push"])
        .env("PATH", path_with(&bin))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("--require-push"), "{}", stderr(&out));

    // cachix missing from PATH: a clear error saying how to get it.
    let out = push_cache(&b.env, &b.work, &["--to", "cachix:team"])
        .env("PATH", "/usr/bin:/bin")
        .env("CACHIX_AUTH_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nix shell nixpkgs#cachix"),
        "{}",
        stderr(&out)
    );

    // attic: skipped without a login; with one, `attic push --no-closure CACHE PATHS...`.
    let out = run_ok(
        push_cache(&b.env, &b.work, &["--to", "attic:srv:team"]).env("PATH", path_with(&bin)),
    );
    assert!(
        stdout(&out).contains("push skipped: no attic login"),
        "{}",
        stdout(&out)
    );
    let attic_conf = b.env.xdg_config_home.join("attic/config.toml");
    std::fs::create_dir_all(attic_conf.parent().unwrap()).unwrap();
    std::fs::write(&attic_conf, "default-server = \"srv\"\n").unwrap();
    run_ok(
        push_cache(&b.env, &b.work, &["--to", "attic:srv:team", "--no-filter"])
            .env("PATH", path_with(&bin)),
    );
    let argv: Vec<String> = std::fs::read_to_string(rec.join("attic.argv"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(argv[..3], ["push", "--no-closure", "srv:team"]);
    let mut all = b.closure.clone();
    all.push(b.standalone.clone());
    assert_eq!(sorted(&argv[3..]), sorted(&all));
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn config_stdin_installables_and_bad_key() {
    let b = build_fixture("pconf");
    let cache = b.env.path().join("cache");
    // cache.toml in a parent directory gives target and filter; CACHE_TOOLS_CONFIG too.
    let conf = b.env.path().join("cache.toml");
    std::fs::write(
        &conf,
        format!(
            "[push]\nto = \"file://{}\"\nfilter = 'leaf-'\n",
            cache.display()
        ),
    )
    .unwrap();
    let input = format!("{}\n\n{}\n", b.top, b.standalone);
    let mut c = push_cache(&b.env, &b.work, &["--stdin", "--json", "--dry-run"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["target"], format!("file://{}", cache.display()));
    // `leaf-` matches leaf, but mid references it: kept. Sources are not filtered now.
    assert!(strings(&j["filtered"]).is_empty());
    assert_eq!(strings(&j["pushed"]).len(), 5);

    // An installable: a flake in the work directory, built through nix.
    let flake_dir = b.env.path().join("flake");
    std::fs::create_dir_all(&flake_dir).unwrap();
    let tag = unique("pflake");
    std::fs::write(
        flake_dir.join("flake.nix"),
        format!(
            r#"{{ outputs = {{ self }}: {{ packages.{sys}.default = derivation {{
  name = "flaky-{tag}"; system = "{sys}"; builder = "/bin/sh";
  args = [ "-c" "echo hi > $out" ]; }}; }}; }}"#,
            sys = nix_system(&b.env)
        ),
    )
    .unwrap();
    let out = run_ok(push_cache(
        &b.env,
        &flake_dir,
        &[
            ".#default",
            "--json",
            "--dry-run",
            "--config",
            conf.to_str().unwrap(),
        ],
    ));
    let pushed = strings(&json(&out)["pushed"]);
    assert_eq!(pushed.len(), 1);
    assert!(pushed[0].ends_with(&format!("-flaky-{tag}")), "{pushed:?}");

    // A bad secret key is an error before anything is uploaded.
    let bad = b.env.path().join("bad.sec");
    std::fs::write(&bad, "mykey:c2VjcmV0").unwrap();
    let out = push_cache(
        &b.env,
        &b.work,
        &["--secret-key-file", bad.to_str().unwrap()],
    )
    .env("CACHE_TOOLS_CONFIG", &conf)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.sec"), "{}", stderr(&out));
    assert!(!cache.exists(), "something was uploaded");

    // Empty --stdin: nothing to do, exit 0.
    let out = run_ok(
        push_cache(&b.env, &b.work, &["--stdin", "--json"]).stdin(std::process::Stdio::null()),
    );
    assert!(strings(&json(&out)["pushed"]).is_empty());

    // Nothing to push: no result links and no arguments.
    let empty = b.env.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = push_cache(&b.env, &empty, &["--to", "file:///tmp/x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nix build"), "{}", stderr(&out));
    // Bad usage is exit 2.
    let out = push_cache(&b.env, &empty, &["--filter", "x", "--no-filter"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // Compression flags that cannot apply: exit 2 before anything is built or sent,
    // the flag named (not silently ignored by `nix copy`, Cachix or attic).
    for (args, says) in [
        (
            &["--to", "file:///tmp/x", "--compression-level", "99"][..],
            "--compression-level: compression level 99 is out of range for zstd: use 1..=19",
        ),
        (
            &[
                "--to",
                "file:///tmp/x",
                "--compression",
                "xz",
                "--compression-level",
                "12",
            ][..],
            "out of range for xz: use 0..=9",
        ),
        (
            &[
                "--to",
                "file:///tmp/x",
                "--via",
                "nix",
                "--compression",
                "zstd",
            ][..],
            "`?compression=zstd`",
        ),
        (
            &["--to", "ssh-ng://builder", "--compression-level", "3"][..],
            "does not upload to ssh-ng://builder",
        ),
        (
            &["--to", "cachix:team", "--compression", "xz"][..],
            "Cachix and attic compress by themselves",
        ),
    ] {
        let out = push_cache(&b.env, &b.work, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // A --to that is no push target, a --filter that is no regex: exit 2, the flag named
    // with what to write instead.
    let out = push_cache(&b.env, &b.work, &["--to", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("'--to <URI>'"), "{err}");
    assert!(err.contains("`nowhere` is not a push target"), "{err}");
    assert!(err.contains("file:///"), "{err}");
    let out = push_cache(&b.env, &b.work, &["--to", "file:///tmp/x", "--filter", "("])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("'--filter <REGEX>'"), "{err}");
    assert!(err.contains("unclosed group"), "{err}");
    assert!(
        err.contains("matched against each full store path"),
        "{err}"
    );
}

fn nix_system(env: &NixEnv) -> String {
    let out =
        run_ok(
            env.command("nix-instantiate")
                .args(["--eval", "--expr", "builtins.currentSystem"]),
        );
    stdout(&out).trim().trim_matches('"').to_owned()
}

/// On a terminal (a pty from util-linux's `script`, always on Debian) progress is a bar
/// redrawn in place, not one line per path; the final summary is still printed.
#[test]
fn progress_bar_only_on_a_terminal() {
    require_nix();
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("pty"));
    let cache = env.path().join("cache");
    let to = format!("file://{}", cache.display());
    let line = format!(
        "{} --to {to} --no-filter {top}",
        env!("CARGO_BIN_EXE_push-cache")
    );
    let mut c = env.command("script");
    c.args(["-qec", &line, "/dev/null"]).env("TERM", "xterm");
    let text = stdout(&run_ok(c));
    assert!(
        text.contains("4/4 paths"),
        "no progress bar on a terminal:\n{text}"
    );
    assert!(
        text.contains("\x1b[2K"),
        "the bar is not redrawn in place:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("pushing /nix/store/")),
        "plain per-path lines on a terminal:\n{text}"
    );
    assert!(text.contains("pushed 4 paths"), "{text}");
    assert_eq!(closure(&env, std::slice::from_ref(&top)).len(), 4);
}

/// [`support::run_bounded`], and how long the run took.
fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> (Output, std::time::Duration) {
    let start = std::time::Instant::now();
    let out = support::run_bounded(&mut cmd, limit.as_secs().max(1));
    (out, start.elapsed())
}

/// A `nix` stand-in first on PATH that records that it ran, then runs the real one.
fn recording_nix(env: &NixEnv) -> (String, PathBuf) {
    let bin = env.path().join("rec-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = env.path().join("nix-ran");
    let real = real_nix().display().to_string();
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}' \"$@\"\n",
        record.display(),
        real.trim()
    );
    let p = bin.join("nix");
    std::fs::write(&p, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path_with(&bin), record)
}

/// A `nix-cache-info` that is there but is none — garbage, not text, no `StoreDir`,
/// 5 GB, endless — is "not a binary cache" naming the URL: exit 1, nothing uploaded,
/// `nix copy` never run, and the body is not read past a small cap. One that trickles is cut
/// by the time limit.
#[test]
fn a_nix_cache_info_that_is_none_is_not_a_binary_cache() {
    use std::time::Duration;
    let b = build_fixture("pnotcache");
    let (path, record) = recording_nix(&b.env);
    let bodies: Vec<(&str, http::Answer)> = vec![
        (
            "garbage",
            http::Answer::Body(b"<html><body>It works!</body></html>\n".to_vec()),
        ),
        (
            "not text",
            http::Answer::Body(vec![0u8, 159, 146, 150, 1, 2]),
        ),
        (
            "no StoreDir",
            http::Answer::Body(b"WantMassQuery: 1\n".to_vec()),
        ),
        ("5 GB", http::Answer::Huge),
        ("endless", http::Answer::Endless),
    ];
    for (what, answer) in bodies {
        let root = b
            .env
            .path()
            .join(format!("served-{}", what.replace(' ', "-")));
        let hostile: http::Hostile =
            Arc::new(move |_m: &str, p: &str| (p == "/nix-cache-info").then(|| answer.clone()));
        let server = http::HttpCache::serve_hostile(&root, true, hostile);
        let mut c = push_cache(&b.env, &b.work, &["--to", &server.url, &b.top]);
        c.env("PATH", &path);
        let (out, took) = run_bounded(c, Duration::from_secs(60));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains(&format!("{} is not a binary cache", server.url)),
            "{what}: {err}"
        );
        assert!(err.contains("nothing was uploaded"), "{what}: {err}");
        assert!(took < Duration::from_secs(20), "{what}: {took:?}");
        assert_eq!(server.count("PUT"), 0, "{what}: {:?}", server.requests());
        // Nothing handed to `nix copy`. (Reading the closure may fall back to `nix
        // path-info` when other tests' builds keep changing the store database: seen
        // once on Nix 2.26 under the full parallel suite.)
        let ran = std::fs::read_to_string(&record).unwrap_or_default();
        assert!(!ran.contains(" copy "), "{what}: nix ran: {ran:?}");
        assert!(
            server.hostile_bytes_sent() < 64 << 20,
            "{what}: {} bytes sent",
            server.hostile_bytes_sent()
        );
    }
    // The same for a file:// cache.
    let dir = b.env.path().join("file-cache");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nix-cache-info"), "this is not a cache\n").unwrap();
    let to = format!("file://{}", dir.display());
    let mut c = push_cache(&b.env, &b.work, &["--to", &to, &b.top]);
    c.env("PATH", &path);
    let (out, _) = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{to} is not a binary cache")),
        "{}",
        stderr(&out)
    );
    assert!(
        !std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains(" copy ")
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);

    // A trickle (a byte every 200 ms, for ever) is cut by --timeout.
    let hostile: http::Hostile = Arc::new(|_m: &str, p: &str| {
        (p == "/nix-cache-info").then(|| http::Answer::Trickle(b"StoreDir: /nix/store\n".to_vec()))
    });
    let server = http::HttpCache::serve_hostile(&b.env.path().join("trickle"), true, hostile);
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--timeout", "3", &b.top],
    );
    c.env("PATH", &path);
    let (out, took) = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(stderr(&out).contains("nix-cache-info"), "{}", stderr(&out));
    assert!(
        !std::fs::read_to_string(&record)
            .unwrap_or_default()
            .contains(" copy ")
    );
}

/// Presence is proven: a narinfo that is garbage, truncated, too big or another path's
/// does not count as cached. In a file:// cache such a narinfo is replaced by a good
/// one; over HTTP `nix copy` cannot replace it (it reads it first and stops), so the path
/// fails with that reason — never "already cached".
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn narinfos_that_prove_nothing_are_not_already_cached() {
    use std::time::Duration;
    let b = build_fixture("pproof");
    let key = generate_key(&b.env, "pproof-1");
    let public = PublicKey::parse(&key.public).unwrap();
    let key_file = key.secret_file.display().to_string();
    let find = |s: &str| b.closure.iter().find(|p| p.contains(s)).unwrap().clone();
    let (leaf, mid) = (find("-leaf-"), find("-mid-"));
    let name = |p: &str| nix_cache_tools::narinfo::narinfo_file_name(p).unwrap();

    // file://: garbage for leaf, truncated for mid, another path's narinfo for top,
    // 2 MiB for the source.
    let dir = b.env.path().join("cache");
    nix_copy_to_file_cache(&b.env, &dir, &key, std::slice::from_ref(&leaf));
    let good = std::fs::read_to_string(dir.join(name(&leaf))).unwrap();
    // Leaf's narinfo is a link to a file of secrets (anyone who may write the cache
    // directory can make one): never followed, never quoted.
    let secret = b.env.path().join("netrc.secret");
    std::fs::write(&secret, "machine h login u password PLANTED_N1\n").unwrap();
    std::fs::remove_file(dir.join(name(&leaf))).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join(name(&leaf))).unwrap();
    // Mid's is cut short, then a line that is no narinfo line: not quoted either.
    let mut truncated: String = good.lines().take(2).map(|l| format!("{l}\n")).collect();
    truncated.push_str("password PLANTED_N2\n");
    std::fs::write(dir.join(name(&mid)), truncated).unwrap();
    std::fs::write(dir.join(name(&b.top)), &good).unwrap();
    std::fs::write(dir.join(name(&b.kept_source)), "x".repeat(2 << 20)).unwrap();
    let to = format!("file://{}", dir.display());
    let mut c = push_cache(
        &b.env,
        &b.work,
        &[
            "--to",
            &to,
            "--secret-key-file",
            &key_file,
            "--json",
            &b.top,
        ],
    );
    c.env("NIX_CONFIG", "download-attempts = 1");
    let (out, _) = run_bounded(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains("PLANTED_N"),
        "a cache file's content was printed: {all}"
    );
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap(),
        "machine h login u password PLANTED_N1\n",
        "the link's target is never written"
    );
    let j = json(&out);
    assert!(strings(&j["already_cached"]).is_empty(), "{j}");
    assert_eq!(strings(&j["pushed"]), sorted(&b.closure), "{j}");
    // The warning is in the JSON (the library prints nothing itself).
    assert!(j["warnings"].to_string().contains("replacing"), "{j}");
    for p in &b.closure {
        let ni = narinfo_in(&dir, p).unwrap();
        assert_eq!(&ni.store_path, p);
        assert!(ni.verify(&public), "{p}");
    }
    assert_eq!(assert_no_dangling_narinfo(&dir), 4);

    // HTTP: leaf's narinfo is garbage, mid's is 2 MiB. Neither counts as cached.
    let root = b.env.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let (gl, gm) = (format!("/{}", name(&leaf)), format!("/{}", name(&mid)));
    let hostile: http::Hostile = Arc::new(move |m: &str, p: &str| {
        if m != "GET" && m != "HEAD" {
            None
        } else if p == gl {
            Some(http::Answer::Body(b"garbage".to_vec()))
        } else if p == gm {
            Some(http::Answer::Body(vec![b'x'; 2 << 20]))
        } else {
            None
        }
    });
    let server = http::HttpCache::serve_hostile(&root, true, hostile);
    // `nix copy` (--via nix) reads such a narinfo before uploading and stops: those
    // paths fail at once with the reason, and what references them is not attempted.
    let c = no_nix_retries(push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--via", "nix", "--json", &b.top],
    ));
    let (out, _) = run_bounded(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let j = json(&out);
    assert!(strings(&j["already_cached"]).is_empty(), "{j}");
    assert_eq!(
        strings(&j["failed"]),
        sorted(&[leaf.clone(), mid.clone(), b.top.clone()]),
        "{j}"
    );
    assert_eq!(strings(&j["pushed"]), vec![b.kept_source.clone()], "{j}");
    let reasons = j["failures"].as_array().unwrap();
    let reason_of = |p: &str| {
        reasons
            .iter()
            .find(|f| f["path"] == p)
            .unwrap_or_else(|| panic!("no reason for {p}: {j}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        reason_of(&leaf).contains("not `Key: value`"),
        "{}",
        reason_of(&leaf)
    );
    assert!(
        reason_of(&mid).contains("larger than"),
        "{}",
        reason_of(&mid)
    );
    assert!(
        reason_of(&b.top).contains("not attempted"),
        "{}",
        reason_of(&b.top)
    );
    // The native pipeline writes narinfos itself: it replaces the ones that prove
    // nothing, and the push completes.
    let c = push_cache(&b.env, &b.work, &["--to", &server.url, "--json", &b.top]);
    let (out, _) = run_bounded(c, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(
        strings(&j["pushed"]),
        sorted(&[leaf.clone(), mid.clone(), b.top.clone()]),
        "{j}"
    );
    assert!(j["warnings"].to_string().contains("proves nothing"), "{j}");
    for p in [&leaf, &mid] {
        let ni = narinfo_in(&root, p).unwrap();
        assert_eq!(&ni.store_path, p);
    }
}

/// A narinfo that parses and names the path but describes other contents (another
/// NarHash: a corrupted or forged entry; Nix would fail on it with "hash mismatch") is
/// no proof the cache holds this store's path: it is pushed again, and the cache's
/// narinfo then says what this store holds.
#[test]
fn a_narinfo_for_other_contents_is_not_already_cached() {
    use std::time::Duration;
    let b = build_fixture("pother");
    let dir = b.env.path().join("cache");
    let to = format!("file://{}", dir.display());
    let (out, _) = run_bounded(
        push_cache(&b.env, &b.work, &["--to", &to, "--json", &b.top]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let leaf = b
        .closure
        .iter()
        .find(|p| p.contains("-leaf-"))
        .unwrap()
        .clone();
    let file = dir.join(nix_cache_tools::narinfo::narinfo_file_name(&leaf).unwrap());
    let good = support::set_narinfo_field(&file, "NarHash", support::FOREIGN_NAR_HASH);
    let (out, _) = run_bounded(
        push_cache(&b.env, &b.work, &["--to", &to, "--json", &b.top]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j = json(&out);
    assert!(!strings(&j["already_cached"]).contains(&leaf), "{j}");
    assert!(strings(&j["pushed"]).contains(&leaf), "{j}");
    assert!(j["warnings"].to_string().contains("other contents"), "{j}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), good);
}

/// A narinfo whose NAR is gone from the cache (a lifecycle rule, a half-synced mirror, a
/// hand-deleted file) is no proof: Nix finds the narinfo, then fails to download. Such a
/// path is pushed again, over `file://` and over HTTP, and its NAR is there afterwards.
#[test]
fn a_narinfo_whose_nar_is_gone_is_not_already_cached() {
    use std::time::Duration;
    let b = build_fixture("pnonar");
    let dir = b.env.path().join("cache");
    let to = format!("file://{}", dir.display());
    let push = |to: &str| {
        let (out, _) = run_bounded(
            push_cache(&b.env, &b.work, &["--to", to, "--json", &b.top]),
            Duration::from_secs(120),
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        json(&out)
    };
    push(&to);
    let leaf = b.closure.iter().find(|p| p.contains("-leaf-")).unwrap();
    let mid = b.closure.iter().find(|p| p.contains("-mid-")).unwrap();
    for (path, to) in [(leaf, to.clone()), (mid, String::new())] {
        let nar = dir.join(narinfo_in(&dir, path).unwrap().url);
        std::fs::remove_file(&nar).unwrap();
        let server;
        let to = if to.is_empty() {
            server = http::HttpCache::serve_writable(&dir);
            server.url.clone()
        } else {
            to
        };
        let j = push(&to);
        assert!(!strings(&j["already_cached"]).contains(path), "{to}: {j}");
        assert!(strings(&j["pushed"]).contains(path), "{to}: {j}");
        assert!(j["warnings"].to_string().contains("NAR"), "{to}: {j}");
        assert_eq!(assert_no_dangling_narinfo(&dir), 4);
        assert_eq!(strings(&j["already_cached"]).len(), 3, "{to}: {j}");
    }
}

/// A cache that answers every upload with HTTP 500 (and Nix's default download-attempts):
/// the push ends within --timeout, exit 3, and each failed path says why — the HTTP
/// status and the first line of the server's answer — in text, --json and Markdown.
/// A cache that never finishes answering an upload is cut at --timeout.
#[test]
fn every_put_500_ends_within_the_timeout_with_reasons() {
    use std::time::Duration;
    let b = build_fixture("p500");
    // An existing cache (a new one fails at once: Nix cannot write nix-cache-info).
    let root = b.env.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let hostile: http::Hostile = Arc::new(|m: &str, _p: &str| {
        (m == "PUT").then(|| {
            // The server's first line tries to drive the terminal (retitle it, clear
            // it) and to break out of the summary's collapsed list with HTML.
            http::Answer::Status(
                500,
                b"Internal Server Error: disk quota exceeded \x1b]0;pwned\x07\x1b[2J</details><img src=//evil.example/x.png>\nsecond line\n".to_vec(),
            )
        })
    });
    let server = http::HttpCache::serve_hostile(&root, true, hostile);
    let summary = b.env.path().join("summary.md");
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--timeout", "15", "--summary", &b.top],
    );
    c.env("GITHUB_STEP_SUMMARY", &summary);
    let (out, took) = run_bounded(c, Duration::from_secs(90));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    eprintln!("every PUT 500, --timeout 15: {took:?}");
    assert!(took < Duration::from_secs(22), "{took:?}");
    let leaf = b.closure.iter().find(|p| p.contains("-leaf-")).unwrap();
    let line = err
        .lines()
        .find(|l| l.starts_with(&format!("failed: {leaf}: ")))
        .unwrap_or_else(|| panic!("no reason for {leaf}: {err}"));
    assert!(line.contains("HTTP error 500"), "{line}");
    assert!(
        line.contains("the server answered: Internal Server Error: disk quota exceeded"),
        "{line}"
    );
    assert!(!line.contains("second line"), "{line}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("HTTP error 500") && md.contains("disk quota exceeded"),
        "{md}"
    );
    for text in [&err, &stdout(&out), &md] {
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(
            !text.contains("<img") && !text.contains("</details><img"),
            "{text}"
        );
    }

    let c = push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--timeout", "40", "--json", &b.top],
    );
    let (out, _) = run_bounded(c, Duration::from_secs(90));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(strings(&j["failed"]).len(), 4, "{j}");
    let f = j["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == leaf.as_str())
        .unwrap();
    assert!(
        f["reason"].as_str().unwrap().contains("HTTP error 500"),
        "{f}"
    );

    // Uploads never answered (a trickle): cut at --timeout 4.
    let hostile: http::Hostile =
        Arc::new(|m: &str, _p: &str| (m == "PUT").then(|| http::Answer::Trickle(b" ".to_vec())));
    let slow = b.env.path().join("slow");
    std::fs::create_dir_all(&slow).unwrap();
    std::fs::write(slow.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let server = http::HttpCache::serve_hostile(&slow, true, hostile);
    let c = push_cache(
        &b.env,
        &b.work,
        &["--to", &server.url, "--timeout", "4", "--json", &b.top],
    );
    let (out, took) = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(took < Duration::from_secs(12), "{took:?}");
    let j = json(&out);
    assert_eq!(strings(&j["failed"]).len(), 4, "{j}");
    assert!(j["failures"].to_string().contains("time limit"), "{j}");
}

/// A `nix copy` killed by a signal (here SIGSEGV, like the OOM killer's SIGKILL) is not
/// run again, and the reason says how it ended.
#[test]
fn an_upload_killed_by_a_signal_is_not_retried() {
    use std::time::Duration;
    let b = build_fixture("psig");
    let bin = b.env.path().join("sig-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = b.env.path().join("copies");
    let real = real_nix().display().to_string();
    let script = format!(
        "#!/bin/sh\ncase \" $* \" in *' copy '*) echo copy >> '{}'; kill -SEGV $$;; esac\nexec '{}' \"$@\"\n",
        record.display(),
        real.trim()
    );
    std::fs::write(bin.join("nix"), script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("nix"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = b.env.path().join("cache");
    let to = format!("file://{}", dir.display());
    let mut c = push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--via", "nix", "--json", &b.top],
    );
    c.env("PATH", path_with(&bin));
    let (out, _) = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&record).unwrap(), "copy\n");
    let j = json(&out);
    assert_eq!(strings(&j["failed"]).len(), 4, "{j}");
    assert!(
        j["failures"].to_string().contains("killed by signal 11"),
        "{j}"
    );
}

/// Secrets never appear in any output: credentials in the --to URL (text, errors,
/// --json, Markdown, $GITHUB_STEP_SUMMARY, dry-run), and the content of a file given as
/// --secret-key-file that is no key (an SSH private key). `/dev/zero` and a FIFO as key
/// file are clear errors without hanging; a key file others may read gets a warning.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn planted_secrets_never_appear_in_any_output() {
    use std::time::Duration;
    let b = build_fixture("psecret");
    let root = b.env.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    // A server that echoes the Authorization header it got (base64 of user:PLANTEDPW).
    const ECHOED: &str = "dXNlcjpQTEFOVEVEUFc=";
    let hostile: http::Hostile = Arc::new(|m: &str, _p: &str| {
        (m == "PUT").then(|| {
            http::Answer::Status(500, format!("nope: you sent Basic {ECHOED}\n").into_bytes())
        })
    });
    let server = http::HttpCache::serve_hostile(&root, true, hostile);
    let with_creds = server.url.replace("http://", "http://user:PLANTEDPW@");
    let summary = b.env.path().join("summary.md");
    let scan = |what: &str, out: &Output| {
        for (name, text) in [("stdout", stdout(out)), ("stderr", stderr(out))] {
            assert!(
                !text.contains("PLANTED") && !text.contains(ECHOED),
                "{what}: secret in {name}:\n{text}"
            );
        }
    };
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "https://user:PLANTEDPW@127.0.0.1:{}",
        l.local_addr().unwrap().port()
    );
    drop(l);
    let garbage_root = b.env.path().join("garbage");
    std::fs::create_dir_all(&garbage_root).unwrap();
    std::fs::write(garbage_root.join("nix-cache-info"), "<html>\n").unwrap();
    let garbage = http::HttpCache::serve(&garbage_root);
    let garbage_creds = garbage.url.replace("http://", "http://PLANTEDTOKEN@");
    let runs: Vec<(&str, Vec<&str>, Option<i32>)> = vec![
        (
            "text",
            vec!["--to", &with_creds, "--summary", "--timeout", "30"],
            Some(6),
        ),
        (
            "json",
            vec![
                "--to",
                &with_creds,
                "--json",
                "--summary",
                "--timeout",
                "30",
            ],
            Some(6),
        ),
        (
            "dry-run",
            vec!["--to", &with_creds, "--dry-run", "--summary"],
            Some(0),
        ),
        (
            "unreachable",
            vec!["--to", &dead, "--json", "--summary"],
            Some(1),
        ),
        (
            "not a cache",
            vec!["--to", &garbage_creds, "--summary"],
            Some(1),
        ),
        (
            "s3",
            vec![
                "--to",
                "s3://AKIAX:PLANTEDPW@bucket?region=x",
                "--summary",
                "--timeout",
                "30",
            ],
            None,
        ),
        (
            "ssh",
            vec![
                "--to",
                "ssh-ng://user:PLANTEDPW@127.0.0.1:1",
                "--summary",
                "--timeout",
                "30",
            ],
            None,
        ),
    ];
    for (what, mut args, code) in runs {
        args.push(&b.top);
        let mut c = push_cache(&b.env, &b.work, &args);
        c.env("GITHUB_STEP_SUMMARY", &summary);
        let c = no_nix_retries(c);
        let (out, _) = run_bounded(c, Duration::from_secs(90));
        if let Some(code) = code {
            assert_eq!(out.status.code(), Some(code), "{what}: {}", stderr(&out));
        }
        assert!(!out.status.success() || what == "dry-run", "{what}");
        scan(what, &out);
    }
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(!md.contains("PLANTED") && !md.contains(ECHOED), "{md}");
    assert!(md.contains("user:<redacted>@127.0.0.1"), "{md}");

    // Key files that are no key.
    let ssh = b.env.path().join("id_ed25519");
    std::fs::write(
        &ssh,
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQPLANTEDKEY\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    let fifo = b.env.path().join("key.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let dir = b.env.path().join("cache");
    let to = format!("file://{}", dir.display());
    for key in [ssh.clone(), PathBuf::from("/dev/zero"), fifo.clone()] {
        let k = key.display().to_string();
        let c = push_cache(
            &b.env,
            &b.work,
            &["--to", &to, "--secret-key-file", &k, &b.top],
        );
        let (out, took) = run_bounded(c, Duration::from_secs(30));
        assert_eq!(out.status.code(), Some(1), "{k}: {}", stderr(&out));
        assert!(took < Duration::from_secs(10), "{k}: {took:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("the secret key file `{k}` is unusable")),
            "{err}"
        );
        assert!(
            !err.contains("PLANTED") && !err.contains("OPENSSH"),
            "{err}"
        );
        assert!(!dir.exists(), "{k}: something was uploaded");
    }
    // A good key others may read: a warning, and the push goes.
    let key = generate_key(&b.env, "psecret-1");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key.secret_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let k = key.secret_file.display().to_string();
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--secret-key-file", &k, &b.top],
    ));
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning: the secret key file") && l.contains("0644")),
        "{err}"
    );
    let secret = std::fs::read_to_string(&key.secret_file).unwrap();
    let b64 = secret.split_once(':').unwrap().1.trim();
    assert!(!err.contains(b64) && !stdout(&out).contains(b64));
}

/// A cache that trickles its narinfos (a byte every 200 ms, never done) holds the
/// queries no longer than --timeout: the run ends soon after, exit 3, nothing counted
/// as cached.
#[test]
fn trickling_narinfos_are_cut_at_the_timeout() {
    use std::time::Duration;
    let b = build_fixture("ptrickle");
    let root = b.env.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let hostile: http::Hostile = Arc::new(|m: &str, p: &str| {
        (m == "GET" && p.ends_with(".narinfo"))
            .then(|| http::Answer::Trickle(b"StorePath: /nix/store/".to_vec()))
    });
    let server = http::HttpCache::serve_hostile(&root, true, hostile);
    let c = push_cache(
        &b.env,
        &b.work,
        &[
            "--to",
            &server.url,
            "--timeout",
            "4",
            "--json",
            "-j",
            "1",
            &b.top,
        ],
    );
    let (out, took) = run_bounded(c, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(took < Duration::from_secs(12), "{took:?}");
    let j = json(&out);
    assert!(strings(&j["already_cached"]).is_empty(), "{j}");
    assert_eq!(strings(&j["failed"]).len(), 4, "{j}");
    assert!(j["failures"].to_string().contains("time limit"), "{j}");
}

/// A key given as the store URI's `?secret-key=` (as `nix copy` takes it) signs what the
/// native pipeline writes too; it was ignored, and narinfos went out unsigned.
#[test]
fn a_secret_key_in_the_uri_signs_the_native_push() {
    let b = build_fixture("purikey");
    let key = generate_key(&b.env, "urikey.example-1");
    let dir = b.env.path().join("cache");
    let to = format!(
        "file://{}?compression=xz&secret-key={}",
        dir.display(),
        key.secret_file.display()
    );
    let out = run_ok(push_cache(
        &b.env,
        &b.work,
        &["--to", &to, "--json", &b.top],
    ));
    assert_eq!(json(&out)["compression"], "xz");
    let public = nix_cache_tools::keys::PublicKey::parse(&key.public).unwrap();
    for p in &b.closure {
        let ni = narinfo_in(&dir, p).unwrap();
        assert!(ni.verify(&public), "{p} not signed: {:?}", ni.sigs);
    }
}

/// A store path that is itself a symlink (to another store path, or out of the store)
/// is pushed as itself: it was resolved to its target, which got pushed instead.
#[test]
fn a_store_path_that_is_a_symlink_is_pushed_as_itself() {
    let b = build_fixture("plink");
    let paths = build(
        &b.env,
        r#"let x = mk "plink-target" "mkdir $out; echo x > $out/f"; in [
          (mk "plink-to-store" "ln -s ${x}/f $out")
          (mk "plink-out" "ln -s /bin/sh $out")
        ]"#,
    );
    let dir = b.env.path().join("cache");
    let to = format!("file://{}", dir.display());
    for p in &paths {
        let out = run_ok(push_cache(&b.env, &b.work, &["--to", &to, "--json", p]));
        let pushed = strings(&json(&out)["pushed"]);
        assert!(pushed.contains(p), "{p} not pushed: {pushed:?}");
    }
}

/// With `--json`, errors are JSON on stdout too: a bad command line (exit 2) and an
/// error before uploading (exit 1), each naming what is wrong; stderr says the same.
#[test]
fn json_errors_are_json() {
    require_nix();
    let env = NixEnv::new();
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    for (args, code, says) in [
        (&["--json", "--to", "not a target"][..], 2, "--to"),
        (
            &["--json", "--to", "file:///tmp/x"][..],
            1,
            "nothing to push",
        ),
    ] {
        let out = push_cache(&env, env.path(), args).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let j = json(&out);
        assert_eq!(j["exit_code"], code, "{j}");
        assert!(j["error"].as_str().unwrap().contains(says), "{j}");
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
}
