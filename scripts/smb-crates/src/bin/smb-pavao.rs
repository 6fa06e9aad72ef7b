//! The three jobs through `pavao` (Samba's libsmbclient, bound by a C FFI crate).
//!
//! libsmbclient connects on the first call, so connecting is inside the timed job as it is for
//! smb2. pavao serialises every native call of the process behind one lock: `--workers 2` shows
//! what that costs two readers. It never writes outside the files `push` rewrites.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use pavao::{SmbClient, SmbCredentials, SmbDirentType, SmbOpenOptions, SmbOptions};
use smb_crates::{deal, join, new_content, report, retag_set, temp_name, Args, Found, Job, BUFFER};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smb-pavao: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse("read")?;
    let start = Instant::now();
    let server = &args.server;
    let client = SmbClient::new(
        SmbCredentials::default()
            .server(format!("smb://{}:{}", server.host, server.port))
            .share(format!("/{}", server.share))
            .username(&server.user)
            .password(&server.password)
            .workgroup("WORKGROUP"),
        SmbOptions::default()
            .case_sensitive(true)
            .no_auto_anonymous_login(true)
            .one_share_per_server(true),
    )
    .map_err(|e| format!("client: {e}"))?;
    let mut files = Vec::new();
    walk(&client, &args.dir, &mut files)?;
    let (count, bytes) = match args.job {
        Job::List => (files.len(), files.iter().map(|f| f.size).sum()),
        Job::Read => read_all(&client, &files, args.workers)?,
        Job::Push => push(&client, &retag_set(&files))?,
    };
    report("pavao", &args, count, bytes, start.elapsed());
    Ok(())
}

/// `/dir` as pavao wants a path below the share.
fn abs(path: &str) -> String {
    format!("/{path}")
}

/// Depth first, each directory's entries in name order (one listing with sizes per directory).
fn walk(client: &SmbClient, dir: &str, out: &mut Vec<Found>) -> Result<()> {
    let mut entries = client
        .list_dirplus(abs(dir))
        .map_err(|e| format!("listing {dir:?}: {e}"))?;
    entries.sort_by(|a, b| a.name().cmp(b.name()));
    for entry in entries {
        let path = join(dir, entry.name());
        match entry.get_type() {
            SmbDirentType::Dir => walk(client, &path, out)?,
            SmbDirentType::File => out.push(Found {
                path,
                size: entry.size,
            }),
            _ => {}
        }
    }
    Ok(())
}

/// Every file read in full, in [`BUFFER`] reads; `workers` threads share the one client.
fn read_all(client: &SmbClient, files: &[Found], workers: usize) -> Result<(usize, u64)> {
    let shares = deal(files, workers);
    let totals: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| scope.spawn(move || read_files(client, share)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a reader panicked".into())))
            .collect()
    });
    let mut bytes = 0;
    for t in totals {
        bytes += t?;
    }
    Ok((files.len(), bytes))
}

fn read_files(client: &SmbClient, files: &[Found]) -> Result<u64> {
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    for f in files {
        let mut file = client
            .open_with(abs(&f.path), SmbOpenOptions::default().read(true))
            .map_err(|e| format!("opening {:?}: {e}", f.path))?;
        let mut got = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| format!("reading {:?}: {e}", f.path))?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        if got != f.size {
            return Err(format!("{:?}: read {got} bytes of {}", f.path, f.size));
        }
        total += got;
    }
    Ok(total)
}

/// Each file written anew under a temporary name beside it, then renamed over it.
fn push(client: &SmbClient, files: &[Found]) -> Result<(usize, u64)> {
    let mut bytes = 0;
    for f in files {
        let data = new_content(f.size);
        let temp = temp_name(&f.path);
        {
            let mut file = client
                .open_with(
                    abs(&temp),
                    SmbOpenOptions::default()
                        .write(true)
                        .create(true)
                        .exclusive(true),
                )
                .map_err(|e| format!("creating {temp:?}: {e}"))?;
            for piece in data.chunks(BUFFER) {
                file.write_all(piece)
                    .map_err(|e| format!("writing {temp:?}: {e}"))?;
            }
        } // dropped: closed
        client
            .rename(abs(&temp), abs(&f.path))
            .map_err(|e| format!("renaming {temp:?} over {:?}: {e}", f.path))?;
        bytes += f.size;
    }
    Ok((files.len(), bytes))
}
