//! zstd at its default level with a context kept per thread: what the repository's history
//! packs and the agent's packed frames compress with. Making a context costs more than
//! compressing a small tag chunk with it; a kept one compresses exactly as a new one does. A
//! history chunk too short to shrink is not compressed at all, but framed as zstd stores what
//! it cannot compress ([`compress_chunk`]): every reader, this release's or an earlier one's,
//! reads it back with zstd.

use std::cell::RefCell;
use std::io;

/// zstd's level: its default, fast and good on tag text, padding and names.
pub const LEVEL: i32 = 3;

thread_local! {
    static COMPRESSOR: RefCell<Option<(zstd::bulk::Compressor<'static>, Vec<u8>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// `data` compressed at [`LEVEL`], in a vector of exactly its length. (zstd's own `compress`
/// returns its worst-case buffer, about the input's size: a caller that keeps many compressed
/// chunks would hold their raw size.)
pub fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|kept| {
        let mut kept = kept.borrow_mut();
        let (compressor, scratch) = match &mut *kept {
            Some(kept) => kept,
            None => kept.insert((zstd::bulk::Compressor::new(LEVEL)?, Vec::new())),
        };
        scratch.clear();
        scratch.reserve(zstd::zstd_safe::compress_bound(data.len()));
        compressor.compress_to_buffer(data, scratch)?;
        let packed = scratch.as_slice().to_vec();
        // A large input's worst case is not kept past its use.
        if scratch.capacity() > 1 << 20 {
            *scratch = Vec::new();
        }
        Ok(packed)
    })
}

/// Chunks shorter than this are kept in a frame of one raw block ([`compress_chunk`]).
pub const STORED_BELOW: usize = 256;

/// A history chunk as its pack keeps it: `data` compressed at [`LEVEL`] or, shorter than
/// [`STORED_BELOW`], as it is in a frame of one raw block (RFC 8878, 3.1.1), which any zstd
/// decoder reads back and which takes no tables to make. A frame and a block header cost 9
/// bytes, and zstd's own tables about as much: a short tag barely shrinks, and building those
/// tables was most of the time spent compressing it. The 137-byte tag chunks of the
/// benchmarks' library (its text frames and the picture frame's header) came out of level 3 at
/// 130 bytes on average, after 3–5 µs each; kept as they are, they take 146
/// (`docs/benchmarks.md`, "Short history chunks kept as they are").
pub fn compress_chunk(data: &[u8]) -> io::Result<Vec<u8>> {
    if data.len() >= STORED_BELOW {
        return compress(data);
    }
    // The magic number, a frame header of 2 bytes, a block header of 3.
    let mut frame = Vec::with_capacity(4 + 2 + 3 + data.len());
    frame.extend_from_slice(&zstd::zstd_safe::MAGICNUMBER.to_le_bytes());
    // Frame header descriptor: single segment (bit 5), so no window descriptor and the
    // content size in one byte (size flag 0); no checksum, no dictionary.
    frame.push(0b0010_0000);
    frame.push(data.len() as u8);
    // Block header, 3 bytes little-endian: last block (bit 0), raw (type 0, bits 1–2), size
    // (bits 3–23).
    let header = 1u32 | ((data.len() as u32) << 3);
    frame.extend_from_slice(&header.to_le_bytes()[..3]);
    frame.extend_from_slice(data);
    Ok(frame)
}

/// A zstd frame decompressed into at most `capacity` bytes.
pub fn decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|kept| {
        let mut kept = kept.borrow_mut();
        let decompressor = match &mut *kept {
            Some(decompressor) => decompressor,
            None => kept.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(data, capacity)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_is_exactly_as_long_as_the_frame_and_decompresses_to_the_input() {
        for input in [
            Vec::new(),
            b"TIT2 a title".repeat(40),
            vec![0u8; 64 << 10],
            (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ] {
            let packed = compress(&input).unwrap();
            assert_eq!(packed.capacity(), packed.len());
            assert_eq!(packed, zstd::bulk::compress(&input, LEVEL).unwrap());
            assert_eq!(decompress(&packed, input.len()).unwrap(), input);
        }
    }

    #[test]
    fn a_short_chunk_is_kept_in_a_raw_frame_that_zstd_reads_back() {
        for len in 0..STORED_BELOW {
            let input: Vec<u8> = (0..len).map(|i| b"TIT2 Meadow"[i % 11]).collect();
            let packed = compress_chunk(&input).unwrap();
            assert_eq!(packed.len(), len + 9, "{len} bytes");
            assert_eq!(&packed[9..], input.as_slice());
            assert_eq!(zstd::bulk::decompress(&packed, len).unwrap(), input);
            assert_eq!(decompress(&packed, len).unwrap(), input);
            // A reader that asks for more room still gets exactly the chunk.
            assert_eq!(decompress(&packed, len + 100).unwrap(), input);
        }
    }

    #[test]
    fn a_chunk_of_the_threshold_or_more_is_compressed() {
        let input = b"TIT2 a title".repeat(22);
        assert!(input.len() >= STORED_BELOW);
        let packed = compress_chunk(&input).unwrap();
        assert_eq!(packed, compress(&input).unwrap());
        assert!(packed.len() < input.len());
    }
}
