use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::filter_args::FilterArgs;
use super::{exit, human, note_run, print_summary, started_ns, timing, ConnectArgs, GlobalArgs};
use crate::agent::{sync_remote, Direction, RemoteOptions};
use crate::diff::operand::{lookup, Operand};
use crate::filter::Filter;
use crate::id::SnapshotId;
use crate::origin::spooled::Spool;
use crate::origin::{
    AgentLink, Budget, BwLimited, Meter, Metered, OpenOptions, Origin, OriginSpec, Spooled,
    WritableOrigin,
};
use crate::report::Sink;
use crate::sync::restore::restore;
use crate::sync::{sync, SyncOptions, SyncSummary};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The source: a directory, or an SSH origin (host:path, user@host:path,
    /// ssh://user@host:port/path, sftp://… to skip the remote musicfs), an SMB share
    /// (smb://[USER@]HOST[:PORT]/SHARE/PATH), an NFS export (nfs://HOST[:PORT]/PATH), or an
    /// S3 prefix as a plain mirror (s3://BUCKET/PREFIX); or a snapshot to
    /// restore: its id, a unique prefix of 8 or more hex digits, or ORIGIN@TIME (TIME as diff
    /// reads it: RFC 3339, a local date or time, yesterday, latest, 3d…; an existing
    /// directory is always the directory); or a chunk store, s3://BUCKET/PREFIX, pulled:
    /// its newest snapshot, or @TIME, @latest or @ID after it
    pub src: PathBuf,
    /// The destination (created if missing): a directory, or an SSH, SMB, NFS or S3 origin
    /// as for SRC; or a chunk store,
    /// s3://BUCKET/PREFIX, that SRC (a directory) is scanned and pushed into
    pub dst: PathBuf,
    /// With a chunk store: the library to push to or pull from [default: the store's only
    /// library; for the first push, the last component of the store's prefix]
    #[arg(long, value_name = "NAME")]
    pub library: Option<String>,
    /// Remove files and directories absent from SRC (entries the filters exclude at DST are
    /// kept, and so are the directories that hold them)
    #[arg(long)]
    pub delete: bool,
    /// Also delete what the filters exclude at DST (implies --delete), as rsync's
    /// --delete-excluded: DST is walked without the filters
    #[arg(long)]
    pub delete_excluded: bool,
    /// Print the plan and the bytes it would move; write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Read every source file, even those whose metadata is unchanged (an origin SRC; a
    /// snapshot is not read)
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Don't cross file system boundaries in a local SRC or DST: a mount point is copied as
    /// an empty directory, and --delete deletes nothing inside one (a musicfs mount is
    /// always left out)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// With --delete: delete nothing (and exit 3) when the deletions would remove more than N
    /// files and symlinks, as a guard against a source that went missing
    #[arg(long, value_name = "N")]
    pub max_delete: Option<u64>,
    /// Limit what crosses to or from the other side to RATE per second, all streams
    /// together, as rsync reads it: 500K, 10M, 1.5M (K, M, G are powers of 1024; KB, MB
    /// powers of 1000; no unit means K; 0 means no limit). In a local sync it limits what is
    /// written into DST.
    #[arg(long, value_name = "RATE", env = "MUSICFS_BWLIMIT", value_parser = crate::origin::bwlimit::rate_arg)]
    pub bwlimit: Option<u64>,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Use SFTP even when the remote host has musicfs
    #[arg(long)]
    pub sftp: bool,
    /// The musicfs command on the remote host, run by its shell [default: musicfs on the
    /// remote PATH, else SFTP]
    #[arg(long, value_name = "COMMAND", env = "MUSICFS_REMOTE_MUSICFS")]
    pub remote_musicfs: Option<String>,
    /// When the remote host has no musicfs but runs the same OS on the same architecture,
    /// copy this binary over SFTP to ~/.cache/musicfs/agent/HASH/ there (checked by its
    /// SHA-256 before it runs, older versions removed) and run it as the remote musicfs; if
    /// it cannot run there, use SFTP. --remote-musicfs, when given, is run instead
    #[arg(long, env = "MUSICFS_DEPLOY_AGENT", conflicts_with = "sftp",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub deploy_agent: bool,
}

