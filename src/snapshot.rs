//! What a snapshot records: chunk lists, directory trees and snapshot records.
//!
//! Snapshots are content-addressed trees: a directory's [`Tree`] lists its entries sorted by
//! name, and its [`TreeId`] is the hash of that listing, so a changed file changes only its
//! ancestors and two equal trees are recognised by one comparison. A file's content is a
//! [`ChunkList`], referenced by its [`ContentId`]; equal content is stored once however many
//! files hold it. These types are pure data: storage lives in `repo`, building them in `scan`.
//! Their encoding (postcard) is the repository format described in `docs/format.md`.

use serde::{Deserialize, Serialize};

use crate::id::{AudioHash, ChunkId, ContentId, FileHash, SnapshotId, TreeId};
use crate::media::tags::MediaInfo;
use crate::media::{Format, Region};

/// One chunk of a file: its id and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes.
    pub id: ChunkId,
    /// Its length in bytes.
    pub len: u32,
}

/// A file's content: its container, its regions and the ordered list of its chunks. Every
/// region boundary is a chunk boundary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// The container format the regions were found by.
    pub format: Format,
    /// The regions, contiguous, covering the file.
    pub regions: Vec<Region>,
    /// The chunks, in file order.
    pub chunks: Vec<ChunkRef>,
    /// BLAKE3 of the whole file, when a region's chunks are a transformed representation.
    pub file_hash: Option<FileHash>,
}

/// What musicfs knows about a file's audio beyond its bytes, stored by content id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaRecord {
    /// BLAKE3 of the audio stream, when the container was understood.
    pub audio_hash: Option<AudioHash>,
    /// Tags and audio properties, when they could be read.
    pub info: Option<MediaInfo>,
}

impl ChunkList {
    /// Total length of the content.
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.len)).sum()
    }

    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The id of this content: the hash of its encoding.
    pub fn content_id(&self) -> ContentId {
        ContentId::of_encoded(&self.encode())
    }

    /// Each chunk with its offset in the file.
    pub fn with_offsets(&self) -> impl Iterator<Item = (u64, ChunkRef)> + '_ {
        self.chunks.iter().scan(0u64, |offset, c| {
            let here = *offset;
            *offset += u64::from(c.len);
            Some((here, *c))
        })
    }
}

/// What an entry of a directory is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// A regular file.
    File {
        /// Size in bytes.
        size: u64,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Permission bits (`st_mode & 0o7777`).
        mode: u32,
        /// The content.
        content: ContentId,
    },
    /// A directory.
    Dir {
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
        /// Permission bits.
        mode: u32,
        /// Its listing.
        tree: TreeId,
    },
    /// A symbolic link, recorded as its target, never followed.
    Symlink {
        /// The link's target, as stored in the link.
        target: Vec<u8>,
    },
}

/// One named entry of a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// The file name's bytes (Unix file names need not be UTF-8).
    pub name: Vec<u8>,
    /// What it is.
    pub node: Node,
}

/// A directory's listing, sorted by name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries in ascending name order; names are unique.
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    /// The id of this tree.
    pub fn tree_id(&self) -> TreeId {
        TreeId::of_encoded(&self.encode())
    }

    /// The entry with this name.
    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// An immutable record of an origin's tree at scan time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The origin, as its canonical URL or absolute path.
    pub origin: String,
    /// When the scan finished, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The root directory's tree.
    pub root: TreeId,
    /// Number of regular files.
    pub files: u64,
    /// Total bytes of regular files.
    pub bytes: u64,
}

impl SnapshotRecord {
    /// The snapshot's id: the hash of the record.
    pub fn snapshot_id(&self) -> SnapshotId {
        SnapshotId::of_encoded(&encode(self))
    }
}

/// Encodes a format type. Encoding plain data into a `Vec` cannot fail.
///
/// Sized first, by a pass that allocates nothing, so that the bytes go into one allocation: a
/// `Vec` grown as it is written took about a dozen for each file's chunk list, which a cold
/// sync encodes twice per file (`docs/benchmarks.md`, "How many allocations, and where").
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let size =
        postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default()).unwrap_or(0);
    postcard::to_extend(value, Vec::with_capacity(size)).unwrap_or_default()
}

/// Decodes a format type; `None` when the bytes are not a valid encoding.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_list_offsets_and_identity() {
        let a = ChunkRef {
            id: ChunkId::of(b"a"),
            len: 10,
        };
        let b = ChunkRef {
            id: ChunkId::of(b"b"),
            len: 5,
        };
        let list = ChunkList {
            chunks: vec![a, b, a],
            ..ChunkList::default()
        };
        let offsets: Vec<u64> = list.with_offsets().map(|(o, _)| o).collect();
        assert_eq!(offsets, vec![0, 10, 15]);
        assert_eq!(list.size(), 25);
        let decoded: ChunkList = decode(&list.encode()).expect("round trip");
        assert_eq!(decoded.content_id(), list.content_id());
        assert_ne!(list.content_id(), ChunkList::default().content_id());
    }

    #[test]
    fn the_sized_encoding_is_postcards_own() {
        let chunks: Vec<ChunkRef> = (0..300u32)
            .map(|i| ChunkRef {
                id: ChunkId::of(&i.to_le_bytes()),
                len: 1 + i * 977,
            })
            .collect();
        let list = ChunkList {
            format: crate::media::Format::Mp3,
            regions: vec![crate::media::Region {
                kind: crate::media::RegionKind::Tag,
                offset: 0,
                len: 300,
                transform: None,
            }],
            chunks,
            file_hash: None,
        };
        let encoded = list.encode();
        assert_eq!(encoded, postcard::to_stdvec(&list).expect("postcard"));
        assert_eq!(
            encoded.capacity(),
            encoded.len(),
            "one allocation of the exact size"
        );
    }

    /// The example in `docs/format.md`.
    #[test]
    fn chunk_list_encoding_is_as_documented() {
        let id = ChunkId::of(b"x");
        let list = ChunkList {
            format: Format::Opaque,
            regions: crate::media::Layout::opaque(65_536).regions,
            chunks: vec![ChunkRef { id, len: 65_536 }],
            file_hash: None,
        };
        let mut expected = vec![0x00, 0x01, 0x04, 0x00, 0x80, 0x80, 0x04, 0x00, 0x01];
        expected.extend_from_slice(id.as_bytes());
        expected.extend_from_slice(&[0x80, 0x80, 0x04, 0x00]);
        assert_eq!(list.encode(), expected);
        assert_eq!(ChunkList::default().encode(), vec![0, 0, 0, 0]);
    }

    #[test]
    fn tree_lookup_by_name() {
        let tree = Tree {
            entries: vec![
                TreeEntry {
                    name: b"a".to_vec(),
                    node: Node::Symlink {
                        target: b"x".to_vec(),
                    },
                },
                TreeEntry {
                    name: b"b".to_vec(),
                    node: Node::Symlink {
                        target: b"y".to_vec(),
                    },
                },
            ],
        };
        assert!(tree.get(b"b").is_some());
        assert!(tree.get(b"c").is_none());
    }
}
