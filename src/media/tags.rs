//! Tags and audio properties, read with lofty, for snapshots and `diff`.
//!
//! The region parsers say *where* a file's tags lie; this module says *what* they hold: the
//! fields people sort and search by (title, artist, album, album artist, track, disc, date,
//! genre), every other field as a raw `(key, value)` pair, and the stream's duration, bitrate,
//! sample rate and channels. `diff` shows tag-only changes field by field from these values.
//!
//! It must never panic and never allocate without bound, whatever the file holds: lofty runs
//! under `contain::quietly` (a panic inside it is logged at debug level instead of printed,
//! and costs only that file's tags); lofty's per-allocation limit is set to the file's length
//! (a size field claiming more is a lie), at least 64 KiB and at most [`MAX_ITEM_BYTES`]; and
//! pictures are not read at all (they are chunked as regions of their own, and a 10 MB cover
//! has no place in a snapshot). Each value is capped at [`MAX_VALUE_BYTES`].
//!
//! Keys of `other`: a field lofty knows is named by its `ItemKey` (`Comment`, `Composer`,
//! `MusicBrainzRecordingId`…, with `:description` appended when the container qualifies it);
//! a field lofty does not know keeps the container's own name (an ID3v2 frame id such as
//! `TXXX:MY FIELD` or `PRIV:owner`, an MP4 atom such as `----:com.apple.iTunes:MOOD`, a Vorbis
//! comment field name, a RIFF INFO chunk id).

use std::io::{BufReader, Seek, SeekFrom};

use lofty::config::{apply_global_options, GlobalOptions, ParseOptions};
use lofty::file::{AudioFile, FileType};
use lofty::id3::v2::{Frame, Id3v2Tag};
use lofty::mp4::{AtomData, AtomIdent, Ilst};
use lofty::probe::Probe;
use lofty::properties::FileProperties;
use lofty::tag::{ItemKey, ItemValue, MergeTag, SplitTag, Tag, TagType};
use serde::{Deserialize, Serialize};

/// The largest single allocation lofty may make for one file (a tag item, or a whole ID3v2
/// tag, which lofty reads into memory at once). Bounds memory per reading thread; a file whose
/// tag needs more (a cover of tens of megabytes in an ID3v2 tag) gets no tags, never an abort.
pub const MAX_ITEM_BYTES: usize = 32 << 20;

/// Values longer than this are cut (at a character boundary) and marked with their length.
pub const MAX_VALUE_BYTES: usize = 4096;

/// Binary values up to this size are kept as hex; longer ones as their size and a hash.
const MAX_HEX_BYTES: usize = 64;

/// The tags of one file. Multi-valued fields keep every value, in the file's order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tags {
    /// Track title(s).
    pub title: Vec<String>,
    /// Track artist(s).
    pub artist: Vec<String>,
    /// Album title(s).
    pub album: Vec<String>,
    /// Album artist(s).
    pub album_artist: Vec<String>,
    /// Track number.
    pub track: Option<u32>,
    /// Number of tracks on the disc.
    pub track_total: Option<u32>,
    /// Disc number.
    pub disc: Option<u32>,
    /// Number of discs.
    pub disc_total: Option<u32>,
    /// Recording date as written (`2024`, `2024-05-01`…).
    pub date: Option<String>,
    /// Genre(s).
    pub genre: Vec<String>,
    /// Every other field, `(key, value)`, sorted, duplicates removed (see the module docs
    /// for how keys are named). Pictures are never included.
    pub other: Vec<(String, String)>,
}

/// Properties of the audio stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Properties {
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Audio bitrate (or the overall bitrate when the stream's own is unknown), kb/s.
    pub bitrate_kbps: Option<u32>,
    /// Sample rate, Hz.
    pub sample_rate: Option<u32>,
    /// Number of channels.
    pub channels: Option<u8>,
}

