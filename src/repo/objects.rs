//! The repository's object store: immutable objects, named by kind and id.
//!
//! The index (`index.redb`) says what exists and where; the objects it refers to live apart
//! from it, behind [`ObjectStore`], so that a repository can keep them somewhere other than a
//! local directory by adding one implementation. [`LocalObjects`] keeps them as files under
//! `<repo>/objects/<kind>/<2 hex>/<64 hex>`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The id of an object: BLAKE3 of its bytes, so equal objects are one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId([u8; 32]);

impl ObjectId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> ObjectId {
        ObjectId(*blake3::hash(bytes).as_bytes())
    }

    /// An id as stored in the index.
    pub fn from_bytes(bytes: [u8; 32]) -> ObjectId {
        ObjectId(bytes)
    }

    /// Its 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Its 64 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn parse(hex: &str) -> Option<ObjectId> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        (out.iter().map(|b| format!("{b:02x}")).collect::<String>() == hex).then_some(ObjectId(out))
    }
}

/// What an object holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    /// A pack of compressed history chunks (`history.rs`).
    Pack,
    /// A chunk store's `config`, written first by its `init` (`crate::store`).
    StoreConfig,
    /// A chunk store's pack of chunks, trees and chunk lists (`crate::store`).
    StorePack,
    /// A chunk store's index delta: where the blobs of some packs are (`crate::store`).
    StoreIndex,
    /// A chunk store's snapshot of a library (`crate::store`).
    StoreSnapshot,
    /// A chunk store's gc mark: packs and deltas a later gc removes (`crate::store`).
    StoreMark,
    /// A chunk store's gc lock: one per running gc (`crate::store`).
    StoreLock,
}

impl ObjectKind {
    /// Its directory name.
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Pack => "packs",
            ObjectKind::StoreConfig => "config",
            ObjectKind::StorePack => "data",
            ObjectKind::StoreIndex => "index",
            ObjectKind::StoreSnapshot => "snapshots",
            ObjectKind::StoreMark => "marks",
            ObjectKind::StoreLock => "locks",
        }
    }
}

/// Immutable objects by kind and id.
///
/// The contract every implementation keeps:
/// - `put` is all-or-nothing: after a crash, an object is either absent or whole; never
///   partly written. It is durable when `put` returns. It is idempotent: putting an object
///   that exists succeeds and leaves it as it is (the id is the hash of the bytes, so the
///   bytes are the same). The caller passes the id of the bytes; `put` does not check it.
/// - `read` returns exactly `len` bytes at `offset`, or an error: [`Error::Io`] with
///   [`io::ErrorKind::NotFound`] when the object does not exist, `UnexpectedEof` when it
///   is shorter. It never returns bytes of another object, but it does not verify them: the
///   caller checks what it reads against the hashes the index holds.
/// - `list` returns every object of a kind, in no particular order; one put while it runs
///   may or may not be listed.
/// - `remove` is idempotent: removing an absent object succeeds.
/// - Every method may be called from several threads and processes at once.
/// - Errors carry a kind ([`Error::kind`]): `NotFound` only from `read` of an absent object,
///   `Transient` when the store may answer later (a dropped connection, a timeout: the same
///   call may be made again, every method being idempotent), `Permanent` otherwise (a full
///   disk, permission denied); never `Locked` (the repository's locks are the index's).
pub trait ObjectStore: Send + Sync {
    /// Stores `bytes` as object `id` of `kind`: all-or-nothing, durable when it returns,
    /// idempotent.
    fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> Result<()>;
    /// Reads `len` bytes at `offset` of object `id` of `kind`, unverified; `NotFound` when
    /// the object is absent. Idempotent.
    fn read(&self, kind: ObjectKind, id: &ObjectId, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// The ids of every object of `kind`, in no order; an empty kind is an empty list.
    /// Idempotent.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectId>>;
    /// The size in bytes of object `id` of `kind`; `NotFound` when it is absent. Idempotent.
    fn size(&self, kind: ObjectKind, id: &ObjectId) -> Result<u64>;
    /// Removes object `id` of `kind`; an absent object is fine (idempotent).
    fn remove(&self, kind: ObjectKind, id: &ObjectId) -> Result<()>;
}

/// Objects as files in a local directory: `<root>/<kind>/<first 2 hex>/<64 hex>`.
///
/// A put writes `<name>.tmp-<pid>-<n>` beside the object, fsyncs it, renames it into place and
/// fsyncs the directory. A temporary file left by a crash is never read or listed.
#[derive(Debug)]
pub struct LocalObjects {
    root: PathBuf,
}

impl LocalObjects {
    /// The store under `root` (created on the first put).
    pub fn new(root: impl Into<PathBuf>) -> LocalObjects {
        LocalObjects { root: root.into() }
    }

