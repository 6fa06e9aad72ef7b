//! Test helpers shared by the container parsers' tests.

use super::{Format, Layout, ParseResult};

/// A parser's result on any input must be either an error or marks that make a layout of
/// `format`: strictly increasing, all inside the file.
pub(crate) fn assert_marks_sane(format: Format, result: ParseResult, len: u64) {
    if let Ok(marks) = result {
        assert!(
            marks.windows(2).all(|w| w[0].offset < w[1].offset),
            "{marks:?}"
        );
        assert!(marks.iter().all(|m| m.offset < len), "{marks:?}");
        if len > 0 {
            assert_ne!(
                Layout::from_marks(format, &marks, len).format,
                Format::Opaque
            );
        }
    }
}

/// `bytes` with each `(offset, value)` edit applied where it falls inside, cut to `len` (at
/// least `keep`).
pub(crate) fn edited(
    mut bytes: Vec<u8>,
    edits: &[(usize, u8)],
    len: usize,
    keep: usize,
) -> Vec<u8> {
    for &(at, value) in edits {
        if let Some(byte) = bytes.get_mut(at) {
            *byte = value;
        }
    }
    bytes.truncate(len.max(keep));
    bytes
}

/// Property tests every parser gets: random edits of a real file, and random bytes after the
/// format's magic, never panic and never give a broken layout.
macro_rules! never_panics {
    ($fixture:expr, $magic:expr, $check:expr) => {
        proptest::proptest! {
            #[test]
            fn random_edits_never_panic(
                edits in proptest::collection::vec((0usize..12_000, proptest::num::u8::ANY), 1..12),
                cut in 0usize..30_000,
            ) {
                $check(&crate::media::testing::edited($fixture, &edits, cut, 12_000));
            }

            #[test]
            fn random_bytes_never_panic(
                tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            ) {
                $check(&[&$magic[..], &tail].concat());
            }
        }
    };
}
pub(crate) use never_panics;

/// A committed fixture's path, relative to `fixtures/audio`.
pub(crate) fn fixture_path(name: &str) -> std::path::PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "fixtures/audio", name]
        .iter()
        .collect()
}

/// A committed fixture's bytes.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).expect("fixture")
}

/// `detect` on the fixture `name` finds `format` and regions that tile the file exactly.
pub(crate) fn assert_detect_covers(name: &str, format: Format) {
    let mut file = std::fs::File::open(fixture_path(name)).expect("fixture");
    let len = file.metadata().expect("fixture").len();
    let layout = super::detect(&mut file, len).expect("read fixture");
    assert_eq!(layout.format, format, "{name}");
    let mut next = 0;
    for r in &layout.regions {
        assert_eq!(r.offset, next, "{name}");
        assert!(r.len > 0, "{name}");
        next += r.len;
    }
    assert_eq!(next, len, "{name}");
}
