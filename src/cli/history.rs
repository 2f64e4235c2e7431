//! `herald history`: recent messages, newest first.

use clap::Args;
use herald::home::Home;
use herald::i18n::Lang;
use herald::outbox::store;
use herald::relay::failure_json;
use serde_json::json;

use super::{t, Exit};

#[derive(Args)]
pub struct HistoryArgs {
    /// Only messages of this profile.
    #[arg(long)]
    profile: Option<String>,
    /// How many messages to list (1 to 10000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=10000))]
    limit: i64,
    /// Print a JSON array, including every attempt.
    #[arg(long)]
    json: bool,
}

pub async fn run(home: &Home, args: HistoryArgs, lang: Lang) -> Result<(), Exit> {
    if let Some(name) = &args.profile {
        let profiles = herald::profile::ProfileStore::open(home)?;
        let known = profiles.get(name)?.is_some();
        if !known {
            return Err(super::profile::not_found(name, lang));
        }
    }
    let connection = store::open(&home.database())?;
    let messages = store::history(&connection, args.profile.as_deref(), args.limit)?;
    if args.json {
        let mut records = Vec::new();
        for message in &messages {
            let attempts = store::attempts(&connection, &message.id)?;
            let mut record = json!({
                "id": message.id,
                "profile": message.profile,
                "status": message.status,
                "title": message.title,
                "text": message.text,
                "format": message.format,
                "source": message.source,
                "attempts": message.attempts,
                "parts": message.parts_total,
                "parts_delivered": message.parts_done,
                "created_at": message.created_at,
                "updated_at": message.updated_at,
                "fallback_of": message.fallback_of,
                "fallback_id": message.fallback_id,
                "merged_with": message.merged_with,
                "attempt_log": attempts.iter().map(|a| json!({
                    "at": a.at, "part": a.part, "parts": a.parts, "outcome": a.outcome,
                    "answer": a.answer, "error": a.error.as_ref().map(failure_json),
                })).collect::<Vec<_>>(),
            });
            if let Some(failure) = &message.error {
                if message.status != store::Status::Delivered {
                    record["error"] = failure_json(failure);
                }
            }
            records.push(record);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&records).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    if messages.is_empty() {
        println!("{}", t(lang, "No messages yet.", "还没有消息。"));
        return Ok(());
    }
    for message in &messages {
        let time = chrono::DateTime::from_timestamp_millis(message.created_at)
            .map(|d| {
                d.with_timezone(&chrono::Local)
                    .format("%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default();
        let text: String = message.text.replace('\n', " ").chars().take(40).collect();
        let status = match lang {
            Lang::En => message.status.as_str().to_owned(),
            Lang::Zh => match message.status {
                store::Status::Queued => "排队中",
                store::Status::Sending => "发送中",
                store::Status::Delivered => "已送达",
                store::Status::Failed => "失败",
            }
            .to_owned(),
        };
        println!(
            "{time}  {} {:<14} {:<9} {} {:<3} {text}",
            message.id,
            message.profile,
            status,
            t(lang, "tries", "次数"),
            message.attempts
        );
        if message.status != store::Status::Delivered {
            if let Some(failure) = &message.error {
                println!("    {}", failure.message.get(lang));
                println!("    → {}", failure.hint.get(lang));
            }
        }
        if let Some(fallback) = &message.fallback_id {
            println!(
                "    {} {fallback}",
                t(lang, "sent to the fallback as", "已转给备用配置，消息")
            );
        }
    }
    Ok(())
}
