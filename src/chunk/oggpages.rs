//! Chunking Ogg audio pages so that renumbering them changes no chunk.
//!
//! When a tag editor grows an Ogg file's comment header past a page, it renumbers every
//! following page: each page's sequence number and CRC change, and plain chunking would see
//! every chunk of the file change. Here the audio pages are chunked with those two fields
//! zeroed (the *normalized* form), and every chunk starts and ends on a page boundary. The
//! destination rebuilds the fields from the region's first sequence number: pages count up by
//! one, and the CRC is a function of the page. A region whose pages do not follow those rules
//! (another logical stream interleaved, a gap in the numbering, a wrong CRC, trailing bytes)
//! is refused with [`OggChunkError::NotCanonical`] and chunked as it is instead.

use std::io::{self, Read};

use super::{Chunk, Chunker};
use crate::id::ChunkId;
use crate::media::ogg::{crc32, page_len, CRC_OFFSET as CRC, SEQ_OFFSET as SEQ};

/// Fixed part of a page header, before the segment table.
const HEADER: usize = 27;

/// Why a region could not be chunked as normalized pages.
#[derive(Debug)]
pub enum OggChunkError {
    /// Reading failed.
    Io(io::Error),
    /// The region is not a canonical run of pages (see the module documentation).
    NotCanonical,
}

impl From<io::Error> for OggChunkError {
    fn from(e: io::Error) -> Self {
        OggChunkError::Io(e)
    }
}

/// Zeroes the sequence number and CRC of every page in `buf`, which must hold whole pages.
/// Returns false, leaving `buf` partly changed, when it does not.
pub fn normalize(buf: &mut [u8]) -> bool {
    let mut at = 0;
    while at < buf.len() {
        let Some(len) = page_len(&buf[at..]) else {
            return false;
        };
        if len > buf.len() - at {
            return false;
        }
        buf[at + SEQ..at + CRC + 4].fill(0);
        at += len;
    }
    true
}

/// Rebuilds the sequence numbers and CRCs of the normalized pages in `buf`: the page with
/// region index `i` gets `first_seq + i`. `index` is the region index of the first page in
/// `buf` and is advanced past the last. Returns false when `buf` does not hold whole pages.
pub fn denormalize(buf: &mut [u8], first_seq: u32, index: &mut u32) -> bool {
    let mut at = 0;
    while at < buf.len() {
        let Some(len) = page_len(&buf[at..]) else {
            return false;
        };
        if len > buf.len() - at {
            return false;
        }
        let page = &mut buf[at..at + len];
        page[SEQ..SEQ + 4].copy_from_slice(&first_seq.wrapping_add(*index).to_le_bytes());
        page[CRC..CRC + 4].fill(0);
        let crc = crc32(page);
        page[CRC..CRC + 4].copy_from_slice(&crc.to_le_bytes());
        *index = index.wrapping_add(1);
        at += len;
    }
    true
}

/// Reads one page of at most `remaining` bytes into the end of `out`, checks it and
/// normalizes it. `expect` is the sequence number it must carry; `serial` the stream's.
fn read_page(
    reader: &mut dyn Read,
    remaining: u64,
    expect: u32,
    serial: &mut Option<[u8; 4]>,
    out: &mut Vec<u8>,
) -> Result<usize, OggChunkError> {
    let start = out.len();
    if remaining < HEADER as u64 {
        return Err(OggChunkError::NotCanonical);
    }
    let mut header = [0u8; HEADER];
    reader.read_exact(&mut header)?;
    if &header[..4] != b"OggS" || header[4] != 0 {
        return Err(OggChunkError::NotCanonical);
    }
    let segments = usize::from(header[26]);
    out.extend_from_slice(&header);
    out.resize(start + HEADER + segments, 0);
    if remaining < (HEADER + segments) as u64 {
        return Err(OggChunkError::NotCanonical);
    }
    reader.read_exact(&mut out[start + HEADER..])?;
    let body: usize = out[start + HEADER..].iter().map(|&b| usize::from(b)).sum();
    let len = HEADER + segments + body;
    if remaining < len as u64 {
        return Err(OggChunkError::NotCanonical);
    }
    out.resize(start + len, 0);
    reader.read_exact(&mut out[start + HEADER + segments..])?;

    let page = &mut out[start..];
    let this_serial: [u8; 4] = page[14..18].try_into().unwrap_or_default();
    if *serial.get_or_insert(this_serial) != this_serial {
        return Err(OggChunkError::NotCanonical);
    }
    let seq = u32::from_le_bytes(page[SEQ..SEQ + 4].try_into().unwrap_or_default());
    let stored_crc = u32::from_le_bytes(page[CRC..CRC + 4].try_into().unwrap_or_default());
    page[CRC..CRC + 4].fill(0);
    if seq != expect || crc32(page) != stored_crc {
        return Err(OggChunkError::NotCanonical);
    }
    page[SEQ..SEQ + 4].fill(0);
    Ok(len)
}

