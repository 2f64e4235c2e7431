//! The JSON shapes the web UI reads and sends.

use herald::home::mask;
use herald::i18n::Text;
use herald::outbox::{Attempt, Message, ProfileState};
use herald::profile::validate::Report;
use herald::profile::{Kind, Profile, Proxy, TlsMode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Builds a profile as the UI shows it: settings, masked secret, last outcome.
pub fn profile_view(
    profile: &Profile,
    secret: Option<&str>,
    is_default: bool,
    state: &ProfileState,
) -> Value {
    let mut value = json!({
        "name": profile.name,
        "kind": profile.kind.name(),
        "is_default": is_default,
        "proxy": proxy_text(&profile.proxy),
        "fallback": profile.fallback,
        "relay_key": profile.relay_key,
        "secret_masked": secret.map(mask).unwrap_or_else(|| "(unreadable)".into()),
        "secret_store": profile.secret_store,
        "last_success_at": state.last_success_at,
        "last_success_ip": state.last_success_ip,
        "last_error": state.last_error.as_ref().map(herald::relay::failure_json),
        "last_error_at": state.last_error_at,
        "route": profile.proxy.describe(),
    });
    match &profile.kind {
        Kind::WecomApp {
            corp_id,
            agent_id,
            to_user,
            to_party,
            to_tag,
            api_base,
        } => {
            value["corp_id"] = json!(corp_id);
            value["agent_id"] = json!(agent_id);
            value["to_user"] = json!(to_user);
            value["to_party"] = json!(to_party);
            value["to_tag"] = json!(to_tag);
            value["api_base"] = json!(api_base);
        }
        Kind::WecomBot { api_base } => value["api_base"] = json!(api_base),
        Kind::Email {
            smtp_host,
            smtp_port,
            tls,
            username,
            from,
            to,
            ca_file,
        } => {
            value["smtp_host"] = json!(smtp_host);
            value["smtp_port"] = json!(smtp_port);
            value["tls"] = json!(tls);
            value["username"] = json!(username);
            value["from"] = json!(from);
            value["to"] = json!(to);
            value["ca_file"] = json!(ca_file);
        }
    }
    value
}

fn proxy_text(proxy: &Proxy) -> String {
    match proxy {
        Proxy::System => "system".into(),
        Proxy::None => "none".into(),
        Proxy::Url(url) => url.clone(),
    }
}

/// A profile as the form sends it. List fields are separated text.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProfileInput {
    pub name: String,
    pub kind: String,
    pub corp_id: Option<String>,
    pub agent_id: Option<i64>,
    pub to_user: Option<String>,
    pub to_party: Option<String>,
    pub to_tag: Option<String>,
    pub api_base: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i64>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub ca_file: Option<String>,
    pub proxy: Option<String>,
    pub fallback: Option<String>,
    pub secret: Option<String>,
}

