//! `musicfs verify DIR` tells damage from edits.
//!
//! Damage is content that changed while the metadata the last scan recorded (size, mtime,
//! ctime, inode, device, mode) did not: bit rot, or a write that bypassed the file system. A
//! file whose metadata changed was edited since the last scan, which is not damage: a retag
//! by a real tag editor (even one that keeps the mtime and the size) is reported as edited
//! with its audio verified against the snapshot's audio hash, a re-encode as edited with its
//! audio changed, a touch as nothing at all (the content is the snapshot's). Only damage gives
//! exit 1.
//!
//! Damage behind unchanged metadata cannot be made through the file system: every write, and
//! every restored mtime, sets the ctime, which no user can set back. The damage test therefore
//! flips a byte where bit rot would: in the disk image beneath a loop-mounted ext4 file
//! system, which needs root (as the whole suite does, see scripts/test.sh).

mod util;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;
use util::editors::*;
use util::ext4::{stat_key, Ext4};
use util::*;

/// The `--json` lines of `musicfs verify DIR` that name a file, and the summary, asserting
/// the exit code.
fn verify_json(t: &TestRepo, dir: &Path, code: i32) -> (Vec<Value>, Value) {
    let out = t.cmd().json().arg("verify").arg(dir).assert_exit(code);
    let summary = summary_of(&out);
    let mut lines = parse_json_lines(&out.stdout);
    lines.pop();
    (lines, summary)
}

/// The one JSON line for `path`.
fn line_for<'a>(lines: &'a [Value], path: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["path"] == path).collect();
    assert_eq!(found.len(), 1, "one line for {path}: {lines:?}");
    found[0]
}

/// The verdict counts of a summary, in a fixed order: ok, edited, missing, unreadable,
/// damaged.
fn verdicts(summary: &Value) -> [u64; 5] {
    ["ok", "edited", "missing", "unreadable", "damaged"].map(|k| num(summary, k))
}

#[test]
fn edits_by_real_tools_are_edits_not_damage() {
    let t = TestRepo::new();
    let lib = t.fixtures("lib");
    let files = files_in(&lib).len() as u64;
    // metaflac keeps the mtime to the second: give it one without a fraction.
    let sine = lib.join(SINE);
    let seconds = mtime(&sine).duration_since(UNIX_EPOCH).unwrap().as_secs();
    set_mtime(&sine, UNIX_EPOCH + Duration::from_secs(seconds));
    t.cmd().arg("scan").arg(&lib).summary();

    // A retag in place by id3v2.
    id3v2_title(&lib.join(DAWN), "Sunrise");
    // A retag by metaflac that keeps the mtime, and the size (the tag grows into the
    // padding): only the ctime tells.
    let (size, modified) = (fs::metadata(&sine).unwrap().size(), mtime(&sine));
    let content = fs::read(&sine).unwrap();
    metaflac(
        &sine,
        [
            "--preserve-modtime",
            "--remove-tag=TITLE",
            "--set-tag=TITLE=Sine Wave",
        ],
    );
    assert_eq!(
        (fs::metadata(&sine).unwrap().size(), mtime(&sine)),
        (size, modified)
    );
    assert_ne!(
        fs::read(&sine).unwrap(),
        content,
        "metaflac changed nothing"
    );
    // The same recording re-encoded by ffmpeg.
    reencode_mp3(&lib.join(DUSK), t.root());
    // A new picture where the old one was: no audio to compare.
    fs::copy(new_cover(t.root()), lib.join(COVER_JPG)).unwrap();
    // Touched: new times, same content.
    run_ok(Command::new("touch").arg(lib.join(ZENITH)));
    // Deleted.
    fs::remove_file(lib.join(PLAIN)).unwrap();

    let out = t.cmd().arg("verify").arg(&lib).assert_exit(0);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("DAMAGED"), "{text}");
    for line in [
        format!("edited {DAWN}: tags edited, audio verified"),
        format!("edited {SINE}: tags edited, audio verified"),
        format!("edited {DUSK}: audio changed"),
        format!("edited {COVER_JPG}: "),
        format!("missing {PLAIN}"),
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&line)),
            "no line starting {line:?}:\n{text}"
        );
    }
    assert!(
        !text.contains(ZENITH),
        "a touched file is not reported:\n{text}"
    );
    let summary = text.lines().last().unwrap();
    assert!(
        summary.contains(&format!("{} ok, 4 edited, 1 missing", files - 5))
            && summary.contains("0 damaged"),
        "{summary}"
    );

    let (lines, summary) = verify_json(&t, &lib, 0);
    assert_eq!(lines.len(), 5, "{lines:?}");
    for (path, audio) in [
        (DAWN, "verified"),
        (SINE, "verified"),
        (DUSK, "changed"),
        (COVER_JPG, "unknown"),
    ] {
        let l = line_for(&lines, path);
        assert_eq!(l["type"], "edited", "{l}");
        assert_eq!(l["audio"], audio, "{l}");
        assert!(l["reason"].is_string(), "{l}");
    }
    assert_eq!(line_for(&lines, PLAIN)["type"], "missing");
    assert_eq!(verdicts(&summary), [files - 5, 4, 1, 0, 0], "{summary}");
    assert_eq!(num(&summary, "files"), files, "{summary}");

    // Scanned, the edits are the snapshot: nothing left to report.
    t.cmd().arg("scan").arg(&lib).summary();
    let (lines, summary) = verify_json(&t, &lib, 0);
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(verdicts(&summary), [files - 1, 0, 0, 0, 0], "{summary}");
}

