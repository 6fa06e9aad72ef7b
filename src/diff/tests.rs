//! The classes on synthetic snapshots built directly in a repository.

use std::collections::BTreeMap;

use super::*;
use crate::id::AudioHash;
use crate::media::tags::MediaInfo;
use crate::media::{Format, Region};
use crate::repo::RepoWriter;
use crate::snapshot::{ChunkRef, MediaRecord, Tree, TreeEntry};

/// A fake track: a tag chunk, an optional picture chunk and an audio chunk, with its media
/// record (audio hash from `audio`, title `title`).
fn track(w: &mut RepoWriter<'_>, audio: u8, title: &str, picture: Option<u8>) -> ContentId {
    track_with_tag(w, audio, title, format!("tag:{title}").as_bytes(), picture)
}

/// A fake track whose tag block holds `tag`.
fn track_with_tag(
    w: &mut RepoWriter<'_>,
    audio: u8,
    title: &str,
    tag: &[u8],
    picture: Option<u8>,
) -> ContentId {
    let mut regions = Vec::new();
    let mut chunks = Vec::new();
    let mut offset = 0;
    let mut region = |kind, bytes: Vec<u8>| {
        let len = bytes.len() as u64;
        regions.push(Region {
            kind,
            offset,
            len,
            transform: None,
        });
        chunks.push(ChunkRef {
            id: ChunkId::of(&bytes),
            len: len as u32,
        });
        offset += len;
    };
    region(RegionKind::Tag, tag.to_vec());
    if let Some(p) = picture {
        region(RegionKind::Picture, vec![p; 100]);
    }
    region(RegionKind::Audio, vec![audio; 1000]);
    let list = ChunkList {
        format: Format::Mp3,
        regions,
        chunks,
        file_hash: None,
    };
    let id = w.put_content(&list).expect("content");
    let media = MediaRecord {
        audio_hash: Some(AudioHash::from_stored([audio; 32])),
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

/// An opaque file with no audio hash.
fn opaque(w: &mut RepoWriter<'_>, bytes: &[u8]) -> ContentId {
    let list = ChunkList {
        format: Format::Opaque,
        regions: crate::media::Layout::opaque(bytes.len() as u64).regions,
        chunks: vec![ChunkRef {
            id: ChunkId::of(bytes),
            len: bytes.len() as u32,
        }],
        file_hash: None,
    };
    w.put_content(&list).expect("content")
}

enum Entry {
    File(ContentId),
    Link(&'static str),
    EmptyDir,
}

fn file(content: ContentId) -> Node {
    Node::File {
        size: 1,
        mtime_ns: 0,
        mode: 0o644,
        content,
    }
}

/// Builds the tree of `entries` (paths with `/`) and returns its root.
fn build(w: &mut RepoWriter<'_>, entries: &[(&str, Entry)]) -> TreeId {
    #[derive(Default)]
    struct Dir {
        nodes: BTreeMap<Vec<u8>, Node>,
        dirs: BTreeMap<Vec<u8>, Dir>,
    }
    fn store(w: &mut RepoWriter<'_>, dir: Dir) -> TreeId {
        let mut all = dir.nodes;
        for (name, sub) in dir.dirs {
            let tree = store(w, sub);
            all.insert(
                name,
                Node::Dir {
                    mtime_ns: 0,
                    mode: 0o755,
                    tree,
                },
            );
        }
        let tree = Tree {
            entries: all
                .into_iter()
                .map(|(name, node)| TreeEntry { name, node })
                .collect(),
        };
        w.put_tree(&tree).expect("tree")
    }
    let mut root = Dir::default();
    for (path, entry) in entries {
        let parts: Vec<&str> = path.split('/').collect();
        let (name, dirs) = parts.split_last().expect("name");
        let mut here = &mut root;
        for d in dirs {
            here = here.dirs.entry(d.as_bytes().to_vec()).or_default();
        }
        match entry {
            Entry::File(c) => {
                here.nodes.insert(name.as_bytes().to_vec(), file(*c));
            }
            Entry::Link(t) => {
                here.nodes.insert(
                    name.as_bytes().to_vec(),
                    Node::Symlink {
                        target: t.as_bytes().to_vec(),
                    },
                );
            }
            Entry::EmptyDir => {
                here.dirs.entry(name.as_bytes().to_vec()).or_default();
            }
        }
    }
    store(w, root)
}

fn summary(changes: &[Change]) -> Vec<(ChangeKind, String, Option<String>)> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind,
                String::from_utf8_lossy(&c.path).into_owned(),
                c.from
                    .as_ref()
                    .map(|f| String::from_utf8_lossy(f).into_owned()),
            )
        })
        .collect()
}

