//! `musicfs forget` and `musicfs gc`: dropping old snapshots, then everything nothing refers to.
//!
//! **What is referenced.** A snapshot refers to its root tree; a tree to its subtrees and to
//! the chunk lists (`contents`) of its files; a chunk list to its chunks, of which the small
//! ones (tags, padding, container structure) are kept in history packs (`history.rs`). Besides
//! the snapshots, each origin's scan state (`scan`) refers to the chunk list each file held at
//! the last scan: it is what the next scan and every sync start from (a sync plans from the
//! two sides' scans, finds chunks through `chunk_contents` and `content_files`, and rescans
//! DST), so it is live whatever the snapshots say. `media`, `history` and `chunk_contents`
//! rows live with their content, kept chunks with the live contents that hold them, `files`
//! and `content_files` rows with the scan entry that names them.
//!
//! **forget** removes snapshot rows only, in one write transaction, under the policy of
//! `retention.rs`, per origin. The latest snapshot of each origin (the last one recorded,
//! which `verify`, `diff ORIGIN` and the mount's `latest` read) is always kept; no policy rule
//! can remove it anyway (each keeps the newest in its first bucket), but a clock set back can
//! make the newest by time another one. `forget` runs beside a sync: its transaction sees the
//! snapshots of every sync committed before it, and a sync's snapshot committed after it is
//! newer than anything it judged.
//!
//! **gc** holds the repository's index lock exclusively (`locks/index.lock`, which every open
//! holds shared): no scan, sync, mount or serve can have the repository open while it runs,
//! and none can open it until it has finished (they fail at once with "locked", exit 4; gc
//! started while one runs fails the same way). In one write transaction it finds the live set
//! and drops every other row; history packs holding dead chunks are rewritten with their live
//! chunks only (the new pack is put, durably, before the transaction that points the index at
//! it commits; the old packs are removed after it), and packs nothing refers to (left by a
//! crash) are removed. Then redb compacts `index.redb`, whose file never shrinks by itself.
//! A crash at any point leaves a whole index: before the commit, the old one and perhaps an
//! unreferenced pack; after it, the new one and perhaps old packs, which the next gc removes.
//!
//! A tree or chunk list that a live row names but the index lacks stops gc before it removes
//! anything: the index is damaged, and what the missing tree refers to cannot be known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use redb::ReadableTable;
use serde::Serialize;

use super::layout::{self, IndexLock, Survey};
use super::locations;
use super::objects::{ObjectId, ObjectKind};
use super::retention::{self, Policy};
use super::tables::*;
use super::{disk_usage_of, Repository, ScanEntry};
use crate::contain;
use crate::error::{Error, Result};
use crate::id::{ContentId, SnapshotId, TreeId};
use crate::snapshot::{decode, ChunkList, Node, SnapshotRecord, Tree};

/// The reason given for keeping the last snapshot recorded of an origin.
pub const LATEST_REASON: &str = "latest snapshot of its origin";

/// A rewritten pack is cut when it reaches this size.
const PACK_TARGET: usize = 16 << 20;

/// One snapshot and what `forget` decided about it.
#[derive(Clone, Debug)]
pub struct Judged {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// Its record.
    pub record: SnapshotRecord,
    /// Why it is kept (empty for a removed snapshot): restic's words ("daily snapshot",
    /// "oldest monthly snapshot"), and [`LATEST_REASON`].
    pub reasons: Vec<String>,
}

/// `forget`'s decisions for one origin, newest first.
#[derive(Clone, Debug)]
pub struct OriginForget {
    /// The origin as recorded.
    pub origin: String,
    /// The snapshots kept, newest first.
    pub keep: Vec<Judged>,
    /// The snapshots removed (or, in a dry run, to remove), newest first.
    pub remove: Vec<Judged>,
}

/// What `forget` did.
#[derive(Clone, Debug)]
pub struct ForgetReport {
    /// Whether nothing was removed because it was a dry run.
    pub dry_run: bool,
    /// Per origin, in the order their first snapshot was recorded.
    pub origins: Vec<OriginForget>,
}

