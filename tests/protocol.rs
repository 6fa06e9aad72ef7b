//! The sync protocol between two real musicfs processes over a pipe pair (`musicfs serve
//! --stdio` as a child), without SSH: pull and push give exact copies, a second run moves no
//! chunk, and a server that sends hostile trees or bad chunks is refused with nothing written.
//! The same protocol over a real sshd is tested in `tests/ssh.rs`.

mod util;

use std::process::{Child, Command, Stdio};

use musicfs::agent::{pull, push, Connection, Resume};
use musicfs::chunk::FastCdc;
use musicfs::origin::LocalOrigin;
use musicfs::repo::Repository;
use musicfs::report::NullSink;
use musicfs::sync::{SyncOptions, SyncSummary};
use util::{assert_trees_equal, TestRepo};

/// Starts `musicfs serve --stdio` with its own repository.
fn server(t: &TestRepo) -> (Child, Connection) {
    let mut child = Command::new(util::bin())
        .args(["serve", "--stdio"])
        .env("MUSICFS_REPO", t.path("remote-repo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start musicfs serve");
    let connection = Connection {
        input: Box::new(child.stdout.take().unwrap()),
        output: Box::new(child.stdin.take().unwrap()),
        origin: "pipe".into(),
    };
    (child, connection)
}

fn run_pull(t: &TestRepo, src: &std::path::Path, dst: &std::path::Path) -> SyncSummary {
    pull_over(t, src, dst, |connection| connection)
}

/// A pull from a real server over `tap(connection)` (a connection wrapped to watch it).
fn pull_over(
    t: &TestRepo,
    src: &std::path::Path,
    dst: &std::path::Path,
    tap: impl FnOnce(Connection) -> Connection,
) -> SyncSummary {
    let repo = Repository::open(&t.path("local-repo")).unwrap();
    let destination = LocalOrigin::open(dst, true).unwrap();
    let (mut child, connection) = server(t);
    let connection = tap(connection);
    let summary = pull(
        &repo,
        connection,
        src.as_os_str().as_encoded_bytes(),
        &destination,
        &FastCdc::default(),
        SyncOptions {
            delete: true,
            ..SyncOptions::default()
        },
        &NullSink,
        &mut Resume::default(),
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    summary
}

fn run_push(t: &TestRepo, src: &std::path::Path, dst: &std::path::Path) -> SyncSummary {
    let repo = Repository::open(&t.path("local-repo")).unwrap();
    let source = LocalOrigin::open(src, false).unwrap();
    let (mut child, connection) = server(t);
    let summary = push(
        &repo,
        &source,
        connection,
        dst.as_os_str().as_encoded_bytes(),
        &FastCdc::default(),
        SyncOptions {
            delete: true,
            ..SyncOptions::default()
        },
        &NullSink,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    summary
}

#[test]
fn pull_copies_exactly_and_a_second_pull_moves_nothing() {
    let t = TestRepo::new();
    let src = t.fixtures("music");
    let dst = t.path("lib");
    let first = run_pull(&t, &src, &dst);
    assert_trees_equal(&src, &dst);
    assert!(first.bytes_transferred > 0);
    assert!(first.bytes_transferred <= util::tree_bytes(&src));
    let second = run_pull(&t, &src, &dst);
    assert_eq!(second.bytes_transferred, 0);
    assert_eq!(second.files_changed, 0);
    assert_trees_equal(&src, &dst);
}

#[test]
fn push_copies_exactly_and_moves_reuse_destination_chunks() {
    let t = TestRepo::new();
    let src = t.fixtures("music");
    let dst = t.path("remote-lib");
    let first = run_push(&t, &src, &dst);
    assert_trees_equal(&src, &dst);
    assert!(first.bytes_transferred <= util::tree_bytes(&src));
    // Move every file into a new folder: nothing crosses.
    let moved = t.mkdir("music/moved");
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::rename(entry.path(), moved.join(entry.file_name())).unwrap();
        }
    }
    let second = run_push(&t, &src, &dst);
    assert_trees_equal(&src, &dst);
    assert_eq!(second.bytes_transferred, 0);
}

/// In a push the server is the destination of protocol 6's answers: it fills in the ids the
/// client leaves out, and a retag deep in the tree arrives byte for byte.
#[test]
fn a_pushed_edit_deep_in_the_tree_arrives_exact() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let album = t.mkdir("src/Artist/Album");
    std::fs::create_dir_all(src.join("Other/Album")).unwrap();
    std::fs::write(src.join("Other/Album/notes.txt"), b"unchanged").unwrap();
    std::fs::write(album.join("notes.txt"), b"Title: the old title\n").unwrap();
    std::fs::write(album.join("cue.txt"), b"FILE \"a.flac\" WAVE\n").unwrap();
    let dst = t.path("remote-lib");
    run_push(&t, &src, &dst);
    run_push(&t, &src, &dst);
    std::fs::write(album.join("notes.txt"), b"Title: The New Title\n").unwrap();
    let edit = run_push(&t, &src, &dst);
    assert_trees_equal(&src, &dst);
    assert_eq!(edit.files_changed, 1);
}

mod hostile {
    use super::*;
    use musicfs::agent::wire::{read_message, write_message, Message, Object, SourceInfo};
    use musicfs::id::TreeId;
    use musicfs::snapshot::{ChunkList, Tree};
    use std::os::unix::net::UnixStream;

    /// A server that greets, describes `root`, then answers each request with `answer`.
    pub(super) fn fake_server(
        root: TreeId,
        answer: impl Fn(Message) -> Vec<Message> + Send + 'static,
    ) -> (Connection, std::thread::JoinHandle<()>) {
        fake_server_scanning(Vec::new(), root, answer)
    }

    /// A fake server that sends `scanning` between its greeting and its snapshot.
    pub(super) fn fake_server_scanning(
        scanning: Vec<Message>,
        root: TreeId,
        answer: impl Fn(Message) -> Vec<Message> + Send + 'static,
    ) -> (Connection, std::thread::JoinHandle<()>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let handle = std::thread::spawn(move || {
            let mut input = theirs.try_clone().unwrap();
            let mut output = theirs;
            let _hello = read_message(&mut input).unwrap();
            let _pull = read_message(&mut input).unwrap();
            let hello = Message::Hello {
                magic: musicfs::agent::wire::MAGIC,
                version: musicfs::agent::wire::PROTOCOL_VERSION,
                format: musicfs::chunk::CHUNKING_VERSION,
            };
            let source = Message::Source(SourceInfo {
                root,
                files: 1,
                bytes: 4,
                unreadable: Vec::new(),
                root_meta: None,
            });
            write_message(&mut output, &hello).unwrap();
            for m in &scanning {
                write_message(&mut output, m).unwrap();
            }
            write_message(&mut output, &source).unwrap();
            while let Ok(Some(request)) = read_message(&mut input) {
                for reply in answer(request) {
                    if write_message(&mut output, &reply).is_err() {
                        return;
                    }
                }
            }
        });
        let connection = Connection {
            input: Box::new(ours.try_clone().unwrap()),
            output: Box::new(ours),
            origin: "hostile".into(),
        };
        (connection, handle)
    }

