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
    let output = raw_stdout().context("opening standard output")?;
    crate::agent::serve(
        &repo,
        Box::new(std::io::stdin()),
        Box::new(output),
        &repo.chunker(),
    )
    .context("serving a sync session")?;
    Ok(exit::OK)
}

/// Standard output as a plain file. `std::io::stdout()` is line-buffered: it cut every write
/// of binary frames after its last newline byte and wrote the rest on its own, two writes
/// (and two wake-ups of the SSH server reading the pipe) where one does. The session buffers
/// its output itself, and the pipe (OpenSSH's server gives one) is asked to hold one of its
/// writes ([`widen_pipe`](crate::origin::agent_link::widen_pipe)).
fn raw_stdout() -> std::io::Result<std::fs::File> {
    use std::os::fd::AsFd;
    let out = std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    crate::origin::agent_link::widen_pipe(&out, "standard output");
    Ok(out)
}
