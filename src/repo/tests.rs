//! Opening, creating, damage and repair, on indexes written through the library.

use std::fs;
use std::path::{Path, PathBuf};

use super::layout::{INDEX, MARKER};
use super::*;
use crate::id::ChunkId;
use crate::snapshot::{ChunkRef, Node, TreeEntry};

const PAGE: usize = 4096;

/// A repository holding `files` one-chunk files of one origin, scanned into one snapshot: a
/// chunk list, a media record and a scan entry each, in one tree.
fn populated(root: &Path, files: u64) -> Repository {
    let repo = Repository::open(root).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let mut writer = repo.writer().unwrap();
    let mut entries = Vec::new();
    for n in 0..files {
        let list = ChunkList {
            chunks: vec![ChunkRef {
                id: ChunkId::of(&n.to_le_bytes()),
                len: 1000 + n as u32,
            }],
            ..ChunkList::default()
        };
        let content = writer.put_content(&list).unwrap();
        writer.put_media(&content, &MediaRecord::default()).unwrap();
        let entry = ScanEntry {
            file_id: 0,
            size: list.size(),
            mtime_ns: 1,
            change: crate::origin::ChangeKey::Posix {
                dev: 1,
                ino: n,
                ctime_ns: 1,
            },
            mode: 0o644,
            content,
        };
        let name = format!("track {n:05}.mp3").into_bytes();
        writer.record_file(origin, &name, entry, None).unwrap();
        entries.push(TreeEntry {
            name,
            node: Node::File {
                size: list.size(),
                mtime_ns: 1,
                mode: 0o644,
                content,
            },
        });
    }
    let root_tree = writer.put_tree(&Tree { entries }).unwrap();
    writer
        .add_snapshot(&SnapshotRecord {
            origin: "/music".into(),
            time_ns: 1,
            root: root_tree,
            files,
            bytes: 0,
        })
        .unwrap();
    writer.commit().unwrap();
    repo
}

fn overwrite_page(index: &Path, page: usize, seed: u64) {
    let mut bytes = fs::read(index).unwrap();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in &mut bytes[page * PAGE..(page + 1) * PAGE] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    fs::write(index, bytes).unwrap();
}

/// Everything a command might read, each call allowed to fail only as damage.
fn read_everything(repo: &Repository) -> Vec<Result<()>> {
    let mut results = vec![repo.snapshots().map(drop)];
    results.push(repo.find_origin("/music").map(drop));
    results.push(repo.scan_state(1).map(drop));
    results.push(repo.check_objects().map(drop));
    results.push(
        repo.located(&[ChunkId::of(&0u64.to_le_bytes())], 1)
            .map(drop),
    );
    results
}

fn is_damage(e: &Error) -> bool {
    matches!(e, Error::IndexDamaged { .. } | Error::Corrupt { .. })
}

#[test]
fn a_location_a_user_named_must_hold_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        Repository::open_existing(&missing),
        Err(Error::NoRepository { .. })
    ));
    assert!(!missing.exists());
    let music = dir.path().join("music");
    fs::create_dir(&music).unwrap();
    fs::write(music.join("a.flac"), b"fLaC").unwrap();
    assert!(matches!(
        Repository::open_existing(&music),
        Err(Error::NoRepository { .. })
    ));
    assert!(matches!(
        Repository::init(&music),
        Err(Error::NotARepository { .. })
    ));
    assert_eq!(fs::read_dir(&music).unwrap().count(), 1);

    let (repo, created) = Repository::init(&missing).unwrap();
    assert!(created);
    drop(repo);
    assert!(missing.join(MARKER).is_file());
    let (_, created) = Repository::init(&missing).unwrap();
    assert!(!created);
    Repository::open_existing(&missing).unwrap();

    let named = Location::resolve(Some(&dir.path().join("typo"))).unwrap();
    assert!(matches!(named.open(), Err(Error::NoRepository { .. })));
}

#[test]
fn a_lost_index_is_refused_even_where_repositories_are_created() {
    for empty in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        drop(populated(dir.path(), 3));
        let index = dir.path().join(INDEX);
        if empty {
            fs::write(&index, b"").unwrap();
        } else {
            fs::remove_file(&index).unwrap();
        }
        for open in [Repository::open, Repository::open_existing] {
            match open(dir.path()) {
                Err(Error::IndexMissing { state, .. }) => {
                    assert_eq!(state, if empty { "empty" } else { "missing" })
                }
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("a lost index was replaced"),
            }
        }
        assert!(matches!(
            Repository::init(dir.path()),
            Err(Error::IndexMissing { .. })
        ));
        assert_eq!(index.exists(), empty);

        let report = repair_index(dir.path()).unwrap();
        assert_eq!(report.index_was, if empty { "empty" } else { "missing" });
        assert_eq!(report.damaged_copy.is_some(), empty);
        let repo = Repository::open_existing(dir.path()).unwrap();
        assert!(repo.snapshots().unwrap().is_empty());
        assert_eq!(repo.origin_id("/other").unwrap(), 1);
    }
}

