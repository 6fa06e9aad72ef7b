use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::{exit, human, GlobalArgs};
use crate::chunk::FastCdc;
use crate::inspect::inspect;
use crate::report::print_json;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files to describe
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: &InspectArgs) -> anyhow::Result<u8> {
    let chunker = FastCdc::default();
    for path in &args.files {
        let report =
            inspect(path, &chunker).with_context(|| format!("inspecting {}", path.display()))?;
        if global.json {
            let mut value = serde_json::to_value(&report)?;
            value["type"] = json!("file");
            value["path"] = json!(path.to_string_lossy());
            print_json(&value);
            continue;
        }
        let chunks: usize = report.regions.iter().map(|r| r.chunks.len()).sum();
        println!(
            "{}: {}, {}, {} regions, {} chunks",
            path.display(),
            report.format,
            human(report.size),
            report.regions.len(),
            chunks
        );
        if global.quiet {
            continue;
        }
        for r in &report.regions {
            let ids: Vec<String> = r.chunks.iter().map(|c| c.id.short()).collect();
            println!(
                "  {:<8} {:>10} {:>10}  {}{}",
                r.kind,
                r.offset,
                human(r.len),
                ids.join(" "),
                r.transform.map(|t| format!("  ({t})")).unwrap_or_default()
            );
        }
        if let Some(h) = report.audio_hash {
            println!("  audio hash {h}");
        }
        if let Some(tags) = &report.tags {
            println!("  {}", serde_json::to_string(tags)?);
        }
    }
    if global.json {
        print_json(&json!({"type": "summary", "files": args.files.len()}));
    }
    Ok(exit::OK)
}
