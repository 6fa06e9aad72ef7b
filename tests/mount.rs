//! `musicfs mount`, mounted for real: as root fuser mounts through mount(2); `fusermount3`
//! (Debian `fuse3`) unmounts, and `ffprobe` (Debian `ffmpeg`) decodes through the mount.
//! A user who is not root mounting through `fusermount3`: `tests/mount_unprivileged.rs`.

mod util;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::mount::{is_mounted, mount_detached, pid_in, running, wait_exit, UnmountOnDrop};
use util::{bin, TestRepo};

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{program} not found: install the Debian package `{package}`"
    );
}

/// A running `musicfs mount --foreground`, unmounted and reaped on drop.
struct Mounted {
    child: Option<Child>,
    mountpoint: PathBuf,
}

impl Mounted {
    fn start(t: &TestRepo, mountpoint: &Path) -> Mounted {
        Mounted::start_logging(t, mountpoint, "musicfs=warn")
    }

    /// Like [`Mounted::start`], logging what `MUSICFS_LOG` (a tracing filter) asks for.
    fn start_logging(t: &TestRepo, mountpoint: &Path, filter: &str) -> Mounted {
        require("fusermount3", "fuse3");
        let child = Command::new(bin())
            .env("MUSICFS_LOG", filter)
            .arg("--repo")
            .arg(t.repo())
            .arg("mount")
            .arg("--foreground")
            .arg(mountpoint)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start musicfs mount");
        let mut m = Mounted {
            child: Some(child),
            mountpoint: mountpoint.to_path_buf(),
        };
        let start = Instant::now();
        loop {
            if fs::read_dir(mountpoint).is_ok_and(|mut d| d.next().is_some()) {
                return m;
            }
            if let Some(status) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let mut err = String::new();
                if let Some(mut e) = m.child.as_mut().and_then(|c| c.stderr.take()) {
                    let _ = e.read_to_string(&mut err);
                }
                m.child = None;
                panic!("musicfs mount exited ({status}): {err}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mount did not appear"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Unmounts, waits for the serving process to end and returns what it wrote on stderr.
    fn unmount_and_stderr(mut self) -> String {
        fusermount_u(&self.mountpoint);
        let mut err = String::new();
        if let Some(mut e) = self.child.as_mut().and_then(|c| c.stderr.take()) {
            e.read_to_string(&mut err).expect("read stderr");
        }
        let _ = self.wait();
        err
    }

    /// Waits for the serving process to end; its exit status.
    fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mount process did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mountpoint)
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn kill(signal: &str, pid: u32) {
    let ok = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{signal} {pid}");
}

/// Every regular file under `root`, relative.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(root.join(&rel)).expect("read_dir") {
            let e = e.expect("entry");
            let p = rel.join(e.file_name());
            let ft = e.file_type().expect("type");
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The origin's directory name in the mount.
fn origin_dir(lib: &Path) -> String {
    let canon = lib.canonicalize().expect("canonical");
    canon
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_")
}

fn scan(t: &TestRepo, dir: &Path) {
    t.cmd().arg("scan").arg(dir).quiet().assert_exit(0);
}

#[test]
fn files_read_through_the_mount_equal_their_origin() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let mut m = Mounted::start(&t, &mnt);
    let origin = mnt.join(origin_dir(&lib));
    let latest = origin.join("latest");
    let target = fs::read_link(&latest).expect("latest is a symlink");
    assert!(origin.join(&target).is_dir());
    let all = files(&lib);
    assert!(all.len() >= 10, "fixtures: {all:?}");
    for rel in &all {
        let want = fs::read(lib.join(rel)).expect("read origin");
        let got = fs::read(latest.join(rel)).expect("read through mount");
        assert!(want == got, "{} differs through the mount", rel.display());
        let a = fs::metadata(lib.join(rel)).expect("stat");
        let b = fs::metadata(latest.join(rel)).expect("stat");
        assert_eq!(a.size(), b.size(), "{}", rel.display());
        assert_eq!(a.mtime(), b.mtime(), "{}", rel.display());
        assert_eq!(a.mtime_nsec(), b.mtime_nsec(), "{}", rel.display());
        assert_eq!(a.mode() & 0o7777, b.mode() & 0o7777, "{}", rel.display());
    }

    // Random offsets and lengths, seeking back and forth.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for rel in &all {
        let want = fs::read(lib.join(rel)).expect("read");
        let mut f = File::open(latest.join(rel)).expect("open");
        for _ in 0..40 {
            let off = next() % (want.len() as u64 + 10);
            let len = (next() % 300_000) as usize;
            f.seek(SeekFrom::Start(off)).expect("seek");
            let mut buf = vec![0u8; len];
            let mut got = 0;
            while got < len {
                let n = f.read(&mut buf[got..]).expect("read");
                if n == 0 {
                    break;
                }
                got += n;
            }
            let start = (off as usize).min(want.len());
            let end = (start + len).min(want.len());
            assert_eq!(
                &buf[..got],
                &want[start..end],
                "{} at {off}+{len}",
                rel.display()
            );
        }
        let end = f.seek(SeekFrom::End(0)).expect("seek end");
        assert_eq!(end, want.len() as u64);
    }

    // Many readers at once.
    std::thread::scope(|s| {
        for i in 0..8 {
            let (all, lib, latest) = (&all, &lib, &latest);
            s.spawn(move || {
                for rel in all.iter().cycle().skip(i).take(all.len() * 2) {
                    let want = fs::read(lib.join(rel)).expect("read");
                    assert!(want == fs::read(latest.join(rel)).expect("read"));
                }
            });
        }
    });

    kill("TERM", m.pid());
    assert!(m.wait().success());
    assert!(!is_mounted(&mnt), "still mounted after SIGTERM");
}

#[test]
fn audio_decodes_through_the_mount() {
    require("ffprobe", "ffmpeg");
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let mut m = Mounted::start(&t, &mnt);
    let latest = mnt.join(origin_dir(&lib)).join("latest");
    let audio: Vec<PathBuf> = files(&lib)
        .into_iter()
        .filter(|p| {
            let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase());
            matches!(
                ext.as_deref(),
                Some("mp3" | "flac" | "ogg" | "opus" | "m4a" | "wav" | "aiff" | "oga")
            )
        })
        .collect();
    assert!(audio.len() >= 5);
    // Decode every packet (not only the headers), through the mount and from the library:
    // the decoded audio's MD5 and the probed duration must agree.
    let decode = |path: &Path| {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(path)
            .args(["-map", "0:a", "-f", "md5", "-"])
            .output()
            .expect("run ffmpeg");
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let duration = |path: &Path| {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(path)
            .output()
            .expect("run ffprobe");
        assert!(out.status.success(), "{}", path.display());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for rel in audio {
        let (mounted, original) = (latest.join(&rel), lib.join(&rel));
        let md5 = decode(&mounted);
        assert!(md5.starts_with("MD5="), "{}: {md5}", rel.display());
        assert_eq!(md5, decode(&original), "{}: decoded audio", rel.display());
        assert_eq!(
            duration(&mounted),
            duration(&original),
            "{}: duration",
            rel.display()
        );
    }
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .expect("fusermount3");
    assert!(status.success());
    assert!(m.wait().success(), "unmounted from outside: exit 0");
    assert!(!is_mounted(&mnt));
}

#[test]
fn every_change_fails_with_erofs() {
    require("python3", "python3");
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let _m = Mounted::start(&t, &mnt);
    let latest = mnt.join(origin_dir(&lib)).join("latest");
    let file = latest.join(&files(&lib)[0]);
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(File::create(latest.join("new")).map(drop), "create");
    erofs(
        fs::OpenOptions::new().write(true).open(&file).map(drop),
        "open for writing",
    );
    erofs(
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_TRUNC)
            .open(&file)
            .map(drop),
        "O_TRUNC",
    );
    erofs(fs::create_dir(latest.join("d")), "mkdir");
    erofs(fs::remove_file(&file), "unlink");
    erofs(fs::rename(&file, latest.join("renamed")), "rename");
    erofs(
        fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)),
        "chmod",
    );
    erofs(
        std::os::unix::fs::symlink("x", latest.join("link")),
        "symlink",
    );
    erofs(fs::hard_link(&file, latest.join("hard")), "link");
    // truncate(2) and setxattr(2), through Python's os module.
    for call in [
        "os.truncate(p, 0)",
        "os.setxattr(p, 'user.x', b'1')",
        "os.utime(p, (0, 0))",
    ] {
        let script = format!(
            "import os, sys\np = sys.argv[1]\ntry:\n    {call}\nexcept OSError as e:\n    sys.exit(0 if e.errno == 30 else e.errno)\nsys.exit(99)"
        );
        let status = Command::new("python3")
            .arg("-c")
            .arg(&script)
            .arg(&file)
            .status()
            .expect("python3");
        assert!(status.success(), "{call}: {status}");
    }
    // The file is unchanged.
    assert!(fs::read(&file).expect("read") == fs::read(lib.join(&files(&lib)[0])).expect("read"));
}

