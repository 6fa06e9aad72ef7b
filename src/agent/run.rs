//! Syncing with a remote origin over its transport's [`AgentLink`]: through `musicfs serve
//! --stdio` on the remote host when it has musicfs (with `--deploy-agent`, this binary copied
//! there when it has none: `super::deploy`), else through the link's fallback origin
//! (listing and stat for change detection, changed files read whole and chunked here).
//! Transient failures are retried with exponential backoff and jitter (`Policy`), for as long
//! as `--retry-for` allows once the host has answered; a retry resumes, because every file
//! already written was recorded with its chunks and the fallback's downloads are kept.
//!
//! Never does: name a transport. What carries the bytes, and what the fallback is, is the
//! link's business.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::origin::bwlimit::Limited;
use crate::origin::retrying::Breaker;
use crate::origin::spooled::Spool;
use crate::origin::{
    AgentConnection, AgentLink, AgentProcess, AgentStatus, BwLimited, Metered, MeteredStream,
    OpenOptions, Origin, Policy, Spooled, WritableOrigin,
};
use crate::repo::Repository;
use crate::report::{Event, Sink};
use crate::sync::{sync, SyncOptions, SyncSummary};

use super::client::{pull_filtered, push_filtered, Connection};
use super::deploy::{deploy, Deployed};
use super::resume::Resume;
use crate::filter::Filter;
use crate::origin::Filtered;

/// How to reach and talk to the remote end.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// Connection settings, which the link takes as its transport needs them (timeouts,
    /// host-key policy, the remote shell); `open.filter` is the remote directory's filter,
    /// sent to the remote agent or put around the fallback origin; `open.retries`,
    /// `open.retry_for` and `open.max_retries` also say how a whole sync is retried after a
    /// transient failure (see [`sync_remote`]).
    pub open: OpenOptions,
    /// Use the link's fallback origin even when the remote host has musicfs.
    pub force_fallback: bool,
    /// The remote musicfs command, run by the remote shell as written (as rsync's
    /// `--rsync-path`, so `sudo musicfs` works); `None`: `musicfs` on the remote PATH, with
    /// the link's fallback when there is none.
    pub remote_musicfs: Option<String>,
    /// `--deploy-agent`: when the host has no musicfs (and `remote_musicfs` is `None`), copy
    /// this binary to the user's cache directory there and run it as the agent
    /// (`super::deploy`); when it cannot run there, the link's fallback.
    pub deploy_agent: bool,
    /// `--bwlimit`: the run's budget for what crosses the connection.
    pub bwlimit: Option<std::sync::Arc<crate::origin::Budget>>,
    /// Counts what crosses the connection in every attempt: the agent's streams, or the
    /// fallback origin's file reads and writes (outside its spool, whose local copies cross
    /// nothing). `None`: nothing counted.
    pub meter: Option<std::sync::Arc<crate::origin::Meter>>,
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
///
/// Retries: while the host has never answered in this run (a wrong port, a host that is
/// down), `open.retries` times, quickly; once it has, with capped exponential backoff and
/// jitter until `open.retry_for` has passed since the last attempt that reached it (and at
/// most `open.max_retries` times when given). Each retry resumes: files already written were
/// recorded, chunks received stay known (`Resume`), and the fallback's spool of downloaded
/// files is kept from one attempt to the next. The summary counts the whole run: the files
/// changed and bytes moved by failed attempts are added to the last attempt's.
pub fn sync_remote(
    repo: &Repository,
    remote: &dyn AgentLink,
    direction: Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    let open = &remote_options.open;
    let mut attempt = 0;
    // The backoff's exponent: from the start again after an attempt that reached the host.
    let mut step = 0;
    let mut run = Run {
        resume: Resume::default(),
        spool: None,
        reached: Arc::new(AtomicBool::new(false)),
    };
    let mut reached_at: Option<Instant> = None;
    let tally = Tally::new(sink);
    loop {
        tally.start();
        let result = sync_once(
            repo,
            remote,
            &direction,
            chunker,
            options,
            remote_options,
            &tally,
            &mut run,
        );
        if run.reached.swap(false, Ordering::SeqCst) {
            reached_at = Some(Instant::now());
            step = 0;
        }
        let retry = match (&result, reached_at) {
            (Err(e), _) if !e.is_transient() => false,
            (Err(_), None) => attempt < open.retries,
            (Err(_), Some(at)) => Policy::within(attempt, open.max_retries, open.retry_for, at),
            (Ok(_), _) => false,
        };
        match result {
            Err(e) if retry => {
                crate::interrupt::check()?;
                tally.keep();
                // Never past the end of the budget: the last try is made in it.
                let delay = match reached_at {
                    Some(at) => backoff(step).min(open.retry_for.saturating_sub(at.elapsed())),
                    None => backoff(step),
                };
                // A notice for the user (text or JSON, through the sink), and a diagnostic
                // for -v.
                let (max_attempts, seconds_left) = match (reached_at, open.max_retries) {
                    (None, _) => (Some(open.retries), None),
                    (Some(_), Some(cap)) => (Some(cap), None),
                    (Some(at), None) => (
                        None,
                        Some(open.retry_for.saturating_sub(at.elapsed()).as_secs()),
                    ),
                };
                tracing::debug!(
                    "{e}; retrying in {:.1} s (retry {})",
                    delay.as_secs_f64(),
                    attempt + 1
                );
                sink.event(&Event::Retry {
                    reason: e.to_string(),
                    delay_s: delay.as_secs_f64(),
                    attempt: attempt + 1,
                    max_attempts,
                    seconds_left,
                });
                crate::interrupt::sleep(delay)?;
                attempt += 1;
                step += 1;
            }
            Ok(mut summary) => {
                let earlier = tally.earlier();
                summary.files_changed += earlier.files_changed;
                summary.bytes_transferred += earlier.bytes_transferred;
                return Ok(summary);
            }
            Err(e) => return Err(crate::interrupt::explain(e)),
        }
    }
}

