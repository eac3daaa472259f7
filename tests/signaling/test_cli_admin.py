"""`sprechzimmer admin add|remove NAME`: the admin role from the command line, a new account's
one-time set-password link, and the audit log."""

from __future__ import annotations

from signaling.credentials import hash_token
from tests.privacy_canaries import remember
from tests.signaling.test_cli import PASSWORD, assert_one_line_error, read_db
from tests.signaling.test_cli import cli as cli  # the fixture, re-exported for pytest


def test_admin_add_creates_an_admin_and_prints_a_one_time_link_only_once(cli, tmp_path):
    result = cli("admin", "add", "root")
    assert result.returncode == 0, result.stderr
    link = result.stdout.strip()
    assert "/set-password#" in link
    token = link.split("#", 1)[1]
    remember(token)
    root = read_db(tmp_path, "get_therapist", "root")
    assert root.is_admin
    # the link works once: redeeming it through storage sets the password
    used = read_db(tmp_path, "redeem_password_link", hash_token(token), root.created_at, "h")
    assert used is not None and used.username == "root"
    entries = read_db(tmp_path, "list_audit_entries", 10)
    assert [(e.actor, e.action, e.target) for e in entries][::-1] == [
        ("cli", "therapist_added", "root"),
        ("cli", "admin_granted", "root"),
    ]


def test_admin_add_on_an_existing_account_grants_the_role_without_a_link(cli, tmp_path):
    assert cli("therapist", "add", "alice", stdin=PASSWORD).returncode == 0
    result = cli("admin", "add", "alice")
    assert result.returncode == 0, result.stderr
    assert "set-password" not in result.stdout
    assert read_db(tmp_path, "get_therapist", "alice").is_admin
    assert cli("admin", "remove", "alice").returncode == 0
    assert not read_db(tmp_path, "get_therapist", "alice").is_admin


def test_admin_commands_refuse_bad_and_unknown_names_in_one_line(cli):
    assert_one_line_error(cli("admin", "add", "Bad Name"), status=2)
    assert_one_line_error(cli("admin", "remove", "nobody"), status=1)
