//! Relative paths inside an origin: `/`-separated byte strings, the root being empty. Helpers
//! that build and take them apart, written once for every transport.
//!
//! Never does: check a path (see `origin::bad_name` for what a component may be), touch the
//! file system, or treat a path as text.

/// `dir/name`, or `name` when `dir` is the root (empty).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    if !dir.is_empty() {
        path.extend_from_slice(dir);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// The directory part of `rel`: everything before its last `/`, empty (the root) for the
/// root's children and for the root itself.
pub fn parent(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[..i],
        None => b"",
    }
}

/// The last component of `rel`: everything after its last `/` (all of it when it has none).
pub fn name(rel: &[u8]) -> &[u8] {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => &rel[i + 1..],
        None => rel,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_parent_and_name_agree() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a", b"b"), b"a/b");
        assert_eq!(join(b"a/b", b"c d"), b"a/b/c d");
        for (rel, dir, last) in [
            (&b"a"[..], &b""[..], &b"a"[..]),
            (b"a/b", b"a", b"b"),
            (b"x/y/z\xff", b"x/y", b"z\xff"),
            (b"", b"", b""),
        ] {
            assert_eq!(parent(rel), dir, "{}", String::from_utf8_lossy(rel));
            assert_eq!(name(rel), last, "{}", String::from_utf8_lossy(rel));
            if !rel.is_empty() {
                assert_eq!(join(parent(rel), name(rel)), rel);
            }
        }
    }
}
