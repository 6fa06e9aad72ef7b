//! The messages two musicfs processes exchange, their framing, and the checks every received
//! object passes before anything is stored or written. The format is in `docs/protocol.md`.

use std::io::{self, IoSlice, Read, Write};

use serde::{Deserialize, Serialize};

use crate::id::{ContentId, TreeId};
use crate::snapshot::{ChunkList, ChunkRef, Node, Tree};
use crate::sync::SyncSummary;

/// The protocol version this build speaks, and sends as a client. A server answers a
/// client of any version from [`OLDEST_PROTOCOL_VERSION`] on in the client's version; a
/// client needs the server to answer in its own.
pub const PROTOCOL_VERSION: u32 = 6;

/// The oldest client version a server still serves: version 2 lacks only the `Filter`
/// message, which such a client never sends; versions 2 and 3 lack `Packed`, which a server
/// never sends them (they are answered uncompressed).
pub const OLDEST_PROTOCOL_VERSION: u32 = 2;

/// The first version whose peers send and accept [`Message::Packed`].
pub const PACKED_SINCE: u32 = 4;

/// The first version whose destinations ask for trees and chunk lists by their place in the
/// snapshot ([`Message::GetSince`]) and whose sources answer with [`Message::Found`].
pub const PLACES_SINCE: u32 = 5;

/// The first version whose sources answer a [`Message::GetSince`] in one zstd frame (cut
/// only at 1 MiB), placing each entry sent unasked by its position in its tree's base, and
/// leaving out (as zeros) the ids of what the same message holds: an entry sent unasked in
/// its tree, a chunk in its list. The destination hashes those back in before its checks.
pub const ONE_FRAME_SINCE: u32 = 6;

/// The first version whose clients may ask, with [`Message::ColdPull`], for the files to be
/// streamed while the source is scanned ([`Message::Streamed`]).
pub const STREAM_SINCE: u32 = 6;

/// The first bytes of every session, so a stray shell banner is recognised as such.
pub const MAGIC: [u8; 8] = *b"musicfs\0";

/// No frame is larger; a longer length prefix is a protocol violation.
pub const MAX_FRAME: usize = 64 << 20;

/// No chunk is larger (FastCDC cuts at 256 KiB at most).
pub const MAX_CHUNK: u32 = 1 << 20;

/// No file name is longer, as on Linux.
pub const MAX_NAME: usize = 255;

/// No relative path is longer, as on Linux.
pub const MAX_PATH: usize = 4096;

/// What the source side of a sync reports about its snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The root tree.
    pub root: TreeId,
    /// Regular files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Paths the source could not read.
    pub unreadable: Vec<Vec<u8>>,
    /// The root directory's mode and mtime.
    pub root_meta: Option<(u32, i64)>,
}

