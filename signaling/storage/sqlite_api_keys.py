"""API keys of the integration API (`/api/v1`): only their hashes are kept."""

from __future__ import annotations

import sqlite3

from signaling.storage.base import ApiKey, NotFound
from signaling.storage.sqlite_database import Database, now_text, optional_time, parse_time

__all__ = ["ApiKeys"]


class ApiKeys:
    def __init__(self, database: Database) -> None:
        self._database = database

    def add(self, name: str, key_hash: str) -> ApiKey:
        cursor = self._database.write(
            "INSERT INTO api_keys (name, key_hash, created_at) VALUES (?, ?, ?)",
            (name, key_hash, now_text()),
        )
        row = self._database.one("SELECT * FROM api_keys WHERE id = ?", (cursor.lastrowid,))
        return _api_key(row)  # type: ignore[arg-type]

    def list_all(self) -> list[ApiKey]:
        return [_api_key(r) for r in self._database.all("SELECT * FROM api_keys ORDER BY name, id")]

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self._database.one("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        return None if row is None else _api_key(row)

    def revoke(self, name: str) -> None:
        cursor = self._database.write(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (now_text(), name),
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no active API key named {name!r}")


def _api_key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        key_hash=row["key_hash"],
        created_at=parse_time(row["created_at"]),
        revoked_at=optional_time(row["revoked_at"]),
    )
