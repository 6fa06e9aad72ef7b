//! `musicfs repair-index`: a new index built from what can still be read of a damaged one.
//!
//! The damaged `index.redb` is kept as `index.redb.damaged-<UTC time>`, never deleted and never
//! written: it is read through a read-only redb handle (or, when redb would first have to
//! recover it from a crash, through a copy whose recovery flag is cleared, which is then
//! deleted). Each table is read forward from its first key until a read fails (an error, or a
//! panic inside redb, contained), then backward from its last key down to the last key read
//! forward, so one damaged page costs only the rows under it. Every row is checked as it is
//! copied: chunk lists and trees must hash to their ids, other values must decode.
//!
//! What is kept, and why the rest is safe to drop:
//! - `origins`, `contents`, `media`, `trees`: every row that reads and checks.
//! - `scan`: an entry whose origin and chunk list were kept. A lost entry makes the next scan
//!   of its origin read that file again, as if it were new.
//! - `files`, `chunk_contents` and `content_files` are not copied: they are rebuilt from the
//!   kept chunk lists and scan entries, so every location the new index holds is one a scan
//!   recorded.
//! - `snapshots`: a record whose every tree and chunk list was kept. A snapshot missing part
//!   of its tree is dropped, not kept half: `verify`, `diff` and `mount` would fail on it.
//! - `meta`: the format version, and counters past every id kept.
//!
//! The new index is built beside the old one (`index.redb.new`) and renamed over it, after
//! the old file got its second name, so at every moment `index.redb` is one whole index. The
//! index lock is held exclusively throughout: no other musicfs process has the repository
//! open.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{
    Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use serde::Serialize;

use super::check::{check_locked, valid_content, valid_tree};
use super::layout::{self, IndexLock, IndexState, Survey};
use super::tables::*;
use super::upgrade::decode_scan_entry;
use super::{redb_error, Repository, FORMAT_VERSION};
use crate::contain;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::snapshot::{decode, encode, MediaRecord, Node, SnapshotRecord};

/// The new index while it is built.
const NEW_INDEX: &str = "index.redb.new";
/// A copy of a damaged index that needs crash recovery, while it is read.
const SALVAGE_COPY: &str = "index.redb.salvage";
/// redb's file header: the god byte's offset and its "recovery required" flag (redb's
/// documented file format, `docs/design.md` in redb's sources).
const GOD_BYTE_OFFSET: u64 = 9;
const RECOVERY_REQUIRED: u8 = 2;

/// The tables a repair reports on, in the order it copies them.
const REPORTED: [&str; 6] = ["origins", "contents", "media", "trees", "scan", "snapshots"];

/// What `musicfs repair-index` did.
#[derive(Clone, Debug, Serialize)]
pub struct RepairReport {
    /// The repository directory.
    pub repository: PathBuf,
    /// What the index was: `healthy` (then nothing was done), `damaged`, `missing` or `empty`.
    pub index_was: &'static str,
    /// Where the old index file is now kept, when there was one.
    pub damaged_copy: Option<PathBuf>,
    /// Rows copied into the new index, per table (`origins`, `contents`, `media`, `trees`,
    /// `scan`, `snapshots`).
    pub kept: BTreeMap<&'static str, u64>,
    /// Rows the old index said each table held, for the tables whose header could be read.
    pub found: BTreeMap<&'static str, u64>,
}

