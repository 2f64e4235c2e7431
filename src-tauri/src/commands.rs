//! Tauri commands: the only way the web UI reaches Herald. Every command
//! goes through the same core code and files as the `herald` CLI.

use herald::home::now_ms;
use herald::i18n::{Lang, Text};
use herald::outbox::{store, Status};
use serde::Deserialize;
use serde_json::Value;
use tauri::{AppHandle, Emitter, Manager, Runtime, State};

use crate::settings::{self, Settings};
use crate::state::Desktop;
use crate::views::{self, OutcomeView, ProfileInput, RelayStatus, ReportView};

/// A command's failure, sent to the UI as a string in the user's language.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(String);

impl serde::Serialize for CommandError {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> CommandError {
        CommandError(format!("{error:#}"))
    }
}

type Result<T> = std::result::Result<T, CommandError>;

fn lang<R: Runtime>(app: &AppHandle<R>, desktop: &Desktop) -> Lang {
    settings::load(app, &desktop.home).lang()
}

fn say(lang: Lang, text: Text) -> CommandError {
    CommandError(text.get(lang).to_owned())
}

fn not_found(lang: Lang, name: &str) -> CommandError {
    say(
        lang,
        Text::new(
            format!("Profile '{name}' not found."),
            format!("找不到配置“{name}”。"),
        ),
    )
}

fn profiles_changed<R: Runtime>(app: &AppHandle<R>) {
    let _ = app.emit("profiles-changed", ());
    crate::tray::refresh(app);
}

#[tauri::command]
pub async fn list_profiles(desktop: State<'_, Desktop>) -> Result<Vec<Value>> {
    let profiles = desktop.profiles.list()?;
    let default = desktop.profiles.default_name()?;
    let mut views = Vec::new();
    for profile in profiles {
        let name = profile.name.clone();
        let state = desktop
            .outbox
            .run(move |c| store::profile_state(c, &name))
            .await
            .unwrap_or_default();
        let secret = desktop.profiles.secret(&profile).ok();
        let is_default = default.as_deref() == Some(profile.name.as_str());
        views.push(views::profile_view(
            &profile,
            secret.as_deref(),
            is_default,
            &state,
        ));
    }
    Ok(views)
}

#[tauri::command]
pub fn validate_profile(desktop: State<'_, Desktop>, input: ProfileInput) -> Result<ReportView> {
    let profile = match input.to_profile() {
        Ok(profile) => profile,
        Err(errors) => {
            return Ok(ReportView {
                errors,
                warnings: vec![],
            })
        }
    };
    let others: Vec<_> = desktop
        .profiles
        .list()?
        .into_iter()
        .filter(|p| p.name != profile.name)
        .collect();
    Ok(herald::profile::validate::check(&profile, &others).into())
}

#[tauri::command]
pub async fn save_profile<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    input: ProfileInput,
) -> Result<Value> {
    let lang = lang(&app, &desktop);
    let profile = match input.to_profile() {
        Ok(profile) => profile,
        Err(errors) => {
            return Ok(
                serde_json::json!({ "saved": false, "errors": errors, "warnings": [], "keyring_fallback": null, "profile": null }),
            );
        }
    };
    let existing = desktop.profiles.get(&profile.name)?;
    if existing.is_none() && input.new_secret().is_none() {
        let error = Text::new(
            "The secret is missing: a new profile needs it.",
            "缺少密钥：新配置必须填写。",
        );
        return Ok(
            serde_json::json!({ "saved": false, "errors": [error], "warnings": [], "keyring_fallback": null, "profile": null }),
        );
    }
    let saved = desktop.profiles.save(profile, input.new_secret())?;
    if !saved.report.is_ok() {
        return Ok(
            serde_json::json!({ "saved": false, "errors": saved.report.errors, "warnings": saved.report.warnings, "keyring_fallback": null, "profile": null }),
        );
    }
    let view = profile_by_name(&desktop, &saved.profile.name)
        .await?
        .ok_or_else(|| not_found(lang, &saved.profile.name))?;
    profiles_changed(&app);
    Ok(serde_json::json!({
        "saved": true,
        "errors": [],
        "warnings": saved.report.warnings,
        "keyring_fallback": saved.keyring_fallback,
        "profile": view,
    }))
}

