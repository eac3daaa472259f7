"""HTTPS from the configured certificate and key, which SIGHUP reloads without a restart."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from signaling.app import create_app
from signaling.config import load_config
from signaling.tls import reload_certificate, server_context
from tests.signaling.test_app import running, write_self_signed_cert


def served_fingerprint(port: int) -> str:
    """SHA-256 of the certificate the server presents to a new connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(cert: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def two_pairs(tmp_path: Path) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    return write_self_signed_cert(tmp_path / "old"), write_self_signed_cert(tmp_path / "new")


def install(pair: tuple[Path, Path], cert: Path, key: Path) -> None:
    """Put a pair in place the way certbot does: new files renamed over the old ones."""
    for source, target in zip(pair, (cert, key), strict=True):
        temporary = target.with_suffix(".tmp")
        temporary.write_bytes(source.read_bytes())
        os.replace(temporary, target)


async def test_reloading_serves_the_new_certificate_to_new_connections(
    tmp_path, storage, write_config
):
    old, new = two_pairs(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    install(old, cert, key)
    config = load_config(write_config(f"server:\n  tls_cert: {cert}\n  tls_key: {key}\n"))
    context = server_context(config)
    async with running(create_app(config, storage), context) as url:
        port = int(url.rsplit(":", 1)[1])
        assert await asyncio.to_thread(served_fingerprint, port) == file_fingerprint(old[0])
        install(new, cert, key)
        assert reload_certificate(context, config)
        assert await asyncio.to_thread(served_fingerprint, port) == file_fingerprint(new[0])


async def test_a_key_that_does_not_match_keeps_the_old_pair_in_service(
    tmp_path, storage, write_config
):
    old, new = two_pairs(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    install(old, cert, key)
    config = load_config(write_config(f"server:\n  tls_cert: {cert}\n  tls_key: {key}\n"))
    context = server_context(config)
    async with running(create_app(config, storage), context) as url:
        port = int(url.rsplit(":", 1)[1])
        install((new[0], old[1]), cert, key)  # half a renewal: new certificate, old key
        assert not reload_certificate(context, config)
        assert await asyncio.to_thread(served_fingerprint, port) == file_fingerprint(old[0])


def test_sighup_makes_the_running_server_present_the_renewed_certificate(tmp_path, tcp_port):
    old, new = two_pairs(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    install(old, cert, key)
    port = tcp_port
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"server:\n  port: {port}\n  tls_cert: {cert}\n  tls_key: {key}\n"
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        'metrics:\n  listen: ""\n'
    )
    with subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout.readline().startswith("Sprechzimmer is listening on https://")
            assert served_fingerprint(port) == file_fingerprint(old[0])
            install(new, cert, key)
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 15
            while served_fingerprint(port) != file_fingerprint(new[0]):
                assert time.monotonic() < deadline, "still the old certificate"
                time.sleep(0.05)
            assert process.poll() is None  # SIGHUP reloads; it does not stop the server
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert "event=certificate_reloaded" in process.stderr.read()


def test_sighup_without_tls_is_ignored_rather_than_ending_the_server(tmp_path, tcp_port):
    port = tcp_port
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"server:\n  port: {port}\n"
        f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n"
        'metrics:\n  listen: ""\n'
    )
    log = tmp_path / "serve.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-m", "signaling", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as process,
    ):
        try:
            assert process.stdout.readline().startswith("Sprechzimmer is listening on http://")
            process.send_signal(signal.SIGHUP)
            # The server logs that it handled the signal; only then does "still running" mean
            # anything (a fixed sleep may end before the signal is even delivered).
            deadline = time.monotonic() + 15
            while "event=reload_ignored" not in log.read_text():
                assert process.poll() is None, f"the server ended on SIGHUP:\n{log.read_text()}"
                assert time.monotonic() < deadline, "no event=reload_ignored after SIGHUP"
                time.sleep(0.05)
            # behind a TLS proxy, a reload must not stop it: it still answers
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                assert r.status == 200
            assert process.poll() is None
        finally:
            process.terminate()
            process.wait(timeout=10)
        assert process.returncode == 0
