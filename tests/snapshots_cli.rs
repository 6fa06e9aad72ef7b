//! `musicfs snapshots [ORIGIN]`: every snapshot, or those of one origin, named as the
//! repository records it or as `scan` takes it (a relative directory, `file://`, an SSH origin
//! read over SFTP from a real OpenSSH server on 127.0.0.1); a scheme no transport has exits 2
//! naming it.

mod support;
mod util;

use serde_json::Value;
use support::sshd::{Sshd, SshdOptions};
use util::{summary_of, Musicfs, TestRepo};

/// The origins of the snapshots `args` lists, in order, from `--json` output.
fn listed(cmd: &mut Musicfs) -> Vec<String> {
    let lines = cmd.json_lines();
    let (summary, snapshots) = lines.split_last().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["snapshots"], snapshots.len(), "{summary}");
    snapshots
        .iter()
        .map(|v: &Value| {
            assert_eq!(v["type"], "snapshot", "{v}");
            v["origin"].as_str().expect("origin").to_string()
        })
        .collect()
}

/// Scans `origin` and returns the URL its snapshot is recorded under.
fn scanned(mut cmd: Musicfs, origin: &str) -> String {
    cmd.json().arg("scan").arg(origin);
    summary_of(&cmd.assert_exit(0))["origin"]
        .as_str()
        .expect("origin")
        .to_string()
}

#[test]
fn an_origin_argument_lists_only_that_origins_snapshots() {
    let t = TestRepo::new();
    let sshd = Sshd::start(SshdOptions::default());
    let cmd = || Musicfs::new(t.repo(), &sshd.home());
    let a = t.fixtures("a");
    let b = t.fixtures("b");
    let a_url = scanned(cmd(), a.to_str().expect("utf-8"));
    let b_url = scanned(cmd(), b.to_str().expect("utf-8"));
    // A change, so that the second scan of `a` records a second snapshot.
    std::fs::write(a.join("notes.txt"), b"new").expect("write");
    let a_again = scanned(cmd(), a.to_str().expect("utf-8"));
    assert_eq!(a_url, a_again);
    let remote_url = scanned(cmd(), &format!("nas:{}", b.display()));
    assert!(remote_url.starts_with("sftp://"), "{remote_url}");

    let all = listed(cmd().arg("snapshots"));
    assert_eq!(all, [a_url.as_str(), &b_url, &a_url, &remote_url]);

    // A directory as given to scan: absolute, relative, file://.
    assert_eq!(
        listed(cmd().arg("snapshots").arg(&a)),
        [a_url.as_str(), &a_url]
    );
    let mut relative = cmd();
    relative.json().arg("snapshots").arg("./b");
    let out = relative
        .command()
        .current_dir(t.root())
        .output()
        .expect("run musicfs snapshots");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let origins: Vec<Value> = util::parse_json_lines(&out.stdout)
        .into_iter()
        .filter(|v: &Value| v["type"] == "snapshot")
        .collect();
    assert_eq!(origins.len(), 1, "{origins:?}");
    assert_eq!(origins[0]["origin"].as_str(), Some(b_url.as_str()));
    let file_url = format!("file://{}", a.display());
    assert_eq!(
        listed(cmd().arg("snapshots").arg(&file_url)),
        [a_url.as_str(), &a_url]
    );

    // An SSH origin, whatever form names it: the recorded URL itself, or host:path, which is
    // opened to learn the URL it is recorded under.
    assert_eq!(
        listed(cmd().arg("snapshots").arg(&remote_url)),
        [remote_url.as_str()]
    );
    assert_eq!(
        listed(cmd().arg("snapshots").arg(format!("nas:{}", b.display()))),
        [remote_url.as_str()]
    );

    // An origin with no snapshots lists nothing; the text form names the origin.
    let empty = t.mkdir("empty");
    assert!(listed(cmd().arg("snapshots").arg(&empty)).is_empty());
    let text = cmd().arg("snapshots").arg(&b).stdout();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_end().ends_with(&b_url), "{text}");
}

#[test]
fn an_unknown_scheme_exits_2_and_a_directory_that_is_gone_still_names_its_snapshots() {
    let t = TestRepo::new();
    t.cmd().arg("scan").arg(t.fixtures("lib")).assert_exit(0);
    for (arg, scheme) in [
        ("foo://x", "foo://"),
        ("WEBDAV://bucket/music", "webdav://"),
    ] {
        let out = t.cmd().arg("snapshots").arg(arg).assert_exit(2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(scheme), "{arg}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty(), "{arg}");
    }
    // A directory that is gone still names its snapshots, and one never scanned has none.
    let lib = t.path("lib");
    let url = lib.canonicalize().expect("canonical");
    std::fs::rename(&lib, t.path("moved")).expect("rename");
    let text = t.cmd().arg("snapshots").arg(&lib).stdout();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_end().ends_with(&*url.to_string_lossy()), "{text}");
    let missing = t.path("missing");
    assert!(t.cmd().arg("snapshots").arg(&missing).stdout().is_empty());
}
