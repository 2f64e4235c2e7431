//! Request guards: loopback Host only, no browser origins, bearer token.
//!
//! A web page in the user's browser can send requests to 127.0.0.1. The
//! relay rejects any request with an `Origin` header (browsers add it to
//! cross-origin requests) and any `Host` other than the loopback names with
//! the relay's port (which defeats DNS rebinding).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::profile::store::constant_time_eq;

pub async fn loopback_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(header::ORIGIN) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "browser_origin",
            "Requests from web pages are rejected.",
            "Call the relay from a script or curl on this machine; browsers are not allowed.",
        )
        .into_response();
    }
    let Some(host) = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "missing_host",
            "The Host header is missing.",
            format!("Send HTTP/1.1 with `Host: 127.0.0.1:{}`.", state.port),
        )
        .into_response();
    };
    if !host_allowed(host, state.port) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "foreign_host",
            format!("Host '{host}' is not this relay."),
            format!(
                "Use http://127.0.0.1:{0} or http://localhost:{0}.",
                state.port
            ),
        )
        .into_response();
    }
    next.run(request).await
}

pub fn host_allowed(host: &str, port: u16) -> bool {
    let host = host.to_ascii_lowercase();
    let names = ["127.0.0.1", "[::1]", "localhost"];
    names
        .iter()
        .any(|name| host == format!("{name}:{port}") || (port == 80 && host == *name))
}

pub async fn bearer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            // The scheme name is case-insensitive (RFC 7235).
            let (scheme, token) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim);
    match presented {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            next.run(request).await
        }
        Some(_) => unauthorized("The access token is wrong."),
        None => unauthorized("The Authorization header with a Bearer access token is missing."),
    }
}

fn unauthorized(message: &str) -> Response {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        message,
        "Send `Authorization: Bearer TOKEN`; `herald token` prints the token, and relay.json in HERALD_HOME holds it.",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_with_port_allowed() {
        for host in [
            "127.0.0.1:7591",
            "[::1]:7591",
            "localhost:7591",
            "LOCALHOST:7591",
        ] {
            assert!(host_allowed(host, 7591), "{host}");
        }
    }

    #[test]
    fn foreign_hosts_rejected() {
        for host in [
            "evil.example:7591",
            "127.0.0.1:8080",
            "localhost",
            "",
            "127.0.0.1.nip.io:7591",
        ] {
            assert!(!host_allowed(host, 7591), "{host}");
        }
    }
}
