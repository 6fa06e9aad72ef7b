//! FLAC: the metadata blocks and the frames after them.
//!
//! A FLAC file is `fLaC`, then metadata blocks (a byte holding the last-block flag and the
//! type, then a 24-bit big-endian length), then audio frames. The regions follow the blocks:
//!
//! - `Other`: `fLaC` with STREAMINFO (at 0), SEEKTABLE, APPLICATION, CUESHEET and reserved
//!   block types;
//! - `Tag`: VORBIS_COMMENT, and each PICTURE block's header and fields up to its image data;
//! - `Picture`: the image data of a PICTURE block (when its declared length fits the block),
//!   followed by `Other` for any bytes the block holds after it;
//! - `Padding`: PADDING;
//! - `Audio`: from the first frame to the end, except an ID3v1 trailer (`TAG` in the last 128
//!   bytes, written by some taggers), which is `Tag`.
//!
//! A PICTURE block whose fields do not fit it is `Tag` as a whole. Adjacent blocks of the same kind share a region. Only block headers and the PICTURE fields
//! are read; block bodies are skipped.

use super::{read_at, MarkList, ParseError, ParseResult, RegionKind, Source};

const STREAMINFO: u8 = 0;
const PADDING: u8 = 1;
const VORBIS_COMMENT: u8 = 4;
const PICTURE: u8 = 6;
/// Block type 127 is forbidden (it would look like a frame sync).
const INVALID: u8 = 127;
/// STREAMINFO's fixed length.
const STREAMINFO_LEN: u64 = 34;
/// Length of an ID3v1 trailer.
const ID3V1_LEN: u64 = 128;
/// More metadata blocks than any real file has: give up rather than walk a damaged file.
const MAX_BLOCKS: usize = 10_000;

pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let mut magic = [0u8; 4];
    if len < 8 {
        return Err(ParseError::Malformed("too short for FLAC"));
    }
    read_at(source, 0, &mut magic)?;
    if &magic != b"fLaC" {
        return Err(ParseError::Malformed("no fLaC marker"));
    }
    let mut marks = MarkList::new();
    let mut offset = 4u64;
    for index in 0.. {
        if index >= MAX_BLOCKS {
            return Err(ParseError::Malformed("too many FLAC metadata blocks"));
        }
        let mut header = [0u8; 4];
        if offset.saturating_add(4) > len {
            return Err(ParseError::Malformed("FLAC block header past the end"));
        }
        read_at(source, offset, &mut header)?;
        let last = header[0] & 0x80 != 0;
        let block_type = header[0] & 0x7f;
        let body = offset + 4;
        let end = body.saturating_add(u64::from(u32::from_be_bytes([
            0, header[1], header[2], header[3],
        ])));
        if end > len {
            return Err(ParseError::Malformed("FLAC block past the end"));
        }
        if index == 0 && (block_type != STREAMINFO || end - body != STREAMINFO_LEN) {
            return Err(ParseError::Malformed("FLAC does not begin with STREAMINFO"));
        }
        match block_type {
            // `fLaC` belongs with STREAMINFO.
            STREAMINFO if index == 0 => marks.push(0, RegionKind::Other)?,
            STREAMINFO | INVALID => {
                return Err(ParseError::Malformed("bad FLAC block type"));
            }
            VORBIS_COMMENT => marks.push(offset, RegionKind::Tag)?,
            PADDING => marks.push(offset, RegionKind::Padding)?,
            PICTURE => {
                marks.push(offset, RegionKind::Tag)?;
                if let Some((data, data_end)) = picture_data(source, body, end)? {
                    marks.push(data, RegionKind::Picture)?;
                    if data_end < end {
                        marks.push(data_end, RegionKind::Other)?;
                    }
                }
            }
            _ => marks.push(offset, RegionKind::Other)?,
        }
        offset = end;
        if last {
            break;
        }
    }
    if offset < len {
        marks.push(offset, RegionKind::Audio)?;
        if len - offset > ID3V1_LEN {
            let trailer = len - ID3V1_LEN;
            let mut tag = [0u8; 3];
            read_at(source, trailer, &mut tag)?;
            if &tag == b"TAG" {
                marks.push(trailer, RegionKind::Tag)?;
            }
        }
    }
    Ok(marks.finish(len))
}

