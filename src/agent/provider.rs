//! The source's side of a session: answering the destination's requests for trees, chunk
//! lists and chunks from the repository and the origin, in the order they were asked.

use std::collections::HashSet;
use std::io::{Read, Write};

use super::wire::{compress_found, Found, MAX_PACKED, ONE_FRAME_SINCE, PACKED_SINCE, PLACES_SINCE};
use super::wire::{lost, receive, write_chunk, write_message, Message, Object, Packer, Unpack};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, TreeId};
use crate::media::{Format, RegionKind};
use crate::repo::Repository;
use crate::report::{Event, Sink};
use crate::snapshot::{ChunkList, Node, Tree};
use crate::sync::{ChunkSource, SyncSummary};

/// Bytes of frames compressed together in one pack, at most (well under
/// [`super::wire::MAX_PACKED`]).
pub(super) const PACK_BYTES: usize = 1 << 20;

/// An opaque file (no container understood) is compressed on the wire only up to this size:
/// the small text files of a library (cue sheets, rip logs, playlists) compress well, the
/// large opaque ones (images, archives, video) are compressed already.
const SMALL_OPAQUE: u64 = 256 << 10;

/// The chunks worth compressing on the wire, as the chunk lists this end has sent describe
/// them: tag blocks, padding and container structure, never audio or pictures (compressed
/// already: zstd would spend CPU for nothing). A chunk of a list never sent is not known
/// here, and goes uncompressed. Keyed by the first 8 bytes of the id: a collision only
/// compresses a chunk that did not need it.
#[derive(Default)]
struct Compressible(HashSet<u64>);

impl Compressible {
    fn key(id: &ChunkId) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&id.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn learn(&mut self, list: &ChunkList) {
        let worth = compressible_chunks(list);
        for (chunk, worth) in list.chunks.iter().zip(worth) {
            if worth {
                self.0.insert(Self::key(&chunk.id));
            }
        }
    }

    fn contains(&self, id: &ChunkId) -> bool {
        self.0.contains(&Self::key(id))
    }
}

/// For each chunk of `list`, in order, whether it is worth compressing on the wire
/// ([`Compressible`]): a chunk of a tag, padding or structure region, or of a small opaque
/// file.
pub(super) fn compressible_chunks(list: &ChunkList) -> Vec<bool> {
    if list.format == Format::Opaque {
        return vec![list.size() <= SMALL_OPAQUE; list.chunks.len()];
    }
    chunk_kinds(list)
        .map(|kind| !matches!(kind, RegionKind::Audio | RegionKind::Picture))
        .collect()
}

/// The kind of region each chunk of `list` lies in, in chunk order (audio where no region
/// covers it).
pub(super) fn chunk_kinds(list: &ChunkList) -> impl Iterator<Item = RegionKind> + '_ {
    let mut regions = list.regions.iter().peekable();
    list.with_offsets().map(move |(offset, _)| {
        while regions.peek().is_some_and(|r| r.offset + r.len <= offset) {
            regions.next();
        }
        regions.peek().map_or(RegionKind::Audio, |r| r.kind)
    })
}

/// How a providing session ended.
pub(crate) enum Ended {
    /// The destination said goodbye, or closed the connection.
    Bye,
    /// The destination finished a pushed sync.
    Done(SyncSummary),
}

