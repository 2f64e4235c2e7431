//! Herald's desktop app: a tray icon and a small window over the same relay,
//! profiles and history as the `herald` command line.
//!
//! - [`state`]: the shared outbox and profiles and the in-process relay.
//! - [`commands`]: what the web UI may call.
//! - [`tray`]: the tray icon, tooltip and menu.
//! - [`windows`]: the main and quick-send windows.
//!
//! All delivery work (relay, outbox, retries, token refresh) runs in Rust;
//! the webview only displays state and calls commands.

pub mod commands;
pub mod settings;
pub mod state;
pub mod tray;
pub mod views;
pub mod windows;

use herald::home::Home;
use herald::outbox::Status;
use tauri::{AppHandle, Emitter, Manager, RunEvent, Runtime};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt};
use tauri_plugin_notification::NotificationExt;

use state::Desktop;

/// Picks the relay's port: `HERALD_PORT`, then the saved setting, then
/// the default.
pub fn relay_port<R: Runtime>(app: &AppHandle<R>, home: &Home) -> u16 {
    let saved = settings::load(app, home).port;
    herald::relay::resolve_port(None, Some(saved)).unwrap_or_else(|error| {
        tracing::warn!(%error, "ignoring HERALD_PORT");
        saved
    })
}

pub fn apply_autostart<R: Runtime>(app: &AppHandle<R>, enabled: bool) {
    let launcher = app.autolaunch();
    let result = if enabled {
        launcher.enable()
    } else {
        launcher.disable()
    };
    if let Err(error) = result {
        tracing::warn!(%error, enabled, "could not change start at login");
    }
}

/// Adds the plugins, the managed state and the command handler to
/// `builder`. `run` and the tests share it. The tray and the windows are
/// created only in `run`'s setup.
pub fn register<R: Runtime>(builder: tauri::Builder<R>, desktop: Desktop) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_store::Builder::default().build())
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec!["--hidden"]),
        ))
        .plugin(tauri_plugin_notification::init())
        .manage(desktop)
        .manage(tray::LastOutcome::default())
        .invoke_handler(tauri::generate_handler![
            commands::list_profiles,
            commands::validate_profile,
            commands::save_profile,
            commands::delete_profile,
            commands::duplicate_profile,
            commands::set_default_profile,
            commands::check_profile,
            commands::send_test,
            commands::list_history,
            commands::message_detail,
            commands::resend_message,
            commands::send_via_fallback,
            commands::relay_status,
            commands::relay_token,
            commands::regenerate_token,
            commands::set_relay_paused,
            commands::get_settings,
            commands::save_settings,
        ])
}

pub fn run() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "warn,herald=info,herald_desktop=info",
        ))
        .with_writer(std::io::stderr)
        .try_init();

    let home = match Home::from_env() {
        Ok(home) => home,
        Err(error) => {
            eprintln!("herald-desktop: {error:#}");
            std::process::exit(2);
        }
    };
    let desktop = match Desktop::open(home) {
        Ok(desktop) => desktop,
        Err(error) => {
            eprintln!("herald-desktop: {error:#}");
            std::process::exit(1);
        }
    };
    let start_hidden = std::env::args().any(|a| a == "--hidden");

    // Plugins run in the order they were added, and the single-instance
    // plugin must end a second launch before the other plugins start.
    let builder =
        tauri::Builder::default().plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            windows::open_main(app)
        }));
    let app = register(builder, desktop)
        .setup(move |app| {
            let handle = app.handle().clone();
            tray::create(&handle)?;
            forward_updates(&handle);
            let starter = handle.clone();
            tauri::async_runtime::spawn(async move {
                let desktop = starter.state::<Desktop>();
                let port = relay_port(&starter, &desktop.home);
                desktop.start_relay(&starter, port).await;
            });
            if !start_hidden {
                windows::open_main(&handle);
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("herald-desktop: could not start: {error}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| {
        if let RunEvent::ExitRequested { code, api, .. } = event {
            // Closing the last window keeps Herald in the tray; only Quit
            // (which passes an exit code) ends it.
            if code.is_none() {
                api.prevent_exit();
            } else {
                let desktop = app.state::<Desktop>();
                tauri::async_runtime::block_on(desktop.stop_relay(app, true));
            }
        }
    });
}

/// Forwards every message status change to the windows as
/// `message-updated`, updates the tray, and notifies on failures.
fn forward_updates<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    let mut updates = app.state::<Desktop>().outbox.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let update = match updates.recv().await {
                Ok(update) => update,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(skipped, "the window missed some message updates");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            let desktop = app.state::<Desktop>();
            let Ok(Some(message)) = desktop.outbox.get(&update.id).await else {
                continue;
            };
            let _ = app.emit("message-updated", views::message_view(&message));
            if !update.status.is_final() {
                continue;
            }
            // A final status changes the profile's last outcome, which the
            // profile list and the error banners show.
            let _ = app.emit("profiles-changed", ());
            let failed = update.status == Status::Failed;
            let settings = settings::load(&app, &desktop.home);
            let lang = settings.lang();
            let text = message
                .error
                .as_ref()
                .map(|f| f.message.get(lang).to_owned())
                .unwrap_or_default();
            if let Ok(mut last) = app.state::<tray::LastOutcome>().0.lock() {
                *last = Some(tray::Outcome {
                    failed,
                    profile: message.profile.clone(),
                    at_ms: message.updated_at,
                    message: text.clone(),
                });
            }
            tray::refresh(&app);
            if failed && settings.notify_on_failure {
                let title = match lang {
                    herald::i18n::Lang::En => {
                        format!("Herald: delivery through {} failed", message.profile)
                    }
                    herald::i18n::Lang::Zh => format!("Herald：通过 {} 发送失败", message.profile),
                };
                if let Err(error) = app.notification().builder().title(title).body(text).show() {
                    tracing::warn!(%error, "could not show a desktop notification");
                }
            }
        }
    });
}
