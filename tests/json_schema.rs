//! `--json` speaks one vocabulary, and `docs/json.md` is its schema: every line every command
//! prints has a documented `type`, carries only the fields `docs/json.md` lists for it, and
//! every summary has exactly its documented fields, among them `command`, `duration_s` and
//! `problems`. Sizes are never `size`, `len` or `bytes_total`, failures never `errors`.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde_json::Value;
use util::{flip_byte_keep_mtime, parse_json_lines, TestRepo};

/// Field names the vocabulary replaced; none may appear at any depth of any line.
const RETIRED: &[&str] = &[
    "size",
    "len",
    "bytes_total",
    "files_total",
    "errors",
    "files_checked",
    "bytes_checked",
];

// Damage needs a file changed behind unchanged metadata (the loop-mounted ext4 of
// tests/verify.rs); its lines are checked there. Here a changed file is an edit.

/// The schema `docs/json.md` writes down: for `summary:COMMAND` and `line:TYPE`, the fields
/// its table lists.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let text = fs::read_to_string(util::manifest_dir().join("docs/json.md")).expect("docs/json.md");
    let mut schema: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("### ") {
            // `### \`sync\` summary`, or `### \`problem\`` (an event), or a heading of prose.
            current = match (backticked(rest).first(), rest.contains("summary")) {
                _ if rest.contains("every summary") => vec!["summary:*".to_string()],
                (Some(name), true) => vec![format!("summary:{name}")],
                (Some(_), false) => backticked(rest)
                    .into_iter()
                    .map(|t| format!("line:{t}"))
                    .collect(),
                (None, _) => Vec::new(),
            };
            for key in &current {
                schema.entry(key.clone()).or_default();
            }
        } else if line.starts_with("## ") {
            current.clear();
        } else if let Some(row) = line.strip_prefix("| `") {
            let first_cell = row.split(" |").next().unwrap_or_default();
            let fields = backticked(&format!("`{first_cell}"));
            for key in &current {
                schema
                    .get_mut(key)
                    .expect("section")
                    .extend(fields.iter().cloned());
            }
        }
    }
    schema
}

/// The `backticked` names in `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The keys of `value` at every depth.
fn all_keys(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                all_keys(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| all_keys(v, out)),
        _ => {}
    }
}

/// Runs `musicfs --json ARGS`, whatever its exit code, and returns its lines.
fn run(t: &TestRepo, args: &[&str]) -> Vec<Value> {
    let mut cmd = t.cmd();
    cmd.json().args(args);
    let out = cmd.output();
    let lines = parse_json_lines(&out.stdout);
    assert!(!lines.is_empty(), "{args:?} printed no JSON: {out:?}");
    lines
}

