#!/usr/bin/env bash
# Generate a library of REAL encoded audio with Debian's ffmpeg, for benchmarks and tests.
#
#   scripts/gen-audio-lib.sh DIR [--albums N] [--tracks T] [--seconds S]
#                                [--formats mp3,flac,ogg,oggenc,opus,m4a,wav,aiff] [--jobs J]
#                                [--covers all|ffmpeg]
#
# Layout: DIR/<format>/<Artist>/<Album>/NN Title.<ext>, N albums (default 1) of T tracks
# (default 10) per format, S seconds each (default 30). Every track is 44.1 kHz stereo,
# synthesised from lavfi sources (two sine voices with a slow tremolo plus seeded
# white/pink/brown noise, different for every album and track: nothing downloaded), and
# tagged with title, artist, album, album_artist, track N/T, date and genre.
#
# Encoders: mp3 libmp3lame 192k (ID3v2.3), flac level 5, ogg libvorbis q5, opus libopus 128k,
# m4a AAC 192k (moov first, as iTunes writes it), wav PCM s16le (LIST/INFO), aiff PCM s16be
# (ID3v2 chunk). Format "oggenc" is Ogg Vorbis too (q5, files named .ogg) from the reference
# encoder, vorbis-tools' oggenc, instead of ffmpeg: its pages follow libogg's layout, which
# vorbiscomment keeps, whereas vorbiscomment re-paginates the whole of an ffmpeg-made file
# (ffmpeg cuts a page per second of audio, libogg about every 4 KB).
#
# Covers: one 600x600 JPEG per album (a testsrc2 frame with seeded noise, ~70-110 KB), the
# same bytes embedded in every track of the album. ffmpeg embeds it in mp3 (APIC), flac
# (PICTURE), m4a (covr) and aiff (APIC in the ID3 chunk). ffmpeg 5.1 cannot embed a picture
# in Ogg or WAV, so with --covers all (the default) mutagen does it afterwards through
# scripts/tagbench.py (Ogg METADATA_BLOCK_PICTURE, WAV "id3 " chunk); --covers ffmpeg leaves
# those formats without a cover and needs no mutagen.
#
# Deterministic: the same arguments and versions of ffmpeg, oggenc and mutagen give the same bytes
# (bit-exact flags, fixed seeds, fixed Ogg serials). File mtimes are set to 2024-01-01.
set -euo pipefail

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=""
albums=1
tracks=10
seconds=30
formats="mp3,flac,ogg,oggenc,opus,m4a,wav,aiff"
jobs=$(nproc 2>/dev/null || echo 4)
covers=all
while (($#)); do
    case "$1" in
        --albums) albums=${2:?}; shift 2 ;;
        --tracks) tracks=${2:?}; shift 2 ;;
        --seconds) seconds=${2:?}; shift 2 ;;
        --formats) formats=${2:?}; shift 2 ;;
        --jobs) jobs=${2:?}; shift 2 ;;
        --covers) covers=${2:?}; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "gen-audio-lib: unknown option $1" >&2; usage ;;
        *) [[ -z $dir ]] || usage; dir=$1; shift ;;
    esac
done
[[ -n $dir ]] || usage
for n in "$albums" "$tracks" "$seconds" "$jobs"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "gen-audio-lib: not a positive integer: $n" >&2; exit 2; }
done
((tracks <= 99)) || { echo "gen-audio-lib: at most 99 tracks per album" >&2; exit 2; }
[[ $covers == all || $covers == ffmpeg ]] || { echo "gen-audio-lib: --covers all|ffmpeg" >&2; exit 2; }
IFS=, read -r -a fmts <<<"$formats"
for f in "${fmts[@]}"; do
    case "$f" in mp3|flac|ogg|oggenc|opus|m4a|wav|aiff) ;; *)
        echo "gen-audio-lib: unknown format '$f' (mp3,flac,ogg,oggenc,opus,m4a,wav,aiff)" >&2; exit 2 ;;
    esac
done

