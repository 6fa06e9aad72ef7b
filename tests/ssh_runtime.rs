//! SSH sessions on the process's shared runtime, against a real OpenSSH sshd on 127.0.0.1:
//! nothing a session started (tasks, threads, sockets) outlives it, and many threads opening,
//! using and dropping sessions at once neither hang nor leak.
//!
//! The tests of this file count the process's threads and sockets, so they run one at a time
//! (`SERIAL`) and no other test shares their process.

mod support;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use musicfs::origin::ssh::{SshOptions, SshSession};
use musicfs::origin::SshSpec;
use support::sshd::{Sshd, SshdOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn spec() -> SshSpec {
    SshSpec {
        user: None,
        host: "nas".to_owned(),
        port: None,
        path: Vec::new(),
    }
}

fn options(home: &Path) -> SshOptions {
    SshOptions {
        home: home.to_owned(),
        agent_socket: None,
        connect_timeout: Duration::from_secs(20),
        io_timeout: Duration::from_secs(30),
        ..SshOptions::default()
    }
}

/// The threads of this process.
fn threads() -> usize {
    fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// The open sockets of this process.
fn sockets() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Waits up to 10 s for the thread and socket counts to come back to `baseline`.
fn assert_back_to(baseline: (usize, usize), what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = (threads(), sockets());
        if now.0 <= baseline.0 && now.1 <= baseline.1 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: threads and sockets {now:?}, before {baseline:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// `cat` of `file` over an exec channel.
fn exec_cat(session: &SshSession, file: &Path) -> Vec<u8> {
    let (mut reader, writer, status) = session
        .exec(&format!("cat '{}'", file.display()))
        .expect("exec")
        .split();
    drop(writer);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read stdout");
    assert_eq!(status.exit_status(Duration::from_secs(10)), Some(0));
    out
}

/// `file` read over SFTP.
fn sftp_read(session: &SshSession, file: &Path) -> Vec<u8> {
    let sftp = session.sftp().expect("sftp");
    let mut handle = sftp
        .open_read(file.as_os_str().as_encoded_bytes())
        .expect("sftp open");
    let mut out = Vec::new();
    handle.read_to_end(&mut out).expect("sftp read");
    out
}

fn payload(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let file = dir.join("payload.bin");
    fs::write(&file, &data).expect("write payload");
    (file, data)
}

#[test]
fn dropped_sessions_leave_no_thread_or_socket_behind() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sshd = Sshd::start(SshdOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, data) = payload(dir.path());
    let options = options(&sshd.home());

    // The first session builds the shared runtime, whose workers stay.
    let warm = SshSession::connect(&spec(), &options).expect("connect");
    assert_eq!(exec_cat(&warm, &file), data);
    assert_eq!(sftp_read(&warm, &file), data);
    drop(warm);
    thread::sleep(Duration::from_millis(200));
    let baseline = (threads(), sockets());

    for round in 0..12 {
        let session = SshSession::connect(&spec(), &options).expect("connect");
        match round % 4 {
            0 => {
                assert_eq!(exec_cat(&session, &file), data);
                drop(session);
            }
            1 => {
                assert_eq!(sftp_read(&session, &file), data);
                drop(session);
            }
            2 => {
                // Dropped mid-stream: a command still running, its output unread, the SFTP
                // channel open; the session goes first, its channels after it.
                let channel = session.exec("sleep 30").expect("exec");
                let sftp = session.sftp().expect("sftp");
                drop(session);
                drop(sftp);
                drop(channel);
            }
            _ => {
                // A reader waiting on a silent command when everything else is dropped.
                let (mut reader, writer, _status) = session.exec("cat").expect("exec cat").split();
                let waiting = thread::spawn(move || {
                    let mut buf = [0u8; 16];
                    let result = reader.read(&mut buf);
                    drop(reader);
                    result.map(|_| ())
                });
                thread::sleep(Duration::from_millis(100));
                drop(writer);
                drop(session);
                // The last write half gone, russh closes the connection: the reader ends,
                // with the data or with "connection lost", but does not wait for more.
                let started = Instant::now();
                let _ = waiting.join().expect("reader thread");
                assert!(started.elapsed() < Duration::from_secs(10));
            }
        }
        assert_back_to(baseline, &format!("after round {round}"));
    }

    // A connection given up during the handshake: the server sends its version and then
    // nothing, so russh's connection task is already running when the timeout fires. It ends
    // with the session, though the server keeps its end open.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_spec = SshSpec {
        user: Some("root".into()),
        host: "127.0.0.1".into(),
        port: Some(silent.local_addr().expect("addr").port()),
        path: Vec::new(),
    };
    let before = (threads(), sockets());
    let server = thread::spawn(move || {
        let (mut stream, _) = silent.accept().expect("accept");
        std::io::Write::write_all(&mut stream, b"SSH-2.0-silent\r\n").expect("send version");
        // Holds the connection open until the client has gone (or 15 s passed).
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("read timeout");
        let mut sink = Vec::new();
        stream.read_to_end(&mut sink).map(|_| ())
    });
    let impatient = SshOptions {
        connect_timeout: Duration::from_millis(500),
        ..options.clone()
    };
    SshSession::connect(&silent_spec, &impatient).expect_err("silent server");
    // The server's end is the listener's thread's; ours must close for it to return.
    server
        .join()
        .expect("silent server thread")
        .expect("the client closed its end of the abandoned connection");
    assert_back_to(before, "after a connect timeout");
}

#[test]
fn many_threads_open_use_and_drop_sessions_under_a_deadline() {
    const THREADS: usize = 6;
    const ROUNDS: usize = 10;
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let sshd = Sshd::start(SshdOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, data) = payload(dir.path());
    let options = options(&sshd.home());
    let warm = SshSession::connect(&spec(), &options).expect("connect");
    drop(warm);
    thread::sleep(Duration::from_millis(200));
    let baseline = (threads(), sockets());

    let (done_tx, done_rx) = mpsc::channel();
    for worker in 0..THREADS {
        let done_tx = done_tx.clone();
        let (file, data, options) = (file.clone(), data.clone(), options.clone());
        thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                for round in 0..ROUNDS {
                    let session = SshSession::connect(&spec(), &options).expect("connect");
                    let got = if (worker + round) % 2 == 0 {
                        exec_cat(&session, &file)
                    } else {
                        sftp_read(&session, &file)
                    };
                    assert_eq!(got.len(), data.len(), "worker {worker} round {round}");
                    assert!(got == data, "worker {worker} round {round}: other bytes");
                }
            });
            let _ = done_tx.send((worker, outcome.is_ok()));
        });
    }
    drop(done_tx);

    // The watchdog: a hang fails the test instead of hanging the suite.
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..THREADS {
        let left = deadline.saturating_duration_since(Instant::now());
        let (worker, ok) = done_rx
            .recv_timeout(left)
            .expect("sessions hung: not every worker finished within 120 s");
        assert!(ok, "worker {worker} failed");
    }
    assert_back_to(baseline, "after the stress");
}
