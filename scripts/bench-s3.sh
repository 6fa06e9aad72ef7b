#!/usr/bin/env bash
# musicfs against `rclone sync` on one S3 server on 127.0.0.1, the bytes and HTTP requests on
# the wire counted by a proxy in between (scripts/countproxy.py --http), not by the tools.
#
#   scripts/bench-s3.sh            (Debian 12; see the environment below)
#
# The server is a single-node Garage (crates.io `garage` 2.x, the binary scripts/test.sh builds
# and caches) when there is one, else moto_server (PyPI `moto[server]`, the venv scripts/test.sh
# installs). moto is Python and slow: with it the wall times mean little, the bytes and requests
# still do. A counting proxy sits in front of the server; every tool's endpoint is the proxy.
# A generated library (scripts/genlib.py: MP3-like files with an ID3v2.4 tag and an album-wide
# picture) is pushed by each tool under its own prefix of one bucket and pulled back into a
# directory of its own.
#
# Scenarios, in order (after each pull, the pulled tree must equal the library: `diff -r`):
#   initial     push into an empty prefix, then pull into an empty directory
#   no-change   push again, pull again                            (REPS runs, median and range)
#   retag       the title rewritten in 10 % of the tracks (genlib.py retag), push, pull
#   cover       a new 96 KiB picture in every track of one album (mutagen), push, pull
#   reorganise  every file moved to DIR/<Genre>/<Artist - Album>/ (genlib.py reorganise), push, pull
# The tools run interleaved: all pushes, then all pulls; their order rotates from one scenario
# run to the next.
#
# Tools (TOOLS, default "mirror store rclone"):
#   mirror    musicfs plain mirror (one object per file): `musicfs sync --delete LIB
#             s3://bench/mirror` and `musicfs sync --delete s3://bench/mirror DIR`
#   store     musicfs chunk store: `musicfs init s3://bench/store` once, then `musicfs sync LIB
#             s3://bench/store` (push: `--delete` is refused there, a push only adds a snapshot)
#             and `musicfs sync --delete s3://bench/store DIR`
#   rclone    `rclone sync LIB s3:bench/rclone` and back (provider Other, path style, defaults
#             otherwise: size and modification time compared, 4 transfers, 8 checkers)
# Each musicfs side (pushing, pulling) has a repository of its own, as two machines would.
#
# Environment:
#   FILES=240       tracks in the library
#   MEAN_SIZE=2M    their mean size (±50 %)
#   REPS=3          runs of the no-change scenario
#   TOOLS="mirror store rclone"
#   SERVER=auto     garage, moto, or auto (garage when its binary exists, else moto)
#   GARAGE=PATH     garage binary (default: MUSICFS_TEST_GARAGE, else the cache scripts/test.sh fills)
#   MOTO=PATH       moto_server (default: the venv scripts/test.sh installs)
#   MUSICFS=PATH    musicfs binary under test (default: `cargo build --release` here)
#   OUT=FILE        also write the Markdown report to FILE
#   KEEP=0          1: keep the work directory (its path is printed)
#
# Needs: python3 (with mutagen, for the cover scenario), rclone (Debian package rclone), garage
# or moto_server, diffutils; cargo unless MUSICFS is given. Nothing is installed: a missing tool
# is named and the script exits 1. The Markdown report goes to stdout (and OUT); progress to
# stderr. A failed run exits 1 naming the step and the log that explains it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

cmdline=""
for v in FILES MEAN_SIZE REPS TOOLS SERVER GARAGE MOTO MUSICFS OUT KEEP; do
    [[ -n ${!v:-} ]] || continue
    val=${!v}
    [[ $val =~ [[:space:]] ]] && val="\"$val\""
    cmdline+="$v=$val "
done
cmdline+="scripts/bench-s3.sh"

