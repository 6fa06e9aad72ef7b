//! `musicfs sync --deploy-agent` against a real OpenSSH server on 127.0.0.1 whose sessions
//! have no musicfs on their PATH (`tests/support/sshd.rs`): the binary under test is uploaded
//! to the remote cache directory (`XDG_CACHE_HOME` of the sessions), checked and run as the
//! agent; a second run reuses it; stale versions go; a retag and a reorganisation then move
//! what the agent moves with musicfs on the PATH; a binary that cannot run there (a `noexec`
//! mount), another architecture (`uname` says so) or a cache directory writable by others
//! falls back to SFTP with one line; the same through OpenSSH (`--rsh`); and a client run as
//! `nobody` deploys and reuses it as root does.

mod support;
mod util;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use support::sshd::{Sshd, SshdOptions};
use util::{
    assert_trees_equal, assert_trees_equal_with, num, summary_of, Musicfs, TestRepo, TreeCmp,
};

/// A server whose sessions find no musicfs (PATH `extra:/usr/bin:/bin`), keep the agent's
/// repository in `remote_repo` and their cache in `cache`.
fn sshd_without_musicfs(remote_repo: &Path, cache: &Path, extra_path: Option<&Path>) -> Sshd {
    let path = match extra_path {
        Some(dir) => format!("{}:/usr/bin:/bin", dir.display()),
        None => "/usr/bin:/bin".into(),
    };
    Sshd::start(SshdOptions {
        set_env: vec![
            ("PATH".into(), path),
            ("MUSICFS_REPO".into(), remote_repo.display().to_string()),
            ("XDG_CACHE_HOME".into(), cache.display().to_string()),
        ],
        ..SshdOptions::default()
    })
}

fn remote(path: &Path) -> String {
    format!("nas:{}", path.display())
}

/// The directory of each deployed version.
fn agent_dir(cache: &Path) -> PathBuf {
    cache.join("musicfs").join("agent")
}

/// The name this build is deployed under: its BLAKE3's first 16 hex digits.
fn version_name() -> String {
    let bytes = fs::read(util::bin()).expect("read the binary");
    blake3::hash(&bytes).to_hex()[..16].to_string()
}

