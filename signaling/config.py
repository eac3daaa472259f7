"""The configuration schema and the only code that reads configuration.

One YAML file holds every setting; `config/default.yaml` lists each key with a comment and
`docs/configuration.md` documents it. Each section is a frozen dataclass whose fields carry their
default and a parser that checks type and range. `load_config(path)` returns a `Config` or raises
`ConfigError`, whose `str()` is one line naming the file, the key and what is wrong, e.g.
``config/x.yaml: server.port: must be between 1 and 65535, got 70000``.

Secrets may also come from environment variables (`SPRECHZIMMER_…`); a non-empty variable wins
over the file, so a secret need not be written into a file at all.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AppointmentsConfig",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "IceServer",
    "LimitsConfig",
    "LoggingConfig",
    "MailConfig",
    "MediaConfig",
    "MetricsConfig",
    "OidcConfig",
    "PrivacyConfig",
    "ServerConfig",
    "StorageConfig",
    "load_config",
]


class ConfigError(Exception):
    """Bad configuration. `str()` is the one-line message shown to the operator."""


class _Invalid(Exception):
    """Raised by a field parser; the loader adds the file name and key."""

    def __init__(self, message: str, key_suffix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.key_suffix = key_suffix


# --- field parsers: each takes the raw YAML value and returns the typed value or raises _Invalid


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


Parser = Callable[[Any], Any]


def _int(low: int, high: int) -> Parser:
    def parse(value: Any) -> int:
        # YAML booleans are Python ints; "port: true" is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be an integer, got {_describe(value)}")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def _seconds(low: float, high: float) -> Parser:
    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Invalid(f"must be a number of seconds, got {_describe(value)}")
        if not low <= value <= high:
            raise _Invalid(f"must be between {low:g} and {high:g}, got {value:g}")
        return float(value)

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"must be true or false, got {_describe(value)}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_describe(value)}")
    return value


def _optional(parse: Parser) -> Parser:
    def parse_optional(value: Any) -> Any:
        return None if value is None else parse(value)

    return parse_optional


def _non_empty_str(value: Any) -> str:
    text = _str(value)
    if not text:
        raise _Invalid("must not be empty")
    return text


def _choice(*choices: str) -> Parser:
    def parse(value: Any) -> str:
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise _Invalid(f"must be one of {allowed}, got {_describe(value)}")
        return value

    return parse


def _list_of(parse_item: Parser) -> Parser:
    def parse(value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"must be a list, got {_describe(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(parse_item(item))
            except _Invalid as exc:
                raise _Invalid(exc.message, f"[{index}]{exc.key_suffix}") from None
        return tuple(items)

    return parse


def _ip_address(value: Any) -> str:
    text = _str(value)
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Invalid(f"must be an IP address, got {text!r}") from None


def _ip_network(value: Any) -> str:
    text = _str(value)
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise _Invalid(f"must be an IP address or CIDR network, got {text!r}") from None


def _http_url(value: Any) -> str:
    text = _str(value)
    if not text.startswith(("http://", "https://")) or len(text.split("://", 1)[1]) == 0:
        raise _Invalid(f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def _host_port(value: Any) -> str:
    """'host:port', '[v6]:port', or '' (disabled)."""
    text = _str(value)
    if text == "":
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _Invalid(f"must be host:port with a port between 1 and 65535, or '', got {text!r}")
    return text


def _readable_file(value: Any) -> str:
    text = _non_empty_str(value)
    try:
        with open(text, "rb"):
            pass
    except OSError as exc:
        raise _Invalid(f"cannot read file {text}: {exc.strerror or exc}") from None
    return text


_ICE_URL_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def _ice_url(value: Any) -> str:
    text = _str(value)
    if not text.startswith(_ICE_URL_SCHEMES):
        raise _Invalid(f"must start with stun:, stuns:, turn: or turns:, got {text!r}")
    return text


def _ice_server(value: Any) -> IceServer:
    if not isinstance(value, dict):
        raise _Invalid(f"must be a mapping with 'urls', got {_describe(value)}")
    unknown = sorted(set(value) - {"urls", "username", "credential"})
    if unknown:
        raise _Invalid("unknown key", f".{unknown[0]}")
    if "urls" not in value:
        raise _Invalid("is required", ".urls")
    parsed: dict[str, Any] = {}
    for key, parse in (
        ("urls", _list_of(_ice_url)),
        ("username", _optional(_str)),
        ("credential", _optional(_str)),
    ):
        try:
            parsed[key] = parse(value.get(key))
        except _Invalid as exc:
            raise _Invalid(exc.message, f".{key}{exc.key_suffix}") from None
    if not parsed["urls"]:
        raise _Invalid("must not be empty", ".urls")
    return IceServer(**parsed)


def _setting(default: Any, parse: Parser, env: str | None = None) -> Any:
    """A dataclass field with its default, its parser and optionally its environment variable."""
    metadata = {"parse": parse, "env": env}
    if isinstance(default, tuple | list):
        frozen = tuple(default)
        return field(default_factory=lambda: frozen, metadata=metadata)
    return field(default=default, metadata=metadata)


# --- the schema


@dataclass(frozen=True)
class IceServer:
    """One entry of `media.ice_servers`, shaped like WebRTC's RTCIceServer."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class ServerConfig:
    host: str = _setting("127.0.0.1", _non_empty_str)
    port: int = _setting(8080, _int(1, 65535))
    public_url: str = _setting("http://127.0.0.1:8080", _http_url)
    tls_cert: str | None = _setting(None, _optional(_readable_file))
    tls_key: str | None = _setting(None, _optional(_readable_file))
    trusted_proxies: tuple[str, ...] = _setting((), _list_of(_ip_network))
    session_secret: str | None = _setting(
        None, _optional(_non_empty_str), env="SPRECHZIMMER_SESSION_SECRET"
    )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


