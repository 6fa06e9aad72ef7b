//! `musicfs mount` by a user who is not root, as a desktop user or a media server's account
//! mounts: through the setuid `fusermount3` (Debian `fuse3`), which needs the user to be able
//! to open `/dev/fuse`.
//!
//! Run as such a user (`scripts/test.sh` step 4 runs this file as `nobody`), the tests use
//! that user's own access to `/dev/fuse`: `a_user_without_access_to_dev_fuse_is_told_so`
//! needs a user who may not open it, every other test one who may. test.sh runs the first
//! before it gives `nobody` access and the others after.
//!
//! Run as root (`cargo test`, as CI does), every test runs its commands as `nobody` through
//! `setpriv` (util-linux) and gives or takes away nobody's access to `/dev/fuse` itself, with
//! an ACL entry for that one user (`setfacl`, Debian `acl`) that is put back from a saved
//! copy (`getfacl`) when the test ends, passed or failed. An ACL rather than `chgrp`/`chmod`:
//! it lets in exactly one user (`chmod 0666` lets in every user, a group every member), it
//! works whatever the device's mode is on the machine (0600 in CI; 0666 on a desktop, where
//! denying needs an entry too), and restoring the saved ACL puts back the owner, group, mode
//! and entries there were. A test killed before it restores leaves the entry behind:
//! `setfacl -x u:nobody /dev/fuse` removes it. The tests hold one lock while the device is
//! changed, so they never see each other's changes.

mod util;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use util::mount::{is_mounted, mount_detached, mountinfo_line, running, wait_exit, UnmountOnDrop};
use util::{files_in, require_tool, run_ok, unprivileged_command, wait_timeout, TestRepo, NOBODY};

const FUSE_DEVICE: &str = "/dev/fuse";

/// Held while a test relies on, or changes, what the test user may do with `/dev/fuse`.
static DEVICE: Mutex<()> = Mutex::new(());

/// The uid the mounts run as: `nobody` when the tests run as root, else the current user.
fn test_uid() -> u32 {
    if nix::unistd::geteuid().is_root() {
        NOBODY.0
    } else {
        nix::unistd::getuid().as_raw()
    }
}

/// Whether the test user can open `/dev/fuse` for reading and writing, as a mount does.
fn user_opens_fuse_device() -> bool {
    unprivileged_command("sh")
        .args(["-c", "exec 3<>/dev/fuse"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run sh")
        .success()
}

/// What the test user may do with `/dev/fuse` while a test runs: as root, set by an ACL entry
/// for `nobody` and restored on drop; otherwise checked, since only root may change it.
struct FuseDevice {
    /// `getfacl` of the device before the test changed it (as root).
    saved: Option<Vec<u8>>,
    _lock: MutexGuard<'static, ()>,
}

impl FuseDevice {
    /// The test user may open `/dev/fuse`.
    fn open_to_user() -> FuseDevice {
        FuseDevice::set(true)
    }

    /// The test user may not open `/dev/fuse`.
    fn closed_to_user() -> FuseDevice {
        FuseDevice::set(false)
    }

    fn set(open: bool) -> FuseDevice {
        let lock = DEVICE.lock().unwrap_or_else(PoisonError::into_inner);
        let as_root = nix::unistd::geteuid().is_root();
        let mut device = FuseDevice {
            saved: None,
            _lock: lock,
        };
        if as_root {
            let getfacl = require_tool("getfacl", "acl");
            let setfacl = require_tool("setfacl", "acl");
            let saved = run_ok(
                Command::new(getfacl)
                    .args(["--numeric", "--absolute-names"])
                    .arg(FUSE_DEVICE),
            )
            .stdout;
            device.saved = Some(saved);
            let perms = if open { "rw" } else { "-" };
            run_ok(
                Command::new(setfacl)
                    .arg("-m")
                    .arg(format!("u:{}:{perms}", NOBODY.0))
                    .arg(FUSE_DEVICE),
            );
        }
        let opens = user_opens_fuse_device();
        if opens != open {
            let uid = test_uid();
            let why = match (as_root, open) {
                (true, _) => format!(
                    "setfacl did not {} uid {uid}'s access to {FUSE_DEVICE} (does /dev \
                     support ACLs?)",
                    if open { "give" } else { "take away" }
                ),
                (false, true) => format!(
                    "this test needs a user who may open {FUSE_DEVICE}; give uid {uid} access \
                     as root (`setfacl -m u:{uid}:rw {FUSE_DEVICE}`, as scripts/test.sh does \
                     for nobody), or run the tests as root, which do it for nobody"
                ),
                (false, false) => format!(
                    "this test needs a user who may not open {FUSE_DEVICE}, and uid {uid} \
                     may: run it before access is given (as scripts/test.sh does), or as root"
                ),
            };
            panic!("{why}");
        }
        device
    }
}

impl Drop for FuseDevice {
    fn drop(&mut self) {
        let Some(saved) = self.saved.take() else {
            return;
        };
        let restored = Command::new("setfacl")
            .arg("--restore=-")
            .stdin(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().expect("stdin").write_all(&saved)?;
                c.wait()
            });
        let ok = restored.as_ref().is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            panic!(
                "restoring the ACL of {FUSE_DEVICE} failed ({restored:?}); it was:\n{}",
                String::from_utf8_lossy(&saved)
            );
        }
    }
}

