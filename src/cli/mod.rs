//! The command line: parsing and printing only; the work is in the library.

mod check;
mod config;
mod diff;
mod examples;
mod filter_args;
mod forget;
mod gc;
mod init;
mod inspect;
mod mount;
mod repair;
mod scan;
mod serve;
mod settings;
mod snapshots;
mod store;
mod sync;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use crate::interrupt::Cause;
use crate::repo::{Location, Repository};
use crate::report::{JsonSink, ProgressSink, Sink, TextSink};

/// Exit codes, documented in the man page and `docs/exit-codes.md`.
pub mod exit {
    /// Success, or no differences.
    pub const OK: u8 = 0;
    /// Differences or damage found.
    pub const DIFFERENCES: u8 = 1;
    /// Usage or input error.
    pub const USAGE: u8 = 2;
    /// Some files could not be transferred (or verified); the rest was.
    pub const PARTIAL: u8 = 3;
    /// Another sync holds the destination's lock, or the index is locked by (or against)
    /// `repair-index` or `gc`.
    pub const LOCKED: u8 = 4;
    /// An origin could not be reached.
    pub const UNREACHABLE: u8 = 5;
    /// `serve`: the client went away mid-session (128 + SIGHUP).
    pub const HANGUP: u8 = 129;
    /// Stopped by SIGINT (Ctrl-C) after cleaning up (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGTERM after cleaning up (128 + SIGTERM).
    pub const TERMINATED: u8 = 143;
}

/// The exit codes, in one paragraph: the end of `musicfs --help` and every man page's EXIT
/// STATUS section.
macro_rules! exit_status_text {
    () => {
        "Exit codes: 0 success or no differences, 1 differences or damage found, 2 usage or input \
error (a damaged, missing or empty index: musicfs repair-index), 3 partial (some files could \
not be transferred or read), 4 destination locked by another sync, or index in use during \
repair-index or gc, 5 origin unreachable, 130 interrupted by SIGINT, 143 by SIGTERM (temporary \
files removed; a second signal ends at once)."
    };
}

/// The exit codes paragraph, for the man pages.
pub const EXIT_STATUS: &str = exit_status_text!();

/// The environment variables musicfs reads, for the man pages: name, meaning.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("MUSICFS_REPO", "The repository directory, as --repo."),
    (
        "MUSICFS_CONFIG",
        "The configuration file, instead of $XDG_CONFIG_HOME/musicfs/config.toml.",
    ),
    (
        "MUSICFS_RSH",
        "The command that reaches SSH hosts, as -e/--rsh.",
    ),
    ("MUSICFS_TIMEOUT", "As --timeout."),
    ("MUSICFS_RETRIES", "As --retries."),
    ("MUSICFS_RETRY_FOR", "As --retry-for."),
    ("MUSICFS_BWLIMIT", "As --bwlimit."),
    ("MUSICFS_REMOTE_MUSICFS", "As --remote-musicfs."),
    ("MUSICFS_DEPLOY_AGENT", "As --deploy-agent (1 or 0)."),
    (
        "MUSICFS_LOG",
        "A tracing filter for diagnostics on stderr (musicfs=debug), beyond -v.",
    ),
    (
        "XDG_CONFIG_HOME, XDG_DATA_HOME, HOME",
        "Where the configuration file and the default repository are.",
    ),
    (
        "TZ",
        "The time zone of listed and parsed times (else /etc/localtime).",
    ),
];

const AFTER_HELP: &str = concat!(
    "Examples:
  musicfs sync /mnt/nas/music ~/Music          mirror a library
  musicfs sync --delete --dry-run SRC DST      show what a mirror would do
  musicfs sync ~/Music@yesterday /tmp/music    restore yesterday's snapshot
  musicfs verify ~/Music                       prove every file against its snapshot
  musicfs config                               the effective settings and their sources

",
    exit_status_text!()
);

