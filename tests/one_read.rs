//! A cold initial sync (the destination absent or empty) reads the source once: the scan
//! copies each file into the destination as it reads it, and commits the copy once the read is
//! verified. These tests hold it to the guarantees of the ordinary path: the same bytes,
//! modes, mtimes and summary; a file that changed while read never committed from that read;
//! a copy that fails (a full disk, a refused file) falls back to the ordinary write; a kill at
//! any point loses nothing; `--dry-run` writes nothing.

mod util;

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use musicfs::origin::{
    EntryStat, LocalOrigin, Origin, OriginFile, TempFile, WalkItem, WritableOrigin,
};
use musicfs::repo::Repository;
use musicfs::sync::{sync, SyncOptions, SyncSummary};
use util::{assert_trees_equal, genlib_create, list_tree, num, summary_of, TestRepo};

/// Temporary files left in `root`.
fn temporaries(root: &Path) -> Vec<PathBuf> {
    list_tree(root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".musicfs-"))
        })
        .collect()
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    list_tree(root)
        .into_iter()
        .filter(|p| root.join(p).is_file())
        .collect()
}

// --- a source that counts its opens and rewrites chosen files while they are read ----------

/// A local source whose files named in `rewrite` grow by a byte during each of their first
/// `times` reads (as a tag editor saving over them would), and which counts every open.
struct Rewriting {
    inner: LocalOrigin,
    root: PathBuf,
    rewrite: Vec<Vec<u8>>,
    times: u64,
    rewrites: Arc<Mutex<std::collections::HashMap<Vec<u8>, u64>>>,
    opens: Arc<AtomicU64>,
}

impl Rewriting {
    fn new(root: &Path, rewrite: &[&str], times: u64) -> Rewriting {
        Rewriting {
            inner: LocalOrigin::open(root, false).unwrap(),
            root: root.to_path_buf(),
            rewrite: rewrite.iter().map(|p| p.as_bytes().to_vec()).collect(),
            times,
            rewrites: Arc::default(),
            opens: Arc::default(),
        }
    }
}

struct RewrittenFile {
    inner: Box<dyn OriginFile>,
    /// The real file to grow at the first read, if it is to be.
    grow: Option<PathBuf>,
}

impl Read for RewrittenFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(path) = self.grow.take() {
            let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
            f.write_all(b"x")?;
        }
        self.inner.read(buf)
    }
}

impl Seek for RewrittenFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.inner.seek(to)
    }
}

impl OriginFile for RewrittenFile {
    fn stat(&mut self) -> io::Result<EntryStat> {
        self.inner.stat()
    }
    fn read_exact_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }
}