/// One message. Requests are answered in the order they were sent.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Message {
    /// Both ends, first: the magic, the protocol version, the chunking rules' version
    /// (chunk ids are comparable only between equal rules).
    Hello {
        /// [`MAGIC`].
        magic: [u8; 8],
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// `chunk::CHUNKING_VERSION` (the repository format up to format 4, which older
        /// peers still send: the same number).
        format: u32,
    },
    /// Client: the server is the source; scan `path` and describe it.
    Pull {
        /// The directory, as the user wrote it (relative to the login directory).
        path: Vec<u8>,
        /// Read every file, whatever its metadata says.
        checksum: bool,
    },
    /// Client: the server is the destination; make `path` a copy of the client's snapshot.
    Push {
        /// The directory, as the user wrote it (created if missing).
        path: Vec<u8>,
        /// Remove entries absent from the source.
        delete: bool,
        /// Plan and count only.
        dry_run: bool,
        /// Delete nothing when the deletions would remove more files than this.
        max_delete: Option<u64>,
        /// The client's snapshot.
        source: SourceInfo,
    },
    /// Source: its snapshot (the answer to `Pull`).
    Source(SourceInfo),
    /// Destination: send these trees.
    GetTrees(Vec<TreeId>),
    /// Source: the encoded trees, in the order asked.
    Trees(Vec<Vec<u8>>),
    /// Destination: send these chunk lists.
    GetContents(Vec<ContentId>),
    /// Source: the encoded chunk lists, in the order asked.
    Contents(Vec<Vec<u8>>),
    /// Destination: send these chunks; each is answered by one `Chunk` or `NoChunk`.
    GetChunks(Vec<ChunkRef>),
    /// Source: one chunk's bytes.
    Chunk(#[serde(with = "bytes")] Vec<u8>),
    /// Source: it could not read this chunk.
    NoChunk,
    /// Destination (push): something happened, for the client's display.
    Event {
        /// `problem`, or the action (`write`, `delete`, …).
        kind: String,
        /// The path concerned.
        path: Vec<u8>,
        /// A problem's message.
        message: String,
        /// Bytes moved by an action.
        bytes: u64,
    },
    /// Destination (push): the sync is over.
    Done(SyncSummary),
    /// Either end: the session is over.
    Bye,
    /// Either end: it failed and stops; the message says why.
    Failed(String),
    /// Server: still working (sent every few seconds, so a long scan does not look like a
    /// dead connection), with how far its scan of a pulled directory has got: bytes read of
    /// the bytes it has to read. Shown as progress while the client waits for `Source`;
    /// ignored anywhere else.
    Working {
        /// Bytes the scan has read.
        done: u64,
        /// Bytes the scan has to read.
        total: u64,
    },
    /// Client (protocol 3), between `Hello` and `Pull` or `Push`, when there are rules: what
    /// the server's walk of its directory leaves out. Without it, nothing is.
    Filter(crate::filter::FilterSpec),
    /// Either end's answers (protocol 4): consecutive frames, compressed together as one zstd
    /// frame. The receiver reads the frames inside as if they had come one by one; none of
    /// them is itself `Packed`. Always the last variant, so that the others keep their tags.
    Packed {
        /// Bytes of the frames once decompressed, at most [`MAX_PACKED`].
        len: u32,
        /// The zstd frame.
        #[serde(with = "bytes")]
        data: Vec<u8>,
    },
    /// Destination (protocol 4): send these trees; each with the tree the destination holds
    /// at the same path, if any, against which the source may send it as a delta. Answered
    /// by `Objects`.
    GetTreesSince(Vec<(TreeId, Option<TreeId>)>),
    /// Destination (protocol 4): send these chunk lists; each with the chunk list the
    /// destination holds for the same path, if any (as `GetTreesSince`).
    GetContentsSince(Vec<(ContentId, Option<ContentId>)>),
    /// Source (protocol 4): the encoded trees or chunk lists asked by `GetTreesSince` or
    /// `GetContentsSince`, in the order asked.
    Objects(Vec<Object>),
    /// Destination (protocol 5): send the root tree (with the destination's base root, the
    /// root of its newest snapshot, if any), or these entries of trees already sent. Answered
    /// by `Found` messages, the last with `more == false`.
    GetSince {
        /// The source's root and the destination's base root: the session's first request.
        root: Option<(TreeId, Option<TreeId>)>,
        /// `(tree, entry)`: entry `entry` of the `tree`th tree sent in this session.
        entries: Vec<(u32, u32)>,
    },
    /// Source (protocol 5): trees and chunk lists, those asked first, in order, then those the
    /// source sends unasked (entries that differ from the base at the same path). Their
    /// encodings, one after another, are one zstd frame whose dictionary is the encodings of
    /// the bases of the items marked `based`, one after another.
    Found {
        /// What the frame holds, in order.
        items: Vec<Found>,
        /// `(item, chunk)`: chunk `chunk` of the chunk list of item `item` (an unasked chunk
        /// list), whose bytes follow the encodings in the frame, in order: the new chunks of a
        /// retagged file's tag block, sent before the destination asks.
        chunks: Vec<(u32, u32)>,
        /// Bytes of the encodings and chunks once decompressed, at most [`MAX_FRAME`].
        len: u32,
        /// The zstd frame.
        #[serde(with = "bytes")]
        data: Vec<u8>,
        /// Another `Found` follows with the rest of the answer.
        more: bool,
    },
    /// Client (protocol 6), instead of `Pull` when its destination holds nothing yet: the
    /// same request, and each file the scan reads is to be streamed ([`Message::Streamed`])
    /// before the snapshot is described.
    ColdPull {
        /// As `Pull`'s.
        path: Vec<u8>,
        /// As `Pull`'s.
        checksum: bool,
    },
    /// Server (protocol 6, after `ColdPull`, before `Source`): a file its scan has read and
    /// verified. Followed by one `Chunk` for each of its chunks in order (the file's bytes
    /// at the chunk's place), except the chunks both ends still remember from earlier in the
    /// stream (`agent::stream`), which are not sent again.
    Streamed {
        /// The file's path, relative to the pulled directory.
        path: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Modification time, ns since the epoch.
        mtime_ns: i64,
        /// Size in bytes.
        size: u64,
        /// Its chunk list's encoding.
        #[serde(with = "bytes")]
        list: Vec<u8>,
    },
}

/// A byte string encoded as serde's bytes rather than as a sequence of `u8`: postcard writes
/// both alike (a varint length, then the bytes), so the wire is unchanged, but bytes are
/// copied whole where a sequence is visited one element at a time, which made decoding the
/// chunks of an initial pull a fifth of the client's CPU.
mod bytes {
    use serde::de::{Deserializer, Error, SeqAccess, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(Bytes)
    }

    struct Bytes;

    impl<'de> Visitor<'de> for Bytes {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E: Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        /// A format that writes bytes as a sequence (none the protocol uses) still reads.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
            while let Some(b) = seq.next_element()? {
                bytes.push(b);
            }
            Ok(bytes)
        }
    }
}

/// One tree or chunk list of a [`Message::Found`] (protocol 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Found {
    /// Where it is: `None` for the root, else `(tree, entry)` as in `GetSince`. Its id is the
    /// one that entry names, its base the entry of the same name and kind in that tree's base.
    /// From protocol 6 on, an item sent unasked counts `entry` in that tree's base instead:
    /// its base is that entry, its id the one of the entry of the same name in the tree.
    pub at: Option<(u32, u32)>,
    /// Bytes of its encoding.
    pub size: u32,
    /// Its base's encoding is part of the dictionary.
    pub based: bool,
}

