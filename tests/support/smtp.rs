//! Real SMTP server for email tests.
//!
//! [`SmtpServer::start`] runs `tests/smtp/smtp_server.py`, an aiosmtpd server,
//! on 127.0.0.1 with a fresh self-signed certificate, and reads back the
//! messages it accepted. The script needs Debian's `python3-aiosmtpd`, which
//! is importable only by `/usr/bin/python3`.

#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Interpreter that has aiosmtpd installed (Debian's `python3-aiosmtpd`).
const PYTHON: &str = "/usr/bin/python3";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// TLS mode of the test server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte, as on port 465.
    Implicit,
    /// Plain-text greeting, and STARTTLS required before AUTH, as on port 587.
    StartTls,
    /// Plain text only, with AUTH allowed without TLS.
    None,
}

impl SmtpTls {
    fn as_arg(self) -> &'static str {
        match self {
            SmtpTls::Implicit => "implicit",
            SmtpTls::StartTls => "starttls",
            SmtpTls::None => "none",
        }
    }
}

/// Behaviour of the test server.
#[derive(Debug, Clone)]
pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// Only login that AUTH accepts.
    pub username: String,
    pub password: String,
    /// If true, a wrong login gets QQ Mail's GBK-encoded 535 reply instead of
    /// `535 Error: authentication failed`.
    pub gbk_auth_failure: bool,
    /// If true, a MAIL FROM address that is not exactly the login gets 501.
    pub require_from_login: bool,
    /// Recipients that get `550 Mailbox not found` at RCPT TO.
    pub reject_rcpt: Vec<String>,
    /// Close the connection right after the 250 reply to DATA, so QUIT
    /// fails. The message is still stored.
    pub drop_after_data: bool,
}

impl SmtpOptions {
    /// Creates options with every failure switch off.
    pub fn new(tls: SmtpTls, username: &str, password: &str) -> Self {
        SmtpOptions {
            tls,
            username: username.to_string(),
            password: password.to_string(),
            gbk_auth_failure: false,
            require_from_login: false,
            reject_rcpt: Vec::new(),
            drop_after_data: false,
        }
    }
}

/// Message that the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// Envelope sender from MAIL FROM.
    pub mail_from: String,
    /// Envelope recipients that were accepted, in RCPT TO order.
    pub rcpt_tos: Vec<String>,
    /// Message bytes as sent after DATA, with dot-stuffing removed.
    pub raw: Vec<u8>,
    /// Login that the session authenticated as.
    pub auth_user: String,
}

/// Running aiosmtpd server, stopped when dropped.
pub struct SmtpServer {
    /// Port on 127.0.0.1.
    pub port: u16,
    dir: TempDir,
    child: Child,
    /// Kept open because the script exits when its stdin reaches end of file,
    /// which also stops it if the test process dies without running `Drop`.
    _stdin: ChildStdin,
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections.
    ///
    /// Panics if the script does not print `READY <port>` within 10 seconds,
    /// with the script's stderr in the message.
    pub fn start(opts: SmtpOptions) -> SmtpServer {
        let dir = tempfile::tempdir().expect("failed to create a temporary directory");
        let maildir = dir.path().join("mail");
        fs::create_dir(&maildir).expect("failed to create the maildir");
        write_self_signed_certificate(dir.path());
        let password_path = dir.path().join("password");
        fs::write(&password_path, &opts.password).expect("failed to write the password file");
        let log_path = dir.path().join("server.log");
        let log_file = File::create(&log_path).expect("failed to create the server log");

        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtp_server.py");
        let mut command = Command::new(PYTHON);
        command
            .arg(&script)
            .args(["--port", "0", "--tls", opts.tls.as_arg()])
            .arg("--cert")
            .arg(dir.path().join("cert.pem"))
            .arg("--key")
            .arg(dir.path().join("key.pem"))
            .args(["--username", &opts.username])
            .arg("--password-file")
            .arg(&password_path)
            .arg("--maildir")
            .arg(&maildir)
            .arg("--exit-on-stdin-eof");
        if opts.gbk_auth_failure {
            command.arg("--gbk-auth-failure");
        }
        if opts.require_from_login {
            command.arg("--require-from-login");
        }
        for address in &opts.reject_rcpt {
            command.args(["--reject-rcpt", address]);
        }
        if opts.drop_after_data {
            command.arg("--drop-after-data");
        }
        // stderr goes to a file, because an unread pipe would block the server
        // once the pipe buffer is full.
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));

        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {PYTHON} {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("child stdin is piped");
        let stdout = child.stdout.take().expect("child stdout is piped");

        match wait_for_ready(stdout) {
            Ok(port) => SmtpServer {
                port,
                dir,
                child,
                _stdin: stdin,
            },
            Err(reason) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = fs::read_to_string(&log_path).unwrap_or_default();
                panic!(
                    "SMTP test server failed to start: {reason}. \
                     It needs python3-aiosmtpd for {PYTHON}. Server stderr:\n{log}"
                );
            }
        }
    }

    /// Returns the path of the server's self-signed certificate, which a client
    /// must trust. It is valid for `localhost` and `127.0.0.1`.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Returns the server's stderr log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Reads every message stored so far, in the order the server accepted them.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let maildir = self.dir.path().join("mail");
        let mut paths: Vec<PathBuf> = fs::read_dir(&maildir)
            .unwrap_or_else(|e| panic!("failed to read {}: {e}", maildir.display()))
            .map(|entry| entry.expect("failed to read a maildir entry").path())
            .filter(|path| is_message_file(path))
            .collect();
        // The script names files by a zero-padded sequence number.
        paths.sort();
        paths.iter().map(|path| read_message(path)).collect()
    }

    /// Polls until at least `n` messages are stored and returns all of them.
    ///
    /// Panics with the server log if fewer than `n` are stored after `timeout`.
    pub fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {n} messages, {} stored. \
                     Server stderr:\n{}",
                    messages.len(),
                    self.log()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `cert.pem` and `key.pem` for a certificate valid for `localhost`
