//! What musicfs sees in one file: its container, regions, chunks, audio hash and tags.
//!
//! The same reading a scan does, without a repository, for people and scripts that want to
//! know why a file deduplicates (or not) the way it does.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::chunk::{chunk_file, Chunker};
use crate::error::{Error, Result};
use crate::id::{AudioHash, ChunkId};
use crate::media::tags::{self, MediaInfo};
use crate::media::{Format, Transform};

/// One region with its chunks.
#[derive(Clone, Debug, Serialize)]
pub struct RegionReport {
    /// `tag`, `picture`, `padding`, `audio` or `other`.
    pub kind: &'static str,
    /// Offset in the file.
    pub offset: u64,
    /// Length (`bytes` in JSON, as every size).
    #[serde(rename = "bytes")]
    pub len: u64,
    /// `ogg-pages` when the region is chunked as normalized Ogg pages.
    pub transform: Option<&'static str>,
    /// Its chunks, in order.
    pub chunks: Vec<ChunkReport>,
}

/// One chunk.
#[derive(Clone, Debug, Serialize)]
pub struct ChunkReport {
    /// BLAKE3 of its bytes (for transformed regions, of the normalized bytes).
    pub id: ChunkId,
    /// Length (`bytes` in JSON).
    #[serde(rename = "bytes")]
    pub len: u32,
}

/// A file as musicfs reads it.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// Container format.
    pub format: &'static str,
    /// Size in bytes (`bytes` in JSON).
    #[serde(rename = "bytes")]
    pub size: u64,
    /// BLAKE3 of the audio stream.
    pub audio_hash: Option<AudioHash>,
    /// Regions with their chunks.
    pub regions: Vec<RegionReport>,
    /// Tags and audio properties, when they could be read.
    pub tags: Option<MediaInfo>,
    /// Why a file that announces a container was read as opaque (truncated, malformed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Reads and describes the file at `path`.
pub fn inspect(path: &Path, chunker: &dyn Chunker) -> Result<FileReport> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let chunked = chunk_file(&mut file, size, chunker).map_err(|e| Error::io(path, e))?;
    let list = chunked.list;
    let problem = crate::media::diagnose(&mut file, size).map_err(|e| Error::io(path, e))?;
    let tags = if list.format == Format::Opaque {
        None
    } else {
        tags::read(&mut file)
    };
    let mut chunks = list.with_offsets().peekable();
    let mut regions = Vec::with_capacity(list.regions.len());
    for r in &list.regions {
        let mut report = RegionReport {
            kind: r.kind.name(),
            offset: r.offset,
            len: r.len,
            transform: r.transform.map(|t| match t {
                Transform::OggPages { .. } => "ogg-pages",
                Transform::OggHeaderPages { .. } => "ogg-header-pages",
            }),
            chunks: Vec::new(),
        };
        while let Some((_, c)) = chunks.next_if(|(offset, _)| *offset < r.offset + r.len) {
            report.chunks.push(ChunkReport {
                id: c.id,
                len: c.len,
            });
        }
        regions.push(report);
    }
    Ok(FileReport {
        format: list.format.name(),
        size,
        audio_hash: chunked.audio_hash,
        regions,
        tags,
        problem,
    })
}
