//! A batch of changes to the repository, committed atomically: what a scan records.

use redb::{ReadableTable, Table};

use super::history::{PackedChunk, PendingPack};
use super::locations;
use super::tables::*;
use super::{OriginId, Repository, ScanEntry};
use crate::contain;
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, SnapshotId, TreeId};
use crate::snapshot::{decode, encode, ChunkList, MediaRecord, SnapshotRecord, Tree};

/// Hands out the counter `name` of the `meta` table (counters start at 1).
pub(super) fn next_counter(
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
    /// `None` once committed, aborted or dropped.
    txn: Option<redb::WriteTransaction>,
    /// Whether anything was written: a batch that wrote nothing is not committed, which
    /// spares an unchanged rescan its fsync.
    dirty: bool,
    /// History chunks to keep, put into the object store just before the commit.
    history: PendingPack,
    /// The location rows of this batch, when they are staged ([`RepoWriter::stage_locations`]).
    staged: Option<locations::Staged>,
    /// Whether this transaction has merged the rows staged before it (a writer that changes
    /// location rows directly does, before its first change).
    merged: bool,
    /// Whether [`RepoWriter::settle`] has appended staged rows to this transaction.
    settled_staged: bool,
    /// The next file id, once this transaction has given one: counted here and written to
    /// `meta` at the commit, instead of a read and a write of that table per file recorded
    /// (a cold sync records 100,000 files on each side).
    next_file: Option<u64>,
}

impl Drop for RepoWriter<'_> {
    fn drop(&mut self) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        if self.repo.is_damaged() {
            // Rolling back reads the damaged file, and a second panic there would abort (see
            // `Repository`'s drop). Dropped while unwinding, the transaction is not rolled
            // back: redb leaves its pages for the next open's repair to reclaim.
            contain::drop_while_unwinding(txn);
            return;
        }
        let _ = contain::quietly("redb", move || drop(txn));
    }
}

impl<'r> RepoWriter<'r> {
    pub(super) fn new(repo: &'r Repository, txn: redb::WriteTransaction) -> Self {
        RepoWriter {
            repo,
            txn: Some(txn),
            dirty: false,
            history: PendingPack::default(),
            staged: None,
            merged: false,
            settled_staged: false,
            next_file: None,
        }
    }

    /// Stages this batch's location rows (`chunk_contents`, `content_files`) instead of
    /// inserting them: the commit appends them to `staged_locations`, and they reach their
    /// tables, in key order, at the next merge ([`Repository::merge_staged_locations`]). For
    /// writers that record many files in many commits (a scan, a sync's record of the
    /// destination); such a writer's owner merges when it is done. Until then, a chunk's
    /// lookup does not see the rows (it merges first when it may).
    pub fn stage_locations(&mut self) {
        self.staged.get_or_insert_with(Default::default);
    }

    fn err(&self, e: impl Into<redb::Error>) -> Error {
        self.repo.err(e)
    }

    fn txn(&self) -> Result<&redb::WriteTransaction> {
        self.txn
            .as_ref()
            .ok_or_else(|| self.repo.damage("the transaction is closed".into()))
    }

