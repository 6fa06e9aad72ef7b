//! zstd at its default level with a context kept per thread: what the repository's history
//! packs and the agent's packed frames compress with. Making a context costs more than
//! compressing a small tag chunk with it; a kept one compresses exactly as a new one does.

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
}
