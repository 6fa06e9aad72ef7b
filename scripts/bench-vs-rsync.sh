#!/usr/bin/env bash
# Run musicfs and `rsync -a --delete` side by side on one generated library,
# local directory to local directory, and print a Markdown table.
#
# Scenarios, in order, on one library made by scripts/genlib.py:
#   initial     sync into an empty DST                     (once per tool)
#   no-change   sync again, nothing changed                (REPS times, tools interleaved)
#   retag       after `genlib.py retag --fraction 0.1`     (once per tool)
#   reorganise  after `genlib.py reorganise`               (once per tool)
# Each tool has its own DST (dst-rsync, dst-musicfs), and both are exact
# copies of SRC before SRC is changed, so both start from the same state;
# a DST left wrong by a failed run is repaired (unmeasured) and that is noted.
#
# Every run is measured by a fresh scripts/measure.py process (wall time, CPU,
# process-tree I/O from /proc/self/io, peak RSS), then checked with
# `diff -r SRC DST` plus a comparison of sizes, mtimes (ns) and modes.
#
# Environment:
#   FILES=1000          files in the library (~10 per album, 5 albums per artist)
#   MEAN_SIZE=2M        mean file size (bytes, or K/M/G), sizes vary ±50%
#   SEED=1              generator seed
#   REPS=3              repetitions of the no-change scenario
#   WORK=/tmp/musicfs-bench   work directory (src, dst-*, repo, logs, results)
#   MUSICFS=target/release/musicfs   (build it with `cargo build --release`)
#   TOOLS="rsync musicfs"   tools to run; musicfs is skipped with a warning if
#                           its binary has no working `sync` subcommand
#   RSYNC_EXTRA_OPTS=""   extra rsync options, e.g. --no-whole-file to force
#                         the delta algorithm rsync uses over a network
#   DROP_CACHES=0       1: drop the page cache before each run (needs root and
#                       a writable /proc/sys/vm/drop_caches); default: warm cache
#   KEEP=0              1: keep src/dst/repo afterwards (results are always kept)
#
# Output: the table on stdout and in $WORK/results.md; every run's raw record
# in $WORK/runs.jsonl; each command's stdout/stderr in $WORK/logs/.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scripts="$repo_root/scripts"

FILES=${FILES:-1000}
MEAN_SIZE=${MEAN_SIZE:-2M}
SEED=${SEED:-1}
REPS=${REPS:-3}
WORK=${WORK:-/tmp/musicfs-bench}
MUSICFS=${MUSICFS:-$repo_root/target/release/musicfs}
TOOLS=${TOOLS:-rsync musicfs}
RSYNC_EXTRA_OPTS=${RSYNC_EXTRA_OPTS:-}
DROP_CACHES=${DROP_CACHES:-0}
KEEP=${KEEP:-0}

src="$WORK/src"
runs="$WORK/runs.jsonl"
logs="$WORK/logs"
notes=()

say() { printf 'bench: %s\n' "$*" >&2; }
note() { notes+=("$*"); say "note: $*"; }

for cmd in rsync diff python3 find du; do
  command -v "$cmd" >/dev/null || { say "$cmd not found"; exit 2; }
done

read -r -a tools <<<"$TOOLS"
read -r -a rsync_extra <<<"$RSYNC_EXTRA_OPTS"
enabled=()
for tool in "${tools[@]}"; do
  case "$tool" in
    rsync) enabled+=(rsync) ;;
    musicfs)
      if [[ ! -x "$MUSICFS" ]]; then
        note "musicfs skipped: $MUSICFS is not an executable (run \`cargo build --release\`)"
      elif ! "$MUSICFS" sync --help 2>&1 | grep -qi 'usage'; then
        note "musicfs skipped: \`$MUSICFS sync --help\` prints no usage (no sync subcommand yet?)"
      else
        enabled+=(musicfs)
      fi ;;
    *) say "unknown tool: $tool (expected rsync, musicfs)"; exit 2 ;;
  esac
