//! Ogg Vorbis and Ogg Opus: the identification page, the comment header pages, the audio pages.
//!
//! A Vorbis or Opus stream begins with its header packets (Vorbis: identification, comment,
//! setup; Opus: `OpusHead`, `OpusTags`), and both specifications require the first audio
//! packet to begin on a fresh page. So the file splits cleanly on page boundaries:
//!
//! - `Other` at 0: the first page, which holds the identification header alone;
//! - `Tag` at the second page: the comment header pages (for Vorbis, the setup header too,
//!   since it shares their pages), up to the end of the page where the last header packet ends;
//! - `Audio` at the first audio page, with [`Transform::OggPages`] when that page is a
//!   well-formed page of the same logical stream. A tag editor that grows the comment header
//!   past a page renumbers every audio page and so rewrites every CRC; the transform zeroes
//!   those fields for chunking, so the audio chunks survive. The chunker checks each audio page
//!   and falls back to the plain bytes when one is off, so this parser need not read them.
//!
//! Only page headers and the first bytes of the first packet are read; payloads are skipped.
//! Other codecs (FLAC in Ogg, Speex, Theora…), multiplexed streams and header packets that
//! share a page with audio are left opaque. Header pages are bounded in number and bytes.
//!
//! The page helpers [`crc32`] and [`page_len`] are shared with the chunker's transform.

use super::{read_at, Mark, ParseError, ParseResult, RegionKind, Source, Transform};

/// Length of a page header before its segment table.
const FIXED_HEADER_LEN: usize = 27;
/// Offset of the CRC field within a page.
pub(crate) const CRC_OFFSET: usize = 22;
/// Offset of the page sequence number within a page.
pub(crate) const SEQ_OFFSET: usize = 18;
/// Header type flag: the page's first packet continues one from the previous page.
const CONTINUED: u8 = 0x01;
/// Header type flag: first page of a logical stream.
const BEGINNING_OF_STREAM: u8 = 0x02;
/// More header pages than any real stream has: give up rather than walk a damaged file.
const MAX_HEADER_PAGES: usize = 1_000;
/// More header bytes than any real comment header (with pictures) has.
const MAX_HEADER_BYTES: u64 = 16 << 20;

/// The Ogg CRC-32 lookup table: polynomial 0x04c11db7, most significant bit first.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// The Ogg page checksum of `data`: CRC-32 with polynomial 0x04c11db7, initial value 0, no bit
/// reflection and no final xor. A page's stored CRC is this value over the whole page with its
/// CRC field (bytes 22..26) set to zero.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |crc, &byte| {
        (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)]
    })
}

/// Length of the whole page (header, segment table and body) whose header starts at
/// `header[0]`, or `None` when `header` does not start with a version-0 page header
/// (`OggS`, version 0) or ends before the segment table does.
pub(crate) fn page_len(header: &[u8]) -> Option<usize> {
    if header.len() < FIXED_HEADER_LEN || !header.starts_with(b"OggS") || header[4] != 0 {
        return None;
    }
    let segments = usize::from(header[26]);
    let table = header.get(FIXED_HEADER_LEN..FIXED_HEADER_LEN + segments)?;
    let body: usize = table.iter().map(|&lace| usize::from(lace)).sum();
    Some(FIXED_HEADER_LEN + segments + body)
}

/// The fields of one page header this parser needs.
struct PageHeader {
    flags: u8,
    serial: u32,
    seq: u32,
    /// The segment table: a lacing value below 255 ends a packet.
    lacing: [u8; 255],
    segments: usize,
    /// Length of the whole page.
    len: u64,
}

impl PageHeader {
    fn lacing(&self) -> &[u8] {
        &self.lacing[..self.segments]
    }

    /// Offset of the body from the start of the page.
    fn body_offset(&self) -> u64 {
        (FIXED_HEADER_LEN + self.segments) as u64
    }
}

