"""Invitations by e-mail (issue #13) through a real SMTP server (aiosmtpd, tests/smtp_server.py):
the mail arrives with neutral headers, its link works once, the calendar entry is minimal, no
note, name or address leaks into mail or logs, a failing server leaves the appointment and says
why, STARTTLS is required and checked, and the reminder goes out once at its time and takes the
address with it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import icalendar
import pytest

from signaling.config import Config, MailConfig
from signaling.credentials import hash_token
from signaling.invitation_mail import PRACTICE_ZONE, SUMMARY
from signaling.invitations_by_mail import HOLD_MARGIN, RETRY_AFTER, InvitationsByMail
from signaling.logs import LOGGER_NAME, JsonFormatter, KeyValueFormatter
from signaling.mail_sender import MailNotSent, MailSender
from signaling.metrics import METRICS, Metrics
from signaling.storage.sqlite import SqliteStorage
from tests.ports import reserve_ports
from tests.privacy_canaries import remember
from tests.signaling.api_server import ApiServer, call, in_days, serving, write_config
from tests.signaling.client_links import INVALID_LINK, consent
from tests.signaling.test_app import write_self_signed_cert
from tests.signaling.test_metrics import samples
from tests.smtp_server import Received, SmtpServer

ADDRESS = "klientin.privat@example.net"
SENDER = "praxis@example.org"
NOTE = "Diagnose F32.1, Geheimnotiz"
remember(ADDRESS, NOTE)

LINK = re.compile(r"https?://\S+/j/[A-Za-z0-9_-]{43}")


def mail_section(port: int, reminder_minutes: int = 0, security: str = "none") -> str:
    return (
        "mail:\n"
        "  enabled: true\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        f"  security: {security}\n"
        f"  sender: {SENDER}\n"
        f"  reminder_minutes_before: {reminder_minutes}\n"
        "  timeout_seconds: 10\n"
    )


@pytest.fixture
def smtp(tcp_port: int):
    with SmtpServer(tcp_port) as server:
        yield server


@pytest.fixture
async def api(tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[ApiServer]:
    """The service with mail on, reminders an hour before, sending to `smtp`."""
    async with serving(write_config(tmp_path, extra=mail_section(smtp.port, 60))) as server:
        yield server


class Therapist:
    """alice, signed in; state-changing requests carry the CSRF token."""

    def __init__(self, client: aiohttp.ClientSession, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def __call__(self, method: str, path: str, **kwargs: Any):
        headers = {"X-CSRF-Token": self.csrf}
        return await call(self.client, method, f"/api/therapist{path}", headers=headers, **kwargs)

    async def create(self, **fields: Any):
        status, body, headers = await self(
            "POST", "/appointments", json={"starts_at": in_days(1), **fields}
        )
        if isinstance(body, dict) and "invite_url" in body:
            remember(token_of(body["invite_url"]))
        return status, body, headers


@pytest.fixture
async def alice(api: ApiServer) -> AsyncIterator[Therapist]:
    await api.add_therapist("alice")
    client, csrf = await api.signed_in("alice")
    async with client:
        yield Therapist(client, csrf)


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """Every `sprechzimmer` record of the test, rendered by both formatters and raw."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.DEBUG)

    def text() -> str:
        return "\n".join(
            f"{KeyValueFormatter().format(r)}\n{JsonFormatter().format(r)}\n{r.__dict__}"
            for r in caplog.records
        )

    yield text
    logger.removeHandler(caplog.handler)


def token_of(url: str) -> str:
    return url.rsplit("/j/", 1)[1]


def text_of(received: Received) -> str:
    body = received.message.get_body(("plain",))
    assert body is not None
    return body.get_content()