command -v ffmpeg >/dev/null || { echo "gen-audio-lib: ffmpeg not found: apt-get install ffmpeg" >&2; exit 2; }
encoders=$(ffmpeg -hide_banner -encoders 2>/dev/null)
for enc in libmp3lame libvorbis libopus; do
    grep -q " $enc " <<<"$encoders" ||
        { echo "gen-audio-lib: this ffmpeg lacks the $enc encoder (Debian's ffmpeg has it)" >&2; exit 2; }
done
for f in "${fmts[@]}"; do
    [[ $f != oggenc ]] || command -v oggenc >/dev/null ||
        { echo "gen-audio-lib: oggenc not found: apt-get install vorbis-tools" >&2; exit 2; }
done
python=${MUSICFS_PYTHON:-python3}
needs_mutagen=0
if [[ $covers == all ]]; then
    for f in "${fmts[@]}"; do [[ $f == ogg || $f == oggenc || $f == opus || $f == wav ]] && needs_mutagen=1; done
fi
if ((needs_mutagen)); then
    command -v "$python" >/dev/null || { echo "gen-audio-lib: $python not found: apt-get install python3" >&2; exit 2; }
    "$python" -c 'import mutagen' 2>/dev/null || {
        echo "gen-audio-lib: python module mutagen not found (for Ogg/WAV covers): pip install mutagen," >&2
        echo "  or pass --covers ffmpeg to leave Ogg and WAV without a cover" >&2
        exit 2
    }
fi

mkdir -p "$dir"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@"; }
bitexact=(-fflags +bitexact -flags:a +bitexact -flags:v +bitexact -map_metadata -1)

words=(Amber Blue Breath Candle Cinder Dawn Drift Echo Ember Fable Field Glass Harbor Hollow
       Iron Lantern Meadow Mirror North Ocean Paper Quiet River Salt Shadow Silver Solace
       Stone Summer Thunder Velvet Winter Willow)
genres=(Ambient Classical Electronic Folk Jazz Rock)
colors=(white pink brown)

