"""Secrets and personal data the tests create, remembered so that the end of the run can check
that no log line of the whole run contains any of them (tests/conftest.py)."""

from __future__ import annotations

CANARIES: set[str] = set()


def remember(*values: object) -> None:
    for value in values:
        if isinstance(value, str) and len(value) >= 3:
            CANARIES.add(value)
