//! MP4 (ISO base media, M4A): the box tree down to the tags and the offset tables.
//!
//! A file is a sequence of boxes (32-bit size, 4-byte type; size 1: a 64-bit size follows;
//! size 0: to the end). The regions follow the boxes that change for different reasons:
//!
//! - top level: `ftyp` and unknown boxes are `Other`; `free`, `skip` and `wide` are `Padding`;
//!   `mdat` is `Other` for its header and `Audio` from its first payload byte;
//! - `moov` is `Other` and is descended, through `trak`, `mdia`, `minf` and `stbl`. `moov` and
//!   each `trak` begin a region of their own. The sample tables `stts`, `stsz`, `stz2`, `stco`
//!   and `co64` each get a region of their own, and so does whatever follows them: when a tag
//!   editor grows the tags before `mdat` it rewrites the chunk offsets, and then only the small
//!   `stco` region changes;
//! - `udta` and `meta` (wherever they sit in `moov`) are `Tag`, with everything inside them,
//!   except `free` and `skip` boxes inside them (a tag writer's padding), which are `Padding`;
//! - an `ilst` `covr` item is `Tag`, except the payload of each of its `data` boxes (after the
//!   type indicator and locale), which is `Picture`.
//!
//! Neighbouring boxes of the same kind share a region. Only box headers are read (and 8 bytes
//! of each `meta`, to tell the ISO form, with version and flags, from the QuickTime form,
//! without). A box running past its parent or the file makes the file opaque, except a
//! top-level `mdat` running past the end (a download cut short), which is cut at the end.
//! Depth and the number of boxes are bounded.

use super::{read_at, MarkList, ParseError, ParseResult, RegionKind, Source};

/// Deeper than any real file nests the boxes this parser descends.
const MAX_DEPTH: usize = 16;
/// More boxes than any real file has: give up rather than walk a damaged file.
const MAX_BOXES: usize = 100_000;

/// One box header.
#[derive(Clone, Copy)]
struct BoxHeader {
    /// Offset of the box's first byte.
    start: u64,
    /// The box type.
    kind: [u8; 4],
    /// Offset of the payload's first byte.
    payload: u64,
    /// Offset just past the box (as declared; may exceed the parent).
    end: u64,
}

/// What the boxes of a container are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Container {
    /// `moov`, `trak`, `mdia`, `minf`, `stbl`: structure and sample tables.
    Structure,
    /// `udta`: user data.
    UserData,
    /// `meta`: the metadata handler and item list.
    Meta,
    /// `ilst`: the metadata items.
    ItemList,
    /// `covr`: one or more pictures.
    Cover,
}

struct Parser<'a> {
    source: &'a mut dyn Source,
    len: u64,
    marks: MarkList,
    boxes: usize,
}

pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let mut parser = Parser {
        source,
        len,
        marks: MarkList::new(),
        boxes: 0,
    };
    parser.top_level()?;
    // A mark at the very end would start an empty region.
    Ok(parser.marks.finish(len))
}

