//! SMB shares through the binary, against a real Samba smbd on 127.0.0.1
//! (`support::smbd`): a generated library pushed to a share and pulled back, a second sync that
//! moves nothing, a retag, the credentials (environment, a 0600 file, a file others can read,
//! a password in the URL) that never show, names SMB cannot store, smbd killed while a
//! big file is pushed, and a server that requires encryption (refused in one line: the client
//! cannot negotiate it, `docs/smb.md`).

mod support;
mod util;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::smbd::{EncryptionRequired, Smbd, SmbdOptions, PASSWORD};
use util::*;

/// Trees as SMB keeps them: no modes, mtimes to the microsecond (compared to the second).
const AS_SMB_KEEPS: TreeCmp = TreeCmp {
    file_mtimes: true,
    dir_mtimes: false,
    modes: false,
    mtime_seconds_only: true,
};

/// The binary, with `env` added to its environment and no SMB variable inherited.
fn command(t: &TestRepo, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut m = t.cmd();
    m.args(args);
    let mut c = m.command();
    c.env_remove("MUSICFS_SMB_PASSWORD")
        .env_remove("MUSICFS_SMB_CREDENTIALS");
    c.envs(env.iter().copied());
    c
}

fn run(t: &TestRepo, env: &[(&str, &str)], args: &[&str]) -> Output {
    command(t, env, args).output().expect("run musicfs")
}

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

/// `sync --json SRC DST` with the password in the environment; its summary.
fn sync(t: &TestRepo, src: &str, dst: &str) -> serde_json::Value {
    let out = run(
        t,
        &[("MUSICFS_SMB_PASSWORD", PASSWORD)],
        &["--json", "sync", src, dst],
    );
    summary_of(&ok(out))
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Temporary files left anywhere in `root`.
fn temporaries(root: &Path) -> Vec<PathBuf> {
    list_tree(root)
        .into_iter()
        .map(|rel| root.join(rel))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| musicfs::origin::is_temporary(n.as_encoded_bytes()))
        })
        .collect()
}

#[test]
fn a_library_goes_to_a_share_and_comes_back_and_a_retag_moves_only_its_files() {
    let t = TestRepo::new();
    let smbd = Smbd::start();
    let src = t.path("src");
    genlib_create(&src, 24, 7, 300_000);
    let url = smbd.url(Some(&smbd.user()), "library");

    let push = sync(&t, text(&src), &url);
    assert_eq!(
        num(&push, "files_changed"),
        files_in(&src).len() as u64,
        "{push}"
    );
    let on_share = smbd.share_dir().join("library");
    assert_trees_equal_with(&src, &on_share, AS_SMB_KEEPS);
    assert_eq!(temporaries(&smbd.share_dir()), Vec::<PathBuf>::new());

    let back = t.path("back");
    let pull = sync(&t, &url, text(&back));
    assert_eq!(
        num(&pull, "files_changed"),
        files_in(&src).len() as u64,
        "{pull}"
    );
    assert_trees_equal_with(&src, &back, AS_SMB_KEEPS);

    // Nothing changed: nothing moves, either way.
    let again = sync(&t, text(&src), &url);
    assert_eq!(
        (
            num(&again, "files_changed"),
            num(&again, "bytes_transferred")
        ),
        (0, 0),
        "{again}"
    );
    let again = sync(&t, &url, text(&back));
    assert_eq!(
        (
            num(&again, "files_changed"),
            num(&again, "bytes_transferred")
        ),
        (0, 0),
        "{again}"
    );

    // A retag goes up and comes down, as only the retagged files.
    let before: Vec<(PathBuf, Vec<u8>)> = files_in(&src)
        .into_iter()
        .map(|(rel, path)| (rel, fs::read(path).unwrap()))
        .collect();
    genlib_retag(&src, 0.25, 3);
    let retagged = before
        .iter()
        .filter(|(rel, bytes)| fs::read(src.join(rel)).unwrap() != *bytes)
        .count() as u64;
    assert!(retagged > 0, "the retag changed some files");
    let push = sync(&t, text(&src), &url);
    assert_eq!(num(&push, "files_changed"), retagged, "{push}");
    assert_trees_equal_with(&src, &on_share, AS_SMB_KEEPS);
    let pull = sync(&t, &url, text(&back));
    assert_eq!(num(&pull, "files_changed"), retagged, "{pull}");
    assert_trees_equal_with(&src, &back, AS_SMB_KEEPS);
}

