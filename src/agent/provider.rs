//! The source's side of a session: answering the destination's requests for trees, chunk
//! lists and chunks from the repository and the origin, in the order they were asked.

use std::collections::HashSet;
use std::io::{Read, Write};

use super::wire::{lost, receive, write_message, Message, Object, Packer, Unpack};
use crate::error::{Error, Result};
use crate::id::ChunkId;
use crate::media::{Format, RegionKind};
use crate::repo::Repository;
use crate::report::{Event, Sink};
use crate::snapshot::ChunkList;
use crate::sync::{ChunkSource, SyncSummary};

/// Bytes of frames compressed together in one pack, at most (well under
/// [`super::wire::MAX_PACKED`]).
const PACK_BYTES: usize = 1 << 20;

/// An opaque file (no container understood) is compressed on the wire only up to this size:
/// the small text files of a library (cue sheets, rip logs, playlists) compress well, the
/// large opaque ones (images, archives, video) are compressed already.
const SMALL_OPAQUE: u64 = 256 << 10;

/// The chunks worth compressing on the wire, as the chunk lists this end has sent describe
/// them: tag blocks, padding and container structure, never audio or pictures (compressed
/// already: zstd would spend CPU for nothing). A chunk of a list never sent is not known
/// here, and goes uncompressed. Keyed by the first 8 bytes of the id: a collision only
/// compresses a chunk that did not need it.
#[derive(Default)]
struct Compressible(HashSet<u64>);

impl Compressible {
    fn key(id: &ChunkId) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&id.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn learn(&mut self, list: &ChunkList) {
        if list.format == Format::Opaque {
            if list.size() <= SMALL_OPAQUE {
                self.0.extend(list.chunks.iter().map(|c| Self::key(&c.id)));
            }
            return;
        }
        let mut regions = list.regions.iter().peekable();
        for (offset, chunk) in list.with_offsets() {
            while regions.peek().is_some_and(|r| r.offset + r.len <= offset) {
                regions.next();
            }
            let kind = regions.peek().map_or(RegionKind::Audio, |r| r.kind);
            if !matches!(kind, RegionKind::Audio | RegionKind::Picture) {
                self.0.insert(Self::key(&chunk.id));
            }
        }
    }

    fn contains(&self, id: &ChunkId) -> bool {
        self.0.contains(&Self::key(id))
    }
}

/// How a providing session ended.
pub(crate) enum Ended {
    /// The destination said goodbye, or closed the connection.
    Bye,
    /// The destination finished a pushed sync.
    Done(SyncSummary),
}

/// Answers requests on `input` with replies on `output` until the other end is done. With
/// `pack` (the other end speaks protocol 4 or later), trees, chunk lists, and the chunks of
/// tags, padding and structure go compressed in [`Message::Packed`] frames.
pub(crate) fn provide(
    origin: &str,
    repo: &Repository,
    chunks: &mut dyn ChunkSource,
    input: &mut dyn Read,
    output: &mut dyn Write,
    sink: &dyn Sink,
    pack: bool,
) -> Result<Ended> {
    let lost = |e| lost(origin, e);
    let mut input = Unpack::new(input);
    let mut compressible = Compressible::default();
    let mut alone = Packer::default();
    // One reply: packed alone when `pack`, else as it is.
    let mut reply = |output: &mut dyn Write, message: &Message| -> std::io::Result<()> {
        if pack {
            alone.push(message)?;
            alone.flush_to(output)
        } else {
            write_message(output, message)
        }
    };
    let mut packer = Packer::default();
    loop {
        crate::interrupt::check_signal()?;
        let Some(message) = receive(origin, &mut input)? else {
            return Ok(Ended::Bye);
        };
        match message {
            Message::GetTrees(ids) => {
                let mut trees = Vec::with_capacity(ids.len());
                for id in &ids {
                    trees.push(repo.tree(id)?.encode());
                }
                reply(output, &Message::Trees(trees)).map_err(lost)?;
            }
            Message::GetContents(ids) => {
                let mut lists = Vec::with_capacity(ids.len());
                for id in &ids {
                    let list = repo.content(id)?;
                    if pack {
                        compressible.learn(&list);
                    }
                    lists.push(list.encode());
                }
                reply(output, &Message::Contents(lists)).map_err(lost)?;
            }
            Message::GetTreesSince(wanted) => {
                let mut objects = Vec::with_capacity(wanted.len());
                for (id, base) in &wanted {
                    let base = match base {
                        Some(b) if repo.has_tree(b)? => Some(repo.tree(b)?.encode()),
                        _ => None,
                    };
                    objects.push(Object::against(repo.tree(id)?.encode(), base.as_deref()));
                }
                reply(output, &Message::Objects(objects)).map_err(lost)?;
            }
            Message::GetContentsSince(wanted) => {
                let mut objects = Vec::with_capacity(wanted.len());
                for (id, base) in &wanted {
                    let list = repo.content(id)?;
                    compressible.learn(&list);
                    let base = match base {
                        Some(b) if repo.has_content(b)? => Some(repo.content(b)?.encode()),
                        _ => None,
                    };
                    objects.push(Object::against(list.encode(), base.as_deref()));
                }
                reply(output, &Message::Objects(objects)).map_err(lost)?;
            }
            Message::GetChunks(refs) => {
                // Consecutive answers of compressible chunks are packed together (tags
                // compress far better side by side than one by one); any other answer
                // sends what waits first, so the answers stay in order.
                for chunk in refs {
                    let answer = if chunk.len > super::wire::MAX_CHUNK {
                        Message::NoChunk
                    } else {
                        // Only verified bytes go on the wire, in the form the chunk's id names.
                        match chunks.read_chunk(b"", 0, chunk)? {
                            Some(found) => {
                                sink.advance(u64::from(chunk.len));
                                Message::Chunk(found.into_canonical().into_bytes())
                            }
                            None => Message::NoChunk,
                        }
                    };
                    if pack && compressible.contains(&chunk.id) {
                        packer.push(&answer).map_err(lost)?;
                        if packer.len() >= PACK_BYTES {
                            packer.flush_to(output).map_err(lost)?;
                        }
                    } else {
                        packer.flush_to(output).map_err(lost)?;
                        write_message(output, &answer).map_err(lost)?;
                    }
                }
                packer.flush_to(output).map_err(lost)?;
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
        Message::Packed { .. } => "Packed",
        Message::GetTreesSince(_) => "GetTreesSince",
        Message::GetContentsSince(_) => "GetContentsSince",
        Message::Objects(_) => "Objects",
    }
}
