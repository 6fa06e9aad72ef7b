//! The client's side of a session: the handshake, then a pull (this end is the destination)
//! or a push (this end is the source and answers the server's requests).

use std::io::{BufReader, Read, Write};

use super::provider::{provide, Ended};
use super::resume::Resume;
use super::source::{send, RemoteSource, Requests};
use super::wire::{read_message, Message, SourceInfo, MAGIC, PROTOCOL_VERSION};
use crate::chunk::Chunker;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::interrupt::ReadAhead;
use crate::origin::{Origin, WritableOrigin};
use crate::repo::Repository;
use crate::report::Sink;
use crate::sync::{sync_from, LocalSource, SyncOptions, SyncSource, SyncSummary};

/// The pull's read buffer: the smallest chunk's size (see where it is used).
const PULL_BUFFER: usize = 16 * 1024;
/// Blocks (of at most 64 KiB) of the server's messages read ahead in a push, at most.
const PUSH_READ_AHEAD: usize = 1024;

/// A byte stream to a `musicfs serve --stdio` (a remote command's stdout and stdin, or any
/// pipe pair).
pub struct Connection {
    /// The server's output.
    pub input: Box<dyn Read + Send>,
    /// The server's input; dropping it ends the session.
    pub output: Box<dyn Write + Send>,
    /// The remote origin, for messages (`host:path`).
    pub origin: String,
}

/// This end's greeting, for a repository that cuts files by chunking `rules`.
pub(crate) fn hello(rules: u32) -> Message {
    hello_in(PROTOCOL_VERSION, rules)
}

/// A greeting in protocol `version` (a server answers in the client's), for chunking `rules`.
pub(crate) fn hello_in(version: u32, rules: u32) -> Message {
    Message::Hello {
        magic: MAGIC,
        version,
        format: rules,
    }
}

/// Reads the server's greeting. A server that closes the connection without one is not a
/// musicfs (or not installed): [`Error::NoRemoteAgent`].
fn greeting(origin: &str, input: &mut dyn Read, rules: u32) -> Result<()> {
    let protocol = |message: String| Error::Protocol {
        origin: origin.to_string(),
        message,
    };
    match read_message(input) {
        Ok(Some(Message::Hello {
            magic,
            version,
            format,
        })) if magic == MAGIC => {
            if version != PROTOCOL_VERSION || !known_rules(format) {
                return Err(protocol(format!(
                    "the remote musicfs speaks protocol {version} with chunking rules {format}; this one speaks protocol {PROTOCOL_VERSION} with chunking rules {rules} (install the same version on both ends, or use --sftp)"
                )));
            }
            if format != rules {
                // Both ends know both rules: the remote's repository was made by the other.
                return Err(protocol(format!(
                    "the remote's repository cuts files by chunking rules {format}, this repository by rules {rules}: their chunk ids would not match (the remote's MUSICFS_REPO can name a new directory, which takes this repository's rules; or use --sftp)"
                )));
            }
            Ok(())
        }
        Ok(None) | Err(_) => Err(Error::NoRemoteAgent {
            origin: origin.to_string(),
            message: "the remote command ended before the handshake".into(),
        }),
        Ok(Some(_)) => Err(protocol("the remote end did not greet as musicfs".into())),
    }
}

/// Whether this build knows chunking rules `rules`.
fn known_rules(rules: u32) -> bool {
    crate::repo::ChunkerConfig::for_rules(rules).is_some()
}

/// The `Filter` message for the server's walk, when there is a filter to send.
fn filter_message(filter: &Filter) -> Option<Message> {
    (!filter.is_empty()).then(|| Message::Filter(filter.spec().clone()))
}

/// Makes `destination` a copy of the server's directory `remote_path`. `resume` carries the
/// chunks received lately from one attempt to the next: a retry after a dropped connection
/// does not ask for them again.
#[allow(clippy::too_many_arguments)]
pub fn pull(
    repo: &Repository,
    connection: Connection,
    remote_path: &[u8],
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
    resume: &mut Resume,
) -> Result<SyncSummary> {
    pull_filtered(
        repo,
        connection,
        remote_path,
        &Filter::none(),
        destination,
        chunker,
        options,
        sink,
        resume,
    )
}

