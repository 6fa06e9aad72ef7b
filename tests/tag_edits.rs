//! Real tag editors against real audio: a retag moves kilobytes, never the audio stream.
//!
//! For every container musicfs understands, an album of three short tracks is encoded by
//! ffmpeg at test time (`scripts/gen-audio-lib.sh`, the same generator the benchmarks use),
//! mirrored with `musicfs sync`, then edited in place by the tag editors people use:
//! Debian's `id3v2`, `metaflac`, `vorbiscomment` and `kid3-cli`, and mutagen from PyPI (through
//! `scripts/tagbench.py`). After each edit, `musicfs --json inspect` must show the audio
//! region's chunks unchanged, `sync --dry-run` must report under 10 KiB per edited file (for
//! an edit that keeps the tag's size and for one that grows it past its padding), and the real
//! sync must leave DST equal to SRC. A cover swap on the album must move about one picture.
//!
//! Ogg needs three choices, all deliberate:
//! - Ogg Vorbis comes from vorbis-tools' `oggenc`, the reference encoder, whose libogg page
//!   layout `vorbiscomment` keeps (it only renumbers the pages after the headers). On an
//!   ffmpeg-made file `vorbiscomment` re-paginates the whole stream (ffmpeg cuts a page per
//!   second, libogg about every 4 KB), so no audio page survives; that case is checked for
//!   exactness only (`ogg_vorbis_from_ffmpeg_repaginated_by_vorbiscomment`).
//! - The growing edit in Ogg is mutagen's (as Picard, beets and Quod Libet make it): it lays
//!   the header pages out afresh, 4 KB each, so a longer comment adds a page and every audio
//!   page after it is renumbered, the case the Ogg page transform exists for; the test checks
//!   that the renumbering happened. (vorbiscomment keeps libogg's pages of up to 64 KB, so it
//!   renumbers only for comments of tens of kilobytes; it makes the same-size edit.)
//! - The Ogg retag tests use files without a cover: an Ogg cover is base64 inside the comment
//!   packet, so a retag rewrites it with the tags; pictures are what the cover-swap tests
//!   check, on files with covers.
//!
//! A missing tool fails the test with the package to install; nothing is skipped.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use util::*;

/// What the issue promises for a tag-only edit, per edited file, protocol included.
const PER_FILE_LIMIT: u64 = 10 * 1024;
const TRACKS: usize = 3;
const SECONDS: u32 = 6;
/// Longer than the padding any of these editors leaves. In Ogg Vorbis it pushes the comment
/// and setup headers (3-4 KB) past the 4 KB pages mutagen writes, so the audio pages after
/// them are renumbered.
const COMMENT_LEN: usize = 3000;
/// Opus's comment header has its pages to itself: only a comment longer than mutagen's 4 KB
/// page adds one.
const OPUS_COMMENT_LEN: usize = 5000;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fmt {
    Mp3,
    Flac,
    /// Ogg Vorbis from oggenc.
    Ogg,
    /// Ogg Vorbis from ffmpeg.
    OggFfmpeg,
    Opus,
    M4a,
    Wav,
    Aiff,
}

