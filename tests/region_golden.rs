//! Golden test for container-aware chunking: the format, regions and chunk ids of every file
//! under `fixtures/` are pinned in `tests/golden/regions.txt`. Region rules are part of the
//! repository format (they decide chunk ids); a change to a parser that moves a boundary must
//! be deliberate, with the golden file regenerated:
//!
//! MUSICFS_UPDATE_GOLDEN=1 cargo test --test region_golden

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use musicfs::chunk::{chunk_file, FastCdc};
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

fn render(root: &Path) -> String {
    let chunker = FastCdc::default();
    let mut text = String::from(
        "# musicfs region golden file: for each fixture, its format and size; each region's\n\
         # kind, offset, length and transform; each chunk's offset, length and id.\n",
    );
    for path in fixture_files(root) {
        let data = fs::read(&path).unwrap();
        let mut file = File::open(&path).unwrap();
        let chunked = chunk_file(&mut file, data.len() as u64, &chunker).unwrap();
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
fn fixture_regions_match_golden() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/regions.txt");
    let actual = render(&root);
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
            "region chunking changed (a repository format change) at line {}:\n  golden: {:?}\n  now:    {:?}\n\
             If deliberate, bump CHUNKING_VERSION and FORMAT_VERSION and run MUSICFS_UPDATE_GOLDEN=1 cargo test --test region_golden",
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}
