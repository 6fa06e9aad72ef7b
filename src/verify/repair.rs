//! Repairing damaged files from good chunks found elsewhere (`verify --repair-from ORIGIN`).
//!
//! Only a file verify calls damaged is repaired: its content changed behind the metadata the
//! last scan recorded, so the content that scan read is the truth to restore. An edited file
//! is the user's change and a missing one is for `sync` to bring back; neither is touched.
//!
//! Each chunk of the file's content is taken, as a [`VerifiedChunk`], from the first place
//! that gives the right bytes:
//! 1. the damaged file itself, at the chunk's own offset: the chunks the damage spared cost
//!    no transfer, so only the damaged ones come from elsewhere;
//! 2. the same path and offset in ORIGIN (a mirror usually holds the file there);
//! 3. every location the repository records for the chunk, in ORIGIN, in the target, then in
//!    every other origin it has a snapshot of (opened through the registry on first need);
//! 4. the history the repository keeps (tag, padding and structure chunks).
//!
//! The file is rebuilt under a temporary name in its directory and committed, with the mode
//! and mtime the scan recorded, to a second temporary name; that file is then read back and
//! chunked whole, and only when its content id is the one to restore, and the damaged file
//! still has the metadata verify read it with, is it renamed over the damaged file. It is
//! then recorded in the repository as a sync records a file it wrote, so the next scan and
//! verify find it unchanged. A file that cannot be rebuilt is left exactly as it was.
//!
//! Never does: touch a file verify did not call damaged, or write outside the target's
//! temporary names and the damaged files' own paths.

use std::io::Write;

use crate::chunk::{AssembleError, Assembler, Chunker, VerifiedChunk};
use crate::error::{Error, Result};
use crate::locate::{Hint, LastOpen, Locator, OriginPool, Site};
use crate::origin::temp::temp_name;
use crate::origin::{ChangeKey, EntryKind, EntryStat, OpenOptions, Origin, WritableOrigin};
use crate::repo::{OriginId, Repository};
use crate::report::{display_path, Event, Sink};
use crate::scan::{read_file, scan_entry};
use crate::snapshot::ChunkRef;

use super::{verify_objects, verify_target, DamagedFile, VerifySummary};

/// Where a repair reads good chunks.
pub struct RepairFrom<'a> {
    /// The origin named by `--repair-from`, opened through the registry.
    pub origin: &'a dyn Origin,
    /// How to open the repository's other origins when a chunk is recorded there.
    pub options: OpenOptions,
}

/// The site of the `--repair-from` origin in the repair's [`Locator`].
const FROM: usize = 0;
/// The site of the target.
const TARGET: usize = 1;

