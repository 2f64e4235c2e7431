//! Failure classes and the words a trader reads when a delivery fails.
//!
//! Every provider answer that is not a clear acceptance becomes a
//! [`Failure`]: a stable code for scripts, a class that drives retries, the
//! provider's own code and text, and a message and hint in English and
//! Chinese that say what failed and what to do next.

use serde::{Deserialize, Serialize};

use crate::i18n::{Lang, Text};

/// The class of a failure, which decides how the worker retries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Will not succeed until the user changes something: never retried.
    Permanent,
    /// Network trouble, timeouts, 5xx, busy: retried with backoff.
    Transient,
    /// The provider's rate limit: retried after the limit's window.
    RateLimited,
    /// The access token was rejected: refresh it and retry once.
    TokenRejected,
}

/// A failed delivery or check, with everything needed to explain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Stable identifier such as `wecom_ip_not_trusted` or `smtp_auth`.
    pub code: String,
    pub class: Class,
    /// The provider's own error code: a WeCom errcode or an SMTP reply code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_errcode: Option<i64>,
    /// The provider's own text (WeCom errmsg, SMTP reply), decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_message: Option<String>,
    /// The caller's IP as WeCom reported it in `from ip: ...`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_ip: Option<String>,
    pub message: Text,
    pub hint: Text,
}

/// Facts about the profile that make a hint precise.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The outbound route in words, e.g. `system proxy` / `系统代理`.
    pub route: Text,
    /// The IP WeCom reported on the last successful send of this profile.
    pub last_success_ip: Option<String>,
}

impl Failure {
    pub fn new(code: &str, class: Class, message: Text, hint: Text) -> Failure {
        Failure {
            code: code.to_owned(),
            class,
            upstream_errcode: None,
            upstream_message: None,
            from_ip: None,
            message,
            hint,
        }
    }

    pub fn with_upstream(mut self, errcode: i64, text: impl Into<String>) -> Failure {
        self.upstream_errcode = Some(errcode);
        self.upstream_message = Some(text.into());
        self
    }

    /// Formats the failure for a terminal: the message, the provider's own
    /// words, then the hint.
    pub fn render(&self, lang: Lang) -> String {
        let mut out = self.message.get(lang).to_owned();
        if let Some(upstream) = &self.upstream_message {
            let label = match lang {
                Lang::En => "Provider's answer",
                Lang::Zh => "服务商原文",
            };
            out.push_str(&format!("\n{label}: {upstream}"));
        }
        if !self.hint.en.is_empty() {
            let label = match lang {
                Lang::En => "What to do",
                Lang::Zh => "处理办法",
            };
            out.push_str(&format!("\n{label}: {}", self.hint.get(lang)));
        }
        out
    }
}

/// Extracts the IP from WeCom's `from ip: X, more info at` suffix, which
/// WeCom appends to most error messages. An empty value gives `None`.
pub fn parse_from_ip(errmsg: &str) -> Option<String> {
    let start = errmsg.find("from ip:")? + "from ip:".len();
    let rest = &errmsg[start..];
    let end = rest.find(',').unwrap_or(rest.len());
    let ip = rest[..end].trim();
    let valid = !ip.is_empty()
        && ip
            .chars()
            .all(|c| c.is_ascii_hexdigit() || c == '.' || c == ':');
    valid.then(|| ip.to_owned())
}

/// Classifies a WeCom errcode other than 0 and writes its explanation.
pub fn wecom(errcode: i64, errmsg: &str, context: &Context) -> Failure {
    let from_ip = parse_from_ip(errmsg);
    let mut failure = wecom_base(errcode, from_ip.as_deref(), context);
    if errcode != 60020 {
        if let Some(ip) = &from_ip {
            failure.message.push(&Text::new(
                format!("WeCom saw the request coming from {ip}."),
                format!("企业微信看到的请求来源 IP 为 {ip}。"),
            ));
        }
    }
    failure.upstream_errcode = Some(errcode);
    failure.upstream_message = Some(errmsg.to_owned());
    failure.from_ip = from_ip;
    failure
}

