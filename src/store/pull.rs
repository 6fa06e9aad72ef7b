//! Pulling a snapshot out of a chunk store: a [`SyncSource`] whose snapshot's trees and chunk
//! lists are fetched into the local repository (only those it lacks), and whose chunks are
//! read by ranged reads, adjacent chunks of a pack merged into one read, ahead of need in a
//! background thread once the sync says what it will ask for ([`ChunkSource::expect`]). Every
//! blob is checked against its id before it is used; the destination is written by
//! [`crate::sync::sync_from`], as any sync's.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use super::format::{decompress, BlobKind, StoreSnapshot, MAX_BLOB};
use super::index::{BlobLocation, MergedIndex};
use super::Store;
use crate::agent::wire::{check_content, check_tree, MAX_PATH};
use crate::chunk::{Chunker, VerifiedChunk};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, TreeId};
use crate::repo::{ObjectId, ObjectKind, ObjectStore, Repository};
use crate::report::Sink;
use crate::snapshot::{ChunkRef, Node, Tree};
use crate::sync::{ChunkSource, SourceState, SyncSource};

/// Unneeded bytes between two wanted blobs of a pack that are read anyway, to save a request.
const MERGE_GAP: u64 = 64 << 10;
/// Bytes of one read, at most (a single larger blob is read alone).
const MAX_READ: u64 = 8 << 20;
/// Bytes of expected chunks whose reads are planned together (sorted by place in the store).
const WINDOW: u64 = 32 << 20;
/// Reads done ahead of what the sync has taken, at most.
const READS_AHEAD: usize = 4;

/// Which snapshot of the store to pull.
#[derive(Clone, Debug)]
pub enum Pick {
    /// The newest snapshot of a library; with `None`, the store must hold exactly one library.
    Newest(Option<String>),
    /// The newest snapshot of a library (as with `Newest`) taken at or before a time
    /// (nanoseconds since the Unix epoch).
    AtOrBefore(Option<String>, i64),
    /// The snapshot object with this id (64 hex digits, or a unique prefix of them).
    Id(String),
}

/// One ranged read of a pack and the blobs it yields.
struct Read<K> {
    pack: ObjectId,
    start: u64,
    end: u64,
    blobs: Vec<(K, BlobLocation)>,
}

/// Groups `wanted` blobs (in the order given) into reads: a blob joins the previous read when
/// it is in the same pack, at most [`MERGE_GAP`] after it, and the read stays within
/// [`MAX_READ`].
fn plan_reads<K>(index: &MergedIndex, wanted: Vec<(K, BlobLocation)>) -> Vec<Read<K>> {
    let mut reads: Vec<Read<K>> = Vec::new();
    for (key, loc) in wanted {
        let Some(pack) = index.pack(loc.pack).copied() else {
            continue;
        };
        let (start, end) = (
            u64::from(loc.offset),
            u64::from(loc.offset) + u64::from(loc.stored),
        );
        if let Some(last) = reads.last_mut() {
            if last.pack == pack
                && start >= last.end
                && start - last.end <= MERGE_GAP
                && end - last.start <= MAX_READ
            {
                last.end = end;
                last.blobs.push((key, loc));
                continue;
            }
        }
        reads.push(Read {
            pack,
            start,
            end,
            blobs: vec![(key, loc)],
        });
    }
    reads
}

