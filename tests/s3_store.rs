//! The chunk store on S3: `S3Objects` (a bucket prefix as the store's objects) against moto,
//! through the store's library API, with each "site" a library directory with its own
//! repository; sites share only the bucket prefix. Counts are the store's own calls (each
//! one S3 request) and bytes.

mod support;
mod util;

use std::fs;
use std::io;
use std::path::Path;
use std::process::Output;

use musicfs::origin::registry::OpenOptions;
use musicfs::origin::s3::{S3Location, S3Objects};
use musicfs::repo::{ObjectId, ObjectKind, ObjectStore};
use musicfs::store::{self, Pick, Store};
use support::moto::Moto;
use support::proxy::CountingProxy;
use util::store::{Counting, Site};
use util::*;

const KIB: u64 = 1024;

fn hashes(root: &Path) -> Vec<(std::path::PathBuf, blake3::Hash)> {
    files_in(root)
        .into_iter()
        .map(|(rel, abs)| (rel, blake3::hash(&fs::read(abs).unwrap())))
        .collect()
}

/// One test, so that the AWS environment this process sets is set once, before any client.
#[test]
fn s3_objects_keep_the_contract_and_carry_a_store_between_sites() {
    let moto = Moto::start();
    for (name, value) in moto.env() {
        std::env::set_var(name, value);
    }
    moto.client().create_bucket("store");
    let location = S3Location {
        bucket: "store".into(),
        prefix: "music/box".into(),
    };
    let objects = S3Objects::open(&location, &OpenOptions::default()).unwrap();

    // The contract, as LocalObjects keeps it.
    assert!(!objects.is_store().unwrap());
    let bytes = b"one pack of bytes".to_vec();
    let id = ObjectId::of(&bytes);
    let kind = ObjectKind::StorePack;
    assert!(objects.list(kind).unwrap().is_empty());
    objects.put(kind, &id, &bytes).unwrap();
    objects.put(kind, &id, &bytes).unwrap();
    assert_eq!(objects.read(kind, &id, 4, 4).unwrap(), b"pack");
    assert_eq!(objects.read(kind, &id, 17, 0).unwrap(), b"");
    assert_eq!(objects.size(kind, &id).unwrap(), bytes.len() as u64);
    assert_eq!(objects.list(kind).unwrap(), vec![id]);
    assert!(objects.list(ObjectKind::StoreIndex).unwrap().is_empty());
    let hex = id.hex();
    let keys: Vec<String> = moto
        .client()
        .list("store")
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, vec![format!("music/box/data/{}/{hex}", &hex[..2])]);
    let eof = |e: musicfs::Error| matches!(e, musicfs::Error::Io { ref source, .. } if source.kind() == io::ErrorKind::UnexpectedEof);
    assert!(eof(objects.read(kind, &id, 10, 100).unwrap_err()));
    assert!(eof(objects.read(kind, &id, 40, 4).unwrap_err()));
    objects.remove(kind, &id).unwrap();
    objects.remove(kind, &id).unwrap();
    let gone = objects.read(kind, &id, 0, 1).unwrap_err();
    assert_eq!(gone.kind(), musicfs::error::ErrorKind::NotFound, "{gone}");
    assert_eq!(
        objects.size(kind, &id).unwrap_err().kind(),
        musicfs::error::ErrorKind::NotFound
    );
    assert!(objects.list(kind).unwrap().is_empty());

    // A store: init at the prefix, push from A, pull at B: exact.
    let url = location.url();
    let chunker = musicfs::repo::ChunkerConfig::for_new_repository();
    assert!(store::init(&objects, &url, &chunker, store::DEFAULT_PACK_SIZE).unwrap());
    assert!(!store::init(&objects, &url, &chunker, store::DEFAULT_PACK_SIZE).unwrap());
    assert!(objects.is_store().unwrap());
    let counted = Counting::over(Box::new(objects));
    let dir = tempfile::tempdir().unwrap();
    let a = Site::new(dir.path(), "a");
    genlib_create(&a.lib, 24, 7, 256 * KIB);
    let store_a = Store::open(counted.clone(), &url, &a.repo).unwrap();
    let first = a.push(&store_a);
    let (_, put_first, _) = counted.take();
    assert_eq!(put_first, first.bytes_put);
    // Not twice the library: each chunk went up once.
    assert!(
        first.bytes_put > 0 && first.bytes_put < first.bytes * 11 / 10,
        "{first:?}"
    );
    let b = Site::new(dir.path(), "b");
    let store_b = Store::open(counted.clone(), &url, &b.repo).unwrap();
    let pulled = b.pull(&store_b, Pick::Newest(None));
    assert_eq!(pulled.errors, 0, "{pulled:?}");
    assert_trees_equal(&a.lib, &b.lib);
    counted.take();

    // No change: a handful of requests each way.
    let again = a.push(&store_a);
    assert!(again.snapshot.is_none(), "{again:?}");
    let (calls, put, _) = counted.take();
    println!("no-change push: {calls} requests");
    assert!(calls <= 3 && put == 0, "{calls} requests, {put} bytes");
    let same = b.pull(&store_b, Pick::Newest(None));
    assert_eq!(same.bytes_transferred, 0);
    let (calls, _, read) = counted.take();
    println!("no-change pull: {calls} requests");
    assert!(calls <= 3 && read == 0, "{calls} requests, {read} bytes");

    // Retag at A: small bytes up, small bytes down, B exact.
    let before = hashes(&a.lib);
    genlib_retag(&a.lib, 0.2, 11);
    let retagged = before
        .iter()
        .filter(|(rel, h)| blake3::hash(&fs::read(a.lib.join(rel)).unwrap()) != *h)
        .count() as u64;
    assert!(retagged >= 2, "only {retagged} files retagged");
    a.push(&store_a);
    let (_, put, _) = counted.take();
    println!("retag of {retagged} files: {put} bytes put");
    assert!(put < retagged * 10 * KIB + 8 * KIB, "{put} bytes put");
    let pulled = b.pull(&store_b, Pick::Newest(None));
    assert_eq!(pulled.errors, 0);
    assert_trees_equal(&a.lib, &b.lib);
    let (_, _, read) = counted.take();
    println!("retag of {retagged} files: {read} bytes read");
    assert!(read < retagged * 12 * KIB + 16 * KIB, "{read} bytes read");
}