#[test]
fn the_guest_account_reads_a_share_without_a_password() {
    let t = TestRepo::new();
    let smbd = Smbd::start();
    let src = t.fixtures("src");
    copy_tree(&src, &smbd.share_dir().join("public"));
    let back = t.path("back");
    let out = run(
        &t,
        &[],
        &["--json", "sync", &smbd.url(None, "public"), text(&back)],
    );
    ok(out);
    assert_trees_equal_with(&src, &back, AS_SMB_KEEPS);
}

/// A credentials file in smbclient's format, mode `mode`.
fn credentials_file(dir: &Path, user: &str, password: &str, mode: u32) -> PathBuf {
    let file = dir.join("nas.credentials");
    fs::write(
        &file,
        format!("username = {user}\npassword = {password}\ndomain = WORKGROUP\n"),
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
    file
}

#[test]
fn credentials_come_from_the_environment_or_a_private_file_and_never_show() {
    let t = TestRepo::new();
    let smbd = Smbd::start();
    let src = t.fixtures("src");
    let user = smbd.user();
    let wrong = "Wr0ng-pässword-4c1d";
    let log = t.path("musicfs.log");
    let loud = |env: &[(&str, &str)], dst: &str| -> Output {
        let mut c = command(
            &t,
            env,
            &[
                "-v",
                "--json",
                "--log-file",
                text(&log),
                "sync",
                text(&src),
                dst,
            ],
        );
        c.env("MUSICFS_LOG", "trace");
        c.output().expect("run musicfs")
    };
    let mut outputs = Vec::new();

    // From the environment: a wrong password is refused, the right one signs in.
    let url = smbd.url(Some(&user), "env");
    let failed = loud(&[("MUSICFS_SMB_PASSWORD", wrong)], &url);
    assert!(!failed.status.success(), "a wrong password is refused");
    outputs.push(failed);
    let worked = loud(&[("MUSICFS_SMB_PASSWORD", PASSWORD)], &url);
    outputs.push(ok(worked));
    assert_trees_equal_with(&src, &smbd.share_dir().join("env"), AS_SMB_KEEPS);

    // From a 0600 file named by MUSICFS_SMB_CREDENTIALS, the user from the file.
    let file = credentials_file(t.root(), &user, PASSWORD, 0o600);
    let url = smbd.url(None, "file");
    let worked = loud(&[("MUSICFS_SMB_CREDENTIALS", text(&file))], &url);
    outputs.push(ok(worked));
    assert_trees_equal_with(&src, &smbd.share_dir().join("file"), AS_SMB_KEEPS);
    // The account the file names is the one used: with its password wrong, no guest session
    // stands in.
    let bad = credentials_file(t.root(), &user, wrong, 0o600);
    let failed = loud(
        &[("MUSICFS_SMB_CREDENTIALS", text(&bad))],
        &smbd.url(None, "bad"),
    );
    assert!(!failed.status.success(), "a wrong password in the file");
    outputs.push(failed);
    assert!(!smbd.share_dir().join("bad").exists());

    // From a named origin's `credentials` in the configuration file.
    let config = t.root().join(".config/musicfs");
    fs::create_dir_all(&config).unwrap();
    let named = credentials_file(&config, &user, PASSWORD, 0o600);
    fs::write(
        config.join("config.toml"),
        format!(
            "[origin.nas]\nurl = \"{}\"\ncredentials = \"{}\"\n",
            smbd.url(None, "named"),
            named.display()
        ),
    )
    .unwrap();
    let worked = loud(&[], "nas");
    outputs.push(ok(worked));
    assert_trees_equal_with(&src, &smbd.share_dir().join("named"), AS_SMB_KEEPS);

    let log_text = fs::read_to_string(&log).unwrap();
    assert!(log_text.len() > 100, "the log was written: {log_text}");
    for out in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            let shown = String::from_utf8_lossy(stream);
            assert!(
                !shown.contains(PASSWORD) && !shown.contains(wrong),
                "{shown}"
            );
        }
    }
    assert!(!log_text.contains(PASSWORD) && !log_text.contains(wrong));
}

