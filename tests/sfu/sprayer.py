"""A stranger spraying a UDP port range, in a process of its own (so its pace does not depend on
the test's event loop, and its own output never mixes with the relay's stderr).

    python -m tests.sfu.sprayer HOST LOW HIGH RATE

sends RATE datagrams a second, round-robin over LOW..HIGH, cycling through every kind a port
scanner or an attacker who knows only the port range would send (``KINDS``), until stdin closes;
then prints {"sent": n, "seconds": s, "kinds": {...}} on stdout and exits.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import socket
import struct
import sys
import threading
import time

from aioice import stun
from OpenSSL import SSL


def client_hello() -> bytes:
    """A real DTLS ClientHello, as OpenSSL (and so aiortc) sends it."""
    connection = SSL.Connection(SSL.Context(SSL.DTLS_METHOD), None)
    connection.set_connect_state()
    with contextlib.suppress(SSL.WantReadError):
        connection.do_handshake()
    return connection.bio_read(4096)


def dtls_alert() -> bytes:
    # record: alert(21), DTLS 1.2, epoch 0, sequence 0, length 2; fatal(2) handshake_failure(40)
    return bytes([21, 0xFE, 0xFD]) + bytes(8) + struct.pack("!H", 2) + bytes([2, 40])


def stun_request(rng: random.Random, username: str | None, key: bytes | None) -> bytes:
    message = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, rng.randbytes(12))
    if username is not None:
        message.attributes["USERNAME"] = username
        message.attributes["PRIORITY"] = 1853824767
    if key is not None:
        message.add_message_integrity(key)
    return bytes(message)


def srtp_looking(rng: random.Random) -> bytes:
    # RTP v2, payload type 96 or an RTCP type: passes RFC 7983's first-byte test, fails SRTP auth
    second = rng.choice([96, 111, 200, 201, 205, 206])
    return bytes([0x80, second]) + rng.randbytes(rng.randint(10, 300))


def kinds(rng: random.Random) -> dict[str, object]:
    hello = client_hello()
    return {
        "empty": lambda: b"",
        "random": lambda: rng.randbytes(rng.randint(1, 1400)),
        "stun_bare": lambda: stun_request(rng, None, None),  # 20 bytes: the amplification probe
        "stun_guessed_user": lambda: stun_request(rng, "abcd:efgh", b"x" * 22),
        "stun_response": lambda: bytes(
            stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, rng.randbytes(12))
        ),
        "dtls_client_hello": lambda: hello,
        "dtls_alert": dtls_alert,
        "srtp_looking": lambda: srtp_looking(rng),
    }


def main() -> None:
    host, low, high, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    rng = random.Random(11)
    makers = kinds(rng)
    counts = dict.fromkeys(makers, 0)
    order = itertools.cycle(list(makers.items()))
    ports = itertools.cycle(range(low, high + 1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    start = time.monotonic()
    sent = 0
    while not done.is_set():
        # catch up to the wall clock in bursts: the average rate holds even when this process
        # gets the CPU only every few milliseconds on a loaded machine
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            name, make = next(order)
            # an ICMP port unreachable from an earlier datagram raises here: keep spraying
            with contextlib.suppress(OSError):
                sock.sendto(make(), (host, next(ports)))  # type: ignore[operator]
            counts[name] += 1
            sent += 1
        time.sleep(0.002)
    seconds = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": seconds, "kinds": counts}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
