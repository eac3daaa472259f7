"""The schema: numbered SQL files in `migrations/`, each applied once, in order, in one
transaction with its `schema_migrations` row."""

from __future__ import annotations

import re
from importlib import resources

from signaling.storage.sqlite_database import Database, now_text

__all__ = ["migrate", "schema_version"]

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrate(database: Database) -> list[int]:
    """Apply pending migrations; return the versions applied."""
    db = database.db
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    done = []
    for version, name, sql in _migrations():
        if version in applied:
            continue
        # Values are safe to inline: version is an int and name matched _MIGRATION_NAME.
        script = (
            f"BEGIN;\n{sql}\n;INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({version}, '{name}', '{now_text()}');\nCOMMIT;"
        )
        try:
            db.executescript(script)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        done.append(version)
    return done


def schema_version(database: Database) -> int:
    row = database.one("SELECT MAX(version) FROM schema_migrations")
    return (row[0] if row is not None else None) or 0


def _migrations() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("signaling.storage").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)
