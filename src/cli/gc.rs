//! `musicfs gc [s3://…]`: prints what the repository's garbage collection (or a chunk
//! store's) removed and freed.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{exit, human, print_summary, GlobalArgs};
use crate::error::Error;
use crate::origin::OpenOptions;
use crate::repo::{gc, GcReport};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// A chunk store, s3://BUCKET/PREFIX, to collect instead of the repository: marks what no
    /// snapshot needs, and removes what a run at least --grace earlier marked
    #[arg(value_name = "STORE")]
    pub store: Option<PathBuf>,
    /// Print what would be removed; change nothing (and do not compact)
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// With a chunk store: how long a pack stays marked before a gc removes it, longer than
    /// any push takes (90m, 24h, 3d; 0 removes at once what was marked before) [default: 24h]
    #[arg(long, value_name = "DURATION", value_parser = super::store::duration_arg)]
    pub grace: Option<Duration>,
}

pub fn run(global: &GlobalArgs, args: &GcArgs) -> anyhow::Result<u8> {
    if let Some(arg) = &args.store {
        let Some(store) =
            super::store::open_store(global, arg.as_os_str(), &OpenOptions::default())?
        else {
            return Err(Error::InvalidInput(format!(
                "{}: not a chunk store (gc takes s3://BUCKET/PREFIX made one by musicfs init, or nothing for the repository)",
                arg.display()
            ))
            .into());
        };
        return super::store::gc(global, &store, args.grace, args.dry_run);
    }
    if args.grace.is_some() {
        return Err(Error::InvalidInput(
            "--grace applies to the gc of a chunk store (musicfs gc s3://BUCKET/PREFIX)".into(),
        )
        .into());
    }
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
         {} chunk location rows",
        removed("trees"),
        removed("contents"),
        removed("media"),
        removed("kept_chunks"),
        removed("files"),
        removed("chunk_contents") + removed("content_files"),
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
