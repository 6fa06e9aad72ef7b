//! Golden files that pin chunk boundaries and chunk ids for fixed inputs.
//!
//! Chunk boundaries are part of the repository format: if `FastCdc::default()` ever cuts the
//! same bytes differently (other sizes, masks, gear table, normalization level, or a bug in the
//! streaming loop), every file already stored chunks differently from what a new sync produces,
//! and deduplication against every existing repository silently stops working. These tests
//! make such a change loud.
//!
//! Each `tests/golden/chunks-<name>.txt` holds a short header of `#` lines (what the input is
//! and the BLAKE3 of the whole input, so a changed generator is told apart from a changed
//! chunker) followed by one line per chunk: `offset length blake3hex`.
//!
//! To regenerate the files after a deliberate format change (and only then):
//!
//! ```text
//! MUSICFS_UPDATE_GOLDEN=1 cargo test --test chunk_golden
//! ```
//!
//! The inputs are generated with integer arithmetic only (no `f64::sin`, whose last bit may
//! differ between libm implementations), so the files are the same on every platform.

use std::fmt::Write as _;
use std::fs;
use std::io::Cursor;
use std::path::PathBuf;

use musicfs::chunk::{Chunker, FastCdc, AVG_SIZE, MAX_SIZE, MIN_SIZE};
use musicfs::id::ChunkId;

const UPDATE_VAR: &str = "MUSICFS_UPDATE_GOLDEN";

/// `len` bytes from a fixed-seed xorshift64, eight bytes per step, little-endian.
fn xorshift_bytes(len: usize, mut seed: u64) -> Vec<u8> {
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

/// Something shaped like uncompressed audio: 16-bit little-endian stereo PCM at 44.1 kHz, two
/// tones (≈440 Hz and ≈659 Hz) under a slow triangular volume envelope, plus low-level noise
/// that differs between the channels.
///
/// The tones come from integer "magic circle" oscillators (x -= k·y; y += k·x in 16.16 fixed
/// point, k = 2·sin(π·f/44100)), which stay on a closed orbit without floating point.
fn audio_like(len: usize) -> Vec<u8> {
    struct Oscillator {
        x: i64,
        y: i64,
        k: i64,
    }
    impl Oscillator {
        fn step(&mut self) -> i64 {
            self.x -= (self.k * self.y) >> 16;
            self.y += (self.k * self.x) >> 16;
            self.y
        }
    }

    let mut a4 = Oscillator {
        x: 0,
        y: 9000,
        k: 4107,
    };
    let mut e5 = Oscillator {
        x: 0,
        y: 6000,
        k: 6148,
    };
    let mut noise = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next_noise = || {
        noise ^= noise << 13;
        noise ^= noise >> 7;
        noise ^= noise << 17;
        (noise >> 54) as i64 - 512 // uniform in -512..512
    };
    const ENVELOPE_PERIOD: i64 = 2 * 44_100;

    let mut out = Vec::with_capacity(len + 4);
    let mut frame = 0i64;
    while out.len() < len {
        let phase = frame % ENVELOPE_PERIOD;
        let ramp = if phase < ENVELOPE_PERIOD / 2 {
            phase
        } else {
            ENVELOPE_PERIOD - phase
        };
        let envelope = 64 + ramp * 192 / (ENVELOPE_PERIOD / 2); // 64..=256, i.e. ¼..1
        let tone = ((a4.step() + e5.step()) * envelope) >> 8;
        for _channel in 0..2 {
            let sample = (tone + next_noise()).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
            out.extend_from_slice(&sample.to_le_bytes());
        }
        frame += 1;
    }
    out.truncate(len);
    out
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("chunks-{name}.txt"))
}

/// One chunk as written in a golden file.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    offset: u64,
    length: usize,
    id: String,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.offset, self.length, self.id)
    }
}

fn chunk_lines(data: &[u8]) -> Vec<Line> {
    let mut lines = Vec::new();
    let total = FastCdc::default()
        .chunk_stream(&mut Cursor::new(data), &mut |chunk| {
            lines.push(Line {
                offset: chunk.offset,
                length: chunk.data.len(),
                id: chunk.id.to_hex(),
            });
            Ok(())
        })
        .expect("in-memory read");
    assert_eq!(total, data.len() as u64);
    lines
}