/// Verifies the repository's objects and every file of `target` against its last snapshot,
/// as [`super::verify`] does, then rebuilds each damaged file from good chunks (see the
/// module documentation). Holds the target's sync locks throughout, so no sync writes into
/// it meanwhile.
///
/// Errors: [`Error::InvalidInput`] when `from` is the target itself or the target's root is
/// not there, [`Error::Locked`] when a sync holds the target, and what verify returns; a file
/// that cannot be rebuilt is counted in [`VerifySummary::unrepaired`] and reported, not an
/// error, unless the repository fails or an interrupt arrives.
pub fn verify_and_repair(
    repo: &Repository,
    target: &dyn WritableOrigin,
    from: &RepairFrom<'_>,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<VerifySummary> {
    if from.origin.url() == target.url() {
        return Err(Error::InvalidInput(format!(
            "--repair-from {}: that is the origin being verified; name another copy of it",
            from.origin.url()
        )));
    }
    if target.stat(b"")?.is_none() {
        return Err(Error::InvalidInput(format!(
            "{}: no such directory",
            target.display(b"").display()
        )));
    }
    let _repo_lock = repo.lock_destination(target.url())?;
    let _target_lock = target.lock()?;
    let _give_back = GiveBack(target);

    let mut summary = VerifySummary::default();
    verify_objects(repo, sink, &mut summary)?;
    let target_plain: &dyn Origin = target;
    let damaged = verify_target(repo, target_plain, chunker, sink, &mut summary)?;
    if damaged.is_empty() {
        return Ok(summary);
    }

    let target_id = repo.origin_id(target.url())?;
    let from_id = repo.find_origin(from.origin.url())?;
    // Every other origin the repository holds a snapshot of, for their recorded locations.
    let mut others: Vec<(String, Option<OriginId>)> = Vec::new();
    for (_, record) in repo.snapshots()? {
        let url = record.origin;
        if url == target.url() || url == from.origin.url() || others.iter().any(|(u, _)| *u == url)
        {
            continue;
        }
        let id = repo.find_origin(&url)?;
        others.push((url, id));
    }
    let pool = OriginPool::new(from.options.clone());
    let mut sites = vec![
        Site::given(from.origin, from_id),
        Site::given(target_plain, Some(target_id)),
    ];
    for (url, id) in &others {
        sites.push(Site::pooled(url, *id, &pool));
    }
    let repairer = Repairer {
        repo,
        target,
        target_id,
        from_url: from.origin.url(),
        locator: Locator::new(repo, sites, true),
        chunker,
        sink,
    };

    let mut bytes = 0;
    for file in &damaged {
        bytes += repo.content(&file.content)?.size();
    }
    sink.phase("repairing", damaged.len() as u64, bytes);
    for file in &damaged {
        crate::interrupt::check()?;
        let path = display_path(&file.path);
        let outcome = match repairer.repair(file) {
            Ok(outcome) => outcome,
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => Some(e.to_string()),
        };
        match outcome {
            None => {
                summary.repaired += 1;
                sink.event(&Event::Repaired { path });
            }
            Some(reason) => {
                summary.unrepaired += 1;
                sink.event(&Event::Unrepaired { path, reason });
            }
        }
    }
    Ok(summary)
}

/// Errors that stop the repair of every file, not just one: the repository failing, or an
/// interrupt.
fn is_fatal(e: &Error) -> bool {
    matches!(
        e,
        Error::Repository { .. }
            | Error::IndexDamaged { .. }
            | Error::Corrupt { .. }
            | Error::Interrupted { .. }
    )
}

/// Gives the target's directories back the modes they had before the repair opened them up
/// for itself, however it ends.
struct GiveBack<'a>(&'a dyn WritableOrigin);

impl Drop for GiveBack<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.give_back() {
            tracing::warn!("{e}");
        }
    }
}

struct Repairer<'a> {
    repo: &'a Repository,
    target: &'a dyn WritableOrigin,
    target_id: OriginId,
    from_url: &'a str,
    /// Sites: [`FROM`], [`TARGET`], then the repository's other origins; history last.
    locator: Locator<'a>,
    chunker: &'a dyn Chunker,
    sink: &'a dyn Sink,
}

