//! An object opened for reading: ranged GETs with a read-ahead that grows only while the
//! reader reads on.
//!
//! Every GET names the ETag the object had at open (`If-Match`), so a handle reads the object
//! it opened or fails, never a mix of two versions. After an open or a seek elsewhere a GET
//! asks for [`FIRST_WINDOW`] (or what the read needs, if more): the audio parsers look at a
//! header, then the end, then back, and every byte asked for crosses the network. Each read
//! that continues where the last GET ended doubles the window, up to [`MAX_WINDOW`]. The last
//! few blocks are kept, so a parser that seeks back a little reads them from memory.

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::client::{self, block_on, io_error};
use super::origin::{Bucket, Head};
use crate::origin::{EntryStat, OriginFile};

/// The read-ahead after an open or a seek elsewhere.
const FIRST_WINDOW: u64 = 32 * 1024;
/// The largest GET a sequential reader earns.
const MAX_WINDOW: u64 = 8 * 1024 * 1024;
/// Blocks kept for reading again.
const RECENT: usize = 4;

/// An open object (see the module documentation).
pub(crate) struct S3File {
    bucket: Arc<Bucket>,
    key: String,
    head: Head,
    pos: u64,
    /// The last blocks fetched, newest last: (offset, bytes).
    recent: VecDeque<(u64, bytes::Bytes)>,
    /// Where the last GET ended: a GET from there is sequential.
    next_sequential: Option<u64>,
    window: u64,
}

impl std::fmt::Debug for S3File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3File")
            .field("key", &self.key)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl S3File {
    pub(crate) fn new(bucket: Arc<Bucket>, key: String, head: Head) -> S3File {
        S3File {
            bucket,
            key,
            head,
            pos: 0,
            recent: VecDeque::new(),
            next_sequential: None,
            window: FIRST_WINDOW,
        }
    }

    /// The kept block holding `offset`, and where in it `offset` is.
    fn kept(&self, offset: u64) -> Option<(&bytes::Bytes, usize)> {
        self.recent.iter().rev().find_map(|(start, block)| {
            let end = start + block.len() as u64;
            (offset >= *start && offset < end).then(|| (block, (offset - start) as usize))
        })
    }

    /// Fetches the block at `offset` (which is before the end): at least `want` bytes unless
    /// the object ends sooner, more as the window allows.
    fn fetch(&mut self, offset: u64, want: u64) -> io::Result<()> {
        self.window = match self.next_sequential == Some(offset) {
            true => (self.window * 2).min(MAX_WINDOW),
            false => FIRST_WINDOW,
        };
        let len = want
            .min(MAX_WINDOW)
            .max(self.window)
            .min(self.head.size - offset);
        let last = offset + len - 1;
        let bucket = self.bucket.clone();
        let (key, etag) = (self.key.clone(), self.head.etag.clone());
        let block = block_on(async move {
            let answer = bucket
                .client
                .get_object()
                .bucket(&bucket.bucket)
                .key(&key)
                .range(format!("bytes={offset}-{last}"))
                .if_match(&etag)
                .send()
                .await;
            let out = match answer {
                Ok(out) => out,
                Err(e) if client::status(&e) == Some(412) => {
                    return Err(io::Error::other(format!(
                        "{key}: changed while it was read (its ETag is no longer {etag})"
                    )))
                }
                Err(e) => return Err(io_error("GetObject", e)),
            };
            out.body
                .collect()
                .await
                .map(|b| b.into_bytes())
                .map_err(|e| {
                    io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("GetObject: the body broke off ({e})"),
                    )
                })
        })??;
        if block.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "GetObject: {} bytes at {offset} where {len} were asked for",
                    block.len()
                ),
            ));
        }
        self.next_sequential = Some(offset + len);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((offset, block));
        Ok(())
    }

    /// Copies what is at `offset` into `buf`, fetching when it is not kept; returns how many
    /// bytes (0 only at or past the end).
    fn read_at_most(&mut self, buf: &mut [u8], offset: u64, want: u64) -> io::Result<usize> {
        if buf.is_empty() || offset >= self.head.size {
            return Ok(0);
        }
        if self.kept(offset).is_none() {
            self.fetch(offset, want)?;
        }
        let (block, at) = self
            .kept(offset)
            .ok_or_else(|| io::Error::other("GetObject: the block fetched is gone"))?;
        let n = buf.len().min(block.len() - at);
        buf[..n].copy_from_slice(&block[at..at + n]);
        Ok(n)
    }
}

impl Read for S3File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.read_at_most(buf, self.pos, buf.len() as u64)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3File {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.head.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.pos)
    }
}

impl OriginFile for S3File {
    /// The object's metadata now (a HeadObject): a new ETag, size or mtime shows a rewrite.
    fn stat(&mut self) -> io::Result<EntryStat> {
        let bucket = self.bucket.clone();
        let key = self.key.clone();
        match block_on(async move { bucket.head(&key).await })?? {
            Some(head) => Ok(head.stat()),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: removed while open", self.key),
            )),
        }
    }

    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.head.size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: shorter than {offset} + {} bytes", self.key, buf.len()),
            ));
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let want = (buf.len() - done) as u64;
            done += self.read_at_most(&mut buf[done..], at, want)?;
        }
        Ok(())
    }
}
