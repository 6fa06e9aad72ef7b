//! Where a command's repository is, and whether it may be created there.
//!
//! Only the embedded default location is created on first use, so that `musicfs sync A B`
//! just works on a new machine. A location the user named (`--repo DIR`, or `MUSICFS_REPO`,
//! which a cron job sets as deliberately as a flag) must already hold a repository: a typo,
//! or a path into a music folder, fails with [`Error::NoRepository`] instead of quietly
//! starting an empty repository there. `musicfs init` creates one anywhere.

use std::path::{Path, PathBuf};

use super::Repository;
use crate::error::{Error, Result};

/// A repository location and how it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Named by `--repo` or `MUSICFS_REPO`.
    Named(PathBuf),
    /// The embedded default ([`Repository::default_root`]).
    Default(PathBuf),
}

impl Location {
    /// `named` when given, else the default; fails when neither `XDG_DATA_HOME` nor `HOME`
    /// can place the default.
    pub fn resolve(named: Option<&Path>) -> Result<Location> {
        match named {
            Some(dir) => Ok(Location::Named(dir.to_path_buf())),
            None => Repository::default_root()
                .map(Location::Default)
                .ok_or_else(|| {
                    Error::InvalidInput(
                        "no repository location: set --repo, MUSICFS_REPO, XDG_DATA_HOME or HOME"
                            .into(),
                    )
                }),
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        match self {
            Location::Named(dir) | Location::Default(dir) => dir,
        }
    }

    /// Opens the repository: a named location must hold one, the default is created on
    /// first use.
    pub fn open(&self) -> Result<Repository> {
        match self {
            Location::Named(dir) => Repository::open_existing(dir),
            Location::Default(dir) => Repository::open(dir),
        }
    }
}
