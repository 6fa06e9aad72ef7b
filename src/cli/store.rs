//! The chunk store at `s3://BUCKET/PREFIX` from the command line (`s3.md`, "A chunk store's
//! objects in a bucket"): which arguments name one, and `musicfs init s3://…`.

use std::ffi::OsStr;
use std::path::Path;

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

/// The store at `dst` when `dst` is an `s3://` prefix holding a store's `config` (one listing
/// request); `None` for a plain mirror or any other destination.
pub fn store_at(dst: &OsStr, options: &OpenOptions) -> anyhow::Result<Option<S3Objects>> {
    let Some(location) = s3_location(dst)? else {
        return Ok(None);
    };
    let objects = S3Objects::open(&location, options)?;
    Ok(objects.is_store()?.then_some(objects))
}

/// `musicfs sync DIR s3://…` where the prefix is a store: scans DIR into the local repository
/// (as a sync scans its source), then pushes that snapshot.
pub fn push(
    global: &GlobalArgs,
    src: &OsStr,
    objects: S3Objects,
    options: &OpenOptions,
    checksum: bool,
) -> anyhow::Result<u8> {
    use crate::origin::OriginSpec;
    use crate::scan::{scan, ScanOptions};
    let url = objects.url().to_string();
    let origin = OriginSpec::parse(src)?.open(options)?;
    let repo = global.open_repo()?;
    let sink = global.sink();
    let scanned = scan(
        &repo,
        origin.as_ref(),
        &repo.chunker(),
        ScanOptions { checksum },
        sink.as_ref(),
    )
    .with_context(|| format!("scanning {}", Path::new(src).display()))?;
    let store = store::Store::open(std::sync::Arc::new(objects), &url, &repo)
        .with_context(|| format!("opening the chunk store {url}"))?;
    let mut chunks = store::LibraryChunks::new(&repo, origin.as_ref())?;
    let pushed = store::push(&repo, &store, scanned.snapshot, &mut chunks, sink.as_ref())
        .with_context(|| format!("pushing {} to {url}", Path::new(src).display()))?;
    sink.finish();
    if global.json {
        print_summary(&json!({
            "store": url,
            "library": pushed.library,
            "snapshot": pushed.snapshot,
            "files": pushed.files,
            "bytes": pushed.bytes,
            "bytes_put": pushed.bytes_put,
            "packs": pushed.packs,
            "scan_problems": scanned.problems,
        }))?;
    } else if !global.quiet {
        match &pushed.snapshot {
            Some(id) => println!(
                "pushed {} to {url}: {} files, {} bytes put in {} packs; snapshot {id}",
                pushed.library, pushed.files, pushed.bytes_put, pushed.packs
            ),
            None => println!("{url} already has {} as it is", pushed.library),
        }
    }
    Ok(if scanned.problems > 0 {
        exit::PARTIAL
    } else {
        exit::OK
    })
}
