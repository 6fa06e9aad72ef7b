//! A file on its way into the bucket: spooled to a local temporary file, then put under its
//! final key at commit, so that no temporary key ever exists in the bucket.
//!
//! Up to [`SINGLE_PUT_MAX`] one PutObject; above, a multipart upload of [`PART_SIZE`] parts
//! (larger when the file would need more than S3's 10,000 parts), aborted when any part or the
//! completion fails, so that no orphaned parts are billed. Either way the object appears whole
//! under its key, with its `mtime` and `mode` metadata, or not at all.
//!
//! A file that replaces an object whose bytes it largely repeats (a retag of a 30 MB FLAC: the
//! audio is the same, shifted by the tag's growth) is built from the old object instead: the
//! caller says which spooled bytes are at which offset of the old object
//! ([`TempFile::write_known`]), [`plan_parts`] turns those runs into parts, and the runs of
//! 5 MiB or more become UploadPartCopy parts: the server copies them from the old object, with
//! the old ETag as a precondition (`x-amz-copy-source-if-match`), and the MD5 of each part it
//! copied (the part's ETag) must be that of the spooled bytes. Every other part is sent, and
//! every part but the last is at least [`MIN_PART`], so changed bytes go up padded with their
//! neighbours to 5 MiB. Any failure of that path (the old object replaced meanwhile, a server
//! that does not copy parts, an ETag that is no MD5) aborts it and sends the whole file as
//! above: never a wrong object, at worst the bytes of a plain upload plus a wasted copy.

use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::{Digest, Md5};

use super::client::{block_on, io_error};
use super::meta;
use super::origin::{percent_encode, Bucket};
use crate::error::Result;
use crate::origin::{ChangeKey, TempFile};

/// The largest file sent in one PutObject.
pub(crate) const SINGLE_PUT_MAX: u64 = 16 * 1024 * 1024;
/// The size of each part of a multipart upload.
pub(crate) const PART_SIZE: u64 = 8 * 1024 * 1024;
/// S3's limit on the parts of one upload.
const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (every part of an upload but the last).
pub(crate) const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part, sent or copied.
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

/// Bytes of the new file that the old object holds too: `len` bytes at `offset` of the new
/// file are those at `from` of the old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KnownRun {
    pub offset: u64,
    pub from: u64,
    pub len: u64,
}

/// One part of a multipart upload, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// Bytes `offset..offset + len` of the new file, sent from the spool.
    Upload { offset: u64, len: u64 },
    /// Bytes `from..from + len` of the old object, copied by the server to `offset`.
    Copy { offset: u64, from: u64, len: u64 },
}

impl Part {
    fn len(&self) -> u64 {
        match *self {
            Part::Upload { len, .. } | Part::Copy { len, .. } => len,
        }
    }
}

/// A file being written (see the module documentation).
pub(crate) struct S3Upload {
    bucket: Arc<Bucket>,
    rel: Vec<u8>,
    spool: io::BufWriter<tempfile::NamedTempFile>,
    written: u64,
    /// The ETag of the old object the known runs are in (the first one named).
    base: Option<String>,
    /// Runs of the spool known to be in `base`, merged where contiguous in both.
    known: Vec<KnownRun>,
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
            base: None,
            known: Vec::new(),
        })
    }

    /// Notes that the `len` bytes just spooled at `offset` are at `from` in the old object.
    fn note_known(&mut self, offset: u64, from: u64, len: u64) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.known.last_mut() {
            if last.offset + last.len == offset && last.from + last.len == from {
                last.len += len;
                return;
            }
        }
        self.known.push(KnownRun { offset, from, len });
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

/// Where copied parts come from, and what each must hold.
struct CopySource {
    /// `x-amz-copy-source`: `bucket/key`, the key percent-encoded.
    source: String,
    /// The old object's ETag, as the precondition of every copy.
    etag: String,
    /// Per part of the plan, the MD5 (hex) of the bytes a copied part must hold.
    digests: Vec<Option<String>>,
}