fn wecom_base(errcode: i64, from_ip: Option<&str>, context: &Context) -> Failure {
    use Class::*;
    let code_text = format!("errcode {errcode}");
    match errcode {
        60020 => ip_not_trusted(from_ip, context),
        40001 | 40091 => Failure::new(
            "wecom_bad_secret",
            Permanent,
            Text::new(
                format!("WeCom rejected the app secret ({code_text})."),
                format!("企业微信拒绝了应用的 Secret（{code_text}）。"),
            ),
            Text::new(
                "Copy the Secret again from the admin console (App Management → your app → Secret) and save it in the profile. Each app has its own secret.",
                "请在管理后台（应用管理 → 对应应用 → Secret）重新复制 Secret 并保存到配置中。每个应用的 Secret 都不同。",
            ),
        ),
        40013 => Failure::new(
            "wecom_bad_corp_id",
            Permanent,
            Text::new(
                format!("WeCom does not know this corp ID ({code_text})."),
                format!("企业微信不认识这个企业 ID（{code_text}）。"),
            ),
            Text::new(
                "Copy the corp ID from the admin console (My Company → Company Information → Corp ID).",
                "请在管理后台（我的企业 → 企业信息 → 企业ID）复制正确的企业 ID。",
            ),
        ),
        40056 => Failure::new(
            "wecom_bad_agent_id",
            Permanent,
            Text::new(
                format!("WeCom rejected the agent ID ({code_text})."),
                format!("企业微信拒绝了 AgentId（{code_text}）。"),
            ),
            Text::new(
                "Use the AgentId shown on the app's page in the admin console; it must belong to the app whose secret the profile holds.",
                "请使用管理后台应用页面上显示的 AgentId，它必须与配置中的 Secret 属于同一个应用。",
            ),
        ),
        81013 | 82001 => Failure::new(
            "wecom_no_valid_recipient",
            Permanent,
            Text::new(
                format!("WeCom found none of the recipients valid ({code_text})."),
                format!("企业微信认为所有接收人都无效（{code_text}）。"),
            ),
            Text::new(
                "Check the user IDs, department IDs and tag IDs in the profile, and that they are in the app's visible range (App Management → your app → Visible to).",
                "请检查配置中的成员账号、部门 ID 和标签 ID，并确认它们在应用的可见范围内（应用管理 → 对应应用 → 可见范围）。",
            ),
        ),
        93000 => Failure::new(
            "wecom_bot_bad_key",
            Permanent,
            Text::new(
                format!("WeCom rejected the group robot's webhook key ({code_text}): the key is wrong or the robot was removed from the group."),
                format!("企业微信拒绝了群机器人的 Webhook key（{code_text}）：key 不正确，或机器人已被移出群聊。"),
            ),
            Text::new(
                "Open the group's robot in WeCom, copy the webhook URL again and save the part after key= in the profile.",
                "请在企业微信群中打开该机器人，重新复制 Webhook 地址，并把 key= 后面的部分保存到配置中。",
            ),
        ),
        60011 | 50002 | 48002 | 50003 => Failure::new(
            "wecom_no_permission",
            Permanent,
            Text::new(
                format!("WeCom says the app may not do this ({code_text})."),
                format!("企业微信表示该应用没有这项权限（{code_text}）。"),
            ),
            Text::new(
                "Check that the app is enabled and that the recipients are in its visible range in the admin console.",
                "请在管理后台确认应用已启用，且接收人在应用的可见范围内。",
            ),
        ),
        40058 | 45002 | 44004 | 40008 | 40033 => Failure::new(
            "wecom_bad_content",
            Permanent,
            Text::new(
                format!("WeCom rejected the message content ({code_text})."),
                format!("企业微信拒绝了消息内容（{code_text}）。"),
            ),
            Text::new(
                "The provider's answer names the field; shorten or correct the message and resend it.",
                "请根据服务商原文中提到的字段，缩短或修改消息后重新发送。",
            ),
        ),
        40014 | 42001 | 41001 => Failure::new(
            "wecom_token_rejected",
            TokenRejected,
            Text::new(
                format!("WeCom rejected the access token ({code_text}), even after a fresh one was fetched."),
                format!("企业微信拒绝了 access_token（{code_text}），重新获取后仍然失败。"),
            ),
            Text::new(
                "Herald retries later. If this repeats, run `herald check` on the profile.",
                "Herald 稍后会重试。如果反复出现，请对该配置运行 `herald check`。",
            ),
        ),
        45009 | 45033 => Failure::new(
            "wecom_rate_limited",
            RateLimited,
            Text::new(
                format!("WeCom answered that too many messages were sent ({code_text})."),
                format!("企业微信提示发送频率超限（{code_text}）。"),
            ),
            Text::new(
                "Herald waits for the limit's window to pass and sends again; nothing is dropped.",
                "Herald 会等限流窗口过去后再次发送，消息不会丢失。",
            ),
        ),
        -1 => Failure::new(
            "wecom_busy",
            Transient,
            Text::new(
                format!("WeCom answered that it is busy ({code_text})."),
                format!("企业微信提示系统繁忙（{code_text}）。"),
            ),
            Text::new("Herald retries with backoff.", "Herald 会自动退避重试。"),
        ),
        _ => Failure::new(
            "wecom_error",
            Permanent,
            Text::new(
                format!("WeCom rejected the message ({code_text})."),
                format!("企业微信拒绝了这条消息（{code_text}）。"),
            ),
            Text::new(
                format!("Look up errcode {errcode} in WeCom's error code reference (the link is in the provider's answer)."),
                format!("请在企业微信全局错误码说明中查询 {errcode}（链接见服务商原文）。"),
            ),
        ),
    }
}

