//! Reading a snapshot's file through the mount: every byte handed out is proven first.
//!
//! A file's content is its `ChunkList`. For a read, the chunks covering the range are taken
//! from the bounded cache or read from a file on disk, and each is hashed against its
//! `ChunkId` (as a [`VerifiedChunk`]) before any of its bytes are returned. The first place
//! tried is the file's own path in its origin (usually still holding the same content, so one
//! `read_exact_at` covers a whole kernel read); a chunk that does not match there is looked for
//! by `locate`: at every location the repository records for it, in every origin, then in the
//! history the repository keeps.
//!
//! Origins are read through the registry, whatever their transport: each origin the
//! repository records (the view lists them by URL) is opened on first need and kept
//! (`locate::OriginPool`; one that cannot be opened is left alone for a minute), and files are
//! read with `Origin::open` and `OriginFile::read_exact_at`. A local directory and an SFTP
//! server serve chunks alike.
//!
//! Contents with a transformed region (Ogg) need more, because their chunks are not plain byte
//! ranges of the file: audio pages are chunked with their sequence numbers and CRCs zeroed, and
//! header pages are chunked as headers then bodies. Such a file is served from a live file
//! whose whole-file hash (`ChunkList::file_hash`) was checked once for its current
//! `EntryStat` (compared whole, whatever the transport puts in it); each chunk read from it is
//! still checked: audio pages by hashing a normalized copy and returning the real bytes
//! ([`VerifiedChunk::check_stored_pages`]), a header region by normalizing it, hashing its
//! chunks and checking that it rebuilds to the bytes read. This module never writes anywhere.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::cache::BoundedCache;
use super::view::View;
use crate::chunk::{oggpages, VerifiedChunk};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, FileHash};
use crate::locate::{open_inside, LastOpen, Locator, OriginPool, Site};
use crate::media::Transform;
use crate::origin::{EntryStat, OpenOptions, OriginFile};
use crate::snapshot::{ChunkList, ChunkRef};

/// Longest run of chunks read with one `pread`.
const MAX_SPAN: u64 = 8 << 20;

/// Contents whose chunk lists are kept decoded.
const PLAN_CACHE: usize = 4096;

/// What the cache holds: verified real bytes of the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A chunk whose real bytes are its bytes (any content holding it can share them).
    Chunk([u8; 32]),
    /// The real bytes of chunk `n` of a content, an Ogg audio-pages chunk.
    Pages([u8; 32], u32),
    /// The real bytes of region `n` of a content, an Ogg header region.
    Region([u8; 32], u32),
}

/// A content, ready for reading: its chunk list and each chunk's offset.
struct Plan {
    id: ContentId,
    list: ChunkList,
    /// `starts[i]` is the offset of chunk `i`; the last element is the size.
    starts: Vec<u64>,
}

impl Plan {
    fn size(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// The index of the chunk holding byte `offset` (< size).
    fn chunk_at(&self, offset: u64) -> usize {
        self.starts[1..].partition_point(|&s| s <= offset)
    }

    /// The region holding byte `offset`, with its index.
    fn region_at(&self, offset: u64) -> Option<(usize, &crate::media::Region)> {
        let i = self
            .list
            .regions
            .partition_point(|r| r.offset <= offset)
            .checked_sub(1)?;
        let r = &self.list.regions[i];
        (offset < r.offset + r.len).then_some((i, r))
    }

    fn transform_at(&self, offset: u64) -> Option<(usize, Transform)> {
        self.region_at(offset)
            .and_then(|(i, r)| r.transform.map(|t| (i, t)))
    }
}

/// An opened file, shared by the reads of one open snapshot file.
type SharedFile = Arc<Mutex<Box<dyn OriginFile>>>;

/// A file chunks are read from first, opened through its origin. Reads of one file take
/// turns only for the read itself; hashing happens outside the lock.
struct Source {
    /// The URL of the origin the file is in.
    origin: String,
    file: SharedFile,
    /// The file's `stat` when it was opened (or proven by its whole-file hash).
    stat: EntryStat,
}

/// A snapshot file opened through the mount.
pub struct OpenFile {
    plan: Arc<Plan>,
    /// The URL of the origin whose snapshot holds the file, as the repository records it.
    origin: String,
    /// The file's path in that origin.
    path: Vec<u8>,
    /// The file's path as seen in the mount, which every error about it names.
    shown: PathBuf,
    /// Where chunks are read first; `None` until the first read.
    source: Mutex<Option<Option<Source>>>,
}

impl OpenFile {
    /// The content's size.
    pub fn size(&self) -> u64 {
        self.plan.size()
    }
}

/// Which file's whole-file hash matched which content: origin URL, path, file hash.
type ProvenKey = (String, Vec<u8>, [u8; 32]);

/// Reads files' bytes for the mount, proving each against its content's hashes.
pub struct Reader {
    view: Arc<View>,
    /// Every origin of the repository, opened through the registry on first need.
    origins: OriginPool,
    cache: BoundedCache<Key>,
    plans: Mutex<HashMap<ContentId, Arc<Plan>>>,
    /// Files whose whole-file hash matched a content, with their `stat` then: a file whose
    /// `stat` is equal (the whole `EntryStat`) is taken as proven again.
    verified: Mutex<HashMap<ProvenKey, EntryStat>>,
}

fn eio(path: &Path, what: &str) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(what.to_string()),
    }
}

