#!/usr/bin/env bash
# Bytes moved by a sync after real tag edits: musicfs vs plain FastCDC vs rsync, per format.
#
#   scripts/bench-tags.sh [--work DIR] [--albums N] [--tracks T] [--seconds S]
#                         [--formats mp3,flac,ogg,oggenc,opus,m4a,wav,aiff] [--comment-len C]
#                         [--opus-comment-len C] [--out FILE]
#
# Formats are gen-audio-lib.sh's: "ogg" is Ogg Vorbis from ffmpeg, "oggenc" Ogg Vorbis from
# vorbis-tools' oggenc (whose page layout vorbiscomment keeps; it re-paginates ffmpeg's).
# For each format it generates a library of real encoded audio (scripts/gen-audio-lib.sh:
# N albums, default 1, of T tracks, default 10, S seconds each, default 30, one embedded cover
# per album), syncs it with musicfs into DST, then applies three edits to every track in turn,
# each with a real tag editor:
#
#   same   the title replaced by one of the same length (its upper-case form)
#   grow   a comment of C characters added (default 3000; 5000 in Opus, see below): more
#          than the padding tag writers leave. In Ogg it is mutagen's edit (Picard's, beets'),
#          which lays the header pages out afresh, 4 KB each: the comment then adds a page and
#          every audio page after it is renumbered (Opus's comment header has its pages to
#          itself, hence the longer comment there). The notes give the first file's page
#          count and first audio page's sequence number before and after each Ogg edit.
#   cover  the embedded picture replaced by another JPEG, in every track of the album
#
# After each edit it records:
#   musicfs   `musicfs --json sync --dry-run SRC DST` -> bytes_transferred of the summary
#   regions   `chunk_diff --regions OLD NEW` summed over the files: bytes of NEW's chunks not
#             among OLD's, with musicfs's region chunking (no protocol, no compression)
#   plain     `chunk_diff --plain OLD NEW`: the same with FastCDC over the whole file
#   rsync     "Literal data" of `rsync -a --no-whole-file --stats SRC/ RSYNC_DST/`
# then runs the real sync and checks `diff -r SRC DST`.
#
# Tools (Debian packages): ffmpeg, id3v2, flac (metaflac), vorbis-tools (vorbiscomment, oggenc),
# kid3-cli, rsync, python3 with mutagen (pip install mutagen), cargo.
# Environment: MUSICFS and CHUNK_DIFF name prebuilt binaries (both, or neither: built with
# cargo --release); MUSICFS_PYTHON the Python with mutagen (default python3).
# The Markdown report goes to stdout (and FILE with --out); progress to stderr.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=""
albums=1
tracks=10
seconds=30
formats="mp3,flac,ogg,oggenc,opus,m4a,wav,aiff"
comment_len=3000
opus_comment_len=5000
out=""
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
    case "$1" in
        --work) work=${2:?}; shift 2 ;;
        --albums) albums=${2:?}; shift 2 ;;
        --tracks) tracks=${2:?}; shift 2 ;;
        --seconds) seconds=${2:?}; shift 2 ;;
        --formats) formats=${2:?}; shift 2 ;;
        --comment-len) comment_len=${2:?}; shift 2 ;;
        --opus-comment-len) opus_comment_len=${2:?}; shift 2 ;;
        --out) out=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        *) echo "bench-tags: unknown argument $1" >&2; usage ;;
    esac
done
for n in "$comment_len" "$opus_comment_len"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench-tags: comment lengths must be positive integers" >&2; exit 2; }
done

log() { echo "bench-tags: $*" >&2; }
die() { echo "bench-tags: $*" >&2; exit 2; }

# --- tools --------------------------------------------------------------------
need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"; }
need ffmpeg ffmpeg
need id3v2 id3v2
need metaflac flac
need vorbiscomment vorbis-tools
need oggenc vorbis-tools
need kid3-cli kid3-cli
need rsync rsync
need diff diffutils
python=${MUSICFS_PYTHON:-python3}
need "$python" python3
"$python" -c 'import mutagen' 2>/dev/null || die "python module mutagen not found: pip install mutagen"
[[ -n ${MUSICFS:-} && -n ${CHUNK_DIFF:-} ]] || command -v cargo >/dev/null ||
    die "cargo not found: install Rust (https://rustup.rs)"
