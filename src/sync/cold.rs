//! One read of the source in a cold initial sync.
//!
//! When the destination is a directory of this machine and holds nothing yet (absent, or
//! empty), every file the source's scan reads will be written there. So the scan copies each
//! file as it reads it ([`ScanOptions::copy`](crate::scan::ScanOptions)): the bytes it cuts
//! and hashes go, from the same buffer, into a temporary file at the same path in the
//! destination, and once the scan has verified the read (the file's stat after reading is the
//! one before), the temporary file is committed as any other ([`TempFile::commit`] on the
//! committer's threads: durable, then renamed). The plan then has no step for those files
//! ([`ColdCopies::holds`]) and the apply step notes them from the source's tree
//! ([`each_file`]): the source is read and hashed once, and no step is held per file copied.
//!
//! Never does: commit a copy of a read the scan did not verify (a file that changed while
//! read is written by the apply step, from the read the scan kept), or let a failure of its
//! own (a full disk, a directory it may not create) fail the scan: such a file is simply not
//! copied, and the apply step writes it as it would have.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Mutex, PoisonError};

use crate::chunk::Tee;
use crate::error::{Error, Result};
use crate::id::{ContentId, TreeId};
use crate::origin::{ChangeKey, EntryKind, EntryStat, TempFile, WritableOrigin};
use crate::repo::{Repository, Trees};
use crate::report::display_path;
use crate::scan::{CopySink, FileCopy};
use crate::snapshot::{ChunkList, Node};

use super::commit::{Committer, THREADS};
use super::plan::Wanted;

/// Whether `destination`, a directory of this machine that exists, holds no entry at all (not
/// even one its filter excludes or a leftover temporary file). One look at its listing: a
/// destination that holds files stops at the first.
pub(super) fn is_empty(destination: &dyn WritableOrigin) -> bool {
    destination
        .local_root()
        .and_then(|root| std::fs::read_dir(root).ok())
        .is_some_and(|mut entries| entries.next().is_none())
}

/// Whether a sync into `destination` is a cold initial sync, by the test [`super::sync_from`]
/// makes: not a dry run, a directory of this machine, absent or empty. A remote source asks
/// for such a destination's files to be streamed while it scans (`agent::stream`).
pub fn is_cold(destination: &dyn WritableOrigin, dry_run: bool) -> bool {
    !dry_run
        && destination.local_root().is_some()
        && (matches!(destination.stat(b""), Ok(None)) || is_empty(destination))
}

/// Copies handed to the committer and not yet back, at most. Each is written out before it is
/// handed over (it holds a handle, not its bytes), and those waiting together share one flush:
/// the more may wait, the fewer flushes. A quarter of the files the process may hold open (the
/// soft `RLIMIT_NOFILE`, which the binary raises to 4,096 where the hard limit allows), between
/// 64 and 1,024: 256 under the usual default of 1,024, 1,024 once raised, which took 2–8 % off
/// the cold sync of 100,000 files (`docs/benchmarks.md`).
fn in_flight() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4)
        .unwrap_or(usize::MAX)
        .clamp(64, 1024)
}

/// A file the scan copied into the destination and committed there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Copied {
    /// Its content, by [`content_key`].
    pub content: ContentKey,
    pub mode: u32,
    pub mtime_ns: i64,
    /// What its copy took from the source first in this run.
    pub moved: Moved,
    /// Its inode once in place, as the destination's record of it wants it; `None`: not
    /// known, and the file's stat is taken when it is recorded.
    pub landed: Option<Landed>,
}

/// A copy's device, inode number and change time once it is in place (a local destination's
/// change key, which the rename set): taken by the reader that put it there, so that recording
/// the destination after the scan need not `stat` each file again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Landed {
    dev: u64,
    ino: u64,
    ctime_ns: i64,
}

