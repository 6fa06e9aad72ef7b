//! The text forms of a diff: changes grouped by directory, per-directory counts, and the
//! summary's counts. Pure functions from changes to lines, so they can be tested; the command
//! line prints them.

use crate::report::display_path;

use super::{Change, ChangeKind, Counts, FieldChange};

/// Names longer than this are not padded: the details follow after one space.
const NAME_COLUMN: usize = 40;
/// Tag values longer than this (in characters) are cut, with `…`.
const VALUE_CHARS: usize = 60;

/// `changes` (sorted as `diff_trees` returns them) grouped by directory: a line with the
/// directory, then one indented line per change: class, name, details.
pub fn grouped(changes: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    for group in groups(changes) {
        out.push(directory_heading(group[0].dir_and_name().0));
        let width = group
            .iter()
            .map(|c| name_of(c).chars().count())
            .filter(|&n| n <= NAME_COLUMN)
            .max()
            .unwrap_or(0);
        for change in group {
            let name = name_of(change);
            let details = details(change);
            let line = if details.is_empty() {
                format!("  {:<9} {name}", change.kind.name())
            } else {
                format!("  {:<9} {name:<width$}  {details}", change.kind.name())
            };
            out.push(line);
        }
    }
    out
}

/// One line per directory: its counts per class.
pub fn stat(changes: &[Change]) -> Vec<String> {
    let groups = groups(changes);
    let headings: Vec<String> = groups
        .iter()
        .map(|g| directory_heading(g[0].dir_and_name().0))
        .collect();
    let width = headings
        .iter()
        .map(|h| h.chars().count())
        .filter(|&n| n <= 2 * NAME_COLUMN)
        .max()
        .unwrap_or(0);
    groups
        .iter()
        .zip(headings)
        .map(|(g, heading)| {
            let counts = Counts::of(g);
            format!("{heading:<width$}  {}", counts_list(&counts))
        })
        .collect()
}

/// `4 changed: 1 tags, 1 moved, 1 art, 1 added`, or `no differences`.
pub fn counts_summary(counts: &Counts) -> String {
    match counts.total() {
        0 => "no differences".to_string(),
        n => format!("{n} changed: {}", counts_list(counts)),
    }
}

fn counts_list(counts: &Counts) -> String {
    ChangeKind::ALL
        .iter()
        .filter(|k| counts.get(**k) > 0)
        .map(|k| format!("{} {}", counts.get(*k), k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Consecutive changes in the same directory.
fn groups(changes: &[Change]) -> Vec<&[Change]> {
    changes
        .chunk_by(|a, b| a.dir_and_name().0 == b.dir_and_name().0)
        .collect()
}

fn directory_heading(dir: &[u8]) -> String {
    if dir.is_empty() {
        "./".to_string()
    } else {
        format!("{}/", display_path(dir))
    }
}

fn name_of(change: &Change) -> String {
    display_path(change.dir_and_name().1)
}

/// What follows the name: where a move came from, which tags changed, which kinds.
pub fn details(change: &Change) -> String {
    let mut parts = Vec::new();
    if let Some(from) = &change.from {
        parts.push(format!("← {}", display_path(from)));
    }
    if let Some((before, after)) = change.kinds {
        parts.push(format!("{} → {}", before.name(), after.name()));
    }
    match &change.fields {
        Some(fields) if !fields.is_empty() => {
            parts.push(fields.iter().map(field).collect::<Vec<_>>().join("; "))
        }
        Some(_) if change.kind == ChangeKind::Tags => {
            parts.push("(tag block rewritten, no field differs)".to_string())
        }
        Some(_) => parts.push("(content differs, same audio and tags)".to_string()),
        None if change.kind == ChangeKind::Art => {
            parts.push("(embedded pictures changed)".to_string())
        }
        None => {}
    }
    parts.join("; ")
}

fn field(f: &FieldChange) -> String {
    format!("{}: {} → {}", f.field, values(&f.before), values(&f.after))
}

fn values(v: &[String]) -> String {
    if v.is_empty() {
        return "(none)".to_string();
    }
    v.iter()
        .map(|s| {
            if s.chars().count() > VALUE_CHARS {
                let cut: String = s.chars().take(VALUE_CHARS).collect();
                format!("{:?}", format!("{cut}…"))
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, path: &str) -> Change {
        Change::new(kind, path.as_bytes().to_vec())
    }

    #[test]
    fn grouped_by_directory_with_details() {
        let mut tags = change(ChangeKind::Tags, "Artist/Album/01 Song.mp3");
        tags.fields = Some(vec![
            FieldChange {
                field: "title".into(),
                before: vec!["Old".into()],
                after: vec!["New".into()],
            },
            FieldChange {
                field: "artist".into(),
                before: vec!["A".into()],
                after: vec!["A".into(), "B".into()],
            },
        ]);
        let mut moved = change(ChangeKind::Moved, "Artist/Album/02 Other.flac");
        moved.from = Some(b"Old Folder/02 Other.flac".to_vec());
        let art = change(ChangeKind::Art, "Artist/Album/03 Third.m4a");
        let added = change(ChangeKind::Added, "new.mp3");
        let changes = vec![added, tags, moved, art];
        let lines = grouped(&changes);
        assert_eq!(
            lines,
            vec![
                "./",
                "  added     new.mp3",
                "Artist/Album/",
                "  tags      01 Song.mp3    title: \"Old\" → \"New\"; artist: \"A\" → \"A\", \"B\"",
                "  moved     02 Other.flac  ← Old Folder/02 Other.flac",
                "  art       03 Third.m4a   (embedded pictures changed)",
            ]
        );
        assert_eq!(
            counts_summary(&Counts::of(&changes)),
            "4 changed: 1 added, 1 tags, 1 art, 1 moved"
        );
        assert_eq!(
            stat(&changes),
            vec![
                "./             1 added",
                "Artist/Album/  1 tags, 1 art, 1 moved"
            ]
        );
        assert_eq!(counts_summary(&Counts::default()), "no differences");
    }

    #[test]
    fn absent_and_long_values() {
        let long = "x".repeat(100);
        let f = FieldChange {
            field: "comment".into(),
            before: vec![],
            after: vec![long],
        };
        let text = field(&f);
        assert!(text.starts_with("comment: (none) → \"xxx"));
        assert!(text.ends_with("x…\""));
    }
}