impl Parser<'_> {
    /// Reads the header of the box at `start`, which must lie before `parent_end`.
    fn read_box(&mut self, start: u64, parent_end: u64) -> Result<BoxHeader, ParseError> {
        self.boxes += 1;
        if self.boxes > MAX_BOXES {
            return Err(ParseError::Malformed("too many MP4 boxes"));
        }
        let mut header = [0u8; 8];
        if start.saturating_add(8) > parent_end {
            return Err(ParseError::Malformed("MP4 box header past its parent"));
        }
        read_at(self.source, start, &mut header)?;
        let kind = [header[4], header[5], header[6], header[7]];
        let (payload, size) = match u32::from_be_bytes([header[0], header[1], header[2], header[3]])
        {
            0 => (start + 8, parent_end - start),
            1 => {
                if start.saturating_add(16) > parent_end {
                    return Err(ParseError::Malformed("MP4 box header past its parent"));
                }
                read_at(self.source, start + 8, &mut header)?;
                let size = u64::from_be_bytes(header);
                if size < 16 {
                    return Err(ParseError::Malformed("MP4 box smaller than its header"));
                }
                (start + 16, size)
            }
            2..=7 => return Err(ParseError::Malformed("MP4 box smaller than its header")),
            size => (start + 8, u64::from(size)),
        };
        Ok(BoxHeader {
            start,
            kind,
            payload,
            end: start.saturating_add(size),
        })
    }

    fn top_level(&mut self) -> Result<(), ParseError> {
        if self.len < 8 {
            return Err(ParseError::Malformed("too short for MP4"));
        }
        let mut pos = 0u64;
        // Fewer than 8 bytes left can hold no box: they stay with the region before them.
        while self.len - pos >= 8 {
            let mut b = self.read_box(pos, self.len)?;
            if pos == 0 && &b.kind != b"ftyp" {
                return Err(ParseError::Malformed("MP4 does not begin with ftyp"));
            }
            if b.end > self.len {
                if &b.kind != b"mdat" {
                    return Err(ParseError::Malformed("MP4 box past the end"));
                }
                b.end = self.len;
            }
            match &b.kind {
                b"moov" => {
                    self.marks.push_alone(b.start, RegionKind::Other)?;
                    self.children(b, Container::Structure, 1)?;
                }
                b"mdat" => {
                    self.marks.push(b.start, RegionKind::Other)?;
                    self.marks.push(b.payload, RegionKind::Audio)?;
                }
                b"free" | b"skip" | b"wide" => self.marks.push(b.start, RegionKind::Padding)?,
                _ => self.marks.push(b.start, RegionKind::Other)?,
            }
            pos = b.end;
        }
        Ok(())
    }

    /// Walks the boxes inside `parent`, whose children start at `first`.
    fn walk(
        &mut self,
        parent: BoxHeader,
        first: u64,
        container: Container,
        depth: usize,
    ) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::Malformed("MP4 boxes nested too deep"));
        }
        let mut pos = first;
        // Fewer than 8 bytes left can hold no box (QuickTime ends `udta` with 4 zero bytes).
        while parent.end.saturating_sub(pos) >= 8 {
            let b = self.read_box(pos, parent.end)?;
            if b.end > parent.end {
                return Err(ParseError::Malformed("MP4 box past its parent"));
            }
            self.child(b, container, depth)?;
            pos = b.end;
        }
        Ok(())
    }

    /// Walks the boxes inside `parent`, right after its header.
    fn children(
        &mut self,
        parent: BoxHeader,
        container: Container,
        depth: usize,
    ) -> Result<(), ParseError> {
        self.walk(parent, parent.payload, container, depth)
    }

    /// Marks one box found inside a container and descends into it when it is one.
    fn child(
        &mut self,
        b: BoxHeader,
        container: Container,
        depth: usize,
    ) -> Result<(), ParseError> {
        let padding = matches!(&b.kind, b"free" | b"skip");
        match (container, &b.kind) {
            (Container::Structure | Container::UserData, b"udta") => {
                self.marks.push(b.start, RegionKind::Tag)?;
                self.children(b, Container::UserData, depth + 1)?;
            }
            (Container::Structure | Container::UserData, b"meta") => {
                self.marks.push(b.start, RegionKind::Tag)?;
                let first = self.meta_children(b)?;
                self.walk(b, first, Container::Meta, depth + 1)?;
            }
            (Container::Structure, b"trak") => {
                self.marks.push_alone(b.start, RegionKind::Other)?;
                self.children(b, Container::Structure, depth + 1)?;
            }
            (Container::Structure, b"mdia" | b"minf" | b"stbl") => {
                self.marks.push(b.start, RegionKind::Other)?;
                self.children(b, Container::Structure, depth + 1)?;
            }
            (Container::Structure, b"stts" | b"stsz" | b"stz2" | b"stco" | b"co64") => {
                self.marks.push_alone(b.start, RegionKind::Other)?;
                // Whatever follows starts a region too.
                self.marks.seal();
            }
            (_, _) if padding => self.marks.push(b.start, RegionKind::Padding)?,
            (Container::Structure, _) => self.marks.push(b.start, RegionKind::Other)?,
            (Container::Meta, b"ilst") => {
                self.marks.push(b.start, RegionKind::Tag)?;
                self.children(b, Container::ItemList, depth + 1)?;
            }
            (Container::ItemList, b"covr") => {
                self.marks.push(b.start, RegionKind::Tag)?;
                self.children(b, Container::Cover, depth + 1)?;
            }
            (Container::Cover, b"data") => {
                self.marks.push(b.start, RegionKind::Tag)?;
                // The payload starts with a 4-byte type indicator and a 4-byte locale.
                let image = b.payload + 8;
                if image < b.end {
                    self.marks.push(image, RegionKind::Picture)?;
                    self.marks.push(b.end, RegionKind::Tag)?;
                }
            }
            (Container::UserData | Container::Meta | Container::ItemList | Container::Cover, _) => {
                self.marks.push(b.start, RegionKind::Tag)?;
            }
        }
        Ok(())
    }

    /// Where the children of `meta` start: after 4 bytes of version and flags in the ISO form,
    /// right after the header in the QuickTime form, which is told by its first child, `hdlr`,
    /// starting there.
    fn meta_children(&mut self, meta: BoxHeader) -> Result<u64, ParseError> {
        if meta.end - meta.payload >= 8 {
            let mut head = [0u8; 8];
            read_at(self.source, meta.payload, &mut head)?;
            if &head[4..] == b"hdlr" {
                return Ok(meta.payload);
            }
        }
        if meta.end - meta.payload < 4 {
            return Err(ParseError::Malformed(
                "MP4 meta box without version and flags",
            ));
        }
        Ok(meta.payload + 4)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::media::testing::{assert_detect_covers, assert_marks_sane, fixture, never_panics};
    use crate::media::{Format, Layout, Region};

    const PLAIN: &str = "MP4 Quartet/Containers/01 Plain.m4a";
    const COVERED: &str = "MP4 Quartet/Containers/02 Covered.m4a";

    fn layout(bytes: &[u8]) -> Layout {
        let marks = parse(&mut Cursor::new(bytes), bytes.len() as u64).expect("parses");
        let layout = Layout::from_marks(Format::Mp4, &marks, bytes.len() as u64);
        assert_eq!(layout.format, Format::Mp4, "marks {marks:?}");
        layout
    }

    /// Parses without panicking; when it succeeds, the marks must be usable.
    fn assert_sane(bytes: &[u8]) {
        let len = bytes.len() as u64;
        assert_marks_sane(Format::Mp4, parse(&mut Cursor::new(bytes), len), len);
    }

    fn malformed(bytes: &[u8]) -> bool {
        matches!(
            parse(&mut Cursor::new(bytes), bytes.len() as u64),
            Err(ParseError::Malformed(_))
        )
    }

    fn kinds(layout: &Layout) -> Vec<RegionKind> {
        layout.regions.iter().map(|r| r.kind).collect()
    }

    /// The type of the box starting a region.
    fn box_at(bytes: &[u8], r: &Region) -> [u8; 4] {
        let at = r.offset as usize;
        bytes[at + 4..at + 8].try_into().unwrap()
    }

    fn region<'a>(bytes: &'a [u8], r: &Region) -> &'a [u8] {
        &bytes[r.offset as usize..(r.offset + r.len) as usize]
    }

    /// A box with a 32-bit size.
    fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// A full box: version and flags, then `payload`.
    fn full(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        bx(kind, &[&[0u8; 4][..], payload].concat())
    }

    /// An `ilst` item holding one `data` box of the given type.
    fn item(kind: &[u8; 4], data_type: u32, value: &[u8]) -> Vec<u8> {
        let data = [&data_type.to_be_bytes()[..], &[0; 4], value].concat();
        bx(kind, &bx(b"data", &data))
    }

    const AUDIO: &[u8] = b"\x01\x02 AAC frames, or something like them \x03\x04";
    const IMAGE: &[u8] = b"\xff\xd8\xff\xe0 a JPEG of sorts \xff\xd9";

    /// A moov-first M4A whose title is `title`, with its chunk offset pointing at the audio.
    fn tagged(title: &str) -> Vec<u8> {
        let ftyp = bx(b"ftyp", b"M4A \0\0\x02\0M4A isom");
        let moov = |chunk_offset: u32| {
            let stbl = [
                full(b"stsd", &[0, 0, 0, 0]),
                full(b"stts", &[0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 4, 0]),
                full(b"stsc", &[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 1]),
                full(b"stsz", &[0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 9]),
                full(
                    b"stco",
                    &[&[0, 0, 0, 1][..], &chunk_offset.to_be_bytes()].concat(),
                ),
            ]
            .concat();
            let minf = [full(b"smhd", &[0; 4]), bx(b"stbl", &stbl)].concat();
            let mdia = [full(b"mdhd", &[0; 20]), bx(b"minf", &minf)].concat();
            let trak = [full(b"tkhd", &[0; 80]), bx(b"mdia", &mdia)].concat();
            let ilst = [
                item(b"\xa9nam", 1, title.as_bytes()),
                item(b"covr", 13, IMAGE),
                item(b"trkn", 0, &[0, 0, 0, 1, 0, 2, 0, 0]),
            ]
            .concat();
            let meta = [
                full(b"hdlr", b"\0\0\0\0mdirappl\0\0\0\0\0\0\0\0\0"),
                bx(b"ilst", &ilst),
                bx(b"free", &[0; 64]),
            ]
            .concat();
            let udta = bx(b"udta", &full(b"meta", &meta));
            bx(
                b"moov",
                &[full(b"mvhd", &[0; 96]), bx(b"trak", &trak), udta].concat(),
            )
        };
        let audio_at = (ftyp.len() + moov(0).len() + 8) as u32;
        [ftyp, moov(audio_at), bx(b"mdat", AUDIO)].concat()
    }

    #[test]
    fn plain_mdat_first_regions() {
        let bytes = fixture(PLAIN);
        let layout = layout(&bytes);
        let boxes: Vec<_> = layout
            .regions
            .iter()
            .map(|r| (r.kind, box_at(&bytes, r)))
            .collect();
        use RegionKind::{Audio, Other, Padding, Tag};
        assert_eq!(
            boxes[..3],
            [(Other, *b"ftyp"), (Padding, *b"free"), (Other, *b"mdat")]
        );
        assert_eq!(boxes[3].0, Audio);
        assert_eq!(
            boxes[4..],
            [
                (Other, *b"moov"),
                (Other, *b"trak"),
                (Other, *b"stts"),
                (Other, *b"stsc"),
                (Other, *b"stsz"),
                (Other, *b"stco"),
                (Other, *b"sgpd"),
                (Tag, *b"udta"),
            ]
        );
        // The audio is the mdat payload, to the moov.
        let mdat = &layout.regions[2];
        assert_eq!(mdat.len, 8);
        let size = u32::from_be_bytes(bytes[mdat.offset as usize..][..4].try_into().unwrap());
        assert_eq!(layout.regions[3].len, u64::from(size) - 8);
        // The offset table is a region of its own, exactly the stco box.
        let stco = &layout.regions[9];
        assert_eq!(
            u64::from(u32::from_be_bytes(
                region(&bytes, stco)[..4].try_into().unwrap()
            )),
            stco.len
        );
        // The tags run to the end.
        assert_eq!(
            layout.regions.last().unwrap().offset + layout.regions.last().unwrap().len,
            bytes.len() as u64
        );
    }

    #[test]
    fn covered_moov_first_regions() {
        let bytes = fixture(COVERED);
        let layout = layout(&bytes);
        use RegionKind::{Audio, Other, Padding, Picture, Tag};
        assert_eq!(
            kinds(&layout),
            [
                Other, Other, Other, Other, Other, Other, Other, Other, Tag, Picture, Tag, Padding,
                Other, Audio
            ]
        );
        assert_eq!(box_at(&bytes, &layout.regions[1]), *b"moov");
        assert_eq!(box_at(&bytes, &layout.regions[6]), *b"stco");
        assert_eq!(box_at(&bytes, &layout.regions[8]), *b"udta");
        assert_eq!(box_at(&bytes, &layout.regions[12]), *b"mdat");
    }

    #[test]
    fn covr_picture_is_the_album_cover_jpeg() {
        let bytes = fixture(COVERED);
        let layout = layout(&bytes);
        let pictures: Vec<_> = layout
            .regions
            .iter()
            .filter(|r| r.kind == RegionKind::Picture)
            .collect();
        assert_eq!(pictures.len(), 1);
        let r = pictures[0];
        let jpeg = region(&bytes, r);
        assert!(jpeg.starts_with(&[0xff, 0xd8, 0xff]));
        assert!(jpeg.ends_with(&[0xff, 0xd9]));
        // The data box: its header, type indicator (13: JPEG) and locale just before.
        let data = r.offset as usize - 16;
        assert_eq!(&bytes[data + 4..data + 8], b"data");
        assert_eq!(&bytes[data + 8..data + 12], &13u32.to_be_bytes());
        let size = u32::from_be_bytes(bytes[data..data + 4].try_into().unwrap());
        assert_eq!(r.len, u64::from(size) - 16);
        // The same picture as the album's folder art (and the MP3s' APIC frames): one chunk.
        assert_eq!(jpeg, fixture("Aurora Tones/First Light/cover.jpg"));
    }

    #[test]
    fn detect_covers_each_fixture_exactly() {
        for name in [PLAIN, COVERED] {
            assert_detect_covers(name, Format::Mp4);
        }
    }

    #[test]
    fn retagging_changes_only_moov_offsets_and_tags() {
        let short = tagged("Dawn");
        let long = tagged("Dawn, in the extended version with a much longer title");
        let (a, b) = (layout(&short), layout(&long));
        assert_eq!(kinds(&a), kinds(&b));
        let changed: Vec<_> = a
            .regions
            .iter()
            .zip(&b.regions)
            .filter(|(x, y)| region(&short, x) != region(&long, y))
            .map(|(x, _)| (x.kind, box_at(&short, x)))
            .collect();
        assert_eq!(
            changed,
            [
                (RegionKind::Other, *b"moov"),
                (RegionKind::Other, *b"stco"),
                (RegionKind::Tag, *b"udta"),
            ]
        );
        let picture = a
            .regions
            .iter()
            .find(|r| r.kind == RegionKind::Picture)
            .unwrap();
        assert_eq!(region(&short, picture), IMAGE);
        assert_eq!(region(&short, a.regions.last().unwrap()), AUDIO);
        use RegionKind::{Audio, Other, Padding, Picture, Tag};
        assert_eq!(
            kinds(&a),
            [
                Other, Other, Other, Other, Other, Other, Other, Tag, Picture, Tag, Padding, Other,
                Audio
            ]
        );
    }

    #[test]
    fn meta_in_quicktime_form() {
        // No version and flags: the hdlr box follows the meta header directly.
        let meta = [
            bx(b"hdlr", b"\0\0\0\0\0\0\0\0mdta\0\0\0\0\0\0\0\0\0\0\0\0\0"),
            bx(b"ilst", &item(b"covr", 14, b"\x89PNG image")),
        ]
        .concat();
        let moov = bx(
            b"moov",
            &[full(b"mvhd", &[0; 96]), bx(b"meta", &meta)].concat(),
        );
        let bytes = [bx(b"ftyp", b"qt  \0\0\0\0"), moov, bx(b"mdat", AUDIO)].concat();
        let quicktime = layout(&bytes);
        let picture = quicktime
            .regions
            .iter()
            .find(|r| r.kind == RegionKind::Picture)
            .unwrap();
        assert_eq!(region(&bytes, picture), b"\x89PNG image");
        // The ISO form of the same.
        let iso = [&[0u8; 4][..], &meta].concat();
        let moov = bx(
            b"moov",
            &[full(b"mvhd", &[0; 96]), bx(b"meta", &iso)].concat(),
        );
        let bytes = [bx(b"ftyp", b"isom\0\0\0\0"), moov, bx(b"mdat", AUDIO)].concat();
        let layout = layout(&bytes);
        let picture = layout
            .regions
            .iter()
            .find(|r| r.kind == RegionKind::Picture)
            .unwrap();
        assert_eq!(region(&bytes, picture), b"\x89PNG image");
    }

    #[test]
    fn several_pictures_and_padding_in_udta() {
        let covr = bx(
            b"covr",
            &[
                bx(b"data", &[&[0, 0, 0, 13, 0, 0, 0, 0][..], b"one"].concat()),
                bx(b"data", &[&[0, 0, 0, 14, 0, 0, 0, 0][..], b"two"].concat()),
                // An empty picture has no region.
                bx(b"data", &[0, 0, 0, 13, 0, 0, 0, 0]),
            ]
            .concat(),
        );
        let meta = full(
            b"meta",
            &[full(b"hdlr", &[0; 21]), bx(b"ilst", &covr)].concat(),
        );
        let udta = bx(b"udta", &[meta, bx(b"free", &[0; 16]), vec![0; 4]].concat());
        let moov = bx(b"moov", &[full(b"mvhd", &[0; 96]), udta].concat());
        let bytes = [bx(b"ftyp", b"M4A \0\0\0\0"), moov, bx(b"mdat", AUDIO)].concat();
        let layout = layout(&bytes);
        use RegionKind::{Audio, Other, Padding, Picture, Tag};
        assert_eq!(
            kinds(&layout),
            [Other, Other, Tag, Picture, Tag, Picture, Tag, Padding, Other, Audio]
        );
        assert_eq!(region(&bytes, &layout.regions[3]), b"one");
        assert_eq!(region(&bytes, &layout.regions[5]), b"two");
        // The udta terminator (4 zero bytes) stays with the padding.
        assert_eq!(layout.regions[7].len, 16 + 8 + 4);
    }

    #[test]
    fn sixty_four_bit_and_open_ended_mdat() {
        let ftyp = bx(b"ftyp", b"M4A \0\0\0\0");
        let mut large = ftyp.clone();
        large.extend_from_slice(&1u32.to_be_bytes());
        large.extend_from_slice(b"mdat");
        large.extend_from_slice(&(16 + AUDIO.len() as u64).to_be_bytes());
        large.extend_from_slice(AUDIO);
        let large = layout(&large);
        assert_eq!(kinds(&large), [RegionKind::Other, RegionKind::Audio]);
        assert_eq!(large.regions[1].offset, ftyp.len() as u64 + 16);
        // Size 0: to the end of the file.
        let open = [
            ftyp.clone(),
            vec![0, 0, 0, 0],
            b"mdat".to_vec(),
            AUDIO.to_vec(),
        ]
        .concat();
        let open = layout(&open);
        assert_eq!(open.regions[1].offset, ftyp.len() as u64 + 8);
        assert_eq!(open.regions[1].len, AUDIO.len() as u64);
        // An empty mdat has no audio region.
        let empty = [ftyp.clone(), bx(b"mdat", b""), bx(b"free", b"")].concat();
        assert_eq!(
            kinds(&layout(&empty)),
            [RegionKind::Other, RegionKind::Padding]
        );
    }

    #[test]
    fn truncated_mdat_is_cut_at_the_end() {
        let bytes = fixture(COVERED);
        for cut in [bytes.len() - 1, bytes.len() - 1000, bytes.len() - 16000] {
            let cut_layout = layout(&bytes[..cut]);
            let audio = cut_layout.regions.last().unwrap();
            assert_eq!(audio.kind, RegionKind::Audio);
            assert_eq!(audio.offset + audio.len, cut as u64);
        }
        // The same past a 64-bit size, however large.
        let mut huge = bx(b"ftyp", b"M4A \0\0\0\0");
        huge.extend_from_slice(&1u32.to_be_bytes());
        huge.extend_from_slice(b"mdat");
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        huge.extend_from_slice(AUDIO);
        assert_eq!(
            layout(&huge).regions.last().unwrap().len,
            AUDIO.len() as u64
        );
    }

    #[test]
    fn sizes_that_lie_are_malformed() {
        let ftyp = bx(b"ftyp", b"M4A \0\0\0\0");
        let with = |rest: &[u8]| [&ftyp[..], rest].concat();
        let mut cases = vec![
            Vec::new(),
            b"\0\0\0\x08ftyp"[..7].to_vec(),
            // Not starting with ftyp.
            bx(b"moov", b""),
            // Sizes below the header's.
            with(&[0, 0, 0, 7, b'f', b'r', b'e', b'e']),
            with(&[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0, 0, 0, 0, 0, 0, 15]),
            // A 64-bit size cut short.
            with(&[0, 0, 0, 1, b'f', b'r', b'e', b'e', 0, 0]),
            // Past the end (only mdat may be).
            with(&[0, 0, 0, 100, b'm', b'o', b'o', b'v']),
            with(&[&[0, 0, 0, 1][..], b"moov", &u64::MAX.to_be_bytes()].concat()),
        ];
        // A child past its parent, and one below its header size.
        let mut past_parent = bx(b"trak", &full(b"tkhd", &[0; 8]));
        past_parent[11] = 200;
        cases.push(with(&bx(b"moov", &past_parent)));
        cases.push(with(&bx(b"moov", &[0, 0, 0, 3, b't', b'r', b'a', b'k'])));
        // An ISO meta too short for its version and flags.
        cases.push(with(&bx(b"moov", &bx(b"meta", &[0, 0]))));
        for bytes in cases {
            assert!(malformed(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn nesting_and_box_count_are_bounded() {
        let ftyp = bx(b"ftyp", b"M4A \0\0\0\0");
        let nested = |depth: usize| {
            let mut inner = bx(b"udta", b"");
            for _ in 0..depth {
                inner = bx(b"udta", &inner);
            }
            [ftyp.clone(), bx(b"moov", &inner)].concat()
        };
        assert!(!malformed(&nested(MAX_DEPTH - 2)));
        assert!(malformed(&nested(MAX_DEPTH)));
        let many = |n: usize| {
            let mut bytes = ftyp.clone();
            for _ in 0..n {
                bytes.extend_from_slice(&bx(b"free", b""));
            }
            bytes
        };
        assert!(!malformed(&many(MAX_BOXES - 1)));
        assert!(malformed(&many(MAX_BOXES)));
    }

    #[test]
    fn truncated_and_damaged_files_never_panic() {
        for name in [PLAIN, COVERED] {
            let bytes = fixture(name);
            for cut in 0..bytes.len() {
                assert_sane(&bytes[..cut]);
            }
            let layout = layout(&bytes);
            // Damage every header byte: the boxes before the audio and the moov after it.
            let audio = layout
                .regions
                .iter()
                .find(|r| r.kind == RegionKind::Audio)
                .unwrap();
            let structure =
                (0..audio.offset as usize).chain((audio.offset + audio.len) as usize..bytes.len());
            let mut damaged = bytes.clone();
            for at in structure.filter(|&at| !(1400..9700).contains(&at)) {
                for value in [0x00, 0x01, 0xff, 0x80, damaged[at] ^ 0x08] {
                    let saved = damaged[at];
                    damaged[at] = value;
                    assert_sane(&damaged);
                    damaged[at] = saved;
                }
            }
        }
    }

    never_panics!(fixture(COVERED), b"\0\0\0\x10ftypM4A \0\0\0\0", assert_sane);
}
