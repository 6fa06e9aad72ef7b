//! S3 plain mirrors through the binary, against moto's S3 server on 127.0.0.1: syncs to and
//! from a bucket prefix, what a second sync and a retag upload, `--delete`, hostile keys put
//! there by another tool, and credentials that never show.

mod support;
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, UNIX_EPOCH};

use support::moto::{Moto, S3};
use util::*;

const BUCKET: &str = "music";
const URL: &str = "s3://music/lib";

/// The binary with the moto server's AWS environment.
fn run(t: &TestRepo, moto: &Moto, json: bool, args: &[&str]) -> Output {
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

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sync(t: &TestRepo, moto: &Moto, src: &str, dst: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["sync", src, dst];
    args.extend_from_slice(extra);
    summary_of(&ok(run(t, moto, true, &args)))
}

fn started() -> (TestRepo, Moto, S3) {
    let t = TestRepo::new();
    let moto = Moto::start();
    let s3 = moto.client();
    s3.create_bucket(BUCKET);
    (t, moto, s3)
}

/// Each object under `lib/`: key after the prefix → (ETag, LastModified).
fn state(s3: &S3) -> BTreeMap<String, (String, String)> {
    s3.list(BUCKET)
        .into_iter()
        .filter_map(|o| {
            let rel = o.key.strip_prefix("lib/")?.to_string();
            Some((rel, (o.etag, o.last_modified)))
        })
        .collect()
}

fn rel_files(root: &Path) -> Vec<String> {
    files_in(root)
        .keys()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// A file's mtime as rclone writes it: decimal seconds to the nanosecond.
fn rclone_mtime(path: &Path) -> String {
    let t = fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[test]
fn a_library_goes_to_a_bucket_and_comes_back_whole() {
    let (t, moto, s3) = started();
    let src = t.fixtures("src");
    let s = sync(&t, &moto, src.to_str().unwrap(), URL, &[]);
    assert_eq!(num(&s, "files_changed"), files_in(&src).len() as u64, "{s}");

    // One object per file, its key the path, mtime and mode in rclone's metadata.
    let keys: Vec<String> = state(&s3).into_keys().collect();
    assert_eq!(keys, rel_files(&src));
    for rel in &keys {
        let (bytes, meta) = s3.get(BUCKET, &format!("lib/{rel}"));
        let local = src.join(rel);
        assert!(bytes == fs::read(&local).unwrap(), "{rel}: the bytes");
        assert_eq!(meta.get("mtime"), Some(&rclone_mtime(&local)), "{rel}");
        let mode = fs::metadata(&local).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            meta.get("mode"),
            Some(&format!("{:o}", 0o100000 | mode)),
            "{rel}"
        );
    }

    let back = t.path("back");
    sync(&t, &moto, URL, back.to_str().unwrap(), &[]);
    assert_trees_equal(&src, &back);
}

#[test]
fn a_second_sync_uploads_nothing_and_a_retag_only_its_file() {
    let (t, moto, s3) = started();
    let src = t.fixtures("src");
    let src_arg = src.to_str().unwrap().to_string();
    sync(&t, &moto, &src_arg, URL, &[]);
    let first = state(&s3);
    // LastModified has whole seconds: a PUT in the next second shows.
    std::thread::sleep(Duration::from_millis(1100));

    let again = sync(&t, &moto, &src_arg, URL, &[]);
    assert_eq!(num(&again, "files_changed"), 0, "{again}");
    assert_eq!(num(&again, "bytes_transferred"), 0, "{again}");
    assert_eq!(state(&s3), first, "no object was written again");

    util::editors::metaflac_title(&src.join(util::editors::SINE), "Retagged Sine");
    std::thread::sleep(Duration::from_millis(1100));
    let retag = sync(&t, &moto, &src_arg, URL, &[]);
    assert_eq!(num(&retag, "files_changed"), 1, "{retag}");
    let after = state(&s3);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(rel, v)| first.get(*rel) != Some(v))
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(
        changed,
        [util::editors::SINE],
        "only the retagged file was put"
    );
    let (bytes, _) = s3.get(BUCKET, &format!("lib/{}", util::editors::SINE));
    assert!(bytes == fs::read(src.join(util::editors::SINE)).unwrap());
}

#[test]
fn delete_removes_what_the_source_lacks_from_the_bucket() {
    let (t, moto, s3) = started();
    let src = t.fixtures("src");
    let src_arg = src.to_str().unwrap().to_string();
    sync(&t, &moto, &src_arg, URL, &[]);
    fs::remove_file(src.join(util::editors::DUSK)).unwrap();
    fs::remove_dir_all(src.join("Riff Raff")).unwrap();

    let kept = sync(&t, &moto, &src_arg, URL, &[]);
    assert_eq!(num(&kept, "files_deleted"), 0, "{kept}");
    assert!(
        state(&s3).contains_key(util::editors::DUSK),
        "kept without --delete"
    );

    let s = sync(&t, &moto, &src_arg, URL, &["--delete"]);
    assert_eq!(num(&s, "files_deleted"), 2, "{s}");
    let keys: Vec<String> = state(&s3).into_keys().collect();
    assert_eq!(keys, rel_files(&src), "the bucket holds exactly the source");
}

#[test]
fn hostile_keys_are_reported_and_never_followed() {
    let (t, moto, s3) = started();
    for key in ["lib/../x", "lib//abs", "lib/a//b", "lib/./dot"] {
        s3.put(BUCKET, key, b"hostile", &[]);
    }
    s3.put(
        BUCKET,
        "lib/good/track.flac",
        b"good bytes",
        &[("mtime", "1700000000.5")],
    );
    let listed: Vec<String> = s3.list(BUCKET).into_iter().map(|o| o.key).collect();
    assert!(
        listed.contains(&"lib/../x".to_string()),
        "moto kept the key: {listed:?}"
    );

    let dst = t.path("dst");
    let out = run(&t, &moto, false, &["sync", URL, dst.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "partial: {stderr}");
    for key in ["\"../x\"", "\"/abs\"", "\"a//b\"", "\"./dot\""] {
        assert!(stderr.contains(key), "{key} reported: {stderr}");
    }
    assert_eq!(rel_files(&dst), ["good/track.flac"], "the rest synced");
    assert_eq!(
        fs::read(dst.join("good/track.flac")).unwrap(),
        b"good bytes"
    );
    let mtime = fs::metadata(dst.join("good/track.flac"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime.duration_since(UNIX_EPOCH).unwrap(),
        Duration::new(1_700_000_000, 500_000_000),
        "rclone's mtime kept"
    );
    assert!(!t.path("x").exists() && !dst.join("abs").exists() && !Path::new("/abs").exists());
}

#[test]
fn an_object_without_metadata_has_its_last_modified() {
    let (t, moto, s3) = started();
    s3.put(BUCKET, "lib/plain.mp3", b"from another tool", &[]);
    let dst = t.path("dst");
    sync(&t, &moto, URL, dst.to_str().unwrap(), &[]);
    let mtime = fs::metadata(dst.join("plain.mp3"))
        .unwrap()
        .modified()
        .unwrap();
    let age = std::time::SystemTime::now().duration_since(mtime).unwrap();
    assert!(
        age < Duration::from_secs(600),
        "LastModified, not 1970: {age:?}"
    );
    let mode = fs::metadata(dst.join("plain.mp3"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn bad_bucket_names_are_refused_before_connecting() {
    let t = TestRepo::new();
    let out = t.cmd().args(["scan", "s3://Bad_Bucket/x"]).assert_exit(2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s3://Bad_Bucket/x") && stderr.contains("bucket"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

// --- credentials ----------------------------------------------------------------------------

/// A configuration naming `url` as the origin `vault`, with the credentials file `vault.toml`
/// beside it.
fn vault_config(home: &Path, url: &str, id: &str, secret: &str) -> std::path::PathBuf {
    let dir = home.join(".config/musicfs");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("config.toml"),
        format!("[origin.vault]\nurl = \"{url}\"\ncredentials = \"vault.toml\"\n"),
    )
    .unwrap();
    let file = dir.join("vault.toml");
    fs::write(
        &file,
        format!("aws_access_key_id = \"{id}\"\naws_secret_access_key = \"{secret}\"\n"),
    )
    .unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    file
}

#[test]
fn secrets_never_show_whether_the_key_works_or_not() {
    let (moto, id, secret) = Moto::start_with_auth(BUCKET);
    let t = TestRepo::new();
    let src = t.fixtures("src");
    // ASCII names only: moto's signature check of a non-ASCII key differs from AWS's too.
    fs::remove_dir_all(src.join("Café Tonal")).unwrap();
    let wrong = "WRONG-s3cr3t-9f8e7d6c5b4a";
    // The whole bucket: moto's signature check of a ListObjectsV2 with a prefix
    // (`prefix=lib%2F`) differs from AWS's, and refuses what AWS takes.
    let url = "s3://music";
    vault_config(t.root(), url, &id, wrong);
    let log = t.path("musicfs.log");
    let runs = |label: &str| -> Output {
        let mut m = t.cmd();
        m.args(["-v", "--log-file", log.to_str().unwrap(), "sync"])
            .arg(&src)
            .arg("vault");
        let mut c = m.command();
        c.env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("MUSICFS_LOG", "trace")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE");
        c.output().expect(label)
    };
    let failed = runs("the wrong secret");
    assert!(!failed.status.success(), "a wrong secret is refused");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("SignatureDoesNotMatch") || stderr.contains("403"),
        "{stderr}"
    );

    vault_config(t.root(), url, &id, &secret);
    let worked = runs("the right secret");
    let stderr = String::from_utf8_lossy(&worked.stderr);
    let last: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("musicfs"))
        .collect();
    assert!(worked.status.success(), "{last:?}");
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(log_text.len() > 100, "the log was written: {log_text}");
    for out in [&failed, &worked] {
        for text in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(!text.contains(wrong) && !text.contains(&secret), "{text}");
        }
    }
    assert!(!log_text.contains(wrong) && !log_text.contains(&secret));
}

#[test]
fn a_credentials_file_others_can_read_or_another_user_owns_is_refused() {
    let t = TestRepo::new();
    let file = vault_config(t.root(), URL, "AKIAEXAMPLE", "not-used");
    let refused = |expect: &str| {
        let out = t.cmd().args(["scan", "vault"]).assert_exit(2);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(&file.display().to_string()) && stderr.contains(expect),
            "{stderr}"
        );
        assert!(!stderr.contains("not-used"), "{stderr}");
    };
    for mode in [0o640, 0o604, 0o644, 0o660] {
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
        refused(&format!("mode {mode:04o}"));
    }
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&file, Some(NOBODY.0), Some(NOBODY.1)).unwrap();
        refused("owned by uid 65534");
        std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
    }
    fs::write(&file, "aws_access_key_id = \"AKIAEXAMPLE\"\n").unwrap();
    refused("missing field `aws_secret_access_key`");
    fs::write(
        &file,
        "aws_access_key_id = \"A\"\naws_secret_access_key = 12345678\n",
    )
    .unwrap();
    refused("line 2");
    let out = t.cmd().args(["scan", "vault"]).assert_exit(2);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("12345678"));
}

