//! Counts WeCom gettoken calls while Herald's channel layer sends app
//! messages to a fake WeCom server on loopback.
//!
//! It calls `herald::channel::Channels::send` directly, so the relay's
//! outbox and its rate limit of 30 messages a minute per member are not
//! involved. Each run starts with an empty token cache in a new temporary
//! HERALD_HOME. The counts come from the fake's `GET /_fake/stats`, taken
//! before and after, and from Herald's own `TokenCache::calls`.
//!
//! Output, one line: `sends=N concurrency=N accepted=N failed=N
//! elapsed_ms=N token_calls=N message_calls=N herald_token_fetches=N`,
//! followed by `failure code=CODE count=N` lines when sends failed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;
use herald::channel::{Channels, Part};
use herald::diagnosis::Context;
use herald::home::Home;
use herald::profile::secret::StoreKind;
use herald::profile::{Kind, Profile, Proxy};
use reqwest::Url;

#[derive(Parser)]
#[command(name = "token-calls")]
struct Args {
    /// Base URL of the fake WeCom server. Only loopback hosts are accepted.
    #[arg(long)]
    api_base: String,
    /// Corp id of the fake's app.
    #[arg(long)]
    corp_id: String,
    /// Secret of the fake's app.
    #[arg(long)]
    secret: String,
    /// Agent id of the fake's app.
    #[arg(long)]
    agent_id: i64,
    /// Recipient user id.
    #[arg(long)]
    to_user: String,
    /// Total messages to send.
    #[arg(long, default_value_t = 1000)]
    sends: usize,
    /// Tasks sending at the same time, all through one `Channels`.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Pause of each task after each send, in milliseconds.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// The run fails when the sends take longer than this, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    failures: BTreeMap<String, usize>,
}

fn loopback_url(text: &str) -> Result<Url> {
    let url = Url::parse(text).with_context(|| format!("invalid --api-base {text:?}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    if !loopback || url.scheme() != "http" {
        bail!("invalid --api-base {text:?}: use http://127.0.0.1:PORT of a fake WeCom server");
    }
    Ok(url)
}

async fn token_and_message_calls(client: &reqwest::Client, base: &Url) -> Result<(u64, u64)> {
    let url = base.join("/_fake/stats")?;
    let stats: serde_json::Value = client
        .get(url.clone())
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("GET {url} failed"))?
        .json()
        .await
        .with_context(|| format!("GET {url} returned invalid JSON"))?;
    let field = |name: &str| {
        stats[name]
            .as_u64()
            .with_context(|| format!("GET {url} has no {name} count"))
    };
    Ok((field("token_calls")?, field("message_calls")?))
}

async fn send_all(args: &Args, channels: &Channels, profile: &Profile) -> Tally {
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let next = next.clone();
        let tally = tally.clone();
        let channels = channels.clone();
        let profile = profile.clone();
        let secret = args.secret.clone();
        let sends = args.sends;
        let interval = Duration::from_millis(args.interval_ms);
        tasks.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= sends {
                    break;
                }
                let content = format!("benchmark message {index}");
                let part = Part {
                    title: None,
                    content: &content,
                    markdown: false,
                };
                let outcome = channels
                    .send(&profile, &secret, part, &Context::default())
                    .await;
                {
                    let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                    match outcome {
                        Ok(_) => tally.accepted += 1,
                        Err(failure) => *tally.failures.entry(failure.code).or_default() += 1,
                    }
                }
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(tally)
        .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
        .unwrap_or_default()
}

async fn run(args: Args) -> Result<()> {
    if args.concurrency == 0 || args.sends == 0 {
        bail!("invalid --concurrency or --sends 0: both must be at least 1");
    }
    let base = loopback_url(&args.api_base)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;

    let folder = tempfile::tempdir().context("creating a temporary HERALD_HOME failed")?;
    let home = Home::open(folder.path())?;
    let channels = Channels::new(&home);
    let profile = Profile {
        name: "bench-app".into(),
        kind: Kind::WecomApp {
            corp_id: args.corp_id.clone(),
            agent_id: args.agent_id,
            to_user: vec![args.to_user.clone()],
            to_party: vec![],
            to_tag: vec![],
            api_base: Some(args.api_base.clone()),
        },
        // Direct, so proxy variables in the environment cannot route the
        // requests off this machine.
        proxy: Proxy::None,
        fallback: None,
        relay_key: String::new(),
        secret_store: StoreKind::File,
    };

    let (tokens_before, messages_before) = token_and_message_calls(&client, &base).await?;
    let started = Instant::now();
    let tally = tokio::time::timeout(
        Duration::from_secs(args.timeout_secs),
        send_all(&args, &channels, &profile),
    )
    .await
    .with_context(|| {
        format!(
            "{} sends did not finish within {} s",
            args.sends, args.timeout_secs
        )
    })?;
    let elapsed = started.elapsed();
    let (tokens_after, messages_after) = token_and_message_calls(&client, &base).await?;

    let failed: usize = tally.failures.values().sum();
    println!(
        "sends={} concurrency={} accepted={} failed={failed} elapsed_ms={} token_calls={} message_calls={} herald_token_fetches={}",
        args.sends,
        args.concurrency,
        tally.accepted,
        elapsed.as_millis(),
        tokens_after - tokens_before,
        messages_after - messages_before,
        channels.tokens().calls(),
    );
    for (code, count) in &tally.failures {
        println!("failure code={code} count={count}");
    }
    if tally.accepted == 0 {
        bail!("no send was accepted; check --corp-id, --secret, --agent-id and --to-user against the fake's --app");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("token-calls: {error:#}");
            ExitCode::FAILURE
        }
    }
}
