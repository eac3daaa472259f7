"""The schema on PostgreSQL: the migrations of `migration_files` (shared SQL plus this backend's
few own statements), each applied once, in order, in one transaction with its
`schema_migrations` row.

Several nodes may start at once against one database; an advisory lock makes them migrate one
after the other, and each finds the versions the one before it applied.
"""

from __future__ import annotations

from signaling.storage.migration_files import migrations
from signaling.storage.postgresql_database import Database
from signaling.storage.rows import now_text

__all__ = ["migrate", "schema_version"]

# pg_advisory_lock's key: any constant the operator's other applications do not use; this one is
# "szim" in ASCII.
_LOCK_KEY = 0x737A696D


async def migrate(database: Database) -> list[int]:
    """Apply pending migrations; return the versions applied."""
    done = []
    async with database.connection() as connection:
        await connection.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            cursor = await connection.execute("SELECT version FROM schema_migrations")
            applied = {row["version"] for row in await cursor.fetchall()}
            for migration in migrations("postgresql"):
                if migration.version in applied:
                    continue
                async with connection.transaction():
                    # no parameters: psycopg sends the file as one simple query, statements and all
                    await connection.execute(migration.sql.encode())
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, now_text()),
                    )
                done.append(migration.version)
        finally:
            if not connection.broken:
                await connection.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


async def schema_version(database: Database) -> int:
    row = await database.one("SELECT MAX(version) AS version FROM schema_migrations")
    return (row["version"] if row is not None else None) or 0
