//! The configuration file through the binary: precedence (command line, environment, file
//! — a named origin's table before `[defaults]` — and default), named origins wherever an
//! origin is taken, `musicfs config`, and malformed files refused by every command that reads
//! them with the file, line and key.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use util::{init_repository, TestRepo};

/// A scratch home with `~/.config/musicfs/config.toml` holding `text`.
struct Home {
    t: TestRepo,
}

impl Home {
    fn new(text: &str) -> Home {
        let t = TestRepo::new();
        let home = Home { t };
        home.write_config(text);
        home
    }

    fn write_config(&self, text: &str) {
        let dir = self.home().join(".config/musicfs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), text).unwrap();
    }

    fn home(&self) -> PathBuf {
        self.t.path("home")
    }

    fn config_file(&self) -> PathBuf {
        self.home().join(".config/musicfs/config.toml")
    }

    /// The binary with this home and nothing of the caller's environment that musicfs reads;
    /// run in the scratch directory (so bare names are looked up there). No `--repo`.
    fn command(&self) -> Command {
        let mut c = Command::new(util::bin());
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("MUSICFS_") && var != "MUSICFS_TEST_BIN" {
                c.env_remove(var);
            }
        }
        c.env_remove("SSH_AUTH_SOCK")
            .env("HOME", self.home())
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("NO_COLOR", "1")
            .current_dir(self.t.root())
            .stdin(std::process::Stdio::null());
        c
    }
}

fn run(mut c: Command) -> Output {
    c.output().expect("run musicfs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config_json(home: &Home, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut c = home.command();
    c.arg("--json").arg("config").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn setting<'a>(config: &'a Value, key: &str) -> (&'a Value, &'a str) {
    let row = config["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in {config}"));
    (&row["value"], row["source"].as_str().unwrap())
}

/// Which `--rsh` command a sync of the named origin `box` ran, for each combination of the
/// four sources: the one of highest precedence, every time. The commands do not exist, so
/// the sync stops at once naming the one it tried.
#[test]
fn the_remote_shell_comes_from_the_highest_source_that_sets_it() {
    // (command line, environment, [origin.box], [defaults]) → the command run.
    let cases: &[(bool, bool, bool, bool, &str)] = &[
        (true, true, true, true, "/nonexistent/cli-ssh"),
        (false, true, true, true, "/nonexistent/env-ssh"),
        (false, false, true, true, "/nonexistent/origin-ssh"),
        (false, false, false, true, "/nonexistent/defaults-ssh"),
        (true, false, false, false, "/nonexistent/cli-ssh"),
        (false, true, false, true, "/nonexistent/env-ssh"),
        (true, false, true, false, "/nonexistent/cli-ssh"),
    ];
    for &(cli, env, origin, defaults, expected) in cases {
        let mut text = String::new();
        if defaults {
            text.push_str("[defaults]\nrsh = \"/nonexistent/defaults-ssh\"\n");
        }
        text.push_str("[origin.box]\nurl = \"nas:/music\"\n");
        if origin {
            text.push_str("rsh = \"/nonexistent/origin-ssh\"\n");
        }
        let home = Home::new(&text);
        let mut c = home.command();
        c.arg("--repo").arg(home.t.repo()).arg("sync");
        if cli {
            c.args(["--rsh", "/nonexistent/cli-ssh"]);
        }
        if env {
            c.env("MUSICFS_RSH", "/nonexistent/env-ssh");
        }
        c.arg("box").arg(home.t.path("out"));
        let out = run(c);
        let err = stderr(&out);
        assert_ne!(out.status.code(), Some(0), "{err}");
        assert!(
            err.contains(&format!("cannot run {expected}")),
            "case {:?}: expected {expected}: {err}",
            (cli, env, origin, defaults)
        );
        assert!(err.contains("nas:/music"), "the origin is not named: {err}");
    }
}

