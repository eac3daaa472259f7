"""The whole application on a real socket, with the app object at hand for looking inside it.

Like tests/signaling/api_server.py's ``serving``, but yields the ``web.Application`` too, and
builds it the way ``signaling.app.serve`` does (session secret from the data directory), so a
test can stop it and start a new one on the same files: a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from signaling.app import create_app
from signaling.config import Config
from signaling.credentials import load_or_create_session_secret
from signaling.storage.sqlite import SqliteStorage
from tests.signaling.api_server import ApiServer


@asynccontextmanager
async def app_serving(
    config: Config, port: int = 0
) -> AsyncIterator[tuple[ApiServer, web.Application]]:
    storage = await SqliteStorage.open(config.storage.sqlite_path)
    try:
        secret = load_or_create_session_secret(config.storage.data_dir)
        app = create_app(config, storage, session_secret=secret)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", port)
            await site.start()
            url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            yield ApiServer(url, config, storage, config.storage.sqlite_path), app
        finally:
            await runner.cleanup()
    finally:
        await storage.close()