/// The binary with the moto server's AWS environment.
fn musicfs(t: &TestRepo, moto: &Moto, json: bool, args: &[&str]) -> std::process::Output {
    let mut m = t.cmd();
    if json {
        m.json();
    }
    m.args(args);
    let mut c = m.command();
    c.envs(moto.env());
    c.env_remove("AWS_PROFILE");
    c.output().expect("run musicfs")
}

#[test]
fn init_makes_a_store_once_and_sync_pushes_to_it_or_to_a_plain_mirror() {
    let moto = Moto::start();
    moto.client().create_bucket("box");
    let t = TestRepo::new();
    let out = musicfs(&t, &moto, true, &["init", "s3://box/music"]);
    assert!(out.status.success(), "{out:?}");
    let first = summary_of(&out);
    assert_eq!(first["command"], "init");
    assert_eq!(first["store"], "s3://box/music");
    assert_eq!(first["created"], true);
    let keys: Vec<String> = moto
        .client()
        .list("box")
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("music/config/"), "{keys:?}");

    let again = musicfs(&t, &moto, false, &["init", "s3://box/music"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "chunk store s3://box/music already exists\n"
    );
    assert_eq!(moto.client().list("box").len(), 1);

    // sync DIR s3://… with a store pushes; a second push finds nothing new.
    let scratch = tempfile::tempdir().unwrap();
    let lib = scratch.path().join("lib");
    genlib_create(&lib, 6, 3, 64 * KIB);
    let lib_arg = lib.to_str().unwrap();
    // A dry run says what a push would upload, and puts nothing.
    let out = musicfs(
        &t,
        &moto,
        true,
        &["sync", "--dry-run", lib_arg, "s3://box/music"],
    );
    assert!(out.status.success(), "{out:?}");
    let dry = summary_of(&out);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["bytes_put"], 0, "{dry}");
    assert!(dry["snapshot"].is_null(), "{dry}");
    let would = dry["chunk_bytes_uploaded"].as_u64().unwrap();
    assert!(would > 0, "{dry}");
    assert_eq!(moto.client().list("box").len(), 1);
    let out = musicfs(&t, &moto, true, &["sync", lib_arg, "s3://box/music"]);
    assert!(out.status.success(), "{out:?}");
    let pushed = summary_of(&out);
    assert_eq!(pushed["files"], 6, "{pushed}");
    assert!(pushed["bytes_put"].as_u64().unwrap() > 0, "{pushed}");
    assert!(pushed["snapshot"].is_string(), "{pushed}");
    assert_eq!(pushed["chunk_bytes_uploaded"], would, "{pushed}");
    let out = musicfs(&t, &moto, true, &["sync", lib_arg, "s3://box/music"]);
    let again = summary_of(&out);
    assert_eq!(again["bytes_put"], 0, "{again}");
    assert!(again["snapshot"].is_null(), "{again}");
    let dry = musicfs(
        &t,
        &moto,
        false,
        &["sync", "--dry-run", lib_arg, "s3://box/music"],
    );
    assert!(dry.status.success(), "{dry:?}");
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("already has"),
        "{dry:?}"
    );
    // A push deletes nothing: --delete is refused, in one line.
    let delete = musicfs(
        &t,
        &moto,
        false,
        &["sync", "--delete", lib_arg, "s3://box/music"],
    );
    assert_eq!(delete.status.code(), Some(2), "{delete:?}");
    let err = String::from_utf8_lossy(&delete.stderr);
    assert!(
        err.contains("deletes nothing") && err.lines().count() == 1,
        "{err}"
    );
    // A prefix without a store stays a plain mirror: one object per file.
    let out = musicfs(&t, &moto, true, &["sync", lib_arg, "s3://box/plain"]);
    assert!(out.status.success(), "{out:?}");
    let plain = moto
        .client()
        .list("box")
        .into_iter()
        .filter(|l| l.key.starts_with("plain/"))
        .count();
    assert_eq!(plain, 6);

    // A bucket that does not exist: one line naming the store, the usage/input exit code.
    let missing = musicfs(&t, &moto, false, &["init", "s3://nobucket/music"]);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("s3://nobucket/music"), "{err}");
}