/// Runs a sync, exit 0; its summary and its stderr.
fn sync(t: &TestRepo, sshd: &Sshd, args: &[&str]) -> (serde_json::Value, String) {
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json().arg("sync").args(args);
    let out = cmd.assert_exit(0);
    (
        summary_of(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SFTP carries whole seconds of mtime.
fn assert_same_to_the_second(a: &Path, b: &Path) {
    assert_trees_equal_with(
        a,
        b,
        TreeCmp {
            mtime_seconds_only: true,
            ..TreeCmp::default()
        },
    );
}

#[test]
fn the_agent_is_deployed_checked_reused_and_stale_versions_removed() {
    let t = TestRepo::new();
    let cache = t.path("remote-cache");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    let agents = agent_dir(&cache);
    // An older version, and something that is not ours.
    let stale = agents.join("0123456789abcdef");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("musicfs"), b"an older musicfs").unwrap();
    fs::write(agents.join("keep-me"), b"not a version").unwrap();
    fs::set_permissions(cache.join("musicfs"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&agents, fs::Permissions::from_mode(0o700)).unwrap();

    let music = t.mkdir("music");
    util::genlib_create(&music, 12, 11, 128 * 1024);
    let lib = t.path("lib");
    let args = [
        "--deploy-agent",
        "--delete",
        &remote(&music),
        lib.to_str().unwrap(),
    ];
    let (first, stderr) = sync(&t, &sshd, &args);
    assert_trees_equal(&music, &lib);
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert!(
        t.path("remote-repo").join("index.redb").exists(),
        "the deployed agent did not run"
    );
    let binary = fs::read(util::bin()).unwrap();
    assert!(
        num(&first, "bytes_sent") >= binary.len() as u64,
        "the upload is counted as sent: {first}"
    );
    let deployed = agents.join(version_name()).join("musicfs");
    assert_eq!(fs::read(&deployed).unwrap(), binary, "the deployed binary");
    let meta = fs::metadata(&deployed).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(deployed.parent().unwrap()).unwrap().mode() & 0o777,
        0o700
    );
    assert!(!stale.exists(), "the stale version was kept");
    assert!(
        agents.join("keep-me").exists(),
        "a file not ours was removed"
    );
    let mut names: Vec<_> = fs::read_dir(&agents)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [version_name(), "keep-me".to_string()]);

    // Again: the same file runs, nothing uploaded.
    util::genlib_retag(&music, 0.5, 12);
    let (again, stderr) = sync(&t, &sshd, &args);
    assert_trees_equal(&music, &lib);
    assert!(stderr.trim().is_empty(), "{stderr}");
    let reused = fs::metadata(&deployed).unwrap();
    assert_eq!(
        (reused.ino(), reused.mtime(), reused.mtime_nsec()),
        (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        "the agent was uploaded again"
    );
    assert!(num(&again, "bytes_sent") < 64 * 1024, "{again}");
    assert!(num(&again, "files_changed") > 0, "{again}");

    // A deployed file that was damaged is replaced before it runs.
    // (A new file: the agent of the last run may still be ending, its text busy.)
    fs::remove_file(&deployed).unwrap();
    fs::write(&deployed, b"#!/bin/sh\necho damaged\n").unwrap();
    fs::set_permissions(&deployed, fs::Permissions::from_mode(0o700)).unwrap();
    util::genlib_retag(&music, 0.5, 13);
    let (third, stderr) = sync(&t, &sshd, &args);
    assert_trees_equal(&music, &lib);
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert_eq!(
        fs::read(&deployed).unwrap(),
        binary,
        "the damaged agent ran"
    );
    assert!(num(&third, "bytes_sent") >= binary.len() as u64, "{third}");

    // A push goes through the deployed agent too.
    let pushed = t.path("pushed");
    let (_, stderr) = sync(
        &t,
        &sshd,
        &["--deploy-agent", lib.to_str().unwrap(), &remote(&pushed)],
    );
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert_trees_equal(&lib, &pushed);
}

/// The client home of `sshd` copied to `home`, owned by `nobody` with the modes OpenSSH
/// wants (`.ssh` 0700, the private key 0600), its configuration naming the copied key: the
/// home of an unprivileged client.
fn unprivileged_client_home(sshd: &Sshd, home: &Path) {
    let ssh = home.join(".ssh");
    fs::create_dir_all(&ssh).unwrap();
    for name in ["known_hosts", "id_ed25519", "id_ed25519.pub"] {
        fs::copy(sshd.home().join(".ssh").join(name), ssh.join(name)).unwrap();
    }
    // The configuration names its key by absolute path: this home's.
    let config = fs::read_to_string(sshd.home().join(".ssh/config")).unwrap();
    let config = config.replace(
        sshd.client_key().to_str().unwrap(),
        ssh.join("id_ed25519").to_str().unwrap(),
    );
    assert!(config.contains(ssh.to_str().unwrap()), "{config}");
    fs::write(ssh.join("config"), config).unwrap();
    fs::set_permissions(&ssh, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(ssh.join("id_ed25519"), fs::Permissions::from_mode(0o600)).unwrap();
    for entry in walkdir::WalkDir::new(&ssh) {
        let entry = entry.unwrap();
        std::os::unix::fs::lchown(entry.path(), Some(util::NOBODY.0), Some(util::NOBODY.1))
            .unwrap();
    }
}

/// A client run as `nobody` (as users run musicfs; the tests run as root, where modes bind
/// nobody) deploys the agent from the binary it runs as, with its keys in a home of its own,
/// reuses it on the next run, and leaves its repository and its copy to itself.
#[test]
fn an_unprivileged_client_deploys_and_reuses_the_agent() {
    let t = TestRepo::unprivileged();
    let cache = t.path("remote-cache");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    unprivileged_client_home(&sshd, t.root());
    let music = t.mkdir("music");
    util::genlib_create(&music, 10, 21, 96 * 1024);
    let lib = t.path("lib");
    let args = [
        "--deploy-agent",
        "--delete",
        &remote(&music),
        lib.to_str().unwrap(),
    ];
    let run = || {
        let mut cmd = t.cmd_unprivileged();
        cmd.json().arg("sync").args(args);
        let out = cmd.assert_exit(0);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(stderr.trim().is_empty(), "{stderr}");
        summary_of(&out)
    };

    let first = run();
    assert_trees_equal(&music, &lib);
    let binary = fs::read(util::bin()).unwrap();
    let deployed = agents_version(&cache);
    assert_eq!(fs::read(&deployed).unwrap(), binary, "the deployed binary");
    assert_eq!(fs::metadata(&deployed).unwrap().mode() & 0o777, 0o700);
    assert!(
        num(&first, "bytes_sent") >= binary.len() as u64,
        "the upload is counted as sent: {first}"
    );
    // What the client wrote belongs to the user it ran as.
    for written in [lib.as_path(), t.repo()] {
        for entry in walkdir::WalkDir::new(written) {
            let entry = entry.unwrap();
            let owner = entry.metadata().unwrap().uid();
            assert_eq!(
                owner,
                util::NOBODY.0,
                "{} belongs to {owner}",
                entry.path().display()
            );
        }
    }

    // Again after a retag: the deployed agent runs as it is and moves the tags.
    let before = fs::metadata(&deployed).unwrap();
    util::genlib_retag(&music, 0.5, 22);
    let again = run();
    assert_trees_equal(&music, &lib);
    let after = fs::metadata(&deployed).unwrap();
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec()),
        "the agent was uploaded again"
    );
    assert!(num(&again, "files_changed") > 0, "{again}");
    assert!(num(&again, "bytes_sent") < 64 * 1024, "{again}");
}

/// The deployed binary of this build under `cache`.
fn agents_version(cache: &Path) -> PathBuf {
    agent_dir(cache).join(version_name()).join("musicfs")
}

/// The bytes received by a pull, through the agent on the PATH and through the deployed one,
/// after the same change to the same library.
#[test]
fn a_retag_and_a_reorganisation_move_what_the_agent_moves() {
    let with_path = TestRepo::new();
    let deployed = TestRepo::new();
    let music = with_path.mkdir("music");
    util::genlib_create(&music, 40, 21, 256 * 1024);
    let library = util::tree_bytes(&music);
    let bin_dir = util::bin().parent().unwrap().to_path_buf();
    let sshd_path = Sshd::with_agent(&bin_dir, &with_path.path("remote-repo"));
    let sshd_deploy = sshd_without_musicfs(
        &deployed.path("remote-repo"),
        &deployed.path("remote-cache"),
        None,
    );
    let pull = |t: &TestRepo, sshd: &Sshd, extra: &[&str]| {
        let lib = t.path("lib");
        let src = remote(&music);
        let mut args = vec!["--delete", src.as_str()];
        args.extend_from_slice(extra);
        args.push(lib.to_str().unwrap());
        let (summary, stderr) = sync(t, sshd, &args);
        assert!(stderr.trim().is_empty(), "{stderr}");
        assert_trees_equal(&music, &lib);
        num(&summary, "bytes_received")
    };
    pull(&with_path, &sshd_path, &[]);
    pull(&deployed, &sshd_deploy, &["--deploy-agent"]);
    assert!(deployed.path("remote-repo").join("index.redb").exists());

    for change in ["retag", "reorganise"] {
        let before = util::tree_bytes(&music);
        if change == "retag" {
            util::genlib_retag(&music, 0.25, 22);
        } else {
            util::genlib_reorganise(&music, "genre");
        }
        let agent = pull(&with_path, &sshd_path, &[]);
        let by_deploy = pull(&deployed, &sshd_deploy, &["--deploy-agent"]);
        eprintln!(
            "{change}: agent on PATH {agent} B, deployed agent {by_deploy} B, library {before} B"
        );
        assert!(
            by_deploy <= agent + agent / 4 + 4096,
            "{change}: the deployed agent received {by_deploy} B, the agent on the PATH {agent} B"
        );
        assert!(
            by_deploy < library / 20,
            "{change}: {by_deploy} B received for a library of {library} B"
        );
    }
}

/// A tmpfs mounted `noexec`: the deployed binary is there but cannot run.
/// One line on stderr, naming the host, the reason and SFTP.
fn assert_one_fallback_line(stderr: &str, reason: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.contains("127.0.0.1")
            && line.contains("cannot deploy the agent")
            && line.contains(reason)
            && line.ends_with("using SFTP"),
        "{line}"
    );
}

