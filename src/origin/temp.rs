//! The temporary files a sync writes before renaming them into place: how they are named, and
//! how a walk recognises the ones an interrupted sync left behind. Every transport names them
//! the same way, so that a sync through any transport removes what another one left.
//!
//! Never does: create or remove a file; it only names them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Marks the temporary files a sync writes before renaming them into place.
pub const TEMP_PREFIX: &str = ".musicfs-";
/// Suffix of temporary files.
pub const TEMP_SUFFIX: &str = ".tmp";

/// Whether a file name is one of our temporary files.
pub fn is_temporary(name: &[u8]) -> bool {
    name.starts_with(TEMP_PREFIX.as_bytes()) && name.ends_with(TEMP_SUFFIX.as_bytes())
}

/// A fresh temporary file name for a file that will replace `target`:
/// `.musicfs-<16 hex>.tmp`, BLAKE3 of this process's id, a count of the names it made, the
/// time, `target` and `attempt`: two names this process makes never share their inputs, and
/// other processes' differ by id and time. A caller creates it exclusively and, when the name
/// is taken, asks again with the next `attempt`. One allocation: the name itself.
pub fn temp_name(target: &[u8], attempt: u32) -> String {
    // The process id, asked once (each `getpid` is a system call).
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static MADE: AtomicU64 = AtomicU64::new(0);
    let pid = *PID.get_or_init(std::process::id);
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut seed = blake3::Hasher::new();
    seed.update(&pid.to_le_bytes())
        .update(&MADE.fetch_add(1, Ordering::Relaxed).to_le_bytes())
        .update(&since_epoch.to_le_bytes())
        .update(&attempt.to_le_bytes())
        .update(target);
    let nonce = seed.finalize();
    let mut name = String::with_capacity(TEMP_PREFIX.len() + 16 + TEMP_SUFFIX.len());
    name.push_str(TEMP_PREFIX);
    name.push_str(&nonce.to_hex()[..16]);
    name.push_str(TEMP_SUFFIX);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_temporary_and_differ_by_attempt() {
        let first = temp_name(b"a/b.flac", 0);
        let second = temp_name(b"a/b.flac", 1);
        assert!(is_temporary(first.as_bytes()), "{first}");
        assert_eq!(first.len(), TEMP_PREFIX.len() + 16 + TEMP_SUFFIX.len());
        assert!(first[TEMP_PREFIX.len()..TEMP_PREFIX.len() + 16]
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        assert_ne!(first, second);
        assert!(!first.contains('/'));
        // The same target and attempt, asked again at once: another name.
        assert_ne!(temp_name(b"a/b.flac", 0), temp_name(b"a/b.flac", 0));
    }

    #[test]
    fn only_our_names_are_temporary() {
        assert!(is_temporary(b".musicfs-0123456789abcdef.tmp"));
        for other in [&b"song.tmp"[..], b".musicfs-x", b"musicfs-1.tmp", b""] {
            assert!(!is_temporary(other), "{}", String::from_utf8_lossy(other));
        }
    }
}
