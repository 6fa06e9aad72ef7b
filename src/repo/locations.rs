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
/// each commit of a large scan rewrote most of the tables' pages. Staged, a commit appends a
/// few values; [`merge_staged`] later writes every waiting row in key order, each leaf once.
/// The encoding is this module's: a tag byte, then the key's numbers, big-endian.
///
/// The rows are gathered by their key's lead (its first number, a hash prefix) into
/// [`GROUPS`] groups, and a commit appends one value per group it has rows for, under the
/// key `(group + 1) << GROUP_SHIFT | sequence`: the values of one range of leads lie together,
/// in the order they were staged, and a merge reads each value once. Values written before
/// the grouping lie under keys below `1 << GROUP_SHIFT` (group "0", rows of any lead) and are
/// merged first, as they were staged first.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// A value's bytes per group, [`GROUPS`] of them once a row is staged.
    groups: Vec<Vec<u8>>,
}

/// A `chunk_contents` row to add: 16 bytes of key follow.
const ADD_CHUNK: u8 = 1;
/// A `content_files` row to add: 24 bytes of key follow.
const ADD_FILE: u8 = 2;
/// A `content_files` row to remove: 24 bytes of key follow.
const REMOVE_FILE: u8 = 3;

/// Staged rows merged in one pass of [`merge_staged`], at most (about 0.5 MB held).
const PASS_ROWS: u64 = 1 << 14;

/// The bytes of the shortest staged row: a pass's rows are bounded by its values' length.
const SHORTEST_ROW: u64 = 17;

/// How many groups of leads the staged values are kept in (the top bits of a lead).
const GROUP_BITS: u32 = 7;
const GROUPS: usize = 1 << GROUP_BITS;

/// Where a `staged_locations` key's group lies: above its sequence number.
const GROUP_SHIFT: u32 = 56;
const SEQUENCE: u64 = (1 << GROUP_SHIFT) - 1;

/// The group of the rows whose key starts with `lead`.
fn group_of(lead: u64) -> usize {
    (lead >> (64 - GROUP_BITS)) as usize
}

/// The `staged_locations` keys of the values of `group` (0: values written before the
/// grouping; `g + 1`: rows of [`group_of`] `g`).
fn group_keys(group: u64) -> std::ops::RangeInclusive<u64> {
    group << GROUP_SHIFT..=(group << GROUP_SHIFT | SEQUENCE)
}

/// The leads of the rows of `group`: a merge splits this range among its passes.
fn group_leads(group: u64) -> (u128, u128) {
    match group {
        0 => (0, 1 << 64),
        g => {
            let width = 1u128 << (64 - GROUP_BITS);
            (u128::from(g - 1) * width, u128::from(g) * width)
        }
    }
}

impl Staged {
    /// Stages what [`add_content`] would insert.
    pub(super) fn add_content(&mut self, content: &ContentId, list: &ChunkList) {
        for (chunk, holder) in content_rows(content, list) {
            self.push(ADD_CHUNK, &[chunk, holder]);
        }
    }

    /// Stages the insertion (`add`) or removal of the `content_files` row `key`.
    pub(super) fn set_file(&mut self, key: (u64, u64, u64), add: bool) {
        let tag = if add { ADD_FILE } else { REMOVE_FILE };
        self.push(tag, &[key.0, key.1, key.2]);
    }

