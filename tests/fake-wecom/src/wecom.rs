//! HTTP handlers of the emulated WeCom API routes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::Value;

use crate::server::Connection;
use crate::state::{random_digits, random_msgid, ApiError};
use crate::{Fault, Route, Shared};

// The reply structs keep WeCom's field order, which a `json!` map would sort.

#[derive(Serialize)]
struct TokenReply {
    errcode: i64,
    errmsg: &'static str,
    access_token: String,
    expires_in: u64,
}

#[derive(Serialize)]
struct SendReply {
    errcode: i64,
    errmsg: String,
    invaliduser: String,
    invalidparty: String,
    invalidtag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unlicenseduser: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msgid: Option<String>,
}

#[derive(Serialize)]
struct StatusReply {
    errcode: i64,
    errmsg: String,
}

/// Handles `GET /cgi-bin/gettoken?corpid=ID&corpsecret=SECRET`.
pub(crate) async fn get_token(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(response) = begin_request(&shared, &connection, Route::GetToken).await {
        return response;
    }
    let mut state = shared.lock();
    let issued = state.issue_token(
        query.get("corpid").map(String::as_str),
        query.get("corpsecret").map(String::as_str),
    );
    match issued {
        Ok((access_token, expires_in)) => Json(TokenReply {
            errcode: 0,
            errmsg: "ok",
            access_token,
            expires_in,
        })
        .into_response(),
        Err(error) => error_response(&error, &state.reported_ip(connection.peer.ip())),
    }
}

/// Handles `POST /cgi-bin/message/send?access_token=TOKEN`.
pub(crate) async fn send_message(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(response) = begin_request(&shared, &connection, Route::Message).await {
        return response;
    }
    let mut state = shared.lock();
    let reported_ip = state.reported_ip(connection.peer.ip());
    let outcome = state
        .check_token(query.get("access_token").map(String::as_str))
        .and_then(|app_index| {
            if state.trusted_ip.is_some() {
                return Err(ApiError::new(60020));
            }
            let body = parse_json_object(&body)?;
            state.send_app_message(app_index, &body)
        });
    match outcome {
        Ok(invalid) => Json(SendReply {
            errcode: 0,
            errmsg: "ok".to_string(),
            invaliduser: invalid.users,
            invalidparty: invalid.parties,
            invalidtag: invalid.tags,
            unlicenseduser: Some(String::new()),
            msgid: Some(random_msgid()),
        })
        .into_response(),
        Err(error) => error_response(&error, &reported_ip),
    }
}

/// Handles `POST /cgi-bin/webhook/send?key=KEY`.
pub(crate) async fn send_webhook(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(response) = begin_request(&shared, &connection, Route::Webhook).await {
        return response;
    }
    let mut state = shared.lock();
    let reported_ip = state.reported_ip(connection.peer.ip());
    let key = query.get("key").map(String::as_str);
    // An unknown key is reported before a malformed body.
    let outcome = if state.has_robot(key) {
        parse_json_object(&body).and_then(|body| state.send_robot_message(key, &body))
    } else {
        Err(ApiError::new(93000))
    };
    match outcome {
        Ok(()) => Json(StatusReply {
            errcode: 0,
            errmsg: "ok".to_string(),
        })
        .into_response(),
        Err(error) => error_response(&error, &reported_ip),
    }
}

#[derive(Serialize)]
struct UploadReply {
    errcode: i64,
    errmsg: &'static str,
    r#type: String,
    media_id: String,
    created_at: String,
}

/// Handles `POST /cgi-bin/webhook/upload_media?key=KEY&type=file|voice`, a
/// multipart upload. The key is checked as on `webhook/send`; the media
/// itself is not parsed, only an empty body is rejected (44001). Nothing is
/// posted to the group, so uploads do not count as received messages.
pub(crate) async fn upload_media(
    State(shared): State<Shared>,
    Extension(connection): Extension<Connection>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(response) = begin_request(&shared, &connection, Route::Webhook).await {
        return response;
    }
    let state = shared.lock();
    let reported_ip = state.reported_ip(connection.peer.ip());
    let key = query.get("key").map(String::as_str);
    if body.is_empty() {
        return error_response(
            &ApiError::with_message(44001, "empty media data".to_string()),
            &reported_ip,
        );
    }
    if !state.has_robot(key) {
        return error_response(&ApiError::new(93000), &reported_ip);
    }
    Json(UploadReply {
        errcode: 0,
        errmsg: "ok",
        r#type: query.get("type").cloned().unwrap_or_else(|| "file".into()),
        media_id: random_msgid(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
    })
    .into_response()
}

/// Counts the request, waits for the configured delays and applies the next
/// fault queued for `route`. Returns the response that replaces the normal
/// one, if the fault calls for one.
async fn begin_request(shared: &Shared, connection: &Connection, route: Route) -> Option<Response> {
    let (fault, delay, reported_ip) = {
        let mut state = shared.lock();
        match route {
            Route::GetToken => state.stats.token_calls += 1,
            Route::Message => state.stats.message_calls += 1,
            Route::Webhook => state.stats.webhook_calls += 1,
        }
        let fault = state.take_fault(route);
        let reported_ip = state.reported_ip(connection.peer.ip());
        (fault, state.config.delay, reported_ip)
    };

    let fault_delay = match &fault {
        Some(Fault::Delay(extra)) => *extra,
        _ => std::time::Duration::ZERO,
    };
    let total_delay = delay + fault_delay;
    if !total_delay.is_zero() {
        tokio::time::sleep(total_delay).await;
    }

    match fault? {
        Fault::Delay(_) => None,
        Fault::Http500 => Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html><head><title>500 Internal Server Error</title></head>\
                 <body><h1>500 Internal Server Error</h1></body></html>",
            )
                .into_response(),
        ),
        Fault::NotJson => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html>busy</html>",
            )
                .into_response(),
        ),
        Fault::Errcode(errcode, errmsg) => Some(error_response(
            &ApiError::with_message(errcode, errmsg),
            &reported_ip,
        )),
        Fault::Drop => {
            connection.close.notify_one();
            // The connection task drops this future together with the socket.
            std::future::pending().await
        }
    }
}

/// Parses a request body that must be a JSON object, as WeCom requires.
fn parse_json_object(body: &[u8]) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(ApiError::new(40058)),
    }
}

/// Builds the HTTP 200 response for an API error. Every errmsg except that of
/// errcode 0 ends with WeCom's hint suffix.
pub(crate) fn error_response(error: &ApiError, reported_ip: &str) -> Response {
    let errmsg = if error.errcode == 0 {
        error.errmsg.clone()
    } else {
        format!(
            "{}, hint: [{}], from ip: {}, more info at https://open.work.weixin.qq.com/devtool/query?e={}",
            error.errmsg,
            random_digits(25),
            reported_ip,
            error.errcode,
        )
    };
    match &error.invalid {
        Some(invalid) => Json(SendReply {
            errcode: error.errcode,
            errmsg,
            invaliduser: invalid.users.clone(),
            invalidparty: invalid.parties.clone(),
            invalidtag: invalid.tags.clone(),
            unlicenseduser: None,
            msgid: None,
        })
        .into_response(),
        None => Json(StatusReply {
            errcode: error.errcode,
            errmsg,
        })
        .into_response(),
    }
}
