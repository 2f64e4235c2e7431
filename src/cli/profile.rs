//! `herald profile ...`: add, list, show, remove, default.

use std::io::{IsTerminal, Read};

use clap::{Args, Subcommand, ValueEnum};
use herald::home::{mask, Home};
use herald::i18n::Lang;
use herald::outbox::store;
use herald::profile::{Kind, Profile, ProfileStore, Proxy, TlsMode};
use serde_json::json;

use super::{t, Exit};

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Create or update a profile; the secret is read from standard input.
    Add(Box<AddArgs>),
    /// List the profiles with their kind and last outcome.
    List,
    /// Show one profile; secrets are masked.
    Show {
        name: String,
        /// Print JSON, including relay_key and the masked secret.
        #[arg(long)]
        json: bool,
    },
    /// Remove a profile and its secret.
    Remove { name: String },
    /// Make a profile the default for messages that name none.
    Default { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    WecomApp,
    WecomBot,
    Email,
}

#[derive(Args)]
pub struct AddArgs {
    /// Profile name: letters, digits, '-', '_' or '.'.
    name: String,
    #[arg(long, value_enum)]
    kind: KindArg,
    /// Read the secret (app secret, robot key, or SMTP password/authorization code) from standard input.
    #[arg(long)]
    secret_stdin: bool,
    /// WeCom corp ID (wecom-app).
    #[arg(long)]
    corp_id: Option<String>,
    /// WeCom app AgentId (wecom-app).
    #[arg(long)]
    agent_id: Option<i64>,
    /// Recipient user IDs, separated by '|' (wecom-app).
    #[arg(long)]
    to_user: Option<String>,
    /// Recipient department IDs, separated by '|' (wecom-app).
    #[arg(long)]
    to_party: Option<String>,
    /// Recipient tag IDs, separated by '|' (wecom-app).
    #[arg(long)]
    to_tag: Option<String>,
    /// Replaces https://qyapi.weixin.qq.com (private deployment, proxy or test server).
    #[arg(long)]
    api_base: Option<String>,
    /// SMTP server host (email).
    #[arg(long)]
    smtp_host: Option<String>,
    /// SMTP server port, e.g. 465 or 587 (email).
    #[arg(long)]
    smtp_port: Option<u16>,
    /// implicit (SSL, port 465), starttls (port 587) or none (email).
    #[arg(long)]
    tls: Option<String>,
    /// SMTP login (email).
    #[arg(long)]
    username: Option<String>,
    /// From address; QQ and 163 mail require it to equal the login (email).
    #[arg(long)]
    from: Option<String>,
    /// Recipient addresses, separated by ',' (email).
    #[arg(long)]
    to: Option<String>,
    /// Extra CA certificate (PEM file) to trust for the SMTP server (email).
    #[arg(long)]
    ca_file: Option<String>,
    /// Outbound route: system, none, or a proxy URL such as http://host:3128.
    #[arg(long, default_value = "system")]
    proxy: String,
    /// Profile that gets a message when this one fails for good.
    #[arg(long)]
    fallback: Option<String>,
}

pub async fn run(home: &Home, command: ProfileCommand, lang: Lang) -> Result<(), Exit> {
    let store = ProfileStore::open(home)?;
    match command {
        ProfileCommand::Add(args) => add(&store, *args, lang),
        ProfileCommand::List => list(&store, home, lang),
        ProfileCommand::Show { name, json } => show(&store, &name, json, lang),
        ProfileCommand::Remove { name } => match store.remove(&name) {
            Ok(true) => {
                println!("{} {name}", t(lang, "Removed profile", "已删除配置"));
                Ok(())
            }
            Ok(false) => Err(not_found(&name, lang)),
            Err(error) => Err(Exit::usage(format!("herald: {error:#}"))),
        },
        ProfileCommand::Default { name } => {
            store
                .set_default(&name)
                .map_err(|e| Exit::usage(format!("herald: {e:#}")))?;
            println!("{} {name}", t(lang, "Default profile:", "默认配置："));
            Ok(())
        }
    }
}

pub fn not_found(name: &str, lang: Lang) -> Exit {
    Exit::usage(match lang {
        Lang::En => format!(
            "herald: profile '{name}' not found; `herald profile list` shows the saved profiles"
        ),
        Lang::Zh => {
            format!("herald：找不到配置“{name}”；运行 `herald profile list` 查看已保存的配置")
        }
    })
}

fn split_list(value: Option<&str>, separator: char) -> Vec<String> {
    herald::profile::split_list(value.unwrap_or(""), separator)
}

