#!/usr/bin/env bash
# A sync with nothing to do, local directory to local directory: musicfs binaries against
# `rsync -a`, on a destination that already holds the library, wall time, CPU and peak RSS.
#
#   SRC=DIR DST=DIR REPO=DIR MUSICFS="name=BINARY ..." scripts/bench-nochange.sh
#
# DST must already be a copy of SRC made by `musicfs --repo REPO sync SRC DST` (so that every
# binary finds its scan state), and stays one: no run changes anything, each binary's checked
# by its summary (files_changed 0) and rsync's by its count of transferred files. The tools run
# interleaved, their order rotated from one round to the next, each under `scripts/measure.py
# run`; the table gives the median and range of the walls, the median CPU and the largest
# peak RSS.
#
# Environment:
#   SRC, DST, REPO  the library, its copy, the repository that copied it
#   MUSICFS="..."   name=path pairs of musicfs binaries (default: now=target/release/musicfs)
#   REPS=5          rounds
#   WORK=DIR        where the runs are recorded (default: a new directory under /tmp)
# Needs rsync and python3. The Markdown table goes to stdout.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${SRC:?SRC=DIR names the library}" "${DST:?DST=DIR names its copy}" "${REPO:?REPO=DIR}"
MUSICFS=${MUSICFS:-now=$repo_root/target/release/musicfs}
REPS=${REPS:-5}
WORK=${WORK:-$(mktemp -d /tmp/bench-nochange.XXXXXX)}
mkdir -p "$WORK"
runs=$WORK/runs.jsonl
: >"$runs"

tools=()
declare -A binary
for pair in $MUSICFS; do
    name=${pair%%=*}
    binary[$name]=${pair#*=}
    [[ -x ${binary[$name]} ]] || { echo "bench-nochange: ${binary[$name]} is not executable" >&2; exit 1; }
    tools+=("$name")
done
tools+=(rsync)

for ((rep = 1; rep <= REPS; rep++)); do
    n=${#tools[@]}
    for ((k = 0; k < n; k++)); do
        tool=${tools[$(((k + rep) % n))]}
        if [[ $tool == rsync ]]; then
            cmd=(rsync -a --delete --stats "$SRC/" "$DST/")
        else
            cmd=("${binary[$tool]}" --repo "$REPO" sync "$SRC" "$DST" --delete --json)
        fi
        python3 "$repo_root/scripts/measure.py" run --out "$runs" --tool "$tool" \
            --scenario no-change --rep "$rep" --stdout "$WORK/$tool.$rep.out" \
            --stderr "$WORK/$tool.$rep.err" -- "${cmd[@]}"
        if [[ $tool == rsync ]]; then
            grep -q 'Number of regular files transferred: 0' "$WORK/$tool.$rep.out" || {
                echo "bench-nochange: rsync transferred files" >&2
                exit 1
            }
        else
            grep -q '"files_changed":0' "$WORK/$tool.$rep.out" || {
                echo "bench-nochange: $tool changed files" >&2
                exit 1
            }
        fi
    done
done

python3 - "$runs" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
tools = list(dict.fromkeys(r["tool"] for r in runs))
print("| tool | wall, median (range) | CPU, median | peak RSS, largest |")
print("|---|---:|---:|---:|")
for tool in tools:
    mine = [r for r in runs if r["tool"] == tool]
    walls = sorted(r["wall_s"] for r in mine)
    cpu = statistics.median(r["user_s"] + r["sys_s"] for r in mine)
    rss = max(r["maxrss_kib"] for r in mine) / 1024
    print(f"| {tool} | {statistics.median(walls):.2f} s ({walls[0]:.2f}–{walls[-1]:.2f}) "
          f"| {cpu:.2f} s | {rss:.1f} MiB |")
EOF
