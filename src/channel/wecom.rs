//! WeCom self-built app messages and group robot messages.
//!
//! WeCom answers errors with HTTP 200 and an `errcode`, so every answer is
//! parsed: only errcode 0 with at least one valid recipient is acceptance.

use serde::Deserialize;
use serde_json::{json, Value};

use super::token::{describe_reqwest, TokenCache};
use super::{Accepted, Outcome, Part};
use crate::diagnosis::{self, Class, Context, Failure};
use crate::i18n::Text;
use crate::profile::{Kind, Profile};

/// The fields of a WeCom answer that Herald reads.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Answer {
    errcode: i64,
    #[serde(default)]
    errmsg: String,
    #[serde(default)]
    invaliduser: String,
    #[serde(default)]
    invalidparty: String,
    #[serde(default)]
    invalidtag: String,
    #[serde(default)]
    unlicenseduser: String,
    #[serde(default)]
    msgid: String,
}

/// Reads a WeCom JSON answer. An answer that is not JSON or lacks an
/// `errcode` is a failure, whatever its HTTP status.
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, Failure> {
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| {
        diagnosis::wecom_unreadable(
            status,
            &format!("the answer could not be read: {}", describe_reqwest(&e)),
        )
    })?;
    let text = String::from_utf8_lossy(&body);
    if status != 200 {
        return Err(diagnosis::wecom_unreadable(status, &text));
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|_| diagnosis::wecom_unreadable(status, &text))?;
    if !value.get("errcode").is_some_and(Value::is_i64) {
        return Err(diagnosis::wecom_unreadable(status, &text));
    }
    serde_json::from_value(value).map_err(|_| diagnosis::wecom_unreadable(status, &text))
}

fn body_for(part: Part<'_>) -> (String, Value) {
    let kind = if part.markdown { "markdown" } else { "text" };
    (kind.to_owned(), json!({ "content": part.content }))
}

pub(super) async fn send_app(
    client: &reqwest::Client,
    tokens: &TokenCache,
    profile: &Profile,
    secret: &str,
    part: Part<'_>,
    context: &Context,
) -> Outcome {
    let Kind::WecomApp {
        corp_id,
        agent_id,
        to_user,
        to_party,
        to_tag,
        ..
    } = &profile.kind
    else {
        unreachable!("send_app called for a {} profile", profile.kind.name());
    };
    let base = profile.kind.api_base().trim_end_matches('/');
    let (msgtype, content) = body_for(part);
    let mut body = json!({ "msgtype": msgtype, "agentid": agent_id, msgtype.clone(): content });
    for (field, values) in [
        ("touser", to_user),
        ("toparty", to_party),
        ("totag", to_tag),
    ] {
        if !values.is_empty() {
            body[field] = Value::String(values.join("|"));
        }
    }

    // A rejected token is refreshed and the send retried once: WeCom answers
    // 40014 or 42001 for a stale token and may invalidate one early.
    let mut rejected: Option<String> = None;
    let mut seen_ip: Option<String> = None;
    loop {
        let token = tokens
            .get(client, base, corp_id, secret, rejected.as_deref(), context)
            .await?;
        let response = client
            .post(format!("{base}/cgi-bin/message/send"))
            .query(&[("access_token", token.value.as_str())])
            .json(&body)
            .send()
            .await
            .map_err(|e| diagnosis::network("WeCom", &describe_reqwest(&e), &context.route))?;
        let answer: Answer = read_json(response).await?;
        if answer.errcode == 0 {
            return accept_app(answer, to_user, to_party, to_tag, seen_ip);
        }
        let failure = diagnosis::wecom(answer.errcode, &answer.errmsg, context);
        if failure.class == Class::TokenRejected && rejected.is_none() {
            tracing::info!(profile = %profile.name, errcode = answer.errcode, "WeCom rejected the access token; refreshing it");
            seen_ip = failure.from_ip.clone();
            rejected = Some(token.value);
            continue;
        }
        return Err(failure);
    }
}

