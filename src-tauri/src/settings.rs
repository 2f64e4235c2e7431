//! The app's own settings, kept with tauri-plugin-store in
//! `HERALD_HOME/desktop-settings.json`.

use herald::home::Home;
use herald::i18n::Lang;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tauri::{AppHandle, Runtime};
use tauri_plugin_store::StoreExt;

const FILE: &str = "desktop-settings.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `zh`, `en`, or `None` to follow the system.
    pub language: Option<String>,
    /// The system's language, for the UI's "follow system" choice.
    #[serde(default = "system_language")]
    pub system_language: String,
    pub autostart: bool,
    pub notify_on_failure: bool,
    pub port: u16,
    /// The port `HERALD_PORT` sets, which wins over `port`.
    #[serde(default, skip_deserializing)]
    pub port_from_env: Option<u16>,
}

fn system_language() -> String {
    match Lang::detect() {
        Lang::Zh => "zh".into(),
        Lang::En => "en".into(),
    }
}

impl Settings {
    pub fn lang(&self) -> Lang {
        match self.language.as_deref() {
            Some("zh") => Lang::Zh,
            Some("en") => Lang::En,
            _ => Lang::detect(),
        }
    }
}

pub fn load<R: Runtime>(app: &AppHandle<R>, home: &Home) -> Settings {
    let defaults = Settings {
        language: None,
        system_language: system_language(),
        autostart: false,
        notify_on_failure: true,
        port: herald::relay::DEFAULT_PORT,
        port_from_env: port_from_env(),
    };
    let Ok(store) = app.store(home.root().join(FILE)) else {
        return defaults;
    };
    Settings {
        language: store
            .get("language")
            .and_then(|v| v.as_str().map(str::to_owned))
            .filter(|v| v == "zh" || v == "en"),
        system_language: defaults.system_language,
        autostart: store
            .get("autostart")
            .and_then(|v| v.as_bool())
            .unwrap_or(defaults.autostart),
        notify_on_failure: store
            .get("notify_on_failure")
            .and_then(|v| v.as_bool())
            .unwrap_or(defaults.notify_on_failure),
        port: store
            .get("port")
            .and_then(|v| v.as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or(defaults.port),
        port_from_env: defaults.port_from_env,
    }
}

fn port_from_env() -> Option<u16> {
    std::env::var("HERALD_PORT")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

pub fn save<R: Runtime>(
    app: &AppHandle<R>,
    home: &Home,
    settings: &Settings,
) -> anyhow::Result<()> {
    let store = app.store(home.root().join(FILE))?;
    store.set("language", json!(settings.language));
    store.set("autostart", json!(settings.autostart));
    store.set("notify_on_failure", json!(settings.notify_on_failure));
    store.set("port", json!(settings.port));
    store.save()?;
    Ok(())
}