/// A repository with the audio fixtures scanned by the test user, and an empty mountpoint
/// that user owns: (repository, library, mountpoint).
fn scanned_library() -> (TestRepo, PathBuf, PathBuf) {
    require_tool("fusermount3", "fuse3");
    let t = TestRepo::unprivileged();
    let lib = t.fixtures("lib");
    t.cmd_unprivileged()
        .arg("scan")
        .arg(&lib)
        .quiet()
        .assert_exit(0);
    t.sh_unprivileged("mkdir mnt");
    let mnt = t.path("mnt");
    (t, lib, mnt)
}

/// The newest snapshot of `lib` in the mount on `mnt`.
fn latest(mnt: &Path, lib: &Path) -> PathBuf {
    let canonical = lib.canonicalize().expect("canonical library path");
    mnt.join(musicfs::mount::origin_dir_name(
        &canonical.to_string_lossy(),
    ))
    .join("latest")
}

/// The real uid of process `pid`.
fn uid_of(pid: u32) -> u32 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap_or_else(|| panic!("no Uid in /proc/{pid}/status"))
}

/// Asserts that the mount on `mnt` was made through `fusermount3` for the test user and is
/// served by process `pid`, which runs as that user. Such a process cannot call mount(2) (it
/// is not root), so the mount exists only through the setuid helper, which records the user
/// in the mount's options and gives the type `fuse.SUBTYPE`.
fn assert_mounted_by_test_user(mnt: &Path, pid: u32) {
    let uid = test_uid();
    assert_ne!(uid, 0, "the test user is root");
    let line = mountinfo_line(mnt).unwrap_or_else(|| panic!("{} not mounted", mnt.display()));
    let after_separator: Vec<&str> = line
        .split(" - ")
        .nth(1)
        .unwrap_or_else(|| panic!("mountinfo line without ` - `: {line}"))
        .split(' ')
        .collect();
    assert_eq!(
        after_separator[..2],
        ["fuse.musicfs", "musicfs"],
        "type and source: {line}"
    );
    assert!(
        after_separator[2]
            .split(',')
            .any(|o| o == format!("user_id={uid}")),
        "not mounted for uid {uid}: {line}"
    );
    assert!(running(pid), "the serving process {pid} has ended");
    assert_eq!(uid_of(pid), uid, "uid of the serving process {pid}");
}

/// Asserts that the test user, reading the snapshot at `latest` in the mount, finds exactly
/// the regular files of `lib`, with the same bytes.
fn assert_user_reads_back(lib: &Path, latest: &Path) {
    let listed = run_ok(
        unprivileged_command("find")
            .arg("-H")
            .arg(latest)
            .args(["-type", "f", "-printf", "%P\\n"]),
    )
    .stdout;
    let mut listed: Vec<PathBuf> = String::from_utf8(listed)
        .expect("UTF-8 names")
        .lines()
        .map(PathBuf::from)
        .collect();
    listed.sort();
    let want = files_in(lib);
    assert_eq!(
        listed,
        want.keys().cloned().collect::<Vec<_>>(),
        "files under {}",
        latest.display()
    );
    assert!(want.len() >= 10, "fixtures: {want:?}");
    for (rel, origin) in &want {
        let got = run_ok(unprivileged_command("cat").arg(latest.join(rel))).stdout;
        let expected = fs::read(origin).expect("read origin");
        assert!(
            got == expected,
            "{}: {} bytes through the mount, {} in the origin, or different bytes",
            rel.display(),
            got.len(),
            expected.len()
        );
    }
}

