use serde_json::json;

use super::{exit, human, GlobalArgs};
use crate::report::print_json;

pub fn run(global: &GlobalArgs) -> anyhow::Result<u8> {
    let repo = global.open_repo()?;
    for (id, record) in repo.snapshots()? {
        let secs = record.time_ns.div_euclid(1_000_000_000);
        if global.json {
            print_json(&json!({
                "type": "snapshot",
                "id": id.to_hex(),
                "origin": record.origin,
                "time": secs,
                "root": record.root.to_hex(),
                "files": record.files,
                "bytes": record.bytes,
            }));
        } else {
            println!(
                "{}  {}  {:>7} files  {:>10}  {}",
                id.short(),
                secs,
                record.files,
                human(record.bytes),
                record.origin
            );
        }
    }
    Ok(exit::OK)
}
