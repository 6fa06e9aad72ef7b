//! Golden test for container-aware chunking: the format, regions and chunk ids of every file
//! under `fixtures/` are pinned for each chunking rules this build knows, in
//! `tests/golden/regions.txt` (rules 4, audio cut by content, as every repository created before
//! rules 5 cuts it), `tests/golden/regions-fixed-audio.txt` (rules 5) and
//! `tests/golden/regions-fixed-pictures.txt` (rules 6, a new repository's). The fixtures'
//! pictures are smaller than a chunk, so a file with a large picture, made here, pins how rules
//! 6 cuts one.
//! Region rules are part of the repository format (they decide chunk ids); a change to a parser
//! that moves a boundary must be deliberate, with the golden files regenerated:
//!
//! MUSICFS_UPDATE_GOLDEN=1 cargo test --test region_golden

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use musicfs::chunk::{chunk_file, FastCdc, FixedCuts};
use musicfs::id::ChunkId;
use musicfs::media::Transform;

fn fixture_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_none_or(|x| x != "md"))
        .collect();
    files.sort();
    files
}

fn render(root: &Path, chunker: &FastCdc) -> String {
    let mut text = String::from(
        "# musicfs region golden file: for each fixture, its format and size; each region's\n\
         # kind, offset, length and transform; each chunk's offset, length and id.\n",
    );
    for path in fixture_files(root) {
        let data = fs::read(&path).unwrap();
        let mut file = File::open(&path).unwrap();
        let chunked = chunk_file(&mut file, data.len() as u64, chunker).unwrap();
        let list = &chunked.list;
        let rel = path.strip_prefix(root).unwrap().display();
        writeln!(
            text,
            "{rel} {} {} {}",
            list.format.name(),
            data.len(),
            ChunkId::of(&data).short()
        )
        .unwrap();
        let mut chunks = list.with_offsets().peekable();
        for r in &list.regions {
            let transform = match r.transform {
                Some(Transform::OggPages { first_seq }) => format!("ogg-pages:{first_seq}"),
                Some(Transform::OggHeaderPages { first_seq }) => {
                    format!("ogg-header-pages:{first_seq}")
                }
                None => "-".to_string(),
            };
            writeln!(
                text,
                "  {} {} {} {transform}",
                r.kind.name(),
                r.offset,
                r.len
            )
            .unwrap();
            while let Some((offset, c)) = chunks.next_if(|(o, _)| *o < r.offset + r.len) {
                writeln!(text, "    {offset} {} {}", c.len, c.id).unwrap();
            }
        }
        if let Some(h) = chunked.audio_hash {
            writeln!(text, "  audio {h}").unwrap();
        }
    }
    text
}

#[test]
fn fixture_regions_match_golden_with_audio_cut_by_content() {
    let chunker = FastCdc::default().with_fixed(FixedCuts::None);
    check("regions.txt", &chunker);
}

#[test]
fn fixture_regions_match_golden_with_audio_in_fixed_pieces() {
    check(
        "regions-fixed-audio.txt",
        &FastCdc::default().with_fixed(FixedCuts::Audio),
    );
}

#[test]
fn fixture_regions_match_golden_with_audio_and_pictures_in_fixed_pieces() {
    check("regions-fixed-pictures.txt", &FastCdc::default());
}

/// Audio in fixed pieces: every audio region that is not Ogg pages is cut every 64 KiB from
/// its first byte, and every other region as by content.
#[test]
fn fixed_audio_pieces_are_cut_from_each_audio_regions_first_byte() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let (fixed, by_content) = (
        FastCdc::default().with_fixed(FixedCuts::Audio),
        FastCdc::default().with_fixed(FixedCuts::None),
    );
    let mut audio_regions = 0;
    for path in fixture_files(&root) {
        let len = fs::metadata(&path).unwrap().len();
        let cut = |chunker: &FastCdc| {
            chunk_file(&mut File::open(&path).unwrap(), len, chunker)
                .unwrap()
                .list
        };
        let (a, b) = (cut(&fixed), cut(&by_content));
        assert_eq!(a.regions, b.regions, "{}", path.display());
        for r in &a.regions {
            let pieces = |list: &musicfs::snapshot::ChunkList| -> Vec<(u64, u32)> {
                list.with_offsets()
                    .filter(|(o, _)| r.offset <= *o && *o < r.offset + r.len)
                    .map(|(o, c)| (o, c.len))
                    .collect()
            };
            let fixed_audio = r.kind == musicfs::media::RegionKind::Audio && r.transform.is_none();
            if fixed_audio {
                audio_regions += 1;
                let expected: Vec<(u64, u32)> = (0..r.len)
                    .step_by(64 * 1024)
                    .map(|at| (r.offset + at, (r.len - at).min(64 * 1024) as u32))
                    .collect();
                assert_eq!(pieces(&a), expected, "{}", path.display());
            } else {
                assert_eq!(pieces(&a), pieces(&b), "{}", path.display());
            }
        }
    }
    assert!(audio_regions > 10, "only {audio_regions} audio regions");
}

