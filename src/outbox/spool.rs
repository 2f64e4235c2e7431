//! The offline spool: messages that clients appended to
//! `HERALD_HOME/spool/spool.jsonl` while the relay could not be reached,
//! imported into the outbox when the relay starts and every
//! [`IMPORT_INTERVAL`] after that.
//!
//! Each line is one JSON object:
//! `{"spool_id", "text", "title", "profile", "format", "created_at"}`, where
//! `spool_id` is unique per message, `profile` and `title` may be null,
//! `format` is `"text"` or `"markdown"` and `created_at` is in milliseconds
//! since the Unix epoch.
//!
//! Writer protocol (see `clients/python/herald_notify.py`): open
//! `spool.jsonl` with `O_APPEND`, take a shared `flock` without blocking,
//! check that the open file is still the one named `spool.jsonl` (same
//! device and inode), then append the whole line with one `write`. A writer
//! that cannot take the lock or finds another file under the name reopens.
//!
//! The importer renames `spool.jsonl` to `spool.jsonl.importing-PID`, so new
//! writers create a new file, and then takes an exclusive lock on the
//! renamed file. That lock waits for writers that locked the file before the
//! rename, and writers that lock it later see that it was renamed. Each
//! message is inserted in the same transaction as its `spool_id` in the
//! `spool_imports` table, so importing a file again after a crash skips the
//! lines already stored and no spooled message is queued twice. The file is
//! deleted after every line is stored or rejected. A crash before that
//! deletion appends the file's rejected lines to `rejected.jsonl` again on
//! the next pass.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use rusqlite::{params, Connection, TransactionBehavior};
use serde::Deserialize;
use tokio::sync::watch;

use super::store::{self, NewMessage, Status};
use super::{Outbox, Update};
use crate::home::{now_ms, Home};
use crate::profile::ProfileStore;
use crate::relay::BODY_LIMIT;

/// The spool folder inside `HERALD_HOME`.
pub const SPOOL_DIR: &str = "spool";
/// The file that clients append to.
pub const SPOOL_FILE: &str = "spool.jsonl";
/// Lines that could not be imported, kept byte for byte. A line whose
/// profile was missing can be appended to `spool.jsonl` again once the
/// profile exists.
pub const REJECTED_FILE: &str = "rejected.jsonl";
/// Name prefix of a spool file taken over by the importer; the relay's pid
/// follows it.
pub const IMPORTING_PREFIX: &str = "spool.jsonl.importing-";
/// How often the relay looks for a spool file when it cannot watch the
/// spool folder, and how soon it retries a failed import.
pub const IMPORT_INTERVAL: Duration = Duration::from_secs(2);
/// The `source` of imported messages.
pub const SOURCE: &str = "spool";

/// How long the importer waits for writers that still hold a renamed file
/// before it leaves the file for the next pass.
const LOCK_WAIT: Duration = Duration::from_secs(5);
/// Lines stored per transaction.
const BATCH: usize = 256;
/// Longest accepted `spool_id`, in bytes. Clients write 32 hex digits.
const MAX_SPOOL_ID: usize = 128;
/// Rejected lines logged one by one per file; the rest are only counted.
const LOGGED_REJECTIONS: usize = 10;
/// How often a failure that repeats on every pass is logged again.
const REPEAT_LOG_INTERVAL: Duration = Duration::from_secs(300);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS spool_imports (
    spool_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    imported_at INTEGER NOT NULL
);
";

/// Counts of one import pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Spool files read to the end and deleted.
    pub files: usize,
    /// Messages stored in the outbox.
    pub imported: usize,
    /// Lines whose `spool_id` was stored before, by an earlier pass or
    /// earlier in the same file.
    pub duplicates: usize,
    /// Partial lines and lines that are not a valid spool entry.
    pub invalid: usize,
    /// Valid lines that cannot become a message: unknown profile, no
    /// default profile, empty text, unknown format or text over 1 MiB.
    pub rejected: usize,
}

impl ImportReport {
    fn add(&mut self, other: ImportReport) {
        self.files += other.files;
        self.imported += other.imported;
        self.duplicates += other.duplicates;
        self.invalid += other.invalid;
        self.rejected += other.rejected;
    }
}

/// One line of the spool file.
#[derive(Deserialize)]
struct SpoolLine {
    spool_id: String,
    text: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    profile: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    created_at: Option<i64>,
}

/// A line ready to store.
struct Entry {
    spool_id: String,
    message: NewMessage,
    created_at: i64,
}

/// The profiles that messages can be stored for, read once per pass.
struct Targets {
    names: HashSet<String>,
    default: Option<String>,
}

