"""The `sprechzimmer` command, run as a subprocess against a database in tmp_path."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
import urllib.request

import pytest

from signaling.credentials import hash_token, verify_password
from signaling.storage.sqlite import SqliteStorage

PASSWORD = "correct horse battery\n"


def db_path(tmp_path):
    return tmp_path / "data" / "db.sqlite3"


def read_db(tmp_path, method: str, *args):
    async def read():
        storage = await SqliteStorage.open(db_path(tmp_path))
        try:
            return await getattr(storage, method)(*args)
        finally:
            await storage.close()

    return asyncio.run(read())


def assert_one_line_error(result, status: int = 1) -> None:
    assert result.returncode == status, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def cli(run_cli, config_path):
    """Run a command with --config pointing at the tmp config."""

    def run(*args: str, stdin: str = ""):
        return run_cli(*args, "--config", str(config_path), stdin=stdin)

    return run


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["check-config"],
        ["bootstrap"],
        ["purge"],
        ["therapist", "add"],
        ["therapist", "list"],
        ["therapist", "reset-password"],
        ["apikey", "create"],
        ["apikey", "revoke"],
    ],
)
def test_every_command_has_help(run_cli, command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: sprechzimmer")


def test_therapist_add_reads_password_from_stdin_and_stores_its_hash(cli, tmp_path):
    result = cli("therapist", "add", "alice", stdin=PASSWORD)
    assert result.returncode == 0, result.stderr
    therapist = read_db(tmp_path, "get_therapist", "alice")
    assert verify_password(therapist.password_hash, "correct horse battery")


def test_therapist_list_shows_status(cli):
    cli("therapist", "add", "alice", stdin=PASSWORD)
    cli("therapist", "disable", "alice")
    result = cli("therapist", "list")
    assert result.stdout.startswith("alice\tdisabled\t")


def test_duplicate_therapist_is_an_error(cli):
    cli("therapist", "add", "alice", stdin=PASSWORD)
    result = cli("therapist", "add", "alice", stdin=PASSWORD)
    assert_one_line_error(result)
    assert result.stderr == "sprechzimmer: therapist 'alice' already exists\n"


def test_empty_password_is_an_error(cli, tmp_path):
    result = cli("therapist", "add", "alice", stdin="\n")
    assert_one_line_error(result)
    assert "password must not be empty" in result.stderr
    assert read_db(tmp_path, "get_therapist", "alice") is None


def test_short_password_is_an_error(cli):
    result = cli("therapist", "add", "alice", stdin="short\n")
    assert_one_line_error(result)
    assert "at least 8 characters" in result.stderr


def test_invalid_username_is_an_error(cli):
    result = cli("therapist", "add", "Alice Smith", stdin=PASSWORD)
    assert_one_line_error(result, status=2)
    assert "invalid username 'Alice Smith'" in result.stderr


def test_disabling_unknown_therapist_is_an_error(cli):
    result = cli("therapist", "disable", "nobody")
    assert_one_line_error(result)
    assert result.stderr == "sprechzimmer: no therapist named 'nobody'\n"


def test_disable_and_enable_change_the_account(cli, tmp_path):
    cli("therapist", "add", "alice", stdin=PASSWORD)
    assert cli("therapist", "disable", "alice").returncode == 0
    assert read_db(tmp_path, "get_therapist", "alice").disabled
    assert cli("therapist", "enable", "alice").returncode == 0
    assert not read_db(tmp_path, "get_therapist", "alice").disabled


def test_reset_password_replaces_the_hash(cli, tmp_path):
    cli("therapist", "add", "alice", stdin=PASSWORD)
    result = cli("therapist", "reset-password", "alice", stdin="a new passphrase\n")
    assert result.returncode == 0, result.stderr
    therapist = read_db(tmp_path, "get_therapist", "alice")
    assert verify_password(therapist.password_hash, "a new passphrase")


def test_reset_password_of_unknown_therapist_is_an_error(cli):
    assert_one_line_error(cli("therapist", "reset-password", "nobody", stdin=PASSWORD))


def test_apikey_create_prints_the_key_once_and_stores_its_hash(cli, tmp_path):
    result = cli("apikey", "create", "practice")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert len(key) == 43
    stored = read_db(tmp_path, "get_api_key_by_hash", hash_token(key))
    assert stored.name == "practice"
    assert key not in cli("apikey", "list").stdout


def test_apikey_revoke_deactivates_the_key(cli):
    cli("apikey", "create", "practice")
    assert cli("apikey", "revoke", "practice").returncode == 0
    assert cli("apikey", "list").stdout.startswith("practice\trevoked ")


def test_revoking_unknown_apikey_is_an_error(cli):
    result = cli("apikey", "revoke", "nothing")
    assert_one_line_error(result)
    assert result.stderr == "sprechzimmer: no active API key named 'nothing'\n"


def test_bootstrap_creates_database_and_demo_with_printed_password(cli, tmp_path):
    result = cli("bootstrap")
    assert result.returncode == 0, result.stderr
    password = result.stdout.split("Created therapist 'demo' with password: ")[1].split()[0]
    demo = read_db(tmp_path, "get_therapist", "demo")
    assert verify_password(demo.password_hash, password)
    assert (tmp_path / "data" / "session_secret").exists()


def test_bootstrap_again_reuses_everything_and_prints_no_password(cli, tmp_path):
    cli("bootstrap")
    first = read_db(tmp_path, "get_therapist", "demo")
    result = cli("bootstrap")
    assert result.returncode == 0
    assert "password" not in result.stdout
    assert read_db(tmp_path, "get_therapist", "demo") == first


def test_bootstrap_creates_no_demo_when_a_therapist_exists(cli, tmp_path):
    cli("therapist", "add", "alice", stdin=PASSWORD)
    cli("bootstrap")
    assert read_db(tmp_path, "get_therapist", "demo") is None


def test_purge_clears_expired_appointments(cli, tmp_path):
    async def seed():
        storage = await SqliteStorage.open(db_path(tmp_path))
        therapist = await storage.add_therapist("alice", "h")
        past = dt.datetime(2020, 1, 1, 9, tzinfo=dt.UTC)
        appointment = await storage.create_appointment(
            therapist.id, past, 50, past, past + dt.timedelta(hours=2), note="private"
        )
        await storage.close()
        return appointment.id

    appointment_id = asyncio.run(seed())
    result = cli("purge")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Purged 1 appointment(s)")
    assert read_db(tmp_path, "get_appointment", appointment_id).note is None


def test_unknown_command_exits_2(run_cli):
    assert run_cli("frobnicate").returncode == 2


def test_serve_prints_its_url_and_answers_healthz(tmp_path, tcp_port):
    port = tcp_port
    config = tmp_path / "serve.yaml"
    config.write_text(f"server:\n  port: {port}\nstorage:\n  sqlite_path: {db_path(tmp_path)}\n")
    with subprocess.Popen(
        [sys.executable, "-m", "signaling", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        serve_and_stop(process, port)
    assert process.returncode == 0


def serve_and_stop(process: subprocess.Popen, port: int) -> None:
    try:
        first_line = process.stdout.readline()
        assert first_line == f"Sprechzimmer is listening on http://127.0.0.1:{port}\n"
        deadline = time.monotonic() + 30  # a deadline: it answers within a second when idle
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "event=server_started" in process.stderr.read()