/// What `gc` did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// The repository directory.
    pub repository: PathBuf,
    /// Whether nothing was changed because it was a dry run.
    pub dry_run: bool,
    /// Snapshots, all of which are kept (`forget` removes snapshots).
    pub snapshots: u64,
    /// Rows removed per table (`trees`, `contents`, `media`, `history`, `kept_chunks`,
    /// `files`, `chunk_contents`, `content_files`).
    pub removed: BTreeMap<&'static str, u64>,
    /// History packs removed: every chunk in them dead, or unreferenced.
    pub packs_removed: u64,
    /// History packs rewritten without their dead chunks.
    pub packs_rewritten: u64,
    /// Bytes of history packs freed (in a dry run, the compressed bytes of the dead chunks
    /// and the size of the packs to remove).
    pub pack_bytes_freed: u64,
    /// `index.redb`'s size before and after (the same in a dry run: compaction's gain is
    /// known only once done).
    pub index_bytes_before: u64,
    /// `index.redb`'s size after compaction.
    pub index_bytes_after: u64,
    /// The repository's bytes on disk before and after.
    pub bytes_before: u64,
    /// The repository's bytes on disk after.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after` (in a dry run: `pack_bytes_freed`).
    pub bytes_freed: u64,
}

/// A kept chunk's row: pack, offset, stored length, length.
type KeptRow = ([u8; 32], u64, u32, u32);

/// One pack's live rows (chunk id and row), and the stored bytes of its dead ones.
type PackUse = (Vec<([u8; 32], KeptRow)>, u64);

impl Repository {
    /// Applies `policy` to the snapshots of `origin` (every origin when `None`), each origin
    /// on its own, with calendar buckets in `zone`; removes the snapshots no rule keeps unless
    /// `dry_run`. The latest snapshot recorded of each origin is always kept. An empty policy
    /// is refused ([`Error::InvalidInput`]), as restic refuses it.
    pub fn forget(
        &self,
        origin: Option<&str>,
        policy: &Policy,
        zone: &TimeZone,
        dry_run: bool,
    ) -> Result<ForgetReport> {
        if policy.is_empty() {
            return Err(Error::InvalidInput(
                "no policy given: name at least one --keep-* rule (nothing was removed)".into(),
            ));
        }
        self.guard(|| {
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
            let mut origins: Vec<(String, Vec<(u64, SnapshotRecord)>)> = Vec::new();
            {
                let table = txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
                for item in table.iter().map_err(|e| self.err(e))? {
                    let (key, value) = item.map_err(|e| self.err(e))?;
                    let record: SnapshotRecord = decode(value.value()).ok_or_else(|| {
                        self.corrupt(format!("snapshot #{} does not decode", key.value()))
                    })?;
                    if origin.is_some_and(|o| o != record.origin) {
                        continue;
                    }
                    match origins.iter_mut().find(|(o, _)| *o == record.origin) {
                        Some((_, list)) => list.push((key.value(), record)),
                        None => origins.push((record.origin.clone(), vec![(key.value(), record)])),
                    }
                }
            }
            let mut report = ForgetReport {
                dry_run,
                origins: Vec::new(),
            };
            let mut doomed = Vec::new();
            for (name, list) in origins {
                let times: Vec<i64> = list.iter().map(|(_, r)| r.time_ns).collect();
                let verdicts = retention::apply(&times, policy, zone);
                let latest_seq = list.iter().map(|(seq, _)| *seq).max();
                let mut judged: Vec<(i64, u64, bool, Judged)> = Vec::new();
                for ((seq, record), verdict) in list.into_iter().zip(verdicts) {
                    let mut reasons: Vec<String> =
                        verdict.reasons.iter().map(|r| r.to_string()).collect();
                    if Some(seq) == latest_seq {
                        reasons.push(LATEST_REASON.to_string());
                    }
                    let keep = !reasons.is_empty();
                    if !keep {
                        doomed.push(seq);
                    }
                    let id = record.snapshot_id();
                    judged.push((
                        record.time_ns,
                        seq,
                        keep,
                        Judged {
                            id,
                            record,
                            reasons,
                        },
                    ));
                }
                judged.sort_by_key(|j| std::cmp::Reverse((j.0, j.1)));
                let mut entry = OriginForget {
                    origin: name,
                    keep: Vec::new(),
                    remove: Vec::new(),
                };
                for (_, _, keep, j) in judged {
                    if keep {
                        entry.keep.push(j);
                    } else {
                        entry.remove.push(j);
                    }
                }
                report.origins.push(entry);
            }
            if dry_run || doomed.is_empty() {
                txn.abort().map_err(|e| self.err(e))?;
                return Ok(report);
            }
            {
                let mut table = txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
                for seq in &doomed {
                    table.remove(*seq).map_err(|e| self.err(e))?;
                }
            }
            txn.commit().map_err(|e| self.err(e))?;
            tracing::debug!("forgot {} snapshots", doomed.len());
            Ok(report)
        })
    }

