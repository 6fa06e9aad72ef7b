//! Shared helpers for the CLI integration tests, in the style of ripgrep's
//! `tests/util.rs`: a scratch directory with its own repository, a command
//! builder that runs the real binary against it, and tree comparison helpers.
#![allow(dead_code)]

pub mod editors;
pub mod ext4;
pub mod mount;
pub mod store;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// Path of the binary under test (`MUSICFS_TEST_BIN` overrides it: `scripts/test.sh` runs a
/// subset of the suite as an unprivileged user on copies it can reach).
pub fn bin() -> PathBuf {
    std::env::var_os("MUSICFS_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_musicfs")))
}

/// Root of the crate, for fixtures and scripts (`MUSICFS_TEST_MANIFEST_DIR` overrides it, as
/// `MUSICFS_TEST_BIN` does the binary).
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("MUSICFS_TEST_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The committed audio fixtures.
pub fn fixtures_audio() -> PathBuf {
    manifest_dir().join("fixtures").join("audio")
}

/// A scratch directory holding a private musicfs repository (`<root>/repo`)
/// plus any source/destination trees a test wants to create.
pub struct TestRepo {
    root: tempfile::TempDir,
    repo: PathBuf,
}

impl TestRepo {
    /// A scratch directory with a new repository in it (`musicfs init`).
    pub fn new() -> TestRepo {
        let t = TestRepo::without_repository();
        init_repository(&t.repo);
        t
    }

    /// A scratch directory whose `repo()` does not exist yet.
    pub fn without_repository() -> TestRepo {
        let root = tempfile::Builder::new()
            .prefix("musicfs-test-")
            .tempdir()
            .expect("create temp dir");
        let repo = root.path().join("repo");
        TestRepo { root, repo }
    }

    /// The scratch directory.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The repository directory passed with `--repo`.
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// `root/name`, not created.
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Create `root/name` (and parents) and return it.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Copy the audio fixtures to `root/name` (preserving modes and mtimes).
    pub fn fixtures(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        copy_tree(&fixtures_audio(), &p);
        p
    }

    /// A command builder for the binary with `--repo` set to this repository.
    pub fn cmd(&self) -> Musicfs {
        Musicfs::new(&self.repo, self.root.path())
    }

    /// A scratch directory that belongs to the unprivileged user `nobody`, for tests of what
    /// file modes do to a normal user (they bind nobody when the tests run as root).
    pub fn unprivileged() -> TestRepo {
        let t = TestRepo::new();
        if nix::unistd::geteuid().is_root() {
            // The scratch directory and the repository belong to the user who runs the
            // commands.
            std::os::unix::fs::chown(t.root(), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
            for entry in walkdir::WalkDir::new(t.repo()) {
                let entry = entry.unwrap();
                std::os::unix::fs::lchown(entry.path(), Some(NOBODY.0), Some(NOBODY.1)).unwrap();
            }
        }
        t
    }

    /// A command builder that runs the binary as `nobody` (see [`unprivileged_command`]),
    /// from a copy in the scratch directory: the build's own may lie where `nobody` cannot
    /// reach (a checkout under `/root`).
    pub fn cmd_unprivileged(&self) -> Musicfs {
        let copy = self.root().join("bin/musicfs");
        if !copy.exists() {
            fs::create_dir_all(copy.parent().unwrap()).unwrap();
            fs::copy(bin(), &copy).unwrap();
            fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = self.cmd();
        cmd.unprivileged = true;
        cmd.program = Some(copy);
        cmd
    }

    /// Runs `script` with `sh -e` as `nobody` in the scratch directory, asserting success:
    /// trees built this way belong to the user the unprivileged commands run as.
    pub fn sh_unprivileged(&self, script: &str) {
        let mut c = unprivileged_command("sh");
        c.arg("-ec").arg(script).current_dir(self.root());
        run_ok(&mut c);
    }
}

/// uid and gid of `nobody` and `nogroup` on Debian.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// `program` run as the unprivileged user `nobody` when the tests run as root (through
/// `setpriv`, from util-linux), else as the current user, who is unprivileged already.
pub fn unprivileged_command(program: impl AsRef<OsStr>) -> Command {
    if nix::unistd::geteuid().is_root() {
        let mut c = Command::new(require_tool("setpriv", "util-linux"));
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Creates a repository at `dir` unless one is there: a location named by `--repo` must hold
/// one (only the default location is created implicitly).
pub fn init_repository(dir: &Path) {
    musicfs::repo::Repository::init(dir)
        .unwrap_or_else(|e| panic!("musicfs init {}: {e}", dir.display()));
}

/// Builder for one invocation of the binary.
pub struct Musicfs {
    repo: PathBuf,
    home: PathBuf,
    globals: Vec<OsString>,
    args: Vec<OsString>,
    json: bool,
    unprivileged: bool,
    program: Option<PathBuf>,
}

impl Musicfs {
    /// The binary with `--repo repo` (created first if it does not exist) and `home` as its
    /// home directory.
    pub fn new(repo: &Path, home: &Path) -> Musicfs {
        if !repo.exists() {
            init_repository(repo);
        }
        Musicfs::with_repo_as_is(repo, home)
    }

    /// Like [`Musicfs::new`], without creating the repository.
    pub fn with_repo_as_is(repo: &Path, home: &Path) -> Musicfs {
        Musicfs {
            repo: repo.to_path_buf(),
            home: home.to_path_buf(),
            globals: Vec::new(),
            args: Vec::new(),
            json: false,
            unprivileged: false,
            program: None,
        }
    }

    pub fn arg<S: AsRef<OsStr>>(&mut self, a: S) -> &mut Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Add `--json` (as a global flag, before the subcommand).
    pub fn json(&mut self) -> &mut Self {
        if !self.json {
            self.json = true;
            self.globals.push("--json".into());
        }
        self
    }

    /// Add `-q`.
    pub fn quiet(&mut self) -> &mut Self {
        self.globals.push("-q".into());
        self
    }

    /// The `std::process::Command` that would be run.
    pub fn command(&self) -> Command {
        let program = self.program.clone().unwrap_or_else(bin);
        let mut c = if self.unprivileged {
            unprivileged_command(program)
        } else {
            Command::new(program)
        };
        c.arg("--repo").arg(&self.repo);
        c.args(&self.globals);
        c.args(&self.args);
        // Never let the binary find the user's repository or configuration.
        for var in [
            "MUSICFS_REPO",
            "MUSICFS_CONFIG",
            "MUSICFS_RSH",
            "MUSICFS_TIMEOUT",
            "MUSICFS_RETRIES",
            "MUSICFS_RETRY_FOR",
            "MUSICFS_BWLIMIT",
            "MUSICFS_REMOTE_MUSICFS",
            "MUSICFS_DEPLOY_AGENT",
            "MUSICFS_LOG_FILE",
        ] {
            c.env_remove(var);
        }
        c.env_remove("SSH_AUTH_SOCK");
        c.env("HOME", &self.home);
        c.env("XDG_CONFIG_HOME", self.home.join(".config"));
        c.env("XDG_DATA_HOME", self.home.join(".local/share"));
        c.env("XDG_CACHE_HOME", self.home.join(".cache"));
        // Left unset: the default under HOME (~/.local/state) is what tests see.
        c.env_remove("XDG_STATE_HOME");
        c.env("NO_COLOR", "1");
        c.stdin(Stdio::null());
        c
    }

    fn describe(&self) -> String {
        let mut s = format!("musicfs --repo {}", self.repo.display());
        for a in self.globals.iter().chain(self.args.iter()) {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Run and return the output, whatever the exit code.
    pub fn output(&self) -> Output {
        busy_retried(|| self.command().output())
            .unwrap_or_else(|e| panic!("failed to run {}: {e}", self.describe()))
    }

    /// Run and assert the exit code; returns the output.
    pub fn assert_exit(&self, code: i32) -> Output {
        let out = self.output();
        if out.status.code() != Some(code) {
            panic!(
                "\n{}\nexpected exit code {code}, got {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
                self.describe(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    /// Run, assert exit 0, return stdout.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.assert_exit(0).stdout).into_owned()
    }

    /// Run with `--json`, assert exit 0 and return the parsed JSON lines.
    pub fn json_lines(&mut self) -> Vec<Value> {
        self.json();
        let out = self.assert_exit(0);
        parse_json_lines(&out.stdout)
    }

    /// Run with `--json`, assert exit 0 and return the last line, which must
    /// be `{"type":"summary",...}`.
    pub fn summary(&mut self) -> Value {
        self.json();
        let out = self.assert_exit(0);
        summary_of(&out)
    }

    /// Spawn without waiting (stdout discarded so a full pipe cannot block it; stderr piped).
    pub fn spawn(&self) -> Child {
        busy_retried(|| {
            let mut c = self.command();
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            c.spawn()
        })
        .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", self.describe()))
    }
}

/// Runs `start` again while it fails with ETXTBSY. A binary just copied for the unprivileged
/// runs can be "busy" for a moment: a child another test thread forked while the copy's
/// descriptor was open holds that descriptor until it execs.
fn busy_retried<T>(mut start: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.raw_os_error() == Some(26) && tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Parse every non-empty stdout line as JSON.
pub fn parse_json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"))
        })
        .collect()
}

/// The `{"type":"summary"}` last line of a `--json` run.
pub fn summary_of(out: &Output) -> Value {
    let lines = parse_json_lines(&out.stdout);
    let last = lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no JSON output\n--- stderr ---\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        last["type"], "summary",
        "last JSON line is not a summary: {last}"
    );
    last
}

/// Unsigned integer field of a summary, panicking with context if absent.
pub fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("field {key:?} missing or not an unsigned integer in {v}"))
}

/// Wait for a child with a deadline; kill it and return None on timeout.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if start.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// --- filesystem helpers -------------------------------------------------------

/// Recursively copy `src` to `dst` (which must not exist): files, dirs and
/// symlinks, preserving permission bits and mtimes (dir mtimes set last).
pub fn copy_tree(src: &Path, dst: &Path) {
    let meta = fs::symlink_metadata(src).unwrap();
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src).unwrap(), dst).unwrap();
    } else if ft.is_dir() {
        fs::create_dir_all(dst).unwrap();
        let mut entries: Vec<_> = fs::read_dir(src)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        entries.sort();
        for name in entries {
            copy_tree(&src.join(&name), &dst.join(&name));
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).unwrap();
        set_mtime(dst, meta.modified().unwrap());
    } else {
        fs::copy(src, dst).unwrap();
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).unwrap();
        set_mtime(dst, meta.modified().unwrap());
    }
}

/// Set the mtime of a file or directory (does not follow... a symlink is an error).
pub fn set_mtime(path: &Path, t: SystemTime) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(t)
        .unwrap_or_else(|e| panic!("set mtime {}: {e}", path.display()));
}

