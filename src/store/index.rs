//! The store's merged index, and the local cache that makes reading it cheap.
//!
//! Readers merge every index delta of the store. Deltas, snapshots and the config are
//! immutable and named by their hash, so the local repository keeps a copy of each one it has
//! fetched, under `<repo>/stores/<16 hex of BLAKE3(store URL)>/` (a [`LocalObjects`] of the
//! same kinds and ids, beside a `url` file naming the store). A pull or push then lists the
//! store's deltas and snapshots (two requests) and fetches only the objects it has not seen;
//! everything it has seen is read from disk and checked against its name again. The cache is
//! no format change of the repository (the index, `index.redb`, is untouched); deleting it
//! costs one full read of the store's index and snapshots, nothing more.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::format::{
    decode_object, object_id, BlobKind, GcMark, IndexDelta, PackEntry, StoreSnapshot, Tag,
};
use super::Store;
use crate::error::{Error, Result};
use crate::repo::{LocalObjects, ObjectId, ObjectKind, ObjectStore};

/// Where one blob lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack's position in [`MergedIndex::packs`].
    pub pack: u32,
    /// Offset of its stored bytes in the pack.
    pub offset: u32,
    /// Stored length.
    pub stored: u32,
    /// Length once decompressed.
    pub raw: u32,
    /// Whether the stored bytes are a zstd frame.
    pub compressed: bool,
}

/// Every index delta of a store, merged: where each blob is.
#[derive(Debug, Default)]
pub struct MergedIndex {
    /// The packs named by the deltas.
    pub packs: Vec<ObjectId>,
    pack_numbers: HashMap<ObjectId, u32>,
    blobs: HashMap<(BlobKind, [u8; 32]), BlobLocation>,
    /// The deltas merged.
    merged: HashSet<ObjectId>,
    /// Packs a gc mark names: a copy of a blob elsewhere is preferred to one in them.
    marked: HashSet<ObjectId>,
}

impl MergedIndex {
    /// Where blob `id` of `kind` is, when some pack holds it.
    pub fn get(&self, kind: BlobKind, id: &[u8; 32]) -> Option<BlobLocation> {
        self.blobs.get(&(kind, *id)).copied()
    }

    /// Whether some pack holds blob `id` of `kind`.
    pub fn contains(&self, kind: BlobKind, id: &[u8; 32]) -> bool {
        self.blobs.contains_key(&(kind, *id))
    }

    /// The pack at position `n`.
    pub fn pack(&self, n: u32) -> Option<&ObjectId> {
        self.packs.get(n as usize)
    }

    /// Whether delta `id` is merged.
    pub fn has_delta(&self, id: &ObjectId) -> bool {
        self.merged.contains(id)
    }

    /// Number of blobs known.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is known.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Merges one delta. A blob already known keeps its first location: any copy will do,
    /// every copy having the same bytes.
    pub fn merge(&mut self, id: ObjectId, delta: &IndexDelta) {
        if !self.merged.insert(id) {
            return;
        }
        for rows in &delta.packs {
            self.add_pack(object_id(&rows.pack), &rows.entries);
        }
    }

    /// Adds the rows of one pack. A blob already known in an unmarked pack keeps its
    /// location; one known only in a marked pack moves to this one when this one is not.
    pub fn add_pack(&mut self, pack: ObjectId, entries: &[PackEntry]) {
        let n = *self.pack_numbers.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        let unmarked = !self.marked.contains(&pack);
        for e in entries {
            let location = BlobLocation {
                pack: n,
                offset: e.offset,
                stored: e.stored,
                raw: e.raw,
                compressed: e.compressed,
            };
            match self.blobs.entry((e.kind, e.id)) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(location);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let held = self.packs[o.get().pack as usize];
                    if unmarked && self.marked.contains(&held) {
                        o.insert(location);
                    }
                }
            }
        }
    }

    /// Takes the packs gc marks name into account: call before merging anything.
    pub fn set_marked(&mut self, packs: HashSet<ObjectId>) {
        self.marked = packs;
    }

    /// Whether pack `id` is named by a gc mark.
    pub fn is_marked(&self, id: &ObjectId) -> bool {
        self.marked.contains(id)
    }

    /// Forgets every blob that only marked packs hold: what a push does, so that it uploads
    /// them again rather than come to rely on a pack a gc is about to remove.
    pub fn drop_marked(&mut self) {
        let (packs, marked) = (&self.packs, &self.marked);
        self.blobs
            .retain(|_, l| !marked.contains(&packs[l.pack as usize]));
    }
}

/// The local copies of a store's immutable small objects (see the module documentation).
pub struct Cache {
    objects: LocalObjects,
    dir: PathBuf,
}

impl Cache {
    /// The cache of store `url` in the repository at `repo_root`.
    pub fn new(repo_root: &std::path::Path, url: &str) -> Cache {
        let hash = blake3::hash(url.as_bytes()).to_hex();
        let dir = repo_root.join("stores").join(&hash.as_str()[..16]);
        Cache {
            objects: LocalObjects::new(&dir),
            dir,
        }
    }

    /// The cache's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The cached copy of object `id` of `kind`, when there is one and it is whole; a damaged
    /// copy is removed (and fetched again by the caller).
    pub fn get(&self, kind: ObjectKind, id: &ObjectId) -> Option<Vec<u8>> {
        let size = self.objects.size(kind, id).ok()?;
        let bytes = self.objects.read(kind, id, 0, size as usize).ok()?;
        if ObjectId::of(&bytes) == *id {
            return Some(bytes);
        }
        tracing::warn!(
            "{}: damaged copy of {} {}, fetched again",
            self.dir.display(),
            kind.dir(),
            id.hex()
        );
        let _ = self.objects.remove(kind, id);
        None
    }

