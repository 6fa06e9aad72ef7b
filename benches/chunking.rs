//! Throughput of the chunking pipeline and of its two halves.
//!
//! Three benches over the same deterministic pseudo-random input (fixed-seed xorshift, so runs
//! on different machines and days compare like with like):
//!
//! - `chunk_stream+blake3`: `FastCdc::default()` as the repository uses it, reading from a
//!   `Cursor` over the input and hashing every chunk;
//! - `fastcdc_cut`: the `fastcdc` crate's in-memory `v2020::FastCDC` iterator, boundaries only;
//! - `blake3`: one BLAKE3 over the whole input, hashing only.
//!
//! Pseudo-random bytes are the right model: the bulk of a music library is already-compressed
//! audio (MP3, AAC, Opus, FLAC), whose bytes look random to a rolling hash.
//!
//! Run: `cargo bench --bench chunking`. Under `cargo test --all-targets` criterion runs every
//! bench once as a smoke test; the input is then 1 MiB instead of 64 MiB so that stays quick in
//! a debug build.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use musicfs::chunk::{Chunker, FastCdc, AVG_SIZE, MAX_SIZE, MIN_SIZE};
use musicfs::id::ChunkId;

/// Input size when really benchmarking: large next to the 4 MiB read buffer and the caches.
const BENCH_LEN: usize = 64 * 1024 * 1024;
/// Input size in criterion's test mode (`cargo test --all-targets`).
const SMOKE_LEN: usize = 1024 * 1024;

/// `len` bytes from a fixed-seed xorshift64.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn input_len() -> usize {
    // Criterion benchmarks only when cargo passes `--bench`; otherwise it runs each bench once.
    if std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--test") {
        BENCH_LEN
    } else {
        SMOKE_LEN
    }
}

fn chunking(c: &mut Criterion) {
    let data = pseudo_random(input_len(), 0x6d75_7369_6366_7321);
    let mut group = c.benchmark_group("chunking");
    group
        .throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));

    let chunker = FastCdc::default();
    group.bench_function("chunk_stream+blake3", |b| {
        b.iter(|| {
            let mut reader = Cursor::new(black_box(data.as_slice()));
            let mut last = None;
            let total = chunker
                .chunk_stream(&mut reader, &mut |chunk| {
                    last = Some(chunk.id);
                    Ok(())
                })
                .expect("in-memory read");
            black_box((total, last))
        })
    });

    group.bench_function("fastcdc_cut", |b| {
        b.iter(|| {
            fastcdc::v2020::FastCDC::new(black_box(&data), MIN_SIZE, AVG_SIZE, MAX_SIZE)
                .map(|c| c.length)
                .sum::<usize>()
        })
    });

    group.bench_function("blake3", |b| b.iter(|| ChunkId::of(black_box(&data))));
    group.finish();
}

criterion_group!(benches, chunking);
criterion_main!(benches);
