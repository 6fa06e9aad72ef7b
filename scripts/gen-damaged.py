#!/usr/bin/env python3
"""Derive damaged audio files from fixtures/audio/ into fixtures/damaged/.

Every container parser must survive these without a panic and without reading or allocating
what a bogus size asks for: truncated headers, sizes past the end of the file, zero and
0xFFFFFFFF sizes, wrong Ogg CRCs, 64-bit MP4 sizes with bogus values. A few files are valid
controls for the damaged ones next to them (their names say "valid").

The damage is done on the bytes of the committed fixtures, so the output is the same on every
machine (no randomness, no encoder). The script also writes fixtures/damaged/README.md from the
same table, so the list and the files cannot drift apart.

Usage: scripts/gen-damaged.py [--check]
  --check  build everything in memory and compare with fixtures/damaged/ instead of writing.
Python 3 standard library only.
"""

import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUDIO = os.path.join(ROOT, "fixtures", "audio")
OUT = os.path.join(ROOT, "fixtures", "damaged")
MAX_TOTAL = 1_000_000

DAWN = "Aurora Tones/First Light/01 Dawn.mp3"
STATIC = "Aurora Tones/Night Shift/01 Static.mp3"
MAINS_HUM = "Aurora Tones/Night Shift/02 Mains Hum.mp3"
SINE = "Lossless Ensemble/Waveforms/01 Pure Sine.flac"
BROWN = "Lossless Ensemble/Waveforms/02 Brown Noise.flac"
VORBIS = "Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg"
OPUS = "Café Tonal/Xiph Sessions/02 Opus Noise.opus"
PLAIN = "MP4 Quartet/Containers/01 Plain.m4a"
COVERED = "MP4 Quartet/Containers/02 Covered.m4a"
WAV = "Riff Raff/Chunks/01 Info Block.wav"


def fixture(path):
    with open(os.path.join(AUDIO, path), "rb") as f:
        return f.read()


def put(data, offset, value):
    """`data` with `value` written over it at `offset`."""
    out = bytearray(data)
    out[offset : offset + len(value)] = value
    return bytes(out)


def be32(n):
    return struct.pack(">I", n)


def le32(n):
    return struct.pack("<I", n)


def syncsafe(n):
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


# --- MP3 / ID3v2 -----------------------------------------------------------------------------


def id3_frames(data):
    """(id, offset, size) of each frame of the ID3v2.3/2.4 tag at 0."""
    major = data[3]
    tag_size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    end = 10 + tag_size
    pos, frames = 10, []
    while pos + 10 <= end and data[pos] != 0:
        raw = data[pos + 4 : pos + 8]
        if major == 4:
            size = (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]
        else:
            size = int.from_bytes(raw, "big")
        frames.append((data[pos : pos + 4], pos, size))
        pos += 10 + size
    return frames


def frame_at(data, frame_id):
    return next((off, size) for fid, off, size in id3_frames(data) if fid == frame_id)


