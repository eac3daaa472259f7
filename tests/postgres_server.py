"""A private PostgreSQL server for tests: Debian's own binaries, a data directory in a temp dir,
listening on 127.0.0.1 only, on a port held through tests/ports.py, with a random password.

PostgreSQL refuses to run as root, so when the tests run as root (CI containers) the server runs
as the system user of tests/server_process.py; otherwise as the caller. The cluster Debian's
package may have created (port 5432, /var/lib/postgresql) is never touched.

    with postgres_server(tmp_dir) as server:
        dsn = server.create_database()

`make postgresql` installs the binaries when they are missing and the run is root.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.server_process import ServerProcess, as_test_user, give_to_test_user, running_server

__all__ = ["PostgresServer", "postgres_bin_dir", "postgres_server"]

SUPERUSER = "sprechzimmer"
# pg_ctl's own wait for the server to accept connections (its default is 60 s)
START_TIMEOUT_SECONDS = 60


def postgres_bin_dir() -> Path:
    """The newest of Debian's /usr/lib/postgresql/<version>/bin, or pg_config's --bindir."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(bindir) / "initdb").exists():
            return Path(bindir)
    raise RuntimeError(
        "PostgreSQL's server binaries (initdb, pg_ctl) are missing: run `make postgresql` as "
        "root, or install Debian's postgresql package"
    )


class PostgresServer(ServerProcess):
    """One server: `dsn()`, `create_database()`, and `stop()`/`start()` to take it away and bring
    it back on the same port with the same data."""

    def __init__(self, root: Path, port: int, password: str) -> None:
        super().__init__(root, port, password)
        self._bin = postgres_bin_dir()
        self._data = root / "data"

    def dsn(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"
            "?connect_timeout=10"
        )

    def prepare(self) -> None:
        self.initdb()

    def initdb(self) -> None:
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n", encoding="utf-8")
        give_to_test_user(password_file)
        self._run(
            "initdb",
            "--pgdata",
            str(self._data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            # the locale of the machine must not decide our text order; the backend says
            # COLLATE "C" where order matters anyway
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        password_file.unlink()

    def start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                # the socket next to the data: /var/run/postgresql belongs to Debian's cluster
                f"-c unix_socket_directories={self.root}",
                # a test server: nothing needs to survive a power cut
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c max_connections=200",
            ]
        )
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self._data),
            "--log",
            str(self.root / "server.log"),
            "--wait",
            "--timeout",
            str(START_TIMEOUT_SECONDS),
            "--options",
            options,
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends every session (clients see admin_shutdown), like `systemctl stop`."""
        self._run("pg_ctl", "stop", "--pgdata", str(self._data), "--mode", mode, "--wait")

    def stop_at_exit(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")

    def create_database(self) -> str:
        """A new empty database; its DSN."""
        import psycopg

        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def _run(self, program: str, *args: str) -> None:
        command = as_test_user([str(self._bin / program), *args])
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr.strip()}\n"
                f"server log:\n{self.log_tail()}"
            )


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A started server in a fresh temp dir, stopped and deleted afterwards."""
    with running_server(PostgresServer, "sprechzimmer-pg-") as server:
        yield server
