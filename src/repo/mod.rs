//! The chunk repository: which chunks exist and where their bytes can be read, the snapshots,
//! and each origin's scan state.
//!
//! One redb database (`index.redb`) holds everything; `docs/format.md` describes its tables.
//! Chunks are not copied into the repository: for a local origin, a chunk's bytes stay inside
//! the scanned file and the repository records *where* (file, offset, length), so a mirrored
//! library does not cost its size twice (`locations.rs`: per chunk list, which files hold
//! it). A recorded location can go stale (the file was edited
//! behind our back); readers must therefore re-hash every chunk they read, which `sync` and
//! `verify` do. This module knows nothing of origins, scanning or syncing.

mod check;
mod config;
mod gc;
mod history;
mod layout;
mod location;
mod locations;
mod lock;
mod objects;
mod repair;
pub mod retention;
mod tables;

/// Chunk lists read through one read transaction ([`Repository::contents`]).
pub struct Contents<'a> {
    repo: &'a Repository,
    table: redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
}

/// Stored trees, read through one read transaction ([`Repository::trees`]).
pub struct Trees<'a> {
    repo: &'a Repository,
    table: redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
}

impl Trees<'_> {
    /// Tree `id`, as [`Repository::tree`] gives it, from this reader's transaction.
    pub fn get(&self, id: &TreeId) -> Result<Tree> {
        let repo = self.repo;
        repo.guard(|| {
            let bytes = self
                .table
                .get(id.as_bytes())
                .map_err(|e| repo.err(e))?
                .ok_or_else(|| repo.corrupt(format!("tree {} is missing", id.short())))?;
            decode(bytes.value())
                .filter(|t: &Tree| t.tree_id() == *id)
                .ok_or_else(|| repo.corrupt(format!("tree {} does not match its id", id.short())))
        })
    }

    /// Whether the tree `id` was stored when this reader was made.
    pub fn has(&self, id: &TreeId) -> Result<bool> {
        let repo = self.repo;
        repo.guard(|| {
            Ok(self
                .table
                .get(id.as_bytes())
                .map_err(|e| repo.err(e))?
                .is_some())
        })
    }
}

impl Contents<'_> {
    /// Chunk list `id`, as [`Repository::content`] gives it. One recorded after this reader
    /// was made is looked up in a transaction of its own.
    pub fn get(&self, id: &ContentId) -> Result<ChunkList> {
        match self.content_in(id)? {
            Some(list) => Ok(list),
            None => self.repo.content(id),
        }
    }

    fn content_in(&self, id: &ContentId) -> Result<Option<ChunkList>> {
        self.repo.content_in(&self.table, id)
    }
}

#[cfg(test)]
mod tests;
mod upgrade;
mod writer;

pub use check::{check, CheckReport};
pub use config::{
    ChunkerConfig, RepoConfig, ALGORITHMS, FASTCDC_2020, FASTCDC_2020_FIXED_AUDIO,
    FASTCDC_2020_FIXED_PICTURES,
};
pub use gc::{gc, ForgetReport, GcReport, Judged, OriginForget, LATEST_REASON};
pub use history::PackedChunk;
pub use location::Location;
pub use lock::DestinationLock;
pub use objects::{LocalObjects, ObjectId, ObjectKind, ObjectStore};
pub use repair::{repair_index, RepairReport};
pub use writer::{EncodedList, RepoWriter, Tables};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableHandle};
use serde::{Deserialize, Serialize};

use crate::contain;
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, SnapshotId, TreeId};
use crate::origin::ChangeKey;
use crate::snapshot::{decode, ChunkList, MediaRecord, SnapshotRecord, Tree};
use layout::{IndexLock, Survey};
use tables::*;

/// The repository format this build reads and writes.
pub const FORMAT_VERSION: u32 = 5;

/// The oldest format this build upgrades in place.
pub const OLDEST_UPGRADED: u32 = 2;

/// Bytes of database pages kept in memory.
const CACHE_SIZE: usize = 16 << 20;

/// A number naming one origin inside this repository.
pub type OriginId = u64;

