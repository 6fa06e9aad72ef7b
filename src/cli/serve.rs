use anyhow::Context;
use clap::Args;

use super::{exit, GlobalArgs};
use crate::repo::{ChunkerConfig, Repository};

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
    // One it creates cuts files by the client's rules (which the handshake gives): the client's
    // repository decides, whichever release made it.
    let root = global.location()?.root().to_path_buf();
    let open = |rules: u32| -> crate::error::Result<Repository> {
        let chunker = ChunkerConfig::for_rules(rules).ok_or_else(|| {
            crate::error::Error::InvalidInput(format!("unknown chunking rules {rules}"))
        })?;
        Ok(Repository::open_creating(&root, &chunker)?.0)
    };
    let output = raw_stdout().context("opening standard output")?;
    crate::agent::serve(&open, Box::new(std::io::stdin()), Box::new(output))
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
