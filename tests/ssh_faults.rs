//! Syncs over a link that drops: a proxy in front of a real sshd stops forwarding for about
//! ten seconds in the middle of a pull, longer than `--timeout` plus the three quick retries
//! of old. With `--retry-for`, a pull through the remote agent and a pull through SFTP both
//! ride it out: they end exact with exit 0, the SFTP one fetches no file twice (its spool is
//! kept across attempts; bytes counted by the proxy), and each summary counts the whole run.
//! Over the built-in client and over `--rsh ssh`; and a push over SFTP, whose uploads stop at
//! the drop and resume.

mod support;
mod util;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::proxy::CountingProxy;
use support::sshd::{Sshd, SshdOptions};
use util::{assert_trees_equal_with, num, parse_json_lines, Musicfs, TestRepo, TreeCmp};

fn bin_dir() -> PathBuf {
    util::bin().parent().unwrap().to_path_buf()
}

fn finished_files(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with(".musicfs-")
        })
        .count()
}

/// The system OpenSSH client reading the test's client home (see `tests/ssh_rsh.rs`).
fn ssh_command(sshd: &Sshd) -> String {
    let ssh = sshd.home().join(".ssh");
    format!(
        "ssh -F '{}' -o 'UserKnownHostsFile={}'",
        ssh.join("config").display(),
        ssh.join("known_hosts").display()
    )
}

/// Pulls `music` through `proxy`, dropping the link for 10 s once a few files (agent) or
/// some bytes (SFTP, which downloads before it writes) have crossed; returns the summary
/// and what crossed the proxy.
fn pull_through_a_drop(
    t: &TestRepo,
    sshd: &Sshd,
    proxy: &CountingProxy,
    music: &Path,
    lib: &Path,
    extra: &[&str],
) -> (serde_json::Value, u64) {
    sync_through_a_drop(t, sshd, proxy, music, lib, extra, false)
}

/// [`pull_through_a_drop`], or with `push` the other way: `lib` is then the remote copy.
fn sync_through_a_drop(
    t: &TestRepo,
    sshd: &Sshd,
    proxy: &CountingProxy,
    music: &Path,
    lib: &Path,
    extra: &[&str],
    push: bool,
) -> (serde_json::Value, u64) {
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json()
        .args(["sync", "--timeout", "3", "--retry-for", "60s"])
        .args(extra);
    if push {
        cmd.arg(music).arg(format!("nas:{}", lib.display()));
    } else {
        cmd.arg(format!("nas:{}", music.display())).arg(lib);
    }
    let mut child = cmd
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut all = Vec::new();
        out.read_to_end(&mut all).unwrap();
        all
    });
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        err.read_to_string(&mut all).unwrap();
        all
    });
    let library = util::tree_bytes(music);
    let deadline = Instant::now() + Duration::from_secs(60);
    while finished_files(lib) < 3 && proxy.forwarded() < library / 4 {
        assert!(Instant::now() < deadline, "nothing arrived in 60 s");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the sync ended before the link dropped: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    proxy.drop_for(Duration::from_secs(10));
    let status = util::wait_timeout(&mut child, Duration::from_secs(150)).expect("the sync hung");
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(status.success(), "{status}: {stderr}");
    assert!(
        stderr.contains("retrying"),
        "no retry was reported: {stderr}"
    );
    let problems = stderr
        .lines()
        .filter(|l| !l.contains("retrying"))
        .filter(|l| l.contains("session closed") || l.contains("Timeout"))
        .count();
    assert_eq!(problems, 0, "per-file errors after the drop: {stderr}");
    let summary = parse_json_lines(&stdout)
        .into_iter()
        .find(|v| v["type"] == "summary")
        .expect("no summary");
    assert_trees_equal_with(
        music,
        lib,
        TreeCmp {
            mtime_seconds_only: true,
            ..TreeCmp::default()
        },
    );
    (summary, proxy.take())
}

/// A library of 40 files of about 1 MiB.
fn library(t: &TestRepo) -> PathBuf {
    let music = t.mkdir("music");
    util::genlib_create(&music, 40, 7, 1 << 20);
    music
}

#[test]
fn an_agent_pull_rides_out_a_drop_longer_than_its_quick_retries() {
    for rsh in [false, true] {
        let t = TestRepo::new();
        let sshd = Sshd::with_agent(&bin_dir(), &t.path("remote-repo"));
        let proxy = CountingProxy::in_front_of(&sshd);
        let music = library(&t);
        let lib = t.path("lib");
        let command = ssh_command(&sshd);
        let extra: Vec<&str> = if rsh { vec!["--rsh", &command] } else { vec![] };
        let (summary, _) = pull_through_a_drop(&t, &sshd, &proxy, &music, &lib, &extra);
        assert_eq!(
            num(&summary, "files_changed"),
            util::files_in(&music).len() as u64,
            "rsh {rsh}: the summary does not count the whole run: {summary}"
        );
    }
}

#[test]
fn an_sftp_pull_rides_out_a_drop_and_keeps_what_it_spooled() {
    for rsh in [false, true] {
        let t = TestRepo::new();
        let sshd = Sshd::start(SshdOptions {
            set_env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            ..SshdOptions::default()
        });
        let proxy = CountingProxy::in_front_of(&sshd);
        let music = library(&t);
        let lib = t.path("lib");
        let command = ssh_command(&sshd);
        let extra: Vec<&str> = if rsh {
            vec!["--sftp", "--rsh", &command]
        } else {
            vec!["--sftp"]
        };
        let (summary, wire) = pull_through_a_drop(&t, &sshd, &proxy, &music, &lib, &extra);
        let total = util::tree_bytes(&music);
        eprintln!("rsh {rsh}: library {total} B, {wire} B through the proxy");
        assert!(
            wire < total + total / 2,
            "rsh {rsh}: {wire} B crossed for a library of {total} B: spooled files were fetched again"
        );
        assert_eq!(
            num(&summary, "files_changed"),
            util::files_in(&music).len() as u64,
            "rsh {rsh}: the summary does not count the whole run: {summary}"
        );
    }
}

#[test]
fn an_sftp_push_rides_out_a_drop() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions {
        set_env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        ..SshdOptions::default()
    });
    let proxy = CountingProxy::in_front_of(&sshd);
    let music = library(&t);
    // Files changed within the last minute are read again by the next scan of an SFTP
    // destination (no change key, whole-second mtimes): an hour-old library is what the
    // retry is measured on.
    util::age_files(&music, std::time::Duration::from_secs(3600));
    let pushed = t.path("pushed");
    let (summary, wire) =
        sync_through_a_drop(&t, &sshd, &proxy, &music, &pushed, &["--sftp"], true);
    let total = util::tree_bytes(&music);
    eprintln!("push: library {total} B, {wire} B through the proxy; {summary}");
    // What the first attempt wrote is recorded when it stops (with the stat its commit gave
    // a file whose own stat was cut off), so the retry neither sends it again nor reads it
    // back; a file renamed into place just as the link dropped is read back once.
    assert!(
        wire < total + total / 2,
        "the push moved {wire} B for a library of {total} B"
    );
    // A file whose commit was cut off may be found in place by the retry, which then has
    // nothing to write for it.
    let files = util::files_in(&music).len() as u64;
    let changed = num(&summary, "files_changed");
    assert!(
        changed == files || changed + 1 == files,
        "the summary does not count the whole run: {summary}"
    );
}
