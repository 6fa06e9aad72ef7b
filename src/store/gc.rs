//! A chunk store's gc: two phases with a grace period, one gc at a time, never racing a push
//! into data loss (`docs/format.md`, "Chunk store", "gc").
//!
//! Each run (at `now`, a parameter so that tests need no clock):
//! 1. takes the gc lock ([`GcLock`] objects: put one, list them, the earliest live one runs);
//! 2. reads every snapshot, index delta, mark and pack name, and walks every snapshot's trees
//!    to find the live blobs;
//! 3. plans the **sweep** of the marks at least `grace` old: a pack they name goes when every
//!    live blob it holds has a copy in a pack no mark names (a pack some push came to rely on
//!    since it was marked is kept: "rescued");
//! 4. plans the **mark**: a pack no mark names (or a rescued one) that holds no live blob is
//!    marked; one that holds a dead tree or chunk list, or whose live share is below
//!    `repack_threshold`, is repacked (its live blobs without an unmarked copy elsewhere are
//!    copied into new packs and a new delta) and marked; a pack in the listing that no delta
//!    names is marked;
//! 5. puts the repacked packs and their delta, then the mark, then sweeps: puts a delta with
//!    the surviving rows of every delta naming a swept pack, removes those deltas, removes
//!    the packs, removes the swept marks; then removes its lock.
//!
//! Why it never loses data (assuming a listing lags less than `grace`, and a push takes less
//! than `grace`): a push that starts after a mark sees it and relies on no pack it names
//! (`MergedIndex::drop_marked`; a pack it builds with a marked id is put under another id,
//! `format::repad`); a push that started before it ends before the sweep, whose listing then
//! shows its snapshot, so the sweep keeps what the snapshot needs. A dead tree or chunk list
//! always sits in a marked pack, so no push skips a subtree on the word of a tree whose
//! subtree a sweep removed. Marks are removed last, so a sweep stopped half-way is finished by
//! the next one.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::format::{
    decode_object, decompress, encode_object, object_id, repad, BlobKind, GcLock, GcMark,
    IndexDelta, PackBuilder, PackEntry, PackRows, StoreSnapshot, Tag,
};
use super::{host_name, Store};
use crate::agent::wire::{check_content, check_tree};
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::repo::{ObjectId, ObjectKind};
use crate::snapshot::Node;

/// The failpoints of a gc, in the order it reaches them (`crate::failpoint`): `store-gc-lock`
/// after its lock is put, `store-gc-repack` after each pack a repack puts, `store-gc-mark`
/// after the mark, `store-gc-sweep` after each object the sweep removes.
pub const GC_POINTS: &[&str] = &[
    "store-gc-lock",
    "store-gc-repack",
    "store-gc-mark",
    "store-gc-sweep",
];

/// How a gc runs.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// How old a mark must be before what it names is removed: longer than any push, and
    /// than the store's listings lag.
    pub grace: Duration,
    /// Compute and report, write and remove nothing (and take no lock).
    pub dry_run: bool,
    /// A pack whose live blobs are less than this share of its bytes (0.0 to 1.0) is
    /// repacked.
    pub repack_threshold: f64,
    /// A gc lock older than this is stale: its gc died, and it is ignored and removed.
    pub lock_timeout: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(24 * 3600),
            dry_run: false,
            repack_threshold: 0.5,
            lock_timeout: Duration::from_secs(6 * 3600),
        }
    }
}

