//! The SSH transport against a real OpenSSH server on 127.0.0.1 (see `support/sshd.rs`).

mod support;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use musicfs::origin::ssh::{
    ExecReader, ExecStatus, ExecWriter, Sftp, SftpFile, SshOptions, SshSession,
};
use musicfs::origin::{EntryKind, SshSpec};
use musicfs::Error;
use support::sshd::{client_options as options, client_spec as spec, keygen, Sshd, SshdOptions};

fn connect(sshd: &Sshd) -> SshSession {
    SshSession::connect(&spec("nas"), &options(&sshd.home())).expect("connect to nas")
}

fn bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

/// Runs `command` and returns its stdout, exit status and stderr tail.
fn run(session: &SshSession, command: &str) -> (Vec<u8>, Option<u32>, String) {
    let (mut reader, writer, status) = session.exec(command).expect("exec").split();
    drop(writer);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read stdout");
    let code = status.exit_status(Duration::from_secs(10));
    (out, code, status.stderr_tail())
}

#[test]
fn public_types_are_thread_safe() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SshSession>();
    send_sync::<Sftp>();
    send_sync::<ExecStatus>();
    send::<ExecReader>();
    send::<ExecWriter>();
    send::<SftpFile>();
}

#[test]
fn alias_resolves_and_exec_echo() {
    let sshd = Sshd::start(SshdOptions::default());
    let session = connect(&sshd);
    assert_eq!(session.label(), format!("root@127.0.0.1:{}", sshd.port()));
    let (out, code, _) = run(&session, "echo hi");
    assert_eq!(out, b"hi\n");
    assert_eq!(code, Some(0));
    let (_, code, _) = run(&session, "exit 3");
    assert_eq!(code, Some(3));
}

#[test]
fn set_env_reaches_sessions() {
    let sshd = Sshd::start(SshdOptions {
        set_env: vec![("MUSICFS_REPO".into(), "/srv/music repo".into())],
        ..SshdOptions::default()
    });
    let (out, _, _) = run(&connect(&sshd), "printf %s \"$MUSICFS_REPO\"");
    assert_eq!(out, b"/srv/music repo");
}

#[test]
fn cat_round_trip_of_10_mib() {
    let sshd = Sshd::start(SshdOptions::default());
    let session = connect(&sshd);
    let (mut reader, mut writer, status) = session.exec("cat").expect("exec cat").split();
    let data: Vec<u8> = (0..10 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = data.clone();
    let writing = std::thread::spawn(move || {
        for piece in sent.chunks(100_000) {
            writer.write_all(piece).expect("write stdin");
        }
        writer.flush().expect("flush");
        // Dropping the writer sends end-of-file, which ends cat.
    });
    let mut echoed = Vec::new();
    reader.read_to_end(&mut echoed).expect("read stdout");
    writing.join().expect("writer thread");
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "cat echoed different bytes");
    assert_eq!(status.exit_status(Duration::from_secs(10)), Some(0));
}

#[test]
fn missing_command_gives_127_and_stderr() {
    let sshd = Sshd::start(SshdOptions::default());
    let (out, code, stderr) = run(&connect(&sshd), "musicfs-no-such-command --serve");
    assert!(out.is_empty());
    assert_eq!(code, Some(127));
    assert!(
        stderr.contains("musicfs-no-such-command"),
        "stderr: {stderr:?}"
    );
    assert!(stderr.contains("not found"), "stderr: {stderr:?}");
}

#[test]
fn stderr_tail_keeps_the_last_4_kib() {
    let sshd = Sshd::start(SshdOptions::default());
    let (_, code, stderr) = run(
        &connect(&sshd),
        "i=0; while [ $i -lt 1000 ]; do echo line$i >&2; i=$((i+1)); done; echo END >&2",
    );
    assert_eq!(code, Some(0));
    assert!(stderr.len() <= 4096, "{} bytes", stderr.len());
    assert!(stderr.ends_with("line999\nEND\n"), "{stderr:?}");
    assert!(!stderr.contains("line1\n"));
}

