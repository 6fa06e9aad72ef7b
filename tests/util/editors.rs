//! Real tools that change audio files the way users do: Debian's `id3v2`, `metaflac`,
//! `vorbiscomment`, `kid3-cli` and `oggenc`, mutagen (through `scripts/tagbench.py`) and
//! ffmpeg. A missing tool fails the test with the package to install; nothing is skipped.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{manifest_dir, python, require_mutagen, require_tool, run_ok};

/// Fixture paths (see fixtures/README.md).
pub const DAWN: &str = "Aurora Tones/First Light/01 Dawn.mp3";
pub const ZENITH: &str = "Aurora Tones/First Light/02 Zenith.mp3";
pub const DUSK: &str = "Aurora Tones/First Light/03 Dusk.mp3";
pub const COVER_JPG: &str = "Aurora Tones/First Light/cover.jpg";
pub const STATIC: &str = "Aurora Tones/Night Shift/01 Static.mp3";
pub const SINE: &str = "Lossless Ensemble/Waveforms/01 Pure Sine.flac";
pub const BROWN: &str = "Lossless Ensemble/Waveforms/02 Brown Noise.flac";
pub const OPUS: &str = "Café Tonal/Xiph Sessions/02 Opus Noise.opus";
pub const PLAIN: &str = "MP4 Quartet/Containers/01 Plain.m4a";
pub const COVERED: &str = "MP4 Quartet/Containers/02 Covered.m4a";
pub const WAV: &str = "Riff Raff/Chunks/01 Info Block.wav";

pub fn tagbench() -> Command {
    require_mutagen();
    let mut c = Command::new(python());
    c.arg(manifest_dir().join("scripts").join("tagbench.py"));
    c
}

pub fn id3v2_title(file: &Path, title: &str) {
    require_tool("id3v2", "id3v2");
    run_ok(
        Command::new("id3v2")
            .args(["--id3v2-only", "--song", title])
            .arg(file),
    );
}

pub fn metaflac<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(file: &Path, args: I) {
    require_tool("metaflac", "flac");
    run_ok(Command::new("metaflac").args(args).arg(file));
}

pub fn metaflac_title(file: &Path, title: &str) {
    metaflac(
        file,
        [
            "--remove-tag=TITLE".to_string(),
            format!("--set-tag=TITLE={title}"),
        ],
    );
}

pub fn vorbiscomment_title(file: &Path, title: &str) {
    require_tool("vorbiscomment", "vorbis-tools");
    run_ok(
        Command::new("vorbiscomment")
            .args(["-R", "-d", "TITLE", "-t"])
            .arg(format!("TITLE={title}"))
            .arg(file),
    );
}

/// kid3-cli's tag 2: ID3v2 or MP4.
pub fn kid3_title(file: &Path, title: &str) {
    require_tool("kid3-cli", "kid3-cli");
    run_ok(
        Command::new("kid3-cli")
            .arg("-c")
            .arg(format!("set title '{title}' 2"))
            .arg(file),
    );
}

pub fn mutagen_title(file: &Path, title: &str) {
    run_ok(tagbench().arg("set-title").arg(file).arg(title));
}

/// Replaces every embedded picture by `image` with mutagen (adds one where there was none).
pub fn mutagen_cover(file: &Path, image: &Path) {
    run_ok(tagbench().arg("set-cover").arg(file).arg(image));
}

/// Replaces a FLAC file's pictures by `image` with metaflac.
pub fn metaflac_cover(file: &Path, image: &Path) {
    metaflac(file, ["--remove", "--block-type=PICTURE"]);
    metaflac(
        file,
        [format!(
            "--import-picture-from=3|image/jpeg|Cover (front)||{}",
            image.display()
        )],
    );
}

pub fn ffmpeg() -> Command {
    require_tool("ffmpeg", "ffmpeg");
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]);
    c
}

/// A new 300x300 JPEG, unlike any fixture picture.
pub fn new_cover(dir: &Path) -> PathBuf {
    let out = dir.join("new-cover.jpg");
    run_ok(
        ffmpeg()
            .args(["-f", "lavfi", "-i", "testsrc2=size=300x300:rate=25"])
            .args(["-ss", "3.21", "-frames:v", "1", "-q:v", "4"])
            .arg(&out),
    );
    out
}

/// A new one-second FLAC track with a title, unlike any fixture.
pub fn new_flac(out: &Path, title: &str) {
    run_ok(
        ffmpeg()
            .args(["-f", "lavfi", "-i", "sine=frequency=1234:duration=1"])
            .args(["-metadata", &format!("title={title}")])
            .arg(out),
    );
}

/// Re-encodes an MP3 file at 96 kbit/s with ffmpeg, its tags copied along, and puts the result
/// in its place: the same recording, other audio bytes.
pub fn reencode_mp3(file: &Path, scratch: &Path) {
    let out = scratch.join("reencoded.mp3");
    run_ok(
        ffmpeg()
            .arg("-i")
            .arg(file)
            .args(["-map", "0:a", "-c:a", "libmp3lame", "-b:a", "96k"])
            .arg(&out),
    );
    fs::rename(&out, file).unwrap();
}

/// An Ogg Vorbis track encoded by oggenc, whose page layout vorbiscomment keeps.
pub fn oggenc_track(wav: &Path, out: &Path, title: &str) {
    require_tool("oggenc", "vorbis-tools");
    run_ok(
        Command::new("oggenc")
            .args(["-Q", "-q", "1", "-t", title, "-a", "Café Tonal", "-o"])
            .arg(out)
            .arg(wav),
    );
}

/// Flips one byte at the middle of `file` (inside the audio of every fixture) and sets its
/// mtime to now, as a rewrite would.
pub fn flip_middle_byte(file: &Path) {
    let mut bytes = fs::read(file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xFF;
    fs::write(file, bytes).unwrap();
}

pub fn mv(from: &Path, to: &Path) {
    run_ok(Command::new("mv").arg(from).arg(to));
}
