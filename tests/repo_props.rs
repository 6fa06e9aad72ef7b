//! Property tests for the round trip chunk → repository → read: whatever files a directory
//! holds, scanning it records chunk lists and locations from which every file's bytes can be
//! read back exactly, each chunk matching its id; and syncing it elsewhere rebuilds it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use musicfs::chunk::FastCdc;
use musicfs::id::ChunkId;
use musicfs::origin::{LocalOrigin, Origin};
use musicfs::repo::Repository;
use musicfs::report::NullSink;
use musicfs::scan::{scan, ScanOptions};
use musicfs::snapshot::Node;
use musicfs::sync::{sync, SyncOptions};
use proptest::prelude::*;

/// Deterministic incompressible bytes, with optional repeats of an earlier stretch so that
/// some chunks are shared within and across files.
fn file_bytes(len: usize, seed: u64, repeat_from: Option<usize>) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    if let Some(from) = repeat_from {
        let half = len / 2;
        if from < half {
            let (a, b) = out.split_at_mut(half);
            let n = b.len().min(half - from);
            b[..n].copy_from_slice(&a[from..from + n]);
        }
    }
    out
}

fn library() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    let file = (
        0usize..700_000,
        any::<u64>(),
        proptest::option::of(0usize..100_000),
    )
        .prop_map(|(len, seed, rep)| file_bytes(len, seed, rep));
    let name = "[a-z]{1,6}(/[a-z]{1,6}){0,2}\\.(mp3|flac|ogg)";
    proptest::collection::btree_map(name, file, 1..8)
}

fn write_library(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    // A name may be both a file and a directory prefix of another; keep the files that fit.
    let mut written = BTreeMap::new();
    for (name, data) in files {
        let path = root.join(name);
        if fs::create_dir_all(path.parent().unwrap()).is_err() || path.is_dir() {
            continue;
        }
        if fs::write(&path, data).is_ok() {
            written.insert(name.clone(), data.clone());
        }
    }
    written
}

/// Every file of the origin's latest snapshot, rebuilt from the repository's chunk
/// locations alone, each chunk checked against its id.
fn read_back(repo: &Repository, origin: &LocalOrigin) -> BTreeMap<String, Vec<u8>> {
    let origin_id = repo.origin_id(origin.url()).unwrap();
    let (_, snapshot) = repo.latest_snapshot(origin.url()).unwrap().unwrap();
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), snapshot.root)];
    while let Some((prefix, tree)) = stack.pop() {
        for entry in repo.tree(&tree).unwrap().entries {
            let name = String::from_utf8(entry.name.clone()).unwrap();
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            match entry.node {
                Node::Dir { tree, .. } => stack.push((path, tree)),
                Node::File { size, content, .. } => {
                    let list = repo.content(&content).unwrap();
                    assert_eq!(list.size(), size, "{path}: chunk list size");
                    let mut data = Vec::new();
                    for (_, chunk) in list.with_offsets() {
                        let locs = repo.chunk_locations(&chunk.id, origin_id).unwrap();
                        assert!(!locs.is_empty(), "{path}: chunk without a location");
                        let loc = &locs[0];
                        let file = fs::File::open(origin.full_path(&loc.path)).unwrap();
                        let mut buf = vec![0u8; loc.len as usize];
                        file.read_exact_at(&mut buf, loc.offset).unwrap();
                        assert_eq!(ChunkId::of(&buf), chunk.id, "{path}: chunk bytes");
                        data.extend_from_slice(&buf);
                    }
                    out.insert(path, data);
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    out
}

fn dir_contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn scanned_files_read_back_exactly(files in library()) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let written = write_library(&src, &files);
        let repo = Repository::open(&dir.path().join("repo")).unwrap();
        let origin = LocalOrigin::open(&src, false).unwrap();
        let summary = scan(&repo, &origin, &FastCdc::default(), ScanOptions::default(), &NullSink)
            .unwrap();
        prop_assert_eq!(summary.files, written.len() as u64);
        prop_assert_eq!(read_back(&repo, &origin), written.clone());

        // And through a sync: the destination holds the same bytes, and so do the chunk
        // locations the repository now records for it.
        let dst_path = dir.path().join("dst");
        let dst = LocalOrigin::open(&dst_path, true).unwrap();
        let done = sync(&repo, &origin, &dst, &FastCdc::default(), SyncOptions::default(), &NullSink)
            .unwrap();
        prop_assert_eq!(done.errors, 0);
        let dst = LocalOrigin::open(&dst_path, false).unwrap();
        prop_assert_eq!(dir_contents(&dst_path), written.clone());
        prop_assert_eq!(read_back(&repo, &dst), written);
    }
}
