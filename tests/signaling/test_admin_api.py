"""The admin API (/api/admin), the set-password link and the admin page, over real HTTP on a real
SQLite file: the role checked on every route, accounts, keys, the audit log, and the reports."""

from __future__ import annotations

import datetime as dt

import pytest

from signaling.credentials import hash_token
from signaling.health_recorder import HealthRecorder
from signaling.metrics import Metrics
from tests.privacy_canaries import remember
from tests.signaling.api_server import PASSWORD, ApiServer, call, login
from tests.signaling.api_server import api as api  # the fixture, re-exported for pytest

NEW_PASSWORD = "a new and long password"
remember(NEW_PASSWORD)

ADMIN_GETS = [
    "/api/admin/therapists",
    "/api/admin/api-keys",
    "/api/admin/audit",
    "/api/admin/usage",
    "/api/admin/usage.csv",
    "/api/admin/usage-sessions.svg",
    "/api/admin/health",
    "/api/admin/health.csv",
    "/api/admin/health-media.svg",
]


@pytest.fixture
async def admin(api: ApiServer):
    """A client signed in as `root`, an admin, with its CSRF token; alice is a therapist."""
    await api.add_therapist("root")
    await api.storage.set_therapist_admin("root", True)
    await api.add_therapist("alice")
    session, csrf = await api.signed_in("root")
    async with session:
        yield session, csrf


def token_of(url: str) -> str:
    token = url.split("#", 1)[1]
    remember(token)
    return token


async def new_account_link(admin, username="bob") -> str:
    """The admin adds an account; its set-password link."""
    session, csrf = admin
    status, body, _ = await call(
        session, "POST", "/api/admin/therapists", json={"username": username}, csrf=csrf
    )
    assert status == 201, body
    return body["set_password_url"]


async def reset_link(admin, username="alice") -> str:
    """The admin resets the account's password; the set-password link."""
    session, csrf = admin
    status, body, _ = await call(
        session, "POST", f"/api/admin/therapists/{username}/reset-password", csrf=csrf
    )
    assert status == 200, body
    return body["set_password_url"]


