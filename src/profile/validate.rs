//! Checks made when a profile is saved, before anything is sent.

use std::collections::HashSet;

use crate::i18n::Text;

use super::{Kind, Profile, Proxy, TlsMode};

/// The result of checking a profile: errors block saving, warnings do not.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub errors: Vec<Text>,
    pub warnings: Vec<Text>,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    fn error(&mut self, en: impl Into<String>, zh: impl Into<String>) {
        self.errors.push(Text::new(en, zh));
    }

    fn warn(&mut self, en: impl Into<String>, zh: impl Into<String>) {
        self.warnings.push(Text::new(en, zh));
    }
}

/// Checks `profile` against itself and the other saved profiles.
pub fn check(profile: &Profile, others: &[Profile]) -> Report {
    let mut report = Report::default();
    check_name(&profile.name, &mut report);
    match &profile.kind {
        Kind::WecomApp {
            corp_id,
            agent_id,
            to_user,
            to_party,
            to_tag,
            api_base,
        } => {
            if corp_id.trim().is_empty() {
                report.error("The corp ID is missing.", "缺少企业 ID（corp id）。");
            }
            if *agent_id <= 0 {
                report.error(
                    format!("Invalid agent ID {agent_id}: it must be the positive number shown on the app's page."),
                    format!("AgentId {agent_id} 无效：应为应用页面上显示的正整数。"),
                );
            }
            if to_user.is_empty() && to_party.is_empty() && to_tag.is_empty() {
                report.error(
                    "Recipients are missing: give at least one user, department or tag.",
                    "缺少接收人：请至少填写一个成员、部门或标签。",
                );
            }
            if to_user.len() > 1000 || to_party.len() > 100 || to_tag.len() > 100 {
                report.error(
                    "Too many recipients: WeCom takes at most 1,000 users, 100 departments and 100 tags.",
                    "接收人过多：企业微信最多支持 1000 个成员、100 个部门和 100 个标签。",
                );
            }
            check_api_base(api_base.as_deref(), &mut report);
        }
        Kind::WecomBot { api_base } => check_api_base(api_base.as_deref(), &mut report),
        Kind::Email {
            smtp_host,
            smtp_port,
            tls,
            username,
            from,
            to,
            ..
        } => check_email(
            smtp_host,
            *smtp_port,
            *tls,
            username,
            from,
            to,
            &profile.proxy,
            &mut report,
        ),
    }
    check_fallback(profile, others, &mut report);
    report
}

fn check_name(name: &str, report: &mut Report) {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid {
        report.error(
            format!("Invalid profile name '{name}': use 1 to 64 letters, digits, '-', '_' or '.'."),
            format!("配置名称“{name}”无效：请使用 1 到 64 个字母、数字、“-”、“_”或“.”。"),
        );
    }
}

fn check_api_base(api_base: Option<&str>, report: &mut Report) {
    let Some(base) = api_base else { return };
    match url::Url::parse(base) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => report.error(
            format!(
                "Invalid API base URL '{base}': use a URL such as https://qyapi.weixin.qq.com."
            ),
            format!("API 地址“{base}”无效：请填写类似 https://qyapi.weixin.qq.com 的地址。"),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn check_email(
    host: &str,
    port: u16,
    tls: TlsMode,
    username: &str,
    from: &str,
    to: &[String],
    proxy: &Proxy,
    report: &mut Report,
) {
    if host.trim().is_empty() {
        report.error("The SMTP host is missing.", "缺少 SMTP 服务器地址。");
    }
    if port == 0 {
        report.error(
            "Invalid SMTP port 0: use 465 (implicit TLS) or 587 (STARTTLS).",
            "SMTP 端口 0 无效：请使用 465（SSL/TLS）或 587（STARTTLS）。",
        );
    }
    if username.trim().is_empty() {
        report.error("The SMTP username is missing.", "缺少 SMTP 用户名。");
    }
    if from.parse::<lettre::Address>().is_err() {
        report.error(
            format!("Invalid From address '{from}': use a bare address such as name@qq.com."),
            format!("发件地址“{from}”无效：请填写类似 name@qq.com 的纯邮箱地址。"),
        );
    }
    if to.is_empty() {
        report.error(
            "Recipients are missing: give at least one To address.",
            "缺少收件人：请至少填写一个收件地址。",
        );
    }
    for address in to {
        if address.parse::<lettre::Address>().is_err() {
            report.error(
                format!("Invalid recipient address '{address}'."),
                format!("收件地址“{address}”无效。"),
            );
        }
    }
    if matches!(proxy, Proxy::Url(_)) {
        report.error(
            "Email profiles cannot use a proxy URL: SMTP connects directly. Use --proxy system or none.",
            "邮件配置不支持代理地址：SMTP 直接连接。请使用 --proxy system 或 none。",
        );
    }

    // QQ, 163 and similar servers reject a MAIL FROM other than the login
    // with 501 or 553.
    if username.contains('@') && !from.eq_ignore_ascii_case(username) {
        report.warn(
            format!("The From address {from} differs from the login {username}: QQ and 163 mail reject such mail (501 or 553). Use the login as From."),
            format!("发件地址 {from} 与登录账号 {username} 不同：QQ 邮箱和 163 邮箱会拒收（501 或 553）。请使用登录账号作为发件地址。"),
        );
    }
    if let Some(text) = port_mode_mismatch(port, tls) {
        report.warnings.push(text);
    }
}

/// Explains a port and TLS mode that do not go together, as when "SSL" is
/// chosen on the STARTTLS port 587.
pub fn port_mode_mismatch(port: u16, tls: TlsMode) -> Option<Text> {
    let expected = suggested_tls(port)?;
    if expected == tls {
        return None;
    }
    Some(Text::new(
        format!("Port {port} usually expects {}, but the profile uses {}: port 465 is implicit TLS (SSL) and 587 is STARTTLS.", mode_en(expected), mode_en(tls)),
        format!("端口 {port} 通常使用 {}，但配置选择了 {}：465 端口对应 SSL/TLS，587 端口对应 STARTTLS。", mode_zh(expected), mode_zh(tls)),
    ))
}

/// The TLS mode a well-known submission port expects.
pub fn suggested_tls(port: u16) -> Option<TlsMode> {
    match port {
        465 | 994 => Some(TlsMode::Implicit),
        587 => Some(TlsMode::Starttls),
        _ => None,
    }
}

fn mode_en(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Implicit => "implicit TLS",
        TlsMode::Starttls => "STARTTLS",
        TlsMode::None => "no encryption",
    }
}

fn mode_zh(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Implicit => "SSL/TLS",
        TlsMode::Starttls => "STARTTLS",
        TlsMode::None => "不加密",
    }
}

