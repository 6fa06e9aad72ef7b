use std::path::PathBuf;

use clap::Args;

use super::{exit, human, print_summary, ConnectArgs, GlobalArgs};
use crate::origin::OriginSpec;
use crate::verify::verify;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A scanned or synced origin to check against its last snapshot: a directory, or an SSH
    /// origin (host:path, user@host:path, ssh://user@host:port/path), read over SFTP
    #[arg(value_name = "ORIGIN")]
    pub origin: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<u8> {
    let targets = match &args.origin {
        Some(origin) => {
            vec![OriginSpec::parse(origin.as_os_str())?.open(&args.connect.open_options(false))?]
        }
        None => Vec::new(),
    };
    let targets: Vec<&dyn crate::origin::Origin> = targets.iter().map(AsRef::as_ref).collect();
    let repo = global.open_repo()?;
    let sink = global.sink();
    let summary = verify(&repo, &targets, &repo.chunker(), sink.as_ref())?;
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
