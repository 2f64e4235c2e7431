//! Baseline server for the relay benchmark: axum 0.8 on a multi-thread tokio
//! runtime, the same stack as `herald serve`. It returns 200 with an empty
//! body to `POST /v1/send` after reading the request body, and does nothing
//! else, so its throughput is the ceiling for one HTTP request on the
//! machine.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use clap::Parser;

/// Listens on 127.0.0.1 only, prints its base URL as the first line of
/// stdout, and serves until it is killed.
#[derive(Parser)]
#[command(name = "bare-axum")]
struct Args {
    /// TCP port to listen on. 0 picks a free port.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

async fn accept(body: Bytes) -> StatusCode {
    // The body is already read in full by the extractor, as in the relay.
    std::hint::black_box(body.len());
    StatusCode::OK
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("bare-axum: binding {addr} failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let bound = match listener.local_addr() {
        Ok(bound) => bound,
        Err(error) => {
            eprintln!("bare-axum: reading the bound address failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "http://{bound}").and_then(|()| stdout.flush()) {
        eprintln!("bare-axum: writing the base URL to stdout failed: {error}");
        return ExitCode::FAILURE;
    }
    drop(stdout);

    let app = Router::new().route("/v1/send", post(accept));
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("bare-axum: serving failed: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
