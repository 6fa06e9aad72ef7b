//! The lines of `ssh_config` files that apply to one host, each with its file and line:
//! tokens, `Host` and `Match` selection, `Include`, patterns and `%` tokens, as OpenSSH's
//! `readconf.c` has them. What the lines mean is `config.rs`'s business.
//!
//! Never does: run a `Match exec` command (it is refused when reached), or follow `Include`
//! deeper than 16 levels.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::{Refusal, MAX_INCLUDE_DEPTH};
use crate::error::Error;
use crate::origin::SshSpec;

/// One line of a configuration file that applies to the host.
#[derive(Clone, Debug)]
pub(super) struct Directive {
    /// As written.
    pub keyword: String,
    /// Lower case.
    pub key: String,
    /// The arguments, unquoted.
    pub args: Vec<String>,
    /// Everything after the keyword (and `=`), for `ProxyCommand`.
    pub rest: String,
    /// The file it is in.
    pub file: PathBuf,
    /// Its line (from 1).
    pub line: usize,
}

impl Directive {
    pub fn refuse(&self, reason: impl Into<String>) -> Refusal {
        Refusal {
            keyword: self.keyword.clone(),
            file: self.file.clone(),
            line: self.line,
            reason: reason.into(),
        }
    }

    pub fn first_arg(&self) -> std::result::Result<&str, Refusal> {
        self.args
            .first()
            .map(String::as_str)
            .ok_or_else(|| self.refuse("a value is missing"))
    }
}

/// Why reading stopped.
pub(super) enum Stop {
    /// A keyword the built-in client cannot honour.
    Refused(Refusal),
    /// A file could not be read.
    Failed(Error),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Stop {
        Stop::Refused(refusal)
    }
}

pub(super) type Read<T> = std::result::Result<T, Stop>;

/// The configuration read for one host: what applies, in order.
pub(super) struct Reader<'a> {
    pub home: &'a Path,
    pub spec: &'a SshSpec,
    pub local_user: Option<String>,
    /// The lines that apply, in the order read.
    pub found: Vec<Directive>,
}

impl Reader<'_> {
    fn ssh_dir(&self) -> PathBuf {
        self.home.join(".ssh")
    }

    /// The first value found so far for `key`.
    fn first(&self, key: &str) -> Option<&Directive> {
        self.found.iter().find(|d| d.key == key)
    }

    /// The host name as `Match host` sees it: the `HostName` found so far, or the host given.
    fn current_host(&self) -> String {
        self.first("hostname")
            .and_then(|d| d.args.first())
            .map(|name| expand(name, &[('h', &self.spec.host)]).unwrap_or_else(|_| name.clone()))
            .unwrap_or_else(|| self.spec.host.clone())
    }

    fn current_user(&self) -> String {
        self.spec
            .user
            .clone()
            .or_else(|| self.first("user").and_then(|d| d.args.first().cloned()))
            .or_else(|| self.local_user.clone())
            .unwrap_or_default()
    }

    /// Reads `path`; `active` is whether its first lines apply (they do until a `Host` or
    /// `Match` line says otherwise).
    pub fn read_file(&mut self, path: &Path, mut active: bool, depth: u32) -> Read<()> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && depth > 0 => return Ok(()),
            Err(e) => return Err(Stop::Failed(Error::io(path, e))),
        };
        for (index, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|e| Stop::Failed(Error::io(path, e)))?;
            let Some(directive) = tokenize(&line, path, index + 1) else {
                continue;
            };
            match directive.key.as_str() {
                "host" => active = host_matches(&directive.args, &self.spec.host),
                "match" => active = self.match_line(&directive)?,
                "include" if active => {
                    if depth + 1 > MAX_INCLUDE_DEPTH {
                        return Err(directive
                            .refuse(format!("more than {MAX_INCLUDE_DEPTH} levels of Include"))
                            .into());
                    }
                    for pattern in &directive.args {
                        let pattern = expand_tilde(pattern, self.home);
                        let pattern = if Path::new(&pattern).is_absolute() {
                            PathBuf::from(pattern)
                        } else {
                            self.ssh_dir().join(pattern)
                        };
                        let files = glob(&pattern).map_err(|reason| directive.refuse(reason))?;
                        for file in files {
                            self.read_file(&file, true, depth + 1)?;
                        }
                    }
                }
                _ if active => self.found.push(directive),
                _ => {}
            }
        }
        Ok(())
    }

    /// Evaluates a `Match` line's criteria in order, as OpenSSH does: once one fails, the
    /// rest are not evaluated (a later `exec` is not run, and not refused).
    fn match_line(&self, directive: &Directive) -> Read<bool> {
        let mut args = directive.args.iter();
        let mut result = true;
        let mut any = false;
        while let Some(arg) = args.next() {
            any = true;
            let (negate, criterion) = match arg.strip_prefix('!') {
                Some(rest) => (true, rest.to_ascii_lowercase()),
                None => (false, arg.to_ascii_lowercase()),
            };
            if criterion == "all" {
                if negate {
                    result = false;
                }
                continue;
            }
            let takes_value = !matches!(criterion.as_str(), "canonical" | "final");
            let value = if takes_value {
                match args.next() {
                    Some(value) => value.as_str(),
                    None => {
                        return Err(directive
                            .refuse(format!("Match {criterion} needs a value"))
                            .into())
                    }
                }
            } else {
                ""
            };
            if !result {
                continue;
            }
            let matched = match criterion.as_str() {
                "host" => pattern_list_matches(value, &self.current_host(), true),
                "originalhost" => pattern_list_matches(value, &self.spec.host, true),
                "user" => pattern_list_matches(value, &self.current_user(), false),
                "localuser" => pattern_list_matches(
                    value,
                    self.local_user.as_deref().unwrap_or_default(),
                    false,
                ),
                other => {
                    return Err(directive
                        .refuse(format!(
                            "Match {other} is not supported by the built-in SSH client"
                        ))
                        .into())
                }
            };
            if matched == negate {
                result = false;
            }
        }
        if !any {
            return Err(directive.refuse("Match needs a criterion").into());
        }
        Ok(result)
    }
}

