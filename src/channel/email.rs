//! Email through SMTP with lettre: implicit TLS, STARTTLS or plain.
//!
//! Herald opens the connection and TLS itself so that every server reply
//! passes through [`LenientStream`] (GBK replies stay readable), then hands
//! the stream to lettre's SMTP client for login, envelope and data. Each
//! recipient is sent on its own `RCPT TO`, so one rejected address does not
//! sink the rest: the mail is delivered when the server accepts it (`250`
//! after DATA) for at least one recipient, even if the connection fails
//! afterwards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{self, ContentType};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::Address;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::lenient::LenientStream;
use super::{Accepted, Outcome, Part};
use crate::diagnosis::{self, smtp, Class, Failure, SmtpStage};
use crate::i18n::Text;
use crate::profile::{Kind, Profile, TlsMode};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server's greeting. A server that expects TLS
/// from the first byte stays silent, so this catches STARTTLS or plain
/// chosen on port 465.
const GREETING_TIMEOUT: Duration = Duration::from_secs(10);
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

struct Settings<'a> {
    host: &'a str,
    port: u16,
    tls: TlsMode,
    username: &'a str,
    from: &'a str,
    to: &'a [String],
    ca_file: Option<&'a str>,
}

fn settings(profile: &Profile) -> Settings<'_> {
    let Kind::Email {
        smtp_host,
        smtp_port,
        tls,
        username,
        from,
        to,
        ca_file,
    } = &profile.kind
    else {
        unreachable!("email channel called for a {} profile", profile.kind.name());
    };
    Settings {
        host: smtp_host,
        port: *smtp_port,
        tls: *tls,
        username,
        from,
        to,
        ca_file: ca_file.as_deref(),
    }
}

pub(super) async fn send(profile: &Profile, secret: &str, part: Part<'_>) -> Outcome {
    let settings = settings(profile);
    let message = build_message(&settings, part)?;
    match tokio::time::timeout(SESSION_TIMEOUT, deliver(&settings, secret, &message)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(smtp(
            SmtpStage::Data,
            None,
            "the SMTP session timed out",
            settings.port,
        )
        .transient()),
    }
}

pub(super) async fn check(profile: &Profile, secret: &str) -> Outcome {
    let settings = settings(profile);
    let checked = tokio::time::timeout(SESSION_TIMEOUT, async {
        let mut connection = open(&settings, secret).await?;
        let _ = connection.quit().await;
        Ok(Accepted {
            answer: format!(
                "connected to {}:{}, TLS and login succeeded",
                settings.host, settings.port
            ),
            ..Accepted::default()
        })
    })
    .await;
    checked.unwrap_or_else(|_| {
        Err(smtp(
            SmtpStage::Login,
            None,
            "the SMTP session timed out",
            settings.port,
        )
        .transient())
    })
}

fn build_message(settings: &Settings<'_>, part: Part<'_>) -> Result<Vec<u8>, Failure> {
    let invalid = |what: &str, value: &str| {
        Failure::new(
            "email_invalid_address",
            Class::Permanent,
            Text::new(
                format!("Invalid {what} address '{value}'."),
                format!("{what} 地址“{value}”无效。"),
            ),
            Text::new(
                "Correct the address in the profile.",
                "请在配置中修正该地址。",
            ),
        )
    };
    let from: Address = settings
        .from
        .parse()
        .map_err(|_| invalid("From", settings.from))?;
    let subject = match part.title.map(str::trim).filter(|t| !t.is_empty()) {
        Some(title) => title.to_owned(),
        None => default_subject(part.content),
    };
    // lettre 0.11's `body` adds neither MIME-Version, which RFC 2045
    // requires of a MIME message, nor Message-ID, without which Gmail rejects
    // mail ("550 5.7.1 Messages missing a valid Message-ID header").
    let message_id = format!("<{}@{}>", uuid::Uuid::now_v7().simple(), from.domain());
    let mut builder = lettre::Message::builder()
        .from(Mailbox::new(None, from))
        .subject(subject)
        .message_id(Some(message_id))
        .header(header::MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN);
    for to in settings.to {
        let address: Address = to.parse().map_err(|_| invalid("To", to))?;
        builder = builder.to(Mailbox::new(None, address));
    }
    let message = builder.body(part.content.to_owned()).map_err(|e| {
        Failure::new(
            "email_build",
            Class::Permanent,
            Text::new(
                format!("The email could not be built: {e}."),
                format!("无法生成邮件：{e}。"),
            ),
            Text::new("Check the profile's addresses.", "请检查配置中的邮件地址。"),
        )
    })?;
    Ok(message.formatted())
}

/// Builds a subject from the text's first line, for a message without a
/// title.
fn default_subject(content: &str) -> String {
    let first = content
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("Herald");
    let mut subject: String = first.trim().chars().take(60).collect();
    if first.trim().chars().count() > 60 {
        subject.push('…');
    }
    subject
}

