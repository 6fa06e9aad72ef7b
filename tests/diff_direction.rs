//! Which way `musicfs diff A B` reads: from A to B, as diff(1), `git diff`, `restic diff` and
//! `borg diff` do. `added` is in B only, `removed` in A only, a move goes from its path in A
//! (`from`) to its path in B, and a tag field's `before` is A's value, `after` B's.
//!
//! One library is mirrored, then edited once with real tools so that every class appears:
//! added, removed, modified, tags (with a field), art, moved, moved and retagged, type. The
//! old state and the new are then compared through every kind of operand (two directories,
//! two snapshot ids, `ORIGIN@TIME` against the origin now, and one operand), in every output
//! form (text, `--stat`, `--name-only`, JSON). Swapping the operands mirrors every line.

mod util;

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use util::editors::*;
use util::*;

const NEW: &str = "Lossless Ensemble/Waveforms/03 New Tone.flac";
const STATIC_MOVED: &str = "Aurora Tones/First Light/01 Static.mp3";
const SINE_MOVED: &str = "Riff Raff/Chunks/07 Sine Wave.flac";

/// The classes in the order the summary counts them.
const CLASSES: [&str; 7] = [
    "added", "removed", "modified", "tags", "art", "moved", "type",
];

/// One change line as expected.
#[derive(Clone, Debug)]
struct Expected {
    class: &'static str,
    path: &'static str,
    /// For moves: the path in A.
    from: Option<&'static str>,
    /// The title field's values in A and in B, when it changed.
    title: Option<(&'static str, &'static str)>,
    /// For `type`: the kinds in A and in B.
    kinds: Option<(&'static str, &'static str)>,
}

fn change(class: &'static str, path: &'static str) -> Expected {
    Expected {
        class,
        path,
        from: None,
        title: None,
        kinds: None,
    }
}

impl Expected {
    /// The same change read the other way (B to A).
    fn mirrored(&self) -> Expected {
        let mut m = self.clone();
        match self.class {
            "added" => m.class = "removed",
            "removed" => m.class = "added",
            "moved" => {
                m.path = self.from.expect("a move has a from");
                m.from = Some(self.path);
            }
            _ => {}
        }
        m.title = self.title.map(|(a, b)| (b, a));
        m.kinds = self.kinds.map(|(a, b)| (b, a));
        m
    }

    fn dir_and_name(&self) -> (&'static str, &'static str) {
        self.path.rsplit_once('/').unwrap_or(("", self.path))
    }
}

/// From the mirrored fixtures (A) to the edited ones (B), in output order: by directory,
/// then by name.
fn forward() -> Vec<Expected> {
    vec![
        Expected {
            title: Some(("Dawn", "Sunrise")),
            ..change("tags", DAWN)
        },
        Expected {
            from: Some(STATIC),
            ..change("moved", STATIC_MOVED)
        },
        Expected {
            kinds: Some(("file", "directory")),
            ..change("type", COVER_JPG)
        },
        change("art", BROWN),
        change("added", NEW),
        change("removed", PLAIN),
        change("modified", WAV),
        Expected {
            from: Some(SINE),
            title: Some(("Pure Sine", "Sine Wave")),
            ..change("moved", SINE_MOVED)
        },
    ]
}

/// From the edited library (A) back to the mirrored fixtures (B).
fn backward() -> Vec<Expected> {
    let mut changes: Vec<Expected> = forward().iter().map(Expected::mirrored).collect();
    changes.sort_by_key(|c| c.dir_and_name());
    changes
}

/// The fixtures mirrored to DST, then SRC edited; `first` is SRC's snapshot before the edits
/// and `between` a time after it and before any later one.
struct Scene {
    t: TestRepo,
    src: PathBuf,
    dst: PathBuf,
    first: String,
    between: String,
}

fn scene() -> Scene {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    t.cmd().arg("sync").arg(&src).arg(&dst).summary();
    let first = t.cmd().arg("scan").arg(&src).summary()["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    // Every snapshot of SRC so far was taken before this instant, every later one after it.
    let between = rfc3339_ns(SystemTime::now());

    let image = new_cover(t.root());
    new_flac(&src.join(NEW), "New Tone");
    fs::remove_file(src.join(PLAIN)).unwrap();
    flip_middle_byte(&src.join(WAV));
    id3v2_title(&src.join(DAWN), "Sunrise");
    metaflac_cover(&src.join(BROWN), &image);
    mv(&src.join(STATIC), &src.join(STATIC_MOVED));
    mv(&src.join(SINE), &src.join(SINE_MOVED));
    metaflac_title(&src.join(SINE_MOVED), "Sine Wave");
    fs::remove_file(src.join(COVER_JPG)).unwrap();
    fs::create_dir(src.join(COVER_JPG)).unwrap();
    Scene {
        t,
        src,
        dst,
        first,
        between,
    }
}

/// A time as RFC 3339 UTC with nanoseconds (`2026-11-24T20:00:00.123456789Z`).
fn rfc3339_ns(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).expect("after 1970");
    let civil = musicfs::time::Civil::of_unix(since.as_secs() as i64);
    format!("{}.{:09}Z", civil.format('T'), since.subsec_nanos())
}