def mp3_cases():
    dawn, static, hum = fixture(DAWN), fixture(STATIC), fixture(MAINS_HUM)
    apic, apic_size = frame_at(dawn, b"APIC")
    tit2, _ = frame_at(static, b"TIT2")
    ape_footer = b"APETAGEX" + le32(2000) + le32(0xFFFFFFFF) + le32(1) + le32(0) + bytes(8)
    lyrics = b"LYRICSBEGININD0000210" + b"999999LYRICS200"
    v1 = hum[-128:]
    yield ("mp3-id3-truncated-header.mp3", dawn[:7],
           "The first 7 bytes of `01 Dawn.mp3`: an ID3v2 header cut short.")
    yield ("mp3-id3-size-past-eof.mp3", put(dawn, 6, syncsafe(0x0FFFFFFF)),
           "`01 Dawn.mp3` with the ID3v2 size at its maximum (256 MiB), far past the end.")
    yield ("mp3-id3-size-not-syncsafe.mp3", put(static, 6, b"\x80\x00\x01\x00"),
           "`01 Static.mp3` with a high bit set in the ID3v2 size (not syncsafe).")
    yield ("mp3-truncated-in-picture.mp3", dawn[:4000],
           "`01 Dawn.mp3` cut in the middle of its APIC frame: the tag runs past the end.")
    yield ("mp3-apic-size-past-tag.mp3", put(dawn, apic + 4, be32(apic_size + 1000)),
           "`01 Dawn.mp3` with the APIC frame's size 1000 bytes past the tag's end.")
    yield ("mp3-apic-bad-encoding.mp3", put(dawn, apic + 10, b"\x07"),
           "`01 Dawn.mp3` with text encoding 7 (undefined) in the APIC frame.")
    yield ("mp3-apic-description-unterminated.mp3",
           put(dawn, apic + 10 + 1 + 11 + 1, b"\xff" * (apic_size - 13)),
           "`01 Dawn.mp3` with the APIC description and image overwritten by 0xFF: no "
           "terminator anywhere in the frame.")
    yield ("mp3-frame-size-huge.mp3", put(static, tit2 + 4, b"\x7f\x7f\x7f\x7f"),
           "`01 Static.mp3` with the TIT2 frame's (syncsafe) size at its maximum.")
    yield ("mp3-frame-size-zero.mp3", put(static, tit2 + 4, bytes(4)),
           "`01 Static.mp3` with the TIT2 frame's size 0: the frame walk lands in its text.")
    yield ("mp3-extended-header-flag-without-header.mp3", put(static, 5, b"\x40"),
           "`01 Static.mp3` with the extended-header flag set but no extended header: the "
           "first frame's id is read as the extended header's size.")
    yield ("mp3-footer-flag-without-footer.mp3", put(static, 5, b"\x10"),
           "`01 Static.mp3` (ID3v2.4) with the footer flag set but no `3DI` footer.")
    yield ("mp3-id3v1-truncated.mp3", hum[:-60],
           "`02 Mains Hum.mp3` with its last 60 bytes cut: the ID3v1 `TAG` is no longer 128 "
           "bytes from the end.")
    yield ("mp3-apev2-size-huge.mp3", static + ape_footer + v1,
           "`01 Static.mp3` + an APEv2 footer whose size is 0xFFFFFFFF + an ID3v1 tag.")
    yield ("mp3-lyrics3v2-size-past-start.mp3", static + lyrics + v1,
           "`01 Static.mp3` + a Lyrics3 v2 block whose size field (999999) runs before the "
           "start of the file + an ID3v1 tag.")
    yield ("mp3-id3v1-only.mp3", v1,
           "Only the 128-byte ID3v1 tag of `02 Mains Hum.mp3`: no ID3v2 tag, no frame sync.")


# --- FLAC ------------------------------------------------------------------------------------


def flac_blocks(data):
    """(type, offset, length, last) of each metadata block."""
    pos, blocks = 4, []
    while True:
        header = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        blocks.append((header & 0x7F, pos, length, header >> 7))
        pos += 4 + length
        if header >> 7:
            return blocks


def flac_block(data, block_type):
    return next(b for b in flac_blocks(data) if b[0] == block_type)