FILES=${FILES:-240}
MEAN_SIZE=${MEAN_SIZE:-2M}
REPS=${REPS:-3}
TOOLS=${TOOLS:-mirror store rclone}
SERVER=${SERVER:-auto}
OUT=${OUT:-}
KEEP=${KEEP:-0}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/musicfs-test
GARAGE=${GARAGE:-${MUSICFS_TEST_GARAGE:-$cache/garage/bin/garage}}
MOTO=${MOTO:-$cache/moto-venv/bin/moto_server}

me=bench-s3
source "$scripts/bench-common.sh"

(($# == 0)) || die "no arguments: configure through the environment (see the head of $0)"
for n in "$FILES" "$REPS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive integer: $n"
done
need python3 python3
need diff diffutils
python3 -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"

read -r -a tools <<<"$TOOLS"
((${#tools[@]} > 0)) || die "TOOLS is empty (mirror, store, rclone)"
for t in "${tools[@]}"; do
    case "$t" in mirror|store|rclone) ;; *) die "unknown tool '$t' in TOOLS (mirror, store, rclone)" ;; esac
done
[[ " ${tools[*]} " == *" rclone "* ]] && need rclone rclone

case "$SERVER" in
    auto) if [[ -x $GARAGE ]]; then SERVER=garage; else SERVER=moto; fi ;;
    garage|moto) ;;
    *) die "unknown SERVER '$SERVER' (garage, moto, auto)" ;;
esac
if [[ $SERVER == garage ]]; then
    [[ -x $GARAGE ]] || die "no garage binary at $GARAGE: scripts/test.sh builds it (cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,lmdb), or set GARAGE"
else
    [[ -x $MOTO ]] || die "no moto_server at $MOTO: bash scripts/test.sh installs it (a venv with moto[server]), or set MOTO"
fi

musicfs_binary

