//! A damaged, emptied or deleted index, and a mistyped repository location, against the real
//! binary: each is reported on one line that names the repository and says what to do, never
//! a panic and never a silent new repository. `check` finds the damage, `repair-index` keeps
//! the damaged file and rebuilds an index from what it can read, after which `sync` is exact.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use util::*;

const PAGE: usize = 4096;

/// A repository whose index a real scan of a generated library (and a sync) wrote.
struct Scanned {
    t: TestRepo,
    lib: PathBuf,
    /// A retagged copy of `lib`, for `diff`.
    retagged: PathBuf,
    /// `index.redb` as the scans left it.
    index: Vec<u8>,
}

impl Scanned {
    fn new() -> Scanned {
        let t = TestRepo::new();
        let lib = t.mkdir("lib");
        genlib_create(&lib, 36, 11, 40 << 10);
        let retagged = t.path("retagged");
        copy_tree(&lib, &retagged);
        genlib_retag(&retagged, 0.3, 12);
        for dir in [&lib, &retagged] {
            t.cmd().arg("scan").arg(dir).assert_exit(0);
        }
        t.cmd()
            .arg("sync")
            .arg(&lib)
            .arg(t.path("mirror"))
            .assert_exit(0);
        let index = fs::read(index_of(&t)).unwrap();
        Scanned {
            t,
            lib,
            retagged,
            index,
        }
    }

    /// The binary on this repository, which must not be created or touched on the way.
    fn cmd(&self) -> Musicfs {
        Musicfs::with_repo_as_is(self.t.repo(), self.t.root())
    }

    fn pages(&self) -> usize {
        self.index.len() / PAGE
    }

    /// The index with page `page` overwritten by random bytes.
    fn damaged(&self, page: usize) -> Vec<u8> {
        let mut bytes = self.index.clone();
        let mut rng = XorShift::new(page as u64 + 1);
        for b in &mut bytes[page * PAGE..(page + 1) * PAGE] {
            *b = rng.next_u64() as u8;
        }
        bytes
    }
}

fn index_of(t: &TestRepo) -> PathBuf {
    t.repo().join("index.redb")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fatal error: exit 2, and stderr one line `musicfs: …` naming the repository and
/// containing `needle`.
fn assert_one_line_error(out: &Output, repo: &Path, needle: &str, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err}");
    assert!(err.starts_with("musicfs: "), "{what}: {err}");
    assert!(
        err.contains(&repo.display().to_string()),
        "{what}: does not name the repository: {err}"
    );
    assert!(err.contains(needle), "{what}: no {needle:?}: {err}");
}

fn assert_no_panic(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: {err}"
    );
    assert!(
        matches!(out.status.code(), Some(0..=5)),
        "{what}: exit {:?}: {err}",
        out.status
    );
}

/// The commands run on each damaged index, with the exit codes they may give when the damage
/// is not on their way (`verify` exits 1 for a damaged chunk list or tree it re-hashes).
fn commands(s: &Scanned, scratch: &Path) -> Vec<(&'static str, Vec<PathBuf>, &'static [i32])> {
    vec![
        ("snapshots", vec![], &[0]),
        ("sync", vec![s.lib.clone(), scratch.to_path_buf()], &[0]),
        ("scan", vec![s.lib.clone()], &[0]),
        ("verify", vec![s.lib.clone()], &[0, 1]),
        ("diff", vec![s.retagged.clone(), s.lib.clone()], &[1]),
    ]
}

#[test]
fn every_damaged_page_is_reported_on_one_line_never_a_panic() {
    let s = Scanned::new();
    let repo = s.t.repo().to_path_buf();
    let scratch = s.t.path("scratch");
    let mut failed: Vec<(&str, usize)> = Vec::new();
    let mut damaged_pages = 0;
    for page in 0..s.pages() {
        let damaged = s.damaged(page);
        let mut met = false;
        for (name, args, fine) in commands(&s, &scratch) {
            fs::write(index_of(&s.t), &damaged).unwrap();
            let _ = fs::remove_dir_all(&scratch);
            let out = s.cmd().arg(name).args(&args).output();
            let what = format!("page {page}: musicfs {name}");
            assert_no_panic(&out, &what);
            let code = out.status.code().unwrap_or(-1);
            if !fine.contains(&code) {
                assert_one_line_error(&out, &repo, "musicfs repair-index", &what);
                assert!(stderr(&out).contains("is damaged"), "{what}");
                failed.push((name, page));
                met = true;
            }
        }
        // `check` finds the damage wherever a command met it.
        fs::write(index_of(&s.t), &damaged).unwrap();
        let out = s.cmd().arg("check").output();
        assert_no_panic(&out, &format!("page {page}: musicfs check"));
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(1),
            "page {page}: check {code:?}"
        );
        if met {
            assert_eq!(
                code,
                Some(1),
                "page {page}: check missed damage a command met"
            );
        }
        damaged_pages += usize::from(code == Some(1));
    }
    for (name, _, _) in commands(&s, &scratch) {
        assert!(
            failed.iter().any(|(n, _)| *n == name),
            "no damaged page made `{name}` fail; pages tried: {}",
            s.pages()
        );
    }
    assert!(damaged_pages > 0);
}

