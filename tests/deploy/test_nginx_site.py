"""deploy/nginx/sprechzimmer.conf proxies to the example configuration's port, upgrades /ws,
keeps /metrics and the access log out, and its limits match the service's own.

`nginx -t` on the file needs Debian's nginx package, which a fresh machine lacks:
scripts/check-deploy runs it where nginx is installed.
"""

from __future__ import annotations

from signaling.app import HSTS
from signaling.http_errors import MAX_BODY_BYTES
from signaling.ws_endpoint import HEARTBEAT_SECONDS
from tests.deploy.deploy_files import NGINX_SITE, example_config
from tests.deploy.nginx_conf import Directive, parse

# The protocol (docs/protocol.md): a connection silent for 30 s is closed by the service.
SILENCE_CLOSE_SECONDS = 30


def _site() -> Directive:
    return parse(NGINX_SITE.read_text())


def _tls_server() -> Directive:
    (server,) = [s for s in _site().all("server") if any("ssl" in d.args for d in s.all("listen"))]
    return server


def _location(path: str) -> Directive:
    server = _tls_server()
    (location,) = [loc for loc in server.all("location") if loc.args[-1] == path]
    return location


def _headers(location: Directive) -> dict[str, str]:
    return {d.args[0]: d.args[1] for d in location.all("proxy_set_header")}


def _seconds(value: str) -> int:
    assert value.endswith("s")
    return int(value[:-1])


def test_the_upstream_is_the_example_configs_host_and_port():
    server = example_config().server
    assert _site().one("upstream").one("server").args == [f"{server.host}:{server.port}"]


def test_plain_http_only_redirects_to_https():
    (plain,) = [
        s for s in _site().all("server") if not any("ssl" in d.args for d in s.all("listen"))
    ]
    assert not [d for d in plain.walk() if d.name == "proxy_pass"]
    redirect = next(loc for loc in plain.all("location") if loc.args == ["/"])
    assert redirect.one("return").args == ["301", "https://$host$request_uri"]


def test_https_sends_the_same_hsts_header_the_service_sends_when_it_terminates_tls():
    (header,) = _tls_server().all("add_header")
    assert header.args == ["Strict-Transport-Security", HSTS, "always"]


def test_the_body_limit_matches_the_services():
    (limit,) = _tls_server().one("client_max_body_size").args
    assert limit == "64k" and MAX_BODY_BYTES == 64 * 1024


def test_the_websocket_is_upgraded_and_outlives_the_services_own_timeouts():
    ws = _location("/ws")
    assert ws.one("proxy_http_version").args == ["1.1"]
    headers = _headers(ws)
    assert headers["Upgrade"] == "$http_upgrade"
    connection_map = _site().one("map")
    assert connection_map.args == ["$http_upgrade", headers["Connection"]]
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        seconds = _seconds(ws.one(timeout).args[0])
        assert seconds > max(HEARTBEAT_SECONDS, SILENCE_CLOSE_SECONDS), timeout


def test_every_proxied_location_passes_the_client_address_and_scheme():
    proxied = [loc for loc in _tls_server().all("location") if loc.all("proxy_pass")]
    assert len(proxied) == 2
    for location in proxied:
        assert location.one("proxy_pass").args == ["http://sprechzimmer"]
        headers = _headers(location)
        assert headers["X-Forwarded-For"] == "$remote_addr"
        assert headers["X-Forwarded-Proto"] == "$scheme"
        assert headers["Host"] == "$host"


def test_metrics_are_not_proxied():
    assert _location("/metrics").one("return").args == ["404"]
    metrics_port = str(example_config().metrics.port)
    assert not [d for d in _site().walk() if any(metrics_port in arg for arg in d.args)]


def test_nothing_writes_an_access_log_with_invite_tokens_and_full_addresses():
    for server in _site().all("server"):
        assert server.one("access_log").args == ["off"]