work=$(mktemp -d /tmp/bench-s3.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if ((KEEP)); then say "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT


# --- the server ------------------------------------------------------------------------------
if [[ $SERVER == garage ]]; then
    # One node is enough for a benchmark (tests/support/garage.rs starts three for the
    # multi-site test). Blocks are stored uncompressed: the audio would not compress, and zstd
    # would only spend the server's share of the two cores.
    g=$work/garage
    mkdir -p "$g"
    s3_port=$(free_port)
    rpc_port=$(free_port)
    cat >"$g/garage.toml" <<EOF
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "lmdb"
replication_factor = 1
consistency_mode = "consistent"
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
[s3_api]
api_bind_addr = "127.0.0.1:$s3_port"
s3_region = "garage"
EOF
    RUST_LOG=warn "$GARAGE" -c "$g/garage.toml" server >"$g/garage.log" 2>&1 &
    pids+=($!)
    wait_port "$rpc_port" garage "$g/garage.log"
    wait_port "$s3_port" garage "$g/garage.log"
    garage_cli() { # retried while the node settles, up to 30 s
        local _ out
        for _ in $(seq 120); do
            if out=$(RUST_LOG=warn "$GARAGE" -c "$g/garage.toml" "$@" 2>&1); then
                printf '%s\n' "$out"
                return 0
            fi
            sleep 0.25
        done
        printf '%s\n' "$out" >>"$g/garage.log"
        die "garage $1 $2 failed (see $g/garage.log)"
    }
    node=$(garage_cli node id -q)
    garage_cli layout assign -z dc1 -c 10G "${node%%@*}" >/dev/null
    garage_cli layout apply --version 1 >/dev/null
    garage_cli bucket create bench >/dev/null
    key_id=GK0123456789abcdef01234567
    key_secret=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    garage_cli key import --yes -n bench "$key_id" "$key_secret" >/dev/null
    garage_cli bucket allow --read --write --owner bench --key bench >/dev/null
    server_port=$s3_port region=garage
    server_log=$g/garage.log
    server_desc="Garage $("$GARAGE" --version 2>/dev/null | sed -n '1s/^garage \(cargo:\)\{0,1\}\([^ ]*\).*/\2/p'), one node (LMDB, uncompressed blocks)"
else
    server_port=$(free_port)
    "$MOTO" -H 127.0.0.1 -p "$server_port" >"$work/moto.log" 2>&1 &
    pids+=($!)
    wait_port "$server_port" moto_server "$work/moto.log"
    key_id=bench key_secret=bench-secret region=us-east-1
    server_log=$work/moto.log
    server_desc="moto_server $("$(dirname "$MOTO")/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?')"
fi

# --- the proxy ---------------------------------------------------------------------------------
coproc PROXY { exec python3 "$scripts/countproxy.py" --http --target-port "$server_port" 2>"$work/proxy.log"; }
pids+=("$PROXY_PID")
read -r proxy_port control_port <&"${PROXY[0]}" || die "the counting proxy did not start (see $work/proxy.log)"
exec {ctl}<>"/dev/tcp/127.0.0.1/$control_port"
# take: the traffic since the last take, "UP DOWN CONNS OPEN REQS", once every connection has
# closed; a connection still open after the proxy's 10 s wait makes the counts incomplete.
proxy_take() {
    local line up down conns open reqs
    printf 'take\n' >&"$ctl"
    read -r line <&"$ctl" || die "the counting proxy stopped (see $work/proxy.log)"
    read -r up down conns open reqs <<<"$line"
    [[ $open == 0 ]] || die "$open connection(s) still open 10 s after $1: the counts would be incomplete (see $work/proxy.log)"
    printf '%s %s %s\n' "$up" "$down" "$reqs"
}

export AWS_ACCESS_KEY_ID=$key_id AWS_SECRET_ACCESS_KEY=$key_secret AWS_REGION=$region
export AWS_ENDPOINT_URL="http://127.0.0.1:$proxy_port"
export RCLONE_CONFIG=/dev/null
export RCLONE_CONFIG_S3_TYPE=s3 RCLONE_CONFIG_S3_PROVIDER=Other RCLONE_CONFIG_S3_ENV_AUTH=true
export RCLONE_CONFIG_S3_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_S3_REGION=$AWS_REGION
export RCLONE_CONFIG_S3_FORCE_PATH_STYLE=true
# rclone loads AWS_CA_BUNDLE even for a plain-HTTP endpoint, and a bundle meant for the real
# AWS (as this sandbox sets) makes it fail: rclone runs without it.
rclone_() { env -u AWS_CA_BUNDLE rclone "$@"; }
if [[ $SERVER == moto ]]; then
    # Garage's bucket exists already; moto starts empty.
    python3 - "$AWS_ENDPOINT_URL" <<'EOF' || die "cannot create the bucket (see $server_log)"
import sys, urllib.request
# An unsigned CreateBucket: moto does not check signatures.
urllib.request.urlopen(urllib.request.Request(sys.argv[1] + "/bench", method="PUT"), timeout=10)
EOF
fi
proxy_take "the set-up" >/dev/null

machine="$(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at the start; musicfs $("$musicfs" --version | cut -d' ' -f2)"
command -v rclone >/dev/null && machine+=", $(rclone --version | sed -n 1p)"

# --- the library -------------------------------------------------------------------------------
lib=$work/lib
say "generating $FILES tracks of about $MEAN_SIZE (genlib.py)"
python3 "$scripts/genlib.py" create "$lib" --files "$FILES" --seed 7 --mean-size "$MEAN_SIZE" 2>/dev/null
lib_bytes=$(find "$lib" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')
lib_files=$(find "$lib" -type f | wc -l)

for side in push pull; do
    for t in mirror store; do
        mkdir -p "$work/repo-$t-$side"
        "$musicfs" init "$work/repo-$t-$side" >/dev/null
    done
done
if [[ " ${tools[*]} " == *" store "* ]]; then
    MUSICFS_REPO=$work/repo-store-push "$musicfs" init s3://bench/store >"$work/init-store.log" 2>&1 ||
        die "musicfs init s3://bench/store failed (see $work/init-store.log)"
    proxy_take "musicfs init s3://bench/store" >/dev/null
fi

push() {
    case "$1" in
        mirror) MUSICFS_REPO=$work/repo-mirror-push "$musicfs" --json sync --delete "$lib" s3://bench/mirror ;;
        store) MUSICFS_REPO=$work/repo-store-push "$musicfs" --json sync "$lib" s3://bench/store ;;
        rclone) rclone_ sync "$lib" s3:bench/rclone ;;
    esac
}
pull() {
    case "$1" in
        mirror) MUSICFS_REPO=$work/repo-mirror-pull "$musicfs" --json sync --delete s3://bench/mirror "$work/pull-mirror" ;;
        store) MUSICFS_REPO=$work/repo-store-pull "$musicfs" --json sync --delete s3://bench/store "$work/pull-store" ;;
        rclone) rclone_ sync s3:bench/rclone "$work/pull-rclone" ;;
    esac
}