/// The repository: `--repo`, then `MUSICFS_REPO`, then the file's `repo`, then the default;
/// each is the one `snapshots` reads (each repository holds a different number of snapshots).
#[test]
fn the_repository_comes_from_the_highest_source_that_names_it() {
    let home = Home::new("");
    let music = home.t.mkdir("music");
    std::fs::write(music.join("a.txt"), b"a").unwrap();
    let repos: Vec<PathBuf> = ["cli", "env", "file"]
        .iter()
        .map(|n| home.t.path(&format!("repo-{n}")))
        .collect();
    // repo-cli holds 1 snapshot, repo-env 2, repo-file 3, the default 4.
    let default = home.home().join(".local/share/musicfs");
    for (i, repo) in repos.iter().chain([&default]).enumerate() {
        init_repository(repo);
        for _ in 0..=i {
            std::fs::write(
                music.join("a.txt"),
                format!("{i}{:?}", std::time::Instant::now()),
            )
            .unwrap();
            let mut c = home.command();
            c.arg("--repo").arg(repo).args(["scan"]).arg(&music);
            let out = run(c);
            assert!(out.status.success(), "{}", stderr(&out));
        }
    }
    let file_line = format!("repo = \"{}\"\n", repos[2].display());
    let cases: &[(bool, bool, bool, usize, &str)] = &[
        (true, true, true, 1, "command line"),
        (false, true, true, 2, "environment MUSICFS_REPO"),
        (false, false, true, 3, "file repo"),
        (false, false, false, 4, "default"),
        (true, false, true, 1, "command line"),
    ];
    for &(cli, env, file, snapshots, source) in cases {
        home.write_config(if file { &file_line } else { "" });
        let with = |c: &mut Command| {
            if cli {
                c.arg("--repo").arg(&repos[0]);
            }
            if env {
                c.env("MUSICFS_REPO", &repos[1]);
            }
        };
        let mut c = home.command();
        with(&mut c);
        c.args(["--json", "snapshots"]);
        let out = run(c);
        assert!(out.status.success(), "{}", stderr(&out));
        let lines = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("\"snapshot\""))
            .count();
        assert_eq!(lines, snapshots, "case {:?}", (cli, env, file));
        let mut c = home.command();
        with(&mut c);
        c.args(["--json", "config"]);
        let out = run(c);
        let config: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(setting(&config, "repo").1, source, "{config}");
    }
}

#[test]
fn a_named_origin_works_wherever_an_origin_is_taken() {
    let home = Home::new("");
    let music = home.t.mkdir("music");
    std::fs::create_dir_all(music.join("Album")).unwrap();
    std::fs::write(music.join("Album/01.flac"), b"not really audio").unwrap();
    std::fs::write(music.join("Album/01.flac.part"), b"an unfinished download").unwrap();
    home.write_config(&format!(
        "[origin.library]\nurl = \"{}\"\nchecksum = true\nexclude = [\"*.part\"]\n",
        music.display()
    ));
    let repo = home.t.repo();
    let out_dir = home.t.path("copy");
    let mut c = home.command();
    c.arg("--repo")
        .arg(repo)
        .args(["sync", "library"])
        .arg(&out_dir);
    let out = run(c);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(out_dir.join("Album/01.flac")).unwrap(),
        b"not really audio"
    );
    // The origin's own exclude list applies.
    assert!(!out_dir.join("Album/01.flac.part").exists());
    // scan, snapshots and diff take the name too.
    for args in [
        vec!["scan", "library"],
        vec!["snapshots", "library"],
        vec!["verify", "library"],
        vec!["diff", "library"],
    ] {
        let mut c = home.command();
        c.arg("--repo").arg(repo).arg("--json").args(&args);
        let out = run(c);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr(&out)
        );
        if args[0] == "snapshots" {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains(&*music.canonicalize().unwrap().to_string_lossy()),
                "{text}"
            );
        }
    }
    // NAME@TIME in diff: the time is read after the name is expanded: nothing before 2000, the
    // latest snapshot by 2099 (no differences from the library).
    let diff = |at: &str| {
        let mut c = home.command();
        c.arg("--repo")
            .arg(repo)
            .args(["diff", &format!("library@{at}"), "library"]);
        run(c)
    };
    let out = diff("2000-01-01");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}@2000-01-01", music.display())),
        "{}",
        stderr(&out)
    );
    let out = diff("2099-01-01");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A directory of the same name here: ambiguous, refused before anything is read.
    let clash = home.t.mkdir("library");
    let mut c = home.command();
    c.arg("--repo")
        .arg(repo)
        .args(["sync", "--delete"])
        .arg(&out_dir)
        .arg("library");
    let out = run(c);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("library: both the origin [origin.library]") && err.contains("./library"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&clash).unwrap().count(), 0);
    assert!(out_dir.join("Album/01.flac").exists());
}

#[test]
fn the_config_command_shows_each_setting_and_its_source() {
    let home = Home::new(
        "[defaults]\ntimeout = 12\nbwlimit = \"10M\"\n\n[origin.nas]\nurl = \"nas:/music\"\nbwlimit = \"1M\"\nsftp = true\n",
    );
    let all = config_json(&home, &[], &[("MUSICFS_RETRY_FOR", "1h")]);
    assert_eq!(all["file_exists"], true);
    assert_eq!(
        setting(&all, "timeout"),
        (&Value::from(12), "file [defaults]")
    );
    assert_eq!(
        setting(&all, "bwlimit"),
        (&Value::from(10 * 1024 * 1024), "file [defaults]")
    );
    assert_eq!(
        setting(&all, "retry_for"),
        (&Value::from("1h"), "environment MUSICFS_RETRY_FOR")
    );
    assert_eq!(setting(&all, "sftp"), (&Value::from(false), "default"));
    assert_eq!(all["origins"][0]["name"], "nas");
    assert_eq!(all["origins"][0]["url"], "nas:/music");

    let nas = config_json(&home, &["nas"], &[("MUSICFS_TIMEOUT", "5")]);
    assert_eq!(
        setting(&nas, "bwlimit"),
        (&Value::from(1024 * 1024), "file [origin.nas]")
    );
    assert_eq!(
        setting(&nas, "sftp"),
        (&Value::from(true), "file [origin.nas]")
    );
    assert_eq!(
        setting(&nas, "timeout"),
        (&Value::from("5"), "environment MUSICFS_TIMEOUT")
    );

    // Text: one line per setting with its source.
    let mut c = home.command();
    c.arg("config");
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("file: {}", home.config_file().display())),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("timeout") && l.ends_with("(file [defaults])")),
        "{text}"
    );

    // An unknown name.
    let mut c = home.command();
    c.args(["config", "nothere"]);
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nothere: no [origin.nothere]"),
        "{}",
        stderr(&out)
    );
}

