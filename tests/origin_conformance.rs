//! One conformance suite for every origin: the contracts of `Origin`, `OriginFile`,
//! `WritableOrigin` and `TempFile` (docs/architecture.md), checked through the traits alone,
//! against each transport on a real server on 127.0.0.1.
//!
//! Every check is a generic function of a [`Transport`]: it makes its trees with the origin's
//! own methods and looks at them with the origin's own read side, so it holds for a transport
//! whose files live nowhere this process can see. Where transports may differ the check asks
//! the origin's own `capabilities()` (mtime resolution, stable identity, atomic replace,
//! symlinks), and checks that the transport does what they claim, or, for what capabilities
//! do not say (which names it carries, mtimes before 1970), the transport's [`Properties`];
//! never its name. A transport joins the suite with one `conformance!` line at
//! the bottom of this file, which makes one test per check, named `<transport>::<check>`.

mod support;

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use musicfs::origin::{
    is_temporary, Capabilities, ChangeKey, EntryKind, LocalOrigin, Origin, Policy, Retrying,
    WalkItem, WritableOrigin,
};
use support::faulty::{Faults, Faulty};
use support::sftp::SftpServer;

// --- what a transport under test says of itself ---------------------------------------------

/// What a transport documents about itself beyond its `Capabilities`; the checks branch on
/// these and on the capabilities alone.
#[derive(Clone, Copy, Debug)]
struct Properties {
    /// Whether mtimes before 1970 can be stored (else setting one is refused, changing nothing).
    mtimes_before_1970: bool,
    /// Whether a name may be any bytes but `/` and NUL (else it must be UTF-8, and a name that
    /// is not is refused, creating nothing).
    non_utf8_names: bool,
    /// The longest name the origin takes, in bytes; a longer one is refused, creating nothing.
    name_max: usize,
    /// Whether a name may hold ASCII control characters (newline, tab); else a name with one
    /// is refused, creating nothing.
    control_characters: bool,
    /// Whether reads may fail (faults injected under a retrying wrapper, or a handle that
    /// reads only the version it opened): a read that loses its handle while the file is
    /// replaced must then fail, never mix the two versions.
    reads_may_fail: bool,
    /// Whether a temporary file exists in the origin while it is written (listed as a
    /// temporary, with mode 0600); else it is spooled elsewhere and nothing appears before
    /// the commit.
    temporaries_visible: bool,
}

/// A transport under test: where its writable roots come from.
trait Transport {
    /// What it documents about itself.
    fn properties(&self) -> Properties;
    /// An origin at the root `name` (a `/`-separated relative path) in this transport's own
    /// scratch space, as `open` of its kind does it: the root must exist unless `may_create`.
    /// Each call is a new client (a new connection, where the transport has connections).
    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>>;
    /// `None` when the transport stores the mode bits it is given; else the modes every file
    /// and every directory read as, whatever was given (a transport without Unix modes).
    fn fixed_modes(&self) -> Option<(u32, u32)> {
        None
    }
    /// Whether the transport refuses `name` as one it cannot store unchanged (SMB's
    /// forbidden characters), creating nothing; such names are checked to be refused.
    fn refuses_name(&self, _name: &[u8]) -> bool {
        false
    }
}

/// A local directory.
struct Local {
    scratch: tempfile::TempDir,
}

impl Local {
    fn start() -> Local {
        Local { scratch: scratch() }
    }
}

