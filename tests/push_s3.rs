//! push-cache to S3 (`s3://`), against a real S3 server that checks AWS Signature V4
//! (`s3s-fs`, see support/s3.rs), with the real Nix substituting from the bucket's
//! public endpoint.

// Helpers outside #[test] functions unwrap too (clippy.toml allows it only inside them).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use support::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
use support::*;

fn push_cache(env: &NixEnv, cwd: &Path, args: &[&str]) -> Command {
    let mut c = env.command(env!("CARGO_BIN_EXE_push-cache"));
    c.current_dir(cwd)
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .env_remove("CACHE_TOOLS_CONFIG");
    c
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr:\n{}", stdout(out), stderr(out)))
}

/// A narinfo for each of `paths` is in the bucket directory.
fn assert_narinfos_in(bucket_dir: &Path, paths: &[String]) {
    for p in paths {
        let name = nix_cache_tools::narinfo::narinfo_file_name(p).unwrap();
        assert!(bucket_dir.join(name).is_file(), "no narinfo for {p}");
    }
}

/// Every file under `dir`, relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// No credentials: skipped (exit 0); wrong ones: refused, naming S3's answer, nothing
/// written; right ones (from the environment, then from a profile): the closure lands,
/// signed, a 12 MiB NAR in 5 MiB parts, and a fresh store substitutes all of it from the
/// bucket's public endpoint trusting only the key; a profile of ~/.aws/credentials
/// (`profile=`) signs too, and finds everything already there.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn s3_push_is_signed_skipped_or_refused_and_substitutable() {
    require_nix();
    let env = NixEnv::new();
    let tag = unique("s3");
    // A NAR of 12 MiB that does not compress: more than two parts of 5 MiB.
    let expr = format!(
        r#"let
  leaf = mk "leaf-{tag}" "mkdir $out; echo leaf > $out/data";
  big = mk "big-{tag}" "mkdir $out; head -c 12582912 /dev/urandom > $out/blob";
in mk "top-{tag}" "mkdir $out; echo ${{leaf}} ${{big}} > $out/refs""#
    );
    let top = build(&env, &expr).remove(0);
    let closure = closure(&env, std::slice::from_ref(&top));
    assert_eq!(closure.len(), 3, "{closure:?}");
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    let key = generate_key(&env, "s3-test-1");
    let key_file = key.secret_file.display().to_string();

    let root = env.path().join("s3");
    let bucket_dir = root.join("nixcache");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let private = S3Server::start(&root, Some((ACCESS_KEY, SECRET_KEY)));
    let public = S3Server::start(&root, None);
    let uri = private.uri("nixcache", "&multipart-chunk-size=5242880");

    // 1. No credentials at all: skipped, exit 0, nothing in the bucket.
    let out = run_ok(push_cache(
        &env,
        env.path(),
        &["--json", "--to", &uri, &top],
    ));
    let j = json(&out);
    assert!(
        j["skipped"]
            .as_str()
            .unwrap_or_default()
            .contains("no S3 credentials"),
        "{j}"
    );
    assert!(files(&bucket_dir).is_empty(), "{:?}", files(&bucket_dir));
    // ... and an error with --require-push.
    let out = push_cache(&env, env.path(), &["--require-push", "--to", &uri, &top])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // 2. Wrong secret: refused, S3's reason named, no narinfo written, no secret shown.
    let wrong = "wrong-secret-0123456789abcdef";
    let out = push_cache(&env, env.path(), &["--json", "--to", &uri, &top])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", wrong)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong secret was accepted");
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("the bucket refused the request (403 SignatureDoesNotMatch")
            && text.contains("nothing was uploaded"),
        "{text}"
    );
    assert_no_secret(&text, &[wrong, ACCESS_KEY], "a refused S3 push");
    assert!(
        !files(&bucket_dir).iter().any(|f| f.ends_with(".narinfo")),
        "{:?}",
        files(&bucket_dir)
    );

    // 3. Right credentials from the environment: everything, signed.
    let out = run_ok(
        push_cache(
            &env,
            env.path(),
            &["--json", "--to", &uri, "--secret-key-file", &key_file, &top],
        )
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    );
    let j = json(&out);
    let mut pushed: Vec<String> = j["pushed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    pushed.sort();
    let mut want = closure.clone();
    want.sort();
    assert_eq!(pushed, want, "{j}");
    assert_no_secret(&stdout(&out), &[SECRET_KEY, ACCESS_KEY], "an S3 push");
    let stored = files(&bucket_dir);
    assert!(stored.contains(&"nix-cache-info".to_owned()), "{stored:?}");
    assert_eq!(
        stored.iter().filter(|f| f.ends_with(".narinfo")).count(),
        3,
        "{stored:?}"
    );

    // The 12 MiB NAR went up in three parts: S3 gives a multipart object an ETag that
    // ends in -<parts>.
    let big_nar = stored
        .iter()
        .find(|f| {
            f.starts_with("nar/") && std::fs::metadata(bucket_dir.join(f)).unwrap().len() > 10 << 20
        })
        .unwrap_or_else(|| panic!("no big NAR in {stored:?}"));
    let etag = head_etag(public.port, &format!("/nixcache/{big_nar}"));
    assert!(
        etag.ends_with("-3\""),
        "ETag of a multipart upload of 3 parts: {etag}"
    );

    // 4. A fresh store substitutes the closure from the public endpoint (plain HTTP),
    //    trusting only the cache's key: every NAR, the multipart one included, is whole.
    let fresh = env.path().join("fresh").display().to_string();
    run_ok(env.nix(&[
        "copy",
        "--from",
        &public.http_url("nixcache"),
        "--to",
        &fresh,
        "--option",
        "trusted-public-keys",
        &key.public,
        &top,
    ]));
    let out = run_ok(env.nix(&["path-info", "--store", &fresh, "-r", &top]));
    let mut got: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    got.sort();
    assert_eq!(got, want);

    // 5. A profile of ~/.aws/credentials: again, and now all of it is already there.
    let aws = env.home.join(".aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = nope\naws_secret_access_key = nope-nope\n\n\
             [team]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    let out = run_ok(push_cache(
        &env,
        env.path(),
        &["--json", "--to", &format!("{uri}&profile=team"), &top],
    ));
    let j = json(&out);
    assert_eq!(j["already_cached"].as_array().unwrap().len(), 3, "{j}");
}

