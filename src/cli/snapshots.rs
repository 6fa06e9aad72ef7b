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

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time, by the proleptic Gregorian calendar.
fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
