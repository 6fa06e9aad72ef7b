//! The chunks most recently received from a source, kept on disk so that a retry after a
//! dropped connection does not ask for them again.
//!
//! What a retry needs are the chunks of the files that were being written when the connection
//! dropped (every finished file is recorded at the destination already): the last few tens of
//! MiB received. They are written to unnamed files (gone when closed, even after a crash) in
//! the repository's spool directory, two generations of at most [`GENERATION_BYTES`] each,
//! and only their places are held in memory: a large initial pull's peak memory does not
//! include them. Read back, a chunk is verified against its id again before it is used.
//!
//! Never does: fail a sync. A spill file that cannot be created, written or read only means
//! that the chunks are asked for again.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::chunk::VerifiedChunk;
use crate::id::ChunkId;

/// Bytes of chunks written to one generation, at most: between one and two generations of
/// the latest chunks received are kept.
const GENERATION_BYTES: u64 = 16 << 20;

/// One spill file and what it holds.
struct Generation {
    file: File,
    /// Counts generations, to tell which one an index entry points into.
    serial: u64,
    /// Bytes written.
    len: u64,
}

/// Where a kept chunk is.
#[derive(Clone, Copy)]
struct Place {
    serial: u64,
    offset: u64,
    len: u32,
}

/// The chunks received lately, by this connection or by the one before it (see the module's
/// documentation). `Default` keeps its files in the system's temporary directory until a
/// sync names the repository's spool directory.
#[derive(Default)]
pub struct Resume {
    dir: Option<PathBuf>,
    current: Option<Generation>,
    previous: Option<Generation>,
    index: HashMap<ChunkId, Place>,
    serials: u64,
    /// Spilling failed once: nothing more is kept in this run.
    broken: bool,
}

impl Resume {
    /// Keeps the next generations' files in `dir` (created when needed).
    pub(crate) fn spill_to(&mut self, dir: PathBuf) {
        self.dir = Some(dir);
    }

    /// Keeps `chunk`, forgetting the oldest generation when the current one is full.
    pub(crate) fn keep(&mut self, chunk: &VerifiedChunk) {
        let len = chunk.len() as u64;
        if self.broken || len > GENERATION_BYTES || self.index.contains_key(&chunk.id()) {
            return;
        }
        let full = match &self.current {
            Some(g) => g.len + len > GENERATION_BYTES,
            None => true,
        };
        if full && !self.rotate() {
            return;
        }
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let offset = current.len;
        if let Err(e) = current.file.write_all_at(chunk.bytes(), offset) {
            tracing::debug!("chunks received are no longer kept for a retry: {e}");
            self.give_up();
            return;
        }
        current.len += len;
        self.index.insert(
            chunk.id(),
            Place {
                serial: current.serial,
                offset,
                len: chunk.len() as u32,
            },
        );
    }

    /// Whether chunk `id` is kept (it may still fail its check when read back).
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.index.contains_key(id)
    }

    /// Chunk `id` read back and verified; `None` when it is not kept, or its bytes no longer
    /// hash to `id`.
    pub(crate) fn get(&self, id: &ChunkId) -> Option<VerifiedChunk> {
        let place = self.index.get(id)?;
        let generation = [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .find(|g| g.serial == place.serial)?;
        let mut bytes = vec![0u8; place.len as usize];
        generation
            .file
            .read_exact_at(&mut bytes, place.offset)
            .ok()?;
        VerifiedChunk::check(*id, bytes)
    }

    /// Starts a new generation, dropping the oldest; false when no file could be created.
    fn rotate(&mut self) -> bool {
        let file = match &self.dir {
            Some(dir) => std::fs::create_dir_all(dir).and_then(|_| tempfile::tempfile_in(dir)),
            None => tempfile::tempfile(),
        };
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("chunks received are not kept for a retry: {e}");
                self.give_up();
                return false;
            }
        };
        self.serials += 1;
        let next = Generation {
            file,
            serial: self.serials,
            len: 0,
        };
        if let Some(gone) = self.previous.take() {
            self.index.retain(|_, p| p.serial != gone.serial);
        }
        self.previous = self.current.replace(next);
        true
    }

    fn give_up(&mut self) {
        self.broken = true;
        self.current = None;
        self.previous = None;
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(seed: u32, len: usize) -> VerifiedChunk {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seed) as u8)
            .collect();
        let id = ChunkId::of(&bytes);
        VerifiedChunk::check(id, bytes).expect("hashes to its own id")
    }

    #[test]
    fn a_kept_chunk_reads_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut resume = Resume::default();
        resume.spill_to(dir.path().join("spool"));
        let a = chunk(1, 1000);
        let b = chunk(2, 70_000);
        resume.keep(&a);
        resume.keep(&b);
        resume.keep(&a);
        assert!(resume.contains(&a.id()));
        assert_eq!(resume.get(&a.id()).unwrap().bytes(), a.bytes());
        assert_eq!(resume.get(&b.id()).unwrap().bytes(), b.bytes());
        assert!(resume.get(&chunk(3, 10).id()).is_none());
        // The files have no names: the spool directory stays empty.
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_oldest_generation_is_forgotten_and_the_latest_chunks_kept() {
        let mut resume = Resume::default();
        let size = 256 * 1024;
        let per_generation = (GENERATION_BYTES / size as u64) as u32;
        let chunks: Vec<VerifiedChunk> = (0..per_generation * 3 + 5)
            .map(|i| chunk(i, size))
            .collect();
        for c in &chunks {
            resume.keep(c);
        }
        // The first two generations are gone, the third and the start of the fourth kept.
        let split = (per_generation * 2) as usize;
        for c in &chunks[..split] {
            assert!(!resume.contains(&c.id()));
            assert!(resume.get(&c.id()).is_none());
        }
        for c in &chunks[split..] {
            assert_eq!(resume.get(&c.id()).unwrap().bytes(), c.bytes());
        }
        assert_eq!(resume.index.len(), chunks.len() - split);
    }

    #[test]
    fn bytes_changed_on_disk_are_not_served() {
        let mut resume = Resume::default();
        let a = chunk(7, 4096);
        resume.keep(&a);
        let place = resume.index[&a.id()];
        let current = resume.current.as_ref().unwrap();
        current
            .file
            .write_all_at(b"not the chunk", place.offset)
            .unwrap();
        assert!(resume.contains(&a.id()));
        assert!(resume.get(&a.id()).is_none());
    }

    #[test]
    fn a_spool_that_cannot_be_created_keeps_nothing_and_fails_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let mut resume = Resume::default();
        resume.spill_to(blocker.join("spool"));
        let a = chunk(9, 100);
        resume.keep(&a);
        assert!(!resume.contains(&a.id()));
        assert!(resume.get(&a.id()).is_none());
    }
}
