//! The desktop app's state: the shared outbox and profiles, and the
//! in-process relay, which can be paused, resumed and moved to a new port.

use std::sync::Mutex;
use std::time::Duration;

use herald::channel::Channels;
use herald::home::Home;
use herald::i18n::Text;
use herald::outbox::worker::Deliverer;
use herald::outbox::Outbox;
use herald::profile::ProfileStore;
use tauri::{AppHandle, Emitter, Runtime};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::views::RelayStatus;

/// Everything the commands share.
pub struct Desktop {
    pub home: Home,
    pub profiles: ProfileStore,
    pub outbox: Outbox,
    pub deliverer: Deliverer,
    relay: tokio::sync::Mutex<Option<RunningRelay>>,
    status: Mutex<RelayStatus>,
    /// Kept so the deliverer's shutdown channel stays open.
    _stop_deliverer: watch::Sender<bool>,
}

struct RunningRelay {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Desktop {
    pub fn open(home: Home) -> anyhow::Result<Desktop> {
        let profiles = ProfileStore::open(&home)?;
        let outbox = Outbox::open(&home)?;
        let (stop, stopping) = watch::channel(false);
        let deliverer = Deliverer::new(
            outbox.clone(),
            profiles.clone(),
            Channels::new(&home),
            stopping,
        );
        Ok(Desktop {
            home,
            profiles,
            outbox,
            deliverer,
            relay: tokio::sync::Mutex::new(None),
            status: Mutex::new(RelayStatus {
                state: "starting",
                port: 0,
                url: None,
                error: None,
            }),
            _stop_deliverer: stop,
        })
    }

    pub fn status(&self) -> RelayStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_status<R: Runtime>(&self, app: &AppHandle<R>, status: RelayStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status.clone();
        if let Err(error) = app.emit("relay-status", &status) {
            tracing::warn!(%error, "could not send the relay status to the window");
        }
        crate::tray::refresh(app);
    }

    /// Starts the relay on `port` unless it runs already. A port in use
    /// becomes an error status that the window and the tray show.
    pub async fn start_relay<R: Runtime>(&self, app: &AppHandle<R>, port: u16) -> RelayStatus {
        let mut running = self.relay.lock().await;
        if running.is_some() {
            return self.status();
        }
        let relay = match herald::relay::Relay::bind(&self.home, port).await {
            Ok(relay) => relay,
            Err(error) => {
                let detail = format!("{error:#}");
                tracing::warn!(port, error = %detail, "the relay could not start");
                let text = if detail.contains("already running") {
                    Text::new(
                        format!("The relay could not start: another Herald relay already runs for this data folder ({detail}). Stop it (for example `herald serve` in a terminal), then choose Resume relay in the tray."),
                        format!("中继无法启动：另一个 Herald 中继正在使用同一数据目录（{detail}）。请先停止它（例如终端中的 `herald serve`），然后在托盘菜单中选择“恢复中继”。"),
                    )
                } else if detail.contains("already in use") {
                    Text::new(
                        format!("The relay could not start: port {port} is in use, perhaps by `herald serve` or another Herald. Stop it, or choose another port in Settings."),
                        format!("中继无法启动：端口 {port} 已被占用（可能是 `herald serve` 或另一个 Herald）。请停止它，或在设置中更换端口。"),
                    )
                } else {
                    Text::new(
                        format!("The relay could not start: {detail}"),
                        format!("中继无法启动：{detail}"),
                    )
                };
                let status = RelayStatus {
                    state: "error",
                    port,
                    url: None,
                    error: Some(text),
                };
                self.set_status(app, status.clone());
                return status;
            }
        };
        let url = relay.url();
        let bound_port = relay.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let outbox = self.outbox.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = relay.run_with(outbox, shutdown).await {
                tracing::error!(error = %format!("{error:#}"), "the relay stopped with an error");
            }
        });
        *running = Some(RunningRelay { stop, task });
        let status = RelayStatus {
            state: "running",
            port: bound_port,
            url: Some(url),
            error: None,
        };
        self.set_status(app, status.clone());
        status
    }

    /// Stops the relay gracefully: in-flight deliveries finish or stay
    /// queued. `paused` tells whether the user paused it.
    pub async fn stop_relay<R: Runtime>(&self, app: &AppHandle<R>, paused: bool) -> RelayStatus {
        let running = self.relay.lock().await.take();
        if let Some(running) = running {
            let _ = running.stop.send(());
            if tokio::time::timeout(Duration::from_secs(15), running.task)
                .await
                .is_err()
            {
                tracing::warn!("the relay did not stop within 15 s");
            }
        }
        let port = self.status().port;
        let status = RelayStatus {
            state: if paused { "paused" } else { "stopped" },
            port,
            url: None,
            error: None,
        };
        self.set_status(app, status.clone());
        status
    }
}
