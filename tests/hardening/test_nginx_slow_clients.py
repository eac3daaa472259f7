"""The nginx example bounds slow clients like the service does (signaling.connection_guard): the
same header deadline, the same per-address connection cap, and 429 for one over it."""

from __future__ import annotations

from signaling.config import LimitsConfig
from tests.deploy.deploy_files import NGINX_SITE
from tests.deploy.nginx_conf import Directive, parse


def _site() -> Directive:
    return parse(NGINX_SITE.read_text())


def _tls_server() -> Directive:
    (server,) = [s for s in _site().all("server") if any("ssl" in d.args for d in s.all("listen"))]
    return server


def test_nginx_waits_for_a_request_head_no_longer_than_the_service():
    (timeout,) = _tls_server().one("client_header_timeout").args
    assert timeout == f"{LimitsConfig().header_timeout_seconds}s"


def test_nginx_waits_for_a_trickling_body_no_longer_than_for_a_head():
    (timeout,) = _tls_server().one("client_body_timeout").args
    assert timeout == f"{LimitsConfig().header_timeout_seconds}s"


def test_nginx_caps_connections_per_address_like_the_service_and_answers_429():
    (zone,) = _site().all("limit_conn_zone")
    assert zone.args[0] == "$binary_remote_addr"
    name = zone.args[1].removeprefix("zone=").split(":")[0]
    server = _tls_server()
    assert server.one("limit_conn").args == [name, str(LimitsConfig().connections_per_address)]
    assert server.one("limit_conn_status").args == ["429"]
