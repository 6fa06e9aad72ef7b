//! Where a chunk's bytes can be read, recorded per content (format 5).
//!
//! A file's chunk list (`contents`) already says at which offset of the file each of its
//! chunks lies. The index adds two small maps to find the files: `chunk_contents`, which chunk
//! lists hold a chunk, written once when a chunk list is first stored, whatever the number of
//! files and origins that hold it; and `content_files`, which files of an origin hold a chunk
//! list, one row per file. Format 4 kept one row per chunk, origin and file instead
//! (`chunk_locations`, 60 bytes each, about four per file and origin), each on a leaf of its
//! own since its key is a hash: most of the index's writes in an initial sync.
//!
//! Both maps are keyed by the first eight bytes of the ids (a row is 16 or 24 bytes). Two ids
//! can share them, so an answer is never taken from a row alone: the file's scan entry names
//! its whole content id, and that chunk list, checked against its id, must hold the chunk.
//! A row that answers nothing is only a wasted lookup. This module must never trust a prefix.

use std::collections::HashSet;

use redb::{ReadableTable, Table, WriteTransaction};

use super::tables::*;
use super::{ChunkLocation, OriginId, ScanEntry};
use crate::id::{ChunkId, ContentId};
use crate::snapshot::{decode, ChunkList};

/// The key prefix of an id: its first eight bytes.
pub(super) fn prefix(id: &[u8; 32]) -> u64 {
    let mut first = [0; 8];
    first.copy_from_slice(&id[..8]);
    u64::from_be_bytes(first)
}

/// Records which chunks the newly stored chunk list `content` holds, one row per distinct
/// chunk.
pub(super) fn add_content(
    table: &mut Table<'_, (u64, u64), ()>,
    content: &ContentId,
    list: &ChunkList,
) -> Result<(), redb::StorageError> {
    let holder = prefix(content.as_bytes());
    let mut seen = HashSet::with_capacity(list.chunks.len());
    for chunk in &list.chunks {
        let key = (prefix(chunk.id.as_bytes()), holder);
        if seen.insert(key.0) {
            table.insert(key, ())?;
        }
    }
    Ok(())
}

/// The `content_files` key of file `file_id` of `origin` holding `content`.
pub(super) fn file_key(content: &ContentId, origin: OriginId, file_id: u64) -> (u64, u64, u64) {
    (prefix(content.as_bytes()), origin, file_id)
}

/// The tables a lookup reads, from one transaction.
pub(super) struct Finder<CC, CF, F, S, C> {
    pub chunk_contents: CC,
    pub content_files: CF,
    pub files: F,
    pub scan: S,
    pub contents: C,
}