#[test]
fn the_credentials_file_mode_binds_an_unprivileged_user_too() {
    let (t, moto, s3) = {
        let t = TestRepo::unprivileged();
        let moto = Moto::start();
        let s3 = moto.client();
        s3.create_bucket(BUCKET);
        (t, moto, s3)
    };
    s3.put(BUCKET, "lib/a.flac", b"a", &[]);
    t.sh_unprivileged(
        "mkdir -p .config/musicfs && cd .config/musicfs && \
         printf '[origin.vault]\\nurl = \"s3://music/lib\"\\ncredentials = \"vault.toml\"\\n' > config.toml && \
         printf 'aws_access_key_id = \"AKIAMUSICFSTEST\"\\naws_secret_access_key = \"moto-secret-key\"\\n' > vault.toml && \
         chmod 640 vault.toml",
    );
    let scan = || {
        let mut c = t.cmd_unprivileged();
        c.args(["scan", "vault"]);
        let mut c = c.command();
        c.envs(moto.env());
        c.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        c.output().expect("scan")
    };
    let out = scan();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("vault.toml") && stderr.contains("mode 0640"),
        "{stderr}"
    );
    t.sh_unprivileged("chmod 600 .config/musicfs/vault.toml");
    let out = scan();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_large_file_goes_up_in_parts_and_leaves_no_upload_behind() {
    let (t, moto, s3) = started();
    let src = t.mkdir("big");
    // 20 MiB and a bit: above the single-PUT limit (16 MiB), three 8 MiB parts.
    let data: Vec<u8> = (0..20 * 1024 * 1024 + 12_345u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("long.wav"), &data).unwrap();
    sync(&t, &moto, src.to_str().unwrap(), URL, &[]);
    let listed = s3.list(BUCKET);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].etag.ends_with("-3\""),
        "a multipart ETag: {listed:?}"
    );
    assert_eq!(s3.pending_uploads(BUCKET), 0, "the upload was completed");
    let (bytes, meta) = s3.get(BUCKET, "lib/long.wav");
    assert!(bytes == data, "the bytes");
    assert_eq!(
        meta.get("mtime"),
        Some(&rclone_mtime(&src.join("long.wav")))
    );

    let back = t.path("back");
    sync(&t, &moto, URL, back.to_str().unwrap(), &[]);
    assert_trees_equal(&src, &back);
}

