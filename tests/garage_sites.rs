//! Two sites keep one library in step through a chunk store on a real three-node Garage
//! cluster (replication factor 3, `consistency_mode = "consistent"`; `tests/support/garage.rs`),
//! driven through the binary: `musicfs init s3://…`, then site A pushes (`musicfs sync DIR
//! s3://…`) and site B pulls (`musicfs sync s3://… DIR`). Each site has its own repository and
//! library directory; they share only the bucket prefix. The store's gc is `musicfs gc
//! s3://… --grace 0`.
//!
//! Each test starts its own cluster (three nodes come up in a few seconds), and the tests run
//! one at a time: a killed node or a gc must not reach another test's store, and two
//! clusters' worth of servers and pushes at once is more than a two-core machine holds well.
//!
//! What each scenario proves:
//! - a push from A and a pull at B give B the library exact (bytes, modes, mtimes to the
//!   nanosecond), and a retag at A moves kilobytes each way;
//! - a Garage node killed with SIGKILL while a push is putting its packs does not stop the
//!   push (or its re-run) from completing, and B's pull, with the node still down, is exact;
//! - a store gc with no grace period, run while a push of new data is under way, and again
//!   after it, loses nothing: B's pull of the new snapshot is exact and `verify` passes.

mod support;
mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::garage::Garage;
use util::*;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// The bucket and the store's prefix in it.
const BUCKET: &str = "music";
const PREFIX: &str = "sites/store";
/// The node every client talks to; the others may be killed.
const CLIENT_NODE: usize = 0;
/// How long a push or pull may take before the test calls it hung.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// One test at a time (see the module documentation). A test that failed leaves the lock
/// poisoned; the next one runs all the same.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn url() -> String {
    format!("s3://{BUCKET}/{PREFIX}")
}

/// A site: its own repository and library directory.
struct Site {
    t: TestRepo,
    lib: PathBuf,
}

impl Site {
    fn new() -> Site {
        let t = TestRepo::new();
        let lib = t.path("lib");
        Site { t, lib }
    }

    /// The binary with `--json`, this site's repository and the cluster's environment.
    fn command(&self, garage: &Garage, args: &[&str]) -> std::process::Command {
        let mut m = self.t.cmd();
        m.json().args(args);
        let mut c = m.command();
        c.envs(garage.env(CLIENT_NODE));
        c.env_remove("AWS_PROFILE");
        c
    }