impl<CC, CF, F, S, C> Finder<CC, CF, F, S, C>
where
    CC: ReadableTable<(u64, u64), ()>,
    CF: ReadableTable<(u64, u64, u64), ()>,
    F: ReadableTable<u64, (u64, &'static [u8])>,
    S: ReadableTable<(u64, &'static [u8]), &'static [u8]>,
    C: ReadableTable<&'static [u8; 32], &'static [u8]>,
{
    /// Where `chunk` can be read within `origin`: one location per file that holds it (its
    /// first occurrence there), or only the first found when `first`.
    pub fn find(
        &self,
        chunk: &ChunkId,
        origin: OriginId,
        first: bool,
    ) -> Result<Vec<ChunkLocation>, redb::StorageError> {
        let mut out = Vec::new();
        let chunk_key = prefix(chunk.as_bytes());
        // Chunk lists read by this lookup, by id (a chunk is in few of them).
        let mut lists: Vec<(ContentId, Option<ChunkList>)> = Vec::new();
        for holder in self
            .chunk_contents
            .range((chunk_key, 0)..=(chunk_key, u64::MAX))?
        {
            let (key, _) = holder?;
            let (_, content_key) = key.value();
            for row in self
                .content_files
                .range((content_key, origin, 0)..=(content_key, origin, u64::MAX))?
            {
                let (key, _) = row?;
                let (_, _, file_id) = key.value();
                let Some(file) = self.files.get(file_id)? else {
                    continue;
                };
                let (file_origin, path) = file.value();
                if file_origin != origin {
                    continue;
                }
                let Some(entry) = self.scan.get((origin, path))? else {
                    continue;
                };
                let Some(entry) = decode::<ScanEntry>(entry.value()) else {
                    continue;
                };
                if entry.file_id != file_id || prefix(entry.content.as_bytes()) != content_key {
                    continue;
                }
                let slot = match lists.iter().position(|(id, _)| *id == entry.content) {
                    Some(i) => i,
                    None => {
                        let list = self
                            .contents
                            .get(entry.content.as_bytes())?
                            .and_then(|v| decode::<ChunkList>(v.value()))
                            .filter(|l| l.content_id() == entry.content);
                        lists.push((entry.content, list));
                        lists.len() - 1
                    }
                };
                let Some(list) = &lists[slot].1 else {
                    continue;
                };
                if let Some((offset, c)) = list.with_offsets().find(|(_, c)| c.id == *chunk) {
                    out.push(ChunkLocation {
                        path: path.to_vec(),
                        offset,
                        len: c.len,
                    });
                    if first {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Fills `chunk_contents` from every stored chunk list and `content_files` from every scan
/// entry, inside `txn` (an upgrade from format 4 or older, whose `chunk_locations` the caller
/// drops in the same transaction). A chunk list or scan entry that does not decode adds no
/// row. Returns the rows written to each.
pub(super) fn rebuild(txn: &WriteTransaction) -> Result<(u64, u64), redb::Error> {
    let contents = txn.open_table(CONTENTS)?;
    let mut chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    let mut lists = 0;
    for item in contents.iter()? {
        let (key, value) = item?;
        let id = ContentId::from_stored(*key.value());
        if let Some(list) = decode::<ChunkList>(value.value()) {
            add_content(&mut chunk_contents, &id, &list)?;
            lists += 1;
        }
    }
    let scan = txn.open_table(SCAN)?;
    let mut content_files = txn.open_table(CONTENT_FILES)?;
    let mut files = 0;
    for item in scan.iter()? {
        let (key, value) = item?;
        let (origin, _) = key.value();
        if let Some(entry) = decode::<ScanEntry>(value.value()) {
            content_files.insert(file_key(&entry.content, origin, entry.file_id), ())?;
            files += 1;
        }
    }
    Ok((lists, files))
}

/// What `check` finds wrong with the location maps: a chunk list with a chunk missing from
/// `chunk_contents`, a scan entry without its `content_files` row (either would hide
/// chunks that are there), and `content_files` rows naming no file of their origin.
pub(super) fn check(
    txn: &redb::ReadTransaction,
    problem: &mut dyn FnMut(String),
) -> Result<(), redb::Error> {
    let contents = txn.open_table(CONTENTS)?;
    let chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    for item in contents.iter()? {
        let (key, value) = item?;
        let id = ContentId::from_stored(*key.value());
        let Some(list) = decode::<ChunkList>(value.value()) else {
            continue;
        };
        let holder = prefix(key.value());
        for chunk in &list.chunks {
            let row = (prefix(chunk.id.as_bytes()), holder);
            if chunk_contents.get(row)?.is_none() {
                problem(format!(
                    "chunk {} of chunk list {} is not in chunk_contents",
                    chunk.id.short(),
                    id.short()
                ));
                break;
            }
        }
    }
    let scan = txn.open_table(SCAN)?;
    let content_files = txn.open_table(CONTENT_FILES)?;
    for item in scan.iter()? {
        let (key, value) = item?;
        let (origin, path) = key.value();
        let Some(entry) = decode::<ScanEntry>(value.value()) else {
            continue;
        };
        if content_files
            .get(file_key(&entry.content, origin, entry.file_id))?
            .is_none()
        {
            problem(format!(
                "the chunk locations of {} (origin {origin}) are not recorded",
                String::from_utf8_lossy(path)
            ));
        }
    }
    let files = txn.open_table(FILES)?;
    for item in content_files.iter()? {
        let (key, _) = item?;
        let (_, origin, file_id) = key.value();
        let named = files.get(file_id)?.is_some_and(|f| f.value().0 == origin);
        if !named {
            problem(format!(
                "content_files names file {file_id} of origin {origin}, which is not recorded"
            ));
        }
    }
    Ok(())
}