    /// Compacts `index.redb` (redb needs the only handle, with no transaction open).
    fn compact(&mut self) -> Result<bool> {
        if self.is_damaged() {
            return Err(self.damage("redb failed on it earlier".into()));
        }
        let root = self.root.clone();
        let Some(db) = self.db.as_mut() else {
            return Err(self.damage("the database is closed".into()));
        };
        match contain::quietly("redb", || db.compact()) {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(super::redb_error(&root, e.into())),
            Err(panic) => {
                self.damaged
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Err(self.damage(format!("redb stopped on invalid data: {panic}")))
            }
        }
    }
}

/// `musicfs gc`: removes from the repository at `root` every row and history pack that no
/// snapshot and no scan state refers to, then compacts `index.redb` (see the module's doc).
/// Fails at once with [`Error::IndexLocked`] while another musicfs process has the repository
/// open. With `dry_run`, reports what it would remove and changes nothing.
pub fn gc(root: &Path, dry_run: bool) -> Result<GcReport> {
    if !matches!(layout::survey(root)?, Survey::Repository(_)) {
        return Err(Error::NoRepository {
            path: root.to_path_buf(),
        });
    }
    let lock = IndexLock::exclusive(root, "gc")?;
    let mut repo = Repository::open_present(root, None)?;
    let index = root.join(layout::INDEX);
    let index_size = || std::fs::metadata(&index).map(|m| m.len()).unwrap_or(0);
    let mut report = GcReport {
        repository: root.to_path_buf(),
        dry_run,
        index_bytes_before: index_size(),
        bytes_before: repo.disk_usage()?,
        ..GcReport::default()
    };
    let stale_packs = repo.sweep(dry_run, &mut report)?;
    if !dry_run {
        for pack in &stale_packs {
            repo.objects().remove(ObjectKind::Pack, pack)?;
        }
        // redb compacts until it can move nothing more, then trims the file.
        let compacted = repo.compact()?;
        tracing::debug!("index.redb compacted: {compacted}");
    }
    drop(repo);
    drop(lock);
    report.index_bytes_after = index_size();
    let after = disk_usage_of(root)?;
    report.bytes_after = after;
    report.bytes_freed = if dry_run {
        report.pack_bytes_freed
    } else {
        report.bytes_before.saturating_sub(after)
    };
    if dry_run {
        report.index_bytes_after = report.index_bytes_before;
    }
    Ok(report)
}

/// What is live, found from the snapshots and the scan state.
#[derive(Default)]
struct Live {
    trees: HashSet<[u8; 32]>,
    contents: HashSet<[u8; 32]>,
    /// File id → (origin, path) of every scan entry.
    files: HashMap<u64, (u64, Vec<u8>)>,
    /// File id → (origin, its chunk list's key in `content_files`) of every scan entry.
    file_contents: HashMap<u64, (u64, u64)>,
    /// Kept chunks that live contents hold.
    kept: HashSet<[u8; 32]>,
}

