use std::path::PathBuf;

use clap::Args;

use super::{exit, human, note_run, print_summary, timing, ConnectArgs, GlobalArgs};
use crate::origin::OriginSpec;
use crate::report::{Event, Sink};
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
    let summary = verify(&repo, &targets, &repo.chunker(), &PerFile(sink.as_ref()))?;
    sink.finish();
    note_run(format!(
        "{} files checked, {} edited, {} missing, {} unreadable, {} damaged",
        summary.files_checked, summary.edited, summary.missing, summary.unreadable, summary.damaged
    ));
    if global.json {
        print_summary(&summary)?;
    } else if !global.quiet {
        println!(
            "verified {} objects and {} files ({}): {} ok, {} edited, {} missing, {} unreadable, {} damaged{}",
            summary.objects_checked,
            summary.files_checked,
            human(summary.bytes_checked),
            summary.ok,
            summary.edited,
            summary.missing,
            summary.unreadable,
            summary.damaged,
            timing(summary.bytes_checked)
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

/// Verification advances once per file it checks (ok or not): the progress display counts
/// each advance as a file done.
struct PerFile<'a>(&'a dyn Sink);

impl Sink for PerFile<'_> {
    fn event(&self, event: &Event) {
        self.0.event(event)
    }
    fn phase(&self, name: &str, files: u64, bytes: u64) {
        self.0.phase(name, files, bytes)
    }
    fn advance(&self, bytes: u64) {
        self.0.advance(bytes);
        self.0.files_done(1);
    }
    fn finish(&self) {
        self.0.finish()
    }
}
