#!/usr/bin/env bash
# musicfs against `rclone sync` on one S3 server on 127.0.0.1, the bytes and HTTP requests on
# the wire counted by a proxy in between (scripts/countproxy.py --http), not by the tools.
#
#   scripts/bench-s3.sh            (Debian 12; see the environment below)
#
# It starts moto_server (PyPI `moto[server]`, the venv scripts/test.sh installs) on a free port
# and a counting proxy in front of it; every tool's endpoint is the proxy. A generated library
# (scripts/genlib.py: MP3-like files with an ID3v2.4 tag and an album-wide picture) is pushed to
# the bucket by each tool, under its own prefix, and pulled back into a directory of its own.
#
# Scenarios, in order (after each pull, the pulled tree must equal the library: `diff -r`):
#   initial     push into an empty prefix, then pull into an empty directory
#   no-change   push again, pull again                                (REPS runs, median)
#   retag       the title rewritten in 10 % of the tracks (genlib.py retag), push, pull
#   cover       a new picture in every track of one album (mutagen), push, pull
#   reorganise  every file moved to DIR/<Genre>/<Artist - Album>/ (genlib.py reorganise), push, pull
# The tools run interleaved, in the order of TOOLS.
#
# Tools (TOOLS, default "musicfs rclone"):
#   musicfs   musicfs --json sync --delete LIB s3://bench/musicfs and back (a plain mirror: one
#             object per file), each side with its own repository
#   rclone    rclone sync LIB s3:bench/rclone and back (provider Other, path style)
#
# Environment:
#   FILES=240       tracks in the library
#   MEAN_SIZE=2M    their mean size (±50 %)
#   REPS=3          runs of the no-change scenario
#   TOOLS="musicfs rclone"
#   MUSICFS=PATH    musicfs binary under test (default: `cargo build --release` here)
#   MOTO=PATH       moto_server (default: the venv scripts/test.sh installs)
#   OUT=FILE        also write the Markdown report to FILE
#   KEEP=0          1: keep the work directory (its path is printed)
#
# Needs: python3 (mutagen, for the cover scenario), rclone (Debian package rclone), moto_server,
# diffutils; cargo unless MUSICFS is given. Nothing is installed: a missing tool is named and the
# script exits 1. The Markdown report goes to stdout (and OUT); progress to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

cmdline=""
for v in FILES MEAN_SIZE REPS TOOLS MUSICFS MOTO OUT KEEP; do
    [[ -n ${!v:-} ]] || continue
    val=${!v}
    [[ $val =~ [[:space:]] ]] && val="\"$val\""
    cmdline+="$v=$val "
done
cmdline+="scripts/bench-s3.sh"

FILES=${FILES:-240}
MEAN_SIZE=${MEAN_SIZE:-2M}
REPS=${REPS:-3}
TOOLS=${TOOLS:-musicfs rclone}
OUT=${OUT:-}
KEEP=${KEEP:-0}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/musicfs-test
MOTO=${MOTO:-$cache/moto-venv/bin/moto_server}

say() { printf 'bench-s3: %s\n' "$*" >&2; }
die() { printf 'bench-s3: %s\n' "$*" >&2; exit 1; }

(($# == 0)) || die "no arguments: configure through the environment (see the head of $0)"
for n in "$FILES" "$REPS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"; }
need python3 python3
need rclone rclone
need diff diffutils
[[ -x $MOTO ]] || die "no moto_server at $MOTO: bash scripts/test.sh installs it (a venv with moto[server]), or set MOTO"
python3 -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"

read -r -a tools <<<"$TOOLS"
for t in "${tools[@]}"; do
    case "$t" in musicfs|rclone) ;; *) die "unknown tool '$t' (musicfs, rclone)" ;; esac
done
musicfs=${MUSICFS:-}
if [[ -z $musicfs ]]; then
    need cargo "Rust (https://rustup.rs)"
    say "building musicfs (cargo build --release)"
    (cd "$repo_root" && cargo build --release --quiet --bin musicfs) || die "cargo build --release failed"
    musicfs=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/musicfs
fi
[[ -x $musicfs ]] || die "no musicfs binary at $musicfs"

work=$(mktemp -d /tmp/bench-s3.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if ((KEEP)); then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- the server and the proxy -------------------------------------------------------------
moto_port=$(free_port)
"$MOTO" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $moto_port), 0.2)" 2>/dev/null && break
    sleep 0.1
done
coproc PROXY { exec python3 "$scripts/countproxy.py" --http --target-port "$moto_port"; }
pids+=("$PROXY_PID")
read -r proxy_port control_port <&"${PROXY[0]}"
exec {ctl}<>"/dev/tcp/127.0.0.1/$control_port"
proxy_take() {
    printf 'take\n' >&"$ctl"
    local line
    read -r line <&"$ctl"
    printf '%s\n' "$line"
}