#[test]
fn a_prefix_of_more_keys_than_one_listing_page_is_walked_whole() {
    let (t, moto, s3) = started();
    // moto, like S3, lists 1000 keys per page.
    let names: Vec<String> = (0..1_003)
        .map(|i| format!("lib/d{}/f{i:04}", i % 7))
        .collect();
    for name in &names {
        s3.put(BUCKET, name, b"x", &[("mtime", "1600000000.25")]);
    }
    let dst = t.path("dst");
    let s = sync(&t, &moto, URL, dst.to_str().unwrap(), &[]);
    assert_eq!(num(&s, "files"), 1_003, "{s}");
    let mut expected: Vec<String> = names
        .iter()
        .map(|n| n["lib/".len()..].to_string())
        .collect();
    expected.sort();
    assert_eq!(rel_files(&dst), expected);
}

#[test]
fn a_server_that_does_not_answer_is_unreachable() {
    let t = TestRepo::new();
    let port = support::sshd::free_port();
    let mut m = t.cmd();
    m.args(["scan", "s3://music/lib", "--retries", "0", "--timeout", "5"]);
    let mut c = m.command();
    c.env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "nothing-listens")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let out = c.output().expect("run musicfs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "exit 5, unreachable: {stderr}");
    assert!(stderr.contains("s3://music/lib"), "{stderr}");
    assert!(!stderr.contains("nothing-listens"), "{stderr}");
}

