#!/usr/bin/env bash
# Benchmark: push-cache versus plain `nix copy` on the same closures, in one run:
# `nix copy` with its defaults (xz) and with its best settings for speed
# (`?compression=zstd&parallel-compression=true`).
#
# Two closures:
#  - small: ~1,040 real store paths (cheap /bin/sh derivations: 1,000 leaves of 4 KiB,
#    40 groups referencing 25 leaves each, one top referencing the groups);
#  - realistic: ~300 paths shaped like a real closure, made of slices of this machine's
#    own shared libraries (so they compress like real binaries, not like zeros): three
#    large paths (64, 32 and 16 MiB) and ~300 small ones (16-512 KiB), ~188 MiB in all.
# For each:
#   1. empty cache:        the whole closure goes;
#   2. 95% cached cache:  a file:// cache pre-filled with 95% of the closure (closed under
#                         references, as a real cache is), only the rest goes;
#   3. all cached:        a second push of the same build (CI re-runs).
# Each tool gets its own fresh copy of the same pre-filled cache and its own empty Nix
# cache directory (Nix keeps a narinfo cache in ~/.cache/nix), RUNS times; the median
# is printed with the ratio. Every scenario runs twice: against the cache directory as
# file://, and served over HTTP on 127.0.0.1 (GET/HEAD/PUT, a python3 server) as
# http:// — the case of a real remote cache, where each "is it there" is a request.
#
# With s3s-fs (a real S3 server, `.ci/install` builds it) and the Debian sid chroot of
# .ci/nix-chroots (Nix 2.34, the Debian Nix that speaks S3), each scenario also runs
# against an S3 bucket on 127.0.0.1: push-cache with signed requests, against 2.34's
# `nix copy --to s3://` (defaults, and zstd) to an anonymous endpoint of the same bucket
# (2.34 does not sign; 2.8 and 2.26 cannot open s3:// at all). TARGETS chooses.
#
# Usage: bench/push.sh            (as root with NIX_REMOTE=local, or any user who can build)
# Env:   RUNS=3  LEAVES=1000  CLOSURES="small realistic"  TARGETS="file http s3"
#        PUSH_CACHE=path/to/push-cache (default: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
LEAVES=${LEAVES:-1000}
GROUP=25
WORK=$(mktemp -d /tmp/push-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

export NIX_CONFIG=$'sandbox = false\nsubstituters =\nmax-jobs = 8'
export NIX_REMOTE=${NIX_REMOTE:-local}
NIX=(nix --extra-experimental-features nix-command)

if [[ -z "${PUSH_CACHE:-}" ]]; then
  cargo build --release --quiet -p push-cache
  PUSH_CACHE=$PWD/target/release/push-cache
fi

# time_one NAME BASE_CACHE COMMAND...: seconds for COMMAND with a fresh copy of BASE_CACHE
# at $DEST and a fresh Nix cache directory.
time_one() {
  local base=$1; shift
  rm -rf "$WORK/dest" "$WORK/xdg-cache" "$WORK"/.bucket-* "$WORK"/.upload*
  cp -a "$base" "$WORK/dest"
  local s e
  s=$(date +%s.%N)
  XDG_CACHE_HOME="$WORK/xdg-cache" "$@" >/dev/null 2>"$WORK/stderr" || {
    cat "$WORK/stderr" >&2; echo "command failed: $*" >&2; exit 1; }
  e=$(date +%s.%N)
  # Both tools must leave the same, complete cache.
  local n
  n=$(find "$WORK/dest" -maxdepth 1 -name '*.narinfo' | wc -l)
  [[ $n -eq $TOTAL ]] || { echo "cache holds $n narinfos, expected $TOTAL" >&2; exit 1; }
  echo "$e - $s" | bc
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# with_params URL PARAMS: URL with Nix store parameters added.
with_params() { case $1 in *\?*) echo "$1&$2";; *) echo "$1?$2";; esac; }

# scenario LABEL BASE_CACHE URL [NIX_URL]: URL serves $WORK/dest (file://, the HTTP
# server, or the S3 bucket `dest`); `nix copy` goes to NIX_URL (default URL) with
# ${NIXCOPY[@]} (default: this machine's nix copy).
scenario() {
  local label=$1 base=$2 url=$3 nurl=${4:-$3}
  local pc=() nc=() zc=()
  local zurl
  zurl=$(with_params "$nurl" "compression=zstd&parallel-compression=true")
  for _ in $(seq "$RUNS"); do
    pc+=("$(time_one "$base" "$PUSH_CACHE" --no-filter --to "$url" "$TOP")")
    nc+=("$(time_one "$base" "${NIXCOPY[@]}" --to "$nurl" "$TOP")")
    zc+=("$(time_one "$base" "${NIXCOPY[@]}" --to "$zurl" "$TOP")")
  done
  local p n z
  p=$(median "${pc[@]}"); n=$(median "${nc[@]}"); z=$(median "${zc[@]}")
  printf '%-22s push-cache %7.3f s | nix copy %7.3f s (%.2fx) | nix copy zstd %7.3f s (%.2fx)   [median of %d; push-cache %s; nix copy %s; nix copy zstd %s]\n' \
    "$label" "$p" "$n" "$(echo "$n / $p" | bc -l)" "$z" "$(echo "$z / $p" | bc -l)" "$RUNS" \
    "$(range "${pc[@]}")" "$(range "${nc[@]}")" "$(range "${zc[@]}")"
}

