//! The durable outbox: messages are stored before they are acknowledged,
//! then delivered by [`worker`] with retries, rate limits and merging.

pub mod rate;
pub mod spool;
pub mod store;
pub mod worker;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot, Notify};

use crate::home::Home;
pub use store::{Attempt, Message, NewMessage, ProfileState, Status};

/// A change of a message's status, published to `?wait=true` requests and
/// to the desktop app.
#[derive(Clone, Debug)]
pub struct Update {
    pub id: String,
    pub profile: String,
    pub status: Status,
}

/// Most messages committed in one transaction by the group-commit writer.
const MAX_BATCH: usize = 256;
/// Inserts waiting for the writer beyond which the relay returns 503.
const MAX_PENDING: usize = 8192;

struct WriteRequest {
    message: NewMessage,
    done: oneshot::Sender<Result<String>>,
}

/// The message database with a group-commit writer for new messages.
#[derive(Clone)]
pub struct Outbox {
    connection: Arc<Mutex<Connection>>,
    writer: std::sync::mpsc::SyncSender<WriteRequest>,
    updates: broadcast::Sender<Update>,
    wake: Arc<Notify>,
    signals: Arc<Signals>,
}

/// Why the worker was woken: new messages for these profiles, or a change
/// that needs a look at the whole outbox.
#[derive(Default)]
pub(crate) struct Signals {
    new_for: Mutex<HashSet<String>>,
    full_scan: AtomicBool,
}

impl Signals {
    /// Takes the profiles with new messages, and whether a full scan was
    /// asked for, since the last call.
    pub(crate) fn take(&self) -> (HashSet<String>, bool) {
        let profiles = std::mem::take(&mut *self.new_for.lock().unwrap_or_else(|e| e.into_inner()));
        (profiles, self.full_scan.swap(false, Ordering::AcqRel))
    }
}

impl Outbox {
    pub fn open(home: &Home) -> Result<Outbox> {
        let path = home.database();
        let connection = store::open(&path)?;
        let writer_connection = store::open(&path)?;
        let (writer, requests) = std::sync::mpsc::sync_channel(MAX_PENDING);
        let wake = Arc::new(Notify::new());
        let (updates, _) = broadcast::channel(1024);
        let outbox = Outbox {
            connection: Arc::new(Mutex::new(connection)),
            writer,
            updates,
            wake,
            signals: Arc::default(),
        };
        let wake = outbox.wake.clone();
        let updates = outbox.updates.clone();
        let signals = outbox.signals.clone();
        std::thread::Builder::new()
            .name("herald-outbox-writer".into())
            .spawn(move || write_loop(writer_connection, requests, wake, signals, updates))?;
        Ok(outbox)
    }

    /// Stores a message and returns its id once the row is committed.
    /// Fails with [`Busy`] when the writer is too far behind.
    pub async fn enqueue(&self, message: NewMessage) -> Result<String> {
        let (done, committed) = oneshot::channel();
        self.writer
            .try_send(WriteRequest { message, done })
            .map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(_) => anyhow!(Busy),
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    anyhow!("the outbox writer has stopped")
                }
            })?;
        committed
            .await
            .map_err(|_| anyhow!("the outbox writer has stopped"))?
    }

    /// Runs `work` on the shared connection on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|e| anyhow!("database task failed: {e}"))?
    }

    /// Runs `work` on the shared connection on this thread.
    pub fn run_blocking<T>(&self, work: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        work(&mut connection)
    }

    pub async fn get(&self, id: &str) -> Result<Option<Message>> {
        let id = id.to_owned();
        self.run(move |c| store::get(c, &id)).await
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    pub(crate) fn publish(&self, update: Update) {
        let _ = self.updates.send(update);
    }

    /// Wakes the delivery worker to look at the whole outbox, e.g. after a
    /// resend or when a lane has run dry.
    pub fn wake(&self) {
        self.signals.full_scan.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    pub(crate) fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub(crate) fn signals(&self) -> &Signals {
        &self.signals
    }
}

/// The error for a full outbox queue, which the relay returns as 503.
#[derive(Debug, thiserror::Error)]
#[error("the outbox is busy; retry in a moment")]
pub struct Busy;

/// Commits waiting inserts in batches: one transaction for every request
/// that arrived while the previous commit ran.
fn write_loop(
    mut connection: Connection,
    requests: std::sync::mpsc::Receiver<WriteRequest>,
    wake: Arc<Notify>,
    signals: Arc<Signals>,
    updates: broadcast::Sender<Update>,
) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let (messages, replies): (Vec<NewMessage>, Vec<_>) =
            batch.into_iter().map(|r| (r.message, r.done)).unzip();
        let mut result = store::insert(&mut connection, &messages, None);
        if let Err(error) = &result {
            // One retry covers a lock held past the busy timeout.
            tracing::warn!(%error, count = messages.len(), "storing messages failed; retrying once");
            std::thread::sleep(Duration::from_millis(50));
            result = store::insert(&mut connection, &messages, None);
        }
        match result {
            Ok(ids) => {
                {
                    let mut new_for = signals.new_for.lock().unwrap_or_else(|e| e.into_inner());
                    for message in &messages {
                        if !new_for.contains(&message.profile) {
                            new_for.insert(message.profile.clone());
                        }
                    }
                }
                for ((message, done), id) in messages.into_iter().zip(replies).zip(ids) {
                    let _ = updates.send(Update {
                        id: id.clone(),
                        profile: message.profile,
                        status: Status::Queued,
                    });
                    let _ = done.send(Ok(id));
                }
                wake.notify_one();
            }
            Err(error) => {
                tracing::error!(%error, count = replies.len(), "storing messages failed");
                for done in replies {
                    let _ = done.send(Err(anyhow!("could not store the message: {error}")));
                }
            }
        }
    }
}