/// and `127.0.0.1` into `dir`.
fn write_self_signed_certificate(dir: &Path) {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .expect("failed to generate a self-signed certificate");
    fs::write(dir.join("cert.pem"), certified.cert.pem()).expect("failed to write cert.pem");
    fs::write(dir.join("key.pem"), certified.key_pair.serialize_pem())
        .expect("failed to write key.pem");
}

/// Reads the script's stdout on a thread until `READY <port>`, for at most
/// [`READY_TIMEOUT`].
fn wait_for_ready(stdout: std::process::ChildStdout) -> Result<u16, String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let result = read_ready_line(BufReader::new(stdout));
        let _ = sender.send(result);
    });
    match receiver.recv_timeout(READY_TIMEOUT) {
        Ok(result) => result,
        Err(_) => Err(format!("no READY line within {READY_TIMEOUT:?}")),
    }
}

fn read_ready_line(mut stdout: impl BufRead) -> Result<u16, String> {
    let mut line = String::new();
    loop {
        line.clear();
        let read = stdout
            .read_line(&mut line)
            .map_err(|e| format!("failed to read stdout: {e}"))?;
        if read == 0 {
            return Err("the script exited before printing READY".to_string());
        }
        if let Some(port) = line.trim_end().strip_prefix("READY ") {
            return port
                .parse()
                .map_err(|e| format!("invalid port in READY line {line:?}: {e}"));
        }
    }
}

/// Returns true if `path` is a finished message file, and false for the
/// `.<name>.json.tmp` files that are still being written.
fn is_message_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    name.ends_with(".json") && !name.starts_with('.')
}

fn read_message(path: &Path) -> ReceivedMail {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()));
    let value: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("invalid JSON in {}: {e}", path.display()));
    let field = |key: &str| -> String {
        value[key]
            .as_str()
            .unwrap_or_else(|| panic!("missing string field {key} in {}", path.display()))
            .to_string()
    };
    let rcpt_tos = value["rcpt_tos"]
        .as_array()
        .unwrap_or_else(|| panic!("missing array field rcpt_tos in {}", path.display()))
        .iter()
        .map(|address| {
            address
                .as_str()
                .expect("rcpt_tos contains a non-string")
                .to_string()
        })
        .collect();
    let raw = decode_base64(&field("data_b64"))
        .unwrap_or_else(|e| panic!("invalid data_b64 in {}: {e}", path.display()));
    ReceivedMail {
        mail_from: field("mail_from"),
        rcpt_tos,
        raw,
        auth_user: field("auth_user"),
    }
}

/// Decodes standard base64 (RFC 4648 alphabet, `=` padding optional), as
/// written by Python's `base64.b64encode`.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut output = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for (index, byte) in text.trim_end_matches('=').bytes().enumerate() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 byte {byte:#04x} at offset {index}")),
        };
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            output.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(output)
}