/// Credentials the AWS way: a profile of the shared credentials file, chosen with
/// `AWS_PROFILE`, its region from the shared config; a profile with a wrong key is refused.
#[test]
fn a_profile_of_the_shared_files_is_used() {
    let (moto, id, secret) = Moto::start_with_auth(BUCKET);
    let t = TestRepo::new();
    let src = t.mkdir("src");
    fs::write(src.join("a.flac"), b"bytes").unwrap();
    let aws = t.mkdir("aws");
    fs::write(
        aws.join("credentials"),
        format!(
            "[label]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n\n\
             [stale]\naws_access_key_id = {id}\naws_secret_access_key = not-{secret}\n"
        ),
    )
    .unwrap();
    fs::write(
        aws.join("config"),
        "[profile label]\nregion = us-east-1\n\n[profile stale]\nregion = us-east-1\n",
    )
    .unwrap();
    let sync_as = |profile: &str| {
        let mut m = t.cmd();
        m.args(["sync"]).arg(&src).arg("s3://music");
        let mut c = m.command();
        c.env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_PROFILE", profile)
            .env("AWS_CONFIG_FILE", aws.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", aws.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("MUSICFS_LOG", "trace")
            .env_remove("AWS_REGION")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        c.output().expect("run musicfs")
    };
    let worked = sync_as("label");
    let text = String::from_utf8_lossy(&worked.stderr);
    let said: Vec<&str> = text.lines().filter(|l| l.starts_with("musicfs")).collect();
    assert!(worked.status.success(), "{said:?}");
    assert!(
        !text.contains(&secret),
        "the secret is not logged, even at trace level"
    );
    let refused = sync_as("stale");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("musicfs"))
        .collect();
    assert!(
        matches!(refused.status.code(), Some(2 | 3)),
        "refused: {:?} {said:?}",
        refused.status
    );
    assert!(
        said.iter()
            .any(|l| l.contains("SignatureDoesNotMatch") || l.contains("(403)")),
        "{said:?}"
    );
    assert!(!stderr.contains(&secret));
}

// --- a retag rebuilt from the old object (UploadPartCopy) -----------------------------------

const MIB: usize = 1024 * 1024;

/// `len` bytes that repeat nowhere (a stand-in for compressed audio), from `seed`.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

/// A FLAC file: `fLaC`, STREAMINFO, a VORBIS_COMMENT block of `tag` bytes, then `audio`
/// (which starts with a frame sync): the tag at its start, as a tag editor leaves it.
fn flac(tag: usize, audio: &[u8]) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0, 0, 0, 34]);
    out.extend_from_slice(&[0u8; 34]);
    out.push(0x80 | 4);
    out.extend_from_slice(&(tag as u32).to_be_bytes()[1..]);
    out.extend((0..tag).map(|i| b"TITLE=Retagged "[i % 15]));
    out.extend_from_slice(audio);
    out
}