impl Landed {
    /// The stat of the copy of `size` bytes, `mode` and `mtime_ns` that landed so.
    pub(super) fn stat(self, size: u64, mode: u32, mtime_ns: i64) -> EntryStat {
        EntryStat {
            kind: EntryKind::File,
            size,
            mtime_ns,
            change: ChangeKey::Posix {
                dev: self.dev,
                ino: self.ino,
                ctime_ns: self.ctime_ns,
            },
            mode: mode & 0o7777,
        }
    }
}

/// The chunks a copy was the first of this run's copies to take from the source (the
/// destination held nothing when the run began), as a sync's summary counts them: the rest of
/// its bytes are reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Moved {
    pub bytes: u64,
    pub chunks: u32,
}

/// A copy handed to the committer: its path, what it holds, and its chunks (their
/// [`sent_key`]s and lengths), counted once it is in place.
type Ticket = (Vec<u8>, Copied, Vec<(u64, u32)>);

/// A commit that ended: the copy, and the outcome.
type Ended = (Ticket, Result<()>);

/// A chunk as the chunks taken from the source in a sync are counted by: the first 64 bits
/// of its id (a BLAKE3 hash). Two chunks that share them would only have the second counted
/// as reused.
pub(super) fn sent_key(id: &crate::id::ChunkId) -> u64 {
    let mut key = [0u8; 8];
    key.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_le_bytes(key)
}

/// A path as the copies are looked up by: 128 bits of its BLAKE3, two words per file of a
/// large library where the path would be a string each. A write is skipped only when the copy
/// under its key holds the very content, mode and mtime it would write, so not even a
/// collision could skip a write that was needed.
type PathKey = [u8; 16];

fn path_key(path: &[u8]) -> PathKey {
    let mut key = [0u8; 16];
    key.copy_from_slice(&blake3::hash(path).as_bytes()[..16]);
    key
}

/// A content as a copy is compared by: the first 128 bits of its id (a BLAKE3 hash), as a
/// path is by [`PathKey`]. The copies' records are held to the end of the source's scan,
/// where the sync's memory peaks: 16 bytes less each, 1.6 MB at 100,000 files.
type ContentKey = [u8; 16];

fn content_key(id: &ContentId) -> ContentKey {
    let mut key = [0u8; 16];
    key.copy_from_slice(&id.as_bytes()[..16]);
    key
}

/// The destination's side of a cold initial sync's scan: copies each file read into the
/// destination, and commits it once the read is verified.
pub(super) struct ColdCopy<'a> {
    destination: &'a dyn WritableOrigin,
    committer: Mutex<Committer<Ticket>>,
    /// Directories created so far.
    made: Mutex<HashSet<Vec<u8>>>,
    /// The files committed so far, in the order they were committed. A vector grows in place
    /// where a hash map would hold its old table beside the new one while it grows (4 MB more
    /// at 100,000 files); [`ColdCopy::finish`] sorts it once.
    copied: Mutex<Vec<(PathKey, Copied)>>,
    /// The chunks of the copies in place, by [`sent_key`]: a chunk is counted as taken from
    /// the source with the first copy in place that holds it.
    sent: Mutex<HashSet<u64>>,
}

impl<'a> ColdCopy<'a> {
    /// Starts the committer's threads. Errors: the system refused to start a thread.
    pub(super) fn start(destination: &'a dyn WritableOrigin) -> Result<Self> {
        Ok(ColdCopy {
            destination,
            committer: Mutex::new(
                Committer::start_batched(THREADS, in_flight())
                    .map_err(|e| Error::io(destination.display(b""), e))?,
            ),
            made: Mutex::new(HashSet::new()),
            copied: Mutex::new(Vec::new()),
            sent: Mutex::new(HashSet::new()),
        })
    }

    /// Waits for every commit under way; the files now in place at the destination.
    pub(super) fn finish(self) -> ColdCopies {
        let ended = self
            .committer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain();
        self.note(ended);
        let files = self
            .copied
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let dirs = self
            .made
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut copies = ColdCopies::new(files, dirs);
        copies.sent = self
            .sent
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        copies
    }

