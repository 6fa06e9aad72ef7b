//! Chunking a file region by region.
//!
//! The container's layout (`media::detect`) splits a file into tag blocks, pictures, padding
//! and the audio stream; each region is cut by the chunker on its own, starting at its own
//! first byte, so a region's chunks depend only on its bytes. A tag block that grows or
//! shrinks leaves the audio's chunks as they were, and the same picture embedded in ten
//! tracks is the same chunk ten times. An audio region and a picture are cut as the chunker's
//! rules say for them ([`Chunker::chunk_audio`], [`Chunker::chunk_picture`]: in fixed pieces for
//! a new repository). Ogg audio pages are
//! chunked in their normalized form (`oggpages`), by content at page boundaries, and the file's
//! whole hash is kept to prove the rebuilt bytes.

use std::io::{self, Read, SeekFrom};

use super::oggpages::{self, OggChunkError};
use super::{Chunker, Tee, VerifiedChunk};
use crate::id::{AudioHash, ChunkId, FileHash};
use crate::media::{self, Format, Layout, RegionKind, Source, Transform};
use crate::snapshot::{ChunkList, ChunkRef};

/// A file cut into chunks.
#[derive(Clone, Debug)]
pub struct Chunked {
    /// Its chunk list, with format and regions.
    pub list: ChunkList,
    /// Its audio hash, when the container was understood: BLAKE3 of its audio regions' bytes,
    /// or of their pieces' ids when the chunker cuts audio in fixed pieces
    /// ([`Chunker::chunk_audio`]).
    pub audio_hash: Option<AudioHash>,
    /// Its history chunks ([`keeps_history`]), each once, with their bytes (the normalized
    /// form for transformed regions, as the chunk ids name them).
    pub history: Vec<(ChunkId, Vec<u8>)>,
}

/// Whether the repository keeps the chunks of a region of this kind in a file of this format
/// (`repo::history`): tag blocks, padding and container structure of files whose container
/// was understood, which are small and which a retag replaces. Never audio or pictures, and
/// nothing of a file read as opaque (its one region is all of it).
pub fn keeps_history(format: Format, kind: RegionKind) -> bool {
    format != Format::Opaque && !matches!(kind, RegionKind::Audio | RegionKind::Picture)
}

/// Reads back the history chunks of `list` from a file that holds that content, checking each
/// against its id. An error when the file's bytes there are not those chunks (it changed).
pub fn history_chunks(
    list: &ChunkList,
    source: &mut dyn Source,
) -> io::Result<Vec<(ChunkId, Vec<u8>)>> {
    let mut out: Vec<(ChunkId, Vec<u8>)> = Vec::new();
    let len = list.size();
    for (offset, chunk) in list.with_offsets() {
        let Some(region) = list
            .regions
            .iter()
            .find(|r| r.offset <= offset && offset < r.offset + r.len)
        else {
            continue;
        };
        if !keeps_history(list.format, region.kind) || out.iter().any(|(id, _)| *id == chunk.id) {
            continue;
        }
        let data = match region.transform {
            Some(Transform::OggHeaderPages { .. }) => {
                read_transformed(source, len, offset, chunk.len as usize)?
                    .ok_or_else(|| io::Error::other("the file's header pages changed"))?
            }
            _ => {
                let mut data = vec![0u8; chunk.len as usize];
                source.seek(SeekFrom::Start(offset))?;
                source.read_exact(&mut data)?;
                data
            }
        };
        // Audio pages match once normalized, as the chunk's id names them.
        let Some(data) = VerifiedChunk::check_read(chunk.id, data) else {
            return Err(io::Error::other("the file changed"));
        };
        out.push((chunk.id, data.into_bytes()));
    }
    Ok(out)
}

/// Cuts a file of `len` bytes by its container's regions. Reads it once from the start
/// (after the container parser's few header reads); `source` must hold exactly `len` bytes.
pub fn chunk_file(source: &mut dyn Source, len: u64, chunker: &dyn Chunker) -> io::Result<Chunked> {
    chunk_file_copying(source, len, chunker, None)
}

/// [`chunk_file`], giving every byte of the file to `copy` as it is read (see [`Tee`]): the
/// header reads of the container parser are not given, the pass over the whole file from
/// offset 0 is, and, when a container turns out not canonical, the second such pass too.
pub fn chunk_file_copying<'t>(
    source: &mut dyn Source,
    len: u64,
    chunker: &dyn Chunker,
    mut copy: Option<&mut (dyn Tee + 't)>,
) -> io::Result<Chunked> {
    let layout = media::detect(source, len)?;
    match chunk_layout(source, &layout, chunker, copy.as_deref_mut()) {
        Err(OggChunkError::NotCanonical) => {
            match chunk_layout(source, &layout.without_transforms(), chunker, copy) {
                Ok(c) => Ok(c),
                Err(OggChunkError::Io(e)) => Err(e),
                Err(OggChunkError::NotCanonical) => Err(io::Error::other(
                    "untransformed regions reported as non-canonical",
                )),
            }
        }
        Err(OggChunkError::Io(e)) => Err(e),
        Ok(c) => Ok(c),
    }
}

