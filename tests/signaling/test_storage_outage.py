"""PostgreSQL stopped and started again under a running app: while it is down every request that
needs the database gets 503 `storage_unavailable` with Retry-After, /readyz says the database is
not ready, and one log line says so; once it is back the same requests work again (the pool
reconnects by itself) and one line says that. No traceback, no crash.

The server here is the test's own (tests/postgres_server.py): stopping the run's shared one would
pull the floor from under other tests."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from signaling.app import create_app
from signaling.credentials import hash_password
from signaling.storage.postgresql import PostgresqlStorage
from tests.postgres_server import postgres_server
from tests.signaling.api_server import PASSWORD, call, running, write_config

# pg_ctl start waits until the server accepts connections; the pool's next attempt follows
# within its backoff (1 s doubling, at most a few seconds at this stage of the outage)
RECOVERY_DEADLINE_SECONDS = 60


async def sign_in(client) -> int:
    status, _, _ = await call(
        client, "POST", "/api/therapist/login", json={"username": "alice", "password": PASSWORD}
    )
    return status


async def test_the_app_answers_503_while_postgresql_is_down_and_works_again_after(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="sprechzimmer")
    with postgres_server() as server:
        storage = await PostgresqlStorage.open(server.create_database(), pool_size=2)
        try:
            await storage.add_therapist("alice", hash_password(PASSWORD))
            config = write_config(tmp_path)
            app = create_app(config, storage)
            async with (
                running(config, storage, app) as url,
                aiohttp.ClientSession(base_url=url) as client,
            ):
                assert await sign_in(client) == 200

                server.stop()
                status, body, headers = await call(
                    client,
                    "POST",
                    "/api/therapist/login",
                    json={"username": "alice", "password": PASSWORD},
                )
                assert status == 503, body
                assert body["error"]["code"] == "storage_unavailable", body
                assert headers["Retry-After"]
                status, body, _ = await call(client, "GET", "/readyz")
                assert status == 503 and body["checks"]["database"] == "failed", body

                server.start()
                deadline = time.monotonic() + RECOVERY_DEADLINE_SECONDS
                while (status := await sign_in(client)) != 200:
                    assert time.monotonic() < deadline, (
                        f"sign-in still answers {status} {RECOVERY_DEADLINE_SECONDS} s after "
                        "PostgreSQL came back"
                    )
                    await asyncio.sleep(0.5)
        finally:
            await storage.close()

    ours = [r for r in caplog.records if r.name.startswith("sprechzimmer")]
    changes = [r.getMessage() for r in ours if r.getMessage().startswith("database_")]
    assert changes == ["database_unreachable", "database_reachable"], changes
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    # the pool's own warning per failed reconnect attempt would repeat all through the outage
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], "psycopg logged"