/// Splits a line into keyword and arguments; `None` for a blank line or a comment.
pub(super) fn tokenize(line: &str, file: &Path, number: usize) -> Option<Directive> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = &line[..end];
    let mut rest = line[end..].trim_start();
    if let Some(after) = rest.strip_prefix('=') {
        rest = after.trim_start();
    }
    Some(Directive {
        keyword: keyword.to_owned(),
        key: keyword.to_ascii_lowercase(),
        args: split_args(rest),
        rest: rest.to_owned(),
        file: file.to_owned(),
        line: number,
    })
}

/// Whitespace-separated arguments; double quotes group; a word starting with `#` ends the
/// line.
pub(super) fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '#' if !quoted && !in_word => break,
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(current);
    }
    args
}

/// OpenSSH's wildcard match: `*` any run, `?` one character.
pub(in crate::origin::ssh) fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `Host` line: some pattern matches and no negated one does.
pub(super) fn host_matches(patterns: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let mut matched = false;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        if wildcard(&pattern.to_ascii_lowercase(), &host) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// A comma-separated pattern list, as `Match` criteria take.
pub(super) fn pattern_list_matches(list: &str, value: &str, fold_case: bool) -> bool {
    let fold = |s: &str| {
        if fold_case {
            s.to_ascii_lowercase()
        } else {
            s.to_owned()
        }
    };
    let patterns: Vec<String> = list.split(',').map(str::to_owned).collect();
    let value = fold(value);
    let mut matched = false;
    for pattern in &patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        if wildcard(&fold(pattern), &value) {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

/// `~/x` and `~` under `home`.
pub(super) fn expand_tilde(path: &str, home: &Path) -> String {
    if path == "~" {
        home.display().to_string()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest).display().to_string()
    } else {
        path.to_owned()
    }
}

/// The files `pattern` names, sorted; `*` and `?` may appear in any component. A pattern
/// without wildcards names its file whether or not it exists (a missing one reads as empty).
pub(super) fn glob(pattern: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let mut candidates = vec![PathBuf::from("/")];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        if part == "/" {
            continue;
        }
        if part.contains('[') {
            return Err(format!(
                "the built-in SSH client reads only * and ? in Include patterns, not [ ] ({})",
                pattern.display()
            ));
        }
        if !part.contains(['*', '?']) {
            candidates = candidates.into_iter().map(|dir| dir.join(&*part)).collect();
            continue;
        }
        let mut next = Vec::new();
        for dir in candidates {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| !name.starts_with('.') || part.starts_with('.'))
                .filter(|name| wildcard(&part, name))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|name| dir.join(name)));
        }
        candidates = next;
    }
    Ok(candidates
        .into_iter()
        .filter(|path| !path.is_dir())
        .collect())
}

/// Expands `%c` tokens from `tokens` and `%%`; an unknown token is returned as the error.
pub(super) fn expand(value: &str, tokens: &[(char, &str)]) -> std::result::Result<String, char> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(token) => match tokens.iter().find(|(name, _)| *name == token) {
                Some((_, replacement)) => out.push_str(replacement),
                None => return Err(token),
            },
            None => return Err('%'),
        }
    }
    Ok(out)
}