/// Chunks a region of `len` bytes of Ogg pages read from `reader`, normalized, cutting only at
/// page boundaries: each cut the chunker would make moves forward to the next page start.
/// `audio` is fed the normalized bytes. Chunk offsets are relative to the region's start.
pub fn chunk_region(
    reader: &mut dyn Read,
    len: u64,
    first_seq: u32,
    chunker: &dyn Chunker,
    audio: &mut blake3::Hasher,
    emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
) -> Result<(), OggChunkError> {
    let max = chunker.max_size();
    let mut buf: Vec<u8> = Vec::with_capacity(2 * max + 2 * 65_307);
    // Page starts within `buf`, at or after `start`.
    let mut starts: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    let mut start = 0usize;
    let mut offset = 0u64;
    let mut read = 0u64;
    let mut serial = None;
    let mut seq = first_seq;
    loop {
        while read < len && buf.len() - start < max {
            starts.push_back(buf.len());
            let page = read_page(reader, len - read, seq, &mut serial, &mut buf)?;
            audio.update(&buf[buf.len() - page..]);
            read += page as u64;
            seq = seq.wrapping_add(1);
        }
        if start == buf.len() {
            return Ok(());
        }
        let cut = chunker.first_cut(&buf[start..]);
        // The first page start at or after the cut; the buffer ends on a page boundary.
        while starts.front().is_some_and(|&p| p < start + cut) {
            starts.pop_front();
        }
        let end = starts.front().copied().unwrap_or(buf.len());
        let data = &buf[start..end];
        emit(Chunk {
            offset,
            data,
            id: ChunkId::of(data),
        })?;
        offset += data.len() as u64;
        start = end;
        if start > max {
            buf.drain(..start);
            for p in starts.iter_mut() {
                *p -= start;
            }
            start = 0;
        }
    }
}

/// Largest header region chunked in normalized form (the parser bounds it at 16 MiB too).
pub const MAX_HEADER_REGION: u64 = 16 << 20;

/// The normalized form of a region of Ogg header pages: every page header (sequence number
/// and CRC zeroed) in order, then every page body in order — the header packets' bytes.
/// `split` is where the bodies begin; `pictures` the byte ranges of `METADATA_BLOCK_PICTURE`
/// values within it, where chunks are cut so that a picture is chunked on its own.
pub struct HeaderPages {
    /// The normalized bytes, as long as the region.
    pub bytes: Vec<u8>,
    /// Offset of the first body byte.
    pub split: usize,
    /// Picture values, as offsets in `bytes`.
    pub pictures: Vec<(usize, usize)>,
}

/// Normalizes a region of Ogg header pages read whole: pages of one stream, numbered from
/// `first_seq`, with right CRCs, tiling the region exactly. `None` when it is not that.
pub fn normalize_headers(raw: &[u8], first_seq: u32) -> Option<HeaderPages> {
    let mut headers = Vec::new();
    let mut bodies = Vec::new();
    let mut at = 0;
    let mut serial = None;
    let mut seq = first_seq;
    while at < raw.len() {
        let len = page_len(&raw[at..]).filter(|&l| l <= raw.len() - at)?;
        let page = &raw[at..at + len];
        let this_serial: [u8; 4] = page[14..18].try_into().ok()?;
        if *serial.get_or_insert(this_serial) != this_serial
            || page[SEQ..SEQ + 4] != seq.to_le_bytes()
        {
            return None;
        }
        let mut check = page.to_vec();
        check[CRC..CRC + 4].fill(0);
        if page[CRC..CRC + 4] != crc32(&check).to_le_bytes() {
            return None;
        }
        let header_len = HEADER + usize::from(page[26]);
        let start = headers.len();
        headers.extend_from_slice(&page[..header_len]);
        headers[start + SEQ..start + CRC + 4].fill(0);
        bodies.extend_from_slice(&page[header_len..]);
        seq = seq.wrapping_add(1);
        at += len;
    }
    let split = headers.len();
    let pictures = picture_values(&bodies)
        .into_iter()
        .map(|(a, b)| (split + a, split + b))
        .collect();
    headers.extend_from_slice(&bodies);
    Some(HeaderPages {
        bytes: headers,
        split,
        pictures,
    })
}

