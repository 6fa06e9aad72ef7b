//! Making a destination an exact copy of a source, moving only the chunks it lacks.
//!
//! Order of work: take the destination's lock (in the repository, never in the destination),
//! scan both sides incrementally, plan from the two trees, then apply. Every file is written
//! under a temporary name in its target directory, each chunk re-hashed before its bytes land,
//! then fsynced, given its mode and mtime, and renamed into place: a file under its final name
//! is always either the old or the new one. Chunks come from the destination itself when it
//! has them (moved and duplicated files), else from the source; for a destination that is not
//! a directory of this machine (an object store), from a source this process reads first. The source is an origin
//! scanned here ([`LocalSource`]), a remote agent's, or a recorded snapshot ([`restore`]).

mod cold;
mod commit;
pub mod plan;
pub mod restore;
mod reuse;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc;

use serde::Serialize;

use crate::chunk::{AssembleError, Assembler, Chunker, VerifiedChunk};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{ChunkId, ContentId, TreeId};
use crate::locate::{Hint, LastOpen, Locator, Site};
use crate::origin::{ChangeKey, EntryKind, EntryStat, Origin, TempFile, WalkItem, WritableOrigin};
use crate::repo::{OriginId, Repository};
use crate::report::{display_path, Event, Fault, Side, Sink};
use crate::scan::{scan, scan_entry, CopySink, ScanOptions};
use crate::snapshot::{ChunkList, ChunkRef};
use cold::sent_key;
use plan::{PlanOptions, Step, SyncPlan};

pub use cold::is_cold;

/// How to sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct SyncOptions {
    /// Remove destination entries absent from the source.
    pub delete: bool,
    /// Plan and count, write nothing.
    pub dry_run: bool,
    /// Read every source file, whatever its metadata says.
    pub checksum: bool,
    /// Delete nothing when the deletions would remove more files than this.
    pub max_delete: Option<u64>,
}

/// What a sync did (or, dry, would do).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize)]
pub struct SyncSummary {
    /// Regular files in the source.
    pub files_total: u64,
    /// Files written or whose metadata changed.
    pub files_changed: u64,
    /// Bytes of the source's files.
    pub bytes_total: u64,
    /// Bytes of chunks read from the source because the destination lacked them.
    pub bytes_transferred: u64,
    /// Number of such chunks.
    pub chunks_transferred: u64,
    /// Bytes copied from chunks the destination already held.
    pub bytes_reused: u64,
    /// Entries removed from the destination.
    pub files_deleted: u64,
    /// Steps that failed; the rest was done.
    pub errors: u64,
    /// Nothing was written.
    pub dry_run: bool,
}

/// The source side of a sync as the destination sees it: a snapshot to plan from and the
/// chunks the destination lacks.
pub trait SyncSource: ChunkSource {
    /// Makes the source's snapshot available in `repo` (by scanning it, or by fetching its
    /// trees from a remote end) and describes it.
    ///
    /// Contract: called once per sync, before any [`ChunkSource::read_chunk`]. When it
    /// returns, the root tree and every tree and chunk list below it are in `repo`, so planning
    /// needs nothing more from the source. It never writes to the source's files. Paths it
    /// could not read are listed in [`SourceState::unreadable`], not errors; an error means no
    /// usable snapshot: a transport failure ([`crate::error::ErrorKind::Transient`], which the
    /// caller may retry whole: what was stored stays stored, so a retry resumes), a held lock
    /// ([`crate::error::ErrorKind::Locked`]), an interrupt, or a repository failure.
    fn snapshot(
        &mut self,
        repo: &Repository,
        chunker: &dyn Chunker,
        sink: &dyn Sink,
    ) -> Result<SourceState>;

    /// [`SyncSource::snapshot`], and, for a source whose files this process reads, each file
    /// read copied to `copy` as it is read (a cold initial sync's destination). The default
    /// copies nothing: `snapshot` alone.
    fn snapshot_copying(
        &mut self,
        repo: &Repository,
        chunker: &dyn Chunker,
        sink: &dyn Sink,
        copy: &dyn CopySink,
    ) -> Result<SourceState> {
        let _ = copy;
        self.snapshot(repo, chunker, sink)
    }

    /// The source's root as messages name it (`/music`, `nas:/music`), to which a relative
    /// path is joined with `/` to name a file of the source in a problem; `None` (the
    /// default) names such files by their relative path.
    fn shown_root(&self) -> Option<String> {
        None
    }
}

/// Where a sync reads the chunks the destination lacks.
pub trait ChunkSource {
    /// Whether [`ChunkSource::expect`] helps (a remote source requests chunks ahead). Constant
    /// for a source; the default is `false`.
    fn prefetches(&self) -> bool {
        false
    }
    /// The chunks the sync will ask for, in the order it will ask, each once; called at most
    /// once, before the first [`ChunkSource::read_chunk`], and only when
    /// [`ChunkSource::prefetches`]. A hint: the caller may ask for fewer (a step that failed)
    /// and the source must still answer asks in any order. Errors as `read_chunk`'s. The
    /// default does nothing.
    fn expect(&mut self, _chunks: &[ChunkRef]) -> Result<()> {
        Ok(())
    }
    /// The bytes of `chunk`, proven against its id (a [`VerifiedChunk`], in either form: the
    /// caller turns it canonical where it needs to). `path` and `offset` say where the file
    /// being built holds the chunk: the source's tree has it there most likely (`path` empty:
    /// no such hint).
    ///
    /// Contract: `Ok(None)` only when this source truly cannot give the chunk (no place holds
    /// those bytes, or the other end said it has none); the caller may then look elsewhere or
    /// report [`Error::ChunkUnavailable`]. A transport failure that the origin's own retries
    /// did not overcome is an error ([`crate::error::ErrorKind::Transient`]), never `None`,
    /// and so is a repository failure or a peer that breaks the protocol (sending bytes that
    /// are not the chunk is one). Reading changes nothing at the source; asking again for the
    /// same chunk is allowed and gives the same bytes or `None`.
    fn read_chunk(
        &mut self,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>>;
}

/// What the source's snapshot holds.
#[derive(Clone, Debug)]
pub struct SourceState {
    /// Its root tree, stored in the repository with every tree and chunk list below it.
    pub root: TreeId,
    /// Regular files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Paths that could not be read: their destination counterparts are left alone.
    pub unreadable: Vec<Vec<u8>>,
    /// The root directory's mode and mtime, copied as `rsync -a` does.
    pub root_meta: Option<(u32, i64)>,
}

/// A source origin this process reads itself.
pub struct LocalSource<'a> {
    repo: &'a Repository,
    origin: &'a dyn Origin,
    checksum: bool,
    origin_id: Option<OriginId>,
    open: LastOpen,
}

impl<'a> LocalSource<'a> {
    /// `origin`, scanned incrementally (every file read when `checksum`).
    pub fn new(repo: &'a Repository, origin: &'a dyn Origin, checksum: bool) -> Self {
        LocalSource {
            repo,
            origin,
            checksum,
            origin_id: None,
            open: LastOpen::default(),
        }
    }

    /// `origin` as `repo` last scanned it, to read chunks from without scanning it again
    /// (what a push into a chunk store reads, `store::LibraryChunks`).
    pub fn scanned(repo: &'a Repository, origin: &'a dyn Origin) -> Result<Self> {
        Ok(LocalSource {
            origin_id: repo.find_origin(origin.url())?,
            ..LocalSource::new(repo, origin, false)
        })
    }
}

