//! Tests of the `fake-wecom` binary as Python tests and benchmarks run it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// Kills the server if a check fails before the test stops it.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_configured_apps() {
    let child = Command::new(env!("CARGO_BIN_EXE_fake-wecom"))
        .args([
            "--app",
            "corp9:sec9:7:Ann|ben:3",
            "--robot",
            "rk",
            "--token-ttl-secs",
            "60",
            "--window-secs",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting fake-wecom failed");
    let mut server = ServerProcess(child);
    let stdout = server.0.stdout.take().unwrap();
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    let base = first_line.trim_end().to_string();
    let port = base
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("first line {first_line:?} is not http://127.0.0.1:PORT"));
    assert!(port.parse::<u16>().unwrap() > 0);

    let client = reqwest::Client::new();
    let token: Value = client
        .get(format!(
            "{base}/cgi-bin/gettoken?corpid=corp9&corpsecret=sec9"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["expires_in"], 60);
    let access_token = token["access_token"].as_str().unwrap();

    let message = json!({
        "touser": "ann", "toparty": "3", "msgtype": "text", "agentid": 7,
        "text": {"content": "from the binary"},
    });
    let response: Value = client
        .post(format!(
            "{base}/cgi-bin/message/send?access_token={access_token}"
        ))
        .json(&message)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["errcode"], 0, "response: {response}");

    let robot = json!({"msgtype": "markdown", "markdown": {"content": "ok"}});
    let response: Value = client
        .post(format!("{base}/cgi-bin/webhook/send?key=rk"))
        .json(&robot)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["errcode"], 0, "response: {response}");

    let received: Value = client
        .get(format!("{base}/_fake/received"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(received[0]["touser"], "ann");
    assert_eq!(received[0]["toparty"], "3");
    assert_eq!(received[1]["kind"], "robot");

    #[cfg(unix)]
    {
        let pid = server.0.id().to_string();
        let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(kill.success());
        let status = server.0.wait().unwrap();
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
}

#[test]
fn binary_rejects_malformed_app() {
    let output = Command::new(env!("CARGO_BIN_EXE_fake-wecom"))
        .args(["--app", "corp:secret:not-a-number:ann"])
        .output()
        .expect("starting fake-wecom failed");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not an integer"), "stderr: {stderr}");
}