/// Set the mtime of every file under `dir` to `age` before now: a library nobody has touched
/// for a while, whose files no scan needs to read twice.
pub fn age_files(dir: &Path, age: std::time::Duration) {
    let then = SystemTime::now() - age;
    for (_, path) in files_in(dir) {
        set_mtime(&path, then);
    }
}

pub fn mtime(path: &Path) -> SystemTime {
    fs::symlink_metadata(path).unwrap().modified().unwrap()
}

/// Flip one byte of a file in place, keeping its size and restoring its mtime.
pub fn flip_byte_keep_mtime(path: &Path, offset: u64) {
    let before = mtime(path);
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.read_exact(&mut b).unwrap();
    b[0] ^= 0xFF;
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(&b).unwrap();
    f.set_modified(before).unwrap();
    drop(f);
    assert_eq!(mtime(path), before, "mtime not restored");
}

/// All entries under `root`, relative, sorted (files, dirs and symlinks; the
/// root itself excluded). Does not follow symlinks.
///
/// For a tree nothing changes meanwhile: an entry that goes between the listing of its
/// directory and its stat panics. A tree a running process writes to is watched with
/// [`holds_a_file`].
pub fn list_tree(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if fs::symlink_metadata(&p).unwrap().file_type().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// Whether a regular file (a temporary one included) is anywhere under `root`, for a tree
/// another process is writing: entries that vanish while it looks are passed over.
pub fn holds_a_file(root: &Path) -> bool {
    let Ok(entries) = fs::read_dir(root) else {
        return false;
    };
    entries.flatten().any(|e| match e.file_type() {
        Ok(t) if t.is_dir() => holds_a_file(&e.path()),
        Ok(t) => t.is_file(),
        Err(_) => false,
    })
}

/// Regular files under `root` (relative path → absolute path).
pub fn files_in(root: &Path) -> BTreeMap<PathBuf, PathBuf> {
    list_tree(root)
        .into_iter()
        .filter(|r| {
            fs::symlink_metadata(root.join(r))
                .unwrap()
                .file_type()
                .is_file()
        })
        .map(|r| {
            let abs = root.join(&r);
            (r, abs)
        })
        .collect()
}

/// Total size of regular files under `root`.
pub fn tree_bytes(root: &Path) -> u64 {
    files_in(root)
        .values()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

/// What [`assert_trees_equal_with`] compares.
#[derive(Clone, Copy, Debug)]
pub struct TreeCmp {
    pub file_mtimes: bool,
    pub dir_mtimes: bool,
    pub modes: bool,
    /// Compare mtimes to the whole second only (SFTP carries seconds).
    pub mtime_seconds_only: bool,
}

impl Default for TreeCmp {
    fn default() -> Self {
        TreeCmp {
            file_mtimes: true,
            dir_mtimes: false,
            modes: true,
            mtime_seconds_only: false,
        }
    }
}

/// Differences between two trees, as human-readable lines (empty: equal).
pub fn tree_diff(a: &Path, b: &Path, opts: TreeCmp) -> Vec<String> {
    let mut diffs = Vec::new();
    let la = list_tree(a);
    let lb = list_tree(b);
    let sa: std::collections::BTreeSet<_> = la.iter().cloned().collect();
    let sb: std::collections::BTreeSet<_> = lb.iter().cloned().collect();
    for only in sa.difference(&sb) {
        diffs.push(format!("only in {}: {}", a.display(), only.display()));
    }
    for only in sb.difference(&sa) {
        diffs.push(format!("only in {}: {}", b.display(), only.display()));
    }
    let mut roots = vec![PathBuf::new()];
    roots.extend(sa.intersection(&sb).cloned());
    for rel in roots {
        let (pa, pb) = (a.join(&rel), b.join(&rel));
        let name = if rel.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            rel.clone()
        };
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        let (ta, tb) = (ma.file_type(), mb.file_type());
        let kind = |t: fs::FileType| {
            if t.is_symlink() {
                "symlink"
            } else if t.is_dir() {
                "dir"
            } else if t.is_file() {
                "file"
            } else {
                "other"
            }
        };
        if kind(ta) != kind(tb) {
            diffs.push(format!(
                "{}: type {} vs {}",
                name.display(),
                kind(ta),
                kind(tb)
            ));
            continue;
        }
        if ta.is_symlink() {
            let (la, lb) = (fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap());
            if la != lb {
                diffs.push(format!(
                    "{}: symlink target {:?} vs {:?}",
                    name.display(),
                    la,
                    lb
                ));
            }
            continue;
        }
        if opts.modes && (ma.mode() & 0o7777) != (mb.mode() & 0o7777) {
            diffs.push(format!(
                "{}: mode {:o} vs {:o}",
                name.display(),
                ma.mode() & 0o7777,
                mb.mode() & 0o7777
            ));
        }
        let check_mtime = if ta.is_dir() {
            opts.dir_mtimes
        } else {
            opts.file_mtimes
        };
        let nsec = |m: &fs::Metadata| {
            if opts.mtime_seconds_only {
                0
            } else {
                m.mtime_nsec()
            }
        };
        if check_mtime && (ma.mtime(), nsec(&ma)) != (mb.mtime(), nsec(&mb)) {
            diffs.push(format!(
                "{}: mtime {}.{:09} vs {}.{:09}",
                name.display(),
                ma.mtime(),
                ma.mtime_nsec(),
                mb.mtime(),
                mb.mtime_nsec()
            ));
        }
        if ta.is_file() {
            if ma.len() != mb.len() {
                diffs.push(format!(
                    "{}: size {} vs {}",
                    name.display(),
                    ma.len(),
                    mb.len()
                ));
            } else if fs::read(&pa).unwrap() != fs::read(&pb).unwrap() {
                diffs.push(format!("{}: contents differ", name.display()));
            }
        }
    }
    diffs
}

/// Assert `a` and `b` hold the same entries, file bytes, mode bits, file
/// mtimes (to the nanosecond) and symlink targets.
pub fn assert_trees_equal(a: &Path, b: &Path) {
    assert_trees_equal_with(a, b, TreeCmp::default());
}

pub fn assert_trees_equal_with(a: &Path, b: &Path, opts: TreeCmp) {
    let diffs = tree_diff(a, b, opts);
    if !diffs.is_empty() {
        let n = diffs.len();
        let shown: Vec<_> = diffs.into_iter().take(30).collect();
        panic!(
            "trees differ: {} vs {} ({n} differences)\n  {}",
            a.display(),
            b.display(),
            shown.join("\n  ")
        );
    }
}

// --- genlib.py ------------------------------------------------------------------

/// Run `python3 scripts/genlib.py ARGS...`, asserting success.
pub fn genlib<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let script = manifest_dir().join("scripts").join("genlib.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3 scripts/genlib.py");
    assert!(
        out.status.success(),
        "genlib.py failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `genlib.py create DIR --files N --seed S --mean-size BYTES`.
pub fn genlib_create(dir: &Path, files: usize, seed: u64, mean_size: u64) {
    genlib([
        OsStr::new("create"),
        dir.as_os_str(),
        OsStr::new("--files"),
        OsStr::new(&files.to_string()),
        OsStr::new("--seed"),
        OsStr::new(&seed.to_string()),
        OsStr::new("--mean-size"),
        OsStr::new(&mean_size.to_string()),
    ]);
}

/// `genlib.py retag DIR --fraction F --seed S`.
pub fn genlib_retag(dir: &Path, fraction: f64, seed: u64) {
    genlib([
        OsStr::new("retag"),
        dir.as_os_str(),
        OsStr::new("--fraction"),
        OsStr::new(&fraction.to_string()),
        OsStr::new("--seed"),
        OsStr::new(&seed.to_string()),
    ]);
}

/// `genlib.py reorganise DIR --layout LAYOUT` (`genre` or `artist`).
pub fn genlib_reorganise(dir: &Path, layout: &str) {
    genlib([
        OsStr::new("reorganise"),
        dir.as_os_str(),
        OsStr::new("--layout"),
        OsStr::new(layout),
    ]);
}

/// Tiny deterministic PRNG (xorshift64*), so tests need no `rand`.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        let mut s = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(0x2545_F491_4F6C_DD1D);
        if s == 0 {
            s = 1;
        }
        let mut x = XorShift(s);
        x.next_u64();
        x
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// --- external tools (real tag editors, ffmpeg, Python) -----------------------------

/// The absolute path of `program` on `PATH`, if any.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| {
                fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    })
}

