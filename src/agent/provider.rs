//! The source's side of a session: answering the destination's requests for trees, chunk
//! lists and chunks from the repository and the origin, in the order they were asked.

use std::io::{Read, Write};

use super::wire::{lost, receive, write_message, Message};
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::report::{Event, Sink};
use crate::sync::{ChunkSource, SyncSummary};

/// How a providing session ended.
pub(crate) enum Ended {
    /// The destination said goodbye, or closed the connection.
    Bye,
    /// The destination finished a pushed sync.
    Done(SyncSummary),
}

/// Answers requests on `input` with replies on `output` until the other end is done.
pub(crate) fn provide(
    origin: &str,
    repo: &Repository,
    chunks: &mut dyn ChunkSource,
    input: &mut dyn Read,
    output: &mut dyn Write,
    sink: &dyn Sink,
) -> Result<Ended> {
    let lost = |e| lost(origin, e);
    loop {
        crate::interrupt::check_signal()?;
        let Some(message) = receive(origin, input)? else {
            return Ok(Ended::Bye);
        };
        match message {
            Message::GetTrees(ids) => {
                let mut trees = Vec::with_capacity(ids.len());
                for id in &ids {
                    trees.push(repo.tree(id)?.encode());
                }
                write_message(output, &Message::Trees(trees)).map_err(lost)?;
            }
            Message::GetContents(ids) => {
                let mut lists = Vec::with_capacity(ids.len());
                for id in &ids {
                    lists.push(repo.content(id)?.encode());
                }
                write_message(output, &Message::Contents(lists)).map_err(lost)?;
            }
            Message::GetChunks(refs) => {
                for chunk in refs {
                    if chunk.len > super::wire::MAX_CHUNK {
                        write_message(output, &Message::NoChunk).map_err(lost)?;
                        continue;
                    }
                    // Only verified bytes go on the wire, in the form the chunk's id names.
                    let reply = match chunks.read_chunk(b"", 0, chunk)? {
                        Some(found) => {
                            sink.advance(u64::from(chunk.len));
                            Message::Chunk(found.into_canonical().into_bytes())
                        }
                        None => Message::NoChunk,
                    };
                    write_message(output, &reply).map_err(lost)?;
                }
            }
            Message::Event {
                kind,
                path,
                message,
                bytes,
            } => sink.event(&remote_event(&kind, &path, message, bytes)),
            Message::Working { .. } => continue,
            Message::Done(summary) => return Ok(Ended::Done(summary)),
            Message::Bye => return Ok(Ended::Bye),
            Message::Failed(message) => {
                return Err(Error::Remote {
                    origin: origin.to_string(),
                    message,
                })
            }
            other => {
                return Err(Error::Protocol {
                    origin: origin.to_string(),
                    message: format!("unexpected request {}", name_of(&other)),
                })
            }
        }
        output.flush().map_err(lost)?;
    }
}

/// An event the destination reported, for the local display.
fn remote_event(kind: &str, path: &[u8], message: String, bytes: u64) -> Event {
    let path = crate::report::display_path(path);
    let action = match kind {
        "write" => "write",
        "move" => "move",
        "meta" => "meta",
        "symlink" => "symlink",
        "mkdir" => "mkdir",
        "delete" => "delete",
        _ => {
            return Event::Problem {
                path,
                message: if message.is_empty() {
                    kind.to_string()
                } else {
                    message
                },
                fault: None,
            }
        }
    };
    Event::Action {
        action,
        path,
        bytes_transferred: bytes,
    }
}

/// A message's name, for errors.
pub(crate) fn name_of(message: &Message) -> &'static str {
    match message {
        Message::Hello { .. } => "Hello",
        Message::Pull { .. } => "Pull",
        Message::Push { .. } => "Push",
        Message::Source(_) => "Source",
        Message::GetTrees(_) => "GetTrees",
        Message::Trees(_) => "Trees",
        Message::GetContents(_) => "GetContents",
        Message::Contents(_) => "Contents",
        Message::GetChunks(_) => "GetChunks",
        Message::Chunk(_) => "Chunk",
        Message::NoChunk => "NoChunk",
        Message::Event { .. } => "Event",
        Message::Done(_) => "Done",
        Message::Bye => "Bye",
        Message::Failed(_) => "Failed",
        Message::Working { .. } => "Working",
        Message::Filter(_) => "Filter",
    }
}
