#!/bin/sh
# `ls -l` of a 20,000-entry directory through `musicfs mount`, 4 times per mount (the first
# run looks every entry up; the others find the attributes in the kernel's cache).
# Usage: scripts/bench-mount-ls.sh MUSICFS_BINARY WORKDIR   (as root, fuse3 installed)
set -e
BIN=$1; W=$2
if [ ! -d "$W/repo" ]; then
    mkdir -p "$W/lib/d" "$W/mnt"
    python3 -c "
import sys
for i in range(20000):
    open(f'{sys.argv[1]}/lib/d/track{i:05}.mp3', 'wb').write(b'x' * 100)
" "$W"
    "$BIN" --repo "$W/repo" init >/dev/null
    "$BIN" --repo "$W/repo" scan -q "$W/lib"
fi
"$BIN" --repo "$W/repo" mount --foreground "$W/mnt" 2>/dev/null &
PID=$!
while ! ls "$W/mnt" | grep -q .; do sleep 0.05; done
D="$W/mnt/$(ls "$W/mnt" | head -1)/latest/d"
for i in 1 2 3 4; do /usr/bin/time -f "%e s" ls -l "$D" >/dev/null; done
fusermount3 -u "$W/mnt"
wait $PID
echo "source:"
for i in 1 2 3; do /usr/bin/time -f "%e s" ls -l "$W/lib/d" >/dev/null; done
