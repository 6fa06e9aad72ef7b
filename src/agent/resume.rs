//! The chunks received for the file being written, kept so that a retry after a dropped
//! connection does not ask for them again.
//!
//! What a retry needs are the chunks of the file that was being written when the connection
//! dropped: every file before it was received whole, and the sync commits and records it
//! however the connection ends, so the retry's plan does not name it again. So the chunks are
//! kept for one file at a time, and forgotten when the sync asks for another file's chunks.
//! They are held in memory up to [`MEMORY_BYTES`] (a streamed chunk's own buffer shared,
//! not copied: `Resume::keep_shared`); what a larger file brings beyond that is written to an unnamed file (gone
//! when closed, even after a crash) in the repository's spool directory, at most
//! [`SPILL_BYTES`]. Read back, a chunk is verified against its id again before it is used.
//!
//! Nothing is written to disk for a file of up to [`MEMORY_BYTES`]: writing every chunk
//! received beside the destination (as this module once did) doubled what an initial pull
//! wrote, and the destination's flushes (`syncfs`) wrote those bytes to disk too.
//!
//! The chunks a retry was given are kept until the file that uses them is written (it may not
//! be the first one the retry writes), then forgotten like the others.
//!
//! Never does: fail a sync. A spill file that cannot be created, written or read only means
//! that the chunks are asked for again.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use bytes::Bytes;

use crate::chunk::VerifiedChunk;
use crate::id::ChunkId;

/// Bytes of chunks held in memory, at most.
const MEMORY_BYTES: u64 = 8 << 20;
/// Bytes of chunks written to the spill file, at most: beyond, a retry asks for them again.
/// A bound on the disk space taken beside the destination, which a file of several GB
/// already fills with its own temporary copy.
const SPILL_BYTES: u64 = 64 << 20;

/// Where a kept chunk is: its bytes in memory, or its offset and length in the spill file.
enum Held {
    Memory(Bytes),
    Spilled { offset: u64, len: u32 },
}

/// One kept chunk, with the connection that received it.
struct Kept {
    held: Held,
    connection: u32,
}

/// The chunks received for the file being written, by this connection, and those a
/// connection before it received and the retry has yet to use (see the module's
/// documentation). `Default` keeps its spill file in the system's temporary directory until a
/// sync names the repository's spool directory.
#[derive(Default)]
pub struct Resume {
    dir: Option<PathBuf>,
    kept: HashMap<ChunkId, Kept>,
    /// Bytes of the chunks held in memory.
    in_memory: u64,
    spill: Option<File>,
    /// Bytes written to the spill file (where the next chunk goes).
    spilled: u64,
    /// Spilling failed once: nothing more is spilled in this run.
    broken: bool,
    /// Counts connections: a chunk kept with an older number was carried to this one.
    connection: u32,
    /// A chunk carried from an earlier connection was used: the file that needed them is
    /// being written, and they go with it.
    carried_used: bool,
    /// The file the chunks being received are for.
    path: Vec<u8>,
}

impl Resume {
    /// Keeps the spill file in `dir` (created when needed).
    pub(crate) fn spill_to(&mut self, dir: PathBuf) {
        self.dir = Some(dir);
    }

    /// Starts a connection: what the earlier ones kept is carried to it.
    pub(crate) fn next_connection(&mut self) {
        self.connection = self.connection.wrapping_add(1);
        self.carried_used = false;
        self.path.clear();
    }

    /// The sync asks for a chunk of the file at `path` (empty: no path given, nothing
    /// changes). Another file than the last: the last one was received whole, and its chunks
    /// are forgotten (with the carried ones, once used).
    pub(crate) fn file(&mut self, path: &[u8]) {
        if path.is_empty() || path == self.path.as_slice() {
            return;
        }
        self.path.clear();
        self.path.extend_from_slice(path);
        let (connection, carried_too) = (self.connection, self.carried_used);
        self.kept
            .retain(|_, k| k.connection != connection && !carried_too);
        if carried_too {
            self.carried_used = false;
        }
        self.in_memory = self.kept.values().map(|k| k.held.in_memory()).sum();
        let spill_used = self
            .kept
            .values()
            .any(|k| matches!(k.held, Held::Spilled { .. }));
        if !spill_used && self.spilled > 0 {
            self.spilled = 0;
            // Drops the bytes from the page cache before anything writes them to disk.
            if let Some(Err(e)) = self.spill.as_ref().map(|f| f.set_len(0)) {
                tracing::debug!("chunks received are no longer spilled for a retry: {e}");
                self.give_up_spill();
            }
        }
        if self.kept.is_empty() {
            self.kept.shrink_to(64);
        }
    }

    /// Keeps `chunk`: in memory (a copy) while there is room, else in the spill file while
    /// there is room, else not.
    pub(crate) fn keep(&mut self, chunk: &VerifiedChunk) {
        self.keep_from(chunk.id(), chunk.bytes(), || {
            Bytes::copy_from_slice(chunk.bytes())
        });
    }

