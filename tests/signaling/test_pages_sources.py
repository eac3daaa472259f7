"""The page sources under web/: nothing that would break the CSP or leave our origin, and
dictionaries that cover every text."""

from __future__ import annotations

import json
import re
from pathlib import Path

from signaling.routes_pages import PAGES_DIR, STATIC_DIR, STATIC_TYPES

PAGES = sorted(p for p in PAGES_DIR.glob("*.html") if not p.name.startswith("_"))
PARTIALS = sorted(PAGES_DIR.glob("_*.html"))
TEXT_SOURCES = [*PAGES, *PARTIALS, *STATIC_DIR.rglob("*.js"), *STATIC_DIR.rglob("*.css")]


def dictionary(lang: str) -> dict[str, str]:
    return json.loads((STATIC_DIR / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))


def test_pages_have_no_inline_script_style_or_handlers():
    for page in [*PAGES, *PARTIALS]:
        html = page.read_text(encoding="utf-8")
        for script in re.findall(r"<script\b[^>]*>", html):
            assert 'src="/static/' in script, f"{page.name}: {script}"
        assert "<style" not in html, page.name
        assert not re.search(r"\sstyle=", html), page.name
        assert not re.search(r"\son[a-z]+=", html), page.name


def test_nothing_is_loaded_from_another_origin():
    for source in TEXT_SOURCES:
        text = source.read_text(encoding="utf-8")
        # hreflang/xmlns aside, no absolute URL and no protocol-relative one.
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", text), source.name
        assert "@import" not in text, source.name


def test_data_is_never_written_as_html():
    for source in STATIC_DIR.rglob("*.js"):
        text = source.read_text(encoding="utf-8")
        assert "innerHTML" not in text, source.name
        assert "insertAdjacentHTML" not in text, source.name
        assert "document.write" not in text, source.name


def test_both_dictionaries_have_the_same_keys():
    assert dictionary("de").keys() == dictionary("en").keys()


def test_every_text_in_the_pages_is_in_the_dictionaries():
    german = dictionary("de")
    for page in [*PAGES, *PARTIALS]:
        html = page.read_text(encoding="utf-8")
        keys = re.findall(r'data-i18n="([^"]+)"', html)
        keys += [
            pair.split(":")[1]
            for attr in re.findall(r'data-i18n-attr="([^"]+)"', html)
            for pair in attr.split(";")
        ]
        for key in keys:
            assert key in german, f"{page.name}: {key}"


def test_every_key_the_scripts_ask_for_is_in_the_dictionaries():
    german = dictionary("de")
    for source in STATIC_DIR.rglob("*.js"):
        for key in re.findall(r"\bt(?:Or)?\(\s*\"([a-zA-Z]+\.[a-zA-Z_.]+)\"", source.read_text()):
            assert key in german, f"{source.name}: {key}"


def test_the_german_page_text_matches_the_german_dictionary():
    german = dictionary("de")
    for page in [*PAGES, *PARTIALS]:
        html = page.read_text(encoding="utf-8")
        for key, text in re.findall(r'data-i18n="([^"]+)">([^<]*)<', html):
            assert text.strip() == german[key].replace("&", "&amp;"), f"{page.name}: {key}"


def test_static_holds_only_served_types():
    for path in STATIC_DIR.rglob("*"):
        if path.is_file():
            assert path.suffix in STATIC_TYPES, path


def test_pages_start_with_the_language_marker():
    for page in PAGES:
        assert page.read_text(encoding="utf-8").startswith('<!doctype html>\n<html lang="de">')


def test_web_root_is_beside_the_package():
    assert Path(PAGES_DIR).parent.name == "web"