fn ip_not_trusted(from_ip: Option<&str>, context: &Context) -> Failure {
    let (ip_en, ip_zh) = match from_ip {
        Some(ip) => (ip.to_owned(), ip.to_owned()),
        None => (
            "(WeCom did not say which)".to_owned(),
            "（企业微信未给出）".to_owned(),
        ),
    };
    let mut message = Text::new(
        format!("WeCom refused the message because it came from IP {ip_en}, which is not in the app's trusted IPs (errcode 60020)."),
        format!("企业微信拒绝了这条消息：请求来自 IP {ip_zh}，该 IP 不在应用的企业可信IP中（errcode 60020）。"),
    );
    if let (Some(seen), Some(last)) = (from_ip, context.last_success_ip.as_deref()) {
        if seen != last {
            message.push(&Text::new(
                format!("The IP changed: the last successful send came from {last}."),
                format!("IP 已变化：上次发送成功时的 IP 为 {last}。"),
            ));
        }
    }
    if !context.route.en.is_empty() {
        message.push(&Text::new(
            format!(
                "Outbound route: {}; a proxy changes the IP WeCom sees.",
                context.route.en
            ),
            format!(
                "出站路线：{}；使用代理会改变企业微信看到的 IP。",
                context.route.zh
            ),
        ));
    }
    let hint = Text::new(
        format!("In the WeCom admin console open App Management (应用管理) → this app → Trusted IPs (企业可信IP) and add {ip_en}. The console asks first for a trusted domain (可信域名) or a message-receiving server URL (接收消息服务器URL). Then resend the message. A home connection whose IP changes will break again: send through a fixed-IP proxy, or set a group robot profile as the fallback."),
        format!("请在企业微信管理后台打开 应用管理 → 该应用 → 企业可信IP，添加 {ip_zh}。后台会要求先设置可信域名或接收消息服务器URL。完成后重新发送这条消息。如果网络 IP 经常变化，还会再次出错：请通过固定 IP 的代理发送，或设置一个群机器人配置作为备用。"),
    );
    Failure::new("wecom_ip_not_trusted", Class::Permanent, message, hint)
}

/// Explains an HTTP answer that is not a WeCom JSON reply.
pub fn wecom_unreadable(status: u16, body: &str) -> Failure {
    let snippet: String = body.chars().take(200).collect();
    let class = if status >= 500 || status == 429 || status == 200 {
        Class::Transient
    } else {
        Class::Permanent
    };
    Failure::new(
        "wecom_bad_answer",
        class,
        Text::new(
            format!("WeCom's answer could not be read (HTTP {status}, not the expected JSON), so the message is not counted as delivered."),
            format!("无法解析企业微信的响应（HTTP {status}，不是预期的 JSON），因此不算送达。"),
        ),
        Text::new(
            "Herald retries. If it repeats, check the profile's API base URL and proxy.",
            "Herald 会重试。如果反复出现，请检查配置中的 API 地址和代理设置。",
        ),
    )
    .with_upstream(i64::from(status), snippet)
}

/// Explains a network error on the way to a provider.
pub fn network(provider: &str, detail: &str, route: &Text) -> Failure {
    let provider_zh = match provider {
        "WeCom" => "企业微信",
        "the WeCom robot" => "企业微信群机器人",
        "the mail server" => "邮件服务器",
        "the proxy" => "代理服务器",
        other => other,
    };
    Failure::new(
        "network",
        Class::Transient,
        Text::new(
            format!("Could not reach {provider}: {detail} (outbound route: {}).", route.en),
            format!("无法连接{provider_zh}：{detail}（出站路线：{}）。", route.zh),
        ),
        Text::new(
            "Herald retries with backoff. Check the network connection and the profile's proxy setting.",
            "Herald 会自动退避重试。请检查网络连接和配置中的代理设置。",
        ),
    )
}

