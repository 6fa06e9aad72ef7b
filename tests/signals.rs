//! SIGINT and SIGTERM end `sync`, `scan`, `verify` and `serve` cleanly: the command exits 130 or
//! 143 with one line on stderr, no temporary file is left in the destination, no file there is
//! torn, and a re-run finishes the job. Over a real sshd (`tests/support/sshd.rs`): a push whose
//! client gets SIGINT (the server, left without its client, removes its temporary file), a pull
//! whose client gets SIGTERM, and a push whose server gets SIGTERM (the client ends at once and
//! says why). Real processes throughout, on a few hundred MiB of deterministic noise; the signal
//! is sent once the command is seen at work (a temporary file in the destination, or bytes read
//! in `/proc/PID/io`), never after a fixed delay. The deadline on each exit detects a hang; it is
//! not a timing assertion.

mod support;
mod util;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use support::sshd::Sshd;
use util::{assert_trees_equal, files_in, list_tree, Musicfs, TestRepo, XorShift};

/// How long a signalled command may take to end before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(10);
/// How long a command may take to reach the point where it is signalled.
const START_DEADLINE: Duration = Duration::from_secs(120);
const MIB: usize = 1 << 20;

/// Writes `files` files of `size` bytes of deterministic noise (no two chunks alike, nothing
/// compresses) under `dir`, ten to a directory.
fn library(dir: &Path, files: usize, size: usize, seed: u64) {
    let mut rng = XorShift::new(seed);
    let mut block = vec![0u8; MIB];
    for i in 0..files {
        let album = dir.join(format!("Album {:02}", i / 10));
        fs::create_dir_all(&album).unwrap();
        let mut f = fs::File::create(album.join(format!("{:02} Track.bin", i % 10))).unwrap();
        let mut left = size;
        while left > 0 {
            for word in block.chunks_exact_mut(8) {
                word.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            let n = left.min(block.len());
            f.write_all(&block[..n]).unwrap();
            left -= n;
        }
    }
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy())
        .is_some_and(|n| n.starts_with(".musicfs-") && n.ends_with(".tmp"))
}

/// Temporary files of a sync anywhere under `dir` (which may be changing: entries that vanish
/// while it is walked are skipped).
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && is_temporary(e.path()))
        .map(|e| e.into_path())
        .collect()
}

/// After an interrupted sync into an empty `dst`: nothing but files equal to their `src`
/// counterparts, and directories.
fn assert_old_or_new_only(src: &Path, dst: &Path) {
    assert_eq!(
        temporaries(dst),
        Vec::<PathBuf>::new(),
        "temporary files left"
    );
    if !dst.exists() {
        return;
    }
    for (rel, abs) in files_in(dst) {
        let theirs = src.join(&rel);
        assert!(
            theirs.is_file(),
            "{} is in DST but not in SRC",
            rel.display()
        );
        assert!(
            fs::read(&abs).unwrap() == fs::read(&theirs).unwrap(),
            "{} in DST is torn",
            rel.display()
        );
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name} {pid} failed");
}

/// Polls `ready` (a few times a millisecond's sleep apart) until it holds; fails if `child`
/// ends first or it takes longer than START_DEADLINE.
fn wait_until(child: &mut Child, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_DEADLINE;
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the command ended ({status}) before {what}: {}",
                stderr_of(child)
            );
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Bytes the process has read so far (`rchar` of `/proc/PID/io`).
fn bytes_read(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("rchar: ").map(|n| n.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    text
}

/// Waits (at most DEADLINE) for a signalled command to end; its status and stderr.
fn ended(child: &mut Child, what: &str) -> (ExitStatus, String) {
    let status = util::wait_timeout(child, DEADLINE)
        .unwrap_or_else(|| panic!("{what} did not end within {DEADLINE:?} of the signal"));
    (status, stderr_of(child))
}

fn assert_interrupted(status: ExitStatus, stderr: &str, signal: &str, code: i32) {
    assert_eq!(status.code(), Some(code), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains(&format!("interrupted by SIG{signal}")),
        "stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one line expected on stderr: {stderr}"
    );
}

fn sync_is_interrupted(signal_name: &str, code: i32) {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    library(&src, 8, 32 * MIB, 7);
    let dst = t.path("dst");
    let mut cmd = t.cmd();
    cmd.args(["sync", src.to_str().unwrap(), dst.to_str().unwrap()]);
    let mut child = cmd.spawn();
    wait_until(&mut child, "a temporary file in DST", || {
        !temporaries(&dst).is_empty()
    });
    signal(child.id(), signal_name);
    let (status, stderr) = ended(&mut child, "the sync");
    assert_interrupted(status, &stderr, signal_name, code);
    assert!(stderr.contains("the next sync"), "{stderr}");
    assert_old_or_new_only(&src, &dst);

    cmd.assert_exit(0);
    assert_trees_equal(&src, &dst);
    assert_eq!(list_tree(&src), list_tree(&dst), "DST holds more than SRC");
}

#[test]
fn sigint_ends_a_sync_with_old_or_new_files_only() {
    sync_is_interrupted("INT", 130);
}

#[test]
fn sigterm_ends_a_sync_with_old_or_new_files_only() {
    sync_is_interrupted("TERM", 143);
}

#[test]
fn sigint_ends_a_scan_and_a_rescan_finishes_it() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    library(&src, 16, 32 * MIB, 8);
    let mut scan = t.cmd();
    scan.args(["scan", src.to_str().unwrap()]);
    let mut child = scan.spawn();
    let pid = child.id();
    wait_until(&mut child, "the scan reading files", || {
        bytes_read(pid) > 16 * MIB as u64
    });
    signal(pid, "INT");
    let (status, stderr) = ended(&mut child, "the scan");
    assert_interrupted(status, &stderr, "INT", 130);

    scan.assert_exit(0);
    t.cmd()
        .args(["verify", src.to_str().unwrap()])
        .assert_exit(0);
}

