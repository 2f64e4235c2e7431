//! JSON errors of the relay: `{"error":{"code","message","hint"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::diagnosis::Failure;

/// An error response: what failed and what the caller should do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub fn bad_request(
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message, hint)
    }

    pub fn internal(error: anyhow::Error) -> ApiError {
        tracing::error!(error = %format!("{error:#}"), "relay request failed");
        if error.downcast_ref::<crate::outbox::Busy>().is_some() {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "The relay is storing too many messages at once; this one was not stored.",
                "Retry in a moment.",
            );
        }
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_failed",
            "The message could not be stored, so it was not accepted.",
            "Retry in a moment; if it repeats, check the disk and the relay's log.",
        )
    }

    pub fn unknown_profile(name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_profile",
            format!("Profile '{name}' not found."),
            "Run `herald profile list` to see the profiles, or create one with `herald profile add`.",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": { "code": self.code, "message": self.message, "hint": self.hint }
        });
        (self.status, Json(body)).into_response()
    }
}

/// Converts a failure to JSON, in English with the Chinese text beside it.
pub fn failure_json(failure: &Failure) -> Value {
    let mut value = json!({
        "code": failure.code,
        "class": failure.class,
        "message": failure.message.en,
        "hint": failure.hint.en,
        "message_zh": failure.message.zh,
        "hint_zh": failure.hint.zh,
    });
    if let Some(errcode) = failure.upstream_errcode {
        value["upstream_errcode"] = json!(errcode);
    }
    if let Some(text) = &failure.upstream_message {
        value["upstream_message"] = json!(text);
    }
    if let Some(ip) = &failure.from_ip {
        value["from_ip"] = json!(ip);
    }
    value
}
