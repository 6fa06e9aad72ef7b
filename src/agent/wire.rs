//! The messages two musicfs processes exchange, their framing, and the checks every received
//! object passes before anything is stored or written. The format is in `docs/protocol.md`.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::id::{ContentId, TreeId};
use crate::snapshot::{ChunkList, ChunkRef, Node, Tree};
use crate::sync::SyncSummary;

/// The protocol version this build speaks, and sends as a client. A server answers a
/// client of any version from [`OLDEST_PROTOCOL_VERSION`] on in the client's version; a
/// client needs the server to answer in its own.
pub const PROTOCOL_VERSION: u32 = 3;

/// The oldest client version a server still serves: version 2 lacks only the `Filter`
/// message, which such a client never sends.
pub const OLDEST_PROTOCOL_VERSION: u32 = 2;

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
    /// Both ends, first: the magic, the protocol version, the repository format version
    /// (chunk ids are comparable only between equal formats).
    Hello {
        /// [`MAGIC`].
        magic: [u8; 8],
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// `repo::FORMAT_VERSION`.
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
    Chunk(Vec<u8>),
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
}

/// How often the server says it is still working.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Writes one frame: a little-endian `u32` length, then the postcard-encoded message.
pub fn write_message(out: &mut dyn Write, message: &Message) -> io::Result<()> {
    let body = postcard::to_stdvec(message).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    out.write_all(&frame)
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
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad message: {e}")))
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
}
