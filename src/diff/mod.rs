//! What changed between two snapshots, path by path, in files and in tags: `musicfs diff`.
//!
//! Two snapshot trees are compared top-down by [`TreeId`], as `sync::plan` does, so equal
//! subtrees (and two identical snapshots) cost one comparison. The changes read from the old
//! side A to the new side B, as diff(1), `git diff` and `restic diff` read: `added` is in B
//! only, a tag field's `before` is A's value. (So `diff DST SRC` lists what `sync SRC DST`
//! would change at DST.) Each path gets one class ([`ChangeKind`]); paths found on one side
//! only are paired into moves, first by equal content, then by equal audio hash (moved and
//! retagged). Same-path changes are told apart
//! with what the scan recorded of each content: its audio hash and tags (`MediaRecord`), and
//! the chunks of its `Picture` regions.
//!
//! This module reads the repository only; it never touches an origin (resolving an operand
//! may scan one, in [`operand`]) and never prints.

mod fields;
pub mod operand;
pub mod text;

use std::collections::{HashMap, HashSet};

use serde::Serialize;

pub use fields::{diff_tags, FieldChange};
pub use operand::{resolve, Operand, Side};

use crate::error::Result;
use crate::filter::Filter;
use crate::id::{AudioHash, ChunkId, ContentId, TreeId};
use crate::media::tags::Tags;
use crate::media::RegionKind;
use crate::repo::{OriginId, Repository};
use crate::snapshot::{ChunkList, MediaRecord, Node};
use crate::sync::plan::{self, PlanOptions, Step};

/// The class of a change, as named in the JSON output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A path in B only, not explained as a move.
    Added,
    /// A path in A only, not the source of a move.
    Removed,
    /// A file (or a symlink's target) at the same path whose audio changed, or whose audio
    /// cannot be compared (no audio hash on either side) and whose content differs.
    Modified,
    /// A file at the same path with the same audio and different tags (pictures may have
    /// changed too); or with the same audio, tags and pictures but a rewritten tag block.
    Tags,
    /// A file at the same path with the same audio and tags, whose embedded pictures changed.
    Art,
    /// A file at a path in B only whose content (or audio, when it was retagged too) was at a
    /// path in A only.
    Moved,
    /// A path whose kind changed (file, directory, symlink).
    Type,
}

impl ChangeKind {
    /// Every class, in the order counts are shown.
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Added,
        ChangeKind::Removed,
        ChangeKind::Modified,
        ChangeKind::Tags,
        ChangeKind::Art,
        ChangeKind::Moved,
        ChangeKind::Type,
    ];

    /// The class's name in the output.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::Tags => "tags",
            ChangeKind::Art => "art",
            ChangeKind::Moved => "moved",
            ChangeKind::Type => "type",
        }
    }
}

/// What an entry is, for `type` changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
}

impl EntryKind {
    fn of(node: &Node) -> Self {
        match node {
            Node::File { .. } => EntryKind::File,
            Node::Dir { .. } => EntryKind::Directory,
            Node::Symlink { .. } => EntryKind::Symlink,
        }
    }

    /// The kind's name in the output.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Its class.
    pub kind: ChangeKind,
    /// The path in B (in A for `removed`). An empty directory added or removed is reported as
    /// itself, its path ending in `/`.
    pub path: Vec<u8>,
    /// For `moved`: the path in A.
    pub from: Option<Vec<u8>>,
    /// For `tags`, and for a move matched by audio hash (moved and retagged): the tag fields
    /// that differ (possibly none: the tag block was rewritten without a field changing).
    pub fields: Option<Vec<FieldChange>>,
    /// For `type`: the kinds in A and in B.
    pub kinds: Option<(EntryKind, EntryKind)>,
    /// The file's content in B, when it is a regular file there.
    pub new_content: Option<ContentId>,
    /// The file's content in A, when it is a regular file there.
    pub old_content: Option<ContentId>,
}

impl Change {
    fn new(kind: ChangeKind, path: Vec<u8>) -> Self {
        Change {
            kind,
            path,
            from: None,
            fields: None,
            kinds: None,
            new_content: None,
            old_content: None,
        }
    }

    /// The directory part of the path (empty at the root), and the name.
    pub fn dir_and_name(&self) -> (&[u8], &[u8]) {
        split_dir(&self.path)
    }
}