/// A bad file stops every command that reads it, with one line naming the file, the line and
/// the key, and exit 2; nothing is synced.
#[test]
fn a_malformed_file_is_refused_naming_file_line_and_key() {
    let cases: &[(&str, &str, usize)] = &[
        (
            "[defaults]\ntimeout = 30\ntimout = 5\n",
            "defaults.timout",
            3,
        ),
        ("[defaults]\n\nbwlimit = \"fast\"\n", "defaults.bwlimit", 3),
        ("[defaults]\ntimeout = \"soon\"\n", "defaults.timeout", 2),
        ("[origin.nas]\nsftp = true\n", "origin.nas.url", 1),
        (
            "[origin.nas]\nurl = \"nas:/m\"\nretry_for = \"x\"\n",
            "origin.nas.retry_for",
            3,
        ),
        ("colour = \"always\"\n", "colour", 1),
    ];
    for (text, key, line) in cases {
        let home = Home::new(text);
        let music = home.t.mkdir("music");
        std::fs::write(music.join("a.txt"), b"a").unwrap();
        let dst = home.t.path("dst");
        for args in [
            vec!["sync".into(), music.clone(), dst.clone()],
            vec!["scan".into(), music.clone()],
            vec![PathBuf::from("snapshots")],
            vec![PathBuf::from("config")],
        ] {
            let mut c = home.command();
            c.arg("--repo").arg(home.t.repo()).args(&args);
            let out = run(c);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{args:?} {text:?}: {err}");
            let expected = format!("{}:{line}: {key}: ", home.config_file().display());
            assert!(
                err.contains(&expected),
                "{text:?}: wanted {expected}: {err}"
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        }
        assert!(
            !dst.exists(),
            "{text:?}: synced despite a bad configuration"
        );
    }
}

/// `max_delete` in the file guards a `--delete`; `--max-delete` on the command line overrides
/// it.
#[test]
fn a_default_from_the_file_guards_a_delete_and_the_command_line_overrides_it() {
    let home = Home::new("[defaults]\nmax_delete = 1\n");
    let music = home.t.mkdir("music");
    let dst = home.t.mkdir("dst");
    for n in 0..3 {
        std::fs::write(dst.join(format!("old{n}.txt")), b"x").unwrap();
    }
    let sync = |extra: &[&str]| {
        let mut c = home.command();
        c.arg("--repo")
            .arg(home.t.repo())
            .args(["sync", "--delete"])
            .args(extra)
            .arg(&music)
            .arg(&dst);
        run(c)
    };
    let out = sync(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(files(&dst), 3);
    let out = sync(&["--max-delete", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(files(&dst), 0);
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// `credentials` names an S3 credentials file, in an origin's table or in `[defaults]`: a
/// relative path is read from the configuration's directory, `~/` from the home; `musicfs
/// config` shows the path and its source, never the file's content; an empty path is refused
/// naming file, line and key.
#[test]
fn a_credentials_file_is_shown_by_path_and_never_by_content() {
    let home = Home::new(
        "[defaults]\ncredentials = \"~/keys/default.toml\"\n\n[origin.vault]\nurl = \"s3://music/lib\"\ncredentials = \"vault.toml\"\n",
    );
    let secret_file = home.home().join(".config/musicfs/vault.toml");
    std::fs::write(
        &secret_file,
        "aws_access_key_id = \"AKIAEXAMPLE\"\naws_secret_access_key = \"sup3r-s3cret\"\n",
    )
    .unwrap();
    let all = config_json(&home, &[], &[]);
    let default_file = home.home().join("keys/default.toml");
    assert_eq!(
        setting(&all, "credentials"),
        (
            &Value::from(default_file.display().to_string()),
            "file [defaults]"
        )
    );
    let vault = config_json(&home, &["vault"], &[]);
    assert_eq!(
        setting(&vault, "credentials"),
        (
            &Value::from(secret_file.display().to_string()),
            "file [origin.vault]"
        )
    );
    let mut c = home.command();
    c.args(["config", "vault"]);
    let out = run(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("vault.toml") && !text.contains("sup3r-s3cret"),
        "{text}"
    );

    home.write_config("[origin.vault]\nurl = \"s3://music/lib\"\ncredentials = \"\"\n");
    let mut c = home.command();
    c.arg("config");
    let out = run(c);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(
        message.contains("config.toml:3: origin.vault.credentials: empty"),
        "{message}"
    );
}