/// Where the image data of the PICTURE block whose body spans `body..end` begins and ends,
/// or `None` when its fields do not fit the block or the image is empty.
fn picture_data(
    source: &mut dyn Source,
    body: u64,
    end: u64,
) -> Result<Option<(u64, u64)>, ParseError> {
    // Picture type and MIME type length.
    let mut field = [0u8; 8];
    if body.saturating_add(8) > end {
        return Ok(None);
    }
    read_at(source, body, &mut field)?;
    let mime_len = u64::from(u32::from_be_bytes([field[4], field[5], field[6], field[7]]));
    // The description length follows the MIME type.
    let description = body.saturating_add(8).saturating_add(mime_len);
    if description.saturating_add(4) > end {
        return Ok(None);
    }
    read_at(source, description, &mut field[..4])?;
    let description_len = u64::from(u32::from_be_bytes([field[0], field[1], field[2], field[3]]));
    // Width, height, colour depth and number of colours, then the data length.
    let data_len_at = description
        .saturating_add(20)
        .saturating_add(description_len);
    if data_len_at.saturating_add(4) > end {
        return Ok(None);
    }
    read_at(source, data_len_at, &mut field[..4])?;
    let data_len = u64::from(u32::from_be_bytes([field[0], field[1], field[2], field[3]]));
    let data = data_len_at + 4;
    if data_len == 0 || data.saturating_add(data_len) > end {
        return Ok(None);
    }
    Ok(Some((data, data + data_len)))
}

#[cfg(test)]
mod tests {

    use std::io::Cursor;

    use super::*;
    use crate::media::testing::{assert_detect_covers, assert_marks_sane, fixture, never_panics};
    use crate::media::{Format, Layout, Region};

    const BROWN_NOISE: &str = "Lossless Ensemble/Waveforms/02 Brown Noise.flac";
    const PURE_SINE: &str = "Lossless Ensemble/Waveforms/01 Pure Sine.flac";

    fn layout(bytes: &[u8]) -> Layout {
        let marks = parse(&mut Cursor::new(bytes), bytes.len() as u64).expect("parses");
        let layout = Layout::from_marks(Format::Flac, &marks, bytes.len() as u64);
        assert_eq!(layout.format, Format::Flac, "marks {marks:?}");
        layout
    }