impl Fmt {
    /// Format name for gen-audio-lib.sh.
    fn generator(self) -> &'static str {
        match self {
            Fmt::Ogg => "oggenc",
            Fmt::OggFfmpeg => "ogg",
            other => other.ext(),
        }
    }

    /// File extension.
    fn ext(self) -> &'static str {
        match self {
            Fmt::Mp3 => "mp3",
            Fmt::Flac => "flac",
            Fmt::Ogg | Fmt::OggFfmpeg => "ogg",
            Fmt::Opus => "opus",
            Fmt::M4a => "m4a",
            Fmt::Wav => "wav",
            Fmt::Aiff => "aiff",
        }
    }

    /// The container name `inspect` reports.
    fn container(self) -> &'static str {
        match self {
            Fmt::Mp3 => "mp3",
            Fmt::Flac => "flac",
            Fmt::Ogg | Fmt::OggFfmpeg | Fmt::Opus => "ogg",
            Fmt::M4a => "mp4",
            Fmt::Wav => "wav",
            Fmt::Aiff => "aiff",
        }
    }

    fn is_ogg(self) -> bool {
        matches!(self, Fmt::Ogg | Fmt::OggFfmpeg | Fmt::Opus)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Edit {
    /// The title replaced by its upper-case form: same length.
    SameSize,
    /// A comment of COMMENT_LEN characters added.
    Grow,
}

/// Every tool a format's edits need, checked up front so a missing one fails clearly.
fn require_tools(fmt: Fmt) {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("bash", "bash");
    require_mutagen(); // gen-audio-lib.sh embeds Ogg and WAV covers with it; covers everywhere
    match fmt {
        Fmt::Mp3 => {
            require_tool("id3v2", "id3v2");
        }
        Fmt::Flac => {
            require_tool("metaflac", "flac");
        }
        Fmt::Ogg | Fmt::OggFfmpeg => {
            require_tool("vorbiscomment", "vorbis-tools");
            require_tool("oggenc", "vorbis-tools");
        }
        Fmt::Opus => {}
        Fmt::M4a | Fmt::Wav | Fmt::Aiff => {
            require_tool("kid3-cli", "kid3-cli");
        }
    }
}

fn tagbench() -> Command {
    let mut c = Command::new(python());
    c.arg(manifest_dir().join("scripts").join("tagbench.py"));
    c
}

/// The comment text `tagbench.py add-comment` adds, so every editor writes the same.
fn comment_text(len: usize) -> String {
    let out = run_ok(tagbench().args(["text", &len.to_string()]));
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string();
    assert_eq!(text.len(), len);
    text
}

fn comment_len(fmt: Fmt) -> usize {
    if fmt == Fmt::Opus {
        OPUS_COMMENT_LEN
    } else {
        COMMENT_LEN
    }
}

/// "NN Title.ext" → "Title".
fn title_of(file: &Path) -> String {
    let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
    stem.split_once(' ').expect("NN Title").1.to_string()
}

/// Applies `edit` to `file` with the real editor for `fmt` (the same as scripts/bench-tags.sh).
fn apply(fmt: Fmt, edit: Edit, file: &Path, comment: &str) {
    let new_title = title_of(file).to_uppercase();
    // kid3-cli: tag 2 is ID3v2 / MP4, tag 3 the RIFF INFO list ffmpeg writes into WAV.
    let kid3_tag = if fmt == Fmt::Wav { "3" } else { "2" };
    let mut cmd = match (fmt, edit) {
        (Fmt::Mp3, Edit::SameSize) => {
            let mut c = Command::new("id3v2");
            c.args(["--id3v2-only", "--song", &new_title]);
            c
        }
        (Fmt::Mp3, Edit::Grow) => {
            let mut c = Command::new("id3v2");
            c.args(["--id3v2-only", "--comment", comment]);
            c
        }
        (Fmt::Flac, Edit::SameSize) => {
            let mut c = Command::new("metaflac");
            c.arg("--remove-tag=TITLE")
                .arg(format!("--set-tag=TITLE={new_title}"));
            c
        }
        (Fmt::Flac, Edit::Grow) => {
            let mut c = Command::new("metaflac");
            c.arg(format!("--set-tag=COMMENT={comment}"));
            c
        }
        (Fmt::Ogg | Fmt::OggFfmpeg, Edit::SameSize) => {
            let mut c = Command::new("vorbiscomment");
            c.args(["-R", "-d", "TITLE", "-t"])
                .arg(format!("TITLE={new_title}"));
            c
        }
        (Fmt::Ogg | Fmt::OggFfmpeg | Fmt::Opus, Edit::Grow) => {
            let mut c = tagbench();
            c.arg("add-comment")
                .arg(file)
                .arg(comment.len().to_string());
            run_ok(&mut c);
            return;
        }
        (Fmt::Opus, Edit::SameSize) => {
            let mut c = tagbench();
            c.arg("set-title").arg(file).arg(&new_title);
            run_ok(&mut c);
            return;
        }
        (Fmt::M4a | Fmt::Wav | Fmt::Aiff, Edit::SameSize) => {
            let mut c = Command::new("kid3-cli");
            c.arg("-c")
                .arg(format!("set title '{new_title}' {kid3_tag}"));
            c
        }
        (Fmt::M4a | Fmt::Wav | Fmt::Aiff, Edit::Grow) => {
            let mut c = Command::new("kid3-cli");
            c.arg("-c")
                .arg(format!("set comment '{comment}' {kid3_tag}"));
            c
        }
    };
    run_ok(cmd.arg(file));
}

/// Replaces the embedded picture of `file` by `image`: metaflac for FLAC, mutagen elsewhere.
fn swap_cover(fmt: Fmt, file: &Path, image: &Path) {
    if fmt == Fmt::Flac {
        run_ok(
            Command::new("metaflac")
                .args(["--remove", "--block-type=PICTURE"])
                .arg(file),
        );
        run_ok(
            Command::new("metaflac")
                .arg(format!(
                    "--import-picture-from=3|image/jpeg|Cover (front)||{}",
                    image.display()
                ))
                .arg(file),
        );
    } else {
        run_ok(tagbench().arg("set-cover").arg(file).arg(image));
    }
}

/// A second album cover (600x600 JPEG, as the generator makes, from another seed).
fn other_cover(dir: &Path) -> PathBuf {
    let out = dir.join("other-cover.jpg");
    run_ok(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=600x600:rate=25",
                "-ss",
                "7.77",
            ])
            .args([
                "-frames:v",
                "1",
                "-vf",
                "noise=alls=12:allf=u:all_seed=4242",
            ])
            .args(["-q:v", "3", "-fflags", "+bitexact", "-flags:v", "+bitexact"])
            .arg(&out),
    );
    out
}