impl Reader {
    /// A reader whose chunk cache holds at most `cache_bytes`.
    pub fn new(view: Arc<View>, cache_bytes: usize, origins: OpenOptions) -> Reader {
        Reader {
            view,
            origins: OriginPool::new(origins),
            cache: BoundedCache::new(cache_bytes),
            plans: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// A search of every origin the view knows, in its order, then of the repository's
    /// history; origins are opened by the pool only when a location in them is read.
    fn locator<'s>(&'s self, origins: &'s [super::view::OriginDir]) -> Result<Locator<'s>> {
        let repo = self.view.repo();
        let mut sites = Vec::with_capacity(origins.len());
        for origin in origins {
            let id = repo.find_origin(&origin.url)?;
            sites.push(Site::pooled(&origin.url, id, &self.origins));
        }
        Ok(Locator::new(repo, sites, true))
    }

    fn plan(&self, id: &ContentId) -> Result<Arc<Plan>> {
        if let Some(p) = self
            .plans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Ok(p.clone());
        }
        // `content` checks the list against its id.
        let list = self.view.repo().content(id)?;
        let mut starts = Vec::with_capacity(list.chunks.len() + 1);
        starts.extend(list.with_offsets().map(|(o, _)| o));
        starts.push(list.size());
        let plan = Arc::new(Plan {
            id: *id,
            list,
            starts,
        });
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if plans.len() >= PLAN_CACHE {
            plans.clear();
        }
        plans.insert(*id, plan.clone());
        Ok(plan)
    }

    /// Opens the file of `content` found at `path` in the origin named `origin`; `shown` is
    /// its path as seen in the mount, named by every error about it.
    pub fn open(
        &self,
        content: &ContentId,
        origin: &str,
        path: &[u8],
        shown: PathBuf,
    ) -> Result<OpenFile> {
        Ok(OpenFile {
            plan: self.plan(content)?,
            origin: origin.to_string(),
            path: path.to_vec(),
            shown,
            source: Mutex::new(None),
        })
    }

    /// Bytes `[offset, offset + size)` of an open file (fewer at its end), every one proven
    /// against the content's hashes.
    pub fn read(&self, file: &OpenFile, offset: u64, size: u32) -> Result<Vec<u8>> {
        let plan = &file.plan;
        let end = plan.size().min(offset.saturating_add(u64::from(size)));
        if plan.list.file_hash.is_some() && self.source(file)?.is_none() {
            // No file on disk holds this content any more (an old snapshot of a retagged Ogg
            // file): rebuild it whole from its chunks, proven by its whole-file hash.
            let whole = self.assembled(file)?;
            let from = offset.min(whole.len() as u64) as usize;
            let to = end.max(offset).min(whole.len() as u64) as usize;
            return Ok(whole[from..to].to_vec());
        }
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut pos = offset;
        while pos < end {
            let c = plan.chunk_at(pos);
            match plan.transform_at(plan.starts[c]) {
                Some((r, Transform::OggHeaderPages { first_seq })) => {
                    let region = &plan.list.regions[r];
                    let bytes = self.header_region(file, r, first_seq)?;
                    let stop = end.min(region.offset + region.len);
                    let from = (pos - region.offset) as usize;
                    let to = (stop - region.offset) as usize;
                    out.extend_from_slice(&bytes[from..to]);
                    pos = stop;
                }
                _ => pos = self.read_chunks(file, c, pos, end, &mut out)?,
            }
        }
        Ok(out)
    }

    /// Appends the bytes from `pos` to `end` (or to the end of a run of plain or audio-page
    /// chunks starting with chunk `first`) to `out`; returns where it stopped.
    fn read_chunks(
        &self,
        file: &OpenFile,
        first: usize,
        pos: u64,
        end: u64,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        let plan = &file.plan;
        let key = |c: usize| -> Option<Key> {
            match plan.transform_at(plan.starts[c]) {
                None => Some(Key::Chunk(*plan.list.chunks[c].id.as_bytes())),
                Some((_, Transform::OggPages { .. })) => {
                    Some(Key::Pages(*plan.id.as_bytes(), c as u32))
                }
                Some((_, Transform::OggHeaderPages { .. })) => None,
            }
        };
        let Some(first_key) = key(first) else {
            return Err(eio(&file.shown, "internal: header chunk in a plain run"));
        };
        let take = |bytes: &[u8], start: u64, out: &mut Vec<u8>| -> u64 {
            let from = (pos.max(start) - start) as usize;
            let stop = end.min(start + bytes.len() as u64);
            let to = (stop - start) as usize;
            out.extend_from_slice(&bytes[from..to]);
            stop
        };
        if let Some(bytes) = self.cache.get(&first_key) {
            return Ok(take(&bytes, plan.starts[first], out));
        }
        // A run of uncached chunks, read with one pread.
        let mut last = first + 1;
        while last < plan.list.chunks.len()
            && plan.starts[last] < end
            && plan.starts[last + 1] - plan.starts[first] <= MAX_SPAN
        {
            match key(last) {
                Some(k) if self.cache.get(&k).is_none() => last += 1,
                _ => break,
            }
        }
        let span_start = plan.starts[first];
        let mut span = vec![0u8; (plan.starts[last] - span_start) as usize];
        let read_ok = self.read_source(file, &mut span, span_start)?;
        let mut stop = pos;
        for c in first..last {
            let start = plan.starts[c];
            let chunk = plan.list.chunks[c];
            let at = (start - span_start) as usize;
            let bytes = &span[at..at + chunk.len as usize];
            let k =
                key(c).ok_or_else(|| eio(&file.shown, "internal: header chunk in a plain run"))?;
            // Audio pages are proven by a normalized copy, the real bytes kept.
            let here = match k {
                _ if !read_ok => None,
                Key::Pages(..) => VerifiedChunk::check_stored_pages(chunk.id, bytes),
                _ => VerifiedChunk::check(chunk.id, bytes),
            };
            let fetched;
            let bytes: &[u8] = match (here, &k) {
                (Some(found), _) => found.into_bytes(),
                (None, Key::Chunk(_)) => {
                    fetched = self.fetch_elsewhere(file, chunk)?;
                    fetched.bytes()
                }
                (None, _) => return Err(self.unavailable(file, chunk.id)),
            };
            stop = take(bytes, start, out);
            // Keep what this read did not hand out whole: the next read needs the rest.
            if start < pos || start + u64::from(chunk.len) > end {
                self.cache.insert(k, Arc::from(bytes));
            }
        }
        Ok(stop)
    }

    fn unavailable(&self, file: &OpenFile, id: ChunkId) -> Error {
        Error::ChunkUnavailable {
            path: file.shown.clone(),
            chunk: id.short(),
        }
    }

    /// Reads `buf.len()` bytes at `offset` from the open file's source; `Ok(false)` when
    /// there is no source or the read failed (the chunks are then looked for elsewhere).
    fn read_source(&self, file: &OpenFile, buf: &mut [u8], offset: u64) -> Result<bool> {
        let Some((origin, f)) = self.source(file)? else {
            return Ok(false);
        };
        let read = f
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_exact_at(buf, offset);
        match read {
            Ok(()) => Ok(true),
            Err(e) => {
                // A file whose connection broke is opened again by the next read.
                if crate::error::io_kind(&e) == crate::error::ErrorKind::Transient {
                    *file.source.lock().unwrap_or_else(PoisonError::into_inner) = None;
                    self.origins.forget(&origin);
                }
                Ok(false)
            }
        }
    }

    /// The file chunks are read from first: the file's own path for plain contents; for
    /// transformed ones, a file proven by its whole-file hash and unchanged since.
    fn source(&self, file: &OpenFile) -> Result<Option<(String, SharedFile)>> {
        let mut slot = file.source.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(want) = file.plan.list.file_hash else {
            if slot.is_none() {
                let opened = self.open_own(file);
                // A transport failure is not remembered: the next read tries again.
                let Ok(opened) = opened else {
                    return Ok(None);
                };
                *slot = Some(opened);
            }
            return Ok(slot
                .as_ref()
                .and_then(|s| s.as_ref().map(|s| (s.origin.clone(), s.file.clone()))));
        };
        if let Some(Some(s)) = slot.as_ref() {
            let now = s
                .file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .stat()
                .ok();
            if now.as_ref() == Some(&s.stat) {
                return Ok(Some((s.origin.clone(), s.file.clone())));
            }
        }
        let found = self.find_verified(file, want)?;
        let file_out = found.as_ref().map(|s| (s.origin.clone(), s.file.clone()));
        *slot = Some(found);
        Ok(file_out)
    }

    /// The file's own path in its origin, opened; `Ok(None)` when it is not there. An
    /// origin whose connection broke is opened again, once.
    fn open_own(&self, file: &OpenFile) -> Result<Option<Source>> {
        let open = || -> Result<Option<Box<dyn OriginFile>>> {
            match self.origins.get(&file.origin) {
                Some(origin) => open_inside(&*origin, &file.path),
                None => Ok(None),
            }
        };
        let opened = match open() {
            Err(e) if e.is_transient() => {
                self.origins.forget(&file.origin);
                open()
            }
            other => other,
        };
        let Some(mut f) = opened? else {
            return Ok(None);
        };
        let Ok(stat) = f.stat() else {
            return Ok(None);
        };
        Ok(Some(Source {
            origin: file.origin.clone(),
            file: Arc::new(Mutex::new(f)),
            stat,
        }))
    }

    /// A file holding exactly this content, proven by its whole-file hash: the file's own
    /// path, else any file where the repository records the content's first chunk, in any
    /// origin.
    fn find_verified(&self, file: &OpenFile, want: FileHash) -> Result<Option<Source>> {
        let origins = self.view.origins();
        let locator = self.locator(&origins)?;
        let mut candidates: Vec<(usize, Vec<u8>)> = Vec::new();
        if let Some(own) = locator.sites().iter().position(|s| s.url() == file.origin) {
            candidates.push((own, file.path.clone()));
        }
        if let Some(first) = file.plan.list.chunks.first() {
            for (site, path, _) in locator.locations(first)? {
                if !candidates.iter().any(|(s, p)| *s == site && *p == path) {
                    candidates.push((site, path));
                }
            }
        }
        for (site, path) in candidates {
            // A transport failure here only means this candidate is not used.
            let Ok(Some(mut f)) = locator.open(site, &path) else {
                continue;
            };
            let Ok(stat) = f.stat() else { continue };
            if stat.size != file.plan.size() {
                continue;
            }
            let token = (
                locator.sites()[site].url().to_string(),
                path,
                *want.as_bytes(),
            );
            let known = self
                .verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&token)
                == Some(&stat);
            if known || whole_file_hash(f.as_mut(), stat.size).is_ok_and(|h| h == want) {
                let origin = token.0.clone();
                self.verified
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(token, stat.clone());
                return Ok(Some(Source {
                    origin,
                    file: Arc::new(Mutex::new(f)),
                    stat,
                }));
            }
        }
        Ok(None)
    }