/// Content-addressed sync for music libraries.
#[derive(Debug, Parser)]
#[command(name = "musicfs", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Repository directory, made by `musicfs init` [default: $XDG_DATA_HOME/musicfs, created on
    /// first use]
    #[arg(long, global = true, env = "MUSICFS_REPO", value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Print JSON Lines (one object per line, each with a "type") on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only problems
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print every step
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// Append what stderr shows (messages, problems, warnings; not the progress bar) to FILE,
    /// each line stamped with the time in UTC, then one line per run: what ran, its exit
    /// status, what it did and how long it took. For `mount`, the mount's log instead (its
    /// warnings, kept below 4 MiB, the older half in FILE.1) [default for a detached mount:
    /// $XDG_STATE_HOME/musicfs/mount-MOUNTPOINT.log, or under ~/.local/state/musicfs]
    #[arg(long, global = true, env = "MUSICFS_LOG_FILE", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a repository
    ///
    /// Creates the repository in DIR, else at --repo (or MUSICFS_REPO), else at the default
    /// location ($XDG_DATA_HOME/musicfs, or ~/.local/share/musicfs), and prints where. A
    /// repository already there is left as it is; any other directory must be empty. Only the default location is created without it: a repository named by
    /// --repo or MUSICFS_REPO must exist, so that a mistyped path fails instead of starting
    /// an empty repository.
    #[command(after_help = examples::INIT)]
    Init(init::InitArgs),
    /// Index an origin into the repository (incremental)
    ///
    /// ORIGIN is a directory or an SSH origin (host:path, user@host:path,
    /// ssh://user@host:port/path or sftp://…). An SSH origin is listed and read over SFTP and
    /// chunked here, since this machine's repository needs the bytes; SFTP gives no inode or
    /// ctime and whole-second mtimes, so a file there is read again when its size, mtime or
    /// mode changed. An argument of the form scheme://… whose scheme this build has no
    /// transport for is refused (exit 2).
    #[command(after_help = examples::SCAN)]
    Scan(scan::ScanArgs),
    /// Make DST an exact copy of SRC, moving only missing chunks
    ///
    /// Either side may be an SSH origin: host:path, user@host:path,
    /// ssh://user@host:port/path or sftp://user@host:port/path (a local name with a colon is
    /// written ./a:b; file:///path is a local path too). A scheme:// this build has no
    /// transport for is refused at once (exit 2). ~/.ssh/config
    /// (Host aliases, HostName, Port, User, IdentityFile), ssh-agent, key files and
    /// ~/.ssh/known_hosts are honoured; an unknown host key is refused unless
    /// --accept-new-host-key, a changed one always. When the remote host has musicfs on its
    /// PATH (or --remote-musicfs names it), `musicfs serve --stdio` runs there and only the
    /// chunks the destination lacks cross the network; otherwise, or with --sftp, files are
    /// listed over SFTP and changed ones read whole (sftp:// asks for SFTP too). A dropped or silent connection is
    /// retried (--retries, --timeout) and resumes where it stopped.
    ///
    /// Restore: SRC may be a snapshot, as diff reads one: its id, a unique prefix of 8 or more
    /// hex digits (see `musicfs snapshots`), or ORIGIN@TIME (the latest snapshot of ORIGIN at
    /// or before TIME). DST then gets that snapshot's tree, written as any sync writes it;
    /// each chunk is read from the snapshot's origin, any other origin the repository
    /// records, or the history it keeps (older tags). A file with a chunk found nowhere is a
    /// problem (exit 3), the rest is restored. An SSH DST is written over SFTP.
    #[command(after_help = examples::SYNC)]
    Sync(sync::SyncArgs),
    /// Prove repository objects and an origin's files against their snapshot
    ///
    /// Re-hashes every stored chunk list and tree, then re-reads every file of ORIGIN's latest
    /// snapshot (a directory, or an SSH origin read over SFTP). A file whose content is the snapshot's is ok, even when touched. One whose
    /// content differs is judged by its metadata: when its size, mtime, ctime, inode and mode
    /// are still those the last scan recorded, the content changed behind the file system's
    /// back (bit rot) and the file is damaged; when they changed, it was edited since the last
    /// scan, which is not damage. Every write sets the ctime and no user can set it back, so a
    /// tag editor that keeps the mtime, or `touch -r` after an edit, still leaves an edit. An
    /// edited file's audio is checked against the snapshot's audio hash: "tags edited, audio
    /// verified" when it is the same, "audio changed" (a re-encode) when not. A file no longer
    /// there is missing. `musicfs scan ORIGIN` makes the edits and deletions the new snapshot.
    ///
    /// With --repair-from FROM (a directory, an SSH origin or a configured name: another copy
    /// of the library), each damaged file is rebuilt from chunks proven against their hashes:
    /// the chunks the damage spared from the file itself, the others from the same path in
    /// FROM, from wherever the repository records them in FROM or any origin it knows, or
    /// from the history it keeps (tags, padding). The rebuilt file is written under a
    /// temporary name with the mode and mtime the scan recorded, read back and checked whole,
    /// then renamed over the damaged file and recorded, so the next scan does not read it
    /// again. Edited and missing files are never touched (`musicfs sync` brings missing ones
    /// back); a file that cannot be rebuilt is left as it was. A sync into ORIGIN is locked
    /// out meanwhile (exit 4 if one runs). FROM is opened before anything is verified: one
    /// that cannot be reached exits 5, a scheme this build has no transport for 2.
    ///
    /// Output: a line per file that is not ok (DAMAGED path: reason; edited path: reason;
    /// missing path; unreadable path: reason), with --repair-from a line per damaged file
    /// (repaired path; unrepaired path: reason), then a summary counting each verdict.
    /// --json: {"type": "damaged" | "edited" | "missing" | "unreadable" | "repaired" |
    /// "unrepaired", "path", "reason", and for edits "audio": "verified" | "changed" |
    /// "unknown"}, then {"type": "summary", "objects_checked", "files_checked",
    /// "bytes_checked", "ok", "edited", "missing", "unreadable", "damaged", "repaired",
    /// "unrepaired", "duration_s"}.
    ///
    /// Exit status: 0 no damage, or every damaged file repaired (edited, missing and touched
    /// files are not damage), 1 damage found and left, 2 error, 3 no damage left but a file
    /// could not be read, 4 ORIGIN locked by a sync (with --repair-from), 5 FROM unreachable.
    #[command(after_help = examples::VERIFY)]
    Verify(verify::VerifyArgs),
    /// Show what changed between two snapshots, in files and in tags
    ///
    /// Reads from A to B, as diff(1), git diff and restic diff do: `added` is in B and not in
    /// A, `removed` in A and not in B, a move goes from its path in A to its path in B, and a
    /// tag field shows A's value → B's. So `musicfs diff ~/Music@2026-11-01 ~/Music` is what
    /// changed since the 1st of November, and `musicfs diff DST SRC` is what `musicfs sync SRC
    /// DST` would change at DST (`sync --dry-run SRC DST` lists the sync's own steps). With A
    /// alone, compares the snapshot of A's origin taken before A (for an origin: its last
    /// snapshot before this scan) with A. Each operand is an origin, a local directory or an
    /// SSH origin read over SFTP (scanned incrementally first, which records a snapshot), a
    /// snapshot id or a unique prefix of 8 or more hex digits (as `musicfs snapshots` prints
    /// them), or ORIGIN@TIME: the latest snapshot of ORIGIN (an origin, or an origin name as
    /// recorded) taken at or before the end of TIME. TIME is RFC 3339
    /// (2026-11-24T20:00:00Z, 2026-11-24T21:00:00+01:00), a local date or time in the TZ zone
    /// (2026-11-24, meaning that whole day; 2026-11-24 20:00, that minute; quote the space),
    /// now, today, yesterday, latest (the newest snapshot), or an age (90s, 90m, 2h, 3d, 1w
    /// ago). A time as `musicfs
    /// snapshots` prints it picks that snapshot. A prefix that matches several snapshots is
    /// refused with the matches listed (exit 2).
    ///
    /// Classes: added, removed (a path on one side only); modified (audio changed, or content
    /// changed where no audio hash is known; a symlink's new target); tags (same audio, tag
    /// fields differ, shown as field: before → after; reported when pictures changed too);
    /// art (same audio and tags, embedded pictures changed); moved (content, or audio when
    /// retagged too, now at a new path; with the old path, and the tag fields when retagged);
    /// type (a file became a directory or symlink, or the other way). Mode or mtime changes
    /// alone are not reported. A new or removed directory is listed file by file.
    ///
    /// Output: changes grouped by directory, then a summary line with the counts and the new
    /// data in B (the chunks of B's new, changed and moved files that A lacks: what `musicfs
    /// sync B A` would move); --stat prints counts per directory; --name-only the paths alone
    /// (no summary); --json one object per change ({"type": class, "path", "from" for moves,
    /// "fields": [{"field", "before", "after"}] for tag changes}) and a last {"type":
    /// "summary", "counts", "changes", "bytes_to_transfer", "duration_s"}.
    ///
    /// Exit status: 0 no differences, 1 differences, 2 error (or a file a scan could not
    /// read: the comparison is incomplete).
    #[command(after_help = examples::DIFF)]
    Diff(diff::DiffArgs),
    /// List snapshots
    ///
    /// One line per snapshot, oldest first: id, time (local, with its offset: TZ, else
    /// /etc/localtime; --utc for UTC), files, bytes and the origin as the repository records
    /// it. --json: {"type": "snapshot", "id", "origin", "time" (Unix seconds), "root",
    /// "files", "bytes"} per snapshot, then a summary (docs/json.md). With ORIGIN, only that origin's snapshots: ORIGIN is matched
    /// as `snapshots` prints it, else read like the origin of `scan`: a directory by its
    /// canonical path (it need not exist any more), an SSH origin (host:path, ssh://, sftp://)
    /// by the name it gives once connected. A scheme this build has no transport for is
    /// refused (exit 2).
    #[command(after_help = examples::SNAPSHOTS)]
    Snapshots(snapshots::SnapshotsArgs),
    /// Remove snapshots according to a retention policy (restic's --keep-* rules)
    ///
    /// Judges the snapshots of each origin on its own (only ORIGIN's when given), as restic's
    /// forget does: --keep-last N keeps the N newest; --keep-hourly, --keep-daily,
    /// --keep-weekly, --keep-monthly and --keep-yearly N keep the newest snapshot of each of
    /// the last N hours, days, ISO weeks, months or years that hold one (a period without a
    /// snapshot is not counted), in the local time zone (TZ). When a rule still has count left
    /// at the oldest snapshot, that one is kept too ("oldest daily snapshot"). N may be
    /// `unlimited`. A snapshot kept by any rule is kept, with every rule as a reason. The
    /// latest snapshot recorded of each origin, which verify, diff and the mount's `latest`
    /// read, is always kept. Scan state is never touched, so the next scan and sync read
    /// nothing again. At least one rule is required (exit 2). Only snapshot records are
    /// removed; `musicfs gc` then frees what nothing refers to any more.
    ///
    /// Output: per origin, the snapshots kept with their reasons and those removed, then a
    /// summary. --json: {"type": "keep" | "remove", "id", "origin", "time", "files", "bytes",
    /// "reasons"} per snapshot, then {"type": "summary", "snapshots_kept",
    /// "snapshots_removed", "dry_run", …} (docs/json.md).
    #[command(after_help = examples::FORGET)]
    Forget(forget::ForgetArgs),
    /// Remove what no snapshot refers to, and compact the index
    ///
    /// Keeps every tree, chunk list, media record and history chunk that a snapshot or an
    /// origin's scan state refers to, and removes the rest, with the file and location rows of
    /// files no longer scanned; rewrites history packs without their dead chunks, removes
    /// packs nothing refers to, then compacts index.redb, which never shrinks by itself.
    /// Run it after `musicfs forget`. It holds the repository exclusively: it fails at once
    /// (exit 4) while a scan, sync, mount or serve has the repository open, and they fail the
    /// same way while it runs. A crash leaves the index whole; the next gc finishes the job.
    ///
    /// Output: the rows and packs removed, index.redb's size and the repository's before and
    /// after. --json: {"type": "summary", "repository", "dry_run", "snapshots", "removed": {table:
    /// rows}, "packs_removed", "packs_rewritten", "pack_bytes_freed", "index_bytes_before",
    /// "index_bytes_after", "bytes_before", "bytes_after", "bytes_freed", "duration_s"}.
    #[command(after_help = examples::GC)]
    Gc(gc::GcArgs),
    /// Check that the repository's index is whole
    ///
    /// Verifies the checksum of every page of index.redb, then reads and decodes every row
    /// and re-hashes every chunk list and tree. Other commands read only what they need, and
    /// report damage where they meet it; this reads the whole index. Repair a damaged index
    /// with `musicfs repair-index`. Problems are printed as they are found (`problem` lines
    /// with --json), then a summary.
    ///
    /// Exit status: 0 the index is whole, 1 it is damaged, missing or empty, 2 error (no
    /// repository there, for instance).
    #[command(after_help = examples::CHECK)]
    Check,
    /// Rebuild a damaged index from what can still be read of it
    ///
    /// Checks the index first and leaves a whole one alone. A damaged index is kept as
    /// index.redb.damaged-TIME (TIME in UTC) beside the new one, never deleted. The new index
    /// holds every origin, snapshot, tree, chunk list, media record and scan entry that can
    /// still be read (chunk lists and trees must match their hashes); a snapshot that lost part
    /// of its tree is dropped. It prints what was kept; the next scan of each origin reads
    /// again the files whose scan state was lost. A missing or empty index is replaced by a
    /// new, empty one. Refused while another musicfs process (a scan, sync, mount or serve)
    /// has the repository open (exit 4).
    #[command(after_help = examples::REPAIR_INDEX)]
    RepairIndex,
    /// Mount every snapshot read-only (FUSE)
    ///
    /// Layout: MOUNTPOINT/ORIGIN/TIME/... holds one directory per snapshot, named by
    /// its time in UTC (2026-11-24T20:13:05Z; a second snapshot within the same second gets
    /// .2, .3, ...), and MOUNTPOINT/ORIGIN/latest is a symlink to the newest. ORIGIN is
    /// the origin as recorded (a local origin's absolute path) without its leading /, every
    /// other / replaced by _ (/home/me/Music gives home_me_Music). Snapshots taken while
    /// mounted appear within a second.
    ///
    /// Everything is read-only: writes, creation, removal, renames, chmod, truncation and
    /// extended attributes fail with EROFS. Sizes, mtimes and modes are the snapshot's;
    /// files belong to the user who mounted. Each chunk read is hashed against the
    /// snapshot before its bytes are returned, from the file's own path when it still holds
    /// them, else from any location the repository records in any of its origins, else from
    /// the history the repository keeps; a read that cannot be proven fails with EIO. Origins
    /// are read as scan reads them (a directory, or an SSH origin over SFTP, with
    /// ~/.ssh/config and known_hosts), each opened on first need; one that cannot be reached
    /// is logged once and tried again a minute later. Ogg files are served
    /// from a file whose whole hash matches, or rebuilt whole from their chunks.
    ///
    /// History: every scan keeps each file's tag, padding and container-structure chunks in
    /// the repository, so an old snapshot of a retagged file reads back exactly from them and
    /// today's audio. A file whose audio or embedded picture was replaced reads (EIO) only
    /// while some file still holds the old bytes.
    ///
    /// MOUNTPOINT must be an empty directory: one that holds files is refused (exit 2), since
    /// the mount would hide them, unless --nonempty.
    ///
    /// Without --foreground the mount is served by a detached process and this command
    /// returns once the mount is up and answers (else it exits 2 and leaves nothing mounted
    /// or running). Unmount with `fusermount3 -u MOUNTPOINT` or `umount
    /// MOUNTPOINT`, or send SIGINT/SIGTERM to the serving process; with files still open
    /// the mount is detached at once and they are served until closed. A mountpoint left
    /// stale by a killed process is reported (exit 2) with the command that clears it.
    #[command(after_help = examples::MOUNT)]
    Mount(mount::MountArgs),
    /// Show a file's container, regions, chunks, audio hash and tags
    #[command(after_help = examples::INSPECT)]
    Inspect(inspect::InspectArgs),
    /// The remote end of an SSH sync (started by musicfs itself)
    #[command(after_help = examples::SERVE)]
    Serve(serve::ServeArgs),
    /// Print the effective settings, and where each comes from
    ///
    /// Settings come from, highest precedence first: the command line, the environment
    /// (MUSICFS_REPO, MUSICFS_TIMEOUT, MUSICFS_RETRIES, MUSICFS_RETRY_FOR, MUSICFS_RSH,
    /// MUSICFS_BWLIMIT, MUSICFS_REMOTE_MUSICFS, MUSICFS_DEPLOY_AGENT), the configuration file
    /// ($XDG_CONFIG_HOME/musicfs/config.toml, else ~/.config/musicfs/config.toml, or the file
    /// MUSICFS_CONFIG names), and the built-in defaults. In the file, `repo` names the
    /// repository, the table named defaults holds defaults for flags (timeout, retries, retry_for, rsh,
    /// accept_new_host_key, bwlimit, sftp, remote_musicfs, deploy_agent, one_file_system, checksum,
    /// max_delete, and credentials: an S3 credentials file, mode 0600), and each [origin.NAME]
    /// table names an origin (url = "nas:/music") with
    /// its own settings, which come before the defaults table when NAME is given wherever an origin
    /// is (`musicfs sync nas ./lib`, `musicfs diff nas@2026-11-01 nas`). With NAME, the
    /// settings a command given that origin would use. A malformed file is an error naming
    /// the file, line and key (exit 2), for every command that reads it.
    #[command(after_help = examples::CONFIG)]
    Config(config::ConfigArgs),
    /// Print shell completions
    #[command(after_help = examples::COMPLETIONS)]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
}

