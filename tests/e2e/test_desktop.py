"""End-to-end tests of the real desktop app, driven through its window.

The tests run in order and share one app: a WeCom app profile is added and
tested, the fake WeCom server then rejects the IP (60020) and the window
shows the banner with the reported IP, and an email profile sends a test
with a Chinese subject to a real SMTP server.
"""

from __future__ import annotations

import base64
import email
import email.header
import time

from conftest import Fake, Smtp
from webdriver import Session


def wait_until(check, timeout: float = 30.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}")


def text_of(app: Session, testid: str) -> str:
    try:
        return app.text(testid)
    except Exception:
        return ""


def add_profile(app: Session, kind: str, fields: dict[str, str]) -> None:
    app.click("tab-profiles")
    app.click("add-profile")
    app.find("profile-form")
    app.select("field-kind", kind)
    for name, value in fields.items():
        if name == "tls":
            app.select("field-tls", value)
        else:
            app.type(f"field-{name}", value)
    app.click("save-profile")
    app.find(f"profile-row-{fields['name']}", timeout=15)


def test_app_profile_test_send_is_delivered(app: Session, fake: Fake) -> None:
    add_profile(
        app,
        "wecom-app",
        {
            "name": "ops",
            "corp_id": "ww1",
            "agent_id": "1000002",
            "to_user": "alice",
            "api_base": fake.url,
            "secret": "app-secret-1",
        },
    )
    app.click("send-test-ops")
    result = wait_until(lambda: "delivered" in text_of(app, "result-ops").lower() and text_of(app, "result-ops"))
    assert "failed" not in result.lower()

    received = fake.control("/_fake/received")
    assert len(received) == 1
    assert received[0]["kind"] == "app"
    assert received[0]["touser"] == "alice"
    assert "Herald test" in received[0]["content"]

    app.click("tab-history")
    history = wait_until(lambda: "delivered" in text_of(app, "history-list").lower() and text_of(app, "history-list"))
    assert "ops" in history


def test_ip_rejection_shows_banner_with_reported_ip(app: Session, fake: Fake) -> None:
    fake.control("/_fake/trusted_ip", {"reported_ip": "203.0.113.7"})
    app.click("tab-profiles")
    app.click("send-test-ops")
    wait_until(lambda: "failed" in text_of(app, "result-ops").lower())

    banner = wait_until(lambda: text_of(app, "banner-ops"))
    assert "203.0.113.7" in app.text("banner-ip-ops")
    assert "60020" in banner or "trusted" in banner.lower()
    steps = app.text("banner-steps-ops")
    assert "企业可信IP" in steps
    fake.control("/_fake/trusted_ip", {"reported_ip": None})


def test_email_test_send_with_chinese_subject(app: Session, smtp: Smtp) -> None:
    app.click("tab-settings")
    app.select("settings-language", "zh")
    app.click("settings-save")
    time.sleep(0.5)

    add_profile(
        app,
        "email",
        {
            "name": "mail",
            "smtp_host": "127.0.0.1",
            "smtp_port": str(smtp.port),
            "tls": "none",
            "username": "me@example.com",
            "from": "me@example.com",
            "to": "you@example.com",
            "secret": "auth-code",
        },
    )
    app.click("send-test-mail")
    wait_until(lambda: smtp.messages(), timeout=30)
    message = smtp.messages()[0]
    assert message["rcpt_tos"] == ["you@example.com"]
    parsed = email.message_from_bytes(base64.b64decode(message["data_b64"]))
    raw_subject = parsed["Subject"]
    assert "=?utf-8?" in raw_subject.lower(), raw_subject
    subject = str(email.header.make_header(email.header.decode_header(raw_subject)))
    assert subject == "Herald 测试"
    wait_until(lambda: "已送达" in text_of(app, "result-mail") or "delivered" in text_of(app, "result-mail").lower())
