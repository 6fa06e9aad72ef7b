//! SSH transport: sessions (russh), exec channels for the remote agent, and SFTP.
//!
//! The network crates are async (tokio); the rest of musicfs is blocking (rayon workers, plain
//! threads). Every public call here blocks the calling thread on the process's shared runtime
//! (`origin::runtime`), and each [`SshSession`] runs its background tasks there as one group,
//! which ends with the last of the session, its channels and its SFTP handles. Callers must
//! never be inside a tokio runtime themselves; a call from one fails with an error instead of
//! nesting runtimes.
//!
//! Never does: log, print or put into an error or `Debug` output any key material or passphrase;
//! trust what the remote sends (no panics, bounded memory).

mod auth;
mod ciphers;
pub(crate) mod config;
mod exec;
mod hostkey;
mod keywords;
mod link;
mod proxy;
mod rsh;
mod session;
mod sftp;
mod sftp_file;
mod sftp_origin;
pub(crate) mod transport;

pub use exec::{ExecChannel, ExecReader, ExecStatus, ExecWriter};
pub use session::{SshOptions, SshSession};
pub use sftp::{DirEntries, Sftp, SftpFile, SftpStat};
pub use sftp_origin::SftpOrigin;
pub use transport::SshSpec;