/// How to reach a remote origin: flags of every command that takes one.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Trust and remember the key of an SSH host that ~/.ssh/known_hosts does not know yet
    /// (a changed key is always refused)
    #[arg(long)]
    pub accept_new_host_key: bool,
    /// At most N retries after a dropped connection or a timeout [default: 3 while the host
    /// has never answered; then no cap but --retry-for]
    #[arg(long, value_name = "N", env = "MUSICFS_RETRIES")]
    pub retries: Option<u32>,
    /// Once the host has answered, keep retrying a sync that failed for a transient reason
    /// (a dropped link, a timeout) with capped exponential backoff until DURATION has passed
    /// since the last attempt that reached it: 90s, 10m, 1h [default: 5m]
    #[arg(long, value_name = "DURATION", env = "MUSICFS_RETRY_FOR", value_parser = duration_arg)]
    pub retry_for: Option<std::time::Duration>,
    /// Seconds allowed to connect, and to wait on a silent remote [default: 30]
    #[arg(long, value_name = "SECONDS", env = "MUSICFS_TIMEOUT")]
    pub timeout: Option<u64>,
    /// Reach SSH hosts by running COMMAND (the system OpenSSH: ssh) instead of the built-in
    /// client, as rsync's -e: `COMMAND [-p PORT] [-l USER] host musicfs serve --stdio`, and
    /// `COMMAND -s host sftp` for SFTP. COMMAND is split as a shell would split it, without
    /// running a shell. Every ~/.ssh/config directive, ControlMaster, ProxyJump and
    /// OpenSSH's own host-key checking then apply
    #[arg(short = 'e', long = "rsh", value_name = "COMMAND", env = "MUSICFS_RSH")]
    pub rsh: Option<String>,
    /// S3 access key from the configuration's credentials file (never a flag: no secret in
    /// argv); `None`: the AWS environment.
    #[arg(skip)]
    pub s3_credentials: Option<crate::origin::S3Credentials>,
    /// SMB password (MUSICFS_SMB_PASSWORD) or credentials file (MUSICFS_SMB_CREDENTIALS, or
    /// an smb:// origin's `credentials` in the configuration), never a flag; `None`: the
    /// guest account.
    #[arg(skip)]
    pub smb_credentials: Option<crate::origin::SmbCredentials>,
}

