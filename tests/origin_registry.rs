//! Origins through the registry of transports: an argument whose `scheme://` this build has
//! no transport for is refused at once (exit 2), never tried as an SSH host; and `scan`,
//! `verify` and `diff` work on an SSH origin read over SFTP from a real OpenSSH server on
//! 127.0.0.1 (`tests/support/sshd.rs`).

mod support;
mod util;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use support::sshd::{Sshd, SshdOptions};
use util::{num, parse_json_lines, summary_of, Musicfs, TestRepo};

/// `musicfs` with the test's repository and the server's client home (`~/.ssh`).
fn musicfs(t: &TestRepo, sshd: &Sshd) -> Musicfs {
    Musicfs::new(t.repo(), &sshd.home())
}

fn remote(path: &Path) -> String {
    format!("nas:{}", path.display())
}

/// A server whose sessions have no musicfs on their PATH: everything goes over SFTP.
fn sshd_without_agent() -> Sshd {
    Sshd::start(SshdOptions {
        set_env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        ..SshdOptions::default()
    })
}

#[test]
fn unknown_schemes_exit_2_at_once_and_are_never_tried_as_hosts() {
    let t = TestRepo::new();
    // Were a scheme read as an SSH host, `~/.ssh/config` would send it here.
    let trap = TcpListener::bind("127.0.0.1:0").expect("bind");
    trap.set_nonblocking(true).expect("nonblocking");
    let home = t.mkdir("home");
    fs::create_dir_all(home.join(".ssh")).expect("mkdir .ssh");
    fs::write(
        home.join(".ssh/config"),
        format!(
            "Host foo s3 smb nfs webdav\n    HostName 127.0.0.1\n    Port {}\n    User root\n",
            trap.local_addr().expect("addr").port()
        ),
    )
    .expect("ssh config");
    let lib = t.path("lib");
    let lib = lib.to_str().expect("utf-8");
    let cases: [(&[&str], &str); 7] = [
        (&["sync", "foo://x/y", lib], "foo://"),
        (&["sync", "webdav://b/m", lib], "webdav://"),
        (
            &["sync", "--dry-run", lib, "afp://me@server/share/m"],
            "afp://",
        ),
        (&["scan", "afp://server/export"], "afp://"),
        (&["verify", "webdav://bucket/music"], "webdav://"),
        (&["diff", "webdav://bucket/music"], "webdav://"),
        (&["diff", lib, "FOO://x"], "foo://"),
    ];
    fs::create_dir_all(lib).expect("mkdir lib");
    for (args, scheme) in cases {
        let started = Instant::now();
        let out = Musicfs::new(t.repo(), &home).args(args).assert_exit(2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{args:?}: {:?}: {}", started.elapsed(), stderr.trim());
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(scheme), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ssh://") && stderr.contains("sftp://"),
            "{args:?}: the known schemes are not listed: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(
        trap.accept().is_err(),
        "a scheme was tried as an SSH host name"
    );
}

#[test]
fn local_names_with_colons_and_file_urls_stay_local() {
    let t = TestRepo::new();
    let music = t.fixtures("s3:music");
    // `./s3:music` and its absolute path are local; so is `file:///abs`.
    let mut scan = t.cmd();
    scan.json().arg("scan").arg("./s3:music");
    let scanned = scan
        .command()
        .current_dir(t.root())
        .output()
        .expect("run musicfs scan");
    assert_eq!(
        scanned.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&scanned.stderr)
    );
    let summary = summary_of(&scanned);
    assert_eq!(
        summary["origin"].as_str(),
        Some(fs::canonicalize(&music).unwrap().to_str().unwrap())
    );
    let url = format!("file://{}", music.display());
    t.cmd().arg("verify").arg(&url).assert_exit(0);
    let lib = t.path("lib");
    let out = t
        .cmd()
        .json()
        .arg("sync")
        .arg(&url)
        .arg(format!("file://{}", lib.display()))
        .assert_exit(0);
    assert!(num(&summary_of(&out), "files_changed") > 0);
    util::assert_trees_equal(&music, &lib);
}

/// The JSON lines of a run that exits `code`, and its summary.
fn json_run(cmd: &mut Musicfs, code: i32) -> (Vec<Value>, Value) {
    cmd.json();
    let out = cmd.assert_exit(code);
    let lines = parse_json_lines(&out.stdout);
    let summary = lines.last().cloned().expect("a summary line");
    assert_eq!(summary["type"], "summary");
    (lines, summary)
}

