"""The code points readers to the docs by `docs/<file>.md#<section>`; each such pointer names a
heading of that file, by the anchor GitHub makes of it. Three pointed at sections that did not
exist (two-factor sign-in was never written up; two headings had grown since)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# where the code names docs: the service, the relay, the pages, the default configuration
SOURCES = ("signaling", "sfu", "web", "config")
SUFFIXES = {".py", ".js", ".html", ".css", ".yaml"}
POINTER = re.compile(r"docs/([a-z0-9_-]+\.md)#([A-Za-z0-9_-]+)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
CODE_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores
    kept), each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    """Every heading's anchor; a repeated one also as -1, -2, ... as GitHub numbers them."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in HEADING.findall(CODE_BLOCK.sub("", doc.read_text(encoding="utf-8"))):
        name = anchor(heading)
        found.add(f"{name}-{seen[name]}" if seen[name] else name)
        seen[name] += 1
    return found


def pointers() -> list[tuple[str, str, str]]:
    found = []
    for top in SOURCES:
        for path in sorted((REPO / top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                for doc, section in POINTER.findall(path.read_text(encoding="utf-8")):
                    found.append((str(path.relative_to(REPO)), doc, section))
    return found


def test_the_anchor_rule_is_githubs():
    assert anchor("Admin API (`/api/admin/`)") == "admin-api-apiadmin"
    assert anchor("Two-factor sign-in") == "two-factor-sign-in"
    assert anchor("Between the two pages: screen and audio-only state") == (
        "between-the-two-pages-screen-and-audio-only-state"
    )


def test_the_code_points_to_the_docs():
    # the test below must have something to check
    assert {"api.md", "protocol.md"} <= {doc for _, doc, _ in pointers()}


@pytest.mark.parametrize(("source", "doc", "section"), pointers())
def test_each_pointer_names_a_section_of_its_doc(source: str, doc: str, section: str):
    assert (DOCS / doc).is_file(), f"{source}: docs/{doc} does not exist"
    assert section in anchors(DOCS / doc), f"{source}: docs/{doc} has no section #{section}"
