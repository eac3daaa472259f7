"""signaling/invitation_mail.py without a server: the address check and the practice's time in
both languages, summer and winter."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from signaling.config import Config, load_config
from signaling.invitation_mail import client_address, invitation_message, reminder_message
from signaling.storage import Appointment, AppointmentState

NOW = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
LINK = "https://praxis.example/j/" + "L" * 43


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'db.sqlite3'}\n"
        "server:\n  public_url: https://praxis.example\n"
        "mail:\n  enabled: true\n  sender: praxis@example.org\n",
        encoding="utf-8",
    )
    return load_config(path)


def appointment(starts_at: dt.datetime, minutes: int = 50) -> Appointment:
    return Appointment(
        id=7,
        therapist_id=1,
        starts_at=starts_at,
        duration_minutes=minutes,
        opens_at=starts_at,
        valid_until=starts_at,
        note="never in a mail",
        invite_token_hash=None,
        client_display_name="Anna Geheim",
        client_binding_hash=None,
        terms_version=None,
        consent_at=None,
        state=AppointmentState.SCHEDULED,
        both_present_at=None,
        ended_at=None,
        purged_at=None,
        created_at=NOW,
    )


def text(message) -> str:
    return message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("starts_at", "german", "english"),
    [
        # winter: UTC+1
        (
            dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC),
            "Montag, 2. März 2026, 09:00 Uhr (Berliner Zeit)",
            "Monday, 2 March 2026, 09:00 (Berlin time)",
        ),
        # summer: UTC+2
        (
            dt.datetime(2026, 7, 16, 13, 30, tzinfo=dt.UTC),
            "Donnerstag, 16. Juli 2026, 15:30 Uhr (Berliner Zeit)",
            "Thursday, 16 July 2026, 15:30 (Berlin time)",
        ),
    ],
)
def test_the_time_is_the_practices_in_both_languages(config, starts_at, german, english):
    for message in (
        invitation_message(config, "a@example.org", LINK, appointment(starts_at), NOW),
        reminder_message(config, "a@example.org", LINK, appointment(starts_at), NOW),
    ):
        body = text(message)
        assert german in body and english in body
        assert body.index(german) < body.index(english)


def test_the_client_name_and_note_stay_out_even_when_the_appointment_has_them(config):
    message = invitation_message(
        config,
        "a@example.org",
        LINK,
        appointment(dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)),
        NOW,
    )
    raw = message.as_string()
    assert "Geheim" not in raw and "never in a mail" not in raw


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("anna@example.org", "anna@example.org"),
        ("  Anna.B+praxis@Example.ORG ", "Anna.B+praxis@example.org"),
        ("anna@müller.de", "anna@xn--mller-kva.de"),
    ],
)
def test_an_address_is_kept_plain_with_an_ascii_domain(given, kept):
    assert client_address(given) == kept


@pytest.mark.parametrize(
    "given",
    [
        "",
        "anna",
        "anna@",
        "@example.org",
        "anna@example",
        "anna@-example.org",
        "an na@example.org",
        "anna@example.org\nBcc: x@example.org",
        "anna@example.org;x@example.org",
        '"anna"@example.org',
        ".anna@example.org",
        "ännä@example.org",
        "a" * 65 + "@example.org",
        "anna@" + "a" * 250 + ".org",
        None,
    ],
)
def test_anything_else_is_refused_without_repeating_it(given):
    with pytest.raises(ValueError) as refused:
        client_address(given)
    assert str(refused.value) in (
        "email must be one e-mail address, like name@example.org",
        "email must be a string or null",
    )