#[test]
fn chunks_come_from_other_copies_and_are_verified() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let copy = t.fixtures("copy");
    scan(&t, &lib);
    scan(&t, &copy);
    // Overwrite every file of `lib` with other bytes of the same size, keeping the snapshot:
    // reads must come from `copy`, after their hashes failed at `lib`.
    let all = files(&lib);
    let mut originals = Vec::new();
    for rel in &all {
        let bytes = fs::read(lib.join(rel)).expect("read");
        let scrambled: Vec<u8> = bytes.iter().map(|b| b.wrapping_add(1)).collect();
        fs::write(lib.join(rel), &scrambled).expect("write");
        originals.push(bytes);
    }
    let mnt = t.mkdir("mnt");
    let _m = Mounted::start(&t, &mnt);
    let latest = mnt.join(origin_dir(&lib)).join("latest");
    for (rel, want) in all.iter().zip(&originals) {
        let got = fs::read(latest.join(rel)).expect("read through mount");
        assert!(&got == want, "{}", rel.display());
    }
    drop(_m);
    // With no good copy left anywhere, reads fail with EIO rather than return bad bytes.
    for rel in &all {
        let bytes = fs::read(copy.join(rel)).expect("read");
        let scrambled: Vec<u8> = bytes.iter().map(|b| b.wrapping_add(1)).collect();
        fs::write(copy.join(rel), &scrambled).expect("write");
    }
    let mnt2 = t.mkdir("mnt2");
    let _m = Mounted::start(&t, &mnt2);
    let latest = mnt2.join(origin_dir(&lib)).join("latest");
    for rel in &all {
        let e = fs::read(latest.join(rel)).expect_err("damaged everywhere");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: {e}", rel.display());
    }
    // Each warning names the file as seen in the mount.
    let snapshot = fs::read_link(&latest).expect("latest");
    let err = _m.unmount_and_stderr();
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
    assert!(!warnings.is_empty(), "no warnings: {err}");
    let shown = mnt2
        .canonicalize()
        .expect("canonical")
        .join(origin_dir(&lib))
        .join(snapshot);
    for rel in &all {
        let want = format!("{}: chunk ", shown.join(rel).display());
        assert!(
            warnings.iter().any(|w| w.contains(&want)),
            "no {want:?} in {err}"
        );
    }
    for w in &warnings {
        assert!(!w.contains(": : "), "a warning without a file name: {w}");
    }
}

