//! Audio containers: where a file's tags, pictures and audio stream lie.
//!
//! A container parser reads only the headers it needs and returns [`Mark`]s: the offsets where
//! a region of a given kind begins. [`Layout::from_marks`] turns them into contiguous regions
//! covering the whole file, or falls back to one opaque region when the marks make no sense.
//! Chunking then cuts each region on its own (`chunk::regions`), so the audio stream's chunks
//! do not move when the tags before it grow or shrink, and a picture embedded in every track
//! of an album is the same chunk in each.
//!
//! Parsers never panic and never allocate more than a small bounded buffer, whatever the
//! input: sizes read from a file are checked against the file's length before they are used.
//! A file they cannot make sense of gets [`Layout::opaque`].

mod aiff;
mod flac;
mod mp3;
mod mp4;
pub(crate) mod ogg;
mod riff;
pub mod tags;
#[cfg(test)]
mod testing;

use std::io::{self, Read, Seek, SeekFrom};

use serde::{Deserialize, Serialize};

/// Container formats musicfs understands. The names are part of the repository format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Not an audio container musicfs knows, or one it could not parse.
    #[default]
    Opaque,
    /// MPEG audio with optional ID3v2, APEv2, Lyrics3 and ID3v1 tags.
    Mp3,
    /// FLAC with its metadata blocks.
    Flac,
    /// Ogg (Vorbis, Opus, or another codec with its header packets).
    Ogg,
    /// ISO base media (MP4, M4A).
    Mp4,
    /// RIFF WAVE.
    Wav,
    /// AIFF or AIFF-C.
    Aiff,
}

impl Format {
    /// Lower-case name, as shown to people and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Format::Opaque => "opaque",
            Format::Mp3 => "mp3",
            Format::Flac => "flac",
            Format::Ogg => "ogg",
            Format::Mp4 => "mp4",
            Format::Wav => "wav",
            Format::Aiff => "aiff",
        }
    }
}

/// What a region of a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegionKind {
    /// A tag block or part of one (ID3v2 frames, a FLAC VORBIS_COMMENT block, an MP4 `ilst`,
    /// Ogg comment header pages, a RIFF `LIST` chunk…).
    Tag,
    /// The bytes of one embedded picture (the image itself, without its frame or block header).
    Picture,
    /// Padding reserved by a tag writer (usually zeros).
    Padding,
    /// The audio stream.
    Audio,
    /// Container structure that is none of the above (a FLAC STREAMINFO block, MP4 boxes
    /// other than tags, a WAV `fmt ` chunk), or the whole of an opaque file.
    Other,
}

impl RegionKind {
    /// Lower-case name, as shown to people and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Tag => "tag",
            RegionKind::Picture => "picture",
            RegionKind::Padding => "padding",
            RegionKind::Audio => "audio",
            RegionKind::Other => "other",
        }
    }
}

/// How a region's bytes are represented for chunking, when not as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transform {
    /// A run of Ogg pages of one logical stream whose sequence numbers count up by one from
    /// `first_seq` and whose CRCs are right. Chunks hold the pages with those two fields zeroed
    /// and start on page boundaries, so renumbering the pages (as tag editors do when the
    /// comment header grows past a page) changes no chunk; the destination rebuilds the fields.
    OggPages {
        /// Sequence number of the region's first page.
        first_seq: u32,
    },
    /// The Ogg pages holding the comment header (and Vorbis's setup header), numbered from
    /// `first_seq`. They are chunked as their page headers (sequence number and CRC zeroed)
    /// followed by their bodies, i.e. the header packets' bytes, so a page layout that a tag
    /// writer changes costs only the page headers, and a picture inside the comment
    /// (`METADATA_BLOCK_PICTURE`) is cut apart and is the same chunks in every track.
    OggHeaderPages {
        /// Sequence number of the region's first page.
        first_seq: u32,
    },
}

/// Where a region begins, as a parser reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// Offset of the region's first byte in the file.
    pub offset: u64,
    /// What the region holds.
    pub kind: RegionKind,
    /// How its bytes are represented for chunking.
    pub transform: Option<Transform>,
}

impl Mark {
    /// A region of `kind` at `offset`, taken as it is.
    pub fn new(offset: u64, kind: RegionKind) -> Mark {
        Mark {
            offset,
            kind,
            transform: None,
        }
    }
}

/// One region of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Region {
    /// What it holds.
    pub kind: RegionKind,
    /// Offset of its first byte.
    pub offset: u64,
    /// Its length (never zero).
    pub len: u64,
    /// How its bytes are represented for chunking.
    pub transform: Option<Transform>,
}

/// A file's container format and its regions: contiguous, in order, covering it exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The container.
    pub format: Format,
    /// The regions.
    pub regions: Vec<Region>,
}