rows=$work/rows.tsv
: >"$rows"
# measure SCENARIO TOOL DIRECTION: runs the push or pull, records its wall time and the proxy's
# counts in rows.tsv; a pull's tree must then equal the library.
measure() {
    local scenario=$1 tool=$2 dir=$3 start end up down reqs log=$work/log/$1-$2-$3
    mkdir -p "$work/log"
    start=$(date +%s.%N)
    "$dir" "$tool" >"$log.out" 2>"$log.err" ||
        die "$scenario: $dir with $tool failed (see $log.err)"
    end=$(date +%s.%N)
    read -r up down reqs < <(proxy_take "$scenario: $dir with $tool")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$scenario" "$tool" "$dir" \
        "$(python3 -c "print(f'{$end - $start:.3f}')")" "$up" "$down" "$reqs" >>"$rows"
    say "  $dir $tool: $up B up, $down B down, $reqs requests"
    if [[ $dir == pull ]]; then
        diff -r "$lib" "$work/pull-$tool" >"$log.diff" 2>&1 ||
            die "$scenario: $tool's pulled tree differs from the library (see $log.diff)"
    fi
}
turn=0
scenario() {
    local name=$1 i t order=()
    say "$name"
    for i in "${!tools[@]}"; do order+=("${tools[(i + turn) % ${#tools[@]}]}"); done
    turn=$((turn + 1))
    for t in "${order[@]}"; do measure "$name" "$t" push; done
    for t in "${order[@]}"; do measure "$name" "$t" pull; done
}

scenario initial
for r in $(seq "$REPS"); do scenario "no-change#$r"; done
retagged=$(python3 "$scripts/genlib.py" retag "$lib" --fraction 0.1 --seed 11 2>&1 | sed -n 's/.*retagged \([0-9]*\) of.*/\1/p')
[[ -n $retagged ]] || die "genlib.py retag reported nothing"
scenario retag
cover_bytes=$((96 * 1024))
cover_files=$(python3 - "$lib" "$cover_bytes" <<'EOF'
import os, sys
from mutagen.id3 import ID3, APIC
root, size = sys.argv[1], int(sys.argv[2])
album = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".mp3"))
album_dir = os.path.dirname(album[0])
picture = bytes((i * 7919) % 251 for i in range(size))
names = sorted(os.listdir(album_dir))
for name in names:
    tags = ID3(os.path.join(album_dir, name))
    tags.delall("APIC")
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="cover", data=picture))
    tags.save()
print(len(names))
EOF
)
scenario cover
python3 "$scripts/genlib.py" reorganise "$lib" 2>/dev/null
scenario reorganise

