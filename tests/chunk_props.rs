//! Properties of `FastCdc::default()` that hold for any input, checked with proptest.
//!
//! For every input: the chunks concatenate back to it, offsets are contiguous from 0, every
//! chunk is at most `MAX_SIZE` and all but the last at least `MIN_SIZE`, each id is
//! `ChunkId::of` its bytes, and none of this depends on how many bytes each `read` returns.
//!
//! Inputs go up to 600 KiB (a few maximal chunks). Large inputs come from a seed rather than
//! from proptest's per-byte strategy, which would make every case (and every shrink step) build
//! hundreds of thousands of value trees; small inputs are fully arbitrary bytes.

use std::io::{self, Cursor, Read};

use musicfs::chunk::{Chunker, FastCdc, MAX_SIZE, MIN_SIZE};
use musicfs::id::ChunkId;
use proptest::collection::vec;
use proptest::prelude::*;

const MAX_INPUT: usize = 600 * 1024;

/// `len` bytes from xorshift64 (a zero seed would stay zero, so it is nudged).
fn xorshift_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// One stretch of an input built from parts.
#[derive(Debug, Clone)]
enum Segment {
    Random { seed: u64, len: usize },
    Run { byte: u8, len: usize },
    Pattern { pattern: Vec<u8>, len: usize },
}

fn segment() -> impl Strategy<Value = Segment> {
    prop_oneof![
        (any::<u64>(), 0..200 * 1024usize).prop_map(|(seed, len)| Segment::Random { seed, len }),
        (any::<u8>(), 0..200 * 1024usize).prop_map(|(byte, len)| Segment::Run { byte, len }),
        (vec(any::<u8>(), 1..64), 0..200 * 1024usize)
            .prop_map(|(pattern, len)| Segment::Pattern { pattern, len }),
    ]
}

fn build(segments: &[Segment]) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in segments {
        match segment {
            Segment::Random { seed, len } => out.extend(xorshift_bytes(*len, *seed)),
            Segment::Run { byte, len } => out.resize(out.len() + len, *byte),
            Segment::Pattern { pattern, len } => {
                out.extend(pattern.iter().cycle().take(*len));
            }
        }
    }
    out.truncate(MAX_INPUT);
    out
}

/// Random, repetitive and mixed inputs of 0..600 KiB.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Tiny and arbitrary: empty input, sub-MIN_SIZE streams.
        vec(any::<u8>(), 0..4096),
        // Incompressible, like compressed audio.
        (any::<u64>(), 0..MAX_INPUT).prop_map(|(seed, len)| xorshift_bytes(len, seed)),
        // Repetitive: a short pattern repeated, where the rolling hash may never fire.
        (vec(any::<u8>(), 1..256), 0..MAX_INPUT).prop_map(|(pattern, len)| pattern
            .iter()
            .copied()
            .cycle()
            .take(len)
            .collect()),
        // Mixed: random stretches between runs and patterns.
        vec(segment(), 1..8).prop_map(|segments| build(&segments)),
    ]
}

/// A reader that hands out the input in the sizes it is given, cycling through them.
struct Ragged<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    call: usize,
}

impl Read for Ragged<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.call % self.sizes.len()];
        self.call += 1;
        let n = want.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

struct Cut {
    offset: u64,
    data: Vec<u8>,
    id: ChunkId,
}

fn chunk_all(reader: &mut dyn Read) -> (u64, Vec<Cut>) {
    let mut cuts = Vec::new();
    let total = FastCdc::default()
        .chunk_stream(reader, &mut |chunk| {
            cuts.push(Cut {
                offset: chunk.offset,
                data: chunk.data.to_vec(),
                id: chunk.id,
            });
            Ok(())
        })
        .expect("in-memory read");
    (total, cuts)
}

proptest! {
    // Each case chunks up to 600 KiB twice; 128 cases stay within a few seconds in debug.
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn chunks_rebuild_the_input_within_bounds(data in input()) {
        let (total, cuts) = chunk_all(&mut Cursor::new(data.as_slice()));
        prop_assert_eq!(total, data.len() as u64);
        prop_assert_eq!(cuts.is_empty(), data.is_empty());

        let mut rebuilt = Vec::with_capacity(data.len());
        for (i, cut) in cuts.iter().enumerate() {
            prop_assert_eq!(cut.offset, rebuilt.len() as u64, "offsets must be contiguous");
            prop_assert!(!cut.data.is_empty(), "empty chunk at #{}", i);
            prop_assert!(cut.data.len() <= MAX_SIZE, "chunk #{} is {} bytes", i, cut.data.len());
            if i + 1 < cuts.len() {
                prop_assert!(
                    cut.data.len() >= MIN_SIZE,
                    "chunk #{} of {} is {} bytes",
                    i,
                    cuts.len(),
                    cut.data.len()
                );
            }
            prop_assert_eq!(cut.id, ChunkId::of(&cut.data));
            rebuilt.extend_from_slice(&cut.data);
        }
        prop_assert!(rebuilt == data, "chunks do not concatenate back to the input");
    }

    #[test]
    fn read_sizes_do_not_change_the_chunks(
        data in input(),
        sizes in vec(prop_oneof![1..64usize, 1..4096usize, 1..70_000usize], 1..16),
    ) {
        let (_, whole) = chunk_all(&mut Cursor::new(data.as_slice()));
        let mut ragged = Ragged { data: &data, sizes: &sizes, call: 0 };
        let (total, pieces) = chunk_all(&mut ragged);
        prop_assert_eq!(total, data.len() as u64);
        let key = |cuts: &[Cut]| -> Vec<(u64, usize, ChunkId)> {
            cuts.iter().map(|c| (c.offset, c.data.len(), c.id)).collect()
        };
        prop_assert_eq!(key(&whole), key(&pieces));
    }
}
