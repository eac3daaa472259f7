"""Pages are assembled from partials at load time: the head, the top bar, the footer and the end
screen are written once (web/pages/_*.html), and a broken include stops the server at startup
with the page's name instead of serving half a page."""

from __future__ import annotations

import re

import pytest

from signaling.routes_pages import PAGES_DIR, STATIC_DIR, PageError, _load_pages, assemble_page

SOURCES = {p.stem: p.read_text(encoding="utf-8") for p in PAGES_DIR.glob("*.html")}
PAGES = {name: text for name, text in SOURCES.items() if not name.startswith("_")}
# Markup that belongs to one partial and nowhere else.
CHROME = {
    "head": '<link rel="stylesheet"',
    "topbar": '<header class="topbar">',
    "footer": '<footer class="footer">',
    "end-screen": 'id="ended"',
}


@pytest.mark.parametrize(("partial", "marker"), CHROME.items())
def test_page_chrome_is_written_once_in_its_partial(partial: str, marker: str):
    holders = sorted(name for name, text in SOURCES.items() if marker in text)
    assert holders == [f"_{partial}"], f"{marker} is written in {holders}"


def test_every_page_is_assembled_with_one_head_and_no_marker_left():
    pages = _load_pages(PAGES_DIR)
    assert pages.keys() == PAGES.keys()
    for name, html in pages.items():
        assert html.startswith('<!doctype html>\n<html lang="de">'), name
        assert html.count('<meta charset="utf-8">') == 1, name
        assert html.count('<link rel="stylesheet" href="/static/css/app.css">') == 1, name
        assert html.count("<title ") == 1, name
        scripts = re.findall(r'<script type="module" src="/static/(js/[\w-]+\.js)"></script>', html)
        assert len(scripts) == 1 and (STATIC_DIR / scripts[0]).is_file(), (name, scripts)
        assert "{{" not in html and "<!-- include" not in html and "<!-- slot" not in html, name


def test_every_page_has_one_top_bar_skip_link_and_language_switch():
    pages = _load_pages(PAGES_DIR)
    for name, html in pages.items():
        assert html.count('<header class="topbar">') == 1, name
        assert html.count('class="skip-link" href="#main"') == 1, name
        assert html.count('class="lang-switch"') == 1, name


def test_the_client_pages_brand_is_not_a_link_away_from_the_waiting_room():
    pages = _load_pages(PAGES_DIR)
    for name in ("join", "invalid"):
        assert '<span class="brand">' in pages[name], name
        assert '<a class="brand"' not in pages[name], name
    assert '<a class="brand" href="/dashboard">' in pages["call"]
    assert '<a class="brand" href="/">' in pages["login"]


def test_the_dashboard_top_bar_keeps_its_user_name_and_logout():
    nav = re.search(r'<nav class="topnav".*?</nav>', _load_pages(PAGES_DIR)["dashboard"], re.S)
    assert nav
    assert 'id="user-name"' in nav[0] and 'id="btn-logout"' in nav[0]


def test_both_call_pages_have_the_same_end_screen():
    pages = _load_pages(PAGES_DIR)
    for name in ("join", "call"):
        for element in ('id="ended"', 'id="ended-heading"', 'id="ended-text"', 'id="btn-rejoin"'):
            assert pages[name].count(element) == 1, (name, element)
    assert 'href="/dashboard" data-i18n="common.backToDashboard"' in pages["call"]


def test_the_waiting_rooms_footer_opens_terms_in_a_new_window():
    footer = re.search(r'<footer class="footer">.*?</footer>', _load_pages(PAGES_DIR)["join"], re.S)
    assert footer and footer[0].count('target="_blank"') == 2


PARTIALS = {
    "box": '<div class="{{kind=plain}}" title="{{title}}">\n<!-- slot: body -->empty<!-- /slot --></div>',
    "outer": '<section><!-- include: box title="inner" --></section>',
}


def test_values_are_escaped_defaults_fill_in_and_fills_replace_slots():
    page = '<!-- include: box title="a < b & &quot;c&quot;" -->\n<!-- fill: body -->\n<p>hi</p>\n<!-- /fill -->'
    assert assemble_page("p.html", page, PARTIALS) == (
        '<div class="plain" title="a &lt; b &amp; &amp;quot;c&amp;quot;">\n<p>hi</p>\n</div>'
    )


def test_a_slot_without_a_fill_keeps_its_default_and_partials_nest():
    assert assemble_page("p.html", "<!-- include: outer -->", PARTIALS) == (
        '<section><div class="plain" title="inner">\nempty</div></section>'
    )


@pytest.mark.parametrize(
    ("page", "says"),
    [
        ("<!-- include: nothing -->", "no _nothing.html"),
        ("<!-- include: box -->", 'needs title="'),
        ('<!-- include: box title="x" colour="red" -->', "takes no colour="),
        (
            '<!-- include: box title="x" -->\n<!-- fill: footer -->x<!-- /fill -->',
            "no slot 'footer'",
        ),
        ("<!-- include: box title='x' -->", "left after assembly"),
        ("<p>{{title}}</p>", "left after assembly"),
    ],
)
def test_a_broken_include_names_the_page_and_the_fault(page: str, says: str):
    with pytest.raises(PageError, match=re.escape(says)) as raised:
        assemble_page("broken.html", page, PARTIALS)
    assert str(raised.value).startswith("broken.html: ")


def test_an_include_cycle_is_refused():
    with pytest.raises(PageError, match="nested deeper"):
        assemble_page("p.html", "<!-- include: a -->", {"a": "<!-- include: a -->"})