impl LocalSource<'_> {
    fn scan(
        &mut self,
        repo: &Repository,
        chunker: &dyn Chunker,
        sink: &dyn Sink,
        copy: Option<&dyn CopySink>,
    ) -> Result<SourceState> {
        let options = ScanOptions {
            checksum: self.checksum,
            copy,
            // A cold sync scans its source alone, after the destination's scan, and merges
            // the rows it staged while it plans (`sync_within`).
            alone: copy.is_some(),
            leave_staged: copy.is_some(),
        };
        let scanned = scan(repo, self.origin, chunker, options, sink)?;
        self.origin_id = Some(scanned.origin_id);
        Ok(SourceState {
            root: scanned.root,
            files: scanned.files,
            bytes: scanned.bytes,
            unreadable: scanned.unreadable,
            root_meta: self.origin.stat(b"")?.map(|s| (s.mode, s.mtime_ns)),
        })
    }
}

impl SyncSource for LocalSource<'_> {
    fn snapshot(
        &mut self,
        repo: &Repository,
        chunker: &dyn Chunker,
        sink: &dyn Sink,
    ) -> Result<SourceState> {
        self.scan(repo, chunker, sink, None)
    }

    fn snapshot_copying(
        &mut self,
        repo: &Repository,
        chunker: &dyn Chunker,
        sink: &dyn Sink,
        copy: &dyn CopySink,
    ) -> Result<SourceState> {
        // Only a source on this machine is copied while read. A source over a network is
        // synced inside a retry loop that counts each failed attempt's steps in the run's
        // summary, and a copy committed during a scan that then broke would be a file changed
        // that no step reports.
        let copy = self.origin.local_root().map(|_| copy);
        self.scan(repo, chunker, sink, copy)
    }

    fn shown_root(&self) -> Option<String> {
        Some(self.origin.display(b"").to_string_lossy().into_owned())
    }
}

impl ChunkSource for LocalSource<'_> {
    /// The same path and offset in the source first, then every location the repository
    /// records for the chunk in the source (`locate`).
    fn read_chunk(
        &mut self,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        let locator = Locator::new(
            self.repo,
            vec![Site::given(self.origin, self.origin_id)],
            false,
        );
        let hint = Hint {
            site: 0,
            path,
            offset,
        };
        locator.find(&mut self.open, Some(hint), chunk)
    }
}

/// Syncs `source` into `destination`, both read by this process.
pub fn sync(
    repo: &Repository,
    source: &dyn Origin,
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    if let (Some(src), Some(dst)) = (source.local_root(), destination.local_root()) {
        if dst.starts_with(src) || src.starts_with(dst) {
            return Err(Error::InvalidInput(format!(
                "{} and {} overlap: the destination must not be inside the source or the other way round",
                src.display(),
                dst.display()
            )));
        }
    }
    let mut source = LocalSource::new(repo, source, options.checksum);
    sync_from(repo, &mut source, destination, chunker, options, sink)
}

/// Syncs whatever `source` describes into `destination`: scans the destination while the
/// source produces its snapshot, plans, and applies.
pub fn sync_from(
    repo: &Repository,
    source: &mut dyn SyncSource,
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    std::thread::scope(|scope| {
        sync_within(scope, repo, source, destination, chunker, options, sink)
    })
}

