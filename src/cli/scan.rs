use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::filter_args::FilterArgs;
use super::{exit, human, note_run, print_summary, timing, ConnectArgs, GlobalArgs};
use crate::origin::{OpenOptions, OriginSpec};
use crate::scan::{scan, ScanOptions};

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The origin to index: a directory, or an SSH origin (host:path, user@host:path,
    /// ssh://user@host:port/path), whose files are read over SFTP
    #[arg(value_name = "ORIGIN")]
    pub origin: PathBuf,
    /// Read every file, even those whose size, times and inode are unchanged
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Don't cross file system boundaries in a local directory: a directory on which another
    /// file system is mounted is recorded as an empty directory (a musicfs mount is always
    /// left out)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(global: &GlobalArgs, args: &ScanArgs) -> anyhow::Result<u8> {
    let options = OpenOptions {
        filter: args.filter.filter()?,
        ..args.connect.open_options(args.one_file_system)
    };
    let origin = OriginSpec::parse(args.origin.as_os_str())?.open(&options)?;
    let repo = global.open_repo()?;
    let sink = global.sink();
    let summary = scan(
        &repo,
        origin.as_ref(),
        &repo.chunker(),
        ScanOptions {
            checksum: args.checksum,
            copy: None,
            alone: true,
            leave_staged: false,
        },
        sink.as_ref(),
    )
    .with_context(|| format!("scanning {}", args.origin.display()))?;
    sink.finish();
    note_run(format!(
        "{} files, {} read ({}), {} problems, snapshot {}",
        summary.files,
        summary.files_read,
        human(summary.bytes_read),
        summary.problems,
        summary.snapshot.short()
    ));
    if global.json {
        print_summary(&summary)?;
    } else if !global.quiet {
        println!(
            "scanned {}: {} files, {}; read {} files ({}), {} moved, {} problems; snapshot {}{}",
            summary.origin,
            summary.files,
            human(summary.bytes),
            summary.files_read,
            human(summary.bytes_read),
            summary.files_moved,
            summary.problems,
            summary.snapshot.short(),
            timing(summary.bytes_read)
        );
    }
    Ok(if summary.problems > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