#[test]
fn identical_snapshots_have_no_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::open(dir.path()).expect("repo");
    let mut w = repo.writer().expect("writer");
    let t = track(&mut w, 1, "One", None);
    let root = build(&mut w, &[("A/one.mp3", Entry::File(t))]);
    w.commit().expect("commit");
    assert!(diff_trees(&repo, root, root).expect("diff").is_empty());
    assert_eq!(
        bytes_to_transfer(&repo, root, root, None, &[]).expect("bytes"),
        0
    );
}

#[test]
fn every_class() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::open(dir.path()).expect("repo");
    let mut w = repo.writer().expect("writer");
    let kept = track(&mut w, 1, "Kept", Some(9));
    let retag_old = track(&mut w, 2, "Old", Some(9));
    let retag_new = track(&mut w, 2, "New", Some(9));
    let art_old = track(&mut w, 3, "Art", Some(9));
    let art_new = track(&mut w, 3, "Art", Some(8));
    let audio_old = track(&mut w, 4, "Re", None);
    let audio_new = track(&mut w, 5, "Re", None);
    let mover = track(&mut w, 6, "Mover", None);
    let retag_move_old = track(&mut w, 7, "Before", None);
    let retag_move_new = track(&mut w, 7, "After", None);
    let gone = track(&mut w, 10, "Gone", None);
    let fresh = track(&mut w, 11, "Fresh", None);
    let text_old = opaque(&mut w, b"old text");
    let text_new = opaque(&mut w, b"new text");
    let old = build(
        &mut w,
        &[
            ("Album/kept.mp3", Entry::File(kept)),
            ("Album/retag.mp3", Entry::File(retag_old)),
            ("Album/art.mp3", Entry::File(art_old)),
            ("Album/audio.mp3", Entry::File(audio_old)),
            ("Old/mover.mp3", Entry::File(mover)),
            ("Old/renamed.mp3", Entry::File(retag_move_old)),
            ("Album/gone.mp3", Entry::File(gone)),
            ("notes.txt", Entry::File(text_old)),
            ("link", Entry::Link("a")),
            ("flip", Entry::File(kept)),
            ("Gone Dir/x.mp3", Entry::File(gone)),
        ],
    );
    let new = build(
        &mut w,
        &[
            ("Album/kept.mp3", Entry::File(kept)),
            ("Album/retag.mp3", Entry::File(retag_new)),
            ("Album/art.mp3", Entry::File(art_new)),
            ("Album/audio.mp3", Entry::File(audio_new)),
            ("New/mover.mp3", Entry::File(mover)),
            ("New/renamed2.mp3", Entry::File(retag_move_new)),
            ("Album/fresh.mp3", Entry::File(fresh)),
            ("notes.txt", Entry::File(text_new)),
            ("link", Entry::Link("b")),
            ("flip/inside.mp3", Entry::File(kept)),
            ("Empty", Entry::EmptyDir),
        ],
    );
    w.commit().expect("commit");
    let changes = diff_trees(&repo, old, new).expect("diff");
    let s = |k, p: &str, f: Option<&str>| (k, p.to_string(), f.map(str::to_string));
    use ChangeKind::*;
    assert_eq!(
        summary(&changes),
        vec![
            s(Added, "Empty/", None),
            s(Type, "flip", None),
            s(Modified, "link", None),
            s(Modified, "notes.txt", None),
            s(Art, "Album/art.mp3", None),
            s(Modified, "Album/audio.mp3", None),
            s(Added, "Album/fresh.mp3", None),
            s(Removed, "Album/gone.mp3", None),
            s(Tags, "Album/retag.mp3", None),
            s(Removed, "Gone Dir/x.mp3", None),
            s(Moved, "New/mover.mp3", Some("Old/mover.mp3")),
            s(Moved, "New/renamed2.mp3", Some("Old/renamed.mp3")),
        ]
    );
    let by_path = |p: &str| {
        changes
            .iter()
            .find(|c| c.path == p.as_bytes())
            .expect("change")
    };
    let retag = by_path("Album/retag.mp3");
    assert_eq!(
        retag.fields,
        Some(vec![FieldChange {
            field: "title".into(),
            before: vec!["Old".into()],
            after: vec!["New".into()],
        }])
    );
    let moved = by_path("New/renamed2.mp3");
    assert_eq!(
        moved.fields.as_ref().map(|f| f[0].after.clone()),
        Some(vec!["After".to_string()])
    );
    assert_eq!(by_path("New/mover.mp3").fields, None);
    assert_eq!(
        by_path("flip").kinds,
        Some((EntryKind::File, EntryKind::Directory))
    );
    let counts = Counts::of(&changes);
    assert_eq!(
        (counts.added, counts.removed, counts.modified, counts.tags),
        (2, 2, 3, 1)
    );
    assert_eq!((counts.art, counts.moved, counts.kind), (1, 2, 1));
    assert_eq!(counts.total(), 12);

    // Without A's locations, what A's changed files hold is not counted: the new data in B is
    // the new tag chunks, the new picture, the new audio, the fresh track and the new text.
    let bytes = bytes_to_transfer(&repo, old, new, None, &changes).expect("bytes");
    let expected = "tag:New".len() + 100 + 1000 + ("tag:Fresh".len() + 1000) + "new text".len();
    // The retagged move's new tag chunk; the file in the `flip` directory holds what the
    // file `flip` held in A.
    let expected = expected + "tag:After".len();
    assert_eq!(bytes, expected as u64);

    // Read the other way, every change is mirrored.
    let back = diff_trees(&repo, new, old).expect("diff");
    assert_eq!(
        summary(&back),
        vec![
            s(Removed, "Empty/", None),
            s(Type, "flip", None),
            s(Modified, "link", None),
            s(Modified, "notes.txt", None),
            s(Art, "Album/art.mp3", None),
            s(Modified, "Album/audio.mp3", None),
            s(Removed, "Album/fresh.mp3", None),
            s(Added, "Album/gone.mp3", None),
            s(Tags, "Album/retag.mp3", None),
            s(Added, "Gone Dir/x.mp3", None),
            s(Moved, "Old/mover.mp3", Some("New/mover.mp3")),
            s(Moved, "Old/renamed.mp3", Some("New/renamed2.mp3")),
        ]
    );
    let field_of = |path: &str| {
        back.iter()
            .find(|c| c.path == path.as_bytes())
            .and_then(|c| c.fields.clone())
    };
    assert_eq!(
        field_of("Album/retag.mp3"),
        Some(vec![FieldChange {
            field: "title".into(),
            before: vec!["New".into()],
            after: vec!["Old".into()],
        }])
    );
    assert_eq!(
        field_of("Old/renamed.mp3").map(|f| (f[0].before.clone(), f[0].after.clone())),
        Some((vec!["After".to_string()], vec!["Before".to_string()]))
    );
    assert_eq!(
        back.iter()
            .find(|c| c.path == b"flip")
            .and_then(|c| c.kinds),
        Some((EntryKind::Directory, EntryKind::File))
    );
}

