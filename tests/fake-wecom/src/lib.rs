//! A fake of the WeCom (企业微信) HTTP API for Herald's tests and benchmarks.
//!
//! The server listens on loopback only and speaks plain HTTP/1.1. It emulates
//! these routes as WeCom documents them:
//!
//! - `GET /cgi-bin/gettoken`: issues access tokens per app. While a token is
//!   valid, gettoken returns the same token again with its remaining lifetime.
//! - `POST /cgi-bin/message/send`: app messages of type `text` and `markdown`.
//!   It checks the token, the agent id and the recipients (`invaliduser`,
//!   `invalidparty`, `invalidtag`, 81013), and truncates content to 2048
//!   bytes. Per app and member, messages over 30 a minute or 1000 an hour are
//!   dropped while the response still has errcode 0. It also emulates the
//!   trusted-IP check (60020).
//! - `POST /cgi-bin/webhook/send`: group robot messages of type `text`
//!   (2048 bytes at most) and `markdown` (4096 bytes at most), 20 a minute
//!   per key (45009 beyond that).
//!
//! API errors are HTTP 200 responses whose errmsg ends with WeCom's suffix
//! `, hint: [DIGITS], from ip: IP, more info at https://open.work.weixin.qq.com/devtool/query?e=CODE`.
//!
//! Not emulated: HTTPS, other message types (image, news, template cards and
//! so on), robot `mentioned_list` checks, the corp-wide and per-app quotas,
//! the per-IP gettoken frequency limit, and callbacks. Department and tag
//! membership is not modelled either, so a message to a known party or tag
//! counts as delivered and is never rate-limited.
//!
//! Tests drive the fake with [`FakeWecom`] or, from another process, with the
//! JSON control API under `/_fake/` (see the `fake-wecom` binary).

mod control;
mod server;
mod state;
mod wecom;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use state::State;

/// Settings fixed when the server starts. Tests shorten the windows and the
/// token lifetime to keep runs fast.
#[derive(Clone, Debug)]
pub struct Config {
    /// Window of the per-minute limits: 30 messages per app member and 20
    /// messages per robot key.
    pub window: Duration,
    /// Window of the per-hour limit of 1000 messages per app member.
    pub hour_window: Duration,
    /// Access token lifetime, returned as `expires_in`.
    pub token_ttl_secs: u64,
    /// Delay before every response of the WeCom routes, for benchmarks.
    pub delay: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            window: Duration::from_secs(60),
            hour_window: Duration::from_secs(3600),
            token_ttl_secs: 7200,
            delay: Duration::ZERO,
        }
    }
}

/// WeCom route that a [`Fault`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /cgi-bin/gettoken`
    GetToken,
    /// `POST /cgi-bin/message/send`
    Message,
    /// `POST /cgi-bin/webhook/send`
    Webhook,
}

/// Failure that replaces or delays the normal response of a route.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// HTTP 500 with an HTML body.
    Http500,
    /// HTTP 200 with the body `<html>busy</html>`.
    NotJson,
    /// HTTP 200 with this errcode and errmsg. The errmsg gets WeCom's hint
    /// suffix unless the errcode is 0. The request has no other effect.
    Errcode(i64, String),
    /// Wait this long, then respond normally.
    Delay(Duration),
    /// Close the connection without a response.
    Drop,
}

/// Message that the fake accepted, or dropped because of a rate limit.
#[derive(Clone, Debug, Serialize)]
pub struct Received {
    /// `"app"` or `"robot"`.
    pub kind: String,
    /// Agent id for an app message, robot key for a robot message.
    pub target: String,
    /// `"text"` or `"markdown"`.
    pub msgtype: String,
    /// Content as stored, decoded lossily: a truncation that cuts a UTF-8
    /// character leaves U+FFFD in its place.
    pub content: String,
    /// Byte length of the stored content, after truncation to 2048 bytes for
    /// app messages.
    pub content_bytes: usize,
    /// Members that got the message (or, in `dropped`, that it was dropped
    /// for), as lowercase userids joined by `|`. `@all` when touser was
    /// `@all` and every member got it. Empty for robot messages.
    pub touser: String,
    /// Known party ids that got the message, joined by `|`.
    pub toparty: String,
    /// Known tag ids that got the message, joined by `|`.
    pub totag: String,
    /// Time of receipt in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Request counts per route since the start or the last reset.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub token_calls: usize,
    pub message_calls: usize,
    pub webhook_calls: usize,
    /// Number of entries in [`FakeWecom::dropped`].
    pub dropped: usize,
}

