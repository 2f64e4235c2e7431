//! Credential profiles: what they hold, how they are checked and where they
//! are kept.
//!
//! A profile names one channel (a WeCom app, a WeCom group robot or an SMTP
//! account) with its recipients, outbound route and optional fallback. The
//! secret is never part of the profile record: it lives in the OS keyring or
//! an owner-only file (see [`secret`]).

pub mod secret;
pub mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

use crate::i18n::Text;

pub use store::ProfileStore;

pub const WECOM_API_BASE: &str = "https://qyapi.weixin.qq.com";

/// Splits a list typed as text (`alice|bob`, `a@x.com, b@y.com`) into its
/// trimmed, non-empty items.
pub fn split_list(value: &str, separator: char) -> Vec<String> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A named channel with everything but its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    #[serde(flatten)]
    pub kind: Kind,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Key for the WeCom-robot-compatible endpoint of the relay.
    pub relay_key: String,
    /// The store the secret was saved in, so every process reads it there.
    #[serde(default)]
    pub secret_store: secret::StoreKind,
}

/// The channel a profile delivers through, with its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Kind {
    WecomApp {
        corp_id: String,
        agent_id: i64,
        #[serde(default)]
        to_user: Vec<String>,
        #[serde(default)]
        to_party: Vec<String>,
        #[serde(default)]
        to_tag: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_base: Option<String>,
    },
    WecomBot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_base: Option<String>,
    },
    Email {
        smtp_host: String,
        smtp_port: u16,
        tls: TlsMode,
        username: String,
        from: String,
        to: Vec<String>,
        /// Extra root certificate (PEM) for servers with a private CA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<String>,
    },
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::WecomApp { .. } => "wecom-app",
            Kind::WecomBot { .. } => "wecom-bot",
            Kind::Email { .. } => "email",
        }
    }

    pub fn api_base(&self) -> &str {
        match self {
            Kind::WecomApp { api_base, .. } | Kind::WecomBot { api_base } => {
                api_base.as_deref().unwrap_or(WECOM_API_BASE)
            }
            Kind::Email { .. } => "",
        }
    }

    /// Returns the name of this kind's secret, in both languages.
    pub fn secret_label(&self) -> Text {
        match self {
            Kind::WecomApp { .. } => Text::new("app secret", "应用 Secret"),
            Kind::WecomBot { .. } => Text::new("webhook key", "Webhook key"),
            Kind::Email { .. } => Text::new("password or authorization code", "密码或授权码"),
        }
    }
}

/// The security of an email connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte, usually port 465 (or 994 at 163 mail).
    Implicit,
    /// Plain greeting, then the STARTTLS upgrade, usually port 587.
    Starttls,
    /// No encryption; only for servers on a trusted network.
    None,
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(value: &str) -> Result<TlsMode, String> {
        match value.to_ascii_lowercase().as_str() {
            "implicit" | "ssl" | "tls" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::Starttls),
            "none" | "plain" => Ok(TlsMode::None),
            other => Err(format!(
                "invalid TLS mode '{other}': use implicit (port 465), starttls (port 587) or none"
            )),
        }
    }
}

/// The outbound route of a profile's requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "url")]
pub enum Proxy {
    /// The system's proxy settings (environment variables, and the OS
    /// settings on Windows and macOS).
    #[default]
    System,
    /// A direct connection, ignoring any system proxy.
    None,
    /// This proxy URL, e.g. `http://10.0.0.2:3128` or `socks5://…`.
    Url(String),
}

impl Proxy {
    pub fn parse(value: &str) -> Result<Proxy, String> {
        match value {
            "system" => Ok(Proxy::System),
            "none" | "direct" => Ok(Proxy::None),
            url => {
                let parsed = url::Url::parse(url).map_err(|e| {
                    format!("invalid proxy '{url}': {e}; use system, none or a URL such as http://host:3128")
                })?;
                if !matches!(parsed.scheme(), "http" | "https" | "socks5" | "socks5h") {
                    return Err(format!(
                        "invalid proxy scheme '{}': use http, https or socks5",
                        parsed.scheme()
                    ));
                }
                Ok(Proxy::Url(url.to_owned()))
            }
        }
    }

    /// Describes the route in words, for failure messages. Credentials in a
    /// proxy URL are not shown.
    pub fn describe(&self) -> Text {
        match self {
            Proxy::System => Text::new("system proxy settings", "系统代理设置"),
            Proxy::None => Text::new("direct, no proxy", "直连，不使用代理"),
            Proxy::Url(url) => {
                let shown = url::Url::parse(url)
                    .map(|mut u| {
                        let _ = u.set_password(None);
                        let _ = u.set_username("");
                        u.to_string()
                    })
                    .unwrap_or_else(|_| "(invalid URL)".into());
                Text::new(format!("proxy {shown}"), format!("代理 {shown}"))
            }
        }
    }
}
