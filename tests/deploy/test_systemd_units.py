"""The systemd units in deploy/ pass `systemd-analyze verify` and keep their hardening.

`systemd-analyze` comes with Debian's systemd package, which every Debian machine and CI has; it
checks the files offline, without a running systemd.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.deploy.deploy_files import (
    BACKUP_SCRIPT,
    BACKUP_SERVICE,
    BACKUP_TIMER,
    COTURN_DROP_IN,
    DATA_DIR,
    INSTALLED_BACKUP_SCRIPT,
    INSTALLED_CONFIG,
    INSTALLED_SCRIPT,
    SPRECHZIMMER,
    UNIT,
    example_config,
    unit_settings,
)


def _verify(tmp_path: Path, *units: Path) -> subprocess.CompletedProcess[str]:
    """verify needs the commands to exist: point them at this checkout's copies."""
    copies = []
    for unit in units:
        copy = tmp_path / unit.name
        copy.write_text(
            unit.read_text()
            .replace(INSTALLED_SCRIPT, str(SPRECHZIMMER))
            .replace(INSTALLED_BACKUP_SCRIPT, str(BACKUP_SCRIPT))
        )
        copies.append(str(copy))
    return subprocess.run(
        ["systemd-analyze", "verify", *copies],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )


def test_the_service_unit_passes_systemd_analyze_verify(tmp_path):
    result = _verify(tmp_path, UNIT)
    # verify exits 0 on unknown keys too and only warns: any output is a finding
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_backup_service_and_timer_pass_systemd_analyze_verify(tmp_path):
    result = _verify(tmp_path, BACKUP_SERVICE, BACKUP_TIMER)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_service_unit_scores_ok_in_systemd_analyze_security(tmp_path):
    # --threshold is in tenths of the printed exposure level (0.0 safe .. 10.0 exposed): 25 is
    # "2.5"; the unit scores 1.7 ("OK") with systemd 252.
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--threshold=25", str(UNIT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-400:] + result.stderr


def test_the_service_runs_the_installed_config_as_its_own_user():
    service = unit_settings(UNIT)["Service"]
    assert service["User"] == service["Group"] == ["sprechzimmer"]
    assert service["ExecStartPre"] == [f"{INSTALLED_SCRIPT} check-config {INSTALLED_CONFIG}"]
    assert service["ExecStart"] == [f"{INSTALLED_SCRIPT} serve --config {INSTALLED_CONFIG}"]


def test_the_service_can_write_only_its_data_directory():
    service = unit_settings(UNIT)["Service"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == [DATA_DIR]
    assert str(example_config().storage.data_dir) == DATA_DIR
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[key] == ["yes"], key


def test_the_service_has_no_capabilities_and_only_the_address_families_it_uses():
    service = unit_settings(UNIT)["Service"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"]


def test_the_service_reloads_tls_on_sighup_and_drains_on_sigterm_within_15_seconds():
    service = unit_settings(UNIT)["Service"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["TimeoutStopSec"] == ["15"]


def test_the_file_limit_covers_a_socket_per_port_of_the_media_range_with_room_to_spare():
    media = example_config().media
    ports = media.udp_port_max - media.udp_port_min + 1
    (limit,) = unit_settings(UNIT)["Service"]["LimitNOFILE"]
    assert int(limit) >= 4 * ports


def test_the_coturn_drop_in_grants_only_binding_low_ports():
    service = unit_settings(COTURN_DROP_IN)["Service"]
    assert service == {
        "AmbientCapabilities": ["CAP_NET_BIND_SERVICE"],
        "CapabilityBoundingSet": ["CAP_NET_BIND_SERVICE"],
    }


def test_the_backup_runs_as_the_service_user_on_the_installed_database():
    service = unit_settings(BACKUP_SERVICE)["Service"]
    assert service["User"] == ["sprechzimmer"]
    (command,) = service["ExecStart"]
    assert command.split()[:2] == [
        INSTALLED_BACKUP_SCRIPT,
        str(example_config().storage.sqlite_path),
    ]