/// Reads a `--retry-for` duration (`90s`, `10m`, `1h30m`).
fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (write it as 90s, 10m or 1h)"))
}

/// `--timeout` when neither the command line, the environment nor the configuration sets it.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// `--retry-for` when neither the command line, the environment nor the configuration sets it.
pub const DEFAULT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(300);

impl ConnectArgs {
    fn timeout(&self) -> u64 {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS)
    }

    fn retry_for(&self) -> std::time::Duration {
        self.retry_for.unwrap_or(DEFAULT_RETRY_FOR)
    }

    /// The flags that give these settings again, for a process started with them (a
    /// detached mount), the configuration file's part included.
    fn argv(&self) -> Vec<std::ffi::OsString> {
        let mut argv: Vec<std::ffi::OsString> = vec![
            "--timeout".into(),
            self.timeout().to_string().into(),
            "--retry-for".into(),
            humantime::format_duration(self.retry_for())
                .to_string()
                .into(),
        ];
        if self.accept_new_host_key {
            argv.push("--accept-new-host-key".into());
        }
        if let Some(n) = self.retries {
            argv.extend(["--retries".into(), n.to_string().into()]);
        }
        if let Some(rsh) = &self.rsh {
            argv.extend(["--rsh".into(), rsh.into()]);
        }
        argv
    }

    /// The settings for opening origins, with `-x` as given.
    fn open_options(&self, one_file_system: bool) -> crate::origin::OpenOptions {
        let timeout = std::time::Duration::from_secs(self.timeout().max(1));
        crate::origin::OpenOptions {
            one_file_system,
            accept_new_host_key: self.accept_new_host_key,
            connect_timeout: timeout,
            io_timeout: timeout,
            retries: self.retries.unwrap_or(3),
            retry_for: self.retry_for(),
            max_retries: self.retries,
            remote_shell: self.rsh.clone().filter(|c| !c.trim().is_empty()),
            bulk: false,
            filter: crate::filter::Filter::none(),
            s3_credentials: self.s3_credentials.clone(),
            smb_credentials: self.smb_credentials.clone(),
        }
    }
}

