//! The offline spool importer (`herald::outbox::spool`): line handling and
//! concurrent writers through the library, and delivery through the
//! `herald` binary to a fake WeCom robot on 127.0.0.1, once per spooled
//! message across a restart.
//!
//! Profiles use `--proxy none` or `Proxy::None`, so no request leaves
//! loopback through a system proxy.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fake_wecom::FakeWecom;
use herald::home::Home;
use herald::outbox::spool::{
    self, ImportReport, IMPORTING_PREFIX, REJECTED_FILE, SOURCE, SPOOL_FILE,
};
use herald::outbox::store::{self, Message};
use herald::outbox::Outbox;
use herald::profile::secret::StoreKind;
use herald::profile::{Kind, Profile, ProfileStore, Proxy};
use serde_json::json;
use tempfile::TempDir;

const ROBOT_KEY: &str = "spool-robot-key";
const DELIVERY_WAIT: Duration = Duration::from_secs(30);

/// Makes `SecretStore::choose` pick the owner-only file. Every test sets the
/// same value, so the process-wide variable never changes between tests.
fn use_file_secrets() {
    std::env::set_var("HERALD_SECRET_STORE", "file");
}

/// A home with the outbox and profiles, without a relay or worker.
struct SpoolHome {
    _dir: TempDir,
    home: Home,
    outbox: Outbox,
    profiles: ProfileStore,
}

impl SpoolHome {
    /// Opens a fresh home with the robot profiles `names`. The API base is
    /// a closed loopback port, but nothing delivers in these tests.
    fn with_profiles(names: &[&str]) -> SpoolHome {
        use_file_secrets();
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let profiles = ProfileStore::open(&home).unwrap();
        for name in names {
            let profile = Profile {
                name: (*name).to_owned(),
                kind: Kind::WecomBot {
                    api_base: Some("http://127.0.0.1:9".to_owned()),
                },
                proxy: Proxy::None,
                fallback: None,
                relay_key: String::new(),
                secret_store: StoreKind::File,
            };
            let saved = profiles.save(profile, Some("robot-key")).unwrap();
            assert!(
                saved.report.is_ok(),
                "profile rejected: {:?}",
                saved.report.errors
            );
        }
        let outbox = Outbox::open(&home).unwrap();
        SpoolHome {
            _dir: dir,
            home,
            outbox,
            profiles,
        }
    }

    fn spool_dir(&self) -> PathBuf {
        spool::spool_dir(&self.home)
    }

    fn import(&self) -> ImportReport {
        spool::import_spool(&self.home, &self.outbox, &self.profiles).unwrap()
    }

    /// Returns every stored message, oldest first.
    fn messages(&self) -> Vec<Message> {
        let mut messages = self
            .outbox
            .run_blocking(|c| store::history(c, None, 100_000))
            .unwrap();
        messages.reverse();
        messages
    }

    fn rejected(&self) -> String {
        fs::read_to_string(self.spool_dir().join(REJECTED_FILE)).unwrap_or_default()
    }

    /// Names of the files left in the spool folder, rejected.jsonl aside.
    fn leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.spool_dir())
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|name| name != REJECTED_FILE)
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Formats a spool line as clients write it, with its newline.
fn spool_line(spool_id: &str, text: &str, profile: Option<&str>) -> String {
    let value = json!({
        "spool_id": spool_id,
        "text": text,
        "title": null,
        "profile": profile,
        "format": "text",
        "created_at": 1_700_000_000_000i64,
    });
    format!("{value}\n")
}

fn write_spool(dir: &Path, name: &str, content: &str) {
    fs::create_dir_all(dir).unwrap();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap();
    file.write_all(content.as_bytes()).unwrap();
}

fn texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

#[test]
fn import_without_spool_folder_is_empty() {
    let spool = SpoolHome::with_profiles(&["bot"]);
    assert!(!spool.spool_dir().exists());
    assert_eq!(spool.import(), ImportReport::default());
    assert!(spool.messages().is_empty());
}

#[test]
fn partial_last_line_rejected() {
    let spool = SpoolHome::with_profiles(&["bot"]);
    let partial = r#"{"spool_id":"c3","text":"cut of"#;
    let content = format!(
        "{}{}{partial}",
        spool_line("a1", "first notice", Some("bot")),
        spool_line("b2", "second notice", None),
    );
    write_spool(&spool.spool_dir(), SPOOL_FILE, &content);

    let report = spool.import();

    assert_eq!(report.imported, 2);
    assert_eq!(report.invalid, 1);
    assert_eq!(report.rejected, 0);
    assert_eq!(report.files, 1);
    let messages = spool.messages();
    assert_eq!(texts(&messages), ["first notice", "second notice"]);
    for message in &messages {
        assert_eq!(message.profile, "bot", "the only profile is the default");
        assert_eq!(message.source, SOURCE);
        assert_eq!(message.created_at, 1_700_000_000_000);
        assert_eq!(message.format, "text");
    }
    assert_eq!(spool.rejected(), format!("{partial}\n"));
    assert!(spool.leftovers().is_empty(), "{:?}", spool.leftovers());
}

