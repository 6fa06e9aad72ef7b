//! SMB transport: a directory in an SMB 2/3 share (Samba, Windows, a NAS), reached without
//! mounting it, through the pure-Rust `smb2` client (`docs/smb.md`).
//!
//! Sessions are signed (every authenticated session; a server that requires signing gets it
//! for the guest account too) and not encrypted: `smb2` 0.39 does not announce the encryption
//! capability, so Samba agrees no cipher with it, and a server or share that *requires*
//! encryption refuses the session or the share. That refusal is reported as
//! [`crate::Error::Refused`], one line saying the server requires encryption this client
//! cannot negotiate (`docs/smb.md`, "Encryption"). Like
//! the SSH and S3 transports, every call blocks the calling thread on the process's shared
//! runtime (`origin::runtime`). The password comes from `MUSICFS_SMB_PASSWORD` or a
//! credentials file (smbclient's format), never from the URL.
//!
//! Never does: retry by itself (a failed call fails; the next call on the origin signs in
//! again when the session was lost, and `Retrying` and a sync's retry loop decide), store a
//! name SMB would change (`names`), follow a hostile name from the server, or show the
//! password.

mod credentials;
#[cfg(feature = "smb")]
mod file;
#[cfg(feature = "smb")]
mod names;
#[cfg(feature = "smb")]
mod origin;
#[cfg(feature = "smb")]
pub(crate) mod transport;

pub use credentials::{SmbCredentials, CREDENTIALS_VARIABLE, PASSWORD_VARIABLE};
#[cfg(feature = "smb")]
pub use origin::SmbOrigin;
#[cfg(feature = "smb")]
pub use transport::SmbLocation;

/// An [`smb2::Error`] as an [`std::io::Error`] whose kind [`crate::error::io_kind`]
/// classifies: a lost connection, a timeout or an expired session is transient; a missing
/// entry `NotFound`; a refusal `PermissionDenied`; the rest permanent. The message is
/// `operation: the client's message`, which never carries the password.
#[cfg(feature = "smb")]
pub(crate) fn smb_io(operation: &str, e: smb2::Error) -> std::io::Error {
    use smb2::ErrorKind as K;
    use std::io::ErrorKind as Io;
    let kind = match e.kind() {
        K::NotFound | K::NotADirectory => Io::NotFound,
        K::AlreadyExists => Io::AlreadyExists,
        K::AccessDenied | K::AuthRequired | K::SigningRequired | K::GuestSessionRefused => {
            Io::PermissionDenied
        }
        K::SignatureInvalid => Io::InvalidData,
        K::IsADirectory => Io::IsADirectory,
        K::DiskFull => Io::StorageFull,
        K::InvalidName => Io::InvalidInput,
        K::Unsupported => Io::Unsupported,
        K::ConnectionLost | K::SessionExpired => Io::ConnectionAborted,
        K::TimedOut => Io::TimedOut,
        K::Io => match &e {
            smb2::Error::Io(inner) => inner.kind(),
            _ => Io::Other,
        },
        _ if e.is_retryable() => Io::ConnectionAborted,
        _ => Io::Other,
    };
    std::io::Error::new(kind, format!("{operation}: {e}"))
}

/// A server's refusal that no retry changes (it requires encryption this client cannot
/// negotiate), carried inside an [`std::io::Error`] of kind `PermissionDenied` so that opening
/// the origin can report it as [`crate::Error::Refused`] (exit code 5). The message names no
/// secret.
#[cfg(feature = "smb")]
#[derive(Debug)]
pub(crate) struct Refusal(pub String);

#[cfg(feature = "smb")]
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "smb")]
impl std::error::Error for Refusal {}

#[cfg(feature = "smb")]
impl Refusal {
    /// The refusal as an I/O error.
    pub(crate) fn into_io(self) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, self)
    }

    /// The refusal inside `e`, if `e` carries one.
    pub(crate) fn of(e: &std::io::Error) -> Option<&Refusal> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<Refusal>())
    }
}

/// Whether an I/O error (from [`smb_io`]) means the session is gone, so the next call must
/// sign in again.
#[cfg(feature = "smb")]
pub(crate) fn session_lost(e: &std::io::Error) -> bool {
    crate::error::io_kind(e) == crate::error::ErrorKind::Transient
}
