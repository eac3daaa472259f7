"""Fixtures for API tests: the app on a real socket on 127.0.0.1 over a real SQLite file.

Import the fixtures into a test module with `from tests.signaling.api_server import ...`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from signaling.app import create_app
from signaling.config import Config, load_config
from signaling.credentials import hash_password
from signaling.storage.sqlite import SqliteStorage
from tests.ports import PortRange
from tests.privacy_canaries import remember

PASSWORD = "correct horse battery"
remember(PASSWORD)

# argon2 at full cost makes every test that creates an account slow; these tests are about HTTP
# behaviour, not hash strength, so accounts get a hash computed once.
_PASSWORD_HASH = hash_password(PASSWORD)


@dataclass
class ApiServer:
    url: str
    config: Config
    storage: SqliteStorage
    db_path: Path
    app: web.Application | None = None

    async def add_therapist(self, username: str = "alice", disabled: bool = False) -> None:
        await self.storage.add_therapist(username, _PASSWORD_HASH)
        if disabled:
            await self.storage.set_therapist_disabled(username, True)

    def database_bytes(self) -> bytes:
        """Everything SQLite has on disk for this database, write-ahead log included."""
        files = sorted(self.db_path.parent.glob(self.db_path.name + "*"))
        return b"".join(path.read_bytes() for path in files)

    def client(self, **headers: str) -> aiohttp.ClientSession:
        # unsafe=True: the default jar ignores cookies from IP-address hosts like 127.0.0.1.
        return aiohttp.ClientSession(
            base_url=self.url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers=headers
        )

    async def signed_in(self, username: str = "alice") -> tuple[aiohttp.ClientSession, str]:
        """A client session signed in as `username`, and its CSRF token."""
        session = self.client()
        async with session.post(
            "/api/therapist/login", json={"username": username, "password": PASSWORD}
        ) as response:
            assert response.status == 200, await response.text()
            csrf = (await response.json())["csrf_token"]
        remember(csrf, *(c.value for c in session.cookie_jar))
        return session, csrf


async def call(
    client: aiohttp.ClientSession, method: str, path: str, csrf: str | None = None, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """One request; returns status, the JSON body (None if empty) and the headers. `csrf`: the
    session's CSRF token, sent as X-CSRF-Token (a state change of a signed-in therapist)."""
    if csrf is not None:
        kwargs["headers"] = {**kwargs.get("headers", {}), "X-CSRF-Token": csrf}
    async with client.request(method, path, **kwargs) as response:
        text = await response.text()
        return response.status, json.loads(text) if text else None, response.headers


async def login(
    client: aiohttp.ClientSession, username: str = "alice", password: str = PASSWORD
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """The sign-in form's request: `call`'s answer."""
    return await call(
        client, "POST", "/api/therapist/login", json={"username": username, "password": password}
    )


@asynccontextmanager
async def running(
    config: Config, storage: SqliteStorage, app: web.Application | None = None
) -> AsyncIterator[str]:
    runner = web.AppRunner(app or create_app(config, storage), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


PUBLIC_URL = "http://praxis.example:8080"


def media_config(ports: PortRange, extra: str = "") -> str:
    """The config's media section: the relay on 127.0.0.1 with loopback candidates, on ``ports``
    (tests/ports.py, so that no concurrent test or run shares them), then ``extra`` lines."""
    return (
        "media:\n"
        "  allow_loopback_candidates: true\n"
        '  listen_addresses: ["127.0.0.1"]\n'
        f"  udp_port_min: {ports.low}\n"
        f"  udp_port_max: {ports.high}\n" + extra
    )


def write_config(tmp_path: Path, public_url: str = PUBLIC_URL, extra: str = "") -> Config:
    path = tmp_path / "api-config.yaml"
    path.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        f"server:\n  public_url: {public_url}\n" + extra,
        encoding="utf-8",
    )
    return load_config(path)


@asynccontextmanager
async def serving(config: Config) -> AsyncIterator[ApiServer]:
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    try:
        app = create_app(config, storage)
        async with running(config, storage, app) as url:
            yield ApiServer(url, config, storage, config.storage.sqlite_path, app)
    finally:
        await storage.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiServer]:
    async with serving(write_config(tmp_path)) as server:
        yield server


def in_days(days: float) -> str:
    """An ISO 8601 start time `days` from now, with an explicit +01:00 offset."""
    zone = dt.timezone(dt.timedelta(hours=1))
    return (dt.datetime.now(zone) + dt.timedelta(days=days)).replace(microsecond=0).isoformat()