/// Splits `a/b/c` into `a/b` and `c`; a path ending in `/` (an empty directory) keeps it on
/// the name.
pub(crate) fn split_dir(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// How many changes of each class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// `added` changes.
    pub added: u64,
    /// `removed` changes.
    pub removed: u64,
    /// `modified` changes.
    pub modified: u64,
    /// `tags` changes.
    pub tags: u64,
    /// `art` changes.
    pub art: u64,
    /// `moved` changes.
    pub moved: u64,
    /// `type` changes.
    #[serde(rename = "type")]
    pub kind: u64,
}

impl Counts {
    /// Counts `changes` by class.
    pub fn of(changes: &[Change]) -> Self {
        let mut c = Counts::default();
        for change in changes {
            *c.get_mut(change.kind) += 1;
        }
        c
    }

    fn get_mut(&mut self, kind: ChangeKind) -> &mut u64 {
        match kind {
            ChangeKind::Added => &mut self.added,
            ChangeKind::Removed => &mut self.removed,
            ChangeKind::Modified => &mut self.modified,
            ChangeKind::Tags => &mut self.tags,
            ChangeKind::Art => &mut self.art,
            ChangeKind::Moved => &mut self.moved,
            ChangeKind::Type => &mut self.kind,
        }
    }

    /// The count of one class.
    pub fn get(&self, kind: ChangeKind) -> u64 {
        let mut copy = *self;
        *copy.get_mut(kind)
    }

    /// All changes.
    pub fn total(&self) -> u64 {
        ChangeKind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// The changes from tree `old` (A) to tree `new` (B), sorted by directory, then name.
pub fn diff_trees(repo: &Repository, old: TreeId, new: TreeId) -> Result<Vec<Change>> {
    let mut walk = Walk {
        repo,
        changes: Vec::new(),
        new_only: Vec::new(),
        old_only: Vec::new(),
    };
    walk.compare(new, old, &[])?;
    walk.pair_moves()?;
    let mut changes = walk.changes;
    changes.sort_by(|a, b| a.dir_and_name().cmp(&b.dir_and_name()));
    Ok(changes)
}

/// Which side of the comparison an entry is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Only {
    New,
    Old,
}

struct Walk<'r> {
    repo: &'r Repository,
    changes: Vec<Change>,
    /// Regular files in B only, with their content, in walk order.
    new_only: Vec<(Vec<u8>, ContentId)>,
    /// Regular files in A only.
    old_only: Vec<(Vec<u8>, ContentId)>,
}