#[test]
fn rfc3339_with_nanoseconds() {
    let t = UNIX_EPOCH + std::time::Duration::new(1_795_545_199, 5);
    assert_eq!(rfc3339_ns(t), "2026-11-24T18:33:19.000000005Z");
}

/// Runs `musicfs [--json] diff FLAGS OPERANDS`, asserting exit 1 (there are differences);
/// returns stdout.
fn run(t: &TestRepo, json: bool, flags: &[&str], operands: &[OsString]) -> String {
    let mut cmd = t.cmd();
    if json {
        cmd.json();
    }
    let out = cmd.arg("diff").args(flags).args(operands).assert_exit(1);
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A line with its runs of spaces (the text form's alignment) collapsed to one.
fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn title_values(v: &Value, side: &str) -> Vec<String> {
    v[side]
        .as_array()
        .unwrap_or_else(|| panic!("{side} is not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string value").to_string())
        .collect()
}

/// The JSON lines are exactly `expected`, in order, each read the right way; the summary
/// counts them. Returns `bytes_to_transfer`.
fn check_json(what: &str, stdout: &str, expected: &[Expected]) -> u64 {
    let mut lines = parse_json_lines(stdout.as_bytes());
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{what}: {stdout}");
    assert_eq!(lines.len(), expected.len(), "{what}: {stdout}");
    for (line, e) in lines.iter().zip(expected) {
        let context = format!("{what}: expected {e:?}, got {line}");
        assert_eq!(line["type"], e.class, "{context}");
        assert_eq!(line["path"], e.path, "{context}");
        assert_eq!(line["from"].as_str(), e.from, "{context}");
        match e.kinds {
            Some((before, after)) => {
                assert_eq!(line["before"], before, "{context}");
                assert_eq!(line["after"], after, "{context}");
            }
            None => assert!(line.get("before").is_none(), "{context}"),
        }
        let title = line["fields"]
            .as_array()
            .and_then(|fields| fields.iter().find(|f| f["field"] == "title"));
        match e.title {
            Some((before, after)) => {
                let title = title.unwrap_or_else(|| panic!("no title field: {context}"));
                assert_eq!(title_values(title, "before"), [before], "{context}");
                assert_eq!(title_values(title, "after"), [after], "{context}");
            }
            None => assert!(title.is_none(), "{context}"),
        }
        if e.class == "tags" || (e.class == "moved" && e.title.is_some()) {
            assert!(line["fields"].is_array(), "{context}");
        } else {
            assert!(line.get("fields").is_none(), "{context}");
        }
    }
    for class in CLASSES {
        let n = expected.iter().filter(|e| e.class == class).count() as u64;
        assert_eq!(num(&summary["counts"], class), n, "{what}: {summary}");
    }
    assert_eq!(num(&summary, "changes"), expected.len() as u64, "{what}");
    num(&summary, "bytes_to_transfer")
}

/// The summary line's counts, as the text and `--stat` forms end.
fn counts_line(expected: &[Expected]) -> String {
    let counts: Vec<String> = CLASSES
        .iter()
        .map(|class| (class, expected.iter().filter(|e| e.class == *class).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(class, n)| format!("{n} {class}"))
        .collect();
    format!("{} changed: {}; ", expected.len(), counts.join(", "))
}

/// The text form: a heading per directory, then each change, its details read from A to B.
fn check_text(what: &str, stdout: &str, expected: &[Expected]) {
    let lines: Vec<String> = stdout.lines().map(squeeze).collect();
    let (summary, body) = lines.split_last().expect("output");
    assert!(
        summary.starts_with(&counts_line(expected)),
        "{what}: summary {summary:?}"
    );
    let mut want: Vec<(String, Option<String>)> = Vec::new();
    let mut dir = None;
    for e in expected {
        let (d, name) = e.dir_and_name();
        if dir != Some(d) {
            want.push((format!("{d}/"), None));
            dir = Some(d);
        }
        let mut details = Vec::new();
        if let Some(from) = e.from {
            details.push(format!("← {from}"));
        }
        if let Some((before, after)) = e.kinds {
            details.push(format!("{before} → {after}"));
        }
        if let Some((before, after)) = e.title {
            details.push(format!("title: \"{before}\" → \"{after}\""));
        }
        if e.class == "art" {
            details.push("(embedded pictures changed)".to_string());
        }
        want.push((format!("{} {name}", e.class), Some(details.join("; "))));
    }
    assert_eq!(body.len(), want.len(), "{what}:\n{stdout}");
    for (line, (start, details)) in body.iter().zip(&want) {
        assert!(
            line.starts_with(start.as_str()),
            "{what}: {line:?} is not {start:?}\n{stdout}"
        );
        if let Some(details) = details {
            assert!(
                line.contains(details.as_str()),
                "{what}: {line:?} lacks {details:?}\n{stdout}"
            );
        }
    }
}

/// `--stat`: one line per directory with its counts, then the summary line.
fn check_stat(what: &str, stdout: &str, expected: &[Expected]) {
    let lines: Vec<String> = stdout.lines().map(squeeze).collect();
    let (summary, body) = lines.split_last().expect("output");
    assert!(
        summary.starts_with(&counts_line(expected)),
        "{what}: summary {summary:?}"
    );
    let mut want: Vec<String> = Vec::new();
    let mut dirs: Vec<&str> = expected.iter().map(|e| e.dir_and_name().0).collect();
    dirs.dedup();
    for dir in dirs {
        let counts: Vec<String> = CLASSES
            .iter()
            .map(|class| {
                let n = expected
                    .iter()
                    .filter(|e| e.dir_and_name().0 == dir && e.class == *class)
                    .count();
                (class, n)
            })
            .filter(|(_, n)| *n > 0)
            .map(|(class, n)| format!("{n} {class}"))
            .collect();
        want.push(format!("{dir}/ {}", counts.join(", ")));
    }
    assert_eq!(body, want.as_slice(), "{what}:\n{stdout}");
}

/// `--name-only`: each change's path in B (in A for `removed`), in order.
fn check_names(what: &str, stdout: &str, expected: &[Expected]) {
    let want: Vec<&str> = expected.iter().map(|e| e.path).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{what}");
}

/// Every output form of `diff OPERANDS`; returns `bytes_to_transfer`.
fn check_all_forms(t: &TestRepo, what: &str, operands: &[OsString], expected: &[Expected]) -> u64 {
    let bytes = check_json(what, &run(t, true, &[], operands), expected);
    check_text(what, &run(t, false, &[], operands), expected);
    check_stat(what, &run(t, false, &["--stat"], operands), expected);
    check_names(what, &run(t, false, &["--name-only"], operands), expected);
    bytes
}

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

#[test]
fn diff_reads_from_a_to_b_for_every_operand_and_output_form() {
    let Scene {
        t,
        src,
        dst,
        first,
        between,
    } = scene();
    let (forward, backward) = (forward(), backward());

    // One operand first, while SRC's last snapshot is the one before the edits: from that
    // snapshot to SRC now. (That scan records SRC's new snapshot: run again, the same command
    // finds no differences, so it is run in one form.)
    check_json("diff SRC", &run(&t, true, &[], &[os(&src)]), &forward);
    let second = t.cmd().arg("scan").arg(&src).summary()["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    assert_ne!(second, first);

    // ORIGIN@TIME against the origin now: what changed since then.
    let mut then = src.clone().into_os_string();
    then.push(format!("@{between}"));
    let since = check_all_forms(&t, "diff SRC@TIME SRC", &[then, os(&src)], &forward);

    // Two snapshot ids, both ways, and the later one alone (against the one before it).
    let ids = check_all_forms(
        &t,
        "diff FIRST SECOND",
        &[os(&first), os(&second)],
        &forward,
    );
    check_all_forms(
        &t,
        "diff SECOND FIRST",
        &[os(&second), os(&first)],
        &backward,
    );
    check_all_forms(&t, "diff SECOND", &[os(&second)], &forward);

    // Two directories, both ways: `diff DST SRC` is what `sync SRC DST` changes at DST.
    let bytes = check_all_forms(&t, "diff DST SRC", &[os(&dst), os(&src)], &forward);
    check_all_forms(&t, "diff SRC DST", &[os(&src), os(&dst)], &backward);

    // The bytes of new data in B: exactly what `sync SRC DST` moves when A is DST's current
    // state; an upper bound when A is an older snapshot, whose chunk locations are not kept.
    assert!(bytes > 0);
    assert!(since >= bytes && ids >= bytes, "{since} {ids} {bytes}");
    let sync = t.cmd().arg("sync").arg(&src).arg(&dst).summary();
    assert_eq!(num(&sync, "bytes_transferred"), bytes, "{sync}");
}
