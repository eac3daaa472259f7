"""Without `cluster.redis_url` a node is alone exactly as before and never loads redis-py; the
cluster keys are checked with errors that name the key and never echo a secret."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from signaling.config import ConfigError, load_config


def test_a_node_without_redis_configured_never_imports_redis(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(
        f"storage:\n  sqlite_path: {tmp_path / 'db.sqlite3'}\nmetrics:\n  listen: ''\n",
        encoding="utf-8",
    )
    # the whole app built and its startup run, as `serve` does, up to the first request
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import signaling.app, signaling.cli
        from aiohttp.test_utils import TestClient, TestServer
        from signaling.config import load_config
        from signaling.storage import open_storage

        async def main():
            config = load_config({str(config)!r})
            storage = await open_storage(config.storage)
            app = signaling.app.create_app(config, storage, session_secret="s" * 32)
            async with TestClient(TestServer(app)) as client:
                assert (await client.get("/healthz")).status == 200
                assert (await client.get("/readyz")).status in (200, 503)
                response = await client.post("/api/therapist/login", json={{}})
                assert response.status in (400, 403), response.status
            await storage.close()

        asyncio.run(main())
        print("loaded:", sorted(m for m in sys.modules if m.split(".")[0] == "redis"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout


def test_the_redis_url_may_come_from_the_environment(tmp_path: Path):
    path = tmp_path / "c.yaml"
    path.write_text("cluster:\n  node_id: a\n")
    config = load_config(path, environ={"SPRECHZIMMER_REDIS_URL": "redis://:pw@10.0.0.5:6379/0"})
    assert config.cluster.enabled
    assert config.cluster.location == "redis://10.0.0.5:6379/0"


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("cluster:\n  node_id: 'a b'\n", "cluster.node_id: must be 1 to 64 characters"),
        (
            "cluster:\n  heartbeat_interval_seconds: 5\n  heartbeat_ttl_seconds: 6\n",
            "cluster.heartbeat_ttl_seconds: must be at least twice",
        ),
        ("cluster:\n  drain_timeout_seconds: -1\n", "cluster.drain_timeout_seconds: must be"),
        (
            "cluster:\n  heartbeat_ttl_seconds: 40\n",
            "cluster.dead_room_grace_seconds: must be at least cluster.heartbeat_ttl_seconds",
        ),
    ],
)
def test_bad_cluster_keys_are_named(tmp_path: Path, yaml: str, message: str):
    path = tmp_path / "c.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})
