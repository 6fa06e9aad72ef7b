//! Where a chunk's bytes can be read, recorded per content (format 5).
//!
//! A file's chunk list (`contents`) already says at which offset of the file each of its
//! chunks lies. The index adds two small maps to find the files: `chunk_contents`, which chunk
//! lists hold a chunk, written once when a chunk list is first stored, whatever the number of
//! files and origins that hold it; and `content_files`, which files of an origin hold a chunk
//! list, one row per file. Format 4 kept one row per chunk, origin and file instead
//! (`chunk_locations`, 60 bytes each, about four per file and origin), each on a leaf of its
//! own since its key is a hash: most of the index's writes in an initial sync.
//!
//! Both maps are keyed by the first eight bytes of the ids (a row is 16 or 24 bytes). Two ids
//! can share them, so an answer is never taken from a row alone: the file's scan entry names
//! its whole content id, and that chunk list, checked against its id, must hold the chunk.
//! A row that answers nothing is only a wasted lookup. This module must never trust a prefix.

use std::collections::{HashMap, HashSet};

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::tables::*;
use super::{ChunkLocation, OriginId, ScanEntry};
use crate::id::{ChunkId, ContentId};
use crate::snapshot::{decode, ChunkList};

/// The key prefix of an id: its first eight bytes.
pub(super) fn prefix(id: &[u8; 32]) -> u64 {
    let mut first = [0; 8];
    first.copy_from_slice(&id[..8]);
    u64::from_be_bytes(first)
}

/// The `chunk_contents` rows of the chunk list `content`: one per distinct chunk.
fn content_rows<'l>(
    content: &ContentId,
    list: &'l ChunkList,
) -> impl Iterator<Item = (u64, u64)> + 'l {
    let holder = prefix(content.as_bytes());
    let mut seen = HashSet::with_capacity(list.chunks.len());
    list.chunks
        .iter()
        .map(move |chunk| (prefix(chunk.id.as_bytes()), holder))
        .filter(move |key| seen.insert(key.0))
}

/// Records which chunks the newly stored chunk list `content` holds, one row per distinct
/// chunk.
pub(super) fn add_content(
    table: &mut Table<'_, (u64, u64), ()>,
    content: &ContentId,
    list: &ChunkList,
) -> Result<(), redb::StorageError> {
    for key in content_rows(content, list) {
        table.insert(key, ())?;
    }
    Ok(())
}

/// The `content_files` key of file `file_id` of `origin` holding `content`.
pub(super) fn file_key(content: &ContentId, origin: OriginId, file_id: u64) -> (u64, u64, u64) {
    (prefix(content.as_bytes()), origin, file_id)
}

/// Location rows a bulk writer gathers through one transaction, to be appended to
/// `staged_locations` when it commits instead of inserted one by one.
///
/// Both maps are keyed by hashes, so rows inserted as files come land on random leaves, and
/// each commit of a large scan rewrote most of the tables' pages. Staged, a commit appends one
/// value; [`merge_staged`] later writes every waiting row in key order, each leaf once. The
/// encoding is this module's: a tag byte, then the key's numbers, big-endian.
#[derive(Debug, Default)]
pub(super) struct Staged {
    bytes: Vec<u8>,
}

/// A `chunk_contents` row to add: 16 bytes of key follow.
const ADD_CHUNK: u8 = 1;
/// A `content_files` row to add: 24 bytes of key follow.
const ADD_FILE: u8 = 2;
/// A `content_files` row to remove: 24 bytes of key follow.
const REMOVE_FILE: u8 = 3;

/// Staged rows merged in one pass of [`merge_staged`], at most (about 0.5 MB held).
const PASS_ROWS: u64 = 1 << 14;

impl Staged {
    /// Stages what [`add_content`] would insert.
    pub(super) fn add_content(&mut self, content: &ContentId, list: &ChunkList) {
        for (chunk, holder) in content_rows(content, list) {
            self.bytes.push(ADD_CHUNK);
            self.bytes.extend_from_slice(&chunk.to_be_bytes());
            self.bytes.extend_from_slice(&holder.to_be_bytes());
        }
    }

