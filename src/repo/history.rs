//! History: the small chunks of every scanned content, kept compressed in the repository.
//!
//! A file's audio and pictures stay where they live (the repository records their locations);
//! its tag blocks, padding and container structure are small, and they are what a retag
//! replaces at every origin. The scan therefore keeps those chunks ("history chunks", chosen
//! by `chunk::keeps_history`) in the repository itself, so that an old snapshot of a
//! retagged file can be read back exactly from the kept chunks plus today's audio.
//!
//! Kept chunks are compressed one by one (zstd; one shorter than
//! [`crate::zstd_kept::STORED_BELOW`] as it is, in a frame of one raw block) and written in
//! packs: one object of kind [`ObjectKind::Pack`] per write batch, holding the compressed
//! chunks back to back. The `kept_chunks` table says where each chunk is (pack, offset, stored
//! length, length), and the `history` table lists the contents whose history chunks are all
//! kept. A pack is put (durably) before the batch that refers to it commits, so the index never
//! names a pack that does not exist; a pack whose batch then failed to commit is an object
//! nothing refers to.

use std::collections::HashSet;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::objects::{ObjectId, ObjectKind, ObjectStore};
use super::tables::{HISTORY, KEPT};
use super::Repository;
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId};
use crate::zstd_kept::compress_chunk;

/// A history chunk compressed for keeping, as [`Tables::keep_packed`](super::Tables) takes
/// it. Compressing is most of a kept chunk's cost: done by the thread that read the chunk, it
/// leaves the one index writer only the writes, and a batch of read files waiting for that
/// writer holds compressed bytes (tag blocks and padding shrink several times), not raw ones.
#[derive(Debug, Clone)]
pub struct PackedChunk {
    id: ChunkId,
    len: u32,
    packed: Vec<u8>,
}

/// Chunks a thread remembers having packed last, at most: the padding of a library's files
/// is a few chunks of zeros that recur in file after file, each compressed in about as many
/// instructions as a tag (17,000 for 4 KiB), to the same bytes every time.
const RECENT: usize = 8;

/// The largest packed chunk a thread remembers.
const RECENT_MAX: usize = 1024;

thread_local! {
    /// The chunks this thread packed last (up to [`RECENT`], each packed to at most
    /// [`RECENT_MAX`] bytes), oldest first.
    static RECENTLY_PACKED: std::cell::RefCell<std::collections::VecDeque<PackedChunk>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

impl PackedChunk {
    /// `data`, whose id is `id`, compressed. A chunk this thread packed a moment ago is not
    /// compressed again: its id names its bytes, so its packed bytes are those.
    pub fn new(id: ChunkId, data: &[u8]) -> std::io::Result<PackedChunk> {
        let len = u32::try_from(data.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "history chunk over 4 GiB")
        })?;
        let recent = RECENTLY_PACKED.with(|recent| {
            recent
                .borrow()
                .iter()
                .find(|chunk| chunk.id == id && chunk.len == len)
                .cloned()
        });
        if let Some(chunk) = recent {
            return Ok(chunk);
        }
        let chunk = PackedChunk {
            id,
            len,
            packed: compress_chunk(data)?,
        };
        if chunk.packed.len() <= RECENT_MAX {
            RECENTLY_PACKED.with(|recent| {
                let mut recent = recent.borrow_mut();
                if recent.len() == RECENT {
                    recent.pop_front();
                }
                recent.push_back(chunk.clone());
            });
        }
        Ok(chunk)
    }

    /// The chunk's id.
    pub fn id(&self) -> &ChunkId {
        &self.id
    }
}

/// The history chunks a write batch will keep, compressed, until it commits.
#[derive(Debug, Default)]
pub(super) struct PendingPack {
    /// The pack's bytes so far.
    bytes: Vec<u8>,
    /// Each chunk: id, offset in `bytes`, stored length, length.
    entries: Vec<super::check::KeptRow>,
    /// The ids in `entries`.
    ids: HashSet<[u8; 32]>,
    /// Contents whose history chunks are now all kept.
    contents: Vec<[u8; 32]>,
}

