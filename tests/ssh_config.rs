//! `~/.ssh/config` in the built-in SSH client, against real OpenSSH servers on 127.0.0.1:
//! `ProxyJump` (one hop and a chain of two) and `ProxyCommand`, proven by the bytes and
//! connections a counting proxy in front of the bastion saw; `Include`d hosts; host key and
//! identity settings; a directive the client cannot honour refused by name, file and line.

mod support;
mod util;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use musicfs::origin::ssh::{SshOptions, SshSession};
use support::proxy::CountingProxy;
use support::sshd::{client_options as options, client_spec as spec, keygen, Sshd, SshdOptions};
use util::{assert_trees_equal, num, summary_of, Musicfs, TestRepo};

/// Runs `command` on `host` and returns its stdout.
fn run(home: &Path, host: &str, command: &str) -> Vec<u8> {
    let session = SshSession::connect(&spec(host), &options(home)).expect("connect");
    let (mut reader, writer, status) = session.exec(command).expect("exec").split();
    drop(writer);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read stdout");
    assert_eq!(status.exit_status(Duration::from_secs(10)), Some(0));
    out
}

/// The server's public key, `ssh-ed25519 AAAA…`.
fn host_key(sshd: &Sshd) -> String {
    let line = sshd.known_hosts_line();
    line.split_once(' ').expect("known_hosts line").1.to_owned()
}

/// A bastion whose sshd lets the client of `target`'s home log in, with a counting proxy in
/// front of it.
fn bastion_for(target: &Sshd) -> (Sshd, CountingProxy) {
    let bastion = Sshd::start(SshdOptions::default());
    fs::copy(
        target.home().join(".ssh/id_ed25519.pub"),
        bastion.dir().join("authorized_keys"),
    )
    .expect("authorize the client on the bastion");
    let proxy = CountingProxy::start(bastion.port());
    (bastion, proxy)
}

fn append(path: &Path, text: &str) {
    let mut old = fs::read_to_string(path).unwrap_or_default();
    old.push_str(text);
    fs::write(path, old).expect("append");
}

/// The bastion as the client names it: `Host NAME` at the proxy's port, its key recorded
/// under the alias `NAME-key` (`HostKeyAlias`).
fn add_bastion(home: &Path, name: &str, bastion: &Sshd, proxy: &CountingProxy, extra: &str) {
    append(
        &home.join(".ssh/config"),
        &format!(
            "Host {name}\n    HostName 127.0.0.1\n    Port {}\n    User root\n    \
             HostKeyAlias {name}-key\n    IdentityFile ~/.ssh/id_ed25519\n{extra}",
            proxy.port
        ),
    );
    append(
        &home.join(".ssh/known_hosts"),
        &format!("{name}-key {}\n", host_key(bastion)),
    );
}

/// Puts `line` into the `nas` block (first in the file, so it wins).
fn nas_gets(home: &Path, line: &str) {
    let config = home.join(".ssh/config");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replacen("Host nas\n", &format!("Host nas\n    {line}\n"), 1),
    )
    .unwrap();
}

const BULK: usize = 300_000;

#[test]
fn proxy_jump_goes_through_the_bastion() {
    let target = Sshd::start(SshdOptions::default());
    let (bastion, proxy) = bastion_for(&target);
    let home = target.home();
    add_bastion(&home, "bastion", &bastion, &proxy, "");
    nas_gets(&home, "ProxyJump bastion");

    let out = run(&home, "nas", &format!("head -c {BULK} /dev/zero"));
    assert_eq!(out.len(), BULK);
    assert_eq!(proxy.connections(), 1, "one connection to the bastion");
    let through = proxy.take();
    assert!(
        through > BULK as u64,
        "the target's output must cross the bastion's link: {through} bytes"
    );
}