/// What the last scan saw of one regular file: enough to tell, from `lstat` alone, whether the
/// file must be read again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEntry {
    /// Stable number of this file within the repository; survives renames detected by the
    /// change key's identity.
    pub file_id: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
    /// The change key the origin gave (`origin::ChangeKey`): for a POSIX file system the
    /// ctime, which catches editors that restore the mtime, and the inode, which survives
    /// renames. Stored as a compact enum (format 4; formats 2 and 3 had three plain fields).
    pub change: ChangeKey,
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
///
/// Every call into redb runs under `contain::quietly`: a page of `index.redb` damaged outside
/// redb can make redb panic, and that panic becomes [`Error::IndexDamaged`]. redb's own
/// corruption errors become the same. From then on the handle refuses every call with that
/// error, since redb's state after a panic is not to be trusted.
pub struct Repository {
    root: PathBuf,
    /// `None` only once dropped.
    db: Option<Database>,
    /// Set when the index was found damaged.
    damaged: AtomicBool,
    /// Location rows may wait in `staged_locations`: set when this handle opens (a run that
    /// stopped may have left some) and when a commit stages rows; cleared by a merge that
    /// found none or merged them.
    staged: AtomicBool,
    /// Held by a merge of staged rows while it runs: a lookup that merges first, or another
    /// merge, waits for one under way on another thread (a cold sync merges on a thread of
    /// its own while it plans) rather than looking before its rows are in their tables.
    merging: std::sync::Mutex<()>,
    /// Keeps `repair-index` from replacing the index while it is open (`None` in
    /// `repair-index` itself, which holds the lock exclusively).
    _lock: Option<IndexLock>,
    /// Immutable objects (history packs), under `objects/`.
    objects: Box<dyn ObjectStore>,
    /// `repo.toml`'s settings.
    config: RepoConfig,
}

/// What [`Repository::open_with`] does when `root` holds no repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Create {
    /// Fails with [`Error::NoRepository`].
    Never,
    /// Creates one in a missing or empty directory, and refuses any other.
    IfVacant,
    /// Creates one, whatever else the directory holds.
    Anywhere,
}

fn db_error(root: &Path, e: impl std::fmt::Display) -> Error {
    Error::Repository {
        path: root.to_path_buf(),
        message: e.to_string(),
    }
}

/// Bytes the files under `root` occupy.
fn disk_usage_of(root: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(|e| db_error(root, e))?;
        if entry.file_type().is_file() {
            total += entry.metadata().map_err(|e| db_error(root, e))?.len();
        }
    }
    Ok(total)
}

/// The library error for a redb error: corruption (including a file that is not a redb
/// database at all) is [`Error::IndexDamaged`], anything else [`Error::Repository`].
fn redb_error(root: &Path, e: redb::Error) -> Error {
    let damaged = |detail: String| Error::IndexDamaged {
        path: root.to_path_buf(),
        detail,
    };
    match e {
        redb::Error::Corrupted(message) => damaged(format!("redb: {message}")),
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            damaged(format!("redb: {io}"))
        }
        // Only a panic inside redb poisons its locks or a transaction, and that panic was
        // reported as damage already.
        redb::Error::LockPoisoned(_) | redb::Error::TransactionPoisoned => {
            damaged("redb failed on it earlier".into())
        }
        other => db_error(root, other),
    }
}

