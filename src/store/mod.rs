//! A chunk store: libraries' snapshots kept as immutable, content-addressed objects behind any
//! [`ObjectStore`] (a bucket prefix, a directory), shared by several sites that push to it and
//! pull from it, moving only the chunks the other side lacks.
//!
//! The format is in `docs/format.md` ("Chunk store"). In short: a `config` object written first
//! ([`init`]); packs of blobs (chunks, trees, chunk lists), each put whole; index deltas that
//! say where each blob is; snapshot objects that name a library's root tree. Nothing is ever
//! overwritten, so there is no lock and no compare-and-swap: readers merge every delta, and the
//! newest snapshot of a library is the newest snapshot object naming it. A push puts its packs,
//! then the delta naming them, then the snapshot object, so a push stopped at any moment leaves
//! the store readable, and the next one uploads only what is not indexed yet ([`push`]). A pull
//! is a [`crate::sync::SyncSource`] ([`StoreSource`]), so the destination is written by the
//! ordinary sync, every chunk verified. The repository keeps a cache of the store's small
//! objects (`index.rs`), so that a pull or push that finds nothing new costs two listings.
//!
//! gc (`gc.rs`) is the only remover: it marks what no snapshot needs, and removes it on a
//! run at least a grace period later; pushes never rely on a marked pack.
//!
//! Never does: overwrite an object of the store, remove one outside gc, trust an object it fetched before checking its hash, or cut files with a
//! chunker other than the store's.

pub mod format;
mod gc;
pub mod index;
mod pull;
mod push;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::repo::{ChunkerConfig, ObjectId, ObjectKind, ObjectStore, Repository};
use format::{decode_object, encode_object, ChunkerParams, StoreConfig, Tag, FORMAT_VERSION};
use index::Cache;

pub use gc::{forget, gc, GcOptions, GcReport, GC_POINTS};
pub use pull::{Pick, StoreSource};
pub use push::{push, push_as, LibraryChunks, PushSummary, PUSH_POINTS};

/// The pack size a new store targets: 16 MiB (the measurement is in `docs/format.md`).
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;

/// The smallest and largest pack size [`init`] accepts.
const PACK_SIZES: std::ops::RangeInclusive<u32> = (1 << 20)..=(256 << 20);

/// A chunk store opened for a repository: its objects, its config, and the repository's cache
/// of its index.
pub struct Store {
    objects: Arc<dyn ObjectStore>,
    url: String,
    config: StoreConfig,
    cache: Cache,
}

/// Makes `objects` a chunk store whose pushes cut files with `chunker` into packs of about
/// `pack_size` bytes: writes its `config` object. Returns whether it was created; a store
/// that already has the same config is left as it is, and one with another config, or a
/// prefix that holds store objects but no config, is refused.
pub fn init(
    objects: &dyn ObjectStore,
    url: &str,
    chunker: &ChunkerConfig,
    pack_size: u32,
) -> Result<bool> {
    if !PACK_SIZES.contains(&pack_size) {
        return Err(Error::InvalidInput(format!(
            "{url}: a pack size of {pack_size} bytes is outside 1 MiB to 256 MiB"
        )));
    }
    let config = StoreConfig {
        version: FORMAT_VERSION,
        chunker: ChunkerParams::from(chunker),
        pack_size,
    };
    let bytes = encode_object(Tag::Config, &config);
    let id = ObjectId::of(&bytes);
    let existing = objects.list(ObjectKind::StoreConfig)?;
    if existing.contains(&id) {
        return Ok(false);
    }
    if !existing.is_empty() {
        return Err(Error::InvalidInput(format!(
            "{url} is already a chunk store, with other settings; it is used as it is"
        )));
    }
    for kind in [
        ObjectKind::StorePack,
        ObjectKind::StoreIndex,
        ObjectKind::StoreSnapshot,
    ] {
        if !objects.list(kind)?.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{url} holds chunk-store objects ({}/) but no config: not creating a store over them",
                kind.dir()
            )));
        }
    }
    objects.put(ObjectKind::StoreConfig, &id, &bytes)?;
    Ok(true)
}

impl Store {
    /// The store at `url` (how the user names it; it names the cache too), whose objects are
    /// `objects`, with its cache in `repo`. Reads the config: from the cache when a previous
    /// open saw it (no request), else from the store (a listing and one fetch).
    pub fn open(objects: Arc<dyn ObjectStore>, url: &str, repo: &Repository) -> Result<Store> {
        let cache = Cache::new(repo.root(), url);
        let mut store = Store {
            objects,
            url: url.to_string(),
            config: StoreConfig {
                version: FORMAT_VERSION,
                chunker: ChunkerParams::from(repo.chunker_config()),
                pack_size: DEFAULT_PACK_SIZE,
            },
            cache,
        };
        let cached = store.cache.list(ObjectKind::StoreConfig);
        let ids = if cached.len() == 1 {
            cached
        } else {
            store.objects.list(ObjectKind::StoreConfig)?
        };
        let id = match ids.as_slice() {
            [id] => *id,
            [] => {
                return Err(Error::InvalidInput(format!(
                    "{url} is not a musicfs chunk store (it has no config object); create one with musicfs init {url}"
                )))
            }
            many => {
                return Err(Error::InvalidInput(format!(
                    "{url} has {} config objects (two inits with different settings ran at once); remove all but one",
                    many.len()
                )))
            }
        };
        let bytes = store.fetch_small(ObjectKind::StoreConfig, &id)?;
        let config: StoreConfig = decode_object(Tag::Config, &bytes)
            .map_err(|why| store.damaged(format!("config {}: {why}", id.hex())))?;
        if config.version > FORMAT_VERSION {
            return Err(Error::InvalidInput(format!(
                "{url}: store format version {} is not supported (this musicfs reads {FORMAT_VERSION})",
                config.version
            )));
        }
        if !PACK_SIZES.contains(&config.pack_size) {
            return Err(store.damaged(format!("config: pack size {}", config.pack_size)));
        }
        store.config = config;
        store.cache.name(url);
        Ok(store)
    }

    /// The store's config.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The store's URL, as it was opened.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The objects it is made of.
    pub fn objects(&self) -> &dyn ObjectStore {
        &*self.objects
    }

    /// Where the repository caches the store's small objects.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.cache.dir()
    }

    /// Refuses a repository that cuts files differently from the store (a push's, a pull's).
    pub fn check_chunker(&self, repo: &Repository) -> Result<()> {
        let ours = ChunkerParams::from(repo.chunker_config());
        if ours != self.config.chunker {
            return Err(Error::InvalidInput(format!(
                "{}: the repository {} cuts files with {ours}, the store with {}; push and pull with a repository that cuts as the store does (musicfs init --chunker {} for a new one)",
                self.url,
                repo.root().display(),
                self.config.chunker,
                self.config.chunker.algorithm
            )));
        }
        Ok(())
    }
}

/// This machine's name, as a push records it: `/proc/sys/kernel/hostname`, else `unknown`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