# range VALUES...: "min-max" of the runs.
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{a=$1} {b=$1} END {printf "%.3f-%.3f", a, b}'; }

# A binary cache over HTTP on 127.0.0.1 serving $WORK/dest: GET/HEAD, and PUT for uploads
# (what nginx+WebDAV or an S3 front does). python3's standard library only.
cat > "$WORK/server.py" <<'PY'
import http.server, os, sys, tempfile
root = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in separate writes
    def log_message(self, *a): pass
    def _file(self):
        return os.path.join(root, self.path.split("?")[0].lstrip("/"))
    def _send(self, code, body=b"", head=False):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
    def do_GET(self, head=False):
        try:
            with open(self._file(), "rb") as f:
                self._send(200, f.read(), head)
        except OSError:
            self._send(404, b"", head)
    def do_HEAD(self):
        self.do_GET(head=True)
    def do_PUT(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        path = self._file()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        self._send(201)
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 drops bursts of connects (1 s SYN retry)
s = Server(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
mkdir -p "$WORK/dest"
python3 "$WORK/server.py" "$WORK/dest" > "$WORK/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do [[ -s "$WORK/port" ]] && break; sleep 0.1; done
HTTP="http://127.0.0.1:$(cat "$WORK/port")"

# S3: s3s-fs serving $WORK (so the bucket `dest` is $WORK/dest), once checking
# signatures (push-cache) and once anonymous (Nix 2.34 in the sid chroot).
TARGETS=${TARGETS:-file http s3}
SID=${NIX_CHROOTS_DIR:-/var/cache/nix-cache-tools/chroots}/sid
S3S=$(command -v s3s-fs || echo "$HOME/.cargo/bin/s3s-fs")
if [[ " $TARGETS " == *" s3 "* ]] && { [[ ! -x $S3S ]] || [[ ! -x $SID/usr/bin/nix ]]; }; then
  echo "note: no S3 rows (they need s3s-fs and the sid chroot: .ci/install && .ci/nix-chroots sid)" >&2
  TARGETS=${TARGETS/s3/}
fi
# in_sid CMD...: CMD in the sid chroot (pivot_root, as .ci/test-on-nix), the host at /host.
in_sid() {
  unshare --mount --propagation private sh -c '
    mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && mount --bind /sys "$0/sys" &&
    mkdir -p "$0/host" && mount --rbind "$0" "$0" && cd "$0" && pivot_root . host && cd / &&
    exec "$@"' "$SID" "$@"
}
if [[ " $TARGETS " == *" s3 "* ]]; then
  export AWS_ACCESS_KEY_ID=AKIABENCHKEY00000001 AWS_SECRET_ACCESS_KEY=bench-secret-0123456789abcdef
  s3port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  S3P=$(s3port); S3A=$(s3port)
  "$S3S" --host 127.0.0.1 --port "$S3P" --access-key "$AWS_ACCESS_KEY_ID" \
    --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK" >/dev/null 2>&1 &
  S3_PIDS=$!
  "$S3S" --host 127.0.0.1 --port "$S3A" "$WORK" >/dev/null 2>&1 &
  S3_PIDS="$S3_PIDS $!"
  trap 'kill $SERVER $S3_PIDS 2>/dev/null; rm -rf "$WORK"' EXIT
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$S3P" && exec 3<>"/dev/tcp/127.0.0.1/$S3A") 2>/dev/null && break
    sleep 0.1
  done
  S3_SIGNED="s3://dest?endpoint=127.0.0.1:$S3P&scheme=http&region=us-east-1"
  S3_ANON="s3://dest?endpoint=127.0.0.1:$S3A&scheme=http&region=us-east-1"
  # Its own narinfo cache is time_one's fresh one, as for the other commands.
  SID_NIX=(in_sid env -i PATH=/usr/bin:/bin HOME=/root NIX_REMOTE=local
    "XDG_CACHE_HOME=/host$WORK/xdg-cache" "NIX_CONFIG=$NIX_CONFIG"
    nix --extra-experimental-features nix-command)
  SID_VERSION=$("${SID_NIX[@]}" --version)
fi

build_small() {
echo "== small closure: $LEAVES leaves + $((LEAVES / GROUP)) groups + top"
cat > "$WORK/closure.nix" <<EOF
let
  mk = name: script: builtins.derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ]; PATH = "/bin:/usr/bin";
  };
  leaf = i: mk "bench-leaf-\${toString i}"
    "mkdir \$out; i=0; while [ \$i -lt 64 ]; do echo leaf-\${toString i}-line-\$i-................................ >> \$out/data; i=\$((i+1)); done";
  range = a: b: if a >= b then [ ] else [ a ] ++ range (a + 1) b;
  group = g: mk "bench-group-\${toString g}"
    "mkdir \$out; echo \${toString (map leaf (range (g * $GROUP) ((g + 1) * $GROUP)))} > \$out/refs";
  groups = map group (range 0 ($LEAVES / $GROUP));
in {
  top = mk "bench-top" "mkdir \$out; echo \${toString groups} > \$out/refs";
  # 95% of the closure: the first 95% of the leaves and the groups made only of them.
  prefill = map group (range 0 (($LEAVES * 95 / 100) / $GROUP))
    ++ map leaf (range 0 ($LEAVES * 95 / 100));
}
EOF
}
build_realistic() {
  echo "== realistic closure: 3 large paths (64, 32, 16 MiB) + 297 small ones, slices of this machine's shared libraries"
  # The corpus: real binaries (ELF shared objects), in a stable order.
  find /usr/lib /lib -xdev -name '*.so*' -type f -size +64k 2>/dev/null | sort | head -400 \
    | xargs cat 2>/dev/null | head -c $((160 * 1024 * 1024)) > "$WORK/corpus" || true
  local csize
  # Builders run as Nix's build users: they must be able to read it.
  chmod 755 "$WORK"; chmod 644 "$WORK/corpus"
  csize=$(stat -c %s "$WORK/corpus")
  [[ $csize -ge $((120 * 1024 * 1024)) ]] || { echo "corpus too small ($csize bytes)" >&2; exit 1; }
  cat > "$WORK/closure.nix" <<EOF
let
  mk = name: script: builtins.derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ]; PATH = "/bin:/usr/bin";
  };
  # A slice of the corpus: OFF and LEN in KiB.
  slice = name: off: len: mk name
    "mkdir -p \$out/lib; dd if=$WORK/corpus of=\$out/lib/\${name}.so bs=1024 skip=\${toString off} count=\${toString len} status=none";
  range = a: b: if a >= b then [ ] else [ a ] ++ range (a + 1) b;
  small = i: slice "real-small-\${toString i}" (i * 97) (16 + (i * 37) - ((i * 37) / 496) * 496);
  smalls = map small (range 0 297);
  large = [ (slice "real-large-a" 0 65536) (slice "real-large-b" 40000 32768) (slice "real-large-c" 90000 16384) ];
  top = mk "real-top" "mkdir \$out; echo \${toString (smalls ++ large)} > \$out/refs";