impl Targets {
    fn load(profiles: &ProfileStore) -> Result<Targets> {
        Ok(Targets {
            names: profiles.list()?.into_iter().map(|p| p.name).collect(),
            default: profiles.default_name()?,
        })
    }
}

/// Returns `HERALD_HOME/spool`.
pub fn spool_dir(home: &Home) -> PathBuf {
    home.root().join(SPOOL_DIR)
}

/// Creates the `spool_imports` table if it does not exist.
pub fn ensure_schema(connection: &Connection) -> Result<()> {
    connection
        .execute_batch(SCHEMA)
        .context("could not create the spool_imports table")
}

/// Starts the importer task: one pass now, then one every
/// [`IMPORT_INTERVAL`] until `shutdown` turns true.
pub fn spawn_importer(
    home: &Home,
    outbox: &Outbox,
    profiles: &ProfileStore,
    mut shutdown: watch::Receiver<bool>,
) {
    let home = home.clone();
    let outbox = outbox.clone();
    let profiles = profiles.clone();
    tokio::spawn(async move {
        // Watching the spool folder means no wake-ups while nothing is
        // spooled. Without a watcher the importer polls instead.
        let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel::<()>();
        let watcher = match watch_spool(&spool_dir(&home), changed) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), interval_s = IMPORT_INTERVAL.as_secs(), "cannot watch the spool folder; polling it instead");
                None
            }
        };
        let polling = watcher.is_none();
        let mut failures = RepeatedFailure::default();
        loop {
            let (home, outbox, profiles) = (home.clone(), outbox.clone(), profiles.clone());
            let pass =
                tokio::task::spawn_blocking(move || import_spool(&home, &outbox, &profiles)).await;
            let retry = match pass {
                Ok(Ok(_)) => {
                    failures.clear();
                    false
                }
                Ok(Err(error)) => {
                    failures.record(format!("{error:#}"));
                    true
                }
                Err(error) => {
                    failures.record(format!("the import task failed: {error}"));
                    true
                }
            };
            let wait = if polling || retry {
                IMPORT_INTERVAL
            } else {
                Duration::MAX
            };
            let stopping = async {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            };
            let changed = tokio::select! {
                biased;
                _ = stopping => break,
                Some(()) = changes.recv() => true,
                _ = sleep_or_forever(wait) => false,
            };
            if changed {
                // A writer appends many lines in a burst: let it settle,
                // then import once for the whole burst.
                tokio::time::sleep(SETTLE).await;
                while changes.try_recv().is_ok() {}
            }
        }
        drop(watcher);
    });
}

/// How long a burst of spool writes may last before one import takes it.
const SETTLE: Duration = Duration::from_millis(100);

async fn sleep_or_forever(wait: Duration) {
    if wait == Duration::MAX {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(wait).await;
    }
}

