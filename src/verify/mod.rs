//! Proving files against their snapshot, by content, and telling damage from edits.
//!
//! `verify` re-hashes the repository's stored objects (chunk lists and trees) and re-reads every
//! file of a target, chunk by chunk, comparing the result with what the target's last snapshot
//! recorded. Size and mtime prove nothing here: every file is read.
//!
//! A file whose content is not the snapshot's is then judged by its metadata. When its size,
//! mtime, mode and change key (`origin::ChangeKey`: ctime, inode and device on a POSIX file
//! system) are still those the last scan recorded with the content it read, the content
//! changed behind the file system's back (bit rot, a write below the file system): the file
//! is damaged. On an origin whose entries carry no change key (`ChangeKey::None`), size, mtime
//! and mode are all there is, so an edit that restored all three is reported as damage: the
//! cautious reading. When they changed, the file was edited since (a tag
//! editor, a re-encode, a restore), which is not damage; whether its audio hash is still the
//! snapshot's tells a retag from new audio. The ctime carries the distinction: every write
//! sets it and no user can set it back, so a tool that restores the mtime after an edit
//! (`touch -r`, Picard, mp3tag) still leaves an edit. A file whose content is the snapshot's
//! is fine whatever its metadata say (it was touched).
//!
//! [`verify_and_repair`] (`verify --repair-from`) then rebuilds each damaged file from good
//! chunks, never an edited or missing one (`repair.rs`).

mod repair;

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::id::{AudioHash, ContentId};
use crate::origin::{EntryStat, Origin};
use crate::repo::{Repository, ScanEntry};
use crate::report::{display_path, Event, Sink};
use crate::scan::{read_file, unchanged};
use crate::snapshot::Node;

pub use repair::{verify_and_repair, RepairFrom};

/// What verification found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifySummary {
    /// Repository objects re-hashed.
    pub objects_checked: u64,
    /// Files re-read.
    pub files_checked: u64,
    /// Bytes re-read.
    pub bytes_checked: u64,
    /// Files whose content is the snapshot's.
    pub ok: u64,
    /// Files edited since the last scan (content and metadata changed).
    pub edited: u64,
    /// Files of the snapshot not found.
    pub missing: u64,
    /// Files that could not be read.
    pub unreadable: u64,
    /// Files whose content changed behind unchanged metadata, and repository objects that do
    /// not match their id.
    pub damaged: u64,
    /// Damaged files rebuilt from good chunks (`--repair-from`); always 0 without it.
    pub repaired: u64,
    /// Damaged files a repair could not rebuild; always 0 without `--repair-from`.
    pub unrepaired: u64,
}

impl VerifySummary {
    fn count(&mut self, verdict: &Verdict) {
        *match verdict {
            Verdict::Ok => &mut self.ok,
            Verdict::Edited(_) => &mut self.edited,
            Verdict::Missing => &mut self.missing,
            Verdict::Unreadable(_) => &mut self.unreadable,
            Verdict::Damaged(_) => &mut self.damaged,
        } += 1;
    }
}

/// What verify concludes about one file of a target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The content is the snapshot's (its times or mode may have changed).
    Ok,
    /// The content and the metadata changed since the last scan: an edit, not damage.
    Edited(Audio),
    /// Not found at its path.
    Missing,
    /// Could not be read, for this reason.
    Unreadable(String),
    /// The content changed while its metadata did not, for this reason.
    Damaged(String),
}

/// How an edited file's audio compares with the snapshot's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audio {
    /// The same audio hash: only what surrounds the audio (tags, pictures, padding) changed.
    Verified,
    /// Another audio hash: new audio, such as a re-encode.
    Changed,
    /// No audio hash on one side: a file whose container is not understood (a picture, a
    /// text), or one that was not understood when it was scanned.
    Unknown,
}

impl Audio {
    /// The name in the JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Audio::Verified => "verified",
            Audio::Changed => "changed",
            Audio::Unknown => "unknown",
        }
    }

    /// What the edit was, in words.
    pub fn reason(self) -> &'static str {
        match self {
            Audio::Verified => "tags edited, audio verified",
            Audio::Changed => "audio changed",
            Audio::Unknown => "content changed, no audio to verify",
        }
    }

    fn of(now: Option<AudioHash>, snapshot: Option<AudioHash>) -> Audio {
        match (now, snapshot) {
            (Some(a), Some(b)) if a == b => Audio::Verified,
            (Some(_), Some(_)) => Audio::Changed,
            _ => Audio::Unknown,
        }
    }
}

