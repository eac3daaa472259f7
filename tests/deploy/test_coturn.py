"""deploy/coturn/turnserver.conf speaks the service's TURN REST scheme, relays only to the relay,
and fits the example configuration's ports.

Starting coturn on the file needs Debian's coturn package, which a fresh machine lacks:
scripts/check-deploy runs it, with credentials minted by signaling/turn_credentials.py.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from tests.deploy.deploy_files import TURNSERVER_CONF, example_config

COTURN_OPTIONS = Path(__file__).with_name("coturn_4.6.1_options.txt")


def _settings() -> list[tuple[str, str]]:
    settings = []
    for raw in TURNSERVER_CONF.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.append((key, value))
    return settings


def _values(key: str) -> list[str]:
    return [value for name, value in _settings() if name == key]


def _one(key: str) -> str:
    (value,) = _values(key)
    return value


def _ranges(key: str) -> list[tuple[ipaddress._BaseAddress, ipaddress._BaseAddress]]:
    ranges = []
    for value in _values(key):
        low, _, high = value.partition("-")
        ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high or low)))
    return ranges


def _in(address: str, ranges) -> bool:  # type: ignore[no-untyped-def]
    ip = ipaddress.ip_address(address)
    return any(low.version == ip.version and low <= ip <= high for low, high in ranges)


def test_every_key_is_an_option_of_debian_12s_coturn():
    known = {line for line in COTURN_OPTIONS.read_text().splitlines() if line and line[0] != "#"}
    assert {key for key, _ in _settings()} <= known


def test_credentials_are_the_rest_scheme_with_a_shared_secret():
    assert _values("use-auth-secret") == [""]
    assert _one("static-auth-secret")
    assert _one("realm") == "turn.example.org"


def test_the_admin_cli_is_off():
    assert _values("no-cli") == [""]


def test_the_relay_range_does_not_overlap_the_media_range():
    media = example_config().media
    low, high = int(_one("min-port")), int(_one("max-port"))
    assert low <= high
    assert high < media.udp_port_min or low > media.udp_port_max


def test_private_and_special_ranges_cannot_be_reached_through_turn():
    denied = _ranges("denied-peer-ip")
    for address in (
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "127.0.0.1",
        "0.0.0.1",
        "fd00::1",
        "fe80::1",
        "::1",
        "::ffff:10.0.0.1",
    ):
        assert _in(address, denied), address
    assert not _in("8.8.8.8", denied)


def test_the_one_allowed_peer_is_the_relays_own_address():
    assert _values("allowed-peer-ip") == list(example_config().media.listen_addresses)


def test_the_ice_servers_of_the_example_name_coturns_ports():
    ports = {_one("listening-port"), _one("tls-listening-port")}
    (server,) = example_config().media.ice_servers
    for url in server.urls:
        scheme, _, rest = url.partition(":")
        host, _, port = urlsplit(f"//{rest}").netloc.partition(":")
        assert host == _one("realm")
        assert port in ports
        assert (scheme == "turns") == (port == _one("tls-listening-port"))
