"""The built-in trace viewer at ``/ui``: static HTML, CSS and JavaScript shipped in the package.

The pages hold no data; the browser script reads the query API (``/api/v1``) with the admin
token the user enters (kept in ``sessionStorage``, sent as ``Authorization: Bearer``). It
builds every element with ``textContent`` / ``createElement`` (never ``innerHTML``), and
every response carries a Content-Security-Policy that allows only the package's own script
and style, so captured prompt text (attacker-controlled) renders as text. No CDN: it works
offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import RequestHandler, StaticFileHandler

__all__ = ["UI_PREFIX", "static_dir", "ui_routes"]

UI_PREFIX = "/ui"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def static_dir() -> Path:
    """The directory of the viewer's files inside the installed package."""
    return Path(__file__).resolve().parent / "static"


def _security_headers(handler: RequestHandler) -> None:
    handler.set_header("Content-Security-Policy", _CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")
    handler.set_header("X-Frame-Options", "DENY")


class UiStaticHandler(StaticFileHandler):
    def set_extra_headers(self, path: str) -> None:
        _security_headers(self)


class UiPageHandler(RequestHandler):
    """Every viewer page is the same document; the script renders the view the path names."""

    def get(self, *_: str) -> None:
        _security_headers(self)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish((static_dir() / "index.html").read_bytes())


def ui_routes() -> list[tuple[str, type, dict[str, Any]]]:
    """Tornado routes of the viewer; register them before the proxy's catch-all route."""
    return [
        (rf"{UI_PREFIX}/static/(.*)", UiStaticHandler, {"path": str(static_dir())}),
        (rf"{UI_PREFIX}(/.*)?", UiPageHandler, {}),
    ]
