#!/usr/bin/env bash
# What history costs: the repository's growth when 10 % of a 200-track library is retagged,
# and whether the old snapshot still reads back exactly through the mount.
#
#   scripts/bench-history.sh MUSICFS_BINARY WORKDIR
#
# Library: scripts/gen-audio-lib.sh, 5 formats (mp3, flac, oggenc, opus, m4a) x 4 albums x 10
# tracks = 200 tracks of 30 s, one embedded cover per album. Steps:
#   1. scan it into a new repository; record `du -sb` of the repository, of index.redb and of
#      objects/ (the history packs)
#   2. retag every tenth track (20 tracks, 4 per format) with a real tag editor: a title of
#      about 80 characters (id3v2, metaflac, kid3-cli, mutagen for Ogg), and scan again;
#      record the same sizes: the growth is what the retag cost the repository
#   3. mount the repository and compare the first snapshot with a copy of the library made
#      before the retag (cmp of every file)
# Needs: ffmpeg, id3v2, flac, kid3-cli, vorbis-tools, python3 with mutagen, fuse3 (root).
set -euo pipefail

bin=$(realpath "${1:?usage: bench-history.sh MUSICFS_BINARY WORKDIR}")
work=${2:?usage: bench-history.sh MUSICFS_BINARY WORKDIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$work"
work=$(realpath "$work")
lib=$work/lib
repo=$work/repo

if [[ ! -d $work/generated ]]; then
    "$here/gen-audio-lib.sh" "$work/generated" --albums 4 --tracks 10 --seconds 30 \
        --formats mp3,flac,oggenc,opus,m4a >&2
fi
rm -rf "$lib" "$work/before" "$repo" "$work/mnt"
cp -a "$work/generated" "$lib"
cp -a "$lib" "$work/before"

sizes() {
    local total index objects
    total=$(du -sb "$repo" | cut -f1)
    index=$(stat -c %s "$repo/index.redb")
    objects=$(du -sb "$repo/objects" 2>/dev/null | cut -f1 || echo 0)
    echo "$total $index $objects"
}

"$bin" --repo "$repo" init >/dev/null
"$bin" --repo "$repo" -q scan "$lib"
read -r total1 index1 objects1 < <(sizes)
kept1=$("$bin" --repo "$repo" --json check | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"]["kept_chunks"])')

mapfile -t tracks < <(cd "$lib" && find . -type f ! -name '*.jpg' | sort)
retagged=0
for ((i = 0; i < ${#tracks[@]}; i += 10)); do
    f=$lib/${tracks[$i]#./}
    title="Retagged: a new title for track $i, long enough to be a real one ($(date +%s))"
    case "$f" in
        *.mp3) id3v2 -t "$title" "$f" ;;
        *.flac) metaflac --remove-tag=TITLE --set-tag="TITLE=$title" "$f" ;;
        *.m4a) kid3-cli -c "set title '$title' 2" "$f" ;;
        *.ogg | *.opus) python3 "$here/tagbench.py" set-title "$f" "$title" ;;
    esac
    retagged=$((retagged + 1))
done
"$bin" --repo "$repo" -q scan "$lib"
read -r total2 index2 objects2 < <(sizes)
kept2=$("$bin" --repo "$repo" --json check | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"]["kept_chunks"])')

mkdir -p "$work/mnt"
"$bin" --repo "$repo" mount "$work/mnt" >/dev/null
origin=$(ls "$work/mnt")
latest=$(readlink "$work/mnt/$origin/latest")
old=$(ls "$work/mnt/$origin" | grep -v -e '^latest$' -e "^$latest\$")
exact=0
differ=0
while IFS= read -r -d '' f; do
    rel=${f#"$work/before/"}
    if cmp -s "$f" "$work/mnt/$origin/$old/$rel"; then
        exact=$((exact + 1))
    else
        differ=$((differ + 1))
    fi
done < <(find "$work/before" -type f -print0)
fusermount3 -u "$work/mnt"

library=$(du -sb "$work/before" | cut -f1)
cat <<EOF
| | after the first scan | after retagging $retagged of ${#tracks[@]} tracks | growth |
|---|---:|---:|---:|
| repository (du -sb) | $total1 | $total2 | $((total2 - total1)) |
| index.redb | $index1 | $index2 | $((index2 - index1)) |
| objects/ (history packs) | $objects1 | $objects2 | $((objects2 - objects1)) |
| kept chunks | $kept1 | $kept2 | $((kept2 - kept1)) |

Library: $library bytes. First snapshot through the mount: $exact files exact, $differ differ.
EOF
