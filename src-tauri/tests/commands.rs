//! The Tauri commands, invoked through the IPC of Tauri's mock runtime.
//!
//! Each test opens its own app over a temporary Herald home. WeCom profiles
//! point at a fake WeCom server (`fake_wecom`) on 127.0.0.1 and use the
//! `none` proxy route, so no request leaves loopback. Email profiles are
//! only validated, never sent.

use fake_wecom::FakeWecom;
use herald::home::Home;
use herald_desktop::state::Desktop;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewWindow, WebviewWindowBuilder};
use tempfile::TempDir;

const CORP_ID: &str = "ww0000000000000001";
const APP_SECRET: &str = "app-secret-1";
const AGENT_ID: i64 = 1000002;
const FROM_IP: &str = "203.0.113.7";

/// An app with the desktop's plugins, state and commands over a temporary
/// home, and one webview to invoke commands from.
struct TestApp {
    webview: WebviewWindow<MockRuntime>,
    _app: App<MockRuntime>,
    _home: TempDir,
}

impl TestApp {
    /// Opens an app whose settings choose English, so the default test text
    /// and the command errors are in English.
    fn open() -> TestApp {
        // Every test sets the same value, so the process-wide variable never
        // changes between tests.
        std::env::set_var("HERALD_SECRET_STORE", "file");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("desktop-settings.json"),
            r#"{"language": "en"}"#,
        )
        .unwrap();
        let desktop = Desktop::open(Home::open(dir.path()).unwrap()).unwrap();
        let app = herald_desktop::register(mock_builder(), desktop)
            .build(mock_context(noop_assets()))
            .unwrap();
        let webview = WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap();
        TestApp {
            webview,
            _app: app,
            _home: dir,
        }
    }

    /// Invokes `command` with `args` as the web UI does. `get_ipc_response`
    /// blocks until the command returns, so it runs on a blocking thread and
    /// the fake server keeps serving on the test's runtime.
    async fn invoke(&self, command: &str, args: Value) -> Result<Value, Value> {
        let webview = self.webview.clone();
        let request = InvokeRequest {
            cmd: command.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        };
        tokio::task::spawn_blocking(move || {
            get_ipc_response(&webview, request).map(|body| body.deserialize::<Value>().unwrap())
        })
        .await
        .unwrap()
    }

    async fn list_profiles(&self) -> Vec<Value> {
        let profiles = self.invoke("list_profiles", json!({})).await.unwrap();
        profiles.as_array().unwrap().clone()
    }

    async fn profile(&self, name: &str) -> Value {
        self.list_profiles()
            .await
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("profile {name} is not listed"))
    }

    async fn send_test(&self, name: &str, text: Option<&str>) -> Value {
        self.invoke(
            "send_test",
            json!({ "name": name, "title": null, "text": text }),
        )
        .await
        .unwrap()
    }

    async fn history(&self, filter: Value) -> Vec<Value> {
        let messages = self
            .invoke("list_history", json!({ "filter": filter }))
            .await
            .unwrap();
        messages.as_array().unwrap().clone()
    }
}

async fn start_fake() -> FakeWecom {
    let fake = FakeWecom::start().await;
    fake.add_app(CORP_ID, APP_SECRET, AGENT_ID, &["alice", "bob"], &[], &[]);
    fake
}

/// Builds the form's input for a WeCom app profile that sends to `fake`.
fn app_input(name: &str, fake: &FakeWecom, secret: Option<&str>) -> Value {
    json!({
        "name": name,
        "kind": "wecom-app",
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "to_user": "alice",
        "api_base": fake.base_url(),
        "proxy": "none",
        "secret": secret,
    })
}

async fn save(app: &TestApp, input: Value) -> Value {
    app.invoke("save_profile", json!({ "input": input }))
        .await
        .unwrap()
}

