use serde_json::json;

use super::{exit, print_summary, GlobalArgs};
use crate::repo::check;
use crate::report::Event;

pub fn run(global: &GlobalArgs) -> anyhow::Result<u8> {
    let location = global.location()?;
    let report = check(location.root())?;
    let sink = global.sink();
    let index = report.repository.join("index.redb").display().to_string();
    for problem in &report.problems {
        sink.event(&Event::Problem {
            path: index.clone(),
            message: problem.clone(),
            fault: None,
        });
    }
    let unlisted = report.problem_count - report.problems.len() as u64;
    if unlisted > 0 {
        sink.event(&Event::Problem {
            path: index.clone(),
            message: format!("and {unlisted} more problems"),
            fault: None,
        });
    }
    sink.finish();
    if global.json {
        print_summary(&json!({
            "repository": report.repository,
            "healthy": report.healthy,
            "problems": report.problem_count,
            "rows": report.rows,
            "free_pages_rebuilt": report.free_pages_rebuilt,
        }))?;
    } else if !global.quiet {
        let root = report.repository.display();
        if report.healthy {
            let rows = |table| report.rows.get(table).copied().unwrap_or(0);
            println!(
                "repository {root}: the index is whole: {} origins, {} snapshots, {} trees, \
                 {} chunk lists, {} scan entries{}",
                rows("origins"),
                rows("snapshots"),
                rows("trees"),
                rows("contents"),
                rows("scan"),
                if report.free_pages_rebuilt {
                    " (redb rebuilt its record of free pages)"
                } else {
                    ""
                }
            );
        } else {
            let n = report.problem_count;
            println!(
                "repository {root}: the index is damaged ({n} problem{}); run musicfs repair-index",
                if n == 1 { "" } else { "s" }
            );
        }
    }
    Ok(if report.healthy {
        exit::OK
    } else {
        exit::DIFFERENCES
    })
}
