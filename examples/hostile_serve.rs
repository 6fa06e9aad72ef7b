//! A remote end that speaks the sync protocol but sends a hostile name, for the SSH tests:
//! `hostile_serve KIND serve --stdio`, where KIND is `dotdot`, `absolute`, `nul` or `long`.
//! A client must refuse what it sends and write nothing.

use std::io::{BufReader, Write};

use musicfs::id::ChunkId;
use musicfs::media::Format;
use musicfs::remote::wire::{read_message, write_message, Message, SourceInfo, MAGIC};
use musicfs::remote::wire::PROTOCOL_VERSION;
use musicfs::repo::FORMAT_VERSION;
use musicfs::snapshot::{ChunkList, ChunkRef, Node, Tree, TreeEntry};

fn main() {
    let kind = std::env::args().nth(1).unwrap_or_default();
    let name: Vec<u8> = match kind.as_str() {
        "dotdot" => b"..".to_vec(),
        "absolute" => b"/etc/passwd".to_vec(),
        "nul" => b"a\0b".to_vec(),
        "long" => vec![b'n'; 300],
        _ => {
            eprintln!("hostile_serve: KIND is dotdot, absolute, nul or long");
            std::process::exit(2);
        }
    };
    let data = b"hostile".to_vec();
    let list = ChunkList {
        format: Format::Opaque,
        regions: Vec::new(),
        chunks: vec![ChunkRef {
            id: ChunkId::of(&data),
            len: data.len() as u32,
        }],
        file_hash: None,
    };
    let tree = Tree {
        entries: vec![TreeEntry {
            name,
            node: Node::File {
                size: data.len() as u64,
                mtime_ns: 0,
                mode: 0o644,
                content: list.content_id(),
            },
        }],
    };
    let mut input = BufReader::new(std::io::stdin());
    let mut output = std::io::stdout();
    let mut send = |m: Message| {
        write_message(&mut output, &m).and_then(|()| output.flush()).is_ok()
    };
    send(Message::Hello {
        magic: MAGIC,
        version: PROTOCOL_VERSION,
        format: FORMAT_VERSION,
    });
    while let Ok(Some(request)) = read_message(&mut input) {
        let ok = match request {
            Message::Pull { .. } => send(Message::Source(SourceInfo {
                root: tree.tree_id(),
                files: 1,
                bytes: data.len() as u64,
                unreadable: Vec::new(),
                root_meta: None,
            })),
            Message::GetTrees(_) => send(Message::Trees(vec![tree.encode()])),
            Message::GetContents(_) => send(Message::Contents(vec![list.encode()])),
            Message::GetChunks(refs) => refs.iter().all(|_| send(Message::Chunk(data.clone()))),
            Message::Bye => break,
            _ => true,
        };
        if !ok {
            break;
        }
    }
}