#[test]
fn stale_mount_is_reported_and_background_mount_unmounts() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let mut m = Mounted::start(&t, &mnt);
    kill("KILL", m.pid());
    let _ = m.wait();
    let e = fs::read_dir(&mnt).expect_err("stale");
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
    let out = t
        .cmd()
        .arg("mount")
        .arg("--foreground")
        .arg(&mnt)
        .assert_exit(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale mount") && err.contains("fusermount3 -u"),
        "{err}"
    );
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .expect("fusermount3");
    assert!(status.success());

    // Without --foreground: returns once mounted, a detached process serves.
    let pid = mount_detached(t.cmd(), &mnt, &[]);
    assert!(is_mounted(&mnt));
    assert!(fs::read_dir(&mnt).expect("list").next().is_some());
    fusermount_u(&mnt);
    wait_exit(pid);
    assert!(!is_mounted(&mnt));
}

#[test]
fn a_detached_mount_logs_where_it_says() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let rel = files(&lib).remove(0);
    let bytes = fs::read(lib.join(&rel)).expect("read");
    fs::write(
        lib.join(&rel),
        bytes.iter().map(|b| !b).collect::<Vec<u8>>(),
    )
    .expect("write");
    let mnt = t.mkdir("mnt");
    let _guard = UnmountOnDrop(mnt.clone());
    let shown = mnt.join(origin_dir(&lib)).join("latest");

    // By default under ~/.local/state/musicfs, named in the message.
    let out = t.cmd().arg("mount").arg(&mnt).assert_exit(0);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = t
        .root()
        .join(".local/state/musicfs")
        .join(format!("mount-{}.log", origin_dir(&mnt)));
    assert!(said.contains(&format!("log: {};", log.display())), "{said}");
    let pid = pid_in(&said);
    let snapshot = fs::read_link(&shown).expect("latest");
    let e = fs::read(shown.join(&rel)).expect_err("no good copy");
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    let want = mnt
        .canonicalize()
        .expect("canonical")
        .join(origin_dir(&lib))
        .join(snapshot)
        .join(&rel);
    let want = format!("{}: chunk ", want.display());
    let start = Instant::now();
    while !fs::read_to_string(&log).unwrap_or_default().contains(&want) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {want:?} in {}: {:?}",
            log.display(),
            fs::read_to_string(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fusermount_u(&mnt);
    wait_exit(pid);
    assert!(fs::read_to_string(&log).expect("kept").contains(&want));

    // --log-file names another file.
    let other = t.path("logs/mount.log");
    let out = t
        .cmd()
        .arg("mount")
        .arg("--log-file")
        .arg(&other)
        .arg(&mnt)
        .assert_exit(0);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.contains(&format!("log: {};", other.display())),
        "{said}"
    );
    let pid = pid_in(&said);
    let _ = fs::read(shown.join(&rel)).expect_err("no good copy");
    let start = Instant::now();
    while !fs::read_to_string(&other)
        .unwrap_or_default()
        .contains(": chunk ")
    {
        assert!(start.elapsed() < Duration::from_secs(20), "nothing logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    fusermount_u(&mnt);
    wait_exit(pid);
}

#[test]
fn a_mountpoint_whose_name_is_not_utf8_mounts_once() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.root().join(std::ffi::OsStr::from_bytes(b"mnt \xff\\x"));
    fs::create_dir(&mnt).expect("mkdir");
    let _guard = UnmountOnDrop(mnt.clone());
    let pid = mount_detached(t.cmd(), &mnt, &[]);
    assert!(is_mounted(&mnt), "not listed in mountinfo");
    assert!(fs::read_dir(mnt.join(origin_dir(&lib))).is_ok());
    // A second mount is refused: nothing is stacked on the first.
    let out = t.cmd().arg("mount").arg(&mnt).assert_exit(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already a mountpoint"), "{err}");
    assert_eq!(processes_naming(&mnt), vec![pid]);
    fusermount_u(&mnt);
    wait_exit(pid);
    assert!(!is_mounted(&mnt));
}

#[test]
fn allow_other_lets_another_user_read_the_mount() {
    let t = TestRepo::unprivileged();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let rel = files(&lib).remove(0);
    let mnt = t.mkdir("mnt");
    let _guard = UnmountOnDrop(mnt.clone());
    let file = mnt.join(origin_dir(&lib)).join("latest").join(&rel);
    let read_as_nobody = || {
        util::unprivileged_command("cat")
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("cat")
    };
    let want = fs::read(lib.join(&rel)).expect("read");
    for (extra, others_read) in [
        (&[][..], false),
        (&["--allow-root"][..], false),
        (&["--allow-other"][..], true),
    ] {
        let pid = mount_detached(t.cmd(), &mnt, extra);
        let out = read_as_nobody();
        if others_read {
            assert!(out.status.success(), "{extra:?}: {:?}", out);
            assert!(out.stdout == want, "{extra:?}: bytes differ");
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("Permission denied"),
                "{extra:?}: {err}"
            );
        }
        fusermount_u(&mnt);
        wait_exit(pid);
    }
}