/// Turns an errcode-0 answer into acceptance, unless it lists every
/// recipient as invalid.
fn accept_app(
    answer: Answer,
    to_user: &[String],
    to_party: &[String],
    to_tag: &[String],
    from_ip: Option<String>,
) -> Outcome {
    let split = |s: &str| -> Vec<String> {
        s.split('|')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let invalid_users = split(&answer.invaliduser);
    let unlicensed = split(&answer.unlicenseduser);
    let invalid_parties = split(&answer.invalidparty);
    let invalid_tags = split(&answer.invalidtag);

    // WeCom lowercases user ids in its answer.
    let is_bad_user = |user: &String| {
        invalid_users
            .iter()
            .chain(&unlicensed)
            .any(|bad| bad.eq_ignore_ascii_case(user))
    };
    let all_users_bad = to_user.iter().all(|u| u != "@all" && is_bad_user(u));
    let all_parties_bad = to_party.iter().all(|p| invalid_parties.contains(p));
    let all_tags_bad = to_tag.iter().all(|t| invalid_tags.contains(t));
    let mut rejected: Vec<String> = Vec::new();
    rejected.extend(invalid_users.iter().map(|u| format!("user {u}")));
    rejected.extend(unlicensed.iter().map(|u| format!("user {u} (no license)")));
    rejected.extend(invalid_parties.iter().map(|p| format!("department {p}")));
    rejected.extend(invalid_tags.iter().map(|t| format!("tag {t}")));

    if all_users_bad && all_parties_bad && all_tags_bad {
        let names = rejected.join(", ");
        return Err(Failure::new(
            "wecom_no_valid_recipient",
            Class::Permanent,
            Text::new(
                format!("WeCom accepted the request but found every recipient invalid: {names}."),
                format!("企业微信接受了请求，但所有接收人都无效：{names}。"),
            ),
            Text::new(
                "Check the user IDs, departments and tags in the profile and the app's visible range.",
                "请检查配置中的成员账号、部门和标签，以及应用的可见范围。",
            ),
        )
        .with_upstream(0, answer.errmsg));
    }
    let mut summary = format!("errcode 0, msgid {}", answer.msgid);
    if !rejected.is_empty() {
        summary.push_str(&format!("; not delivered to {}", rejected.join(", ")));
    }
    Ok(Accepted {
        answer: summary,
        rejected_recipients: rejected,
        from_ip,
    })
}

pub(super) async fn send_bot(
    client: &reqwest::Client,
    profile: &Profile,
    key: &str,
    part: Part<'_>,
    context: &Context,
) -> Outcome {
    let base = profile.kind.api_base().trim_end_matches('/');
    let (msgtype, content) = body_for(part);
    let body = json!({ "msgtype": msgtype, msgtype.clone(): content });
    let response = client
        .post(format!("{base}/cgi-bin/webhook/send"))
        .query(&[("key", key)])
        .json(&body)
        .send()
        .await
        .map_err(|e| {
            diagnosis::network("the WeCom robot", &describe_reqwest(&e), &context.route)
        })?;
    let answer: Answer = read_json(response).await?;
    if answer.errcode != 0 {
        return Err(diagnosis::wecom(answer.errcode, &answer.errmsg, context));
    }
    Ok(Accepted {
        answer: "errcode 0".to_owned(),
        ..Accepted::default()
    })
}

pub(super) async fn check_app(
    client: &reqwest::Client,
    tokens: &TokenCache,
    profile: &Profile,
    secret: &str,
    context: &Context,
) -> Outcome {
    let Kind::WecomApp { corp_id, .. } = &profile.kind else {
        unreachable!("check_app called for a {} profile", profile.kind.name());
    };
    let base = profile.kind.api_base().trim_end_matches('/');
    tokens.forget(base, corp_id, secret).await;
    tokens
        .get(client, base, corp_id, secret, None, context)
        .await?;
    Ok(Accepted {
        answer: "access token issued".to_owned(),
        ..Accepted::default()
    })
}

/// Verifies a robot key without posting to the group: the robot's media
/// upload checks the key (93000 when it is wrong) and stores the file only
/// for the robot, for three days.
pub(super) async fn check_bot(
    client: &reqwest::Client,
    profile: &Profile,
    key: &str,
    context: &Context,
) -> Outcome {
    let base = profile.kind.api_base().trim_end_matches('/');
    let media = reqwest::multipart::Part::bytes(b"Herald key check\n".to_vec())
        .file_name("herald-check.txt")
        .mime_str("text/plain")
        .expect("text/plain is a valid MIME type");
    let form = reqwest::multipart::Form::new().part("media", media);
    let response = client
        .post(format!("{base}/cgi-bin/webhook/upload_media"))
        .query(&[("key", key), ("type", "file")])
        .multipart(form)
        .send()
        .await
        .map_err(|e| {
            diagnosis::network("the WeCom robot", &describe_reqwest(&e), &context.route)
        })?;
    let answer: Answer = read_json(response).await?;
    if answer.errcode != 0 {
        return Err(diagnosis::wecom(answer.errcode, &answer.errmsg, context));
    }
    Ok(Accepted {
        answer:
            "the robot key is valid (checked with a media upload; nothing was posted to the group)"
                .to_owned(),
        ..Accepted::default()
    })
}
