//! FastCDC (the 2020 variant from the `fastcdc` crate) over a stream, and audio and pictures in
//! fixed pieces.
//!
//! The crate's own `StreamCDC` copies its whole buffer down after every chunk and allocates a
//! `Vec` per chunk; we keep a buffer several chunks long, cut with the crate's `cut_gear` over
//! it and only move the unconsumed tail when it runs short, so the bytes are touched once by the
//! gear hash and once by BLAKE3.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{self, Read};

use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks, Normalization};

use super::regions::Hashing;
use super::{Chunk, Chunker};
use crate::id::ChunkId;

/// Smallest chunk, except the last of a stream.
pub const MIN_SIZE: usize = 16 * 1024;
/// Target average chunk size. See `docs/chunking.md` for the measurement behind it.
pub const AVG_SIZE: usize = 64 * 1024;
/// Largest chunk.
pub const MAX_SIZE: usize = 256 * 1024;

/// Read buffer: up to 4 maximal chunks, so a tail moved down (shorter than a chunk) is small
/// next to the data cut, and a thread can keep it from one stream to the next.
const BUFFER_SIZE: usize = 4 * MAX_SIZE;
/// The buffer a stream starts with; it doubles while the stream fills it, up to its limit.
/// Most streams are a tag block or a picture of a few KiB: zeroing the whole buffer for each
/// of them cost more than chunking them.
const FIRST_BUFFER: usize = 64 * 1024;
/// The most read into the buffer at once: what was read is cut and hashed while it is still
/// in the CPU's cache, whatever the buffer's size.
const PIECE: usize = MAX_SIZE;
/// The least room a read is given: smaller reads would not go straight to the buffer through a
/// local file's read-ahead (64 KiB).
const MIN_PIECE: usize = 64 * 1024;
/// The largest buffer a thread keeps for its next stream (that of the repository's chunker).
/// Kept, a buffer's pages stay mapped and in the cache from one small file to the next; fresh,
/// each file paid its allocation, zeroing and page faults. A chunker with larger chunks (a
/// measurement's) lets its buffer go.
const KEEP: usize = BUFFER_SIZE;

thread_local! {
    /// The buffer of this thread's last stream, for its next one.
    static SPARE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Which regions read as bytes a chunker cuts in fixed pieces rather than by content (Ogg
/// pages are cut by content at page boundaries whatever the rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixedCuts {
    /// None: every region by content (rules 4, repositories created before rules 5).
    None,
    /// Audio regions, in pieces of the average chunk size from the region's first byte, the
    /// last one shorter (rules 5). An audio stream is rewritten whole or not at all by the
    /// edits a library sees (tags and pictures are regions of their own); cutting it needs no
    /// rolling hash. The file's audio hash takes the pieces' ids, not their bytes a second time.
    Audio,
    /// Audio regions as [`FixedCuts::Audio`], and embedded pictures the same way (rules 6). A
    /// picture too is replaced whole or not at all, and the same picture embedded in many
    /// files is the same region there: boundaries by content buy nothing for it, and the
    /// rolling hash over every cover of a library was the largest cost of a first scan after
    /// hashing itself.
    AudioAndPictures,
}

/// The repository's chunker: FastCDC 2020, normalization level 1, the crate's default gear;
/// the regions its [`FixedCuts`] name in fixed pieces.
pub struct FastCdc {
    fixed: FixedCuts,
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
}

impl Default for FastCdc {
    /// The chunker of a new repository: the default sizes, audio and pictures in fixed pieces.
    fn default() -> Self {
        Self::with_sizes(MIN_SIZE, AVG_SIZE, MAX_SIZE)
    }
}

impl FastCdc {
    /// A chunker with other sizes (a repository's `[chunker]`, or a measurement's), audio in
    /// fixed pieces of `avg` bytes. Sizes must be even, with 64 ≤ min ≤ avg ≤ max ≤ 16 MiB.
    pub fn with_sizes(min: usize, avg: usize, max: usize) -> Self {
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(0);
        Self {
            fixed: FixedCuts::AudioAndPictures,
            min,
            avg,
            max,
            mask_s,
            mask_l,
            gear,
            gear_ls,
        }
    }

    /// The same chunker, cutting in fixed pieces the regions `fixed` names.
    pub fn with_fixed(self, fixed: FixedCuts) -> Self {
        Self { fixed, ..self }
    }

    /// Cuts `reader` in pieces of the average chunk size from its first byte, the last one
    /// shorter, each piece's id given to `audio` when there is one.
    fn chunk_fixed(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
        audio: Option<&mut blake3::Hasher>,
    ) -> io::Result<u64> {
        let mut audio = audio;
        let mut emit = |chunk: Chunk<'_>| {
            if let Some(audio) = audio.as_deref_mut() {
                audio.update(chunk.id.as_bytes());
            }
            emit(chunk)
        };
        self.with_buffer(|buf| {
            self.chunk_into(buf, reader, &mut emit, &|data| data.len().min(self.avg))
        })
    }

    fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len
    }
}

