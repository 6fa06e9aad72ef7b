#!/usr/bin/env bash
# The adoption case of issue 11, outside the test harness: a library copied by `cp -a`, handed
# to musicfs with a new repository each time, `sync --delete` repeated RUNS times with a
# deadline each. Prints how many runs hung (were killed at the deadline) or failed.
#
#   scripts/adoption-loop.sh [MUSICFS] [RUNS]     (defaults: target/release/musicfs, 50)
set -euo pipefail
bin=${1:-target/release/musicfs}
runs=${2:-50}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/src" <<'PY'
import os, random, sys
rng = random.Random(11)
for i in range(300):
    d = os.path.join(sys.argv[1], f"album{i % 10:02}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"track{i:03}.flac"), "wb") as f:
        f.write(rng.randbytes(300 * 1024))
PY
hung=0
failed=0
for _ in $(seq "$runs"); do
    rm -rf "$work/repo" "$work/dst"
    cp -a "$work/src" "$work/dst"
    # Releases before `init` created the repository implicitly.
    "$bin" -q init "$work/repo" >/dev/null 2>&1 || true
    status=0
    timeout 60 "$bin" --repo "$work/repo" -q sync --delete "$work/src" "$work/dst" || status=$?
    if [[ $status -eq 124 ]]; then
        hung=$((hung + 1))
    elif [[ $status -ne 0 ]]; then
        failed=$((failed + 1))
    fi
done
echo "adoption-loop: $runs runs, $hung hung, $failed failed"