#[test]
fn damage_is_an_error_never_a_panic_and_the_handle_stays_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path(), 400));
    let index = dir.path().join(INDEX);
    let good = fs::read(&index).unwrap();
    let mut refused = 0;
    for page in 0..good.len() / PAGE {
        fs::write(&index, &good).unwrap();
        overwrite_page(&index, page, page as u64);
        let repo = match Repository::open_existing(dir.path()) {
            Ok(repo) => repo,
            Err(e) => {
                assert!(is_damage(&e), "page {page}: {e}");
                continue;
            }
        };
        let results = read_everything(&repo);
        let Some(first) = results.iter().position(|r| r.is_err()) else {
            continue;
        };
        for result in &results {
            if let Err(e) = result {
                assert!(is_damage(e), "page {page}: {e}");
            }
        }
        // Once redb panicked, the handle refuses everything, writes included.
        if results[first]
            .as_ref()
            .is_err_and(|e| e.to_string().contains("redb stopped"))
        {
            refused += 1;
            assert!(read_everything(&repo).iter().all(|r| r.is_err()));
            assert!(matches!(repo.writer(), Err(Error::IndexDamaged { .. })));
        }
    }
    assert!(refused > 0, "no damaged page made redb panic");
}

#[test]
fn repair_keeps_what_reads_on_both_sides_of_a_damaged_page() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path(), 2000));
    let index = dir.path().join(INDEX);
    let good = fs::read(&index).unwrap();
    // Look for a page inside the chunk lists: losing it costs some of them, not all.
    for page in 1..good.len() / PAGE {
        fs::write(&index, &good).unwrap();
        for name in fs::read_dir(dir.path()).unwrap() {
            let name = name.unwrap().path();
            if name.to_string_lossy().contains(".damaged-") {
                fs::remove_file(name).unwrap();
            }
        }
        overwrite_page(&index, page, 7);
        let damaged = fs::read(&index).unwrap();
        let report = repair_index(dir.path()).unwrap();
        if report.index_was != "damaged" {
            continue;
        }
        let kept = report.kept["contents"];
        if !(kept > 0 && Some(&kept) < report.found.get("contents")) {
            continue;
        }
        assert_eq!(report.found["contents"], 2000);
        assert!(kept > 1000, "kept only {kept} of 2000 chunk lists");
        let aside = fs::read(report.damaged_copy.clone().unwrap()).unwrap();
        assert_eq!(
            aside[page * PAGE..(page + 1) * PAGE],
            damaged[page * PAGE..(page + 1) * PAGE]
        );
        // The new index is whole, and consistent: every kept scan entry has its chunk
        // locations, every kept snapshot its whole tree.
        assert!(check(dir.path()).unwrap().healthy);
        let repo = Repository::open_existing(dir.path()).unwrap();
        let state = repo.scan_state(1).unwrap();
        assert_eq!(state.len() as u64, report.kept["scan"]);
        for (_, entry) in &state {
            let list = repo.content(&entry.content).unwrap();
            assert!(repo.located(&[list.chunks[0].id], 1).unwrap()[0]);
        }
        assert_eq!(
            repo.snapshots().unwrap().len() as u64,
            report.kept["snapshots"]
        );
        // Ids handed out next do not collide with the kept ones.
        let mut writer = repo.writer().unwrap();
        let entry = ScanEntry {
            file_id: 0,
            ..state[0].1.clone()
        };
        let stored = writer.record_file(1, b"new", entry, None).unwrap();
        assert!(state.iter().all(|(_, e)| e.file_id != stored.file_id));
        return;
    }
    panic!("no page of the chunk lists was found");
}