impl Chunker for FastCdc {
    fn first_cut(&self, data: &[u8]) -> usize {
        self.cut(data).max(1).min(data.len())
    }

    fn max_size(&self) -> usize {
        self.max
    }

    fn chunk_stream(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
    ) -> io::Result<u64> {
        self.with_buffer(|buf| self.chunk_into(buf, reader, emit, &|data| self.cut(data)))
    }

    fn chunk_audio(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
        audio: &mut blake3::Hasher,
    ) -> io::Result<u64> {
        match self.fixed {
            FixedCuts::None => {
                let mut hashed = Hashing {
                    inner: reader,
                    hasher: Some(audio),
                    copy: None,
                };
                self.chunk_stream(&mut hashed, emit)
            }
            FixedCuts::Audio | FixedCuts::AudioAndPictures => {
                self.chunk_fixed(reader, emit, Some(audio))
            }
        }
    }

    fn chunk_picture(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
    ) -> io::Result<u64> {
        match self.fixed {
            FixedCuts::None | FixedCuts::Audio => self.chunk_stream(reader, emit),
            FixedCuts::AudioAndPictures => self.chunk_fixed(reader, emit, None),
        }
    }

    fn rules(&self) -> u32 {
        match self.fixed {
            FixedCuts::None => super::RULES_CONTENT_DEFINED,
            FixedCuts::Audio => super::RULES_FIXED_AUDIO,
            FixedCuts::AudioAndPictures => super::RULES_FIXED_PICTURES,
        }
    }
}

impl FastCdc {
    /// Runs `work` with this thread's spare buffer, and keeps the buffer for the next stream.
    fn with_buffer(&self, work: impl FnOnce(&mut Vec<u8>) -> io::Result<u64>) -> io::Result<u64> {
        // Taken out of the thread's slot, not borrowed: a stream cut from inside `emit` (none
        // is today) would find the slot empty and use a buffer of its own.
        let mut buf = SPARE.with(|spare| spare.take());
        let result = work(&mut buf);
        if buf.capacity() <= KEEP {
            SPARE.with(|spare| spare.replace(buf));
        }
        result
    }