/// What a gc did (or, dry, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Snapshots whose blobs were kept.
    pub snapshots: u64,
    /// Packs the deltas name.
    pub packs: u64,
    /// Stored bytes of live blobs (each copy counted).
    pub live_bytes: u64,
    /// Stored bytes of blobs no snapshot reaches, in indexed packs.
    pub garbage_bytes: u64,
    /// Packs marked by this run (with no live blob, unindexed, or repacked).
    pub marked_packs: u64,
    /// Their size.
    pub marked_bytes: u64,
    /// Of those, packs repacked.
    pub repacked_packs: u64,
    /// New packs the repack put.
    pub new_packs: u64,
    /// Bytes the repack copied.
    pub copied_bytes: u64,
    /// Packs removed (marked at least `grace` before).
    pub swept_packs: u64,
    /// Their size.
    pub swept_bytes: u64,
    /// Packs a swept mark named that some snapshot came to need: kept.
    pub rescued_packs: u64,
    /// Index deltas removed (their surviving rows put in new deltas first).
    pub swept_deltas: u64,
    /// Marks removed after their sweep.
    pub swept_marks: u64,
    /// The mark put, if any.
    pub mark: Option<String>,
}

/// Runs one gc of `store` at time `now` (nanoseconds since the Unix epoch). See the module
/// documentation. Fails without changing anything when another gc holds the lock, or when a
/// snapshot reaches a blob no delta names (a damaged store, or a listing that lags: run it
/// again later).
pub fn gc(store: &Store, options: &GcOptions, now: i64) -> Result<GcReport> {
    if options.dry_run {
        return run(store, options, now);
    }
    let lock = take_lock(store, options, now)?;
    let result = run(store, options, now);
    // A lock left behind (the removal failed) is stale after the timeout.
    let released = store.objects.remove(ObjectKind::StoreLock, &lock);
    let report = result?;
    released?;
    Ok(report)
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Puts this run's lock, lists every lock, and runs only when this one is the earliest live
/// one (by time, then id). Without compare-and-swap, two gcs whose listings both miss the
/// other's lock may both run; `docs/format.md` shows why that is safe still.
fn take_lock(store: &Store, options: &GcOptions, now: i64) -> Result<ObjectId> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut seed = blake3::Hasher::new();
    seed.update(&std::process::id().to_le_bytes());
    seed.update(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    seed.update(&wall.to_le_bytes());
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&seed.finalize().as_bytes()[..16]);
    let ours = GcLock {
        host: host_name(),
        time_ns: now,
        nonce,
    };
    let bytes = encode_object(Tag::Lock, &ours);
    let id = ObjectId::of(&bytes);
    store.objects.put(ObjectKind::StoreLock, &id, &bytes)?;
    crate::failpoint::hit("store-gc-lock");
    let mut live: Vec<(i64, ObjectId, String)> = Vec::new();
    let mut stale = Vec::new();
    for other in store.objects.list(ObjectKind::StoreLock)? {
        let read = store
            .objects
            .size(ObjectKind::StoreLock, &other)
            .and_then(|n| {
                store
                    .objects
                    .read(ObjectKind::StoreLock, &other, 0, n.min(1 << 20) as usize)
            });
        let bytes = match read {
            Ok(b) => b,
            Err(e) if not_found(&e) => continue,
            Err(e) => return Err(e),
        };
        let Ok(lock) = decode_object::<GcLock>(Tag::Lock, &bytes) else {
            return Err(store.damaged(format!("gc lock {}", other.hex())));
        };
        if lock.time_ns.saturating_add(nanos(options.lock_timeout)) <= now {
            stale.push(other);
        } else {
            live.push((lock.time_ns, other, lock.host));
        }
    }
    if !live.iter().any(|(_, l, _)| *l == id) {
        live.push((now, id, ours.host.clone()));
    }
    live.sort();
    let (time, winner, host) = &live[0];
    if *winner != id {
        let _ = store.objects.remove(ObjectKind::StoreLock, &id);
        return Err(Error::StoreLocked {
            store: store.url.clone(),
            reason: format!(
                "another gc is running (started by {host} at {}, lock {}); try again when it ends, or once the lock is {} h old and stale",
                crate::time::Zone::utc().format(*time),
                winner.hex(),
                options.lock_timeout.as_secs() / 3600
            ),
        });
    }
    for other in stale {
        tracing::info!("{}: removing stale gc lock {}", store.url, other.hex());
        store.objects.remove(ObjectKind::StoreLock, &other)?;
    }
    Ok(id)
}

