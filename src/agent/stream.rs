//! A cold pull streamed while the source is scanned (protocol 6): when the destination holds
//! nothing yet, every file the source's scan reads will be sent, so the server sends each one
//! as soon as its read is verified, instead of waiting for the whole scan and then for the
//! destination's requests. The link works while the source's disk does.
//!
//! The server's side is a [`CopySink`] ([`Streamer`]): each file read is kept in memory (up to
//! [`MAX_STREAMED`] bytes; a larger file is left to the ordinary requests) and, once its read
//! is verified, sent as one [`Message::Streamed`] and its chunks as [`Message::Chunk`]s under
//! the connection's lock, the chunks of tags, padding and structure packed. The destination's
//! side ([`Receiving`]) checks every chunk against its id as it arrives and hands the bytes
//! to the destination's own [`CopySink`] (the cold sync's copy, `sync::cold`), which writes
//! each file under a temporary name and commits it once whole; a file with a chunk that does
//! not match is thrown away and left to the plan, which asks for it as for any other.
//!
//! Both ends remember the chunks most recently streamed ([`Recent`], the same choices on both
//! sides, in the same order): such a chunk is not sent again, the destination takes it from
//! its memory (the same cover picture in every track of an album, the same padding).
//!
//! Never does: hand the destination a byte that was not checked against its chunk's id, or
//! commit a file one of whose chunks failed.

use std::collections::{HashMap, VecDeque};
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::provider::{chunk_kinds, compressible_chunks, PACK_BYTES};
use super::resume::Resume;
use super::wire::{check_path, write_chunks_vectored, Message, Packer, MAX_CHUNK};
use crate::chunk::{keeps_history, Tee, VerifiedChunk};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId};
use crate::origin::{ChangeKey, EntryKind, EntryStat};
use crate::repo::{EncodedList, PackedChunk, Repository};
use crate::report::display_path;
use crate::scan::{CopySink, FileCopy};
use crate::snapshot::ChunkList;

/// A file larger than this is not streamed (its read is not kept in memory): the destination
/// asks for its chunks after the scan, as for any file.
pub(super) const MAX_STREAMED: u64 = 32 << 20;

/// Bytes of chunks both ends remember from the stream, at most.
const RECENT_BYTES: u64 = 16 << 20;

/// Chunk lists received in the stream stored in one transaction: each commit is durable and
/// rewrites the pages its random keys land on, so they are few (as a scan's batches are,
/// `scan::BATCH_FILES`); a chunk list is a few hundred bytes, its history chunks compressed.
/// 2,048 rather than 512 took about a sixth off the SSH initial pull of 100,000 files with the
/// client's peak RSS at 93–94 MiB; 4,096 took more off but passed 96 MiB (`docs/benchmarks.md`).
const LISTS_BATCH: usize = 2048;

/// Whether a file of chunk list `list` is streamed: not when its chunks are a transformed
/// representation of its bytes (an Ogg file's pages are named with their sequence numbers and
/// CRCs zeroed, its header pages reassembled), which only the whole file's rebuilding proves.
fn streamable(list: &ChunkList) -> bool {
    list.file_hash.is_none()
}

/// The chunks streamed most recently, oldest first, up to [`RECENT_BYTES`]: the server keeps
/// their ids (`V = ()`), the destination their bytes (`None` for a chunk that failed its
/// check). Both ends make the same insertions in the same order, so they always hold the same
/// ids.
struct Recent<V> {
    order: VecDeque<(ChunkId, u32)>,
    held: HashMap<ChunkId, V>,
    bytes: u64,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent {
            order: VecDeque::new(),
            held: HashMap::new(),
            bytes: 0,
        }
    }
}

impl<V> Recent<V> {
    fn get(&self, id: &ChunkId) -> Option<&V> {
        self.held.get(id)
    }

    /// Remembers chunk `id` of `len` bytes (absent: the caller checked), forgetting the oldest
    /// beyond the budget.
    fn insert(&mut self, id: ChunkId, len: u32, value: V) {
        self.order.push_back((id, len));
        self.held.insert(id, value);
        self.bytes += u64::from(len);
        while self.bytes > RECENT_BYTES {
            let Some((old, len)) = self.order.pop_front() else {
                break;
            };
            self.held.remove(&old);
            self.bytes -= u64::from(len);
        }
    }
}

/// The connection's output, as the server shares it with its heartbeat.
pub(super) type Output = Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>;

/// What the stream's writers share: taken before the output, for a whole file.
#[derive(Default)]
struct Sent {
    recent: Recent<()>,
    packer: Packer,
}