/// Compresses `encodings` (protocol 5's `Found`) with `dictionary`, the bases' encodings one
/// after another. Returns the frame and the length it decompresses to.
pub fn compress_found(encodings: &[u8], dictionary: &[u8]) -> io::Result<Vec<u8>> {
    let level = if encodings.len() + dictionary.len() <= SMALL_FOUND {
        SMALL_FOUND_LEVEL
    } else {
        FOUND_LEVEL
    };
    if dictionary.is_empty() {
        zstd::bulk::compress(encodings, level)
    } else {
        zstd::bulk::Compressor::with_dictionary(level, dictionary)?.compress(encodings)
    }
}

/// An answer of at most this many bytes (encodings and bases) is compressed at
/// [`SMALL_FOUND_LEVEL`]: a few milliseconds at most, for the answers of an edit.
const SMALL_FOUND: usize = 64 << 10;
const SMALL_FOUND_LEVEL: i32 = 19;

/// The encodings of a `Found`, decompressed with `dictionary` (the bases' encodings) and
/// checked against the sizes its items declare, and the bytes that follow them (its chunks);
/// a frame that declares more than [`MAX_FRAME`], does not decompress to `len` bytes, or
/// whose items add up to more, is refused.
pub fn open_found(
    items: &[Found],
    len: u32,
    data: &[u8],
    dictionary: &[u8],
) -> Result<(Vec<Vec<u8>>, Vec<u8>), Refusal> {
    let len = len as usize;
    if len > MAX_FRAME {
        return Err(format!("an answer of {len} bytes, over the limit"));
    }
    let total: u64 = items.iter().map(|i| u64::from(i.size)).sum();
    if total > len as u64 {
        return Err(format!(
            "an answer whose items add up to {total} bytes, {len} declared"
        ));
    }
    let bytes = if dictionary.is_empty() {
        zstd::bulk::decompress(data, len)
    } else {
        zstd::bulk::Decompressor::with_dictionary(dictionary)
            .and_then(|mut d| d.decompress(data, len))
    }
    .map_err(|e| format!("an answer that does not decompress: {e}"))?;
    if bytes.len() != len {
        return Err(format!(
            "an answer of {} bytes, {len} declared",
            bytes.len()
        ));
    }
    let mut at = 0;
    let encodings = items
        .iter()
        .map(|i| {
            let size = i.size as usize;
            at += size;
            bytes[at - size..at].to_vec()
        })
        .collect();
    Ok((encodings, bytes[at..].to_vec()))
}

/// zstd's level for `Found`, as for packs.
const FOUND_LEVEL: i32 = 3;

/// A tree or chunk list on the wire (protocol 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Object {
    /// Its encoding.
    Plain(Vec<u8>),
    /// Its encoding compressed by zstd with the encoding of the base the request named as the
    /// dictionary: what the two versions share costs a few bytes.
    Delta {
        /// Bytes of the encoding, at most [`MAX_FRAME`].
        len: u32,
        /// The zstd frame.
        data: Vec<u8>,
    },
}

impl Object {
    /// `encoded`, as a delta against `base` when that is smaller.
    pub fn against(encoded: Vec<u8>, base: Option<&[u8]>) -> Object {
        let delta = base.and_then(|base| {
            zstd::bulk::Compressor::with_dictionary(PACK_LEVEL, base)
                .and_then(|mut c| c.compress(&encoded))
                .ok()
        });
        match delta {
            Some(data) if data.len() + 8 < encoded.len() => Object::Delta {
                len: encoded.len() as u32,
                data,
            },
            _ => Object::Plain(encoded),
        }
    }

    /// The encoding; `base` is the encoding of the base the request named (`None`: none was
    /// named, and a delta is refused). A delta that does not decompress to the length it
    /// declares, or declares more than [`MAX_FRAME`], is refused.
    pub fn open(self, base: Option<&[u8]>) -> Result<Vec<u8>, Refusal> {
        match self {
            Object::Plain(bytes) => Ok(bytes),
            Object::Delta { len, data } => {
                let Some(base) = base else {
                    return Err("a delta against nothing".into());
                };
                let len = len as usize;
                if len > MAX_FRAME {
                    return Err(format!("a delta of {len} bytes, over the limit"));
                }
                let bytes = zstd::bulk::Decompressor::with_dictionary(base)
                    .and_then(|mut d| d.decompress(&data, len))
                    .map_err(|e| format!("a delta that does not decompress: {e}"))?;
                if bytes.len() != len {
                    return Err(format!("a delta of {} bytes, {len} declared", bytes.len()));
                }
                Ok(bytes)
            }
        }
    }
}

/// The postcard tag of [`Message::Packed`]: the first byte of its encoding.
const PACKED_TAG: u8 = 17;

/// No pack holds more bytes of frames once decompressed: a decompression bomb is refused
/// before it is inflated.
pub const MAX_PACKED: usize = 8 << 20;

/// zstd's level for packs: its default, fast and good on tag text, padding and names.
const PACK_LEVEL: i32 = crate::zstd_kept::LEVEL;