    /// Keeps `chunk` as [`Resume::keep`] does, its bytes shared instead of copied while they
    /// are held in memory.
    pub(crate) fn keep_shared(&mut self, chunk: &VerifiedChunk<Bytes>) {
        self.keep_from(chunk.id(), chunk.bytes(), || chunk.clone().into_bytes());
    }

    /// Keeps chunk `id` of `bytes`, held in memory as `in_memory` gives them.
    fn keep_from(&mut self, id: ChunkId, bytes: &[u8], in_memory: impl FnOnce() -> Bytes) {
        let len = bytes.len() as u64;
        if self.kept.contains_key(&id) {
            return;
        }
        let held = if self.in_memory.saturating_add(len) <= MEMORY_BYTES {
            self.in_memory += len;
            Held::Memory(in_memory())
        } else {
            match self.spill(bytes) {
                Some(place) => place,
                None => return,
            }
        };
        self.kept.insert(
            id,
            Kept {
                held,
                connection: self.connection,
            },
        );
    }

    /// Whether no chunk is kept.
    pub(crate) fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// Whether chunk `id` is kept (a spilled one may still fail its check when read back).
    pub(crate) fn contains(&self, id: &ChunkId) -> bool {
        self.kept.contains_key(id)
    }

    /// Chunk `id`; `None` when it is not kept, or its bytes read back no longer hash to `id`.
    pub(crate) fn get(&mut self, id: &ChunkId) -> Option<VerifiedChunk> {
        let kept = self.kept.get(id)?;
        if kept.connection != self.connection {
            self.carried_used = true;
        }
        let bytes = match kept.held {
            Held::Memory(ref bytes) => bytes.to_vec(),
            Held::Spilled { offset, len } => {
                let mut bytes = vec![0u8; len as usize];
                self.spill
                    .as_ref()?
                    .read_exact_at(&mut bytes, offset)
                    .ok()?;
                bytes
            }
        };
        VerifiedChunk::check(*id, bytes)
    }

    /// Writes `chunk` at the end of the spill file, created when needed; `None` when it does
    /// not fit or cannot be written.
    fn spill(&mut self, bytes: &[u8]) -> Option<Held> {
        let len = bytes.len() as u64;
        if self.broken || self.spilled + len > SPILL_BYTES {
            return None;
        }
        if self.spill.is_none() {
            let file = match &self.dir {
                Some(dir) => std::fs::create_dir_all(dir).and_then(|_| tempfile::tempfile_in(dir)),
                None => tempfile::tempfile(),
            };
            match file {
                Ok(f) => self.spill = Some(f),
                Err(e) => {
                    tracing::debug!("chunks received are not spilled for a retry: {e}");
                    self.give_up_spill();
                    return None;
                }
            }
        }
        let offset = self.spilled;
        let written = self.spill.as_ref()?.write_all_at(bytes, offset);
        if let Err(e) = written {
            tracing::debug!("chunks received are no longer spilled for a retry: {e}");
            self.give_up_spill();
            return None;
        }
        self.spilled += len;
        Some(Held::Spilled {
            offset,
            len: len as u32,
        })
    }

    /// Stops spilling for this run, forgetting what was spilled; what is in memory stays.
    fn give_up_spill(&mut self) {
        self.broken = true;
        self.spill = None;
        self.spilled = 0;
        self.kept.retain(|_, k| matches!(k.held, Held::Memory(_)));
    }
}

impl Held {
    /// Bytes it holds in memory.
    fn in_memory(&self) -> u64 {
        match self {
            Held::Memory(bytes) => bytes.len() as u64,
            Held::Spilled { .. } => 0,
        }
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

    /// Chunks of `size` bytes, enough to fill the memory and `extra` more.
    fn chunks_past_memory(size: usize, extra: u32) -> Vec<VerifiedChunk> {
        let in_memory = (MEMORY_BYTES / size as u64) as u32;
        (0..in_memory + extra).map(|i| chunk(i, size)).collect()
    }

    fn spill_file_len(resume: &Resume) -> u64 {
        resume
            .spill
            .as_ref()
            .map_or(0, |f| f.metadata().unwrap().len())
    }

    #[test]
    fn a_small_file_is_kept_in_memory_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut resume = Resume::default();
        resume.spill_to(dir.path().join("spool"));
        resume.next_connection();
        resume.file(b"a.flac");
        let a = chunk(1, 1000);
        let b = chunk(2, 70_000);
        resume.keep(&a);
        resume.keep(&b);
        resume.keep(&a);
        assert!(resume.contains(&a.id()));
        assert_eq!(resume.get(&a.id()).unwrap().bytes(), a.bytes());
        assert_eq!(resume.get(&b.id()).unwrap().bytes(), b.bytes());
        assert!(resume.get(&chunk(3, 10).id()).is_none());
        assert_eq!(resume.in_memory, 71_000);
        assert!(resume.spill.is_none());
        assert!(!dir.path().join("spool").exists());
    }

