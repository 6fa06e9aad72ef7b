//! The chunk store at `s3://BUCKET/PREFIX` from the command line (`s3.md`, "A chunk store's
//! objects in a bucket"): which arguments name one, and `musicfs init s3://…`.

use std::ffi::OsStr;

use anyhow::Context;
use serde_json::json;

use super::{exit, print_summary, GlobalArgs};
use crate::origin::s3::{S3Location, S3Objects};
use crate::origin::OpenOptions;
use crate::repo::ChunkerConfig;
use crate::store;

/// The bucket and prefix `arg` names when it is an `s3://` URL (checked as the transport
/// checks it); `None` for anything else.
pub fn s3_location(arg: &OsStr) -> anyhow::Result<Option<S3Location>> {
    use std::os::unix::ffi::OsStrExt;
    if !arg.as_bytes().starts_with(b"s3://") {
        return Ok(None);
    }
    let location = crate::origin::registry::parse(arg)?;
    Ok(location.as_any().downcast_ref::<S3Location>().cloned())
}

/// `musicfs init s3://BUCKET/PREFIX`: makes the prefix a chunk store that cuts files as the
/// local repository does (the default chunker when there is no repository yet).
pub fn init(global: &GlobalArgs, location: &S3Location) -> anyhow::Result<u8> {
    let url = location.url();
    let objects = S3Objects::open(location, &OpenOptions::default())?;
    let chunker = match global.location()?.root() {
        root if root.join("repo.toml").is_file() => global.open_repo()?.chunker_config().clone(),
        _ => ChunkerConfig::default(),
    };
    let created = store::init(&objects, &url, &chunker, store::DEFAULT_PACK_SIZE)
        .with_context(|| format!("cannot make {url} a chunk store"))?;
    if global.json {
        print_summary(&json!({"store": url, "created": created}))?;
    } else if !global.quiet {
        match created {
            true => println!("created chunk store {url}"),
            false => println!("chunk store {url} already exists"),
        }
    }
    Ok(exit::OK)
}