/// How often the server says it is still working.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes one frame: a little-endian `u32` length, then the postcard-encoded message.
pub fn write_message(out: &mut dyn Write, message: &Message) -> io::Result<()> {
    let mut frame = Vec::with_capacity(4 + encoded_size_hint(message));
    append_frame(&mut frame, message)?;
    out.write_all(&frame)
}

/// Writes `bytes` as one [`Message::Chunk`] frame, the very bytes [`write_message`] writes for
/// it, straight from the caller's buffer: a chunk streamed from a file read whole was copied
/// into a message, then into its frame, before its writer's buffer took it.
pub fn write_chunk(out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    let head = ChunkHead::new(bytes.len())?;
    out.write_all(head.bytes())?;
    out.write_all(bytes)
}

/// Writes each of `chunks` as one [`Message::Chunk`] frame (what [`write_chunk`] writes for
/// each, in order) with vectored writes, straight from the caller's buffers: nothing is
/// copied on the way to the kernel, and a file's audio goes down in one system call.
pub fn write_chunks_vectored(out: &mut dyn Write, chunks: &[&[u8]]) -> io::Result<()> {
    for group in chunks.chunks(VECTORED_CHUNKS) {
        let heads = group
            .iter()
            .map(|bytes| ChunkHead::new(bytes.len()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut slices = Vec::with_capacity(2 * group.len());
        for (head, bytes) in heads.iter().zip(group) {
            slices.push(IoSlice::new(head.bytes()));
            slices.push(IoSlice::new(bytes));
        }
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match out.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Chunks per vectored write: two slices each, under Linux's limit of 1,024 (`IOV_MAX`).
const VECTORED_CHUNKS: usize = 256;

/// What precedes a chunk's bytes in its frame: the frame's length, [`Message::Chunk`]'s tag,
/// then the bytes' length as postcard writes a `usize` (a varint, 7 bits a byte, least
/// significant first; at most 5 bytes under 4 GiB, above any frame's limit).
struct ChunkHead {
    head: [u8; 4 + 1 + 10],
    len: usize,
}

impl ChunkHead {
    fn new(len: usize) -> io::Result<ChunkHead> {
        let mut head = [0u8; 4 + 1 + 10];
        head[4] = CHUNK_TAG;
        let mut at = 5;
        let mut rest = len;
        loop {
            let low = (rest & 0x7f) as u8;
            rest >>= 7;
            if rest == 0 {
                head[at] = low;
                at += 1;
                break;
            }
            head[at] = low | 0x80;
            at += 1;
        }
        let frame = u32::try_from(at - 4 + len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "chunk over 4 GiB"))?;
        head[..4].copy_from_slice(&frame.to_le_bytes());
        Ok(ChunkHead { head, len: at })
    }

    fn bytes(&self) -> &[u8] {
        &self.head[..self.len]
    }
}

/// Appends `message`'s frame to `frames`: the message is encoded once, in place after room
/// left for its length, so a chunk's bytes are copied once on their way to the wire.
fn append_frame(frames: &mut Vec<u8>, message: &Message) -> io::Result<()> {
    let start = frames.len();
    frames.extend_from_slice(&[0; 4]);
    if let Err(e) = postcard::to_io(message, &mut *frames) {
        frames.truncate(start);
        return Err(io::Error::other(e));
    }
    // Over `MAX_FRAME`, the frame is refused by its reader, as before.
    let len = frames.len() - start - 4;
    frames[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// About how many bytes `message` encodes to when it carries bulk bytes, else a small guess:
/// the frame's buffer is allocated once.
fn encoded_size_hint(message: &Message) -> usize {
    match message {
        Message::Chunk(data) | Message::Packed { data, .. } => data.len() + 16,
        Message::Streamed { path, list, .. } => path.len() + list.len() + 48,
        _ => 64,
    }
}

/// `frames` compressed at [`PACK_LEVEL`], with the thread's kept context.
fn compress_pack(frames: &[u8]) -> io::Result<Vec<u8>> {
    crate::zstd_kept::compress(frames)
}

/// A pack's zstd frame decompressed into at most `capacity` bytes, with the thread's kept
/// context.
fn decompress_pack(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    crate::zstd_kept::decompress(data, capacity)
}

/// Frames waiting to be sent compressed together as one [`Message::Packed`].
#[derive(Default)]
pub struct Packer {
    frames: Vec<u8>,
}

impl Packer {
    /// Adds `message`'s frame to the pack.
    pub fn push(&mut self, message: &Message) -> io::Result<()> {
        append_frame(&mut self.frames, message)
    }

    /// Adds a [`Message::Chunk`] of `bytes` to the pack, as [`Packer::push`] would.
    pub fn push_chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_chunk(&mut self.frames, bytes)
    }

    /// Bytes of frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Writes the waiting frames to `out`: as one `Packed` message when zstd makes them
    /// smaller, else as they are (nothing is sent twice, nothing is lost either way).
    pub fn flush_to(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        let packed = (self.frames.len() <= MAX_PACKED)
            .then(|| compress_pack(&self.frames).ok())
            .flatten()
            // The `Packed` message costs its tag, two varints and a frame header.
            .filter(|data| data.len() + 16 < self.frames.len());
        match packed {
            Some(data) => write_message(
                out,
                &Message::Packed {
                    len: self.frames.len() as u32,
                    data,
                },
            )?,
            None => out.write_all(&self.frames)?,
        }
        self.frames.clear();
        Ok(())
    }
}

/// A reader of frames that opens every [`Message::Packed`] it meets and passes on the frames
/// inside in its place, so that whoever reads through it sees plain frames only. Other frames
/// pass through as they are. A pack that does not decompress, declares more than
/// [`MAX_PACKED`] bytes, inflates to another size than it declares, or holds anything but
/// whole frames none of which is a pack, is an `InvalidData` error (a protocol error).
pub struct Unpack<R> {
    inner: R,
    /// Bytes to give before the next frame is read: a frame's header (and first byte), or the
    /// frames of a pack.
    ready: Vec<u8>,
    given: usize,
    /// Bytes of the current plain frame still to pass through from `inner`.
    through: usize,
}

impl<R: Read> Unpack<R> {
    /// Reads frames from `inner`.
    pub fn new(inner: R) -> Unpack<R> {
        Unpack {
            inner,
            ready: Vec::new(),
            given: 0,
            through: 0,
        }
    }

    /// Reads the next frame's start; `false` at a clean end of stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        let mut header = [0u8; 5];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut header[got..4]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        self.ready.clear();
        self.given = 0;
        if len == 0 || len > MAX_FRAME {
            // `read_message` refuses it with its own words.
            self.ready.extend_from_slice(&header[..4]);
            self.through = 0;
            return Ok(true);
        }
        self.inner.read_exact(&mut header[4..5])?;
        if header[4] != PACKED_TAG {
            self.ready.extend_from_slice(&header);
            self.through = len - 1;
            return Ok(true);
        }
        let mut body = vec![0u8; len];
        body[0] = PACKED_TAG;
        self.inner.read_exact(&mut body[1..])?;
        self.ready = unpack(&body).map_err(|why| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad pack: {why}"))
        })?;
        self.through = 0;
        Ok(true)
    }
}

/// The frames of an encoded `Packed` message, checked.
fn unpack(body: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(Message::Packed { len, data }) = postcard::from_bytes(body) else {
        return Err("it does not decode".into());
    };
    let len = len as usize;
    if len > MAX_PACKED {
        return Err(format!("{len} bytes declared, over the limit"));
    }
    // `decompress` never writes past the capacity it is given: a bomb stops there.
    let frames = decompress_pack(&data, len).map_err(|e| format!("zstd: {e}"))?;
    if frames.len() != len {
        return Err(format!("{} bytes, {len} declared", frames.len()));
    }
    let mut at = 0;
    while at < frames.len() {
        let Some(header) = frames.get(at..at + 4) else {
            return Err("a frame cut short".into());
        };
        let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if size == 0 || frames.len() - at - 4 < size {
            return Err("a frame cut short".into());
        }
        if frames[at + 4] == PACKED_TAG {
            return Err("a pack inside a pack".into());
        }
        at += 4 + size;
    }
    Ok(frames)
}

impl<R: Read> Read for Unpack<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.given < self.ready.len() {
                let n = buf.len().min(self.ready.len() - self.given);
                buf[..n].copy_from_slice(&self.ready[self.given..self.given + n]);
                self.given += n;
                return Ok(n);
            }
            if self.through > 0 {
                let want = buf.len().min(self.through);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.through -= n;
                return Ok(n);
            }
            if !self.next_frame()? {
                return Ok(0);
            }
        }
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream before a frame starts.
pub fn read_message(input: &mut dyn Read) -> io::Result<Option<Message>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit"),
        ));
    }
    // A chunk's bytes are read straight into their own buffer: decoding the frame would copy
    // them once more. Its head is its tag and its length (postcard's varint, at most 5 bytes
    // for a length under 4 GiB); anything else is decoded as a whole.
    let mut head = [0u8; 6];
    let head_len = len.min(head.len());
    input.read_exact(&mut head[..head_len])?;
    if let Some(data_at) = chunk_data_at(&head[..head_len], len) {
        let mut data = Vec::with_capacity(len - data_at);
        data.extend_from_slice(&head[data_at..head_len]);
        data.resize(len - data_at, 0);
        input.read_exact(&mut data[head_len - data_at..])?;
        return Ok(Some(Message::Chunk(data)));
    }
    let mut body = vec![0u8; len];
    body[..head_len].copy_from_slice(&head[..head_len]);
    input.read_exact(&mut body[head_len..])?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad message: {e}")))
}