/// The ETag header of a HEAD request to the server at 127.0.0.1:`port`.
fn head_etag(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag in {answer}"))
}

/// Every file in `dir` (not below it) whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// A push killed (SIGKILL) in the middle of a multipart upload leaves no narinfo without
/// its NAR; the next push from this machine aborts the unfinished upload (S3 would keep
/// its parts forever), says so, and completes the closure.
#[test]
fn a_push_killed_mid_multipart_is_cleaned_up_by_the_next_one() {
    require_nix();
    let env = NixEnv::new();
    let tag = unique("s3kill");
    let expr = format!(
        r#"let
  big = mk "big-{tag}" "mkdir $out; head -c 67108864 /dev/urandom > $out/blob";
in mk "top-{tag}" "mkdir $out; echo ${{big}} > $out/refs""#
    );
    let top = build(&env, &expr).remove(0);
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    let root = env.path().join("s3");
    let bucket_dir = root.join("killcache");
    std::fs::create_dir_all(&bucket_dir).unwrap();
    let server = S3Server::start(&root, Some((ACCESS_KEY, SECRET_KEY)));
    let uri = server.uri("killcache", "&multipart-chunk-size=5242880");
    let push = || {
        let mut c = push_cache(&env, env.path(), &["--json", "--to", &uri, &top]);
        c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
        c
    };

    // Killed as soon as the first part is on the server.
    let mut child = push()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while named(&root, ".upload_id-").is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before a part was uploaded"
        );
        assert!(std::time::Instant::now() < deadline, "no part was uploaded");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(named(&root, ".upload-").len(), 1, "one upload in progress");
    let journal = env.home.join(".cache/push-cache/s3-uploads");
    assert_eq!(named(&journal, "").len(), 1, "the upload is journalled");
    // No narinfo without its NAR (here: none at all, the big NAR came first).
    for f in files(&bucket_dir)
        .iter()
        .filter(|f| f.ends_with(".narinfo"))
    {
        let text = std::fs::read_to_string(bucket_dir.join(f)).unwrap();
        let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
        assert!(bucket_dir.join(url).is_file(), "{f} without {url}");
    }

    // The next push aborts it and completes the closure.
    let out = run_ok(push());
    let j = json(&out);
    assert_eq!(j["pushed"].as_array().unwrap().len(), 2, "{j}");
    let warnings = j["warnings"].to_string();
    assert!(
        warnings.contains("aborted 1 multipart upload"),
        "{warnings}"
    );
    assert!(
        named(&root, ".upload-").is_empty(),
        "{:?}",
        named(&root, ".upload")
    );
    assert!(
        named(&root, ".upload_id-").is_empty(),
        "parts left: {:?}",
        named(&root, ".upload_id-")
    );
    assert!(named(&journal, "").is_empty(), "{:?}", named(&journal, ""));
}