#[test]
fn sigterm_ends_a_verify() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    library(&src, 16, 32 * MIB, 9);
    t.cmd().args(["scan", src.to_str().unwrap()]).assert_exit(0);
    let mut verify = t.cmd();
    verify.args(["verify", src.to_str().unwrap()]);
    let mut child = verify.spawn();
    let pid = child.id();
    wait_until(&mut child, "verify reading files", || {
        bytes_read(pid) > 16 * MIB as u64
    });
    signal(pid, "TERM");
    let (status, stderr) = ended(&mut child, "verify");
    assert_interrupted(status, &stderr, "TERM", 143);
    verify.assert_exit(0);
}

// --- over SSH ------------------------------------------------------------------------------

fn bin_dir() -> PathBuf {
    util::bin().parent().unwrap().to_path_buf()
}

/// A server whose sessions run this build's musicfs with the repository `remote_repo`.
fn sshd_with_agent(remote_repo: &Path) -> Sshd {
    Sshd::with_agent(&bin_dir(), remote_repo)
}

fn remote(path: &Path) -> String {
    format!("nas:{}", path.display())
}

/// The `musicfs serve --stdio` processes that use `remote_repo`.
fn servers(remote_repo: &Path) -> Vec<u32> {
    let wanted = format!("MUSICFS_REPO={}", remote_repo.display());
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.ends_with(b"serve\0--stdio\0") {
            continue;
        }
        let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (at most DEADLINE) for the remote end's processes to end.
fn wait_for_servers_to_end(remote_repo: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while !servers(remote_repo).is_empty() {
        assert!(
            Instant::now() < deadline,
            "musicfs serve still running {DEADLINE:?} after the client ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A sync over SSH whose client gets `signal_name` while the destination is being written.
fn ssh_client_is_interrupted(push: bool, signal_name: &str, code: i32) {
    let t = TestRepo::new();
    let remote_repo = t.path("remote-repo");
    let sshd = sshd_with_agent(&remote_repo);
    let src = t.mkdir("src");
    library(&src, 8, 16 * MIB, 10);
    let dst = t.path("dst");
    let (from, to) = if push {
        (src.to_str().unwrap().to_string(), remote(&dst))
    } else {
        (remote(&src), dst.to_str().unwrap().to_string())
    };
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.args(["sync", "--retries", "0", &from, &to]);
    let mut child = cmd.spawn();
    wait_until(&mut child, "a temporary file in DST", || {
        !temporaries(&dst).is_empty()
    });
    signal(child.id(), signal_name);
    let (status, stderr) = ended(&mut child, "the sync");
    assert_interrupted(status, &stderr, signal_name, code);
    wait_for_servers_to_end(&remote_repo);
    assert_old_or_new_only(&src, &dst);

    cmd.assert_exit(0);
    assert_trees_equal(&src, &dst);
    assert_eq!(list_tree(&src), list_tree(&dst), "DST holds more than SRC");
}

#[test]
fn sigint_ends_an_ssh_push_and_the_server_leaves_no_temporary_file() {
    ssh_client_is_interrupted(true, "INT", 130);
}

#[test]
fn sigterm_ends_an_ssh_pull() {
    ssh_client_is_interrupted(false, "TERM", 143);
}

#[test]
fn sigterm_ends_the_server_of_a_push_and_the_client_says_why() {
    let t = TestRepo::new();
    let remote_repo = t.path("remote-repo");
    let sshd = sshd_with_agent(&remote_repo);
    let src = t.mkdir("src");
    library(&src, 8, 16 * MIB, 11);
    let dst = t.path("dst");
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.args([
        "sync",
        "--retries",
        "0",
        src.to_str().unwrap(),
        &remote(&dst),
    ]);
    let mut child = cmd.spawn();
    wait_until(&mut child, "a temporary file in DST", || {
        !temporaries(&dst).is_empty()
    });
    let server = servers(&remote_repo);
    assert_eq!(server.len(), 1, "one musicfs serve expected: {server:?}");
    signal(server[0], "TERM");
    let (status, stderr) = ended(&mut child, "the client of the signalled server");
    assert!(status.code().is_some_and(|c| c != 0), "{status}: {stderr}");
    assert!(
        stderr.contains("interrupted by SIGTERM"),
        "the client does not say why the server stopped: {stderr}"
    );
    wait_for_servers_to_end(&remote_repo);
    assert_old_or_new_only(&src, &dst);

    cmd.assert_exit(0);
    assert_trees_equal(&src, &dst);
}
