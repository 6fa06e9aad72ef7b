//! One event stream, several printers.
//!
//! The engine emits [`Event`]s and never prints; the command line picks a printer: JSON Lines
//! (each object tagged with its `type`) or text. stdout carries results, stderr problems.
//! What stderr shows can be appended to a log file as well (`--log-file`, [`open_log`]),
//! each line stamped with the time, for runs from cron.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use serde::Serialize;

/// Something worth telling the user about.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A file or directory could not be read or written; the work went on.
    Problem {
        /// Path, relative to its origin or absolute.
        path: String,
        /// What went wrong.
        message: String,
        /// In a sync, which side is at fault (`"side": "src"` or `"dst"` in JSON) and the
        /// file as that side shows it; `None` elsewhere, and then absent from JSON.
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        fault: Option<Fault>,
    },
    /// A file was read and chunked during a scan.
    FileRead {
        /// Relative path.
        path: String,
        /// Its size.
        bytes: u64,
    },
    /// One step of a sync (planned, or done).
    Action {
        /// `write`, `move`, `meta`, `symlink`, `mkdir`, `delete`.
        action: &'static str,
        /// Relative path in the destination.
        path: String,
        /// Bytes that had to come from the source for this step.
        bytes_transferred: u64,
    },
    /// A file whose content changed while its metadata did not, or a repository object that
    /// does not match its id.
    Damaged {
        /// Relative path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file whose content and metadata changed since the last scan: an edit, not damage.
    Edited {
        /// Relative path.
        path: String,
        /// `verified` (the snapshot's audio), `changed` or `unknown` (no audio hash).
        audio: &'static str,
        /// What changed, in words.
        reason: String,
    },
    /// A file of the snapshot not found at its path.
    Missing {
        /// Relative path.
        path: String,
    },
    /// A file that could not be read to be verified.
    Unreadable {
        /// Relative path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A damaged file rebuilt from good chunks and put back in place (`verify --repair-from`).
    Repaired {
        /// Relative path.
        path: String,
    },
    /// A damaged file that could not be rebuilt; it was left as it was.
    Unrepaired {
        /// Relative path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A remote sync failed for a transient reason and is tried again.
    Retry {
        /// Why the attempt failed, naming the origin.
        reason: String,
        /// The wait before the next attempt, in seconds.
        delay_s: f64,
        /// The number of the retry about to be made, from 1.
        attempt: u32,
        /// The most retries this run makes, when capped by a count.
        max_attempts: Option<u32>,
        /// The seconds of `--retry-for` left, when the budget is a time.
        seconds_left: Option<u64>,
    },
}

/// The side of a sync where something went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The source: a file or directory could not be read there.
    Src,
    /// The destination: a file or directory could not be written there.
    Dst,
}

impl Side {
    /// `SRC` or `DST`, as the command line names the two arguments.
    pub fn label(self) -> &'static str {
        match self {
            Side::Src => "SRC",
            Side::Dst => "DST",
        }
    }
}

/// Where a sync's problem lies: its side, and the file as that side's origin displays it
/// (`Origin::display`), for text; JSON carries only the side (its `path` is relative).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// The side at fault.
    pub side: Side,
    /// The file as its origin displays it: `/music/a.mp3`, `nas:/music/a.mp3`.
    #[serde(skip)]
    pub shown: String,
}

impl Event {
    /// A problem outside a sync (no side).
    pub fn problem(path: impl Into<String>, message: impl Into<String>) -> Event {
        Event::Problem {
            path: path.into(),
            message: message.into(),
            fault: None,
        }
    }

    /// The text line of a problem: `DST /lib/a.mp3: permission denied; …` in a sync,
    /// `path: message` elsewhere, the message alone when there is no path; names and reasons
    /// quoted when they hold control characters.
    fn problem_line(path: &str, message: &str, fault: Option<&Fault>) -> String {
        match fault {
            Some(fault) => format!(
                "{} {}: {}",
                fault.side.label(),
                quoted(&fault.shown),
                reason(message)
            ),
            None if path.is_empty() => reason(message),
            None => format!("{}: {}", quoted(path), reason(message)),
        }
    }

    /// The one line a retry notice is for people: `nas: connection lost; retrying in 2 s
    /// (attempt 3 of 3)` or `… (attempt 3, 4m 10s left)`.
    fn retry_line(
        reason: &str,
        delay_s: f64,
        attempt: u32,
        max_attempts: Option<u32>,
        seconds_left: Option<u64>,
    ) -> String {
        let budget = match (max_attempts, seconds_left) {
            (Some(max), _) => format!(" of {max}"),
            (None, Some(left)) => format!(
                ", {} left",
                humantime::format_duration(std::time::Duration::from_secs(left))
            ),
            (None, None) => String::new(),
        };
        format!("{reason}; retrying in {delay_s:.1} s (attempt {attempt}{budget})")
    }
}