fn split(value: &Option<String>, separator: char) -> Vec<String> {
    herald::profile::split_list(value.as_deref().unwrap_or(""), separator)
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl ProfileInput {
    /// Builds a profile, or the reasons it cannot be built.
    pub fn to_profile(&self) -> Result<Profile, Vec<Text>> {
        let mut errors = Vec::new();
        let kind = match self.kind.as_str() {
            "wecom-app" => Kind::WecomApp {
                corp_id: non_empty(&self.corp_id).unwrap_or_default(),
                agent_id: self.agent_id.unwrap_or(0),
                to_user: split(&self.to_user, '|'),
                to_party: split(&self.to_party, '|'),
                to_tag: split(&self.to_tag, '|'),
                api_base: non_empty(&self.api_base),
            },
            "wecom-bot" => Kind::WecomBot {
                api_base: non_empty(&self.api_base),
            },
            "email" => {
                let port = self.smtp_port.unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errors.push(Text::new(
                        format!("Invalid SMTP port {port}: use a number from 1 to 65535, usually 465 or 587."),
                        format!("SMTP 端口 {port} 无效：请填写 1 到 65535 之间的数字，通常为 465 或 587。"),
                    ));
                }
                let tls = match self.tls.as_deref().unwrap_or("").parse::<TlsMode>() {
                    Ok(tls) => tls,
                    Err(_) => {
                        errors.push(Text::new(
                            "Choose a TLS mode: implicit (SSL, port 465) or STARTTLS (port 587).",
                            "请选择加密方式：SSL/TLS（465 端口）或 STARTTLS（587 端口）。",
                        ));
                        TlsMode::Implicit
                    }
                };
                Kind::Email {
                    smtp_host: non_empty(&self.smtp_host).unwrap_or_default(),
                    smtp_port: port.clamp(0, 65535) as u16,
                    tls,
                    username: non_empty(&self.username).unwrap_or_default(),
                    from: non_empty(&self.from).unwrap_or_default(),
                    to: split(&self.to, ','),
                    ca_file: non_empty(&self.ca_file),
                }
            }
            other => {
                errors.push(Text::new(
                    format!("Unknown profile kind '{other}': choose WeCom app, WeCom group robot or email."),
                    format!("未知的配置类型“{other}”：请选择企业微信应用、企业微信群机器人或邮件。"),
                ));
                return Err(errors);
            }
        };
        let proxy = match Proxy::parse(non_empty(&self.proxy).as_deref().unwrap_or("system")) {
            Ok(proxy) => proxy,
            Err(error) => {
                errors.push(Text::new(error.clone(), format!("出站路线无效：{error}")));
                Proxy::System
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Profile {
            name: self.name.trim().to_owned(),
            kind,
            proxy,
            fallback: non_empty(&self.fallback),
            relay_key: String::new(),
            secret_store: Default::default(),
        })
    }

    /// Returns the secret typed into the form, if any. An empty field keeps
    /// the saved secret.
    pub fn new_secret(&self) -> Option<&str> {
        self.secret.as_deref().filter(|s| !s.is_empty())
    }
}

#[derive(Serialize)]
pub struct ReportView {
    pub errors: Vec<Text>,
    pub warnings: Vec<Text>,
}

impl From<Report> for ReportView {
    fn from(report: Report) -> ReportView {
        ReportView {
            errors: report.errors,
            warnings: report.warnings,
        }
    }
}

pub fn message_view(message: &Message) -> Value {
    let mut value = herald::relay::message_json(message);
    value["title"] = json!(message.title);
    value["text"] = json!(message.text);
    value["format"] = json!(message.format);
    value["source"] = json!(message.source);
    value["created_at"] = json!(message.created_at);
    value["updated_at"] = json!(message.updated_at);
    value
}

pub fn attempt_view(attempt: &Attempt) -> Value {
    json!({
        "at": attempt.at,
        "part": attempt.part,
        "parts": attempt.parts,
        "outcome": attempt.outcome,
        "answer": attempt.answer,
        "error": attempt.error.as_ref().map(herald::relay::failure_json),
    })
}

/// The result of a check or a test send.
#[derive(Serialize)]
pub struct OutcomeView {
    pub ok: bool,
    pub status: &'static str,
    pub id: Option<String>,
    pub answer: Option<String>,
    pub failure: Option<Value>,
}

/// The relay's state for the window and the tray.
#[derive(Clone, Debug, Serialize)]
pub struct RelayStatus {
    pub state: &'static str,
    pub port: u16,
    pub url: Option<String>,
    pub error: Option<Text>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_input_becomes_profile() {
        let input = ProfileInput {
            name: " ops ".into(),
            kind: "wecom-app".into(),
            corp_id: Some("ww1".into()),
            agent_id: Some(1000002),
            to_user: Some("alice| bob |".into()),
            proxy: Some("none".into()),
            ..ProfileInput::default()
        };
        let profile = input.to_profile().unwrap();
        assert_eq!(profile.name, "ops");
        assert_eq!(profile.proxy, Proxy::None);
        let Kind::WecomApp { to_user, .. } = profile.kind else {
            panic!("kind")
        };
        assert_eq!(to_user, vec!["alice", "bob"]);
    }

    #[test]
    fn email_input_with_bad_port_is_rejected() {
        let input = ProfileInput {
            name: "mail".into(),
            kind: "email".into(),
            smtp_port: Some(70000),
            tls: Some("starttls".into()),
            ..ProfileInput::default()
        };
        let errors = input.to_profile().unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].en.contains("70000"));
    }

    #[test]
    fn empty_secret_keeps_saved_one() {
        let input = ProfileInput {
            secret: Some(String::new()),
            ..ProfileInput::default()
        };
        assert_eq!(input.new_secret(), None);
    }
}
