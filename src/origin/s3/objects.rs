//! A chunk store's objects in a bucket prefix: [`S3Objects`], the [`ObjectStore`] of
//! `s3://BUCKET/PREFIX` once `musicfs init` made it a store.
//!
//! Layout, the same as [`crate::repo::LocalObjects`]'s: object `id` of `kind` is the key
//! `PREFIX/<kind dir>/<first 2 hex>/<64 hex>` (e.g. `music/data/3f/3f9a…`), so a store copied
//! between a directory and a bucket (rclone, `aws s3 sync`) stays a store. A put is one
//! PutObject (S3 makes an object visible whole or not at all); a read one ranged GetObject;
//! a list one paginated ListObjectsV2 of `PREFIX/<kind dir>/`; a remove one DeleteObject.
//!
//! Every call blocks the calling thread on the process's shared runtime, on the client the
//! plain mirror uses (`client.rs`: same credentials, timeouts and error classification: a
//! timeout, a dropped connection, 5xx, 429 and `SlowDown` are [`ErrorKind::Transient`]).
//!
//! Never does: retry by itself (the store's callers decide), list or read a key that is not
//! an object's name, or show a secret.
//!
//! [`ErrorKind::Transient`]: crate::error::ErrorKind::Transient

use std::io;
use std::path::PathBuf;

use aws_sdk_s3::primitives::ByteStream;

use super::client::{self, block_on, io_error};
use super::origin::Bucket;
use super::transport::S3Location;
use crate::error::{Error, Result};
use crate::origin::registry::OpenOptions;
use crate::origin::Policy;
use crate::repo::{ObjectId, ObjectKind, ObjectStore};

/// The objects of a chunk store kept under a bucket prefix.
#[derive(Debug)]
pub struct S3Objects {
    bucket: Bucket,
}

impl S3Objects {
    /// Builds the client for `location` and checks the bucket (HeadBucket), retrying a
    /// connection that fails for a transient reason as the plain mirror does.
    pub fn open(location: &S3Location, options: &OpenOptions) -> Result<S3Objects> {
        Policy::connections(options.retries)
            .run(|| {
                let bucket = location.bucket(options)?;
                block_on(bucket.check_bucket())
                    .and_then(|r| r)
                    .map_err(|e| location.connect_error(e))?;
                Ok(S3Objects { bucket })
            })
            .map_err(crate::interrupt::explain)
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.bucket.url
    }

    /// Whether the prefix holds a chunk store: a `config` object (one listing request).
    pub fn is_store(&self) -> Result<bool> {
        let prefix = self.kind_prefix(ObjectKind::StoreConfig);
        block_on(self.bucket.any_below(&prefix))
            .and_then(|r| r)
            .map_err(|e| self.error(&prefix, e))
    }

    /// `PREFIX/<kind dir>/`.
    fn kind_prefix(&self, kind: ObjectKind) -> String {
        self.bucket.dir_prefix(kind.dir().as_bytes())
    }

    /// `PREFIX/<kind dir>/<2 hex>/<64 hex>`.
    fn key(&self, kind: ObjectKind, id: &ObjectId) -> String {
        let hex = id.hex();
        format!("{}{}/{hex}", self.kind_prefix(kind), &hex[..2])
    }

    /// An error about `key`, named as `s3://bucket/key`.
    fn error(&self, key: &str, e: io::Error) -> Error {
        Error::io(
            PathBuf::from(format!("s3://{}/{key}", self.bucket.bucket)),
            e,
        )
    }
}