tagbench=("$python" "$repo_root/scripts/tagbench.py")

# MUSICFS and CHUNK_DIFF may name prebuilt binaries; otherwise both are built here.
if [[ -z ${MUSICFS:-} || -z ${CHUNK_DIFF:-} ]]; then
    log "building musicfs and the chunk_diff example (release)"
    (cd "$repo_root" && cargo build --release --quiet --bin musicfs --example chunk_diff) ||
        die "cargo build --release --bin musicfs --example chunk_diff failed (examples/chunk_diff.rs is part of the repository)"
    target_dir=$(cd "$repo_root" && cargo metadata --format-version 1 --no-deps |
        "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
fi
musicfs=${MUSICFS:-$target_dir/release/musicfs}
chunk_diff=${CHUNK_DIFF:-$target_dir/release/examples/chunk_diff}
[[ -x $musicfs ]] || die "no musicfs binary at $musicfs"
[[ -x $chunk_diff ]] || die "no chunk_diff binary at $chunk_diff"

if [[ -z $work ]]; then
    work=$(mktemp -d -t musicfs-bench-tags.XXXXXX)
    trap 'rm -rf "$work"' EXIT
else
    rm -rf "$work"
    mkdir -p "$work"
fi

# --- library and the second cover ------------------------------------------------
log "generating $albums album(s) x $tracks tracks x ${seconds} s per format under $work/lib"
"$repo_root/scripts/gen-audio-lib.sh" "$work/lib" --albums "$albums" --tracks "$tracks" \
    --seconds "$seconds" --formats "$formats"
alt_cover="$work/alt-cover.jpg"
ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i "testsrc2=size=600x600:rate=25" \
    -ss 7.77 -frames:v 1 -vf "noise=alls=12:allf=u:all_seed=4242" -q:v 3 \
    -fflags +bitexact -flags:v +bitexact "$alt_cover"
alt_cover_size=$(stat -c %s "$alt_cover")
comment_text=$("${tagbench[@]}" text "$comment_len")

# --- edits ----------------------------------------------------------------------
# Title of a generated track, from its name: "NN Title.ext".
title_of() { local b; b=$(basename "$1"); b=${b#* }; echo "${b%.*}"; }

# Tool used for edit $2 of format $1 (shown in the table).
tool_of() {
    case "$1:$2" in
        mp3:same|mp3:grow) echo "id3v2" ;;
        flac:*) echo "metaflac" ;;
        ogg:same|oggenc:same) echo "vorbiscomment" ;;
        m4a:same|m4a:grow|wav:same|wav:grow|aiff:same|aiff:grow) echo "kid3-cli" ;;
        *) echo "mutagen" ;;
    esac
}

# Command line of edit $2 on format $1 for file $3 (an array in $cmd).
edit_cmd() {
    local fmt=$1 edit=$2 f=$3 new
    new=$(title_of "$f" | tr '[:lower:]' '[:upper:]')
    local kid3tag=2
    [[ $fmt == wav ]] && kid3tag=3  # RIFF INFO, the tag ffmpeg wrote
    case "$fmt:$edit" in
        mp3:same) cmd=(id3v2 --id3v2-only --song "$new" "$f") ;;
        mp3:grow) cmd=(id3v2 --id3v2-only --comment "$comment_text" "$f") ;;
        flac:same) cmd=(metaflac --remove-tag=TITLE "--set-tag=TITLE=$new" "$f") ;;
        flac:grow) cmd=(metaflac "--set-tag=COMMENT=$comment_text" "$f") ;;
        flac:cover) cmd=(metaflac --remove --block-type=PICTURE "$f") ;;  # then import, below
        ogg:same|oggenc:same) cmd=(vorbiscomment -R -d TITLE -t "TITLE=$new" "$f") ;;
        m4a:same|wav:same|aiff:same) cmd=(kid3-cli -c "set title '$new' $kid3tag" "$f") ;;
        m4a:grow|wav:grow|aiff:grow) cmd=(kid3-cli -c "set comment '$comment_text' $kid3tag" "$f") ;;
        opus:same) cmd=("${tagbench[@]}" set-title "$f" "$new") ;;
        ogg:grow|oggenc:grow) cmd=("${tagbench[@]}" add-comment "$f" "$comment_len") ;;
        opus:grow) cmd=("${tagbench[@]}" add-comment "$f" "$opus_comment_len") ;;
        *:cover) cmd=("${tagbench[@]}" set-cover "$f" "$alt_cover") ;;
    esac
}