/// A 24 MiB FLAC track's audio.
fn audio() -> Vec<u8> {
    let mut audio = noise(24 * MIB, 7);
    audio[..2].copy_from_slice(&[0xff, 0xf8]);
    audio
}

/// The binary with its S3 requests through `proxy` to `moto`.
fn run_via(t: &TestRepo, moto: &Moto, proxy: &support::proxy::CountingProxy, args: &[&str]) {
    let mut m = t.cmd();
    m.json().args(args);
    let mut c = m.command();
    c.envs(moto.env())
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", proxy.port),
        )
        .env_remove("AWS_PROFILE");
    ok(c.output().expect("run musicfs"));
}

#[test]
fn a_retag_of_a_large_file_sends_about_one_part_and_the_object_is_exact() {
    let (t, moto, s3) = started();
    let proxy = support::proxy::CountingProxy::start(moto.port);
    let src = t.mkdir("src");
    let track = src.join("track.flac");
    let audio = audio();
    fs::write(&track, flac(4_000, &audio)).unwrap();
    let src_arg = src.to_str().unwrap().to_string();
    run_via(&t, &moto, &proxy, &["sync", &src_arg, URL]);
    let first = proxy.take();
    assert!(
        first > 24 * MIB as u64,
        "the first push sends it all: {first}"
    );

    // The tag grows by 300 bytes: every audio byte moves.
    let retagged = flac(4_300, &audio);
    fs::write(&track, &retagged).unwrap();
    run_via(&t, &moto, &proxy, &["sync", &src_arg, URL]);
    let second = proxy.take();
    // One 5 MiB part sent (the tag padded with the audio after it), the rest copied by the
    // server; both directions counted, so nothing was read back either.
    assert!(
        second < 6 * MIB as u64,
        "{second} bytes on the wire for a retag of a {} byte file",
        retagged.len()
    );
    let (bytes, meta) = s3.get(BUCKET, "lib/track.flac");
    assert!(bytes == retagged, "the object is the retagged file");
    assert_eq!(meta.get("mtime"), Some(&rclone_mtime(&track)));
    let etag = &state(&s3)["track.flac"].0;
    assert!(etag.ends_with("-2\""), "one part sent, one copied: {etag}");
    assert_eq!(s3.pending_uploads(BUCKET), 0, "the upload was completed");

    // Back from the bucket, as any reader gets it.
    let back = t.path("back");
    sync(&t, &moto, URL, back.to_str().unwrap(), &[]);
    assert_trees_equal(&src, &back);
}

#[test]
fn an_object_replaced_behind_musicfs_between_two_syncs_still_ends_exact() {
    let (t, moto, s3) = started();
    let src = t.mkdir("src");
    let track = src.join("track.flac");
    let audio = audio();
    fs::write(&track, flac(4_000, &audio)).unwrap();
    let src_arg = src.to_str().unwrap().to_string();
    sync(&t, &moto, &src_arg, URL, &[]);

    // Another tool puts other audio under the key (its last MiB differs); then the local
    // file is retagged. The sync's scan of the bucket reads the new object, and the new file
    // is built from what that object holds, never from what the old one held.
    let mut other = audio.clone();
    other[23 * MIB..].copy_from_slice(&noise(MIB, 99));
    s3.put(BUCKET, "lib/track.flac", &flac(4_000, &other), &[]);
    let retagged = flac(4_300, &audio);
    fs::write(&track, &retagged).unwrap();
    sync(&t, &moto, &src_arg, URL, &[]);
    let (bytes, _) = s3.get(BUCKET, "lib/track.flac");
    assert!(bytes == retagged, "the object is the retagged file");
    assert_eq!(s3.pending_uploads(BUCKET), 0);
}