/// What lofty could read from a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaInfo {
    /// The tags (empty when the file has none).
    pub tags: Tags,
    /// The stream's properties, when lofty could work them out.
    pub properties: Option<Properties>,
}

/// Reads the tags and properties of the file in `source` (from its start, whatever the
/// current position). `None` when lofty does not recognise the container or cannot parse it,
/// or panics on it. Never panics; reads only what lofty needs (pictures are skipped).
pub fn read(source: &mut dyn super::Source) -> Option<MediaInfo> {
    let len = source.seek(SeekFrom::End(0)).ok()?;
    source.seek(SeekFrom::Start(0)).ok()?;
    let limit = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .clamp(64 << 10, MAX_ITEM_BYTES);
    apply_global_options(GlobalOptions::new().allocation_limit(limit));
    let result = crate::contain::quietly("lofty", || read_unguarded(source));
    apply_global_options(GlobalOptions::new());
    match result {
        Ok(info) => info,
        Err(_) => {
            tracing::debug!("lofty panicked; the file's tags are not recorded");
            None
        }
    }
}

/// One tag lofty found, in its container's own representation.
enum RawTag {
    Id3v2(Id3v2Tag),
    Id3v1(lofty::id3::v1::Id3v1Tag),
    Ape(lofty::ape::ApeTag),
    Vorbis(lofty::ogg::tag::VorbisComments),
    Ilst(Ilst),
    RiffInfo(lofty::iff::wav::RiffInfoList),
    AiffText(lofty::iff::aiff::AiffTextChunks),
}

fn read_unguarded(source: &mut dyn super::Source) -> Option<MediaInfo> {
    let options = ParseOptions::new()
        .read_cover_art(false)
        .read_properties(true)
        .read_tags(true);
    let mut reader = BufReader::new(source);
    let probe = Probe::new(&mut reader)
        .options(options)
        .guess_file_type()
        .ok()?;
    let file_type = probe.file_type()?;
    reader.seek(SeekFrom::Start(0)).ok()?;
    let (raw, properties) = read_concrete(&mut reader, file_type, options)?;
    Some(MediaInfo {
        tags: collect(raw),
        properties: properties_of(&properties),
    })
}

/// Reads the file as `file_type` and returns its tags, most authoritative first (the order a
/// field is looked up in), and its properties.
fn read_concrete<R: std::io::Read + Seek>(
    reader: &mut R,
    file_type: FileType,
    options: ParseOptions,
) -> Option<(Vec<RawTag>, FileProperties)> {
    use lofty::{aac, ape, flac, iff, mp4, mpeg, musepack, ogg, wavpack};
    let mut tags = Vec::new();
    let properties: FileProperties = match file_type {
        FileType::Mpeg => {
            let f = mpeg::MpegFile::read_from(reader, options).ok()?;
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.ape().cloned().map(RawTag::Ape));
            tags.extend(f.id3v1().cloned().map(RawTag::Id3v1));
            (*f.properties()).into()
        }
        FileType::Flac => {
            let f = flac::FlacFile::read_from(reader, options).ok()?;
            tags.extend(f.vorbis_comments().cloned().map(RawTag::Vorbis));
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            (*f.properties()).into()
        }
        FileType::Vorbis => {
            let f = ogg::VorbisFile::read_from(reader, options).ok()?;
            tags.push(RawTag::Vorbis(f.vorbis_comments().clone()));
            (*f.properties()).into()
        }
        FileType::Opus => {
            let f = ogg::OpusFile::read_from(reader, options).ok()?;
            tags.push(RawTag::Vorbis(f.vorbis_comments().clone()));
            (*f.properties()).into()
        }
        FileType::Speex => {
            let f = ogg::SpeexFile::read_from(reader, options).ok()?;
            tags.push(RawTag::Vorbis(f.vorbis_comments().clone()));
            (*f.properties()).into()
        }
        FileType::Mp4 => {
            let f = mp4::Mp4File::read_from(reader, options).ok()?;
            tags.extend(f.ilst().cloned().map(RawTag::Ilst));
            f.properties().clone().into()
        }
        FileType::Wav => {
            let f = iff::wav::WavFile::read_from(reader, options).ok()?;
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.riff_info().cloned().map(RawTag::RiffInfo));
            (*f.properties()).into()
        }
        FileType::Aiff => {
            let f = iff::aiff::AiffFile::read_from(reader, options).ok()?;
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.text_chunks().cloned().map(RawTag::AiffText));
            f.properties().clone().into()
        }
        FileType::Ape => {
            let f = ape::ApeFile::read_from(reader, options).ok()?;
            tags.extend(f.ape().cloned().map(RawTag::Ape));
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.id3v1().cloned().map(RawTag::Id3v1));
            f.properties().clone().into()
        }
        FileType::WavPack => {
            let f = wavpack::WavPackFile::read_from(reader, options).ok()?;
            tags.extend(f.ape().cloned().map(RawTag::Ape));
            tags.extend(f.id3v1().cloned().map(RawTag::Id3v1));
            (*f.properties()).into()
        }
        FileType::Mpc => {
            let f = musepack::MpcFile::read_from(reader, options).ok()?;
            tags.extend(f.ape().cloned().map(RawTag::Ape));
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.id3v1().cloned().map(RawTag::Id3v1));
            f.properties().clone().into()
        }
        FileType::Aac => {
            let f = aac::AacFile::read_from(reader, options).ok()?;
            tags.extend(f.id3v2().cloned().map(RawTag::Id3v2));
            tags.extend(f.id3v1().cloned().map(RawTag::Id3v1));
            (*f.properties()).into()
        }
        _ => return None,
    };
    Some((tags, properties))
}

