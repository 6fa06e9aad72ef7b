//! The destination's view of a source on the other end of a connection: its snapshot's trees
//! and chunk lists fetched top-down (only those the repository lacks), and the missing chunks
//! requested ahead in pipelined batches, each verified on arrival.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufReader, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::resume::Resume;
use super::stream::Receiving;
use super::wire::{check_content, check_path, check_tree, lost, receive, write_message};
use super::wire::{Message, Object, SourceInfo, Unpack, MAX_PATH};
use crate::chunk::{Chunker, VerifiedChunk};
use crate::error::{Error, Result};
use crate::id::{ChunkId, ContentId, TreeId};
use crate::repo::Repository;
use crate::report::Sink;
use crate::scan::CopySink;
use crate::snapshot::{ChunkList, ChunkRef, Node, Tree};
use crate::sync::{ChunkSource, SourceState, SyncSource};

/// Bytes of chunks requested and not yet received, at most.
const WINDOW: u64 = 32 << 20;
/// Chunks per request, at most.
const BATCH_CHUNKS: usize = 512;
/// Bytes of chunks per request, at most.
const BATCH_BYTES: u64 = 4 << 20;
/// Objects per tree or chunk-list request, at most.
const BATCH_OBJECTS: usize = 2048;

/// Bytes of chunks a source may send unasked in one session (protocol 5), at most.
const MAX_UNASKED: u64 = 64 << 20;

/// The writing half of a connection, with the chunks requested in the order they were.
pub(crate) struct Requests {
    out: Box<dyn Write + Send>,
    /// Chunks asked for and not yet answered, oldest first.
    queue: VecDeque<ChunkRef>,
}

impl Requests {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Arc<Mutex<Requests>> {
        Arc::new(Mutex::new(Requests {
            out,
            queue: VecDeque::new(),
        }))
    }

    /// Sends messages and flushes.
    pub(crate) fn send(&mut self, messages: &[Message]) -> std::io::Result<()> {
        for m in messages {
            write_message(&mut self.out, m)?;
        }
        self.out.flush()
    }

    fn ask_chunks(&mut self, chunks: Vec<ChunkRef>) -> std::io::Result<()> {
        self.queue.extend(chunks.iter().copied());
        self.send(&[Message::GetChunks(chunks)])
    }
}

/// Sends `messages` through the shared writer.
pub(crate) fn send(requests: &Mutex<Requests>, messages: &[Message]) -> std::io::Result<()> {
    match requests.lock() {
        Ok(mut r) => r.send(messages),
        Err(_) => Err(std::io::Error::other("connection writer poisoned")),
    }
}

/// What an object of a protocol 5 answer must be, by its place: a tree (with its path's
/// length) or a chunk list (with its file's size).
enum Expected {
    Tree(TreeId, usize),
    Content(ContentId, u64),
    /// Sent unasked in protocol 6's way: the entry of tree `tree` (its number in the session)
    /// named `name`, a directory if `dir`; known once that tree is decompressed.
    Pushed {
        tree: u32,
        name: Vec<u8>,
        dir: bool,
    },
}

/// The base of an object of a protocol 5 answer.
enum Based {
    Tree(TreeId),
    Content(ContentId),
}

/// An item of a `Found` as its place makes it known before it is decompressed: its place,
/// what it is, and the base of a tree.
type ExpectedItem = (Option<(u32, u32)>, Expected, Option<TreeId>);

