use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::{exit, human, print_summary, GlobalArgs};
use crate::chunk::FastCdc;
use crate::origin::ssh::SshOptions;
use crate::origin::{LocalOrigin, OriginSpec, Policy, Retrying};
use crate::remote::{sync_remote, Direction, RemoteOptions};
use crate::sync::{sync, SyncOptions};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The source: a directory, or an SSH origin (host:path, user@host:path,
    /// ssh://user@host:port/path)
    pub src: PathBuf,
    /// The destination (created if missing): a directory, or an SSH origin
    pub dst: PathBuf,
    /// Remove files and directories absent from SRC
    #[arg(long)]
    pub delete: bool,
    /// Print the plan and the bytes it would move; write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Read every source file, even those whose metadata is unchanged
    #[arg(long)]
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
    /// Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet
    /// (a changed key is always refused)
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// Use SFTP even when the remote host has musicfs
    #[arg(long)]
    pub sftp: bool,
    /// The musicfs command on the remote host, run by its shell [default: musicfs on the
    /// remote PATH, else SFTP]
    #[arg(long, value_name = "COMMAND")]
    pub remote_musicfs: Option<String>,
    /// Retries after a dropped connection or a timeout, with exponential backoff
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,
    /// Seconds allowed to connect, and to wait on a silent remote
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
}

pub fn run(global: &GlobalArgs, args: &SyncArgs) -> anyhow::Result<u8> {
    let src = OriginSpec::parse(args.src.as_os_str())?;
    let dst = OriginSpec::parse(args.dst.as_os_str())?;
    let options = SyncOptions {
        delete: args.delete,
        dry_run: args.dry_run,
        checksum: args.checksum,
        max_delete: args.max_delete,
    };
    let remote_options = || RemoteOptions {
        ssh: SshOptions {
            accept_new_host_key: args.accept_new_host_key,
            connect_timeout: Duration::from_secs(args.timeout.max(1)),
            io_timeout: Duration::from_secs(args.timeout.max(1)),
            ..SshOptions::from_env()
        },
        force_sftp: args.sftp,
        remote_musicfs: args.remote_musicfs.clone(),
        retries: args.retries,
    };
    let sink = global.sink_listing(args.dry_run);
    let chunker = FastCdc::default();
    let result = match (&src, &dst) {
        (OriginSpec::Local(src), OriginSpec::Local(dst)) => {
            let source = Retrying::new(
                LocalOrigin::open(src, false)?.one_file_system(args.one_file_system),
                Policy::READS,
            );
            let destination = Retrying::new(
                LocalOrigin::open(dst, true)?.one_file_system(args.one_file_system),
                Policy::READS,
            );
            let repo = global.open_repo()?;
            sync(
                &repo,
                &source,
                &destination,
                &chunker,
                options,
                sink.as_ref(),
            )
        }
        (OriginSpec::Ssh(remote), OriginSpec::Local(dst)) => {
            let destination = LocalOrigin::open(dst, true)?.one_file_system(args.one_file_system);
            let repo = global.open_repo()?;
            sync_remote(
                &repo,
                remote,
                Direction::Pull(&destination),
                &chunker,
                options,
                &remote_options(),
                sink.as_ref(),
            )
        }
        (OriginSpec::Local(src), OriginSpec::Ssh(remote)) => {
            let source = LocalOrigin::open(src, false)?.one_file_system(args.one_file_system);
            let repo = global.open_repo()?;
            sync_remote(
                &repo,
                remote,
                Direction::Push(&source),
                &chunker,
                options,
                &remote_options(),
                sink.as_ref(),
            )
        }
        (OriginSpec::Ssh(_), OriginSpec::Ssh(_)) => {
            anyhow::bail!(
                "{} and {}: one side of a sync must be local",
                args.src.display(),
                args.dst.display()
            )
        }
    };
    sink.finish();
    let summary = result
        .with_context(|| format!("syncing {} to {}", args.src.display(), args.dst.display()))?;
    if global.json {
        print_summary(&summary)?;
    } else if !global.quiet {
        println!(
            "{}{} files ({}): {} changed, {} deleted; {} from source in {} chunks, {} reused from destination{}",
            if summary.dry_run { "dry run: " } else { "" },
            summary.files_total,
            human(summary.bytes_total),
            summary.files_changed,
            summary.files_deleted,
            human(summary.bytes_transferred),
            summary.chunks_transferred,
            human(summary.bytes_reused),
            if summary.errors > 0 {
                format!("; {} errors", summary.errors)
            } else {
                String::new()
            }
        );
    }
    Ok(if summary.errors > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
