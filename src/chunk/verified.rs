//! Chunk bytes proven against their id: the one gate every chunk passes before its bytes
//! reach a file being written, the mount's reader or the wire.
//!
//! A [`VerifiedChunk`] can only be made by hashing: each constructor hashes the bytes it is
//! given and refuses them unless they are the chunk its [`ChunkId`] names. Nothing hands out a
//! mutable view of the bytes, so a value stays proven for as long as it lives. Code that reads
//! chunks (sync, the remote protocol, the mount) passes `VerifiedChunk`s along instead of
//! buffers and a `bool`, so "these bytes were hashed" is a type, not a convention.
//!
//! Ogg audio pages are chunked in a normalized form (page sequence numbers and CRCs zeroed,
//! `oggpages`), so a file holds such a chunk only up to those fields. A chunk therefore comes
//! in one of two [`Form`]s:
//! - [`Form::Canonical`]: the bytes are the chunk as its id names it (`BLAKE3(bytes) == id`).
//!   This is what is written into files (after the `Assembler` rebuilds the page fields) and
//!   what is sent on the wire.
//! - [`Form::StoredPages`]: the bytes are Ogg pages exactly as a file stores them, and a
//!   normalized copy of them hashes to the id. The mount serves these real bytes from a file
//!   proven by its whole-file hash; [`VerifiedChunk::into_canonical`] turns them into the
//!   canonical form (normalizing them again, which cannot fail once they were proven).
//!
//! This module never reads a file or the repository; finding the bytes is `locate`'s work.

use super::oggpages;
use crate::id::ChunkId;

/// What a [`VerifiedChunk`]'s bytes are (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// The chunk's bytes as its id names them: they hash to the id.
    Canonical,
    /// Ogg pages as a file stores them: with their sequence numbers and CRCs zeroed they hash
    /// to the id.
    StoredPages,
}

/// The bytes of one chunk, hashed against its id when they were taken in. `B` holds the
/// bytes: owned (`Vec<u8>`, the default) wherever they travel, or borrowed (`&[u8]`) to prove
/// a slice of a larger read without copying it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedChunk<B = Vec<u8>> {
    id: ChunkId,
    bytes: B,
    form: Form,
}

impl<B: AsRef<[u8]>> std::fmt::Debug for VerifiedChunk<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedChunk")
            .field("id", &self.id.short())
            .field("len", &self.bytes.as_ref().len())
            .field("form", &self.form)
            .finish()
    }
}

impl<B: AsRef<[u8]>> VerifiedChunk<B> {
    /// `bytes` as chunk `id`, in [`Form::Canonical`], when they hash to `id`; `None` (and the
    /// bytes dropped) otherwise.
    pub fn check(id: ChunkId, bytes: B) -> Option<VerifiedChunk<B>> {
        (ChunkId::of(bytes.as_ref()) == id).then_some(VerifiedChunk {
            id,
            bytes,
            form: Form::Canonical,
        })
    }

    /// Ogg pages read where a file holds chunk `id`, kept as the file stores them
    /// ([`Form::StoredPages`]) when a normalized copy hashes to `id`. `None` otherwise
    /// (bytes that are not whole pages included).
    pub fn check_stored_pages(id: ChunkId, bytes: B) -> Option<VerifiedChunk<B>> {
        let mut copy = bytes.as_ref().to_vec();
        if !oggpages::normalize(&mut copy) || ChunkId::of(&copy) != id {
            return None;
        }
        Some(VerifiedChunk {
            id,
            bytes,
            form: Form::StoredPages,
        })
    }

    /// The chunk's id.
    pub fn id(&self) -> ChunkId {
        self.id
    }

    /// The bytes, in [`VerifiedChunk::form`].
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// What the bytes are.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The number of bytes (the same in both forms).
    pub fn len(&self) -> usize {
        self.bytes.as_ref().len()
    }

    /// Whether the chunk is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.as_ref().is_empty()
    }

    /// The bytes, in [`VerifiedChunk::form`], given up.
    pub fn into_bytes(self) -> B {
        self.bytes
    }
}