#[test]
fn silent_remote_times_out_instead_of_hanging() {
    let sshd = Sshd::start(SshdOptions::default());
    let options = SshOptions {
        io_timeout: Duration::from_secs(1),
        ..options(&sshd.home())
    };
    let session = SshSession::connect(&spec("nas"), &options).expect("connect");
    let (mut reader, _writer, _status) = session.exec("sleep 30").expect("exec").split();
    // Without the timeout the read would block until `sleep 30` ends, then read EOF.
    let error = reader.read(&mut [0; 16]).expect_err("read must time out");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn killed_server_breaks_reads_and_restart_serves_again() {
    let mut sshd = Sshd::start(SshdOptions::default());
    let session = connect(&sshd);
    let (mut reader, _writer, status) = session.exec("sleep 60").expect("exec").split();
    assert!(sshd.pid() > 0);
    sshd.kill();
    let error = reader.read(&mut [0; 16]).expect_err("read after kill");
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::UnexpectedEof
        ),
        "{error:?}"
    );
    assert_eq!(status.exit_status(Duration::from_secs(5)), None);
    let sftp_error = session.sftp().expect_err("the connection is gone");
    assert!(sftp_error.is_transient(), "{sftp_error}");

    sshd.restart();
    let (out, code, _) = run(&connect(&sshd), "echo back");
    assert_eq!((out.as_slice(), code), (&b"back\n"[..], Some(0)));
}

#[test]
fn unknown_host_is_refused_then_learned() {
    let sshd = Sshd::start(SshdOptions {
        known_host: false,
        ..SshdOptions::default()
    });
    let known_hosts = sshd.home().join(".ssh/known_hosts");
    let error = SshSession::connect(&spec("nas"), &options(&sshd.home())).expect_err("unknown");
    match &error {
        Error::HostKey { host, message } => {
            assert_eq!(host, &format!("[127.0.0.1]:{}", sshd.port()));
            assert!(message.contains("--accept-new-host-key"), "{message}");
        }
        other => panic!("expected Error::HostKey, got {other:?}"),
    }
    assert_eq!(fs::read_to_string(&known_hosts).expect("read"), "");

    let accept = SshOptions {
        accept_new_host_key: true,
        ..options(&sshd.home())
    };
    SshSession::connect(&spec("nas"), &accept).expect("accept-new connects");
    let learned = fs::read_to_string(&known_hosts).expect("read");
    let expected = sshd.known_hosts_line();
    let key = expected.split(' ').nth(2).expect("key field");
    let entry = format!("[127.0.0.1]:{} ssh-ed25519 {key}", sshd.port());
    assert!(learned.lines().any(|line| line == entry), "{learned}");
    // Known now, so no acceptance is needed.
    SshSession::connect(&spec("nas"), &options(&sshd.home())).expect("known host");
}

#[test]
fn changed_host_key_is_refused_even_with_accept_new() {
    let sshd = Sshd::start(SshdOptions::default());
    let other = sshd.dir().join("other_host");
    keygen(&other, "impostor");
    let other_key = fs::read_to_string(other.with_extension("pub")).expect("pub");
    let other_key = other_key.split(' ').take(2).collect::<Vec<_>>().join(" ");
    fs::write(
        sshd.home().join(".ssh/known_hosts"),
        format!(
            "# managed by hand\n[127.0.0.1]:{} {other_key}\n",
            sshd.port()
        ),
    )
    .expect("write");
    for accept in [false, true] {
        let options = SshOptions {
            accept_new_host_key: accept,
            ..options(&sshd.home())
        };
        match SshSession::connect(&spec("nas"), &options) {
            Err(Error::HostKey { message, .. }) => {
                assert!(message.contains("CHANGED"), "{message}");
                assert!(message.contains("known_hosts:2"), "{message}");
            }
            other => panic!("expected Error::HostKey, got {other:?}"),
        }
    }
}

#[test]
fn hashed_known_hosts_entries_are_recognised() {
    let sshd = Sshd::start(SshdOptions::default());
    let known_hosts = sshd.home().join(".ssh/known_hosts");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&known_hosts)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-keygen -H");
    assert!(status.success());
    assert!(fs::read_to_string(&known_hosts)
        .expect("read")
        .starts_with("|1|"));
    connect(&sshd);
}

