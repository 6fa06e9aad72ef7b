#!/usr/bin/env bash
# Repository size through churn, then `forget` and `gc`: the figures of "Repository size after
# churn and gc" in docs/benchmarks.md.
#
# On one library made by scripts/genlib.py, local directory to local directory (SRC and DST
# both recorded in one repository), it prints the repository's size (`du -sb`, as the earlier
# "Repository size" figure) and index.redb's, each as a percentage of the library's bytes:
#   initial     after `musicfs sync SRC DST` into an empty DST
#   no-change   after the same sync again
#   retag       after `genlib.py retag --fraction 0.1` and a sync
#   reorganise  after `genlib.py reorganise` and `sync --delete`
#   gc alone    after `musicfs gc` with every snapshot kept (compaction, nothing forgotten)
#   forget      after `musicfs forget --keep-last 1`
#   gc          after `musicfs gc`
# then checks that nothing was lost (`verify DST` exits 0, a rescan of SRC reads no file, a
# sync moves nothing), and records one more step:
#   retag after gc  after another `genlib.py retag --fraction 0.1` and a sync: the first
#                   writes after a compaction grow index.redb again (redb doubles a file
#                   with no free page when it needs one)
#
# Environment:
#   FILES=1000          files in the library (~2.1 GB at MEAN_SIZE=2M)
#   MEAN_SIZE=2M        mean file size (bytes, or K/M/G), sizes vary ±50%
#   SEED=1              generator seed
#   WORK=/tmp/musicfs-bench-gc   work directory (src, dst, repo)
#   MUSICFS=target/release/musicfs   (build it with `cargo build --release`)
#   KEEP=0              1: keep src/dst/repo afterwards
#
# Output: a Markdown table on stdout (and in $WORK/results.md); logs in $WORK/logs/.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

FILES=${FILES:-1000}
MEAN_SIZE=${MEAN_SIZE:-2M}
SEED=${SEED:-1}
WORK=${WORK:-/tmp/musicfs-bench-gc}
MUSICFS=${MUSICFS:-$repo_root/target/release/musicfs}
KEEP=${KEEP:-0}

me=bench-gc
source "$scripts/bench-common.sh"

[[ -x "$MUSICFS" ]] || die "no musicfs binary at $MUSICFS (cargo build --release)"
rm -rf "$WORK"
mkdir -p "$WORK/logs"
src=$WORK/src
dst=$WORK/dst
repo=$WORK/repo
"$MUSICFS" init "$repo" >/dev/null
m() { "$MUSICFS" --repo "$repo" "$@"; }

bytes_of() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

rows=()
record() {
  local step=$1 lib repo_b index_b
  lib=$(bytes_of "$src")
  repo_b=$(du -sb "$repo" | cut -f1)
  index_b=$(stat -c %s "$repo/index.redb")
  rows+=("$(awk -v s="$step" -v l="$lib" -v r="$repo_b" -v i="$index_b" 'BEGIN {
    printf "| %s | %d | %d | %.2f %% | %d | %.2f %% |", s, l, r, 100 * r / l, i, 100 * i / l }')")
  say "$step: repository $repo_b B, index.redb $index_b B, library $lib B"
}

sync_logged() {
  local name=$1; shift
  m --json sync "$@" "$src" "$dst" >"$WORK/logs/$name.json" 2>"$WORK/logs/$name.err" \
    || die "sync ($name) failed: $(tail -3 "$WORK/logs/$name.err")"
}

say "generating $FILES files, mean size $MEAN_SIZE, seed $SEED, in $src"
python3 "$scripts/genlib.py" create "$src" --files "$FILES" --seed "$SEED" --mean-size "$MEAN_SIZE"

sync_logged initial
record initial
sync_logged no-change
record no-change
python3 "$scripts/genlib.py" retag "$src" --fraction 0.1 --seed "$((SEED + 1))"
sync_logged retag
record "retag (10 %)"
python3 "$scripts/genlib.py" reorganise "$src"
sync_logged reorganise --delete
record reorganise
m --json gc >"$WORK/logs/gc-alone.json"
record "gc, every snapshot kept"
m --json forget --keep-last 1 >"$WORK/logs/forget.json"
record "forget --keep-last 1"
start=$(date +%s.%N)
m --json gc >"$WORK/logs/gc.json"
end=$(date +%s.%N)
record gc
say "gc took $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}') s: $(cat "$WORK/logs/gc.json")"

# Nothing lost: DST verifies, SRC's scan state is whole, a sync moves nothing.
m verify "$dst" >"$WORK/logs/verify.txt" || die "verify DST after gc failed"
read_after=$(m --json scan "$src" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["files_read"])')
[[ "$read_after" == 0 ]] || die "the scan after gc read $read_after files again"
moved=$(m --json sync "$src" "$dst" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_transferred"])')
[[ "$moved" == 0 ]] || die "the sync after gc moved $moved bytes"
say "after gc: verify DST ok, a rescan of SRC read 0 files, a sync moved 0 bytes"
python3 "$scripts/genlib.py" retag "$src" --fraction 0.1 --seed "$((SEED + 2))"
sync_logged retag-after-gc
record "retag (10 %) after gc"

{
  echo "| step | library bytes | repository bytes (du -sb) | % of library | index.redb bytes | % of library |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$WORK/results.md"

if [[ "$KEEP" != 1 ]]; then
  rm -rf "$src" "$dst" "$repo"
fi
