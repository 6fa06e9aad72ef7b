use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{exit, human, print_summary, GlobalArgs};
use crate::chunk::FastCdc;
use crate::origin::open_local;
use crate::sync::{sync, SyncOptions};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The source directory
    pub src: PathBuf,
    /// The destination directory (created if missing)
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
}

pub fn run(global: &GlobalArgs, args: &SyncArgs) -> anyhow::Result<u8> {
    let source = open_local(&args.src, false)?;
    let destination = open_local(&args.dst, true)?;
    let repo = global.open_repo()?;
    let sink = global.sink_listing(args.dry_run);
    let summary = sync(
        &repo,
        &source,
        &destination,
        &FastCdc::default(),
        SyncOptions {
            delete: args.delete,
            dry_run: args.dry_run,
            checksum: args.checksum,
        },
        sink.as_ref(),
    )
    .with_context(|| format!("syncing {} to {}", args.src.display(), args.dst.display()))?;
    sink.finish();
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
