//! The temporary files a sync writes before renaming them into place: how they are named, and
//! how a walk recognises the ones an interrupted sync left behind. Every transport names them
//! the same way, so that a sync through any transport removes what another one left.
//!
//! Never does: create or remove a file; it only names them.

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
/// `.musicfs-<16 hex>.tmp`, from this process's id, the time, `target` and `attempt`. A caller
/// creates it exclusively and, when the name is taken, asks again with the next `attempt`.
pub fn temp_name(target: &[u8], attempt: u32) -> String {
    // The process id, asked once (each `getpid` is a system call).
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let mut seed = format!("{pid}{:?}", SystemTime::now()).into_bytes();
    seed.extend_from_slice(target);
    seed.extend_from_slice(&attempt.to_le_bytes());
    let nonce = blake3::hash(&seed).to_hex();
    format!("{TEMP_PREFIX}{}{TEMP_SUFFIX}", &nonce[..16])
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
    }

    #[test]
    fn only_our_names_are_temporary() {
        assert!(is_temporary(b".musicfs-0123456789abcdef.tmp"));
        for other in [&b"song.tmp"[..], b".musicfs-x", b"musicfs-1.tmp", b""] {
            assert!(!is_temporary(other), "{}", String::from_utf8_lossy(other));
        }
    }
}