/// Fail (never skip) when `program` is missing, naming the Debian package that has it.
pub fn require_tool(program: &str, debian_package: &str) -> PathBuf {
    find_on_path(program)
        .unwrap_or_else(|| panic!("{program} not found: apt-get install {debian_package}"))
}

/// The Python interpreter for helper scripts: `MUSICFS_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("MUSICFS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Fail unless the Python from [`python`] can import mutagen.
pub fn require_mutagen() {
    let py = python();
    require_tool(&py, "python3");
    let ok = Command::new(&py)
        .args(["-c", "import mutagen"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "python module mutagen not found for {py}: pip install mutagen (set MUSICFS_PYTHON to use another Python)"
    );
}

/// Run a command, assert it succeeded, return its output; the failure message shows the
/// command line, exit status and both streams.
pub fn run_ok(cmd: &mut Command) -> Output {
    let line = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("failed to run {line}: {e}"));
    if !out.status.success() {
        let shorten = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            s.chars().take(4000).collect::<String>()
        };
        panic!(
            "\n{}\nexited with {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
            line.chars().take(600).collect::<String>(),
            out.status,
            shorten(&out.stdout),
            shorten(&out.stderr)
        );
    }
    out
}

/// `bash scripts/gen-audio-lib.sh DIR ARGS...` (real audio encoded by ffmpeg), asserting
/// success. Needs ffmpeg, and mutagen for Ogg and WAV covers.
pub fn gen_audio_lib<I, S>(dir: &Path, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    require_tool("ffmpeg", "ffmpeg");
    let script = manifest_dir().join("scripts").join("gen-audio-lib.sh");
    run_ok(Command::new("bash").arg(script).arg(dir).args(args));
}

