"""API keys of the integration API (`/api/v1`): only their hashes are kept."""

from __future__ import annotations

from signaling.storage.base import ApiKey, NotFound
from signaling.storage.rows import api_key_from_row, now_text
from signaling.storage.sqlite_database import Database

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
        return api_key_from_row(row)  # type: ignore[arg-type]

    def list_all(self) -> list[ApiKey]:
        return [
            api_key_from_row(r)
            for r in self._database.all("SELECT * FROM api_keys ORDER BY name, id")
        ]

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self._database.one("SELECT * FROM api_keys WHERE key_hash = ?", (key_hash,))
        return None if row is None else api_key_from_row(row)

    def revoke(self, name: str) -> None:
        cursor = self._database.write(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (now_text(), name),
        )
        if cursor.rowcount == 0:
            raise NotFound(f"no active API key named {name!r}")
