"""The HTML pages and their static files (web/).

Pages are plain HTML in German; `web/static/js/i18n.js` translates them in the browser from
`web/static/i18n/<lang>.json`. The server only picks the language and writes it into
`<html lang="…">`: `?lang=` (remembered in a `lang` cookie), then the cookie, then
`Accept-Language`, else German.

Everything a page needs comes from this origin, so the strict CSP in `signaling.app` holds: no
inline script or style, no CDN, no external fonts.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

from aiohttp import web

from signaling import invites
from signaling.config import Config
from signaling.login_sessions import current_session
from signaling.package_files import package_dir
from signaling.storage import Storage

__all__ = ["LANGUAGES", "WEB_ROOT", "PageError", "Pages", "assemble_page", "choose_language"]

# web/ of the repository, installed as the package `signaling.web` (signaling/package_files.py).
WEB_ROOT = package_dir("signaling.web").resolve()
PAGES_DIR = WEB_ROOT / "pages"
STATIC_DIR = WEB_ROOT / "static"

LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
LANG_COOKIE = "lang"
# A year: a language choice is a lasting preference, not a session.
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600

# Only these types are served from /static; anything else is 404. `.js` is `text/javascript`
# (RFC 9239): browsers refuse ES modules served with a non-JavaScript type under nosniff.
STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}

# The invite page and the therapist's call page hold a secret token or live appointment data.
NO_STORE = {"Cache-Control": "no-store"}
# Pages and assets are small; revalidating each time means a deploy is seen at once.
NO_CACHE = {"Cache-Control": "no-cache"}

_LANG_MARKER = '<html lang="de">'


class Pages:
    def __init__(self, config: Config, storage: Storage) -> None:
        self._config = config
        self._storage = storage
        self._html = _load_pages(PAGES_DIR)
        missing = [name for name, text in self._html.items() if _LANG_MARKER not in text]
        if missing:
            raise RuntimeError(f"web/pages/{missing[0]}.html must start with {_LANG_MARKER}")

    def register(self, router: web.UrlDispatcher) -> None:
        router.add_get("/", self.root)
        router.add_get("/login", self.login)
        router.add_get("/dashboard", self._page("dashboard", NO_STORE))
        router.add_get("/security", self._page("security", NO_STORE))
        router.add_get("/call/{appointment_id}", self._page("call", NO_STORE))
        router.add_get("/j/{token}", self.invite)
        router.add_get("/admin", self.admin)
        router.add_get("/statistics", self._signed_in_page("statistics"))
        router.add_get("/set-password", self._page("set-password", NO_STORE))
        router.add_get("/terms", self._page("terms"))
        router.add_get("/privacy", self._page("privacy"))
        router.add_get("/static/{path:.+}", self.static)

    async def root(self, request: web.Request) -> web.Response:
        signed_in = await current_session(request, self._storage)
        raise web.HTTPFound("/dashboard" if signed_in else "/login")

    async def login(self, request: web.Request) -> web.Response:
        if await current_session(request, self._storage):
            raise web.HTTPFound("/dashboard")
        return self.render(request, "login", NO_CACHE)

    async def admin(self, request: web.Request) -> web.Response:
        """The admin pages: signed in, and the role checked here as on every /api/admin route."""
        signed_in = await current_session(request, self._storage)
        if signed_in is None:
            raise web.HTTPFound("/login")
        if not signed_in.therapist.is_admin:
            return web.Response(
                status=403,
                text="403 Forbidden\n\nDiese Seite ist Administrator:innen vorbehalten.\n"
                "This page is for admins only.\n",
                headers=NO_STORE,
            )
        return self.render(request, "admin", NO_STORE)

    def _signed_in_page(self, name: str):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            if await current_session(request, self._storage) is None:
                raise web.HTTPFound("/login")
            return self.render(request, name, NO_STORE)

        return handler

    async def invite(self, request: web.Request) -> web.Response:
        """The waiting room, or one "link not valid" page for every kind of dead link: unknown,
        expired, cancelled, or bound to another browser all look the same from outside."""
        appointment = await invites.find_invite(self._storage, request.match_info["token"])
        access = invites.invite_access(
            appointment, request.cookies.get(invites.COOKIE_NAME), dt.datetime.now(dt.UTC)
        )
        if invites.usable_for_page(access):
            return self.render(request, "join", NO_STORE)
        return self.render(request, "invalid", NO_STORE, status=404)

    async def static(self, request: web.Request) -> web.StreamResponse:
        path = _static_file(request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(
            path, headers={"Content-Type": STATIC_TYPES[path.suffix], **NO_CACHE}
        )

    def render(
        self, request: web.Request, name: str, headers: dict[str, str], status: int = 200
    ) -> web.Response:
        lang, remember = choose_language(request)
        html = self._html[name].replace(_LANG_MARKER, f'<html lang="{lang}">', 1)
        response = web.Response(
            text=html, status=status, content_type="text/html", charset="utf-8", headers=headers
        )
        if remember:
            response.set_cookie(
                LANG_COOKIE,
                lang,
                max_age=LANG_COOKIE_MAX_AGE,
                path="/",
                samesite="Lax",
                secure=self._config.server.public_url.startswith("https://"),
            )
        return response

    def _page(self, name: str, headers: dict[str, str] = NO_CACHE):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.Response:
            return self.render(request, name, headers)

        return handler


def choose_language(request: web.Request) -> tuple[str, bool]:
    """The page language, and whether it was chosen just now (`?lang=`) and should be remembered."""
    asked = request.query.get("lang")
    if asked in LANGUAGES:
        return asked, True
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie in LANGUAGES:
        return cookie, False
    return _from_accept_language(request.headers.get("Accept-Language", "")), False


def _from_accept_language(header: str) -> str:
    """The supported language the browser ranks highest ("en-GB,en;q=0.9,de;q=0.8" → en)."""
    best, best_q = DEFAULT_LANGUAGE, 0.0
    for position, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        # Earlier entries win ties: subtract a little per position.
        score = q - position * 1e-3
        if primary in LANGUAGES and q > 0 and score > best_q:
            best, best_q = primary, score
    return best


def _load_pages(directory: Path) -> dict[str, str]:
    """Every page by name, assembled from its partials (see `assemble_page`)."""
    partials = {p.stem[1:]: p.read_text(encoding="utf-8") for p in directory.glob("_*.html")}
    return {
        path.stem: assemble_page(path.name, path.read_text(encoding="utf-8"), partials)
        for path in directory.glob("*.html")
        if not path.name.startswith("_")
    }


class PageError(RuntimeError):
    """A page's include markers do not fit its partials; raised at startup, naming the page."""