    /// Notes the commits that ended (as they end: not held until the scan's end, a few words
    /// each): those that succeeded are in place, and their chunks counted.
    fn note(&self, mut ended: Vec<Ended>) {
        if ended.is_empty() {
            return;
        }
        // Before the locks: a `stat` each.
        for ((path, file, chunks), outcome) in &mut ended {
            if outcome.is_ok() {
                let size = chunks.iter().map(|&(_, len)| u64::from(len)).sum();
                file.landed = self.landed(path, file, size);
            }
        }
        let mut copied = self.copied.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        for ((path, mut file, chunks), outcome) in ended {
            match outcome {
                Ok(()) => {
                    for (key, len) in chunks {
                        if sent.insert(key) {
                            file.moved.bytes += u64::from(len);
                            file.moved.chunks += 1;
                        }
                    }
                    copied.push((path_key(&path), file));
                }
                // The apply step writes it, and reports what fails then.
                Err(e) => tracing::debug!("{}: copy not committed: {e}", display_path(&path)),
            }
        }
    }

    /// The inode of the copy `file` of `size` bytes just put in place at `path`, when its
    /// stat is the one the copy was given (a file of that size, mode and mtime): else `None`.
    fn landed(&self, path: &[u8], file: &Copied, size: u64) -> Option<Landed> {
        let stat = self.destination.stat(path).ok().flatten()?;
        let ChangeKey::Posix { dev, ino, ctime_ns } = stat.change else {
            return None;
        };
        let landed = Landed { dev, ino, ctime_ns };
        (stat == landed.stat(size, file.mode, file.mtime_ns)).then_some(landed)
    }

    /// Creates the directories above `path` that this run has not created yet (top down; a
    /// directory that exists already is fine).
    fn make_parents(&self, path: &[u8]) -> Result<()> {
        let ends = path
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| i);
        for end in ends {
            let dir = &path[..end];
            if self
                .made
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(dir)
            {
                continue;
            }
            self.destination.create_dir(dir)?;
            self.made
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(dir.to_vec());
        }
        Ok(())
    }
}

impl CopySink for ColdCopy<'_> {
    fn start(&self, path: &[u8], _stat: &EntryStat) -> Option<Box<dyn FileCopy + '_>> {
        let file = self
            .make_parents(path)
            .and_then(|()| self.destination.create_temp(path));
        match file {
            Ok(file) => Some(Box::new(Copying {
                cold: self,
                path: path.to_vec(),
                file: Some(file),
                written: 0,
            })),
            Err(e) => {
                tracing::debug!("{}: not copied while read: {e}", display_path(path));
                None
            }
        }
    }
}

/// One file being copied as it is read.
struct Copying<'c> {
    cold: &'c ColdCopy<'c>,
    path: Vec<u8>,
    /// The temporary file; `None` once given up or handed over to be committed.
    file: Option<Box<dyn TempFile>>,
    /// Bytes written to it.
    written: u64,
}

impl Copying<'_> {
    fn give_up(&mut self, why: &dyn std::fmt::Display) {
        if let Some(file) = self.file.take() {
            tracing::debug!("{}: not copied while read: {why}", display_path(&self.path));
            file.discard();
        }
    }
}

impl Tee for Copying<'_> {
    fn bytes(&mut self, offset: u64, data: &[u8]) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        // A second pass over the file (a container read again as plain bytes) would need the
        // copy rewound: it is given up instead, and the apply step writes the file.
        if offset != self.written {
            self.give_up(&"read twice");
            return;
        }
        match file.write_all(data) {
            Ok(()) => self.written += data.len() as u64,
            Err(e) => self.give_up(&e),
        }
    }
}