impl Origin for Rewriting {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> musicfs::origin::Capabilities {
        self.inner.capabilities()
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn open(&self, rel: &[u8]) -> musicfs::Result<Box<dyn OriginFile>> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let inner = self.inner.open(rel)?;
        let mut grow = None;
        if self.rewrite.iter().any(|r| r == rel) {
            let mut rewrites = self.rewrites.lock().unwrap();
            let n = rewrites.entry(rel.to_vec()).or_insert(0);
            if *n < self.times {
                *n += 1;
                grow = Some(self.root.join(std::str::from_utf8(rel).unwrap()));
            }
        }
        Ok(Box::new(RewrittenFile { inner, grow }))
    }
    fn stat(&self, rel: &[u8]) -> musicfs::Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

// --- a destination whose first temporary file for chosen paths fails -----------------------

/// How a chosen file's first temporary file fails.
#[derive(Clone, Copy)]
enum Failure {
    /// It cannot be created (permission denied).
    Create,
    /// Writing to it fails after a few bytes (no space left on the device).
    Write,
}

/// A local destination whose first temporary file for each path in `fail` fails as
/// `failure` says; later ones (the ordinary write's) work.
struct Refusing {
    inner: LocalOrigin,
    fail: Mutex<Vec<Vec<u8>>>,
    failure: Failure,
    refused: Arc<AtomicU64>,
}

struct FullDisk {
    inner: Box<dyn TempFile>,
    left: usize,
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.left {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.left -= buf.len();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl TempFile for FullDisk {
    fn commit(self: Box<Self>, mode: u32, mtime_ns: i64) -> musicfs::Result<()> {
        self.inner.commit(mode, mtime_ns)
    }
    fn discard(self: Box<Self>) {
        self.inner.discard()
    }
}

impl Origin for Refusing {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> musicfs::origin::Capabilities {
        self.inner.capabilities()
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn open(&self, rel: &[u8]) -> musicfs::Result<Box<dyn OriginFile>> {
        self.inner.open(rel)
    }
    fn stat(&self, rel: &[u8]) -> musicfs::Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl WritableOrigin for Refusing {
    fn create_root(&self) -> musicfs::Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> musicfs::Result<Box<dyn TempFile>> {
        let first = {
            let mut fail = self.fail.lock().unwrap();
            let at = fail.iter().position(|p| p == rel);
            at.map(|i| fail.remove(i)).is_some()
        };
        if !first {
            return self.inner.create_temp(rel);
        }
        self.refused.fetch_add(1, Ordering::SeqCst);
        match self.failure {
            Failure::Create => Err(musicfs::Error::io(
                self.inner.display(rel),
                io::Error::from(io::ErrorKind::PermissionDenied),
            )),
            Failure::Write => Ok(Box::new(FullDisk {
                inner: self.inner.create_temp(rel)?,
                left: 100,
            })),
        }
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> musicfs::Result<()> {
        self.inner.set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> musicfs::Result<()> {
        self.inner.symlink(rel, target)
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> musicfs::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.sync_dir(rel)
    }
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, musicfs::Error)> {
        self.inner.sync_dirs(rels)
    }
    fn lock(&self) -> musicfs::Result<Option<Box<dyn Send>>> {
        self.inner.lock()
    }
    fn give_back(&self) -> musicfs::Result<()> {
        self.inner.give_back()
    }
}

/// A library of `n` small tracks in a few albums, made by `genlib.py`.
fn library(t: &TestRepo, n: usize) -> PathBuf {
    let src = t.path("src");
    genlib_create(&src, n, 11, 24 * 1024);
    src
}

fn sync_with(src: &dyn Origin, dst: &dyn WritableOrigin, dir: &Path) -> SyncSummary {
    let repo = Repository::init(&dir.join("repo")).unwrap().0;
    sync(
        &repo,
        src,
        dst,
        &repo.chunker(),
        SyncOptions::default(),
        &musicfs::report::NullSink,
    )
    .unwrap()
}

fn verify(t: &TestRepo, dst: &Path) {
    let out = t.cmd().arg("verify").arg(dst).output();
    assert!(
        out.status.success(),
        "verify {}: {}",
        dst.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_cold_sync_opens_each_source_file_once_and_copies_it_exactly() {
    let t = TestRepo::new();
    let src = library(&t, 30);
    std::fs::set_permissions(
        src.join(&files_under(&src)[0]),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("elsewhere", src.join("a link")).unwrap();
    let files = files_under(&src).len() as u64;
    let source = Rewriting::new(&src, &[], 0);
    let opens = Arc::clone(&source.opens);
    let dst = t.path("dst");
    let destination = LocalOrigin::open(&dst, true).unwrap();
    let summary = sync_with(&source, &destination, &t.path("lib"));
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert_eq!(summary.files_changed, files + 1, "{summary:?}");
    // The scan's open of each file is the only one: the copy was made while it read.
    assert_eq!(opens.load(Ordering::SeqCst), files);
    assert_trees_equal(&src, &dst);
    assert!(temporaries(&dst).is_empty(), "{:?}", temporaries(&dst));
}

#[test]
fn a_cold_sync_reports_what_an_ordinary_one_does_and_a_dry_run_writes_nothing() {
    let t = TestRepo::new();
    let src = library(&t, 40);
    // Dry: the destination is not made.
    let dry = t.path("dry");
    let out = t
        .cmd()
        .json()
        .args(["sync", "--dry-run"])
        .arg(&src)
        .arg(&dry)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned = summary_of(&out);
    assert!(!dry.exists(), "a dry run wrote {}", dry.display());
    // Cold: into an empty directory.
    let cold = t.mkdir("cold");
    let out = t.cmd().json().arg("sync").arg(&src).arg(&cold).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = summary_of(&out);
    // Ordinary: into a directory that holds a file already, with another repository.
    let (ordinary, warm) = ordinary_sync_summary(&t, &src);
    for key in [
        "files",
        "bytes",
        "files_changed",
        "bytes_transferred",
        "chunks_transferred",
    ] {
        assert_eq!(
            num(&done, key),
            num(&planned, key),
            "{key}: cold against dry"
        );
        assert_eq!(
            num(&done, key),
            num(&ordinary, key),
            "{key}: cold against ordinary"
        );
    }
    assert_eq!(num(&done, "bytes_reused"), num(&ordinary, "bytes_reused"));
    assert_trees_equal(&src, &cold);
    assert_trees_equal(&src, &warm);
    verify(&t, &cold);
    // A second sync finds everything recorded: nothing read, nothing written.
    let out = t.cmd().json().arg("sync").arg(&src).arg(&cold).output();
    let again = summary_of(&out);
    assert_eq!(num(&again, "files_changed"), 0, "{again}");
}

#[test]
fn a_file_changed_while_read_is_not_committed_from_that_read() {
    let t = TestRepo::new();
    let src = library(&t, 12);
    let all = files_under(&src);
    let once = all[2].to_str().unwrap().to_string();
    let always = all[7].to_str().unwrap().to_string();
    // `once` changes during its first read only: read again, and copied from that read.
    // `always` changes during every read: never recorded, never written.
    let source = Rewriting::new(&src, &[&once], 1);
    let dst = t.path("dst");
    let destination = LocalOrigin::open(&dst, true).unwrap();
    let summary = sync_with(&source, &destination, &t.path("lib"));
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert_trees_equal(&src, &dst);
    assert!(temporaries(&dst).is_empty());

    let dst2 = t.path("dst2");
    let source = Rewriting::new(&src, &[&always], u64::MAX);
    let destination = LocalOrigin::open(&dst2, true).unwrap();
    let summary = sync_with(&source, &destination, &t.path("lib2"));
    assert_eq!(summary.errors, 1, "{summary:?}");
    assert!(
        !dst2.join(&always).exists(),
        "{always} was copied from a torn read"
    );
    assert!(temporaries(&dst2).is_empty(), "{:?}", temporaries(&dst2));
    for file in all.iter().filter(|f| f.to_str() != Some(&always)) {
        assert_eq!(
            std::fs::read(src.join(file)).unwrap(),
            std::fs::read(dst2.join(file)).unwrap(),
            "{}",
            file.display()
        );
    }
}

#[test]
fn a_copy_that_fails_falls_back_to_the_ordinary_write() {
    for failure in [Failure::Create, Failure::Write] {
        let t = TestRepo::new();
        let src = library(&t, 16);
        let all = files_under(&src);
        let fail: Vec<Vec<u8>> = all
            .iter()
            .step_by(3)
            .map(|p| p.to_str().unwrap().as_bytes().to_vec())
            .collect();
        let dst = t.path("dst");
        let destination = Refusing {
            inner: LocalOrigin::open(&dst, true).unwrap(),
            fail: Mutex::new(fail.clone()),
            failure,
            refused: Arc::default(),
        };
        let refused = Arc::clone(&destination.refused);
        let source = LocalOrigin::open(&src, false).unwrap();
        let summary = sync_with(&source, &destination, &t.path("lib"));
        assert_eq!(refused.load(Ordering::SeqCst), fail.len() as u64);
        assert_eq!(summary.errors, 0, "{summary:?}");
        assert_eq!(summary.files_changed, all.len() as u64);
        assert_trees_equal(&src, &dst);
        assert!(temporaries(&dst).is_empty(), "{:?}", temporaries(&dst));
    }
}

#[test]
fn a_cold_sync_killed_anywhere_loses_nothing() {
    let t = TestRepo::new();
    let src = library(&t, 40);
    for (i, point) in [
        "scan-recorded:1",
        "before-rename:1",
        "before-rename:20",
        "scan-commit:1",
        "after-rename:5",
        "record:1",
        "final-scan:1",
    ]
    .iter()
    .enumerate()
    {
        let dst = t.path(&format!("dst{i}"));
        let other = TestRepo::new();
        let out = other
            .cmd()
            .arg("sync")
            .arg(&src)
            .arg(&dst)
            .command()
            .env("MUSICFS_FAILPOINT", point)
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{point}: not killed there: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Whatever is under a final name is whole.
        for file in files_under(&dst) {
            if temporaries(&dst).contains(&file) {
                continue;
            }
            assert_eq!(
                std::fs::read(src.join(&file)).unwrap(),
                std::fs::read(dst.join(&file)).unwrap(),
                "{point}: {} torn",
                file.display()
            );
        }
        let out = other.cmd().arg("sync").arg(&src).arg(&dst).output();
        assert!(
            out.status.success(),
            "{point}: the re-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_trees_equal(&src, &dst);
        assert!(
            temporaries(&dst).is_empty(),
            "{point}: {:?}",
            temporaries(&dst)
        );
        let out = other.cmd().arg("verify").arg(&dst).output();
        assert!(
            out.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn copies_committed_from_many_readers_at_once_all_arrive() {
    // The copies are started on the scan's reader threads and committed through one shared
    // committer: repeated, a lost, doubled or half-committed copy, or a hang between a full
    // committer and its readers, shows as a tree that differs or a run past the deadline.
    let t = TestRepo::new();
    let src = t.mkdir("src");
    for i in 0..150 {
        let dir = src.join(format!("d{}", i % 13));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(300 + i * 97))
            .map(|n: usize| (n.wrapping_mul(2_654_435_761) >> 7) as u8 ^ i as u8)
            .collect();
        std::fs::write(dir.join(format!("f{i}")), data).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    for round in 0..25 {
        assert!(
            Instant::now() < deadline,
            "round {round}: too slow, a hang?"
        );
        let dst = t.path(&format!("dst{round}"));
        let source = LocalOrigin::open(&src, false).unwrap();
        let destination = LocalOrigin::open(&dst, true).unwrap();
        let summary = sync_with(&source, &destination, &t.path(&format!("lib{round}")));
        assert_eq!(summary.errors, 0, "round {round}: {summary:?}");
        assert_eq!(summary.files_changed, 150, "round {round}");
        assert_trees_equal(&src, &dst);
        assert!(temporaries(&dst).is_empty(), "round {round}");
        std::fs::remove_dir_all(&dst).unwrap();
    }
}

#[test]
fn a_cold_sync_of_many_files_reports_each_copy_once_and_counts_shared_chunks_once() {
    // The copies have no step in the plan: they are noted from the source's tree, a batch at
    // a time. Content repeated across batches (the same bytes at paths far apart) must count
    // as transferred once and reused after, as an ordinary sync counts it, and every file must
    // be reported written exactly once.
    let t = TestRepo::new();
    let src = library(&t, 600);
    let first = files_under(&src)
        .into_iter()
        .next()
        .expect("the library holds files");
    let dup = src.join("zz-again");
    std::fs::create_dir_all(&dup).unwrap();
    for i in 0..5 {
        std::fs::copy(src.join(&first), dup.join(format!("copy{i}"))).unwrap();
    }
    let files = files_under(&src).len();
    assert!(files > 600, "{files} files");
    let cold = t.path("cold");
    let out = t.cmd().json().arg("sync").arg(&src).arg(&cold).output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = util::parse_json_lines(&out.stdout);
    let mut written: Vec<String> = lines
        .iter()
        .filter(|l| l["type"] == "action" && l["action"] == "write")
        .map(|l| l["path"].as_str().unwrap_or_default().to_string())
        .collect();
    written.sort();
    let before = written.len();
    written.dedup();
    assert_eq!(before, written.len(), "a file was reported written twice");
    assert_eq!(written.len(), files, "one write reported per file");
    let done = summary_of(&out);
    let (ordinary, _) = ordinary_sync_summary(&t, &src);
    for key in [
        "files_changed",
        "bytes_transferred",
        "chunks_transferred",
        "bytes_reused",
    ] {
        assert_eq!(
            num(&done, key),
            num(&ordinary, key),
            "{key}: cold against ordinary"
        );
    }
    assert!(num(&done, "bytes_reused") > 0, "{done}");
    assert_trees_equal(&src, &cold);
    verify(&t, &cold);
    let out = t.cmd().json().arg("sync").arg(&src).arg(&cold).output();
    assert_eq!(num(&summary_of(&out), "files_changed"), 0);
}

/// The readers count a cold sync's copies as they land, in a set they share: many files
/// holding the same chunks, read at once by both readers, must still count each chunk as
/// transferred once. Cold syncs into new repositories and destinations, again and again under
/// a deadline, each against the ordinary sync's counts.
#[test]
fn copies_landing_at_once_count_each_shared_chunk_once_every_time() {
    let t = TestRepo::new();
    let src = library(&t, 40);
    let files = files_under(&src);
    // Every file four times more, so both readers meet the same chunks at the same moments.
    for (i, rel) in files.iter().enumerate() {
        for copy in 0..4 {
            let dir = src.join(format!("again{copy}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(src.join(rel), dir.join(format!("{i}"))).unwrap();
        }
    }
    let (ordinary, _) = ordinary_sync_summary(&t, &src);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rounds = 0;
    while rounds < 20 && (rounds < 3 || Instant::now() < deadline) {
        let fresh = TestRepo::new();
        let cold = fresh.path("cold");
        let out = fresh.cmd().json().arg("sync").arg(&src).arg(&cold).output();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let done = summary_of(&out);
        for key in ["bytes_transferred", "chunks_transferred", "bytes_reused"] {
            assert_eq!(
                num(&done, key),
                num(&ordinary, key),
                "round {rounds}, {key}: cold against ordinary"
            );
        }
        rounds += 1;
    }
}

/// The `--json` summary of an ordinary (not cold) sync of `src`: into a directory of `t` that
/// holds a file already, with a repository of its own; and that directory.
fn ordinary_sync_summary(
    t: &TestRepo,
    src: &std::path::Path,
) -> (serde_json::Value, std::path::PathBuf) {
    let warm = t.mkdir("warm");
    std::fs::write(warm.join("unrelated"), b"not in the source").unwrap();
    let other = TestRepo::new();
    let out = other
        .cmd()
        .json()
        .args(["sync", "--delete"])
        .arg(src)
        .arg(&warm)
        .output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (summary_of(&out), warm)
}

/// Counts the files read, as a scan reports each.
#[derive(Default)]
struct CountReads(AtomicU64);

impl musicfs::report::Sink for CountReads {
    fn event(&self, event: &musicfs::report::Event) {
        if let musicfs::report::Event::FileRead { .. } = event {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// A sync of `src` into `dst` through `repo`, with the files it read.
fn counted_sync(repo: &Repository, src: &Path, dst: &Path) -> (SyncSummary, u64) {
    let reads = CountReads::default();
    let summary = sync(
        repo,
        &LocalOrigin::open(src, false).unwrap(),
        &LocalOrigin::open(dst, true).unwrap(),
        &repo.chunker(),
        SyncOptions::default(),
        &reads,
    )
    .unwrap();
    (summary, reads.0.load(Ordering::SeqCst))
}

/// A scan of `dir` through `repo`: the files it found, and those it read.
fn counted_scan(repo: &Repository, dir: &Path) -> (u64, u64) {
    let scanned = musicfs::scan::scan(
        repo,
        &LocalOrigin::open(dir, false).unwrap(),
        &repo.chunker(),
        musicfs::scan::ScanOptions::default(),
        &CountReads::default(),
    )
    .unwrap();
    (scanned.files, scanned.files_read)
}

#[test]
fn a_cold_sync_records_its_copies_as_they_landed_so_its_final_rescan_reads_none() {
    let t = TestRepo::new();
    let src = library(&t, 40);
    let files = files_under(&src).len() as u64;
    let dst = t.path("dst");
    let repo = Repository::init(&t.path("lib").join("repo")).unwrap().0;
    let (summary, reads) = counted_sync(&repo, &src, &dst);
    assert_eq!(summary.files_changed, files, "{summary:?}");
    // The source's scan read each file once; the destination's rescan at the end found every
    // copy recorded with the stat it has (its inode and change time from when it landed), and
    // read none back.
    assert_eq!(reads, files);
    assert_trees_equal(&src, &dst);
    // What was recorded is what a scan of the destination finds.
    assert_eq!(counted_scan(&repo, &dst), (files, 0));
    // The source's rows and the destination's records, merged on a thread of their own beside
    // the rescan: nothing waits staged.
    assert_eq!(repo.merge_staged_locations().unwrap(), 0);
}

#[test]
fn copies_recorded_beside_their_notes_and_a_merge_arrive_whole_every_time() {
    // A cold sync records its copies on a thread of its own while it notes the next ones
    // (`Apply::note_copies`, a commit per 8,192 files: more files than that make two, each
    // handing out file ids it writes back at its commit), then merges the rows staged by the
    // source's scan and by those records on another thread while the destination's rescan
    // walks, the rescan's lookups waiting for the merge. Repeated, a batch recorded twice or
    // lost, a file id given twice, a merge overtaken, or a hang between them shows as a
    // rescan that reads, a row left staged, a check that fails or a run past the deadline.
    let t = TestRepo::new();
    let src = t.mkdir("src");
    let files: u64 = 8_500;
    for i in 0..files {
        let dir = src.join(format!("d{:02}", i % 60));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}")),
            format!("file {i} {}", "x".repeat((i % 97) as usize)),
        )
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut rounds = 0;
    while rounds < 3 && (rounds < 2 || Instant::now() < deadline) {
        let dir = t.path(&format!("lib{rounds}"));
        let dst = t.path(&format!("dst{rounds}"));
        let root = dir.join("repo");
        let repo = Repository::init(&root).unwrap().0;
        let (summary, reads) = counted_sync(&repo, &src, &dst);
        assert_eq!(
            (summary.files_changed, summary.errors),
            (files, 0),
            "round {rounds}: {summary:?}"
        );
        // Every copy was recorded with the stat it landed with: the rescan read none.
        assert_eq!(reads, files, "round {rounds}");
        assert_eq!(repo.merge_staged_locations().unwrap(), 0, "round {rounds}");
        assert_eq!(counted_scan(&repo, &dst), (files, 0), "round {rounds}");
        drop(repo);
        let report = musicfs::repo::check(&root).unwrap();
        assert!(report.healthy, "round {rounds}: {:?}", report.problems);
        assert_trees_equal(&src, &dst);
        std::fs::remove_dir_all(&dst).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        rounds += 1;
    }
    assert!(
        Instant::now() < deadline,
        "{rounds} rounds: too slow, a hang?"
    );
}
