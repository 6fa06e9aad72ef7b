#!/bin/sh
# Memory of the process serving `musicfs mount`: its RSS (VmRSS, and the peak VmHWM, from
# /proc/PID/status) once mounted, after walking every entry (`ls -lR`), and after reading
# every file (`cat` to /dev/null), with the growth per walked entry. Each run is a fresh mount
# of the same snapshot; the medians of RUNS runs come last.
#
# The library: FILES small files (500 B to 4 KiB, 100 per album directory, 10 albums per
# artist) and BIG files of 4 MiB (random bytes, so nothing deduplicates: 256 MiB by default,
# twice the default cache, so that reading them fills the chunk cache).
# Usage: scripts/bench-mount-mem.sh MUSICFS_BINARY WORKDIR [FILES [BIG [RUNS]]]
#   (as root, fuse3 installed; CACHE_MIB sets --cache-size; defaults 100000 64 3)
set -e
BIN=$1; W=$2; FILES=${3:-100000}; BIG=${4:-64}; RUNS=${5:-3}
CACHE=${CACHE_MIB:+--cache-size $CACHE_MIB}
if [ ! -d "$W/repo" ]; then
    mkdir -p "$W/lib" "$W/mnt"
    python3 -c "
import os, random, sys
root, files, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(14)
for i in range(files):
    d = f'{root}/lib/artist{i // 1000:03}/album{i // 100 % 10:02}'
    if i % 100 == 0:
        os.makedirs(d)
    open(f'{d}/{i % 100:02} track number {i:06}.mp3', 'wb').write(rng.randbytes(rng.randint(500, 4096)))
os.makedirs(f'{root}/lib/big')
for i in range(big):
    open(f'{root}/lib/big/long mix {i:03}.flac', 'wb').write(os.urandom(4 << 20))
" "$W" "$FILES" "$BIG"
    "$BIN" --repo "$W/repo" init >/dev/null
    "$BIN" --repo "$W/repo" scan -q "$W/lib"
fi

kib() { awk -v k="$1" '$1 == k ":" { print $2 }' "/proc/$PID/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

: >"$W/runs"
run=1
while [ "$run" -le "$RUNS" ]; do
    # shellcheck disable=SC2086
    "$BIN" --repo "$W/repo" mount --foreground $CACHE "$W/mnt" 2>/dev/null &
    PID=$!
    while ! ls "$W/mnt" | grep -q .; do sleep 0.05; done
    S="$W/mnt/$(ls "$W/mnt" | head -1)/latest/"
    start=$(kib VmRSS)
    ls -lR "$S" >/dev/null
    entries=$(find "$S" -mindepth 1 | wc -l)
    walked=$(kib VmRSS)
    find "$S" -type f -exec cat {} + >/dev/null
    read=$(kib VmRSS)
    peak=$(kib VmHWM)
    fusermount3 -u "$W/mnt"
    wait $PID
    per_entry=$(( (walked - start) * 1024 / entries ))
    echo "run $run: $entries entries; RSS mounted $(mib "$start") MiB, walked $(mib "$walked") MiB ($per_entry B/entry), read $(mib "$read") MiB, peak $(mib "$peak") MiB"
    echo "$start $walked $per_entry $read $peak" >>"$W/runs"
    run=$((run + 1))
done
median() { cut -d' ' -f"$1" "$W/runs" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median of $RUNS: RSS mounted $(mib "$(median 1)") MiB, walked $(mib "$(median 2)") MiB ($(median 3) B/entry), read $(mib "$(median 4)") MiB, peak $(mib "$(median 5)") MiB"
