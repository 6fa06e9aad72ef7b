//! `-e/--rsh COMMAND` against a real OpenSSH server on 127.0.0.1, with the system OpenSSH
//! client as COMMAND: pull and push through the remote agent and through SFTP, `MUSICFS_RSH`,
//! `scan` over SFTP, `ControlMaster` connection sharing (the second sync opens no new TCP
//! connection, by the proxy's count), an `ssh` that cannot connect (exit 5, one line, within
//! seconds), OpenSSH's host-key check (refused: exit 5 at once; `--accept-new-host-key` passed
//! on), and no `ssh` process left behind, after a sync or SIGINT.
//!
//! OpenSSH reads `~/.ssh` from the password database, not from `HOME`: the command names the
//! test's client home with `-F` and `UserKnownHostsFile`.

mod support;
mod util;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::proxy::CountingProxy;
use support::sshd::{free_port, Sshd, SshdOptions};
use util::{assert_trees_equal_with, num, summary_of, Musicfs, TestRepo, TreeCmp};

fn bin_dir() -> PathBuf {
    util::bin().parent().unwrap().to_path_buf()
}

/// The system OpenSSH client, with a copy of the client home's config in which the host is
/// called `nas-openssh`: a name only OpenSSH knows, so that a sync that reaches it proves the
/// built-in client was not used.
fn ssh_command(sshd: &Sshd) -> String {
    let ssh = sshd.home().join(".ssh");
    let config = std::fs::read_to_string(ssh.join("config")).unwrap();
    let rsh_config = sshd.dir().join("rsh_config");
    std::fs::write(
        &rsh_config,
        config.replace("Host nas\n", "Host nas-openssh\n"),
    )
    .unwrap();
    format!(
        "ssh -F '{}' -o 'UserKnownHostsFile={}'",
        rsh_config.display(),
        ssh.join("known_hosts").display()
    )
}

fn remote(path: &Path) -> String {
    format!("nas-openssh:{}", path.display())
}

/// SFTP carries whole seconds of mtime.
fn assert_same(a: &Path, b: &Path) {
    assert_trees_equal_with(
        a,
        b,
        TreeCmp {
            mtime_seconds_only: true,
            ..TreeCmp::default()
        },
    );
}

/// `ssh` processes started for this test's client home (by their command line).
fn ssh_processes(sshd: &Sshd) -> Vec<String> {
    let home = sshd.home().display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let words: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        let is_ssh = words
            .first()
            .is_some_and(|w| Path::new(w).file_name() == Some("ssh".as_ref()));
        if is_ssh && words.iter().any(|w| w.contains(&home)) {
            found.push(format!(
                "{}: {}",
                entry.file_name().to_string_lossy(),
                words.join(" ")
            ));
        }
    }
    found
}

fn sync_json(t: &TestRepo, sshd: &Sshd, args: &[&str]) -> serde_json::Value {
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json()
        .arg("sync")
        .args(["--rsh", &ssh_command(sshd)])
        .args(args);
    summary_of(&cmd.assert_exit(0))
}

#[test]
fn rsh_ssh_pulls_and_pushes_through_the_agent_and_through_sftp() {
    let t = TestRepo::new();
    let sshd = Sshd::with_agent(&bin_dir(), &t.path("remote-repo"));
    let music = t.fixtures("music");

    // Through the remote agent.
    let lib = t.path("lib");
    let first = sync_json(
        &t,
        &sshd,
        &["--delete", &remote(&music), lib.to_str().unwrap()],
    );
    assert_same(&music, &lib);
    assert!(num(&first, "bytes_transferred") > 0);
    assert!(
        t.path("remote-repo").join("index.redb").exists(),
        "the remote agent did not run"
    );
    let again = sync_json(
        &t,
        &sshd,
        &["--delete", &remote(&music), lib.to_str().unwrap()],
    );
    assert_eq!(num(&again, "files_changed"), 0);
    assert_eq!(num(&again, "bytes_transferred"), 0);
    let pushed = t.path("pushed");
    sync_json(
        &t,
        &sshd,
        &["--delete", lib.to_str().unwrap(), &remote(&pushed)],
    );
    assert_same(&lib, &pushed);

    // Through SFTP (`COMMAND -s host sftp`), asked for with --sftp.
    let lib2 = t.path("lib2");
    sync_json(
        &t,
        &sshd,
        &[
            "--sftp",
            "--delete",
            &remote(&music),
            lib2.to_str().unwrap(),
        ],
    );
    assert_same(&music, &lib2);
    let pushed2 = t.path("pushed2");
    sync_json(
        &t,
        &sshd,
        &[
            "--sftp",
            "--delete",
            lib2.to_str().unwrap(),
            &remote(&pushed2),
        ],
    );
    assert_same(&lib2, &pushed2);
    let again = sync_json(
        &t,
        &sshd,
        &[
            "--sftp",
            "--delete",
            lib2.to_str().unwrap(),
            &remote(&pushed2),
        ],
    );
    assert_eq!(num(&again, "files_changed"), 0);

    // MUSICFS_RSH, and `scan`, which reads over SFTP.
    let mut scan = Musicfs::new(t.repo(), &sshd.home());
    scan.json().args(["scan", &remote(&pushed2)]);
    let out = scan
        .command()
        .env("MUSICFS_RSH", ssh_command(&sshd))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = summary_of(&out);
    assert_eq!(
        num(&summary, "files"),
        util::files_in(&pushed2).len() as u64,
        "{summary}"
    );

    // Every ssh started was waited for.
    let left = ssh_processes(&sshd);
    assert!(left.is_empty(), "ssh processes left behind: {left:?}");
}

