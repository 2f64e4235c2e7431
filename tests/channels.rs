//! Delivery through `herald::channel::Channels` and the outbox's
//! `Deliverer` against a fake WeCom server (`fake_wecom`) and an aiosmtpd
//! server (`support::smtp`), both on 127.0.0.1.
//!
//! Every profile uses `Proxy::None`, so no request leaves loopback through a
//! system proxy.

mod support;

use std::time::{Duration, Instant};

use fake_wecom::{FakeWecom, Fault, Route};
use herald::channel::{Accepted, Channels, Part};
use herald::diagnosis::{Class, Context, Failure};
use herald::home::{now_ms, Home};
use herald::i18n::Lang;
use herald::outbox::store::{self, Attempt, Message, ProfileState};
use herald::outbox::worker::{Attempted, Deliverer, Worker};
use herald::outbox::{NewMessage, Outbox, Status};
use herald::profile::secret::StoreKind;
use herald::profile::{Kind, Profile, ProfileStore, Proxy, TlsMode};
use support::smtp::{decode_base64, ReceivedMail, SmtpOptions, SmtpServer, SmtpTls};
use tempfile::TempDir;
use tokio::sync::watch;

const CORP_ID: &str = "ww0000000000000001";
const APP_SECRET: &str = "app-secret-1";
const AGENT_ID: i64 = 1000002;
const ROBOT_KEY: &str = "robot-key-1";
const MAIL_USER: &str = "user@example.com";
const MAIL_PASSWORD: &str = "pw";
const FINAL_LINE: &str = "结论：触发止损，已平仓";
const WAIT: Duration = Duration::from_secs(10);

/// Makes `SecretStore::choose` pick the owner-only file. Every test sets the
/// same value, so the process-wide variable never changes between tests.
fn use_file_secrets() {
    std::env::set_var("HERALD_SECRET_STORE", "file");
}

fn context() -> Context {
    Context {
        route: Proxy::None.describe(),
        last_success_ip: None,
    }
}

fn profile(name: &str, kind: Kind) -> Profile {
    Profile {
        name: name.to_owned(),
        kind,
        proxy: Proxy::None,
        fallback: None,
        relay_key: "relay-key".to_owned(),
        secret_store: StoreKind::File,
    }
}

fn app_kind(fake: &FakeWecom, agent_id: i64, users: &[&str]) -> Kind {
    Kind::WecomApp {
        corp_id: CORP_ID.to_owned(),
        agent_id,
        to_user: users.iter().map(|u| u.to_string()).collect(),
        to_party: vec![],
        to_tag: vec![],
        api_base: Some(fake.base_url()),
    }
}

fn robot_kind(fake: &FakeWecom) -> Kind {
    Kind::WecomBot {
        api_base: Some(fake.base_url()),
    }
}

fn email_kind(server: &SmtpServer, tls: TlsMode, from: &str, to: &[&str]) -> Kind {
    Kind::Email {
        smtp_host: "localhost".to_owned(),
        smtp_port: server.port,
        tls,
        username: MAIL_USER.to_owned(),
        from: from.to_owned(),
        to: to.iter().map(|t| t.to_string()).collect(),
        ca_file: Some(server.ca_pem_path().display().to_string()),
    }
}

fn text_part(content: &str) -> Part<'_> {
    Part {
        title: None,
        content,
        markdown: false,
    }
}

/// Starts a fake with one app (member `zhangsan`) and one robot.
async fn start_fake() -> FakeWecom {
    let fake = FakeWecom::start().await;
    fake.add_app(CORP_ID, APP_SECRET, AGENT_ID, &["zhangsan"], &[], &[]);
    fake.add_robot(ROBOT_KEY);
    fake
}

/// Creates channels in a fresh home, so the token cache starts empty.
fn fresh_channels() -> (TempDir, Channels) {
    let dir = tempfile::tempdir().unwrap();
    let home = Home::open(dir.path()).unwrap();
    (dir, Channels::new(&home))
}

fn expect_failure(outcome: Result<Accepted, Failure>) -> Failure {
    match outcome {
        Ok(accepted) => panic!("expected a failure, got acceptance: {accepted:?}"),
        Err(failure) => failure,
    }
}

fn expect_accepted(outcome: Result<Accepted, Failure>) -> Accepted {
    match outcome {
        Ok(accepted) => accepted,
        Err(failure) => panic!("expected acceptance, got: {}", failure.render(Lang::En)),
    }
}

/// A home with profiles, the outbox and a deliverer, as the relay runs them.
struct HeraldHome {
    _dir: TempDir,
    profiles: ProfileStore,
    outbox: Outbox,
    deliverer: Deliverer,
    shutdown: watch::Sender<bool>,
}

impl HeraldHome {
    fn open() -> HeraldHome {
        use_file_secrets();
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let profiles = ProfileStore::open(&home).unwrap();
        let outbox = Outbox::open(&home).unwrap();
        let (shutdown, stopping) = watch::channel(false);
        let deliverer = Deliverer::new(
            outbox.clone(),
            profiles.clone(),
            Channels::new(&home),
            stopping,
        );
        HeraldHome {
            _dir: dir,
            profiles,
            outbox,
            deliverer,
            shutdown,
        }
    }

