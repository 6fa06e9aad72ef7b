//! Filters: which entries of an origin a walk leaves out, written as rsync and restic users
//! write them (`--exclude`, `--include`, `--exclude-from`; rules in `docs/filters.md`).
//!
//! A [`Filter`] is an ordered list of include and exclude [`Rule`]s, then, unless turned off,
//! the built-in list of operating-system litter ([`DEFAULT_EXCLUDES`]). An entry is tested
//! against the rules in order and the first rule that matches decides, as in rsync; an entry
//! no rule matches is included. An excluded directory is not entered, so nothing below it is
//! tested (or read): the origins' walks ask the filter before they descend
//! ([`crate::origin::Origin::walk_filtered`]).
//!
//! Patterns are globs (`globset`), matched against the entry's path relative to the origin's
//! root, with rsync's anchoring: a leading `/` anchors the pattern at the root; a trailing `/`
//! matches directories only; a pattern with no other `/` and no `**` matches the entry's name
//! at any depth; one with a `/` or a `**` matches the end of the path at a component boundary;
//! `*` and `?` never match a `/`, `**` does when it is a whole component (inside one it is
//! `*`); a trailing `/***` matches the directory and everything below it.
//!
//! Never does: touch an origin or the file system (`--exclude-from` files are read by the
//! command line), or treat a path as text (paths are bytes; a pattern is UTF-8).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

/// Operating-system litter, excluded by default (names at any depth, case ignored):
/// macOS Finder (`.DS_Store`), AppleDouble files and folders (`._*`, `.AppleDouble`), Windows
/// Explorer (`Thumbs.db`, `desktop.ini`), the Windows recycle bin (`$RECYCLE.BIN`), and the
/// thumbnail folders of a Synology NAS (`@eaDir`).
pub const DEFAULT_EXCLUDES: &[&str] = &[
    ".DS_Store",
    "._*",
    ".AppleDouble",
    "Thumbs.db",
    "desktop.ini",
    "$RECYCLE.BIN",
    "@eaDir",
];

/// No pattern is longer (a path is at most 4096 bytes).
pub const MAX_PATTERN: usize = 4096;

/// No filter has more rules (besides the built-in ones).
pub const MAX_RULES: usize = 10_000;

/// What a rule does to the entries it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleKind {
    /// Keep the entry (and stop testing it).
    Include,
    /// Leave the entry out (and, for a directory, everything below it).
    Exclude,
}

/// One include or exclude rule, as the user wrote its pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Include or exclude.
    pub kind: RuleKind,
    /// The pattern (see the module documentation).
    pub pattern: String,
}

impl Rule {
    /// An exclude rule.
    pub fn exclude(pattern: impl Into<String>) -> Rule {
        Rule {
            kind: RuleKind::Exclude,
            pattern: pattern.into(),
        }
    }

    /// An include rule.
    pub fn include(pattern: impl Into<String>) -> Rule {
        Rule {
            kind: RuleKind::Include,
            pattern: pattern.into(),
        }
    }
}

/// What a filter is made of, in a form that can be sent to the other end of a sync and
/// compiled there ([`FilterSpec::compile`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterSpec {
    /// The user's rules, in order.
    pub rules: Vec<Rule>,
    /// Whether [`DEFAULT_EXCLUDES`] follow them.
    pub default_excludes: bool,
}

impl FilterSpec {
    /// Compiles the rules (see [`Filter::new`]).
    pub fn compile(&self) -> Result<Filter, FilterError> {
        Filter::new(self.rules.clone(), self.default_excludes)
    }
}

/// Why a filter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A pattern is not a valid glob.
    #[error("pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// More rules than [`MAX_RULES`].
    #[error("{0} filter rules: at most {MAX_RULES} are allowed")]
    TooMany(usize),
}

/// One compiled rule.
#[derive(Debug)]
struct Compiled {
    kind: RuleKind,
    /// Matches directories only (the pattern ended with `/`).
    dir_only: bool,
}

#[derive(Debug)]
struct Matcher {
    /// The globs of the user's rules.
    set: GlobSet,
    /// The rule of each glob of `set` (a `/***` rule has two globs).
    rule_of: Vec<usize>,
    rules: Vec<Compiled>,
    /// Whether [`DEFAULT_EXCLUDES`] follow the rules (matched by [`is_default_litter`]).
    defaults: bool,
}

