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
use crate::origin::{Policy, Retrying};
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

/// A store's objects in a bucket, every call retried on a transient failure (5xx, 429,
/// timeouts, resets) under [`Policy::OBJECTS`].
fn retried(objects: S3Objects) -> std::sync::Arc<dyn crate::repo::ObjectStore> {
    std::sync::Arc::new(Retrying::new(objects, Policy::OBJECTS))
}

/// `musicfs init s3://BUCKET/PREFIX`: makes the prefix a chunk store that cuts files as
/// `asked` (`--chunker`), else as the local repository does (as a new repository would when
/// there is none yet).
pub fn init(
    global: &GlobalArgs,
    location: &S3Location,
    asked: Option<ChunkerConfig>,
) -> anyhow::Result<u8> {
    let url = location.url();
    let objects = Retrying::new(
        S3Objects::open(location, &OpenOptions::default())?,
        Policy::OBJECTS,
    );
    let chunker = match (asked, global.location()?.root()) {
        (Some(asked), _) => asked,
        (None, root) if root.join("repo.toml").is_file() => {
            global.open_repo()?.chunker_config().clone()
        }
        (None, _) => ChunkerConfig::for_new_repository(),
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
    let store = store::Store::open(retried(objects), &url, &repo)
        .with_context(|| format!("opening the chunk store {url}"))?;
    // Its chunk lists go into the repository: cut otherwise, they would not be what the
    // repository's own reads of the same files find (verify would call them damaged).
    store.check_chunker(&repo)?;
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
    dry_run: bool,
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
        ScanOptions {
            checksum,
            copy: None,
            alone: true,
            leave_staged: false,
        },
        sink.as_ref(),
    )
    .with_context(|| format!("scanning {}", Path::new(src).display()))?;
    let store = store::Store::open(retried(objects), &url, &repo)
        .with_context(|| format!("opening the chunk store {url}"))?;
    let mut chunks = store::LibraryChunks::new(&repo, origin.as_ref())?;
    let pushed = store::push_as(
        &repo,
        &store,
        scanned.snapshot,
        library,
        dry_run,
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
            "chunks_uploaded": pushed.chunks_uploaded,
            "chunk_bytes_uploaded": pushed.chunk_bytes_uploaded,
            "scan_problems": scanned.problems,
            "dry_run": dry_run,
        }))?;
    } else if !global.quiet {
        match &pushed.snapshot {
            None if dry_run && pushed.chunks_uploaded + pushed.trees_uploaded > 0 => println!(
                "dry run: pushing {} to {url} would upload {} chunks ({}), {} chunk lists and {} trees; nothing put",
                pushed.library,
                pushed.chunks_uploaded,
                super::human(pushed.chunk_bytes_uploaded),
                pushed.contents_uploaded,
                pushed.trees_uploaded
            ),
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

/// The chunk store `arg` names, opened with its cache in the local repository; `None` when
/// `arg` is no `s3://` URL or names a prefix that holds no store (a plain mirror, an origin).
pub fn open_store(
    global: &GlobalArgs,
    arg: &OsStr,
    options: &OpenOptions,
) -> anyhow::Result<Option<store::Store>> {
    let Some(objects) = store_at(arg, options)? else {
        return Ok(None);
    };
    let url = objects.url().to_string();
    let repo = global.open_repo()?;
    let opened = store::Store::open(retried(objects), &url, &repo)
        .with_context(|| format!("opening the chunk store {url}"))?;
    Ok(Some(opened))
}

/// `musicfs snapshots s3://…`: the store's snapshots, oldest first.
pub fn snapshots(global: &GlobalArgs, store: &store::Store, zone: &Zone) -> anyhow::Result<u8> {
    let listed = store
        .snapshots()
        .with_context(|| format!("listing the snapshots of {}", store.url()))?;
    for (id, snapshot) in &listed {
        if global.json {
            crate::report::print_json(&json!({
                "type": "snapshot",
                "id": id.hex(),
                "library": snapshot.library,
                "host": snapshot.host,
                "time": snapshot.time_ns.div_euclid(1_000_000_000),
                "root": crate::id::TreeId::from_stored(snapshot.root).to_hex(),
                "files": snapshot.files,
                "bytes": snapshot.bytes,
            }));
        } else {
            println!(
                "{}  {}  {:>7} files  {:>10}  {} (from {})",
                &id.hex()[..MIN_PREFIX],
                zone.format(snapshot.time_ns),
                snapshot.files,
                super::human(snapshot.bytes),
                snapshot.library,
                snapshot.host
            );
        }
    }
    if global.json {
        print_summary(&json!({ "snapshots": listed.len() }))?;
    }
    Ok(exit::OK)
}

/// `musicfs forget s3://… --keep-last N`: removes all but the newest N snapshots of each
/// library of the store (what only they needed is `gc`'s to remove).
pub fn forget(
    global: &GlobalArgs,
    store: &store::Store,
    keep_last: usize,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let url = store.url().to_string();
    let listed = store
        .snapshots()
        .with_context(|| format!("listing the snapshots of {url}"))?;
    let gone = store::forget(store, keep_last, dry_run)
        .with_context(|| format!("forget in the chunk store {url}"))?;
    let zone = Zone::local();
    for (id, snapshot) in &listed {
        let removed = gone.contains(id);
        if global.json {
            crate::report::print_json(&json!({
                "type": if removed { "remove" } else { "keep" },
                "id": id.hex(),
                "library": snapshot.library,
                "time": snapshot.time_ns.div_euclid(1_000_000_000),
                "files": snapshot.files,
                "bytes": snapshot.bytes,
            }));
        } else if !global.quiet {
            let verb = match (removed, dry_run) {
                (false, _) => "keep",
                (true, false) => "remove",
                (true, true) => "would remove",
            };
            println!(
                "{verb}  {}  {}  {}",
                &id.hex()[..MIN_PREFIX],
                zone.format(snapshot.time_ns),
                snapshot.library
            );
        }
    }
    let kept = listed.len() - gone.len();
    if global.json {
        print_summary(&json!({
            "store": url,
            "snapshots_kept": kept,
            "snapshots_removed": gone.len(),
            "dry_run": dry_run,
        }))?;
    } else if !global.quiet {
        match dry_run {
            true => println!(
                "dry run: {kept} snapshots kept, {} would be removed from {url}; nothing removed",
                gone.len()
            ),
            false => println!(
                "{kept} snapshots kept, {} removed from {url}; musicfs gc {url} frees what only they referred to",
                gone.len()
            ),
        }
    }
    Ok(exit::OK)
}

/// `musicfs gc s3://…`: one run of the store's two-phase gc (`format.md`, "Chunk store").
pub fn gc(
    global: &GlobalArgs,
    store: &store::Store,
    grace: Option<std::time::Duration>,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let url = store.url().to_string();
    let defaults = store::GcOptions::default();
    let options = store::GcOptions {
        grace: grace.unwrap_or(defaults.grace),
        dry_run,
        ..defaults
    };
    let report = store::gc(store, &options, time::now_ns())
        .with_context(|| format!("gc of the chunk store {url}"))?;
    if global.json {
        let mut line = serde_json::to_value(&report)?;
        if let Some(map) = line.as_object_mut() {
            map.insert("store".into(), url.into());
            map.insert("dry_run".into(), dry_run.into());
        }
        print_summary(&line)?;
    } else if !global.quiet {
        let human = super::human;
        let would = if dry_run { "would " } else { "" };
        println!(
            "chunk store {url}: {} snapshots, {} packs: {} live, {} garbage",
            report.snapshots,
            report.packs,
            human(report.live_bytes),
            human(report.garbage_bytes)
        );
        println!(
            "{would}mark {} packs ({}), repacking {} into {} new ({} copied); {would}remove {} packs marked over {} ago ({}), {} kept as needed again",
            report.marked_packs,
            human(report.marked_bytes),
            report.repacked_packs,
            report.new_packs,
            human(report.copied_bytes),
            report.swept_packs,
            humantime(options.grace),
            human(report.swept_bytes),
            report.rescued_packs
        );
        if dry_run {
            println!("nothing changed (dry run)");
        }
    }
    Ok(exit::OK)
}

/// `90s`, `15m`, `2h`, `3d`, `1w`, `0`: a duration as `--grace` reads it.
pub fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text}: not a duration (a number and s, m, h, d or w: 90m, 24h, 3d)");
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
}