/// Handle to the state, shared by the handlers and [`FakeWecom`].
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    /// Locks the state. A panic in another holder leaves the state usable,
    /// so a poisoned lock is taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Running fake WeCom server. Dropping it stops the server and closes its
/// connections.
pub struct FakeWecom {
    shared: Shared,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeWecom {
    /// Starts a server on `127.0.0.1` with a free port and the default config.
    ///
    /// # Panics
    /// Panics when binding the port fails.
    pub async fn start() -> FakeWecom {
        FakeWecom::start_with(Config::default()).await
    }

    /// Starts a server on `127.0.0.1` with a free port.
    ///
    /// # Panics
    /// Panics when binding the port fails.
    pub async fn start_with(config: Config) -> FakeWecom {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        FakeWecom::start_on(addr, config)
            .await
            .unwrap_or_else(|error| panic!("fake-wecom: binding {addr} failed: {error}"))
    }

    /// Starts a server on `addr`, which must be a loopback address.
    pub async fn start_on(addr: SocketAddr, config: Config) -> std::io::Result<FakeWecom> {
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("fake-wecom listens on loopback only, but {addr} is not a loopback address; use 127.0.0.1 or ::1"),
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Shared(Arc::new(Mutex::new(State::new(config))));
        let server = server::spawn(listener, router(shared.clone()));
        Ok(FakeWecom {
            shared,
            addr,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns `http://IP:PORT`, with brackets around an IPv6 address.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds an app with its members, parties and tags, or replaces the app
    /// with the same corp id and agent id. Userids match case-insensitively.
    /// When two apps of one corp share a secret, gettoken picks the first.
    pub fn add_app(
        &self,
        corp_id: &str,
        secret: &str,
        agent_id: i64,
        users: &[&str],
        parties: &[&str],
        tags: &[&str],
    ) {
        self.shared
            .lock()
            .add_app(corp_id, secret, agent_id, users, parties, tags);
    }

    /// Adds a group robot webhook key.
    pub fn add_robot(&self, key: &str) {
        self.shared.lock().add_robot(key);
    }

    /// Applies `fault` to the next `times` requests of `route`, after the
    /// faults already queued for that route.
    pub fn push_fault(&self, route: Route, fault: Fault, times: usize) {
        self.shared.lock().push_fault(route, fault, times);
    }

    /// Turns the trusted-IP check of `message/send` on (`Some`) or off
    /// (`None`). While it is on, sends get errcode 60020 and every errmsg
    /// reports `reported_ip` as the caller, or the caller's peer IP when
    /// `reported_ip` is empty. Gettoken still succeeds.
    pub fn set_trusted_ip_check(&self, reported_ip: Option<&str>) {
        self.shared.lock().trusted_ip = reported_ip.map(str::to_string);
    }

    /// Makes every token issued so far fail with `errcode` (40014 or 42001)
    /// on its next use. The next gettoken issues a new token.
    pub fn invalidate_tokens(&self, errcode: i64) {
        self.shared.lock().invalidate_tokens(errcode);
    }

    /// Sets the delay before every response of the WeCom routes.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().config.delay = delay;
    }

    /// Returns the accepted messages, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Returns the app messages dropped by the per-member rate limits, oldest
    /// first.
    pub fn dropped(&self) -> Vec<Received> {
        self.shared.lock().dropped.clone()
    }

    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// Clears received and dropped messages, stats, queued faults and the
    /// rate-limit history. Apps, robots, tokens, the trusted-IP check and the
    /// delay stay as they are.
    pub fn reset(&self) {
        self.shared.lock().reset();
    }
}

impl Drop for FakeWecom {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/cgi-bin/gettoken", get(wecom::get_token))
        .route("/cgi-bin/message/send", post(wecom::send_message))
        .route("/cgi-bin/webhook/send", post(wecom::send_webhook))
        .route("/cgi-bin/webhook/upload_media", post(wecom::upload_media))
        .merge(control::router())
        .with_state(shared)
}