impl Repository {
    /// gc's one write transaction: finds the live set, removes the rest, rewrites packs.
    /// Returns the packs to remove once it has committed.
    fn sweep(&self, dry_run: bool, report: &mut GcReport) -> Result<Vec<ObjectId>> {
        self.guard(|| {
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
            // Rows staged before gc land before its removals, not after them.
            locations::merge_staged(&txn).map_err(|e| self.err(e))?;
            let live = self.mark(&txn, report)?;
            let mut removed = BTreeMap::new();
            removed.insert(
                "trees",
                drop_dead(self, &txn, TREES, |k| live.trees.contains(k))?,
            );
            removed.insert(
                "contents",
                drop_dead(self, &txn, CONTENTS, |k| live.contents.contains(k))?,
            );
            removed.insert(
                "media",
                drop_dead(self, &txn, MEDIA, |k| live.contents.contains(k))?,
            );
            {
                let mut table = txn.open_table(HISTORY).map_err(|e| self.err(e))?;
                removed.insert(
                    "history",
                    retain_counting(self, &mut table, |k, _| live.contents.contains(k))?,
                );
            }
            {
                let mut table = txn.open_table(FILES).map_err(|e| self.err(e))?;
                removed.insert(
                    "files",
                    retain_counting(self, &mut table, |id, (origin, path)| {
                        live.files
                            .get(&id)
                            .is_some_and(|(o, p)| *o == origin && p.as_slice() == path)
                    })?,
                );
            }
            {
                // A chunk list's rows are keyed by its id's first bytes, which a dead list can
                // share with a live one: such rows stay, and only cost a lookup.
                let lists: HashSet<u64> = live.contents.iter().map(locations::prefix).collect();
                let mut table = txn.open_table(CHUNK_CONTENTS).map_err(|e| self.err(e))?;
                removed.insert(
                    "chunk_contents",
                    retain_counting(self, &mut table, |(_, list), _| lists.contains(&list))?,
                );
                let mut table = txn.open_table(CONTENT_FILES).map_err(|e| self.err(e))?;
                removed.insert(
                    "content_files",
                    retain_counting(self, &mut table, |(list, origin, file), _| {
                        live.file_contents.get(&file) == Some(&(origin, list))
                    })?,
                );
            }
            let (stale, kept_removed) = self.repack(&txn, &live, dry_run, report)?;
            removed.insert("kept_chunks", kept_removed);
            report.removed = removed;
            if dry_run {
                txn.abort().map_err(|e| self.err(e))?;
                return Ok(Vec::new());
            }
            crate::failpoint::hit("gc-commit");
            txn.commit().map_err(|e| self.err(e))?;
            crate::failpoint::hit("gc-committed");
            Ok(stale)
        })
    }

