//! What a `diff` operand names, and the snapshot it stands for.
//!
//! An operand is an origin (a local directory, or any origin the registry can open, such as an
//! SSH origin read over SFTP; scanned incrementally first, which records a snapshot as
//! `musicfs scan` would), a snapshot id (64 hex digits, or a unique prefix of at least 8, as
//! `musicfs snapshots` prints them), or `ORIGIN@TIME` (its forms in `docs/time.md`): the latest
//! snapshot of ORIGIN taken at or before the end of TIME.

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
use crate::time::{self, Zone};

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
    /// Reads an operand, with `ORIGIN@TIME` in the user's zone and relative to now. An
    /// existing local directory wins over the other readings; an argument that reads as no
    /// snapshot is an origin, read through the registry (an unknown `scheme://` is refused).
    pub fn parse(arg: &OsStr) -> Result<Operand> {
        Operand::parse_at(arg, time::now_ns(), &Zone::local())
    }

    /// [`Operand::parse`] with the time it is now and the zone a local time is in.
    ///
    /// The text after the last `@` is a time when it reads as one (`time::parse`); else the
    /// argument is an origin, so `user@host:/music` stays one. Text after an `@` that starts
    /// with a digit or is a word of the time forms (`now`, `today`, `yesterday`) must read as a
    /// time, except after a remote origin's `user@` (`me@192.0.2.1:/music`); so must any
    /// other word after the `@` of a local path that does not exist (`~/Music@yesterdy`), which
    /// would otherwise be reported as a missing directory.
    pub fn parse_at(arg: &OsStr, now_ns: i64, zone: &Zone) -> Result<Operand> {
        let spec = OriginSpec::parse(arg);
        if let Ok(spec) = &spec {
            if spec.local_dir().is_some_and(Path::is_dir) {
                return Ok(Operand::Origin(arg.to_os_string()));
            }
        }
        let remote = spec.as_ref().is_ok_and(|s| s.local_dir().is_none());
        let missing_local = spec
            .as_ref()
            .ok()
            .and_then(|s| s.local_dir())
            .is_some_and(|p| !p.exists());
        let text = arg.to_string_lossy();
        if text.len() >= MIN_PREFIX
            && text.len() <= 64
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(Operand::Snapshot(text.to_ascii_lowercase()));
        }
        if let Some(at) = text.rfind('@') {
            let (origin, time) = (&text[..at], &text[at + 1..]);
            let parsed = time::parse(time, now_ns, zone);
            let word = time.starts_with(|c: char| c.is_ascii_digit())
                || ["now", "today", "yesterday"]
                    .iter()
                    .any(|w| time.eq_ignore_ascii_case(w));
            let stray = missing_local && !time.is_empty() && !time.contains('/');
            if parsed.is_ok() || (!remote && (word || stray)) {
                // A bad time after an existing directory is about the time alone.
                let origin_is_dir = OriginSpec::parse(OsStr::new(origin))
                    .is_ok_and(|s| s.local_dir().is_some_and(Path::is_dir));
                let time_ns = parsed.map_err(|e| {
                    let also = if word || origin_is_dir {
                        ""
                    } else {
                        "; and no such directory"
                    };
                    Error::InvalidInput(format!("{text}: {time}: {e}{also}"))
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
        _ => lookup(repo, operand, options),
    }
}

/// The recorded snapshot a snapshot id (or unique prefix) or `ORIGIN@TIME` names, with the
/// messages `diff` gives for an unknown or ambiguous prefix and a time before every snapshot
/// ([`Error::InvalidInput`]). An origin operand is refused: it is scanned, not looked up.
pub fn lookup(repo: &Repository, operand: &Operand, options: &OpenOptions) -> Result<Side> {
    let snapshots = repo.snapshots()?;
    let index = find(&snapshots, operand, options)?;
    indexed_side(repo, &snapshots, index)
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
                    "{prefix}: ambiguous, {} snapshots start with it: {}; give more digits",
                    many.len(),
                    candidates(snapshots, many, &Zone::local())
                ))),
            }
        }
        Operand::At { origin, time_ns } => {
            let name = origin_name(snapshots, origin, options)?;
            let mut best: Option<usize> = None;
            let mut first: Option<i64> = None;
            for (i, (_, r)) in snapshots.iter().enumerate() {
                if r.origin != name {
                    continue;
                }
                first = Some(first.map_or(r.time_ns, |f| f.min(r.time_ns)));
                if r.time_ns <= *time_ns && best.is_none_or(|b| r.time_ns >= snapshots[b].1.time_ns)
                {
                    best = Some(i);
                }
            }
            best.ok_or_else(|| {
                let zone = Zone::local();
                Error::InvalidInput(if let Some(first) = first {
                    format!(
                        "{origin}: no snapshot at or before {} (the first is from {})",
                        zone.format(*time_ns),
                        zone.format(first)
                    )
                } else {
                    format!("{origin}: no snapshot of this origin (see `musicfs snapshots`)")
                })
            })
        }
    }
}

