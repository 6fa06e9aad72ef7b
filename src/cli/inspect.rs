use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{exit, human, GlobalArgs};
use crate::chunk::FastCdc;
use crate::inspect::{inspect, FileReport};
use crate::media::tags::MediaInfo;
use crate::repo::RepoConfig;
use crate::report::{print_json, quoted};

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Files to describe (each one, even after one fails: exit 3 then)
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// The chunker of the repository, when there is one (`--repo`, `MUSICFS_REPO`, or the default
/// location), else a new repository's: the chunks shown are those a sync would make.
fn chunker(global: &GlobalArgs) -> anyhow::Result<FastCdc> {
    let marker = global
        .location()
        .ok()
        .map(|location| location.root().join("repo.toml"))
        .filter(|marker| marker.exists());
    Ok(match marker {
        Some(marker) => RepoConfig::read(&marker)?.chunker.chunker(),
        None => FastCdc::default(),
    })
}

pub fn run(global: &GlobalArgs, args: &InspectArgs) -> anyhow::Result<u8> {
    let chunker = chunker(global)?;
    let mut failed = 0u64;
    for path in &args.files {
        let report = match inspect(path, &chunker) {
            Ok(report) => report,
            Err(e) => {
                failed += 1;
                if global.json {
                    print_json(&json!({
                        "type": "problem",
                        "path": path.to_string_lossy(),
                        "message": e.to_string(),
                    }));
                } else {
                    super::say(&format!("inspecting {}: {e}", path.display()));
                }
                continue;
            }
        };
        if global.json {
            let mut value = serde_json::to_value(&report)?;
            value["type"] = json!("file");
            value["path"] = json!(path.to_string_lossy());
            print_json(&value);
            continue;
        }
        print_text(path, &report, global.quiet);
    }
    if global.json {
        super::print_summary(&json!({
            "files": args.files.len() as u64 - failed,
            "problems": failed,
        }))?;
    }
    Ok(if failed > 0 { exit::PARTIAL } else { exit::OK })
}

fn print_text(path: &std::path::Path, report: &FileReport, quiet: bool) {
    let chunks: usize = report.regions.iter().map(|r| r.chunks.len()).sum();
    println!(
        "{}: {}, {}, {} regions, {} chunks",
        quoted(&path.display().to_string()),
        report.format,
        human(report.size),
        report.regions.len(),
        chunks
    );
    if let Some(problem) = &report.problem {
        println!("  warning: {problem}");
    }
    if quiet {
        return;
    }
    for r in &report.regions {
        let ids: Vec<String> = r.chunks.iter().map(|c| c.id.short()).collect();
        println!(
            "  {:<8} {:>10} {:>10}  {}{}",
            r.kind,
            r.offset,
            human(r.len),
            ids.join(" "),
            r.transform.map(|t| format!("  ({t})")).unwrap_or_default()
        );
    }
    if let Some(h) = report.audio_hash {
        println!("  audio hash {h}");
    }
    if let Some(info) = &report.tags {
        for line in tag_lines(info) {
            println!("  {line}");
        }
    }
}

/// The tags and stream properties as `field: value` lines, one value per line, in the
/// order a tag editor shows them; values quoted when they hold control characters.
fn tag_lines(info: &MediaInfo) -> Vec<String> {
    let t = &info.tags;
    let mut lines = Vec::new();
    let mut many = |field: &str, values: &[String]| {
        for v in values {
            lines.push(format!("{field}: {}", quoted(v)));
        }
    };
    many("title", &t.title);
    many("artist", &t.artist);
    many("album", &t.album);
    many("album artist", &t.album_artist);
    let of = |n: Option<u32>, total: Option<u32>| match (n, total) {
        (Some(n), Some(total)) => Some(format!("{n}/{total}")),
        (Some(n), None) => Some(n.to_string()),
        (None, Some(total)) => Some(format!("?/{total}")),
        (None, None) => None,
    };
    if let Some(track) = of(t.track, t.track_total) {
        lines.push(format!("track: {track}"));
    }
    if let Some(disc) = of(t.disc, t.disc_total) {
        lines.push(format!("disc: {disc}"));
    }
    if let Some(date) = &t.date {
        lines.push(format!("date: {}", quoted(date)));
    }
    for g in &t.genre {
        lines.push(format!("genre: {}", quoted(g)));
    }
    for (key, value) in &t.other {
        lines.push(format!("{}: {}", quoted(key), quoted(value)));
    }
    if let Some(p) = &info.properties {
        let mut parts = vec![format!("{:.1} s", p.duration_ms as f64 / 1000.0)];
        if let Some(rate) = p.sample_rate {
            parts.push(format!("{rate} Hz"));
        }
        if let Some(ch) = p.channels {
            parts.push(format!("{ch} channel{}", if ch == 1 { "" } else { "s" }));
        }
        if let Some(kbps) = p.bitrate_kbps {
            parts.push(format!("{kbps} kb/s"));
        }
        lines.push(format!("stream: {}", parts.join(", ")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tags::{Properties, Tags};

    #[test]
    fn tags_read_as_lines() {
        let info = MediaInfo {
            tags: Tags {
                title: vec!["Pure Sine".into()],
                artist: vec!["A".into(), "B".into()],
                track: Some(1),
                track_total: Some(2),
                other: vec![("COMMENT".into(), "two\nlines".into())],
                ..Tags::default()
            },
            properties: Some(Properties {
                duration_ms: 2000,
                bitrate_kbps: Some(100),
                sample_rate: Some(44100),
                channels: Some(1),
            }),
        };
        assert_eq!(
            tag_lines(&info),
            [
                "title: Pure Sine",
                "artist: A",
                "artist: B",
                "track: 1/2",
                "COMMENT: \"two\\nlines\"",
                "stream: 2.0 s, 44100 Hz, 1 channel, 100 kb/s",
            ]
        );
    }
}
