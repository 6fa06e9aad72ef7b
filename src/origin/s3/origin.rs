//! A bucket prefix read and written as a tree of files, one object per file (a plain mirror).
//!
//! The key of a file is `PREFIX/relpath`; directories are the key prefixes, synthesised by
//! the walk (mode 0755, mtime the newest `LastModified` below them), never stored. A file's
//! mtime and mode live in its user metadata in rclone's form (`meta`). A walk lists the
//! prefix (ListObjectsV2, paginated) and asks each file's metadata (HeadObject, several at
//! once, one directory at a time), since a listing carries no user metadata.
//!
//! Never does: follow or write a key that is not a plain relative path (`meta::bad_key`),
//! leave a temporary key in the bucket (uploads are spooled to a local file and put under
//! their final key in one PUT, or one multipart upload that is aborted on failure).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::types::{EncodingType, MetadataDirective};
use aws_sdk_s3::Client;
use tokio::sync::Semaphore;

use super::client::{self, block_on, io_error};
use super::file::S3File;
use super::meta;
use super::upload::S3Upload;
use crate::error::{Error, Result};
use crate::origin::{
    Capabilities, ChangeKey, EntryKind, EntryStat, MtimeResolution, Origin, OriginFile, TempFile,
    WalkItem, WritableOrigin,
};

/// HeadObject requests in flight at once during a walk.
const HEADS_IN_FLIGHT: usize = 16;

/// What every handle of one origin shares: the client and where the tree is.
#[derive(Debug)]
pub(crate) struct Bucket {
    pub client: Client,
    pub bucket: String,
    /// The prefix without a trailing `/`; empty for the whole bucket.
    pub prefix: String,
    /// `s3://bucket/prefix`.
    pub url: String,
}

impl Bucket {
    /// The key of `rel` (the root: the prefix itself).
    pub fn key(&self, rel: &[u8]) -> String {
        let rel = String::from_utf8_lossy(rel);
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.into_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    /// The prefix every key below the directory `rel` starts with (`""` for the root of a
    /// whole bucket).
    pub fn dir_prefix(&self, rel: &[u8]) -> String {
        let key = self.key(rel);
        if key.is_empty() {
            key
        } else {
            format!("{key}/")
        }
    }

    /// `s3://bucket/prefix/rel`, for messages.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            return PathBuf::from(&self.url);
        }
        let base = self.url.trim_end_matches('/');
        PathBuf::from(format!("{base}/{}", String::from_utf8_lossy(rel)))
    }

    /// An I/O error about `rel`.
    pub fn error(&self, rel: &[u8], e: io::Error) -> Error {
        Error::io(self.display(rel), e)
    }

    /// HeadObject of `key`: `None` when there is no such object.
    pub async fn head(&self, key: &str) -> io::Result<Option<Head>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Head {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: out.e_tag().unwrap_or_default().to_string(),
                last_modified_ns: out.last_modified().map_or(0, nanos),
                mtime: out
                    .metadata()
                    .and_then(|m| m.get(meta::MTIME))
                    .and_then(|t| meta::parse_mtime(t)),
                mode: out
                    .metadata()
                    .and_then(|m| m.get(meta::MODE))
                    .and_then(|t| meta::parse_mode(t)),
            })),
            Err(e) if client::status(&e) == Some(404) => Ok(None),
            Err(e) => Err(io_error("HeadObject", e)),
        }
    }

    /// Every object whose key starts with `prefix`, as (key after `prefix`, size,
    /// LastModified in ns), in the server's order (UTF-8 byte order); at most `limit`.
    pub async fn list(&self, prefix: &str, limit: Option<i32>) -> io::Result<Vec<Listed>> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .encoding_type(EncodingType::Url);
            if let Some(limit) = limit {
                request = request.max_keys(limit);
            }
            if let Some(token) = &token {
                request = request.continuation_token(token);
            }
            let page = request
                .send()
                .await
                .map_err(|e| io_error("ListObjectsV2", e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let key = percent_decode(key).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("ListObjectsV2: a key that is not URL-encoded: {key:?}"),
                    )
                })?;
                let Some(rel) = key.strip_prefix(prefix.as_bytes()) else {
                    continue;
                };
                found.push(Listed {
                    rel: rel.to_vec(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified_ns: object.last_modified().map_or(0, nanos),
                });
            }
            if limit.is_some_and(|l| found.len() >= l as usize) {
                return Ok(found);
            }
            match (page.is_truncated(), page.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Whether any object's key starts with `prefix`.
    pub async fn any_below(&self, prefix: &str) -> io::Result<bool> {
        Ok(!self.list(prefix, Some(1)).await?.is_empty())
    }

    /// HeadBucket: fails when the bucket does not exist or the credentials cannot read it.
    pub async fn check_bucket(&self) -> io::Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error("HeadBucket", e))
    }

    /// CopyObject of `from` to `to` with `metadata` (REPLACE) or the source's (COPY).
    pub async fn copy(&self, from: &str, to: &str, metadata: Option<(u32, i64)>) -> io::Result<()> {
        let mut request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(format!("{}/{}", self.bucket, percent_encode(from)));
        request = match metadata {
            Some((mode, mtime_ns)) => request
                .metadata_directive(MetadataDirective::Replace)
                .metadata(meta::MTIME, meta::format_mtime(mtime_ns))
                .metadata(meta::MODE, meta::format_mode(mode)),
            None => request.metadata_directive(MetadataDirective::Copy),
        };
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error("CopyObject", e))
    }

    /// DeleteObject (an absent key is fine).
    pub async fn delete(&self, key: &str) -> io::Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error("DeleteObject", e))
    }
}