/// The postcard tag of [`Message::Chunk`].
const CHUNK_TAG: u8 = 9;

/// Where a chunk's bytes start in a frame of `len` bytes that begins with `head`, when the
/// frame is a [`Message::Chunk`] whose varint length (in its shortest form, as postcard
/// writes it) says exactly the rest of the frame; `None` otherwise.
fn chunk_data_at(head: &[u8], len: usize) -> Option<usize> {
    if head.first() != Some(&CHUNK_TAG) {
        return None;
    }
    let mut value = 0u64;
    for (i, &byte) in head[1..].iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let data_at = 2 + i;
            let shortest = i == 0 || byte != 0;
            return (shortest && (data_at as u64).checked_add(value) == Some(len as u64))
                .then_some(data_at);
        }
    }
    None
}

/// The error for a connection to `origin` that broke: transient, so a sync retries it.
pub(crate) fn lost(origin: &str, e: io::Error) -> crate::Error {
    crate::Error::Unreachable {
        origin: origin.to_string(),
        message: format!("connection lost: {e}"),
    }
}

/// Reads one frame from `origin`; `Ok(None)` at a clean end of stream. A frame that does not
/// decode is a protocol error, a failed read a lost connection.
pub(crate) fn receive(origin: &str, input: &mut dyn Read) -> crate::Result<Option<Message>> {
    read_message(input).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidData {
            crate::Error::Protocol {
                origin: origin.to_string(),
                message: e.to_string(),
            }
        } else {
            lost(origin, e)
        }
    })
}

