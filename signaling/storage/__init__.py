"""Persistent state behind a small interface (`Storage`); SQLite is the one backend so far."""

from __future__ import annotations

from signaling.config import StorageConfig
from signaling.storage.base import (
    AlreadyExists,
    ApiKey,
    Appointment,
    AppointmentState,
    CrisisCard,
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
    "CrisisCard",
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
    from signaling.storage.sqlite import SqliteStorage

    return await SqliteStorage.open(config.sqlite_path)