/// Writes the chunks `plain` holds to `out` (what its buffer holds first), and forgets them.
fn write_plain(
    out: &mut BufWriter<Box<dyn Write + Send>>,
    plain: &mut Vec<&[u8]>,
) -> std::io::Result<()> {
    if plain.is_empty() {
        return Ok(());
    }
    out.flush()?;
    write_chunks_vectored(out.get_mut(), plain)?;
    plain.clear();
    Ok(())
}

/// The server's side: sends each file the scan reads and verifies.
pub(super) struct Streamer {
    output: Output,
    sent: Mutex<Sent>,
    /// A write failed (the client went away): nothing more is streamed.
    broken: AtomicBool,
}

impl Streamer {
    pub(super) fn new(output: Output) -> Self {
        Streamer {
            output,
            sent: Mutex::new(Sent::default()),
            broken: AtomicBool::new(false),
        }
    }

    /// Sends one file: its header, then its chunks not remembered, in order.
    fn send(&self, path: &[u8], stat: &EntryStat, list: &ChunkList, data: &[u8]) -> Result<()> {
        let lost = |e| super::wire::lost("client", e);
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = &mut *sent;
        let mut out = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        let header = Message::Streamed {
            path: path.to_vec(),
            mode: stat.mode,
            mtime_ns: stat.mtime_ns,
            size: stat.size,
            list: list.encode(),
        };
        // The header packs with the tag chunks that follow it (names and tags compress).
        sent.packer.push(&header).map_err(lost)?;
        let worth = compressible_chunks(list);
        // Chunks sent as they are (audio, pictures), consecutive ones written together
        // straight from `data`, after whatever the output buffer holds.
        let mut plain: Vec<&[u8]> = Vec::new();
        for ((offset, chunk), worth) in list.with_offsets().zip(worth) {
            if sent.recent.get(&chunk.id).is_some() {
                continue;
            }
            sent.recent.insert(chunk.id, chunk.len, ());
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let Some(bytes) = start
                .checked_add(chunk.len as usize)
                .and_then(|end| data.get(start..end))
            else {
                return Err(Error::InvalidInput(format!(
                    "{}: the chunk list does not describe the bytes read",
                    display_path(path)
                )));
            };
            if worth {
                write_plain(&mut out, &mut plain).map_err(lost)?;
                sent.packer.push_chunk(bytes).map_err(lost)?;
                if sent.packer.len() >= PACK_BYTES {
                    sent.packer.flush_to(&mut *out).map_err(lost)?;
                }
            } else {
                sent.packer.flush_to(&mut *out).map_err(lost)?;
                plain.push(bytes);
            }
        }
        write_plain(&mut out, &mut plain).map_err(lost)?;
        // What waits in the pack goes with the next file's audio, or at the end: the names
        // and tags of many small files compress together.
        out.flush().map_err(lost)
    }

    /// Sends what waits to be packed: called once the scan is over, before the snapshot is
    /// described.
    pub(super) fn finish(&self) -> Result<()> {
        let lost = |e| super::wire::lost("client", e);
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = self.output.lock().unwrap_or_else(PoisonError::into_inner);
        sent.packer.flush_to(&mut *out).map_err(lost)?;
        out.flush().map_err(lost)
    }
}

impl CopySink for Streamer {
    fn start(&self, path: &[u8], stat: &EntryStat) -> Option<Box<dyn FileCopy + '_>> {
        if stat.size > MAX_STREAMED || self.broken.load(Ordering::Relaxed) {
            return None;
        }
        Some(Box::new(Sending {
            streamer: self,
            path: path.to_vec(),
            data: Some(Vec::with_capacity(stat.size as usize)),
        }))
    }
}

/// One file being read, its bytes kept until the read is verified.
struct Sending<'s> {
    streamer: &'s Streamer,
    path: Vec<u8>,
    /// `None` once given up.
    data: Option<Vec<u8>>,
}

impl Tee for Sending<'_> {
    fn bytes(&mut self, offset: u64, bytes: &[u8]) {
        let Some(data) = self.data.as_mut() else {
            return;
        };
        // A pass that starts over (a container read again as plain bytes) replaces the
        // bytes kept from where it starts.
        if offset < data.len() as u64 {
            data.truncate(offset as usize);
        }
        if offset != data.len() as u64 || offset + bytes.len() as u64 > MAX_STREAMED {
            self.data = None;
            return;
        }
        data.extend_from_slice(bytes);
    }
}

impl FileCopy for Sending<'_> {
    fn finish(mut self: Box<Self>, stat: &EntryStat, list: &ChunkList, _: &ContentId) {
        let Some(data) = self.data.take() else {
            return;
        };
        if data.len() as u64 != stat.size || list.size() != stat.size || !streamable(list) {
            return;
        }
        if let Err(e) = self.streamer.send(&self.path, stat, list, &data) {
            tracing::debug!("{}: not streamed: {e}", display_path(&self.path));
            self.streamer.broken.store(true, Ordering::Relaxed);
        }
    }
}