#[test]
fn a_damaged_index_that_needs_crash_recovery_is_read_through_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path(), 50));
    let index = dir.path().join(INDEX);
    // What a crash leaves: the recovery flag of redb's header set.
    let mut bytes = fs::read(&index).unwrap();
    bytes[9] |= 2;
    fs::write(&index, &bytes).unwrap();
    let source = repair::Source::new(dir.path(), &index).unwrap();
    let copy: PathBuf = dir.path().join("index.redb.salvage");
    assert!(copy.is_file(), "the damaged index was read directly");
    let mut rows = 0;
    let found = source
        .rows(tables::CONTENTS, |_, _| {
            rows += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!((rows, found), (50, Some(50)));
    source.remove_copy();
    assert!(!copy.exists());
    assert_eq!(
        fs::read(&index).unwrap(),
        bytes,
        "the damaged index was written"
    );
}

/// The scan state of the committed format-3 fixture is carried over by the upgrade: each row
/// keeps its file id, size, mtime and mode and gets the POSIX change key of the inode, device
/// and ctime format 3 recorded, so a file whose `lstat` is what format 3 saw is not read again.
#[test]
fn a_format_3_scan_state_is_carried_over_with_posix_change_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("v3");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/repo-v3");
    fs::create_dir_all(&root).unwrap();
    for name in ["index.redb", "repo.toml"] {
        fs::copy(fixture.join(name), root.join(name)).unwrap();
    }
    let repo = Repository::open_existing(&root).unwrap();
    let origin = repo.find_origin("/tmp/v3fx/lib").unwrap().expect("origin");
    let state = repo.scan_state(origin).unwrap();
    assert_eq!(state.len(), 12);
    let mut inodes = std::collections::HashSet::new();
    for (path, entry) in &state {
        let crate::origin::ChangeKey::Posix { dev, ino, ctime_ns } = entry.change else {
            panic!("{}: {:?}", String::from_utf8_lossy(path), entry.change)
        };
        assert!(dev != 0 && ino != 0 && ctime_ns > 0, "{entry:?}");
        assert!(inodes.insert(ino), "one inode per file");
        assert!(entry.size > 0 && entry.mode != 0);
        let seen = crate::origin::EntryStat {
            kind: crate::origin::EntryKind::File,
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            change: entry.change.clone(),
            mode: entry.mode,
        };
        assert!(crate::scan::unchanged(entry, &seen));
        let touched = crate::origin::EntryStat {
            change: crate::origin::ChangeKey::Posix {
                dev,
                ino,
                ctime_ns: ctime_ns + 1,
            },
            ..seen
        };
        assert!(
            !crate::scan::unchanged(entry, &touched),
            "a new ctime is a change"
        );
    }
    let ids: std::collections::HashSet<u64> = state.iter().map(|(_, e)| e.file_id).collect();
    assert_eq!(ids.len(), 12, "file ids kept");
}

#[test]
fn contents_without_history_are_the_same_looked_up_one_by_one_or_merged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&dir.path().join("repo")).unwrap();
    let content = |n: u32| ContentId::of_encoded(&n.to_le_bytes());
    // Every third of 300 contents keeps its history.
    let mut writer = repo.writer().unwrap();
    for n in (0..300).step_by(3) {
        writer.keep_history(&content(n), &[]).unwrap();
    }
    writer.commit().unwrap();
    let expect = |asked: &[ContentId]| -> Vec<ContentId> {
        asked
            .iter()
            .filter(|c| !(0..300).step_by(3).any(|n| content(n) == **c))
            .copied()
            .collect()
    };
    // A few contents (looked up one by one), then many with repeats and unknown ones, in
    // no order (one pass over the table): the answer keeps the order asked in.
    let few: Vec<ContentId> = [7, 3, 301, 0].into_iter().map(content).collect();
    let many: Vec<ContentId> = (0..400)
        .rev()
        .chain([3, 3, 299, 1000])
        .map(content)
        .collect();
    for asked in [&few[..], &many[..], &[], &many[..1]] {
        assert_eq!(repo.without_history(asked).unwrap(), expect(asked));
    }
    assert_eq!(
        repo.without_history(&few).unwrap(),
        vec![content(7), content(301)]
    );
}

#[test]
fn file_ids_counted_in_a_transaction_go_on_after_its_commit_and_not_after_its_abort() {
    // A writer hands out file ids from a counter it reads once and writes back at its commit.
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&dir.path().join("repo")).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let content = ContentId::of_encoded(b"one");
    let record = |names: &[&str], commit: bool| {
        let mut writer = repo.writer().unwrap();
        let mut tables = writer.tables().unwrap();
        let ids: Vec<u64> = names
            .iter()
            .map(|name| {
                tables
                    .record_file(origin, name.as_bytes(), one_file(content, 1), None)
                    .unwrap()
                    .file_id
            })
            .collect();
        drop(tables);
        if commit {
            writer.commit().unwrap();
        }
        ids
    };
    assert_eq!(record(&["a", "b", "c"], true), vec![1, 2, 3]);
    // Dropped without a commit: its ids are given again.
    assert_eq!(record(&["d", "e"], false), vec![4, 5]);
    assert_eq!(record(&["d"], true), vec![4]);
    // Through the writer's own method as through its tables, one counter.
    let mut writer = repo.writer().unwrap();
    let f = writer
        .record_file(origin, b"f", one_file(content, 1), None)
        .unwrap();
    let g = writer
        .tables()
        .unwrap()
        .record_file(origin, b"g", one_file(content, 1), None)
        .unwrap();
    writer.commit().unwrap();
    assert_eq!((f.file_id, g.file_id), (5, 6));
    // Every path has its own id, as stored.
    let state = repo.scan_state(origin).unwrap();
    let mut ids: Vec<u64> = state.iter().map(|(_, e)| e.file_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    // The next transaction starts from the stored counter.
    assert_eq!(record(&["h"], true), vec![7]);
}

