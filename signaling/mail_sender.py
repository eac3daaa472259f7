"""One e-mail to the operator's SMTP server (`mail.*`), with aiosmtplib.

aiosmtplib because the service runs on one asyncio loop that also carries the media relay:
smtplib would block it for the whole SMTP dialogue (or need a thread per mail). The dialogue is
spelled out (connect, EHLO, STARTTLS, AUTH, send) rather than left to `aiosmtplib.send`, so that
a server without STARTTLS is refused under `security: starttls` by our own check, with its own
reason, and never silently used in the clear.

Failures come out as one exception, `MailNotSent`, whose `reason` is a short word for people
and for the API and whose `error` is the exception's class name for the log. Neither ever holds
the server's text: a refusal quotes the recipient's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from email.message import EmailMessage

import aiosmtplib

from signaling.config import MailConfig

__all__ = ["FAILURE_REASONS", "TRANSIENT_REASONS", "MailNotSent", "MailSender"]

# Every `MailNotSent.reason`: a fixed set, so each can be a metric label.
FAILURE_REASONS = (
    "unreachable",
    "timeout",
    "tls",
    "authentication",
    "recipient_refused",
    "refused",
    "smtp_error",
)
# Worth trying again later: the server was not there or did not answer in time.
TRANSIENT_REASONS = frozenset({"unreachable", "timeout"})


class MailNotSent(Exception):
    """`reason`: unreachable, timeout, tls, authentication, recipient_refused, refused or
    smtp_error. `error`: the class name of what went wrong, safe to log."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT_REASONS


class MailSender:
    """Sends through `mail.host`:`mail.port` with `mail.security`. `tls_context` is for tests
    (a private CA); the default checks certificates against the system's CAs."""

    def __init__(self, config: MailConfig, tls_context: ssl.SSLContext | None = None) -> None:
        self._config = config
        self._tls_context = tls_context

    async def send(self, message: EmailMessage) -> None:
        """Send `message` to its To: address; raise `MailNotSent`. The whole dialogue gets
        `mail.timeout_seconds`, not each step of it."""
        smtp = self._client()
        try:
            async with asyncio.timeout(self._config.timeout_seconds):
                await self._dialogue(smtp, message)
            # The server has the mail; a QUIT that fails changes nothing about that.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._config.timeout_seconds):
                    await smtp.quit()
        except MailNotSent:
            raise
        except Exception as exc:
            raise MailNotSent(_reason(exc), type(exc).__name__) from exc
        finally:
            if smtp.is_connected:
                smtp.close()

    def _client(self) -> aiosmtplib.SMTP:
        config = self._config
        context = self._tls_context or ssl.create_default_context()
        return aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            use_tls=config.security == "tls",
            # STARTTLS below, by our own check; aiosmtplib's default would upgrade only if
            # offered and go on in the clear otherwise
            start_tls=False,
            tls_context=context,
            timeout=config.timeout_seconds,
        )

    async def _dialogue(self, smtp: aiosmtplib.SMTP, message: EmailMessage) -> None:
        config = self._config
        await smtp.connect()
        if config.security == "starttls":
            await smtp.ehlo()
            if not smtp.supports_extension("starttls"):
                raise MailNotSent("tls", "StartTlsNotOffered")
            await smtp.starttls()
        if config.username is not None and config.password is not None:
            await smtp.login(config.username, config.password)
        await smtp.send_message(message)


def _reason(exc: BaseException) -> str:
    if _caused_by(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, TimeoutError):  # aiosmtplib's timeouts are TimeoutErrors too
        return "timeout"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return "authentication"
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPRecipientRefused):
        return "recipient_refused"
    if isinstance(exc, OSError):  # connection refused or reset, no route, name not found
        return "unreachable"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return "refused"
    return "smtp_error"


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False