    fn save(&self, profile: Profile, secret: &str) -> Profile {
        let saved = self.profiles.save(profile, Some(secret)).unwrap();
        assert!(
            saved.report.is_ok(),
            "profile rejected: {:?}",
            saved.report.errors
        );
        assert_eq!(saved.profile.secret_store, StoreKind::File);
        saved.profile
    }

    async fn enqueue(
        &self,
        profile: &str,
        title: Option<&str>,
        text: &str,
        markdown: bool,
    ) -> String {
        let message = NewMessage {
            profile: profile.to_owned(),
            title: title.map(str::to_owned),
            text: text.to_owned(),
            markdown,
            source: "cli",
        };
        self.outbox.enqueue(message).await.unwrap()
    }

    /// Claims every due message of `profile`, as a worker lane does.
    async fn claim(&self, profile: &str) -> Vec<Message> {
        let name = profile.to_owned();
        let now = now_ms();
        self.outbox
            .run(move |c| store::claim(c, &name, "test", now, now + 60_000, 100))
            .await
            .unwrap()
    }

    /// Stores one message, claims it and makes one delivery attempt.
    async fn send(
        &self,
        profile: &Profile,
        title: Option<&str>,
        text: &str,
        markdown: bool,
    ) -> (String, Attempted) {
        let id = self.enqueue(&profile.name, title, text, markdown).await;
        let batch = self.claim(&profile.name).await;
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].id, id);
        let attempted = self.deliverer.attempt(profile, batch, false).await;
        (id, attempted)
    }

    async fn message(&self, id: &str) -> Message {
        self.outbox
            .get(id)
            .await
            .unwrap()
            .expect("message not found")
    }

    async fn attempts(&self, id: &str) -> Vec<Attempt> {
        let id = id.to_owned();
        self.outbox
            .run(move |c| store::attempts(c, &id))
            .await
            .unwrap()
    }

    async fn state(&self, profile: &str) -> ProfileState {
        let name = profile.to_owned();
        self.outbox
            .run(move |c| store::profile_state(c, &name))
            .await
            .unwrap()
    }

    /// Runs the worker until message `id` reaches a final status.
    async fn run_worker_until_final(&self, id: &str) -> Message {
        let worker = Worker::new(self.deliverer.clone(), "test-worker");
        let running = tokio::spawn(worker.run(Duration::from_secs(5)));
        let deadline = Instant::now() + WAIT;
        let message = loop {
            let message = self.message(id).await;
            if message.status.is_final() {
                break message;
            }
            assert!(
                Instant::now() < deadline,
                "message {id} still {:?}",
                message.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.shutdown.send(true).unwrap();
        running.await.unwrap();
        message
    }
}

// WeCom app: trusted IPs (errcode 60020)

#[tokio::test]
async fn app_ip_not_trusted_names_both_ips() {
    use_file_secrets();
    let fake = start_fake().await;
    fake.set_trusted_ip_check(Some("203.0.113.7"));
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]));
    let context = Context {
        last_success_ip: Some("203.0.113.5".to_owned()),
        ..context()
    };

    let failure = expect_failure(
        channels
            .send(&app, APP_SECRET, text_part("filled"), &context)
            .await,
    );

    assert_eq!(failure.code, "wecom_ip_not_trusted");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(60020));
    assert_eq!(failure.from_ip.as_deref(), Some("203.0.113.7"));
    for lang in [Lang::En, Lang::Zh] {
        let message = failure.message.get(lang);
        let hint = failure.hint.get(lang);
        assert!(message.contains("203.0.113.7"), "{message}");
        assert!(message.contains("203.0.113.5"), "{message}");
        assert!(hint.contains("203.0.113.7"), "{hint}");
        assert!(hint.contains("企业可信IP"), "{hint}");
    }
    assert!(failure
        .message
        .en
        .contains("The IP changed: the last successful send came from 203.0.113.5"));
    assert!(failure
        .message
        .zh
        .contains("IP 已变化：上次发送成功时的 IP 为 203.0.113.5"));
    let stats = fake.stats();
    assert_eq!(stats.token_calls, 1);
    assert_eq!(stats.message_calls, 1);
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn deliverer_ip_not_trusted_falls_back() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let robot = herald.save(profile("robot", robot_kind(&fake)), ROBOT_KEY);
    let app = herald.save(
        Profile {
            fallback: Some("robot".to_owned()),
            ..profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]))
        },
        APP_SECRET,
    );

    // A send from 203.0.113.5: WeCom rejects the token (40014) and reports
    // the caller's IP, Herald refreshes the token, and the retry succeeds.
    // The fake holds the retry for 500 ms, so the test turns the IP check off
    // before the fake handles it.
    fake.set_trusted_ip_check(Some("203.0.113.5"));
    fake.push_fault(
        Route::Message,
        Fault::Errcode(40014, "invalid access_token".into()),
        1,
    );
    fake.push_fault(Route::Message, Fault::Delay(Duration::from_millis(500)), 1);
    let open_check_during_retry = async {
        let deadline = Instant::now() + WAIT;
        while fake.stats().message_calls < 2 {
            assert!(
                Instant::now() < deadline,
                "the token was not refreshed and retried"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fake.set_trusted_ip_check(None);
    };
    let ((first_id, first), ()) = tokio::join!(
        herald.send(&app, None, "600519 filled", false),
        open_check_during_retry
    );
    assert_eq!(first.status, Status::Delivered, "{:?}", first.failure);
    assert_eq!(herald.message(&first_id).await.status, Status::Delivered);
    assert_eq!(
        herald.state("app").await.last_success_ip.as_deref(),
        Some("203.0.113.5")
    );

    // The network now leaves from 203.0.113.7, which the app does not trust.
    fake.set_trusted_ip_check(Some("203.0.113.7"));
    let before = fake.stats();
    let (id, attempted) = herald
        .send(&app, Some("止损"), "600519 stop hit", false)
        .await;

    assert_eq!(attempted.status, Status::Failed);
    let failure = attempted.failure.expect("a failure");
    assert_eq!(failure.code, "wecom_ip_not_trusted");
    assert_eq!(failure.class, Class::Permanent);
    for lang in [Lang::En, Lang::Zh] {
        let message = failure.message.get(lang);
        let hint = failure.hint.get(lang);
        assert!(message.contains("203.0.113.7"), "{message}");
        assert!(message.contains("203.0.113.5"), "{message}");
        assert!(hint.contains("203.0.113.7"), "{hint}");
        assert!(hint.contains("企业可信IP"), "{hint}");
    }
    assert!(
        failure.message.en.contains("The IP changed"),
        "{}",
        failure.message.en
    );
    let after = fake.stats();
    assert_eq!(after.message_calls, before.message_calls + 1);
    assert_eq!(after.token_calls, before.token_calls);

    let failed = herald.message(&id).await;
    assert_eq!(failed.status, Status::Failed);
    assert_eq!(failed.attempts, 1);
    assert_eq!(
        failed.error.as_ref().map(|e| e.code.as_str()),
        Some("wecom_ip_not_trusted")
    );
    assert_eq!(herald.attempts(&id).await.len(), 1);
    assert!(
        herald.claim("app").await.is_empty(),
        "the failed message is due again"
    );

    // The message goes to the fallback robot, linked both ways.
    assert_eq!(attempted.fallback_ids.len(), 1);
    let fallback_id = attempted.fallback_ids[0].clone();
    assert_eq!(failed.fallback_id.as_deref(), Some(fallback_id.as_str()));
    let fallback = herald.message(&fallback_id).await;
    assert_eq!(fallback.fallback_of.as_deref(), Some(id.as_str()));
    assert_eq!(fallback.profile, robot.name);
    assert_eq!(fallback.source, "fallback");
    assert_eq!(fallback.status, Status::Queued);

    let delivered = herald.run_worker_until_final(&fallback_id).await;
    assert_eq!(delivered.status, Status::Delivered, "{:?}", delivered.error);
    let robot_messages: Vec<_> = fake
        .received()
        .into_iter()
        .filter(|r| r.kind == "robot")
        .collect();
    assert_eq!(robot_messages.len(), 1);
    assert_eq!(robot_messages[0].target, ROBOT_KEY);
    assert!(
        robot_messages[0].content.contains("600519 stop hit"),
        "{}",
        robot_messages[0].content
    );
    assert!(
        robot_messages[0].content.contains("止损"),
        "{}",
        robot_messages[0].content
    );
}

// Group robot: rejections inside HTTP 200

#[tokio::test]
async fn robot_long_markdown_is_split() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let robot = herald.save(profile("robot", robot_kind(&fake)), ROBOT_KEY);
    let text = "- 600519 持仓更新 ok\n".repeat(200);
    assert!(text.len() >= 5000, "{} bytes", text.len());

    let (id, attempted) = herald.send(&robot, Some("日报"), &text, true).await;

    assert_eq!(
        attempted.status,
        Status::Delivered,
        "{:?}",
        attempted.failure
    );
    let received = fake.received();
    assert!(received.len() >= 2, "{} messages", received.len());
    assert_eq!(fake.stats().webhook_calls, received.len());
    for (index, message) in received.iter().enumerate() {
        assert_eq!(message.msgtype, "markdown");
        assert!(
            message.content_bytes <= 4096,
            "part {index} has {} bytes",
            message.content_bytes
        );
        let header = format!("**日报** ({}/{})\n", index + 1, received.len());
        assert!(
            message.content.starts_with(&header),
            "part {index}: {:?}",
            message.content.chars().take(20).collect::<String>()
        );
    }
    let stored = herald.message(&id).await;
    assert_eq!(stored.parts_total, received.len() as i64);
    assert_eq!(stored.parts_done, received.len() as i64);
}