/// Delays between attempts of a whole remote sync: up to 1 s, 2 s, 4 s… (at most 60 s), with
/// full jitter, so that many clients of one server do not retry in step.
fn backoff(attempt: u32) -> Duration {
    Policy::connections(u32::MAX).delay(attempt)
}

/// What one attempt hands to the next.
struct Run {
    /// Chunks received lately, not asked for again.
    resume: Resume,
    /// The fallback's downloaded files.
    spool: Option<Spool>,
    /// Set when an attempt reached the host (the agent answered, or the fallback opened).
    reached: Arc<AtomicBool>,
}

/// What failed attempts did, from the events of their steps.
#[derive(Clone, Copy, Debug, Default)]
struct Done {
    files_changed: u64,
    bytes_transferred: u64,
}

/// The sink of a remote sync: passes every event on, counts the steps done by the current
/// attempt, and keeps quiet about the problems that follow a dropped link (one transient
/// error ends the attempt; the files it could not reach are no problems of their own).
struct Tally<'a> {
    sink: &'a dyn Sink,
    current: Mutex<Done>,
    earlier: Mutex<Done>,
    /// The current attempt's link dropped (raised by the fallback's `Breaker`).
    dropped: Arc<AtomicBool>,
}

impl<'a> Tally<'a> {
    fn new(sink: &'a dyn Sink) -> Self {
        Tally {
            sink,
            current: Mutex::new(Done::default()),
            earlier: Mutex::new(Done::default()),
            dropped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts an attempt: counts from zero.
    fn start(&self) {
        self.dropped.store(false, Ordering::SeqCst);
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Done::default();
    }

    /// The flag that silences problems for the rest of the attempt.
    fn dropped(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.dropped)
    }

    /// The attempt that just failed counts towards the run.
    fn keep(&self) {
        let done = *self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let mut earlier = self.earlier.lock().unwrap_or_else(PoisonError::into_inner);
        earlier.files_changed += done.files_changed;
        earlier.bytes_transferred += done.bytes_transferred;
    }

    fn earlier(&self) -> Done {
        *self.earlier.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for Tally<'_> {
    fn event(&self, event: &Event) {
        match event {
            Event::Action {
                action,
                bytes_transferred,
                ..
            } => {
                let mut done = self.current.lock().unwrap_or_else(PoisonError::into_inner);
                if matches!(*action, "write" | "move" | "symlink") {
                    done.files_changed += 1;
                }
                done.bytes_transferred += bytes_transferred;
            }
            Event::Problem { .. } if self.dropped.load(Ordering::SeqCst) => return,
            _ => {}
        }
        self.sink.event(event)
    }
    fn phase(&self, name: &str, files: u64, bytes: u64) {
        self.sink.phase(name, files, bytes)
    }
    fn advance(&self, bytes: u64) {
        self.sink.advance(bytes)
    }
    fn files_done(&self, files: u64) {
        self.sink.files_done(files)
    }
    fn finish(&self) {
        self.sink.finish()
    }
}

/// The agent's output, noting that the host answered once something arrives.
struct Answered {
    input: Box<dyn Read + Send>,
    reached: Arc<AtomicBool>,
}

impl Read for Answered {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.input.read(buf)?;
        if n > 0 {
            self.reached.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

#[allow(clippy::too_many_arguments)]
fn sync_once(
    repo: &Repository,
    remote: &dyn AgentLink,
    direction: &Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    tally: &Tally<'_>,
    run: &mut Run,
) -> Result<SyncSummary> {
    let sink: &dyn Sink = tally;
    // A pull into an empty destination moves the library: the transport may pick what costs
    // least per byte (SSH: its cipher).
    let bulk = match direction {
        Direction::Pull(destination) => crate::sync::is_cold(*destination, options.dry_run),
        Direction::Push(_) => false,
    };
    let open = OpenOptions {
        bulk,
        ..remote_options.open.clone()
    };
    let link = remote.connect(&open)?;
    let origin = link.origin().to_owned();
    let remote_dir = remote.remote_dir();
    if !remote_options.force_fallback {
        let program = remote_options
            .remote_musicfs
            .as_deref()
            .unwrap_or("musicfs");
        let (result, status) = talk(
            &*link,
            remote_dir,
            &format!("{program} serve --stdio"),
            &origin,
            direction,
            chunker,
            options,
            remote_options,
            sink,
            run,
            repo,
        )?;
        match result {
            // The stream ended because the link failed (a local client that could not
            // connect), not because the host lacks musicfs.
            Err(Error::NoRemoteAgent { .. })
                if status.link_failure(Duration::from_secs(2)).is_some() =>
            {
                return Err(status.link_failure(Duration::ZERO).unwrap_or_else(|| {
                    Error::Unreachable {
                        origin: origin.clone(),
                        message: "the link failed".into(),
                    }
                }));
            }
            Err(Error::NoRemoteAgent { .. }) if remote_options.remote_musicfs.is_none() => {
                tracing::info!(
                    "{origin}: no musicfs on the remote PATH (exit status {:?})",
                    status.exit_status(Duration::from_secs(2)),
                );
                if remote_options.deploy_agent {
                    if let Some(done) = deployed(
                        &*link,
                        remote_dir,
                        &origin,
                        remote.fallback_name(),
                        direction,
                        chunker,
                        options,
                        remote_options,
                        sink,
                        run,
                        repo,
                    )? {
                        return done;
                    }
                } else {
                    tracing::info!("{origin}: using {}", remote.fallback_name());
                }
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
            other => return agent_ended(other, &*status),
        }
    }
    // The fallback: a transient failure trips the breaker, which ends the attempt with one
    // transient error (retried whole) instead of one problem per remaining file.
    let dropped = |breaker: Option<String>, result: Result<SyncSummary>| match breaker {
        // The message names a path of the origin: said once, after it.
        Some(message) => Err(Error::Unreachable {
            origin: origin.clone(),
            message: match message.strip_prefix(origin.as_str()) {
                Some(rest) => rest.trim_start_matches(['/', ':', ' ']).to_owned(),
                None => message,
            },
        }),
        None => result,
    };
    match direction {
        Direction::Pull(destination) => {
            // Spooled outside BwLimited: the budget is spent once per download, never on
            // reads of the local copy. The breaker outside both: a download that fails is an
            // open that fails.
            let source = filtered(link.open_fallback()?, &remote_options.open.filter);
            run.reached.store(true, Ordering::SeqCst);
            let source: Box<dyn Origin> = match &remote_options.bwlimit {
                Some(budget) => Box::new(BwLimited::new(source, budget.clone())),
                None => source,
            };
            let source: Box<dyn Origin> = match &remote_options.meter {
                Some(meter) => Box::new(Metered::new(source, Arc::clone(meter))),
                None => source,
            };
            let spool = run
                .spool
                .take()
                .unwrap_or_else(|| Spool::new(repo.root().join("spool")));
            let source = Breaker::new(Spooled::over(spool, source)).signalling(tally.dropped());
            let result = sync(repo, &source, *destination, chunker, options, sink);
            let tripped = source.tripped();
            run.spool = Some(source.into_inner().into_spool());
            dropped(tripped, result)
        }
        Direction::Push(source) => {
            let destination =
                filtered_writable(link.open_fallback_writable()?, &remote_options.open.filter);
            run.reached.store(true, Ordering::SeqCst);
            let destination: Box<dyn WritableOrigin> = match &remote_options.bwlimit {
                Some(budget) => Box::new(BwLimited::new(destination, budget.clone())),
                None => destination,
            };
            let destination: Box<dyn WritableOrigin> = match &remote_options.meter {
                Some(meter) => Box::new(Metered::new(destination, Arc::clone(meter))),
                None => destination,
            };
            let destination = Breaker::new(destination).signalling(tally.dropped());
            let result = sync(repo, *source, &destination, chunker, options, sink);
            dropped(destination.tripped(), result)
        }
    }
}

/// A remote musicfs that stopped (a signal, an error) said why on its stderr.
fn agent_ended(result: Result<SyncSummary>, status: &dyn AgentStatus) -> Result<SyncSummary> {
    match result {
        Err(Error::Unreachable { origin, message }) => {
            let said = status.stderr_tail();
            Err(Error::Unreachable {
                origin,
                message: match said.trim().lines().last() {
                    Some(last) => format!("{message} ({last})"),
                    None => message,
                },
            })
        }
        other => other,
    }
}

/// Runs the agent `command` on the host and syncs through it: the sync's result, and how
/// the agent ended. Errors: the link's, when it cannot start the command.
#[allow(clippy::too_many_arguments)]
fn talk(
    link: &dyn AgentConnection,
    remote_dir: &[u8],
    command: &str,
    origin: &str,
    direction: &Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    sink: &dyn Sink,
    run: &mut Run,
    repo: &Repository,
) -> Result<(Result<SyncSummary>, Box<dyn AgentStatus>)> {
    let AgentProcess {
        input,
        output,
        status,
    } = link.start_agent(command)?;
    let input: Box<dyn Read + Send> = Box::new(Answered {
        input,
        reached: Arc::clone(&run.reached),
    });
    let (input, output): (Box<dyn Read + Send>, Box<dyn Write + Send>) = match &remote_options.meter
    {
        Some(meter) => (
            Box::new(MeteredStream::new(input, Arc::clone(meter))),
            Box::new(MeteredStream::new(output, Arc::clone(meter))),
        ),
        None => (input, output),
    };
    let connection = match &remote_options.bwlimit {
        Some(budget) => Connection {
            input: Box::new(Limited::new(input, budget.clone())),
            output: Box::new(Limited::new(output, budget.clone())),
            origin: origin.to_owned(),
        },
        None => Connection {
            input,
            output,
            origin: origin.to_owned(),
        },
    };
    let result = match direction {
        Direction::Pull(destination) => pull_filtered(
            repo,
            connection,
            remote_dir,
            &remote_options.open.filter,
            *destination,
            chunker,
            options,
            sink,
            &mut run.resume,
        ),
        Direction::Push(source) => push_filtered(
            repo,
            *source,
            connection,
            remote_dir,
            &remote_options.open.filter,
            chunker,
            options,
            sink,
        ),
    };
    Ok((result, status))
}

/// `--deploy-agent` on a host without musicfs: deploys this binary there and syncs through
/// it. `None` when it cannot be deployed or cannot run there, said in one warning line
/// naming the host and the reason, and the caller falls back.
#[allow(clippy::too_many_arguments)]
fn deployed(
    link: &dyn AgentConnection,
    remote_dir: &[u8],
    origin: &str,
    fallback: &str,
    direction: &Direction<'_>,
    chunker: &dyn Chunker,
    options: SyncOptions,
    remote_options: &RemoteOptions,
    sink: &dyn Sink,
    run: &mut Run,
    repo: &Repository,
) -> Result<Option<Result<SyncSummary>>> {
    let why = match deploy(link, remote_options.meter.as_ref())? {
        Deployed::Agent {
            command,
            path,
            uploaded,
        } => {
            tracing::info!(
                "{origin}: {} agent {path}",
                if uploaded {
                    "deployed the"
                } else {
                    "using the deployed"
                }
            );
            let (result, status) = talk(
                link,
                remote_dir,
                &command,
                origin,
                direction,
                chunker,
                options,
                remote_options,
                sink,
                run,
                repo,
            )?;
            match result {
                Err(Error::NoRemoteAgent { .. }) => {
                    let said = status.stderr_tail();
                    match said.trim().lines().last() {
                        Some(last) => format!("{path} ended before the handshake: {last}"),
                        None => format!("{path} ended before the handshake"),
                    }
                }
                other => return Ok(Some(agent_ended(other, &*status))),
            }
        }
        Deployed::Unavailable(why) => why,
    };
    tracing::warn!("{origin}: cannot deploy the agent ({why}); using {fallback}");
    Ok(None)
}

/// The fallback origin, its walk filtered as the remote agent's would be.
fn filtered(origin: Box<dyn Origin>, filter: &Filter) -> Box<dyn Origin> {
    match filter.is_empty() {
        true => origin,
        false => Box::new(Filtered::new(origin, filter.clone())),
    }
}

/// [`filtered`] for a destination.
fn filtered_writable(origin: Box<dyn WritableOrigin>, filter: &Filter) -> Box<dyn WritableOrigin> {
    match filter.is_empty() {
        true => origin,
        false => Box::new(Filtered::new(origin, filter.clone())),
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
