//! RIFF WAVE: a 12-byte header, then chunks (a four-character id, a little-endian size, the
//! data, a pad byte after odd sizes).
//!
//! Also the chunk reading shared with AIFF, whose chunks differ only in the byte order of
//! their sizes.
//!
//! Streaming writers leave the RIFF and `data` sizes at 0 or 0xFFFFFFFF, and some tools append
//! chunks or a bare ID3v2 tag after the RIFF size's end, so the RIFF size is not trusted: the
//! chunks are walked to the end of the file. Some writers leave out the pad byte after an odd
//! chunk; the walk finds the next chunk either way. Only chunk headers are read (and four bytes
//! of a `LIST` to see whether it is `INFO`).

use super::mp3::id3v2_marks;
use super::MarkList;
use super::{read_at, ParseError, ParseResult, RegionKind, Source};

/// Length of a chunk header: id and size.
pub(super) const CHUNK_HEADER_LEN: u64 = 8;

/// Marks of a WAV file of `len` bytes.
///
/// Regions: Other from 0 (the RIFF header and `fmt `, `fact`, `cue `… chunks); a `data` chunk's
/// header is Other and its samples Audio (to the end of the file if the chunk's size runs past
/// it, or is 0 with no whole chunk after it); a `LIST` chunk of type `INFO` is Tag (other
/// lists are Other); an `id3 ` or `ID3 ` chunk is Tag, split as an ID3v2 tag
/// ([`id3v2_marks`]); `JUNK`, `junk`, `PAD ` and `FLLR` are Padding. From the first place where
/// no whole chunk is, the rest of the file is Other, or an ID3v2 tag's regions if one starts
/// there (and Tag after it).
pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let mut head = [0u8; 12];
    if len < head.len() as u64 {
        return Err(ParseError::Malformed("RIFF header cut short"));
    }
    read_at(source, 0, &mut head)?;
    if &head[..4] != b"RIFF" || &head[8..] != b"WAVE" {
        return Err(ParseError::Malformed("not a RIFF WAVE file"));
    }
    let mut marks = MarkList::new();
    marks.push(0, RegionKind::Other)?;
    let mut pos = head.len() as u64;
    while pos < len {
        let Some(chunk) = read_chunk(source, pos, len, ByteOrder::Little)? else {
            push_tail(source, &mut marks, pos, len)?;
            break;
        };
        if &chunk.id == b"data" {
            let end = audio_chunk_end(source, &chunk, len, ByteOrder::Little)?;
            marks.push(chunk.offset, RegionKind::Other)?;
            marks.push(chunk.body(), RegionKind::Audio)?;
            pos = if end == len {
                len
            } else {
                next_chunk(source, &chunk, len, ByteOrder::Little)?
            };
            continue;
        }
        if chunk.end() > len {
            marks.push(chunk.offset, RegionKind::Other)?;
            break;
        }
        match &chunk.id {
            b"LIST" => {
                let kind = if list_type(source, &chunk)? == Some(*b"INFO") {
                    RegionKind::Tag
                } else {
                    RegionKind::Other
                };
                marks.push(chunk.offset, kind)?;
            }
            b"id3 " | b"ID3 " => push_id3_chunk(source, &mut marks, &chunk)?,
            b"JUNK" | b"junk" | b"PAD " | b"FLLR" => {
                marks.push(chunk.offset, RegionKind::Padding)?
            }
            _ => marks.push(chunk.offset, RegionKind::Other)?,
        }
        pos = next_chunk(source, &chunk, len, ByteOrder::Little)?;
    }
    Ok(marks.finish(len))
}

/// Byte order of chunk sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ByteOrder {
    /// RIFF.
    Little,
    /// AIFF (EA IFF 85).
    Big,
}

/// A chunk header, as read: its size is not yet checked against the file.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunk {
    /// The four-character id.
    pub(super) id: [u8; 4],
    /// Offset of the header.
    pub(super) offset: u64,
    /// The size field: the data's length, without the header and pad byte.
    pub(super) size: u64,
}

impl Chunk {
    /// Offset of the data.
    pub(super) fn body(&self) -> u64 {
        self.offset.saturating_add(CHUNK_HEADER_LEN)
    }

    /// Offset just past the data (past the file's end when the size is wrong).
    pub(super) fn end(&self) -> u64 {
        self.body().saturating_add(self.size)
    }

