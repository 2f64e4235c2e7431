//! Endpoint handlers: parse and check the request, store the message, then
//! respond (after delivery, with `?wait=true`).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::{failure_json, ApiError};
use super::{AppState, BODY_LIMIT, WAIT_CAP};
use crate::outbox::{Message, NewMessage, Status};
use crate::profile::Profile;

pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("There is no endpoint at {}.", uri.path()),
        "Use POST /v1/send, POST /v1/send/{profile}, GET /v1/messages/{id}, POST /cgi-bin/webhook/send?key=KEY or GET /health.",
    )
}

pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}.", uri.path()),
        "Send messages with POST; read /health and /v1/messages/{id} with GET.",
    )
}

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    text: String,
    profile: Option<String>,
    title: Option<String>,
    format: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct SendQuery {
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

impl SendQuery {
    fn wait(&self) -> bool {
        matches!(self.wait.as_deref(), Some("true" | "1" | "yes"))
    }
}

fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("The body is larger than the relay's limit of {BODY_LIMIT} bytes (1 MiB)."),
                "Send a shorter message; long reports are better attached to an email or saved to a file.",
            )
        } else {
            ApiError::bad_request("bad_body", format!("The body could not be read: {rejection}."), "Send the body again.")
        }
    })
}

/// `POST /v1/send` with a JSON body.
pub async fn send_json(
    State(state): State<AppState>,
    Query(query): Query<SendQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let parsed: SendBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("The body is not valid JSON for this endpoint: {e}."),
            r#"Send UTF-8 JSON such as {"text": "order filled", "title": "600519", "profile": "wecom"}."#,
        )
    })?;
    let markdown = parse_format(parsed.format.as_deref())?;
    let profile = state.resolve_profile(parsed.profile.as_deref())?;
    let message = new_message(&profile, parsed.title, parsed.text, markdown, "relay")?;
    accept(&state, message, query.wait()).await
}

/// `POST /v1/send/{profile}` with a plain-text body.
pub async fn send_text(
    State(state): State<AppState>,
    Path(profile): Path<String>,
    Query(query): Query<SendQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(body)?;
    let text = decode_text(&headers, &body)?;
    let title = match headers.get("title") {
        Some(value) => Some(String::from_utf8(value.as_bytes().to_vec()).map_err(|_| {
            ApiError::bad_request(
                "bad_title",
                "The Title header is not valid UTF-8.",
                "Send the title as UTF-8, or use ?title= with percent-encoding.",
            )
        })?),
        None => query.title.clone(),
    };
    let markdown = parse_format(query.format.as_deref())?;
    let profile = state.resolve_profile(Some(&profile))?;
    let message = new_message(&profile, title, text, markdown, "relay")?;
    accept(&state, message, query.wait()).await
}

/// Decodes a plain-text body in the charset its Content-Type names (UTF-8
/// when none), rejecting bytes that are invalid in that charset.
pub fn decode_text(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let label = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned());
    let encoding = match &label {
        None => encoding_rs::UTF_8,
        Some(label) => encoding_rs::Encoding::for_label(label.as_bytes()).ok_or_else(|| {
            ApiError::bad_request(
                "bad_charset",
                format!("Unknown charset '{label}'."),
                "Use charset=utf-8 or charset=gbk (also gb18030, big5, shift_jis).",
            )
        })?,
    };
    let name = encoding.name();
    if encoding == encoding_rs::UTF_8 {
        return String::from_utf8(body.to_vec()).map_err(|e| {
            ApiError::bad_request(
                "bad_encoding",
                format!(
                    "The body is not valid UTF-8 (invalid byte at offset {}).",
                    e.utf8_error().valid_up_to()
                ),
                "Send UTF-8, or name the charset, e.g. `Content-Type: text/plain; charset=gbk`.",
            )
        });
    }
    encoding
        .decode_without_bom_handling_and_without_replacement(body)
        .map(|text| text.into_owned())
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_encoding",
                format!("The body is not valid {name}."),
                "Check the charset in the Content-Type header against the bytes the script sends.",
            )
        })
}

fn parse_format(format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        None | Some("text") => Ok(false),
        Some("markdown") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "bad_format",
            format!("Unknown format '{other}'."),
            "Use \"text\" or \"markdown\".",
        )),
    }
}

fn new_message(
    profile: &Profile,
    title: Option<String>,
    text: String,
    markdown: bool,
    source: &'static str,
) -> Result<NewMessage, ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "empty_text",
            "The text is empty.",
            "Send the notice's text.",
        ));
    }
    let title = title.filter(|t| !t.trim().is_empty());
    let parts = crate::channel::parts_needed(&profile.kind, title.as_deref(), &text, markdown);
    if parts > crate::channel::MAX_PARTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_long",
            format!(
                "The text needs {parts} messages on profile '{}' ({}), more than the {} Herald sends for one notice.",
                profile.name,
                profile.kind.name(),
                crate::channel::MAX_PARTS
            ),
            "Shorten the notice, or send long reports through an email profile, which takes them in one message.",
        ));
    }
    Ok(NewMessage {
        profile: profile.name.clone(),
        title,
        text,
        markdown,
        source,
    })
}

/// Stores the message, then returns 202, or with `wait` the final status.
async fn accept(state: &AppState, message: NewMessage, wait: bool) -> Result<Response, ApiError> {
    let mut updates = wait.then(|| state.outbox.subscribe());
    let id = state
        .outbox
        .enqueue(message)
        .await
        .map_err(ApiError::internal)?;
    let Some(updates) = updates.as_mut() else {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "status": "queued" })),
        )
            .into_response());
    };
    let message = wait_final(state, &id, updates).await?;
    Ok(status_response(&message))
}