@dataclass(frozen=True)
class MediaConfig:
    udp_port_min: int = _setting(40000, _int(1024, 65535))
    udp_port_max: int = _setting(40199, _int(1024, 65535))
    listen_addresses: tuple[str, ...] = _setting((), _list_of(_ip_address))
    public_ip: str | None = _setting(None, _optional(_ip_address))
    allow_loopback_candidates: bool = _setting(False, _bool)
    ice_servers: tuple[IceServer, ...] = _setting((), _list_of(_ice_server))
    turn_secret: str | None = _setting(
        None, _optional(_non_empty_str), env="SPRECHZIMMER_TURN_SECRET"
    )
    turn_credential_ttl_seconds: int = _setting(3600, _int(60, 86400))
    e2ee: str = _setting("required", _choice("required", "preferred"))


def _postgresql_dsn(value: Any) -> str:
    text = _non_empty_str(value)
    if not text.startswith(("postgresql://", "postgres://")):
        # a key=value conninfo string works too for libpq, but a URL is what we document, and
        # checking the scheme catches a pasted sqlite path or a typo before the first connection
        raise _Invalid("must be a postgresql:// URL")
    return text


@dataclass(frozen=True)
class StorageConfig:
    backend: str = _setting("sqlite", _choice("sqlite", "postgresql"))
    # Resolved to an absolute path against the working directory at load time. With the
    # postgresql backend its directory is still the data directory (the session secret).
    # (RUF009 cannot see that _setting returns a dataclass field; Path is immutable anyway.)
    sqlite_path: Path = _setting(Path("data/sprechzimmer.sqlite3"), _non_empty_str)  # noqa: RUF009
    # Holds the password, so it may come from the environment instead of the file.
    postgresql_dsn: str | None = _setting(
        None, _optional(_postgresql_dsn), env="SPRECHZIMMER_DATABASE_URL"
    )
    # Connections per node; PostgreSQL's max_connections (100 by default) is shared by all nodes.
    postgresql_pool_size: int = _setting(10, _int(1, 100))

    @property
    def data_dir(self) -> Path:
        return self.sqlite_path.parent

    @property
    def location(self) -> str:
        """Where the database is, for messages: the file, or the server and database name
        without user and password."""
        if self.backend == "sqlite":
            return str(self.sqlite_path)
        dsn = self.postgresql_dsn or ""
        scheme, _, rest = dsn.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2].partition('?')[0]}"


