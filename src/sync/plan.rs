//! What a sync must do: the difference between two snapshot trees, as a list of steps.
//!
//! Trees are compared top-down by hash, so an unchanged subtree costs one comparison however
//! large it is. Planning reads only the repository, never the origins.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::Result;
use crate::id::{ChunkId, ContentId, TreeId};
use crate::origin::MtimeResolution;
use crate::repo::{OriginId, Repository, Trees};
use crate::snapshot::{Node, Tree};

/// One step of a sync, on a path relative to the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Remove whatever is at the path (a file, a symlink or a whole directory).
    Remove {
        /// Destination path.
        path: Vec<u8>,
        /// Files and symlinks at or below the path.
        files: u64,
    },
    /// Create a directory.
    CreateDir(Vec<u8>),
    /// Write a file's content under a temporary name and rename it into place.
    Write {
        /// Destination path.
        path: Vec<u8>,
        /// Content to assemble.
        content: ContentId,
        /// Its size in bytes.
        size: u64,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime_ns: i64,
    },
    /// Set mode and mtime of a file whose content is already right.
    SetMeta {
        /// Destination path.
        path: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime_ns: i64,
    },
    /// Move a destination file that is about to be deleted to where the source now has the
    /// same content, then give it its mode and mtime: a moved file costs a rename.
    Rename {
        /// The file's current destination path (one of the deletions).
        from: Vec<u8>,
        /// Destination path.
        to: Vec<u8>,
        /// The content both paths hold.
        content: ContentId,
        /// Permission bits.
        mode: u32,
        /// Modification time.
        mtime_ns: i64,
    },
    /// Create or replace a symlink.
    Symlink {
        /// Destination path.
        path: Vec<u8>,
        /// Its target.
        target: Vec<u8>,
    },
}

/// The steps of a sync, in the order they must run.
///
/// Space is freed before it is used, as `rsync --delete-during` does: deletions that hold
/// nothing the new files are built from run first, and replacements by smaller files come
/// before the other writes, so that a sync into a nearly full destination can finish once the
/// source has been trimmed to fit.
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// Entries absent from the source whose files hold no chunk a write needs and are not
    /// the source of a rename (only with `--delete`): run first.
    pub early_deletions: Vec<Step>,
    /// Replacements of one kind of entry by another.
    pub removals_first: Vec<Step>,
    /// Directories to create, parents before children.
    pub directories: Vec<Step>,
    /// Files and symlinks; writes that replace a larger file come first.
    pub files: Vec<Step>,
    /// How many of the first `files` replace a larger file: the space they free is there
    /// only once they are in place, so they are done before the writes after them begin.
    pub shrinking_first: usize,
    /// Entries absent from the source (only with `--delete`) that hold chunks the new files
    /// are built from, or files to be renamed: run after the files.
    pub deletions: Vec<Step>,
    /// Directory modes and mtimes, children before parents: run last.
    pub directory_meta: Vec<Step>,
    /// Destination directories the source replaced by a file or symlink, left as they are
    /// because they hold entries the destination's filter excluded.
    pub kept_for_excluded: Vec<Vec<u8>>,
    /// Regular files among the deletions, by content, while planning.
    deleted_files: HashMap<ContentId, Vec<Vec<u8>>>,
    /// The contents of the regular files below each deletion, in `deletions` order.
    deletion_contents: Vec<Vec<ContentId>>,
    /// Writes that replace a larger destination file, while planning.
    shrinking: Vec<Step>,
    /// Files the destination already holds as the source has them, though its tree does not
    /// show them (a cold initial sync's copies, [`plan_around`]): they have no step.
    pub in_place: u64,
    /// Their bytes.
    pub in_place_bytes: u64,
}