/// Rebuilds header pages from their normalized form; `None` when it does not parse.
pub fn denormalize_headers(normalized: &[u8], first_seq: u32) -> Option<Vec<u8>> {
    // The headers come first; each says how long its body is, and together they account for
    // the whole region.
    let mut pages = Vec::new();
    let mut at = 0;
    let mut bodies_len = 0usize;
    while at + bodies_len < normalized.len() {
        let rest = normalized.get(at..)?;
        if rest.len() < HEADER || &rest[..4] != b"OggS" {
            return None;
        }
        let header_len = HEADER + usize::from(rest[26]);
        let table = rest.get(HEADER..header_len)?;
        let body: usize = table.iter().map(|&b| usize::from(b)).sum();
        pages.push((at, header_len, body));
        at += header_len;
        bodies_len += body;
    }
    if at + bodies_len != normalized.len() {
        return None;
    }
    let mut out = Vec::with_capacity(normalized.len());
    let mut body_at = at;
    for (i, (header_at, header_len, body)) in pages.into_iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(&normalized[header_at..header_at + header_len]);
        out.extend_from_slice(&normalized[body_at..body_at + body]);
        body_at += body;
        let page = &mut out[start..];
        page[SEQ..SEQ + 4].copy_from_slice(&first_seq.wrapping_add(i as u32).to_le_bytes());
        page[CRC..CRC + 4].fill(0);
        let crc = crc32(page);
        page[CRC..CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }
    Some(out)
}