fn require(value: Option<String>, flag: &str, kind: &str) -> Result<String, Exit> {
    value.ok_or_else(|| Exit::usage(format!("herald: --{flag} is required for a {kind} profile")))
}

fn build_kind(args: &AddArgs) -> Result<Kind, Exit> {
    Ok(match args.kind {
        KindArg::WecomApp => Kind::WecomApp {
            corp_id: require(args.corp_id.clone(), "corp-id", "wecom-app")?,
            agent_id: args.agent_id.ok_or_else(|| {
                Exit::usage("herald: --agent-id is required for a wecom-app profile")
            })?,
            to_user: split_list(args.to_user.as_deref(), '|'),
            to_party: split_list(args.to_party.as_deref(), '|'),
            to_tag: split_list(args.to_tag.as_deref(), '|'),
            api_base: args.api_base.clone(),
        },
        KindArg::WecomBot => Kind::WecomBot {
            api_base: args.api_base.clone(),
        },
        KindArg::Email => Kind::Email {
            smtp_host: require(args.smtp_host.clone(), "smtp-host", "email")?,
            smtp_port: args.smtp_port.ok_or_else(|| {
                Exit::usage("herald: --smtp-port is required for an email profile")
            })?,
            tls: require(args.tls.clone(), "tls", "email")?
                .parse::<TlsMode>()
                .map_err(|e| Exit::usage(format!("herald: {e}")))?,
            username: require(args.username.clone(), "username", "email")?,
            from: require(args.from.clone(), "from", "email")?,
            to: split_list(args.to.as_deref(), ','),
            ca_file: args.ca_file.clone(),
        },
    })
}

