"""deploy/prometheus/sprechzimmer.yml scrapes the example configuration's metrics.listen.

`promtool check config` needs Debian's prometheus package: scripts/check-deploy runs it.
"""

from __future__ import annotations

import yaml

from tests.deploy.deploy_files import PROMETHEUS, example_config


def test_the_scrape_job_targets_metrics_listen_on_loopback():
    (job,) = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == [example_config().metrics.listen]
