//! The `herald` command line: profiles, secrets, exit codes, send, check,
//! history, and a standard-library Python script posting through the relay.

mod support;

use std::time::Duration;

use fake_wecom::FakeWecom;
use support::herald::{Home, Relay};
use support::smtp::{SmtpOptions, SmtpServer, SmtpTls};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn secret_is_never_an_argument() {
    let home = Home::new();
    let output = home.run(&["profile", "add", "bot", "--kind", "wecom-bot"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--secret-stdin"),
        "{}",
        stderr(&output)
    );

    let output = home.run(
        &[
            "profile",
            "add",
            "bot",
            "--kind",
            "wecom-bot",
            "--secret",
            "abc",
        ],
        "",
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown --secret flag is a usage error"
    );
}

#[test]
fn secret_loses_trailing_newline_and_is_masked() {
    let home = Home::new();
    home.add_bot("bot", "http://127.0.0.1:9", "robot-key-0123456789\n");
    let shown: serde_json::Value =
        serde_json::from_str(&home.ok(&["profile", "show", "bot", "--json"], "")).unwrap();
    assert_eq!(shown["secret"], "ro****89");
    assert_eq!(shown["kind"], "wecom-bot");
    assert_eq!(shown["relay_key"].as_str().unwrap().len(), 32);

    let stored = std::fs::read_to_string(home.path().join("secrets.json")).unwrap();
    assert!(stored.contains("\"robot-key-0123456789\""), "{stored}");
    for args in [&["profile", "list"][..], &["profile", "show", "bot"][..]] {
        let output = home.ok(args, "");
        assert!(
            !output.contains("robot-key-0123456789"),
            "{args:?} printed the secret"
        );
    }
}

#[test]
fn invalid_profiles_are_rejected_with_reasons() {
    let home = Home::new();
    let output = home.run(
        &[
            "profile",
            "add",
            "app",
            "--kind",
            "wecom-app",
            "--corp-id",
            "ww1",
            "--agent-id",
            "1000002",
            "--secret-stdin",
        ],
        "s",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("Recipients are missing"),
        "{}",
        stderr(&output)
    );

    let output = home.run(
        &[
            "profile",
            "add",
            "mail",
            "--kind",
            "email",
            "--smtp-host",
            "smtp.qq.com",
            "--smtp-port",
            "70000",
            "--tls",
            "implicit",
            "--username",
            "a@qq.com",
            "--from",
            "a@qq.com",
            "--to",
            "b@qq.com",
            "--secret-stdin",
        ],
        "code",
    );
    assert_eq!(output.status.code(), Some(2), "port out of range");

    let output = home.run(
        &[
            "profile",
            "add",
            "mail",
            "--kind",
            "email",
            "--smtp-host",
            "smtp.qq.com",
            "--smtp-port",
            "465",
            "--tls",
            "implicit",
            "--username",
            "a@qq.com",
            "--from",
            "a@qq.com",
            "--to",
            "not-an-address",
            "--secret-stdin",
        ],
        "code",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Invalid recipient address 'not-an-address'"));

    home.add_bot("a", "http://127.0.0.1:9", "k1");
    let output = home.run(
        &[
            "profile",
            "add",
            "b",
            "--kind",
            "wecom-bot",
            "--fallback",
            "b",
            "--secret-stdin",
        ],
        "k2",
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("loops"));
    assert!(home.ok(&["profile", "list"], "").contains("a "));
}

#[test]
fn email_warnings_on_save() {
    let home = Home::new();
    let output = home.run(
        &[
            "profile",
            "add",
            "mail",
            "--kind",
            "email",
            "--smtp-host",
            "smtp.qq.com",
            "--smtp-port",
            "587",
            "--tls",
            "implicit",
            "--username",
            "me@qq.com",
            "--from",
            "other@qq.com",
            "--to",
            "b@163.com",
            "--secret-stdin",
        ],
        "code",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let warnings = stderr(&output);
    assert!(warnings.contains("differs from the login"), "{warnings}");
    assert!(warnings.contains("587 is STARTTLS"), "{warnings}");
}

#[test]
fn chinese_locale_gives_chinese_output() {
    let home = Home::new();
    let output = home
        .command()
        .env("LANG", "zh_CN.UTF-8")
        .args(["profile", "list"])
        .output()
        .unwrap();
    assert!(
        stdout(&output).contains("还没有配置"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_exits_zero_only_when_accepted() {
    let fake = FakeWecom::start().await;
    fake.add_app("ww1", "app-secret", 1000002, &["alice"], &[], &[]);
    let home = Home::new();
    home.add_app("app", &fake.base_url(), "app-secret", "alice", &[]);

    let ok = home.run(
        &[
            "send",
            "--profile",
            "app",
            "--title",
            "成交",
            "600519 买入 100 股",
        ],
        "",
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(fake.received()[0].content, "成交\n600519 买入 100 股");

    fake.set_trusted_ip_check(Some("203.0.113.7"));
    let failed = home.run(&["send", "--profile", "app", "stop hit"], "");
    assert_eq!(failed.status.code(), Some(1));
    let message = stderr(&failed);
    assert!(message.contains("203.0.113.7"), "{message}");
    assert!(message.contains("Trusted IPs (企业可信IP)"), "{message}");
    assert!(!message.contains("app-secret"));

    let history = home.history();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[0]["attempts"], 1);
    assert_eq!(history[0]["error"]["upstream_errcode"], 60020);
    assert_eq!(history[1]["status"], "delivered");
    assert!(!serde_json::to_string(&history)
        .unwrap()
        .contains("app-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_uses_fallback_after_permanent_failure() {
    let fake = FakeWecom::start().await;
    fake.add_app("ww1", "app-secret", 1000002, &["alice"], &[], &[]);
    fake.add_robot("robot-key");
    fake.set_trusted_ip_check(Some("203.0.113.7"));
    let home = Home::new();
    home.add_bot("group", &fake.base_url(), "robot-key");
    home.add_app(
        "app",
        &fake.base_url(),
        "app-secret",
        "alice",
        &["--fallback", "group"],
    );

    let output = home.run(&["send", "--profile", "app", "closing all positions"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).contains("fallback"));
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].kind, "robot");
    assert_eq!(received[0].content, "closing all positions");

    let history = home.history();
    let original = history.iter().find(|m| m["profile"] == "app").unwrap();
    let copy = history.iter().find(|m| m["profile"] == "group").unwrap();
    assert_eq!(original["status"], "failed");
    assert_eq!(copy["status"], "delivered");
    assert_eq!(original["fallback_id"], copy["id"]);
    assert_eq!(copy["fallback_of"], original["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_bad_secret() {
    let fake = FakeWecom::start().await;
    fake.add_app("ww1", "right-secret", 1000002, &["alice"], &[], &[]);
    let home = Home::new();
    home.add_app("app", &fake.base_url(), "wrong-secret", "alice", &[]);
    let output = home.run(&["check", "app"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("40001"), "{}", stderr(&output));
    assert!(stderr(&output).contains("Secret"));
    assert!(!stderr(&output).contains("wrong-secret"));
    assert_eq!(fake.stats().message_calls, 0, "check sends no message");

    home.add_app("app", &fake.base_url(), "right-secret", "alice", &[]);
    let output = home.run(&["check", "app"], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn unknown_profile_is_usage_error() {
    let home = Home::new();
    let output = home.run(&["send", "--profile", "ghost", "x"], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("'ghost' not found"));
    let output = home.run(&["check", "ghost"], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn token_is_one_stable_line() {
    let home = Home::new();
    let first = home.ok(&["token"], "");
    assert_eq!(first.lines().count(), 1);
    assert_eq!(first.trim().len(), 48);
    assert_eq!(home.ok(&["token"], ""), first);
}

/// A script using only Python's standard library posts through the relay to
/// the fake WeCom app, the fake robot and a real SMTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_stdlib_script_reaches_every_channel() {
    let fake = FakeWecom::start().await;
    fake.add_app("ww1", "app-secret", 1000002, &["alice"], &[], &[]);
    fake.add_robot("robot-key");
    let smtp = SmtpServer::start(SmtpOptions::new(
        SmtpTls::StartTls,
        "me@example.com",
        "auth-code",
    ));
    let home = Home::new();
    home.add_app("app", &fake.base_url(), "app-secret", "alice", &[]);
    home.add_bot("bot", &fake.base_url(), "robot-key");
    let port = smtp.port.to_string();
    let ca = smtp.ca_pem_path();
    home.ok(
        &[
            "profile",
            "add",
            "mail",
            "--kind",
            "email",
            "--smtp-host",
            "localhost",
            "--smtp-port",
            &port,
            "--tls",
            "starttls",
            "--username",
            "me@example.com",
            "--from",
            "me@example.com",
            "--to",
            "you@example.com",
            "--ca-file",
            ca.to_str().unwrap(),
            "--secret-stdin",
        ],
        "auth-code\n",
    );
    let relay = Relay::start(&home);

    let script = r#"
import json, os, sys, urllib.request
relay = json.load(open(os.path.join(os.environ["HERALD_HOME"], "relay.json")))
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
for profile in ["app", "bot", "mail"]:
    body = json.dumps({"text": "成交 600519 via " + profile, "title": "订单", "profile": profile}).encode()
    request = urllib.request.Request(relay["url"] + "/v1/send?wait=true", data=body,
        headers={"Authorization": "Bearer " + relay["token"], "Content-Type": "application/json"})
    answer = json.load(opener.open(request, timeout=40))
    print(profile, answer["status"])
"#;
    let output = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .env("HERALD_HOME", home.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "app delivered\nbot delivered\nmail delivered\n"
    );

    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].content, "订单\n成交 600519 via app");
    assert_eq!(received[1].content, "订单\n成交 600519 via bot");
    let mails = smtp.wait_for_messages(1, Duration::from_secs(5));
    let raw = String::from_utf8_lossy(&mails[0].raw).to_string();
    assert!(
        raw.to_ascii_lowercase().contains("subject: =?utf-8?b?"),
        "{raw}"
    );
    assert_eq!(mails[0].rcpt_tos, vec!["you@example.com".to_owned()]);

    let history = home.history();
    assert_eq!(history.len(), 3);
    for record in &history {
        assert_eq!(record["status"], "delivered", "{record}");
        assert_eq!(record["attempts"], 1);
    }
    drop(relay);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_robot_key_without_posting() {
    let fake = FakeWecom::start().await;
    fake.add_robot("good-key");
    let home = Home::new();
    home.add_bot("good", &fake.base_url(), "good-key");
    home.add_bot("bad", &fake.base_url(), "wrong-key");

    let good = home.run(&["check", "good"], "");
    assert_eq!(good.status.code(), Some(0), "{}", stderr(&good));
    let bad = home.run(&["check", "bad"], "");
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("93000"), "{}", stderr(&bad));
    assert!(
        fake.received().is_empty(),
        "a check posts nothing to the group"
    );
}

#[test]
fn first_profile_stays_default() {
    let home = Home::new();
    home.add_bot("first", "http://127.0.0.1:9", "k1");
    home.add_bot("second", "http://127.0.0.1:9", "k2");
    let first: serde_json::Value =
        serde_json::from_str(&home.ok(&["profile", "show", "first", "--json"], "")).unwrap();
    let second: serde_json::Value =
        serde_json::from_str(&home.ok(&["profile", "show", "second", "--json"], "")).unwrap();
    assert_eq!(first["default"], true);
    assert_eq!(second["default"], false);
}
