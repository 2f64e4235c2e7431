//! Tests of the fake WeCom routes through real HTTP on loopback.

use std::time::{Duration, Instant};

use fake_wecom::{Config, FakeWecom, Fault, Route};
use serde_json::{json, Value};

const CORP: &str = "ww-test-corp";
const SECRET: &str = "app-secret";
const AGENT: i64 = 1000002;
const ROBOT_KEY: &str = "robot-key-1";

/// Starts a fake with one app (members alice and bob, party 1, tag 7) and one robot.
async fn start(config: Config) -> FakeWecom {
    let fake = FakeWecom::start_with(config).await;
    fake.add_app(CORP, SECRET, AGENT, &["Alice", "bob"], &["1"], &["7"]);
    fake.add_robot(ROBOT_KEY);
    fake
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    let http_response = client.get(url).send().await.expect("GET failed");
    assert_eq!(http_response.status(), 200);
    http_response.json().await.expect("response is not JSON")
}

async fn post_json(client: &reqwest::Client, url: String, body: &Value) -> Value {
    let http_response = client
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST failed");
    assert_eq!(http_response.status(), 200);
    http_response.json().await.expect("response is not JSON")
}

async fn get_token(client: &reqwest::Client, fake: &FakeWecom) -> String {
    let url = format!(
        "{}/cgi-bin/gettoken?corpid={CORP}&corpsecret={SECRET}",
        fake.base_url()
    );
    let response = get_json(client, url).await;
    assert_eq!(response["errcode"], 0, "gettoken failed: {response}");
    response["access_token"].as_str().unwrap().to_string()
}

async fn send_app(client: &reqwest::Client, fake: &FakeWecom, token: &str, body: &Value) -> Value {
    let url = format!(
        "{}/cgi-bin/message/send?access_token={token}",
        fake.base_url()
    );
    post_json(client, url, body).await
}

async fn send_robot(client: &reqwest::Client, fake: &FakeWecom, key: &str, body: &Value) -> Value {
    let url = format!("{}/cgi-bin/webhook/send?key={key}", fake.base_url());
    post_json(client, url, body).await
}

fn text_to(touser: &str, content: &str) -> Value {
    json!({"touser": touser, "msgtype": "text", "agentid": AGENT, "text": {"content": content}})
}

/// Checks that `errmsg` is `prefix` followed by WeCom's hint suffix for `errcode`.
fn assert_errmsg(response: &Value, errcode: i64, prefix: &str, ip: &str) {
    assert_eq!(response["errcode"], errcode, "response: {response}");
    let errmsg = response["errmsg"].as_str().expect("errmsg is not a string");
    let rest = errmsg
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(", hint: ["))
        .unwrap_or_else(|| panic!("errmsg {errmsg:?} does not start with {prefix:?}, hint: ["));
    let (digits, tail) = rest.split_once(']').expect("hint has no closing bracket");
    assert_eq!(digits.len(), 25, "hint {digits:?} is not 25 digits");
    assert!(
        digits.bytes().all(|b| b.is_ascii_digit()),
        "hint {digits:?}"
    );
    let expected_tail = format!(
        ", from ip: {ip}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    );
    assert_eq!(tail, expected_tail);
}

#[tokio::test]
async fn gettoken_success_reuses_token() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/cgi-bin/gettoken?corpid={CORP}&corpsecret={SECRET}",
        fake.base_url()
    );

    let first = get_json(&client, url.clone()).await;
    assert_eq!(first["errcode"], 0);
    assert_eq!(first["errmsg"], "ok");
    assert_eq!(first["expires_in"], 7200);
    let token = first["access_token"].as_str().unwrap();
    assert!(!token.is_empty());

    let second = get_json(&client, url).await;
    assert_eq!(second["access_token"], token);
    assert_eq!(fake.stats().token_calls, 2);
}

#[tokio::test]
async fn gettoken_errors() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let base = fake.base_url();
    let cases = [
        (
            format!("corpid=unknown&corpsecret={SECRET}"),
            40013,
            "invalid corpid",
        ),
        (
            format!("corpid={CORP}&corpsecret=wrong"),
            40001,
            "invalid credential",
        ),
        (format!("corpsecret={SECRET}"), 41002, "corpid missing"),
        (format!("corpid={CORP}"), 41004, "corpsecret missing"),
    ];
    for (query, errcode, errmsg) in cases {
        let response = get_json(&client, format!("{base}/cgi-bin/gettoken?{query}")).await;
        assert_errmsg(&response, errcode, errmsg, "127.0.0.1");
        assert!(
            response.get("access_token").is_none(),
            "response: {response}"
        );
    }
}

