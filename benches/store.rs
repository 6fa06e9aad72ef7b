//! The measurements behind the chunk store's pack size and gc settings (`docs/format.md`,
//! "Chunk store"), on a real object store (a directory that counts requests and bytes).
//!
//!     cargo bench --bench store
//!
//! prints two Markdown tables for a generated library of 200 tracks of about 1 MiB:
//! - for packs of 4, 16 and 64 MiB: requests per GB of a first push and of a pull, and what
//!   garbage a retag of 10 % of the tracks and the deletion of every tenth album leave, and
//!   what a repack must rewrite to reclaim it;
//! - for repack thresholds 0.5, 0.9 and 1.0 (16 MiB packs, the same churn, the first snapshot
//!   forgotten): what gc marks, copies and sweeps, and the garbage it leaves.
//!
//! Run as a test (`cargo test --benches`, without `--bench`), it measures a small library
//! once, so the code stays working. Each case checks that the store still pulls exact.

#[path = "../tests/util/mod.rs"]
mod util;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use musicfs::repo::{ObjectId, ObjectKind, ObjectStore, Repository};
use musicfs::store::{self, format::PackEntry, GcOptions, Pick};
use util::store::{churn, new_store, pack_bytes, Site};

/// A fixed "now" for the first gc, and an hour, in nanoseconds.
const T0: i64 = 1_900_000_000_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
}

/// Every pack of the store with its blobs, from the packs' trailers.
fn blobs_by_pack(objects: &dyn ObjectStore) -> Vec<(ObjectId, Vec<PackEntry>)> {
    let mut out = Vec::new();
    for pack in objects.list(ObjectKind::StorePack).unwrap() {
        let size = objects.size(ObjectKind::StorePack, &pack).unwrap();
        let bytes = objects
            .read(ObjectKind::StorePack, &pack, 0, size as usize)
            .unwrap();
        out.push((pack, store::format::pack_trailer(&bytes).unwrap()));
    }
    out
}

/// The blobs the newest snapshot of `repo`'s only origin reaches: trees, chunk lists, chunks.
fn live_blobs(repo: &Repository) -> HashSet<[u8; 32]> {
    use musicfs::snapshot::Node;
    let (_, record) = repo.snapshots().unwrap().pop().unwrap();
    let mut live = HashSet::new();
    let mut stack = vec![record.root];
    while let Some(id) = stack.pop() {
        live.insert(*id.as_bytes());
        for entry in repo.tree(&id).unwrap().entries {
            match entry.node {
                Node::Dir { tree, .. } => stack.push(tree),
                Node::File { content, .. } => {
                    live.insert(*content.as_bytes());
                    for c in repo.content(&content).unwrap().chunks {
                        live.insert(*c.id.as_bytes());
                    }
                }
                Node::Symlink { .. } => {}
            }
        }
    }
    live
}

/// Pulls the newest snapshot into a new site and compares it with `lib`.
fn assert_pulls_exact(
    dir: &Path,
    objects: &std::sync::Arc<util::store::Counting>,
    url: &str,
    lib: &Path,
) {
    let reader = Site::new(dir, "reader");
    let pulled = reader.pull(&reader.open_store(objects, url), Pick::Newest(None));
    assert_eq!(pulled.errors, 0);
    util::assert_trees_equal(lib, &reader.lib);
}

