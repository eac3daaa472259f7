"""Invitations by e-mail (issue #13; only with `mail.enabled`): the optional `email` of a new
appointment, the invitation sent at once, and the reminder before the start.

The link is known only when the appointment is made (the server keeps its hash), so the mail
goes out within the request that makes it; when it fails, the appointment stays, the answer says
why, and the therapist still has the link to send another way.

The client's address is personal data. It goes into the mail and, when a reminder is due later
(`mail.reminder_minutes_before`), into the `invitation_reminders` row with the link sealed
(`signaling.link_seal`) until the reminder goes out; the row also goes when the appointment is
cancelled, its link replaced, or by the purge. It is never logged: the log names the
appointment's id, and failures the reason and the error's class.

In a cluster every node runs the reminder job. A due reminder is claimed by exactly one of them
and held for the time one mail may take (`mail.timeout_seconds` and a minute); it is deleted
once sent or dropped. If its node dies first, the hold ends and another node sends it: a
reminder is never lost, and goes out twice only if a node dies between the server taking the
mail and the delete. One that the SMTP server could not take for a passing reason (down, too
slow) is put back for another try a few minutes later, until the appointment starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from signaling.config import Config
from signaling.credentials import load_or_create_session_secret, token_matches
from signaling.http_errors import ApiError
from signaling.invitation_mail import client_address, invitation_message, reminder_message
from signaling.link_seal import LinkSeal
from signaling.logs import LOGGER_NAME, log_event
from signaling.mail_sender import MailNotSent, MailSender
from signaling.metrics import Metrics
from signaling.storage import Appointment, AppointmentState, Storage, StorageFailure
from signaling.storage.base import InvitationReminder

__all__ = [
    "EMAIL_FIELD",
    "HOLD_MARGIN",
    "REMINDER_CHECK_SECONDS",
    "RETRY_AFTER",
    "InvitationsByMail",
    "MailOutcome",
    "send_reminders_periodically",
]

EMAIL_FIELD = "email"
# Reminders go out within a minute of their time; a check is one indexed query.
REMINDER_CHECK_SECONDS = 60.0
# A reminder the SMTP server could not take (unreachable, timeout) is tried again this much later.
RETRY_AFTER = dt.timedelta(minutes=5)
# A claimed reminder is held for one mail's timeout and this margin (the database writes around
# it); after that, a node that died while sending no longer keeps it from going out.
HOLD_MARGIN = dt.timedelta(minutes=1)

logger = logging.getLogger(LOGGER_NAME)


@dataclass(frozen=True)
class MailOutcome:
    """What became of the invitation mail, for the answer that made the appointment."""

    sent: bool
    # why not (MailNotSent.reason), when not sent
    reason: str | None = None
    # when the reminder goes out; None: no reminder
    reminder_at: dt.datetime | None = None

    def json(self) -> dict[str, Any]:
        if not self.sent:
            return {"sent": False, "reason": self.reason}
        at = self.reminder_at
        return {"sent": True, "reminder_at": at.strftime("%Y-%m-%dT%H:%M:%SZ") if at else None}


class InvitationsByMail:
    """Built once per app; the routes ask it whether and how to mail, the job sends reminders.
    `metrics` counts each mail's outcome; `sender` and `clock` are for tests (a private CA, a
    fixed now)."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        session_secret: str,
        sender: MailSender | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._storage = storage
        self._sender = sender or MailSender(config.mail)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._seal = None
        if config.mail.enabled:
            # as the second factor does: without a secret (tests that build the app directly)
            # the data directory's file, which `serve` uses too
            self._seal = LinkSeal(
                session_secret or load_or_create_session_secret(config.storage.data_dir)
            )

    @property
    def enabled(self) -> bool:
        return self._config.mail.enabled

    def take_address(self, body: dict[str, Any]) -> str | None:
        """Take `email` out of a create request's body (before the appointment's own checks,
        which refuse unknown fields): the checked address, or None when absent or null. Raise
        `ApiError` 400 when it is given but mail is off, or when it is no address."""
        value = body.pop(EMAIL_FIELD, None)
        if value is None:
            return None
        if not self.enabled:
            raise ApiError(
                400, "invalid_request", "email: invitations by e-mail are not switched on here"
            )
        try:
            return client_address(value)
        except ValueError as exc:
            raise ApiError(400, "invalid_request", str(exc)) from None

    async def invite(self, appointment: Appointment, link: str, address: str) -> MailOutcome:
        """Send the invitation for the new `appointment`; keep the address (and the link,
        sealed) for the reminder if one is due later. Never raises for the mail's sake."""
        now = self._clock()
        message = invitation_message(self._config, address, link, appointment, now)
        try:
            await self._sender.send(message)
        except MailNotSent as failure:
            self._count("invitation", failure.reason)
            log_event(
                logger,
                "invitation_mail_failed",
                logging.WARNING,
                appointment_id=appointment.id,
                reason=failure.reason,
                error=failure.error,
            )
            return MailOutcome(sent=False, reason=failure.reason)
        self._count("invitation", "sent")
        log_event(logger, "invitation_mail_sent", appointment_id=appointment.id)
        remind_at = self.reminder_time(appointment.starts_at)
        if remind_at is None or remind_at <= now:
            # no reminder configured, or its time has passed: this mail is the reminder
            return MailOutcome(sent=True)
        assert self._seal is not None
        try:
            await self._storage.add_invitation_reminder(
                appointment.id, address, remind_at, self._seal.seal(link, appointment.id)
            )
        except StorageFailure as failure:
            # The appointment and the invitation exist: an error answer now would have the
            # therapist make the appointment again. Only the reminder is lost, and said so.
            log_event(
                logger,
                "invitation_reminder_not_kept",
                logging.WARNING,
                appointment_id=appointment.id,
                error=failure.reason,
            )
            return MailOutcome(sent=True)
        log_event(logger, "invitation_reminder_kept", appointment_id=appointment.id)
        return MailOutcome(sent=True, reminder_at=remind_at)

    def reminder_time(self, starts_at: dt.datetime) -> dt.datetime | None:
        minutes = self._config.mail.reminder_minutes_before
        return starts_at - dt.timedelta(minutes=minutes) if minutes else None

    async def appointment_moved(self, appointment: Appointment) -> None:
        """The appointment has a new start: a pending reminder follows it (and says the new
        time), or goes when reminders were switched off meanwhile."""
        remind_at = self.reminder_time(appointment.starts_at)
        if remind_at is None:
            await self._storage.delete_invitation_reminder(appointment.id)
        else:
            await self._storage.move_invitation_reminder(appointment.id, remind_at)

    async def link_replaced(self, appointment_id: int) -> None:
        """A new link killed the mailed one: its reminder would point to a dead link."""
        await self._storage.delete_invitation_reminder(appointment_id)

    async def send_due_reminders(self) -> int:
        """Claim the reminders due now one at a time and send each; how many went out."""
        now = self._clock()
        hold_until = now + dt.timedelta(seconds=self._config.mail.timeout_seconds) + HOLD_MARGIN
        sent = 0
        while reminder := await self._storage.claim_due_invitation_reminder(now, hold_until):
            if await self._remind(reminder, now):
                sent += 1
        return sent

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.mail(kind, outcome)

    async def _remind(self, reminder: InvitationReminder, now: dt.datetime) -> bool:
        appointment = await self._storage.get_appointment(reminder.appointment_id)
        reason = "gone" if appointment is None else _no_reminder_for(appointment, now)
        link = None
        if appointment is not None and reason is None and reminder.link_sealed is not None:
            assert self._seal is not None
            # None when it cannot be opened (the session secret changed): no link then
            link = self._seal.open(reminder.link_sealed, appointment.id)
            if link is not None and not _is_current(link, appointment):
                reason = "link_replaced"
        if appointment is None or reason is not None:
            log_event(
                logger,
                "invitation_reminder_dropped",
                appointment_id=reminder.appointment_id,
                reason=reason,
            )
            await self._storage.delete_invitation_reminder(reminder.appointment_id)
            return False
        message = reminder_message(self._config, reminder.email, link, appointment, now)
        try:
            await self._sender.send(message)
        except MailNotSent as failure:
            self._count("reminder", failure.reason)
            retry = failure.transient and now + RETRY_AFTER < appointment.starts_at
            log_event(
                logger,
                "invitation_reminder_failed",
                logging.WARNING,
                appointment_id=appointment.id,
                reason=failure.reason,
                error=failure.error,
                retry=retry,
            )
            if retry:
                await self._storage.move_invitation_reminder(appointment.id, now + RETRY_AFTER)
            else:
                await self._storage.delete_invitation_reminder(appointment.id)
            return False
        # the server has the mail; from here a dying node could only make it go out twice
        self._count("reminder", "sent")
        log_event(logger, "invitation_reminder_sent", appointment_id=appointment.id)
        await self._storage.delete_invitation_reminder(appointment.id)
        return True