impl Transport for Local {
    fn properties(&self) -> Properties {
        Properties {
            mtimes_before_1970: true,
            non_utf8_names: true,
            name_max: 255,
            control_characters: true,
            reads_may_fail: false,
            temporaries_visible: true,
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        let origin = LocalOrigin::open(&self.scratch.path().join(name), may_create)?;
        Ok(Box::new(origin))
    }
}

/// A directory on OpenSSH's SFTP server, through the harness's sshd.
struct Sftp {
    server: SftpServer,
    scratch: tempfile::TempDir,
}

impl Sftp {
    fn start() -> Sftp {
        Sftp {
            server: SftpServer::start(),
            scratch: scratch(),
        }
    }
}

impl Transport for Sftp {
    fn properties(&self) -> Properties {
        Properties {
            // SFTP version 3 carries mtimes from 1970 to 2106.
            mtimes_before_1970: false,
            // Paths travel as UTF-8 strings.
            non_utf8_names: false,
            name_max: 255,
            control_characters: true,
            reads_may_fail: false,
            temporaries_visible: true,
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        let origin = self
            .server
            .open(&self.scratch.path().join(name), may_create)?;
        Ok(Box::new(origin))
    }
}

/// A prefix of a bucket of its own on the process's moto server.
struct S3 {
    bucket: String,
}

impl S3 {
    fn start() -> S3 {
        static BUCKETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let moto = support::moto::Moto::shared();
        let bucket = format!(
            "conformance-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::SeqCst)
        );
        moto.client().create_bucket(&bucket);
        S3 { bucket }
    }
}

impl Transport for S3 {
    fn properties(&self) -> Properties {
        Properties {
            // rclone's `mtime` metadata is signed decimal seconds.
            mtimes_before_1970: true,
            // Keys are UTF-8.
            non_utf8_names: false,
            name_max: 255,
            // Refused: XML listings cannot carry most of them, and servers (moto) lose them.
            control_characters: false,
            // A handle reads the ETag it opened; a replaced object fails its next read.
            reads_may_fail: true,
            // Uploads are spooled locally: no temporary key.
            temporaries_visible: false,
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        use musicfs::origin::registry::Location;
        let location = musicfs::origin::S3Location {
            bucket: self.bucket.clone(),
            prefix: name.to_string(),
        };
        let options = musicfs::origin::OpenOptions {
            retries: 0,
            ..Default::default()
        };
        if !may_create {
            location.open(&options)?;
        }
        location.open_writable(&options)
    }
}

/// A directory of its own below the export of the process's nfs-ganesha (VFS backend), reached
/// by the userspace NFSv3 client.
struct Nfs {
    dir: String,
}

impl Nfs {
    fn start() -> Nfs {
        static DIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = support::ganesha::Ganesha::shared();
        let dir = format!("conformance-{}", DIRS.fetch_add(1, Ordering::SeqCst));
        std::fs::create_dir(server.export_dir().join(&dir)).expect("a directory in the export");
        Nfs { dir }
    }
}

impl Transport for Nfs {
    fn properties(&self) -> Properties {
        Properties {
            // NFSv3 times are unsigned seconds.
            mtimes_before_1970: false,
            // Names are opaque bytes.
            non_utf8_names: true,
            name_max: 255,
            control_characters: true,
            // A handle whose file was replaced reads stale.
            reads_may_fail: true,
            temporaries_visible: true,
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        use musicfs::origin::registry::Location;
        let server = support::ganesha::Ganesha::shared();
        let location = musicfs::origin::NfsLocation {
            host: "127.0.0.1".into(),
            port: server.nfs_port,
            path: server
                .export_dir()
                .join(&self.dir)
                .join(name)
                .into_os_string()
                .into_encoded_bytes(),
            mount_port: Some(server.mount_port),
        };
        let options = musicfs::origin::OpenOptions {
            retries: 0,
            ..Default::default()
        };
        if !may_create {
            location.open(&options)?;
        }
        location.open_writable(&options)
    }
}

/// A directory in the share of a Samba smbd of its own that requires signing, signed in as
/// a user with a password.
struct Smb {
    server: support::smbd::Smbd,
}

impl Smb {
    fn start() -> Smb {
        Smb {
            server: support::smbd::Smbd::start_with(support::smbd::SmbdOptions {
                signing_mandatory: true,
            }),
        }
    }
}

impl Transport for Smb {
    fn properties(&self) -> Properties {
        Properties {
            // FILETIME counts from 1601.
            mtimes_before_1970: true,
            // Names are UTF-16 text on the wire.
            non_utf8_names: false,
            name_max: 255,
            // SMB forbids them.
            control_characters: false,
            reads_may_fail: false,
            temporaries_visible: true,
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        use musicfs::origin::registry::Location;
        let location = musicfs::origin::SmbLocation {
            user: Some(self.server.user()),
            domain: None,
            host: "127.0.0.1".into(),
            port: self.server.port(),
            share: support::smbd::SHARE.into(),
            path: name.to_string(),
        };
        let options = musicfs::origin::OpenOptions {
            retries: 0,
            smb_credentials: Some(musicfs::origin::SmbCredentials::password(
                support::smbd::PASSWORD.into(),
            )),
            ..Default::default()
        };
        if !may_create {
            location.open(&options)?;
        }
        location.open_writable(&options)
    }

    /// SMB 2/3 has no Unix modes.
    fn fixed_modes(&self) -> Option<(u32, u32)> {
        Some((0o644, 0o755))
    }

    /// `\ : * ? " < > |`, a trailing dot or space (Windows semantics strip them).
    fn refuses_name(&self, name: &[u8]) -> bool {
        name.iter().any(|b| br#"\:*?"<>|"#.contains(b))
            || name.ends_with(b".")
            || name.ends_with(b" ")
    }
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("musicfs-conformance-")
        .tempdir()
        .expect("scratch directory")
}

// --- helpers --------------------------------------------------------------------------------

/// 2020-09-13 12:26:40 and a few nanoseconds: every mtime below has a part finer than a
/// second, so each transport's rounding shows.
const MTIME: i64 = 1_600_000_000_123_456_789;

/// A new, empty root (made with `create_root`) and the origin at it.
fn empty_root(t: &dyn Transport) -> Box<dyn WritableOrigin> {
    let origin = t
        .open("root", true)
        .expect("open a root that may be created");
    origin.create_root().expect("create_root");
    assert_eq!(walk(&*origin), Vec::<String>::new(), "a new root is empty");
    origin
}

/// A second client of the root of `empty_root`.
fn second_client(t: &dyn Transport) -> Box<dyn WritableOrigin> {
    t.open("root", false).expect("open the root again")
}

/// `lines` of [`walk`] as the origin shows them: without visible temporaries, no `t` line;
/// without directories, a `d` line only for a directory that something else below it makes.
fn as_seen(t: &dyn Transport, o: &dyn WritableOrigin, lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<&str> = lines.to_vec();
    if !t.properties().temporaries_visible {
        lines.retain(|line| !line.starts_with("t "));
    }
    if !o.capabilities().directories {
        let all = lines.clone();
        lines.retain(|line| match line.strip_prefix("d ") {
            Some(dir) => {
                let below = format!("{dir}/");
                all.iter()
                    .any(|other| other.get(2..).is_some_and(|p| p.starts_with(&below)))
            }
            None => true,
        });
    }
    lines.into_iter().map(str::to_string).collect()
}

/// The mode a file given `mode` reads as.
fn file_mode(t: &dyn Transport, mode: u32) -> u32 {
    t.fixed_modes().map_or(mode, |(file, _)| file)
}

/// The mode a directory given `mode` reads as.
fn dir_mode(t: &dyn Transport, mode: u32) -> u32 {
    t.fixed_modes().map_or(mode, |(_, dir)| dir)
}

/// `mtime_ns` as the origin claims to store it: rounded down to its mtime resolution.
fn stored(o: &dyn WritableOrigin, mtime_ns: i64) -> i64 {
    o.capabilities().mtime_resolution.truncate(mtime_ns)
}

/// Writes `bytes` to `rel` through a temporary file, committed with `mode` and `mtime_ns`.
fn put_with(
    origin: &dyn WritableOrigin,
    rel: &[u8],
    bytes: &[u8],
    mode: u32,
    mtime_ns: i64,
) -> musicfs::Result<()> {
    let mut temp = origin.create_temp(rel)?;
    if let Err(e) = temp.write_all(bytes) {
        temp.discard();
        return Err(musicfs::Error::io(origin.display(rel), e));
    }
    temp.commit(mode, mtime_ns)
}

/// [`put_with`] mode 0644 and [`MTIME`], which must succeed.
fn put(origin: &dyn WritableOrigin, rel: &[u8], bytes: &[u8]) {
    put_with(origin, rel, bytes, 0o644, MTIME)
        .unwrap_or_else(|e| panic!("write {}: {e}", show(rel)));
}

/// The whole content of a file, read from the start, or the error that stopped the read.
fn try_get(origin: &dyn WritableOrigin, rel: &[u8]) -> io::Result<Vec<u8>> {
    let mut file = origin
        .open(rel)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The whole content of a file, read from the start.
fn get(origin: &dyn WritableOrigin, rel: &[u8]) -> Vec<u8> {
    let mut file = origin
        .open(rel)
        .unwrap_or_else(|e| panic!("open {}: {e}", show(rel)));
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("read {}: {e}", show(rel)));
    bytes
}

/// A byte path as text, with every byte outside printable ASCII escaped.
fn show(rel: &[u8]) -> String {
    rel.escape_ascii().to_string()
}

/// `TEMP` in place of the random part of a temporary file's name.
fn temp_named(rel: &[u8]) -> String {
    let (dir, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => (&b""[..], rel),
    };
    assert!(is_temporary(name), "{} is no temporary name", show(rel));
    format!("{}TEMP", show(dir))
}

/// The walk as lines: `d dir`, `f file size`, `l link -> target`, `o other`, `t dir/TEMP`,
/// `p path` (a problem).
fn walk(origin: &dyn WritableOrigin) -> Vec<String> {
    let mut lines = Vec::new();
    origin.walk(&mut |item| lines.push(walk_line(item)));
    lines
}

/// [`walk`]'s line for one item; `x path` for an entry a filter excluded.
fn walk_line(item: WalkItem) -> String {
    match item {
        WalkItem::Entry { path, stat, target } => match (stat.kind, target) {
            (EntryKind::Dir, None) => format!("d {}", show(&path)),
            (EntryKind::File, None) => format!("f {} {}", show(&path), stat.size),
            (EntryKind::Symlink, Some(target)) => {
                format!("l {} -> {}", show(&path), show(&target))
            }
            (EntryKind::Other, None) => format!("o {}", show(&path)),
            (kind, target) => format!("BAD {} {kind:?} {target:?}", show(&path)),
        },
        WalkItem::Temporary(path) => format!("t {}", temp_named(&path)),
        WalkItem::Excluded(path) => format!("x {}", show(&path)),
        WalkItem::Problem { path, .. } => format!("p {}", show(&path)),
    }
}

/// The paths of the temporaries the walk finds.
fn temporaries(origin: &dyn WritableOrigin) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    origin.walk(&mut |item| {
        if let WalkItem::Temporary(path) = item {
            found.push(path);
        }
    });
    found
}

/// The message of an error that must have happened.
fn refused<T>(result: musicfs::Result<T>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: succeeded"),
        Err(e) => e.to_string(),
    }
}

/// The I/O kind of an error that must have happened.
fn io_kind<T>(result: io::Result<T>, what: &str) -> io::ErrorKind {
    match result {
        Ok(_) => panic!("{what}: succeeded"),
        Err(e) => e.kind(),
    }
}

/// Deterministic bytes that differ at every offset a read could get wrong.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

// --- walking --------------------------------------------------------------------------------

/// Depth first, names sorted bytewise within each directory (not whole paths: `a.b` comes after
/// everything below `a`), symlinks listed with their target and not followed, the root itself
/// not listed, a temporary file reported as such.
fn walk_is_depth_first_and_sorted_bytewise(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    for dir in [&b"a"[..], b"a/y", b"B", b"empty"] {
        o.create_dir(dir).unwrap();
    }
    put(o, b"a/x", b"xx");
    put(o, b"a/y/deep", b"deep");
    put(o, b"a-", b"");
    put(o, b"a.b", b"1");
    put(o, b"a0", b"22");
    put(o, b"B/z", b"zzz");
    let mut expected = vec![
        "d B",
        "f B/z 3",
        "d a",
        "t a/TEMP",
        "f a/x 2",
        "d a/y",
        "f a/y/deep 4",
        "f a- 0",
        "f a.b 1",
        "f a0 2",
        "d empty",
    ];
    if o.capabilities().symlinks {
        o.symlink(b"link-dangling", b"no/such/target").unwrap();
        o.symlink(b"link-dir", b"a").unwrap();
        expected.extend(["l link-dangling -> no/such/target", "l link-dir -> a"]);
    }
    let pending = o.create_temp(b"a/x").unwrap();
    assert_eq!(walk(o), as_seen(t, o, &expected));
    pending.discard();
    expected.retain(|line| *line != "t a/TEMP");
    assert_eq!(walk(o), as_seen(t, o, &expected));
}

/// A filtered walk gives each excluded entry once, as excluded, and nothing below an excluded
/// directory (a trailing `/` matches directories only: a file of that name stays); our
/// temporary files are temporaries whatever the filter says, so a sync still removes them.
fn walk_filtered_leaves_out_what_the_filter_excludes(t: &dyn Transport) {
    use musicfs::filter::{Filter, Rule};
    let origin = empty_root(t);
    let o = &*origin;
    for dir in [&b"a"[..], b"a/skip", b"a/skip/deep", b"b"] {
        o.create_dir(dir).unwrap();
    }
    put(o, b"a/skip/deep/x", b"x");
    put(o, b"a/keep.flac", b"1");
    put(o, b"a/z.o", b"22");
    put(o, b"b/.DS_Store", b"333");
    put(o, b"b/skip", b"a file");
    let rules = vec![
        Rule::exclude("skip/"),
        Rule::exclude("*.o"),
        Rule::exclude("*.tmp"),
    ];
    let filter = Filter::new(rules, true).unwrap();
    let pending = o.create_temp(b"a/keep.flac").unwrap();
    let mut lines = Vec::new();
    o.walk_filtered(&filter, &mut |item| lines.push(walk_line(item)));
    pending.discard();
    assert_eq!(
        lines,
        as_seen(
            t,
            o,
            &[
                "d a",
                "t a/TEMP",
                "f a/keep.flac 1",
                "x a/skip",
                "x a/z.o",
                "d b",
                "x b/.DS_Store",
                "f b/skip 6",
            ]
        )
    );
}

/// An entry that cannot be read is reported as a problem, with its path, and the walk goes on.
/// Tests run as root, whom no mode stops, so the directory vanishes instead, between its own
/// entry and the visit of its content: a transport that lists the directory then finds it gone
/// (a problem at `a`), one that has listed it already finds its entry gone (at `a/x`), and one
/// that lists the whole tree before it gives the first entry (SFTP: round trips are what a far
/// server costs) gives what it listed, `a/x` included.
fn walk_reports_a_directory_it_cannot_list_and_goes_on(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    o.create_dir(b"a").unwrap();
    put(o, b"a/x", b"x");
    put(o, b"b", b"b");
    // Removed between its own entry and its listing, through another client.
    let other = second_client(t);
    let mut lines = Vec::new();
    o.walk(&mut |item| {
        if let WalkItem::Entry { path, .. } = &item {
            if path == b"a" {
                other.remove(b"a").unwrap();
            }
        }
        lines.push(match item {
            WalkItem::Entry { path, .. } => format!("entry {}", show(&path)),
            WalkItem::Temporary(path) => format!("temporary {}", show(&path)),
            WalkItem::Excluded(path) => format!("excluded {}", show(&path)),
            WalkItem::Problem { path, message } => {
                assert!(!message.is_empty(), "a problem says what went wrong");
                format!("problem {}", show(&path))
            }
        });
    });
    assert!(
        lines == ["entry a", "problem a", "entry b"]
            || lines == ["entry a", "problem a/x", "entry b"]
            || lines == ["entry a", "entry a/x", "entry b"],
        "{lines:?}"
    );
}

// --- stat -----------------------------------------------------------------------------------

/// `stat` is an lstat: kind, size, mode and mtime of files, directories, symlinks and the root;
/// `None` for an absent entry, also below an absent directory or a file; the walk reports the
/// same.
fn stat_reports_kind_size_mode_and_mtime(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let directories = o.capabilities().directories;
    put_with(o, b"song.flac", &[7; 1234], 0o640, MTIME).unwrap();
    o.create_dir(b"album").unwrap();
    if !directories {
        // The directory exists through a file below it.
        put(o, b"album/inside", b"i");
    }
    o.set_meta(b"album", 0o750, MTIME + 1_000_000_000).unwrap();

    let file = o.stat(b"song.flac").unwrap().expect("the file is there");
    assert_eq!(
        (file.kind, file.size, file.mode, file.mtime_ns),
        (EntryKind::File, 1234, file_mode(t, 0o640), stored(o, MTIME))
    );
    let dir = o.stat(b"album").unwrap().expect("the directory is there");
    if directories {
        assert_eq!(
            (dir.kind, dir.mode, dir.mtime_ns),
            (
                EntryKind::Dir,
                dir_mode(t, 0o750),
                stored(o, MTIME + 1_000_000_000)
            )
        );
    } else {
        assert_eq!(
            dir.kind,
            EntryKind::Dir,
            "a directory has no metadata of its own"
        );
    }
    let root = o.stat(b"").unwrap().expect("the root is there");
    assert_eq!(root.kind, EntryKind::Dir);
    if o.capabilities().symlinks {
        o.symlink(b"link", b"song.flac").unwrap();
        let link = o.stat(b"link").unwrap().expect("the symlink is there");
        assert_eq!(
            (link.kind, link.size),
            (EntryKind::Symlink, "song.flac".len() as u64),
            "the link itself, not its target"
        );
    }
    assert_eq!(o.stat(b"absent").unwrap(), None);
    assert_eq!(o.stat(b"absent/deeper").unwrap(), None);
    assert_eq!(o.stat(b"album/absent").unwrap(), None);
    assert_eq!(o.stat(b"song.flac/below").unwrap(), None, "below a file");

    // The walk's stats are the same as stat's.
    o.walk(&mut |item| {
        let WalkItem::Entry { path, stat, .. } = item else {
            panic!("unexpected walk item {item:?}")
        };
        assert_eq!(Some(stat), o.stat(&path).unwrap(), "{}", show(&path));
    });

    // An origin claiming stable identities gives each entry its own.
    if o.capabilities().stable_identity {
        let (f, d) = (file.change.identity(), dir.change.identity());
        assert!(f.is_some() && d.is_some() && f != d, "{file:?} {dir:?}");
        assert_eq!(f.map(|i| i.dev), d.map(|i| i.dev), "one root, one device");
    }
    if let ChangeKey::Posix { ctime_ns, .. } = file.change {
        assert!(ctime_ns != 0);
    }
}

// --- reading --------------------------------------------------------------------------------

/// `read_exact_at` at any offset (the position untouched), `Read` and `Seek` from the start,
/// the current position and the end, reads past the end refused, and `stat()` of the open file.
fn reads_at_offsets_and_seeks(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    // Larger than one request of any transport, and not a multiple of any power of two.
    let data = pattern(3 * 1024 * 1024 + 17, 1);
    let len = data.len() as u64;
    put(o, b"big.bin", &data);
    put(o, b"empty.bin", b"");

    let mut file = o.open(b"big.bin").unwrap();
    assert_eq!(
        Some(file.stat().unwrap()),
        o.stat(b"big.bin").unwrap(),
        "the open file's stat is the entry's"
    );
    for (offset, size) in [
        (0, 1),
        (0, 70_000),
        (1, 65_536),
        (32_767, 300_001),
        (1_048_576, 1_048_576),
        (len - 1, 1),
        (len - 2_100_000, 2_100_000),
        (len, 0),
    ] {
        let mut buf = vec![0u8; size];
        file.read_exact_at(&mut buf, offset)
            .unwrap_or_else(|e| panic!("{size} bytes at {offset}: {e}"));
        assert!(
            buf[..] == data[offset as usize..offset as usize + size],
            "{size} bytes at {offset}"
        );
    }
    // Reads past the end fail as a short file does, and move nothing.
    let mut buf = vec![0u8; 20];
    assert_eq!(
        io_kind(
            file.read_exact_at(&mut buf, len - 10),
            "reading across the end"
        ),
        io::ErrorKind::UnexpectedEof
    );
    assert_eq!(
        io_kind(
            file.read_exact_at(&mut buf, len + 1000),
            "reading after the end"
        ),
        io::ErrorKind::UnexpectedEof
    );
    // `read_exact_at` left the position at the start.
    let mut head = [0u8; 5];
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, data[..5]);
    assert_eq!(file.stream_position().unwrap(), 5);
    assert_eq!(file.seek(SeekFrom::Start(10)).unwrap(), 10);
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, data[10..15]);
    assert_eq!(file.seek(SeekFrom::Current(1_000_000)).unwrap(), 1_000_015);
    file.read_exact(&mut head).unwrap();
    assert_eq!(head, data[1_000_015..1_000_020]);
    assert_eq!(file.seek(SeekFrom::End(-3)).unwrap(), len - 3);
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, data[data.len() - 3..]);
    assert_eq!(
        file.read(&mut head).unwrap(),
        0,
        "at the end, a read reads nothing"
    );
    assert_eq!(file.seek(SeekFrom::End(5)).unwrap(), len + 5);
    assert_eq!(file.read(&mut head).unwrap(), 0, "past the end too");
    assert!(file.seek(SeekFrom::Current(-(len as i64) - 6)).is_err());
    // After the end was met, a seek back reads again.
    file.seek(SeekFrom::Start(0)).unwrap();
    let mut all = Vec::new();
    file.read_to_end(&mut all).unwrap();
    assert!(all == data, "read from the start after a seek back");