/// Protocol 6: puts back the ids a `Found` leaves out, those of what the same message holds:
/// each chunk sent with its list gets its hash, then, from the last item to the first, each
/// entry sent unasked in a tree of the message gets the hash of its encoding in that tree.
/// `tree_items` is the item of each tree of the message (the first is tree number
/// `received`). Whatever does not fit is left as it is: the checks that follow refuse it,
/// as every tree and chunk list must still hash to the id its place names.
fn fill_implied_ids(
    expected: &[ExpectedItem],
    tree_items: &[usize],
    received: usize,
    chunks: &[(u32, u32)],
    chunk_bytes: &[u8],
    encodings: &mut [Vec<u8>],
) {
    let mut lists: HashMap<usize, ChunkList> = HashMap::new();
    let mut at = 0usize;
    for &(item, chunk) in chunks {
        let item = item as usize;
        if !matches!(
            expected.get(item).map(|e| &e.1),
            Some(Expected::Content(..) | Expected::Pushed { dir: false, .. })
        ) {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(vacant) = lists.entry(item) {
            let Ok(list) = postcard::from_bytes::<ChunkList>(&encodings[item]) else {
                return;
            };
            vacant.insert(list);
        }
        let Some(c) = lists
            .get_mut(&item)
            .and_then(|l| l.chunks.get_mut(chunk as usize))
        else {
            return;
        };
        let Some(bytes) = chunk_bytes.get(at..at + c.len as usize) else {
            return;
        };
        at += bytes.len();
        c.id = ChunkId::of(bytes);
    }
    for (item, list) in lists {
        encodings[item] = list.encode();
    }
    // Each tree's hashes to put in, gathered from its entries (which follow it), so that a
    // tree is decoded and encoded once however many of its entries the message holds.
    // An entry's name, whether it is a directory, and its hash.
    type Hashed<'a> = (&'a [u8], bool, [u8; 32]);
    let mut hashes: HashMap<usize, Vec<Hashed>> = HashMap::new();
    for item in (0..expected.len().min(encodings.len())).rev() {
        if let Some(found) = hashes.remove(&item) {
            if let Ok(mut tree) = postcard::from_bytes::<Tree>(&encodings[item]) {
                for (name, dir, hash) in found {
                    let Ok(i) = tree
                        .entries
                        .binary_search_by(|e| e.name.as_slice().cmp(name))
                    else {
                        continue;
                    };
                    match (&mut tree.entries[i].node, dir) {
                        (Node::Dir { tree, .. }, true) => *tree = TreeId::from_stored(hash),
                        (Node::File { content, .. }, false) => {
                            *content = ContentId::from_stored(hash)
                        }
                        _ => {}
                    }
                }
                encodings[item] = tree.encode();
            }
        }
        let Expected::Pushed { tree, name, dir } = &expected[item].1 else {
            continue;
        };
        let Some(&parent) = (*tree as usize)
            .checked_sub(received)
            .and_then(|t| tree_items.get(t))
            .filter(|&&p| p < item)
        else {
            continue;
        };
        let hash = if *dir {
            *TreeId::of_encoded(&encodings[item]).as_bytes()
        } else {
            *ContentId::of_encoded(&encodings[item]).as_bytes()
        };
        hashes
            .entry(parent)
            .or_default()
            .push((name.as_slice(), *dir, hash));
    }
}

/// A source at the other end of a connection.
pub struct RemoteSource {
    origin: String,
    /// The source's answers, its packs opened.
    input: Unpack<BufReader<Box<dyn Read + Send>>>,
    requests: Arc<Mutex<Requests>>,
    /// The snapshot, when it came with the session's first message (push).
    info: Option<SourceInfo>,
    /// Chunks received before they were needed.
    stash: HashMap<ChunkId, VerifiedChunk>,
    /// Chunks requested (or to be requested) and not yet received.
    pending: HashSet<ChunkId>,
    /// Chunks the source said it could not read.
    unavailable: HashSet<ChunkId>,
    /// Tells the request feeder how many bytes arrived.
    arrived: Option<mpsc::Sender<u64>>,
    /// The chunks received for the file being written, by this connection or by the one
    /// before it.
    resume: Resume,
    /// With deltas (the source speaks protocol 4 or later): the destination's URL, whose
    /// newest snapshot's trees and chunk lists are the bases.
    deltas: Option<String>,
    /// The source speaks protocol 5: objects are asked for by their place.
    places: bool,
    /// The source speaks protocol 6: an answer is one frame, its unasked entries placed in
    /// their tree's base.
    one_frame: bool,
    /// Bytes of chunks the source sent unasked in this session.
    unasked: u64,
    /// The pull is cold and asked for the files to be streamed (protocol 6).
    streamed: Option<Receiving>,
}

impl RemoteSource {
    /// A source whose `Source` message is still to be read from `input` (pull), already
    /// buffered by the caller (which read the greeting through it).
    pub(crate) fn new(
        origin: &str,
        input: BufReader<Box<dyn Read + Send>>,
        requests: Arc<Mutex<Requests>>,
        info: Option<SourceInfo>,
        mut resume: Resume,
    ) -> RemoteSource {
        resume.next_connection();
        RemoteSource {
            origin: origin.to_string(),
            input: Unpack::new(input),
            requests,
            info,
            stash: HashMap::new(),
            pending: HashSet::new(),
            unavailable: HashSet::new(),
            arrived: None,
            resume,
            deltas: None,
            places: false,
            one_frame: false,
            unasked: 0,
            streamed: None,
        }
    }

    /// Asks for trees and chunk lists against the ones the repository holds at the same path
    /// in the newest snapshot of `destination` (its URL), so that the source may send deltas:
    /// in protocol 4's way (each request names its base) when `version` is 4, by their place
    /// in the snapshot (protocol 5) from 5 on.
    pub(crate) fn with_deltas(mut self, destination: &str, version: u32) -> RemoteSource {
        self.deltas = Some(destination.to_string());
        self.places = version >= super::wire::PLACES_SINCE;
        self.one_frame = version >= super::wire::ONE_FRAME_SINCE;
        self
    }

