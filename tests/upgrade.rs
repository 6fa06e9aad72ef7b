//! A repository written by an older format (2, 3 or 4) is upgraded in place on first use,
//! never refused: `fixtures/repo-v2`, `fixtures/repo-v3` and `fixtures/repo-v4` are ones, as
//! those releases wrote them.

mod util;

use std::fs;

use util::{copy_tree, fixtures_audio, manifest_dir, num, Musicfs, TestRepo};

/// A copy of the repository fixture of format `version` (`fixtures/repo-vN`), and a command
/// builder for it.
fn fixture_repo(t: &TestRepo, version: u32) -> (std::path::PathBuf, impl Fn() -> Musicfs + '_) {
    let repo = t.path(&format!("v{version}"));
    copy_tree(
        &manifest_dir().join(format!("fixtures/repo-v{version}")),
        &repo,
    );
    let r = repo.clone();
    (repo, move || Musicfs::with_repo_as_is(&r, t.root()))
}

fn format_2(t: &TestRepo) -> (std::path::PathBuf, impl Fn() -> Musicfs + '_) {
    fixture_repo(t, 2)
}

fn format_3(t: &TestRepo) -> (std::path::PathBuf, impl Fn() -> Musicfs + '_) {
    fixture_repo(t, 3)
}

/// Overwrites one page at a time of the format-`version` fixture's index (page 0, the
/// header, left alone), runs `repair-index` on it and hands `check`'s report to `judge`.
fn each_damaged_page(t: &TestRepo, version: u32, mut judge: impl FnMut(&serde_json::Value)) {
    const PAGE: usize = 4096;
    let pristine =
        fs::read(manifest_dir().join(format!("fixtures/repo-v{version}/index.redb"))).unwrap();
    for page in 1..pristine.len() / PAGE {
        let (repo, cmd) = fixture_repo(t, version);
        let mut bytes = pristine.clone();
        for (i, b) in bytes[page * PAGE..(page + 1) * PAGE].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(page as u8);
        }
        fs::write(repo.join("index.redb"), &bytes).unwrap();
        cmd().arg("repair-index").quiet().assert_exit(0);
        let report = cmd().arg("check").summary();
        assert_eq!(report["healthy"], true, "page {page}: {report}");
        judge(&report);
        fs::remove_dir_all(&repo).unwrap();
    }
}

#[test]
fn a_format_2_repository_is_upgraded_and_keeps_its_snapshots() {
    let t = TestRepo::new();
    let (repo, cmd) = format_2(&t);
    let before = fs::read(repo.join("index.redb")).unwrap();

    let listed = cmd().arg("snapshots").stdout();
    assert!(
        listed.contains("f61c72bc")
            && listed.contains("/tmp/v2fx/lib")
            && listed.contains("13 files"),
        "{listed}"
    );
    assert_ne!(
        before,
        fs::read(repo.join("index.redb")).unwrap(),
        "nothing was written"
    );

    // Whole, with the history tables of format 3, and opened again without change.
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["rows"]["snapshots"], 1, "{report}");
    assert_eq!(report["rows"]["kept_chunks"], 0, "{report}");
    assert_eq!(report["rows"]["history"], 0, "{report}");
    let upgraded = fs::read(repo.join("index.redb")).unwrap();
    cmd().arg("snapshots").stdout();
    assert_eq!(upgraded, fs::read(repo.join("index.redb")).unwrap());

    // The old snapshot's trees and chunk lists still read: a diff against a new scan of the
    // same files finds the same paths.
    let lib = t.fixtures("lib");
    cmd().arg("scan").arg(&lib).quiet().assert_exit(0);
    let diff = cmd().arg("diff").arg("f61c72bc").arg(&lib).summary();
    assert_eq!(diff["changes"], 0, "{diff}");

    // And the new scan kept its history chunks.
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    assert!(
        report["rows"]["kept_chunks"].as_u64().unwrap() >= 20,
        "{report}"
    );
    assert_eq!(report["rows"]["history"], 13, "{report}");
}

