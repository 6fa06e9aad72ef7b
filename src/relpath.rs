//! Relative paths inside an origin: `/`-separated byte strings, the root being empty.
//!
//! [`RelPath`] is such a path checked to stay inside its origin: every component is a name
//! ([`bad_name`] says what a name may not be), so no `..`, no empty component, no leading or
//! trailing `/`, no NUL. Paths that come from elsewhere (the index, a remote musicfs, an SFTP
//! listing) become a `RelPath` before a transport resolves them. The free functions build and
//! take apart paths already known to be good; they are written once here for every module.
//!
//! Never does: touch the file system, or treat a path as text.

use std::fmt;

/// Why `name` cannot be one component of a relative path, if it cannot: empty, `.`, `..`, or
/// holding `/` or NUL. Names that come from elsewhere (an SFTP listing, a remote musicfs) pass
/// this before they are used.
pub fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == b"." || name == b".." {
        Some("a `.` or `..` entry")
    } else if name.contains(&b'/') {
        Some("a name containing `/`")
    } else if name.contains(&0) {
        Some("a name containing NUL")
    } else {
        None
    }
}

/// A relative path whose components are all names: it cannot leave the directory it is
/// resolved against. The root is the empty path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath<'a>(&'a [u8]);

/// An owned [`RelPath`].
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPathBuf(Vec<u8>);

impl<'a> RelPath<'a> {
    /// The root of the origin.
    pub const ROOT: RelPath<'static> = RelPath(b"");

    /// `bytes` as a relative path, or why it is not one (the first bad component's fault).
    pub fn new(bytes: &'a [u8]) -> Result<RelPath<'a>, &'static str> {
        if bytes.is_empty() {
            return Ok(RelPath(bytes));
        }
        match bytes.split(|&b| b == b'/').find_map(bad_name) {
            Some(why) => Err(why),
            None => Ok(RelPath(bytes)),
        }
    }

    /// The path's bytes.
    pub fn as_bytes(self) -> &'a [u8] {
        self.0
    }

    /// Whether this is the root.
    pub fn is_root(self) -> bool {
        self.0.is_empty()
    }

    /// The directory holding this entry (the root for the root's children and the root).
    pub fn parent(self) -> RelPath<'a> {
        RelPath(parent(self.0))
    }

    /// The last component (empty for the root).
    pub fn name(self) -> &'a [u8] {
        name(self.0)
    }

    /// The entry `name` inside this directory, or why `name` is not a name.
    pub fn join(self, name: &[u8]) -> Result<RelPathBuf, &'static str> {
        match bad_name(name) {
            Some(why) => Err(why),
            None => Ok(RelPathBuf(join(self.0, name))),
        }
    }

    /// The components, from the root down (none for the root).
    pub fn components(self) -> impl Iterator<Item = &'a [u8]> {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// An owned copy.
    pub fn to_owned(self) -> RelPathBuf {
        RelPathBuf(self.0.to_vec())
    }
}

impl RelPathBuf {
    /// `bytes` as an owned relative path, or why it is not one.
    pub fn new(bytes: Vec<u8>) -> Result<RelPathBuf, &'static str> {
        RelPath::new(&bytes)?;
        Ok(RelPathBuf(bytes))
    }

    /// The borrowed path.
    pub fn as_rel(&self) -> RelPath<'_> {
        RelPath(&self.0)
    }

    /// The path's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl AsRef<[u8]> for RelPath<'_> {
    fn as_ref(&self) -> &[u8] {
        self.0
    }
}

impl AsRef<[u8]> for RelPathBuf {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RelPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

impl fmt::Debug for RelPathBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_rel().fmt(f)
    }
}

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
    fn only_paths_that_stay_inside_are_rel_paths() {
        for good in [&b""[..], b"a", b"a/b", b"a b/c\xff", b".hidden/..x/x.."] {
            let p = RelPath::new(good).unwrap();
            assert_eq!(p.as_bytes(), good);
            assert_eq!(RelPathBuf::new(good.to_vec()).unwrap().as_rel(), p);
        }
        for bad in [
            &b"/a"[..],
            b"a/",
            b"a//b",
            b"..",
            b"a/../b",
            b"./a",
            b"a/.",
            b"a\0b",
            b"/",
        ] {
            assert!(
                RelPath::new(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn rel_paths_are_taken_apart_and_joined() {
        let p = RelPath::new(b"x/y/z").unwrap();
        assert_eq!(p.parent().as_bytes(), b"x/y");
        assert_eq!(p.name(), b"z");
        assert_eq!(p.components().collect::<Vec<_>>(), [&b"x"[..], b"y", b"z"]);
        assert!(RelPath::ROOT.is_root());
        assert_eq!(RelPath::ROOT.components().count(), 0);
        assert_eq!(RelPath::ROOT.join(b"a").unwrap().as_rel().as_bytes(), b"a");
        assert_eq!(p.join(b"w").unwrap().as_rel().as_bytes(), b"x/y/z/w");
        for bad in [&b".."[..], b"", b"a/b", b"."] {
            assert!(p.join(bad).is_err());
        }
    }

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