async def set_password(client, token, password):
    return await call(
        client, "POST", "/api/set-password", json={"token": token, "password": password}
    )


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_every_admin_route_refuses_a_therapist_without_the_role(api, path):
    await api.add_therapist("alice")
    session, _ = await api.signed_in("alice")
    async with session:
        status, body, _ = await call(session, "GET", path)
    assert (status, body["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize("path", ADMIN_GETS)
async def test_every_admin_route_refuses_a_visitor_without_a_session(api, path):
    async with api.client() as client:
        status, body, _ = await call(client, "GET", path)
    assert (status, body["error"]["code"]) == (401, "unauthorized")


async def test_the_role_is_checked_on_each_request_not_at_sign_in(api, admin):
    session, _ = admin
    assert (await call(session, "GET", "/api/admin/therapists"))[0] == 200
    await api.storage.set_therapist_admin("root", False)
    assert (await call(session, "GET", "/api/admin/therapists"))[0] == 403


async def test_a_state_change_without_the_csrf_token_is_refused(api, admin):
    session, _ = admin
    status, body, _ = await call(session, "POST", "/api/admin/therapists/alice/disable")
    assert (status, body["error"]["code"]) == (403, "csrf_failed")
    assert not (await api.storage.get_therapist("alice")).disabled


async def test_a_new_account_sets_its_password_through_the_link_once(api, admin):
    url = await new_account_link(admin, "bob")
    assert url.startswith(f"{api.config.server.public_url}/set-password#")
    token = token_of(url)
    async with api.client() as anyone:
        status, body, _ = await set_password(anyone, token, NEW_PASSWORD)
        assert (status, body) == (200, {"username": "bob"})
        status, body, _ = await set_password(anyone, token, "x" * 9)
        assert (status, body["error"]["code"]) == (404, "not_found"), "a link works once"
        status, _, _ = await login(anyone, "bob", NEW_PASSWORD)
    assert status == 200


async def test_the_link_is_stored_only_as_its_hash(api, admin):
    token = token_of(await new_account_link(admin, "bob"))
    stored = api.database_bytes()
    assert token.encode() not in stored
    assert hash_token(token).encode() in stored


async def test_a_short_password_is_refused_and_the_link_still_works(api, admin):
    token = token_of(await reset_link(admin, "alice"))
    async with api.client() as anyone:
        status, body, _ = await set_password(anyone, token, "short")
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        status, _, _ = await set_password(anyone, token, NEW_PASSWORD)
    assert status == 200


async def test_disabling_ends_the_therapists_sessions_at_once(api, admin):
    session, csrf = admin
    alice, _ = await api.signed_in("alice")
    async with alice:
        assert (await call(alice, "GET", "/api/therapist/me"))[0] == 200
        status, body, _ = await call(
            session, "POST", "/api/admin/therapists/alice/disable", csrf=csrf
        )
        assert (status, body["disabled"]) == (200, True)
        assert (await call(alice, "GET", "/api/therapist/me"))[0] == 401
        await call(session, "POST", "/api/admin/therapists/alice/enable", csrf=csrf)
        assert (await call(alice, "GET", "/api/therapist/me"))[0] == 401, "no session revives"


async def test_resetting_a_password_ends_sessions_and_the_old_password(api, admin):
    alice, _ = await api.signed_in("alice")
    async with alice:
        await reset_link(admin, "alice")
        assert (await call(alice, "GET", "/api/therapist/me"))[0] == 401
        status, _, _ = await login(alice, "alice", PASSWORD)
    assert status == 401


async def test_an_admin_cannot_disable_or_demote_themselves(api, admin):
    session, csrf = admin
    status, _, _ = await call(session, "POST", "/api/admin/therapists/root/disable", csrf=csrf)
    assert status == 409
    status, _, _ = await call(
        session, "PUT", "/api/admin/therapists/root/admin", json={"admin": False}, csrf=csrf
    )
    assert status == 409
    assert (await api.storage.get_therapist("root")).is_admin


async def test_an_admin_makes_another_account_admin(api, admin):
    session, csrf = admin
    status, body, _ = await call(
        session,
        "PUT",
        "/api/admin/therapists/alice/admin",
        json={"admin": True},
        csrf=csrf,
    )
    assert (status, body["admin"]) == (200, True)
    alice, _ = await api.signed_in("alice")
    async with alice:
        assert (await call(alice, "GET", "/api/admin/therapists"))[0] == 200


async def test_unknown_accounts_and_bad_names_get_clear_errors(admin):
    session, csrf = admin
    status, body, _ = await call(session, "POST", "/api/admin/therapists/nobody/disable", csrf=csrf)
    assert (status, body["error"]["code"]) == (404, "not_found")
    for bad in ("A", "../x", "x" * 65, 5, None):
        status, body, _ = await call(
            session, "POST", "/api/admin/therapists", json={"username": bad}, csrf=csrf
        )
        assert (status, body["error"]["code"]) == (400, "invalid_request"), bad
    status, body, _ = await call(
        session, "POST", "/api/admin/therapists", json={"username": "alice"}, csrf=csrf
    )
    assert (status, body["error"]["code"]) == (409, "conflict")


async def test_an_api_key_is_shown_once_listed_by_name_and_revoked(api, admin):
    session, csrf = admin
    status, body, _ = await call(
        session, "POST", "/api/admin/api-keys", json={"name": "portal"}, csrf=csrf
    )
    assert status == 201
    key = body["key"]
    remember(key)
    _, listed, _ = await call(session, "GET", "/api/admin/api-keys")
    assert [k["name"] for k in listed["api_keys"]] == ["portal"]
    assert key not in str(listed)
    async with api.client(Authorization=f"Bearer {key}") as portal:
        assert (await call(portal, "GET", "/api/v1/appointments/1"))[0] == 404
        status, _, _ = await call(session, "DELETE", "/api/admin/api-keys/portal", csrf=csrf)
        assert status == 204
        assert (await call(portal, "GET", "/api/v1/appointments/1"))[0] == 401


async def test_every_admin_action_is_in_the_audit_log_with_who_what_and_whom(api, admin):
    session, csrf = admin
    await call(session, "POST", "/api/admin/therapists", json={"username": "bob"}, csrf=csrf)
    await call(session, "POST", "/api/admin/therapists/alice/disable", csrf=csrf)
    await call(session, "POST", "/api/admin/api-keys", json={"name": "portal"}, csrf=csrf)
    _, body, _ = await call(session, "GET", "/api/admin/audit")
    got = [(e["actor"], e["action"], e["target"]) for e in body["entries"]]
    assert got == [
        ("root", "api_key_created", "portal"),
        ("root", "therapist_disabled", "alice"),
        ("root", "therapist_added", "bob"),
    ]
    assert all(e["at"].endswith("Z") for e in body["entries"])


async def test_bad_audit_limits_are_400(admin):
    session, _ = admin
    for bad in ("0", "501", "x", "-1", "99999999999999999999"):
        status, _, _ = await call(session, "GET", f"/api/admin/audit?limit={bad}")
        assert status == 400, bad


async def test_usage_counts_sessions_and_minutes_per_month_overall_and_per_therapist(api, admin):
    session, _ = admin
    alice = await api.storage.get_therapist("alice")
    root = await api.storage.get_therapist("root")
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 2, 3), 3000)
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 3, 3), 3000)
    await api.storage.record_session_statistic(root.id, dt.date(2026, 3, 4), 1500)
    _, body, _ = await call(session, "GET", "/api/admin/usage")
    assert body["months"] == [
        {"month": "2026-02", "sessions": 1, "minutes": 50},
        {"month": "2026-03", "sessions": 2, "minutes": 75},
    ]
    assert [t["username"] for t in body["therapists"]] == ["alice", "root"]