    /// Takes the files the source streams while it scans (it was asked with
    /// `Message::ColdPull`) when `cold`.
    pub(crate) fn streamed(mut self, cold: bool) -> RemoteSource {
        self.streamed = cold.then(Receiving::default);
        self
    }

    /// The chunks received for the file being written, for the next attempt.
    pub(crate) fn into_resume(self) -> Resume {
        self.resume
    }

    fn protocol(&self, message: impl Into<String>) -> Error {
        Error::Protocol {
            origin: self.origin.clone(),
            message: message.into(),
        }
    }

    fn lost(&self, e: std::io::Error) -> Error {
        lost(&self.origin, e)
    }

    fn send(&self, messages: &[Message]) -> Result<()> {
        send(&self.requests, messages).map_err(|e| self.lost(e))
    }

    /// The next message; the end of the stream and a `Failed` message are errors.
    pub(crate) fn receive(&mut self) -> Result<Message> {
        loop {
            match self.receive_any()? {
                Message::Working { .. } => continue,
                m => return Ok(m),
            }
        }
    }

    fn receive_any(&mut self) -> Result<Message> {
        match receive(&self.origin, &mut self.input)? {
            Some(Message::Failed(message)) => Err(Error::Remote {
                origin: self.origin.clone(),
                message,
            }),
            Some(m) => Ok(m),
            None => Err(self.lost(std::io::ErrorKind::UnexpectedEof.into())),
        }
    }

    /// Waits for the source's snapshot, showing the progress of the remote scan meanwhile,
    /// and taking each file the source streams meanwhile into `copy` (`super::stream`).
    fn await_source(
        &mut self,
        repo: &Repository,
        sink: &dyn Sink,
        copy: Option<&dyn CopySink>,
    ) -> Result<SourceInfo> {
        let (mut shown_done, mut shown_total) = (0u64, 0u64);
        loop {
            match self.receive_any()? {
                Message::Source(info) => {
                    sink.advance(shown_total.saturating_sub(shown_done));
                    if let Some(mut streamed) = self.streamed.take() {
                        streamed.store(repo)?;
                        drop(streamed);
                        // The chunk lists' location rows, staged as they were stored, merged
                        // now: the stream's buffers are gone and the plan not yet made.
                        repo.merge_staged_locations()?;
                    }
                    return Ok(info);
                }
                header @ Message::Streamed { .. } if self.streamed.is_some() => {
                    let Some(mut streamed) = self.streamed.take() else {
                        continue;
                    };
                    let origin = self.origin.clone();
                    let protocol = |message: String| Error::Protocol {
                        origin: origin.clone(),
                        message,
                    };
                    let mut resume = std::mem::take(&mut self.resume);
                    let taken = streamed.file(
                        repo,
                        header,
                        &mut resume,
                        &mut || self.receive(),
                        copy,
                        &protocol,
                    );
                    self.resume = resume;
                    self.streamed = Some(streamed);
                    taken?;
                }
                Message::Working { done, total } => {
                    if total > shown_total {
                        sink.phase("remote scan", 0, total - shown_total);
                        shown_total = total;
                    }
                    let done = done.min(shown_total);
                    if done > shown_done {
                        sink.advance(done - shown_done);
                        shown_done = done;
                    }
                }
                _ => return Err(self.protocol("expected the source's snapshot")),
            }
        }
    }

