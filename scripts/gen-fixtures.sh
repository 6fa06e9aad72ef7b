#!/usr/bin/env bash
# Regenerate the small real-audio fixtures under fixtures/audio/ with Debian's ffmpeg.
#
# Every file is synthesised from lavfi sources (sine tones, seeded noise, test
# pictures), so nothing is downloaded. Bit-exact flags keep the output stable
# for a given ffmpeg build: re-running the script with the same ffmpeg version
# reproduces the same bytes (the script checks this itself with --check).
#
# Usage: scripts/gen-fixtures.sh [--check]
#   --check  regenerate into a temporary directory and compare with the
#            committed fixtures instead of overwriting them.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out_root="$repo_root/fixtures/audio"
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
elif [[ $# -gt 0 ]]; then
  echo "usage: $0 [--check]" >&2
  exit 2
fi

command -v ffmpeg >/dev/null || { echo "ffmpeg not found: apt-get install ffmpeg" >&2; exit 2; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [[ $check -eq 1 ]]; then
  dest="$scratch/audio"
else
  dest="$out_root"
  rm -rf "$dest"
fi
mkdir -p "$dest"

# Options that strip encoder version strings, random Ogg serials and
# creation times, and drop any metadata not set explicitly below.
bitexact=(-fflags +bitexact -flags:a +bitexact -flags:v +bitexact -map_metadata -1)
ff() { ffmpeg -hide_banner -nostdin -loglevel error -y "$@"; }

# --- cover pictures (generated, not downloaded) -----------------------------
cover_jpg="$scratch/cover.jpg"
cover_png="$scratch/cover.png"
ff -f lavfi -i "testsrc2=size=256x256:rate=1" -frames:v 1 -flags:v +bitexact -fflags +bitexact -q:v 4 "$cover_jpg"
ff -f lavfi -i "testsrc=size=200x200:rate=1" -frames:v 1 -flags:v +bitexact -fflags +bitexact \
   -pix_fmt rgb24 -compression_level 9 "$cover_png"

# tags ARTIST ALBUM TRACK/TOTAL TITLE GENRE -> ffmpeg -metadata options in $tag_opts
tags() {
  tag_opts=(-metadata "artist=$1" -metadata "album_artist=$1" -metadata "album=$2"
            -metadata "track=$3" -metadata "title=$4" -metadata "genre=$5" -metadata "date=2024")
}
# Picture-stream options: attach input 1 as the front cover.
cover_opts=(-map 0:a -map 1:v -c:v copy -disposition:v attached_pic
            -metadata:s:v "title=Album cover" -metadata:s:v "comment=Cover (front)")

sine() { echo "sine=frequency=$1:duration=$2:sample_rate=44100"; }
noise() { echo "anoisesrc=duration=$2:color=$1:amplitude=0.25:sample_rate=44100:seed=$3"; }

mkd() { mkdir -p "$dest/$1"; echo "$dest/$1"; }

# --- MP3, ID3v2.3, one album whose three tracks share one embedded JPEG -----
d=$(mkd "Aurora Tones/First Light")
i=0
for t in "Dawn:440" "Zenith:554.37" "Dusk:659.25"; do
  i=$((i + 1)); title=${t%%:*}; freq=${t##*:}
  tags "Aurora Tones" "First Light" "$i/3" "$title" "Ambient"
  ff -f lavfi -i "$(sine "$freq" 2)" -i "$cover_jpg" "${cover_opts[@]}" \
     -c:a libmp3lame -b:a 64k -ac 1 "${bitexact[@]}" "${tag_opts[@]}" \
     -id3v2_version 3 "$d/0$i $title.mp3"
done
# The same JPEG also sits beside the tracks, as folder art does in real libraries.
cp "$cover_jpg" "$d/cover.jpg"

# --- MP3, ID3v2.4 (one also with an ID3v1 trailer), no picture -------------
d=$(mkd "Aurora Tones/Night Shift")
tags "Aurora Tones" "Night Shift" "1/2" "Static" "Ambient"
ff -f lavfi -i "$(noise pink 2 11)" -c:a libmp3lame -b:a 64k -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" -id3v2_version 4 "$d/01 Static.mp3"
tags "Aurora Tones" "Night Shift" "2/2" "Mains Hum" "Ambient"
ff -f lavfi -i "$(sine 50 2)" -c:a libmp3lame -b:a 64k -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" -id3v2_version 4 -write_id3v1 1 "$d/02 Mains Hum.mp3"

# --- FLAC, Vorbis comments; one with a PICTURE block (PNG) -----------------
d=$(mkd "Lossless Ensemble/Waveforms")
tags "Lossless Ensemble" "Waveforms" "1/2" "Pure Sine" "Electronic"
ff -f lavfi -i "$(sine 880 2)" -c:a flac -ac 1 -compression_level 8 \
   "${bitexact[@]}" "${tag_opts[@]}" "$d/01 Pure Sine.flac"
tags "Lossless Ensemble" "Waveforms" "2/2" "Brown Noise" "Electronic"
ff -f lavfi -i "$(noise brown 1 22)" -i "$cover_png" "${cover_opts[@]}" \
   -c:a flac -ac 1 -compression_level 8 "${bitexact[@]}" "${tag_opts[@]}" "$d/02 Brown Noise.flac"

# --- Ogg Vorbis and Opus (non-ASCII artist name on purpose) -----------------
d=$(mkd "Café Tonal/Xiph Sessions")
tags "Café Tonal" "Xiph Sessions" "1/2" "Vorbis Tone" "Jazz"
ff -f lavfi -i "$(sine 330 2)" -c:a libvorbis -q:a 2 -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" "$d/01 Vorbis Tone.ogg"
tags "Café Tonal" "Xiph Sessions" "2/2" "Opus Noise" "Jazz"
ff -f lavfi -i "$(noise white 2 33)" -c:a libopus -b:a 32k -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" "$d/02 Opus Noise.opus"

# --- M4A (AAC in MP4): one mdat-first, one faststart (moov-first) with cover
d=$(mkd "MP4 Quartet/Containers")
tags "MP4 Quartet" "Containers" "1/2" "Plain" "Classical"
ff -f lavfi -i "$(sine 220 2)" -c:a aac -b:a 64k -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" "$d/01 Plain.m4a"
tags "MP4 Quartet" "Containers" "2/2" "Covered" "Classical"
ff -f lavfi -i "$(sine 247 2)" -i "$cover_jpg" "${cover_opts[@]}" \
   -c:a aac -b:a 64k -ac 1 "${bitexact[@]}" "${tag_opts[@]}" -movflags +faststart "$d/02 Covered.m4a"

# --- WAV with a LIST/INFO chunk ---------------------------------------------
d=$(mkd "Riff Raff/Chunks")
tags "Riff Raff" "Chunks" "1/1" "Info Block" "Rock"
ff -f lavfi -i "$(sine 523.25 1)" -c:a pcm_s16le -ar 22050 -ac 1 \
   "${bitexact[@]}" "${tag_opts[@]}" "$d/01 Info Block.wav"

# Fixed mtimes, so that copies and sync tests see the same metadata every time.
find "$dest" -type f -exec touch -d "2024-01-01 00:00:00 UTC" {} +

if [[ $check -eq 1 ]]; then
  if diff -r "$out_root" "$dest" >/dev/null; then
    echo "fixtures are up to date"
  else
    echo "fixtures differ from a fresh regeneration (different ffmpeg build?):" >&2
    diff -rq "$out_root" "$dest" >&2 || true
    exit 1
  fi
else
  total=$(du -sb "$dest" | cut -f1)
  echo "wrote $(find "$dest" -type f | wc -l) files, $total bytes, under $dest"
fi
