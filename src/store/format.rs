//! The chunk store's objects, as bytes (`docs/format.md`, "Chunk store").
//!
//! Every object but a pack is `MAGIC`, one byte naming what it is, then the zstd-compressed
//! postcard encoding of its value. A pack is its blobs back to back, then a trailer that lists
//! them (so that a pack describes itself: a later gc or repair can rebuild index rows from
//! packs alone), then the trailer's length (u32, little-endian) and `PACK_MAGIC`. Ids are
//! BLAKE3 of the whole object, so a reader checks every object it fetches against its name.
//! Nothing here reads or writes a store; this module only encodes and decodes.

use serde::{Deserialize, Serialize};

use crate::repo::{ChunkerConfig, ObjectId};

/// The first bytes of every object but a pack.
const MAGIC: &[u8; 8] = b"mfstore\x01";
/// The last bytes of a pack.
const PACK_MAGIC: &[u8; 8] = b"mfpack\x00\x01";

/// The store format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// zstd's level for everything the store compresses: its default, fast and good on tag text
/// and postcard.
pub const LEVEL: i32 = 3;

/// The largest small object (config, index delta, snapshot) this build decodes; anything
/// larger is refused, not allocated. A delta names at most 16 packs.
pub const MAX_DECODED: usize = 256 << 20;

/// The largest blob this build reads, stored or decompressed: a chunk is at most 16 MiB
/// (`repo.toml`'s limit), a tree or chunk list far less. A larger length in an index delta is
/// damage, refused before anything is allocated.
pub const MAX_BLOB: u32 = 64 << 20;

/// Which object a header byte announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// [`StoreConfig`].
    Config = b'C' as isize,
    /// [`IndexDelta`].
    Index = b'I' as isize,
    /// [`StoreSnapshot`].
    Snapshot = b'S' as isize,
    /// [`GcMark`].
    Mark = b'M' as isize,
    /// [`GcLock`].
    Lock = b'L' as isize,
}

/// The `config` object: what every push and pull must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    /// [`FORMAT_VERSION`] of the build that made the store.
    pub version: u32,
    /// How files are cut into chunks: a push from a repository that cuts differently would
    /// share no chunk with the store, so it is refused.
    pub chunker: ChunkerParams,
    /// Target size of a pack, in bytes.
    pub pack_size: u32,
}

/// The chunker's parameters, as `repo.toml`'s `[chunker]` has them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// The algorithm's name (`fastcdc-2020`).
    pub algorithm: String,
    /// Smallest chunk.
    pub min_size: u32,
    /// Average chunk.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
}

impl From<&ChunkerConfig> for ChunkerParams {
    fn from(c: &ChunkerConfig) -> Self {
        ChunkerParams {
            algorithm: c.algorithm.clone(),
            min_size: c.min_size,
            avg_size: c.avg_size,
            max_size: c.max_size,
        }
    }
}

impl std::fmt::Display for ChunkerParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} min {} avg {} max {}",
            self.algorithm, self.min_size, self.avg_size, self.max_size
        )
    }
}

/// What a blob in a pack is. Each kind is its own namespace of ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlobKind {
    /// A chunk of a file (its id a `ChunkId`).
    Chunk,
    /// A directory tree (its id a `TreeId`: BLAKE3 of its encoding).
    Tree,
    /// A file's chunk list (its id a `ContentId`).
    Content,
}

/// One blob of a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry {
    /// What it is.
    pub kind: BlobKind,
    /// Its id in its kind's namespace.
    pub id: [u8; 32],
    /// Where its stored bytes start in the pack.
    pub offset: u32,
    /// How many bytes it occupies in the pack.
    pub stored: u32,
    /// Its length once decompressed (equal to `stored` when not compressed).
    pub raw: u32,
    /// Whether the stored bytes are a zstd frame.
    pub compressed: bool,
}

/// The blobs of one pack, as an index delta lists them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackRows {
    /// The pack's object id.
    pub pack: [u8; 32],
    /// Its blobs.
    pub entries: Vec<PackEntry>,
}

/// An index delta: the packs one push wrote (or part of them), with their blobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDelta {
    /// Who wrote it.
    pub host: String,
    /// When, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The packs.
    pub packs: Vec<PackRows>,
}

/// A snapshot of a library, as the store records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    /// The library's name: the origin the snapshot was scanned from.
    pub library: String,
    /// The host that pushed it.
    pub host: String,
    /// When the scan finished, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Its root tree.
    pub root: [u8; 32],
    /// Regular files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// The index deltas its push wrote: a reader whose listing does not show them yet (a
    /// store whose listings lag) fetches them by name.
    pub deltas: Vec<[u8; 32]>,
}

