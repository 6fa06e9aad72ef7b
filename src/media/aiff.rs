//! AIFF and AIFF-C: a `FORM` header of type `AIFF` or `AIFC`, then chunks like RIFF's but with
//! big-endian sizes (the chunk reading is shared with [`super::riff`]).
//!
//! As with RIFF, the `FORM` size is not trusted and the chunks are walked to the end of the
//! file. Only chunk headers are read, and the 8 bytes that start an `SSND` chunk.

use super::riff::{
    audio_chunk_end, next_chunk, push_id3_chunk, push_tail, read_chunk, ByteOrder, Chunk,
};
use super::MarkList;
use super::{read_at, ParseError, ParseResult, RegionKind, Source};

/// Length of the fields that start an `SSND` chunk's data: offset and block size.
const SSND_FIELDS_LEN: u64 = 8;

/// Marks of an AIFF or AIFF-C file of `len` bytes.
///
/// Regions: Other from 0 (the `FORM` header and `COMM`, `FVER`, `MARK`, `INST`… chunks); an
/// `SSND` chunk's header, offset and block size fields are Other, and Audio starts after them
/// plus the offset field's value when that lies within the chunk (just after the fields
/// otherwise), running to the chunk's end (to the end of the file if the chunk's size runs past
/// it); `NAME`, `AUTH`, `ANNO`, `(c) ` and `COMT` are Tag; an `ID3 ` or `id3 ` chunk is Tag,
/// split as an ID3v2 tag; `FLLR`, `JUNK` and `PAD ` are Padding. From the first place where no
/// whole chunk is, the rest is Other, or an ID3v2 tag's regions if one starts there (and Tag
/// after it).
pub(super) fn parse(source: &mut dyn Source, len: u64) -> ParseResult {
    let mut head = [0u8; 12];
    if len < head.len() as u64 {
        return Err(ParseError::Malformed("FORM header cut short"));
    }
    read_at(source, 0, &mut head)?;
    if &head[..4] != b"FORM" || (&head[8..] != b"AIFF" && &head[8..] != b"AIFC") {
        return Err(ParseError::Malformed("not an AIFF or AIFF-C file"));
    }
    let mut marks = MarkList::new();
    marks.push(0, RegionKind::Other)?;
    let mut pos = head.len() as u64;
    while pos < len {
        let Some(chunk) = read_chunk(source, pos, len, ByteOrder::Big)? else {
            push_tail(source, &mut marks, pos, len)?;
            break;
        };
        if &chunk.id == b"SSND" {
            let end = audio_chunk_end(source, &chunk, len, ByteOrder::Big)?;
            marks.push(chunk.offset, RegionKind::Other)?;
            if let Some(audio) = sound_start(source, &chunk, end)? {
                marks.push(audio, RegionKind::Audio)?;
            }
            pos = if end == len {
                len
            } else {
                next_chunk(source, &chunk, len, ByteOrder::Big)?
            };
            continue;
        }
        if chunk.end() > len {
            marks.push(chunk.offset, RegionKind::Other)?;
            break;
        }
        match &chunk.id {
            b"NAME" | b"AUTH" | b"ANNO" | b"(c) " | b"COMT" => {
                marks.push(chunk.offset, RegionKind::Tag)?
            }
            b"ID3 " | b"id3 " => push_id3_chunk(source, &mut marks, &chunk)?,
            b"FLLR" | b"JUNK" | b"PAD " => marks.push(chunk.offset, RegionKind::Padding)?,
            _ => marks.push(chunk.offset, RegionKind::Other)?,
        }
        pos = next_chunk(source, &chunk, len, ByteOrder::Big)?;
    }
    Ok(marks.finish(len))
}

