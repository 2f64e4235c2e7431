"""herald_notify against a real `herald serve` and the fake WeCom robot.

Every test has its own HERALD_HOME and robot key, so the relay's rate limit
of 20 robot messages a minute applies to each test separately.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import pytest

import herald_notify
from conftest import CLIENT_DIR, Herald, free_port, http_json
from herald_notify import HeraldError, HeraldHandler, Notifier, Outcome, notify

SPOOL_ID = re.compile(r"^spool:[0-9a-f]{32}$")
MESSAGE_ID = re.compile(r"^[0-9a-f]{32}$")


def spool_lines(herald: Herald) -> List[dict]:
    path = herald.spool_dir() / "spool.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def hanging_server() -> Iterator[int]:
    """A loopback port that accepts connections and never responds."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


def run_script(herald: Herald, source: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run Python source in a child process with herald_notify importable."""
    env = herald.environment()
    env["PYTHONPATH"] = str(CLIENT_DIR)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )


# --- sending ---------------------------------------------------------------


def test_notify_returns_message_id(herald: Herald) -> None:
    herald.start()

    message_id = notify("send-basic; order filled", title="Fill", home=str(herald.home))

    assert MESSAGE_ID.match(message_id), message_id
    contents = herald.wait_for("send-basic;")
    assert any("Fill" in c for c in contents)
    url = "%s/v1/messages/%s" % (herald.url, message_id)
    request_deadline = time.monotonic() + 10
    while True:
        status = _get_message(url, herald.token())["status"]
        if status == "delivered" or time.monotonic() > request_deadline:
            break
        time.sleep(0.05)
    assert status == "delivered"


def _get_message(url: str, token: str) -> dict:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    with opener.open(request, timeout=10) as response:
        return json.loads(response.read())


def test_notify_markdown_with_profile(herald: Herald) -> None:
    herald.start()

    message_id = notify(
        "**send-markdown;** 600519", profile="bot", markdown=True, home=str(herald.home)
    )

    assert MESSAGE_ID.match(message_id)
    herald.wait_for("send-markdown;")
    record = next(m for m in herald.history() if m["id"] == message_id)
    assert record["format"] == "markdown"
    assert record["source"] == "relay"


def test_wait_returns_delivered(herald: Herald) -> None:
    herald.start()

    outcome = notify("send-wait; stop loss hit", wait=True, home=str(herald.home))

    assert isinstance(outcome, Outcome)
    assert outcome.status == "delivered"
    assert outcome.delivered
    assert MESSAGE_ID.match(outcome.id)
    assert outcome.error is None
    assert herald.count("send-wait;") == 1


def test_wait_returns_failed_with_error(herald: Herald) -> None:
    # The fake returns errcode 93000, a permanent error, for an unknown key.
    herald.add_profile("unknown-key", herald.fake.url, "key-the-fake-does-not-know")
    herald.start()

    outcome = notify(
        "send-failed;", profile="unknown-key", wait=True, home=str(herald.home)
    )

    assert outcome.status == "failed"
    assert not outcome.delivered
    assert outcome.error is not None
    assert outcome.error["code"]
    assert outcome.error["message"]
    assert outcome.error["hint"]


def test_settings_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = str(tmp_path)
    (tmp_path / "relay.json").write_text(
        json.dumps({"url": "http://127.0.0.1:1", "token": "from-file", "pid": 1})
    )
    from_file = herald_notify.load_settings(home=home)
    assert (from_file.url, from_file.token, from_file.profile) == (
        "http://127.0.0.1:1",
        "from-file",
        None,
    )

    monkeypatch.setenv("HERALD_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("HERALD_TOKEN", "from-env")
    monkeypatch.setenv("HERALD_PROFILE", "env-profile")
    from_env = herald_notify.load_settings(home=home)
    assert (from_env.url, from_env.token, from_env.profile) == (
        "http://127.0.0.1:2",
        "from-env",
        "env-profile",
    )

    from_args = herald_notify.load_settings(
        url="http://127.0.0.1:3", token="from-arg", profile="arg-profile", home=home
    )
    assert (from_args.url, from_args.token, from_args.profile) == (
        "http://127.0.0.1:3",
        "from-arg",
        "arg-profile",
    )

    monkeypatch.setenv("HERALD_HOME", home)
    assert herald_notify.load_settings().home == home


@pytest.mark.parametrize(
    "platform, environ, expected",
    [
        ("linux", {"HOME": "/home/u"}, "/home/u/.local/share/herald"),
        ("linux", {"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "/data/herald"),
        ("linux", {"HOME": "/home/u", "XDG_DATA_HOME": "relative"}, "/home/u/.local/share/herald"),
        ("darwin", {"HOME": "/Users/u"}, "/Users/u/Library/Application Support/herald"),
        ("linux", {"HOME": "/home/u", "HERALD_HOME": "/srv/h"}, "/srv/h"),
    ],
)
def test_default_home_per_platform(
    monkeypatch: pytest.MonkeyPatch, platform: str, environ: dict, expected: str
) -> None:
    monkeypatch.setattr(sys, "platform", platform)
    for name in ("HOME", "XDG_DATA_HOME", "HERALD_HOME", "APPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert herald_notify.default_home() == expected


def test_default_home_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setenv("APPDATA", "/appdata")

    assert herald_notify.default_home() == os.path.join("/appdata", "herald", "data")


def test_proxy_variables_ignored(herald: Herald, monkeypatch: pytest.MonkeyPatch) -> None:
    herald.start()
    closed = "http://127.0.0.1:%d" % free_port()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, closed)
    monkeypatch.setenv("NO_PROXY", "")

    outcome = notify("send-proxy;", wait=True, home=str(herald.home))

    assert outcome.status == "delivered"


# --- errors ------------------------------------------------------------------


def test_bad_token_raises(herald: Herald) -> None:
    herald.start()

    with pytest.raises(HeraldError) as caught:
        notify("error-token;", token="wrong-token", home=str(herald.home))

    assert caught.value.status == 401
    assert caught.value.code == "unauthorized"
    assert "herald token" in caught.value.hint
    assert not (herald.spool_dir() / "spool.jsonl").exists(), "nothing was spooled"


def test_unknown_profile_raises(herald: Herald) -> None:
    herald.start()

    with pytest.raises(HeraldError) as caught:
        notify("error-profile;", profile="ghost", home=str(herald.home))

    assert caught.value.status == 404
    assert caught.value.code == "unknown_profile"
    assert "ghost" in caught.value.message
    assert "herald profile" in caught.value.hint
    assert not (herald.spool_dir() / "spool.jsonl").exists(), "nothing was spooled"


def test_invalid_input_raises_without_network(tmp_path: Path) -> None:
    home = str(tmp_path)
    cases: List[Tuple[str, str]] = [
        ("   ", "empty_text"),
        ("x" * (herald_notify.BODY_LIMIT + 1), "body_too_large"),
        ("bad \udc80 surrogate", "invalid_text"),
    ]
    for text, code in cases:
        with pytest.raises(HeraldError) as caught:
            notify(text, home=home)
        assert caught.value.code == code
    with pytest.raises(TypeError):
        notify(b"bytes", home=home)  # type: ignore[call-overload]
    with pytest.raises(ValueError):
        notify("x", wait=True, background=True, home=home)  # type: ignore[call-overload]
    assert os.listdir(home) == []


def test_timeout_after_connect_raises(tmp_path: Path, hanging_server: int) -> None:
    started = time.monotonic()

    with pytest.raises(HeraldError) as caught:
        notify(
            "error-timeout;",
            url="http://127.0.0.1:%d" % hanging_server,
            token="t",
            timeout=0.3,
            home=str(tmp_path),
        )

    elapsed = time.monotonic() - started
    assert caught.value.code == "timeout"
    assert elapsed < 2.0
    assert not (tmp_path / "spool").exists(), "a request the relay may have stored is not spooled"


@pytest.fixture
def one_shot_server() -> Iterator[Callable[[bytes], str]]:
    """Start a loopback server that sends the given raw HTTP response to
    the first request, and return its URL."""
    servers: List[Tuple[socket.socket, threading.Thread]] = []

    def start(response: bytes) -> str:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def respond_once() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(response)

        thread = threading.Thread(target=respond_once, daemon=True)
        thread.start()
        servers.append((server, thread))
        return "http://127.0.0.1:%d" % server.getsockname()[1]

    yield start
    for server, thread in servers:
        thread.join(5)
        server.close()


def http_response(status: str, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status.encode(),
        len(body),
        body,
    )


def test_non_relay_response_raises(
    tmp_path: Path, one_shot_server: Callable[[bytes], str]
) -> None:
    url = one_shot_server(http_response("502 Bad Gateway", b"proxy"))

    with pytest.raises(HeraldError) as caught:
        notify("error-foreign;", url=url, token="t", home=str(tmp_path))

    assert caught.value.code == "unexpected_response"
    assert caught.value.status == 502
    assert not (tmp_path / "spool").exists()


def test_busy_response_spools(tmp_path: Path, one_shot_server: Callable[[bytes], str]) -> None:
    body = json.dumps(
        {"error": {"code": "busy", "message": "not stored", "hint": "retry"}}
    ).encode()
    url = one_shot_server(http_response("503 Service Unavailable", body))

    result = notify("spool-busy;", url=url, token="t", home=str(tmp_path))

    assert SPOOL_ID.match(result)
    lines = (tmp_path / "spool" / "spool.jsonl").read_text().splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["spool-busy;"]


def test_storage_failed_response_raises(
    tmp_path: Path, one_shot_server: Callable[[bytes], str]
) -> None:
    body = json.dumps(
        {"error": {"code": "storage_failed", "message": "not stored", "hint": "check the disk"}}
    ).encode()
    url = one_shot_server(http_response("503 Service Unavailable", body))

    with pytest.raises(HeraldError) as caught:
        notify("error-storage;", url=url, token="t", home=str(tmp_path))

    assert caught.value.code == "storage_failed"
    assert caught.value.status == 503
    assert caught.value.hint == "check the disk"
    assert not (tmp_path / "spool").exists()


# --- spool -------------------------------------------------------------------


def test_spool_when_relay_down_then_delivered(herald: Herald) -> None:
    assert not (herald.home / "relay.json").exists()

    first = notify("spool-down-1;", title="Offline", home=str(herald.home))
    second = notify("spool-down-2;", profile="bot", markdown=True, home=str(herald.home))
    outcome = notify("spool-down-3;", wait=True, home=str(herald.home))

    assert SPOOL_ID.match(first), first
    assert SPOOL_ID.match(second), second
    assert outcome.status == "spooled"
    assert outcome.spooled
    assert SPOOL_ID.match(outcome.id)
    lines = spool_lines(herald)
    assert [line["spool_id"] for line in lines] == [
        first[len("spool:"):],
        second[len("spool:"):],
        outcome.id[len("spool:"):],
    ]
    assert lines[0]["text"] == "spool-down-1;"
    assert lines[0]["title"] == "Offline"
    assert lines[0]["profile"] is None
    assert lines[0]["format"] == "text"
    assert lines[1]["profile"] == "bot"
    assert lines[1]["format"] == "markdown"
    assert abs(lines[0]["created_at"] - time.time() * 1000) < 60_000
    if os.name == "posix":
        assert stat.S_IMODE(herald.spool_dir().stat().st_mode) == 0o700
        assert stat.S_IMODE((herald.spool_dir() / "spool.jsonl").stat().st_mode) == 0o600

    herald.start()

    herald.wait_for("spool-down-1;", "spool-down-2;", "spool-down-3;")
    deadline = time.monotonic() + 10
    while (herald.spool_dir() / "spool.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (herald.spool_dir() / "spool.jsonl").exists()
    for marker in ("spool-down-1;", "spool-down-2;", "spool-down-3;"):
        assert herald.count(marker) == 1, marker
    sources = {m["text"]: m["source"] for m in herald.history()}
    assert sources["spool-down-1;"] == "spool"


def test_spool_when_relay_json_is_stale(herald: Herald) -> None:
    stale = {"url": "http://127.0.0.1:%d" % free_port(), "token": "old", "pid": 1}
    (herald.home / "relay.json").write_text(json.dumps(stale))

    started = time.monotonic()
    result = notify("spool-stale;", home=str(herald.home))

    assert SPOOL_ID.match(result)
    assert time.monotonic() - started < 1.0
    assert [line["text"] for line in spool_lines(herald)] == ["spool-stale;"]


def test_spool_function_writes_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PROFILE", "from-env")

    result = herald_notify.spool("spool-direct;\nsecond line", title="T", home=str(tmp_path))

    raw = (tmp_path / "spool" / "spool.jsonl").read_bytes()
    assert raw.count(b"\n") == 1, "a newline in the text is escaped, not written"
    line = json.loads(raw)
    assert result == "spool:" + line["spool_id"]
    assert line["text"] == "spool-direct;\nsecond line"
    assert line["profile"] == "from-env"


def test_concurrent_spool_writers_imported_once(herald: Herald) -> None:
    # Deliveries go to a closed port, so the robot's rate limit never delays
    # the relay. The test counts stored messages.
    herald.add_profile("sink", "http://127.0.0.1:%d" % free_port(), "sink-key")
    herald.start()
    processes, lines = 4, 40
    script = """
        import sys, time
        import herald_notify
        writer = sys.argv[1]
        for index in range(%d):
            herald_notify.spool("concurrent-%%s-%%d;" %% (writer, index), profile="sink")
            time.sleep(0.04)
    """ % lines
    env = herald.environment()
    env["PYTHONPATH"] = str(CLIENT_DIR)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), str(writer)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(processes)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=60)
        assert child.returncode == 0, stderr

    expected = {"concurrent-%d-%d;" % (w, i) for w in range(processes) for i in range(lines)}
    deadline = time.monotonic() + 15
    while True:
        stored = [m["text"] for m in herald.history() if m["source"] == "spool"]
        if len(stored) >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sorted(stored) == sorted(expected)
    assert not (herald.spool_dir() / "rejected.jsonl").exists()


# --- logging handler ---------------------------------------------------------


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    instance = logging.getLogger("strategy.test-%d" % time.monotonic_ns())
    instance.propagate = False
    instance.setLevel(logging.DEBUG)
    yield instance
    for handler in list(instance.handlers):
        instance.removeHandler(handler)
        handler.close()


def test_handler_sends_errors_only(herald: Herald, logger: logging.Logger) -> None:
    herald.start()
    handler = HeraldHandler(background=False, home=str(herald.home))
    logger.addHandler(handler)

    logger.warning("handler-warning; not sent")
    logger.error("handler-error; order %s rejected", "T0001")
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("handler-exception;")

    contents = herald.wait_for("handler-error; order T0001 rejected", "handler-exception;")
    texts = [m["text"] for m in herald.history()]
    assert not any("handler-warning;" in t for t in texts)
    exception_text = next(t for t in texts if "handler-exception;" in t)
    assert "Traceback" in exception_text
    assert "ZeroDivisionError" in exception_text
    assert any("ERROR %s" % logger.name in c for c in contents), "default title"
    assert handler.errors == 0


def test_handler_rate_limit_reports_dropped(herald: Herald, logger: logging.Logger) -> None:
    herald.start()
    handler = HeraldHandler(burst=2, per_minute=60, background=False, home=str(herald.home))
    now = [1000.0]
    handler._clock = lambda: now[0]
    handler._refilled_at = now[0]
    logger.addHandler(handler)

    for index in range(5):
        logger.error("flood-%d;", index)
    assert handler.suppressed == 3
    now[0] += 1.0
    logger.error("flood-after;")

    herald.wait_for("flood-0;", "flood-1;", "flood-after;")
    texts = [m["text"] for m in herald.history()]
    assert not any("flood-2;" in t or "flood-3;" in t or "flood-4;" in t for t in texts)
    after = next(t for t in texts if "flood-after;" in t)
    assert "(3 earlier log records were dropped by the rate limit)" in after
    assert handler.suppressed == 0


def test_handler_never_raises_and_reports_once(
    herald: Herald, logger: logging.Logger, capsys: pytest.CaptureFixture
) -> None:
    herald.start()
    handler = HeraldHandler(background=False, token="wrong-token", home=str(herald.home))
    logger.addHandler(handler)

    for index in range(3):
        logger.error("handler-bad-token-%d;", index)

    assert handler.errors == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("HeraldHandler: could not send a log record:")
    assert "unauthorized" in err
    assert "Traceback" not in err


def test_handler_background_errors_counted(
    herald: Herald, logger: logging.Logger, capsys: pytest.CaptureFixture
) -> None:
    herald.start()
    handler = HeraldHandler(token="wrong-token", home=str(herald.home))
    logger.addHandler(handler)

    logger.error("handler-bg-1;")
    logger.error("handler-bg-2;")
    assert handler.notifier.flush(10)

    assert handler.errors == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


def test_handler_ignores_own_logger(tmp_path: Path) -> None:
    handler = HeraldHandler(background=False, home=str(tmp_path))
    record = logging.LogRecord("herald_notify", logging.ERROR, __file__, 1, "x", None, None)

    handler.handle(record)

    assert not (tmp_path / "spool").exists()
    handler.close()


# --- background mode ---------------------------------------------------------


def test_background_delivers_after_flush(herald: Herald) -> None:
    herald.start()
    notifier = Notifier(background=True, home=str(herald.home))

    results = [notifier.notify("background-%d;" % i) for i in range(5)]

    assert results == [None] * 5
    assert notifier.flush(15)
    assert notifier.sent == 5
    assert notifier.errors == 0
    herald.wait_for(*["background-%d;" % i for i in range(5)])
    notifier.close()


def test_background_caller_never_waits(tmp_path: Path, hanging_server: int) -> None:
    errors: List[BaseException] = []
    notifier = Notifier(
        background=True,
        url="http://127.0.0.1:%d" % hanging_server,
        token="t",
        timeout=0.5,
        home=str(tmp_path),
        on_error=lambda error, text: errors.append(error),
    )

    started = time.monotonic()
    for index in range(5):
        notifier.notify("background-hang-%d;" % index)
    elapsed = time.monotonic() - started

    # One request that waits for its 0.5 s timeout would take longer.
    assert elapsed < 0.4, "five sends to a server that never responds took %.3f s" % elapsed
    assert notifier.flush(15)
    assert len(errors) == 5
    assert all(isinstance(e, HeraldError) and e.code == "timeout" for e in errors)
    notifier.close()


def test_background_full_queue_spools(tmp_path: Path, hanging_server: int) -> None:
    notifier = Notifier(
        background=True,
        queue_size=1,
        url="http://127.0.0.1:%d" % hanging_server,
        token="t",
        timeout=0.5,
        home=str(tmp_path),
        on_error=lambda error, text: None,
    )

    for index in range(5):
        notifier.notify("overflow-%d;" % index)

    assert notifier.spooled >= 3, "at most one message in flight and one queued"
    assert notifier.flush(15)
    assert notifier.spooled + notifier.errors == 5
    lines = (tmp_path / "spool" / "spool.jsonl").read_text().splitlines()
    assert len(lines) == notifier.spooled
    notifier.close()


def test_module_background_flushed_at_exit(herald: Herald) -> None:
    herald.start()

    result = run_script(
        herald,
        """
        import herald_notify
        notifier = herald_notify.Notifier(background=True)
        for index in range(3):
            notifier.notify("exit-flush-%d;" % index)
        herald_notify.notify("exit-module;", background=True)
        """,
    )

    assert result.returncode == 0, result.stderr
    herald.wait_for("exit-flush-0;", "exit-flush-1;", "exit-flush-2;", "exit-module;")


def test_exit_spools_what_is_left(herald: Herald, hanging_server: int) -> None:
    result = run_script(
        herald,
        """
        import herald_notify
        notifier = herald_notify.Notifier(
            background=True, url="http://127.0.0.1:%d", token="t",
            timeout=5, flush_timeout=0.3, on_error=lambda error, text: None,
        )
        for index in range(4):
            notifier.notify("exit-left-%%d;" %% index)
        """
        % hanging_server,
    )

    assert result.returncode == 0, result.stderr
    texts = [line["text"] for line in spool_lines(herald)]
    assert texts == ["exit-left-1;", "exit-left-2;", "exit-left-3;"], (
        "the first message is in flight to a server that never answers"
    )


# --- examples ----------------------------------------------------------------


def run_example(herald: Herald, *command: str) -> subprocess.CompletedProcess:
    env = herald.environment()
    env["PATH"] = str(herald.binaries.herald.parent) + os.pathsep + env.get("PATH", "")
    assert herald.url is not None
    env["HERALD_URL"] = herald.url
    result = subprocess.run(
        list(command),
        cwd=CLIENT_DIR / "examples",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_example_plain(herald: Herald) -> None:
    herald.start()

    result = run_example(herald, sys.executable, "plain.py")

    assert result.stdout.startswith("delivered ")
    herald.wait_for("Daily check finished")


def test_example_vnpy_strategy(herald: Herald) -> None:
    herald.start()

    run_example(herald, sys.executable, "vnpy_strategy.py")

    contents = herald.wait_for("Long Open 600519.SSE 100 @ 1688.00", "risk check failed")
    assert any("ZeroDivisionError" in c for c in contents)


def test_example_backtrader_notify(herald: Herald) -> None:
    herald.start()

    run_example(herald, sys.executable, "backtrader_notify.py")

    contents = herald.wait_for("BUY 600519 filled: 100 @ 1688.00", "SELL 000001 order 2 ended as Margin")
    assert not any("Accepted" in c for c in contents)


def test_example_curl(herald: Herald) -> None:
    herald.start()

    result = run_example(herald, "sh", "curl.sh", 'curl-example; "quoted" text')

    answer = json.loads(result.stdout)
    assert answer["status"] == "delivered"
    herald.wait_for('curl-example; "quoted" text')