fn properties_of(p: &FileProperties) -> Option<Properties> {
    if p.is_empty() {
        return None;
    }
    Some(Properties {
        duration_ms: u64::try_from(p.duration().as_millis()).unwrap_or(u64::MAX),
        bitrate_kbps: p
            .audio_bitrate()
            .filter(|&b| b > 0)
            .or(p.overall_bitrate().filter(|&b| b > 0)),
        sample_rate: p.sample_rate().filter(|&r| r > 0),
        channels: p.channels().filter(|&c| c > 0),
    })
}

/// Splits every tag into lofty's generic items and the container's leftovers, then fills
/// [`Tags`]: each main field from the first tag that has it, everything else into `other`.
fn collect(raw: Vec<RawTag>) -> Tags {
    let mut generic: Vec<Tag> = Vec::with_capacity(raw.len());
    let mut other: Vec<(String, String)> = Vec::new();
    for tag in raw {
        let (tag, leftovers) = split(tag);
        generic.push(tag);
        other.extend(leftovers);
    }

    let mut tags = Tags::default();
    let strings = |key: ItemKey| -> Vec<String> {
        generic
            .iter()
            .map(|t| {
                t.get_items(key)
                    .filter_map(|item| text_of(item.value()))
                    .filter(|s| !s.is_empty())
                    .map(|s| cap(&s))
                    .collect::<Vec<_>>()
            })
            .find(|values| !values.is_empty())
            .unwrap_or_default()
    };
    tags.title = strings(ItemKey::TrackTitle);
    tags.artist = strings(ItemKey::TrackArtist);
    tags.album = strings(ItemKey::AlbumTitle);
    tags.album_artist = strings(ItemKey::AlbumArtist);
    tags.genre = strings(ItemKey::Genre);
    tags.date = strings(ItemKey::RecordingDate)
        .into_iter()
        .next()
        .or_else(|| strings(ItemKey::Year).into_iter().next());
    (tags.track, tags.track_total) =
        number_pair(strings(ItemKey::TrackNumber), strings(ItemKey::TrackTotal));
    (tags.disc, tags.disc_total) =
        number_pair(strings(ItemKey::DiscNumber), strings(ItemKey::DiscTotal));

    // The main fields come from the first tag that has them; the same fields in a secondary
    // tag (an ID3v1 trailer behind an ID3v2 tag) are copies, not other fields.
    for t in &generic {
        for item in t.items() {
            if MAIN_KEYS.contains(&item.key()) {
                continue;
            }
            let Some(value) = value_string(item.value()) else {
                continue;
            };
            let mut key = format!("{:?}", item.key());
            if !item.description().is_empty() {
                key.push(':');
                key.push_str(item.description());
            }
            other.push((key, value));
        }
    }
    // A number that did not parse (`A1` on a vinyl rip) is still a tag worth keeping.
    if tags.track.is_none() {
        push_unparsed(&generic, ItemKey::TrackNumber, &mut other);
    }
    if tags.disc.is_none() {
        push_unparsed(&generic, ItemKey::DiscNumber, &mut other);
    }
    other.retain(|(_, v)| !v.is_empty());
    other.sort();
    other.dedup();
    tags.other = other;
    tags
}

