//! What both measuring programs share: the command line, the order files are visited in, which
//! files a retag push rewrites and with what bytes, and the one-line report.
//!
//! The SMB work itself lives in `src/bin/smb-pavao.rs` and `src/bin/smb-smb2.rs`, one crate
//! each; this module never talks to a server, so that both programs do exactly the same jobs in
//! the same order and differ only in the client crate.

use std::time::Duration;

/// Bytes asked for per read or written per write call, where the crate's API takes a size.
pub const BUFFER: usize = 1 << 20;

/// One run of one job, as given on the command line.
#[derive(Debug)]
pub struct Args {
    /// `list`, `read` or `push`.
    pub job: Job,
    /// The directory in the share, `/`-separated, without leading or trailing `/`.
    pub dir: String,
    /// Readers in parallel (threads for pavao, tasks for smb2) for `read`.
    pub workers: usize,
    /// How `read` reads, where the crate offers more than one way (smb2: `download`, its
    /// pipelined stream, or `reader`, positioned reads of [`BUFFER`] one after another).
    pub mode: String,
    /// Server, port, share, user and password (the password from `SMB_PASSWORD` only).
    pub server: Server,
}

/// Where the share is and who signs in.
pub struct Server {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Share name.
    pub share: String,
    /// Account.
    pub user: String,
    /// Its password (never printed: see the `Debug` impl).
    pub password: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("share", &self.share)
            .field("user", &self.user)
            .field("password", &"***")
            .finish()
    }
}

/// The three jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Walk the tree: count files and bytes.
    List,
    /// Read every file in full.
    Read,
    /// Rewrite every tenth file under a temporary name and rename it over the original.
    Push,
}

const USAGE: &str = "usage: PROGRAM list|read|push DIR [--workers N] [--mode M]
  environment: SMB_HOST (127.0.0.1), SMB_PORT (445), SMB_SHARE, SMB_USER, SMB_PASSWORD";

impl Args {
    /// The command line and environment, or a message saying what is wrong.
    pub fn parse(default_mode: &str) -> Result<Args, String> {
        let mut argv = std::env::args().skip(1);
        let job = match argv.next().as_deref() {
            Some("list") => Job::List,
            Some("read") => Job::Read,
            Some("push") => Job::Push,
            _ => return Err(USAGE.into()),
        };
        let dir = argv.next().ok_or(USAGE)?.trim_matches('/').to_string();
        let mut workers = 1;
        let mut mode = default_mode.to_string();
        while let Some(flag) = argv.next() {
            let value = argv.next().ok_or(USAGE)?;
            match flag.as_str() {
                "--workers" => {
                    workers = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or("--workers takes a positive number")?
                }
                "--mode" => mode = value,
                _ => return Err(USAGE.into()),
            }
        }
        let env = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let server = Server {
            host: env("SMB_HOST").unwrap_or_else(|_| "127.0.0.1".into()),
            port: env("SMB_PORT")
                .unwrap_or_else(|_| "445".into())
                .parse()
                .map_err(|_| "SMB_PORT is not a port number")?,
            share: env("SMB_SHARE")?,
            user: env("SMB_USER")?,
            password: env("SMB_PASSWORD")?,
        };
        Ok(Args {
            job,
            dir,
            workers,
            mode,
            server,
        })
    }
}

/// A file found by the walk: its path in the share (`/`-separated) and its size.
#[derive(Debug, Clone)]
pub struct Found {
    /// Path from the share's root.
    pub path: String,
    /// Size in bytes, as listed.
    pub size: u64,
}

/// `dir/name`, or `name` at the root.
pub fn join(dir: &str, name: &str) -> String {
    match dir.is_empty() {
        true => name.to_string(),
        false => format!("{dir}/{name}"),
    }
}

/// The files a retag push rewrites: every tenth in walk order, starting with the first.
pub fn retag_set(files: &[Found]) -> Vec<Found> {
    files.iter().step_by(10).cloned().collect()
}

/// The temporary name a rewritten file is written under before the rename, beside it.
pub fn temp_name(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/.{name}.retag"),
        None => format!(".{path}.retag"),
    }
}

/// The new content of a rewritten file: `size` bytes, deterministic, the same for both crates.
pub fn new_content(size: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(31) % 251) as u8)
        .collect()
}

/// Splits `files` among `workers` in turn (file i to worker i mod workers).
pub fn deal(files: &[Found], workers: usize) -> Vec<Vec<Found>> {
    let mut out = vec![Vec::new(); workers];
    for (i, f) in files.iter().enumerate() {
        out[i % workers].push(f.clone());
    }
    out
}

/// Prints the one-line result of a job on stdout.
pub fn report(crate_name: &str, args: &Args, files: usize, bytes: u64, wall: Duration) {
    println!(
        "crate={crate_name} job={:?} mode={} workers={} files={files} bytes={bytes} wall={:.3}",
        args.job,
        args.mode,
        args.workers,
        wall.as_secs_f64()
    );
}