/// What HeadObject says of an object.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub size: u64,
    pub etag: String,
    pub last_modified_ns: i64,
    pub mtime: Option<i64>,
    pub mode: Option<u32>,
}

impl Head {
    /// The object as a file: rclone's `mtime` and `mode` when it has them, else its
    /// LastModified and 0644; the ETag as change key.
    pub fn stat(&self) -> EntryStat {
        EntryStat {
            kind: EntryKind::File,
            size: self.size,
            mtime_ns: self.mtime.unwrap_or(self.last_modified_ns),
            change: ChangeKey::Opaque(self.etag.as_bytes().into()),
            mode: self.mode.unwrap_or(meta::DEFAULT_FILE_MODE),
        }
    }
}

/// One object of a listing.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub rel: Vec<u8>,
    pub size: u64,
    pub last_modified_ns: i64,
}

/// A synthesised directory: mode 0755, mtime the newest LastModified below it.
fn dir_stat(newest_ns: i64) -> EntryStat {
    EntryStat {
        kind: EntryKind::Dir,
        size: 0,
        mtime_ns: newest_ns,
        change: ChangeKey::None,
        mode: meta::DIR_MODE,
    }
}

fn nanos(time: &aws_sdk_s3::primitives::DateTime) -> i64 {
    i64::try_from(time.as_nanos()).unwrap_or(0)
}

/// A bucket prefix as an origin (see the module documentation).
#[derive(Debug)]
pub struct S3Origin {
    pub(crate) bucket: Arc<Bucket>,
    /// Directories `create_dir` was asked for: they cannot be stored, and `set_meta` of one
    /// of them succeeds, storing nothing, as `create_dir` did.
    asked_dirs: Mutex<HashSet<Vec<u8>>>,
}

/// A directory of the listing, built before it is visited.
#[derive(Default)]
struct Tree {
    files: BTreeMap<Vec<u8>, ()>,
    dirs: BTreeMap<Vec<u8>, Tree>,
    newest_ns: i64,
}

impl Tree {
    fn insert(&mut self, rel: &[u8], last_modified_ns: i64, is_dir: bool) {
        self.newest_ns = self.newest_ns.max(last_modified_ns);
        match rel.iter().position(|&b| b == b'/') {
            Some(slash) => self.dirs.entry(rel[..slash].to_vec()).or_default().insert(
                &rel[slash + 1..],
                last_modified_ns,
                is_dir,
            ),
            None if is_dir => {
                self.dirs.entry(rel.to_vec()).or_default().newest_ns = last_modified_ns;
            }
            None => {
                self.files.insert(rel.to_vec(), ());
            }
        }
    }
}

impl S3Origin {
    pub(crate) fn new(bucket: Bucket) -> S3Origin {
        S3Origin {
            bucket: Arc::new(bucket),
            asked_dirs: Mutex::default(),
        }
    }

