//! A directory of an SMB share read and written as a tree of files.
//!
//! One signed session per origin, shared by every call and every open file (SMB multiplexes
//! requests on one connection). A call that finds the session lost fails (transient) and
//! leaves the origin without a session; the next call signs in again. A session idle for
//! more than [`IDLE`] is checked with a cheap request limited to [`HEALTH_CHECK`] before it is
//! used again, and replaced when it does not answer.
//!
//! What is stored: names as they are (`names` refuses the ones SMB would change), sizes,
//! modification times (FILETIME, kept here to the microsecond); no Unix modes (SMB 2/3 without
//! POSIX extensions has none: files read as 0644 and directories as 0755, and a mode given is
//! not stored) and no symlinks.
//!
//! Never does: retry a call, follow a name from the server that could leave the root, or
//! leave a temporary file after a commit or a discard.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smb2::client::connection::{Connection, NegotiatedParams};
use smb2::pack::FileTime;
use smb2::types::status::NtStatus;
use smb2::types::{Command, Dialect};
use smb2::{ClientConfig, FileTimes, ListOptions, RenameOptions, SmbClient, Tree};

use super::credentials::SmbCredentials;
use super::file::{SmbFile, SmbTemp};
use super::names;
use super::transport::{sign_in_error, SmbLocation};
use super::{session_lost, smb_io, Refusal};
use crate::error::{Error, Result};
use crate::origin::registry::OpenOptions;
use crate::origin::{
    is_temporary, Capabilities, ChangeKey, EntryKind, EntryStat, MtimeResolution, Origin,
    OriginFile, TempFile, WalkItem, WritableOrigin,
};

/// How long a session may sit unused before it is checked again.
const IDLE: Duration = Duration::from_secs(5);
/// The limit of that check.
const HEALTH_CHECK: Duration = Duration::from_secs(5);
/// The mode a file reads as (SMB keeps none).
pub(crate) const FILE_MODE: u32 = 0o644;
/// The mode a directory reads as.
const DIR_MODE: u32 = 0o755;
/// FILETIME of the Unix epoch, in 100 ns ticks since 1601.
const EPOCH_TICKS: i128 = 116_444_736_000_000_000;

/// A signed-in session and the share connected on it.
pub(crate) struct Session {
    /// Kept for the life of the session: it owns the connection's tasks.
    _client: SmbClient,
    tree: Arc<Tree>,
    conn: Connection,
}

impl Session {
    /// Signs in to the location's server as `options` say and connects the share.
    pub(crate) fn open(location: &SmbLocation, options: &OpenOptions) -> io::Result<Session> {
        let credentials: Option<&SmbCredentials> = options.smb_credentials.as_ref();
        let username = location
            .user
            .clone()
            .or_else(|| credentials.and_then(|c| c.username.clone()))
            .unwrap_or_default();
        let domain = location
            .domain
            .clone()
            .or_else(|| credentials.and_then(|c| c.domain.clone()))
            .unwrap_or_default();
        let password = match username.is_empty() {
            true => String::new(),
            false => credentials
                .map(|c| c.password.expose().to_string())
                .unwrap_or_default(),
        };
        let host = match location.host.contains(':') {
            true => format!("[{}]", location.host),
            false => location.host.clone(),
        };
        let config = ClientConfig {
            addr: format!("{host}:{}", location.port),
            timeout: options.connect_timeout,
            username,
            password,
            domain,
            auto_reconnect: false,
            // Audio does not compress: no CPU spent trying.
            compression: false,
            dfs_enabled: false,
            response_timeout: Some(options.io_timeout),
            ..ClientConfig::default()
        };
        let share = location.share.clone();
        let io_timeout = options.io_timeout;
        let (addr, connect_timeout) = (config.addr.clone(), config.timeout);
        crate::origin::runtime::block_on(async move {
            let mut client = match SmbClient::connect(config).await {
                Ok(client) => client,
                Err(e) if denied_during(&e, Command::SessionSetup) => {
                    // Samba's answer to a session it will not serve unencrypted. Ask the server
                    // again whether a cipher can be agreed at all before saying so.
                    let probe = no_cipher_agreed(&addr, connect_timeout, io_timeout).await;
                    return Err(match probe {
                        Some(dialect) => Refusal(format!(
                            "the server requires encryption, which this client cannot negotiate \
                             ({dialect} was agreed without a cipher, and the server refused the \
                             session: access denied); see \"Encryption\" in docs/smb.md"
                        ))
                        .into_io(),
                        None => sign_in_error(e),
                    });
                }
                Err(e) => return Err(sign_in_error(e)),
            };
            let tree = match client.connect_share(&share).await {
                Ok(tree) => tree,
                Err(e) if denied_during(&e, Command::TreeConnect) => {
                    let no_cipher = client.params().filter(agreed_no_cipher);
                    return Err(match no_cipher {
                        Some(p) => Refusal(format!(
                            "access denied to share {share:?}: the share requires encryption, \
                             which this client cannot negotiate ({} was agreed without a \
                             cipher), or it is closed to this account; see \"Encryption\" in \
                             docs/smb.md",
                            p.dialect
                        ))
                        .into_io(),
                        None => smb_io(&format!("connecting share {share:?}"), e),
                    });
                }
                Err(e) => return Err(smb_io(&format!("connecting share {share:?}"), e)),
            };
            let conn = client
                .connection_for(&tree)
                .map_err(|e| smb_io("connecting", e))?;
            conn.set_response_timeout(Some(io_timeout));
            conn.set_keepalive(Some(HEALTH_CHECK));
            Ok(Session {
                _client: client,
                tree: Arc::new(tree),
                conn,
            })
        })?
    }
}

