//! What a sync would move between two versions of files, by chunking rule.
//!
//! ```sh
//! cargo run --release --example chunk_diff -- --regions OLD NEW
//! cargo run --release --example chunk_diff -- --plain OLD NEW
//! ```
//!
//! OLD and NEW are files or directories (every regular file below them). Prints one JSON
//! object: the bytes and number of NEW's distinct chunks whose ids are not among OLD's, with
//! `--regions` by musicfs's container-aware chunking, with `--plain` by FastCDC over each
//! whole file. Used by `scripts/bench-tags.sh` to compare the two.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use musicfs::chunk::{chunk_file, chunk_plain, Chunked, FastCdc};
use musicfs::id::ChunkId;

fn files(root: &Path) -> Vec<PathBuf> {
    if root.is_file() {
        return vec![root.to_path_buf()];
    }
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

fn chunks(root: &Path, plain: bool) -> Result<Vec<(ChunkId, u32)>, String> {
    let chunker = FastCdc::default();
    let mut out = Vec::new();
    for path in files(root) {
        let mut file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let chunked: Chunked = if plain {
            chunk_plain(&mut file, len, &chunker)
        } else {
            chunk_file(&mut file, len, &chunker)
        }
        .map_err(|e| format!("{}: {e}", path.display()))?;
        out.extend(chunked.list.chunks.iter().map(|c| (c.id, c.len)));
    }
    Ok(out)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (plain, old, new) = match args.as_slice() {
        [mode, old, new] if mode == "--plain" || mode == "--regions" => {
            (mode == "--plain", PathBuf::from(old), PathBuf::from(new))
        }
        _ => {
            eprintln!("usage: chunk_diff --plain|--regions OLD NEW");
            return ExitCode::from(2);
        }
    };
    let result = chunks(&old, plain).and_then(|o| Ok((o, chunks(&new, plain)?)));
    let (old, new) = match result {
        Ok(x) => x,
        Err(e) => {
            eprintln!("chunk_diff: {e}");
            return ExitCode::from(2);
        }
    };
    let have: HashSet<ChunkId> = old.iter().map(|c| c.0).collect();
    let mut seen = HashSet::new();
    let (mut bytes, mut count) = (0u64, 0u64);
    for (id, len) in new {
        if !have.contains(&id) && seen.insert(id) {
            bytes += u64::from(len);
            count += 1;
        }
    }
    println!("{{\"new_bytes\":{bytes},\"new_chunks\":{count}}}");
    ExitCode::SUCCESS
}
