//! Measures candidate FastCDC (min, avg, max) sizes; the figures behind `docs/chunking.md`.
//!
//! Run: `cargo run --release --example chunk_sizes`
//!
//! For each candidate it reports, on deterministic pseudo-random data (compressed audio looks
//! random to a rolling hash):
//!
//! - chunk+hash throughput through `Chunker::chunk_stream`, single thread, best of a few runs;
//! - mean chunk size and index entries per GiB;
//! - an estimate of per-chunk repository overhead as a share of the data;
//! - bytes that must move after a local edit of a 32 MiB file (200 bytes inserted at 1 MiB,
//!   4 KiB overwritten at 17 MiB): the bytes of chunks whose ids the original did not have,
//!   averaged over several files.

use std::collections::HashSet;
use std::io::Cursor;
use std::time::Instant;

use musicfs::chunk::{Chunker, FastCdc};
use musicfs::id::ChunkId;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
const GIB: f64 = (1024 * MIB) as f64;

/// Data for the throughput and size-distribution figures.
const THROUGHPUT_LEN: usize = 256 * MIB;
/// Chunking runs per candidate; the fastest counts (the machine may be shared).
const THROUGHPUT_RUNS: usize = 3;
/// Size of the edited file and how many different files the edit figure averages over.
const EDIT_LEN: usize = 32 * MIB;
const EDIT_FILES: u64 = 16;

/// Estimated repository bytes per chunk: a 32-byte id in the index, ~40 bytes of location
/// (pack id, offset, length) and a 36-byte entry in the file's chunk list (id + length).
const OVERHEAD_PER_CHUNK: f64 = 32.0 + 40.0 + 36.0;

const CANDIDATES: [(usize, usize, usize); 4] = [
    (8 * KIB, 32 * KIB, 128 * KIB),
    (16 * KIB, 64 * KIB, 256 * KIB),
    (32 * KIB, 128 * KIB, 512 * KIB),
    (64 * KIB, 256 * KIB, 1024 * KIB),
];

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// (offset, length, id) of every chunk.
fn chunks(chunker: &FastCdc, data: &[u8]) -> Vec<(u64, usize, ChunkId)> {
    let mut out = Vec::new();
    chunker
        .chunk_stream(&mut Cursor::new(data), &mut |c| {
            out.push((c.offset, c.data.len(), c.id));
            Ok(())
        })
        .expect("in-memory read");
    out
}

/// The edit of the brief: 200 bytes inserted at 1 MiB, then 4 KiB overwritten at 17 MiB.
fn edited(original: &[u8], seed: u64) -> Vec<u8> {
    let mut data = original.to_vec();
    let inserted = pseudo_random(200, seed ^ 0xa5a5);
    data.splice(MIB..MIB, inserted);
    let overwrite = pseudo_random(4 * KIB, seed ^ 0x5a5a);
    data[17 * MIB..17 * MIB + 4 * KIB].copy_from_slice(&overwrite);
    data
}

fn fmt_size(bytes: usize) -> String {
    if bytes >= MIB {
        format!("{}M", bytes / MIB)
    } else {
        format!("{}K", bytes / KIB)
    }
}

fn main() {
    println!(
        "# chunk_sizes: {} MiB throughput input (best of {THROUGHPUT_RUNS}), \
         {EDIT_FILES} edited {} MiB files",
        THROUGHPUT_LEN / MIB,
        EDIT_LEN / MIB
    );
    let big = pseudo_random(THROUGHPUT_LEN, 0x6d75_7369_6366_7321);
    let files: Vec<Vec<u8>> = (0..EDIT_FILES)
        .map(|i| pseudo_random(EDIT_LEN, 0x1000 + i))
        .collect();
    let edits: Vec<Vec<u8>> = files
        .iter()
        .zip(0u64..)
        .map(|(f, i)| edited(f, i))
        .collect();

    println!(
        "| min/avg/max | chunk+hash MiB/s | mean chunk | entries per GiB | overhead | \
         moved after edit (mean) | moved (min–max) | new chunks (mean) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (min, avg, max) in CANDIDATES {
        let chunker = FastCdc::with_sizes(min, avg, max);

        let mut best = f64::INFINITY;
        let mut count = 0;
        for _ in 0..THROUGHPUT_RUNS {
            let start = Instant::now();
            count = 0usize;
            chunker
                .chunk_stream(&mut Cursor::new(big.as_slice()), &mut |_| {
                    count += 1;
                    Ok(())
                })
                .expect("in-memory read");
            best = best.min(start.elapsed().as_secs_f64());
        }
        let throughput = THROUGHPUT_LEN as f64 / MIB as f64 / best;
        let mean = THROUGHPUT_LEN as f64 / count as f64;
        let per_gib = GIB / mean;
        let overhead = OVERHEAD_PER_CHUNK / mean * 100.0;

        let mut moved = Vec::new();
        let mut new_chunks = 0usize;
        for (file, edit) in files.iter().zip(&edits) {
            let known: HashSet<ChunkId> = chunks(&chunker, file).iter().map(|c| c.2).collect();
            let fresh: Vec<usize> = chunks(&chunker, edit)
                .iter()
                .filter(|c| !known.contains(&c.2))
                .map(|c| c.1)
                .collect();
            new_chunks += fresh.len();
            moved.push(fresh.iter().sum::<usize>());
        }
        let moved_mean = moved.iter().sum::<usize>() as f64 / moved.len() as f64;
        let moved_min = moved.iter().min().copied().unwrap_or(0);
        let moved_max = moved.iter().max().copied().unwrap_or(0);

        println!(
            "| {}/{}/{} | {throughput:.0} | {:.1} KiB | {per_gib:.0} | {overhead:.3} % | \
             {:.0} KiB | {}–{} KiB | {:.1} |",
            fmt_size(min),
            fmt_size(avg),
            fmt_size(max),
            mean / KIB as f64,
            moved_mean / KIB as f64,
            moved_min / KIB,
            moved_max / KIB,
            new_chunks as f64 / EDIT_FILES as f64,
        );
    }
}