    fn run<T>(
        &self,
        rel: &[u8],
        future: impl std::future::Future<Output = io::Result<T>>,
    ) -> Result<T> {
        block_on(future)
            .and_then(|r| r)
            .map_err(|e| self.bucket.error(rel, e))
    }

    /// Refuses a path no key of a plain mirror can carry.
    fn check(&self, rel: &[u8]) -> Result<()> {
        match meta::bad_key(rel) {
            None => Ok(()),
            Some(why) => Err(self.bucket.error(
                rel,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not a usable key: {why}"),
                ),
            )),
        }
    }

    /// The metadata of the files of one directory, `HEADS_IN_FLIGHT` at a time, in the
    /// order of `names`.
    fn heads(&self, dir: &[u8], names: &[Vec<u8>]) -> Vec<io::Result<Option<Head>>> {
        let bucket = self.bucket.clone();
        let keys: Vec<String> = names
            .iter()
            .map(|name| bucket.key(&crate::relpath::join(dir, name)))
            .collect();
        let count = keys.len();
        let result = block_on(async move {
            let gate = Arc::new(Semaphore::new(HEADS_IN_FLIGHT));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, key) in keys.into_iter().enumerate() {
                let (bucket, gate) = (bucket.clone(), gate.clone());
                tasks.spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    (i, bucket.head(&key).await)
                });
            }
            let mut out: Vec<Option<io::Result<Option<Head>>>> = (0..count).map(|_| None).collect();
            while let Some(joined) = tasks.join_next().await {
                if let Ok((i, head)) = joined {
                    out[i] = Some(head);
                }
            }
            out
        });
        match result {
            Ok(out) => out
                .into_iter()
                .map(|h| {
                    h.unwrap_or_else(|| Err(io::Error::other("HeadObject: the request was lost")))
                })
                .collect(),
            Err(e) => (0..count)
                .map(|_| Err(io::Error::new(e.kind(), e.to_string())))
                .collect(),
        }
    }

    fn visit_dir(&self, dir: &[u8], tree: &Tree, visit: &mut dyn FnMut(WalkItem)) {
        let names: Vec<Vec<u8>> = tree
            .files
            .keys()
            .filter(|name| !tree.dirs.contains_key(*name) && !crate::origin::is_temporary(name))
            .cloned()
            .collect();
        let mut heads: BTreeMap<Vec<u8>, io::Result<Option<Head>>> =
            names.iter().cloned().zip(self.heads(dir, &names)).collect();
        let mut all: Vec<&Vec<u8>> = tree.files.keys().chain(tree.dirs.keys()).collect();
        all.sort();
        all.dedup();
        for name in all {
            let path = crate::relpath::join(dir, name);
            if let Some(sub) = tree.dirs.get(name) {
                if tree.files.contains_key(name) {
                    visit(WalkItem::Problem {
                        path: path.clone(),
                        message: format!(
                            "{}: both an object and a prefix of other keys; the object is skipped",
                            self.bucket.display(&path).display()
                        ),
                    });
                }
                visit(WalkItem::Entry {
                    path: path.clone(),
                    stat: dir_stat(sub.newest_ns),
                    target: None,
                });
                self.visit_dir(&path, sub, visit);
                continue;
            }
            if crate::origin::is_temporary(name) {
                visit(WalkItem::Temporary(path));
                continue;
            }
            match heads.remove(name) {
                Some(Ok(Some(head))) => visit(WalkItem::Entry {
                    path,
                    stat: head.stat(),
                    target: None,
                }),
                Some(Ok(None)) => visit(WalkItem::Problem {
                    message: format!(
                        "{}: removed while the prefix was walked",
                        self.bucket.display(&path).display()
                    ),
                    path,
                }),
                Some(Err(e)) => visit(WalkItem::Problem {
                    message: format!("{}: {e}", self.bucket.display(&path).display()),
                    path,
                }),
                None => {}
            }
        }
    }
}

impl Origin for S3Origin {
    fn url(&self) -> &str {
        &self.bucket.url
    }

    fn display(&self, rel: &[u8]) -> PathBuf {
        self.bucket.display(rel)
    }