async fn profile_by_name(desktop: &Desktop, name: &str) -> anyhow::Result<Option<Value>> {
    let Some(profile) = desktop.profiles.get(name)? else {
        return Ok(None);
    };
    let default = desktop.profiles.default_name()?;
    let owned = name.to_owned();
    let state = desktop
        .outbox
        .run(move |c| store::profile_state(c, &owned))
        .await
        .unwrap_or_default();
    let secret = desktop.profiles.secret(&profile).ok();
    Ok(Some(views::profile_view(
        &profile,
        secret.as_deref(),
        default.as_deref() == Some(name),
        &state,
    )))
}

#[tauri::command]
pub fn delete_profile<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    name: String,
) -> Result<()> {
    let lang = lang(&app, &desktop);
    if !desktop.profiles.remove(&name)? {
        return Err(not_found(lang, &name));
    }
    profiles_changed(&app);
    Ok(())
}

#[tauri::command]
pub async fn duplicate_profile<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    name: String,
    new_name: String,
) -> Result<Value> {
    let lang = lang(&app, &desktop);
    let original = desktop
        .profiles
        .get(&name)?
        .ok_or_else(|| not_found(lang, &name))?;
    if desktop.profiles.get(&new_name)?.is_some() {
        return Err(say(
            lang,
            Text::new(
                format!("A profile named '{new_name}' exists already."),
                format!("已存在名为“{new_name}”的配置。"),
            ),
        ));
    }
    let secret = desktop.profiles.secret(&original)?;
    let mut copy = original.clone();
    copy.name = new_name.clone();
    let saved = desktop.profiles.save(copy, Some(&secret))?;
    if !saved.report.is_ok() {
        let reasons: Vec<String> = saved
            .report
            .errors
            .iter()
            .map(|e| e.get(lang).to_owned())
            .collect();
        return Err(CommandError(reasons.join(" ")));
    }
    profiles_changed(&app);
    profile_by_name(&desktop, &new_name)
        .await?
        .ok_or_else(|| not_found(lang, &new_name))
}

#[tauri::command]
pub fn set_default_profile<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    name: String,
) -> Result<()> {
    desktop.profiles.set_default(&name)?;
    profiles_changed(&app);
    Ok(())
}

#[tauri::command]
pub async fn check_profile<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    name: String,
) -> Result<OutcomeView> {
    let lang = lang(&app, &desktop);
    let profile = desktop
        .profiles
        .get(&name)?
        .ok_or_else(|| not_found(lang, &name))?;
    let secret = match desktop.profiles.secret(&profile) {
        Ok(secret) => secret,
        Err(error) => {
            let failure = herald::diagnosis::secret_unavailable(&name, &format!("{error:#}"));
            return Ok(OutcomeView {
                ok: false,
                status: "failed",
                id: None,
                answer: None,
                failure: Some(herald::relay::failure_json(&failure)),
            });
        }
    };
    let context = herald::diagnosis::Context {
        route: profile.proxy.describe(),
        last_success_ip: None,
    };
    Ok(
        match desktop
            .deliverer
            .channels
            .check(&profile, &secret, &context)
            .await
        {
            Ok(accepted) => OutcomeView {
                ok: true,
                status: "delivered",
                id: None,
                answer: Some(accepted.answer),
                failure: None,
            },
            Err(failure) => OutcomeView {
                ok: false,
                status: "failed",
                id: None,
                answer: None,
                failure: Some(herald::relay::failure_json(&failure)),
            },
        },
    )
}

#[tauri::command]
pub async fn send_test<R: Runtime>(
    app: AppHandle<R>,
    name: String,
    title: Option<String>,
    text: Option<String>,
) -> Result<OutcomeView> {
    deliver_test(&app, &name, title, text).await
}