/// The binary with the moto server's AWS environment, its endpoint the proxy at `port`.
fn musicfs_via(t: &TestRepo, moto: &Moto, port: u16, json: bool, args: &[&str]) -> Output {
    let mut m = t.cmd();
    if json {
        m.json();
    }
    m.args(args);
    let mut c = m.command();
    c.envs(moto.env());
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"));
    c.env_remove("AWS_PROFILE");
    c.output().expect("run musicfs")
}

/// `musicfs --json ARGS` through `proxy`, which must succeed; its summary.
fn ok_via(t: &TestRepo, moto: &Moto, proxy: &CountingProxy, args: &[&str]) -> serde_json::Value {
    let out = musicfs_via(t, moto, proxy.port, true, args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    summary_of(&out)
}

#[test]
fn a_store_pulled_at_another_site_is_exact_and_at_any_snapshot() {
    let moto = Moto::start();
    moto.client().create_bucket("box");
    let proxy = CountingProxy::start(moto.port);
    let (a, b) = (TestRepo::new(), TestRepo::new());
    let (lib_a, lib_b) = (a.path("lib"), b.path("lib"));
    genlib_create(&lib_a, 12, 5, 128 * KIB);
    let (arg_a, arg_b) = (lib_a.to_str().unwrap(), lib_b.to_str().unwrap());
    let store = "s3://box/music";
    ok_via(&a, &moto, &proxy, &["init", store]);
    let first = ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);
    let first_id = first["snapshot"].as_str().unwrap().to_string();
    let old = a.path("old");
    copy_tree(&lib_a, &old);
    proxy.take();

    // Pull at B: the sync summary, plus the store and the snapshot; B exact, mtimes and
    // modes too.
    let pulled = ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    assert_eq!(pulled["store"], store, "{pulled}");
    assert_eq!(pulled["snapshot"], first_id.as_str(), "{pulled}");
    assert_eq!(pulled["library"], "music", "{pulled}");
    assert_eq!(pulled["files"], 12, "{pulled}");
    assert_eq!(pulled["problems"], 0, "{pulled}");
    assert_eq!(pulled["files_changed"], 12, "{pulled}");
    assert!(pulled["dst_snapshot"].is_string(), "{pulled}");
    assert_eq!(pulled["src"], store);
    assert_trees_equal(&lib_a, &lib_b);
    let wire = proxy.take();
    let bytes = pulled["bytes"].as_u64().unwrap();
    assert!(
        wire > 0 && wire < bytes * 11 / 10 + 64 * KIB,
        "{wire} bytes on the wire for {bytes}"
    );

    // Nothing changed: a few small requests, nothing written.
    let same = ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    assert_eq!(same["files_changed"], 0, "{same}");
    assert_eq!(same["bytes_transferred"], 0, "{same}");
    let wire = proxy.take();
    println!("no-change pull: {wire} bytes on the wire");
    assert!(wire < 12 * KIB, "{wire} bytes on the wire");

    // A retag at A reaches B with about its tag bytes.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let between = jiff::Timestamp::now().to_string();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = hashes(&lib_a);
    genlib_retag(&lib_a, 0.3, 3);
    let retagged = before
        .iter()
        .filter(|(rel, h)| blake3::hash(&fs::read(lib_a.join(rel)).unwrap()) != *h)
        .count() as u64;
    assert!(retagged >= 2, "only {retagged} files retagged");
    let second = ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);
    let second_id = second["snapshot"].as_str().unwrap().to_string();
    assert_ne!(first_id, second_id);
    proxy.take();
    let pulled = ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    assert_eq!(pulled["snapshot"], second_id.as_str(), "{pulled}");
    assert_eq!(pulled["files_changed"], retagged, "{pulled}");
    assert_trees_equal(&lib_a, &lib_b);
    let wire = proxy.take();
    println!("retag of {retagged} files: {wire} bytes on the wire");
    assert!(
        wire < retagged * 12 * KIB + 24 * KIB,
        "{wire} bytes on the wire"
    );

    // Older snapshots by id (a prefix), by time, and @latest, into B; --delete, --dry-run.
    let by_id = format!("{store}@{}", &first_id[..12]);
    let dry = ok_via(&b, &moto, &proxy, &["sync", "--dry-run", &by_id, arg_b]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["files_changed"], retagged, "{dry}");
    assert_trees_equal(&lib_a, &lib_b);
    ok_via(&b, &moto, &proxy, &["sync", "--delete", &by_id, arg_b]);
    assert_trees_equal(&old, &lib_b);
    let latest = format!("{store}@latest");
    let back = ok_via(&b, &moto, &proxy, &["sync", &latest, arg_b]);
    assert_eq!(back["snapshot"], second_id.as_str(), "{back}");
    assert_trees_equal(&lib_a, &lib_b);
    let at = format!("{store}@{between}");
    let then = ok_via(&b, &moto, &proxy, &["sync", &at, arg_b]);
    assert_eq!(then["snapshot"], first_id.as_str(), "{then}");
    assert_trees_equal(&old, &lib_b);

    // What names no snapshot: one line, exit 2.
    for (arg, says) in [
        (format!("{store}@nonsense"), "nonsense"),
        (format!("{store}@2001-01-01"), "no such snapshot"),
        (format!("{store}@ffffffffffff"), "no such snapshot"),
    ] {
        let out = musicfs_via(&b, &moto, proxy.port, false, &["sync", &arg, arg_b]);
        assert_eq!(out.status.code(), Some(2), "{arg}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(says) && err.lines().count() == 1,
            "{arg}: {err}"
        );
    }
    let named = musicfs_via(
        &b,
        &moto,
        proxy.port,
        false,
        &["sync", "--library", "x", arg_a, arg_b],
    );
    assert_eq!(named.status.code(), Some(2), "{named:?}");

    // A prefix without a store is a plain mirror both ways.
    let plain = "s3://box/plain";
    ok_via(&a, &moto, &proxy, &["sync", arg_a, plain]);
    let mirror = b.path("mirror");
    let pulled = ok_via(
        &b,
        &moto,
        &proxy,
        &["sync", plain, mirror.to_str().unwrap()],
    );
    assert!(pulled.get("store").is_none(), "{pulled}");
    assert_trees_equal(&lib_a, &mirror);
}