    let mut empty = o.open(b"empty.bin").unwrap();
    assert_eq!(empty.stat().unwrap().size, 0);
    assert_eq!(empty.read(&mut head).unwrap(), 0);
    empty.read_exact_at(&mut [], 0).unwrap();
    assert_eq!(
        io_kind(empty.read_exact_at(&mut head, 0), "reading an empty file"),
        io::ErrorKind::UnexpectedEof
    );

    let message = refused(o.open(b"absent.flac"), "opening an absent file");
    assert!(message.contains("absent.flac"), "{message}");
}

// --- writing through temporary files --------------------------------------------------------

/// A temporary file sits next to its target (mode 0600, listed as a temporary); the target
/// appears only at commit, with all its bytes, its mode and its mtime, and no temporary stays.
fn commit_makes_the_target_appear_whole(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    o.create_dir(b"album").unwrap();
    let data = pattern(1_000_003, 2);
    let visible = t.properties().temporaries_visible;
    let mut temp = o.create_temp(b"album/track.flac").unwrap();
    let names = temporaries(o);
    if visible {
        assert_eq!(names.len(), 1, "one temporary: {names:?}");
        assert_eq!(temp_named(&names[0]), "album/TEMP", "next to its target");
        let temp_stat = o.stat(&names[0]).unwrap().expect("the temporary exists");
        assert_eq!(
            (temp_stat.kind, temp_stat.mode),
            (EntryKind::File, file_mode(t, 0o600))
        );
    } else {
        assert_eq!(names, Vec::<Vec<u8>>::new(), "no temporary in the origin");
    }
    for piece in data.chunks(4099) {
        temp.write_all(piece).unwrap();
        assert_eq!(o.stat(b"album/track.flac").unwrap(), None);
    }
    assert_eq!(walk(o), as_seen(t, o, &["d album", "t album/TEMP"]));
    temp.commit(0o640, MTIME).unwrap();

    let stat = o.stat(b"album/track.flac").unwrap().expect("committed");
    assert_eq!(
        (stat.kind, stat.size, stat.mode, stat.mtime_ns),
        (
            EntryKind::File,
            data.len() as u64,
            file_mode(t, 0o640),
            stored(o, MTIME)
        )
    );
    assert!(get(o, b"album/track.flac") == data, "the committed bytes");
    assert_eq!(walk(o), ["d album", "f album/track.flac 1000003"]);
    for name in &names {
        assert_eq!(o.stat(name).unwrap(), None, "the temporary is gone");
    }

    // Two temporaries for one target at once have two names.
    let first = o.create_temp(b"album/track.flac").unwrap();
    let second = o.create_temp(b"album/track.flac").unwrap();
    assert_eq!(temporaries(o).len(), if visible { 2 } else { 0 });
    first.discard();
    second.discard();
    assert_eq!(walk(o), ["d album", "f album/track.flac 1000003"]);
}

/// Replacing a file: every reader, at any moment, reads either all the old bytes or all the
/// new; a reader that opened the old file keeps reading it after the commit.
fn commit_replaces_atomically(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    if !o.capabilities().atomic_replace {
        // Refused and the target kept: `capabilities_are_what_the_transport_does`.
        return;
    }
    let old = pattern(700_001, 3);
    let new = pattern(1_300_007, 4);
    put_with(o, b"track.flac", &old, 0o644, MTIME).unwrap();
    let reader = second_client(t);
    let mut opened_before = reader.open(b"track.flac").unwrap();

    let committed = AtomicBool::new(false);
    let reads_may_fail = t.properties().reads_may_fail;
    let reads = std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            let mut reads = 0u32;
            loop {
                let done = committed.load(Ordering::SeqCst);
                let bytes = match try_get(&*reader, b"track.flac") {
                    Ok(bytes) => bytes,
                    Err(e) if reads_may_fail => {
                        assert!(e.to_string().contains("changed while it was read"), "{e}");
                        continue;
                    }
                    Err(e) => panic!("read track.flac: {e}"),
                };
                reads += 1;
                assert!(
                    bytes == old || bytes == new,
                    "read {reads}: a reader saw {} bytes, neither the old file nor the new",
                    bytes.len()
                );
                if done {
                    assert!(bytes == new, "after the commit, the new bytes");
                    return reads;
                }
            }
        });
        let mut temp = o.create_temp(b"track.flac").unwrap();
        for piece in new.chunks(65_537) {
            temp.write_all(piece).unwrap();
        }
        temp.commit(0o600, MTIME + 5_000_000_000).unwrap();
        committed.store(true, Ordering::SeqCst);
        watcher.join().expect("the reader thread")
    });
    assert!(reads >= 1);

    let stat = o.stat(b"track.flac").unwrap().expect("replaced");
    assert_eq!(
        (stat.size, stat.mode, stat.mtime_ns),
        (
            new.len() as u64,
            file_mode(t, 0o600),
            stored(o, MTIME + 5_000_000_000)
        )
    );
    assert_eq!(walk(o), ["f track.flac 1300007"], "no temporary stays");
    let mut before = Vec::new();
    match opened_before.read_to_end(&mut before) {
        Ok(_) => {
            assert!(
                before == old,
                "a file opened before the commit still reads the old bytes: read {} bytes, {}",
                before.len(),
                if before == new {
                    "the new file"
                } else {
                    "neither file"
                }
            );
            assert_eq!(opened_before.stat().unwrap().size, old.len() as u64);
        }
        // Its handle lost, the old file is gone: the read fails rather than go on in the new.
        Err(e) if reads_may_fail => {
            assert!(e.to_string().contains("changed while it was read"), "{e}")
        }
        Err(e) => panic!("reading a file opened before the commit: {e}"),
    }
}