    fn run(&self, garage: &Garage, args: &[&str]) -> Output {
        let mut child = self
            .command(garage, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run musicfs");
        finish(&mut child, args)
    }

    /// `musicfs sync LIB s3://…`, which must succeed; its summary.
    fn push(&self, garage: &Garage) -> Value {
        let out = self.run(garage, &["sync", path_arg(&self.lib), &url()]);
        assert!(out.status.success(), "push failed: {}", describe(&out));
        summary_of(&out)
    }

    /// The push, started as a child whose output is collected by [`finish`].
    fn spawn_push(&self, garage: &Garage) -> Child {
        self.command(garage, &["sync", path_arg(&self.lib), &url()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start a push")
    }

    /// `musicfs sync s3://… LIB`: the store's newest snapshot pulled into LIB, which must
    /// succeed without a problem; its summary.
    fn pull(&self, garage: &Garage) -> Value {
        let out = self.run(garage, &["sync", &url(), path_arg(&self.lib)]);
        assert!(out.status.success(), "pull failed: {}", describe(&out));
        let summary = summary_of(&out);
        assert_eq!(num(&summary, "problems"), 0, "{summary}");
        summary
    }

    /// `musicfs gc s3://… --grace 0`, which must succeed: what a run marks, the next one
    /// removes, unless a snapshot has come to need it. Its summary.
    fn gc(&self, garage: &Garage) -> Value {
        let out = self.run(garage, &["gc", &url(), "--grace", "0"]);
        assert!(out.status.success(), "gc failed: {}", describe(&out));
        summary_of(&out)
    }

    /// `musicfs verify LIB`: every file of the library against its latest snapshot.
    fn verify(&self) {
        let out = self
            .t
            .cmd()
            .json()
            .args(["verify", path_arg(&self.lib)])
            .output();
        assert!(out.status.success(), "verify failed: {}", describe(&out));
    }
}

fn path_arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Waits for a child started with piped output, reading the pipes as it runs.
fn finish(child: &mut Child, args: &[&str]) -> Output {
    use std::io::Read;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let Some(status) = wait_timeout(child, COMMAND_TIMEOUT) else {
        panic!("musicfs {args:?} did not finish in {COMMAND_TIMEOUT:?}");
    };
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A cluster with the store made by site `a` (`musicfs init`), which must create it.
fn cluster_with_store(a: &Site) -> Garage {
    let garage = Garage::start(BUCKET);
    let out = a.run(&garage, &["init", &url()]);
    assert!(out.status.success(), "init failed: {}", describe(&out));
    let init = summary_of(&out);
    assert_eq!(init["created"], true, "{init}");
    garage
}

/// Waits until the store holds more packs than `before`, while `push` runs; the packs seen.
fn wait_for_a_new_pack(garage: &Garage, push: &mut Child, before: usize) -> usize {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        let packs = garage.keys(&format!("{PREFIX}/data/")).len();
        if packs > before {
            return packs;
        }
        if let Some(status) = push.try_wait().expect("the push") {
            panic!("the push ended ({status}) before the store listed a new pack");
        }
        assert!(
            Instant::now() < deadline,
            "no new pack in {COMMAND_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The store's snapshot objects.
fn snapshots(garage: &Garage) -> Vec<String> {
    garage.keys(&format!("{PREFIX}/snapshots/"))
}

#[test]
fn a_push_at_one_site_is_pulled_exact_at_the_other_and_a_retag_moves_kilobytes() {
    let _serial = one_at_a_time();
    let (a, b) = (Site::new(), Site::new());
    let garage = cluster_with_store(&a);
    genlib_create(&a.lib, 24, 7, 256 * KIB);

    let first = a.push(&garage);
    assert_eq!(num(&first, "files"), 24, "{first}");
    let library = num(&first, "bytes");
    let put = num(&first, "bytes_put");
    // Each chunk went up once, and not much else.
    assert!(put > 0 && put < library * 11 / 10, "{first}");
    let pulled = b.pull(&garage);
    assert_eq!(num(&pulled, "files"), 24, "{pulled}");
    assert_trees_equal(&a.lib, &b.lib);

    // Nothing changed: nothing put, nothing read.
    let again = a.push(&garage);
    assert_eq!(num(&again, "bytes_put"), 0, "{again}");
    assert!(again["snapshot"].is_null(), "{again}");
    assert_eq!(num(&b.pull(&garage), "bytes_transferred"), 0);

    // A retag of a few files at A: kilobytes up, kilobytes down, B exact.
    let before = files_in(&a.lib)
        .into_iter()
        .map(|(rel, abs)| (rel, std::fs::read(abs).expect("a track")))
        .collect::<Vec<_>>();
    genlib_retag(&a.lib, 0.2, 11);
    let retagged = before
        .iter()
        .filter(|(rel, bytes)| std::fs::read(a.lib.join(rel)).expect("a track") != *bytes)
        .count() as u64;
    assert!(retagged >= 2, "only {retagged} files retagged");
    let pushed = a.push(&garage);
    let put = num(&pushed, "bytes_put");
    println!("retag of {retagged} files: {put} bytes put");
    assert!(put > 0 && put < retagged * 10 * KIB + 8 * KIB, "{pushed}");
    let pulled = b.pull(&garage);
    let moved = num(&pulled, "bytes_transferred");
    println!("retag of {retagged} files: {moved} bytes pulled");
    assert_eq!(num(&pulled, "files_changed"), retagged, "{pulled}");
    assert!(
        moved > 0 && moved < retagged * 12 * KIB + 16 * KIB,
        "{pulled}"
    );
    assert_trees_equal(&a.lib, &b.lib);
    b.verify();
}

#[test]
fn a_push_completes_when_a_garage_node_is_killed_while_it_puts_packs() {
    let _serial = one_at_a_time();
    let (a, b) = (Site::new(), Site::new());
    let mut garage = cluster_with_store(&a);
    // About 48 MiB: three 16 MiB packs or more, so the push still has packs to put after the
    // first one is listed.
    genlib_create(&a.lib, 32, 3, 3 * MIB / 2);

    let mut push = a.spawn_push(&garage);
    wait_for_a_new_pack(&garage, &mut push, 0);
    assert!(
        snapshots(&garage).is_empty(),
        "the push had put its snapshot before a node could be killed"
    );
    let victim = 2;
    garage.kill(victim);
    assert!(!garage.is_running(victim));
    let out = finish(&mut push, &["sync (push)"]);
    if out.status.success() {
        println!("the push completed with node {victim} killed under it");
    } else {
        // A put the dead node failed is a transient error; the push's re-run resumes.
        println!(
            "the push stopped with node {victim} killed ({}); running it again",
            describe(&out)
        );
        let again = a.push(&garage);
        assert!(again["snapshot"].is_string(), "{again}");
    }
    assert_eq!(snapshots(&garage).len(), 1);

    // B pulls with the node still down: exact.
    let pulled = b.pull(&garage);
    assert_eq!(num(&pulled, "files"), 32, "{pulled}");
    assert_trees_equal(&a.lib, &b.lib);
    b.verify();
}

#[test]
fn a_gc_while_a_push_of_new_data_runs_loses_nothing() {
    let _serial = one_at_a_time();
    let (a, b, keeper) = (Site::new(), Site::new(), Site::new());
    let garage = cluster_with_store(&a);
    genlib_create(&a.lib, 12, 5, 256 * KIB);
    a.push(&garage);
    b.pull(&garage);
    assert_trees_equal(&a.lib, &b.lib);

    // New data at A, in packs the gc will see before any index delta names them.
    genlib([
        "add-album",
        path_arg(&a.lib),
        "--seed",
        "9",
        "--tracks",
        "24",
        "--mean-size",
        "2M",
    ]);
    genlib_retag(&a.lib, 0.3, 13);
    let packs_before = garage.keys(&format!("{PREFIX}/data/")).len();
    let mut push = a.spawn_push(&garage);
    wait_for_a_new_pack(&garage, &mut push, packs_before);
    assert_eq!(
        snapshots(&garage).len(),
        1,
        "the push had put its snapshot before the gc could start"
    );
    let during = keeper.gc(&garage);
    let push_ran_through_gc = push.try_wait().expect("the push").is_none();
    println!("gc during the push (still running after it: {push_ran_through_gc}): {during}");
    // The gc saw the push at work: a pack no index delta named yet was marked.
    assert!(num(&during, "marked_packs") >= 1, "{during}");
    let out = finish(&mut push, &["sync (push)"]);
    assert!(out.status.success(), "push failed: {}", describe(&out));
    let pushed = summary_of(&out);
    assert!(pushed["snapshot"].is_string(), "{pushed}");

    // The next gc sweeps that mark: what the new snapshot needs stays.
    let after = keeper.gc(&garage);
    println!("gc after the push: {after}");
    assert_eq!(num(&after, "swept_marks"), 1, "{after}");
    assert!(num(&after, "rescued_packs") >= 1, "{after}");

    let pulled = b.pull(&garage);
    assert_eq!(num(&pulled, "files"), 36, "{pulled}");
    assert_trees_equal(&a.lib, &b.lib);
    b.verify();
    // And once more from a site with nothing cached: every blob the snapshot needs is there.
    let c = Site::new();
    c.pull(&garage);
    assert_trees_equal(&a.lib, &c.lib);
}