#[test]
fn sites_keep_one_library_and_the_store_is_listed_forgotten_and_collected() {
    let moto = Moto::start();
    moto.client().create_bucket("box");
    let proxy = CountingProxy::start(moto.port);
    let (a, b) = (TestRepo::new(), TestRepo::new());
    let (lib_a, lib_b) = (a.path("lib"), b.path("lib"));
    genlib_create(&lib_a, 10, 9, 96 * KIB);
    let (arg_a, arg_b) = (lib_a.to_str().unwrap(), lib_b.to_str().unwrap());
    let store = "s3://box/catalogue";
    ok_via(&a, &moto, &proxy, &["init", store]);
    let first = ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);
    assert_eq!(first["library"], "catalogue", "{first}");

    // B pulls, retags, pushes: the same library, which A pulls.
    ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    genlib_retag(&lib_b, 0.4, 21);
    let from_b = ok_via(&b, &moto, &proxy, &["sync", arg_b, store]);
    assert_eq!(from_b["library"], "catalogue", "{from_b}");
    assert!(from_b["snapshot"].is_string(), "{from_b}");
    let at_a = ok_via(&a, &moto, &proxy, &["sync", store, arg_a]);
    assert_eq!(at_a["snapshot"], from_b["snapshot"], "{at_a}");
    assert!(at_a["files_changed"].as_u64().unwrap() >= 2, "{at_a}");
    assert_trees_equal(&lib_b, &lib_a);
    // A's scan of what it pulled is B's tree: nothing to push.
    let again = ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);
    assert!(again["snapshot"].is_null(), "{again}");

    // A second library, named: from then on every push and pull names one.
    let other = a.path("other");
    genlib_create(&other, 3, 4, 32 * KIB);
    let named = ok_via(
        &a,
        &moto,
        &proxy,
        &[
            "sync",
            "--library",
            "jingles",
            other.to_str().unwrap(),
            store,
        ],
    );
    assert_eq!(named["library"], "jingles", "{named}");
    for args in [vec!["sync", store, arg_a], vec!["sync", arg_a, store]] {
        let out = musicfs_via(&a, &moto, proxy.port, false, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("catalogue, jingles") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let c = TestRepo::new();
    let lib_c = c.path("lib");
    let jingles = ok_via(
        &c,
        &moto,
        &proxy,
        &[
            "sync",
            "--library",
            "jingles",
            store,
            lib_c.to_str().unwrap(),
        ],
    );
    assert_eq!(jingles["library"], "jingles", "{jingles}");
    assert_trees_equal(&other, &lib_c);

    // snapshots: one line each, oldest first.
    let mut cmd = c.cmd();
    cmd.json().args(["snapshots", store]);
    let mut listing = cmd.command();
    listing.envs(moto.env());
    let out = listing.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines = parse_json_lines(&out.stdout);
    let libraries: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "snapshot")
        .map(|l| l["library"].as_str().unwrap())
        .collect();
    assert_eq!(
        libraries,
        ["catalogue", "catalogue", "jingles"],
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["snapshots"], 3);
    let text = musicfs_via(&c, &moto, proxy.port, false, &["snapshots", store]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains(&from_b["snapshot"].as_str().unwrap()[..8]),
        "{text}"
    );

    // forget: a dry run removes nothing; then the older catalogue snapshot goes.
    let dry = ok_via(
        &a,
        &moto,
        &proxy,
        &["forget", store, "--keep-last", "1", "--dry-run"],
    );
    assert_eq!(dry["snapshots_removed"], 1, "{dry}");
    assert_eq!(dry["snapshots_kept"], 2, "{dry}");
    let forgot = ok_via(&a, &moto, &proxy, &["forget", store, "--keep-last", "1"]);
    assert_eq!(forgot["snapshots_removed"], 1, "{forgot}");
    let left = ok_via(&a, &moto, &proxy, &["forget", store, "--keep-last", "1"]);
    assert_eq!(left["snapshots_removed"], 0, "{left}");
    let daily = musicfs_via(
        &a,
        &moto,
        proxy.port,
        false,
        &["forget", store, "--keep-daily", "1"],
    );
    assert_eq!(daily.status.code(), Some(2), "{daily:?}");

    // gc: a dry run changes nothing; a run marks what the forgotten snapshot alone needed;
    // one with no grace removes it; the store still pulls exact.
    let objects = moto.client().list("box").len();
    let dry = ok_via(&a, &moto, &proxy, &["gc", store, "--dry-run"]);
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert!(dry["garbage_bytes"].as_u64().unwrap() > 0, "{dry}");
    assert_eq!(moto.client().list("box").len(), objects);
    let marked = ok_via(&a, &moto, &proxy, &["gc", store]);
    assert_eq!(marked["store"], store, "{marked}");
    assert!(marked["marked_packs"].as_u64().unwrap() > 0, "{marked}");
    assert_eq!(marked["swept_packs"], 0, "{marked}");
    let swept = ok_via(&a, &moto, &proxy, &["gc", "--grace", "0", store]);
    assert_eq!(swept["swept_packs"], marked["marked_packs"], "{swept}");
    let d = TestRepo::new();
    let lib_d = d.path("lib");
    ok_via(
        &d,
        &moto,
        &proxy,
        &[
            "sync",
            "--library",
            "catalogue",
            store,
            lib_d.to_str().unwrap(),
        ],
    );
    assert_trees_equal(&lib_b, &lib_d);

    // gc of what is no store, --grace without one: one line, exit 2.
    for args in [
        vec!["gc", "s3://box/nothing"],
        vec!["gc", arg_a],
        vec!["gc", "--grace", "1h"],
        vec!["gc", "--grace", "soon", store],
    ] {
        let out = musicfs_via(&a, &moto, proxy.port, false, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }

    // Another gc holds the store (its lock object, a minute old): this one stops with one
    // line naming the holder, exit 4 (locked), and leaves the other's lock alone.
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let lock = store::format::GcLock {
        host: "elsewhere".into(),
        time_ns: now_ns - 60_000_000_000,
        nonce: [7; 16],
    };
    let bytes = store::format::encode_object(store::format::Tag::Lock, &lock);
    let hex = ObjectId::of(&bytes).hex();
    let key = format!("catalogue/locks/{}/{hex}", &hex[..2]);
    moto.client().put("box", &key, &bytes, &[]);
    let held = musicfs_via(&a, &moto, proxy.port, false, &["gc", store]);
    assert_eq!(held.status.code(), Some(4), "{held:?}");
    let err = String::from_utf8_lossy(&held.stderr);
    assert!(
        err.contains("another gc is running") && err.contains("elsewhere"),
        "{err}"
    );
    let locks: Vec<_> = moto
        .client()
        .list("box")
        .into_iter()
        .filter(|l| l.key.starts_with("catalogue/locks/"))
        .map(|l| l.key)
        .collect();
    assert_eq!(locks, vec![key]);
}

#[test]
fn a_pull_killed_midway_leaves_files_old_or_new_and_a_rerun_finishes() {
    let moto = Moto::start();
    moto.client().create_bucket("box");
    let proxy = CountingProxy::start(moto.port);
    let (a, b) = (TestRepo::new(), TestRepo::new());
    let (lib_a, lib_b) = (a.path("lib"), b.path("lib"));
    genlib_create(&lib_a, 6, 2, 64 * KIB);
    let (arg_a, arg_b) = (lib_a.to_str().unwrap(), lib_b.to_str().unwrap());
    let store = "s3://box/music";
    ok_via(&a, &moto, &proxy, &["init", store]);
    ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);
    ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    let old = b.path("old");
    copy_tree(&lib_b, &old);
    genlib_retag(&lib_a, 0.5, 5);
    genlib_create(&lib_a.join("more"), 24, 3, 256 * KIB);
    ok_via(&a, &moto, &proxy, &["sync", arg_a, store]);

    // Slowed to 1 MiB/s: killed once a few of the new files are in place.
    let mut m = b.cmd();
    m.args(["sync", "--bwlimit", "1M", store, arg_b]);
    let mut command = m.command();
    command.envs(moto.env());
    command.env(
        "AWS_ENDPOINT_URL",
        format!("http://127.0.0.1:{}", proxy.port),
    );
    let log = b.path("pull.log");
    command.stdout(std::process::Stdio::null());
    command.stderr(fs::File::create(&log).unwrap());
    let mut child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    // Files in place under `dir` (not temporary ones), walked without failing on entries
    // that a running sync renames or removes meanwhile.
    fn placed(dir: &Path) -> usize {
        let Ok(entries) = fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with(".musicfs-"))
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => placed(&e.path()),
                Ok(_) => 1,
                Err(_) => 0,
            })
            .sum()
    }
    while placed(&lib_b.join("more")) < 3 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the pull ended ({status}) before it could be killed: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no file placed in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let placed_now = placed(&lib_b.join("more"));
    assert!(placed_now < 24, "the pull finished before the kill");

    // Each file is as it was, or as the store has it; none torn.
    for (rel, path) in files_in(&lib_b) {
        if rel
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".musicfs-")
        {
            continue;
        }
        let now = fs::read(&path).unwrap();
        let new = fs::read(lib_a.join(&rel)).ok();
        let was = fs::read(old.join(&rel)).ok();
        assert!(
            Some(&now) == new.as_ref() || Some(&now) == was.as_ref(),
            "{} is neither old nor new",
            rel.display()
        );
    }
    let finished = ok_via(&b, &moto, &proxy, &["sync", store, arg_b]);
    assert_eq!(finished["problems"], 0, "{finished}");
    assert_trees_equal(&lib_a, &lib_b);
}