impl FileCopy for Copying<'_> {
    fn finish(mut self: Box<Self>, stat: &EntryStat, list: &ChunkList, content: &ContentId) {
        let Some(file) = self.file.take() else {
            return;
        };
        if self.written != stat.size || list.size() != stat.size {
            self.file = Some(file);
            self.give_up(&"not every byte was copied");
            return;
        }
        // Written out here, on the reader's thread, while its bytes are at hand: what waits
        // for the committer is a handle.
        let mut file = file;
        if let Err(e) = file.write_out(stat.mode, stat.mtime_ns) {
            tracing::debug!("{}: not copied while read: {e}", display_path(&self.path));
            file.discard();
            return;
        }
        crate::failpoint::hit("before-rename");
        let copied = Copied {
            content: content_key(content),
            mode: stat.mode,
            mtime_ns: stat.mtime_ns,
            moved: Moved::default(),
            landed: None,
        };
        let chunks = list
            .chunks
            .iter()
            .map(|chunk| (sent_key(&chunk.id), chunk.len))
            .collect();
        let path = std::mem::take(&mut self.path);
        let ended = self
            .cold
            .committer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .submit(file, stat.mode, stat.mtime_ns, (path, copied, chunks));
        self.cold.note(ended);
    }
}

impl Drop for Copying<'_> {
    /// A copy dropped unfinished (the read failed, or the file changed while read) is thrown
    /// away: it never reaches its final name.
    fn drop(&mut self) {
        self.give_up(&"the read was not verified");
    }
}

/// The files a cold sync's scan copied into the destination and committed there, by path.
#[derive(Debug, Default)]
pub(super) struct ColdCopies {
    /// Sorted by key, one entry per key.
    files: Vec<(PathKey, Copied)>,
    /// The directories created for them.
    dirs: HashSet<Vec<u8>>,
    /// Their chunks, by [`sent_key`].
    sent: HashSet<u64>,
}

impl ColdCopies {
    /// The copies `files` lists in the order they were committed, and the directories made
    /// for them: by path, a path's last commit the one that stands.
    fn new(mut files: Vec<(PathKey, Copied)>, dirs: HashSet<Vec<u8>>) -> Self {
        // A stable sort keeps a path's commits in their order.
        files.sort_by_key(|(key, _)| *key);
        files.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                *kept = *later;
            }
            same
        });
        files.shrink_to_fit();
        ColdCopies {
            files,
            dirs,
            sent: HashSet::new(),
        }
    }

    /// Whether no file was copied.
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether the directory `path` was created for the copies (a step creating it is done).
    pub(super) fn made_dir(&self, path: &[u8]) -> bool {
        self.dirs.contains(path)
    }

    /// Whether the copy at `path` is the file `wanted` describes (its content, mode and mtime):
    /// the write step for it is done, and is not planned ([`super::plan::plan_around`]). A
    /// copy that is not what the step wants stays, and the step replaces it as it would any
    /// file.
    pub(super) fn holds(&self, wanted: Wanted<'_>) -> bool {
        self.copy(wanted).is_some()
    }

    /// The copy at `path`, when it is the file `wanted` describes ([`ColdCopies::holds`]).
    pub(super) fn copy(&self, wanted: Wanted<'_>) -> Option<Copied> {
        if self.files.is_empty() {
            return None;
        }
        let i = self.find(&path_key(wanted.path))?;
        let file = &self.files[i].1;
        (file.content == content_key(wanted.content)
            && file.mode == wanted.mode
            && file.mtime_ns == wanted.mtime_ns)
            .then_some(*file)
    }

    /// The chunks of the copies, by [`sent_key`], taken out: the chunks this run has taken
    /// from the source so far.
    pub(super) fn take_sent(&mut self) -> HashSet<u64> {
        std::mem::take(&mut self.sent)
    }

    /// Where `key` is in `files`. The keys are hashes, spread evenly: a search starts where
    /// the key's value says it should lie, and narrows the range by the same estimate, in a
    /// few steps where halving it would take seventeen at 100,000 files (each a cache miss).
    fn find(&self, key: &PathKey) -> Option<usize> {
        let lead = |k: &PathKey| u64::from_be_bytes(k[..8].try_into().unwrap_or_default());
        let (mut low, mut high) = (0usize, self.files.len());
        let target = lead(key);
        // Within [low, high): the keys below `low` are smaller, those from `high` larger.
        for _ in 0..4 {
            if high - low <= 16 {
                break;
            }
            let (first, last) = (lead(&self.files[low].0), lead(&self.files[high - 1].0));
            if target < first || target > last {
                return None;
            }
            let span = u128::from(last - first).max(1);
            let guess = low
                + usize::try_from(u128::from(target - first) * ((high - low - 1) as u128) / span)
                    .unwrap_or(0);
            let guess = guess.min(high - 1);
            match self.files[guess].0.cmp(key) {
                std::cmp::Ordering::Equal => return Some(guess),
                std::cmp::Ordering::Less => low = guess + 1,
                std::cmp::Ordering::Greater => high = guess,
            }
        }
        self.files[low..high]
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .map(|i| low + i)
    }

    /// How many files were copied.
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }

    /// Lets go of the files' list, once they are noted: the directories stay known.
    pub(super) fn forget_files(&mut self) {
        self.files = Vec::new();
    }
}

