//! Integration tests for cache-analytics, against the real Nix: every number the tool
//! reports is compared with what `nix path-info`, `nix-store --gc --print-dead` and
//! `nix-store --gc --print-roots` say about the same store.
#![allow(clippy::unwrap_used)]

#[path = "support/analytics_store.rs"]
mod analytics_store;
mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Output;
use support::{NixEnv, require_nix, run_ok, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_cache-analytics");

/// A copy of the binary inside the test's directory, which `nobody` can run wherever the
/// checkout lives (CI may build under a home directory other users cannot enter).
fn binary_for_nobody(env: &NixEnv) -> String {
    let dst = env.path().join("cache-analytics");
    std::fs::copy(BIN, &dst).unwrap();
    std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dst.to_str().unwrap().to_owned()
}

fn analytics(env: &NixEnv, args: &[&str]) -> Output {
    env.command(BIN).args(args).output().unwrap()
}

fn analytics_json(env: &NixEnv, args: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(args);
    let out = analytics(env, &a);
    assert!(
        out.status.success(),
        "cache-analytics {a:?} failed ({}):\n{}",
        out.status,
        support::stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", stdout(&out)))
}

/// Copies `path` and its closure into the chroot store at `dir` (local builds are
/// unsigned, hence `--no-check-sigs`).
fn copy_to_chroot(env: &NixEnv, dir: &Path, path: &str) {
    run_ok(env.nix(&[
        "copy",
        "--no-check-sigs",
        "--to",
        &format!("local?root={}", dir.display()),
        path,
    ]));
}

/// Every path `nix path-info ARGS --json` describes, as `path -> its JSON object`, from
/// either JSON shape (an array with `path` fields before 2.19, an object keyed by path
/// after). Read here independently of the library's parser, so a bug there cannot hide
/// in the comparison.
fn nix_path_info(env: &NixEnv, store: &str, args: &[&str]) -> BTreeMap<String, Value> {
    let mut c = env.nix(&["path-info", "--store", store, "--json"]);
    c.args(args);
    match serde_json::from_str(&stdout(&run_ok(c))).unwrap() {
        Value::Array(a) => a
            .into_iter()
            .map(|o| (o["path"].as_str().unwrap().to_owned(), o))
            .collect(),
        Value::Object(m) => m.into_iter().filter(|(_, o)| !o.is_null()).collect(),
        _ => panic!("unexpected path-info JSON"),
    }
}

/// `path -> (narSize, references)` for every valid path, as Nix reports it.
fn nix_all(env: &NixEnv, store: &str) -> BTreeMap<String, (u64, Vec<String>)> {
    nix_path_info(env, store, &["--all"])
        .into_iter()
        .map(|(p, o)| (p, (o["narSize"].as_u64().unwrap(), strs(&o["references"]))))
        .collect()
}

/// `nix path-info -S` closure sizes of `paths`. Asked with `--all`: Nix 2.8 reads a
/// `.drv` named on the command line as "its outputs", not as the path itself.
fn nix_closure_sizes(env: &NixEnv, store: &str, paths: &[String]) -> BTreeMap<String, u64> {
    let m: BTreeMap<String, u64> = nix_path_info(env, store, &["--all", "-S"])
        .into_iter()
        .filter(|(p, _)| paths.contains(p))
        .map(|(p, o)| (p, o["closureSize"].as_u64().unwrap()))
        .collect();
    assert_eq!(m.len(), paths.len(), "Nix knows every path asked for");
    m
}

fn print_dead(env: &NixEnv, store: &str) -> BTreeSet<String> {
    let out = run_ok(
        env.command("nix-store")
            .args(["--store", store, "--gc", "--print-dead"]),
    );
    stdout(&out).lines().map(str::to_owned).collect()
}

/// Each listed root's `freed_if_deleted` is what Nix's collector would find dead with
/// that root's links deleted (and nothing else changed): the root's links are moved
/// away, `nix-store --gc --print-dead` asked, and the links put back. (Before that
/// change, the same test with the closure size instead fails: roots share paths.)
fn assert_freed_matches_nix(env: &NixEnv, store: &str, report: &Value) {
    let sizes = nix_all(env, store);
    let before = print_dead(env, store);
    let entries = report["largest_closures"].as_array().unwrap();
    assert!(!entries.is_empty());
    // Listed by what deleting them frees, most first.
    let freed_bytes: Vec<u64> = entries
        .iter()
        .map(|e| e["freed_if_deleted"]["nar_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        freed_bytes.windows(2).all(|w| w[0] >= w[1]),
        "{freed_bytes:?}"
    );
    // What each shares most with another listed root: Nix's closures intersected.
    let closure_of = |p: &str| -> BTreeSet<String> {
        let out = run_ok(env.command("nix-store").args(["--store", store, "-qR", p]));
        stdout(&out).lines().map(str::to_owned).collect()
    };
    let closures: Vec<BTreeSet<String>> = entries
        .iter()
        .map(|e| closure_of(e["path"].as_str().unwrap()))
        .collect();
    for (a, e) in entries.iter().enumerate() {
        let common: Vec<u64> = (0..entries.len())
            .map(|b| {
                if a == b {
                    0
                } else {
                    closures[a]
                        .intersection(&closures[b])
                        .map(|p| sizes[p].0)
                        .sum()
                }
            })
            .collect();
        let best = common.iter().copied().max().unwrap_or(0);
        let w = &e["shares_most_with"];
        if best == 0 {
            assert!(w.is_null(), "{e}");
        } else {
            assert_eq!(w["nar_bytes"].as_u64(), Some(best), "{e}");
            let b = entries.iter().position(|x| x["path"] == w["path"]).unwrap();
            assert_eq!(common[b], best);
        }
    }
    for e in entries {
        let links: Vec<std::path::PathBuf> = strs(&e["roots"]).iter().map(Into::into).collect();
        // Out of every directory the collector scans (a link anywhere in profiles/ is a
        // root, whatever its name).
        let away = |i: usize| Path::new(store).join(format!("moved-away-{i}"));
        for (i, l) in links.iter().enumerate() {
            std::fs::rename(l, away(i)).unwrap();
        }
        // Nix removes an auto/ root whose link target is gone: put those back too.
        let auto = Path::new(store).join("nix/var/nix/gcroots/auto");
        let auto_links: Vec<_> = std::fs::read_dir(&auto)
            .map(|rd| {
                rd.flatten()
                    .map(|e| (e.path(), std::fs::read_link(e.path()).unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let after = print_dead(env, store);
        for (i, l) in links.iter().enumerate() {
            std::fs::rename(away(i), l).unwrap();
        }
        for (link, target) in auto_links {
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(target, link).unwrap();
            }
        }
        let freed: Vec<&String> = after.difference(&before).collect();
        let bytes: u64 = freed.iter().map(|p| sizes[*p].0).sum();
        assert_eq!(
            (
                e["freed_if_deleted"]["paths"].as_u64(),
                e["freed_if_deleted"]["nar_bytes"].as_u64()
            ),
            (Some(freed.len() as u64), Some(bytes)),
            "{}: Nix frees {freed:?}",
            e["path"]
        );
    }
}

/// `(link, path)` of every root `nix-store --gc --print-roots` lists.
fn print_roots(env: &NixEnv, store: &str) -> BTreeSet<(String, String)> {
    let out = run_ok(
        env.command("nix-store")
            .args(["--store", store, "--gc", "--print-roots"]),
    );
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        // Nix 2.34 prints the link in quotes: `"/tmp/x/result" -> /nix/store/...`.
        .map(|(a, b)| {
            let a = a
                .strip_prefix('"')
                .and_then(|a| a.strip_suffix('"'))
                .unwrap_or(a);
            (a.to_owned(), b.to_owned())
        })
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Checks every store number of `report` against Nix on `store`.
fn assert_matches_nix(env: &NixEnv, store: &str, report: &Value, top: usize) {
    let all = nix_all(env, store);
    let total: u64 = all.values().map(|(s, _)| s).sum();
    assert_eq!(report["store"]["paths"].as_u64().unwrap(), all.len() as u64);
    assert_eq!(report["store"]["nar_bytes"].as_u64().unwrap(), total);
    let drv: u64 = all
        .iter()
        .filter(|(p, _)| p.ends_with(".drv"))
        .map(|(_, (s, _))| s)
        .sum();
    assert_eq!(report["store"]["drv"]["nar_bytes"].as_u64().unwrap(), drv);

    // Largest paths: the same sizes as Nix's, in order, each path with its own size.
    let mut sizes: Vec<u64> = all.values().map(|(s, _)| *s).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let lp = report["largest_paths"].as_array().unwrap();
    assert_eq!(lp.len(), top.min(all.len()));
    for (k, e) in lp.iter().enumerate() {
        let p = e["path"].as_str().unwrap();
        assert_eq!(e["nar_size"].as_u64().unwrap(), all[p].0, "{p}");
        assert_eq!(e["nar_size"].as_u64().unwrap(), sizes[k], "rank {k}");
    }

    // Roots: exactly what nix-store --gc --print-roots lists.
    let nix_roots = print_roots(env, store);
    let rooted: BTreeSet<String> = nix_roots.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        report["gc"]["root_paths"].as_u64().unwrap(),
        rooted.len() as u64
    );
    assert_eq!(
        report["gc"]["roots"].as_u64().unwrap(),
        nix_roots.len() as u64
    );

    // Largest closures: N rooted paths (ordered by what deleting them frees, checked
    // against Nix by assert_freed_matches_nix), each with Nix's closure size and links.
    let closures = nix_closure_sizes(env, store, &rooted.iter().cloned().collect::<Vec<_>>());
    let lc = report["largest_closures"].as_array().unwrap();
    assert_eq!(lc.len(), top.min(rooted.len()));
    let freed: Vec<u64> = lc
        .iter()
        .map(|e| e["freed_if_deleted"]["nar_bytes"].as_u64().unwrap())
        .collect();
    assert!(freed.windows(2).all(|w| w[0] >= w[1]), "{freed:?}");
    for e in lc {
        let p = e["path"].as_str().unwrap();
        assert_eq!(e["closure_size"].as_u64().unwrap(), closures[p], "{p}");
        let links: BTreeSet<String> = strs(&e["roots"]).into_iter().collect();
        let nix_links: BTreeSet<String> = nix_roots
            .iter()
            .filter(|(_, t)| t == p)
            .map(|(l, _)| l.clone())
            .collect();
        assert_eq!(links, nix_links, "links of {p}");
        assert!(links.contains(e["root"].as_str().unwrap()));
    }

    // Garbage: the same set as nix-store --gc --print-dead, bytes from Nix's sizes.
    let dead = print_dead(env, store);
    let ours: BTreeSet<String> = strs(&report["gc"]["dead"]).into_iter().collect();
    assert_eq!(ours.len(), dead.len(), "dead path count");
    assert_eq!(ours, dead);
    assert_eq!(
        report["gc"]["dead_paths"].as_u64().unwrap(),
        dead.len() as u64
    );
    let dead_bytes: u64 = dead.iter().map(|p| all[p].0).sum();
    assert_eq!(report["gc"]["dead_nar_bytes"].as_u64().unwrap(), dead_bytes);
}

fn synthetic(env: &NixEnv, n: usize, roots: usize) -> String {
    let dir = env.path().join("synthetic");
    analytics_store::make(&dir, n, 42, roots, true);
    let state = dir.join("nix/var/nix");
    // An indirect root (auto/ -> a `result` link -> store path) and a profile, as
    // nix-build and nix-env leave them, next to mkstore's direct roots.
    let all = nix_all(env, dir.to_str().unwrap());
    let some: Vec<&String> = all.keys().take(3).collect();
    let proj = env.path().join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::os::unix::fs::symlink(some[0], proj.join("result")).unwrap();
    std::os::unix::fs::symlink(proj.join("result"), state.join("gcroots/auto/indirect")).unwrap();
    let prof = state.join("profiles/per-user/root");
    std::fs::create_dir_all(&prof).unwrap();
    std::os::unix::fs::symlink(some[1], prof.join("profile-1-link")).unwrap();
    std::os::unix::fs::symlink("profile-1-link", prof.join("profile")).unwrap();
    // A stale indirect root: nothing.
    std::os::unix::fs::symlink(proj.join("gone"), state.join("gcroots/auto/stale")).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[test]
fn synthetic_store_numbers_equal_nix() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 2000, 25);
    let report = analytics_json(&env, &["--store", &store, "--top", "12", "--list-dead"]);
    assert_eq!(report["source"]["kind"], "sqlite");
    assert_eq!(report["store"]["exists"], true);
    assert_matches_nix(&env, &store, &report, 12);
    // The indirect root is shown by its `result` link, the one to delete.
    let proj_result = env.path().join("proj/result").display().to_string();
    let lc = report["largest_closures"].as_array().unwrap();
    let all_links: Vec<String> = lc.iter().flat_map(|e| strs(&e["roots"])).collect();
    let full = analytics_json(&env, &["--store", &store, "--top", "1000"]);
    let every: Vec<String> = full["largest_closures"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| strs(&e["roots"]))
        .collect();
    assert!(every.contains(&proj_result), "{every:?}");
    assert!(all_links.len() <= every.len());
}

#[test]
fn nix_path_info_fallback_gives_identical_numbers() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 800, 10);
    let db = analytics_json(&env, &["--store", &store, "--list-dead"]);
    let out = env
        .command(BIN)
        .args(["--store", &store, "--format", "json", "--list-dead"])
        .env("CACHE_ANALYTICS_SOURCE", "nix")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let nix: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(nix["source"]["kind"], "nix-path-info");
    assert!(
        nix["source"]["command"]
            .as_str()
            .unwrap()
            .contains("path-info")
    );
    for key in ["store", "largest_paths", "largest_closures", "gc"] {
        let (mut a, mut b) = (db[key].clone(), nix[key].clone());
        if key == "store" {
            for v in [&mut a, &mut b] {
                v.as_object_mut().unwrap().remove("filesystem");
            }
        }
        assert_eq!(
            a, b,
            "section {key} differs between the database and nix path-info"
        );
    }
    assert_matches_nix(&env, &store, &nix, 10);
}

#[test]
fn real_store_built_in_the_test_equals_nix() {
    require_nix();
    let env = NixEnv::new();
    let tag = support::unique("ana");
    let kept = support::build_small_closure(&env, &format!("{tag}-kept"));
    let gone = support::build_small_closure(&env, &format!("{tag}-gone"));
    let deriver = |p: &str| {
        let d = stdout(&run_ok(env.command("nix-store").args([
            "-q",
            "--deriver",
            p,
        ])))
        .trim()
        .to_owned();
        assert!(d.ends_with(".drv"), "{d}");
        d
    };
    let (kept_drv, gone_drv) = (deriver(&kept), deriver(&gone));
    let dir = env.path().join("chroot");
    let to = format!("local?root={}", dir.display());
    run_ok(env.nix(&["copy", "--no-check-sigs", "--to", &to, &kept, &gone]));
    // The derivations too (`--derivation`: a .drv on Nix 2.8's command line otherwise
    // means its outputs), so DerivationOutputs and derivers are there for the GC rules.
    run_ok(env.nix(&[
        "copy",
        "--derivation",
        "--no-check-sigs",
        "--to",
        &to,
        &kept_drv,
        &gone_drv,
    ]));
    let state = dir.join("nix/var/nix");
    // `kept` rooted the way nix-build does (auto/ -> ./result), one path of `gone` by a
    // profile; the rest of `gone` is garbage, and so is its derivation.
    let result = env.path().join("result");
    std::os::unix::fs::symlink(&kept, &result).unwrap();
    std::fs::create_dir_all(state.join("gcroots/auto")).unwrap();
    std::os::unix::fs::symlink(&result, state.join("gcroots/auto/0123abc")).unwrap();
    let leaf = support::closure(&env, std::slice::from_ref(&gone))
        .into_iter()
        .find(|p| p.contains("-leaf-"))
        .unwrap();
    std::fs::create_dir_all(state.join("profiles")).unwrap();
    std::os::unix::fs::symlink(&leaf, state.join("profiles/test-1-link")).unwrap();
    let store = dir.to_str().unwrap();
    let report = analytics_json(&env, &["--store", store, "--list-dead"]);
    assert_eq!(report["source"]["kind"], "sqlite");
    assert_matches_nix(&env, store, &report, 10);
    assert_freed_matches_nix(&env, store, &report);
    let lc = report["largest_closures"].as_array().unwrap();
    let k = lc.iter().find(|e| e["path"] == kept.as_str()).unwrap();
    assert_eq!(k["root"], result.display().to_string());
    assert!(report["store"]["drv"]["paths"].as_u64().unwrap() >= 8);
    assert!(report["store"]["source_paths"]["paths"].as_u64().unwrap() >= 2);
    // keep-derivations (Nix's default): the derivation of a live output stays.
    let dead = strs(&report["gc"]["dead"]);
    assert!(
        !dead.contains(&kept_drv),
        "{kept_drv} is the deriver of a live root"
    );
    assert!(dead.contains(&gone_drv) && dead.contains(&gone));
    // The `nix path-info` fallback (derivers from its JSON) reaches the same verdicts.
    let out = env
        .command(BIN)
        .args([
            "--store",
            store,
            "--format",
            "json",
            "--list-dead",
            "--source",
            "nix",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let via_nix: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via_nix["source"]["kind"], "nix-path-info");
    for key in ["largest_paths", "largest_closures", "gc"] {
        assert_eq!(report[key], via_nix[key], "{key}");
    }

    // The collector's settings come from nix.conf, for Nix and for the tool alike.
    let base = support::BASE_SYSTEM_CONF;
    std::fs::write(
        env.system_conf(),
        // Nix takes `0`/`no`/`1`/`yes` for booleans as well.
        format!("{base}gc-keep-derivations = 0\n"),
    )
    .unwrap();
    let report = analytics_json(&env, &["--store", store, "--list-dead"]);
    assert_eq!(report["gc"]["keep_derivations"], false);
    assert_matches_nix(&env, store, &report, 10);
    assert!(strs(&report["gc"]["dead"]).contains(&kept_drv));
    // keep-outputs: a rooted derivation keeps its outputs.
    std::fs::write(env.system_conf(), format!("{base}keep-outputs = yes\n")).unwrap();
    std::os::unix::fs::symlink(&gone_drv, state.join("gcroots/drv-root")).unwrap();
    let report = analytics_json(&env, &["--store", store, "--list-dead"]);
    assert_eq!(report["gc"]["keep_outputs"], true);
    assert_matches_nix(&env, store, &report, 10);
    assert_freed_matches_nix(&env, store, &report);
    assert!(!strs(&report["gc"]["dead"]).contains(&gone));
}

#[test]
fn markdown_and_summary_parse() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 300, 5);
    let json = analytics_json(&env, &["--store", &store]);
    let summary = env.path().join("summary.md");
    std::fs::write(&summary, "# earlier step\n").unwrap();
    let out = env
        .command(BIN)
        .args(["--store", &store, "--format", "markdown", "--summary"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let md = stdout(&out);
    let first = md.lines().next().unwrap();
    assert!(
        first.starts_with("## ✅ ") || first.starts_with("## ⚠️ "),
        "{first}"
    );
    let problems = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .count();
    assert_eq!(first.starts_with("## ✅"), problems == 0);
    let sections: Vec<&str> = md.lines().filter(|l| l.starts_with("### ")).collect();
    assert!(sections.contains(&"### Configuration"), "{sections:?}");
    for s in ["Store", "Largest paths", "Largest closures", "Garbage"] {
        assert!(
            md.contains(&format!("<details><summary><b>{s}</b>")),
            "{s} missing in {md}"
        );
    }
    // Table cells parse back to the JSON numbers.
    let row = md
        .lines()
        .find(|l| l.starts_with("| All valid paths |"))
        .unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[2].replace(',', "").parse::<u64>().unwrap(),
        json["store"]["paths"].as_u64().unwrap()
    );
    let first_rows: Vec<Vec<&str>> = md
        .lines()
        .filter(|l| l.starts_with("| 1 | `"))
        .map(|l| l.split('|').map(str::trim).collect())
        .collect();
    assert_eq!(
        first_rows.len(),
        2,
        "first row of the largest paths and closures tables"
    );
    let lp0 = &json["largest_paths"][0];
    assert_eq!(
        first_rows[0][2],
        format!("`{}`", lp0["path"].as_str().unwrap())
    );
    assert_eq!(
        first_rows[0][3],
        nix_cache_tools::output::human_bytes(lp0["nar_size"].as_u64().unwrap())
    );
    let lc0 = &json["largest_closures"][0];
    assert_eq!(
        first_rows[1][2],
        format!("`{}`", lc0["root"].as_str().unwrap())
    );
    assert_eq!(
        first_rows[1][3],
        format!("`{}`", lc0["path"].as_str().unwrap())
    );
    assert_eq!(
        first_rows[1][4].replace(',', "").parse::<u64>().unwrap(),
        lc0["closure_paths"].as_u64().unwrap()
    );
    let dead_line = md
        .lines()
        .find(|l| l.starts_with("**") && l.contains("dead paths"))
        .unwrap();
    let n: u64 = dead_line
        .trim_start_matches("**")
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    assert_eq!(n, json["gc"]["dead_paths"].as_u64().unwrap());
    // Every finding has a collapsed "what to do".
    let findings = json["findings"].as_array().unwrap().len();
    assert_eq!(
        md.matches("<details><summary>What to do</summary>").count(),
        findings
    );
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    // --summary appended exactly the Markdown.
    let written = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(written, format!("# earlier step\n{md}"));
}

/// A chroot store holding a small closure `top` (rooted by `gcroots/app`) and one dead
/// closure; a `file://` cache holding `top`'s closure. Returns (store, top, cache URL).
fn report_fixture(env: &NixEnv) -> (String, String, String) {
    let top = support::build_small_closure(env, &support::unique("md"));
    let key = support::generate_key(env, "md-1");
    let cache = env.path().join("cache");
    support::nix_copy_to_file_cache(env, &cache, &key, std::slice::from_ref(&top));
    let url = format!("file://{}", cache.display());
    // A chroot store holding the closure, one GC root on `top`, and one dead path.
    let dir = env.path().join("chroot");
    let dead = support::build_small_closure(env, &support::unique("mddead"));
    for p in [&top, &dead] {
        copy_to_chroot(env, &dir, p);
    }
    let roots = dir.join("nix/var/nix/gcroots");
    std::fs::create_dir_all(&roots).unwrap();
    std::os::unix::fs::symlink(&top, roots.join("app")).unwrap();
    let store = dir.to_str().unwrap().to_owned();
    (store, top, url)
}

#[test]
fn job_summary_leads_with_coverage_and_folds_the_store() {
    require_nix();
    let env = NixEnv::new();
    let (store, top, url) = report_fixture(&env);
    let store = store.as_str();
    let args = [
        "--store",
        store,
        "--closure",
        top.as_str(),
        "--cache",
        url.as_str(),
        "--cache",
        "http://127.0.0.1:9/",
    ];
    let json = analytics_json(&env, &args);
    let mut a = vec!["--format", "markdown"];
    a.extend_from_slice(&args);
    let out = analytics(&env, &a);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let md = stdout(&out);
    let lines: Vec<&str> = md.lines().collect();
    // Headline, then the verdict: the best cache's hit rate, the unmeasured one counted.
    assert!(lines[0].starts_with("## "), "{md}");
    let verdict = lines[2];
    assert!(
        verdict.starts_with("**") && verdict.ends_with(".**"),
        "{verdict}"
    );
    assert!(verdict.contains(&format!("100.0% in {url}")), "{verdict}");
    assert!(verdict.contains("1 cache not measured"), "{verdict}");
    // Coverage and configuration come first, open; store, paths, closures, garbage
    // after them, folded.
    let pos = |needle: &str| {
        md.find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{md}"))
    };
    assert!(pos("### Cache coverage") < pos("### Configuration"));
    assert!(pos("### Configuration") < pos("<details><summary><b>Store</b>"));
    for folded in ["Store", "Largest paths", "Largest closures", "Garbage"] {
        let at = pos(&format!("<details><summary><b>{folded}</b>"));
        assert!(pos("### Cache coverage") < at, "{folded}");
    }
    assert!(md.contains("⚠️ not measured"), "{md}");
    assert_eq!(
        md.matches("<details>").count(),
        md.matches("</details>").count()
    );
    // The Mermaid pie: its slices add up to the store's NAR bytes (in its unit, rounded).
    let pie: Vec<&str> = md
        .split("```mermaid\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap()
        .lines()
        .collect();
    assert!(pie[0].starts_with("pie showData title"), "{pie:?}");
    let sum: f64 = pie[1..]
        .iter()
        .map(|l| l.rsplit(':').next().unwrap().trim().parse::<f64>().unwrap())
        .sum();
    let unit = match pie[0].rsplit('(').next().unwrap() {
        "KiB)" => 1024.0,
        "MiB)" => 1_048_576.0,
        "GiB)" => 1_073_741_824.0,
        u => panic!("unit {u}"),
    };
    let total = json["store"]["nar_bytes"].as_f64().unwrap() / unit;
    assert!(
        (sum - total).abs() < 0.05 * pie.len() as f64,
        "{sum} vs {total}: {pie:?}"
    );
    assert!(
        pie.iter().any(|l| l.contains("\"garbage\"")) || json["gc"]["dead_nar_bytes"] == 0,
        "{pie:?}"
    );
    // --sections keeps only what is asked, in the table too.
    let mut a = vec!["--format", "markdown", "--sections", "coverage,config"];
    a.extend_from_slice(&args);
    let only = stdout(&analytics(&env, &a));
    assert!(
        only.contains("### Cache coverage") && only.contains("### Configuration"),
        "{only}"
    );
    assert!(
        !only.contains("<b>Store</b>") && !only.contains("Largest"),
        "{only}"
    );
    let mut a = vec!["--sections", "store"];
    a.extend_from_slice(&args);
    let table = stdout(&analytics(&env, &a));
    assert!(
        table.contains("Store") && !table.contains("Cache coverage"),
        "{table}"
    );
    let bad = analytics(&env, &["--sections", "coverage,stor"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = support::stderr(&bad);
    assert!(
        err.contains("`stor` is not a section") && err.contains("closures"),
        "{err}"
    );
}

#[test]
fn terminal_tables_fit_60_80_and_120_columns() {
    require_nix();
    let env = NixEnv::new();
    let (store, top, url) = report_fixture(&env);
    let old = support::build_small_closure(&env, &support::unique("mdold"));
    copy_to_chroot(&env, Path::new(&store), &old);
    for cols in [60, 80, 120] {
        let line = format!(
            "stty cols {cols} rows 50; {BIN} --store {store} --closure {top} --cache {url} --compare {old} {top}"
        );
        let mut c = env.command("script");
        c.args(["-qec", &line, "/dev/null"]).env("TERM", "xterm");
        let text = stdout(&run_ok(c)).replace('\r', "");
        assert!(text.contains("Largest closures (GC roots)"), "{text}");
        for l in text.lines() {
            let width = l.chars().count();
            // A command is kept whole for copying, and one word (a URL) cannot wrap.
            let exempt = l.trim_start().starts_with("$ ") || l.split_whitespace().count() <= 1;
            assert!(
                width <= cols || exempt,
                "{cols} columns: {width}-wide line {l:?} in\n{text}"
            );
        }
        // Store paths in tables by their names: no hash is cut in two.
        let name = top.rsplit('/').next().unwrap().split_once('-').unwrap().1;
        assert!(text.contains(name), "{cols}: {text}");
        // Nor in prose: only a command, kept whole for copying, names a path in full.
        for l in text.lines().filter(|l| !l.trim_start().starts_with("$ ")) {
            assert!(
                !l.contains("/nix/store/"),
                "{cols}: a whole store path outside a command: {l}\n{text}"
            );
        }
        // Below 100 columns the prose tables are blocks; at 120 they are tables.
        let blocks = !text.contains("┆ hit rate");
        assert_eq!(blocks, cols < 100, "{cols}: {text}");
    }
}

#[test]
fn table_output_has_no_colour_off_a_terminal() {
    require_nix();
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = synthetic(&env, 200, 5);
    for no_color in [true, false] {
        let mut c = env.command(BIN);
        c.args(["--store", &store]);
        if !no_color {
            c.env_remove("NO_COLOR");
        }
        let out = run_ok(c);
        let text = stdout(&out);
        assert!(!text.contains('\x1b'), "escape codes in:\n{text}");
        assert!(text.starts_with("✅ Nix store report"), "{text}");
        assert!(text.contains("Largest closures (GC roots)"));
    }
}

/// On a real terminal (a pty from util-linux's `script`, which Debian always has) the
/// table's headings are bold; `NO_COLOR` turns that off there too.
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    require_nix();
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = synthetic(&env, 200, 5);
    let line = format!("{BIN} --store {store} --top 2");
    let on_tty = |no_color: bool| {
        let mut c = env.command("script");
        c.args(["-qec", &line, "/dev/null"]).env("TERM", "xterm");
        if !no_color {
            c.env_remove("NO_COLOR");
        }
        stdout(&run_ok(c))
    };
    let coloured = on_tty(false);
    assert!(
        coloured.contains("\x1b[1m"),
        "no bold headings on a terminal:\n{coloured}"
    );
    assert!(
        coloured.contains("Largest closures (GC roots)"),
        "{coloured}"
    );
    let plain = on_tty(true);
    assert!(
        !plain.contains('\x1b'),
        "escape codes with NO_COLOR:\n{plain}"
    );
    assert!(plain.contains("Largest closures (GC roots)"), "{plain}");
}

#[test]
fn missing_and_empty_stores_are_reported_not_crashes() {
    require_nix();
    // A configuration with no findings, so `--check` only sees the store.
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let missing = env.path().join("no-such-store");
    let m = missing.to_str().unwrap();
    let report = analytics_json(&env, &["--store", m]);
    assert_eq!(report["store"]["exists"], false);
    assert_eq!(report["store"]["paths"], 0);
    assert_eq!(report["source"]["kind"], "missing");
    let f = &report["findings"][0];
    assert_eq!(f["severity"], "warning");
    assert!(
        f["message"].as_str().unwrap().contains("no Nix store"),
        "{f}"
    );
    assert!(!missing.exists(), "the tool must not create a store");
    let out = analytics(&env, &["--store", m, "--check"]);
    assert_eq!(out.status.code(), Some(9), "--check fails on the warning");
    let out = analytics(&env, &["--store", m]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("no Nix store"));

    // A file is not a store: say so, naming the flag, instead of "no store there".
    let file = env.path().join("not-a-dir.txt");
    std::fs::write(&file, "x").unwrap();
    let fl = file.to_str().unwrap();
    let report = analytics_json(&env, &["--store", fl]);
    let f = &report["findings"][0];
    assert_eq!(f["severity"], "error", "{f}");
    let text = format!("{} {}", f["message"], f["what_to_do"]);
    assert!(
        text.contains(&format!("`--store {fl}`")) && text.contains("is a file, not a directory"),
        "{f}"
    );
    assert_eq!(
        analytics(&env, &["--store", fl, "--check"]).status.code(),
        Some(9)
    );
    // A directory that holds no store says where the database was looked for.
    let plain = env.path().join("plain-dir");
    std::fs::create_dir_all(&plain).unwrap();
    let report = analytics_json(&env, &["--store", plain.to_str().unwrap()]);
    let msg = report["findings"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        msg.contains("no Nix store") && msg.contains("nix/var/nix/db/db.sqlite"),
        "{msg}"
    );

    // A bare word is a store type to Nix, not a directory: the error says so once, with
    // the spelling that works.
    let bare = env.path().join("mystore");
    analytics_store::make(&bare, 3, 1, 0, false);
    let out = env
        .command(BIN)
        .args(["--store", "mystore"])
        .current_dir(env.path())
        .output()
        .unwrap();
    let err = support::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("`--store ./mystore`"), "{err}");
    // Nix 2.8 says "don't know how to open Nix store 'mystore'"; 2.26 and later
    // "Cannot parse Nix store 'mystore'": either way, said once.
    assert_eq!(
        err.matches("don't know how to open Nix store").count()
            + err.matches("Cannot parse Nix store").count(),
        1,
        "said once: {err}"
    );

    let empty = env.path().join("empty");
    analytics_store::make(&empty, 0, 1, 0, false);
    let e = empty.to_str().unwrap();
    let report = analytics_json(&env, &["--store", e, "--check"]);
    assert_eq!(report["store"]["exists"], true);
    assert_eq!(report["store"]["paths"], 0);
    assert_eq!(report["gc"]["dead_paths"], 0);
    assert_eq!(report["largest_paths"].as_array().unwrap().len(), 0);
    // Nix agrees that it is empty.
    assert!(nix_all(&env, e).is_empty());
}

#[test]
fn exit_codes() {
    require_nix();
    let env = NixEnv::new();
    // 2: usage.
    assert_eq!(
        analytics(&env, &["--format", "yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(analytics(&env, &["--no-such-flag"]).status.code(), Some(2));
    // --timeout 0 would never wait: a usage error, not silently 1 s.
    let out = analytics(&env, &["--timeout", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(support::stderr(&out).contains("--timeout"));
    // A --cache that is no URL at all is a usage error naming the flag.
    for bad in ["notaurl", "https//x", "ftp://x.example.org", "https://"] {
        let out = analytics(
            &env,
            &[
                "--store",
                "/nonexistent",
                "--closure",
                "/nix/store/x",
                "--cache",
                bad,
            ],
        );
        let err = support::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--cache") && err.contains(bad), "{bad}: {err}");
    }
    // --help lists the exit codes.
    let help = stdout(&analytics(&env, &["--help"]));
    for c in [
        "0  report produced",
        "1  no report",
        "2  bad command line",
        "9  --check",
    ] {
        assert!(help.contains(c), "{c} missing from --help:\n{help}");
    }
    // 1: a store database that is not one (and Nix cannot read it either).
    let bad = env.path().join("bad");
    std::fs::create_dir_all(bad.join("nix/var/nix/db")).unwrap();
    std::fs::write(bad.join("nix/var/nix/db/db.sqlite"), "this is not sqlite").unwrap();
    let out = analytics(&env, &["--store", bad.to_str().unwrap(), "--source", "db"]);
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("db.sqlite"),
        "{}",
        support::stderr(&out)
    );
    // 0 and 1 on a sound store.
    let store = synthetic(&env, 100, 3);
    assert_eq!(analytics(&env, &["--store", &store]).status.code(), Some(0));
}

#[test]
fn closure_argument_reports_its_size() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 500, 5);
    let all = nix_all(&env, &store);
    let (p, _) = all.iter().max_by_key(|(_, (_, r))| r.len()).unwrap();
    let link = env.path().join("result-x");
    std::os::unix::fs::symlink(p, &link).unwrap();
    let report = analytics_json(
        &env,
        &["--store", &store, "--closure", link.to_str().unwrap()],
    );
    let want = nix_closure_sizes(&env, &store, std::slice::from_ref(p))[p];
    assert_eq!(report["closure"]["nar_bytes"].as_u64().unwrap(), want);
    // Several paths after one --closure: the union of their closures (nix-store -qR).
    let q = all.keys().find(|k| *k != p).unwrap();
    let report = analytics_json(&env, &["--store", &store, "--closure", p, q]);
    let union = stdout(&run_ok(
        env.command("nix-store")
            .args(["--store", &store, "-qR", p, q]),
    ));
    let union: Vec<&str> = union.lines().collect();
    assert_eq!(
        report["closure"]["paths"].as_u64().unwrap(),
        union.len() as u64
    );
    let bytes: u64 = union.iter().map(|u| all[*u].0).sum();
    assert_eq!(report["closure"]["nar_bytes"].as_u64().unwrap(), bytes);
    let out = analytics(
        &env,
        &[
            "--store",
            &store,
            "--closure",
            "/nix/store/00000000000000000000000000000000-nope",
            "--check",
        ],
    );
    assert_eq!(out.status.code(), Some(9));
    // Nothing to look up when no argument is a valid path: no cache is queried, the one
    // finding is about the argument.
    let report = analytics_json(
        &env,
        &[
            "--store",
            &store,
            "--closure",
            "/nix/store/00000000000000000000000000000000-nope",
            "--cache",
            "http://127.0.0.1:9",
        ],
    );
    assert_eq!(report["coverage"], serde_json::json!([]), "{report}");
    let areas: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["area"].as_str().unwrap())
        .filter(|a| *a != "config")
        .collect();
    assert_eq!(areas, ["closure"], "{report}");
}

/// Installs fixture `name` (tests/fixtures/analytics/NAME): `etc-nix/*` as the system
/// configuration directory, `home-config-nix/nix.conf` as the user file.
fn config_fixture(name: &str) -> NixEnv {
    let env = NixEnv::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/analytics")
        .join(name);
    for e in std::fs::read_dir(src.join("etc-nix")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), env.nix_conf_dir.join(e.file_name())).unwrap();
    }
    let user = src.join("home-config-nix/nix.conf");
    if user.exists() {
        std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
        std::fs::copy(&user, env.user_conf()).unwrap();
    }
    env
}

/// Whether this Nix starts (`show-config` succeeds) with a nix.conf of `line` alone, in
/// the directory `dir` under the test's own: what some values do depends on the version.
fn nix_starts_with(env: &NixEnv, dir: &str, line: &str) -> bool {
    let one = env.path().join(dir);
    std::fs::create_dir_all(&one).unwrap();
    std::fs::write(one.join("nix.conf"), format!("{line}\n")).unwrap();
    env.nix(&["show-config"])
        .env("NIX_CONF_DIR", &one)
        .output()
        .unwrap()
        .status
        .success()
}

/// `(file, line, severity, message)` of every config finding.
fn config_findings(report: &Value) -> Vec<(String, u64, String, String)> {
    // Once each, in `findings` (schema 3 has no `config.findings`).
    assert!(report["config"].get("findings").is_none(), "{report}");
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["area"] == "config")
        .map(|f| {
            (
                f["file"].as_str().unwrap_or("").to_owned(),
                f["line"].as_u64().unwrap_or(0),
                f["severity"].as_str().unwrap().to_owned(),
                format!(
                    "{} {}",
                    f["message"].as_str().unwrap(),
                    f["what_to_do"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

#[test]
fn config_findings_at_their_file_and_line() {
    require_nix();
    let env = config_fixture("broken");
    // Nix itself refuses this configuration.
    assert!(!env.nix(&["show-config"]).output().unwrap().status.success());
    let missing = env.path().join("no-store");
    let out = env
        .command(BIN)
        .args(["--store", missing.to_str().unwrap(), "--format", "json"])
        .env("NIX_CONFIG", "keep-outputs = true\nfoo-unknown = 1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = config_findings(&report);
    let sys = env.system_conf().display().to_string();
    let sub = env.nix_conf_dir.join("sub.conf").display().to_string();
    let user = env.user_conf().display().to_string();
    let want: &[(&str, u64, &str, &str)] = &[
        (&sys, 3, "error", "needs spaces around `=`"),
        (&sys, 4, "warning", "drops https://cache.nixos.org"),
        (
            &sys,
            4,
            "warning",
            "`http://cache.example.com` is plain HTTP",
        ),
        (
            &sys,
            4,
            "warning",
            "No trusted public key can sign `https://mirror.example.org`",
        ),
        (
            &sys,
            4,
            "warning",
            "No trusted public key can sign `http://cache.example.com`",
        ),
        (&sys, 5, "error", "is not a valid public key"),
        (&sys, 6, "error", "must be a whole number, not `many`"),
        (&sys, 7, "error", "missing.conf"),
        (&sys, 9, "warning", "`frobnicate` is not a setting"),
        (&sys, 10, "warning", "`extra-` only works on list settings"),
        (
            &sys,
            11,
            "warning",
            "This line does nothing: `max-jobs` is set again at line 12 of the same file",
        ),
        (&sub, 2, "error", "`1`/`0`), not `maybe`"),
        (&user, 2, "info", "is already in `substituters`"),
        ("NIX_CONFIG", 2, "warning", "`foo-unknown` is not a setting"),
    ];
    // Whether a size suffix is a valid number depends on the Nix version: ask Nix.
    let suffix_ok = nix_starts_with(&env, "one-line", "min-free = 1G");
    let mut want = want.to_vec();
    if !suffix_ok {
        want.push((&sys, 14, "error", "must be a whole number, not `1G`"));
    }
    for (file, line, sev, text) in &want {
        assert!(
            got.iter()
                .any(|(f, l, s, m)| f == file && l == line && s == sev && m.contains(text)),
            "expected {sev} at {file}:{line} containing {text:?}; got:\n{got:#?}"
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "unexpected extra findings:\n{got:#?}"
    );
    // Every layer was read, the missing optional include is not a problem.
    let files: Vec<String> = report["config"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        files.contains(&sub) && files.contains(&user) && files.contains(&"NIX_CONFIG".to_owned()),
        "{files:?}"
    );
    // --check fails on them.
    let out = env
        .command(BIN)
        .args(["--store", missing.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
}

/// Nix 2.34 parses every substituter while loading the configuration and refuses to start
/// on a quoted one or one that is no store; 2.26 and older start. Either way the line is
/// reported at its file and line: an error where this Nix refuses it, else a warning.
/// `--sections findings` (the findings that are not the configuration's) never says
/// "none" alone while configuration findings exist: it names the section that has them;
/// and the recommendation does not point "above" at a section not shown.
#[test]
fn a_section_left_out_is_named_not_hidden() {
    require_nix();
    let env = config_fixture("broken");
    let missing = env.path().join("no-store");
    let out = env
        .command(BIN)
        .args([
            "--store",
            missing.to_str().unwrap(),
            "--sections",
            "findings,recommendations",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("`--sections config`"), "{text}");
    assert!(!text.contains("listed above"), "{text}");
}

#[test]
fn quoted_and_non_url_substituters_are_reported_as_this_nix_treats_them() {
    require_nix();
    let env = NixEnv::new();
    let values = [
        "\"https://cache.nixos.org\"",
        "'https://x.cachix.org'",
        "notaurl",
    ];
    let user = env.user_conf();
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    let conf: String = values
        .iter()
        .map(|v| format!("extra-substituters = {v}\n"))
        .collect();
    std::fs::write(&user, format!("# team\n{conf}")).unwrap();
    let missing = env.path().join("no-store");
    let out = env
        .command(BIN)
        .args(["--store", missing.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = config_findings(&report);
    for (i, v) in values.iter().enumerate() {
        // This Nix's own verdict on the line alone.
        let starts = nix_starts_with(
            &env,
            &format!("one-{i}"),
            &format!("extra-substituters = {v}"),
        );
        let sev = if starts { "warning" } else { "error" };
        let text = if v.starts_with('n') {
            "is not a store URL"
        } else {
            "is quoted"
        };
        let line = i as u64 + 2;
        assert!(
            got.iter()
                .any(|(f, l, s, m)| *f == user.display().to_string()
                    && *l == line
                    && s == sev
                    && m.contains(text)
                    && m.contains(v)),
            "expected {sev} at line {line} for {v} ({text}); got:\n{got:#?}"
        );
    }
}

#[test]
fn clean_config_is_quiet() {
    require_nix();
    let env = config_fixture("clean");
    run_ok(env.nix(&["show-config"]));
    let store = synthetic(&env, 200, 5);
    let out = analytics(&env, &["--store", &store, "--format", "json", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["config"]["checked"], true);
    assert_eq!(config_findings(&report), vec![]);
    let md = stdout(&analytics(
        &env,
        &["--store", &store, "--format", "markdown"],
    ));
    assert!(md.starts_with("## ✅ "), "{md}");
    assert!(md.contains("✅ No problems in the files Nix reads."));
}

#[test]
fn key_without_a_cache_is_reported_in_the_user_file() {
    require_nix();
    let env = config_fixture("keys");
    run_ok(env.nix(&["show-config"]));
    let report = analytics_json(
        &env,
        &["--store", env.path().join("none").to_str().unwrap()],
    );
    let got = config_findings(&report);
    let user = env.user_conf().display().to_string();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(
        (got[0].0.as_str(), got[0].1, got[0].2.as_str()),
        (user.as_str(), 2, "warning")
    );
    assert!(got[0].3.contains("orphan.example.net-1"), "{got:#?}");
}

#[test]
fn untrusted_user_caches_are_flagged() {
    require_nix();
    assert!(
        support::is_root(),
        "this test runs the tool as `nobody` through runuser: run the tests as root (CI does)"
    );
    let env = config_fixture("clean");
    // Let `nobody` read the configuration.
    for d in [
        env.path(),
        env.home.as_path(),
        env.xdg_config_home.as_path(),
        env.nix_conf_dir.as_path(),
    ] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let missing = env.path().join("no-store");
    let bin = binary_for_nobody(&env);
    let out = env
        .command("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            &bin,
            "--format",
            "json",
            "--store",
            missing.to_str().unwrap(),
        ])
        .env("NIX_REMOTE", "daemon")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got = config_findings(&report);
    let user = env.user_conf().display().to_string();
    assert!(
        got.iter().any(|(f, l, s, m)| f == &user
            && *l == 3
            && s == "warning"
            && m.contains("`nobody` is not a trusted user")
            && m.contains("trusted-users = root nobody")),
        "{got:#?}"
    );
    // As root (trusted) the same files are clean.
    let report = analytics_json(&env, &["--store", missing.to_str().unwrap()]);
    assert_eq!(config_findings(&report), vec![]);
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn coverage_against_http_and_file_caches_is_exact() {
    require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("cov"));
    let full = support::closure(&env, std::slice::from_ref(&top));
    assert_eq!(full.len(), 4);
    let mid = full.iter().find(|p| p.contains("-mid-")).unwrap().clone();
    let part = support::closure(&env, std::slice::from_ref(&mid));
    assert_eq!(part.len(), 2, "mid and leaf");
    // The analysed store: a chroot store holding the closure.
    let dir = env.path().join("chroot");
    copy_to_chroot(&env, &dir, &top);
    let store = dir.to_str().unwrap();
    let sizes = nix_all(&env, store);
    // Cache A over HTTP holds part of the closure, with Priority 30.
    let key = support::generate_key(&env, "cov-test-1");
    let a_dir = env.path().join("cache-a");
    support::nix_copy_to_file_cache(&env, &a_dir, &key, std::slice::from_ref(&mid));
    let info = std::fs::read_to_string(a_dir.join("nix-cache-info")).unwrap();
    let info: String = info
        .lines()
        .filter(|l| !l.starts_with("Priority"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        a_dir.join("nix-cache-info"),
        format!("{info}Priority: 30\n"),
    )
    .unwrap();
    let http = support::http::HttpCache::serve(&a_dir);
    // Cache B (file://) holds all of it; cache C is for another store directory.
    let b_dir = env.path().join("cache-b");
    support::nix_copy_to_file_cache(&env, &b_dir, &key, std::slice::from_ref(&top));
    let c_dir = env.path().join("cache-c");
    std::fs::create_dir_all(&c_dir).unwrap();
    std::fs::write(c_dir.join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
    let b_url = format!("file://{}", b_dir.display());
    let c_url = format!("file://{}", c_dir.display());
    // Cache D holds all of it too, but names `/nix/store/`: another prefix to Nix, which
    // compares it exactly and refuses the cache.
    let d_dir = env.path().join("cache-d");
    support::nix_copy_to_file_cache(&env, &d_dir, &key, std::slice::from_ref(&top));
    let d_info = std::fs::read_to_string(d_dir.join("nix-cache-info")).unwrap();
    std::fs::write(
        d_dir.join("nix-cache-info"),
        d_info.replace("StoreDir: /nix/store\n", "StoreDir: /nix/store/\n"),
    )
    .unwrap();
    let d_url = format!("file://{}", d_dir.display());
    let nix_reads_d = env
        .nix(&["path-info", "--store", &d_url, &top])
        .output()
        .unwrap();
    assert!(
        !nix_reads_d.status.success(),
        "Nix took /nix/store/ as its store directory"
    );
    let report = analytics_json(
        &env,
        &[
            "--store",
            store,
            "--closure",
            &top,
            "--cache",
            &b_url,
            "--cache",
            &http.url,
            "--cache",
            &c_url,
            "--cache",
            "ssh-ng://builder.invalid",
            "--cache",
            &d_url,
        ],
    );
    let d = report["coverage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["cache"] == d_url.as_str())
        .unwrap()
        .clone();
    assert_eq!(d["measured"], false, "{d}");
    assert!(d["error"].as_str().unwrap().contains("/nix/store/"), "{d}");
    let total: u64 = full.iter().map(|p| sizes[p].0).sum();
    let part_bytes: u64 = part.iter().map(|p| sizes[p].0).sum();
    assert_eq!(report["closure"]["paths"], 4);
    assert_eq!(report["closure"]["nar_bytes"].as_u64().unwrap(), total);
    let cov = report["coverage"].as_array().unwrap();
    assert_eq!(cov.len(), 5);
    // Sorted by priority: A (30) first, then the others (default 50).
    assert_eq!(cov[0]["cache"], http.url.as_str());
    assert_eq!(cov[0]["priority"], 30);
    assert_eq!(cov[0]["paths_present"], 2);
    assert_eq!(cov[0]["paths_total"], 4);
    assert_eq!(cov[0]["nar_bytes_present"].as_u64().unwrap(), part_bytes);
    assert_eq!(cov[0]["nar_bytes_total"].as_u64().unwrap(), total);
    assert_eq!(cov[0]["hit_rate_paths"].as_f64().unwrap(), 50.0);
    let b = cov.iter().find(|c| c["cache"] == b_url.as_str()).unwrap();
    assert_eq!(b["paths_present"], 4);
    assert_eq!(b["nar_bytes_present"].as_u64().unwrap(), total);
    assert_eq!(b["hit_rate_bytes"].as_f64().unwrap(), 100.0);
    let c = cov.iter().find(|c| c["cache"] == c_url.as_str()).unwrap();
    // An unusable cache is not measured: no figures, never 0%.
    assert_eq!(c["measured"], false);
    assert!(c["paths_present"].is_null(), "{c}");
    assert!(c["error"].as_str().unwrap().contains("/gnu/store"), "{c}");
    // An unusable cache is a warning; one this client cannot query (ssh-ng://) only info.
    let sev = |cache: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["area"] == "coverage" && f["message"].as_str().unwrap().contains(cache))
            .map(|f| f["severity"].as_str().unwrap().to_owned())
    };
    assert_eq!(sev(&c_url).as_deref(), Some("warning"));
    assert_eq!(sev("ssh-ng://builder.invalid").as_deref(), Some("info"));
    // The HTTP cache was asked about every path of the closure (and nothing was uploaded).
    let narinfo_requests = http
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(".narinfo"))
        .count();
    assert_eq!(narinfo_requests, 4);
    assert_eq!(http.count("PUT"), 0);

    // Without --cache: the substituters in effect (here the HTTP cache from nix.conf).
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(
        env.user_conf(),
        format!(
            "extra-substituters = {}\nextra-trusted-public-keys = {}\n",
            http.url, key.public
        ),
    )
    .unwrap();
    let report = analytics_json(&env, &["--store", store, "--closure", &top]);
    let cov = report["coverage"].as_array().unwrap();
    assert_eq!(cov.len(), 1, "{cov:?}");
    assert_eq!(cov[0]["from"], "nix.conf");
    // The priority Nix gives the cache: its nix-cache-info's, else 50.
    let info = std::fs::read_to_string(http.root.join("nix-cache-info")).unwrap();
    let want = info
        .lines()
        .find_map(|l| l.strip_prefix("Priority:"))
        .map_or(50, |p| p.trim().parse::<u64>().unwrap());
    assert_eq!(cov[0]["priority"].as_u64(), Some(want), "{info}");
    assert_eq!(cov[0]["paths_present"], 2);
    assert_eq!(cov[0]["nar_bytes_present"].as_u64().unwrap(), part_bytes);
}

/// A small closure copied into a chroot store (the store analysed) and a `file://`
/// cache holding it.
struct CachedClosure {
    env: NixEnv,
    top: String,
    dir: std::path::PathBuf,
    cache: std::path::PathBuf,
}

impl CachedClosure {
    fn new(tag: &str) -> Self {
        require_nix();
        let env = NixEnv::new();
        let top = support::build_small_closure(&env, &support::unique(tag));
        let dir = env.path().join("chroot");
        copy_to_chroot(&env, &dir, &top);
        let cache = file_cache(&env, "cache", None, &top);
        CachedClosure {
            env,
            top,
            dir,
            cache,
        }
    }
}

/// The JSON report of store `dir` with `--closure top --cache url`.
fn coverage_of(env: &NixEnv, dir: &Path, top: &str, url: &str) -> Value {
    analytics_json(
        env,
        &[
            "--store",
            dir.to_str().unwrap(),
            "--closure",
            top,
            "--cache",
            url,
        ],
    )
}

/// Copies the closure of `top` into a new `file://` cache under `env`, signed with
/// `key` (unsigned without).
fn file_cache(
    env: &NixEnv,
    name: &str,
    key: Option<&support::KeyPair>,
    top: &str,
) -> std::path::PathBuf {
    let dir = env.path().join(name);
    match key {
        Some(k) => support::nix_copy_to_file_cache(env, &dir, k, &[top.to_owned()]),
        None => {
            run_ok(env.nix(&["copy", "--to", &format!("file://{}", dir.display()), top]));
        }
    }
    dir
}

/// A pie of one slice (here: the whole store is garbage) is a full circle that says
/// nothing: the summary has none.
#[test]
fn no_pie_of_one_slice() {
    require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("pie"));
    let dir = env.path().join("chroot");
    copy_to_chroot(&env, &dir, &top);
    let md = stdout(&analytics(
        &env,
        &["--store", dir.to_str().unwrap(), "--format", "markdown"],
    ));
    assert!(md.contains("Garbage"), "{md}");
    assert!(!md.contains("```mermaid"), "{md}");
}

/// A narinfo that names a path of the closure but another NarSize (other contents: Nix
/// would fail on its NAR) is not "present": counted apart, with a warning.
#[test]
fn narinfos_for_other_contents_are_not_coverage() {
    let CachedClosure {
        env,
        top,
        dir,
        cache,
    } = CachedClosure::new("oth");
    let file = cache.join(nix_cache_tools::narinfo::narinfo_file_name(&top).unwrap());
    support::set_narinfo_field(&file, "NarSize", "999999");
    let url = format!("file://{}", cache.display());
    let report = coverage_of(&env, &dir, &top, &url);
    let c = &report["coverage"][0];
    assert_eq!(c["other_contents"], 1, "{c}");
    assert_eq!(c["paths_present"], 3, "{c}");
    assert!(
        report["findings"].to_string().contains("other contents"),
        "{report}"
    );
}

/// The same rules as push-cache's: a narinfo with another NarHash than this store's
/// (re-signed or not: Nix fails with "hash mismatch") is other contents, and one that is
/// garbage proves nothing — neither is coverage, and each gets a warning.
#[test]
fn narinfos_with_another_hash_or_garbage_are_not_coverage() {
    let CachedClosure {
        env,
        top,
        dir,
        cache,
    } = CachedClosure::new("ohash");
    let file = cache.join(nix_cache_tools::narinfo::narinfo_file_name(&top).unwrap());
    support::set_narinfo_field(&file, "NarHash", support::FOREIGN_NAR_HASH);
    // And another path's narinfo is garbage.
    let other = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "narinfo") && *p != file)
        .unwrap();
    std::fs::write(&other, "<html>not a narinfo</html>\n").unwrap();
    let url = format!("file://{}", cache.display());
    let report = coverage_of(&env, &dir, &top, &url);
    let c = &report["coverage"][0];
    assert_eq!(c["other_contents"], 1, "{c}");
    assert_eq!(c["invalid_narinfos"], 1, "{c}");
    assert_eq!(c["paths_present"], 2, "{c}");
    let findings = report["findings"].to_string();
    assert!(findings.contains("other contents"), "{findings}");
    assert!(findings.contains("prove nothing"), "{findings}");
}

/// A narinfo whose NAR is gone is no coverage (Nix would find the path, then fail to
/// download it): counted apart, with a warning, over `file://` and over HTTP (`HEAD`).
#[test]
fn narinfos_whose_nar_is_gone_are_not_coverage() {
    let CachedClosure {
        env,
        top,
        dir,
        cache,
    } = CachedClosure::new("nonar");
    let file = cache.join(nix_cache_tools::narinfo::narinfo_file_name(&top).unwrap());
    let info =
        nix_cache_tools::narinfo::NarInfo::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    std::fs::remove_file(cache.join(&info.url)).unwrap();
    let server = support::http::HttpCache::serve(&cache);
    for url in [format!("file://{}", cache.display()), server.url.clone()] {
        let report = coverage_of(&env, &dir, &top, &url);
        let c = &report["coverage"][0];
        assert_eq!(c["nar_missing"], 1, "{url}: {c}");
        assert_eq!(c["paths_present"], 3, "{url}: {c}");
        assert!(
            report["findings"]
                .to_string()
                .contains("whose NAR is not in the cache"),
            "{url}: {report}"
        );
    }
}

/// A cache's words never drive the terminal or the job summary: a `Sig` whose key name
/// carries ANSI escapes, HTML and a Markdown link shows in every format made harmless.
#[test]
fn a_caches_key_names_cannot_inject_into_any_output() {
    let CachedClosure {
        env,
        top,
        dir,
        cache,
    } = CachedClosure::new("inj");
    let evil = "k\x1b]0;pwned\x07\x1b[2J<img src=//evil.example/p.png>[Fix your cache](//evil.example/login)";
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "narinfo") {
            let mut t = std::fs::read_to_string(&p).unwrap();
            t.push_str(&format!("Sig: {evil}:AAAA\n"));
            std::fs::write(&p, t).unwrap();
        }
    }
    let url = format!("file://{}", cache.display());
    for format in ["table", "markdown", "json"] {
        let out = analytics(
            &env,
            &[
                "--store",
                dir.to_str().unwrap(),
                "--closure",
                &top,
                "--cache",
                &url,
                "--format",
                format,
            ],
        );
        let text = format!("{}{}", stdout(&out), support::stderr(&out));
        // The name is shown (made harmless), not dropped.
        assert!(
            text.contains("pwned") && text.contains("evil.example"),
            "{format}: {text}"
        );
        assert!(
            !text.contains('\x1b') && !text.contains('\x07'),
            "{format}: {text:?}"
        );
        assert!(
            !text.contains("\\u001b") && !text.contains("<img"),
            "{format}: {text}"
        );
        assert!(!text.contains("[Fix your cache]("), "{format}: {text}");
    }
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn coverage_checks_each_caches_signatures_and_completeness_as_nix_does() {
    require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("sig"));
    let full = support::closure(&env, std::slice::from_ref(&top));
    let dir = env.path().join("chroot");
    copy_to_chroot(&env, &dir, &top);
    let store = dir.to_str().unwrap();
    // Two keys of the same name (the trusted one, and the one a cache really signs
    // with: a rotated key), and a key nobody trusts.
    let old = support::generate_key(&env, "team-1");
    let old_secret = env.path().join("team-1.old.sec");
    std::fs::rename(&old.secret_file, &old_secret).unwrap();
    let old = support::KeyPair {
        secret_file: old_secret,
        ..old
    };
    let new = support::generate_key(&env, "team-1");
    assert_ne!(old.public, new.public);
    let other = support::generate_key(&env, "other-1");
    let trusted = file_cache(&env, "trusted", Some(&old), &top);
    let rotated = file_cache(&env, "rotated", Some(&new), &top);
    let foreign = file_cache(&env, "foreign", Some(&other), &top);
    let unsigned = file_cache(&env, "unsigned", None, &top);
    // A cache holding `mid` without its reference `leaf`.
    let holey = file_cache(&env, "holey", Some(&old), &top);
    let leaf = full.iter().find(|p| p.contains("-leaf-")).unwrap();
    let mid = full.iter().find(|p| p.contains("-mid-")).unwrap();
    let hash = leaf
        .trim_start_matches("/nix/store/")
        .split('-')
        .next()
        .unwrap();
    std::fs::remove_file(holey.join(format!("{hash}.narinfo"))).unwrap();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(
        env.user_conf(),
        format!("trusted-public-keys = {}\n", old.public),
    )
    .unwrap();
    let toml = env.path().join("cache.toml");
    std::fs::write(
        &toml,
        format!(
            "[[cache]]\nurl = \"file://{}\"\npublic-key = \"{}\"\n\n\
             [[cache]]\nurl = \"file://{}\"\npublic-key = \"{}\"\n",
            foreign.display(),
            other.public,
            // The rotated cache described with the old key, the one already trusted:
            // the right name, but it verifies none of that cache's signatures.
            rotated.display(),
            old.public
        ),
    )
    .unwrap();
    let url = |d: &Path| format!("file://{}", d.display());
    let mut args = vec![
        "--store".to_owned(),
        store.to_owned(),
        "--closure".to_owned(),
        top.clone(),
        "--config".to_owned(),
        toml.to_str().unwrap().to_owned(),
    ];
    for d in [&trusted, &rotated, &foreign, &unsigned, &holey] {
        args.extend(["--cache".to_owned(), url(d)]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = analytics_json(&env, &args);
    let row = |d: &Path| {
        report["coverage"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["cache"] == url(d).as_str())
            .unwrap_or_else(|| panic!("no row for {}: {report}", d.display()))
            .clone()
    };
    let sigs = |d: &Path| row(d)["signatures"].clone();
    let n = full.len() as u64;
    assert_eq!(sigs(&trusted)["checked"], n, "{}", sigs(&trusted));
    assert_eq!(sigs(&trusted)["trusted"], n);
    assert_eq!(sigs(&trusted)["required"], true);
    assert_eq!(sigs(&rotated)["trusted"], 0);
    assert_eq!(sigs(&rotated)["untrusted"], n);
    assert_eq!(strs(&sigs(&rotated)["mismatched_keys"]), vec!["team-1"]);
    assert_eq!(strs(&sigs(&foreign)["untrusted_keys"]), vec!["other-1"]);
    assert_eq!(sigs(&unsigned)["unsigned"], n);
    assert_eq!(sigs(&unsigned)["trusted"], 0);
    // Incomplete: only `mid` lacks a reference (its `leaf`); every other cache is whole.
    let holes = row(&holey)["incomplete"].clone();
    assert_eq!(holes["paths"], 1, "{holes}");
    assert_eq!(holes["examples"][0]["path"], mid.as_str());
    assert_eq!(holes["examples"][0]["missing"], leaf.as_str());
    assert_eq!(row(&trusted)["incomplete"]["paths"], 0);
    let finding = |d: &Path, what: &str| {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["area"] == "coverage"
                    && f["message"].as_str().unwrap().contains(&url(d))
                    && f["message"].as_str().unwrap().contains(what)
            })
            .unwrap_or_else(|| panic!("no finding on {what} for {}: {report}", d.display()))
            .clone()
    };
    let f = finding(&rotated, "another key of that name");
    assert!(f["message"].as_str().unwrap().contains("team-1"), "{f}");
    // Its cache.toml key is the trusted one, which verifies nothing: never "add" it.
    assert!(
        !f["what_to_do"].as_str().unwrap().contains(&old.public)
            && f["what_to_do"]
                .as_str()
                .unwrap()
                .contains("current public key"),
        "{f}"
    );
    assert_eq!(sigs(&rotated)["suggested_key"], Value::Null);
    assert_eq!(sigs(&foreign)["suggested_key"], other.public.as_str());
    // cache.toml has the foreign key: the exact line to add.
    let f = finding(&foreign, "other-1");
    assert!(
        f["what_to_do"]
            .as_str()
            .unwrap()
            .contains(&format!("extra-trusted-public-keys = {}", other.public)),
        "{f}"
    );
    finding(&unsigned, "no signature");
    finding(&holey, "without all of its references");
    assert!(
        !report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{} ", url(&trusted)))),
        "the trusted, whole cache has no finding: {report}"
    );
    // The job summary's verdict names a cache Nix would use (the trusted one, though
    // four caches hold it all), and says so when only ignored ones hold the closure.
    let mut a = vec!["--format", "markdown"];
    a.extend_from_slice(&args);
    let md = stdout(&analytics(&env, &a));
    let first = md.lines().find(|l| l.starts_with("**")).unwrap_or_default();
    assert!(
        first.contains(&format!("% in {}", url(&trusted))) && !first.contains("ignores"),
        "{first}"
    );
    let only_foreign = [
        "--format",
        "markdown",
        "--store",
        store,
        "--closure",
        &top,
        "--cache",
        &url(&foreign),
    ];
    let md = stdout(&analytics(&env, &only_foreign));
    let first = md.lines().find(|l| l.starts_with("**")).unwrap_or_default();
    assert!(
        first.contains(&format!(
            "% in {}, but Nix ignores its paths",
            url(&foreign)
        )),
        "{first}"
    );
    // The table and the job summary say the same.
    for format in ["table", "markdown"] {
        let mut a = vec!["--format", format];
        a.extend_from_slice(&args);
        let text = stdout(&analytics(&env, &a));
        for want in [
            "trusted (4)",
            "4 untrusted (team-1, key differs)",
            "4 untrusted (other-1)",
            "4 unsigned",
            "1 path without all references",
        ] {
            assert!(text.contains(want), "{format} lacks {want:?}:\n{text}");
        }
    }
    // The verdicts are Nix's: with the same nix.conf, Nix copies from the trusted cache
    // and refuses the others for their signatures.
    for (d, ok) in [
        (&trusted, true),
        (&rotated, false),
        (&foreign, false),
        (&unsigned, false),
    ] {
        let fresh = env.path().join(format!(
            "fresh-{}",
            d.file_name().unwrap().to_str().unwrap()
        ));
        let out = env
            .nix(&[
                "copy",
                "--from",
                &url(d),
                "--to",
                &format!("local?root={}", fresh.display()),
                &top,
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "nix copy from {}: {}",
            d.display(),
            support::stderr(&out)
        );
    }
}

/// An "application" closure: `app-VERSION` needs `libfoo-2.0` and, in `extra`, more
/// dependencies; each path's name carries `tag`, so each test has its own paths.
fn app_closure(env: &NixEnv, tag: &str, version: &str, extra: &[&str]) -> String {
    let deps: Vec<String> = extra
        .iter()
        .map(|d| format!(r#"(mk "{d}" "mkdir $out; head -c 3000 /dev/zero > $out/blob; echo {tag} > $out/tag")"#))
        .collect();
    let expr = format!(
        r#"let
  lib = mk "libfoo{tag}-2.0" "mkdir $out; echo lib > $out/l";
  deps = [ {} ];
in mk "app{tag}-{version}" "mkdir $out; echo ${{lib}} ${{toString deps}} {version} > $out/refs""#,
        deps.join(" ")
    );
    support::build(env, &expr).remove(0)
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one end-to-end scenario on one costly fixture (built paths, a running server); each step builds on the last"
)]
fn baseline_and_compare_report_what_a_build_added() {
    require_nix();
    let env = NixEnv::new();
    let tag = support::unique("d").replace('-', "");
    let v1 = app_closure(&env, &tag, "1.0", &[&format!("zstd{tag}-1.5.5")]);
    let v2 = app_closure(
        &env,
        &tag,
        "1.1",
        &[&format!("zstd{tag}-1.5.6"), &format!("zlib{tag}-1.3")],
    );
    let c1: BTreeSet<String> = support::closure(&env, std::slice::from_ref(&v1))
        .into_iter()
        .collect();
    let c2: BTreeSet<String> = support::closure(&env, std::slice::from_ref(&v2))
        .into_iter()
        .collect();
    let sizes = nix_all(&env, "auto");
    // A cache holding v1's closure: its hit rate falls for v2.
    let key = support::generate_key(&env, "diff-1");
    let cache = env.path().join("cache");
    support::nix_copy_to_file_cache(&env, &cache, &key, std::slice::from_ref(&v1));
    let url = format!("file://{}", cache.display());
    let base = analytics(
        &env,
        &["--format", "json", "--closure", &v1, "--cache", &url],
    );
    assert!(base.status.success(), "{}", support::stderr(&base));
    let base_file = env.path().join("main.json");
    std::fs::write(&base_file, &base.stdout).unwrap();
    let bf = base_file.to_str().unwrap();
    let report = analytics_json(&env, &["--closure", &v2, "--cache", &url, "--baseline", bf]);
    let d = &report["diff"];
    let paths = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect()
    };
    let added: BTreeSet<String> = c2.difference(&c1).cloned().collect();
    let removed: BTreeSet<String> = c1.difference(&c2).cloned().collect();
    assert_eq!(paths(&d["added"]), added);
    assert_eq!(paths(&d["removed"]), removed);
    let total = |c: &BTreeSet<String>| c.iter().map(|p| sizes[p].0).sum::<u64>();
    assert_eq!(d["old"]["nar_bytes"].as_u64(), Some(total(&c1)));
    assert_eq!(d["new"]["nar_bytes"].as_u64(), Some(total(&c2)));
    assert_eq!(
        d["delta_nar_bytes"].as_i64(),
        Some(total(&c2) as i64 - total(&c1) as i64)
    );
    assert_eq!(
        d["delta_paths"].as_i64(),
        Some(c2.len() as i64 - c1.len() as i64)
    );
    // Largest additions first.
    let added_sizes: Vec<u64> = d["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["nar_size"].as_u64().unwrap())
        .collect();
    assert!(
        added_sizes.windows(2).all(|w| w[0] >= w[1]),
        "{added_sizes:?}"
    );
    let pkg = |name: &str| {
        d["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name}: {d}"))
            .clone()
    };
    let app = pkg(&format!("app{tag}"));
    assert_eq!(
        (app["kind"].as_str(), strs(&app["old"]), strs(&app["new"])),
        (
            Some("changed"),
            vec!["1.0".to_owned()],
            vec!["1.1".to_owned()]
        )
    );
    assert_eq!(pkg(&format!("zstd{tag}"))["new"][0], "1.5.6");
    assert_eq!(pkg(&format!("zlib{tag}"))["kind"], "added");
    // libfoo did not change.
    assert!(
        !d["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == format!("libfoo{tag}").as_str()),
        "{d}"
    );
    // Coverage: v1 was all in the cache; of v2 only libfoo is.
    let cov = &d["coverage"][0];
    assert_eq!(cov["old_hit_rate_bytes"].as_f64(), Some(100.0), "{d}");
    let new_rate = report["coverage"][0]["hit_rate_bytes"].as_f64().unwrap();
    assert!(new_rate < 100.0);
    assert_eq!(cov["new_hit_rate_bytes"].as_f64(), Some(new_rate));
    // --compare OLD NEW in the store: the same paths and packages, no coverage.
    let cmp = analytics_json(&env, &["--compare", &v1, &v2]);
    assert_eq!(paths(&cmp["diff"]["added"]), added);
    assert_eq!(paths(&cmp["diff"]["removed"]), removed);
    assert_eq!(cmp["diff"]["packages"], d["packages"]);
    assert_eq!(cmp["diff"]["coverage"], serde_json::json!([]));
    // The table and the job summary.
    for format in ["table", "markdown"] {
        let text = stdout(&analytics(
            &env,
            &["--format", format, "--compare", &v1, &v2],
        ));
        for want in [
            format!("app{tag}"),
            "1.0".to_owned(),
            "1.1".to_owned(),
            format!("zlib{tag}"),
            "Largest additions".to_owned(),
        ] {
            assert!(text.contains(&want), "{format} lacks {want}:\n{text}");
        }
    }
    // Bad baselines: named, exit 3, never a hang; without --closure a usage error.
    std::fs::write(env.path().join("garbage.json"), "{not json").unwrap();
    support::mkfifo(&env.path().join("fifo.json"));
    std::fs::write(
        env.path().join("noclosure.json"),
        "{\"schema_version\": 2, \"closure\": null}",
    )
    .unwrap();
    for (file, says) in [
        ("garbage.json", "not JSON"),
        ("fifo.json", "FIFO"),
        ("noclosure.json", "has no closure"),
        ("missing.json", "no such file"),
    ] {
        let f = env.path().join(file);
        let mut c = env.command(BIN);
        c.args(["--closure", &v2, "--baseline", f.to_str().unwrap()]);
        let out = support::run_bounded(&mut c, 30);
        let err = support::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {err}");
        assert!(
            err.contains(f.to_str().unwrap()) && err.contains(says),
            "{file}: {err}"
        );
    }
    let out = analytics(&env, &["--baseline", bf]);
    assert_eq!(out.status.code(), Some(2), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("--closure"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn non_root_reads_the_database_and_falls_back_to_immutable() {
    require_nix();
    assert!(
        support::is_root(),
        "this test runs the tool as `nobody` through runuser: run the tests as root (CI does)"
    );
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = synthetic(&env, 300, 5);
    for d in [env.path().to_owned(), env.path().join("synthetic")] {
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let as_root = analytics_json(&env, &["--store", &store]);
    // No -wal with data: the database file alone, immutable (nothing is created).
    assert_eq!(as_root["source"]["mode"], "immutable");
    let bin = binary_for_nobody(&env);
    let as_nobody = || -> Value {
        let out = env
            .command("runuser")
            .args([
                "-u", "nobody", "--", &bin, "--format", "json", "--store", &store,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", support::stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // A user who cannot write the database directory still reads it read-only.
    let r = as_nobody();
    assert_eq!(r["source"]["kind"], "sqlite");
    for key in ["largest_paths", "largest_closures", "gc"] {
        assert_eq!(as_root[key], r[key], "{key}");
    }
    // A -shm file the user cannot open changes nothing: the -shm is never used.
    let shm = Path::new(&store).join("nix/var/nix/db/db.sqlite-shm");
    std::fs::write(&shm, []).unwrap();
    std::fs::set_permissions(&shm, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let r = as_nobody();
    assert_eq!(r["source"]["kind"], "sqlite");
    assert_eq!(r["source"]["mode"], "immutable");
    for key in ["largest_paths", "largest_closures", "gc"] {
        assert_eq!(as_root[key], r[key], "{key}");
    }
    assert_eq!(as_root["store"]["nar_bytes"], r["store"]["nar_bytes"]);
}

/// Coverage of an `s3://` cache, asked with signed requests of a real S3 server that
/// checks every signature (s3s-fs): exact with the right credentials; not measured —
/// never 0% — without any, or with wrong ones, saying that the bucket refused them.
#[test]
fn coverage_of_an_s3_bucket_through_signed_requests() {
    use support::s3::{ACCESS_KEY, S3Server, SECRET_KEY};
    require_nix();
    let env = NixEnv::new();
    let top = support::build_small_closure(&env, &support::unique("s3cov"));
    let full = support::closure(&env, std::slice::from_ref(&top));
    let mid = full.iter().find(|p| p.contains("-mid-")).unwrap().clone();
    // The bucket holds mid and leaf: a binary cache written into its directory.
    let root = env.path().join("s3");
    let key = support::generate_key(&env, "s3cov-1");
    support::nix_copy_to_file_cache(&env, &root.join("covbucket"), &key, &[mid]);
    let server = S3Server::start(&root, Some((ACCESS_KEY, SECRET_KEY)));
    let uri = server.uri("covbucket", "");
    let run = |creds: Option<(&str, &str)>| -> Value {
        let mut c = env.command(BIN);
        c.args(["--format", "json", "--closure", &top, "--cache", &uri])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE");
        if let Some((k, s)) = creds {
            c.env("AWS_ACCESS_KEY_ID", k)
                .env("AWS_SECRET_ACCESS_KEY", s);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", support::stderr(&out));
        support::assert_no_secret(&stdout(&out), &[SECRET_KEY, "wrong-secret-42"], "coverage");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let report = run(Some((ACCESS_KEY, SECRET_KEY)));
    let cov = &report["coverage"][0];
    assert_eq!(cov["measured"], true, "{cov}");
    assert_eq!(cov["paths_present"], 2, "{cov}");
    assert_eq!(cov["paths_total"], 4, "{cov}");
    for creds in [None, Some((ACCESS_KEY, "wrong-secret-42"))] {
        let report = run(creds);
        let cov = &report["coverage"][0];
        assert_eq!(cov["measured"], false, "{creds:?}: {cov}");
        assert!(cov["paths_present"].is_null(), "{cov}");
        let e = cov["error"].as_str().unwrap();
        assert!(
            e.contains("the bucket refused the request"),
            "{creds:?}: {e}"
        );
    }
}

#[test]
fn a_cache_that_never_answers_times_out_and_is_reported() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 100, 3);
    let all = nix_all(&env, &store);
    let some = all.keys().next().unwrap().clone();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let t0 = std::time::Instant::now();
    let report = analytics_json(
        &env,
        &[
            "--store",
            &store,
            "--closure",
            &some,
            "--cache",
            &url,
            "--timeout",
            "1",
        ],
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    let c = &report["coverage"][0];
    assert_eq!(c["measured"], false);
    assert!(c["paths_present"].is_null(), "{c}");
    assert!(
        c["error"].as_str().unwrap().contains("nix-cache-info"),
        "{c}"
    );
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["area"] == "coverage" && f["severity"] == "warning"),
        "{report}"
    );
}

/// A cache that answers every narinfo with 429 ("slow down"), or with 503, is retried
/// with pauses, but never without end: the cache is measured within a bound of a few
/// `--timeout`s, and one whose first answers are all errors is not asked the rest. It is
/// "not measured", never 0%.
#[test]
fn a_cache_that_only_says_slow_down_is_bounded() {
    require_nix();
    let env = NixEnv::new();
    let store = synthetic(&env, 400, 3);
    // The root with the largest closure.
    let plain = analytics_json(&env, &["--store", &store]);
    let top = plain["largest_closures"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = plain["largest_closures"][0]["closure_paths"]
        .as_u64()
        .unwrap();
    assert!(paths >= 30, "a closure of {paths} paths");
    let dir = env.path().join("served");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    for status in [429, 503] {
        let hostile: support::http::Hostile = std::sync::Arc::new(move |_: &str, p: &str| {
            p.ends_with(".narinfo")
                .then(|| support::http::Answer::Status(status, b"slow down".to_vec()))
        });
        let http = support::http::HttpCache::serve_hostile(&dir, false, hostile);
        let t0 = std::time::Instant::now();
        let report = analytics_json(
            &env,
            &[
                "--store",
                &store,
                "--closure",
                &top,
                "--cache",
                &http.url,
                "--timeout",
                "1",
            ],
        );
        let took = t0.elapsed();
        // 6 s of queries at most (6 × --timeout), and some slack for a loaded machine.
        assert!(
            took < std::time::Duration::from_secs(15),
            "{status}: took {took:?}"
        );
        let c = &report["coverage"][0];
        assert_eq!(c["measured"], false, "{status}: {c}");
        assert!(c["hit_rate_paths"].is_null(), "{c}");
        let asked = http
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(".narinfo"))
            .count();
        assert!(
            (asked as u64) < paths * 2,
            "{status}: {asked} narinfo requests for {paths} paths"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Safety (issue 8): read-only means read-only, bounded inputs, truthful figures.
// ---------------------------------------------------------------------------------------

/// [`support::run_bounded`]: a run that could hang (a FIFO, a device) fails the test
/// instead of blocking it.
fn run_bounded(mut cmd: std::process::Command, secs: u64) -> Output {
    support::run_bounded(&mut cmd, secs)
}

/// Every entry under `dir`: path, type, size, mtime and ctime (ns), mode, owner, a hash
/// of the content (files) or the target (links). Two equal snapshots mean nothing was created, removed, written
/// or even touched.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    let mut budget = 100_000;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            budget -= 1;
            assert!(
                budget > 0,
                "snapshot: too many entries under {}",
                dir.display()
            );
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_owned()
            } else if ft.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::fs::read(&p).unwrap().hash(&mut h);
                format!("file {:016x}", h.finish())
            } else {
                "special".to_owned()
            };
            out.insert(
                p.strip_prefix(dir).unwrap().display().to_string(),
                format!(
                    "{what} size {} mtime {}.{} ctime {}.{} mode {:o} owner {}:{}",
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                    m.mode(),
                    m.uid(),
                    m.gid()
                ),
            );
        }
    }
    out
}

/// Runs the tool on `store` in every format and asserts nothing changed under `watch`;
/// returns the three outputs. `--source nix` (Nix asked instead of the database) must
/// change nothing either, whatever it answers.
fn analyse_unchanged(env: &NixEnv, store: &Path, watch: &[&Path]) -> Vec<Output> {
    let before: Vec<_> = watch.iter().map(|w| snapshot(w)).collect();
    let mut outs = Vec::new();
    for args in [
        &["--format", "json"][..],
        &["--format", "table"],
        &["--format", "markdown"],
        &["--format", "json", "--source", "nix"],
    ] {
        let mut c = env.command(BIN);
        c.args(["--store", store.to_str().unwrap()]).args(args);
        outs.push(run_bounded(c, 60));
        for (w, b) in watch.iter().zip(&before) {
            let after = snapshot(w);
            assert_eq!(
                b,
                &after,
                "cache-analytics {args:?} changed files under {}",
                w.display()
            );
        }
    }
    outs.truncate(3);
    outs
}

/// The db/, -wal and -shm of a WAL database whose writer died with changes not yet
/// checkpointed (or, from Nix 2.22 on, a persistent WAL): one more valid path lives only
/// in the -wal. Returns that path.
fn leave_wal_with_data(store: &Path) -> String {
    let db = store.join("nix/var/nix/db/db.sqlite");
    let extra = "/nix/store/wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww-only-in-the-wal".to_owned();
    let c = rusqlite::Connection::open(&db).unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c.execute(
        "insert into ValidPaths (path, hash, registrationTime, narSize) values (?1, 'sha256:00', 1, 4242)",
        [&extra],
    )
    .unwrap();
    let saved: Vec<(std::path::PathBuf, Vec<u8>)> = ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"]
        .iter()
        .map(|n| {
            let p = db.with_file_name(n);
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    drop(c);
    for (p, b) in saved {
        std::fs::write(p, b).unwrap();
    }
    assert!(
        std::fs::metadata(db.with_file_name("db.sqlite-wal"))
            .unwrap()
            .len()
            > 0,
        "the -wal holds the new path"
    );
    extra
}

fn code_and_stderr(o: &Output) -> (Option<i32>, String) {
    (o.status.code(), support::stderr(o))
}

#[test]
fn analysing_a_store_changes_no_byte_under_nix_var() {
    require_nix();
    let env = NixEnv::with_system_conf("sandbox = false\n");

    // 1. A healthy WAL database with no -wal file (Nix < 2.22 after the last writer closed).
    let store = Path::new(&synthetic(&env, 300, 5)).to_owned();
    let var = store.join("nix/var");
    let outs = analyse_unchanged(&env, &store, &[&var]);
    for o in &outs {
        assert!(o.status.success(), "{}", support::stderr(o));
    }
    let r: Value = serde_json::from_slice(&outs[0].stdout).unwrap();
    assert_eq!(r["source"]["kind"], "sqlite");
    assert_eq!(r["store"]["paths"], 300);

    // 2. A WAL database whose -wal holds committed data, with its -shm: read, including
    //    the path only the -wal has, and neither file touched.
    let extra = leave_wal_with_data(&store);
    let outs = analyse_unchanged(&env, &store, &[&var]);
    for o in &outs {
        assert!(o.status.success(), "{}", support::stderr(o));
    }
    let r: Value = serde_json::from_slice(&outs[0].stdout).unwrap();
    assert_eq!(r["store"]["paths"], 301, "the path in the -wal is counted");
    assert!(
        strs(
            &r["largest_paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["path"].clone())
                .collect()
        )
        .len()
            <= 10
    );
    let _ = extra;

    // 3. A damaged database (its header overwritten) next to a -wal and -shm: an error
    //    naming the file, no fallback that "repairs" it, nothing deleted.
    let db = store.join("nix/var/nix/db/db.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..100].copy_from_slice(&[0x5a; 100]);
    std::fs::write(&db, &bytes).unwrap();
    for o in analyse_unchanged(&env, &store, &[&var]) {
        let (code, err) = code_and_stderr(&o);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(&db.display().to_string()), "{err}");
        assert!(err.contains("not an SQLite database"), "{err}");
    }

    // 4. A 0-byte db.sqlite.
    std::fs::write(&db, []).unwrap();
    for o in analyse_unchanged(&env, &store, &[&var]) {
        let (code, err) = code_and_stderr(&o);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("is empty") && err.contains(&db.display().to_string()),
            "{err}"
        );
    }

    // 5. db.sqlite a symlink to a foreign SQLite database without Nix's tables (in WAL
    //    mode, so a careless open would create its -wal/-shm): the tables are not created.
    let foreign_dir = env.path().join("foreign");
    std::fs::create_dir_all(&foreign_dir).unwrap();
    let foreign = foreign_dir.join("app.sqlite");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch(
            "create table notes (t text); insert into notes values ('x'); pragma journal_mode=wal;",
        )
        .unwrap();
    }
    for n in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"] {
        let _ = std::fs::remove_file(db.with_file_name(n));
    }
    std::os::unix::fs::symlink(&foreign, &db).unwrap();
    for o in analyse_unchanged(&env, &store, &[&var, &foreign_dir]) {
        let (code, err) = code_and_stderr(&o);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains("not a Nix store database") && err.contains("ValidPaths"),
            "{err}"
        );
    }

    // 6. A healthy database with a hot rollback journal beside it (a writer died in
    //    rollback mode): never read past it.
    let store2 = env.path().join("journal-store");
    analytics_store::make(&store2, 50, 7, 2, false);
    let db2 = store2.join("nix/var/nix/db/db.sqlite");
    {
        let c = rusqlite::Connection::open(&db2).unwrap();
        c.pragma_update(None, "journal_mode", "delete").unwrap();
    }
    // The header of a rollback journal (magic d9d505f920a163d7), then junk.
    let mut j = vec![0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
    j.extend_from_slice(&[0x11; 4096]);
    std::fs::write(db2.with_file_name("db.sqlite-journal"), j).unwrap();
    let var2 = store2.join("nix/var");
    for o in analyse_unchanged(&env, &store2, &[&var2]) {
        let (code, err) = code_and_stderr(&o);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("db.sqlite-journal"), "{err}");
    }
}

#[path = "support/setup_daemon.rs"]
mod setup_daemon;

/// `cache-analytics ARGS` as the unprivileged test user, with `env`'s configuration.
fn analytics_as_user(env: &NixEnv, args: &[&str]) -> Output {
    let user = setup_daemon::test_user();
    let bin = binary_for_nobody(env);
    let mut c = env.command("setpriv");
    c.arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("--")
        .arg(&bin)
        .args(args);
    run_bounded(c, 60)
}

/// The temp directory and everything above the store open to other users.
fn open_to_others(env: &NixEnv, store: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut d = store.to_owned();
    while d.starts_with(env.path()) {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        if !d.pop() {
            break;
        }
    }
}

#[test]
fn an_unreadable_database_directory_is_permission_denied_not_no_store() {
    require_nix();
    setup_daemon::require_root("running cache-analytics as an unprivileged user");
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = Path::new(&synthetic(&env, 100, 3)).to_owned();
    open_to_others(&env, &store.join("nix/var/nix/db"));
    let dbdir = store.join("nix/var/nix/db");
    std::fs::set_permissions(&dbdir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let s = store.to_str().unwrap();
    for format in ["json", "table"] {
        let out = analytics_as_user(&env, &["--store", s, "--format", format]);
        let (code, err) = code_and_stderr(&out);
        assert_eq!(code, Some(1), "stdout:\n{}\nstderr:\n{err}", stdout(&out));
        assert!(
            err.contains("permission denied") && err.contains(&dbdir.display().to_string()),
            "{err}"
        );
        assert!(
            !err.contains("install Nix") && !stdout(&out).contains("no Nix store"),
            "{err}"
        );
        assert!(
            err.contains("sudo") || err.contains("chmod"),
            "says what to do: {err}"
        );
    }
}

#[test]
fn unreadable_gc_root_directories_make_the_garbage_an_upper_bound() {
    require_nix();
    setup_daemon::require_root("running cache-analytics as an unprivileged user");
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = Path::new(&synthetic(&env, 200, 3)).to_owned();
    let all = nix_all(&env, store.to_str().unwrap());
    // A root only root may see: another user's per-user root directory.
    let private = store.join("nix/var/nix/gcroots/per-user/someone");
    std::fs::create_dir_all(&private).unwrap();
    let kept = all.keys().nth(7).unwrap().clone();
    std::os::unix::fs::symlink(&kept, private.join("result")).unwrap();
    open_to_others(&env, &store.join("nix/var/nix/db"));
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let s = store.to_str().unwrap();
    let as_root = analytics_json(&env, &["--store", s]);
    assert_eq!(as_root["gc"]["dead_is_upper_bound"], false);
    assert_eq!(
        as_root["gc"]["unreadable_roots"].as_array().unwrap().len(),
        0
    );

    let out = analytics_as_user(&env, &["--store", s, "--format", "json"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let gc = &r["gc"];
    assert_eq!(gc["dead_is_upper_bound"], true, "{gc}");
    let unreadable = gc["unreadable_roots"].as_array().unwrap();
    assert_eq!(unreadable[0]["path"], private.display().to_string(), "{gc}");
    assert!(
        gc["dead_paths"].as_u64().unwrap() >= as_root["gc"]["dead_paths"].as_u64().unwrap(),
        "{gc}"
    );
    let warning = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["area"] == "gc" && f["severity"] == "warning")
        .unwrap_or_else(|| panic!("no gc warning: {}", r["findings"]));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains(&private.display().to_string()),
        "{warning}"
    );
    let table = stdout(&analytics_as_user(
        &env,
        &["--store", s, "--format", "table"],
    ));
    assert!(!table.contains("no problems found"), "{table}");
    assert!(
        table.contains("At most") && table.contains("upper bound"),
        "{table}"
    );
    let md = stdout(&analytics_as_user(
        &env,
        &["--store", s, "--format", "markdown"],
    ));
    assert!(!md.contains("no problems found"), "{md}");
    assert!(md.contains("At most") && md.contains("Upper bound"), "{md}");
    assert!(md.contains(&private.display().to_string()), "{md}");
}

#[test]
fn planted_secrets_are_never_printed() {
    require_nix();
    let env = NixEnv::with_system_conf(
        "sandbox = false\nsubstituters =\nextra-access-tokens = github.com=ghp_PLANTEDSECRET1\ninclude tokens.conf\n",
    );
    std::fs::write(
        env.nix_conf_dir.join("tokens.conf"),
        "access-tokens = gitlab.com=glpat-PLANTEDSECRET2 github.com=ghp_PLANTEDSECRET3\nextra-substituters = https://alice:PLANTEDPW1@127.0.0.1:9/\n",
    )
    .unwrap();
    std::fs::create_dir_all(env.user_conf().parent().unwrap()).unwrap();
    std::fs::write(
        env.user_conf(),
        "access-tokens = example.org=PLANTEDSECRET4\nextra-access-tokens = github.com=ghp_PLANTEDSECRET5\nextra-access-tokens = PLANTEDSECRET6\nextra-substituters = http://bob:PLANTEDPW2@cache.example.invalid\n",
    )
    .unwrap();
    let store = synthetic(&env, 60, 2);
    let all = nix_all(&env, &store);
    let some = all.keys().next().unwrap().clone();
    // A cache that answers 500 to everything, named with credentials.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming().take(200) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let cache = format!("http://carol:PLANTEDPW3@127.0.0.1:{port}");
    let summary = env.path().join("step-summary.md");
    for format in ["json", "table", "markdown"] {
        let mut c = env.command(BIN);
        c.args([
            "--store",
            &store,
            "--format",
            format,
            "--closure",
            &some,
            "--cache",
            &cache,
            "--timeout",
            "2",
            "--summary",
        ])
        .env("GITHUB_STEP_SUMMARY", &summary);
        let out = run_bounded(c, 60);
        assert!(out.status.success(), "{}", support::stderr(&out));
        let text = format!("{}\n{}", stdout(&out), support::stderr(&out));
        assert!(
            !text.contains("PLANTED"),
            "--format {format} printed a secret:\n{text}"
        );
        assert!(text.contains("<redacted>"), "--format {format}: {text}");
        if format == "json" {
            let r: Value = serde_json::from_slice(&out.stdout).unwrap();
            // `extra-access-tokens` is a valid setting: no finding calls it wrong.
            for f in r["findings"].as_array().unwrap() {
                let m = f["message"].as_str().unwrap();
                assert!(!m.contains("extra-access-tokens"), "{f}");
            }
        }
    }
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        !md.contains("PLANTED"),
        "the job summary holds a secret:\n{md}"
    );
    assert!(md.contains("<redacted>"), "{md}");
}

/// A loopback server that answers every request with HTTP 500 (bounded: 500 requests).
fn serve_500() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in listener.incoming().take(500) {
            let Ok(mut s) = s else { continue };
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
            );
        }
    });
    url
}

#[test]
fn an_unreachable_cache_is_not_measured_never_zero_percent() {
    require_nix();
    let env = NixEnv::with_system_conf("sandbox = false\nsubstituters =\n");
    let store = synthetic(&env, 80, 3);
    let all = nix_all(&env, &store);
    let some = all.keys().next().unwrap().clone();
    // A loopback port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let failing = serve_500();
    let args = |format: &'static str| -> Vec<String> {
        [
            "--store",
            &store,
            "--format",
            format,
            "--closure",
            &some,
            "--cache",
            &closed,
            "--cache",
            &failing,
            "--timeout",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |format: &'static str| {
        let mut c = env.command(BIN);
        c.args(args(format));
        let out = run_bounded(c, 60);
        assert!(out.status.success(), "{}", support::stderr(&out));
        stdout(&out)
    };
    let r: Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(r["schema_version"], 3);
    let cov = r["coverage"].as_array().unwrap();
    assert_eq!(cov.len(), 2, "{cov:?}");
    for c in cov {
        assert_eq!(c["measured"], false, "{c}");
        for k in [
            "paths_present",
            "nar_bytes_present",
            "hit_rate_paths",
            "hit_rate_bytes",
        ] {
            assert!(c[k].is_null(), "{k} must be null when not measured: {c}");
        }
        assert!(c["error"].as_str().is_some_and(|e| !e.is_empty()), "{c}");
    }
    let failing_row = cov.iter().find(|c| c["cache"] == failing.as_str()).unwrap();
    assert!(
        failing_row["error"].as_str().unwrap().contains("500"),
        "{failing_row}"
    );
    let recs = r["recommendations"].to_string();
    assert!(!recs.contains("add a binary cache"), "{recs}");
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["area"] == "coverage"
                && f["message"].as_str().unwrap().contains("not measured"))
            .count()
            == 2,
        "{}",
        r["findings"]
    );
    for format in ["table", "markdown"] {
        let text = run(format);
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                l.starts_with(&format!("| {closed} ")) || l.starts_with(&format!("| {failing} "))
            })
            .collect();
        assert_eq!(rows.len(), 2, "{format}:\n{text}");
        for row in rows {
            assert!(row.contains("not measured"), "{format}: {row}");
            assert!(
                !row.contains("0.0%") && !row.contains(" 0 /"),
                "{format}: {row}"
            );
        }
        assert!(!text.contains("add a binary cache"), "{format}:\n{text}");
    }
}

fn mkfifo(p: &Path) {
    // Nix 2.22 and later keep the -wal file of a closed database: replace it.
    let _ = std::fs::remove_file(p);
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "mkfifo {}", p.display());
}

#[test]
fn fifos_and_devices_as_database_or_gc_roots_neither_hang_nor_read_without_bound() {
    require_nix();
    let env = NixEnv::with_system_conf("sandbox = false\n");
    let store = Path::new(&synthetic(&env, 100, 3)).to_owned();
    let s = store.to_str().unwrap().to_owned();
    let db = store.join("nix/var/nix/db/db.sqlite");
    let run = |what: &str| -> (Option<i32>, String, String) {
        let mut c = env.command(BIN);
        c.args(["--store", &s, "--format", "json"]);
        let o = run_bounded(c, 30);
        let _ = what;
        (o.status.code(), stdout(&o), support::stderr(&o))
    };

    // GC roots: links to a FIFO and to /dev/zero, a FIFO and a device node among the
    // roots. Nothing is opened: the report comes, with the real roots.
    let auto = store.join("nix/var/nix/gcroots/auto");
    let fifo = env.path().join("a-fifo");
    mkfifo(&fifo);
    std::os::unix::fs::symlink(&fifo, auto.join("to-fifo")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", auto.join("to-zero")).unwrap();
    mkfifo(&auto.join("fifo-root"));
    let node = auto.join("zero-node");
    let st = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "5"])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out, err) = run("roots");
    assert_eq!(code, Some(0), "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["store"]["paths"], 100);
    assert!(r["gc"]["roots"].as_u64().unwrap() >= 3, "{}", r["gc"]);

    // The database itself a FIFO, a link to /dev/zero, a device node: an error naming
    // the file and its type, at once.
    let saved = std::fs::read(&db).unwrap();
    std::fs::remove_file(&db).unwrap();
    mkfifo(&db);
    let (code, _, err) = run("db fifo");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("FIFO") && err.contains(&db.display().to_string()),
        "{err}"
    );
    std::fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &db).unwrap();
    let (code, _, err) = run("db /dev/zero");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("character device"), "{err}");
    std::fs::remove_file(&db).unwrap();

    // A FIFO as the -wal next to a good database.
    std::fs::write(&db, &saved).unwrap();
    let wal = db.with_file_name("db.sqlite-wal");
    mkfifo(&wal);
    let (code, _, err) = run("wal fifo");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("FIFO") && err.contains("db.sqlite-wal"),
        "{err}"
    );
    std::fs::remove_file(&wal).unwrap();
    // And /dev/zero as the journal.
    std::os::unix::fs::symlink("/dev/zero", db.with_file_name("db.sqlite-journal")).unwrap();
    let (code, _, err) = run("journal zero");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("db.sqlite-journal"), "{err}");
}

/// `cache-analytics --list-dead --format json | head -1`: the reader goes away after one
/// line; the tool ends quietly with exit 0 instead of panicking on the broken pipe
/// (issue 11; the same `output::print` serves all three tools).
#[test]
fn a_reader_that_goes_away_is_a_quiet_exit() {
    use std::io::Read;
    require_nix();
    let env = NixEnv::new();
    let dir = env.path().join("big");
    // 4,000 paths and no root: every one is dead, a JSON list far bigger than a pipe.
    analytics_store::make(&dir, 4000, 7, 0, false);
    let mut child = env
        .command(BIN)
        .args([
            "--store",
            dir.to_str().unwrap(),
            "--format",
            "json",
            "--list-dead",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// Flags that would silently do nothing are usage errors naming the flag (issue 12):
/// `--list-dead` without JSON, `--closure` of a path that does not exist.
#[test]
fn flags_that_would_do_nothing_are_usage_errors() {
    require_nix();
    let env = NixEnv::new();
    let dir = env.path().join("s");
    analytics_store::make(&dir, 10, 3, 1, false);
    let d = dir.to_str().unwrap();
    for (args, says) in [
        (vec!["--store", d, "--list-dead"], "--list-dead"),
        (
            vec!["--store", d, "--list-dead", "--format", "markdown"],
            "--format json",
        ),
        (
            vec!["--store", d, "--closure", "./typo"],
            "--closure ./typo",
        ),
    ] {
        let out = env.command(BIN).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let out = env
        .command(BIN)
        .args(["--store", d, "--list-dead", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}

/// An `s3://` substituter is judged by what the installed Nix does with it (asked
/// against a server that checks signatures, with credentials): never used by a Nix
/// without an S3 store (a warning at its line), anonymous reads only for one that sends
/// unsigned requests (info), nothing to say for one that signs.
#[test]
fn s3_substituters_are_judged_by_what_this_nix_can_do() {
    require_nix();
    let env = NixEnv::new();
    let (_server, uri) = support::s3::signed_cache_bucket(&env.path().join("s3"));
    let (reads, said) = support::s3::nix_reads_s3(&env, &uri);
    std::fs::write(
        env.system_conf(),
        format!(
            "sandbox = false\nsubstituters =\nextra-substituters = {uri}\nextra-trusted-public-keys = team-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=\n"
        ),
    )
    .unwrap();
    let missing = env.path().join("no-store");
    let report = analytics_json(&env, &["--store", missing.to_str().unwrap()]);
    let sys = env.system_conf().display().to_string();
    let about: Vec<(String, u64, String, String)> = config_findings(&report)
        .into_iter()
        .filter(|(_, _, _, m)| m.contains("s3://"))
        .collect();
    let want = match reads {
        support::s3::NixReadsS3::Never => Some(("warning", "built without S3 support")),
        support::s3::NixReadsS3::Unsigned => Some(("info", "without signing its requests")),
        support::s3::NixReadsS3::Signed => None,
    };
    match want {
        Some((sev, text)) => {
            assert_eq!(about.len(), 1, "{said}\n{about:#?}");
            assert_eq!(
                (about[0].0.as_str(), about[0].1, about[0].2.as_str()),
                (sys.as_str(), 3, sev),
                "{about:#?}"
            );
            assert!(about[0].3.contains(text), "{about:#?}");
        }
        None => assert!(about.is_empty(), "{said}\n{about:#?}"),
    }
}