impl TempFile for S3Upload {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> Result<()> {
        let S3Upload {
            bucket,
            rel,
            spool,
            written,
            base,
            known,
        } = *self;
        let spool = spool
            .into_inner()
            .map_err(|e| bucket.error(&rel, e.into_error()))?;
        let key = bucket.key(&rel);
        let path = spool.path().to_path_buf();
        // The copy path's parts, with the MD5 of each copied part's bytes, read here from the
        // spool (blocking work, off the runtime).
        let copied = match (base, plan_parts(written, &known, part_size(written))) {
            (Some(etag), Some(parts)) => match digests(spool.as_file(), &parts) {
                Ok(digests) => Some((
                    parts,
                    CopySource {
                        source: format!("{}/{}", bucket.bucket, percent_encode(&key)),
                        etag,
                        digests,
                    },
                )),
                Err(e) => {
                    tracing::debug!("{key}: reading the spool for the copy path: {e}");
                    None
                }
            },
            _ => None,
        };
        let task = {
            let bucket = bucket.clone();
            async move {
                let metadata = [
                    (meta::MTIME, meta::format_mtime(mtime_ns)),
                    (meta::MODE, meta::format_mode(mode)),
                ];
                if let Some((parts, source)) = copied {
                    let copy: u64 = parts
                        .iter()
                        .filter(|p| matches!(p, Part::Copy { .. }))
                        .map(Part::len)
                        .sum();
                    match put_parts(&bucket, &key, &path, &metadata, &parts, Some(&source)).await {
                        Ok(()) => {
                            tracing::debug!(
                                "{key}: {copy} of {written} bytes copied from the old object"
                            );
                            return Ok(());
                        }
                        Err(e) => tracing::debug!(
                            "{key}: building from the old object failed, sending it whole: {e}"
                        ),
                    }
                }
                if written <= SINGLE_PUT_MAX {
                    put_whole(&bucket, &key, &path, written, &metadata).await
                } else {
                    let parts = upload_parts(written);
                    put_parts(&bucket, &key, &path, &metadata, &parts, None).await
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

    /// Files large enough for two parts: a smaller one is one PutObject whatever it holds.
    fn reuses_target(&self, size: u64) -> bool {
        size >= 2 * MIN_PART
    }

    /// Records the run when `target` is an ETag (the first one named; bytes said to be in
    /// another object are only written).
    fn write_known(
        &mut self,
        data: &[u8],
        target: &ChangeKey,
        target_offset: u64,
    ) -> io::Result<()> {
        let etag = match target {
            ChangeKey::Opaque(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        };
        let usable = match (&self.base, etag) {
            (_, None) => false,
            (None, Some(etag)) => {
                self.base = Some(etag.to_string());
                true
            }
            (Some(base), Some(etag)) => base == etag,
        };
        let offset = self.written;
        self.write_all(data)?;
        if usable {
            self.note_known(offset, target_offset, data.len() as u64);
        }
        Ok(())
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

/// A plain multipart upload of `len` bytes: parts of [`part_size`], the last one smaller.
pub(crate) fn upload_parts(len: u64) -> Vec<Part> {
    let size = part_size(len);
    (0..len.div_ceil(size))
        .map(|i| Part::Upload {
            offset: i * size,
            len: size.min(len - i * size),
        })
        .collect()
}

/// The parts of a file of `len` bytes built from the old object, given the runs of it the old
/// object holds (`known`, in file order, not overlapping) and the size of sent parts:
/// runs of [`MIN_PART`] or more are copied, the rest sent, and every part but the last is at
/// least [`MIN_PART`], a short sent part taking bytes from a neighbouring copy (which keeps
/// [`MIN_PART`]) or, when neither can spare them, the next copy being sent instead. `None`
/// when nothing would be copied, the file is too small for two parts, or the plan needs more
/// than S3's 10,000 parts. Pure.
pub(crate) fn plan_parts(len: u64, known: &[KnownRun], part: u64) -> Option<Vec<Part>> {
    if len < 2 * MIN_PART {
        return None;
    }
    // Segments in file order: `from` is the old offset of a copied one, `None` a sent one.
    #[derive(Clone, Copy)]
    struct Segment {
        offset: u64,
        len: u64,
        from: Option<u64>,
    }
    let mut segments: Vec<Segment> = Vec::new();
    let mut at = 0;
    for run in known {
        let start = run.offset.max(at);
        let end = run.offset.saturating_add(run.len).min(len);
        if end <= start || end - start < MIN_PART {
            continue;
        }
        if start > at {
            segments.push(Segment {
                offset: at,
                len: start - at,
                from: None,
            });
        }
        segments.push(Segment {
            offset: start,
            len: end - start,
            from: Some(run.from + (start - run.offset)),
        });
        at = end;
    }
    if at < len {
        segments.push(Segment {
            offset: at,
            len: len - at,
            from: None,
        });
    }
    // Sent segments are never adjacent (merged below), so a short one that is not last has a
    // copied one after it.
    while let Some(i) = segments
        .iter()
        .position(|s| s.from.is_none() && s.len < MIN_PART && s.offset + s.len < len)
    {
        let need = MIN_PART - segments[i].len;
        let spare = |s: &Segment| s.len.saturating_sub(MIN_PART);
        let after = segments.get(i + 1).map_or(0, spare);
        let before = match i.checked_sub(1) {
            Some(b) => spare(&segments[b]),
            None => 0,
        };
        if after + before >= need {
            let take = need.min(after);
            if take > 0 {
                let next = &mut segments[i + 1];
                next.offset += take;
                next.len -= take;
                next.from = next.from.map(|f| f + take);
                segments[i].len += take;
            }
            let take = need - take;
            if take > 0 {
                segments[i - 1].len -= take;
                segments[i].offset -= take;
                segments[i].len += take;
            }
        } else {
            segments[i + 1].from = None;
        }
        // Merge neighbouring sent segments.
        let mut merged: Vec<Segment> = Vec::with_capacity(segments.len());
        for s in segments {
            match merged.last_mut() {
                Some(last) if last.from.is_none() && s.from.is_none() => last.len += s.len,
                _ => merged.push(s),
            }
        }
        segments = merged;
    }
    if segments.iter().all(|s| s.from.is_none()) {
        return None;
    }
    let mut parts = Vec::new();
    for s in &segments {
        let pieces = match s.from {
            // Equal pieces of at most `part` bytes, each at least MIN_PART (a segment
            // shorter than that is the file's last, one piece).
            None => s.len.div_ceil(part).min(s.len / MIN_PART).max(1),
            Some(_) => s.len.div_ceil(MAX_PART),
        };
        let (base, extra) = (s.len / pieces, s.len % pieces);
        let mut offset = s.offset;
        for i in 0..pieces {
            let len = base + u64::from(i < extra);
            parts.push(match s.from {
                None => Part::Upload { offset, len },
                Some(from) => Part::Copy {
                    offset,
                    from: from + (offset - s.offset),
                    len,
                },
            });
            offset += len;
        }
    }
    (parts.len() as u64 <= MAX_PARTS).then_some(parts)
}

/// The MD5 (hex) of the spooled bytes of each copied part.
fn digests(spool: &std::fs::File, parts: &[Part]) -> io::Result<Vec<Option<String>>> {
    let mut buf = vec![0u8; 1 << 20];
    parts
        .iter()
        .map(|part| {
            let Part::Copy { offset, len, .. } = *part else {
                return Ok(None);
            };
            let mut md5 = Md5::new();
            let mut done = 0;
            while done < len {
                let n = (len - done).min(buf.len() as u64) as usize;
                spool.read_exact_at(&mut buf[..n], offset + done)?;
                md5.update(&buf[..n]);
                done += n as u64;
            }
            Ok(Some(hex(&md5.finalize())))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A multipart upload of `parts`, copied ones from `source`; aborted when any step fails.
async fn put_parts(
    bucket: &Bucket,
    key: &str,
    path: &std::path::Path,
    metadata: &[(&str, String); 2],
    parts: &[Part],
    source: Option<&CopySource>,
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
    let result = send_parts(bucket, key, path, &upload_id, parts, source).await;
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

/// Sends or copies each part in turn, then completes the upload.
async fn send_parts(
    bucket: &Bucket,
    key: &str,
    path: &std::path::Path,
    upload_id: &str,
    parts: &[Part],
    source: Option<&CopySource>,
) -> io::Result<()> {
    let mut completed = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let e_tag = match *part {
            Part::Upload { offset, len } => bucket
                .client
                .upload_part()
                .bucket(&bucket.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .body(body(path, offset, len).await?)
                .send()
                .await
                .map_err(|e| io_error("UploadPart", e))?
                .e_tag()
                .map(str::to_string),
            Part::Copy { from, len, .. } => {
                let source = source
                    .ok_or_else(|| io::Error::other("a copied part without an object to copy"))?;
                let copied = bucket
                    .client
                    .upload_part_copy()
                    .bucket(&bucket.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .copy_source(&source.source)
                    .copy_source_range(format!("bytes={from}-{}", from + len - 1))
                    .copy_source_if_match(&source.etag)
                    .send()
                    .await
                    .map_err(|e| io_error("UploadPartCopy", e))?;
                let e_tag = copied
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_string);
                // A server that ignores the precondition (moto does) copies whatever the key
                // holds now: the part's MD5 tells.
                let want = source.digests.get(i).and_then(Option::as_deref);
                let got = e_tag.as_deref().map(|t| t.trim_matches('"'));
                let same = matches!((got, want), (Some(g), Some(w)) if g.eq_ignore_ascii_case(w));
                if !same {
                    return Err(io::Error::other(format!(
                        "UploadPartCopy: part {number} is not the bytes expected (ETag {got:?}): \
                         the object changed, or its part ETags are no MD5s"
                    )));
                }
                e_tag
            }
        };
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(e_tag)
                .build(),
        );
    }
    bucket
        .client
        .complete_multipart_upload()
        .bucket(&bucket.bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| io_error("CompleteMultipartUpload", e))
}

#[cfg(test)]
mod tests;