    /// Objects replace atomically (a PUT or a copy over a key); the server keeps what it
    /// acknowledged, with nothing to fsync; no symlinks, no directories; the ETag as change
    /// key, with no identity surviving a rename (a copy is a new object); mtimes to the
    /// nanosecond, as rclone's metadata keeps them.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            atomic_replace: true,
            durable_commit: false,
            symlinks: false,
            directories: false,
            stable_identity: false,
            content_keys: true,
            mtime_resolution: MtimeResolution::Nanosecond,
        }
    }

    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        let prefix = self.bucket.dir_prefix(b"");
        let listed = match block_on(self.bucket.list(&prefix, None)).and_then(|r| r) {
            Ok(listed) => listed,
            Err(e) => {
                return visit(WalkItem::Problem {
                    path: Vec::new(),
                    message: format!("{}: {e}", self.bucket.url),
                })
            }
        };
        let mut tree = Tree::default();
        for object in listed {
            // A key ending in `/` is a directory marker (the S3 console's "folder",
            // rclone's directory markers): a directory, if the rest is a usable path.
            let (rel, is_dir) = match object.rel.strip_suffix(b"/") {
                Some(dir) if object.size == 0 && !dir.is_empty() => (dir, true),
                _ => (&object.rel[..], false),
            };
            if let Some(why) = meta::bad_key(rel) {
                let key = String::from_utf8_lossy(&object.rel).into_owned();
                visit(WalkItem::Problem {
                    path: object.rel.clone(),
                    message: format!("{}: key {key:?} refused, {why}; skipped", self.bucket.url),
                });
                continue;
            }
            tree.insert(rel, object.last_modified_ns, is_dir);
        }
        self.visit_dir(b"", &tree, visit);
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        self.check(rel)?;
        let key = self.bucket.key(rel);
        let head = self.run(rel, self.bucket.head(&key))?.ok_or_else(|| {
            self.bucket.error(
                rel,
                io::Error::new(io::ErrorKind::NotFound, "no such object"),
            )
        })?;
        Ok(Box::new(S3File::new(self.bucket.clone(), key, head)))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        if rel.is_empty() {
            let bucket = self.bucket.clone();
            return self.run(rel, async move {
                if bucket.prefix.is_empty() {
                    bucket.check_bucket().await?;
                }
                let below = bucket.list(&bucket.dir_prefix(b""), None).await?;
                let newest = below.iter().map(|l| l.last_modified_ns).max();
                Ok(match (bucket.prefix.is_empty(), newest) {
                    (true, newest) => Some(dir_stat(newest.unwrap_or(0))),
                    (false, Some(newest)) => Some(dir_stat(newest)),
                    (false, None) => None,
                })
            });
        }
        if meta::bad_key(rel).is_some() {
            return Ok(None);
        }
        let bucket = self.bucket.clone();
        let key = bucket.key(rel);
        let dir = bucket.dir_prefix(rel);
        self.run(rel, async move {
            if let Some(head) = bucket.head(&key).await? {
                return Ok(Some(head.stat()));
            }
            let below = bucket.list(&dir, None).await?;
            Ok(below.iter().map(|l| l.last_modified_ns).max().map(dir_stat))
        })
    }
}