/// Why a received object is refused.
pub type Refusal = String;

/// Decodes a tree that must hash to `id`, and checks every name in it.
pub fn check_tree(id: &TreeId, bytes: &[u8]) -> Result<Tree, Refusal> {
    let tree: Tree =
        postcard::from_bytes(bytes).map_err(|_| format!("tree {} does not decode", id.short()))?;
    if tree.tree_id() != *id {
        return Err(format!("tree {} does not match its hash", id.short()));
    }
    let mut previous: Option<&[u8]> = None;
    for entry in &tree.entries {
        check_name(&entry.name)?;
        if previous.is_some_and(|p| p >= entry.name.as_slice()) {
            return Err(format!(
                "tree {}: names out of order or repeated",
                id.short()
            ));
        }
        previous = Some(&entry.name);
        if let Node::Symlink { target } = &entry.node {
            if target.is_empty() || target.len() > MAX_PATH || target.contains(&0) {
                return Err(format!(
                    "symlink {:?}: bad target",
                    String::from_utf8_lossy(&entry.name)
                ));
            }
        }
    }
    Ok(tree)
}

/// Decodes a chunk list that must hash to `id` and describe a file of `size` bytes.
pub fn check_content(id: &ContentId, size: u64, bytes: &[u8]) -> Result<ChunkList, Refusal> {
    let list: ChunkList = postcard::from_bytes(bytes)
        .map_err(|_| format!("content {} does not decode", id.short()))?;
    if list.content_id() != *id {
        return Err(format!("content {} does not match its hash", id.short()));
    }
    if list.chunks.iter().any(|c| c.len == 0 || c.len > MAX_CHUNK) {
        return Err(format!(
            "content {}: a chunk of impossible size",
            id.short()
        ));
    }
    if list.size() != size {
        return Err(format!(
            "content {}: {} bytes, but the tree says {size}",
            id.short(),
            list.size()
        ));
    }
    Ok(list)
}