    /// The tables the file-recording methods write, each opened at its first use and kept
    /// open while the [`Tables`] lives: a caller recording many files asks for them once.
    pub fn tables(&mut self) -> Result<Tables<'_>> {
        let txn = self
            .txn
            .as_ref()
            .ok_or_else(|| self.repo.damage("the transaction is closed".into()))?;
        Ok(Tables {
            repo: self.repo,
            txn,
            dirty: &mut self.dirty,
            history: &mut self.history,
            staged: &mut self.staged,
            merged: &mut self.merged,
            next_file: &mut self.next_file,
            open: Open::default(),
        })
    }

    /// Stores a chunk list (once per distinct content) and returns its id.
    pub fn put_content(&mut self, list: &ChunkList) -> Result<ContentId> {
        self.tables()?.put_content(list)
    }

    /// Stores what is known of a content's audio (replacing an earlier record).
    pub fn put_media(&mut self, id: &ContentId, media: &MediaRecord) -> Result<()> {
        self.tables()?.put_media(id, media)
    }

    /// Keeps the history chunks of `content` ([`Tables::keep_history`]).
    pub fn keep_history(
        &mut self,
        content: &ContentId,
        chunks: &[(ChunkId, Vec<u8>)],
    ) -> Result<()> {
        self.tables()?.keep_history(content, chunks)
    }

    /// Stores a tree (once per distinct listing) and returns its id.
    pub fn put_tree(&mut self, tree: &Tree) -> Result<TreeId> {
        let repo = self.repo;
        repo.guard(|| {
            let bytes = tree.encode();
            let id = TreeId::of_encoded(&bytes);
            self.put_object(TREES, id.as_bytes(), &bytes)?;
            Ok(id)
        })
    }

    /// Stores trees given encoded, each with its id (`TreeId::of_encoded` of its bytes), once.
    pub(crate) fn put_encoded_trees(&mut self, trees: &[(TreeId, Vec<u8>)]) -> Result<()> {
        let repo = self.repo;
        repo.guard(|| {
            let mut table = self.txn()?.open_table(TREES).map_err(|e| self.err(e))?;
            let mut wrote = false;
            for (id, bytes) in trees {
                if table.get(id.as_bytes()).map_err(|e| self.err(e))?.is_none() {
                    table
                        .insert(id.as_bytes(), bytes.as_slice())
                        .map_err(|e| self.err(e))?;
                    wrote = true;
                }
            }
            drop(table);
            self.dirty |= wrote;
            Ok(())
        })
    }

    /// Stores a content-addressed object under its id, once; whether it was new.
    fn put_object(
        &mut self,
        table: redb::TableDefinition<&[u8; 32], &[u8]>,
        id: &[u8; 32],
        bytes: &[u8],
    ) -> Result<bool> {
        let mut table = self.txn()?.open_table(table).map_err(|e| self.err(e))?;
        let absent = table.get(id).map_err(|e| self.err(e))?.is_none();
        if absent {
            table.insert(id, bytes).map_err(|e| self.err(e))?;
        }
        drop(table);
        self.dirty |= absent;
        Ok(absent)
    }

    /// Records that `path` in `origin` now holds `entry` ([`Tables::record_file`]).
    pub fn record_file(
        &mut self,
        origin: OriginId,
        path: &[u8],
        entry: ScanEntry,
        previous: Option<&ScanEntry>,
    ) -> Result<ScanEntry> {
        self.tables()?.record_file(origin, path, entry, previous)
    }

    /// The scan entry recorded at `path`, if any.
    pub fn scan_entry(&mut self, origin: OriginId, path: &[u8]) -> Result<Option<ScanEntry>> {
        self.tables()?.scan_entry(origin, path)
    }

    /// Drops the scan entry at `path` without touching the file's chunk locations (the file
    /// lives on under another path).
    pub fn forget_path(&mut self, origin: OriginId, path: &[u8]) -> Result<()> {
        self.tables()?.forget_path(origin, path)
    }

    /// Records that the file at `path` is gone: its scan entry and chunk locations go too.
    pub fn remove_file(&mut self, origin: OriginId, path: &[u8], entry: &ScanEntry) -> Result<()> {
        self.tables()?.remove_file(origin, path, entry)
    }

    /// Appends a snapshot record, unless the origin's latest snapshot has the same root.
    /// Returns the id of the snapshot that now describes the origin.
    pub fn add_snapshot(&mut self, record: &SnapshotRecord) -> Result<SnapshotId> {
        let repo = self.repo;
        repo.guard(|| {
            let mut table = self.txn()?.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
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
            drop(table);
            self.dirty = true;
            Ok(record.snapshot_id())
        })
    }

    /// Puts into the transaction what this writer holds in memory for its commit, without
    /// committing: its history chunks go into a pack in the object store (durable there before
    /// any commit names them) and their rows into the transaction, its staged location rows
    /// into `staged_locations`. A writer that records batch after batch in one transaction (a
    /// scan's index writer, [`crate::scan`]) so holds one batch at a time in memory, and
    /// commits when it chooses.
    pub fn settle(&mut self) -> Result<()> {
        let repo = self.repo;
        let txn = self
            .txn
            .as_ref()
            .ok_or_else(|| repo.damage("the transaction is closed".into()))?;
        let history = std::mem::take(&mut self.history);
        if !history.is_empty() {
            repo.guard(|| history.seal(repo.objects(), txn))?
                .map_err(|e| repo.err(e))?;
            self.dirty = true;
        }
        if let Some(staged) = self.staged.as_mut().filter(|s| !s.is_empty()) {
            let staged = std::mem::take(staged);
            repo.guard(|| staged.append(txn).map_err(|e| repo.err(e)))?;
            self.dirty = true;
            self.settled_staged = true;
        }
        Ok(())
    }

    /// Applies the batch durably (redb's multi-writer mode, which lets several processes
    /// share the database, allows only durable commits).
    /// History chunks are put into the object store first, so that the index never names a
    /// pack that does not exist.
    pub fn commit(mut self) -> Result<()> {
        let repo = self.repo;
        let history = std::mem::take(&mut self.history);
        let staged = self.staged.take().filter(|s| !s.is_empty());
        let dirty = self.dirty || !history.is_empty() || staged.is_some();
        if repo.is_damaged() {
            return Err(repo.damage("redb failed on it earlier".into()));
        }
        let Some(txn) = self.txn.take() else {
            return Err(repo.damage("the transaction is closed".into()));
        };
        if !history.is_empty() {
            let sealed = repo.guard(|| history.seal(repo.objects(), &txn))?;
            if let Err(e) = sealed {
                return Err(repo.err(e));
            }
        }
        if let Some(staged) = &staged {
            repo.guard(|| staged.append(&txn).map_err(|e| repo.err(e)))?;
        }
        if let Some(next) = self.next_file {
            repo.guard(|| {
                let mut meta = txn.open_table(META).map_err(|e| repo.err(e))?;
                meta.insert("next_file", next).map_err(|e| repo.err(e))?;
                Ok::<_, Error>(())
            })?;
        }
        repo.guard(move || {
            if dirty {
                txn.commit().map_err(|e| repo.err(e))
            } else {
                txn.abort().map_err(|e| repo.err(e))
            }
        })?;
        if staged.is_some() || self.settled_staged {
            repo.note_staged();
        }
        Ok(())
    }
}

