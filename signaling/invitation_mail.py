"""The invitation and reminder e-mails: plain text, German first and English second, and the
calendar entry (.ics, RFC 5545) attached to the invitation.

Minimal content on purpose. A mail passes through servers neither the practice nor the client
control, and shows on lock screens: it names the time, the length and the link, and nothing
else -- no therapist's note, no name of the client or the therapist, no diagnosis. The subject
says "Videosprechstunde" without a date. Plain text only: no HTML part that could load remote
content, and every mail program turns the link into a link by itself.

The link is the invite link as the server minted it, without the `#k=` end-to-end secret that
the therapist's browser adds to the link it shows: that secret must never reach the server
(docs/threat-model.md), so a mailed link starts the call "verschlüsselt, nicht bestätigt" until
the two compare the safety code.

Times are the practice's: Europe/Berlin, written out in both languages, so they need no locale
installed on the server.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar

from signaling.config import Config
from signaling.storage import Appointment

__all__ = [
    "CALENDAR_FILE_NAME",
    "PRACTICE_ZONE",
    "SUMMARY",
    "calendar_entry",
    "client_address",
    "invitation_message",
    "reminder_message",
]

PRACTICE_ZONE = ZoneInfo("Europe/Berlin")
SUMMARY = "Videosprechstunde / Video consultation"
CALENDAR_FILE_NAME = "termin.ics"

INVITATION_SUBJECT = "Einladung zur Videosprechstunde / Invitation to a video consultation"
REMINDER_SUBJECT = "Erinnerung: Videosprechstunde / Reminder: video consultation"

# RFC 5321's limits: 64 characters before the @, 254 in all (a path of 256 with its brackets).
_MAX_LOCAL = 64
_MAX_ADDRESS = 254
# RFC 5322's dot-atom characters; nothing that could end a header or start a second address.
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

_WEEKDAYS_DE = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
_WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS_DE = (
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
)
_MONTHS_EN = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def client_address(value: object) -> str:
    """The address to send to, checked: one plain `local@domain` (an internationalised domain
    in its ASCII form), nothing a header could be bent with. Raise `ValueError` with a message
    that never repeats the value."""
    if not isinstance(value, str):
        raise ValueError("email must be a string or null")
    local, at, domain = value.strip().rpartition("@")
    problem = ValueError("email must be one e-mail address, like name@example.org")
    if not at or not _LOCAL.fullmatch(local) or len(local) > _MAX_LOCAL:
        raise problem
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise problem from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise problem
    address = f"{local}@{ascii_domain}"
    if len(address) > _MAX_ADDRESS:
        raise problem
    return address


def invitation_message(
    config: Config, to: str, link: str, appointment: Appointment, now: dt.datetime
) -> EmailMessage:
    """The invitation: when, how long, the link, and the calendar entry attached."""
    when = appointment.starts_at.astimezone(PRACTICE_ZONE)
    opens = config.appointments.open_before_minutes
    minutes = appointment.duration_minutes
    body = f"""Guten Tag,

Sie sind zu einer Videosprechstunde eingeladen.

Termin: {_when_de(when)}
Dauer: {minutes} Minuten

Ihr persönlicher Zugangslink:
{link}

{_opens_de(opens)}
Sie brauchen nur einen aktuellen Browser mit Kamera und Mikrofon,
keine App und kein Konto.
Der Link gilt nur für Sie und nur in einem Browser:
Bitte leiten Sie ihn nicht weiter.

Den Termin für Ihren Kalender finden Sie im Anhang ({CALENDAR_FILE_NAME}).

--- English ---

Hello,

You are invited to a video consultation.

Date: {_when_en(when)}
Length: {minutes} minutes

Your personal link:
{link}

{_opens_en(opens)}
All you need is a current browser with camera and microphone;
no app, no account.
The link is for you and one browser only:
please do not forward it.

