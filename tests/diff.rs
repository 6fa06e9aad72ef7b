//! `musicfs diff` on real files edited by real tools.
//!
//! Every test starts from a copy of `fixtures/audio`, usually mirrored once into DST with
//! `musicfs sync`, then changes SRC the way a user does: Debian's `id3v2`, `metaflac`,
//! `vorbiscomment` and `kid3-cli`, mutagen (through `scripts/tagbench.py`), ffmpeg and
//! oggenc for new audio and pictures, `mv`, `rm`, `ln -s`. `musicfs --json diff DST SRC`
//! (from the mirror to the edited library) must then name each change with its class
//! (`added`, `removed`, `modified`, `tags`, `art`, `moved`, `type`), the tag fields with their
//! exact values before (DST) and after (SRC), and a summary whose counts agree with the lines,
//! whose `bytes_to_transfer` is what the following `sync SRC DST` moves, and an exit code of 0
//! only when nothing differs. (`tests/diff_direction.rs` pins the direction for every class,
//! operand and output form.)
//!
//! The Ogg Vorbis file retagged with `vorbiscomment` is made by oggenc in the test: on
//! ffmpeg's Ogg files `vorbiscomment` re-paginates the whole stream (see tests/tag_edits.rs),
//! which is another case than a retag.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.

mod util;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use util::editors::*;
use util::*;

/// The change classes, in the order the summary counts them.
const CLASSES: [&str; 7] = [
    "added", "removed", "modified", "tags", "art", "moved", "type",
];

// --- running diff ----------------------------------------------------------------------

/// The parsed output of one `musicfs --json diff` run that exited 0 or 1.
struct DiffOutput {
    code: i32,
    changes: Vec<Value>,
    summary: Value,
    /// The command line, for failure messages.
    what: String,
}

impl DiffOutput {
    fn count(&self, class: &str) -> u64 {
        num(&self.summary["counts"], class)
    }

    fn bytes_to_transfer(&self) -> u64 {
        num(&self.summary, "bytes_to_transfer")
    }

    /// `(class, path)` of every change line.
    fn classes(&self) -> BTreeSet<(String, String)> {
        self.changes
            .iter()
            .map(|c| (str_of(c, "type"), path_of(c)))
            .collect()
    }

    /// Asserts the change lines are exactly `expected` (class, path), in any order.
    fn assert_changes(&self, expected: &[(&str, &str)]) {
        let want: BTreeSet<(String, String)> = expected
            .iter()
            .map(|(c, p)| (c.to_string(), p.to_string()))
            .collect();
        assert_eq!(
            self.classes(),
            want,
            "{}: unexpected changes\n{}",
            self.what,
            self.dump()
        );
        assert_eq!(
            self.changes.len(),
            expected.len(),
            "{}: a path reported twice\n{}",
            self.what,
            self.dump()
        );
    }

    /// The one change line for `path`.
    fn change(&self, path: &str) -> &Value {
        let found: Vec<&Value> = self.changes.iter().filter(|c| path_of(c) == path).collect();
        assert_eq!(
            found.len(),
            1,
            "{}: expected one change for {path:?}\n{}",
            self.what,
            self.dump()
        );
        found[0]
    }

