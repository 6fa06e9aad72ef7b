use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{exit, print_summary, GlobalArgs};
use crate::repo::Repository;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the repository [default: --repo, MUSICFS_REPO, or the default
    /// location]; or s3://BUCKET/PREFIX: make that prefix a chunk store
    pub dir: Option<PathBuf>,
}

pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<u8> {
    if let Some(location) = args
        .dir
        .as_deref()
        .map(|d| super::store::s3_location(d.as_os_str()))
        .transpose()?
        .flatten()
    {
        return super::store::init(global, &location);
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => global.location()?.root().to_path_buf(),
    };
    let (repo, created) = Repository::init(&dir)?;
    let shown = std::path::absolute(repo.root()).unwrap_or_else(|_| repo.root().to_path_buf());
    if global.json {
        print_summary(&json!({"repository": shown, "created": created}))?;
    } else if !global.quiet {
        if created {
            println!("created repository {}", shown.display());
        } else {
            println!("repository {} already exists", shown.display());
        }
    }
    Ok(exit::OK)
}