# A CA bundle for the real AWS would make rclone refuse a plain-HTTP endpoint.
unset AWS_CA_BUNDLE
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port"
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENV_AUTH=true
export RCLONE_CONFIG_S3_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_S3_REGION=$AWS_REGION
export RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true
rclone mkdir s3:bench >/dev/null 2>&1 || die "cannot create the bucket through rclone (see $work/moto.log)"

# --- the library ----------------------------------------------------------------------------
lib=$work/lib
say "generating $FILES tracks of about $MEAN_SIZE (genlib.py)"
python3 "$scripts/genlib.py" create "$lib" --files "$FILES" --seed 7 --mean-size "$MEAN_SIZE" >/dev/null
lib_bytes=$(du -sb "$lib" | cut -f1)

push() {
    case "$1" in
        musicfs) MUSICFS_REPO=$work/repo-push "$musicfs" --json sync --delete "$lib" s3://bench/musicfs >/dev/null ;;
        rclone) rclone sync "$lib" s3:bench/rclone ;;
    esac
}
pull() {
    case "$1" in
        musicfs) MUSICFS_REPO=$work/repo-pull "$musicfs" --json sync --delete s3://bench/musicfs "$work/pull-musicfs" >/dev/null ;;
        rclone) rclone sync s3:bench/rclone "$work/pull-rclone" ;;
    esac
}
mkdir -p "$work/repo-push" "$work/repo-pull"
"$musicfs" init "$work/repo-push" >/dev/null
"$musicfs" init "$work/repo-pull" >/dev/null

rows=()
# measure SCENARIO TOOL DIRECTION: runs push or pull, records wall time and the proxy's counts.
measure() {
    local scenario=$1 tool=$2 dir=$3 start end counts
    proxy_take >/dev/null
    start=$(date +%s.%N)
    "$dir" "$tool" 2>>"$work/errors.log" || die "$dir with $tool failed in $scenario (see $work/errors.log)"
    end=$(date +%s.%N)
    counts=$(proxy_take)
    read -r up down _conns _open reqs <<<"$counts"
    rows+=("$scenario|$tool|$dir|$(python3 -c "print(f'{$end - $start:.2f}')")|$up|$down|$reqs")
    if [[ $dir == pull ]]; then
        diff -r "$lib" "$work/pull-$tool" >/dev/null || die "$tool: the pulled tree differs from the library after $scenario"
    fi
}
scenario() {
    local name=$1 t
    say "$name"
    for t in "${tools[@]}"; do measure "$name" "$t" push; done
    for t in "${tools[@]}"; do measure "$name" "$t" pull; done
}

scenario initial
for r in $(seq "$REPS"); do scenario "no-change#$r"; done
python3 "$scripts/genlib.py" retag "$lib" --fraction 0.1 --seed 11 >/dev/null
scenario retag
python3 - "$lib" <<'EOF'
import os, sys
from mutagen.id3 import ID3, APIC
root = sys.argv[1]
album = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".mp3"))
album_dir = os.path.dirname(album[0])
picture = bytes((i * 7919) % 251 for i in range(96 * 1024))
for name in sorted(os.listdir(album_dir)):
    tags = ID3(os.path.join(album_dir, name))
    tags.delall("APIC")
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=picture))
    tags.save()
EOF
scenario cover
python3 "$scripts/genlib.py" reorganise "$lib" >/dev/null
scenario reorganise

# --- the report -------------------------------------------------------------------------------
report() {
    echo "### S3: musicfs against rclone ($(date -u +%Y-%m-%d))"
    echo
    echo "\`$cmdline\` — $FILES tracks, $lib_bytes bytes; moto_server on 127.0.0.1; bytes (TCP payload) and"
    echo "HTTP requests counted by scripts/countproxy.py --http in front of it. No-change: median of $REPS."
    echo
    echo "| Scenario | Tool | Direction | Wall (s) | Bytes up | Bytes down | Requests |"
    echo "|---|---|---|---:|---:|---:|---:|"
    python3 - "${rows[@]}" <<'EOF'
import statistics, sys
rows = [r.split("|") for r in sys.argv[1:]]
groups = {}
order = []
for scenario, tool, direction, wall, up, down, reqs in rows:
    key = (scenario.split("#")[0], tool, direction)
    if key not in groups:
        groups[key] = []
        order.append(key)
    groups[key].append((float(wall), int(up), int(down), int(reqs)))
for key in order:
    runs = groups[key]
    med = lambda i: statistics.median(r[i] for r in runs)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {med(0):.2f} | {int(med(1)):,} | {int(med(2)):,} | {int(med(3))} |")
EOF
}
if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
