//! Where a repository's index spends its bytes: rows, stored bytes and pages of each table,
//! and the pages the file holds that no table uses; the figures behind the repository sizes in
//! `docs/benchmarks.md`.
//!
//! Run: `cargo run --release --example index_usage -- REPO [FILES]`
//!
//! With `FILES` (the files the repository describes), each figure is also given per file. The
//! index is opened read-only in effect (a write transaction is begun for the database's page
//! statistics and aborted); no other process may have it open.

use std::path::PathBuf;

use anyhow::{Context, Result};
use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableHandle};

fn main() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let repo = PathBuf::from(args.next().context("usage: index_usage REPO [FILES]")?);
    let files: Option<f64> = args
        .next()
        .map(|f| f.to_string_lossy().parse())
        .transpose()
        .context("FILES is a number")?;
    let index = repo.join("index.redb");
    let file_bytes = std::fs::metadata(&index)
        .with_context(|| format!("{}", index.display()))?
        .len();
    let db = Database::open(&index).with_context(|| format!("{}", index.display()))?;
    let per_file = |bytes: u64| match files {
        Some(n) if n > 0.0 => format!("{:>9.1}", bytes as f64 / n),
        _ => String::new(),
    };

    println!(
        "{:<18} {:>10} {:>13} {:>13} {:>13} {:>9}",
        "table", "rows", "stored", "metadata", "fragmented", "per file"
    );
    let read = db.begin_read()?;
    let mut tables: Vec<_> = read.list_tables()?.collect();
    tables.sort_by(|a, b| a.name().cmp(b.name()));
    let mut total = 0;
    for handle in tables {
        let name = handle.name().to_string();
        let table = read.open_untyped_table(handle)?;
        let stats = table.stats()?;
        let used = stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        total += used;
        println!(
            "{:<18} {:>10} {:>13} {:>13} {:>13} {}",
            name,
            table.len()?,
            stats.stored_bytes(),
            stats.metadata_bytes(),
            stats.fragmented_bytes(),
            per_file(used)
        );
    }
    drop(read);

    let write = db.begin_write()?;
    let stats = write.stats()?;
    let allocated = stats.allocated_pages() * stats.page_size() as u64;
    write.abort()?;
    println!("tables, all pages used: {total} bytes {}", per_file(total));
    println!(
        "pages allocated: {allocated} bytes {}; file: {file_bytes} bytes {}",
        per_file(allocated),
        per_file(file_bytes)
    );
    Ok(())
}
