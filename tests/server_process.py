"""What the tests' private servers (tests/postgres_server.py, tests/redis_server.py) share: a
fresh temp dir, a port held through tests/ports.py, a random password that the run's privacy
check watches for, the server's log for error messages, and the order of it all.

    with running_server(PostgresServer, "sprechzimmer-pg-") as server: ...

A server class says how to `prepare` its files, `start` (returning once the server answers) and
`stop_at_exit`; `running_server` does the rest and deletes the temp dir whatever happens.

As root (CI containers) a server runs as the system user `sprechzimmer-test`, created on first
use: PostgreSQL refuses to run as root, and a test server never needs root's rights.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tests.ports import reserve_ports
from tests.privacy_canaries import remember

__all__ = [
    "TEST_USER",
    "ServerProcess",
    "as_test_user",
    "give_to_test_user",
    "running_server",
]

TEST_USER = "sprechzimmer-test"
# how much of the server's log an error message quotes: the last lines say why it stopped
LOG_TAIL_CHARACTERS = 2000


class ServerProcess:
    """One server's temp dir (`root`, owned by the user the server runs as), port and password,
    and its log at `root/server.log`."""

    def __init__(self, root: Path, port: int, password: str) -> None:
        self.root = root
        self.port = port
        self.password = password

    def prepare(self) -> None:
        """Write what the server needs in `root` before its first start."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the server; return once it answers, raise RuntimeError (quoting `log_tail`)
        if it does not."""
        raise NotImplementedError

    def stop_at_exit(self) -> None:
        """Stop the server for good, quickly: the temp dir is deleted next."""
        raise NotImplementedError

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self) -> str:
        return self.log()[-LOG_TAIL_CHARACTERS:]


S = TypeVar("S", bound=ServerProcess)


@contextlib.contextmanager
def running_server(new_server: Callable[[Path, int, str], S], prefix: str) -> Iterator[S]:
    """A server made by `new_server(root, port, password)`, prepared and started in a fresh temp
    dir named `prefix…`; stopped and the dir deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    give_to_test_user(root)
    password = secrets.token_urlsafe(18)
    remember(password)  # the privacy check fails the run if it ever shows up in a log
    try:
        with reserve_ports(1, tcp=True) as ports:
            server = new_server(root, ports.low, password)
            server.prepare()
            server.start()
            try:
                yield server
            finally:
                server.stop_at_exit()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def as_test_user(command: list[str]) -> list[str]:
    """`command`, run as the test user when the tests run as root."""
    if os.geteuid() != 0:
        return command
    _ensure_test_user()
    return ["runuser", "-u", TEST_USER, "--", *command]


def give_to_test_user(path: Path) -> None:
    """Hand `path` to the test user when the tests run as root."""
    if os.geteuid() != 0:
        return
    _ensure_test_user()
    entry = pwd.getpwnam(TEST_USER)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _ensure_test_user() -> None:
    try:
        pwd.getpwnam(TEST_USER)
        return
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            TEST_USER,
        ],
        capture_output=True,
        text=True,
    )
    # a concurrent run may have created it a moment ago (useradd then exits with 9)
    with contextlib.suppress(KeyError):
        pwd.getpwnam(TEST_USER)
        return
    raise RuntimeError(f"cannot create the user {TEST_USER}: {result.stderr.strip()}")