/// The fields [`Tags`] names; never repeated in `other`.
const MAIN_KEYS: [ItemKey; 11] = [
    ItemKey::TrackTitle,
    ItemKey::TrackArtist,
    ItemKey::AlbumTitle,
    ItemKey::AlbumArtist,
    ItemKey::Genre,
    ItemKey::RecordingDate,
    ItemKey::Year,
    ItemKey::TrackNumber,
    ItemKey::TrackTotal,
    ItemKey::DiscNumber,
    ItemKey::DiscTotal,
];

fn push_unparsed(generic: &[Tag], key: ItemKey, other: &mut Vec<(String, String)>) {
    if let Some(v) = generic.iter().find_map(|t| t.get_string(key)) {
        other.push((format!("{key:?}"), cap(v)));
    }
}

/// A number and a total from their fields, accepting `N/TOTAL` in the number field.
fn number_pair(numbers: Vec<String>, totals: Vec<String>) -> (Option<u32>, Option<u32>) {
    let (mut number, mut total) = (None, None);
    if let Some(n) = numbers.first() {
        let mut parts = n.splitn(2, '/');
        number = parts.next().and_then(|s| s.trim().parse().ok());
        total = parts.next().and_then(|s| s.trim().parse().ok());
    }
    if let Some(t) = totals.first().and_then(|s| s.trim().parse().ok()) {
        total = Some(t);
    }
    (number, total)
}

/// Lofty's generic view of a tag plus the `(key, value)` pairs it could not map.
fn split(tag: RawTag) -> (Tag, Vec<(String, String)>) {
    let mut out = Vec::new();
    match tag {
        RawTag::Id3v2(t) => {
            let (rest, tag) = t.split_tag();
            let rest: Id3v2Tag = rest.merge_tag(Tag::new(TagType::Id3v2));
            for frame in &rest {
                id3v2_frame(frame, &mut out);
            }
            (tag, out)
        }
        RawTag::Id3v1(t) => (t.split_tag().1, out),
        RawTag::AiffText(t) => (t.split_tag().1, out),
        RawTag::Ape(t) => {
            let (rest, tag) = t.split_tag();
            let rest: lofty::ape::ApeTag = rest.merge_tag(Tag::new(TagType::Ape));
            for item in &rest {
                if let Some(v) = value_string(item.value()) {
                    out.push((item.key().to_string(), v));
                }
            }
            (tag, out)
        }
        RawTag::Vorbis(t) => {
            let (rest, tag) = t.split_tag();
            let rest: lofty::ogg::tag::VorbisComments =
                rest.merge_tag(Tag::new(TagType::VorbisComments));
            for (k, v) in rest.items() {
                out.push((k.to_string(), cap(v)));
            }
            (tag, out)
        }
        RawTag::Ilst(t) => {
            let (rest, tag) = t.split_tag();
            let rest: Ilst = rest.merge_tag(Tag::new(TagType::Mp4Ilst));
            for atom in &rest {
                let key = match atom.ident() {
                    AtomIdent::Fourcc(f) => f.iter().map(|&b| char::from(b)).collect(),
                    AtomIdent::Freeform { mean, name } => format!("----:{mean}:{name}"),
                };
                for data in atom.data() {
                    let value = match data {
                        AtomData::UTF8(s) | AtomData::UTF16(s) => cap(s),
                        AtomData::SignedInteger(n) => n.to_string(),
                        AtomData::UnsignedInteger(n) => n.to_string(),
                        AtomData::Bool(b) => u8::from(*b).to_string(),
                        AtomData::Unknown { data, .. } => binary(data),
                        AtomData::Picture(_) => continue,
                    };
                    out.push((key.clone(), value));
                }
            }
            (tag, out)
        }
        RawTag::RiffInfo(t) => {
            let (rest, tag) = t.split_tag();
            let rest: lofty::iff::wav::RiffInfoList = rest.merge_tag(Tag::new(TagType::RiffInfo));
            for (k, v) in &rest {
                out.push((k.clone(), cap(v.trim_end_matches('\0'))));
            }
            (tag, out)
        }
    }
}

