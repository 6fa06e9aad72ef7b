//! One event stream, several printers.
//!
//! The engine emits [`Event`]s and never prints; the command line picks a printer: JSON Lines
//! (each object tagged with its `type`) or text. stdout carries results, stderr problems.

use std::io::Write;
use std::sync::Mutex;

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

    /// The work is over: clear any live display before the summary is printed.
    fn finish(&self) {}
}

/// Prints every event as one JSON object per line on stdout.
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&self, event: &Event) {
        print_json(event);
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
            Event::Problem { path, message } => eprintln!("musicfs: {path}: {message}"),
            Event::Damaged { path, reason } => println!("DAMAGED {path}: {reason}"),
            Event::Unreadable { path, reason } => println!("unreadable {path}: {reason}"),
            Event::Edited { path, reason, .. } if !self.quiet => {
                println!("edited {path}: {reason}")
            }
            Event::Missing { path } if !self.quiet => println!("missing {path}"),
            Event::Unrepaired { path, reason } => println!("unrepaired {path}: {reason}"),
            Event::Repaired { path } if !self.quiet => println!("repaired {path}"),
            Event::Action { action, path, .. } if self.actions && !self.quiet => {
                println!("{action:>7} {path}")
            }
            Event::FileRead { path, bytes } if self.verbose && !self.quiet => {
                eprintln!("   read {path} ({bytes} bytes)")
            }
            _ => {}
        }
    }
}

/// Text output with a progress bar on stderr while files are read or written. The bar is
/// drawn only when stderr is a terminal; events are printed around it.
pub struct ProgressSink {
    inner: TextSink,
    bar: indicatif::ProgressBar,
}

impl ProgressSink {
    /// Wraps a text printer.
    pub fn new(inner: TextSink) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::stderr_with_hz(10),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>12} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        ProgressSink { inner, bar }
    }
}

impl Sink for ProgressSink {
    fn event(&self, event: &Event) {
        self.bar.suspend(|| self.inner.event(event));
    }

    fn phase(&self, name: &str, _files: u64, bytes: u64) {
        self.bar.set_message(name.to_string());
        self.bar.inc_length(bytes);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
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
