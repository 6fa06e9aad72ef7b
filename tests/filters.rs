//! `--exclude`, `--include`, `--exclude-from`, the built-in litter list and
//! `--delete-excluded`, through the binary: the cases of rsync's man page (INCLUDE/EXCLUDE
//! PATTERN RULES) in a local sync, deletions that spare excluded entries, scan and diff
//! through the same filters, an excluded directory that is never read, and the filter carried
//! to the remote end of an SSH sync (agent and SFTP).

mod support;
mod util;

use std::fs;
use std::path::{Path, PathBuf};

use support::sshd::Sshd;
use util::{list_tree, num, summary_of, Musicfs, TestRepo};

/// Writes `content` at `rel` under `root`, creating the directories above it.
fn put(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Every entry below `root`, relative, sorted, `/`-separated.
fn tree(root: &Path) -> Vec<String> {
    list_tree(root)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// A tree with the names rsync's examples use.
fn rsync_example(t: &TestRepo) -> PathBuf {
    let src = t.path("src");
    for (rel, content) in [
        ("foo", "root foo"),
        ("main.c", "c"),
        ("main.o", "object"),
        ("a/foo", "nested foo"),
        ("a/b/deep.o", "deep object"),
        ("a/z", "a z"),
        ("a/b/c/z", "deep z"),
        ("dir/foo/x.flac", "flac in dir foo"),
        ("album/01.flac", "flac"),
        ("album/cover.jpg", "jpg"),
        ("album/disc2/02.flac", "flac 2"),
        ("album/disc2/notes.txt", "txt"),
    ] {
        put(&src, rel, content);
    }
    src
}

/// `musicfs sync ARGS SRC DST` into a new DST, exit 0; DST's tree.
fn synced(t: &TestRepo, src: &Path, name: &str, args: &[&str]) -> Vec<String> {
    let dst = t.path(name);
    t.cmd()
        .arg("sync")
        .args(args)
        .arg(src)
        .arg(&dst)
        .assert_exit(0);
    tree(&dst)
}

#[test]
fn the_rsync_man_page_patterns() {
    let t = TestRepo::new();
    let src = rsync_example(&t);
    let all = tree(&src);
    let without = |gone: &[&str]| -> Vec<String> {
        all.iter()
            .filter(|p| !gone.contains(&p.as_str()))
            .cloned()
            .collect()
    };

    // "- *.o" matches a name at any depth.
    assert_eq!(
        synced(&t, &src, "o", &["--exclude", "*.o"]),
        without(&["main.o", "a/b/deep.o"])
    );
    // "- /foo" is anchored at the root of the transfer.
    assert_eq!(
        synced(&t, &src, "anchored", &["--exclude", "/foo"]),
        without(&["foo"])
    );
    // "- foo/" matches directories only, at any depth: the files named foo stay.
    assert_eq!(
        synced(&t, &src, "dir-only", &["--exclude", "foo/"]),
        without(&["dir/foo", "dir/foo/x.flac"])
    );
    // "**" matches across slashes, "*" does not.
    assert_eq!(
        synced(&t, &src, "double-star", &["--exclude", "/a/**/z"]),
        without(&["a/z", "a/b/c/z"])
    );
    assert_eq!(
        synced(&t, &src, "single-star", &["--exclude", "/a/*/z"]),
        all,
        "a/b/c/z is two levels below a, a/z none"
    );
    // A pattern with a slash inside matches the end of the path.
    assert_eq!(
        synced(&t, &src, "tail", &["--exclude", "b/c"]),
        without(&["a/b/c", "a/b/c/z"])
    );
    // "+ */ + *.flac - *": only the FLAC files, in every directory (the first match wins).
    assert_eq!(
        synced(
            &t,
            &src,
            "flac-only",
            &["--include", "*/", "--include", "*.flac", "--exclude", "*"]
        ),
        [
            "a",
            "a/b",
            "a/b/c",
            "album",
            "album/01.flac",
            "album/disc2",
            "album/disc2/02.flac",
            "dir",
            "dir/foo",
            "dir/foo/x.flac",
        ]
    );
    // An include after the exclude it should override comes too late.
    assert_eq!(
        synced(
            &t,
            &src,
            "late-include",
            &["--exclude", "*.o", "--include", "main.o"]
        ),
        without(&["main.o", "a/b/deep.o"])
    );
    assert_eq!(
        synced(
            &t,
            &src,
            "early-include",
            &["--include", "main.o", "--exclude", "*.o"]
        ),
        without(&["a/b/deep.o"])
    );
}

#[test]
fn exclude_from_reads_rules_skipping_comments_and_blank_lines() {
    let t = TestRepo::new();
    let src = rsync_example(&t);
    let rules = t.path("rules");
    fs::write(
        &rules,
        "# what the player needs\n\n; directories, then FLAC, then nothing else\n+ */\n+ *.flac\n- *\n",
    )
    .unwrap();
    let flac_only = synced(
        &t,
        &src,
        "from-file",
        &["--exclude-from", rules.to_str().unwrap()],
    );
    assert!(flac_only.contains(&"album/disc2/02.flac".to_string()));
    assert!(!flac_only
        .iter()
        .any(|p| p.ends_with(".jpg") || p.ends_with(".txt")));
    // Plain lines are exclude patterns, in command-line order with --include.
    fs::write(&rules, "*.o\r\n/foo\n").unwrap();
    assert_eq!(
        synced(
            &t,
            &src,
            "ordered",
            &[
                "--include",
                "main.o",
                "--exclude-from",
                rules.to_str().unwrap()
            ]
        )
        .iter()
        .filter(|p| p.ends_with(".o") || *p == "foo")
        .collect::<Vec<_>>(),
        ["main.o"]
    );
    // A missing file and a bad pattern are usage errors naming them.
    let out = t
        .cmd()
        .args(["sync", "--exclude-from"])
        .arg(t.path("no-such-rules"))
        .arg(&src)
        .arg(t.path("never"))
        .assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--exclude-from") && stderr.contains("no-such-rules"),
        "{stderr}"
    );
    let out = t
        .cmd()
        .args(["sync", "--exclude", "a[", src.to_str().unwrap()])
        .arg(t.path("never"))
        .assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"a[\""), "{stderr}");
    assert!(!t.path("never").exists(), "nothing was written");
}