/// [`sync_from`], whose threads live in `scope`: a cold sync merges the location rows its
/// source's scan staged on a thread of its own while the destination's rescan walks it (the
/// merge is a quarter of a cold sync's last seconds; run as the scan ended, it held the
/// repository's one writer while the copies' records waited for it).
fn sync_within<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    repo: &'env Repository,
    source: &mut dyn SyncSource,
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    // Two locks: the repository's, and one on the destination itself (where the transport
    // has one), so that syncs using different repositories exclude each other too. A
    // destination that does not exist yet is created by the check that it can be written,
    // and locked at once, before anything is read from the source.
    let _repo_lock = if options.dry_run {
        None
    } else {
        Some(repo.lock_destination(destination.url())?)
    };
    let dst_exists = destination.stat(b"")?.is_some();
    let mut dst_lock = if dst_exists && !options.dry_run {
        Some(destination.lock()?)
    } else {
        None
    };
    // After the lock: a destination another sync holds is left untouched. A destination the
    // check created is locked at once.
    if !options.dry_run {
        check_writable(destination, dst_exists)?;
        if dst_lock.is_none() {
            dst_lock = Some(destination.lock()?);
        }
    }
    let dst_shown = shown_root(destination);
    let src_sink = Sided {
        inner: sink,
        side: Side::Src,
        root: source.shown_root(),
    };
    let dst_sink = Sided {
        inner: sink,
        side: Side::Dst,
        root: Some(dst_shown.clone()),
    };
    // A cold initial sync (a destination of this machine that holds nothing yet) copies each
    // source file as the scan reads it (`cold`): the destination, empty, is scanned first, so
    // that its scan never sees those copies arrive.
    let cold = !options.dry_run
        && destination.local_root().is_some()
        && (!dst_exists || cold::is_empty(destination));
    let mut copies = cold::ColdCopies::default();
    // A cold sync's source scan leaves its location rows staged (`ScanOptions::leave_staged`,
    // set by the source): they are merged on a thread of their own beside the destination's
    // rescan, below. Merged as the scan ended, they held the repository's one writer while the
    // copies were recorded, which waited for them. A lookup before then merges them first, as
    // any lookup does.
    let (src_state, dst_scan) = if cold {
        let dst_scan = match dst_exists {
            true => scan(
                repo,
                destination,
                chunker,
                ScanOptions::default(),
                &dst_sink,
            )
            .map(Some),
            false => Ok(None),
        };
        let src_state = match &dst_scan {
            Ok(_) => cold::ColdCopy::start(destination).and_then(|copy| {
                let state = source.snapshot_copying(repo, chunker, &src_sink, &copy);
                copies = copy.finish();
                state
            }),
            // Reported below, as in any sync.
            Err(_) => source.snapshot(repo, chunker, &src_sink),
        };
        (src_state, dst_scan)
    } else {
        std::thread::scope(|s| {
            let dst = s.spawn(|| {
                if dst_exists {
                    scan(
                        repo,
                        destination,
                        chunker,
                        ScanOptions::default(),
                        &dst_sink,
                    )
                    .map(Some)
                } else {
                    Ok(None)
                }
            });
            let src = source.snapshot(repo, chunker, &src_sink);
            (
                src,
                dst.join().unwrap_or_else(|_| {
                    Err(Error::InvalidInput("destination scan panicked".into()))
                }),
            )
        })
    };
    let _give_back = GiveBack(destination);
    let src_state = match src_state {
        Ok(state) => state,
        Err(e) => {
            // The source gave no snapshot (unreachable, hostile, interrupted): a destination
            // this sync created for its check holds nothing (the probe was removed and no
            // other sync could enter it under the lock), and is removed again.
            // One into which the scan copied files keeps them: whole files under their
            // final names, which the next sync finds in place.
            if !dst_exists && !options.dry_run && copies.is_empty() {
                if let Err(removing) = destination.remove(b"") {
                    tracing::debug!("removing the empty destination again: {removing}");
                }
            }
            if !copies.is_empty() && !matches!(e, Error::Interrupted { .. }) {
                report_copies(destination, sink);
            }
            return Err(e);
        }
    };
    let mut dst_scan = dst_scan?;
    // A destination directory this process cannot read (a copy of a 0000 or 0300 directory)
    // is opened up, when it is ours, and the destination scanned again: it cannot be synced
    // blind.
    if let Some(scanned) = dst_scan.as_ref().filter(|d| !d.unreadable.is_empty()) {
        if !options.dry_run {
            for path in &scanned.unreadable {
                destination.open_up(path)?;
            }
            dst_scan = Some(scan(
                repo,
                destination,
                chunker,
                ScanOptions::default(),
                &dst_sink,
            )?);
        }
    }
    let dst_origin = match &dst_scan {
        Some(d) => d.origin_id,
        None => repo.origin_id(destination.url())?,
    };
    let mut summary = SyncSummary {
        // Source entries that could not be read were reported by the scan; their destination
        // counterparts are left alone, and the sync is partial.
        errors: src_state.unreadable.len() as u64,
        files_total: src_state.files,
        bytes_total: src_state.bytes,
        dry_run: options.dry_run,
        ..SyncSummary::default()
    };
    let dst_root = dst_scan.as_ref().map(|d| d.root);
    // As rsync does after an I/O error on the sending side, a source that could not be read
    // in full deletes nothing: what it failed to list is not known to be gone.
    let delete = options.delete && src_state.unreadable.is_empty();
    if options.delete && !delete {
        summary.errors += 1;
        sink.event(&Event::Problem {
            path: String::new(),
            fault: Some(Fault {
                side: Side::Dst,
                shown: dst_shown.clone(),
            }),
            message: format!(
                "deletions skipped: {} source {} could not be read",
                src_state.unreadable.len(),
                if src_state.unreadable.len() == 1 {
                    "entry"
                } else {
                    "entries"
                }
            ),
        });
    }
    // A destination without directories of its own (key prefixes) keeps no mode or mtime
    // for them: its directories' metadata never matches the source's and setting it stores
    // nothing, so it is not planned (else every sync would have steps, and rescan the
    // destination after them).
    let keeps_directories = destination.capabilities().directories;
    let plan_with = |delete| {
        // The files the source's scan copied into place (a cold sync) have no step: they
        // are noted from the source's tree (`Apply::note_copies`).
        let mut plan = plan::plan_around(
            repo,
            src_state.root,
            dst_root,
            &PlanOptions {
                delete,
                unreadable: &src_state.unreadable,
                excluded: dst_scan.as_ref().map_or(&[][..], |d| &d.excluded[..]),
                mtime_resolution: destination.capabilities().mtime_resolution,
            },
            &|wanted| copies.holds(wanted),
        )?;
        if !keeps_directories {
            plan.directory_meta.clear();
        }
        Ok::<_, Error>(plan)
    };
    let mut plan = plan_with(delete)?;
    // As rsync's "cannot delete non-empty directory": the source's file is not written there.
    for path in &plan.kept_for_excluded {
        summary.errors += 1;
        sink.event(&Event::Problem {
            path: display_path(path),
            fault: Some(Fault {
                side: Side::Dst,
                shown: shown(destination, path),
            }),
            message: "not replaced: the directory holds entries the filters exclude (--delete-excluded deletes them)".into(),
        });
    }
    plan::free_space_first(repo, &mut plan, dst_origin)?;
    if let Some(max) = options.max_delete {
        let count = plan.files_deleted();
        if count > max {
            summary.errors += 1;
            sink.event(&Event::Problem {
                path: String::new(),
                fault: Some(Fault {
                    side: Side::Dst,
                    shown: dst_shown.clone(),
                }),
                message: format!(
                    "deletions skipped: they would remove {count} files, more than --max-delete {max}"
                ),
            });
            plan = plan_with(false)?;
        }
    }
    if options.dry_run {
        let cost = plan::cost(repo, &plan, dst_origin)?;
        summary.bytes_transferred = cost.bytes_transferred;
        summary.chunks_transferred = cost.chunks_transferred;
        for step in plan.steps() {
            count_step(step, &mut summary);
            emit_step(sink, step, 0);
        }
        return Ok(summary);
    }
    destination.create_root()?;
    let _dst_lock = match dst_lock {
        Some(held) => held,
        None => destination.lock()?,
    };
    if let Some(d) = &dst_scan {
        for temp in &d.temporaries {
            destination.remove(temp)?;
        }
    }
    // The chunks the destination holds nowhere yet: a source that prefetches is told them;
    // one this process reads gives them itself, even when this run has already written a
    // copy (an album's cover in each track): its file is open at that very offset, where
    // the copy is a lookup and another file to open.
    // The list itself is not kept: the source that prefetches holds what it was told, and the
    // set made here is all `Apply` asks; kept, it would stay beside them to the end of the sync.
    let new_chunks = {
        let missing = missing_chunks(repo, &plan, dst_origin)?;
        if source.prefetches() {
            source.expect(&missing)?;
            HashSet::new()
        } else {
            missing.iter().map(|c| c.id).collect()
        }
    };
    let mut apply = Apply {
        repo,
        contents: repo.contents()?,
        source,
        destination,
        dst_origin,
        received: HashMap::new(),
        new_chunks,
        // The chunks the scan's copies took, counted as each copy was put in place.
        sent: copies.take_sent(),
        // Into a directory of this machine, each commit waits for its flush: several at once.
        committer: match destination.local_root() {
            Some(_) => Some(
                commit::Committer::start(commit::THREADS)
                    .map_err(|e| Error::io(destination.display(b""), e))?,
            ),
            _ => None,
        },
        committing: HashSet::new(),
        open: LastOpen::default(),
        summary,
        sink,
        recorded: Vec::new(),
        recorder: None,
        last_record: std::time::Instant::now(),
        dirty_dirs: Default::default(),
        src_root: src_sink.root.clone(),
        source_failed: false,
        copies,
    };
    let mut to_write = (plan.in_place, plan.in_place_bytes);
    for step in &plan.files {
        if let Step::Write { size, .. } = step {
            to_write.0 += 1;
            to_write.1 += size;
        }
    }
    sink.phase("writing", to_write.0, to_write.1);
    apply.run(&plan, (src_state.root, &src_state.unreadable))?;
    // What the writing held (its read transaction, the chunks it noted, its committer's
    // threads) is let go here, and the plan before the rescan: the rescan's walk would
    // otherwise come on top of both. `Apply` is dropped whole: a field moved out of it would
    // leave the others alive to the end of this function.
    let mut summary = apply.finish();
    let changed = !plan_is_empty(&plan) || plan.in_place > 0;
    drop(plan);
    // The roots' own mode and mtime are not part of the trees; copy them as `rsync -a` does,
    // unless the source's root could not be listed (its mode is then no truth to copy) or the
    // destination keeps no directory metadata (asking for its root's would list it whole).
    let root_meta = src_state
        .root_meta
        .filter(|_| keeps_directories)
        .filter(|_| !src_state.unreadable.iter().any(|u| u.is_empty()));
    if let (Some((mode, mtime_ns)), Some(d)) = (root_meta, destination.stat(b"")?) {
        let resolution = destination.capabilities().mtime_resolution;
        if mode != d.mode || !resolution.same(mtime_ns, d.mtime_ns) {
            match destination.set_meta(b"", mode, mtime_ns) {
                // A root this user may write into but does not own (a shared 0777
                // directory) keeps its own mode and mtime: every file was written, so this is
                // one problem at DST, as rsync's "failed to set times", not a failed sync.
                Err(e @ Error::Io { .. }) if e.kind() == ErrorKind::Permanent => {
                    summary.errors += 1;
                    sink.event(&Event::Problem {
                        path: String::new(),
                        message: format!(
                            "its mode and mtime were not set: {}",
                            reason_for_error(&dst_shown, &e)
                        ),
                        fault: Some(Fault {
                            side: Side::Dst,
                            shown: dst_shown.clone(),
                        }),
                    });
                }
                other => other?,
            }
        }
    }
    destination.give_back()?;
    // The rescan walks the destination (no writer needed) while the source's staged rows are
    // merged; the writer it needs, and its lookups, wait for this merge.
    let merging = cold.then(|| scope.spawn(|| repo.merge_staged_locations()));
    crate::failpoint::hit("final-scan");
    let rescanned = match changed {
        // Record the destination as it now is; written files were recorded with their stat,
        // so this reads nothing.
        true => scan(
            repo,
            destination,
            chunker,
            ScanOptions::default(),
            &dst_sink,
        )
        .map(drop),
        false => Ok(()),
    };
    if let Some(merging) = merging {
        merging
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    }
    rescanned?;
    // The rows this sync staged (the destination's record, the chunk lists it received) are
    // in their tables when it ends; the merge beside the rescan, or the rescan, has merged
    // them when it ran.
    repo.merge_staged_locations()?;
    Ok(summary)
}

