"""The schema: the migrations of `migration_files`, each applied once, in order, in one
transaction with its `schema_migrations` row."""

from __future__ import annotations

from signaling.storage.migration_files import migrations
from signaling.storage.rows import now_text
from signaling.storage.sqlite_database import Database

__all__ = ["migrate", "schema_version"]


def migrate(database: Database) -> list[int]:
    """Apply pending migrations; return the versions applied."""
    db = database.db
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    done = []
    for migration in migrations("sqlite"):
        if migration.version in applied:
            continue
        # Values are safe to inline: version is an int and name matched the file name pattern.
        script = (
            f"BEGIN;\n{migration.sql}\n;INSERT INTO schema_migrations (version, name, applied_at) "
            f"VALUES ({migration.version}, '{migration.name}', '{now_text()}');\nCOMMIT;"
        )
        try:
            db.executescript(script)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        done.append(migration.version)
    return done


def schema_version(database: Database) -> int:
    row = database.one("SELECT MAX(version) FROM schema_migrations")
    return (row[0] if row is not None else None) or 0
