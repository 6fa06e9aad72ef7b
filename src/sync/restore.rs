//! Restoring a snapshot: a [`SyncSource`] whose tree is a recorded snapshot's and whose chunks
//! come from wherever the repository knows them (`musicfs sync SNAPSHOT DST`, `musicfs sync
//! ORIGIN@TIME DST`, as restic's `restore`).
//!
//! The destination is written by the ordinary sync ([`super::sync_from`]: its lock, its scan,
//! the plan, temporary files renamed into place, every chunk verified), so a restore is exactly
//! as safe as a sync, and `--delete` and `--dry-run` mean what they mean there. Only the source
//! differs: its snapshot is already in the repository, so nothing is scanned, and each chunk
//! the destination lacks is searched for by `locate`:
//! 1. at the file's own path and offset in the snapshot's origin (a file unchanged since the
//!    snapshot holds it there);
//! 2. at every location the repository records for it, in every origin it has snapshots of,
//!    each opened through the registry when first read ([`OriginPool`]: a local directory, an
//!    SSH origin over SFTP);
//! 3. in the history the repository keeps (the tag, padding and structure chunks of every file
//!    it scanned), so a file retagged since the snapshot comes back with its old tags, as the
//!    mount serves it.
//!
//! A chunk found nowhere makes its file a problem (the sync is partial); the other files are
//! restored.
//!
//! Never does: write to an origin other than the destination, or to the repository beyond what
//! a sync records about its destination.

use crate::chunk::{Chunker, VerifiedChunk};
use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::locate::{Hint, LastOpen, Locator, OriginPool, Site};
use crate::origin::{OpenOptions, WritableOrigin};
use crate::repo::{OriginId, Repository};
use crate::report::Sink;
use crate::snapshot::{ChunkRef, SnapshotRecord};

use super::{sync_from, ChunkSource, SourceState, SyncOptions, SyncSource, SyncSummary};

/// A recorded snapshot as the source of a sync.
pub struct SnapshotSource<'a> {
    repo: &'a Repository,
    id: SnapshotId,
    record: SnapshotRecord,
    /// The origins searched, by URL as the repository records them, with their ids: the
    /// snapshot's origin first (unless it is the destination), then every other origin with a
    /// snapshot, most recently scanned first.
    sites: Vec<(String, Option<OriginId>)>,
    /// Whether `sites[0]` is the snapshot's origin, where a file's own path is the first place
    /// to look.
    own_origin: bool,
    pool: OriginPool,
    open: LastOpen,
}

impl<'a> SnapshotSource<'a> {
    /// The snapshot `id` of `repo`, its chunks read from the repository's origins opened with
    /// `options`. The origin recorded as `destination` (the sync's destination, whose chunks
    /// the sync reads itself) is left out of the search.
    pub fn new(
        repo: &'a Repository,
        id: SnapshotId,
        options: OpenOptions,
        destination: &str,
    ) -> Result<SnapshotSource<'a>> {
        let snapshots = repo.snapshots()?;
        let Some(record) = snapshots
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, r)| r.clone())
        else {
            return Err(Error::InvalidInput(format!(
                "{}: no such snapshot (see `musicfs snapshots`)",
                id.short()
            )));
        };
        let mut urls: Vec<String> = Vec::new();
        for url in
            std::iter::once(&record.origin).chain(snapshots.iter().rev().map(|(_, r)| &r.origin))
        {
            if url != destination && !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        let mut sites = Vec::with_capacity(urls.len());
        for url in urls {
            let origin_id = repo.find_origin(&url)?;
            sites.push((url, origin_id));
        }
        let own_origin = sites.first().is_some_and(|(url, _)| *url == record.origin);
        Ok(SnapshotSource {
            repo,
            id,
            record,
            sites,
            own_origin,
            pool: OriginPool::new(options),
            open: LastOpen::default(),
        })
    }

    /// The snapshot's record.
    pub fn record(&self) -> &SnapshotRecord {
        &self.record
    }
}

impl SyncSource for SnapshotSource<'_> {
    /// The snapshot as recorded: nothing is scanned. Its root's own mode and mtime are not
    /// part of a snapshot, so the destination's root keeps its own.
    fn snapshot(
        &mut self,
        repo: &Repository,
        _chunker: &dyn Chunker,
        _sink: &dyn Sink,
    ) -> Result<SourceState> {
        if !repo.has_tree(&self.record.root)? {
            return Err(Error::InvalidInput(format!(
                "snapshot {}: its root tree is missing from the repository (see `musicfs check`)",
                self.id.short()
            )));
        }
        Ok(SourceState {
            root: self.record.root,
            files: self.record.files,
            bytes: self.record.bytes,
            unreadable: Vec::new(),
            root_meta: None,
        })
    }
    /// A file of the snapshot is named in its origin, where its chunks are looked for first.
    fn shown_root(&self) -> Option<String> {
        Some(self.record.origin.clone())
    }
}

impl ChunkSource for SnapshotSource<'_> {
    /// The file's own path and offset in the snapshot's origin, then every location recorded
    /// in every origin, then the repository's history (`locate`).
    fn read_chunk(
        &mut self,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        let sites = self
            .sites
            .iter()
            .map(|(url, id)| Site::pooled(url, *id, &self.pool))
            .collect();
        let locator = Locator::new(self.repo, sites, true);
        let hint = self.own_origin.then_some(Hint {
            site: 0,
            path,
            offset,
        });
        locator.find(&mut self.open, hint, chunk)
    }
}

/// Makes `destination` hold snapshot `id`'s tree, as a sync from it would (see the module
/// documentation); origins the chunks are read from are opened with `open`.
pub fn restore(
    repo: &Repository,
    id: SnapshotId,
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    open: OpenOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    let mut source = SnapshotSource::new(repo, id, open, destination.url())?;
    tracing::debug!(
        "restoring snapshot {} of {} into {}",
        id.short(),
        source.record().origin,
        destination.url()
    );
    sync_from(repo, &mut source, destination, chunker, options, sink)
}
