//! The delivery worker: one lane per profile, oldest message first.
//!
//! A lane claims due messages under a lease, splits each into parts that
//! fit the channel, waits for the provider's rate limit, sends, and records
//! every attempt with the provider's answer. When a profile's queue backs
//! up behind its rate limit, the lane merges waiting messages into one
//! within the byte limit, so nothing is dropped and no message waits more
//! than one window. Transient failures are retried with exponential
//! backoff; a permanent failure fails the message and queues it for the
//! profile's fallback.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::store::{self, Message, Status};
use super::{rate, Outbox, Update};
use crate::channel::{self, Channels, Part};
use crate::diagnosis::{self, Class, Context, Failure};
use crate::home::now_ms;
use crate::profile::{Profile, ProfileStore};
use crate::split::render_parts;

/// Attempts before a transiently failing message is given up.
pub const MAX_ATTEMPTS: i64 = 8;
const LEASE_MS: i64 = 120_000;
/// When WeCom still returns 45009, wait for the rate window to pass.
const RATE_LIMITED_RETRY_MS: i64 = 61_000;
/// When a secret cannot be read, look again after this long.
const SECRET_RETRY_MS: i64 = 60_000;
/// The longest the worker sleeps without looking at the outbox. Other
/// processes (`herald send`, a crashed one's lease running out) change the
/// outbox without waking this one, so it looks now and then; otherwise an
/// idle relay does not wake up at all.
const SAFETY_SCAN: Duration = Duration::from_secs(600);
/// Messages a lane considers for one merge.
const MERGE_CANDIDATES: i64 = 100;

/// The result of a delivery attempt for a batch of messages.
#[derive(Debug)]
pub struct Attempted {
    pub status: Status,
    pub failure: Option<Failure>,
    pub fallback_ids: Vec<String>,
}

/// Delivers claimed messages. Shared by the relay's lanes and `herald send`.
#[derive(Clone)]
pub struct Deliverer {
    pub outbox: Outbox,
    pub profiles: ProfileStore,
    pub channels: Channels,
    shutdown: watch::Receiver<bool>,
}

