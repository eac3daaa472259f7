"""docs/operating.md quotes every file under deploy/ as it is, and its numbers are the code's."""

from __future__ import annotations

import dataclasses
import re

from signaling.config import SECTIONS, MediaConfig
from tests.deploy.deploy_files import DEPLOY, OPERATING, REPO, deploy_files, example_config

EN_DASH = "\N{EN DASH}"  # the doc writes port ranges as 40000, en dash, 40199
FENCED = re.compile(r"^```[a-z]*\n(.*?)^```$", re.M | re.S)


def _doc() -> str:
    return OPERATING.read_text()


def _firewall_rows() -> list[list[str]]:
    section = _doc().split("## Firewall", 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| port")
    ]


def _row(what: str) -> list[str]:
    (row,) = [row for row in _firewall_rows() if what in row[3]]
    return row


def test_every_file_under_deploy_is_named_in_the_doc():
    doc = _doc()
    missing = [
        str(p.relative_to(REPO)) for p in deploy_files() if str(p.relative_to(REPO)) not in doc
    ]
    assert missing == []


def test_every_file_under_deploy_is_quoted_whole_and_unchanged():
    blocks = {block.rstrip("\n") for block in FENCED.findall(_doc())}
    stale = [
        str(path.relative_to(DEPLOY))
        for path in deploy_files()
        if path.read_text().rstrip("\n") not in blocks
    ]
    assert stale == []


def test_the_firewall_opens_the_default_media_range_and_says_whom_it_serves():
    media = MediaConfig()
    assert (media.udp_port_min, media.udp_port_max) == (
        example_config().media.udp_port_min,
        example_config().media.udp_port_max,
    )
    port, protocol, _, what = _row("media.udp_port_min")
    ports = media.udp_port_max - media.udp_port_min + 1
    assert port == f"{media.udp_port_min}{EN_DASH}{media.udp_port_max}"
    assert protocol == "udp"
    # one port per participant leg, two legs per consultation
    assert f"{ports} ports, {ports} participants, {ports // 2} consultations" in what


def test_the_firewall_opens_coturns_relay_range_from_turnserver_conf():
    conf = dict(
        line.split("=", 1)
        for line in (DEPLOY / "coturn" / "turnserver.conf").read_text().splitlines()
        if line.startswith(("min-port=", "max-port="))
    )
    port, protocol, _, _ = _row("`min-port`..`max-port`")
    assert (port, protocol) == (f"{conf['min-port']}{EN_DASH}{conf['max-port']}", "udp")


def test_the_firewall_opens_turn_and_turns_and_https():
    assert _row("coturn: TURN (")[:2] == ["3478", "udp, tcp"]
    assert _row("coturn: TURN over TLS")[:2] == ["443", "tcp"]
    assert _row("nginx: HTTPS")[:2] == ["443", "tcp"]


def test_the_service_and_metrics_ports_are_named_as_closed():
    config = example_config()
    opened = {row[0] for row in _firewall_rows()}
    assert str(config.server.port) not in opened
    assert str(config.metrics.port) not in opened
    assert f"`{config.server.port}`" in _doc() and f"`{config.metrics.port}`" in _doc()


def test_every_configuration_key_the_doc_names_exists():
    named = set(re.findall(r"`(" + "|".join(SECTIONS) + r")\.([a-z_]+)`", _doc()))
    assert named
    unknown = [
        f"{section}.{key}"
        for section, key in sorted(named)
        if key not in {f.name for f in dataclasses.fields(SECTIONS[section])}
    ]
    assert unknown == []


def test_the_checks_that_need_extra_packages_are_pointed_to():
    assert "scripts/check-deploy" in _doc()
    assert (REPO / "scripts" / "check-deploy").exists()
