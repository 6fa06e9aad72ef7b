#!/usr/bin/env python3
"""Tag edits with mutagen, the way tag editors built on it (Picard, beets, Quod Libet) do them.

Used by scripts/gen-audio-lib.sh (covers for Ogg and WAV, which ffmpeg cannot embed),
scripts/bench-tags.sh and tests/tag_edits.rs. Every command edits FILE in place with
mutagen's defaults (its padding policy, ID3v2.4 for MP3/WAV/AIFF), like a real retag.

    tagbench.py set-title FILE TITLE        replace the title
    tagbench.py add-comment FILE LENGTH     add a comment of LENGTH characters (deterministic text)
    tagbench.py set-cover FILE IMAGE        replace every embedded picture by IMAGE (front cover)
    tagbench.py show FILE                   print the tags mutagen sees (pictures as sizes)
    tagbench.py text LENGTH                 print the comment text add-comment would add
    tagbench.py ogg-pages FILE              print "PAGES FIRST_AUDIO_SEQ": the file's page count
                                            and the sequence number of its first audio page

Formats: MP3, FLAC, Ogg Vorbis, Ogg Opus, MP4/M4A, WAV, AIFF.
"""

from __future__ import annotations

import base64
import sys

try:
    import mutagen
    from mutagen.aiff import AIFF
    from mutagen.flac import FLAC, Picture
    from mutagen.id3 import APIC, COMM, ID3FileType, TIT2
    from mutagen.mp3 import MP3
    from mutagen.mp4 import MP4, MP4Cover
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis
    from mutagen.wave import WAVE
except ImportError:
    sys.exit("tagbench: python module mutagen not found: pip install mutagen")

WORDS = ("amber blue breath candle cinder dawn drift echo ember fable field glass harbor "
         "hollow iron lantern meadow mirror north ocean paper quiet river salt shadow").split()


def open_file(path: str):
    f = mutagen.File(path)
    if f is None:
        sys.exit(f"tagbench: mutagen does not recognise {path}")
    return f


def id3_of(f):
    if f.tags is None:
        f.add_tags()
    return f.tags


def comment_text(length: int) -> str:
    out, i = [], 0
    while len(" ".join(out)) < length:
        out.append(WORDS[(i * 7 + 3) % len(WORDS)])
        i += 1
    text = " ".join(out)[:length]
    # Never end on a space: shells and editors trim it.
    return text[:-1] + "." if text.endswith(" ") else text


def mime_of(data: bytes) -> str:
    return "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"


def flac_picture(data: bytes) -> Picture:
    p = Picture()
    p.type = 3  # front cover
    p.mime = mime_of(data)
    p.desc = "Cover (front)"
    p.data = data
    return p


def set_title(path: str, title: str) -> None:
    f = open_file(path)
    if isinstance(f, (MP3, WAVE, AIFF)) or isinstance(f, ID3FileType):
        id3_of(f).setall("TIT2", [TIT2(encoding=3, text=[title])])
    elif isinstance(f, MP4):
        f.tags["\xa9nam"] = [title]
    elif isinstance(f, (FLAC, OggVorbis, OggOpus)):
        f.tags["title"] = [title]
    else:
        sys.exit(f"tagbench: unsupported format {type(f).__name__}: {path}")
    f.save()


def add_comment(path: str, length: int) -> None:
    text = comment_text(length)
    f = open_file(path)
    if isinstance(f, (MP3, WAVE, AIFF)) or isinstance(f, ID3FileType):
        id3_of(f).add(COMM(encoding=3, lang="eng", desc="", text=[text]))
    elif isinstance(f, MP4):
        f.tags["\xa9cmt"] = [text]
    elif isinstance(f, (FLAC, OggVorbis, OggOpus)):
        f.tags["comment"] = [text]
    else:
        sys.exit(f"tagbench: unsupported format {type(f).__name__}: {path}")
    f.save()


def set_cover(path: str, image: str) -> None:
    with open(image, "rb") as fh:
        data = fh.read()
    f = open_file(path)
    if isinstance(f, (MP3, WAVE, AIFF)) or isinstance(f, ID3FileType):
        tags = id3_of(f)
        tags.delall("APIC")
        tags.add(APIC(encoding=3, mime=mime_of(data), type=3, desc="Cover (front)", data=data))
    elif isinstance(f, MP4):
        fmt = MP4Cover.FORMAT_PNG if mime_of(data) == "image/png" else MP4Cover.FORMAT_JPEG
        if f.tags is None:
            f.add_tags()
        f.tags["covr"] = [MP4Cover(data, imageformat=fmt)]
    elif isinstance(f, FLAC):
        f.clear_pictures()
        f.add_picture(flac_picture(data))
    elif isinstance(f, (OggVorbis, OggOpus)):
        block = base64.b64encode(flac_picture(data).write()).decode("ascii")
        f.tags["metadata_block_picture"] = [block]
    else:
        sys.exit(f"tagbench: unsupported format {type(f).__name__}: {path}")
    f.save()


def show(path: str) -> None:
    f = open_file(path)
    print(type(f).__name__, f.info.pprint())
    for key, value in sorted((f.tags or {}).items()):
        text = repr(value)
        if len(text) > 120:
            text = f"<{len(text)} characters>"
        print(f"  {key} = {text}")
    if isinstance(f, FLAC):
        for p in f.pictures:
            print(f"  PICTURE type {p.type} {p.mime} {len(p.data)} bytes")


def ogg_pages(path: str) -> None:
    """Header pages have granule position 0; the first page with another is audio."""
    pages, first_audio = 0, None
    with open(path, "rb") as fh:
        while True:
            header = fh.read(27)
            if len(header) < 27 or header[:4] != b"OggS":
                break
            granule = int.from_bytes(header[6:14], "little")
            seq = int.from_bytes(header[18:22], "little")
            lacing = fh.read(header[26])
            fh.seek(sum(lacing), 1)
            pages += 1
            if first_audio is None and granule not in (0, 2**64 - 1):
                first_audio = seq
    print(pages, first_audio if first_audio is not None else -1)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "set-title" and len(args) == 2:
        set_title(args[0], args[1])
    elif cmd == "add-comment" and len(args) == 2:
        add_comment(args[0], int(args[1]))
    elif cmd == "set-cover" and len(args) == 2:
        set_cover(args[0], args[1])
    elif cmd == "show" and len(args) == 1:
        show(args[0])
    elif cmd == "text" and len(args) == 1:
        print(comment_text(int(args[0])))
    elif cmd == "ogg-pages" and len(args) == 1:
        ogg_pages(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
