//! Cost of `musicfs diff` on two large snapshots, built directly in a temporary repository
//! (no files): 100 directories × 1,000 tracks, each a tag chunk and an audio chunk with its
//! media record (audio hash and title).
//!
//! - `diff/identical`: a snapshot against itself: one root comparison.
//! - `diff/100_changes`: against a second snapshot with 100 changes spread over the library:
//!   25 retags (new content, same audio hash), 25 moves to another directory, 25 new tracks
//!   and 25 removed ones.
//! - `diff/100_changes+bytes`: the same, plus `bytes_to_transfer` without a destination.
//!
//! Run: `cargo bench --bench diff`. Under `cargo test --all-targets` criterion runs each bench
//! once as a smoke test, on 25 × 40 tracks.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use musicfs::diff::{bytes_to_transfer, diff_trees, ChangeKind};
use musicfs::id::{AudioHash, ChunkId, ContentId, TreeId};
use musicfs::media::tags::{MediaInfo, Tags};
use musicfs::media::{Format, Region, RegionKind};
use musicfs::repo::{RepoWriter, Repository};
use musicfs::snapshot::{ChunkList, ChunkRef, MediaRecord, Node, Tree, TreeEntry};

fn sizes() -> (usize, usize) {
    if std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test") {
        (100, 1000)
    } else {
        (25, 40)
    }
}

/// A track: a tag chunk naming `title` and an audio chunk from `audio`.
fn track(w: &mut RepoWriter<'_>, audio: u64, title: &str) -> ContentId {
    let tag = format!("ID3 {title}").into_bytes();
    let sound = audio.to_le_bytes().repeat(8);
    let list = ChunkList {
        format: Format::Mp3,
        regions: vec![
            Region {
                kind: RegionKind::Tag,
                offset: 0,
                len: tag.len() as u64,
                transform: None,
            },
            Region {
                kind: RegionKind::Audio,
                offset: tag.len() as u64,
                len: 4_000_000,
                transform: None,
            },
        ],
        chunks: vec![
            ChunkRef {
                id: ChunkId::of(&tag),
                len: tag.len() as u32,
            },
            ChunkRef {
                id: ChunkId::of(&sound),
                len: 4_000_000,
            },
        ],
        file_hash: None,
    };
    let id = w.put_content(&list).expect("content");
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&audio.to_le_bytes());
    let media = MediaRecord {
        audio_hash: Some(AudioHash::from_stored(hash)),
        info: Some(MediaInfo {
            tags: Tags {
                title: vec![title.to_string()],
                ..Tags::default()
            },
            properties: None,
        }),
    };
    w.put_media(&id, &media).expect("media");
    id
}

fn file(content: ContentId) -> Node {
    Node::File {
        size: 4_000_000,
        mtime_ns: 0,
        mode: 0o644,
        content,
    }
}

/// Stores directories (each a sorted list of files) under one root.
fn store(w: &mut RepoWriter<'_>, dirs: &[Vec<(String, ContentId)>]) -> TreeId {
    let mut root = Vec::new();
    for (d, files) in dirs.iter().enumerate() {
        let mut entries: Vec<TreeEntry> = files
            .iter()
            .map(|(name, c)| TreeEntry {
                name: name.clone().into_bytes(),
                node: file(*c),
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let tree = w.put_tree(&Tree { entries }).expect("tree");
        root.push(TreeEntry {
            name: format!("Artist {d:03}").into_bytes(),
            node: Node::Dir {
                mtime_ns: 0,
                mode: 0o755,
                tree,
            },
        });
    }
    w.put_tree(&Tree { entries: root }).expect("root")
}

/// The two snapshots' roots.
fn build(repo: &Repository, ndirs: usize, nfiles: usize) -> (TreeId, TreeId) {
    let mut w = repo.writer().expect("writer");
    let mut dirs: Vec<Vec<(String, ContentId)>> = Vec::new();
    for d in 0..ndirs {
        let mut files = Vec::new();
        for f in 0..nfiles {
            let n = (d * nfiles + f) as u64;
            let title = format!("Track {n}");
            files.push((format!("{f:04} {title}.mp3"), track(&mut w, n, &title)));
        }
        dirs.push(files);
    }
    let old = store(&mut w, &dirs);
    // 100 changes, 4 per directory in 25 directories spread over the library.
    let step = ndirs / 25;
    for k in 0..25 {
        let d = k * step;
        let n = (d * nfiles) as u64;
        // Retag file 0.
        dirs[d][0].1 = track(&mut w, n, &format!("Retitled {n}"));
        // Remove file 1.
        dirs[d].remove(1);
        // Move file 2 (now at index 1) to the next directory.
        let moved = dirs[d].remove(1);
        let target = (d + 1) % ndirs;
        dirs[target].push((format!("moved {}", moved.0), moved.1));
        // Add a new track.
        let fresh = 1_000_000_000 + k as u64;
        dirs[d].push((
            format!("new {k}.mp3"),
            track(&mut w, fresh, &format!("New {k}")),
        ));
    }
    let new = store(&mut w, &dirs);
    w.commit().expect("commit");
    (new, old)
}

fn bench(c: &mut Criterion) {
    let (ndirs, nfiles) = sizes();
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::open(dir.path()).expect("repo");
    let (new, old) = build(&repo, ndirs, nfiles);
    let changes = diff_trees(&repo, old, new).expect("diff");
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    assert_eq!(changes.len(), 100);
    assert_eq!(
        [
            ChangeKind::Tags,
            ChangeKind::Moved,
            ChangeKind::Added,
            ChangeKind::Removed
        ]
        .map(count),
        [25; 4]
    );

    let mut group = c.benchmark_group("diff");
    group.sample_size(20);
    group.bench_function("identical", |b| {
        b.iter(|| diff_trees(&repo, black_box(old), black_box(old)).expect("diff"))
    });
    group.bench_function("100_changes", |b| {
        b.iter(|| diff_trees(&repo, black_box(old), black_box(new)).expect("diff"))
    });
    group.bench_function("100_changes+bytes", |b| {
        b.iter(|| {
            let changes = diff_trees(&repo, old, new).expect("diff");
            bytes_to_transfer(&repo, old, new, None, &changes).expect("bytes")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
