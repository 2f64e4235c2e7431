"""Fixtures for end-to-end tests of the real desktop app.

The app runs under Xvfb and is driven by tauri-driver and WebKitWebDriver.
Each test session gets its own HOME and HERALD_HOME, a fake WeCom server and
a real SMTP server (aiosmtpd), all on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from webdriver import Session  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
if not TARGET.is_absolute():
    TARGET = ROOT / TARGET
DESKTOP = Path(os.environ.get("HERALD_DESKTOP_BIN", TARGET / "debug" / "herald-desktop"))
FAKE_WECOM = Path(os.environ.get("FAKE_WECOM_BIN", TARGET / "debug" / "fake-wecom"))
TAURI_DRIVER = shutil.which("tauri-driver") or str(Path.home() / ".cargo" / "bin" / "tauri-driver")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Fake:
    """The fake WeCom server binary and its control API."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [str(FAKE_WECOM), "--port", "0", "--app", "ww1:app-secret-1:1000002:alice"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def control(self, path: str, body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="POST" if data else "GET", headers={"Content-Type": "application/json"}
        )
        with _opener.open(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Smtp:
    """The aiosmtpd fixture in plain mode, storing messages as JSON files."""

    def __init__(self, folder: Path) -> None:
        self.maildir = folder / "mail"
        self.maildir.mkdir()
        password = folder / "smtp-password"
        password.write_text("auth-code")
        self.process = subprocess.Popen(
            [
                "/usr/bin/python3", str(ROOT / "tests" / "smtp" / "smtp_server.py"),
                "--port", "0", "--tls", "none", "--username", "me@example.com",
                "--password-file", str(password), "--maildir", str(self.maildir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().split()
        assert line and line[0] == "READY", line
        self.port = int(line[1])

    def messages(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.maildir.glob("*.json"))]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def fake() -> Iterator[Fake]:
    server = Fake()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtp]:
    server = Smtp(tmp_path_factory.mktemp("smtp"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="herald-e2e-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def app(home: Path) -> Iterator[Session]:
    for binary in (DESKTOP, FAKE_WECOM):
        assert binary.exists(), f"{binary} is missing; build it with cargo first"
    os.environ.update(
        {
            "HOME": str(home / "user"),
            "HERALD_HOME": str(home / "herald"),
            "HERALD_SECRET_STORE": "file",
            "HERALD_PORT": str(free_port()),
            "LANG": "en_US.UTF-8",
            "LC_ALL": "en_US.UTF-8",
        }
    )
    (home / "user").mkdir(exist_ok=True)
    driver, session = start_session(home)
    try:
        yield session
        session.quit()
    finally:
        stop(driver)


def start_session(home: Path, tries: int = 3) -> tuple[subprocess.Popen, Session]:
    """Starts tauri-driver and a session with the app. A driver that lost its
    first connection is replaced by a new one on new ports."""
    error: Exception | None = None
    for attempt in range(tries):
        driver_port, native_port = free_port(), free_port()
        log = open(home / f"tauri-driver-{attempt}.log", "w")
        driver = subprocess.Popen(
            [TAURI_DRIVER, "--port", str(driver_port), "--native-port", str(native_port)],
            stdout=log,
            stderr=log,
        )
        try:
            wait_port(driver_port)
            return driver, Session(f"http://127.0.0.1:{driver_port}", str(DESKTOP))
        except Exception as failure:  # the driver's first session can drop
            error = failure
            stop(driver)
            time.sleep(1)
    raise RuntimeError(f"no WebDriver session after {tries} tries: {error}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