/// Waits until the message is delivered or failed, the cap passes, or the
/// relay shuts down; returns the message as it then is.
async fn wait_final(
    state: &AppState,
    id: &str,
    updates: &mut tokio::sync::broadcast::Receiver<crate::outbox::Update>,
) -> Result<Message, ApiError> {
    let mut shutdown = state.shutdown.clone();
    let deadline = tokio::time::Instant::now() + WAIT_CAP;
    loop {
        let message = state.outbox.get(id).await.map_err(ApiError::internal)?;
        let Some(message) = message else {
            return Err(ApiError::internal(anyhow::anyhow!("message {id} vanished")));
        };
        if message.status.is_final() || *shutdown.borrow() {
            return Ok(message);
        }
        // Wait for this message's next final update, then read it back.
        loop {
            tokio::select! {
                update = updates.recv() => match update {
                    Ok(update) if update.id == id && update.status.is_final() => break,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return state.outbox.get(id).await.map_err(ApiError::internal)?.ok_or_else(|| ApiError::internal(anyhow::anyhow!("message vanished")));
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}

fn status_response(message: &Message) -> Response {
    let code = match message.status {
        Status::Delivered => StatusCode::OK,
        Status::Failed => StatusCode::BAD_GATEWAY,
        _ => StatusCode::ACCEPTED,
    };
    (code, Json(message_json(message))).into_response()
}

pub fn message_json(message: &Message) -> Value {
    let mut value = json!({
        "id": message.id,
        "profile": message.profile,
        "status": message.status,
        "attempts": message.attempts,
        "parts": message.parts_total,
        "parts_delivered": message.parts_done,
    });
    if let Some(failure) = &message.error {
        if message.status != Status::Delivered {
            value["error"] = failure_json(failure);
        }
    }
    for (key, field) in [
        ("fallback_id", &message.fallback_id),
        ("fallback_of", &message.fallback_of),
        ("merged_with", &message.merged_with),
    ] {
        if let Some(v) = field {
            value[key] = json!(v);
        }
    }
    value
}

/// `GET /v1/messages/{id}`.
pub async fn get_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.outbox.get(&id).await.map_err(ApiError::internal)? {
        Some(message) => Ok(Json(message_json(&message)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_message",
            format!("Message '{id}' not found."),
            "Use the id returned by POST /v1/send, or run `herald history`.",
        )),
    }
}

/// The robot endpoint's errcode for `?wait=true` when the message is stored
/// but not delivered within the wait cap. WeCom itself does not use it.
pub const QUEUED_ERRCODE: i64 = 1;

/// `POST /cgi-bin/webhook/send?key=RELAY_KEY`: the WeCom group robot API,
/// so existing robot scripts only change the URL. Responses are WeCom-shaped.
pub async fn robot_compat(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let wecom_error = |status: StatusCode, errcode: i64, errmsg: String| {
        (
            status,
            Json(json!({ "errcode": errcode, "errmsg": errmsg })),
        )
            .into_response()
    };
    let body = match read_body(body) {
        Ok(body) => body,
        Err(error) => return wecom_error(error.status, 45002, error.message),
    };
    let key = query.get("key").map(String::as_str).unwrap_or("");
    let profile = match state.profile_by_relay_key(key) {
        Some(profile) => profile,
        None => {
            return wecom_error(
                StatusCode::OK,
                93000,
                "invalid webhook url: no Herald profile has this key; `herald profile show NAME` prints the profile's relay_key".into(),
            )
        }
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            return wecom_error(
                StatusCode::OK,
                40058,
                format!("Warning: wrong json format. {e}"),
            )
        }
    };
    let msgtype = parsed.get("msgtype").and_then(Value::as_str).unwrap_or("");
    let markdown = match msgtype {
        "text" => false,
        "markdown" | "markdown_v2" => true,
        other => {
            return wecom_error(
                StatusCode::OK,
                40008,
                format!("invalid message type '{other}': Herald relays text and markdown"),
            )
        }
    };
    let content = parsed
        .get(msgtype)
        .and_then(|v| v.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if content.trim().is_empty() {
        return wecom_error(StatusCode::OK, 44004, "empty content".into());
    }
    let message = match new_message(&profile, None, content.to_owned(), markdown, "robot-api") {
        Ok(message) => message,
        Err(error) => return wecom_error(StatusCode::OK, 45002, error.message),
    };
    let wait = matches!(
        query.get("wait").map(String::as_str),
        Some("true" | "1" | "yes")
    );
    let mut updates = wait.then(|| state.outbox.subscribe());
    let id = match state.outbox.enqueue(message).await {
        Ok(id) => id,
        Err(error) => {
            let error = ApiError::internal(error);
            return wecom_error(error.status, -1, error.message);
        }
    };
    if let Some(updates) = updates.as_mut() {
        // With wait, errcode 0 means delivered and nothing less.
        let message = match wait_final(&state, &id, updates).await {
            Ok(message) => message,
            Err(error) => return wecom_error(error.status, -1, error.message),
        };
        let (errcode, errmsg) = match message.status {
            Status::Delivered => (0, "ok".to_owned()),
            Status::Failed => message
                .error
                .map(|f| (f.upstream_errcode.unwrap_or(-1), f.message.en))
                .unwrap_or((-1, "delivery failed".into())),
            other => (
                QUEUED_ERRCODE,
                format!(
                    "stored but not delivered yet (status {}); Herald keeps trying, and GET /v1/messages/{id} shows the outcome",
                    other.as_str()
                ),
            ),
        };
        return (
            StatusCode::OK,
            Json(json!({ "errcode": errcode, "errmsg": errmsg, "herald_id": id })),
        )
            .into_response();
    }
    (
        StatusCode::OK,
        Json(json!({ "errcode": 0, "errmsg": "ok", "herald_id": id })),
    )
        .into_response()
}
