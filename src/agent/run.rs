//! Syncing with a remote origin over its transport's [`AgentLink`]: through `musicfs serve
//! --stdio` on the remote host when it has musicfs, else through the link's fallback origin
//! (listing and stat for change detection, changed files read whole and chunked here).
//! Transient failures are retried with exponential backoff and jitter (`Policy::connections`);
//! a retry resumes, because every file already written was recorded with its chunks.
//!
//! Never does: name a transport. What carries the bytes, and what the fallback is, is the
//! link's business.

use std::time::Duration;

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::origin::bwlimit::Limited;
use crate::origin::{
    AgentLink, AgentProcess, BwLimited, OpenOptions, Origin, Spooled, WritableOrigin,
};
use crate::repo::Repository;
use crate::report::Sink;
use crate::sync::{sync, SyncOptions, SyncSummary};

use super::client::{pull, push, Connection};
use super::source::Resume;

/// How to reach and talk to the remote end.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// Connection settings, which the link takes as its transport needs them (timeouts,
    /// host-key policy); `open.retries` is also how many times a whole sync is retried after a
    /// transient failure.
    pub open: OpenOptions,
    /// Use the link's fallback origin even when the remote host has musicfs.
    pub force_fallback: bool,
    /// The remote musicfs command, run by the remote shell as written (as rsync's
    /// `--rsync-path`, so `sudo musicfs` works); `None`: `musicfs` on the remote PATH, with
    /// the link's fallback when there is none.
    pub remote_musicfs: Option<String>,
    /// `--bwlimit`: the run's budget for what crosses the connection.
    pub bwlimit: Option<std::sync::Arc<crate::origin::Budget>>,
}

/// Which way a sync with a remote host goes.
pub enum Direction<'a> {
    /// The remote directory is the source; this origin (opened here) the destination.
    Pull(&'a dyn WritableOrigin),
    /// This origin (opened here) is the source; the remote directory the destination.
    Push(&'a dyn Origin),
}

/// Syncs between the remote directory `remote` reaches and an origin opened here, retrying
/// transient failures with a new connection each time.
pub fn sync_remote(
    repo: &Repository,
    remote: &dyn AgentLink,
    direction: Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    let mut attempt = 0;
    let mut resume = Resume::default();
    loop {
        match sync_once(
            repo,
            remote,
            &direction,
            chunker,
            options,
            remote_options,
            sink,
            &mut resume,
        ) {
            Err(e) if e.is_transient() && attempt < remote_options.open.retries => {
                crate::interrupt::check()?;
                let delay = backoff(attempt);
                tracing::warn!(
                    "{e}; retrying in {:.1} s ({} of {})",
                    delay.as_secs_f64(),
                    attempt + 1,
                    remote_options.open.retries
                );
                crate::interrupt::sleep(delay)?;
                attempt += 1;
            }
            result => return result.map_err(crate::interrupt::explain),
        }
    }
}

/// Delays between attempts of a whole remote sync: up to 1 s, 2 s, 4 s… (at most 60 s), with
/// full jitter, so that many clients of one server do not retry in step.
fn backoff(attempt: u32) -> Duration {
    crate::origin::Policy::connections(u32::MAX).delay(attempt)
}

#[allow(clippy::too_many_arguments)]
fn sync_once(
    repo: &Repository,
    remote: &dyn AgentLink,
    direction: &Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    sink: &dyn Sink,
    resume: &mut Resume,
) -> Result<SyncSummary> {
    let link = remote.connect(&remote_options.open)?;
    let origin = link.origin().to_owned();
    let remote_dir = remote.remote_dir();
    if !remote_options.force_fallback {
        let program = remote_options
            .remote_musicfs
            .as_deref()
            .unwrap_or("musicfs");
        let AgentProcess {
            input,
            output,
            status,
        } = link.start_agent(&format!("{program} serve --stdio"))?;
        let connection = match &remote_options.bwlimit {
            Some(budget) => Connection {
                input: Box::new(Limited::new(input, budget.clone())),
                output: Box::new(Limited::new(output, budget.clone())),
                origin: origin.clone(),
            },
            None => Connection {
                input,
                output,
                origin: origin.clone(),
            },
        };
        let result = match direction {
            Direction::Pull(destination) => pull(
                repo,
                connection,
                remote_dir,
                *destination,
                chunker,
                options,
                sink,
                resume,
            ),
            Direction::Push(source) => push(
                repo, *source, connection, remote_dir, chunker, options, sink,
            ),
        };
        match result {
            Err(Error::NoRemoteAgent { .. }) if remote_options.remote_musicfs.is_none() => {
                tracing::info!(
                    "{origin}: no musicfs on the remote PATH (exit status {:?}); using {}",
                    status.exit_status(Duration::from_secs(2)),
                    remote.fallback_name()
                );
            }
            Err(Error::NoRemoteAgent { origin, .. }) => {
                let said = status.stderr_tail();
                return Err(Error::NoRemoteAgent {
                    origin,
                    message: match said.trim() {
                        "" => format!("{program} ended before the handshake"),
                        said => said.lines().last().unwrap_or(said).to_string(),
                    },
                });
            }
            // A remote musicfs that stopped (a signal, an error) said why on its stderr.
            Err(Error::Unreachable { origin, message }) => {
                let said = status.stderr_tail();
                return Err(Error::Unreachable {
                    origin,
                    message: match said.trim().lines().last() {
                        Some(last) => format!("{message} ({last})"),
                        None => message,
                    },
                });
            }
            other => return other,
        }
    }
    match direction {
        Direction::Pull(destination) => {
            // Spooled outside BwLimited: the budget is spent once per download, never on
            // reads of the local copy. The copies go with the origin, at the end of this arm.
            let source = link.open_fallback()?;
            let source: Box<dyn Origin> = match &remote_options.bwlimit {
                Some(budget) => Box::new(BwLimited::new(source, budget.clone())),
                None => source,
            };
            let source = Spooled::new(source, repo.root().join("spool"));
            sync(repo, &source, *destination, chunker, options, sink)
        }
        Direction::Push(source) => {
            let destination = link.open_fallback_writable()?;
            let destination: Box<dyn WritableOrigin> = match &remote_options.bwlimit {
                Some(budget) => Box::new(BwLimited::new(destination, budget.clone())),
                None => destination,
            };
            sync(repo, *source, destination.as_ref(), chunker, options, sink)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempt in 0..10 {
            let bound = (1u64 << attempt.min(6)).min(60) as f64;
            let d = backoff(attempt).as_secs_f64();
            assert!(d >= bound / 10.0 && d <= bound, "attempt {attempt}: {d}");
        }
    }
}