#[tokio::test]
async fn message_send_success() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    let response = send_app(&client, &fake, &token, &text_to("alice", "disk full")).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(response["errmsg"], "ok");
    assert_eq!(response["invaliduser"], "");
    assert_eq!(response["invalidparty"], "");
    assert_eq!(response["invalidtag"], "");
    assert_eq!(response["unlicenseduser"], "");
    assert!(!response["msgid"].as_str().unwrap().is_empty());

    let markdown = json!({
        "touser": "@all", "msgtype": "markdown", "agentid": AGENT,
        "markdown": {"content": "**up**"},
    });
    let response = send_app(&client, &fake, &token, &markdown).await;
    assert_eq!(response["errcode"], 0);

    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].kind, "app");
    assert_eq!(received[0].target, AGENT.to_string());
    assert_eq!(received[0].msgtype, "text");
    assert_eq!(received[0].content, "disk full");
    assert_eq!(received[0].content_bytes, 9);
    assert_eq!(received[0].touser, "alice");
    assert!(received[0].at_ms > 0);
    assert_eq!(received[1].msgtype, "markdown");
    assert_eq!(received[1].touser, "@all");
    assert_eq!(fake.stats().message_calls, 2);
}

#[tokio::test]
async fn message_truncated_mid_character() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    // 1 + 700 * 3 = 2101 bytes; byte 2048 falls inside the 683rd "中".
    let content = format!("a{}", "中".repeat(700));
    let response = send_app(&client, &fake, &token, &text_to("alice", &content)).await;
    assert_eq!(response["errcode"], 0);

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].content_bytes, 2048);
    let expected = format!("a{}\u{FFFD}", "中".repeat(682));
    assert_eq!(received[0].content, expected);
}

#[tokio::test]
async fn message_at_limit_not_truncated() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    let content = "x".repeat(2048);
    let response = send_app(&client, &fake, &token, &text_to("alice", &content)).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received()[0].content, content);
}

#[tokio::test]
async fn message_invalid_recipients() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    let body = json!({
        "touser": "Alice|Carol|DAVE", "toparty": "1|9", "totag": "7|8",
        "msgtype": "text", "agentid": AGENT, "text": {"content": "hello"},
    });
    let response = send_app(&client, &fake, &token, &body).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(response["invaliduser"], "carol|dave");
    assert_eq!(response["invalidparty"], "9");
    assert_eq!(response["invalidtag"], "8");

    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].touser, "alice");
    assert_eq!(received[0].toparty, "1");
    assert_eq!(received[0].totag, "7");
}