in {
  inherit top;
  # 95%: everything but the top and the last 14 small paths.
  prefill = large ++ map small (range 0 283);
}
EOF
}

for closure in ${CLOSURES:-small realistic}; do
  "build_$closure"
  t0=$(date +%s.%N)
  TOP=$(nix-build "$WORK/closure.nix" -A top --no-out-link 2>"$WORK/build.log") \
    || { tail -20 "$WORK/build.log" >&2; exit 1; }
  mapfile -t PREFILL < <(nix-build "$WORK/closure.nix" -A prefill --no-out-link 2>>"$WORK/build.log")
  t1=$(date +%s.%N)
  TOTAL=$(nix-store -qR "$TOP" | wc -l)
  printf 'built/checked in %.1f s: closure of %d paths (%s of NAR), pre-fill %d paths (%d%%)\n' \
    "$(echo "$t1 - $t0" | bc)" "$TOTAL" \
    "$("${NIX[@]}" path-info -S "$TOP" | awk '{printf "%.1f MiB", $2 / 1048576}')" \
    "$(nix-store -qR "${PREFILL[@]}" | wc -l)" \
    "$(( $(nix-store -qR "${PREFILL[@]}" | wc -l) * 100 / TOTAL ))"
  rm -rf "$WORK/prefilled" "$WORK/empty" "$WORK/full"
  mkdir -p "$WORK/prefilled" "$WORK/empty"
  "${NIX[@]}" copy --to "file://$WORK/prefilled?compression=zstd" "${PREFILL[@]}" 2>>"$WORK/build.log"
  "${NIX[@]}" copy --to "file://$WORK/full?compression=zstd" "$TOP" 2>>"$WORK/build.log"
  echo "== $("${NIX[@]}" --version), $(nproc) cores, $TOTAL paths"
  for t in $TARGETS; do
    case $t in
      file) urls=("file://$WORK/dest"); NIXCOPY=("${NIX[@]}" copy) ;;
      http) urls=("$HTTP"); NIXCOPY=("${NIX[@]}" copy) ;;
      s3)
        # Nix 2.34 copies from its own store: the closure goes there first (from the
        # full cache, so nothing is built twice).
        "${SID_NIX[@]}" copy --no-check-sigs --from "file:///host$WORK/full" "$TOP" 2>>"$WORK/build.log"
        urls=("$S3_SIGNED" "$S3_ANON")
        NIXCOPY=("${SID_NIX[@]}" copy)
        echo "   (nix copy: $SID_VERSION in the sid chroot, to the anonymous endpoint)"
        ;;
    esac
    echo "-- $t"
    scenario "95% already cached:" "$WORK/prefilled" "${urls[@]}"
    scenario "all cached (re-push):" "$WORK/full" "${urls[@]}"
    scenario "empty cache:" "$WORK/empty" "${urls[@]}"
  done
done