/// Reports as written the files a cold sync's scan copied into `destination` before its
/// source failed: the destination held nothing before, so every file in it now is one this run
/// wrote, and a run that goes on (a retried remote sync, whose next attempt finds them in place
/// and plans nothing for them) counts them among its changes. Each is reported with its size
/// as the bytes it brought.
fn report_copies(destination: &dyn WritableOrigin, sink: &dyn Sink) {
    destination.walk(&mut |item| {
        if let WalkItem::Entry { path, stat, .. } = item {
            if stat.kind == EntryKind::File {
                sink.event(&Event::Action {
                    action: "write",
                    path: display_path(&path),
                    bytes_transferred: stat.size,
                });
            }
        }
    });
}

/// Gives the destination's directories back the modes they had before the sync opened them up
/// for itself, however the sync ends.
struct GiveBack<'a>(&'a dyn WritableOrigin);

impl Drop for GiveBack<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.give_back() {
            tracing::warn!("{e}");
        }
    }
}

/// A write whose commit runs on a committer thread: its step, and the bytes it moved.
struct Pending {
    step: Step,
    list: ChunkList,
    bytes: u64,
}

/// The name a probe of the destination's writability writes next to: never created itself
/// (`create_temp` writes a temporary file beside it, which the probe removes).
const PROBE: &[u8] = b"musicfs-write-check";

/// Fails at once, with one line naming DST and what to do, when the destination cannot be
/// written: its root, when it exists, must take a new file (a temporary file, created and
/// removed through the transport, so the check means the same on every transport); when it
/// does not, it must be possible to create it. Nothing is read from the source before this
/// check, and a failure of it is not one error per file. A transient failure (a stale
/// mount, a dropped connection) stays transient, to be retried.
fn check_writable(destination: &dyn WritableOrigin, exists: bool) -> Result<()> {
    let probe = || -> Result<()> {
        if !exists {
            destination.create_root()?;
        }
        let written = destination.create_temp(PROBE).map(|temp| temp.discard());
        // A root this process owns may have been lent `u+rwx` to take the probe: its mode is
        // given back now, whatever happens before the sync's own lending begins.
        destination.give_back()?;
        written
    };
    match probe() {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::Transient | ErrorKind::Locked) => Err(e),
        Err(Error::Io { source, .. }) => Err(Error::NotWritable {
            path: destination.display(b""),
            reason: writability_reason(&source, exists),
        }),
        Err(Error::Interrupted { cause }) => Err(Error::Interrupted { cause }),
        Err(e) => Err(Error::NotWritable {
            path: destination.display(b""),
            reason: e.to_string(),
        }),
    }
}

/// Why a destination cannot be written, and what to do, for [`check_writable`].
fn writability_reason(e: &std::io::Error, exists: bool) -> String {
    let what = if exists {
        "check the owner and mode of this directory, or choose a destination this user can write"
    } else {
        "it does not exist and cannot be created: check the owner and mode of its parent directory"
    };
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => format!("permission denied; {what}"),
        _ => crate::error::io_reason(e),
    }
}

/// A destination path as messages name it.
fn shown(destination: &dyn WritableOrigin, rel: &[u8]) -> String {
    destination.display(rel).to_string_lossy().into_owned()
}

/// The destination's root as messages name it.
fn shown_root(destination: &dyn WritableOrigin) -> String {
    shown(destination, b"")
}

/// `rel` under a side's `root` as messages name it: joined with `/`, the root alone for the
/// root, the relative path when the side has no root to show.
fn shown_under(root: Option<&str>, rel: &str) -> String {
    match (root, rel.is_empty()) {
        (Some(root), true) => root.to_string(),
        (Some(root), false) => format!("{}/{rel}", root.trim_end_matches('/')),
        (None, true) => ".".to_string(),
        (None, false) => rel.to_string(),
    }
}

/// `message` without a leading `shown: ` (an error that names the same file the problem
/// line names already), and without any `(os error N)`.
fn reason_for(shown: &str, message: &str) -> String {
    let reason = message
        .strip_prefix(shown)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message);
    crate::error::without_os_error(reason)
}

/// What a failed step's error says, for its problem line: as [`reason_for`], and an I/O
/// error on a temporary file (a transport that names it) reduced to its reason, since the
/// line names the real file.
fn reason_for_error(shown: &str, e: &Error) -> String {
    if let Error::Io { path, source } = e {
        let name = path.file_name().map(|n| n.as_encoded_bytes());
        if name.is_some_and(crate::origin::is_temporary) {
            return crate::error::io_reason(source);
        }
    }
    reason_for(shown, &e.to_string())
}

/// Passes events on, marking each problem with the side of the sync it is on and naming its
/// file as that side shows it: a scan reports problems without knowing it is part of a sync.
/// A problem's path becomes relative to the side's root, as JSON gives it.
struct Sided<'a> {
    inner: &'a dyn Sink,
    side: Side,
    /// The side's root as messages name it.
    root: Option<String>,
}

impl Sink for Sided<'_> {
    fn event(&self, event: &Event) {
        let Event::Problem {
            path,
            message,
            fault: None,
        } = event
        else {
            return self.inner.event(event);
        };
        let root = self.root.as_deref();
        let rel = match root {
            Some(root) if path == root => "",
            Some(root) => path
                .strip_prefix(root)
                .and_then(|rest| rest.strip_prefix('/'))
                .unwrap_or(path),
            None => path,
        };
        let shown = shown_under(root, rel);
        self.inner.event(&Event::Problem {
            path: rel.to_string(),
            message: reason_for(&shown, message),
            fault: Some(Fault {
                side: self.side,
                shown,
            }),
        });
    }

    fn phase(&self, name: &str, files: u64, bytes: u64) {
        self.inner.phase(name, files, bytes);
    }

    fn advance(&self, bytes: u64) {
        self.inner.advance(bytes);
    }

    fn files_done(&self, files: u64) {
        self.inner.files_done(files);
    }

    fn finish(&self) {
        self.inner.finish();
    }
}

/// The chunks the writes of `plan` need that the destination has nowhere, in the order
/// `Apply` will need them, each once.
fn missing_chunks(repo: &Repository, plan: &SyncPlan, dst: OriginId) -> Result<Vec<ChunkRef>> {
    let mut seen = std::collections::HashSet::new();
    let mut wanted = Vec::new();
    let lists = repo.contents()?;
    for step in &plan.files {
        if let Step::Write { content, .. } = step {
            for chunk in lists.get(content)?.chunks {
                if seen.insert(chunk.id) {
                    wanted.push(chunk);
                }
            }
        }
    }
    let ids: Vec<ChunkId> = wanted.iter().map(|c| c.id).collect();
    let located = repo.located(&ids, dst)?;
    Ok(wanted
        .into_iter()
        .zip(located)
        .filter(|(_, here)| !here)
        .map(|(chunk, _)| chunk)
        .collect())
}

fn plan_is_empty(plan: &SyncPlan) -> bool {
    plan.steps().next().is_none()
}

fn count_step(step: &Step, summary: &mut SyncSummary) {
    match step {
        Step::Remove { files, .. } => summary.files_deleted += files,
        Step::Write { .. } | Step::Rename { .. } | Step::Symlink { .. } => {
            summary.files_changed += 1
        }
        Step::SetMeta { .. } | Step::CreateDir(_) => {}
    }
}