# --- the report ------------------------------------------------------------------------------
report() {
    PYTHONPATH="$scripts" python3 - "$rows" "$lib_bytes" "$lib_files" "$REPS" "$retagged" "$cover_files" "$cover_bytes" \
        "$(date -u +%Y-%m-%d)" "$cmdline" "$server_desc" "$machine" <<'EOF'
import sys
from benchtable import Runs, num
(rows_file, lib_bytes, files, reps, retagged, cover_files, cover_bytes, day, cmdline,
 server, machine) = sys.argv[1:]
lib_bytes, files, reps = int(lib_bytes), int(files), int(reps)
retagged, cover_files, cover_bytes = int(retagged), int(cover_files), int(cover_bytes)
runs = Runs(rows_file, 3)
groups, order, med = runs, runs.order, runs.med
print(f"### S3: musicfs against rclone ({day})")
print()
print(f"`{cmdline}` — {files:,} tracks, {lib_bytes:,} bytes; {server} on 127.0.0.1; TCP payload and")
print("HTTP requests counted by scripts/countproxy.py --http in front of it. No-change: median of")
print(f"{reps} run{'s' if reps > 1 else ''} (range in brackets). Up is client to server, down server to client.")
print(f"{machine}.")
print()
runs.transfer_table()
print()
tools = []
for _, t, _ in order:
    if t not in tools:
        tools.append(t)
def total(scenario, tool, direction):
    key = (scenario, tool, direction)
    return med(key, 1) + med(key, 2)
print("Against the issue's goals (bytes are up + down of the direction named):")
print()
print("| Figure | " + " | ".join(tools) + " | Goal |")
print("|---|" + "---:|" * len(tools) + "---|")
def line(label, goal, f):
    cells = []
    for t in tools:
        try:
            cells.append(f(t))
        except KeyError:
            cells.append("—")
    print(f"| {label} | " + " | ".join(cells) + f" | {goal} |")
gb = lib_bytes / 1e9
line("initial push: requests per GB of library", "", lambda t: f"{med(('initial', t, 'push'), 3) / gb:,.0f}")
line("initial push: bytes / library", "≤ 1.01", lambda t: f"{total('initial', t, 'push') / lib_bytes:.3f}")
line("initial pull: bytes / library", "≤ 1.01", lambda t: f"{total('initial', t, 'pull') / lib_bytes:.3f}")
line("no-change push: requests; bytes", "a handful; < 8 KiB", lambda t: f"{num(med(('no-change', t, 'push'), 3))}; {num(total('no-change', t, 'push'))} B")
line("no-change pull: requests; bytes", "", lambda t: f"{num(med(('no-change', t, 'pull'), 3))}; {num(total('no-change', t, 'pull'))} B")
rc = lambda d: total("retag", "rclone", d) if ("retag", "rclone", d) in groups else None
def per_file(t, d):
    if retagged == 0:
        return "—"
    b = total("retag", t, d)
    s = f"{b / retagged / 1024:,.1f} KiB"
    if rc(d) and t != "rclone":
        s += f" (rclone / this: {rc(d) / b:,.1f}×)"
    return s
line(f"retag of {retagged} files, push: bytes per file", "< 10 KiB, ≥ 20× less than rclone", lambda t: per_file(t, "push"))
line(f"retag of {retagged} files, pull: bytes per file", "< 10 KiB, ≥ 20× less than rclone", lambda t: per_file(t, "pull"))
line(f"new {cover_bytes // 1024} KiB cover on {cover_files} tracks, push: bytes / picture", "about 1", lambda t: f"{total('cover', t, 'push') / cover_bytes:,.2f}")
line(f"new {cover_bytes // 1024} KiB cover on {cover_files} tracks, pull: bytes / picture", "about 1", lambda t: f"{total('cover', t, 'pull') / cover_bytes:,.2f}")
line("reorganise, push: % of library", "< 1 %", lambda t: f"{100 * total('reorganise', t, 'push') / lib_bytes:.3f} %")
line("reorganise, pull: % of library", "< 1 %", lambda t: f"{100 * total('reorganise', t, 'pull') / lib_bytes:.3f} %")
EOF
}
if [[ -n $OUT ]]; then report | tee "$OUT"; else report; fi
