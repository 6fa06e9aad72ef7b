//! `musicfs check`: is the index whole?
//!
//! Two passes over the whole of `index.redb`. redb's integrity check verifies the checksum of
//! every page of the committed trees (each branch page holds its children's checksums), which
//! catches a damaged page wherever it is, before anything reads it. Then every row of every
//! table is read and decoded, and chunk lists and trees are re-hashed against their ids, which
//! catches what a page checksum cannot: a row redb wrote faithfully that musicfs cannot read.
//! The location rows (`locations.rs`) are checked against the chunk lists and the scan state
//! they are derived from: a missing one would hide chunks that are there.
//! Commands do neither (reading a 300 MB index on every `snapshots` would cost seconds); they
//! meet damage only where they read, and report it as [`Error::IndexDamaged`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use super::layout::{self, IndexLock};
use super::tables::*;
use super::{Repository, ScanEntry};
use crate::contain;
use crate::error::{Error, Result};
use crate::id::{ContentId, TreeId};
use crate::snapshot::{decode, ChunkList, MediaRecord, SnapshotRecord, Tree};

/// Problems listed one by one; beyond this, they are counted.
const MAX_LISTED: usize = 20;

/// What `musicfs check` found.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// The repository directory.
    pub repository: PathBuf,
    /// Whether the index is whole: every page verified and every row read.
    pub healthy: bool,
    /// Rows read, per table (only when the pages verified).
    pub rows: BTreeMap<&'static str, u64>,
    /// What is wrong, one line each (at most 20; `problem_count` counts them all).
    pub problems: Vec<String>,
    /// How many problems were found.
    pub problem_count: u64,
    /// redb rebuilt its record of which pages are free, as it does after a crash. This is
    /// not damage: no row was lost.
    pub free_pages_rebuilt: bool,
}

impl CheckReport {
    fn new(root: &Path) -> Self {
        CheckReport {
            repository: root.to_path_buf(),
            healthy: true,
            rows: BTreeMap::new(),
            problems: Vec::new(),
            problem_count: 0,
            free_pages_rebuilt: false,
        }
    }

    fn problem(&mut self, what: String) {
        self.healthy = false;
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(what);
        }
    }
}

/// Checks the index of the repository at `root` (which must exist). A damaged, missing or
/// empty index is a report with `healthy: false`, not an error; an error means the check
/// itself could not run (no repository, an unsupported format, an I/O error).
pub fn check(root: &Path) -> Result<CheckReport> {
    check_with(root, Repository::open_existing)
}

/// [`check`] while `repair-index` holds the index lock.
pub(super) fn check_locked(root: &Path, _lock: &IndexLock) -> Result<CheckReport> {
    check_with(root, |root| Repository::open_present(root, None))
}

