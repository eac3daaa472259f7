"""Configuration: defaults, one-line errors naming file and key, secrets from the environment."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from signaling.config import (
    SECTIONS,
    Config,
    ConfigError,
    IceServer,
    load_config,
)

from .conftest import REPO_ROOT


def error_of(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_empty_file_gives_all_defaults(write_config):
    config = load_config(write_config(""), environ={})
    assert dataclasses.replace(config, source="", storage=Config().storage) == Config()
    assert config.server.port == 8080
    assert config.media.e2ee == "required"
    assert config.privacy.statistics_retention_days == 90


def test_omitted_keys_in_a_section_take_defaults(write_config):
    config = load_config(write_config("server:\n  port: 9000\n"), environ={})
    assert config.server.port == 9000
    assert config.server.host == "127.0.0.1"
    assert config.limits.max_rooms == 50


def test_default_yaml_lists_every_key_with_its_default():
    raw = yaml.safe_load((REPO_ROOT / "config" / "default.yaml").read_text())
    for section, cls in SECTIONS.items():
        assert set(raw[section]) == {f.name for f in dataclasses.fields(cls)}, section
    config = load_config(REPO_ROOT / "config" / "default.yaml", environ={})
    defaults = Config()
    assert dataclasses.replace(config, source="", storage=defaults.storage) == defaults
    assert config.storage.sqlite_path == Path.cwd() / "data" / "sprechzimmer.sqlite3"


def test_default_yaml_has_a_comment_above_every_key():
    def is_key(line: str) -> bool:
        return line.startswith("  ") and not line.lstrip().startswith("#")

    lines = (REPO_ROOT / "config" / "default.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if is_key(line):
            above = index - 1
            while is_key(lines[above]):  # keys documented together share one comment
                above -= 1
            assert lines[above].lstrip().startswith("#"), line


def test_relative_sqlite_path_is_resolved_against_working_directory(
    write_config, tmp_path, monkeypatch
):
    path = write_config("storage:\n  sqlite_path: sub/db.sqlite3\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(path, environ={})
    assert config.storage.sqlite_path == tmp_path / "sub" / "db.sqlite3"
    assert config.storage.data_dir == tmp_path / "sub"


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert error_of(path) == f"{path}: cannot read file: No such file or directory"


def test_invalid_yaml_names_the_file_and_line(write_config):
    path = write_config("server:\n  port: [1\n")
    assert error_of(path).startswith(f"{path}: line 3: invalid YAML")


def test_top_level_must_be_a_mapping(write_config):
    path = write_config("- a\n- b\n")
    assert error_of(path) == f"{path}: top level must be a mapping of sections, got a list"


def test_unknown_section_is_named(write_config):
    path = write_config("sever:\n  port: 1\n")
    assert error_of(path) == f"{path}: sever: unknown section"


def test_unknown_key_is_named(write_config):
    path = write_config("server:\n  prot: 8080\n")
    assert error_of(path) == f"{path}: server.prot: unknown key"


def test_section_must_be_a_mapping(write_config):
    path = write_config("server: 8080\n")
    assert error_of(path) == f"{path}: server: must be a mapping, got 8080"


def test_wrong_type_is_named(write_config):
    path = write_config("server:\n  port: '8080'\n")
    assert error_of(path) == f"{path}: server.port: must be an integer, got '8080'"


def test_boolean_is_not_accepted_as_integer(write_config):
    path = write_config("limits:\n  max_rooms: true\n")
    assert error_of(path) == f"{path}: limits.max_rooms: must be an integer, got true"


def test_out_of_range_port_is_named(write_config):
    path = write_config("server:\n  port: 70000\n")
    assert error_of(path) == f"{path}: server.port: must be between 1 and 65535, got 70000"


def test_retention_longer_than_three_months_is_rejected(write_config):
    path = write_config("privacy:\n  statistics_retention_days: 93\n")
    assert error_of(path) == (
        f"{path}: privacy.statistics_retention_days: must be between 1 and 92, got 93"
    )


def test_udp_port_min_above_max_is_rejected(write_config):
    path = write_config("media:\n  udp_port_min: 50000\n  udp_port_max: 40000\n")
    assert error_of(path) == (
        f"{path}: media.udp_port_min: must not exceed media.udp_port_max (40000), got 50000"
    )


def test_unknown_choice_lists_the_allowed_values(write_config):
    path = write_config("media:\n  e2ee: optional\n")
    assert error_of(path) == (
        f"{path}: media.e2ee: must be one of 'required', 'preferred', got 'optional'"
    )


def test_bad_ip_in_list_names_the_index(write_config):
    path = write_config("server:\n  trusted_proxies: ['10.0.0.0/8', 'proxy']\n")
    assert error_of(path) == (
        f"{path}: server.trusted_proxies[1]: must be an IP address or CIDR network, got 'proxy'"
    )


def test_bad_metrics_listen_is_rejected(write_config):
    path = write_config("metrics:\n  listen: localhost\n")
    assert error_of(path).startswith(f"{path}: metrics.listen: must be host:port")


def test_empty_metrics_listen_disables_metrics(write_config):
    config = load_config(write_config("metrics:\n  listen: ''\n"), environ={})
    assert not config.metrics.enabled


def test_unreadable_tls_cert_is_named(write_config, tmp_path):
    missing = tmp_path / "missing.pem"
    path = write_config(f"server:\n  tls_cert: {missing}\n  tls_key: {missing}\n")
    assert error_of(path) == (
        f"{path}: server.tls_cert: cannot read file {missing}: No such file or directory"
    )


def test_tls_cert_without_key_is_rejected(write_config, tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    path = write_config(f"server:\n  tls_cert: {cert}\n")
    assert error_of(path) == f"{path}: server.tls_key: must be set together with server.tls_cert"


def test_ice_servers_are_parsed(write_config):
    path = write_config(
        "media:\n  ice_servers:\n"
        "    - urls: ['stun:stun.example.org:3478']\n"
        "    - {urls: ['turn:turn.example.org'], username: u, credential: c}\n"
    )
    assert load_config(path, environ={}).media.ice_servers == (
        IceServer(urls=("stun:stun.example.org:3478",)),
        IceServer(urls=("turn:turn.example.org",), username="u", credential="c"),
    )


def test_ice_server_with_unknown_key_is_named(write_config):
    path = write_config("media:\n  ice_servers:\n    - {urls: ['stun:a'], password: x}\n")
    assert error_of(path) == f"{path}: media.ice_servers[0].password: unknown key"


def test_ice_server_url_scheme_is_checked(write_config):
    path = write_config("media:\n  ice_servers:\n    - {urls: ['http://a']}\n")
    assert error_of(path).startswith(f"{path}: media.ice_servers[0].urls[0]: must start with")


def test_secret_comes_from_environment_variable(write_config):
    config = load_config(
        write_config("media:\n  turn_secret: from-file\n"),
        environ={"SPRECHZIMMER_TURN_SECRET": "from-env", "SPRECHZIMMER_SESSION_SECRET": "s"},
    )
    assert config.media.turn_secret == "from-env"
    assert config.server.session_secret == "s"


def test_secret_from_file_is_used_when_environment_variable_is_unset(write_config):
    config = load_config(write_config("media:\n  turn_secret: from-file\n"), environ={})
    assert config.media.turn_secret == "from-file"


# The CLI turns the same errors into one line on stderr and exit status 2.


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("server:\n  port: 70000\n", "server.port: must be between 1 and 65535, got 70000"),
        ("logging:\n  colour: yes\n", "logging.colour: unknown key"),
        ("media:\n  allow_loopback_candidates: 1\n", "media.allow_loopback_candidates: must be"),
    ],
)
def test_check_config_prints_one_line_and_exits_2(run_cli, write_config, yaml_text, expected):
    path = write_config(yaml_text)
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(f"{path}: {expected}")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_check_config_on_missing_file_exits_2(run_cli, tmp_path):
    result = run_cli("check-config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert (
        result.stderr == f"{tmp_path / 'nope.yaml'}: cannot read file: No such file or directory\n"
    )


def test_check_config_accepts_the_default_file(run_cli):
    result = run_cli("check-config", str(REPO_ROOT / "config" / "default.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(": ok\n")


def test_any_command_with_bad_config_exits_2_without_starting(run_cli, write_config):
    path = write_config("server:\n  port: 0\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == f"{path}: server.port: must be between 1 and 65535, got 0\n"


def test_configuration_docs_describe_every_key():
    docs = (REPO_ROOT / "docs" / "configuration.md").read_text()
    for section, cls in SECTIONS.items():
        assert f"## `{section}`" in docs
        for spec in dataclasses.fields(cls):
            assert f"| `{spec.name}` |" in docs, f"{section}.{spec.name}"
            if spec.metadata["env"]:
                assert spec.metadata["env"] in docs