/// `discard` leaves nothing: no temporary, no target, and an existing target as it was.
fn discard_leaves_nothing(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let mut temp = o.create_temp(b"new.flac").unwrap();
    temp.write_all(&pattern(300_000, 5)).unwrap();
    temp.discard();
    assert_eq!(walk(o), Vec::<String>::new());

    put(o, b"kept.flac", b"kept");
    let mut temp = o.create_temp(b"kept.flac").unwrap();
    temp.write_all(b"abandoned").unwrap();
    temp.discard();
    assert_eq!(walk(o), ["f kept.flac 4"]);
    assert_eq!(get(o, b"kept.flac"), b"kept");
}

/// A commit that fails (here: a name longer than the origin takes) leaves no temporary.
fn a_failed_commit_leaves_nothing(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let too_long = vec![b'n'; t.properties().name_max + 1];
    let message = refused(
        put_with(o, &too_long, b"bytes", 0o644, MTIME),
        "a name one byte too long",
    );
    assert!(!message.is_empty());
    assert_eq!(walk(o), Vec::<String>::new());
}

// --- rename and remove ----------------------------------------------------------------------

/// `rename` moves files and directories, replaces an existing file, keeps an entry's identity
/// where there is one, and refuses an absent source.
fn rename_moves_and_replaces(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    o.create_dir(b"a").unwrap();
    o.create_dir(b"b").unwrap();
    put(o, b"a/one", b"1");
    put(o, b"b/two", b"22");
    let before = o.stat(b"a/one").unwrap().expect("a/one");

    o.rename(b"a/one", b"b/moved").unwrap();
    assert_eq!(o.stat(b"a/one").unwrap(), None);
    let after = o.stat(b"b/moved").unwrap().expect("moved");
    assert_eq!(
        (after.size, after.mode, after.mtime_ns),
        (before.size, before.mode, before.mtime_ns)
    );
    if o.capabilities().stable_identity {
        assert!(before.change.identity().is_some());
        assert_eq!(
            after.change.identity(),
            before.change.identity(),
            "the same file under a new name"
        );
    }

    o.rename(b"b/moved", b"b/two").unwrap();
    assert_eq!(get(o, b"b/two"), b"1");
    o.rename(b"b", b"c").unwrap();
    assert_eq!(walk(o), as_seen(t, o, &["d a", "d c", "f c/two 1"]));

    let message = refused(o.rename(b"absent", b"c/two"), "renaming an absent entry");
    assert!(message.contains("absent"), "{message}");
    assert_eq!(
        get(o, b"c/two"),
        b"1",
        "the target of a failed rename is untouched"
    );
}