#[test]
fn unusable_lines_kept_in_rejected() {
    let spool = SpoolHome::with_profiles(&["bot", "mail"]);
    // Two profiles and no default, as after the default profile is removed:
    // the first saved profile would otherwise be the default.
    let profiles_path = spool._dir.path().join("profiles.json");
    let mut file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profiles_path).unwrap()).unwrap();
    file.as_object_mut().unwrap().remove("default");
    std::fs::write(&profiles_path, file.to_string()).unwrap();
    let bad_format = json!({"spool_id": "f1", "text": "x", "format": "html"}).to_string();
    let cases = [
        ("not json", "{not json".to_owned()),
        ("missing text", json!({"spool_id": "m1"}).to_string()),
        (
            "empty spool_id",
            json!({"spool_id": "", "text": "x"}).to_string(),
        ),
        (
            "unknown profile",
            json!({"spool_id": "u1", "text": "x", "profile": "ghost"}).to_string(),
        ),
        (
            "no default among two profiles",
            json!({"spool_id": "d1", "text": "x", "profile": null}).to_string(),
        ),
        (
            "blank text",
            json!({"spool_id": "e1", "text": "  \n ", "profile": "bot"}).to_string(),
        ),
        ("unknown format", bad_format),
    ];
    let mut content = spool_line("ok1", "kept", Some("mail"));
    content.push_str("   \n");
    for (_, line) in &cases {
        content.push_str(line);
        content.push('\n');
    }
    write_spool(&spool.spool_dir(), SPOOL_FILE, &content);

    let report = spool.import();

    assert_eq!(report.imported, 1);
    assert_eq!(report.invalid, 3, "not json, missing text, empty spool_id");
    assert_eq!(report.rejected, 4);
    let messages = spool.messages();
    assert_eq!(texts(&messages), ["kept"]);
    assert_eq!(messages[0].profile, "mail");
    let rejected = spool.rejected();
    let rejected_lines: Vec<&str> = rejected.lines().collect();
    let expected: Vec<&str> = cases.iter().map(|(_, line)| line.as_str()).collect();
    assert_eq!(rejected_lines, expected);
    assert!(spool.leftovers().is_empty(), "{:?}", spool.leftovers());
}

#[test]
fn markdown_and_title_kept() {
    let spool = SpoolHome::with_profiles(&["bot"]);
    let line = json!({
        "spool_id": "md1",
        "text": "**成交** 600519",
        "title": "订单",
        "profile": "bot",
        "format": "markdown",
        "created_at": 1_700_000_000_123i64,
    });
    write_spool(&spool.spool_dir(), SPOOL_FILE, &format!("{line}\n"));

    assert_eq!(spool.import().imported, 1);

    let messages = spool.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].format, "markdown");
    assert_eq!(messages[0].title.as_deref(), Some("订单"));
    assert_eq!(messages[0].text, "**成交** 600519");
    assert_eq!(messages[0].created_at, 1_700_000_000_123);
}

#[test]
fn duplicate_spool_ids_stored_once() {
    let spool = SpoolHome::with_profiles(&["bot"]);
    let line = spool_line("same-id", "once only", Some("bot"));
    write_spool(&spool.spool_dir(), SPOOL_FILE, &format!("{line}{line}"));

    let first = spool.import();
    assert_eq!(first.imported, 1);
    assert_eq!(first.duplicates, 1);

    // The same line again, as after a crash between storing and deleting.
    write_spool(&spool.spool_dir(), SPOOL_FILE, &line);
    let second = spool.import();
    assert_eq!(second.imported, 0);
    assert_eq!(second.duplicates, 1);

    assert_eq!(texts(&spool.messages()), ["once only"]);
}