#[test]
fn with_control_master_a_second_sync_opens_no_new_connection() {
    let t = TestRepo::new();
    let sshd = Sshd::with_agent(&bin_dir(), &t.path("remote-repo"));
    let proxy = CountingProxy::in_front_of(&sshd);
    let config = sshd.home().join(".ssh/config");
    let control = sshd.dir().join("cm-%C");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}    ControlMaster auto\n    ControlPath {}\n    ControlPersist 60\n",
            control.display()
        ),
    )
    .unwrap();
    let music = t.fixtures("music");
    let lib = t.path("lib");
    sync_json(&t, &sshd, &[&remote(&music), lib.to_str().unwrap()]);
    let after_first = proxy.connections();
    assert!(after_first >= 1);
    sync_json(&t, &sshd, &[&remote(&music), lib.to_str().unwrap()]);
    sync_json(
        &t,
        &sshd,
        &["--sftp", &remote(&music), t.path("lib2").to_str().unwrap()],
    );
    assert_eq!(
        proxy.connections(),
        after_first,
        "the later syncs opened TCP connections of their own"
    );
    assert_same(&music, &t.path("lib2"));
    // Stop the master this test started.
    let stopped = std::process::Command::new("ssh")
        .arg("-F")
        .arg(sshd.dir().join("rsh_config"))
        .args(["-O", "exit", "nas-openssh"])
        .env("HOME", sshd.home())
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
}

#[test]
fn an_ssh_that_cannot_connect_exits_5_with_one_line_within_seconds() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions::default());
    let config = sshd.home().join(".ssh/config");
    let text = std::fs::read_to_string(&config).unwrap();
    let closed = free_port();
    std::fs::write(
        &config,
        text.replace(&format!("Port {}", sshd.port()), &format!("Port {closed}")),
    )
    .unwrap();
    for sftp in [false, true] {
        let started = Instant::now();
        let mut cmd = Musicfs::new(t.repo(), &sshd.home());
        cmd.args(["sync", "--rsh", &ssh_command(&sshd)]);
        if sftp {
            cmd.arg("--sftp");
        }
        cmd.args(["nas-openssh:/music", t.path("lib").to_str().unwrap()]);
        let out = cmd.assert_exit(5);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(30), "took {took:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.contains("nas-openssh") && last.contains("refused"),
            "the error does not name the host and the cause: {stderr}"
        );
        assert!(!t.path("lib").exists());
    }
    let left = ssh_processes(&sshd);
    assert!(left.is_empty(), "ssh processes left behind: {left:?}");
}

#[test]
fn an_interrupted_rsh_pull_exits_130_and_leaves_no_ssh_behind() {
    let t = TestRepo::new();
    let sshd = Sshd::with_agent(&bin_dir(), &t.path("remote-repo"));
    let music = t.mkdir("music");
    util::genlib_create(&music, 30, 5, 1 << 20);
    for sftp in [false, true] {
        let lib = t.path(if sftp { "lib-sftp" } else { "lib" });
        let mut cmd = Musicfs::new(t.repo(), &sshd.home());
        cmd.args(["sync", "--bwlimit", "3M", "--rsh", &ssh_command(&sshd)]);
        if sftp {
            cmd.arg("--sftp");
        }
        cmd.args([&remote(&music), lib.to_str().unwrap()]);
        let mut child = cmd.spawn();
        let deadline = Instant::now() + Duration::from_secs(60);
        // At work: files landed (agent), or files downloaded into the spool (SFTP, which
        // writes once it has scanned).
        let spool = t.repo().join("spool");
        let at_work = || {
            let spooled = std::fs::read_dir(&spool).map_or(0, |d| d.count());
            if sftp {
                spooled >= 3
            } else {
                lib.exists()
            }
        };
        while ssh_processes(&sshd).is_empty() || !at_work() {
            assert!(Instant::now() < deadline, "the sync did not start in 60 s");
            assert!(child.try_wait().unwrap().is_none(), "the sync ended early");
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = util::wait_timeout(&mut child, Duration::from_secs(30))
            .expect("the interrupted sync did not exit");
        assert_eq!(status.code(), Some(130), "sftp {sftp}");
        let left = ssh_processes(&sshd);
        assert!(
            left.is_empty(),
            "sftp {sftp}: ssh processes left behind: {left:?}"
        );
    }
}

#[test]
fn openssh_checks_host_keys_and_accept_new_reaches_it() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions {
        known_host: false,
        ..SshdOptions::default()
    });
    let dir = t.mkdir("remote-dir");
    std::fs::write(dir.join("a.flac"), b"fLaC and more").unwrap();
    let lib = t.path("lib");
    let mut refused = Musicfs::new(t.repo(), &sshd.home());
    refused.args(["sync", "--sftp", "--rsh", &ssh_command(&sshd)]);
    refused.args([&remote(&dir), lib.to_str().unwrap()]);
    let started = Instant::now();
    let out = refused.assert_exit(5);
    assert!(started.elapsed() < Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("nas-openssh") && last.contains("Host key verification failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("retrying"),
        "a refused host key was retried: {stderr}"
    );
    let mut accepted = Musicfs::new(t.repo(), &sshd.home());
    accepted.args([
        "sync",
        "--sftp",
        "--accept-new-host-key",
        "--rsh",
        &ssh_command(&sshd),
    ]);
    accepted.args([&remote(&dir), lib.to_str().unwrap()]);
    accepted.assert_exit(0);
    assert_same(&dir, &lib);
}