done
[[ ${#enabled[@]} -gt 0 ]] || { say "no tool to run"; exit 2; }

# Only the directories this script owns are removed, never $WORK itself.
mkdir -p "$WORK"
rm -rf "$src" "$WORK/dst-rsync" "$WORK/dst-musicfs" "$WORK/repo" "$logs" "$runs" "$WORK/results.md"
mkdir -p "$logs"
if [[ " ${enabled[*]} " == *" musicfs "* ]]; then
  "$MUSICFS" -q init "$WORK/repo"
fi

flush_caches() {
  sync
  if [[ "$DROP_CACHES" == 1 ]]; then
    if ! { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
      note "DROP_CACHES=1 but /proc/sys/vm/drop_caches is not writable: page cache stays warm"
      DROP_CACHES=0
    fi
  fi
}

declare -A dst_ok=()

# run_tool TOOL SCENARIO REP: one measured and checked sync SRC -> DST of TOOL.
run_tool() {
  local tool=$1 scenario=$2 rep=$3
  local dst="$WORK/dst-$tool" cmd
  case "$tool" in
    rsync) cmd=(rsync -a --delete --stats "${rsync_extra[@]}" "$src/" "$dst/") ;;
    musicfs) cmd=("$MUSICFS" --repo "$WORK/repo" sync "$src" "$dst" --delete --json) ;;
  esac
  mkdir -p "$dst"
  flush_caches
  if python3 "$scripts/measure.py" run --out "$runs" --tool "$tool" --scenario "$scenario" --rep "$rep" \
       --stdout "$logs/$scenario-$tool-$rep.out" --stderr "$logs/$scenario-$tool-$rep.err" \
       --verify "$src" "$dst" -- "${cmd[@]}"; then
    dst_ok[$tool]=1
  else
    dst_ok[$tool]=0
    say "$tool $scenario: failed, see $logs/$scenario-$tool-$rep.{out,err} and $runs"
  fi
}

# Before a one-shot scenario, every DST must equal SRC; repair those that don't.
ensure_dst_in_step() {
  local scenario=$1 tool
  for tool in "${enabled[@]}"; do
    if [[ "${dst_ok[$tool]:-0}" != 1 ]]; then
      rsync -a --delete "$src/" "$WORK/dst-$tool/"
      note "before '$scenario': dst-$tool did not match SRC after its last run and was repaired with rsync (unmeasured)"
      dst_ok[$tool]=1
    fi
  done
}

# Interleave: alternate which tool goes first.
ordered_tools() {
  local first=$1
  if (( first % 2 == 1 )); then printf '%s\n' "${enabled[@]}"; else printf '%s\n' "${enabled[@]}" | tac; fi
}

say "generating $FILES files, mean size $MEAN_SIZE, seed $SEED, in $src"
python3 "$scripts/genlib.py" create "$src" --files "$FILES" --seed "$SEED" --mean-size "$MEAN_SIZE"
lib_bytes=$(find "$src" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
lib_files=$(find "$src" -type f | wc -l)

say "scenario: initial"
mapfile -t order < <(ordered_tools 1)
for tool in "${order[@]}"; do run_tool "$tool" initial 1; done

say "scenario: no-change ($REPS repetitions, interleaved)"
for ((rep = 1; rep <= REPS; rep++)); do
  mapfile -t order < <(ordered_tools "$rep")
  for tool in "${order[@]}"; do run_tool "$tool" no-change "$rep"; done
done

say "scenario: retag"
ensure_dst_in_step retag
python3 "$scripts/genlib.py" retag "$src" --fraction 0.1 --seed "$((SEED + 1))"
mapfile -t order < <(ordered_tools 2)
for tool in "${order[@]}"; do run_tool "$tool" retag 1; done

say "scenario: reorganise"
ensure_dst_in_step reorganise
python3 "$scripts/genlib.py" reorganise "$src"
mapfile -t order < <(ordered_tools 1)
for tool in "${order[@]}"; do run_tool "$tool" reorganise 1; done

if [[ -d "$WORK/repo" ]]; then
  note "musicfs repository size after all scenarios: $(du -sb "$WORK/repo" | cut -f1) bytes"
fi

rsync_version=$(rsync --version | sed -n 1p)
musicfs_version="not run"
if [[ " ${enabled[*]} " == *" musicfs "* ]]; then
  musicfs_version=$("$MUSICFS" --version 2>/dev/null | sed -n 1p) || musicfs_version="unknown version"
fi
cache_note="page cache warm (SRC was just written or read; nothing is dropped between runs)"
[[ "$DROP_CACHES" == 1 ]] && cache_note="page cache dropped before each run"
cmdline="FILES=$FILES MEAN_SIZE=$MEAN_SIZE SEED=$SEED REPS=$REPS"
[[ -n "$RSYNC_EXTRA_OPTS" ]] && cmdline+=" RSYNC_EXTRA_OPTS='$RSYNC_EXTRA_OPTS'"

report_args=(--title "musicfs vs rsync, local → local: $lib_files files, $lib_bytes bytes")
report_args+=(--note "command: \`$cmdline scripts/bench-vs-rsync.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r)")
report_args+=(--note "tools: $rsync_version (\`rsync -a --delete --stats${RSYNC_EXTRA_OPTS:+ $RSYNC_EXTRA_OPTS}\`); musicfs: $musicfs_version (\`musicfs --repo REPO sync SRC DST --delete --json\`)")
report_args+=(--note "$cache_note; no-change is the median of $REPS interleaved runs (range in brackets), other scenarios run once per tool from identical DSTs")
report_args+=(--note "read()/write() bytes: rchar/wchar of the process tree (pipes included: local rsync's three processes pass the data through pipes); block-layer: read_bytes/write_bytes; moved: rsync's 'Total bytes sent' (its sender→receiver protocol stream) or musicfs's summary bytes_transferred")
report_args+=(--note "check: \`diff -r SRC DST\` plus per-file size, mtime (ns) and mode; 'ok' means identical")
for n in "${notes[@]}"; do report_args+=(--note "$n"); done

python3 "$scripts/measure.py" report "$runs" "${report_args[@]}" | tee "$WORK/results.md"

if [[ "$KEEP" != 1 ]]; then
  rm -rf "$src" "$WORK/dst-rsync" "$WORK/dst-musicfs" "$WORK/repo"
fi
say "results in $WORK/results.md, raw records in $runs"