    /// Stages the insertion (`add`) or removal of the `content_files` row `key`.
    pub(super) fn set_file(&mut self, key: (u64, u64, u64), add: bool) {
        self.bytes.push(if add { ADD_FILE } else { REMOVE_FILE });
        for n in [key.0, key.1, key.2] {
            self.bytes.extend_from_slice(&n.to_be_bytes());
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Appends the rows gathered to `staged_locations`, in `txn`, after every value there.
    pub(super) fn append(&self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        let mut table = txn.open_table(STAGED)?;
        let next = table.last()?.map_or(0, |(k, _)| k.value()) + 1;
        table.insert(next, self.bytes.as_slice())?;
        Ok(())
    }
}

/// One staged row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    AddChunk((u64, u64)),
    SetFile((u64, u64, u64), bool),
}

impl Op {
    /// The first number of its key, which [`merge_staged`]'s passes split on.
    fn lead(&self) -> u64 {
        match self {
            Op::AddChunk(k) => k.0,
            Op::SetFile(k, _) => k.0,
        }
    }
}

/// The rows of one staged value, in the order they were staged. A value that ends inside a
/// row, or holds an unknown tag, gives the rows before it (a damaged value loses only rows a
/// lookup would have used, which `check` reports).
fn ops(value: &[u8]) -> impl Iterator<Item = Op> + '_ {
    let mut rest = value;
    std::iter::from_fn(move || {
        let (&tag, body) = rest.split_first()?;
        let n = |i: usize| -> Option<u64> {
            Some(u64::from_be_bytes(
                body.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let (op, len) = match tag {
            ADD_CHUNK => (Op::AddChunk((n(0)?, n(1)?)), 16),
            ADD_FILE | REMOVE_FILE => (Op::SetFile((n(0)?, n(1)?, n(2)?), tag == ADD_FILE), 24),
            _ => return None,
        };
        rest = &body[len..];
        Some(op)
    })
}

/// Writes every row waiting in `staged_locations` into `chunk_contents` and `content_files`,
/// inside `txn`, and empties it. The rows go in key order, a range of keys per pass over the
/// staged values (at most [`PASS_ROWS`] rows held at once); rows of one key keep the order
/// they were staged in, so an addition and a removal of the same row end as the last one
/// said. Returns the rows merged (0, reading one page, when nothing waits).
///
/// A writer that adds or removes location rows without staging them merges first, in its own
/// transaction: rows staged earlier then never land after its changes.
pub(super) fn merge_staged(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    let staged = txn.open_table(STAGED)?;
    if staged.is_empty()? {
        return Ok(0);
    }
    let mut total = 0u64;
    for item in staged.iter()? {
        total += ops(item?.1.value()).count() as u64;
    }
    let passes = total.div_ceil(PASS_ROWS).max(1);
    // Pass `p` takes the rows whose lead lies in [bound(p), bound(p + 1)).
    let bound = |p: u64| -> u128 { (u128::from(p) << 64) / u128::from(passes) };
    let mut chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    let mut content_files = txn.open_table(CONTENT_FILES)?;
    let mut chunks: Vec<(u64, u64)> = Vec::new();
    let mut files: Vec<((u64, u64, u64), bool)> = Vec::new();
    for p in 0..passes {
        let (low, high) = (bound(p), bound(p + 1));
        for item in staged.iter()? {
            for op in ops(item?.1.value()) {
                if !(low..high).contains(&u128::from(op.lead())) {
                    continue;
                }
                match op {
                    Op::AddChunk(key) => chunks.push(key),
                    Op::SetFile(key, add) => files.push((key, add)),
                }
            }
        }
        chunks.sort_unstable();
        chunks.dedup();
        for key in chunks.drain(..) {
            chunk_contents.insert(key, ())?;
        }
        // Stable: the rows of one key stay in the order they were staged.
        files.sort_by_key(|(key, _)| *key);
        for (key, add) in files.drain(..) {
            if add {
                content_files.insert(key, ())?;
            } else {
                content_files.remove(key)?;
            }
        }
    }
    drop(staged);
    txn.delete_table(STAGED)?;
    Ok(total)
}

/// What the rows waiting in `staged_locations` will do once merged: the `chunk_contents` rows
/// they add, and for each `content_files` row they touch, whether it will be there (for
/// `check`, which takes them as written).
#[allow(clippy::type_complexity)]
fn staged_rows(
    txn: &redb::ReadTransaction,
) -> Result<(HashSet<(u64, u64)>, HashMap<(u64, u64, u64), bool>), redb::Error> {
    let mut chunks = HashSet::new();
    let mut files = HashMap::new();
    let staged = match txn.open_table(STAGED) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((chunks, files)),
        Err(e) => return Err(e.into()),
    };
    for item in staged.iter()? {
        for op in ops(item?.1.value()) {
            match op {
                Op::AddChunk(key) => {
                    chunks.insert(key);
                }
                Op::SetFile(key, add) => {
                    files.insert(key, add);
                }
            }
        }
    }
    Ok((chunks, files))
}

/// The tables a lookup reads, from one transaction.
pub(super) struct Finder<CC, CF, F, S, C> {
    pub chunk_contents: CC,
    pub content_files: CF,
    pub files: F,
    pub scan: S,
    pub contents: C,
}

impl<CC, CF, F, S, C> Finder<CC, CF, F, S, C>
where
    CC: ReadableTable<(u64, u64), ()>,
    CF: ReadableTable<(u64, u64, u64), ()>,
    F: ReadableTable<u64, (u64, &'static [u8])>,
    S: ReadableTable<(u64, &'static [u8]), &'static [u8]>,
    C: ReadableTable<&'static [u8; 32], &'static [u8]>,
{
    /// Where `chunk` can be read within `origin`: one location per file that holds it (its
    /// first occurrence there), or only the first found when `first`.
    pub fn find(
        &self,
        chunk: &ChunkId,
        origin: OriginId,
        first: bool,
    ) -> Result<Vec<ChunkLocation>, redb::StorageError> {
        let mut out = Vec::new();
        let chunk_key = prefix(chunk.as_bytes());
        // Chunk lists read by this lookup, by id (a chunk is in few of them).
        let mut lists: Vec<(ContentId, Option<ChunkList>)> = Vec::new();
        for holder in self
            .chunk_contents
            .range((chunk_key, 0)..=(chunk_key, u64::MAX))?
        {
            let (key, _) = holder?;
            let (_, content_key) = key.value();
            for row in self
                .content_files
                .range((content_key, origin, 0)..=(content_key, origin, u64::MAX))?
            {
                let (key, _) = row?;
                let (_, _, file_id) = key.value();
                let Some(file) = self.files.get(file_id)? else {
                    continue;
                };
                let (file_origin, path) = file.value();
                if file_origin != origin {
                    continue;
                }
                let Some(entry) = self.scan.get((origin, path))? else {
                    continue;
                };
                let Some(entry) = decode::<ScanEntry>(entry.value()) else {
                    continue;
                };
                if entry.file_id != file_id || prefix(entry.content.as_bytes()) != content_key {
                    continue;
                }
                let slot = match lists.iter().position(|(id, _)| *id == entry.content) {
                    Some(i) => i,
                    None => {
                        let list = self
                            .contents
                            .get(entry.content.as_bytes())?
                            .and_then(|v| decode::<ChunkList>(v.value()))
                            .filter(|l| l.content_id() == entry.content);
                        lists.push((entry.content, list));
                        lists.len() - 1
                    }
                };
                let Some(list) = &lists[slot].1 else {
                    continue;
                };
                if let Some((offset, c)) = list.with_offsets().find(|(_, c)| c.id == *chunk) {
                    out.push(ChunkLocation {
                        path: path.to_vec(),
                        offset,
                        len: c.len,
                    });
                    if first {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Fills `chunk_contents` from every stored chunk list and `content_files` from every scan
/// entry, inside `txn` (an upgrade from format 4 or older, whose `chunk_locations` the caller
/// drops in the same transaction). A chunk list or scan entry that does not decode adds no
/// row. Returns the rows written to each.
pub(super) fn rebuild(txn: &WriteTransaction) -> Result<(u64, u64), redb::Error> {
    let contents = txn.open_table(CONTENTS)?;
    let mut chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    let mut lists = 0;
    for item in contents.iter()? {
        let (key, value) = item?;
        let id = ContentId::from_stored(*key.value());
        if let Some(list) = decode::<ChunkList>(value.value()) {
            add_content(&mut chunk_contents, &id, &list)?;
            lists += 1;
        }
    }
    let scan = txn.open_table(SCAN)?;
    let mut content_files = txn.open_table(CONTENT_FILES)?;
    let mut files = 0;
    for item in scan.iter()? {
        let (key, value) = item?;
        let (origin, _) = key.value();
        if let Some(entry) = decode::<ScanEntry>(value.value()) {
            content_files.insert(file_key(&entry.content, origin, entry.file_id), ())?;
            files += 1;
        }
    }
    Ok((lists, files))
}

/// What `check` finds wrong with the location maps: a chunk list with a chunk missing from
/// `chunk_contents`, a scan entry without its `content_files` row (either would hide
/// chunks that are there), and `content_files` rows naming no file of their origin.
pub(super) fn check(
    txn: &redb::ReadTransaction,
    problem: &mut dyn FnMut(String),
) -> Result<(), redb::Error> {
    // Rows staged and not merged yet (a bulk writer under way, or one that stopped) count as
    // written: the next writer merges them.
    let (staged_chunks, staged_files) = staged_rows(txn)?;
    let contents = txn.open_table(CONTENTS)?;
    let chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    for item in contents.iter()? {
        let (key, value) = item?;
        let id = ContentId::from_stored(*key.value());
        let Some(list) = decode::<ChunkList>(value.value()) else {
            continue;
        };
        let holder = prefix(key.value());
        for chunk in &list.chunks {
            let row = (prefix(chunk.id.as_bytes()), holder);
            if !staged_chunks.contains(&row) && chunk_contents.get(row)?.is_none() {
                problem(format!(
                    "chunk {} of chunk list {} is not in chunk_contents",
                    chunk.id.short(),
                    id.short()
                ));
                break;
            }
        }
    }
    let scan = txn.open_table(SCAN)?;
    let content_files = txn.open_table(CONTENT_FILES)?;
    for item in scan.iter()? {
        let (key, value) = item?;
        let (origin, path) = key.value();
        let Some(entry) = decode::<ScanEntry>(value.value()) else {
            continue;
        };
        let row = file_key(&entry.content, origin, entry.file_id);
        let present = match staged_files.get(&row) {
            Some(&add) => add,
            None => content_files.get(row)?.is_some(),
        };
        if !present {
            problem(format!(
                "the chunk locations of {} (origin {origin}) are not recorded",
                String::from_utf8_lossy(path)
            ));
        }
    }
    let files = txn.open_table(FILES)?;
    let mut rows = Vec::new();
    for item in content_files.iter()? {
        let (key, _) = item?;
        // A row a staged row touches is counted below, as it will be.
        if !staged_files.contains_key(&key.value()) {
            rows.push(key.value());
        }
    }
    rows.extend(
        staged_files
            .iter()
            .filter(|(_, &add)| add)
            .map(|(key, _)| *key),
    );
    for (_, origin, file_id) in rows {
        let named = files.get(file_id)?.is_some_and(|f| f.value().0 == origin);
        if !named {
            problem(format!(
                "content_files names file {file_id} of origin {origin}, which is not recorded"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use redb::ReadableDatabase;

    use super::*;

    /// A key spread over the whole range, as hash prefixes are.
    fn spread(n: u64) -> u64 {
        n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn a_merge_of_many_passes_leaves_what_the_rows_said_in_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let mut chunks = BTreeSet::new();
        let mut files = BTreeSet::new();
        // Three commits' values, about two passes' worth of rows: chunk rows (some twice),
        // file rows added, and some of them removed, or removed and added again, later.
        let txn = db.begin_write().unwrap();
        for round in 0..3u64 {
            let mut staged = Staged::default();
            for n in 0..PASS_ROWS / 2 {
                let key = (spread(n + round * PASS_ROWS), n % 7);
                staged.bytes.push(ADD_CHUNK);
                staged.bytes.extend_from_slice(&key.0.to_be_bytes());
                staged.bytes.extend_from_slice(&key.1.to_be_bytes());
                chunks.insert(key);
                // Round 0 adds a row per n; round 1 removes a third of them and adds rows of
                // another origin; round 2 adds half of the removed ones back.
                let (file, add) = match round {
                    0 => ((spread(n % 5000), 0, n), true),
                    1 if n % 3 == 0 => ((spread(n % 5000), 0, n), false),
                    1 => ((spread(n % 5000), 1, n), true),
                    _ if n % 6 == 0 => ((spread(n % 5000), 0, n), true),
                    _ => continue,
                };
                staged.set_file(file, add);
                if add {
                    files.insert(file);
                } else {
                    files.remove(&file);
                }
            }
            staged.append(&txn).unwrap();
        }
        let merged = merge_staged(&txn).unwrap();
        assert!(merged > 2 * PASS_ROWS, "{merged} rows: more than one pass");
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let got_chunks: BTreeSet<(u64, u64)> = read
            .open_table(CHUNK_CONTENTS)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        let got_files: BTreeSet<(u64, u64, u64)> = read
            .open_table(CONTENT_FILES)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        assert_eq!(got_chunks, chunks);
        assert_eq!(got_files, files);
        assert!(read.open_table(STAGED).is_err(), "the staged rows are gone");
    }

    #[test]
    fn a_damaged_value_gives_the_rows_before_the_damage() {
        let mut staged = Staged::default();
        staged.set_file((1, 2, 3), true);
        staged.set_file((4, 5, 6), false);
        let mut bytes = staged.bytes.clone();
        bytes.push(ADD_CHUNK);
        bytes.extend_from_slice(&[7; 9]);
        assert_eq!(
            ops(&bytes).collect::<Vec<_>>(),
            vec![Op::SetFile((1, 2, 3), true), Op::SetFile((4, 5, 6), false)]
        );
        bytes.truncate(staged.bytes.len());
        bytes.push(99);
        assert_eq!(ops(&bytes).count(), 2);
    }
}