/// Whether a name matches one of [`DEFAULT_EXCLUDES`], ASCII case ignored: each is a literal
/// name or, ending with `*`, a literal prefix. globset's globs of them answer the same for
/// every name, its case-insensitive matching being ASCII's too, without a regular expression.
fn is_default_litter(name: &[u8]) -> bool {
    DEFAULT_EXCLUDES
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name
                .get(..prefix.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes())),
            None => name.eq_ignore_ascii_case(pattern.as_bytes()),
        })
}

/// An ordered list of include and exclude rules; cheap to clone. The default value excludes
/// nothing.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    spec: FilterSpec,
    matcher: Option<Arc<Matcher>>,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Filter {
    /// A filter that excludes nothing.
    pub fn none() -> Filter {
        Filter::default()
    }

    /// The filter of `rules`, in order, followed by [`DEFAULT_EXCLUDES`] when
    /// `default_excludes`. This is the one constructor: the command line's flags and a
    /// configuration file's lists both end here.
    pub fn new(rules: Vec<Rule>, default_excludes: bool) -> Result<Filter, FilterError> {
        if rules.len() > MAX_RULES {
            return Err(FilterError::TooMany(rules.len()));
        }
        let spec = FilterSpec {
            rules,
            default_excludes,
        };
        if spec.rules.is_empty() && !default_excludes {
            return Ok(Filter {
                spec,
                matcher: None,
            });
        }
        let mut set = GlobSetBuilder::new();
        let mut rule_of = Vec::new();
        let mut compiled = Vec::new();
        for (index, rule) in spec.rules.iter().enumerate() {
            let (globs, dir_only) = translate(&rule.pattern)?;
            for g in globs {
                set.add(compile(&rule.pattern, &g, false)?);
                rule_of.push(index);
            }
            compiled.push(Compiled {
                kind: rule.kind,
                dir_only,
            });
        }
        Ok(Filter {
            spec,
            matcher: Some(Arc::new(Matcher {
                set: set.build().map_err(|e| FilterError::Pattern {
                    pattern: String::new(),
                    message: e.to_string(),
                })?,
                rule_of,
                rules: compiled,
                defaults: default_excludes,
            })),
        })
    }

    /// What the filter was built from.
    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// Whether the filter excludes nothing.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Whether the entry at `rel` (relative to the root, `/`-separated, not empty), a
    /// directory when `is_dir`, is excluded, given that its parent directory is not. The
    /// first rule that matches decides; no match includes it.
    pub fn excludes(&self, rel: &[u8], is_dir: bool) -> bool {
        let Some(m) = &self.matcher else {
            return false;
        };
        if rel.is_empty() {
            return false;
        }
        if !m.rules.is_empty() {
            let candidate = Candidate::new(OsStr::from_bytes(rel));
            let mut hits = Vec::new();
            m.set.matches_candidate_into(&candidate, &mut hits);
            let first = hits
                .iter()
                .map(|&glob| m.rule_of[glob])
                .filter(|&rule| is_dir || !m.rules[rule].dir_only)
                .min();
            if let Some(rule) = first {
                return m.rules[rule].kind == RuleKind::Exclude;
            }
        }
        // The default excludes come after every rule of the user's.
        let name = rel.rsplit(|&b| b == b'/').next().unwrap_or(rel);
        m.defaults && is_default_litter(name)
    }

    /// Whether `rel` lies in a part of the tree the filter leaves out: it or one of its
    /// ancestors (each a directory) is excluded. `is_dir` is the entry's own kind.
    pub fn excludes_path(&self, rel: &[u8], is_dir: bool) -> bool {
        if self.is_empty() {
            return false;
        }
        let rel = rel.strip_suffix(b"/").unwrap_or(rel);
        for (i, &b) in rel.iter().enumerate() {
            if b == b'/' && self.excludes(&rel[..i], true) {
                return true;
            }
        }
        self.excludes(rel, is_dir)
    }
}

/// The rules of an exclude file (`--exclude-from`), as rsync reads one: a pattern per line,
/// excluded; blank lines and lines starting with `#` or `;` skipped; a line starting with
/// `+ ` is an include rule, one starting with `- ` an exclude rule. A line's end (`\n` or
/// `\r\n`) is not part of its pattern; other spaces are.
pub fn parse_rules(text: &str) -> Vec<Rule> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';']))
        .map(|line| {
            if let Some(pattern) = line.strip_prefix("+ ") {
                Rule::include(pattern)
            } else if let Some(pattern) = line.strip_prefix("- ") {
                Rule::exclude(pattern)
            } else {
                Rule::exclude(line)
            }
        })
        .collect()
}

