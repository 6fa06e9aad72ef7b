use anyhow::Context;
use clap::Args;

use super::{exit, GlobalArgs};
use crate::repo::Repository;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Speak the sync protocol on standard input and output (how `musicfs sync` starts it
    /// over SSH)
    #[arg(long, required = true)]
    pub stdio: bool,
}

pub fn run(global: &GlobalArgs, _args: &ServeArgs) -> anyhow::Result<u8> {
    // The remote end keeps its own repository as a cache of its scans, wherever the remote
    // environment puts it (MUSICFS_REPO or the default): nobody typed that location, and
    // refusing it would fail every first sync with a new host.
    let repo = Repository::open(global.location()?.root())?;
    crate::agent::serve(
        &repo,
        Box::new(std::io::stdin()),
        Box::new(std::io::stdout()),
        &repo.chunker(),
    )
    .context("serving a sync session")?;
    Ok(exit::OK)
}
