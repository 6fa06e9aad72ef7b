//! The SSH transport's `AgentLink` against a real OpenSSH sshd on 127.0.0.1: what the agent
//! protocol (`musicfs::agent`) is given, with no musicfs involved: a command's streams and
//! exit status, and the fallback origin on the same connection.
//!
//! The link takes the user's SSH files from `HOME`, so this file holds one test, which sets
//! it for the whole process.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::time::Duration;

use musicfs::origin::agent_link::COMMAND_NOT_FOUND;
use musicfs::origin::{OpenOptions, OriginSpec, WalkItem};
use support::sshd::{Sshd, SshdOptions};

#[test]
fn the_ssh_link_runs_commands_and_opens_its_fallback_on_one_connection() {
    let sshd = Sshd::start(SshdOptions::default());
    std::env::set_var("HOME", sshd.home());
    std::env::remove_var("SSH_AUTH_SOCK");
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("a.flac"), b"fLaC and more").expect("write");
    let root = dir.path().display().to_string();

    let spec = OriginSpec::parse(OsStr::new(&format!("nas:{root}"))).expect("parse");
    let link = spec.agent().expect("an SSH origin has an agent link");
    assert!(!link.fallback_only());
    assert_eq!(link.remote_dir(), root.as_bytes());
    assert_eq!(link.fallback_name(), "SFTP");
    let sftp_url = format!("sftp://nas{root}");
    assert!(OriginSpec::parse(OsStr::new(&sftp_url))
        .expect("parse")
        .agent()
        .expect("link")
        .fallback_only());
    assert!(OriginSpec::parse(dir.path().as_os_str())
        .expect("parse")
        .agent()
        .is_none());

    let options = OpenOptions {
        connect_timeout: Duration::from_secs(20),
        io_timeout: Duration::from_secs(20),
        ..OpenOptions::default()
    };
    let connection = link.connect(&options).expect("connect");
    assert!(
        connection.origin().ends_with(&format!(":{root}")),
        "{}",
        connection.origin()
    );

    // A host without the program: its output ends at once and its status says so.
    let mut missing = connection
        .start_agent("no-such-musicfs-here serve --stdio")
        .expect("start");
    drop(missing.output);
    let mut out = Vec::new();
    missing.input.read_to_end(&mut out).expect("read");
    assert!(out.is_empty());
    assert_eq!(
        missing.status.exit_status(Duration::from_secs(10)),
        Some(COMMAND_NOT_FOUND)
    );
    assert!(
        missing.status.stderr_tail().contains("not found"),
        "{}",
        missing.status.stderr_tail()
    );

    // The streams carry bytes both ways; the end of the input ends the command.
    let mut cat = connection.start_agent("cat; exit 5").expect("start");
    cat.output.write_all(b"hello agent").expect("write");
    drop(cat.output);
    let mut echoed = Vec::new();
    cat.input.read_to_end(&mut echoed).expect("read");
    assert_eq!(echoed, b"hello agent");
    assert_eq!(cat.status.exit_status(Duration::from_secs(10)), Some(5));

    // The fallback, on the same connection, reads and writes the remote directory.
    let origin = connection.open_fallback().expect("fallback");
    let mut seen = Vec::new();
    origin.walk(&mut |item| {
        if let WalkItem::Entry { path, .. } = item {
            seen.push(path);
        }
    });
    assert_eq!(seen, vec![b"a.flac".to_vec()]);
    let mut file = origin.open(b"a.flac").expect("open");
    let mut content = Vec::new();
    file.read_to_end(&mut content).expect("read");
    assert_eq!(content, b"fLaC and more");

    let writable = connection.open_fallback_writable().expect("writable");
    let mut temp = writable.create_temp(b"b.flac").expect("temp");
    temp.write_all(b"written over the link").expect("write");
    temp.commit(0o644, 1_700_000_000_000_000_000)
        .expect("commit");
    assert_eq!(
        fs::read(dir.path().join("b.flac")).expect("read back"),
        b"written over the link"
    );
}