/// Opens (or creates) the database file, under containment: redb's open reads the file's
/// header and system tables, and may panic on a damaged one.
fn open_database(root: &Path, create: bool) -> Result<Database> {
    let path = root.join(layout::INDEX);
    let mut builder = Database::builder();
    builder
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        // redb caches the pages it touches up to this bound; its default (1 GiB) would let
        // the index of a large library set the process's peak memory.
        .set_cache_size(CACHE_SIZE);
    let opened = contain::quietly("redb", || {
        if create {
            builder.create(&path)
        } else {
            builder.open(&path)
        }
    });
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(redb_error(root, e.into())),
        Err(panic) => Err(Error::IndexDamaged {
            path: root.to_path_buf(),
            detail: format!("redb stopped on invalid data: {panic}"),
        }),
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

    /// Opens the repository at `root`, creating one when `root` holds none (whatever else it
    /// holds). For the embedded default location, the remote end of a sync, and programs
    /// that choose the directory themselves; a location a user typed is opened with
    /// [`Repository::open_existing`], so that a typo does not make a repository.
    ///
    /// A repository whose index is missing or empty fails with [`Error::IndexMissing`], a
    /// damaged index with [`Error::IndexDamaged`].
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with(root, Create::Anywhere, &ChunkerConfig::for_new_repository())
            .map(|(repo, _)| repo)
    }

    /// [`Repository::open`], a repository created here cutting files as `chunker` says (the
    /// agent's, which cuts as its client's repository). Returns it and whether it was created.
    pub fn open_creating(root: &Path, chunker: &ChunkerConfig) -> Result<(Self, bool)> {
        Self::open_with(root, Create::Anywhere, chunker)
    }

    /// Opens the repository at `root`; fails with [`Error::NoRepository`] when there is none.
    pub fn open_existing(root: &Path) -> Result<Self> {
        Self::open_with(root, Create::Never, &ChunkerConfig::for_new_repository())
            .map(|(repo, _)| repo)
    }

    /// `musicfs init`: creates a repository in `root` when it does not exist or is empty, or
    /// opens the one that is there. Returns it and whether it was created. A directory that
    /// holds anything else fails with [`Error::NotARepository`].
    pub fn init(root: &Path) -> Result<(Self, bool)> {
        Self::init_with(root, &ChunkerConfig::for_new_repository())
    }

    /// [`Repository::init`], a repository created here cutting files as `chunker` says (`init
    /// --chunker`). One that exists keeps its own settings.
    pub fn init_with(root: &Path, chunker: &ChunkerConfig) -> Result<(Self, bool)> {
        Self::open_with(root, Create::IfVacant, chunker)
    }

    /// `root`'s repository; one created (as `create` allows) cuts files as `chunker` says.
    fn open_with(root: &Path, create: Create, chunker: &ChunkerConfig) -> Result<(Self, bool)> {
        match (layout::survey(root)?, create) {
            (Survey::Repository(_), _) => {}
            (Survey::Vacant, Create::IfVacant | Create::Anywhere)
            | (Survey::Foreign, Create::Anywhere) => {
                return Ok((Self::create(root, chunker)?, true))
            }
            (Survey::Foreign, Create::IfVacant) => {
                return Err(Error::NotARepository {
                    path: root.to_path_buf(),
                })
            }
            (_, Create::Never) => {
                return Err(Error::NoRepository {
                    path: root.to_path_buf(),
                })
            }
        }
        let lock = IndexLock::shared(root)?;
        Ok((Self::open_present(root, Some(lock))?, false))
    }

    /// Opens a directory known to be a repository. `lock` is held for the handle's life;
    /// `None` when the caller holds the index lock exclusively (`repair-index`).
    fn open_present(root: &Path, lock: Option<IndexLock>) -> Result<Self> {
        // Looked at under the lock: a repair may have just replaced the index.
        if let Some(state) = layout::index_state(root)?.lost() {
            return Err(Error::IndexMissing {
                path: root.to_path_buf(),
                state,
            });
        }
        let repo = Self::with_database(root, open_database(root, false)?, lock)?;
        // A repository of the first release has no marker yet. It is added so that losing the
        // index is reported whatever happens to `locks/`; a read-only repository still opens.
        if let Err(e) = layout::write_marker(root, &ChunkerConfig::default()) {
            tracing::debug!("cannot mark {} as a repository: {e}", root.display());
        }
        Ok(repo)
    }

    /// A new repository: the database first, the marker last, so that an interrupted creation
    /// never looks like a repository that lost its index.
    fn create(root: &Path, chunker: &ChunkerConfig) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let db = open_database(root, true)?;
        let lock = IndexLock::shared(root)?;
        let mut repo = Self::with_database(root, db, Some(lock))?;
        layout::write_marker(root, chunker)?;
        // Read back: what every later command will read.
        repo.config = RepoConfig::read(&root.join(layout::MARKER))?;
        Ok(repo)
    }

    fn with_database(root: &Path, db: Database, lock: Option<IndexLock>) -> Result<Self> {
        let config = RepoConfig::read(&root.join(layout::MARKER))?;
        let repo = Repository {
            root: root.to_path_buf(),
            db: Some(db),
            damaged: AtomicBool::new(false),
            staged: AtomicBool::new(true),
            merging: std::sync::Mutex::new(()),
            _lock: lock,
            objects: Box::new(LocalObjects::new(root.join(layout::OBJECTS))),
            config,
        };
        crate::contain::set_last_words(
            Error::IndexDamaged {
                path: root.to_path_buf(),
                detail: "redb failed twice on it".to_string(),
            }
            .to_string(),
        );
        repo.prepare()?;
        Ok(repo)
    }

    /// Checks the format version (writing it into a new database) and creates every table.
    fn prepare(&self) -> Result<()> {
        self.guard(|| {
            if self.prepared()? {
                return Ok(());
            }
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
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
                    // 2 → 3: format 2 lacks only the history tables, which are created below
                    // (empty: the next scan of each origin fills them from the files as they
                    // are). 3 → 4: the scan state's change keys are rewritten. 4 → 5: the
                    // chunk locations per file become rows per chunk list and per file. One
                    // transaction does all, so the index is at one format or the other.
                    Some(v)
                        if (u64::from(OLDEST_UPGRADED)..u64::from(FORMAT_VERSION)).contains(&v) =>
                    {
                        tracing::info!(
                            "repository {}: upgrading format {v} to {FORMAT_VERSION}",
                            self.root.display()
                        );
                        if v < 4 {
                            let rows =
                                upgrade::scan_state_to_v4(&txn, v).map_err(|e| self.err(e))?;
                            tracing::debug!("{rows} scan-state rows given change keys");
                        }
                        let (lists, files) =
                            upgrade::locations_to_v5(&txn).map_err(|e| self.err(e))?;
                        tracing::debug!(
                            "chunk locations of {lists} chunk lists and {files} files recorded"
                        );
                        meta.insert("format", u64::from(FORMAT_VERSION))
                            .map_err(|e| self.err(e))?;
                    }
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
                txn.open_table(CHUNK_CONTENTS).map_err(|e| self.err(e))?;
                txn.open_table(CONTENT_FILES).map_err(|e| self.err(e))?;
                txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
                txn.open_table(KEPT).map_err(|e| self.err(e))?;
                txn.open_table(HISTORY).map_err(|e| self.err(e))?;
            }
            txn.commit().map_err(|e| self.err(e))
        })
    }

    /// Whether the format is this build's and every table exists: then opening writes
    /// nothing (no write transaction, no fsync, and nothing written into a damaged file).
    fn prepared(&self) -> Result<bool> {
        let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
        let meta = match read.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(self.err(e)),
        };
        let format = meta.get("format").map_err(|e| self.err(e))?;
        if format.map(|v| v.value()) != Some(u64::from(FORMAT_VERSION)) {
            return Ok(false);
        }
        let names: Vec<String> = read
            .list_tables()
            .map_err(|e| self.err(e))?
            .map(|t| t.name().to_string())
            .collect();
        let all = [
            ORIGINS.name(),
            CONTENTS.name(),
            MEDIA.name(),
            TREES.name(),
            SCAN.name(),
            FILES.name(),
            CHUNK_CONTENTS.name(),
            CONTENT_FILES.name(),
            SNAPSHOTS.name(),
            KEPT.name(),
            HISTORY.name(),
        ];
        Ok(all.iter().all(|table| names.iter().any(|n| n == table)))
    }

    /// Runs `f`, which calls into redb, with a panic inside it contained and reported as
    /// [`Error::IndexDamaged`]; after damage was found, refuses to run it at all.
    fn guard<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self.is_damaged() {
            return Err(self.damage("redb failed on it earlier".into()));
        }
        let result = contain::quietly("redb", f).unwrap_or_else(|panic| {
            Err(self.damage(format!("redb stopped on invalid data: {panic}")))
        });
        if matches!(result, Err(Error::IndexDamaged { .. })) {
            self.damaged.store(true, Ordering::Relaxed);
        }
        result
    }

    /// Whether this handle found the index damaged.
    fn is_damaged(&self) -> bool {
        self.damaged.load(Ordering::Relaxed)
    }

    fn damage(&self, detail: String) -> Error {
        Error::IndexDamaged {
            path: self.root.clone(),
            detail,
        }
    }

    fn db(&self) -> Result<&Database> {
        self.db
            .as_ref()
            .ok_or_else(|| self.damage("the database is closed".into()))
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        redb_error(&self.root, e.into())
    }

    fn corrupt(&self, what: String) -> Error {
        Error::Corrupt {
            path: self.root.clone(),
            what,
        }
    }

    /// The chunker this repository's files are cut with (`repo.toml`'s `[chunker]`).
    pub fn chunker(&self) -> crate::chunk::FastCdc {
        self.config.chunker.chunker()
    }

    /// The chunker's parameters (`repo.toml`'s `[chunker]`), as a chunk store compares them.
    pub fn chunker_config(&self) -> &ChunkerConfig {
        &self.config.chunker
    }

    /// The repository's object store (history packs).
    pub fn objects(&self) -> &dyn ObjectStore {
        &*self.objects
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
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let origins = read.open_table(ORIGINS).map_err(|e| self.err(e))?;
            if let Some(id) = origins.get(url).map_err(|e| self.err(e))? {
                return Ok(id.value());
            }
            drop(origins);
            drop(read);
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
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
                        let next = writer::next_counter(&mut meta, "next_origin")
                            .map_err(|e| self.err(e))?;
                        origins.insert(url, next).map_err(|e| self.err(e))?;
                        next
                    }
                };
            }
            txn.commit().map_err(|e| self.err(e))?;
            Ok(id)
        })
    }

    /// The id of an origin the repository knows, without registering it.
    pub fn find_origin(&self, url: &str) -> Result<Option<OriginId>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let origins = read.open_table(ORIGINS).map_err(|e| self.err(e))?;
            let found = origins.get(url).map_err(|e| self.err(e))?;
            Ok(found.map(|id| id.value()))
        })
    }

    /// The scan entry the last scan of `origin` recorded at `path`, if any (a read
    /// transaction: it never waits for a writer).
    pub fn scan_entry(&self, origin: OriginId, path: &[u8]) -> Result<Option<ScanEntry>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let scan = read.open_table(SCAN).map_err(|e| self.err(e))?;
            let found = scan.get((origin, path)).map_err(|e| self.err(e))?;
            Ok(found.and_then(|v| decode(v.value())))
        })
    }

    /// Every file the last scan of `origin` recorded, sorted by path.
    pub fn scan_state(&self, origin: OriginId) -> Result<Vec<(Vec<u8>, ScanEntry)>> {
        let mut out = Vec::new();
        self.scan_state_each(origin, |path, entry| {
            out.push((path.to_vec(), entry));
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands every file the last scan of `origin` recorded to `each`, in the order of their
    /// paths' bytes, from one read transaction: a scan merges them with its walk without
    /// holding the whole state in memory. An error from `each` stops the reading.
    pub fn scan_state_each(
        &self,
        origin: OriginId,
        mut each: impl FnMut(&[u8], ScanEntry) -> Result<()>,
    ) -> Result<()> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let scan = read.open_table(SCAN).map_err(|e| self.err(e))?;
            let empty: &[u8] = &[];
            for item in scan
                .range((origin, empty)..(origin + 1, empty))
                .map_err(|e| self.err(e))?
            {
                let (key, value) = item.map_err(|e| self.err(e))?;
                let (_, path) = key.value();
                let entry: ScanEntry = decode(value.value()).ok_or_else(|| {
                    self.corrupt(format!(
                        "the scan entry of {} does not decode",
                        String::from_utf8_lossy(path)
                    ))
                })?;
                each(path, entry)?;
            }
            Ok(())
        })
    }

    /// The chunk list of a content id.
    pub fn content(&self, id: &ContentId) -> Result<ChunkList> {
        let read = self.contents()?;
        read.content_in(id)?
            .ok_or_else(|| self.corrupt(format!("chunk list {} is missing", id.short())))
    }

    /// Chunk list `id` from `table`, checked against its id; `None` when `table` lacks it.
    fn content_in(
        &self,
        table: &redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
        id: &ContentId,
    ) -> Result<Option<ChunkList>> {
        self.guard(|| {
            let Some(bytes) = table.get(id.as_bytes()).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            let list: ChunkList = decode(bytes.value())
                .filter(|l: &ChunkList| l.content_id() == *id)
                .ok_or_else(|| {
                    self.corrupt(format!("chunk list {} does not match its id", id.short()))
                })?;
            Ok(Some(list))
        })
    }

    /// A reader of chunk lists that keeps one read transaction open, for a caller that reads
    /// many (a sync's plan and writes): one lookup each instead of a transaction each. It
    /// sees the repository as it was when made; a chunk list never changes once recorded,
    /// so it sees every list recorded before it, and the writes it overlaps are unhindered.
    pub fn contents(&self) -> Result<Contents<'_>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(CONTENTS).map_err(|e| self.err(e))?;
            Ok(Contents { repo: self, table })
        })
    }

    /// What is known of a content's audio: its audio hash, tags and properties.
    pub fn media(&self, id: &ContentId) -> Result<Option<MediaRecord>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(MEDIA).map_err(|e| self.err(e))?;
            let Some(bytes) = table.get(id.as_bytes()).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            decode(bytes.value())
                .map(Some)
                .ok_or_else(|| self.corrupt(format!("media record {} does not decode", id.short())))
        })
    }

    /// A directory listing by id.
    pub fn tree(&self, id: &TreeId) -> Result<Tree> {
        self.trees()?.get(id)
    }

    /// A reader of stored trees, one read transaction for all its lookups (it does not see
    /// trees recorded after it was made).
    pub fn trees(&self) -> Result<Trees<'_>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(TREES).map_err(|e| self.err(e))?;
            Ok(Trees { repo: self, table })
        })
    }

    /// Whether the tree `id` is stored.
    pub fn has_tree(&self, id: &TreeId) -> Result<bool> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(TREES).map_err(|e| self.err(e))?;
            Ok(table.get(id.as_bytes()).map_err(|e| self.err(e))?.is_some())
        })
    }

    /// Whether the chunk list `id` is stored.
    pub fn has_content(&self, id: &ContentId) -> Result<bool> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(CONTENTS).map_err(|e| self.err(e))?;
            Ok(table.get(id.as_bytes()).map_err(|e| self.err(e))?.is_some())
        })
    }

    /// Where `chunk` can be read within `origin`: one location per file that holds it (the
    /// chunk's first occurrence in the file). Location rows staged by a bulk writer are merged
    /// first.
    pub fn chunk_locations(&self, chunk: &ChunkId, origin: OriginId) -> Result<Vec<ChunkLocation>> {
        self.merge_before_lookup();
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let finder = self.finder(&read)?;
            finder.find(chunk, origin, false).map_err(|e| self.err(e))
        })
    }

    /// For each chunk, whether `origin` has a recorded location of it (one read transaction
    /// for them all).
    pub fn located(&self, chunks: &[ChunkId], origin: OriginId) -> Result<Vec<bool>> {
        if chunks.is_empty() {
            return Ok(Vec::new());
        }
        self.merge_before_lookup();
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let finder = self.finder(&read)?;
            let mut out = Vec::with_capacity(chunks.len());
            for chunk in chunks {
                let found = finder.find(chunk, origin, true).map_err(|e| self.err(e))?;
                out.push(!found.is_empty());
            }
            Ok(out)
        })
    }

    /// Notes that a commit has staged location rows.
    pub(super) fn note_staged(&self) {
        self.staged.store(true, Ordering::SeqCst);
    }

    /// Writes the location rows that wait in `staged_locations` (staged by this process's
    /// bulk writers, or left by a run that stopped) into their tables, in key order, in one
    /// transaction; returns how many there were. Reads one page when none wait. A bulk
    /// writer's owner calls it when the writer is done, and a chunk's lookup before it looks.
    /// Must not be called while this thread holds a [`RepoWriter`] (it takes the writer).
    pub fn merge_staged_locations(&self) -> Result<u64> {
        let _merging = self
            .merging
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Cleared before looking: rows a commit stages after the look set it again.
        if !self.staged.swap(false, Ordering::SeqCst) {
            return Ok(0);
        }
        let merged = self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let waiting = match read.open_table(STAGED) {
                Ok(table) => !table.is_empty().map_err(|e| self.err(e))?,
                Err(redb::TableError::TableDoesNotExist(_)) => false,
                Err(e) => return Err(self.err(e)),
            };
            drop(read);
            if !waiting {
                return Ok(0);
            }
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
            let rows = locations::merge_staged(&txn).map_err(|e| self.err(e))?;
            txn.commit().map_err(|e| self.err(e))?;
            tracing::debug!("{rows} staged location rows merged");
            Ok(rows)
        });
        if merged.is_err() {
            self.staged.store(true, Ordering::SeqCst);
        }
        merged
    }

    /// Merges staged location rows before a lookup, so that it finds them. A merge that
    /// fails (a repository this user may only read) leaves the lookup to find less: a chunk
    /// not found here is read from its source instead.
    fn merge_before_lookup(&self) {
        if let Err(e) = self.merge_staged_locations() {
            tracing::debug!("staged location rows not merged before a lookup: {e}");
        }
    }

    /// The tables a chunk's locations are found through, in `read`.
    #[allow(clippy::type_complexity)]
    fn finder(
        &self,
        read: &redb::ReadTransaction,
    ) -> Result<
        locations::Finder<
            redb::ReadOnlyTable<(u64, u64), ()>,
            redb::ReadOnlyTable<(u64, u64, u64), ()>,
            redb::ReadOnlyTable<u64, (u64, &'static [u8])>,
            redb::ReadOnlyTable<(u64, &'static [u8]), &'static [u8]>,
            redb::ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
        >,
    > {
        Ok(locations::Finder {
            chunk_contents: read.open_table(CHUNK_CONTENTS).map_err(|e| self.err(e))?,
            content_files: read.open_table(CONTENT_FILES).map_err(|e| self.err(e))?,
            files: read.open_table(FILES).map_err(|e| self.err(e))?,
            scan: read.open_table(SCAN).map_err(|e| self.err(e))?,
            contents: read.open_table(CONTENTS).map_err(|e| self.err(e))?,
        })
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, SnapshotRecord)>> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = read.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for item in table.iter().map_err(|e| self.err(e))? {
                let (key, value) = item.map_err(|e| self.err(e))?;
                let record: SnapshotRecord = decode(value.value()).ok_or_else(|| {
                    self.corrupt(format!("snapshot #{} does not decode", key.value()))
                })?;
                out.push((record.snapshot_id(), record));
            }
            Ok(out)
        })
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
        self.guard(|| {
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
            Ok(RepoWriter::new(self, txn))
        })
    }

    /// Bytes the repository occupies on disk.
    pub fn disk_usage(&self) -> Result<u64> {
        disk_usage_of(&self.root)
    }

    /// Every stored chunk list and tree, re-hashed against its id; returns the number checked
    /// and the descriptions of the damaged ones.
    pub fn check_objects(&self) -> Result<(u64, Vec<String>)> {
        self.guard(|| {
            let read = self.db()?.begin_read().map_err(|e| self.err(e))?;
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
        })
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        // redb's close commits (recording which pages are free, and trimming the file), and
        // that commit reads redb's list of freed pages. When that list is damaged, redb
        // panics there, then panics again in a destructor while unwinding, which aborts the
        // process: no `catch_unwind` can contain it. A database dropped while its thread
        // unwinds is closed as after a crash, without that commit. Nothing is lost: in
        // multi-writer mode every commit already recorded the free pages, so the next open
        // recovers from the header alone, without redb's full repair.
        if let Some(db) = self.db.take() {
            contain::drop_while_unwinding(db);
        }
    }
}