/// Reads the header of the page at `offset` of a file of `len` bytes; the whole page must lie
/// within the file.
fn read_page(source: &mut dyn Source, offset: u64, len: u64) -> Result<PageHeader, ParseError> {
    let mut header = [0u8; FIXED_HEADER_LEN + 255];
    let fixed_end = offset
        .checked_add(FIXED_HEADER_LEN as u64)
        .filter(|&end| end <= len)
        .ok_or(ParseError::Malformed("Ogg page header past the end"))?;
    read_at(source, offset, &mut header[..FIXED_HEADER_LEN])?;
    if !header.starts_with(b"OggS") || header[4] != 0 {
        return Err(ParseError::Malformed("not an Ogg page"));
    }
    let segments = usize::from(header[26]);
    if fixed_end.saturating_add(segments as u64) > len {
        return Err(ParseError::Malformed("Ogg segment table past the end"));
    }
    read_at(
        source,
        fixed_end,
        &mut header[FIXED_HEADER_LEN..FIXED_HEADER_LEN + segments],
    )?;
    let page = page_len(&header[..FIXED_HEADER_LEN + segments])
        .ok_or(ParseError::Malformed("not an Ogg page"))? as u64;
    if offset.saturating_add(page) > len {
        return Err(ParseError::Malformed("Ogg page past the end"));
    }
    let field = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let mut lacing = [0u8; 255];
    lacing[..segments].copy_from_slice(&header[FIXED_HEADER_LEN..FIXED_HEADER_LEN + segments]);
    Ok(PageHeader {
        flags: header[5],
        serial: field(14),
        seq: field(SEQ_OFFSET),
        lacing,
        segments,
        len: page,
    })
}

/// How much of the first packet a page with these lacing values holds.
fn first_packet_len(lacing: &[u8]) -> usize {
    let mut len = 0;
    for &lace in lacing {
        len += usize::from(lace);
        if lace < 255 {
            break;
        }
    }
    len
}

/// How many header packets precede the audio, from the start of the first packet.
fn header_packets(first_packet: &[u8]) -> Result<usize, ParseError> {
    if first_packet.starts_with(b"\x01vorbis") {
        Ok(3)
    } else if first_packet.starts_with(b"OpusHead") {
        Ok(2)
    } else {
        Err(ParseError::Malformed(
            "Ogg stream is neither Vorbis nor Opus",
        ))
    }
}

pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let first = read_page(source, 0, len)?;
    if first.flags & BEGINNING_OF_STREAM == 0 || first.flags & CONTINUED != 0 {
        return Err(ParseError::Malformed("Ogg stream does not begin"));
    }
    let serial = first.serial;
    let first_len = first.len;
    let mut magic = [0u8; 8];
    let first_packet = first_packet_len(first.lacing());
    let magic = &mut magic[..first_packet.min(8)];
    read_at(source, first.body_offset(), magic)?;
    let needed = header_packets(magic)?;

    // Walk the header pages, counting packets by their lacing, to the page where the last
    // header packet ends.
    let mut page = first;
    let mut offset = 0u64;
    let mut packets = 0usize;
    let mut pending = false;
    let mut pages = 0usize;
    let header_end = loop {
        if page.serial != serial {
            return Err(ParseError::Malformed(
                "another Ogg stream among the header pages",
            ));
        }
        if pages > 0 && page.flags & BEGINNING_OF_STREAM != 0 {
            return Err(ParseError::Malformed("Ogg stream begins twice"));
        }
        if (page.flags & CONTINUED != 0) != pending {
            return Err(ParseError::Malformed("broken Ogg packet continuation"));
        }
        let mut done = false;
        for (i, &lace) in page.lacing().iter().enumerate() {
            if lace < 255 {
                packets += 1;
                if packets == needed {
                    if i + 1 != page.segments {
                        return Err(ParseError::Malformed("Ogg audio begins mid-page"));
                    }
                    done = true;
                }
            }
        }
        if let Some(&last) = page.lacing().last() {
            pending = last == 255;
        }
        offset += page.len;
        pages += 1;
        if done {
            break offset;
        }
        if pages >= MAX_HEADER_PAGES || offset > MAX_HEADER_BYTES {
            return Err(ParseError::Malformed("too many Ogg header pages"));
        }
        page = read_page(source, offset, len)?;
    };

    let mut marks = vec![Mark::new(0, RegionKind::Other)];
    if header_end > first_len {
        // The chunker checks the header pages and falls back to plain chunking when they
        // are not one canonical run of pages.
        let second = read_page(source, first_len, len)?;
        marks.push(Mark {
            offset: first_len,
            kind: RegionKind::Tag,
            transform: Some(Transform::OggHeaderPages {
                first_seq: second.seq,
            }),
        });
    }
    if header_end < len {
        let transform = match read_page(source, header_end, len) {
            Ok(audio)
                if audio.serial == serial
                    && audio.flags & (CONTINUED | BEGINNING_OF_STREAM) == 0 =>
            {
                Some(Transform::OggPages {
                    first_seq: audio.seq,
                })
            }
            Ok(_) | Err(ParseError::Malformed(_)) => None,
            Err(e) => return Err(e),
        };
        marks.push(Mark {
            offset: header_end,
            kind: RegionKind::Audio,
            transform,
        });
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use super::*;
    use crate::media::testing::{assert_detect_covers, assert_marks_sane, fixture, never_panics};
    use crate::media::{Format, Layout};

    const VORBIS: &str = "Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg";
    const OPUS: &str = "Café Tonal/Xiph Sessions/02 Opus Noise.opus";

    fn layout(bytes: &[u8]) -> Layout {
        let marks = parse(&mut Cursor::new(bytes), bytes.len() as u64).expect("parses");
        let layout = Layout::from_marks(Format::Ogg, &marks, bytes.len() as u64);
        assert_eq!(layout.format, Format::Ogg, "marks {marks:?}");
        layout
    }

    /// Parses without panicking; when it succeeds, the marks must be usable.
    fn assert_sane(bytes: &[u8]) {
        let len = bytes.len() as u64;
        assert_marks_sane(Format::Ogg, parse(&mut Cursor::new(bytes), len), len);
    }

    /// Splits a file into its pages.
    fn pages(bytes: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = page_len(rest).expect("page header");
            out.push(&rest[..n]);
            rest = &rest[n..];
        }
        out
    }

    /// The body of the page at `page[0]`.
    fn body(page: &[u8]) -> &[u8] {
        &page[FIXED_HEADER_LEN + usize::from(page[26])..]
    }

    fn stored_crc(page: &[u8]) -> u32 {
        u32::from_le_bytes(page[CRC_OFFSET..CRC_OFFSET + 4].try_into().unwrap())
    }

    fn seq(page: &[u8]) -> u32 {
        u32::from_le_bytes(page[SEQ_OFFSET..SEQ_OFFSET + 4].try_into().unwrap())
    }

    /// One page of stream `serial` with the given lacing values and body, CRC filled in.
    fn page(flags: u8, serial: u32, seq: u32, lacing: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend_from_slice(&0u64.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(lacing.len() as u8);
        p.extend_from_slice(lacing);
        p.extend_from_slice(body);
        let crc = crc32(&p);
        p[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        p
    }

    /// A page holding whole packets of the given contents.
    fn packets_page(flags: u8, serial: u32, seq: u32, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        let mut body = Vec::new();
        for packet in packets {
            lacing.extend(std::iter::repeat_n(255u8, packet.len() / 255));
            lacing.push((packet.len() % 255) as u8);
            body.extend_from_slice(packet);
        }
        page(flags, serial, seq, &lacing, &body)
    }

    fn opus_head() -> Vec<u8> {
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 2, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0]);
        head
    }

    /// An Opus stream: OpusHead page, OpusTags page, then one audio page per packet.
    fn opus(audio: &[&[u8]]) -> Vec<u8> {
        let mut out = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        out.extend(packets_page(0, 7, 1, &[b"OpusTags\0\0\0\0\0\0\0\0"]));
        for (i, packet) in audio.iter().enumerate() {
            out.extend(packets_page(0, 7, 2 + i as u32, &[packet]));
        }
        out
    }

    /// A bit-at-a-time CRC, to check the table against.
    fn slow_crc(data: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &byte in data {
            crc ^= u32::from(byte) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(&[0]), 0);
        assert_eq!(crc32(&[1]), 0x04c1_1db7);
        assert_eq!(crc32(b"123456789"), 0x89a1_897f);
        assert_eq!(crc32(b"OggS"), 0x5fb0_a94f);
    }

    #[test]
    fn crc32_matches_bitwise_reference() {
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [0, 1, 2, 3, 7, 27, 255, 256, 1000, 4096] {
            assert_eq!(crc32(&data[..len]), slow_crc(&data[..len]), "length {len}");
        }
        for byte in 0..=255u8 {
            assert_eq!(crc32(&[byte, 0x5a]), slow_crc(&[byte, 0x5a]));
        }
    }

    #[test]
    fn crc32_sees_every_bit() {
        let page = &fixture(VORBIS)[..58];
        let crc = crc32(page);
        let mut flipped = page.to_vec();
        for at in 0..flipped.len() {
            for bit in 0..8 {
                flipped[at] ^= 1 << bit;
                assert_ne!(crc32(&flipped), crc, "byte {at} bit {bit}");
                flipped[at] ^= 1 << bit;
            }
        }
    }

    #[test]
    fn crc32_matches_every_fixture_page() {
        for name in [VORBIS, OPUS] {
            let bytes = fixture(name);
            let pages = pages(&bytes);
            assert!(pages.len() >= 4, "{name}");
            for (i, p) in pages.iter().enumerate() {
                let mut zeroed = p.to_vec();
                zeroed[CRC_OFFSET..CRC_OFFSET + 4].fill(0);
                assert_eq!(crc32(&zeroed), stored_crc(p), "{name} page {i}");
                assert_eq!(seq(p), i as u32, "{name} page {i}");
            }
        }
    }

    #[test]
    fn page_len_reads_the_segment_table() {
        let bytes = fixture(VORBIS);
        // Page 0: one segment of 30 bytes; page 1: 14 segments.
        assert_eq!(page_len(&bytes), Some(58));
        assert_eq!(page_len(&bytes[..28]), Some(58));
        assert_eq!(page_len(&bytes[58..]), Some(3305));
        let empty = page(0, 1, 0, &[], b"");
        assert_eq!(page_len(&empty), Some(27));
        let full = page(0, 1, 0, &[255; 255], &[0; 255 * 255]);
        assert_eq!(page_len(&full), Some(27 + 255 + 255 * 255));
        assert_eq!(page_len(&full[..27 + 255]), Some(full.len()));
    }

    #[test]
    fn page_len_rejects_what_is_not_a_page_start() {
        let bytes = fixture(VORBIS);
        // Cut inside the fixed header or the segment table.
        assert_eq!(page_len(&[]), None);
        assert_eq!(page_len(&bytes[..26]), None);
        assert_eq!(page_len(&bytes[58..58 + 27 + 13]), None);
        // Not at a page start, another capture pattern, another version.
        assert_eq!(page_len(&bytes[1..]), None);
        let mut other = bytes[..58].to_vec();
        other[3] = b's';
        assert_eq!(page_len(&other), None);
        let mut version = bytes[..58].to_vec();
        version[4] = 1;
        assert_eq!(page_len(&version), None);
    }

    #[test]
    fn vorbis_regions() {
        let bytes = fixture(VORBIS);
        let layout = layout(&bytes);
        let pages = pages(&bytes);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RegionKind::Other, RegionKind::Tag, RegionKind::Audio]
        );
        // Identification page alone, then the comment and setup pages.
        assert_eq!(layout.regions[0].len, pages[0].len() as u64);
        assert_eq!(layout.regions[1].offset, pages[0].len() as u64);
        assert!(body(pages[1]).starts_with(b"\x03vorbis"));
        assert_audio_is_pages(&bytes, &layout);
    }

    #[test]
    fn opus_regions() {
        let bytes = fixture(OPUS);
        let layout = layout(&bytes);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [RegionKind::Other, RegionKind::Tag, RegionKind::Audio]
        );
        let tags = &layout.regions[1];
        assert!(body(&bytes[tags.offset as usize..]).starts_with(b"OpusTags"));
        assert_eq!(
            tags.len,
            page_len(&bytes[tags.offset as usize..]).unwrap() as u64
        );
        assert_audio_is_pages(&bytes, &layout);
    }

    /// The last region is the audio: it starts on a page whose number is its `first_seq`.
    fn assert_audio_is_pages(bytes: &[u8], layout: &Layout) {
        let audio = layout.regions.last().unwrap();
        assert_eq!(audio.kind, RegionKind::Audio);
        let first = &bytes[audio.offset as usize..];
        assert!(first.starts_with(b"OggS"));
        assert_eq!(
            audio.transform,
            Some(Transform::OggPages {
                first_seq: seq(first)
            })
        );
        // Exactly the rest of the stream's pages.
        let end = (audio.offset + audio.len) as usize;
        assert_eq!(end, bytes.len());
        assert!(!pages(first).is_empty());
    }

    #[test]
    fn detect_covers_each_fixture_exactly() {
        for name in [VORBIS, OPUS] {
            assert_detect_covers(name, Format::Ogg);
        }
    }

    #[test]
    fn synthetic_opus_regions() {
        let bytes = opus(&[b"audio one", b"audio two"]);
        let layout = layout(&bytes);
        let offsets: Vec<_> = layout.regions.iter().map(|r| (r.kind, r.offset)).collect();
        let first = page_len(&bytes).unwrap() as u64;
        let second = first + page_len(&bytes[first as usize..]).unwrap() as u64;
        assert_eq!(
            offsets,
            [
                (RegionKind::Other, 0),
                (RegionKind::Tag, first),
                (RegionKind::Audio, second)
            ]
        );
        assert_eq!(
            layout.regions[2].transform,
            Some(Transform::OggPages { first_seq: 2 })
        );
    }

    #[test]
    fn comment_header_across_pages() {
        // OpusTags of 600 bytes over three pages (255, 255 | 90), then audio.
        let mut tags = b"OpusTags".to_vec();
        tags.resize(600, b'x');
        let mut bytes = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        bytes.extend(page(0, 7, 1, &[255], &tags[..255]));
        bytes.extend(page(CONTINUED, 7, 2, &[255, 90], &tags[255..]));
        let audio = bytes.len() as u64;
        bytes.extend(packets_page(0, 7, 3, &[b"audio"]));
        let layout = layout(&bytes);
        assert_eq!(layout.regions[2].offset, audio);
        assert_eq!(
            layout.regions[2].transform,
            Some(Transform::OggPages { first_seq: 3 })
        );
    }

    #[test]
    fn headers_only_have_no_audio_region() {
        let bytes = opus(&[]);
        let kinds: Vec<_> = layout(&bytes).regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RegionKind::Other, RegionKind::Tag]);
        // Both headers on the first page: no Tag region either.
        let both = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head(), b"OpusTags"]);
        let mut with_audio = both.clone();
        with_audio.extend(packets_page(0, 7, 1, &[b"audio"]));
        let kinds: Vec<_> = layout(&with_audio).regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [RegionKind::Other, RegionKind::Audio]);
    }

    #[test]
    fn audio_that_is_not_a_page_of_the_stream_has_no_transform() {
        let mut other_serial = opus(&[]);
        other_serial.extend(packets_page(0, 8, 2, &[b"audio"]));
        let mut continued = opus(&[]);
        continued.extend(packets_page(CONTINUED, 7, 2, &[b"audio"]));
        let mut garbage = opus(&[]);
        garbage.extend_from_slice(b"not a page at all, just bytes");
        let mut cut = opus(&[b"audio packet"]);
        cut.truncate(cut.len() - 1);
        for bytes in [other_serial, continued, garbage, cut] {
            let layout = layout(&bytes);
            let audio = layout.regions.last().unwrap();
            assert_eq!(audio.kind, RegionKind::Audio);
            assert_eq!(audio.transform, None);
        }
    }

    #[test]
    fn unsupported_streams_are_malformed() {
        let mut audio_mid_page = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        audio_mid_page.extend(packets_page(0, 7, 1, &[b"OpusTags", b"audio"]));
        let flac_in_ogg = packets_page(BEGINNING_OF_STREAM, 7, 0, &[b"\x7fFLAC\x01\x00"]);
        let mut not_bos = opus(&[b"audio"]);
        not_bos[5] = 0;
        let mut two_streams = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        two_streams.extend(packets_page(BEGINNING_OF_STREAM, 8, 0, &[&opus_head()]));
        two_streams.extend(packets_page(0, 7, 1, &[b"OpusTags"]));
        let mut bad_continuation = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        bad_continuation.extend(packets_page(CONTINUED, 7, 1, &[b"OpusTags"]));
        let mut missing_continuation = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
        missing_continuation.extend(page(0, 7, 1, &[255], &[b'x'; 255]));
        missing_continuation.extend(packets_page(0, 7, 2, &[b"OpusTags"]));
        let headers_cut = opus(&[])[..60].to_vec();
        for bytes in [
            Vec::new(),
            b"OggS".to_vec(),
            audio_mid_page,
            flac_in_ogg,
            not_bos,
            two_streams,
            bad_continuation,
            missing_continuation,
            headers_cut,
        ] {
            assert!(
                matches!(
                    parse(&mut Cursor::new(&bytes), bytes.len() as u64),
                    Err(ParseError::Malformed(_))
                ),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn endless_header_pages_are_bounded() {
        // A comment packet of `pages` pages of one 255-byte segment, then an empty segment.
        let stream = |pages: u32| {
            let mut bytes = packets_page(BEGINNING_OF_STREAM, 7, 0, &[&opus_head()]);
            bytes.extend(page(0, 7, 1, &[255], &[b'x'; 255]));
            for seq in 2..=pages {
                bytes.extend(page(CONTINUED, 7, seq, &[255], &[b'x'; 255]));
            }
            bytes.extend(page(CONTINUED, 7, pages + 1, &[0], b""));
            bytes
        };
        let long = stream(MAX_HEADER_PAGES as u32 / 2);
        assert!(parse(&mut Cursor::new(&long), long.len() as u64).is_ok());
        let endless = stream(MAX_HEADER_PAGES as u32);
        assert!(matches!(
            parse(&mut Cursor::new(&endless), endless.len() as u64),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_and_damaged_files_never_panic() {
        for name in [VORBIS, OPUS] {
            let bytes = fixture(name);
            let audio = layout(&bytes).regions.last().unwrap().offset as usize;
            let head = audio + 64;
            for cut in 0..bytes.len() {
                assert_sane(&bytes[..cut]);
            }
            let mut damaged = bytes[..head].to_vec();
            for at in (0..head).filter(|&at| at < 300 || at + 300 >= audio) {
                for value in [0x00, 0xff, 0x80, 0x7f, damaged[at] ^ 0x01] {
                    let saved = damaged[at];
                    damaged[at] = value;
                    assert_sane(&damaged);
                    damaged[at] = saved;
                }
            }
        }
    }

    never_panics!(fixture(OPUS), b"OggS", assert_sane);
}
