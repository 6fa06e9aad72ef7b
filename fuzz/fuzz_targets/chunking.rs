#![no_main]
//! The whole chunking path on arbitrary bytes: container detection, region chunking with the
//! Ogg page transforms (and their fallback), and the Ogg header-page normalization round trip.

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use musicfs::chunk::oggpages::{denormalize_headers, normalize_headers};
use musicfs::chunk::{chunk_file, FastCdc};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let chunked = chunk_file(&mut Cursor::new(data), len, &FastCdc::default())
        .expect("reading from memory cannot fail");
    let list = chunked.list;
    assert_eq!(list.size(), len, "chunks must add up to the file");
    let covered: u64 = list.regions.iter().map(|r| r.len).sum();
    assert!(list.regions.is_empty() && len == 0 || covered == len);

    // Normalized header pages must rebuild the very bytes they came from.
    if let Some(pages) = normalize_headers(data, 0) {
        assert_eq!(pages.bytes.len(), data.len());
        assert_eq!(denormalize_headers(&pages.bytes, 0).as_deref(), Some(data));
    }
});