async def test_the_usage_csv_is_utf8_with_bom_semicolons_and_quoted_where_needed(api, admin):
    session, _ = admin
    alice = await api.storage.get_therapist("alice")
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 3, 3), 3000)
    async with session.get("/api/admin/usage.csv") as response:
        raw = await response.read()
        assert response.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in response.headers["Content-Disposition"]
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = raw.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "therapist;month;sessions;minutes"
    assert "alice;2026-03;1;50" in lines


async def test_charts_are_svg_images_without_script_with_title_and_desc(api, admin):
    session, _ = admin
    alice = await api.storage.get_therapist("alice")
    await api.storage.record_session_statistic(alice.id, dt.date(2026, 3, 3), 3000)
    for path in ("/api/admin/usage-sessions.svg", "/api/admin/usage-minutes.svg"):
        async with session.get(path) as response:
            assert response.headers["Content-Type"].startswith("image/svg+xml")
            text = await response.text()
        assert "<title" in text and "<desc" in text and 'role="img"' in text
        assert "<script" not in text.lower() and "href" not in text.lower()
        assert "2026-03" in text
    status, _, _ = await call(session, "GET", "/api/admin/usage-secrets.svg")
    assert status == 404


async def test_health_is_reported_per_week_from_the_persisted_daily_counters(api, admin):
    session, _ = admin
    metrics = Metrics()
    day = dt.datetime.now(dt.UTC).date()
    recorder = HealthRecorder(metrics, api.storage, today=lambda: day)
    for _ in range(4):
        metrics.joins.inc()
    for seconds in (0.4, 0.8, 1.5):
        metrics.join_to_media.observe(seconds)
    metrics.reconnects.inc()
    await recorder.flush()
    await recorder.flush()  # nothing grew: nothing is added twice
    _, body, _ = await call(session, "GET", "/api/admin/health")
    [week] = body["weeks"]
    year, number, _ = day.isocalendar()
    assert week["week"] == f"{year}-W{number:02d}"
    assert (week["joins"], week["media_reached"], week["reconnects"]) == (4, 3, 1)
    assert week["media_share"] == 0.75
    assert 0.5 <= week["median_join_to_media_seconds"] <= 1.0


async def test_the_admin_page_needs_a_session_and_the_role(api, admin):
    session, _ = admin
    async with api.client() as visitor, visitor.get("/admin", allow_redirects=False) as r:
        assert (r.status, r.headers["Location"]) == (302, "/login")
    alice, _ = await api.signed_in("alice")
    async with alice, alice.get("/admin") as response:
        assert response.status == 403
    async with session.get("/admin") as response:
        assert response.status == 200
        assert 'src="/api/admin/usage-sessions.svg"' in await response.text()


async def test_me_tells_the_dashboard_whether_to_link_to_the_admin_pages(api, admin):
    session, _ = admin
    assert (await call(session, "GET", "/api/therapist/me"))[1]["is_admin"] is True
    alice, _ = await api.signed_in("alice")
    async with alice:
        assert (await call(alice, "GET", "/api/therapist/me"))[1]["is_admin"] is False