/// [`pull`], the server's directory walked through `filter` (sent in a `Filter` message):
/// what it excludes there is never read, and is not part of the source.
#[allow(clippy::too_many_arguments)]
pub fn pull_filtered(
    repo: &Repository,
    connection: Connection,
    remote_path: &[u8],
    filter: &Filter,
    destination: &dyn WritableOrigin,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
    resume: &mut Resume,
) -> Result<SyncSummary> {
    let Connection {
        input,
        output,
        origin,
    } = connection;
    let lost = |e| super::wire::lost(&origin, e);
    let requests = Requests::new(output);
    // A destination that holds nothing yet asks for each file as the server's scan reads it
    // (protocol 6). Sent with the greeting: a server that does not speak this end's version
    // refuses the greeting before it reads anything else.
    // A retry that holds chunks an attempt before it received asks for the rest as usual.
    let cold = crate::sync::is_cold(destination, options.dry_run) && resume.is_empty();
    let path = remote_path.to_vec();
    let checksum = options.checksum;
    let request = match cold {
        true => Message::ColdPull { path, checksum },
        false => Message::Pull { path, checksum },
    };
    let messages: Vec<Message> = [Some(hello(chunker.rules())), filter_message(filter)]
        .into_iter()
        .flatten()
        .chain([request])
        .collect();
    send(&requests, &messages).map_err(lost)?;
    // Small: a read as large as the buffer, made when it is empty, goes straight to the
    // caller's memory. A chunk's bytes (16 KiB to 256 KiB) are read into their own buffer,
    // and through a buffer of 1 MiB, which never empties at a chunk's start, every byte
    // of every chunk was copied twice.
    let mut input = BufReader::with_capacity(PULL_BUFFER, input);
    greeting(&origin, &mut input, chunker.rules())?;
    let mut source = RemoteSource::new(
        &origin,
        input,
        requests.clone(),
        None,
        std::mem::take(resume),
    )
    // The server answered in this end's version (`greeting`): it sends deltas.
    .with_deltas(destination.url(), PROTOCOL_VERSION)
    .streamed(cold);
    let result = sync_from(repo, &mut source, destination, chunker, options, sink);
    *resume = source.into_resume();
    let summary = result?;
    // The server may already be gone; the sync is complete either way.
    let _ = send(&requests, &[Message::Bye]);
    Ok(summary)
}

/// Makes the server's directory `remote_path` a copy of `source`, answering the server's
/// requests for what it lacks.
pub fn push(
    repo: &Repository,
    source: &dyn Origin,
    connection: Connection,
    remote_path: &[u8],
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    push_filtered(
        repo,
        source,
        connection,
        remote_path,
        &Filter::none(),
        chunker,
        options,
        sink,
    )
}

/// [`push`], the server's directory walked through `filter` (sent in a `Filter` message):
/// what it excludes there is neither in its snapshot nor deleted.
#[allow(clippy::too_many_arguments)]
pub fn push_filtered(
    repo: &Repository,
    source: &dyn Origin,
    connection: Connection,
    remote_path: &[u8],
    filter: &Filter,
    chunker: &dyn Chunker,
    options: SyncOptions,
    sink: &dyn Sink,
) -> Result<SyncSummary> {
    let Connection {
        input,
        mut output,
        origin,
    } = connection;
    let lost = |e| super::wire::lost(&origin, e);
    let mut local = LocalSource::new(repo, source, options.checksum);
    let state = local.snapshot(repo, chunker, sink)?;
    let push = Message::Push {
        path: remote_path.to_vec(),
        delete: options.delete,
        dry_run: options.dry_run,
        max_delete: options.max_delete,
        source: SourceInfo {
            root: state.root,
            files: state.files,
            bytes: state.bytes,
            unreadable: state.unreadable.clone(),
            root_meta: state.root_meta,
        },
    };
    for m in [
        Some(hello(chunker.rules())),
        filter_message(filter),
        Some(push),
    ]
    .into_iter()
    .flatten()
    {
        super::wire::write_message(&mut output, &m).map_err(lost)?;
    }
    output.flush().map_err(lost)?;
    // The server's requests and reports are read ahead on a thread of their own. Read only
    // between answers, they would fill the link's small queue while this end writes
    // chunks, and a full queue stops the whole connection, the window updates the writing
    // waits for included: neither end would move again. What a server sends in a push is
    // small (requests for at most 32 MiB of chunks at a time, an event per file).
    let input: Box<dyn Read + Send> = Box::new(ReadAhead::new(input, PUSH_READ_AHEAD));
    let mut input = BufReader::with_capacity(1 << 20, input);
    greeting(&origin, &mut input, chunker.rules())?;
    sink.phase("sending", state.files, state.bytes);
    let mut output = std::io::BufWriter::with_capacity(1 << 20, output);
    // The server answered in this end's version (`greeting`): it accepts packs.
    match provide(
        &origin,
        repo,
        &mut local,
        &mut input,
        &mut output,
        sink,
        PROTOCOL_VERSION,
    )? {
        Ended::Done(summary) => Ok(summary),
        Ended::Bye => Err(Error::Unreachable {
            origin,
            message: "the server ended the session before the sync was done".into(),
        }),
    }
}