type Bytes = &'static [u8];
type Id = &'static [u8; 32];

/// The tables [`Tables`] has opened so far.
#[derive(Default)]
struct Open<'w> {
    meta: Option<Table<'w, &'static str, u64>>,
    files: Option<Table<'w, u64, (u64, Bytes)>>,
    scan: Option<Table<'w, (u64, Bytes), Bytes>>,
    contents: Option<Table<'w, Id, Bytes>>,
    chunk_contents: Option<Table<'w, (u64, u64), ()>>,
    content_files: Option<Table<'w, (u64, u64, u64), ()>>,
    media: Option<Table<'w, Id, Bytes>>,
    kept: Option<Table<'w, Id, (Id, u64, u32, u32)>>,
}

/// The table in `slot`, opened in `txn` first if it is not open yet.
fn opened<'a, 'w, K: redb::Key + 'static, V: redb::Value + 'static>(
    slot: &'a mut Option<Table<'w, K, V>>,
    txn: &'w redb::WriteTransaction,
    definition: redb::TableDefinition<K, V>,
) -> std::result::Result<&'a mut Table<'w, K, V>, redb::TableError> {
    match slot {
        Some(table) => Ok(table),
        None => Ok(slot.insert(txn.open_table(definition)?)),
    }
}

/// A chunk list encoded as the `contents` table stores it, with its id.
#[derive(Debug, Clone)]
pub struct EncodedList {
    /// [`ContentId::of_encoded`] of the bytes.
    pub id: ContentId,
    bytes: Vec<u8>,
}

impl EncodedList {
    /// Encodes `list`.
    pub fn of(list: &ChunkList) -> EncodedList {
        let bytes = list.encode();
        EncodedList {
            id: ContentId::of_encoded(&bytes),
            bytes,
        }
    }
}

/// The tables of a [`RepoWriter`]'s transaction that record scanned files: chunk lists, media
/// records, history chunks and scan entries. Each is opened when first written and stays open
/// until this is dropped, so a batch of files opens each once (an open and its close cost
/// about as much as a few inserts). While it lives, the writer is borrowed.
pub struct Tables<'w> {
    repo: &'w Repository,
    txn: &'w redb::WriteTransaction,
    dirty: &'w mut bool,
    history: &'w mut PendingPack,
    staged: &'w mut Option<locations::Staged>,
    merged: &'w mut bool,
    /// [`RepoWriter`]'s file-id counter.
    next_file: &'w mut Option<u64>,
    open: Open<'w>,
}

impl Drop for Tables<'_> {
    fn drop(&mut self) {
        let open = std::mem::take(&mut self.open);
        if self.repo.is_damaged() {
            contain::drop_while_unwinding(open);
            return;
        }
        let _ = contain::quietly("redb", move || drop(open));
    }
}

