//! The chunk repository: which chunks exist and where their bytes can be read, the snapshots,
//! and each origin's scan state.
//!
//! One redb database (`index.redb`) holds everything; `docs/format.md` describes its tables.
//! Chunks are not copied into the repository: for a local origin, a chunk's bytes stay inside
//! the scanned file and the repository records *where* (file, offset, length), so a mirrored
//! library does not cost its size twice. A recorded location can go stale (the file was edited
//! behind our back); readers must therefore re-hash every chunk they read, which `sync` and
//! `verify` do. This module knows nothing of origins, scanning or syncing.

mod lock;
mod tables;

pub use lock::DestinationLock;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, SnapshotId, TreeId};
use crate::snapshot::{decode, encode, ChunkList, MediaRecord, SnapshotRecord, Tree};
use tables::*;

/// The repository format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

/// Bytes of database pages kept in memory.
const CACHE_SIZE: usize = 32 << 20;

/// A number naming one origin inside this repository.
pub type OriginId = u64;

/// What the last scan saw of one regular file: enough to tell, from `lstat` alone, whether the
/// file must be read again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEntry {
    /// Stable number of this file within the repository; survives renames detected by inode.
    pub file_id: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// Inode change time, ns since the epoch: catches editors that restore the mtime.
    pub ctime_ns: i64,
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Permission bits.
    pub mode: u32,
    /// The content read at that time.
    pub content: ContentId,
}

/// Where one chunk's bytes can be read within an origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkLocation {
    /// The file, relative to the origin's root, as bytes.
    pub path: Vec<u8>,
    /// Offset of the chunk within the file.
    pub offset: u64,
    /// Length of the chunk.
    pub len: u32,
}

/// An open repository.
pub struct Repository {
    root: PathBuf,
    db: Database,
}

fn db_error(root: &Path, e: impl std::fmt::Display) -> Error {
    Error::Repository {
        path: root.to_path_buf(),
        message: e.to_string(),
    }
}

impl Repository {
    /// The embedded default: `$XDG_DATA_HOME/musicfs`, else `~/.local/share/musicfs`.
    pub fn default_root() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("musicfs"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share/musicfs"))
    }

