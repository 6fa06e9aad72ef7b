//! Smoke tests of `musicfs diff` through the binary: operands, output forms, exit codes, and
//! `bytes_to_transfer` of `diff DST SRC` against the following `sync SRC DST`. (Every class on files edited with real tag
//! editors is covered in `tests/diff.rs`.)

mod util;

use std::fs;

use serde_json::Value;
use util::*;

fn lines_of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

#[test]
fn moves_removals_and_additions_then_sync_agrees() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    t.cmd().arg("sync").arg(&src).arg(&dst).summary();
    t.cmd().arg("diff").arg(&dst).arg(&src).assert_exit(0);

    fs::create_dir_all(src.join("Moved")).expect("mkdir");
    fs::rename(
        src.join("Aurora Tones/First Light/02 Zenith.mp3"),
        src.join("Moved/02 Zenith.mp3"),
    )
    .expect("mv");
    fs::remove_file(src.join("Aurora Tones/Night Shift/01 Static.mp3")).expect("rm");
    fs::write(src.join("notes.txt"), b"new file\n").expect("write");

    let out = t
        .cmd()
        .json()
        .arg("diff")
        .arg(&dst)
        .arg(&src)
        .assert_exit(1);
    let lines = parse_json_lines(&out.stdout);
    let moved = lines_of_type(&lines, "moved");
    assert_eq!(moved.len(), 1, "{lines:?}");
    assert_eq!(moved[0]["path"], "Moved/02 Zenith.mp3");
    assert_eq!(moved[0]["from"], "Aurora Tones/First Light/02 Zenith.mp3");
    assert!(moved[0].get("fields").is_none());
    let removed = lines_of_type(&lines, "removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["path"], "Aurora Tones/Night Shift/01 Static.mp3");
    assert_eq!(lines_of_type(&lines, "added")[0]["path"], "notes.txt");
    let summary = summary_of(&out);
    assert_eq!(num(&summary, "changes"), 3, "{summary}");
    assert_eq!(num(&summary["counts"], "moved"), 1, "{summary}");
    assert_eq!(num(&summary["counts"], "tags"), 0, "{summary}");
    let expected = num(&summary, "bytes_to_transfer");
    assert_eq!(expected, 9, "only notes.txt is new: {summary}");

    let names = t
        .cmd()
        .arg("diff")
        .arg(&dst)
        .arg(&src)
        .arg("--name-only")
        .assert_exit(1);
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    assert_eq!(
        names.lines().collect::<Vec<_>>(),
        vec![
            "notes.txt",
            "Aurora Tones/Night Shift/01 Static.mp3",
            "Moved/02 Zenith.mp3"
        ]
    );
    let text = t.cmd().arg("diff").arg(&dst).arg(&src).assert_exit(1);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("  moved     02 Zenith.mp3  ← Aurora Tones/First Light/02 Zenith.mp3"),
        "{text}"
    );
    assert!(
        text.ends_with("3 changed: 1 added, 1 removed, 1 moved; 9 B of new data\n"),
        "{text}"
    );

    let sync = t.cmd().arg("sync").arg(&src).arg(&dst).summary();
    assert_eq!(num(&sync, "bytes_transferred"), expected, "{sync}");
    // Without --delete the removed file stays at DST.
    let out = t
        .cmd()
        .json()
        .arg("diff")
        .arg(&dst)
        .arg(&src)
        .assert_exit(1);
    assert_eq!(num(&summary_of(&out), "changes"), 2);
    t.cmd()
        .arg("sync")
        .arg("--delete")
        .arg(&src)
        .arg(&dst)
        .summary();
    let out = t.cmd().arg("diff").arg(&dst).arg(&src).assert_exit(0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no differences\n");
}

#[test]
fn one_operand_snapshot_ids_and_times() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    // Nothing to compare with before the first scan.
    t.cmd().arg("diff").arg(&src).assert_exit(2);
    t.cmd().arg("scan").arg(&src).summary();
    t.cmd().arg("diff").arg(&src).assert_exit(0);
    fs::write(src.join("added.txt"), b"x").expect("write");
    let out = t.cmd().json().arg("diff").arg(&src).assert_exit(1);
    assert_eq!(
        lines_of_type(&parse_json_lines(&out.stdout), "added").len(),
        1
    );

    let snapshots: Vec<_> = t
        .cmd()
        .arg("snapshots")
        .json_lines()
        .into_iter()
        .filter(|v| v["type"] == "snapshot")
        .collect();
    assert_eq!(snapshots.len(), 2);
    let first = snapshots[0]["id"].as_str().expect("id").to_string();
    let second = snapshots[1]["id"].as_str().expect("id").to_string();
    // A snapshot alone is compared with the one before it; prefixes of 8 digits work.
    let out = t.cmd().json().arg("diff").arg(&second[..8]).assert_exit(1);
    assert_eq!(num(&summary_of(&out), "changes"), 1);
    t.cmd().arg("diff").arg(&first).assert_exit(2);
    // Old against new, the file is added; new against old, removed.
    let out = t
        .cmd()
        .json()
        .arg("diff")
        .arg(&first)
        .arg(&second)
        .assert_exit(1);
    let lines = parse_json_lines(&out.stdout);
    assert_eq!(lines_of_type(&lines, "added")[0]["path"], "added.txt");
    let out = t
        .cmd()
        .json()
        .arg("diff")
        .arg(&second)
        .arg(&first)
        .assert_exit(1);
    let lines = parse_json_lines(&out.stdout);
    assert_eq!(lines_of_type(&lines, "removed")[0]["path"], "added.txt");
    // ORIGIN@TIME: far in the future is the latest snapshot; before 2000 there is none.
    let at = format!("{}@2999-01-01", src.display());
    t.cmd().arg("diff").arg(&second).arg(&at).assert_exit(0);
    let before = format!("{}@1999-12-31T23:59:59Z", src.display());
    t.cmd().arg("diff").arg(&before).arg(&second).assert_exit(2);
}

#[test]
fn bad_operands_exit_2() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    // An SSH origin is an operand (tests/origin_registry.rs); a scheme this build has no
    // transport for is refused, named.
    let out = t
        .cmd()
        .arg("diff")
        .arg("webdav://bucket/music")
        .arg(&src)
        .assert_exit(2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no transport for webdav://"), "{err}");
    t.cmd()
        .arg("diff")
        .arg(&src)
        .arg("0123456789abcdef")
        .assert_exit(2);
    t.cmd()
        .arg("diff")
        .arg(&src)
        .arg(t.path("missing"))
        .assert_exit(2);
    t.cmd()
        .arg("diff")
        .arg(format!("{}@2026-02-30", src.display()))
        .assert_exit(2);
}