impl Layout {
    /// One opaque region covering a file of `len` bytes (none for an empty file).
    pub fn opaque(len: u64) -> Layout {
        Layout {
            format: Format::Opaque,
            regions: if len == 0 {
                Vec::new()
            } else {
                vec![Region {
                    kind: RegionKind::Other,
                    offset: 0,
                    len,
                    transform: None,
                }]
            },
        }
    }

    /// Regions from a parser's marks for a file of `len` bytes. Marks must be in strictly
    /// increasing order of offset, all below `len`; a region runs from its mark to the next
    /// one (or the end). An `Other` region is added at 0 when the first mark is later.
    /// Marks that break these rules give [`Layout::opaque`]: a parser's bug must cost
    /// deduplication, never correctness.
    pub fn from_marks(format: Format, marks: &[Mark], len: u64) -> Layout {
        if marks.is_empty() || len == 0 {
            return Layout::opaque(len);
        }
        let ordered = marks.windows(2).all(|w| w[0].offset < w[1].offset);
        if !ordered || marks[marks.len() - 1].offset >= len {
            return Layout::opaque(len);
        }
        let mut regions = Vec::with_capacity(marks.len() + 1);
        if marks[0].offset > 0 {
            regions.push(Region {
                kind: RegionKind::Other,
                offset: 0,
                len: marks[0].offset,
                transform: None,
            });
        }
        for (i, m) in marks.iter().enumerate() {
            let end = marks.get(i + 1).map_or(len, |n| n.offset);
            regions.push(Region {
                kind: m.kind,
                offset: m.offset,
                len: end - m.offset,
                transform: m.transform,
            });
        }
        Layout { format, regions }
    }

    /// The same layout with every transform dropped (the fallback when a transformed region
    /// turns out not to be what its parser thought).
    pub fn without_transforms(&self) -> Layout {
        let mut plain = self.clone();
        for r in &mut plain.regions {
            r.transform = None;
        }
        plain
    }
}

/// Most marks a parser may give: past this a file is opaque.
const MAX_MARKS: usize = 4096;

/// Marks kept strictly increasing, with neighbours of one kind merged: what every parser
/// builds its result with.
pub(crate) struct MarkList {
    marks: Vec<Mark>,
    /// The next mark starts a region even when it is of the same kind as the last.
    sealed: bool,
}

impl MarkList {
    pub(crate) fn new() -> MarkList {
        MarkList {
            marks: Vec::new(),
            sealed: false,
        }
    }

    /// Starts a region of `kind` at `offset`. A mark at the last one's offset replaces it (the
    /// region that one began is empty); a mark of the last one's kind is dropped (the region
    /// goes on) unless the list is sealed; a mark before the last one is dropped (a parser's
    /// slip costs a region's label, never the layout). Fails past `MAX_MARKS`.
    pub(crate) fn push(&mut self, offset: u64, kind: RegionKind) -> Result<(), ParseError> {
        let sealed = std::mem::take(&mut self.sealed);
        while let Some(last) = self.marks.last() {
            if last.offset == offset {
                self.marks.pop();
            } else if last.offset > offset || (!sealed && last.kind == kind) {
                return Ok(());
            } else {
                break;
            }
        }
        if self.marks.len() >= MAX_MARKS {
            return Err(ParseError::Malformed("too many regions"));
        }
        self.marks.push(Mark::new(offset, kind));
        Ok(())
    }

    /// Starts a region of `kind` at `offset` that does not merge with the one before it.
    pub(crate) fn push_alone(&mut self, offset: u64, kind: RegionKind) -> Result<(), ParseError> {
        self.sealed = true;
        self.push(offset, kind)
    }

    /// Makes the next mark start a region whatever its kind.
    pub(crate) fn seal(&mut self) {
        self.sealed = true;
    }

    /// The kind of the last region so far.
    pub(crate) fn last_kind(&self) -> Option<RegionKind> {
        self.marks.last().map(|m| m.kind)
    }

    /// Pushes each of `marks` in turn.
    pub(crate) fn extend(&mut self, marks: &[Mark]) -> Result<(), ParseError> {
        marks.iter().try_for_each(|m| self.push(m.offset, m.kind))
    }

    /// The marks below `len` (a region that would start at the end is empty).
    pub(crate) fn finish(mut self, len: u64) -> Vec<Mark> {
        self.marks.retain(|m| m.offset < len);
        self.marks
    }
}

/// Anything a parser can read from.
pub trait Source: Read + Seek {}
impl<T: Read + Seek> Source for T {}

