//! A file on its way into the bucket: spooled to a local temporary file, then put under its
//! final key at commit, so that no temporary key ever exists in the bucket.
//!
//! Up to [`SINGLE_PUT_MAX`] one PutObject; above, a multipart upload of [`PART_SIZE`] parts
//! (larger when the file would need more than S3's 10,000 parts), aborted when any part or the
//! completion fails, so that no orphaned parts are billed. Either way the object appears whole
//! under its key, with its `mtime` and `mode` metadata, or not at all.

use std::io::{self, Write};
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::client::{block_on, io_error};
use super::meta;
use super::origin::Bucket;
use crate::error::Result;
use crate::origin::TempFile;

/// The largest file sent in one PutObject.
pub(crate) const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload.
pub(crate) const PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;

/// A file being written (see the module documentation).
pub(crate) struct S3Upload {
    bucket: Arc<Bucket>,
    rel: Vec<u8>,
    spool: io::BufWriter<tempfile::NamedTempFile>,
    written: u64,
}

impl S3Upload {
    /// A new spool file in the system's temporary directory (`TMPDIR`).
    pub(crate) fn new(bucket: Arc<Bucket>, rel: &[u8]) -> Result<S3Upload> {
        let spool = tempfile::Builder::new()
            .prefix(crate::origin::TEMP_PREFIX)
            .suffix(crate::origin::TEMP_SUFFIX)
            .tempfile()
            .map_err(|e| {
                bucket.error(
                    rel,
                    io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create a local spool file in {}: {e}",
                            std::env::temp_dir().display()
                        ),
                    ),
                )
            })?;
        Ok(S3Upload {
            bucket,
            rel: rel.to_vec(),
            spool: io::BufWriter::with_capacity(256 * 1024, spool),
            written: 0,
        })
    }
}

impl Write for S3Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.spool.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()
    }
}

impl TempFile for S3Upload {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        let S3Upload {
            bucket,
            rel,
            spool,
            written,
        } = *self;
        let spool = spool
            .into_inner()
            .map_err(|e| bucket.error(&rel, e.into_error()))?;
        let key = bucket.key(&rel);
        let path = spool.path().to_path_buf();
        let task = {
            let bucket = bucket.clone();
            async move {
                let metadata = [
                    (meta::MTIME, meta::format_mtime(mtime_ns)),
                    (meta::MODE, meta::format_mode(mode)),
                ];
                if written <= SINGLE_PUT_MAX {
                    put_whole(&bucket, &key, &path, written, &metadata).await
                } else {
                    put_parts(&bucket, &key, &path, written, &metadata).await
                }
            }
        };
        let result = block_on(task).and_then(|r| r);
        drop(spool);
        result.map_err(|e| bucket.error(&rel, e))
    }

    fn discard(self: Box<Self>) {
        // Dropping the spool removes it; nothing was sent.
    }
}

async fn body(path: &std::path::Path, offset: u64, len: u64) -> io::Result<ByteStream> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| io::Error::other(format!("cannot read the spool file: {e}")))
}

async fn put_whole(
    bucket: &Bucket,
    key: &str,
    path: &std::path::Path,
    len: u64,
    metadata: &[(&str, String); 2],
) -> io::Result<()> {
    let mut request = bucket
        .client
        .put_object()
        .bucket(&bucket.bucket)
        .key(key)
        .content_length(len as i64)
        .body(body(path, 0, len).await?);
    for (name, value) in metadata {
        request = request.metadata(*name, value);
    }
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| io_error("PutObject", e))
}

/// The part size for a file of `len` bytes: [`PART_SIZE`], or more when that would need more
/// than S3's 10,000 parts.
pub(crate) fn part_size(len: u64) -> u64 {
    PART_SIZE.max(len.div_ceil(MAX_PARTS))
}

async fn put_parts(
    bucket: &Bucket,
    key: &str,
    path: &std::path::Path,
    len: u64,
    metadata: &[(&str, String); 2],
) -> io::Result<()> {
    let mut request = bucket
        .client
        .create_multipart_upload()
        .bucket(&bucket.bucket)
        .key(key);
    for (name, value) in metadata {
        request = request.metadata(*name, value);
    }
    let created = request
        .send()
        .await
        .map_err(|e| io_error("CreateMultipartUpload", e))?;
    let upload_id = created
        .upload_id()
        .ok_or_else(|| io::Error::other("CreateMultipartUpload: no upload id in the answer"))?
        .to_string();
    let result = send_parts(bucket, key, path, len, &upload_id).await;
    if result.is_err() {
        // Best effort: a lifecycle rule for incomplete uploads catches what this misses.
        let aborted = bucket
            .client
            .abort_multipart_upload()
            .bucket(&bucket.bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(
                "{key}: aborting the failed upload: {}",
                io_error("AbortMultipartUpload", e)
            );
        }
    }
    result
}

async fn send_parts(
    bucket: &Bucket,
    key: &str,
    path: &std::path::Path,
    len: u64,
    upload_id: &str,
) -> io::Result<()> {
    let size = part_size(len);
    let mut parts = Vec::new();
    let mut offset = 0;
    let mut number = 1;
    while offset < len {
        let this = size.min(len - offset);
        let sent = bucket
            .client
            .upload_part()
            .bucket(&bucket.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(this as i64)
            .body(body(path, offset, this).await?)
            .send()
            .await
            .map_err(|e| io_error("UploadPart", e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_string))
                .build(),
        );
        offset += this;
        number += 1;
    }
    bucket
        .client
        .complete_multipart_upload()
        .bucket(&bucket.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| io_error("CompleteMultipartUpload", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_the_limit() {
        assert_eq!(part_size(20 * 1024 * 1024), PART_SIZE);
        let huge = 200 * 1024 * 1024 * 1024u64;
        assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
        assert!(part_size(huge) > PART_SIZE);
    }
}