/// A FLAC file: `fLaC`, an empty STREAMINFO, a PICTURE block holding `image`, then `audio`.
fn flac_with_picture(image: &[u8], audio: &[u8]) -> Vec<u8> {
    let mut picture = 3u32.to_be_bytes().to_vec();
    picture.extend_from_slice(&10u32.to_be_bytes());
    picture.extend_from_slice(b"image/jpeg");
    picture.extend_from_slice(&5u32.to_be_bytes());
    picture.extend_from_slice(b"cover");
    picture.extend_from_slice(&[0u8; 16]);
    picture.extend_from_slice(&(image.len() as u32).to_be_bytes());
    picture.extend_from_slice(image);
    let mut out = b"fLaC".to_vec();
    for (kind, body) in [(0u8, vec![0u8; 34]), (0x80 | 6, picture)] {
        out.push(kind);
        out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&body);
    }
    out.extend_from_slice(audio);
    out
}

/// Bytes that look random: no run of them repeats, as a JPEG's.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// Rules 6 cuts an embedded picture every 64 KiB from its first byte, as it cuts audio, where
/// rules 5 cuts it by content; every other region alike. The pieces' ids are pinned.
#[test]
fn a_large_picture_is_cut_in_fixed_pieces_from_its_first_byte_under_rules_6() {
    let image = noise(200 * 1024 + 123, 0x9e37_79b9_7f4a_7c15);
    let mut audio = vec![0xff, 0xf8];
    audio.extend(noise(300 * 1024, 7));
    let file = flac_with_picture(&image, &audio);
    let cut = |chunker: &FastCdc| {
        chunk_file(&mut std::io::Cursor::new(&file), file.len() as u64, chunker)
            .unwrap()
            .list
    };
    let (six, five) = (
        cut(&FastCdc::default()),
        cut(&FastCdc::default().with_fixed(FixedCuts::Audio)),
    );
    assert_eq!(six.regions, five.regions);
    let picture = six
        .regions
        .iter()
        .find(|r| r.kind == musicfs::media::RegionKind::Picture)
        .expect("the picture is a region");
    assert_eq!(picture.len, image.len() as u64);
    let pieces = |list: &musicfs::snapshot::ChunkList| -> Vec<(u64, u32)> {
        list.with_offsets()
            .filter(|(o, _)| picture.offset <= *o && *o < picture.offset + picture.len)
            .map(|(o, c)| (o, c.len))
            .collect()
    };
    let expected: Vec<(u64, u32)> = (0..picture.len)
        .step_by(64 * 1024)
        .map(|at| {
            (
                picture.offset + at,
                (picture.len - at).min(64 * 1024) as u32,
            )
        })
        .collect();
    assert_eq!(pieces(&six), expected);
    assert_ne!(
        pieces(&five),
        expected,
        "rules 5 cuts the picture by content"
    );
    // Everything but the picture is cut alike.
    let others = |list: &musicfs::snapshot::ChunkList| -> Vec<(u64, u32)> {
        list.with_offsets()
            .filter(|(o, _)| *o < picture.offset || *o >= picture.offset + picture.len)
            .map(|(o, c)| (o, c.len))
            .collect()
    };
    assert_eq!(others(&six), others(&five));
    let mut ids = String::new();
    for (offset, chunk) in six.with_offsets() {
        writeln!(ids, "{offset} {} {}", chunk.len, chunk.id).unwrap();
    }
    assert_eq!(
        ChunkId::of(ids.as_bytes()).to_string(),
        "110eadf40349befadde3eb0f7f8949f490b49cb5ea9a52d3a3b19780ea1a634e",
        "the pieces of rules 6 changed (a repository format change):\n{ids}"
    );
}

fn check(name: &str, chunker: &FastCdc) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual = render(&root, chunker);
    if std::env::var_os("MUSICFS_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        fs::write(&golden, &actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with MUSICFS_UPDATE_GOLDEN=1 cargo test --test region_golden",
            golden.display()
        )
    });
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
        panic!(
            "region chunking changed (a repository format change): {} line {}:\n  golden: {:?}\n  now:    {:?}\n\
             If deliberate, add chunking rules (chunk::CHUNKING_VERSION), keep these as they are for the repositories that cut by them, and run MUSICFS_UPDATE_GOLDEN=1 cargo test --test region_golden",
            golden.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}