def flac_cases():
    sine, brown = fixture(SINE), fixture(BROWN)
    _, comment, _, _ = flac_block(sine, 4)
    _, padding, _, _ = flac_block(sine, 1)
    _, picture, picture_len, _ = flac_block(brown, 6)
    # PICTURE: type, MIME length, MIME, description length, description, width, height,
    # depth, colours, data length, data.
    mime_len = int.from_bytes(brown[picture + 8 : picture + 12], "big")
    desc_at = picture + 12 + mime_len
    desc_len = int.from_bytes(brown[desc_at : desc_at + 4], "big")
    data_len_at = desc_at + 4 + desc_len + 16
    frames = flac_blocks(brown)[-1][1] + 4 + flac_blocks(brown)[-1][2]
    short_brown = brown[: frames + 2000]
    yield ("flac-truncated-header.flac", sine[:10],
           "`01 Pure Sine.flac` cut after 10 bytes, inside STREAMINFO's block header and data.")
    yield ("flac-truncated-in-metadata.flac", sine[:300],
           "`01 Pure Sine.flac` cut inside its PADDING block: the block runs past the end.")
    yield ("flac-picture-block-past-eof.flac", brown[: picture + 1000],
           "`02 Brown Noise.flac` cut 1000 bytes into its PICTURE block (block length past "
           "the end).")
    yield ("flac-picture-data-length-huge.flac", put(short_brown, data_len_at, be32(0xFFFFFFFF)),
           "`02 Brown Noise.flac` (audio cut to 2000 bytes) with the PICTURE's data length "
           "0xFFFFFFFF, far past its block and the file.")
    yield ("flac-picture-mime-length-huge.flac", put(short_brown, picture + 8, be32(0xFFFFFFFF)),
           "`02 Brown Noise.flac` (audio cut to 2000 bytes) with the PICTURE's MIME type "
           "length 0xFFFFFFFF.")
    yield ("flac-picture-valid-short.flac", short_brown,
           "Valid control: `02 Brown Noise.flac` with its audio cut to 2000 bytes (the last "
           "frame is truncated; the metadata is intact).")
    yield ("flac-block-length-zero.flac", put(sine, comment + 1, bytes(3)),
           "`01 Pure Sine.flac` with the VORBIS_COMMENT block's length 0: the comment's bytes "
           "are then read as block headers.")
    yield ("flac-block-length-huge.flac", put(sine, padding + 1, b"\xff\xff\xff"),
           "`01 Pure Sine.flac` with the last (PADDING) block's length 0xFFFFFF, past the end.")
    yield ("flac-no-last-block-flag.flac", put(sine, padding, bytes([sine[padding] & 0x7F])),
           "`01 Pure Sine.flac` with no block flagged last: the first audio frame is read as a "
           "block header.")
    yield ("flac-streaminfo-type-wrong.flac", put(sine, 4, bytes([sine[4] & 0x80 | 0x7F])),
           "`01 Pure Sine.flac` with the first block's type 127 (invalid) instead of "
           "STREAMINFO.")


# --- Ogg -------------------------------------------------------------------------------------


def _crc_table():
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


CRC_TABLE = _crc_table()


def ogg_crc(page):
    crc = 0
    for b in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


def ogg_pages(data):
    """(offset, length) of each page."""
    pos, pages = 0, []
    while pos + 27 <= len(data):
        segments = data[pos + 26]
        length = 27 + segments + sum(data[pos + 27 : pos + 27 + segments])
        pages.append((pos, length))
        pos += length
    return pages


def with_crc(data, page):
    """`data` with the CRC of the page at `page` recomputed."""
    offset, length = page
    raw = bytearray(data[offset : offset + length])
    raw[22:26] = bytes(4)
    return put(data, offset + 22, struct.pack("<I", ogg_crc(raw)))