    /// Fetches every tree under `root` and every chunk list they name that `repo` lacks,
    /// level by level (one round trip per directory level), checking each. Chunk lists are
    /// stored as they arrive; trees are stored in one transaction at the end, so a stored tree
    /// always has its whole subtree stored. With deltas (protocol 4), each request names the
    /// tree or chunk list `repo` holds at the same path under the base root, if any.
    fn fetch_trees(&mut self, repo: &Repository, root: TreeId) -> Result<()> {
        if repo.has_tree(&root)? {
            return Ok(());
        }
        // The destination's newest snapshot: this sync's scan of it, or else the last one.
        let base_root = match &self.deltas {
            Some(url) => match repo.latest_snapshot(url)? {
                Some((_, record)) if repo.has_tree(&record.root)? => Some(record.root),
                _ => None,
            },
            _ => None,
        };
        if self.places {
            return self.fetch_places(repo, root, base_root);
        }
        let mut trees: Vec<Tree> = Vec::new();
        let mut seen_trees: HashSet<TreeId> = HashSet::from([root]);
        let mut seen_contents: HashSet<ContentId> = HashSet::new();
        // Trees to fetch with the length of their path and their base; chunk lists with their
        // file's size and their base.
        let mut level: Vec<(TreeId, usize, Option<TreeId>)> = vec![(root, 0, base_root)];
        let mut contents: Vec<(ContentId, u64, Option<ContentId>)> = Vec::new();
        while !level.is_empty() || !contents.is_empty() {
            let mut asked = Vec::new();
            for batch in level.chunks(BATCH_OBJECTS) {
                asked.push(if self.deltas.is_some() {
                    Message::GetTreesSince(batch.iter().map(|t| (t.0, t.2)).collect())
                } else {
                    Message::GetTrees(batch.iter().map(|t| t.0).collect())
                });
            }
            for batch in contents.chunks(BATCH_OBJECTS) {
                asked.push(if self.deltas.is_some() {
                    Message::GetContentsSince(batch.iter().map(|c| (c.0, c.2)).collect())
                } else {
                    Message::GetContents(batch.iter().map(|c| c.0).collect())
                });
            }
            self.send(&asked)?;
            let mut next_level = Vec::new();
            let mut next_contents = Vec::new();
            for batch in level.chunks(BATCH_OBJECTS) {
                let list = self.objects(batch.len(), "trees", |i| {
                    batch[i].2.map(|b| repo.tree(&b).map(|t| t.encode()))
                })?;
                for ((id, path_len, base), bytes) in batch.iter().zip(list) {
                    let tree = check_tree(id, &bytes).map_err(|m| self.protocol(m))?;
                    let base = match base {
                        Some(b) => Some(repo.tree(b)?),
                        None => None,
                    };
                    for entry in &tree.entries {
                        let len = path_len + 1 + entry.name.len();
                        if len > MAX_PATH {
                            return Err(self.protocol(format!(
                                "refused a path of more than {MAX_PATH} bytes"
                            )));
                        }
                        let was = base.as_ref().and_then(|b| b.get(&entry.name));
                        match &entry.node {
                            Node::Dir { tree, .. } => {
                                if seen_trees.insert(*tree) && !repo.has_tree(tree)? {
                                    let base = match was.map(|e| &e.node) {
                                        Some(Node::Dir { tree, .. }) => Some(*tree),
                                        _ => None,
                                    };
                                    next_level.push((*tree, len, base));
                                }
                            }
                            Node::File { content, size, .. } => {
                                if seen_contents.insert(*content) && !repo.has_content(content)? {
                                    let base = match was.map(|e| &e.node) {
                                        Some(Node::File { content, .. })
                                            if repo.has_content(content)? =>
                                        {
                                            Some(*content)
                                        }
                                        _ => None,
                                    };
                                    next_contents.push((*content, *size, base));
                                }
                            }
                            Node::Symlink { .. } => {}
                        }
                    }
                    trees.push(tree);
                }
            }
            for batch in contents.chunks(BATCH_OBJECTS) {
                let list = self.objects(batch.len(), "chunk lists", |i| {
                    batch[i].2.map(|b| repo.content(&b).map(|c| c.encode()))
                })?;
                let mut checked = Vec::with_capacity(list.len());
                for ((id, size, _), bytes) in batch.iter().zip(list) {
                    checked.push(check_content(id, *size, &bytes).map_err(|m| self.protocol(m))?);
                }
                let mut writer = repo.writer()?;
                let mut tables = writer.tables()?;
                for list in &checked {
                    tables.put_content(list)?;
                }
                drop(tables);
                writer.commit()?;
            }
            level = next_level;
            contents = next_contents;
        }
        let mut writer = repo.writer()?;
        for tree in &trees {
            writer.put_tree(tree)?;
        }
        writer.commit()
    }

