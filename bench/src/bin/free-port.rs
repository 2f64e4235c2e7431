//! Prints a TCP port that is free on both 127.0.0.1 and ::1, for
//! `herald serve --port`, which rejects port 0 and binds both addresses.
//!
//! The port is released before this exits, so another program can take it
//! before Herald does. The benchmark accepts that race.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::process::ExitCode;

const MAX_TRIES: usize = 50;

fn main() -> ExitCode {
    for _ in 0..MAX_TRIES {
        let v4 = match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))) {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("free-port: binding 127.0.0.1 failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        let port = match v4.local_addr() {
            Ok(addr) => addr.port(),
            Err(error) => {
                eprintln!("free-port: reading the bound address failed: {error}");
                return ExitCode::FAILURE;
            }
        };
        match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
            Ok(_) => {
                println!("{port}");
                return ExitCode::SUCCESS;
            }
            // Without IPv6 loopback, Herald listens on 127.0.0.1 only.
            Err(error) if error.kind() == std::io::ErrorKind::AddrNotAvailable => {
                println!("{port}");
                return ExitCode::SUCCESS;
            }
            Err(_) => continue,
        }
    }
    eprintln!("free-port: no port was free on both 127.0.0.1 and ::1 after {MAX_TRIES} tries");
    ExitCode::FAILURE
}