#[test]
fn a_format_3_repository_is_upgraded_and_keeps_its_snapshots_and_scan_state() {
    let t = TestRepo::new();
    let (repo, cmd) = format_3(&t);
    let before = fs::read(repo.join("index.redb")).unwrap();

    let listed = cmd().arg("snapshots").stdout();
    assert!(
        listed.contains("018d22bd")
            && listed.contains("13 files")
            && listed.contains("63a7821d")
            && listed.contains("12 files")
            && listed.contains("/tmp/v3fx/lib"),
        "{listed}"
    );
    assert_ne!(
        before,
        fs::read(repo.join("index.redb")).unwrap(),
        "nothing was written"
    );

    // Whole: every row of format 3 is still there, the 12 scan-state rows among them (given
    // change keys), the history kept by format 3 and its pack.
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["rows"]["snapshots"], 2, "{report}");
    assert_eq!(report["rows"]["scan"], 12, "{report}");
    assert_eq!(report["rows"]["files"], 12, "{report}");
    assert_eq!(report["rows"]["history"], 13, "{report}");
    assert_eq!(report["rows"]["kept_chunks"], 40, "{report}");
    let upgraded = fs::read(repo.join("index.redb")).unwrap();
    cmd().arg("snapshots").stdout();
    assert_eq!(
        upgraded,
        fs::read(repo.join("index.redb")).unwrap(),
        "opened again without change"
    );

    // The same files at the same path: the snapshots' trees still read (a diff finds the
    // first snapshot's 13 files unchanged). Copies are new inodes with new ctimes, so the
    // first scan reads them (the scan state's POSIX keys are those of the files format 3
    // saw, which `repo::tests` checks are carried over); the next reads nothing.
    let lib = std::path::Path::new("/tmp/v3fx/lib");
    let _ = fs::remove_dir_all(lib);
    copy_tree(&fixtures_audio(), lib);
    let diff = cmd().arg("diff").arg("018d22bd").arg(lib).summary();
    assert_eq!(diff["changes"], 0, "{diff}");
    let first = cmd().arg("scan").arg(lib).summary();
    assert_eq!(num(&first, "files"), 13, "{first}");
    let again = cmd().arg("scan").arg(lib).summary();
    assert_eq!(num(&again, "files_read"), 0, "{again}");
    assert_eq!(num(&again, "bytes_read"), 0, "{again}");
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["rows"]["scan"], 13, "{report}");
    let _ = fs::remove_dir_all(lib);
}

#[test]
fn a_format_4_repository_is_upgraded_and_finds_every_chunk() {
    use musicfs::id::ChunkId;
    use musicfs::repo::Repository;
    let t = TestRepo::new();
    let (repo, cmd) = fixture_repo(&t, 4);
    let before = fs::read(repo.join("index.redb")).unwrap();
    // The two origins' files where format 4 recorded them: `lib` without `Riff Raff/`, `dst`
    // whole.
    let base = std::path::Path::new("/tmp/v4fx");
    let _ = fs::remove_dir_all(base);
    copy_tree(&fixtures_audio(), &base.join("lib"));
    fs::remove_dir_all(base.join("lib/Riff Raff")).unwrap();
    copy_tree(&fixtures_audio(), &base.join("dst"));

    let listed = cmd().arg("snapshots").stdout();
    assert!(
        listed.contains("684828cb") && listed.contains("57389a49") && listed.contains("0c152c06"),
        "{listed}"
    );
    assert_ne!(
        before,
        fs::read(repo.join("index.redb")).unwrap(),
        "nothing was written"
    );

    // Whole: format 4's 134 chunk locations became a row per scan entry and rows per chunk
    // list, and the table they were in is gone.
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    assert_eq!(report["rows"]["scan"], 25, "{report}");
    assert_eq!(report["rows"]["content_files"], 25, "{report}");
    assert!(
        report["rows"]["chunk_contents"].as_u64() >= Some(40),
        "{report}"
    );
    assert!(report["rows"].get("chunk_locations").is_none(), "{report}");
    assert_eq!(report["rows"]["snapshots"], 3, "{report}");
    let upgraded = fs::read(repo.join("index.redb")).unwrap();
    cmd().arg("snapshots").stdout();
    assert_eq!(
        upgraded,
        fs::read(repo.join("index.redb")).unwrap(),
        "opened again without change"
    );

    // Every chunk of every file of both origins is found in that file at its offset, and
    // every location given in a file stored as it is (no transformed region, such as Ogg's
    // normalized pages) holds the chunk's bytes.
    {
        let r = Repository::open_existing(&repo).unwrap();
        let mut checked = 0;
        for side in ["lib", "dst"] {
            let root = base.join(side);
            let origin = r
                .find_origin(root.to_str().unwrap())
                .unwrap()
                .expect("origin");
            let state = r.scan_state(origin).unwrap();
            let plain: std::collections::HashMap<Vec<u8>, bool> = state
                .iter()
                .map(|(path, e)| {
                    let list = r.content(&e.content).unwrap();
                    (path.clone(), list.file_hash.is_none())
                })
                .collect();
            for (path, entry) in state {
                let list = r.content(&entry.content).unwrap();
                for (offset, chunk) in list.with_offsets() {
                    let found = r.chunk_locations(&chunk.id, origin).unwrap();
                    assert!(
                        found.iter().any(|l| l.path == path && l.len == chunk.len),
                        "{side}/{}: chunk at {offset} not found",
                        String::from_utf8_lossy(&path)
                    );
                    for l in found.into_iter().filter(|l| plain[&l.path]) {
                        let bytes =
                            fs::read(root.join(String::from_utf8(l.path).unwrap())).unwrap();
                        let at = l.offset as usize..l.offset as usize + l.len as usize;
                        assert_eq!(ChunkId::of(&bytes[at]), chunk.id);
                    }
                    assert_eq!(r.located(&[chunk.id], origin).unwrap(), vec![true]);
                    checked += 1;
                }
            }
        }
        assert!(checked >= 100, "{checked} chunks checked");
    }

    // The upgraded repository syncs and verifies: a copy of `dst` made from its recorded
    // chunks is whole, and the index stays whole.
    let copy = t.path("copy");
    cmd()
        .arg("sync")
        .arg(base.join("dst"))
        .arg(&copy)
        .quiet()
        .assert_exit(0);
    let diff = cmd().arg("diff").arg(base.join("dst")).arg(&copy).summary();
    assert_eq!(diff["changes"], 0, "{diff}");
    cmd().arg("verify").arg(&copy).quiet().assert_exit(0);
    let report = cmd().arg("check").summary();
    assert_eq!(report["healthy"], true, "{report}");
    keeps_its_chunking_rules(&t, &repo, &base.join("dst"), &cmd);
    let _ = fs::remove_dir_all(base);
}

