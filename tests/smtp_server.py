"""A real SMTP server for the mail tests: aiosmtpd's Controller (its own thread and event loop)
on 127.0.0.1 and a port from tests/ports.py. Every message it accepts is kept, parsed, with its
envelope and whether it came over TLS and after AUTH.

    with SmtpServer(port) as server: ...
    with SmtpServer(port, tls=write_self_signed_cert(directory), credentials=("u", "p")): ...

With `tls` the server offers STARTTLS with that certificate and requires it before MAIL (as a
submission server on port 587 does), or with `implicit_tls` speaks TLS from the first byte (port
465); `credentials` makes it require AUTH too. `refuse` lists recipients it answers 550.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

__all__ = ["Received", "SmtpServer"]


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes
    over_tls: bool
    authenticated: bool


class _Handler:
    def __init__(self, refuse: frozenset[str]) -> None:
        self.received: list[Received] = []
        self._refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self._refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            Received(
                sender=str(envelope.mail_from),
                recipients=list(envelope.rcpt_tos),
                message=message,
                raw=raw,
                # session.ssl is set by STARTTLS only; implicit TLS shows on the transport
                over_tls=session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 OK"


class SmtpServer:
    def __init__(
        self,
        port: int,
        tls: tuple[Path, Path] | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
        refuse: tuple[str, ...] = (),
    ) -> None:
        self.port = port
        self._handler = _Handler(frozenset(refuse))
        options: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            if implicit_tls:
                options.update(ssl_context=context)
            else:
                options.update(tls_context=context, require_starttls=True)
        if credentials is not None:
            options.update(auth_required=True, authenticator=_Authenticator(*credentials))
        # decode_data=False keeps the bytes exactly as sent (original_content)
        self._controller = Controller(
            self._handler, hostname="127.0.0.1", port=port, ready_timeout=20, **options
        )
        self._running = False

    @property
    def received(self) -> list[Received]:
        return list(self._handler.received)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The first `count` messages, once that many have arrived; fails after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._handler.received) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{len(self._handler.received)} of {count} mails arrived in {timeout} s"
                )
            await asyncio.sleep(0.05)
        return self.received[:count]

    def start(self) -> SmtpServer:
        # The server stands in for the operator's MTA, which logs addresses by nature; its
        # records are not the service's and must not reach the run's privacy check.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop listening (a test may stop it early to see the service cope without it)."""
        if self._running:
            self._running = False
            self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self._login = (username.encode(), password.encode())

    def __call__(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == self._login
        return AuthResult(success=ok, handled=False)