/// Explains why a profile's secret could not be read.
pub fn secret_unavailable(profile: &str, detail: &str) -> Failure {
    Failure::new(
        "secret_unavailable",
        Class::Transient,
        Text::new(
            format!("The secret of profile '{profile}' could not be read: {detail}. The message waits in the outbox."),
            format!("无法读取配置“{profile}”的密钥：{detail}。消息在发件箱中等待。"),
        ),
        Text::new(
            format!("Unlock the system keyring, or save the secret again with `herald profile add {profile} ... --secret-stdin`."),
            format!("请解锁系统钥匙串，或用 `herald profile add {profile} ... --secret-stdin` 重新保存密钥。"),
        ),
    )
}

/// The step of an SMTP session at which a failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpStage {
    Connect,
    Tls,
    Login,
    Sender,
    Recipients,
    Data,
}

/// Explains an SMTP failure from the reply code (if the server sent one)
/// and the server's text, decoded.
pub fn smtp(stage: SmtpStage, code: Option<u16>, text: &str, port: u16) -> Failure {
    let code_label = code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "no reply code".into());
    let transient = code.is_some_and(|c| (400..500).contains(&c));
    let class = if transient {
        Class::Transient
    } else {
        Class::Permanent
    };
    let mut failure = match (stage, code) {
        (SmtpStage::Login, Some(535 | 534 | 530 | 526)) | (SmtpStage::Login, None) => Failure::new(
            "smtp_auth",
            Class::Permanent,
            Text::new(
                format!("The mail server rejected the login ({code_label})."),
                format!("邮件服务器拒绝了登录（{code_label}）。"),
            ),
            Text::new(
                "QQ and 163 mail need SMTP turned on in the mailbox settings and an authorization code (授权码), not the login password; generating a new code revokes the old one. Gmail needs an app password. Save the code as the profile's secret: Edit in the desktop app, or `herald profile add ... --secret-stdin`.",
                "QQ 邮箱和 163 邮箱需要在邮箱设置中开启 SMTP 服务，并使用授权码登录，而不是登录密码；生成新授权码后旧的会失效。Gmail 需要应用专用密码。请把授权码保存为该配置的密钥：在桌面应用中点“编辑”，或使用 `herald profile add ... --secret-stdin`。",
            ),
        ),
        (SmtpStage::Sender, Some(501 | 553 | 550 | 554 | 440)) => Failure::new(
            "smtp_sender_rejected",
            Class::Permanent,
            Text::new(
                format!("The mail server rejected the sender address ({code_label})."),
                format!("邮件服务器拒绝了发件地址（{code_label}）。"),
            ),
            Text::new(
                "QQ, 163 and similar servers require the From address to be exactly the login account. Set From to the login address.",
                "QQ、163 等邮箱要求发件地址与登录账号完全一致。请把发件地址改为登录账号。",
            ),
        ),
        (SmtpStage::Tls, _) => Failure::new(
            "smtp_tls",
            Class::Permanent,
            Text::new(
                format!("The secure connection to the mail server on port {port} failed."),
                format!("与邮件服务器（端口 {port}）建立加密连接失败。"),
            ),
            Text::new(
                "Port 465 (and 994) expects implicit TLS (SSL); port 587 expects STARTTLS. Choose the TLS mode that matches the port, or check the server's certificate.",
                "465（及 994）端口使用 SSL/TLS，587 端口使用 STARTTLS。请选择与端口匹配的加密方式，或检查服务器证书。",
            ),
        ),
        (SmtpStage::Connect, None) => Failure::new(
            "smtp_connect",
            Class::Transient,
            Text::new(
                format!("Could not connect to the mail server on port {port}."),
                format!("无法连接邮件服务器（端口 {port}）。"),
            ),
            Text::new(
                "Herald retries with backoff. Check the host and port; many networks block port 25, so use 465 or 587.",
                "Herald 会自动退避重试。请检查服务器地址和端口；很多网络屏蔽 25 端口，请使用 465 或 587。",
            ),
        ),
        _ => Failure::new(
            if transient { "smtp_temporary" } else { "smtp_rejected" },
            class,
            Text::new(
                format!("The mail server rejected the message ({code_label})."),
                format!("邮件服务器拒绝了这封邮件（{code_label}）。"),
            ),
            if transient {
                Text::new("Herald retries with backoff.", "Herald 会自动退避重试。")
            } else {
                Text::new(
                    "The server's answer, shown with this message, names the cause.",
                    "随本消息显示的服务器原文说明了原因。",
                )
            },
        ),
    };
    failure.upstream_errcode = code.map(i64::from);
    failure.upstream_message = Some(text.trim().to_owned()).filter(|t| !t.is_empty());
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    const ERRMSG_60020: &str = "not allow to access from your ip, hint: [1658286717354964018506079], from ip: 203.0.113.7, more info at https://open.work.weixin.qq.com/devtool/query?e=60020";

    #[test]
    fn from_ip_parsed_from_60020() {
        assert_eq!(parse_from_ip(ERRMSG_60020).as_deref(), Some("203.0.113.7"));
    }

    #[test]
    fn from_ip_empty_or_missing() {
        assert_eq!(parse_from_ip("x, from ip: , more info at y"), None);
        assert_eq!(parse_from_ip("invalid credential"), None);
    }

    #[test]
    fn from_ip_accepts_ipv6() {
        let msg = "invalid webhook url, hint: [1], from ip: 2001:db8::7, more info at x";
        assert_eq!(parse_from_ip(msg).as_deref(), Some("2001:db8::7"));
    }

    #[test]
    fn ip_not_trusted_names_both_ips() {
        let context = Context {
            route: Text::new("system proxy", "系统代理"),
            last_success_ip: Some("203.0.113.5".into()),
        };
        let failure = wecom(60020, ERRMSG_60020, &context);
        assert_eq!(failure.code, "wecom_ip_not_trusted");
        assert_eq!(failure.class, Class::Permanent);
        assert_eq!(failure.upstream_errcode, Some(60020));
        assert_eq!(failure.from_ip.as_deref(), Some("203.0.113.7"));
        for lang in [Lang::En, Lang::Zh] {
            let message = failure.message.get(lang);
            assert!(message.contains("203.0.113.7"), "{message}");
            assert!(message.contains("203.0.113.5"), "{message}");
            assert!(message.contains(context.route.get(lang)), "{message}");
            assert!(failure.hint.get(lang).contains("203.0.113.7"));
            assert!(failure.hint.get(lang).contains("企业可信IP"));
            assert!(failure.hint.get(lang).contains("可信域名"));
        }
    }

    #[test]
    fn ip_not_trusted_same_ip_says_no_change() {
        let context = Context {
            last_success_ip: Some("203.0.113.7".into()),
            ..Context::default()
        };
        let failure = wecom(60020, ERRMSG_60020, &context);
        assert!(!failure.message.en.contains("changed"));
    }

    #[test]
    fn errcodes_are_classified() {
        let context = Context::default();
        let cases = [
            (40001, Class::Permanent),
            (40013, Class::Permanent),
            (60020, Class::Permanent),
            (81013, Class::Permanent),
            (93000, Class::Permanent),
            (40058, Class::Permanent),
            (-1, Class::Transient),
            (45009, Class::RateLimited),
            (45033, Class::RateLimited),
            (40014, Class::TokenRejected),
            (42001, Class::TokenRejected),
            (41001, Class::TokenRejected),
            (99999, Class::Permanent),
        ];
        for (errcode, class) in cases {
            assert_eq!(
                wecom(errcode, "x", &context).class,
                class,
                "errcode {errcode}"
            );
        }
    }

    #[test]
    fn other_errors_show_from_ip() {
        let msg = "invalid webhook url, hint: [123], from ip: 198.51.100.2, more info at https://open.work.weixin.qq.com/devtool/query?e=93000";
        let failure = wecom(93000, msg, &Context::default());
        assert!(failure.message.en.contains("198.51.100.2"));
        assert!(failure.message.zh.contains("198.51.100.2"));
    }

    #[test]
    fn non_json_answer_is_not_success() {
        let failure = wecom_unreadable(200, "<html>busy</html>");
        assert_eq!(failure.class, Class::Transient);
        assert_eq!(
            failure.upstream_message.as_deref(),
            Some("<html>busy</html>")
        );
    }
}
