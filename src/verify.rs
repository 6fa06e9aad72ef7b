//! Proving files against their snapshot, by content.
//!
//! `verify` re-hashes the repository's stored objects (chunk lists and trees) and re-reads every
//! file of a target, chunk by chunk, comparing the result with what the target's last snapshot
//! recorded. Size and mtime prove nothing here: a flipped bit behind a restored mtime is found.

use serde::Serialize;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::origin::LocalOrigin;
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
        let mut stack = vec![(Vec::new(), snapshot.root)];
        while let Some((prefix, tree_id)) = stack.pop() {
            let tree = repo.tree(&tree_id)?;
            for entry in tree.entries {
                let path = if prefix.is_empty() {
                    entry.name.clone()
                } else {
                    [prefix.as_slice(), b"/", &entry.name].concat()
                };
                match entry.node {
                    Node::Dir { tree, .. } => stack.push((path, tree)),
                    Node::Symlink { .. } => {}
                    Node::File { size, content, .. } => {
                        summary.files_checked += 1;
                        sink.advance(size);
                        let reason = match read_file(target, &path, chunker, false) {
                            Ok(read) => {
                                let list = read.list;
                                summary.bytes_checked += list.size();
                                if list.content_id() == content {
                                    None
                                } else if list.size() != size {
                                    Some(format!(
                                        "size {} differs from the snapshot's {size}",
                                        list.size()
                                    ))
                                } else {
                                    Some("content differs from the snapshot".to_string())
                                }
                            }
                            Err(Error::Io { source, .. })
                                if source.kind() == std::io::ErrorKind::NotFound =>
                            {
                                Some("missing".to_string())
                            }
                            Err(e) => Some(format!("unreadable: {e}")),
                        };
                        if let Some(reason) = reason {
                            summary.damaged += 1;
                            sink.event(&Event::Damaged {
                                path: display_path(&path),
                                reason,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(summary)
}
