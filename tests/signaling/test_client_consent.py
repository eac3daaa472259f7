"""POST /api/client/{token}/consent: consent binds the link to one browser with a cookie."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from signaling.credentials import hash_token
from signaling.logs import LOGGER_NAME, JsonFormatter, KeyValueFormatter
from signaling.terms import TERMS_VERSION
from tests.signaling.api_server import ApiServer, call, serving, write_config
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest
from tests.signaling.client_links import (
    INVALID_LINK,
    OMIT,
    client_cookie,
    consent,
    create_via_therapist_api,
    link_at,
)


async def stored(api: ApiServer, token: str):
    return await api.storage.get_appointment_by_token_hash(hash_token(token))


# --- binding


async def test_consent_answers_bound_and_records_terms_time_and_name(api: ApiServer):
    token = await link_at(api)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    async with api.client() as browser:
        status, body, headers = await consent(browser, token, display_name="Anna")
    assert (status, body) == (200, {"bound": True})
    assert headers["Cache-Control"] == "no-store"
    appointment = await stored(api, token)
    assert appointment.terms_version == TERMS_VERSION
    assert appointment.client_display_name == "Anna"
    assert before <= appointment.consent_at <= dt.datetime.now(dt.UTC)


async def test_consent_sets_an_httponly_strict_cookie_until_the_link_expires(api: ApiServer):
    token = await link_at(api, valid_for=dt.timedelta(hours=2))
    async with api.client() as browser:
        _, _, headers = await consent(browser, token)
    cookie = client_cookie(headers)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["secure"]  # the test server's public URL is http
    assert 2 * 3600 - 5 <= int(cookie["max-age"]) <= 2 * 3600


async def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path: Path):
    async with serving(write_config(tmp_path, public_url="https://praxis.example")) as api:
        token = await link_at(api)
        async with api.client() as browser:
            _, _, headers = await consent(browser, token)
    assert client_cookie(headers)["secure"] is True


async def test_the_cookie_is_secure_when_the_server_runs_tls(tmp_path: Path):
    # Only the config's tls flag matters here; the test server itself speaks plain HTTP.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("unused")
    key.write_text("unused")
    # write_config ends inside the `server:` mapping, so these keys continue it.
    config = write_config(tmp_path, extra=f"  tls_cert: {cert}\n  tls_key: {key}\n")
    assert config.server.tls and config.server.public_url.startswith("http://")
    async with serving(config) as api:
        token = await link_at(api)
        async with api.client() as browser:
            _, _, headers = await consent(browser, token)
    assert client_cookie(headers)["secure"] is True


async def test_only_the_hash_of_the_cookie_is_stored(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        _, _, headers = await consent(browser, token)
    secret = client_cookie(headers).value
    assert (await stored(api, token)).client_binding_hash == hash_token(secret)
    database = api.database_bytes()
    assert secret.encode() not in database
    assert token.encode() not in database


async def test_a_second_browser_gets_the_invalid_link_answer(api: ApiServer):
    token = await link_at(api)
    async with api.client() as first:
        await consent(first, token, display_name="Anna")
    binding = (await stored(api, token)).client_binding_hash
    async with api.client() as second:
        status, body, headers = await consent(second, token, display_name="Eve")
    assert (status, body) == (404, INVALID_LINK)
    assert client_cookie(headers) is None
    appointment = await stored(api, token)
    assert (appointment.client_binding_hash, appointment.client_display_name) == (binding, "Anna")


async def test_the_same_browser_may_consent_again_to_change_its_name(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        _, _, first = await consent(browser, token, display_name="Anna")
        binding = (await stored(api, token)).client_binding_hash
        status, body, again = await consent(browser, token, display_name="Anna M.")
    assert (status, body) == (200, {"bound": True})
    assert client_cookie(again).value == client_cookie(first).value
    appointment = await stored(api, token)
    assert (appointment.client_binding_hash, appointment.client_display_name) == (
        binding,
        "Anna M.",
    )


async def test_a_client_may_consent_before_the_link_opens(api: ApiServer):
    token, _ = await create_via_therapist_api(api, starts_in=dt.timedelta(days=1))
    async with api.client() as browser:
        status, _, _ = await consent(browser, token)
        _, link, _ = await call(browser, "GET", f"/api/client/{token}")
    assert status == 200
    assert (link["state"], link["bound"]) == ("not_yet_open", True)


async def test_consent_to_an_expired_link_is_an_invalid_link(api: ApiServer):
    token = await link_at(api, opened=dt.timedelta(hours=3), valid_for=dt.timedelta(seconds=-1))
    async with api.client() as browser:
        assert (await consent(browser, token))[:2] == (404, INVALID_LINK)


async def test_consent_to_a_cancelled_link_is_an_invalid_link(api: ApiServer):
    token = await link_at(api)
    await api.storage.cancel_appointment((await stored(api, token)).id)
    async with api.client() as browser:
        assert (await consent(browser, token))[:2] == (404, INVALID_LINK)


# --- the body


@pytest.mark.parametrize("flag", ["accept_terms", "consent_processing"])
@pytest.mark.parametrize("value", [OMIT, False, "true", 1, None])
async def test_consent_needs_both_flags_literally_true(api: ApiServer, flag, value):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, headers = await consent(browser, token, **{flag: value})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert flag in body["error"]["message"]
    assert headers["Cache-Control"] == "no-store"
    assert client_cookie(headers) is None
    assert (await stored(api, token)).client_binding_hash is None


@pytest.mark.parametrize("version", ["2025-01", "", TERMS_VERSION + " "])
async def test_an_old_terms_version_is_refused_as_terms_changed(api: ApiServer, version):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, _ = await consent(browser, token, terms_version=version)
    assert (status, body["error"]["code"]) == (400, "terms_changed")
    assert (await stored(api, token)).client_binding_hash is None


@pytest.mark.parametrize("version", [OMIT, None, 202611])
async def test_a_missing_terms_version_is_an_invalid_request(api: ApiServer, version):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, _ = await consent(browser, token, terms_version=version)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_unknown_fields_are_refused(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, _ = await consent(browser, token, email="a@example.org")
    assert (status, body["error"]["code"]) == (400, "invalid_request")


async def test_consent_must_be_json(api: ApiServer):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, _ = await call(
            browser, "POST", f"/api/client/{token}/consent", data="accept_terms=true"
        )
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")


async def test_consent_from_another_origin_is_refused(api: ApiServer):
    token = await link_at(api)
    async with api.client(Origin="https://evil.example") as browser:
        status, body, headers = await consent(browser, token)
    assert (status, body["error"]["code"]) == (403, "forbidden")
    assert headers["Cache-Control"] == "no-store"
    assert (await stored(api, token)).client_binding_hash is None


async def test_consent_from_the_services_own_origin_is_accepted(api: ApiServer):
    token = await link_at(api)
    async with api.client(Origin=api.config.server.public_url) as browser:
        assert (await consent(browser, token))[0] == 200


# --- the display name


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("  Anna \t Müller\n", "Anna Müller"),
        ("An\x00na\x07", "Anna"),
        ("\u202eannA\u202c \u2066M\u2069", "annA M"),
        ("x" * 61, "x" * 60),
        ("   ", None),
        (None, None),
        (OMIT, None),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ],
)
async def test_the_display_name_is_cleaned_before_it_is_stored(api: ApiServer, sent, kept):
    token = await link_at(api)
    async with api.client() as browser:
        status, _, _ = await consent(browser, token, display_name=sent)
    assert status == 200
    assert (await stored(api, token)).client_display_name == kept


@pytest.mark.parametrize("sent", [42, ["Anna"], {"first": "Anna"}, True])
async def test_a_display_name_that_is_not_a_string_is_refused(api: ApiServer, sent):
    token = await link_at(api)
    async with api.client() as browser:
        status, body, _ = await consent(browser, token, display_name=sent)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


# --- logs


@pytest.fixture
def logged(caplog):
    """Every `sprechzimmer` log record, rendered by both formatters (configure_logging turns
    propagation off, so caplog's handler is attached to the logger itself)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)

    def text() -> str:
        records = caplog.records
        assert records, "nothing was logged"
        return "\n".join(
            f"{KeyValueFormatter().format(r)}\n{JsonFormatter().format(r)}\n{r.__dict__}"
            for r in records
        )

    yield text
    logger.removeHandler(caplog.handler)
    logger.setLevel(old_level)


async def test_token_secret_and_name_are_never_logged(api: ApiServer, logged):
    token = await link_at(api)
    async with api.client() as browser, api.client() as other:
        await consent(browser, token, display_name="Annabella Geheimname")
        _, _, headers = await consent(browser, token, display_name="Annabella Geheimname")
        await call(browser, "GET", f"/api/client/{token}")
        await consent(other, token, display_name="Eve Eindringling")
        await call(other, "GET", f"/api/client/{token}")
    text = logged()
    assert "client_consented" in text and "client_link_refused" in text
    for secret in (token, client_cookie(headers).value, "Annabella", "Eindringling"):
        assert secret not in text


async def test_refusals_are_logged_with_their_reason(api: ApiServer, logged):
    token = await link_at(api)
    async with api.client() as browser, api.client() as other:
        await consent(browser, token)
        await call(other, "GET", f"/api/client/{token}")
    assert "reason=used" in logged()


async def test_a_crash_answers_500_without_logging_the_token(api: ApiServer, logged, monkeypatch):
    token = await link_at(api)

    async def broken(token_hash: str):
        raise RuntimeError(token_hash)

    monkeypatch.setattr(api.storage, "get_appointment_by_token_hash", broken)
    async with api.client() as browser:
        status, body, headers = await call(browser, "GET", f"/api/client/{token}")
    assert (status, body["error"]["code"]) == (500, "internal_error")
    assert headers["Cache-Control"] == "no-store"
    text = logged()
    assert "unhandled_error" in text
    assert token not in text and hash_token(token) not in text