/// `remove` takes a file, a symlink (never what it points to), an empty directory and a whole
/// tree; an absent entry is fine, also below an absent directory or a file.
fn remove_takes_files_links_and_trees(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let symlinks = o.capabilities().symlinks;
    o.create_dir(b"keep").unwrap();
    put(o, b"keep/file", b"k");
    o.create_dir(b"empty").unwrap();
    for dir in [&b"tree"[..], b"tree/a", b"tree/a/b", b"tree/c"] {
        o.create_dir(dir).unwrap();
    }
    put(o, b"tree/a/b/deep", b"deep");
    put(o, b"tree/top", b"top");
    put(o, b"file", b"f");
    if symlinks {
        o.symlink(b"tree/c/out", b"../../keep").unwrap();
        o.symlink(b"link", b"keep").unwrap();
    }

    o.remove(b"file").unwrap();
    assert_eq!(o.stat(b"file").unwrap(), None);
    o.remove(b"empty").unwrap();
    assert_eq!(o.stat(b"empty").unwrap(), None);
    if symlinks {
        o.remove(b"link").unwrap();
        assert_eq!(o.stat(b"link").unwrap(), None);
    }
    o.remove(b"tree").unwrap();
    assert_eq!(o.stat(b"tree").unwrap(), None);
    assert_eq!(
        walk(o),
        ["d keep", "f keep/file 1"],
        "what links pointed to stays"
    );

    o.remove(b"absent").unwrap();
    o.remove(b"absent/below").unwrap();
    o.remove(b"keep/file/below").unwrap();
    o.remove(b"tree").unwrap();
    assert_eq!(walk(o), ["d keep", "f keep/file 1"]);
}

// --- metadata -------------------------------------------------------------------------------

/// The mtime stored is the one given, rounded down to the transport's resolution, whether set
/// at commit or by `set_meta`, on files and directories; mtimes before 1970 are stored or
/// refused as the transport says.
fn mtimes_are_stored_to_the_transport_resolution(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let p = t.properties();
    let times = [
        MTIME,
        1_600_000_000_999_999_999,
        1_600_000_001_000_000_000,
        1,
        0,
        4_000_000_000_000_000_001,
    ];
    o.create_dir(b"dir").unwrap();
    for (i, &mtime) in times.iter().enumerate() {
        let name = format!("f{i}");
        put_with(o, name.as_bytes(), b"x", 0o644, mtime).unwrap();
        let at_commit = o.stat(name.as_bytes()).unwrap().unwrap().mtime_ns;
        assert_eq!(at_commit, stored(o, mtime), "commit with mtime {mtime}");
        o.set_meta(name.as_bytes(), 0o644, mtime + 7).unwrap();
        let set = o.stat(name.as_bytes()).unwrap().unwrap().mtime_ns;
        assert_eq!(
            set,
            stored(o, mtime + 7),
            "set_meta with mtime {}",
            mtime + 7
        );
        o.set_meta(b"dir", 0o755, mtime).unwrap();
        if o.capabilities().directories {
            let dir = o.stat(b"dir").unwrap().unwrap().mtime_ns;
            assert_eq!(dir, stored(o, mtime), "a directory's mtime {mtime}");
        }
    }

    let before_1970 = -86_400_000_000_000 - 1;
    let result = put_with(o, b"old", b"x", 0o644, before_1970);
    let directories = o.capabilities().directories;
    let dir_before = o.stat(b"dir").unwrap();
    let set = o.set_meta(b"dir", 0o700, before_1970);
    if p.mtimes_before_1970 {
        result.unwrap();
        set.unwrap();
        let stat = o.stat(b"old").unwrap().unwrap();
        assert_eq!(stat.mtime_ns, stored(o, before_1970));
        if directories {
            let dir = o.stat(b"dir").unwrap().unwrap();
            assert_eq!(
                (dir.mode, dir.mtime_ns),
                (dir_mode(t, 0o700), stored(o, before_1970))
            );
        }
    } else {
        refused(result, "a commit with an mtime before 1970");
        refused(set, "set_meta with an mtime before 1970");
        assert_eq!(
            o.stat(b"old").unwrap(),
            None,
            "a refused commit makes nothing"
        );
        assert_eq!(
            o.stat(b"dir").unwrap(),
            dir_before,
            "a refused set_meta changes nothing"
        );
        assert_eq!(temporaries(o), Vec::<Vec<u8>>::new());
    }
}

/// `set_meta` stores the mode bits given (set-id and sticky bits too; as root, modes that deny
/// everyone bind nobody, so only the stored bits are checked), or, on a transport without
/// modes, leaves the modes it reports and stores the mtime; it refuses an absent entry.
fn set_meta_stores_mode_bits(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    put(o, b"file", b"f");
    o.create_dir(b"dir").unwrap();
    let directories = o.capabilities().directories;
    for (rel, mode) in [
        (&b"file"[..], 0o600),
        (b"file", 0o4755),
        (b"file", 0o000),
        (b"file", 0o444),
        (b"dir", 0o2750),
        (b"dir", 0o1777),
        (b"dir", 0o000),
        (b"dir", 0o755),
    ] {
        o.set_meta(rel, mode, MTIME).unwrap();
        if rel == b"dir" && !directories {
            // Nothing stored: `stat_reports_kind_size_mode_and_mtime`.
            continue;
        }
        let stat = o.stat(rel).unwrap().unwrap();
        let kept = match rel == b"dir" {
            true => dir_mode(t, mode),
            false => file_mode(t, mode),
        };
        assert_eq!(
            (stat.mode, stat.mtime_ns),
            (kept, stored(o, MTIME)),
            "{} mode {mode:o}",
            show(rel)
        );
    }
    assert_eq!(get(o, b"file"), b"f", "set_meta leaves the bytes alone");
    let message = refused(o.set_meta(b"absent", 0o644, MTIME), "set_meta of nothing");
    assert!(message.contains("absent"), "{message}");
}