#[test]
fn the_kernel_stops_asking_for_extended_attributes() {
    use std::os::unix::ffi::OsStrExt;
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let m = Mounted::start_logging(&t, &mnt, "musicfs::mount::fs=trace");
    let latest = mnt.join(origin_dir(&lib)).join("latest");
    let all = files(&latest);
    assert!(all.len() >= 2, "{all:?}");
    for rel in &all {
        for name in ["security.selinux", "system.posix_acl_access", "user.x"] {
            let path =
                std::ffi::CString::new(latest.join(rel).as_os_str().as_bytes()).expect("path");
            let name = std::ffi::CString::new(name).expect("name");
            let mut buf = [0u8; 64];
            // SAFETY: both strings are NUL-terminated and the buffer's length is given.
            let n = unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            let e = std::io::Error::last_os_error();
            assert_eq!(n, -1);
            assert!(
                matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENODATA)),
                "{}: {e}",
                rel.display()
            );
        }
    }
    let err = m.unmount_and_stderr();
    let asked = err.lines().filter(|l| l.contains("getxattr ")).count();
    assert_eq!(
        asked, 1,
        "getxattr reached the file system {asked} times: {err}"
    );
}

#[test]
fn json_mount_prints_the_mountpoint_and_pid_and_the_hint_is_shell_quoted() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("my mnt");
    let _guard = UnmountOnDrop(mnt.clone());
    let out = t.cmd().arg("--json").arg("mount").arg(&mnt).assert_exit(0);
    let lines = util::parse_json_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["type"], "mounted", "{line}");
    let canon = mnt.canonicalize().expect("canonical");
    assert_eq!(line["mountpoint"], canon.to_str().expect("utf-8"), "{line}");
    let pid = line["pid"].as_u64().expect("pid") as u32;
    assert!(
        line["log"].as_str().is_some_and(|l| l.ends_with(".log")),
        "{line}"
    );
    assert!(running(pid) && is_mounted(&mnt));
    fusermount_u(&mnt);
    wait_exit(pid);

    let out = t.cmd().arg("mount").arg(&mnt).assert_exit(0);
    let said = String::from_utf8_lossy(&out.stderr);
    let hint = format!("`fusermount3 -u '{}'`", mnt.display());
    assert!(said.contains(&hint), "no {hint} in {said}");
    fusermount_u(&mnt);
    wait_exit(pid_in(&said));
}

