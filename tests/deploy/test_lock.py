"""The lock (requirements/*.txt, written by `make lock`) covers what pyproject.toml asks for, with
hashes, and is what the test environment really runs."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK_RUN = REPO / "requirements" / "run.txt"
LOCK_TEST = REPO / "requirements" / "test.txt"

# One pinned package per block: "name==version \" followed by its "--hash=sha256:..." lines.
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", re.M
)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _locked(lock: Path) -> dict[str, tuple[str, int]]:
    """Package → (version, number of hashes)."""
    return {
        canonicalize_name(name): (version, hashes.count("--hash="))
        for name, version, hashes in PIN.findall(lock.read_text())
    }


def _unmet(requirements: list[str], lock: Path) -> list[str]:
    locked = _locked(lock)
    unmet = []
    for line in requirements:
        requirement = Requirement(line)
        pin = locked.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin[0], prereleases=True):
            unmet.append(f"{line} (locked: {pin[0] if pin else 'nothing'})")
    return unmet


def test_the_service_lock_meets_every_runtime_and_build_requirement():
    project = _pyproject()
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    assert _unmet(wanted, LOCK_RUN) == []


def test_the_test_lock_meets_every_runtime_test_and_build_requirement():
    project = _pyproject()
    wanted = (
        project["project"]["dependencies"]
        + project["project"]["optional-dependencies"]["test"]
        + project["build-system"]["requires"]
    )
    assert _unmet(wanted, LOCK_TEST) == []


def test_the_service_lock_pins_the_same_versions_as_the_test_lock():
    test = _locked(LOCK_TEST)
    differing = {
        name: (version, test.get(name, ("missing",))[0])
        for name, (version, _) in _locked(LOCK_RUN).items()
        if test.get(name, ("",))[0] != version
    }
    assert differing == {}


def test_every_locked_package_has_a_hash():
    for lock in (LOCK_RUN, LOCK_TEST):
        locked = _locked(lock)
        # every "==" line was parsed: a block the pattern missed would escape the hash check
        assert len(locked) == len(re.findall(r"^\S+==", lock.read_text(), re.M)), lock
        assert [name for name, (_, hashes) in locked.items() if hashes == 0] == [], lock


def test_the_test_environment_runs_the_locked_versions():
    expected = {name: version for name, (version, _) in _locked(LOCK_TEST).items()}
    installed = {}
    for name in expected:
        try:
            installed[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed[name] = "not installed"
    assert installed == expected, "run `make test` (or `make lock` after editing pyproject.toml)"
