//! Which names an SMB share can store as they are.
//!
//! SMB takes Windows names: UTF-16 text without `\ / : * ? " < > |` or control characters,
//! and Windows semantics strip a trailing `.` or space. The SMB client we use would store
//! such a name under a substitute (a private-use character in its place), so a file written
//! as `a?b` would be another name on the server, seen differently by every other client:
//! this transport refuses such names instead, naming them, and a sync reports and skips the
//! file. Names coming from the server are checked with [`crate::relpath::bad_name`] by the
//! walk.
//!
//! Never does: change a name.

/// The characters SMB forbids in a name.
const FORBIDDEN: &[char] = &['\\', ':', '*', '?', '"', '<', '>', '|'];

/// The longest name, in bytes, this transport writes (what the file systems under Samba
/// take; NTFS takes 255 UTF-16 units, never fewer bytes than that).
pub(crate) const NAME_MAX: usize = 255;

/// Why `name` (one path component) cannot be stored on an SMB share unchanged, or `None`.
pub(crate) fn unstorable(name: &[u8]) -> Option<String> {
    if let Some(why) = crate::relpath::bad_name(name) {
        return Some(why.to_string());
    }
    let Ok(text) = std::str::from_utf8(name) else {
        return Some("not UTF-8 (SMB names are Unicode text)".into());
    };
    if let Some(c) = text.chars().find(|c| FORBIDDEN.contains(c)) {
        return Some(format!("SMB forbids {c:?} in a name"));
    }
    if text.chars().any(char::is_control) {
        return Some("SMB forbids control characters in a name".into());
    }
    // The client's own substitutes for the forbidden characters: a name holding one would be
    // read back as another name.
    if text.chars().any(|c| ('\u{F000}'..='\u{F0FF}').contains(&c)) {
        return Some("a private-use character SMB clients stand in for forbidden ones".into());
    }
    if text.ends_with('.') || text.ends_with(' ') {
        return Some("SMB (Windows semantics) strips a trailing dot or space".into());
    }
    if name.len() > NAME_MAX {
        return Some(format!("longer than {NAME_MAX} bytes"));
    }
    None
}

/// Why `path` (a relative path) cannot be stored on an SMB share unchanged, or `None`.
pub(crate) fn unstorable_path(path: &[u8]) -> Option<String> {
    path.split(|&b| b == b'/').find_map(unstorable)
}

/// Why `share` is not a share name, or `None`.
pub(crate) fn bad_share(share: &str) -> Option<&'static str> {
    if share.len() > 80 {
        return Some("longer than 80 characters");
    }
    if share
        .chars()
        .any(|c| c.is_control() || "\\/:*?\"<>|[];=+,".contains(c))
    {
        return Some("a share name has none of \\ / : * ? \" < > | [ ] ; = + ,");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_names_pass_and_the_rest_is_refused() {
        for good in [
            &b"Caf\xc3\xa9.flac"[..],
            b" leading space",
            b"two  spaces.mp3",
            b".hidden",
            b"[glob] & 'single'",
        ] {
            assert_eq!(unstorable(good), None, "{}", good.escape_ascii());
        }
        for bad in [
            &b"a?b"[..],
            b"a:b",
            b"back\\slash",
            b"trailing.",
            b"trailing ",
            b"...",
            b"new\nline",
            b"latin1 \xe9",
            b"..",
            b"",
            "\u{F03F}".as_bytes(),
        ] {
            assert!(unstorable(bad).is_some(), "{}", bad.escape_ascii());
        }
        assert!(unstorable(&[b'a'; 256]).is_some());
        assert_eq!(unstorable(&[b'a'; 255]), None);
        assert!(unstorable_path(b"ok/bad?/ok").is_some());
        assert_eq!(unstorable_path(b"a/b c/d.flac"), None);
    }
}