/// Whether `e` is the server's `STATUS_ACCESS_DENIED` answer to `command`.
fn denied_during(e: &smb2::Error, command: Command) -> bool {
    matches!(e, smb2::Error::Protocol { status, command: c }
        if *status == NtStatus::ACCESS_DENIED && *c == command)
}

/// Whether a negotiation ended on SMB 3 (which can encrypt) without a cipher. smb2 0.39 offers
/// its ciphers in the negotiate context but does not set the encryption capability, and Samba
/// agrees a cipher only with a client that sets it (`docs/smb.md`).
fn agreed_no_cipher(params: &NegotiatedParams) -> bool {
    params.cipher.is_none() && params.dialect >= Dialect::Smb3_0
}

/// Negotiates once more with the server at `addr` (no sign-in) and returns the dialect when it
/// was agreed without a cipher; `None` when a cipher was agreed, the dialect cannot encrypt, or
/// the server could not be asked.
async fn no_cipher_agreed(addr: &str, timeout: Duration, io_timeout: Duration) -> Option<Dialect> {
    let mut conn = Connection::connect(addr, timeout).await.ok()?;
    conn.set_response_timeout(Some(io_timeout));
    conn.negotiate().await.ok()?;
    conn.params()
        .filter(agreed_no_cipher)
        .map(|params| params.dialect)
}

/// What every handle of one origin shares: where the tree is and the session.
pub(crate) struct Shared {
    pub location: SmbLocation,
    pub url: String,
    options: OpenOptions,
    session: Mutex<Option<(Arc<Session>, Instant)>>,
}

impl Shared {
    /// The session, signed in anew when there is none or the old one fails its check.
    pub(crate) fn session(&self) -> io::Result<Arc<Session>> {
        let mut slot = self
            .session
            .lock()
            .map_err(|_| io::Error::other("the SMB session's lock was poisoned"))?;
        if let Some((session, used)) = slot.as_mut() {
            if used.elapsed() < IDLE || healthy(session) {
                *used = Instant::now();
                return Ok(session.clone());
            }
            tracing::debug!(url = %self.url, "SMB session did not answer its check; signing in again");
        }
        *slot = None;
        let session = Arc::new(Session::open(&self.location, &self.options)?);
        *slot = Some((session.clone(), Instant::now()));
        Ok(session)
    }

