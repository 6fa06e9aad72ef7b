//! Network mounts that lose their files: a local origin on a mount that answers ESTALE or
//! ENOTCONN (an NFS server that failed over, a CIFS session that dropped) must look the path
//! up again, open the file again and read on, and never write a torn file.
//!
//! This kernel has no NFS client, so the mount is a small FUSE file system served by this
//! test process (`StaleFs`): it passes every call through to a backing directory and answers
//! chosen calls with ESTALE or ENOTCONN (a `Rule`: the N-th read of a file, its lookups, its
//! getattrs, a write to a temporary file). A handle whose read or write was failed stays
//! stale, as an NFS file handle does: only opening the path again helps. Data is never cached
//! by the kernel (`FOPEN_DIRECT_IO`, zero TTLs), so every read and lookup reaches the file
//! system. The musicfs binary runs the syncs; the file system counts what it injected and
//! what was opened, so each test proves the fault happened and the file was opened again.
//!
//! Mounting needs root and `/dev/fuse` (Debian's `fuse3` for `fusermount3`); a test that
//! cannot mount fails, naming the package.

mod util;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use util::{assert_trees_equal, list_tree, require_tool, wait_timeout, TestRepo, XorShift};

/// The calls a rule can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Lookup,
    Getattr,
    Open,
    Read,
    Readdir,
    Write,
}

/// Fail `times` calls of `op` on a file whose name contains `name`, after letting `skip` of
/// them through, with `errno`. `times == u64::MAX`: for ever.
#[derive(Clone, Debug)]
struct Rule {
    op: Op,
    name: String,
    skip: u64,
    times: u64,
    errno: i32,
}

/// What the file system was asked and what it injected, shared with the test.
#[derive(Default)]
struct Faults {
    rules: Mutex<Vec<Rule>>,
    /// Faults injected, by call.
    injected: Mutex<HashMap<Op, u64>>,
    /// Opens of each file name (the name the file had when opened).
    opens: Mutex<HashMap<OsString, u64>>,
    /// For each file name, its opens when the first fault on it was injected.
    opens_at_fault: Mutex<HashMap<OsString, u64>>,
    /// Calls refused on a handle made stale by an earlier fault.
    stale_handle_calls: AtomicU64,
}

impl Faults {
    fn set(&self, rules: Vec<Rule>) {
        *self.rules.lock().unwrap() = rules;
    }

    /// The errno to answer `op` on the file `name` with, if a rule says so.
    fn check(&self, op: Op, name: &OsStr) -> Option<i32> {
        let text = name.to_string_lossy();
        let mut rules = self.rules.lock().unwrap();
        let rule = rules
            .iter_mut()
            .find(|r| r.op == op && text.contains(r.name.as_str()))?;
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if rule.times == 0 {
            return None;
        }
        if rule.times != u64::MAX {
            rule.times -= 1;
        }
        let errno = rule.errno;
        drop(rules);
        *self.injected.lock().unwrap().entry(op).or_default() += 1;
        let opens = self.opens(name);
        self.opens_at_fault
            .lock()
            .unwrap()
            .entry(name.to_os_string())
            .or_insert(opens);
        Some(errno)
    }

    fn injected(&self, op: Op) -> u64 {
        self.injected.lock().unwrap().get(&op).copied().unwrap_or(0)
    }

    fn injected_total(&self) -> u64 {
        self.injected.lock().unwrap().values().sum()
    }

    fn opens(&self, name: &OsStr) -> u64 {
        self.opens.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    fn opens_at_fault(&self, name: &str) -> Option<u64> {
        self.opens_at_fault
            .lock()
            .unwrap()
            .get(OsStr::new(name))
            .copied()
    }
}

/// An open file of the file system.
struct Handle {
    file: File,
    name: OsString,
    /// A fault was injected on this handle: every later call on it fails so, as on a stale
    /// NFS handle.
    stale: Option<i32>,
}

/// Inode numbers of the backing paths.
#[derive(Default)]
struct Nodes {
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next: u64,
}

impl Nodes {
    fn ino(&mut self, path: &Path) -> u64 {
        if let Some(&ino) = self.inos.get(path) {
            return ino;
        }
        self.next += 1;
        let ino = self.next;
        self.paths.insert(ino, path.to_path_buf());
        self.inos.insert(path.to_path_buf(), ino);
        ino
    }