fn one_file(content: ContentId, ino: u64) -> ScanEntry {
    ScanEntry {
        file_id: 0,
        size: 0,
        mtime_ns: 1,
        change: crate::origin::ChangeKey::Posix {
            dev: 1,
            ino,
            ctime_ns: 1,
        },
        mode: 0o644,
        content,
    }
}

fn list_of(chunks: &[u64]) -> ChunkList {
    ChunkList {
        chunks: chunks
            .iter()
            .map(|n| ChunkRef {
                id: ChunkId::of(&n.to_le_bytes()),
                len: 100 * *n as u32,
            })
            .collect(),
        ..ChunkList::default()
    }
}

/// Within one batch, the last of several changes to a row is what the batch leaves: a file
/// recorded then changed, another recorded then removed, a chunk list stored twice and a media
/// record replaced; then a file changed back and a second file of the same content.
#[test]
fn the_last_change_within_a_batch_is_what_it_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    let located = |n: u64| {
        repo.chunk_locations(&chunk(n), origin)
            .unwrap()
            .into_iter()
            .map(|l| (l.path, l.offset, l.len))
            .collect::<Vec<_>>()
    };

    let mut writer = repo.writer().unwrap();
    let a = writer.put_content(&list_of(&[1, 2])).unwrap();
    let b = writer.put_content(&list_of(&[2, 3])).unwrap();
    assert_eq!(writer.put_content(&list_of(&[1, 2])).unwrap(), a);
    let audio = |n: u8| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&[n]);
        MediaRecord {
            audio_hash: Some(crate::id::AudioHash::of_hasher(&hasher)),
            info: None,
        }
    };
    writer.put_media(&a, &audio(1)).unwrap();
    writer.put_media(&a, &audio(2)).unwrap();
    // "x": recorded with a, changed to b (chunk 2 stays, at another offset), within the batch.
    let x = writer
        .record_file(origin, b"x", one_file(a, 1), None)
        .unwrap();
    let x = writer
        .record_file(origin, b"x", one_file(b, 1), Some(&x))
        .unwrap();
    // "y": recorded with b, then removed, within the batch.
    let y = writer
        .record_file(origin, b"y", one_file(b, 2), None)
        .unwrap();
    writer.remove_file(origin, b"y", &y).unwrap();
    assert_eq!(writer.scan_entry(origin, b"x").unwrap(), Some(x.clone()));
    writer.commit().unwrap();

    assert_eq!(repo.content(&a).unwrap(), list_of(&[1, 2]));
    assert_eq!(repo.media(&a).unwrap(), Some(audio(2)));
    assert_eq!(located(1), vec![]);
    assert_eq!(located(2), vec![(b"x".to_vec(), 0, 200)]);
    assert_eq!(located(3), vec![(b"x".to_vec(), 200, 300)]);

    // The next batch: "x" back to a, then "z" with a.
    let mut writer = repo.writer().unwrap();
    writer
        .record_file(origin, b"x", one_file(a, 1), Some(&x))
        .unwrap();
    writer
        .record_file(origin, b"z", one_file(a, 3), None)
        .unwrap();
    writer.commit().unwrap();
    let mut two = located(2);
    two.sort();
    assert_eq!(
        two,
        vec![(b"x".to_vec(), 100, 200), (b"z".to_vec(), 100, 200)]
    );
    assert_eq!(located(1).len(), 2);
    assert_eq!(located(3), vec![]);
}