impl SyncPlan {
    /// Every step, in the order the steps run.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.early_deletions
            .iter()
            .chain(&self.removals_first)
            .chain(&self.directories)
            .chain(&self.files)
            .chain(&self.deletions)
            .chain(&self.directory_meta)
    }

    /// Files and symlinks the deletions remove (`--max-delete` counts these).
    pub fn files_deleted(&self) -> u64 {
        self.early_deletions
            .iter()
            .chain(&self.deletions)
            .map(|step| match step {
                Step::Remove { files, .. } => *files,
                _ => 0,
            })
            .sum()
    }
}

/// Planning inputs beyond the two trees.
pub struct PlanOptions<'a> {
    /// Remove destination entries absent from the source.
    pub delete: bool,
    /// Source paths that could not be read: their destination entries are left alone.
    pub unreadable: &'a [Vec<u8>],
    /// Destination paths its filter excluded (absent from its tree): never deleted, so a
    /// directory to be deleted that holds one loses only its other entries, and one to be
    /// replaced by a file or symlink is left as it is.
    pub excluded: &'a [Vec<u8>],
    /// How finely the destination keeps mtimes: a destination mtime equal to the source's at
    /// this resolution is right (an SFTP server keeps whole seconds, and setting the
    /// nanoseconds again would change nothing).
    pub mtime_resolution: MtimeResolution,
}

/// What the destination repository knows: used to count bytes.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PlanCost {
    /// Bytes of chunks that must be read from the source.
    pub bytes_transferred: u64,
    /// Number of such chunks.
    pub chunks_transferred: u64,
}

/// Compares the source tree with the destination tree.
pub fn plan(
    repo: &Repository,
    source: TreeId,
    destination: Option<TreeId>,
    options: &PlanOptions<'_>,
) -> Result<SyncPlan> {
    plan_around(repo, source, destination, options, &|_| false)
}

/// A source file as a write step would give it to the destination: `in_place` in
/// [`plan_around`] is asked about each.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    /// Destination path.
    pub path: &'a [u8],
    /// Its content.
    pub content: &'a ContentId,
    /// Permission bits.
    pub mode: u32,
    /// Modification time.
    pub mtime_ns: i64,
}