/// Watches the spool folder, creating it (owner-only) if needed, and sends
/// a signal on every change.
fn watch_spool(
    dir: &Path,
    changed: tokio::sync::mpsc::UnboundedSender<()>,
) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    }
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            let _ = changed.send(());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Imports every spool file in `HERALD_HOME/spool`: leftovers of an earlier
/// run first, then the current `spool.jsonl`. Blocks on file and database
/// I/O, so async callers run it on a blocking thread. Cheap when the spool
/// folder or file does not exist.
pub fn import_spool(home: &Home, outbox: &Outbox, profiles: &ProfileStore) -> Result<ImportReport> {
    let dir = spool_dir(home);
    let mut report = ImportReport::default();
    let mut pending = match importing_files(&dir) {
        Ok(files) => files,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(error) => {
            return Err(error).with_context(|| format!("could not list {}", dir.display()))
        }
    };

    // A file of this process that a previous pass could not finish keeps
    // its name, so the current spool file waits for the next pass rather
    // than replace it.
    let own = dir.join(format!("{IMPORTING_PREFIX}{}", std::process::id()));
    if !pending.contains(&own) {
        match fs::rename(dir.join(SPOOL_FILE), &own) {
            Ok(()) => pending.push(own),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| {
                    format!(
                        "could not rename {} for import",
                        dir.join(SPOOL_FILE).display()
                    )
                })
            }
        }
    }
    if pending.is_empty() {
        return Ok(report);
    }

    let targets = Targets::load(profiles)?;
    outbox.run_blocking(|connection| ensure_schema(connection))?;
    let mut first_error = None;
    for path in &pending {
        match import_file(&dir, path, outbox, &targets) {
            Ok(file_report) => report.add(file_report),
            Err(error) => {
                tracing::warn!(file = %path.display(), error = %format!("{error:#}"), "could not import a spool file, so it stays for the next pass");
                first_error.get_or_insert(error);
            }
        }
    }
    if report.imported > 0 {
        tracing::info!(
            imported = report.imported,
            duplicates = report.duplicates,
            invalid = report.invalid,
            rejected = report.rejected,
            "imported spooled messages"
        );
        outbox.wake();
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

/// Lists `spool.jsonl.importing-*` files, oldest first.
fn importing_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(IMPORTING_PREFIX) && entry.file_type()?.is_file() {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            files.push((modified, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// Imports one renamed spool file and deletes it.
fn import_file(
    dir: &Path,
    path: &Path,
    outbox: &Outbox,
    targets: &Targets,
) -> Result<ImportReport> {
    let file = File::open(path).with_context(|| format!("could not open {}", path.display()))?;
    lock_exclusive(&file).with_context(|| format!("could not lock {}", path.display()))?;

    let mut report = ImportReport::default();
    let mut rejected = Rejected::new(dir.join(REJECTED_FILE));
    let mut batch = Vec::with_capacity(BATCH);
    let mut reader = BufReader::new(&file);
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("could not read {}", path.display()))?;
        if read == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            // A writer that died mid-write, or a write cut short when the
            // disk was full, leaves a last line without its newline.
            report.invalid += 1;
            rejected.add(&line, number, None, "partial last line without a newline")?;
            continue;
        }
        let content = &line[..line.len() - 1];
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_line(content, targets) {
            Ok(entry) => batch.push(entry),
            Err(Invalid::Malformed(reason)) => {
                report.invalid += 1;
                rejected.add(content, number, None, &reason)?;
            }
            Err(Invalid::Unusable { spool_id, reason }) => {
                report.rejected += 1;
                rejected.add(content, number, Some(&spool_id), &reason)?;
            }
        }
        if batch.len() == BATCH {
            store_batch(outbox, &mut batch, &mut report)?;
        }
    }
    store_batch(outbox, &mut batch, &mut report)?;
    rejected.finish(path)?;

    fs::remove_file(path).with_context(|| format!("could not delete {}", path.display()))?;
    report.files = 1;
    Ok(report)
}

/// Takes an exclusive lock on `file`, waiting up to [`LOCK_WAIT`] for
/// writers that opened it before it was renamed.
fn lock_exclusive(file: &File) -> Result<()> {
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => {
                anyhow::bail!(
                    "timed out after {} s waiting for a writer to release the file",
                    LOCK_WAIT.as_secs()
                )
            }
            Err(fs::TryLockError::Error(error)) => return Err(error.into()),
        }
    }
}

/// The reason a line is not imported.
enum Invalid {
    /// Not JSON, or not a spool entry.
    Malformed(String),
    /// A valid entry that cannot become a message.
    Unusable { spool_id: String, reason: String },
}

fn parse_line(content: &[u8], targets: &Targets) -> Result<Entry, Invalid> {
    let line: SpoolLine = serde_json::from_slice(content)
        .map_err(|error| Invalid::Malformed(format!("not a valid spool entry: {error}")))?;
    if line.spool_id.is_empty() || line.spool_id.len() > MAX_SPOOL_ID {
        return Err(Invalid::Malformed(format!(
            "spool_id must have 1 to {MAX_SPOOL_ID} bytes, found {}",
            line.spool_id.len()
        )));
    }
    let unusable = |reason: String| Invalid::Unusable {
        spool_id: line.spool_id.clone(),
        reason,
    };
    let markdown = match line.format.as_deref() {
        None | Some("text") => false,
        Some("markdown") => true,
        Some(other) => {
            return Err(unusable(format!(
                "unknown format '{other}'; use \"text\" or \"markdown\""
            )))
        }
    };
    if line.text.trim().is_empty() {
        return Err(unusable("the text is empty".to_owned()));
    }
    if line.text.len() > BODY_LIMIT {
        return Err(unusable(format!(
            "the text has {} bytes, more than the relay's limit of {BODY_LIMIT} bytes (1 MiB)",
            line.text.len()
        )));
    }
    let profile = match &line.profile {
        Some(name) if targets.names.contains(name) => name.clone(),
        Some(name) => return Err(unusable(format!("profile '{name}' not found"))),
        None => match &targets.default {
            Some(name) if targets.names.contains(name) => name.clone(),
            _ => {
                return Err(unusable(
                    "no profile was named and there is no default profile".to_owned(),
                ))
            }
        },
    };
    let created_at = line.created_at.filter(|at| *at > 0).unwrap_or_else(now_ms);
    Ok(Entry {
        spool_id: line.spool_id,
        message: NewMessage {
            profile,
            title: line.title.filter(|t| !t.trim().is_empty()),
            text: line.text,
            markdown,
            source: SOURCE,
        },
        created_at,
    })
}