#[test]
fn every_line_of_every_command_is_documented_in_docs_json_md() {
    let schema = documented();
    let t = TestRepo::new();
    let src = t.fixtures("src");
    let dst = t.path("dst");
    let (src_s, dst_s) = (
        src.to_str().expect("utf-8").to_string(),
        dst.to_str().expect("utf-8").to_string(),
    );
    let file = src.join("Aurora Tones/First Light/01 Dawn.mp3");
    let file_s = file.to_str().expect("utf-8").to_string();
    let missing = t.path("not-there");
    let missing_s = missing.to_str().expect("utf-8").to_string();

    let mut runs: Vec<(&str, Vec<Value>)> = Vec::new();
    runs.push(("scan", run(&t, &["scan", &src_s])));
    runs.push(("sync", run(&t, &["sync", &src_s, &dst_s, "--dry-run"])));
    runs.push(("sync", run(&t, &["sync", &src_s, &dst_s])));
    fs::write(src.join("new.txt"), b"a new file").expect("write");
    fs::remove_file(src.join("Riff Raff/Chunks/01 Info Block.wav")).expect("remove");
    runs.push(("diff", run(&t, &["diff", &src_s, &dst_s])));
    flip_byte_keep_mtime(&dst.join("Aurora Tones/First Light/02 Zenith.mp3"), 20_000);
    fs::remove_file(dst.join("Aurora Tones/First Light/03 Dusk.mp3")).expect("remove");
    runs.push(("verify", run(&t, &["verify", &dst_s])));
    runs.push((
        "verify",
        run(&t, &["verify", &dst_s, "--repair-from", &src_s]),
    ));
    runs.push(("snapshots", run(&t, &["snapshots"])));
    runs.push(("inspect", run(&t, &["inspect", &file_s, &missing_s])));
    runs.push(("forget", run(&t, &["forget", "--keep-last", "1"])));
    runs.push(("gc", run(&t, &["gc"])));
    runs.push(("check", run(&t, &["check"])));
    runs.push(("repair-index", run(&t, &["repair-index"])));
    runs.push(("config", run(&t, &["config"])));
    runs.push(("completions", run(&t, &["completions", "bash"])));
    runs.push(("verify", run(&t, &["verify", &missing_s])));
    let fresh = t.path("fresh-repo");
    runs.push(("init", run(&t, &["init", fresh.to_str().expect("utf-8")])));

    let mut seen = BTreeSet::new();
    for (command, lines) in &runs {
        let last = lines.last().expect("a line");
        assert!(
            matches!(last["type"].as_str(), Some("summary" | "error" | "config" | "completions")),
            "{command}: the last line is a summary, an error, or the one line of config and completions: {last}"
        );
        for line in lines {
            let ty = line["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{command}: no type in {line}"));
            let key = match ty {
                "summary" => format!("summary:{command}"),
                other => format!("line:{other}"),
            };
            let fields = schema
                .get(&key)
                .unwrap_or_else(|| panic!("{command}: `{key}` is not in docs/json.md: {line}"));
            let keys: BTreeSet<String> = line
                .as_object()
                .expect("an object")
                .keys()
                .filter(|k| *k != "type")
                .cloned()
                .collect();
            let mut allowed = fields.clone();
            if ty == "summary" {
                allowed.extend(schema["summary:*"].iter().cloned());
                assert_eq!(
                    keys, allowed,
                    "{command}: the summary's fields are not the documented ones"
                );
                assert_eq!(line["command"], *command, "{line}");
                assert!(
                    line["duration_s"].is_f64() || line["duration_s"].is_u64(),
                    "{line}"
                );
                assert!(line["problems"].is_u64(), "{line}");
            } else {
                let undocumented: Vec<&String> = keys.difference(&allowed).collect();
                assert!(
                    undocumented.is_empty(),
                    "{command}: {ty} line has fields docs/json.md does not list: {undocumented:?} in {line}"
                );
            }
            let mut every = BTreeSet::new();
            all_keys(line, &mut every);
            for retired in RETIRED {
                assert!(
                    !every.contains(*retired),
                    "{command}: `{retired}` in {line}"
                );
            }
            seen.insert(key);
        }
    }
    // The scenario reaches the lines it was written for: failures and verdicts included.
    for key in [
        "line:file_read",
        "line:action",
        "line:added",
        "line:removed",
        "line:edited",
        "line:missing",
        "line:snapshot",
        "line:file",
        "line:problem",
        "line:keep",
        "line:remove",
        "line:error",
        "line:config",
        "line:completions",
        "summary:init",
    ] {
        assert!(
            seen.contains(key),
            "the scenario printed no `{key}`: {seen:?}"
        );
    }
}

#[test]
fn a_failed_command_ends_with_an_error_line_naming_its_exit_code() {
    let t = TestRepo::new();
    let mut cmd = t.cmd();
    cmd.json().args(["verify", "/nonexistent/musicfs-dir"]);
    let out = cmd.assert_exit(2);
    let lines = parse_json_lines(&out.stdout);
    let last = lines.last().expect("a line");
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["exit_code"], 2, "{last}");
    assert_eq!(last["command"], "verify", "{last}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("/nonexistent/musicfs-dir")),
        "{last}"
    );
    // The same line on stderr, for people.
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/musicfs-dir"));
}

#[test]
fn completions_with_json_wrap_the_script() {
    let t = TestRepo::new();
    let mut cmd = t.cmd();
    cmd.json().args(["completions", "zsh"]);
    let lines = parse_json_lines(&cmd.assert_exit(0).stdout);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "completions");
    assert_eq!(lines[0]["shell"], "zsh");
    let plain = t.cmd().args(["completions", "zsh"]).stdout();
    assert_eq!(lines[0]["script"].as_str(), Some(plain.as_str()));
}