// --- directories, symlinks, the root --------------------------------------------------------

/// `create_dir` makes a directory in an existing one; an existing directory is fine; a missing
/// parent or a file in the way is refused.
fn create_dir_makes_one_level(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    o.create_dir(b"a").unwrap();
    o.create_dir(b"a").unwrap();
    o.create_dir(b"a/b").unwrap();
    put(o, b"a/file", b"f");
    if !o.capabilities().directories {
        // Nothing is created: directories exist through the files below them.
        assert_eq!(walk(o), ["d a", "f a/file 1"]);
        o.create_dir(b"x/y").unwrap();
        assert_eq!(walk(o), ["d a", "f a/file 1"]);
        return;
    }
    assert_eq!(walk(o), ["d a", "d a/b", "f a/file 1"]);
    refused(o.create_dir(b"x/y"), "create_dir without its parent");
    refused(o.create_dir(b"a/file"), "create_dir where a file is");
    assert_eq!(walk(o), ["d a", "d a/b", "f a/file 1"]);
}

/// `symlink` stores the target's bytes as given, replaces an existing symlink atomically,
/// and leaves no temporary, also when it fails.
fn symlink_creates_and_replaces(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    if !o.capabilities().symlinks {
        refused(
            o.symlink(b"link", b"target"),
            "a symlink where there are none",
        );
        assert_eq!(walk(o), Vec::<String>::new());
        return;
    }
    o.symlink(b"link", b"../some where/else.flac").unwrap();
    o.symlink(b"absolute", b"/srv/music/x").unwrap();
    assert_eq!(
        walk(o),
        [
            "l absolute -> /srv/music/x",
            "l link -> ../some where/else.flac"
        ]
    );
    o.symlink(b"link", b"other").unwrap();
    assert_eq!(
        walk(o),
        ["l absolute -> /srv/music/x", "l link -> other"],
        "replaced, no temporary"
    );
    o.create_dir(b"dir").unwrap();
    put(o, b"dir/inside", b"i");
    refused(o.symlink(b"dir", b"other"), "a symlink over a directory");
    assert_eq!(
        walk(o),
        [
            "l absolute -> /srv/music/x",
            "d dir",
            "f dir/inside 1",
            "l link -> other"
        ],
        "a failed symlink leaves the directory and no temporary"
    );
}

/// `create_root` makes the root and its missing parents, and is idempotent; an origin at an
/// absent root opens only when it may create it, and one at a file never.
fn create_root_makes_missing_parents(t: &dyn Transport) {
    refused(t.open("deep/er/root", false), "opening an absent root");
    let origin = t.open("deep/er/root", true).unwrap();
    let o = &*origin;
    assert_eq!(o.stat(b"").unwrap(), None, "not created by opening");
    o.create_root().unwrap();
    if o.capabilities().directories {
        assert_eq!(o.stat(b"").unwrap().map(|s| s.kind), Some(EntryKind::Dir));
    }
    o.create_root().unwrap();
    if !o.capabilities().directories {
        assert_eq!(
            o.stat(b"").unwrap(),
            None,
            "a root without directories exists through its files"
        );
    }
    put(o, b"file", b"f");
    assert_eq!(walk(o), ["f file 1"]);
    let again = t.open("deep/er/root", false).unwrap();
    assert_eq!(walk(&*again), ["f file 1"]);
    refused(t.open("deep/er/root/file", true), "a root that is a file");
}

/// `sync_dir` succeeds on the root and on a directory, and changes nothing in them.
fn sync_dir_keeps_entries(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    o.create_dir(b"album").unwrap();
    put(o, b"album/a", b"a");
    o.rename(b"album/a", b"album/b").unwrap();
    o.sync_dir(b"album").unwrap();
    o.sync_dir(b"").unwrap();
    assert_eq!(walk(o), ["d album", "f album/b 1"]);
}

// --- capabilities ---------------------------------------------------------------------------

/// What `capabilities()` claims is what the origin does: the same answer from every client;
/// with atomic replace a commit and a rename over an existing entry succeed, without it they
/// fail and leave the target as it was; a file rewritten with the same size, mtime and mode
/// gets a new change key unless the origin has none to give (then the two stats are equal,
/// the documented blind spot of `ChangeKey::None`).
fn capabilities_are_what_the_transport_does(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let caps = o.capabilities();
    put_with(o, b"a.flac", b"old bytes", 0o644, MTIME).unwrap();
    // (A root without directories exists once a file is in it.)
    assert_eq!(
        caps,
        second_client(t).capabilities(),
        "every client says the same"
    );
    assert_eq!(caps, o.capabilities(), "constant");
    let before = o.stat(b"a.flac").unwrap().expect("a.flac");
    let replaced = put_with(o, b"a.flac", b"new bytes", 0o644, MTIME);
    if caps.atomic_replace {
        replaced.unwrap();
        assert_eq!(get(o, b"a.flac"), b"new bytes");
    } else {
        refused(
            replaced,
            "a commit over an existing file without atomic replace",
        );
        assert_eq!(get(o, b"a.flac"), b"old bytes", "the target as it was");
        assert_eq!(temporaries(o), Vec::<Vec<u8>>::new());
    }
    let after = o.stat(b"a.flac").unwrap().expect("a.flac");
    if caps.atomic_replace {
        assert_eq!(
            (after.size, after.mtime_ns, after.mode),
            (before.size, before.mtime_ns, before.mode),
            "same size, mtime and mode"
        );
        match before.change {
            ChangeKey::None => assert_eq!(after, before, "nothing tells the two apart"),
            _ => assert_ne!(after.change, before.change, "new content, new change key"),
        }
    }

    put(o, b"b.flac", b"b");
    let renamed = o.rename(b"b.flac", b"a.flac");
    if caps.atomic_replace {
        renamed.unwrap();
        assert_eq!(get(o, b"a.flac"), b"b");
        assert_eq!(o.stat(b"b.flac").unwrap(), None);
    } else {
        refused(
            renamed,
            "a rename over an existing file without atomic replace",
        );
        assert_eq!(walk(o), ["f a.flac 9", "f b.flac 1"]);
    }

    // A change key's identity, where one is claimed stable, names one file: two files never
    // share it, and a rename keeps it (checked in `rename_moves_and_replaces`).
    if caps.stable_identity {
        put(o, b"c.flac", b"c");
        let ids: Vec<_> = [&b"a.flac"[..], b"c.flac"]
            .iter()
            .map(|rel| o.stat(rel).unwrap().expect("stat").change.identity())
            .collect();
        assert!(ids[0].is_some() && ids[0] != ids[1], "{ids:?}");
    }
    if caps.durable_commit {
        o.sync_dir(b"").unwrap();
    }
}

// --- names ----------------------------------------------------------------------------------

