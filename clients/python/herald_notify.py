"""Send notifications through a local Herald relay.

Standard library only, Python 3.8 or later. Copy this file next to a script
or install it with ``pip install clients/python``::

    from herald_notify import notify
    notify("600519 filled 100 @ 1688.00", title="Order")

Settings, first match wins: the arguments of a call, then the environment
(``HERALD_URL``, ``HERALD_TOKEN``, ``HERALD_PROFILE``), then ``relay.json``
in ``HERALD_HOME``, which ``herald serve`` writes while it runs. Requests
never go through a proxy, so the ``HTTP_PROXY`` variables and the system
proxy settings do not apply.

When the relay cannot be reached (connection refused or timed out, or no
``relay.json``) or responds with 503 ``busy``, the message is appended to
``HERALD_HOME/spool/spool.jsonl``. The relay imports that file when it
starts and every 2 seconds while it runs, and stores each line once.
``notify`` then returns the line's id prefixed with ``spool:``. Other error
responses (400, 401, 403, 404, 413) raise :class:`HeraldError` and are never
spooled.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from dataclasses import dataclass
from collections import deque
from typing import Any, Callable, Deque, Dict, Literal, Optional, Tuple, Union, overload

__version__ = "0.1.0"

__all__ = [
    "HeraldError",
    "HeraldHandler",
    "Notifier",
    "Outcome",
    "Settings",
    "default_home",
    "load_settings",
    "notify",
    "spool",
]

#: Connect timeout, in seconds, for a relay URL on a loopback address.
LOOPBACK_CONNECT_TIMEOUT = 0.05
#: Connect timeout, in seconds, for any other relay URL.
REMOTE_CONNECT_TIMEOUT = 1.0
#: Bound, in seconds, on a whole request without ``wait``.
DEFAULT_TIMEOUT = 5.0
#: Bound, in seconds, on a whole ``wait=True`` request. The relay responds
#: after at most 30 seconds.
WAIT_TIMEOUT = 35.0
#: The relay's request body limit: 1 MiB.
BODY_LIMIT = 1 << 20
#: Spool file name inside ``HERALD_HOME/spool``.
SPOOL_FILE = "spool.jsonl"
#: Prefix of the ids that :func:`notify` returns for spooled messages.
SPOOL_PREFIX = "spool:"

_LOGGER = logging.getLogger("herald_notify")
_LOGGER.addHandler(logging.NullHandler())

# A writer retries only when the relay renamed the spool file between the
# writer's open and write. The relay renames it at most once per 2-second
# import pass, so 50 attempts leave a wide margin.
_SPOOL_ATTEMPTS = 50
_LOOPBACK_HOSTS = ("localhost", "::1", "[::1]")


class HeraldError(Exception):
    """An error response from the relay, or a request that failed after connecting.

    ``code`` is the relay's error code (``unauthorized``, ``unknown_profile``,
    ``bad_json``, ...) or one of this module's: ``empty_text``,
    ``invalid_text``, ``body_too_large``, ``invalid_url``, ``timeout``,
    ``request_failed``, ``unexpected_response``. ``status`` is the HTTP status,
    or None when there was no response.
    """

    def __init__(
        self, code: str, message: str, hint: str = "", status: Optional[int] = None
    ) -> None:
        super().__init__(code, message, hint, status)
        self.code = code
        self.message = message
        self.hint = hint
        self.status = status

    def __str__(self) -> str:
        text = "%s (%s)" % (self.message, self.code)
        if self.hint:
            text += " " + self.hint
        return text


@dataclass(frozen=True)
class Outcome:
    """The result of ``notify(..., wait=True)``.

    ``status`` is ``delivered``, ``failed``, ``spooled``, or ``queued`` or
    ``sending`` when the relay's 30-second wait ended first. ``error`` is the
    relay's error object of a failed message: ``code``, ``message``, ``hint``
    and their Chinese versions ``message_zh`` and ``hint_zh``.
    """

    id: str
    status: str
    error: Optional[Dict[str, Any]] = None

    @property
    def delivered(self) -> bool:
        return self.status == "delivered"

    @property
    def spooled(self) -> bool:
        return self.status == "spooled"


@dataclass(frozen=True)
class Settings:
    """The relay's URL and token, the profile and the Herald folder, as
    :func:`load_settings` resolved them.

    ``url`` and ``token`` are None when no argument, variable or
    ``relay.json`` provides them.
    """

    url: Optional[str]
    token: Optional[str]
    profile: Optional[str]
    home: str


def default_home() -> str:
    """Return ``HERALD_HOME``, or the folder the relay uses without it.

    The relay takes ``ProjectDirs::from("", "", "herald").data_dir()`` of the
    Rust ``directories`` crate (version 6): ``$XDG_DATA_HOME/herald`` or
    ``~/.local/share/herald`` on Linux and other Unix systems,
    ``~/Library/Application Support/herald`` on macOS and
    ``%APPDATA%\\herald\\data`` on Windows.
    """
    home = os.environ.get("HERALD_HOME")
    if home:
        return home
    if sys.platform == "win32":
        appdata = os.environ.get("APPDATA") or os.path.join(
            os.path.expanduser("~"), "AppData", "Roaming"
        )
        return os.path.join(appdata, "herald", "data")
    if sys.platform == "darwin":
        return os.path.join(
            os.path.expanduser("~"), "Library", "Application Support", "herald"
        )
    data = os.environ.get("XDG_DATA_HOME")
    if not data or not os.path.isabs(data):
        data = os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data, "herald")


def _read_relay_json(home: str) -> Dict[str, Any]:
    """Return relay.json of ``home``, or an empty dict when it is missing or
    unreadable (a relay that is not running has none)."""
    try:
        with open(os.path.join(home, "relay.json"), encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def load_settings(
    url: Optional[str] = None,
    token: Optional[str] = None,
    profile: Optional[str] = None,
    home: Optional[str] = None,
) -> Settings:
    """Resolve the settings: arguments, then environment, then relay.json."""
    home = home or default_home()
    url = url or os.environ.get("HERALD_URL") or None
    token = token or os.environ.get("HERALD_TOKEN") or None
    profile = profile or os.environ.get("HERALD_PROFILE") or None
    if url is None or token is None:
        relay = _read_relay_json(home)
        if url is None and isinstance(relay.get("url"), str):
            url = relay["url"]
        if token is None and isinstance(relay.get("token"), str):
            token = relay["token"]
    return Settings(url=url, token=token, profile=profile, home=home)


# --- HTTP ----------------------------------------------------------------


class _Unreachable(OSError):
    """Connecting to the relay failed, so it has not seen the request."""


class _DeadlineSocket(socket.socket):
    """A socket whose sends and receives share one deadline."""

    deadline = 0.0

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.settimeout(remaining)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(bufsize, flags)


class _Connection(http.client.HTTPConnection):
    """An HTTP connection with its own connect timeout and a deadline for
    the rest of the request."""

    def __init__(
        self, host: str, *, connect_timeout: float, deadline: float, **kwargs: Any
    ) -> None:
        super().__init__(host, **kwargs)
        self._connect_timeout = connect_timeout
        self._deadline = deadline

    def connect(self) -> None:
        timeout = min(self._connect_timeout, self._deadline - time.monotonic())
        try:
            if timeout <= 0:
                raise socket.timeout("timed out")
            raw = socket.create_connection(
                (self.host, self.port),
                timeout,
                self.source_address,  # type: ignore[attr-defined]
            )
        except OSError as error:
            raise _Unreachable(error) from error
        sock = _DeadlineSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
        sock.deadline = self._deadline
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


class _Handler(urllib.request.HTTPHandler):
    def __init__(self, connect_timeout: float, deadline: float) -> None:
        super().__init__()
        self._connection = functools.partial(
            _Connection, connect_timeout=connect_timeout, deadline=deadline
        )

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


def _is_loopback(host: str) -> bool:
    return host.lower() in _LOOPBACK_HOSTS or host.startswith("127.")


def _error_from_body(status: int, body: bytes, url: str) -> HeraldError:
    try:
        error = json.loads(body.decode("utf-8"))["error"]
        return HeraldError(
            str(error["code"]), str(error["message"]), str(error.get("hint", "")), status
        )
    except (ValueError, KeyError, TypeError):
        return HeraldError(
            "unexpected_response",
            "HTTP %d from %s is not a response of a Herald relay." % (status, url),
            "Check HERALD_URL, or that relay.json in HERALD_HOME belongs to a running relay.",
            status,
        )


def _check_url(url: str) -> Tuple[str, str]:
    """Return the URL without a trailing slash, and its host."""
    base = url.rstrip("/")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme != "http" or not parts.hostname:
        raise HeraldError(
            "invalid_url",
            "Invalid relay URL %r." % url,
            "The relay listens on plain HTTP on loopback, e.g. http://127.0.0.1:7591.",
        )
    return base, parts.hostname


def _open(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    base: str,
    timeout: float,
) -> Tuple[int, bytes]:
    """Send the request and return the status and body of any response.
    Raises :class:`_Unreachable` when connecting fails."""
    try:
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()
    except urllib.error.URLError as error:
        if isinstance(error.reason, _Unreachable):
            raise error.reason from None
        if isinstance(error.reason, socket.timeout):
            raise _timeout_error(timeout) from None
        raise _request_failed(base, error.reason) from None
    except socket.timeout:
        raise _timeout_error(timeout) from None
    except (OSError, http.client.HTTPException) as error:
        raise _request_failed(base, error) from None


def _post(
    settings: Settings,
    body: bytes,
    wait: bool,
    connect_timeout: Optional[float],
    timeout: float,
) -> Tuple[int, Dict[str, Any]]:
    """POST ``body`` to /v1/send and return the status and the JSON body of
    a 200, 202 or 502 response. Raises :class:`_Unreachable` when connecting
    fails, and :class:`HeraldError` for error responses and later failures."""
    assert settings.url is not None
    base, host = _check_url(settings.url)
    if connect_timeout is None:
        connect_timeout = (
            LOOPBACK_CONNECT_TIMEOUT if _is_loopback(host) else REMOTE_CONNECT_TIMEOUT
        )

    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "herald-notify/" + __version__,
    }
    if settings.token:
        headers["Authorization"] = "Bearer " + settings.token
    url = base + "/v1/send" + ("?wait=true" if wait else "")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    deadline = time.monotonic() + timeout
    # An empty ProxyHandler replaces the default one, which would read the
    # proxy variables and the system settings.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _Handler(connect_timeout, deadline)
    )
    status, raw = _open(opener, request, base, timeout)

    if status in (200, 202, 502):
        try:
            response_json = json.loads(raw.decode("utf-8"))
        except ValueError:
            response_json = None
        if isinstance(response_json, dict) and isinstance(response_json.get("id"), str):
            return status, response_json
    raise _error_from_body(status, raw, base)


def _request_failed(base: str, reason: object) -> HeraldError:
    return HeraldError(
        "request_failed",
        "The request to %s failed: %s." % (base, reason),
        "Check that the relay is running (`herald serve`).",
    )


def _timeout_error(timeout: float) -> HeraldError:
    return HeraldError(
        "timeout",
        "The relay did not respond within %g s." % timeout,
        "The relay may still have stored the message, so it was not spooled; "
        "`herald history` shows what the relay received.",
    )


# --- Spool ---------------------------------------------------------------


def _make_private_dir(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        return
    if os.name == "posix":
        os.chmod(path, 0o700)


if sys.platform != "win32":
    import fcntl

    def _lock(fd: int) -> bool:
        """Take a shared lock without blocking. The relay holds an exclusive
        lock only on a file that it already renamed, so a failure means the
        file must be opened again."""
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        # Closing the descriptor releases the lock.
        pass

else:
    import msvcrt

    # NOTE: this branch is untested. It assumes that Windows rejects renaming
    # a file that another process opened without FILE_SHARE_DELETE, which the
    # C runtime's open does not request, so the relay cannot take the file
    # away mid-write. The C runtime's O_APPEND seeks and writes in two steps,
    # so writers serialize on a lock of byte 0.
    def _lock(fd: int) -> bool:
        deadline = time.monotonic() + 2.0
        while True:
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _append_line(directory: str, line: bytes) -> None:
    """Append ``line`` to the spool file with one ``os.write`` under a shared
    lock, reopening when the relay renamed the file in between."""
    path = os.path.join(directory, SPOOL_FILE)
    flags = (
        os.O_WRONLY
        | os.O_APPEND
        | os.O_CREAT
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    for _ in range(_SPOOL_ATTEMPTS):
        fd = os.open(path, flags, 0o600)
        try:
            if not _lock(fd):
                continue
            try:
                opened = os.fstat(fd)
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    continue
                if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
                    continue
                written = os.write(fd, line)
                if written != len(line):
                    # Ending the cut line keeps the next writer's line whole.
                    # The relay then rejects only the cut line.
                    try:
                        os.write(fd, b"\n")
                    except OSError:
                        pass
                    raise OSError(
                        "short write to %s: %d of %d bytes" % (path, written, len(line))
                    )
                return
            finally:
                _unlock(fd)
        finally:
            os.close(fd)
    raise OSError(
        "could not append to %s: it was renamed %d times in a row"
        % (path, _SPOOL_ATTEMPTS)
    )


def _spool_line(
    text: str, title: Optional[str], profile: Optional[str], markdown: bool
) -> Tuple[str, bytes]:
    spool_id = uuid.uuid4().hex
    entry = {
        "spool_id": spool_id,
        "text": text,
        "title": title,
        "profile": profile,
        "format": "markdown" if markdown else "text",
        "created_at": int(time.time() * 1000),
    }
    # json.dumps escapes newlines inside strings, so the entry is one line.
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
    return spool_id, line.encode("utf-8")


def spool(
    text: str,
    title: Optional[str] = None,
    profile: Optional[str] = None,
    markdown: bool = False,
    *,
    home: Optional[str] = None,
) -> str:
    """Append a message to the spool without contacting the relay and return
    its id, ``spool:`` followed by 32 hex digits. ``profile`` None means the
    default profile (or ``HERALD_PROFILE``) when the relay imports it."""
    _check_text(text, title)
    profile = profile or os.environ.get("HERALD_PROFILE") or None
    return _spool(home or default_home(), text, title, profile, markdown)


def _spool(
    home: str, text: str, title: Optional[str], profile: Optional[str], markdown: bool
) -> str:
    size = len(text.encode("utf-8"))
    if size > BODY_LIMIT:
        raise _too_large(size)
    spool_id, line = _spool_line(text, title, profile, markdown)
    os.makedirs(home, 0o700, exist_ok=True)
    directory = os.path.join(home, "spool")
    _make_private_dir(directory)
    _append_line(directory, line)
    _LOGGER.info("spooled message %s to %s", spool_id, directory)
    return SPOOL_PREFIX + spool_id


# --- notify --------------------------------------------------------------


def _check_text(text: Any, title: Any) -> None:
    if not isinstance(text, str):
        raise TypeError("text must be a str, not %s" % type(text).__name__)
    if title is not None and not isinstance(title, str):
        raise TypeError("title must be a str or None, not %s" % type(title).__name__)
    if not text.strip():
        raise HeraldError("empty_text", "The text is empty.", "Send the notice's text.")
    for value in (text, title or ""):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise HeraldError(
                "invalid_text",
                "The text or title is not valid Unicode: %s." % error.reason,
                "Remove lone surrogate characters, e.g. from bytes decoded with "
                "errors='surrogateescape'.",
            ) from None


def _too_large(size: int) -> HeraldError:
    return HeraldError(
        "body_too_large",
        "The message has %d bytes, more than the relay's limit of %d bytes (1 MiB)."
        % (size, BODY_LIMIT),
        "Send a shorter message; long reports are better saved to a file.",
        413,
    )


def _send(
    text: str,
    title: Optional[str],
    profile: Optional[str],
    markdown: bool,
    wait: bool,
    timeout: Optional[float],
    connect_timeout: Optional[float],
    url: Optional[str],
    token: Optional[str],
    home: Optional[str],
) -> Union[str, Outcome]:
    _check_text(text, title)
    settings = load_settings(url=url, token=token, profile=profile, home=home)
    payload: Dict[str, Any] = {"text": text}
    if settings.profile is not None:
        payload["profile"] = settings.profile
    if title is not None:
        payload["title"] = title
    if markdown:
        payload["format"] = "markdown"
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    if len(body) > BODY_LIMIT:
        raise _too_large(len(body))

    def spooled() -> Union[str, Outcome]:
        spool_id = _spool(settings.home, text, title, settings.profile, markdown)
        return Outcome(id=spool_id, status="spooled") if wait else spool_id

    if settings.url is None:
        _LOGGER.debug("no relay.json in %s and no HERALD_URL", settings.home)
        return spooled()
    if timeout is None:
        timeout = WAIT_TIMEOUT if wait else DEFAULT_TIMEOUT
    try:
        _, response_json = _post(settings, body, wait, connect_timeout, timeout)
    except _Unreachable as error:
        _LOGGER.debug("relay at %s unreachable: %s", settings.url, error)
        return spooled()
    except HeraldError as error:
        if error.status == 503 and error.code == "busy":
            return spooled()
        raise
    if not wait:
        return str(response_json["id"])
    error_object = response_json.get("error")
    return Outcome(
        id=str(response_json["id"]),
        status=str(response_json.get("status", "queued")),
        error=error_object if isinstance(error_object, dict) else None,
    )


@overload
def notify(
    text: str,
    title: Optional[str] = ...,
    profile: Optional[str] = ...,
    markdown: bool = ...,
    wait: Literal[False] = ...,
    timeout: Optional[float] = ...,
    *,
    background: Literal[False] = ...,
    connect_timeout: Optional[float] = ...,
    url: Optional[str] = ...,
    token: Optional[str] = ...,
    home: Optional[str] = ...,
) -> str: ...


@overload
def notify(
    text: str,
    title: Optional[str] = ...,
    profile: Optional[str] = ...,
    markdown: bool = ...,
    *,
    wait: Literal[True],
    timeout: Optional[float] = ...,
    background: Literal[False] = ...,
    connect_timeout: Optional[float] = ...,
    url: Optional[str] = ...,
    token: Optional[str] = ...,
    home: Optional[str] = ...,
) -> Outcome: ...


@overload
def notify(
    text: str,
    title: Optional[str] = ...,
    profile: Optional[str] = ...,
    markdown: bool = ...,
    wait: Literal[False] = ...,
    timeout: Optional[float] = ...,
    *,
    background: Literal[True],
    connect_timeout: Optional[float] = ...,
    url: Optional[str] = ...,
    token: Optional[str] = ...,
    home: Optional[str] = ...,
) -> None: ...


def notify(
    text: str,
    title: Optional[str] = None,
    profile: Optional[str] = None,
    markdown: bool = False,
    wait: bool = False,
    timeout: Optional[float] = None,
    *,
    background: bool = False,
    connect_timeout: Optional[float] = None,
    url: Optional[str] = None,
    token: Optional[str] = None,
    home: Optional[str] = None,
) -> Union[str, Outcome, None]:
    """Send a message through the relay.

    Returns the message id once the relay stored it, or ``spool:...`` when
    the message was spooled. With ``wait=True`` it returns an
    :class:`Outcome` once the message is delivered or failed, or after the
    relay's 30-second cap. With ``background=True`` it hands the message to
    a shared background :class:`Notifier` and returns None at once.

    ``timeout`` bounds the whole request in seconds (default 5, or 35 with
    ``wait``). ``connect_timeout`` defaults to 0.05 s for a loopback URL and
    1 s for any other. Raises :class:`HeraldError` for error responses and
    invalid input, and ``OSError`` when spooling fails.
    """
    if background:
        if wait:
            raise ValueError("wait=True cannot be combined with background=True")
        notifier = _background_notifier(url, token, home, connect_timeout, timeout)
        notifier.notify(text, title=title, profile=profile, markdown=markdown)
        return None
    return _send(
        text, title, profile, markdown, wait, timeout, connect_timeout, url, token, home
    )


# --- Background sending ---------------------------------------------------


@dataclass(frozen=True)
class _Job:
    text: str
    title: Optional[str]
    profile: Optional[str]
    markdown: bool


_STOP = object()


class Notifier:
    """Sends messages with fixed settings, optionally from a daemon thread.

    With ``background=True``, :meth:`notify` puts the message on a queue of
    ``queue_size`` and returns at once. A message that finds the queue full
    is spooled in the caller's thread, which writes one line to a local
    file. At interpreter exit the notifier waits up to ``flush_timeout``
    seconds for the queue to drain and spools what is left.

    Errors in the thread go to ``on_error(error, text)``. Without it, the
    first error is printed to stderr as one line, and every error is logged
    to the ``herald_notify`` logger and counted in :attr:`errors`.
    """

    def __init__(
        self,
        *,
        url: Optional[str] = None,
        token: Optional[str] = None,
        profile: Optional[str] = None,
        home: Optional[str] = None,
        connect_timeout: Optional[float] = None,
        timeout: Optional[float] = None,
        background: bool = False,
        queue_size: int = 1000,
        flush_timeout: float = 2.0,
        on_error: Optional[Callable[[BaseException, str], None]] = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.url = url
        self.token = token
        self.profile = profile
        self.home = home
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.background = background
        self.flush_timeout = flush_timeout
        self.on_error = on_error
        #: Messages the relay stored.
        self.sent = 0
        #: Messages appended to the spool.
        self.spooled = 0
        #: Messages that failed in the background thread.
        self.errors = 0
        self.last_error: Optional[BaseException] = None
        self._queue_size = queue_size
        self._jobs: Deque[Any] = deque()
        self._unfinished = 0
        self._condition = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self._reported = False
        if background:
            reference = weakref.ref(self)

            def close_at_exit() -> None:
                notifier = reference()
                if notifier is not None:
                    notifier.close()

            self._close_at_exit = close_at_exit
            atexit.register(close_at_exit)

    def send(
        self,
        text: str,
        title: Optional[str] = None,
        profile: Optional[str] = None,
        markdown: bool = False,
        wait: bool = False,
    ) -> Union[str, Outcome]:
        """Send in the calling thread, like :func:`notify`."""
        result = _send(
            text,
            title,
            profile or self.profile,
            markdown,
            wait,
            self.timeout,
            self.connect_timeout,
            self.url,
            self.token,
            self.home,
        )
        identifier = result.id if isinstance(result, Outcome) else result
        with self._condition:
            if identifier.startswith(SPOOL_PREFIX):
                self.spooled += 1
            else:
                self.sent += 1
        return result

    def notify(
        self,
        text: str,
        title: Optional[str] = None,
        profile: Optional[str] = None,
        markdown: bool = False,
    ) -> Optional[str]:
        """Queue the message in background mode and return None, or, when the
        notifier is synchronous or closed, send it and return its id."""
        if not self.background or self._closed:
            result = self.send(text, title, profile, markdown)
            assert isinstance(result, str)
            return result
        _check_text(text, title)
        job = _Job(text, title, profile or self.profile, markdown)
        with self._condition:
            if len(self._jobs) < self._queue_size:
                self._jobs.append(job)
                self._unfinished += 1
                self._start_thread()
                self._condition.notify_all()
                return None
        # NOTE: spooling keeps the caller off the network, but the message
        # then reaches the relay only at its next import, up to 2 s later.
        self._spool_job(job)
        return None

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every queued message was handled; return False when
        ``timeout`` seconds (default ``flush_timeout``) passed first."""
        deadline = time.monotonic() + (
            self.flush_timeout if timeout is None else timeout
        )
        with self._condition:
            while self._unfinished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
        return True

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush with a bounded wait, spool the messages still queued and
        stop the thread. Later calls of :meth:`notify` send synchronously."""
        if self._closed:
            return
        self.flush(timeout)
        with self._condition:
            self._closed = True
            left = [job for job in self._jobs if job is not _STOP]
            self._jobs = deque([_STOP])
            self._unfinished -= len(left)
            self._condition.notify_all()
        for job in left:
            self._spool_job(job)
        if self.background:
            atexit.unregister(self._close_at_exit)

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="herald-notify", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._jobs:
                    self._condition.wait()
                job = self._jobs.popleft()
            if job is _STOP:
                return
            try:
                self.send(job.text, job.title, job.profile, job.markdown)
            except Exception as error:  # noqa: BLE001 - reported, never raised
                self._report(error, job.text)
            finally:
                with self._condition:
                    self._unfinished -= 1
                    self._condition.notify_all()

    def _spool_job(self, job: _Job) -> None:
        try:
            _spool(
                self.home or default_home(),
                job.text,
                job.title,
                job.profile or os.environ.get("HERALD_PROFILE") or None,
                job.markdown,
            )
        except Exception as error:  # noqa: BLE001 - reported, never raised
            self._report(error, job.text)
            return
        with self._condition:
            self.spooled += 1

    def _report(self, error: BaseException, text: str) -> None:
        with self._condition:
            self.errors += 1
            self.last_error = error
        if self.on_error is not None:
            try:
                self.on_error(error, text)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the thread
                _LOGGER.exception("the on_error callback failed")
            return
        _LOGGER.warning("could not send a message: %s", error)
        if not self._reported:
            self._reported = True
            _print_line(
                "herald_notify: could not send a message: %s "
                "(later errors are counted in Notifier.errors)" % error
            )


def _print_line(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - stderr may be closed at exit
        pass


_background_lock = threading.Lock()
_background_notifiers: Dict[Tuple[Any, ...], Notifier] = {}


def _background_notifier(
    url: Optional[str],
    token: Optional[str],
    home: Optional[str],
    connect_timeout: Optional[float],
    timeout: Optional[float],
) -> Notifier:
    key = (url, token, home, connect_timeout, timeout)
    with _background_lock:
        notifier = _background_notifiers.get(key)
        if notifier is None:
            notifier = Notifier(
                url=url,
                token=token,
                home=home,
                connect_timeout=connect_timeout,
                timeout=timeout,
                background=True,
            )
            _background_notifiers[key] = notifier
        return notifier


# --- logging --------------------------------------------------------------


class HeraldHandler(logging.Handler):
    """A logging handler that sends records at or above ``level`` through
    the relay.

    A token bucket of ``burst`` records, refilled at ``per_minute`` records a
    minute, limits floods. Records beyond it are dropped and counted, and the
    next message that is sent reports how many were dropped. Texts longer
    than ``max_chars`` are cut. The title is ``title``, or the record's level
    and logger name.

    By default a background :class:`Notifier` sends the messages, so
    ``emit`` does not wait on the network, except after the notifier was
    closed at interpreter exit. Apart from ``RecursionError``, which the
    standard library's handlers also re-raise, no failure reaches the
    logging call. The first one is printed to stderr as one line without a
    traceback, and every one is counted in :attr:`errors`. Records of
    the ``herald_notify`` logger are ignored, so the handler cannot feed
    itself.
    """

    def __init__(
        self,
        level: int = logging.ERROR,
        *,
        title: Optional[str] = None,
        profile: Optional[str] = None,
        markdown: bool = False,
        per_minute: float = 10.0,
        burst: int = 5,
        max_chars: int = 4000,
        background: bool = True,
        notifier: Optional[Notifier] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        home: Optional[str] = None,
    ) -> None:
        super().__init__(level)
        if burst < 1 or per_minute <= 0:
            raise ValueError("burst must be at least 1 and per_minute above 0")
        self.title = title
        self.markdown = markdown
        self.per_minute = float(per_minute)
        self.burst = burst
        self.max_chars = max_chars
        #: Records dropped by the rate limit since the last message.
        self.suppressed = 0
        #: Records that could not be formatted, sent or spooled.
        self.errors = 0
        self._own_notifier = notifier is None
        self.notifier = notifier or Notifier(
            url=url,
            token=token,
            profile=profile,
            home=home,
            background=background,
            on_error=self._notifier_error,
        )
        self._tokens = float(burst)
        self._refilled_at = time.monotonic()
        self._clock: Callable[[], float] = time.monotonic

    def _take_token(self) -> bool:
        now = self._clock()
        elapsed = max(0.0, now - self._refilled_at)
        self._refilled_at = now
        self._tokens = min(
            float(self.burst), self._tokens + elapsed * self.per_minute / 60.0
        )
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == _LOGGER.name or record.name.startswith(_LOGGER.name + "."):
            return
        try:
            if not self._take_token():
                self.suppressed += 1
                return
            text = self._truncate(self.format(record))
            if self.suppressed:
                text += (
                    "\n(%d earlier log records were dropped by the rate limit)"
                    % self.suppressed
                )
                self.suppressed = 0
            title = self.title or "%s %s" % (record.levelname, record.name)
            self.notifier.notify(text, title=title, markdown=self.markdown)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must not raise into the caller
            self.handleError(record)

    def _truncate(self, text: str) -> str:
        if len(text) <= self.max_chars:
            return text
        cut = len(text) - self.max_chars
        return text[: self.max_chars] + "\n... (%d characters cut)" % cut

    def handleError(self, record: Optional[logging.LogRecord]) -> None:
        """Count the failure and print the first one as one line."""
        error = sys.exc_info()[1]
        self._count_error(error)

    def _notifier_error(self, error: BaseException, text: str) -> None:
        self._count_error(error)

    def _count_error(self, error: Optional[BaseException]) -> None:
        self.errors += 1
        if self.errors == 1 and logging.raiseExceptions:
            _print_line(
                "HeraldHandler: could not send a log record: %s "
                "(later errors are counted in HeraldHandler.errors)" % error
            )

    def flush(self) -> None:
        if self.notifier.background:
            self.notifier.flush()

    def close(self) -> None:
        """Report records still dropped by the rate limit, then close the
        notifier if the handler created it."""
        try:
            if self.suppressed:
                count, self.suppressed = self.suppressed, 0
                self.notifier.notify(
                    "%d log records were dropped by the rate limit." % count,
                    title=self.title or "HeraldHandler",
                )
            if self._own_notifier:
                self.notifier.close()
        except Exception:  # noqa: BLE001 - close runs at exit, where raising helps no one
            self._count_error(sys.exc_info()[1])
        finally:
            super().close()
