use clap::Args;
use serde_json::{json, Value};

use super::{exit, GlobalArgs, DEFAULT_RETRY_FOR, DEFAULT_TIMEOUT_SECS};
use crate::config::{Config, Settings};
use crate::error::Error;
use crate::report::print_json;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// An origin named in the configuration file: show the settings a command given it uses
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

/// Where a setting's value came from.
enum Source {
    CommandLine,
    Environment(&'static str),
    File(String),
    Default,
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::CommandLine => "command line".into(),
            Source::Environment(var) => format!("environment {var}"),
            Source::File(table) => format!("file {table}"),
            Source::Default => "default".into(),
        }
    }
}

struct Row {
    key: &'static str,
    value: Value,
    shown: String,
    source: Source,
}

/// One setting: its key, its environment variable, how to read it from a table, how to show
/// it, and its built-in default.
struct Setting {
    key: &'static str,
    env: Option<&'static str>,
    from_file: fn(&Settings) -> Option<Value>,
    default: fn() -> Value,
}

fn setting_table() -> Vec<Setting> {
    fn some<T: Into<Value>>(v: Option<T>) -> Option<Value> {
        v.map(Into::into)
    }
    vec![
        Setting {
            key: "timeout",
            env: Some("MUSICFS_TIMEOUT"),
            from_file: |s| some(s.timeout),
            default: || json!(DEFAULT_TIMEOUT_SECS),
        },
        Setting {
            key: "retries",
            env: Some("MUSICFS_RETRIES"),
            from_file: |s| some(s.retries),
            default: || json!("3 until the host answers once, then only retry_for"),
        },
        Setting {
            key: "retry_for",
            env: Some("MUSICFS_RETRY_FOR"),
            from_file: |s| {
                s.retry_for
                    .map(|d| json!(humantime::format_duration(d).to_string()))
            },
            default: || json!(humantime::format_duration(DEFAULT_RETRY_FOR).to_string()),
        },
        Setting {
            key: "rsh",
            env: Some("MUSICFS_RSH"),
            from_file: |s| some(s.rsh.clone()),
            default: || json!(null),
        },
        Setting {
            key: "accept_new_host_key",
            env: None,
            from_file: |s| some(s.accept_new_host_key),
            default: || json!(false),
        },
        Setting {
            key: "bwlimit",
            env: Some("MUSICFS_BWLIMIT"),
            from_file: |s| some(s.bwlimit),
            default: || json!(0),
        },
        Setting {
            key: "sftp",
            env: None,
            from_file: |s| some(s.sftp),
            default: || json!(false),
        },
        Setting {
            key: "remote_musicfs",
            env: Some("MUSICFS_REMOTE_MUSICFS"),
            from_file: |s| some(s.remote_musicfs.clone()),
            default: || json!(null),
        },
        Setting {
            key: "deploy_agent",
            env: Some("MUSICFS_DEPLOY_AGENT"),
            from_file: |s| some(s.deploy_agent),
            default: || json!(false),
        },
        Setting {
            key: "one_file_system",
            env: None,
            from_file: |s| some(s.one_file_system),
            default: || json!(false),
        },
        Setting {
            key: "checksum",
            env: None,
            from_file: |s| some(s.checksum),
            default: || json!(false),
        },
        Setting {
            key: "exclude",
            env: None,
            from_file: |s| (!s.exclude.is_empty()).then(|| json!(s.exclude)),
            default: || json!([]),
        },
        Setting {
            key: "max_delete",
            env: None,
            from_file: |s| some(s.max_delete),
            default: || json!(null),
        },
        Setting {
            key: "credentials",
            env: None,
            from_file: |s| {
                s.credentials
                    .as_ref()
                    .map(|p| json!(p.display().to_string()))
            },
            default: || json!(null),
        },
    ]
}

