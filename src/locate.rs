//! Where a chunk's bytes are, and reading them proven: the one chunk-read path that a sync's
//! writes, a source answering a remote destination, and the mount all use.
//!
//! A search for a chunk tries, in order:
//! 1. a hint: the place the caller expects it (for a sync, the same offset of the same path in
//!    the source; for the destination, a file this run has just written);
//! 2. every location the repository records for the chunk, origin by origin;
//! 3. the history the repository keeps (tag, padding and structure chunks of scanned files),
//!    when the caller asks for it.
//!
//! Every candidate is read through its origin ([`Origin::open`], then
//! [`OriginFile::read_exact_at`]) and taken only as a [`VerifiedChunk`], in its canonical
//! form (Ogg pages normalized; a chunk of an Ogg header region, which is no byte range of its
//! file, rebuilt from the region). A path from the repository that could leave its origin
//! (`..`, `.`, empty components, a leading `/`, NUL) is never opened: transports differ in
//! what they refuse, so this module refuses them all itself.
//!
//! Origins come either opened by the caller ([`Site::given`]) or by their URL through the
//! registry, opened on first need and kept ([`OriginPool`]), so the mount can read from any
//! origin the repository knows. A failure to read is "not here" unless it is a transport
//! failure ([`ErrorKind::Transient`], after the origin's own retries): that is not "chunk
//! absent", and it is returned as an error.
//!
//! Never does: write, to an origin or to the repository.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::chunk::{read_transformed, VerifiedChunk};
use crate::error::{io_kind, Error, ErrorKind, Result};
use crate::origin::{OpenOptions, Origin, OriginFile, OriginSpec};
use crate::relpath::RelPath;
use crate::repo::{OriginId, Repository};
use crate::snapshot::ChunkRef;

/// How long an origin that could not be opened is left alone before it is tried again.
pub const RETRY_UNREACHABLE: Duration = Duration::from_secs(60);

/// Whether `rel` is a path inside an origin: not empty, relative, and made of names only
/// (no `.`, `..` or empty components, no NUL).
pub fn is_inside(rel: &[u8]) -> bool {
    RelPath::new(rel).is_ok_and(|p| !p.is_root())
}

/// Opens the regular file `rel` of `origin` for reading. `Ok(None)` when the file cannot be
/// read there (missing, refused, a path that could leave the origin: never opened); an error
/// only for a transport failure ([`ErrorKind::Transient`]).
pub fn open_inside(origin: &dyn Origin, rel: &[u8]) -> Result<Option<Box<dyn OriginFile>>> {
    if !is_inside(rel) {
        return Ok(None);
    }
    match origin.open(rel) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_transient() => Err(e),
        Err(_) => Ok(None),
    }
}

/// Origins opened by URL through the registry ([`OriginSpec::parse`], then
/// [`OriginSpec::open`]) on first need and kept for later reads. An origin that cannot be
/// opened is left alone for [`RETRY_UNREACHABLE`] before it is tried again, so an unreachable
/// host costs one attempt a minute, not one per read; the first failure of each is logged as
/// a warning. An origin whose reads fail for a transport reason (a dropped connection that
/// its retries did not bring back) is forgotten by the [`Locator`] that met the failure, and
/// opened again on the next need.
pub struct OriginPool {
    options: OpenOptions,
    slots: Mutex<HashMap<String, Arc<Mutex<Slot>>>>,
}

#[derive(Default)]
enum Slot {
    #[default]
    NotYet,
    Open(Arc<dyn Origin>),
    Failed {
        at: Instant,
    },
    /// Opened once, then dropped after a transport failure: opened again on the next need.
    Forgotten,
}

impl OriginPool {
    /// A pool that opens origins with `options`.
    pub fn new(options: OpenOptions) -> OriginPool {
        OriginPool {
            options,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The origin the repository records as `url`, opened; `None` when it cannot be opened
    /// now (no transport for it, unreachable, its root gone).
    pub fn get(&self, url: &str) -> Option<Arc<dyn Origin>> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(url.to_string())
            .or_default()
            .clone();
        // One opening per origin at a time; the others wait for its outcome.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        let warned = match &*slot {
            Slot::Open(origin) => return Some(origin.clone()),
            Slot::Failed { at } if at.elapsed() < RETRY_UNREACHABLE => return None,
            Slot::Failed { .. } => true,
            Slot::NotYet | Slot::Forgotten => false,
        };
        let opened = OriginSpec::parse(OsStr::new(url)).and_then(|spec| spec.open(&self.options));
        match opened {
            Ok(origin) => {
                let origin: Arc<dyn Origin> = Arc::from(origin);
                *slot = Slot::Open(origin.clone());
                Some(origin)
            }
            Err(e) => {
                if warned {
                    tracing::debug!("origin {url} still cannot be opened: {e}");
                } else {
                    tracing::warn!(
                        "origin {url} cannot be opened, its chunks are looked for elsewhere: {e}"
                    );
                }
                *slot = Slot::Failed { at: Instant::now() };
                None
            }
        }
    }
}