impl PendingPack {
    /// Whether the pack already holds chunk `id`.
    pub(super) fn holds(&self, id: &ChunkId) -> bool {
        self.ids.contains(id.as_bytes())
    }

    /// Adds one chunk's bytes.
    pub(super) fn add(&mut self, id: &ChunkId, data: &[u8]) -> std::io::Result<()> {
        self.add_packed(&PackedChunk::new(*id, data)?);
        Ok(())
    }

    /// Adds one chunk compressed already.
    pub(super) fn add_packed(&mut self, chunk: &PackedChunk) {
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&chunk.packed);
        self.entries.push((
            *chunk.id.as_bytes(),
            offset,
            chunk.packed.len() as u32,
            chunk.len,
        ));
        self.ids.insert(*chunk.id.as_bytes());
    }

    /// Notes that every history chunk of `content` is kept once this batch commits.
    pub(super) fn complete(&mut self, content: &ContentId) {
        self.contents.push(*content.as_bytes());
    }

    /// Whether there is anything to write.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.contents.is_empty()
    }

    /// Puts the pack (if it holds chunks) into `store`, then records its chunks and the
    /// completed contents in `txn`.
    pub(super) fn seal(
        self,
        store: &dyn ObjectStore,
        txn: &redb::WriteTransaction,
    ) -> Result<std::result::Result<(), redb::Error>> {
        let PendingPack {
            bytes,
            mut entries,
            mut contents,
            ..
        } = self;
        // Rows in key order: a batch's thousands of random ids then fill the tables' pages
        // one after another instead of touching a random page each.
        entries.sort_unstable_by_key(|a| a.0);
        contents.sort_unstable();
        if !entries.is_empty() {
            let pack = ObjectId::of(&bytes);
            store.put(ObjectKind::Pack, &pack, &bytes)?;
            let recorded = (|| -> std::result::Result<(), redb::Error> {
                let mut kept = txn.open_table(KEPT)?;
                for (id, offset, stored, len) in &entries {
                    kept.insert(id, (pack.as_bytes(), *offset, *stored, *len))?;
                }
                Ok(())
            })();
            if let Err(e) = recorded {
                return Ok(Err(e));
            }
        }
        Ok((|| -> std::result::Result<(), redb::Error> {
            let mut history = txn.open_table(HISTORY)?;
            for content in &contents {
                history.insert(content, 0)?;
            }
            Ok(())
        })())
    }
}

/// `without_history` reads the whole table in order, rather than looking each content up, when
/// given at least one content for this many rows.
const MERGE_RATIO: u64 = 8;

