use std::path::PathBuf;

use clap::Args;

use super::{exit, human, print_summary, GlobalArgs};
use crate::chunk::FastCdc;
use crate::origin::open_local;
use crate::verify::verify;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A scanned or synced directory to check against its last snapshot
    pub dir: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<u8> {
    let targets = match &args.dir {
        Some(dir) => vec![open_local(dir, false)?],
        None => Vec::new(),
    };
    let repo = global.open_repo()?;
    let sink = global.sink();
    let summary = verify(&repo, &targets, &FastCdc::default(), sink.as_ref())?;
    sink.finish();
    if global.json {
        print_summary(&summary)?;
    } else if !global.quiet {
        println!(
            "verified {} objects and {} files ({}): {} ok, {} edited, {} missing, {} unreadable, {} damaged",
            summary.objects_checked,
            summary.files_checked,
            human(summary.bytes_checked),
            summary.ok,
            summary.edited,
            summary.missing,
            summary.unreadable,
            summary.damaged
        );
    }
    Ok(if summary.damaged > 0 {
        exit::DIFFERENCES
    } else if summary.unreadable > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
