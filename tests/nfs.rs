//! NFS exports through the userspace NFSv3 client, against nfs-ganesha (VFS backend) on
//! 127.0.0.1: a generated library pushed and pulled (trees equal, the export checked on the
//! server's own file system), a second sync that moves nothing, a retag pushed and pulled, the
//! server killed and restarted in the middle of a push, and a handle gone stale when a
//! directory is replaced on the server, answered by a fresh lookup.

mod support;
mod util;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use musicfs::origin::registry::Location;
use musicfs::origin::{EntryKind, NfsLocation, OpenOptions, Origin, WalkItem, WritableOrigin};
use support::ganesha::Ganesha;
use util::*;

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sync(t: &TestRepo, src: &str, dst: &str) -> serde_json::Value {
    let mut m = t.cmd();
    m.json().args(["sync", src, dst]);
    summary_of(&ok(m.output()))
}

/// Mtimes in the export are kept to the microsecond, the local file system's to the
/// nanosecond: compare a local tree with the export to the second (what came back through
/// NFS compares exactly with the export).
fn to_the_second() -> TreeCmp {
    TreeCmp {
        mtime_seconds_only: true,
        ..TreeCmp::default()
    }
}

#[test]
fn a_library_pushed_and_pulled_arrives_exact_and_a_second_sync_moves_nothing() {
    let t = TestRepo::new();
    let server = Ganesha::start();
    let src = t.path("src");
    genlib_create(&src, 30, 7, 200_000);
    let src_arg = src.to_str().unwrap();
    let url = server.url("lib");

    let pushed = sync(&t, src_arg, &url);
    assert_eq!(num(&pushed, "files_changed"), 30, "{pushed}");
    let export = server.export_dir().join("lib");
    assert_trees_equal_with(&src, &export, to_the_second());

    let back = t.path("back");
    sync(&t, &url, back.to_str().unwrap());
    assert_trees_equal(&export, &back);

    let again = sync(&t, src_arg, &url);
    assert_eq!(
        (
            num(&again, "files_changed"),
            num(&again, "bytes_transferred")
        ),
        (0, 0),
        "{again}"
    );
    let pulled_again = sync(&t, &url, back.to_str().unwrap());
    assert_eq!(
        (
            num(&pulled_again, "files_changed"),
            num(&pulled_again, "bytes_transferred")
        ),
        (0, 0),
        "{pulled_again}"
    );
}

#[test]
fn a_retag_is_pushed_and_pulled() {
    let t = TestRepo::new();
    let server = Ganesha::start();
    let src = t.fixtures("src");
    let src_arg = src.to_str().unwrap();
    let url = server.url("lib");
    sync(&t, src_arg, &url);
    let back = t.path("back");
    sync(&t, &url, back.to_str().unwrap());

    util::editors::metaflac_title(&src.join(util::editors::SINE), "Retagged Sine");
    let retag = sync(&t, src_arg, &url);
    assert_eq!(num(&retag, "files_changed"), 1, "{retag}");
    let export = server.export_dir().join("lib");
    assert_trees_equal_with(&src, &export, to_the_second());

    let pulled = sync(&t, &url, back.to_str().unwrap());
    assert_eq!(num(&pulled, "files_changed"), 1, "{pulled}");
    assert_trees_equal(&export, &back);
    assert!(
        fs::read(back.join(util::editors::SINE)).unwrap()
            == fs::read(src.join(util::editors::SINE)).unwrap()
    );
}

/// Whether any regular file is anywhere below `dir` yet.
fn holds_any_file(dir: &Path) -> bool {
    dir.is_dir() && holds_a_file(dir)
}

