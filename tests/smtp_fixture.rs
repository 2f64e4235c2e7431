//! Self-test of the aiosmtpd fixture in `tests/support/smtp.rs`, driven by
//! Python's smtplib for the TLS modes and by raw SMTP over TCP for plain text.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::smtp::{decode_base64, SmtpOptions, SmtpServer, SmtpTls};

const USERNAME: &str = "bot@example.com";
const PASSWORD: &str = "app-password";
/// Base64 of "\0bot@example.com\0app-password", the AUTH PLAIN argument.
const AUTH_PLAIN_VALID: &str = "AGJvdEBleGFtcGxlLmNvbQBhcHAtcGFzc3dvcmQ=";
/// Base64 of "\0bot@example.com\0wrong-password".
const AUTH_PLAIN_WRONG: &str = "AGJvdEBleGFtcGxlLmNvbQB3cm9uZy1wYXNzd29yZA==";
/// "请使用授权码登录" ("please log in with an authorization code") in GBK.
const GBK_LOGIN_HINT: &[u8] = b"\xc7\xeb\xca\xb9\xd3\xc3\xca\xda\xc8\xa8\xc2\xeb\xb5\xc7\xc2\xbc";
const MESSAGE: &[u8] =
    b"From: bot@example.com\r\nTo: ops@example.com\r\nSubject: fill\r\n\r\nfilled 100 @ 3.5\r\n";
const WAIT: Duration = Duration::from_secs(5);

/// Raw SMTP client over plain TCP that returns replies as bytes, so non-UTF-8
/// replies stay intact.
struct RawClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl RawClient {
    /// Connects to 127.0.0.1 and reads the 220 greeting.
    fn connect(port: u16) -> RawClient {
        let stream =
            TcpStream::connect(("127.0.0.1", port)).expect("failed to connect to the SMTP server");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = RawClient {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = client.read_reply();
        assert!(
            greeting.starts_with(b"220 "),
            "greeting: {}",
            String::from_utf8_lossy(&greeting)
        );
        client
    }

    /// Sends one command line and returns the reply.
    fn command(&mut self, line: &str) -> Vec<u8> {
        self.send(format!("{line}\r\n").as_bytes());
        self.read_reply()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .expect("failed to write to the SMTP server");
    }

    /// Reads one reply, which ends at the line whose code is followed by a space.
    fn read_reply(&mut self) -> Vec<u8> {
        let mut reply = Vec::new();
        loop {
            let start = reply.len();
            let read = self
                .reader
                .read_until(b'\n', &mut reply)
                .expect("failed to read a reply");
            assert!(
                read > 0,
                "connection closed mid-reply after {:?}",
                String::from_utf8_lossy(&reply)
            );
            if reply.get(start + 3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Authenticates with AUTH PLAIN and the valid credentials.
    fn ehlo_and_login(&mut self) {
        let ehlo = self.command("EHLO client.example.com");
        assert!(
            ehlo.starts_with(b"250"),
            "EHLO: {}",
            String::from_utf8_lossy(&ehlo)
        );
        let auth = self.command(&format!("AUTH PLAIN {AUTH_PLAIN_VALID}"));
        assert!(
            auth.starts_with(b"235 "),
            "AUTH: {}",
            String::from_utf8_lossy(&auth)
        );
    }

    /// Sends DATA, the message and the final dot, and returns the final reply.
    fn send_data(&mut self, message: &[u8]) -> Vec<u8> {
        let start = self.command("DATA");
        assert!(
            start.starts_with(b"354 "),
            "DATA: {}",
            String::from_utf8_lossy(&start)
        );
        self.send(message);
        self.send(b".\r\n");
        self.read_reply()
    }
}

fn text(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply).into_owned()
}

/// Runs a Python smtplib client with the server's port, certificate path,
/// username and password as `sys.argv[1..=4]`, and panics unless it exits
/// with status 0.
fn run_python_client(server: &SmtpServer, script: &str) {
    let output = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(server.port.to_string())
        .arg(server.ca_pem_path())
        .args([USERNAME, PASSWORD])
        .output()
        .expect("failed to run /usr/bin/python3");
    assert!(
        output.status.success(),
        "Python client failed with {}.\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr),
        server.log()
    );
}

#[test]
fn auth_constants_decode() {
    assert_eq!(
        decode_base64(AUTH_PLAIN_VALID).unwrap(),
        b"\0bot@example.com\0app-password"
    );
    assert_eq!(
        decode_base64(AUTH_PLAIN_WRONG).unwrap(),
        b"\0bot@example.com\0wrong-password"
    );
}

const IMPLICIT_TLS_CLIENT: &str = r#"
import smtplib, socket, ssl, sys
port, ca, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
context = ssl.create_default_context(cafile=ca)

# The certificate is valid for the DNS name localhost as well as 127.0.0.1.
with context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as tls:
    assert tls.recv(4).startswith(b"220"), "no greeting over TLS for localhost"

client = smtplib.SMTP_SSL("127.0.0.1", port, context=context)
client.login(user, password)
client.sendmail(user, ["ops@example.com"], b"Subject: implicit\r\n\r\n.dot-stuffed line\r\n")
client.quit()
"#;

#[test]
fn implicit_tls_stores_message() {
    let server = SmtpServer::start(SmtpOptions::new(SmtpTls::Implicit, USERNAME, PASSWORD));
    run_python_client(&server, IMPLICIT_TLS_CLIENT);

    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, USERNAME);
    assert_eq!(messages[0].rcpt_tos, vec!["ops@example.com".to_string()]);
    assert_eq!(
        messages[0].raw,
        b"Subject: implicit\r\n\r\n.dot-stuffed line\r\n"
    );
    assert_eq!(messages[0].auth_user, USERNAME);
}

const STARTTLS_CLIENT: &str = r#"
import smtplib, ssl, sys
port, ca, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
client = smtplib.SMTP("127.0.0.1", port)
client.ehlo()
assert client.has_extn("starttls"), "STARTTLS not advertised"
assert not client.has_extn("auth"), "AUTH advertised before STARTTLS"
code, reply = client.docmd("AUTH", "PLAIN AGJvdEBleGFtcGxlLmNvbQBhcHAtcGFzc3dvcmQ=")
assert code == 530, f"AUTH before STARTTLS got {code} {reply!r}"

client.starttls(context=ssl.create_default_context(cafile=ca))
client.ehlo()
assert client.has_extn("auth"), "AUTH not advertised after STARTTLS"
client.login(user, password)
client.sendmail(user, ["ops@example.com", "desk@example.com"], b"Subject: starttls\r\n\r\nbody\r\n")
client.quit()
"#;

#[test]
fn starttls_required_before_auth() {
    let server = SmtpServer::start(SmtpOptions::new(SmtpTls::StartTls, USERNAME, PASSWORD));
    run_python_client(&server, STARTTLS_CLIENT);

    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].rcpt_tos,
        vec![
            "ops@example.com".to_string(),
            "desk@example.com".to_string()
        ]
    );
    assert_eq!(messages[0].raw, b"Subject: starttls\r\n\r\nbody\r\n");
}

