//! `musicfs serve --stdio`: the remote end of a session, speaking the protocol on its standard
//! input and output. It is the source of a pull and the destination of a push.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::provider::{name_of, provide};
use super::resume::Resume;
use super::source::{send, RemoteSource, Requests};
use super::stream::Streamer;
use super::wire::{
    check_path, write_message, Message, HEARTBEAT, OLDEST_PROTOCOL_VERSION, PACKED_SINCE,
    PROTOCOL_VERSION, STREAM_SINCE,
};
use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::origin::{OpenOptions, OriginSpec};
use crate::repo::Repository;
use crate::report::{Event, NullSink, Sink};
use crate::sync::{sync_from, LocalSource, SyncOptions, SyncSource};

const PEER: &str = "client";

/// Serves one session on `input` and `output`, with the repository `open` gives for the
/// client's chunking rules (`chunk::CHUNKING_VERSION`, those of the client's repository): one
/// that cuts files by other rules is refused, since chunk ids are comparable only between equal
/// rules. Errors are also sent to the client, so the user sees them on the other end.
pub fn serve(
    open: &dyn Fn(u32) -> Result<Repository>,
    input: Box<dyn Read + Send>,
    output: Box<dyn Write + Send>,
) -> Result<()> {
    // Read on a thread of its own: a signal, or the client going away, stops the session even
    // while it waits for the client or does not read at all.
    let input: Box<dyn Read + Send> = Box::new(crate::interrupt::ReadAhead::hanging_up(input, 16));
    let input = BufReader::with_capacity(1 << 20, input);
    let output = Arc::new(Mutex::new(BufWriter::with_capacity(1 << 20, output)));
    let progress = Arc::new(ScanProgress::default());
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let heartbeat = {
        let output = Arc::clone(&output);
        let progress = Arc::clone(&progress);
        std::thread::spawn(move || {
            // Only after this end's greeting, which `session` sends once it has the client's.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(HEARTBEAT)
            {
                if !progress.greeted.load(Ordering::Relaxed) {
                    continue;
                }
                let working = Message::Working {
                    done: progress.done.load(Ordering::Relaxed),
                    total: progress.total.load(Ordering::Relaxed),
                };
                let Ok(mut out) = output.lock() else { return };
                if write_message(&mut *out, &working)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        })
    };
    let result = session(open, input, &output, &progress);
    drop(stop);
    let _ = heartbeat.join();
    if let Err(e) = &result {
        if let Ok(mut out) = output.lock() {
            let _ = write_message(&mut *out, &Message::Failed(e.to_string()));
            let _ = out.flush();
        }
    }
    result
}

fn protocol(message: impl Into<String>) -> Error {
    Error::Protocol {
        origin: PEER.into(),
        message: message.into(),
    }
}

fn lost(e: std::io::Error) -> Error {
    super::wire::lost(PEER, e)
}

fn receive(input: &mut dyn Read) -> Result<Message> {
    super::wire::receive(PEER, input)?.ok_or_else(|| lost(std::io::ErrorKind::UnexpectedEof.into()))
}

/// The directory a session names: relative to the login directory, which an empty path is.
fn directory(path: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if path.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(std::ffi::OsStr::from_bytes(path))
    }
}

