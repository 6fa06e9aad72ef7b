//! The three jobs through `smb2` 0.39.0 (pure Rust, tokio), the crate musicfs uses.
//!
//! One session and one share connection; `--workers N` runs N reading tasks over clones of the
//! one connection (SMB multiplexes them). `--mode download` (the default) reads with the crate's
//! pipelined stream, `--mode reader` with positioned reads of [`BUFFER`] one after another (as
//! musicfs's transport does). It never writes outside the files `push` rewrites.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use smb2::client::connection::Connection;
use smb2::{ClientConfig, RenameOptions, SmbClient, Tree};
use smb_crates::{deal, join, new_content, report, retag_set, temp_name, Args, Found, Job, BUFFER};

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("smb-smb2: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("smb-smb2: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let args = Args::parse("download")?;
    if !matches!(args.mode.as_str(), "download" | "reader") {
        return Err("--mode is download or reader".into());
    }
    let start = Instant::now();
    let server = &args.server;
    let config = ClientConfig {
        addr: format!("{}:{}", server.host, server.port),
        username: server.user.clone(),
        password: server.password.clone(),
        compression: false,
        dfs_enabled: false,
        ..ClientConfig::default()
    };
    let mut client = SmbClient::connect(config)
        .await
        .map_err(|e| format!("signing in: {e}"))?;
    let tree = Arc::new(
        client
            .connect_share(&server.share)
            .await
            .map_err(|e| format!("share: {e}"))?,
    );
    let mut conn = client
        .connection_for(&tree)
        .map_err(|e| format!("connection: {e}"))?;
    let mut files = Vec::new();
    walk(&tree, &mut conn, args.dir.clone(), &mut files).await?;
    let (count, bytes) = match args.job {
        Job::List => (files.len(), files.iter().map(|f| f.size).sum()),
        Job::Read => read_all(&tree, &conn, &files, args.workers, &args.mode).await?,
        Job::Push => push(&tree, &mut conn, &retag_set(&files)).await?,
    };
    report("smb2", &args, count, bytes, start.elapsed());
    drop(client);
    Ok(())
}

/// Depth first, each directory's entries in name order (one listing with sizes per directory).
async fn walk(tree: &Tree, conn: &mut Connection, dir: String, out: &mut Vec<Found>) -> Result<()> {
    let mut stack = vec![dir];
    // An explicit stack, children pushed in reverse name order: the same order as recursion.
    while let Some(dir) = stack.pop() {
        let mut entries = tree
            .list_directory(conn, &dir)
            .await
            .map_err(|e| format!("listing {dir:?}: {e}"))?;
        entries.retain(|e| e.name != "." && e.name != "..");
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = join(&dir, &entry.name);
            if entry.is_directory {
                subdirs.push(path);
            } else {
                out.push(Found {
                    path,
                    size: entry.size,
                });
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(())
}

/// Every file read in full; `workers` tasks over clones of the one connection.
async fn read_all(
    tree: &Arc<Tree>,
    conn: &Connection,
    files: &[Found],
    workers: usize,
    mode: &str,
) -> Result<(usize, u64)> {
    let mut tasks = Vec::new();
    for share in deal(files, workers) {
        let (tree, conn, mode) = (tree.clone(), conn.clone(), mode.to_string());
        tasks.push(tokio::spawn(async move {
            read_files(tree, conn, share, &mode).await
        }));
    }
    let mut bytes = 0;
    for t in tasks {
        bytes += t.await.map_err(|e| format!("a reader failed: {e}"))??;
    }
    Ok((files.len(), bytes))
}

async fn read_files(
    tree: Arc<Tree>,
    mut conn: Connection,
    files: Vec<Found>,
    mode: &str,
) -> Result<u64> {
    let mut total = 0u64;
    for f in &files {
        let mut got = 0u64;
        if mode == "download" {
            let mut download = tree
                .download(&mut conn, &f.path)
                .await
                .map_err(|e| format!("opening {:?}: {e}", f.path))?;
            while let Some(chunk) = download.next_chunk().await {
                got += chunk
                    .map_err(|e| format!("reading {:?}: {e}", f.path))?
                    .len() as u64;
            }
        } else {
            let reader = tree
                .open_file_reader(conn.clone(), &f.path)
                .await
                .map_err(|e| format!("opening {:?}: {e}", f.path))?;
            loop {
                let data = reader
                    .read_at(got, BUFFER as u64)
                    .await
                    .map_err(|e| format!("reading {:?}: {e}", f.path))?;
                if data.is_empty() {
                    break;
                }
                got += data.len() as u64;
            }
            reader
                .close()
                .await
                .map_err(|e| format!("closing {:?}: {e}", f.path))?;
        }
        if got != f.size {
            return Err(format!("{:?}: read {got} bytes of {}", f.path, f.size));
        }
        total += got;
    }
    Ok(total)
}

/// Each file written anew under a temporary name beside it, then renamed over it.
async fn push(tree: &Arc<Tree>, conn: &mut Connection, files: &[Found]) -> Result<(usize, u64)> {
    let mut bytes = 0;
    for f in files {
        let data = new_content(f.size);
        let temp = temp_name(&f.path);
        let mut writer = tree
            .create_file_writer_exclusive(conn.clone(), &temp)
            .await
            .map_err(|e| format!("creating {temp:?}: {e}"))?;
        for piece in data.chunks(BUFFER) {
            writer
                .write_chunk(piece)
                .await
                .map_err(|e| format!("writing {temp:?}: {e}"))?;
        }
        writer
            .finish()
            .await
            .map_err(|e| format!("closing {temp:?}: {e}"))?;
        tree.rename_with(
            conn,
            &temp,
            &f.path,
            RenameOptions::new().replace_if_exists(true),
        )
        .await
        .map_err(|e| format!("renaming {temp:?} over {:?}: {e}", f.path))?;
        bytes += f.size;
    }
    Ok((files.len(), bytes))
}