def ogg_cases():
    vorbis, opus = fixture(VORBIS), fixture(OPUS)
    vpages, opages = ogg_pages(vorbis), ogg_pages(opus)
    comment = vpages[1][0]
    tags = opages[1][0]
    flip = lambda data, at: put(data, at + 22, bytes([data[at + 22] ^ 0xFF]))
    gap = put(vorbis, vpages[2][0] + 18, struct.pack("<I", 7))
    last = opages[-1][0]
    yield ("ogg-bad-crc-comment-page.ogg", flip(vorbis, comment),
           "`01 Vorbis Tone.ogg` with a wrong CRC on its comment header page (page 1).")
    yield ("opus-bad-crc-tags-page.opus", flip(opus, tags),
           "`02 Opus Noise.opus` with a wrong CRC on its OpusTags page (page 1).")
    yield ("opus-bad-crc-audio-page.opus", flip(opus, opages[2][0]),
           "`02 Opus Noise.opus` with a wrong CRC on its first audio page (page 2).")
    yield ("ogg-sequence-gap.ogg", with_crc(gap, vpages[2]),
           "`01 Vorbis Tone.ogg` with page 2's sequence number 7 instead of 2 (CRC recomputed, "
           "so the page is valid but the numbering skips).")
    yield ("ogg-truncated-page-header.ogg", vorbis[: comment + 20],
           "`01 Vorbis Tone.ogg` cut 20 bytes into page 1's header.")
    yield ("ogg-truncated-mid-page.ogg", vorbis[:2000],
           "`01 Vorbis Tone.ogg` cut in the middle of page 1's body.")
    yield ("opus-segment-table-past-eof.opus", put(opus, last + 26, b"\xff")[: last + 60],
           "`02 Opus Noise.opus` with the last page's segment count 255 and the file cut 60 "
           "bytes into that page: the segment table runs past the end.")
    yield ("ogg-lost-capture-pattern.ogg", put(vorbis, vpages[2][0], b"OggX"),
           "`01 Vorbis Tone.ogg` with page 2's capture pattern `OggS` changed to `OggX`.")
    yield ("ogg-version-nonzero.ogg", with_crc(put(vorbis, comment + 4, b"\x01"), vpages[1]),
           "`01 Vorbis Tone.ogg` with page 1's stream structure version 1 (must be 0), CRC "
           "recomputed.")


# --- MP4 -------------------------------------------------------------------------------------


def mp4_boxes(data, start, end):
    """(type, offset, size) of the boxes between `start` and `end` (32-bit sizes only)."""
    pos, boxes = start, []
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        boxes.append((kind, pos, size))
        if size < 8:
            break
        pos += size
    return boxes


def mp4_path(data, *path):
    """(offset, size) of the box at `path` (e.g. moov, udta, meta, ilst)."""
    start, end = 0, len(data)
    for i, kind in enumerate(path):
        offset, size = next((o, s) for k, o, s in mp4_boxes(data, start, end) if k == kind)
        start, end = offset + 8 + (4 if kind == b"meta" else 0), offset + size
    return offset, size


def mp4_cases():
    plain, covered = fixture(PLAIN), fixture(COVERED)
    moov, _ = mp4_path(covered, b"moov")
    ilst, _ = mp4_path(covered, b"moov", b"udta", b"meta", b"ilst")
    covr, _ = mp4_path(covered, b"moov", b"udta", b"meta", b"ilst", b"covr")
    covr_data_size = int.from_bytes(covered[covr + 8 : covr + 12], "big")
    plain_moov, _ = mp4_path(plain, b"moov")
    plain_meta, _ = mp4_path(plain, b"moov", b"udta", b"meta")
    free, free_size = mp4_path(plain, b"free")
    mdat, mdat_size = mp4_path(plain, b"mdat")
    assert free + free_size == mdat and free_size == 8
    # Turn `free` + the 8-byte mdat header into one 16-byte mdat header with a 64-bit size,
    # so the samples stay where they are.
    def largesize(n):
        return plain[:free] + be32(1) + b"mdat" + struct.pack(">Q", n) + plain[mdat + 8 :]

    yield ("m4a-truncated-header.m4a", covered[:10],
           "`02 Covered.m4a` cut after 10 bytes, inside `ftyp`.")
    yield ("m4a-truncated-in-moov.m4a", covered[:5000],
           "`02 Covered.m4a` cut inside `moov` (inside the `covr` picture).")
    yield ("m4a-box-size-zero-not-last.m4a", put(covered, moov, bytes(4)),
           "`02 Covered.m4a` with `moov`'s size 0 (\"to the end of the file\") although `free` "
           "and `mdat` follow it.")
    yield ("m4a-box-size-zero-last.m4a", put(plain, plain_moov, bytes(4)),
           "`01 Plain.m4a` with the last box (`moov`) of size 0: legal, it runs to the end.")
    yield ("m4a-largesize-valid.m4a", largesize(mdat_size + 8),
           "Valid control: `01 Plain.m4a` with `free` + `mdat` rewritten as one `mdat` with "
           "size 1 and a right 64-bit size.")
    yield ("m4a-largesize-huge.m4a", largesize(0xFFFFFFFFFFFFFFFF),
           "As `m4a-largesize-valid.m4a` but the 64-bit size is 0xFFFFFFFFFFFFFFFF.")
    yield ("m4a-largesize-too-small.m4a", largesize(8),
           "As `m4a-largesize-valid.m4a` but the 64-bit size is 8, less than its own 16-byte "
           "header.")
    yield ("m4a-largesize-truncated.m4a", largesize(mdat_size + 8)[: free + 12],
           "`m4a-largesize-valid.m4a` cut inside the 64-bit size field.")
    yield ("m4a-box-size-huge.m4a", put(covered, ilst, be32(0xFFFFFFFF)),
           "`02 Covered.m4a` with `ilst`'s size 0xFFFFFFFF, past its parent and the file.")
    yield ("m4a-box-size-under-header.m4a", put(plain, plain_meta, be32(4)),
           "`01 Plain.m4a` with `meta`'s size 4, less than a box header.")
    yield ("m4a-covr-data-past-parent.m4a", put(covered, covr + 8, be32(covr_data_size + 1000)),
           "`02 Covered.m4a` with the `data` box inside `covr` 1000 bytes longer than `covr`.")
    yield ("m4a-moov-size-past-eof.m4a", put(plain, plain_moov, be32(0x7FFFFFFF)),
           "`01 Plain.m4a` with `moov` (the last box) 0x7FFFFFFF bytes long, past the end.")