/// Answers requests on `input` with replies on `output` until the other end, which speaks
/// protocol `version`, is done. From protocol 4 on, trees, chunk lists, and the chunks of
/// tags, padding and structure go compressed in [`Message::Packed`] frames; from protocol 5
/// on, trees and chunk lists are asked for by their place ([`Message::GetSince`]).
pub(crate) fn provide(
    origin: &str,
    repo: &Repository,
    chunks: &mut dyn ChunkSource,
    input: &mut dyn Read,
    output: &mut dyn Write,
    sink: &dyn Sink,
    version: u32,
) -> Result<Ended> {
    let pack = version >= PACKED_SINCE;
    let protocol = |message: String| Error::Protocol {
        origin: origin.to_string(),
        message,
    };
    let mut places = Places::default();
    let lost = |e| lost(origin, e);
    let mut input = Unpack::new(input);
    let mut compressible = Compressible::default();
    let mut alone = Packer::default();
    // One reply: packed alone when `pack`, else as it is.
    let mut reply = |output: &mut dyn Write, message: &Message| -> std::io::Result<()> {
        if pack {
            alone.push(message)?;
            alone.flush_to(output)
        } else {
            write_message(output, message)
        }
    };
    let mut packer = Packer::default();
    loop {
        crate::interrupt::check_signal()?;
        let Some(message) = receive(origin, &mut input)? else {
            return Ok(Ended::Bye);
        };
        match message {
            Message::GetTrees(ids) => {
                let mut trees = Vec::with_capacity(ids.len());
                for id in &ids {
                    trees.push(repo.tree(id)?.encode());
                }
                reply(output, &Message::Trees(trees)).map_err(lost)?;
            }
            Message::GetContents(ids) => {
                let mut lists = Vec::with_capacity(ids.len());
                for id in &ids {
                    let list = repo.content(id)?;
                    if pack {
                        compressible.learn(&list);
                    }
                    lists.push(list.encode());
                }
                reply(output, &Message::Contents(lists)).map_err(lost)?;
            }
            Message::GetTreesSince(wanted) => {
                let mut objects = Vec::with_capacity(wanted.len());
                for (id, base) in &wanted {
                    let base = match base {
                        Some(b) if repo.has_tree(b)? => Some(repo.tree(b)?.encode()),
                        _ => None,
                    };
                    objects.push(Object::against(repo.tree(id)?.encode(), base.as_deref()));
                }
                reply(output, &Message::Objects(objects)).map_err(lost)?;
            }
            Message::GetContentsSince(wanted) => {
                let mut objects = Vec::with_capacity(wanted.len());
                for (id, base) in &wanted {
                    let list = repo.content(id)?;
                    compressible.learn(&list);
                    let base = match base {
                        Some(b) if repo.has_content(b)? => Some(repo.content(b)?.encode()),
                        _ => None,
                    };
                    objects.push(Object::against(list.encode(), base.as_deref()));
                }
                reply(output, &Message::Objects(objects)).map_err(lost)?;
            }
            Message::GetSince { root, entries } if version >= PLACES_SINCE => {
                let one_frame = version >= ONE_FRAME_SINCE;
                places
                    .answer(
                        repo,
                        chunks,
                        root,
                        &entries,
                        one_frame,
                        &mut compressible,
                        output,
                    )
                    .map_err(|e| match e {
                        Answer::Refused(m) => protocol(m),
                        Answer::Lost(e) => lost(e),
                        Answer::Failed(e) => e,
                    })?;
            }
            Message::GetChunks(refs) => {
                // Consecutive answers of compressible chunks are packed together (tags
                // compress far better side by side than one by one); any other answer
                // sends what waits first, so the answers stay in order.
                for chunk in refs {
                    // Only verified bytes go on the wire, in the form the chunk's id names.
                    let found = if chunk.len > super::wire::MAX_CHUNK {
                        None
                    } else {
                        chunks.read_chunk(b"", 0, chunk)?
                    };
                    let found = found.map(|found| {
                        sink.advance(u64::from(chunk.len));
                        found.into_canonical()
                    });
                    if pack && compressible.contains(&chunk.id) {
                        match &found {
                            Some(found) => packer.push_chunk(found.bytes()),
                            None => packer.push(&Message::NoChunk),
                        }
                        .map_err(lost)?;
                        if packer.len() >= PACK_BYTES {
                            packer.flush_to(output).map_err(lost)?;
                        }
                    } else {
                        packer.flush_to(output).map_err(lost)?;
                        match &found {
                            Some(found) => write_chunk(output, found.bytes()),
                            None => write_message(output, &Message::NoChunk),
                        }
                        .map_err(lost)?;
                    }
                }
                packer.flush_to(output).map_err(lost)?;
            }
            Message::Event {
                kind,
                path,
                message,
                bytes,
            } => sink.event(&remote_event(&kind, &path, message, bytes)),
            Message::Working { .. } => continue,
            Message::Done(summary) => return Ok(Ended::Done(summary)),
            Message::Bye => return Ok(Ended::Bye),
            Message::Failed(message) => {
                return Err(Error::Remote {
                    origin: origin.to_string(),
                    message,
                })
            }
            other => {
                return Err(Error::Protocol {
                    origin: origin.to_string(),
                    message: format!("unexpected request {}", name_of(&other)),
                })
            }
        }
        output.flush().map_err(lost)?;
    }
}

/// An event the destination reported, for the local display.
fn remote_event(kind: &str, path: &[u8], message: String, bytes: u64) -> Event {
    let path = crate::report::display_path(path);
    let action = match kind {
        "write" => "write",
        "move" => "move",
        "meta" => "meta",
        "symlink" => "symlink",
        "mkdir" => "mkdir",
        "delete" => "delete",
        _ => {
            return Event::Problem {
                path,
                message: if message.is_empty() {
                    kind.to_string()
                } else {
                    message
                },
                fault: None,
            }
        }
    };
    Event::Action {
        action,
        path,
        bytes_transferred: bytes,
    }
}