impl WritableOrigin for S3Origin {
    /// A bucket prefix needs no creating: checks that the bucket is there.
    fn create_root(&self) -> Result<()> {
        self.run(b"", self.bucket.check_bucket())
    }

    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        self.check(rel)?;
        Ok(Box::new(S3Upload::new(self.bucket.clone(), rel)?))
    }

    /// A file: a copy onto itself with the new metadata (skipped when it has it already). A
    /// directory, which a bucket does not store: nothing, when there are keys below it or it
    /// was asked for by [`WritableOrigin::create_dir`].
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        if !rel.is_empty() {
            self.check(rel)?;
        }
        let asked = self
            .asked_dirs
            .lock()
            .map(|dirs| dirs.contains(rel))
            .unwrap_or(false);
        let bucket = self.bucket.clone();
        let key = bucket.key(rel);
        let dir = bucket.dir_prefix(rel);
        let found = self.run(rel, async move {
            if !rel.is_empty() {
                if let Some(head) = bucket.head(&key).await? {
                    if head.mode != Some(mode & 0o7777) || head.mtime != Some(mtime_ns) {
                        bucket.copy(&key, &key, Some((mode, mtime_ns))).await?;
                    }
                    return Ok(true);
                }
            }
            Ok(asked || rel.is_empty() || bucket.any_below(&dir).await?)
        })?;
        match found {
            true => Ok(()),
            false => Err(self.bucket.error(
                rel,
                io::Error::new(io::ErrorKind::NotFound, "no such object"),
            )),
        }
    }

    /// Creates nothing (no directories in a bucket); remembers the name for `set_meta`.
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        self.check(rel)?;
        if let Ok(mut dirs) = self.asked_dirs.lock() {
            dirs.insert(rel.to_vec());
        }
        Ok(())
    }

    fn symlink(&self, rel: &[u8], _target: &[u8]) -> Result<()> {
        Err(self.bucket.error(
            rel,
            io::Error::new(
                io::ErrorKind::Unsupported,
                "an S3 plain mirror cannot store symlinks",
            ),
        ))
    }

    /// A file: CopyObject (metadata kept) then DeleteObject. A directory: the same for every
    /// key below it.
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        self.check(from)?;
        self.check(to)?;
        let bucket = self.bucket.clone();
        let (from_key, to_key) = (bucket.key(from), bucket.key(to));
        let (from_dir, to_dir) = (bucket.dir_prefix(from), bucket.dir_prefix(to));
        let found = self.run(from, async move {
            if bucket.head(&from_key).await?.is_some() {
                bucket.copy(&from_key, &to_key, None).await?;
                bucket.delete(&from_key).await?;
                return Ok(true);
            }
            let below = bucket.list(&from_dir, None).await?;
            for object in &below {
                let rest = String::from_utf8_lossy(&object.rel);
                bucket
                    .copy(
                        &format!("{from_dir}{rest}"),
                        &format!("{to_dir}{rest}"),
                        None,
                    )
                    .await?;
            }
            for object in &below {
                let rest = String::from_utf8_lossy(&object.rel);
                bucket.delete(&format!("{from_dir}{rest}")).await?;
            }
            Ok(!below.is_empty())
        })?;
        match found {
            true => Ok(()),
            false => Err(self.bucket.error(
                from,
                io::Error::new(io::ErrorKind::NotFound, "no such object"),
            )),
        }
    }

    /// The object `rel` and every key below `rel/`.
    fn remove(&self, rel: &[u8]) -> Result<()> {
        if meta::bad_key(rel).is_some() {
            // No key of a plain mirror is there to remove.
            return Ok(());
        }
        let bucket = self.bucket.clone();
        let key = bucket.key(rel);
        let dir = bucket.dir_prefix(rel);
        self.run(rel, async move {
            for object in bucket.list(&dir, None).await? {
                let rest = String::from_utf8_lossy(&object.rel);
                bucket.delete(&format!("{dir}{rest}")).await?;
            }
            bucket.delete(&key).await
        })
    }

    /// Nothing to flush: the server keeps what it acknowledged.
    fn sync_dir(&self, _rel: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// `%XX` sequences decoded (ListObjectsV2 with `encoding-type=url`; `+` is a space there).
fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// A key for `x-amz-copy-source`: every byte but unreserved ones and `/` percent-encoded.
pub(crate) fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_url_encoding() {
        for key in ["a b/c+d%e", "日本語/ü.flac", "new\nline", "a/..b/~x"] {
            let encoded = percent_encode(key);
            assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded}");
            assert_eq!(percent_decode(&encoded).as_deref(), Some(key.as_bytes()));
        }
        assert_eq!(percent_decode("a+b").as_deref(), Some(&b"a b"[..]));
        assert_eq!(percent_decode("bad%4"), None);
        assert_eq!(percent_decode("bad%zz"), None);
    }

    #[test]
    fn the_listing_becomes_a_tree_of_names() {
        let mut tree = Tree::default();
        tree.insert(b"a/x", 5, false);
        tree.insert(b"a/y/deep", 9, false);
        tree.insert(b"b", 1, false);
        tree.insert(b"empty", 3, true);
        assert_eq!(tree.newest_ns, 9);
        assert_eq!(tree.files.keys().collect::<Vec<_>>(), [b"b"]);
        assert_eq!(tree.dirs.keys().collect::<Vec<_>>(), [&b"a"[..], b"empty"]);
        assert_eq!(tree.dirs[&b"a"[..]].newest_ns, 9);
        assert_eq!(tree.dirs[&b"empty"[..]].newest_ns, 3);
    }
}