#[tokio::test]
async fn robot_content_rejection_fails() {
    use_file_secrets();
    let fake = start_fake().await;
    let errmsg = "markdown.content exceed max length 4096. invalid Request Parameter";
    fake.push_fault(Route::Webhook, Fault::Errcode(40058, errmsg.into()), 1);
    let (_dir, channels) = fresh_channels();
    let robot = profile("robot", robot_kind(&fake));

    let failure = expect_failure(
        channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_bad_content");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(40058));
    let upstream = failure.upstream_message.unwrap_or_default();
    assert!(upstream.starts_with(errmsg), "{upstream}");
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn robot_non_json_answer_fails() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let robot = herald.save(profile("robot", robot_kind(&fake)), ROBOT_KEY);
    fake.push_fault(Route::Webhook, Fault::NotJson, 2);

    let failure = expect_failure(
        herald
            .deliverer
            .channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );
    assert_eq!(failure.code, "wecom_bad_answer");
    assert_eq!(failure.class, Class::Transient);
    assert_eq!(failure.upstream_errcode, Some(200));
    assert_eq!(
        failure.upstream_message.as_deref(),
        Some("<html>busy</html>")
    );

    // Through the outbox the message stays queued for a retry.
    let (id, attempted) = herald.send(&robot, None, "x", false).await;
    assert_eq!(attempted.status, Status::Queued);
    let message = herald.message(&id).await;
    assert_eq!(message.status, Status::Queued);
    assert_eq!(message.attempts, 1);
    assert!(message.next_attempt_at > now_ms());
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn robot_unknown_errcode_fails() {
    use_file_secrets();
    let fake = start_fake().await;
    fake.push_fault(Route::Webhook, Fault::Errcode(99999, "new rule".into()), 1);
    let (_dir, channels) = fresh_channels();
    let robot = profile("robot", robot_kind(&fake));

    let failure = expect_failure(
        channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_error");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(99999));
    assert!(failure
        .upstream_message
        .unwrap_or_default()
        .starts_with("new rule"));
    assert!(failure.hint.en.contains("99999"));
}

#[tokio::test]
async fn robot_unknown_key_fails() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let robot = profile("robot", robot_kind(&fake));

    let failure = expect_failure(
        channels
            .send(&robot, "no-such-key", text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_bot_bad_key");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(93000));
    assert_eq!(failure.from_ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn robot_rate_limit_is_classified() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let robot = herald.save(profile("robot", robot_kind(&fake)), ROBOT_KEY);
    fake.push_fault(
        Route::Webhook,
        Fault::Errcode(45009, "api freq out of limit".into()),
        2,
    );

    let failure = expect_failure(
        herald
            .deliverer
            .channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );
    assert_eq!(failure.code, "wecom_rate_limited");
    assert_eq!(failure.class, Class::RateLimited);
    assert_eq!(failure.upstream_errcode, Some(45009));

    // The outbox keeps the message and tries again after the minute window.
    let (id, attempted) = herald.send(&robot, None, "x", false).await;
    assert_eq!(attempted.status, Status::Queued);
    let message = herald.message(&id).await;
    assert_eq!(message.status, Status::Queued);
    assert!(
        message.next_attempt_at - now_ms() >= 59_000,
        "retry in {} ms",
        message.next_attempt_at - now_ms()
    );
}

#[tokio::test]
async fn robot_busy_is_transient() {
    use_file_secrets();
    let fake = start_fake().await;
    fake.push_fault(Route::Webhook, Fault::Errcode(-1, "system busy".into()), 1);
    let (_dir, channels) = fresh_channels();
    let robot = profile("robot", robot_kind(&fake));

    let failure = expect_failure(
        channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_busy");
    assert_eq!(failure.class, Class::Transient);
    assert_eq!(failure.upstream_errcode, Some(-1));
}

#[tokio::test]
async fn robot_http_500_is_transient() {
    use_file_secrets();
    let fake = start_fake().await;
    fake.push_fault(Route::Webhook, Fault::Http500, 1);
    let (_dir, channels) = fresh_channels();
    let robot = profile("robot", robot_kind(&fake));

    let failure = expect_failure(
        channels
            .send(&robot, ROBOT_KEY, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_bad_answer");
    assert_eq!(failure.class, Class::Transient);
    assert_eq!(failure.upstream_errcode, Some(500));
    assert!(fake.received().is_empty());
}

// WeCom app: content, recipients and tokens

/// About 700 Chinese characters with a 4-byte emoji starting at byte 2,047
/// and a final line that must arrive.
fn long_chinese_text() -> String {
    let mut text = "行情".repeat(341);
    text.push('a');
    text.push('🚀');
    text.push_str(&"持仓更新\n".repeat(4));
    text.push_str(FINAL_LINE);
    text
}

#[tokio::test]
async fn app_chinese_text_split_intact() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let app = herald.save(
        profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"])),
        APP_SECRET,
    );
    let text = long_chinese_text();
    assert_eq!(text.find('🚀'), Some(2047));
    assert!(
        text.chars().count() >= 700,
        "{} characters",
        text.chars().count()
    );

    let (id, attempted) = herald.send(&app, None, &text, false).await;

    assert_eq!(
        attempted.status,
        Status::Delivered,
        "{:?}",
        attempted.failure
    );
    let received = fake.received();
    let count = received.len();
    assert!(count >= 2, "{count} parts");
    let mut rejoined = String::new();
    for (index, part) in received.iter().enumerate() {
        assert!(
            part.content_bytes < 2049,
            "part {index} has {} bytes",
            part.content_bytes
        );
        assert!(
            !part.content.contains('\u{FFFD}'),
            "part {index} was truncated"
        );
        assert_eq!(part.content.len(), part.content_bytes);
        let header = format!("({}/{count})\n", index + 1);
        let body = part.content.strip_prefix(&header);
        assert!(
            body.is_some(),
            "part {index} starts with {:?}",
            part.content.chars().take(8).collect::<String>()
        );
        rejoined.push_str(body.unwrap_or_default());
    }
    assert!(received[count - 1].content.ends_with(FINAL_LINE));
    assert_eq!(rejoined.replace('\n', ""), text.replace('\n', ""));
    assert_eq!(rejoined.matches('🚀').count(), 1);

    let history = herald
        .outbox
        .run(|c| store::history(c, Some("app"), 10))
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, id);
    assert_eq!(history[0].status, Status::Delivered);
    assert_eq!(history[0].parts_total, count as i64);
    assert_eq!(history[0].parts_done, count as i64);
    let attempts = herald.attempts(&id).await;
    assert_eq!(attempts.len(), count);
    for (index, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.part, index as i64 + 1);
        assert_eq!(attempt.parts, count as i64);
        assert_eq!(attempt.outcome, "accepted");
    }
}

#[tokio::test]
async fn app_invalid_recipient_reported() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["ZhangSan", "ghost"]));

    let accepted = expect_accepted(
        channels
            .send(&app, APP_SECRET, text_part("filled"), &context())
            .await,
    );

    assert_eq!(accepted.rejected_recipients, vec!["user ghost".to_owned()]);
    assert!(accepted.answer.contains("ghost"), "{}", accepted.answer);
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].touser, "zhangsan");
}