/// Stores a message for `name` and delivers it now, as `herald send` does.
pub async fn deliver_test<R: Runtime>(
    app: &AppHandle<R>,
    name: &str,
    title: Option<String>,
    text: Option<String>,
) -> Result<OutcomeView> {
    let desktop = app.state::<Desktop>();
    let lang = lang(app, &desktop);
    let profile = desktop
        .profiles
        .get(name)?
        .ok_or_else(|| not_found(lang, name))?;
    let now = chrono::Local::now().format("%H:%M:%S");
    let text = text
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| match lang {
            Lang::En => format!(
                "Test message from Herald at {now}. If you read this, profile {name} works."
            ),
            Lang::Zh => format!("Herald 测试消息（{now}）。收到这条消息说明配置 {name} 可用。"),
        });
    let title = title.filter(|t| !t.trim().is_empty()).or_else(|| {
        Some(match lang {
            Lang::En => "Herald test".to_owned(),
            Lang::Zh => "Herald 测试".to_owned(),
        })
    });
    let message = herald::outbox::NewMessage {
        profile: profile.name.clone(),
        title,
        text,
        markdown: false,
        source: "desktop",
    };
    let owner = format!("desktop:{}", std::process::id());
    let lease_owner = owner.clone();
    let mut ids = desktop
        .outbox
        .run(move |c| store::insert(c, &[message], Some((&lease_owner, now_ms() + 300_000))))
        .await?;
    let id = ids.remove(0);
    let claimed_id = id.clone();
    let claimed = desktop
        .outbox
        .run(move |c| store::claim_id(c, &claimed_id, &owner, now_ms() + 300_000))
        .await?
        .ok_or_else(|| CommandError("the test message was taken by another process".into()))?;
    let result = desktop
        .deliverer
        .attempt(&profile, vec![claimed], false)
        .await;
    let stored = desktop.outbox.get(&id).await?;
    let answer = match result.status {
        Status::Delivered => {
            let attempt_id = id.clone();
            desktop
                .outbox
                .run(move |c| store::attempts(c, &attempt_id))
                .await?
                .last()
                .and_then(|a| a.answer.clone())
        }
        _ => None,
    };
    Ok(OutcomeView {
        ok: result.status == Status::Delivered,
        status: stored.map(|m| m.status.as_str()).unwrap_or("failed"),
        id: Some(id),
        answer,
        failure: result.failure.as_ref().map(herald::relay::failure_json),
    })
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct HistoryFilter {
    profile: Option<String>,
    status: Option<String>,
    text: Option<String>,
    limit: Option<i64>,
}

#[tauri::command]
pub async fn list_history(
    desktop: State<'_, Desktop>,
    filter: Option<HistoryFilter>,
) -> Result<Vec<Value>> {
    let filter = filter.unwrap_or_default();
    let limit = filter.limit.unwrap_or(200).clamp(1, 2000);
    let profile = filter.profile.filter(|p| !p.is_empty());
    // Status and text filters apply to a wider window of recent messages.
    let messages = desktop
        .outbox
        .run(move |c| store::history(c, profile.as_deref(), limit * 5))
        .await?;
    let needle = filter.text.unwrap_or_default().to_lowercase();
    let status = filter.status.filter(|s| !s.is_empty());
    Ok(messages
        .iter()
        .filter(|m| status.as_deref().is_none_or(|s| m.status.as_str() == s))
        .filter(|m| {
            needle.is_empty()
                || m.text.to_lowercase().contains(&needle)
                || m.title
                    .as_deref()
                    .is_some_and(|t| t.to_lowercase().contains(&needle))
        })
        .take(limit as usize)
        .map(views::message_view)
        .collect())
}

#[tauri::command]
pub async fn message_detail<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    id: String,
) -> Result<Value> {
    let lang = lang(&app, &desktop);
    let message = desktop.outbox.get(&id).await?.ok_or_else(|| {
        say(
            lang,
            Text::new(
                format!("Message '{id}' not found."),
                format!("找不到消息“{id}”。"),
            ),
        )
    })?;
    let attempts = desktop.outbox.run(move |c| store::attempts(c, &id)).await?;
    Ok(serde_json::json!({
        "message": views::message_view(&message),
        "attempts": attempts.iter().map(views::attempt_view).collect::<Vec<_>>(),
    }))
}