@dataclass(frozen=True)
class AppointmentsConfig:
    open_before_minutes: int = _setting(15, _int(0, 24 * 60))
    valid_after_start_minutes: int = _setting(120, _int(1, 24 * 60))
    default_duration_minutes: int = _setting(50, _int(5, 8 * 60))


@dataclass(frozen=True)
class PrivacyConfig:
    log_ip: str = _setting("truncate", _choice("truncate", "full", "off"))
    # Anlage 31b BMV-Ä allows keeping session metadata for at most three months.
    statistics_retention_days: int = _setting(90, _int(1, 92))
    purge_interval_seconds: int = _setting(300, _int(10, 86400))


@dataclass(frozen=True)
class LimitsConfig:
    max_rooms: int = _setting(50, _int(1, 10000))
    # One room per therapist, and one more for the change-over between two appointments.
    max_rooms_per_therapist: int = _setting(2, _int(1, 100))
    websocket_max_message_bytes: int = _setting(65536, _int(1024, 16 * 1024 * 1024))
    login_attempts_per_account: int = _setting(5, _int(1, 1000))
    login_attempts_per_address: int = _setting(20, _int(1, 10000))
    login_window_seconds: int = _setting(900, _int(1, 86400))
    # nginx's client_header_timeout is 60 s; a browser sends its head in one packet, so 10 s is
    # plenty even on a bad mobile link.
    header_timeout_seconds: int = _setting(10, _int(1, 300))
    # A practice behind one NAT address: a few browsers, each with about six connections and a
    # WebSocket per tab.
    connections_per_address: int = _setting(50, _int(1, 100000))


@dataclass(frozen=True)
class AuthConfig:
    """How therapists sign in (issue #13)."""

    # Every therapist must use an authenticator app: one without is led to set it up right
    # after the password, before any session exists.
    require_totp: bool = _setting(False, _bool)


def _claim_name(value: Any) -> str:
    text = _non_empty_str(value)
    if len(text) > 64 or not all(c.isascii() and (c.isalnum() or c in "_-.:") for c in text):
        raise _Invalid(f"must be a claim name (a-z A-Z 0-9 _ - . :), got {text!r}")
    return text


@dataclass(frozen=True)
class OidcConfig:
    """Single sign-on through the portal's OpenID Connect provider; off while `issuer` is null."""

    # The provider's issuer URL; its /.well-known/openid-configuration is read at first use.
    issuer: str | None = _setting(None, _optional(_http_url))
    client_id: str | None = _setting(None, _optional(_non_empty_str))
    # A secret: may come from the environment instead of the file.
    client_secret: str | None = _setting(
        None, _optional(_non_empty_str), env="SPRECHZIMMER_OIDC_CLIENT_SECRET"
    )
    # The ID token's claim that holds the portal's account id, matched to a therapist's
    # external id (set by provisioning, PUT /api/v1/therapists/{external_id}).
    claim: str = _setting("sub", _claim_name)

    @property
    def enabled(self) -> bool:
        return self.issuer is not None


def _mail_address(value: Any) -> str:
    text = _non_empty_str(value)
    local, at, domain = text.rpartition("@")
    if not at or not local or "." not in domain or any(c in text for c in " <>\r\n,;"):
        raise _Invalid(f"must be an e-mail address, got {text!r}")
    return text


@dataclass(frozen=True)
class MailConfig:
    """E-mail invitations through the operator's SMTP server (issue #13); off by default."""

    enabled: bool = _setting(False, _bool)
    host: str = _setting("localhost", _non_empty_str)
    port: int = _setting(587, _int(1, 65535))
    # "starttls" (submission, port 587), "tls" (implicit TLS, port 465) or "none" (a relay on
    # this machine only).
    security: str = _setting("starttls", _choice("starttls", "tls", "none"))
    username: str | None = _setting(None, _optional(_non_empty_str))
    password: str | None = _setting(
        None, _optional(_non_empty_str), env="SPRECHZIMMER_SMTP_PASSWORD"
    )
    # The From: address; required when enabled.
    sender: str | None = _setting(None, _optional(_mail_address))
    # Minutes before the start to send a reminder to the same address (0: no reminder). The
    # address is kept until then, and no longer.
    reminder_minutes_before: int = _setting(0, _int(0, 7 * 24 * 60))
    timeout_seconds: int = _setting(30, _int(1, 300))


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = _setting("127.0.0.1:9464", _host_port)

    @property
    def enabled(self) -> bool:
        return self.listen != ""

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