pub fn run(global: &GlobalArgs, args: &SyncArgs) -> anyhow::Result<u8> {
    // SRC is read as diff reads an operand: an existing directory is an origin, and so is
    // anything that names no snapshot; a snapshot id (or prefix) or ORIGIN@TIME is restored.
    // DST a chunk store (an s3:// prefix holding a store's config): scan SRC, push it.
    if let Some(objects) =
        super::store::store_at(args.dst.as_os_str(), &args.connect.open_options(false))?
    {
        if args.delete || args.delete_excluded || args.max_delete.is_some() {
            return Err(crate::error::Error::InvalidInput(format!(
                "{}: a push into a chunk store adds a snapshot and deletes nothing (--delete applies to a pull; musicfs forget and gc remove old snapshots)",
                args.dst.display()
            ))
            .into());
        }
        let options = OpenOptions {
            filter: args.filter.filter()?,
            ..args.connect.open_options(args.one_file_system)
        };
        return super::store::push(
            global,
            args.src.as_os_str(),
            objects,
            &options,
            args.checksum,
            args.library.as_deref(),
            args.dry_run,
        );
    }
    // SRC a chunk store: its snapshot is pulled (before SRC is read as an operand, which would
    // take the prefix for a plain mirror).
    let source = match super::store::store_source(
        args.src.as_os_str(),
        args.library.as_deref(),
        &args.connect.open_options(false),
    )? {
        Some((objects, pick)) => Source::Store(objects, pick),
        None => Source::Operand(Operand::parse(args.src.as_os_str())?),
    };
    if let (Source::Operand(_), Some(_)) = (&source, &args.library) {
        anyhow::bail!(
            "--library: neither {} nor {} is a chunk store",
            args.src.display(),
            args.dst.display()
        );
    }
    let dst = OriginSpec::parse(args.dst.as_os_str())?;
    let options = SyncOptions {
        delete: args.delete || args.delete_excluded,
        dry_run: args.dry_run,
        checksum: args.checksum,
        max_delete: args.max_delete,
    };
    // SRC is walked through the filters; DST too, so that what they exclude there is
    // neither in its snapshot nor deleted, unless --delete-excluded.
    let filter = args.filter.filter()?;
    let src_open = OpenOptions {
        filter: filter.clone(),
        ..args.connect.open_options(args.one_file_system)
    };
    let dst_open = OpenOptions {
        filter: if args.delete_excluded {
            Filter::none()
        } else {
            filter
        },
        ..args.connect.open_options(args.one_file_system)
    };
    let budget = args.bwlimit.filter(|&r| r > 0).map(Budget::new);
    // A destination of a pull or restore: the budget holds its writes, which are counted when
    // they cross the network.
    let meter = Meter::new();
    let limited = |destination: Box<dyn WritableOrigin>| -> Box<dyn WritableOrigin> {
        let destination: Box<dyn WritableOrigin> = match &budget {
            Some(budget) => Box::new(BwLimited::new(destination, budget.clone())),
            None => destination,
        };
        match destination.local_root() {
            Some(_) => destination,
            None => Box::new(Metered::new(destination, Arc::clone(&meter))),
        }
    };
    let sink = global.sink_listing(args.dry_run);
    // The repository and the names its snapshots give each side opened here (a remote side's
    // is the one other origin this run records), for the summary.
    let mut restored = None;
    let mut pulled = None;
    let (result, repo, src_url, dst_url, metered) = match source {
        Source::Store(objects, pick) => {
            let destination = dst.open_writable(&dst_open)?;
            let dst_url = Some(destination.url().to_string());
            let remote = destination
                .local_root()
                .is_none()
                .then(|| Arc::clone(&meter));
            let destination = limited(destination);
            let (result, repo, from) = super::store::pull(
                global,
                objects,
                pick,
                destination.as_ref(),
                options,
                sink.as_ref(),
            )?;
            pulled = Some(from);
            (result, repo, None, dst_url, remote)
        }
        Source::Operand(Operand::Origin(_)) => sync_origin(
            global,
            args,
            &dst,
            options,
            &src_open,
            &dst_open,
            &budget,
            sink.as_ref(),
        )?,
        Source::Operand(operand) => {
            // A snapshot's chunks are read here, from wherever the repository records them,
            // so an SSH destination is written over SFTP: a remote musicfs would have nothing
            // to add.
            let repo = global.open_repo()?;
            let origins = args.connect.open_options(false);
            let side = lookup(&repo, &operand, &origins)?;
            let destination = dst.open_writable(&dst_open)?;
            let remote = destination
                .local_root()
                .is_none()
                .then(|| Arc::clone(&meter));
            let destination = limited(destination);
            let chunker = repo.chunker();
            let dst_url = Some(destination.url().to_string());
            let result = restore(
                &repo,
                side.snapshot,
                destination.as_ref(),
                &chunker,
                options,
                origins,
                sink.as_ref(),
            );
            restored = Some(side.snapshot);
            (result, repo, None, dst_url, remote)
        }
    };
    sink.finish();
    let summary = result
        .with_context(|| format!("syncing {} to {}", args.src.display(), args.dst.display()))?;
    let (src_snapshot, dst_snapshot) =
        recorded_snapshots(&repo, src_url.as_deref(), dst_url.as_deref());
    // A restore's source is the snapshot it wrote.
    let src_snapshot = restored.or(src_snapshot);
    let src_text = args.src.display().to_string();
    let dst_text = args.dst.display().to_string();
    note_run(format!(
        "{} files, {} changed, {} deleted, {} moved{}",
        summary.files_total,
        summary.files_changed,
        summary.files_deleted,
        human(summary.bytes_transferred),
        if summary.errors > 0 {
            format!(", {} errors", summary.errors)
        } else {
            String::new()
        }
    ));
    if global.json {
        let mut line = serde_json::json!({
            "src": src_text,
            "dst": dst_text,
            "src_snapshot": src_snapshot.map(|id| id.to_hex()),
            "dst_snapshot": dst_snapshot.map(|id| id.to_hex()),
            "files": summary.files_total,
            "bytes": summary.bytes_total,
            "files_changed": summary.files_changed,
            "files_deleted": summary.files_deleted,
            "bytes_transferred": summary.bytes_transferred,
            "chunks_transferred": summary.chunks_transferred,
            "bytes_reused": summary.bytes_reused,
            "problems": summary.errors,
            "dry_run": summary.dry_run,
        });
        if let Some(map) = line.as_object_mut() {
            let (received, sent) = metered
                .as_ref()
                .map_or((0, 0), |m| (m.received(), m.sent()));
            map.insert("bytes_received".into(), received.into());
            map.insert("bytes_sent".into(), sent.into());
        }
        if let (Some(from), Some(map)) = (&pulled, line.as_object_mut()) {
            map.insert("store".into(), from.store.clone().into());
            map.insert("library".into(), from.library.clone().into());
            map.insert("snapshot".into(), from.snapshot.clone().into());
        }
        print_summary(&line)?;
    } else if !global.quiet {
        let snapshots = match (src_snapshot, dst_snapshot) {
            _ if pulled.is_some() => String::new(),
            (None, None) => String::new(),
            (src, dst) => {
                let short = |id: Option<SnapshotId>| id.map_or("-".to_string(), |id| id.short());
                format!("; snapshots {} -> {}", short(src), short(dst))
            }
        };
        println!(
            "{}{src_text} -> {dst_text}: {} files ({}): {} changed, {} deleted; {} from source in {} chunks, {} reused from destination{}{}{snapshots}{}",
            if summary.dry_run { "dry run: " } else { "" },
            summary.files_total,
            human(summary.bytes_total),
            summary.files_changed,
            summary.files_deleted,
            human(summary.bytes_transferred),
            summary.chunks_transferred,
            human(summary.bytes_reused),
            match &metered {
                Some(meter) => format!(
                    "; network {} received, {} sent",
                    human(meter.received()),
                    human(meter.sent())
                ),
                None => String::new(),
            },
            if summary.errors > 0 {
                format!("; {} errors", summary.errors)
            } else {
                String::new()
            },
            timing(summary.bytes_transferred + summary.bytes_reused)
        );

        if let Some(from) = &pulled {
            println!(
                "pulled snapshot {} of {} from {}",
                &from.snapshot[..16.min(from.snapshot.len())],
                from.library,
                from.store
            );
        }
    }
    Ok(if summary.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// What SRC names.
enum Source {
    /// A chunk store's snapshot, pulled.
    Store(crate::origin::s3::S3Objects, crate::store::Pick),
    /// An origin, or a snapshot of the repository.
    Operand(Operand),
}

/// What [`sync_origin`] gives back: the sync's result, the repository it used, the names the
/// repository knows SRC and DST by (`None` for a side reached through a remote agent), and
/// what crossed to and from a remote side (`None` when both sides are local).
type Synced = (
    crate::error::Result<SyncSummary>,
    crate::repo::Repository,
    Option<String>,
    Option<String>,
    Option<Arc<Meter>>,
);

/// Syncs the origin SRC into DST: through a remote agent when one side has a link to one (or
/// through that link's fallback origin), else both opened through the registry and synced
/// here.
#[allow(clippy::too_many_arguments)]
fn sync_origin(
    global: &GlobalArgs,
    args: &SyncArgs,
    dst: &OriginSpec,
    options: SyncOptions,
    src_open: &OpenOptions,
    dst_open: &OpenOptions,
    budget: &Option<std::sync::Arc<Budget>>,
    sink: &dyn Sink,
) -> anyhow::Result<Synced> {
    let src = OriginSpec::parse(args.src.as_os_str())?;
    // The remote side's options: its filter is sent to the remote agent.
    let meter = Meter::new();
    let remote_options = |link: &dyn AgentLink, open: &OpenOptions| RemoteOptions {
        bwlimit: budget.clone(),
        meter: Some(Arc::clone(&meter)),
        open: open.clone(),
        force_fallback: args.sftp || link.fallback_only(),
        remote_musicfs: args.remote_musicfs.clone(),
        deploy_agent: args.deploy_agent,
    };
    Ok(match (src.agent(), dst.agent()) {
        (None, None) => {
            let source = src.open(src_open)?;
            let destination = dst.open_writable(dst_open)?;
            let urls = (
                Some(source.url().to_string()),
                Some(destination.url().to_string()),
            );
            // Reads of a source on another machine (S3, SMB, NFS) cross the network: they
            // spend the budget and are counted, as writes to such a destination are. Between
            // two local directories the budget holds the writes.
            let remote_src = source.local_root().is_none();
            let remote_dst = destination.local_root().is_none();
            let source: Box<dyn Origin> = match budget {
                Some(budget) if remote_src => Box::new(BwLimited::new(source, budget.clone())),
                _ => source,
            };
            let source: Box<dyn Origin> = match remote_src {
                true => Box::new(Metered::new(source, Arc::clone(&meter))),
                false => source,
            };
            let destination: Box<dyn WritableOrigin> = match budget {
                Some(budget) if remote_dst || !remote_src => {
                    Box::new(BwLimited::new(destination, budget.clone()))
                }
                _ => destination,
            };
            let destination: Box<dyn WritableOrigin> = match remote_dst {
                true => Box::new(Metered::new(destination, Arc::clone(&meter))),
                false => destination,
            };
            let metered = (remote_src || remote_dst).then(|| Arc::clone(&meter));
            let repo = global.open_repo()?;
            // A remote source's new and changed files are read whole by the scan, then their
            // chunks again by the copy: spooled, each crosses the network once (outside the
            // meter and the budget, which see only the download).
            let source: Box<dyn Origin> = match remote_src {
                true => Box::new(Spooled::over(Spool::new(repo.root().join("spool")), source)),
                false => source,
            };
            let chunker = repo.chunker();
            let result = sync(
                &repo,
                source.as_ref(),
                destination.as_ref(),
                &chunker,
                options,
                sink,
            );
            (result, repo, urls.0, urls.1, metered)
        }
        (Some(remote), None) => {
            let destination = dst.open_writable(dst_open)?;
            let dst_url = Some(destination.url().to_string());
            let repo = global.open_repo()?;
            let chunker = repo.chunker();
            let result = sync_remote(
                &repo,
                remote,
                Direction::Pull(destination.as_ref()),
                &chunker,
                options,
                &remote_options(remote, src_open),
                sink,
            );
            (result, repo, None, dst_url, Some(Arc::clone(&meter)))
        }
        (None, Some(remote)) => {
            let source = src.open(src_open)?;
            let src_url = Some(source.url().to_string());
            let repo = global.open_repo()?;
            let chunker = repo.chunker();
            let result = sync_remote(
                &repo,
                remote,
                Direction::Push(source.as_ref()),
                &chunker,
                options,
                &remote_options(remote, dst_open),
                sink,
            );
            (result, repo, src_url, None, Some(Arc::clone(&meter)))
        }
        (Some(_), Some(_)) => {
            anyhow::bail!(
                "{} and {}: one side of a sync must be local",
                args.src.display(),
                args.dst.display()
            )
        }
    })
}

/// The snapshots that describe SRC and DST after this run: the latest recorded of each side
/// opened here (its scan recorded it, or found it unchanged), and for the remote side, the
/// latest of any other origin recorded since the command started. `None` for a side without
/// one (a dry run into a destination that does not exist yet), or when the repository cannot
/// say.
fn recorded_snapshots(
    repo: &crate::repo::Repository,
    src: Option<&str>,
    dst: Option<&str>,
) -> (Option<SnapshotId>, Option<SnapshotId>) {
    let Ok(snapshots) = repo.snapshots() else {
        return (None, None);
    };
    let started = started_ns();
    let latest = |side: Option<&str>, other: Option<&str>| {
        snapshots
            .iter()
            .rev()
            .find(|(_, r)| match side {
                Some(url) => r.origin == url,
                None => r.time_ns >= started && other.is_some_and(|o| r.origin != o),
            })
            .map(|(id, _)| *id)
    };
    (latest(src, dst), latest(dst, src))
}