/// A message's name, for errors.
pub(crate) fn name_of(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "Hello",
        Message::Pull { .. } => "Pull",
        Message::Push { .. } => "Push",
        Message::Source(_) => "Source",
        Message::GetTrees(_) => "GetTrees",
        Message::Trees(_) => "Trees",
        Message::GetContents(_) => "GetContents",
        Message::Contents(_) => "Contents",
        Message::GetChunks(_) => "GetChunks",
        Message::Chunk(_) => "Chunk",
        Message::NoChunk => "NoChunk",
        Message::Event { .. } => "Event",
        Message::Done(_) => "Done",
        Message::Bye => "Bye",
        Message::Failed(_) => "Failed",
        Message::Working { .. } => "Working",
        Message::Filter(_) => "Filter",
        Message::Packed { .. } => "Packed",
        Message::GetTreesSince(_) => "GetTreesSince",
        Message::GetContentsSince(_) => "GetContentsSince",
        Message::Objects(_) => "Objects",
        Message::GetSince { .. } => "GetSince",
        Message::Found { .. } => "Found",
        Message::ColdPull { .. } => "ColdPull",
        Message::Streamed { .. } => "Streamed",
    }
}

/// Encodings of one `Found` message, at most, with their bases (protocol 5): a larger
/// answer is cut into several, so that zstd's window always reaches the bases.
const FOUND_BYTES: usize = 1 << 20;

/// Trees and chunk lists sent unasked in one answer, at most (bytes of their encodings); the
/// destination asks for the rest by their place.
const PUSHED_BYTES: usize = MAX_PACKED;

/// Chunks sent unasked with the chunk lists in one answer, at most (bytes), and the largest
/// such chunk: only tag, padding and structure chunks new since the base, which the
/// destination would ask for next.
const PUSHED_CHUNK_BYTES: usize = 1 << 20;
const PUSHED_CHUNK: u32 = 64 << 10;

/// Why an answer to `GetSince` failed.
enum Answer {
    Refused(String),
    Lost(std::io::Error),
    Failed(Error),
}

impl From<Error> for Answer {
    fn from(e: Error) -> Answer {
        Answer::Failed(e)
    }
}

/// What a source remembers of a protocol 5 session: every tree it has sent, in order (the
/// destination names entries by the tree's position), with its base, and the trees and chunk
/// lists it sent unasked (never twice).
#[derive(Default)]
struct Places {
    trees: Vec<(TreeId, Option<TreeId>)>,
    pushed: HashSet<[u8; 32]>,
}

/// What an answer is to send: where it is, the item, and (sent unasked) its name.
type Queued = (Option<(u32, u32)>, Item, Vec<u8>);

/// One tree or chunk list to send, with its base and where it is.
enum Item {
    Tree(TreeId, Option<TreeId>),
    Content(ContentId, Option<ContentId>),
}

