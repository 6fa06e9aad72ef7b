//! The agent protocol: syncing with a musicfs at the other end of a connection (`musicfs serve
//! --stdio`, started over a transport's [`AgentLink`](crate::origin::AgentLink)): each end
//! scans its own tree with its own incremental state, trees are compared top-down by hash, and
//! only the chunks the destination lacks cross the connection.
//!
//! The source end answers requests (`provider`); the destination end fetches what its
//! repository lacks and applies the plan (`source::RemoteSource`, a
//! [`SyncSource`](crate::sync::SyncSource)). A pull runs the destination end here, a push on
//! the server. `run` picks the agent or the link's fallback origin and retries. The protocol
//! is in `docs/protocol.md`.
//!
//! Never does: name a transport. Anything that gives a pair of byte streams can carry it.

mod client;
mod deploy;
mod provider;
mod resume;
mod run;
mod serve;
mod source;
mod stream;
pub mod wire;

pub use client::{pull, pull_filtered, push, push_filtered, Connection};
pub use resume::Resume;
pub use run::{sync_remote, Direction, RemoteOptions};
pub use serve::serve;
pub use source::RemoteSource;
