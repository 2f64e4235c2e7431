//! The HTTP relay on 127.0.0.1 and ::1.
//!
//! Strategies post notices here; each is stored in the outbox before the
//! relay answers, then delivered by the worker. [`router`] builds the routes
//! from a plain state so tests can drive it without a socket; [`Relay`]
//! binds the listeners, writes `relay.json` and runs until shutdown.

mod error;
mod guard;
mod handlers;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::channel::Channels;
use crate::home::{random_hex, write_private, Home};
use crate::outbox::worker::{Deliverer, Worker};
use crate::outbox::Outbox;
use crate::profile::{Profile, ProfileStore};

pub use error::{failure_json, ApiError};
pub use handlers::message_json;

/// The relay's port when neither `--port` nor `HERALD_PORT` is given.
pub const DEFAULT_PORT: u16 = 7591;
/// The largest request body the relay reads: 1 MiB.
pub const BODY_LIMIT: usize = 1 << 20;
/// How long `?wait=true` delays the response before returning 202.
pub const WAIT_CAP: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight deliveries.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Requests other than `?wait=true` ones end after this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Shared state of the handlers, cheap to clone: every request clones it
/// once per layer.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

pub struct SharedState {
    pub outbox: Outbox,
    pub profiles: ProfileStore,
    pub token: Arc<str>,
    pub port: u16,
    pub shutdown: watch::Receiver<bool>,
    profiles_path: std::path::PathBuf,
    cache: Mutex<ProfileCache>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// Profiles as last read, refreshed when the profile file changes, so a
/// request does not parse the file.
#[derive(Default)]
struct ProfileCache {
    modified: Option<SystemTime>,
    profiles: Vec<Profile>,
    default: Option<String>,
}

impl AppState {
    pub fn new(
        outbox: Outbox,
        profiles: ProfileStore,
        token: &str,
        port: u16,
        shutdown: watch::Receiver<bool>,
    ) -> AppState {
        let profiles_path = profiles.home().profiles();
        AppState(Arc::new(SharedState {
            outbox,
            profiles,
            token: Arc::from(token),
            port,
            shutdown,
            profiles_path,
            cache: Mutex::default(),
        }))
    }

    fn with_profiles<T>(&self, read: impl FnOnce(&ProfileCache) -> T) -> Result<T, ApiError> {
        let modified = std::fs::metadata(&self.profiles_path)
            .and_then(|m| m.modified())
            .ok();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.modified != modified || modified.is_none() {
            let profiles = self.profiles.list().map_err(ApiError::internal)?;
            let default = self.profiles.default_name().map_err(ApiError::internal)?;
            *cache = ProfileCache {
                modified,
                profiles,
                default,
            };
        }
        Ok(read(&cache))
    }

    /// Looks up the named profile, or the default one when no name is given.
    pub fn resolve_profile(&self, name: Option<&str>) -> Result<Profile, ApiError> {
        self.with_profiles(|cache| {
            let name = match name {
                Some(name) => name.to_owned(),
                None => cache.default.clone().ok_or_else(|| {
                    ApiError::bad_request(
                        "no_profile",
                        "No profile was named and there is no default profile.",
                        "Add \"profile\" to the request, or set one with `herald profile default NAME`.",
                    )
                })?,
            };
            cache
                .profiles
                .iter()
                .find(|p| p.name == name)
                .cloned()
                .ok_or_else(|| ApiError::unknown_profile(&name))
        })?
    }

    fn profile_by_relay_key(&self, key: &str) -> Option<Profile> {
        self.with_profiles(|cache| {
            cache
                .profiles
                .iter()
                .find(|p| {
                    !key.is_empty()
                        && crate::profile::store::constant_time_eq(
                            p.relay_key.as_bytes(),
                            key.as_bytes(),
                        )
                })
                .cloned()
        })
        .ok()
        .flatten()
    }
}

/// Builds the relay's routes. Guards run outside-in: the loopback check on
/// every route, then the bearer token on the `/v1` routes.
pub fn router(state: AppState) -> Router {
    let authed = Router::new()
        .route("/v1/send", post(handlers::send_json))
        .route("/v1/send/{profile}", post(handlers::send_text))
        .route("/v1/messages/{id}", get(handlers::get_message))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::bearer,
        ));
    Router::new()
        .route("/health", get(handlers::health))
        .route("/cgi-bin/webhook/send", post(handlers::robot_compat))
        .merge(authed)
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::loopback_only,
        ))
        .with_state(state)
}