/// The id named by `rel` (`<2 hex>/<64 hex>` below a kind's prefix); `None` for any other key.
fn parse_rel(rel: &[u8]) -> Option<ObjectId> {
    let rel = std::str::from_utf8(rel).ok()?;
    let (fan, hex) = rel.split_once('/')?;
    if hex.len() != 64 || fan != hex.get(..2)? {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2)?;
        if pair
            .bytes()
            .any(|b| !matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(ObjectId::from_bytes(out))
}

impl ObjectStore for S3Objects {
    fn put(&self, kind: ObjectKind, id: &ObjectId, bytes: &[u8]) -> Result<()> {
        let key = self.key(kind, id);
        let body = ByteStream::from(bytes.to_vec());
        block_on(
            self.bucket
                .client
                .put_object()
                .bucket(&self.bucket.bucket)
                .key(&key)
                .content_length(bytes.len() as i64)
                .body(body)
                .send(),
        )
        .and_then(|r| r.map(|_| ()).map_err(|e| io_error("PutObject", e)))
        .map_err(|e| self.error(&key, e))
    }

    fn read(&self, kind: ObjectKind, id: &ObjectId, offset: u64, len: usize) -> Result<Vec<u8>> {
        let key = self.key(kind, id);
        if len == 0 {
            // A range cannot be empty: ask whether the object exists and is long enough.
            let size = self.size(kind, id)?;
            if offset > size {
                return Err(self.error(&key, short(offset, len, size)));
            }
            return Ok(Vec::new());
        }
        let last = offset + len as u64 - 1;
        let fetched = block_on(async {
            let answer = self
                .bucket
                .client
                .get_object()
                .bucket(&self.bucket.bucket)
                .key(&key)
                .range(format!("bytes={offset}-{last}"))
                .send()
                .await;
            let out = match answer {
                Ok(out) => out,
                // 416: the range starts at or past the end.
                Err(e) if client::status(&e) == Some(416) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("GetObject: nothing at {offset}"),
                    ))
                }
                Err(e) => return Err(io_error("GetObject", e)),
            };
            out.body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("GetObject: the body broke off ({e})"),
                    )
                })
        })
        .and_then(|r| r)
        .map_err(|e| self.error(&key, e))?;
        match fetched.len().cmp(&len) {
            std::cmp::Ordering::Equal => Ok(fetched),
            // The object ends inside the range: S3 answers what there is.
            std::cmp::Ordering::Less => {
                Err(self.error(&key, short(offset, len, offset + fetched.len() as u64)))
            }
            std::cmp::Ordering::Greater => Err(self.error(
                &key,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "GetObject: {} bytes at {offset} where {len} were asked for",
                        fetched.len()
                    ),
                ),
            )),
        }
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectId>> {
        let prefix = self.kind_prefix(kind);
        let listed = block_on(self.bucket.list(&prefix, None))
            .and_then(|r| r)
            .map_err(|e| self.error(&prefix, e))?;
        Ok(listed.iter().filter_map(|l| parse_rel(&l.rel)).collect())
    }

    fn size(&self, kind: ObjectKind, id: &ObjectId) -> Result<u64> {
        let key = self.key(kind, id);
        match block_on(self.bucket.head(&key)).and_then(|r| r) {
            Ok(Some(head)) => Ok(head.size),
            Ok(None) => Err(self.error(
                &key,
                io::Error::new(io::ErrorKind::NotFound, "HeadObject: no such object"),
            )),
            Err(e) => Err(self.error(&key, e)),
        }
    }

    fn remove(&self, kind: ObjectKind, id: &ObjectId) -> Result<()> {
        let key = self.key(kind, id);
        block_on(self.bucket.delete(&key))
            .and_then(|r| r)
            .map_err(|e| self.error(&key, e))
    }
}

/// `UnexpectedEof`: the object (of `size` bytes) is shorter than `offset + len`.
fn short(offset: u64, len: usize, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("{len} bytes at {offset} asked of an object of {size}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_names_are_listed_as_ids() {
        let id = ObjectId::of(b"x");
        let hex = id.hex();
        let rel = format!("{}/{hex}", &hex[..2]);
        assert_eq!(parse_rel(rel.as_bytes()), Some(id));
        assert_eq!(parse_rel(hex.as_bytes()), None, "no fan directory");
        let wrong_fan = format!("00/{hex}");
        assert_eq!(parse_rel(wrong_fan.as_bytes()), None);
        let upper = format!("{}/{}", &hex[..2], hex.to_uppercase());
        assert_eq!(parse_rel(upper.as_bytes()), None);
        let temp = format!("{rel}.tmp-1-2");
        assert_eq!(parse_rel(temp.as_bytes()), None);
    }
}