#[test]
fn an_agent_that_cannot_run_there_falls_back_to_sftp_with_one_line() {
    let t = TestRepo::new();
    let music = t.mkdir("music");
    util::genlib_create(&music, 6, 31, 64 * 1024);

    // A cache on a noexec mount: uploaded and checked, then refused by the kernel.
    let cache = t.path("noexec-cache");
    let _mount = util::Tmpfs::mount_with(&cache, "size=200M,mode=0700,noexec");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    let lib = t.path("lib-noexec");
    let args = ["--deploy-agent", &remote(&music), lib.to_str().unwrap()];
    let (first, stderr) = sync(&t, &sshd, &args);
    assert_same_to_the_second(&music, &lib);
    assert_one_fallback_line(&stderr, "cannot run there (exit status 126");
    assert!(!t.path("remote-repo").join("index.redb").exists());
    assert!(num(&first, "bytes_received") >= util::tree_bytes(&music));
    // Kept: the next run does not upload it again only to fail.
    let (again, stderr) = sync(&t, &sshd, &args);
    assert_one_fallback_line(&stderr, "cannot run there");
    assert!(num(&again, "bytes_sent") < 64 * 1024, "{again}");
    drop(sshd);

    // Another architecture, as `uname -sm` says: nothing is uploaded.
    let fake = t.mkdir("fake-uname");
    fs::write(fake.join("uname"), "#!/bin/sh\necho 'Linux riscv64'\n").unwrap();
    fs::set_permissions(fake.join("uname"), fs::Permissions::from_mode(0o755)).unwrap();
    let cache = t.path("cache-riscv");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, Some(&fake));
    let lib = t.path("lib-riscv");
    let (summary, stderr) = sync(
        &t,
        &sshd,
        &["--deploy-agent", &remote(&music), lib.to_str().unwrap()],
    );
    assert_same_to_the_second(&music, &lib);
    assert_one_fallback_line(&stderr, "the host is Linux riscv64");
    // Only the greeting to a `musicfs` that was not there.
    assert!(num(&summary, "bytes_sent") < 1024, "{summary}");
    assert!(
        !cache.exists(),
        "the cache was touched for another architecture"
    );
    drop(sshd);

    // A cache directory others may write to is refused.
    let cache = t.path("cache-open");
    fs::create_dir_all(cache.join("musicfs")).unwrap();
    fs::set_permissions(cache.join("musicfs"), fs::Permissions::from_mode(0o777)).unwrap();
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    let lib = t.path("lib-open");
    let (_, stderr) = sync(
        &t,
        &sshd,
        &["--deploy-agent", &remote(&music), lib.to_str().unwrap()],
    );
    assert_same_to_the_second(&music, &lib);
    assert_one_fallback_line(&stderr, "is writable by other users");
    assert!(!agent_dir(&cache).exists());
}

