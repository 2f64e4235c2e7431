//! The tray icon: three states (healthy, last delivery failed, relay paused
//! or stopped), a tooltip with the last outcome, and the menu.

use std::sync::Mutex;

use herald::i18n::Lang;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};

use crate::state::Desktop;

const TRAY_ID: &str = "herald";
const ICON_HEALTHY: &[u8] = include_bytes!("../../icons/tray-healthy.png");
const ICON_FAILED: &[u8] = include_bytes!("../../icons/tray-failed.png");
const ICON_PAUSED: &[u8] = include_bytes!("../../icons/tray-paused.png");

/// Menu item ids. Test-send items are `test:PROFILE`.
mod id {
    pub const QUICK_SEND: &str = "quick-send";
    pub const OPEN: &str = "open";
    pub const PAUSE: &str = "pause";
    pub const RESUME: &str = "resume";
    pub const QUIT: &str = "quit";
    pub const TEST_PREFIX: &str = "test:";
}

/// The last delivery outcome, for the icon and the tooltip.
#[derive(Default)]
pub struct LastOutcome(pub Mutex<Option<Outcome>>);

#[derive(Clone)]
pub struct Outcome {
    pub failed: bool,
    pub profile: String,
    pub at_ms: i64,
    pub message: String,
}

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let menu = build_menu(app)?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(ICON_PAUSED)?)
        .tooltip("Herald")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                crate::windows::open_main(tray.app_handle());
            }
        })
        .build(app)?;
    Ok(())
}

fn lang<R: Runtime>(app: &AppHandle<R>) -> Lang {
    let desktop = app.state::<Desktop>();
    crate::settings::load(app, &desktop.home).lang()
}

fn label(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

fn build_menu<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<Menu<R>> {
    let lang = lang(app);
    let desktop = app.state::<Desktop>();
    let profiles = desktop.profiles.list().unwrap_or_default();
    let test_items: Vec<MenuItem<R>> = profiles
        .iter()
        .map(|p| {
            MenuItem::with_id(
                app,
                format!("{}{}", id::TEST_PREFIX, p.name),
                &p.name,
                true,
                None::<&str>,
            )
        })
        .collect::<tauri::Result<_>>()?;
    let test_refs: Vec<&dyn tauri::menu::IsMenuItem<R>> = test_items
        .iter()
        .map(|i| i as &dyn tauri::menu::IsMenuItem<R>)
        .collect();
    let tests = Submenu::with_items(
        app,
        label(lang, "Send test", "发送测试"),
        !test_items.is_empty(),
        &test_refs,
    )?;
    let paused = matches!(desktop.status().state, "paused" | "error" | "stopped");
    let toggle = if paused {
        MenuItem::with_id(
            app,
            id::RESUME,
            label(lang, "Resume relay", "恢复中继"),
            true,
            None::<&str>,
        )?
    } else {
        MenuItem::with_id(
            app,
            id::PAUSE,
            label(lang, "Pause relay", "暂停中继"),
            true,
            None::<&str>,
        )?
    };
    Menu::with_items(
        app,
        &[
            &tests,
            &MenuItem::with_id(
                app,
                id::QUICK_SEND,
                label(lang, "Quick send…", "快速发送…"),
                true,
                None::<&str>,
            )?,
            &MenuItem::with_id(
                app,
                id::OPEN,
                label(lang, "Open Herald", "打开 Herald"),
                true,
                None::<&str>,
            )?,
            &PredefinedMenuItem::separator(app)?,
            &toggle,
            &MenuItem::with_id(
                app,
                id::QUIT,
                label(lang, "Quit", "退出"),
                true,
                None::<&str>,
            )?,
        ],
    )
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, item: &str) {
    match item {
        id::QUICK_SEND => crate::windows::open_quick_send(app),
        id::OPEN => crate::windows::open_main(app),
        id::PAUSE | id::RESUME => {
            let app = app.clone();
            let pause = item == id::PAUSE;
            tauri::async_runtime::spawn(async move {
                crate::commands::set_paused(&app, pause).await;
            });
        }
        id::QUIT => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let desktop = app.state::<Desktop>();
                desktop.stop_relay(&app, true).await;
                app.exit(0);
            });
        }
        other => {
            if let Some(profile) = other.strip_prefix(id::TEST_PREFIX) {
                let app = app.clone();
                let profile = profile.to_owned();
                tauri::async_runtime::spawn(async move {
                    let outcome = crate::commands::deliver_test(&app, &profile, None, None).await;
                    if let Err(error) = outcome {
                        tracing::warn!(profile, %error, "test send from the tray failed");
                    }
                });
            }
        }
    }
}

/// Updates the icon, tooltip and menu to the relay's state and the last
/// outcome.
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let lang = lang(app);
    let desktop = app.state::<Desktop>();
    let status = desktop.status();
    let last = app
        .try_state::<LastOutcome>()
        .and_then(|l| l.0.lock().ok().and_then(|o| o.clone()));
    let relay_down = status.state != "running";
    let icon = if relay_down {
        ICON_PAUSED
    } else if last.as_ref().is_some_and(|o| o.failed) {
        ICON_FAILED
    } else {
        ICON_HEALTHY
    };
    let relay_line = match status.state {
        "running" => format!(
            "{} {}",
            label(lang, "Relay on", "中继运行于"),
            status.url.clone().unwrap_or_default()
        ),
        "paused" => label(lang, "Relay paused", "中继已暂停"),
        _ => status
            .error
            .as_ref()
            .map(|e| e.get(lang).to_owned())
            .unwrap_or_else(|| label(lang, "Relay stopped", "中继已停止")),
    };
    let last_line = match &last {
        Some(outcome) => {
            let time = chrono::DateTime::from_timestamp_millis(outcome.at_ms)
                .map(|d| d.with_timezone(&chrono::Local).format("%H:%M").to_string())
                .unwrap_or_default();
            if outcome.failed {
                format!(
                    "{} {} {time}: {}",
                    label(lang, "Last delivery failed:", "上次发送失败："),
                    outcome.profile,
                    outcome.message
                )
            } else {
                format!(
                    "{} {} {time}",
                    label(lang, "Last delivery ok:", "上次发送成功："),
                    outcome.profile
                )
            }
        }
        None => label(lang, "Nothing sent yet", "尚未发送"),
    };
    let tooltip = format!("Herald\n{relay_line}\n{last_line}");
    if let Ok(image) = Image::from_bytes(icon) {
        if let Err(error) = tray.set_icon(Some(image)) {
            tracing::warn!(%error, "could not update the tray icon");
        }
    }
    let _ = tray.set_tooltip(Some(tooltip));
    match build_menu(app) {
        Ok(menu) => {
            let _ = tray.set_menu(Some(menu));
        }
        Err(error) => tracing::warn!(%error, "could not rebuild the tray menu"),
    }
}