    /// Forgets `session` after it failed, so that the next call signs in again.
    pub(crate) fn lost(&self, session: &Arc<Session>) {
        if let Ok(mut slot) = self.session.lock() {
            if slot.as_ref().is_some_and(|(s, _)| Arc::ptr_eq(s, session)) {
                *slot = None;
            }
        }
    }

    /// Runs one request on the session (`operation` names it in errors).
    pub(crate) fn run<T, F, Fut>(&self, operation: &str, request: F) -> io::Result<T>
    where
        F: FnOnce(Arc<Tree>, Connection) -> Fut,
        Fut: std::future::Future<Output = smb2::Result<T>>,
    {
        let session = self.session()?;
        self.run_on(&session, operation, request)
    }

    /// Runs one request on `session`, forgetting it when the request finds it lost.
    pub(crate) fn run_on<T, F, Fut>(
        &self,
        session: &Arc<Session>,
        operation: &str,
        request: F,
    ) -> io::Result<T>
    where
        F: FnOnce(Arc<Tree>, Connection) -> Fut,
        Fut: std::future::Future<Output = smb2::Result<T>>,
    {
        let future = request(session.tree.clone(), session.conn.clone());
        let result = crate::origin::runtime::block_on(future)
            .and_then(|r| r.map_err(|e| smb_io(operation, e)));
        if let Err(e) = &result {
            if session_lost(e) {
                self.lost(session);
            }
        }
        result
    }

    /// The share path of `rel` (the root of the origin for the empty path); `None` when `rel`
    /// is not UTF-8 (no such entry can be on the share).
    pub(crate) fn path(&self, rel: &[u8]) -> Option<String> {
        let rel = std::str::from_utf8(rel).ok()?;
        Some(match (self.location.path.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.location.path.clone(),
            (false, false) => format!("{}/{rel}", self.location.path),
        })
    }

    /// `smb://host/share/path/rel`, for messages.
    pub(crate) fn display(&self, rel: &[u8]) -> PathBuf {
        if rel.is_empty() {
            return PathBuf::from(&self.url);
        }
        PathBuf::from(format!("{}/{}", self.url, String::from_utf8_lossy(rel)))
    }

    /// An I/O error about `rel`.
    pub(crate) fn error(&self, rel: &[u8], e: io::Error) -> Error {
        Error::io(self.display(rel), e)
    }