async fn deliver(settings: &Settings<'_>, secret: &str, message: &[u8]) -> Outcome {
    let mut connection = open(settings, secret).await?;
    let from: Address = settings.from.parse().expect("checked in build_message");
    if let Err(error) = connection.command(Mail::new(Some(from), vec![])).await {
        connection.abort().await;
        return Err(lettre_failure(SmtpStage::Sender, &error, settings.port));
    }

    let mut rejected = Vec::new();
    let mut last_rejection = None;
    let mut accepted = 0;
    for to in settings.to {
        let address: Address = to.parse().expect("checked in build_message");
        match connection.command(Rcpt::new(address, vec![])).await {
            Ok(_) => accepted += 1,
            Err(error) => {
                let (code, text) = reply_of(&error);
                tracing::info!(recipient = %to, ?code, "the mail server rejected a recipient");
                rejected.push(format!("{to} ({})", text.trim()));
                last_rejection = Some(error);
            }
        }
    }
    if accepted == 0 {
        connection.abort().await;
        let error = last_rejection.expect("at least one recipient was tried");
        let mut failure = lettre_failure(SmtpStage::Recipients, &error, settings.port);
        failure.message.push(&Text::new(
            format!("No recipient was accepted: {}.", rejected.join("; ")),
            format!("没有任何收件人被接受：{}。", rejected.join("；")),
        ));
        return Err(failure);
    }

    if let Err(error) = connection.command(Data).await {
        connection.abort().await;
        return Err(lettre_failure(SmtpStage::Data, &error, settings.port));
    }
    let response = match connection.message(message).await {
        Ok(response) => response,
        Err(error) => {
            connection.abort().await;
            return Err(lettre_failure(SmtpStage::Data, &error, settings.port));
        }
    };
    // The server took responsibility for the mail at this point; a failed
    // QUIT does not undo that.
    if let Err(error) = connection.quit().await {
        tracing::debug!(%error, "QUIT failed after the mail server accepted the message");
    }
    let answer = format!(
        "{} {}",
        u16::from(response.code()),
        response.message().collect::<Vec<_>>().join(" ")
    );
    Ok(Accepted {
        answer: answer.trim().to_owned(),
        rejected_recipients: rejected,
        from_ip: None,
    })
}

/// Connects, secures and logs in.
async fn open(settings: &Settings<'_>, secret: &str) -> Result<AsyncSmtpConnection, Failure> {
    let port = settings.port;
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((settings.host, port)))
        .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => {
            return Err(smtp(
                SmtpStage::Connect,
                None,
                &format!("{}:{port}: {error}", settings.host),
                port,
            ))
        }
        Err(_) => {
            return Err(smtp(
                SmtpStage::Connect,
                None,
                &format!("{}:{port}: connection timed out", settings.host),
                port,
            ))
        }
    };
    let peer = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], port)));
    let stream: Box<dyn AsyncTokioStream> = match settings.tls {
        TlsMode::Implicit => Box::new(LenientStream::new(
            handshake(tcp, settings).await?,
            peer,
            None,
        )),
        TlsMode::Starttls => {
            let tcp = starttls_preamble(tcp, port).await?;
            let tls = handshake(tcp, settings).await?;
            // The server does not greet again after STARTTLS, while lettre
            // expects a greeting on a new connection: replay one.
            Box::new(LenientStream::new(tls, peer, Some("220 STARTTLS done\r\n")))
        }
        TlsMode::None => Box::new(LenientStream::new(tcp, peer, None)),
    };

    let hello = ClientId::default();
    let mut connection = match tokio::time::timeout(
        GREETING_TIMEOUT,
        AsyncSmtpConnection::connect_with_transport(stream, &hello),
    )
    .await
    {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Err(lettre_failure(SmtpStage::Connect, &error, port)),
        Err(_) => return Err(no_greeting(port)),
    };
    let credentials = Credentials::new(settings.username.to_owned(), secret.to_owned());
    if let Err(error) = connection
        .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
        .await
    {
        connection.abort().await;
        return Err(lettre_failure(SmtpStage::Login, &error, port));
    }
    Ok(connection)
}