const DROP_CLIENT: &str = r#"
import smtplib, ssl, sys
port, ca, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
client = smtplib.SMTP("127.0.0.1", port)
client.starttls(context=ssl.create_default_context(cafile=ca))
client.login(user, password)
client.sendmail(user, ["ops@example.com"], b"Subject: dropped\r\n\r\nbody\r\n")
try:
    client.quit()
except smtplib.SMTPServerDisconnected:
    pass
else:
    raise AssertionError("QUIT succeeded although the server drops the connection")
"#;

#[test]
fn drop_after_data_over_starttls() {
    let mut options = SmtpOptions::new(SmtpTls::StartTls, USERNAME, PASSWORD);
    options.drop_after_data = true;
    let server = SmtpServer::start(options);
    run_python_client(&server, DROP_CLIENT);

    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].raw, b"Subject: dropped\r\n\r\nbody\r\n");
}

#[test]
fn drop_after_data_plain() {
    let mut options = SmtpOptions::new(SmtpTls::None, USERNAME, PASSWORD);
    options.drop_after_data = true;
    let server = SmtpServer::start(options);
    let mut client = RawClient::connect(server.port);
    client.ehlo_and_login();
    assert!(client
        .command(&format!("MAIL FROM:<{USERNAME}>"))
        .starts_with(b"250 "));
    assert!(client
        .command("RCPT TO:<ops@example.com>")
        .starts_with(b"250 "));
    let data = client.send_data(MESSAGE);
    assert!(data.starts_with(b"250 "), "end of DATA: {}", text(&data));

    // The server has closed the connection, so QUIT gets no reply. The read
    // returns end of file, or an error if the QUIT segment drew a TCP reset.
    let _ = client.writer.write_all(b"QUIT\r\n");
    let mut rest = Vec::new();
    if let Err(error) = client.reader.read_to_end(&mut rest) {
        let timed_out = matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
        assert!(!timed_out, "server kept the connection open after DATA");
    }
    assert!(rest.is_empty(), "reply after drop: {}", text(&rest));

    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages[0].raw, MESSAGE);
}

