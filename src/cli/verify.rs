use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{exit, human, note_run, print_summary, timing, ConnectArgs, GlobalArgs};
use crate::origin::OriginSpec;
use crate::report::{Event, Sink};
use crate::verify::{verify, verify_and_repair, RepairFrom, VerifySummary};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A scanned or synced origin to check against its last snapshot: a directory, or an SSH
    /// origin (host:path, user@host:path, ssh://user@host:port/path), read over SFTP
    #[arg(value_name = "ORIGIN")]
    pub origin: Option<PathBuf>,
    /// Rebuild each damaged file of ORIGIN from good chunks: the file's undamaged chunks,
    /// then the same path in this origin (a mirror: a directory, an SSH origin or a
    /// configured name), any location the repository records, and its history; each
    /// rebuilt file is read back whole before it replaces the damaged one. Edited and
    /// missing files are left alone
    #[arg(long, value_name = "FROM", requires = "origin")]
    pub repair_from: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

pub fn run(global: &GlobalArgs, args: &VerifyArgs) -> anyhow::Result<u8> {
    let options = args.connect.open_options(false);
    let summary = match (&args.origin, &args.repair_from) {
        (Some(origin), Some(from)) => {
            // Both read first (a bad argument is refused before anything is opened), then
            // the origin repaired from opened: one that cannot be reached stops the command
            // before the target is touched.
            let target = OriginSpec::parse(origin.as_os_str())?;
            let from = OriginSpec::parse(from.as_os_str()).context("--repair-from")?;
            let from = from.open(&options).context("--repair-from")?;
            let target = target.open_writable(&options)?;
            let repo = global.open_repo()?;
            let sink = global.sink();
            let repair = RepairFrom {
                origin: from.as_ref(),
                options: options.clone(),
            };
            let summary = verify_and_repair(
                &repo,
                target.as_ref(),
                &repair,
                &repo.chunker(),
                &PerFile(&*sink),
            )?;
            sink.finish();
            summary
        }
        (origin, _) => {
            let targets = match origin {
                Some(origin) => vec![OriginSpec::parse(origin.as_os_str())?.open(&options)?],
                None => Vec::new(),
            };
            let targets: Vec<&dyn crate::origin::Origin> =
                targets.iter().map(AsRef::as_ref).collect();
            let repo = global.open_repo()?;
            let sink = global.sink();
            let summary = verify(&repo, &targets, &repo.chunker(), &PerFile(sink.as_ref()))?;
            sink.finish();
            summary
        }
    };
    note_run(format!(
        "{} files checked, {} edited, {} missing, {} unreadable, {} damaged, {} repaired",
        summary.files_checked,
        summary.edited,
        summary.missing,
        summary.unreadable,
        summary.damaged,
        summary.repaired
    ));
    if global.json {
        print_summary(&serde_json::json!({
            "objects_checked": summary.objects_checked,
            "files": summary.files_checked,
            "bytes": summary.bytes_checked,
            "ok": summary.ok,
            "edited": summary.edited,
            "missing": summary.missing,
            "unreadable": summary.unreadable,
            "damaged": summary.damaged,
            "repaired": summary.repaired,
            "unrepaired": summary.unrepaired,
            // What verify could not prove: every file it names, less those repaired.
            "problems": summary.missing + summary.unreadable
                + summary.damaged.saturating_sub(summary.repaired),
        }))?;
    } else if !global.quiet {
        println!("{}", text(&summary, args.repair_from.is_some()));
    }
    Ok(if summary.damaged > summary.repaired {
        exit::DIFFERENCES
    } else if summary.unreadable > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// The summary line; with the repair counts when a repair was asked for.
fn text(summary: &VerifySummary, repairing: bool) -> String {
    let mut line = format!(
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
    if repairing {
        line.push_str(&format!(
            ", {} repaired, {} unrepaired",
            summary.repaired, summary.unrepaired
        ));
    }
    line.push_str(&timing(summary.bytes_checked));
    line
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
