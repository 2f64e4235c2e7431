//! Measures how long `herald serve` takes from spawn until `GET /health`
//! returns 200, and its resident memory (VmRSS) after it has then been idle
//! for a while. Runs the relay several times and prints each run and the
//! medians.
//!
//! Output lines, for scripts/bench/run to parse:
//! `run=N ready_ms=F idle_rss_kib=N` per run, then
//! `ready_ms_median=F idle_rss_kib_median=N ready_ms_min=F ready_ms_max=F`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::Parser;

#[derive(Parser)]
#[command(name = "startup-probe")]
struct Args {
    /// Path of the herald binary.
    #[arg(long)]
    herald: PathBuf,
    /// HERALD_HOME for the relay. Every run uses the same folder.
    #[arg(long)]
    home: PathBuf,
    /// File that collects the relay's stderr of every run.
    #[arg(long)]
    log: PathBuf,
    /// Number of start-ups to measure.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds the relay stays idle after ready before VmRSS is read.
    #[arg(long, default_value_t = 2)]
    idle_secs: u64,
    /// Interval between /health polls, in milliseconds.
    #[arg(long, default_value_t = 1)]
    poll_ms: u64,
    /// How long one start-up may take before the run fails, in seconds.
    #[arg(long, default_value_t = 10)]
    ready_timeout_secs: u64,
}

/// How long a relay may take to exit after SIGTERM. Herald drains
/// deliveries for up to 10 s, and an idle relay exits at once.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

struct Measurement {
    ready: Duration,
    idle_rss_kib: u64,
}

/// Sends `GET /health` to 127.0.0.1:`port` and returns whether the status
/// is 200. Any connection or read error counts as not ready.
fn health_ok(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let _ = stream.set_nodelay(true);
    let request =
        format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .context("binding a free port on 127.0.0.1 failed")?;
    Ok(listener.local_addr()?.port())
}

/// Reads VmRSS of `pid` from /proc, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("reading {path} failed"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS line in {path}"))
}

/// Sends SIGTERM and waits for the relay to exit, killing it when it does
/// not stop in time.
fn stop(child: &mut Child) -> Result<()> {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) with a child's pid has no memory effects.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                eprintln!("startup-probe: herald serve exited with {status} after SIGTERM");
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!(
        "herald serve (pid {pid}) did not exit within {} s of SIGTERM",
        STOP_TIMEOUT.as_secs()
    )
}

fn measure_once(args: &Args) -> Result<Measurement> {
    let port = free_port()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .with_context(|| format!("opening {} failed", args.log.display()))?;
    let started = Instant::now();
    let mut child = Command::new(&args.herald)
        .args(["serve", "--port", &port.to_string()])
        .env("HERALD_HOME", &args.home)
        .env("HERALD_SECRET_STORE", "file")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {} failed", args.herald.display()))?;

    let deadline = started + Duration::from_secs(args.ready_timeout_secs);
    let ready = loop {
        if health_ok(port) {
            break started.elapsed();
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "herald serve exited with {status} before it was ready; see {}",
                args.log.display()
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "herald serve was not ready within {} s; see {}",
                args.ready_timeout_secs,
                args.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(args.poll_ms));
    };

    std::thread::sleep(Duration::from_secs(args.idle_secs));
    let idle_rss_kib = rss_kib(child.id());
    stop(&mut child)?;
    Ok(Measurement {
        ready,
        idle_rss_kib: idle_rss_kib?,
    })
}

/// Computes the median: the middle value, or the mean of the two middle values.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn run(args: &Args) -> Result<()> {
    if args.runs == 0 {
        bail!("invalid --runs 0: measure at least one start-up");
    }
    let mut ready_ms = Vec::new();
    let mut rss = Vec::new();
    for index in 1..=args.runs {
        let measurement = measure_once(args).with_context(|| format!("run {index} failed"))?;
        let ms = measurement.ready.as_secs_f64() * 1000.0;
        println!(
            "run={index} ready_ms={ms:.1} idle_rss_kib={}",
            measurement.idle_rss_kib
        );
        ready_ms.push(ms);
        rss.push(measurement.idle_rss_kib as f64);
    }
    let min = ready_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ready_ms.iter().copied().fold(0.0, f64::max);
    println!(
        "ready_ms_median={:.1} idle_rss_kib_median={:.0} ready_ms_min={min:.1} ready_ms_max={max:.1}",
        median(ready_ms),
        median(rss)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("startup-probe: {error:#}");
            ExitCode::FAILURE
        }
    }
}
