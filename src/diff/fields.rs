//! Field-by-field comparison of two files' tags.
//!
//! Every field is compared as an ordered list of strings: a multi-valued field (two artists)
//! differs from another when the values or their order differ, and a number or date that is
//! absent is the empty list. Fields lofty has no name for (`Tags::other`) are compared under
//! their container key, each key's values in the order they are stored.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::media::tags::Tags;

/// One tag field that differs: its values on the old side (`before`, A) and on the new one
/// (`after`, B). An absent field is an empty list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The field: `title`, `artist`, `album`, `album_artist`, `track`, `track_total`,
    /// `disc`, `disc_total`, `date`, `genre`, or another field's container key
    /// (`Comment`, `TXXX:MOOD`…).
    pub field: String,
    /// Its values in A.
    pub before: Vec<String>,
    /// Its values in B.
    pub after: Vec<String>,
}

/// The fields whose values differ between `before` (A) and `after` (B), named fields first
/// in a fixed order, then the other keys in byte order.
pub fn diff_tags(before: &Tags, after: &Tags) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut field = |name: &str, b: Vec<String>, a: Vec<String>| {
        if a != b {
            out.push(FieldChange {
                field: name.to_string(),
                before: b,
                after: a,
            });
        }
    };
    field("title", before.title.clone(), after.title.clone());
    field("artist", before.artist.clone(), after.artist.clone());
    field("album", before.album.clone(), after.album.clone());
    field(
        "album_artist",
        before.album_artist.clone(),
        after.album_artist.clone(),
    );
    field("track", number(before.track), number(after.track));
    field(
        "track_total",
        number(before.track_total),
        number(after.track_total),
    );
    field("disc", number(before.disc), number(after.disc));
    field(
        "disc_total",
        number(before.disc_total),
        number(after.disc_total),
    );
    field(
        "date",
        before.date.iter().cloned().collect(),
        after.date.iter().cloned().collect(),
    );
    field("genre", before.genre.clone(), after.genre.clone());
    let (b_other, a_other) = (by_key(&before.other), by_key(&after.other));
    let mut keys: Vec<&str> = b_other.keys().chain(a_other.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let b = b_other.get(key).cloned().unwrap_or_default();
        let a = a_other.get(key).cloned().unwrap_or_default();
        field(key, b, a);
    }
    out
}

fn number(n: Option<u32>) -> Vec<String> {
    n.iter().map(u32::to_string).collect()
}

fn by_key(pairs: &[(String, String)]) -> BTreeMap<&str, Vec<String>> {
    let mut map: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (key, value) in pairs {
        map.entry(key.as_str()).or_default().push(value.clone());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equal_tags_have_no_changes() {
        let t = Tags {
            title: strings(&["A"]),
            track: Some(1),
            ..Tags::default()
        };
        assert!(diff_tags(&t, &t.clone()).is_empty());
    }

    #[test]
    fn each_changed_field_with_before_and_after() {
        let before = Tags {
            title: strings(&["Old"]),
            artist: strings(&["A"]),
            track: Some(1),
            date: Some("2020".into()),
            other: vec![
                ("Comment".into(), "x".into()),
                ("TXXX:MOOD".into(), "calm".into()),
            ],
            ..Tags::default()
        };
        let after = Tags {
            title: strings(&["New"]),
            artist: strings(&["A", "B"]),
            track: None,
            date: Some("2020".into()),
            other: vec![
                ("Comment".into(), "x".into()),
                ("Composer".into(), "C".into()),
            ],
            ..Tags::default()
        };
        let changes = diff_tags(&before, &after);
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            names,
            vec!["title", "artist", "track", "Composer", "TXXX:MOOD"]
        );
        assert_eq!(changes[0].before, strings(&["Old"]));
        assert_eq!(changes[0].after, strings(&["New"]));
        assert_eq!(changes[1].after, strings(&["A", "B"]));
        assert_eq!(changes[2].before, strings(&["1"]));
        assert!(changes[2].after.is_empty());
        assert!(changes[3].before.is_empty());
        assert!(changes[4].after.is_empty());
    }

    #[test]
    fn order_of_values_matters() {
        let before = Tags {
            artist: strings(&["A", "B"]),
            ..Tags::default()
        };
        let after = Tags {
            artist: strings(&["B", "A"]),
            ..Tags::default()
        };
        assert_eq!(diff_tags(&before, &after).len(), 1);
    }
}