#[test]
fn a_symlink_shows_its_directorys_recorded_mtime() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let rel = files(&lib).remove(0);
    let dir_rel = rel.parent().expect("parent").to_path_buf();
    let dir = lib.join(&dir_rel);
    std::os::unix::fs::symlink(rel.file_name().expect("name"), dir.join("link")).expect("ln");
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    util::set_mtime(&dir, when);
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let _m = Mounted::start(&t, &mnt);
    let through = mnt.join(origin_dir(&lib)).join("latest").join(&dir_rel);
    // Listed (readdir), then looked up.
    assert!(fs::read_dir(&through)
        .expect("list")
        .any(|e| e.is_ok_and(|e| e.file_name() == "link")));
    let meta = fs::symlink_metadata(through.join("link")).expect("lstat");
    assert!(meta.file_type().is_symlink());
    assert_eq!(
        meta.mtime(),
        1_700_000_000,
        "not the directory's recorded mtime"
    );
    assert_eq!(fs::metadata(&through).expect("stat").mtime(), 1_700_000_000);
}

/// Unmounts, trying again for up to 5 s while the kernel still counts the mount busy (a
/// descriptor of a file just read through it can outlive its `close` for a moment, as can
/// one inherited by a child another test thread is forking).
fn fusermount_u(mountpoint: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new("fusermount3")
            .arg("-u")
            .arg(mountpoint)
            .output()
            .expect("fusermount3");
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("busy") && Instant::now() < deadline,
            "fusermount3 -u {}: {err}",
            mountpoint.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Processes whose command line names `path`.
fn processes_naming(path: &Path) -> Vec<u32> {
    let want = path.as_os_str().as_encoded_bytes();
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && running(*pid))
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == want))
        })
        .collect()
}

/// A directory of the user's files, to mount over.
fn occupied_dir(t: &TestRepo) -> (PathBuf, Vec<(PathBuf, Vec<u8>)>) {
    let mnt = t.mkdir("mnt");
    fs::create_dir(mnt.join("notes")).expect("mkdir");
    let files = vec![
        (PathBuf::from("todo.txt"), b"buy strings\n".to_vec()),
        (
            PathBuf::from("notes/setlist.txt"),
            b"1. intro\n2. outro\n".to_vec(),
        ),
    ];
    for (rel, bytes) in &files {
        fs::write(mnt.join(rel), bytes).expect("write");
    }
    (mnt, files)
}

fn assert_files(dir: &Path, want: &[(PathBuf, Vec<u8>)]) {
    let mut names: Vec<PathBuf> = want.iter().map(|(rel, _)| rel.clone()).collect();
    names.sort();
    assert_eq!(files(dir), names, "files in {}", dir.display());
    for (rel, bytes) in want {
        assert_eq!(
            &fs::read(dir.join(rel)).expect("read"),
            bytes,
            "{}",
            rel.display()
        );
    }
}

