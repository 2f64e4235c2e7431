//! Runs the real `herald` binary against a temporary `HERALD_HOME`.

#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// A temporary data folder and the commands that use it.
pub struct Home {
    dir: TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(HERALD);
        command
            .env("HERALD_HOME", self.path())
            .env("HERALD_SECRET_STORE", "file")
            .env_remove("HERALD_PORT")
            .env("LANG", "en_US.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES");
        command
    }

    /// Runs `herald ARGS` with `stdin` as standard input.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("herald runs");
        // Herald may exit before reading its input (on a usage error), which
        // closes the pipe; the exit status is what the test checks.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().expect("herald finishes")
    }

    /// Runs `herald ARGS` and panics unless it exits 0; returns stdout.
    pub fn ok(&self, args: &[&str], stdin: &str) -> String {
        let output = self.run(args, stdin);
        assert!(
            output.status.success(),
            "herald {args:?} failed with {:?}\nstdout: {}\nstderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub fn add_bot(&self, name: &str, api_base: &str, key: &str) {
        self.ok(
            &[
                "profile",
                "add",
                name,
                "--kind",
                "wecom-bot",
                "--api-base",
                api_base,
                "--secret-stdin",
            ],
            key,
        );
    }

    pub fn add_app(&self, name: &str, api_base: &str, secret: &str, users: &str, extra: &[&str]) {
        let mut args = vec![
            "profile",
            "add",
            name,
            "--kind",
            "wecom-app",
            "--corp-id",
            "ww1",
            "--agent-id",
            "1000002",
            "--to-user",
            users,
            "--api-base",
            api_base,
            "--secret-stdin",
        ];
        args.extend_from_slice(extra);
        self.ok(&args, secret);
    }

    pub fn relay_key(&self, name: &str) -> String {
        let shown: serde_json::Value =
            serde_json::from_str(&self.ok(&["profile", "show", name, "--json"], "")).unwrap();
        shown["relay_key"].as_str().unwrap().to_owned()
    }

    pub fn history(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.ok(&["history", "--json", "--limit", "1000"], "")).unwrap()
    }

    pub fn database(&self) -> PathBuf {
        self.path().join("herald.db")
    }
}

/// Finds a free TCP port on 127.0.0.1 (and, in practice, ::1).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `herald serve`.
pub struct Relay {
    pub child: Child,
    pub port: u16,
    pub token: String,
    pub url: String,
    pub log_path: PathBuf,
}

impl Relay {
    pub fn start(home: &Home) -> Relay {
        let port = free_port();
        // A log file, not a pipe: nobody reads a pipe while the relay runs,
        // and a full one would block it.
        let log_path = home.path().join(format!("serve-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("relay log file");
        let mut child = home
            .command()
            .args(["serve", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("herald serve starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = http::Client;
        while Instant::now() < deadline {
            if client
                .get(format!("{url}/health"))
                .send()
                .is_ok_and(|r| r.status() == 200)
            {
                let token = home.ok(&["token"], "").trim().to_owned();
                return Relay {
                    child,
                    log_path,
                    port,
                    token,
                    url,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("herald serve did not answer /health within 10 s; its log:\n{log}");
    }

    /// Kills the relay with SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM and returns the exit code and stderr.
    #[cfg(unix)]
    pub fn terminate(mut self) -> (Option<i32>, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let stderr = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        (status.code(), stderr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking HTTP/1.1 client on std sockets that sends exactly the headers
/// and bytes a test gives, including a foreign Host or invalid UTF-8.
pub mod http {
    pub struct Client;

    pub struct Request {
        method: &'static str,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    pub struct Response {
        status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Client {
        pub fn get(&self, url: String) -> Request {
            Request {
                method: "GET",
                url,
                headers: vec![],
                body: vec![],
            }
        }

        pub fn post(&self, url: String) -> Request {
            Request {
                method: "POST",
                url,
                headers: vec![],
                body: vec![],
            }
        }
    }

    impl Request {
        pub fn header(mut self, name: &str, value: &str) -> Request {
            self.headers.push((name.to_owned(), value.to_owned()));
            self
        }

        pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
            self.body = body.into();
            self
        }

        pub fn send(self) -> std::io::Result<Response> {
            use std::io::{Read, Write};
            let rest = self.url.strip_prefix("http://").expect("http URL");
            let (authority, path) = rest
                .split_once('/')
                .map(|(a, p)| (a, format!("/{p}")))
                .unwrap_or((rest, "/".into()));
            let mut stream = std::net::TcpStream::connect(authority)?;
            stream.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
            let mut head = format!(
                "{} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
                self.method,
                self.body.len()
            );
            if !self
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("host"))
            {
                head.push_str(&format!("Host: {authority}\r\n"));
            }
            for (name, value) in &self.headers {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            stream.write_all(&self.body)?;
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw)?;
            let split = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .ok_or_else(|| std::io::Error::other("no header end"))?;
            let head = String::from_utf8_lossy(&raw[..split]).to_string();
            let mut lines = head.lines();
            let status: u16 = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let mut body = raw[split + 4..].to_vec();
            if headers
                .iter()
                .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
            {
                body = dechunk(&body);
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        }
    }

    fn dechunk(mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            out.extend_from_slice(&data[end + 2..end + 2 + size]);
            data = &data[end + 2 + size + 2..];
        }
        out
    }

    impl Response {
        pub fn status(&self) -> u16 {
            self.status
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
            })
        }
    }
}
