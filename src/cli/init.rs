use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{exit, print_summary, GlobalArgs};
use crate::repo::{ChunkerConfig, Repository, ALGORITHMS};

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the repository [default: --repo, MUSICFS_REPO, or the default
    /// location]; or s3://BUCKET/PREFIX: make that prefix a chunk store
    pub dir: Option<PathBuf>,

    /// How the new repository or store cuts files: fastcdc-2020-fixed-pictures (audio and
    /// embedded pictures in fixed 64 KiB pieces), fastcdc-2020-fixed-audio (audio only, as
    /// repositories and stores made before it) or fastcdc-2020 (everything by content, as the
    /// first releases), to sync with those [default: fastcdc-2020-fixed-pictures, or for a
    /// store the local repository's]
    #[arg(long, value_name = "ALGORITHM", value_parser = ALGORITHMS)]
    pub chunker: Option<String>,
}

/// The settings `--chunker` asks for, the default sizes.
fn asked(args: &InitArgs) -> Option<ChunkerConfig> {
    args.chunker.as_ref().map(|algorithm| ChunkerConfig {
        algorithm: algorithm.clone(),
        ..ChunkerConfig::for_new_repository()
    })
}

pub fn run(global: &GlobalArgs, args: &InitArgs) -> anyhow::Result<u8> {
    if let Some(location) = args
        .dir
        .as_deref()
        .map(|d| super::store::s3_location(d.as_os_str()))
        .transpose()?
        .flatten()
    {
        return super::store::init(global, &location, asked(args));
    }
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => global.location()?.root().to_path_buf(),
    };
    let chunker = asked(args).unwrap_or_else(ChunkerConfig::for_new_repository);
    let (repo, created) = Repository::init_with(&dir, &chunker)?;
    if !created && args.chunker.is_some() && repo.chunker_config().algorithm != chunker.algorithm {
        anyhow::bail!(
            "repository {} already exists and cuts files with {}; --chunker {} applies to a new one",
            repo.root().display(),
            repo.chunker_config().algorithm,
            chunker.algorithm
        );
    }
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