def calendar_of(received: Received) -> icalendar.Calendar:
    (attachment,) = list(received.message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_filename() == "termin.ics"
    return icalendar.Calendar.from_ical(attachment.get_content())


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def at(moment: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: moment


# --- the invitation


async def test_the_invitation_arrives_with_neutral_headers_and_the_link(api, alice, smtp):
    status, body, _ = await alice.create(email=ADDRESS, duration_minutes=45)
    assert status == 201
    assert body["invitation_mail"]["sent"] is True
    (mail,) = await smtp.wait_for(1)
    assert (mail.sender, mail.recipients) == (SENDER, [ADDRESS])
    message = mail.message
    assert (message["From"], message["To"]) == (SENDER, ADDRESS)
    assert message["Subject"] == (
        "Einladung zur Videosprechstunde / Invitation to a video consultation"
    )
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.org>")
    text = text_of(mail)
    assert LINK.findall(text) == [body["invite_url"], body["invite_url"]]
    # German first, then English; the time in the practice's zone
    assert text.index("Guten Tag") < text.index("--- English ---") < text.index("Hello")
    local = utc(body["starts_at"]).astimezone(PRACTICE_ZONE)
    assert f"{local:%H:%M} Uhr (Berliner Zeit)" in text
    assert f"{local.day}. " in text and f"{local.year}" in text
    assert "45 Minuten" in text and "45 minutes" in text


async def test_the_mailed_link_works_exactly_once(api, alice, smtp):
    await alice.create(email=ADDRESS, starts_at=in_days(0.005))
    (mail,) = await smtp.wait_for(1)
    token = token_of(LINK.search(text_of(mail)).group())
    async with api.client() as browser, api.client() as another:
        assert (await consent(browser, token))[:2] == (200, {"bound": True})
        assert (await consent(another, token))[:2] == (404, INVALID_LINK)
        status, page, _ = await call(browser, "GET", f"/api/client/{token}")
    assert status == 200, page


async def test_the_calendar_entry_holds_only_time_summary_and_link(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS, note=NOTE, duration_minutes=50)
    (mail,) = await smtp.wait_for(1)
    calendar = calendar_of(mail)
    assert str(calendar["METHOD"]) == "PUBLISH"
    (event,) = calendar.walk("VEVENT")
    assert set(event) == {"UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "DESCRIPTION", "URL"}
    start = utc(body["starts_at"])
    assert event.decoded("DTSTART") == start
    assert event.decoded("DTEND") == start + dt.timedelta(minutes=50)
    assert str(event["SUMMARY"]) == SUMMARY
    assert str(event["URL"]) == body["invite_url"]
    assert body["invite_url"] in str(event["DESCRIPTION"])
    # random, not made of the appointment's id or time
    uid = str(event["UID"])
    assert re.fullmatch(r"[0-9a-f-]{36}@praxis\.example", uid), uid


async def test_two_invitations_have_different_calendar_uids(api, alice, smtp):
    await alice.create(email=ADDRESS)
    await alice.create(email=ADDRESS)
    first, second = await smtp.wait_for(2)
    assert (
        calendar_of(first).walk("VEVENT")[0]["UID"] != calendar_of(second).walk("VEVENT")[0]["UID"]
    )


async def test_neither_note_nor_names_reach_the_mail(api, alice, smtp):
    # alice is the therapist's username: no name of either side belongs in the mail
    await alice.create(email=ADDRESS, note=NOTE, crisis_card=True)
    (mail,) = await smtp.wait_for(1)
    everything = mail.raw.decode("ascii") + text_of(mail) + calendar_of(mail).to_ical().decode()
    for private in ("Geheimnotiz", "F32", "alice", "Krisenkarte"):
        assert private not in everything


async def test_nothing_personal_is_logged(api, alice, smtp, logged):
    _, body, _ = await alice.create(email=ADDRESS, note=NOTE)
    await smtp.wait_for(1)
    text = logged()
    assert f"invitation_mail_sent appointment_id={body['id']}" in text
    assert f"invitation_reminder_kept appointment_id={body['id']}" in text
    token = token_of(body["invite_url"])
    for private in (ADDRESS, "klientin", token, hash_token(token), NOTE):
        assert private not in text


async def test_the_address_is_kept_only_for_the_reminder_and_the_link_only_sealed(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    (pending,) = await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC))
    assert (pending.appointment_id, pending.email) == (body["id"], ADDRESS)
    assert pending.remind_at == utc(body["starts_at"]) - dt.timedelta(minutes=60)
    assert body["invitation_mail"]["reminder_at"] == pending.remind_at.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    token = token_of(body["invite_url"])
    assert pending.link_sealed is not None and token not in pending.link_sealed
    assert token.encode() not in api.database_bytes()


async def test_a_reminder_the_database_cannot_keep_still_leaves_the_invitation_sent(
    api, alice, smtp, logged
):
    # a real failure of the real database: the table is gone
    await api.storage._run(api.storage._db.execute, "DROP TABLE invitation_reminders")
    status, body, _ = await alice.create(email=ADDRESS)
    assert status == 201
    assert body["invitation_mail"] == {"sent": True, "reminder_at": None}
    await smtp.wait_for(1)
    assert f"invitation_reminder_not_kept appointment_id={body['id']}" in logged()


async def test_without_an_address_no_mail_is_sent(api, alice, smtp):
    for fields in ({}, {"email": None}):
        status, body, _ = await alice.create(**fields)
        assert status == 201 and "invitation_mail" not in body
    # the mail would have gone out within the request
    assert smtp.received == []


@pytest.mark.parametrize(
    "value",
    [
        "kein-at-zeichen",
        "a@b.de\r\nBcc: mitleser@example.com",
        "a@b.de, c@d.de",
        "Anna <a@b.de>",
        "a@localhost",
        "a..b@example.org",
        42,
        ["a@b.de"],
    ],
)
async def test_a_bad_address_is_refused_before_anything_is_made(api, alice, smtp, value):
    status, body, _ = await alice.create(email=value)
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["message"].startswith("email")
    assert (await alice("GET", "/appointments"))[1]["appointments"] == []
    assert smtp.received == []


async def test_an_address_is_refused_where_mail_is_off(tmp_path):
    async with serving(write_config(tmp_path)) as api:
        await api.add_therapist("alice")
        client, csrf = await api.signed_in("alice")
        async with client:
            alice = Therapist(client, csrf)
            status, body, _ = await alice.create(email=ADDRESS)
            assert (status, body["error"]["code"]) == (400, "invalid_request")
            assert "not switched on" in body["error"]["message"]
            _, me, _ = await alice("GET", "/me")
            assert me["invitation_mail"] is None
            assert (await alice("GET", "/appointments"))[1]["appointments"] == []


async def test_me_tells_the_dashboard_that_mail_and_reminders_are_on(api, alice):
    _, me, _ = await alice("GET", "/me")
    assert me["invitation_mail"] == {"reminder_minutes_before": 60}


async def test_the_integration_api_takes_an_address_too(api, smtp):
    await api.add_therapist("mueller")
    key = "test-api-key-" + "x" * 30
    remember(key)
    await api.storage.add_api_key("praxis", hash_token(key))
    async with api.client(Authorization=f"Bearer {key}") as portal:
        status, body, _ = await call(
            portal,
            "POST",
            "/api/v1/appointments",
            json={"therapist": "mueller", "starts_at": in_days(2), "email": ADDRESS},
        )
    assert status == 201, body
    remember(token_of(body["invite_url"]))
    assert body["invitation_mail"]["sent"] is True
    (mail,) = await smtp.wait_for(1)
    assert LINK.search(text_of(mail)).group() == body["invite_url"]
    assert "mueller" not in mail.raw.decode("ascii")


# --- when the SMTP server fails


async def test_smtp_down_keeps_the_appointment_and_says_why(tmp_path, tcp_port, logged):
    # tcp_port is reserved for this test and nothing listens on it
    async with serving(write_config(tmp_path, extra=mail_section(tcp_port, 60))) as api:
        await api.add_therapist("alice")
        client, csrf = await api.signed_in("alice")
        async with client:
            alice = Therapist(client, csrf)
            status, body, _ = await alice.create(email=ADDRESS)
            assert status == 201
            assert body["invitation_mail"] == {"sent": False, "reason": "unreachable"}
            assert body["invite_url"].startswith(api.config.server.public_url)
            _, listed, _ = await alice("GET", "/appointments")
        assert [a["id"] for a in listed["appointments"]] == [body["id"]]
        # no reminder for an invitation that never arrived: the address is not kept
        assert (
            await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []
        )
    text = logged()
    assert f"invitation_mail_failed appointment_id={body['id']} reason=unreachable" in text
    assert "Traceback" not in text and ADDRESS not in text


async def test_a_refused_recipient_is_named_as_such(tmp_path, tcp_port):
    with SmtpServer(tcp_port, refuse=(ADDRESS,)) as smtp:
        async with serving(write_config(tmp_path, extra=mail_section(smtp.port))) as api:
            await api.add_therapist("alice")
            client, csrf = await api.signed_in("alice")
            async with client:
                status, body, _ = await Therapist(client, csrf).create(email=ADDRESS)
    assert status == 201
    assert body["invitation_mail"] == {"sent": False, "reason": "recipient_refused"}
    assert smtp.received == []


# --- STARTTLS (MailSender with the configured security; a private CA stands in for the system's)


def mail_config(port: int, **changes: Any) -> MailConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls",
        "sender": SENDER,
        "timeout_seconds": 10,
    }
    values.update(changes)
    return MailConfig(**values)


def a_message() -> Any:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = SENDER, ADDRESS, "Test"
    message.set_content("Hallo")
    return message


async def test_starttls_with_login_sends_over_tls(tmp_path, tcp_port):
    cert, key = write_self_signed_cert(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    with SmtpServer(tcp_port, tls=(cert, key), credentials=("praxis", "smtp-geheim")) as smtp:
        config = mail_config(tcp_port, username="praxis", password="smtp-geheim")
        await MailSender(config, tls_context=trusted).send(a_message())
        (mail,) = smtp.received
    assert mail.over_tls and mail.authenticated
    assert mail.recipients == [ADDRESS]


async def test_implicit_tls_sends_over_tls_from_the_first_byte(tmp_path, tcp_port):
    cert, key = write_self_signed_cert(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    with SmtpServer(tcp_port, tls=(cert, key), implicit_tls=True) as smtp:
        await MailSender(mail_config(tcp_port, security="tls"), tls_context=trusted).send(
            a_message()
        )
        (mail,) = smtp.received
    assert mail.over_tls


async def test_starttls_checks_the_certificate_against_the_system_cas(tmp_path, tcp_port):
    with SmtpServer(tcp_port, tls=write_self_signed_cert(tmp_path)) as smtp:
        with pytest.raises(MailNotSent) as failure:
            await MailSender(mail_config(tcp_port)).send(a_message())
        assert (failure.value.reason, failure.value.error) == ("tls", "SSLCertVerificationError")
        assert smtp.received == []


async def test_a_server_without_starttls_is_refused_rather_than_used_in_the_clear(tcp_port):
    with SmtpServer(tcp_port) as smtp:
        with pytest.raises(MailNotSent) as failure:
            await MailSender(mail_config(tcp_port)).send(a_message())
        assert failure.value.reason == "tls"
        assert smtp.received == []


async def test_a_wrong_smtp_password_is_an_authentication_failure(tmp_path, tcp_port):
    cert, key = write_self_signed_cert(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    with SmtpServer(tcp_port, tls=(cert, key), credentials=("praxis", "richtig")) as smtp:
        config = mail_config(tcp_port, username="praxis", password="falsch")
        with pytest.raises(MailNotSent) as failure:
            await MailSender(config, tls_context=trusted).send(a_message())
        assert failure.value.reason == "authentication"
        assert smtp.received == []


# --- the reminder


async def test_the_reminder_goes_out_once_at_its_time_and_the_address_is_gone(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    await smtp.wait_for(1)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)

    early = InvitationsByMail(
        api.config, api.storage, "", clock=at(remind_at - dt.timedelta(seconds=1))
    )
    assert await early.send_due_reminders() == 0
    on_time = InvitationsByMail(api.config, api.storage, "", clock=at(remind_at))
    assert await on_time.send_due_reminders() == 1
    assert await on_time.send_due_reminders() == 0
    # send_due_reminders returns once the server has taken the mail: no second one came
    assert len(smtp.received) == 2
    reminder = smtp.received[1]
    assert reminder.recipients == [ADDRESS]
    assert (
        reminder.message["Subject"]
        == "Erinnerung: Videosprechstunde / Reminder: video consultation"
    )
    assert list(reminder.message.iter_attachments()) == []
    assert LINK.findall(text_of(reminder)) == [body["invite_url"], body["invite_url"]]
    assert await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []


async def test_the_reminders_link_works(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS, starts_at=in_days(0.1))
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    await InvitationsByMail(api.config, api.storage, "", clock=at(remind_at)).send_due_reminders()
    _, reminder = await smtp.wait_for(2)
    token = token_of(LINK.search(text_of(reminder)).group())
    async with api.client() as browser:
        assert (await consent(browser, token))[:2] == (200, {"bound": True})


async def test_of_two_nodes_only_one_sends_a_due_reminder(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    await smtp.wait_for(1)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    # a second node: its own storage on the same database
    other = await SqliteStorage.open(api.config.storage.sqlite_path)
    try:
        nodes = [
            InvitationsByMail(api.config, storage, "", clock=at(remind_at))
            for storage in (api.storage, other, api.storage, other)
        ]
        sent = await asyncio.gather(*(node.send_due_reminders() for node in nodes))
    finally:
        await other.close()
    assert sorted(sent) == [0, 0, 0, 1]
    assert len(smtp.received) == 2


async def test_cancelling_deletes_the_pending_reminder(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    assert (await alice("DELETE", f"/appointments/{body['id']}"))[0] == 200
    assert await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []
    later = utc(body["starts_at"]) - dt.timedelta(minutes=1)
    assert (
        await InvitationsByMail(api.config, api.storage, "", clock=at(later)).send_due_reminders()
        == 0
    )
    assert len(smtp.received) == 1


async def test_a_new_link_drops_the_reminder_that_would_carry_the_old_one(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    status, reissued, _ = await alice("POST", f"/appointments/{body['id']}/invite")
    assert status == 200
    remember(token_of(reissued["invite_url"]))
    assert await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []


async def test_a_moved_appointment_moves_its_reminder_which_names_the_new_time(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    moved = in_days(3)
    status, changed, _ = await alice(
        "PATCH", f"/appointments/{body['id']}", json={"starts_at": moved}
    )
    assert status == 200
    (pending,) = await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC))
    assert pending.remind_at == utc(changed["starts_at"]) - dt.timedelta(minutes=60)
    await InvitationsByMail(
        api.config, api.storage, "", clock=at(pending.remind_at)
    ).send_due_reminders()
    _, reminder = await smtp.wait_for(2)
    local = utc(changed["starts_at"]).astimezone(PRACTICE_ZONE)
    assert f"{local.day}. " in text_of(reminder) and f"{local:%H:%M} Uhr" in text_of(reminder)


async def test_a_reminder_the_server_could_not_take_is_tried_again_later(api, alice, smtp, logged):
    _, body, _ = await alice.create(email=ADDRESS)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    with reserve_ports(1, tcp=True) as nobody_listens:
        down = MailSender(mail_config(nobody_listens.low, security="none"))
        failing = InvitationsByMail(api.config, api.storage, "", sender=down, clock=at(remind_at))
        assert await failing.send_due_reminders() == 0
    (pending,) = await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC))
    assert pending.remind_at == remind_at + RETRY_AFTER
    assert "invitation_reminder_failed" in logged() and ADDRESS not in logged()
    again = InvitationsByMail(api.config, api.storage, "", clock=at(remind_at + RETRY_AFTER))
    assert await again.send_due_reminders() == 1
    assert len(smtp.received) == 2


async def test_a_reminder_whose_node_died_before_sending_goes_out_when_its_hold_ends(
    api, alice, smtp
):
    _, body, _ = await alice.create(email=ADDRESS)
    await smtp.wait_for(1)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    hold = dt.timedelta(seconds=api.config.mail.timeout_seconds) + HOLD_MARGIN
    # a node claimed it and died (kill -9) before the mail went out
    assert await api.storage.claim_due_invitation_reminder(remind_at, remind_at + hold)
    alive = InvitationsByMail(api.config, api.storage, "", clock=at(remind_at + hold / 2))
    assert await alive.send_due_reminders() == 0
    later = InvitationsByMail(api.config, api.storage, "", clock=at(remind_at + hold))
    assert await later.send_due_reminders() == 1
    _, reminder = await smtp.wait_for(2)
    assert LINK.findall(text_of(reminder)) == [body["invite_url"], body["invite_url"]]
    assert await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []


def mails_counted(metrics: Metrics) -> dict[tuple[str, str], float]:
    """sprechzimmer_mails_total by (kind, outcome), as Prometheus reads the exposition."""
    return {
        (dict(labels)["kind"], dict(labels)["outcome"]): count
        for (name, labels), count in samples(metrics.exposition().decode()).items()
        if name == "sprechzimmer_mails_total"
    }


async def test_each_mail_is_counted_by_kind_and_outcome_and_nothing_else(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    await smtp.wait_for(1)
    counted = mails_counted(api.app[METRICS])
    assert counted[("invitation", "sent")] == 1
    assert sum(counted.values()) == 1
    # every outcome is there from the start, so an alert on a failure rate has a series
    assert {outcome for kind, outcome in counted if kind == "reminder"} >= {
        "sent",
        "unreachable",
        "timeout",
        "recipient_refused",
    }
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    metrics = Metrics()
    with reserve_ports(1, tcp=True) as nobody_listens:
        down = MailSender(mail_config(nobody_listens.low, security="none"))
        await InvitationsByMail(
            api.config, api.storage, "", sender=down, clock=at(remind_at), metrics=metrics
        ).send_due_reminders()
    await InvitationsByMail(
        api.config, api.storage, "", clock=at(remind_at + RETRY_AFTER), metrics=metrics
    ).send_due_reminders()
    counted = mails_counted(metrics)
    assert (counted[("reminder", "unreachable")], counted[("reminder", "sent")]) == (1, 1)
    assert sum(counted.values()) == 2
    # no address, no id in any label
    exposition = api.app[METRICS].exposition().decode() + metrics.exposition().decode()
    assert ADDRESS not in exposition and f'"{body["id"]}"' not in exposition


async def test_a_reminder_for_a_client_already_waiting_is_dropped(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    from signaling.storage import AppointmentState

    await api.storage.update_appointment(body["id"], state=AppointmentState.WAITING)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    assert (
        await InvitationsByMail(
            api.config, api.storage, "", clock=at(remind_at)
        ).send_due_reminders()
        == 0
    )
    assert len(smtp.received) == 1
    assert await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []


async def test_a_link_sealed_under_another_secret_is_left_out_of_the_reminder(api, alice, smtp):
    _, body, _ = await alice.create(email=ADDRESS)
    remind_at = utc(body["starts_at"]) - dt.timedelta(minutes=60)
    # the operator changed the session secret meanwhile
    changed = InvitationsByMail(
        api.config, api.storage, "ein-anderes-geheimnis", clock=at(remind_at)
    )
    assert await changed.send_due_reminders() == 1
    _, reminder = await smtp.wait_for(2)
    assert LINK.search(text_of(reminder)) is None
    assert "Bitte nutzen Sie den Link aus Ihrer Einladung." in text_of(reminder)


async def test_without_a_reminder_time_the_address_is_not_kept(tmp_path, smtp):
    async with serving(write_config(tmp_path, extra=mail_section(smtp.port, 0))) as api:
        await api.add_therapist("alice")
        client, csrf = await api.signed_in("alice")
        async with client:
            _, body, _ = await Therapist(client, csrf).create(email=ADDRESS)
        assert body["invitation_mail"] == {"sent": True, "reminder_at": None}
        assert (
            await api.storage.due_invitation_reminders(dt.datetime.max.replace(tzinfo=dt.UTC)) == []
        )


async def test_the_running_service_sends_due_reminders_by_itself(tmp_path, smtp):
    config: Config = write_config(tmp_path, extra=mail_section(smtp.port, 60))
    # a reminder already due when the service starts (it was down at its time)
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    try:
        therapist = await storage.add_therapist("alice", "unused")
        starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(minutes=30)
        appointment = await storage.create_appointment(
            therapist.id,
            starts,
            50,
            starts - dt.timedelta(minutes=15),
            starts + dt.timedelta(hours=2),
            invite_token_hash=hash_token("not-a-real-token"),
        )
        await storage.add_invitation_reminder(
            appointment.id, ADDRESS, starts - dt.timedelta(minutes=60)
        )
    finally:
        await storage.close()
    async with serving(config) as api:
        (reminder,) = await smtp.wait_for(1)
        assert reminder.recipients == [ADDRESS]
        assert await api.storage.due_invitation_reminders(starts) == []