    fn region_bytes<'a>(bytes: &'a [u8], r: &Region) -> &'a [u8] {
        &bytes[r.offset as usize..(r.offset + r.len) as usize]
    }

    fn kinds(layout: &Layout) -> Vec<RegionKind> {
        layout.regions.iter().map(|r| r.kind).collect()
    }

    /// Parses without panicking; when it succeeds, the marks must be usable.
    fn assert_sane(bytes: &[u8]) {
        let len = bytes.len() as u64;
        assert_marks_sane(Format::Flac, parse(&mut Cursor::new(bytes), len), len);
    }

    /// A FLAC file: `fLaC`, a STREAMINFO, `blocks` (type, body), the last flagged, then `audio`.
    fn flac(blocks: &[(u8, Vec<u8>)], audio: &[u8]) -> Vec<u8> {
        let mut all = vec![(STREAMINFO, vec![0u8; 34])];
        all.extend_from_slice(blocks);
        let mut out = b"fLaC".to_vec();
        for (i, (kind, body)) in all.iter().enumerate() {
            let last = if i + 1 == all.len() { 0x80 } else { 0 };
            out.push(kind | last);
            out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(body);
        }
        out.extend_from_slice(audio);
        out
    }

    /// A PICTURE block body holding `image`, declaring `declared` bytes of it.
    fn picture(image: &[u8], declared: u32) -> Vec<u8> {
        let mut body = 3u32.to_be_bytes().to_vec();
        body.extend_from_slice(&9u32.to_be_bytes());
        body.extend_from_slice(b"image/png");
        body.extend_from_slice(&5u32.to_be_bytes());
        body.extend_from_slice(b"cover");
        body.extend_from_slice(&[0u8; 16]);
        body.extend_from_slice(&declared.to_be_bytes());
        body.extend_from_slice(image);
        body
    }

    #[test]
    fn brown_noise_regions_follow_its_blocks() {
        let bytes = fixture(BROWN_NOISE);
        let layout = layout(&bytes);
        assert_eq!(
            kinds(&layout),
            [
                RegionKind::Other,
                RegionKind::Tag,
                RegionKind::Picture,
                RegionKind::Tag,
                RegionKind::Padding,
                RegionKind::Audio
            ]
        );
        // STREAMINFO region: fLaC and the 38-byte block.
        assert_eq!(layout.regions[0].len, 42);
        // The PICTURE block header starts the Tag region.
        assert_eq!(bytes[layout.regions[1].offset as usize] & 0x7f, PICTURE);
        // VORBIS_COMMENT then PADDING, the last block.
        assert_eq!(
            bytes[layout.regions[3].offset as usize] & 0x7f,
            VORBIS_COMMENT
        );
        assert_eq!(bytes[layout.regions[4].offset as usize], 0x80 | PADDING);
    }

    #[test]
    fn brown_noise_picture_is_the_whole_png() {
        let bytes = fixture(BROWN_NOISE);
        let layout = layout(&bytes);
        let pictures: Vec<_> = layout
            .regions
            .iter()
            .filter(|r| r.kind == RegionKind::Picture)
            .collect();
        assert_eq!(pictures.len(), 1);
        let r = pictures[0];
        let png = region_bytes(&bytes, r);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(png.ends_with(b"IEND\xae\x42\x60\x82"));
        // The data length field sits just before the data.
        let at = r.offset as usize - 4;
        let declared = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        assert_eq!(r.len, u64::from(declared));
    }

    #[test]
    fn audio_starts_at_the_first_frame() {
        for name in [BROWN_NOISE, PURE_SINE] {
            let bytes = fixture(name);
            let layout = layout(&bytes);
            let audio = layout.regions.last().unwrap();
            assert_eq!(audio.kind, RegionKind::Audio, "{name}");
            let frame = region_bytes(&bytes, audio);
            // Frame sync: 14 ones, a reserved zero, the blocking strategy bit.
            assert_eq!((frame[0], frame[1] & 0xfe), (0xff, 0xf8), "{name}");
        }
    }

    #[test]
    fn pure_sine_has_no_picture() {
        let layout = layout(&fixture(PURE_SINE));
        assert_eq!(
            kinds(&layout),
            [
                RegionKind::Other,
                RegionKind::Tag,
                RegionKind::Padding,
                RegionKind::Audio
            ]
        );
    }

    #[test]
    fn detect_covers_each_fixture_exactly() {
        for name in [BROWN_NOISE, PURE_SINE] {
            assert_detect_covers(name, Format::Flac);
        }
    }

    #[test]
    fn seektable_and_application_share_the_streaminfo_region() {
        let bytes = flac(
            &[
                (3, vec![0u8; 18]),
                (2, b"riff1234".to_vec()),
                (VORBIS_COMMENT, vec![0u8; 8]),
            ],
            &[0xff, 0xf8, 0, 0],
        );
        let layout = layout(&bytes);
        assert_eq!(
            kinds(&layout),
            [RegionKind::Other, RegionKind::Tag, RegionKind::Audio]
        );
        assert_eq!(layout.regions[1].offset, 4 + 38 + 22 + 12);
    }

    #[test]
    fn picture_bytes_after_the_image_are_other() {
        let image = b"\x89PNG fake image";
        let mut body = picture(image, image.len() as u32);
        body.extend_from_slice(b"trailing");
        let bytes = flac(&[(PICTURE, body), (PADDING, vec![0; 10])], b"\xff\xf8audio");
        let layout = layout(&bytes);
        assert_eq!(
            kinds(&layout),
            [
                RegionKind::Other,
                RegionKind::Tag,
                RegionKind::Picture,
                RegionKind::Other,
                RegionKind::Padding,
                RegionKind::Audio
            ]
        );
        assert_eq!(region_bytes(&bytes, &layout.regions[2]), image);
        assert_eq!(region_bytes(&bytes, &layout.regions[3]), b"trailing");
    }

    #[test]
    fn two_pictures_are_two_regions() {
        let bytes = flac(
            &[
                (PICTURE, picture(b"first", 5)),
                (PICTURE, picture(b"second", 6)),
            ],
            b"\xff\xf8audio",
        );
        let layout = layout(&bytes);
        let pictures: Vec<_> = layout
            .regions
            .iter()
            .filter(|r| r.kind == RegionKind::Picture)
            .map(|r| region_bytes(&bytes, r))
            .collect();
        assert_eq!(pictures, [&b"first"[..], &b"second"[..]]);
        assert_eq!(layout.regions.len(), 6);
    }

    #[test]
    fn picture_that_does_not_fit_its_block_stays_tag() {
        for declared in [6, u32::MAX] {
            let bytes = flac(&[(PICTURE, picture(b"short", declared))], b"\xff\xf8audio");
            let layout = layout(&bytes);
            assert_eq!(
                kinds(&layout),
                [RegionKind::Other, RegionKind::Tag, RegionKind::Audio]
            );
        }
        // An empty image, and fields cut short.
        let empty = flac(&[(PICTURE, picture(b"", 0))], b"\xff\xf8");
        assert_eq!(kinds(&layout(&empty)).len(), 3);
        let mut cut = picture(b"image", 5);
        cut.truncate(20);
        let cut = flac(&[(PICTURE, cut)], b"\xff\xf8");
        assert_eq!(kinds(&layout(&cut)).len(), 3);
        let mut huge_mime = picture(b"image", 5);
        huge_mime[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let huge_mime = flac(&[(PICTURE, huge_mime)], b"\xff\xf8");
        assert_eq!(kinds(&layout(&huge_mime)).len(), 3);
    }

    #[test]
    fn id3v1_trailer_is_tag() {
        let mut bytes = fixture(PURE_SINE);
        let audio_len = layout(&bytes).regions.last().unwrap().len;
        let mut trailer = b"TAG".to_vec();
        trailer.resize(128, b' ');
        bytes.extend_from_slice(&trailer);
        let layout = layout(&bytes);
        let n = layout.regions.len();
        assert_eq!(layout.regions[n - 2].kind, RegionKind::Audio);
        assert_eq!(layout.regions[n - 2].len, audio_len);
        assert_eq!(layout.regions[n - 1].kind, RegionKind::Tag);
        assert_eq!(layout.regions[n - 1].len, 128);
    }

    #[test]
    fn metadata_without_audio_has_no_audio_region() {
        let bytes = flac(&[(VORBIS_COMMENT, vec![0; 8])], b"");
        assert_eq!(kinds(&layout(&bytes)), [RegionKind::Other, RegionKind::Tag]);
    }

    #[test]
    fn not_flac_is_malformed() {
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"fLaC".to_vec(),
            b"fLaX\0\0\0\x22".to_vec(),
            // STREAMINFO missing, or of the wrong length.
            flac(&[], b"")[..4]
                .iter()
                .chain(&[0x84, 0, 0, 0])
                .copied()
                .collect(),
            {
                let mut b = flac(&[], b"\xff\xf8");
                b[7] = 33;
                b
            },
            // A second STREAMINFO, the forbidden type 127.
            flac(&[(STREAMINFO, vec![0; 34])], b""),
            flac(&[(INVALID, vec![0; 4])], b""),
            // A block running past the end, metadata without a last block.
            {
                let mut b = flac(&[(PADDING, vec![0; 4])], b"");
                b.truncate(b.len() - 1);
                b
            },
            {
                let mut b = flac(&[(PADDING, vec![0; 4])], b"");
                b[42] &= 0x7f;
                b
            },
        ];
        for bytes in cases {
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
    fn endless_empty_blocks_are_bounded() {
        let mut bytes = flac(&[(PADDING, Vec::new())], b"");
        let last = bytes.len() - 4;
        bytes[last] = PADDING;
        for _ in 0..MAX_BLOCKS {
            bytes.extend_from_slice(&[PADDING, 0, 0, 0]);
        }
        bytes.extend_from_slice(&[0x80 | PADDING, 0, 0, 0]);
        assert!(parse(&mut Cursor::new(&bytes), bytes.len() as u64).is_err());
    }

    #[test]
    fn truncated_and_damaged_files_never_panic() {
        let bytes = fixture(BROWN_NOISE);
        let head = layout(&bytes).regions.last().unwrap().offset as usize + 64;
        for cut in 0..head {
            assert_sane(&bytes[..cut]);
        }
        for cut in (head..bytes.len()).step_by(997) {
            assert_sane(&bytes[..cut]);
        }
        let mut damaged = bytes[..head].to_vec();
        for at in 0..head {
            for value in [0x00, 0xff, 0x80, 0x7f, damaged[at] ^ 0x01] {
                let saved = damaged[at];
                damaged[at] = value;
                assert_sane(&damaged);
                damaged[at] = saved;
            }
        }
    }

    never_panics!(fixture(BROWN_NOISE), b"fLaC", assert_sane);
}