    /// The live set: every tree and content reachable from a snapshot, every content of a
    /// scan entry, the files of the scan entries, the kept chunks of the live contents.
    fn mark(&self, txn: &redb::WriteTransaction, report: &mut GcReport) -> Result<Live> {
        let mut live = Live::default();
        let mut stack: Vec<TreeId> = Vec::new();
        {
            let table = txn.open_table(SNAPSHOTS).map_err(|e| self.err(e))?;
            for item in table.iter().map_err(|e| self.err(e))? {
                let (key, value) = item.map_err(|e| self.err(e))?;
                let record: SnapshotRecord = decode(value.value()).ok_or_else(|| {
                    self.corrupt(format!("snapshot #{} does not decode", key.value()))
                })?;
                report.snapshots += 1;
                if live.trees.insert(*record.root.as_bytes()) {
                    stack.push(record.root);
                }
            }
        }
        {
            let trees = txn.open_table(TREES).map_err(|e| self.err(e))?;
            while let Some(id) = stack.pop() {
                let bytes = trees
                    .get(id.as_bytes())
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| self.refuse(format!("tree {} is missing", id.short())))?;
                let tree: Tree = decode(bytes.value())
                    .ok_or_else(|| self.refuse(format!("tree {} does not decode", id.short())))?;
                for entry in tree.entries {
                    match entry.node {
                        Node::Dir { tree, .. } => {
                            if live.trees.insert(*tree.as_bytes()) {
                                stack.push(tree);
                            }
                        }
                        Node::File { content, .. } => {
                            live.contents.insert(*content.as_bytes());
                        }
                        Node::Symlink { .. } => {}
                    }
                }
            }
        }
        {
            let scan = txn.open_table(SCAN).map_err(|e| self.err(e))?;
            for item in scan.iter().map_err(|e| self.err(e))? {
                let (key, value) = item.map_err(|e| self.err(e))?;
                let (origin, path) = key.value();
                let entry: ScanEntry = decode(value.value()).ok_or_else(|| {
                    self.refuse(format!(
                        "the scan entry of {} does not decode",
                        String::from_utf8_lossy(path)
                    ))
                })?;
                live.contents.insert(*entry.content.as_bytes());
                live.files.insert(entry.file_id, (origin, path.to_vec()));
                live.file_contents.insert(
                    entry.file_id,
                    (origin, locations::prefix(entry.content.as_bytes())),
                );
            }
        }
        {
            let kept = txn.open_table(KEPT).map_err(|e| self.err(e))?;
            let contents = txn.open_table(CONTENTS).map_err(|e| self.err(e))?;
            for id in &live.contents {
                let short = ContentId::from_stored(*id).short();
                let bytes = contents
                    .get(id)
                    .map_err(|e| self.err(e))?
                    .ok_or_else(|| self.refuse(format!("chunk list {short} is missing")))?;
                let list: ChunkList = decode(bytes.value())
                    .ok_or_else(|| self.refuse(format!("chunk list {short} does not decode")))?;
                for chunk in &list.chunks {
                    let id = chunk.id.as_bytes();
                    if !live.kept.contains(id) && kept.get(id).map_err(|e| self.err(e))?.is_some() {
                        live.kept.insert(*id);
                    }
                }
            }
        }
        Ok(live)
    }

    /// Drops the dead kept chunks, rewrites the packs that held some (their live chunks
    /// copied, compressed as they are, into new packs put before the commit), and returns the
    /// packs to remove after the commit and the number of rows dropped.
    fn repack(
        &self,
        txn: &redb::WriteTransaction,
        live: &Live,
        dry_run: bool,
        report: &mut GcReport,
    ) -> Result<(Vec<ObjectId>, u64)> {
        // Per pack: its live rows, and whether it has dead ones.
        let mut packs: HashMap<[u8; 32], PackUse> = HashMap::new();
        {
            let kept = txn.open_table(KEPT).map_err(|e| self.err(e))?;
            for item in kept.iter().map_err(|e| self.err(e))? {
                let (key, value) = item.map_err(|e| self.err(e))?;
                let (pack, offset, stored, len) = value.value();
                let slot = packs.entry(*pack).or_default();
                if live.kept.contains(key.value()) {
                    slot.0.push((*key.value(), (*pack, offset, stored, len)));
                } else {
                    slot.1 += u64::from(stored);
                }
            }
        }
        let store = self.objects();
        let mut stale = Vec::new();
        let mut moved: Vec<([u8; 32], KeptRow)> = Vec::new();
        let mut pending = Vec::new();
        let mut pending_rows: Vec<([u8; 32], u64, u32, u32)> = Vec::new();
        let flush = |pending: &mut Vec<u8>,
                     rows: &mut Vec<([u8; 32], u64, u32, u32)>,
                     moved: &mut Vec<([u8; 32], KeptRow)>|
         -> Result<()> {
            if rows.is_empty() {
                return Ok(());
            }
            let id = ObjectId::of(pending.as_slice());
            if !dry_run {
                store.put(ObjectKind::Pack, &id, pending)?;
            }
            for (chunk, offset, stored, len) in rows.drain(..) {
                moved.push((chunk, (*id.as_bytes(), offset, stored, len)));
            }
            pending.clear();
            Ok(())
        };
        let mut sorted: Vec<_> = packs.into_iter().collect();
        sorted.sort_by_key(|p| p.0);
        let mut referenced: HashSet<[u8; 32]> = HashSet::new();
        for (pack, (rows, dead)) in sorted {
            referenced.insert(pack);
            let pack_id = ObjectId::from_bytes(pack);
            if dead == 0 {
                continue;
            }
            report.pack_bytes_freed += dead;
            if rows.is_empty() {
                report.packs_removed += 1;
                stale.push(pack_id);
                continue;
            }
            // Read every live chunk first: a pack that cannot be read is left as it is.
            let mut copies = Vec::with_capacity(rows.len());
            let mut readable = true;
            for (chunk, (_, offset, stored, len)) in &rows {
                match store.read(ObjectKind::Pack, &pack_id, *offset, *stored as usize) {
                    Ok(bytes) => copies.push((*chunk, bytes, *len)),
                    Err(e) => {
                        tracing::warn!("pack {} left as it is: {e}", pack_id.hex());
                        readable = false;
                        break;
                    }
                }
            }
            if !readable {
                report.pack_bytes_freed -= dead;
                continue;
            }
            for (chunk, bytes, len) in copies {
                pending_rows.push((chunk, pending.len() as u64, bytes.len() as u32, len));
                pending.extend_from_slice(&bytes);
                if pending.len() >= PACK_TARGET {
                    flush(&mut pending, &mut pending_rows, &mut moved)?;
                }
            }
            report.packs_rewritten += 1;
            stale.push(pack_id);
        }
        flush(&mut pending, &mut pending_rows, &mut moved)?;
        // Packs no row refers to: left by a batch that failed to commit, or a crashed gc.
        let written: HashSet<[u8; 32]> = moved.iter().map(|(_, row)| row.0).collect();
        // A new pack is never removed, even if its bytes happen to be an old pack's.
        stale.retain(|p| !written.contains(p.as_bytes()));
        for pack in store.list(ObjectKind::Pack)? {
            if !referenced.contains(pack.as_bytes()) && !written.contains(pack.as_bytes()) {
                report.packs_removed += 1;
                report.pack_bytes_freed += store.size(ObjectKind::Pack, &pack).unwrap_or(0);
                stale.push(pack);
            }
        }
        let mut kept = txn.open_table(KEPT).map_err(|e| self.err(e))?;
        let removed = retain_counting(self, &mut kept, |k, _| live.kept.contains(k))?;
        for (chunk, (pack, offset, stored, len)) in &moved {
            kept.insert(chunk, (pack, *offset, *stored, *len))
                .map_err(|e| self.err(e))?;
        }
        Ok((stale, removed))
    }

    /// The error that stops gc on a damaged index before it removes anything.
    fn refuse(&self, what: String) -> Error {
        self.corrupt(format!(
            "{what}; gc removes nothing from an index it cannot read whole"
        ))
    }
}

/// Removes the rows of a content-addressed table whose key `live` refuses; returns how many.
fn drop_dead(
    repo: &Repository,
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<&[u8; 32], &[u8]>,
    live: impl Fn(&[u8; 32]) -> bool,
) -> Result<u64> {
    let mut table = txn.open_table(table).map_err(|e| repo.err(e))?;
    retain_counting(repo, &mut table, |k, _| live(k))
}

/// `retain`, counting the rows removed.
fn retain_counting<K: redb::Key + 'static, V: redb::Value + 'static>(
    repo: &Repository,
    table: &mut redb::Table<'_, K, V>,
    mut keep: impl for<'f> FnMut(K::SelfType<'f>, V::SelfType<'f>) -> bool,
) -> Result<u64> {
    let mut removed = 0;
    table
        .retain(|k, v| {
            let kept = keep(k, v);
            removed += u64::from(!kept);
            kept
        })
        .map_err(|e| repo.err(e))?;
    Ok(removed)
}
