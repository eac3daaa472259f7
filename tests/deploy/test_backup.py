"""deploy/backup/sprechzimmer-backup takes a consistent copy of the live WAL database.

It uses the sqlite3 shell from Debian's sqlite3 package, which the machines have.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

from signaling.storage.sqlite import SqliteStorage
from tests.deploy.deploy_files import BACKUP_SCRIPT


def _backup(db: Path, target: Path, keep_days: int = 7) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BACKUP_SCRIPT), str(db), str(target), str(keep_days)],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_backup_of_the_running_database_holds_writes_still_in_the_wal(tmp_path):
    db = tmp_path / "data" / "sprechzimmer.sqlite3"
    storage = await SqliteStorage.open(db)
    try:
        await storage.add_therapist("alice", "not-a-real-hash")
        assert (tmp_path / "data" / "sprechzimmer.sqlite3-wal").stat().st_size > 0
        result = _backup(db, tmp_path / "backups")
    finally:
        await storage.close()
    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip())
    assert copy.parent == tmp_path / "backups"
    with sqlite3.connect(copy) as connection:
        names = [row[0] for row in connection.execute("SELECT username FROM therapists")]
    assert names == ["alice"]


def test_backups_are_readable_by_their_owner_only(tmp_path):
    db = tmp_path / "db.sqlite3"
    sqlite3.connect(db).close()
    result = _backup(db, tmp_path / "backups")
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(result.stdout.strip()).stat().st_mode) == 0o600


def test_backups_older_than_the_kept_days_are_deleted(tmp_path):
    db = tmp_path / "db.sqlite3"
    sqlite3.connect(db).close()
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "sprechzimmer-20200101T000000Z.sqlite3"
    old.write_bytes(b"")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    result = _backup(db, backups, keep_days=7)
    assert result.returncode == 0, result.stderr
    assert not old.exists()
    assert Path(result.stdout.strip()).exists()


def test_a_missing_database_fails_without_creating_one_or_a_backup(tmp_path):
    db = tmp_path / "db.sqlite3"
    result = _backup(db, tmp_path / "backups")
    assert result.returncode == 1
    assert "no database" in result.stderr
    assert not db.exists()
    assert not (tmp_path / "backups").exists()