/// Reads the plain greeting, sends EHLO and requests STARTTLS.
async fn starttls_preamble(tcp: TcpStream, port: u16) -> Result<TcpStream, Failure> {
    let mut reader = BufReader::new(tcp);
    let greeting = match tokio::time::timeout(GREETING_TIMEOUT, read_reply(&mut reader)).await {
        Ok(reply) => reply.map_err(|e| smtp(SmtpStage::Connect, None, &e.to_string(), port))?,
        Err(_) => return Err(no_greeting(port)),
    };
    expect_code(&greeting, 220, SmtpStage::Connect, port)?;

    reader
        .get_mut()
        .write_all(b"EHLO herald\r\n")
        .await
        .map_err(|e| smtp(SmtpStage::Connect, None, &e.to_string(), port))?;
    let ehlo = read_reply(&mut reader)
        .await
        .map_err(|e| smtp(SmtpStage::Connect, None, &e.to_string(), port))?;
    expect_code(&ehlo, 250, SmtpStage::Connect, port)?;
    if !ehlo.1.to_ascii_uppercase().contains("STARTTLS") {
        return Err(smtp(
            SmtpStage::Tls,
            None,
            &format!(
                "the server on port {port} does not offer STARTTLS: {}",
                ehlo.1.trim()
            ),
            port,
        ));
    }

    reader
        .get_mut()
        .write_all(b"STARTTLS\r\n")
        .await
        .map_err(|e| smtp(SmtpStage::Tls, None, &e.to_string(), port))?;
    let ready = read_reply(&mut reader)
        .await
        .map_err(|e| smtp(SmtpStage::Tls, None, &e.to_string(), port))?;
    expect_code(&ready, 220, SmtpStage::Tls, port)?;
    if !reader.buffer().is_empty() {
        return Err(smtp(
            SmtpStage::Tls,
            None,
            "the server sent data before the TLS handshake",
            port,
        ));
    }
    Ok(reader.into_inner())
}

/// Reads one SMTP reply, possibly of several lines, leniently decoded.
async fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    let mut text = String::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let line = super::lenient::decode_reply(&line);
        text.push_str(&line);
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        let last = line.as_bytes().get(3) != Some(&b'-');
        if last {
            return Ok((code.unwrap_or(0), text));
        }
    }
}

fn expect_code(
    reply: &(u16, String),
    expected: u16,
    stage: SmtpStage,
    port: u16,
) -> Result<(), Failure> {
    if reply.0 == expected {
        Ok(())
    } else {
        Err(smtp(stage, Some(reply.0), &reply.1, port))
    }
}

async fn handshake(
    tcp: TcpStream,
    settings: &Settings<'_>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Failure> {
    let port = settings.port;
    let config =
        tls_config(settings.ca_file).map_err(|detail| smtp(SmtpStage::Tls, None, &detail, port))?;
    let name = rustls_pki_types::ServerName::try_from(settings.host.to_owned()).map_err(|e| {
        smtp(
            SmtpStage::Tls,
            None,
            &format!("invalid host name '{}': {e}", settings.host),
            port,
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match tokio::time::timeout(GREETING_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => Err(tls_failure(&error.to_string(), settings)),
        Err(_) => Err(tls_failure("the TLS handshake timed out", settings)),
    }
}

fn tls_failure(detail: &str, settings: &Settings<'_>) -> Failure {
    let mut failure = smtp(SmtpStage::Tls, None, detail, settings.port);
    if let Some(mismatch) =
        crate::profile::validate::port_mode_mismatch(settings.port, settings.tls)
    {
        failure.message.push(&mismatch);
    } else if detail.contains("corrupt message") || detail.contains("InvalidContentType") {
        failure.message.push(&Text::new(
            "The server answered in plain text, so it expects STARTTLS or no TLS on this port.",
            "服务器以明文响应，说明该端口应使用 STARTTLS 或不加密。",
        ));
    }
    failure
}

fn tls_config(ca_file: Option<&str>) -> Result<tokio_rustls::rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certificates = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("could not read the CA file {path}: {e}"))?;
        for certificate in certificates {
            let certificate =
                certificate.map_err(|e| format!("invalid certificate in {path}: {e}"))?;
            roots
                .add(certificate)
                .map_err(|e| format!("invalid certificate in {path}: {e}"))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn no_greeting(port: u16) -> Failure {
    let mut failure = smtp(SmtpStage::Tls, None, "the server sent no greeting", port);
    failure.message = Text::new(
        format!("The mail server on port {port} sent no greeting: it probably expects implicit TLS (SSL) from the first byte, as port 465 does."),
        format!("端口 {port} 上的邮件服务器没有发送欢迎信息：它很可能要求一开始就使用 SSL/TLS（如 465 端口）。"),
    );
    failure
}

/// Extracts the reply code and text of a lettre error, or its description.
fn reply_of(error: &lettre::transport::smtp::Error) -> (Option<u16>, String) {
    let code = error.status().map(u16::from);
    let mut text = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if text.is_empty() {
        text = error.to_string();
    }
    (code, text)
}

fn lettre_failure(stage: SmtpStage, error: &lettre::transport::smtp::Error, port: u16) -> Failure {
    let (code, text) = reply_of(error);
    if code.is_none()
        && (error.is_timeout() || text.contains("connection") || text.contains("closed"))
    {
        return diagnosis::network("the mail server", &text, &Text::new("direct", "直连"));
    }
    smtp(stage, code, &text, port)
}

impl Failure {
    fn transient(mut self) -> Failure {
        self.class = Class::Transient;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_defaults_to_first_line() {
        assert_eq!(default_subject("\n止损触发\n详情"), "止损触发");
        let long = "x".repeat(80);
        assert_eq!(default_subject(&long).chars().count(), 61);
    }
}