impl Deliverer {
    pub fn new(
        outbox: Outbox,
        profiles: ProfileStore,
        channels: Channels,
        shutdown: watch::Receiver<bool>,
    ) -> Deliverer {
        Deliverer {
            outbox,
            profiles,
            channels,
            shutdown,
        }
    }

    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Delivers one message, or several merged into one content, all of the
    /// same profile. `give_up_now` makes a transient failure final, for
    /// callers that cannot retry later.
    pub async fn attempt(
        &self,
        profile: &Profile,
        batch: Vec<Message>,
        give_up_now: bool,
    ) -> Attempted {
        let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
        for message in &batch {
            self.publish(message, Status::Sending);
        }

        let secret = match self.load_secret(profile).await {
            Ok(secret) => secret,
            Err(failure) => {
                // The message waits in the outbox until the secret can be
                // read again; it is never failed or delivered without it.
                let next = now_ms() + SECRET_RETRY_MS;
                self.finish(&batch, Status::Queued, Some(&failure), next, None)
                    .await;
                self.record_error(profile, &failure).await;
                return Attempted {
                    status: Status::Queued,
                    failure: Some(failure),
                    fallback_ids: vec![],
                };
            }
        };

        let state_profile = profile.name.clone();
        let state = self
            .outbox
            .run(move |c| store::profile_state(c, &state_profile))
            .await
            .unwrap_or_default();
        let context = Context {
            route: profile.proxy.describe(),
            last_success_ip: state.last_success_ip,
        };

        let markdown = batch[0].markdown();
        let (title, parts) = render_batch(profile, &batch);
        let first_part = if batch.len() == 1 {
            batch[0].parts_done as usize
        } else {
            0
        };
        let limits = rate::limits_for(profile, &secret);
        let merged_with = (batch.len() > 1).then(|| ids.join(","));

        let mut failure = None;
        let mut from_ip = None;
        let mut answers = Vec::new();
        for (index, content) in parts.iter().enumerate().skip(first_part) {
            if let Some((key, windows)) = &limits {
                if !self.wait_for_rate(key, windows, &ids).await {
                    // Shutting down: keep the progress, give the rest back.
                    let _ = self
                        .outbox
                        .run({
                            let ids = ids.clone();
                            move |c| store::release(c, &ids)
                        })
                        .await;
                    for message in &batch {
                        self.publish(message, Status::Queued);
                    }
                    return Attempted {
                        status: Status::Queued,
                        failure: None,
                        fallback_ids: vec![],
                    };
                }
            }
            let part = Part {
                title: title.as_deref(),
                content,
                markdown,
            };
            let outcome = self.channels.send(profile, &secret, part, &context).await;
            let record: Result<String, Failure> = outcome
                .as_ref()
                .map(|a| a.answer.clone())
                .map_err(Clone::clone);
            let (done, total) = ((index + 1) as i64, parts.len() as i64);
            let _ = self
                .outbox
                .run({
                    let ids = ids.clone();
                    let record = record.clone();
                    let single = batch.len() == 1;
                    move |c| {
                        for id in &ids {
                            store::record_attempt(c, id, done, total, &record)?;
                        }
                        if single && record.is_ok() {
                            store::record_progress(c, &ids[0], done, total)?;
                        }
                        Ok(())
                    }
                })
                .await
                .map_err(|error| tracing::error!(%error, "could not record a delivery attempt"));
            match outcome {
                Ok(accepted) => {
                    if accepted.from_ip.is_some() {
                        from_ip = accepted.from_ip.clone();
                    }
                    if !accepted.rejected_recipients.is_empty() {
                        tracing::warn!(profile = %profile.name, rejected = ?accepted.rejected_recipients, "delivered, but some recipients were rejected");
                    }
                    answers.push(accepted.answer);
                }
                Err(error) => {
                    tracing::warn!(profile = %profile.name, code = %error.code, upstream = ?error.upstream_errcode, "delivery attempt failed");
                    failure = Some(error);
                    break;
                }
            }
        }

        match failure {
            None => {
                self.finish(
                    &batch,
                    Status::Delivered,
                    None,
                    now_ms(),
                    merged_with.as_deref(),
                )
                .await;
                let name = profile.name.clone();
                let _ = self
                    .outbox
                    .run(move |c| store::record_success(c, &name, from_ip.as_deref()))
                    .await;
                Attempted {
                    status: Status::Delivered,
                    failure: None,
                    fallback_ids: vec![],
                }
            }
            Some(failure) => {
                self.handle_failure(
                    profile,
                    &batch,
                    failure,
                    give_up_now,
                    merged_with.as_deref(),
                )
                .await
            }
        }
    }

    async fn handle_failure(
        &self,
        profile: &Profile,
        batch: &[Message],
        failure: Failure,
        give_up_now: bool,
        merged_with: Option<&str>,
    ) -> Attempted {
        self.record_error(profile, &failure).await;
        let attempts = batch.iter().map(|m| m.attempts).max().unwrap_or(0) + 1;
        let retry_at = match failure.class {
            Class::Permanent => None,
            _ if give_up_now || attempts >= MAX_ATTEMPTS => None,
            Class::RateLimited => Some(now_ms() + RATE_LIMITED_RETRY_MS),
            Class::Transient | Class::TokenRejected => Some(now_ms() + backoff_ms(attempts)),
        };
        if let Some(next) = retry_at {
            tracing::info!(profile = %profile.name, attempts, retry_in_ms = next - now_ms(), "will retry");
            self.finish(batch, Status::Queued, Some(&failure), next, merged_with)
                .await;
            return Attempted {
                status: Status::Queued,
                failure: Some(failure),
                fallback_ids: vec![],
            };
        }

        self.finish(batch, Status::Failed, Some(&failure), now_ms(), merged_with)
            .await;
        let mut fallback_ids = Vec::new();
        if let Some(fallback) = &profile.fallback {
            for message in batch {
                let message = message.clone();
                let fallback = fallback.clone();
                match self
                    .outbox
                    .run(move |c| store::queue_fallback(c, &message, &fallback))
                    .await
                {
                    Ok(id) => fallback_ids.push(id),
                    Err(error) => {
                        tracing::error!(%error, "could not queue the message for the fallback profile")
                    }
                }
            }
            tracing::info!(profile = %profile.name, fallback = %fallback, count = fallback_ids.len(), "queued for the fallback profile");
            self.outbox.wake();
        }
        Attempted {
            status: Status::Failed,
            failure: Some(failure),
            fallback_ids,
        }
    }