/// Calls `visit` for each regular file of the tree `root` in the order a plan lists them
/// (depth first, names in order), with its path; an entry whose path `skip` names is passed
/// over with everything below it. One tree is read at a time.
pub(super) fn each_file(
    repo: &Repository,
    root: TreeId,
    skip: &dyn Fn(&[u8]) -> bool,
    visit: &mut dyn FnMut(Wanted<'_>, u64) -> Result<()>,
) -> Result<()> {
    /// `trees` is the read transaction to read below `tree` with; `None` at the root, where
    /// each directory gets a transaction of its own. Beginning one takes the index's header
    /// lock, which waits for any commit under way: one per tree cost a lock each, and one for
    /// the whole walk would keep the pages the visitor's commits replace from being reused.
    fn below(
        repo: &Repository,
        trees: Option<&Trees<'_>>,
        tree: TreeId,
        prefix: &[u8],
        skip: &dyn Fn(&[u8]) -> bool,
        visit: &mut dyn FnMut(Wanted<'_>, u64) -> Result<()>,
    ) -> Result<()> {
        let listing = match trees {
            Some(trees) => trees.get(&tree)?,
            None => repo.trees()?.get(&tree)?,
        };
        for entry in listing.entries {
            let path = crate::relpath::join(prefix, &entry.name);
            if skip(&path) {
                continue;
            }
            match entry.node {
                Node::File {
                    size,
                    mtime_ns,
                    mode,
                    content,
                } => visit(
                    Wanted {
                        path: &path,
                        content: &content,
                        mode,
                        mtime_ns,
                    },
                    size,
                )?,
                Node::Dir { tree, .. } => match trees {
                    Some(trees) => below(repo, Some(trees), tree, &path, skip, visit)?,
                    None => below(repo, Some(&repo.trees()?), tree, &path, skip, visit)?,
                },
                Node::Symlink { .. } => {}
            }
        }
        Ok(())
    }
    below(repo, None, root, b"", skip, visit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> ContentId {
        ContentId::from_stored([byte; 32])
    }

    fn copied(byte: u8, mtime_ns: i64) -> Copied {
        Copied {
            content: content_key(&id(byte)),
            mode: 0o644,
            mtime_ns,
            moved: Moved::default(),
            landed: None,
        }
    }

    fn wanted<'a>(path: &'a [u8], content: &'a ContentId, file: &Copied) -> Wanted<'a> {
        Wanted {
            path,
            content,
            mode: file.mode,
            mtime_ns: file.mtime_ns,
        }
    }

    #[test]
    fn a_copys_record_stays_within_96_bytes() {
        // Held for every file to the end of the source's scan, where a cold sync's memory
        // peaks (`docs/benchmarks.md`).
        assert!(std::mem::size_of::<(PathKey, Copied)>() <= 96);
    }

    #[test]
    fn copies_are_found_by_path_and_a_paths_last_commit_stands() {
        let paths: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("a/{i}.flac").into_bytes())
            .collect();
        // Committed in an order that is not the keys', one path twice.
        let mut files: Vec<_> = paths
            .iter()
            .enumerate()
            .rev()
            .map(|(i, p)| (path_key(p), copied(i as u8, 1)))
            .collect();
        let again = copied(9, 2);
        files.push((path_key(&paths[7]), again));
        let copies = ColdCopies::new(files, HashSet::new());
        assert_eq!(copies.len(), 500);
        for (i, path) in paths.iter().enumerate() {
            let byte = if i == 7 { 9 } else { i as u8 };
            let file = if i == 7 { again } else { copied(byte, 1) };
            let content = id(byte);
            assert!(copies.holds(wanted(path, &content, &file)), "{i}");
            // Any other content, mode or mtime is not the copy.
            let mut other = file;
            other.mtime_ns += 1;
            assert!(!copies.holds(wanted(path, &content, &other)), "{i}");
            let mut other = file;
            other.mode = 0o600;
            assert!(!copies.holds(wanted(path, &content, &other)), "{i}");
            let another = id(byte.wrapping_add(1));
            assert!(!copies.holds(wanted(path, &another, &file)), "{i}");
        }
        assert!(!copies.holds(wanted(&paths[7], &id(7), &copied(7, 1))));
        assert!(!copies.holds(wanted(b"a/none.flac", &id(0), &copied(0, 1))));
    }

    #[test]
    fn a_copy_in_place_carries_the_stat_it_landed_with() {
        use crate::origin::{LocalOrigin, Origin};
        use crate::snapshot::ChunkRef;
        let dir = tempfile::tempdir().unwrap();
        let destination = LocalOrigin::open(&dir.path().join("dst"), true).unwrap();
        destination.create_root().unwrap();
        let data = b"the bytes of a track".repeat(100);
        let list = ChunkList {
            chunks: vec![ChunkRef {
                id: crate::id::ChunkId::of(&data),
                len: data.len() as u32,
            }],
            ..ChunkList::default()
        };
        let source = EntryStat {
            kind: EntryKind::File,
            size: data.len() as u64,
            mtime_ns: 1_600_000_000_123_456_789,
            change: ChangeKey::None,
            mode: 0o640,
        };
        let path = b"Album/01.flac";
        let cold = ColdCopy::start(&destination).unwrap();
        let mut copy = cold.start(path, &source).expect("a copy begins");
        copy.bytes(0, &data);
        let content = list.content_id();
        copy.finish(&source, &list, &content);
        let copies = cold.finish();
        let wanted = Wanted {
            path,
            content: &content,
            mode: source.mode,
            mtime_ns: source.mtime_ns,
        };
        let landed = copies.copy(wanted).expect("in place").landed;
        // The stat it carries is the one the destination gives now: recorded without another.
        let now = destination.stat(path).unwrap().unwrap();
        let carried = landed.expect("its stat taken as it landed");
        assert_eq!(carried.stat(source.size, source.mode, source.mtime_ns), now);
        assert!(matches!(now.change, ChangeKey::Posix { .. }));
    }

    #[test]
    fn the_search_finds_every_key_and_no_other() {
        for n in [0usize, 1, 2, 17, 1000, 30_000] {
            let keys: Vec<PathKey> = (0..n)
                .map(|i| path_key(format!("{i}").as_bytes()))
                .collect();
            let files = keys.iter().map(|k| (*k, copied(0, 0))).collect();
            let copies = ColdCopies::new(files, HashSet::new());
            for key in &keys {
                let i = copies.find(key).expect("a key held is found");
                assert_eq!(&copies.files[i].0, key);
            }
            for i in 0..n.max(100) {
                let absent = path_key(format!("absent {i}").as_bytes());
                assert_eq!(copies.find(&absent), None);
            }
            // The smallest and largest keys there can be.
            assert_eq!(copies.find(&[0; 16]), None);
            assert_eq!(copies.find(&[0xff; 16]), None);
        }
    }
}
