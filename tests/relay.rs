//! The relay over real sockets: guards, input errors, `?wait=true`, the
//! WeCom-robot-compatible endpoint, crash recovery and shutdown.

mod support;

use std::time::{Duration, Instant};

use fake_wecom::{FakeWecom, Fault, Route};
use support::herald::http::{Client, Response};
use support::herald::{free_port, Home, Relay};

fn post(relay: &Relay, path: &str, body: &[u8]) -> Response {
    Client
        .post(format!("{}{path}", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .header("Content-Type", "application/json")
        .body(body.to_vec())
        .send()
        .expect("relay answers")
}

fn error_code(response: &Response) -> String {
    response.json()["error"]["code"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

/// Starts a relay with a robot profile `bot` (the default) and an app
/// profile.
async fn relay_with_profiles() -> (FakeWecom, Home, Relay) {
    let fake = FakeWecom::start().await;
    fake.add_robot("robot-key-1");
    fake.add_app("ww1", "app-secret-1", 1000002, &["alice"], &[], &[]);
    let home = Home::new();
    home.add_bot("bot", &fake.base_url(), "robot-key-1");
    home.add_app("app", &fake.base_url(), "app-secret-1", "alice", &[]);
    home.ok(&["profile", "default", "bot"], "");
    let relay = Relay::start(&home);
    (fake, home, relay)
}

async fn wait_until(mut done: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_needs_no_token() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    let response = Client.get(format!("{}/health", relay.url)).send().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json()["status"], "ok");
    assert_eq!(response.json()["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_json_describes_relay() {
    let (_fake, home, relay) = relay_with_profiles().await;
    let text = std::fs::read_to_string(home.path().join("relay.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["url"], relay.url);
    assert_eq!(value["token"], relay.token);
    assert_eq!(value["pid"], relay.child.id());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.path().join("relay.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_rejects_missing_or_wrong_token() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    let missing = Client
        .post(format!("{}/v1/send", relay.url))
        .body(r#"{"text":"x"}"#)
        .send()
        .unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(error_code(&missing), "unauthorized");
    assert!(missing.json()["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("herald token"));

    let wrong = Client
        .post(format!("{}/v1/send", relay.url))
        .header("Authorization", "Bearer not-the-token")
        .body(r#"{"text":"x"}"#)
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_origin_is_forbidden() {
    let (fake, _home, relay) = relay_with_profiles().await;
    let response = Client
        .post(format!("{}/v1/send", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .header("Origin", "http://127.0.0.1:8080")
        .body(r#"{"text":"from a web page"}"#)
        .send()
        .unwrap();
    assert_eq!(response.status(), 403);
    assert_eq!(error_code(&response), "browser_origin");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_is_forbidden() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    for host in ["attacker.example", "attacker.example:80", "127.0.0.1:1"] {
        let response = Client
            .post(format!("{}/v1/send", relay.url))
            .header("Host", host)
            .header("Authorization", &format!("Bearer {}", relay.token))
            .body(r#"{"text":"rebinding"}"#)
            .send()
            .unwrap();
        assert_eq!(response.status(), 403, "Host {host}");
        assert_eq!(error_code(&response), "foreign_host");
    }
    let localhost = Client
        .get(format!("{}/health", relay.url))
        .header("Host", &format!("localhost:{}", relay.port))
        .send()
        .unwrap();
    assert_eq!(localhost.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_is_served() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    if std::net::TcpStream::connect(("::1", relay.port)).is_err() {
        eprintln!("IPv6 loopback unavailable on this machine; nothing to check");
        return;
    }
    let response = Client
        .get(format!("http://[::1]:{}/health", relay.port))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_gets_clear_400() {
    let (_fake, home, relay) = relay_with_profiles().await;
    let cases: [(&[u8], &str); 6] = [
        (b"{not json", "bad_json"),
        (br#"{"text":"x","profle":"bot"}"#, "bad_json"),
        (br#"{"text":""}"#, "empty_text"),
        (br#"{"text":"x","format":"html"}"#, "bad_format"),
        (br#"{"title":"no text"}"#, "bad_json"),
        (b"{\"text\":\"\xff\xfe\"}", "bad_json"),
    ];
    for (body, code) in cases {
        let response = post(&relay, "/v1/send", body);
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(
            error_code(&response),
            code,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(!response.json()["error"]["hint"]
            .as_str()
            .unwrap()
            .is_empty());
    }
    assert!(
        home.history().is_empty(),
        "rejected input must not be stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_profile_is_404() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    let json = post(&relay, "/v1/send", br#"{"text":"x","profile":"ghost"}"#);
    assert_eq!(json.status(), 404);
    assert_eq!(error_code(&json), "unknown_profile");
    assert!(json.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ghost"));

    let text = post(&relay, "/v1/send/ghost", b"x");
    assert_eq!(text.status(), 404);
    let message = Client
        .get(format!("{}/v1/messages/0000", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .send()
        .unwrap();
    assert_eq!(message.status(), 404);
    assert_eq!(error_code(&message), "unknown_message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_limit_is_413() {
    let (_fake, home, relay) = relay_with_profiles().await;
    let text = "x".repeat((1 << 20) + 1);
    let response = post(&relay, "/v1/send/bot", text.as_bytes());
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(&response), "body_too_large");
    assert!(home.history().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_endpoint_decodes_charsets() {
    let (fake, _home, relay) = relay_with_profiles().await;
    let (gbk, _, _) = encoding_rs::GBK.encode("止损触发");
    let response = Client
        .post(format!("{}/v1/send/bot?wait=true", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .header("Content-Type", "text/plain; charset=gbk")
        .header("Title", "风控")
        .body(gbk.into_owned())
        .send()
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["status"], "delivered");
    assert_eq!(fake.received()[0].content, "风控\n止损触发");

    let invalid = Client
        .post(format!("{}/v1/send/bot", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .header("Content-Type", "text/plain")
        .body(b"ok \xff\xfe".to_vec())
        .send()
        .unwrap();
    assert_eq!(invalid.status(), 400);
    assert_eq!(error_code(&invalid), "bad_encoding");
    assert!(invalid.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("offset 3"));

    let unknown = Client
        .post(format!("{}/v1/send/bot", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .header("Content-Type", "text/plain; charset=klingon")
        .body(b"x".to_vec())
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_eq!(error_code(&unknown), "bad_charset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_delivery_and_message_endpoint_agrees() {
    let (fake, _home, relay) = relay_with_profiles().await;
    let response = post(
        &relay,
        "/v1/send?wait=true",
        br#"{"text":"order filled","title":"600519"}"#,
    );
    assert_eq!(response.status(), 200);
    let body = response.json();
    assert_eq!(body["status"], "delivered");
    assert_eq!(body["profile"], "bot");
    assert_eq!(body["attempts"], 1);
    assert_eq!(fake.received()[0].content, "600519\norder filled");

    let id = body["id"].as_str().unwrap();
    let message = Client
        .get(format!("{}/v1/messages/{id}", relay.url))
        .header("Authorization", &format!("Bearer {}", relay.token))
        .send()
        .unwrap();
    assert_eq!(message.status(), 200);
    assert_eq!(message.json()["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_reports_60020_with_ip() {
    let (fake, _home, relay) = relay_with_profiles().await;
    fake.set_trusted_ip_check(Some("203.0.113.7"));
    let response = post(
        &relay,
        "/v1/send?wait=true",
        br#"{"text":"stop hit","profile":"app"}"#,
    );
    assert_eq!(response.status(), 502);
    let body = response.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["attempts"], 1);
    assert_eq!(body["error"]["upstream_errcode"], 60020);
    assert_eq!(body["error"]["from_ip"], "203.0.113.7");
    assert!(body["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("203.0.113.7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_send_answers_202_at_once() {
    let (fake, _home, relay) = relay_with_profiles().await;
    fake.push_fault(Route::Webhook, Fault::Delay(Duration::from_secs(2)), 1);
    let started = Instant::now();
    let response = post(&relay, "/v1/send", br#"{"text":"queued"}"#);
    assert_eq!(response.status(), 202);
    assert_eq!(response.json()["status"], "queued");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_endpoint_is_wecom_compatible() {
    let (fake, home, relay) = relay_with_profiles().await;
    let key = home.relay_key("bot");
    let url = |key: &str| format!("{}/cgi-bin/webhook/send?key={key}", relay.url);

    let ok = Client
        .post(url(&key))
        .body(r#"{"msgtype":"markdown","markdown":{"content":"**filled** 600519"}}"#)
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json()["errcode"], 0);
    assert!(wait_until(|| fake.received().len() == 1, Duration::from_secs(5)).await);
    assert_eq!(fake.received()[0].msgtype, "markdown");
    assert_eq!(fake.received()[0].content, "**filled** 600519");

    let unknown = Client
        .post(url("wrong"))
        .body(r#"{"msgtype":"text","text":{"content":"x"}}"#)
        .send()
        .unwrap();
    assert_eq!(unknown.json()["errcode"], 93000);
    let broken = Client.post(url(&key)).body("{oops").send().unwrap();
    assert_eq!(broken.json()["errcode"], 40058);
    let image = Client
        .post(url(&key))
        .body(r#"{"msgtype":"image","image":{}}"#)
        .send()
        .unwrap();
    assert_eq!(image.json()["errcode"], 40008);
    let empty = Client
        .post(url(&key))
        .body(r#"{"msgtype":"text","text":{"content":" "}}"#)
        .send()
        .unwrap();
    assert_eq!(empty.json()["errcode"], 44004);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relay_delivers_acknowledged_messages() {
    let (fake, home, relay) = relay_with_profiles().await;
    // The robot stalls on the first request, so one message is in flight
    // and the rest wait in the outbox when the relay is killed.
    fake.push_fault(Route::Webhook, Fault::Delay(Duration::from_secs(30)), 1);
    let mut texts = Vec::new();
    for index in 0..15 {
        let text = format!("notice {index:02}");
        let response = post(
            &relay,
            "/v1/send",
            format!(r#"{{"text":"{text}"}}"#).as_bytes(),
        );
        assert_eq!(response.status(), 202);
        texts.push(text);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.kill();

    fake.reset();
    let relay = Relay::start(&home);
    let delivered = wait_until(
        || {
            let received: String = fake
                .received()
                .iter()
                .map(|r| r.content.clone())
                .collect::<Vec<_>>()
                .join("\n");
            texts.iter().all(|t| received.contains(t.as_str()))
        },
        Duration::from_secs(30),
    )
    .await;
    assert!(delivered, "received: {:?}", fake.received());
    let history = home.history();
    assert_eq!(history.len(), 15);
    assert!(
        history.iter().all(|m| m["status"] == "delivered"),
        "{history:#?}"
    );
    drop(relay);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly() {
    let (_fake, home, relay) = relay_with_profiles().await;
    let (code, stderr) = relay.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!home.path().join("relay.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ports_are_rejected() {
    let home = Home::new();
    let output = home
        .command()
        .env("HERALD_PORT", "seventy")
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid HERALD_PORT 'seventy'"));

    let output = home
        .command()
        .args(["serve", "--port", "70000"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = home
        .command()
        .args(["serve", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} is already in use")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_relay_on_same_home_refuses() {
    let (_fake, home, _relay) = relay_with_profiles().await;
    let port = free_port();
    let output = home
        .command()
        .args(["serve", "--port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already running"));
}

/// Twenty-five notices to one robot within seconds, as at market open: the
/// robot takes 20 a minute, so Herald sends 20, then merges the rest into
/// one message after the window. This test waits for that window (~60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_respects_robot_limit_and_merges() {
    let (fake, home, relay) = relay_with_profiles().await;
    let started = Instant::now();
    let mut texts = Vec::new();
    for index in 0..25 {
        let text = format!("fill {index:02}");
        let response = post(
            &relay,
            "/v1/send",
            format!(r#"{{"text":"{text}"}}"#).as_bytes(),
        );
        assert_eq!(response.status(), 202);
        texts.push(text);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(wait_until(|| fake.received().len() >= 20, Duration::from_secs(20)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fake.received().len(),
        20,
        "no more than 20 within the first minute"
    );

    let all = wait_until(
        || {
            let received: String = fake
                .received()
                .iter()
                .map(|r| r.content.clone())
                .collect::<Vec<_>>()
                .join("\n");
            texts.iter().all(|t| received.contains(t.as_str()))
        },
        Duration::from_secs(80),
    )
    .await;
    assert!(all, "received: {:?}", fake.received());
    let received = fake.received();
    assert_eq!(
        received.len(),
        21,
        "the last five arrive merged into one message"
    );
    assert!(received[20].at_ms - received[0].at_ms >= 60_000);
    assert_eq!(
        fake.stats().webhook_calls,
        21,
        "no request was answered 45009"
    );
    let history = home.history();
    assert!(history.iter().all(|m| m["status"] == "delivered"));
    assert_eq!(
        history
            .iter()
            .filter(|m| !m["merged_with"].is_null())
            .count(),
        5
    );
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried() {
    let (fake, home, relay) = relay_with_profiles().await;
    fake.push_fault(Route::Webhook, Fault::Http500, 1);
    fake.push_fault(Route::Webhook, Fault::NotJson, 1);
    let response = post(&relay, "/v1/send?wait=true", br#"{"text":"retry me"}"#);
    assert_eq!(
        response.status(),
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["status"], "delivered");
    assert_eq!(response.json()["attempts"], 3);
    assert_eq!(fake.received().len(), 1);
    let history = home.history();
    let log = history[0]["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0]["outcome"], "failed");
    assert_eq!(log[0]["error"]["upstream_errcode"], 500);
    assert_eq!(log[1]["outcome"], "failed");
    assert_eq!(log[2]["outcome"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_secret_keeps_message_queued() {
    let (fake, home, relay) = relay_with_profiles().await;
    std::fs::write(home.path().join("secrets.json"), "{}").unwrap();
    let response = post(&relay, "/v1/send", br#"{"text":"waits for its secret"}"#);
    assert_eq!(response.status(), 202);
    let id = response.json()["id"].as_str().unwrap().to_owned();

    let named = wait_until(
        || {
            home.history()
                .iter()
                .any(|m| m["id"] == id.as_str() && m["error"]["code"] == "secret_unavailable")
        },
        Duration::from_secs(10),
    )
    .await;
    assert!(named, "{:#?}", home.history());
    let record = home
        .history()
        .into_iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap();
    assert_eq!(record["status"], "queued");
    assert!(record["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'bot'"));
    assert!(fake.received().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_wait_never_reports_queued_as_ok() {
    let (fake, home, relay) = relay_with_profiles().await;
    fake.push_fault(Route::Webhook, Fault::Http500, 1_000);
    let key = home.relay_key("bot");
    let started = Instant::now();
    let response = Client
        .post(format!(
            "{}/cgi-bin/webhook/send?key={key}&wait=true",
            relay.url
        ))
        .body(r#"{"msgtype":"text","text":{"content":"not yet"}}"#)
        .send()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(29),
        "answered after {:?}",
        started.elapsed()
    );
    let body = response.json();
    assert_eq!(body["errcode"], 1, "{body}");
    assert!(body["errmsg"]
        .as_str()
        .unwrap()
        .contains("not delivered yet"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_text_is_rejected_up_front() {
    let (_fake, home, relay) = relay_with_profiles().await;
    // 11 robot text parts of at most 2,048 bytes each.
    let text = "行情更新\n".repeat(1_600);
    let response = post(&relay, "/v1/send/bot", text.as_bytes());
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(&response), "message_too_long");
    assert!(response.json()["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("email"));
    assert!(home.history().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_answer_json() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    let missing = Client
        .get(format!("{}/nothing/here", relay.url))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(&missing), "not_found");
    let wrong = Client.get(format!("{}/v1/send", relay.url)).send().unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(error_code(&wrong), "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_scheme_is_case_insensitive() {
    let (_fake, _home, relay) = relay_with_profiles().await;
    let response = Client
        .post(format!("{}/v1/send", relay.url))
        .header("Authorization", &format!("bearer {}", relay.token))
        .body(r#"{"text":"lowercase scheme"}"#)
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
}