/// Cuts a file as one opaque region, whatever it holds (for comparisons and measurements).
pub fn chunk_plain(
    source: &mut dyn Source,
    len: u64,
    chunker: &dyn Chunker,
) -> io::Result<Chunked> {
    match chunk_layout(source, &Layout::opaque(len), chunker, None) {
        Ok(c) => Ok(c),
        Err(OggChunkError::Io(e)) => Err(e),
        Err(OggChunkError::NotCanonical) => Err(io::Error::other("opaque layout refused")),
    }
}

/// Turns a content's chunks, in order, back into the file's bytes: chunks of transformed
/// regions are rebuilt (Ogg page numbers and CRCs, Ogg header pages reassembled from their
/// headers and bodies), and the whole file is checked against its hash when the content has
/// one.
pub struct Assembler<'a> {
    list: &'a ChunkList,
    /// Index of the region holding the next chunk.
    region: usize,
    /// Pages of the current transformed region rebuilt so far.
    pages: u32,
    /// The normalized bytes of an Ogg header region so far (rebuilt when complete).
    pending: Vec<u8>,
    /// Hash of the bytes so far, when the content has a file hash to match.
    hasher: Option<blake3::Hasher>,
}

/// Why chunks could not be turned into the file.
#[derive(Debug)]
pub enum AssembleError {
    /// A transformed region does not rebuild, or the file does not match its hash.
    Mismatch,
    /// Writing the bytes failed.
    Io(io::Error),
}

impl<'a> Assembler<'a> {
    /// Starts assembling `list` from its first chunk.
    pub fn new(list: &'a ChunkList) -> Self {
        Assembler {
            list,
            region: 0,
            pages: 0,
            pending: Vec::new(),
            hasher: list.file_hash.map(|_| blake3::Hasher::new()),
        }
    }

    /// Takes the chunk at file offset `offset` and hands the file's bytes it stands for to
    /// `out`, in order (those of an Ogg header region all at once, when its last chunk
    /// arrives). Chunks must come in order. Only a [`VerifiedChunk`] is taken: the bytes that
    /// reach `out` were hashed against their ids.
    pub fn chunk(
        &mut self,
        offset: u64,
        chunk: VerifiedChunk,
        out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(), AssembleError> {
        let mut bytes = chunk.into_canonical().into_bytes();
        let data = &mut bytes[..];
        while self
            .list
            .regions
            .get(self.region)
            .is_some_and(|r| offset >= r.offset + r.len)
        {
            self.region += 1;
            self.pages = 0;
        }
        let region = self.list.regions.get(self.region);
        let emit = |bytes: &[u8],
                    hasher: &mut Option<blake3::Hasher>,
                    out: &mut dyn FnMut(&[u8]) -> io::Result<()>| {
            if let Some(h) = hasher {
                h.update(bytes);
            }
            out(bytes).map_err(AssembleError::Io)
        };
        match region.and_then(|r| r.transform) {
            Some(Transform::OggPages { first_seq }) => {
                if !oggpages::denormalize(data, first_seq, &mut self.pages) {
                    return Err(AssembleError::Mismatch);
                }
                emit(data, &mut self.hasher, out)
            }
            Some(Transform::OggHeaderPages { first_seq }) => {
                self.pending.extend_from_slice(data);
                let Some(r) = region else {
                    return Err(AssembleError::Mismatch);
                };
                if offset + data.len() as u64 == r.offset + r.len {
                    let raw = oggpages::denormalize_headers(&self.pending, first_seq)
                        .ok_or(AssembleError::Mismatch)?;
                    self.pending.clear();
                    emit(&raw, &mut self.hasher, out)?;
                }
                Ok(())
            }
            None => emit(data, &mut self.hasher, out),
        }
    }

    /// Whether the bytes assembled are the file the content describes.
    pub fn finish(self) -> Result<(), AssembleError> {
        if !self.pending.is_empty() {
            return Err(AssembleError::Mismatch);
        }
        match (self.hasher, self.list.file_hash) {
            (Some(h), Some(want)) if FileHash::of_hasher(&h) != want => {
                Err(AssembleError::Mismatch)
            }
            _ => Ok(()),
        }
    }
}

/// Reads, from a file of `len` bytes, the normalized bytes of a chunk of `size` bytes at
/// `offset` that lies in a transformed Ogg header region (whose chunks are not a byte range of
/// the file). `None` when the file has no such region there.
pub fn read_transformed(
    source: &mut dyn Source,
    len: u64,
    offset: u64,
    size: usize,
) -> io::Result<Option<Vec<u8>>> {
    let layout = media::detect(source, len)?;
    let Some(r) = layout
        .regions
        .iter()
        .find(|r| r.offset <= offset && offset + size as u64 <= r.offset + r.len)
    else {
        return Ok(None);
    };
    let Some(Transform::OggHeaderPages { first_seq }) = r.transform else {
        return Ok(None);
    };
    if r.len > oggpages::MAX_HEADER_REGION {
        return Ok(None);
    }
    let mut raw = vec![0u8; r.len as usize];
    source.seek(SeekFrom::Start(r.offset))?;
    source.read_exact(&mut raw)?;
    let Some(pages) = oggpages::normalize_headers(&raw, first_seq) else {
        return Ok(None);
    };
    let start = (offset - r.offset) as usize;
    Ok(Some(pages.bytes[start..start + size].to_vec()))
}

/// Feeds every byte read through it to a hasher, if it has one, and to a copy with the offset
/// it is at.
pub(super) struct Hashing<'a, 't, R> {
    pub(super) inner: R,
    pub(super) hasher: Option<&'a mut blake3::Hasher>,
    pub(super) copy: Option<(&'a mut (dyn Tee + 't), &'a mut u64)>,
}

impl<R: Read> Read for Hashing<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        if let Some((copy, at)) = &mut self.copy {
            copy.bytes(**at, &buf[..n]);
            **at += n as u64;
        }
        Ok(n)
    }
}