/// A duration for people: `24h`, `90m`, `45s`.
fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pick_is_latest_an_id_or_a_time() {
        let zone = Zone::utc();
        let now = 1_800_000_000_000_000_000;
        let read = |p: &str| read_pick("s3://b/p@x", p, Some("lib"), now, &zone);
        assert!(matches!(read("latest"), Ok(Pick::Newest(Some(l))) if l == "lib"));
        assert!(matches!(read("LATEST"), Ok(Pick::Newest(_))));
        assert!(matches!(read("3F2A9C1E"), Ok(Pick::Id(id)) if id == "3f2a9c1e"));
        assert!(matches!(read("2026-11-24"), Ok(Pick::AtOrBefore(Some(_), t)) if t < now));
        assert!(
            matches!(read("3d"), Ok(Pick::AtOrBefore(_, t)) if t == now - 3 * 86_400 * 1_000_000_000)
        );
        // Too short for an id, and no time.
        let err = read("3f2a").unwrap_err().to_string();
        assert!(err.contains("s3://b/p@x: 3f2a"), "{err}");
        assert!(read("yesterdy").is_err());
    }

    #[test]
    fn a_grace_is_a_number_and_a_unit() {
        assert_eq!(duration_arg("0"), Ok(std::time::Duration::ZERO));
        assert_eq!(duration_arg("90s").unwrap().as_secs(), 90);
        assert_eq!(duration_arg("24h").unwrap().as_secs(), 86_400);
        assert_eq!(duration_arg("1w").unwrap().as_secs(), 604_800);
        for bad in ["", "h", "3", "3y", "-1d", "1.5h", "99999999999999999999d"] {
            assert!(duration_arg(bad).is_err(), "{bad}");
        }
        assert_eq!(humantime(std::time::Duration::from_secs(86_400)), "1d");
        assert_eq!(humantime(std::time::Duration::from_secs(90)), "90s");
    }
}