#[test]
fn damage_behind_unchanged_metadata_is_damage() {
    let t = TestRepo::new();
    let disk = Ext4::new(&t);
    let lib = disk.mount.join("lib");
    copy_tree(&fixtures_audio(), &lib);
    let files = files_in(&lib).len() as u64;
    t.cmd().arg("scan").arg(&lib).summary();

    let zenith = lib.join(ZENITH);
    let (before, content) = (stat_key(&zenith), fs::read(&zenith).unwrap());
    disk.rot(&zenith, content.len() as u64 / 2);
    assert_eq!(stat_key(&zenith), before, "the metadata changed");
    let after = fs::read(&zenith).unwrap();
    let differing = content.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert_eq!(
        (after.len(), differing),
        (content.len(), 1),
        "one byte changed"
    );
    // And an edit beside it, which stays an edit.
    id3v2_title(&lib.join(DAWN), "Sunrise");

    let out = t.cmd().arg("verify").arg(&lib).assert_exit(1);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("DAMAGED {ZENITH}: "))),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == format!("edited {DAWN}: tags edited, audio verified")),
        "{text}"
    );
    assert_eq!(text.matches("DAMAGED").count(), 1, "{text}");

    let (lines, summary) = verify_json(&t, &lib, 1);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let damaged = line_for(&lines, ZENITH);
    assert_eq!(damaged["type"], "damaged", "{damaged}");
    assert!(damaged["reason"].is_string(), "{damaged}");
    assert_eq!(line_for(&lines, DAWN)["type"], "edited");
    assert_eq!(verdicts(&summary), [files - 2, 1, 0, 0, 1], "{summary}");
}

/// A file verify cannot read is neither damage nor an edit: it is reported, and the run is
/// partial (exit 3).
#[test]
fn an_unreadable_file_is_reported_and_the_run_is_partial() {
    let t = TestRepo::unprivileged();
    t.sh_unprivileged("mkdir lib; echo one > lib/a.txt; echo two > lib/b.txt");
    let lib = t.path("lib");
    t.cmd_unprivileged().arg("scan").arg(&lib).summary();
    t.sh_unprivileged("chmod 000 lib/a.txt");

    let out = t.cmd_unprivileged().arg("verify").arg(&lib).assert_exit(3);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("unreadable a.txt: ")),
        "{text}"
    );
    let out = t
        .cmd_unprivileged()
        .json()
        .arg("verify")
        .arg(&lib)
        .assert_exit(3);
    let summary = summary_of(&out);
    let lines = parse_json_lines(&out.stdout);
    assert_eq!(line_for(&lines, "a.txt")["type"], "unreadable");
    assert_eq!(verdicts(&summary), [1, 0, 0, 1, 0], "{summary}");
}