impl GlobalArgs {
    /// The repository's location: `--repo` (or `MUSICFS_REPO`), else the default.
    fn location(&self) -> anyhow::Result<Location> {
        Ok(Location::resolve(self.repo.as_deref())?)
    }

    /// Opens the repository; only the default location is created on first use.
    fn open_repo(&self) -> anyhow::Result<Repository> {
        Ok(self.location()?.open()?)
    }

    fn sink(&self) -> Box<dyn Sink> {
        self.sink_listing(false)
    }

    /// A printer that lists every step in text mode even without `--verbose` when `list`
    /// (a dry run's plan is its output).
    fn sink_listing(&self, list: bool) -> Box<dyn Sink> {
        if self.json {
            Box::new(JsonSink)
        } else if self.quiet {
            Box::new(TextSink::new(false, true))
        } else {
            let mut text = TextSink::new(self.verbose, false);
            text.actions |= list;
            Box::new(ProgressSink::new(text))
        }
    }
}

/// When this process started: every summary gives the time since.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// The time since the command started.
pub(crate) fn elapsed() -> std::time::Duration {
    STARTED.get_or_init(std::time::Instant::now).elapsed()
}

/// When the command started, ns since the epoch: what a run recorded is what is as new.
static STARTED_NS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// When the command started, ns since the epoch.
pub(crate) fn started_ns() -> i64 {
    *STARTED_NS.get_or_init(crate::time::now_ns)
}