#[test]
fn tags_win_over_art_and_a_rewritten_tag_block_is_tags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::open(dir.path()).expect("repo");
    let mut w = repo.writer().expect("writer");
    let both_old = track(&mut w, 1, "A", Some(1));
    let both_new = track(&mut w, 1, "B", Some(2));
    let same_old = track(&mut w, 2, "S", None);
    // The same audio and tags with a picture added: art.
    let same_new = track(&mut w, 2, "S", Some(3));
    // The same audio, tags and pictures, the tag block laid out anew.
    let block_old = track(&mut w, 3, "R", None);
    let block_new = track_with_tag(&mut w, 3, "R", b"tag:R with more padding", None);
    let old = build(
        &mut w,
        &[
            ("both", Entry::File(both_old)),
            ("same", Entry::File(same_old)),
            ("block", Entry::File(block_old)),
        ],
    );
    let new = build(
        &mut w,
        &[
            ("both", Entry::File(both_new)),
            ("same", Entry::File(same_new)),
            ("block", Entry::File(block_new)),
        ],
    );
    w.commit().expect("commit");
    let changes = diff_trees(&repo, old, new).expect("diff");
    let kinds: Vec<_> = changes
        .iter()
        .map(|c| (c.kind, c.fields.as_ref().map(Vec::len)))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (ChangeKind::Tags, Some(0)),
            (ChangeKind::Tags, Some(1)),
            (ChangeKind::Art, None)
        ]
    );
}

#[test]
fn a_move_prefers_the_same_name_among_equal_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = Repository::open(dir.path()).expect("repo");
    let mut w = repo.writer().expect("writer");
    let same = track(&mut w, 1, "Dup", None);
    let old = build(
        &mut w,
        &[
            ("a/x.mp3", Entry::File(same)),
            ("a/y.mp3", Entry::File(same)),
        ],
    );
    let new = build(
        &mut w,
        &[
            ("b/y.mp3", Entry::File(same)),
            ("b/z.mp3", Entry::File(same)),
        ],
    );
    w.commit().expect("commit");
    let changes = diff_trees(&repo, old, new).expect("diff");
    assert_eq!(
        summary(&changes),
        vec![
            (
                ChangeKind::Moved,
                "b/y.mp3".to_string(),
                Some("a/y.mp3".to_string())
            ),
            (
                ChangeKind::Moved,
                "b/z.mp3".to_string(),
                Some("a/x.mp3".to_string())
            ),
        ]
    );
}

#[test]
fn split_dir_keeps_an_empty_directory_whole() {
    assert_eq!(split_dir(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
    assert_eq!(split_dir(b"c"), (&b""[..], &b"c"[..]));
    assert_eq!(split_dir(b"a/Empty/"), (&b"a"[..], &b"Empty/"[..]));
}
