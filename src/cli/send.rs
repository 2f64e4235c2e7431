//! `herald send` and `herald check`: talk to the provider now.

use std::time::Duration;

use clap::Args;
use herald::channel::Channels;
use herald::diagnosis::Context;
use herald::home::{now_ms, Home};
use herald::i18n::Lang;
use herald::outbox::store;
use herald::outbox::worker::Deliverer;
use herald::outbox::{NewMessage, Outbox, Status};
use herald::profile::ProfileStore;
use tokio::sync::watch;

use super::{t, Exit};

#[derive(Args)]
pub struct SendArgs {
    /// Profile to send through (default: the default profile).
    #[arg(long)]
    profile: Option<String>,
    /// Title: the email subject, or the first line in WeCom (bold in markdown).
    #[arg(long)]
    title: Option<String>,
    /// Send as markdown (WeCom).
    #[arg(long)]
    markdown: bool,
    /// The message text; `-` reads it from standard input.
    text: String,
}

/// Tries for a transient failure before `herald send` gives up.
const TRIES: usize = 3;
const LEASE_MS: i64 = 300_000;

pub async fn send(home: &Home, args: SendArgs, lang: Lang) -> Result<(), Exit> {
    let profiles = ProfileStore::open(home)?;
    let name = match args.profile {
        Some(name) => name,
        None => profiles.default_name()?.ok_or_else(|| {
            Exit::usage(t(lang, "herald: no --profile given and no default profile; set one with `herald profile default NAME`", "herald：未指定 --profile，也没有默认配置；请用 `herald profile default NAME` 设置"))
        })?,
    };
    let profile = profiles
        .get(&name)?
        .ok_or_else(|| super::profile::not_found(&name, lang))?;
    let text = if args.text == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| {
            Exit::usage(format!(
                "herald: could not read the text from standard input: {e}"
            ))
        })?
    } else {
        args.text
    };
    if text.trim().is_empty() {
        return Err(Exit::usage(t(
            lang,
            "herald: the text is empty",
            "herald：消息内容为空",
        )));
    }

    let title = args.title.filter(|t| !t.trim().is_empty());
    let parts =
        herald::channel::parts_needed(&profile.kind, title.as_deref(), &text, args.markdown);
    if parts > herald::channel::MAX_PARTS {
        return Err(Exit::usage(match lang {
            Lang::En => format!(
                "herald: the text needs {parts} messages on profile '{}', more than the {} Herald sends for one notice; shorten it or use an email profile",
                profile.name,
                herald::channel::MAX_PARTS
            ),
            Lang::Zh => format!(
                "herald：这段内容在配置“{}”上需要拆成 {parts} 条消息，超过单条通知最多 {} 条的限制；请缩短内容或改用邮件配置",
                profile.name,
                herald::channel::MAX_PARTS
            ),
        }));
    }

    let outbox = Outbox::open(home)?;
    let owner = format!("cli:{}", std::process::id());
    let message = NewMessage {
        profile: profile.name.clone(),
        title,
        text,
        markdown: args.markdown,
        source: "cli",
    };
    let lease = Some((owner.as_str(), now_ms() + LEASE_MS));
    let id = outbox
        .run_blocking(|c| store::insert(c, &[message], lease))?
        .remove(0);

    let (_stop, stopping) = watch::channel(false);
    let deliverer = Deliverer::new(
        outbox.clone(),
        profiles.clone(),
        Channels::new(home),
        stopping,
    );
    let status = deliver_now(&deliverer, &owner, &id, lang).await?;
    if status == Status::Delivered {
        return Ok(());
    }

    // A permanent failure queued the message for the fallback profile.
    let fallback_id = outbox
        .run_blocking(|c| store::get(c, &id))?
        .and_then(|m| m.fallback_id);
    if let (Some(fallback_id), Some(fallback)) = (fallback_id, profile.fallback.as_deref()) {
        eprintln!(
            "{} {fallback}",
            t(lang, "Trying the fallback profile", "改用备用配置发送：")
        );
        if deliver_now(&deliverer, &owner, &fallback_id, lang).await? == Status::Delivered {
            return Ok(());
        }
    }
    Err(Exit::failed(String::new()))
}