/// Reads a secret from standard input, without its trailing newline.
fn read_secret(lang: Lang) -> Result<String, Exit> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("{}", t(lang, "Type the secret and press Enter (it is visible as you type; pipe it in to hide it):", "请输入密钥后按回车（输入内容可见；用管道传入可隐藏）："));
        let mut line = String::new();
        stdin
            .read_line(&mut line)
            .map_err(|e| Exit::usage(format!("herald: could not read the secret: {e}")))?;
        return finish_secret(line, lang);
    }
    let mut bytes = Vec::new();
    stdin.read_to_end(&mut bytes).map_err(|e| {
        Exit::usage(format!(
            "herald: could not read the secret from standard input: {e}"
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Exit::usage("herald: the secret on standard input is not valid UTF-8"))?;
    finish_secret(text, lang)
}

fn finish_secret(mut text: String, lang: Lang) -> Result<String, Exit> {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(Exit::usage(t(
            lang,
            "herald: the secret on standard input is empty",
            "herald：标准输入中的密钥为空",
        )));
    }
    Ok(text)
}

fn add(store: &ProfileStore, args: AddArgs, lang: Lang) -> Result<(), Exit> {
    let kind = build_kind(&args)?;
    let proxy = Proxy::parse(&args.proxy).map_err(|e| Exit::usage(format!("herald: {e}")))?;
    let existing = store.get(&args.name)?;
    if existing.is_none() && !args.secret_stdin {
        return Err(Exit::usage(t(
            lang,
            "herald: a new profile needs its secret: pass --secret-stdin and pipe the secret in, e.g. `printf '%s' \"$SECRET\" | herald profile add ...`. Secrets are never taken as arguments.",
            "herald：新配置需要密钥：请加上 --secret-stdin 并通过管道传入，例如 `printf '%s' \"$SECRET\" | herald profile add ...`。密钥不接受命令行参数。",
        )));
    }
    let secret = if args.secret_stdin {
        Some(read_secret(lang)?)
    } else {
        None
    };
    let profile = Profile {
        name: args.name.clone(),
        kind,
        proxy,
        fallback: args.fallback.clone(),
        relay_key: String::new(),
        secret_store: Default::default(),
    };
    let saved = store.save(profile, secret.as_deref())?;
    if !saved.report.is_ok() {
        let mut text = t(
            lang,
            "herald: the profile was not saved:",
            "herald：配置未保存：",
        );
        for error in &saved.report.errors {
            text.push_str(&format!("\n  - {}", error.get(lang)));
        }
        return Err(Exit::usage(text));
    }
    for warning in &saved.report.warnings {
        eprintln!("{} {}", t(lang, "warning:", "警告："), warning.get(lang));
    }
    if let Some(why) = &saved.keyring_fallback {
        eprintln!(
            "{} {} {}",
            t(lang, "warning: the secret is stored in", "警告：密钥保存在"),
            saved.profile.secret_store.describe(store.home(), lang),
            match lang {
                Lang::En => format!("because {why}."),
                Lang::Zh => format!("，因为系统钥匙串不可用：{why}。"),
            }
        );
    }
    let verb = if existing.is_some() {
        t(lang, "Updated profile", "已更新配置")
    } else {
        t(lang, "Added profile", "已添加配置")
    };
    println!(
        "{verb} {} ({})",
        saved.profile.name,
        saved.profile.kind.name()
    );
    println!(
        "{} {}",
        t(lang, "Secret stored in", "密钥保存在"),
        saved.profile.secret_store.describe(store.home(), lang)
    );
    Ok(())
}

fn summary(profile: &Profile) -> String {
    match &profile.kind {
        Kind::WecomApp {
            corp_id,
            agent_id,
            to_user,
            to_party,
            to_tag,
            ..
        } => {
            let mut to = Vec::new();
            if !to_user.is_empty() {
                to.push(format!("users {}", to_user.join("|")));
            }
            if !to_party.is_empty() {
                to.push(format!("departments {}", to_party.join("|")));
            }
            if !to_tag.is_empty() {
                to.push(format!("tags {}", to_tag.join("|")));
            }
            format!("corp {corp_id}, agent {agent_id}, to {}", to.join(", "))
        }
        Kind::WecomBot { .. } => "group robot".to_owned(),
        Kind::Email {
            smtp_host,
            smtp_port,
            to,
            ..
        } => format!("{smtp_host}:{smtp_port} to {}", to.join(", ")),
    }
}

fn list(store: &ProfileStore, home: &Home, lang: Lang) -> Result<(), Exit> {
    let profiles = store.list()?;
    if profiles.is_empty() {
        println!("{}", t(lang, "No profiles yet. Add one with `herald profile add NAME --kind wecom-app|wecom-bot|email ... --secret-stdin`.", "还没有配置。请用 `herald profile add NAME --kind wecom-app|wecom-bot|email ... --secret-stdin` 添加。"));
        return Ok(());
    }
    let default = store.default_name()?;
    let connection = store::open(&home.database()).ok();
    for profile in profiles {
        let marker = if default.as_deref() == Some(profile.name.as_str()) {
            "*"
        } else {
            " "
        };
        let state = connection
            .as_ref()
            .and_then(|c| store::profile_state(c, &profile.name).ok())
            .unwrap_or_default();
        let last = match (state.last_success_at, state.last_error_at) {
            (Some(ok), Some(err)) if err > ok => last_error(&state, lang),
            (None, Some(_)) => last_error(&state, lang),
            (Some(_), _) => t(lang, "last delivery ok", "上次发送成功"),
            (None, None) => t(lang, "nothing sent yet", "尚未发送"),
        };
        let fallback = profile
            .fallback
            .as_deref()
            .map(|f| format!(", fallback {f}"))
            .unwrap_or_default();
        println!(
            "{marker} {:<16} {:<10} {}{fallback} — {last}",
            profile.name,
            profile.kind.name(),
            summary(&profile)
        );
    }
    Ok(())
}

fn last_error(state: &store::ProfileState, lang: Lang) -> String {
    let message = state
        .last_error
        .as_ref()
        .map(|f| f.message.get(lang).to_owned())
        .unwrap_or_default();
    format!(
        "{} {message}",
        t(lang, "last delivery failed:", "上次发送失败：")
    )
}

fn show(store: &ProfileStore, name: &str, as_json: bool, lang: Lang) -> Result<(), Exit> {
    let profile = store.get(name)?.ok_or_else(|| not_found(name, lang))?;
    let secret = match store.secret(&profile) {
        Ok(secret) => mask(&secret),
        Err(error) => format!("(unreadable: {error:#})"),
    };
    let is_default = store.default_name()?.as_deref() == Some(name);
    if as_json {
        let mut value = serde_json::to_value(&profile).map_err(anyhow::Error::from)?;
        value["secret"] = json!(secret);
        value["default"] = json!(is_default);
        println!(
            "{}",
            serde_json::to_string_pretty(&value).map_err(anyhow::Error::from)?
        );
        return Ok(());
    }
    println!("{}: {}", t(lang, "name", "名称"), profile.name);
    println!("{}: {}", t(lang, "kind", "类型"), profile.kind.name());
    println!("{}: {}", t(lang, "target", "目标"), summary(&profile));
    println!("{}: {secret}", profile.kind.secret_label().get(lang));
    println!(
        "{}: {}",
        t(lang, "route", "出站路线"),
        profile.proxy.describe().get(lang)
    );
    if let Some(fallback) = &profile.fallback {
        println!("{}: {fallback}", t(lang, "fallback", "备用配置"));
    }
    println!("relay_key: {}", profile.relay_key);
    println!("{}: {}", t(lang, "default", "默认"), is_default);
    Ok(())
}