/// `data`, sent as chunk `id` of `len` bytes, when it is that chunk.
fn verify(id: ChunkId, len: u32, data: Vec<u8>) -> Option<VerifiedChunk<Bytes>> {
    if data.len() != len as usize {
        return None;
    }
    VerifiedChunk::check(id, Bytes::from(data))
}

/// Which chunks of `list` the repository keeps as history (`chunk::keeps_history`: tags,
/// padding and structure, never audio or pictures).
fn history_mask(list: &ChunkList) -> Vec<bool> {
    chunk_kinds(list)
        .map(|kind| keeps_history(list.format, kind))
        .collect()
}

/// The destination's side: takes each streamed file into the destination's copy.
#[derive(Default)]
pub(super) struct Receiving {
    recent: Recent<Option<Bytes>>,
    /// Chunk lists received and not yet stored, each with its encoding.
    lists: Vec<(ChunkList, EncodedList)>,
    /// The history chunks of the contents received, compressed, not yet stored: kept as they
    /// arrive, so that the destination's scan at the end of the sync need not read them back
    /// from every file it wrote.
    history: Vec<(ContentId, Vec<PackedChunk>)>,
}

impl Receiving {
    /// Takes the file a [`Message::Streamed`] announces, reading its chunks with `next`: its
    /// bytes go to `copy` (when given) and it is finished there only when every chunk
    /// matched its id. Its chunk list is stored in `repo` (in batches), so that it is not
    /// asked for again, and its history chunks are kept there when every one of them matched. Errors: a header or chunk list that breaks the protocol (`protocol`),
    /// and `next`'s.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn file(
        &mut self,
        repo: &Repository,
        header: Message,
        resume: &mut Resume,
        next: &mut dyn FnMut() -> Result<Message>,
        copy: Option<&dyn CopySink>,
        protocol: &dyn Fn(String) -> Error,
    ) -> Result<()> {
        let Message::Streamed {
            path,
            mode,
            mtime_ns,
            size,
            list,
        } = header
        else {
            return Err(protocol("expected a streamed file".into()));
        };
        check_path(&path).map_err(protocol)?;
        let list: ChunkList = postcard::from_bytes(&list).map_err(|_| {
            protocol(format!(
                "{}: its chunk list does not decode",
                display_path(&path)
            ))
        })?;
        if list.chunks.iter().any(|c| c.len == 0 || c.len > MAX_CHUNK) || list.size() != size {
            return Err(protocol(format!(
                "{}: a chunk list that does not describe {size} bytes",
                display_path(&path)
            )));
        }
        let stat = EntryStat {
            kind: EntryKind::File,
            size,
            mtime_ns,
            change: ChangeKey::default(),
            mode,
        };
        let mut file = copy.and_then(|c| c.start(&path, &stat));
        // Its chunks are kept for a retry, as those of a file written from requests are.
        resume.file(&path);
        let mut whole = true;
        let is_history = history_mask(&list);
        let mut history = Some(Vec::new());
        for ((offset, chunk), is_history) in list.with_offsets().zip(is_history) {
            let bytes = match self.recent.get(&chunk.id) {
                Some(held) => held.as_deref(),
                None => {
                    let Message::Chunk(data) = next()? else {
                        return Err(protocol(format!(
                            "{}: expected a chunk of the streamed file",
                            display_path(&path)
                        )));
                    };
                    let data = verify(chunk.id, chunk.len, data);
                    match &data {
                        Some(verified) => resume.keep_shared(verified),
                        None => tracing::debug!(
                            "{}: streamed chunk {} does not match its hash; the file is left to the plan",
                            display_path(&path),
                            chunk.id.short()
                        ),
                    }
                    self.recent
                        .insert(chunk.id, chunk.len, data.map(VerifiedChunk::into_bytes));
                    self.recent.get(&chunk.id).and_then(|held| held.as_deref())
                }
            };
            match (is_history, bytes, history.as_mut()) {
                // Kept compressed until the batch is stored (a compression that fails leaves
                // the content's history to the destination's scan, as a damaged chunk does).
                (true, Some(bytes), Some(kept)) => match PackedChunk::new(chunk.id, bytes) {
                    Ok(packed) => kept.push(packed),
                    Err(_) => history = None,
                },
                (true, None, _) => history = None,
                _ => {}
            }
            match (bytes, file.as_mut()) {
                (Some(bytes), Some(file)) if whole => file.bytes(offset, bytes),
                (Some(_), _) => {}
                (None, _) => whole = false,
            }
        }
        let encoded = EncodedList::of(&list);
        if let Some(history) = history {
            self.history.push((encoded.id, history));
        }
        // Dropped unfinished, a copy is thrown away.
        if let (Some(file), true) = (file, whole) {
            file.finish(&stat, &list, &encoded.id);
        }
        self.lists.push((list, encoded));
        if self.lists.len() >= LISTS_BATCH {
            self.store(repo)?;
        }
        Ok(())
    }

    /// Stores the chunk lists received so far, and keeps their history chunks.
    pub(super) fn store(&mut self, repo: &Repository) -> Result<()> {
        if self.lists.is_empty() && self.history.is_empty() {
            return Ok(());
        }
        let mut writer = repo.writer()?;
        // Merged when the stream ends (`RemoteSource::await_source`), or by the next lookup.
        writer.stage_locations();
        let mut tables = writer.tables()?;
        // In key order, as a scan writes them (`scan::record_batches`).
        self.lists
            .sort_unstable_by(|a, b| a.1.id.as_bytes().cmp(b.1.id.as_bytes()));
        for (list, encoded) in &self.lists {
            tables.put_encoded(encoded, list)?;
        }
        tables.keep_packed_many(
            self.history
                .iter()
                .map(|(content, chunks)| (content, chunks.as_slice())),
        )?;
        drop(tables);
        writer.commit()?;
        self.lists.clear();
        self.history.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::{chunk_file, FastCdc};

    /// Streams the fixture `name` into `receiving` (no copy at the destination), its first
    /// history chunk damaged on the wire when `damage`; returns its content and history.
    fn stream_fixture(
        repo: &Repository,
        receiving: &mut Receiving,
        name: &str,
        damage: bool,
    ) -> (ContentId, Vec<(ChunkId, Vec<u8>)>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/audio/Aurora Tones/First Light")
            .join(name);
        let bytes = std::fs::read(&path).unwrap();
        let chunked = chunk_file(
            &mut std::fs::File::open(&path).unwrap(),
            bytes.len() as u64,
            &FastCdc::default(),
        )
        .unwrap();
        let list = chunked.list;
        assert!(!chunked.history.is_empty(), "{name} has a tag");
        let mut damaged = !damage;
        let mut seen = std::collections::HashSet::new();
        let mut chunks = VecDeque::new();
        for ((offset, chunk), history) in list.with_offsets().zip(history_mask(&list)) {
            if seen.insert(chunk.id) {
                let start = offset as usize;
                let mut data = bytes[start..start + chunk.len as usize].to_vec();
                if history && !damaged {
                    data[0] ^= 1;
                    damaged = true;
                }
                chunks.push_back(Message::Chunk(data));
            }
        }
        let header = Message::Streamed {
            path: name.as_bytes().to_vec(),
            mode: 0o644,
            mtime_ns: 0,
            size: bytes.len() as u64,
            list: list.encode(),
        };
        receiving
            .file(
                repo,
                header,
                &mut Resume::default(),
                &mut || Ok(chunks.pop_front().expect("a chunk for every new id")),
                None,
                &|message| Error::InvalidInput(message),
            )
            .unwrap();
        receiving.store(repo).unwrap();
        (list.content_id(), chunked.history)
    }

    #[test]
    fn a_streamed_files_history_chunks_are_kept_unless_one_failed_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(&dir.path().join("repo")).unwrap().0;
        let mut receiving = Receiving::default();
        let (content, history) = stream_fixture(&repo, &mut receiving, "01 Dawn.mp3", false);
        assert!(repo.without_history(&[content]).unwrap().is_empty());
        for (id, data) in &history {
            assert_eq!(repo.kept_chunk(id).unwrap().as_deref(), Some(&data[..]));
        }
        // A damaged tag chunk: its content's history is left to be read back by the
        // destination's scan. (A new receiver: both ends' memory of the stream starts empty.)
        let mut receiving = Receiving::default();
        let (content, _) = stream_fixture(&repo, &mut receiving, "02 Zenith.mp3", true);
        assert_eq!(repo.without_history(&[content]).unwrap(), vec![content]);
    }

    #[test]
    fn recent_forgets_the_oldest_beyond_its_budget_alike_on_both_ends() {
        let mut ids: Recent<()> = Recent::default();
        let mut bytes: Recent<Option<Bytes>> = Recent::default();
        let len = 1u32 << 20;
        let count = (RECENT_BYTES / u64::from(len)) as usize + 3;
        let id = |i: usize| ChunkId::of(&i.to_le_bytes());
        for i in 0..count {
            ids.insert(id(i), len, ());
            bytes.insert(id(i), len, None);
        }
        for i in 0..count {
            let kept = i >= 3;
            assert_eq!(ids.get(&id(i)).is_some(), kept, "chunk {i}");
            assert_eq!(bytes.get(&id(i)).is_some(), kept, "chunk {i}");
        }
        assert_eq!(ids.bytes, RECENT_BYTES);
    }
}