/// Stores the batch and empties it.
fn store_batch(outbox: &Outbox, batch: &mut Vec<Entry>, report: &mut ImportReport) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids = outbox.run_blocking(|connection| insert_entries(connection, batch))?;
    for (entry, id) in batch.drain(..).zip(ids) {
        match id {
            Some(id) => {
                report.imported += 1;
                outbox.publish(Update {
                    id,
                    profile: entry.message.profile,
                    status: Status::Queued,
                });
            }
            None => report.duplicates += 1,
        }
    }
    Ok(())
}

/// Inserts each entry's `spool_id` and, unless it was stored before, its
/// message in one transaction. Returns the new message ids in order, with
/// `None` for duplicates.
fn insert_entries(connection: &mut Connection, entries: &[Entry]) -> Result<Vec<Option<String>>> {
    let now = now_ms();
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(entries.len());
    {
        let mut claim = transaction.prepare_cached(
            "INSERT OR IGNORE INTO spool_imports (spool_id, message_id, imported_at) VALUES (?1, ?2, ?3)",
        )?;
        let mut insert = transaction.prepare_cached(
            "INSERT INTO messages (id, profile, title, text, format, source, status, created_at, updated_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        )?;
        for entry in entries {
            let id = store::new_id();
            if claim.execute(params![entry.spool_id, id, now])? == 0 {
                ids.push(None);
                continue;
            }
            let message = &entry.message;
            insert.execute(params![
                id,
                message.profile,
                message.title,
                message.text,
                if message.markdown { "markdown" } else { "text" },
                message.source,
                Status::Queued.as_str(),
                entry.created_at,
                now,
            ])?;
            ids.push(Some(id));
        }
    }
    transaction.commit()?;
    Ok(ids)
}

/// Appends lines that were not imported to `rejected.jsonl`, opened on the
/// first such line, and logs the first few of them.
struct Rejected {
    path: PathBuf,
    file: Option<File>,
    count: usize,
}

impl Rejected {
    fn new(path: PathBuf) -> Rejected {
        Rejected {
            path,
            file: None,
            count: 0,
        }
    }

    fn add(
        &mut self,
        content: &[u8],
        line: usize,
        spool_id: Option<&str>,
        reason: &str,
    ) -> Result<()> {
        self.count += 1;
        if self.count <= LOGGED_REJECTIONS {
            tracing::warn!(line, spool_id, reason, rejected = %self.path.display(), "a spool line was not imported");
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(open_append_private(&self.path)?),
        };
        let mut record = content.strip_suffix(b"\n").unwrap_or(content).to_vec();
        record.push(b'\n');
        file.write_all(&record)
            .with_context(|| format!("could not write {}", self.path.display()))
    }

    /// Syncs the rejected lines to disk before the spool file is deleted,
    /// and logs how many there were when some were not logged one by one.
    fn finish(self, spool_file: &Path) -> Result<()> {
        if let Some(file) = &self.file {
            file.sync_all()
                .with_context(|| format!("could not write {}", self.path.display()))?;
        }
        if self.count > LOGGED_REJECTIONS {
            tracing::warn!(
                count = self.count,
                file = %spool_file.display(),
                rejected = %self.path.display(),
                "spool lines were not imported"
            );
        }
        Ok(())
    }
}

fn open_append_private(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .with_context(|| format!("could not open {}", path.display()))
}

/// Logs a failing pass, and the same failure again only every
/// [`REPEAT_LOG_INTERVAL`] with the number of passes in between.
#[derive(Default)]
struct RepeatedFailure {
    last: Option<String>,
    repeats: u64,
    logged_at: Option<Instant>,
}

impl RepeatedFailure {
    fn record(&mut self, error: String) {
        if self.last.as_deref() == Some(error.as_str()) {
            self.repeats += 1;
            if self
                .logged_at
                .is_some_and(|at| at.elapsed() < REPEAT_LOG_INTERVAL)
            {
                return;
            }
            tracing::warn!(%error, repeats = self.repeats, "importing the spool still fails");
        } else {
            tracing::warn!(%error, interval_s = IMPORT_INTERVAL.as_secs(), "importing the spool failed, retrying on every pass");
            self.last = Some(error);
            self.repeats = 0;
        }
        self.logged_at = Some(Instant::now());
    }

    fn clear(&mut self) {
        if self.last.take().is_some() {
            tracing::info!("importing the spool works again");
        }
        self.repeats = 0;
        self.logged_at = None;
    }
}