#[tokio::test]
async fn app_no_valid_recipient_fails() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["ghost", "nobody"]));

    let failure = expect_failure(
        channels
            .send(&app, APP_SECRET, text_part("filled"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_no_valid_recipient");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(81013));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn app_stale_token_refreshed_once() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]));
    expect_accepted(
        channels
            .send(&app, APP_SECRET, text_part("warm up"), &context())
            .await,
    );

    for errcode in [40014, 42001] {
        fake.invalidate_tokens(errcode);
        let before = fake.stats();
        let calls_before = channels.tokens().calls();

        let content = format!("after {errcode}");
        expect_accepted(
            channels
                .send(&app, APP_SECRET, text_part(&content), &context())
                .await,
        );

        let after = fake.stats();
        assert_eq!(
            after.token_calls,
            before.token_calls + 1,
            "errcode {errcode}"
        );
        assert_eq!(
            after.message_calls,
            before.message_calls + 2,
            "errcode {errcode}"
        );
        assert_eq!(
            channels.tokens().calls(),
            calls_before + 1,
            "errcode {errcode}"
        );
        let last = fake.received().pop().expect("a received message");
        assert_eq!(last.content, content);
    }
}

/// Sends ten app messages at once and checks that each was accepted.
async fn send_ten_at_once(channels: &Channels, app: &Profile, round: &str) {
    let mut sends = tokio::task::JoinSet::new();
    for index in 0..10 {
        let channels = channels.clone();
        let app = app.clone();
        let content = format!("{round} notice {index}");
        sends.spawn(async move {
            channels
                .send(&app, APP_SECRET, text_part(&content), &context())
                .await
        });
    }
    for outcome in sends.join_all().await {
        expect_accepted(outcome);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_concurrent_sends_share_token() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]));

    send_ten_at_once(&channels, &app, "fresh").await;
    assert_eq!(fake.stats().token_calls, 1);
    assert_eq!(channels.tokens().calls(), 1);
    assert_eq!(fake.received().len(), 10);

    // All ten get 40014 with the old token; one of them refreshes it.
    fake.invalidate_tokens(40014);
    send_ten_at_once(&channels, &app, "refreshed").await;
    assert_eq!(fake.stats().token_calls, 2);
    assert_eq!(channels.tokens().calls(), 2);
    assert_eq!(fake.received().len(), 20);
}