/// The subcommand's name, for the `command` of its JSON summary.
static COMMAND: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What the command did, in a few words, for the log file's line about the run.
static DID: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Records what the command did (`120 files, 3.2 MiB moved`) for the log file's run line.
pub(crate) fn note_run(did: String) {
    *DID.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(did);
}

/// ` in 4.1 s (12.3 MiB/s)`: the end of a text summary, for `bytes` of work.
pub(crate) fn timing(bytes: u64) -> String {
    let secs = elapsed().as_secs_f64();
    if bytes == 0 || secs <= 0.0 {
        format!(" in {secs:.1} s")
    } else {
        format!(
            " in {secs:.1} s ({}/s)",
            human((bytes as f64 / secs) as u64)
        )
    }
}

/// Parses the arguments, runs the command and returns its exit code. `malloc_arenas` is told,
/// once the arguments are read and before any thread of the process starts, how many malloc
/// arenas the command's threads should share (`arenas_for`): the binary sets it, since the
/// library forbids `unsafe`.
pub fn main(malloc_arenas: fn(u8)) -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    STARTED.get_or_init(std::time::Instant::now);
    started_ns();
    // Built once per process: clap takes a `&'static str`.
    let version: &'static str = Box::leak(version_text().into_boxed_str());
    let matches = Cli::command().version(version).get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    malloc_arenas(arenas_for(&cli.command));
    let name = matches.subcommand_name().unwrap_or("musicfs").to_string();
    let _ = COMMAND.set(name.clone());
    let mounting = matches!(cli.command, Command::Mount(_));
    // The log file is opened before anything is done, so that a run that cannot log does
    // nothing. A mount keeps a log of its own, which rotates itself (below).
    if let (Some(path), false) = (&cli.global.log_file, mounting) {
        if let Err(e) = crate::report::open_log(path) {
            say(&format!(
                "--log-file {}: {}",
                path.display(),
                crate::error::io_reason(&e)
            ));
            return ExitCode::from(exit::USAGE);
        }
    }
    let described = describe(&name, &cli.command);
    let code = run_logged(&mut cli);
    // No child of ours (a remote shell, a ProxyCommand) outlives the command.
    crate::reaper::settle();
    if crate::report::logging() {
        let did = DID
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .map(|d| format!(", {d}"))
            .unwrap_or_default();
        crate::report::log_line(&format!(
            "{described}: exit {code}{did}, {:.1} s",
            elapsed().as_secs_f64()
        ));
    }
    ExitCode::from(code)
}

/// What ran, for the log file: `sync SRC -> DST`, `scan ORIGIN`, else the command's name.
fn describe(name: &str, command: &Command) -> String {
    match command {
        Command::Sync(a) => format!("sync {} -> {}", a.src.display(), a.dst.display()),
        Command::Scan(a) => format!("scan {}", a.origin.display()),
        Command::Verify(a) => match &a.origin {
            Some(o) => format!("verify {}", o.display()),
            None => "verify".into(),
        },
        Command::Diff(a) => match &a.b {
            Some(b) => format!("diff {} {}", a.a.to_string_lossy(), b.to_string_lossy()),
            None => format!("diff {}", a.a.to_string_lossy()),
        },
        _ => name.to_string(),
    }
}

/// Reads the configuration, sets up diagnostics, runs the command and returns its exit code,
/// every message on stderr (and in the log file).
/// How many malloc arenas the threads of `command` share. A sync from a remote origin (SSH,
/// SMB, NFS, S3) takes one: its threads wait on the network more than they allocate (its wall
/// the same with one or two), and its peak is where the destination's rescan meets what the
/// session holds, which two arenas raised by up to 8 MiB at 100,000 files
/// (`docs/benchmarks.md`, "One malloc arena for a remote pull"). Every other command takes
/// two: in a local cold sync the readers, the index writer and the main thread allocate each
/// file's lists and tags, and one arena's lock took a fifth of the user time
/// (`docs/decisions.md`, "Two glibc malloc arenas").
fn arenas_for(command: &Command) -> u8 {
    match command {
        Command::Sync(args) => match crate::origin::OriginSpec::parse(args.src.as_os_str()) {
            Ok(spec) if spec.local_dir().is_none() => 1,
            _ => 2,
        },
        _ => 2,
    }
}