#[test]
fn a_server_killed_mid_push_is_restarted_and_the_push_completes() {
    let t = TestRepo::new();
    let mut server = Ganesha::start();
    let src = t.path("src");
    genlib_create(&src, 80, 11, 2_000_000);
    let url = server.url("lib");
    let export = server.export_dir().join("lib");

    let mut push = t.cmd();
    push.args(["sync", src.to_str().unwrap(), &url, "--retry-for", "60s"]);
    let mut child = push.spawn();
    // Some files are there: the push is under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !holds_any_file(&export) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(holds_any_file(&export), "the push wrote nothing in 60 s");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the push was still running when the server was killed"
    );
    server.restart();
    let status = wait_timeout(&mut child, Duration::from_secs(240)).expect("the push ended");
    if status.success() {
        eprintln!("the push completed through its retries");
    } else {
        // It gave up: a second run completes.
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let second = sync(&t, src.to_str().unwrap(), &url);
        eprintln!("the push gave up ({status}): {stderr}\na second run completed: {second}");
        assert!(num(&second, "files_changed") > 0, "{second}");
    }
    assert_trees_equal_with(&src, &export, to_the_second());
    let back = t.path("back");
    sync(&t, &url, back.to_str().unwrap());
    assert_trees_equal(&export, &back);
}

/// The whole content of `rel` in `origin`.
fn read_all(origin: &dyn Origin, rel: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    origin.open(rel).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
}

fn walked(origin: &dyn Origin) -> Vec<String> {
    let mut lines = Vec::new();
    origin.walk(&mut |item| {
        lines.push(match item {
            WalkItem::Entry { path, stat, .. } if stat.kind == EntryKind::Dir => {
                format!("d {}", String::from_utf8_lossy(&path))
            }
            WalkItem::Entry { path, stat, .. } => {
                format!("f {} {}", String::from_utf8_lossy(&path), stat.size)
            }
            other => format!("{other:?}"),
        })
    });
    lines
}

/// Writes `bytes` to `rel` through `origin`.
fn put(origin: &dyn WritableOrigin, rel: &[u8], bytes: &[u8]) {
    let mut temp = origin.create_temp(rel).unwrap();
    temp.write_all(bytes).unwrap();
    temp.commit(0o644, 1_700_000_000_000_000_000).unwrap();
}

#[test]
fn a_directory_replaced_on_the_server_is_looked_up_again() {
    let server = Ganesha::start();
    let lib = server.export_dir().join("lib");
    fs::create_dir_all(lib.join("album")).unwrap();
    fs::write(lib.join("album/a.flac"), b"first version").unwrap();
    let location = NfsLocation {
        host: "127.0.0.1".into(),
        port: server.nfs_port,
        path: lib.clone().into_os_string().into_encoded_bytes(),
        mount_port: Some(server.mount_port),
    };
    let origin = location.open(&OpenOptions::default()).unwrap();
    assert_eq!(walked(&*origin), ["d album", "f album/a.flac 13"]);
    assert_eq!(read_all(&*origin, b"album/a.flac"), b"first version");

    // Another client (another machine, say) removes the directory whose handle this one
    // holds and makes another in its place: that handle is stale now.
    let other = location.open_writable(&OpenOptions::default()).unwrap();
    other.remove(b"album").unwrap();
    other.create_dir(b"album").unwrap();
    put(&*other, b"album/a.flac", b"the second version");

    let stat = origin.stat(b"album/a.flac").unwrap().expect("found again");
    assert_eq!(stat.size, 18);
    assert_eq!(read_all(&*origin, b"album/a.flac"), b"the second version");
    assert_eq!(walked(&*origin), ["d album", "f album/a.flac 18"]);

    // The same when the directory is renamed away (its handle stays valid, naming the old
    // one): a walk looks its directories up afresh.
    other.rename(b"album", b"old album").unwrap();
    other.create_dir(b"album").unwrap();
    put(&*other, b"album/b.flac", b"b");
    assert_eq!(
        walked(&*origin),
        [
            "d album",
            "f album/b.flac 1",
            "d old album",
            "f old album/a.flac 18"
        ]
    );
    assert_eq!(read_all(&*origin, b"album/b.flac"), b"b");
}
