//! `Filtered`: an origin whose walk leaves out what a [`Filter`] excludes.
//!
//! [`super::OriginSpec`] puts it around every origin opened with a filter in its
//! [`super::OpenOptions`], and a remote sync around its fallback origin, so that every scan,
//! sync and diff of the origin sees the filtered tree. The walk goes through the inner
//! origin's [`Origin::walk_filtered`], which a transport implements by asking the filter before
//! it reads an entry: an excluded tree is never read. Every other method is the inner
//! origin's: a path the filter excludes can still be opened, stat'ed, written or removed by
//! name (a sync never names one it did not walk).
//!
//! Never does: decide what is excluded (that is [`crate::filter`]) or read anything itself.

use std::path::{Path, PathBuf};

use super::{Capabilities, EntryStat, Origin, OriginFile, TempFile, WalkItem, WritableOrigin};
use crate::error::Result;
use crate::filter::Filter;

/// An origin walked through a filter.
#[derive(Debug)]
pub struct Filtered<O> {
    inner: O,
    filter: Filter,
}

impl<O> Filtered<O> {
    /// `inner`, its walk filtered by `filter`.
    pub fn new(inner: O, filter: Filter) -> Self {
        Filtered { inner, filter }
    }

    /// The filter.
    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// The origin inside.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<O: Origin> Origin for Filtered<O> {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    fn files_in_flight(&self) -> usize {
        self.inner.files_in_flight()
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk_filtered(&self.filter, visit)
    }
    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        self.inner.open(rel)
    }
    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.inner.stat(rel)
    }
}

impl<O: WritableOrigin> WritableOrigin for Filtered<O> {
    fn create_root(&self) -> Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        self.inner.create_temp(rel)
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> Result<()> {
        self.inner.set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        self.inner.create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], target: &[u8]) -> Result<()> {
        self.inner.symlink(rel, target)
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> Result<()> {
        self.inner.remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> Result<()> {
        self.inner.sync_dir(rel)
    }
    fn sync_dirs(&self, rels: &[Vec<u8>]) -> Vec<(Vec<u8>, crate::Error)> {
        self.inner.sync_dirs(rels)
    }
    fn open_up(&self, rel: &[u8]) -> Result<()> {
        self.inner.open_up(rel)
    }
    fn lock(&self) -> Result<Option<Box<dyn Send>>> {
        self.inner.lock()
    }
    fn give_back(&self) -> Result<()> {
        self.inner.give_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Rule;
    use crate::origin::LocalOrigin;

    fn walked(origin: &dyn Origin) -> Vec<String> {
        let mut out = Vec::new();
        origin.walk(&mut |item| {
            out.push(match item {
                WalkItem::Entry { path, .. } => format!("e {}", String::from_utf8_lossy(&path)),
                WalkItem::Excluded(path) => format!("x {}", String::from_utf8_lossy(&path)),
                WalkItem::Temporary(path) => format!("t {}", String::from_utf8_lossy(&path)),
                WalkItem::Problem { path, .. } => {
                    format!("p {}", String::from_utf8_lossy(&path))
                }
            })
        });
        out
    }

    /// An origin that overrides nothing but `walk`: the trait's default filtering.
    struct Plain(LocalOrigin);

    impl Origin for Plain {
        fn url(&self) -> &str {
            self.0.url()
        }
        fn display(&self, rel: &[u8]) -> PathBuf {
            self.0.display(rel)
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
            self.0.walk(visit)
        }
        fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
            self.0.open(rel)
        }
        fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
            self.0.stat(rel)
        }
    }

    /// A walk that lists `a/`, fails to list it, then gives what a broken transport might.
    struct Scripted(LocalOrigin);

    impl Origin for Scripted {
        fn url(&self) -> &str {
            self.0.url()
        }
        fn display(&self, rel: &[u8]) -> PathBuf {
            self.0.display(rel)
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
        fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
            let stat = |kind| EntryStat {
                kind,
                size: 0,
                mtime_ns: 0,
                change: crate::origin::ChangeKey::None,
                mode: 0o755,
            };
            use crate::origin::EntryKind::{Dir, File};
            visit(WalkItem::Entry {
                path: b"a".to_vec(),
                stat: stat(Dir),
                target: None,
            });
            visit(WalkItem::Problem {
                path: b"a".to_vec(),
                message: "Permission denied".into(),
            });
            visit(WalkItem::Problem {
                path: b"a/x".to_vec(),
                message: "Permission denied".into(),
            });
            visit(WalkItem::Entry {
                path: b"ab".to_vec(),
                stat: stat(File),
                target: None,
            });
        }
        fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
            self.0.open(rel)
        }
        fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
            self.0.stat(rel)
        }
    }

    #[test]
    fn the_default_drops_the_problems_of_an_excluded_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalOrigin::open(dir.path(), false).expect("open");
        let filter = Filter::new(vec![Rule::exclude("/a/")], false).expect("valid");
        let filtered = Filtered::new(Scripted(local), filter);
        assert_eq!(walked(&filtered), ["x a", "e ab"]);
    }

    #[test]
    fn the_default_and_the_local_walk_filter_alike() {
        let dir = tempfile::tempdir().expect("tempdir");
        for d in ["a/skip", "a/keep", "b"] {
            std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
        }
        for f in [
            "a/skip/x.flac",
            "a/keep/y.flac",
            "a/keep/z.o",
            "b/.DS_Store",
            "c.flac",
        ] {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        let filter =
            Filter::new(vec![Rule::exclude("skip/"), Rule::exclude("*.o")], true).expect("valid");
        let local = LocalOrigin::open(dir.path(), false).expect("open");
        let expected = [
            "e a",
            "e a/keep",
            "e a/keep/y.flac",
            "x a/keep/z.o",
            "x a/skip",
            "e b",
            "x b/.DS_Store",
            "e c.flac",
        ];
        let plain = Filtered::new(Plain(local.clone()), filter.clone());
        assert_eq!(walked(&plain), expected);
        let pruned = Filtered::new(local, filter);
        assert_eq!(walked(&pruned), expected);
    }
}