/// [`plan`], for a destination that already holds some source files as the source has them
/// though its tree does not show them yet (a cold initial sync's copies): a file the
/// destination's tree lacks gets no write step when `in_place` says so, only a count in
/// [`SyncPlan::in_place`]. A plan per file of a large library is most of its memory, and the
/// caller notes those files from the source's tree instead.
pub fn plan_around(
    repo: &Repository,
    source: TreeId,
    destination: Option<TreeId>,
    options: &PlanOptions<'_>,
    in_place: &dyn Fn(Wanted<'_>) -> bool,
) -> Result<SyncPlan> {
    let mut out = SyncPlan::default();
    // One read transaction for every tree: beginning one takes the index's header lock,
    // which waits for any commit under way.
    let trees = repo.trees()?;
    compare(
        &trees,
        Some(source),
        destination,
        &[],
        options,
        in_place,
        &mut out,
    )?;
    out.directory_meta.reverse();
    let shrinking = std::mem::take(&mut out.shrinking);
    out.shrinking_first = shrinking.len();
    out.files.splice(0..0, shrinking);
    pair_moves(&mut out);
    Ok(out)
}

/// Moves to `early_deletions` every deletion whose files no rename takes and that holds no
/// chunk a write needs and no file of `destination` that stays (neither deleted nor replaced)
/// also holds: removing them first loses nothing the sync could build from.
pub fn free_space_first(
    repo: &Repository,
    plan: &mut SyncPlan,
    destination: OriginId,
) -> Result<()> {
    let contents = std::mem::take(&mut plan.deletion_contents);
    if plan.deletions.is_empty() {
        return Ok(());
    }
    let lists = repo.contents()?;
    let mut replaced = HashSet::new();
    for step in &plan.files {
        if let Step::Write { path, .. } = step {
            replaced.insert(path.clone());
        }
    }
    let deleted: Vec<Vec<u8>> = plan
        .deletions
        .iter()
        .filter_map(|s| match s {
            Step::Remove { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    let stays = |path: &[u8]| {
        !replaced.contains(path) && !deleted.iter().any(|d| d == path || is_below(path, d))
    };
    // Whether a chunk can still be read from a destination file that stays, by chunk.
    let mut elsewhere: HashMap<ChunkId, bool> = HashMap::new();
    let mut renamed = HashSet::new();
    let mut needed = HashSet::new();
    for step in &plan.files {
        match step {
            Step::Rename { from, .. } => {
                renamed.insert(from.as_slice());
            }
            Step::Write { content, .. } => {
                needed.extend(lists.get(content)?.chunks.iter().map(|c| c.id));
            }
            _ => {}
        }
    }
    let mut late = Vec::new();
    let mut early = Vec::new();
    for (step, below) in std::mem::take(&mut plan.deletions)
        .into_iter()
        .zip(contents)
    {
        let Step::Remove { path, .. } = &step else {
            late.push(step);
            continue;
        };
        let mut keep = renamed
            .iter()
            .any(|from| *from == path.as_slice() || is_below(from, path));
        for content in &below {
            if keep {
                break;
            }
            for chunk in lists.get(content)?.chunks {
                if !needed.contains(&chunk.id) {
                    continue;
                }
                let held = match elsewhere.get(&chunk.id) {
                    Some(&held) => held,
                    None => {
                        let held = repo
                            .chunk_locations(&chunk.id, destination)?
                            .iter()
                            .any(|loc| stays(&loc.path));
                        elsewhere.insert(chunk.id, held);
                        held
                    }
                };
                if !held {
                    keep = true;
                    break;
                }
            }
        }
        if keep {
            late.push(step);
        } else {
            early.push(step);
        }
    }
    plan.deletions = late;
    plan.early_deletions = early;
    Ok(())
}

/// Whether `path` lies inside the directory `dir`.
fn is_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// Turns writes of content that a deleted destination file already holds into renames of
/// that file, each deleted file used once.
fn pair_moves(plan: &mut SyncPlan) {
    let mut deleted = std::mem::take(&mut plan.deleted_files);
    if deleted.is_empty() {
        return;
    }
    for step in &mut plan.files {
        if let Step::Write {
            path,
            content,
            mode,
            mtime_ns,
            ..
        } = step
        {
            if let Some(from) = deleted.get_mut(content).and_then(Vec::pop) {
                *step = Step::Rename {
                    from,
                    to: std::mem::take(path),
                    content: *content,
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                };
            }
        }
    }
}

/// Plans the removal of a destination entry absent from the source, remembering the files
/// it holds by content so that moves can become renames.
fn remove(trees: &Trees<'_>, path: Vec<u8>, node: &Node, out: &mut SyncPlan) -> Result<()> {
    let mut found = HashMap::new();
    let files = collect_files(trees, &path, node, &mut found)?;
    out.deletion_contents.push(found.keys().copied().collect());
    for (content, paths) in found {
        out.deleted_files.entry(content).or_default().extend(paths);
    }
    out.deletions.push(Step::Remove { path, files });
    Ok(())
}

/// Counts the files and symlinks at or below `path`, adding each regular file to `found`.
fn collect_files(
    trees: &Trees<'_>,
    path: &[u8],
    node: &Node,
    found: &mut HashMap<ContentId, Vec<Vec<u8>>>,
) -> Result<u64> {
    match node {
        Node::File { content, .. } => {
            found.entry(*content).or_default().push(path.to_vec());
            Ok(1)
        }
        Node::Symlink { .. } => Ok(1),
        Node::Dir { tree, .. } => {
            let mut n = 0;
            for entry in trees.get(tree)?.entries {
                n += collect_files(
                    trees,
                    &crate::relpath::join(path, &entry.name),
                    &entry.node,
                    found,
                )?;
            }
            Ok(n)
        }
    }
}

/// Counts the files and symlinks at or below a node.
fn count_files(trees: &Trees<'_>, node: &Node) -> Result<u64> {
    match node {
        Node::File { .. } | Node::Symlink { .. } => Ok(1),
        Node::Dir { tree, .. } => {
            let mut n = 0;
            for entry in trees.get(tree)?.entries {
                n += count_files(trees, &entry.node)?;
            }
            Ok(n)
        }
    }
}

/// Whether a destination entry must be left alone because the source could not read it, or
/// something below it (the source's root, when it could not be listed, protects everything).
fn protected(path: &[u8], unreadable: &[Vec<u8>]) -> bool {
    unreadable
        .iter()
        .any(|u| path == u.as_slice() || is_below(path, u) || is_below(u, path))
}

/// Whether the destination directory `path` holds an entry its filter excluded.
fn holds_excluded(path: &[u8], options: &PlanOptions<'_>) -> bool {
    options.excluded.iter().any(|e| is_below(e, path))
}

/// Whether the source could not read this very entry: what it has of it (an empty directory,
/// its mode) is not the truth, so the destination's copy is neither created nor changed.
fn unreadable(path: &[u8], options: &PlanOptions<'_>) -> bool {
    options.unreadable.iter().any(|u| u.as_slice() == path)
}

/// Returns whether anything below `prefix` changes.
fn compare(
    trees: &Trees<'_>,
    source: Option<TreeId>,
    destination: Option<TreeId>,
    prefix: &[u8],
    options: &PlanOptions<'_>,
    in_place: &dyn Fn(Wanted<'_>) -> bool,
    out: &mut SyncPlan,
) -> Result<bool> {
    if source == destination {
        return Ok(false);
    }
    let src = match source {
        Some(id) => trees.get(&id)?,
        None => Tree::default(),
    };
    let dst = match destination {
        Some(id) => trees.get(&id)?,
        None => Tree::default(),
    };
    let mut changed = false;
    let (mut i, mut j) = (0, 0);
    while i < src.entries.len() || j < dst.entries.len() {
        let s = src.entries.get(i);
        let d = dst.entries.get(j);
        let order = match (s, d) {
            (Some(s), Some(d)) => s.name.cmp(&d.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match (order, s, d) {
            (std::cmp::Ordering::Less, Some(s), _) => {
                i += 1;
                let path = crate::relpath::join(prefix, &s.name);
                if !unreadable(&path, options) {
                    changed = true;
                    add(trees, &path, &s.node, options, in_place, out)?;
                }
            }
            (std::cmp::Ordering::Greater, _, Some(d)) => {
                j += 1;
                let path = crate::relpath::join(prefix, &d.name);
                if options.delete && !protected(&path, options.unreadable) {
                    changed = true;
                    match &d.node {
                        // Empty it, keeping what the filter excluded (and so the directory).
                        Node::Dir { tree, .. } if holds_excluded(&path, options) => {
                            compare(trees, None, Some(*tree), &path, options, in_place, out)?;
                        }
                        _ => remove(trees, path, &d.node, out)?,
                    }
                }
            }
            (_, Some(s), Some(d)) => {
                i += 1;
                j += 1;
                let path = crate::relpath::join(prefix, &s.name);
                if !unreadable(&path, options) {
                    changed |= update(trees, &path, &s.node, &d.node, options, in_place, out)?;
                }
            }
            _ => break,
        }
    }
    Ok(changed)
}

fn add(
    trees: &Trees<'_>,
    path: &[u8],
    node: &Node,
    options: &PlanOptions<'_>,
    in_place: &dyn Fn(Wanted<'_>) -> bool,
    out: &mut SyncPlan,
) -> Result<()> {
    match node {
        Node::File {
            size,
            mtime_ns,
            mode,
            content,
        } if in_place(Wanted {
            path,
            content,
            mode: *mode,
            mtime_ns: *mtime_ns,
        }) =>
        {
            out.in_place += 1;
            out.in_place_bytes += size;
        }
        Node::File {
            size,
            mtime_ns,
            mode,
            content,
        } => out.files.push(Step::Write {
            path: path.to_vec(),
            content: *content,
            size: *size,
            mode: *mode,
            mtime_ns: *mtime_ns,
        }),
        Node::Symlink { target } => out.files.push(Step::Symlink {
            path: path.to_vec(),
            target: target.clone(),
        }),
        Node::Dir {
            mtime_ns,
            mode,
            tree,
        } => {
            out.directories.push(Step::CreateDir(path.to_vec()));
            compare(trees, Some(*tree), None, path, options, in_place, out)?;
            out.directory_meta.push(Step::SetMeta {
                path: path.to_vec(),
                mode: *mode,
                mtime_ns: *mtime_ns,
            });
        }
    }
    Ok(())
}

fn update(
    trees: &Trees<'_>,
    path: &[u8],
    src: &Node,
    dst: &Node,
    options: &PlanOptions<'_>,
    in_place: &dyn Fn(Wanted<'_>) -> bool,
    out: &mut SyncPlan,
) -> Result<bool> {
    match (src, dst) {
        (
            Node::File {
                size,
                mtime_ns,
                mode,
                content,
            },
            Node::File {
                size: d_size,
                mtime_ns: d_mtime,
                mode: d_mode,
                content: d_content,
            },
        ) => {
            if content != d_content {
                let write = Step::Write {
                    path: path.to_vec(),
                    content: *content,
                    size: *size,
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                };
                if d_size > size {
                    out.shrinking.push(write);
                } else {
                    out.files.push(write);
                }
            } else if mode != d_mode || !options.mtime_resolution.same(*mtime_ns, *d_mtime) {
                out.files.push(Step::SetMeta {
                    path: path.to_vec(),
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                });
            } else {
                return Ok(false);
            }
            Ok(true)
        }
        (
            Node::Dir {
                mtime_ns,
                mode,
                tree,
            },
            Node::Dir {
                mtime_ns: d_mtime,
                mode: d_mode,
                tree: d_tree,
            },
        ) => {
            let below = compare(
                trees,
                Some(*tree),
                Some(*d_tree),
                path,
                options,
                in_place,
                out,
            )?;
            if below || mode != d_mode || !options.mtime_resolution.same(*mtime_ns, *d_mtime) {
                out.directory_meta.push(Step::SetMeta {
                    path: path.to_vec(),
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                });
                return Ok(true);
            }
            Ok(false)
        }
        (Node::Symlink { target }, Node::Symlink { target: d_target }) => {
            if target == d_target {
                return Ok(false);
            }
            out.files.push(Step::Symlink {
                path: path.to_vec(),
                target: target.clone(),
            });
            Ok(true)
        }
        (_, Node::Dir { .. }) if holds_excluded(path, options) => {
            out.kept_for_excluded.push(path.to_vec());
            Ok(false)
        }
        _ => {
            out.removals_first.push(Step::Remove {
                path: path.to_vec(),
                files: count_files(trees, dst)?,
            });
            add(trees, path, src, options, in_place, out)?;
            Ok(true)
        }
    }
}

/// Counts the chunks the plan's writes need that the destination lacks, each once.
pub fn cost(repo: &Repository, plan: &SyncPlan, destination: OriginId) -> Result<PlanCost> {
    let mut cost = PlanCost::default();
    let mut received = HashSet::new();
    let lists = repo.contents()?;
    for step in &plan.files {
        if let Step::Write { content, .. } = step {
            for chunk in lists.get(content)?.chunks {
                if received.contains(&chunk.id) {
                    continue;
                }
                received.insert(chunk.id);
                if repo.chunk_locations(&chunk.id, destination)?.is_empty() {
                    cost.bytes_transferred += u64::from(chunk.len);
                    cost.chunks_transferred += 1;
                }
            }
        }
    }
    Ok(cost)
}
