//! Indexing an origin into the repository, incrementally.
//!
//! A file is read again only when its size, mtime, mode or change key (`origin::ChangeKey`:
//! ctime and inode on a POSIX file system) changed since the last scan (or always, with
//! `checksum`); on an origin whose identities are stable (`Capabilities::stable_identity`), a
//! file found at a new path with the identity, size and mtime of one that vanished is a move
//! and is not read either; where change keys are digests of the content
//! (`Capabilities::content_keys`, S3 ETags), so is a file whose key, size and mtime are those
//! of one that vanished. Changed files are chunked in parallel on
//! all cores, streaming; a file whose `fstat` differs after reading was being rewritten and is
//! read again (three attempts), never recorded half-written. The result is a snapshot: a tree
//! of [`Tree`]s whose root says in one hash whether anything changed.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::Serialize;

use crate::chunk::{chunk_file_copying, history_chunks, Chunker, Tee};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, SnapshotId, TreeId};
use crate::media::{self, Format};
use crate::origin::{ChangeKey, EntryKind, EntryStat, Identity, Origin, WalkItem};
use crate::repo::{EncodedList, OriginId, PackedChunk, RepoWriter, Repository, ScanEntry};
use crate::report::{display_path, Event, Sink};
use crate::snapshot::{ChunkList, MediaRecord, Node, SnapshotRecord, Tree, TreeEntry};

/// How to scan.
#[derive(Clone, Copy, Default)]
pub struct ScanOptions<'a> {
    /// Read every file, whatever its metadata says.
    pub checksum: bool,
    /// Where each file read is copied as it is read (a cold initial sync's destination);
    /// `None`: nowhere.
    pub copy: Option<&'a dyn CopySink>,
    /// No other scan of this process records while this one does (a sync's two scans run at
    /// once unless it is a cold one): its index writer may then keep the repository's writer
    /// between batches and commit every 10 seconds, not after each batch (a page of the index
    /// that many batches touch is then written once, not once a batch).
    pub alone: bool,
    /// Leaves the location rows the scan staged for its caller to merge
    /// ([`Repository::merge_staged_locations`]), as a cold sync does on a thread of its own
    /// while it plans; otherwise the scan merges them before it returns.
    pub leave_staged: bool,
}

impl std::fmt::Debug for ScanOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanOptions")
            .field("checksum", &self.checksum)
            .field("copy", &self.copy.is_some())
            .field("alone", &self.alone)
            .field("leave_staged", &self.leave_staged)
            .finish()
    }
}

/// Where a scan copies the files it reads, in the same pass: the bytes that are cut and hashed
/// are the bytes copied ([`Tee`]), so a sync need not read them again.
///
/// Contract: [`CopySink::start`] is called from the scan's reader threads, once per attempt to
/// read a file, before its bytes are read. The copy it returns is given every byte of the file
/// in order and is then either finished ([`FileCopy::finish`], only when the read was verified:
/// the file's stat after reading is the one before, and its chunks add up to its size) or
/// dropped (the read failed, or the file changed while read: the copy must then be thrown away,
/// never committed). Nothing the sink does can fail the scan.
pub trait CopySink: Sync {
    /// A copy of the file at `path`, whose stat is `stat` before it is read; `None`: this file
    /// is not copied.
    fn start(&self, path: &[u8], stat: &EntryStat) -> Option<Box<dyn FileCopy + '_>>;
}

/// One file's copy under way ([`CopySink`]); dropped unfinished, it is thrown away.
pub trait FileCopy: Tee {
    /// The read was verified: the file had `stat` from before to after, and these chunks
    /// (`content`: the list's id).
    fn finish(self: Box<Self>, stat: &EntryStat, list: &ChunkList, content: &ContentId);
}

/// What a scan found.
#[derive(Clone, Debug, Serialize)]
pub struct ScanSummary {
    /// The origin's canonical name.
    pub origin: String,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Files read and chunked by this scan.
    pub files_read: u64,
    /// Bytes read and chunked by this scan.
    pub bytes_read: u64,
    /// Files recognised as moved (not read).
    pub files_moved: u64,
    /// Entries that could not be read.
    pub problems: u64,
    /// The snapshot describing the origin now.
    pub snapshot: SnapshotId,
    /// Its root tree.
    #[serde(skip)]
    pub root: TreeId,
    /// The origin's id in the repository.
    #[serde(skip)]
    pub origin_id: OriginId,
    /// Paths that could not be read: a sync must leave them alone at the destination.
    #[serde(skip)]
    pub unreadable: Vec<Vec<u8>>,
    /// Temporary files of an interrupted sync found in the tree.
    #[serde(skip)]
    pub temporaries: Vec<Vec<u8>>,
    /// Entries the origin's filter left out (not stat'ed, directories not entered): not in
    /// the snapshot, and left alone by a sync into this origin.
    #[serde(skip)]
    pub excluded: Vec<Vec<u8>>,
}

/// The entries a walk met, in its order, their paths end to end in one buffer: a vector per
/// path would cost a third again as much memory on a large library.
#[derive(Default)]
struct Walk {
    paths: Vec<u8>,
    /// Each entry's stat, and where its path ends in `paths`.
    entries: Vec<(usize, EntryStat)>,
    /// Symlinks' targets, by entry.
    targets: HashMap<usize, Vec<u8>>,
}

/// One entry of a [`Walk`].
#[derive(Clone, Copy)]
struct Walked<'a> {
    path: &'a [u8],
    stat: &'a EntryStat,
}

impl Walk {
    fn push(&mut self, path: &[u8], stat: EntryStat, target: Option<Vec<u8>>) {
        if let Some(target) = target {
            self.targets.insert(self.entries.len(), target);
        }
        self.paths.extend_from_slice(path);
        self.entries.push((self.paths.len(), stat));
    }

    /// Gives back what the vectors' growth reserved beyond their contents.
    fn shrink(&mut self) {
        self.paths.shrink_to_fit();
        self.entries.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn at(&self, i: usize) -> Walked<'_> {
        let start = i
            .checked_sub(1)
            .and_then(|before| self.entries.get(before))
            .map_or(0, |(end, _)| *end);
        let (end, stat) = &self.entries[i];
        Walked {
            path: &self.paths[start..*end],
            stat,
        }
    }