#[tokio::test]
async fn app_token_rejected_twice_fails() {
    use_file_secrets();
    let fake = start_fake().await;
    let errmsg = "invalid access_token";
    fake.push_fault(Route::Message, Fault::Errcode(40014, errmsg.into()), 2);
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]));

    let failure = expect_failure(
        channels
            .send(&app, APP_SECRET, text_part("filled"), &context())
            .await,
    );

    assert_eq!(failure.code, "wecom_token_rejected");
    assert_eq!(failure.class, Class::TokenRejected);
    assert_eq!(failure.upstream_errcode, Some(40014));
    let stats = fake.stats();
    assert_eq!(stats.message_calls, 2);
    assert_eq!(stats.token_calls, 2);
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn app_split_resumes_after_failure() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let app = herald.save(
        profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"])),
        APP_SECRET,
    );
    // The first part goes through; WeCom is busy for the second.
    fake.push_fault(Route::Message, Fault::Delay(Duration::ZERO), 1);
    fake.push_fault(Route::Message, Fault::Errcode(-1, "system busy".into()), 1);
    let text = "持仓更新 600519\n".repeat(300);

    let (id, first) = herald.send(&app, Some("日报"), &text, false).await;

    assert_eq!(first.status, Status::Queued);
    let queued = herald.message(&id).await;
    assert_eq!(queued.parts_done, 1);
    let count = queued.parts_total;
    assert!(count >= 3, "{count} parts");
    assert_eq!(fake.received().len(), 1);

    // Claim it before its backoff ends, as a resend would.
    let late = now_ms() + 3_600_000;
    let batch = herald
        .outbox
        .run(move |c| store::claim(c, "app", "test", late, late + 60_000, 10))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    let second = herald.deliverer.attempt(&app, batch, false).await;

    assert_eq!(second.status, Status::Delivered, "{:?}", second.failure);
    let received = fake.received();
    assert_eq!(received.len() as i64, count);
    for (index, part) in received.iter().enumerate() {
        let header = format!("日报 ({}/{count})\n", index + 1);
        assert!(
            part.content.starts_with(&header),
            "part {index}: {:?}",
            part.content.chars().take(12).collect::<String>()
        );
    }
    let outcomes: Vec<(i64, String)> = herald
        .attempts(&id)
        .await
        .into_iter()
        .map(|a| (a.part, a.outcome))
        .collect();
    assert_eq!(outcomes[0], (1, "accepted".to_owned()));
    assert_eq!(outcomes[1], (2, "failed".to_owned()));
    assert_eq!(outcomes[2], (2, "accepted".to_owned()));
    assert_eq!(outcomes.len() as i64, count + 1);
}