#[test]
fn repair_index_salvages_a_damaged_format_4_index() {
    // One page at a time of the format-4 index is overwritten: repair-index rebuilds the
    // location rows of format 5 from what it salvaged, and the index it makes checks whole.
    let t = TestRepo::new();
    let mut scan_rows = 0;
    each_damaged_page(&t, 4, |report| {
        scan_rows = scan_rows.max(report["rows"]["scan"].as_u64().unwrap_or(0));
        assert_eq!(
            report["rows"]["content_files"], report["rows"]["scan"],
            "{report}"
        );
    });
    assert_eq!(
        scan_rows, 25,
        "the scan state was salvaged whole at least once"
    );
}

#[test]
fn repair_index_salvages_a_damaged_format_3_index() {
    // As for format 2: one page at a time of the format-3 index is overwritten, and
    // repair-index must read its scan-state rows as the format-3 rows they are (three plain
    // fields where format 4 has a change key), not drop them as undecodable.
    let t = TestRepo::new();
    let (mut survived, mut scan_rows) = (0, 0);
    each_damaged_page(&t, 3, |report| {
        if report["rows"]["snapshots"].as_u64() >= Some(1) {
            survived += 1;
        }
        scan_rows = scan_rows.max(report["rows"]["scan"].as_u64().unwrap_or(0));
    });
    assert!(survived > 0, "no damaged page left a snapshot to salvage");
    assert_eq!(
        scan_rows, 12,
        "the scan state was salvaged whole at least once"
    );
}

#[test]
fn repair_index_salvages_a_damaged_format_2_index() {
    // One page at a time of the format-2 index is overwritten: repair-index must salvage the
    // rows it can read as the format-2 rows they are, not throw them away as another format's.
    let t = TestRepo::new();
    let mut survived = 0;
    each_damaged_page(&t, 2, |report| {
        if report["rows"]["snapshots"] == 1 {
            survived += 1;
        }
    });
    assert!(survived > 0, "no damaged page left the snapshot to salvage");
}