/// Sequence number of the first audio page (granule position neither 0 nor -1) of an Ogg file.
fn first_audio_page_seq(file: &Path) -> Option<u32> {
    let b = fs::read(file).unwrap();
    let mut pos = 0usize;
    while pos + 27 <= b.len() && &b[pos..pos + 4] == b"OggS" {
        let granule = u64::from_le_bytes(b[pos + 6..pos + 14].try_into().unwrap());
        let seq = u32::from_le_bytes(b[pos + 18..pos + 22].try_into().unwrap());
        let nseg = usize::from(b[pos + 26]);
        let body: usize = b
            .get(pos + 27..pos + 27 + nseg)?
            .iter()
            .map(|&x| usize::from(x))
            .sum();
        if granule != 0 && granule != u64::MAX {
            return Some(seq);
        }
        pos += 27 + nseg + body;
    }
    None
}

/// A generated album of one format, mirrored once into DST.
struct Album {
    t: TestRepo,
    fmt: Fmt,
    src: PathBuf,
    dst: PathBuf,
    files: Vec<PathBuf>,
}

impl Album {
    /// `with_covers`: one cover embedded in every track; without, only where ffmpeg embeds it
    /// (not in Ogg or WAV).
    fn new(fmt: Fmt, with_covers: bool) -> Album {
        require_tools(fmt);
        let t = TestRepo::new();
        let lib = t.path("lib");
        gen_audio_lib(
            &lib,
            [
                "--albums",
                "1",
                "--tracks",
                &TRACKS.to_string(),
                "--seconds",
                &SECONDS.to_string(),
                "--formats",
                fmt.generator(),
                "--jobs",
                "2",
                "--covers",
                if with_covers { "all" } else { "ffmpeg" },
            ],
        );
        let src = lib.join(fmt.generator());
        let dst = t.path("dst");
        let files = sorted_files(&src);
        assert_eq!(files.len(), TRACKS, "generated files: {files:?}");
        t.cmd().arg("sync").arg(&src).arg(&dst).assert_exit(0);
        assert_trees_equal(&src, &dst);
        Album {
            t,
            fmt,
            src,
            dst,
            files,
        }
    }

    fn inspect(&self) -> Vec<Value> {
        let lines = inspect(&self.t, &self.files);
        for l in &lines {
            assert_eq!(
                l["format"],
                self.fmt.container(),
                "{:?}: inspect says {}",
                self.fmt,
                l
            );
            assert!(
                !region_chunk_ids(l, "audio").is_empty(),
                "{:?}: no audio region, the file fell back to opaque: {l}",
                self.fmt
            );
        }
        lines
    }

    /// `sync --dry-run` bytes, then the real sync and the tree comparison.
    fn sync_and_check(&self, what: &str) -> u64 {
        let summary = self
            .t
            .cmd()
            .args(["sync", "--dry-run"])
            .arg(&self.src)
            .arg(&self.dst)
            .summary();
        let bytes = num(&summary, "bytes_transferred");
        eprintln!(
            "{:?} {what}: bytes_transferred {bytes} for {} files",
            self.fmt,
            self.files.len()
        );
        self.t
            .cmd()
            .arg("sync")
            .arg(&self.src)
            .arg(&self.dst)
            .assert_exit(0);
        assert_trees_equal(&self.src, &self.dst);
        bytes
    }
}