impl<'w> Tables<'w> {
    /// Merges the rows staged before this transaction, once, before it changes a location
    /// row directly: otherwise a row staged earlier would land after the change. Called
    /// before the location tables are opened here (the merge opens them itself).
    fn merge_first(&mut self) -> Result<()> {
        if !*self.merged {
            locations::merge_staged(self.txn).map_err(|e| self.repo.err(e))?;
            *self.merged = true;
        }
        Ok(())
    }

    /// Stores a chunk list (once per distinct content) and returns its id.
    pub fn put_content(&mut self, list: &ChunkList) -> Result<ContentId> {
        let encoded = EncodedList::of(list);
        self.put_encoded(&encoded, list)?;
        Ok(encoded.id)
    }

    /// [`Tables::put_content`] of `list` encoded already (`encoded` is [`EncodedList::of`]
    /// `list`): a caller that orders its writes by content id has the ids first.
    pub fn put_encoded(&mut self, encoded: &EncodedList, list: &ChunkList) -> Result<()> {
        let repo = self.repo;
        let EncodedList { id, bytes } = encoded;
        repo.guard(|| {
            let contents =
                opened(&mut self.open.contents, self.txn, CONTENTS).map_err(|e| repo.err(e))?;
            let absent = contents
                .get(id.as_bytes())
                .map_err(|e| repo.err(e))?
                .is_none();
            if absent {
                contents
                    .insert(id.as_bytes(), bytes.as_slice())
                    .map_err(|e| repo.err(e))?;
                *self.dirty = true;
                if let Some(staged) = self.staged.as_mut() {
                    staged.add_content(id, list);
                } else {
                    self.merge_first()?;
                    let table = opened(&mut self.open.chunk_contents, self.txn, CHUNK_CONTENTS)
                        .map_err(|e| repo.err(e))?;
                    locations::add_content(table, id, list).map_err(|e| repo.err(e))?;
                }
            }
            Ok(())
        })
    }

    /// Stores what is known of a content's audio (replacing an earlier record).
    pub fn put_media(&mut self, id: &ContentId, media: &MediaRecord) -> Result<()> {
        let repo = self.repo;
        repo.guard(|| {
            *self.dirty = true;
            let table = opened(&mut self.open.media, self.txn, MEDIA).map_err(|e| repo.err(e))?;
            table
                .insert(id.as_bytes(), encode(media).as_slice())
                .map_err(|e| repo.err(e))?;
            Ok(())
        })
    }

    /// Keeps the history chunks of `content` (`chunks`: every one of them, with its bytes,
    /// as `chunk::Chunked::history` gives them) in the repository, each chunk once. The
    /// bytes must be the chunks' (callers hash them first).
    pub fn keep_history(
        &mut self,
        content: &ContentId,
        chunks: &[(ChunkId, Vec<u8>)],
    ) -> Result<()> {
        let repo = self.repo;
        repo.guard(|| {
            let kept = opened(&mut self.open.kept, self.txn, KEPT).map_err(|e| repo.err(e))?;
            let mut new: Vec<&(ChunkId, Vec<u8>)> = Vec::new();
            for chunk in chunks {
                let id = &chunk.0;
                if self.history.holds(id) || new.iter().any(|(n, _)| n == id) {
                    continue;
                }
                if kept.get(id.as_bytes()).map_err(|e| repo.err(e))?.is_none() {
                    new.push(chunk);
                }
            }
            for (id, data) in new {
                self.history
                    .add(id, data)
                    .map_err(|e| Error::io(repo.root().join("objects"), e))?;
            }
            self.history.complete(content);
            Ok(())
        })
    }

    /// [`Tables::keep_history`] with the chunks compressed already (by the threads that read
    /// them).
    pub fn keep_packed(&mut self, content: &ContentId, chunks: &[PackedChunk]) -> Result<()> {
        self.keep_packed_many(std::iter::once((content, chunks)))
    }