impl Places {
    /// Answers one `GetSince`: the objects asked for, in order, then the entries of the trees
    /// sent whose base at the same path differs (a retagged file's chunk list and the trees on
    /// its path), breadth first, as long as the budget lasts. With `one_frame` (protocol 6)
    /// an entry sent unasked is placed by its position in its tree's base, so that the
    /// destination can gather every base of the answer before it decompresses anything, and
    /// the answer is one frame (cut only at [`FOUND_BYTES`]); before, it is placed in the tree
    /// itself, and every level of the answer is a frame of its own.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        repo: &Repository,
        chunks: &mut dyn ChunkSource,
        root: Option<(TreeId, Option<TreeId>)>,
        entries: &[(u32, u32)],
        one_frame: bool,
        compressible: &mut Compressible,
        output: &mut dyn Write,
    ) -> std::result::Result<(), Answer> {
        let mut queue: std::collections::VecDeque<Queued> = std::collections::VecDeque::new();
        if let Some((root, base)) = root {
            if !self.trees.is_empty() {
                return Err(Answer::Refused("a second root".into()));
            }
            let base = match base {
                Some(b) if repo.has_tree(&b)? => Some(b),
                _ => None,
            };
            queue.push_back((None, Item::Tree(root, base), Vec::new()));
        }
        let mut parent: Option<(u32, Tree, Option<Tree>)> = None;
        for &(tree, entry) in entries {
            if parent.as_ref().map(|p| p.0) != Some(tree) {
                let Some(&(id, base)) = self.trees.get(tree as usize) else {
                    return Err(Answer::Refused(format!("no tree {tree} was sent")));
                };
                let base = match base {
                    Some(b) => Some(repo.tree(&b)?),
                    None => None,
                };
                parent = Some((tree, repo.tree(&id)?, base));
            }
            let Some((_, tree_now, base)) = &parent else {
                continue;
            };
            let Some(found) = tree_now.entries.get(entry as usize) else {
                return Err(Answer::Refused(format!("tree {tree} has no entry {entry}")));
            };
            let was = base
                .as_ref()
                .and_then(|b| b.get(&found.name))
                .map(|e| &e.node);
            let item = item_of(repo, &found.node, was)?.ok_or_else(|| {
                Answer::Refused(format!("entry {entry} of tree {tree} is no tree or file"))
            })?;
            queue.push_back((Some((tree, entry)), item, Vec::new()));
        }
        let mut found = Gathered {
            one_frame,
            ..Gathered::default()
        };
        let mut pushed_bytes = 0usize;
        let mut pushed_chunk_bytes = 0usize;
        let asked = queue.len();
        let mut sent = 0usize;
        // The first tree of the message being gathered: an item inside a tree of the same
        // message starts another, because the destination reads a message's places (and
        // gathers its bases) before it can decompress it.
        let mut message_start = self.trees.len();
        while let Some((at, item, name)) = queue.pop_front() {
            if !one_frame
                && at.is_some_and(|(tree, _)| tree as usize >= message_start)
                && !found.items.is_empty()
            {
                found.send(output, true)?;
                message_start = self.trees.len();
            }
            // An entry sent unasked in a tree of the same message: its id in that tree is
            // left out (protocol 6), the destination hashes what it receives.
            if one_frame && sent >= asked {
                if let Some(&parent) = at.and_then(|(tree, _)| found.tree_items.get(&tree)) {
                    found.implied.push((parent, name));
                }
            }
            let (encoded, base, part) = match item {
                Item::Tree(id, base) => {
                    let tree = repo.tree(&id)?;
                    let index = self.trees.len() as u32;
                    self.trees.push((id, base));
                    found.tree_items.insert(index, found.items.len());
                    let base = match base {
                        Some(b) => Some(repo.tree(&b)?),
                        None => None,
                    };
                    if let Some(base) = &base {
                        for (i, entry) in tree.entries.iter().enumerate() {
                            let Ok(j) = base
                                .entries
                                .binary_search_by(|e| e.name.as_slice().cmp(&entry.name))
                            else {
                                continue;
                            };
                            let was = &base.entries[j];
                            let key = match (&entry.node, &was.node) {
                                (Node::Dir { tree: a, .. }, Node::Dir { tree: b, .. })
                                    if a != b =>
                                {
                                    *a.as_bytes()
                                }
                                (Node::File { content: a, .. }, Node::File { content: b, .. })
                                    if a != b =>
                                {
                                    *a.as_bytes()
                                }
                                _ => continue,
                            };
                            if pushed_bytes >= PUSHED_BYTES || !self.pushed.insert(key) {
                                continue;
                            }
                            if let Some(item) = item_of(repo, &entry.node, Some(&was.node))? {
                                let place = if one_frame { j } else { i };
                                queue.push_back((
                                    Some((index, place as u32)),
                                    item,
                                    entry.name.clone(),
                                ));
                            }
                        }
                    }
                    (tree.encode(), base.map(|b| b.encode()), Part::Tree(tree))
                }
                Item::Content(id, base) => {
                    let list = repo.content(&id)?;
                    compressible.learn(&list);
                    let base = match base {
                        Some(b) => Some(repo.content(&b)?),
                        None => None,
                    };
                    // A chunk list sent unasked: its new tag chunks go with it.
                    if let (Some(base), true) = (&base, sent >= asked) {
                        let had: HashSet<ChunkId> = base.chunks.iter().map(|c| c.id).collect();
                        for (index, chunk) in list.chunks.iter().enumerate() {
                            if had.contains(&chunk.id)
                                || chunk.len > PUSHED_CHUNK
                                || !compressible.contains(&chunk.id)
                                || pushed_chunk_bytes >= PUSHED_CHUNK_BYTES
                            {
                                continue;
                            }
                            if let Some(bytes) = chunks.read_chunk(b"", 0, *chunk)? {
                                let bytes = bytes.into_canonical().into_bytes();
                                pushed_chunk_bytes += bytes.len();
                                found.chunks.push((found.items.len() as u32, index as u32));
                                found.chunk_bytes.extend_from_slice(&bytes);
                            }
                        }
                    }
                    (list.encode(), base.map(|b| b.encode()), Part::List(list))
                }
            };
            sent += 1;
            if sent > asked {
                pushed_bytes += encoded.len();
            }
            found.items.push(Found {
                at,
                size: encoded.len() as u32,
                based: base.is_some(),
            });
            found.encodings.extend_from_slice(&encoded);
            if one_frame {
                found.parts.push(part);
            }
            if let Some(base) = base {
                found.dictionary.extend_from_slice(&base);
            }
            if found.encodings.len() + found.dictionary.len() + found.chunk_bytes.len()
                >= FOUND_BYTES
                && !queue.is_empty()
            {
                found.send(output, true)?;
                message_start = self.trees.len();
            }
        }
        found.send(output, false)
    }
}

