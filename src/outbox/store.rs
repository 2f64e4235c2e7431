//! The SQLite database of messages, delivery attempts and send times.
//!
//! WAL mode with `synchronous = NORMAL`: a committed row survives the
//! process being killed (SIGKILL), and the relay answers 202 only after the
//! commit. A power cut can lose the last transactions before a checkpoint.

use std::path::Path;

use anyhow::{Context as _, Result};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::diagnosis::Failure;
use crate::home::now_ms;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    title TEXT,
    text TEXT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    parts_total INTEGER NOT NULL DEFAULT 0,
    parts_done INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    fallback_of TEXT,
    fallback_id TEXT,
    merged_with TEXT
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(status, next_attempt_at);
CREATE INDEX IF NOT EXISTS messages_created ON messages(created_at);
CREATE INDEX IF NOT EXISTS messages_profile_due ON messages(profile, status, next_attempt_at);
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    part INTEGER NOT NULL,
    parts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    answer TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS attempts_message ON attempts(message_id);
CREATE TABLE IF NOT EXISTS sends (
    rate_key TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sends_key ON sends(rate_key, at);
CREATE TABLE IF NOT EXISTS profile_state (
    profile TEXT PRIMARY KEY,
    last_success_ip TEXT,
    last_success_at INTEGER,
    last_error TEXT,
    last_error_at INTEGER
);
";

/// A message's delivery status, in the relay's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Sending,
    Delivered,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }

    fn parse(value: &str) -> Status {
        match value {
            "sending" => Status::Sending,
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            _ => Status::Queued,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Failed)
    }
}

/// A message to store.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub profile: String,
    pub title: Option<String>,
    pub text: String,
    pub markdown: bool,
    /// The origin: `relay`, `robot-api`, `cli`, `fallback`, `desktop` or `spool`.
    pub source: &'static str,
}

/// A stored message with its delivery state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub profile: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub text: String,
    pub format: String,
    pub source: String,
    pub status: Status,
    pub attempts: i64,
    pub parts_total: i64,
    pub parts_done: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    pub created_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_of: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_with: Option<String>,
}

impl Message {
    pub fn markdown(&self) -> bool {
        self.format == "markdown"
    }
}

/// One try at delivering one part, with the provider's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: i64,
    pub part: i64,
    pub parts: i64,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

/// A profile's last outcomes, as the history records them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    pub last_success_ip: Option<String>,
    pub last_success_at: Option<i64>,
    pub last_error: Option<Failure>,
    pub last_error_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str = "id, profile, title, text, format, source, status, attempts, parts_total, parts_done, error, created_at, updated_at, next_attempt_at, fallback_of, fallback_id, merged_with";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let error: Option<String> = row.get(10)?;
    Ok(Message {
        id: row.get(0)?,
        profile: row.get(1)?,
        title: row.get(2)?,
        text: row.get(3)?,
        format: row.get(4)?,
        source: row.get(5)?,
        status: Status::parse(&row.get::<_, String>(6)?),
        attempts: row.get(7)?,
        parts_total: row.get(8)?,
        parts_done: row.get(9)?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
        next_attempt_at: row.get(13)?,
        fallback_of: row.get(14)?,
        fallback_id: row.get(15)?,
        merged_with: row.get(16)?,
    })
}