    #[test]
    fn what_exceeds_the_memory_is_spilled_and_read_back_verified() {
        let dir = tempfile::tempdir().unwrap();
        let mut resume = Resume::default();
        resume.spill_to(dir.path().join("spool"));
        resume.next_connection();
        resume.file(b"big.wav");
        let size = 256 * 1024;
        let chunks = chunks_past_memory(size, 5);
        for c in &chunks {
            resume.keep(c);
        }
        for c in &chunks {
            assert_eq!(resume.get(&c.id()).unwrap().bytes(), c.bytes());
        }
        assert_eq!(resume.in_memory, MEMORY_BYTES);
        assert_eq!(resume.spilled, 5 * size as u64);
        assert_eq!(spill_file_len(&resume), 5 * size as u64);
        // The spill file has no name: the spool directory stays empty.
        assert_eq!(
            std::fs::read_dir(dir.path().join("spool")).unwrap().count(),
            0
        );
    }

    #[test]
    fn the_spill_is_bounded() {
        let mut resume = Resume::default();
        resume.next_connection();
        resume.file(b"huge.wav");
        let size = 1 << 20;
        let over = (SPILL_BYTES / size as u64) as u32 + 3;
        let chunks = chunks_past_memory(size, over);
        for c in &chunks {
            resume.keep(c);
        }
        assert_eq!(resume.spilled, SPILL_BYTES);
        let kept = chunks.iter().filter(|c| resume.contains(&c.id())).count();
        assert_eq!(kept as u64, (MEMORY_BYTES + SPILL_BYTES) / size as u64);
        for c in &chunks[chunks.len() - 3..] {
            assert!(!resume.contains(&c.id()));
        }
    }

    #[test]
    fn the_next_file_forgets_the_last_ones_chunks_and_empties_the_spill() {
        let mut resume = Resume::default();
        resume.next_connection();
        resume.file(b"one.flac");
        let first = chunks_past_memory(128 * 1024, 4);
        for c in &first {
            resume.keep(c);
        }
        assert!(spill_file_len(&resume) > 0);
        // The same file again changes nothing, nor does a request without a path.
        resume.file(b"one.flac");
        resume.file(b"");
        assert!(first.iter().all(|c| resume.contains(&c.id())));
        resume.file(b"two.flac");
        assert!(first.iter().all(|c| !resume.contains(&c.id())));
        assert_eq!((resume.in_memory, resume.spilled), (0, 0));
        assert_eq!(spill_file_len(&resume), 0);
        let second = chunk(99, 5000);
        resume.keep(&second);
        assert_eq!(resume.get(&second.id()).unwrap().bytes(), second.bytes());
    }

    #[test]
    fn a_retry_keeps_the_carried_chunks_until_their_file_is_written() {
        let mut resume = Resume::default();
        resume.next_connection();
        resume.file(b"b.mp3");
        let carried = [chunk(1, 4000), chunk(2, 4000)];
        for c in &carried {
            resume.keep(c);
        }
        // The connection drops; the retry writes another file first.
        resume.next_connection();
        resume.file(b"a.mp3");
        let other = chunk(3, 4000);
        resume.keep(&other);
        resume.file(b"c.mp3");
        assert!(!resume.contains(&other.id()));
        assert!(carried.iter().all(|c| resume.contains(&c.id())));
        // Then the file they are for: they serve it, and go when the next file begins.
        resume.file(b"b.mp3");
        for c in &carried {
            assert_eq!(resume.get(&c.id()).unwrap().bytes(), c.bytes());
        }
        resume.file(b"d.mp3");
        assert!(carried.iter().all(|c| !resume.contains(&c.id())));
        assert_eq!(resume.in_memory, 0);
    }

    #[test]
    fn bytes_changed_on_disk_are_not_served() {
        let mut resume = Resume::default();
        resume.next_connection();
        resume.file(b"big.wav");
        let chunks = chunks_past_memory(64 * 1024, 1);
        for c in &chunks {
            resume.keep(c);
        }
        let last = chunks.last().unwrap();
        let Some(Kept {
            held: Held::Spilled { offset, .. },
            ..
        }) = resume.kept.get(&last.id())
        else {
            panic!("the last chunk is not spilled");
        };
        resume
            .spill
            .as_ref()
            .unwrap()
            .write_all_at(b"not the chunk", *offset)
            .unwrap();
        assert!(resume.contains(&last.id()));
        assert!(resume.get(&last.id()).is_none());
    }

    #[test]
    fn a_spool_that_cannot_be_created_spills_nothing_and_fails_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let mut resume = Resume::default();
        resume.spill_to(blocker.join("spool"));
        resume.next_connection();
        resume.file(b"big.wav");
        let chunks = chunks_past_memory(64 * 1024, 2);
        for c in &chunks {
            resume.keep(c);
        }
        let (in_memory, rest) = chunks.split_at(chunks.len() - 2);
        assert!(in_memory.iter().all(|c| resume.contains(&c.id())));
        assert!(rest.iter().all(|c| !resume.contains(&c.id())));
        assert!(rest.iter().all(|c| resume.get(&c.id()).is_none()));
        assert_eq!(
            resume.get(&in_memory[0].id()).unwrap().bytes(),
            in_memory[0].bytes()
        );
    }
}