/// The `METADATA_BLOCK_PICTURE` values in header packets that begin with a Vorbis or Opus
/// comment header, as byte ranges.
fn picture_values(packets: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = if packets.starts_with(b"\x03vorbis") {
        7
    } else if packets.starts_with(b"OpusTags") {
        8
    } else {
        return out;
    };
    let u32_at = |at: &mut usize| -> Option<usize> {
        let v = packets.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_le_bytes(v.try_into().ok()?) as usize)
    };
    let Some(vendor) = u32_at(&mut at) else {
        return out;
    };
    at = at.saturating_add(vendor);
    let Some(count) = u32_at(&mut at) else {
        return out;
    };
    const KEY: &[u8] = b"METADATA_BLOCK_PICTURE=";
    for _ in 0..count {
        let Some(len) = u32_at(&mut at) else {
            break;
        };
        let Some(end) = at.checked_add(len).filter(|&e| e <= packets.len()) else {
            break;
        };
        let comment = &packets[at..end];
        if comment.len() > KEY.len() && comment[..KEY.len()].eq_ignore_ascii_case(KEY) {
            out.push((at + KEY.len(), end));
        }
        at = end;
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A page of one stream with the given sequence number and payload, CRC set.
    pub(crate) fn page(serial: u32, seq: u32, granule: u64, payload: &[u8]) -> Vec<u8> {
        let mut segments = vec![255u8; payload.len() / 255];
        segments.push((payload.len() % 255) as u8);
        let mut p = b"OggS\0\0".to_vec();
        p.extend_from_slice(&granule.to_le_bytes());
        p.extend_from_slice(&serial.to_le_bytes());
        p.extend_from_slice(&seq.to_le_bytes());
        p.extend_from_slice(&[0; 4]);
        p.push(segments.len() as u8);
        p.extend_from_slice(&segments);
        p.extend_from_slice(payload);
        let crc = crc32(&p);
        p[CRC..CRC + 4].copy_from_slice(&crc.to_le_bytes());
        p
    }

    fn pages(first_seq: u32, count: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..count {
            let payload: Vec<u8> = (0..(3000 + i * 7) as usize)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect();
            out.extend(page(77, first_seq + i, u64::from(i) * 960, &payload));
        }
        out
    }

    fn chunks(data: &[u8], first_seq: u32) -> Result<Vec<(ChunkId, usize)>, OggChunkError> {
        let mut out = Vec::new();
        let mut audio = blake3::Hasher::new();
        chunk_region(
            &mut &data[..],
            data.len() as u64,
            first_seq,
            &crate::chunk::FastCdc::default(),
            &mut audio,
            &mut |c| {
                out.push((c.id, c.data.len()));
                Ok(())
            },
        )?;
        Ok(out)
    }

    #[test]
    fn renumbered_pages_give_the_same_chunks() {
        let a = pages(3, 400);
        let b = pages(5, 400);
        assert_ne!(a, b);
        let ca = chunks(&a, 3).unwrap();
        assert!(ca.len() > 3, "{} chunks", ca.len());
        assert_eq!(ca, chunks(&b, 5).unwrap());
        assert_eq!(ca.iter().map(|c| c.1).sum::<usize>(), a.len());
    }

    #[test]
    fn denormalize_rebuilds_the_pages() {
        let original = pages(9, 50);
        let mut buf = original.clone();
        assert!(normalize(&mut buf));
        assert_ne!(buf, original);
        // In two pieces, as chunks arrive.
        let mut split = 0;
        for _ in 0..3 {
            split += page_len(&buf[split..]).unwrap();
        }
        let mut index = 0;
        let (x, y) = buf.split_at_mut(split);
        assert!(denormalize(x, 9, &mut index));
        assert!(denormalize(y, 9, &mut index));
        assert_eq!(index, 50);
        assert_eq!(buf, original);
    }

    /// Header pages carrying a Vorbis comment packet with a picture, laid out on pages of at
    /// most `page_body` bytes.
    fn header_pages(first_seq: u32, page_body: usize, title: &str) -> Vec<u8> {
        let picture = "QUJD".repeat(5000);
        let mut packet = b"\x03vorbis".to_vec();
        packet.extend_from_slice(&4u32.to_le_bytes());
        packet.extend_from_slice(b"test");
        let comments = [
            format!("TITLE={title}"),
            format!("METADATA_BLOCK_PICTURE={picture}"),
        ];
        packet.extend_from_slice(&(comments.len() as u32).to_le_bytes());
        for c in &comments {
            packet.extend_from_slice(&(c.len() as u32).to_le_bytes());
            packet.extend_from_slice(c.as_bytes());
        }
        packet.push(1);
        let mut out = Vec::new();
        for (i, body) in packet.chunks(page_body).enumerate() {
            out.extend(page(77, first_seq + i as u32, 0, body));
        }
        out
    }

    #[test]
    fn header_pages_round_trip_and_find_the_picture() {
        let raw = header_pages(1, 4000, "Dawn");
        let n = normalize_headers(&raw, 1).expect("canonical");
        assert_eq!(n.bytes.len(), raw.len());
        assert_eq!(n.pictures.len(), 1);
        let (a, b) = n.pictures[0];
        assert_eq!(&n.bytes[a..a + 8], b"QUJDQUJD");
        assert_eq!(b - a, 20_000);
        assert_eq!(denormalize_headers(&n.bytes, 1).unwrap(), raw);
        assert!(normalize_headers(&raw, 2).is_none());
    }

    #[test]
    fn repaginated_header_pages_keep_their_bodies() {
        let a = normalize_headers(&header_pages(1, 4000, "Dawn"), 1).unwrap();
        let b = normalize_headers(&header_pages(3, 9000, "Dusk"), 3).unwrap();
        let (pa, pb) = (a.pictures[0], b.pictures[0]);
        assert_eq!(a.bytes[pa.0..pa.1], b.bytes[pb.0..pb.1]);
    }

    #[test]
    fn non_canonical_regions_are_refused() {
        let mut wrong_seq = pages(3, 10);
        assert!(matches!(
            chunks(&wrong_seq, 4),
            Err(OggChunkError::NotCanonical)
        ));
        wrong_seq[100] ^= 1; // payload byte: the CRC no longer matches
        assert!(matches!(
            chunks(&wrong_seq, 3),
            Err(OggChunkError::NotCanonical)
        ));
        let mut trailing = pages(3, 10);
        trailing.extend_from_slice(b"junk");
        assert!(matches!(
            chunks(&trailing, 3),
            Err(OggChunkError::NotCanonical)
        ));
        let mut two_streams = pages(3, 2);
        two_streams.extend(page(78, 5, 0, b"other"));
        assert!(matches!(
            chunks(&two_streams, 3),
            Err(OggChunkError::NotCanonical)
        ));
    }
}