/// A file name a destination may create: not empty, not `.` or `..`, no `/` or NUL, at most
/// [`MAX_NAME`] bytes.
pub fn check_name(name: &[u8]) -> Result<(), Refusal> {
    if let Some(why) = crate::origin::bad_name(name) {
        return Err(format!(
            "refused the name {:?}: {why}",
            String::from_utf8_lossy(name)
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!("refused a name of {} bytes", name.len()));
    }
    Ok(())
}

/// A relative path whose every component passes [`check_name`], at most [`MAX_PATH`] bytes.
pub fn check_path(path: &[u8]) -> Result<(), Refusal> {
    if path.len() > MAX_PATH {
        return Err(format!("refused a path of {} bytes", path.len()));
    }
    if path.first() == Some(&b'/') {
        return Err(format!(
            "refused the absolute path {:?}",
            String::from_utf8_lossy(path)
        ));
    }
    path.split(|&b| b == b'/').try_for_each(check_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::TreeEntry;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_message(
            &mut buf,
            &Message::GetTrees(vec![TreeId::from_stored([7; 32])]),
        )
        .unwrap();
        write_message(&mut buf, &Message::Bye).unwrap();
        let mut input = buf.as_slice();
        assert!(matches!(
            read_message(&mut input).unwrap(),
            Some(Message::GetTrees(ids)) if ids == vec![TreeId::from_stored([7; 32])]
        ));
        assert!(matches!(
            read_message(&mut input).unwrap(),
            Some(Message::Bye)
        ));
        assert!(read_message(&mut input).unwrap().is_none());
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        let mut buf = Vec::new();
        write_message(&mut buf, &Message::Bye).unwrap();
        buf.pop();
        assert!(read_message(&mut buf.as_slice()).is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(read_message(&mut huge.as_slice()).is_err());
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        assert!(check_name(b"01 Song.flac").is_ok());
        assert!(check_path(b"/etc/passwd").is_err());
        assert!(check_path(b"a/../b").is_err());
        assert!(check_path(&[b'a'; MAX_PATH + 1]).is_err());
        assert!(check_path(b"Artist/Album/01.mp3").is_ok());
    }

    #[test]
    fn trees_must_match_their_hash_and_be_ordered() {
        let file = |name: &[u8]| TreeEntry {
            name: name.to_vec(),
            node: Node::Symlink {
                target: b"x".to_vec(),
            },
        };
        let good = Tree {
            entries: vec![file(b"a"), file(b"b")],
        };
        let bytes = good.encode();
        assert_eq!(check_tree(&good.tree_id(), &bytes).unwrap(), good);
        assert!(check_tree(&TreeId::from_stored([0; 32]), &bytes).is_err());
        for bad in [
            Tree {
                entries: vec![file(b"b"), file(b"a")],
            },
            Tree {
                entries: vec![file(b"..")],
            },
        ] {
            assert!(check_tree(&bad.tree_id(), &bad.encode()).is_err());
        }
    }

    fn read_all(input: &mut dyn Read) -> io::Result<Vec<Message>> {
        let mut out = Vec::new();
        while let Some(m) = read_message(input)? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn bytes_are_encoded_as_the_sequence_they_were() {
        // The encoding of protocol 5's first peers, which wrote `Chunk` as a sequence of u8.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct AsSequence(Vec<u8>);
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let old = postcard::to_stdvec(&AsSequence(payload.clone())).unwrap();
            let new = postcard::to_stdvec(&Message::Chunk(payload.clone())).unwrap();
            assert_eq!(new[0], 9, "Chunk's tag");
            assert_eq!(new[1..], old[..]);
            match postcard::from_bytes::<Message>(&new).unwrap() {
                Message::Chunk(b) => assert_eq!(b, payload),
                other => panic!("{other:?}"),
            }
            let back: AsSequence = postcard::from_bytes(&new[1..]).unwrap();
            assert_eq!(back.0, payload);
        }
    }

    #[test]
    fn a_chunk_written_from_its_slice_is_the_frame_of_its_message() {
        for size in [
            0usize, 1, 127, 128, 16_383, 16_384, 70_000, 2_097_151, 2_097_152,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 13 + size) as u8).collect();
            let mut whole = Vec::new();
            write_message(&mut whole, &Message::Chunk(data.clone())).unwrap();
            let mut sliced = Vec::new();
            write_chunk(&mut sliced, &data).unwrap();
            assert!(sliced == whole, "chunk of {size} bytes");
        }
    }

    /// Takes at most `max` bytes per call, vectored or not.
    struct Stingy {
        out: Vec<u8>,
        max: usize,
    }

    impl Write for Stingy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.max - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.max {
                    break;
                }
            }
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn chunks_written_vectored_are_their_frames_in_order() {
        // More chunks than one vectored write takes, of every varint length, one empty.
        let chunks: Vec<Vec<u8>> = (0..VECTORED_CHUNKS * 2 + 3)
            .map(|i| {
                let len = [0, 1, 127, 128, 16_384, 70_000][i % 6] + i % 5;
                (0..len).map(|j| (i * 31 + j) as u8).collect()
            })
            .collect();
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let mut one_by_one = Vec::new();
        for chunk in &slices {
            write_chunk(&mut one_by_one, chunk).unwrap();
        }
        for max in [1, 7, 4096, usize::MAX] {
            let mut out = Stingy {
                out: Vec::new(),
                max,
            };
            write_chunks_vectored(&mut out, &slices).unwrap();
            assert!(out.out == one_by_one, "at most {max} bytes a write");
        }
    }

    #[test]
    fn chunks_read_straight_into_their_buffer_decode_as_postcard_does() {
        for size in [
            0usize,
            1,
            4,
            5,
            127,
            128,
            300,
            16_383,
            16_384,
            70_000,
            1 << 20,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let mut wire = Vec::new();
            write_message(&mut wire, &Message::Chunk(data.clone())).unwrap();
            let body = &wire[4..];
            assert_eq!(body[0], CHUNK_TAG, "Chunk's tag");
            assert_eq!(
                chunk_data_at(&body[..body.len().min(6)], body.len()),
                Some(body.len() - size)
            );
            // Read a byte at a time, as a slow channel gives it.
            let mut slow = Trickle(&wire);
            match read_message(&mut slow).unwrap() {
                Some(Message::Chunk(got)) => assert!(got == data, "chunk of {size} bytes"),
                other => panic!("not a chunk: {other:?}"),
            }
            assert!(read_message(&mut slow).unwrap().is_none());
        }
        // A length that does not say the rest of the frame, or a varint not in its shortest
        // form, is left to postcard, which refuses the one and reads the other as it would.
        let frame = |body: &[u8]| {
            let mut f = (body.len() as u32).to_le_bytes().to_vec();
            f.extend_from_slice(body);
            f
        };
        assert_eq!(chunk_data_at(&[CHUNK_TAG, 3, 1, 2], 4), None);
        assert!(read_message(&mut &frame(&[CHUNK_TAG, 3, 1, 2])[..]).is_err());
        assert_eq!(chunk_data_at(&[CHUNK_TAG, 0x82, 0x00, 1, 2], 5), None);
        // Other messages are decoded whole, short ones included.
        for message in [
            Message::Bye,
            Message::NoChunk,
            Message::Failed("x".repeat(300)),
        ] {
            let mut wire = Vec::new();
            write_message(&mut wire, &message).unwrap();
            let got = read_message(&mut &wire[..]).unwrap().unwrap();
            assert_eq!(format!("{got:?}"), format!("{message:?}"));
        }
    }

    /// A reader that gives one byte per read.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&first, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = first;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn the_packed_tag_is_postcards() {
        let encoded = postcard::to_stdvec(&Message::Packed {
            len: 0,
            data: Vec::new(),
        })
        .unwrap();
        assert_eq!(encoded[0], PACKED_TAG);
    }

    #[test]
    fn packs_round_trip_between_plain_frames() {
        let tag = b"TIT2 A Title That Repeats ".repeat(40);
        let mut wire = Vec::new();
        write_message(&mut wire, &Message::Chunk(vec![1, 2, 3])).unwrap();
        let mut packer = Packer::default();
        packer.push(&Message::Chunk(tag.clone())).unwrap();
        packer.push(&Message::NoChunk).unwrap();
        packer.push(&Message::Chunk(tag.clone())).unwrap();
        let plain = packer.len();
        let before = wire.len();
        packer.flush_to(&mut wire).unwrap();
        assert!(packer.is_empty());
        assert!(wire.len() - before < plain / 4, "the pack is compressed");
        write_message(&mut wire, &Message::Bye).unwrap();
        let got = read_all(&mut Unpack::new(wire.as_slice())).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|m| match m {
                Message::Chunk(b) => format!("Chunk {}", b.len()),
                m => super::super::provider::name_of(m).to_string(),
            })
            .collect();
        let n = tag.len();
        assert_eq!(
            names,
            [
                "Chunk 3".to_string(),
                format!("Chunk {n}"),
                "NoChunk".into(),
                format!("Chunk {n}"),
                "Bye".into()
            ]
        );
    }

    #[test]
    fn what_does_not_shrink_is_sent_as_it_is() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut packer = Packer::default();
        packer.push(&Message::Chunk(noise.clone())).unwrap();
        let mut wire = Vec::new();
        packer.flush_to(&mut wire).unwrap();
        let mut plain = Vec::new();
        write_message(&mut plain, &Message::Chunk(noise)).unwrap();
        assert!(
            wire == plain,
            "{} bytes sent for a frame of {}",
            wire.len(),
            plain.len()
        );
    }

    fn pack_of(frames: &[u8], len: u32) -> Vec<u8> {
        let mut wire = Vec::new();
        write_message(
            &mut wire,
            &Message::Packed {
                len,
                data: zstd::bulk::compress(frames, 3).unwrap(),
            },
        )
        .unwrap();
        wire
    }

    fn refusal(wire: &[u8]) -> String {
        let err = read_all(&mut Unpack::new(wire)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        err.to_string()
    }

    #[test]
    fn found_round_trips_against_its_bases_and_refuses_what_does_not_add_up() {
        let base = b"an old chunk list with many ids that stay the same".repeat(20);
        let mut new = base.clone();
        new[10] ^= 1;
        let mut encodings = new.clone();
        encodings.extend_from_slice(b"chunk");
        let data = compress_found(&encodings, &base).unwrap();
        assert!(
            data.len() < 64,
            "{} bytes for a one-byte change",
            data.len()
        );
        let items = [Found {
            at: None,
            size: new.len() as u32,
            based: true,
        }];
        let len = encodings.len() as u32;
        let (got, rest) = open_found(&items, len, &data, &base).unwrap();
        assert_eq!(got, vec![new.clone()]);
        assert_eq!(rest, b"chunk");
        // Without its dictionary, against another, or declaring another size: refused.
        assert!(open_found(&items, len, &data, b"").is_err());
        assert!(open_found(&items, len - 1, &data, &base).is_err());
        assert!(open_found(&items, u32::MAX, &data, &base)
            .unwrap_err()
            .contains("over the limit"));
        let too_big = [Found {
            size: len + 1,
            ..items[0]
        }];
        assert!(open_found(&too_big, len, &data, &base)
            .unwrap_err()
            .contains("add up"));
    }

    #[test]
    fn bad_packs_are_refused() {
        // A bomb: 64 MiB of zeros declared as 1 KiB, and declared as more than the limit.
        let mut zeros = Vec::new();
        write_message(&mut zeros, &Message::Chunk(vec![0; 64 << 20])).unwrap();
        assert!(refusal(&pack_of(&zeros, 1024)).contains("zstd"));
        assert!(refusal(&pack_of(&zeros, u32::MAX)).contains("over the limit"));
        // Another size than declared.
        let mut frame = Vec::new();
        write_message(&mut frame, &Message::Bye).unwrap();
        assert!(refusal(&pack_of(&frame, frame.len() as u32 + 1)).contains("declared"));
        // A frame cut short, and a pack inside a pack.
        assert!(
            refusal(&pack_of(&frame[..frame.len() - 1], frame.len() as u32 - 1))
                .contains("cut short")
        );
        let inner = pack_of(&frame, frame.len() as u32);
        assert!(refusal(&pack_of(&inner, inner.len() as u32)).contains("inside"));
        // Bytes that are no zstd frame.
        let mut wire = Vec::new();
        write_message(
            &mut wire,
            &Message::Packed {
                len: 10,
                data: vec![1; 10],
            },
        )
        .unwrap();
        assert!(refusal(&wire).contains("zstd"));
    }
}
