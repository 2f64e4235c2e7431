#!/usr/bin/env python3
"""Time a strategy loop spends per notification: Herald's Python client
against the relay, side by side with the same work done directly with
WeCom's API from Python (fetch a token, then send, for every message), both
against the fake WeCom server with a realistic delay per request.

Usage: client_vs_direct.py HERALD FAKE_WECOM [COUNT] [DELAY_MS]
Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "clients" / "python"))
import herald_notify  # noqa: E402

HERALD, FAKE = sys.argv[1], sys.argv[2]
COUNT = int(sys.argv[3]) if len(sys.argv) > 3 else 200
DELAY_MS = int(sys.argv[4]) if len(sys.argv) > 4 else 30
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summary(name: str, seconds: list[float]) -> dict:
    ms = sorted(s * 1000 for s in seconds)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    result = {"mean": statistics.mean(ms), "p50": statistics.median(ms), "p99": p99}
    print(f"{name:<34} mean {result['mean']:7.2f} ms   p50 {result['p50']:7.2f} ms   p99 {p99:7.2f} ms")
    return result


def direct_send(base: str, text: str) -> None:
    query = urllib.parse.urlencode({"corpid": "ww1", "corpsecret": "bench-secret"})
    token = json.load(OPENER.open(f"{base}/cgi-bin/gettoken?{query}", timeout=10))["access_token"]
    body = json.dumps({"touser": "alice", "msgtype": "text", "agentid": 1000002, "text": {"content": text}}).encode()
    request = urllib.request.Request(
        f"{base}/cgi-bin/message/send?access_token={token}", data=body, headers={"Content-Type": "application/json"}
    )
    answer = json.load(OPENER.open(request, timeout=10))
    assert answer["errcode"] == 0, answer


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="herald-client-bench-"))
    fake = subprocess.Popen(
        [FAKE, "--port", "0", "--delay-ms", str(DELAY_MS), "--app", "ww1:bench-secret:1000002:alice"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    base = fake.stdout.readline().strip()
    env = dict(os.environ, HERALD_HOME=str(work / "home"), HERALD_SECRET_STORE="file")
    subprocess.run(
        [HERALD, "profile", "add", "app", "--kind", "wecom-app", "--corp-id", "ww1", "--agent-id", "1000002",
         "--to-user", "alice", "--api-base", base, "--secret-stdin"],
        input=b"bench-secret", env=env, check=True, stdout=subprocess.DEVNULL,
    )
    port = free_port()
    relay = subprocess.Popen([HERALD, "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (work / "home" / "relay.json").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the relay did not start")
            time.sleep(0.01)
        os.environ["HERALD_HOME"] = str(work / "home")
        herald_notify.notify("warm-up", profile="app")

        via_herald = []
        for index in range(COUNT):
            started = time.perf_counter()
            herald_notify.notify(f"fill {index}", profile="app")
            via_herald.append(time.perf_counter() - started)

        direct = []
        for index in range(COUNT):
            started = time.perf_counter()
            direct_send(base, f"fill {index}")
            direct.append(time.perf_counter() - started)

        print(f"{COUNT} notifications each; fake WeCom delay {DELAY_MS} ms per request")
        herald = summary("herald_notify.notify (relay, 202)", via_herald)
        plain = summary("direct WeCom API (token + send)", direct)
        print(f"ratio, direct / herald (mean): {plain['mean'] / herald['mean']:.0f}x")
    finally:
        relay.terminate()
        relay.wait(timeout=15)
        fake.terminate()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