/// How a value reads in text: null as the setting's meaning of "none".
fn shown(key: &str, value: &Value) -> String {
    match (key, value) {
        ("rsh", Value::Null) => "(the built-in SSH client)".into(),
        ("remote_musicfs", Value::Null) => "(musicfs on the remote PATH, else SFTP)".into(),
        ("max_delete", Value::Null) => "(no limit)".into(),
        ("credentials", Value::Null) => {
            "(S3: the AWS environment, profile and shared files)".into()
        }
        ("bwlimit", Value::Number(n)) if n.as_u64() == Some(0) => "0 (no limit)".into(),
        ("bwlimit", Value::Number(n)) => format!("{} B/s", n),
        ("timeout", Value::Number(n)) => format!("{n} s"),
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

fn env_value(var: &'static str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

pub fn run(global: &GlobalArgs, args: &ConfigArgs) -> anyhow::Result<u8> {
    let config = Config::load().map_err(|e| Error::InvalidInput(e.to_string()))?;
    let mut tables: Vec<(String, &Settings)> = Vec::new();
    if let Some(name) = &args.name {
        let Some(origin) = config.origin(name) else {
            let known: Vec<&str> = config.origins.keys().map(String::as_str).collect();
            return Err(Error::InvalidInput(format!(
                "{name}: no [origin.{name}] in {} (named origins: {})",
                config
                    .file
                    .as_deref()
                    .map_or_else(|| "the configuration".into(), |f| f.display().to_string()),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            ))
            .into());
        };
        tables.push((format!("[origin.{name}]"), &origin.settings));
    }
    tables.push(("[defaults]".into(), &config.defaults));

    let mut rows = Vec::new();
    // The repository: --repo is global, so the command line may set it here too.
    let repo_env = std::env::var_os("MUSICFS_REPO").filter(|v| !v.is_empty());
    let repo_source = match &global.repo {
        Some(dir) if repo_env.as_deref() == Some(dir.as_os_str()) => {
            Source::Environment("MUSICFS_REPO")
        }
        Some(_) => Source::CommandLine,
        None if config.repo.is_some() => Source::File("repo".into()),
        None => Source::Default,
    };
    let repo = match global.repo.as_ref().or(config.repo.as_ref()) {
        Some(dir) => Some(dir.clone()),
        None => crate::repo::Repository::default_root(),
    };
    let repo_value = json!(repo.map(|d| d.display().to_string()));
    rows.push(Row {
        key: "repo",
        shown: shown("repo", &repo_value),
        value: repo_value,
        source: repo_source,
    });
    for setting in setting_table() {
        let from_env = setting.env.and_then(|var| env_value(var).map(|v| (var, v)));
        let (value, source) = if let Some((var, text)) = from_env {
            (json!(text), Source::Environment(var))
        } else if let Some((table, value)) = tables
            .iter()
            .find_map(|(label, s)| (setting.from_file)(s).map(|v| (label.clone(), v)))
        {
            (value, Source::File(table))
        } else {
            ((setting.default)(), Source::Default)
        };
        rows.push(Row {
            key: setting.key,
            shown: shown(setting.key, &value),
            value,
            source,
        });
    }

    let file = config.file.as_ref().map(|f| f.display().to_string());
    if global.json {
        print_json(&json!({
            "type": "config",
            "file": file,
            "file_exists": config.exists,
            "origin": args.name,
            "settings": rows.iter().map(|r| json!({
                "key": r.key,
                "value": r.value,
                "source": r.source.describe(),
            })).collect::<Vec<_>>(),
            "origins": config.origins.values().map(|o| json!({
                "name": o.name,
                "url": o.url,
            })).collect::<Vec<_>>(),
        }));
        return Ok(exit::OK);
    }
    match (&file, config.exists) {
        (Some(f), true) => println!("file: {f}"),
        (Some(f), false) => println!("file: {f} (none there)"),
        (None, _) => println!("file: none (neither XDG_CONFIG_HOME nor HOME is set)"),
    }
    if let Some(name) = &args.name {
        if let Some(origin) = config.origin(name) {
            println!("origin {name}: {}", origin.url);
        }
    }
    let width = rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
    for r in &rows {
        println!(
            "{:width$}  {}  ({})",
            r.key,
            r.shown,
            r.source.describe(),
            width = width
        );
    }
    if args.name.is_none() && !config.origins.is_empty() {
        println!("origins:");
        for o in config.origins.values() {
            println!("  {}  {}", o.name, o.url);
        }
    }
    Ok(exit::OK)
}
