"""The shell scripts under deploy/ parse, and the certbot hook touches coturn's certificate only."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.deploy.deploy_files import DEPLOY, deploy_files

SCRIPTS = [path for path in deploy_files() if path.read_text().startswith("#!/bin/sh")]


def test_the_scripts_are_found():
    assert {path.name for path in SCRIPTS} == {
        "sprechzimmer-admin",
        "sprechzimmer-backup",
        "certbot-deploy-hook",
    }


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_each_script_is_valid_posix_sh_and_executable(script):
    assert os.access(script, os.X_OK)
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")


def test_the_certbot_hook_ignores_every_other_certificate(tmp_path):
    # were it to act, it would fail: there is no certificate in this lineage and no coturn
    result = subprocess.run(
        [str(DEPLOY / "coturn" / "certbot-deploy-hook")],
        env={
            "PATH": os.environ["PATH"],
            "RENEWED_LINEAGE": str(tmp_path / "sprechzimmer.example.org"),
        },
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stderr) == (0, "")
