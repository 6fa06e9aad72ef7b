//! The database's tables. Their key and value types are the on-disk format (`docs/format.md`);
//! changing one is a format change and must bump `FORMAT_VERSION`.

use redb::TableDefinition;

/// `"format"` → version; counters `"next_origin"`, `"next_file"`.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Origin URL or absolute path → origin id.
pub const ORIGINS: TableDefinition<&str, u64> = TableDefinition::new("origins");
/// Content id → postcard `ChunkList`.
pub const CONTENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("contents");
/// Content id → postcard `MediaRecord` (audio hash, tags, properties), for contents whose
/// file was read.
pub const MEDIA: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("media");
/// Tree id → postcard `Tree`.
pub const TREES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("trees");
/// (origin id, relative path) → postcard `ScanEntry`.
pub const SCAN: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("scan");
/// File id → (origin id, relative path): where the file lives now.
pub const FILES: TableDefinition<u64, (u64, &[u8])> = TableDefinition::new("files");
/// Formats 2 to 4: (chunk id, origin id, file id) → (offset, length), where a chunk's bytes
/// could be read. Format 5 replaces it by `chunk_contents` and `content_files`; only the
/// upgrade names it, to drop it.
pub const CHUNK_LOCS: TableDefinition<(&[u8; 32], u64, u64), (u64, u32)> =
    TableDefinition::new("chunk_locations");
/// (chunk id's first 8 bytes, content id's first 8 bytes) → (): which chunk lists hold a
/// chunk, a row per distinct chunk of each stored chunk list (format 5; `locations.rs`).
pub const CHUNK_CONTENTS: TableDefinition<(u64, u64), ()> = TableDefinition::new("chunk_contents");
/// (content id's first 8 bytes, origin id, file id) → (): which files of an origin hold a
/// chunk list, a row per scan entry (format 5; `locations.rs`).
pub const CONTENT_FILES: TableDefinition<(u64, u64, u64), ()> =
    TableDefinition::new("content_files");
/// (group of leads, sequence number) in one number → location rows not yet in
/// `chunk_contents` and `content_files`, a value per commit that staged them and group of
/// their keys' leads (`locations::Staged`; values a release before the grouping wrote lie
/// under plain sequence numbers, below every group's): a bulk writer appends its rows here,
/// and they are written into their tables in key order, all at once, by the next merge
/// (`locations::merge_staged`). Absent or empty: nothing waits. Added in format 5 without a
/// version change: a release that does not know it ignores it, and then misses only the
/// rows a crash left waiting here (lookups that find nothing, as `check` says).
pub const STAGED: TableDefinition<u64, &[u8]> = TableDefinition::new("staged_locations");
/// Sequence number → postcard `SnapshotRecord`, in the order snapshots were taken.
pub const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");
/// Chunk id → (pack id, offset in the pack, stored length, length): where a history chunk's
/// compressed bytes are kept (format 3).
pub const KEPT: TableDefinition<&[u8; 32], (&[u8; 32], u64, u32, u32)> =
    TableDefinition::new("kept_chunks");
/// Content id → 0: contents whose history chunks (tags, padding, container structure) are all
/// in `kept_chunks` (format 3).
pub const HISTORY: TableDefinition<&[u8; 32], u8> = TableDefinition::new("history");