/// Operating-system litter of macOS, Windows and a Synology NAS.
const LITTER: &[&str] = &[
    ".DS_Store",
    "album/._01.flac",
    "album/Thumbs.db",
    "album/desktop.ini",
    "album/@eaDir/01.flac@SynoEAStream",
    ".AppleDouble/album",
    "$RECYCLE.BIN/old.flac",
];

#[test]
fn litter_is_excluded_by_default_and_listed_in_help() {
    let t = TestRepo::new();
    let src = t.path("src");
    put(&src, "album/01.flac", "flac");
    for rel in LITTER {
        put(&src, rel, "litter");
    }
    assert_eq!(synced(&t, &src, "clean", &[]), ["album", "album/01.flac"]);
    let everything = synced(&t, &src, "everything", &["--no-default-excludes"]);
    assert_eq!(everything, tree(&src));
    // Case is ignored for the built-in names; a user's include wins over them.
    put(&src, "album/THUMBS.DB", "litter");
    assert_eq!(
        synced(&t, &src, "kept", &["--include", ".DS_Store"]),
        [".DS_Store", "album", "album/01.flac"]
    );
    for command in ["sync", "scan", "diff"] {
        let help = t.cmd().args([command, "--help"]).stdout();
        for name in [
            ".DS_Store",
            "._*",
            "Thumbs.db",
            "desktop.ini",
            "@eaDir",
            ".AppleDouble",
            "$RECYCLE.BIN",
            "--no-default-excludes",
            "--exclude-from",
        ] {
            assert!(
                help.contains(name),
                "{command} --help lacks {name}:\n{help}"
            );
        }
    }
}

/// DST after a first sync of `album/01.flac` and `album/02.flac`, then given entries the
/// filters exclude (in a kept directory and in one SRC lacks) and entries SRC lacks.
fn destination_with_extras(t: &TestRepo, src: &Path, name: &str) -> PathBuf {
    put(src, "album/01.flac", "one");
    put(src, "album/02.flac", "two");
    put(src, "notes.txt", "the source's notes");
    let dst = t.path(name);
    t.cmd()
        .args(["sync", "--exclude", "*.txt"])
        .arg(src)
        .arg(&dst)
        .assert_exit(0);
    put(&dst, "album/.DS_Store", "finder");
    put(&dst, "album/extra.flac", "not in src");
    put(&dst, "gone/old.flac", "not in src");
    put(&dst, "gone/@eaDir/old.flac@SynoEAStream", "thumbnail");
    put(&dst, "only-litter/Thumbs.db", "thumbnail");
    put(&dst, "notes.txt", "the destination's own notes");
    dst
}

#[test]
fn delete_spares_what_the_filters_exclude_unless_delete_excluded() {
    let t = TestRepo::new();
    let src = t.path("src");
    let dst = destination_with_extras(&t, &src, "dst");
    let summary = t
        .cmd()
        .json()
        .args(["sync", "--delete", "--exclude", "*.txt"])
        .arg(&src)
        .arg(&dst)
        .summary();
    assert_eq!(num(&summary, "files_deleted"), 2, "{summary}");
    assert_eq!(
        tree(&dst),
        [
            "album",
            "album/.DS_Store",
            "album/01.flac",
            "album/02.flac",
            "gone",
            "gone/@eaDir",
            "gone/@eaDir/old.flac@SynoEAStream",
            "notes.txt",
            "only-litter",
            "only-litter/Thumbs.db",
        ],
        "excluded entries, and the directories holding them, stay"
    );
    assert_eq!(
        fs::read_to_string(dst.join("notes.txt")).unwrap(),
        "the destination's own notes",
        "a file excluded at SRC is neither copied over nor deleted at DST"
    );
    // Nothing left to do: the excluded entries are not in DST's snapshot either.
    let again = t
        .cmd()
        .json()
        .args(["sync", "--delete", "--exclude", "*.txt"])
        .arg(&src)
        .arg(&dst)
        .summary();
    assert_eq!(num(&again, "files_changed"), 0, "{again}");
    assert_eq!(num(&again, "files_deleted"), 0, "{again}");

    let dry = t
        .cmd()
        .json()
        .args([
            "sync",
            "--dry-run",
            "--delete-excluded",
            "--exclude",
            "*.txt",
        ])
        .arg(&src)
        .arg(&dst)
        .summary();
    assert_eq!(num(&dry, "files_deleted"), 4, "{dry}");
    assert!(
        dst.join("album/.DS_Store").exists(),
        "a dry run deletes nothing"
    );
    t.cmd()
        .args(["sync", "--delete-excluded", "--exclude", "*.txt"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert_eq!(
        tree(&dst),
        ["album", "album/01.flac", "album/02.flac"],
        "--delete-excluded (which implies --delete) removes them"
    );
}

/// A DST directory that SRC replaced by a file is not removed when it holds an excluded entry:
/// the sync is partial (exit 3) and says why; --delete-excluded replaces it.
#[test]
fn a_directory_holding_excluded_entries_is_not_replaced() {
    let t = TestRepo::new();
    let src = t.path("src");
    put(&src, "x", "now a file");
    put(&src, "y.flac", "y");
    let dst = t.path("dst");
    put(&dst, "x/.DS_Store", "finder");
    put(&dst, "x/a.flac", "a");
    let out = t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}: not replaced", dst.join("x").display())),
        "{stderr}"
    );
    assert_eq!(tree(&dst), ["x", "x/.DS_Store", "x/a.flac", "y.flac"]);
    t.cmd()
        .args(["sync", "--delete-excluded"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert_eq!(tree(&dst), ["x", "y.flac"]);
    assert_eq!(fs::read_to_string(dst.join("x")).unwrap(), "now a file");
}

#[test]
fn scan_records_only_what_the_filters_include() {
    let t = TestRepo::new();
    let src = rsync_example(&t);
    put(&src, ".DS_Store", "litter");
    let summary = t
        .cmd()
        .json()
        .args(["scan", "--exclude", "*.o", "--exclude", "/album/disc2/"])
        .arg(&src)
        .summary();
    // 12 files: 2 objects, the 2 files of album/disc2 and the litter left out.
    assert_eq!(num(&summary, "files"), 8, "{summary}");
    assert_eq!(num(&summary, "files_read"), 8, "{summary}");
    let everything = t
        .cmd()
        .json()
        .args(["scan", "--no-default-excludes"])
        .arg(&src)
        .summary();
    assert_eq!(num(&everything, "files"), 13, "{everything}");
}

#[test]
fn diff_compares_through_the_same_filters() {
    let t = TestRepo::new();
    let a = t.path("a");
    put(&a, "album/01.flac", "one");
    put(&a, "album/cover.jpg", "old cover");
    let b = t.path("b");
    put(&b, "album/01.flac", "one");
    put(&b, "album/cover.jpg", "new cover");
    put(&b, "album/.DS_Store", "litter");
    put(&b, "album/Thumbs.db", "litter");
    t.cmd().arg("diff").arg(&a).arg(&b).assert_exit(1);
    let names = t
        .cmd()
        .args(["diff", "--name-only"])
        .arg(&a)
        .arg(&b)
        .output();
    assert_eq!(
        String::from_utf8_lossy(&names.stdout),
        "album/cover.jpg\n",
        "litter is not a difference"
    );
    t.cmd()
        .args(["diff", "--exclude", "*.jpg"])
        .arg(&a)
        .arg(&b)
        .assert_exit(0);
    let all = t
        .cmd()
        .args(["diff", "--name-only", "--no-default-excludes"])
        .arg(&b)
        .arg(&a)
        .output();
    assert_eq!(
        String::from_utf8_lossy(&all.stdout),
        "album/.DS_Store\nalbum/Thumbs.db\nalbum/cover.jpg\n"
    );
    // A snapshot recorded without the filters (the scan of B above) compared with B now:
    // what the filters exclude is not reported as removed.
    t.cmd().arg("diff").arg(&b).assert_exit(0);
}

/// An excluded directory is never read: one that `nobody` cannot list makes a scan or sync
/// partial, and excluded it is no problem at all.
#[test]
fn an_excluded_directory_is_never_read() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged(
        "mkdir -p src/album src/private/inner; echo 1 > src/album/01.flac; \
         echo secret > src/private/inner/x; chmod 000 src/private",
    );
    let src = t.path("src");
    let out = t.cmd_unprivileged().arg("scan").arg(&src).assert_exit(3);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "the walk does try to read it unexcluded"
    );
    for exclude in ["private/", "/private", "private/***"] {
        let out = t
            .cmd_unprivileged()
            .json()
            .args(["scan", "--exclude", exclude])
            .arg(&src)
            .assert_exit(0);
        let summary = summary_of(&out);
        assert_eq!(num(&summary, "problems"), 0, "{exclude}: {summary}");
        assert_eq!(num(&summary, "files"), 1, "{exclude}: {summary}");
    }
    let dst = t.path("dst");
    t.cmd_unprivileged()
        .args(["sync", "--exclude", "private/"])
        .arg(&src)
        .arg(&dst)
        .assert_exit(0);
    assert_eq!(tree(&dst), ["album", "album/01.flac"]);
    t.sh_unprivileged("chmod 755 src/private");
}

// --- over SSH ---------------------------------------------------------------------------

fn bin_dir() -> PathBuf {
    util::bin().parent().unwrap().to_path_buf()
}

fn remote(path: &Path) -> String {
    format!("nas:{}", path.display())
}

/// `musicfs sync` with the server's client home, asserting exit 0; its summary.
fn ssh_sync(t: &TestRepo, sshd: &Sshd, args: &[&str]) -> serde_json::Value {
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json().arg("sync").args(args);
    summary_of(&cmd.assert_exit(0))
}

/// A push (agent or SFTP) and a pull walk the remote directory through the same filters as a
/// local sync: litter and excluded files are not copied, and excluded entries at the remote
/// destination survive --delete.
#[test]
fn the_remote_end_walks_through_the_filters() {
    let t = TestRepo::new();
    let sshd = Sshd::with_agent(&bin_dir(), &t.path("remote-repo"));
    for (name, extra) in [("agent", None), ("sftp", Some("--sftp"))] {
        let src = t.path(&format!("src-{name}"));
        let dst = destination_with_extras(&t, &src, &format!("dst-{name}"));
        put(&src, "album/.DS_Store", "the source's litter");
        let mut args = vec!["--delete", "--exclude", "*.txt"];
        args.extend(extra);
        let target = remote(&dst);
        args.extend([src.to_str().unwrap(), target.as_str()]);
        let summary = ssh_sync(&t, &sshd, &args);
        assert_eq!(num(&summary, "files_deleted"), 2, "{name}: {summary}");
        assert_eq!(
            fs::read_to_string(dst.join("album/.DS_Store")).unwrap(),
            "finder",
            "{name}: DST's own litter is neither replaced nor deleted"
        );
        assert_eq!(
            tree(&dst),
            [
                "album",
                "album/.DS_Store",
                "album/01.flac",
                "album/02.flac",
                "gone",
                "gone/@eaDir",
                "gone/@eaDir/old.flac@SynoEAStream",
                "notes.txt",
                "only-litter",
                "only-litter/Thumbs.db",
            ],
            "{name}"
        );
        let mut args = vec!["--delete-excluded", "--exclude", "*.txt"];
        args.extend(extra);
        args.extend([src.to_str().unwrap(), target.as_str()]);
        ssh_sync(&t, &sshd, &args);
        assert_eq!(
            tree(&dst),
            ["album", "album/01.flac", "album/02.flac"],
            "{name}"
        );

        // A pull: the remote source's excluded entries are never copied.
        let lib = t.path(&format!("lib-{name}"));
        let source = remote(&src);
        let mut args = vec!["--include", "*/", "--include", "*.flac", "--exclude", "*"];
        args.extend(extra);
        args.extend([source.as_str(), lib.to_str().unwrap()]);
        ssh_sync(&t, &sshd, &args);
        assert_eq!(
            tree(&lib),
            ["album", "album/01.flac", "album/02.flac"],
            "{name}"
        );
        let mut args = vec!["--no-default-excludes"];
        args.extend(extra);
        let all = t.path(&format!("all-{name}"));
        args.extend([source.as_str(), all.to_str().unwrap()]);
        ssh_sync(&t, &sshd, &args);
        // Every name (SFTP keeps whole-second mtimes, so only names are compared).
        assert_eq!(tree(&all), tree(&src), "{name}");
    }
    // A scan of an SSH origin (over SFTP) records what the filters include.
    let src = t.path("src-agent");
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json()
        .args(["scan", "--exclude", "*.txt"])
        .arg(remote(&src));
    let scanned = summary_of(&cmd.assert_exit(0));
    assert_eq!(num(&scanned, "files"), 2, "{scanned}");
}

// --- the protocol -------------------------------------------------------------------------

/// Sends `messages` to a `musicfs serve --stdio` and returns every message it answers with
/// until it closes its output.
fn serve_answers(t: &TestRepo, messages: &[musicfs::agent::wire::Message]) -> Vec<String> {
    use musicfs::agent::wire::{read_message, write_message, Message};
    use std::process::{Command, Stdio};
    let mut child = Command::new(util::bin())
        .args(["serve", "--stdio"])
        .env("MUSICFS_REPO", t.path("remote-repo"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    for m in messages {
        write_message(&mut input, m).unwrap();
    }
    let mut output = child.stdout.take().unwrap();
    let mut answers = Vec::new();
    while let Ok(Some(message)) = read_message(&mut output) {
        let done = matches!(message, Message::Source(_) | Message::Failed(_));
        answers.push(match message {
            Message::Hello { version, .. } => format!("Hello {version}"),
            Message::Source(info) => format!("Source {} files", info.files),
            Message::Failed(why) => format!("Failed {why}"),
            other => format!("{other:?}"),
        });
        if done {
            break;
        }
    }
    drop(input);
    child.wait().unwrap();
    answers
}

#[test]
fn the_server_answers_in_the_clients_protocol_and_checks_the_filter() {
    use musicfs::agent::wire::{Message, MAGIC, PROTOCOL_VERSION};
    use musicfs::filter::{FilterSpec, Rule};
    let t = TestRepo::new();
    let src = t.path("src");
    put(&src, "album/01.flac", "one");
    put(&src, "album/.DS_Store", "litter");
    put(&src, "album/cover.jpg", "jpg");
    let hello = |version| Message::Hello {
        magic: MAGIC,
        version,
        format: musicfs::chunk::CHUNKING_VERSION,
    };
    let pull = Message::Pull {
        path: src.to_str().unwrap().as_bytes().to_vec(),
        checksum: false,
    };
    // A client of protocol 2 sends no filter: it is served in protocol 2, unfiltered.
    assert_eq!(
        serve_answers(&t, &[hello(2), pull.clone()]),
        ["Hello 2", "Source 3 files"]
    );
    let filter = |rules: Vec<Rule>| {
        Message::Filter(FilterSpec {
            rules,
            default_excludes: true,
        })
    };
    assert_eq!(
        serve_answers(
            &t,
            &[
                hello(PROTOCOL_VERSION),
                filter(vec![Rule::exclude("*.jpg")]),
                pull.clone()
            ]
        ),
        [format!("Hello {PROTOCOL_VERSION}"), "Source 1 files".into()]
    );
    let refused = serve_answers(
        &t,
        &[
            hello(PROTOCOL_VERSION),
            filter(vec![Rule::exclude("a[")]),
            pull.clone(),
        ],
    );
    assert!(
        refused.len() == 2 && refused[1].contains("\"a[\""),
        "a bad pattern is refused by name: {refused:?}"
    );
    let refused = serve_answers(&t, &[hello(2), filter(Vec::new()), pull]);
    assert!(
        refused.len() == 2 && refused[1].starts_with("Failed"),
        "protocol 2 has no Filter: {refused:?}"
    );
}
