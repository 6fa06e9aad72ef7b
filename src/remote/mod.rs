//! Syncing with a musicfs at the other end of a connection (`musicfs serve --stdio`, started
//! over SSH): each end scans its own tree with its own incremental state, trees are compared
//! top-down by hash, and only the chunks the destination lacks cross the connection.
//!
//! The source end answers requests (`provider`); the destination end fetches what its
//! repository lacks and applies the plan (`source::RemoteSource`, a
//! [`SyncSource`](crate::sync::SyncSource)). A pull runs the destination end here, a push on
//! the server. The protocol is in `docs/protocol.md`.

mod client;
mod provider;
mod serve;
mod source;
mod ssh;
pub mod wire;

pub use client::{pull, push, Connection};
pub use serve::serve;
pub use source::{RemoteSource, Resume};
pub use ssh::{sync_remote, Direction, RemoteOptions};
