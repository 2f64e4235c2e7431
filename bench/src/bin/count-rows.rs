//! Counts the rows of Herald's `messages` table, in total and by status,
//! so the benchmark can compare stored messages with acknowledged ones.
//!
//! Output, one line: `messages=N queued=N sending=N delivered=N failed=N`.
//! Opening the database replays its write-ahead log, as Herald does on
//! start, so run this only after the relay has stopped or been killed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Parser;
use rusqlite::Connection;

#[derive(Parser)]
#[command(name = "count-rows")]
struct Args {
    /// Path of Herald's database, HERALD_HOME/herald.db.
    database: PathBuf,
}

const STATUSES: [&str; 4] = ["queued", "sending", "delivered", "failed"];

fn count(database: &PathBuf) -> Result<String> {
    if !database.is_file() {
        anyhow::bail!("database {} not found", database.display());
    }
    let connection = Connection::open(database)
        .with_context(|| format!("opening {} failed", database.display()))?;
    let total: i64 = connection
        .query_row("SELECT COUNT(*) FROM messages", [], |row| row.get(0))
        .context("counting messages failed")?;
    let mut line = format!("messages={total}");
    for status in STATUSES {
        let rows: i64 = connection
            .query_row(
                "SELECT COUNT(*) FROM messages WHERE status = ?1",
                [status],
                |row| row.get(0),
            )
            .with_context(|| format!("counting {status} messages failed"))?;
        line.push_str(&format!(" {status}={rows}"));
    }
    Ok(line)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match count(&args.database) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("count-rows: {error:#}");
            ExitCode::FAILURE
        }
    }
}