fn check_with(root: &Path, open: impl FnOnce(&Path) -> Result<Repository>) -> Result<CheckReport> {
    let mut report = CheckReport::new(root);
    let mut repo = match open(root) {
        Ok(repo) => repo,
        Err(Error::IndexDamaged { detail, .. }) => {
            report.problem(detail);
            return Ok(report);
        }
        Err(Error::IndexMissing { state, .. }) => {
            report.problem(format!("{} is {state}", layout::INDEX));
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    match repo.verify_pages() {
        Ok(rebuilt) => report.free_pages_rebuilt = rebuilt,
        Err(Error::IndexDamaged { detail, .. }) => {
            report.problem(detail);
            return Ok(report);
        }
        Err(e) => return Err(e),
    }
    match repo.read_every_row(&mut report) {
        Ok(()) => {}
        Err(Error::IndexDamaged { detail, .. }) => {
            report.problem(detail);
            return Ok(report);
        }
        Err(e) => return Err(e),
    }
    match repo.verify_history(&mut report) {
        Ok(()) => {}
        Err(Error::IndexDamaged { detail, .. }) => report.problem(detail),
        Err(e) => return Err(e),
    }
    Ok(report)
}

impl Repository {
    /// redb's integrity check: every page checksum of the committed trees. Returns whether
    /// redb rebuilt its free-page record; a page that fails is [`Error::IndexDamaged`].
    fn verify_pages(&mut self) -> Result<bool> {
        let root = self.root.clone();
        let Some(db) = self.db.as_mut() else {
            return Err(self.damage("the database is closed".into()));
        };
        let result = match contain::quietly("redb", || db.check_integrity()) {
            Ok(Ok(clean)) => Ok(!clean),
            Ok(Err(e)) => Err(super::redb_error(&root, e.into())),
            Err(panic) => Err(Error::IndexDamaged {
                path: root,
                detail: format!("redb stopped on invalid data: {panic}"),
            }),
        };
        if matches!(result, Err(Error::IndexDamaged { .. })) {
            self.damaged
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    /// Reads every history pack once and checks every kept chunk in it against its id.
    fn verify_history(&self, report: &mut CheckReport) -> Result<()> {
        use super::objects::{ObjectId, ObjectKind};
        let mut packs: BTreeMap<[u8; 32], Vec<KeptRow>> = BTreeMap::new();
        self.guard(|| {
            let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let table = txn.open_table(KEPT).map_err(|e| self.err(e))?;
            for row in table.iter().map_err(|e| self.err(e))? {
                let (id, v) = row.map_err(|e| self.err(e))?;
                let (pack, offset, stored, len) = v.value();
                packs
                    .entry(*pack)
                    .or_default()
                    .push((*id.value(), offset, stored, len));
            }
            Ok(())
        })?;
        for (pack, chunks) in packs {
            let pack = ObjectId::from_bytes(pack);
            let end = chunks
                .iter()
                .map(|&(_, o, s, _)| o + u64::from(s))
                .max()
                .unwrap_or(0);
            let bytes = match self
                .objects()
                .read(ObjectKind::Pack, &pack, 0, end as usize)
            {
                Ok(bytes) => bytes,
                Err(e) => {
                    report.problem(format!(
                        "history pack {} is unreadable ({e}): old snapshots cannot read the {} tag chunks it held",
                        &pack.hex()[..16],
                        chunks.len()
                    ));
                    continue;
                }
            };
            for (id, offset, stored, len) in chunks {
                let packed = &bytes[offset as usize..(offset + u64::from(stored)) as usize];
                let whole = zstd::bulk::decompress(packed, len as usize)
                    .is_ok_and(|raw| crate::id::ChunkId::of(&raw).as_bytes() == &id);
                if !whole {
                    report.problem(format!(
                        "history chunk {} in pack {} is damaged",
                        crate::id::ChunkId::from_stored(id).short(),
                        &pack.hex()[..16]
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads every row of every table, noting rows that do not decode or match their ids.
    fn read_every_row(&self, report: &mut CheckReport) -> Result<()> {
        self.guard(|| {
            let txn = self.db()?.begin_read().map_err(|e| self.err(e))?;
            let mut problems = Vec::new();
            let rows = read_tables(&txn, &mut |p| problems.push(p)).map_err(|e| self.err(e))?;
            report.rows = rows;
            for p in problems {
                report.problem(p);
            }
            Ok(())
        })
    }
}

/// A `kept_chunks` row: chunk id, offset in its pack, stored length, length.
pub(super) type KeptRow = ([u8; 32], u64, u32, u32);

/// Reads every row of every table in `txn`, calling `problem` for each that does not decode
/// or does not match its id; returns the rows read per table.
pub(super) fn read_tables(
    txn: &ReadTransaction,
    problem: &mut dyn FnMut(String),
) -> std::result::Result<BTreeMap<&'static str, u64>, redb::Error> {
    let mut rows = BTreeMap::new();
    rows.insert("meta", count(txn, META, problem, |_, _| None)?);
    rows.insert("origins", count(txn, ORIGINS, problem, |_, _| None)?);
    let n = count(txn, CONTENTS, problem, |id, bytes| {
        valid_content(id, bytes).is_none().then(|| {
            format!(
                "chunk list {} is damaged",
                ContentId::from_stored(*id).short()
            )
        })
    });
    rows.insert("contents", n?);
    let n = count(txn, MEDIA, problem, |id, bytes| {
        decode::<MediaRecord>(bytes).is_none().then(|| {
            format!(
                "media record {} is damaged",
                ContentId::from_stored(*id).short()
            )
        })
    });
    rows.insert("media", n?);
    let n = count(txn, TREES, problem, |id, bytes| {
        valid_tree(id, bytes)
            .is_none()
            .then(|| format!("tree {} is damaged", TreeId::from_stored(*id).short()))
    });
    rows.insert("trees", n?);
    let n = count(txn, SCAN, problem, |(origin, path), bytes| {
        decode::<ScanEntry>(bytes).is_none().then(|| {
            format!(
                "the scan entry of {} (origin {origin}) is damaged",
                String::from_utf8_lossy(path)
            )
        })
    });
    rows.insert("scan", n?);
    rows.insert("files", count(txn, FILES, problem, |_, _| None)?);
    rows.insert(
        "chunk_contents",
        count(txn, CHUNK_CONTENTS, problem, |_, _| None)?,
    );
    rows.insert(
        "content_files",
        count(txn, CONTENT_FILES, problem, |_, _| None)?,
    );
    let n = count(txn, SNAPSHOTS, problem, |seq, bytes| {
        decode::<SnapshotRecord>(bytes)
            .is_none()
            .then(|| format!("snapshot #{seq} is damaged"))
    });
    rows.insert("snapshots", n?);
    rows.insert("kept_chunks", count(txn, KEPT, problem, |_, _| None)?);
    rows.insert("history", count(txn, HISTORY, problem, |_, _| None)?);
    super::locations::check(txn, problem)?;
    Ok(rows)
}

/// Reads every row of one table; `bad` describes a row that is wrong.
fn count<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
    problem: &mut dyn FnMut(String),
    bad: impl Fn(K::SelfType<'_>, V::SelfType<'_>) -> Option<String>,
) -> std::result::Result<u64, redb::Error> {
    let table = txn.open_table(table)?;
    let mut n = 0;
    for item in table.iter()? {
        let (key, value) = item?;
        n += 1;
        if let Some(what) = bad(key.value(), value.value()) {
            problem(what);
        }
    }
    Ok(n)
}

/// The chunk list stored under `id`, if it decodes and hashes to `id`.
pub(super) fn valid_content(id: &[u8; 32], bytes: &[u8]) -> Option<ChunkList> {
    decode::<ChunkList>(bytes).filter(|l| l.content_id().as_bytes() == id)
}

/// The tree stored under `id`, if it decodes and hashes to `id`.
pub(super) fn valid_tree(id: &[u8; 32], bytes: &[u8]) -> Option<Tree> {
    decode::<Tree>(bytes).filter(|t| t.tree_id().as_bytes() == id)
}
