//! musicfs: a content-addressed sync engine for music libraries.
#![forbid(unsafe_code)]

pub mod chunk;
pub mod config;
mod contain;
pub mod diff;
pub mod error;
pub mod failpoint;
pub mod filter;
pub mod flock;
pub mod id;
pub mod inspect;
pub mod interrupt;
pub mod locate;
pub mod media;
pub mod mount;
pub mod relpath;
pub mod repo;
pub mod snapshot;
pub mod store;

pub use error::{Error, Result};
pub mod agent;
#[cfg(feature = "cli")]
pub mod cli;
pub mod origin;
pub mod reaper;
pub mod report;
pub mod scan;
pub mod sync;
pub mod time;
pub mod verify;
pub mod zstd_kept;
