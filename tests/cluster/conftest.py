"""Fixtures for cluster tests: the run's private redis-server, a key prefix of each test's own,
and configs that point at them."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from signaling.config import Config, load_config
from tests.redis_server import RedisServer, redis_server


@pytest.fixture(scope="session")
def shared_redis() -> Iterator[RedisServer]:
    """One redis-server for the run. A test that stops it takes its own (`private_redis`)."""
    with redis_server() as server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test alone, to stop and start under a running node."""
    with redis_server() as server:
        yield server


@pytest.fixture
def key_prefix() -> str:
    """Keys and channels of this test alone: the run's tests share one server."""
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def cluster_config(tmp_path: Path, key_prefix: str) -> Callable[..., Config]:
    """A loaded config with `cluster.redis_url` pointing at `server`; `extra` is more YAML."""

    def make(
        server: RedisServer, node_id: str = "node-a", extra: str = "", **cluster: object
    ) -> Config:
        lines = [
            f"storage:\n  sqlite_path: {tmp_path / 'data' / 'db.sqlite3'}",
            "cluster:",
            f"  redis_url: {server.url()}",
            f"  node_id: {node_id}",
            f"  key_prefix: '{key_prefix}'",
            *(f"  {key}: {value}" for key, value in cluster.items()),
            extra,
        ]
        path = tmp_path / f"config-{node_id}.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return load_config(path, environ={})

    return make