    /// `stat` of `rel`: `None` when nothing is there.
    pub(crate) fn stat(&self, rel: &[u8], stable: bool) -> io::Result<Option<EntryStat>> {
        let Some(path) = self.path(rel) else {
            return Ok(None);
        };
        let found = self.run("stat", |tree, mut conn| async move {
            tree.stat_with_identity(&mut conn, &path).await
        });
        match found {
            Ok((info, identity)) => Ok(Some(entry_stat(
                info.is_directory,
                info.size,
                info.modified,
                info.changed,
                identity.map(|i| i.index_number).filter(|_| stable),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether the session answers a cheap request within [`HEALTH_CHECK`].
fn healthy(session: &Session) -> bool {
    let (tree, mut conn) = (session.tree.clone(), session.conn.clone());
    let check = async move {
        tokio::time::timeout(HEALTH_CHECK, async move { tree.fs_info(&mut conn).await }).await
    };
    matches!(crate::origin::runtime::block_on(check), Ok(Ok(Ok(_))))
}

/// An entry's stat from what SMB says of it.
pub(crate) fn entry_stat(
    is_dir: bool,
    size: u64,
    modified: FileTime,
    changed: FileTime,
    index: Option<u64>,
) -> EntryStat {
    let change = match index {
        Some(ino) => ChangeKey::Posix {
            dev: 0,
            ino,
            ctime_ns: filetime_ns(changed),
        },
        None => ChangeKey::Opaque(changed.0.to_le_bytes().to_vec().into()),
    };
    EntryStat {
        kind: if is_dir {
            EntryKind::Dir
        } else {
            EntryKind::File
        },
        size: if is_dir { 0 } else { size },
        mtime_ns: MtimeResolution::Microsecond.truncate(filetime_ns(modified)),
        change,
        mode: if is_dir { DIR_MODE } else { FILE_MODE },
    }
}

/// A FILETIME as ns since the Unix epoch (saturating at the ends of `i64`).
pub(crate) fn filetime_ns(t: FileTime) -> i64 {
    let ns = (i128::from(t.0) - EPOCH_TICKS) * 100;
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// ns since the Unix epoch as a FILETIME; `None` before 1601 (or at its very first tick,
/// which SET_INFO reads as "leave unchanged").
pub(crate) fn ns_filetime(ns: i64) -> Option<FileTime> {
    let ticks = i128::from(ns).div_euclid(100) + EPOCH_TICKS;
    (ticks > 0 && ticks < i128::from(i64::MAX)).then_some(FileTime(ticks as u64))
}

/// A directory of an SMB share (see the module documentation).
pub struct SmbOrigin {
    shared: Arc<Shared>,
    capabilities: Capabilities,
}

impl std::fmt::Debug for SmbOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmbOrigin")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

impl SmbOrigin {
    /// The origin at `location` over `session`; asks the server whether it gives file ids.
    pub(crate) fn new(
        location: SmbLocation,
        options: OpenOptions,
        session: Session,
    ) -> io::Result<SmbOrigin> {
        let shared = Arc::new(Shared {
            url: location.url(),
            location,
            options,
            session: Mutex::new(Some((Arc::new(session), Instant::now()))),
        });
        // The share's root always exists: whether it gives a file id is the server's answer.
        let ids = shared.run("stat", |tree, mut conn| async move {
            tree.stat_with_identity(&mut conn, "").await
        })?;
        let stable_identity = ids.1.is_some_and(|i| i.index_number != 0);
        Ok(SmbOrigin {
            shared,
            capabilities: Capabilities {
                atomic_replace: true,
                durable_commit: false,
                symlinks: false,
                directories: true,
                stable_identity,
                content_keys: false,
                mtime_resolution: MtimeResolution::Microsecond,
            },
        })
    }

    fn error(&self, rel: &[u8], e: io::Error) -> Error {
        self.shared.error(rel, e)
    }

    /// The share path of `rel`, which this transport will write: refused, naming it, when SMB
    /// cannot store one of its names unchanged.
    fn writable_path(&self, rel: &[u8]) -> Result<String> {
        if let Some(why) = names::unstorable_path(rel) {
            return Err(self.error(
                rel,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot be stored on SMB: {why}"),
                ),
            ));
        }
        self.shared.path(rel).ok_or_else(|| {
            self.error(
                rel,
                io::Error::new(io::ErrorKind::InvalidInput, "not UTF-8"),
            )
        })
    }

    fn visit_dir(&self, dir: &[u8], visit: &mut dyn FnMut(WalkItem)) {
        let Some(path) = self.shared.path(dir) else {
            return;
        };
        let listed = self.shared.run("list", |tree, mut conn| async move {
            tree.list_directory_with(&mut conn, &path, ListOptions::new().index_numbers(true))
                .await
        });
        let mut entries = match listed {
            Ok(entries) => entries,
            Err(e) => {
                return visit(WalkItem::Problem {
                    path: dir.to_vec(),
                    message: self.error(dir, e).to_string(),
                })
            }
        };
        entries.retain(|e| e.name != "." && e.name != "..");
        entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let stable = self.capabilities.stable_identity;
        for entry in entries {
            let name = entry.name.as_bytes();
            let path = crate::relpath::join(dir, name);
            if let Some(why) = crate::relpath::bad_name(name) {
                visit(WalkItem::Problem {
                    message: format!(
                        "{}: the server listed {:?}, {why}; skipped",
                        self.shared.display(dir).display(),
                        entry.name
                    ),
                    path,
                });
                continue;
            }
            if !entry.is_directory && is_temporary(name) {
                visit(WalkItem::Temporary(path));
                continue;
            }
            let stat = entry_stat(
                entry.is_directory,
                entry.size,
                entry.modified,
                entry.changed,
                entry.index_number.filter(|_| stable),
            );
            visit(WalkItem::Entry {
                path: path.clone(),
                stat,
                target: None,
            });
            if entry.is_directory {
                self.visit_dir(&path, visit);
            }
        }
    }

    /// Removes `rel` and everything below it; a missing entry is fine.
    fn remove_tree(&self, rel: &[u8], path: String) -> io::Result<()> {
        let Some(stat) = self.shared.stat(rel, false)? else {
            return Ok(());
        };
        let gone = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if stat.kind != EntryKind::Dir {
            return gone(self.shared.run("delete", |tree, mut conn| async move {
                tree.delete_file(&mut conn, &path).await
            }));
        }
        let listing = path.clone();
        let entries = self.shared.run("list", |tree, mut conn| async move {
            tree.list_directory(&mut conn, &listing).await
        })?;
        for entry in entries {
            if entry.name == "." || entry.name == ".." {
                continue;
            }
            if crate::relpath::bad_name(entry.name.as_bytes()).is_some() {
                return Err(io::Error::other(format!(
                    "the server listed {:?} in it; not removed",
                    entry.name
                )));
            }
            let child = crate::relpath::join(rel, entry.name.as_bytes());
            self.remove_tree(&child, format!("{path}/{}", entry.name))?;
        }
        gone(self.shared.run("delete", |tree, mut conn| async move {
            tree.delete_directory(&mut conn, &path).await
        }))
    }
}

impl Origin for SmbOrigin {
    fn url(&self) -> &str {
        &self.shared.url
    }

    fn display(&self, rel: &[u8]) -> PathBuf {
        self.shared.display(rel)
    }

    /// Renames replace in one step (SMB2 rename with ReplaceIfExists: `rename(2)` under
    /// Samba); no directory fsync over SMB, so commits are not promised durable; no symlinks;
    /// directories; file ids as stable identities when the server gives them; mtimes to the
    /// microsecond (FILETIME is 100 ns).
    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn walk(&self, visit: &mut dyn FnMut(WalkItem)) {
        self.visit_dir(b"", visit)
    }

    fn open(&self, rel: &[u8]) -> Result<Box<dyn OriginFile>> {
        let missing = || self.error(rel, io::Error::new(io::ErrorKind::NotFound, "no such file"));
        let path = self.shared.path(rel).ok_or_else(missing)?;
        let stable = self.capabilities.stable_identity;
        let file = SmbFile::open(self.shared.clone(), rel, path, stable)
            .map_err(|e| self.error(rel, e))?;
        Ok(Box::new(file))
    }

    fn stat(&self, rel: &[u8]) -> Result<Option<EntryStat>> {
        self.shared
            .stat(rel, self.capabilities.stable_identity)
            .map_err(|e| self.error(rel, e))
    }
}

impl WritableOrigin for SmbOrigin {
    fn create_root(&self) -> Result<()> {
        let root = self.shared.location.path.clone();
        let mut prefix = String::new();
        for component in root.split('/').filter(|c| !c.is_empty()) {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(component);
            let path = prefix.clone();
            match self.shared.run("mkdir", |tree, mut conn| async move {
                tree.create_directory(&mut conn, &path).await
            }) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.error(b"", e)),
            }
        }
        match self.shared.stat(b"", false) {
            Ok(Some(stat)) if stat.kind == EntryKind::Dir => Ok(()),
            Ok(_) => Err(self.error(
                b"",
                io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            )),
            Err(e) => Err(self.error(b"", e)),
        }
    }

    fn create_temp(&self, rel: &[u8]) -> Result<Box<dyn TempFile>> {
        let target = self.writable_path(rel)?;
        let temp = SmbTemp::create(self.shared.clone(), rel, target)?;
        Ok(Box::new(temp))
    }

    /// Sets the mtime (SetInfo, basic information); the mode is not stored (SMB has none).
    fn set_meta(&self, rel: &[u8], _mode: u32, mtime_ns: i64) -> Result<()> {
        let path = self.shared.path(rel).ok_or_else(|| {
            self.error(
                rel,
                io::Error::new(io::ErrorKind::NotFound, "no such entry"),
            )
        })?;
        let time = ns_filetime(mtime_ns).ok_or_else(|| {
            self.error(
                rel,
                io::Error::new(io::ErrorKind::InvalidInput, "an mtime before 1601"),
            )
        })?;
        self.shared
            .run("set times", |tree, mut conn| async move {
                tree.set_times(&mut conn, &path, FileTimes::new().set_modified(time))
                    .await
            })
            .map_err(|e| self.error(rel, e))
    }

    fn create_dir(&self, rel: &[u8]) -> Result<()> {
        let path = self.writable_path(rel)?;
        match self.shared.run("mkdir", |tree, mut conn| async move {
            tree.create_directory(&mut conn, &path).await
        }) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match self.shared.stat(rel, false) {
                    Ok(Some(stat)) if stat.kind == EntryKind::Dir => Ok(()),
                    Ok(_) => Err(self.error(rel, e)),
                    Err(e) => Err(self.error(rel, e)),
                }
            }
            Err(e) => Err(self.error(rel, e)),
        }
    }

    fn symlink(&self, rel: &[u8], _target: &[u8]) -> Result<()> {
        Err(self.error(
            rel,
            io::Error::new(
                io::ErrorKind::Unsupported,
                "this SMB transport cannot create symlinks",
            ),
        ))
    }

    fn rename(&self, from: &[u8], to: &[u8]) -> Result<()> {
        let from_path = self.shared.path(from).ok_or_else(|| {
            self.error(
                from,
                io::Error::new(io::ErrorKind::NotFound, "no such entry"),
            )
        })?;
        let to_path = self.writable_path(to)?;
        self.shared
            .run("rename", |tree, mut conn| async move {
                tree.rename_with(
                    &mut conn,
                    &from_path,
                    &to_path,
                    RenameOptions::new().replace_if_exists(true),
                )
                .await
            })
            .map_err(|e| self.error(from, e))
    }

    fn remove(&self, rel: &[u8]) -> Result<()> {
        let Some(path) = self.shared.path(rel) else {
            return Ok(());
        };
        if rel.is_empty() || crate::relpath::RelPath::new(rel).is_err() {
            return Err(self.error(
                rel,
                io::Error::new(io::ErrorKind::InvalidInput, "not a path inside the origin"),
            ));
        }
        self.remove_tree(rel, path).map_err(|e| self.error(rel, e))
    }

    /// SMB has no directory fsync: nothing this can promise (`durable_commit` is false).
    fn sync_dir(&self, _rel: &[u8]) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes_and_unix_times_convert_both_ways() {
        for ns in [
            0,
            1_600_000_000_123_456_700,
            -86_400_000_000_000,
            4_000_000_000_000_000_000,
        ] {
            assert_eq!(filetime_ns(ns_filetime(ns).unwrap()), ns);
        }
        // 100 ns ticks: finer parts are cut, rounding down (also before 1970).
        assert_eq!(
            filetime_ns(ns_filetime(1_600_000_000_123_456_789).unwrap()),
            1_600_000_000_123_456_700
        );
        assert_eq!(filetime_ns(ns_filetime(-1).unwrap()), -100);
        // Every i64 of ns (1677 to 2262) is after 1601; FILETIMEs outside it saturate.
        assert!(ns_filetime(i64::MIN).is_some());
        assert_eq!(filetime_ns(FileTime(0)), i64::MIN);
        assert_eq!(filetime_ns(FileTime(u64::MAX)), i64::MAX);
    }

    #[test]
    fn stats_say_no_more_than_smb_keeps() {
        let t = ns_filetime(1_600_000_000_123_456_789).unwrap();
        let file = entry_stat(false, 9, t, t, Some(42));
        assert_eq!(file.mtime_ns, 1_600_000_000_123_456_000);
        assert_eq!(
            (file.kind, file.size, file.mode),
            (EntryKind::File, 9, 0o644)
        );
        assert_eq!(file.change.identity().map(|i| i.ino), Some(42));
        let dir = entry_stat(true, 4096, t, t, None);
        assert_eq!((dir.kind, dir.size, dir.mode), (EntryKind::Dir, 0, 0o755));
        assert_eq!(dir.change.identity(), None);
    }
}