/// Regular files under `root`, absolute, sorted by relative path.
pub fn sorted_files(root: &Path) -> Vec<PathBuf> {
    files_in(root).into_values().collect()
}

/// `musicfs --json inspect FILES...`: one `{"type":"file"}` object per file, in argument
/// order (the trailing summary is checked and dropped).
pub fn inspect(t: &TestRepo, files: &[PathBuf]) -> Vec<Value> {
    let mut lines = t.cmd().arg("inspect").args(files).json_lines();
    let summary = lines.pop().expect("inspect printed nothing");
    assert_eq!(summary["type"], "summary", "last inspect line: {summary}");
    assert_eq!(
        num(&summary, "files"),
        files.len() as u64,
        "inspect summary: {summary}"
    );
    assert_eq!(
        lines.len(),
        files.len(),
        "one inspect line per file: {lines:?}"
    );
    for l in &lines {
        assert_eq!(l["type"], "file", "inspect line: {l}");
    }
    lines
}

/// Chunk ids of the regions of `kind` in one `inspect` file object, in file order.
pub fn region_chunk_ids(file: &Value, kind: &str) -> Vec<String> {
    file["regions"]
        .as_array()
        .unwrap_or_else(|| panic!("no regions array in {file}"))
        .iter()
        .filter(|r| r["kind"] == kind)
        .flat_map(|r| {
            r["chunks"]
                .as_array()
                .unwrap_or_else(|| panic!("region without chunks: {r}"))
                .iter()
                .map(|c| {
                    c["id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("chunk without id: {c}"))
                        .to_string()
                })
        })
        .collect()
}

// --- protocol objects ---------------------------------------------------------------

/// A snapshot tree holding one file named `name` with `data` as its one chunk, and that
/// file's chunk list (for tests that play a remote end).
pub fn one_file_tree(
    name: &[u8],
    data: &[u8],
) -> (musicfs::snapshot::Tree, musicfs::snapshot::ChunkList) {
    use musicfs::snapshot::{ChunkList, ChunkRef, Node, Tree, TreeEntry};
    let list = ChunkList {
        format: musicfs::media::Format::Opaque,
        regions: Vec::new(),
        chunks: vec![ChunkRef {
            id: musicfs::id::ChunkId::of(data),
            len: data.len() as u32,
        }],
        file_hash: None,
    };
    let tree = Tree {
        entries: vec![TreeEntry {
            name: name.to_vec(),
            node: Node::File {
                size: data.len() as u64,
                mtime_ns: 0,
                mode: 0o644,
                content: list.content_id(),
            },
        }],
    };
    (tree, list)
}

/// A tmpfs of `size` mounted at `dir` (created if missing) for a test, unmounted when dropped.
/// Mounting needs root, as the tests run in CI.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        Tmpfs::mount_with(dir, &format!("size={size},mode=0755"))
    }

    /// A tmpfs at `dir` with these mount options (`size=…,mode=…,noexec`).
    pub fn mount_with(dir: &Path, options: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (run the tests as root, as CI does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