impl Repairer<'_> {
    /// Rebuilds `file` and puts it in place: `Ok(None)` when done, `Ok(Some(reason))` when it
    /// could not be rebuilt and was left as it was; an error for a failure to report as is.
    fn repair(&self, file: &DamagedFile) -> Result<Option<String>> {
        let list = self.repo.content(&file.content)?;
        let staged = staging_path(&file.path);
        let mut temp = self.target.create_temp(&staged)?;
        let shown = self.target.display(&file.path);
        let built = (|| -> Result<Option<String>> {
            let failed = |e: AssembleError| match e {
                AssembleError::Io(e) => Error::io(&shown, e),
                AssembleError::Mismatch => Error::Rebuild {
                    path: shown.clone(),
                    content: file.content.short(),
                },
            };
            let (mut own, mut elsewhere) = (LastOpen::default(), LastOpen::default());
            let mut assembler = Assembler::new(&list);
            for (offset, chunk) in list.with_offsets() {
                crate::interrupt::check()?;
                let Some(verified) = self.find(&mut own, &mut elsewhere, file, offset, chunk)?
                else {
                    return Ok(Some(format!(
                        "no good copy of chunk {} (at offset {offset}): not in the file, not \
                         in {}, at no location the repository records and not in its history",
                        chunk.id.short(),
                        self.from_url
                    )));
                };
                assembler
                    .chunk(offset, verified, &mut |bytes| temp.write_all(bytes))
                    .map_err(failed)?;
                self.sink.advance(u64::from(chunk.len));
            }
            assembler.finish().map_err(failed)?;
            Ok(None)
        })();
        match built {
            Ok(None) => {}
            other => {
                temp.discard();
                return other;
            }
        }
        temp.commit(file.mode, file.mtime_ns)?;
        // From here the rebuilt file waits under `staged`, removed unless renamed into place.
        let result = self.replace(file, &staged);
        if !matches!(result, Ok(None)) {
            if let Err(e) = self.target.remove(&staged) {
                tracing::warn!("{e}");
            }
        }
        result
    }

    /// Chunk `chunk` of `file` at `offset`: from the damaged file itself, else through the
    /// locator (the same place in the `--repair-from` origin, then every recorded location,
    /// then history).
    fn find(
        &self,
        own: &mut LastOpen,
        elsewhere: &mut LastOpen,
        file: &DamagedFile,
        offset: u64,
        chunk: ChunkRef,
    ) -> Result<Option<VerifiedChunk>> {
        if let Some(found) = self
            .locator
            .read_at(own, TARGET, &file.path, offset, chunk)?
        {
            return Ok(Some(found));
        }
        let hint = Hint {
            site: FROM,
            path: &file.path,
            offset,
        };
        self.locator.find(elsewhere, Some(hint), chunk)
    }

    /// Reads the rebuilt file at `staged` back whole and, when it holds the content to
    /// restore and the damaged file is still as verify found it, renames it over the damaged
    /// file and records it.
    fn replace(&self, file: &DamagedFile, staged: &[u8]) -> Result<Option<String>> {
        let target: &dyn Origin = self.target;
        let read = read_file(target, staged, self.chunker, false)?;
        if read.list.content_id() != file.content {
            return Ok(Some(format!(
                "the rebuilt file, read back, is not content {}",
                file.content.short()
            )));
        }
        match self.target.stat(&file.path)? {
            Some(now) if now == file.stat => {}
            _ => {
                return Ok(Some(
                    "changed since verify read it (an edit is not damage): left as it is".into(),
                ))
            }
        }
        self.target.rename(staged, &file.path)?;
        let parent = file
            .path
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&[][..], |i| &file.path[..i]);
        if let Err(e) = self.target.sync_dir(parent) {
            tracing::warn!("{e}");
        }
        self.record(file, read.stat)?;
        Ok(None)
    }

    /// Records the repaired file with its stat now, as a sync records a file it wrote, so the
    /// next scan does not read it again. When that stat fails, the file is recorded with the
    /// stat its rebuilt copy had, without a change key: the next scan then reads it, which is
    /// only slower.
    fn record(&self, file: &DamagedFile, staged: EntryStat) -> Result<()> {
        let stat = match self.target.stat(&file.path) {
            Ok(Some(stat)) if stat.kind == EntryKind::File => stat,
            _ => EntryStat {
                change: ChangeKey::None,
                ..staged
            },
        };
        let mut writer = self.repo.writer()?;
        let previous = writer.scan_entry(self.target_id, &file.path)?;
        writer.record_file(
            self.target_id,
            &file.path,
            scan_entry(&stat, file.content),
            previous.as_ref(),
        )?;
        writer.commit()
    }
}

/// A new temporary name beside `path`, where the rebuilt file is read back before it
/// replaces the damaged one (a temporary name, so that a crash leaves a file the next sync
/// removes).
fn staging_path(path: &[u8]) -> Vec<u8> {
    let name = temp_name(path, 0);
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => [&path[..=i], name.as_bytes()].concat(),
        None => name.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_file_is_a_temporary_beside_its_target() {
        let staged = staging_path(b"Artist/Album/01 Track.flac");
        let (dir, name) = staged.split_at(b"Artist/Album/".len());
        assert_eq!(dir, b"Artist/Album/");
        assert!(crate::origin::is_temporary(name));
        assert!(crate::origin::is_temporary(&staging_path(b"top.mp3")));
        assert_ne!(staging_path(b"top.mp3"), staging_path(b"other.mp3"));
    }
}