    /// Opens the repository at `root`, creating it if it does not exist.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root.join("locks")).map_err(|e| Error::io(root, e))?;
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            // redb caches the pages it touches up to this bound; its default (1 GiB) would let
            // the index of a large library set the process's peak memory.
            .set_cache_size(CACHE_SIZE)
            .create(root.join("index.redb"))
            .map_err(|e| db_error(root, e))?;
        let repo = Repository {
            root: root.to_path_buf(),
            db,
        };
        repo.init()?;
        Ok(repo)
    }

    fn init(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let found = meta
                .get("format")
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match found {
                None => {
                    meta.insert("format", u64::from(FORMAT_VERSION))
                        .map_err(|e| self.err(e))?;
                }
                Some(v) if v == u64::from(FORMAT_VERSION) => {}
                Some(v) => {
                    return Err(Error::Format {
                        path: self.root.clone(),
                        found: u32::try_from(v).unwrap_or(u32::MAX),
                        supported: FORMAT_VERSION,
                    })
                }
            }
            // Create every table so that readers never meet a missing one.
            txn.open_table(ORIGINS).map_err(|e| self.err(e))?;
            txn.open_table(CONTENTS).map_err(|e| self.err(e))?;
            txn.open_table(MEDIA).map_err(|e| self.err(e))?;
            txn.open_table(TREES).map_err(|e| self.err(e))?;
            txn.open_table(SCAN).map_err(|e| self.err(e))?;
            txn.open_table(FILES).map_err(|e| self.err(e))?;
            txn.open_table(CHUNK_LOCS).map_err(|e| self.err(e))?;
            txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        db_error(&self.root, e)
    }

    fn corrupt(&self, what: String) -> Error {
        Error::Corrupt {
            path: self.root.clone(),
            what,
        }
    }

    /// The repository's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the lock that keeps two syncs off one destination. Fails at once with
    /// [`Error::Locked`] when another process holds it.
    pub fn lock_destination(&self, destination: &str) -> Result<DestinationLock> {
        DestinationLock::acquire(&self.root.join("locks"), destination)
    }

    /// The id of an origin, registering it on first use.
    pub fn origin_id(&self, url: &str) -> Result<OriginId> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let origins = read.open_table(ORIGINS).map_err(|e| self.err(e))?;
        if let Some(id) = origins.get(url).map_err(|e| self.err(e))? {
            return Ok(id.value());
        }
        drop(origins);
        drop(read);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let id;
        {
            let mut origins = txn.open_table(ORIGINS).map_err(|e| self.err(e))?;
            let existing = origins
                .get(url)
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            id = match existing {
                Some(id) => id,
                None => {
                    let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                    let next = next_counter(&mut meta, "next_origin").map_err(|e| self.err(e))?;
                    origins.insert(url, next).map_err(|e| self.err(e))?;
                    next
                }
            };
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// The id of an origin the repository knows, without registering it.
    pub fn find_origin(&self, url: &str) -> Result<Option<OriginId>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let origins = read.open_table(ORIGINS).map_err(|e| self.err(e))?;
        let found = origins.get(url).map_err(|e| self.err(e))?;
        Ok(found.map(|id| id.value()))
    }

    /// Every file the last scan of `origin` recorded, sorted by path.
    pub fn scan_state(&self, origin: OriginId) -> Result<Vec<(Vec<u8>, ScanEntry)>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let scan = read.open_table(SCAN).map_err(|e| self.err(e))?;
        let empty: &[u8] = &[];
        let mut out = Vec::new();
        for item in scan
            .range((origin, empty)..(origin + 1, empty))
            .map_err(|e| self.err(e))?
        {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let (_, path) = key.value();
            let entry: ScanEntry = decode(value.value()).ok_or_else(|| {
                self.corrupt(format!("scan entry {}", String::from_utf8_lossy(path)))
            })?;
            out.push((path.to_vec(), entry));
        }
        Ok(out)
    }

    /// The chunk list of a content id.
    pub fn content(&self, id: &ContentId) -> Result<ChunkList> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(CONTENTS).map_err(|e| self.err(e))?;
        let bytes = table
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt(format!("missing chunk list {}", id.short())))?;
        let list: ChunkList = decode(bytes.value())
            .filter(|l: &ChunkList| l.content_id() == *id)
            .ok_or_else(|| self.corrupt(format!("chunk list {}", id.short())))?;
        Ok(list)
    }

    /// What is known of a content's audio: its audio hash, tags and properties.
    pub fn media(&self, id: &ContentId) -> Result<Option<MediaRecord>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(MEDIA).map_err(|e| self.err(e))?;
        let Some(bytes) = table.get(id.as_bytes()).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        decode(bytes.value())
            .map(Some)
            .ok_or_else(|| self.corrupt(format!("media record {}", id.short())))
    }

    /// A directory listing by id.
    pub fn tree(&self, id: &TreeId) -> Result<Tree> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(TREES).map_err(|e| self.err(e))?;
        let bytes = table
            .get(id.as_bytes())
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.corrupt(format!("missing tree {}", id.short())))?;
        decode(bytes.value())
            .filter(|t: &Tree| t.tree_id() == *id)
            .ok_or_else(|| self.corrupt(format!("tree {}", id.short())))
    }

    /// Whether the tree `id` is stored.
    pub fn has_tree(&self, id: &TreeId) -> Result<bool> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(TREES).map_err(|e| self.err(e))?;
        Ok(table.get(id.as_bytes()).map_err(|e| self.err(e))?.is_some())
    }

    /// Whether the chunk list `id` is stored.
    pub fn has_content(&self, id: &ContentId) -> Result<bool> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(CONTENTS).map_err(|e| self.err(e))?;
        Ok(table.get(id.as_bytes()).map_err(|e| self.err(e))?.is_some())
    }

    /// Where `chunk` can be read within `origin`: every recorded location.
    pub fn chunk_locations(&self, chunk: &ChunkId, origin: OriginId) -> Result<Vec<ChunkLocation>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let locs = read.open_table(CHUNK_LOCS).map_err(|e| self.err(e))?;
        let files = read.open_table(FILES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let range = locs
            .range((chunk.as_bytes(), origin, 0)..=(chunk.as_bytes(), origin, u64::MAX))
            .map_err(|e| self.err(e))?;
        for item in range {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let (_, _, file_id) = key.value();
            let (offset, len) = value.value();
            if let Some(file) = files.get(file_id).map_err(|e| self.err(e))? {
                let (_, path) = file.value();
                out.push(ChunkLocation {
                    path: path.to_vec(),
                    offset,
                    len,
                });
            }
        }
        Ok(out)
    }

    /// For each chunk, whether `origin` has a recorded location of it (one read transaction
    /// for them all).
    pub fn located(&self, chunks: &[ChunkId], origin: OriginId) -> Result<Vec<bool>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let locs = read.open_table(CHUNK_LOCS).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let mut range = locs
                .range((chunk.as_bytes(), origin, 0)..=(chunk.as_bytes(), origin, u64::MAX))
                .map_err(|e| self.err(e))?;
            out.push(range.next().is_some());
        }
        Ok(out)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, SnapshotRecord)>> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = read.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            let record: SnapshotRecord = decode(value.value())
                .ok_or_else(|| self.corrupt(format!("snapshot #{}", key.value())))?;
            out.push((record.snapshot_id(), record));
        }
        Ok(out)
    }

    /// The newest snapshot of an origin.
    pub fn latest_snapshot(&self, origin: &str) -> Result<Option<(SnapshotId, SnapshotRecord)>> {
        Ok(self
            .snapshots()?
            .into_iter()
            .rev()
            .find(|(_, r)| r.origin == origin))
    }

    /// Starts a batch of changes, applied atomically by [`RepoWriter::commit`].
    pub fn writer(&self) -> Result<RepoWriter<'_>> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        Ok(RepoWriter {
            repo: self,
            txn,
            dirty: false,
        })
    }

    /// Bytes the repository occupies on disk.
    pub fn disk_usage(&self) -> Result<u64> {
        let mut total = 0;
        for entry in walkdir::WalkDir::new(&self.root) {
            let entry = entry.map_err(|e| db_error(&self.root, e))?;
            if entry.file_type().is_file() {
                total += entry.metadata().map_err(|e| db_error(&self.root, e))?.len();
            }
        }
        Ok(total)
    }

    /// Every stored chunk list and tree, re-hashed against its id; returns the number checked
    /// and the descriptions of the damaged ones.
    pub fn check_objects(&self) -> Result<(u64, Vec<String>)> {
        let read = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut checked = 0;
        let mut damaged = Vec::new();
        let contents = read.open_table(CONTENTS).map_err(|e| self.err(e))?;
        for item in contents.iter().map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            checked += 1;
            let ok = decode::<ChunkList>(value.value())
                .is_some_and(|l| l.content_id().as_bytes() == key.value());
            if !ok {
                damaged.push(format!(
                    "chunk list {}",
                    ContentId::from_stored(*key.value()).short()
                ));
            }
        }
        let trees = read.open_table(TREES).map_err(|e| self.err(e))?;
        for item in trees.iter().map_err(|e| self.err(e))? {
            let (key, value) = item.map_err(|e| self.err(e))?;
            checked += 1;
            let ok = decode::<Tree>(value.value())
                .is_some_and(|t| t.tree_id().as_bytes() == key.value());
            if !ok {
                damaged.push(format!(
                    "tree {}",
                    TreeId::from_stored(*key.value()).short()
                ));
            }
        }
        Ok((checked, damaged))
    }
}

