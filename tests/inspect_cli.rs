//! `musicfs inspect` through the binary: tags as readable lines, every argument described
//! even after one fails (exit 3), and a damaged or truncated file flagged.

mod util;

use util::TestRepo;

const FLAC: &str = "Lossless Ensemble/Waveforms/01 Pure Sine.flac";

#[test]
fn tags_are_lines_and_every_file_is_described_after_a_failure() {
    let t = TestRepo::new();
    let good = util::fixtures_audio().join(FLAC);
    let missing = t.path("missing.mp3");
    let truncated = t.path("truncated.flac");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..300]).unwrap();
    let out = t
        .cmd()
        .arg("inspect")
        .arg(&missing)
        .arg(&good)
        .arg(&truncated)
        .assert_exit(3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.mp3"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for line in [
        "  title: Pure Sine",
        "  artist: Lossless Ensemble",
        "  track: 1/2",
        "  stream: 2.0 s, 44100 Hz, 1 channel, 100 kb/s",
    ] {
        assert!(stdout.lines().any(|l| l == line), "no {line:?} in {stdout}");
    }
    assert!(
        !stdout.contains("{\""),
        "a JSON blob in text output: {stdout}"
    );
    let warning = stdout
        .lines()
        .skip_while(|l| !l.starts_with(&*truncated.display().to_string()))
        .nth(1)
        .unwrap_or_default();
    assert!(
        warning.starts_with("  warning: starts as flac but") && warning.contains("opaque"),
        "the truncated file is not flagged: {stdout}"
    );

    let out = t
        .cmd()
        .json()
        .arg("inspect")
        .arg(&good)
        .arg(&missing)
        .arg(&truncated)
        .assert_exit(3);
    let lines = util::parse_json_lines(&out.stdout);
    let types: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["file", "problem", "file", "summary"]);
    assert!(lines[0].get("problem").is_none());
    assert!(lines[2]["problem"].as_str().unwrap().contains("flac"));
    assert_eq!(lines[3]["problems"], 1);
}