#[test]
fn non_empty_mountpoint_is_refused() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let (mnt, mine) = occupied_dir(&t);
    let _cleanup = UnmountOnDrop(mnt.clone());
    let canonical = mnt.canonicalize().expect("canonical");
    for foreground in [false, true] {
        let mut cmd = t.cmd();
        cmd.arg("mount");
        if foreground {
            cmd.arg("--foreground");
        }
        let mut child = cmd.arg(&mnt).spawn();
        let status = util::wait_timeout(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("mount (foreground: {foreground}) did not return"));
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut err).expect("stderr");
        }
        assert_eq!(status.code(), Some(2), "foreground: {foreground}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&*canonical.to_string_lossy())
                && err.contains("not empty")
                && err.contains("--nonempty"),
            "{err}"
        );
        assert!(!is_mounted(&mnt), "mounted over the user's files");
        assert_eq!(processes_naming(&mnt), Vec::<u32>::new(), "left running");
        assert_files(&mnt, &mine);
    }
}

#[test]
fn nonempty_flag_mounts_over_the_files_until_unmounted() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let (mnt, mine) = occupied_dir(&t);
    let _cleanup = UnmountOnDrop(mnt.clone());
    let pid = mount_detached(t.cmd(), &mnt, &["--nonempty"]);
    assert!(is_mounted(&mnt));
    let names: Vec<_> = fs::read_dir(&mnt)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(origin_dir(&lib))]);
    let rel = &files(&lib)[0];
    let through = mnt.join(origin_dir(&lib)).join("latest").join(rel);
    assert!(fs::read(through).expect("read") == fs::read(lib.join(rel)).expect("read"));
    fusermount_u(&mnt);
    wait_exit(pid);
    assert!(!is_mounted(&mnt));
    assert_files(&mnt, &mine);
}

#[test]
fn mount_right_after_an_unmount_stays_up() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let _cleanup = UnmountOnDrop(mnt.clone());
    let rel = files(&lib)[0].clone();
    let want = fs::read(lib.join(&rel)).expect("read");
    let through = mnt.join(origin_dir(&lib)).join("latest").join(&rel);
    let mut serving = mount_detached(t.cmd(), &mnt, &[]);
    for round in 0..20 {
        fusermount_u(&mnt);
        let pid = mount_detached(t.cmd(), &mnt, &[]);
        let returned = Instant::now();
        // Once the previous server has ended it can no longer touch the mountpoint.
        wait_exit(serving);
        // Not a synchronisation: the claim checked is that the mount is still up and served
        // half a second after `mount` said so.
        if let Some(rest) = Duration::from_millis(500).checked_sub(returned.elapsed()) {
            std::thread::sleep(rest);
        }
        assert!(is_mounted(&mnt), "round {round}: the new mount is gone");
        assert!(
            running(pid),
            "round {round}: the new server {pid} has ended"
        );
        let got = fs::read(&through).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(got == want, "round {round}: {} differs", rel.display());
        serving = pid;
    }
    fusermount_u(&mnt);
    wait_exit(serving);
    assert!(!is_mounted(&mnt));
}

#[test]
fn a_mount_that_does_not_check_out_is_taken_down() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let _cleanup = UnmountOnDrop(mnt.clone());
    // A server that mounts for real but reports a device that is not its mount's.
    let args: Vec<std::ffi::OsString> = vec![
        "-c".into(),
        "\"$0\" --repo \"$1\" -q mount --foreground --report-ready \"$2\" \
         | sed -u 's/^ready .*/ready 1/'"
            .into(),
        bin().into(),
        t.repo().into(),
        mnt.clone().into(),
    ];
    let log = t.path("mount.log");
    let err = musicfs::mount::spawn_detached(Path::new("sh"), &args, &mnt, false, &log)
        .expect_err("a mount reached at another device is not confirmed")
        .to_string();
    assert!(err.contains("another file system"), "{err}");
    assert!(!is_mounted(&mnt), "left mounted");
    // The log stays where the user was told it is.
    assert!(log.exists(), "log deleted");
    let start = Instant::now();
    while !processes_naming(&mnt).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "left running: {:?}",
            processes_naming(&mnt)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Syncs that record new snapshots of a library while the mount serves it and a reader reads