impl Walk<'_> {
    fn compare(&mut self, new: TreeId, old: TreeId, prefix: &[u8]) -> Result<()> {
        if new == old {
            return Ok(());
        }
        let a = self.repo.tree(&new)?;
        let b = self.repo.tree(&old)?;
        let (mut i, mut j) = (0, 0);
        loop {
            match (a.entries.get(i), b.entries.get(j)) {
                (None, None) => break,
                (Some(x), Some(y)) if x.name == y.name => {
                    i += 1;
                    j += 1;
                    self.both(&crate::relpath::join(prefix, &x.name), &x.node, &y.node)?;
                }
                (Some(x), y) if y.is_none_or(|y| x.name < y.name) => {
                    i += 1;
                    self.one_side(crate::relpath::join(prefix, &x.name), &x.node, Only::New)?;
                }
                (_, Some(y)) => {
                    j += 1;
                    self.one_side(crate::relpath::join(prefix, &y.name), &y.node, Only::Old)?;
                }
                (Some(_), None) => break,
            }
        }
        Ok(())
    }

    /// An entry present on one side only: its files become move candidates, its symlinks and
    /// empty directories are reported at once.
    fn one_side(&mut self, path: Vec<u8>, node: &Node, side: Only) -> Result<()> {
        let kind = match side {
            Only::New => ChangeKind::Added,
            Only::Old => ChangeKind::Removed,
        };
        match node {
            Node::File { content, .. } => match side {
                Only::New => self.new_only.push((path, *content)),
                Only::Old => self.old_only.push((path, *content)),
            },
            Node::Symlink { .. } => self.changes.push(Change::new(kind, path)),
            Node::Dir { tree, .. } => {
                let tree = self.repo.tree(tree)?;
                if tree.entries.is_empty() {
                    let mut dir = path.clone();
                    dir.push(b'/');
                    self.changes.push(Change::new(kind, dir));
                }
                for entry in tree.entries {
                    self.one_side(crate::relpath::join(&path, &entry.name), &entry.node, side)?;
                }
            }
        }
        Ok(())
    }

    /// An entry present on both sides.
    fn both(&mut self, path: &[u8], new: &Node, old: &Node) -> Result<()> {
        match (new, old) {
            (Node::File { content: a, .. }, Node::File { content: b, .. }) => {
                if a != b {
                    let change = self.same_path(path.to_vec(), *a, *b)?;
                    self.changes.push(change);
                }
            }
            (Node::Dir { tree: a, .. }, Node::Dir { tree: b, .. }) => {
                self.compare(*a, *b, path)?;
            }
            (Node::Symlink { target: a }, Node::Symlink { target: b }) => {
                if a != b {
                    self.changes
                        .push(Change::new(ChangeKind::Modified, path.to_vec()));
                }
            }
            _ => {
                let mut change = Change::new(ChangeKind::Type, path.to_vec());
                change.kinds = Some((EntryKind::of(old), EntryKind::of(new)));
                change.new_content = file_content(new);
                change.old_content = file_content(old);
                self.changes.push(change);
            }
        }
        Ok(())
    }

    /// Classifies a regular file whose content changed in place.
    fn same_path(&self, path: Vec<u8>, new: ContentId, old: ContentId) -> Result<Change> {
        let a = self.repo.media(&new)?.unwrap_or_default();
        let b = self.repo.media(&old)?.unwrap_or_default();
        let mut change = Change::new(ChangeKind::Modified, path);
        change.new_content = Some(new);
        change.old_content = Some(old);
        if !same_audio(&a, &b) {
            return Ok(change);
        }
        let fields = diff_tags(&tags_of(&b), &tags_of(&a));
        if fields.is_empty()
            && pictures(&self.repo.content(&new)?) != pictures(&self.repo.content(&old)?)
        {
            change.kind = ChangeKind::Art;
        } else {
            change.kind = ChangeKind::Tags;
            change.fields = Some(fields);
        }
        Ok(change)
    }

    /// Pairs files found in B only with files found in A only: equal content first, then
    /// equal audio hash; each A file explains at most one B file. What is left is added or
    /// removed.
    fn pair_moves(&mut self) -> Result<()> {
        let new_only = std::mem::take(&mut self.new_only);
        let old_only = std::mem::take(&mut self.old_only);
        let mut used = vec![false; old_only.len()];
        let mut by_content: HashMap<ContentId, Vec<usize>> = HashMap::new();
        for (k, (_, content)) in old_only.iter().enumerate() {
            by_content.entry(*content).or_default().push(k);
        }
        let mut unmatched = Vec::new();
        for (path, content) in new_only {
            let found = by_content
                .get(&content)
                .and_then(|c| pick(&path, c, &old_only, &used));
            match found {
                Some(k) => {
                    used[k] = true;
                    let mut change = Change::new(ChangeKind::Moved, path);
                    change.from = Some(old_only[k].0.clone());
                    change.new_content = Some(content);
                    change.old_content = Some(content);
                    self.changes.push(change);
                }
                None => unmatched.push((path, content)),
            }
        }
        // Audio hashes are looked up only for what equal content did not explain.
        let mut by_audio: HashMap<AudioHash, Vec<usize>> = HashMap::new();
        let mut old_media: HashMap<usize, MediaRecord> = HashMap::new();
        if !unmatched.is_empty() {
            for (k, (_, content)) in old_only.iter().enumerate() {
                if used[k] {
                    continue;
                }
                let media = self.repo.media(content)?.unwrap_or_default();
                if let Some(hash) = media.audio_hash {
                    by_audio.entry(hash).or_default().push(k);
                    old_media.insert(k, media);
                }
            }
        }
        for (path, content) in unmatched {
            let media = if by_audio.is_empty() {
                MediaRecord::default()
            } else {
                self.repo.media(&content)?.unwrap_or_default()
            };
            let found = media
                .audio_hash
                .and_then(|h| by_audio.get(&h))
                .and_then(|c| pick(&path, c, &old_only, &used));
            let mut change = match found {
                Some(k) => {
                    used[k] = true;
                    let before = old_media.get(&k).map(tags_of).unwrap_or_default();
                    let mut change = Change::new(ChangeKind::Moved, path);
                    change.from = Some(old_only[k].0.clone());
                    change.fields = Some(diff_tags(&before, &tags_of(&media)));
                    change.old_content = Some(old_only[k].1);
                    change
                }
                None => Change::new(ChangeKind::Added, path),
            };
            change.new_content = Some(content);
            self.changes.push(change);
        }
        for (k, (path, content)) in old_only.into_iter().enumerate() {
            if !used[k] {
                let mut change = Change::new(ChangeKind::Removed, path);
                change.old_content = Some(content);
                self.changes.push(change);
            }
        }
        Ok(())
    }
}