/// Location rows are keyed by id prefixes, which two ids can share: a row that points a chunk
/// at a chunk list lacking it, or at a file whose scan entry holds another list, answers
/// nothing. Rows are written here as a prefix collision would leave them.
#[test]
fn a_location_row_of_a_shared_prefix_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    let mut writer = repo.writer().unwrap();
    let a = writer.put_content(&list_of(&[1, 2])).unwrap();
    let b = writer.put_content(&list_of(&[3])).unwrap();
    let x = writer
        .record_file(origin, b"x", one_file(a, 1), None)
        .unwrap();
    writer.commit().unwrap();
    {
        let txn = repo.db().unwrap().begin_write().unwrap();
        {
            // Chunk 3 "in" list a, and file x "holding" list b.
            let mut table = txn.open_table(CHUNK_CONTENTS).unwrap();
            let key = (
                locations::prefix(chunk(3).as_bytes()),
                locations::prefix(a.as_bytes()),
            );
            table.insert(key, ()).unwrap();
            let mut table = txn.open_table(CONTENT_FILES).unwrap();
            table
                .insert(locations::file_key(&b, origin, x.file_id), ())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    assert_eq!(repo.chunk_locations(&chunk(3), origin).unwrap(), vec![]);
    assert_eq!(repo.located(&[chunk(3)], origin).unwrap(), vec![false]);
    let found = repo.chunk_locations(&chunk(2), origin).unwrap();
    assert_eq!(
        found,
        vec![ChunkLocation {
            path: b"x".to_vec(),
            offset: 100,
            len: 200
        }]
    );
    assert_eq!(
        repo.located(&[chunk(1), chunk(2), chunk(4)], origin)
            .unwrap(),
        vec![true, true, false]
    );
}

#[test]
fn chunks_kept_compressed_by_their_reader_read_back_as_those_kept_raw() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(&dir.path().join("repo")).unwrap();
    let chunk = |n: u8| {
        let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[n; 300]].concat();
        (ChunkId::of(&data), data)
    };
    let (raw, packed, both) = (chunk(1), chunk(2), chunk(3));
    let pack = |(id, data): &(ChunkId, Vec<u8>)| PackedChunk::new(*id, data).unwrap();
    let mut writer = repo.writer().unwrap();
    let mut tables = writer.tables().unwrap();
    let content = |n: u32| ContentId::of_encoded(&n.to_le_bytes());
    tables
        .keep_history(&content(1), &[raw.clone(), both.clone()])
        .unwrap();
    // The chunk kept raw in this batch is not kept twice when it comes again compressed.
    tables
        .keep_packed(&content(2), &[pack(&packed), pack(&both)])
        .unwrap();
    drop(tables);
    writer.commit().unwrap();
    for (id, data) in [&raw, &packed, &both] {
        assert_eq!(repo.kept_chunk(id).unwrap().as_deref(), Some(&data[..]));
    }
    let (chunks, stored, len) = repo.history_usage().unwrap();
    assert_eq!((chunks, len), (3, 3 * raw.1.len() as u64));
    assert!(stored < len, "kept compressed: {stored} of {len} bytes");
    assert!(repo
        .without_history(&[content(1), content(2)])
        .unwrap()
        .is_empty());
}

#[test]
fn chunks_kept_for_many_contents_at_once_are_kept_once_each_and_complete_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open(&root).unwrap();
    let chunk = |n: u8| {
        let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[n; 300]].concat();
        PackedChunk::new(ChunkId::of(&data), &data).unwrap()
    };
    let content = |n: u32| ContentId::of_encoded(&n.to_le_bytes());
    // Kept by an earlier batch: not kept again.
    let mut writer = repo.writer().unwrap();
    writer
        .tables()
        .unwrap()
        .keep_packed(&content(0), &[chunk(0)])
        .unwrap();
    writer.commit().unwrap();
    let (_, stored_before, _) = repo.history_usage().unwrap();
    // Many contents sharing chunks, in no order, one of them with none.
    let lists: Vec<(ContentId, Vec<PackedChunk>)> = (1..=40u32)
        .rev()
        .map(|n| {
            let chunks = match n {
                7 => Vec::new(),
                _ => vec![chunk(n as u8), chunk((n % 5) as u8), chunk(0)],
            };
            (content(n), chunks)
        })
        .collect();
    let mut writer = repo.writer().unwrap();
    let mut tables = writer.tables().unwrap();
    tables
        .keep_packed_many(lists.iter().map(|(c, chunks)| (c, chunks.as_slice())))
        .unwrap();
    drop(tables);
    writer.commit().unwrap();
    // Chunk 7 came only with content 7's list, which is empty.
    for n in (0..=40u8).filter(|&n| n != 7) {
        let packed = chunk(n);
        let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[n; 300]].concat();
        assert_eq!(
            repo.kept_chunk(packed.id()).unwrap().as_deref(),
            Some(&data[..])
        );
    }
    let (kept, stored, _) = repo.history_usage().unwrap();
    assert_eq!(kept, 40, "each chunk kept once");
    let each: u64 = (1..=40u8)
        .filter(|&n| n != 7)
        .map(|n| {
            let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[n; 300]].concat();
            crate::zstd_kept::compress_chunk(&data).unwrap().len() as u64
        })
        .sum();
    assert_eq!(stored - stored_before, each, "no chunk stored twice");
    let all: Vec<ContentId> = (0..=40).map(content).collect();
    assert!(repo.without_history(&all).unwrap().is_empty());
    drop(repo);
    assert!(check::check(&root).unwrap().healthy);
}