/// `text` as it is, or in double quotes with escapes when it holds control characters (a
/// newline in a tag would otherwise fake a line of output), as `ls` and git quote names.
pub fn quoted(text: &str) -> String {
    if text.chars().any(char::is_control) || text.starts_with(' ') || text.ends_with(' ') {
        format!("{text:?}")
    } else {
        text.to_string()
    }
}

/// A reason for a text line: quoted when it holds control characters, and without the
/// `(os error N)` a system error's text carries (`error::without_os_error`).
fn reason(text: &str) -> String {
    quoted(&crate::error::without_os_error(text))
}

/// The log file every line for stderr is copied to, once opened.
static LOG: OnceLock<Mutex<File>> = OnceLock::new();

/// Opens `path` for appending (creating it) as the process's log: from now on every line
/// [`say`] prints, and every diagnostic written through [`LogWriter`], is appended there
/// too. Called once, before any work; a second call changes nothing.
pub fn open_log(path: &Path) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = LOG.set(Mutex::new(file));
    Ok(())
}

/// Appends `line` to the log file, if there is one, after the time in UTC
/// (`2026-12-03T05:00:00Z line`). A log that cannot be written is not worth failing the
/// work for.
pub fn log_line(line: &str) {
    if let Some(log) = LOG.get() {
        let secs = crate::time::now_ns().div_euclid(1_000_000_000);
        let stamp = crate::time::Civil::of_unix(secs).format('T');
        let mut file = log.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(file, "{stamp}Z {line}");
    }
}

/// Prints `musicfs: LINE` on stderr (if there still is one: a `serve` whose client went away
/// has lost it, and must not panic over that), and appends it to the log file.
pub fn say(line: &str) {
    let line = format!("musicfs: {line}");
    let _ = writeln!(std::io::stderr(), "{line}");
    log_line(&line);
}

/// Diagnostics (`tracing`) for the log file: the same text as on stderr, which already
/// starts with its time. Writes nothing while no log is open.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(log) = LOG.get() {
            let mut file = log.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = file.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether a log file is open.
pub fn logging() -> bool {
    LOG.get().is_some()
}

/// Where events go. Implementations must be cheap: the engine calls them from worker threads.
pub trait Sink: Send + Sync {
    /// Receives one event.
    fn event(&self, event: &Event);

    /// A stretch of work begins: `files` files of `bytes` bytes in all will be processed.
    /// Phases may overlap (a sync scans both sides at once); their totals add up.
    fn phase(&self, _name: &str, _files: u64, _bytes: u64) {}

    /// `bytes` more bytes of the current work are done.
    fn advance(&self, _bytes: u64) {}

    /// `files` more files of the current work are done, for work whose events do not say so
    /// (a file read or written is counted from its event).
    fn files_done(&self, _files: u64) {}

    /// The work is over: clear any live display before the summary is printed.
    fn finish(&self) {}
}

/// Prints every event as one JSON object per line on stdout; a retry notice is said on stderr
/// too.
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&self, event: &Event) {
        print_json(event);
        // A notice for whoever watches stderr (or reads the log file) as well.
        if let Event::Retry {
            reason,
            delay_s,
            attempt,
            max_attempts,
            seconds_left,
        } = event
        {
            say(&Event::retry_line(
                &self::reason(reason),
                *delay_s,
                *attempt,
                *max_attempts,
                *seconds_left,
            ));
        }
    }
}

/// Prints one JSON line on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    if let Ok(line) = serde_json::to_string(value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// Human-readable output: problems, damage and unreadable files always, edits unless quiet,
/// steps when verbose.
pub struct TextSink {
    /// Print every step and every file read.
    pub verbose: bool,
    /// Print nothing but problems.
    pub quiet: bool,
    /// Print every step of a sync even when not verbose (a dry run's plan).
    pub actions: bool,
    lock: Mutex<()>,
}

impl TextSink {
    /// A text printer.
    pub fn new(verbose: bool, quiet: bool) -> Self {
        TextSink {
            verbose,
            quiet,
            actions: verbose,
            lock: Mutex::new(()),
        }
    }
}

impl Sink for TextSink {
    fn event(&self, event: &Event) {
        let _guard = self.lock.lock();
        match event {
            Event::Problem {
                path,
                message,
                fault,
            } => say(&Event::problem_line(path, message, fault.as_ref())),
            Event::Damaged { path, reason: why } => {
                println!("DAMAGED {}: {}", quoted(path), reason(why))
            }
            Event::Unreadable { path, reason: why } => {
                println!("unreadable {}: {}", quoted(path), reason(why))
            }
            Event::Edited {
                path, reason: why, ..
            } if !self.quiet => println!("edited {}: {}", quoted(path), reason(why)),
            Event::Missing { path } if !self.quiet => println!("missing {}", quoted(path)),
            Event::Unrepaired { path, reason: why } => {
                println!("unrepaired {}: {}", quoted(path), reason(why))
            }
            Event::Repaired { path } if !self.quiet => println!("repaired {}", quoted(path)),
            Event::Action { action, path, .. } if self.actions && !self.quiet => {
                println!("{action:>7} {}", quoted(path))
            }
            Event::FileRead { path, bytes } if self.verbose && !self.quiet => {
                let line = format!("   read {} ({bytes} bytes)", quoted(path));
                eprintln!("{line}");
                log_line(&line);
            }
            Event::Retry {
                reason: why,
                delay_s,
                attempt,
                max_attempts,
                seconds_left,
            } if !self.quiet => say(&Event::retry_line(
                &reason(why),
                *delay_s,
                *attempt,
                *max_attempts,
                *seconds_left,
            )),
            _ => {}
        }
    }
}