/// Where the sound data of the `SSND` chunk whose samples end at `end` starts: after the
/// offset and block size fields, plus the offset when it stays within the chunk. `None` when
/// the chunk is too short to hold the fields.
fn sound_start(
    source: &mut dyn Source,
    chunk: &Chunk,
    end: u64,
) -> Result<Option<u64>, ParseError> {
    let Some(fields_end) = chunk
        .body()
        .checked_add(SSND_FIELDS_LEN)
        .filter(|&f| f <= end)
    else {
        return Ok(None);
    };
    let mut fields = [0u8; SSND_FIELDS_LEN as usize];
    read_at(source, chunk.body(), &mut fields)?;
    let offset = u64::from(u32::from_be_bytes([
        fields[0], fields[1], fields[2], fields[3],
    ]));
    Ok(Some(
        fields_end
            .checked_add(offset)
            .filter(|&start| start <= end)
            .unwrap_or(fields_end),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::mp3::tests::{
        assert_survives_damage, bytes_of, damaged, detected, fixture, frame, image, parsed,
        picture_body, spans, tag, text,
    };
    use super::super::{Format, Layout};
    use super::*;
    use RegionKind::{Audio, Other, Picture, Tag};

    /// A big-endian chunk, padded to even.
    fn chunk(id: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(data.len() as u32).to_be_bytes());
        c.extend_from_slice(data);
        if data.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    /// A FORM of `form_type` holding `chunks`, with a right size.
    fn form(form_type: &[u8; 4], chunks: &[Vec<u8>]) -> Vec<u8> {
        let body = chunks.concat();
        let mut f = b"FORM".to_vec();
        f.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        f.extend_from_slice(form_type);
        f.extend(body);
        f
    }

    /// COMM for 1 channel, `frames` 16-bit frames at 44.1 kHz (80-bit float rate).
    fn comm(frames: u32) -> Vec<u8> {
        let mut data = vec![0, 1];
        data.extend_from_slice(&frames.to_be_bytes());
        data.extend_from_slice(&[0, 16, 0x40, 0x0E, 0xAC, 0x44, 0, 0, 0, 0, 0, 0]);
        chunk(b"COMM", &data)
    }

    /// SSND with `offset` bytes before `samples`.
    fn ssnd(offset: u32, samples: &[u8]) -> Vec<u8> {
        let mut data = offset.to_be_bytes().to_vec();
        data.extend_from_slice(&[0; 4]); // block size
        data.resize(data.len() + offset as usize, 0xEE);
        data.extend_from_slice(samples);
        chunk(b"SSND", &data)
    }

    fn samples(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13) as u8).collect()
    }

    #[test]
    fn aiff_regions() {
        let img = image(30, 80);
        let id3 = tag(
            4,
            0,
            &[
                text(4, b"TIT2", "Tone"),
                frame(4, b"APIC", 0, &picture_body(4, 0, b"\0", &img)),
            ]
            .concat(),
            0,
        );
        let comm = comm(500);
        let name = chunk(b"NAME", b"Tone");
        let sound = ssnd(4, &samples(1000));
        let file = form(
            b"AIFF",
            &[
                comm.clone(),
                name.clone(),
                sound.clone(),
                chunk(b"ID3 ", &id3),
            ],
        );
        let layout = detected(&file);
        assert_eq!(layout.format, Format::Aiff);
        let name_at = 12 + comm.len() as u64;
        let sound_at = name_at + name.len() as u64;
        let audio_at = sound_at + 16 + 4;
        let id3_at = sound_at + sound.len() as u64;
        let image_at = id3_at + 8 + id3.len() as u64 - img.len() as u64;
        assert_eq!(
            spans(&layout),
            vec![
                (Other, 0, name_at),
                (Tag, name_at, name.len() as u64),
                (Other, sound_at, 20),
                (Audio, audio_at, 1000),
                (Tag, id3_at, image_at - id3_at),
                (Picture, image_at, img.len() as u64),
            ]
        );
        assert_eq!(bytes_of(&file, &layout, Picture), vec![&img[..]]);
    }

    #[test]
    fn aifc_with_annotations() {
        let file = form(
            b"AIFC",
            &[
                chunk(b"FVER", &0xA280_5140u32.to_be_bytes()),
                comm(10),
                chunk(b"ANNO", b"made in a test"),
                chunk(b"(c) ", b"nobody"),
                ssnd(0, &samples(20)),
                chunk(b"AUTH", b"me"),
            ],
        );
        let kinds: Vec<_> = detected(&file).regions.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [Other, Tag, Other, Audio, Tag]);
    }

    #[test]
    fn ssnd_offset_past_its_chunk_is_ignored() {
        let mut file = form(b"AIFF", &[comm(10), ssnd(0, &samples(20))]);
        let sound_at = 12 + 26;
        file[sound_at + 8..sound_at + 12].copy_from_slice(&1000u32.to_be_bytes());
        assert_eq!(
            spans(&detected(&file)),
            vec![
                (Other, 0, sound_at as u64 + 16),
                (Audio, sound_at as u64 + 16, 20)
            ]
        );
    }

    #[test]
    fn ssnd_past_the_end_runs_to_the_end() {
        let mut file = form(b"AIFF", &[comm(10), ssnd(0, &samples(20))]);
        let sound_at = 12 + 26;
        file[sound_at + 4..sound_at + 8].copy_from_slice(&u32::MAX.to_be_bytes());
        file[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            spans(&detected(&file)),
            vec![
                (Other, 0, sound_at as u64 + 16),
                (Audio, sound_at as u64 + 16, 20)
            ]
        );
        // Too short for its offset and block size fields: no audio.
        let file = form(b"AIFF", &[comm(10), chunk(b"SSND", &[0; 6])]);
        assert_eq!(spans(&detected(&file)), vec![(Other, 0, file.len() as u64)]);
    }

    #[test]
    fn not_aiff_is_opaque() {
        let file = form(b"8SVX", &[comm(10)]);
        assert_eq!(
            parsed(Format::Aiff, &file),
            Layout::opaque(file.len() as u64)
        );
        assert_eq!(detected(&file), Layout::opaque(file.len() as u64));
    }

    #[test]
    fn damaged_fixtures() {
        let cover = fixture("Aurora Tones/First Light/cover.jpg");
        for (name, bytes) in damaged("aif") {
            let layout = detected(&bytes);
            parsed(Format::Aiff, &bytes);
            let len = bytes.len() as u64;
            let pictures = bytes_of(&bytes, &layout, Picture);
            let audio: Vec<_> = spans(&layout)
                .into_iter()
                .filter(|s| s.0 == Audio)
                .collect();
            match name.as_str() {
                // The ID3 chunk holds 01 Dawn.mp3's tag and its cover JPEG.
                "aiff-valid.aiff" | "aiff-form-size-zero.aiff" | "aiff-ssnd-offset-huge.aiff" => {
                    assert_eq!(pictures, vec![&cover[..]], "{name}");
                    assert_eq!(audio, vec![(Audio, 126, 4000)], "{name}");
                }
                "aifc-valid.aifc" => {
                    assert_eq!(pictures, vec![&cover[..]], "{name}");
                    assert_eq!(audio, vec![(Audio, 158, 4000)], "{name}");
                }
                "aiff-ssnd-size-huge.aiff" => assert_eq!(audio, vec![(Audio, 126, len - 126)]),
                "aifc-truncated-in-ssnd.aifc" => assert_eq!(audio, vec![(Audio, 158, len - 158)]),
                "aiff-id3-chunk-past-eof.aiff" | "aiff-id3-size-past-chunk.aiff" => {
                    assert!(pictures.is_empty(), "{name}");
                    assert_eq!(audio, vec![(Audio, 126, 4000)], "{name}");
                }
                "aiff-comm-size-zero.aiff" | "aiff-truncated-header.aiff" => {
                    assert_eq!(spans(&layout), vec![(Other, 0, len)], "{name}")
                }
                other => panic!("no expectation for {other}"),
            }
        }
    }

    #[test]
    fn in_memory_cases_survive_damage() {
        let id3 = tag(
            3,
            0,
            &frame(3, b"APIC", 0, &picture_body(3, 0, b"\0", &image(31, 41))),
            3,
        );
        let file = form(
            b"AIFC",
            &[
                chunk(b"FVER", &[0; 4]),
                comm(40),
                chunk(b"id3 ", &id3),
                ssnd(2, &samples(81)),
                chunk(b"COMT", &[0; 9]),
            ],
        );
        assert_survives_damage(Format::Aiff, &file);
    }
}