/// A repository of the release before chunking rules 5 keeps cutting audio by content: its
/// `repo.toml` is left as it was, and every file read again (`scan --checksum`) gets the very
/// content it had, so nothing it holds must be sent again. A new repository cuts the same
/// files' audio in fixed pieces: other contents. `repo` is the format-4 fixture, upgraded, and
/// `dst` the copy of the audio fixtures it recorded.
fn keeps_its_chunking_rules(
    t: &TestRepo,
    repo: &std::path::Path,
    dst: &std::path::Path,
    cmd: &dyn Fn() -> Musicfs,
) {
    use musicfs::repo::Repository;
    let recorded = |root: &std::path::Path| {
        let r = Repository::open_existing(root).unwrap();
        let origin = r
            .find_origin(dst.to_str().unwrap())
            .unwrap()
            .expect("origin");
        r.scan_state(origin)
            .unwrap()
            .into_iter()
            .map(|(path, e)| (path, e.content))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = recorded(repo);
    assert_eq!(before.len(), 13);
    cmd()
        .arg("scan")
        .arg("--checksum")
        .arg(dst)
        .quiet()
        .assert_exit(0);
    assert_eq!(
        recorded(repo),
        before,
        "a file read again changed its content id"
    );
    let toml = fs::read_to_string(repo.join("repo.toml")).unwrap();
    assert!(toml.contains("algorithm = \"fastcdc-2020\"\n"), "{toml}");

    // A new repository: fixed audio and picture pieces, so the files with audio get other
    // contents.
    let fresh = t.path("fresh");
    util::init_repository(&fresh);
    let toml = fs::read_to_string(fresh.join("repo.toml")).unwrap();
    assert!(
        toml.contains("algorithm = \"fastcdc-2020-fixed-pictures\"\n"),
        "{toml}"
    );
    Musicfs::with_repo_as_is(&fresh, t.root())
        .arg("scan")
        .arg(dst)
        .quiet()
        .assert_exit(0);
    let now = recorded(&fresh);
    assert_eq!(now.len(), before.len());
    let changed = now.iter().filter(|(p, c)| before[*p] != **c).count();
    assert!(
        changed > 0 && changed < now.len(),
        "{changed} of {} contents differ under the new rules (the audio files, not the others)",
        now.len()
    );
}

/// `init --chunker` makes a repository of any rules this build knows; an existing one keeps its own, and a
/// `--chunker` that differs from it is refused (exit 2) with nothing changed.
#[test]
fn init_chunker_chooses_a_new_repositorys_rules() {
    let t = TestRepo::without_repository();
    let algorithm = |dir: &std::path::Path| {
        fs::read_to_string(dir.join("repo.toml"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("algorithm"))
            .unwrap()
            .to_string()
    };
    let old = t.path("old");
    let cmd = || Musicfs::with_repo_as_is(t.repo(), t.root());
    cmd()
        .args(["init", "--chunker", "fastcdc-2020"])
        .arg(&old)
        .quiet()
        .assert_exit(0);
    assert_eq!(algorithm(&old), "algorithm = \"fastcdc-2020\"");
    let before = fs::read(old.join("repo.toml")).unwrap();
    let out = cmd()
        .args(["init", "--chunker", "fastcdc-2020-fixed-audio"])
        .arg(&old)
        .assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("cuts files with fastcdc-2020;"),
        "{stderr}"
    );
    assert_eq!(fs::read(old.join("repo.toml")).unwrap(), before);
    cmd()
        .args(["init", "--chunker", "fastcdc-2020"])
        .arg(&old)
        .quiet()
        .assert_exit(0);
    let new = t.path("new");
    cmd().arg("init").arg(&new).quiet().assert_exit(0);
    assert_eq!(
        algorithm(&new),
        "algorithm = \"fastcdc-2020-fixed-pictures\""
    );
    let five = t.path("five");
    cmd()
        .args(["init", "--chunker", "fastcdc-2020-fixed-audio"])
        .arg(&five)
        .quiet()
        .assert_exit(0);
    assert_eq!(algorithm(&five), "algorithm = \"fastcdc-2020-fixed-audio\"");
    cmd()
        .args(["init", "--chunker", "rabin"])
        .arg(t.path("bad"))
        .assert_exit(2);
    assert!(!t.path("bad").exists());
}

/// The chunker's parameters live in `repo.toml`, and every command cuts files as they say.
#[test]
fn the_chunker_is_the_repositorys_and_bad_settings_are_refused() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    t.cmd().arg("snapshots").stdout();
    let written = fs::read_to_string(t.repo().join("repo.toml")).unwrap();
    assert!(
        written.contains("[chunker]") && written.contains("avg_size = 65536"),
        "{written}"
    );
    t.cmd().arg("scan").arg(&lib).quiet().assert_exit(0);
    let default_rows = t.cmd().arg("check").summary()["rows"]["chunk_contents"]
        .as_u64()
        .unwrap();

    // Another repository, whose files are cut into chunks of 1 to 4 KiB.
    let small = t.path("small");
    util::init_repository(&small);
    let toml = small.join("repo.toml");
    let text = fs::read_to_string(&toml).unwrap();
    let text = text
        .replace("min_size = 16384", "min_size = 1024")
        .replace("avg_size = 65536", "avg_size = 2048")
        .replace("max_size = 262144", "max_size = 4096");
    fs::write(&toml, &text).unwrap();
    let cmd = || Musicfs::with_repo_as_is(&small, t.root());
    cmd().arg("scan").arg(&lib).quiet().assert_exit(0);
    let small_rows = cmd().arg("check").summary()["rows"]["chunk_contents"]
        .as_u64()
        .unwrap();
    assert!(
        small_rows > 2 * default_rows,
        "{small_rows} chunk rows with 2 KiB chunks, {default_rows} with 64 KiB ones"
    );

    fs::write(&toml, text.replace("fastcdc-2020", "rabin")).unwrap();
    let out = cmd().arg("scan").arg(&lib).assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("repo.toml") && stderr.contains("rabin"),
        "{stderr}"
    );
}
