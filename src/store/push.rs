//! Pushing a snapshot recorded in the local repository into a chunk store.
//!
//! Order of work, which is what makes a push safe to stop at any moment:
//! 1. merge the store's index (only deltas not cached yet are fetched);
//! 2. walk the snapshot's trees from the root, skipping every tree the store already indexes
//!    (a tree is indexed only together with, or after, everything below it), and list the
//!    chunk lists and chunks it lacks;
//! 3. read those chunks from the library (through a [`ChunkSource`], every chunk verified)
//!    and put them in packs: audio and pictures raw in data packs, everything else (tags,
//!    padding, structure) compressed in small packs, so that what a retag makes garbage sits
//!    in small packs a gc repacks cheaply; an index delta is put after every
//!    [`DELTA_EVERY`] packs, so a push stopped half-way keeps most of its work;
//! 4. put the chunk lists and trees in their own packs, and the last delta;
//! 5. put the snapshot object, last.
//!
//! Until its delta is put, a pack is garbage nobody reads (gc's to remove); until the snapshot
//! is put, the new blobs are reachable from no snapshot. A push that finds the library's newest
//! snapshot in the store with the same root tree puts nothing.

use std::collections::HashSet;

use serde::Serialize;

use super::format::{
    encode_object, repad, BlobKind, IndexDelta, PackBuilder, PackRows, StoreSnapshot, Tag,
};
use super::index::MergedIndex;
use super::{host_name, Store};
use crate::chunk::keeps_history;
use crate::chunk::VerifiedChunk;
use crate::error::{Error, Result};
use crate::id::{ContentId, SnapshotId, TreeId};
use crate::origin::Origin;
use crate::repo::{ObjectId, ObjectKind, Repository};
use crate::report::Sink;
use crate::snapshot::{ChunkRef, Node};
use crate::sync::{ChunkSource, LocalSource};

/// The failpoints of a push, in the order it reaches them (`crate::failpoint`):
/// `store-pack` after each pack is put, `store-index` after each index delta, `store-snapshot`
/// after the snapshot object.
pub const PUSH_POINTS: &[&str] = &["store-pack", "store-index", "store-snapshot"];

/// Packs put between two index deltas, at most: what a push stopped half-way uploads again.
const DELTA_EVERY: usize = 16;

/// What a push did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PushSummary {
    /// The library the snapshot joined.
    pub library: String,
    /// The snapshot object put, or `None` when the store's newest snapshot of the library
    /// already had this root tree (nothing was put).
    pub snapshot: Option<String>,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Chunks the store lacked, uploaded.
    pub chunks_uploaded: u64,
    /// Their bytes, uncompressed.
    pub chunk_bytes_uploaded: u64,
    /// Chunks the store held already (each counted once).
    pub chunks_present: u64,
    /// Trees uploaded.
    pub trees_uploaded: u64,
    /// Chunk lists uploaded.
    pub contents_uploaded: u64,
    /// Packs put.
    pub packs: u64,
    /// Packs found in the store already, put by a push that stopped before indexing them.
    pub packs_found: u64,
    /// Index deltas put.
    pub deltas: u64,
    /// Bytes of every object put (packs, deltas, snapshot).
    pub bytes_put: u64,
}

/// A chunk to upload: where the library holds it (a file, by its number in the list of
/// paths, and an offset), and whether it compresses.
struct Wanted {
    file: usize,
    offset: u64,
    chunk: ChunkRef,
    compress: bool,
}

/// What the push has put and not yet indexed.
struct Uploader<'s> {
    store: &'s Store,
    host: String,
    pending: Vec<PackRows>,
    deltas: Vec<[u8; 32]>,
    summary: PushSummary,
}