/// S3 answers "503 SlowDown" when a bucket is asked too fast: every such answer is
/// retried after a pause that grows, and the push completes, all of it signed.
#[test]
fn slow_down_answers_are_retried_with_a_growing_pause() {
    require_nix();
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("slow"));
    let closure = closure(&env, std::slice::from_ref(&top));
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    let root = env.path().join("s3");
    std::fs::create_dir_all(root.join("nixcache")).unwrap();
    let server = S3Server::start(&root, Some((ACCESS_KEY, SECRET_KEY)));
    let proxy = support::s3::SlowDownProxy::start(server.port, 2);
    let uri = format!(
        "s3://nixcache?endpoint=127.0.0.1:{}&scheme=http&region=us-east-1",
        proxy.port
    );
    let start = std::time::Instant::now();
    let mut c = push_cache(
        &env,
        env.path(),
        &["--json", "--no-filter", "--to", &uri, &top],
    );
    c.env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let out = run_bounded(&mut c, 120);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json(&out);
    assert_eq!(j["pushed"].as_array().unwrap().len(), closure.len(), "{j}");
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    // Every object was refused twice, then stored; the second pause was longer.
    let seen = proxy.seen();
    let puts: std::collections::BTreeSet<&str> = seen
        .iter()
        .filter(|s| s.method == "PUT")
        .map(|s| s.path.as_str())
        .collect();
    assert!(puts.len() >= 2 * closure.len(), "{puts:?}");
    for p in &puts {
        let tries: Vec<&support::s3::Seen> = seen
            .iter()
            .filter(|s| s.method == "PUT" && s.path == *p)
            .collect();
        assert_eq!(tries.len(), 3, "{p}: {tries:?}");
        assert!(tries[0].slowed && tries[1].slowed && !tries[2].slowed);
        let first = tries[1].at - tries[0].at;
        let second = tries[2].at - tries[1].at;
        assert!(second > first, "{p}: pauses {first:?} then {second:?}");
    }
    assert_narinfos_in(&root.join("nixcache"), &closure);
}

/// Virtual-host addressing (`addressing-style=virtual`: `BUCKET.HOST/KEY`, as AWS wants
/// it) with the credentials of the profile `AWS_PROFILE` names, in the credentials file
/// `AWS_SHARED_CREDENTIALS_FILE` names. The names resolve through a private /etc/hosts
/// (a mount namespace), and a recording proxy shows the requests' form.
#[test]
fn virtual_host_addressing_with_the_aws_profile_of_the_environment() {
    require_nix();
    assert!(
        is_root(),
        "this test binds a private /etc/hosts: run it as root"
    );
    let env = NixEnv::new();
    let top = build_small_closure(&env, &unique("vhost"));
    let closure = closure(&env, std::slice::from_ref(&top));
    std::fs::write(env.path().join("cache.toml"), "").unwrap();
    let root = env.path().join("s3");
    std::fs::create_dir_all(root.join("nixcache")).unwrap();
    // s3s-fs matches the Host header with its port against --domain.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let domain = format!("s3.test:{}", listener.local_addr().unwrap().port());
    let server = S3Server::start_with_domain(&root, Some((ACCESS_KEY, SECRET_KEY)), &domain);
    let proxy = support::s3::SlowDownProxy::start_on(listener, server.port, 0);
    let hosts = env.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost s3.test nixcache.s3.test\n").unwrap();
    let creds = env.path().join("aws-credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n\n[team]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
    )
    .unwrap();
    let uri = format!(
        "s3://nixcache?endpoint=s3.test:{}&scheme=http&region=us-east-1&addressing-style=virtual",
        proxy.port
    );
    let mut c = env.command("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#)
        .arg("sh")
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_push-cache"))
        .args(["--json", "--no-filter", "--to", &uri, &top])
        .current_dir(env.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("CACHE_TOOLS_CONFIG")
        .env("AWS_PROFILE", "team")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds);
    let out = run_bounded(&mut c, 120);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json(&out)["pushed"].as_array().unwrap().len(),
        closure.len()
    );
    // Addressed by host name: no request path starts with the bucket.
    let seen = proxy.seen();
    assert!(seen.iter().any(|s| s.method == "PUT"), "{seen:?}");
    for s in &seen {
        assert!(
            !s.path.starts_with("/nixcache"),
            "path-style request: {s:?}"
        );
    }
    assert_narinfos_in(&root.join("nixcache"), &closure);
}