fn run_logged(cli: &mut Cli) -> u8 {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt};
    // Read before anything else is done: a malformed file stops every command that reads it,
    // so a setting is never silently dropped.
    if reads_configuration(&cli.command) {
        let applied = crate::config::Config::load()
            .map_err(|e| anyhow::Error::new(Error::InvalidInput(e.to_string())))
            .and_then(|config| settings::apply(cli, &config));
        if let Err(e) = applied {
            let (line, code) = (one_line(&e), exit_code_of(&e));
            say(&line);
            print_json_error(cli.global.json, &line, code);
            return code;
        }
    }
    // Other crates' diagnostics are about the files they read (lofty warns, for instance, when
    // it estimates an MP3's duration from its bitrate), not about the work: they are shown
    // only when asked for with MUSICFS_LOG.
    let level = if cli.global.verbose {
        "off,musicfs=debug"
    } else {
        "off,musicfs=warn"
    };
    // A mount served in the foreground with --log-file logs there (a detached mount's server is
    // started so), in a file that rotates itself.
    let mount_log = match &cli.command {
        Command::Mount(args) if args.foreground => cli.global.log_file.as_deref(),
        _ => None,
    };
    let (writer, ansi) =
        match mount_log.map(|p| crate::mount::BoundedLog::open(p, crate::mount::MAX_LOG_BYTES)) {
            Some(Ok(log)) => (BoxMakeWriter::new(std::sync::Mutex::new(log)), false),
            Some(Err(e)) => {
                say(&format!("--log-file: {e}"));
                return exit::USAGE;
            }
            // With a log file, diagnostics go to both, without colours.
            None if crate::report::logging() => (
                BoxMakeWriter::new(std::io::stderr.and(|| crate::report::LogWriter)),
                false,
            ),
            None => (
                BoxMakeWriter::new(std::io::stderr),
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ),
        };
    let _ = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(ansi)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MUSICFS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .try_init();
    let after_interruption = after_interruption(&cli.command);
    // `serve` speaks its protocol on stdout: nothing else may go there.
    let json = cli.global.json && !matches!(cli.command, Command::Serve(_));
    match run(cli) {
        Ok(code) => code,
        Err(e) => match interruption(&e) {
            Some(cause) => {
                let line = format!("interrupted by {cause}{after_interruption}");
                say(&line);
                let code = match cause {
                    Cause::Interrupt => exit::INTERRUPTED,
                    Cause::Terminate => exit::TERMINATED,
                    Cause::Hangup => exit::HANGUP,
                };
                print_json_error(json, &line, code);
                code
            }
            None => {
                let line = with_lock_holder(one_line(&e), &e);
                say(&line);
                let code = exit_code_of(&e);
                print_json_error(json, &line, code);
                code
            }
        },
    }
}

/// `--version`: the release, and the formats it reads and writes.
fn version_text() -> String {
    format!(
        "{} (repository format {}, upgrades formats {} to {}; agent protocol {}, serves {}-{})",
        env!("CARGO_PKG_VERSION"),
        crate::repo::FORMAT_VERSION,
        crate::repo::OLDEST_UPGRADED,
        crate::repo::FORMAT_VERSION - 1,
        crate::agent::wire::PROTOCOL_VERSION,
        crate::agent::wire::OLDEST_PROTOCOL_VERSION,
        crate::agent::wire::PROTOCOL_VERSION,
    )
}

/// The error's line, with the process that holds the lock named when the error is a held
/// lock and the kernel says who holds it (`/proc/locks`).
fn with_lock_holder(line: String, e: &anyhow::Error) -> String {
    let lock = e.chain().find_map(|c| match c.downcast_ref::<Error>() {
        Some(Error::Locked { lock, .. }) => Some(lock.clone()),
        _ => None,
    });
    match lock.and_then(|l| lock_holder(&l)) {
        Some(holder) => format!("{line}; held by {holder}"),
        None => line,
    }
}

/// `pid 1234 (musicfs)`: the process that holds a `flock` on `path`, as `/proc/locks` lists
/// it, when it can be told (Linux, the holder in this process's pid namespace).
fn lock_holder(path: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let dev = meta.dev();
    let (major, minor) = (
        ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff),
        (dev & 0xff) | ((dev >> 12) & !0xff),
    );
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `1: FLOCK  ADVISORY  WRITE 1234 00:2a:5678 0 EOF`; waiters have a `->` and hold
        // nothing.
        if fields.get(1) == Some(&"->") || fields.get(5) != Some(&wanted.as_str()) {
            return None;
        }
        fields.get(4)?.parse::<u32>().ok().filter(|&p| p > 0)
    })?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    Some(match comm.trim() {
        "" => format!("pid {pid}"),
        comm => format!("pid {pid} ({comm})"),
    })
}

/// Whether `command` reads the configuration file: all but the remote end of a sync (whose
/// settings come from its client) and the ones that print what does not depend on it.
fn reads_configuration(command: &Command) -> bool {
    !matches!(
        command,
        Command::Serve(_) | Command::Completions { .. } | Command::Config(_)
    )
}

/// Prints `musicfs: LINE` on stderr (and in the log file).
fn say(line: &str) {
    crate::report::say(&crate::error::without_os_error(line));
}

/// What an interrupted command leaves behind, for its one line on stderr.
fn after_interruption(command: &Command) -> &'static str {
    match command {
        Command::Sync(_) => "; DST holds old or new files only, the next sync finishes the job",
        Command::Scan(_) => {
            "; the files read so far are recorded, the next scan goes on from there"
        }
        _ => "",
    }
}

/// Why a failed command stopped, when it was asked to: the error says so, or it followed a
/// signal (a connection cut short by it, for instance).
fn interruption(e: &anyhow::Error) -> Option<Cause> {
    e.chain()
        .find_map(|c| match c.downcast_ref::<Error>() {
            Some(Error::Interrupted { cause }) => Some(*cause),
            _ => None,
        })
        .or_else(crate::interrupt::cause)
}

