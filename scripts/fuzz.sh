#!/usr/bin/env bash
# Fuzz the container parsers (src/media/) with cargo-fuzz and libFuzzer.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Targets: mp3 flac ogg mp4 wav aiff (one per parser: parse_as and detect give regions that are
# contiguous, non-empty and cover the input, whatever the bytes) and chunking (the whole
# chunking path with the Ogg page transforms, and the header-page normalization round trip);
# all by default, in fuzz/fuzz_targets/.
#
# Installs cargo-fuzz if it is missing, seeds fuzz/corpus/<target>/ from fixtures/audio and
# fixtures/damaged (the corpus grows as libFuzzer finds new paths; it is not committed), then
# runs each target for SECONDS_PER_TARGET (default 10). A single allocation over 16 MiB or an
# input taking over 10 s counts as a crash: the parsers must never allocate or loop on what a
# size field claims. Exits 1 if any target crashed; the input that did it is in
# fuzz/artifacts/<target>/ (replay with `cargo fuzz run <target> <file>` in fuzz/).
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address) to rustc. RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them, so no nightly toolchain is needed.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root/fuzz"

seconds=${1:-10}
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
fi
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(mp3 flac ogg mp4 wav aiff chunking)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# Seeds: the fixtures of each target's container, by file extension.
seed_patterns() {
  case "$1" in
    chunking) echo "*.mp3 *.flac *.ogg *.opus *.m4a *.wav *.aiff *.aifc" ;;
    mp3) echo "*.mp3" ;;
    flac) echo "*.flac" ;;
    ogg) echo "*.ogg *.opus" ;;
    mp4) echo "*.m4a *.mp4" ;;
    wav) echo "*.wav" ;;
    aiff) echo "*.aiff *.aifc *.aif" ;;
    *) echo "fuzz.sh: unknown target $1" >&2; exit 2 ;;
  esac
}

for target in "${targets[@]}"; do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  for pattern in $(seed_patterns "$target"); do
    while IFS= read -r -d '' file; do
      # Flattened names: libFuzzer wants a flat directory.
      name=$(printf '%s' "${file#../fixtures/}" | tr '/ ' '__')
      [[ -e "$corpus/seed-$name" ]] || cp "$file" "$corpus/seed-$name"
    done < <(find ../fixtures/audio ../fixtures/damaged -type f -name "$pattern" -print0)
  done
done

cargo fuzz build -O

failed=()
summary=()
for target in "${targets[@]}"; do
  log=$(mktemp)
  echo "fuzz.sh: $target for ${seconds}s" >&2
  status=0
  cargo fuzz run -O "$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=16 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  if [[ $status -ne 0 ]]; then
    tail -n 40 "$log" >&2
    failed+=("$target")
    # libFuzzer names the input it wrote: "Test unit written to ./artifacts/<target>/crash-…".
    reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    summary+=("$target: CRASHED after ${runs:-?} executions; reproducer fuzz/${reproducer#./} (replay: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O $target ${reproducer:-artifacts/$target/})")
  else
    summary+=("$target: ${runs:-?} executions in ${seconds}s, no crash")
  fi
  rm -f "$log"
done

printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: crashes in ${failed[*]}" >&2
  exit 1
fi