impl OriginPool {
    /// Drops the opened origin `url` (after a transport failure): the next [`OriginPool::get`]
    /// opens it again. Readers still holding it keep their handle.
    pub fn forget(&self, url: &str) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .cloned();
        if let Some(slot) = slot {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            if matches!(*slot, Slot::Open(_)) {
                *slot = Slot::Forgotten;
            }
        }
    }
}

/// An origin as a search reads it.
pub enum OriginRef<'a> {
    /// Borrowed from the caller.
    Given(&'a dyn Origin),
    /// Opened by an [`OriginPool`].
    Pooled(Arc<dyn Origin>),
}

impl<'a> Deref for OriginRef<'a> {
    type Target = dyn Origin + 'a;
    fn deref(&self) -> &(dyn Origin + 'a) {
        match self {
            OriginRef::Given(o) => *o,
            OriginRef::Pooled(o) => o.as_ref(),
        }
    }
}

/// One origin a search may read, with the id the repository knows it by (`None`: it has no
/// recorded locations, only the hint can point into it).
pub struct Site<'a> {
    url: &'a str,
    id: Option<OriginId>,
    origin: SiteOrigin<'a>,
}

enum SiteOrigin<'a> {
    Given(&'a dyn Origin),
    Pooled(&'a OriginPool),
}

impl<'a> Site<'a> {
    /// An origin the caller has opened.
    pub fn given(origin: &'a dyn Origin, id: Option<OriginId>) -> Site<'a> {
        Site {
            url: origin.url(),
            id,
            origin: SiteOrigin::Given(origin),
        }
    }

    /// The origin the repository records as `url`, opened by `pool` when a search first reads
    /// from it.
    pub fn pooled(url: &'a str, id: Option<OriginId>, pool: &'a OriginPool) -> Site<'a> {
        Site {
            url,
            id,
            origin: SiteOrigin::Pooled(pool),
        }
    }

    /// The origin's URL, as the repository records it.
    pub fn url(&self) -> &str {
        self.url
    }

    /// The origin, opened; `None` when a pooled origin cannot be opened now.
    pub fn origin(&self) -> Option<OriginRef<'a>> {
        match self.origin {
            SiteOrigin::Given(o) => Some(OriginRef::Given(o)),
            SiteOrigin::Pooled(pool) => pool.get(self.url).map(OriginRef::Pooled),
        }
    }

    /// Passes `result` on; a transport failure makes a pooled origin open again next time.
    fn after<T>(&self, result: Result<T>) -> Result<T> {
        if let (Err(e), SiteOrigin::Pooled(pool)) = (&result, &self.origin) {
            if e.is_transient() {
                pool.forget(self.url);
            }
        }
        result
    }
}

/// The file a search opened last, kept for the next read (a file's chunks are usually asked
/// for in order, so one open serves many reads).
#[derive(Default)]
pub struct LastOpen {
    at: Option<(String, Vec<u8>, Box<dyn OriginFile>)>,
}

impl LastOpen {
    /// Closes the file kept: the next read opens its path again (call it when the file may
    /// have been replaced).
    pub fn forget(&mut self) {
        self.at = None;
    }
}

/// Where a caller expects a chunk: `path` at `offset` in site `site`.
#[derive(Clone, Copy, Debug)]
pub struct Hint<'p> {
    /// Index of the site in the locator's list.
    pub site: usize,
    /// The file, relative to the origin's root.
    pub path: &'p [u8],
    /// The chunk's offset in it.
    pub offset: u64,
}

/// Finds chunks in a list of origins and the repository (see the module documentation).
pub struct Locator<'a> {
    repo: &'a Repository,
    sites: Vec<Site<'a>>,
    history: bool,
}