/// The error's chain on one line, each cause once: library errors already end with their
/// source's message, which the chain would otherwise repeat. An I/O error is worded for people
/// (`crate::error::io_reason`), and no `(os error N)` is left on the line.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for link in e.chain() {
        let text = match link.downcast_ref::<std::io::Error>() {
            Some(io) => crate::error::io_reason(io),
            None => link.to_string(),
        };
        if line.ends_with(&text) || (link.is::<std::io::Error>() && line.contains(&text)) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    crate::error::without_os_error(&line)
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.chain().find_map(|c| c.downcast_ref::<Error>()) {
        Some(Error::Locked { .. } | Error::IndexLocked { .. } | Error::StoreLocked { .. }) => {
            exit::LOCKED
        }
        Some(
            Error::Unreachable { .. }
            | Error::Refused { .. }
            | Error::HostKey { .. }
            | Error::NoRemoteAgent { .. },
        ) => exit::UNREACHABLE,
        _ => exit::USAGE,
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    // `mount` handles these signals itself; the other commands have nothing to clean up.
    if matches!(
        cli.command,
        Command::Scan(_)
            | Command::Sync(_)
            | Command::Verify(_)
            | Command::Diff(_)
            | Command::Serve(_)
    ) {
        crate::interrupt::install().context("installing the SIGINT and SIGTERM handlers")?;
    }
    match &cli.command {
        Command::Scan(args) => scan::run(&cli.global, args),
        Command::Sync(args) => sync::run(&cli.global, args),
        Command::Verify(args) => verify::run(&cli.global, args),
        Command::Diff(args) => diff::run(&cli.global, args),
        Command::Init(args) => init::run(&cli.global, args),
        Command::Snapshots(args) => snapshots::run(&cli.global, args),
        Command::Forget(args) => forget::run(&cli.global, args),
        Command::Gc(args) => gc::run(&cli.global, args),
        Command::Check => check::run(&cli.global),
        Command::RepairIndex => repair::run(&cli.global),
        Command::Mount(args) => mount::run(&cli.global, args),
        Command::Inspect(args) => inspect::run(&cli.global, args),
        Command::Serve(args) => serve::run(&cli.global, args),
        Command::Config(args) => config::run(&cli.global, args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            if cli.global.json {
                let mut script = Vec::new();
                clap_complete::generate(*shell, &mut cmd, "musicfs", &mut script);
                crate::report::print_json(&serde_json::json!({
                    "type": "completions",
                    "shell": shell.to_string(),
                    "script": String::from_utf8_lossy(&script),
                }));
            } else {
                clap_complete::generate(*shell, &mut cmd, "musicfs", &mut std::io::stdout());
            }
            Ok(exit::OK)
        }
    }
}

/// Prints a command's summary as its last JSON line, `{"type":"summary", ...}`, with the
/// command's name (`command`), the seconds it took (`duration_s`) and how many things went
/// wrong (`problems`, 0 unless the summary counts some): the fields every summary has
/// (`docs/json.md`).
pub(crate) fn print_summary<T: serde::Serialize>(summary: &T) -> anyhow::Result<()> {
    let mut value = serde_json::to_value(summary)?;
    value["type"] = serde_json::json!("summary");
    value["command"] = serde_json::json!(COMMAND.get().map_or("musicfs", String::as_str));
    value["duration_s"] = serde_json::json!(round_ms(elapsed().as_secs_f64()));
    if value.get("problems").is_none() {
        value["problems"] = serde_json::json!(0);
    }
    crate::report::print_json(&value);
    Ok(())
}

/// With `--json`, a command that fails prints `{"type":"error", ...}` as its last line on
/// stdout, besides the line on stderr: the message and the exit code.
fn print_json_error(json: bool, message: &str, code: u8) {
    if json {
        crate::report::print_json(&serde_json::json!({
            "type": "error",
            "command": COMMAND.get().map_or("musicfs", String::as_str),
            "message": message,
            "exit_code": code,
            "duration_s": round_ms(elapsed().as_secs_f64()),
        }));
    }
}

/// Seconds rounded to the millisecond, for JSON.
fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// Human-readable bytes.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod arena_tests {
    use clap::Parser;

    use super::{arenas_for, Cli};

    fn arenas(args: &[&str]) -> u8 {
        let cli = Cli::try_parse_from(args).unwrap();
        arenas_for(&cli.command)
    }

    #[test]
    fn a_pull_from_a_remote_origin_takes_one_arena_and_everything_else_two() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().to_str().unwrap();
        for remote in [
            "nas:/music",
            "me@nas:music",
            "sftp://nas/music",
            "smb://nas/share/music",
            "nfs://nas/export",
            "s3://bucket/music",
        ] {
            assert_eq!(arenas(&["musicfs", "sync", remote, local]), 1, "{remote}");
        }
        assert_eq!(arenas(&["musicfs", "sync", local, "nas:/music"]), 2);
        assert_eq!(arenas(&["musicfs", "sync", local, "./copy"]), 2);
        assert_eq!(arenas(&["musicfs", "scan", local]), 2);
    }
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(crate::Error::io(std::path::Path::new("/x"), io))
            .context("inspecting /x");
        assert_eq!(one_line(&e), "inspecting /x: /x: gone");
    }
}