#[test]
fn deploy_agent_conflicts_with_sftp_and_yields_to_remote_musicfs() {
    let t = TestRepo::new();
    let cache = t.path("remote-cache");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    let music = t.mkdir("music");
    util::genlib_create(&music, 3, 41, 16 * 1024);
    let lib = t.path("lib");
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.args([
        "sync",
        "--deploy-agent",
        "--sftp",
        &remote(&music),
        lib.to_str().unwrap(),
    ]);
    cmd.assert_exit(2);
    // An explicit remote program is run instead, and must exist.
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.args([
        "sync",
        "--deploy-agent",
        "--remote-musicfs",
        "/nonexistent/musicfs",
        &remote(&music),
        lib.to_str().unwrap(),
    ]);
    cmd.output();
    assert!(!cache.exists(), "deployed despite --remote-musicfs");
    // The environment variable turns it on.
    let mut cmd = Musicfs::new(t.repo(), &sshd.home());
    cmd.json()
        .args(["sync", &remote(&music), lib.to_str().unwrap()]);
    let mut command = cmd.command();
    command.env("MUSICFS_DEPLOY_AGENT", "1");
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_trees_equal(&music, &lib);
    assert!(agent_dir(&cache)
        .join(version_name())
        .join("musicfs")
        .exists());
}