#[tauri::command]
pub async fn resend_message<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    id: String,
) -> Result<Value> {
    let lang = lang(&app, &desktop);
    let requeue_id = id.clone();
    let requeued = desktop
        .outbox
        .run(move |c| store::requeue(c, &requeue_id))
        .await?;
    if !requeued {
        return Err(say(
            lang,
            Text::new(
                "Only a failed message can be resent.",
                "只有发送失败的消息可以重发。",
            ),
        ));
    }
    desktop.outbox.wake();
    let message = desktop
        .outbox
        .get(&id)
        .await?
        .ok_or_else(|| CommandError(format!("message {id} vanished")))?;
    if desktop.status().state != "running" {
        // Without the relay's worker, deliver it here.
        let profile = desktop
            .profiles
            .get(&message.profile)?
            .ok_or_else(|| not_found(lang, &message.profile))?;
        let claim_id = id.clone();
        if let Some(claimed) = desktop
            .outbox
            .run(move |c| store::claim_id(c, &claim_id, "desktop", now_ms() + 300_000))
            .await?
        {
            desktop
                .deliverer
                .attempt(&profile, vec![claimed], false)
                .await;
        }
    }
    let message = desktop
        .outbox
        .get(&id)
        .await?
        .ok_or_else(|| CommandError(format!("message {id} vanished")))?;
    Ok(views::message_view(&message))
}

#[tauri::command]
pub async fn send_via_fallback<R: Runtime>(
    app: AppHandle<R>,
    desktop: State<'_, Desktop>,
    id: String,
) -> Result<Value> {
    let lang = lang(&app, &desktop);
    let message = desktop
        .outbox
        .get(&id)
        .await?
        .ok_or_else(|| CommandError(format!("message {id} not found")))?;
    let profile = desktop
        .profiles
        .get(&message.profile)?
        .ok_or_else(|| not_found(lang, &message.profile))?;
    let fallback = profile.fallback.clone().ok_or_else(|| {
        say(
            lang,
            Text::new(
                format!("Profile '{}' has no fallback profile.", profile.name),
                format!("配置“{}”没有备用配置。", profile.name),
            ),
        )
    })?;
    let original = message.clone();
    let new_id = desktop
        .outbox
        .run(move |c| store::queue_fallback(c, &original, &fallback))
        .await?;
    desktop.outbox.wake();
    let copy = desktop
        .outbox
        .get(&new_id)
        .await?
        .ok_or_else(|| CommandError(format!("message {new_id} vanished")))?;
    Ok(views::message_view(&copy))
}

#[tauri::command]
pub fn relay_status(desktop: State<'_, Desktop>) -> RelayStatus {
    desktop.status()
}

#[tauri::command]
pub fn relay_token(desktop: State<'_, Desktop>) -> Result<String> {
    Ok(herald::relay::load_or_create_token(&desktop.home)?)
}

/// Replaces the token and restarts a running relay so it takes effect.
#[tauri::command]
pub async fn regenerate_token<R: Runtime>(app: AppHandle<R>) -> Result<String> {
    let desktop = app.state::<Desktop>();
    let token = herald::relay::regenerate_token(&desktop.home)?;
    if desktop.status().state == "running" {
        let port = desktop.status().port;
        desktop.stop_relay(&app, false).await;
        desktop.start_relay(&app, port).await;
    }
    Ok(token)
}

#[tauri::command]
pub async fn set_relay_paused<R: Runtime>(app: AppHandle<R>, paused: bool) -> Result<RelayStatus> {
    Ok(set_paused(&app, paused).await)
}

pub async fn set_paused<R: Runtime>(app: &AppHandle<R>, paused: bool) -> RelayStatus {
    let desktop = app.state::<Desktop>();
    if paused {
        desktop.stop_relay(app, true).await
    } else {
        let port = crate::relay_port(app, &desktop.home);
        desktop.start_relay(app, port).await
    }
}

#[tauri::command]
pub fn get_settings<R: Runtime>(app: AppHandle<R>, desktop: State<'_, Desktop>) -> Settings {
    settings::load(&app, &desktop.home)
}

#[tauri::command]
pub async fn save_settings<R: Runtime>(app: AppHandle<R>, settings: Settings) -> Result<Settings> {
    let desktop = app.state::<Desktop>();
    let lang = settings.lang();
    if settings.port == 0 {
        return Err(say(
            lang,
            Text::new(
                "Invalid port 0: use 1 to 65535.",
                "端口 0 无效：请使用 1 到 65535。",
            ),
        ));
    }
    let before = settings::load(&app, &desktop.home);
    settings::save(&app, &desktop.home, &settings)?;
    crate::apply_autostart(&app, settings.autostart);
    if before.port != settings.port && desktop.status().state != "paused" {
        desktop.stop_relay(&app, false).await;
        let port = crate::relay_port(&app, &desktop.home);
        desktop.start_relay(&app, port).await;
    }
    crate::tray::refresh(&app);
    Ok(settings::load(&app, &desktop.home))
}
