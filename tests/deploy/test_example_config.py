"""deploy/config.yaml, the example production configuration, is valid and usable as it stands."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from signaling.turn_credentials import ice_servers_for_participant, turn_password
from tests.deploy.deploy_files import EXAMPLE_CONFIG, SPRECHZIMMER, example_config


def _copy_with_data_in(tmp_path: Path) -> Path:
    """The example, with its database moved from /var/lib/sprechzimmer into tmp_path."""
    text = EXAMPLE_CONFIG.read_text()
    assert text.count("/var/lib/sprechzimmer/sprechzimmer.sqlite3") == 1
    copy = tmp_path / "config.yaml"
    copy.write_text(
        text.replace("/var/lib/sprechzimmer/", f"{tmp_path}/sprechzimmer-data/"),
    )
    return copy


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPRECHZIMMER_")}
    env["SPRECHZIMMER_TURN_SECRET"] = "a-turn-secret-for-the-test"
    return subprocess.run(
        [str(SPRECHZIMMER), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_the_example_passes_check_config():
    result = _run("check-config", str(EXAMPLE_CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{EXAMPLE_CONFIG}: ok"


def test_the_example_bootstraps_a_data_directory_only_the_service_user_can_enter(tmp_path):
    config = _copy_with_data_in(tmp_path)
    result = _run("bootstrap", "--config", str(config))
    assert result.returncode == 0, result.stderr
    data = tmp_path / "sprechzimmer-data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "sprechzimmer.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "session_secret").stat().st_mode) == 0o600


def test_the_example_keeps_secrets_out_of_the_file():
    config = example_config()
    assert config.media.turn_secret is None
    assert config.server.session_secret is None


def test_the_turn_secret_from_the_environment_gives_every_turn_url_rest_credentials():
    config = example_config({"SPRECHZIMMER_TURN_SECRET": "shared-with-coturn"})
    (server,) = ice_servers_for_participant(config.media, now=1_700_000_000)
    expiry, _, _ = server["username"].partition(":")
    assert int(expiry) == 1_700_000_000 + config.media.turn_credential_ttl_seconds
    assert server["credential"] == turn_password("shared-with-coturn", server["username"])


def test_the_example_serves_on_loopback_behind_a_trusted_local_proxy():
    server = example_config().server
    assert server.host == "127.0.0.1"
    assert "127.0.0.1/32" in server.trusted_proxies
    assert server.public_url.startswith("https://")
    assert not server.tls


def test_the_media_range_has_a_port_for_every_participant_of_every_room():
    config = example_config()
    ports = config.media.udp_port_max - config.media.udp_port_min + 1
    assert 2 * config.limits.max_rooms <= ports


def test_the_metrics_endpoint_stays_on_loopback():
    assert example_config().metrics.host == "127.0.0.1"