impl VerifiedChunk {
    /// Bytes read where a file holds chunk `id`, in [`Form::Canonical`]: as they are when they
    /// hash to `id`, else, when they are whole Ogg pages, normalized in place and proven by
    /// that hash. `None` when neither matches.
    pub fn check_read(id: ChunkId, mut bytes: Vec<u8>) -> Option<VerifiedChunk> {
        if ChunkId::of(&bytes) == id {
            return Some(VerifiedChunk {
                id,
                bytes,
                form: Form::Canonical,
            });
        }
        if !bytes.starts_with(b"OggS") || !oggpages::normalize(&mut bytes) {
            return None;
        }
        VerifiedChunk::check(id, bytes)
    }

    /// The same chunk in [`Form::Canonical`].
    pub fn into_canonical(self) -> VerifiedChunk {
        match self.form {
            Form::Canonical => self,
            Form::StoredPages => {
                let mut bytes = self.bytes;
                // Proven at construction: these are whole pages, and normalizing is
                // deterministic.
                oggpages::normalize(&mut bytes);
                VerifiedChunk {
                    id: self.id,
                    bytes,
                    form: Form::Canonical,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::oggpages::tests::page;

    #[test]
    fn plain_bytes_are_taken_only_when_they_hash_to_the_id() {
        let id = ChunkId::of(b"the chunk");
        let good = VerifiedChunk::check(id, b"the chunk".to_vec()).expect("matching bytes");
        assert_eq!(good.bytes(), b"the chunk");
        assert_eq!(good.form(), Form::Canonical);
        assert_eq!(good.id(), id);
        assert!(VerifiedChunk::check(id, b"the chunK".to_vec()).is_none());
        assert!(VerifiedChunk::check(id, Vec::new()).is_none());
        assert!(VerifiedChunk::check_read(id, b"other bytes".to_vec()).is_none());
        assert!(VerifiedChunk::check_stored_pages(id, b"the chunk".to_vec()).is_none());
        // A slice of a larger read is proven without a copy.
        let read = b"xx the chunk yy";
        let slice = VerifiedChunk::check(id, &read[3..12]).expect("the slice is the chunk");
        assert_eq!(slice.into_bytes(), b"the chunk");
        assert!(VerifiedChunk::check(id, &read[2..11]).is_none());
    }

    #[test]
    fn ogg_pages_are_proven_by_their_normalized_hash_and_wrong_pages_refused() {
        let stored: Vec<u8> = [page(7, 41, 960, &[1; 300]), page(7, 42, 1920, &[2; 700])].concat();
        let mut normalized = stored.clone();
        assert!(oggpages::normalize(&mut normalized));
        assert_ne!(normalized, stored);
        let id = ChunkId::of(&normalized);

        // As a file stores them: the real bytes are kept.
        let real = VerifiedChunk::check_stored_pages(id, stored.clone()).expect("pages");
        assert_eq!(real.form(), Form::StoredPages);
        assert_eq!(real.bytes(), &stored[..]);
        let canonical = real.into_canonical();
        assert_eq!(canonical.form(), Form::Canonical);
        assert_eq!(canonical.bytes(), &normalized[..]);

        // Read for writing: normalized, in the id's form.
        let read = VerifiedChunk::check_read(id, stored.clone()).expect("pages");
        assert_eq!(read.form(), Form::Canonical);
        assert_eq!(read.bytes(), &normalized[..]);
        assert!(VerifiedChunk::check(id, stored.clone()).is_none());

        // Other page contents with the same header fields are refused in every form.
        let wrong: Vec<u8> = [page(7, 41, 960, &[1; 300]), page(7, 42, 1920, &[3; 700])].concat();
        assert!(VerifiedChunk::check_stored_pages(id, wrong.clone()).is_none());
        assert!(VerifiedChunk::check_read(id, wrong).is_none());
        // So are pages cut short, and bytes that are not pages at all.
        assert!(
            VerifiedChunk::check_stored_pages(id, stored[..stored.len() - 1].to_vec()).is_none()
        );
        assert!(VerifiedChunk::check_read(id, stored[..stored.len() - 1].to_vec()).is_none());
        assert!(VerifiedChunk::check_stored_pages(id, vec![0; stored.len()]).is_none());
    }
}