    /// [`RemoteSource::fetch_trees`] in protocol 5: the first request names the root and
    /// the base root, later ones name the entries of trees received that the repository
    /// lacks by their place, `(tree, entry)`, and the source adds unasked what differs from
    /// the base at the same path. Every object received is checked against the id its place
    /// names, after decompression, before anything is stored.
    fn fetch_places(
        &mut self,
        repo: &Repository,
        root: TreeId,
        base_root: Option<TreeId>,
    ) -> Result<()> {
        // Every tree received, in order (entries are named by its position), with the length
        // of its path and its base.
        let mut trees: Vec<(Tree, usize, Option<TreeId>)> = Vec::new();
        let mut seen_trees: HashSet<TreeId> = HashSet::from([root]);
        let mut seen_contents: HashSet<ContentId> = HashSet::new();
        let mut wanted: Vec<(u32, u32)> = Vec::new();
        let mut first = true;
        while first || !wanted.is_empty() {
            let mut asked = Vec::new();
            if first {
                asked.push(Message::GetSince {
                    root: Some((root, base_root)),
                    entries: Vec::new(),
                });
            }
            for batch in wanted.chunks(BATCH_OBJECTS) {
                asked.push(Message::GetSince {
                    root: None,
                    entries: batch.to_vec(),
                });
            }
            self.send(&asked)?;
            let round = trees.len();
            let mut missing: HashSet<(u32, u32)> = wanted.iter().copied().collect();
            for request in &asked {
                // Items of this answer so far; those after the ones asked are unasked.
                let mut answered = 0usize;
                let asked_here = match request {
                    Message::GetSince { root: Some(_), .. } => 1,
                    Message::GetSince { entries, .. } => entries.len(),
                    _ => 0,
                };
                loop {
                    let (items, chunks, len, data, more) = match self.receive()? {
                        Message::Found {
                            items,
                            chunks,
                            len,
                            data,
                            more,
                        } => (items, chunks, len, data, more),
                        _ => return Err(self.protocol("expected trees and chunk lists")),
                    };
                    // What each item is, by its place: the id it must hash to, and its base.
                    let mut expected = Vec::with_capacity(items.len());
                    let mut dictionary = Vec::new();
                    // The base trees read for this message: the items of one directory share
                    // their parent's.
                    let mut base_trees: HashMap<TreeId, Tree> = HashMap::new();
                    // The bases of the trees of this message, in order (protocol 6).
                    let mut bases_here: Vec<Option<TreeId>> = Vec::new();
                    // The item of each of those trees.
                    let mut tree_items: Vec<usize> = Vec::new();
                    for item in &items {
                        let pushed = self.one_frame && answered >= asked_here;
                        answered += 1;
                        let (node, base) = match item.at {
                            Some((tree, entry)) if pushed => {
                                let base = match trees.get(tree as usize) {
                                    Some((_, _, base)) => Some(base.as_ref()),
                                    None => bases_here
                                        .get(tree as usize - trees.len())
                                        .map(Option::as_ref),
                                };
                                let Some(base) = base else {
                                    return Err(
                                        self.protocol(format!("no tree {tree} was received"))
                                    );
                                };
                                let Some(base) = base else {
                                    return Err(self.protocol(format!(
                                        "tree {tree} has no base: no entry {entry} of it can \
                                         be sent unasked"
                                    )));
                                };
                                if !base_trees.contains_key(base) {
                                    base_trees.insert(*base, repo.tree(base)?);
                                }
                                let was = base_trees
                                    .get(base)
                                    .and_then(|t| t.entries.get(entry as usize));
                                let (dir, based) = match was.map(|e| (&e.name, &e.node)) {
                                    Some((_, Node::Dir { tree, .. })) => (true, Based::Tree(*tree)),
                                    Some((_, Node::File { content, .. })) => {
                                        (false, Based::Content(*content))
                                    }
                                    _ => {
                                        return Err(self.protocol(format!(
                                            "the base of tree {tree} has no entry {entry} \
                                             of a tree or file"
                                        )))
                                    }
                                };
                                let name = was.map(|e| e.name.clone()).unwrap_or_default();
                                (Expected::Pushed { tree, name, dir }, Some(based))
                            }
                            None if first && trees.is_empty() && bases_here.is_empty() => {
                                (Expected::Tree(root, 0), base_root.map(Based::Tree))
                            }
                            None => return Err(self.protocol("a second root")),
                            Some((tree, entry)) => {
                                let Some((parent, path_len, base)) = trees.get(tree as usize)
                                else {
                                    return Err(
                                        self.protocol(format!("no tree {tree} was received"))
                                    );
                                };
                                let Some(found) = parent.entries.get(entry as usize) else {
                                    return Err(
                                        self.protocol(format!("tree {tree} has no entry {entry}"))
                                    );
                                };
                                let len = path_len + 1 + found.name.len();
                                if len > MAX_PATH {
                                    return Err(self.protocol(format!(
                                        "refused a path of more than {MAX_PATH} bytes"
                                    )));
                                }
                                let was = match base {
                                    Some(b) => {
                                        if !base_trees.contains_key(b) {
                                            base_trees.insert(*b, repo.tree(b)?);
                                        }
                                        base_trees
                                            .get(b)
                                            .and_then(|t| t.get(&found.name))
                                            .map(|e| e.node.clone())
                                    }
                                    None => None,
                                };
                                match (&found.node, was) {
                                    (Node::Dir { tree, .. }, was) => (
                                        Expected::Tree(*tree, len),
                                        match was {
                                            Some(Node::Dir { tree, .. }) => Some(Based::Tree(tree)),
                                            _ => None,
                                        },
                                    ),
                                    (Node::File { content, size, .. }, was) => (
                                        Expected::Content(*content, *size),
                                        match was {
                                            Some(Node::File { content, .. }) => {
                                                Some(Based::Content(content))
                                            }
                                            _ => None,
                                        },
                                    ),
                                    (Node::Symlink { .. }, _) => {
                                        return Err(self.protocol("a symlink sent as an object"))
                                    }
                                }
                            }
                        };
                        if matches!(
                            node,
                            Expected::Tree(..) | Expected::Pushed { dir: true, .. }
                        ) {
                            tree_items.push(expected.len());
                        }
                        match (&node, &base) {
                            (
                                Expected::Tree(..) | Expected::Pushed { dir: true, .. },
                                Some(Based::Tree(b)),
                            ) => bases_here.push(Some(*b)),
                            (Expected::Tree(..), _) => bases_here.push(None),
                            _ => {}
                        }
                        if item.based {
                            match base {
                                Some(Based::Tree(b)) => dictionary.extend(repo.tree(&b)?.encode()),
                                Some(Based::Content(b)) => {
                                    dictionary.extend(repo.content(&b)?.encode())
                                }
                                None => return Err(self.protocol("a delta against nothing")),
                            }
                        }
                        let base = match base {
                            Some(Based::Tree(b)) => Some(b),
                            _ => None,
                        };
                        expected.push((item.at, node, base));
                    }
                    let (mut encodings, chunk_bytes) =
                        super::wire::open_found(&items, len, &data, &dictionary)
                            .map_err(|m| self.protocol(m))?;
                    if self.one_frame {
                        fill_implied_ids(
                            &expected,
                            &tree_items,
                            trees.len(),
                            &chunks,
                            &chunk_bytes,
                            &mut encodings,
                        );
                    }
                    let mut lists = Vec::new();
                    // Item number -> its chunk list in `lists`.
                    let mut list_of: HashMap<u32, usize> = HashMap::new();
                    for (item, ((at, node, base), bytes)) in
                        expected.into_iter().zip(encodings).enumerate()
                    {
                        let node = match node {
                            Expected::Pushed { tree, name, dir } => {
                                self.pushed_entry(&trees, tree, &name, dir)?
                            }
                            node => {
                                if let Some(at) = at {
                                    missing.remove(&at);
                                }
                                node
                            }
                        };
                        match node {
                            Expected::Tree(id, path_len) => {
                                let tree = check_tree(&id, &bytes).map_err(|m| self.protocol(m))?;
                                seen_trees.insert(id);
                                trees.push((tree, path_len, base));
                            }
                            Expected::Content(id, size) => {
                                list_of.insert(item as u32, lists.len());
                                lists.push(
                                    check_content(&id, size, &bytes)
                                        .map_err(|m| self.protocol(m))?,
                                );
                                seen_contents.insert(id);
                            }
                            Expected::Pushed { .. } => {
                                return Err(self.protocol("an entry sent unasked twice over"))
                            }
                        }
                    }
                    // The chunks sent unasked, each checked against its hash, kept until the
                    // sync needs them.
                    let mut at = 0usize;
                    for (item, chunk) in chunks {
                        let Some(chunk) = list_of
                            .get(&item)
                            .and_then(|&l| lists[l].chunks.get(chunk as usize))
                            .copied()
                        else {
                            return Err(self.protocol("a chunk of no chunk list sent"));
                        };
                        let end = at + chunk.len as usize;
                        let Some(bytes) = chunk_bytes.get(at..end) else {
                            return Err(self.protocol("an answer cut short"));
                        };
                        at = end;
                        self.unasked += u64::from(chunk.len);
                        if self.unasked > MAX_UNASKED {
                            return Err(self.protocol("too many chunks sent unasked"));
                        }
                        let Some(verified) = VerifiedChunk::check(chunk.id, bytes.to_vec()) else {
                            return Err(self.protocol(format!(
                                "chunk {} does not match its hash; nothing of it was written",
                                chunk.id.short()
                            )));
                        };
                        self.stash.insert(chunk.id, verified);
                    }
                    if at != chunk_bytes.len() {
                        return Err(self.protocol("an answer longer than its items"));
                    }
                    let mut writer = repo.writer()?;
                    let mut tables = writer.tables()?;
                    for list in &lists {
                        tables.put_content(list)?;
                    }
                    drop(tables);
                    writer.commit()?;
                    if !more {
                        break;
                    }
                }
            }
            if first && trees.is_empty() {
                return Err(self.protocol("the root tree was not sent"));
            }
            if !missing.is_empty() {
                return Err(self.protocol(format!(
                    "{} of the trees and chunk lists asked for were not sent",
                    missing.len()
                )));
            }
            first = false;
            wanted.clear();
            for (index, (tree, _, _)) in trees.iter().enumerate().skip(round) {
                for (entry, e) in tree.entries.iter().enumerate() {
                    let want = match &e.node {
                        Node::Dir { tree, .. } => {
                            seen_trees.insert(*tree) && !repo.has_tree(tree)?
                        }
                        Node::File { content, .. } => {
                            seen_contents.insert(*content) && !repo.has_content(content)?
                        }
                        Node::Symlink { .. } => false,
                    };
                    if want {
                        wanted.push((index as u32, entry as u32));
                    }
                }
            }
        }
        let mut writer = repo.writer()?;
        for (tree, _, _) in &trees {
            writer.put_tree(tree)?;
        }
        writer.commit()
    }