def _no_reminder_for(appointment: Appointment, now: dt.datetime) -> str | None:
    """Why no reminder goes out for `appointment` now, or None."""
    if appointment.purged_at is not None:
        return "gone"
    if appointment.state is not AppointmentState.SCHEDULED:
        # cancelled, or the client is already there (waiting, in the call), or it ended
        return appointment.state.value
    if appointment.invite_token_hash is None:
        return "no_link"
    if now >= appointment.starts_at:
        # the node was down past the start: a reminder after the start reminds of nothing
        return "started"
    return None


def _is_current(link: str, appointment: Appointment) -> bool:
    """Whether `link` is the appointment's live invite link (not one a re-issue killed)."""
    token = link.rsplit("/", 1)[-1]
    return appointment.invite_token_hash is not None and token_matches(
        token, appointment.invite_token_hash
    )


def send_reminders_periodically(
    mail: InvitationsByMail,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context: send due reminders at start and every `REMINDER_CHECK_SECONDS`."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_loop(mail))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def _loop(mail: InvitationsByMail) -> None:
    while True:
        try:
            await mail.send_due_reminders()
        except Exception:
            # the database away for a moment: the rows stay, the next round takes them
            log_event(logger, "invitation_reminders_failed", logging.ERROR, exc_info=True)
        await asyncio.sleep(REMINDER_CHECK_SECONDS)
