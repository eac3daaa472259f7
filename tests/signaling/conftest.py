"""Fixtures for signaling tests: tmp configs, a real SQLite storage, the run's PostgreSQL server,
and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from signaling.config import Config, load_config
from signaling.storage.sqlite import SqliteStorage
from tests.postgres_server import PostgresServer, postgres_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write YAML text to a config file in tmp_path and return its path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    """A valid config whose database lives in tmp_path."""
    path = tmp_path / "config.yaml"
    path.write_text(f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}\n")
    return path


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    storage = await SqliteStorage.open(tmp_path / "data" / "db.sqlite3")
    yield storage
    await storage.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The run's one private PostgreSQL server (tests/postgres_server.py), started when a test
    first asks; each test makes its own database on it."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m signaling ARGS` in tmp_path with `stdin` text (not a TTY)."""

    def run(*args: str, stdin: str = "", env: dict[str, str] | None = None):
        return subprocess.run(
            [sys.executable, "-m", "signaling", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**os.environ, **(env or {})},
            timeout=60,
        )

    return run