/// A gc mark: packs no snapshot needs (or whose live blobs gc copied into new packs), and the
/// index deltas that name only such packs, as of `time_ns`. Pushes that see it upload those
/// packs' blobs again; a gc at least the grace period later removes what is still unneeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcMark {
    /// The gc's host.
    pub host: String,
    /// When it was made (the gc's `now`), nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Packs with no live blob, or none that has no copy elsewhere.
    pub packs: Vec<[u8; 32]>,
    /// Of those, the packs that held live blobs, copied by the gc into new packs first.
    pub repacked: Vec<[u8; 32]>,
    /// Index deltas that name only marked packs.
    pub deltas: Vec<[u8; 32]>,
}

/// A gc lock: one per gc run, removed when it ends (`store::gc`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcLock {
    /// The gc's host.
    pub host: String,
    /// When it started (the gc's `now`), nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// Random, so that two gcs started at the same time write different objects.
    pub nonce: [u8; 16],
}

/// An object's bytes: header, then the compressed encoding.
pub fn encode_object<T: Serialize>(tag: Tag, value: &T) -> Vec<u8> {
    let plain = crate::snapshot::encode(value);
    // Compressing a buffer in memory fails only on allocation failure; keep it plain then.
    let packed = zstd::bulk::compress(&plain, LEVEL).unwrap_or_default();
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + packed.len());
    out.extend_from_slice(MAGIC);
    out.push(tag as u8);
    out.extend_from_slice(&packed);
    out
}

/// Decodes an object written by [`encode_object`] with `tag`; `Err` says why not.
pub fn decode_object<T: for<'a> Deserialize<'a>>(tag: Tag, bytes: &[u8]) -> Result<T, String> {
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Err("not a musicfs store object (bad magic)".into());
    };
    match body.split_first() {
        Some((t, packed)) if *t == tag as u8 => {
            let plain = decompress(packed, None)?;
            crate::snapshot::decode(&plain).ok_or_else(|| "does not decode".to_string())
        }
        Some((t, _)) => Err(format!("holds object type {:?}, not {:?}", *t as char, tag)),
        None => Err("truncated".into()),
    }
}

/// Decompresses one zstd frame, of `raw` bytes when known; at most [`MAX_DECODED`] bytes.
pub fn decompress(packed: &[u8], raw: Option<usize>) -> Result<Vec<u8>, String> {
    let limit = match raw {
        Some(n) => n,
        None => zstd::zstd_safe::get_frame_content_size(packed)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(MAX_DECODED)
            .min(MAX_DECODED),
    };
    let out = zstd::bulk::decompress(packed, limit).map_err(|e| format!("zstd: {e}"))?;
    if raw.is_some_and(|n| n != out.len()) {
        return Err("decompresses to the wrong length".into());
    }
    Ok(out)
}

/// A pack being filled.
#[derive(Debug, Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackBuilder {
    /// Adds a blob; compressed when `compress` and zstd makes it smaller.
    pub fn add(&mut self, kind: BlobKind, id: [u8; 32], data: &[u8], compress: bool) {
        let packed = compress
            .then(|| zstd::bulk::compress(data, LEVEL).ok())
            .flatten()
            .filter(|p| p.len() < data.len());
        let offset = self.bytes.len() as u32;
        let (stored, compressed) = match &packed {
            Some(p) => (p.as_slice(), true),
            None => (data, false),
        };
        self.bytes.extend_from_slice(stored);
        self.entries.push(PackEntry {
            kind,
            id,
            offset,
            stored: stored.len() as u32,
            raw: data.len() as u32,
            compressed,
        });
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the pack holds no blob.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a blob as another pack stores it (already compressed, or not): what a repack
    /// copies, byte for byte.
    pub fn add_stored(&mut self, entry: &PackEntry, stored: &[u8]) {
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(stored);
        self.entries.push(PackEntry { offset, ..*entry });
    }

    /// Puts `n` bytes before the first blob (offsets shift), so that the pack's id differs
    /// from that of a pack with the same blobs; call on an empty builder. Readers use offsets,
    /// so the padding is never read.
    pub fn pad(&mut self, padding: &[u8]) {
        self.bytes.extend_from_slice(padding);
    }

    /// The pack's bytes (blobs, trailer) and its rows; the builder is left empty.
    pub fn finish(&mut self) -> (Vec<u8>, Vec<PackEntry>) {
        let mut bytes = std::mem::take(&mut self.bytes);
        let entries = std::mem::take(&mut self.entries);
        let trailer =
            zstd::bulk::compress(&crate::snapshot::encode(&entries), LEVEL).unwrap_or_default();
        bytes.extend_from_slice(&trailer);
        bytes.extend_from_slice(&(trailer.len() as u32).to_le_bytes());
        bytes.extend_from_slice(PACK_MAGIC);
        (bytes, entries)
    }
}

