"""Debian's coturn on 127.0.0.1 for browser tests, with the service's REST credentials
(`use-auth-secret`), as deploy/coturn/turnserver.conf runs it; and a way to make a browser
context use relayed candidates only, as behind a firewall that blocks all but the TURN server.

coturn logs to a file of the test's own; `Coturn.log()` reads it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.privacy_canaries import remember

TURNSERVER = "/usr/bin/turnserver"
REALM = "sprechzimmer.test"
# coturn's relay ports: a range apart from every test's media.udp_port_min..max.
RELAY_PORTS = (43450, 43499)

# RTCPeerConnection, but always with iceTransportPolicy "relay", so the page needs no change.
# Every configuration, gathered candidate and candidate error lands in window.turnSeen.
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


@dataclass
class Coturn:
    port: int
    secret: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    """turnserver on a free port of 127.0.0.1, killed when the test ends, pass or fail."""
    port = _free_port()
    secret = secrets.token_urlsafe(24)
    remember(secret)
    server = Coturn(port, secret, tmp_path / "turnserver.log")
    with server.log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                TURNSERVER,
                "-n",  # no configuration file: only these options
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                f"--listening-port={port}",
                f"--min-port={RELAY_PORTS[0]}",
                f"--max-port={RELAY_PORTS[1]}",
                "--use-auth-secret",
                f"--static-auth-secret={secret}",
                f"--realm={REALM}",
                "--fingerprint",
                # The relay listens on 127.0.0.1 here; in production it is the one allowed peer.
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-tcp-relay",
                "--no-rfc5780",
                "--no-stun-backward-compatibility",
                "--verbose",  # session and allocation lines: the test reads them
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
        _wait_until_answering(port, process, server)
        yield server
    finally:
        _stop(process)


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (coturn opens both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


def _wait_until_answering(port: int, process: subprocess.Popen[bytes], server: Coturn) -> None:
    """Until coturn answers a STUN Binding request (RFC 5389: type 0x0001, magic cookie)."""
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
    deadline = time.monotonic() + 10
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"turnserver exited ({process.returncode}):\n{server.log()}")
            probe.sendto(request, ("127.0.0.1", port))
            try:
                answer = probe.recv(2048)
            except OSError:
                continue
            if answer[:2] == b"\x01\x01" and answer[8:20] == transaction:
                return
    raise AssertionError(f"turnserver does not answer on 127.0.0.1:{port}:\n{server.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