#[test]
fn short_chunks_kept_in_raw_frames_read_back_and_check_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::open(&root).unwrap();
    // A tag of a few frames, as short as most of a generated library's, and one just long
    // enough to be compressed.
    let short = b"TIT2\0\0\0\x06\0\0\x03TitleTPE1\0\0\0\x07\0\0\x03Artist".to_vec();
    let long = b"TIT2 a title ".repeat(20);
    assert!(short.len() < crate::zstd_kept::STORED_BELOW);
    assert!(long.len() >= crate::zstd_kept::STORED_BELOW);
    let chunks = [short, long].map(|data| (ChunkId::of(&data), data));
    let packed: Vec<PackedChunk> = chunks
        .iter()
        .map(|(id, data)| PackedChunk::new(*id, data).unwrap())
        .collect();
    let mut writer = repo.writer().unwrap();
    let mut tables = writer.tables().unwrap();
    tables
        .keep_packed(&ContentId::of_encoded(b"content"), &packed)
        .unwrap();
    drop(tables);
    writer.commit().unwrap();
    for (id, data) in &chunks {
        assert_eq!(repo.kept_chunk(id).unwrap().as_deref(), Some(&data[..]));
    }
    let (kept, stored, len) = repo.history_usage().unwrap();
    assert_eq!(kept, 2);
    // The short one takes its length and a frame's 9 bytes; the long one is compressed.
    let (short, long) = (&chunks[0].1, &chunks[1].1);
    let compressed = crate::zstd_kept::compress(long).unwrap().len();
    assert!(compressed < long.len());
    assert_eq!(stored, (short.len() + 9 + compressed) as u64);
    assert_eq!(len, (short.len() + long.len()) as u64);
    drop(repo);
    assert!(check::check(&root).unwrap().healthy);
}

/// Keys of `chunk_contents` rows and of `content_files` rows.
type LocationRows = (Vec<(u64, u64)>, Vec<(u64, u64, u64)>);

/// The rows of `chunk_contents` and of `content_files`, in key order.
fn location_rows(repo: &Repository) -> LocationRows {
    let read = repo.db().unwrap().begin_read().unwrap();
    let chunks = read.open_table(CHUNK_CONTENTS).unwrap();
    let files = read.open_table(CONTENT_FILES).unwrap();
    let chunks = chunks
        .iter()
        .unwrap()
        .map(|r| r.unwrap().0.value())
        .collect();
    let files = files
        .iter()
        .unwrap()
        .map(|r| r.unwrap().0.value())
        .collect();
    (chunks, files)
}

/// Records, in one commit that stages its location rows, that `path` holds the chunk list
/// of `chunks` (file `ino`); returns the list's id.
fn staged_file(
    repo: &Repository,
    origin: OriginId,
    path: &[u8],
    chunks: &[u64],
    ino: u64,
) -> ContentId {
    let mut writer = repo.writer().unwrap();
    writer.stage_locations();
    let content = writer.put_content(&list_of(chunks)).unwrap();
    writer
        .record_file(origin, path, one_file(content, ino), None)
        .unwrap();
    writer.commit().unwrap();
    content
}

#[test]
fn staged_location_rows_are_found_once_merged_and_a_lookup_merges_them() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    staged_file(&repo, origin, b"x", &[1, 2], 1);
    // Committed, but waiting: the tables do not hold the rows yet, and `check` counts them.
    assert_eq!(location_rows(&repo), (vec![], vec![]));
    assert!(check::check(dir.path()).unwrap().healthy);
    // A lookup merges before it looks.
    assert_eq!(
        repo.located(&[chunk(1), chunk(2), chunk(3)], origin)
            .unwrap(),
        vec![true, true, false]
    );
    let (chunks, files) = location_rows(&repo);
    assert_eq!((chunks.len(), files.len()), (2, 1));
    assert_eq!(repo.merge_staged_locations().unwrap(), 0);
    let read = repo.db().unwrap().begin_read().unwrap();
    assert!(matches!(
        read.open_table(STAGED),
        Err(redb::TableError::TableDoesNotExist(_))
    ));
}

#[test]
fn rows_staged_by_a_run_that_stopped_are_merged_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    let origin;
    {
        let repo = Repository::open(dir.path()).unwrap();
        origin = repo.origin_id("/music").unwrap();
        staged_file(&repo, origin, b"x", &[1], 1);
        // Dropped without a merge, as a process killed mid-scan leaves it.
    }
    let repo = Repository::open(dir.path()).unwrap();
    assert_eq!(location_rows(&repo), (vec![], vec![]));
    assert_eq!(
        repo.chunk_locations(&chunk(1), origin).unwrap(),
        vec![ChunkLocation {
            path: b"x".to_vec(),
            offset: 0,
            len: 100
        }]
    );
    assert_eq!(location_rows(&repo).1.len(), 1);
}