#[test]
fn a_chain_of_two_jump_hosts() {
    let target = Sshd::start(SshdOptions::default());
    let (first, first_proxy) = bastion_for(&target);
    let (second, second_proxy) = bastion_for(&target);
    let home = target.home();
    add_bastion(&home, "first", &first, &first_proxy, "");
    add_bastion(&home, "second", &second, &second_proxy, "");
    nas_gets(&home, "ProxyJump first,root@second");

    let out = run(&home, "nas", &format!("head -c {BULK} /dev/zero"));
    assert_eq!(out.len(), BULK);
    assert_eq!(first_proxy.connections(), 1);
    assert_eq!(second_proxy.connections(), 1);
    // The second hop's link is carried inside the first's: both carry the target's bytes.
    assert!(first_proxy.take() > BULK as u64);
    assert!(second_proxy.take() > BULK as u64);
}

/// A `ProxyCommand` in Python: connects to argv[1]:argv[2], records its other arguments and
/// pid in argv[3], and copies bytes both ways.
const PIPE: &str = r#"
import os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
with open(sys.argv[3], "w") as f:
    f.write(" ".join(sys.argv[4:]) + " " + str(os.getpid()))
def up():
    while True:
        b = os.read(0, 65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    b = s.recv(65536)
    if not b:
        break
    os.write(1, b)
"#;

#[test]
fn proxy_command_carries_the_session_and_ends_with_it() {
    let target = Sshd::start(SshdOptions::default());
    let proxy = CountingProxy::start(target.port());
    let home = target.home();
    let script = target.dir().join("pipe.py");
    fs::write(&script, PIPE).unwrap();
    let record = target.dir().join("proxy-args");
    // Port is a closed one: only the command, given the proxy's port, reaches the server.
    nas_gets(
        &home,
        &format!(
            "ProxyCommand python3 {} %h {} {} %r %n %p %%",
            script.display(),
            proxy.port,
            record.display()
        ),
    );
    nas_gets(&home, "Port 9");
    nas_gets(
        &home,
        &format!("HostKeyAlias [127.0.0.1]:{}", target.port()),
    );

    let session = SshSession::connect(&spec("nas"), &options(&home)).expect("connect");
    let (mut reader, writer, _status) = session
        .exec(&format!("head -c {BULK} /dev/zero"))
        .expect("exec")
        .split();
    drop(writer);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read");
    assert_eq!(out.len(), BULK);
    assert_eq!(proxy.connections(), 1);
    assert!(proxy.forwarded() > BULK as u64);
    let recorded = fs::read_to_string(&record).unwrap();
    let (tokens, pid) = recorded.rsplit_once(' ').unwrap();
    assert_eq!(tokens, "root nas 9 %");
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists(), "the ProxyCommand runs with the session");

    drop(reader);
    drop(session);
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the ProxyCommand outlived its session"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn included_hosts_with_globs_and_relative_paths() {
    let target = Sshd::start(SshdOptions::default());
    let home = target.home();
    let ssh = home.join(".ssh");
    fs::create_dir(ssh.join("config.d")).unwrap();
    fs::write(
        ssh.join("config.d/10-music.conf"),
        "Host music\n    HostName 127.0.0.1\n    User root\n    Include ports/*\n",
    )
    .unwrap();
    fs::create_dir(ssh.join("ports")).unwrap();
    fs::write(ssh.join("ports/music"), format!("Port {}\n", target.port())).unwrap();
    // Written first, so its Include is what decides `music`.
    let config = ssh.join("config");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("Include config.d/*.conf\n{text}")).unwrap();
    assert_eq!(run(&home, "music", "echo hi"), b"hi\n");
}

