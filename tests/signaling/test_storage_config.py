"""storage.backend and the PostgreSQL DSN: from the file or SPRECHZIMMER_DATABASE_URL, checked at
load time, and never shown with its password."""

from __future__ import annotations

import pytest

from signaling.config import ConfigError, load_config

SECRET = "s3cret-pw"


def test_the_default_backend_is_sqlite(write_config):
    config = load_config(write_config(""))
    assert config.storage.backend == "sqlite"
    assert config.storage.postgresql_dsn is None


def test_postgresql_without_a_dsn_is_refused_naming_the_key(write_config):
    with pytest.raises(ConfigError, match=r"storage\.postgresql_dsn: is required"):
        load_config(write_config("storage:\n  backend: postgresql\n"), environ={})


def test_an_unknown_backend_is_refused(write_config):
    with pytest.raises(ConfigError, match=r"storage\.backend: must be one of"):
        load_config(write_config("storage:\n  backend: mysql\n"))


def test_the_environment_dsn_wins_and_its_password_is_never_shown(write_config):
    path = write_config(
        "storage:\n  backend: postgresql\n  postgresql_dsn: postgresql://x@file-host/a\n"
    )
    dsn = f"postgresql://app:{SECRET}@db.internal:5432/sprechzimmer?sslmode=require"
    config = load_config(path, environ={"SPRECHZIMMER_DATABASE_URL": dsn})
    assert config.storage.postgresql_dsn == dsn
    assert config.storage.location == "postgresql://db.internal:5432/sprechzimmer"


def test_a_bad_environment_dsn_names_the_variable_not_its_value(write_config):
    path = write_config("storage:\n  backend: postgresql\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"SPRECHZIMMER_DATABASE_URL": f"mysql://u:{SECRET}@h/d"})
    assert "SPRECHZIMMER_DATABASE_URL: must be a postgresql:// URL" in str(caught.value)
    assert SECRET not in str(caught.value)