/// An ssh-agent on a private socket, killed on drop.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn agent_keys_authenticate_without_key_files() {
    let sshd = Sshd::start(SshdOptions::default());
    let socket = sshd.dir().join("agent.sock");
    let _agent = Agent {
        child: Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "ssh-agent socket did not appear");
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(sshd.client_key())
        .env("SSH_AUTH_SOCK", &socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-add");
    assert!(added.success());

    // A home with the alias and the host key, but no key file at all.
    let home = sshd.dir().join("agent-home");
    fs::create_dir_all(home.join(".ssh")).expect("mkdir");
    fs::copy(
        sshd.home().join(".ssh/known_hosts"),
        home.join(".ssh/known_hosts"),
    )
    .expect("known_hosts");
    fs::write(
        home.join(".ssh/config"),
        format!(
            "Host nas\n  HostName 127.0.0.1\n  Port {}\n  User root\n",
            sshd.port()
        ),
    )
    .expect("config");

    let error = SshSession::connect(&spec("nas"), &options(&home)).expect_err("no keys");
    assert!(error.to_string().contains("authentication"), "{error}");

    let with_agent = SshOptions {
        agent_socket: Some(socket.clone()),
        ..options(&home)
    };
    let session = SshSession::connect(&spec("nas"), &with_agent).expect("agent auth");
    assert_eq!(run(&session, "echo agent").0, b"agent\n");
}

#[test]
fn encrypted_key_without_agent_is_a_clear_error() {
    let sshd = Sshd::start(SshdOptions::default());
    let key = sshd.client_key();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "not-logged-secret", "-P", "", "-f"])
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ssh-keygen -p");
    assert!(status.success());
    let error = SshSession::connect(&spec("nas"), &options(&sshd.home())).expect_err("encrypted");
    let message = error.to_string();
    assert!(message.contains("is encrypted"), "{message}");
    assert!(message.contains("ssh-add"), "{message}");
    assert!(!message.contains("not-logged-secret"));
}

#[test]
fn closed_port_is_unreachable_quickly() {
    let port = support::sshd::free_port();
    let spec = SshSpec {
        user: Some("root".into()),
        host: "127.0.0.1".into(),
        port: Some(port),
        path: Vec::new(),
    };
    let home = tempfile::tempdir().expect("tempdir");
    let options = SshOptions {
        connect_timeout: Duration::from_secs(2),
        ..options(home.path())
    };
    let error = SshSession::connect(&spec, &options).expect_err("closed port");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    assert!(error.is_transient());
    // Refused at once, not waited out: the message says which.
    let message = error.to_string();
    assert!(message.contains("refused"), "{message}");
    assert!(!message.contains("timed out"), "{message}");
}

#[test]
fn silent_server_hits_the_connect_timeout() {
    // Accepts TCP connections (the kernel's backlog does) but never speaks SSH.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let spec = SshSpec {
        user: Some("root".into()),
        host: "127.0.0.1".into(),
        port: Some(listener.local_addr().expect("addr").port()),
        path: Vec::new(),
    };
    let home = tempfile::tempdir().expect("tempdir");
    let options = SshOptions {
        connect_timeout: Duration::from_millis(800),
        ..options(home.path())
    };
    let error = SshSession::connect(&spec, &options).expect_err("silent server");
    assert!(matches!(error, Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("no SSH connection within 0.8 s"),
        "the connect timeout ended it: {message}"
    );
}

#[test]
fn debug_output_holds_no_key_material() {
    let sshd = Sshd::start(SshdOptions::default());
    let session = connect(&sshd);
    let sftp = session.sftp().expect("sftp");
    let printed = format!(
        "{session:?} {sftp:?} {:?}",
        session.exec("true").expect("exec")
    );
    assert!(printed.contains("SshSession"), "{printed}");
    let private = fs::read_to_string(sshd.client_key()).expect("key");
    for line in private.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!printed.contains(line), "Debug shows the private key");
    }
    let public = fs::read_to_string(sshd.client_key().with_extension("pub")).expect("pub");
    let public_base64 = public.split(' ').nth(1).expect("base64");
    assert!(!printed.contains(public_base64));
    assert!(!printed.contains("PRIVATE KEY"));
}