#[test]
fn leftover_importing_files_imported() {
    let spool = SpoolHome::with_profiles(&["bot"]);
    let dir = spool.spool_dir();
    let leftover = format!("{IMPORTING_PREFIX}424242");
    write_spool(&dir, &leftover, &spool_line("l1", "left over", None));
    // A leftover of this process, as after a pass that could not finish.
    let own = format!("{IMPORTING_PREFIX}{}", std::process::id());
    write_spool(&dir, &own, &spool_line("o1", "own leftover", None));
    write_spool(&dir, SPOOL_FILE, &spool_line("n1", "new", None));

    let first = spool.import();

    assert_eq!(first.files, 2, "the current spool waits for the next pass");
    assert_eq!(first.imported, 2);
    assert_eq!(spool.leftovers(), [SPOOL_FILE]);

    let second = spool.import();

    assert_eq!(second.files, 1);
    assert_eq!(second.imported, 1);
    assert!(spool.leftovers().is_empty(), "{:?}", spool.leftovers());
    let messages = spool.messages();
    let stored: HashSet<&str> = messages.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(stored, HashSet::from(["left over", "own leftover", "new"]));
}

/// Appends one line the way `herald_notify.py` does: `O_APPEND`, a shared
/// lock taken without blocking, a check that the file is still the one
/// named `spool.jsonl`, then one write.
#[cfg(unix)]
fn append_like_client(dir: &Path, line: &[u8]) -> usize {
    use std::os::unix::fs::MetadataExt;

    let path = dir.join(SPOOL_FILE);
    for attempt in 1..=1000 {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        // Pauses model a writer descheduled between its steps, which widens
        // the windows in which the importer renames the file.
        std::thread::sleep(Duration::from_micros(50));
        if file.try_lock_shared().is_err() {
            continue;
        }
        let opened = file.metadata().unwrap();
        let current = match fs::metadata(&path) {
            Ok(current) => current,
            Err(_) => continue,
        };
        if (opened.dev(), opened.ino()) != (current.dev(), current.ino()) {
            continue;
        }
        std::thread::sleep(Duration::from_micros(300));
        let written = (&file).write(line).unwrap();
        assert_eq!(written, line.len(), "short write");
        return attempt;
    }
    panic!("could not append to {} in 1000 attempts", path.display());
}