fn next_counter(
    meta: &mut redb::Table<'_, &'static str, u64>,
    name: &'static str,
) -> std::result::Result<u64, redb::StorageError> {
    let next = meta.get(name)?.map(|v| v.value()).unwrap_or(1);
    meta.insert(name, next + 1)?;
    Ok(next)
}

/// A batch of changes to the repository, committed atomically.
pub struct RepoWriter<'r> {
    repo: &'r Repository,
    txn: redb::WriteTransaction,
    /// Whether anything was written: a batch that wrote nothing is not committed, which
    /// spares an unchanged rescan its fsync.
    dirty: bool,
}

impl RepoWriter<'_> {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        self.repo.err(e)
    }

    /// Stores a chunk list (once per distinct content) and returns its id.
    pub fn put_content(&mut self, list: &ChunkList) -> Result<ContentId> {
        let bytes = list.encode();
        let id = ContentId::of_encoded(&bytes);
        self.put_object(CONTENTS, id.as_bytes(), &bytes)?;
        Ok(id)
    }

    /// Stores what is known of a content's audio (replacing an earlier record).
    pub fn put_media(&mut self, id: &ContentId, media: &MediaRecord) -> Result<()> {
        self.dirty = true;
        let mut table = self.txn.open_table(MEDIA).map_err(|e| self.err(e))?;
        table
            .insert(id.as_bytes(), encode(media).as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores a tree (once per distinct listing) and returns its id.
    pub fn put_tree(&mut self, tree: &Tree) -> Result<TreeId> {
        let bytes = tree.encode();
        let id = TreeId::of_encoded(&bytes);
        self.put_object(TREES, id.as_bytes(), &bytes)?;
        Ok(id)
    }

    /// Stores a content-addressed object under its id, once.
    fn put_object(
        &mut self,
        table: redb::TableDefinition<&[u8; 32], &[u8]>,
        id: &[u8; 32],
        bytes: &[u8],
    ) -> Result<()> {
        let mut table = self.txn.open_table(table).map_err(|e| self.err(e))?;
        if table.get(id).map_err(|e| self.err(e))?.is_none() {
            table.insert(id, bytes).map_err(|e| self.err(e))?;
            self.dirty = true;
        }
        Ok(())
    }

    fn load_content(&self, id: &ContentId) -> Result<Option<ChunkList>> {
        let table = self.txn.open_table(CONTENTS).map_err(|e| self.err(e))?;
        let found = table.get(id.as_bytes()).map_err(|e| self.err(e))?;
        Ok(found.and_then(|v| decode(v.value())))
    }

    fn set_locations(
        &mut self,
        origin: OriginId,
        file_id: u64,
        content: &ContentId,
        add: bool,
    ) -> Result<()> {
        let Some(list) = self.load_content(content)? else {
            return Ok(());
        };
        let mut locs = self.txn.open_table(CHUNK_LOCS).map_err(|e| self.err(e))?;
        for (offset, chunk) in list.with_offsets() {
            let key = (chunk.id.as_bytes(), origin, file_id);
            if add {
                locs.insert(key, (offset, chunk.len))
                    .map_err(|e| self.err(e))?;
            } else {
                locs.remove(key).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Records that `path` in `origin` now holds `entry` (whose `file_id` is ignored and
    /// assigned here). `previous` is what the repository knew of this file before: at the same
    /// path, or at an old path when the file was moved (the caller then calls
    /// [`RepoWriter::forget_path`] for the old path). Returns the entry as stored.
    pub fn record_file(
        &mut self,
        origin: OriginId,
        path: &[u8],
        mut entry: ScanEntry,
        previous: Option<&ScanEntry>,
    ) -> Result<ScanEntry> {
        self.dirty = true;
        entry.file_id = match previous {
            Some(p) => p.file_id,
            None => {
                let mut meta = self.txn.open_table(META).map_err(|e| self.err(e))?;
                next_counter(&mut meta, "next_file").map_err(|e| self.err(e))?
            }
        };
        match previous {
            Some(p) if p.content == entry.content => {}
            Some(p) => {
                self.set_locations(origin, p.file_id, &p.content, false)?;
                self.set_locations(origin, entry.file_id, &entry.content, true)?;
            }
            None => self.set_locations(origin, entry.file_id, &entry.content, true)?,
        }
        {
            let mut files = self.txn.open_table(FILES).map_err(|e| self.err(e))?;
            files
                .insert(entry.file_id, (origin, path))
                .map_err(|e| self.err(e))?;
            let mut scan = self.txn.open_table(SCAN).map_err(|e| self.err(e))?;
            scan.insert((origin, path), encode(&entry).as_slice())
                .map_err(|e| self.err(e))?;
        }
        Ok(entry)
    }

    /// The scan entry recorded at `path`, if any.
    pub fn scan_entry(&self, origin: OriginId, path: &[u8]) -> Result<Option<ScanEntry>> {
        let scan = self.txn.open_table(SCAN).map_err(|e| self.err(e))?;
        let found = scan.get((origin, path)).map_err(|e| self.err(e))?;
        Ok(found.and_then(|v| decode(v.value())))
    }

    /// Drops the scan entry at `path` without touching the file's chunk locations (the file
    /// lives on under another path).
    pub fn forget_path(&mut self, origin: OriginId, path: &[u8]) -> Result<()> {
        self.dirty = true;
        let mut scan = self.txn.open_table(SCAN).map_err(|e| self.err(e))?;
        scan.remove((origin, path)).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records that the file at `path` is gone: its scan entry and chunk locations go too.
    pub fn remove_file(&mut self, origin: OriginId, path: &[u8], entry: &ScanEntry) -> Result<()> {
        self.dirty = true;
        self.set_locations(origin, entry.file_id, &entry.content, false)?;
        self.forget_path(origin, path)?;
        let mut files = self.txn.open_table(FILES).map_err(|e| self.err(e))?;
        files.remove(entry.file_id).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Appends a snapshot record, unless the origin's latest snapshot has the same root.
    /// Returns the id of the snapshot that now describes the origin.
    pub fn add_snapshot(&mut self, record: &SnapshotRecord) -> Result<SnapshotId> {
        let mut table = self.txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
        let mut last_seq = 0;
        for item in table.iter().map_err(|e| self.err(e))?.rev() {
            let (key, value) = item.map_err(|e| self.err(e))?;
            last_seq = last_seq.max(key.value());
            if let Some(existing) = decode::<SnapshotRecord>(value.value()) {
                if existing.origin == record.origin {
                    if existing.root == record.root {
                        return Ok(existing.snapshot_id());
                    }
                    break;
                }
            }
        }
        if last_seq == 0 {
            last_seq = table
                .last()
                .map_err(|e| self.err(e))?
                .map(|(k, _)| k.value())
                .unwrap_or(0);
        }
        table
            .insert(last_seq + 1, encode(record).as_slice())
            .map_err(|e| self.err(e))?;
        self.dirty = true;
        Ok(record.snapshot_id())
    }

    /// Applies the batch durably (redb's multi-writer mode, which lets several processes
    /// share the database, allows only durable commits).
    pub fn commit(self) -> Result<()> {
        if !self.dirty {
            return self.txn.abort().map_err(|e| self.repo.err(e));
        }
        self.txn.commit().map_err(|e| self.repo.err(e))
    }
}
