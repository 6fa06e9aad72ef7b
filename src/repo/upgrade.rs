//! Reading what older formats wrote: the scan-state rows of formats 2 and 3, and the
//! in-place upgrade of a repository to this build's format.
//!
//! Formats 2 and 3 stored a file's change key as three plain fields (ctime, device, inode;
//! an inode of 0 meant "the transport has none"); format 4 stores a
//! [`crate::origin::ChangeKey`]. Every other table is unchanged from format 3, and format 3
//! is format 2 plus the (then empty) history tables. Format 5 replaces `chunk_locations` (a
//! row per chunk, origin and file) by `chunk_contents` and `content_files` (`locations.rs`),
//! derived from the chunk lists and the scan state. The upgrade rewrites every scan-state
//! row and builds the new location rows in the transaction that writes the new version, so a
//! repository is at one format or the other, never half of each.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::locations;
use super::tables::{CHUNK_LOCS, SCAN};
use super::ScanEntry;
use crate::id::ContentId;
use crate::origin::ChangeKey;
use crate::snapshot::encode;

/// A scan-state row as formats 2 and 3 wrote it.
#[derive(Debug, Deserialize, Serialize)]
struct ScanEntryV3 {
    file_id: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    dev: u64,
    ino: u64,
    mode: u32,
    content: ContentId,
}

impl From<ScanEntryV3> for ScanEntry {
    /// An inode number means a POSIX file system recorded the row; 0 was the mark of a
    /// transport without one (SFTP), whose ctime and device were 0 too.
    fn from(old: ScanEntryV3) -> Self {
        let change = if old.ino != 0 {
            ChangeKey::Posix {
                dev: old.dev,
                ino: old.ino,
                ctime_ns: old.ctime_ns,
            }
        } else {
            ChangeKey::None
        };
        ScanEntry {
            file_id: old.file_id,
            size: old.size,
            mtime_ns: old.mtime_ns,
            change,
            mode: old.mode,
            content: old.content,
        }
    }
}

/// Decodes `bytes` as a scan-state row of `format` (`None`: the format is not known, as in
/// an index whose `meta` table was lost; then only a row that is a whole format-4 encoding
/// is taken). `None` when the bytes are not such a row.
pub(super) fn decode_scan_entry(bytes: &[u8], format: Option<u64>) -> Option<ScanEntry> {
    fn whole<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
        match postcard::take_from_bytes(bytes) {
            Ok((value, [])) => Some(value),
            _ => None,
        }
    }
    match format {
        Some(2 | 3) => whole::<ScanEntryV3>(bytes).map(ScanEntry::from),
        _ => whole::<ScanEntry>(bytes),
    }
}

/// Rewrites every scan-state row of a format-2 or format-3 index as format 4 writes it,
/// inside `txn` (which also writes the new version). A row that does not decode is dropped:
/// the next scan of its origin reads that file again, as if it were new.
pub(super) fn scan_state_to_v4(txn: &WriteTransaction, from: u64) -> Result<u64, redb::Error> {
    let mut table = txn.open_table(SCAN)?;
    // (origin, path, the row as format 4 writes it; `None`: undecodable, dropped).
    type Row = (u64, Vec<u8>, Option<Vec<u8>>);
    let mut rows: Vec<Row> = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        let (origin, path) = key.value();
        let entry = decode_scan_entry(value.value(), Some(from));
        rows.push((origin, path.to_vec(), entry.map(|e| encode(&e))));
    }
    let mut rewritten = 0;
    for (origin, path, bytes) in rows {
        match bytes {
            Some(bytes) => {
                table.insert((origin, path.as_slice()), bytes.as_slice())?;
                rewritten += 1;
            }
            None => {
                table.remove((origin, path.as_slice()))?;
            }
        }
    }
    Ok(rewritten)
}

/// Replaces format 4's `chunk_locations` by format 5's location rows, inside `txn` (which also
/// writes the new version): they are built from the chunk lists and the scan state (already
/// in format 4's encoding), and the old table is dropped. Returns the chunk lists and files
/// recorded.
pub(super) fn locations_to_v5(txn: &WriteTransaction) -> Result<(u64, u64), redb::Error> {
    let rows = locations::rebuild(txn)?;
    txn.delete_table(CHUNK_LOCS)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn old(ino: u64) -> ScanEntryV3 {
        ScanEntryV3 {
            file_id: 9,
            size: 1000,
            mtime_ns: 1_704_067_200_000_000_000,
            ctime_ns: if ino == 0 {
                0
            } else {
                1_704_067_201_000_000_123
            },
            dev: if ino == 0 { 0 } else { 64769 },
            ino,
            mode: 0o644,
            content: ContentId::from_stored([7; 32]),
        }
    }

    #[test]
    fn format_3_rows_become_posix_or_keyless_change_keys() {
        let posix = decode_scan_entry(&encode(&old(4242)), Some(3)).expect("posix row");
        assert_eq!(
            posix.change,
            ChangeKey::Posix {
                dev: 64769,
                ino: 4242,
                ctime_ns: 1_704_067_201_000_000_123
            }
        );
        assert_eq!(
            (posix.file_id, posix.size, posix.mode),
            (9, 1000, 0o644),
            "the rest is carried over"
        );
        let keyless = decode_scan_entry(&encode(&old(0)), Some(2)).expect("sftp row");
        assert_eq!(keyless.change, ChangeKey::None);
    }

    #[test]
    fn rows_of_one_format_are_not_taken_for_the_other() {
        // A format-3 row read as format 4 (its ctime where the key's variant goes) and a
        // format-4 row read as format 3 (too short) are both refused.
        assert!(decode_scan_entry(&encode(&old(4242)), None).is_none());
        assert!(decode_scan_entry(&encode(&old(0)), None).is_none());
        let new = ScanEntry::from(old(4242));
        assert_eq!(decode_scan_entry(&encode(&new), None), Some(new.clone()));
        assert_eq!(decode_scan_entry(&encode(&new), Some(4)), Some(new.clone()));
        assert!(decode_scan_entry(&encode(&new), Some(3)).is_none());
    }
}
