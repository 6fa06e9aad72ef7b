use std::ffi::OsString;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::filter_args::FilterArgs;
use super::{exit, human, print_summary, ConnectArgs, GlobalArgs};
use crate::diff::{self, text, Change, ChangeKind, Counts, EntryKind, FieldChange, Operand};
use crate::origin::OpenOptions;
use crate::report::{display_path, print_json, Event, JsonSink, Sink};

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old side: a directory or an SSH origin (read over SFTP), a snapshot id (or a unique prefix of 8 or more hex digits),
    /// or ORIGIN@TIME. Alone, the new side, compared with the snapshot taken before it
    #[arg(value_name = "A")]
    pub a: OsString,
    /// The new side, in the same forms as A
    #[arg(value_name = "B")]
    pub b: Option<OsString>,
    /// Print only the changed paths, one per line (B's path; A's for a removed file)
    #[arg(long, conflicts_with = "stat")]
    pub name_only: bool,
    /// Print the counts per directory and class, then the summary
    #[arg(long)]
    pub stat: bool,
    /// Don't cross file system boundaries in a local directory operand: a directory on which
    /// another file system is mounted is scanned as an empty directory (a musicfs mount is
    /// always left out)
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// One change as a JSON line.
#[derive(Serialize)]
struct ChangeLine<'a> {
    #[serde(rename = "type")]
    kind: ChangeKind,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a [FieldChange]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    before: Option<EntryKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<EntryKind>,
}

impl<'a> ChangeLine<'a> {
    fn of(change: &'a Change) -> Self {
        ChangeLine {
            kind: change.kind,
            path: display_path(&change.path),
            from: change.from.as_deref().map(display_path),
            fields: change.fields.as_deref(),
            before: change.kinds.map(|k| k.0),
            after: change.kinds.map(|k| k.1),
        }
    }
}

#[derive(Serialize)]
struct Summary {
    a: String,
    b: Option<String>,
    counts: Counts,
    changes: u64,
    bytes_to_transfer: u64,
    /// Paths a scan could not read: the comparison is incomplete there.
    problems: u64,
}

/// With `--json`, scans report only their problems: the output is the changes.
struct ProblemsOnly;

impl Sink for ProblemsOnly {
    fn event(&self, event: &Event) {
        if matches!(event, Event::Problem { .. }) {
            JsonSink.event(event);
        }
    }
}

pub fn run(global: &GlobalArgs, args: &DiffArgs) -> anyhow::Result<u8> {
    let filter = args.filter.filter()?;
    let a = Operand::parse(&args.a)?;
    let b = args.b.as_deref().map(Operand::parse).transpose()?;
    let repo = global.open_repo()?;
    let sink: Box<dyn Sink> = if global.json {
        Box::new(ProblemsOnly)
    } else {
        global.sink()
    };
    let label = match &args.b {
        Some(b) => format!(
            "comparing {} with {}",
            args.a.to_string_lossy(),
            b.to_string_lossy()
        ),
        None => format!(
            "comparing {} with its previous snapshot",
            args.a.to_string_lossy()
        ),
    };
    let resolved = diff::resolve(
        &repo,
        &a,
        b.as_ref(),
        &OpenOptions {
            filter: filter.clone(),
            ..args.connect.open_options(args.one_file_system)
        },
        &repo.chunker(),
        sink.as_ref(),
    );
    sink.finish();
    let (old, new) = resolved.with_context(|| label.clone())?;
    let mut changes = diff::diff_trees(&repo, old.root, new.root).with_context(|| label.clone())?;
    // A file a scan could not read is missing from its snapshot: not removed when B's scan
    // missed it, not added when A's did. The scan reported it, and the exit status says the
    // comparison is incomplete.
    changes.retain(|c| match c.kind {
        ChangeKind::Removed => !under_any(&c.path, &new.unreadable),
        ChangeKind::Added => !under_any(&c.path, &old.unreadable),
        _ => true,
    });
    // A snapshot operand holds what its scan's filter let in; compare what this one does.
    diff::retain_included(&mut changes, &filter);
    let bytes =
        diff::bytes_to_transfer_within(&repo, old.root, new.root, old.located, &changes, &filter)
            .with_context(|| label.clone())?;
    let counts = Counts::of(&changes);
    if global.json {
        for change in &changes {
            print_json(&ChangeLine::of(change));
        }
        print_summary(&Summary {
            a: args.a.to_string_lossy().into_owned(),
            b: args.b.as_deref().map(|b| b.to_string_lossy().into_owned()),
            counts,
            changes: counts.total(),
            bytes_to_transfer: bytes,
            problems: (old.unreadable.len() + new.unreadable.len()) as u64,
        })?;
    } else if args.name_only {
        for change in &changes {
            println!("{}", display_path(&change.path));
        }
    } else if !global.quiet {
        let lines = if args.stat {
            text::stat(&changes)
        } else {
            text::grouped(&changes)
        };
        for line in lines {
            println!("{line}");
        }
        if counts.total() == 0 {
            println!("{}", text::counts_summary(&counts));
        } else {
            println!(
                "{}; {} of new data",
                text::counts_summary(&counts),
                human(bytes)
            );
        }
    }
    Ok(
        if !new.unreadable.is_empty() || !old.unreadable.is_empty() {
            exit::USAGE
        } else if counts.total() > 0 {
            exit::DIFFERENCES
        } else {
            exit::OK
        },
    )
}

fn under_any(path: &[u8], roots: &[Vec<u8>]) -> bool {
    let path = path.strip_suffix(b"/").unwrap_or(path);
    roots
        .iter()
        .any(|r| path == r.as_slice() || (path.starts_with(r) && path.get(r.len()) == Some(&b'/')))
}