    fn dump(&self) -> String {
        self.changes
            .iter()
            .chain(std::iter::once(&self.summary))
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A change's path, without the `/` that marks a directory.
fn path_of(change: &Value) -> String {
    str_of(change, "path").trim_end_matches('/').to_string()
}

fn str_of(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key:?} missing or not a string in {v}"))
        .to_string()
}

/// `musicfs --json diff OPERANDS...`: asserts exit 0 or 1, one well-formed line per change,
/// a summary that agrees with the lines, and an exit code that agrees with the summary.
fn diff<I, S>(t: &TestRepo, operands: I) -> DiffOutput
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = t.cmd();
    cmd.json().arg("diff").args(operands);
    let what = format!("{:?}", cmd.command());
    let out = cmd.output();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{what}: exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = summary_of(&out);
    let mut changes = parse_json_lines(&out.stdout);
    changes.pop();
    for c in &changes {
        let class = str_of(c, "type");
        assert!(
            CLASSES.contains(&class.as_str()),
            "{what}: unknown change type in {c}"
        );
        str_of(c, "path");
        assert_eq!(
            c.get("from").is_some(),
            class == "moved",
            "{what}: `from` is for moves only: {c}"
        );
        if let Some(fields) = c.get("fields") {
            for f in fields.as_array().expect("fields is an array") {
                str_of(f, "field");
                for side in ["before", "after"] {
                    assert!(
                        f[side]
                            .as_array()
                            .is_some_and(|v| v.iter().all(Value::is_string)),
                        "{what}: {side} is not an array of strings: {f}"
                    );
                }
            }
        }
    }
    let result = DiffOutput {
        code,
        changes,
        summary,
        what,
    };
    let counts = &result.summary["counts"];
    let mut total = 0;
    for class in CLASSES {
        let lines = result.changes.iter().filter(|c| c["type"] == class).count() as u64;
        assert_eq!(
            num(counts, class),
            lines,
            "{}: summary count of {class} disagrees with the lines\n{}",
            result.what,
            result.dump()
        );
        total += lines;
    }
    assert_eq!(
        num(&result.summary, "changes"),
        total,
        "{}: summary",
        result.what
    );
    assert_eq!(
        result.code,
        i32::from(total > 0),
        "{}: exit code against {total} changes",
        result.what
    );
    result
}

