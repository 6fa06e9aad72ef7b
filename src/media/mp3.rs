//! MP3: MPEG audio frames between ID3v2 tags at the front and ID3v1, APEv2, Lyrics3 or
//! appended ID3v2 tags at the back.
//!
//! This is also where ID3v2 is parsed ([`id3v2_marks`]): RIFF and AIFF files embed the same
//! tags in `id3 ` chunks.
//!
//! An ID3v2 tag is split around each picture's image bytes and its padding, because the image
//! is the same bytes in every track of an album and the padding is what a tag editor eats when
//! a frame grows. The split is made only when every frame size adds up and the bytes on disk
//! are the image itself (no unsynchronisation, compression or encryption); otherwise the tag is
//! one Tag region, which costs deduplication and nothing else. The parser never reads a frame's
//! body except the first bytes of a picture frame (at most [`PICTURE_HEAD_MAX`]), to find where
//! the image starts; it seeks over everything else.

use super::{read_at, Mark, MarkList, ParseError, ParseResult, RegionKind, Source};

/// Length of an ID3v2 header, and of its footer.
const ID3V2_HEADER_LEN: u64 = 10;
/// How much of a picture frame is read to find its image: the MIME type, picture type and
/// description must fit in it, or the frame is not split.
const PICTURE_HEAD_MAX: u64 = 64 * 1024;
/// What is read of a picture frame first: its header but for a long description.
const PICTURE_HEAD_FIRST: usize = 256;
/// Most tags looked for at the end of a file (each one found moves the end back).
const MAX_TRAILERS: usize = 16;
/// Longest Lyrics3 v1 tag: `LYRICSBEGIN`, at most 5100 bytes of lyrics, `LYRICSEND`.
const LYRICS3V1_MAX: u64 = 11 + 5100 + 9;

/// Whether a file's first bytes look like MP3: an ID3v2 tag, or an MPEG audio frame header.
pub(super) fn looks_like(head: &[u8]) -> bool {
    head.starts_with(b"ID3") || is_frame_header(head)
}

/// An MPEG audio frame header: 11 sync bits, then a version, layer, bitrate and sample rate
/// that are not reserved values.
fn is_frame_header(head: &[u8]) -> bool {
    let [b0, b1, b2, ..] = *head else {
        return false;
    };
    b0 == 0xFF
        && b1 & 0xE0 == 0xE0
        && (b1 >> 3) & 0b11 != 0b01
        && (b1 >> 1) & 0b11 != 0b00
        && b2 >> 4 != 0xF
        && (b2 >> 2) & 0b11 != 0b11
}

/// Marks of an MP3 file of `len` bytes.
///
/// Regions: each leading ID3v2 tag as described at [`id3v2_marks`], Audio from the end of the
/// last of them (or from 0) to the first trailing tag, then the trailing tags as Tag regions
/// (an appended ID3v2 tag split like a leading one).
pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let mut marks = MarkList::new();
    let mut audio = 0u64;
    while starts_with(source, audio, len, b"ID3")? {
        match read_id3v2_header(source, audio, len - audio) {
            Ok(header) => {
                marks.extend(&tag_marks(source, &header)?)?;
                audio = header.end();
            }
            Err(ParseError::Malformed(why)) if audio == 0 => {
                return Err(ParseError::Malformed(why))
            }
            // A broken second tag: what follows the first is taken for audio.
            Err(ParseError::Malformed(_)) => break,
            Err(e) => return Err(e),
        }
    }
    if audio == 0 && !starts_with_frame_header(source, len)? {
        return Err(ParseError::Malformed("no ID3v2 tag or MPEG frame header"));
    }
    let trailers = trailer_marks(source, audio, len)?;
    marks.push(audio, RegionKind::Audio)?;
    marks.extend(&trailers)?;
    Ok(marks.finish(len))
}

fn starts_with_frame_header(source: &mut dyn Source, len: u64) -> Result<bool, ParseError> {
    let mut head = [0u8; 3];
    if len < head.len() as u64 {
        return Ok(false);
    }
    read_at(source, 0, &mut head)?;
    Ok(is_frame_header(&head))
}

/// Marks of the ID3v2 tag at `offset`, which must lie within `available` bytes (the caller
/// has checked that `offset + available` is within the file).
///
/// Regions: Tag from the tag's header; for each APIC (v2.3, v2.4) or PIC (v2.2) frame, Picture
/// from the first byte of the image data to the frame's end, then Tag again; Padding from the
/// first zero byte where a frame header should be to the end of the frames; Tag for a v2.4
/// footer. If the tag is shorter than `available`, the rest is Tag (the space a RIFF or AIFF
/// chunk keeps around its tag). A tag that uses tag-level unsynchronisation, an extended header
/// or flags that do not add up, or frames whose sizes do not fit, is one Tag region; a picture
/// frame that is compressed, encrypted, unsynchronised, grouped or has a data length indicator
/// stays inside its Tag region.
pub(super) fn id3v2_marks(source: &mut dyn Source, offset: u64, available: u64) -> ParseResult {
    let header = read_id3v2_header(source, offset, available)?;
    let mut marks = tag_marks(source, &header)?;
    let end = offset.saturating_add(available);
    if header.end() < end {
        marks.push(Mark::new(header.end(), RegionKind::Tag));
    }
    let mut list = MarkList::new();
    list.extend(&marks)?;
    Ok(list.finish(end))
}

/// Whether the `magic.len()` bytes at `offset` are `magic`.
fn starts_with(
    source: &mut dyn Source,
    offset: u64,
    len: u64,
    magic: &[u8],
) -> Result<bool, ParseError> {
    let mut buf = [0u8; 16];
    let Some(buf) = buf.get_mut(..magic.len()) else {
        return Ok(false);
    };
    if len.saturating_sub(offset) < magic.len() as u64 {
        return Ok(false);
    }
    read_at(source, offset, buf)?;
    Ok(buf == magic)
}