    async fn load_secret(&self, profile: &Profile) -> Result<String, Failure> {
        let profiles = self.profiles.clone();
        let profile = profile.clone();
        let name = profile.name.clone();
        tokio::task::spawn_blocking(move || profiles.secret(&profile))
            .await
            .map_err(|e| diagnosis::secret_unavailable(&name, &e.to_string()))?
            .map_err(|e| diagnosis::secret_unavailable(&name, &format!("{e:#}")))
    }

    /// Reads the recorded sends of a rate key and returns the time now and
    /// how long (ms) one more send must wait to keep within `windows`.
    async fn rate_wait(&self, key: &str, windows: &'static [rate::Window]) -> (i64, i64) {
        let now = now_ms();
        let key = key.to_owned();
        let since = now - rate::longest_window_ms();
        let sends = self
            .outbox
            .run(move |c| store::sends_since(c, &key, since))
            .await
            .unwrap_or_default();
        (now, rate::wait_ms(&sends, now, windows))
    }

    /// Waits until one more send fits the rate windows, then records it.
    /// Returns false when the worker is shutting down.
    async fn wait_for_rate(
        &self,
        key: &str,
        windows: &'static [rate::Window],
        ids: &[String],
    ) -> bool {
        let mut shutdown = self.shutdown.clone();
        loop {
            if self.stopping() {
                return false;
            }
            let (now, wait) = self.rate_wait(key, windows).await;
            if wait == 0 {
                let key_owned = key.to_owned();
                let _ = self
                    .outbox
                    .run(move |c| store::record_send(c, &key_owned, now))
                    .await;
                return true;
            }
            tracing::debug!(wait_ms = wait, "waiting for the provider's rate limit");
            let ids = ids.to_vec();
            let _ = self
                .outbox
                .run(move |c| store::extend_lease(c, &ids, now_ms() + wait + LEASE_MS))
                .await;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn finish(
        &self,
        batch: &[Message],
        status: Status,
        failure: Option<&Failure>,
        next: i64,
        merged_with: Option<&str>,
    ) {
        let ids: Vec<String> = batch.iter().map(|m| m.id.clone()).collect();
        let failure = failure.cloned();
        let merged_with = merged_with.map(str::to_owned);
        let stored = self
            .outbox
            .run(move |c| {
                for id in &ids {
                    store::finish_attempt(
                        c,
                        id,
                        status,
                        failure.as_ref(),
                        next,
                        merged_with.as_deref(),
                    )?;
                }
                Ok(())
            })
            .await;
        if let Err(error) = stored {
            tracing::error!(%error, "could not record a delivery result");
        }
        for message in batch {
            self.publish(message, status);
        }
    }

    async fn record_error(&self, profile: &Profile, failure: &Failure) {
        let name = profile.name.clone();
        let failure = failure.clone();
        let _ = self
            .outbox
            .run(move |c| store::record_error(c, &name, &failure))
            .await;
    }

    fn publish(&self, message: &Message, status: Status) {
        self.outbox.publish(Update {
            id: message.id.clone(),
            profile: message.profile.clone(),
            status,
        });
    }
}

/// Renders a batch into the title for the channel and the parts to send,
/// in order.
fn render_batch(profile: &Profile, batch: &[Message]) -> (Option<String>, Vec<String>) {
    let markdown = batch[0].markdown();
    let max = channel::max_part_bytes(&profile.kind, markdown);
    if !channel::title_in_content(&profile.kind) {
        if batch.len() == 1 {
            return (batch[0].title.clone(), vec![batch[0].text.clone()]);
        }
        let title = format!("{} notices", batch.len());
        let body = batch
            .iter()
            .map(email_section)
            .collect::<Vec<_>>()
            .join("\n\n");
        return (Some(title), vec![body]);
    }
    if batch.len() == 1 {
        let message = &batch[0];
        return (
            None,
            render_parts(message.title.as_deref(), &message.text, markdown, max),
        );
    }
    (None, vec![merge_contents(batch, markdown)])
}

fn email_section(message: &Message) -> String {
    match &message.title {
        Some(title) => format!("{title}\n{}", message.text),
        None => message.text.clone(),
    }
}

/// Joins messages that each fit in one part into one content.
fn merge_contents(batch: &[Message], markdown: bool) -> String {
    batch
        .iter()
        .map(|m| render_parts(m.title.as_deref(), &m.text, markdown, usize::MAX).remove(0))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Picks the messages to merge: the first, then following ones of the same
/// format while the merged content stays within the channel's limit.
pub fn choose_merge(profile: &Profile, candidates: &[Message]) -> usize {
    let Some(first) = candidates.first() else {
        return 0;
    };
    let markdown = first.markdown();
    let max = channel::max_part_bytes(&profile.kind, markdown);
    let mut count = 0;
    for end in 1..=candidates.len() {
        let slice = &candidates[..end];
        if slice
            .iter()
            .any(|m| m.markdown() != markdown || m.parts_done > 0)
        {
            break;
        }
        if channel::title_in_content(&profile.kind) && merge_contents(slice, markdown).len() > max {
            break;
        }
        count = end;
    }
    count.max(1)
}

fn backoff_ms(attempts: i64) -> i64 {
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(2))
        .with_max_delay(Duration::from_secs(600))
        .with_factor(3.0)
        .with_jitter()
        .without_max_times()
        .build();
    let delay = delays
        .nth((attempts - 1).max(0) as usize)
        .unwrap_or(Duration::from_secs(600));
    delay.as_millis() as i64
}

/// Runs lanes for every profile with due messages until shutdown.
pub struct Worker {
    deliverer: Deliverer,
    owner: String,
    active: Arc<Mutex<HashSet<String>>>,
}

impl Worker {
    pub fn new(deliverer: Deliverer, owner: &str) -> Worker {
        Worker {
            deliverer,
            owner: owner.to_owned(),
            active: Arc::default(),
        }
    }

    /// Dispatches lanes until `shutdown` turns true, then waits up to
    /// `drain` for in-flight deliveries. Unfinished messages stay queued.
    pub async fn run(self, drain: Duration) {
        let owner = self.owner.clone();
        if let Ok(count) = self
            .deliverer
            .outbox
            .run(move |c| store::reclaim(c, &owner))
            .await
        {
            if count > 0 {
                tracing::info!(
                    count,
                    "requeued messages left in flight by the previous run"
                );
            }
        }
        let wake = self.deliverer.outbox.waker();
        let mut shutdown = self.deliverer.shutdown.clone();
        let mut lanes = JoinSet::new();
        let mut last_prune = 0;
        let mut scan = true;
        loop {
            if *shutdown.borrow() {
                break;
            }
            if !scan {
                // New messages for profiles whose lanes are running: those
                // lanes claim them, so the outbox need not be read.
                let (new_for, full_scan) = self.deliverer.outbox.signals().take();
                let covered = {
                    let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
                    new_for.iter().all(|p| active.contains(p))
                };
                if covered && !full_scan {
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = tokio::time::sleep(SAFETY_SCAN) => scan = true,
                        _ = shutdown.changed() => {}
                        Some(_) = lanes.join_next(), if !lanes.is_empty() => scan = true,
                    }
                    continue;
                }
            }
            scan = false;
            let now = now_ms();
            let due = self
                .deliverer
                .outbox
                .run(move |c| store::due_profiles(c, now))
                .await;
            let next_due = match due {
                Ok((profiles, next)) => {
                    for profile in profiles {
                        let fresh = self
                            .active
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(profile.clone());
                        if fresh {
                            lanes.spawn(lane(
                                self.deliverer.clone(),
                                self.owner.clone(),
                                profile,
                                self.active.clone(),
                            ));
                        }
                    }
                    next
                }
                Err(error) => {
                    tracing::error!(%error, "could not read the outbox");
                    Some(now + 5_000)
                }
            };
            if now - last_prune > 600_000 {
                last_prune = now;
                let before = now - rate::longest_window_ms();
                let _ = self
                    .deliverer
                    .outbox
                    .run(move |c| store::prune_sends(c, before))
                    .await;
            }
            while lanes.try_join_next().is_some() {}
            let safety_ms = SAFETY_SCAN.as_millis() as i64;
            let sleep_ms = next_due.map_or(safety_ms, |t| (t - now_ms()).clamp(10, safety_ms));
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => scan = true,
                _ = shutdown.changed() => {}
                Some(_) = lanes.join_next(), if !lanes.is_empty() => scan = true,
            }
        }
        if !lanes.is_empty() {
            tracing::info!(lanes = lanes.len(), "finishing in-flight deliveries");
            if tokio::time::timeout(drain, async { while lanes.join_next().await.is_some() {} })
                .await
                .is_err()
            {
                tracing::warn!("in-flight deliveries did not finish in time; they stay queued");
                lanes.abort_all();
                let owner = self.owner.clone();
                let _ = self
                    .deliverer
                    .outbox
                    .run(move |c| store::reclaim(c, &owner))
                    .await;
            }
        }
    }
}