    /// Everything at or below `from` now lives at `to`.
    fn rename(&mut self, from: &Path, to: &Path) {
        if let Some(old) = self.inos.remove(to) {
            self.paths.remove(&old);
        }
        let moved: Vec<(PathBuf, u64)> = self
            .inos
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, &i)| (p.clone(), i))
            .collect();
        for (path, ino) in moved {
            // `to.join("")` would end in a slash, which names no file.
            let new = match path.strip_prefix(from).unwrap() {
                rest if rest.as_os_str().is_empty() => to.to_path_buf(),
                rest => to.join(rest),
            };
            self.inos.remove(&path);
            self.inos.insert(new.clone(), ino);
            self.paths.insert(ino, new);
        }
    }
}

/// A pass-through file system over `backing` that fails what its [`Faults`] say.
struct StaleFs {
    nodes: Mutex<Nodes>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_fh: AtomicU64,
    faults: Arc<Faults>,
}

const TTL: Duration = Duration::ZERO;

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(nsecs as u64)
    }
}

fn attr(ino: u64, m: &fs::Metadata) -> FileAttr {
    let kind = if m.is_dir() {
        FileType::Directory
    } else if m.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    FileAttr {
        ino: INodeNo(ino),
        size: m.len(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: time(m.mtime(), m.mtime_nsec()),
        kind,
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl StaleFs {
    fn new(backing: &Path, faults: Arc<Faults>) -> StaleFs {
        let mut nodes = Nodes {
            next: 1,
            ..Nodes::default()
        };
        nodes.paths.insert(1, backing.to_path_buf());
        nodes.inos.insert(backing.to_path_buf(), 1);
        StaleFs {
            nodes: Mutex::new(nodes),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            faults,
        }
    }

    fn path(&self, ino: INodeNo) -> Option<PathBuf> {
        self.nodes.lock().unwrap().paths.get(&ino.0).cloned()
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<PathBuf> {
        self.path(parent).map(|p| p.join(name))
    }

    fn entry(&self, path: &Path, reply: ReplyEntry) {
        match fs::symlink_metadata(path) {
            Ok(m) => {
                let ino = self.nodes.lock().unwrap().ino(path);
                reply.entry(&TTL, &attr(ino, &m), Generation(0))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn add_handle(&self, file: File, name: &OsStr) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        self.handles.lock().unwrap().insert(
            fh,
            Handle {
                file,
                name: name.to_os_string(),
                stale: None,
            },
        );
        *self
            .faults
            .opens
            .lock()
            .unwrap()
            .entry(name.to_os_string())
            .or_default() += 1;
        fh
    }

    /// Runs `io` on handle `fh` unless it is stale or a rule fails `op` on it (which makes it
    /// stale for good).
    fn on_handle<T>(
        &self,
        fh: FileHandle,
        op: Op,
        io: impl FnOnce(&File) -> std::io::Result<T>,
    ) -> Result<T, Errno> {
        let mut handles = self.handles.lock().unwrap();
        let handle = handles.get_mut(&fh.0).ok_or(Errno::EBADF)?;
        if let Some(e) = handle.stale {
            self.faults
                .stale_handle_calls
                .fetch_add(1, Ordering::SeqCst);
            return Err(Errno::from_i32(e));
        }
        if let Some(e) = self.faults.check(op, &handle.name) {
            handle.stale = Some(e);
            return Err(Errno::from_i32(e));
        }
        io(&handle.file).map_err(|e| errno(&e))
    }
}

impl Filesystem for StaleFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if let Some(e) = self.faults.check(Op::Lookup, name) {
            return reply.error(Errno::from_i32(e));
        }
        match self.child(parent, name) {
            Some(path) => self.entry(&path, reply),
            None => reply.error(Errno::ESTALE),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ESTALE);
        };
        if let Some(e) = self
            .faults
            .check(Op::Getattr, path.file_name().unwrap_or_default())
        {
            return reply.error(Errno::from_i32(e));
        }
        match fs::symlink_metadata(&path) {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ESTALE);
        };
        let spec = |t: Option<TimeOrNow>| match t {
            None => nix::sys::time::TimeSpec::UTIME_OMIT,
            Some(TimeOrNow::Now) => nix::sys::time::TimeSpec::UTIME_NOW,
            Some(TimeOrNow::SpecificTime(t)) => {
                let (s, n) = match t.duration_since(UNIX_EPOCH) {
                    Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
                    Err(e) => {
                        let d = e.duration();
                        let ns = -(d.as_nanos() as i128);
                        (
                            ns.div_euclid(1_000_000_000) as i64,
                            ns.rem_euclid(1_000_000_000) as i64,
                        )
                    }
                };
                nix::sys::time::TimeSpec::new(s, n)
            }
        };
        let result = (|| -> std::io::Result<()> {
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777))?;
            }
            if let Some(size) = size {
                OpenOptions::new().write(true).open(&path)?.set_len(size)?;
            }
            if atime.is_some() || mtime.is_some() {
                nix::sys::stat::utimensat(
                    nix::fcntl::AT_FDCWD,
                    &path,
                    &spec(atime),
                    &spec(mtime),
                    nix::sys::stat::UtimensatFlags::NoFollowSymlink,
                )
                .map_err(std::io::Error::from)?;
            }
            Ok(())
        })();
        match result.and_then(|()| fs::symlink_metadata(&path)) {
            Ok(m) => reply.attr(&TTL, &attr(ino.0, &m)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(path) = self.child(parent, name) else {
            return reply.error(Errno::ESTALE);
        };
        let made = fs::create_dir(&path).and_then(|()| {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777))
        });
        match made {
            Ok(()) => self.entry(&path, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.child(parent, name).map(fs::remove_file) {
            Some(Ok(())) => reply.ok(),
            Some(Err(e)) => reply.error(errno(&e)),
            None => reply.error(Errno::ESTALE),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.child(parent, name).map(fs::remove_dir) {
            Some(Ok(())) => reply.ok(),
            Some(Err(e)) => reply.error(errno(&e)),
            None => reply.error(Errno::ESTALE),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (Some(from), Some(to)) = (self.child(parent, name), self.child(newparent, newname))
        else {
            return reply.error(Errno::ESTALE);
        };
        match fs::rename(&from, &to) {
            Ok(()) => {
                self.nodes.lock().unwrap().rename(&from, &to);
                reply.ok()
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ESTALE);
        };
        let name = path.file_name().unwrap_or_default().to_os_string();
        if let Some(e) = self.faults.check(Op::Open, &name) {
            return reply.error(Errno::from_i32(e));
        }
        let access = flags.0 & libc::O_ACCMODE;
        let opened = OpenOptions::new()
            .read(access != libc::O_WRONLY)
            .write(access != libc::O_RDONLY)
            .open(&path);
        match opened {
            Ok(file) => {
                let fh = self.add_handle(file, &name);
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(path) = self.child(parent, name) else {
            return reply.error(Errno::ESTALE);
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        } else {
            options.create(true);
        }
        let created = options
            .open(&path)
            .and_then(|f| Ok((f, fs::metadata(&path)?)));
        match created {
            Ok((file, meta)) => {
                let ino = self.nodes.lock().unwrap().ino(&path);
                let fh = self.add_handle(file, name);
                reply.created(
                    &TTL,
                    &attr(ino, &meta),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::FOPEN_DIRECT_IO,
                )
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let read = self.on_handle(fh, Op::Read, |file| {
            let mut buf = vec![0u8; size as usize];
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            Ok(buf)
        });
        match read {
            Ok(bytes) => reply.data(&bytes),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.on_handle(fh, Op::Write, |file| file.write_all_at(data, offset)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut handles = self.handles.lock().unwrap();
        match handles.get_mut(&fh.0) {
            Some(Handle { stale: Some(e), .. }) => reply.error(Errno::from_i32(*e)),
            Some(handle) => match handle.file.sync_all() {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            },
            None => reply.error(Errno::EBADF),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.handles.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(dir) = self.path(ino) else {
            return reply.error(Errno::ESTALE);
        };
        if let Some(e) = self
            .faults
            .check(Op::Readdir, dir.file_name().unwrap_or_default())
        {
            return reply.error(Errno::from_i32(e));
        }
        let mut names: Vec<(OsString, FileType)> = match fs::read_dir(&dir) {
            Ok(listing) => listing
                .filter_map(Result::ok)
                .map(|e| {
                    let kind = match e.file_type() {
                        Ok(t) if t.is_dir() => FileType::Directory,
                        Ok(t) if t.is_symlink() => FileType::Symlink,
                        _ => FileType::RegularFile,
                    };
                    (e.file_name(), kind)
                })
                .collect(),
            Err(e) => return reply.error(errno(&e)),
        };
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut nodes = self.nodes.lock().unwrap();
        let mut all = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for (name, kind) in names {
            all.push((nodes.ino(&dir.join(&name)), kind, name));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }
}

/// `StaleFs` mounted on a directory of a scratch tree, over another.
struct Mount {
    faults: Arc<Faults>,
    /// The backing directory: the truth the mount shows.
    backing: PathBuf,
    /// Where it is mounted.
    point: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl Mount {
    fn new(t: &TestRepo, name: &str) -> Mount {
        let backing = t.mkdir(&format!("{name}-backing"));
        let point = t.mkdir(&format!("{name}-mnt"));
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: install Debian's fuse3 and load the fuse module"
        );
        require_tool("fusermount3", "fuse3");
        let faults = Arc::new(Faults::default());
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("stalefs".into()),
            fuser::MountOption::Subtype("stalefs".into()),
        ];
        config.n_threads = Some(4);
        let session = fuser::spawn_mount(StaleFs::new(&backing, faults.clone()), &point, &config)
            .unwrap_or_else(|e| panic!("mounting the test file system on {point:?}: {e}"));
        let start = Instant::now();
        while !util::mount::is_mounted(&point) {
            assert!(start.elapsed() < Duration::from_secs(20), "mount came up");
            std::thread::sleep(Duration::from_millis(10));
        }
        Mount {
            faults,
            backing,
            point,
            session: Some(session),
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.point, nix::mount::MntFlags::MNT_DETACH);
        drop(self.session.take());
    }
}

/// Writes `files` files of random bytes (64 KiB to 1.5 MiB) under `dir`, in two albums,
/// named `NN.bin`; returns their names.
fn make_library(dir: &Path, files: usize, seed: u64) -> Vec<String> {
    let mut rng = XorShift::new(seed);
    let mut names = Vec::new();
    for i in 0..files {
        let album = dir.join(format!("album{}", i % 2));
        fs::create_dir_all(&album).unwrap();
        let size = 64 * 1024 + rng.below(1536 * 1024) as usize;
        let mut bytes = vec![0u8; size];
        for chunk in bytes.chunks_mut(8) {
            let word = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        let name = format!("{i:02}.bin");
        fs::write(album.join(&name), bytes).unwrap();
        names.push(name);
    }
    names
}

/// Runs `musicfs sync SRC DST` with a hang guard (not a timing assertion: a sync that waits
/// for ever on a dead mount must fail the test, not stall it).
fn sync(t: &TestRepo, src: &Path, dst: &Path) -> std::process::Output {
    run(t.cmd().arg("sync").arg(src).arg(dst))
}

/// Runs `cmd` with the hang guard.
fn run(cmd: &util::Musicfs) -> std::process::Output {
    let mut child = cmd
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run musicfs");
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = wait_timeout(&mut child, Duration::from_secs(300))
        .unwrap_or_else(|| panic!("musicfs still running after 300 s"));
    std::process::Output {
        status,
        stdout: out.join().unwrap().into_bytes(),
        stderr: err.join().unwrap().into_bytes(),
    }
}

fn shown(out: &std::process::Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn rule(op: Op, name: &str, skip: u64, times: u64, errno: i32) -> Rule {
    Rule {
        op,
        name: name.into(),
        skip,
        times,
        errno,
    }
}

/// No temporary file anywhere under `dir`.
fn assert_no_temporary(dir: &Path) {
    for path in list_tree(dir) {
        let name = path.file_name().unwrap_or_default().as_bytes();
        assert!(
            !musicfs::origin::is_temporary(name),
            "temporary file left: {path:?}"
        );
    }
}

#[test]
fn a_read_that_goes_stale_opens_the_file_again_and_the_sync_is_exact() {
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    let names = make_library(&mount.backing, 6, 1);
    let dst = t.path("dst");
    // The third read of one file and the first of another fail, and their handles stay stale.
    mount.faults.set(vec![
        rule(Op::Read, &names[1], 2, 1, libc::ESTALE),
        rule(Op::Read, &names[4], 0, 1, libc::ENOTCONN),
    ]);
    let out = sync(&t, &mount.point, &dst);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        shown(&out)
    );
    assert_trees_equal(&mount.backing, &dst);
    assert_eq!(mount.faults.injected(Op::Read), 2, "both faults injected");
    for name in [&names[1], &names[4]] {
        let at_fault = mount.faults.opens_at_fault(name).expect("fault on it");
        assert!(
            mount.faults.opens(OsStr::new(name)) > at_fault,
            "{name} opened again after its handle went stale ({at_fault} opens before)"
        );
    }
    assert_no_temporary(&dst);
}

#[test]
fn stale_lookups_getattrs_and_listings_are_looked_up_again() {
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    let names = make_library(&mount.backing, 6, 2);
    let dst = t.path("dst");
    // More failures than the kernel's own one retry of a stale lookup absorbs.
    mount.faults.set(vec![
        rule(Op::Lookup, &names[0], 0, 3, libc::ESTALE),
        rule(Op::Getattr, &names[2], 0, 3, libc::ESTALE),
        rule(Op::Open, &names[3], 0, 3, libc::ENOTCONN),
        rule(Op::Readdir, "album1", 0, 1, libc::ENOTCONN),
    ]);
    let out = sync(&t, &mount.point, &dst);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        shown(&out)
    );
    assert_trees_equal(&mount.backing, &dst);
    for op in [Op::Lookup, Op::Getattr, Op::Open, Op::Readdir] {
        assert!(mount.faults.injected(op) > 0, "{op:?} fault injected");
    }
    // The file whose opens failed was opened in the end (after the faults).
    assert!(mount.faults.opens(OsStr::new(&names[3])) > 0);
}

#[test]
fn a_file_that_changes_on_the_server_while_stale_is_not_mixed() {
    // The library level: a LocalOrigin reading through the mount, its handle goes stale, and
    // meanwhile the file was rewritten on the server: the read fails saying so.
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    let names = make_library(&mount.backing, 2, 3);
    let rel = format!("album1/{}", names[1]);
    let origin = musicfs::origin::LocalOrigin::open(&mount.point, false).unwrap();
    let origin: &dyn musicfs::origin::Origin = &origin;
    let backing = mount.backing.join(&rel);
    let mut bytes = fs::read(&backing).unwrap();
    let mut file = origin.open(rel.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // The file's tail first: the read-ahead block then holds it, and the read at 0 below
    // goes to the file.
    let tail = bytes.len() as u64 - 4096;
    file.read_exact_at(&mut buf, tail).unwrap();
    bytes.extend_from_slice(b"more");
    fs::write(&backing, &bytes).unwrap();
    mount
        .faults
        .set(vec![rule(Op::Read, &names[1], 0, 1, libc::ESTALE)]);
    let e = file.read_exact_at(&mut buf, 0).unwrap_err();
    assert!(e.to_string().contains("changed"), "{e}");
    assert_eq!(mount.faults.injected(Op::Read), 1);
    // Unchanged, the same read goes on in the file opened again.
    let mut file = origin.open(rel.as_bytes()).unwrap();
    mount
        .faults
        .set(vec![rule(Op::Read, &names[1], 1, 1, libc::ESTALE)]);
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut all).unwrap();
    assert_eq!(all, bytes);
    assert_eq!(mount.faults.injected(Op::Read), 2);
}

#[test]
fn a_fault_that_persists_ends_the_sync_naming_the_file_and_loses_nothing() {
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    let names = make_library(&mount.backing, 4, 4);
    let dst = t.path("dst");
    let out = sync(&t, &mount.point, &dst);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        shown(&out)
    );
    let before = fs::read(dst.join("album1").join(&names[1])).unwrap();
    // Two files change at the source; one of them can never be read again.
    for (i, name) in [(0, &names[0]), (1, &names[1])] {
        let path = mount.backing.join(format!("album{i}")).join(name);
        let mut bytes = fs::read(&path).unwrap();
        bytes[100] ^= 0xff;
        bytes.extend_from_slice(b"new");
        fs::write(&path, bytes).unwrap();
    }
    mount
        .faults
        .set(vec![rule(Op::Read, &names[1], 0, u64::MAX, libc::ENOTCONN)]);
    let out = sync(&t, &mount.point, &dst);
    let text = shown(&out);
    assert!(!out.status.success(), "{text}");
    assert_ne!(out.status.code(), Some(0), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one problem: {text}");
    assert!(
        stderr.contains(&format!(
            "SRC {}",
            mount.point.join("album1").join(&names[1]).display()
        )) && stderr.contains("not connected"),
        "{text}"
    );
    assert!(mount.faults.injected(Op::Read) > 1, "retried");
    // The readable change went through; the unreadable file is the old one, whole.
    assert_eq!(
        fs::read(dst.join("album0").join(&names[0])).unwrap(),
        fs::read(mount.backing.join("album0").join(&names[0])).unwrap()
    );
    assert_eq!(
        fs::read(dst.join("album1").join(&names[1])).unwrap(),
        before
    );
    assert_no_temporary(&dst);
    // Once the mount answers again, the next sync finishes the job.
    mount.faults.set(Vec::new());
    let out = sync(&t, &mount.point, &dst);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        shown(&out)
    );
    assert_trees_equal(&mount.backing, &dst);
}

/// The second write to the first temporary file fails, and its handle stays stale.
fn stale_second_write_to_first_temporary(mount: &Mount) {
    mount.faults.set(vec![rule(
        Op::Write,
        musicfs::origin::TEMP_PREFIX,
        1,
        1,
        libc::ESTALE,
    )]);
}

/// The same file, with the same mode and mtime, in `src` and `dst`: a destination that is not
/// empty, so a sync writes through its apply step, not through a cold initial sync's copies.
fn one_file_in_common(src: &Path, dst: &Path) {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for dir in [src, dst] {
        let notes = dir.join("notes.txt");
        fs::write(&notes, b"liner notes\n").unwrap();
        fs::set_permissions(&notes, fs::Permissions::from_mode(0o644)).unwrap();
        util::set_mtime(&notes, when);
    }
}

#[test]
fn a_destination_whose_temporary_file_goes_stale_never_gets_a_torn_file() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let names = make_library(&src, 6, 5);
    let mount = Mount::new(&t, "dst");
    one_file_in_common(&src, &mount.backing);
    stale_second_write_to_first_temporary(&mount);
    let out = sync(&t, &src, &mount.point);
    let text = shown(&out);
    assert_eq!(mount.faults.injected(Op::Write), 1, "{text}");
    // The file the fault hit is reported, and every file under a final name is whole.
    assert_eq!(out.status.code(), Some(3), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "one problem: {text}");
    assert!(
        stderr.contains("DST ") && stderr.contains(".bin: stale file handle"),
        "{text}"
    );
    let mut missing = 0;
    for (i, name) in names.iter().enumerate() {
        let rel = Path::new(&format!("album{}", i % 2)).join(name);
        match fs::read(mount.backing.join(&rel)) {
            Ok(bytes) => assert_eq!(bytes, fs::read(src.join(&rel)).unwrap(), "{rel:?}"),
            Err(_) => missing += 1,
        }
    }
    assert_eq!(missing, 1, "only the file that failed is missing");
    assert_no_temporary(&mount.backing);
    let out = sync(&t, &src, &mount.point);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        shown(&out)
    );
    assert_trees_equal(&src, &mount.backing);
}

/// A cold initial sync (an empty destination) copies each file while the scan reads it: a
/// copy whose temporary file goes stale is thrown away and the file written again by the
/// apply step, whole, with nothing to report.
#[test]
fn a_cold_copy_whose_temporary_file_goes_stale_is_written_again_whole() {
    let t = TestRepo::new();
    let src = t.mkdir("src");
    make_library(&src, 6, 9);
    let mount = Mount::new(&t, "dst");
    stale_second_write_to_first_temporary(&mount);
    let out = sync(&t, &src, &mount.point);
    let text = shown(&out);
    assert_eq!(mount.faults.injected(Op::Write), 1, "{text}");
    assert!(out.status.success() && out.stderr.is_empty(), "{text}");
    assert_no_temporary(&mount.backing);
    assert_trees_equal(&src, &mount.backing);
}

#[test]
fn a_mount_dead_from_the_start_is_unreachable() {
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    make_library(&mount.backing, 2, 7);
    let dst = t.path("dst");
    // Every question about the root (its getattr) fails, for ever.
    mount.faults.set(vec![rule(
        Op::Getattr,
        "src-backing",
        0,
        u64::MAX,
        libc::ENOTCONN,
    )]);
    let out = sync(&t, &mount.point, &dst);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not connected"),
        "{text}"
    );
    assert!(mount.faults.injected(Op::Getattr) > 1, "retried: {text}");
    assert!(!dst.exists() || list_tree(&dst).is_empty(), "{text}");
}

#[test]
fn stress_many_syncs_with_faults_at_random_places() {
    // 50 syncs, each from a new repository (so every file is read), each with one or two
    // faults at random places: a read, a lookup, a getattr or an open of a random file,
    // after a random number of calls, once to three times. Every sync must end exact.
    let t = TestRepo::new();
    let mount = Mount::new(&t, "src");
    let names = make_library(&mount.backing, 6, 6);
    let mut rng = XorShift::new(0x5eed);
    let deadline = Instant::now() + Duration::from_secs(900);
    let ops = [Op::Read, Op::Lookup, Op::Getattr, Op::Open];
    let mut injected = 0;
    for round in 0..50 {
        assert!(
            Instant::now() < deadline,
            "round {round}: past the deadline"
        );
        let mut rules = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let op = ops[rng.below(ops.len() as u64) as usize];
            let name = &names[rng.below(names.len() as u64) as usize];
            let errno = match rng.below(2) {
                0 => libc::ESTALE,
                _ => libc::ENOTCONN,
            };
            rules.push(rule(op, name, rng.below(4), 1 + rng.below(3), errno));
        }
        let before = mount.faults.injected_total();
        mount.faults.set(rules.clone());
        let repo = t.path(&format!("repo{round}"));
        let dst = t.path(&format!("dst{round}"));
        let home = t.path("home");
        let out = run(util::Musicfs::new(&repo, &home)
            .arg("sync")
            .arg(&mount.point)
            .arg(&dst));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "round {round}, rules {rules:?}\n{}",
            shown(&out)
        );
        assert_trees_equal(&mount.backing, &dst);
        injected += mount.faults.injected_total() - before;
        fs::remove_dir_all(&dst).unwrap();
        fs::remove_dir_all(&repo).unwrap();
    }
    assert!(injected >= 50, "faults injected: {injected}");
}