#[test]
fn wrong_password_gets_gbk_535() {
    let mut options = SmtpOptions::new(SmtpTls::None, USERNAME, PASSWORD);
    options.gbk_auth_failure = true;
    let server = SmtpServer::start(options);
    let mut client = RawClient::connect(server.port);
    client.command("EHLO client.example.com");

    let reply = client.command(&format!("AUTH PLAIN {AUTH_PLAIN_WRONG}"));
    assert!(reply.starts_with(b"535 Error: "), "reply: {}", text(&reply));
    assert!(
        reply
            .windows(GBK_LOGIN_HINT.len())
            .any(|window| window == GBK_LOGIN_HINT),
        "no GBK text in reply: {reply:?}"
    );
    assert!(
        std::str::from_utf8(&reply).is_err(),
        "GBK reply is valid UTF-8"
    );
}

#[test]
fn wrong_password_gets_plain_535() {
    let server = SmtpServer::start(SmtpOptions::new(SmtpTls::None, USERNAME, PASSWORD));
    let mut client = RawClient::connect(server.port);
    client.command("EHLO client.example.com");

    let reply = client.command(&format!("AUTH PLAIN {AUTH_PLAIN_WRONG}"));
    assert_eq!(text(&reply), "535 Error: authentication failed\r\n");
}

#[test]
fn envelope_checks_plain() {
    let mut options = SmtpOptions::new(SmtpTls::None, USERNAME, PASSWORD);
    options.require_from_login = true;
    options.reject_rcpt = vec!["missing@example.com".to_string()];
    let server = SmtpServer::start(options);
    let mut client = RawClient::connect(server.port);

    let ehlo = client.command("EHLO client.example.com");
    assert!(
        text(&ehlo).contains("AUTH LOGIN PLAIN"),
        "EHLO: {}",
        text(&ehlo)
    );
    let mail_before_auth = client.command(&format!("MAIL FROM:<{USERNAME}>"));
    assert!(
        mail_before_auth.starts_with(b"530 "),
        "MAIL before AUTH: {}",
        text(&mail_before_auth)
    );
    let auth = client.command(&format!("AUTH PLAIN {AUTH_PLAIN_VALID}"));
    assert!(auth.starts_with(b"235 "), "AUTH: {}", text(&auth));

    let other_sender = client.command("MAIL FROM:<other@example.com>");
    assert_eq!(
        text(&other_sender),
        "501 mail from address must be same as authorization user\r\n"
    );
    assert!(client
        .command(&format!("MAIL FROM:<{USERNAME}>"))
        .starts_with(b"250 "));
    let rejected = client.command("RCPT TO:<missing@example.com>");
    assert_eq!(text(&rejected), "550 Mailbox not found\r\n");
    assert!(client
        .command("RCPT TO:<ops@example.com>")
        .starts_with(b"250 "));
    let data = client.send_data(MESSAGE);
    assert!(data.starts_with(b"250 "), "end of DATA: {}", text(&data));
    let quit = client.command("QUIT");
    assert!(quit.starts_with(b"221 "), "QUIT: {}", text(&quit));

    let messages = server.wait_for_messages(1, WAIT);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].mail_from, USERNAME);
    assert_eq!(messages[0].rcpt_tos, vec!["ops@example.com".to_string()]);
    assert_eq!(messages[0].raw, MESSAGE);
    assert_eq!(messages[0].auth_user, USERNAME);
}

#[test]
fn messages_keep_acceptance_order() {
    let server = SmtpServer::start(SmtpOptions::new(SmtpTls::None, USERNAME, PASSWORD));
    let mut client = RawClient::connect(server.port);
    client.ehlo_and_login();
    for index in 0..3 {
        assert!(client
            .command(&format!("MAIL FROM:<{USERNAME}>"))
            .starts_with(b"250 "));
        assert!(client
            .command(&format!("RCPT TO:<desk{index}@example.com>"))
            .starts_with(b"250 "));
        let data = client.send_data(format!("Subject: {index}\r\n\r\nbody\r\n").as_bytes());
        assert!(data.starts_with(b"250 "), "end of DATA: {}", text(&data));
    }

    let messages = server.wait_for_messages(3, WAIT);
    let recipients: Vec<&str> = messages
        .iter()
        .map(|mail| mail.rcpt_tos[0].as_str())
        .collect();
    assert_eq!(
        recipients,
        [
            "desk0@example.com",
            "desk1@example.com",
            "desk2@example.com"
        ]
    );
}
