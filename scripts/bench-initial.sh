#!/usr/bin/env bash
# The initial sync, local directory to local directory: musicfs binaries against `rsync -a`
# (and `rsync -a` followed by `sync`, which makes its copy durable as musicfs's is), on one
# library, wall time and system calls per file.
#
#   SRC=DIR MUSICFS="name=BINARY ..." scripts/bench-initial.sh
#
# Each run writes into a new directory (a fresh repository for musicfs), so no run finds
# another's copy; directories are removed only after the table is printed (an `rm -rf` before a
# run slows the next one's file creation on ext4). The tools run interleaved, their order
# rotated from one round to the next; the table gives the median and range of the walls. With
# STRACE=1, one more run per tool under `strace -f -c` counts its system calls.
#
# Environment:
#   SRC=DIR        the library (e.g. made by scripts/genlib.py create DIR --files N --seed S)
#   MUSICFS="..."  name=path pairs of musicfs binaries (default: now=target/release/musicfs)
#   REPS=5         rounds
#   STRACE=1       also count system calls (0: skip)
#   WORK=DIR       where the copies go (default: a new directory under /tmp)
#   FRESH_FS=SIZE  each run writes into a new ext4 file system of SIZE (e.g. 12G; a loop
#                  device over a sparse file in WORK, inode tables initialised by mkfs,
#                  unmounted and removed after the run), its repository too: every run
#                  finds the same empty file system. Without it, a run that follows the
#                  removal of many files creates its own more slowly (ext4 skips recently
#                  freed inodes), which moved rsync's wall by 2x here. Needs root.
# Needs rsync, python3, and strace when STRACE=1. The Markdown table goes to stdout.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${SRC:?SRC=DIR names the library}"
SRC=$(cd "$SRC" && pwd)
MUSICFS=${MUSICFS:-now=$repo_root/target/release/musicfs}
REPS=${REPS:-5}
STRACE=${STRACE:-1}
WORK=${WORK:-$(mktemp -d /tmp/bench-initial.XXXXXX)}
mkdir -p "$WORK"

for tool in rsync python3; do
    command -v "$tool" >/dev/null || { echo "bench-initial: $tool is missing" >&2; exit 1; }
done
[[ $STRACE == 0 ]] || command -v strace >/dev/null || {
    echo "bench-initial: strace is missing (apt-get install strace, or STRACE=0)" >&2
    exit 1
}

tools=()
declare -A binary
for pair in $MUSICFS; do
    name=${pair%%=*}
    binary[$name]=${pair#*=}
    [[ -x ${binary[$name]} ]] || { echo "bench-initial: ${binary[$name]} is not executable" >&2; exit 1; }
    tools+=("musicfs-$name")
done
tools+=(rsync rsync+sync)

files=$(find "$SRC" -type f | wc -l)
bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

# run TOOL [PREFIX...]: one initial sync of SRC into a new directory (named by a counter in
# a file: run is called in command substitutions); prints the wall in s.
run() {
    local tool=$1
    shift
    local n
    n=$(($(cat "$WORK/.runs" 2>/dev/null || echo 0) + 1))
    echo "$n" >"$WORK/.runs"
    local dst="$WORK/dst-$n" repo="$WORK/repo-$n"
    local start end
    if [[ -n ${FRESH_FS:-} ]]; then
        truncate -s "$FRESH_FS" "$WORK/fs-$n.img"
        mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/fs-$n.img"
        mkdir -p "$WORK/fs-$n"
        mount -o loop "$WORK/fs-$n.img" "$WORK/fs-$n"
        dst="$WORK/fs-$n/dst" repo="$WORK/fs-$n/repo"
        sync
    fi
    case $tool in
    musicfs-*)
        local bin=${binary[${tool#musicfs-}]}
        "$bin" init "$repo" >/dev/null
        start=$(date +%s.%N)
        "$@" "$bin" --repo "$repo" -q sync "$SRC" "$dst"
        end=$(date +%s.%N)
        ;;
    rsync)
        start=$(date +%s.%N)
        "$@" rsync -a "$SRC/" "$dst/"
        end=$(date +%s.%N)
        ;;
    rsync+sync)
        start=$(date +%s.%N)
        "$@" rsync -a "$SRC/" "$dst/"
        sync -f "$dst"
        end=$(date +%s.%N)
        ;;
    esac
    diff -r "$SRC" "$dst" >/dev/null || { echo "bench-initial: $tool left $dst unlike SRC" >&2; exit 1; }
    if [[ -n ${FRESH_FS:-} ]]; then
        umount "$WORK/fs-$n"
        rm -f "$WORK/fs-$n.img"
    fi
    python3 -c "print(f'{$end - $start:.3f}')"
}

declare -A walls
for ((round = 0; round < REPS; round++)); do
    k=${#tools[@]}
    for ((i = 0; i < k; i++)); do
        tool=${tools[$(((i + round) % k))]}
        sync
        wall=$(run "$tool")
        walls[$tool]+="$wall "
        echo "bench-initial: round $((round + 1)) $tool ${wall} s" >&2
    done
done

declare -A calls
if [[ $STRACE != 0 ]]; then
    for tool in "${tools[@]}"; do
        [[ $tool == rsync+sync ]] && continue
        out="$WORK/strace-$tool.txt"
        sync
        run "$tool" strace -f -c -o "$out" >/dev/null
        calls[$tool]=$(awk '$NF == "total" {print $4}' "$out")
    done
fi

echo "Library: $SRC, $files files, $bytes bytes; $REPS interleaved rounds; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| tool | wall, median (range) | × rsync | system calls | per file |"
echo "|---|---:|---:|---:|---:|"
rsync_median=""
for tool in rsync "${tools[@]}"; do
    [[ $tool == rsync && -n $rsync_median ]] && continue
    read -r median low high < <(python3 -c "
import statistics, sys
w = sorted(float(x) for x in sys.argv[1:])
print(f'{statistics.median(w):.3f} {w[0]:.3f} {w[-1]:.3f}')" ${walls[$tool]})
    [[ -n $rsync_median ]] || rsync_median=$median
    ratio=$(python3 -c "print(f'{$median / $rsync_median:.2f}')")
    c=${calls[$tool]:-}
    per=""
    [[ -z $c ]] || per=$(python3 -c "print(f'{$c / $files:.1f}')")
    echo "| $tool | $median s ($low–$high) | $ratio | ${c:-—} | ${per:-—} |"
done
rm -rf "$WORK"
