#!/usr/bin/python3
"""SMTP test server for Herald's email tests, built on aiosmtpd.

Run it with Debian's interpreter, because the python3-aiosmtpd package is
installed only for /usr/bin/python3:

    /usr/bin/python3 tests/smtp/smtp_server.py --port 0 --tls starttls \
        --cert cert.pem --key key.pem --username bot@example.com \
        --password-file password.txt --maildir mail/

The server listens on 127.0.0.1 only and prints one line "READY <port>" to
stdout once it accepts connections. Every session must authenticate before
MAIL. Each accepted message is stored in the maildir as one JSON file named
<sequence>.json with the keys mail_from, rcpt_tos, data_b64 (the raw message
bytes in base64) and auth_user. Each file is written under a temporary name
and then renamed, so a reader never sees a partial file. Logs go to stderr.
"""

import argparse
import asyncio
import base64
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("smtp_server")

# QQ Mail's SMTP server sent this reply to a wrong password, encoded in GBK
# rather than ASCII or UTF-8.
GBK_AUTH_FAILURE = (
    "535 Error: 请使用授权码登录。详情请看: "
    "http://service.mail.qq.com/cgi-bin/help?subtype=1&&id=28&&no=1001256"
).encode("gbk")
AUTH_FAILURE = "535 Error: authentication failed"
FROM_MISMATCH = "501 mail from address must be same as authorization user"
RCPT_REJECTED = "550 Mailbox not found"


class RelayTestSMTP(SMTP):
    """aiosmtpd session that can drop the connection after accepting DATA."""

    # AUTH LOGIN challenges in place of aiosmtpd 1.4.3's defaults, which end in
    # a NUL byte.
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    def __init__(self, handler, *, drop_after_data, **kwargs):
        super().__init__(handler, **kwargs)
        self.drop_after_data = drop_after_data

    async def smtp_DATA(self, arg):
        stored_before = self.session_stored_count()
        await super().smtp_DATA(arg)
        if self.drop_after_data and self.session_stored_count() > stored_before:
            await self.abort_connection()

    def session_stored_count(self):
        return getattr(self.session, "stored_messages", 0)

    async def abort_connection(self):
        """Close the connection without a reply, a TLS close_notify or QUIT.

        The 250 reply is normally in the kernel already, because asyncio
        transports write straight to the socket when their buffer is empty.
        The wait below covers data still buffered in self.transport.
        NOTE: with TLS, data buffered in the underlying TCP transport is not
        checked and would be lost.
        """
        for _ in range(100):
            if self.transport is None or self.transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        if self.transport is not None:
            log.info("%r dropping connection after DATA", self.session.peer)
            self.transport.abort()