#[test]
fn a_row_staged_then_changed_directly_ends_as_the_last_change_said() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    // Staged: x holds a, then y holds a and is removed, in two commits.
    let mut writer = repo.writer().unwrap();
    writer.stage_locations();
    let a = writer.put_content(&list_of(&[1])).unwrap();
    let x = writer
        .record_file(origin, b"x", one_file(a, 1), None)
        .unwrap();
    let y = writer
        .record_file(origin, b"y", one_file(a, 2), None)
        .unwrap();
    writer.commit().unwrap();
    let mut writer = repo.writer().unwrap();
    writer.stage_locations();
    writer
        .tables()
        .unwrap()
        .remove_file(origin, b"y", &y)
        .unwrap();
    writer.commit().unwrap();
    // Not staged: x now holds b. Its transaction merges what waits before changing a row.
    let mut writer = repo.writer().unwrap();
    let b = writer.put_content(&list_of(&[2])).unwrap();
    writer
        .record_file(origin, b"x", one_file(b, 1), Some(&x))
        .unwrap();
    writer.commit().unwrap();
    assert_eq!(
        location_rows(&repo).1,
        vec![locations::file_key(&b, origin, x.file_id)]
    );
    assert!(repo.located(&[chunk(1)], origin).unwrap() == vec![false]);
    assert!(repo.located(&[chunk(2)], origin).unwrap() == vec![true]);
    assert!(check::check(dir.path()).unwrap().healthy);
}

#[test]
fn gc_merges_staged_rows_before_it_removes_any() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let mut writer = repo.writer().unwrap();
    writer.stage_locations();
    let a = writer.put_content(&list_of(&[1])).unwrap();
    let x = writer
        .record_file(origin, b"x", one_file(a, 1), None)
        .unwrap();
    writer
        .tables()
        .unwrap()
        .remove_file(origin, b"x", &x)
        .unwrap();
    writer.commit().unwrap();
    drop(repo);
    gc::gc(dir.path(), false).unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    assert_eq!(location_rows(&repo), (vec![], vec![]));
    assert!(check::check(dir.path()).unwrap().healthy);
}

/// Runs `work` on a repository at a new path, on a thread of its own, and gives its result;
/// fails the test when it has not ended within two minutes (a hang).
fn within_two_minutes<T: Send + 'static>(
    work: impl FnOnce(&Repository) -> T + Send + 'static,
) -> (T, tempfile::TempDir) {
    let (done, ended) = std::sync::mpsc::channel();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let repo = Repository::open(&root).unwrap();
        let result = work(&repo);
        drop(repo);
        let _ = done.send(result);
    });
    let result = ended
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the threads ended within two minutes");
    (result, dir)
}

/// Scans staging and merging at once, with lookups between their commits (a sync's two scans
/// and its lookups share one repository): after its commit, a thread's lookup finds its rows,
/// whichever thread merged them, and nothing is lost. Repeated; a hang fails the test.
#[test]
fn concurrent_staging_merges_and_lookups_lose_no_row() {
    const THREADS: u64 = 3;
    const ROUNDS: u64 = 40;
    let (rows, dir) = within_two_minutes(|repo| {
        let origin = repo.origin_id("/music").unwrap();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let n = 1 + t * ROUNDS + round;
                        let path = format!("{t}/{round}").into_bytes();
                        staged_file(repo, origin, &path, &[n], n);
                        if round % 3 == 0 {
                            repo.merge_staged_locations().unwrap();
                        }
                        let chunk = ChunkId::of(&n.to_le_bytes());
                        assert_eq!(repo.located(&[chunk], origin).unwrap(), vec![true]);
                    }
                });
            }
        });
        repo.merge_staged_locations().unwrap();
        let (chunks, files) = location_rows(repo);
        (chunks.len(), files.len())
    });
    let all = (THREADS * ROUNDS) as usize;
    assert_eq!(rows, (all, all));
    assert!(check::check(dir.path()).unwrap().healthy);
}