/// Names are bytes: NFC and NFD spellings are two entries, spaces, dashes, newlines and
/// names of exactly the longest length work in every operation and come back unchanged;
/// non-UTF-8 names work or are refused as the transport says.
fn names_are_bytes(t: &dyn Transport) {
    let origin = empty_root(t);
    let o = &*origin;
    let p = t.properties();
    let mut names: Vec<Vec<u8>> = vec![
        "Café.flac".into(),        // NFC
        "Cafe\u{301}.flac".into(), // NFD: another name
        " leading space".into(),
        "trailing space ".into(),
        "two  inner  spaces.mp3".into(),
        "-rf".into(),
        "--".into(),
        "-".into(),
        "...".into(),
        ".hidden".into(),
        "new\nline".into(),
        "tab\tand \\ \"quotes\" 'single' *?[glob]".into(),
        "日本語の曲.ogg".into(),
        "ünïcödé – “quotes” & more.m4a".into(),
    ];
    let mut longest_ascii = vec![b'a'; p.name_max - 5];
    longest_ascii.extend_from_slice(b".flac");
    names.push(longest_ascii);
    let mut longest_utf8 = "é".repeat((p.name_max - 1) / 2).into_bytes();
    longest_utf8.resize(p.name_max, b'x');
    names.push(longest_utf8);
    let non_utf8 = b"latin1 \xe9t\xe9 \xff.mp3".to_vec();
    if p.non_utf8_names {
        names.push(non_utf8.clone());
    }
    let (refused_names, names): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
        names.into_iter().partition(|name| t.refuses_name(name));
    for name in &refused_names {
        refused(
            put_with(o, name, b"x", 0o644, MTIME),
            "a name the transport cannot store",
        );
        refused(o.create_dir(name), "a directory name it cannot store");
    }
    assert_eq!(walk(o), Vec::<String>::new(), "refused names leave nothing");
    let (with_controls, mut names): (Vec<Vec<u8>>, Vec<Vec<u8>>) = names
        .into_iter()
        .partition(|name| name.iter().any(u8::is_ascii_control));
    if p.control_characters {
        names.extend(with_controls.iter().cloned());
    } else {
        for name in &with_controls {
            refused(
                put_with(o, name, b"x", 0o644, MTIME),
                "a name with a control character",
            );
            refused(
                o.create_dir(name),
                "a directory name with a control character",
            );
        }
        assert_eq!(walk(o), Vec::<String>::new(), "refused names leave nothing");
    }
    names.sort();

    for (i, name) in names.iter().enumerate() {
        put(o, name, &i.to_le_bytes());
    }
    let mut expected: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, name)| format!("f {} {}", show(name), i.to_le_bytes().len()))
        .collect();
    assert_eq!(
        walk(o),
        expected,
        "every name listed as written, in byte order"
    );
    for (i, name) in names.iter().enumerate() {
        assert_eq!(get(o, name), i.to_le_bytes(), "{}", show(name));
        assert!(o.stat(name).unwrap().is_some(), "{}", show(name));
    }

    // Each name as the target of a rename, as a directory, and as a symlink.
    for (i, name) in names.iter().enumerate() {
        let dir = format!("d{i}").into_bytes();
        o.create_dir(&dir).unwrap();
        let mut inside = dir.clone();
        inside.push(b'/');
        inside.extend_from_slice(name);
        o.rename(name, &inside).unwrap();
        assert!(o.stat(name).unwrap().is_none(), "{}", show(name));
        assert_eq!(get(o, &inside), i.to_le_bytes(), "{}", show(&inside));
        o.create_dir(name).unwrap();
        let mut below = name.clone();
        below.extend_from_slice(b"/below");
        put(o, &below, b"b");
        assert_eq!(get(o, &below), b"b", "{}", show(&below));
        assert_eq!(o.stat(name).unwrap().map(|s| s.kind), Some(EntryKind::Dir));
        o.remove(name).unwrap();
        if o.capabilities().symlinks {
            o.symlink(name, &inside).unwrap();
            let mut found = None;
            o.walk(&mut |item| {
                if let WalkItem::Entry {
                    path,
                    target: Some(target),
                    ..
                } = item
                {
                    if path == *name {
                        found = Some(target);
                    }
                }
            });
            assert_eq!(found.as_deref(), Some(&inside[..]), "{}", show(name));
            o.remove(name).unwrap();
        }
        o.remove(&dir).unwrap();
    }
    expected.clear();
    assert_eq!(walk(o), expected);

    if !p.non_utf8_names {
        refused(
            put_with(o, &non_utf8, b"x", 0o644, MTIME),
            "a name that is not UTF-8",
        );
        refused(
            o.create_dir(&non_utf8),
            "a directory name that is not UTF-8",
        );
        assert_eq!(walk(o), expected, "refused names leave nothing");
    }
    let too_long = vec![b'z'; p.name_max + 1];
    refused(
        o.create_dir(&too_long),
        "a directory name one byte too long",
    );
    assert_eq!(walk(o), expected);
}

// --- under injected faults ------------------------------------------------------------------
//
// `Retrying` (origin::retrying) around the test-only `Faulty` (tests/support/faulty.rs) around
// another transport is a transport of its own: every check above runs through it (the
// `*_under_faults` lines at the end), with handles that drop mid-read, short reads and
// stalls. The checks below need the faults themselves.

/// The faults every `UnderFaults` transport injects.
const FAULTS: Faults = Faults {
    drop_every: 7,
    short_reads: true,
    stall_every: 13,
};

/// Retries quick enough for tests, and enough of them for `drop_every` above.
const QUICK: Policy = Policy {
    retries: 6,
    base: std::time::Duration::from_millis(1),
    cap: std::time::Duration::from_millis(5),
};

/// `Retrying(Faulty(T))`.
struct UnderFaults<T> {
    inner: T,
}

impl<T: Transport> UnderFaults<T> {
    fn new(inner: T) -> Self {
        UnderFaults { inner }
    }
}

impl<T: Transport> Transport for UnderFaults<T> {
    fn properties(&self) -> Properties {
        Properties {
            reads_may_fail: true,
            ..self.inner.properties()
        }
    }

    fn open(&self, name: &str, may_create: bool) -> musicfs::Result<Box<dyn WritableOrigin>> {
        let faulty = Faulty::new(self.inner.open(name, may_create)?, FAULTS);
        Ok(Box::new(Retrying::new(faulty, QUICK)))
    }
    fn fixed_modes(&self) -> Option<(u32, u32)> {
        self.inner.fixed_modes()
    }

    fn refuses_name(&self, name: &[u8]) -> bool {
        self.inner.refuses_name(name)
    }
}

/// A sync whose source drops its handles mid-read ends exact: every drop was retried by
/// opening the file again, and no chunk was taken for absent.
fn a_sync_from_a_source_that_drops_ends_exact(t: &dyn Transport) {
    let src = t.open("src", true).unwrap();
    src.create_root().unwrap();
    let mut files = Vec::new();
    for i in 0..12u32 {
        let rel = format!("d{}/track {i:02}.flac", i % 3);
        let data: Vec<u8> = (0..(150_000 + i * 37_000))
            .map(|n| (n.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i as u8)
            .collect();
        src.create_dir(format!("d{}", i % 3).as_bytes()).unwrap();
        let mut tmp = src.create_temp(rel.as_bytes()).unwrap();
        tmp.write_all(&data).unwrap();
        tmp.commit(0o644, 1_700_000_000_000_000_000).unwrap();
        files.push((rel, data));
    }
    let faulty = Faulty::new(t.open("src", false).unwrap(), FAULTS);
    let drops = std::sync::Arc::clone(&faulty.drops);
    let source = Retrying::new(faulty, QUICK);
    let dir = scratch();
    let repo = musicfs::repo::Repository::init(&dir.path().join("repo"))
        .unwrap()
        .0;
    let destination = LocalOrigin::open(&dir.path().join("dst"), true).unwrap();
    let summary = musicfs::sync::sync(
        &repo,
        &source,
        &destination,
        &repo.chunker(),
        musicfs::sync::SyncOptions::default(),
        &musicfs::report::NullSink,
    )
    .unwrap();
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert!(drops.load(Ordering::Relaxed) > 0, "no fault was injected");
    for (rel, data) in &files {
        let got = std::fs::read(dir.path().join("dst").join(rel)).unwrap();
        assert!(&got == data, "{rel} differs");
    }
}

// --- the transports -------------------------------------------------------------------------

/// One test per check for the transport that `$start` makes (anew for each test).
macro_rules! conformance {
    ($transport:ident => $start:expr) => {
        mod $transport {
            #[allow(unused_imports)]
            use super::*;

            conformance!(@checks $start;
                walk_is_depth_first_and_sorted_bytewise,
                walk_reports_a_directory_it_cannot_list_and_goes_on,
                walk_filtered_leaves_out_what_the_filter_excludes,
                stat_reports_kind_size_mode_and_mtime,
                reads_at_offsets_and_seeks,
                commit_makes_the_target_appear_whole,
                commit_replaces_atomically,
                discard_leaves_nothing,
                a_failed_commit_leaves_nothing,
                rename_moves_and_replaces,
                remove_takes_files_links_and_trees,
                mtimes_are_stored_to_the_transport_resolution,
                set_meta_stores_mode_bits,
                create_dir_makes_one_level,
                symlink_creates_and_replaces,
                create_root_makes_missing_parents,
                sync_dir_keeps_entries,
                capabilities_are_what_the_transport_does,
                names_are_bytes,
            );
        }
    };
    (@checks $start:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                let transport = $start;
                super::$check(&transport);
            }
        )*
    };
}