fn pack_sizes(template: &Path, sizes_mib: &[u32]) {
    println!("| pack | packs | PUT/GB | pull GET/GB | garbage | packs with garbage | rewrite to reclaim all | garbage left if only packs >50% garbage are repacked |");
    println!("|---|---|---|---|---|---|---|---|");
    for &size in sizes_mib {
        let dir = tempfile::tempdir().unwrap();
        let (objects, url) = new_store(dir.path(), size << 20);
        let a = Site::new(dir.path(), "a");
        util::copy_tree(template, &a.lib);
        let store_a = a.open_store(&objects, &url);
        let first = a.push(&store_a);
        let gb = first.bytes as f64 / f64::from(1u32 << 30);
        let put_per_gb = (first.packs + first.deltas + 1) as f64 / gb;
        objects.take();
        let b = Site::new(dir.path(), "b");
        b.pull(&b.open_store(&objects, &url), Pick::Newest(None));
        let (calls, _, _) = objects.take();
        let get_per_gb = calls as f64 / gb;
        churn(&a.lib, 4);
        a.push(&store_a);
        let live = live_blobs(&a.repo);
        let (mut garbage, mut dirty, mut rewrite, mut left) = (0u64, 0u64, 0u64, 0u64);
        let packs = blobs_by_pack(&*objects);
        for (_, entries) in &packs {
            let dead: u64 = entries
                .iter()
                .filter(|e| !live.contains(&e.id))
                .map(|e| u64::from(e.stored))
                .sum();
            let all: u64 = entries.iter().map(|e| u64::from(e.stored)).sum();
            garbage += dead;
            if dead > 0 {
                dirty += 1;
                rewrite += all - dead;
                if dead * 2 <= all {
                    left += dead;
                }
            }
        }
        println!(
            "| {size} MiB | {} | {put_per_gb:.0} | {get_per_gb:.0} | {} | {dirty} | {} | {} |",
            packs.len(),
            mib(garbage),
            mib(rewrite),
            mib(left)
        );
        assert_pulls_exact(dir.path(), &objects, &url, &a.lib);
    }
}

fn gc_thresholds(template: &Path, thresholds: &[f64]) {
    println!("| repack threshold | packs before | garbage | marked packs (repacked) | copied | swept | packs after | garbage left |");
    println!("|---|---|---|---|---|---|---|---|");
    for &threshold in thresholds {
        let dir = tempfile::tempdir().unwrap();
        let (objects, url) = new_store(dir.path(), 16 << 20);
        let a = Site::new(dir.path(), "a");
        util::copy_tree(template, &a.lib);
        let store_a = a.open_store(&objects, &url);
        a.push(&store_a);
        churn(&a.lib, 4);
        a.push(&store_a);
        store::forget(&store_a, 1, false).unwrap();
        let opts = GcOptions {
            grace: Duration::from_secs(24 * 3600),
            repack_threshold: threshold,
            ..GcOptions::default()
        };
        let before = pack_bytes(&*objects);
        let packs_before = objects.list(ObjectKind::StorePack).unwrap().len();
        let marked = store::gc(&store_a, &opts, T0).unwrap();
        let swept = store::gc(&store_a, &opts, T0 + 25 * HOUR).unwrap();
        let after = pack_bytes(&*objects);
        let dry = GcOptions {
            dry_run: true,
            ..opts
        };
        let left = store::gc(&store_a, &dry, T0 + 26 * HOUR).unwrap();
        println!(
            "| {threshold} | {packs_before} ({}) | {} | {} ({}) | {} | {} ({}) | {} ({}) | {} |",
            mib(before),
            mib(marked.garbage_bytes),
            marked.marked_packs,
            marked.repacked_packs,
            mib(marked.copied_bytes),
            swept.swept_packs,
            mib(swept.swept_bytes),
            objects.list(ObjectKind::StorePack).unwrap().len(),
            mib(after),
            mib(left.garbage_bytes)
        );
        assert_pulls_exact(dir.path(), &objects, &url, &a.lib);
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs benches without it, as a quick check.
    let full = std::env::args().any(|a| a == "--bench");
    let template = tempfile::tempdir().unwrap();
    let lib = template.path().join("lib");
    if full {
        util::genlib_create(&lib, 200, 21, 1 << 20);
        pack_sizes(&lib, &[4, 16, 64]);
        println!();
        gc_thresholds(&lib, &[0.5, 0.9, 1.0]);
    } else {
        util::genlib_create(&lib, 20, 21, 256 << 10);
        pack_sizes(&lib, &[1]);
        gc_thresholds(&lib, &[0.5]);
    }
}