#[test]
fn batches_settled_into_one_transaction_are_what_separate_commits_leave() {
    let chunk = |n: u64| ChunkId::of(&n.to_le_bytes());
    let history = |n: u8| {
        let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[n; 200]].concat();
        PackedChunk::new(ChunkId::of(&data), &data).unwrap()
    };
    // Three batches of a scan, each a file with its location rows staged and a history chunk:
    // committed one by one, or settled one by one into one transaction committed at the end.
    let record = |repo: &Repository, one_transaction: bool| {
        let origin = repo.origin_id("/music").unwrap();
        let mut held: Option<RepoWriter<'_>> = None;
        for n in 0..3u64 {
            let mut writer = match held.take() {
                Some(writer) => writer,
                None => {
                    let mut writer = repo.writer().unwrap();
                    writer.stage_locations();
                    writer
                }
            };
            let mut tables = writer.tables().unwrap();
            let content = tables.put_content(&list_of(&[n, n + 10])).unwrap();
            tables.keep_packed(&content, &[history(n as u8)]).unwrap();
            let path = format!("f{n}");
            tables
                .record_file(origin, path.as_bytes(), one_file(content, n + 1), None)
                .unwrap();
            drop(tables);
            if one_transaction {
                writer.settle().unwrap();
                // Settled, not committed: no reader sees this batch yet.
                let entry = repo.scan_entry(origin, path.as_bytes()).unwrap();
                assert!(entry.is_none(), "batch {n} visible before its commit");
                held = Some(writer);
            } else {
                writer.commit().unwrap();
            }
        }
        if let Some(writer) = held {
            writer.commit().unwrap();
        }
        origin
    };
    let (separate, settled) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut seen = Vec::new();
    for (dir, one_transaction) in [(&separate, false), (&settled, true)] {
        let repo = Repository::open(dir.path()).unwrap();
        let origin = record(&repo, one_transaction);
        // Every batch's history chunk is kept, and read back from its pack.
        for n in 0..3u8 {
            let kept = repo.kept_chunk(history(n).id()).unwrap();
            assert!(kept.is_some(), "history chunk of batch {n} lost");
        }
        // The staged rows of every batch are there for the merge a lookup makes first.
        let located = repo
            .located(&[chunk(0), chunk(11), chunk(2), chunk(3)], origin)
            .unwrap();
        assert_eq!(located, vec![true, true, true, false]);
        assert!(check::check(dir.path()).unwrap().healthy);
        let files: Vec<_> = (0..3)
            .map(|n| {
                repo.scan_entry(origin, format!("f{n}").as_bytes())
                    .unwrap()
                    .map(|e| e.content)
            })
            .collect();
        seen.push((location_rows(&repo), files));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn batches_settled_and_never_committed_leave_nothing_a_reader_sees() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::open(dir.path()).unwrap();
    let origin = repo.origin_id("/music").unwrap();
    let data = [b"TIT2\0\0\0\x10\0\0title ".as_slice(), &[7; 200]].concat();
    let kept = PackedChunk::new(ChunkId::of(&data), &data).unwrap();
    let mut writer = repo.writer().unwrap();
    writer.stage_locations();
    let mut tables = writer.tables().unwrap();
    let content = tables.put_content(&list_of(&[1])).unwrap();
    tables
        .keep_packed(&content, std::slice::from_ref(&kept))
        .unwrap();
    tables
        .record_file(origin, b"x", one_file(content, 1), None)
        .unwrap();
    drop(tables);
    let packs = || {
        walkdir::WalkDir::new(dir.path().join("objects"))
            .into_iter()
            .filter(|e| e.as_ref().is_ok_and(|e| e.file_type().is_file()))
            .count()
    };
    assert_eq!(packs(), 0);
    writer.settle().unwrap();
    // Settled: the history chunk left memory for a pack in the object store.
    assert_eq!(packs(), 1);
    // A killed scan's held batches: dropped, not committed. The pack no row names is gc's.
    drop(writer);
    assert!(repo.scan_entry(origin, b"x").unwrap().is_none());
    assert!(repo.kept_chunk(kept.id()).unwrap().is_none());
    assert_eq!(repo.merge_staged_locations().unwrap(), 0);
    assert_eq!(location_rows(&repo), (vec![], vec![]));
    assert!(check::check(dir.path()).unwrap().healthy);
}

/// A cold sync merges its scan's staged rows on a thread of its own while it plans: a lookup
/// made meanwhile waits for that merge and finds every row, never the tables before it.
/// Repeated; a hang fails the test.
#[test]
fn a_lookup_during_a_merge_on_another_thread_finds_every_row() {
    const ROUNDS: u64 = 150;
    const FILES: u64 = 300;
    let (missed, _dir) = within_two_minutes(|repo| {
        let origin = repo.origin_id("/music").unwrap();
        let mut missed = 0;
        for round in 0..ROUNDS {
            let first = 1 + round * FILES;
            let mut writer = repo.writer().unwrap();
            writer.stage_locations();
            let mut tables = writer.tables().unwrap();
            for n in first..first + FILES {
                let content = tables.put_content(&list_of(&[n])).unwrap();
                let path = format!("{n}").into_bytes();
                tables
                    .record_file(origin, &path, one_file(content, n), None)
                    .unwrap();
            }
            drop(tables);
            writer.commit().unwrap();
            let chunks: Vec<ChunkId> = (first..first + FILES)
                .map(|n| ChunkId::of(&n.to_le_bytes()))
                .collect();
            std::thread::scope(|scope| {
                let merging = scope.spawn(|| repo.merge_staged_locations().unwrap());
                // Let the merge begin, as a sync's planning does before its first lookup.
                std::thread::yield_now();
                let located = repo.located(&chunks, origin).unwrap();
                missed += located.iter().filter(|&&here| !here).count();
                merging.join().unwrap();
            });
        }
        missed
    });
    assert_eq!(missed, 0, "rows missed by lookups made during a merge");
}