/// Does one read and returns each blob's bytes, decompressed (not yet checked against ids).
fn do_read<K>(objects: &dyn ObjectStore, url: &str, read: Read<K>) -> Result<Vec<(K, Vec<u8>)>> {
    let damaged = |what: String| Error::Protocol {
        origin: url.to_string(),
        message: format!("damaged store: {what}"),
    };
    if let Some((_, bad)) = read
        .blobs
        .iter()
        .find(|(_, l)| l.stored > MAX_BLOB || l.raw > MAX_BLOB)
    {
        return Err(damaged(format!(
            "the index gives a blob of pack {} a length of {} bytes",
            read.pack.hex(),
            bad.stored.max(bad.raw)
        )));
    }
    let bytes = match objects.read(
        ObjectKind::StorePack,
        &read.pack,
        read.start,
        (read.end - read.start) as usize,
    ) {
        Ok(bytes) => bytes,
        Err(Error::Io { ref source, .. })
            if matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            return Err(damaged(format!(
                "pack {} named by the index is missing or short",
                read.pack.hex()
            )))
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(read.blobs.len());
    for (key, loc) in read.blobs {
        let at = (u64::from(loc.offset) - read.start) as usize;
        let stored = &bytes[at..at + loc.stored as usize];
        let raw = if loc.compressed {
            decompress(stored, Some(loc.raw as usize))
                .map_err(|why| damaged(format!("a blob of pack {}: {why}", read.pack.hex())))?
        } else {
            stored.to_vec()
        };
        out.push((key, raw));
    }
    Ok(out)
}

/// A store's snapshot as the source of a sync.
pub struct StoreSource<'a> {
    store: &'a Store,
    index: MergedIndex,
    id: ObjectId,
    snapshot: StoreSnapshot,
    /// Chunks read ahead and not yet taken.
    stash: HashMap<ChunkId, VerifiedChunk>,
    /// Chunks the reader thread will deliver.
    coming: HashSet<ChunkId>,
    /// What the reader thread delivers, one read at a time.
    feed: Option<Receiver<Result<Vec<VerifiedChunk>>>>,
}