#[tokio::test]
async fn app_changed_secret_fetches_token() {
    let herald = HeraldHome::open();
    let fake = start_fake().await;
    let app = herald.save(
        profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"])),
        APP_SECRET,
    );
    let (_, first) = herald.send(&app, None, "one", false).await;
    assert_eq!(first.status, Status::Delivered, "{:?}", first.failure);
    assert_eq!(fake.stats().token_calls, 1);

    // The admin resets the app secret and the user saves the new one.
    fake.add_app(CORP_ID, "app-secret-2", AGENT_ID, &["zhangsan"], &[], &[]);
    let app = herald.save(app, "app-secret-2");
    let (_, second) = herald.send(&app, None, "two", false).await;
    assert_eq!(second.status, Status::Delivered, "{:?}", second.failure);
    assert_eq!(fake.stats().token_calls, 2);

    let (_, third) = herald.send(&app, None, "three", false).await;
    assert_eq!(third.status, Status::Delivered, "{:?}", third.failure);
    assert_eq!(fake.stats().token_calls, 2);
}

#[tokio::test]
async fn app_check_ignores_cached_token() {
    use_file_secrets();
    let fake = start_fake().await;
    let (_dir, channels) = fresh_channels();
    let app = profile("app", app_kind(&fake, AGENT_ID, &["zhangsan"]));
    expect_accepted(
        channels
            .send(&app, APP_SECRET, text_part("filled"), &context())
            .await,
    );
    assert_eq!(fake.stats().token_calls, 1);

    let accepted = expect_accepted(channels.check(&app, APP_SECRET, &context()).await);
    assert_eq!(accepted.answer, "access token issued");
    assert_eq!(fake.stats().token_calls, 2);

    // The admin resets the secret, so the saved one no longer gets a token.
    fake.add_app(CORP_ID, "app-secret-2", AGENT_ID, &["zhangsan"], &[], &[]);
    let failure = expect_failure(channels.check(&app, APP_SECRET, &context()).await);
    assert_eq!(failure.code, "wecom_bad_secret");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(40001));
    assert_eq!(fake.stats().token_calls, 3);
}

// Email

/// Splits a raw message into unfolded header lines and the body.
fn split_mail(raw: &[u8]) -> (Vec<(String, String)>, String) {
    let text = String::from_utf8(raw.to_vec()).expect("the raw message is not UTF-8");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("no blank line after the headers");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("a continuation line comes first");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header line without a colon");
            headers.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    (headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Decodes a header value of UTF-8 base64 encoded words (RFC 2047) and plain
/// words. Whitespace between two encoded words is dropped, as RFC 2047
/// requires.
fn decode_rfc2047(value: &str) -> String {
    let mut out = String::new();
    let mut previous_encoded = false;
    for (index, word) in value.split_whitespace().enumerate() {
        let lower = word.to_ascii_lowercase();
        let encoded = lower.starts_with("=?utf-8?b?") && lower.ends_with("?=");
        if index > 0 && !(encoded && previous_encoded) {
            out.push(' ');
        }
        if encoded {
            let payload = &word["=?utf-8?b?".len()..word.len() - 2];
            let bytes = decode_base64(payload).expect("invalid base64 in an encoded word");
            out.push_str(&String::from_utf8(bytes).expect("an encoded word is not UTF-8"));
        } else {
            out.push_str(word);
        }
        previous_encoded = encoded;
    }
    out
}

/// Decodes quoted-printable text (RFC 2045) into UTF-8.
fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'=' && index + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).expect("invalid escape");
            out.push(u8::from_str_radix(hex, 16).expect("invalid hex escape"));
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).expect("the decoded body is not UTF-8")
}