/// Repairs the index of the repository at `root`: leaves a healthy index alone, and replaces
/// a damaged, missing or empty one with a new index holding what could be read of it.
pub fn repair_index(root: &Path) -> Result<RepairReport> {
    if !matches!(layout::survey(root)?, Survey::Repository(_)) {
        return Err(Error::NoRepository {
            path: root.to_path_buf(),
        });
    }
    let lock = IndexLock::exclusive(root, "repair-index")?;
    let state = layout::index_state(root)?;
    let mut report = RepairReport {
        repository: root.to_path_buf(),
        index_was: state.lost().unwrap_or("damaged"),
        damaged_copy: None,
        kept: REPORTED.iter().map(|t| (*t, 0)).collect(),
        found: BTreeMap::new(),
    };
    if state == IndexState::Present && check_locked(root, &lock)?.healthy {
        report.index_was = "healthy";
        report.kept.clear();
        return Ok(report);
    }

    let index = root.join(layout::INDEX);
    let new = root.join(NEW_INDEX);
    remove_if_present(&new)?;
    {
        let db = Database::builder()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .set_cache_size(super::CACHE_SIZE)
            .create(&new)
            .map_err(|e| redb_error(root, e.into()))?;
        let mut counters = Counters::default();
        if state == IndexState::Present {
            let source = Source::new(root, &index)?;
            let result = salvage(root, &source, &db, &mut report, &mut counters);
            source.remove_copy();
            result?;
        }
        finish(root, &db, &counters)?;
    }
    if state != IndexState::Missing {
        let aside = layout::damaged_name(root, unix_now());
        keep_aside(&index, &aside)?;
        report.damaged_copy = Some(aside);
    }
    fs::rename(&new, &index).map_err(|e| Error::io(&index, e))?;
    sync_dir(root)?;
    // The new index must open like any other.
    drop(Repository::open_present(root, None)?);
    drop(lock);
    Ok(report)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Gives the old index its second name. A hard link keeps `index.redb` in place until the new
/// index is renamed over it; where links are not supported, a rename.
fn keep_aside(index: &Path, aside: &Path) -> Result<()> {
    if fs::hard_link(index, aside).is_ok() {
        return Ok(());
    }
    fs::rename(index, aside).map_err(|e| Error::io(index, e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Whether a row of a content-addressed table (id → bytes) may be kept.
type RowCheck = fn(&[u8; 32], &[u8]) -> bool;

/// The next ids to hand out: past every id the old index used, as far as it can tell.
#[derive(Default)]
struct Counters {
    next_origin: u64,
    next_file: u64,
}

/// Writes the format version and the counters, and creates every table.
fn finish(root: &Path, db: &Database, counters: &Counters) -> Result<()> {
    let err = |e: redb::Error| redb_error(root, e);
    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        meta.insert("format", u64::from(FORMAT_VERSION))
            .map_err(|e| err(e.into()))?;
        meta.insert("next_origin", counters.next_origin.max(1))
            .map_err(|e| err(e.into()))?;
        meta.insert("next_file", counters.next_file.max(1))
            .map_err(|e| err(e.into()))?;
        txn.open_table(ORIGINS).map_err(|e| err(e.into()))?;
        txn.open_table(CONTENTS).map_err(|e| err(e.into()))?;
        txn.open_table(MEDIA).map_err(|e| err(e.into()))?;
        txn.open_table(TREES).map_err(|e| err(e.into()))?;
        txn.open_table(SCAN).map_err(|e| err(e.into()))?;
        txn.open_table(FILES).map_err(|e| err(e.into()))?;
        txn.open_table(CHUNK_CONTENTS).map_err(|e| err(e.into()))?;
        txn.open_table(CONTENT_FILES).map_err(|e| err(e.into()))?;
        txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        txn.open_table(KEPT).map_err(|e| err(e.into()))?;
        txn.open_table(HISTORY).map_err(|e| err(e.into()))?;
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// The damaged index, read without writing to it.
pub(super) struct Source {
    /// The file read: the damaged index, or a copy of it.
    path: PathBuf,
    /// The copy, deleted when done.
    copy: Option<PathBuf>,
}

impl Source {
    /// Reads `index` directly when redb can open it read-only. A file that needs crash
    /// recovery cannot be (and recovery would write to it), so it is read through a copy whose
    /// recovery flag is cleared: a multi-writer file's primary commit slot always holds a
    /// complete, durable commit, which is what a read-only handle then serves.
    pub(super) fn new(root: &Path, index: &Path) -> Result<Source> {
        let direct = Source {
            path: index.to_path_buf(),
            copy: None,
        };
        if !direct.needs_recovery() {
            return Ok(direct);
        }
        let copy = root.join(SALVAGE_COPY);
        fs::copy(index, &copy).map_err(|e| Error::io(&copy, e))?;
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)
            .map_err(|e| Error::io(&copy, e))?;
        let mut god = [0u8; 1];
        file.seek(SeekFrom::Start(GOD_BYTE_OFFSET))
            .and_then(|_| file.read_exact(&mut god))
            .and_then(|()| file.seek(SeekFrom::Start(GOD_BYTE_OFFSET)))
            .and_then(|_| file.write_all(&[god[0] & !RECOVERY_REQUIRED]))
            .map_err(|e| Error::io(&copy, e))?;
        Ok(Source {
            path: copy.clone(),
            copy: Some(copy),
        })
    }

    /// Whether a read-only open is refused because the file needs crash recovery.
    fn needs_recovery(&self) -> bool {
        matches!(self.open_raw(), Ok(Err(redb::DatabaseError::RepairAborted)))
    }

    fn open_raw(
        &self,
    ) -> std::result::Result<std::result::Result<ReadOnlyDatabase, redb::DatabaseError>, String>
    {
        contain::quietly("redb", || {
            Database::builder()
                .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
                .set_cache_size(super::CACHE_SIZE)
                .open_read_only(&self.path)
        })
    }

    /// A fresh read-only handle, or `None` when the file cannot be opened at all (its header
    /// is damaged).
    fn open(&self) -> Option<ReadOnlyDatabase> {
        match self.open_raw() {
            Ok(Ok(db)) => Some(db),
            Ok(Err(e)) => {
                tracing::debug!("cannot read {}: {e}", self.path.display());
                None
            }
            Err(panic) => {
                tracing::debug!(
                    "cannot read {}: redb panicked: {panic}",
                    self.path.display()
                );
                None
            }
        }
    }

    /// Every row of `table` that can be read, passed to `keep` in key order (forward, then
    /// backward past the first unreadable page); returns how many rows the table's header
    /// says it holds, when it could be read. An error from `keep` ends the repair.
    pub(super) fn rows<K, V, F>(
        &self,
        table: TableDefinition<K, V>,
        mut keep: F,
    ) -> Result<Option<u64>>
    where
        K: redb::Key + 'static,
        V: redb::Value + 'static,
        F: for<'a> FnMut(K::SelfType<'a>, V::SelfType<'a>) -> Result<()>,
    {
        let mut found = None;
        let mut last: Option<Vec<u8>> = None;
        let mut complete = false;
        let forward = self.pass(|db| {
            let Ok(txn) = db.begin_read() else {
                return Ok(());
            };
            let Ok(rows) = txn.open_table(table) else {
                return Ok(());
            };
            found = rows.len().ok();
            let Ok(iter) = rows.iter() else {
                return Ok(());
            };
            for item in iter {
                let Ok((key, value)) = item else {
                    return Ok(());
                };
                let bytes = K::as_bytes(&key.value()).as_ref().to_vec();
                keep(key.value(), value.value())?;
                last = Some(bytes);
            }
            complete = true;
            Ok(())
        });
        forward?;
        if complete {
            return Ok(found);
        }
        self.pass(|db| {
            let Ok(txn) = db.begin_read() else {
                return Ok(());
            };
            let Ok(rows) = txn.open_table(table) else {
                return Ok(());
            };
            let Ok(iter) = rows.iter() else {
                return Ok(());
            };
            for item in iter.rev() {
                let Ok((key, value)) = item else {
                    return Ok(());
                };
                if let Some(last) = &last {
                    let here = K::as_bytes(&key.value()).as_ref().to_vec();
                    if K::compare(&here, last).is_le() {
                        return Ok(());
                    }
                }
                keep(key.value(), value.value())?;
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Runs one read pass on a fresh handle (a panic inside redb ends the pass and leaves
    /// that handle behind). Only an error from the pass itself, which comes from the new
    /// index, is returned.
    fn pass(&self, f: impl FnOnce(&ReadOnlyDatabase) -> Result<()>) -> Result<()> {
        let Some(db) = self.open() else {
            return Ok(());
        };
        match contain::quietly("redb", || f(&db)) {
            Ok(result) => {
                let _ = contain::quietly("redb", move || drop(db));
                result
            }
            Err(panic) => {
                tracing::debug!("a read of the damaged index stopped: {panic}");
                // As for a `Repository`: closed as after a crash, without reading the file.
                contain::drop_while_unwinding(db);
                Ok(())
            }
        }
    }

    pub(super) fn remove_copy(&self) {
        if let Some(copy) = &self.copy {
            let _ = fs::remove_file(copy);
        }
    }
}

/// Copies what can be read of `source` into `db`, table by table.
fn salvage(
    root: &Path,
    source: &Source,
    db: &Database,
    report: &mut RepairReport,
    counters: &mut Counters,
) -> Result<()> {
    let err = |e: redb::Error| redb_error(root, e);
    // A format this build cannot read is not salvaged: its rows mean something else.
    let mut other_format = false;
    let mut format = None;
    source.rows(META, |key, value| {
        match key {
            "next_origin" => counters.next_origin = counters.next_origin.max(value),
            "next_file" => counters.next_file = counters.next_file.max(value),
            // Format 2's tables are format 3's less the history ones; format 3's scan rows
            // are read as what they are and written as format 4's.
            "format" => {
                other_format = !(u64::from(super::OLDEST_UPGRADED)..=u64::from(FORMAT_VERSION))
                    .contains(&value);
                format = Some(value);
            }
            _ => {}
        }
        Ok(())
    })?;
    if other_format {
        return Ok(());
    }

    let txn = db.begin_write().map_err(|e| err(e.into()))?;
    // Origins: names and ids both unique.
    let mut origins = HashSet::new();
    {
        let mut table = txn.open_table(ORIGINS).map_err(|e| err(e.into()))?;
        let found = source.rows(ORIGINS, |name, id| {
            if origins.contains(&id) || table.get(name).map_err(|e| err(e.into()))?.is_some() {
                return Ok(());
            }
            table.insert(name, id).map_err(|e| err(e.into()))?;
            origins.insert(id);
            Ok(())
        })?;
        note(report, "origins", origins.len() as u64, found);
        if let Some(max) = origins.iter().max() {
            counters.next_origin = counters.next_origin.max(max + 1);
        }
    }
    // Chunk lists, trees and media records: each as it checks.
    let checks: [(&str, _, RowCheck); 3] = [
        ("contents", CONTENTS, |id, bytes| {
            valid_content(id, bytes).is_some()
        }),
        ("trees", TREES, |id, bytes| valid_tree(id, bytes).is_some()),
        ("media", MEDIA, |_, bytes| {
            decode::<MediaRecord>(bytes).is_some()
        }),
    ];
    for (name, definition, valid) in checks {
        let mut table = txn.open_table(definition).map_err(|e| err(e.into()))?;
        let mut kept = 0;
        let found = source.rows(definition, |id, bytes| {
            if valid(id, bytes) {
                table.insert(id, bytes).map_err(|e| err(e.into()))?;
                kept += 1;
            }
            Ok(())
        })?;
        note(report, name, kept, found);
    }
    // History: where kept chunks are (a row naming a lost pack only makes a read miss, and
    // `check` reports it), and which contents have all of theirs.
    {
        let mut table = txn.open_table(KEPT).map_err(|e| err(e.into()))?;
        let mut kept = 0;
        let found = source.rows(KEPT, |id, row| {
            table.insert(id, row).map_err(|e| err(e.into()))?;
            kept += 1;
            Ok(())
        })?;
        note(report, "kept_chunks", kept, found);
        let mut table = txn.open_table(HISTORY).map_err(|e| err(e.into()))?;
        let mut kept = 0;
        let found = source.rows(HISTORY, |id, row| {
            table.insert(id, row).map_err(|e| err(e.into()))?;
            kept += 1;
            Ok(())
        })?;
        note(report, "history", kept, found);
    }
    // Scan state, with the files and chunk locations it implies.
    {
        let contents = txn.open_table(CONTENTS).map_err(|e| err(e.into()))?;
        let mut scan = txn.open_table(SCAN).map_err(|e| err(e.into()))?;
        let mut files = txn.open_table(FILES).map_err(|e| err(e.into()))?;
        let mut file_ids = HashSet::new();
        let mut kept = 0;
        let found = source.rows(SCAN, |(origin, path), bytes| {
            let Some(entry) = decode_scan_entry(bytes, format) else {
                return Ok(());
            };
            if !origins.contains(&origin) || file_ids.contains(&entry.file_id) {
                return Ok(());
            }
            let listed = contents
                .get(entry.content.as_bytes())
                .map_err(|e| err(e.into()))?
                .is_some();
            if !listed {
                return Ok(());
            }
            scan.insert((origin, path), encode(&entry).as_slice())
                .map_err(|e| err(e.into()))?;
            files
                .insert(entry.file_id, (origin, path))
                .map_err(|e| err(e.into()))?;
            file_ids.insert(entry.file_id);
            counters.next_file = counters.next_file.max(entry.file_id + 1);
            kept += 1;
            Ok(())
        })?;
        note(report, "scan", kept, found);
    }
    // The chunk locations the kept chunk lists and scan entries imply.
    super::locations::rebuild(&txn).map_err(err)?;
    // Snapshots whose whole tree was kept.
    {
        let trees = txn.open_table(TREES).map_err(|e| err(e.into()))?;
        let contents = txn.open_table(CONTENTS).map_err(|e| err(e.into()))?;
        let mut snapshots = txn.open_table(SNAPSHOTS).map_err(|e| err(e.into()))?;
        let mut whole = HashMap::new();
        let mut kept = 0;
        let found = source.rows(SNAPSHOTS, |seq, bytes| {
            let Some(record) = decode::<SnapshotRecord>(bytes) else {
                return Ok(());
            };
            if tree_is_whole(&record.root, &trees, &contents, &mut whole).map_err(err)? {
                snapshots.insert(seq, bytes).map_err(|e| err(e.into()))?;
                kept += 1;
            }
            Ok(())
        })?;
        note(report, "snapshots", kept, found);
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Whether the tree `id`, every tree under it and every chunk list it names are stored
/// (`whole` remembers the trees already answered for).
fn tree_is_whole(
    id: &TreeId,
    trees: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    contents: &impl ReadableTable<&'static [u8; 32], &'static [u8]>,
    whole: &mut HashMap<TreeId, bool>,
) -> std::result::Result<bool, redb::Error> {
    if let Some(known) = whole.get(id) {
        return Ok(*known);
    }
    // Trees were checked against their ids when copied, so they decode, and a tree cannot
    // contain itself: the walk ends.
    let tree = trees
        .get(id.as_bytes())?
        .and_then(|v| decode::<crate::snapshot::Tree>(v.value()));
    let mut answer = tree.is_some();
    for entry in tree.iter().flat_map(|t| &t.entries) {
        if !answer {
            break;
        }
        answer = match &entry.node {
            Node::File { content, .. } => contents.get(content.as_bytes())?.is_some(),
            Node::Dir { tree, .. } => tree_is_whole(tree, trees, contents, whole)?,
            Node::Symlink { .. } => true,
        };
    }
    whole.insert(*id, answer);
    Ok(answer)
}

/// Records what was kept of `table`, and what the old index said it held.
fn note(report: &mut RepairReport, table: &'static str, kept: u64, found: Option<u64>) {
    report.kept.insert(table, kept);
    if let Some(found) = found {
        report.found.insert(table, found);
    }
}