    fn iter(&self) -> impl Iterator<Item = Walked<'_>> {
        (0..self.len()).map(|i| self.at(i))
    }

    fn target(&self, i: usize) -> Option<&[u8]> {
        self.targets.get(&i).map(Vec::as_slice)
    }
}

/// What to do about one regular file, then what was done.
enum Plan {
    /// Unchanged: its entry in the previous scan state stands, and holds this content (the
    /// rest of the entry is the walk's stat: not copied here, as a library's worth of entries
    /// is most of a no-change scan's memory).
    Keep(ContentId),
    /// Moved from `gone[from]`. Entries are boxed, so that a plan per file of a large library
    /// costs a few words, not a scan entry each.
    Moved { from: usize, entry: Box<ScanEntry> },
    /// To be read; what the last scan recorded at its path, if anything.
    Read(Option<Box<ScanEntry>>),
    /// Read, and recorded with this content and metadata (what its node in the tree needs,
    /// in place: a box per file read is most of an initial scan's memory).
    Recorded {
        content: ContentId,
        size: u64,
        mtime_ns: i64,
        mode: u32,
    },
}

const MAX_ATTEMPTS: u32 = 3;

/// Files read before their results are written in one transaction. Each commit is durable (an
/// fsync, which on ext4 also writes out the data of the files written since), and each
/// rewrites the pages its random keys (content and chunk ids) land on, most of the tables
/// once they are large: 4,096 rather than 1,024 took about 17 % off a cold local sync of
/// 100,000 files and 1 GB off its writes. A batch holds each file's history chunks
/// compressed (by its reader, [`PackedChunk`]); peak RSS 91 MiB. 8,192 took a few per cent
/// more off but passed 97 MiB (`docs/benchmarks.md`).
const BATCH_FILES: usize = 4096;
/// Longest wait before read results are written, so that a killed scan loses little.
const BATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Longest time a scan that runs alone ([`ScanOptions::alone`]) keeps the batches it has
/// written uncommitted. Each commit rewrites the pages its random keys (content and chunk ids)
/// land on, most of the tables once they are large: written into one transaction, a page is
/// copied once however many batches touch it. A batch's history chunks and staged rows still
/// leave memory when it is written ([`RepoWriter::settle`]). A killed scan reads again at most
/// this long's files; another process that wants the writer meanwhile waits as long.
pub(crate) const HELD_COMMIT_INTERVAL: Duration = Duration::from_secs(10);