# --- WAV -------------------------------------------------------------------------------------

SHORT_SAMPLES = 4000


def riff_chunks(data):
    """(id, offset, size) of each chunk after the 12-byte RIFF header."""
    pos, chunks = 12, []
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunks.append((cid, pos, size))
        pos += 8 + size + (size & 1)
    return chunks


def short_wav():
    """`01 Info Block.wav` with its samples cut to SHORT_SAMPLES bytes, sizes fixed."""
    wav = fixture(WAV)
    _, data, _ = next(c for c in riff_chunks(wav) if c[0] == b"data")
    out = wav[: data + 4] + le32(SHORT_SAMPLES) + wav[data + 8 : data + 8 + SHORT_SAMPLES]
    return put(out, 4, le32(len(out) - 8))


def wav_cases():
    wav = short_wav()
    chunks = {cid: (off, size) for cid, off, size in riff_chunks(wav)}
    data, _ = chunks[b"data"]
    fmt, _ = chunks[b"fmt "]
    lst, lst_size = chunks[b"LIST"]
    streaming = put(put(wav, 4, le32(0xFFFFFFFF)), data + 4, le32(0xFFFFFFFF))
    zero = put(put(wav, 4, le32(0)), data + 4, le32(0))
    odd = wav[:lst] + b"LIST" + le32(lst_size + 1) + wav[lst + 8 : lst + 8 + lst_size] + b"!" + \
        wav[lst + 8 + lst_size :]
    yield ("wav-valid-short.wav", wav,
           "Valid control: `01 Info Block.wav` with its samples cut to 4000 bytes, sizes fixed.")
    yield ("wav-truncated-header.wav", wav[:10],
           "`wav-valid-short.wav` cut after 10 bytes, inside the RIFF header.")
    yield ("wav-truncated-in-data.wav", wav[: data + 8 + 1001],
           "`wav-valid-short.wav` cut 1001 bytes into the samples: `data` runs past the end.")
    yield ("wav-streaming-sizes.wav", streaming,
           "`wav-valid-short.wav` with the RIFF and `data` sizes 0xFFFFFFFF, as streaming "
           "writers leave them.")
    yield ("wav-data-size-zero.wav", zero,
           "`wav-valid-short.wav` with the RIFF and `data` sizes 0 (a streaming writer that "
           "never came back): the samples follow a `data` chunk of size 0.")
    yield ("wav-list-size-past-eof.wav", put(wav, lst + 4, le32(0xFFFFFFFF)),
           "`wav-valid-short.wav` with the `LIST` chunk's size 0xFFFFFFFF.")
    yield ("wav-fmt-size-zero.wav", put(wav, fmt + 4, le32(0)),
           "`wav-valid-short.wav` with `fmt `'s size 0: its 16 bytes are read as a chunk "
           "header.")
    yield ("wav-odd-chunk-without-pad.wav", odd,
           "`wav-valid-short.wav` with one byte added to `LIST`, making its size odd, but no "
           "pad byte after it: the next chunk header is one byte early.")
    yield ("wav-garbage-after-data.wav", wav + bytes(range(1, 101)),
           "`wav-valid-short.wav` + 100 bytes that are not a chunk.")