@dataclass(frozen=True)
class LoggingConfig:
    format: str = _setting("kv", _choice("kv", "json"))
    level: str = _setting("info", _choice("debug", "info", "warning", "error"))


def _redis_url(value: Any) -> str:
    text = _non_empty_str(value)
    if not text.startswith(("redis://", "rediss://", "unix://")):
        # never echo the value: it usually holds the password
        raise _Invalid("must be a redis://, rediss:// or unix:// URL")
    return text


# Letters, digits and . _ - only: the id is part of Redis keys and channel names, and a label in
# logs; a hostname fits, and so does "<hostname>-<worker>".
_NODE_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _node_id(value: Any) -> str:
    text = _non_empty_str(value)
    if len(text) > 64 or not set(text) <= _NODE_ID_CHARACTERS:
        raise _Invalid(f"must be 1 to 64 characters a-z A-Z 0-9 . _ -, got {text!r}")
    return text


def _key_prefix(value: Any) -> str:
    text = _str(value)
    if len(text) > 64 or not set(text) <= _NODE_ID_CHARACTERS | {":"}:
        raise _Invalid(f"must be at most 64 characters a-z A-Z 0-9 . _ - :, got {text!r}")
    return text


@dataclass(frozen=True)
class ClusterConfig:
    """Several nodes sharing state in Redis (docs/scaling.md). Without `redis_url` the process is
    one node on its own, exactly as before, and redis-py is never imported."""

    # Holds the password, so it may come from the environment instead of the file.
    redis_url: str | None = _setting(None, _optional(_redis_url), env="SPRECHZIMMER_REDIS_URL")
    # Default: the machine's hostname, plus "-<worker>" under `serve --workers N`.
    node_id: str | None = _setting(None, _optional(_node_id))
    # Every key and channel starts with it, so several deployments (or test runs) can share one
    # Redis server without seeing each other.
    key_prefix: str = _setting("sprechzimmer:", _key_prefix)
    # A node rewrites its registry entry this often; the entry expires `heartbeat_ttl_seconds`
    # after the last write, so a dead node is gone from placement within that time.
    heartbeat_interval_seconds: float = _setting(2.0, _seconds(0.1, 60))
    heartbeat_ttl_seconds: float = _setting(6.0, _seconds(0.3, 600))
    # How long a drained node lets its live calls run before it ends them and exits. A session
    # is 50 minutes by default; an hour lets one that just began run to its end.
    drain_timeout_seconds: float = _setting(3600.0, _seconds(0, 86400))
    # How long a live appointment whose room's node died stays live for its people to come back
    # before a node sweeps it back to `scheduled` (signaling/cluster/room_sweep.py). A page
    # reconnects within seconds (back-off 1 s doubling to 10 s); five heartbeat TTLs by default.
    dead_room_grace_seconds: float = _setting(30.0, _seconds(1, 3600))

    @property
    def enabled(self) -> bool:
        return self.redis_url is not None

    @property
    def location(self) -> str:
        """Where Redis is, for messages: without user and password."""
        url = self.redis_url or ""
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2].partition('?')[0]}"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    appointments: AppointmentsConfig = field(default_factory=AppointmentsConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    oidc: OidcConfig = field(default_factory=OidcConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = ""


SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "media": MediaConfig,
    "storage": StorageConfig,
    "appointments": AppointmentsConfig,
    "privacy": PrivacyConfig,
    "limits": LimitsConfig,
    "auth": AuthConfig,
    "oidc": OidcConfig,
    "mail": MailConfig,
    "metrics": MetricsConfig,
    "logging": LoggingConfig,
    "cluster": ClusterConfig,
}