impl<'a> Locator<'a> {
    /// A search of `sites`, in order, using the locations `repo` records; with `history`, the
    /// history `repo` keeps is the last resort.
    pub fn new(repo: &'a Repository, sites: Vec<Site<'a>>, history: bool) -> Locator<'a> {
        Locator {
            repo,
            sites,
            history,
        }
    }

    /// The sites searched, in order.
    pub fn sites(&self) -> &[Site<'a>] {
        &self.sites
    }

    /// Chunk `chunk`, verified and in its canonical form: at `hint` first, then at every
    /// location recorded in each site, then (when asked) from the repository's history.
    /// `Ok(None)` when no place holds it. An error when the repository fails, or when a
    /// transport failed (after the origin's own retries): that is not "chunk absent", and the
    /// search stops there.
    pub fn find(
        &self,
        open: &mut LastOpen,
        hint: Option<Hint<'_>>,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        if let Some(h) = hint.filter(|h| !h.path.is_empty()) {
            if let Some(found) = self.read_at(open, h.site, h.path, h.offset, chunk)? {
                return Ok(Some(found));
            }
        }
        for (site, path, offset) in self.locations(&chunk)? {
            let same_as_hint =
                hint.is_some_and(|h| h.site == site && h.path == path && h.offset == offset);
            if same_as_hint {
                continue;
            }
            if let Some(found) = self.read_at(open, site, &path, offset, chunk)? {
                return Ok(Some(found));
            }
        }
        if self.history {
            if let Some(bytes) = self.repo.kept_chunk(&chunk.id)? {
                return Ok(VerifiedChunk::check(chunk.id, bytes));
            }
        }
        Ok(None)
    }

    /// Every recorded location of `chunk` (of its length) in the sites: site, path, offset.
    pub fn locations(&self, chunk: &ChunkRef) -> Result<Vec<(usize, Vec<u8>, u64)>> {
        let mut out = Vec::new();
        for (i, site) in self.sites.iter().enumerate() {
            let Some(id) = site.id else { continue };
            for loc in self.repo.chunk_locations(&chunk.id, id)? {
                if loc.len == chunk.len {
                    out.push((i, loc.path, loc.offset));
                }
            }
        }
        Ok(out)
    }

    /// Opens file `path` of site `site` for reading, as [`open_inside`] does; `Ok(None)` also
    /// when the site cannot be opened now.
    pub fn open(&self, site: usize, path: &[u8]) -> Result<Option<Box<dyn OriginFile>>> {
        let Some(s) = self.sites.get(site) else {
            return Ok(None);
        };
        let Some(origin) = s.origin() else {
            return Ok(None);
        };
        s.after(open_inside(&*origin, path))
    }

    /// Chunk `chunk` read at `offset` of `path` in site `site`, verified; the file is kept in
    /// `open`. `Ok(None)` when it is not there (no such file or site, a path that could leave
    /// the origin, other bytes, a file too short); an error only for a transport failure.
    pub fn read_at(
        &self,
        open: &mut LastOpen,
        site: usize,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        let Some(s) = self.sites.get(site) else {
            return Ok(None);
        };
        s.after(Self::read_in(s, open, path, offset, chunk))
    }

    fn read_in(
        s: &Site<'_>,
        open: &mut LastOpen,
        path: &[u8],
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        let kept = open
            .at
            .as_ref()
            .is_some_and(|(url, p, _)| url == s.url && p == path);
        if !kept {
            open.at = None;
            let Some(origin) = s.origin() else {
                return Ok(None);
            };
            let Some(file) = open_inside(&*origin, path)? else {
                return Ok(None);
            };
            open.at = Some((s.url.to_string(), path.to_vec(), file));
        }
        let Some((_, _, file)) = open.at.as_mut() else {
            return Ok(None);
        };
        let failed = |open: &mut LastOpen, e: std::io::Error| -> Result<Option<VerifiedChunk>> {
            open.at = None;
            let shown = match s.origin() {
                Some(o) => o.display(path),
                None => std::path::PathBuf::from(String::from_utf8_lossy(path).into_owned()),
            };
            Err(Error::io(shown, e))
        };
        let mut buf = vec![0u8; chunk.len as usize];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {
                if let Some(found) = VerifiedChunk::check_read(chunk.id, buf) {
                    return Ok(Some(found));
                }
            }
            Err(e) if io_kind(&e) == ErrorKind::Transient => return failed(open, e),
            Err(_) => {}
        }
        // A chunk of an Ogg header region is not a byte range of its file.
        let len = file.stat().map(|s| s.size).unwrap_or(0);
        match read_transformed(file, len, offset, chunk.len as usize) {
            Ok(Some(bytes)) => Ok(VerifiedChunk::check(chunk.id, bytes)),
            Err(e) if io_kind(&e) == ErrorKind::Transient => failed(open, e),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChunkId;
    use crate::origin::EntryStat;
    use crate::snapshot::ChunkList;

    /// A repository at `root/repo` recording, in the origin `lib`, that chunk `chunk` is at
    /// offset 0 of each of `paths`; with the origin, opened through the registry.
    fn recorded(
        root: &std::path::Path,
        chunk: ChunkRef,
        paths: &[&[u8]],
    ) -> (Repository, Box<dyn Origin>, OriginId) {
        let origin = OriginSpec::parse(root.join("lib").as_os_str())
            .and_then(|s| s.open(&OpenOptions::default()))
            .expect("open lib");
        let repo = Repository::open(&root.join("repo")).expect("repository");
        let id = repo.origin_id(origin.url()).expect("origin id");
        let stat: EntryStat = origin.stat(b"inside").expect("stat").expect("exists");
        let mut writer = repo.writer().expect("writer");
        let content = writer
            .put_content(&ChunkList {
                chunks: vec![chunk],
                ..ChunkList::default()
            })
            .expect("content");
        for path in paths {
            writer
                .record_file(id, path, crate::scan::scan_entry(&stat, content), None)
                .expect("record");
        }
        writer.commit().expect("commit");
        (repo, origin, id)
    }

    #[test]
    fn hostile_paths_in_the_index_never_read_outside_the_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let secret = b"the bytes outside the origin".to_vec();
        std::fs::create_dir_all(root.join("lib/sub")).expect("mkdir");
        std::fs::write(root.join("secret"), &secret).expect("write");
        std::fs::write(root.join("lib/inside"), b"other bytes").expect("write");
        let chunk = ChunkRef {
            id: ChunkId::of(&secret),
            len: secret.len() as u32,
        };
        let absolute = root.join("secret");
        let absolute = absolute.as_os_str().as_encoded_bytes();
        let hostile: [&[u8]; 6] = [
            b"../secret",
            b"sub/../../secret",
            absolute,
            b"./../secret",
            b"sub//../../secret",
            b"",
        ];
        let (repo, origin, id) = recorded(root, chunk, &hostile);
        let locator = Locator::new(&repo, vec![Site::given(origin.as_ref(), Some(id))], true);
        // The index does name those places...
        assert_eq!(
            locator.locations(&chunk).expect("locations").len(),
            hostile.len()
        );
        let mut open = LastOpen::default();
        // ...and none of them is read, as a recorded location or as a hint.
        assert!(locator
            .find(&mut open, None, chunk)
            .expect("find")
            .is_none());
        for path in hostile {
            assert!(!is_inside(path), "{}", String::from_utf8_lossy(path));
            let hint = Hint {
                site: 0,
                path,
                offset: 0,
            };
            assert!(locator
                .find(&mut open, Some(hint), chunk)
                .expect("find")
                .is_none());
            assert!(locator.open(0, path).expect("open").is_none());
        }

        // The same bytes inside the origin are found where the index says.
        std::fs::write(root.join("lib/sub/copy"), &secret).expect("write");
        let (repo, origin, id) = recorded(root, chunk, &[b"sub/copy"]);
        let locator = Locator::new(&repo, vec![Site::given(origin.as_ref(), Some(id))], false);
        let found = locator.find(&mut open, None, chunk).expect("find");
        assert_eq!(found.expect("inside").bytes(), &secret[..]);
    }

    #[test]
    fn other_bytes_at_a_location_are_not_the_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("lib")).expect("mkdir");
        std::fs::write(root.join("lib/inside"), b"0123456789").expect("write");
        let chunk = ChunkRef {
            id: ChunkId::of(b"abcdefghij"),
            len: 10,
        };
        let (repo, origin, id) = recorded(root, chunk, &[b"inside"]);
        let locator = Locator::new(&repo, vec![Site::given(origin.as_ref(), Some(id))], true);
        let mut open = LastOpen::default();
        let hint = Hint {
            site: 0,
            path: b"inside",
            offset: 0,
        };
        assert!(locator
            .find(&mut open, Some(hint), chunk)
            .expect("find")
            .is_none());
        let wanted = ChunkRef {
            id: ChunkId::of(b"0123456789"),
            len: 10,
        };
        let found = locator.read_at(&mut open, 0, b"inside", 0, wanted);
        assert_eq!(found.expect("read").expect("there").id(), wanted.id);
        // A site that is not in the list holds nothing.
        assert!(locator
            .read_at(&mut open, 3, b"inside", 0, wanted)
            .expect("read")
            .is_none());
    }

    #[test]
    fn an_origin_that_cannot_be_opened_is_not_tried_again_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gone = dir.path().join("gone");
        let url = gone.to_string_lossy().into_owned();
        let pool = OriginPool::new(OpenOptions::default());
        assert!(pool.get(&url).is_none());
        // It exists now, but the failure is remembered for a while.
        std::fs::create_dir_all(&gone).expect("mkdir");
        assert!(pool.get(&url).is_none());
        let other = dir.path().to_string_lossy().into_owned();
        let opened = pool.get(&other).expect("opens");
        let again = pool.get(&other).expect("kept");
        assert!(Arc::ptr_eq(&opened, &again));
        // Forgotten after a transport failure, it is opened anew.
        pool.forget(&other);
        let reopened = pool.get(&other).expect("opens again");
        assert!(!Arc::ptr_eq(&opened, &reopened));
        assert!(pool.get("foo://x/y").is_none());
    }
}