/// The same blobs as pack `bytes` (whose rows are `entries`), with `padding` before them: a
/// pack with another id. What a writer puts instead of a pack whose id a gc mark names (that
/// pack may be removed at any time, whoever puts it again).
pub fn repad(bytes: &[u8], entries: &[PackEntry], padding: &[u8]) -> (Vec<u8>, Vec<PackEntry>) {
    let mut builder = PackBuilder::default();
    builder.pad(padding);
    for e in entries {
        let start = e.offset as usize;
        let stored = bytes
            .get(start..start + e.stored as usize)
            .unwrap_or_default();
        builder.add_stored(e, stored);
    }
    builder.finish()
}

/// The rows a pack's trailer lists (`tail` is at least the pack's last bytes: trailer, its
/// length and the magic). For a later gc or repair; a pull uses the index.
pub fn pack_trailer(tail: &[u8]) -> Result<Vec<PackEntry>, String> {
    let Some(rest) = tail.strip_suffix(PACK_MAGIC.as_slice()) else {
        return Err("not a musicfs store pack (bad magic)".into());
    };
    let Some(len_at) = rest.len().checked_sub(4) else {
        return Err("truncated".into());
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&rest[len_at..]);
    let len = u32::from_le_bytes(len) as usize;
    let Some(start) = len_at.checked_sub(len) else {
        return Err("trailer longer than what was read".into());
    };
    let plain = decompress(&rest[start..len_at], None)?;
    crate::snapshot::decode(&plain).ok_or_else(|| "trailer does not decode".to_string())
}

/// An object id from the 32 bytes stored in another object.
pub fn object_id(bytes: &[u8; 32]) -> ObjectId {
    ObjectId::from_bytes(*bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_refuse_other_types() {
        let snap = StoreSnapshot {
            library: "/music".into(),
            host: "a".into(),
            time_ns: 5,
            root: [1; 32],
            files: 2,
            bytes: 3,
            deltas: vec![[2; 32]],
        };
        let bytes = encode_object(Tag::Snapshot, &snap);
        assert_eq!(
            decode_object::<StoreSnapshot>(Tag::Snapshot, &bytes).unwrap(),
            snap
        );
        assert!(decode_object::<IndexDelta>(Tag::Index, &bytes).is_err());
        assert!(decode_object::<StoreSnapshot>(Tag::Snapshot, &bytes[..12]).is_err());
        assert!(decode_object::<StoreSnapshot>(Tag::Snapshot, b"garbage").is_err());
    }

    #[test]
    fn a_repadded_pack_has_another_id_and_the_same_blobs() {
        let mut pack = PackBuilder::default();
        pack.add(BlobKind::Chunk, [1; 32], &b"TITLE=".repeat(100), true);
        pack.add(BlobKind::Tree, [2; 32], b"tree bytes", false);
        let (bytes, entries) = pack.finish();
        let (other, moved) = repad(&bytes, &entries, &1u64.to_le_bytes());
        assert_ne!(ObjectId::of(&other), ObjectId::of(&bytes));
        assert_eq!(pack_trailer(&other).unwrap(), moved);
        for (a, b) in entries.iter().zip(&moved) {
            assert_eq!(b.offset, a.offset + 8);
            assert_eq!(
                (a.kind, a.id, a.stored, a.raw),
                (b.kind, b.id, b.stored, b.raw)
            );
            let (x, y) = (a.offset as usize, b.offset as usize);
            assert_eq!(
                bytes[x..x + a.stored as usize],
                other[y..y + b.stored as usize]
            );
        }
        // Padding again replaces the padding: the same blobs, a third id.
        let (third, _) = repad(&other, &moved, &2u64.to_le_bytes());
        assert_ne!(ObjectId::of(&third), ObjectId::of(&other));
        assert_eq!(third.len(), other.len());
    }

    #[test]
    fn packs_hold_blobs_and_describe_themselves() {
        let mut pack = PackBuilder::default();
        let text = b"TITLE=".repeat(100);
        let noise: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        pack.add(BlobKind::Chunk, [1; 32], &text, true);
        pack.add(BlobKind::Chunk, [2; 32], &noise, false);
        let (bytes, entries) = pack.finish();
        assert!(pack.is_empty());
        assert!(entries[0].compressed && entries[0].stored < entries[0].raw);
        assert!(!entries[1].compressed);
        let at = entries[0].offset as usize;
        let first = &bytes[at..at + entries[0].stored as usize];
        assert_eq!(decompress(first, Some(text.len())).unwrap(), text);
        let at = entries[1].offset as usize;
        assert_eq!(&bytes[at..at + 1000], noise.as_slice());
        assert_eq!(pack_trailer(&bytes).unwrap(), entries);
        assert!(pack_trailer(&bytes[..bytes.len() - 1]).is_err());
        assert!(decompress(first, Some(text.len() + 1)).is_err());
    }
}