#[test]
fn repair_index_keeps_the_damaged_file_and_the_next_sync_is_exact() {
    let s = Scanned::new();
    let scratch = s.t.path("scratch");
    // The first page whose damage stops a sync.
    let (page, damaged) = (0..s.pages())
        .map(|page| (page, s.damaged(page)))
        .find(|(_, damaged)| {
            fs::write(index_of(&s.t), damaged).unwrap();
            let _ = fs::remove_dir_all(&scratch);
            let out = s.cmd().arg("sync").arg(&s.lib).arg(&scratch).output();
            assert_no_panic(&out, "sync");
            out.status.code() == Some(2)
        })
        .expect("some damaged page stops a sync");
    fs::write(index_of(&s.t), &damaged).unwrap();
    s.cmd().arg("check").assert_exit(1);

    let mut cmd = s.cmd();
    let summary = cmd.arg("repair-index").summary();
    assert_eq!(summary["index_was"], "damaged", "{summary}");
    let kept_aside = PathBuf::from(summary["damaged_copy"].as_str().expect("damaged_copy"));
    assert_eq!(kept_aside.parent(), Some(s.t.repo()), "{summary}");
    let name = kept_aside
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with("index.redb.damaged-"), "{name}");
    let old = fs::read(&kept_aside).unwrap();
    assert_eq!(old.len(), damaged.len(), "the damaged index is kept whole");
    assert_eq!(
        &old[page * PAGE..(page + 1) * PAGE],
        &damaged[page * PAGE..(page + 1) * PAGE],
        "the damaged index is kept as it was"
    );
    for table in ["origins", "contents", "media", "trees", "scan", "snapshots"] {
        assert!(summary["kept"][table].is_u64(), "{summary}");
    }

    s.cmd().arg("check").assert_exit(0);
    let dst = s.t.path("after-repair");
    let first = s.t.cmd().arg("sync").arg(&s.lib).arg(&dst).summary();
    assert_eq!(num(&first, "problems"), 0, "{first}");
    assert_trees_equal(&s.lib, &dst);
    let again = s.t.cmd().arg("sync").arg(&s.lib).arg(&dst).summary();
    assert_eq!(num(&again, "files_changed"), 0, "{again}");
    assert_eq!(num(&again, "bytes_transferred"), 0, "{again}");
    s.cmd().arg("verify").arg(&dst).assert_exit(0);

    // A whole index is left alone.
    let mut cmd = s.cmd();
    let summary = cmd.arg("repair-index").summary();
    assert_eq!(summary["index_was"], "healthy", "{summary}");
    assert!(summary["damaged_copy"].is_null(), "{summary}");
}

#[test]
fn an_emptied_or_deleted_index_is_refused_until_repair_index() {
    for (how, state) in [("emptied", "empty"), ("deleted", "missing")] {
        let s = Scanned::new();
        let repo = s.t.repo().to_path_buf();
        let index = index_of(&s.t);
        match how {
            "emptied" => fs::write(&index, b"").unwrap(),
            _ => fs::remove_file(&index).unwrap(),
        }
        let dst = s.t.path("dst");
        for args in [
            vec!["snapshots".into()],
            vec!["sync".into(), s.lib.clone(), dst.clone()],
            vec!["scan".into(), s.lib.clone()],
        ] {
            let out = s.cmd().args(&args).output();
            let what = format!("{how} index: musicfs {args:?}");
            assert_no_panic(&out, &what);
            assert_one_line_error(&out, &repo, "musicfs repair-index", &what);
            assert!(stderr(&out).contains(&format!("is {state}")), "{what}");
            assert!(out.stdout.is_empty(), "{what}");
        }
        assert!(!dst.exists(), "{how}: the sync went ahead");
        match how {
            "emptied" => assert_eq!(fs::metadata(&index).unwrap().len(), 0),
            _ => assert!(!index.exists(), "{how}: the index was re-created"),
        }
        s.cmd().arg("check").assert_exit(1);

        let out = s.cmd().arg("repair-index").assert_exit(0);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("the index was {state}")) && text.contains("new, empty index"),
            "{how}: {text}"
        );
        let aside: Vec<_> = fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("index.redb.damaged-"))
            .collect();
        assert_eq!(
            aside.len(),
            usize::from(how == "emptied"),
            "{how}: {aside:?}"
        );
        assert_eq!(s.cmd().arg("snapshots").stdout(), "", "{how}");
        s.t.cmd().arg("sync").arg(&s.lib).arg(&dst).assert_exit(0);
        assert_trees_equal(&s.lib, &dst);
    }
}