    /// Offset of the next chunk: past the pad byte after an odd size.
    pub(super) fn next(&self) -> u64 {
        self.end().saturating_add(self.size & 1)
    }
}

/// The chunk header at `offset`, or `None` when fewer than eight bytes are left or the id is
/// not four printable ASCII characters (garbage, or the end of the chunks).
pub(super) fn read_chunk(
    source: &mut dyn Source,
    offset: u64,
    len: u64,
    order: ByteOrder,
) -> Result<Option<Chunk>, ParseError> {
    if len.saturating_sub(offset) < CHUNK_HEADER_LEN {
        return Ok(None);
    }
    let mut h = [0u8; CHUNK_HEADER_LEN as usize];
    read_at(source, offset, &mut h)?;
    let id = [h[0], h[1], h[2], h[3]];
    if !id.iter().all(|c| (0x20..=0x7E).contains(c)) {
        return Ok(None);
    }
    let size = [h[4], h[5], h[6], h[7]];
    let size = match order {
        ByteOrder::Little => u32::from_le_bytes(size),
        ByteOrder::Big => u32::from_be_bytes(size),
    };
    Ok(Some(Chunk {
        id,
        offset,
        size: u64::from(size),
    }))
}

/// Offset of the chunk after `chunk`: past the pad byte after an odd size, or right after the
/// data when a writer left the pad byte out (no chunk header after the pad byte, but one
/// without it; a pad byte is 0, which never starts a chunk id).
pub(super) fn next_chunk(
    source: &mut dyn Source,
    chunk: &Chunk,
    len: u64,
    order: ByteOrder,
) -> Result<u64, ParseError> {
    let next = chunk.next();
    if next == chunk.end()
        || next >= len
        || read_chunk(source, next, len, order)?.is_some()
        || read_chunk(source, chunk.end(), len, order)?.is_none()
    {
        return Ok(next);
    }
    Ok(chunk.end())
}

/// Where the samples of an audio chunk (`data`, `SSND`) end: its size's end, or the end of the
/// file when the size runs past it (a truncated file, or 0xFFFFFFFF from a streaming writer),
/// or is 0 while what follows is not a whole chunk (a streaming writer that never came back to
/// fill it in).
pub(super) fn audio_chunk_end(
    source: &mut dyn Source,
    chunk: &Chunk,
    len: u64,
    order: ByteOrder,
) -> Result<u64, ParseError> {
    if chunk.end() > len {
        return Ok(len);
    }
    if chunk.size == 0 && chunk.body() < len {
        let next = read_chunk(source, chunk.body(), len, order)?;
        if next.is_none_or(|next| next.end() > len) {
            return Ok(len);
        }
    }
    Ok(chunk.end())
}

/// Marks an `id3 ` chunk (whole, within the file): Tag from its header, split as an ID3v2
/// tag when its data is one; a pad byte after a picture that ends the tag is Padding.
pub(super) fn push_id3_chunk(
    source: &mut dyn Source,
    marks: &mut MarkList,
    chunk: &Chunk,
) -> Result<(), ParseError> {
    marks.push(chunk.offset, RegionKind::Tag)?;
    match id3v2_marks(source, chunk.body(), chunk.size) {
        Ok(inner) => marks.extend(&inner)?,
        Err(ParseError::Malformed(_)) => {}
        Err(e) => return Err(e),
    }
    if chunk.next() > chunk.end() && marks.last_kind() == Some(RegionKind::Picture) {
        // The pad byte must not lengthen a picture that ends the tag.
        marks.push(chunk.end(), RegionKind::Padding)?;
    }
    Ok(())
}

/// Marks what follows the last whole chunk: Other, or an ID3v2 tag if one starts there (some
/// tools append one to the file instead of using a chunk) with anything after it Tag.
pub(super) fn push_tail(
    source: &mut dyn Source,
    marks: &mut MarkList,
    pos: u64,
    len: u64,
) -> Result<(), ParseError> {
    match id3v2_marks(source, pos, len - pos) {
        Ok(inner) => marks.extend(&inner),
        Err(ParseError::Malformed(_)) => marks.push(pos, RegionKind::Other),
        Err(e) => Err(e),
    }
}

/// The list type of a whole `LIST` chunk (its data's first four bytes).
fn list_type(source: &mut dyn Source, chunk: &Chunk) -> Result<Option<[u8; 4]>, ParseError> {
    if chunk.size < 4 {
        return Ok(None);
    }
    let mut kind = [0u8; 4];
    read_at(source, chunk.body(), &mut kind)?;
    Ok(Some(kind))
}

