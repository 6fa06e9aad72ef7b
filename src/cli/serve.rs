use anyhow::Context;
use clap::Args;

use super::{exit, GlobalArgs};
use crate::chunk::FastCdc;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Speak the sync protocol on standard input and output (how `musicfs sync` starts it
    /// over SSH)
    #[arg(long, required = true)]
    pub stdio: bool,
}

pub fn run(global: &GlobalArgs, _args: &ServeArgs) -> anyhow::Result<u8> {
    let repo = global.open_repo()?;
    crate::remote::serve(
        &repo,
        Box::new(std::io::stdin()),
        Box::new(std::io::stdout()),
        &FastCdc::default(),
    )
    .context("serving a sync session")?;
    Ok(exit::OK)
}