#[cfg(unix)]
#[test]
fn concurrent_writers_and_importer() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    const WRITERS: usize = 8;
    const LINES: usize = 150;

    let spool = Arc::new(SpoolHome::with_profiles(&["bot"]));
    let dir = spool.spool_dir();
    fs::create_dir_all(&dir).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicUsize::new(0));

    let importer = {
        let spool = spool.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut total = ImportReport::default();
            let mut passes = 0;
            while !done.load(Ordering::SeqCst) {
                let report = spool.import();
                total.imported += report.imported;
                total.invalid += report.invalid;
                total.files += report.files;
                passes += 1;
            }
            (total, passes)
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let dir = dir.clone();
            let reopened = reopened.clone();
            std::thread::spawn(move || {
                for index in 0..LINES {
                    // Every tenth line is 64 KiB, far over PIPE_BUF.
                    let padding = if index % 10 == 0 { 64 * 1024 } else { 10 };
                    let text = format!("w{writer}-n{index}-{}", "x".repeat(padding));
                    let line = spool_line(&format!("w{writer}n{index}"), &text, Some("bot"));
                    let attempts = append_like_client(&dir, line.as_bytes());
                    reopened.fetch_add(attempts - 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (during, passes) = importer.join().unwrap();
    let last = spool.import();

    assert!(passes > 1, "the importer ran only {passes} passes");
    assert!(
        during.files > 1,
        "only {} files were imported while writers ran",
        during.files
    );
    assert_eq!(during.invalid + last.invalid, 0, "{}", spool.rejected());
    assert_eq!(during.imported + last.imported, WRITERS * LINES);
    let messages = spool.messages();
    assert_eq!(messages.len(), WRITERS * LINES);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        let key = message
            .text
            .split('-')
            .take(2)
            .collect::<Vec<_>>()
            .join("-");
        *counts.entry(key).or_default() += 1;
    }
    assert_eq!(counts.len(), WRITERS * LINES);
    assert!(counts.values().all(|count| *count == 1));
    assert!(spool.leftovers().is_empty(), "{:?}", spool.leftovers());
    eprintln!(
        "writers reopened the spool {} times over {passes} import passes",
        reopened.load(Ordering::Relaxed)
    );
}

/// A `herald serve` child process, killed when dropped.
struct RelayProcess {
    child: Child,
    log: PathBuf,
}

impl RelayProcess {
    /// Starts `herald serve`, with its log in `HOME/LOG_NAME`.
    fn start(home: &Path, port: u16, log_name: &str) -> RelayProcess {
        let log = home.join(log_name);
        let child = herald_command(home)
            .args(["serve", "--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("could not start herald serve");
        RelayProcess { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the relay with SIGTERM, as a service manager does, and waits
    /// for it to exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("could not run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "relay exited with {status}: {}",
                    self.log()
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("relay did not stop within 20 s: {}", self.log());
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn herald_command(home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env("HERALD_HOME", home)
        .env("HERALD_SECRET_STORE", "file")
        .env_remove("HERALD_PORT");
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn add_robot_profile(home: &Path, name: &str, api_base: &str) {
    let mut child = herald_command(home)
        .args([
            "profile",
            "add",
            name,
            "--kind",
            "wecom-bot",
            "--api-base",
            api_base,
            "--proxy",
            "none",
            "--secret-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ROBOT_KEY.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "herald profile add failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Counts how often each of `markers` occurs in the received robot messages.
fn delivery_counts(fake: &FakeWecom, markers: &[&str]) -> Vec<usize> {
    let received = fake.received();
    markers
        .iter()
        .map(|marker| {
            received
                .iter()
                .filter(|r| r.kind == "robot" && r.target == ROBOT_KEY)
                .map(|r| r.content.matches(marker).count())
                .sum()
        })
        .collect()
}

/// Waits until every marker was received at least once.
async fn wait_for_delivery(fake: &FakeWecom, markers: &[&str], relay: &RelayProcess) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let counts = delivery_counts(fake, markers);
        if counts.iter().all(|count| *count >= 1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not delivered within {} s: {markers:?} counts {counts:?}\nrelay log:\n{}",
            DELIVERY_WAIT.as_secs(),
            relay.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until(what: &str, relay: &RelayProcess, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DELIVERY_WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {} s\nrelay log:\n{}",
            DELIVERY_WAIT.as_secs(),
            relay.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_delivers_spool_once_across_restart() {
    let fake = FakeWecom::start().await;
    fake.add_robot(ROBOT_KEY);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    add_robot_profile(home, "bot", &fake.base_url());
    let spool_dir = home.join("spool");

    // Written while no relay runs: three named, two for the default
    // profile, one for a profile that does not exist.
    let markers = ["spool-A;", "spool-B;", "spool-C;", "spool-D;", "spool-E;"];
    let mut content = String::new();
    for (index, marker) in markers.iter().enumerate() {
        let profile = if index < 3 { Some("bot") } else { None };
        content.push_str(&spool_line(
            &format!("id-{index}"),
            &format!("{marker} order filled"),
            profile,
        ));
    }
    let ghost = spool_line("id-ghost", "spool-ghost; no such profile", Some("ghost"));
    content.push_str(&ghost);
    write_spool(&spool_dir, SPOOL_FILE, &content);

    let relay = RelayProcess::start(home, free_port(), "relay-1.log");
    wait_for_delivery(&fake, &markers, &relay).await;
    wait_until("removing the imported spool file", &relay, || {
        !spool_dir.join(SPOOL_FILE).exists()
    })
    .await;
    relay.stop();

    assert_eq!(delivery_counts(&fake, &markers), [1, 1, 1, 1, 1]);
    assert_eq!(delivery_counts(&fake, &["spool-ghost;"]), [0]);
    let rejected = fs::read_to_string(spool_dir.join(REJECTED_FILE)).unwrap();
    assert_eq!(rejected, ghost);

    // A crash after storing and before deleting leaves the renamed file;
    // the next relay imports it again and must skip every stored line.
    write_spool(&spool_dir, &format!("{IMPORTING_PREFIX}999999"), &content);
    let late = spool_line("id-late", "spool-F; written after the restart", None);

    let relay = RelayProcess::start(home, free_port(), "relay-2.log");
    wait_until("importing the leftover file", &relay, || {
        fs::read_dir(&spool_dir).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(IMPORTING_PREFIX)
        })
    })
    .await;
    write_spool(&spool_dir, SPOOL_FILE, &late);
    wait_for_delivery(&fake, &["spool-F;"], &relay).await;
    relay.stop();

    assert_eq!(delivery_counts(&fake, &markers), [1, 1, 1, 1, 1]);
    assert_eq!(delivery_counts(&fake, &["spool-F;"]), [1]);
    let connection = store::open(&home.join("herald.db")).unwrap();
    let stored = store::history(&connection, None, 100).unwrap();
    assert_eq!(stored.len(), 6, "five spooled lines and the late one");
    assert!(stored.iter().all(|m| m.source == SOURCE));
    assert!(stored.iter().all(|m| m.status == store::Status::Delivered));
}
