//! JSON control API under `/_fake/`, which lets a script or a shell drive the
//! fake the way the Rust API of `FakeWecom` does.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::state::default_errmsg;
use crate::{Fault, Route, Shared};

pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/_fake/apps", post(add_app))
        .route("/_fake/robots", post(add_robot))
        .route("/_fake/faults", post(push_fault))
        .route("/_fake/trusted_ip", post(set_trusted_ip))
        .route("/_fake/invalidate_tokens", post(invalidate_tokens))
        .route("/_fake/delay", post(set_delay))
        .route("/_fake/received", get(received))
        .route("/_fake/dropped", get(dropped))
        .route("/_fake/stats", get(stats))
        .route("/_fake/reset", post(reset))
}

fn ok() -> Response {
    Json(json!({"ok": true})).into_response()
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

#[derive(Deserialize)]
struct AppRequest {
    corp_id: String,
    secret: String,
    agent_id: i64,
    users: Vec<String>,
    #[serde(default)]
    parties: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
}

async fn add_app(State(shared): State<Shared>, Json(request): Json<AppRequest>) -> Response {
    let users: Vec<&str> = request.users.iter().map(String::as_str).collect();
    let parties: Vec<&str> = request.parties.iter().map(String::as_str).collect();
    let tags: Vec<&str> = request.tags.iter().map(String::as_str).collect();
    shared.lock().add_app(
        &request.corp_id,
        &request.secret,
        request.agent_id,
        &users,
        &parties,
        &tags,
    );
    ok()
}

#[derive(Deserialize)]
struct RobotRequest {
    key: String,
}

async fn add_robot(State(shared): State<Shared>, Json(request): Json<RobotRequest>) -> Response {
    shared.lock().add_robot(&request.key);
    ok()
}

#[derive(Deserialize)]
struct FaultSpec {
    kind: String,
    errcode: Option<i64>,
    errmsg: Option<String>,
    ms: Option<u64>,
}

#[derive(Deserialize)]
struct FaultRequest {
    route: String,
    fault: FaultSpec,
    times: usize,
}

fn parse_route(name: &str) -> Result<Route, String> {
    match name {
        "gettoken" => Ok(Route::GetToken),
        "message" => Ok(Route::Message),
        "webhook" => Ok(Route::Webhook),
        _ => Err(format!(
            "invalid route {name:?}: expected \"gettoken\", \"message\" or \"webhook\""
        )),
    }
}

fn parse_fault(spec: FaultSpec) -> Result<Fault, String> {
    match spec.kind.as_str() {
        "http500" => Ok(Fault::Http500),
        "not_json" => Ok(Fault::NotJson),
        "drop" => Ok(Fault::Drop),
        "delay" => {
            let ms = spec
                .ms
                .ok_or("fault kind \"delay\" requires \"ms\" (milliseconds)")?;
            Ok(Fault::Delay(Duration::from_millis(ms)))
        }
        "errcode" => {
            let errcode = spec
                .errcode
                .ok_or("fault kind \"errcode\" requires \"errcode\"")?;
            let errmsg = spec
                .errmsg
                .unwrap_or_else(|| default_errmsg(errcode).to_string());
            Ok(Fault::Errcode(errcode, errmsg))
        }
        other => Err(format!(
            "invalid fault kind {other:?}: expected \"http500\", \"not_json\", \"errcode\", \"delay\" or \"drop\""
        )),
    }
}

async fn push_fault(State(shared): State<Shared>, Json(request): Json<FaultRequest>) -> Response {
    let route = match parse_route(&request.route) {
        Ok(route) => route,
        Err(message) => return bad_request(message),
    };
    let fault = match parse_fault(request.fault) {
        Ok(fault) => fault,
        Err(message) => return bad_request(message),
    };
    shared.lock().push_fault(route, fault, request.times);
    ok()
}

#[derive(Deserialize)]
struct TrustedIpRequest {
    reported_ip: Option<String>,
}

async fn set_trusted_ip(
    State(shared): State<Shared>,
    Json(request): Json<TrustedIpRequest>,
) -> Response {
    shared.lock().trusted_ip = request.reported_ip;
    ok()
}

#[derive(Deserialize)]
struct InvalidateRequest {
    errcode: i64,
}

async fn invalidate_tokens(
    State(shared): State<Shared>,
    Json(request): Json<InvalidateRequest>,
) -> Response {
    shared.lock().invalidate_tokens(request.errcode);
    ok()
}

#[derive(Deserialize)]
struct DelayRequest {
    ms: u64,
}

async fn set_delay(State(shared): State<Shared>, Json(request): Json<DelayRequest>) -> Response {
    shared.lock().config.delay = Duration::from_millis(request.ms);
    ok()
}

async fn received(State(shared): State<Shared>) -> Response {
    Json(shared.lock().received.clone()).into_response()
}

async fn dropped(State(shared): State<Shared>) -> Response {
    Json(shared.lock().dropped.clone()).into_response()
}

async fn stats(State(shared): State<Shared>) -> Response {
    Json(shared.lock().stats.clone()).into_response()
}

async fn reset(State(shared): State<Shared>) -> Response {
    shared.lock().reset();
    ok()
}
