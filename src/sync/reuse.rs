//! What a destination file about to be replaced already holds of its replacement: for each
//! chunk of the new file, the offset of the same bytes in the old one, so that a transport
//! that can build a file from its target's bytes (an object store's server-side copy,
//! [`crate::origin::TempFile::write_known`]) sends only the rest.
//!
//! The old file is known from the repository: the destination's scan entry at that path (its
//! change key and content), recorded by the scan at the start of this sync or by the sync
//! that wrote it. The change key goes with every statement, so the transport uses the old
//! bytes only while the target is still that file.
//!
//! Never does: claim bytes of a transformed region (Ogg pages, whose stored bytes depend on
//! their page numbers, not only on the chunk) or of an entry without a change key.

use std::collections::HashMap;

use crate::error::Result;
use crate::id::ChunkId;
use crate::origin::ChangeKey;
use crate::repo::{OriginId, Repository};
use crate::snapshot::{ChunkList, ChunkRef};

/// The old file at a destination path, as the repository last recorded it.
pub(crate) struct TargetLayout {
    /// Its change key then.
    pub change: ChangeKey,
    /// Where each of its chunks is, when its bytes are the chunk's own.
    at: HashMap<ChunkId, u64>,
}

impl TargetLayout {
    /// The recorded layout of the destination file at `path`; `None` when the repository
    /// records none, or no change key to hold it to.
    pub(crate) fn of(
        repo: &Repository,
        origin: OriginId,
        path: &[u8],
    ) -> Result<Option<TargetLayout>> {
        // The writer only reads here, and is dropped unchanged.
        let entry = repo.writer()?.scan_entry(origin, path)?;
        let Some(entry) = entry.filter(|e| e.change != ChangeKey::None) else {
            return Ok(None);
        };
        let old = repo.content(&entry.content)?;
        Ok(Some(TargetLayout::new(entry.change, &old)))
    }

    /// The layout of `old`, a file whose change key is `change`.
    pub(crate) fn new(change: ChangeKey, old: &ChunkList) -> TargetLayout {
        let mut at = HashMap::new();
        for (offset, chunk) in plain_chunks(old) {
            at.entry(chunk.id).or_insert(offset);
        }
        TargetLayout { change, at }
    }

    /// For each chunk of `new`, in order, the offset of its bytes in the old file, when both
    /// files hold them as they are.
    pub(crate) fn known_offsets(&self, new: &ChunkList) -> Vec<Option<u64>> {
        let mut known = vec![None; new.chunks.len()];
        for ((offset, chunk), slot) in new.with_offsets().zip(known.iter_mut()) {
            if in_plain_region(new, offset) {
                *slot = self.at.get(&chunk.id).copied();
            }
        }
        known
    }
}

/// The chunks of `list` whose bytes in the file are the chunk's own (outside transformed
/// regions), with their offsets.
fn plain_chunks(list: &ChunkList) -> impl Iterator<Item = (u64, ChunkRef)> + '_ {
    list.with_offsets()
        .filter(move |(offset, _)| in_plain_region(list, *offset))
}

/// Whether the byte at `offset` lies in a region of `list` without a transform.
fn in_plain_region(list: &ChunkList, offset: u64) -> bool {
    list.regions
        .iter()
        .find(|r| r.offset <= offset && offset < r.offset + r.len)
        .is_some_and(|r| r.transform.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{Format, Region, RegionKind, Transform};

    fn chunk(byte: u8, len: u32) -> ChunkRef {
        ChunkRef {
            id: ChunkId::of(&vec![byte; len as usize]),
            len,
        }
    }

    fn list(regions: &[(u64, u64, bool)], chunks: &[ChunkRef]) -> ChunkList {
        ChunkList {
            format: Format::Flac,
            regions: regions
                .iter()
                .map(|&(offset, len, ogg)| Region {
                    kind: RegionKind::Audio,
                    offset,
                    len,
                    transform: ogg.then_some(Transform::OggPages { first_seq: 0 }),
                })
                .collect(),
            chunks: chunks.to_vec(),
            file_hash: None,
        }
    }

    #[test]
    fn a_grown_tag_leaves_the_audio_known_at_its_old_offsets() {
        let (old_tag, new_tag) = (chunk(1, 100), chunk(2, 130));
        let audio = [chunk(3, 1000), chunk(4, 1000), chunk(3, 1000)];
        let old = list(
            &[(0, 100, false), (100, 3000, false)],
            &[old_tag, audio[0], audio[1], audio[2]],
        );
        let new = list(
            &[(0, 130, false), (130, 3000, false)],
            &[new_tag, audio[0], audio[1], audio[2]],
        );
        let layout = TargetLayout::new(ChangeKey::Opaque(b"\"etag\"".to_vec().into()), &old);
        // A chunk the old file holds twice is known at its first place: the same bytes.
        assert_eq!(
            layout.known_offsets(&new),
            [None, Some(100), Some(1100), Some(100)]
        );
    }

    #[test]
    fn transformed_regions_are_never_known() {
        let audio = [chunk(5, 500), chunk(6, 500)];
        let old = list(&[(0, 1000, true)], &audio);
        let layout = TargetLayout::new(ChangeKey::Opaque(b"e".to_vec().into()), &old);
        assert_eq!(layout.known_offsets(&old), [None, None]);
        // In the new file as plain bytes: still unknown, the old file stored them otherwise.
        let new = list(&[(0, 1000, false)], &audio);
        assert_eq!(layout.known_offsets(&new), [None, None]);
        // And plain in the old file but transformed in the new: not the same bytes either.
        let old_plain = TargetLayout::new(ChangeKey::Opaque(b"e".to_vec().into()), &new);
        assert_eq!(old_plain.known_offsets(&old), [None, None]);
        assert_eq!(old_plain.known_offsets(&new), [Some(0), Some(500)]);
    }
}