# --- loading


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration in `path`; raise `ConfigError` if it is bad."""
    name = os.fspath(path)
    env = os.environ if environ is None else environ
    try:
        with open(name, encoding="utf-8") as stream:
            raw = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"{name}: {where}invalid YAML: {problem}") from None

    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: top level must be a mapping of sections, got {_describe(raw)}")

    for section in raw:
        if section not in SECTIONS:
            raise ConfigError(f"{name}: {section}: unknown section")
    sections = {
        section: _load_section(name, section, cls, raw.get(section), env)
        for section, cls in SECTIONS.items()
    }
    config = Config(**sections, source=name)
    _check_across_keys(name, config)
    return config


def _load_section(name: str, section: str, cls: type, raw: Any, env: Mapping[str, str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: {section}: must be a mapping, got {_describe(raw)}")
    known = {f.name: f for f in fields(cls)}
    for key in raw:
        if key not in known:
            raise ConfigError(f"{name}: {section}.{key}: unknown key")
    values: dict[str, Any] = {}
    for key, spec in known.items():
        env_name = spec.metadata["env"]
        if env_name and env.get(env_name):
            try:
                values[key] = spec.metadata["parse"](env[env_name])
            except _Invalid as exc:
                # the variable's name, never its value: it holds a secret
                raise ConfigError(f"{name}: {env_name}: {exc.message}") from None
            continue
        if key not in raw:
            continue
        try:
            values[key] = spec.metadata["parse"](raw[key])
        except _Invalid as exc:
            raise ConfigError(f"{name}: {section}.{key}{exc.key_suffix}: {exc.message}") from None
    if cls is StorageConfig:
        # Relative paths are resolved once, here, so later chdir calls cannot move the database.
        path = values.get("sqlite_path", StorageConfig.sqlite_path)
        values["sqlite_path"] = Path(os.path.abspath(path))
    return cls(**values)


def _check_across_keys(name: str, config: Config) -> None:
    server, media = config.server, config.media
    if (server.tls_cert is None) != (server.tls_key is None):
        missing = "server.tls_key" if server.tls_key is None else "server.tls_cert"
        raise ConfigError(
            f"{name}: {missing}: must be set together with "
            f"{'server.tls_cert' if missing == 'server.tls_key' else 'server.tls_key'}"
        )
    if config.storage.backend == "postgresql" and config.storage.postgresql_dsn is None:
        raise ConfigError(
            f"{name}: storage.postgresql_dsn: is required with storage.backend 'postgresql' "
            "(or set SPRECHZIMMER_DATABASE_URL)"
        )
    cluster = config.cluster
    if cluster.heartbeat_ttl_seconds < 2 * cluster.heartbeat_interval_seconds:
        # one late heartbeat (a busy event loop, a Redis failover) must not make a live node dead
        raise ConfigError(
            f"{name}: cluster.heartbeat_ttl_seconds: must be at least twice "
            f"cluster.heartbeat_interval_seconds ({cluster.heartbeat_interval_seconds:g}), "
            f"got {cluster.heartbeat_ttl_seconds:g}"
        )
    if cluster.dead_room_grace_seconds < cluster.heartbeat_ttl_seconds:
        # a live node's placement may lapse for up to one TTL (a late heartbeat, a Redis
        # restart) before it renews it: a shorter grace would sweep its rooms
        raise ConfigError(
            f"{name}: cluster.dead_room_grace_seconds: must be at least "
            f"cluster.heartbeat_ttl_seconds ({cluster.heartbeat_ttl_seconds:g}), "
            f"got {cluster.dead_room_grace_seconds:g}"
        )
    if media.udp_port_min > media.udp_port_max:
        raise ConfigError(
            f"{name}: media.udp_port_min: must not exceed media.udp_port_max "
            f"({media.udp_port_max}), got {media.udp_port_min}"
        )
    oidc = config.oidc
    if oidc.enabled and (oidc.client_id is None or oidc.client_secret is None):
        missing = "oidc.client_id" if oidc.client_id is None else "oidc.client_secret"
        raise ConfigError(f"{name}: {missing}: is required when oidc.issuer is set")
    if config.mail.enabled and config.mail.sender is None:
        raise ConfigError(f"{name}: mail.sender: is required when mail.enabled is true")
    if (config.mail.username is None) != (config.mail.password is None):
        raise ConfigError(
            f"{name}: mail.username: must be set together with mail.password "
            "(or SPRECHZIMMER_SMTP_PASSWORD)"
        )
