use super::{exit, print_summary, GlobalArgs};
use crate::repo::{repair_index, RepairReport};

pub fn run(global: &GlobalArgs) -> anyhow::Result<u8> {
    let location = global.location()?;
    let report = repair_index(location.root())?;
    if global.json {
        print_summary(&report)?;
    } else if !global.quiet {
        for line in text(&report) {
            println!("{line}");
        }
    }
    Ok(exit::OK)
}

/// What a repair did, for people.
fn text(report: &RepairReport) -> Vec<String> {
    let root = report.repository.display();
    let mut lines = Vec::new();
    match report.index_was {
        "healthy" => {
            lines.push(format!(
                "repository {root}: the index is whole; nothing to repair"
            ));
            return lines;
        }
        "damaged" => {}
        lost => lines.push(format!(
            "repository {root}: the index was {lost}; started a new, empty index: every snapshot \
             is gone, and the next scan of each origin reads all its files again"
        )),
    }
    if let Some(copy) = &report.damaged_copy {
        lines.push(format!(
            "repository {root}: the old index is kept as {}",
            copy.display()
        ));
    }
    if report.index_was == "damaged" {
        let kept: Vec<String> = [
            ("origins", "origins"),
            ("snapshots", "snapshots"),
            ("trees", "trees"),
            ("contents", "chunk lists"),
            ("media", "media records"),
            ("scan", "scan entries"),
        ]
        .iter()
        .map(|(table, name)| {
            let kept = report.kept.get(table).copied().unwrap_or(0);
            match report.found.get(table) {
                Some(found) => format!("{kept} of {found} {name}"),
                None => format!("{kept} {name}"),
            }
        })
        .collect();
        lines.push(format!("kept {}", kept.join(", ")));
        lines.push(
            "the next scan of each origin reads again the files whose scan state was lost; \
             snapshots that were not kept are gone"
                .into(),
        );
    }
    lines
}