impl<'a> StoreSource<'a> {
    /// The snapshot `pick` of `store`: lists the store's snapshots and index deltas (fetching
    /// only those not cached) and merges its index.
    pub fn new(store: &'a Store, pick: Pick) -> Result<StoreSource<'a>> {
        let snapshots = store.snapshots()?;
        let libraries = |snapshots: &[(ObjectId, StoreSnapshot)]| {
            let mut names: Vec<&str> = snapshots.iter().map(|(_, s)| s.library.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names.join(", ")
        };
        let of_library = |library: &Option<String>| -> Result<Vec<&(ObjectId, StoreSnapshot)>> {
            let name = match library {
                Some(name) => name.clone(),
                None => {
                    let mut names: Vec<&String> =
                        snapshots.iter().map(|(_, s)| &s.library).collect();
                    names.sort_unstable();
                    names.dedup();
                    match names.as_slice() {
                        [one] => (*one).clone(),
                        [] => {
                            return Err(Error::InvalidInput(format!(
                                "{}: the store holds no snapshot yet",
                                store.url
                            )))
                        }
                        _ => {
                            return Err(Error::InvalidInput(format!(
                                "{}: the store holds several libraries ({}); name one",
                                store.url,
                                libraries(&snapshots)
                            )))
                        }
                    }
                }
            };
            let found: Vec<_> = snapshots
                .iter()
                .filter(|(_, s)| s.library == name)
                .collect();
            if found.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "{}: no snapshot of {name} (the store holds: {})",
                    store.url,
                    libraries(&snapshots)
                )));
            }
            Ok(found)
        };
        let chosen = match &pick {
            Pick::Newest(library) => of_library(library)?.last().map(|s| (*s).clone()),
            Pick::AtOrBefore(library, time) => of_library(library)?
                .into_iter()
                .rev()
                .find(|(_, s)| s.time_ns <= *time)
                .cloned(),
            Pick::Id(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                let found: Vec<_> = snapshots
                    .iter()
                    .filter(|(id, _)| id.hex().starts_with(&prefix))
                    .collect();
                match found.as_slice() {
                    [one] => Some((*one).clone()),
                    [] => None,
                    _ => {
                        return Err(Error::InvalidInput(format!(
                            "{}: snapshot {prefix} is ambiguous",
                            store.url
                        )))
                    }
                }
            }
        };
        let Some((id, snapshot)) = chosen else {
            return Err(Error::InvalidInput(format!(
                "{}: no such snapshot ({pick:?})",
                store.url
            )));
        };
        let mut index = store.index()?;
        let named: Vec<ObjectId> = snapshot
            .deltas
            .iter()
            .map(|d| ObjectId::from_bytes(*d))
            .collect();
        store.merge_named(&mut index, &named)?;
        Ok(StoreSource {
            store,
            index,
            id,
            snapshot,
            stash: HashMap::new(),
            coming: HashSet::new(),
            feed: None,
        })
    }

    /// The snapshot being pulled, and its object's id.
    pub fn snapshot_object(&self) -> (&ObjectId, &StoreSnapshot) {
        (&self.id, &self.snapshot)
    }

    fn damaged(&self, what: String) -> Error {
        self.store.damaged(what)
    }

    /// Reads blobs of one kind, merging reads; each one's location must be indexed.
    fn read_blobs(&self, kind: BlobKind, ids: &[[u8; 32]]) -> Result<Vec<([u8; 32], Vec<u8>)>> {
        let mut wanted = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(loc) = self.index.get(kind, id) else {
                return Err(self.damaged(format!(
                    "snapshot {} needs a {kind:?} blob no index delta names (a listing that lags: try again)",
                    self.id.hex()
                )));
            };
            wanted.push((*id, loc));
        }
        wanted.sort_by_key(|(_, l)| (l.pack, l.offset));
        let mut out = Vec::with_capacity(ids.len());
        for read in plan_reads(&self.index, wanted) {
            out.extend(do_read(self.store.objects(), &self.store.url, read)?);
        }
        Ok(out)
    }

    /// Fetches every tree under `root` and every chunk list they name that `repo` lacks,
    /// level by level, checking each; chunk lists are stored as they arrive, trees in one
    /// transaction at the end, so a stored tree always has its whole subtree stored.
    fn fetch_trees(&self, repo: &Repository, root: TreeId) -> Result<()> {
        if repo.has_tree(&root)? {
            return Ok(());
        }
        let mut trees: Vec<Tree> = Vec::new();
        let mut seen_trees: HashSet<TreeId> = HashSet::from([root]);
        let mut seen_contents: HashSet<ContentId> = HashSet::new();
        let mut level: Vec<(TreeId, usize)> = vec![(root, 0)];
        let mut contents: Vec<(ContentId, u64)> = Vec::new();
        while !level.is_empty() || !contents.is_empty() {
            crate::interrupt::check()?;
            let ids: Vec<[u8; 32]> = level.iter().map(|(t, _)| *t.as_bytes()).collect();
            let got: HashMap<[u8; 32], Vec<u8>> =
                self.read_blobs(BlobKind::Tree, &ids)?.into_iter().collect();
            let mut next_level = Vec::new();
            let mut next_contents = Vec::new();
            for (id, path_len) in &level {
                let bytes = got
                    .get(id.as_bytes())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let tree = check_tree(id, bytes).map_err(|m| self.damaged(m))?;
                for entry in &tree.entries {
                    let len = path_len + 1 + entry.name.len();
                    if len > MAX_PATH {
                        return Err(self.damaged(format!("a path of more than {MAX_PATH} bytes")));
                    }
                    match &entry.node {
                        Node::Dir { tree, .. } => {
                            if seen_trees.insert(*tree) && !repo.has_tree(tree)? {
                                next_level.push((*tree, len));
                            }
                        }
                        Node::File { content, size, .. } => {
                            if seen_contents.insert(*content) && !repo.has_content(content)? {
                                next_contents.push((*content, *size));
                            }
                        }
                        Node::Symlink { .. } => {}
                    }
                }
                trees.push(tree);
            }
            if !contents.is_empty() {
                let ids: Vec<[u8; 32]> = contents.iter().map(|(c, _)| *c.as_bytes()).collect();
                let got: HashMap<[u8; 32], Vec<u8>> = self
                    .read_blobs(BlobKind::Content, &ids)?
                    .into_iter()
                    .collect();
                let mut writer = repo.writer()?;
                let mut tables = writer.tables()?;
                for (id, size) in &contents {
                    let bytes = got
                        .get(id.as_bytes())
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    let list = check_content(id, *size, bytes).map_err(|m| self.damaged(m))?;
                    tables.put_content(&list)?;
                }
                drop(tables);
                writer.commit()?;
            }
            level = next_level;
            contents = next_contents;
        }
        let mut writer = repo.writer()?;
        for tree in &trees {
            writer.put_tree(tree)?;
        }
        writer.commit()
    }

    /// Reads one chunk now, alone.
    fn read_now(&self, chunk: ChunkRef) -> Result<Option<VerifiedChunk>> {
        let Some(loc) = self.index.get(BlobKind::Chunk, chunk.id.as_bytes()) else {
            return Ok(None);
        };
        for read in plan_reads(&self.index, vec![(chunk, loc)]) {
            if let Some((c, bytes)) = do_read(self.store.objects(), &self.store.url, read)?
                .into_iter()
                .next()
            {
                return verify(&self.store.url, c, bytes).map(Some);
            }
        }
        Ok(None)
    }
}

