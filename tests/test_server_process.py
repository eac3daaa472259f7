"""tests/server_process.py: the order in which a private test server is prepared, started and
stopped, and that its temp dir and password never outlive it. A stand-in server records what is
asked of it; the real ones (PostgreSQL, Redis) run in the storage and cluster tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.privacy_canaries import CANARIES
from tests.server_process import LOG_TAIL_CHARACTERS, ServerProcess, running_server


class StandIn(ServerProcess):
    fail_start = False

    def __init__(self, root: Path, port: int, password: str) -> None:
        super().__init__(root, port, password)
        self.calls: list[str] = []

    def prepare(self) -> None:
        self.calls.append("prepare")
        (self.root / "server.log").write_text("prepared\n")

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_start:
            raise RuntimeError(f"did not start:\n{self.log_tail()}")

    def stop_at_exit(self) -> None:
        self.calls.append("stop_at_exit")


class StandInThatFails(StandIn):
    fail_start = True


def test_a_server_is_prepared_started_and_stopped_around_its_use():
    with running_server(StandIn, "sprechzimmer-standin-") as server:
        assert server.calls == ["prepare", "start"]
        assert server.root.is_dir() and server.root.name.startswith("sprechzimmer-standin-")
    assert server.calls == ["prepare", "start", "stop_at_exit"]
    assert not server.root.exists()


def test_the_password_is_random_and_watched_by_the_privacy_check():
    with (
        running_server(StandIn, "sprechzimmer-standin-") as first,
        running_server(StandIn, "sprechzimmer-standin-") as second,
    ):
        assert first.password != second.password
        assert first.port != second.port
    assert {first.password, second.password} <= CANARIES


def test_a_failing_test_still_stops_the_server_and_deletes_its_dir():
    with (
        pytest.raises(LookupError),
        running_server(StandIn, "sprechzimmer-standin-") as server,
    ):
        raise LookupError("the test failed")
    assert server.calls[-1] == "stop_at_exit"
    assert not server.root.exists()


def test_a_server_that_does_not_start_leaves_no_dir_and_its_error_quotes_the_log():
    made: list[StandIn] = []

    def new_server(root: Path, port: int, password: str) -> StandIn:
        made.append(StandInThatFails(root, port, password))
        return made[-1]

    with (
        pytest.raises(RuntimeError, match="did not start:\nprepared"),
        running_server(new_server, "sprechzimmer-standin-"),
    ):
        pytest.fail("a server that did not start was handed out")
    assert made[0].calls == ["prepare", "start"]
    assert not made[0].root.exists()


def test_an_error_quotes_only_the_end_of_a_long_log(tmp_path: Path):
    server = StandIn(tmp_path, 0, "unused")
    assert server.log() == "" and server.log_tail() == ""
    (tmp_path / "server.log").write_text("early\n" + "x" * LOG_TAIL_CHARACTERS)
    assert server.log_tail() == "x" * LOG_TAIL_CHARACTERS