#[tokio::test]
async fn message_all_recipients_invalid() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    let body = json!({
        "touser": "carol", "toparty": "9", "totag": "8",
        "msgtype": "text", "agentid": AGENT, "text": {"content": "hello"},
    });
    let response = send_app(&client, &fake, &token, &body).await;
    assert_errmsg(
        &response,
        81013,
        "user & party & tag all invalid",
        "127.0.0.1",
    );
    assert_eq!(response["invaliduser"], "carol");
    assert_eq!(response["invalidparty"], "9");
    assert_eq!(response["invalidtag"], "8");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn message_request_errors() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;
    let base = fake.base_url();

    let missing = post_json(
        &client,
        format!("{base}/cgi-bin/message/send"),
        &text_to("alice", "x"),
    )
    .await;
    assert_errmsg(&missing, 41001, "access_token missing", "127.0.0.1");

    let unknown = send_app(&client, &fake, "no-such-token", &text_to("alice", "x")).await;
    assert_errmsg(&unknown, 40014, "invalid access_token", "127.0.0.1");

    let not_json = client
        .post(format!("{base}/cgi-bin/message/send?access_token={token}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 200);
    let not_json: Value = not_json.json().await.unwrap();
    assert_eq!(not_json["errcode"], 40058);
    assert!(not_json["errmsg"]
        .as_str()
        .unwrap()
        .contains("Warning: wrong json format."));

    let cases = [
        (
            json!({"touser": "alice", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}),
            40056,
            "invalid agentid",
        ),
        (
            json!({"touser": "alice", "msgtype": "text", "agentid": "1000002", "text": {"content": "x"}}),
            40056,
            "invalid agentid",
        ),
        (
            json!({"touser": "alice", "msgtype": "text", "text": {"content": "x"}}),
            40056,
            "invalid agentid",
        ),
        (
            json!({"touser": "alice", "msgtype": "image", "agentid": AGENT, "image": {"media_id": "m"}}),
            40008,
            "invalid message type",
        ),
        (
            json!({"touser": "alice", "msgtype": "text", "agentid": AGENT, "text": {"content": ""}}),
            44004,
            "empty content",
        ),
        (
            json!({"touser": "alice", "msgtype": "markdown", "agentid": AGENT}),
            44004,
            "empty content",
        ),
    ];
    for (body, errcode, errmsg) in cases {
        let response = send_app(&client, &fake, &token, &body).await;
        assert_errmsg(&response, errcode, errmsg, "127.0.0.1");
    }
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn trusted_ip_check_errmsg() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    fake.set_trusted_ip_check(Some("203.0.113.7"));

    let token = get_token(&client, &fake).await;
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_errmsg(
        &response,
        60020,
        "not allow to access from your ip",
        "203.0.113.7",
    );

    fake.set_trusted_ip_check(Some(""));
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_errmsg(
        &response,
        60020,
        "not allow to access from your ip",
        "127.0.0.1",
    );
    assert!(fake.received().is_empty());

    fake.set_trusted_ip_check(None);
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test]
async fn robot_length_limits() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let markdown =
        |content: String| json!({"msgtype": "markdown", "markdown": {"content": content}});
    let text = |content: String| json!({"msgtype": "text", "text": {"content": content, "mentioned_list": ["@all"]}});

    let response = send_robot(&client, &fake, ROBOT_KEY, &markdown("m".repeat(4096))).await;
    assert_eq!(response, json!({"errcode": 0, "errmsg": "ok"}));
    let response = send_robot(&client, &fake, ROBOT_KEY, &markdown("m".repeat(4097))).await;
    assert_errmsg(
        &response,
        40058,
        "markdown.content exceed max length 4096. invalid Request Parameter",
        "127.0.0.1",
    );

    let response = send_robot(&client, &fake, ROBOT_KEY, &text("t".repeat(2048))).await;
    assert_eq!(response["errcode"], 0);
    let response = send_robot(&client, &fake, ROBOT_KEY, &text("t".repeat(2049))).await;
    assert_errmsg(
        &response,
        40058,
        "text.content exceed max length 2048. invalid Request Parameter",
        "127.0.0.1",
    );

    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].kind, "robot");
    assert_eq!(received[0].target, ROBOT_KEY);
    assert_eq!(received[0].msgtype, "markdown");
    assert_eq!(received[0].content_bytes, 4096);
    assert_eq!(received[1].msgtype, "text");
    assert_eq!(fake.stats().webhook_calls, 4);
}

#[tokio::test]
async fn robot_request_errors() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let body = json!({"msgtype": "text", "text": {"content": "x"}});

    let response = send_robot(&client, &fake, "unknown-key", &body).await;
    assert_errmsg(&response, 93000, "invalid webhook url", "127.0.0.1");

    let no_key = post_json(
        &client,
        format!("{}/cgi-bin/webhook/send", fake.base_url()),
        &body,
    )
    .await;
    assert_eq!(no_key["errcode"], 93000);

    let image = json!({"msgtype": "image", "image": {"base64": "", "md5": ""}});
    let response = send_robot(&client, &fake, ROBOT_KEY, &image).await;
    assert_eq!(response["errcode"], 40008);

    let empty = json!({"msgtype": "text", "text": {"content": ""}});
    let response = send_robot(&client, &fake, ROBOT_KEY, &empty).await;
    assert_eq!(response["errcode"], 44004);
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn robot_rate_limit_window() {
    let config = Config {
        window: Duration::from_secs(1),
        ..Config::default()
    };
    let fake = start(config).await;
    let client = reqwest::Client::new();
    let body = json!({"msgtype": "text", "text": {"content": "tick"}});

    let started = Instant::now();
    for n in 1..=20 {
        let response = send_robot(&client, &fake, ROBOT_KEY, &body).await;
        assert_eq!(response["errcode"], 0, "message {n}: {response}");
    }
    let response = send_robot(&client, &fake, ROBOT_KEY, &body).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "test too slow for its window"
    );
    assert_errmsg(&response, 45009, "api freq out of limit", "127.0.0.1");
    assert_eq!(fake.received().len(), 20);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = send_robot(&client, &fake, ROBOT_KEY, &body).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received().len(), 21);
}

#[tokio::test]
async fn member_limit_drops_silently() {
    let config = Config {
        window: Duration::from_secs(5),
        ..Config::default()
    };
    let fake = start(config).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    for n in 1..=30 {
        let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
        assert_eq!(response["errcode"], 0, "message {n}: {response}");
    }
    let response = send_app(&client, &fake, &token, &text_to("alice", "31st")).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received().len(), 30);
    let dropped = fake.dropped();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].content, "31st");
    assert_eq!(dropped[0].touser, "alice");
    assert_eq!(fake.stats().dropped, 1);

    // bob is under the limit, so only alice's copy is dropped.
    let response = send_app(&client, &fake, &token, &text_to("alice|bob", "both")).await;
    assert_eq!(response["errcode"], 0);
    let received = fake.received();
    assert_eq!(received.len(), 31);
    assert_eq!(received[30].touser, "bob");
    let dropped = fake.dropped();
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[1].touser, "alice");
    assert_eq!(dropped[1].content, "both");
}