artist_of() { printf 'Synth Ensemble %02d' "$1"; }
album_of() { printf 'Album %02d' "$1"; }
# Deterministic two-word title for album $1, track $2.
title_of() {
    local a=$1 t=$2 n=${#words[@]}
    echo "${words[$(((a * 7 + t * 3) % n))]} ${words[$(((a * 11 + t * 5 + 1) % n))]}"
}

# Cover for album $1: a frame of testsrc2 at an album-dependent time, with seeded noise so
# that it weighs what real artwork does.
make_cover() {
    local a=$1 out=$2
    ff -f lavfi -i "testsrc2=size=600x600:rate=25" -ss "$((a % 20)).$((a * 37 % 100))" -frames:v 1 \
        -vf "noise=alls=12:allf=u:all_seed=$a" -q:v 3 -fflags +bitexact -flags:v +bitexact "$out"
}

# The source PCM of album $1, track $2, as a WAV in the scratch directory.
make_source() {
    local a=$1 t=$2 out=$3
    # Two voices a fifth apart on a pitch set by album and track, a slow tremolo, noise.
    local step=$(((a * 7 + t * 5) % 36))
    local f1 f2 color=${colors[$(((a + t) % 3))]} seed=$((a * 1000 + t))
    f1=$(awk -v s="$step" 'BEGIN { printf "%.3f", 110 * 2 ^ (s / 12) }')
    f2=$(awk -v f="$f1" 'BEGIN { printf "%.3f", f * 1.5 }')
    ff -f lavfi -i "aevalsrc=0.30*sin(2*PI*$f1*t)*(0.6+0.4*sin(2*PI*0.$((t % 9 + 1))*t))|0.25*sin(2*PI*$f2*t)*(0.7+0.3*sin(2*PI*0.3*t)):s=44100:d=$seconds" \
        -f lavfi -i "anoisesrc=d=$seconds:c=$color:seed=$seed:a=0.06:r=44100" \
        -filter_complex "[1:a]pan=stereo|c0=c0|c1=c0[n];[0:a][n]amix=inputs=2:normalize=0" \
        -c:a pcm_s16le "${bitexact[@]}" "$out"
}

# Encode one track: format, album, track.
encode() {
    local fmt=$1 a=$2 t=$3
    local artist album title genre nn src cover out d
    artist=$(artist_of "$a"); album=$(album_of "$a"); title=$(title_of "$a" "$t")
    genre=${genres[$(((a - 1) % ${#genres[@]}))]}
    nn=$(printf %02d "$t")
    src="$scratch/src-$a-$t.wav"; cover="$scratch/cover-$a.jpg"
    d="$dir/$fmt/$artist/$album"
    mkdir -p "$d"
    local ext=$fmt
    [[ $fmt == oggenc ]] && ext=ogg
    out="$d/$nn $title.$ext"
    local meta=(-metadata "title=$title" -metadata "artist=$artist" -metadata "album_artist=$artist"
                -metadata "album=$album" -metadata "track=$t/$tracks" -metadata "date=2024"
                -metadata "genre=$genre")
    local pic=(-i "$cover" -map 0:a -map 1:v -c:v copy -disposition:v attached_pic
               -metadata:s:v "title=Album cover" -metadata:s:v "comment=Cover (front)")
    case "$fmt" in
        mp3)  ff -i "$src" "${pic[@]}" -c:a libmp3lame -b:a 192k "${bitexact[@]}" "${meta[@]}" \
                 -id3v2_version 3 "$out" ;;
        flac) ff -i "$src" "${pic[@]}" -c:a flac -compression_level 5 "${bitexact[@]}" "${meta[@]}" "$out" ;;
        ogg)  ff -i "$src" -c:a libvorbis -q:a 5 "${bitexact[@]}" "${meta[@]}" \
                 -serial_offset "$((a * 100 + t))" "$out" ;;
        oggenc) oggenc --quiet -q 5 --serial "$((a * 100 + t))" -c "TITLE=$title" -c "ARTIST=$artist" \
                   -c "ALBUMARTIST=$artist" -c "ALBUM=$album" -c "TRACKNUMBER=$t/$tracks" \
                   -c "DATE=2024" -c "GENRE=$genre" -o "$out" "$src" ;;
        opus) ff -i "$src" -c:a libopus -b:a 128k "${bitexact[@]}" "${meta[@]}" \
                 -serial_offset "$((a * 100 + t))" "$out" ;;
        m4a)  ff -i "$src" "${pic[@]}" -c:a aac -b:a 192k "${bitexact[@]}" "${meta[@]}" \
                 -movflags +faststart "$out" ;;
        wav)  ff -i "$src" -c:a pcm_s16le "${bitexact[@]}" "${meta[@]}" "$out" ;;
        aiff) ff -i "$src" "${pic[@]}" -c:a pcm_s16be "${bitexact[@]}" "${meta[@]}" \
                 -write_id3v2 1 "$out" ;;
    esac
    if [[ $covers == all && ( $fmt == ogg || $fmt == oggenc || $fmt == opus || $fmt == wav ) ]]; then
        "$python" "$here/tagbench.py" set-cover "$out" "$cover"
    fi
}

# Run "$@" in the background, at most $jobs at a time; a failure stops the script.
pids=()
spawn() {
    "$@" &
    pids+=($!)
    if ((${#pids[@]} >= jobs)); then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
}
drain() {
    local p
    for p in "${pids[@]}"; do wait "$p"; done
    pids=()
}

for ((a = 1; a <= albums; a++)); do
    spawn make_cover "$a" "$scratch/cover-$a.jpg"
    for ((t = 1; t <= tracks; t++)); do
        spawn make_source "$a" "$t" "$scratch/src-$a-$t.wav"
    done
done
drain
for ((a = 1; a <= albums; a++)); do
    for fmt in "${fmts[@]}"; do
        for ((t = 1; t <= tracks; t++)); do
            spawn encode "$fmt" "$a" "$t"
        done
    done
done
drain

for fmt in "${fmts[@]}"; do
    find "$dir/$fmt" -exec touch -h -d "2024-01-01 00:00:00 UTC" {} +
done
total=$(du -sb "$dir" | cut -f1)
echo "gen-audio-lib: $((albums * tracks * ${#fmts[@]})) tracks ($albums album(s) x $tracks tracks x ${#fmts[@]} formats, ${seconds} s each), $total bytes under $dir" >&2