#[test]
fn user_known_hosts_file_and_accept_new() {
    let target = Sshd::start(SshdOptions::default());
    let home = target.home();
    let elsewhere = target.dir().join("elsewhere_known_hosts");
    fs::rename(home.join(".ssh/known_hosts"), &elsewhere).unwrap();
    nas_gets(
        &home,
        &format!("UserKnownHostsFile {}", elsewhere.display()),
    );
    assert_eq!(run(&home, "nas", "echo hi"), b"hi\n");

    // A file that does not know the host: refused, then learnt with accept-new.
    let fresh = target.dir().join("fresh_known_hosts");
    let config = home.join(".ssh/config");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace(
            &elsewhere.display().to_string(),
            &fresh.display().to_string(),
        ),
    )
    .unwrap();
    let refused = SshSession::connect(&spec("nas"), &options(&home)).expect_err("unknown");
    assert!(
        refused.to_string().contains("unknown host key"),
        "{refused}"
    );
    nas_gets(&home, "StrictHostKeyChecking accept-new");
    assert_eq!(run(&home, "nas", "echo hi"), b"hi\n");
    let learnt = fs::read_to_string(&fresh).unwrap();
    assert!(learnt.contains(&host_key(&target)[..30]), "{learnt}");
}

/// An ssh-agent holding `key`, stopped on drop.
struct Agent {
    socket: PathBuf,
    pid: String,
}