/// The `(key, value)` pairs of an ID3v2 frame lofty's generic view left out.
fn id3v2_frame(frame: &Frame<'_>, out: &mut Vec<(String, String)>) {
    let id = frame.id_str();
    let mut push = |key: String, value: &str| {
        for v in value.split('\0').filter(|v| !v.is_empty()) {
            out.push((key.clone(), cap(v)));
        }
    };
    match frame {
        Frame::Text(f) => push(id.to_string(), &f.value),
        Frame::UserText(f) => push(format!("{id}:{}", f.description), &f.content),
        Frame::Comment(f) => push(qualified(id, &f.description), &f.content),
        Frame::UnsynchronizedText(f) => push(qualified(id, &f.description), &f.content),
        Frame::Url(f) => push(id.to_string(), f.url()),
        Frame::UserUrl(f) => push(format!("{id}:{}", f.description), &f.content),
        Frame::Popularimeter(f) => push(
            format!("{id}:{}", f.email),
            &format!("rating={} counter={}", f.rating, f.counter),
        ),
        Frame::KeyValue(f) => {
            for (k, v) in f.key_value_pairs.iter() {
                push(format!("{id}:{k}"), v);
            }
        }
        Frame::UniqueFileIdentifier(f) => {
            out.push((format!("{id}:{}", f.owner), binary(&f.identifier)))
        }
        Frame::Private(f) => out.push((format!("{id}:{}", f.owner), binary(&f.private_data))),
        Frame::Timestamp(f) => push(id.to_string(), &f.timestamp.to_string()),
        Frame::Binary(f) => out.push((id.to_string(), binary(&f.data))),
        // Pictures are chunked as regions of their own; the other frames (RVA2, OWNE, ETCO,
        // CHAP, CTOC) are structures no one diffs by hand.
        _ => {}
    }
}

fn qualified(id: &str, description: &str) -> String {
    if description.is_empty() {
        id.to_string()
    } else {
        format!("{id}:{description}")
    }
}

fn text_of(v: &ItemValue) -> Option<String> {
    match v {
        ItemValue::Text(s) | ItemValue::Locator(s) => Some(s.trim_end_matches('\0').to_string()),
        ItemValue::Binary(_) => None,
    }
}

fn value_string(v: &ItemValue) -> Option<String> {
    match v {
        ItemValue::Text(s) | ItemValue::Locator(s) => Some(cap(s.trim_end_matches('\0'))),
        ItemValue::Binary(b) => Some(binary(b)),
    }
}

/// A binary value as text: hex when short, otherwise its size and a hash, so that a change
/// still shows.
fn binary(b: &[u8]) -> String {
    if b.len() <= MAX_HEX_BYTES {
        let mut s = String::with_capacity(4 + 2 * b.len());
        s.push_str("hex:");
        for byte in b {
            s.push_str(&format!("{byte:02x}"));
        }
        s
    } else {
        let hash = blake3::hash(b).to_hex();
        format!("<{} bytes, blake3 {}>", b.len(), &hash[..16])
    }
}

