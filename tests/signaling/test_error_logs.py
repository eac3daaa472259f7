"""A crash is logged with its route's template, never the request path: paths carry invite
tokens (/j/{token}, /api/client/{token}) and usernames."""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from signaling.app import create_app
from signaling.logs import LOGGER_NAME
from tests.signaling.api_server import running

TOKEN = "tok3n-that-must-not-be-logged"


async def test_a_crash_under_a_token_path_logs_the_route_template_not_the_token(
    config, storage, caplog
):
    app = create_app(config, storage)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    app.router.add_get("/crash/{token}", broken)
    app.router.add_get("/api/crash/{token}", broken)
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(caplog.handler)
    try:
        async with running(config, storage, app) as url, aiohttp.ClientSession() as session:
            for path in (f"/crash/{TOKEN}", f"/api/crash/{TOKEN}"):
                async with session.get(f"{url}{path}") as response:
                    assert response.status == 500
    finally:
        logger.removeHandler(caplog.handler)
    fields = [r.fields for r in caplog.records if r.getMessage() == "unhandled_error"]
    # (caplog may see a record twice: from our handler and from its own on the root logger)
    assert {f["path"] for f in fields} == {"/crash/{token}", "/api/crash/{token}"}
    assert TOKEN not in repr(fields)
