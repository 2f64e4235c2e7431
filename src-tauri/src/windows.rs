//! The main window and the quick-send window. Closing a window destroys
//! its webview, so a tray-only Herald keeps no web process.

use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

pub const MAIN: &str = "main";
pub const QUICK_SEND: &str = "quick-send";

pub fn open_main<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window(MAIN) {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::App("index.html".into()))
        .title("Herald")
        .inner_size(980.0, 680.0)
        .min_inner_size(720.0, 480.0)
        .build();
    if let Err(error) = built {
        tracing::error!(%error, "could not open the main window");
    }
}

pub fn open_quick_send<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window(QUICK_SEND) {
        let _ = window.show();
        let _ = window.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(
        app,
        QUICK_SEND,
        WebviewUrl::App("index.html#quick-send".into()),
    )
    .title("Herald")
    .inner_size(440.0, 420.0)
    .center()
    .resizable(false)
    .build();
    if let Err(error) = built {
        tracing::error!(%error, "could not open the quick-send window");
    }
}