impl Verdict {
    /// The event that reports it; none for a file that is fine.
    pub fn event(&self, path: String) -> Option<Event> {
        Some(match self {
            Verdict::Ok => return None,
            Verdict::Edited(audio) => Event::Edited {
                path,
                audio: audio.name(),
                reason: audio.reason().to_string(),
            },
            Verdict::Missing => Event::Missing { path },
            Verdict::Unreadable(reason) => Event::Unreadable {
                path,
                reason: reason.clone(),
            },
            Verdict::Damaged(reason) => Event::Damaged {
                path,
                reason: reason.clone(),
            },
        })
    }
}

/// What re-reading one file found.
#[derive(Clone, Debug)]
enum Reading {
    /// The snapshot's content.
    Same,
    /// Other content.
    Different(Found),
    /// Nothing at the path.
    Missing,
    /// An error, as text.
    Unreadable(String),
}

/// A file found with other content than its snapshot's.
#[derive(Clone, Debug)]
struct Found {
    /// The snapshot's content and size.
    expected: ContentId,
    expected_size: u64,
    /// The metadata the file had while it was read, its content and audio hash.
    stat: EntryStat,
    content: ContentId,
    audio: Option<AudioHash>,
}

/// Verifies the repository's objects and, for each target, every file against its last snapshot.
pub fn verify(
    repo: &Repository,
    targets: &[&dyn Origin],
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<VerifySummary> {
    let mut summary = VerifySummary::default();
    verify_objects(repo, sink, &mut summary)?;
    for target in targets {
        verify_target(repo, *target, chunker, sink, &mut summary)?;
    }
    Ok(summary)
}

/// Re-hashes the repository's stored objects, reporting each that does not match its id.
fn verify_objects(repo: &Repository, sink: &dyn Sink, summary: &mut VerifySummary) -> Result<()> {
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
    Ok(())
}

/// A regular file of a snapshot.
#[derive(Clone, Debug)]
struct SnapshotFile {
    path: Vec<u8>,
    size: u64,
    mtime_ns: i64,
    mode: u32,
    content: ContentId,
}

/// A file verify found damaged, with what a repair needs to rebuild it.
#[derive(Clone, Debug)]
pub(crate) struct DamagedFile {
    /// Relative path in the target.
    pub path: Vec<u8>,
    /// The content to rebuild: the one the last scan read with the metadata the file still
    /// has, else (no scan record) the snapshot's.
    pub content: ContentId,
    /// The mode and mtime the file had with that content.
    pub mode: u32,
    pub mtime_ns: i64,
    /// The file's metadata when verify read it: a repair replaces the file only while they
    /// are unchanged (an edit made since is the user's).
    pub stat: EntryStat,
}

/// Verifies every file of `target` against its last snapshot, counting and reporting each
/// verdict; returns the damaged files.
fn verify_target(
    repo: &Repository,
    target: &dyn Origin,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
    summary: &mut VerifySummary,
) -> Result<Vec<DamagedFile>> {
    let Some((_, snapshot)) = repo.latest_snapshot(target.url())? else {
        return Err(Error::InvalidInput(format!(
            "{}: no snapshot to verify against (run `musicfs scan` or sync into it first)",
            target.url()
        )));
    };
    // What the last scan saw of each file: its metadata with the content it read.
    let recorded: HashMap<Vec<u8>, ScanEntry> = match repo.find_origin(target.url())? {
        Some(origin) => repo.scan_state(origin)?.into_iter().collect(),
        None => HashMap::new(),
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
                Node::File {
                    size,
                    mtime_ns,
                    mode,
                    content,
                } => files.push(SnapshotFile {
                    path,
                    size,
                    mtime_ns,
                    mode,
                    content,
                }),
            }
        }
    }
    let checked: Vec<(u64, Reading)> = files
        .par_iter()
        .map(|file| {
            // Once asked to stop, the files left are skipped; nothing is reported.
            if crate::interrupt::cause().is_some() {
                return (0, Reading::Same);
            }
            let result = check_file(target, &file.path, file.size, &file.content, chunker);
            sink.advance(file.size);
            result
        })
        .collect();
    // Skipped files were never read: none of them is judged.
    crate::interrupt::check()?;
    let mut damaged = Vec::new();
    for (file, (bytes, reading)) in files.into_iter().zip(checked) {
        summary.files_checked += 1;
        summary.bytes_checked += bytes;
        let stat = match &reading {
            Reading::Different(found) => Some(found.stat.clone()),
            _ => None,
        };
        let entry = recorded.get(&file.path);
        let verdict = judge(reading, entry, |content| {
            Ok(repo.media(content)?.and_then(|m| m.audio_hash))
        })?;
        summary.count(&verdict);
        if let Some(event) = verdict.event(display_path(&file.path)) {
            sink.event(&event);
        }
        if let (Verdict::Damaged(_), Some(stat)) = (&verdict, stat) {
            damaged.push(DamagedFile {
                content: entry.map_or(file.content, |e| e.content),
                mode: entry.map_or(file.mode, |e| e.mode),
                mtime_ns: entry.map_or(file.mtime_ns, |e| e.mtime_ns),
                path: file.path,
                stat,
            });
        }
    }
    Ok(damaged)
}