fn session(
    open: &dyn Fn(u32) -> Result<Repository>,
    mut input: BufReader<Box<dyn Read + Send>>,
    output: &Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>,
    progress: &ScanProgress,
) -> Result<()> {
    let write = |messages: &[Message]| -> Result<()> {
        let mut out = output
            .lock()
            .map_err(|_| protocol("output writer poisoned"))?;
        for m in messages {
            write_message(&mut *out, m).map_err(lost)?;
        }
        out.flush().map_err(lost)
    };
    // The client's greeting first, so that this end answers in the client's version (a
    // client sends its greeting and request together, without waiting for ours). A client
    // this end cannot serve gets this end's own version, which its error names.
    let (version, rules) = match receive(&mut input)? {
        Message::Hello {
            magic,
            version,
            format,
        } if magic == super::wire::MAGIC => {
            let known = crate::repo::ChunkerConfig::for_rules(format).is_some();
            if !(OLDEST_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) || !known {
                write(&[super::client::hello(crate::chunk::CHUNKING_VERSION)])?;
                return Err(protocol(format!(
                    "the client speaks protocol {version} with chunking rules {format}; this musicfs speaks protocols {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION} with chunking rules {}, {} and {}",
                    crate::chunk::RULES_CONTENT_DEFINED,
                    crate::chunk::RULES_FIXED_AUDIO,
                    crate::chunk::RULES_FIXED_PICTURES
                )));
            }
            (version, format)
        }
        _ => {
            write(&[super::client::hello(crate::chunk::CHUNKING_VERSION)])?;
            return Err(protocol("no handshake"));
        }
    };
    let repo = match open(rules) {
        Ok(repo) => repo,
        Err(e) => {
            write(&[super::client::hello_in(version, rules)])?;
            return Err(e);
        }
    };
    let chunker = repo.chunker();
    if chunker.rules() != rules {
        // This end's greeting names its rules; the client's error says what differs.
        write(&[super::client::hello_in(version, chunker.rules())])?;
        return Err(protocol(format!(
            "the client's repository cuts files by chunking rules {rules} ({}), this end's repository {} by rules {} ({}): chunk ids would not match. Sync between repositories that cut alike: set the remote's MUSICFS_REPO to another directory, or create the local repository with musicfs init --chunker {}",
            crate::repo::ChunkerConfig::for_rules(rules).map_or(String::new(), |c| c.algorithm),
            repo.root().display(),
            chunker.rules(),
            repo.chunker_config().algorithm,
            repo.chunker_config().algorithm,
        )));
    }
    let (repo, chunker) = (&repo, &chunker as &dyn Chunker);
    write(&[super::client::hello_in(version, rules)])?;
    progress.greeted.store(true, Ordering::Relaxed);
    let mut request = receive(&mut input)?;
    let mut options = OpenOptions::default();
    if let Message::Filter(spec) = &request {
        if version < 3 {
            return Err(protocol(format!("Filter in protocol {version}")));
        }
        options.filter = spec
            .compile()
            .map_err(|e| protocol(format!("Filter: {e}")))?;
        request = receive(&mut input)?;
    }
    let cold = matches!(request, Message::ColdPull { .. });
    match request {
        Message::ColdPull { .. } if version < STREAM_SINCE => {
            Err(protocol(format!("ColdPull in protocol {version}")))
        }
        Message::Pull { path, checksum } | Message::ColdPull { path, checksum } => {
            let origin = OriginSpec::directory(&directory(&path)).open(&options)?;
            // A cold pull reads every file, so that each is streamed as it is read (what
            // an earlier scan knows would otherwise go unread until the client asks).
            let mut source = LocalSource::new(repo, origin.as_ref(), checksum || cold);
            let state = if cold {
                let streamer = Streamer::new(Arc::clone(output));
                let state = source.snapshot_copying(repo, chunker, progress, &streamer)?;
                streamer.finish()?;
                state
            } else {
                source.snapshot(repo, chunker, progress)?
            };
            write(&[Message::Source(super::wire::SourceInfo {
                root: state.root,
                files: state.files,
                bytes: state.bytes,
                unreadable: state.unreadable,
                root_meta: state.root_meta,
            })])?;
            let mut out = Shared(Arc::clone(output));
            provide(
                origin.url(),
                repo,
                &mut source,
                &mut input,
                &mut out,
                &NullSink,
                version,
            )?;
            Ok(())
        }
        Message::Push {
            path,
            delete,
            dry_run,
            max_delete,
            source,
        } => {
            for p in &source.unreadable {
                check_path(p).map_err(protocol)?;
            }
            let destination = OriginSpec::directory(&directory(&path)).open_writable(&options)?;
            let requests = Requests::new(Box::new(Shared(Arc::clone(output))));
            let mut remote = RemoteSource::new(
                PEER,
                input,
                Arc::clone(&requests),
                Some(source),
                Resume::default(),
            );
            if version >= PACKED_SINCE {
                remote = remote.with_deltas(destination.url(), version);
            }
            let sink = Forward(Arc::clone(&requests));
            let summary = sync_from(
                repo,
                &mut remote,
                destination.as_ref(),
                chunker,
                SyncOptions {
                    delete,
                    dry_run,
                    checksum: false,
                    max_delete,
                },
                &sink,
            )?;
            send(&requests, &[Message::Done(summary), Message::Bye]).map_err(lost)?;
            Ok(())
        }
        other => Err(protocol(format!(
            "expected Pull or Push, got {}",
            name_of(&other)
        ))),
    }
}

/// How far the scan of a pulled directory has got, for the heartbeat.
#[derive(Default)]
struct ScanProgress {
    done: AtomicU64,
    total: AtomicU64,
    /// This end has sent its greeting: the heartbeat may speak.
    greeted: std::sync::atomic::AtomicBool,
}

impl Sink for ScanProgress {
    fn event(&self, _event: &Event) {}

    fn phase(&self, _name: &str, _files: u64, bytes: u64) {
        self.total.fetch_add(bytes, Ordering::Relaxed);
    }

    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The session's output, shared by the request feeder and the event forwarder.
struct Shared(Arc<Mutex<BufWriter<Box<dyn Write + Send>>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut out) => out.write(buf),
            Err(_) => Err(std::io::Error::other("output writer poisoned")),
        }
    }

    /// One lock for the whole buffer, so a frame is never interleaved with another thread's.
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut out) => out.write_all(buf),
            Err(_) => Err(std::io::Error::other("output writer poisoned")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Err(std::io::Error::other("output writer poisoned")),
        }
    }
}

/// Sends a pushed sync's actions and problems to the client.
struct Forward(Arc<Mutex<Requests>>);

impl Sink for Forward {
    fn event(&self, event: &Event) {
        let message = match event {
            Event::Problem { path, message, .. } => Message::Event {
                kind: "problem".into(),
                path: path.as_bytes().to_vec(),
                message: message.clone(),
                bytes: 0,
            },
            Event::Action {
                action,
                path,
                bytes_transferred,
            } => Message::Event {
                kind: (*action).into(),
                path: path.as_bytes().to_vec(),
                message: String::new(),
                bytes: *bytes_transferred,
            },
            Event::FileRead { .. }
            | Event::Damaged { .. }
            | Event::Edited { .. }
            | Event::Missing { .. }
            | Event::Unreadable { .. }
            | Event::Repaired { .. }
            | Event::Unrepaired { .. }
            | Event::Retry { .. } => return,
        };
        let _ = send(&self.0, &[message]);
    }
}