    /// Cuts `reader` through `buf`, which it grows as the stream needs: each chunk is the
    /// first `cut` bytes of what is held (at least one, at most all of it), given at least a
    /// maximal chunk or the stream's end.
    fn chunk_into(
        &self,
        buf: &mut Vec<u8>,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
        cut: &dyn Fn(&[u8]) -> usize,
    ) -> io::Result<u64> {
        let limit = BUFFER_SIZE.max(2 * self.max);
        if buf.len() < FIRST_BUFFER.min(limit) {
            buf.resize(FIRST_BUFFER.min(limit), 0);
        }
        let mut start = 0; // first unconsumed byte
        let mut end = 0; // one past the last byte read
        let mut offset = 0u64; // stream offset of buf[start]
        let mut eof = false;
        loop {
            // Read until a maximal chunk is held or the stream ends, a piece at a time.
            while !eof && end - start < self.max {
                if buf.len() - end < MIN_PIECE.min(buf.len()) {
                    // No room for a piece: grow up to the limit, then move the unconsumed
                    // tail (shorter than a chunk) down.
                    if buf.len() < limit {
                        let len = (buf.len() * 2).min(limit);
                        buf.resize(len, 0);
                    } else {
                        buf.copy_within(start..end, 0);
                        end -= start;
                        start = 0;
                    }
                }
                let piece = (buf.len() - end).min(PIECE);
                match reader.read(&mut buf[end..end + piece]) {
                    Ok(0) => eof = true,
                    Ok(n) => end += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if start == end {
                return Ok(offset);
            }
            while end - start >= self.max || (eof && start < end) {
                let len = cut(&buf[start..end]).max(1).min(end - start);
                let data = &buf[start..start + len];
                emit(Chunk {
                    offset,
                    data,
                    id: ChunkId::of(data),
                })?;
                start += len;
                offset += len as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per call, to prove read sizes don't matter.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn cuts(data: &[u8], step: usize) -> Vec<(u64, usize, ChunkId)> {
        let mut out = Vec::new();
        let mut reader = Trickle { data, step };
        let total = FastCdc::default()
            .chunk_stream(&mut reader, &mut |c| {
                out.push((c.offset, c.data.len(), c.id));
                Ok(())
            })
            .expect("in-memory read");
        assert_eq!(total, data.len() as u64);
        out
    }

    #[test]
    fn boundaries_do_not_depend_on_read_sizes() {
        let data = pseudo_random(3 * 1024 * 1024 + 17, 7);
        let a = cuts(&data, usize::MAX);
        assert_eq!(a, cuts(&data, 4093));
        assert_eq!(a, cuts(&data, MAX_SIZE + 1));
        let mut next = 0;
        for (off, len, _) in &a {
            assert_eq!(*off, next);
            assert!(*len <= MAX_SIZE);
            next += *len as u64;
        }
    }

    #[test]
    fn agrees_with_the_crates_in_memory_chunker() {
        let data = pseudo_random(2 * 1024 * 1024, 99);
        let ours: Vec<usize> = cuts(&data, usize::MAX).iter().map(|c| c.1).collect();
        let theirs: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, MIN_SIZE, AVG_SIZE, MAX_SIZE)
            .map(|c| c.length)
            .collect();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn a_stream_cut_after_a_longer_one_on_the_same_thread_gets_only_its_own_bytes() {
        // The thread keeps its buffer, holding the long stream's bytes past the short one's end.
        let long = pseudo_random(3 * 1024 * 1024 + 5, 11);
        let short = pseudo_random(40 * 1024 + 3, 12);
        let medium = pseudo_random(700 * 1024 + 1, 13);
        let expected = |data: &[u8]| -> Vec<usize> {
            fastcdc::v2020::FastCDC::new(data, MIN_SIZE, AVG_SIZE, MAX_SIZE)
                .map(|c| c.length)
                .collect()
        };
        for round in 0..3 {
            for (data, step) in [
                (&long, usize::MAX),
                (&short, 4093),
                (&medium, 1000),
                (&short, 7),
            ] {
                let got = cuts(data, step);
                let lens: Vec<usize> = got.iter().map(|c| c.1).collect();
                assert_eq!(lens, expected(data), "round {round}, {} bytes", data.len());
                let mut at = 0;
                for (off, len, id) in got {
                    assert_eq!(id, ChunkId::of(&data[at..at + len]));
                    assert_eq!(off, at as u64);
                    at += len;
                }
            }
        }
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(cuts(&[], 1).is_empty());
    }
}