/// Text output with a progress bar on stderr while files are read or written. The bar is
/// drawn only when stderr is a terminal; events are printed around it.
///
/// The bar shows one stage of the work at a time: phases that overlap (a sync's two scans)
/// add up, and a phase that begins once all the work announced before it is done (a sync's
/// writing, after its scans) starts the bar again from zero with its own totals. Files done
/// are counted from the events (a file read, a file written) and from [`Sink::files_done`].
pub struct ProgressSink {
    inner: TextSink,
    bar: indicatif::ProgressBar,
    files: Mutex<FileCount>,
}

/// Files of the current stage: done and announced.
#[derive(Default)]
struct FileCount {
    done: u64,
    total: u64,
}

impl ProgressSink {
    /// Wraps a text printer.
    pub fn new(inner: TextSink) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>10} [{wide_bar}] {prefix} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        ProgressSink {
            inner,
            bar,
            files: Mutex::new(FileCount::default()),
        }
    }

    /// Shows the files done of the stage's total (`12/120 files`), or nothing when the stage
    /// announced no files.
    fn show_files(&self, files: &FileCount) {
        if files.total > 0 {
            self.bar.set_prefix(format!(
                "{}/{} files",
                files.done.min(files.total),
                files.total
            ));
        } else {
            self.bar.set_prefix("");
        }
    }
}

impl Sink for ProgressSink {
    fn event(&self, event: &Event) {
        self.bar.suspend(|| self.inner.event(event));
        if matches!(
            event,
            Event::FileRead { .. }
                | Event::Action {
                    action: "write",
                    ..
                }
        ) {
            self.files_done(1);
        }
    }

    fn phase(&self, name: &str, files: u64, bytes: u64) {
        // No work (a scan that reads nothing) changes nothing on the display.
        if files == 0 && bytes == 0 {
            return;
        }
        let mut count = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        let length = self.bar.length().unwrap_or(0);
        self.bar.set_message(name.to_string());
        if self.bar.position() >= length {
            // The work announced so far is done: a new stage, from zero.
            *count = FileCount::default();
            count.total = files;
            self.show_files(&count);
            self.bar.reset();
            self.bar.set_length(bytes);
        } else {
            count.total += files;
            self.show_files(&count);
            self.bar.inc_length(bytes);
        }
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }

    fn files_done(&self, files: u64) {
        let mut count = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        count.done += files;
        self.show_files(&count);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for ProgressSink {
    /// A command that fails (or is interrupted) before `finish` leaves no bar on the terminal
    /// above its error.
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

/// Discards everything (for library callers and tests).
pub struct NullSink;

impl Sink for NullSink {
    fn event(&self, _: &Event) {}
}

/// Lossy display of a relative path.
pub fn display_path(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{Event, Fault, Side};

    #[test]
    fn a_sync_problem_names_its_side_and_quotes_control_characters() {
        let fault = Fault {
            side: Side::Dst,
            shown: "/lib/a\nb.mp3".into(),
        };
        let line = Event::problem_line("a\nb.mp3", "permission denied", Some(&fault));
        assert_eq!(line, "DST \"/lib/a\\nb.mp3\": permission denied");
        assert_eq!(Event::problem_line("", "no space", None), "no space");
        let json = serde_json::to_value(Event::Problem {
            path: "a.mp3".into(),
            message: "m".into(),
            fault: Some(Fault {
                side: Side::Src,
                shown: "/music/a.mp3".into(),
            }),
        })
        .unwrap();
        assert_eq!(json["side"], "src");
        assert_eq!(json["path"], "a.mp3");
        assert!(json.get("shown").is_none(), "{json}");
        let plain = serde_json::to_value(Event::problem("p", "m")).unwrap();
        assert!(plain.get("side").is_none(), "{plain}");
        assert_eq!(plain["type"], "problem");
    }

    #[test]
    fn a_retry_notice_says_its_budget() {
        let reason = "nas: connection lost";
        assert_eq!(
            Event::retry_line(reason, 2.0, 3, Some(3), None),
            "nas: connection lost; retrying in 2.0 s (attempt 3 of 3)"
        );
        assert_eq!(
            Event::retry_line(reason, 2.04, 3, None, Some(250)),
            "nas: connection lost; retrying in 2.0 s (attempt 3, 4m 10s left)"
        );
    }
}