    /// What an entry sent unasked in protocol 6's way is: the entry named `name` of the
    /// `tree`th tree received, of the kind of its base (a directory if `dir`).
    fn pushed_entry(
        &self,
        trees: &[(Tree, usize, Option<TreeId>)],
        tree: u32,
        name: &[u8],
        dir: bool,
    ) -> Result<Expected> {
        let Some((parent, path_len, _)) = trees.get(tree as usize) else {
            return Err(self.protocol(format!("no tree {tree} was received")));
        };
        let len = path_len + 1 + name.len();
        if len > MAX_PATH {
            return Err(self.protocol(format!("refused a path of more than {MAX_PATH} bytes")));
        }
        match (parent.get(name).map(|e| &e.node), dir) {
            (Some(Node::Dir { tree, .. }), true) => Ok(Expected::Tree(*tree, len)),
            (Some(Node::File { content, size, .. }), false) => {
                Ok(Expected::Content(*content, *size))
            }
            _ => Err(self.protocol(format!(
                "an entry sent unasked that tree {tree} has not, or not of its base's kind"
            ))),
        }
    }

    /// Receives the answer to one request for `count` trees or chunk lists (`what`), in
    /// either form, and returns their encodings; `base(i)` reads the encoding of the base
    /// the request named for the `i`th, if it named one.
    fn objects(
        &mut self,
        count: usize,
        what: &str,
        base: impl Fn(usize) -> Option<Result<Vec<u8>>>,
    ) -> Result<Vec<Vec<u8>>> {
        let list = match (self.deltas.is_some(), self.receive()?) {
            (false, Message::Trees(list) | Message::Contents(list)) => list,
            (true, Message::Objects(objects)) => {
                if objects.len() != count {
                    return Err(self.protocol(format!("wrong number of {what}")));
                }
                let mut list = Vec::with_capacity(count);
                for (i, object) in objects.into_iter().enumerate() {
                    let base = match (&object, base(i)) {
                        (Object::Delta { .. }, Some(b)) => Some(b?),
                        _ => None,
                    };
                    list.push(object.open(base.as_deref()).map_err(|m| self.protocol(m))?);
                }
                list
            }
            _ => return Err(self.protocol(format!("expected {what}"))),
        };
        if list.len() != count {
            return Err(self.protocol(format!("wrong number of {what}")));
        }
        Ok(list)
    }