    /// A plain chunk from any recorded location in any origin, or from the history the
    /// repository keeps, verified; kept in the cache.
    fn fetch_elsewhere(&self, file: &OpenFile, chunk: ChunkRef) -> Result<VerifiedChunk> {
        let found = self.chunk_anywhere(file, chunk)?;
        self.cache
            .insert(Key::Chunk(*chunk.id.as_bytes()), Arc::from(found.bytes()));
        Ok(found)
    }

    /// The chunk as its id names it (normalized, for Ogg pages) from any recorded location in
    /// any origin, else from the history the repository keeps (`locate`).
    fn chunk_anywhere(&self, file: &OpenFile, chunk: ChunkRef) -> Result<VerifiedChunk> {
        let origins = self.view.origins();
        let locator = self.locator(&origins)?;
        match locator.find(&mut LastOpen::default(), None, chunk)? {
            Some(found) => Ok(found),
            None => Err(self.unavailable(file, chunk.id)),
        }
    }

    /// The whole of a transformed content, rebuilt from its chunks wherever they are and
    /// proven by its whole-file hash.
    fn assembled(&self, file: &OpenFile) -> Result<Arc<[u8]>> {
        let plan = &file.plan;
        let key = Key::Region(*plan.id.as_bytes(), u32::MAX);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let mut whole = Vec::with_capacity(plan.size() as usize);
        let mut assembler = crate::chunk::Assembler::new(&plan.list);
        for (offset, chunk) in plan.list.with_offsets() {
            let found = self.chunk_anywhere(file, chunk)?;
            assembler
                .chunk(offset, found, &mut |b| {
                    whole.extend_from_slice(b);
                    Ok(())
                })
                .map_err(|_| self.unavailable(file, chunk.id))?;
        }
        if assembler.finish().is_err() || whole.len() as u64 != plan.size() {
            return Err(eio(&file.shown, "the rebuilt file does not match its hash"));
        }
        let bytes: Arc<[u8]> = Arc::from(whole);
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }

    /// The real bytes of Ogg header region `r`, proven: normalized, they are the region's
    /// chunks, and those chunks rebuild exactly the bytes read.
    fn header_region(&self, file: &OpenFile, r: usize, first_seq: u32) -> Result<Arc<[u8]>> {
        let plan = &file.plan;
        let key = Key::Region(*plan.id.as_bytes(), r as u32);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let region = &plan.list.regions[r];
        let bad = || self.unavailable(file, plan.list.chunks[plan.chunk_at(region.offset)].id);
        if region.len > oggpages::MAX_HEADER_REGION {
            return Err(bad());
        }
        let mut raw = vec![0u8; region.len as usize];
        if !self.read_source(file, &mut raw, region.offset)? {
            return Err(bad());
        }
        let pages = oggpages::normalize_headers(&raw, first_seq).ok_or_else(bad)?;
        if pages.bytes.len() != raw.len() {
            return Err(bad());
        }
        let mut c = plan.chunk_at(region.offset);
        while c < plan.list.chunks.len() && plan.starts[c] < region.offset + region.len {
            let from = (plan.starts[c] - region.offset) as usize;
            let to = (plan.starts[c + 1] - region.offset) as usize;
            if to > pages.bytes.len()
                || VerifiedChunk::check(plan.list.chunks[c].id, &pages.bytes[from..to]).is_none()
            {
                return Err(bad());
            }
            c += 1;
        }
        if oggpages::denormalize_headers(&pages.bytes, first_seq).as_deref() != Some(&raw[..]) {
            return Err(bad());
        }
        let bytes: Arc<[u8]> = Arc::from(raw);
        self.cache.insert(key, bytes.clone());
        Ok(bytes)
    }
}

/// The whole-file hash of the first `size` bytes of `f`, read in pieces.
fn whole_file_hash(f: &mut dyn OriginFile, size: u64) -> std::io::Result<FileHash> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], at)?;
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(FileHash::of_hasher(&hasher))
}