impl Uploader<'_> {
    /// Puts the pack `builder` holds (if any) and remembers its rows.
    fn put_pack(&mut self, builder: &mut PackBuilder, index: &mut MergedIndex) -> Result<()> {
        if builder.is_empty() {
            return Ok(());
        }
        let (mut bytes, mut entries) = builder.finish();
        let mut id = ObjectId::of(&bytes);
        // A pack a gc marked may be removed at any time, even once put again: put the same
        // blobs under another id instead.
        let mut salt = 0u64;
        while index.is_marked(&id) {
            salt += 1;
            (bytes, entries) = repad(&bytes, &entries, &salt.to_le_bytes());
            id = ObjectId::of(&bytes);
        }
        // Packing is deterministic, so a push stopped after putting a pack and before
        // indexing it made this very pack: one cheap request saves uploading it again.
        match self.store.objects.size(ObjectKind::StorePack, &id) {
            Ok(size) if size == bytes.len() as u64 => self.summary.packs_found += 1,
            _ => {
                self.store.objects.put(ObjectKind::StorePack, &id, &bytes)?;
                crate::failpoint::hit("store-pack");
                self.summary.packs += 1;
                self.summary.bytes_put += bytes.len() as u64;
            }
        }
        index.add_pack(id, &entries);
        self.pending.push(PackRows {
            pack: *id.as_bytes(),
            entries,
        });
        if self.pending.len() >= DELTA_EVERY {
            self.put_delta()?;
        }
        Ok(())
    }

    /// Puts an index delta naming the packs put since the last one.
    fn put_delta(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let delta = IndexDelta {
            host: self.host.clone(),
            time_ns: now_ns(),
            packs: std::mem::take(&mut self.pending),
        };
        let bytes = encode_object(Tag::Index, &delta);
        let id = ObjectId::of(&bytes);
        self.store
            .objects
            .put(ObjectKind::StoreIndex, &id, &bytes)?;
        crate::failpoint::hit("store-index");
        self.store.cache.put(ObjectKind::StoreIndex, &id, &bytes);
        self.deltas.push(*id.as_bytes());
        self.summary.deltas += 1;
        self.summary.bytes_put += bytes.len() as u64;
        Ok(())
    }
}

/// The chunks of a library scanned into a repository, read where the repository records them
/// (the file's own path and offset first, then every recorded location), each verified: what
/// a push reads. A sync's [`LocalSource`] of the library as last scanned, which reads its
/// chunks the same way.
pub struct LibraryChunks<'a>(LocalSource<'a>);

impl<'a> LibraryChunks<'a> {
    /// The chunks of `origin`, as `repo` last scanned it.
    pub fn new(repo: &'a Repository, origin: &'a dyn Origin) -> Result<LibraryChunks<'a>> {
        LocalSource::scanned(repo, origin).map(LibraryChunks)
    }
}

