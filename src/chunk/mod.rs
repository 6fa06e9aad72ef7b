//! Cutting byte streams into chunks: content-defined, and audio and pictures in fixed pieces.
//!
//! A [`Chunker`] turns a stream into a sequence of [`Chunk`]s, each named by the BLAKE3 of its
//! bytes. Boundaries depend only on content, so an insertion moves the boundaries near it and
//! nowhere else. An audio stream or an embedded picture, which an edit rewrites whole or not at
//! all, is cut in pieces of a fixed size under the rules of a new repository
//! ([`RULES_FIXED_PICTURES`]): it saves the rolling hash over most of a library's bytes. The parameters are part of the repository
//! format: a change silently breaks deduplication against every existing repository, so the
//! golden tests in `tests/chunk_golden.rs` and `tests/region_golden.rs` pin them. This module never touches the repository or the disk.

mod fastcdc;
pub mod oggpages;
mod regions;
mod verified;

pub use self::fastcdc::{FastCdc, FixedCuts, AVG_SIZE, MAX_SIZE, MIN_SIZE};
pub use self::regions::{
    chunk_file, chunk_file_copying, chunk_plain, history_chunks, keeps_history, read_transformed,
    AssembleError, Assembler, Chunked,
};
pub use self::verified::{Form, VerifiedChunk};

/// The version of the rules that cut files into chunks and regions and name them: two
/// musicfs whose rules differ name the same bytes differently, so the agent's handshake
/// compares the rules of the client's repository with the server's (`docs/protocol.md`).
/// Each repository has its rules, from `repo.toml`'s `[chunker] algorithm` ([`Chunker::rules`]):
/// these are the rules of a new repository. A change to the rules adds a number and an
/// algorithm name; a repository keeps the rules it was created with.
pub const CHUNKING_VERSION: u32 = RULES_FIXED_PICTURES;

/// Rules 4: every region cut by FastCDC, audio too (`fastcdc-2020`, every repository created
/// before rules 5). Up to repository format 4 this number was the repository format itself; a
/// peer of format 4, which sends and compares its repository format, matches.
pub const RULES_CONTENT_DEFINED: u32 = 4;

/// Rules 5: as rules 4, except that an audio region read as bytes is cut into pieces of the
/// average chunk size from its first byte, and the audio hash takes those pieces' ids instead
/// of their bytes (`fastcdc-2020-fixed-audio`).
pub const RULES_FIXED_AUDIO: u32 = 5;

/// Rules 6: as rules 5, except that an embedded picture read as bytes (a picture region, or a
/// picture inside Ogg header pages) is cut into pieces of the average chunk size from its
/// first byte too (`fastcdc-2020-fixed-pictures`).
pub const RULES_FIXED_PICTURES: u32 = 6;

use std::io::{self, Read};

use crate::id::ChunkId;

/// One chunk as it leaves the chunker: where it starts in the stream, its bytes and their id.
pub struct Chunk<'a> {
    /// Offset of the first byte within the stream.
    pub offset: u64,
    /// The chunk's bytes; valid only during the callback.
    pub data: &'a [u8],
    /// BLAKE3 of `data`.
    pub id: ChunkId,
}

/// Where the bytes of a file being cut go as well, in the same pass: a copy written while the
/// file is read ([`chunk_file_copying`]).
///
/// Contract: [`Tee::bytes`] is given the file's bytes in the order they are read, from the
/// very buffer the chunks are then cut and hashed from (so a copy holds exactly the bytes its
/// chunk ids name), each with its offset in the file. A pass that starts over (a container
/// read again as plain bytes) starts again from offset 0: a tee that cannot rewind notes that
/// and gives up its copy. A tee keeps its own failures (a full disk): the cutting goes on.
pub trait Tee {
    /// The file's bytes at `offset`.
    fn bytes(&mut self, offset: u64, data: &[u8]);
}

/// Splits a stream into content-defined chunks.
///
/// Contract: `chunk_stream` reads `reader` to its end exactly once, calls `emit` for every
/// chunk in stream order with consecutive offsets starting at 0, and returns the number of
/// bytes read. The same bytes always give the same chunks, whatever the read sizes the reader
/// happens to return. Memory use is bounded by the chunker's buffer, never by the stream's size.
/// An error from `reader` or `emit` stops the work and is returned unchanged.
pub trait Chunker: Send + Sync {
    /// Cuts the whole of `reader` into chunks.
    fn chunk_stream(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
    ) -> io::Result<u64>;

    /// The length of the first chunk of `data`, which is either at least
    /// [`Chunker::max_size`] bytes long or the end of the stream.
    fn first_cut(&self, data: &[u8]) -> usize;

    /// The largest chunk the chunker makes.
    fn max_size(&self) -> usize;

    /// Cuts the whole of `reader`, an audio region read as bytes, into chunks, under the same
    /// contract as [`Chunker::chunk_stream`], and adds the region to the file's audio hash
    /// `audio`: by content, its bytes; in pieces of a fixed size, the pieces' ids, which name
    /// the same bytes without hashing them a second time.
    fn chunk_audio(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
        audio: &mut blake3::Hasher,
    ) -> io::Result<u64>;

    /// Cuts the whole of `reader`, an embedded picture read as bytes, under the same contract
    /// as [`Chunker::chunk_stream`]: by content under rules 4 and 5, in pieces of a fixed size
    /// under rules 6.
    fn chunk_picture(
        &self,
        reader: &mut dyn Read,
        emit: &mut dyn FnMut(Chunk<'_>) -> io::Result<()>,
    ) -> io::Result<u64>;

    /// The version of the rules it cuts by ([`CHUNKING_VERSION`]).
    fn rules(&self) -> u32;
}