/// Waits until `child` (a `musicfs mount --foreground`) has mounted `mnt`; panics with its
/// stderr if it exits first.
fn wait_mounted(child: &mut Child, mnt: &Path) {
    let start = Instant::now();
    while !is_mounted(mnt) {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("musicfs mount exited ({status}): {err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} not mounted",
            mnt.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_user_mounts_through_fusermount3_reads_every_byte_and_unmounts() {
    let _device = FuseDevice::open_to_user();
    let (t, lib, mnt) = scanned_library();
    let _cleanup = UnmountOnDrop(mnt.clone());
    let pid = mount_detached(t.cmd_unprivileged(), &mnt, &[]);
    assert_mounted_by_test_user(&mnt, pid);
    assert_user_reads_back(&lib, &latest(&mnt, &lib));

    run_ok(unprivileged_command("fusermount3").arg("-u").arg(&mnt));
    wait_exit(pid);
    assert!(!is_mounted(&mnt), "still mounted after fusermount3 -u");
}

/// Not root, the serving process cannot unmount with umount(2): on SIGTERM it goes through
/// `fusermount3 -u -z`, which detaches the mount at once; a file still open is served until
/// it is closed, and then the process exits 0.
#[test]
fn a_users_mount_unmounts_itself_on_sigterm_and_serves_open_files_until_closed() {
    let _device = FuseDevice::open_to_user();
    let (t, lib, mnt) = scanned_library();
    let _cleanup = UnmountOnDrop(mnt.clone());
    let mut server = t
        .cmd_unprivileged()
        .arg("mount")
        .arg("--foreground")
        .arg(&mnt)
        .spawn();
    wait_mounted(&mut server, &mnt);
    assert_mounted_by_test_user(&mnt, server.id());

    let (rel, origin) = files_in(&lib)
        .into_iter()
        .max_by_key(|(_, p)| fs::metadata(p).expect("stat").len())
        .expect("a file");
    let mut reader = unprivileged_command("sh")
        .args([
            "-c",
            "exec 3<\"$1\" && echo open && read go && cat <&3",
            "sh",
        ])
        .arg(latest(&mnt, &lib).join(&rel))
        .current_dir(t.root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sh");
    let mut out = BufReader::new(reader.stdout.take().expect("stdout"));
    let mut said = String::new();
    out.read_line(&mut said).expect("read");
    assert_eq!(
        said,
        "open\n",
        "the reader could not open {}",
        rel.display()
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill -TERM");
    let start = Instant::now();
    while is_mounted(&mnt) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "still mounted after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.try_wait().expect("try_wait").is_none(),
        "the server ended while a file was still open"
    );

    let mut stdin = reader.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("write");
    drop(stdin);
    let mut got = Vec::new();
    out.read_to_end(&mut got).expect("read");
    let status = reader.wait().expect("wait");
    assert!(status.success(), "reader: {status}");
    assert!(
        got == fs::read(&origin).expect("read origin"),
        "{}: the open file's bytes differ after the unmount",
        rel.display()
    );

    let status = wait_timeout(&mut server, Duration::from_secs(20))
        .expect("the server did not exit once the file was closed");
    let mut err = String::new();
    if let Some(mut e) = server.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "server: {status}: {err}");
}

#[test]
fn a_user_without_access_to_dev_fuse_is_told_so() {
    let _device = FuseDevice::closed_to_user();
    let (t, _lib, mnt) = scanned_library();
    let _cleanup = UnmountOnDrop(mnt.clone());
    for extra in [&["--foreground"][..], &[]] {
        let out = t
            .cmd_unprivileged()
            .arg("mount")
            .args(extra)
            .arg(&mnt)
            .assert_exit(2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/dev/fuse: permission denied")
                && err.contains("ask an administrator to let users open /dev/fuse"),
            "{extra:?}: {err}"
        );
        assert!(!is_mounted(&mnt), "{extra:?}: mounted");
    }
}

/// The device is open to the user, so the only reason left to refuse is `/etc/fuse.conf`.
#[test]
fn sharing_a_users_mount_without_user_allow_other_is_refused() {
    let conf = fs::read_to_string("/etc/fuse.conf").unwrap_or_default();
    assert!(
        !conf.lines().any(|l| l.trim() == "user_allow_other"),
        "this test needs an /etc/fuse.conf without a `user_allow_other` line"
    );
    let _device = FuseDevice::open_to_user();
    let (t, _lib, mnt) = scanned_library();
    let _cleanup = UnmountOnDrop(mnt.clone());
    for extra in [
        &["--allow-other"][..],
        &["--allow-root"],
        &["--allow-other", "--foreground"],
    ] {
        let out = t
            .cmd_unprivileged()
            .arg("mount")
            .args(extra)
            .arg(&mnt)
            .assert_exit(2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("/etc/fuse.conf: no `user_allow_other` line"),
            "{extra:?}: {err}"
        );
        assert!(!is_mounted(&mnt), "{extra:?}: mounted");
    }
}