/// `(before, after)` of tag field `name` in a change line.
fn field(change: &Value, name: &str) -> (Vec<String>, Vec<String>) {
    let fields = change["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("no fields in {change}"));
    let f = fields
        .iter()
        .find(|f| f["field"] == name)
        .unwrap_or_else(|| panic!("no field {name:?} in {change}"));
    let values = |side: &str| -> Vec<String> {
        f[side]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    (values("before"), values("after"))
}

fn field_names(change: &Value) -> Vec<String> {
    change["fields"]
        .as_array()
        .map(|fs| fs.iter().map(|f| str_of(f, "field")).collect())
        .unwrap_or_default()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Asserts the change for `path` is a `tags` change whose `title` went from `before` to
/// `after`.
fn assert_retitled(d: &DiffOutput, path: &str, before: &str, after: &str) {
    let c = d.change(path);
    assert_eq!(c["type"], "tags", "{path}: {c}");
    assert_eq!(
        field(c, "title"),
        (strings(&[before]), strings(&[after])),
        "{path}: {c}"
    );
}

// --- scenes ----------------------------------------------------------------------------

/// The fixtures copied to SRC and mirrored to DST by `musicfs sync`.
struct Mirror {
    t: TestRepo,
    src: PathBuf,
    dst: PathBuf,
}

impl Mirror {
    fn new() -> Mirror {
        Mirror::with(|_| {})
    }

    /// `prepare` runs on SRC before the first sync.
    fn with(prepare: impl FnOnce(&Path)) -> Mirror {
        let t = TestRepo::new();
        let src = t.fixtures("src");
        prepare(&src);
        let dst = t.path("dst");
        t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
        assert_trees_equal(&src, &dst);
        Mirror { t, src, dst }
    }

    fn s(&self, rel: &str) -> PathBuf {
        self.src.join(rel)
    }

    /// `diff DST SRC`: from the mirror to the edited library.
    fn diff(&self) -> DiffOutput {
        diff(&self.t, [&self.dst, &self.src])
    }
}

// --- tests -----------------------------------------------------------------------------

#[test]
fn identical_trees_have_no_differences() {
    let m = Mirror::new();
    let d = m.diff();
    assert_eq!(d.code, 0, "{}", d.dump());
    assert!(d.changes.is_empty(), "{}", d.dump());
    for class in CLASSES {
        assert_eq!(d.count(class), 0, "{}", d.dump());
    }
    assert_eq!(num(&d.summary, "changes"), 0);
    assert_eq!(d.bytes_to_transfer(), 0, "{}", d.dump());
    // The sync scanned SRC: unchanged since, it equals its last snapshot.
    let one = diff(&m.t, [&m.src]);
    assert_eq!(one.code, 0, "{}", one.dump());
}

/// A new title written by each container's editor is a `tags` change with that field's exact
/// values.
#[test]
fn retitles_by_each_editor_are_tags_changes() {
    const OGGENC: &str = "Café Tonal/Xiph Sessions/03 Oggenc Tone.ogg";
    let m = Mirror::with(|src| oggenc_track(&src.join(WAV), &src.join(OGGENC), "Oggenc Tone"));
    id3v2_title(&m.s(DAWN), "Sunrise");
    metaflac_title(&m.s(SINE), "Sine Wave");
    vorbiscomment_title(&m.s(OGGENC), "Oggenc Tune");
    mutagen_title(&m.s(OPUS), "Opus Hiss");
    kid3_title(&m.s(PLAIN), "Unadorned");
    // mutagen on an MP4 file, too.
    mutagen_title(&m.s(COVERED), "Under Cover");

    let d = m.diff();
    d.assert_changes(&[
        ("tags", DAWN),
        ("tags", SINE),
        ("tags", OGGENC),
        ("tags", OPUS),
        ("tags", PLAIN),
        ("tags", COVERED),
    ]);
    assert_retitled(&d, DAWN, "Dawn", "Sunrise");
    assert_retitled(&d, SINE, "Pure Sine", "Sine Wave");
    assert_retitled(&d, OGGENC, "Oggenc Tone", "Oggenc Tune");
    assert_retitled(&d, OPUS, "Opus Noise", "Opus Hiss");
    assert_retitled(&d, PLAIN, "Plain", "Unadorned");
    assert_retitled(&d, COVERED, "Covered", "Under Cover");
    // metaflac and vorbiscomment touch nothing else.
    for path in [SINE, OGGENC] {
        assert_eq!(field_names(d.change(path)), ["title"], "{}", d.dump());
    }
    assert_eq!(d.count("tags"), 6);
}

/// Two artists in FLAC (two ARTIST comments), then their order swapped.
#[test]
fn multi_valued_fields_keep_every_value_in_order() {
    let m = Mirror::new();
    metaflac(
        &m.s(BROWN),
        [
            "--remove-tag=ARTIST",
            "--set-tag=ARTIST=Alpha",
            "--set-tag=ARTIST=Beta",
        ],
    );
    let d = m.diff();
    d.assert_changes(&[("tags", BROWN)]);
    let c = d.change(BROWN);
    assert_eq!(
        field(c, "artist"),
        (strings(&["Lossless Ensemble"]), strings(&["Alpha", "Beta"])),
        "{c}"
    );
    assert_eq!(field_names(c), ["artist"], "{c}");

    // Mirror it, then swap the two values: the order is part of the field.
    m.t.cmd().arg("sync").arg(&m.src).arg(&m.dst).assert_exit(0);
    assert_eq!(m.diff().code, 0);
    metaflac(
        &m.s(BROWN),
        [
            "--remove-tag=ARTIST",
            "--set-tag=ARTIST=Beta",
            "--set-tag=ARTIST=Alpha",
        ],
    );
    let d = m.diff();
    d.assert_changes(&[("tags", BROWN)]);
    assert_eq!(
        field(d.change(BROWN), "artist"),
        (strings(&["Alpha", "Beta"]), strings(&["Beta", "Alpha"])),
        "{}",
        d.dump()
    );
}

/// A picture replaced (FLAC by metaflac, MP4 by mutagen) or added (MP3 by mutagen), text tags
/// untouched: `art`.
#[test]
fn picture_changes_are_art() {
    let m = Mirror::new();
    let image = new_cover(m.t.root());
    metaflac_cover(&m.s(BROWN), &image);
    mutagen_cover(&m.s(COVERED), &image);
    mutagen_cover(&m.s(STATIC), &image);
    let d = m.diff();
    d.assert_changes(&[("art", BROWN), ("art", COVERED), ("art", STATIC)]);
    for path in [BROWN, COVERED, STATIC] {
        assert!(
            field_names(d.change(path)).is_empty(),
            "an art change has no tag fields: {}",
            d.dump()
        );
    }
    // The picture is new to DST, once: it is in all three files.
    let image_len = fs::metadata(&image).unwrap().len();
    assert!(
        d.bytes_to_transfer() >= image_len && d.bytes_to_transfer() < 3 * image_len,
        "bytes_to_transfer {} for one new picture of {image_len} bytes in three files",
        d.bytes_to_transfer()
    );
}

/// Changed audio bytes, tags kept: `modified`, not `tags`.
#[test]
fn audio_changes_are_modified() {
    let m = Mirror::new();
    flip_middle_byte(&m.s(WAV));
    flip_middle_byte(&m.s(ZENITH));
    // A re-encode of the same tone at another bitrate, the tags copied along.
    let reencoded = m.t.path("reencoded.mp3");
    run_ok(
        ffmpeg()
            .arg("-i")
            .arg(m.s(DUSK))
            .args(["-map", "0:a", "-c:a", "libmp3lame", "-b:a", "96k"])
            .arg(&reencoded),
    );
    fs::rename(&reencoded, m.s(DUSK)).unwrap();
    let d = m.diff();
    d.assert_changes(&[("modified", WAV), ("modified", ZENITH), ("modified", DUSK)]);
}

#[test]
fn moves_name_their_origin() {
    const STATIC_MOVED: &str = "Aurora Tones/First Light/01 Static.mp3";
    const SINE_MOVED: &str = "Riff Raff/Chunks/07 Sine Wave.flac";
    let m = Mirror::new();
    mv(&m.s(STATIC), &m.s(STATIC_MOVED));
    // Moved and retagged: the audio is what identifies it.
    mv(&m.s(SINE), &m.s(SINE_MOVED));
    metaflac_title(&m.s(SINE_MOVED), "Sine Wave");

    let d = m.diff();
    d.assert_changes(&[("moved", STATIC_MOVED), ("moved", SINE_MOVED)]);
    let plain_move = d.change(STATIC_MOVED);
    assert_eq!(plain_move["from"], STATIC, "{plain_move}");
    assert!(field_names(plain_move).is_empty(), "{plain_move}");
    let retagged = d.change(SINE_MOVED);
    assert_eq!(retagged["from"], SINE, "{retagged}");
    assert_eq!(
        field(retagged, "title"),
        (strings(&["Pure Sine"]), strings(&["Sine Wave"])),
        "{retagged}"
    );
    assert_eq!(field_names(retagged), ["title"], "{retagged}");
    // A move carries no file data; the retagged one, its new tag only.
    assert!(
        d.bytes_to_transfer() < 10 * 1024,
        "two moves, one retagged, would move {} bytes\n{}",
        d.bytes_to_transfer(),
        d.dump()
    );
}

/// One file copied to two new places and its old path gone: one of them is the move, the
/// other a new file; neither needs data.
#[test]
fn a_file_moved_and_copied_is_one_move() {
    const FIRST: &str = "Riff Raff/Chunks/01 Static.mp3";
    const SECOND: &str = "MP4 Quartet/Containers/01 Static.mp3";
    let m = Mirror::new();
    fs::copy(m.s(STATIC), m.s(FIRST)).unwrap();
    mv(&m.s(STATIC), &m.s(SECOND));
    let d = m.diff();
    let moved = d
        .changes
        .iter()
        .find(|c| c["type"] == "moved")
        .unwrap_or_else(|| panic!("no move\n{}", d.dump()));
    assert_eq!(moved["from"], STATIC, "{moved}");
    let moved_to = path_of(moved);
    let copy = if moved_to == FIRST { SECOND } else { FIRST };
    d.assert_changes(&[("moved", &moved_to), ("added", copy)]);
    assert_eq!(d.bytes_to_transfer(), 0, "{}", d.dump());
}

#[test]
fn added_and_removed_swap_with_the_operands() {
    const NEW: &str = "Riff Raff/Chunks/02 New Tone.flac";
    const EMPTY: &str = "Riff Raff/Outtakes";
    let m = Mirror::new();
    new_flac(&m.s(NEW), "New Tone");
    fs::create_dir(m.s(EMPTY)).unwrap();
    fs::remove_file(m.s(PLAIN)).unwrap();

    let d = m.diff();
    d.assert_changes(&[("added", NEW), ("added", EMPTY), ("removed", PLAIN)]);
    let new_len = fs::metadata(m.s(NEW)).unwrap().len();
    assert!(
        d.bytes_to_transfer() > 0 && d.bytes_to_transfer() <= new_len,
        "bytes_to_transfer {} for one new file of {new_len} bytes",
        d.bytes_to_transfer()
    );

    let reverse = diff(&m.t, [&m.src, &m.dst]);
    reverse.assert_changes(&[("removed", NEW), ("removed", EMPTY), ("added", PLAIN)]);
}

/// A file replaced by a directory of the same name and one by a symlink; a directory by a
/// file (what it held goes with it) and one by a symlink.
#[test]
fn kind_changes_are_type() {
    const EMPTY: &str = "Riff Raff/Outtakes";
    let m = Mirror::with(|src| fs::create_dir(src.join(EMPTY)).unwrap());
    fs::remove_file(m.s(COVER_JPG)).unwrap();
    fs::create_dir(m.s(COVER_JPG)).unwrap();
    fs::remove_file(m.s(DUSK)).unwrap();
    symlink("01 Dawn.mp3", m.s(DUSK)).unwrap();
    let chunks = parent_of(WAV);
    fs::remove_dir_all(m.s(chunks)).unwrap();
    fs::write(m.s(chunks), "not a folder any more\n").unwrap();
    fs::remove_dir(m.s(EMPTY)).unwrap();
    symlink("../MP4 Quartet", m.s(EMPTY)).unwrap();

    let kinds = [
        (COVER_JPG, "file", "directory"),
        (DUSK, "file", "symlink"),
        (chunks, "directory", "file"),
        (EMPTY, "directory", "symlink"),
    ];
    let expected: Vec<(&str, &str)> = kinds.iter().map(|k| ("type", k.0)).collect();
    let d = m.diff();
    d.assert_changes(&expected);
    let reverse = diff(&m.t, [&m.src, &m.dst]);
    reverse.assert_changes(&expected);
    for (path, before, after) in kinds {
        let c = d.change(path);
        assert_eq!(
            (&c["before"], &c["after"]),
            (&before.into(), &after.into()),
            "{c}"
        );
        let c = reverse.change(path);
        assert_eq!(
            (&c["before"], &c["after"]),
            (&after.into(), &before.into()),
            "{c}"
        );
    }
}

#[test]
fn exit_codes() {
    let m = Mirror::new();
    m.t.cmd().arg("diff").arg(&m.dst).arg(&m.src).assert_exit(0);
    m.t.cmd().arg("diff").arg(&m.src).assert_exit(0);
    id3v2_title(&m.s(DAWN), "Sunrise");
    m.t.cmd().arg("diff").arg(&m.dst).arg(&m.src).assert_exit(1);
    m.t.cmd()
        .json()
        .arg("diff")
        .arg(&m.dst)
        .arg(&m.src)
        .assert_exit(1);
    m.t.cmd()
        .args(["diff", "--name-only"])
        .arg(&m.dst)
        .arg(&m.src)
        .assert_exit(1);
    m.t.cmd()
        .args(["diff", "--stat"])
        .arg(&m.dst)
        .arg(&m.src)
        .assert_exit(1);

    let missing = m.t.path("no-such-dir");
    for (operands, why) in [
        (
            vec![missing.clone().into_os_string(), m.dst.clone().into()],
            "missing A",
        ),
        (
            vec![m.src.clone().into(), missing.clone().into()],
            "missing B",
        ),
        (vec![missing.into_os_string()], "missing single operand"),
        // SSH origins are operands (tests/origin_registry.rs); a scheme with no transport
        // in this build is not.
        (
            vec!["webdav://bucket/music".into(), m.dst.clone().into()],
            "unknown scheme A",
        ),
        (
            vec![m.src.clone().into(), "afp://server/share".into()],
            "unknown scheme B",
        ),
        (
            vec!["deadbeefdeadbeef".into(), m.dst.clone().into()],
            "unknown snapshot",
        ),
    ] {
        let out = m.t.cmd().json().arg("diff").args(&operands).assert_exit(2);
        assert!(
            !out.stderr.is_empty(),
            "{why}: exit 2 without a message on stderr"
        );
    }
}

/// The scenario of the promise: what diff says a sync will move is what it moves.
#[test]
fn bytes_to_transfer_is_what_the_sync_moves() {
    const STATIC_MOVED: &str = "Aurora Tones/First Light/01 Static.mp3";
    const NEW: &str = "Lossless Ensemble/Waveforms/03 New Tone.flac";
    let m = Mirror::new();
    let image = new_cover(m.t.root());
    id3v2_title(&m.s(DAWN), "Sunrise");
    kid3_title(&m.s(PLAIN), "Unadorned");
    metaflac_cover(&m.s(BROWN), &image);
    mv(&m.s(STATIC), &m.s(STATIC_MOVED));
    new_flac(&m.s(NEW), "New Tone");

    let d = m.diff();
    d.assert_changes(&[
        ("tags", DAWN),
        ("tags", PLAIN),
        ("art", BROWN),
        ("moved", STATIC_MOVED),
        ("added", NEW),
    ]);
    let predicted = d.bytes_to_transfer();
    assert!(predicted > 0);

    // --delete so that the move leaves nothing behind and the trees end equal.
    let sync =
        m.t.cmd()
            .args(["sync", "--delete"])
            .arg(&m.src)
            .arg(&m.dst)
            .summary();
    assert_eq!(
        num(&sync, "bytes_transferred"),
        predicted,
        "diff predicted {predicted} bytes, sync moved: {sync}\n{}",
        d.dump()
    );
    assert_trees_equal(&m.src, &m.dst);
    let after = m.diff();
    assert_eq!(after.code, 0, "{}", after.dump());
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-11-24T20:00:00Z`).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_795_545_199), "2026-11-24T18:33:19Z");
}

/// `(id, time in seconds)` of every snapshot of `origin`'s path, oldest first.
fn snapshots_of(t: &TestRepo, snapshot_of_origin: &str) -> Vec<(String, i64)> {
    let lines = t.cmd().arg("snapshots").json_lines();
    let origin = lines
        .iter()
        .find(|l| l["id"] == snapshot_of_origin)
        .unwrap_or_else(|| panic!("snapshot {snapshot_of_origin} not listed: {lines:?}"))["origin"]
        .clone();
    let mut found: Vec<(String, i64)> = lines
        .iter()
        .filter(|l| l["type"] == "snapshot" && l["origin"] == origin)
        .map(|l| (str_of(l, "id"), l["time"].as_i64().expect("time")))
        .collect();
    found.sort_by_key(|(_, time)| *time);
    found
}

/// `diff DIR` against its last scan, and the snapshot-id and `DIR@TIME` operands.
#[test]
fn one_operand_snapshot_ids_and_times() {
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let scan = t.cmd().arg("scan").arg(&src).summary();
    let first = str_of(&scan, "snapshot");
    assert_eq!(diff(&t, [&src]).code, 0);

    // Snapshot times are listed in whole seconds: let one go by so that a time between the
    // two snapshots can be written.
    let first_time = snapshots_of(&t, &first)
        .iter()
        .find(|(id, _)| *id == first)
        .unwrap()
        .1;
    let between = first_time + 1;
    let until = UNIX_EPOCH + Duration::from_secs(between as u64 + 1);
    if let Ok(wait) = until.duration_since(SystemTime::now()) {
        std::thread::sleep(wait);
    }

    metaflac_title(&src.join(SINE), "Sine Wave");
    let d = diff(&t, [&src]);
    d.assert_changes(&[("tags", SINE)]);
    assert_retitled(&d, SINE, "Pure Sine", "Sine Wave");
    // That diff scanned SRC: its last snapshot now holds the edit.
    assert_eq!(diff(&t, [&src]).code, 0);

    let snaps = snapshots_of(&t, &first);
    assert_eq!(snaps.len(), 2, "two snapshots of SRC: {snaps:?}");
    assert_eq!(snaps[0].0, first);
    let second = snaps[1].0.clone();
    assert!(snaps[1].1 > between, "{snaps:?}");

    let src_at = |time: &str| {
        let mut s = src.clone().into_os_string();
        s.push(format!("@{time}"));
        s
    };
    let forms: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec![first.clone().into(), second.clone().into()],
            "full ids",
        ),
        (vec![first[..12].into(), second[..8].into()], "id prefixes"),
        (
            vec![first[..8].into(), src.clone().into()],
            "id and directory",
        ),
        (
            // A date stands for the end of that day.
            vec![
                src_at(&rfc3339(between)),
                src_at(&rfc3339(snaps[1].1)[..10]),
            ],
            "DIR@RFC 3339 and DIR@date",
        ),
        (
            vec![
                src_at(&rfc3339(between)),
                src_at(&rfc3339(first_time + 3600)),
            ],
            "DIR@RFC 3339 twice",
        ),
    ];
    for (operands, what) in forms {
        let d = diff(&t, &operands);
        d.assert_changes(&[("tags", SINE)]);
        assert_eq!(
            field(d.change(SINE), "title"),
            (strings(&["Pure Sine"]), strings(&["Sine Wave"])),
            "{what}: {}",
            d.dump()
        );
    }
    // New side first: the change reads backwards.
    let back = diff(&t, [&second, &first]);
    assert_retitled(&back, SINE, "Sine Wave", "Pure Sine");
    assert_eq!(diff(&t, [second.as_str(), &second[..10]]).code, 0);

    // No snapshot of SRC is that old.
    t.cmd()
        .arg("diff")
        .arg(src_at("2000-01-01"))
        .arg(&src)
        .assert_exit(2);
}

/// Changes in four directories, one with a non-ASCII name, for the three text forms.
fn text_scene() -> (Mirror, DiffOutput) {
    const NEW: &str = "Riff Raff/Chunks/notes.txt";
    let m = Mirror::new();
    let image = new_cover(m.t.root());
    id3v2_title(&m.s(DAWN), "Sunrise");
    fs::remove_file(m.s(DUSK)).unwrap();
    metaflac_cover(&m.s(BROWN), &image);
    mutagen_title(&m.s(OPUS), "Opus Hiss");
    fs::write(m.s(NEW), "liner notes, typed by hand\n").unwrap();
    let d = m.diff();
    d.assert_changes(&[
        ("tags", DAWN),
        ("removed", DUSK),
        ("art", BROWN),
        ("tags", OPUS),
        ("added", NEW),
    ]);
    (m, d)
}

fn text_of(m: &Mirror, flags: &[&str]) -> Vec<String> {
    let out =
        m.t.cmd()
            .arg("diff")
            .args(flags)
            .arg(&m.dst)
            .arg(&m.src)
            .assert_exit(1);
    String::from_utf8(out.stdout)
        .expect("UTF-8 output")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

fn name_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, name)| name)
}

/// The summary line: the number of changes and the count of every class that has any.
fn assert_summary_line(line: &str, d: &DiffOutput) {
    let total = num(&d.summary, "changes");
    assert!(
        line.contains(&total.to_string()),
        "summary line {line:?} lacks the total {total}"
    );
    for class in CLASSES {
        let n = d.count(class);
        if n > 0 {
            assert!(
                line.contains(class) && line.contains(&n.to_string()),
                "summary line {line:?} lacks {n} {class}"
            );
        }
    }
}

#[test]
fn name_only_lists_exactly_the_changed_paths() {
    let (m, d) = text_scene();
    let lines = text_of(&m, &["--name-only"]);
    let listed: BTreeSet<String> = lines.iter().cloned().collect();
    let expected: BTreeSet<String> = d.classes().into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        listed,
        expected,
        "--name-only printed:\n{}",
        lines.join("\n")
    );
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
}

/// Text output: a heading per directory, then its changes, indented, each with its class;
/// the summary line last.
#[test]
fn text_output_groups_by_directory() {
    let (m, d) = text_scene();
    let lines = text_of(&m, &[]);
    let text = lines.join("\n");
    let (summary, body) = lines.split_last().expect("no output");
    assert_summary_line(summary, &d);

    let mut current: Option<&str> = None;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut headings: Vec<&str> = Vec::new();
    for line in body {
        if !line.starts_with(char::is_whitespace) {
            current = Some(line.trim_end_matches('/'));
            headings.push(line.trim_end_matches('/'));
            continue;
        }
        let dir = current.unwrap_or_else(|| panic!("a change before any heading:\n{text}"));
        let Some(change) = d.changes.iter().find(|c| {
            parent_of(c["path"].as_str().unwrap()) == dir && {
                let name = name_of(c["path"].as_str().unwrap());
                line.contains(name)
            }
        }) else {
            // A detail line (tag values) belongs to the change above it.
            continue;
        };
        let class = change["type"].as_str().unwrap();
        assert!(
            line.contains(class),
            "{line:?} lacks its class {class}\n{text}"
        );
        seen.insert(str_of(change, "path"));
    }
    let dirs: BTreeSet<&str> = d
        .changes
        .iter()
        .map(|c| parent_of(c["path"].as_str().unwrap()))
        .collect();
    assert_eq!(
        headings.iter().copied().collect::<BTreeSet<_>>(),
        dirs,
        "one heading per changed directory:\n{text}"
    );
    assert_eq!(
        headings.len(),
        dirs.len(),
        "a directory heading twice:\n{text}"
    );
    let all: BTreeSet<String> = d.classes().into_iter().map(|(_, p)| p).collect();
    assert_eq!(seen, all, "every change under its directory:\n{text}");
    // The new title is shown.
    assert!(text.contains("Sunrise"), "{text}");
}

/// `--stat`: one line per changed directory with its classes, then the summary line.
#[test]
fn stat_counts_per_directory() {
    let (m, d) = text_scene();
    let lines = text_of(&m, &["--stat"]);
    let text = lines.join("\n");
    let (summary, body) = lines.split_last().expect("no output");
    assert_summary_line(summary, &d);
    let dirs: BTreeSet<&str> = d
        .changes
        .iter()
        .map(|c| parent_of(c["path"].as_str().unwrap()))
        .collect();
    assert_eq!(body.len(), dirs.len(), "one line per directory:\n{text}");
    for dir in dirs {
        let line = body
            .iter()
            .find(|l| l.starts_with(dir))
            .unwrap_or_else(|| panic!("no line for {dir}:\n{text}"));
        for c in d
            .changes
            .iter()
            .filter(|c| parent_of(c["path"].as_str().unwrap()) == dir)
        {
            let class = c["type"].as_str().unwrap();
            assert!(line.contains(class), "{line:?} lacks {class}\n{text}");
        }
    }
    // Tag values are not part of the stat.
    assert!(!text.contains("Sunrise"), "{text}");
}