/// Whether `path` lies strictly inside the directory `dir` (both relative, `/`-separated).
pub fn is_below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() && !path.is_empty()
        || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// The compiled `glob`, one of the globs of `pattern`.
fn compile(pattern: &str, glob: &str, ignore_case: bool) -> Result<globset::Glob, FilterError> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .case_insensitive(ignore_case)
        .build()
        .map_err(|e| FilterError::Pattern {
            pattern: pattern.to_owned(),
            message: e.kind().to_string(),
        })
}

/// The globs of one pattern, matched against a path relative to the root, and whether it
/// matches directories only.
fn translate(pattern: &str) -> Result<(Vec<String>, bool), FilterError> {
    let bad = |message: &str| FilterError::Pattern {
        pattern: pattern.to_owned(),
        message: message.to_owned(),
    };
    if pattern.len() > MAX_PATTERN {
        return Err(bad("longer than 4096 bytes"));
    }
    if pattern.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let (body, dir_only) = match pattern.strip_suffix('/') {
        Some(body) if !body.ends_with('/') => (body, true),
        Some(_) => return Err(bad("ends with more than one /")),
        None => (pattern, false),
    };
    let (body, anchored) = match body.strip_prefix('/') {
        Some(body) => (body, true),
        None => (body, false),
    };
    if body.is_empty() {
        return Err(bad("matches nothing"));
    }
    let (body, whole_tree) = match body.strip_suffix("/***") {
        Some(base) if !base.is_empty() => (base, true),
        _ => (body, false),
    };
    if body.contains("***") {
        return Err(bad("*** is allowed only as the last component"));
    }
    let base = if anchored {
        body.to_owned()
    } else {
        // No slash: the name at any depth; a slash or `**`: the end of the path. Both are a
        // match of the whole path with any leading directories.
        format!("**/{body}")
    };
    let mut globs = vec![base.clone()];
    if whole_tree {
        globs.push(format!("{base}/**"));
    }
    Ok((globs, dir_only))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(rules: &[(&str, bool)]) -> Filter {
        let rules = rules
            .iter()
            .map(|&(p, include)| {
                if include {
                    Rule::include(p)
                } else {
                    Rule::exclude(p)
                }
            })
            .collect();
        Filter::new(rules, false).expect("valid rules")
    }

    #[test]
    fn a_name_pattern_matches_at_any_depth() {
        let f = filter(&[("*.o", false)]);
        assert!(f.excludes(b"a.o", false));
        assert!(f.excludes(b"src/deep/a.o", false));
        assert!(!f.excludes(b"a.of", false));
        assert!(!f.excludes(b"x.o/y", false));
    }

    #[test]
    fn a_leading_slash_anchors_at_the_root() {
        let f = filter(&[("/foo", false)]);
        assert!(f.excludes(b"foo", false));
        assert!(f.excludes(b"foo", true));
        assert!(!f.excludes(b"bar/foo", false));
    }

    #[test]
    fn a_trailing_slash_matches_directories_only() {
        let f = filter(&[("foo/", false)]);
        assert!(f.excludes(b"foo", true));
        assert!(f.excludes(b"a/foo", true));
        assert!(!f.excludes(b"foo", false));
    }

    #[test]
    fn a_slash_inside_matches_the_end_of_the_path() {
        let f = filter(&[("foo/bar", false)]);
        assert!(f.excludes(b"foo/bar", false));
        assert!(f.excludes(b"x/foo/bar", false));
        assert!(!f.excludes(b"xfoo/bar", false));
        let star = filter(&[("/foo/*/bar", false)]);
        assert!(star.excludes(b"foo/a/bar", false));
        assert!(!star.excludes(b"foo/a/b/bar", false));
    }

    #[test]
    fn double_star_crosses_slashes() {
        let f = filter(&[("/foo/**/bar", false)]);
        assert!(f.excludes(b"foo/bar", false));
        assert!(f.excludes(b"foo/a/b/bar", false));
        let tail = filter(&[("dir/**", false)]);
        assert!(tail.excludes(b"dir/a/b", false));
        assert!(!tail.excludes(b"dir", true));
        // Inside a component, `**` is `*`: it does not cross a `/`.
        let inside = filter(&[("/foo**bar", false)]);
        assert!(inside.excludes(b"fooxbar", false));
        assert!(!inside.excludes(b"foo/x/bar", false));
        let tree = filter(&[("dir/***", false)]);
        assert!(tree.excludes(b"dir", true));
        assert!(tree.excludes(b"x/dir/a", false));
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let f = filter(&[("*/", true), ("*.flac", true), ("*", false)]);
        assert!(!f.excludes(b"album", true));
        assert!(!f.excludes(b"album/01.flac", false));
        assert!(f.excludes(b"album/cover.jpg", false));
        let g = filter(&[("*.flac", false), ("keep.flac", true)]);
        assert!(g.excludes(b"keep.flac", false));
    }

    #[test]
    fn defaults_come_after_the_rules_and_ignore_case() {
        let f = Filter::new(vec![Rule::include(".DS_Store")], true).expect("valid");
        assert!(!f.excludes(b"a/.DS_Store", false));
        assert!(f.excludes(b"a/THUMBS.DB", false));
        assert!(f.excludes(b"@eaDir", true));
        assert!(f.excludes(b"x/._01.flac", false));
        assert!(f.excludes(b"$RECYCLE.BIN", true));
        assert!(!f.excludes(b"a/01.flac", false));
        assert!(Filter::new(Vec::new(), false).expect("empty").is_empty());
    }

    /// The default excludes are matched as their case-insensitive globs would match them,
    /// names outside ASCII included.
    #[test]
    fn default_litter_is_matched_as_its_globs_match_it() {
        let f = Filter::new(Vec::new(), true).expect("defaults");
        let mut globs = GlobSetBuilder::new();
        for pattern in DEFAULT_EXCLUDES {
            for g in translate(pattern).expect("valid").0 {
                globs.add(compile(pattern, &g, true).expect("valid"));
            }
        }
        let globs = globs.build().expect("valid");
        let names = [
            ".DS_Store",
            ".ds_store",
            ".DS_Store2",
            "x.DS_Store",
            "._",
            "._01.flac",
            "_.01",
            ".",
            ".AppleDouble",
            ".appledoubles",
            "Thumbs.db",
            "thumbs.DB",
            "Thumbs.db.bak",
            "desktop.ini",
            "DESKTOP.INI",
            "desktop",
            "$RECYCLE.BIN",
            "$recycle.bin",
            "RECYCLE.BIN",
            "@eaDir",
            "@EADIR",
            "eaDir",
            "01.flac",
            "",
        ];
        for name in names {
            for rel in [name.to_owned(), format!("album/{name}")] {
                let by_globs = globs.is_match(&rel);
                assert_eq!(is_default_litter(name.as_bytes()), by_globs, "{rel:?}");
                if !name.is_empty() {
                    assert_eq!(f.excludes(rel.as_bytes(), false), by_globs, "{rel:?}");
                }
            }
        }
        // Names outside ASCII: U+017F (a long s) and U+212A (the Kelvin sign), which Unicode
        // folds to "s" and "k", and U+0130; glob and shortcut fold ASCII only.
        for (name, litter) in [
            (".DS_\u{17f}tore", false),
            ("._\u{e9}t\u{e9}.flac", true),
            ("des\u{212a}top.ini", false),
            ("\u{130}DS", false),
        ] {
            assert_eq!(globs.is_match(name), litter, "{name:?}");
            assert_eq!(f.excludes(name.as_bytes(), false), litter, "{name:?}");
        }
    }

    #[test]
    fn ancestors_count_for_a_path() {
        let f = filter(&[("/private/", false)]);
        assert!(f.excludes_path(b"private/a/b.flac", false));
        assert!(!f.excludes_path(b"public/private", false));
    }

    #[test]
    fn bad_patterns_are_refused_by_name() {
        for bad in ["", "/", "a[", "//", "a//", "x/***/y", "a\0b"] {
            let e = Filter::new(vec![Rule::exclude(bad)], false).expect_err(bad);
            assert!(e.to_string().contains("pattern"), "{e}");
        }
    }

    #[test]
    fn exclude_files_skip_comments_and_blank_lines() {
        let text = "# comment\n; another\n\n*.o\r\n+ keep.o\n- /tmp/\n";
        assert_eq!(
            parse_rules(text),
            [
                Rule::exclude("*.o"),
                Rule::include("keep.o"),
                Rule::exclude("/tmp/")
            ]
        );
    }

    #[test]
    fn a_spec_compiles_to_the_same_filter() {
        let f = Filter::new(vec![Rule::exclude("*.tmp")], true).expect("valid");
        assert_eq!(f.spec().compile().expect("valid"), f);
    }
}