/// A syncsafe integer: 7 bits a byte, the high bit clear.
fn syncsafe(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |acc, &b| {
        (b < 0x80).then_some((acc << 7) | u64::from(b))
    })
}

fn big_endian(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// `Ok(None)` for a malformed structure, other errors as they are.
fn optional<T>(result: Result<T, ParseError>) -> Result<Option<T>, ParseError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(ParseError::Malformed(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An ID3v2 tag's header, checked against the space it lies in.
#[derive(Clone, Copy, Debug)]
struct Id3v2Header {
    /// Offset of "ID3".
    offset: u64,
    /// 2, 3 or 4.
    major: u8,
    flags: u8,
    /// The size field: the bytes after the header, not counting a footer.
    size: u64,
    /// Whether a "3DI" footer follows the frames (v2.4).
    footer: bool,
}

impl Id3v2Header {
    /// Offset just past the frames and padding (where the footer is, if any).
    fn frames_end(&self) -> u64 {
        self.offset + ID3V2_HEADER_LEN + self.size
    }

    /// Offset just past the tag, footer included.
    fn end(&self) -> u64 {
        self.frames_end() + if self.footer { ID3V2_HEADER_LEN } else { 0 }
    }

    /// Whether the frames are stored as they are, so their sizes and bytes can be trusted:
    /// no tag-level unsynchronisation, no v2.2 compression, no flag this parser doesn't know.
    fn frames_are_plain(&self) -> bool {
        let unknown = match self.major {
            2 => 0x7F, // 0x40 is v2.2's compression
            3 => 0x1F,
            _ => 0x0F,
        };
        self.flags & (0x80 | unknown) == 0
    }

    fn has_extended_header(&self) -> bool {
        self.major >= 3 && self.flags & 0x40 != 0
    }
}

fn read_id3v2_header(
    source: &mut dyn Source,
    offset: u64,
    available: u64,
) -> Result<Id3v2Header, ParseError> {
    if available < ID3V2_HEADER_LEN {
        return Err(ParseError::Malformed("ID3v2 header cut short"));
    }
    let mut h = [0u8; ID3V2_HEADER_LEN as usize];
    read_at(source, offset, &mut h)?;
    if &h[..3] != b"ID3" {
        return Err(ParseError::Malformed("no ID3v2 header"));
    }
    let major = h[3];
    if !(2..=4).contains(&major) || h[4] == 0xFF {
        return Err(ParseError::Malformed("unknown ID3v2 version"));
    }
    let size = syncsafe(&h[6..10]).ok_or(ParseError::Malformed("ID3v2 size not syncsafe"))?;
    let mut header = Id3v2Header {
        offset,
        major,
        flags: h[5],
        size,
        footer: false,
    };
    let body = ID3V2_HEADER_LEN + size;
    if body > available {
        return Err(ParseError::Malformed("ID3v2 tag runs past its space"));
    }
    if major == 4 && header.flags & 0x10 != 0 && available - body >= ID3V2_HEADER_LEN {
        let mut magic = [0u8; 3];
        read_at(source, header.frames_end(), &mut magic)?;
        // A footer flag without a footer: the tag is taken without it (and not split).
        header.footer = &magic == b"3DI";
    }
    if header.end() - offset > available {
        return Err(ParseError::Malformed("ID3v2 tag runs past its space"));
    }
    Ok(header)
}

/// Marks of one tag, from its first byte to its end.
fn tag_marks(source: &mut dyn Source, header: &Id3v2Header) -> ParseResult {
    let whole = vec![Mark::new(header.offset, RegionKind::Tag)];
    let footer_flag_without_footer =
        header.major == 4 && header.flags & 0x10 != 0 && !header.footer;
    if !header.frames_are_plain() || footer_flag_without_footer {
        return Ok(whole);
    }
    let Some(frames_start) = frames_start(source, header)? else {
        return Ok(whole);
    };
    let mut found = frame_marks(
        source,
        header,
        frames_start,
        FrameSizes::for_version(header.major),
    )?;
    if found.is_none() && header.major == 4 {
        // Some writers (old iTunes among them) put plain big-endian sizes in v2.4 frames.
        found = frame_marks(source, header, frames_start, FrameSizes::BigEndian)?;
    }
    Ok(found.unwrap_or(whole))
}

/// Where the first frame starts (after the extended header, if any), or `None` when the
/// extended header's size does not fit the tag.
fn frames_start(source: &mut dyn Source, header: &Id3v2Header) -> Result<Option<u64>, ParseError> {
    let start = header.offset + ID3V2_HEADER_LEN;
    if !header.has_extended_header() {
        return Ok(Some(start));
    }
    if header.size < 4 {
        return Ok(None);
    }
    let mut size = [0u8; 4];
    read_at(source, start, &mut size)?;
    let extended_len = if header.major == 3 {
        // v2.3: the size excludes its own four bytes (6 or 10 in practice).
        Some(big_endian(&size) + 4)
    } else {
        // v2.4: a syncsafe size that includes itself, at least 6.
        syncsafe(&size).filter(|&n| n >= 6)
    };
    Ok(extended_len
        .filter(|&n| n <= header.size)
        .map(|n| start + n))
}

/// How frame sizes are written.
#[derive(Clone, Copy)]
enum FrameSizes {
    /// v2.2: three bytes.
    ThreeBytes,
    /// v2.3, and v2.4 from some writers.
    BigEndian,
    /// v2.4.
    Syncsafe,
}

impl FrameSizes {
    fn for_version(major: u8) -> FrameSizes {
        match major {
            2 => FrameSizes::ThreeBytes,
            3 => FrameSizes::BigEndian,
            _ => FrameSizes::Syncsafe,
        }
    }
}

/// Walks the frames from `start` and marks pictures and padding, or gives `None` when a frame
/// header is not one or a frame runs past the tag.
fn frame_marks(
    source: &mut dyn Source,
    header: &Id3v2Header,
    start: u64,
    sizes: FrameSizes,
) -> Result<Option<Vec<Mark>>, ParseError> {
    let frames_end = header.frames_end();
    let header_len: u64 = if header.major == 2 { 6 } else { 10 };
    let mut marks = MarkList::new();
    marks.push(header.offset, RegionKind::Tag)?;
    let mut pos = start;
    while pos < frames_end {
        let remaining = frames_end - pos;
        let mut buf = [0u8; 10];
        let frame = &mut buf[..remaining.min(header_len) as usize];
        read_at(source, pos, frame)?;
        if frame[0] == 0 {
            marks.push(pos, RegionKind::Padding)?;
            break;
        }
        if remaining < header_len {
            return Ok(None);
        }
        let (id, size, format_flags) = match sizes {
            FrameSizes::ThreeBytes => (&frame[..3], Some(big_endian(&frame[3..6])), 0),
            FrameSizes::BigEndian => (&frame[..4], Some(big_endian(&frame[4..8])), frame[9]),
            FrameSizes::Syncsafe => (&frame[..4], syncsafe(&frame[4..8]), frame[9]),
        };
        let Some(size) = size else {
            return Ok(None);
        };
        if !id
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Ok(None);
        }
        let body = pos + header_len;
        let Some(end) = body.checked_add(size).filter(|&e| e <= frames_end) else {
            return Ok(None);
        };
        let is_picture = match header.major {
            2 => id == b"PIC",
            _ => id == b"APIC",
        };
        // v2.3: compression, encryption, grouping; v2.4: grouping, compression, encryption,
        // unsynchronisation, data length indicator.
        let transformed = match header.major {
            2 => false,
            3 => format_flags & 0xE0 != 0,
            _ => format_flags & 0x4F != 0,
        };
        if is_picture && !transformed {
            if let Some(image) = image_start(source, body, size, header.major)? {
                marks.push(image, RegionKind::Picture)?;
                marks.push(end, RegionKind::Tag)?;
            }
        }
        pos = end;
    }
    if header.footer {
        marks.push(frames_end, RegionKind::Tag)?;
    }
    Ok(Some(marks.finish(header.end())))
}

/// Offset of the image data in the picture frame whose body is `size` bytes at `body`, or
/// `None` if its header does not parse or the image is empty.
fn image_start(
    source: &mut dyn Source,
    body: u64,
    size: u64,
    major: u8,
) -> Result<Option<u64>, ParseError> {
    // The header is a few dozen bytes but for a long description: read a little first,
    // and more only while the header runs past what was read.
    let most = size.min(PICTURE_HEAD_MAX) as usize;
    let mut want = most.min(PICTURE_HEAD_FIRST);
    let mut head = Vec::new();
    loop {
        let had = head.len();
        head.resize(want, 0);
        read_at(source, body + had as u64, &mut head[had..])?;
        if let Some(n) = picture_header_len(&head, major) {
            return Ok(Some(body + n as u64).filter(|&image| image < body + size));
        }
        if want == most {
            return Ok(None);
        }
        want = (want * 16).min(most);
    }
}

/// Length of a picture frame's header fields: text encoding, MIME type (v2.3+, a Latin-1
/// string ending in 0) or image format (v2.2, three bytes), picture type, and description
/// ending in a null of its encoding (two bytes, aligned, for UTF-16).
fn picture_header_len(head: &[u8], major: u8) -> Option<usize> {
    let encoding = *head.first()?;
    let mut pos = 1;
    if major == 2 {
        pos += 3;
    } else {
        pos += head.get(pos..)?.iter().position(|&b| b == 0)? + 1;
    }
    pos += 1; // picture type
    let description = head.get(pos..)?;
    let description_len = match encoding {
        0 | 3 => description.iter().position(|&b| b == 0)? + 1,
        1 | 2 => description.chunks_exact(2).position(|c| c == [0, 0])? * 2 + 2,
        _ => return None,
    };
    Some(pos + description_len)
}

/// Marks of the tags at the end of a file, in order, none before `floor` (the end of the
/// leading tags). ID3v1 (and an enhanced `TAG+` block before it) is looked for at the very
/// end; then, as long as one is found, APEv2, Lyrics3 v2, Lyrics3 v1 or an appended ID3v2 tag
/// ending where the last one found starts. Each is a Tag region (an appended ID3v2 tag is
/// split as usual).
fn trailer_marks(source: &mut dyn Source, floor: u64, len: u64) -> ParseResult {
    let mut end = len;
    let mut found: Vec<Vec<Mark>> = Vec::new();
    if let Some(start) = id3v1_start(source, floor, end)? {
        let mut marks = vec![Mark::new(start, RegionKind::Tag)];
        end = start;
        if let Some(enhanced) = enhanced_id3v1_start(source, floor, start)? {
            marks.insert(0, Mark::new(enhanced, RegionKind::Tag));
            end = enhanced;
        }
        found.push(marks);
    }
    for _ in 0..MAX_TRAILERS {
        let marks = if let Some(start) = apev2_start(source, floor, end)? {
            vec![Mark::new(start, RegionKind::Tag)]
        } else if let Some(start) = lyrics3v2_start(source, floor, end)? {
            vec![Mark::new(start, RegionKind::Tag)]
        } else if let Some(start) = lyrics3v1_start(source, floor, end)? {
            vec![Mark::new(start, RegionKind::Tag)]
        } else if let Some(marks) = appended_id3v2(source, floor, end)? {
            marks
        } else {
            break;
        };
        let Some(first) = marks.first() else {
            break;
        };
        end = first.offset;
        found.push(marks);
    }
    Ok(found.into_iter().rev().flatten().collect())
}

/// ID3v1: "TAG" 128 bytes before `end`.
fn id3v1_start(source: &mut dyn Source, floor: u64, end: u64) -> Result<Option<u64>, ParseError> {
    if end.saturating_sub(floor) < 128 || !starts_with(source, end - 128, end, b"TAG")? {
        return Ok(None);
    }
    Ok(Some(end - 128))
}

/// Enhanced ID3v1: "TAG+", 227 bytes ending where the ID3v1 tag starts.
fn enhanced_id3v1_start(
    source: &mut dyn Source,
    floor: u64,
    id3v1: u64,
) -> Result<Option<u64>, ParseError> {
    if id3v1.saturating_sub(floor) < 227 || !starts_with(source, id3v1 - 227, id3v1, b"TAG+")? {
        return Ok(None);
    }
    Ok(Some(id3v1 - 227))
}

/// APEv2 (or v1): a 32-byte "APETAGEX" footer whose size counts the items and the footer, and
/// a 32-byte header before the items when its flags say so.
fn apev2_start(source: &mut dyn Source, floor: u64, end: u64) -> Result<Option<u64>, ParseError> {
    if end.saturating_sub(floor) < 32 {
        return Ok(None);
    }
    let mut footer = [0u8; 32];
    read_at(source, end - 32, &mut footer)?;
    if &footer[..8] != b"APETAGEX" {
        return Ok(None);
    }
    let size = u64::from(u32::from_le_bytes([
        footer[12], footer[13], footer[14], footer[15],
    ]));
    let flags = u32::from_le_bytes([footer[20], footer[21], footer[22], footer[23]]);
    if size < 32 || size > end - floor {
        return Ok(None);
    }
    let start = end - size;
    let has_header = flags & (1 << 31) != 0;
    if has_header && start - floor >= 32 && starts_with(source, start - 32, end, b"APETAGEX")? {
        return Ok(Some(start - 32));
    }
    Ok(Some(start))
}

/// Lyrics3 v2: "LYRICSBEGIN" … a six-digit size (of everything from "LYRICSBEGIN" up to the
/// size) and "LYRICS200".
fn lyrics3v2_start(
    source: &mut dyn Source,
    floor: u64,
    end: u64,
) -> Result<Option<u64>, ParseError> {
    if end.saturating_sub(floor) < 15 + 11 {
        return Ok(None);
    }
    let mut footer = [0u8; 15];
    read_at(source, end - 15, &mut footer)?;
    if &footer[6..] != b"LYRICS200" || !footer[..6].iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let size = footer[..6]
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    let Some(start) = (end - 15).checked_sub(size).filter(|&s| s >= floor) else {
        return Ok(None);
    };
    if size < 11 || !starts_with(source, start, end, b"LYRICSBEGIN")? {
        return Ok(None);
    }
    Ok(Some(start))
}

/// Lyrics3 v1: "LYRICSBEGIN", at most 5100 bytes of lyrics, "LYRICSEND".
fn lyrics3v1_start(
    source: &mut dyn Source,
    floor: u64,
    end: u64,
) -> Result<Option<u64>, ParseError> {
    let room = end.saturating_sub(floor);
    if room < 11 + 9 || !starts_with(source, end - 9, end, b"LYRICSEND")? {
        return Ok(None);
    }
    let window = room.min(LYRICS3V1_MAX);
    let mut buf = vec![0u8; window as usize];
    read_at(source, end - window, &mut buf)?;
    let before_end = &buf[..buf.len() - 9];
    Ok(before_end
        .windows(11)
        .rposition(|w| w == b"LYRICSBEGIN")
        .map(|i| end - window + i as u64))
}

/// An ID3v2.4 tag with a footer, appended at the end.
fn appended_id3v2(
    source: &mut dyn Source,
    floor: u64,
    end: u64,
) -> Result<Option<Vec<Mark>>, ParseError> {
    if end.saturating_sub(floor) < 2 * ID3V2_HEADER_LEN {
        return Ok(None);
    }
    let mut footer = [0u8; ID3V2_HEADER_LEN as usize];
    read_at(source, end - ID3V2_HEADER_LEN, &mut footer)?;
    if &footer[..3] != b"3DI" {
        return Ok(None);
    }
    let Some(size) = syncsafe(&footer[6..10]) else {
        return Ok(None);
    };
    let Some(start) = end
        .checked_sub(size + 2 * ID3V2_HEADER_LEN)
        .filter(|&s| s >= floor)
    else {
        return Ok(None);
    };
    let Some(header) = optional(read_id3v2_header(source, start, end - start))? else {
        return Ok(None);
    };
    if !header.footer || header.end() != end {
        return Ok(None);
    }
    Ok(Some(tag_marks(source, &header)?))
}

#[cfg(test)]
pub(super) mod tests {
    //! Helpers here are shared with the RIFF and AIFF tests, which embed ID3v2 tags too.
    use std::io::Cursor;

    use super::super::{detect, parse_as, Format, Layout, RegionKind};
    use super::*;
    use RegionKind::{Audio, Other, Padding, Picture, Tag};

    /// A fixture's bytes, by path under `fixtures/audio`.
    pub(in crate::media) fn fixture(path: &str) -> Vec<u8> {
        let full = format!("{}/fixtures/audio/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
    }

    /// The damaged fixtures whose names start with `prefix`, as (name, bytes).
    pub(in crate::media) fn damaged(prefix: &str) -> Vec<(String, Vec<u8>)> {
        let dir = format!("{}/fixtures/damaged", env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.expect("readable").path())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .map(|path| {
                let name = path
                    .file_name()
                    .expect("a file")
                    .to_string_lossy()
                    .into_owned();
                (name, std::fs::read(&path).expect("readable"))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no {prefix}* in {dir}");
        files
    }

    /// The layout `detect` finds.
    pub(in crate::media) fn detected(bytes: &[u8]) -> Layout {
        let layout = detect(&mut Cursor::new(bytes), bytes.len() as u64).expect("in memory");
        assert_covers(&layout, bytes.len() as u64);
        layout
    }

    /// The layout parsed as `format`.
    pub(in crate::media) fn parsed(format: Format, bytes: &[u8]) -> Layout {
        let layout = parse_as(format, &mut Cursor::new(bytes), bytes.len() as u64);
        assert_covers(&layout, bytes.len() as u64);
        layout
    }

    /// Regions as (kind, offset, length).
    pub(in crate::media) fn spans(layout: &Layout) -> Vec<(RegionKind, u64, u64)> {
        layout
            .regions
            .iter()
            .map(|r| (r.kind, r.offset, r.len))
            .collect()
    }

    /// The bytes of each region of `kind`.
    pub(in crate::media) fn bytes_of<'a>(
        bytes: &'a [u8],
        layout: &Layout,
        kind: RegionKind,
    ) -> Vec<&'a [u8]> {
        layout
            .regions
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| &bytes[r.offset as usize..(r.offset + r.len) as usize])
            .collect()
    }

    /// Regions are contiguous, non-empty and cover `[0, len)`.
    pub(in crate::media) fn assert_covers(layout: &Layout, len: u64) {
        let mut at = 0;
        for r in &layout.regions {
            assert_eq!(r.offset, at, "{layout:?}");
            assert!(r.len > 0, "{layout:?}");
            at += r.len;
        }
        assert_eq!(at, len, "{layout:?}");
    }

    /// Parses every short prefix and a spread of longer ones, and copies with bytes
    /// overwritten near the start and near each region boundary: no panic, layouts cover.
    pub(in crate::media) fn assert_survives_damage(format: Format, bytes: &[u8]) {
        let cuts = (0..bytes.len().min(600)).chain((600..bytes.len()).step_by(331));
        for cut in cuts {
            parsed(format, &bytes[..cut]);
        }
        let layout = parsed(format, bytes);
        let mut spots: Vec<usize> = (0..bytes.len().min(64)).collect();
        for r in &layout.regions {
            let at = r.offset as usize;
            spots.extend(at.saturating_sub(12)..(at + 12).min(bytes.len()));
        }
        let mut copy = bytes.to_vec();
        for &spot in &spots {
            for value in [0x00, 0xFF, 0x7F, 0x80] {
                let old = copy[spot];
                copy[spot] = value;
                parsed(format, &copy);
                copy[spot] = old;
            }
        }
    }

    pub(in crate::media) fn syncsafe_bytes(n: usize) -> [u8; 4] {
        let n = u32::try_from(n).expect("small");
        assert!(n < 1 << 28);
        [
            (n >> 21) as u8 & 0x7F,
            (n >> 14) as u8 & 0x7F,
            (n >> 7) as u8 & 0x7F,
            n as u8 & 0x7F,
        ]
    }

    /// An ID3v2 frame of `major` version.
    pub(in crate::media) fn frame(major: u8, id: &[u8], format_flags: u8, body: &[u8]) -> Vec<u8> {
        let mut f = id.to_vec();
        match major {
            2 => f.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]),
            3 => f.extend_from_slice(&(body.len() as u32).to_be_bytes()),
            _ => f.extend_from_slice(&syncsafe_bytes(body.len())),
        }
        if major > 2 {
            f.extend_from_slice(&[0, format_flags]);
        }
        f.extend_from_slice(body);
        f
    }

    /// A text frame.
    pub(in crate::media) fn text(major: u8, id: &[u8], value: &str) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(value.as_bytes());
        frame(major, id, 0, &body)
    }

    /// The body of an APIC (or, for v2.2, PIC) frame; `description` is already encoded and
    /// terminated.
    pub(in crate::media) fn picture_body(
        major: u8,
        encoding: u8,
        description: &[u8],
        image: &[u8],
    ) -> Vec<u8> {
        let mut body = vec![encoding];
        if major == 2 {
            body.extend_from_slice(b"PNG");
        } else {
            body.extend_from_slice(b"image/png\0");
        }
        body.push(3); // front cover
        body.extend_from_slice(description);
        body.extend_from_slice(image);
        body
    }

    /// An ID3v2 tag: header, `frames` (with any extended header first), `padding` zeros.
    pub(in crate::media) fn tag(major: u8, flags: u8, frames: &[u8], padding: usize) -> Vec<u8> {
        let mut t = b"ID3".to_vec();
        t.extend_from_slice(&[major, 0, flags]);
        t.extend_from_slice(&syncsafe_bytes(frames.len() + padding));
        t.extend_from_slice(frames);
        t.resize(t.len() + padding, 0);
        if flags & 0x10 != 0 {
            let mut footer = t[..10].to_vec();
            footer[..3].copy_from_slice(b"3DI");
            t.extend_from_slice(&footer);
        }
        t
    }

    /// A picture's bytes, distinct for each `seed`.
    pub(in crate::media) fn image(seed: u8, len: usize) -> Vec<u8> {
        let mut img = b"\x89PNG\r\n\x1a\n".to_vec();
        img.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1));
        img
    }

    /// MPEG audio: frame headers and filler.
    fn audio(len: usize) -> Vec<u8> {
        let mut a = vec![0xFF, 0xFB, 0x50, 0xC0];
        a.resize(len, 0x55);
        a
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    const FIRST_LIGHT: [&str; 3] = [
        "Aurora Tones/First Light/01 Dawn.mp3",
        "Aurora Tones/First Light/02 Zenith.mp3",
        "Aurora Tones/First Light/03 Dusk.mp3",
    ];

    #[test]
    fn first_light_pictures_are_the_cover_jpeg() {
        let cover = fixture("Aurora Tones/First Light/cover.jpg");
        for path in FIRST_LIGHT {
            let bytes = fixture(path);
            let layout = detected(&bytes);
            assert_eq!(layout.format, Format::Mp3, "{path}");
            assert_eq!(
                bytes_of(&bytes, &layout, Picture),
                vec![&cover[..]],
                "{path}"
            );
        }
    }

    #[test]
    fn dawn_regions_are_tag_picture_padding_audio() {
        let bytes = fixture(FIRST_LIGHT[0]);
        let len = bytes.len() as u64;
        // APIC frame header at 147, then encoding, "image/jpeg\0", type, "Album cover\0".
        let image = 147 + 10 + 1 + 11 + 1 + 12;
        assert_eq!(
            spans(&detected(&bytes)),
            vec![
                (Tag, 0, image),
                (Picture, image, 8430),
                (Padding, 8612, 10),
                (Audio, 8622, len - 8622),
            ]
        );
        assert_eq!(
            &bytes[8622..8624],
            &[0xFF, 0xFB],
            "audio starts with a frame header"
        );
    }

    #[test]
    fn mains_hum_ends_with_id3v1() {
        let bytes = fixture("Aurora Tones/Night Shift/02 Mains Hum.mp3");
        let len = bytes.len() as u64;
        assert_eq!(
            spans(&detected(&bytes)),
            vec![
                (Tag, 0, 152),
                (Padding, 152, 10),
                (Audio, 162, len - 128 - 162),
                (Tag, len - 128, 128),
            ]
        );
    }

    #[test]
    fn static_v24_tag_without_picture() {
        let bytes = fixture("Aurora Tones/Night Shift/01 Static.mp3");
        let len = bytes.len() as u64;
        assert_eq!(
            spans(&detected(&bytes)),
            vec![(Tag, 0, 149), (Padding, 149, 10), (Audio, 159, len - 159)]
        );
    }

    #[test]
    fn fixtures_survive_damage() {
        for path in [FIRST_LIGHT[0], "Aurora Tones/Night Shift/02 Mains Hum.mp3"] {
            assert_survives_damage(Format::Mp3, &fixture(path));
        }
    }

    #[test]
    fn damaged_fixtures() {
        for (name, bytes) in damaged("mp3-") {
            let layout = detected(&bytes);
            parsed(Format::Mp3, &bytes);
            let len = bytes.len() as u64;
            let expected: Option<Vec<_>> = match name.as_str() {
                "mp3-id3-size-past-eof.mp3"
                | "mp3-id3-size-not-syncsafe.mp3"
                | "mp3-truncated-in-picture.mp3"
                | "mp3-id3-truncated-header.mp3"
                | "mp3-id3v1-only.mp3" => Some(vec![(Other, 0, len)]),
                // The APIC frame runs past the tag: the whole tag is one region.
                "mp3-apic-size-past-tag.mp3" => {
                    Some(vec![(Tag, 0, 8622), (Audio, 8622, len - 8622)])
                }
                // An APEv2 size or a Lyrics3 start that does not fit: only ID3v1 is found.
                "mp3-apev2-size-huge.mp3" | "mp3-lyrics3v2-size-past-start.mp3" => Some(vec![
                    (Tag, 0, 149),
                    (Padding, 149, 10),
                    (Audio, 159, len - 128 - 159),
                    (Tag, len - 128, 128),
                ]),
                _ => None,
            };
            if let Some(expected) = expected {
                assert_eq!(spans(&layout), expected, "{name}");
            }
            assert!(bytes_of(&bytes, &layout, Picture).is_empty(), "{name}");
        }
    }

    #[test]
    fn v22_pic_is_split() {
        let img = image(1, 300);
        let frames = cat(&[
            &frame(2, b"TT2", 0, b"\0Title"),
            &frame(2, b"PIC", 0, &picture_body(2, 0, b"cover\0", &img)),
            &frame(2, b"TAL", 0, b"\0Album"),
        ]);
        let t = tag(2, 0, &frames, 20);
        let file = cat(&[&t, &audio(500)]);
        let layout = detected(&file);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Tag, Picture, Tag, Padding, Audio]);
        assert_eq!(layout.regions[4].offset, t.len() as u64);
    }

    #[test]
    fn v24_extended_header_and_footer() {
        let img = image(2, 200);
        let extended = [0, 0, 0, 6, 1, 0]; // syncsafe size 6 (itself included), no flags
        let frames = cat(&[
            &extended,
            &text(4, b"TIT2", "Title"),
            &frame(
                4,
                b"APIC",
                0,
                &picture_body(4, 3, b"\xC3\xA9t\xC3\xA9\0", &img),
            ),
        ]);
        for padding in [0, 16] {
            let t = tag(4, 0x40 | 0x10, &frames, padding);
            let file = cat(&[&t, &audio(400)]);
            let layout = detected(&file);
            assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
            let footer = (t.len() - 10) as u64;
            let expected: &[_] = if padding == 0 {
                &[Tag, Picture, Tag, Audio]
            } else {
                &[Tag, Picture, Padding, Tag, Audio]
            };
            let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
            assert_eq!(kinds, expected);
            let last_tag = &layout.regions[layout.regions.len() - 2];
            assert_eq!(last_tag.offset + last_tag.len, t.len() as u64);
            assert!(last_tag.offset <= footer);
        }
    }

    #[test]
    fn v23_extended_header() {
        let img = image(3, 100);
        let extended = [0, 0, 0, 6, 0, 0, 0, 0, 0, 0]; // size 6, flags, padding size
        let frames = cat(&[
            &extended,
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &img)),
            &text(3, b"TIT2", "T"),
        ]);
        let file = cat(&[&tag(3, 0x40, &frames, 0), &audio(100)]);
        let layout = detected(&file);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    #[test]
    fn unsynchronised_tag_is_one_region() {
        let img = image(4, 100);
        let frames = frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &img));
        let t = tag(3, 0x80, &frames, 10);
        let file = cat(&[&t, &audio(100)]);
        assert_eq!(
            spans(&detected(&file)),
            vec![(Tag, 0, t.len() as u64), (Audio, t.len() as u64, 100)]
        );
    }

    #[test]
    fn utf16_descriptions_end_on_an_aligned_null() {
        let img = image(5, 100);
        // UTF-16 with a BOM: "Ā" then "A" in little-endian is 00 01 41 00: the null pair
        // straddling the two characters is not a terminator, nor is 41 00 00 00's odd pair.
        let with_bom = b"\xFF\xFE\x00\x01\x41\x00\x00\x00";
        // UTF-16BE "Ā" "A": 01 00 00 41 has a null pair at an odd offset.
        let big_endian = b"\x01\x00\x00\x41\x00\x00";
        for (encoding, description) in [(1, &with_bom[..]), (2, &big_endian[..])] {
            let frames = frame(3, b"APIC", 0, &picture_body(3, encoding, description, &img));
            let file = cat(&[&tag(3, 0, &frames, 0), &audio(100)]);
            let layout = detected(&file);
            assert_eq!(
                bytes_of(&file, &layout, Picture),
                vec![&img[..]],
                "encoding {encoding}"
            );
        }
    }

    #[test]
    fn a_description_longer_than_the_first_read_still_finds_the_image() {
        let img = image(11, 100);
        // Descriptions ending around the first read's end, well past it, and past the most
        // read (the frame then stays in the tag).
        for len in [200, 250, 255, 256, 300, 5_000, 70_000] {
            let mut description = vec![b'd'; len];
            description.push(0);
            let frames = frame(3, b"APIC", 0, &picture_body(3, 0, &description, &img));
            let file = cat(&[&tag(3, 0, &frames, 0), &audio(100)]);
            let layout = detected(&file);
            let want: Vec<&[u8]> = if len < 64 * 1024 - 20 {
                vec![&img[..]]
            } else {
                vec![]
            };
            assert_eq!(
                bytes_of(&file, &layout, Picture),
                want,
                "description of {len} B"
            );
        }
    }

    #[test]
    fn picture_frames_with_format_flags_stay_in_the_tag() {
        let plain = image(6, 100);
        let frames = cat(&[
            &frame(4, b"APIC", 0x01, &picture_body(4, 0, b"\0", &image(7, 100))),
            &frame(4, b"APIC", 0, &picture_body(4, 0, b"\0", &plain)),
            &frame(4, b"APIC", 0x08, &picture_body(4, 0, b"\0", &image(8, 100))),
        ]);
        let file = cat(&[&tag(4, 0, &frames, 0), &audio(100)]);
        let layout = detected(&file);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&plain[..]]);
    }

    #[test]
    fn v24_with_big_endian_frame_sizes() {
        let img = image(9, 300); // a size of 0x1xx: not syncsafe as written
        let frames = cat(&[
            &frame(3, b"TIT2", 0, b"\0Title"),
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &img)),
        ]);
        let file = cat(&[&tag(4, 0, &frames, 8), &audio(100)]);
        let layout = detected(&file);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    #[test]
    fn frames_that_do_not_add_up_give_one_tag_region() {
        let mut frames = frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &image(10, 100)));
        frames[7] += 50; // the frame now runs past the tag
        let t = tag(3, 0, &frames, 0);
        let file = cat(&[&t, &audio(100)]);
        assert_eq!(
            spans(&detected(&file)),
            vec![(Tag, 0, t.len() as u64), (Audio, t.len() as u64, 100)]
        );
        // A frame id that is not one.
        let frames = cat(&[
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &image(10, 100))),
            &frame(3, b"ti t", 0, b"x"),
        ]);
        let t = tag(3, 0, &frames, 0);
        let layout = detected(&cat(&[&t, &audio(100)]));
        assert_eq!(layout.regions.len(), 2);
    }

    #[test]
    fn several_leading_tags() {
        let img = image(11, 100);
        let first = tag(3, 0, &text(3, b"TIT2", "One"), 4);
        let second = tag(
            4,
            0,
            &frame(4, b"APIC", 0, &picture_body(4, 0, b"\0", &img)),
            0,
        );
        let file = cat(&[&first, &second, &audio(100)]);
        let layout = detected(&file);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Tag, Padding, Tag, Picture, Audio]);
        assert_eq!(layout.regions[2].offset, first.len() as u64);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    fn ape_tag(with_header: bool) -> Vec<u8> {
        let items = b"\x05\0\0\0\0\0\0\0Title\0Hello".to_vec();
        let size = (items.len() + 32) as u32;
        let block = |flags: u32| {
            let mut b = b"APETAGEX".to_vec();
            b.extend_from_slice(&2000u32.to_le_bytes());
            b.extend_from_slice(&size.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&flags.to_le_bytes());
            b.extend_from_slice(&[0; 8]);
            b
        };
        let header_flag = if with_header { 1 << 31 } else { 0 };
        let mut t = Vec::new();
        if with_header {
            t.extend(block(header_flag | 1 << 29));
        }
        t.extend(items);
        t.extend(block(header_flag));
        t
    }

    fn lyrics3v2() -> Vec<u8> {
        let mut t = b"LYRICSBEGININD00002".to_vec();
        t.extend_from_slice(b"11LYR00010Hello\nYou!");
        let size = format!("{:06}", t.len());
        t.extend_from_slice(size.as_bytes());
        t.extend_from_slice(b"LYRICS200");
        t
    }

    fn id3v1(enhanced: bool) -> Vec<u8> {
        let mut t = Vec::new();
        if enhanced {
            t.extend_from_slice(b"TAG+");
            t.resize(227, b' ');
        }
        t.extend_from_slice(b"TAGTitle");
        t.resize(t.len() + 120, 0);
        t
    }

    #[test]
    fn trailers_apev2_lyrics3v2_id3v1() {
        let head = tag(3, 0, &text(3, b"TIT2", "T"), 0);
        let body = audio(700);
        let ape = ape_tag(true);
        let lyrics = lyrics3v2();
        let v1 = id3v1(true);
        let file = cat(&[&head, &body, &ape, &lyrics, &v1]);
        let audio_end = (head.len() + body.len()) as u64;
        let len = file.len() as u64;
        assert_eq!(
            spans(&detected(&file)),
            vec![
                (Tag, 0, head.len() as u64),
                (Audio, head.len() as u64, body.len() as u64),
                (Tag, audio_end, len - audio_end),
            ]
        );
        let mut source = Cursor::new(&file);
        let starts: Vec<u64> = trailer_marks(&mut source, head.len() as u64, len)
            .expect("parses")
            .iter()
            .map(|m| m.offset)
            .collect();
        let ape_end = audio_end + ape.len() as u64;
        let lyrics_end = ape_end + lyrics.len() as u64;
        // APEv2 (from its header), Lyrics3 v2, "TAG+", "TAG".
        assert_eq!(starts, [audio_end, ape_end, lyrics_end, len - 128]);
        assert_eq!(lyrics_end + 227, len - 128);
    }

    #[test]
    fn trailers_in_other_orders() {
        let body = audio(400);
        for trailer in [
            cat(&[&lyrics3v2(), &ape_tag(false)]),
            cat(&[&ape_tag(false), &id3v1(false)]),
            lyrics3v2(),
            cat(&[b"LYRICSBEGIN", b"la la la", b"LYRICSEND", &id3v1(false)]),
        ] {
            let file = cat(&[&body, &trailer]);
            assert_eq!(
                spans(&detected(&file)),
                vec![
                    (Audio, 0, body.len() as u64),
                    (Tag, body.len() as u64, trailer.len() as u64)
                ]
            );
        }
    }

    #[test]
    fn appended_id3v24_is_split() {
        let img = image(12, 100);
        let appended = tag(
            4,
            0x10,
            &frame(4, b"APIC", 0, &picture_body(4, 0, b"\0", &img)),
            0,
        );
        let body = audio(400);
        let file = cat(&[&body, &appended, &id3v1(false)]);
        let layout = detected(&file);
        let kinds: Vec<_> = layout.regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Audio, Tag, Picture, Tag]);
        assert_eq!(layout.regions[1].offset, body.len() as u64);
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    #[test]
    fn a_file_of_tags_only_has_no_audio() {
        let file = cat(&[&tag(3, 0, &text(3, b"TIT2", "T"), 0), &id3v1(false)]);
        let layout = detected(&file);
        assert_eq!(spans(&layout), vec![(Tag, 0, file.len() as u64)]);
    }

    #[test]
    fn id3_size_past_the_end_is_opaque() {
        let mut file = cat(&[&tag(3, 0, &text(3, b"TIT2", "T"), 0), &audio(100)]);
        file[6..10].copy_from_slice(&[0x7F; 4]);
        assert_eq!(detected(&file), Layout::opaque(file.len() as u64));
        file[6..10].copy_from_slice(&[0x80, 0, 0, 0]); // not syncsafe
        assert_eq!(detected(&file), Layout::opaque(file.len() as u64));
    }

    #[test]
    fn id3v2_marks_cover_the_space_given() {
        let img = image(13, 50);
        let t = tag(
            3,
            0,
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &img)),
            0,
        );
        let chunk = cat(&[b"RIFFxxxx", &t, &[0; 6]]);
        let mut source = Cursor::new(&chunk);
        let marks = id3v2_marks(&mut source, 8, (t.len() + 6) as u64).expect("parses");
        let spans: Vec<_> = marks.iter().map(|m| (m.kind, m.offset)).collect();
        let image_at = 8 + t.len() as u64 - img.len() as u64;
        assert_eq!(
            spans,
            [(Tag, 8), (Picture, image_at), (Tag, 8 + t.len() as u64)]
        );
        assert!(id3v2_marks(&mut source, 8, (t.len() - 1) as u64).is_err());
    }

    #[test]
    fn frame_sync_without_tags_is_audio() {
        let file = audio(300);
        assert!(looks_like(&file[..12]));
        assert_eq!(spans(&detected(&file)), vec![(Audio, 0, 300)]);
        // Reserved layer, bad bitrate, reserved sample rate, MPEG-2.5 reserved version: no.
        for head in [
            [0xFF, 0xF9, 0x50],
            [0xFF, 0xFB, 0xF0],
            [0xFF, 0xFB, 0x5C],
            [0xFF, 0xEB, 0x50],
        ] {
            assert!(!looks_like(&head), "{head:02x?}");
        }
        assert!(!looks_like(b"\xFF\xD8\xFF\xE0")); // JPEG
        assert_eq!(
            parsed(Format::Mp3, b"not an mp3 at all").format,
            Format::Opaque
        );
    }

    #[test]
    fn in_memory_cases_survive_damage() {
        let img = image(14, 60);
        let frames = cat(&[
            &[0, 0, 0, 6, 1, 0],
            &frame(4, b"APIC", 0, &picture_body(4, 1, b"\xFF\xFEa\0\0\0", &img)),
        ]);
        let file = cat(&[
            &tag(4, 0x50, &frames, 12),
            &audio(64),
            &ape_tag(true),
            &lyrics3v2(),
            &id3v1(true),
        ]);
        assert_survives_damage(Format::Mp3, &file);
    }
}