/// Delivers a profile's due messages one batch at a time until none is due.
async fn lane(
    deliverer: Deliverer,
    owner: String,
    name: String,
    active: Arc<Mutex<HashSet<String>>>,
) {
    loop {
        if deliverer.stopping() {
            break;
        }
        let profile = match deliverer.profiles.get(&name) {
            Ok(Some(profile)) => Some(profile),
            Ok(None) => None,
            Err(error) => {
                tracing::error!(profile = %name, %error, "could not read the profile");
                break;
            }
        };
        let now = now_ms();
        let claim_owner = owner.clone();
        let claim_name = name.clone();
        let claimed = deliverer
            .outbox
            .run(move |c| {
                store::claim(
                    c,
                    &claim_name,
                    &claim_owner,
                    now,
                    now + LEASE_MS,
                    MERGE_CANDIDATES,
                )
            })
            .await;
        let mut claimed = match claimed {
            Ok(claimed) if !claimed.is_empty() => claimed,
            Ok(_) => break,
            Err(error) => {
                tracing::error!(profile = %name, %error, "could not claim messages");
                break;
            }
        };
        let Some(profile) = profile else {
            fail_unknown_profile(&deliverer, &name, claimed).await;
            continue;
        };

        // Merge only when the rate limit would hold the next send back.
        let take = if claimed.len() > 1 && rate_limited_now(&deliverer, &profile).await {
            choose_merge(&profile, &claimed)
        } else {
            1
        };
        let rest: Vec<String> = claimed.drain(take..).map(|m| m.id).collect();
        if !rest.is_empty() {
            let _ = deliverer
                .outbox
                .run(move |c| store::release(c, &rest))
                .await;
        }
        if claimed.len() > 1 {
            tracing::info!(profile = %name, count = claimed.len(), "merging queued messages behind the rate limit");
        }
        deliverer.attempt(&profile, claimed, false).await;
    }
    active
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&name);
    deliverer.outbox.wake();
}

async fn rate_limited_now(deliverer: &Deliverer, profile: &Profile) -> bool {
    let Ok(secret) = deliverer.load_secret(profile).await else {
        return false;
    };
    let Some((key, windows)) = rate::limits_for(profile, &secret) else {
        return false;
    };
    deliverer.rate_wait(&key, windows).await.1 > 0
}

async fn fail_unknown_profile(deliverer: &Deliverer, name: &str, batch: Vec<Message>) {
    let failure = Failure::new(
        "unknown_profile",
        Class::Permanent,
        crate::i18n::Text::new(
            format!("Profile '{name}' no longer exists, so the message cannot be delivered."),
            format!("配置“{name}”已不存在，消息无法发送。"),
        ),
        crate::i18n::Text::new(
            "Create the profile again and resend the message.",
            "请重新创建该配置后再重发这条消息。",
        ),
    );
    deliverer
        .finish(&batch, Status::Failed, Some(&failure), now_ms(), None)
        .await;
}