/// OpenSSH as the remote shell (`--rsh`), with the client home's config under a name only
/// OpenSSH knows.
#[test]
fn the_agent_is_deployed_through_openssh_too() {
    let t = TestRepo::new();
    let cache = t.path("remote-cache");
    let sshd = sshd_without_musicfs(&t.path("remote-repo"), &cache, None);
    let ssh = sshd.home().join(".ssh");
    let config = fs::read_to_string(ssh.join("config")).unwrap();
    let rsh_config = sshd.dir().join("rsh_config");
    fs::write(
        &rsh_config,
        config.replace("Host nas\n", "Host nas-openssh\n"),
    )
    .unwrap();
    let rsh = format!(
        "ssh -F '{}' -o 'UserKnownHostsFile={}'",
        rsh_config.display(),
        ssh.join("known_hosts").display()
    );
    let music = t.mkdir("music");
    util::genlib_create(&music, 10, 51, 128 * 1024);
    let lib = t.path("lib");
    let src = format!("nas-openssh:{}", music.display());
    let args = [
        "--rsh",
        &rsh,
        "--deploy-agent",
        "--delete",
        &src,
        lib.to_str().unwrap(),
    ];
    let (first, stderr) = sync(&t, &sshd, &args);
    assert_trees_equal(&music, &lib);
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert!(t.path("remote-repo").join("index.redb").exists());
    let binary = fs::read(util::bin()).unwrap();
    let deployed = agent_dir(&cache).join(version_name()).join("musicfs");
    assert_eq!(fs::read(&deployed).unwrap(), binary);
    assert!(num(&first, "bytes_sent") >= binary.len() as u64, "{first}");
    let inode = fs::metadata(&deployed).unwrap().ino();

    util::genlib_retag(&music, 0.5, 52);
    let (again, stderr) = sync(&t, &sshd, &args);
    assert_trees_equal(&music, &lib);
    assert!(stderr.trim().is_empty(), "{stderr}");
    assert_eq!(fs::metadata(&deployed).unwrap().ino(), inode);
    assert!(num(&again, "bytes_sent") < 64 * 1024, "{again}");

    // Through OpenSSH, a binary that cannot run falls back too.
    let noexec = t.path("noexec-cache");
    let _mount = util::Tmpfs::mount_with(&noexec, "size=200M,mode=0700,noexec");
    drop(sshd);
    let sshd = sshd_without_musicfs(&t.path("remote-repo-2"), &noexec, None);
    let rsh_config = sshd.dir().join("rsh_config");
    let config = fs::read_to_string(sshd.home().join(".ssh/config")).unwrap();
    fs::write(
        &rsh_config,
        config.replace("Host nas\n", "Host nas-openssh\n"),
    )
    .unwrap();
    let rsh = format!(
        "ssh -F '{}' -o 'UserKnownHostsFile={}'",
        rsh_config.display(),
        sshd.home().join(".ssh/known_hosts").display()
    );
    let lib = t.path("lib-noexec");
    let (_, stderr) = sync(
        &t,
        &sshd,
        &["--rsh", &rsh, "--deploy-agent", &src, lib.to_str().unwrap()],
    );
    assert_same_to_the_second(&music, &lib);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("cannot deploy the agent") && lines[0].contains("exit status 126"),
        "{stderr}"
    );
}