/// Among the unused candidates, the one with the same file name as `path`, else the first.
fn pick(
    path: &[u8],
    candidates: &[usize],
    old: &[(Vec<u8>, ContentId)],
    used: &[bool],
) -> Option<usize> {
    let name = split_dir(path).1;
    let free = || candidates.iter().copied().filter(|&k| !used[k]);
    free()
        .find(|&k| split_dir(&old[k].0).1 == name)
        .or_else(|| free().next())
}

fn same_audio(a: &MediaRecord, b: &MediaRecord) -> bool {
    matches!((a.audio_hash, b.audio_hash), (Some(x), Some(y)) if x == y)
}

fn tags_of(media: &MediaRecord) -> Tags {
    media
        .info
        .as_ref()
        .map(|i| i.tags.clone())
        .unwrap_or_default()
}

/// The chunk ids of each embedded picture, in file order.
fn pictures(list: &ChunkList) -> Vec<Vec<ChunkId>> {
    list.regions
        .iter()
        .filter(|r| r.kind == RegionKind::Picture)
        .map(|r| {
            let end = r.offset.saturating_add(r.len);
            list.with_offsets()
                .filter(|(offset, _)| *offset >= r.offset && *offset < end)
                .map(|(_, c)| c.id)
                .collect()
        })
        .collect()
}

fn file_content(node: &Node) -> Option<ContentId> {
    match node {
        Node::File { content, .. } => Some(*content),
        _ => None,
    }
}

/// The bytes of new data in B: the chunks of the files B added, changed or moved in (the
/// files `musicfs sync B A` would write, without `--delete`) that A lacks, each counted once.
///
/// With `located` (A's origin, whose recorded chunk locations describe A: A was just
/// scanned, or is its origin's latest snapshot) this is exactly `sync::plan::cost`, the
/// figure `musicfs sync B A` reports. Without it (A is an older snapshot), a chunk counts as
/// present when a file of A that this diff lists as changed, removed or moved away holds it;
/// chunks A shares only with its unchanged files are counted too, so the figure is an upper
/// bound.
pub fn bytes_to_transfer(
    repo: &Repository,
    old: TreeId,
    new: TreeId,
    located: Option<OriginId>,
    changes: &[Change],
) -> Result<u64> {
    bytes_to_transfer_within(repo, old, new, located, changes, &Filter::none())
}

/// [`bytes_to_transfer`] for the files of B that `filter` includes (a snapshot recorded
/// without the filter may hold files a sync with it would leave out).
pub fn bytes_to_transfer_within(
    repo: &Repository,
    old: TreeId,
    new: TreeId,
    located: Option<OriginId>,
    changes: &[Change],
    filter: &Filter,
) -> Result<u64> {
    if new == old {
        return Ok(0);
    }
    let mut steps = plan::plan(
        repo,
        new,
        Some(old),
        &PlanOptions {
            delete: false,
            unreadable: &[],
            excluded: &[],
            mtime_resolution: crate::origin::MtimeResolution::Nanosecond,
        },
    )?;
    steps.files.retain(|step| match step {
        Step::Write { path, .. } => !filter.excludes_path(path, false),
        _ => true,
    });
    if let Some(origin) = located {
        return Ok(plan::cost(repo, &steps, origin)?.bytes_transferred);
    }
    let mut held: HashSet<ChunkId> = HashSet::new();
    for content in changes.iter().filter_map(|c| c.old_content) {
        held.extend(repo.content(&content)?.chunks.iter().map(|c| c.id));
    }
    let mut bytes = 0;
    for step in &steps.files {
        if let Step::Write { content, .. } = step {
            for chunk in repo.content(content)?.chunks {
                if held.insert(chunk.id) {
                    bytes += u64::from(chunk.len);
                }
            }
        }
    }
    Ok(bytes)
}

/// Drops the changes at paths `filter` leaves out: an operand that is a snapshot recorded
/// without the filter (or with another) is compared as the filter would have recorded it. An
/// origin operand is scanned through the filter already.
pub fn retain_included(changes: &mut Vec<Change>, filter: &Filter) {
    if filter.is_empty() {
        return;
    }
    changes.retain(|change| {
        let is_dir = change.path.ends_with(b"/");
        let either_dir = change
            .kinds
            .is_some_and(|(a, b)| a == EntryKind::Directory || b == EntryKind::Directory);
        !(filter.excludes_path(&change.path, is_dir)
            || either_dir && filter.excludes_path(&change.path, true))
    });
}

#[cfg(test)]
mod tests;