/// Decodes the body by its Content-Transfer-Encoding.
fn decode_body(mail: &ReceivedMail) -> String {
    let (headers, body) = split_mail(&mail.raw);
    let encoding = header(&headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(decode_base64(&compact).expect("invalid base64 body"))
                .expect("the body is not UTF-8")
        }
        "quoted-printable" => decode_quoted_printable(&body),
        _ => body,
    }
}

fn subject(mail: &ReceivedMail) -> String {
    let (headers, _) = split_mail(&mail.raw);
    header(&headers, "Subject")
        .expect("no Subject header")
        .to_owned()
}

/// Long enough for lettre to fold the Subject into several encoded words.
const MAIL_TITLE: &str =
    "止损提醒：贵州茅台 600519 触发止损，已按计划平仓全部持仓，请检查账户余额与风控参数";
const MAIL_BODY: &str = "贵州茅台 600519 触发止损，已平仓 100 股。\n成交价 1,520.00";

async fn assert_chinese_mail_delivered(server_tls: SmtpTls, tls: TlsMode) {
    use_file_secrets();
    let server = SmtpServer::start(SmtpOptions::new(server_tls, MAIL_USER, MAIL_PASSWORD));
    let mail = profile(
        "mail",
        email_kind(&server, tls, MAIL_USER, &["ops@example.com"]),
    );
    let (_dir, channels) = fresh_channels();
    let part = Part {
        title: Some(MAIL_TITLE),
        content: MAIL_BODY,
        markdown: false,
    };

    let accepted = expect_accepted(channels.send(&mail, MAIL_PASSWORD, part, &context()).await);

    assert!(accepted.answer.starts_with("250"), "{}", accepted.answer);
    assert!(accepted.rejected_recipients.is_empty());
    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received.mail_from, MAIL_USER);
    assert_eq!(received.rcpt_tos, vec!["ops@example.com".to_owned()]);
    assert_eq!(received.auth_user, MAIL_USER);
    let (headers, _) = split_mail(&received.raw);
    assert_eq!(header(&headers, "MIME-Version"), Some("1.0"));
    let message_id = header(&headers, "Message-ID").unwrap_or_default();
    assert!(message_id.starts_with('<'), "Message-ID {message_id:?}");
    assert!(
        message_id.ends_with("@example.com>"),
        "Message-ID {message_id:?}"
    );
    let raw_subject = subject(received);
    assert!(
        raw_subject.to_ascii_lowercase().starts_with("=?utf-8?b?"),
        "{raw_subject}"
    );
    assert_eq!(decode_rfc2047(&raw_subject), MAIL_TITLE);
    assert_eq!(decode_body(received).replace("\r\n", "\n"), MAIL_BODY);
}

#[tokio::test]
async fn email_starttls_chinese_delivered() {
    assert_chinese_mail_delivered(SmtpTls::StartTls, TlsMode::Starttls).await;
}

#[tokio::test]
async fn email_implicit_chinese_delivered() {
    assert_chinese_mail_delivered(SmtpTls::Implicit, TlsMode::Implicit).await;
}

