//! Tag reading never allocates what a size field claims: a tag that says it is 256 MiB long in
//! a 100-byte file costs no large allocation. Measured by a global allocator that records the
//! largest single allocation made on the current thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;

struct Largest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only records
// sizes in a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// The largest single allocation `read` made for `bytes`, and what it returned.
fn largest_allocation(bytes: Vec<u8>) -> (usize, bool) {
    let mut cursor = Cursor::new(bytes);
    LARGEST.with(|m| m.set(0));
    let info = musicfs::media::tags::read(&mut cursor);
    (LARGEST.with(Cell::get), info.is_some())
}

const LIMIT: usize = 1 << 20;

#[test]
fn a_huge_declared_id3v2_tag_is_not_allocated() {
    // An ID3v2.4 tag claiming 256 MiB (synchsafe 0x7f7f7f7f) in a 100-byte file.
    let mut bytes = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f".to_vec();
    bytes.resize(100, 0);
    let (largest, _) = largest_allocation(bytes);
    assert!(largest < LIMIT, "largest allocation {largest} bytes");
}

#[test]
fn a_huge_declared_id3v2_frame_is_not_allocated() {
    // A well-formed 40-byte ID3v2.3 tag whose one TIT2 frame claims 0x7fffffff bytes.
    let mut bytes = b"ID3\x03\x00\x00\x00\x00\x00\x28".to_vec();
    bytes.extend_from_slice(b"TIT2\x7f\xff\xff\xff\x00\x00\x00Title");
    bytes.resize(10 + 40 + 100, 0);
    let (largest, _) = largest_allocation(bytes);
    assert!(largest < LIMIT, "largest allocation {largest} bytes");
}

#[test]
fn a_huge_declared_flac_picture_is_not_allocated() {
    // fLaC, a STREAMINFO block, then a PICTURE block whose MIME length claims 2 GiB.
    let mut bytes = b"fLaC".to_vec();
    bytes.extend_from_slice(&[0x00, 0x00, 0x00, 34]);
    let mut info = [0u8; 34];
    info[0..2].copy_from_slice(&4096u16.to_be_bytes());
    info[2..4].copy_from_slice(&4096u16.to_be_bytes());
    // 44100 Hz, 2 channels, 16 bits, 0 samples.
    info[10] = 0x0a;
    info[11] = 0xc4;
    info[12] = 0x42;
    info[13] = 0xf0;
    bytes.extend_from_slice(&info);
    bytes.extend_from_slice(&[0x86, 0x00, 0x00, 0x20]);
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    bytes.resize(bytes.len() + 24, 0);
    let (largest, _) = largest_allocation(bytes);
    assert!(largest < LIMIT, "largest allocation {largest} bytes");
}

/// The measurement itself works: it sees a large allocation, and a real file's tags are read.
#[test]
fn the_measurement_sees_allocations() {
    LARGEST.with(|m| m.set(0));
    let big = std::hint::black_box(vec![1u8; 2 * LIMIT]);
    assert!(LARGEST.with(Cell::get) >= 2 * LIMIT);
    drop(big);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/audio/Aurora Tones/First Light/01 Dawn.mp3");
    let bytes = std::fs::read(&path).expect("fixture");
    let (largest, read) = largest_allocation(bytes);
    assert!(read, "{} gives tags", path.display());
    assert!(largest > 0);
}
