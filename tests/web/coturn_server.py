"""Debian's coturn on 127.0.0.1 for browser tests, with the service's REST credentials
(`use-auth-secret`) as deploy/coturn/turnserver.conf runs it, over UDP and over TLS; a chromium
that trusts coturn's test certificate; and a script that makes a browser context use relayed
candidates only, as behind a firewall that lets nothing through but the TURN server.

Chromium checks a TURN server's certificate like a web server's: a self-signed one fails with
error 701. `--ignore-certificate-errors-spki-list` trusts exactly one key, the test's own, and
leaves verification on for everything else.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import signal
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, async_playwright, expect

from tests.ports import PortRange, reserve_ports
from tests.privacy_canaries import remember
from tests.signaling.test_app import write_self_signed_cert
from tests.web.browser_server import CHROMIUM, CHROMIUM_ARGS, EXPECT_TIMEOUT_MS

TURNSERVER = "/usr/bin/turnserver"
REALM = "sprechzimmer.test"

# RTCPeerConnection, but always with iceTransportPolicy "relay", so the page needs no change.
# Every configuration, gathered candidate type and candidate error lands in window.turnSeen.
RELAY_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  const seen = { configs: [], candidates: [], errors: [] };
  window.turnSeen = seen;
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      const relayOnly = { ...(config || {}), iceTransportPolicy: "relay" };
      super(relayOnly, ...rest);
      seen.configs.push(relayOnly);
      this.addEventListener("icecandidate", (event) => {
        if (event.candidate && event.candidate.candidate) seen.candidates.push(event.candidate.type);
      });
      this.addEventListener("icecandidateerror", (event) => {
        seen.errors.push({ url: event.url, code: event.errorCode, text: event.errorText });
      });
    }
  };
})();
"""


@dataclass(frozen=True)
class TurnCertificate:
    """A self-signed certificate for 127.0.0.1, and the SPKI hash chromium is told to trust."""

    cert: Path
    key: Path
    spki_sha256: str


@dataclass
class Coturn:
    port: int
    tls_port: int
    relay_ports: PortRange  # where coturn allocates relayed addresses
    secret: str
    log_path: Path

    def url(self, transport: str) -> str:
        """The ICE server URL for `udp` (turn:, UDP to coturn) or `tls` (turns:, TLS over TCP)."""
        if transport == "tls":
            return f"turns:127.0.0.1:{self.tls_port}?transport=tcp"
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def allocations(self, username: str) -> int:
        """coturn's log lines for an allocation it granted to `username`."""
        return sum(
            1
            for line in self.log().splitlines()
            if f"user <{username}>" in line and "ALLOCATE processed, success" in line
        )


@pytest.fixture(scope="module")
def turn_certificate(tmp_path_factory: pytest.TempPathFactory) -> TurnCertificate:
    directory = tmp_path_factory.mktemp("coturn-tls")
    cert, key_path = write_self_signed_cert(directory)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TurnCertificate(cert, key_path, base64.b64encode(hashlib.sha256(spki).digest()).decode())


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="browser")
async def browser_trusting_coturn(turn_certificate: TurnCertificate) -> AsyncIterator[Browser]:
    """browser_server's chromium, trusting coturn's test key (and no other unverified one)."""
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    trust = f"--ignore-certificate-errors-spki-list={turn_certificate.spki_sha256}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, trust]
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def coturn(tmp_path: Path, turn_certificate: TurnCertificate) -> Iterator[Coturn]:
    """turnserver on free ports of 127.0.0.1, stopped when the test ends, pass or fail."""
    if not os.access(TURNSERVER, os.X_OK):
        pytest.fail(f"{TURNSERVER} is missing: install Debian's coturn package (make test does)")
    secret = secrets.token_urlsafe(24)
    remember(secret)
    # Every port coturn opens is held for this test (tests/ports.py): its listening ports for UDP
    # and TCP, and its relay range apart from every relay's media range.
    with reserve_ports(2, tcp=True) as listening, reserve_ports(50) as relay_ports:
        server = Coturn(
            listening.low, listening.high, relay_ports, secret, tmp_path / "turnserver.log"
        )
        yield from _running(server, tmp_path, turn_certificate)


def _running(server: Coturn, tmp_path: Path, turn_certificate: TurnCertificate) -> Iterator[Coturn]:
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                TURNSERVER,
                "-n",  # no configuration file: only these options
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={server.port}",
                f"--tls-listening-port={server.tls_port}",
                f"--min-port={server.relay_ports.low}",
                f"--max-port={server.relay_ports.high}",
                "--use-auth-secret",
                f"--static-auth-secret={server.secret}",
                f"--realm={REALM}",
                "--fingerprint",
                f"--cert={turn_certificate.cert}",
                f"--pkey={turn_certificate.key}",
                "--no-tlsv1",
                "--no-tlsv1_1",
                "--no-dtls",
                # The relay listens on 127.0.0.1 here; in production it is the one allowed peer.
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tcp-relay",
                "--no-rfc5780",
                "--no-stun-backward-compatibility",
                "--verbose",  # session and allocation lines: the tests read them
                "--log-file=stdout",
                "--simple-log",
                f"--pidfile={tmp_path / 'turnserver.pid'}",
                f"--userdb={tmp_path / 'turndb'}",  # not the system's /var/lib/turn/turndb
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_listening(server, process)
        yield server
    finally:
        _stop(process)


def _wait_until_listening(server: Coturn, process: subprocess.Popen[bytes]) -> None:
    """Until coturn answers a STUN Binding request (RFC 5389: type 0x0001 with the magic
    cookie) on its UDP port and accepts connections on its TLS port."""
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
    deadline = time.monotonic() + 30  # a deadline: coturn starts in well under a second
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"turnserver exited ({process.returncode}):\n{server.log()}")
            probe.sendto(request, ("127.0.0.1", server.port))
            try:
                answer = probe.recv(2048)
            except OSError:
                continue
            if answer[:2] == b"\x01\x01" and answer[8:20] == transaction:
                with socket.create_connection(("127.0.0.1", server.tls_port), timeout=2):
                    return
    raise AssertionError(f"turnserver does not answer on 127.0.0.1:{server.port}:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