/// Through the library: a file that says its bytes are those of an object, which is then
/// replaced before the commit. moto ignores `x-amz-copy-source-if-match`, so the copy is made
/// from the new object; the MD5 of the copied part gives it away and the file goes up whole.
#[test]
fn a_copy_from_an_object_replaced_meanwhile_falls_back_to_sending_it_whole() {
    use musicfs::origin::registry::Location;
    use std::io::Write;

    let moto = Moto::shared();
    let s3 = moto.client();
    s3.create_bucket("replaced");
    let location = musicfs::origin::S3Location {
        bucket: "replaced".into(),
        prefix: "lib".into(),
    };
    let options = musicfs::origin::OpenOptions {
        retries: 0,
        ..Default::default()
    };
    let dst = location.open_writable(&options).expect("open");
    let old = noise(12 * MIB, 1);
    let mut new = old.clone();
    new[..100].copy_from_slice(&[b'x'; 100]);
    let write = |name: &str, replace_with: Option<&[u8]>| {
        let key = format!("lib/{name}");
        s3.put("replaced", &key, &old, &[]);
        let stat = dst.stat(name.as_bytes()).unwrap().expect("the old object");
        if let Some(other) = replace_with {
            s3.put("replaced", &key, other, &[]);
        }
        let mut file = dst.create_temp(name.as_bytes()).unwrap();
        assert!(file.reuses_target(new.len() as u64));
        file.write_all(&new[..100]).unwrap();
        file.write_known(&new[100..], &stat.change, 100).unwrap();
        file.commit(0o644, 1_700_000_000_000_000_000).unwrap();
        let (bytes, _) = s3.get("replaced", &key);
        assert!(bytes == new, "{name}: the object is the new file");
        let listed = s3.list("replaced");
        let etag = &listed.iter().find(|o| o.key == key).unwrap().etag;
        etag.clone()
    };
    // The old object still there: 5 MiB sent, 7 MiB copied, a two-part upload.
    let etag = write("kept", None);
    assert!(etag.ends_with("-2\""), "built from parts: {etag}");
    // Replaced by other bytes of the same length: one plain PUT (12 MiB is under 16 MiB).
    let etag = write("swapped", Some(&noise(12 * MIB, 2)));
    assert!(!etag.contains('-'), "sent whole: {etag}");
    assert_eq!(
        s3.pending_uploads("replaced"),
        0,
        "the failed upload was aborted"
    );
}

// --- what a push asks of the bucket, request by request -------------------------------------

/// A proxy in front of moto that forwards every byte and keeps the request line of each HTTP
/// request the client sends (a line `METHOD TARGET HTTP/1.x` at the start of the stream or
/// after a CRLF; audio noise holds none), and the bytes each way.
mod requests {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// One request: its method and target (path and query).
    #[derive(Clone, Debug)]
    pub struct Request {
        pub method: String,
        pub target: String,
    }

    impl Request {
        /// A ListObjectsV2 (a GET of the bucket with `list-type=2`).
        pub fn is_listing(&self) -> bool {
            self.method == "GET" && self.target.contains("list-type=2")
        }
    }

    /// What went through the proxy since the last [`Counter::take`].
    #[derive(Debug, Default)]
    pub struct Traffic {
        pub requests: Vec<Request>,
        pub up: u64,
        pub down: u64,
    }

    impl Traffic {
        /// Requests with this method, listings left out.
        pub fn of(&self, method: &str) -> Vec<&Request> {
            self.requests
                .iter()
                .filter(|r| r.method == method && !r.is_listing())
                .collect()
        }
    }

    #[derive(Default)]
    struct Shared {
        requests: Mutex<Vec<Request>>,
        up: AtomicU64,
        down: AtomicU64,
        open: AtomicU64,
    }

    pub struct Counter {
        pub port: u16,
        shared: Arc<Shared>,
    }

    /// Request lines among the CRLF-ended lines of `carry` + `data`; the unfinished rest is
    /// kept in `carry` (its last 8 KiB: no request line is longer).
    fn scan(carry: &mut Vec<u8>, data: &[u8], found: &mut Vec<Request>) {
        carry.extend_from_slice(data);
        let mut start = 0;
        while let Some(at) = carry[start..].windows(2).position(|w| w == b"\r\n") {
            let line = &carry[start..start + at];
            if let Ok(line) = std::str::from_utf8(line) {
                let parts: Vec<&str> = line.split(' ').collect();
                if parts.len() == 3
                    && ["GET", "PUT", "POST", "HEAD", "DELETE"].contains(&parts[0])
                    && parts[2].starts_with("HTTP/1.")
                {
                    found.push(Request {
                        method: parts[0].to_string(),
                        target: parts[1].to_string(),
                    });
                }
            }
            start += at + 2;
        }
        carry.drain(..start);
        if carry.len() > 8192 {
            carry.drain(..carry.len() - 8192);
        }
    }