The appointment for your calendar is attached ({CALENDAR_FILE_NAME}).
"""
    message = _message(config, to, INVITATION_SUBJECT, body, now)
    message.add_attachment(
        calendar_entry(config, link, appointment, now),
        maintype="text",
        subtype="calendar",
        filename=CALENDAR_FILE_NAME,
        params={"method": "PUBLISH", "charset": "utf-8"},
    )
    return message


def reminder_message(
    config: Config, to: str, link: str | None, appointment: Appointment, now: dt.datetime
) -> EmailMessage:
    """The reminder: when, and the link (None: the link could not be kept; the invitation's)."""
    when = appointment.starts_at.astimezone(PRACTICE_ZONE)
    opens = config.appointments.open_before_minutes
    link_de = (
        f"Ihr Zugangslink:\n{link}" if link else "Bitte nutzen Sie den Link aus Ihrer Einladung."
    )
    link_en = f"Your link:\n{link}" if link else "Please use the link from your invitation."
    body = f"""Guten Tag,

zur Erinnerung: Ihre Videosprechstunde beginnt am
{_when_de(when)}.

{link_de}

{_opens_de(opens)}

--- English ---

Hello,

a reminder: your video consultation begins on
{_when_en(when)}.

{link_en}

{_opens_en(opens)}
"""
    return _message(config, to, REMINDER_SUBJECT, body, now)


def calendar_entry(config: Config, link: str, appointment: Appointment, now: dt.datetime) -> bytes:
    """One event to publish (not a meeting request, which would need the client's address as
    an attendee): a random UID that says nothing about the appointment, start and end in UTC,
    the neutral summary, the link."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//Sprechzimmer//Videosprechstunde//DE")
    calendar.add("version", "2.0")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    host = urlsplit(config.server.public_url).hostname or "sprechzimmer"
    event.add("uid", f"{uuid.uuid4()}@{host}")
    event.add("dtstamp", now.astimezone(dt.UTC))
    event.add("dtstart", appointment.starts_at.astimezone(dt.UTC))
    event.add(
        "dtend",
        appointment.starts_at.astimezone(dt.UTC)
        + dt.timedelta(minutes=appointment.duration_minutes),
    )
    event.add("summary", SUMMARY)
    event.add("description", f"Zugangslink / Link: {link}")
    event.add("url", link)
    calendar.add_component(event)
    ical: bytes = calendar.to_ical()
    return ical


def _message(config: Config, to: str, subject: str, body: str, now: dt.datetime) -> EmailMessage:
    sender = config.mail.sender
    assert sender is not None  # load_config requires it when mail is enabled
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now.astimezone(dt.UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    # RFC 3834: sent by a program, so auto-responders ("out of office") do not answer it
    message["Auto-Submitted"] = "auto-generated"
    # quoted-printable: 7-bit safe for any server (8BITMIME or not), umlauts readable
    message.set_content(body, charset="utf-8", cte="quoted-printable")
    # after set_content, which clears every Content-* header (an attachment then moves it
    # into the text's own part, which is what it describes)
    message["Content-Language"] = "de, en"
    return message


def _when_de(when: dt.datetime) -> str:
    return (
        f"{_WEEKDAYS_DE[when.weekday()]}, {when.day}. {_MONTHS_DE[when.month - 1]} {when.year},"
        f" {when:%H:%M} Uhr (Berliner Zeit)"
    )


def _when_en(when: dt.datetime) -> str:
    return (
        f"{_WEEKDAYS_EN[when.weekday()]}, {when.day} {_MONTHS_EN[when.month - 1]} {when.year},"
        f" {when:%H:%M} (Berlin time)"
    )


def _opens_de(minutes: int) -> str:
    if minutes == 0:
        return "Der Warteraum öffnet zu Beginn des Termins."
    return f"Der Warteraum öffnet {minutes} Minuten vor Beginn."


def _opens_en(minutes: int) -> str:
    if minutes == 0:
        return "The waiting room opens at the start."
    return f"The waiting room opens {minutes} minutes before the start."