#[tokio::test]
async fn member_hour_limit_drops() {
    // A window this short never contains a delivery, so only the hour limit acts.
    let config = Config {
        window: Duration::from_nanos(1),
        ..Config::default()
    };
    let fake = start(config).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;

    for n in 1..=1000 {
        let response = send_app(&client, &fake, &token, &text_to("bob", "x")).await;
        assert_eq!(response["errcode"], 0, "message {n}: {response}");
    }
    assert!(fake.dropped().is_empty());
    let response = send_app(&client, &fake, &token, &text_to("bob", "x")).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received().len(), 1000);
    assert_eq!(fake.dropped().len(), 1);
}

#[tokio::test]
async fn faults_apply_exactly_n_times() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;
    let url = format!(
        "{}/cgi-bin/message/send?access_token={token}",
        fake.base_url()
    );
    let body = text_to("alice", "x");

    fake.push_fault(Route::Message, Fault::Http500, 2);
    fake.push_fault(Route::Message, Fault::NotJson, 1);
    fake.push_fault(Route::Message, Fault::Errcode(-1, "system busy".into()), 1);
    fake.push_fault(Route::Message, Fault::Errcode(99999, "unknown".into()), 1);

    for _ in 0..2 {
        let http_response = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(http_response.status(), 500);
        assert!(http_response.text().await.unwrap().contains("<html>"));
    }
    let http_response = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(http_response.status(), 200);
    assert_eq!(http_response.text().await.unwrap(), "<html>busy</html>");

    let response = send_app(&client, &fake, &token, &body).await;
    assert_errmsg(&response, -1, "system busy", "127.0.0.1");
    let response = send_app(&client, &fake, &token, &body).await;
    assert_errmsg(&response, 99999, "unknown", "127.0.0.1");
    assert!(fake.received().is_empty());

    let response = send_app(&client, &fake, &token, &body).await;
    assert_eq!(response["errcode"], 0);
    assert_eq!(fake.received().len(), 1);
    assert_eq!(fake.stats().message_calls, 6);
}

#[tokio::test]
async fn fault_drop_closes_connection() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    fake.push_fault(Route::GetToken, Fault::Drop, 1);
    let url = format!(
        "{}/cgi-bin/gettoken?corpid={CORP}&corpsecret={SECRET}",
        fake.base_url()
    );

    let error = client.get(&url).send().await.unwrap_err();
    assert!(!error.is_timeout(), "error: {error}");
    assert_eq!(fake.stats().token_calls, 1);

    let response = get_json(&client, url).await;
    assert_eq!(response["errcode"], 0);
}

#[tokio::test]
async fn fault_delay_and_global_delay() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let body = json!({"msgtype": "text", "text": {"content": "x"}});

    fake.push_fault(Route::Webhook, Fault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    let response = send_robot(&client, &fake, ROBOT_KEY, &body).await;
    assert_eq!(response["errcode"], 0);
    assert!(started.elapsed() >= Duration::from_millis(300));

    fake.set_delay(Duration::from_millis(150));
    let started = Instant::now();
    let response = send_robot(&client, &fake, ROBOT_KEY, &body).await;
    assert_eq!(response["errcode"], 0);
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(fake.received().len(), 2);
}

#[tokio::test]
async fn invalidated_tokens_fail() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();

    let token = get_token(&client, &fake).await;
    fake.invalidate_tokens(40014);
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_errmsg(&response, 40014, "invalid access_token", "127.0.0.1");

    let second = get_token(&client, &fake).await;
    assert_ne!(second, token);
    fake.invalidate_tokens(42001);
    let response = send_app(&client, &fake, &second, &text_to("alice", "x")).await;
    assert_errmsg(&response, 42001, "access_token expired", "127.0.0.1");
    // A token keeps the errcode of its first invalidation.
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_eq!(response["errcode"], 40014);

    let third = get_token(&client, &fake).await;
    let response = send_app(&client, &fake, &third, &text_to("alice", "x")).await;
    assert_eq!(response["errcode"], 0);
}

