"""Fixtures: the `herald` and `fake-wecom` binaries, a fake WeCom server and
relays with their own temporary HERALD_HOME, all on 127.0.0.1.

The binaries are HERALD_BIN and FAKE_WECOM_BIN when both are set, and
otherwise built once per session with
`cargo build -p herald -p fake-wecom --bins` (a no-op when they are up to
date). Profiles use `--proxy none`, so the relay never sends through a
proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

CLIENT_DIR = Path(__file__).resolve().parent.parent
REPO = CLIENT_DIR.parent.parent
sys.path.insert(0, str(CLIENT_DIR))

EXE = ".exe" if os.name == "nt" else ""
DELIVERY_WAIT = 20.0
# Variables that would point the client or the relay somewhere else.
CLEARED_VARIABLES = [
    "HERALD_URL",
    "HERALD_TOKEN",
    "HERALD_PROFILE",
    "HERALD_HOME",
    "HERALD_PORT",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
]

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method: str, url: str, body: Optional[Dict[str, Any]] = None) -> Any:
    """Send a request without any proxy and return the decoded JSON response."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with _DIRECT.open(request, timeout=10) as response:
        return json.loads(response.read())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Binaries:
    herald: Path
    fake_wecom: Path


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    """The binaries named by HERALD_BIN and FAKE_WECOM_BIN, or else the ones
    that `cargo build` writes to the target folder."""
    herald_bin = os.environ.get("HERALD_BIN")
    fake_bin = os.environ.get("FAKE_WECOM_BIN")
    if herald_bin and fake_bin:
        found = Binaries(herald=Path(herald_bin), fake_wecom=Path(fake_bin))
    else:
        found = build_binaries()
    for path in (found.herald, found.fake_wecom):
        if not path.is_file():
            pytest.fail("%s is missing; build it with `cargo build --workspace`" % path)
    return found


def build_binaries() -> Binaries:
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.fail("cargo is not on PATH; it builds target/debug/herald and fake-wecom")
    build = subprocess.run(
        [cargo, "build", "--quiet", "-p", "herald", "-p", "fake-wecom", "--bins"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if build.returncode != 0:
        pytest.fail("cargo build failed:\n" + build.stdout)
    # cargo runs in REPO, so a relative CARGO_TARGET_DIR is relative to it.
    target = REPO / os.environ.get("CARGO_TARGET_DIR", "target")
    return Binaries(
        herald=target / "debug" / ("herald" + EXE),
        fake_wecom=target / "debug" / ("fake-wecom" + EXE),
    )


class FakeWecom:
    """The fake-wecom binary, driven through its /_fake/ control API."""

    def __init__(self, binary: Path) -> None:
        self.process = subprocess.Popen(
            [str(binary), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.process.kill()
            raise RuntimeError("fake-wecom printed %r instead of its URL" % self.url)

    def add_robot(self, key: str) -> None:
        http_json("POST", self.url + "/_fake/robots", {"key": key})

    def received(self, key: str) -> List[str]:
        """Contents of the robot messages received for `key`, oldest first."""
        messages = http_json("GET", self.url + "/_fake/received")
        return [
            m["content"]
            for m in messages
            if m["kind"] == "robot" and m["target"] == key
        ]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def fake(binaries: Binaries) -> Iterator[FakeWecom]:
    server = FakeWecom(binaries.fake_wecom)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEARED_VARIABLES:
        monkeypatch.delenv(name, raising=False)


class Herald:
    """A HERALD_HOME with a robot profile `bot` on the fake, and the relay
    processes started for it."""

    def __init__(self, binaries: Binaries, fake: FakeWecom, root: Path) -> None:
        self.binaries = binaries
        self.fake = fake
        self.home = root / "home"
        self.home.mkdir()
        self.robot_key = "robot-" + uuid.uuid4().hex[:12]
        self.relay: Optional[subprocess.Popen] = None
        self.url: Optional[str] = None
        self.log = root / "relay.log"
        fake.add_robot(self.robot_key)
        self.add_profile("bot", fake.url, self.robot_key)

    def environment(self) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in CLEARED_VARIABLES}
        env["HERALD_HOME"] = str(self.home)
        env["HERALD_SECRET_STORE"] = "file"
        return env

    def cli(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [str(self.binaries.herald), *args],
            input=stdin,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(
                "herald %s failed with %d: %s" % (" ".join(args), result.returncode, result.stderr)
            )
        return result.stdout

    def add_profile(self, name: str, api_base: str, key: str) -> None:
        self.cli(
            "profile", "add", name, "--kind", "wecom-bot", "--api-base", api_base,
            "--proxy", "none", "--secret-stdin",
            stdin=key,
        )

    def token(self) -> str:
        return self.cli("token").strip()

    def start(self) -> str:
        """Start `herald serve` on a free port; return its URL once
        relay.json names this process."""
        assert self.relay is None, "the relay is already running"
        port = free_port()
        with open(self.log, "a") as log:
            self.relay = subprocess.Popen(
                [str(self.binaries.herald), "serve", "--port", str(port)],
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.relay.poll() is not None:
                raise AssertionError("herald serve exited: " + self.log.read_text())
            try:
                relay = json.loads((self.home / "relay.json").read_text())
            except (OSError, ValueError):
                relay = {}
            if relay.get("pid") == self.relay.pid:
                self.url = relay["url"]
                return self.url
            time.sleep(0.02)
        raise AssertionError("relay.json did not appear: " + self.log.read_text())

    def stop(self) -> None:
        if self.relay is None:
            return
        if self.relay.poll() is None:
            # SIGTERM on POSIX, which the relay handles as a graceful stop.
            self.relay.terminate()
            try:
                self.relay.wait(20)
            except subprocess.TimeoutExpired:
                self.relay.kill()
                self.relay.wait()
        self.relay = None
        self.url = None

    def received(self) -> List[str]:
        return self.fake.received(self.robot_key)

    def wait_for(self, *markers: str, timeout: float = DELIVERY_WAIT) -> List[str]:
        """Wait until every marker was delivered; return the contents."""
        deadline = time.monotonic() + timeout
        while True:
            contents = self.received()
            if all(any(m in c for c in contents) for m in markers):
                return contents
            if time.monotonic() > deadline:
                raise AssertionError(
                    "not delivered within %g s: %s\nreceived: %s\nrelay log:\n%s"
                    % (timeout, markers, contents, self.log.read_text() if self.log.exists() else "")
                )
            time.sleep(0.05)

    def count(self, marker: str) -> int:
        return sum(content.count(marker) for content in self.received())

    def history(self) -> List[Dict[str, Any]]:
        return json.loads(self.cli("history", "--json", "--limit", "10000"))

    def spool_dir(self) -> Path:
        return self.home / "spool"


@pytest.fixture
def herald(binaries: Binaries, fake: FakeWecom, tmp_path: Path) -> Iterator[Herald]:
    instance = Herald(binaries, fake, tmp_path)
    yield instance
    instance.stop()
