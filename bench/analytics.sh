#!/usr/bin/env bash
# Benchmark: `cache-analytics --format json` against `nix path-info --all -s --json` on
# the same synthetic store, in one run.
#
# Makes its own store (N paths, ROOTS GC roots) in a temporary directory with the
# repository's generator (`cargo run --example mkstore`, the one the tests use), builds the
# release binary, times both tools (cache-analytics also
# pinned to one core with `taskset -c 0`), prints the timings and the ratio, and checks
# that the totals (valid paths, NAR bytes), the largest paths and the listed closure sizes
# are equal. Then it adds derivers and DerivationOutputs to the store (as real stores have)
# and times the report again.
#
#   bench/analytics.sh                      # 200,000 paths, 150 roots
#   N=50000 ROOTS=50 bench/analytics.sh
#
# Needs: python3, nix, cargo; taskset (util-linux) for the one-core figure.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200000}
ROOTS=${ROOTS:-150}
RUNS=${RUNS:-5}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
store="$tmp/store"

echo "== making a $N-path store with $ROOTS GC roots (cargo run --example mkstore)"
cargo run --release --quiet -p nix-cache-tools --example mkstore -- "$store" "$N" "$ROOTS" 1

echo "== building cache-analytics (release)"
cargo build --release --quiet -p cache-analytics
bin=$PWD/target/release/cache-analytics

now() { date +%s.%N; }
# Median wall time in seconds of RUNS runs of "$@" (stdout to $out); every run's time
# goes to $out.times, for the run-to-run range printed at the end.
median() {
  local out=$1; shift
  local times=()
  for _ in $(seq "$RUNS"); do
    local t0 t1
    t0=$(now); "$@" >"$out"; t1=$(now)
    times+=("$(awk "BEGIN{print $t1 - $t0}")")
  done
  printf '%s\n' "${times[@]}" | sort -g >"$out.times"
  awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}' "$out.times"
}
# "(min–max)" of the runs behind a median.
range() { awk 'NR==1{lo=$1} {hi=$1} END {printf "(%.3f–%.3f)", lo, hi}' "$1.times"; }

# Same page-cache state for both: read the database once first.
cat "$store/nix/var/nix/db/db.sqlite" >/dev/null

echo "== nix path-info --store DIR --all -s --json ($(nix --version))"
t0=$(now)
nix --extra-experimental-features nix-command path-info --store "$store" --all -s --json >"$tmp/nix.json"
t1=$(now)
t_nix=$(awk "BEGIN{print $t1 - $t0}")

echo "== cache-analytics --store DIR --format json (median of $RUNS)"
t_ours=$(median "$tmp/ours.json" "$bin" --store "$store" --format json)
t_one=""
if command -v taskset >/dev/null 2>&1; then
  echo "== taskset -c 0 cache-analytics --store DIR --format json (one core, median of $RUNS)"
  t_one=$(median "$tmp/ours1.json" taskset -c 0 "$bin" --store "$store" --format json)
fi

python3 - "$tmp/nix.json" "$tmp/ours.json" "$store" <<'PY'
import json, subprocess, sys, time
nix = json.load(open(sys.argv[1]))
items = nix if isinstance(nix, list) else [dict(v, path=k) for k, v in nix.items() if v]
ours = json.load(open(sys.argv[2]))
paths, nar = len(items), sum(i.get("narSize", 0) for i in items)
print(f"nix:             {paths} paths, {nar} NAR bytes")
print(f"cache-analytics: {ours['store']['paths']} paths, {ours['store']['nar_bytes']} NAR bytes"
      f" (source: {ours['source']['kind']}); {ours['gc']['dead_paths']} dead paths,"
      f" {len(ours['largest_closures'])} largest closures of {ours['gc']['root_paths']} rooted paths")
if (paths, nar) != (ours["store"]["paths"], ours["store"]["nar_bytes"]):
    print("MISMATCH: totals differ", file=sys.stderr)
    sys.exit(1)
top = sorted((i.get("narSize", 0) for i in items), reverse=True)[: len(ours["largest_paths"])]
if top != [p["nar_size"] for p in ours["largest_paths"]]:
    print("MISMATCH: largest paths differ", file=sys.stderr)
    sys.exit(1)
print("totals and largest paths agree")
# Closure sizes of the listed roots against `nix path-info -S` (Nix 2.8 reads a .drv on
# the command line as its outputs, so .drv roots are left to the test suite).
paths = [c["path"] for c in ours["largest_closures"] if not c["path"].endswith(".drv")]
if paths:
    t0 = time.time()
    out = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "path-info",
                          "--store", sys.argv[3], "--json", "-S"] + paths,
                         check=True, capture_output=True, text=True).stdout
    t = time.time() - t0
    v = json.loads(out)
    items = v if isinstance(v, list) else [dict(i, path=k) for k, i in v.items() if i]
    want = {i["path"]: i["closureSize"] for i in items}
    got = {c["path"]: c["closure_size"] for c in ours["largest_closures"] if c["path"] in want}
    if got != want:
        print("MISMATCH: closure sizes differ", file=sys.stderr)
        sys.exit(1)
    print(f"closure sizes of {len(want)} largest roots equal nix path-info -S (which took {t:.1f} s for them)")
PY

# Real stores also record derivers and DerivationOutputs, which the garbage section reads
# for keep-derivations; the generator makes none. Add them for every non-.drv path (each
# given a .drv as deriver) and time the report again.
python3 - "$store/nix/var/nix/db/db.sqlite" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
rows = c.execute("select id, path from ValidPaths").fetchall()
drvs = [(i, p) for i, p in rows if p.endswith(".drv")]
outs = [(i, p) for i, p in rows if not p.endswith(".drv")]
pairs = [(drvs[k % len(drvs)], o) for k, o in enumerate(outs)]
c.executemany("update ValidPaths set deriver = ? where id = ?", [(d[1], o[0]) for d, o in pairs])
c.executemany("insert or ignore into DerivationOutputs values (?, ?, ?)",
              [(d[0], "out%d" % k, o[1]) for k, (d, o) in enumerate(pairs)])
c.commit()
print(f"added derivers and DerivationOutputs for {len(pairs)} paths")
PY
t_drv=$(median "$tmp/ours-drv.json" "$bin" --store "$store" --format json)
t_drv1=""
if command -v taskset >/dev/null 2>&1; then
  t_drv1=$(median "$tmp/ours-drv1.json" taskset -c 0 "$bin" --store "$store" --format json)
fi

printf '\n%-52s %8s s\n' "nix path-info --all -s --json" "$(printf %.3f "$t_nix")"
printf '%-52s %8s s   (%.1fx faster) %s\n' "cache-analytics --format json (full report)" "$t_ours" "$(awk "BEGIN{print $t_nix / $t_ours}")" "$(range "$tmp/ours.json")"
if [ -n "$t_one" ]; then
  printf '%-52s %8s s   (%.1fx faster) %s\n' "taskset -c 0 cache-analytics --format json" "$t_one" "$(awk "BEGIN{print $t_nix / $t_one}")" "$(range "$tmp/ours1.json")"
fi
printf '%-52s %8s s   %s\n' "cache-analytics, store with derivers" "$t_drv" "$(range "$tmp/ours-drv.json")"
if [ -n "$t_drv1" ]; then
  printf '%-52s %8s s   %s\n' "taskset -c 0 cache-analytics, store with derivers" "$t_drv1" "$(range "$tmp/ours-drv1.json")"
fi
