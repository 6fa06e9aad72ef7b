//! mutagen's test corpus: 100 real and deliberately broken audio files (truncated headers,
//! sizes past the end, bogus CRCs, odd containers) scanned, synced and inspected with no panic,
//! and mirrored byte for byte.
//!
//! The corpus is not committed: `scripts/fetch-mutagen-corpus.sh` unpacks mutagen 1.48.1's
//! `tests/data` into `target/mutagen-corpus/` (or set `MUSICFS_MUTAGEN_CORPUS` to another
//! directory). Without it the test fails and says how to fetch it; it never skips.

mod util;

use std::path::{Path, PathBuf};
use std::process::Output;

use util::*;

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("MUSICFS_MUTAGEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target").join("mutagen-corpus"));
    let files = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        files >= 90,
        "mutagen corpus not found at {} ({files} entries): run scripts/fetch-mutagen-corpus.sh \
         (or set MUSICFS_MUTAGEN_CORPUS)",
        dir.display()
    );
    dir
}

/// No panic message, no panic exit code (101), and the expected exit code.
fn assert_clean(what: &str, out: &Output, expected: i32) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "{what}: panicked\n--- stderr ---\n{stderr}"
    );
    assert_ne!(
        out.status.code(),
        Some(101),
        "{what}: exit code 101 (panic)\n{stderr}"
    );
    assert!(
        out.status.code().is_some(),
        "{what}: killed by a signal ({:?})\n{stderr}",
        out.status
    );
    assert_eq!(
        out.status.code(),
        Some(expected),
        "{what}: exit code\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The regions `inspect` reports must cover the file exactly, in order, without gaps.
fn assert_regions_cover(file: &Path, line: &serde_json::Value) {
    let size = num(line, "bytes");
    assert_eq!(
        size,
        std::fs::metadata(file).unwrap().len(),
        "inspect size of {}: {line}",
        file.display()
    );
    let regions = line["regions"]
        .as_array()
        .unwrap_or_else(|| panic!("no regions for {}: {line}", file.display()));
    let mut at = 0;
    for r in regions {
        assert_eq!(
            num(r, "offset"),
            at,
            "regions of {} leave a gap or overlap: {line}",
            file.display()
        );
        let len = num(r, "bytes");
        let chunked: u64 = r["chunks"]
            .as_array()
            .unwrap_or_else(|| panic!("region without chunks in {}: {r}", file.display()))
            .iter()
            .map(|c| num(c, "bytes"))
            .sum();
        // A transformed region (Ogg pages) is chunked in its transformed form, whose length
        // is the same as the region's: only header fields are zeroed.
        assert_eq!(
            chunked,
            len,
            "chunks of a region of {} do not add up to it: {r}",
            file.display()
        );
        at += len;
    }
    assert_eq!(
        at,
        size,
        "regions of {} do not reach its end: {line}",
        file.display()
    );
}

#[test]
fn mutagen_corpus_scans_syncs_and_inspects_without_panic() {
    let corpus = corpus_dir();
    let t = TestRepo::new();
    let src = t.path("src");
    copy_tree(&corpus, &src);
    let _ = std::fs::remove_file(src.join(".complete")); // the fetch script's marker
    let dst = t.path("dst");

    let out = t.cmd().arg("scan").arg(&src).output();
    assert_clean("musicfs scan", &out, 0);

    let out = t.cmd().arg("sync").arg(&src).arg(&dst).output();
    assert_clean("musicfs sync", &out, 0);
    assert_trees_equal(&src, &dst);

    // A second sync finds nothing to do: what the scan recorded is stable.
    let summary = t.cmd().arg("sync").arg(&src).arg(&dst).summary();
    assert_eq!(num(&summary, "bytes_transferred"), 0, "{summary}");

    let files = sorted_files(&src);
    assert!(files.len() >= 90, "{} files in the corpus", files.len());
    let mut parsed = 0;
    for f in &files {
        let mut cmd = t.cmd();
        cmd.json().arg("inspect").arg(f);
        let out = cmd.output();
        let what = format!("musicfs --json inspect {}", f.display());
        assert_clean(&what, &out, 0);
        let lines = parse_json_lines(&out.stdout);
        assert_eq!(lines.len(), 2, "{what}: {lines:?}");
        assert_eq!(lines[0]["type"], "file", "{what}: {}", lines[0]);
        assert_regions_cover(f, &lines[0]);
        if lines[0]["format"] != "opaque" {
            parsed += 1;
        }
    }
    eprintln!(
        "{} corpus files: {parsed} parsed as audio containers, {} opaque",
        files.len(),
        files.len() - parsed
    );
    // 51 of mutagen 1.48.1's 100 files are in containers musicfs cuts by regions (the rest
    // are APE, WavPack, ASF, Musepack, DSF, damaged beyond recognition…): fewer means a
    // parser started falling back to opaque on files it used to understand.
    assert!(
        parsed >= 51,
        "only {parsed} corpus files parsed as audio containers (51 expected)"
    );
}

/// lofty, through `media::tags::read`, on every corpus file gives tags or properties for the
/// files it understands. (That no panic escapes holds by construction: `read` contains
/// lofty's panics; what can regress is how many files still give tags.)
#[test]
fn tags_are_read_from_the_corpus() {
    let corpus = corpus_dir();
    let mut read = 0;
    let files: Vec<_> = sorted_files(&corpus)
        .into_iter()
        .filter(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    for f in &files {
        let mut file = std::fs::File::open(f).unwrap();
        if musicfs::media::tags::read(&mut file).is_some() {
            read += 1;
        }
    }
    eprintln!(
        "lofty read tags or properties from {read} of {} corpus files",
        files.len()
    );
    // 56 of the 100 files give tags or properties with lofty 0.25.
    assert!(
        read >= 56,
        "only {read} of {} files read (56 expected)",
        files.len()
    );
}