impl Repository {
    /// Of `contents`, those whose history chunks are not all kept yet (in the given order).
    pub fn without_history(&self, contents: &[ContentId]) -> Result<Vec<ContentId>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(HISTORY).map_err(|e| self.err(e))?;
            let rows = table.len().map_err(|e| self.err(e))?;
            if (contents.len() as u64).saturating_mul(MERGE_RATIO) < rows {
                let mut missing = Vec::new();
                for c in contents {
                    if table.get(c.as_bytes()).map_err(|e| self.err(e))?.is_none() {
                        missing.push(*c);
                    }
                }
                return Ok(missing);
            }
            // As many contents as a good part of the table (a scan's every unchanged file):
            // one pass over the rows in key order beside the sorted contents, not a descent of
            // the tree from its root for each.
            let mut order: Vec<usize> = (0..contents.len()).collect();
            order.sort_unstable_by(|&a, &b| contents[a].as_bytes().cmp(contents[b].as_bytes()));
            let mut kept = vec![false; contents.len()];
            if let (Some(&first), Some(&last)) = (order.first(), order.last()) {
                let (first, last) = (contents[first].as_bytes(), contents[last].as_bytes());
                let mut range = table
                    .range::<&[u8; 32]>(first..=last)
                    .map_err(|e| self.err(e))?;
                let mut row = range.next().transpose().map_err(|e| self.err(e))?;
                for &i in &order {
                    let want = contents[i].as_bytes();
                    while let Some((key, _)) = &row {
                        match key.value().cmp(want) {
                            std::cmp::Ordering::Less => {
                                row = range.next().transpose().map_err(|e| self.err(e))?;
                            }
                            std::cmp::Ordering::Equal => {
                                kept[i] = true;
                                break;
                            }
                            std::cmp::Ordering::Greater => break,
                        }
                    }
                }
            }
            Ok(contents
                .iter()
                .zip(kept)
                .filter(|(_, kept)| !kept)
                .map(|(c, _)| *c)
                .collect())
        })
    }

    /// The bytes of history chunk `id`, when the repository keeps it and its bytes are whole
    /// (they are checked against `id`; a damaged or missing pack gives `None`, with a warning).
    pub fn kept_chunk(&self, id: &ChunkId) -> Result<Option<Vec<u8>>> {
        let row = self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(KEPT).map_err(|e| self.err(e))?;
            let row = table.get(id.as_bytes()).map_err(|e| self.err(e))?;
            Ok(row.map(|v| {
                let (pack, offset, stored, len) = v.value();
                (ObjectId::from_bytes(*pack), offset, stored, len)
            }))
        })?;
        let Some((pack, offset, stored, len)) = row else {
            return Ok(None);
        };
        let bytes = self
            .objects()
            .read(ObjectKind::Pack, &pack, offset, stored as usize)
            .and_then(|packed| {
                crate::zstd_kept::decompress(&packed, len as usize)
                    .map_err(|e| Error::io(self.root().join("objects/packs").join(pack.hex()), e))
            });
        match bytes {
            Ok(bytes) if ChunkId::of(&bytes) == *id => Ok(Some(bytes)),
            Ok(_) => {
                tracing::warn!(
                    "history chunk {} in pack {} does not match its id",
                    id.short(),
                    pack.hex()
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!("history chunk {}: {e}", id.short());
                Ok(None)
            }
        }
    }

    /// Chunks kept and their total stored (compressed) and raw bytes.
    pub fn history_usage(&self) -> Result<(u64, u64, u64)> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(KEPT).map_err(|e| self.err(e))?;
            let (mut n, mut stored, mut raw) = (0u64, 0u64, 0u64);
            for row in table.iter().map_err(|e| self.err(e))? {
                let (_, v) = row.map_err(|e| self.err(e))?;
                let (_, _, s, l) = v.value();
                n += 1;
                stored += u64::from(s);
                raw += u64::from(l);
            }
            Ok((n, stored, raw))
        })
    }
}

#[cfg(test)]
impl Repository {
    /// Forgets every kept chunk and history row, as a repository of format 2 has none.
    pub(crate) fn forget_history(&self) {
        let txn = self.db().unwrap().begin_write().unwrap();
        txn.open_table(KEPT).unwrap().retain(|_, _| false).unwrap();
        txn.open_table(HISTORY)
            .unwrap()
            .retain(|_, _| false)
            .unwrap();
        txn.commit().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk packed again (from this thread's recent ones) is packed as the first time, and
    /// every chunk, remembered or not, unpacks to its own bytes.
    #[test]
    fn a_chunk_packed_again_is_its_own_bytes_whatever_was_packed_between() {
        let chunks: Vec<Vec<u8>> = (0..3 * RECENT)
            .map(|i| {
                let mut data = vec![0u8; 100 + i * 37];
                data[0] = i as u8;
                data
            })
            .collect();
        let first: Vec<PackedChunk> = chunks
            .iter()
            .map(|data| PackedChunk::new(ChunkId::of(data), data).unwrap())
            .collect();
        for round in 0..3 {
            for (i, data) in chunks.iter().enumerate().rev() {
                let again = PackedChunk::new(ChunkId::of(data), data).unwrap();
                assert_eq!(again.packed, first[i].packed, "round {round}, chunk {i}");
                let unpacked =
                    crate::zstd_kept::decompress(&again.packed, again.len as usize).unwrap();
                assert_eq!(&unpacked, data, "round {round}, chunk {i}");
            }
        }
    }
}