# --- AIFF ------------------------------------------------------------------------------------


def extended(n):
    """An integer as an 80-bit IEEE 754 extended float (AIFF's sample rate)."""
    e = n.bit_length() - 1
    return struct.pack(">HQ", 16383 + e, n << (63 - e))


def iff_chunk(cid, data):
    return cid + be32(len(data)) + data + (b"\0" if len(data) % 2 else b"")


def aiff_file(form_type, samples, id3):
    """An AIFF (or AIFF-C) of 16-bit mono 22050 Hz big-endian `samples`, with NAME, ANNO and
    an `ID3 ` chunk holding `id3`."""
    frames = len(samples) // 2
    comm = struct.pack(">hIh", 1, frames, 16) + extended(22050)
    chunks = []
    if form_type == b"AIFC":
        chunks.append(iff_chunk(b"FVER", be32(0xA2805140)))
        comm += b"NONE" + bytes([14]) + b"not compressed" + b"\0"
    chunks.append(iff_chunk(b"COMM", comm))
    chunks.append(iff_chunk(b"NAME", b"Info Block"))
    chunks.append(iff_chunk(b"ANNO", b"Made by gen-damaged.py from 01 Info Block.wav"))
    chunks.append(iff_chunk(b"SSND", be32(0) + be32(0) + samples))
    chunks.append(iff_chunk(b"ID3 ", id3))
    body = b"".join(chunks)
    return b"FORM" + be32(len(body) + 4) + form_type + body


def iff_chunks(data):
    pos, chunks = 12, {}
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "big")
        chunks[cid] = (pos, size)
        pos += 8 + size + (size & 1)
    return chunks


def aiff_cases():
    wav = short_wav()
    _, data, size = next(c for c in riff_chunks(wav) if c[0] == b"data")
    pcm = wav[data + 8 : data + 8 + size]
    samples = b"".join(pcm[i : i + 2][::-1] for i in range(0, len(pcm) - 1, 2))
    dawn = fixture(DAWN)
    id3_size = (dawn[6] << 21) | (dawn[7] << 14) | (dawn[8] << 7) | dawn[9]
    id3 = dawn[: 10 + id3_size]
    aiff = aiff_file(b"AIFF", samples, id3)
    aifc = aiff_file(b"AIFC", samples, id3)
    chunks = iff_chunks(aiff)
    ssnd, _ = chunks[b"SSND"]
    comm, _ = chunks[b"COMM"]
    id3_at, _ = chunks[b"ID3 "]
    yield ("aiff-valid.aiff", aiff,
           "Valid control: an AIFF built from `01 Info Block.wav`'s first 4000 bytes of samples "
           "(byte-swapped), with COMM, NAME, ANNO, SSND and an `ID3 ` chunk holding "
           "`01 Dawn.mp3`'s ID3v2.3 tag (with the album's cover JPEG in APIC).")
    yield ("aifc-valid.aifc", aifc,
           "Valid control: the same as AIFF-C (`NONE` compression) with an FVER chunk.")
    yield ("aiff-truncated-header.aiff", aiff[:10],
           "`aiff-valid.aiff` cut after 10 bytes, inside the FORM header.")
    yield ("aiff-form-size-zero.aiff", put(aiff, 4, be32(0)),
           "`aiff-valid.aiff` with the FORM size 0.")
    yield ("aiff-comm-size-zero.aiff", put(aiff, comm + 4, be32(0)),
           "`aiff-valid.aiff` with COMM's size 0: its data is read as a chunk header.")
    yield ("aiff-ssnd-size-huge.aiff", put(aiff, ssnd + 4, be32(0xFFFFFFFF)),
           "`aiff-valid.aiff` with SSND's size 0xFFFFFFFF (the `ID3 ` chunk after it is then "
           "inside it).")
    yield ("aiff-ssnd-offset-huge.aiff", put(aiff, ssnd + 8, be32(0xFFFFFFFF)),
           "`aiff-valid.aiff` with SSND's offset field 0xFFFFFFFF, past the chunk.")
    yield ("aiff-id3-chunk-past-eof.aiff", put(aiff, id3_at + 4, be32(0xFFFFFFFF)),
           "`aiff-valid.aiff` with the `ID3 ` chunk's size 0xFFFFFFFF.")
    yield ("aiff-id3-size-past-chunk.aiff", put(aiff, id3_at + 8 + 6, syncsafe(id3_size + 100)),
           "`aiff-valid.aiff` with the embedded ID3v2 tag's size 100 bytes past its chunk.")
    yield ("aifc-truncated-in-ssnd.aifc", aifc[: iff_chunks(aifc)[b"SSND"][0] + 1000],
           "`aifc-valid.aifc` cut 1000 bytes into SSND.")