impl ChunkSource for LibraryChunks<'_> {
    fn read_chunk(
        &mut self,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        self.0.read_chunk(path, offset, chunk)
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Pushes snapshot `id` of `repo` into `store`: uploads the chunks, chunk lists and trees the
/// store lacks, reading chunks from `chunks` (the library the snapshot was scanned from, e.g.
/// a [`crate::sync::LocalSource`]), then the snapshot object. See the module documentation
/// for the order of work; an error leaves the store readable, and the next push resumes.
///
/// Refused when the repository's chunker is not the store's. A chunk the library no longer
/// holds (a file changed since the scan) fails the push with [`Error::ChunkUnavailable`]:
/// scan again and push the new snapshot.
///
/// The snapshot joins the library named by its origin's URL; [`push_as`] names another.
pub fn push(
    repo: &Repository,
    store: &Store,
    id: SnapshotId,
    chunks: &mut dyn ChunkSource,
    sink: &dyn Sink,
) -> Result<PushSummary> {
    push_to(repo, store, id, None, false, chunks, sink)
}

/// [`push`] into library `library`; with `None`, into the store's only library, or, in a
/// store that holds none yet, the one named by the last component of the store's URL
/// (`s3://box/music` → `music`): a name every site finds alone, so that sites pushing their
/// copies of one catalogue keep one library. A store of several libraries needs one named.
///
/// With `dry_run`, only what the store lacks is found (the store's small objects are read and
/// cached, nothing is put): the summary counts the chunks, chunk lists and trees a push would
/// upload, with no pack, delta or snapshot.
pub fn push_as(
    repo: &Repository,
    store: &Store,
    id: SnapshotId,
    library: Option<&str>,
    dry_run: bool,
    chunks: &mut dyn ChunkSource,
    sink: &dyn Sink,
) -> Result<PushSummary> {
    let name = match library {
        Some("") => {
            return Err(Error::InvalidInput(format!(
                "{}: a library needs a name that is not empty",
                store.url
            )))
        }
        Some(name) => Library::Named(name.to_string()),
        None => Library::Default,
    };
    push_to(repo, store, id, Some(name), dry_run, chunks, sink)
}

/// Which library a push joins.
enum Library {
    /// This one.
    Named(String),
    /// The store's only one, or for the first push, the last component of the store's URL.
    Default,
}

/// The library a push with `Library::Default` joins, given the store's snapshots.
fn default_library(store: &Store, snapshots: &[(ObjectId, StoreSnapshot)]) -> Result<String> {
    let mut names: Vec<&str> = snapshots.iter().map(|(_, s)| s.library.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    match names.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Ok(store
            .url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or(&store.url)
            .to_string()),
        many => Err(Error::InvalidInput(format!(
            "{}: the store holds several libraries ({}); name one with --library",
            store.url,
            many.join(", ")
        ))),
    }
}

/// [`push`] into the library `library` names (`None`: the snapshot's origin URL).
fn push_to(
    repo: &Repository,
    store: &Store,
    id: SnapshotId,
    library: Option<Library>,
    dry_run: bool,
    chunks: &mut dyn ChunkSource,
    sink: &dyn Sink,
) -> Result<PushSummary> {
    store.check_chunker(repo)?;
    let Some(record) = repo
        .snapshots()?
        .into_iter()
        .find(|(s, _)| *s == id)
        .map(|(_, r)| r)
    else {
        return Err(Error::InvalidInput(format!(
            "{}: no such snapshot (see `musicfs snapshots`)",
            id.short()
        )));
    };
    let snapshots = store.snapshots()?;
    let library = match library {
        None => record.origin.clone(),
        Some(Library::Named(name)) => name,
        Some(Library::Default) => default_library(store, &snapshots)?,
    };
    let mut summary = PushSummary {
        library: library.clone(),
        files: record.files,
        bytes: record.bytes,
        ..PushSummary::default()
    };
    let newest = snapshots
        .into_iter()
        .rev()
        .find(|(_, s)| s.library == library);
    if newest.is_some_and(|(_, s)| s.root == *record.root.as_bytes()) {
        tracing::debug!(
            "{}: the store's newest snapshot of {library} has this tree already",
            store.url,
        );
        return Ok(summary);
    }
    // Blobs only in packs a gc marked count as absent: uploaded again, so that the snapshot
    // never relies on a pack that may go (`gc.rs`).
    let mut index = store.index()?;
    index.drop_marked();

    // What the store lacks, found top-down. Trees come out parents first; they are put
    // children first, so that a reader never meets a tree whose subtree is not indexed.
    let mut trees: Vec<(TreeId, Vec<u8>)> = Vec::new();
    let mut contents: Vec<(ContentId, Vec<u8>)> = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut paths: Vec<Vec<u8>> = Vec::new();
    let mut seen_trees: HashSet<TreeId> = HashSet::new();
    let mut seen_contents: HashSet<ContentId> = HashSet::new();
    let mut seen_chunks: HashSet<[u8; 32]> = HashSet::new();
    let mut stack: Vec<(TreeId, Vec<u8>)> = vec![(record.root, Vec::new())];
    while let Some((tree_id, path)) = stack.pop() {
        if !seen_trees.insert(tree_id) || index.contains(BlobKind::Tree, tree_id.as_bytes()) {
            continue;
        }
        crate::interrupt::check()?;
        let tree = repo.tree(&tree_id)?;
        // Subdirectories are walked in name order after the directory's files (the stack
        // takes them in reverse), so that chunks are read and packed in the library's order.
        let mut subdirs = Vec::new();
        for entry in &tree.entries {
            let mut child = path.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(&entry.name);
            match &entry.node {
                Node::Dir { tree, .. } => subdirs.push((*tree, child)),
                Node::File { content, .. } => {
                    if !seen_contents.insert(*content)
                        || index.contains(BlobKind::Content, content.as_bytes())
                    {
                        continue;
                    }
                    let list = repo.content(content)?;
                    let file = paths.len();
                    paths.push(child.clone());
                    for (offset, chunk) in list.with_offsets() {
                        if !seen_chunks.insert(*chunk.id.as_bytes()) {
                            continue;
                        }
                        if index.contains(BlobKind::Chunk, chunk.id.as_bytes()) {
                            summary.chunks_present += 1;
                            continue;
                        }
                        let kind = list
                            .regions
                            .iter()
                            .find(|r| r.offset <= offset && offset < r.offset + r.len)
                            .map(|r| r.kind);
                        wanted.push(Wanted {
                            file,
                            offset,
                            chunk,
                            compress: kind.is_some_and(|k| keeps_history(list.format, k)),
                        });
                    }
                    contents.push((*content, list.encode()));
                }
                Node::Symlink { .. } => {}
            }
        }
        stack.extend(subdirs.into_iter().rev());
        trees.push((tree_id, tree.encode()));
    }

    if dry_run {
        summary.chunks_uploaded = wanted.len() as u64;
        summary.chunk_bytes_uploaded = wanted.iter().map(|w| u64::from(w.chunk.len)).sum();
        summary.contents_uploaded = contents.len() as u64;
        summary.trees_uploaded = trees.len() as u64;
        return Ok(summary);
    }
    let mut up = Uploader {
        store,
        host: host_name(),
        pending: Vec::new(),
        deltas: Vec::new(),
        summary,
    };
    let result = upload(
        &mut up,
        &mut index,
        (&wanted, &paths),
        &contents,
        &trees,
        chunks,
        sink,
    );
    // Whatever was put is indexed, even when the push failed: the next one will not put it
    // again.
    let flushed = up.put_delta();
    result?;
    flushed?;

    let snapshot = StoreSnapshot {
        library: library.clone(),
        host: up.host.clone(),
        time_ns: record.time_ns,
        root: *record.root.as_bytes(),
        files: record.files,
        bytes: record.bytes,
        deltas: up.deltas.clone(),
    };
    let bytes = encode_object(Tag::Snapshot, &snapshot);
    let snap_id = ObjectId::of(&bytes);
    store
        .objects
        .put(ObjectKind::StoreSnapshot, &snap_id, &bytes)?;
    crate::failpoint::hit("store-snapshot");
    store.cache.put(ObjectKind::StoreSnapshot, &snap_id, &bytes);
    up.summary.bytes_put += bytes.len() as u64;
    up.summary.snapshot = Some(snap_id.hex());
    tracing::debug!(
        "pushed {} to {}: {} chunks ({} bytes) uploaded, {} present, {} packs, {} bytes put",
        library,
        store.url,
        up.summary.chunks_uploaded,
        up.summary.chunk_bytes_uploaded,
        up.summary.chunks_present,
        up.summary.packs,
        up.summary.bytes_put
    );
    Ok(up.summary)
}

/// Steps 3 and 4 of the module documentation.
fn upload(
    up: &mut Uploader<'_>,
    index: &mut MergedIndex,
    (wanted, paths): (&[Wanted], &[Vec<u8>]),
    contents: &[(ContentId, Vec<u8>)],
    trees: &[(TreeId, Vec<u8>)],
    chunks: &mut dyn ChunkSource,
    sink: &dyn Sink,
) -> Result<()> {
    let pack_size = up.store.config.pack_size as usize;
    let total: u64 = wanted.iter().map(|w| u64::from(w.chunk.len)).sum();
    sink.phase("push", 0, total);
    let mut data = PackBuilder::default();
    let mut small = PackBuilder::default();
    for w in wanted {
        crate::interrupt::check()?;
        let path = paths.get(w.file).map(Vec::as_slice).unwrap_or_default();
        let Some(found) = chunks.read_chunk(path, w.offset, w.chunk)? else {
            return Err(Error::ChunkUnavailable {
                path: std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned()),
                chunk: w.chunk.id.short(),
            });
        };
        let found = found.into_canonical();
        let builder = if w.compress { &mut small } else { &mut data };
        builder.add(
            BlobKind::Chunk,
            *w.chunk.id.as_bytes(),
            found.bytes(),
            w.compress,
        );
        up.summary.chunks_uploaded += 1;
        up.summary.chunk_bytes_uploaded += found.len() as u64;
        sink.advance(found.len() as u64);
        if builder.len() >= pack_size {
            up.put_pack(builder, index)?;
        }
    }
    up.put_pack(&mut data, index)?;
    up.put_pack(&mut small, index)?;
    // The chunk lists and trees go in after every chunk they name is in a pack, in packs of
    // their own (a pull reads them first, without touching the chunks), in the last delta.
    let mut meta = PackBuilder::default();
    for (id, bytes) in contents {
        meta.add(BlobKind::Content, *id.as_bytes(), bytes, true);
        up.summary.contents_uploaded += 1;
        if meta.len() >= pack_size {
            up.put_pack(&mut meta, index)?;
        }
    }
    for (id, bytes) in trees.iter().rev() {
        meta.add(BlobKind::Tree, *id.as_bytes(), bytes, true);
        up.summary.trees_uploaded += 1;
        if meta.len() >= pack_size {
            up.put_pack(&mut meta, index)?;
        }
    }
    up.put_pack(&mut meta, index)
}
