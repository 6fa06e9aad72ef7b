//! The chunk store at `s3://BUCKET/PREFIX` from the command line (`s3.md`, "A chunk store's
//! objects in a bucket"): which arguments name one (`s3://BUCKET/PREFIX[@TIME|@latest|@ID]`
//! as a SRC), `musicfs init s3://…`, and the push and pull of `musicfs sync`.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::{exit, print_summary, GlobalArgs};
use crate::diff::operand::MIN_PREFIX;
use crate::error::Error;
use crate::origin::s3::{S3Location, S3Objects};
use crate::origin::{OpenOptions, WritableOrigin};
use crate::repo::{ChunkerConfig, Repository};
use crate::report::Sink;
use crate::store::{self, Pick, StoreSource};
use crate::sync::{sync_from, SyncOptions, SyncSummary};
use crate::time::{self, Zone};

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

/// The store SRC names and the snapshot to pull from it, when SRC is
/// `s3://BUCKET/PREFIX[@PICK]` and the prefix holds a store; `None` for anything else (a plain
/// mirror is an origin). PICK is `latest` (the default), a snapshot object's id or a unique
/// prefix of 8 or more hex digits, or a TIME as `ORIGIN@TIME` reads it (`time.md`): the
/// newest snapshot of `library` taken at or before it. A prefix that itself holds an `@` and a
/// store is the store, newest snapshot.
pub fn store_source(
    src: &OsStr,
    library: Option<&str>,
    options: &OpenOptions,
) -> anyhow::Result<Option<(S3Objects, Pick)>> {
    let text = src.to_string_lossy();
    if !text.starts_with("s3://") {
        return Ok(None);
    }
    if let Some(at) = text.rfind('@') {
        let (base, pick) = (&text[..at], &text[at + 1..]);
        if let Some(objects) = store_at(OsStr::new(base), options)? {
            let pick = read_pick(&text, pick, library, time::now_ns(), &Zone::local())?;
            return Ok(Some((objects, pick)));
        }
    }
    Ok(store_at(src, options)?.map(|objects| (objects, Pick::Newest(library.map(str::to_string)))))
}

/// The snapshot `pick` (the text after the `@` of `arg`) names.
fn read_pick(
    arg: &str,
    pick: &str,
    library: Option<&str>,
    now_ns: i64,
    zone: &Zone,
) -> Result<Pick, Error> {
    let library = library.map(str::to_string);
    if pick.eq_ignore_ascii_case("latest") {
        return Ok(Pick::Newest(library));
    }
    if pick.len() >= MIN_PREFIX && pick.len() <= 64 && pick.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Pick::Id(pick.to_ascii_lowercase()));
    }
    match time::parse(pick, now_ns, zone) {
        Ok(time_ns) => Ok(Pick::AtOrBefore(library, time_ns)),
        Err(e) => Err(Error::InvalidInput(format!(
            "{arg}: {pick}: {e} (after the @: latest, a snapshot id of 8 or more hex digits, or a time)"
        ))),
    }
}

/// What a pull took from the store.
pub struct Pulled {
    /// The store's URL.
    pub store: String,
    /// The library of the snapshot pulled.
    pub library: String,
    /// The snapshot object pulled (64 hex digits).
    pub snapshot: String,
}

/// `musicfs sync s3://…[@PICK] DST` where the prefix is a store: syncs the picked snapshot
/// into `destination` as any sync writes one, every chunk checked against its id. Errors
/// before the sync starts (the store, the pick) are returned; the sync's own result is given
/// back with the repository, for the usual summary.
pub fn pull(
    global: &GlobalArgs,
    objects: S3Objects,
    pick: Pick,
    destination: &dyn WritableOrigin,
    options: SyncOptions,
    sink: &dyn Sink,
) -> anyhow::Result<(crate::error::Result<SyncSummary>, Repository, Pulled)> {
    let url = objects.url().to_string();
    let repo = global.open_repo()?;
    let store = store::Store::open(std::sync::Arc::new(objects), &url, &repo)
        .with_context(|| format!("opening the chunk store {url}"))?;
    let mut source =
        StoreSource::new(&store, pick).with_context(|| format!("pulling from {url}"))?;
    let (id, snapshot) = source.snapshot_object();
    let pulled = Pulled {
        store: url,
        library: snapshot.library.clone(),
        snapshot: id.hex(),
    };
    let chunker = repo.chunker();
    let result = sync_from(&repo, &mut source, destination, &chunker, options, sink);
    Ok((result, repo, pulled))
}

/// `musicfs sync DIR s3://…` where the prefix is a store: scans DIR into the local repository
/// (as a sync scans its source), then pushes that snapshot.
pub fn push(
    global: &GlobalArgs,
    src: &OsStr,
    objects: S3Objects,
    options: &OpenOptions,
    checksum: bool,
    library: Option<&str>,
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
    let pushed = store::push_as(
        &repo,
        &store,
        scanned.snapshot,
        library,
        &mut chunks,
        sink.as_ref(),
    )
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