#[test]
fn a_repository_of_the_previous_release_opens_and_is_marked() {
    // The first release wrote index.redb and locks/, and no repo.toml.
    let s = Scanned::new();
    let marker = s.t.repo().join("repo.toml");
    fs::remove_file(&marker).unwrap();
    let listed = s.cmd().arg("snapshots").stdout();
    assert_eq!(listed.lines().count(), 3, "{listed}");
    assert!(marker.is_file(), "the repository was not marked");
    // Such a repository that lost its index is recognised by locks/.
    fs::remove_file(&marker).unwrap();
    fs::remove_file(index_of(&s.t)).unwrap();
    let out = s.cmd().arg("snapshots").output();
    assert_one_line_error(&out, s.t.repo(), "is missing", "old repository, no index");
}

/// The binary with no `--repo`, the environment `env` and a home of its own under `home`.
fn bare(home: &Path, env: &[(&str, &Path)]) -> Command {
    let mut c = Command::new(bin());
    c.env_remove("MUSICFS_REPO")
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn a_mistyped_repository_is_refused_and_init_creates_one() {
    let t = TestRepo::without_repository();
    let lib = t.fixtures("lib");
    let dst = t.path("dst");
    let typo = t.path("rpeo");
    let expected = format!(
        "no repository at {}; create one with musicfs init",
        typo.display()
    );

    // --repo and MUSICFS_REPO name a location that must exist.
    let out = Musicfs::with_repo_as_is(&typo, t.root())
        .arg("sync")
        .arg(&lib)
        .arg(&dst)
        .output();
    assert_one_line_error(&out, &typo, &expected, "--repo typo");
    let out = bare(t.root(), &[("MUSICFS_REPO", &typo)])
        .arg("sync")
        .arg(&lib)
        .arg(&dst)
        .output()
        .unwrap();
    assert_one_line_error(&out, &typo, &expected, "MUSICFS_REPO typo");
    assert!(!typo.exists() && !dst.exists(), "something was created");

    // A music folder is not taken for a repository, by any command or by init.
    let before = list_tree(&lib);
    let out = Musicfs::with_repo_as_is(&lib, t.root())
        .arg("snapshots")
        .output();
    assert_one_line_error(&out, &lib, "no repository at", "--repo music folder");
    let out = Musicfs::with_repo_as_is(&lib, t.root())
        .arg("init")
        .output();
    assert_one_line_error(
        &out,
        &lib,
        "is not a musicfs repository",
        "init music folder",
    );
    assert_eq!(list_tree(&lib), before, "the music folder was written to");

    // init creates it, says where, and leaves an existing one alone.
    let out = bare(t.root(), &[]).arg("init").arg(&typo).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("created repository {}", typo.display())
    );
    let mut again = Musicfs::with_repo_as_is(&typo, t.root());
    let summary = again.arg("init").summary();
    assert_eq!(summary["created"], false, "{summary}");
    assert_eq!(summary["repository"], typo.display().to_string());
    Musicfs::with_repo_as_is(&typo, t.root())
        .arg("sync")
        .arg(&lib)
        .arg(&dst)
        .assert_exit(0);
    assert_trees_equal(&lib, &dst);

    // The default location is still created on first use.
    let default = t.root().join("data/musicfs");
    let out = bare(t.root(), &[])
        .arg("sync")
        .arg(&lib)
        .arg(t.path("dst2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(default.join("repo.toml").is_file() && default.join("index.redb").is_file());
}