/// `s`, cut to at most [`MAX_VALUE_BYTES`] at a character boundary and marked when cut.
fn cap(s: &str) -> String {
    if s.len() <= MAX_VALUE_BYTES {
        return s.to_string();
    }
    let mut end = MAX_VALUE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes]", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Cursor;
    use std::path::PathBuf;

    fn fixture(rel: &str) -> MediaInfo {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audio")
            .join(rel);
        let mut f = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        read(&mut f).unwrap_or_else(|| panic!("no tags read from {}", path.display()))
    }

    /// Checks the fields every fixture carries (see fixtures/README.md).
    #[allow(clippy::too_many_arguments)]
    fn check(
        rel: &str,
        artist: &str,
        album: &str,
        title: &str,
        track: u32,
        total: u32,
        genre: &str,
        min_ms: u64,
    ) -> MediaInfo {
        let info = fixture(rel);
        let t = &info.tags;
        assert_eq!(t.title, vec![title], "{rel}: {t:#?}");
        assert_eq!(t.artist, vec![artist], "{rel}: {t:#?}");
        // RIFF INFO has no album-artist field: ffmpeg drops it from WAV files.
        if !rel.ends_with(".wav") {
            assert_eq!(t.album_artist, vec![artist], "{rel}: {t:#?}");
        }
        assert_eq!(t.album, vec![album], "{rel}: {t:#?}");
        assert_eq!(t.track, Some(track), "{rel}: {t:#?}");
        assert_eq!(t.track_total, Some(total), "{rel}: {t:#?}");
        assert_eq!(t.genre, vec![genre], "{rel}: {t:#?}");
        assert_eq!(
            t.date.as_deref().map(|d| &d[..4]),
            Some("2024"),
            "{rel}: {t:#?}"
        );
        assert!(
            !t.other.iter().any(|(k, _)| k.contains("APIC")
                || k.contains("covr")
                || k.eq_ignore_ascii_case("METADATA_BLOCK_PICTURE")),
            "{rel}: pictures must not be in tags: {t:#?}"
        );
        let p = info
            .properties
            .as_ref()
            .unwrap_or_else(|| panic!("{rel}: no properties"));
        assert!(
            p.duration_ms >= min_ms && p.duration_ms <= min_ms + 400,
            "{rel}: duration {} ms, expected about {min_ms}",
            p.duration_ms
        );
        assert_eq!(p.channels, Some(1), "{rel}: {p:?}");
        assert!(p.sample_rate.is_some(), "{rel}: {p:?}");
        info
    }

    #[test]
    fn mp3_id3v23_with_picture() {
        for (i, title) in ["Dawn", "Zenith", "Dusk"].iter().enumerate() {
            let n = i as u32 + 1;
            let rel = format!("Aurora Tones/First Light/0{n} {title}.mp3");
            let info = check(
                &rel,
                "Aurora Tones",
                "First Light",
                title,
                n,
                3,
                "Ambient",
                1950,
            );
            let p = info.properties.unwrap();
            assert_eq!(p.sample_rate, Some(44100));
            assert!(
                p.bitrate_kbps.is_some_and(|b| (56..=72).contains(&b)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn mp3_id3v24_and_id3v1() {
        check(
            "Aurora Tones/Night Shift/01 Static.mp3",
            "Aurora Tones",
            "Night Shift",
            "Static",
            1,
            2,
            "Ambient",
            1950,
        );
        let with_v1 = check(
            "Aurora Tones/Night Shift/02 Mains Hum.mp3",
            "Aurora Tones",
            "Night Shift",
            "Mains Hum",
            2,
            2,
            "Ambient",
            1950,
        );
        // The ID3v1 trailer repeats the main fields; they are not "other" fields.
        assert_eq!(with_v1.tags.other, Vec::<(String, String)>::new());
    }

    fn id3v24_frame(id: &str, body: &[u8]) -> Vec<u8> {
        let n = body.len() as u32;
        let mut f = id.as_bytes().to_vec();
        f.extend([
            (n >> 21) as u8 & 0x7f,
            (n >> 14) as u8 & 0x7f,
            (n >> 7) as u8 & 0x7f,
            n as u8 & 0x7f,
        ]);
        f.extend([0, 0]);
        f.extend(body);
        f
    }

    /// Multi-valued frames keep every value in order; frames lofty cannot map keep their ids.
    #[test]
    fn id3v24_multi_values_and_raw_frames() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audio/Aurora Tones/Night Shift/01 Static.mp3");
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..3], b"ID3");
        let size = bytes[6..10]
            .iter()
            .fold(0usize, |a, &b| (a << 7) | usize::from(b));
        let audio = &bytes[10 + size..];

        let mut frames = Vec::new();
        frames.extend(id3v24_frame("TIT2", b"\x03Side A\0Side B"));
        frames.extend(id3v24_frame("TPE1", b"\x03First\0Second\0Third"));
        frames.extend(id3v24_frame("TRCK", b"\x037/12"));
        frames.extend(id3v24_frame("TPOS", b"\x031/2"));
        frames.extend(id3v24_frame("TXXX", b"\x03MY FIELD\0some value"));
        frames.extend(id3v24_frame("PRIV", b"example.org\0\x01\x02\x03"));
        frames.extend(id3v24_frame("COMM", b"\x03engnote\0a comment"));
        frames.extend(vec![0u8; 100]); // padding
        let n = frames.len();
        let mut file = b"ID3\x04\x00\x00".to_vec();
        file.extend([
            (n >> 21) as u8 & 0x7f,
            (n >> 14) as u8 & 0x7f,
            (n >> 7) as u8 & 0x7f,
            n as u8 & 0x7f,
        ]);
        file.extend(frames);
        file.extend(audio);

        let info = read(&mut Cursor::new(file)).expect("tags");
        let t = info.tags;
        assert_eq!(t.title, vec!["Side A", "Side B"]);
        assert_eq!(t.artist, vec!["First", "Second", "Third"]);
        assert_eq!(
            (t.track, t.track_total, t.disc, t.disc_total),
            (Some(7), Some(12), Some(1), Some(2))
        );
        let has = |k: &str, v: &str| t.other.iter().any(|(a, b)| a == k && b == v);
        assert!(has("TXXX:MY FIELD", "some value"), "{:?}", t.other);
        assert!(has("PRIV:example.org", "hex:010203"), "{:?}", t.other);
        assert!(has("Comment:note", "a comment"), "{:?}", t.other);
        let mut sorted = t.other.clone();
        sorted.sort();
        assert_eq!(sorted, t.other);
    }

    #[test]
    fn flac_vorbis_comments() {
        check(
            "Lossless Ensemble/Waveforms/01 Pure Sine.flac",
            "Lossless Ensemble",
            "Waveforms",
            "Pure Sine",
            1,
            2,
            "Electronic",
            2000,
        );
        check(
            "Lossless Ensemble/Waveforms/02 Brown Noise.flac",
            "Lossless Ensemble",
            "Waveforms",
            "Brown Noise",
            2,
            2,
            "Electronic",
            1000,
        );
    }

    #[test]
    fn ogg_vorbis_and_opus_with_non_ascii_artist() {
        let v = check(
            "Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg",
            "Café Tonal",
            "Xiph Sessions",
            "Vorbis Tone",
            1,
            2,
            "Jazz",
            1950,
        );
        assert_eq!(v.tags.artist[0].chars().nth(3), Some('é'));
        check(
            "Café Tonal/Xiph Sessions/02 Opus Noise.opus",
            "Café Tonal",
            "Xiph Sessions",
            "Opus Noise",
            2,
            2,
            "Jazz",
            1950,
        );
    }

    #[test]
    fn mp4_ilst_moov_last_and_first() {
        check(
            "MP4 Quartet/Containers/01 Plain.m4a",
            "MP4 Quartet",
            "Containers",
            "Plain",
            1,
            2,
            "Classical",
            1950,
        );
        check(
            "MP4 Quartet/Containers/02 Covered.m4a",
            "MP4 Quartet",
            "Containers",
            "Covered",
            2,
            2,
            "Classical",
            1950,
        );
    }

    #[test]
    fn wav_riff_info() {
        let info = check(
            "Riff Raff/Chunks/01 Info Block.wav",
            "Riff Raff",
            "Chunks",
            "Info Block",
            1,
            1,
            "Rock",
            1000,
        );
        assert_eq!(info.properties.unwrap().sample_rate, Some(22050));
    }

    #[test]
    fn json_round_trip() {
        let info = fixture("Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg");
        let json = serde_json::to_string(&info).unwrap();
        let back: MediaInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn not_audio_gives_none() {
        assert_eq!(read(&mut Cursor::new(Vec::new())), None);
        assert_eq!(read(&mut Cursor::new(b"hello, world".to_vec())), None);
        let jpeg = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audio/Aurora Tones/First Light/cover.jpg");
        assert_eq!(read(&mut File::open(jpeg).unwrap()), None);
    }

    /// Every prefix and some corruptions of every fixture. No panic escapes `read` by
    /// construction; what is checked is what it returns: nothing for a prefix too short to
    /// hold any tag, tags for each whole audio fixture, and the same answer for the same bytes.
    /// (That claimed sizes are never allocated is measured in `tests/tags_alloc.rs`.)
    #[test]
    fn damaged_fixtures_give_sane_answers() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio");
        let mut files = Vec::new();
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else {
                    files.push(p);
                }
            }
        }
        let mut audio = 0;
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let whole = read(&mut Cursor::new(bytes.clone()));
            if path.extension().is_some_and(|e| e != "jpg" && e != "png") {
                audio += 1;
                assert!(
                    whole.is_some(),
                    "{}: no tags from the whole file",
                    path.display()
                );
            }
            let cuts = [0, 1, 4, 10, 12, 64, 200, 1000, 4096, bytes.len() / 2];
            for &cut in cuts.iter().filter(|&&c| c < bytes.len()) {
                let prefix = read(&mut Cursor::new(bytes[..cut].to_vec()));
                if cut <= 4 {
                    assert_eq!(prefix, None, "{}: {cut}-byte prefix", path.display());
                }
            }
            for offset in [4usize, 5, 6, 7, 8, 9, 20, 40, 100] {
                if offset < bytes.len() {
                    let mut b = bytes.clone();
                    b[offset] = 0xFF;
                    let first = read(&mut Cursor::new(b.clone()));
                    assert_eq!(
                        read(&mut Cursor::new(b)),
                        first,
                        "{}: byte {offset} damaged gives different answers",
                        path.display()
                    );
                }
            }
        }
        assert!(audio >= 10, "{audio} audio fixtures");
    }

    #[test]
    fn caps_and_binary() {
        let long = "é".repeat(3000);
        let c = cap(&long);
        assert!(c.len() < MAX_VALUE_BYTES + 32);
        assert!(c.ends_with("…[6000 bytes]"), "{}", &c[c.len() - 20..]);
        assert_eq!(binary(&[0, 255]), "hex:00ff");
        assert!(binary(&[7; 100]).starts_with("<100 bytes, blake3 "));
        assert_eq!(
            number_pair(vec!["3/10".into()], vec![]),
            (Some(3), Some(10))
        );
        assert_eq!(
            number_pair(vec!["3".into()], vec!["12".into()]),
            (Some(3), Some(12))
        );
        assert_eq!(number_pair(vec!["A1".into()], vec![]), (None, None));
    }
}