    /// Reads one chunk answer, matches it with the oldest request, verifies it on arrival and
    /// returns it (`None`: the source could not read it). Bytes that are not the chunk asked
    /// for break the protocol: nothing of them is kept.
    fn next_chunk(&mut self) -> Result<(ChunkRef, Option<VerifiedChunk>)> {
        let message = self.receive()?;
        let front = match self.requests.lock() {
            Ok(mut r) => {
                let front = r.queue.pop_front();
                if r.queue.is_empty() {
                    r.queue.shrink_to_fit();
                }
                front
            }
            Err(_) => None,
        };
        let Some(front) = front else {
            return Err(self.protocol("a chunk nobody asked for"));
        };
        if self.pending.remove(&front.id) && self.pending.is_empty() {
            // Every chunk expected has arrived: what only the transfer needed is given back
            // before the destination's rescan.
            self.pending.shrink_to_fit();
            self.stash.shrink_to_fit();
        }
        if let Some(arrived) = &self.arrived {
            let _ = arrived.send(u64::from(front.len));
        }
        match message {
            Message::Chunk(data) => {
                let verified = (data.len() == front.len as usize)
                    .then(|| VerifiedChunk::check(front.id, data))
                    .flatten();
                let Some(verified) = verified else {
                    return Err(self.protocol(format!(
                        "chunk {} does not match its hash; nothing of it was written",
                        front.id.short()
                    )));
                };
                self.resume.keep(&verified);
                Ok((front, Some(verified)))
            }
            Message::NoChunk => Ok((front, None)),
            _ => Err(self.protocol("expected a chunk")),
        }
    }
}

impl SyncSource for RemoteSource {
    fn snapshot(
        &mut self,
        repo: &Repository,
        _chunker: &dyn Chunker,
        sink: &dyn Sink,
    ) -> Result<SourceState> {
        self.snapshot_streamed(repo, sink, None)
    }