# ---------------------------------------------------------------------------------------------

SECTIONS = [
    ("MP3", mp3_cases),
    ("FLAC", flac_cases),
    ("Ogg", ogg_cases),
    ("MP4", mp4_cases),
    ("WAV", wav_cases),
    ("AIFF", aiff_cases),
]

README_HEAD = """\
# Damaged audio files

Broken and unusual files for the container parsers (`src/media/`), derived from the
fixtures in `../audio/` by `scripts/gen-damaged.py` (which also writes this file: edit the
script, not the README). Regenerate with `scripts/gen-damaged.py`; check that the committed
files match with `scripts/gen-damaged.py --check`.

What they are for: every parser must give a layout whose regions cover the file (or the opaque
layout) without a panic and without reading or allocating what a bogus size asks for. The
fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`) take them as seeds. Files named `valid`
are well-formed controls for the damaged ones next to them.
"""


def build():
    sections = []
    for title, cases in SECTIONS:
        rows = list(cases())
        sections.append((title, rows))
    return sections


def readme(sections):
    out = [README_HEAD]
    for title, rows in sections:
        out.append(f"\n## {title}\n\n| File | Bytes | What is wrong |\n|---|---:|---|\n")
        for name, data, why in rows:
            out.append(f"| `{name}` | {len(data)} | {why} |\n")
    return "".join(out)


def main():
    check = sys.argv[1:] == ["--check"]
    if sys.argv[1:] and not check:
        print("usage: scripts/gen-damaged.py [--check]", file=sys.stderr)
        return 2
    sections = build()
    files = {name: data for _, rows in sections for name, data, _ in rows}
    files["README.md"] = readme(sections).encode()
    assert len(files) == sum(len(rows) for _, rows in sections) + 1, "duplicate file names"
    total = sum(len(d) for d in files.values())
    assert total < MAX_TOTAL, f"{total} bytes: keep fixtures/damaged/ under {MAX_TOTAL}"
    if check:
        present = set(os.listdir(OUT)) if os.path.isdir(OUT) else set()
        bad = sorted(n for n, d in files.items() if n not in present or
                     open(os.path.join(OUT, n), "rb").read() != d)
        extra = sorted(present - set(files))
        for n in bad:
            print(f"differs or missing: {n}", file=sys.stderr)
        for n in extra:
            print(f"not generated: {n}", file=sys.stderr)
        return 1 if bad or extra else 0
    os.makedirs(OUT, exist_ok=True)
    for name in set(os.listdir(OUT)) - set(files):
        os.remove(os.path.join(OUT, name))
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(files)} files, {total} bytes in {os.path.relpath(OUT, ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