/// The audio stream's chunks and identity must survive a tag edit untouched.
fn assert_audio_unchanged(fmt: Fmt, what: &str, before: &[Value], after: &[Value]) {
    for (b, a) in before.iter().zip(after) {
        assert_eq!(
            region_chunk_ids(b, "audio"),
            region_chunk_ids(a, "audio"),
            "{fmt:?} {what}: audio chunk ids changed for {}\nbefore: {}\nafter: {}",
            a["path"],
            b["regions"],
            a["regions"]
        );
        assert!(
            b["audio_hash"].is_string(),
            "{fmt:?}: no audio_hash for {}: {b}",
            b["path"]
        );
        assert_eq!(
            b["audio_hash"], a["audio_hash"],
            "{fmt:?} {what}: audio_hash changed for {}",
            a["path"]
        );
    }
}

/// Same-size retag, then a growing one: audio chunks unchanged, < 10 KiB per file, DST = SRC.
fn retag(fmt: Fmt) {
    // Covers everywhere but in Ogg (see the module docs).
    let album = Album::new(fmt, !fmt.is_ogg());
    let comment = comment_text(comment_len(fmt));
    for edit in [Edit::SameSize, Edit::Grow] {
        let what = format!("{edit:?}");
        let before = album.inspect();
        let seqs_before: Vec<_> = album
            .files
            .iter()
            .map(|f| fmt.is_ogg().then(|| first_audio_page_seq(f)).flatten())
            .collect();
        for f in &album.files {
            let old = fs::read(f).unwrap();
            apply(fmt, edit, f, &comment);
            assert_ne!(old, fs::read(f).unwrap(), "{fmt:?} {what}: {f:?} unchanged");
        }
        if fmt.is_ogg() && edit == Edit::Grow {
            for (f, seq) in album.files.iter().zip(&seqs_before) {
                let now = first_audio_page_seq(f);
                assert!(
                    seq.is_some() && now.is_some() && now != *seq,
                    "{fmt:?}: the growing edit did not renumber the audio pages of {f:?} \
                     (first audio page {seq:?} -> {now:?}), so renumbering goes untested"
                );
            }
        }
        let after = album.inspect();
        assert_audio_unchanged(fmt, &what, &before, &after);
        for (f, a) in album.files.iter().zip(&after) {
            // "tags" is the MediaInfo: {"tags": {...}, "properties": {...}}.
            let tags = &a["tags"]["tags"];
            assert!(tags.is_object(), "{fmt:?}: no tags read from {f:?}: {a}");
            match edit {
                Edit::SameSize => assert_eq!(
                    tags["title"][0].as_str(),
                    Some(title_of(f).to_uppercase().as_str()),
                    "{fmt:?}: new title not read back from {f:?}: {tags}"
                ),
                Edit::Grow => {
                    let prefix = &comment[..40];
                    let found = tags["other"].as_array().is_some_and(|o| {
                        o.iter()
                            .any(|kv| kv[1].as_str().is_some_and(|v| v.starts_with(prefix)))
                    });
                    assert!(found, "{fmt:?}: comment not read back from {f:?}: {tags}");
                }
            }
        }
        let bytes = album.sync_and_check(&what);
        let limit = PER_FILE_LIMIT * album.files.len() as u64;
        assert!(
            bytes < limit,
            "{fmt:?} {what}: sync would move {bytes} bytes for {} edited files (limit {limit})",
            album.files.len()
        );
    }
}

