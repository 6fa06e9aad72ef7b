//! Proving files against their snapshot, by content.
//!
//! `verify` re-hashes the repository's stored objects (chunk lists and trees) and re-reads every
//! file of a target, chunk by chunk, comparing the result with what the target's last snapshot
//! recorded. Size and mtime prove nothing here: a flipped bit behind a restored mtime is found.

use rayon::prelude::*;
use serde::Serialize;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::id::ContentId;
use crate::origin::{LocalOrigin, Origin};
use crate::repo::Repository;
use crate::report::{display_path, Event, Sink};
use crate::scan::read_file;
use crate::snapshot::Node;

/// What verification found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifySummary {
    /// Repository objects re-hashed.
    pub objects_checked: u64,
    /// Files re-read.
    pub files_checked: u64,
    /// Bytes re-read.
    pub bytes_checked: u64,
    /// Files or objects that do not match.
    pub damaged: u64,
}

/// Verifies the repository's objects and, for each target, every file against its last snapshot.
pub fn verify(
    repo: &Repository,
    targets: &[LocalOrigin],
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<VerifySummary> {
    let mut summary = VerifySummary::default();
    let (checked, damaged) = repo.check_objects()?;
    crate::interrupt::check()?;
    summary.objects_checked = checked;
    for what in damaged {
        summary.damaged += 1;
        sink.event(&Event::Damaged {
            path: repo.root().display().to_string(),
            reason: format!("{what} does not match its hash"),
        });
    }
    for target in targets {
        let Some((_, snapshot)) = repo.latest_snapshot(target.url())? else {
            return Err(Error::InvalidInput(format!(
                "{}: no snapshot to verify against (run `musicfs scan` or sync into it first)",
                target.url()
            )));
        };
        sink.phase("verifying", snapshot.files, snapshot.bytes);
        // Every file of the snapshot, in tree order, then re-read on all cores.
        let mut files = Vec::new();
        let mut stack = vec![(Vec::new(), snapshot.root)];
        while let Some((prefix, tree_id)) = stack.pop() {
            for entry in repo.tree(&tree_id)?.entries {
                let path = if prefix.is_empty() {
                    entry.name.clone()
                } else {
                    [prefix.as_slice(), b"/", &entry.name].concat()
                };
                match entry.node {
                    Node::Dir { tree, .. } => stack.push((path, tree)),
                    Node::Symlink { .. } => {}
                    Node::File { size, content, .. } => files.push((path, size, content)),
                }
            }
        }
        let checked: Vec<(u64, Option<String>)> = files
            .par_iter()
            .map(|(path, size, content)| {
                // Once asked to stop, the files left are skipped; nothing is reported.
                if crate::interrupt::cause().is_some() {
                    return (0, None);
                }
                let result = check_file(target, path, *size, content, chunker);
                sink.advance(*size);
                result
            })
            .collect();
        crate::interrupt::check()?;
        for ((path, _, _), (bytes, reason)) in files.iter().zip(checked) {
            summary.files_checked += 1;
            summary.bytes_checked += bytes;
            if let Some(reason) = reason {
                summary.damaged += 1;
                sink.event(&Event::Damaged {
                    path: display_path(path),
                    reason,
                });
            }
        }
    }
    Ok(summary)
}

/// Re-reads one file: the bytes read, and why it does not match its snapshot, if it does not.
fn check_file(
    target: &LocalOrigin,
    path: &[u8],
    size: u64,
    content: &ContentId,
    chunker: &dyn Chunker,
) -> (u64, Option<String>) {
    match read_file(target, path, chunker, false) {
        Ok(read) => {
            let list = read.list;
            let reason = if list.content_id() == *content {
                None
            } else if list.size() != size {
                Some(format!(
                    "size {} differs from the snapshot's {size}",
                    list.size()
                ))
            } else {
                Some("content differs from the snapshot".to_string())
            };
            (list.size(), reason)
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            (0, Some("missing".to_string()))
        }
        Err(e) => (0, Some(format!("unreadable: {e}"))),
    }
}
