use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{exit, human, print_summary, ConnectArgs, GlobalArgs};
use crate::id::SnapshotId;
use crate::origin::OriginSpec;
use crate::report::print_json;
use crate::snapshot::SnapshotRecord;
use crate::time::Zone;

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only the snapshots of this origin: as `snapshots` prints it, a directory (by its
    /// canonical path, whether it still exists or not), or an SSH origin (host:path,
    /// user@host:path, ssh://user@host:port/path, sftp://…), connected to in order to learn
    /// the name the repository records it by; or a chunk store, s3://BUCKET/PREFIX: the
    /// store's snapshots (id, time, files, bytes, library, host)
    #[arg(value_name = "ORIGIN")]
    pub origin: Option<PathBuf>,
    /// Print times in UTC (2026-11-24 20:13:05Z) instead of the local time zone (TZ, else
    /// /etc/localtime) with its offset (2026-11-24 21:13:05+01:00)
    #[arg(long)]
    pub utc: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(global: &GlobalArgs, args: &SnapshotsArgs) -> anyhow::Result<u8> {
    // A chunk store lists its own snapshots.
    if let Some(arg) = &args.origin {
        if let Some(store) =
            super::store::open_store(global, arg.as_os_str(), &args.connect.open_options(false))?
        {
            let zone = if args.utc { Zone::utc() } else { Zone::local() };
            return super::store::snapshots(global, &store, &zone);
        }
    }
    // Read through the registry first: a scheme no transport has is refused (exit 2) before
    // anything is opened.
    let spec = args
        .origin
        .as_ref()
        .map(|o| OriginSpec::parse(o.as_os_str()))
        .transpose()?;
    let repo = global.open_repo()?;
    let snapshots = repo.snapshots()?;
    let wanted = match (&args.origin, spec) {
        (Some(arg), Some(spec)) => Some(recorded_origin(arg, &spec, &snapshots, &args.connect)?),
        _ => None,
    };
    let chosen = snapshots
        .into_iter()
        .filter(|(_, r)| wanted.as_ref().is_none_or(|w| r.origin == *w));
    let zone = if args.utc { Zone::utc() } else { Zone::local() };
    let mut listed = 0u64;
    for (id, record) in chosen {
        listed += 1;
        let secs = record.time_ns.div_euclid(1_000_000_000);
        if global.json {
            print_json(&json!({
                "type": "snapshot",
                "id": id.to_hex(),
                "origin": record.origin,
                "time": secs,
                "root": record.root.to_hex(),
                "files": record.files,
                "bytes": record.bytes,
            }));
        } else {
            println!(
                "{}  {}  {:>7} files  {:>10}  {}",
                id.short(),
                zone.format(record.time_ns),
                record.files,
                human(record.bytes),
                record.origin
            );
        }
    }
    if global.json {
        print_summary(&json!({ "snapshots": listed }))?;
    }
    Ok(exit::OK)
}

/// The name the repository records the origin `arg` (read as `spec`) under: `arg` itself when
/// a snapshot is recorded so, else a directory's canonical path (whether it still exists or
/// not), else the URL the origin gives once opened (an SSH origin's user, port and absolute
/// path filled in). `forget ORIGIN` matches its argument the same way.
pub(super) fn recorded_origin(
    arg: &std::path::Path,
    spec: &OriginSpec,
    snapshots: &[(SnapshotId, SnapshotRecord)],
    connect: &ConnectArgs,
) -> anyhow::Result<String> {
    let given = arg.to_string_lossy();
    if snapshots.iter().any(|(_, r)| r.origin == given) {
        Ok(given.into_owned())
    } else if let Some(url) = spec.recorded_url() {
        Ok(url)
    } else {
        let origin = spec.open(&connect.open_options(false))?;
        Ok(origin.url().to_string())
    }
}