    /// [`Tables::keep_packed`] for many contents at once: their chunks are looked up in chunk
    /// id order (a batch's thousands of lookups then walk the table's pages in order instead
    /// of descending to random ones), and each content is complete once all are kept.
    pub fn keep_packed_many<'c>(
        &mut self,
        contents: impl IntoIterator<Item = (&'c ContentId, &'c [PackedChunk])>,
    ) -> Result<()> {
        let mut done = Vec::new();
        let mut chunks: Vec<&PackedChunk> = Vec::new();
        for (content, packed) in contents {
            done.push(content);
            chunks.extend(packed);
        }
        chunks.sort_unstable_by(|a, b| a.id().as_bytes().cmp(b.id().as_bytes()));
        chunks.dedup_by(|a, b| a.id() == b.id());
        let repo = self.repo;
        repo.guard(|| {
            let kept = opened(&mut self.open.kept, self.txn, KEPT).map_err(|e| repo.err(e))?;
            for chunk in chunks {
                let id = chunk.id();
                if !self.history.holds(id)
                    && kept.get(id.as_bytes()).map_err(|e| repo.err(e))?.is_none()
                {
                    self.history.add_packed(chunk);
                }
            }
            for content in done {
                self.history.complete(content);
            }
            Ok(())
        })
    }

    /// Records (or, unless `add`, forgets) that file `file_id` of `origin` holds `content`:
    /// its chunks' locations follow from the content's chunk list.
    fn set_locations(
        &mut self,
        origin: OriginId,
        file_id: u64,
        content: &ContentId,
        add: bool,
    ) -> Result<()> {
        let key = locations::file_key(content, origin, file_id);
        if let Some(staged) = self.staged.as_mut() {
            staged.set_file(key, add);
            return Ok(());
        }
        self.merge_first()?;
        let table = opened(&mut self.open.content_files, self.txn, CONTENT_FILES)
            .map_err(|e| self.repo.err(e))?;
        if add {
            table.insert(key, ()).map_err(|e| self.repo.err(e))?;
        } else {
            table.remove(key).map_err(|e| self.repo.err(e))?;
        }
        Ok(())
    }

    /// Records that `path` in `origin` now holds `entry` (whose `file_id` is ignored and
    /// assigned here). `previous` is what the repository knew of this file before: at the same
    /// path, or at an old path when the file was moved (the caller then calls
    /// [`Tables::forget_path`] for the old path). Returns the entry as stored.
    pub fn record_file(
        &mut self,
        origin: OriginId,
        path: &[u8],
        mut entry: ScanEntry,
        previous: Option<&ScanEntry>,
    ) -> Result<ScanEntry> {
        let repo = self.repo;
        repo.guard(|| {
            *self.dirty = true;
            entry.file_id = match previous {
                Some(p) => p.file_id,
                None => {
                    let id = match *self.next_file {
                        Some(id) => id,
                        None => {
                            let meta = opened(&mut self.open.meta, self.txn, META)
                                .map_err(|e| repo.err(e))?;
                            let stored = meta.get("next_file").map_err(|e| repo.err(e))?;
                            stored.map_or(1, |v| v.value())
                        }
                    };
                    *self.next_file = Some(id + 1);
                    id
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
            let files = opened(&mut self.open.files, self.txn, FILES).map_err(|e| repo.err(e))?;
            files
                .insert(entry.file_id, (origin, path))
                .map_err(|e| repo.err(e))?;
            let scan = opened(&mut self.open.scan, self.txn, SCAN).map_err(|e| repo.err(e))?;
            scan.insert((origin, path), encode(&entry).as_slice())
                .map_err(|e| repo.err(e))?;
            Ok(entry)
        })
    }

    /// The scan entry recorded at `path`, if any.
    pub fn scan_entry(&mut self, origin: OriginId, path: &[u8]) -> Result<Option<ScanEntry>> {
        let repo = self.repo;
        repo.guard(|| {
            let scan = opened(&mut self.open.scan, self.txn, SCAN).map_err(|e| repo.err(e))?;
            let found = scan.get((origin, path)).map_err(|e| repo.err(e))?;
            Ok(found.and_then(|v| decode(v.value())))
        })
    }

    /// Drops the scan entry at `path` without touching the file's chunk locations (the file
    /// lives on under another path).
    pub fn forget_path(&mut self, origin: OriginId, path: &[u8]) -> Result<()> {
        let repo = self.repo;
        repo.guard(|| {
            *self.dirty = true;
            let scan = opened(&mut self.open.scan, self.txn, SCAN).map_err(|e| repo.err(e))?;
            scan.remove((origin, path)).map_err(|e| repo.err(e))?;
            Ok(())
        })
    }

    /// Records that the file at `path` is gone: its scan entry and chunk locations go too.
    pub fn remove_file(&mut self, origin: OriginId, path: &[u8], entry: &ScanEntry) -> Result<()> {
        let repo = self.repo;
        repo.guard(|| {
            *self.dirty = true;
            self.set_locations(origin, entry.file_id, &entry.content, false)?;
            self.forget_path(origin, path)?;
            let files = opened(&mut self.open.files, self.txn, FILES).map_err(|e| repo.err(e))?;
            files.remove(entry.file_id).map_err(|e| repo.err(e))?;
            Ok(())
        })
    }
}