conformance!(local => Local::start());
conformance!(sftp => Sftp::start());
conformance!(s3 => S3::start());
conformance!(smb => Smb::start());
conformance!(nfs => Nfs::start());
conformance!(local_under_faults => UnderFaults::new(Local::start()));
conformance!(sftp_under_faults => UnderFaults::new(Sftp::start()));
conformance!(smb_under_faults => UnderFaults::new(Smb::start()));
conformance!(nfs_under_faults => UnderFaults::new(Nfs::start()));

// --- a sync follows the destination's capabilities ------------------------------------------

/// A destination as `T` opens it, claiming no symlinks: `symlink` counts its calls (a sync
/// must make none) and refuses.
struct WithoutSymlinks {
    inner: Box<dyn WritableOrigin>,
    symlink_calls: std::sync::atomic::AtomicU32,
}

impl Origin for WithoutSymlinks {
    fn url(&self) -> &str {
        self.inner.url()
    }
    fn display(&self, rel: &[u8]) -> std::path::PathBuf {
        self.inner.display(rel)
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            symlinks: false,
            ..self.inner.capabilities()
        }
    }
    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.inner.walk(visit)
    }
    fn open(&self, rel: &[u8]) -> musicfs::Result<Box<dyn musicfs::origin::OriginFile>> {
        self.inner.open(rel)
    }
    fn stat(&self, rel: &[u8]) -> musicfs::Result<Option<musicfs::origin::EntryStat>> {
        self.inner.stat(rel)
    }
}

impl WritableOrigin for WithoutSymlinks {
    fn create_root(&self) -> musicfs::Result<()> {
        self.inner.create_root()
    }
    fn create_temp(&self, rel: &[u8]) -> musicfs::Result<Box<dyn musicfs::origin::TempFile>> {
        self.inner.create_temp(rel)
    }
    fn set_meta(&self, rel: &[u8], mode: u32, mtime_ns: i64) -> musicfs::Result<()> {
        self.inner.set_meta(rel, mode, mtime_ns)
    }
    fn create_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.create_dir(rel)
    }
    fn symlink(&self, rel: &[u8], _target: &[u8]) -> musicfs::Result<()> {
        self.symlink_calls.fetch_add(1, Ordering::Relaxed);
        Err(musicfs::Error::io(
            self.display(rel),
            io::Error::new(io::ErrorKind::Unsupported, "no symlinks here"),
        ))
    }
    fn rename(&self, from: &[u8], to: &[u8]) -> musicfs::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.remove(rel)
    }
    fn sync_dir(&self, rel: &[u8]) -> musicfs::Result<()> {
        self.inner.sync_dir(rel)
    }
}

/// The `action` of every step a sync reported.
#[derive(Default)]
struct Actions(std::sync::Mutex<Vec<String>>);

impl musicfs::report::Sink for Actions {
    fn event(&self, event: &musicfs::report::Event) {
        if let musicfs::report::Event::Action { action, path, .. } = event {
            self.0.lock().unwrap().push(format!("{action} {path}"));
        }
    }
}

/// A sync into the transport, as a destination claiming no symlinks: the source's symlink is
/// reported as a problem and skipped (never written, not even as a file); the files arrive
/// with their mtimes at the destination's resolution; and a second sync finds every mtime
/// right at that resolution, so it writes and sets nothing, though the source's mtimes have
/// nanoseconds the destination may not keep.
fn a_sync_follows_the_destinations_capabilities(t: &dyn Transport) {
    let dir = scratch();
    let src_root = dir.path().join("src");
    std::fs::create_dir_all(src_root.join("album")).unwrap();
    let src = LocalOrigin::open(&src_root, false).unwrap();
    for (i, rel) in ["album/a.flac", "album/b.flac", "c.flac"]
        .iter()
        .enumerate()
    {
        put_with(
            &src,
            rel.as_bytes(),
            &pattern(40_000 + i, i as u32),
            0o644,
            MTIME,
        )
        .unwrap();
    }
    src.set_meta(b"album", 0o755, MTIME + 1).unwrap();
    std::os::unix::fs::symlink("album/a.flac", src_root.join("link")).unwrap();

    let destination = WithoutSymlinks {
        inner: t.open("dst", true).unwrap(),
        symlink_calls: Default::default(),
    };
    let repo = musicfs::repo::Repository::init(&dir.path().join("repo"))
        .unwrap()
        .0;
    let sync = |actions: &Actions| {
        musicfs::sync::sync(
            &repo,
            &src,
            &destination,
            &repo.chunker(),
            musicfs::sync::SyncOptions::default(),
            actions,
        )
        .unwrap()
    };
    let first = Actions::default();
    let summary = sync(&first);
    assert_eq!(summary.errors, 1, "the symlink, reported: {summary:?}");
    assert_eq!(destination.symlink_calls.load(Ordering::Relaxed), 0);
    assert_eq!(
        destination.stat(b"link").unwrap(),
        None,
        "nothing in its place"
    );
    let o: &dyn WritableOrigin = &destination;
    assert_eq!(
        walk(o),
        [
            "d album",
            "f album/a.flac 40000",
            "f album/b.flac 40001",
            "f c.flac 40002"
        ]
    );
    let stat = o.stat(b"album/a.flac").unwrap().unwrap();
    assert_eq!(stat.mtime_ns, stored(o, MTIME));
    assert!(
        !first
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|a| a.starts_with("symlink")),
        "{:?}",
        first.0.lock().unwrap()
    );

    let second = Actions::default();
    let summary = sync(&second);
    assert_eq!(
        (
            summary.errors,
            summary.files_changed,
            summary.bytes_transferred
        ),
        (1, 0, 0),
        "{summary:?}"
    );
    assert_eq!(
        *second.0.lock().unwrap(),
        Vec::<String>::new(),
        "nothing to write or set"
    );
}

/// The checks that need faults, over each transport.
mod faults {
    use super::*;

    #[test]
    fn local_sync_from_a_source_that_drops_ends_exact() {
        a_sync_from_a_source_that_drops_ends_exact(&Local::start());
    }

    #[test]
    fn sftp_sync_from_a_source_that_drops_ends_exact() {
        a_sync_from_a_source_that_drops_ends_exact(&Sftp::start());
    }

    #[test]
    fn nfs_sync_from_a_source_that_drops_ends_exact() {
        a_sync_from_a_source_that_drops_ends_exact(&Nfs::start());
    }

    #[test]
    fn nfs_sync_follows_the_destinations_capabilities() {
        a_sync_follows_the_destinations_capabilities(&Nfs::start());
    }

    #[test]
    fn smb_sync_from_a_source_that_drops_ends_exact() {
        a_sync_from_a_source_that_drops_ends_exact(&Smb::start());
    }

    #[test]
    fn smb_sync_follows_the_destinations_capabilities() {
        a_sync_follows_the_destinations_capabilities(&Smb::start());
    }

    #[test]
    fn local_sync_follows_the_destinations_capabilities() {
        a_sync_follows_the_destinations_capabilities(&Local::start());
    }

    #[test]
    fn sftp_sync_follows_the_destinations_capabilities() {
        a_sync_follows_the_destinations_capabilities(&Sftp::start());
    }
}
