//! Named points at which the process can be made to kill itself, so that tests prove a crash
//! at that very moment loses nothing (`tests/crash.rs`).
//!
//! `MUSICFS_FAILPOINT=NAME[:N]` arms the point `NAME`: the `N`th time (default 1) the process
//! reaches it, it sends itself SIGKILL, as `kill -9` or a power cut would stop it, with no
//! chance to clean up. Unset, as it is for every user, a point costs one check of a value read
//! once. The names, in the order a sync meets them, are listed in [`POINTS`]; gc's in
//! [`GC_POINTS`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Every point, in the order a sync reaches them.
pub const POINTS: &[&str] = &[
    // A scan's read results committed (one passage per file of the batch).
    "scan-recorded",
    // A scan's trees and snapshot written, not yet committed.
    "scan-commit",
    // A scan committed, its location rows staged, not yet merged.
    "scan-staged",
    // Early deletions, before each.
    "early-deletion",
    // Inside a file being written: some chunks in its temporary file.
    "write-chunk",
    // A file complete in its temporary file, not yet renamed into place.
    "before-rename",
    // A file renamed into place, not yet recorded in the repository.
    "after-rename",
    // Written files recorded in the repository (one passage per file).
    "record",
    // The late deletions, before each.
    "deletion",
    // Directory modes and mtimes, before each.
    "directory-meta",
    // Before the destination's final scan and snapshot.
    "final-scan",
];

/// The points of `musicfs gc`, in the order it reaches them (`tests/forget_gc.rs`).
pub const GC_POINTS: &[&str] = &[
    // New history packs put, the sweep not yet committed.
    "gc-commit",
    // The sweep committed, old packs not yet removed, the index not yet compacted.
    "gc-committed",
];

fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var("MUSICFS_FAILPOINT").ok()?;
            let (name, n) = match value.split_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().ok()?),
                None => (value, 1),
            };
            Some((name, n))
        })
        .as_ref()
}

/// Marks the point `name`: kills the process if it is the armed point's `N`th passage.
pub fn hit(name: &str) {
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let Some((armed, n)) = armed() else {
        return;
    };
    if armed == name && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