/// `bytes` as chunk `chunk`, or the error of a damaged store.
fn verify(url: &str, chunk: ChunkRef, bytes: Vec<u8>) -> Result<VerifiedChunk> {
    if bytes.len() == chunk.len as usize {
        if let Some(v) = VerifiedChunk::check(chunk.id, bytes) {
            return Ok(v);
        }
    }
    Err(Error::Protocol {
        origin: url.to_string(),
        message: format!(
            "damaged store: chunk {} does not match its hash; nothing of it was written",
            chunk.id.short()
        ),
    })
}

impl SyncSource for StoreSource<'_> {
    fn snapshot(
        &mut self,
        repo: &Repository,
        _chunker: &dyn Chunker,
        _sink: &dyn Sink,
    ) -> Result<SourceState> {
        let root = TreeId::from_stored(self.snapshot.root);
        self.fetch_trees(repo, root)?;
        Ok(SourceState {
            root,
            files: self.snapshot.files,
            bytes: self.snapshot.bytes,
            unreadable: Vec::new(),
            root_meta: None,
        })
    }
}

impl ChunkSource for StoreSource<'_> {
    fn prefetches(&self) -> bool {
        true
    }

    /// Plans the reads of every expected chunk the store holds, in the order given, and
    /// starts a thread that does them up to `READS_AHEAD` reads ahead of what was taken.
    fn expect(&mut self, chunks: &[ChunkRef]) -> Result<()> {
        let mut wanted = Vec::new();
        for c in chunks {
            if self.stash.contains_key(&c.id) || !self.coming.insert(c.id) {
                continue;
            }
            if let Some(loc) = self.index.get(BlobKind::Chunk, c.id.as_bytes()) {
                wanted.push((*c, loc));
            } else {
                self.coming.remove(&c.id);
            }
        }
        // In windows of the expected order, each sorted by place in the store: a file's tag
        // chunks (small packs) and audio (data packs) alternate in the sync's order, and
        // sorting a window brings each pack's runs together, while what arrives ahead of
        // need stays within about one window.
        let mut reads = Vec::new();
        let mut window: Vec<(ChunkRef, BlobLocation)> = Vec::new();
        let mut window_bytes = 0u64;
        for (i, (c, loc)) in wanted.iter().enumerate() {
            window.push((*c, *loc));
            window_bytes += u64::from(loc.stored);
            if window_bytes >= WINDOW || i + 1 == wanted.len() {
                window.sort_by_key(|(_, l)| (l.pack, l.offset));
                reads.extend(plan_reads(&self.index, std::mem::take(&mut window)));
                window_bytes = 0;
            }
        }
        if reads.is_empty() {
            return Ok(());
        }
        let (send, feed) = mpsc::sync_channel(READS_AHEAD);
        let objects: Arc<dyn ObjectStore> = Arc::clone(&self.store.objects);
        let url = self.store.url.clone();
        std::thread::spawn(move || {
            for read in reads {
                let result = do_read(&*objects, &url, read).and_then(|blobs| {
                    blobs
                        .into_iter()
                        .map(|(c, bytes)| verify(&url, c, bytes))
                        .collect::<Result<Vec<_>>>()
                });
                let failed = result.is_err();
                if send.send(result).is_err() || failed {
                    return;
                }
            }
        });
        self.feed = Some(feed);
        Ok(())
    }

    /// The chunk from what was read ahead (waiting for it when it is on its way), else read
    /// alone; `None` when no index delta names it.
    fn read_chunk(
        &mut self,
        _path: &[u8],
        _offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        if let Some(found) = self.stash.remove(&chunk.id) {
            return Ok(Some(found));
        }
        if self.coming.contains(&chunk.id) {
            while let Some(feed) = &self.feed {
                match feed.recv() {
                    Ok(Ok(batch)) => {
                        for v in batch {
                            self.coming.remove(&v.id());
                            self.stash.insert(v.id(), v);
                        }
                        if let Some(found) = self.stash.remove(&chunk.id) {
                            return Ok(Some(found));
                        }
                    }
                    Ok(Err(e)) => {
                        self.feed = None;
                        self.coming.clear();
                        return Err(e);
                    }
                    Err(_) => {
                        self.feed = None;
                        self.coming.clear();
                    }
                }
            }
        }
        self.read_now(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::format::PackEntry;

    fn entry(id: u8, offset: u32, stored: u32) -> PackEntry {
        PackEntry {
            kind: BlobKind::Chunk,
            id: [id; 32],
            offset,
            stored,
            raw: stored,
            compressed: false,
        }
    }

    #[test]
    fn reads_merge_neighbours_of_one_pack_within_a_gap_and_a_size() {
        let mut index = MergedIndex::default();
        let (p, q) = (ObjectId::of(b"p"), ObjectId::of(b"q"));
        let big = (MAX_READ / 2) as u32;
        index.add_pack(
            p,
            &[
                entry(1, 0, 100),
                entry(2, 100, 100),
                // 64 KiB after the last: still merged.
                entry(3, 200 + (MERGE_GAP as u32), 100),
                // Further: a read of its own.
                entry(4, 1 << 24, 100),
                entry(5, 1 << 25, big),
                entry(6, (1 << 25) + big, big),
            ],
        );
        index.add_pack(q, &[entry(7, 300, 100)]);
        let wanted: Vec<(u8, BlobLocation)> = [1u8, 2, 3, 7, 4, 5, 6]
            .iter()
            .map(|i| (*i, index.get(BlobKind::Chunk, &[*i; 32]).unwrap()))
            .collect();
        let reads = plan_reads(&index, wanted);
        let shape: Vec<(ObjectId, Vec<u8>)> = reads
            .iter()
            .map(|r| (r.pack, r.blobs.iter().map(|(k, _)| *k).collect()))
            .collect();
        // 1, 2 and 3 merged; 7, in another pack, breaks the run; 5 and 6 together make a
        // read of exactly MAX_READ, which is allowed.
        assert_eq!(
            shape,
            vec![
                (p, vec![1, 2, 3]),
                (q, vec![7]),
                (p, vec![4]),
                (p, vec![5, 6]),
            ]
        );
        assert_eq!(reads[0].end - reads[0].start, 300 + MERGE_GAP);
    }

    #[test]
    fn a_hostile_length_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let objects = crate::repo::LocalObjects::new(dir.path());
        let pack = ObjectId::of(b"p");
        let loc = BlobLocation {
            pack: 0,
            offset: 0,
            stored: u32::MAX,
            raw: 1,
            compressed: false,
        };
        let read = Read {
            pack,
            start: 0,
            end: u64::from(u32::MAX),
            blobs: vec![((), loc)],
        };
        let err = do_read(&objects, "file:///s", read)
            .unwrap_err()
            .to_string();
        assert!(err.contains("damaged store"), "{err}");
    }
}