/// Everything gc reads of the store.
struct State {
    deltas: Vec<(ObjectId, IndexDelta)>,
    /// Each indexed pack's rows (from the first delta naming it).
    rows: HashMap<ObjectId, Vec<PackEntry>>,
    /// Each blob's packs.
    copies: HashMap<(BlobKind, [u8; 32]), Vec<ObjectId>>,
    /// The packs `data/` lists.
    listed: HashSet<ObjectId>,
    marks: Vec<(ObjectId, GcMark)>,
    /// Packs any mark names.
    marked: HashSet<ObjectId>,
    snapshots: Vec<(ObjectId, StoreSnapshot)>,
}

impl State {
    fn read(store: &Store) -> Result<State> {
        let marks = store.marks()?;
        let marked = marks
            .iter()
            .flat_map(|(_, m)| m.packs.iter().map(object_id))
            .collect();
        let snapshots = store.snapshots()?;
        let listed: HashSet<ObjectId> = store
            .objects
            .list(ObjectKind::StorePack)?
            .into_iter()
            .collect();
        let mut ids = store.objects.list(ObjectKind::StoreIndex)?;
        // Deltas a snapshot names that the listing does not show yet (a lagging listing).
        let mut seen: HashSet<ObjectId> = ids.iter().copied().collect();
        for (_, snap) in &snapshots {
            for d in snap.deltas.iter().map(object_id) {
                if seen.insert(d) {
                    match store.objects.size(ObjectKind::StoreIndex, &d) {
                        Ok(_) => ids.push(d),
                        Err(e) if not_found(&e) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        let mut state = State {
            deltas: Vec::new(),
            rows: HashMap::new(),
            copies: HashMap::new(),
            listed,
            marks,
            marked,
            snapshots,
        };
        for id in ids {
            let bytes = match store.fetch_small(ObjectKind::StoreIndex, &id) {
                Ok(b) => b,
                Err(e) if not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            let delta: IndexDelta = decode_object(Tag::Index, &bytes)
                .map_err(|why| store.damaged(format!("index delta {}: {why}", id.hex())))?;
            for p in &delta.packs {
                let pack = object_id(&p.pack);
                if state.rows.contains_key(&pack) {
                    continue;
                }
                for e in &p.entries {
                    state.copies.entry((e.kind, e.id)).or_default().push(pack);
                }
                state.rows.insert(pack, p.entries.clone());
            }
            state.deltas.push((id, delta));
        }
        Ok(state)
    }

    /// The row of blob `key` in `pack`.
    fn row(&self, pack: &ObjectId, key: &(BlobKind, [u8; 32])) -> Option<&PackEntry> {
        self.rows.get(pack)?.iter().find(|e| (e.kind, e.id) == *key)
    }
}

/// Reads blobs of the store, a metadata pack whole at a time.
struct Reader<'s> {
    store: &'s Store,
    packs: HashMap<ObjectId, Vec<u8>>,
}

impl Reader<'_> {
    /// The raw bytes of blob `key`, from the first of its copies that reads (unmarked first).
    fn blob(&mut self, state: &State, key: &(BlobKind, [u8; 32])) -> Result<Vec<u8>> {
        let mut copies = state.copies.get(key).cloned().unwrap_or_default();
        copies.sort_by_key(|p| state.marked.contains(p));
        let mut last = None;
        for pack in copies {
            let Some(row) = state.row(&pack, key).copied() else {
                continue;
            };
            match self.stored(&pack, &row) {
                Ok(stored) => {
                    return if row.compressed {
                        decompress(&stored, Some(row.raw as usize)).map_err(|why| {
                            self.store
                                .damaged(format!("a blob of pack {}: {why}", pack.hex()))
                        })
                    } else {
                        Ok(stored)
                    }
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::InvalidInput(format!(
                "{}: a snapshot reaches {:?} {}, which no index delta names (a damaged store, or a listing that lags: run gc again later); nothing was removed",
                self.store.url,
                key.0,
                ObjectId::from_bytes(key.1).hex()
            ))
        }))
    }

    /// The stored bytes of `row` in `pack`.
    fn stored(&mut self, pack: &ObjectId, row: &PackEntry) -> Result<Vec<u8>> {
        if !self.packs.contains_key(pack) {
            let size = self.store.objects.size(ObjectKind::StorePack, pack)?;
            if size > u64::from(super::format::MAX_BLOB) * 4 {
                return self.store.objects.read(
                    ObjectKind::StorePack,
                    pack,
                    u64::from(row.offset),
                    row.stored as usize,
                );
            }
            let bytes = self
                .store
                .objects
                .read(ObjectKind::StorePack, pack, 0, size as usize)?;
            self.packs.insert(*pack, bytes);
        }
        let bytes = &self.packs[pack];
        let start = row.offset as usize;
        bytes
            .get(start..start + row.stored as usize)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                self.store
                    .damaged(format!("pack {} is shorter than its rows", pack.hex()))
            })
    }
}

/// Every blob a snapshot reaches.
fn live_blobs(
    store: &Store,
    state: &State,
    reader: &mut Reader<'_>,
) -> Result<HashSet<(BlobKind, [u8; 32])>> {
    let mut live: HashSet<(BlobKind, [u8; 32])> = HashSet::new();
    let mut stack: Vec<[u8; 32]> = state.snapshots.iter().map(|(_, s)| s.root).collect();
    while let Some(tree) = stack.pop() {
        if !live.insert((BlobKind::Tree, tree)) {
            continue;
        }
        crate::interrupt::check()?;
        let id = TreeId::from_stored(tree);
        let bytes = reader.blob(state, &(BlobKind::Tree, tree))?;
        let tree = check_tree(&id, &bytes).map_err(|why| store.damaged(why))?;
        for entry in tree.entries {
            match entry.node {
                Node::Dir { tree, .. } => stack.push(*tree.as_bytes()),
                Node::File { content, size, .. } => {
                    if !live.insert((BlobKind::Content, *content.as_bytes())) {
                        continue;
                    }
                    let bytes = reader.blob(state, &(BlobKind::Content, *content.as_bytes()))?;
                    let list =
                        check_content(&content, size, &bytes).map_err(|why| store.damaged(why))?;
                    for c in list.chunks {
                        live.insert((BlobKind::Chunk, *c.id.as_bytes()));
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    // A chunk must be indexed somewhere, else a pull of its snapshot fails: refuse to go on.
    if let Some(missing) = live.iter().find(|k| !state.copies.contains_key(k)) {
        return Err(Error::InvalidInput(format!(
            "{}: a snapshot reaches {:?} {}, which no index delta names (a damaged store, or a listing that lags: run gc again later); nothing was removed",
            store.url,
            missing.0,
            ObjectId::from_bytes(missing.1).hex()
        )));
    }
    Ok(live)
}

fn run(store: &Store, options: &GcOptions, now: i64) -> Result<GcReport> {
    let state = State::read(store)?;
    let mut reader = Reader {
        store,
        packs: HashMap::new(),
    };
    let live = live_blobs(store, &state, &mut reader)?;
    let mut report = GcReport {
        snapshots: state.snapshots.len() as u64,
        packs: state.rows.len() as u64,
        ..GcReport::default()
    };
    for rows in state.rows.values() {
        for e in rows {
            if live.contains(&(e.kind, e.id)) {
                report.live_bytes += u64::from(e.stored);
            } else {
                report.garbage_bytes += u64::from(e.stored);
            }
        }
    }

    // The sweep's plan.
    let expired: Vec<&(ObjectId, GcMark)> = state
        .marks
        .iter()
        .filter(|(_, m)| m.time_ns.saturating_add(nanos(options.grace)) <= now)
        .collect();
    let pending: HashSet<ObjectId> = state
        .marks
        .iter()
        .filter(|(_, m)| m.time_ns.saturating_add(nanos(options.grace)) > now)
        .flat_map(|(_, m)| m.packs.iter().map(object_id))
        .collect();
    let has_free_copy = |key: &(BlobKind, [u8; 32]), unusable: &dyn Fn(&ObjectId) -> bool| {
        state
            .copies
            .get(key)
            .is_some_and(|c| c.iter().any(|p| !unusable(p)))
    };
    let mut doomed: HashSet<ObjectId> = HashSet::new();
    let mut rescued: HashSet<ObjectId> = HashSet::new();
    for pack in expired
        .iter()
        .flat_map(|(_, m)| m.packs.iter().map(object_id))
    {
        if pending.contains(&pack) || doomed.contains(&pack) || rescued.contains(&pack) {
            continue;
        }
        let needed = state.rows.get(&pack).is_some_and(|rows| {
            rows.iter().any(|e| {
                live.contains(&(e.kind, e.id))
                    && !has_free_copy(&(e.kind, e.id), &|p| state.marked.contains(p))
            })
        });
        if needed {
            rescued.insert(pack);
        } else {
            doomed.insert(pack);
        }
    }
    report.rescued_packs = rescued.len() as u64;

    // The mark's plan: packs no pending mark names and not doomed.
    let mut to_mark: Vec<ObjectId> = Vec::new();
    let mut to_repack: Vec<ObjectId> = Vec::new();
    let mut packs: Vec<&ObjectId> = state.rows.keys().collect();
    packs.sort();
    for pack in packs {
        if pending.contains(pack) || doomed.contains(pack) {
            continue;
        }
        if state.marked.contains(pack) && !rescued.contains(pack) {
            continue;
        }
        let rows = &state.rows[pack];
        let total: u64 = rows.iter().map(|e| u64::from(e.stored)).sum();
        let alive: u64 = rows
            .iter()
            .filter(|e| live.contains(&(e.kind, e.id)))
            .map(|e| u64::from(e.stored))
            .sum();
        let dead_meta = rows
            .iter()
            .any(|e| e.kind != BlobKind::Chunk && !live.contains(&(e.kind, e.id)));
        if alive == 0 {
            to_mark.push(*pack);
        } else if dead_meta || (alive as f64) < options.repack_threshold * total as f64 {
            to_repack.push(*pack);
        }
    }
    let mut unindexed: Vec<ObjectId> = state
        .listed
        .iter()
        .filter(|p| !state.rows.contains_key(p) && !state.marked.contains(p))
        .copied()
        .collect();
    unindexed.sort();
    to_mark.extend(unindexed);

    // What the repack copies: live blobs of repacked packs with no copy in a pack that stays.
    let going: HashSet<ObjectId> = state
        .marked
        .iter()
        .chain(&doomed)
        .chain(&to_mark)
        .chain(&to_repack)
        .copied()
        .collect();
    let mut copy: Vec<(ObjectId, PackEntry)> = Vec::new();
    let mut copied: HashSet<(BlobKind, [u8; 32])> = HashSet::new();
    for pack in &to_repack {
        for e in &state.rows[pack] {
            let key = (e.kind, e.id);
            if live.contains(&key)
                && !has_free_copy(&key, &|p| going.contains(p))
                && copied.insert(key)
            {
                copy.push((*pack, *e));
            }
        }
    }
    report.repacked_packs = to_repack.len() as u64;
    report.copied_bytes = copy.iter().map(|(_, e)| u64::from(e.stored)).sum();
    let mut marked_now: Vec<ObjectId> = to_mark.iter().chain(&to_repack).copied().collect();
    marked_now.sort();
    marked_now.dedup();
    report.marked_packs = marked_now.len() as u64;
    for pack in &marked_now {
        report.marked_bytes += match state.rows.get(pack) {
            Some(rows) => rows.iter().map(|e| u64::from(e.stored)).sum(),
            None => store.objects.size(ObjectKind::StorePack, pack).unwrap_or(0),
        };
    }
    report.swept_packs = doomed.len() as u64;
    for pack in &doomed {
        report.swept_bytes += match store.objects.size(ObjectKind::StorePack, pack) {
            Ok(n) => n,
            Err(_) => state
                .rows
                .get(pack)
                .map(|rows| rows.iter().map(|e| u64::from(e.stored)).sum())
                .unwrap_or(0),
        };
    }
    // Deltas naming a swept pack: superseded by their surviving rows.
    let superseded: Vec<&(ObjectId, IndexDelta)> = state
        .deltas
        .iter()
        .filter(|(_, d)| d.packs.iter().any(|p| doomed.contains(&object_id(&p.pack))))
        .collect();
    report.swept_deltas = superseded.len() as u64;
    report.swept_marks = expired.len() as u64;
    if options.dry_run {
        return Ok(report);
    }

    // 1. The repack: new packs, then their delta.
    let avoid: HashSet<ObjectId> = state
        .marked
        .iter()
        .chain(&marked_now)
        .chain(&doomed)
        .copied()
        .collect();
    let pack_size = store.config.pack_size as usize;
    let mut new_rows: Vec<PackRows> = Vec::new();
    let mut meta = PackBuilder::default();
    let mut data = PackBuilder::default();
    // Trees and chunk lists read by the walk are kept no longer; a repacked pack is read
    // whole once and dropped when its blobs are copied (`copy` is grouped by pack).
    reader.packs.clear();
    let mut previous: Option<ObjectId> = None;
    for (pack, e) in &copy {
        if let Some(p) = previous.filter(|p| p != pack) {
            reader.packs.remove(&p);
        }
        previous = Some(*pack);
        let stored = reader.stored(pack, e)?;
        let builder = if e.kind == BlobKind::Chunk {
            &mut data
        } else {
            &mut meta
        };
        builder.add_stored(e, &stored);
        if builder.len() >= pack_size {
            put_pack(store, builder, &avoid, &mut new_rows)?;
        }
    }
    put_pack(store, &mut data, &avoid, &mut new_rows)?;
    put_pack(store, &mut meta, &avoid, &mut new_rows)?;
    report.new_packs = new_rows.len() as u64;
    if !new_rows.is_empty() {
        put_delta(store, host_name(), now, new_rows)?;
    }

    // 2. The mark.
    if !marked_now.is_empty() {
        let all: HashSet<ObjectId> = avoid.clone();
        let deltas = state
            .deltas
            .iter()
            .filter(|(_, d)| d.packs.iter().all(|p| all.contains(&object_id(&p.pack))))
            .map(|(id, _)| *id.as_bytes())
            .collect();
        let mark = GcMark {
            host: host_name(),
            time_ns: now,
            packs: marked_now.iter().map(|p| *p.as_bytes()).collect(),
            repacked: to_repack.iter().map(|p| *p.as_bytes()).collect(),
            deltas,
        };
        let bytes = encode_object(Tag::Mark, &mark);
        let id = ObjectId::of(&bytes);
        store.objects.put(ObjectKind::StoreMark, &id, &bytes)?;
        crate::failpoint::hit("store-gc-mark");
        store.cache.put(ObjectKind::StoreMark, &id, &bytes);
        report.mark = Some(id.hex());
    }

    // 3. The sweep: deltas first (their surviving rows put again, then the old ones removed),
    // then the packs, then the marks, so that a sweep stopped half-way leaves every swept pack
    // still marked, and the next sweep finishes it.
    for (_, delta) in &superseded {
        let keep: Vec<PackRows> = delta
            .packs
            .iter()
            .filter(|p| !doomed.contains(&object_id(&p.pack)))
            .cloned()
            .collect();
        if !keep.is_empty() {
            // The same host and time: a sweep run again puts the same delta.
            put_delta(store, delta.host.clone(), delta.time_ns, keep)?;
        }
    }
    for (id, _) in &superseded {
        store.objects.remove(ObjectKind::StoreIndex, id)?;
        crate::failpoint::hit("store-gc-sweep");
    }
    let mut doomed: Vec<ObjectId> = doomed.into_iter().collect();
    doomed.sort();
    for pack in &doomed {
        store.objects.remove(ObjectKind::StorePack, pack)?;
        crate::failpoint::hit("store-gc-sweep");
    }
    for (id, _) in &expired {
        store.objects.remove(ObjectKind::StoreMark, id)?;
        crate::failpoint::hit("store-gc-sweep");
    }
    tracing::debug!(
        "gc of {}: {} packs marked ({} repacked, {} bytes copied), {} swept ({} bytes), {} rescued",
        store.url,
        report.marked_packs,
        report.repacked_packs,
        report.copied_bytes,
        report.swept_packs,
        report.swept_bytes,
        report.rescued_packs
    );
    Ok(report)
}

/// Puts the pack `builder` holds (if any) under an id no mark names, and keeps its rows.
fn put_pack(
    store: &Store,
    builder: &mut PackBuilder,
    avoid: &HashSet<ObjectId>,
    rows: &mut Vec<PackRows>,
) -> Result<()> {
    if builder.is_empty() {
        return Ok(());
    }
    let (mut bytes, mut entries) = builder.finish();
    let mut id = ObjectId::of(&bytes);
    let mut salt = 0u64;
    while avoid.contains(&id) {
        salt += 1;
        (bytes, entries) = repad(&bytes, &entries, &salt.to_le_bytes());
        id = ObjectId::of(&bytes);
    }
    store.objects.put(ObjectKind::StorePack, &id, &bytes)?;
    crate::failpoint::hit("store-gc-repack");
    rows.push(PackRows {
        pack: *id.as_bytes(),
        entries,
    });
    Ok(())
}

fn put_delta(store: &Store, host: String, time_ns: i64, packs: Vec<PackRows>) -> Result<()> {
    let delta = IndexDelta {
        host,
        time_ns,
        packs,
    };
    let bytes = encode_object(Tag::Index, &delta);
    let id = ObjectId::of(&bytes);
    store.objects.put(ObjectKind::StoreIndex, &id, &bytes)?;
    store.cache.put(ObjectKind::StoreIndex, &id, &bytes);
    Ok(())
}

/// Removes the snapshot objects of each library but its `keep_last` newest (at least one is
/// always kept), and returns their ids; with `dry_run`, only returns them. What they alone
/// reached becomes garbage for the next [`gc`]. Forgetting is removing the snapshot object: a
/// reader lists snapshots before fetching them (a copy in its cache is not listed), and a
/// listing that lags may show one for a while, whose blobs stay until a gc marks them and a
/// sweep a grace period later removes them.
pub fn forget(store: &Store, keep_last: usize, dry_run: bool) -> Result<Vec<ObjectId>> {
    let keep_last = keep_last.max(1);
    let snapshots = store.snapshots()?;
    let mut per_library: HashMap<&str, Vec<&ObjectId>> = HashMap::new();
    // Oldest first: the last `keep_last` of each library are kept.
    for (id, snap) in &snapshots {
        per_library.entry(&snap.library).or_default().push(id);
    }
    let mut gone: Vec<ObjectId> = per_library
        .values()
        .flat_map(|ids| ids[..ids.len().saturating_sub(keep_last)].iter().copied())
        .copied()
        .collect();
    gone.sort();
    if !dry_run {
        for id in &gone {
            store.objects.remove(ObjectKind::StoreSnapshot, id)?;
        }
    }
    Ok(gone)
}