# `<!-- include: NAME key="value" … -->` pulls in the partial `_NAME.html`, optionally followed
# by `<!-- fill: SLOT -->…<!-- /fill -->` blocks. In the partial, `{{key}}` takes a value (HTML
# escaped), `{{key=default}}` has a default, and `<!-- slot: SLOT -->default<!-- /slot -->` is
# replaced by the page's fill. Plain string work at load time: the pages stay static files with
# no inline script or style, and no template engine runs per request.
_INCLUDE = re.compile(
    r"<!-- include: (?P<name>[\w-]+)(?P<params>(?:\s+[\w-]+=\"[^\"]*\")*) -->"
    r"(?P<fills>(?:\s*<!-- fill: [\w-]+ -->.*?<!-- /fill -->)*)",
    re.DOTALL,
)
_PARAM = re.compile(r'([\w-]+)="([^"]*)"')
_FILL = re.compile(r"<!-- fill: ([\w-]+) -->\n?(.*?)<!-- /fill -->", re.DOTALL)
_SLOT = re.compile(r"<!-- slot: ([\w-]+) -->\n?(.*?)<!-- /slot -->\n?", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{\{([\w-]+)(?:=([^}]*))?\}\}")
_LEFTOVERS = ("<!-- include:", "<!-- fill:", "<!-- /fill", "<!-- slot:", "<!-- /slot", "{{")
# Partials may include partials (the logo in the top bar); a cycle stops here.
_MAX_DEPTH = 4


def assemble_page(page: str, text: str, partials: dict[str, str], depth: int = 0) -> str:
    """`text` with every include marker replaced by its partial. A marker naming no partial, a
    missing or unknown value, a fill for no slot, or anything left over is a `PageError`."""
    if depth > _MAX_DEPTH:
        raise PageError(f"{page}: partials nested deeper than {_MAX_DEPTH} (a cycle?)")

    def include(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in partials:
            raise PageError(f"{page}: <!-- include: {name} --> but there is no _{name}.html")
        params = dict(_PARAM.findall(match["params"]))
        fills = dict(_FILL.findall(match["fills"]))
        partial = partials[name].removesuffix("\n")  # the marker's line ends the partial
        unknown = sorted(set(fills) - {slot for slot, _default in _SLOT.findall(partial)})
        if unknown:
            raise PageError(f"{page}: _{name}.html has no slot {unknown[0]!r}")
        partial = _SLOT.sub(lambda slot: fills.get(slot[1], slot[2]), partial)
        used: set[str] = set()

        def value(placeholder: re.Match[str]) -> str:
            key, default = placeholder[1], placeholder[2]
            if key in params:
                used.add(key)
                return html.escape(params[key])
            if default is None:
                raise PageError(f'{page}: _{name}.html needs {key}="…"')
            return default

        partial = _PLACEHOLDER.sub(value, partial)
        unused = sorted(set(params) - used)
        if unused:
            raise PageError(f"{page}: _{name}.html takes no {unused[0]}=")
        return assemble_page(page, partial, partials, depth + 1)

    assembled = _INCLUDE.sub(include, text)
    for leftover in _LEFTOVERS:
        if leftover in assembled:
            raise PageError(f"{page}: {leftover!r} left after assembly (a malformed marker?)")
    return assembled


def _static_file(relative: str) -> Path | None:
    """The file under web/static named by `relative`, or None: no traversal, no directories."""
    if "\\" in relative or "\x00" in relative:
        return None
    candidate = (STATIC_DIR / relative).resolve()
    if not candidate.is_relative_to(STATIC_DIR) or candidate.suffix not in STATIC_TYPES:
        return None
    return candidate if candidate.is_file() else None