#[tokio::test]
async fn token_expires_after_ttl() {
    let config = Config {
        token_ttl_secs: 1,
        ..Config::default()
    };
    let fake = start(config).await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/cgi-bin/gettoken?corpid={CORP}&corpsecret={SECRET}",
        fake.base_url()
    );
    let response = get_json(&client, url).await;
    assert_eq!(response["expires_in"], 1);
    let token = response["access_token"].as_str().unwrap().to_string();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_errmsg(&response, 42001, "access_token expired", "127.0.0.1");

    let fresh = get_token(&client, &fake).await;
    assert_ne!(fresh, token);
}

#[tokio::test]
async fn reset_keeps_apps_and_robots() {
    let fake = start(Config::default()).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &fake).await;
    send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    fake.push_fault(Route::Message, Fault::Http500, 5);

    fake.reset();
    assert!(fake.received().is_empty());
    assert_eq!(fake.stats().token_calls, 0);
    assert_eq!(fake.stats().message_calls, 0);

    let response = send_app(&client, &fake, &token, &text_to("alice", "x")).await;
    assert_eq!(response["errcode"], 0);
    let robot = json!({"msgtype": "text", "text": {"content": "x"}});
    let response = send_robot(&client, &fake, ROBOT_KEY, &robot).await;
    assert_eq!(response["errcode"], 0);
}

#[tokio::test]
async fn control_api_drives_fake() {
    let fake = FakeWecom::start().await;
    let client = reqwest::Client::new();
    let base = fake.base_url();
    let control = |path: &str| format!("{base}/_fake/{path}");

    let app = json!({"corp_id": "corp2", "secret": "s2", "agent_id": 5, "users": ["zoe"]});
    assert_eq!(post_json(&client, control("apps"), &app).await["ok"], true);
    let robot = json!({"key": "k2"});
    assert_eq!(
        post_json(&client, control("robots"), &robot).await["ok"],
        true
    );

    let token_url = format!("{base}/cgi-bin/gettoken?corpid=corp2&corpsecret=s2");
    let token = get_json(&client, token_url).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let message =
        json!({"touser": "zoe", "msgtype": "text", "agentid": 5, "text": {"content": "hi"}});
    let response = send_app(&client, &fake, &token, &message).await;
    assert_eq!(response["errcode"], 0);

    let fault =
        json!({"route": "webhook", "fault": {"kind": "errcode", "errcode": 45009}, "times": 1});
    post_json(&client, control("faults"), &fault).await;
    let robot_message = json!({"msgtype": "text", "text": {"content": "x"}});
    let response = send_robot(&client, &fake, "k2", &robot_message).await;
    assert_errmsg(&response, 45009, "api freq out of limit", "127.0.0.1");

    let bad_fault = json!({"route": "nowhere", "fault": {"kind": "drop"}, "times": 1});
    let http_response = client
        .post(control("faults"))
        .json(&bad_fault)
        .send()
        .await
        .unwrap();
    assert_eq!(http_response.status(), 400);

    post_json(
        &client,
        control("trusted_ip"),
        &json!({"reported_ip": "198.51.100.1"}),
    )
    .await;
    let response = send_app(&client, &fake, &token, &message).await;
    assert_errmsg(
        &response,
        60020,
        "not allow to access from your ip",
        "198.51.100.1",
    );
    post_json(
        &client,
        control("trusted_ip"),
        &json!({"reported_ip": null}),
    )
    .await;

    post_json(
        &client,
        control("invalidate_tokens"),
        &json!({"errcode": 42001}),
    )
    .await;
    let response = send_app(&client, &fake, &token, &message).await;
    assert_eq!(response["errcode"], 42001);

    post_json(&client, control("delay"), &json!({"ms": 0})).await;
    let received = get_json(&client, control("received")).await;
    assert_eq!(received.as_array().unwrap().len(), 1);
    assert_eq!(received[0]["content"], "hi");
    assert_eq!(received[0]["touser"], "zoe");
    let dropped = get_json(&client, control("dropped")).await;
    assert_eq!(dropped, json!([]));
    let stats = get_json(&client, control("stats")).await;
    assert_eq!(stats["token_calls"], 1);
    assert_eq!(stats["message_calls"], 3);
    assert_eq!(stats["webhook_calls"], 1);

    post_json(&client, control("reset"), &json!({})).await;
    let received = get_json(&client, control("received")).await;
    assert_eq!(received, json!([]));
}

#[tokio::test]
async fn start_on_rejects_non_loopback() {
    let addr = "0.0.0.0:0".parse().unwrap();
    let error = FakeWecom::start_on(addr, Config::default())
        .await
        .err()
        .expect("binding 0.0.0.0 must fail");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn drop_stops_server() {
    let fake = FakeWecom::start().await;
    let addr = fake.addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
