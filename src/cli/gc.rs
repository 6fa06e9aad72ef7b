//! `musicfs gc`: prints what the repository's garbage collection removed and freed.

use clap::Args;

use super::{exit, human, print_summary, GlobalArgs};
use crate::repo::{gc, GcReport};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be removed; change nothing (and do not compact)
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<u8> {
    let location = global.location()?;
    let report = gc(location.root(), args.dry_run)?;
    if global.json {
        print_summary(&report)?;
    } else if !global.quiet {
        for line in text(&report) {
            println!("{line}");
        }
    }
    Ok(exit::OK)
}

/// What a gc did, for people.
fn text(report: &GcReport) -> Vec<String> {
    let root = report.repository.display();
    let removed = |table: &str| report.removed.get(table).copied().unwrap_or(0);
    let rows = format!(
        "{} trees, {} chunk lists, {} media records, {} kept history chunks, {} file rows and \
         {} chunk locations",
        removed("trees"),
        removed("contents"),
        removed("media"),
        removed("kept_chunks"),
        removed("files"),
        removed("chunk_locations"),
    );
    if report.dry_run {
        return vec![
            format!(
                "repository {root}: {} snapshots kept; would remove {rows}",
                report.snapshots
            ),
            format!(
                "would remove {} history packs and rewrite {}, freeing {}; compacting index.redb \
                 ({} now) would free more; nothing changed (dry run)",
                report.packs_removed,
                report.packs_rewritten,
                human(report.pack_bytes_freed),
                human(report.index_bytes_before)
            ),
        ];
    }
    vec![
        format!(
            "repository {root}: {} snapshots kept; removed {rows}",
            report.snapshots
        ),
        format!(
            "{} history packs removed, {} rewritten",
            report.packs_removed, report.packs_rewritten
        ),
        format!(
            "index.redb {} -> {}; repository {} -> {} ({} freed)",
            human(report.index_bytes_before),
            human(report.index_bytes_after),
            human(report.bytes_before),
            human(report.bytes_after),
            human(report.bytes_freed)
        ),
    ]
}
