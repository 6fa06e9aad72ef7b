//! S3 transport, plain mirror: a bucket prefix that holds one object per file (key =
//! `PREFIX/relpath`), with mtime and mode in rclone's user metadata, so that rclone and
//! musicfs can share it. (A prefix made into a chunk store by `musicfs init s3://…` is another
//! thing: its objects are read and written by `objects::S3Objects`.)
//!
//! The SDK (aws-sdk-s3) is async; like the SSH transport, every call here blocks the calling
//! thread on the process's shared runtime (`origin::runtime`). See `docs/s3.md`.
//!
//! Never does: retry by itself (the SDK's retries are off; `Retrying` and a sync's retry loop
//! decide), follow a hostile key, leave a temporary key in the bucket, or show a secret.

mod client;
mod credentials;
mod file;
mod meta;
mod objects;
mod origin;
pub(crate) mod transport;
mod upload;

pub use credentials::{S3Credentials, Secret};
pub use objects::S3Objects;
pub use origin::S3Origin;
pub use transport::S3Location;