# Shortened command line for the notes (the comment text as <C chars>, paths as FILE).
describe() {
    local a s=""
    for a in "$@"; do
        a=${a//"$comment_text"/<$comment_len chars>}
        a=${a//"$alt_cover"/ALT.jpg}
        if [[ $a == "$repo_root/"* ]]; then
            a=${a#"$repo_root/"}
        elif [[ -f $a ]]; then
            a=FILE
        fi
        [[ $a =~ [[:space:]\'] ]] && a="\"$a\""
        s+="$a "
    done
    echo "${s% }"
}

apply_edit() {
    local fmt=$1 edit=$2 f=$3
    edit_cmd "$fmt" "$edit" "$f"
    "${cmd[@]}" >/dev/null 2>"$work/edit.err" || {
        cat "$work/edit.err" >&2
        die "edit failed: $(describe "${cmd[@]}")"
    }
    if [[ $fmt:$edit == flac:cover ]]; then
        metaflac "--import-picture-from=3|image/jpeg|Cover (front)||$alt_cover" "$f"
    fi
}

json_field() { "$python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
summary_field() {
    # Last line of JSON Lines output on stdin, field $1.
    "$python" -c '
import json, sys
lines = [l for l in sys.stdin.read().splitlines() if l.strip()]
if not lines:
    sys.exit("no JSON output")
last = json.loads(lines[-1])
if last.get("type") != "summary":
    sys.exit("last line is not a summary: " + lines[-1])
print(last[sys.argv[1]])' "$1"
}

# --- run ------------------------------------------------------------------------
declare -a rows notes
IFS=, read -r -a fmts <<<"$formats"
for fmt in "${fmts[@]}"; do
    base="$work/$fmt"
    src="$base/src"; dst="$base/dst"; repo="$base/repo"; old="$base/old"; rsdst="$base/rsync-dst"
    mkdir -p "$base"
    cp -a "$work/lib/$fmt" "$src"
    cp -a "$src" "$rsdst"
    log "$fmt: initial sync"
    "$musicfs" -q init "$repo"
    "$musicfs" --repo "$repo" -q sync "$src" "$dst" >/dev/null
    mapfile -t files < <(cd "$src" && find . -type f | LC_ALL=C sort)
    for edit in same grow cover; do
        rm -rf "$old"
        cp -a "$src" "$old"
        pages_before=""
        if [[ $fmt == ogg || $fmt == oggenc || $fmt == opus ]]; then
            pages_before=$("${tagbench[@]}" ogg-pages "$src/${files[0]}")
        fi
        log "$fmt: $edit ($(tool_of "$fmt" "$edit")) on ${#files[@]} files"
        edited=0
        for rel in "${files[@]}"; do
            apply_edit "$fmt" "$edit" "$src/$rel"
            cmp -s "$old/$rel" "$src/$rel" || edited=$((edited + 1))
        done
        ((edited > 0)) || die "$fmt $edit: the editor changed no file"
        edit_cmd "$fmt" "$edit" "$src/${files[0]}"
        example_cmd=$(describe "${cmd[@]}")
        if [[ $fmt:$edit == flac:cover ]]; then
            example_cmd+="; metaflac \"--import-picture-from=3|image/jpeg|Cover (front)||ALT.jpg\" FILE"
        fi
        if [[ -n $pages_before ]]; then
            pages_after=$("${tagbench[@]}" ogg-pages "$src/${files[0]}")
            example_cmd+="  (first file: ${pages_before% *}→${pages_after% *} pages, first audio page seq ${pages_before#* }→${pages_after#* })"
        fi

        musicfs_bytes=$("$musicfs" --repo "$repo" --json sync --dry-run "$src" "$dst" | summary_field bytes_transferred)
        plain=0; regions=0
        for rel in "${files[@]}"; do
            j=$("$chunk_diff" --plain "$old/$rel" "$src/$rel")
            plain=$((plain + $(json_field "$j" new_bytes)))
            j=$("$chunk_diff" --regions "$old/$rel" "$src/$rel")
            regions=$((regions + $(json_field "$j" new_bytes)))
        done
        rsync_out=$(rsync -a --no-whole-file --stats "$src/" "$rsdst/")
        literal=$(awk -F': ' '/^Literal data/ { gsub(/[^0-9]/, "", $2); print $2 }' <<<"$rsync_out")
        [[ -n $literal ]] || die "no 'Literal data' line in rsync --stats output"

        "$musicfs" --repo "$repo" -q sync "$src" "$dst" >/dev/null
        diff -r "$src" "$dst" >/dev/null || die "$fmt $edit: DST differs from SRC after the sync (diff -r)"
        diff -r "$src" "$rsdst" >/dev/null || die "$fmt $edit: rsync copy differs from SRC"

        n=$edited
        ratio="n/a"
        ((literal > 0)) && ratio=$(awk -v a="$musicfs_bytes" -v b="$literal" 'BEGIN { printf "%.2f", a / b }')
        rows+=("| $fmt | $edit | $(tool_of "$fmt" "$edit") | $n | $musicfs_bytes | $((musicfs_bytes / n)) | $((regions / n)) | $plain | $((plain / n)) | $literal | $((literal / n)) | $ratio |")
        notes+=("- $fmt $edit: \`$example_cmd\`")
    done
done

# --- report ---------------------------------------------------------------------
{
    echo "### Bytes moved by a sync after tag edits"
    echo
    echo "$albums album(s) of $tracks tracks per format, ${seconds} s each, generated by"
    echo "\`scripts/gen-audio-lib.sh LIB --albums $albums --tracks $tracks --seconds $seconds --formats $formats\`"
    echo "($(ffmpeg -version | head -1 | cut -d' ' -f1-3), mutagen $("$python" -c 'import mutagen; print(mutagen.version_string)')); every track of the album edited; sizes in bytes."
    echo "Replacement cover: $alt_cover_size bytes. Grow: a comment of $comment_len characters ($opus_comment_len in Opus)."
    echo
    echo "| format | edit | editor | files | musicfs total | musicfs / file | regions / file | plain FastCDC total | plain / file | rsync literal total | rsync / file | musicfs ÷ rsync |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "- musicfs: \`musicfs --repo R --json sync --dry-run SRC DST\`, \`bytes_transferred\` of the summary line;"
    echo "  then \`musicfs --repo R sync SRC DST\` and \`diff -r SRC DST\` (identical every time)."
    echo "- regions / plain: \`cargo run --release --example chunk_diff -- --regions OLD NEW\` and \`... -- --plain OLD NEW\`,"
    echo "  \`new_bytes\` summed over the edited files (OLD = copy before the edit)."
    echo "  chunk_diff compares one file with its own previous version, so a new cover shared by the album"
    echo "  counts once per file there; musicfs's figure counts it once per sync."
    echo "- rsync: \`rsync -a --no-whole-file --stats SRC/ RSYNC_DST/\` (RSYNC_DST = SRC before the edit), \"Literal data\"."
    echo "- Edits, as run on each file (FILE) in turn:"
    printf '  %s\n' "${notes[@]}"
} | tee ${out:+"$out"}