/// The destination path a step acts on.
fn step_path(step: &Step) -> &[u8] {
    match step {
        Step::Remove { path, .. }
        | Step::CreateDir(path)
        | Step::Write { path, .. }
        | Step::SetMeta { path, .. }
        | Step::Symlink { path, .. } => path,
        Step::Rename { to, .. } => to,
    }
}

fn emit_step(sink: &dyn Sink, step: &Step, bytes: u64) {
    let action = match step {
        Step::Remove { .. } => "delete",
        Step::CreateDir(_) => "mkdir",
        Step::Write { .. } => "write",
        Step::Rename { .. } => "move",
        Step::SetMeta { .. } => "meta",
        Step::Symlink { .. } => "symlink",
    };
    sink.event(&Event::Action {
        action,
        path: display_path(step_path(step)),
        bytes_transferred: bytes,
    });
}

/// Written files are recorded in the repository in batches of at most this many, and at
/// least every [`RECORD_INTERVAL`]: each batch is a commit that waits for the disk and
/// rewrites the pages its random keys land on, and a sync stopped between two batches only
/// reads the files of the last one again. A recorded file is its path, content id and stat:
/// 8,192 of them hold about 2 MB. 8,192 rather than 1,024 took about 5 % off a cold sync of
/// 100,000 files, whose files are all recorded at its end (`docs/benchmarks.md`).
const RECORD_FILES: usize = 8192;
const RECORD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Files copied by a cold sync's scan are noted this many at a time (`Apply::note_copies`).
const COPIES_BATCH: usize = 256;

/// Destination files written, each with its content and the stat taken as it was committed:
/// a batch for [`record_files`].
type Recorded = Vec<(Vec<u8>, ContentId, EntryStat)>;

/// Records `files` of the destination `origin` in one commit (their location rows staged,
/// merged beside the rescan that ends the sync, or by the next lookup).
fn record_files(repo: &Repository, origin: OriginId, files: &Recorded) -> Result<()> {
    let mut writer = repo.writer()?;
    writer.stage_locations();
    let mut tables = writer.tables()?;
    for (path, content, stat) in files {
        let entry = scan_entry(stat, *content);
        let previous = tables.scan_entry(origin, path)?;
        tables.record_file(origin, path, entry, previous.as_ref())?;
    }
    drop(tables);
    writer.commit()?;
    for _ in files {
        crate::failpoint::hit("record");
    }
    Ok(())
}

struct Apply<'a> {
    repo: &'a Repository,
    /// The chunk lists of the files it writes, read in one transaction.
    contents: crate::repo::Contents<'a>,
    source: &'a mut dyn SyncSource,
    destination: &'a dyn WritableOrigin,
    dst_origin: OriginId,
    /// Chunks written to the destination by this run, and where.
    received: HashMap<ChunkId, (Vec<u8>, u64)>,
    /// Chunks the destination held nowhere when the run began, for a source this process
    /// reads (`prefetches` false): asked of the source first.
    new_chunks: HashSet<ChunkId>,
    /// The chunks of `new_chunks` this run has taken from the source, by [`sent_key`]. It
    /// only splits the summary's bytes between transferred and reused, so 64 bits of each id
    /// do: a quarter of the memory of whole ids, which a cold sync of 100,000 files holds
    /// beside the copies' list at its peak.
    sent: HashSet<u64>,
    /// Commits written files on threads of their own (`commit`), when there is one.
    committer: Option<commit::Committer<Pending>>,
    /// The chunks of the files under way in the committer, for a source that prefetches: a
    /// later copy of one of them is read from its file once that file is in place.
    committing: HashSet<ChunkId>,
    /// The last destination file opened for reading chunks.
    open: LastOpen,
    summary: SyncSummary,
    sink: &'a dyn Sink,
    /// Destination files written, to record in the repository, each with its stat taken just
    /// after it was committed (or, when that stat failed, the one the commit gave it).
    recorded: Recorded,
    /// When the files written were last recorded.
    last_record: std::time::Instant,
    /// While the copies of a cold sync are noted: the thread that records them, to which
    /// [`Apply::record`] hands each batch ([`Apply::note_copies`]).
    recorder: Option<mpsc::SyncSender<Recorded>>,
    /// Directories that received renamed entries and must be fsynced.
    dirty_dirs: std::collections::BTreeSet<Vec<u8>>,
    /// The source's root as messages name it.
    src_root: Option<String>,
    /// Whether the current step failed at the source (a chunk it could not give).
    source_failed: bool,
    /// Files the source's scan copied into place (a cold initial sync): their writes are done.
    copies: cold::ColdCopies,
}