#[test]
fn a_credentials_file_others_can_read_and_a_password_in_the_url_are_refused() {
    let t = TestRepo::new();
    let secret = "n0t-to-be-seen";
    let file = credentials_file(t.root(), "alice", secret, 0o644);
    let lib = t.mkdir("lib");
    let out = command(
        &t,
        &[("MUSICFS_SMB_CREDENTIALS", text(&file))],
        &["sync", text(&lib), "smb://127.0.0.1:1/music"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("mode 0644"),
        "{stderr}"
    );
    assert!(!stderr.contains(secret), "{stderr}");

    let out = run(
        &t,
        &[],
        &[
            "sync",
            text(&lib),
            &format!("smb://alice:{secret}@127.0.0.1/music"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MUSICFS_SMB_PASSWORD"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}

#[test]
fn a_name_smb_cannot_store_is_reported_and_skipped() {
    let t = TestRepo::new();
    let smbd = Smbd::start();
    let src = t.fixtures("src");
    let album = src.join("Odd Names");
    fs::create_dir_all(&album).unwrap();
    for name in ["what?.flac", "a:b.mp3", "trailing.", "kept.flac"] {
        fs::write(album.join(name), name.as_bytes()).unwrap();
    }
    let url = smbd.url(Some(&smbd.user()), "lib");
    let out = run(
        &t,
        &[("MUSICFS_SMB_PASSWORD", PASSWORD)],
        &["--json", "sync", text(&src), &url],
    );
    assert_eq!(out.status.code(), Some(3), "a partial sync: {out:?}");
    let lines = parse_json_lines(&out.stdout);
    let problems: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "problem")
        .map(|l| l["path"].as_str().unwrap_or_default().to_string())
        .collect();
    for name in ["what?.flac", "a:b.mp3", "trailing."] {
        assert!(
            problems.iter().any(|p| p.ends_with(name)),
            "{name} reported: {problems:?}"
        );
    }
    // Everything else arrived, and nothing under another name.
    let on_share = smbd.share_dir().join("lib");
    let mut stored: Vec<String> = fs::read_dir(on_share.join("Odd Names"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    assert_eq!(stored, ["kept.flac"]);
    for name in ["what?.flac", "a:b.mp3", "trailing."] {
        fs::remove_file(album.join(name)).unwrap();
    }
    assert_trees_equal_with(&src, &on_share, AS_SMB_KEEPS);
}

#[test]
fn smbd_killed_during_a_push_then_restarted_and_the_rerun_ends_exact() {
    let t = TestRepo::new();
    let mut smbd = Smbd::start();
    let src = t.mkdir("src");
    // Incompressible bytes, large enough that the push is still running when smbd dies.
    let mut big = vec![0u8; 96 * 1024 * 1024];
    let mut rng = XorShift::new(11);
    for chunk in big.chunks_mut(8) {
        let n = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&n[..chunk.len()]);
    }
    fs::write(src.join("big.flac"), &big).unwrap();
    fs::write(src.join("small.flac"), b"small").unwrap();
    let url = smbd.url(Some(&smbd.user()), "lib");
    let on_share = smbd.share_dir().join("lib");

    let mut push = command(
        &t,
        &[("MUSICFS_SMB_PASSWORD", PASSWORD)],
        &[
            "--json",
            "sync",
            "--bwlimit",
            "8M",
            "--retry-for",
            "1s",
            text(&src),
            &url,
        ],
    )
    .stdout(std::process::Stdio::null())
    .spawn()
    .expect("start the push");
    // Killed once the big file is being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Entries come and go while the push runs: whatever cannot be read is passed over.
        let writing = fs::read_dir(&on_share)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                musicfs::origin::is_temporary(e.file_name().as_encoded_bytes())
                    && e.metadata().is_ok_and(|m| m.len() > 1024 * 1024)
            });
        if writing {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the push never wrote the big file"
        );
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push ended too soon"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    smbd.kill();
    let status = wait_timeout(&mut push, Duration::from_secs(120)).expect("the push ends");
    assert!(!status.success(), "a push whose server died fails");
    assert_ne!(
        fs::read(on_share.join("big.flac")).ok().as_deref(),
        Some(&big[..]),
        "the big file was not finished"
    );

    smbd.restart();
    let rerun = sync(&t, text(&src), &url);
    assert_eq!(num(&rerun, "problems"), 0, "{rerun}");
    assert_trees_equal_with(&src, &on_share, AS_SMB_KEEPS);
    assert_eq!(temporaries(&smbd.share_dir()), Vec::<PathBuf>::new());
}

/// The one line a sync prints when the server requires encryption; `out` is that sync.
fn assert_refused_for_encryption(out: &Output, url: &str, what: &str) {
    assert_eq!(out.status.code(), Some(5), "{what}: exit 5: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.trim();
    assert_eq!(line.lines().count(), 1, "{what}: one line: {stderr}");
    assert!(
        line.starts_with(&format!("musicfs: {url}: ")),
        "{what}: {line}"
    );
    assert!(
        line.contains("requires encryption, which this client cannot negotiate")
            && line.contains("SMB 3.1.1 was agreed without a cipher")
            && line.contains("docs/smb.md"),
        "{what}: {line}"
    );
    assert!(!line.contains(PASSWORD), "{what}: {line}");
}

#[test]
fn a_server_or_share_that_requires_encryption_is_refused_in_one_line_naming_it() {
    for (encryption, denied) in [
        (
            EncryptionRequired::Server,
            "reject session with dialect[0x0311] as encryption is required",
        ),
        (
            EncryptionRequired::Share,
            "reject tcon with dialect[0x0311] as encryption is required for service music",
        ),
    ] {
        let t = TestRepo::new();
        let smbd = Smbd::start_requiring_encryption(SmbdOptions::default(), encryption);
        let src = t.fixtures("src");
        copy_tree(&src, &smbd.share_dir().join("lib"));
        let shown = format!("smb://127.0.0.1:{}/music/lib", smbd.port());
        let account = smbd.url(Some(&smbd.user()), "lib");
        let password = [("MUSICFS_SMB_PASSWORD", PASSWORD)];

        // A pull, as the account and as the guest, and a push: each refused at once, without
        // retries, and nothing written on either side.
        let back = t.path("back");
        let pull = run(&t, &password, &["sync", &account, text(&back)]);
        assert_refused_for_encryption(&pull, &shown, &format!("{encryption:?} pull"));
        let guest = run(&t, &[], &["sync", &smbd.url(None, "lib"), text(&back)]);
        assert_eq!(
            guest.status.code(),
            Some(5),
            "{encryption:?} guest: {guest:?}"
        );
        assert!(!back.exists() || list_tree(&back).is_empty());
        let pushed = smbd.url(Some(&smbd.user()), "pushed");
        let push = run(&t, &password, &["sync", text(&src), &pushed]);
        assert_refused_for_encryption(
            &push,
            &format!("smb://127.0.0.1:{}/music/pushed", smbd.port()),
            &format!("{encryption:?} push"),
        );
        assert!(!smbd.share_dir().join("pushed").exists());

        // The reason is the server's own: its log says why it refused.
        let log = smbd.log();
        assert!(log.contains(denied), "{encryption:?}: smbd's log: {log}");
    }
}
