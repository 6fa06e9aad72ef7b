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
    read_ahead: ReadAhead,
}

/// How much the next GET asks for (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ReadAhead {
    /// Where the last GET ended: a GET from there is sequential.
    next_sequential: Option<u64>,
    window: u64,
}

impl ReadAhead {
    fn new() -> ReadAhead {
        ReadAhead {
            next_sequential: None,
            window: FIRST_WINDOW,
        }
    }

    /// The length of a GET at `offset` (before `size`, the object's length) for a read that
    /// needs `want` bytes: the window, doubled when the GET continues the last one and reset
    /// to [`FIRST_WINDOW`] when it does not, or what the read needs if more (up to
    /// [`MAX_WINDOW`]; a larger read takes several GETs), never past the end.
    fn plan(&mut self, offset: u64, want: u64, size: u64) -> u64 {
        self.window = match self.next_sequential == Some(offset) {
            true => (self.window * 2).min(MAX_WINDOW),
            false => FIRST_WINDOW,
        };
        let len = want
            .min(MAX_WINDOW)
            .max(self.window)
            .min(size.saturating_sub(offset));
        self.next_sequential = Some(offset + len);
        len
    }
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
            read_ahead: ReadAhead::new(),
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
        let len = self.read_ahead.plan(offset, want, self.head.size);
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: nothing to read at {offset}", self.key),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn a_parser_that_jumps_about_asks_for_little() {
        let size = 30 * 1024 * KIB;
        let mut plan = ReadAhead::new();
        // The header: one small GET, not the file.
        assert_eq!(plan.plan(0, 10, size), 32 * KIB);
        // The end (ID3v1, APE): the window again, cut at the end of the file.
        assert_eq!(plan.plan(size - 128, 128, size), 128);
        // Somewhere in the middle: the first window again, not a doubled one.
        assert_eq!(plan.plan(10 * 1024 * KIB, 4 * KIB, size), 32 * KIB);
    }

    #[test]
    fn a_reader_that_reads_on_earns_a_larger_window() {
        let size = 100 * 1024 * KIB;
        let mut plan = ReadAhead::new();
        let mut offset = 0;
        let mut lens = Vec::new();
        for _ in 0..12 {
            let len = plan.plan(offset, 8 * KIB, size);
            lens.push(len / KIB);
            offset += len;
        }
        assert_eq!(
            lens,
            [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 8192, 8192, 8192],
            "doubling up to 8 MiB"
        );
        // A seek elsewhere starts over.
        assert_eq!(plan.plan(KIB, 8 * KIB, size), 32 * KIB);
    }

    #[test]
    fn a_large_read_is_fetched_whole_up_to_the_largest_window() {
        let mut plan = ReadAhead::new();
        assert_eq!(plan.plan(0, 2_100_000, 3_000_000), 2_100_000);
        assert_eq!(plan.plan(0, 20 * 1024 * KIB, 30 * 1024 * KIB), MAX_WINDOW);
        assert_eq!(plan.plan(5, 10, 5), 0, "nothing past the end");
    }
}