#[cfg(test)]
mod tests {
    use super::super::mp3::tests::{
        assert_survives_damage, bytes_of, damaged, detected, fixture, frame, image, parsed,
        picture_body, spans, tag, text,
    };
    use super::super::{Format, Layout};
    use super::*;
    use RegionKind::{Audio, Other, Padding, Picture, Tag};

    const INFO_BLOCK: &str = "Riff Raff/Chunks/01 Info Block.wav";

    /// A little-endian chunk, with its pad byte.
    fn chunk(id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    /// A WAVE file of `chunks`, with a right RIFF size.
    fn wave(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body = chunks.concat();
        let mut w = b"RIFF".to_vec();
        w.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        w.extend_from_slice(b"WAVE");
        w.extend(body);
        w
    }

    fn fmt() -> Vec<u8> {
        chunk(
            b"fmt ",
            &[1, 0, 1, 0, 0x22, 0x56, 0, 0, 0x44, 0xAC, 0, 0, 2, 0, 16, 0],
        )
    }

    fn samples(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7) as u8).collect()
    }

    #[test]
    fn info_block_regions() {
        let bytes = fixture(INFO_BLOCK);
        let len = bytes.len() as u64;
        // RIFF header and fmt (36 bytes), LIST INFO (8 + 98), data header, samples.
        assert_eq!(
            spans(&detected(&bytes)),
            vec![
                (Other, 0, 0x24),
                (Tag, 0x24, 8 + 98),
                (Other, 0x8E, 8),
                (Audio, 0x96, len - 0x96),
            ]
        );
        assert_eq!(detected(&bytes).format, Format::Wav);
    }

    #[test]
    fn damaged_fixtures() {
        for (name, bytes) in damaged("wav-") {
            let layout = detected(&bytes);
            parsed(Format::Wav, &bytes);
            let len = bytes.len() as u64;
            let whole = vec![
                (Other, 0, 36),
                (Tag, 36, 106),
                (Other, 142, 8),
                (Audio, 150, len.saturating_sub(150)),
            ];
            let expected = match name.as_str() {
                "wav-valid-short.wav"
                | "wav-streaming-sizes.wav"
                | "wav-data-size-zero.wav"
                | "wav-truncated-in-data.wav" => whole,
                "wav-garbage-after-data.wav" => {
                    let mut w = whole;
                    w[3].2 = 4000;
                    w.push((Other, 4150, 100));
                    w
                }
                // A size that does not fit hides the chunks after it.
                "wav-list-size-past-eof.wav" | "wav-fmt-size-zero.wav" => vec![(Other, 0, len)],
                "wav-truncated-header.wav" => vec![(Other, 0, len)],
                // One byte more in LIST, the pad byte left out: found anyway.
                "wav-odd-chunk-without-pad.wav" => vec![
                    (Other, 0, 36),
                    (Tag, 36, 107),
                    (Other, 143, 8),
                    (Audio, 151, 4000),
                ],
                other => panic!("no expectation for {other}"),
            };
            assert_eq!(spans(&layout), expected, "{name}");
        }
    }

    #[test]
    fn info_block_survives_damage() {
        assert_survives_damage(Format::Wav, &fixture(INFO_BLOCK));
    }

    #[test]
    fn streaming_sizes_run_to_the_end() {
        for size in [0u32, 0xFFFF_FFFF] {
            let mut file = wave(&[fmt(), chunk(b"data", &samples(1000))]);
            file[4..8].copy_from_slice(&size.to_le_bytes());
            let data = 12 + 24;
            file[data + 4..data + 8].copy_from_slice(&size.to_le_bytes());
            assert_eq!(
                spans(&detected(&file)),
                vec![(Other, 0, data as u64 + 8), (Audio, data as u64 + 8, 1000)],
                "size {size:#x}"
            );
        }
    }

    #[test]
    fn zero_data_size_with_samples_that_look_like_a_chunk_header() {
        // 16-bit samples can spell a chunk id; its "size" then runs past the end.
        let mut pcm = b"A0B1\x10\x20\x30\x40".to_vec();
        pcm.extend(samples(100));
        let mut file = wave(&[fmt(), chunk(b"data", &pcm)]);
        file[40..44].copy_from_slice(&[0; 4]);
        assert_eq!(
            spans(&detected(&file)),
            vec![(Other, 0, 44), (Audio, 44, pcm.len() as u64)]
        );
    }

    #[test]
    fn empty_data_chunk_before_another_chunk_has_no_audio() {
        let info = chunk(b"LIST", b"INFOINAM\x02\0\0\0A\0");
        let file = wave(&[fmt(), chunk(b"data", b""), info]);
        assert_eq!(
            spans(&detected(&file)),
            vec![(Other, 0, 44), (Tag, 44, file.len() as u64 - 44)]
        );
    }

    #[test]
    fn id3_chunk_is_split_and_its_pad_byte_is_not_picture() {
        let img = image(20, 100);
        let id3 = tag(
            3,
            0,
            &[
                text(3, b"TIT2", "T"),
                frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &img)),
            ]
            .concat(),
            0,
        );
        assert_eq!(id3.len() % 2, 1, "needs a pad byte");
        let data = chunk(b"data", &samples(500));
        let file = wave(&[fmt(), data.clone(), chunk(b"id3 ", &id3)]);
        let layout = detected(&file);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Other, Audio, Tag, Picture, Padding]);
        assert_eq!(layout.regions[2].offset, 12 + 24 + data.len() as u64);
        assert_eq!(layout.regions[4].len, 1);
    }

    #[test]
    fn junk_is_padding_and_odd_chunks_are_padded() {
        let file = wave(&[
            chunk(b"JUNK", &[0; 28]),
            fmt(),
            chunk(b"bext", &[b'x'; 7]), // odd: a pad byte follows
            chunk(b"data", &samples(33)),
            chunk(b"LIST", b"adtllabl"),
        ]);
        assert_eq!(
            spans(&detected(&file)),
            vec![
                (Other, 0, 12),
                (Padding, 12, 36),
                (Other, 48, 24 + 16 + 8),
                (Audio, 96, 34),
                (Other, 130, 16),
            ]
        );
    }

    #[test]
    fn a_missing_pad_byte_is_tolerated() {
        let odd = b"LIST\x05\0\0\0INFOx".to_vec(); // no pad byte after it
        let file = wave(&[fmt(), odd, chunk(b"data", &samples(10))]);
        assert_eq!(
            spans(&detected(&file)),
            vec![
                (Other, 0, 36),
                (Tag, 36, 13),
                (Other, 49, 8),
                (Audio, 57, 10)
            ]
        );
    }

    #[test]
    fn what_is_not_a_whole_chunk_is_other() {
        let mut file = wave(&[fmt(), chunk(b"data", &samples(100))]);
        let end_of_chunks = file.len() as u64;
        file.extend_from_slice(b"\x01\x02garbage");
        assert_eq!(
            spans(&detected(&file)),
            vec![(Other, 0, 44), (Audio, 44, 100), (Other, end_of_chunks, 9)]
        );
        // A LIST whose size runs past the end.
        let mut file = wave(&[
            fmt(),
            chunk(b"data", &samples(100)),
            chunk(b"LIST", b"INFO"),
        ]);
        let list = file.len() - 12;
        file[list + 4..list + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            spans(&detected(&file)),
            vec![(Other, 0, 44), (Audio, 44, 100), (Other, list as u64, 12)]
        );
    }

    #[test]
    fn bare_id3v2_after_the_chunks() {
        let img = image(21, 60);
        let id3 = tag(
            4,
            0,
            &frame(4, b"APIC", 0, &picture_body(4, 0, b"\0", &img)),
            0,
        );
        let file = [wave(&[fmt(), chunk(b"data", &samples(100))]), id3].concat();
        let layout = detected(&file);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Other, Audio, Tag, Picture]);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    #[test]
    fn not_a_wave_file_is_opaque() {
        let mut file = wave(&[fmt()]);
        file[8..12].copy_from_slice(b"AVI ");
        assert_eq!(
            parsed(Format::Wav, &file),
            Layout::opaque(file.len() as u64)
        );
        assert_eq!(parsed(Format::Wav, b"RIFF"), Layout::opaque(4));
    }

    #[test]
    fn in_memory_cases_survive_damage() {
        let id3 = tag(
            3,
            0,
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &image(22, 41))),
            3,
        );
        let file = wave(&[
            fmt(),
            chunk(b"LIST", b"INFOIART\x03\0\0\0abc"),
            chunk(b"id3 ", &id3),
            chunk(b"data", &samples(99)),
        ]);
        assert_survives_damage(Format::Wav, &file);
    }
}