/// Re-reads one file: the bytes read, and how its content compares with the snapshot's
/// (`content`, of `size` bytes).
fn check_file(
    target: &dyn Origin,
    path: &[u8],
    size: u64,
    content: &ContentId,
    chunker: &dyn Chunker,
) -> (u64, Reading) {
    match read_file(target, path, chunker, false) {
        Ok(read) => {
            let found = read.list.content_id();
            let reading = if found == *content {
                Reading::Same
            } else {
                Reading::Different(Found {
                    expected: *content,
                    expected_size: size,
                    stat: read.stat,
                    content: found,
                    audio: read.media.audio_hash,
                })
            };
            (read.list.size(), reading)
        }
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            (0, Reading::Missing)
        }
        Err(e) => (0, Reading::Unreadable(e.to_string())),
    }
}

/// The verdict on one file, given what the last scan recorded of it (`recorded`, absent when
/// the scan state lacks it) and a way to look up a content's audio hash.
///
/// Other content is damage when the file's metadata are those the scan recorded and its content
/// is not the one the scan read with them: nothing that edits a file through the file system
/// leaves the ctime alone. (When the scan recorded newer content than the snapshot holds, a
/// scan that stopped before its snapshot, a file still as that scan saw it is an edit.)
/// Without a scan record the snapshot's size is all there is: the same size is reported as
/// damage, as the cautious reading.
fn judge(
    reading: Reading,
    recorded: Option<&ScanEntry>,
    audio_of: impl FnOnce(&ContentId) -> Result<Option<AudioHash>>,
) -> Result<Verdict> {
    let found = match reading {
        Reading::Same => return Ok(Verdict::Ok),
        Reading::Missing => return Ok(Verdict::Missing),
        Reading::Unreadable(reason) => return Ok(Verdict::Unreadable(reason)),
        Reading::Different(found) => found,
    };
    let damage = match recorded {
        Some(entry) if unchanged(entry, &found.stat) && entry.content != found.content => Some(
            "content changed while its size, times, inode and mode stayed as the last scan \
             recorded them"
                .to_string(),
        ),
        Some(_) => None,
        None if found.stat.size == found.expected_size => Some(
            "content differs from the snapshot's, at the same size (no scan state to compare \
             its times with)"
                .to_string(),
        ),
        None => None,
    };
    Ok(match damage {
        Some(reason) => Verdict::Damaged(reason),
        None => Verdict::Edited(Audio::of(found.audio, audio_of(&found.expected)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::origin::{ChangeKey, EntryKind};

    fn stat(size: u64, mtime_ns: i64, ctime_ns: i64) -> EntryStat {
        EntryStat {
            kind: EntryKind::File,
            size,
            mtime_ns,
            change: ChangeKey::Posix {
                dev: 1,
                ino: 7,
                ctime_ns,
            },
            mode: 0o644,
        }
    }

    fn content(n: u8) -> ContentId {
        ContentId::from_stored([n; 32])
    }

    fn audio(n: u8) -> Option<AudioHash> {
        Some(AudioHash::from_stored([n; 32]))
    }

    /// What a scan recorded: `stat` with content 1 (the snapshot's).
    fn entry(stat: &EntryStat, content_id: ContentId) -> ScanEntry {
        crate::scan::scan_entry(stat, content_id)
    }

    fn found(stat: EntryStat, content_id: ContentId, audio_hash: Option<AudioHash>) -> Reading {
        Reading::Different(Found {
            expected: content(1),
            expected_size: 100,
            stat,
            content: content_id,
            audio: audio_hash,
        })
    }

    fn judged(reading: Reading, recorded: Option<&ScanEntry>) -> Verdict {
        judge(reading, recorded, |c| {
            assert_eq!(*c, content(1), "the snapshot's audio is looked up");
            Ok(audio(1))
        })
        .expect("judge")
    }

    #[test]
    fn damage_is_new_content_behind_the_recorded_metadata() {
        let scanned = stat(100, 10, 20);
        let recorded = entry(&scanned, content(1));
        let v = judged(
            found(scanned.clone(), content(2), audio(2)),
            Some(&recorded),
        );
        assert!(matches!(v, Verdict::Damaged(_)), "{v:?}");
        // A restored mtime leaves a new ctime: an edit.
        let v = judged(
            found(stat(100, 10, 21), content(2), audio(2)),
            Some(&recorded),
        );
        assert_eq!(v, Verdict::Edited(Audio::Changed));
        // A retag that kept size and mtime, the audio untouched.
        let v = judged(
            found(stat(100, 10, 21), content(3), audio(1)),
            Some(&recorded),
        );
        assert_eq!(v, Verdict::Edited(Audio::Verified));
        // No audio hash now (or then): nothing to verify the audio with.
        let v = judged(found(stat(90, 11, 21), content(3), None), Some(&recorded));
        assert_eq!(v, Verdict::Edited(Audio::Unknown));
        // A new inode (a tag editor that writes a new file and renames it over the old one).
        let mut renamed = scanned.clone();
        renamed.change = ChangeKey::Posix {
            dev: 1,
            ino: 8,
            ctime_ns: 20,
        };
        let v = judged(found(renamed, content(3), audio(1)), Some(&recorded));
        assert_eq!(v, Verdict::Edited(Audio::Verified));
    }

    #[test]
    fn a_scan_that_recorded_newer_content_than_the_snapshot() {
        // The scan read content 3 with these metadata, then stopped before its snapshot.
        let scanned = stat(100, 10, 30);
        let recorded = entry(&scanned, content(3));
        let v = judged(
            found(scanned.clone(), content(3), audio(1)),
            Some(&recorded),
        );
        assert_eq!(v, Verdict::Edited(Audio::Verified));
        let v = judged(found(scanned, content(4), audio(1)), Some(&recorded));
        assert!(matches!(v, Verdict::Damaged(_)), "{v:?}");
    }

    #[test]
    fn without_a_scan_record_only_a_new_size_is_an_edit() {
        let v = judged(found(stat(100, 10, 20), content(2), audio(1)), None);
        assert!(matches!(v, Verdict::Damaged(_)), "{v:?}");
        let v = judged(found(stat(120, 10, 20), content(2), audio(1)), None);
        assert_eq!(v, Verdict::Edited(Audio::Verified));
    }

    #[test]
    fn the_other_readings_need_no_lookup() {
        let no_lookup = |_: &ContentId| -> Result<Option<AudioHash>> {
            panic!("no audio lookup for a file that is fine, missing or unreadable")
        };
        assert_eq!(
            judge(Reading::Same, None, no_lookup).expect("ok"),
            Verdict::Ok
        );
        assert_eq!(
            judge(Reading::Missing, None, no_lookup).expect("missing"),
            Verdict::Missing
        );
        assert_eq!(
            judge(Reading::Unreadable("EIO".into()), None, no_lookup).expect("unreadable"),
            Verdict::Unreadable("EIO".into())
        );
    }
}