/// Saves the app profile `name` with `APP_SECRET` and asserts that it was saved.
async fn save_app_profile(app: &TestApp, name: &str, fake: &FakeWecom) {
    let saved = save(app, app_input(name, fake, Some(APP_SECRET))).await;
    assert_eq!(saved["saved"], true, "{saved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_new_profile_without_secret() {
    let app = TestApp::open();
    let fake = start_fake().await;

    let saved = save(&app, app_input("ops", &fake, None)).await;

    assert_eq!(saved["saved"], false);
    assert_eq!(
        saved["errors"],
        json!([{
            "en": "The secret is missing: a new profile needs it.",
            "zh": "缺少密钥：新配置必须填写。",
        }])
    );
    assert_eq!(saved["profile"], Value::Null);
    assert!(app.list_profiles().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_without_secret_keeps_it() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    let before = app.profile("ops").await;

    let mut edited = app_input("ops", &fake, None);
    edited["to_user"] = json!("bob");
    let saved = save(&app, edited).await;

    assert_eq!(saved["saved"], true, "{saved}");
    assert_eq!(saved["profile"]["to_user"], json!(["bob"]));
    let after = app.profile("ops").await;
    assert_eq!(before["secret_masked"], "ap****-1");
    assert_eq!(after["secret_masked"], before["secret_masked"]);
    assert_eq!(after["relay_key"], before["relay_key"]);
    let outcome = app.send_test("ops", None).await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].touser, "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_email_port_and_from() {
    let app = TestApp::open();
    let input = json!({
        "name": "mail",
        "kind": "email",
        "smtp_host": "127.0.0.1",
        "smtp_port": 587,
        "tls": "implicit",
        "username": "alice@example.com",
        "from": "bob@example.com",
        "to": "ops@example.com",
        "proxy": "none",
    });

    let report = app
        .invoke("validate_profile", json!({ "input": input }))
        .await
        .unwrap();

    assert_eq!(report["errors"], json!([]));
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{report}");
    assert_eq!(
        warnings[0]["en"],
        "The From address bob@example.com differs from the login alice@example.com: QQ and 163 mail reject such mail (501 or 553). Use the login as From."
    );
    assert_eq!(
        warnings[1]["en"],
        "Port 587 usually expects STARTTLS, but the profile uses implicit TLS: port 465 is implicit TLS (SSL) and 587 is STARTTLS."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_app_without_recipient() {
    let app = TestApp::open();
    let input = json!({
        "name": "ops",
        "kind": "wecom-app",
        "corp_id": CORP_ID,
        "agent_id": AGENT_ID,
        "to_user": "",
        "api_base": "http://127.0.0.1:9",
        "proxy": "none",
    });

    let report = app
        .invoke("validate_profile", json!({ "input": input }))
        .await
        .unwrap();

    assert_eq!(
        report["errors"],
        json!([{
            "en": "Recipients are missing: give at least one user, department or tag.",
            "zh": "缺少接收人：请至少填写一个成员、部门或标签。",
        }])
    );
    assert_eq!(report["warnings"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_delivers() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;

    let outcome = app.send_test("ops", None).await;

    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(outcome["status"], "delivered");
    assert_eq!(outcome["failure"], Value::Null);
    assert!(outcome["id"].is_string());
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].target, AGENT_ID.to_string());
    assert_eq!(received[0].touser, "alice");
    assert!(received[0].content.contains("Herald test"));
    assert!(received[0].content.contains("Test message from Herald at "));
    assert!(received[0]
        .content
        .contains("If you read this, profile ops works."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_untrusted_ip() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    fake.set_trusted_ip_check(Some(FROM_IP));

    let outcome = app.send_test("ops", None).await;

    assert_eq!(outcome["ok"], false, "{outcome}");
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["failure"]["code"], "wecom_ip_not_trusted");
    assert_eq!(outcome["failure"]["upstream_errcode"], 60020);
    assert_eq!(outcome["failure"]["from_ip"], FROM_IP);
    assert!(fake.received().is_empty());
    let profile = app.profile("ops").await;
    assert_eq!(profile["last_error"]["upstream_errcode"], 60020);
    assert_eq!(profile["last_error"]["from_ip"], FROM_IP);
    assert!(profile["last_error_at"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_status_and_text() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    let delivered = app.send_test("ops", Some("alpha filled")).await;
    assert_eq!(delivered["status"], "delivered");
    fake.set_trusted_ip_check(Some(FROM_IP));
    let failed = app.send_test("ops", Some("beta stopped")).await;
    assert_eq!(failed["status"], "failed");

    let all = app.history(Value::Null).await;
    assert_eq!(all.len(), 2);

    let by_status = app.history(json!({ "status": "failed" })).await;
    assert_eq!(by_status.len(), 1);
    assert_eq!(by_status[0]["id"], failed["id"]);
    assert_eq!(by_status[0]["text"], "beta stopped");

    let by_text = app.history(json!({ "text": "ALPHA" })).await;
    assert_eq!(by_text.len(), 1);
    assert_eq!(by_text[0]["id"], delivered["id"]);
    assert_eq!(by_text[0]["status"], "delivered");

    let by_title = app.history(json!({ "text": "herald test" })).await;
    assert_eq!(by_title.len(), 2);

    let both = app
        .history(json!({ "status": "delivered", "text": "beta" }))
        .await;
    assert!(both.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_rejects_delivered() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    let outcome = app.send_test("ops", None).await;
    assert_eq!(outcome["status"], "delivered");

    let result = app
        .invoke("resend_message", json!({ "id": outcome["id"] }))
        .await;

    assert_eq!(result, Err(json!("Only a failed message can be resent.")));
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_requeues_failed() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    fake.set_trusted_ip_check(Some(FROM_IP));
    let outcome = app.send_test("ops", Some("gamma")).await;
    assert_eq!(outcome["status"], "failed");
    fake.set_trusted_ip_check(None);

    // The relay is not running in these tests, so the command delivers the
    // requeued message itself.
    let message = app
        .invoke("resend_message", json!({ "id": outcome["id"] }))
        .await
        .unwrap();

    assert_eq!(message["id"], outcome["id"]);
    assert_eq!(message["status"], "delivered");
    assert_eq!(message["attempts"], 2);
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert!(received[0].content.contains("gamma"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_copies_profile() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    let original = app.profile("ops").await;

    let copy = app
        .invoke(
            "duplicate_profile",
            json!({ "name": "ops", "newName": "ops-copy" }),
        )
        .await
        .unwrap();

    assert_eq!(copy["name"], "ops-copy");
    assert_eq!(copy["kind"], "wecom-app");
    assert_eq!(copy["corp_id"], CORP_ID);
    assert_eq!(copy["agent_id"], AGENT_ID);
    assert_eq!(copy["to_user"], json!(["alice"]));
    assert_eq!(copy["api_base"], fake.base_url());
    assert_eq!(copy["proxy"], "none");
    assert_eq!(copy["secret_masked"], original["secret_masked"]);
    assert_ne!(copy["relay_key"], original["relay_key"]);
    assert_eq!(app.list_profiles().await.len(), 2);
    let outcome = app.send_test("ops-copy", None).await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_to_existing_name() {
    let app = TestApp::open();
    let fake = start_fake().await;
    save_app_profile(&app, "ops", &fake).await;
    save_app_profile(&app, "alerts", &fake).await;

    let result = app
        .invoke(
            "duplicate_profile",
            json!({ "name": "ops", "newName": "alerts" }),
        )
        .await;

    assert_eq!(
        result,
        Err(json!("A profile named 'alerts' exists already."))
    );
    assert_eq!(app.list_profiles().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_unknown_profile() {
    let app = TestApp::open();

    let result = app
        .invoke("delete_profile", json!({ "name": "ghost" }))
        .await;

    assert_eq!(result, Err(json!("Profile 'ghost' not found.")));
}