/// A `Found` message being gathered.
#[derive(Default)]
struct Gathered {
    items: Vec<Found>,
    chunks: Vec<(u32, u32)>,
    encodings: Vec<u8>,
    chunk_bytes: Vec<u8>,
    dictionary: Vec<u8>,
    /// Protocol 6: the ids of what the message holds are left out of its trees and chunk
    /// lists, so the items are kept whole until it is sent.
    one_frame: bool,
    parts: Vec<Part>,
    /// The item of each tree of the message, by its number in the session.
    tree_items: std::collections::HashMap<u32, usize>,
    /// `(tree item, name)`: an entry of that tree sent in the same message.
    implied: Vec<(usize, Vec<u8>)>,
}

/// A tree or chunk list of a `Found` being gathered.
enum Part {
    Tree(Tree),
    List(ChunkList),
}

impl Gathered {
    /// Sends what was gathered as one `Found`, and empties it.
    fn send(&mut self, output: &mut dyn Write, more: bool) -> std::result::Result<(), Answer> {
        if self.one_frame {
            self.leave_out_implied_ids();
        }
        self.encodings.append(&mut self.chunk_bytes);
        let data = compress_found(&self.encodings, &self.dictionary).map_err(Answer::Lost)?;
        let message = Message::Found {
            items: std::mem::take(&mut self.items),
            chunks: std::mem::take(&mut self.chunks),
            len: self.encodings.len() as u32,
            data,
            more,
        };
        self.encodings.clear();
        self.dictionary.clear();
        write_message(output, &message).map_err(Answer::Lost)
    }

    /// Protocol 6: zeroes the id of every entry sent in the same message and of every chunk
    /// sent with its list (the destination hashes them), and encodes the items anew. The
    /// encodings keep their sizes: an id is 32 bytes whatever its value.
    fn leave_out_implied_ids(&mut self) {
        const NONE: [u8; 32] = [0; 32];
        for (parent, name) in self.implied.drain(..) {
            let Some(Part::Tree(tree)) = self.parts.get_mut(parent) else {
                continue;
            };
            let Ok(i) = tree
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(&name))
            else {
                continue;
            };
            match &mut tree.entries[i].node {
                Node::Dir { tree, .. } => *tree = TreeId::from_stored(NONE),
                Node::File { content, .. } => *content = ContentId::from_stored(NONE),
                Node::Symlink { .. } => {}
            }
        }
        for &(item, chunk) in &self.chunks {
            if let Some(Part::List(list)) = self.parts.get_mut(item as usize) {
                if let Some(c) = list.chunks.get_mut(chunk as usize) {
                    c.id = ChunkId::from_stored(NONE);
                }
            }
        }
        self.encodings.clear();
        for part in self.parts.drain(..) {
            self.encodings.extend(match part {
                Part::Tree(tree) => tree.encode(),
                Part::List(list) => list.encode(),
            });
        }
        self.tree_items.clear();
    }
}

/// The tree or chunk list `node` names, with its base: `was`, the node of the same name in
/// the base tree, when it is of the same kind and this end holds it. `None` for a symlink.
fn item_of(
    repo: &Repository,
    node: &Node,
    was: Option<&Node>,
) -> std::result::Result<Option<Item>, Answer> {
    Ok(match node {
        Node::Dir { tree, .. } => {
            let base = match was {
                Some(Node::Dir { tree: b, .. }) if repo.has_tree(b)? => Some(*b),
                _ => None,
            };
            Some(Item::Tree(*tree, base))
        }
        Node::File { content, .. } => {
            let base = match was {
                Some(Node::File { content: b, .. }) if repo.has_content(b)? => Some(*b),
                _ => None,
            };
            Some(Item::Content(*content, base))
        }
        Node::Symlink { .. } => None,
    })
}