    /// Pulls from a fake server that gives each answer to the tree request in turn, and
    /// checks that each is refused as a protocol error naming `why`, before the destination
    /// is created.
    pub(super) fn refused_with_nothing_written(root: TreeId, bad: Vec<(Vec<Message>, &str)>) {
        for (answer, why) in bad {
            let t = TestRepo::new();
            let (connection, server) = fake_server(root, move |request| match request {
                Message::GetSince { root: Some(_), .. } => answer.clone(),
                _ => Vec::new(),
            });
            let err = pull_from(&t, connection).unwrap_err();
            assert!(
                matches!(err, musicfs::error::Error::Protocol { .. }),
                "{why}: {err}"
            );
            assert!(err.to_string().contains(why), "{why}: {err}");
            assert!(
                !t.path("lib").exists(),
                "{why}: the destination was created"
            );
            drop(server);
        }
    }

    pub(super) fn pull_from(
        t: &TestRepo,
        connection: Connection,
    ) -> musicfs::error::Result<SyncSummary> {
        pull_showing(t, connection, &NullSink)
    }

    pub(super) fn pull_showing(
        t: &TestRepo,
        connection: Connection,
        sink: &dyn musicfs::report::Sink,
    ) -> musicfs::error::Result<SyncSummary> {
        let repo = Repository::open(&t.path("local-repo")).unwrap();
        let destination = LocalOrigin::open(&t.path("lib"), true).unwrap();
        pull(
            &repo,
            connection,
            b"music",
            &destination,
            &FastCdc::default(),
            SyncOptions::default(),
            sink,
            &mut Resume::default(),
        )
    }

