#!/usr/bin/env bash
# Fetch mutagen 1.48.1's test files (100 real and deliberately broken audio files) into
# target/mutagen-corpus/, for tests/mutagen_corpus.rs. They are not committed: the source
# package is fetched from PyPI with pip and its tests/data directory unpacked.
#
#   scripts/fetch-mutagen-corpus.sh [DIR]      (default: target/mutagen-corpus)
#
# Idempotent: an existing, complete corpus is left alone. The download is checked against
# the sha256 of mutagen-1.48.1.tar.gz, and the corpus appears under its final name only once
# completely unpacked. Needs python3 with pip (Debian: apt-get install python3-pip).
set -euo pipefail

version=1.48.1
sha256=8f95637ab9f6f305cec6bd1294e197debe207998e3e068596563c74f86b0a173
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-$repo_root/target/mutagen-corpus}
python=${MUSICFS_PYTHON:-python3}

if [[ -f $dest/.complete ]]; then
    echo "fetch-mutagen-corpus: $dest already holds mutagen $version's test files" >&2
    exit 0
fi

command -v "$python" >/dev/null || { echo "fetch-mutagen-corpus: $python not found: apt-get install python3" >&2; exit 2; }
"$python" -m pip --version >/dev/null 2>&1 ||
    { echo "fetch-mutagen-corpus: pip not found for $python: apt-get install python3-pip" >&2; exit 2; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if ! "$python" -m pip download --quiet --no-deps --no-binary :all: "mutagen==$version" -d "$scratch/dl" >&2; then
    echo "fetch-mutagen-corpus: pip could not fetch mutagen==$version (network or index unreachable?)" >&2
    exit 1
fi
sdist="$scratch/dl/mutagen-$version.tar.gz"
[[ -f $sdist ]] || { echo "fetch-mutagen-corpus: pip did not produce $(basename "$sdist")" >&2; exit 1; }
got=$(sha256sum "$sdist" | cut -d' ' -f1)
if [[ $got != "$sha256" ]]; then
    echo "fetch-mutagen-corpus: sha256 mismatch for $(basename "$sdist"): got $got, expected $sha256" >&2
    exit 1
fi

tar -xzf "$sdist" -C "$scratch" "mutagen-$version/tests/data"
data="$scratch/mutagen-$version/tests/data"
count=$(find "$data" -type f | wc -l)
((count >= 90)) || { echo "fetch-mutagen-corpus: only $count files in tests/data" >&2; exit 1; }
touch "$data/.complete"

mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial" "$dest"
mv "$data" "$dest.partial"
mv "$dest.partial" "$dest"
echo "fetch-mutagen-corpus: $count files from mutagen $version's tests/data in $dest" >&2