#[tokio::test]
async fn email_implicit_on_starttls_port_fails() {
    use_file_secrets();
    let server = SmtpServer::start(SmtpOptions::new(
        SmtpTls::StartTls,
        MAIL_USER,
        MAIL_PASSWORD,
    ));
    let mail = profile(
        "mail",
        email_kind(&server, TlsMode::Implicit, MAIL_USER, &["ops@example.com"]),
    );
    let (_dir, channels) = fresh_channels();

    let failure = expect_failure(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "smtp_tls");
    assert_eq!(failure.class, Class::Permanent);
    assert!(
        failure.message.en.contains("STARTTLS"),
        "{}",
        failure.message.en
    );
    assert!(
        failure.message.zh.contains("STARTTLS"),
        "{}",
        failure.message.zh
    );
    assert!(
        failure.hint.en.contains("implicit TLS"),
        "{}",
        failure.hint.en
    );
    assert!(
        failure.hint.en.contains("port 587 expects STARTTLS"),
        "{}",
        failure.hint.en
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_gbk_auth_failure_decoded() {
    use_file_secrets();
    let options = SmtpOptions {
        gbk_auth_failure: true,
        ..SmtpOptions::new(SmtpTls::StartTls, MAIL_USER, MAIL_PASSWORD)
    };
    let server = SmtpServer::start(options);
    let mail = profile(
        "mail",
        email_kind(&server, TlsMode::Starttls, MAIL_USER, &["ops@example.com"]),
    );
    let (_dir, channels) = fresh_channels();

    let failure = expect_failure(
        channels
            .send(&mail, "login-password", text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "smtp_auth");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(535));
    let upstream = failure.upstream_message.clone().unwrap_or_default();
    assert!(upstream.contains("请使用授权码登录"), "{upstream}");
    assert!(!upstream.contains('\u{FFFD}'), "{upstream}");
    assert!(
        failure.hint.en.contains("authorization code"),
        "{}",
        failure.hint.en
    );
    assert!(failure.hint.zh.contains("授权码"), "{}", failure.hint.zh);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_from_not_login_rejected() {
    use_file_secrets();
    let options = SmtpOptions {
        require_from_login: true,
        ..SmtpOptions::new(SmtpTls::StartTls, MAIL_USER, MAIL_PASSWORD)
    };
    let server = SmtpServer::start(options);
    let kind = email_kind(
        &server,
        TlsMode::Starttls,
        "desk@example.com",
        &["ops@example.com"],
    );
    let mail = profile("mail", kind);
    let (_dir, channels) = fresh_channels();

    let failure = expect_failure(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("x"), &context())
            .await,
    );

    assert_eq!(failure.code, "smtp_sender_rejected");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(501));
    assert!(failure.hint.en.contains("login"), "{}", failure.hint.en);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_rejected_recipient_reported() {
    use_file_secrets();
    let options = SmtpOptions {
        reject_rcpt: vec!["gone@example.com".to_owned()],
        ..SmtpOptions::new(SmtpTls::StartTls, MAIL_USER, MAIL_PASSWORD)
    };
    let server = SmtpServer::start(options);
    let to = ["ops@example.com", "gone@example.com", "desk@example.com"];
    let mail = profile(
        "mail",
        email_kind(&server, TlsMode::Starttls, MAIL_USER, &to),
    );
    let (_dir, channels) = fresh_channels();

    let accepted = expect_accepted(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("filled"), &context())
            .await,
    );

    assert_eq!(accepted.rejected_recipients.len(), 1);
    let rejected = &accepted.rejected_recipients[0];
    assert!(rejected.contains("gone@example.com"), "{rejected}");
    assert!(rejected.contains("Mailbox not found"), "{rejected}");
    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].rcpt_tos,
        vec!["ops@example.com".to_owned(), "desk@example.com".to_owned()]
    );
}

#[tokio::test]
async fn email_all_recipients_rejected_fails() {
    use_file_secrets();
    let options = SmtpOptions {
        reject_rcpt: vec!["gone@example.com".to_owned(), "left@example.com".to_owned()],
        ..SmtpOptions::new(SmtpTls::StartTls, MAIL_USER, MAIL_PASSWORD)
    };
    let server = SmtpServer::start(options);
    let to = ["gone@example.com", "left@example.com"];
    let mail = profile(
        "mail",
        email_kind(&server, TlsMode::Starttls, MAIL_USER, &to),
    );
    let (_dir, channels) = fresh_channels();

    let failure = expect_failure(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("filled"), &context())
            .await,
    );

    assert_eq!(failure.code, "smtp_rejected");
    assert_eq!(failure.class, Class::Permanent);
    assert_eq!(failure.upstream_errcode, Some(550));
    assert!(
        failure.message.en.contains("No recipient was accepted"),
        "{}",
        failure.message.en
    );
    assert!(
        failure.message.en.contains("gone@example.com"),
        "{}",
        failure.message.en
    );
    assert!(
        failure.message.en.contains("left@example.com"),
        "{}",
        failure.message.en
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_untrusted_certificate_fails() {
    use_file_secrets();
    let server = SmtpServer::start(SmtpOptions::new(
        SmtpTls::StartTls,
        MAIL_USER,
        MAIL_PASSWORD,
    ));
    let mut kind = email_kind(&server, TlsMode::Starttls, MAIL_USER, &["ops@example.com"]);
    if let Kind::Email { ca_file, .. } = &mut kind {
        *ca_file = None;
    }
    let mail = profile("mail", kind);
    let (_dir, channels) = fresh_channels();

    let failure = expect_failure(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("filled"), &context())
            .await,
    );

    assert_eq!(failure.code, "smtp_tls");
    assert_eq!(failure.class, Class::Permanent);
    let upstream = failure.upstream_message.unwrap_or_default();
    assert!(upstream.contains("certificate"), "{upstream}");
    assert!(
        failure.hint.en.contains("certificate"),
        "{}",
        failure.hint.en
    );
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn email_drop_after_data_delivered() {
    use_file_secrets();
    let options = SmtpOptions {
        drop_after_data: true,
        ..SmtpOptions::new(SmtpTls::StartTls, MAIL_USER, MAIL_PASSWORD)
    };
    let server = SmtpServer::start(options);
    let mail = profile(
        "mail",
        email_kind(&server, TlsMode::Starttls, MAIL_USER, &["ops@example.com"]),
    );
    let (_dir, channels) = fresh_channels();

    let accepted = expect_accepted(
        channels
            .send(&mail, MAIL_PASSWORD, text_part("filled"), &context())
            .await,
    );

    assert!(accepted.answer.starts_with("250"), "{}", accepted.answer);
    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(decode_body(&messages[0]).trim_end(), "filled");
}
