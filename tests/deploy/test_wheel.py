"""The wheel is the whole service: built from this tree, installed into a fresh virtual environment
and run from a directory without the source tree, it serves the pages, the static files and the
health check, finds its migrations and, without --config, its default configuration.

The fresh environment gets the third-party packages through a .pth line pointing at the running
environment's site-packages, so nothing is downloaded. That directory holds no `signaling` or
`sfu` (the project's own editable install is a meta-path finder started by a .pth file, and .pth
files in a directory named by another .pth are not run), so the only copy the new interpreter can
import is the one from the wheel: `test_the_installed_code_is_the_wheels_not_the_source_tree`
checks exactly that.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Folders of the repository a build never reads: copying them would only cost time.
NOT_BUILT = shutil.ignore_patterns(
    ".*", "__pycache__", "*.egg-info", "build", "dist", "data", "tests", "docs", "benchmarks",
    "test-artifacts", "deploy", "scripts",
)  # fmt: skip
BUILD_SECONDS = 300
START_SECONDS = 60


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    cwd: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "sprechzimmer"

    def run(self, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [os.fspath(a) for a in args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    # Build from a copy: setuptools writes build/ and *.egg-info beside pyproject.toml, and two
    # test runs building in the same tree at once would trip over each other's files.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_BUILT)
    dist = root / "dist"
    _check(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", dist, source],
        "building the wheel",
    )  # fmt: skip
    (wheel,) = dist.glob("sprechzimmer-*.whl")

    venv = root / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", venv], "creating the venv")
    new_site = Path(
        sysconfig.get_path("purelib", vars={"base": os.fspath(venv), "platbase": os.fspath(venv)})
    )
    (new_site / "project-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _check(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
         "--no-deps", "--no-index", wheel],
        "installing the wheel",
    )  # fmt: skip

    cwd = root / "elsewhere"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return Installed(wheel=wheel, venv=venv, cwd=cwd, env=env)


def test_the_wheel_carries_pages_static_files_migrations_and_the_default_config(
    installed: Installed,
):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        *(f"signaling/web/{p.relative_to(REPO / 'web')}" for p in _files(REPO / "web")),
        *(
            f"signaling/storage/migrations/{p.name}"
            for p in (REPO / "signaling/storage/migrations").glob("*.sql")
        ),
        "signaling/default_config/default.yaml",
    }
    assert sorted(expected - names) == []


def test_the_wheel_carries_every_python_module_of_sfu_and_signaling(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    modules = {
        str(p.relative_to(REPO)) for package in ("sfu", "signaling") for p in _files(REPO / package)
    }
    assert {m for m in modules if m.endswith(".py")} - names == set()


def test_the_installed_code_is_the_wheels_not_the_source_tree(installed: Installed):
    result = installed.run(
        installed.python,
        "-c",
        "import signaling, signaling.routes_pages as p, sfu; "
        "print(signaling.__file__); print(p.WEB_ROOT); print(sfu.__file__)",
    )
    assert result.returncode == 0, result.stderr
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert len(paths) == 3, result.stdout
    outside = [str(p) for p in paths if not p.is_relative_to(installed.venv)]
    assert outside == [], f"imported from outside the new venv {installed.venv}"


def test_without_config_the_command_uses_the_default_configuration_it_ships(
    installed: Installed,
):
    # `installed.cwd` has no config/default.yaml, so the packaged copy is the default.
    result = installed.run(installed.script, "check-config")
    assert result.returncode == 0, result.stderr
    checked = Path(result.stdout.strip().removesuffix(": ok"))
    assert checked.is_relative_to(installed.venv), result.stdout
    assert checked.read_text() == (REPO / "config" / "default.yaml").read_text()


@pytest.fixture(scope="module")
def served(installed: Installed) -> Iterator[str]:
    port = _free_tcp_port()
    config = installed.cwd / "config.yaml"
    config.write_text(
        f"server:\n  port: {port}\n  public_url: http://127.0.0.1:{port}\n"
        f'storage:\n  sqlite_path: "{installed.cwd / "data" / "sprechzimmer.sqlite3"}"\n'
        'metrics:\n  listen: ""\n'
    )
    output = installed.cwd / "serve.log"
    with output.open("w") as log:
        server = subprocess.Popen(
            [installed.script, "serve", "--config", config],
            cwd=installed.cwd,
            env=installed.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(server, base, output)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_installed_service_serves_a_page(served: str):
    status, headers, body = _get(f"{served}/login")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b'<html lang="de">' in body
    # the page's own script: this is web/pages/login.html, not an error page
    assert b"/static/js/login.js" in body


def test_the_installed_service_serves_a_static_file(served: str):
    status, headers, body = _get(f"{served}/static/js/api.js")
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert body == (REPO / "web" / "static" / "js" / "api.js").read_bytes()


def test_the_installed_service_answers_healthz(served: str):
    status, _, _ = _get(f"{served}/healthz")
    assert status == 200


def _files(directory: Path) -> list[Path]:
    return [
        p
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _check(command: list[str | os.PathLike[str]], what: str) -> None:
    result = subprocess.run(
        [os.fspath(c) for c in command], capture_output=True, text=True, timeout=BUILD_SECONDS
    )
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


def _free_tcp_port() -> int:
    # The kernel picks a port nobody holds; the server binds it moments later.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(server: subprocess.Popen[bytes], base: str, output: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"the installed server exited with {server.returncode}:\n{output.read_text()}"
            )
        try:
            if _get(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the installed server did not answer {base}/healthz within {START_SECONDS} s")


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