/// Every track's cover replaced by one new picture: about one picture moves.
fn cover_swap(fmt: Fmt) {
    let album = Album::new(fmt, true);
    let image = other_cover(album.t.root());
    let image_len = fs::metadata(&image).unwrap().len();
    // Ogg keeps the picture base64-encoded (4/3 larger) in a comment, with a 32-byte
    // FLAC picture header and its MIME type and description.
    let embedded_len = if fmt.is_ogg() {
        (image_len + 64).div_ceil(3) * 4
    } else {
        image_len
    };
    let before = album.inspect();
    for f in &album.files {
        swap_cover(fmt, f, &image);
    }
    let after = album.inspect();
    assert_audio_unchanged(fmt, "cover swap", &before, &after);

    // The new picture is one chunk list, the same in every track.
    let pictures: Vec<Vec<String>> = after
        .iter()
        .map(|a| region_chunk_ids(a, "picture"))
        .collect();
    if !fmt.is_ogg() {
        assert!(
            !pictures[0].is_empty(),
            "{fmt:?}: no picture region after the swap: {}",
            after[0]["regions"]
        );
        assert!(
            pictures.iter().all(|p| p == &pictures[0]),
            "{fmt:?}: the same cover gives different picture chunks per track: {pictures:?}"
        );
    }

    let bytes = album.sync_and_check("cover swap");
    let tracks = album.files.len() as u64;
    // In Ogg the picture is base64 text inside the comment packet; the header pages are
    // chunked as page headers then packet bytes, with the picture cut apart, so it too moves
    // once.
    let limit = embedded_len + PER_FILE_LIMIT * tracks;
    assert!(
        bytes <= limit,
        "{fmt:?}: a cover swap on {tracks} tracks would move {bytes} bytes; one picture is \
         {embedded_len} bytes, limit {limit}"
    );
}

#[test]
fn mp3_retag() {
    retag(Fmt::Mp3);
}

#[test]
fn flac_retag() {
    retag(Fmt::Flac);
}

#[test]
fn ogg_vorbis_retag() {
    retag(Fmt::Ogg);
}

#[test]
fn opus_retag() {
    retag(Fmt::Opus);
}

#[test]
fn m4a_retag() {
    retag(Fmt::M4a);
}

#[test]
fn wav_retag() {
    retag(Fmt::Wav);
}

#[test]
fn aiff_retag() {
    retag(Fmt::Aiff);
}

#[test]
fn mp3_cover_swap() {
    cover_swap(Fmt::Mp3);
}

#[test]
fn flac_cover_swap() {
    cover_swap(Fmt::Flac);
}

#[test]
fn ogg_vorbis_cover_swap() {
    cover_swap(Fmt::Ogg);
}

#[test]
fn opus_cover_swap() {
    cover_swap(Fmt::Opus);
}

#[test]
fn m4a_cover_swap() {
    cover_swap(Fmt::M4a);
}

#[test]
fn wav_cover_swap() {
    cover_swap(Fmt::Wav);
}

#[test]
fn aiff_cover_swap() {
    cover_swap(Fmt::Aiff);
}

/// vorbiscomment re-paginates an ffmpeg-made Ogg Vorbis file from end to end: the audio
/// packets survive but every page around them changes. musicfs must still mirror it exactly;
/// what it moves is printed, not bounded.
#[test]
fn ogg_vorbis_from_ffmpeg_repaginated_by_vorbiscomment() {
    let fmt = Fmt::OggFfmpeg;
    let album = Album::new(fmt, false);
    let comment = comment_text(COMMENT_LEN);
    let pages_before: Vec<_> = album.files.iter().map(|f| ogg_page_count(f)).collect();
    album.inspect();
    for f in &album.files {
        apply(fmt, Edit::SameSize, f, &comment);
    }
    let pages_after: Vec<_> = album.files.iter().map(|f| ogg_page_count(f)).collect();
    assert_ne!(
        pages_before, pages_after,
        "vorbiscomment no longer re-paginates ffmpeg's Ogg files; this test's premise is gone"
    );
    album.inspect();
    let bytes = album.sync_and_check("re-paginated retag");
    let total: u64 = album
        .files
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    eprintln!("re-paginated by vorbiscomment: {bytes} of {total} bytes would move");
}

fn ogg_page_count(file: &Path) -> usize {
    let b = fs::read(file).unwrap();
    let (mut pos, mut pages) = (0usize, 0);
    while pos + 27 <= b.len() && &b[pos..pos + 4] == b"OggS" {
        let nseg = usize::from(b[pos + 26]);
        let Some(lacing) = b.get(pos + 27..pos + 27 + nseg) else {
            break;
        };
        pos += 27 + nseg + lacing.iter().map(|&x| usize::from(x)).sum::<usize>();
        pages += 1;
    }
    pages
}