    /// Keeps a copy of object `id` of `kind`. The cache only saves requests: a failure to
    /// write it is logged, not an error.
    pub fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) {
        if let Err(e) = self.objects.put(kind, id, bytes) {
            tracing::warn!("store cache: {e}");
        }
    }

    /// The ids of the cached objects of `kind`.
    pub fn list(&self, kind: ObjectKind) -> Vec<ObjectId> {
        self.objects.list(kind).unwrap_or_default()
    }

    /// Writes the store's URL beside the cache, for whoever looks at the directory.
    pub fn name(&self, url: &str) {
        let _ = std::fs::create_dir_all(&self.dir);
        let _ = std::fs::write(self.dir.join("url"), format!("{url}\n"));
    }
}

impl Store {
    /// Object `id` of `kind`, from the cache or else fetched (two requests: its size, its
    /// bytes), checked against its id, and cached.
    pub(super) fn fetch_small(&self, kind: ObjectKind, id: &ObjectId) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cache.get(kind, id) {
            return Ok(bytes);
        }
        let size = self.objects.size(kind, id)?;
        if size > super::format::MAX_DECODED as u64 {
            return Err(self.damaged(format!("{} {} is {size} bytes", kind.dir(), id.hex())));
        }
        let bytes = self.objects.read(kind, id, 0, size as usize)?;
        if ObjectId::of(&bytes) != *id {
            return Err(self.damaged(format!(
                "{} {} does not match its name",
                kind.dir(),
                id.hex()
            )));
        }
        self.cache.put(kind, id, &bytes);
        Ok(bytes)
    }

    /// Lists the store's index deltas and merges those not merged yet into `index`.
    pub fn refresh_index(&self, index: &mut MergedIndex) -> Result<()> {
        let listed = self.objects.list(ObjectKind::StoreIndex)?;
        self.merge_deltas(index, &listed)
    }

    /// Merges deltas `ids` (those not merged yet) into `index`.
    pub(super) fn merge_deltas(&self, index: &mut MergedIndex, ids: &[ObjectId]) -> Result<()> {
        for id in ids {
            if index.has_delta(id) {
                continue;
            }
            let bytes = self.fetch_small(ObjectKind::StoreIndex, id)?;
            let delta: IndexDelta = decode_object(Tag::Index, &bytes)
                .map_err(|why| self.damaged(format!("index delta {}: {why}", id.hex())))?;
            index.merge(*id, &delta);
        }
        Ok(())
    }

    /// The store's merged index: every delta it lists, with the packs its gc marks name
    /// known as such (a copy elsewhere preferred).
    pub fn index(&self) -> Result<MergedIndex> {
        let mut index = MergedIndex::default();
        index.set_marked(self.marked_packs()?);
        self.refresh_index(&mut index)?;
        Ok(index)
    }

    /// Merges the deltas `named` (a snapshot's) that `index` lacks because the listing did
    /// not show them: those the store still has. A named delta the store no longer has was
    /// superseded by a gc's sweep (its surviving rows are in a delta the listing shows).
    pub(super) fn merge_named(&self, index: &mut MergedIndex, named: &[ObjectId]) -> Result<()> {
        for id in named {
            if index.has_delta(id) {
                continue;
            }
            match self.objects.size(ObjectKind::StoreIndex, id) {
                Ok(_) => self.merge_deltas(index, std::slice::from_ref(id))?,
                Err(Error::Io { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every gc mark of the store (one listing; marks not cached are fetched).
    pub fn marks(&self) -> Result<Vec<(ObjectId, GcMark)>> {
        let listed = self.objects.list(ObjectKind::StoreMark)?;
        let mut out = Vec::with_capacity(listed.len());
        for id in listed {
            let bytes = match self.fetch_small(ObjectKind::StoreMark, &id) {
                Ok(bytes) => bytes,
                // Removed by a sweep since the listing: it no longer counts.
                Err(Error::Io { ref source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let mark: GcMark = decode_object(Tag::Mark, &bytes)
                .map_err(|why| self.damaged(format!("mark {}: {why}", id.hex())))?;
            out.push((id, mark));
        }
        out.sort_by(|(a, x), (b, y)| x.time_ns.cmp(&y.time_ns).then(a.cmp(b)));
        Ok(out)
    }

    /// The packs every gc mark names.
    pub fn marked_packs(&self) -> Result<HashSet<ObjectId>> {
        Ok(self
            .marks()?
            .iter()
            .flat_map(|(_, m)| m.packs.iter().map(object_id))
            .collect())
    }

    /// Every snapshot in the store, oldest first (by time, then id).
    pub fn snapshots(&self) -> Result<Vec<(ObjectId, StoreSnapshot)>> {
        let listed = self.objects.list(ObjectKind::StoreSnapshot)?;
        let mut out = Vec::with_capacity(listed.len());
        for id in listed {
            let bytes = self.fetch_small(ObjectKind::StoreSnapshot, &id)?;
            let snap: StoreSnapshot = decode_object(Tag::Snapshot, &bytes)
                .map_err(|why| self.damaged(format!("snapshot {}: {why}", id.hex())))?;
            out.push((id, snap));
        }
        out.sort_by(|(a, x), (b, y)| x.time_ns.cmp(&y.time_ns).then(a.cmp(b)));
        Ok(out)
    }

    /// The error for an object of the store that is not what its name says.
    pub(super) fn damaged(&self, what: String) -> Error {
        Error::Protocol {
            origin: self.url.clone(),
            message: format!("damaged store: {what}"),
        }
    }
}