/// every file of `latest` again and again: the mount's readers and the syncs' writers share
/// the repository. Each round has a deadline; every byte read equals the library's.
#[test]
fn syncs_while_the_mount_is_read_never_hang() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let copy = t.path("copy");
    scan(&t, &lib);
    let mnt = t.mkdir("mnt");
    let _m = Mounted::start(&t, &mnt);
    let latest = mnt.join(origin_dir(&lib)).join("latest");
    let rels = files(&lib);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, latest, lib, rels) = (stop.clone(), latest.clone(), lib.clone(), rels.clone());
        std::thread::spawn(move || {
            let mut rounds = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for rel in &rels {
                    let through = fs::read(latest.join(rel))
                        .unwrap_or_else(|e| panic!("{} through the mount: {e}", rel.display()));
                    assert_eq!(
                        through,
                        fs::read(lib.join(rel)).unwrap(),
                        "{}",
                        rel.display()
                    );
                }
                rounds += 1;
            }
            rounds
        })
    };
    for round in 0..10 {
        let mut sync = t.cmd().quiet().arg("sync").arg(&lib).arg(&copy).spawn();
        let status = util::wait_timeout(&mut sync, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("round {round}: sync hung beside the mount"));
        assert!(status.success(), "round {round}: sync exited with {status}");
        // A new snapshot of the library too, while the reader reads.
        let mut scan = t.cmd().quiet().arg("scan").arg(&lib).spawn();
        let status = util::wait_timeout(&mut scan, Duration::from_secs(120))
            .unwrap_or_else(|| panic!("round {round}: scan hung beside the mount"));
        assert!(status.success(), "round {round}: scan exited with {status}");
        fs::remove_dir_all(&copy).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = reader.join().expect("the reader saw every byte right");
    assert!(rounds > 0);
}

/// Issue 14, point 6: the repository keeps every snapshot's tag chunks, so an old snapshot of
/// a file retagged at its only origin reads back exactly (kept tag chunks plus today's audio);
/// one whose audio was replaced cannot, and says so with EIO.
#[test]
fn old_snapshots_of_retagged_files_read_back_exactly() {
    use util::editors;
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let pristine = t.fixtures("pristine");
    scan(&t, &lib);
    // Every audio file retagged in place with a real tag editor; titles long enough that the
    // tag outgrows its padding, so the audio moves within the file (and Ogg's pages are laid
    // out afresh and renumbered).
    let long = "A title much longer than the one before it, ".repeat(40);
    let mut reencoded = None;
    for rel in files(&lib) {
        let path = lib.join(&rel);
        match rel.extension().and_then(|e| e.to_str()) {
            Some("mp3") if reencoded.is_none() => {
                editors::reencode_mp3(&path, &t.mkdir("scratch"));
                reencoded = Some(rel);
            }
            Some("mp3") => editors::id3v2_title(&path, &long),
            Some("flac") => editors::metaflac_title(&path, &long),
            Some("m4a") => editors::kid3_title(&path, "A new title for the MP4 track"),
            Some("ogg") | Some("opus") | Some("wav") => editors::mutagen_title(&path, &long),
            _ => {}
        }
    }
    let reencoded = reencoded.expect("the fixtures hold an MP3");
    scan(&t, &lib);

    let mnt = t.mkdir("mnt");
    let m = Mounted::start(&t, &mnt);
    let origin = mnt.join(origin_dir(&lib));
    let latest = fs::read_link(origin.join("latest")).expect("latest");
    let mut snapshots: Vec<PathBuf> = fs::read_dir(&origin)
        .expect("origin dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name() != Some("latest".as_ref()) && !p.ends_with(&latest))
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let old = snapshots.pop().expect("the first snapshot");
    let mut retagged = 0;
    for rel in files(&pristine) {
        let was = fs::read(pristine.join(&rel)).expect("pristine");
        let now = fs::read(lib.join(&rel)).expect("lib");
        assert!(
            fs::read(origin.join(&latest).join(&rel)).expect("latest") == now,
            "{}",
            rel.display()
        );
        if rel == reencoded {
            let e = fs::read(old.join(&rel)).expect_err("its old audio is nowhere");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{}: {e}", rel.display());
            continue;
        }
        retagged += usize::from(was != now);
        let got = fs::read(old.join(&rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert!(
            got == was,
            "{} differs from its first snapshot",
            rel.display()
        );
    }
    assert!(retagged >= 9, "only {retagged} files were retagged");
    drop(m);
}