    impl Counter {
        pub fn start(target: u16) -> Counter {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let shared = Arc::new(Shared::default());
            let all = Arc::clone(&shared);
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { return };
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                        continue;
                    };
                    for (up, mut from, mut to) in [
                        (
                            true,
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                        ),
                        (false, server, client),
                    ] {
                        let shared = Arc::clone(&all);
                        shared.open.fetch_add(1, Ordering::SeqCst);
                        std::thread::spawn(move || {
                            let mut buf = vec![0u8; 65536];
                            let mut carry = Vec::new();
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                                if up {
                                    shared.up.fetch_add(n as u64, Ordering::SeqCst);
                                    let mut found = Vec::new();
                                    scan(&mut carry, &buf[..n], &mut found);
                                    shared.requests.lock().unwrap().extend(found);
                                } else {
                                    shared.down.fetch_add(n as u64, Ordering::SeqCst);
                                }
                            }
                            let _ = to.shutdown(Shutdown::Write);
                            shared.open.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                }
            });
            Counter { port, shared }
        }

        /// What went through since the last call, once every connection has closed.
        pub fn take(&self) -> Traffic {
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.shared.open.load(Ordering::SeqCst) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "connections still open after 60 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Traffic {
                requests: std::mem::take(&mut *self.shared.requests.lock().unwrap()),
                up: self.shared.up.swap(0, Ordering::SeqCst),
                down: self.shared.down.swap(0, Ordering::SeqCst),
            }
        }
    }

    #[test]
    fn request_lines_split_across_reads_are_found_once() {
        let stream = b"PUT /b/k HTTP/1.1\r\nHost: x\r\n\r\nbody GET / HTTP/1.1 inline\r\nHEAD /b/k2 HTTP/1.1\r\n\r\n";
        for cut in 0..stream.len() {
            let (mut carry, mut found) = (Vec::new(), Vec::new());
            scan(&mut carry, &stream[..cut], &mut found);
            scan(&mut carry, &stream[cut..], &mut found);
            let methods: Vec<&str> = found.iter().map(|r| r.method.as_str()).collect();
            assert_eq!(methods, ["PUT", "HEAD"], "cut at {cut}");
        }
    }
}

/// The binary through `counter` to `moto`; its JSON summary.
fn run_counted(
    t: &TestRepo,
    moto: &Moto,
    counter: &requests::Counter,
    args: &[&str],
) -> serde_json::Value {
    let mut m = t.cmd();
    m.json().args(args);
    let mut c = m.command();
    c.envs(moto.env())
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", counter.port),
        )
        .env_remove("AWS_PROFILE");
    summary_of(&ok(c.output().expect("run musicfs")))
}

