//! What a sync must do: the difference between two snapshot trees, as a list of steps.
//!
//! Trees are compared top-down by hash, so an unchanged subtree costs one comparison however
//! large it is. Planning reads only the repository, never the origins.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::error::Result;
use crate::id::{ContentId, TreeId};
use crate::repo::{OriginId, Repository};
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
#[derive(Debug, Default)]
pub struct SyncPlan {
    /// Replacements of one kind of entry by another: run first.
    pub removals_first: Vec<Step>,
    /// Directories to create, parents before children.
    pub directories: Vec<Step>,
    /// Files and symlinks.
    pub files: Vec<Step>,
    /// Entries absent from the source (only with `--delete`): run after the files, since
    /// they may hold chunks the new files are built from.
    pub deletions: Vec<Step>,
    /// Directory modes and mtimes, children before parents: run last.
    pub directory_meta: Vec<Step>,
    /// Regular files among the deletions, by content, while planning.
    deleted_files: HashMap<ContentId, Vec<Vec<u8>>>,
}

/// Planning inputs beyond the two trees.
pub struct PlanOptions<'a> {
    /// Remove destination entries absent from the source.
    pub delete: bool,
    /// Source paths that could not be read: their destination entries are left alone.
    pub unreadable: &'a [Vec<u8>],
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
    let mut out = SyncPlan::default();
    compare(repo, Some(source), destination, &[], options, &mut out)?;
    out.directory_meta.reverse();
    pair_moves(&mut out);
    Ok(out)
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
fn remove(repo: &Repository, path: Vec<u8>, node: &Node, out: &mut SyncPlan) -> Result<()> {
    let files = collect_files(repo, &path, node, &mut out.deleted_files)?;
    out.deletions.push(Step::Remove { path, files });
    Ok(())
}

/// Counts the files and symlinks at or below `path`, adding each regular file to `found`.
fn collect_files(
    repo: &Repository,
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
            for entry in repo.tree(tree)?.entries {
                n += collect_files(repo, &join(path, &entry.name), &entry.node, found)?;
            }
            Ok(n)
        }
    }
}

/// Counts the files and symlinks at or below a node.
fn count_files(repo: &Repository, node: &Node) -> Result<u64> {
    match node {
        Node::File { .. } | Node::Symlink { .. } => Ok(1),
        Node::Dir { tree, .. } => {
            let mut n = 0;
            for entry in repo.tree(tree)?.entries {
                n += count_files(repo, &entry.node)?;
            }
            Ok(n)
        }
    }
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        name.to_vec()
    } else {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(name);
        p
    }
}

fn protected(path: &[u8], unreadable: &[Vec<u8>]) -> bool {
    unreadable.iter().any(|u| {
        path == u.as_slice()
            || (path.starts_with(u) && path.get(u.len()) == Some(&b'/'))
            || (u.starts_with(path) && u.get(path.len()) == Some(&b'/'))
    })
}

/// Returns whether anything below `prefix` changes.
fn compare(
    repo: &Repository,
    source: Option<TreeId>,
    destination: Option<TreeId>,
    prefix: &[u8],
    options: &PlanOptions<'_>,
    out: &mut SyncPlan,
) -> Result<bool> {
    if source == destination {
        return Ok(false);
    }
    let src = match source {
        Some(id) => repo.tree(&id)?,
        None => Tree::default(),
    };
    let dst = match destination {
        Some(id) => repo.tree(&id)?,
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
                changed = true;
                add(repo, &join(prefix, &s.name), &s.node, options, out)?;
            }
            (std::cmp::Ordering::Greater, _, Some(d)) => {
                j += 1;
                let path = join(prefix, &d.name);
                if options.delete && !protected(&path, options.unreadable) {
                    changed = true;
                    remove(repo, path, &d.node, out)?;
                }
            }
            (_, Some(s), Some(d)) => {
                i += 1;
                j += 1;
                let path = join(prefix, &s.name);
                changed |= update(repo, &path, &s.node, &d.node, options, out)?;
            }
            _ => break,
        }
    }
    Ok(changed)
}

fn add(
    repo: &Repository,
    path: &[u8],
    node: &Node,
    options: &PlanOptions<'_>,
    out: &mut SyncPlan,
) -> Result<()> {
    match node {
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
            compare(repo, Some(*tree), None, path, options, out)?;
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
    repo: &Repository,
    path: &[u8],
    src: &Node,
    dst: &Node,
    options: &PlanOptions<'_>,
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
                mtime_ns: d_mtime,
                mode: d_mode,
                content: d_content,
                ..
            },
        ) => {
            if content != d_content {
                out.files.push(Step::Write {
                    path: path.to_vec(),
                    content: *content,
                    size: *size,
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                });
            } else if mode != d_mode || mtime_ns != d_mtime {
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
            let below = compare(repo, Some(*tree), Some(*d_tree), path, options, out)?;
            if below || mode != d_mode || mtime_ns != d_mtime {
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
        _ => {
            out.removals_first.push(Step::Remove {
                path: path.to_vec(),
                files: count_files(repo, dst)?,
            });
            add(repo, path, src, options, out)?;
            Ok(true)
        }
    }
}

/// Counts the chunks the plan's writes need that the destination lacks, each once.
pub fn cost(repo: &Repository, plan: &SyncPlan, destination: OriginId) -> Result<PlanCost> {
    let mut cost = PlanCost::default();
    let mut received = HashSet::new();
    for step in &plan.files {
        if let Step::Write { content, .. } = step {
            for chunk in repo.content(content)?.chunks {
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
