//! Command-line server around the `fake_wecom` library, for Python tests,
//! benchmarks and end-to-end UI tests.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fake_wecom::{Config, FakeWecom};

/// Fake WeCom API server. Listens on 127.0.0.1 only, prints its base URL as
/// the first line of stdout, and serves until SIGINT or SIGTERM. The JSON
/// control API is under /_fake/.
#[derive(Parser)]
#[command(name = "fake-wecom")]
struct Args {
    /// TCP port to listen on. 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Delay before every WeCom API response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Window of the per-minute rate limits, in seconds.
    #[arg(long, default_value_t = 60)]
    window_secs: u64,
    /// Window of the per-hour rate limit, in seconds.
    #[arg(long, default_value_t = 3600)]
    hour_window_secs: u64,
    /// Access token lifetime (expires_in), in seconds.
    #[arg(long, default_value_t = 7200)]
    token_ttl_secs: u64,
    /// App to add, as CORP:SECRET:AGENT:USERS[:PARTIES[:TAGS]] with the ids
    /// in each list joined by '|'. Repeatable.
    #[arg(long = "app", value_name = "SPEC")]
    apps: Vec<String>,
    /// Group robot webhook key to add. Repeatable.
    #[arg(long = "robot", value_name = "KEY")]
    robots: Vec<String>,
}

struct AppSpec {
    corp_id: String,
    secret: String,
    agent_id: i64,
    users: Vec<String>,
    parties: Vec<String>,
    tags: Vec<String>,
}

fn parse_app_spec(spec: &str) -> Result<AppSpec, String> {
    let fields: Vec<&str> = spec.split(':').collect();
    if !(4..=6).contains(&fields.len()) {
        return Err(format!(
            "invalid --app {spec:?}: expected CORP:SECRET:AGENT:USERS[:PARTIES[:TAGS]]"
        ));
    }
    let agent_id = fields[2].parse().map_err(|_| {
        format!(
            "invalid --app {spec:?}: agent id {:?} is not an integer",
            fields[2]
        )
    })?;
    let split_list = |index: usize| -> Vec<String> {
        fields
            .get(index)
            .map(|list| {
                list.split('|')
                    .filter(|id| !id.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(AppSpec {
        corp_id: fields[0].to_string(),
        secret: fields[1].to_string(),
        agent_id,
        users: split_list(3),
        parties: split_list(4),
        tags: split_list(5),
    })
}

async fn wait_for_shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            },
            Err(error) => {
                eprintln!(
                    "fake-wecom: installing the SIGTERM handler failed: {error}; stop with SIGINT"
                );
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut apps = Vec::new();
    for spec in &args.apps {
        match parse_app_spec(spec) {
            Ok(app) => apps.push(app),
            Err(message) => {
                eprintln!("fake-wecom: {message}");
                return ExitCode::from(2);
            }
        }
    }

    let config = Config {
        window: Duration::from_secs(args.window_secs),
        hour_window: Duration::from_secs(args.hour_window_secs),
        token_ttl_secs: args.token_ttl_secs,
        delay: Duration::from_millis(args.delay_ms),
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let fake = match FakeWecom::start_on(addr, config).await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("fake-wecom: binding {addr} failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    for app in &apps {
        let users: Vec<&str> = app.users.iter().map(String::as_str).collect();
        let parties: Vec<&str> = app.parties.iter().map(String::as_str).collect();
        let tags: Vec<&str> = app.tags.iter().map(String::as_str).collect();
        fake.add_app(
            &app.corp_id,
            &app.secret,
            app.agent_id,
            &users,
            &parties,
            &tags,
        );
    }
    for key in &args.robots {
        fake.add_robot(key);
    }

    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{}", fake.base_url()).and_then(|()| stdout.flush()) {
        eprintln!("fake-wecom: writing the base URL to stdout failed: {error}");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    eprintln!(
        "fake-wecom: serving on {} with {} app(s) and {} robot(s)",
        fake.base_url(),
        apps.len(),
        args.robots.len()
    );

    let signal_name = wait_for_shutdown_signal().await;
    eprintln!("fake-wecom: received {signal_name}, stopping");
    drop(fake);
    ExitCode::SUCCESS
}