/// A FLAC track of an album: STREAMINFO, the album's `cover` in a PICTURE block, a
/// VORBIS_COMMENT naming track `n`, then audio of its own.
fn album_track(cover: &[u8], n: u32) -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0, 0, 0, 34]);
    out.extend_from_slice(&[0u8; 34]);
    let mut picture = 3u32.to_be_bytes().to_vec();
    picture.extend_from_slice(&10u32.to_be_bytes());
    picture.extend_from_slice(b"image/jpeg");
    picture.extend_from_slice(&[0u8; 4 + 16]);
    picture.extend_from_slice(&(cover.len() as u32).to_be_bytes());
    picture.extend_from_slice(cover);
    out.push(6);
    out.extend_from_slice(&(picture.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&picture);
    let tag = format!("TITLE=Track {n:02}");
    let mut comment = 0u32.to_le_bytes().to_vec();
    comment.extend_from_slice(&1u32.to_le_bytes());
    comment.extend_from_slice(&(tag.len() as u32).to_le_bytes());
    comment.extend_from_slice(tag.as_bytes());
    out.push(0x80 | 4);
    out.extend_from_slice(&(comment.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&comment);
    let mut audio = noise(300 * 1024, 100 + n);
    audio[..2].copy_from_slice(&[0xff, 0xf8]);
    out.extend_from_slice(&audio);
    out
}

/// Two albums of `tracks` tracks under `root`, each track with its album's cover.
fn two_albums(root: &Path, tracks: u32) {
    for album in 1..=2u32 {
        let dir = root.join(format!("Artist/Album {album}"));
        fs::create_dir_all(&dir).unwrap();
        let cover = noise(200 * 1024, album);
        for n in 1..=tracks {
            let track = album_track(&cover, album * 100 + n);
            fs::write(dir.join(format!("{n:02} Track.flac")), track).unwrap();
        }
    }
}

#[test]
fn an_initial_push_reads_nothing_back_from_the_bucket() {
    let (t, moto, s3) = started();
    let counter = requests::Counter::start(moto.port);
    let src = t.mkdir("src");
    two_albums(&src, 10);
    let src_arg = src.to_str().unwrap().to_string();
    let s = run_counted(&t, &moto, &counter, &["sync", &src_arg, URL]);
    let push = counter.take();
    assert_eq!(num(&s, "files_changed"), 20, "{s}");
    // Each cover is in ten tracks: nine of them used to fetch it back from the first.
    let gets = push.of("GET");
    assert!(gets.is_empty(), "objects read back: {gets:?}");
    assert_eq!(push.of("PUT").len(), 20, "{:?}", push.requests);
    let bytes: u64 = files_in(&src)
        .keys()
        .map(|rel| fs::metadata(src.join(rel)).unwrap().len())
        .sum();
    assert!(
        push.down < 64 * 1024,
        "{} bytes down for a push of {bytes}",
        push.down
    );
    // Every byte of every file was written to the bucket, and the summary says so.
    assert_eq!(num(&s, "bytes_transferred"), bytes, "{s}");
    assert!(
        push.up >= bytes && push.up < bytes + 256 * 1024,
        "{} bytes up for a push of {bytes}",
        push.up
    );
    assert_eq!(state(&s3).len(), 20);

    let back = t.path("back");
    sync(&t, &moto, URL, back.to_str().unwrap(), &[]);
    assert_trees_equal(&src, &back);
}

#[test]
fn a_push_that_changes_nothing_lists_the_prefix_and_writes_nothing() {
    let (t, moto, _s3) = started();
    let counter = requests::Counter::start(moto.port);
    let src = t.mkdir("src");
    two_albums(&src, 3);
    let src_arg = src.to_str().unwrap().to_string();
    run_counted(&t, &moto, &counter, &["sync", "--delete", &src_arg, URL]);
    counter.take();

    let s = run_counted(&t, &moto, &counter, &["sync", "--delete", &src_arg, URL]);
    let again = counter.take();
    assert_eq!(num(&s, "files_changed"), 0, "{s}");
    for method in ["GET", "PUT", "POST", "DELETE"] {
        let asked = again.of(method);
        assert!(asked.is_empty(), "{method}: {asked:?}");
    }
    // The walk's one HeadObject per object (for rclone's mtime and mode), no second walk
    // after steps that store nothing (a bucket keeps no directory metadata).
    let object_heads = again
        .of("HEAD")
        .iter()
        .filter(|r| r.target.starts_with("/music/lib/"))
        .count();
    assert!(object_heads <= 6, "{:?}", again.requests);
    // Listings of the prefix: the root's stat, the walk, the root's stat after the sync (the
    // one-key listing of `config/` that asks whether the prefix is a chunk store is apart).
    let listings = again
        .requests
        .iter()
        .filter(|r| r.is_listing() && !r.target.contains("config%2F"))
        .count();
    assert!(listings <= 3, "{:?}", again.requests);
}

#[test]
fn a_pull_after_the_bucket_was_reorganised_reads_no_moved_object_again() {
    let (t, moto, _s3) = started();
    let counter = requests::Counter::start(moto.port);
    let src = t.mkdir("src");
    two_albums(&src, 3);
    let src_arg = src.to_str().unwrap().to_string();
    // The pulling site has a repository of its own: it knows the objects only by its scans.
    let site = TestRepo::new();
    let back = site.path("back");
    let back_arg = back.to_str().unwrap().to_string();
    run_counted(&t, &moto, &counter, &["sync", "--delete", &src_arg, URL]);
    run_counted(
        &site,
        &moto,
        &counter,
        &["sync", "--delete", URL, &back_arg],
    );
    counter.take();

    // Every track into a new folder; the push renames the objects by server-side copies.
    fs::create_dir_all(src.join("Rock")).unwrap();
    fs::rename(src.join("Artist"), src.join("Rock/Artist")).unwrap();
    run_counted(&t, &moto, &counter, &["sync", "--delete", &src_arg, URL]);
    counter.take();

    let s = run_counted(
        &site,
        &moto,
        &counter,
        &["sync", "--delete", URL, &back_arg],
    );
    let pull = counter.take();
    assert_trees_equal(&src, &back);
    // The objects under new keys carry the ETags, sizes and mtimes of those that vanished:
    // the scan takes them as moved, and the sync finds their chunks in the old files.
    let gets = pull.of("GET");
    assert!(
        gets.iter().all(|r| !r.target.starts_with("/music/lib/")),
        "objects read again: {gets:?}"
    );
    assert!(pull.down < 64 * 1024, "{} bytes down: {s}", pull.down);
    assert_eq!(num(&s, "bytes_transferred"), 0, "{s}");
}
