"""The docs prove their claims by naming tests (docs/threat-model.md's tables, scaling.md, the
benchmarks' README): every `test_...` they name in backticks is a test function or a test module
that exists. One named a test that had been renamed, so the claim pointed at nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    *sorted((REPO / "docs").rglob("*.md")),
    REPO / "README.md",
    REPO / "benchmarks/README.md",
]
# `test_x`, `test_x.py`, `tests/a/test_x.py::test_y`, `test_y[udp]`: the name is what counts
NAMED = re.compile(r"`(?:[\w/.-]+\.py::)?(test_\w+)(\.py)?(?:\[[^\]`]*\])?`")
DEFINED = re.compile(r"^\s*(?:async\s+)?def\s+(test_\w+)", re.MULTILINE)


def _test_modules() -> list[Path]:
    return [p for p in (REPO / "tests").rglob("test_*.py") if "node_modules" not in p.parts]


def known_names() -> set[str]:
    names = set()
    for path in _test_modules():
        names.add(path.stem)
        names.update(DEFINED.findall(path.read_text(encoding="utf-8")))
    return names


def named_tests() -> list[tuple[str, str]]:
    return [
        (str(doc.relative_to(REPO)), match.group(1))
        for doc in DOCUMENTS
        for match in NAMED.finditer(doc.read_text(encoding="utf-8"))
    ]


def test_the_docs_name_tests() -> None:
    # the pattern still finds what the docs write; without it the test below checks nothing
    assert len(named_tests()) > 50


@pytest.mark.parametrize("doc, name", sorted(set(named_tests())))
def test_a_test_the_docs_name_exists(doc: str, name: str) -> None:
    assert name in KNOWN, f"{doc} names `{name}`, which no test function or module is called"


KNOWN = known_names()
