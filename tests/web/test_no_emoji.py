"""The pages draw their icons from our SVG sprite, never with emoji: a machine without an emoji
font (a plain Debian, many kiosk and clinic PCs) shows an empty box where the lock should be.
Every page, partial, script, stylesheet and translation is checked, so a new emoji fails here
before anyone sees a box."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

from signaling.routes_pages import PAGES_DIR, STATIC_DIR

# Characters a browser may draw from an emoji font: the pictograph planes, dingbats and
# miscellaneous symbols (check marks, warning sign), technical symbols (watch, hourglass),
# geometric shapes (play buttons), the emoji arrows, the variation selector that asks for emoji
# presentation, and the zero-width joiner that glues emoji sequences. Plain arrows such as the
# bitrate's up and down (U+2191, U+2193) are in every text font and stay allowed.
EMOJI = re.compile(
    "[\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9\u21aa\u231a-\u23ff\u24c2\u25a0-\u27bf"
    "\u2934\u2935\u2b00-\u2bff\u3030\u303d\u3297\u3299\ufe0e\ufe0f\u200d"
    "\U0001f000-\U0001faff]"
)
SOURCES = sorted(
    path
    for folder in (PAGES_DIR, STATIC_DIR)
    for path in folder.rglob("*")
    if path.suffix in {".html", ".js", ".css", ".json", ".svg"}
)


def emoji_in(text: str) -> list[str]:
    """Each emoji-range character of `text` with its line and Unicode name."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for match in EMOJI.finditer(line):
            char = match.group()
            found.append(f"line {number}: U+{ord(char):04X} {unicodedata.name(char, '?')}")
    return found


def test_the_check_sees_an_emoji():
    # The check itself must be able to fail: the characters the pages used to carry.
    assert len(emoji_in("✓ ok\n✗ bad\n🔒 locked\n⚠ warning")) == 4
    # Text punctuation the German pages need: en dash, quotes, guillemet, ellipsis.
    assert emoji_in("Verbindung gut · ↓ 1,2 Mbit/s ↑ 300 kbit/s \u2013 „Zulassen“ \u203a …") == []


def test_there_are_pages_and_modules_to_check():
    names = {path.name for path in SOURCES}
    assert {"join.html", "call.html", "callview.js", "join.js", "de.json", "en.json"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_no_page_or_module_contains_emoji(path: Path):
    found = emoji_in(path.read_text(encoding="utf-8"))
    assert found == [], f"{path.relative_to(STATIC_DIR.parent)} has emoji: {found}"