fn chunk_layout<'t>(
    source: &mut dyn Source,
    layout: &Layout,
    chunker: &dyn Chunker,
    mut copy: Option<&mut (dyn Tee + 't)>,
) -> Result<Chunked, OggChunkError> {
    source.seek(SeekFrom::Start(0))?;
    // Where the next byte given to `copy` lies in the file.
    let mut at = 0u64;
    let mut file_hasher = blake3::Hasher::new();
    let mut audio_hasher = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut transformed = false;
    // The whole file's hash is recorded only for a file whose chunks are not its bytes (Ogg
    // pages rewritten): for the others, the chunks name every byte, and hashing them all a
    // second time was a third of the hashing.
    let whole_file_hash = layout.regions.iter().any(|r| r.transform.is_some());
    let mut has_audio = false;
    let mut history: Vec<(ChunkId, Vec<u8>)> = Vec::new();
    for region in &layout.regions {
        let keep = keeps_history(layout.format, region.kind);
        let mut emit = |c: super::Chunk<'_>| {
            chunks.push(ChunkRef {
                id: c.id,
                len: c.data.len() as u32,
            });
            if keep && !history.iter().any(|(id, _)| *id == c.id) {
                history.push((c.id, c.data.to_vec()));
            }
            Ok(())
        };
        let mut reader = Hashing {
            inner: (&mut *source).take(region.len),
            hasher: whole_file_hash.then_some(&mut file_hasher),
            copy: copy.as_deref_mut().map(|c| (c, &mut at)),
        };
        match region.transform {
            Some(Transform::OggPages { first_seq }) => {
                transformed = true;
                has_audio |= region.kind == RegionKind::Audio;
                oggpages::chunk_region(
                    &mut reader,
                    region.len,
                    first_seq,
                    chunker,
                    &mut audio_hasher,
                    &mut emit,
                )?;
            }
            Some(Transform::OggHeaderPages { first_seq }) => {
                transformed = true;
                if region.len > oggpages::MAX_HEADER_REGION {
                    return Err(OggChunkError::NotCanonical);
                }
                let mut raw = vec![0u8; region.len as usize];
                reader.read_exact(&mut raw)?;
                let pages = oggpages::normalize_headers(&raw, first_seq)
                    .ok_or(OggChunkError::NotCanonical)?;
                // Page headers, then the packets, with the pictures in them cut apart.
                let mut cuts = vec![0, pages.split, pages.bytes.len()];
                for &(a, b) in &pages.pictures {
                    cuts.extend([a, b]);
                }
                cuts.sort_unstable();
                cuts.dedup();
                for w in cuts.windows(2) {
                    let part = &pages.bytes[w[0]..w[1]];
                    if pages.pictures.contains(&(w[0], w[1])) {
                        chunker.chunk_picture(&mut &part[..], &mut emit)?;
                    } else {
                        chunker.chunk_stream(&mut &part[..], &mut emit)?;
                    }
                }
            }
            None if region.kind == RegionKind::Audio => {
                has_audio = true;
                expect_len(
                    chunker.chunk_audio(&mut reader, &mut emit, &mut audio_hasher)?,
                    region.len,
                )?;
            }
            None if region.kind == RegionKind::Picture => {
                expect_len(chunker.chunk_picture(&mut reader, &mut emit)?, region.len)?;
            }
            None => {
                expect_len(chunker.chunk_stream(&mut reader, &mut emit)?, region.len)?;
            }
        }
    }
    let list = ChunkList {
        format: layout.format,
        regions: layout.regions.clone(),
        chunks,
        file_hash: transformed.then(|| FileHash::of_hasher(&file_hasher)),
    };
    Ok(Chunked {
        list,
        audio_hash: has_audio.then(|| AudioHash::of_hasher(&audio_hasher)),
        history,
    })
}

/// A region shorter than its layout said means the file shrank while it was read.
fn expect_len(read: u64, len: u64) -> io::Result<()> {
    if read == len {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file ended {} bytes early", len - read.min(len)),
        ))
    }
}