fn typed<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// Sets a file's mtime back to `mtime`, as if its content had changed behind the file system.
fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(mtime)
        .expect("set mtime");
}

#[test]
fn scan_verify_and_diff_an_sftp_origin() {
    let t = TestRepo::new();
    let sshd = sshd_without_agent();
    let music = t.fixtures("music");
    let files = util::files_in(&music).len() as u64;
    let origin = remote(&music);

    // scan reads every file over SFTP, then nothing when nothing changed.
    let first = musicfs(&t, &sshd)
        .json()
        .args(["scan", &origin])
        .assert_exit(0);
    let first = summary_of(&first);
    assert_eq!(num(&first, "files"), files);
    assert_eq!(num(&first, "files_read"), files);
    let recorded = first["origin"].as_str().expect("origin").to_string();
    assert!(
        recorded.starts_with("sftp://root@127.0.0.1:")
            && recorded.ends_with(music.to_str().unwrap()),
        "{recorded}"
    );
    let again = summary_of(
        &musicfs(&t, &sshd)
            .json()
            .args(["scan", &origin])
            .assert_exit(0),
    );
    assert_eq!(num(&again, "files_read"), 0);
    assert_eq!(again["snapshot"], first["snapshot"]);
    // The name the repository records reads back as the same origin.
    let by_url = summary_of(
        &musicfs(&t, &sshd)
            .json()
            .args(["scan", &recorded])
            .assert_exit(0),
    );
    assert_eq!(by_url["origin"].as_str(), Some(recorded.as_str()));
    assert_eq!(num(&by_url, "files_read"), 0);

    // verify re-reads every file over SFTP.
    let (lines, summary) = json_run(musicfs(&t, &sshd).args(["verify", &origin]), 0);
    assert_eq!(num(&summary, "files"), files);
    assert_eq!(num(&summary, "ok"), files);
    assert_eq!(lines.len(), 1, "{lines:?}");

    // diff: nothing changed since the last scan; a local copy holds the same content.
    musicfs(&t, &sshd).args(["diff", &origin]).assert_exit(0);
    let copy = t.fixtures("copy");
    musicfs(&t, &sshd)
        .arg("diff")
        .arg(&copy)
        .arg(&origin)
        .assert_exit(0);

    // An edit at the origin: verify calls it an edit, diff shows it, on both forms.
    let cover = "Aurora Tones/First Light/cover.jpg";
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(music.join(cover))
        .expect("open cover");
    f.write_all(b"edited").expect("append");
    drop(f);
    let (lines, summary) = json_run(musicfs(&t, &sshd).args(["verify", &origin]), 0);
    assert_eq!(num(&summary, "edited"), 1, "{lines:?}");
    assert_eq!(typed(&lines, "edited")[0]["path"], cover);
    let (lines, _) = json_run(musicfs(&t, &sshd).arg("diff").arg(&copy).arg(&origin), 1);
    let changes: Vec<&Value> = lines.iter().filter(|l| l["type"] != "summary").collect();
    assert_eq!(changes.len(), 1, "{lines:?}");
    assert_eq!(changes[0]["path"], cover);
    assert_eq!(changes[0]["type"], "modified");
    // A far future time names the latest snapshot of the SSH origin (the one just scanned).
    musicfs(&t, &sshd)
        .arg("diff")
        .arg(format!("{origin}@2200-01-01"))
        .arg(&origin)
        .assert_exit(0);

    // Damage: other bytes behind the same size, mtime and mode.
    let victim = "Lossless Ensemble/Waveforms/01 Pure Sine.flac";
    let path: PathBuf = music.join(victim);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    util::editors::flip_middle_byte(&path);
    set_mtime(&path, mtime);
    let (lines, summary) = json_run(musicfs(&t, &sshd).args(["verify", &origin]), 1);
    assert_eq!(num(&summary, "damaged"), 1, "{lines:?}");
    assert_eq!(typed(&lines, "damaged")[0]["path"], victim);
}

#[test]
fn an_sftp_origin_that_is_missing_or_unreachable() {
    let t = TestRepo::new();
    let mut sshd = sshd_without_agent();
    let missing = t.path("missing");
    let out = musicfs(&t, &sshd)
        .args(["scan", &remote(&missing)])
        .assert_exit(2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let music = t.fixtures("music");
    sshd.kill();
    let out = musicfs(&t, &sshd)
        .args([
            "verify",
            "--retries",
            "0",
            "--timeout",
            "5",
            &remote(&music),
        ])
        .assert_exit(5);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}
