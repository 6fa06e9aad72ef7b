//! NFS transport: a directory of an NFSv3 export, reached by a userspace client (crates.io
//! `nfs3_client`) without a kernel mount and without root: `nfs://HOST[:PORT]/EXPORT/PATH`.
//!
//! `transport.rs` registers the `nfs` scheme and opens a location (MOUNT through the
//! portmapper or `?mountport=N`, FSINFO for transfer sizes and time granularity); `client.rs`
//! holds the connections (AUTH_SYS with the process's uid and gids, a pool shared by threads,
//! a timeout on every call) and turns NFS and RPC failures into I/O errors of their kind;
//! `ops.rs` the procedures and the cache of file handles by path (a stale handle is looked up
//! again once); `origin.rs` is `NfsOrigin`; `file.rs` its read handles and temporary files
//! (UNSTABLE writes, COMMIT with the write verifier checked, SETATTR, RENAME). Like the S3
//! and SSH transports, every call blocks the calling thread on the process's shared runtime
//! (`origin::runtime`). See `docs/nfs.md`.
//!
//! Never does: retry by itself (beyond the one fresh lookup of a stale handle: `Retrying`
//! and a sync's retry loop decide), follow a name the server lists that no path may hold, or
//! leave a temporary file of a failed commit when it can remove it.

mod client;
mod file;
mod ops;
mod origin;
pub(crate) mod transport;

pub use origin::NfsOrigin;
pub use transport::NfsLocation;
