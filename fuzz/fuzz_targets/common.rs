//! What every container parser must give, whatever the bytes: regions that are contiguous,
//! non-empty and cover the file exactly, and the same layout from `detect` as from parsing
//! the detected format directly.

use std::io::Cursor;

use musicfs::media::{detect, parse_as, Format, Layout};

/// Parses `data` as `format` and through `detect`, and checks both layouts.
pub fn check(format: Format, data: &[u8]) {
    let len = data.len() as u64;
    let parsed = parse_as(format, &mut Cursor::new(data), len);
    assert!(
        parsed.format == format || parsed.format == Format::Opaque,
        "{parsed:?}"
    );
    assert_covers(&parsed, len);

    let detected = detect(&mut Cursor::new(data), len).expect("reading memory cannot fail");
    assert_covers(&detected, len);
    if detected.format != Format::Opaque {
        let again = parse_as(detected.format, &mut Cursor::new(data), len);
        assert_eq!(detected, again);
    }
}

fn assert_covers(layout: &Layout, len: u64) {
    let mut at = 0u64;
    for region in &layout.regions {
        assert_eq!(region.offset, at, "gap or overlap: {layout:?}");
        assert!(region.len > 0, "empty region: {layout:?}");
        at = at.checked_add(region.len).expect("no overflow");
    }
    assert_eq!(at, len, "regions do not cover the file: {layout:?}");
}