fn check_fallback(profile: &Profile, others: &[Profile], report: &mut Report) {
    let Some(first) = &profile.fallback else {
        return;
    };
    let mut seen = HashSet::from([profile.name.as_str()]);
    let mut next = Some(first.as_str());
    let mut chain = vec![profile.name.as_str()];
    while let Some(name) = next {
        chain.push(name);
        if !seen.insert(name) {
            report.error(
                format!("The fallback chain loops: {}.", chain.join(" → ")),
                format!("备用配置形成了循环：{}。", chain.join(" → ")),
            );
            return;
        }
        let Some(target) = others.iter().find(|p| p.name == name) else {
            report.error(
                format!("The fallback profile '{name}' does not exist: create it first."),
                format!("备用配置“{name}”不存在：请先创建它。"),
            );
            return;
        };
        next = target.fallback.as_deref();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::secret::StoreKind;

    fn bot(name: &str, fallback: Option<&str>) -> Profile {
        Profile {
            name: name.into(),
            kind: Kind::WecomBot { api_base: None },
            proxy: Proxy::System,
            fallback: fallback.map(Into::into),
            relay_key: "k".into(),
            secret_store: StoreKind::File,
        }
    }

    fn email(port: u16, tls: TlsMode, username: &str, from: &str, to: &[&str]) -> Profile {
        Profile {
            kind: Kind::Email {
                smtp_host: "smtp.qq.com".into(),
                smtp_port: port,
                tls,
                username: username.into(),
                from: from.into(),
                to: to.iter().map(|s| s.to_string()).collect(),
                ca_file: None,
            },
            ..bot("mail", None)
        }
    }

    #[test]
    fn app_without_recipients_is_rejected() {
        let profile = Profile {
            kind: Kind::WecomApp {
                corp_id: "ww1".into(),
                agent_id: 1000002,
                to_user: vec![],
                to_party: vec![],
                to_tag: vec![],
                api_base: None,
            },
            ..bot("app", None)
        };
        let report = check(&profile, &[]);
        assert_eq!(report.errors.len(), 1);
        assert!(report.errors[0].en.contains("Recipients are missing"));
    }

    #[test]
    fn fallback_loop_is_rejected() {
        let a = bot("a", Some("b"));
        let b = bot("b", Some("c"));
        let c = bot("c", Some("a"));
        let report = check(&a, &[b, c]);
        assert_eq!(report.errors.len(), 1);
        assert!(
            report.errors[0].en.contains("a → b → c → a"),
            "{}",
            report.errors[0].en
        );
    }

    #[test]
    fn fallback_to_self_is_rejected() {
        let report = check(&bot("a", Some("a")), &[]);
        assert!(report.errors[0].en.contains("loops"));
    }

    #[test]
    fn missing_fallback_is_rejected() {
        let report = check(&bot("a", Some("ghost")), &[]);
        assert!(report.errors[0].en.contains("'ghost' does not exist"));
    }

    #[test]
    fn email_from_differing_from_login_warns() {
        let profile = email(
            465,
            TlsMode::Implicit,
            "me@qq.com",
            "other@qq.com",
            &["to@163.com"],
        );
        let report = check(&profile, &[]);
        assert!(report.is_ok());
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].en.contains("501 or 553"));
    }

    #[test]
    fn email_port_587_with_implicit_tls_warns() {
        let profile = email(
            587,
            TlsMode::Implicit,
            "me@qq.com",
            "me@qq.com",
            &["to@163.com"],
        );
        let report = check(&profile, &[]);
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].en.contains("587 is STARTTLS"));
    }

    #[test]
    fn email_bad_addresses_are_rejected() {
        let profile = email(
            465,
            TlsMode::Implicit,
            "me@qq.com",
            "张三 <me@qq.com>",
            &["not-an-address"],
        );
        let report = check(&profile, &[]);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    }

    #[test]
    fn bad_names_are_rejected() {
        for name in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(!check(&bot(name, None), &[]).is_ok(), "{name:?}");
        }
        assert!(check(&bot("交易-1", None), &[]).is_ok());
    }
}
