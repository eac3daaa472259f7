"""Where the deployment files live, and the example production configuration they must match."""

from __future__ import annotations

import sys
from pathlib import Path

from signaling.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OPERATING = REPO / "docs" / "operating.md"

EXAMPLE_CONFIG = DEPLOY / "config.yaml"
UNIT = DEPLOY / "systemd" / "sprechzimmer.service"
NGINX_SITE = DEPLOY / "nginx" / "sprechzimmer.conf"
TURNSERVER_CONF = DEPLOY / "coturn" / "turnserver.conf"
COTURN_DROP_IN = DEPLOY / "coturn" / "coturn-bind-443.conf"
PROMETHEUS = DEPLOY / "prometheus" / "sprechzimmer.yml"
BACKUP_SCRIPT = DEPLOY / "backup" / "sprechzimmer-backup"
BACKUP_SERVICE = DEPLOY / "backup" / "sprechzimmer-backup.service"
BACKUP_TIMER = DEPLOY / "backup" / "sprechzimmer-backup.timer"

# The console script of the environment running the tests (the project's .venv).
SPRECHZIMMER = Path(sys.prefix) / "bin" / "sprechzimmer"

# Where the install steps in docs/operating.md put things.
INSTALLED_CONFIG = "/etc/sprechzimmer/config.yaml"
INSTALLED_SCRIPT = "/opt/sprechzimmer/venv/bin/sprechzimmer"
INSTALLED_BACKUP_SCRIPT = "/usr/local/sbin/sprechzimmer-backup"
DATA_DIR = "/var/lib/sprechzimmer"


def example_config(environ: dict[str, str] | None = None) -> Config:
    return load_config(EXAMPLE_CONFIG, environ={} if environ is None else environ)


def deploy_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.is_file())


def unit_settings(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values in order]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None:
            raise ValueError(f"{path}: setting outside a section: {line}")
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path}: not key=value: {line}")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections
