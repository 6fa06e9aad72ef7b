//! `SftpOrigin` against a real OpenSSH sshd on 127.0.0.1: walk, reads, the spool, the writable
//! side, incremental scans, and syncs in both directions. The server runs on this machine, so
//! a remote path is also a local one and the tests check the results with `std::fs`.

mod support;
mod util;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use musicfs::chunk::FastCdc;
use musicfs::origin::{
    EntryKind, LocalOrigin, Origin, SftpOrigin, Spooled, WalkItem, WritableOrigin,
};
use musicfs::repo::Repository;
use musicfs::report::NullSink;
use musicfs::scan::{scan, ScanOptions};
use musicfs::sync::{sync, SyncOptions, SyncSummary};
use support::sftp::SftpServer as Server;
use util::{copy_tree, fixtures_audio, tree_diff, TreeCmp};

// --- helpers --------------------------------------------------------------------------------

fn set_mtime_secs(path: &Path, secs: u64) {
    fs::File::open(path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

/// Copies the audio fixtures to `dst` with whole-second mtimes (SFTP carries no more).
fn fixtures_at(dst: &Path) {
    copy_tree(&fixtures_audio(), dst);
    let mut dirs = Vec::new();
    for entry in walkdir::WalkDir::new(dst).contents_first(true) {
        let entry = entry.unwrap();
        let secs = entry.metadata().unwrap().mtime() as u64;
        if entry.file_type().is_dir() {
            dirs.push((entry.path().to_path_buf(), secs));
        } else if entry.file_type().is_file() {
            set_mtime_secs(entry.path(), secs);
        }
    }
    for (dir, secs) in dirs {
        set_mtime_secs(&dir, secs);
    }
}

/// Trees equal in entries, bytes, modes, symlink targets and file mtimes to the second.
fn assert_same_tree(a: &Path, b: &Path) {
    let opts = TreeCmp {
        file_mtimes: false,
        dir_mtimes: false,
        modes: true,
        mtime_seconds_only: false,
    };
    let mut diffs = tree_diff(a, b, opts);
    for entry in walkdir::WalkDir::new(a).min_depth(1) {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(a).unwrap();
        let (ma, mb) = (entry.metadata().unwrap(), fs::symlink_metadata(b.join(rel)));
        if let Ok(mb) = mb {
            if ma.mtime() != mb.mtime() {
                diffs.push(format!(
                    "{}: mtime {} vs {}",
                    rel.display(),
                    ma.mtime(),
                    mb.mtime()
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n  {}", diffs.join("\n  "));
}

/// Walk items as comparable lines.
fn walk_lines(origin: &dyn Origin) -> Vec<String> {
    let mut lines = Vec::new();
    origin.walk(&mut |item| {
        lines.push(match item {
            WalkItem::Entry { path, stat, target } => format!(
                "{} {:?} size={} mtime={} mode={:o} target={:?}",
                String::from_utf8_lossy(&path),
                stat.kind,
                if stat.kind == EntryKind::Dir {
                    0
                } else {
                    stat.size
                },
                stat.mtime_ns / 1_000_000_000,
                stat.mode,
                target.map(|t| String::from_utf8_lossy(&t).into_owned())
            ),
            WalkItem::Temporary(path) => format!("temporary {}", String::from_utf8_lossy(&path)),
            WalkItem::Excluded(path) => format!("excluded {}", String::from_utf8_lossy(&path)),
            WalkItem::Problem { path, message } => {
                format!("problem {}: {message}", String::from_utf8_lossy(&path))
            }
        })
    });
    lines
}

/// A default sync with the repository's chunker.
fn run_sync(
    repo: &Repository,
    source: &dyn Origin,
    destination: &dyn WritableOrigin,
) -> SyncSummary {
    let chunker = FastCdc::default();
    sync(
        repo,
        source,
        destination,
        &chunker,
        SyncOptions::default(),
        &NullSink,
    )
    .unwrap()
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("musicfs-sftp-")
        .tempdir()
        .unwrap()
}

// --- opening --------------------------------------------------------------------------------

#[test]
fn new_checks_the_root_and_names_the_origin() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("music");
    fs::create_dir(&root).unwrap();
    fs::write(t.path().join("file"), b"x").unwrap();

    let origin = server.origin(&root, false);
    let (_, label) = server.sftp();
    let canonical = fs::canonicalize(&root).unwrap();
    assert_eq!(
        origin.url(),
        format!("sftp://{label}{}", canonical.display())
    );
    assert_eq!(
        origin.display(b"a/b.flac"),
        PathBuf::from(format!("{label}:{}/a/b.flac", canonical.display()))
    );
    // Same URL through a path with `..` and a trailing slash.
    let (sftp, label) = server.sftp();
    let other = format!("{}/../music/", root.display());
    let again = SftpOrigin::new(sftp, &label, other.as_bytes(), false).unwrap();
    assert_eq!(again.url(), origin.url());

    let (sftp, label) = server.sftp();
    let missing = t.path().join("missing");
    let err = SftpOrigin::new(sftp.clone(), &label, missing.as_os_str().as_bytes(), false)
        .expect_err("a missing root is refused");
    assert!(matches!(err, musicfs::Error::InvalidInput(_)), "{err}");
    assert!(err.to_string().contains("no such directory"), "{err}");
    let err = SftpOrigin::new(
        sftp.clone(),
        &label,
        t.path().join("file").as_os_str().as_bytes(),
        true,
    )
    .expect_err("a file is refused");
    assert!(err.to_string().contains("not a directory"), "{err}");

    // may_create: the root is made, with its parents, by create_root.
    let deep = t.path().join("new/deeper/root");
    let created = SftpOrigin::new(sftp, &label, deep.as_os_str().as_bytes(), true).unwrap();
    assert_eq!(created.stat(b"").unwrap(), None);
    created.create_root().unwrap();
    assert!(deep.is_dir());
    assert_eq!(created.stat(b"").unwrap().unwrap().kind, EntryKind::Dir);
}

// --- walking and reading --------------------------------------------------------------------

#[test]
fn walk_matches_the_local_walk() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("tree");
    let names = [
        "Zeta/01 Last.mp3",
        "alpha/beta/gamma/deep.flac",
        "alpha/beta/z.txt",
        "alpha/b.txt",
        "Café Tonal/01 – Ünïcödé “quotes” & 'more'.ogg",
        "spaces  and\ttab/[brackets] {braces} #hash.m4a",
        "日本語/曲.wav",
    ];
    for (i, name) in names.iter().enumerate() {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, vec![i as u8; 1000 * i + 1]).unwrap();
    }
    fs::set_permissions(root.join("alpha/b.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    std::os::unix::fs::symlink("alpha/b.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("alpha/dangling")).unwrap();
    std::os::unix::fs::symlink("../alpha", root.join("Zeta/dirlink")).unwrap();
    fs::write(root.join("alpha/.musicfs-0123456789abcdef.tmp"), b"partial").unwrap();

    let sftp = server.origin(&root, false);
    let local = LocalOrigin::open(&root, false).unwrap();
    let remote_lines = walk_lines(&sftp);
    assert_eq!(remote_lines, walk_lines(&local));
    assert!(remote_lines.contains(&"temporary alpha/.musicfs-0123456789abcdef.tmp".to_string()));
    assert!(remote_lines
        .iter()
        .any(|l| l.starts_with("link Symlink") && l.ends_with("target=Some(\"alpha/b.txt\")")));
    // Symlinks are not followed: nothing below Zeta/dirlink.
    assert!(!remote_lines.iter().any(|l| l.starts_with("Zeta/dirlink/")));

    // Stats: no inode, device or ctime over SFTP.
    let stat = sftp.stat(b"alpha/b.txt").unwrap().unwrap();
    assert_eq!(
        (stat.kind, stat.size, stat.mode),
        (EntryKind::File, 3001, 0o640)
    );
    assert_eq!(stat.change, musicfs::origin::ChangeKey::None);
    assert_eq!(stat.mtime_ns % 1_000_000_000, 0);
    assert_eq!(sftp.stat(b"nope").unwrap(), None);
}

#[test]
fn unreadable_directory_is_a_problem_and_the_walk_goes_on() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("tree");
    fs::create_dir_all(root.join("a")).unwrap();
    fs::write(root.join("a/x"), b"x").unwrap();
    fs::write(root.join("b"), b"b").unwrap();
    // A name SFTP cannot carry here (not UTF-8) makes the directory's listing fail. (The
    // walk lists the tree before it gives entries, so a directory removed during the walk
    // is no longer the way to make one fail.)
    fs::write(root.join(std::ffi::OsStr::from_bytes(b"a/\xff")), b"y").unwrap();
    let sftp = server.origin(&root, false);
    let mut lines = Vec::new();
    sftp.walk(&mut |item| {
        lines.push(match item {
            WalkItem::Entry { path, .. } => format!("entry {}", String::from_utf8_lossy(&path)),
            WalkItem::Temporary(path) => format!("temporary {}", String::from_utf8_lossy(&path)),
            WalkItem::Excluded(path) => format!("excluded {}", String::from_utf8_lossy(&path)),
            WalkItem::Problem { path, .. } => format!("problem {}", String::from_utf8_lossy(&path)),
        });
    });
    assert_eq!(lines, ["entry a", "problem a", "entry b"]);
}

#[test]
fn open_reads_seeks_and_stats() {
    let server = Server::start();
    let t = scratch();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(t.path().join("big.bin"), &data).unwrap();
    set_mtime_secs(&t.path().join("big.bin"), 1_600_000_000);
    let origin = server.origin(t.path(), false);

    let mut file = origin.open(b"big.bin").unwrap();
    let stat = file.stat().unwrap();
    assert_eq!(stat.size, data.len() as u64);
    assert_eq!(stat.mtime_ns, 1_600_000_000 * 1_000_000_000);
    let mut all = Vec::new();
    file.read_to_end(&mut all).unwrap();
    assert!(all == data, "bytes read differ");
    let mut buf = vec![0u8; 70_000];
    file.read_exact_at(&mut buf, 1_234_567).unwrap();
    assert_eq!(buf, data[1_234_567..1_234_567 + 70_000]);
    file.seek(SeekFrom::Start(10)).unwrap();
    let mut head = [0u8; 5];
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, data[10..15]);
    assert!(file
        .read_exact_at(&mut buf, data.len() as u64 - 10)
        .is_err());

    let Err(err) = origin.open(b"missing.flac") else {
        panic!("a missing file opens")
    };
    assert!(err.to_string().contains("missing.flac"), "{err}");
    assert!(
        err.to_string()
            .contains(&origin.display(b"").display().to_string()),
        "{err}"
    );
    // Relative paths that leave the root are refused before anything is sent.
    for bad in [&b"../etc/passwd"[..], b"a/./b", b"/etc/passwd", b"a//b"] {
        assert!(
            origin.open(bad).is_err(),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn spool_keeps_a_copy_of_each_file_read() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("tree");
    fs::create_dir_all(root.join("d")).unwrap();
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 256) as u8).collect();
    fs::write(root.join("d/song.flac"), &data).unwrap();
    let spool = t.path().join("spool");
    let origin = Spooled::new(Box::new(server.origin(&root, false)), spool.clone());
    assert_eq!(origin.spooled(b"d/song.flac"), None);

    let mut file = origin.open(b"d/song.flac").unwrap();
    let mut head = [0u8; 4];
    file.read_exact(&mut head).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    file.read_to_end(&mut all).unwrap();
    assert!(all == data);
    let copy = origin.spooled(b"d/song.flac").expect("a spooled copy");
    assert!(copy.starts_with(&spool));
    assert!(fs::read(&copy).unwrap() == data);
    let hex = blake3::hash(b"d/song.flac").to_hex();
    assert_eq!(copy.file_name().unwrap().to_str().unwrap(), hex.as_str());

    // The copy stays while the remote file is unchanged, and is replaced when it changes.
    drop(origin.open(b"d/song.flac").unwrap());
    assert_eq!(origin.spooled(b"d/song.flac"), Some(copy.clone()));
    fs::write(root.join("d/song.flac"), b"shorter").unwrap();
    let mut file = origin.open(b"d/song.flac").unwrap();
    assert_eq!(file.stat().unwrap().size, 7);
    let mut all = Vec::new();
    file.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"shorter");
    assert_eq!(fs::read(&copy).unwrap(), b"shorter");

    origin.clear();
    assert_eq!(origin.spooled(b"d/song.flac"), None);
    assert!(!copy.exists());

    // The copies go with the wrapper.
    drop(origin.open(b"d/song.flac").unwrap());
    let copy = origin.spooled(b"d/song.flac").expect("a spooled copy");
    drop(origin);
    assert!(!copy.exists());
}

// --- writing --------------------------------------------------------------------------------

#[test]
fn temporary_files_commit_atomically_with_mode_and_mtime() {
    let server = Server::start();
    let t = scratch();
    fs::create_dir(t.path().join("album")).unwrap();
    fs::write(t.path().join("album/track.flac"), b"old").unwrap();
    let origin = server.origin(t.path(), false);

    let data: Vec<u8> = (0..1_000_003u32).map(|i| (i * 31 % 256) as u8).collect();
    let mut temp = origin.create_temp(b"album/track.flac").unwrap();
    let temps: Vec<_> = fs::read_dir(t.path().join("album"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "track.flac")
        .collect();
    assert_eq!(temps.len(), 1);
    let name = temps[0].as_bytes();
    assert!(musicfs::origin::is_temporary(name) && name.len() == ".musicfs-.tmp".len() + 16);
    let meta = fs::metadata(t.path().join("album").join(&temps[0])).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    for piece in data.chunks(4099) {
        temp.write_all(piece).unwrap();
    }
    assert_eq!(fs::read(t.path().join("album/track.flac")).unwrap(), b"old");
    temp.commit(0o644, 1_500_000_000 * 1_000_000_000).unwrap();
    let target = t.path().join("album/track.flac");
    assert!(fs::read(&target).unwrap() == data);
    let meta = fs::metadata(&target).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o644, 1_500_000_000));
    assert_eq!(fs::read_dir(t.path().join("album")).unwrap().count(), 1);

    let mut temp = origin.create_temp(b"album/other.flac").unwrap();
    temp.write_all(b"abandoned").unwrap();
    temp.discard();
    assert_eq!(fs::read_dir(t.path().join("album")).unwrap().count(), 1);
}

#[test]
fn directories_symlinks_renames_and_removal() {
    let server = Server::start();
    let t = scratch();
    let origin = server.origin(t.path(), false);

    origin.create_dir(b"a").unwrap();
    origin.create_dir(b"a").unwrap();
    origin.create_dir(b"a/b").unwrap();
    assert!(t.path().join("a/b").is_dir());
    assert!(origin.create_dir(b"x/y").is_err());
    origin
        .set_meta(b"a", 0o750, 1_400_000_000 * 1_000_000_000)
        .unwrap();
    let meta = fs::metadata(t.path().join("a")).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o750, 1_400_000_000));

    origin.symlink(b"a/link", b"../target one").unwrap();
    assert_eq!(
        fs::read_link(t.path().join("a/link")).unwrap(),
        Path::new("../target one")
    );
    origin.symlink(b"a/link", b"b").unwrap();
    assert_eq!(
        fs::read_link(t.path().join("a/link")).unwrap(),
        Path::new("b")
    );
    assert_eq!(fs::read_dir(t.path().join("a")).unwrap().count(), 2);

    fs::write(t.path().join("a/b/f1"), b"1").unwrap();
    fs::write(t.path().join("a/f2"), b"2").unwrap();
    origin.rename(b"a/b/f1", b"a/f2").unwrap();
    assert_eq!(fs::read(t.path().join("a/f2")).unwrap(), b"1");
    assert!(!t.path().join("a/b/f1").exists());
    origin.sync_dir(b"a").unwrap();

    // A tree with a symlink to a directory outside it: the link goes, its target stays.
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep"), b"k").unwrap();
    std::os::unix::fs::symlink(&outside, t.path().join("a/b/out")).unwrap();
    fs::create_dir_all(t.path().join("a/b/c/d")).unwrap();
    fs::write(t.path().join("a/b/c/d/e"), b"e").unwrap();
    origin.remove(b"a").unwrap();
    assert!(!t.path().join("a").exists());
    assert!(outside.join("keep").exists());
    origin.remove(b"a").unwrap();
    origin.remove(b"outside/keep").unwrap();
    assert!(!outside.join("keep").exists());

    let err = origin.remove(b"../x").expect_err("a path leaving the root");
    assert!(err.to_string().contains(".."), "{err}");
}

// --- scan and sync --------------------------------------------------------------------------

#[test]
fn rescans_read_only_changed_files() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("music");
    fixtures_at(&root);
    let repo = Repository::open(&t.path().join("repo")).unwrap();
    let origin = Spooled::new(
        Box::new(server.origin(&root, false)),
        t.path().join("spool"),
    );
    let chunker = FastCdc::default();
    let files = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter(|e| e.as_ref().unwrap().file_type().is_file())
        .count() as u64;

    let first = scan(&repo, &origin, &chunker, ScanOptions::default(), &NullSink).unwrap();
    assert_eq!(
        (first.files, first.files_read, first.problems),
        (files, files, 0)
    );
    let path = b"Aurora Tones/First Light/01 Dawn.mp3";
    let copy = origin.spooled(path).expect("scanned files are spooled");
    assert!(
        fs::read(copy).unwrap() == fs::read(root.join(std::str::from_utf8(path).unwrap())).unwrap()
    );

    let second = scan(&repo, &origin, &chunker, ScanOptions::default(), &NullSink).unwrap();
    assert_eq!((second.files, second.files_read), (files, 0));
    assert_eq!(second.root, first.root);

    let touched = root.join("Café Tonal/Xiph Sessions/01 Vorbis Tone.ogg");
    let mtime = fs::metadata(&touched).unwrap().mtime() as u64;
    set_mtime_secs(&touched, mtime + 10);
    let third = scan(&repo, &origin, &chunker, ScanOptions::default(), &NullSink).unwrap();
    assert_eq!((third.files, third.files_read), (files, 1));
}

#[test]
fn sync_pushes_a_local_tree_to_the_server() {
    let server = Server::start();
    let t = scratch();
    let src = t.path().join("src");
    fixtures_at(&src);
    std::os::unix::fs::symlink("Aurora Tones", src.join("link")).unwrap();
    fs::set_permissions(
        src.join("Riff Raff/Chunks/01 Info Block.wav"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let dst = t.path().join("remote/dst");
    let repo = Repository::open(&t.path().join("repo")).unwrap();
    let local = LocalOrigin::open(&src, false).unwrap();
    let remote = server.origin(&dst, true);

    // A source mtime finer than SFTP's seconds.
    let fine = src.join("MP4 Quartet/Containers/01 Plain.m4a");
    fs::File::open(&fine)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789))
        .unwrap();

    let summary = run_sync(&repo, &local, &remote);
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert!(summary.files_changed > 0);
    assert_same_tree(&src, &dst);
    // Nothing changed: nothing is written, not even the file whose mtime SFTP truncated.
    let again = run_sync(&repo, &local, &remote);
    assert_eq!(
        (again.errors, again.files_changed, again.bytes_transferred),
        (0, 0, 0),
        "{again:?}"
    );

    // A change travels; nothing else is written.
    let changed = src.join("Lossless Ensemble/Waveforms/01 Pure Sine.flac");
    let mut bytes = fs::read(&changed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&changed, bytes).unwrap();
    set_mtime_secs(&changed, 1_700_000_000);
    let summary = run_sync(&repo, &local, &remote);
    assert_eq!(
        (summary.errors, summary.files_changed),
        (0, 1),
        "{summary:?}"
    );
    assert_same_tree(&src, &dst);
}

#[test]
fn sync_pulls_a_tree_from_the_server() {
    let server = Server::start();
    let t = scratch();
    let src = t.path().join("remote/src");
    fixtures_at(&src);
    std::os::unix::fs::symlink("../elsewhere", src.join("MP4 Quartet/link")).unwrap();
    let dst = t.path().join("dst");
    let repo = Repository::open(&t.path().join("repo")).unwrap();
    let remote = Spooled::new(Box::new(server.origin(&src, false)), t.path().join("spool"));
    let local = LocalOrigin::open(&dst, true).unwrap();

    let summary = run_sync(&repo, &remote, &local);
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert_same_tree(&src, &dst);

    let again = run_sync(&repo, &remote, &local);
    assert_eq!((again.errors, again.files_changed), (0, 0), "{again:?}");
}

// --- requests in flight together ------------------------------------------------------------

/// Runs `work` on a thread of its own and fails if it has not ended within `limit`: a hang in
/// the code under test fails the test instead of stalling the suite. (A hang detector, not a
/// measure of speed: the limit is many times what the work needs.)
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => value,
        Err(e) => panic!("not done within {limit:?}: {e}"),
    }
}

/// A tree of many directories on several levels, one of them larger than a `READDIR` reply
/// (OpenSSH sends at most 100 entries in one), walked many times: listings in flight at once
/// and `READDIR`s sent in pairs give the walk of the local tree every time.
#[test]
fn concurrent_listings_walk_like_the_local_tree_every_time() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("tree");
    for artist in 0..6 {
        for album in 0..7 {
            let dir = root.join(format!("fmt{}/Artist {artist}/Album {album}", artist % 2));
            fs::create_dir_all(&dir).unwrap();
            for track in 0..3 {
                fs::write(dir.join(format!("{track:02}.flac")), [track as u8; 10]).unwrap();
            }
        }
    }
    let wide = root.join("wide");
    fs::create_dir_all(&wide).unwrap();
    for i in 0..333 {
        fs::write(wide.join(format!("file {i:03}")), b"x").unwrap();
    }
    fs::create_dir_all(root.join("wide/sub/deeper/deepest")).unwrap();
    let expected = walk_lines(&LocalOrigin::open(&root, false).unwrap());
    assert!(expected.len() > 500, "{}", expected.len());
    let origin = std::sync::Arc::new(server.origin(&root, false));
    within(Duration::from_secs(300), move || {
        for round in 0..40 {
            assert_eq!(walk_lines(origin.as_ref()), expected, "round {round}");
        }
    });
}

/// Many threads open, stat and read files over one SFTP session at once, round after round
/// (as a scan of a far origin does, several files in flight): every read gives the file's
/// bytes and the stat taken with the open equals the one of the open handle.
#[test]
fn many_files_read_at_once_over_one_session() {
    let server = Server::start();
    let t = scratch();
    let root = t.path().join("tree");
    fs::create_dir_all(&root).unwrap();
    let mut files = Vec::new();
    for i in 0..24usize {
        // From empty to a few read requests long, each byte a function of file and offset.
        let len = (i * i * 7919) % 700_000;
        let data: Vec<u8> = (0..len).map(|o| ((o * 31 + i * 7) % 251) as u8).collect();
        let name = format!("f{i:02}.bin");
        fs::write(root.join(&name), &data).unwrap();
        files.push((name, data));
    }
    let origin = std::sync::Arc::new(server.origin(&root, false));
    assert!(origin.files_in_flight() > 1);
    let files = std::sync::Arc::new(files);
    within(Duration::from_secs(300), move || {
        for round in 0..15 {
            std::thread::scope(|scope| {
                for worker in 0..12usize {
                    let (origin, files) = (&origin, &files);
                    scope.spawn(move || {
                        for k in 0..files.len() {
                            let (name, data) = &files[(k + worker * 5 + round) % files.len()];
                            let mut file = origin.open(name.as_bytes()).unwrap();
                            let opened = file.stat().unwrap();
                            let mut got = Vec::new();
                            file.read_to_end(&mut got).unwrap();
                            let after = file.stat().unwrap();
                            assert_eq!(opened, after, "{name}, round {round}");
                            assert_eq!(opened.size, data.len() as u64);
                            assert!(&got == data, "{name}, round {round}, worker {worker}");
                        }
                    });
                }
            });
        }
    });
}