    /// Stages a row: its tag, then its key's numbers (the lead first).
    fn push(&mut self, tag: u8, key: &[u64]) {
        if self.groups.is_empty() {
            self.groups.resize_with(GROUPS, Vec::new);
        }
        let bytes = &mut self.groups[group_of(key[0])];
        bytes.push(tag);
        for n in key {
            bytes.extend_from_slice(&n.to_be_bytes());
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.iter().all(Vec::is_empty)
    }

    /// Appends the rows gathered to `staged_locations`, in `txn`: each group's after every
    /// value of that group there.
    pub(super) fn append(&self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        let mut table = txn.open_table(STAGED)?;
        for (group, bytes) in (1u64..).zip(&self.groups) {
            if bytes.is_empty() {
                continue;
            }
            let keys = group_keys(group);
            let first = *keys.start();
            let next = match table.range(keys)?.next_back() {
                Some(last) => last?.0.value() + 1,
                None => first,
            };
            table.insert(next, bytes.as_slice())?;
        }
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
/// inside `txn`, and empties it. The rows go in key order, group by group (the values written
/// before the grouping first), a range of leads per pass over the group's values (at most
/// [`PASS_ROWS`] rows held at once; one pass for a group of a few commits' rows, so each
/// value is read once, twice with its length); rows of one key keep the order they were
/// staged in, so an addition and a removal of the same row end as the last one said. Returns
/// the rows merged (0, reading one page, when nothing waits).
///
/// A writer that adds or removes location rows without staging them merges first, in its own
/// transaction: rows staged earlier then never land after its changes.
pub(super) fn merge_staged(txn: &WriteTransaction) -> Result<u64, redb::Error> {
    let staged = txn.open_table(STAGED)?;
    if staged.is_empty()? {
        return Ok(0);
    }
    let mut total = 0u64;
    let mut chunk_contents = txn.open_table(CHUNK_CONTENTS)?;
    let mut content_files = txn.open_table(CONTENT_FILES)?;
    let mut chunks: Vec<(u64, u64)> = Vec::new();
    let mut files: Vec<((u64, u64, u64), bool)> = Vec::new();
    for group in 0..=GROUPS as u64 {
        let mut bytes = 0u64;
        for item in staged.range(group_keys(group))? {
            bytes += item?.1.value().len() as u64;
        }
        if bytes == 0 {
            continue;
        }
        let passes = (bytes / SHORTEST_ROW).div_ceil(PASS_ROWS).max(1);
        // Pass `p` takes the rows whose lead lies in [bound(p), bound(p + 1)): the group's
        // leads split evenly, the first and last pass open-ended, so that a row outside them
        // (a value no release of this grouping wrote) is merged all the same.
        let (start, end) = group_leads(group);
        let bound = |p: u64| -> u128 {
            match p {
                0 => 0,
                p if p == passes => 1 << 64,
                p => start + (end - start) * u128::from(p) / u128::from(passes),
            }
        };
        for p in 0..passes {
            let (low, high) = (bound(p), bound(p + 1));
            for item in staged.range(group_keys(group))? {
                for op in ops(item?.1.value()) {
                    if !(low..high).contains(&u128::from(op.lead())) {
                        continue;
                    }
                    total += 1;
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
        merge_leaves_what_the_rows_said(spread);
    }

    #[test]
    fn a_group_of_more_rows_than_a_pass_is_merged_in_several() {
        // Every lead in one group: more than two passes' rows in it.
        merge_leaves_what_the_rows_said(|n| spread(n) >> GROUP_BITS);
    }

    /// Stages three commits' rows with leads `lead(n)`, merges them, and checks the tables.
    fn merge_leaves_what_the_rows_said(lead: fn(u64) -> u64) {
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
                let key = (lead(n + round * PASS_ROWS), n % 7);
                staged.push(ADD_CHUNK, &[key.0, key.1]);
                chunks.insert(key);
                // Round 0 adds a row per n; round 1 removes a third of them and adds rows of
                // another origin; round 2 adds half of the removed ones back.
                let (file, add) = match round {
                    0 => ((lead(n % 5000), 0, n), true),
                    1 if n % 3 == 0 => ((lead(n % 5000), 0, n), false),
                    1 => ((lead(n % 5000), 1, n), true),
                    _ if n % 6 == 0 => ((lead(n % 5000), 0, n), true),
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
    fn values_staged_before_the_grouping_are_merged_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
        let high = u64::MAX - 5;
        // A value as a release before the grouping staged it: one value of rows of any lead,
        // under sequence number 1.
        let mut old = Staged::default();
        old.set_file((high, 1, 1), true);
        old.set_file((3, 1, 2), true);
        old.push(ADD_CHUNK, &[high, 9]);
        let txn = db.begin_write().unwrap();
        txn.open_table(STAGED)
            .unwrap()
            .insert(1, old.groups.concat().as_slice())
            .unwrap();
        // Then this release's rows: the first file removed, another added.
        let mut new = Staged::default();
        new.set_file((high, 1, 1), false);
        new.set_file((high, 1, 3), true);
        new.append(&txn).unwrap();
        {
            let table = txn.open_table(STAGED).unwrap();
            let keys: Vec<u64> = table
                .iter()
                .unwrap()
                .map(|r| r.unwrap().0.value())
                .collect();
            let group = group_of(high) as u64 + 1;
            assert_eq!(keys, vec![1, group << GROUP_SHIFT], "one value per group");
        }
        assert_eq!(merge_staged(&txn).unwrap(), 5);
        txn.commit().unwrap();
        let read = db.begin_read().unwrap();
        let files: Vec<(u64, u64, u64)> = read
            .open_table(CONTENT_FILES)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        assert_eq!(files, vec![(3, 1, 2), (high, 1, 3)]);
        let chunks = read.open_table(CHUNK_CONTENTS).unwrap();
        assert!(chunks.get((high, 9)).unwrap().is_some());
    }

    #[test]
    fn a_damaged_value_gives_the_rows_before_the_damage() {
        let mut staged = Staged::default();
        staged.set_file((1, 2, 3), true);
        staged.set_file((4, 5, 6), false);
        let whole = staged.groups.concat();
        let mut bytes = whole.clone();
        bytes.push(ADD_CHUNK);
        bytes.extend_from_slice(&[7; 9]);
        assert_eq!(
            ops(&bytes).collect::<Vec<_>>(),
            vec![Op::SetFile((1, 2, 3), true), Op::SetFile((4, 5, 6), false)]
        );
        bytes.truncate(whole.len());
        bytes.push(99);
        assert_eq!(ops(&bytes).count(), 2);
    }
}