#[test]
fn sftp_round_trips() {
    let sshd = Sshd::start(SshdOptions::default());
    let sftp = connect(&sshd).sftp().expect("sftp");
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path();
    let at = |name: &str| bytes(&dir.join(name));

    // mkdir (twice: an existing directory is fine), lstat.
    sftp.mkdir(&at("album"), 0o750).expect("mkdir");
    sftp.mkdir(&at("album"), 0o750).expect("mkdir again");
    let stat = sftp.lstat(&at("album")).expect("lstat").expect("exists");
    assert_eq!((stat.kind, stat.mode), (EntryKind::Dir, 0o750));
    assert_eq!(sftp.lstat(&at("missing")).expect("lstat"), None);
    fs::write(dir.join("plain"), b"x").expect("write");
    let error = sftp
        .mkdir(&at("plain"), 0o755)
        .expect_err("a file is in the way");
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);

    // create_new, write, fsync, rename_over an existing file.
    let data: Vec<u8> = (0..3 * 1024 * 1024 + 17u32)
        .map(|i| (i % 251) as u8)
        .collect();
    let temp = at("album/.musicfs-0123456789abcdef.tmp");
    let mut file = sftp.create_new(&temp, 0o640).expect("create_new");
    for piece in data.chunks(100_000) {
        file.write_all(piece).expect("write");
    }
    file.fsync().expect("fsync");
    let stat = file.fstat().expect("fstat");
    assert_eq!((stat.kind, stat.size), (EntryKind::File, data.len() as u64));
    drop(file);
    let error = sftp.create_new(&temp, 0o640).expect_err("exists");
    assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists);
    fs::write(dir.join("album/track.flac"), b"old").expect("write");
    sftp.rename_over(&temp, &at("album/track.flac"))
        .expect("rename_over");
    assert_eq!(fs::read(dir.join("album/track.flac")).expect("read"), data);
    assert_eq!(
        fs::metadata(dir.join("album/track.flac"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    sftp.fsync_dir(&at("album")).expect("fsync_dir");

    // set_meta.
    let mtime_ns = 1_234_567_890 * 1_000_000_000;
    sftp.set_meta(&at("album/track.flac"), 0o604, mtime_ns)
        .expect("set_meta");
    let local = fs::metadata(dir.join("album/track.flac")).expect("stat");
    assert_eq!(
        (local.mode() & 0o7777, local.mtime()),
        (0o604, 1_234_567_890)
    );
    let stat = sftp
        .lstat(&at("album/track.flac"))
        .expect("lstat")
        .expect("exists");
    assert_eq!((stat.mode, stat.mtime_ns), (0o604, mtime_ns));

    // open_read: sequential, seek, read_at.
    let mut file = sftp.open_read(&at("album/track.flac")).expect("open_read");
    let mut read = Vec::new();
    file.read_to_end(&mut read).expect("read_to_end");
    assert!(read == data, "read back different bytes");
    file.seek(SeekFrom::Start(1_000_000)).expect("seek");
    let mut piece = [0u8; 1000];
    file.read_exact(&mut piece).expect("read after seek");
    assert_eq!(&piece[..], &data[1_000_000..1_001_000]);
    assert_eq!(
        file.seek(SeekFrom::End(-10)).expect("seek end"),
        data.len() as u64 - 10
    );
    let mut big = vec![0u8; 1_500_000];
    file.read_at(&mut big, 700_001).expect("read_at");
    assert_eq!(big, &data[700_001..2_200_001]);
    let mut past = vec![0u8; 100];
    let error = file
        .read_at(&mut past, data.len() as u64 - 50)
        .expect_err("past the end");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);

    // symlink, read_link, read_dir.
    sftp.symlink(&at("album/link"), b"track.flac")
        .expect("symlink");
    assert_eq!(
        fs::read_link(dir.join("album/link")).expect("readlink"),
        Path::new("track.flac")
    );
    assert_eq!(
        sftp.read_link(&at("album/link")).expect("read_link"),
        b"track.flac"
    );
    let mut entries = sftp.read_dir(&at("album")).expect("read_dir");
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let summary: Vec<(&[u8], EntryKind)> = entries
        .iter()
        .map(|(name, stat)| (name.as_slice(), stat.kind))
        .collect();
    assert_eq!(
        summary,
        vec![
            (&b"link"[..], EntryKind::Symlink),
            (&b"track.flac"[..], EntryKind::File)
        ]
    );
    assert_eq!(entries[1].1.size, data.len() as u64);

    // canonicalize.
    let canonical = sftp
        .canonicalize(&at("album/../album/track.flac"))
        .expect("canonicalize");
    assert_eq!(
        canonical,
        bytes(&dir.canonicalize().expect("local").join("album/track.flac"))
    );

    // remove_file, remove_dir.
    sftp.remove_file(&at("album/link")).expect("remove link");
    sftp.remove_file(&at("album/track.flac"))
        .expect("remove file");
    sftp.remove_dir(&at("album")).expect("remove dir");
    assert!(!dir.join("album").exists());
    let error = sftp.remove_file(&at("album/gone")).expect_err("gone");
    assert_eq!(error.kind(), std::io::ErrorKind::NotFound);

    // Paths that SFTP cannot carry.
    let error = sftp.lstat(b"/tmp/\xff").expect_err("not UTF-8");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn sftp_serves_several_threads_at_once() {
    let sshd = Sshd::start(SshdOptions::default());
    let session = connect(&sshd);
    let sftp = session.sftp().expect("sftp");
    drop(session); // The SFTP channel keeps the connection open.
    let root = tempfile::tempdir().expect("tempdir");
    let files: Vec<(Vec<u8>, Vec<u8>)> = (0..8u8)
        .map(|n| {
            let content: Vec<u8> = (0..700_000u32)
                .map(|i| (i as u8).wrapping_mul(n + 1))
                .collect();
            let path = root.path().join(format!("f{n}"));
            fs::write(&path, &content).expect("write");
            (bytes(&path), content)
        })
        .collect();
    std::thread::scope(|scope| {
        for (path, content) in &files {
            let sftp = &sftp;
            scope.spawn(move || {
                for _ in 0..3 {
                    let stat = sftp.lstat(path).expect("lstat").expect("exists");
                    assert_eq!(stat.size, content.len() as u64);
                    let mut read = Vec::new();
                    sftp.open_read(path)
                        .expect("open")
                        .read_to_end(&mut read)
                        .expect("read");
                    assert!(&read == content);
                }
            });
        }
    });
}

/// A server that takes only `server_cipher`, and a client whose `~/.ssh/config` says
/// `Ciphers client_ciphers` (nothing: no `Ciphers` line), connecting for a bulk transfer
/// (`bulk`) or not: whether they connect.
fn connects_with(server_cipher: &str, client_ciphers: Option<&str>, bulk: bool) -> bool {
    let sshd = Sshd::start(SshdOptions {
        extra_config: vec![format!("Ciphers {server_cipher}")],
        ..SshdOptions::default()
    });
    if let Some(ciphers) = client_ciphers {
        let config = sshd.home().join(".ssh/config");
        let mut text = fs::read_to_string(&config).expect("client config");
        text.push_str(&format!("    Ciphers {ciphers}\n"));
        fs::write(&config, text).expect("client config");
    }
    let options = SshOptions {
        bulk,
        ..options(&sshd.home())
    };
    match SshSession::connect(&spec("nas"), &options) {
        Ok(session) => {
            let (out, code, _) = run(&session, "echo hello");
            assert_eq!((out.as_slice(), code), (&b"hello\n"[..], Some(0)));
            true
        }
        Err(Error::Unreachable { .. }) => false,
        Err(other) => panic!("not a failed handshake: {other}"),
    }
}

#[test]
fn the_cipher_is_chosen_among_those_the_configuration_allows() {
    const GCM128: &str = "aes128-gcm@openssh.com";
    const GCM256: &str = "aes256-gcm@openssh.com";
    const CHACHA: &str = "chacha20-poly1305@openssh.com";
    // Without a `Ciphers` line: russh's list (ChaCha20, AES-256-GCM, the CTR modes), and
    // for a bulk transfer on a CPU with AES instructions, AES-128-GCM first.
    assert!(connects_with(CHACHA, None, false));
    assert!(connects_with(GCM256, None, false));
    assert!(connects_with("aes256-ctr", None, false));
    assert!(!connects_with(GCM128, None, false));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        assert!(connects_with(GCM128, None, true));
    }
    assert!(connects_with(CHACHA, None, true));
    // A list replaces the offer: what it leaves out is never used.
    assert!(connects_with(CHACHA, Some(CHACHA), true));
    assert!(!connects_with(GCM128, Some(CHACHA), true));
    assert!(!connects_with(GCM256, Some(CHACHA), false));
    // `-` removes, `^` puts first and keeps the rest, `+` appends.
    assert!(!connects_with(
        CHACHA,
        Some("-chacha20-poly1305@openssh.com"),
        false
    ));
    assert!(connects_with(
        GCM128,
        Some("^aes128-gcm@openssh.com"),
        false
    ));
    assert!(connects_with(
        GCM256,
        Some("^chacha20-poly1305@openssh.com"),
        true
    ));
    assert!(connects_with("aes128-cbc", Some("+aes128-cbc"), false));
    assert!(!connects_with("aes128-cbc", None, true));
}
