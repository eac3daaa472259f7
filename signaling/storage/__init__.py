"""Persistent state behind a small interface (`Storage`): SQLite (the default, one file) or
PostgreSQL (shared by several nodes, docs/scaling.md)."""

from __future__ import annotations

from signaling.config import StorageConfig
from signaling.storage.base import (
    AlreadyExists,
    ApiKey,
    Appointment,
    AppointmentState,
    AuditEntry,
    ConsentRecord,
    CrisisCard,
    HealthCount,
    LoginSession,
    NotFound,
    PurgeResult,
    SessionStatistic,
    Storage,
    StorageError,
    StorageFailure,
    StorageFull,
    StorageUnavailable,
    Therapist,
    TherapistSettings,
)

__all__ = [
    "AlreadyExists",
    "ApiKey",
    "Appointment",
    "AppointmentState",
    "AuditEntry",
    "ConsentRecord",
    "CrisisCard",
    "HealthCount",
    "LoginSession",
    "NotFound",
    "PurgeResult",
    "SessionStatistic",
    "Storage",
    "StorageError",
    "StorageFailure",
    "StorageFull",
    "StorageUnavailable",
    "Therapist",
    "TherapistSettings",
    "open_storage",
]


async def open_storage(config: StorageConfig) -> Storage:
    """Open the configured database, creating it and applying pending migrations."""
    if config.backend == "postgresql":
        # imported here: the SQLite default must run without psycopg ever being loaded
        from signaling.storage.postgresql import PostgresqlStorage

        assert config.postgresql_dsn is not None  # load_config requires it for this backend
        return await PostgresqlStorage.open(
            config.postgresql_dsn, pool_size=config.postgresql_pool_size
        )
    from signaling.storage.sqlite import SqliteStorage

    return await SqliteStorage.open(config.sqlite_path)
