#!/usr/bin/env python3
"""Generate and mutate large synthetic music libraries for benchmarks.

Files look like MP3s to a container parser: an ID3v2.4 tag (TIT2, TPE1,
TALB, TRCK, TCON text frames, an album-wide APIC picture, zero padding)
followed by an "audio stream" of MPEG-1 Layer III frames (a valid 4-byte
frame header every 417 bytes, 128 kb/s 44.1 kHz) whose payload is
pseudo-random, so it neither compresses nor deduplicates. They do not play.

Everything is derived from the seed: the same command gives the same bytes
(mtimes are whatever the clock says). Standard library only.

    genlib.py create DIR --files N --seed S [--mean-size 2M] [--jobs J]
    genlib.py retag DIR --fraction 0.1 --seed S
    genlib.py reorganise DIR [--layout genre|artist]
    genlib.py add-album DIR --seed S [--tracks 10] [--mean-size 2M]

Layouts:
    artist (as created): DIR/Artist NNN/Album NNN/NN Title.mp3
    genre (reorganised): DIR/<Genre>/<Artist NNN - Album NNN>/NN Title.mp3
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import random
import re
import string
import sys
import time

TRACKS_PER_ALBUM = 10
ALBUMS_PER_ARTIST = 5
TAG_BASE_SIZE = 4096  # ID3 header + text frames + padding, excluding the APIC frame
MPEG_FRAME_LEN = 417  # MPEG-1 Layer III, 128 kb/s, 44.1 kHz, no padding bit
MPEG_FRAME_HEADER = b"\xff\xfb\x90\x64"
GENRES = ["Ambient", "Classical", "Electronic", "Folk", "Hip-Hop", "Jazz", "Metal", "Rock"]
WORDS = (
    "amber blue breath candle cinder dawn drift echo ember fable field glass harbor "
    "hollow iron lantern meadow mirror north ocean paper quiet river salt shadow "
    "silver solace stone summer thunder velvet winter willow"
).split()


# --- ID3v2 encoding -----------------------------------------------------------

def syncsafe(n: int) -> bytes:
    if n >= 1 << 28:
        raise ValueError("ID3v2 size too large")
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def unsyncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]


def frame(frame_id: str, body: bytes) -> bytes:
    return frame_id.encode("ascii") + syncsafe(len(body)) + b"\x00\x00" + body


def text_frame(frame_id: str, text: str) -> bytes:
    return frame(frame_id, b"\x03" + text.encode("utf-8"))  # 3 = UTF-8


@functools.lru_cache(maxsize=8)
def apic_frame(seed: int, artist: str, album: str) -> bytes:
    """One pseudo-JPEG front cover per album, 30-60 KB, shared by its tracks."""
    rng = random.Random(f"genlib:{seed}:apic:{artist}:{album}")
    size = rng.randint(30_000, 60_000)
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    jpeg += rng.randbytes(size - len(jpeg) - 2) + b"\xff\xd9"
    # encoding 0, MIME, picture type 3 (front cover), empty description
    return frame("APIC", b"\x00image/jpeg\x00\x03\x00" + jpeg)


def id3v2_tag(title: str, artist: str, album: str, track: str, genre: str, apic: bytes) -> bytes:
    frames = b"".join([
        text_frame("TIT2", title),
        text_frame("TPE1", artist),
        text_frame("TALB", album),
        text_frame("TRCK", track),
        text_frame("TCON", genre),
    ])
    padding = TAG_BASE_SIZE - 10 - len(frames)
    if padding < 0:
        raise ValueError("text frames exceed the tag budget")
    body = frames + apic + b"\x00" * padding
    return b"ID3\x04\x00\x00" + syncsafe(len(body)) + body


def read_tag(f) -> tuple[bytes, int] | None:
    """Return (tag body, major version) of the ID3v2 tag at the start of f, if any."""
    header = f.read(10)
    if len(header) < 10 or header[:3] != b"ID3" or header[3] not in (3, 4):
        return None
    size = unsyncsafe(header[6:10])
    return f.read(size), header[3]


def tag_frames(body: bytes, version: int):
    """Yield (frame id, offset of the frame body within the file, body bytes)."""
    pos = 0
    while pos + 10 <= len(body):
        frame_id = body[pos:pos + 4]
        if not re.fullmatch(rb"[A-Z0-9]{4}", frame_id):
            return  # padding
        raw = body[pos + 4:pos + 8]
        size = unsyncsafe(raw) if version == 4 else int.from_bytes(raw, "big")
        start = pos + 10
        yield frame_id.decode("ascii"), 10 + start, body[start:start + size]
        pos = start + size


def decode_text(body: bytes) -> str:
    enc, data = body[0], body[1:]
    codec = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}.get(enc, "latin-1")
    return data.decode(codec, errors="replace").rstrip("\x00")


# --- library layout -----------------------------------------------------------

def title_for(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS).capitalize() for _ in range(3))


def fake_mpeg_stream(rng: random.Random, length: int) -> bytearray:
    frames = max(1, length // MPEG_FRAME_LEN)
    buf = bytearray(rng.randbytes(frames * MPEG_FRAME_LEN))
    for i, byte in enumerate(MPEG_FRAME_HEADER):
        buf[i::MPEG_FRAME_LEN] = bytes([byte]) * frames
    return buf


def safe_name(s: str) -> str:
    return s.replace("/", "_").rstrip(". ") or "_"


def write_track(path: str, seed: int, key: str, mean: int, artist: str, album: str,
                track: int, total: int, genre: str) -> int:
    rng = random.Random(f"genlib:{seed}:track:{key}")
    title = title_for(rng)
    tag = id3v2_tag(title, artist, album, f"{track}/{total}", genre, apic_frame(seed, artist, album))
    size = rng.randint(mean // 2, mean * 3 // 2)
    audio = fake_mpeg_stream(rng, size - len(tag))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".genlib-tmp"
    with open(tmp, "wb") as f:
        f.write(tag)
        f.write(audio)
    os.replace(tmp, path)
    return len(tag) + len(audio)


def track_path(root: str, layout: str, artist: str, album: str, genre: str, track: int, title: str) -> str:
    name = f"{track:02d} {safe_name(title)}.mp3"
    if layout == "genre":
        return os.path.join(root, safe_name(genre), safe_name(f"{artist} - {album}"), name)
    return os.path.join(root, safe_name(artist), safe_name(album), name)


def created_track(args: tuple) -> int:
    root, seed, mean, n_files, i = args
    artist_no = i // (TRACKS_PER_ALBUM * ALBUMS_PER_ARTIST) + 1
    album_no = (i // TRACKS_PER_ALBUM) % ALBUMS_PER_ARTIST + 1
    track = i % TRACKS_PER_ALBUM + 1
    album_start = i - (track - 1)
    total = min(TRACKS_PER_ALBUM, n_files - album_start)
    artist, album = f"Artist {artist_no:03d}", f"Album {album_no:03d}"
    genre = GENRES[(artist_no - 1) % len(GENRES)]
    title = title_for(random.Random(f"genlib:{seed}:track:{i}"))
    path = track_path(root, "artist", artist, album, genre, track, title)
    return write_track(path, seed, str(i), mean, artist, album, track, total, genre)


def mp3_files(root: str) -> list[str]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.endswith(".mp3"))
    return sorted(out)


def remove_empty_dirs(root: str) -> int:
    removed = 0
    for dirpath, _dirs, _files in os.walk(root, topdown=False):
        if dirpath != root and not os.listdir(dirpath):
            os.rmdir(dirpath)
            removed += 1
    return removed


def parse_size(s: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([KMG]?)(?:i?B)?", s.strip(), re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 2097152, 512K, 2M)")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2).upper()]


def log(msg: str) -> None:
    print(f"genlib: {msg}", file=sys.stderr)


# --- subcommands ----------------------------------------------------------------

def cmd_create(a: argparse.Namespace) -> None:
    os.makedirs(a.dir, exist_ok=True)
    if mp3_files(a.dir):
        sys.exit(f"genlib: {a.dir} already holds .mp3 files; create into an empty directory")
    t0 = time.perf_counter()
    jobs = [(a.dir, a.seed, a.mean_size, a.files, i) for i in range(a.files)]
    if a.jobs > 1 and a.files > 1:
        with multiprocessing.Pool(a.jobs) as pool:
            total = sum(pool.imap_unordered(created_track, jobs, chunksize=TRACKS_PER_ALBUM))
    else:
        total = sum(map(created_track, jobs))
    log(f"created {a.files} files, {total} bytes in {time.perf_counter() - t0:.1f} s under {a.dir}")


def cmd_retag(a: argparse.Namespace) -> None:
    files = mp3_files(a.dir)
    rng = random.Random(f"genlib:{a.seed}:retag")
    chosen = rng.sample(files, round(len(files) * a.fraction))
    changed = 0
    for path in sorted(chosen):
        with open(path, "r+b") as f:
            parsed = read_tag(f)
            if parsed is None:
                log(f"no ID3v2 tag, skipped: {path}")
                continue
            body, version = parsed
            for frame_id, offset, frame_body in tag_frames(body, version):
                if frame_id != "TIT2":
                    continue
                old = frame_body[1:]
                new = old
                while new == old:
                    new = "".join(rng.choice(string.ascii_letters + " ") for _ in old).encode("ascii")
                f.seek(offset + 1)  # keep the encoding byte; same length, so in place
                f.write(new)
                changed += 1
                break
    log(f"retagged {changed} of {len(files)} files in place (title frame, same size)")


def cmd_reorganise(a: argparse.Namespace) -> None:
    moved = 0
    for path in mp3_files(a.dir):
        with open(path, "rb") as f:
            parsed = read_tag(f)
        if parsed is None:
            log(f"no ID3v2 tag, left in place: {path}")
            continue
        tags = {fid: decode_text(body) for fid, _, body in tag_frames(*parsed) if fid.startswith("T")}
        artist, album = tags.get("TPE1", "Unknown Artist"), tags.get("TALB", "Unknown Album")
        genre = tags.get("TCON", "Unknown Genre")
        new_dir = os.path.dirname(track_path(a.dir, a.layout, artist, album, genre, 0, "x"))
        target = os.path.join(new_dir, os.path.basename(path))
        if target == path:
            continue
        if os.path.lexists(target):
            sys.exit(f"genlib: refusing to overwrite {target}")
        os.makedirs(new_dir, exist_ok=True)
        os.rename(path, target)  # same inode, same mtime: only the path changes
        moved += 1
    removed = remove_empty_dirs(a.dir)
    log(f"moved {moved} files into the {a.layout} layout, removed {removed} empty directories")


def cmd_add_album(a: argparse.Namespace) -> None:
    layout = a.layout
    if layout == "auto":
        top = os.listdir(a.dir) if os.path.isdir(a.dir) else []
        layout = "artist" if any(re.fullmatch(r"Artist \d+", d) for d in top) or not top else "genre"
    rng = random.Random(f"genlib:{a.seed}:add-album")
    artist, album = f"Added Artist {a.seed}", f"Album {rng.randint(1, 999):03d}"
    genre = rng.choice(GENRES)
    total = 0
    for track in range(1, a.tracks + 1):
        key = f"add:{track}"
        title = title_for(random.Random(f"genlib:{a.seed}:track:{key}"))
        path = track_path(a.dir, layout, artist, album, genre, track, title)
        total += write_track(path, a.seed, key, a.mean_size, artist, album, track, a.tracks, genre)
    log(f"added '{artist} / {album}': {a.tracks} files, {total} bytes ({layout} layout)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("create", help="write a new library")
    c.add_argument("dir")
    c.add_argument("--files", type=int, required=True)
    c.add_argument("--seed", type=int, required=True)
    c.add_argument("--mean-size", type=parse_size, default=2 << 20, help="bytes (2M, 512K…); sizes vary ±50%%")
    c.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    c.set_defaults(func=cmd_create)

    r = sub.add_parser("retag", help="rewrite the title of a fraction of the files in place")
    r.add_argument("dir")
    r.add_argument("--fraction", type=float, default=0.1)
    r.add_argument("--seed", type=int, required=True)
    r.set_defaults(func=cmd_retag)

    o = sub.add_parser("reorganise", aliases=["reorganize"], help="move every file to a new layout")
    o.add_argument("dir")
    o.add_argument("--layout", choices=["genre", "artist"], default="genre")
    o.set_defaults(func=cmd_reorganise)

    n = sub.add_parser("add-album", help="add one album of new tracks")
    n.add_argument("dir")
    n.add_argument("--seed", type=int, required=True)
    n.add_argument("--tracks", type=int, default=TRACKS_PER_ALBUM)
    n.add_argument("--mean-size", type=parse_size, default=2 << 20)
    n.add_argument("--layout", choices=["auto", "artist", "genre"], default="auto")
    n.set_defaults(func=cmd_add_album)

    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
