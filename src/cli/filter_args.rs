//! `--exclude`, `--include`, `--exclude-from` and `--no-default-excludes`, shared by `scan`,
//! `sync` and `diff`. The three rule flags keep their command-line order across each other
//! (the first matching rule wins), which clap's derive cannot tell, so this one struct is
//! written against clap's builder.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};

use crate::filter::{parse_rules, Filter, Rule, DEFAULT_EXCLUDES};

/// One rule flag, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleArg {
    /// `--exclude PATTERN`.
    Exclude(String),
    /// `--include PATTERN`.
    Include(String),
    /// `--exclude-from FILE` (`-`: standard input).
    ExcludeFrom(PathBuf),
}

/// The filter flags of one command.
#[derive(Clone, Debug, Default)]
pub struct FilterArgs {
    /// The rule flags in command-line order.
    pub rules: Vec<RuleArg>,
    /// `--no-default-excludes`.
    pub no_default_excludes: bool,
}

const EXCLUDE: &str = "exclude";
const INCLUDE: &str = "include";
const EXCLUDE_FROM: &str = "exclude_from";
const NO_DEFAULTS: &str = "no_default_excludes";

impl FilterArgs {
    /// The filter the flags describe, `--exclude-from` files read now.
    pub fn filter(&self) -> anyhow::Result<Filter> {
        let mut rules = Vec::new();
        for arg in &self.rules {
            match arg {
                RuleArg::Exclude(p) => rules.push(Rule::exclude(p.clone())),
                RuleArg::Include(p) => rules.push(Rule::include(p.clone())),
                RuleArg::ExcludeFrom(file) => {
                    let mut bytes = Vec::new();
                    if file.as_os_str() == "-" {
                        std::io::stdin()
                            .read_to_end(&mut bytes)
                            .context("--exclude-from -: reading standard input")?;
                    } else {
                        bytes = std::fs::read(file)
                            .with_context(|| format!("--exclude-from {}", file.display()))?;
                    }
                    let text = String::from_utf8(bytes).map_err(|_| {
                        anyhow::anyhow!("--exclude-from {}: not UTF-8 text", file.display())
                    })?;
                    rules.extend(parse_rules(&text));
                }
            }
        }
        Ok(Filter::new(rules, !self.no_default_excludes)?)
    }
}

impl clap::Args for FilterArgs {
    fn augment_args(cmd: Command) -> Command {
        cmd.arg(
            Arg::new(EXCLUDE)
                .long("exclude")
                .value_name("PATTERN")
                .action(ArgAction::Append)
                .help("Leave out entries matching PATTERN (rsync's rules, --help tells them)")
                .long_help(
                    "Leave out entries matching PATTERN, and everything below an excluded \
                     directory, which is never read. Rules apply in the order given across \
                     --exclude, --include and --exclude-from; the first that matches decides. \
                     PATTERN is a glob: * and ? stop at /, ** does not; a leading / anchors it \
                     at the origin's root, a trailing / matches directories only, and a \
                     pattern without / matches a name at any depth",
                ),
        )
        .arg(
            Arg::new(INCLUDE)
                .long("include")
                .value_name("PATTERN")
                .action(ArgAction::Append)
                .help("Keep entries matching PATTERN, whatever later rules say"),
        )
        .arg(
            Arg::new(EXCLUDE_FROM)
                .long("exclude-from")
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .action(ArgAction::Append)
                .help(
                    "Read exclude patterns from FILE (- for standard input), one per line; \
                     blank lines and lines starting with # or ; are skipped, and a line \
                     starting with \"+ \" or \"- \" is an include or exclude rule",
                ),
        )
        .arg(
            Arg::new(NO_DEFAULTS)
                .long("no-default-excludes")
                .action(ArgAction::SetTrue)
                .help(format!(
                    "Don't leave out operating-system litter, which is excluded by default \
                     after the other rules (names at any depth, case ignored): {}",
                    DEFAULT_EXCLUDES.join(" ")
                )),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for FilterArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, RuleArg)> = Vec::new();
        let mut strings = |id: &str, make: fn(String) -> RuleArg| {
            if let (Some(values), Some(indices)) =
                (matches.get_many::<String>(id), matches.indices_of(id))
            {
                indexed.extend(indices.zip(values.cloned().map(make)));
            }
        };
        strings(EXCLUDE, RuleArg::Exclude);
        strings(INCLUDE, RuleArg::Include);
        if let (Some(values), Some(indices)) = (
            matches.get_many::<PathBuf>(EXCLUDE_FROM),
            matches.indices_of(EXCLUDE_FROM),
        ) {
            indexed.extend(indices.zip(values.cloned().map(RuleArg::ExcludeFrom)));
        }
        indexed.sort_by_key(|(index, _)| *index);
        Ok(FilterArgs {
            rules: indexed.into_iter().map(|(_, rule)| rule).collect(),
            no_default_excludes: matches.get_flag(NO_DEFAULTS),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Test {
        #[command(flatten)]
        filter: FilterArgs,
    }

    #[test]
    fn rule_flags_keep_their_order_across_flags() {
        let t = Test::parse_from([
            "t",
            "--include",
            "*/",
            "--exclude-from",
            "f",
            "--include=*.flac",
            "--exclude",
            "*",
            "--no-default-excludes",
        ]);
        assert_eq!(
            t.filter.rules,
            [
                RuleArg::Include("*/".into()),
                RuleArg::ExcludeFrom("f".into()),
                RuleArg::Include("*.flac".into()),
                RuleArg::Exclude("*".into()),
            ]
        );
        assert!(t.filter.no_default_excludes);
        let none = Test::parse_from(["t"]);
        assert!(none.filter.rules.is_empty() && !none.filter.no_default_excludes);
    }
}