/// Scans `origin` into `repo` and records a snapshot.
pub fn scan(
    repo: &Repository,
    origin: &dyn Origin,
    chunker: &dyn Chunker,
    options: ScanOptions<'_>,
    sink: &dyn Sink,
) -> Result<ScanSummary> {
    let origin_id = repo.origin_id(origin.url())?;
    let mut walked = Walk::default();
    let mut unreadable = Vec::new();
    let mut temporaries = Vec::new();
    let mut excluded = Vec::new();
    origin.walk(&mut |item| match item {
        _ if crate::interrupt::cause().is_some() => {}
        WalkItem::Entry { path, stat, target } => walked.push(&path, stat, target),
        WalkItem::Temporary(path) => temporaries.push(path),
        WalkItem::Excluded(path) => {
            tracing::debug!("{}: excluded", origin.display(&path).display());
            excluded.push(path);
        }
        WalkItem::Problem { path, message } => {
            sink.event(&Event::Problem {
                path: origin.display(&path).to_string_lossy().into_owned(),
                message,
                fault: None,
            });
            unreadable.push(path);
        }
    });
    crate::interrupt::check()?;
    walked.shrink();

    // The walk's regular files in the order of their paths' bytes, the order the scan state is
    // stored in: the state is merged with them as it is read, never held whole in memory.
    let mut sorted: Vec<usize> = (0..walked.len())
        .filter(|&i| walked.at(i).stat.kind == EntryKind::File)
        .collect();
    // A walk is sorted by name within each directory: a stable sort merges its runs.
    sorted.sort_by(|&a, &b| walked.at(a).path.cmp(walked.at(b).path));
    let mut plans: Vec<Option<Plan>> = walked
        .iter()
        .map(|w| (w.stat.kind == EntryKind::File).then_some(Plan::Read(None)))
        .collect();
    // Files the last scan recorded at a path the walk did not find: removed, or moved.
    let mut gone: Vec<(Vec<u8>, ScanEntry)> = Vec::new();
    let mut next = 0;
    repo.scan_state_each(origin_id, |path, entry| {
        while let Some(&i) = sorted.get(next) {
            match walked.at(i).path.cmp(path) {
                std::cmp::Ordering::Less => next += 1,
                std::cmp::Ordering::Equal => {
                    next += 1;
                    plans[i] = Some(
                        if !options.checksum && unchanged(&entry, walked.at(i).stat) {
                            Plan::Keep(entry.content)
                        } else {
                            Plan::Read(Some(Box::new(entry)))
                        },
                    );
                    return Ok(());
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        gone.push((path.to_vec(), entry));
        Ok(())
    })?;
    drop(sorted);

    // Files that vanished from their path, by identity: candidates for moves, on an origin
    // whose identities survive a rename. Elsewhere a moved file is read again at its new path.
    let identities = origin.capabilities().stable_identity;
    let mut vanished: HashMap<Identity, usize> = gone
        .iter()
        .enumerate()
        .filter(|_| identities)
        .filter_map(|(g, (_, e))| Some((e.change.identity()?, g)))
        .collect();
    // Where change keys are digests of the content (S3 ETags), files that vanished from
    // their path by key, size and mtime: an object moved by a server-side copy keeps them.
    let content_keys = origin.capabilities().content_keys;
    let mut vanished_content: HashMap<(&ChangeKey, u64, i64), Vec<usize>> = HashMap::new();
    if content_keys {
        for (g, (_, e)) in gone.iter().enumerate() {
            if matches!(e.change, ChangeKey::Opaque(_)) {
                vanished_content
                    .entry((&e.change, e.size, e.mtime_ns))
                    .or_default()
                    .push(g);
            }
        }
    }
    if !options.checksum && (!vanished.is_empty() || !vanished_content.is_empty()) {
        for (w, plan) in walked.iter().zip(plans.iter_mut()) {
            if !matches!(plan, Some(Plan::Read(None))) {
                continue;
            }
            let by_identity = w
                .stat
                .change
                .identity()
                .and_then(|id| Some((id, *vanished.get(&id)?)))
                // A rename changes the ctime, so a move is matched on identity, size and
                // mtime, and the new change key recorded.
                .filter(|(_, g)| {
                    gone[*g].1.size == w.stat.size && gone[*g].1.mtime_ns == w.stat.mtime_ns
                });
            let moved = match by_identity {
                Some((id, g)) => {
                    vanished.remove(&id);
                    let mut entry = gone[g].1.clone();
                    entry.change = w.stat.change.clone();
                    Some((g, entry))
                }
                None => vanished_content
                    .get_mut(&(&w.stat.change, w.stat.size, w.stat.mtime_ns))
                    .and_then(Vec::pop)
                    .map(|g| (g, gone[g].1.clone())),
            };
            if let Some((from, mut entry)) = moved {
                entry.mode = w.stat.mode;
                *plan = Some(Plan::Moved {
                    from,
                    entry: Box::new(entry),
                });
            }
        }
    }
    drop(vanished);
    drop(vanished_content);

    // Chunk what must be read, in parallel, and record results in batches as they arrive.
    let to_read: Vec<usize> = plans
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p, Some(Plan::Read(_))))
        .map(|(i, _)| i)
        .collect();
    sink.phase(
        "scanning",
        to_read.len() as u64,
        to_read.iter().map(|&i| walked.at(i).stat.size).sum(),
    );
    // Unchanged files whose content's history chunks the repository does not keep yet (a
    // repository of format 2, or contents recorded by a sync or a remote end without being
    // read here): those chunks are read back from the files, a few small reads each.
    let kept = || {
        plans.iter().enumerate().filter_map(|(i, p)| match p {
            Some(Plan::Keep(content)) => Some((i, *content)),
            Some(Plan::Moved { entry: e, .. }) => Some((i, e.content)),
            _ => None,
        })
    };
    let lacking: HashSet<ContentId> = repo
        .without_history(&kept().map(|(_, c)| c).collect::<Vec<_>>())?
        .into_iter()
        .collect();
    let mut jobs: Vec<Job> = to_read.iter().map(|&i| Job::Read(i)).collect();
    if !lacking.is_empty() {
        let mut seen = HashSet::new();
        jobs.extend(
            kept()
                .filter(|(_, c)| lacking.contains(c) && seen.insert(*c))
                .map(|(i, c)| Job::History(i, c)),
        );
    }
    let (tx, rx) = mpsc::sync_channel::<Vec<Done>>(8);
    let recorded = std::thread::scope(|scope| -> Result<Recorded> {
        let walked = &walked;
        scope.spawn(move || {
            let read_all = move || {
                let groups = read_groups(&jobs, walked, rayon::current_num_threads());
                groups.par_iter().for_each_with(tx, |tx, group| {
                    let mut done = Vec::with_capacity(group.len());
                    for job in &jobs[group.clone()] {
                        if crate::interrupt::check().is_err() {
                            return;
                        }
                        done.push(match *job {
                            Job::Read(i) => Done::Read(
                                i,
                                Box::new(
                                    read_copying(
                                        origin,
                                        walked.at(i).path,
                                        chunker,
                                        true,
                                        options.copy,
                                    )
                                    .and_then(
                                        |(file, encoded)| {
                                            Scanned::packed(
                                                origin,
                                                walked.at(i).path,
                                                file,
                                                encoded,
                                            )
                                        },
                                    ),
                                ),
                            ),
                            Job::History(i, content) => {
                                match read_history(repo, origin, walked.at(i).path, &content)
                                    .and_then(|chunks| pack(origin, walked.at(i).path, &chunks))
                                {
                                    Ok(chunks) => Done::History(content, chunks),
                                    Err(e) => {
                                        tracing::debug!(
                                            "{}: history chunks not kept: {e}",
                                            origin.display(walked.at(i).path).display()
                                        );
                                        continue;
                                    }
                                }
                            }
                        });
                    }
                    let _ = tx.send(done);
                });
            };
            // An origin far away reads faster with more files under way than there are CPUs:
            // those reads run on a pool of their own, of the size it asks for.
            let wanted = origin.files_in_flight();
            let pool = (wanted > rayon::current_num_threads())
                .then(|| {
                    rayon::ThreadPoolBuilder::new()
                        .num_threads(wanted)
                        .build()
                        .ok()
                })
                .flatten();
            match pool {
                Some(pool) => pool.install(read_all),
                None => read_all(),
            }
        });
        // Results are gathered here and written in batches by a thread of their own, the
        // index writer, which holds the repository's one writer only while it writes a batch:
        // a scan never waits on its readers with the writer in hand. Two scans run at once in
        // a sync (source and destination), and may share rayon's pool; if one held the writer while
        // waiting for its results, and the pool's workers were all blocked on the other's full
        // channel, whose consumer waited for that writer, neither would move again. While the
        // writer inserts a batch and waits for its commit to reach the disk, the readers go on
        // and the next batch is gathered here (at most one batch waits for the writer).
        let (batches, to_write) = mpsc::sync_channel::<Batch>(1);
        let recorder = scope.spawn({
            // The recorder writes each file's plan in place as it records the file: a list of
            // them beside the plans, handed back at the end, held about 7 MB more at 100,000
            // files, at the end of the scan, where the peak is.
            let plans = &mut plans;
            let hold = options.alone;
            move || record_batches(repo, origin, origin_id, walked, plans, sink, to_write, hold)
        });
        let mut batch = Batch::default();
        let mut last_commit = Instant::now();
        let mut open = true;
        // Owned here, so that returning early unblocks readers waiting on a full channel.
        let rx = rx;
        let gathered = (|| -> Result<()> {
            while open {
                crate::interrupt::check()?;
                match rx.recv_timeout(BATCH_INTERVAL.saturating_sub(last_commit.elapsed())) {
                    Ok(group) => {
                        for done in group {
                            match done {
                                Done::Read(i, result) => batch.files.push((i, *result)),
                                Done::History(content, chunks) => {
                                    batch.histories.push((content, chunks))
                                }
                            }
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
                if batch.files.len() + batch.histories.len() < BATCH_FILES
                    && last_commit.elapsed() < BATCH_INTERVAL
                    && open
                {
                    continue;
                }
                if !batch.files.is_empty() || !batch.histories.is_empty() {
                    // The writer is gone only after an error, which its join returns.
                    if batches.send(std::mem::take(&mut batch)).is_err() {
                        return Ok(());
                    }
                }
                last_commit = Instant::now();
            }
            Ok(())
        })();
        drop(batches);
        drop(rx);
        let recorded = recorder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        gathered?;
        recorded
    })?;
    let files_read = recorded.files_read;
    let bytes_read = recorded.bytes_read;
    unreadable.extend(recorded.unreadable);

    // Trees are built bottom-up against a read transaction, with no writer held (the other
    // side's scan of a sync records meanwhile): only those the repository lacks are written.
    let mut trees = NewTrees::new(repo)?;
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut builder = TreeBuilder::default();
    for (i, w) in walked.iter().enumerate() {
        let node = match w.stat.kind {
            EntryKind::File => {
                // A kept file's size, mtime and mode are its scan entry's (`unchanged`).
                let node = match &plans[i] {
                    Some(Plan::Keep(content)) => Node::File {
                        size: w.stat.size,
                        mtime_ns: w.stat.mtime_ns,
                        mode: w.stat.mode,
                        content: *content,
                    },
                    Some(Plan::Recorded {
                        content,
                        size,
                        mtime_ns,
                        mode,
                    }) => Node::File {
                        size: *size,
                        mtime_ns: *mtime_ns,
                        mode: *mode,
                        content: *content,
                    },
                    Some(Plan::Moved { entry, .. }) => Node::File {
                        size: entry.size,
                        mtime_ns: entry.mtime_ns,
                        mode: entry.mode,
                        content: entry.content,
                    },
                    _ => continue,
                };
                if let Node::File { size, .. } = node {
                    files += 1;
                    bytes += size;
                }
                Some(node)
            }
            EntryKind::Symlink => Some(Node::Symlink {
                target: walked.target(i).unwrap_or_default().to_vec(),
            }),
            EntryKind::Dir => None,
            EntryKind::Other => continue,
        };
        builder.add(&mut trees, w.path, w.stat, node)?;
    }
    let root = builder.finish(&mut trees)?;

    // Moves, removals, the remaining trees and the snapshot, in one durable batch.
    let mut writer = repo.writer()?;
    writer.stage_locations();
    let mut tables = writer.tables()?;
    let mut moved_away = vec![false; gone.len()];
    let mut files_moved = 0;
    for (i, plan) in plans.iter().enumerate() {
        if let Some(Plan::Moved { from, entry }) = plan {
            tables.forget_path(origin_id, &gone[*from].0)?;
            tables.record_file(origin_id, walked.at(i).path, (**entry).clone(), Some(entry))?;
            moved_away[*from] = true;
            files_moved += 1;
        }
    }
    for ((path, entry), moved) in gone.iter().zip(&moved_away) {
        if !moved {
            tables.remove_file(origin_id, path, entry)?;
        }
    }
    drop(tables);
    drop(gone);
    writer.put_encoded_trees(&trees.pending)?;
    let record = SnapshotRecord {
        origin: origin.url().to_string(),
        time_ns: now_ns(),
        root,
        files,
        bytes,
    };
    let snapshot = writer.add_snapshot(&record)?;
    crate::failpoint::hit("scan-commit");
    writer.commit()?;
    // The location rows the batches staged, written in key order: each leaf of the tables
    // once, where rows inserted as files came landed at random and every commit rewrote most
    // of the leaves. After the walk and the plans are let go: at the end of a large scan,
    // they are most of what it holds.
    drop((walked, plans, trees));
    crate::failpoint::hit("scan-staged");
    if !options.leave_staged {
        repo.merge_staged_locations()?;
    }

    Ok(ScanSummary {
        origin: origin.url().to_string(),
        files,
        bytes,
        files_read,
        bytes_read,
        files_moved,
        problems: unreadable.len() as u64,
        snapshot,
        root,
        origin_id,
        unreadable,
        temporaries,
        excluded,
    })
}

/// How recent an mtime must be, against this machine's clock when the file is recorded, for
/// the file to be read again by the next scan when its origin gives no change key: an edit
/// within the same tick of a coarse mtime (whole seconds over SFTP) keeps size and mtime, and
/// only a read can see it. The margin covers the tick and a remote clock up to a minute behind
/// ours.
pub(crate) const RACY_WINDOW_NS: i64 = 60_000_000_000;

/// The mtime a racy entry is recorded with: no file has it, so the next scan reads the file.
const RACY_MTIME_NS: i64 = i64::MIN;

/// The scan state to record for a file with `stat` and `content` (its file id is assigned when
/// it is recorded).
///
/// A file whose origin gives no change key ([`ChangeKey::None`]) and whose mtime lies within
/// [`RACY_WINDOW_NS`] of now (or ahead of it) is *racy*, as git calls it: it could change
/// again without its size or mtime showing it. Its entry is recorded with an mtime no file
/// has, so [`unchanged`] never holds for it and the next scan reads it again.
pub(crate) fn scan_entry(stat: &EntryStat, content: ContentId) -> ScanEntry {
    ScanEntry {
        file_id: 0,
        size: stat.size,
        mtime_ns: if racy(stat, now_ns()) {
            RACY_MTIME_NS
        } else {
            stat.mtime_ns
        },
        change: stat.change.clone(),
        mode: stat.mode,
        content,
    }
}

/// Whether `stat`, seen at `now_ns`, could change again unseen by its size and mtime.
fn racy(stat: &EntryStat, now_ns: i64) -> bool {
    stat.change == ChangeKey::None && stat.mtime_ns > now_ns.saturating_sub(RACY_WINDOW_NS)
}

/// Whether `stat` shows the metadata of `prev` (the scan key): nothing an incremental scan
/// would read the file again for. Size, mtime and mode equal, and the change keys equal as
/// `origin::ChangeKey` defines it per variant (device, inode and ctime for a POSIX file
/// system; the bytes of an opaque key; nothing more for a transport without one).
pub(crate) fn unchanged(prev: &ScanEntry, stat: &EntryStat) -> bool {
    prev.size == stat.size
        && prev.mtime_ns == stat.mtime_ns
        && prev.change == stat.change
        && prev.mode == stat.mode
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A file as one read found it.
#[derive(Clone, Debug)]
pub struct ReadFile {
    /// Its metadata, unchanged from before to after the read.
    pub stat: EntryStat,
    /// Its chunks, format and regions.
    pub list: ChunkList,
    /// Its audio hash, tags and properties (tags only when asked for).
    pub media: MediaRecord,
    /// Its history chunks with their bytes (`chunk::keeps_history`).
    pub history: Vec<(ChunkId, Vec<u8>)>,
}

/// Chunks one file by its container's regions, and reads its tags when `tags`; re-reads it
/// when it changed underneath.
pub fn read_file(
    origin: &dyn Origin,
    path: &[u8],
    chunker: &dyn Chunker,
    tags: bool,
) -> Result<ReadFile> {
    read_copying(origin, path, chunker, tags, None).map(|(file, _)| file)
}

/// [`read_file`], copying each attempt's bytes to a copy `copy` starts, which is finished only
/// when that attempt's read is the one returned ([`CopySink`]); with the file's chunk list
/// encoded.
fn read_copying(
    origin: &dyn Origin,
    path: &[u8],
    chunker: &dyn Chunker,
    tags: bool,
    copy: Option<&dyn CopySink>,
) -> Result<(ReadFile, EncodedList)> {
    let full = origin.display(path);
    for _ in 0..MAX_ATTEMPTS {
        let mut file = origin.open(path)?;
        let before = file.stat().map_err(|e| Error::io(&full, e))?;
        let mut copying = copy.and_then(|sink| sink.start(path, &before));
        let mut checked = crate::interrupt::Checked(&mut file);
        let tee = copying.as_deref_mut().map(|c| c as &mut dyn Tee);
        let chunked = chunk_file_copying(&mut checked, before.size, chunker, tee)
            .map_err(|e| Error::io(&full, e))?;
        let info = if tags && chunked.list.format != Format::Opaque {
            media::tags::read(&mut file)
        } else {
            None
        };
        let after = file.stat().map_err(|e| Error::io(&full, e))?;
        if before == after && chunked.list.size() == before.size {
            let encoded = EncodedList::of(&chunked.list);
            if let Some(copying) = copying {
                copying.finish(&before, &chunked.list, &encoded.id);
            }
            let file = ReadFile {
                stat: before,
                list: chunked.list,
                media: MediaRecord {
                    audio_hash: chunked.audio_hash,
                    info,
                },
                history: chunked.history,
            };
            return Ok((file, encoded));
        }
    }
    Err(Error::Unstable {
        path: full,
        attempts: MAX_ATTEMPTS,
    })
}

/// Read results handed from a scan's consumer to its index writer, in the order they came.
#[derive(Default)]
struct Batch {
    files: Vec<(usize, Result<Scanned>)>,
    histories: Vec<(ContentId, Vec<PackedChunk>)>,
}

/// A file a scan read, its history chunks compressed by the reader (the one index writer
/// then only writes them, and a batch waiting for it holds them compressed).
struct Scanned {
    /// The read, its `history` taken out.
    file: ReadFile,
    /// Its chunk list encoded.
    encoded: EncodedList,
    history: Vec<PackedChunk>,
}

impl Scanned {
    fn packed(
        origin: &dyn Origin,
        path: &[u8],
        mut file: ReadFile,
        encoded: EncodedList,
    ) -> Result<Scanned> {
        let history = pack(origin, path, &std::mem::take(&mut file.history))?;
        Ok(Scanned {
            file,
            encoded,
            history,
        })
    }
}

/// `chunks`, read from `path`, compressed for keeping.
fn pack(
    origin: &dyn Origin,
    path: &[u8],
    chunks: &[(ChunkId, Vec<u8>)],
) -> Result<Vec<PackedChunk>> {
    chunks
        .iter()
        .map(|(id, data)| {
            PackedChunk::new(*id, data).map_err(|e| Error::io(origin.display(path), e))
        })
        .collect()
}

/// What a scan's index writer recorded, for the trees built after it.
#[derive(Default)]
struct Recorded {
    files_read: u64,
    bytes_read: u64,
    /// Files whose read failed.
    unreadable: Vec<Vec<u8>>,
}

/// The scan's index writer: writes each batch of read results in one transaction (with
/// `hold`, the batches of up to [`HELD_COMMIT_INTERVAL`] in one), until the consumer hangs up;
/// the first error ends it (the consumer, finding it gone, stops too).
#[allow(clippy::too_many_arguments)]
fn record_batches(
    repo: &Repository,
    origin: &dyn Origin,
    origin_id: OriginId,
    walked: &Walk,
    plans: &mut [Option<Plan>],
    sink: &dyn Sink,
    batches: mpsc::Receiver<Batch>,
    hold: bool,
) -> Result<Recorded> {
    let mut recorded = Recorded::default();
    // With `hold`, the writer and the files it has written but not committed, and when it
    // began.
    let mut held: Option<(RepoWriter<'_>, usize, Instant)> = None;
    loop {
        let next = match &held {
            // A held writer is committed when its time is up, whether or not a batch comes:
            // another process never waits for it longer than that.
            Some((_, _, since)) => {
                match batches.recv_timeout(HELD_COMMIT_INTERVAL.saturating_sub(since.elapsed())) {
                    Ok(batch) => Some(batch),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some((writer, count, _)) = held.take() {
                            commit_recorded(writer, count)?;
                        }
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            }
            None => batches.recv().ok(),
        };
        let Some(Batch { files, histories }) = next else {
            break;
        };
        let (mut writer, mut count, since) = match held.take() {
            Some(held) => held,
            None => {
                let mut writer = repo.writer()?;
                // Merged once the scan is done, in key order (`scan` below).
                writer.stage_locations();
                (writer, 0, Instant::now())
            }
        };
        count += files.len();
        let mut tables = writer.tables()?;
        // The rows keyed by content and chunk id (random keys) first, in key order: a batch's
        // thousands of them then fill the tables' pages one after another instead of each
        // descending to a random page. The rows keyed by path follow in the walk's order.
        let mut by_content: Vec<&Scanned> = files
            .iter()
            .filter_map(|(_, result)| result.as_ref().ok())
            .collect();
        by_content.sort_unstable_by(|a, b| a.encoded.id.as_bytes().cmp(b.encoded.id.as_bytes()));
        for scanned in &by_content {
            tables.put_encoded(&scanned.encoded, &scanned.file.list)?;
            tables.put_media(&scanned.encoded.id, &scanned.file.media)?;
        }
        tables.keep_packed_many(
            histories
                .iter()
                .map(|(content, chunks)| (content, chunks.as_slice()))
                .chain(
                    by_content
                        .iter()
                        .map(|scanned| (&scanned.encoded.id, scanned.history.as_slice())),
                ),
        )?;
        drop(by_content);
        for (i, result) in files {
            let path = walked.at(i).path;
            // What the last scan recorded at this path, if anything.
            let prev = match &plans[i] {
                Some(Plan::Read(prev)) => prev.as_deref(),
                _ => None,
            };
            match result {
                Ok(Scanned {
                    file: ReadFile { stat, .. },
                    encoded,
                    ..
                }) => {
                    recorded.files_read += 1;
                    recorded.bytes_read += stat.size;
                    sink.advance(walked.at(i).stat.size);
                    sink.event(&Event::FileRead {
                        path: display_path(path),
                        bytes: stat.size,
                    });
                    let content = encoded.id;
                    let entry = scan_entry(&stat, content);
                    tables.record_file(origin_id, path, entry, prev)?;
                    plans[i] = Some(Plan::Recorded {
                        content,
                        size: stat.size,
                        mtime_ns: stat.mtime_ns,
                        mode: stat.mode,
                    });
                }
                Err(e) => {
                    crate::interrupt::check()?;
                    sink.advance(walked.at(i).stat.size);
                    // The line names the file: the message need not say it again.
                    let shown = origin.display(path).to_string_lossy().into_owned();
                    let message = e.to_string();
                    let reason = message
                        .strip_prefix(shown.as_str())
                        .and_then(|rest| rest.strip_prefix(": "))
                        .unwrap_or(&message);
                    sink.event(&Event::Problem {
                        path: display_path(path),
                        message: crate::error::without_os_error(reason),
                        fault: None,
                    });
                    if let Some(prev) = prev {
                        tables.remove_file(origin_id, path, prev)?;
                    }
                    recorded.unreadable.push(path.to_vec());
                }
            }
        }
        drop(tables);
        if hold && since.elapsed() < HELD_COMMIT_INTERVAL {
            writer.settle()?;
            held = Some((writer, count, since));
            continue;
        }
        commit_recorded(writer, count)?;
    }
    if let Some((writer, count, _)) = held {
        commit_recorded(writer, count)?;
    }
    Ok(recorded)
}

/// Commits the `count` files `writer` has recorded.
fn commit_recorded(writer: RepoWriter<'_>, count: usize) -> Result<()> {
    writer.commit()?;
    for _ in 0..count {
        crate::failpoint::hit("scan-recorded");
    }
    Ok(())
}

/// Most files one reader reads before it hands their results on together.
const GROUP_FILES: usize = 16;
/// Bytes after which a group is handed on, however few its files.
const GROUP_BYTES: u64 = 1 << 20;

/// The readers' jobs cut into groups of consecutive jobs, each read by one reader and handed to
/// the consumer in one message: one hand-off (a wake-up of the consumer) per group, not per
/// file. Groups hold at most [`GROUP_FILES`] files and end once they reach [`GROUP_BYTES`], and
/// are small enough that each of `readers` gets many (an origin that asks for many files in
/// flight keeps them all busy on a short list).
fn read_groups(jobs: &[Job], walked: &Walk, readers: usize) -> Vec<std::ops::Range<usize>> {
    let most = (jobs.len() / readers.max(1) / GROUP_FILES).clamp(1, GROUP_FILES);
    let mut groups = Vec::with_capacity(jobs.len() / most + 1);
    let mut start = 0;
    let mut bytes = 0u64;
    for (n, job) in jobs.iter().enumerate() {
        let i = match *job {
            Job::Read(i) | Job::History(i, _) => i,
        };
        bytes += walked.at(i).stat.size;
        if n + 1 - start >= most || bytes >= GROUP_BYTES {
            groups.push(start..n + 1);
            start = n + 1;
            bytes = 0;
        }
    }
    if start < jobs.len() {
        groups.push(start..jobs.len());
    }
    groups
}

/// Work for the scan's readers.
enum Job {
    /// Read and chunk file `walked[i]`.
    Read(usize),
    /// Read back the history chunks of the unchanged file `walked[i]`, which holds this content.
    History(usize, ContentId),
}

/// What a reader hands back.
enum Done {
    Read(usize, Box<Result<Scanned>>),
    History(ContentId, Vec<PackedChunk>),
}

/// The history chunks of `content`, read back from `path`, which held it at the last scan.
fn read_history(
    repo: &Repository,
    origin: &dyn Origin,
    path: &[u8],
    content: &ContentId,
) -> Result<Vec<(ChunkId, Vec<u8>)>> {
    let list = repo.content(content)?;
    let mut file = origin.open(path)?;
    history_chunks(&list, &mut file).map_err(|e| Error::io(origin.display(path), e))
}

/// Bytes of new trees held before they are written in a transaction of their own (a few
/// hundred in unit tests, so that they write several batches).
const TREE_BATCH_BYTES: usize = if cfg!(test) { 300 } else { 4 << 20 };

/// The trees a scan builds, looked up as they are made: those the repository lacks are held,
/// and written in batches (a tree no snapshot names yet is harmless: `gc`, which runs alone,
/// drops it).
struct NewTrees<'r> {
    repo: &'r Repository,
    stored: crate::repo::Trees<'r>,
    /// Trees to write, encoded, with their ids; and their bytes.
    pending: Vec<(TreeId, Vec<u8>)>,
    held: usize,
}

impl<'r> NewTrees<'r> {
    fn new(repo: &'r Repository) -> Result<Self> {
        Ok(NewTrees {
            repo,
            stored: repo.trees()?,
            pending: Vec::new(),
            held: 0,
        })
    }

    fn put(&mut self, tree: &Tree) -> Result<TreeId> {
        let bytes = tree.encode();
        let id = TreeId::of_encoded(&bytes);
        if !self.stored.has(&id)? {
            self.held += bytes.len();
            self.pending.push((id, bytes));
            if self.held >= TREE_BATCH_BYTES {
                let mut writer = self.repo.writer()?;
                writer.put_encoded_trees(&self.pending)?;
                writer.commit()?;
                self.pending.clear();
                self.held = 0;
            }
        }
        Ok(id)
    }
}

/// Builds trees bottom-up from entries met depth first.
#[derive(Default)]
struct TreeBuilder {
    /// Open directories: path, stat, entries so far. The root is at the bottom.
    stack: Vec<(Vec<u8>, Option<EntryStat>, Vec<TreeEntry>)>,
    /// Entry lists of closed directories, emptied, for the next ones to fill: this runs
    /// beside another scan, and a list that grows anew for each directory costs both of
    /// them the allocator's lock.
    spare: Vec<Vec<TreeEntry>>,
}

impl TreeBuilder {
    fn add(
        &mut self,
        trees: &mut NewTrees<'_>,
        path: &[u8],
        stat: &EntryStat,
        node: Option<Node>,
    ) -> Result<()> {
        if self.stack.is_empty() {
            self.stack.push((Vec::new(), None, Vec::new()));
        }
        let parent = crate::relpath::parent(path);
        while self.stack.len() > 1
            && self
                .stack
                .last()
                .is_some_and(|(p, _, _)| p.as_slice() != parent)
        {
            self.close(trees)?;
        }
        let name = crate::relpath::name(path).to_vec();
        match node {
            Some(node) => {
                if let Some(top) = self.stack.last_mut() {
                    top.2.push(TreeEntry { name, node });
                }
            }
            None => {
                let entries = self.spare.pop().unwrap_or_default();
                self.stack
                    .push((path.to_vec(), Some(stat.clone()), entries));
            }
        }
        Ok(())
    }

    fn close(&mut self, trees: &mut NewTrees<'_>) -> Result<()> {
        let Some((path, stat, entries)) = self.stack.pop() else {
            return Ok(());
        };
        let built = Tree { entries };
        let tree = trees.put(&built)?;
        let mut emptied = built.entries;
        emptied.clear();
        self.spare.push(emptied);
        if let (Some(stat), Some(parent)) = (stat, self.stack.last_mut()) {
            parent.2.push(TreeEntry {
                name: crate::relpath::name(&path).to_vec(),
                node: Node::Dir {
                    mtime_ns: stat.mtime_ns,
                    mode: stat.mode,
                    tree,
                },
            });
        }
        Ok(())
    }

    fn finish(mut self, trees: &mut NewTrees<'_>) -> Result<TreeId> {
        while self.stack.len() > 1 {
            self.close(trees)?;
        }
        let entries = self.stack.pop().map(|s| s.2).unwrap_or_default();
        trees.put(&Tree { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{chunk_file, keeps_history, FastCdc};
    use crate::origin::{OpenOptions, OriginSpec};
    use crate::report::NullSink;

    fn copy_fixtures(to: &std::path::Path) {
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio");
        for entry in walkdir::WalkDir::new(&from) {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(&from).unwrap();
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(to.join(rel)).unwrap();
            } else {
                std::fs::copy(entry.path(), to.join(rel)).unwrap();
            }
        }
    }

    #[test]
    fn a_keyless_file_modified_within_the_window_is_read_again_by_the_next_scan() {
        let now = 1_000 * 1_000_000_000;
        let stat = |mtime_ns, change| EntryStat {
            kind: EntryKind::File,
            size: 10,
            mtime_ns,
            change,
            mode: 0o644,
        };
        let posix = ChangeKey::Posix {
            dev: 1,
            ino: 2,
            ctime_ns: now,
        };
        // Keyless: racy within the window, and ahead of our clock (a remote clock ahead).
        assert!(racy(&stat(now, ChangeKey::None), now));
        assert!(racy(&stat(now - RACY_WINDOW_NS + 1, ChangeKey::None), now));
        assert!(racy(&stat(now + 3_600_000_000_000, ChangeKey::None), now));
        assert!(!racy(&stat(now - RACY_WINDOW_NS, ChangeKey::None), now));
        // A change key sees every write: never racy.
        assert!(!racy(&stat(now, posix.clone()), now));

        // A racy entry never matches the file it was read from; an old one does.
        let content = ContentId::of_encoded(b"list");
        let fresh = stat(now_ns(), ChangeKey::None);
        assert!(!unchanged(&scan_entry(&fresh, content), &fresh));
        let old = stat(now_ns() - 2 * RACY_WINDOW_NS, ChangeKey::None);
        assert!(unchanged(&scan_entry(&old, content), &old));
        let keyed = stat(now_ns(), posix);
        assert!(unchanged(&scan_entry(&keyed, content), &keyed));
    }

    /// Every history chunk of every file in `origin`'s latest snapshot, by file.
    fn history_of(root: &std::path::Path) -> Vec<(String, ChunkId)> {
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(root) {
            let entry = entry.unwrap();
            if !entry.file_type().is_file() {
                continue;
            }
            let mut file = std::fs::File::open(entry.path()).unwrap();
            let len = file.metadata().unwrap().len();
            let chunked = chunk_file(&mut file, len, &FastCdc::default()).unwrap();
            for (offset, chunk) in chunked.list.with_offsets() {
                let region = chunked
                    .list
                    .regions
                    .iter()
                    .find(|r| r.offset <= offset && offset < r.offset + r.len)
                    .unwrap();
                if keeps_history(chunked.list.format, region.kind) {
                    out.push((entry.path().display().to_string(), chunk.id));
                }
            }
        }
        out
    }

    #[test]
    fn an_unchanged_rescan_keeps_the_history_a_format_2_repository_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        copy_fixtures(&lib);
        let repo = Repository::init(&dir.path().join("repo")).unwrap().0;
        let origin = OriginSpec::directory(&lib)
            .open(&OpenOptions::default())
            .unwrap();
        let chunker = FastCdc::default();
        scan(
            &repo,
            origin.as_ref(),
            &chunker,
            ScanOptions::default(),
            &NullSink,
        )
        .unwrap();
        let want = history_of(&lib);
        assert!(want.len() >= 20, "{want:?}");
        for (file, id) in &want {
            assert!(
                repo.kept_chunk(id).unwrap().is_some(),
                "{file}: {}",
                id.short()
            );
        }

        repo.forget_history();
        assert!(repo.kept_chunk(&want[0].1).unwrap().is_none());
        let summary = scan(
            &repo,
            origin.as_ref(),
            &chunker,
            ScanOptions::default(),
            &NullSink,
        )
        .unwrap();
        assert_eq!(
            summary.files_read, 0,
            "nothing changed, nothing is read whole"
        );
        for (file, id) in &want {
            let bytes = repo.kept_chunk(id).unwrap();
            assert!(bytes.is_some(), "{file}: {} not kept", id.short());
        }
        let (kept, _, _) = repo.history_usage().unwrap();
        assert_eq!(kept as usize, {
            let mut ids: Vec<_> = want.iter().map(|(_, id)| *id).collect();
            ids.sort_by_key(|id| *id.as_bytes());
            ids.dedup();
            ids.len()
        });
        // Once kept, a rescan reads nothing back.
        let packs = || {
            repo.objects()
                .list(crate::repo::ObjectKind::Pack)
                .unwrap()
                .len()
        };
        // The rescan's pack holds the chunks of the first scan's, in the order they arrived:
        // the same bytes when that order was the same, and then the same object.
        let before = packs();
        assert!(before >= 1);
        scan(
            &repo,
            origin.as_ref(),
            &chunker,
            ScanOptions::default(),
            &NullSink,
        )
        .unwrap();
        assert_eq!(packs(), before);
    }

    #[test]
    fn read_groups_cover_every_job_once_in_order_within_their_limits() {
        let stat = |size| EntryStat {
            kind: EntryKind::File,
            size,
            mtime_ns: 0,
            change: ChangeKey::None,
            mode: 0o644,
        };
        let mut walked = Walk::default();
        // Small files, then large ones, then small again.
        for n in 0..1000u64 {
            let size = if (300..320).contains(&n) {
                3 << 20
            } else {
                8 << 10
            };
            walked.push(format!("f{n:04}").as_bytes(), stat(size), None);
        }
        for (files, readers) in [(1000, 2), (1000, 8), (20, 8), (1, 2), (0, 2), (100, 1)] {
            let jobs: Vec<Job> = (0..files).map(Job::Read).collect();
            let groups = read_groups(&jobs, &walked, readers);
            let mut next = 0;
            for group in &groups {
                assert_eq!(group.start, next, "{files} files, {readers} readers");
                assert!(!group.is_empty() && group.len() <= GROUP_FILES);
                let bytes: u64 = jobs[group.clone()]
                    .iter()
                    .map(|job| match *job {
                        Job::Read(i) | Job::History(i, _) => walked.at(i).stat.size,
                    })
                    .sum();
                // Only a group's last file may take it past the byte limit.
                let last = match jobs[group.end - 1] {
                    Job::Read(i) | Job::History(i, _) => walked.at(i).stat.size,
                };
                assert!(bytes - last < GROUP_BYTES);
                next = group.end;
            }
            assert_eq!(next, files);
            // Every reader has many groups to take, however few the files.
            assert!(
                groups.len() >= (files / GROUP_FILES).min(files),
                "{groups:?}"
            );
            if files <= 8 * readers {
                assert_eq!(groups.len(), files, "one file per group on a short list");
            }
        }
    }

    /// A scan of `lib` into a repository of its own: the root any scan of that tree gives.
    fn fresh_root(lib: &std::path::Path) -> TreeId {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("repo")).unwrap().0;
        let origin = OriginSpec::directory(lib)
            .open(&OpenOptions::default())
            .unwrap();
        scan(
            &repo,
            origin.as_ref(),
            &FastCdc::default(),
            ScanOptions::default(),
            &NullSink,
        )
        .unwrap()
        .root
    }

    #[test]
    fn a_rescan_merges_its_walk_with_the_last_state_moves_reads_and_removals_alike() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        for album in 0..6 {
            let at = lib.join(format!("Artist/Album {album}"));
            std::fs::create_dir_all(&at).unwrap();
            for track in 0..5 {
                std::fs::write(
                    at.join(format!("{track:02} Track.flac")),
                    format!("album {album} track {track}").repeat(50 + track),
                )
                .unwrap();
            }
        }
        // Names that sort differently by bytes than depth first: "Album 1/..." before
        // "Album 1.5", which a walk meets after the directory's entries.
        std::fs::write(lib.join("Artist/Album 1.5"), b"loose").unwrap();
        std::os::unix::fs::symlink("Album 1.5", lib.join("Artist/link")).unwrap();
        let repo = Repository::init(&dir.path().join("repo")).unwrap().0;
        let origin = OriginSpec::directory(&lib)
            .open(&OpenOptions::default())
            .unwrap();
        let chunker = FastCdc::default();
        let rescan = || {
            scan(
                &repo,
                origin.as_ref(),
                &chunker,
                ScanOptions::default(),
                &NullSink,
            )
            .unwrap()
        };
        let first = rescan();
        assert_eq!((first.files, first.files_read), (31, 31));
        assert_eq!(first.root, fresh_root(&lib));

        let unchanged = rescan();
        assert_eq!(unchanged.files_read, 0, "nothing changed, nothing is read");
        assert_eq!(
            unchanged.snapshot, first.snapshot,
            "the same snapshot stands"
        );

        // A move across directories, a removal, an edit and a new file.
        std::fs::rename(
            lib.join("Artist/Album 0/00 Track.flac"),
            lib.join("Artist/Album 5/10 Moved.flac"),
        )
        .unwrap();
        std::fs::remove_file(lib.join("Artist/Album 2/01 Track.flac")).unwrap();
        std::fs::write(lib.join("Artist/Album 3/02 Track.flac"), b"edited").unwrap();
        std::fs::write(lib.join("Artist/Album 4/05 New.flac"), b"new").unwrap();
        let changed = rescan();
        assert_eq!(changed.files, 31);
        assert_eq!(changed.files_moved, 1);
        assert_eq!(changed.files_read, 2, "the edit and the new file");
        assert_eq!(changed.root, fresh_root(&lib));
        let state = repo.scan_state(changed.origin_id).unwrap();
        assert_eq!(state.len(), 31);
        assert!(state
            .iter()
            .any(|(path, _)| path == b"Artist/Album 5/10 Moved.flac"));
        assert!(!state
            .iter()
            .any(|(path, _)| path == b"Artist/Album 0/00 Track.flac"
                || path == b"Artist/Album 2/01 Track.flac"));

        let again = rescan();
        assert_eq!((again.files_read, again.files_moved), (0, 0));
        assert_eq!(again.snapshot, changed.snapshot);
    }
}