/// Opens the database and applies the schema.
pub fn open(path: &Path) -> Result<Connection> {
    let connection = Connection::open(path)
        .with_context(|| format!("could not open the database {}", path.display()))?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // 16 MiB of page cache keeps the indexes of a large outbox in memory.
    connection.pragma_update(None, "cache_size", -16_000)?;
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    connection
        .execute_batch(SCHEMA)
        .with_context(|| format!("could not prepare the database {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(connection)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Inserts messages in one transaction and returns their ids in order.
/// `lease_owner` marks them as being sent by that owner right away.
pub fn insert(
    connection: &mut Connection,
    messages: &[NewMessage],
    lease_owner: Option<(&str, i64)>,
) -> Result<Vec<String>> {
    let now = now_ms();
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(messages.len());
    {
        let mut statement = transaction.prepare_cached(
            "INSERT INTO messages (id, profile, title, text, format, source, status, created_at, updated_at, next_attempt_at, lease_owner, lease_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8, ?9, ?10)",
        )?;
        let status = if lease_owner.is_some() {
            Status::Sending
        } else {
            Status::Queued
        };
        for message in messages {
            let id = new_id();
            statement.execute(params![
                id,
                message.profile,
                message.title,
                message.text,
                if message.markdown { "markdown" } else { "text" },
                message.source,
                status.as_str(),
                now,
                lease_owner.map(|(owner, _)| owner),
                lease_owner.map(|(_, until)| until),
            ])?;
            ids.push(id);
        }
    }
    transaction.commit()?;
    Ok(ids)
}

pub fn get(connection: &Connection, id: &str) -> Result<Option<Message>> {
    Ok(connection
        .query_row(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
            [id],
            message_from_row,
        )
        .optional()?)
}

/// Lists messages newest first, optionally of one profile.
pub fn history(connection: &Connection, profile: Option<&str>, limit: i64) -> Result<Vec<Message>> {
    let mut statement = connection.prepare(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE (?1 IS NULL OR profile = ?1)
         ORDER BY created_at DESC, id DESC LIMIT ?2"
    ))?;
    let rows = statement.query_map(params![profile, limit], message_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn attempts(connection: &Connection, id: &str) -> Result<Vec<Attempt>> {
    let mut statement = connection.prepare(
        "SELECT at, part, parts, outcome, answer, error FROM attempts WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = statement.query_map([id], |row| {
        let error: Option<String> = row.get(5)?;
        Ok(Attempt {
            at: row.get(0)?,
            part: row.get(1)?,
            parts: row.get(2)?,
            outcome: row.get(3)?,
            answer: row.get(4)?,
            error: error.and_then(|e| serde_json::from_str(&e).ok()),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Profiles with a message due now: queued and due, or left `sending` by an
/// owner whose lease ran out. Also returns when the next message falls due.
pub fn due_profiles(connection: &Connection, now: i64) -> Result<(Vec<String>, Option<i64>)> {
    let mut statement = connection.prepare(
        "SELECT DISTINCT profile FROM messages
         WHERE (status = 'queued' AND next_attempt_at <= ?1) OR (status = 'sending' AND lease_until < ?1)",
    )?;
    let profiles = statement
        .query_map([now], |row| row.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let next: Option<i64> = connection.query_row(
        "SELECT MIN(t) FROM (
             SELECT MIN(next_attempt_at) AS t FROM messages WHERE status = 'queued' AND next_attempt_at > ?1
             UNION ALL SELECT MIN(lease_until) FROM messages WHERE status = 'sending' AND lease_until >= ?1)",
        [now],
        |row| row.get(0),
    )?;
    Ok((profiles, next))
}

/// Claims up to `limit` due messages of a profile, oldest first, for
/// `owner` until `lease_until`.
pub fn claim(
    connection: &mut Connection,
    profile: &str,
    owner: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let claimed = {
        let mut statement = transaction.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages
             WHERE profile = ?1 AND ((status = 'queued' AND next_attempt_at <= ?2) OR (status = 'sending' AND lease_until < ?2))
             ORDER BY created_at, id LIMIT ?3"
        ))?;
        let messages = statement
            .query_map(params![profile, now, limit], message_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut update = transaction.prepare_cached(
            "UPDATE messages SET status = 'sending', lease_owner = ?2, lease_until = ?3, updated_at = ?4 WHERE id = ?1",
        )?;
        for message in &messages {
            update.execute(params![message.id, owner, lease_until, now])?;
        }
        messages
    };
    transaction.commit()?;
    Ok(claimed
        .into_iter()
        .map(|mut m| {
            m.status = Status::Sending;
            m
        })
        .collect())
}

/// Returns leased messages to the queue, keeping their progress.
pub fn release(connection: &Connection, ids: &[String]) -> Result<()> {
    let now = now_ms();
    for id in ids {
        connection.execute(
            "UPDATE messages SET status = 'queued', lease_owner = NULL, lease_until = NULL, updated_at = ?2
             WHERE id = ?1 AND status = 'sending'",
            params![id, now],
        )?;
    }
    Ok(())
}

/// Requeues everything a previous run of `owner` left in `sending`.
pub fn reclaim(connection: &Connection, owner: &str) -> Result<usize> {
    Ok(connection.execute(
        "UPDATE messages SET status = 'queued', lease_owner = NULL, lease_until = NULL WHERE status = 'sending' AND lease_owner = ?1",
        [owner],
    )?)
}

pub fn extend_lease(connection: &Connection, ids: &[String], lease_until: i64) -> Result<()> {
    for id in ids {
        connection.execute(
            "UPDATE messages SET lease_until = ?2 WHERE id = ?1",
            params![id, lease_until],
        )?;
    }
    Ok(())
}

pub fn record_attempt(
    connection: &Connection,
    id: &str,
    part: i64,
    parts: i64,
    result: &Result<String, Failure>,
) -> Result<()> {
    let (outcome, answer, error) = match result {
        Ok(answer) => ("accepted", Some(answer.clone()), None),
        Err(failure) => (
            "failed",
            failure.upstream_message.clone(),
            Some(serde_json::to_string(failure)?),
        ),
    };
    connection.execute(
        "INSERT INTO attempts (message_id, at, part, parts, outcome, answer, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, now_ms(), part, parts, outcome, answer, error],
    )?;
    Ok(())
}

/// Records that a part was accepted.
pub fn record_progress(
    connection: &Connection,
    id: &str,
    parts_done: i64,
    parts_total: i64,
) -> Result<()> {
    connection.execute(
        "UPDATE messages SET parts_done = ?2, parts_total = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, parts_done, parts_total, now_ms()],
    )?;
    Ok(())
}

/// Sets a message's final or next state after an attempt.
pub fn finish_attempt(
    connection: &Connection,
    id: &str,
    status: Status,
    error: Option<&Failure>,
    next_attempt_at: i64,
    merged_with: Option<&str>,
) -> Result<()> {
    let error = error.map(serde_json::to_string).transpose()?;
    connection.execute(
        "UPDATE messages SET status = ?2, error = ?3, attempts = attempts + 1, next_attempt_at = ?4,
             lease_owner = NULL, lease_until = NULL, updated_at = ?5, merged_with = COALESCE(?6, merged_with)
         WHERE id = ?1",
        params![id, status.as_str(), error, next_attempt_at, now_ms(), merged_with],
    )?;
    Ok(())
}

/// Queues a copy of a failed message for its profile's fallback and links
/// the two. Returns the new message's id.
pub fn queue_fallback(
    connection: &mut Connection,
    original: &Message,
    fallback: &str,
) -> Result<String> {
    let now = now_ms();
    let id = new_id();
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute(
        "INSERT INTO messages (id, profile, title, text, format, source, status, created_at, updated_at, next_attempt_at, fallback_of)
         VALUES (?1, ?2, ?3, ?4, ?5, 'fallback', 'queued', ?6, ?6, ?6, ?7)",
        params![id, fallback, original.title, original.text, original.format, now, original.id],
    )?;
    transaction.execute(
        "UPDATE messages SET fallback_id = ?2 WHERE id = ?1",
        params![original.id, id],
    )?;
    transaction.commit()?;
    Ok(id)
}

/// Queues a failed message again, for "resend" after the user fixed the
/// cause. Parts already accepted are not sent again.
pub fn requeue(connection: &Connection, id: &str) -> Result<bool> {
    let changed = connection.execute(
        "UPDATE messages SET status = 'queued', next_attempt_at = ?2, updated_at = ?2 WHERE id = ?1 AND status = 'failed'",
        params![id, now_ms()],
    )?;
    Ok(changed == 1)
}

pub fn record_send(connection: &Connection, rate_key: &str, at: i64) -> Result<()> {
    connection.execute(
        "INSERT INTO sends (rate_key, at) VALUES (?1, ?2)",
        params![rate_key, at],
    )?;
    Ok(())
}

/// Send times for a rate key since `since`, oldest first.
pub fn sends_since(connection: &Connection, rate_key: &str, since: i64) -> Result<Vec<i64>> {
    let mut statement = connection
        .prepare_cached("SELECT at FROM sends WHERE rate_key = ?1 AND at > ?2 ORDER BY at")?;
    let rows = statement.query_map(params![rate_key, since], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
}

/// Forgets send times older than the longest rate window.
pub fn prune_sends(connection: &Connection, before: i64) -> Result<()> {
    connection.execute("DELETE FROM sends WHERE at < ?1", [before])?;
    Ok(())
}

pub fn profile_state(connection: &Connection, profile: &str) -> Result<ProfileState> {
    let state = connection
        .query_row(
            "SELECT last_success_ip, last_success_at, last_error, last_error_at FROM profile_state WHERE profile = ?1",
            [profile],
            |row| {
                let error: Option<String> = row.get(2)?;
                Ok(ProfileState {
                    last_success_ip: row.get(0)?,
                    last_success_at: row.get(1)?,
                    last_error: error.and_then(|e| serde_json::from_str(&e).ok()),
                    last_error_at: row.get(3)?,
                })
            },
        )
        .optional()?;
    Ok(state.unwrap_or_default())
}

pub fn record_success(connection: &Connection, profile: &str, from_ip: Option<&str>) -> Result<()> {
    connection.execute(
        "INSERT INTO profile_state (profile, last_success_ip, last_success_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(profile) DO UPDATE SET last_success_ip = COALESCE(?2, last_success_ip), last_success_at = ?3",
        params![profile, from_ip, now_ms()],
    )?;
    Ok(())
}

pub fn record_error(connection: &Connection, profile: &str, failure: &Failure) -> Result<()> {
    connection.execute(
        "INSERT INTO profile_state (profile, last_error, last_error_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(profile) DO UPDATE SET last_error = ?2, last_error_at = ?3",
        params![profile, serde_json::to_string(failure)?, now_ms()],
    )?;
    Ok(())
}

/// Claims one message by id for `owner`, whatever its due time, unless it
/// is final or leased to another owner.
pub fn claim_id(
    connection: &Connection,
    id: &str,
    owner: &str,
    lease_until: i64,
) -> Result<Option<Message>> {
    let now = now_ms();
    let changed = connection.execute(
        "UPDATE messages SET status = 'sending', lease_owner = ?2, lease_until = ?3, updated_at = ?4
         WHERE id = ?1 AND (status = 'queued' OR (status = 'sending' AND (lease_until < ?4 OR lease_owner = ?2)))",
        params![id, owner, lease_until, now],
    )?;
    if changed == 0 {
        return Ok(None);
    }
    get(connection, id)
}
