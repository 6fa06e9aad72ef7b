#!/usr/bin/env bash
# What a retag costs on an S3 plain mirror: bytes on the wire, counted by a proxy in front of
# the S3 endpoint (scripts/countproxy.py --http), for a musicfs that builds the new objects
# from server-side copies of the old ones (UploadPartCopy) and for one that does not.
#
#   scripts/bench-s3-retag.sh BASELINE_BINARY [NEW_BINARY]
#
# BASELINE_BINARY is a musicfs without the copy path (a build of the commit before it);
# NEW_BINARY defaults to `cargo build --release` here. For each binary in turn: a fresh
# repository, a fresh copy of the library and a bucket prefix of its own; the library pushed
# (initial), then the tag of every track grown by 300 bytes (a longer title: every audio byte
# moves by 300) and pushed again (retag). After each push every object is compared with its
# file. Figures: bytes client → server (up), server → client (down), HTTP requests, wall time.
#
# Environment:
#   FILES=10          tracks
#   MIN_MIB=30 MAX_MIB=40   their sizes, spread evenly (FLAC-sized)
#   MOTO_SERVER=PATH  moto_server (default: the venv scripts/test.sh makes)
#   OUT=FILE          also write the Markdown table to FILE
#   KEEP=0            1: keep the work directory
#
# Needs: python3, moto_server (PyPI moto[server] 5). The tracks are FLAC files made here
# (fLaC, STREAMINFO, a VORBIS_COMMENT of 4,000 bytes, then incompressible "audio" starting
# with a frame sync): musicfs cuts them as it cuts real FLAC, and no encoder is needed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
baseline=${1:?usage: $0 BASELINE_BINARY [NEW_BINARY]}
new=${2:-}
if [ -z "$new" ]; then
    (cd "$here" && cargo build --release -q)
    new=$here/target/release/musicfs
fi
FILES=${FILES:-10}
MIN_MIB=${MIN_MIB:-30}
MAX_MIB=${MAX_MIB:-40}
MOTO_SERVER=${MOTO_SERVER:-${MUSICFS_MOTO_SERVER:-${XDG_CACHE_HOME:-$HOME/.cache}/musicfs-test/moto-venv/bin/moto_server}}
[ -x "$MOTO_SERVER" ] || { echo "moto_server not found at $MOTO_SERVER: install PyPI moto[server] 5 (bash scripts/test.sh does)" >&2; exit 1; }
python=$(dirname "$MOTO_SERVER")/python3
[ -x "$python" ] || python=python3

work=$(mktemp -d /tmp/musicfs-bench-s3-retag.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

moto_port=$(free_port)
"$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $moto_port), 1)" 2>/dev/null && break
    sleep 0.1
done
coproc PROXY { exec python3 "$here/scripts/countproxy.py" --http --target-port "$moto_port" 2>"$work/proxy.log"; }
pids+=($PROXY_PID)
read -r proxy_port control_port <&"${PROXY[0]}"

ctl() { python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', $control_port))
s.sendall(b'$1\n'); print(s.makefile().readline().strip())"; }

export AWS_ENDPOINT_URL=http://127.0.0.1:$proxy_port AWS_ACCESS_KEY_ID=AKIABENCH \
    AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_CONFIG_FILE=/nonexistent \
    AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE

# The library, once: FILES tracks of MIN_MIB..MAX_MIB MiB.
"$python" - "$work/lib" "$FILES" "$MIN_MIB" "$MAX_MIB" <<'EOF'
import os, sys
root, files, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(root)
for i in range(files):
    size = (lo + (hi - lo) * i // max(files - 1, 1)) * 1024 * 1024
    audio = b"\xff\xf8" + os.urandom(size - 2)
    with open(os.path.join(root, f"{i + 1:02d} Track.flac"), "wb") as f:
        f.write(b"fLaC" + bytes([0, 0, 0, 34]) + bytes(34))
        tag = (b"TITLE=Track %d " % i) * 400
        tag = tag[:4000]
        f.write(bytes([0x84]) + len(tag).to_bytes(3, "big") + tag + audio)
EOF

retag() {  # every track's tag grown by 300 bytes
    "$python" - "$1" <<'EOF'
import os, sys
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    data = open(path, "rb").read()
    n = int.from_bytes(data[43:46], "big")
    tag = data[46:46 + n] + b" (remastered)" * 30
    tag = tag[:n + 300]
    with open(path + ".new", "wb") as f:
        f.write(data[:42] + bytes([0x84]) + len(tag).to_bytes(3, "big") + tag + data[46 + n:])
    os.replace(path + ".new", path)
EOF
}

compare() {  # every object of the prefix equals its file
    "$python" - "$1" "$2" <<'EOF'
import os, sys, boto3
lib, prefix = sys.argv[1:]
# Straight to moto, not through the proxy: the check is not counted.
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:" + os.environ["MOTO_PORT"])
for name in sorted(os.listdir(lib)):
    body = s3.get_object(Bucket="bench", Key=f"{prefix}/{name}")["Body"].read()
    if body != open(os.path.join(lib, name), "rb").read():
        sys.exit(f"{prefix}/{name} differs from its file")
EOF
}
export MOTO_PORT=$moto_port
"$python" -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$moto_port').create_bucket(Bucket='bench')"

lib_bytes=$(du -sb "$work/lib" | cut -f1)
rows=()
measure() {  # LABEL BINARY: initial push, then retag push
    local label=$1 bin=$2 dir=$work/$1
    mkdir -p "$dir"
    cp -a "$work/lib" "$dir/lib"
    "$bin" -q init "$dir/repo" >/dev/null
    for scenario in initial retag; do
        [ "$scenario" = retag ] && retag "$dir/lib"
        ctl take >/dev/null
        local start end
        start=$(date +%s%N)
        MUSICFS_REPO=$dir/repo "$bin" -q sync "$dir/lib" "s3://bench/$label" >/dev/null
        end=$(date +%s%N)
        read -r up down _conns _open reqs < <(ctl take)
        compare "$dir/lib" "$label"
        rows+=("| $label | $scenario | $up | $down | $reqs | $(( (end - start) / 1000000000 )).$(( (end - start) / 100000000 % 10 )) |")
    done
}
measure before "$baseline"
measure after "$new"

report=$(
    echo "$FILES tracks, $lib_bytes bytes ($MIN_MIB–$MAX_MIB MiB each); retag: every tag grown by 300 bytes."
    echo
    echo "| musicfs | push | bytes up | bytes down | requests | wall (s) |"
    echo "|---|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
)
echo "$report"
[ -n "${OUT:-}" ] && echo "$report" >"$OUT"
ctl quit >/dev/null 2>&1 || true
