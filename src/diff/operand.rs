//! What a `diff` operand names, and the snapshot it stands for.
//!
//! An operand is a local directory (scanned incrementally first, which records a snapshot as
//! `musicfs scan` would), a snapshot id (64 hex digits, or a unique prefix of at least 8, as
//! `musicfs snapshots` prints them), or `ORIGIN@TIME`: the latest snapshot of ORIGIN taken at
//! or before TIME. SSH origins are refused: a diff reads the repository of this machine.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::id::{SnapshotId, TreeId};
use crate::origin::{LocalOrigin, Origin, OriginSpec};
use crate::repo::{OriginId, Repository};
use crate::report::Sink;
use crate::scan::{scan, ScanOptions};
use crate::snapshot::SnapshotRecord;

/// The shortest snapshot id prefix accepted.
pub const MIN_PREFIX: usize = 8;

/// One side of a diff, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A local directory.
    Directory(PathBuf),
    /// A snapshot id or a prefix of one (lower-case hex).
    Snapshot(String),
    /// The latest snapshot of `origin` at or before `time_ns`.
    At {
        /// A directory path, or an origin name as the repository records it.
        origin: String,
        /// Nanoseconds since the epoch.
        time_ns: i64,
    },
}

/// A resolved side of a diff: one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// The origin, as the repository names it.
    pub origin: String,
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its root tree.
    pub root: TreeId,
    /// When it was taken, ns since the epoch.
    pub time_ns: i64,
    /// The origin's id, when the repository's chunk locations for it describe this snapshot
    /// (it was just scanned, or it is the origin's latest snapshot).
    pub located: Option<OriginId>,
    /// Paths a scan of this side could not read (they are missing from its snapshot).
    pub unreadable: Vec<Vec<u8>>,
}

const OPERAND_KINDS: &str = "diff takes local directories, snapshot ids or ORIGIN@TIME";

impl Operand {
    /// Reads an operand. An existing local directory wins over the other readings.
    pub fn parse(arg: &OsStr) -> Result<Operand> {
        let spec = OriginSpec::parse(arg)?;
        if let OriginSpec::Local(path) = &spec {
            if path.is_dir() {
                return Ok(Operand::Directory(path.clone()));
            }
        }
        let text = arg.to_string_lossy();
        if text.len() >= MIN_PREFIX
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(Operand::Snapshot(text.to_ascii_lowercase()));
        }
        if let Some(at) = text.rfind('@') {
            let (origin, time) = (&text[..at], &text[at + 1..]);
            if time.starts_with(|c: char| c.is_ascii_digit()) {
                let time_ns = parse_time(time).ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{text}: {time} is not a time (RFC 3339, such as 2026-11-24T20:00:00Z, or a date, such as 2026-11-24)"
                    ))
                })?;
                if origin.is_empty() {
                    return Err(Error::InvalidInput(format!(
                        "{text}: ORIGIN@TIME needs an origin before the @"
                    )));
                }
                return Ok(Operand::At {
                    origin: origin.to_string(),
                    time_ns,
                });
            }
        }
        match spec {
            OriginSpec::Local(path) => Ok(Operand::Directory(path)),
            OriginSpec::Ssh(_) => Err(Error::InvalidInput(format!(
                "{text}: {OPERAND_KINDS}, not SSH origins (a local path with a colon is written ./{text})"
            ))),
        }
    }
}

/// Resolves the sides of `diff A [B]`, old side first: with `b`, A's side and B's; without
/// it, the snapshot of `a`'s origin taken before A (for a directory: its latest snapshot
/// before this scan) and A's. Directories are scanned, both at once when both are
/// directories; with `one_file_system`, without crossing into other mounted file systems
/// ([`LocalOrigin::one_file_system`]).
pub fn resolve(
    repo: &Repository,
    a: &Operand,
    b: Option<&Operand>,
    one_file_system: bool,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<(Side, Side)> {
    let Some(b) = b else {
        return resolve_one(repo, a, one_file_system, chunker, sink);
    };
    let (a_side, b_side) = std::thread::scope(|s| {
        let b_side = s.spawn(|| resolve_side(repo, b, one_file_system, chunker, sink));
        let a_side = resolve_side(repo, a, one_file_system, chunker, sink);
        let b_side = b_side
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidInput("the scan of B panicked".into())));
        (a_side, b_side)
    });
    Ok((a_side?, b_side?))
}