    fn path(&self, kind: ObjectKind, id: &ObjectId) -> PathBuf {
        let hex = id.hex();
        self.root.join(kind.dir()).join(&hex[..2]).join(hex)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl ObjectStore for LocalObjects {
    fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> Result<()> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = self.path(kind, id);
        if path.exists() {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = dir.join(format!(
            "{}.tmp-{}-{}",
            id.hex(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            });
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&path, e));
        }
        sync_dir(&dir)?;
        if let Some(kind_dir) = dir.parent() {
            sync_dir(kind_dir)?;
        }
        Ok(())
    }

    fn read(&self, kind: ObjectKind, id: &ObjectId, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(kind, id);
        let mut buf = vec![0u8; len];
        File::open(&path)
            .and_then(|mut f| {
                f.seek(SeekFrom::Start(offset))?;
                f.read_exact(&mut buf)
            })
            .map_err(|e| Error::io(&path, e))?;
        Ok(buf)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectId>> {
        let top = self.root.join(kind.dir());
        let fans = match fs::read_dir(&top) {
            Ok(fans) => fans,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&top, e)),
        };
        let mut ids = Vec::new();
        for fan in fans {
            let fan = fan.map_err(|e| Error::io(&top, e))?.path();
            if !fan.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&fan).map_err(|e| Error::io(&fan, e))? {
                let entry = entry.map_err(|e| Error::io(&fan, e))?;
                if let Some(id) = entry.file_name().to_str().and_then(ObjectId::parse) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    fn size(&self, kind: ObjectKind, id: &ObjectId) -> Result<u64> {
        let path = self.path(kind, id);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| Error::io(&path, e))
    }

    fn remove(&self, kind: ObjectKind, id: &ObjectId) -> Result<()> {
        let path = self.path(kind, id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_read_list_remove_keep_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalObjects::new(dir.path().join("objects"));
        let bytes = b"one pack of bytes".to_vec();
        let id = ObjectId::of(&bytes);
        assert!(store.list(ObjectKind::Pack).unwrap().is_empty());
        store.put(ObjectKind::Pack, &id, &bytes).unwrap();
        // Idempotent: a second put of the same object succeeds.
        store.put(ObjectKind::Pack, &id, &bytes).unwrap();
        assert_eq!(store.read(ObjectKind::Pack, &id, 4, 4).unwrap(), b"pack");
        assert_eq!(
            store.size(ObjectKind::Pack, &id).unwrap(),
            bytes.len() as u64
        );
        assert_eq!(store.list(ObjectKind::Pack).unwrap(), vec![id]);
        // No temporary file is left beside the object.
        let fan = dir.path().join("objects/packs").join(&id.hex()[..2]);
        assert_eq!(fs::read_dir(&fan).unwrap().count(), 1);
        let short = store.read(ObjectKind::Pack, &id, 10, 100).unwrap_err();
        assert!(
            matches!(short, Error::Io { ref source, .. } if source.kind() == io::ErrorKind::UnexpectedEof)
        );
        store.remove(ObjectKind::Pack, &id).unwrap();
        store.remove(ObjectKind::Pack, &id).unwrap();
        let gone = store.read(ObjectKind::Pack, &id, 0, 1).unwrap_err();
        assert!(
            matches!(gone, Error::Io { ref source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(store.list(ObjectKind::Pack).unwrap().is_empty());
        assert!(store.size(ObjectKind::Pack, &id).is_err());
    }

    #[test]
    fn ids_print_and_parse_as_hex() {
        let id = ObjectId::of(b"x");
        assert_eq!(ObjectId::parse(&id.hex()), Some(id));
        assert_eq!(ObjectId::parse("zz"), None);
        assert_eq!(ObjectId::parse(&id.hex().to_uppercase()), None);
    }
}
