//! Command-line parsing and dispatch. Exit codes: 0 success, 1 delivery or
//! check failed, 2 bad usage or invalid input.

mod history;
mod profile;
mod send;

use clap::{Parser, Subcommand};
use herald::home::Home;
use herald::i18n::Lang;

/// Exit status for a failed delivery or check.
pub const FAILED: i32 = 1;
/// Exit status for bad usage or invalid input.
pub const USAGE: i32 = 2;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Deliver trading notices to WeCom and email, and never report a failure as sent"
)]
struct Cli {
    /// More log output on stderr (-v: info, -vv: debug). Logs never contain secrets.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay on 127.0.0.1 and ::1 in the foreground until SIGINT or SIGTERM.
    Serve {
        /// Port to listen on (default 7591, or HERALD_PORT).
        #[arg(long)]
        port: Option<u16>,
    },
    /// Manage credential profiles.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),
    /// Deliver one message now; exits 0 only when the provider accepted it.
    Send(Box<send::SendArgs>),
    /// Verify a profile's credentials without sending a message.
    Check {
        /// Profile name.
        name: String,
    },
    /// List recent messages with their status, attempts and last error.
    History(history::HistoryArgs),
    /// Print the relay's access token.
    Token {
        /// Replace the token with a new one (a running relay uses it after a restart).
        #[arg(long)]
        regenerate: bool,
    },
}

/// A command's failure: the text to print and the exit status.
pub struct Exit {
    pub code: i32,
    pub text: String,
}

impl Exit {
    pub fn usage(text: impl Into<String>) -> Exit {
        Exit {
            code: USAGE,
            text: text.into(),
        }
    }

    pub fn failed(text: impl Into<String>) -> Exit {
        Exit {
            code: FAILED,
            text: text.into(),
        }
    }
}

impl From<anyhow::Error> for Exit {
    fn from(error: anyhow::Error) -> Exit {
        Exit::failed(format!("{error:#}"))
    }
}

/// Text in the user's language.
pub fn t(lang: Lang, en: &str, zh: &str) -> String {
    match lang {
        Lang::En => en.to_owned(),
        Lang::Zh => zh.to_owned(),
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { USAGE } else { 0 };
        }
    };
    let serving = matches!(cli.command, Command::Serve { .. });
    if !serving {
        restore_sigpipe();
    }
    init_logging(cli.verbose, serving);
    let lang = Lang::detect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("herald: could not start the async runtime: {error}");
            return FAILED;
        }
    };
    let result = runtime.block_on(run(cli.command, lang));
    match result {
        Ok(()) => 0,
        Err(exit) => {
            if !exit.text.is_empty() {
                eprintln!("{}", exit.text);
            }
            exit.code
        }
    }
}

async fn run(command: Command, lang: Lang) -> Result<(), Exit> {
    let home = Home::from_env().map_err(|e| Exit::usage(format!("herald: {e:#}")))?;
    match command {
        Command::Serve { port } => serve(&home, port, lang).await,
        Command::Profile(command) => profile::run(&home, command, lang).await,
        Command::Send(args) => send::send(&home, *args, lang).await,
        Command::Check { name } => send::check(&home, &name, lang).await,
        Command::History(args) => history::run(&home, args, lang).await,
        Command::Token { regenerate } => {
            let token = if regenerate {
                herald::relay::regenerate_token(&home)?
            } else {
                herald::relay::load_or_create_token(&home)?
            };
            println!("{token}");
            Ok(())
        }
    }
}

async fn serve(home: &Home, port: Option<u16>, lang: Lang) -> Result<(), Exit> {
    let port = herald::relay::resolve_port(port, None)
        .map_err(|e| Exit::usage(format!("herald: {e:#}")))?;
    let relay = herald::relay::Relay::bind(home, port)
        .await
        .map_err(|e| Exit::failed(format!("herald: {e:#}")))?;
    eprintln!(
        "{} {} (HERALD_HOME={})",
        t(lang, "Herald relay listening on", "Herald 中继已在监听"),
        relay.url(),
        home.root().display()
    );
    report_secret_store(home, lang);
    relay.run(herald::relay::shutdown_signal()).await?;
    eprintln!(
        "{}",
        t(lang, "Herald relay stopped.", "Herald 中继已停止。")
    );
    Ok(())
}

/// Says where new secrets go, in the background: a keyring probe can take
/// up to a few seconds and must not delay the relay's start.
fn report_secret_store(home: &Home, lang: Lang) {
    let home = home.clone();
    tokio::task::spawn_blocking(move || {
        let store = match herald::profile::secret::SecretStore::new(&home) {
            Ok(store) => store,
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "could not open the secret store");
                return;
            }
        };
        let (kind, why) = store.choose();
        match why {
            None => eprintln!(
                "{} {}",
                t(lang, "New secrets are stored in", "新密钥保存在"),
                kind.describe(&home, lang)
            ),
            Some(why) => eprintln!(
                "{} {} ({why})",
                t(lang, "New secrets are stored in", "新密钥保存在"),
                kind.describe(&home, lang)
            ),
        }
    });
}

/// Lets `herald history | head` end quietly: Rust ignores SIGPIPE, so
/// printing to a closed pipe would panic. The relay keeps ignoring it, so a
/// closed log pipe never kills it.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at start, before any thread is spawned; setting
    // a signal disposition to its default has no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8, serving: bool) {
    let level = match (verbose, serving) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    // Only Herald's own crate logs at the chosen level: HTTP libraries log
    // request URLs at debug level, and those carry tokens and robot keys.
    let filter = format!("warn,herald={level}");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