/// The snapshot before `a`, and `a`.
fn resolve_one(
    repo: &Repository,
    a: &Operand,
    one_file_system: bool,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<(Side, Side)> {
    match a {
        Operand::Directory(dir) => {
            let origin = LocalOrigin::open(dir, false)?.one_file_system(one_file_system);
            let Some((_, before)) = repo.latest_snapshot(origin.url())? else {
                return Err(Error::InvalidInput(format!(
                    "{}: no earlier snapshot to compare with (run `musicfs scan {}` first, or give B)",
                    dir.display(),
                    dir.display()
                )));
            };
            let new = scan_side(repo, &origin, chunker, sink)?;
            let mut old = record_side(&before, None);
            if old.snapshot == new.snapshot {
                // The scan found the tree unchanged and recorded no new snapshot.
                old.located = new.located;
            }
            Ok((old, new))
        }
        _ => {
            let snapshots = repo.snapshots()?;
            let index = find(&snapshots, a)?;
            let origin = &snapshots[index].1.origin;
            let Some(previous) = snapshots[..index]
                .iter()
                .rposition(|(_, r)| &r.origin == origin)
            else {
                return Err(Error::InvalidInput(format!(
                    "snapshot {} is the first of {origin}: nothing earlier to compare with",
                    snapshots[index].0.short()
                )));
            };
            Ok((
                indexed_side(repo, &snapshots, previous)?,
                indexed_side(repo, &snapshots, index)?,
            ))
        }
    }
}

fn resolve_side(
    repo: &Repository,
    operand: &Operand,
    one_file_system: bool,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<Side> {
    match operand {
        Operand::Directory(dir) => {
            let origin = LocalOrigin::open(dir, false)?.one_file_system(one_file_system);
            scan_side(repo, &origin, chunker, sink)
        }
        _ => {
            let snapshots = repo.snapshots()?;
            let index = find(&snapshots, operand)?;
            indexed_side(repo, &snapshots, index)
        }
    }
}

fn scan_side(
    repo: &Repository,
    origin: &LocalOrigin,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<Side> {
    let summary = scan(repo, origin, chunker, ScanOptions::default(), sink)?;
    let time_ns = repo
        .latest_snapshot(&summary.origin)?
        .map(|(_, r)| r.time_ns)
        .unwrap_or_default();
    Ok(Side {
        origin: summary.origin,
        snapshot: summary.snapshot,
        root: summary.root,
        time_ns,
        located: Some(summary.origin_id),
        unreadable: summary.unreadable,
    })
}

fn record_side(record: &SnapshotRecord, located: Option<OriginId>) -> Side {
    Side {
        origin: record.origin.clone(),
        snapshot: record.snapshot_id(),
        root: record.root,
        time_ns: record.time_ns,
        located,
        unreadable: Vec::new(),
    }
}

/// The side of `snapshots[index]`; its origin's chunk locations describe it when it is the
/// origin's latest snapshot.
fn indexed_side(
    repo: &Repository,
    snapshots: &[(SnapshotId, SnapshotRecord)],
    index: usize,
) -> Result<Side> {
    let record = &snapshots[index].1;
    let latest = !snapshots[index + 1..]
        .iter()
        .any(|(_, r)| r.origin == record.origin);
    let located = if latest {
        repo.find_origin(&record.origin)?
    } else {
        None
    };
    Ok(record_side(record, located))
}

/// The index in `snapshots` (oldest first) of the snapshot an operand names.
fn find(snapshots: &[(SnapshotId, SnapshotRecord)], operand: &Operand) -> Result<usize> {
    match operand {
        Operand::Directory(dir) => Err(Error::InvalidInput(format!(
            "{}: a directory is scanned, not looked up",
            dir.display()
        ))),
        Operand::Snapshot(prefix) => {
            let found: Vec<usize> = (0..snapshots.len())
                .filter(|&i| snapshots[i].0.to_hex().starts_with(prefix.as_str()))
                .collect();
            match found.as_slice() {
                [one] => Ok(*one),
                [] => Err(Error::InvalidInput(format!(
                    "{prefix}: no such snapshot, and no such directory (see `musicfs snapshots`)"
                ))),
                many => Err(Error::InvalidInput(format!(
                    "{prefix}: ambiguous, {} snapshots start with it; give more digits",
                    many.len()
                ))),
            }
        }
        Operand::At { origin, time_ns } => {
            let name = origin_name(snapshots, origin);
            let mut best: Option<usize> = None;
            let mut any = false;
            for (i, (_, r)) in snapshots.iter().enumerate() {
                if r.origin != name {
                    continue;
                }
                any = true;
                if r.time_ns <= *time_ns && best.is_none_or(|b| r.time_ns >= snapshots[b].1.time_ns)
                {
                    best = Some(i);
                }
            }
            best.ok_or_else(|| {
                Error::InvalidInput(if any {
                    format!("{origin}: no snapshot at or before that time")
                } else {
                    format!("{origin}: no snapshot of this origin (see `musicfs snapshots`)")
                })
            })
        }
    }
}

/// The recorded origin name `origin` stands for: itself when some snapshot records it, else
/// the canonical path of the directory it names (as `LocalOrigin::open` computes it).
fn origin_name(snapshots: &[(SnapshotId, SnapshotRecord)], origin: &str) -> String {
    if snapshots.iter().any(|(_, r)| r.origin == origin) {
        return origin.to_string();
    }
    match std::fs::canonicalize(Path::new(origin)) {
        Ok(p) => p.to_string_lossy().into_owned(),
        Err(_) => std::path::absolute(origin)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| origin.to_string()),
    }
}

/// Reads an RFC 3339 time (`2026-11-24T20:00:00Z`, `2026-11-24T21:00:00.5+01:00`; `t`, `z`
/// or a space are accepted, and no offset means UTC) or a date (`2026-11-24`: the end of that
/// day, UTC, so that the day's snapshots count). Returns ns since the epoch.
pub fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = digits(0..4)?;
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > crate::time::days_in_month(year, month) {
        return None;
    }
    let days = crate::time::days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(to_ns(days * 86_400 + 86_399, 999_999_999));
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') {
        return None;
    }
    let hour = digits(11..13)?;
    let minute = digits(14..16)?;
    let mut i = 16;
    let mut second = 0;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b':') {
        second = digits(i + 1..i + 3)?;
        i += 3;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let frac = &s[start..i];
            if frac.is_empty() {
                return None;
            }
            let mut padded: String = frac.chars().take(9).collect();
            while padded.len() < 9 {
                padded.push('0');
            }
            nanos = padded.parse().ok()?;
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let offset = match &s[i..] {
        "" | "Z" | "z" => 0,
        rest => {
            let r = rest.as_bytes();
            let sign = match r.first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            if r.len() != 6 || r[3] != b':' {
                return None;
            }
            let oh = digits(i + 1..i + 3)?;
            let om = digits(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    // A leap second counts as the last second of its minute.
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    Some(to_ns(secs, nanos))
}

/// Nanoseconds of a time in seconds; times past 2262 (the end of an `i64` of nanoseconds)
/// are the latest time there is, which every snapshot precedes.
fn to_ns(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-24T18:33:19Z"), Some(1_795_545_199 * S));
        assert_eq!(parse_time("2026-11-24 18:33:19"), Some(1_795_545_199 * S));
        assert_eq!(
            parse_time("2026-11-24T19:33:19+01:00"),
            Some(1_795_545_199 * S)
        );
        assert_eq!(
            parse_time("2026-11-24T18:33:19.25Z"),
            Some(1_795_545_199 * S + 250_000_000)
        );
        assert_eq!(parse_time("2000-02-29T00:00Z"), Some(951_782_400 * S));
        assert_eq!(
            parse_time("2000-02-29"),
            Some((951_782_400 + 86_400) * S - 1)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2026-11-24T25:00:00Z",
            "2026-11-24X",
            "2026-11-24T20:00:00+0100",
            "2026-1-24",
            "20261124",
            "2026-11-24T20:00:00.Z",
            "",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn operands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_path_buf();
        assert_eq!(
            Operand::parse(d.as_os_str()).expect("dir"),
            Operand::Directory(d.clone())
        );
        assert_eq!(
            Operand::parse(OsStr::new("DEADBEEF")).expect("id"),
            Operand::Snapshot("deadbeef".into())
        );
        assert_eq!(
            Operand::parse(OsStr::new("/music@2026-11-24T20:00:00Z")).expect("at"),
            Operand::At {
                origin: "/music".into(),
                time_ns: parse_time("2026-11-24T20:00:00Z").expect("time"),
            }
        );
        // The last @ separates the time, so an origin may hold one.
        assert!(matches!(
            Operand::parse(OsStr::new("a@b@2026-11-24")).expect("at"),
            Operand::At { origin, .. } if origin == "a@b"
        ));
        assert!(Operand::parse(OsStr::new("nas:/music")).is_err());
        assert!(Operand::parse(OsStr::new("/music@2026-99-99")).is_err());
        assert!(Operand::parse(OsStr::new("@2026-11-24")).is_err());
        // A short hex word is a path, not a snapshot prefix.
        assert_eq!(
            Operand::parse(OsStr::new("abc")).expect("path"),
            Operand::Directory("abc".into())
        );
    }
}
