"""A minimal W3C WebDriver client on the standard library, for tauri-driver."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class WebDriverError(RuntimeError):
    pass


class Session:
    """One WebDriver session against the app at `application`."""

    def __init__(self, driver_url: str, application: str, timeout: float = 60.0) -> None:
        self.driver_url = driver_url.rstrip("/")
        capabilities = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "wry",
                    "tauri:options": {"application": application},
                }
            }
        }
        answer = self._request("POST", "/session", capabilities, timeout=timeout)
        self.session_id = answer["sessionId"]

    def _request(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.driver_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with _opener.open(request, timeout=timeout) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise WebDriverError(f"{method} {path} failed with {error.code}: {detail}") from None

    def command(self, method: str, path: str, body: Any = None) -> Any:
        # The driver chain (tauri-driver, WebKitWebDriver) sometimes drops a
        # connection on a busy machine; the session survives, so try again.
        for attempt in range(3):
            try:
                return self._request(method, f"/session/{self.session_id}{path}", body)
            except (http.client.RemoteDisconnected, ConnectionResetError) as error:
                if attempt == 2:
                    raise WebDriverError(f"{method} {path}: the driver dropped the connection 3 times") from error
                time.sleep(0.5)

    def quit(self) -> None:
        try:
            self._request("DELETE", f"/session/{self.session_id}", timeout=10)
        except (WebDriverError, OSError):
            pass

    def find(self, testid: str, timeout: float = 10.0) -> str:
        """Returns the element with this data-testid, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        selector = f'[data-testid="{testid}"]'
        while True:
            try:
                found = self.command("POST", "/element", {"using": "css selector", "value": selector})
                return found[ELEMENT]
            except WebDriverError:
                if time.monotonic() > deadline:
                    raise WebDriverError(f"no element with data-testid={testid!r} after {timeout} s") from None
                time.sleep(0.2)

    def exists(self, testid: str) -> bool:
        found = self.command("POST", "/elements", {"using": "css selector", "value": f'[data-testid="{testid}"]'})
        return bool(found)

    def click(self, testid: str) -> None:
        self.command("POST", f"/element/{self.find(testid)}/click", {})

    def type(self, testid: str, text: str) -> None:
        """Replaces the field's value with `text` by typing it, and checks
        the result, typing again if a dropped connection cut it short."""
        element = self.find(testid)
        for _ in range(3):
            self.command("POST", f"/element/{element}/clear", {})
            self.command("POST", f"/element/{element}/value", {"text": text})
            if self.script("return arguments[0].value;", {ELEMENT: element}) == text:
                return
        raise WebDriverError(f"typing into {testid!r} did not give {text!r}")

    def text(self, testid: str) -> str:
        return self.command("GET", f"/element/{self.find(testid)}/text")

    def script(self, source: str, *args: Any) -> Any:
        return self.command("POST", "/execute/sync", {"script": source, "args": list(args)})

    def select(self, testid: str, value: str) -> None:
        """Sets a <select> to `value` and fires the change event."""
        element = self.find(testid)
        self.script(
            "const el = arguments[0]; el.value = arguments[1];"
            "el.dispatchEvent(new Event('input', {bubbles: true}));"
            "el.dispatchEvent(new Event('change', {bubbles: true}));",
            {ELEMENT: element},
            value,
        )

    def wait_text(self, testid: str, expected: str, timeout: float = 30.0) -> str:
        """Waits until the element's text contains `expected`; returns the text."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                last = self.text(testid)
                if expected in last:
                    return last
            except WebDriverError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"{testid!r} never contained {expected!r}; last text: {last!r}")