impl Agent {
    fn start(dir: &Path, key: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let out = Command::new("ssh-agent")
            .arg("-a")
            .arg(&socket)
            .arg("-s")
            .output()
            .expect("ssh-agent");
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .expect("agent pid")
            .to_owned();
        let agent = Agent { socket, pid };
        let added = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .expect("ssh-add");
        assert!(added.status.success(), "{added:?}");
        agent
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

#[test]
fn identities_only_keeps_other_agent_keys_out() {
    let target = Sshd::start(SshdOptions::default());
    let home = target.home();
    let agent = Agent::start(target.dir(), &target.client_key());
    // The configured key is not authorized; the agent's one is.
    let other = home.join(".ssh/other_key");
    keygen(&other, "not authorized");
    let config = home.join(".ssh/config");
    let text = fs::read_to_string(&config).unwrap();
    let text = text.replace(
        &format!("IdentityFile {}", target.client_key().display()),
        &format!("IdentityFile {}", other.display()),
    );
    fs::write(&config, &text).unwrap();
    let with_agent = SshOptions {
        agent_socket: Some(agent.socket.clone()),
        ..options(&home)
    };
    SshSession::connect(&spec("nas"), &with_agent).expect("the agent's key is offered");

    nas_gets(&home, "IdentitiesOnly yes");
    let refused = SshSession::connect(&spec("nas"), &with_agent).expect_err("refused");
    assert!(refused.to_string().contains("authentication"), "{refused}");

    // IdentityAgent names the agent itself; `none` turns it off.
    fs::write(
        &config,
        text.replacen(
            "Host nas\n",
            &format!("Host nas\n    IdentityAgent {}\n", agent.socket.display()),
            1,
        ),
    )
    .unwrap();
    SshSession::connect(&spec("nas"), &options(&home)).expect("IdentityAgent socket");
    fs::write(
        &config,
        text.replacen("Host nas\n", "Host nas\n    IdentityAgent none\n", 1),
    )
    .unwrap();
    SshSession::connect(&spec("nas"), &with_agent).expect_err("IdentityAgent none");
}

#[test]
fn a_directive_the_client_cannot_honour_is_refused_by_name_at_once() {
    let t = TestRepo::new();
    let target = Sshd::start(SshdOptions::default());
    let home = target.home();
    let config = home.join(".ssh/config");
    append(
        &config,
        "Match originalhost nas exec \"test -e /\"\n    Port 1\n",
    );
    let started = Instant::now();
    let mut cmd = Musicfs::new(t.repo(), &home);
    cmd.args(["scan", "nas:/x"]);
    let out = cmd.assert_exit(2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = fs::read_to_string(&config).unwrap().lines().count() - 1;
    assert!(
        stderr.contains(&format!("{}:{line}: Match", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("Match exec"), "{stderr}");
    assert!(stderr.contains("use --rsh ssh"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // A keyword in an Include'd file, for the host, through its jump host.
    fs::write(
        &config,
        fs::read_to_string(&config).unwrap().replace(
            "Match originalhost nas exec \"test -e /\"\n    Port 1\n",
            "",
        ),
    )
    .unwrap();
    nas_gets(&home, "ProxyJump hop");
    fs::write(
        home.join(".ssh/hop.conf"),
        "Host hop\n    CertificateFile ~/.ssh/cert\n",
    )
    .unwrap();
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("Include hop.conf\n{text}")).unwrap();
    let out = Musicfs::new(t.repo(), &home)
        .args(["scan", "nas:/x"])
        .assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2: CertificateFile",
            home.join(".ssh/hop.conf").display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_full_sync_over_proxy_jump_ends_exact() {
    let t = TestRepo::new();
    let bin_dir = util::bin().parent().unwrap().to_path_buf();
    let target = Sshd::with_agent(&bin_dir, &t.path("remote-repo"));
    let (bastion, proxy) = bastion_for(&target);
    let home = target.home();
    add_bastion(&home, "bastion", &bastion, &proxy, "");
    nas_gets(&home, "ProxyJump bastion");
    let music = t.fixtures("music");
    let lib = t.path("lib");
    let out = Musicfs::new(t.repo(), &home)
        .json()
        .args(["sync", "--delete"])
        .arg(format!("nas:{}", music.display()))
        .arg(&lib)
        .assert_exit(0);
    let summary = summary_of(&out);
    assert_trees_equal(&music, &lib);
    assert!(
        t.path("remote-repo").join("index.redb").exists(),
        "the remote agent did not run"
    );
    let through = proxy.take();
    assert!(proxy.connections() >= 1);
    assert!(
        through > num(&summary, "bytes_transferred"),
        "{through} bytes through the bastion, {summary}"
    );
}

/// The same bastion with OpenSSH as the client (`--rsh ssh`): `ProxyJump` is then OpenSSH's
/// own, and the bastion's proxy proves that the sync went through it.
#[test]
fn a_full_sync_over_proxy_jump_with_rsh_ssh_ends_exact() {
    let t = TestRepo::new();
    let bin_dir = util::bin().parent().unwrap().to_path_buf();
    let target = Sshd::with_agent(&bin_dir, &t.path("remote-repo"));
    let (bastion, proxy) = bastion_for(&target);
    let key = target.client_key();
    // OpenSSH reads ~ from the password database, so everything is named by absolute path,
    // and the jump host's settings live in the file (`-o` options apply to the target only).
    let known = target.dir().join("rsh_known_hosts");
    fs::write(
        &known,
        format!(
            "{}\n[127.0.0.1]:{} {}\n",
            target.known_hosts_line(),
            proxy.port,
            host_key(&bastion)
        ),
    )
    .unwrap();
    let config = target.dir().join("rsh_config");
    fs::write(
        &config,
        format!(
            "Host nas-openssh\n    HostName 127.0.0.1\n    Port {}\n    User root\n    \
             IdentityFile {}\n    ProxyJump bastion-openssh\n\
             Host bastion-openssh\n    HostName 127.0.0.1\n    Port {}\n    User root\n    \
             IdentityFile {}\n\
             Host *\n    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
            target.port(),
            key.display(),
            proxy.port,
            key.display(),
            known.display()
        ),
    )
    .unwrap();
    let music = t.fixtures("music");
    let lib = t.path("lib");
    let out = Musicfs::new(t.repo(), &target.home())
        .json()
        .args(["sync", "--delete", "--rsh"])
        .arg(format!("ssh -F '{}'", config.display()))
        .arg(format!("nas-openssh:{}", music.display()))
        .arg(&lib)
        .assert_exit(0);
    let summary = summary_of(&out);
    assert_trees_equal(&music, &lib);
    assert!(
        t.path("remote-repo").join("index.redb").exists(),
        "the remote agent did not run"
    );
    let through = proxy.take();
    assert!(proxy.connections() >= 1, "no connection to the bastion");
    assert!(
        through > num(&summary, "bytes_transferred"),
        "{through} bytes through the bastion, {summary}"
    );
}