    pub(super) fn serve_tree(
        tree: Tree,
        list: ChunkList,
        chunk: Vec<u8>,
    ) -> impl Fn(Message) -> Vec<Message> {
        move |request| match request {
            Message::GetTrees(_) => vec![Message::Trees(vec![tree.encode()])],
            Message::GetContents(_) => vec![Message::Contents(vec![list.encode()])],
            Message::GetTreesSince(_) => vec![Message::Objects(vec![Object::Plain(tree.encode())])],
            Message::GetContentsSince(_) => {
                vec![Message::Objects(vec![Object::Plain(list.encode())])]
            }
            Message::GetSince { root: Some(_), .. } => {
                vec![found(
                    vec![(None, tree.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )]
            }
            Message::GetSince {
                root: None,
                entries,
            } => vec![found(
                entries.iter().map(|e| (Some(*e), list.encode())).collect(),
                Vec::new(),
                Vec::new(),
                false,
            )],
            Message::GetChunks(refs) => {
                refs.iter().map(|_| Message::Chunk(chunk.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A tree or chunk list of a protocol 5 answer: its place and its encoding.
    pub(super) type Placed = (Option<(u32, u32)>, Vec<u8>);

    /// A protocol 5 answer holding `items` (their place and encoding, none against a base)
    /// and `chunks` (their place and bytes, after the encodings).
    pub(super) fn found(
        items: Vec<Placed>,
        chunks: Vec<(u32, u32)>,
        chunk_bytes: Vec<u8>,
        more: bool,
    ) -> Message {
        let mut bytes: Vec<u8> = items.iter().flat_map(|(_, e)| e.clone()).collect();
        bytes.extend(chunk_bytes);
        Message::Found {
            items: items
                .iter()
                .map(|(at, e)| musicfs::agent::wire::Found {
                    at: *at,
                    size: e.len() as u32,
                    based: false,
                })
                .collect(),
            chunks,
            len: bytes.len() as u32,
            data: zstd::bulk::compress(&bytes, 3).unwrap(),
            more,
        }
    }

    #[test]
    fn hostile_names_are_refused_and_nothing_is_written() {
        for name in [
            &b".."[..],
            b"a/../../etc",
            b"/etc/passwd",
            b"a\0b",
            &[b'n'; 300],
        ] {
            let t = TestRepo::new();
            let (tree, list) = util::one_file_tree(name, b"evil");
            let (connection, server) =
                fake_server(tree.tree_id(), serve_tree(tree, list, b"evil".to_vec()));
            let err = pull_from(&t, connection).unwrap_err();
            assert!(
                matches!(err, musicfs::error::Error::Protocol { .. }),
                "{name:?}: {err}"
            );
            assert!(err.to_string().contains("refused"), "{err}");
            assert!(
                !t.path("lib").exists(),
                "{name:?}: the destination was created"
            );
            drop(server);
        }
    }

    #[test]
    fn a_chunk_that_fails_its_hash_is_refused() {
        let t = TestRepo::new();
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let (connection, server) =
            fake_server(tree.tree_id(), serve_tree(tree, list, b"evil".to_vec()));
        let err = pull_from(&t, connection).unwrap_err();
        assert!(err.to_string().contains("does not match its hash"), "{err}");
        assert!(!t.path("lib/song.mp3").exists());
        let leftovers: Vec<_> = std::fs::read_dir(t.path("lib")).unwrap().collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        drop(server);
    }

    #[test]
    fn a_tree_that_does_not_match_its_hash_is_refused() {
        let t = TestRepo::new();
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let (other, _) = util::one_file_tree(b"other.mp3", b"good");
        let (connection, server) =
            fake_server(other.tree_id(), serve_tree(tree, list, b"good".to_vec()));
        let err = pull_from(&t, connection).unwrap_err();
        assert!(err.to_string().contains("does not match its hash"), "{err}");
        assert!(!t.path("lib").exists());
        drop(server);
    }

    /// A chunk sent unasked with a chunk list (protocol 5) is checked against its hash
    /// before anything is written, as an asked one is. (From protocol 6 on, a destination
    /// without a base is sent nothing unasked: the chunk comes with the list it asks for.)
    #[test]
    fn an_unasked_chunk_that_fails_its_hash_is_refused() {
        let t = TestRepo::new();
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let (connection, server) = fake_server(tree.tree_id(), move |request| match request {
            Message::GetSince { root: Some(_), .. } => {
                vec![found(
                    vec![(None, tree.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )]
            }
            Message::GetSince { root: None, .. } => vec![found(
                vec![(Some((0, 0)), list.encode())],
                vec![(0, 0)],
                b"evil".to_vec(),
                false,
            )],
            _ => Vec::new(),
        });
        let err = pull_from(&t, connection).unwrap_err();
        assert!(
            matches!(err, musicfs::error::Error::Protocol { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("does not match its hash"), "{err}");
        assert!(!t.path("lib").exists());
        drop(server);
    }

    /// Places that name nothing sent, answers that do not add up, and a root sent twice are
    /// protocol errors.
    #[test]
    fn answers_in_the_wrong_place_are_refused() {
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let encoded = tree.encode();
        let mut short = found(vec![(None, encoded.clone())], Vec::new(), Vec::new(), false);
        if let Message::Found { len, .. } = &mut short {
            *len -= 1;
        }
        let bad: Vec<(Vec<Message>, &str)> = vec![
            (
                vec![found(
                    vec![(None, encoded.clone()), (Some((1, 0)), list.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )],
                "no tree 1",
            ),
            (
                vec![
                    found(vec![(None, encoded.clone())], Vec::new(), Vec::new(), true),
                    found(
                        vec![(Some((0, 7)), list.encode())],
                        Vec::new(),
                        Vec::new(),
                        false,
                    ),
                ],
                "no entry 7",
            ),
            (
                vec![
                    found(vec![(None, encoded.clone())], Vec::new(), Vec::new(), true),
                    found(vec![(None, encoded.clone())], Vec::new(), Vec::new(), false),
                ],
                "a second root",
            ),
            (vec![short], "add up"),
            (
                vec![found(
                    vec![(None, encoded.clone())],
                    vec![(0, 0)],
                    b"good".to_vec(),
                    false,
                )],
                "no chunk list",
            ),
        ];
        refused_with_nothing_written(tree.tree_id(), bad);
    }

    /// Protocol 6: against a destination that has a base, an item sent unasked at an entry
    /// its tree's base lacks, under a name the tree lacks, or whose tree leaves out an id it
    /// does not match, is refused, and the destination keeps what it had.
    #[test]
    fn unasked_items_placed_in_the_base_are_checked() {
        use musicfs::snapshot::{Node, TreeEntry};
        let (old_tree, old_list) = util::one_file_tree(b"song.mp3", b"good");
        let (new_tree, new_list) = util::one_file_tree(b"song.mp3", b"bad!");
        let (renamed, _) = util::one_file_tree(b"other.mp3", b"bad!");
        // The new tree with the list's id left out, as a protocol 6 source sends it.
        let mut implied = new_tree.clone();
        if let Node::File { content, .. } = &mut implied.entries[0].node {
            *content = musicfs::id::ContentId::from_stored([0; 32]);
        }
        let (_, wrong_list) = util::one_file_tree(b"song.mp3", b"bad?");
        let two = Tree {
            entries: vec![
                new_tree.entries[0].clone(),
                TreeEntry {
                    name: b"z.mp3".to_vec(),
                    node: new_tree.entries[0].node.clone(),
                },
            ],
        };
        let cases: Vec<(Tree, Vec<Message>, &str)> = vec![
            (
                new_tree.clone(),
                vec![found(
                    vec![(None, implied.encode()), (Some((0, 5)), new_list.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )],
                "no entry 5",
            ),
            (
                renamed.clone(),
                vec![found(
                    vec![(None, renamed.encode()), (Some((0, 0)), new_list.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )],
                "that tree 0 has not",
            ),
            (
                new_tree.clone(),
                vec![found(
                    vec![
                        (None, implied.encode()),
                        (Some((0, 0)), wrong_list.encode()),
                    ],
                    Vec::new(),
                    Vec::new(),
                    false,
                )],
                "does not match its hash",
            ),
            (
                two.clone(),
                vec![found(
                    vec![(None, two.encode()), (Some((1, 0)), new_list.encode())],
                    Vec::new(),
                    Vec::new(),
                    false,
                )],
                "no tree 1",
            ),
        ];
        for (root, answer, why) in cases {
            let t = TestRepo::new();
            let (connection, server) = fake_server(
                old_tree.tree_id(),
                serve_tree(old_tree.clone(), old_list.clone(), b"good".to_vec()),
            );
            pull_from(&t, connection).unwrap();
            drop(server);
            assert_eq!(std::fs::read(t.path("lib/song.mp3")).unwrap(), b"good");
            let (connection, server) = fake_server(root.tree_id(), move |request| match request {
                Message::GetSince { root: Some(_), .. } => answer.clone(),
                _ => Vec::new(),
            });
            let err = pull_from(&t, connection).unwrap_err();
            assert!(
                matches!(err, musicfs::error::Error::Protocol { .. }),
                "{why}: {err}"
            );
            assert!(err.to_string().contains(why), "{why}: {err}");
            assert_eq!(
                std::fs::read(t.path("lib/song.mp3")).unwrap(),
                b"good",
                "{why}"
            );
            drop(server);
        }
    }
}

mod places_in_the_base {
    use super::hostile::{fake_server, found, pull_from, serve_tree};
    use super::*;
    use musicfs::agent::wire::Message;
    use musicfs::snapshot::Node;

    /// Protocol 6: an answer whose tree leaves out the id of the chunk list it sends
    /// unasked, and whose list leaves out the id of the chunk it sends, is filled in by
    /// hashing them, and the file arrives with no other request.
    #[test]
    fn ids_left_out_are_filled_in_from_what_the_answer_holds() {
        let t = TestRepo::new();
        let (old_tree, old_list) = util::one_file_tree(b"song.mp3", b"good");
        let (connection, server) = fake_server(
            old_tree.tree_id(),
            serve_tree(old_tree.clone(), old_list, b"good".to_vec()),
        );
        pull_from(&t, connection).unwrap();
        drop(server);
        let (new_tree, new_list) = util::one_file_tree(b"song.mp3", b"new!");
        let mut tree_sent = new_tree.clone();
        if let Node::File { content, .. } = &mut tree_sent.entries[0].node {
            *content = musicfs::id::ContentId::from_stored([0; 32]);
        }
        let mut list_sent = new_list.clone();
        list_sent.chunks[0].id = musicfs::id::ChunkId::from_stored([0; 32]);
        let answer = found(
            vec![
                (None, tree_sent.encode()),
                (Some((0, 0)), list_sent.encode()),
            ],
            vec![(1, 0)],
            b"new!".to_vec(),
            false,
        );
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&asked);
        let (connection, server) = fake_server(new_tree.tree_id(), move |request| {
            seen.lock().unwrap().push(format!("{request:?}"));
            match request {
                Message::GetSince { root: Some(_), .. } => vec![answer.clone()],
                _ => Vec::new(),
            }
        });
        let summary = pull_from(&t, connection).unwrap();
        drop(server);
        assert_eq!(std::fs::read(t.path("lib/song.mp3")).unwrap(), b"new!");
        assert_eq!(summary.chunks_transferred, 1);
        let asked = asked.lock().unwrap();
        assert!(
            asked.iter().all(|r| !r.starts_with("GetChunks")),
            "{asked:?}"
        );
    }
}

mod liveness {
    use super::hostile::{fake_server, fake_server_scanning, pull_from, pull_showing, serve_tree};
    use super::*;
    use musicfs::agent::wire::Message;
    use std::sync::Mutex;

    /// Records the progress calls a sync makes.
    #[derive(Default)]
    struct Progress(Mutex<Vec<(String, u64)>>);

    impl musicfs::report::Sink for Progress {
        fn event(&self, _event: &musicfs::report::Event) {}

        fn phase(&self, name: &str, _files: u64, bytes: u64) {
            self.0.lock().unwrap().push((name.to_string(), bytes));
        }

        fn advance(&self, bytes: u64) {
            self.0.lock().unwrap().push(("advance".to_string(), bytes));
        }
    }

    #[test]
    fn the_remote_scan_shows_as_progress() {
        let t = TestRepo::new();
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let scanning = vec![
            Message::Working { done: 0, total: 0 },
            Message::Working {
                done: 300,
                total: 1000,
            },
            Message::Working {
                done: 1000,
                total: 1000,
            },
        ];
        let (connection, server) = fake_server_scanning(
            scanning,
            tree.tree_id(),
            serve_tree(tree, list, b"good".to_vec()),
        );
        let progress = Progress::default();
        pull_showing(&t, connection, &progress).unwrap();
        let calls = progress.0.into_inner().unwrap();
        let remote: u64 = calls
            .iter()
            .filter(|(name, _)| name == "remote scan")
            .map(|(_, bytes)| bytes)
            .sum();
        assert_eq!(remote, 1000, "{calls:?}");
        assert!(calls.contains(&("advance".to_string(), 300)), "{calls:?}");
        assert!(calls.contains(&("advance".to_string(), 700)), "{calls:?}");
        drop(server);
    }

    #[test]
    fn heartbeats_between_answers_are_ignored() {
        let t = TestRepo::new();
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let answer = serve_tree(tree.clone(), list, b"good".to_vec());
        let (connection, server) = fake_server(tree.tree_id(), move |request| {
            let mut replies = vec![Message::Working { done: 1, total: 2 }];
            for reply in answer(request) {
                replies.push(reply);
                replies.push(Message::Working { done: 2, total: 2 });
            }
            replies
        });
        let summary = pull_from(&t, connection).unwrap();
        assert_eq!(summary.errors, 0);
        assert_eq!(std::fs::read(t.path("lib/song.mp3")).unwrap(), b"good");
        drop(server);
    }
}

/// Protocol 4: trees, chunk lists and tag chunks compressed on the wire, trees and chunk lists
/// as deltas against what the destination holds; older clients served as before.
mod compression {
    use super::*;
    use musicfs::agent::wire::{read_message, write_message, Message, MAGIC};
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// Counts the bytes read through it.
    struct Counting(Box<dyn Read + Send>, Arc<AtomicU64>);

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }

    /// A pull from a real server, returning the bytes the server sent.
    fn counted_pull(t: &TestRepo, src: &std::path::Path, dst: &std::path::Path) -> u64 {
        counted_pull_summary(t, src, dst).0
    }

    /// A pull from a real server, returning the bytes the server sent and the summary.
    fn counted_pull_summary(
        t: &TestRepo,
        src: &std::path::Path,
        dst: &std::path::Path,
    ) -> (u64, SyncSummary) {
        let count = Arc::new(AtomicU64::new(0));
        let summary = pull_over(t, src, dst, |mut connection| {
            connection.input = Box::new(Counting(connection.input, Arc::clone(&count)));
            connection
        });
        assert_trees_equal(src, dst);
        (count.load(Ordering::Relaxed), summary)
    }

    /// Bytes that do not compress, the same for every seed.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// The chunk list's encoding the local repository records for `name` in the latest
    /// snapshot of `dst`.
    fn chunk_list_of(t: &TestRepo, dst: &std::path::Path, name: &[u8]) -> Vec<u8> {
        use musicfs::origin::Origin;
        let repo = Repository::open(&t.path("local-repo")).unwrap();
        let origin = LocalOrigin::open(dst, false).unwrap();
        let (_, record) = repo.latest_snapshot(origin.url()).unwrap().unwrap();
        let tree = repo.tree(&record.root).unwrap();
        match &tree.get(name).unwrap().node {
            musicfs::snapshot::Node::File { content, .. } => {
                repo.content(content).unwrap().encode()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_changed_file_costs_a_delta_of_its_chunk_list() {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        let dst = t.path("lib");
        let mut data = noise(8 << 20, 1);
        std::fs::write(src.join("big.bin"), &data).unwrap();
        counted_pull(&t, &src, &dst);
        // A second pull scans the destination: its snapshot is the base of the next.
        counted_pull(&t, &src, &dst);
        // The last bytes change: one chunk of about 130 is new.
        let end = data.len() - 100;
        data[end..].copy_from_slice(&noise(100, 2));
        std::fs::write(src.join("big.bin"), &data).unwrap();
        let (sent, summary) = counted_pull_summary(&t, &src, &dst);
        assert_eq!(summary.chunks_transferred, 1);
        counted_pull(&t, &src, &dst);
        let list = chunk_list_of(&t, &dst, b"big.bin");
        let beyond = sent - summary.bytes_transferred;
        assert!(
            (beyond as usize) * 2 < list.len(),
            "{beyond} bytes sent beyond the new chunk: not under half the chunk list ({} bytes)",
            list.len()
        );
    }

    #[test]
    fn names_and_tags_go_compressed() {
        let t = TestRepo::new();
        let src = t.fixtures("src");
        // A directory of many similar names: its tree compresses.
        let many = t.mkdir("src/many");
        for i in 0..300 {
            std::fs::write(
                many.join(format!(
                    "{i:03} - The Same Long Artist Name - The Same Album.txt"
                )),
                b"x",
            )
            .unwrap();
        }
        let dst = t.path("lib");
        let (sent, summary) = counted_pull_summary(&t, &src, &dst);
        let names: u64 = (0..300)
            .map(|i| {
                format!("{i:03} - The Same Long Artist Name - The Same Album.txt").len() as u64
            })
            .sum();
        // Uncompressed, the chunks alone (real tagged audio) and the names would be more.
        assert!(
            sent < summary.bytes_transferred + names / 2,
            "{sent} bytes sent for {} bytes of chunks and {names} bytes of names",
            summary.bytes_transferred
        );
    }

    /// What the server answers, frame by frame (packs not opened), to a session of `version`
    /// that asks for the source's root tree.
    /// Starts `musicfs serve --stdio` with a repository of its own under `t`, and returns it
    /// with its input and output.
    fn serve_stdio(
        t: &TestRepo,
        stderr: std::process::Stdio,
    ) -> (
        std::process::Child,
        std::process::ChildStdin,
        std::process::ChildStdout,
    ) {
        use std::process::{Command, Stdio};
        let mut child = Command::new(util::bin())
            .args(["serve", "--stdio"])
            .env("MUSICFS_REPO", t.path("remote-repo"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        (child, input, output)
    }

    /// Starts `musicfs serve --stdio` (as [`serve_stdio`]) and greets it as a client of
    /// `version` whose `Hello` carries `format`, asking to pull `src`.
    fn start_pull(
        t: &TestRepo,
        src: &std::path::Path,
        version: u32,
        format: u32,
        stderr: std::process::Stdio,
    ) -> (
        std::process::Child,
        std::process::ChildStdin,
        std::process::ChildStdout,
    ) {
        let (child, mut input, output) = serve_stdio(t, stderr);
        let hello = Message::Hello {
            magic: MAGIC,
            version,
            format,
        };
        let pull = Message::Pull {
            path: src.as_os_str().as_encoded_bytes().to_vec(),
            checksum: false,
        };
        write_message(&mut input, &hello).unwrap();
        write_message(&mut input, &pull).unwrap();
        (child, input, output)
    }

    /// The server's next message, past its `Working` beats.
    fn next_message(output: &mut std::process::ChildStdout) -> Message {
        loop {
            match read_message(output).unwrap().unwrap() {
                Message::Working { .. } => continue,
                m => return m,
            }
        }
    }

    fn root_tree_answer(t: &TestRepo, src: &std::path::Path, version: u32) -> Message {
        use std::process::Stdio;
        let (mut child, mut input, mut output) = start_pull(
            t,
            src,
            version,
            musicfs::chunk::CHUNKING_VERSION,
            Stdio::inherit(),
        );
        let mut next = || next_message(&mut output);
        assert!(matches!(next(), Message::Hello { version: v, .. } if v == version));
        let Message::Source(info) = next() else {
            panic!("no snapshot")
        };
        let ask = if version >= 5 {
            Message::GetSince {
                root: Some((info.root, None)),
                entries: Vec::new(),
            }
        } else if version >= 4 {
            Message::GetTreesSince(vec![(info.root, None)])
        } else {
            Message::GetTrees(vec![info.root])
        };
        write_message(&mut input, &ask).unwrap();
        let answer = next();
        write_message(&mut input, &Message::Bye).unwrap();
        drop(input);
        assert!(child.wait().unwrap().success());
        answer
    }

    /// The whole answer to a session's root request, in `version`, against `base`: the
    /// source's root and the `Found` messages, up to the last.
    fn since_answer(
        t: &TestRepo,
        src: &std::path::Path,
        version: u32,
        base: Option<musicfs::id::TreeId>,
    ) -> (musicfs::id::TreeId, Vec<Message>) {
        use std::process::Stdio;
        let (mut child, mut input, mut output) = start_pull(
            t,
            src,
            version,
            musicfs::chunk::CHUNKING_VERSION,
            Stdio::inherit(),
        );
        let mut next = || next_message(&mut output);
        assert!(matches!(next(), Message::Hello { version: v, .. } if v == version));
        let Message::Source(info) = next() else {
            panic!("no snapshot")
        };
        let ask = Message::GetSince {
            root: Some((info.root, base)),
            entries: Vec::new(),
        };
        write_message(&mut input, &ask).unwrap();
        let mut answer = Vec::new();
        loop {
            let message = next();
            let more = matches!(message, Message::Found { more: true, .. });
            assert!(matches!(message, Message::Found { .. }), "{message:?}");
            answer.push(message);
            if !more {
                break;
            }
        }
        write_message(&mut input, &Message::Bye).unwrap();
        drop(input);
        assert!(child.wait().unwrap().success());
        (info.root, answer)
    }

    /// An edit deep in the tree is answered to a protocol 5 client as before, one `Found`
    /// per level, each item in a tree of an earlier message; to a protocol 6 client in one
    /// `Found`, smaller, its unasked items placed in their tree's base.
    #[test]
    fn an_edit_is_answered_per_level_to_protocol_5_and_in_one_frame_from_6() {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        let album = t.mkdir("src/Artist/Album");
        std::fs::create_dir_all(src.join("Other")).unwrap();
        std::fs::write(src.join("Other/notes.txt"), b"unchanged").unwrap();
        std::fs::write(album.join("a.txt"), b"first").unwrap();
        std::fs::write(album.join("notes.txt"), b"Title: the old title\n").unwrap();
        let (base, _) = since_answer(&t, &src, 6, None);
        std::fs::write(album.join("notes.txt"), b"Title: The New Title\n").unwrap();
        std::fs::write(album.join("b.txt"), b"new").unwrap();
        let wire = |answer: &[Message]| {
            let mut bytes = Vec::new();
            for m in answer {
                write_message(&mut bytes, m).unwrap();
            }
            bytes.len()
        };
        let places = |answer: &[Message]| -> Vec<Vec<Option<(u32, u32)>>> {
            answer
                .iter()
                .map(|m| match m {
                    Message::Found { items, .. } => items.iter().map(|i| i.at).collect(),
                    _ => Vec::new(),
                })
                .collect()
        };
        let (_, five) = since_answer(&t, &src, 5, Some(base));
        // The root, `Artist` (entry 0 of the root), `Album`, then `notes.txt`: entry 2 of
        // its tree (`b.txt` is new), entry 1 of its base.
        assert_eq!(
            places(&five),
            vec![
                vec![None],
                vec![Some((0, 0))],
                vec![Some((1, 0))],
                vec![Some((2, 2))]
            ]
        );
        let (_, six) = since_answer(&t, &src, 6, Some(base));
        assert_eq!(
            places(&six),
            vec![vec![None, Some((0, 0)), Some((1, 0)), Some((2, 1))]]
        );
        assert!(
            wire(&six) < wire(&five),
            "{} B, {} B",
            wire(&six),
            wire(&five)
        );
    }

    #[test]
    fn protocol_3_clients_are_answered_uncompressed() {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        for i in 0..100 {
            std::fs::write(
                src.join(format!("{i:03} - Same Artist - Same Album.flac")),
                b"x",
            )
            .unwrap();
        }
        let Message::Trees(plain) = root_tree_answer(&t, &src, 3) else {
            panic!("protocol 3: not Trees")
        };
        assert_eq!(plain.len(), 1);
        match root_tree_answer(&t, &src, 4) {
            Message::Packed { len, data } => assert!(data.len() * 2 < len as usize),
            other => panic!("protocol 4: not packed: {other:?}"),
        }
        match root_tree_answer(&t, &src, 5) {
            Message::Found {
                items, len, data, ..
            } => {
                assert_eq!(items.len(), 1);
                assert!(data.len() * 2 < len as usize);
            }
            other => panic!("protocol 5: not Found: {other:?}"),
        }
    }

    /// Greets `musicfs serve --stdio`, whose repository is `t`'s `remote-repo`, as a client of
    /// the current protocol whose `Hello` carries chunking rules `format`, and returns the
    /// server's greeting and its next message.
    fn greet_with_format(t: &TestRepo, format: u32) -> (Message, Message) {
        use musicfs::agent::wire::PROTOCOL_VERSION;
        use std::process::Stdio;
        let src = t.path("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("a.bin"), b"four").unwrap();
        let (mut child, input, mut output) =
            start_pull(t, &src, PROTOCOL_VERSION, format, Stdio::null());
        let mut next = || next_message(&mut output);
        let answers = (next(), next());
        drop(input);
        let _ = child.wait();
        answers
    }

    /// The handshake carries the chunking rules of the client's repository. A server whose
    /// repository does not exist yet creates it with the client's rules, whichever this build
    /// knows (4: a release of repository format 4 sends its format, 4, whose rules these are);
    /// a server whose repository cuts by other rules, or a client of rules this build does not
    /// know, is refused in one line that names both.
    #[test]
    fn the_servers_repository_is_made_with_the_clients_chunking_rules_and_other_rules_refused() {
        use musicfs::chunk::{
            CHUNKING_VERSION, RULES_CONTENT_DEFINED, RULES_FIXED_AUDIO, RULES_FIXED_PICTURES,
        };
        assert_eq!(CHUNKING_VERSION, RULES_FIXED_PICTURES);
        const { assert!(musicfs::repo::FORMAT_VERSION > 4) };
        let all = [
            (RULES_CONTENT_DEFINED, "\"fastcdc-2020\""),
            (RULES_FIXED_AUDIO, "\"fastcdc-2020-fixed-audio\""),
            (RULES_FIXED_PICTURES, "\"fastcdc-2020-fixed-pictures\""),
        ];
        for (i, (rules, algorithm)) in all.into_iter().enumerate() {
            let t = TestRepo::new();
            let (hello, source) = greet_with_format(&t, rules);
            assert!(
                matches!(hello, Message::Hello { format, .. } if format == rules),
                "{hello:?}"
            );
            assert!(
                matches!(&source, Message::Source(info) if info.files == 1),
                "rules {rules}: {source:?}"
            );
            let toml = std::fs::read_to_string(t.path("remote-repo").join("repo.toml")).unwrap();
            assert!(toml.contains(&format!("algorithm = {algorithm}")), "{toml}");
            // The same repository again, greeted with other rules: refused.
            let other = all[(i + 1) % all.len()].0;
            let (hello, refused) = greet_with_format(&t, other);
            assert!(
                matches!(hello, Message::Hello { format, .. } if format == rules),
                "the refusal's greeting names the server's rules: {hello:?}"
            );
            let Message::Failed(why) = refused else {
                panic!("chunking rules {other} not refused: {refused:?}")
            };
            assert!(!why.contains('\n'), "{why}");
            assert!(
                why.contains(&format!("chunking rules {other}"))
                    && why.contains(&format!("by rules {rules}")),
                "{why}"
            );
        }
        let t = TestRepo::new();
        let (_, refused) = greet_with_format(&t, RULES_FIXED_PICTURES + 1);
        let Message::Failed(why) = refused else {
            panic!("unknown chunking rules not refused: {refused:?}")
        };
        assert!(!why.contains('\n'), "{why}");
        assert!(
            why.contains(&format!("chunking rules {}", RULES_FIXED_PICTURES + 1))
                && why.contains(&format!(
                    "chunking rules {RULES_CONTENT_DEFINED}, {RULES_FIXED_AUDIO} and {RULES_FIXED_PICTURES}"
                )),
            "{why}"
        );
        assert!(
            !t.path("remote-repo").exists(),
            "no repository is made for rules this build does not know"
        );
    }

    /// A client of a newer protocol than the server's is refused in one line that names both.
    #[test]
    fn a_newer_client_is_refused_naming_both_versions() {
        use musicfs::agent::wire::PROTOCOL_VERSION;
        use std::process::Stdio;
        let t = TestRepo::new();
        let (mut child, mut input, mut output) = serve_stdio(&t, Stdio::null());
        let hello = Message::Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION + 1,
            format: musicfs::chunk::CHUNKING_VERSION,
        };
        write_message(&mut input, &hello).unwrap();
        assert!(matches!(
            read_message(&mut output).unwrap().unwrap(),
            Message::Hello { version, .. } if version == PROTOCOL_VERSION
        ));
        let Message::Failed(why) = read_message(&mut output).unwrap().unwrap() else {
            panic!("not refused")
        };
        assert!(!why.contains('\n'), "{why}");
        assert!(
            why.contains(&format!("protocol {}", PROTOCOL_VERSION + 1))
                && why.contains(&format!("to {PROTOCOL_VERSION}")),
            "{why}"
        );
        drop(input);
        assert!(!child.wait().unwrap().success());
    }

    /// Counts the bytes written through it.
    struct CountingOut(Box<dyn std::io::Write + Send>, Arc<AtomicU64>);

    impl std::io::Write for CountingOut {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = self.0.write(buf)?;
            self.1.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.0.flush()
        }
    }

    /// A pull from a real server, returning the bytes the client sent and the summary.
    fn pull_counting_requests(
        t: &TestRepo,
        src: &std::path::Path,
        dst: &std::path::Path,
    ) -> (u64, SyncSummary) {
        let count = Arc::new(AtomicU64::new(0));
        let summary = pull_over(t, src, dst, |mut connection| {
            connection.output = Box::new(CountingOut(connection.output, Arc::clone(&count)));
            connection
        });
        assert_trees_equal(src, dst);
        (count.load(Ordering::Relaxed), summary)
    }

    /// Protocol 5: an edited file deep in the tree costs one request, the root's: the source
    /// sends the trees on its path, its chunk list and its new small chunk unasked.
    #[test]
    fn an_edit_deep_in_the_tree_costs_one_request() {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        let album = t.mkdir("src/Artist/Album");
        std::fs::create_dir_all(src.join("Other/Album")).unwrap();
        std::fs::write(src.join("Other/Album/notes.txt"), b"unchanged").unwrap();
        std::fs::write(album.join("notes.txt"), b"Title: the old title\n").unwrap();
        std::fs::write(album.join("big.bin"), noise(1 << 20, 3)).unwrap();
        let dst = t.path("lib");
        pull_counting_requests(&t, &src, &dst);
        // A second pull scans the destination: its snapshot is the base of the next.
        let (nothing, _) = pull_counting_requests(&t, &src, &dst);
        std::fs::write(album.join("notes.txt"), b"Title: The New Title\n").unwrap();
        let (edit, summary) = pull_counting_requests(&t, &src, &dst);
        assert_eq!(summary.chunks_transferred, 1);
        // The root request names two ids (the root and its base): about 70 bytes.
        assert!(
            edit < nothing + 100,
            "{edit} bytes of requests for the edit, {nothing} for no change"
        );
    }

    /// Protocol 6: every edited entry of one directory has its id left out of that
    /// directory's tree, and all are filled in: the edits arrive exact.
    #[test]
    fn many_edits_in_one_directory_are_filled_in_and_arrive_exact() {
        let t = TestRepo::new();
        let src = t.mkdir("src");
        let album = t.mkdir("src/Artist/Album");
        for i in 0..300 {
            std::fs::write(
                album.join(format!("{i:03}.txt")),
                format!("Title: old {i}\n"),
            )
            .unwrap();
        }
        let dst = t.path("lib");
        pull_counting_requests(&t, &src, &dst);
        let (nothing, _) = pull_counting_requests(&t, &src, &dst);
        for i in (0..300).step_by(2) {
            std::fs::write(
                album.join(format!("{i:03}.txt")),
                format!("Title: NEW {i}\n"),
            )
            .unwrap();
        }
        let (edit, summary) = pull_counting_requests(&t, &src, &dst);
        assert_eq!(summary.files_changed, 150);
        assert_eq!(summary.chunks_transferred, 150);
        // One request, the root's.
        assert!(
            edit < nothing + 100,
            "{edit} bytes of requests for the edits, {nothing} for no change"
        );
    }

    /// A fake server's answer to the tree request: a delta against nothing, an answer that
    /// inflates past what it declares or declares more than the limit, a pack that does.
    #[test]
    fn bad_deltas_and_bombs_are_refused_and_nothing_is_written() {
        use super::hostile::{found, refused_with_nothing_written};
        let (tree, _) = util::one_file_tree(b"song.mp3", b"good");
        let zeros = zstd::bulk::compress(&vec![0u8; 32 << 20], 3).unwrap();
        let mut frames = Vec::new();
        let plain = found(vec![(None, tree.encode())], Vec::new(), Vec::new(), false);
        write_message(&mut frames, &plain).unwrap();
        let with_items = |len: u32, data: Vec<u8>, based: bool| Message::Found {
            items: vec![musicfs::agent::wire::Found {
                at: None,
                size: len,
                based,
            }],
            chunks: Vec::new(),
            len,
            data,
            more: false,
        };
        let bad: Vec<(Message, &str)> = vec![
            (
                with_items(
                    tree.encode().len() as u32,
                    zstd::bulk::compress(&tree.encode(), 3).unwrap(),
                    true,
                ),
                "against nothing",
            ),
            (
                with_items(1024, zeros.clone(), false),
                "does not decompress",
            ),
            (with_items(u32::MAX, zeros.clone(), false), "over the limit"),
            (
                Message::Packed {
                    len: 1024,
                    data: zeros,
                },
                "bad pack",
            ),
            (
                Message::Packed {
                    len: frames.len() as u32 + 5,
                    data: zstd::bulk::compress(&frames, 3).unwrap(),
                },
                "declared",
            ),
        ];
        refused_with_nothing_written(
            tree.tree_id(),
            bad.into_iter()
                .map(|(answer, why)| (vec![answer], why))
                .collect(),
        );
    }
}

/// A connection that drops in the middle of a large file: the retry, given the chunks the
/// first attempt received (`Resume`, spilled to the repository's spool), asks only for the
/// rest of the file, and the copy is exact.
mod resume {
    use super::*;
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// The server's output, counted, and cut after `cut` bytes when given.
    struct Watched {
        inner: Box<dyn Read + Send>,
        read: Arc<AtomicU64>,
        cut: Option<u64>,
    }

    impl Read for Watched {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let so_far = self.read.load(Ordering::SeqCst);
            let room = match self.cut {
                Some(cut) if so_far >= cut => {
                    return Err(std::io::ErrorKind::ConnectionReset.into());
                }
                Some(cut) => (cut - so_far) as usize,
                None => buf.len(),
            };
            let take = buf.len().min(room);
            let n = self.inner.read(&mut buf[..take])?;
            self.read.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
    }

    /// Pulls over a watched connection; the bytes read from the server and the result.
    fn attempt(
        t: &TestRepo,
        src: &std::path::Path,
        dst: &std::path::Path,
        cut: Option<u64>,
        resume: &mut Resume,
    ) -> (u64, musicfs::error::Result<SyncSummary>) {
        let repo = Repository::open(&t.path("local-repo")).unwrap();
        let destination = LocalOrigin::open(dst, true).unwrap();
        let (mut child, mut connection) = server(t);
        let read = Arc::new(AtomicU64::new(0));
        connection.input = Box::new(Watched {
            inner: connection.input,
            read: Arc::clone(&read),
            cut,
        });
        let result = pull(
            &repo,
            connection,
            src.as_os_str().as_encoded_bytes(),
            &destination,
            &FastCdc::default(),
            SyncOptions::default(),
            &NullSink,
            resume,
        );
        let _ = child.kill();
        let _ = child.wait();
        (read.load(Ordering::SeqCst), result)
    }

    #[test]
    fn a_retry_after_a_drop_asks_only_for_the_chunks_not_received() {
        let t = TestRepo::new();
        let src = t.mkdir("music");
        // 3 MB that neither compress nor repeat: about 3 MB on the wire.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let bytes: Vec<u8> = (0..3_000_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(src.join("album.flac"), &bytes).unwrap();
        let dst = t.path("lib");
        let mut resume = Resume::default();
        let cut = 2_000_000;
        let (first, result) = attempt(&t, &src, &dst, Some(cut), &mut resume);
        assert_eq!(first, cut);
        let error = result.expect_err("the connection dropped");
        assert!(error.is_transient(), "{error}");
        assert!(!dst.join("album.flac").exists());
        let (second, result) = attempt(&t, &src, &dst, None, &mut resume);
        result.unwrap();
        assert_trees_equal(&src, &dst);
        // Without what the first attempt received, the second would read 3 MB again.
        assert!(second < 1_300_000, "{second} bytes read by the retry");
        // The spool holds no named file afterwards.
        let spool = t.path("local-repo").join("spool");
        let left = std::fs::read_dir(&spool).map_or(0, |d| d.count());
        assert_eq!(left, 0);
    }

    /// `len` bytes that neither compress nor repeat, from `seed`.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn a_file_larger_than_the_memory_kept_resumes_from_the_spill() {
        let t = TestRepo::new();
        let src = t.mkdir("music");
        // More than the 8 MiB kept in memory: the rest of what arrived is spilled.
        std::fs::write(src.join("long.wav"), noise(14_000_000, 7)).unwrap();
        let dst = t.path("lib");
        let mut resume = Resume::default();
        let cut = 12_000_000;
        let (first, result) = attempt(&t, &src, &dst, Some(cut), &mut resume);
        assert_eq!(first, cut);
        assert!(result.expect_err("the connection dropped").is_transient());
        assert!(!dst.join("long.wav").exists());
        let (second, result) = attempt(&t, &src, &dst, None, &mut resume);
        result.unwrap();
        assert_trees_equal(&src, &dst);
        // About 2 MB were not received; without the spill the retry would read 14 MB again,
        // keeping only the memory's 8 MiB about 5.6 MB.
        assert!(second < 3_500_000, "{second} bytes read by the retry");
    }

    #[test]
    fn a_retry_asks_only_for_the_rest_of_the_file_the_drop_cut() {
        let t = TestRepo::new();
        let src = t.mkdir("music");
        // Three files of 2 MB; the cut falls in the third one sent. The first two are
        // committed however the connection ends, and their chunks are no longer kept: the
        // retry names neither of them. Which two they are is the order the source sent them
        // in: by name in an ordinary pull, as its scan's readers finish them in a streamed one.
        for (i, name) in ["a.flac", "b.flac", "c.flac"].iter().enumerate() {
            std::fs::write(src.join(name), noise(2_000_000, 11 + i as u64)).unwrap();
        }
        let dst = t.path("lib");
        let mut resume = Resume::default();
        let cut = 5_000_000;
        let (_, result) = attempt(&t, &src, &dst, Some(cut), &mut resume);
        assert!(result.expect_err("the connection dropped").is_transient());
        let committed = ["a.flac", "b.flac", "c.flac"]
            .iter()
            .filter(|name| dst.join(name).exists())
            .count();
        assert_eq!(committed, 2, "files committed before the drop");
        let (second, result) = attempt(&t, &src, &dst, None, &mut resume);
        result.unwrap();
        assert_trees_equal(&src, &dst);
        // About 1 MB of c.flac was not received, of 6 MB.
        assert!(second < 1_500_000, "{second} bytes read by the retry");
    }
}

/// A cold pull (protocol 6): the server streams each file while it scans; every streamed
/// chunk is checked against its id, and a file one of whose chunks fails is left to the
/// ordinary requests.
mod stream {
    use super::hostile::{fake_server_scanning, pull_from, serve_tree};
    use super::*;
    use musicfs::agent::wire::{read_message, write_message, Message, MAGIC};

    /// The messages that stream `song.mp3` holding `sent` as the file of `good`'s chunk list.
    fn streamed(
        sent: &[u8],
    ) -> (
        musicfs::snapshot::Tree,
        musicfs::snapshot::ChunkList,
        Vec<Message>,
    ) {
        let (tree, list) = util::one_file_tree(b"song.mp3", b"good");
        let messages = vec![
            Message::Streamed {
                path: b"song.mp3".to_vec(),
                mode: 0o644,
                mtime_ns: 0,
                size: 4,
                list: list.encode(),
            },
            Message::Chunk(sent.to_vec()),
        ];
        (tree, list, messages)
    }

    #[test]
    fn a_streamed_file_is_committed_without_being_asked_for() {
        let t = TestRepo::new();
        let (tree, list, messages) = streamed(b"good");
        // Asked for, the chunk would be refused: the file must come from the stream.
        let (connection, server) = fake_server_scanning(
            messages,
            tree.tree_id(),
            serve_tree(tree, list, b"evil".to_vec()),
        );
        pull_from(&t, connection).unwrap();
        assert_eq!(std::fs::read(t.path("lib/song.mp3")).unwrap(), b"good");
        drop(server);
    }

    #[test]
    fn a_damaged_streamed_chunk_is_refused_and_the_file_asked_for() {
        let t = TestRepo::new();
        let (tree, list, messages) = streamed(b"evil");
        let (connection, server) = fake_server_scanning(
            messages,
            tree.tree_id(),
            serve_tree(tree, list, b"good".to_vec()),
        );
        pull_from(&t, connection).unwrap();
        // Committed from the stream, the file would hold the damaged bytes (its chunk list
        // is the tree's): it holds the ones asked for.
        assert_eq!(std::fs::read(t.path("lib/song.mp3")).unwrap(), b"good");
        let leftovers: Vec<_> = std::fs::read_dir(t.path("lib")).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");
        drop(server);
    }

    /// Every frame the server sends before `Source` to a client of `version` asking with
    /// `request`.
    fn before_source(t: &TestRepo, version: u32, request: Message) -> Vec<Message> {
        let mut child = Command::new(util::bin())
            .args(["serve", "--stdio"])
            .env("MUSICFS_REPO", t.path("remote-repo"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let mut output = musicfs::agent::wire::Unpack::new(child.stdout.take().unwrap());
        let hello = Message::Hello {
            magic: MAGIC,
            version,
            format: musicfs::chunk::CHUNKING_VERSION,
        };
        write_message(&mut input, &hello).unwrap();
        write_message(&mut input, &request).unwrap();
        let mut frames = Vec::new();
        loop {
            match read_message(&mut output).unwrap().unwrap() {
                Message::Source(_) => break,
                Message::Working { .. } | Message::Hello { .. } => {}
                m => frames.push(m),
            }
        }
        write_message(&mut input, &Message::Bye).unwrap();
        drop(input);
        assert!(child.wait().unwrap().success());
        frames
    }

    #[test]
    fn only_a_cold_pull_of_protocol_6_is_streamed() {
        let t = TestRepo::new();
        let src = t.fixtures("music");
        let path = src.as_os_str().as_encoded_bytes().to_vec();
        let cold = before_source(
            &t,
            6,
            Message::ColdPull {
                path: path.clone(),
                checksum: false,
            },
        );
        let files = cold
            .iter()
            .filter(|m| matches!(m, Message::Streamed { .. }))
            .count();
        assert!(files > 0, "nothing streamed");
        // A client of protocol 5 asks with `Pull`, and is answered as before.
        let old = before_source(
            &t,
            5,
            Message::Pull {
                path,
                checksum: false,
            },
        );
        assert!(old.is_empty(), "{} frames before the snapshot", old.len());
    }

    /// The server's readers finish files at once and share the connection and the
    /// remembered chunks: many small files, some alike, pulled cold again and again.
    #[test]
    fn stress_many_readers_stream_at_once() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for round in 0..20 {
            let t = TestRepo::new();
            let src = t.mkdir("src");
            for i in 0..200u32 {
                let dir = src.join(format!("d{}", i % 7));
                std::fs::create_dir_all(&dir).unwrap();
                // A third of the files share their bytes: their chunks are remembered.
                let body = if i % 3 == 0 {
                    b"the same bytes".repeat(50)
                } else {
                    format!("file {i} of round {round}")
                        .repeat(40 + i as usize)
                        .into_bytes()
                };
                std::fs::write(dir.join(format!("f{i}.txt")), body).unwrap();
            }
            let dst = t.path("lib");
            run_pull(&t, &src, &dst);
            assert_trees_equal(&src, &dst);
            assert!(
                std::time::Instant::now() < deadline,
                "round {round} past the deadline"
            );
        }
    }

    #[test]
    fn a_streamed_cold_pull_is_exact_and_a_second_pull_moves_nothing() {
        let t = TestRepo::new();
        let src = t.fixtures("music");
        let dst = t.path("lib");
        let first = run_pull(&t, &src, &dst);
        assert_trees_equal(&src, &dst);
        assert!(first.files_changed > 0);
        let second = run_pull(&t, &src, &dst);
        assert_eq!(second.bytes_transferred, 0);
        assert_eq!(second.files_changed, 0);
        assert_trees_equal(&src, &dst);
    }
}

/// A remote shell that runs the remote command here (`COMMAND host 'musicfs serve --stdio'`),
/// with the agent's repository at `remote_repo` and this build's `musicfs` first on the PATH.
fn local_rsh(t: &TestRepo, name: &str, remote_repo: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let script = t.path(name);
    let bin = util::bin().parent().unwrap().to_path_buf();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nshift\nPATH='{}':\"$PATH\" MUSICFS_REPO='{}' exec sh -c \"$1\"\n",
            bin.display(),
            remote_repo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// Both ends of a sync cut files by the rules of the client's repository: the agent's new
/// repository takes them, whichever they are, and a client whose repository cuts by other
/// rules than the agent's existing one is refused in one line that says so, with nothing
/// written; the same client with a new remote repository syncs.
#[test]
fn a_pull_cuts_by_the_clients_rules_and_refuses_an_agent_repository_of_other_rules() {
    let t = TestRepo::new();
    let music = t.fixtures("music");
    let remote = format!("nas:{}", music.display());
    let algorithm = |repo: &std::path::Path| {
        let toml = std::fs::read_to_string(repo.join("repo.toml")).unwrap();
        toml.lines()
            .find(|l| l.starts_with("algorithm"))
            .unwrap()
            .to_string()
    };

    // A new repository (rules 6) makes the agent's repository with rules 6.
    let fixed_remote = t.path("remote-fixed");
    let rsh = local_rsh(&t, "rsh-fixed", &fixed_remote);
    let lib = t.path("lib");
    util::Musicfs::new(t.repo(), t.root())
        .args(["sync", "--rsh", &rsh, &remote])
        .arg(&lib)
        .quiet()
        .assert_exit(0);
    assert_trees_equal(&music, &lib);
    assert_eq!(
        algorithm(&fixed_remote),
        "algorithm = \"fastcdc-2020-fixed-pictures\""
    );

    // A repository of rules 4 (as an earlier release made it) against that agent: refused.
    let old = t.path("old-repo");
    util::init_repository(&old);
    let toml = std::fs::read_to_string(old.join("repo.toml")).unwrap();
    std::fs::write(
        old.join("repo.toml"),
        toml.replace("fastcdc-2020-fixed-pictures", "fastcdc-2020"),
    )
    .unwrap();
    let old_lib = t.path("old-lib");
    let out = util::Musicfs::with_repo_as_is(&old, t.root())
        .args(["sync", "--rsh", &rsh, &remote])
        .arg(&old_lib)
        .output();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("chunking rules"))
        .unwrap_or("");
    assert!(
        line.contains("rules 6") && line.contains("rules 4") && line.contains("MUSICFS_REPO"),
        "{stderr}"
    );
    assert!(
        !old_lib.exists() || std::fs::read_dir(&old_lib).unwrap().next().is_none(),
        "files written despite the refusal"
    );
    assert_eq!(
        algorithm(&fixed_remote),
        "algorithm = \"fastcdc-2020-fixed-pictures\""
    );

    // The same client with a remote repository of its own rules.
    let cdc_remote = t.path("remote-cdc");
    let rsh = local_rsh(&t, "rsh-cdc", &cdc_remote);
    util::Musicfs::with_repo_as_is(&old, t.root())
        .args(["sync", "--rsh", &rsh, &remote])
        .arg(&old_lib)
        .quiet()
        .assert_exit(0);
    assert_trees_equal(&music, &old_lib);
    assert_eq!(algorithm(&cdc_remote), "algorithm = \"fastcdc-2020\"");
}