class MaildirHandler:
    """aiosmtpd handler that checks envelopes and stores accepted messages."""

    def __init__(self, args, password):
        self.username = args.username.encode("utf-8")
        self.password = password.encode("utf-8")
        self.gbk_auth_failure = args.gbk_auth_failure
        self.require_from_login = args.require_from_login
        self.reject_rcpt = set(args.reject_rcpt)
        self.maildir = args.maildir
        self.sequence = itertools.count(1)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username
            and auth_data.password == self.password
        ):
            log.info("%r authenticated with %s", session.peer, mechanism)
            return AuthResult(success=True, auth_data=auth_data)
        log.info("%r authentication failed with %s", session.peer, mechanism)
        # smtp_AUTH passes the message to push(), which also accepts bytes.
        message = GBK_AUTH_FAILURE if self.gbk_auth_failure else AUTH_FAILURE
        return AuthResult(success=False, handled=False, message=message)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        login = session.login_data.decode("utf-8", errors="replace")
        if self.require_from_login and address != login:
            log.info("%r rejected MAIL FROM %s for login %s", session.peer, address, login)
            return FROM_MISMATCH
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject_rcpt:
            log.info("%r rejected RCPT TO %s", session.peer, address)
            return RCPT_REJECTED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data_b64": base64.b64encode(envelope.original_content).decode("ascii"),
            "auth_user": session.login_data.decode("utf-8", errors="replace"),
        }
        name = f"{next(self.sequence):06d}.json"
        temporary_path = os.path.join(self.maildir, f".{name}.tmp")
        with open(temporary_path, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(temporary_path, os.path.join(self.maildir, name))
        session.stored_messages = getattr(session, "stored_messages", 0) + 1
        log.info(
            "%r stored %s from %s to %d recipients",
            session.peer,
            name,
            envelope.mail_from,
            len(envelope.rcpt_tos),
        )
        return "250 OK"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port",
        type=int,
        required=True,
        help="TCP port on 127.0.0.1, or 0 for any free port",
    )
    parser.add_argument(
        "--tls",
        choices=["implicit", "starttls", "none"],
        required=True,
        help="implicit = TLS from the first byte, starttls = STARTTLS required before AUTH, "
        "none = plain text",
    )
    parser.add_argument("--cert", help="PEM certificate chain, required unless --tls none")
    parser.add_argument("--key", help="PEM private key, required unless --tls none")

    parser.add_argument("--username", required=True, help="only login that AUTH accepts")
    parser.add_argument(
        "--password-file",
        required=True,
        help="file containing the password (one trailing newline is stripped)",
    )
    parser.add_argument(
        "--maildir",
        required=True,
        help="existing directory for accepted messages, used by this server only",
    )

    parser.add_argument(
        "--gbk-auth-failure",
        action="store_true",
        help="reply to a wrong login with QQ Mail's GBK-encoded 535 text",
    )
    parser.add_argument(
        "--require-from-login",
        action="store_true",
        help="reply 501 to a MAIL FROM address that is not exactly the login",
    )
    parser.add_argument(
        "--reject-rcpt",
        action="append",
        default=[],
        metavar="ADDR",
        help="reply 550 to RCPT TO this address (repeatable)",
    )
    parser.add_argument(
        "--drop-after-data",
        action="store_true",
        help="close the connection right after the 250 reply to DATA",
    )
    parser.add_argument(
        "--exit-on-stdin-eof",
        action="store_true",
        help="exit when stdin reaches end of file, so the server stops when its parent dies",
    )

    args = parser.parse_args(argv)
    if args.tls != "none" and not (args.cert and args.key):
        parser.error(f"--cert and --key are required with --tls {args.tls}")
    if not os.path.isdir(args.maildir):
        parser.error(f"--maildir {args.maildir} is not an existing directory")
    return args


def read_password(path):
    with open(path, encoding="utf-8") as file:
        password = file.read()
    if password.endswith("\r\n"):
        return password[:-2]
    if password.endswith("\n"):
        return password[:-1]
    return password


def make_tls_context(args):
    if args.tls == "none":
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    return context


def watch_stdin(loop, stop):
    """Set stop from a daemon thread once stdin reaches end of file."""

    def read_until_eof():
        while sys.stdin.buffer.read(4096):
            pass
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=read_until_eof, daemon=True).start()


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = MaildirHandler(args, read_password(args.password_file))
    tls_context = make_tls_context(args)
    starttls = args.tls == "starttls"

    def make_session():
        return RelayTestSMTP(
            handler,
            drop_after_data=args.drop_after_data,
            # An explicit hostname keeps aiosmtpd from calling getfqdn(), which
            # can send DNS queries.
            hostname="localhost",
            tls_context=tls_context if starttls else None,
            require_starttls=starttls,
            auth_required=True,
            # With --tls implicit the whole connection is already TLS, but
            # aiosmtpd only counts STARTTLS as TLS.
            auth_require_tls=starttls,
            authenticator=handler.authenticate,
            loop=loop,
        )

    server = await loop.create_server(
        make_session,
        host="127.0.0.1",
        port=args.port,
        ssl=tls_context if args.tls == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    log.info("listening on 127.0.0.1:%d with --tls %s", port, args.tls)

    stop = asyncio.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    if args.exit_on_stdin_eof:
        watch_stdin(loop, stop)

    print(f"READY {port}", flush=True)
    await stop.wait()
    log.info("stopping")
    server.close()
    await server.wait_closed()


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    # aiosmtpd logs every command line at INFO, AUTH credentials included, and
    # warns on each connection that AUTH without TLS is unsafe.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
