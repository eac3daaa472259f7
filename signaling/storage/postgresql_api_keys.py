"""API keys of the integration API on PostgreSQL (mirrors sqlite_api_keys.py)."""

from __future__ import annotations

from signaling.storage.base import ApiKey, NotFound
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import api_key_from_row, now_text

__all__ = ["ApiKeys"]


class ApiKeys:
    def __init__(self, database: Database) -> None:
        self._database = database

    async def add(self, name: str, key_hash: str) -> ApiKey:
        row = await self._database.one(
            "INSERT INTO api_keys (name, key_hash, created_at) VALUES (%s, %s, %s) RETURNING *",
            (name, key_hash, now_text()),
        )
        return api_key_from_row(row)  # type: ignore[arg-type]

    async def list_all(self) -> list[ApiKey]:
        rows = await self._database.all('SELECT * FROM api_keys ORDER BY name COLLATE "C", id')
        return [api_key_from_row(row) for row in rows]

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self._database.one("SELECT * FROM api_keys WHERE key_hash = %s", (key_hash,))
        return None if row is None else api_key_from_row(row)

    async def revoke(self, name: str) -> None:
        changed = await self._database.write(
            "UPDATE api_keys SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL",
            (now_text(), name),
        )
        if changed == 0:
            raise NotFound(f"no active API key named {name!r}")
