"""A private Redis server for tests: Debian's redis-server, its files in a temp dir, listening on
127.0.0.1 only, on a port held through tests/ports.py, with a random password.

As root (CI containers) the server runs as the system user of tests/server_process.py, so a test
server never holds root's rights. Debian's own instance (port 6379, /var/lib/redis) is never
touched. Nothing is persisted: no RDB snapshot, no append-only file.

    with redis_server() as server:
        url = server.url()
        server.stop(); server.start()   # an outage under a running node

Tests share one server per run (tests/cluster/conftest.py) and keep apart by a key prefix of
their own (`cluster.key_prefix`), which also names their pub/sub channels: channels are global
to a server, databases would not separate them.

`make redis` installs the binary when it is missing and the run is root.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.server_process import ServerProcess, as_test_user, give_to_test_user, running_server

__all__ = ["RedisServer", "redis_server"]

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT_SECONDS = 30.0


class RedisServer(ServerProcess):
    """One server: `url()`, and `stop()`/`start()` to take it away and bring it back on the same
    port (empty again: a restarted Redis without persistence has forgotten everything)."""

    def __init__(self, root: Path, port: int, password: str) -> None:
        super().__init__(root, port, password)
        self._process: subprocess.Popen[bytes] | None = None
        self._config = root / "redis.conf"

    def url(self, db: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{db}"

    def prepare(self) -> None:
        self.write_config()

    def write_config(self) -> None:
        # A file, not argv: the password would be visible in `ps` to every user of the machine.
        self._config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    f"requirepass {self.password}",
                    f"dir {self.root}",
                    f"logfile {self.root / 'server.log'}",
                    'save ""',
                    "appendonly no",
                    "daemonize no",
                    "protected-mode yes",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self._config.chmod(0o600)
        give_to_test_user(self._config)

    def start(self) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(
                f"{REDIS_SERVER} is missing: run `make redis` as root, or install Debian's "
                "redis-server package"
            )
        command = as_test_user([REDIS_SERVER, str(self._config)])
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"redis-server did not answer PING within {START_TIMEOUT_SECONDS} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server and wait until it is gone (its clients see the connection close)."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            # runuser passes SIGTERM on to redis-server, which exits at once without persistence
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop_at_exit(self) -> None:
        self.stop()

    def _answers(self) -> bool:
        """AUTH and PING over a plain socket: up and accepting the password."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(_command("AUTH", self.password) + _command("PING"))
                reply = b""
                while b"PONG" not in reply:
                    chunk = sock.recv(256)
                    if not chunk:
                        return False
                    reply += chunk
                return True
        except OSError:
            return False


def _command(*parts: str) -> bytes:
    """One command in RESP, the wire format redis-server reads."""
    encoded = [part.encode() for part in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in encoded
    )


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A started server in a fresh temp dir, stopped and deleted afterwards."""
    with running_server(RedisServer, "sprechzimmer-redis-") as server:
        yield server
