"""The HTTP application over a real socket on 127.0.0.1: health, readiness, headers, errors."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signaling.app import SECURITY_HEADERS, _ssl_context, create_app
from signaling.config import load_config
from signaling.storage.sqlite import SqliteStorage


@asynccontextmanager
async def running(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def base_url(config, storage) -> AsyncIterator[str]:
    app = create_app(config, storage)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail /home/therapist/notes")

    app.router.add_get("/broken", broken)
    async with running(app) as url:
        yield url


async def get(url: str, **kwargs) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


async def test_healthz_answers_ok(base_url):
    status, headers, body = await get(f"{base_url}/healthz")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert body == '{"status": "ok"}'


async def test_readyz_answers_ok_when_database_works(base_url):
    status, _, body = await get(f"{base_url}/readyz")
    assert (status, json.loads(body)["status"]) == (200, "ok")


async def test_readyz_answers_503_when_database_is_gone(config, tmp_path):
    storage = await SqliteStorage.open(tmp_path / "other.sqlite3")
    async with running(create_app(config, storage)) as url:
        await storage.close()
        status, _, _ = await get(f"{url}/readyz")
    assert status == 503


async def test_every_security_header_is_on_a_normal_response(base_url):
    _, headers, _ = await get(f"{base_url}/healthz")
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


async def test_security_headers_are_on_a_404(base_url):
    status, headers, _ = await get(f"{base_url}/no-such-page")
    assert status == 404
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_unexpected_exception_becomes_plain_500_without_details(base_url):
    status, headers, body = await get(f"{base_url}/broken")
    assert status == 500
    assert body == "500 Internal Server Error"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_no_hsts_without_tls(base_url):
    _, headers, _ = await get(f"{base_url}/healthz")
    assert "Strict-Transport-Security" not in headers


def write_self_signed_cert(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_serves_https_with_hsts(tmp_path, storage, write_config: Callable[..., Path]):
    cert, key = write_self_signed_cert(tmp_path)
    config = load_config(write_config(f"server:\n  tls_cert: {cert}\n  tls_key: {key}\n"))
    client_context = ssl.create_default_context(cafile=str(cert))
    async with running(create_app(config, storage), _ssl_context(config)) as url:
        status, headers, _ = await get(f"{url}/healthz", ssl=client_context)
    assert status == 200
    assert headers["Strict-Transport-Security"] == "max-age=31536000"


async def test_running_app_purges_expired_appointments(config, storage):
    therapist = await storage.add_therapist("alice", "h")
    past = dt.datetime(2020, 1, 1, 9, tzinfo=dt.UTC)
    appointment = await storage.create_appointment(
        therapist.id, past, 50, past, past + dt.timedelta(hours=2), note="private"
    )
    async with running(create_app(config, storage)):
        deadline = asyncio.get_running_loop().time() + 10
        while (await storage.get_appointment(appointment.id)).purged_at is None:
            assert asyncio.get_running_loop().time() < deadline, "not purged within 10 s"
            await asyncio.sleep(0.02)
    assert (await storage.get_appointment(appointment.id)).note is None
