//! What a `diff` operand names, and the snapshot it stands for.
//!
//! An operand is an origin (a local directory, or any origin the registry can open, such as an
//! SSH origin read over SFTP; scanned incrementally first, which records a snapshot as
//! `musicfs scan` would), a snapshot id (64 hex digits, or a unique prefix of at least 8, as
//! `musicfs snapshots` prints them), or `ORIGIN@TIME`: the latest snapshot of ORIGIN taken at
//! or before TIME.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::id::{SnapshotId, TreeId};
use crate::origin::{OpenOptions, Origin, OriginSpec};
use crate::repo::{OriginId, Repository};
use crate::report::Sink;
use crate::scan::{scan, ScanOptions};
use crate::snapshot::SnapshotRecord;

/// The shortest snapshot id prefix accepted.
pub const MIN_PREFIX: usize = 8;

/// One side of a diff, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operand {
    /// An origin argument (a directory, an SSH origin…), as written; it reads as one.
    Origin(OsString),
    /// A snapshot id or a prefix of one (lower-case hex).
    Snapshot(String),
    /// The latest snapshot of `origin` at or before `time_ns`.
    At {
        /// An origin argument, or an origin name as the repository records it.
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

impl Operand {
    /// Reads an operand. An existing local directory wins over the other readings; an
    /// argument that reads as no snapshot is an origin, read through the registry (an
    /// unknown `scheme://` is refused).
    pub fn parse(arg: &OsStr) -> Result<Operand> {
        let spec = OriginSpec::parse(arg);
        if let Ok(spec) = &spec {
            if spec.local_dir().is_some_and(Path::is_dir) {
                return Ok(Operand::Origin(arg.to_os_string()));
            }
        }
        // `user@192.0.2.1:/music` is an origin, not a time after an `@`.
        let remote = spec.as_ref().is_ok_and(|s| s.local_dir().is_none());
        let text = arg.to_string_lossy();
        if text.len() >= MIN_PREFIX
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(Operand::Snapshot(text.to_ascii_lowercase()));
        }
        if let Some(at) = text.rfind('@') {
            let (origin, time) = (&text[..at], &text[at + 1..]);
            if time.starts_with(|c: char| c.is_ascii_digit())
                && !(remote && parse_time(time).is_none())
            {
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
        spec?;
        Ok(Operand::Origin(arg.to_os_string()))
    }
}

/// Resolves the sides of `diff A [B]`, old side first: with `b`, A's side and B's; without
/// it, the snapshot of `a`'s origin taken before A (for a directory: its latest snapshot
/// before this scan) and A's. Origins are opened with `options` and scanned, both at once
/// when both are origins.
pub fn resolve(
    repo: &Repository,
    a: &Operand,
    b: Option<&Operand>,
    options: &OpenOptions,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<(Side, Side)> {
    let Some(b) = b else {
        return resolve_one(repo, a, options, chunker, sink);
    };
    let (a_side, b_side) = std::thread::scope(|s| {
        let b_side = s.spawn(|| resolve_side(repo, b, options, chunker, sink));
        let a_side = resolve_side(repo, a, options, chunker, sink);
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
    options: &OpenOptions,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<(Side, Side)> {
    match a {
        Operand::Origin(arg) => {
            let origin = OriginSpec::parse(arg)?.open(options)?;
            let Some((_, before)) = repo.latest_snapshot(origin.url())? else {
                let shown = arg.to_string_lossy();
                return Err(Error::InvalidInput(format!(
                    "{shown}: no earlier snapshot to compare with (run `musicfs scan {shown}` first, or give B)"
                )));
            };
            let new = scan_side(repo, origin.as_ref(), chunker, sink)?;
            let mut old = record_side(&before, None);
            if old.snapshot == new.snapshot {
                // The scan found the tree unchanged and recorded no new snapshot.
                old.located = new.located;
            }
            Ok((old, new))
        }
        _ => {
            let snapshots = repo.snapshots()?;
            let index = find(&snapshots, a, options)?;
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
    options: &OpenOptions,
    chunker: &dyn Chunker,
    sink: &dyn Sink,
) -> Result<Side> {
    match operand {
        Operand::Origin(arg) => {
            let origin = OriginSpec::parse(arg)?.open(options)?;
            scan_side(repo, origin.as_ref(), chunker, sink)
        }
        _ => {
            let snapshots = repo.snapshots()?;
            let index = find(&snapshots, operand, options)?;
            indexed_side(repo, &snapshots, index)
        }
    }
}

fn scan_side(
    repo: &Repository,
    origin: &dyn Origin,
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
fn find(
    snapshots: &[(SnapshotId, SnapshotRecord)],
    operand: &Operand,
    options: &OpenOptions,
) -> Result<usize> {
    match operand {
        Operand::Origin(arg) => Err(Error::InvalidInput(format!(
            "{}: an origin is scanned, not looked up",
            arg.to_string_lossy()
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
            let name = origin_name(snapshots, origin, options)?;
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

/// The recorded origin name `origin` stands for: itself when some snapshot records it; for a
/// local directory, its canonical path (as the local transport names it); for another origin
/// (an SSH host), the name the transport gives it once opened.
fn origin_name(
    snapshots: &[(SnapshotId, SnapshotRecord)],
    origin: &str,
    options: &OpenOptions,
) -> Result<String> {
    if snapshots.iter().any(|(_, r)| r.origin == origin) {
        return Ok(origin.to_string());
    }
    match OriginSpec::parse(OsStr::new(origin)) {
        Ok(spec) => match spec.recorded_url() {
            Some(url) => Ok(url),
            None => Ok(spec.open(options)?.url().to_string()),
        },
        // Not an origin this build can open (an unknown scheme): as written.
        Err(_) => Ok(origin.to_string()),
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
            Operand::Origin(d.clone().into_os_string())
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
        assert_eq!(
            Operand::parse(OsStr::new("nas:/music")).expect("ssh"),
            Operand::Origin("nas:/music".into())
        );
        assert_eq!(
            Operand::parse(OsStr::new("me@192.0.2.1:/music")).expect("ssh"),
            Operand::Origin("me@192.0.2.1:/music".into())
        );
        assert!(Operand::parse(OsStr::new("s3://bucket/music")).is_err());
        assert!(matches!(
            Operand::parse(OsStr::new("nas:/music@2026-11-24")).expect("at"),
            Operand::At { origin, .. } if origin == "nas:/music"
        ));
        assert!(Operand::parse(OsStr::new("/music@2026-99-99")).is_err());
        assert!(Operand::parse(OsStr::new("@2026-11-24")).is_err());
        // A short hex word is a path, not a snapshot prefix.
        assert_eq!(
            Operand::parse(OsStr::new("abc")).expect("path"),
            Operand::Origin("abc".into())
        );
    }
}