fn render(description: &str, input_id: &str, lines: &[Line]) -> String {
    let mut text = String::new();
    writeln!(text, "# musicfs chunk golden file: offset length blake3hex").expect("string");
    writeln!(
        text,
        "# chunker: FastCdc::default() min {MIN_SIZE} avg {AVG_SIZE} max {MAX_SIZE}"
    )
    .expect("string");
    writeln!(text, "# input: {description}").expect("string");
    writeln!(text, "# input-blake3: {input_id}").expect("string");
    for line in lines {
        writeln!(text, "{line}").expect("string");
    }
    text
}

/// Reads a golden file: the whole input's BLAKE3 and the chunk lines.
fn parse(text: &str) -> (Option<String>, Vec<Line>) {
    let mut input_id = None;
    let mut lines = Vec::new();
    for raw in text.lines() {
        if let Some(header) = raw.strip_prefix('#') {
            if let Some(id) = header.trim().strip_prefix("input-blake3:") {
                input_id = Some(id.trim().to_string());
            }
            continue;
        }
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split_whitespace().collect();
        assert_eq!(fields.len(), 3, "malformed golden line {raw:?}");
        lines.push(Line {
            offset: fields[0].parse().expect("offset"),
            length: fields[1].parse().expect("length"),
            id: fields[2].to_string(),
        });
    }
    (input_id, lines)
}

fn check_golden(name: &str, description: &str, data: &[u8]) {
    let path = golden_path(name);
    let input_id = ChunkId::of(data).to_hex();
    let actual = chunk_lines(data);

    if std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1") {
        fs::create_dir_all(path.parent().expect("golden dir")).expect("create tests/golden");
        fs::write(&path, render(description, &input_id, &actual)).expect("write golden file");
        eprintln!("rewrote {}", path.display());
        return;
    }

    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with {UPDATE_VAR}=1 cargo test --test chunk_golden",
            path.display()
        )
    });
    let (expected_input, expected) = parse(&text);
    assert_eq!(
        expected_input.as_deref(),
        Some(input_id.as_str()),
        "the generated input for {name} changed (not the chunker): fix the generator in \
         tests/chunk_golden.rs rather than regenerating {}",
        path.display()
    );
    if actual != expected {
        let first = actual
            .iter()
            .zip(&expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        let show = |lines: &[Line]| {
            lines
                .get(first)
                .map_or_else(|| "<none>".to_string(), ToString::to_string)
        };
        panic!(
            "chunk boundaries or ids for {name} differ from {}.\n\
             first difference at chunk #{first}: expected `{}`, got `{}` \
             ({} chunks expected, {} produced).\n\
             Changing chunk boundaries is a REPOSITORY FORMAT CHANGE: data already stored \
             would no longer deduplicate against new syncs. If this is deliberate, version the \
             repository format and regenerate with {UPDATE_VAR}=1 cargo test --test chunk_golden",
            path.display(),
            show(&expected),
            show(&actual),
            expected.len(),
            actual.len(),
        );
    }
}

#[test]
fn pseudo_random_4_mib() {
    check_golden(
        "random-4m",
        "4 MiB, xorshift64 seed 0x0123456789abcdef, 8 LE bytes per step",
        &xorshift_bytes(4 * 1024 * 1024, 0x0123_4567_89ab_cdef),
    );
}

#[test]
fn zeros_1_mib() {
    check_golden("zeros-1m", "1 MiB of zero bytes", &vec![0u8; 1024 * 1024]);
}

#[test]
fn audio_like_2_mib() {
    check_golden(
        "audio-2m",
        "2 MiB, 16-bit LE stereo PCM: integer 440/659 Hz tones, triangle envelope, xorshift noise",
        &audio_like(2 * 1024 * 1024),
    );
}

/// The golden files are only meaningful together with the sizes they were cut with.
#[test]
fn sizes_are_the_documented_ones() {
    assert_eq!(
        (MIN_SIZE, AVG_SIZE, MAX_SIZE),
        (16 * 1024, 64 * 1024, 256 * 1024),
        "chunk sizes changed: that is a repository format change (see docs/chunking.md)"
    );
}