/// Reads the relay's access token, creating it on first use.
pub fn load_or_create_token(home: &Home) -> Result<String> {
    let path = home.relay_token();
    if let Ok(token) = std::fs::read_to_string(&path) {
        if !token.trim().is_empty() {
            return Ok(token.trim().to_owned());
        }
    }
    let _guard = home.lock("relay-token")?;
    if let Ok(token) = std::fs::read_to_string(&path) {
        if !token.trim().is_empty() {
            return Ok(token.trim().to_owned());
        }
    }
    let token = random_hex(24);
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Replaces the relay's access token. A running relay keeps the old one
/// until it restarts.
pub fn regenerate_token(home: &Home) -> Result<String> {
    let _guard = home.lock("relay-token")?;
    let token = random_hex(24);
    write_private(&home.relay_token(), token.as_bytes())?;
    Ok(token)
}

/// Picks the port: `--port`, then `HERALD_PORT`, then the saved setting,
/// then [`DEFAULT_PORT`].
pub fn resolve_port(flag: Option<u16>, saved: Option<u16>) -> Result<u16> {
    if let Some(port) = flag {
        return check_port(port);
    }
    if let Ok(value) = std::env::var("HERALD_PORT") {
        let port: u16 = value.trim().parse().map_err(|_| {
            anyhow::anyhow!("invalid HERALD_PORT '{value}': use a port number from 1 to 65535")
        })?;
        return check_port(port);
    }
    Ok(saved.unwrap_or(DEFAULT_PORT))
}

fn check_port(port: u16) -> Result<u16> {
    if port == 0 {
        bail!("invalid port 0: use a port number from 1 to 65535");
    }
    Ok(port)
}

/// A bound relay, ready to serve.
pub struct Relay {
    home: Home,
    listeners: Vec<TcpListener>,
    port: u16,
    _lock: std::fs::File,
}

impl Relay {
    /// Takes this home's relay lock and binds 127.0.0.1 and ::1 on `port`.
    /// Port 0 picks a free port (the IPv6 listener then uses the same one).
    pub async fn bind(home: &Home, port: u16) -> Result<Relay> {
        let lock_path = home.lock_file("relay");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("could not open {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            let pid = read_relay_json(home)
                .map(|r| format!(" (pid {})", r.1))
                .unwrap_or_default();
            bail!(
                "another Herald relay{pid} is already running for {}; stop it first, or set HERALD_HOME to another folder",
                home.root().display()
            );
        }

        let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .map_err(|e| bind_error(e, port))?;
        let port = v4.local_addr()?.port();
        let mut listeners = vec![v4];
        match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await {
            Ok(v6) => listeners.push(v6),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return Err(bind_error(e, port)),
            Err(error) => {
                tracing::warn!(%error, "IPv6 loopback ::1 is not available; listening on 127.0.0.1 only")
            }
        }
        Ok(Relay {
            home: home.clone(),
            listeners,
            port,
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes
    /// in-flight deliveries (up to [`DRAIN`]) and removes `relay.json`.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let outbox = Outbox::open(&self.home)?;
        self.run_with(outbox, shutdown).await
    }

    /// Like [`Relay::run`], with an outbox the caller shares, as the
    /// desktop app does for its history view.
    pub async fn run_with(
        self,
        outbox: Outbox,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let token = load_or_create_token(&self.home)?;
        let profiles = ProfileStore::open(&self.home)?;
        let channels = Channels::new(&self.home);
        let (stop, stopping) = watch::channel(false);

        let deliverer =
            Deliverer::new(outbox.clone(), profiles.clone(), channels, stopping.clone());
        let worker = tokio::spawn(Worker::new(deliverer, "relay").run(DRAIN));
        crate::outbox::spool::spawn_importer(&self.home, &outbox, &profiles, stopping.clone());

        let state = AppState::new(outbox, profiles, &token, self.port, stopping.clone());
        let app = router(state).layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
        write_relay_json(&self.home, &self.url(), &token)?;

        let mut servers = Vec::new();
        for listener in self.listeners {
            let mut stopping = stopping.clone();
            let app = app.clone();
            servers.push(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopping.wait_for(|s| *s).await;
                    })
                    .await
            }));
        }

        shutdown.await;
        tracing::info!("shutting down the relay");
        let _ = stop.send(true);
        for server in servers {
            match tokio::time::timeout(DRAIN, server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => tracing::warn!(%error, "listener stopped with an error"),
                Ok(Err(error)) => tracing::warn!(%error, "listener task failed"),
                Err(_) => tracing::warn!("open connections did not close in time"),
            }
        }
        if let Err(error) = worker.await {
            tracing::warn!(%error, "delivery worker failed");
        }
        remove_relay_json(&self.home);
        Ok(())
    }
}

fn bind_error(error: std::io::Error, port: u16) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        anyhow::anyhow!(
            "port {port} is already in use (another Herald relay, the desktop app, or another program); stop it or choose another port with --port or HERALD_PORT"
        )
    } else {
        anyhow::anyhow!("could not listen on port {port}: {error}")
    }
}

fn write_relay_json(home: &Home, url: &str, token: &str) -> Result<()> {
    let body = serde_json::json!({ "url": url, "token": token, "pid": std::process::id() });
    write_private(
        &home.relay_json(),
        serde_json::to_string_pretty(&body)?.as_bytes(),
    )
}

/// Reads the url and pid from `relay.json`, if a relay wrote one.
pub fn read_relay_json(home: &Home) -> Option<(String, u32)> {
    let text = std::fs::read_to_string(home.relay_json()).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((
        value["url"].as_str()?.to_owned(),
        value["pid"].as_u64()? as u32,
    ))
}

fn remove_relay_json(home: &Home) {
    if read_relay_json(home).is_some_and(|(_, pid)| pid == std::process::id()) {
        let _ = std::fs::remove_file(home.relay_json());
    }
}

/// Resolves on SIGINT or SIGTERM (Ctrl+C and Ctrl+Break on Windows).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "could not listen for Ctrl+C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