/// The snapshots at `found` as an ambiguous prefix's error lists them: each id to as many
/// digits as tell them apart, with its time and origin (the first ten, then how many more).
fn candidates(snapshots: &[(SnapshotId, SnapshotRecord)], found: &[usize], zone: &Zone) -> String {
    const SHOWN: usize = 10;
    let mut ids: Vec<String> = found.iter().map(|&i| snapshots[i].0.to_hex()).collect();
    ids.sort();
    let common = ids
        .windows(2)
        .map(|w| {
            w[0].bytes()
                .zip(w[1].bytes())
                .take_while(|(a, b)| a == b)
                .count()
        })
        .max()
        .unwrap_or(0);
    let digits = (common + 1).max(MIN_PREFIX);
    let mut shown: Vec<String> = found
        .iter()
        .take(SHOWN)
        .map(|&i| {
            let (id, record) = &snapshots[i];
            let hex = id.to_hex();
            format!(
                "{} ({}, {})",
                &hex[..digits.min(hex.len())],
                zone.format(record.time_ns),
                record.origin
            )
        })
        .collect();
    if found.len() > SHOWN {
        shown.push(format!("and {} more", found.len() - SHOWN));
    }
    shown.join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    /// 2026-11-24T18:33:19Z.
    const NOW: i64 = 1_795_545_199 * S;

    fn parse(arg: &str) -> Result<Operand> {
        Operand::parse_at(OsStr::new(arg), NOW, &Zone::utc())
    }

    fn at(origin: &str, time: &str) -> Operand {
        Operand::At {
            origin: origin.into(),
            time_ns: time::parse(time, NOW, &Zone::utc()).expect(time),
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
        // A directory whose name holds an @ and a time is a directory.
        let odd = d.join("a@yesterday");
        std::fs::create_dir(&odd).expect("mkdir");
        assert_eq!(
            Operand::parse(odd.as_os_str()).expect("dir"),
            Operand::Origin(odd.clone().into_os_string())
        );
        assert_eq!(
            parse("DEADBEEF").expect("id"),
            Operand::Snapshot("deadbeef".into())
        );
        for (arg, origin, time) in [
            (
                "/music@2026-11-24T20:00:00Z",
                "/music",
                "2026-11-24T20:00:00Z",
            ),
            ("/music@2026-11-24 20:00", "/music", "2026-11-24 20:00"),
            ("/music@yesterday", "/music", "yesterday"),
            ("/music@Today", "/music", "today"),
            ("/music@now", "/music", "now"),
            ("/music@3d", "/music", "3d"),
            ("/music@90m", "/music", "90m"),
            // The last @ separates the time, so an origin may hold one.
            ("a@b@2026-11-24", "a@b", "2026-11-24"),
            ("nas@yesterday", "nas", "yesterday"),
            ("nas:/music@2026-11-24", "nas:/music", "2026-11-24"),
            ("me@nas:/music@1w", "me@nas:/music", "1w"),
            (
                "ssh://me@nas:2222/music@2h",
                "ssh://me@nas:2222/music",
                "2h",
            ),
        ] {
            assert_eq!(parse(arg).expect(arg), at(origin, time), "{arg}");
        }
        // An SSH origin's user@ is not a time.
        for arg in [
            "nas:/music",
            "me@192.0.2.1:/music",
            "me@today:/music",
            "me@3d:/music",
            "ssh://me@nas/music",
        ] {
            assert_eq!(parse(arg).expect(arg), Operand::Origin(arg.into()), "{arg}");
        }
        assert!(parse("webdav://bucket/music").is_err());
        // Bad times name the argument.
        for arg in [
            "/music@2026-99-99",
            "/music@2026-02-30",
            "/music@3y",
            "/music@yesterdy",
            "./lib@noon",
            "nas@tomorrow",
        ] {
            let e = parse(arg).expect_err(arg).to_string();
            assert!(e.starts_with(&format!("{arg}: ")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(parse("/music@yesterdy")
            .expect_err("typo")
            .to_string()
            .contains("no such directory"));
        assert!(parse("@2026-11-24").is_err());
        assert!(parse("@now").is_err());
        // A short hex word is a path, not a snapshot prefix.
        assert_eq!(parse("abc").expect("path"), Operand::Origin("abc".into()));
    }
}
