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
                utc(secs),
                record.files,
                human(record.bytes),
                record.origin
            );
        }
    }
    Ok(exit::OK)
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
fn utc(secs: i64) -> String {
    crate::time::Civil::of_unix(secs).format(' ')
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_545_199), "2026-11-24 18:33:19");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }
}