impl Apply<'_> {
    /// The summary of the run, everything else it held let go.
    fn finish(self) -> SyncSummary {
        self.summary
    }

    /// Carries out `plan`. However it ends (an interrupt, a transport failure that stops the
    /// sync to be retried, a repository error), the files written so far are recorded first,
    /// so that the retry or the next run finds them unchanged by their stat and neither reads
    /// them back nor writes them again.
    fn run(&mut self, plan: &SyncPlan, source: (TreeId, &[Vec<u8>])) -> Result<()> {
        let mut result = self.run_steps(plan, source);
        // Files still being committed are waited for, and noted, however the steps ended.
        let settled = self.settle_all();
        if result.is_ok() {
            result = settled;
        }
        let repository_failed = matches!(result, Err(Error::IndexDamaged { .. }));
        if result.is_err() && !repository_failed && !self.recorded.is_empty() {
            // Best effort: the error that stopped the sync is the one to report.
            if let Err(e) = self.record() {
                tracing::debug!("recording the files written before the sync stopped: {e}");
            }
        }
        result
    }

    /// Runs the steps of `plan`, with the files of the source's tree (its root and the paths
    /// it could not read) that the plan left out as copied already.
    fn run_steps(&mut self, plan: &SyncPlan, source: (TreeId, &[Vec<u8>])) -> Result<()> {
        if plan.in_place > 0 {
            // The chunks of the copies are hints for a later write's chunks, if there is one.
            let writes_follow = plan
                .directories
                .iter()
                .chain(&plan.files)
                .any(|step| matches!(step, Step::Write { .. }));
            self.note_copies(source.0, source.1, writes_follow)?;
        }
        for step in &plan.early_deletions {
            crate::failpoint::hit("early-deletion");
            self.step(step)?;
        }
        for step in &plan.removals_first {
            self.step(step)?;
        }
        let after_shrinking = plan.directories.len() + plan.shrinking_first;
        // Room left for the temporary files of the smaller replacements under way.
        let mut room = 0;
        for (i, step) in plan.directories.iter().chain(&plan.files).enumerate() {
            // Only writes overlap: any other step waits for the files before it, and the
            // first write that may need the space the smaller replacements free waits for
            // them to be in place.
            if !matches!(step, Step::Write { .. }) || (i == after_shrinking && i > 0) {
                self.settle_all()?;
            } else if let (true, Step::Write { size, .. }) = (i < after_shrinking, step) {
                room = self.make_room(room, *size)?;
            }
            self.step(step)?;
            if self.recorded.len() >= RECORD_FILES
                || (!self.recorded.is_empty() && self.last_record.elapsed() >= RECORD_INTERVAL)
            {
                self.record()?;
            }
        }
        self.settle_all()?;
        // Make the new names durable.
        self.sync_dirs();
        self.record()?;
        for step in &plan.deletions {
            crate::failpoint::hit("deletion");
            self.step(step)?;
        }
        for step in &plan.directory_meta {
            crate::failpoint::hit("directory-meta");
            self.step(step)?;
        }
        Ok(())
    }

    /// Lets a replacement by a smaller file of `size` bytes begin, `room` being what is left
    /// for its temporary file; returns what is left after it. Each such file holds its new
    /// bytes beside the old ones until it is renamed over them, so those under way at once
    /// take no more than half the destination's free space: past that, the next waits for
    /// them to be in place (and for the space they free). A destination whose free space is
    /// unknown has them done one at a time, as rsync does.
    fn make_room(&mut self, room: u64, size: u64) -> Result<u64> {
        if self.committer.is_none() || size <= room {
            return Ok(room.saturating_sub(size));
        }
        self.settle_all()?;
        let free = self
            .destination
            .local_root()
            .and_then(|root| nix::sys::statvfs::statvfs(root).ok())
            .map_or(0, |fs| {
                fs.blocks_available().saturating_mul(fs.fragment_size())
            });
        Ok((free / 2).saturating_sub(size))
    }

    /// Fsyncs every directory that received a renamed entry, so that a power cut after the
    /// sync cannot bring back the old names. A destination without durable commit has no
    /// such fsync to offer: its server's writeback is all there is.
    fn sync_dirs(&mut self) {
        let dirs: Vec<Vec<u8>> = std::mem::take(&mut self.dirty_dirs).into_iter().collect();
        if !self.destination.capabilities().durable_commit || dirs.is_empty() {
            return;
        }
        for (dir, e) in self.destination.sync_dirs(&dirs) {
            self.summary.errors += 1;
            let shown = shown(self.destination, &dir);
            self.sink.event(&Event::Problem {
                path: display_path(&dir),
                message: reason_for_error(&shown, &e),
                fault: Some(Fault {
                    side: Side::Dst,
                    shown,
                }),
            });
        }
    }

    /// Runs one step; a failure of one file is reported and the sync goes on.
    fn step(&mut self, step: &Step) -> Result<()> {
        crate::interrupt::check()?;
        self.source_failed = false;
        let before = self.summary.bytes_transferred;
        // A step replaces or removes what is at its paths: a handle kept open on one of them
        // would read the old file's bytes.
        if !matches!(step, Step::SetMeta { .. } | Step::CreateDir(_)) {
            self.open.forget();
        }
        if let (
            Step::Write {
                path,
                content,
                mode,
                mtime_ns,
                ..
            },
            true,
        ) = (step, self.committer.is_some())
        {
            let (file, list) = match self.assemble(path, content) {
                Ok(assembled) => assembled,
                Err(e) => return self.finish_step(step, Err(e), 0),
            };
            crate::failpoint::hit("before-rename");
            if self.source.prefetches() {
                self.committing
                    .extend(list.chunks.iter().map(|chunk| chunk.id));
            }
            let pending = Pending {
                step: step.clone(),
                list,
                bytes: self.summary.bytes_transferred - before,
            };
            let ended = match self.committer.as_mut() {
                Some(committer) => committer.submit(file, *mode, *mtime_ns, pending),
                None => Vec::new(),
            };
            return self.settle(ended);
        }
        let result = match step {
            Step::Remove { path, .. } => self.destination.remove(path),
            // Made already for the files the scan copied there.
            Step::CreateDir(path) if self.copies.made_dir(path) => Ok(()),
            Step::CreateDir(path) => self.destination.create_dir(path),
            Step::Write {
                path,
                content,
                mode,
                mtime_ns,
                ..
            } => self.write(path, content, *mode, *mtime_ns),
            Step::SetMeta {
                path,
                mode,
                mtime_ns,
            } => self.destination.set_meta(path, *mode, *mtime_ns),
            Step::Symlink { path, target } => self.symlink(path, target),
            Step::Rename {
                from,
                to,
                content,
                mode,
                mtime_ns,
            } => self.rename(from, to, content, *mode, *mtime_ns),
        };
        let bytes = self.summary.bytes_transferred - before;
        self.finish_step(step, result, bytes)
    }

    /// Takes the outcomes of commits that ended: each file noted as written, or reported.
    fn settle(&mut self, ended: Vec<(Pending, Result<()>)>) -> Result<()> {
        let mut first = Ok(());
        for (pending, outcome) in ended {
            let Step::Write {
                path,
                content,
                mode,
                mtime_ns,
                ..
            } = &pending.step
            else {
                continue;
            };
            for chunk in &pending.list.chunks {
                self.committing.remove(&chunk.id);
            }
            let outcome = outcome.map(|()| {
                crate::failpoint::hit("after-rename");
                self.written(path, content, &pending.list, *mode, *mtime_ns)
            });
            self.source_failed = false;
            let finished = self.finish_step(&pending.step, outcome, pending.bytes);
            if first.is_ok() {
                first = finished;
            }
        }
        first
    }

    /// Waits for every commit under way and takes their outcomes.
    fn settle_all(&mut self) -> Result<()> {
        let ended = match self.committer.as_mut() {
            Some(committer) => committer.drain(),
            None => return Ok(()),
        };
        self.settle(ended)
    }

    /// Counts and reports a step that ended with `result`, having moved `bytes` from the
    /// source; a failure of one file is reported and the sync goes on.
    fn finish_step(&mut self, step: &Step, result: Result<()>, bytes: u64) -> Result<()> {
        match result {
            Ok(()) => {
                if matches!(
                    step,
                    Step::Write { .. } | Step::Rename { .. } | Step::Symlink { .. }
                ) {
                    let path = step_path(step);
                    let parent = path.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    self.dirty_dirs.insert(path[..parent].to_vec());
                }
                count_step(step, &mut self.summary);
                emit_step(self.sink, step, bytes);
                Ok(())
            }
            // The repository failing, or the source's end of a connection breaking or lying,
            // stops the sync: every later step would fail the same way.
            Err(
                e @ (Error::Repository { .. }
                | Error::IndexDamaged { .. }
                | Error::Corrupt { .. }
                | Error::Protocol { .. }
                | Error::Remote { .. }
                | Error::Unreachable { .. }
                | Error::Interrupted { .. }),
            ) => Err(e),
            Err(e) => {
                crate::interrupt::check()?;
                self.summary.errors += 1;
                let path = step_path(step);
                let (side, shown) = if self.source_failed {
                    let rel = display_path(path);
                    (Side::Src, shown_under(self.src_root.as_deref(), &rel))
                } else {
                    (Side::Dst, shown(self.destination, path))
                };
                self.sink.event(&Event::Problem {
                    path: display_path(path),
                    message: reason_for_error(&shown, &e),
                    fault: Some(Fault { side, shown }),
                });
                Ok(())
            }
        }
    }

    fn write(&mut self, path: &[u8], content: &ContentId, mode: u32, mtime_ns: i64) -> Result<()> {
        let (file, list) = self.assemble(path, content)?;
        crate::failpoint::hit("before-rename");
        file.commit(mode, mtime_ns)?;
        crate::failpoint::hit("after-rename");
        self.written(path, content, &list, mode, mtime_ns);
        Ok(())
    }

    /// Notes the files the source's scan copied into place (`cold`), which the plan left out
    /// ([`plan::plan_around`]): walks the source's tree (`root`, less the paths it could not
    /// read, as the plan does) and takes each file whose copy is the one a write would give.
    /// Each is counted and reported as its write step would have been, and recorded with the
    /// files written; then the copies' list is let go.
    ///
    /// The files are recorded in the repository by a thread of their own, a batch at a time,
    /// while the next are noted: each commit waits for the disk, and on the main thread those
    /// waits were half of this step.
    fn note_copies(
        &mut self,
        root: TreeId,
        unreadable: &[Vec<u8>],
        writes_follow: bool,
    ) -> Result<()> {
        let (repo, origin) = (self.repo, self.dst_origin);
        std::thread::scope(|scope| {
            // At most one batch waits while the recorder commits the one before it.
            let (batches, to_record) = mpsc::sync_channel::<Recorded>(1);
            let recorder = scope.spawn(move || -> Result<()> {
                for batch in to_record {
                    record_files(repo, origin, &batch)?;
                }
                Ok(())
            });
            self.recorder = Some(batches);
            let noted = self.note_each_copy(root, unreadable, writes_follow);
            // The last batch too, unless noting failed: then what is left is recorded as
            // after any failed step (`Apply::run`).
            let last = match &noted {
                Ok(()) => self.record(),
                Err(_) => Ok(()),
            };
            self.recorder = None;
            let recorded = recorder
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            recorded.and(noted).and(last)
        })
    }

    /// [`Apply::note_copies`]' notes, file by file.
    fn note_each_copy(
        &mut self,
        root: TreeId,
        unreadable: &[Vec<u8>],
        writes_follow: bool,
    ) -> Result<()> {
        let mut batch = Vec::new();
        let mut noted = 0usize;
        let skip = |path: &[u8]| unreadable.iter().any(|u| u.as_slice() == path);
        let repo = self.repo;
        cold::each_file(repo, root, &skip, &mut |wanted, size| {
            let Some(copy) = self.copies.copy(wanted) else {
                return Ok(());
            };
            noted += 1;
            let step = Step::Write {
                path: wanted.path.to_vec(),
                content: *wanted.content,
                size,
                mode: wanted.mode,
                mtime_ns: wanted.mtime_ns,
            };
            batch.push((step, copy.moved, copy.landed));
            if batch.len() >= COPIES_BATCH {
                self.copied(&std::mem::take(&mut batch), writes_follow)?;
            }
            Ok(())
        })?;
        self.copied(&batch, writes_follow)?;
        if noted < self.copies.len() {
            // Were there any, the destination's rescan records them as they are.
            tracing::warn!(
                "{} files copied while read were not planned",
                self.copies.len() - noted
            );
        }
        self.copies.forget_files();
        Ok(())
    }

    /// Notes `steps`, writes of files the source's scan copied into place, each with the
    /// chunks its copy was the first to take ([`cold::Moved`], counted as each copy was put in
    /// place: a chunk is transferred the first time this run takes it, reused after; the
    /// destination of such copies held nothing when the run began, so no chunk was looked up
    /// there). Where each chunk lies is noted for later writes only when `writes_follow`
    /// (most cold syncs have none: every file was copied while read), from the copy's chunk
    /// list.
    fn copied(
        &mut self,
        steps: &[(Step, cold::Moved, Option<cold::Landed>)],
        writes_follow: bool,
    ) -> Result<()> {
        for (step, moved, landed) in steps {
            let Step::Write {
                path,
                content,
                size,
                mode,
                mtime_ns,
            } = step
            else {
                continue;
            };
            crate::interrupt::check()?;
            self.summary.bytes_transferred += moved.bytes;
            self.summary.chunks_transferred += u64::from(moved.chunks);
            self.summary.bytes_reused += size.saturating_sub(moved.bytes);
            self.sink.advance(*size);
            crate::failpoint::hit("after-rename");
            let done = match writes_follow {
                true => self
                    .contents
                    .get(content)
                    .map(|list| self.written(path, content, &list, *mode, *mtime_ns)),
                false => {
                    let stat = landed.map(|landed| landed.stat(*size, *mode, *mtime_ns));
                    self.note_written(path, content, *size, *mode, *mtime_ns, stat);
                    Ok(())
                }
            };
            self.finish_step(step, done, moved.bytes)?;
            if self.recorded.len() >= RECORD_FILES
                || (!self.recorded.is_empty() && self.last_record.elapsed() >= RECORD_INTERVAL)
            {
                self.record()?;
            }
        }
        Ok(())
    }

    /// Notes the file just committed at `path`: its chunks, for later copies of them, and its
    /// stat, to record.
    fn written(
        &mut self,
        path: &[u8],
        content: &ContentId,
        list: &ChunkList,
        mode: u32,
        mtime_ns: i64,
    ) {
        for (offset, chunk) in list.with_offsets() {
            self.received
                .entry(chunk.id)
                .or_insert_with(|| (path.to_vec(), offset));
        }
        self.note_written(path, content, list.size(), mode, mtime_ns, None);
    }

    /// Writes the file `content` names under a temporary name next to `path`, each chunk
    /// verified; the caller commits it.
    fn assemble(
        &mut self,
        path: &[u8],
        content: &ContentId,
    ) -> Result<(Box<dyn TempFile>, ChunkList)> {
        let list = self.contents.get(content)?;
        let mut file = self.destination.create_temp(path)?;
        let target = self.destination.display(path);
        let result = (|| -> Result<()> {
            // Where the file being replaced holds the same bytes, for a transport that can
            // build the new file from them (`TempFile::reuses_target`).
            let old = match file.reuses_target(list.size()) {
                true => reuse::TargetLayout::of(self.repo, self.dst_origin, path)?,
                false => None,
            };
            let known = old.as_ref().map(|o| (&o.change, o.known_offsets(&list)));
            let mut assembler = Assembler::new(&list);
            let failed = |e: AssembleError| match e {
                AssembleError::Io(e) => Error::io(&target, e),
                AssembleError::Mismatch => Error::Rebuild {
                    path: target.clone(),
                    content: content.short(),
                },
            };
            for (i, (offset, chunk)) in list.with_offsets().enumerate() {
                crate::interrupt::check()?;
                let at = known
                    .as_ref()
                    .and_then(|(change, at)| Some((*change, (*at.get(i)?)?)));
                let verified = self.fetch(path, offset, chunk, at.is_some())?;
                assembler
                    .chunk(offset, verified, &mut |bytes| match at {
                        Some((change, at)) => file.write_known(bytes, change, at),
                        None => file.write_all(bytes),
                    })
                    .map_err(failed)?;
                self.sink.advance(u64::from(chunk.len));
                crate::failpoint::hit("write-chunk");
            }
            assembler.finish().map_err(failed)
        })();
        if let Err(e) = result {
            file.discard();
            return Err(e);
        }
        Ok((file, list))
    }

    /// Creates a symlink where the destination has them. Elsewhere the link is reported as a
    /// problem and skipped: a link is never written as a file holding its target.
    fn symlink(&mut self, path: &[u8], target: &[u8]) -> Result<()> {
        if !self.destination.capabilities().symlinks {
            return Err(Error::io(
                self.destination.display(path),
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the destination cannot hold symlinks: skipped",
                ),
            ));
        }
        self.destination.symlink(path, target)
    }

    /// Moves a destination file about to be deleted into the place of a new one with the same
    /// content. Its metadata is set first, so under its final name it is complete.
    fn rename(
        &mut self,
        from: &[u8],
        to: &[u8],
        content: &ContentId,
        mode: u32,
        mtime_ns: i64,
    ) -> Result<()> {
        self.destination.set_meta(from, mode, mtime_ns)?;
        self.destination.rename(from, to)?;
        let size = self.contents.get(content)?.size();
        self.note_written(to, content, size, mode, mtime_ns, None);
        Ok(())
    }

    /// One chunk, verified: from this run's writes, from the destination's known chunks
    /// (`locate`, the destination's recorded locations), else from the source (counted as
    /// transferred).
    ///
    /// A chunk `in_target` (the file being replaced holds it, and the destination builds the
    /// new file from those bytes itself, `TempFile::write_known`) is asked of the source
    /// first, when the source reads its chunks without asking ahead (`prefetches` false: an
    /// origin this process reads): the temporary file needs the bytes only as its own copy,
    /// and reading them back from such a destination (an object store) would download what
    /// it is about to copy in place. Counted as reused: the destination had them. Every other
    /// chunk is asked of such a source first too when the destination is not a directory of
    /// this machine (no `local_root`): a duplicate (an album's cover in each track) would
    /// otherwise be downloaded from the destination to be uploaded again; counted as
    /// transferred, since it is written to the destination. So is a chunk the destination
    /// held nowhere when the run began: counted as transferred the first time, as reused
    /// after (the copy this run wrote is not looked up, and its file not opened, for bytes
    /// the source's open file holds at the offset being copied).
    fn fetch(
        &mut self,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
        in_target: bool,
    ) -> Result<VerifiedChunk> {
        // A destination that is not a directory of this machine (an object store) is read
        // over the network: a chunk the source holds is taken from there, never downloaded
        // from what the sync is uploading to.
        let remote_destination = self.destination.local_root().is_none();
        let new_chunk = self.new_chunks.contains(&chunk.id);
        if (in_target || remote_destination || new_chunk) && !self.source.prefetches() {
            match self.source.read_chunk(path, offset, chunk) {
                Ok(Some(found)) => {
                    // A new chunk crosses once: a later copy of it is one the destination
                    // has by then (an album's cover in each track), taken from where the
                    // source has it only because that is cheaper than from the copy.
                    // Not into a remote destination: there each copy is uploaded again.
                    let first = self.sent.insert(sent_key(&chunk.id));
                    let copy = new_chunk && !first && !remote_destination;
                    if in_target || copy {
                        self.summary.bytes_reused += u64::from(chunk.len);
                    } else {
                        self.summary.bytes_transferred += u64::from(chunk.len);
                        self.summary.chunks_transferred += 1;
                    }
                    return Ok(found);
                }
                // The destination still has it.
                Ok(None) => {}
                Err(e) => tracing::debug!("{}: {e}", display_path(path)),
            }
        }
        if self.committing.contains(&chunk.id) {
            // A prefetching source sends a chunk once; its later copies are read from the
            // file that received it, which must be in place first.
            self.settle_all()?;
        }
        let written = self.received.get(&chunk.id).cloned();
        let hint = written.as_ref().map(|(p, off)| Hint {
            site: 0,
            path: p,
            offset: *off,
        });
        // `Site::given` takes the destination as the plain origin it also is.
        let destination: &dyn Origin = self.destination;
        let here = Locator::new(
            self.repo,
            vec![Site::given(destination, Some(self.dst_origin))],
            false,
        );
        if let Some(found) = here.find(&mut self.open, hint, chunk)? {
            self.summary.bytes_reused += u64::from(chunk.len);
            return Ok(found);
        }
        let from_source = self.source.read_chunk(path, offset, chunk);
        self.source_failed = !matches!(from_source, Ok(Some(_)));
        if let Some(found) = from_source? {
            self.summary.bytes_transferred += u64::from(chunk.len);
            self.summary.chunks_transferred += 1;
            // Later copies of this chunk come from the destination.
            self.received
                .entry(chunk.id)
                .or_insert_with(|| (path.to_vec(), offset));
            return Ok(found);
        }
        Err(Error::ChunkUnavailable {
            path: self.destination.display(path),
            chunk: chunk.id.short(),
        })
    }

    /// Notes a file just committed at `path`, with its stat now (`known`, when the thread
    /// that put it in place took it then): a sync stopped by a broken
    /// connection can still record it ([`Apply::run`]). When that stat fails (the connection
    /// broke just after the commit), the file is noted with what the commit gave it: its
    /// size, mode and mtime at the destination's resolution, and no change key. Where the
    /// destination has no change keys (SFTP) that is what its next walk shows, so the file is
    /// neither read back nor sent again; where it has them, the next scan finds a different
    /// key and reads the file, which is only slower.
    fn note_written(
        &mut self,
        path: &[u8],
        content: &ContentId,
        size: u64,
        mode: u32,
        mtime_ns: i64,
        known: Option<EntryStat>,
    ) {
        let stat = match known.map_or_else(|| self.destination.stat(path), |stat| Ok(Some(stat))) {
            Ok(Some(stat)) => stat,
            _ => EntryStat {
                kind: EntryKind::File,
                size,
                mtime_ns: self
                    .destination
                    .capabilities()
                    .mtime_resolution
                    .truncate(mtime_ns),
                change: ChangeKey::None,
                mode: mode & 0o7777,
            },
        };
        self.recorded.push((path.to_vec(), *content, stat));
    }

    /// Records written destination files in the repository, so the next scan skips them.
    fn record(&mut self) -> Result<()> {
        if self.recorded.is_empty() {
            return Ok(());
        }
        // The stats were taken at each commit, so no network call waits inside the write
        // transaction.
        match &self.recorder {
            // Written and committed by the recorder while the copies are noted on; it is
            // joined, every batch committed, before the chunks a later write needs are
            // looked up.
            Some(recorder) => {
                if let Err(mpsc::SendError(batch)) =
                    recorder.send(std::mem::take(&mut self.recorded))
                {
                    // Kept for the record `Apply::run` makes after a failure; the recorder's
                    // error is the one `note_copies` returns.
                    self.recorded = batch;
                    return Err(Error::InvalidInput("the copies' recorder stopped".into()));
                }
            }
            None => {
                record_files(self.repo, self.dst_origin, &self.recorded)?;
                self.recorded.clear();
            }
        }
        self.last_record = std::time::Instant::now();
        // A read transaction held across many commits keeps the pages they replaced from
        // being reused: a fresh one after each batch keeps the index from growing.
        self.contents = self.repo.contents()?;
        // The repository now knows where those chunks are.
        self.received.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps the events it is given.
    #[derive(Default)]
    struct Kept(Mutex<Vec<Event>>);

    impl Sink for Kept {
        fn event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    #[test]
    fn a_temporary_name_never_reaches_a_problem() {
        let e = Error::io(
            "nas:/music/Album/.musicfs-0123456789abcdef.tmp",
            std::io::Error::from_raw_os_error(libc::EACCES),
        );
        let reason = reason_for_error("nas:/music/Album/01.flac", &e);
        assert!(reason.starts_with("permission denied; check"), "{reason}");
        let e = Error::io(
            "/lib/a.mp3",
            std::io::Error::from_raw_os_error(libc::ENOSPC),
        );
        let reason = reason_for_error("/lib/a.mp3", &e);
        assert!(reason.starts_with("no space left on device; "), "{reason}");
        // An error about another path keeps it.
        let reason = reason_for_error(
            "/lib/a.mp3",
            &Error::io("/lib", std::io::Error::from_raw_os_error(libc::EIO)),
        );
        assert!(reason.starts_with("/lib: input/output error"), "{reason}");
    }

    #[test]
    fn a_scan_problem_gets_its_side_and_a_relative_path() {
        let kept = Kept::default();
        let sided = Sided {
            inner: &kept,
            side: Side::Src,
            root: Some("/music".into()),
        };
        sided.event(&Event::problem("/music/a", "permission denied"));
        sided.event(&Event::problem(
            "b.flac",
            "/music/b.flac: gone (os error 2)",
        ));
        sided.event(&Event::problem("/music", "permission denied"));
        let kept = kept.0.into_inner().unwrap();
        let seen: Vec<(String, String, String)> = kept
            .iter()
            .map(|e| match e {
                Event::Problem {
                    path,
                    message,
                    fault: Some(fault),
                } => {
                    assert_eq!(fault.side, Side::Src);
                    (path.clone(), fault.shown.clone(), message.clone())
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let want = [
            ("a", "/music/a", "permission denied"),
            ("b.flac", "/music/b.flac", "gone"),
            ("", "/music", "permission denied"),
        ];
        for (got, want) in seen.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
        }
    }
}