/// Delivers one stored message, retrying transient failures a few times.
async fn deliver_now(
    deliverer: &Deliverer,
    owner: &str,
    id: &str,
    lang: Lang,
) -> Result<Status, Exit> {
    for attempt in 1..=TRIES {
        let (id_owned, owner_owned) = (id.to_owned(), owner.to_owned());
        let claimed = deliverer
            .outbox
            .run(move |c| store::claim_id(c, &id_owned, &owner_owned, now_ms() + LEASE_MS))
            .await?;
        let Some(message) = claimed else {
            return Err(Exit::failed(format!(
                "herald: message {id} is being sent by another process"
            )));
        };
        let profile = deliverer
            .profiles
            .get(&message.profile)?
            .ok_or_else(|| super::profile::not_found(&message.profile, lang))?;
        let last = attempt == TRIES;
        let result = deliverer.attempt(&profile, vec![message], last).await;
        match result.status {
            Status::Delivered => {
                let stored = deliverer.outbox.get(id).await?;
                let parts = stored.map(|m| m.parts_total).unwrap_or(1);
                println!(
                    "{} {} (id {id}{})",
                    t(lang, "Delivered through", "已送达，配置"),
                    profile.name,
                    if parts > 1 {
                        format!(", {parts} parts")
                    } else {
                        String::new()
                    }
                );
                return Ok(Status::Delivered);
            }
            Status::Failed => {
                if let Some(failure) = &result.failure {
                    eprintln!(
                        "{} {}\n{}",
                        t(lang, "Delivery failed:", "发送失败："),
                        profile.name,
                        failure.render(lang)
                    );
                }
                return Ok(Status::Failed);
            }
            _ => {
                if let Some(failure) = &result.failure {
                    if failure.code == "secret_unavailable" {
                        eprintln!("{}", failure.render(lang));
                        return Ok(Status::Failed);
                    }
                    eprintln!(
                        "{} {}",
                        t(
                            lang,
                            "Attempt failed, retrying:",
                            "本次尝试失败，正在重试："
                        ),
                        failure.message.get(lang)
                    );
                }
                tokio::time::sleep(Duration::from_secs(attempt as u64 * 2)).await;
            }
        }
    }
    Ok(Status::Failed)
}

pub async fn check(home: &Home, name: &str, lang: Lang) -> Result<(), Exit> {
    let profiles = ProfileStore::open(home)?;
    let profile = profiles
        .get(name)?
        .ok_or_else(|| super::profile::not_found(name, lang))?;
    println!(
        "{} {}",
        t(lang, "Secret store:", "密钥存储："),
        profile.secret_store.describe(home, lang)
    );
    let secret = profiles.secret(&profile).map_err(|e| {
        Exit::failed(herald::diagnosis::secret_unavailable(name, &format!("{e:#}")).render(lang))
    })?;
    let report = herald::profile::validate::check(&profile, &profiles.list()?);
    for warning in &report.warnings {
        eprintln!("{} {}", t(lang, "warning:", "警告："), warning.get(lang));
    }
    let context = Context {
        route: profile.proxy.describe(),
        last_success_ip: None,
    };
    match Channels::new(home).check(&profile, &secret, &context).await {
        Ok(accepted) => {
            println!(
                "{} {name}: {}",
                t(lang, "Check passed for", "检查通过："),
                accepted.answer
            );
            Ok(())
        }
        Err(failure) => Err(Exit::failed(format!(
            "{} {name}\n{}",
            t(lang, "Check failed for", "检查失败："),
            failure.render(lang)
        ))),
    }
}