    /// Files streamed by the source while it scans (a cold pull) are copied to `copy`.
    fn snapshot_copying(
        &mut self,
        repo: &Repository,
        _chunker: &dyn Chunker,
        sink: &dyn Sink,
        copy: &dyn CopySink,
    ) -> Result<SourceState> {
        self.snapshot_streamed(repo, sink, Some(copy))
    }
}

impl RemoteSource {
    /// [`SyncSource::snapshot`], the files the source streams meanwhile copied to `copy`.
    fn snapshot_streamed(
        &mut self,
        repo: &Repository,
        sink: &dyn Sink,
        copy: Option<&dyn CopySink>,
    ) -> Result<SourceState> {
        // The chunks spilled for a retry go beside the fallback's downloads.
        self.resume.spill_to(repo.root().join("spool"));
        let info = match self.info.take() {
            Some(info) => info,
            None => self.await_source(repo, sink, copy)?,
        };
        for path in &info.unreadable {
            check_path(path).map_err(|m| self.protocol(m))?;
        }
        self.fetch_trees(repo, info.root)?;
        Ok(SourceState {
            root: info.root,
            files: info.files,
            bytes: info.bytes,
            unreadable: info.unreadable,
            root_meta: info.root_meta,
        })
    }
}

impl ChunkSource for RemoteSource {
    fn prefetches(&self) -> bool {
        true
    }

    fn expect(&mut self, chunks: &[ChunkRef]) -> Result<()> {
        // What the previous connection delivered is not asked for again.
        let chunks: Vec<ChunkRef> = chunks
            .iter()
            .filter(|c| !self.resume.contains(&c.id) && !self.stash.contains_key(&c.id))
            .copied()
            .collect();
        if chunks.is_empty() {
            return Ok(());
        }
        self.pending.extend(chunks.iter().map(|c| c.id));
        let (arrived, window) = mpsc::channel::<u64>();
        self.arrived = Some(arrived);
        let requests = Arc::clone(&self.requests);
        // Keeps up to WINDOW bytes requested ahead of what has arrived.
        std::thread::spawn(move || {
            let mut in_flight = 0u64;
            let mut rest = chunks.as_slice();
            while !rest.is_empty() {
                while in_flight >= WINDOW {
                    match window.recv() {
                        Ok(n) => in_flight = in_flight.saturating_sub(n),
                        Err(_) => return,
                    }
                }
                while let Ok(n) = window.try_recv() {
                    in_flight = in_flight.saturating_sub(n);
                }
                let mut take = 0;
                let mut bytes = 0u64;
                while take < rest.len() && take < BATCH_CHUNKS && bytes < BATCH_BYTES {
                    bytes += u64::from(rest[take].len);
                    take += 1;
                }
                let (batch, tail) = rest.split_at(take);
                rest = tail;
                in_flight += bytes;
                let sent = match requests.lock() {
                    Ok(mut r) => r.ask_chunks(batch.to_vec()),
                    Err(_) => return,
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    /// The chunk from what arrived ahead of need or on the previous connection, else asked
    /// for (if it was not already) and awaited, stashing the other chunks that arrive first.
    /// Every chunk was verified on arrival; `None` when the source said it cannot read it.
    fn read_chunk(
        &mut self,
        path: &[u8],
        _offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        // Asked for another file's chunk: the last file was received whole.
        self.resume.file(path);
        if let Some(found) = self.stash.remove(&chunk.id) {
            if self.stash.is_empty() && self.pending.is_empty() {
                self.stash.shrink_to_fit();
            }
            return Ok(Some(found));
        }
        if let Some(found) = self.resume.get(&chunk.id) {
            if found.len() == chunk.len as usize {
                return Ok(Some(found));
            }
        }
        if self.unavailable.contains(&chunk.id) {
            return Ok(None);
        }
        if !self.pending.contains(&chunk.id) {
            self.pending.insert(chunk.id);
            match self.requests.lock() {
                Ok(mut r) => r.ask_chunks(vec![chunk]).map_err(|e| self.lost(e))?,
                Err(_) => return Err(self.protocol("connection writer poisoned")),
            }
        }
        loop {
            let (got, data) = self.next_chunk()?;
            match data {
                Some(found) if got.id == chunk.id && found.len() == chunk.len as usize => {
                    return Ok(Some(found));
                }
                Some(found) => {
                    self.stash.insert(got.id, found);
                }
                None if got.id == chunk.id => {
                    self.unavailable.insert(got.id);
                    return Ok(None);
                }
                None => {
                    self.unavailable.insert(got.id);
                }
            }
        }
    }
}