/// Why a parser gave up. Never shown as an error to the user: the file is chunked as opaque.
#[derive(Debug)]
pub enum ParseError {
    /// Reading failed.
    Io(io::Error),
    /// The bytes are not what the format says they must be.
    Malformed(&'static str),
}

impl From<io::Error> for ParseError {
    fn from(e: io::Error) -> Self {
        ParseError::Io(e)
    }
}

/// What a parser returns: the marks, in order.
pub type ParseResult = Result<Vec<Mark>, ParseError>;

/// Finds the container of a file of `len` bytes from its first bytes and parses its layout.
/// Never fails: an unknown or malformed file is opaque. I/O errors are returned, since they
/// say nothing about the format.
pub fn detect(source: &mut dyn Source, len: u64) -> io::Result<Layout> {
    let Some(format) = sniff(source)? else {
        return Ok(Layout::opaque(len));
    };
    source.seek(SeekFrom::Start(0))?;
    match parse_marks(format, source, len) {
        Ok(marks) => Ok(Layout::from_marks(format, &marks, len)),
        Err(ParseError::Io(e)) if e.kind() != io::ErrorKind::UnexpectedEof => Err(e),
        Err(_) => Ok(Layout::opaque(len)),
    }
}

/// The container a file's first bytes announce, if any.
fn sniff(source: &mut dyn Source) -> io::Result<Option<Format>> {
    let mut head = [0u8; 12];
    source.seek(SeekFrom::Start(0))?;
    let n = read_up_to(source, &mut head)?;
    let head = &head[..n];
    Ok(if head.starts_with(b"fLaC") {
        Some(Format::Flac)
    } else if head.starts_with(b"OggS") {
        Some(Format::Ogg)
    } else if head.len() >= 8 && &head[4..8] == b"ftyp" {
        Some(Format::Mp4)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WAVE" {
        Some(Format::Wav)
    } else if head.len() >= 12
        && head.starts_with(b"FORM")
        && (&head[8..12] == b"AIFF" || &head[8..12] == b"AIFC")
    {
        Some(Format::Aiff)
    } else if mp3::looks_like(head) {
        Some(Format::Mp3)
    } else {
        None
    })
}

/// Why a file whose first bytes announce a container could not be parsed as one (it is then
/// chunked as opaque): `None` when it parses, or announces none. For `inspect`.
pub fn diagnose(source: &mut dyn Source, len: u64) -> io::Result<Option<String>> {
    let Some(format) = sniff(source)? else {
        return Ok(None);
    };
    source.seek(SeekFrom::Start(0))?;
    Ok(match parse_marks(format, source, len) {
        Ok(_) => None,
        Err(ParseError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Some(format!(
            "starts as {} but ends early: truncated, read as an opaque file",
            format.name()
        )),
        Err(ParseError::Io(e)) => return Err(e),
        Err(ParseError::Malformed(why)) => Some(format!(
            "starts as {} but does not parse as one ({why}): damaged or truncated, read as an opaque file",
            format.name()
        )),
    })
}

/// Runs the parser of `format` from the source's current position (its start).
fn parse_marks(format: Format, source: &mut dyn Source, len: u64) -> ParseResult {
    match format {
        Format::Mp3 => mp3::parse(source, len),
        Format::Flac => flac::parse(source, len),
        Format::Ogg => ogg::parse(source, len),
        Format::Mp4 => mp4::parse(source, len),
        Format::Wav => riff::parse(source, len),
        Format::Aiff => aiff::parse(source, len),
        Format::Opaque => Ok(Vec::new()),
    }
}

/// Parses a file of `len` bytes as `format`, whatever its first bytes say (for tests and
/// fuzzing). Never fails: an unparseable file or a read error gives [`Layout::opaque`].
pub fn parse_as(format: Format, source: &mut dyn Source, len: u64) -> Layout {
    if source.seek(SeekFrom::Start(0)).is_err() {
        return Layout::opaque(len);
    }
    match parse_marks(format, source, len) {
        Ok(marks) if format != Format::Opaque => Layout::from_marks(format, &marks, len),
        _ => Layout::opaque(len),
    }
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
pub(crate) fn read_up_to(source: &mut dyn Source, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads exactly `buf.len()` bytes at `offset`.
pub(crate) fn read_at(source: &mut dyn Source, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    source.seek(SeekFrom::Start(offset))?;
    source.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_cover_the_file() {
        let marks = [
            Mark::new(10, RegionKind::Tag),
            Mark::new(20, RegionKind::Audio),
        ];
        let l = Layout::from_marks(Format::Mp3, &marks, 100);
        let spans: Vec<_> = l
            .regions
            .iter()
            .map(|r| (r.kind, r.offset, r.len))
            .collect();
        assert_eq!(
            spans,
            vec![
                (RegionKind::Other, 0, 10),
                (RegionKind::Tag, 10, 10),
                (RegionKind::Audio, 20, 80)
            ]
        );
    }

    #[test]
    fn bad_marks_give_opaque() {
        let unordered = [
            Mark::new(20, RegionKind::Tag),
            Mark::new(20, RegionKind::Audio),
        ];
        assert_eq!(
            Layout::from_marks(Format::Mp3, &unordered, 100),
            Layout::opaque(100)
        );
        let past_end = [Mark::new(100, RegionKind::Audio)];
        assert_eq!(
            Layout::from_marks(Format::Mp3, &past_end, 100),
            Layout::opaque(100)
        );
    }
}
