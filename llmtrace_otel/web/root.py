"""What the proxy answers itself at the root of its port, instead of relaying it upstream.

No OpenAI-compatible or Anthropic client calls ``GET /``: it is a person with a browser (or
``curl``) finding out what listens on the port, and the browser then asks for
``/favicon.ico``. Relayed, each of those became a stored "error 404" call with no provider
or model, raising the error rate of the dashboards. So:

- ``GET``/``HEAD /``: a browser (``Accept: text/html``) is redirected to the viewer (``/ui/``)
  when the API is on; anything else gets a small JSON document pointing at the viewer,
  ``/metrics``, ``/health`` and the API, and saying how to use the proxy.
- ``/favicon.ico``: ``204 No Content`` (browsers ask for it on every page without an icon,
  ``/metrics`` and ``/health`` included).
- ``/robots.txt``: disallows everything (the port carries an API, not pages to index).

Only ``GET`` and ``HEAD`` are answered on these three paths (other methods get 405: no LLM
API is served at them); every other path is relayed as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from tornado.web import RequestHandler

from llmtrace_otel.version import __version__

__all__ = ["ROOT_PATHS", "RootInfo", "root_routes"]

#: The paths answered here: documented in docs/configuration.md ("Reserved paths").
ROOT_PATHS: Final = ("/", "/favicon.ico", "/robots.txt")
_ROBOTS: Final = b"User-agent: *\nDisallow: /\n"


@dataclass(frozen=True, slots=True)
class RootInfo:
    """Where the proxy's own pages are; ``ui`` and ``api`` are None when ``api.enabled`` is
    off, ``metrics`` when ``metrics.enabled`` is off."""

    ui: str | None
    api: str | None
    metrics: str | None
    health: str

    def document(self) -> dict[str, Any]:
        return {
            "service": "llmtrace-otel",
            "version": __version__,
            "message": "An LLM observability proxy. Point an OpenAI-compatible client's base "
                       "URL at /v1 of this port (Anthropic clients: this port); every call is "
                       "traced. Calls are listed in the viewer.",
            "links": {name: path for name, path in (
                ("ui", self.ui), ("api", self.api), ("metrics", self.metrics),
                ("health", self.health)) if path is not None},
        }


class _RootHandler(RequestHandler):
    def initialize(self, info: RootInfo) -> None:
        self._info = info

    def get(self) -> None:
        accept = self.request.headers.get("Accept", "")
        if self._info.ui is not None and "text/html" in accept:
            self.redirect(self._info.ui, permanent=False)
            return
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self._info.document()))

    def head(self) -> None:
        self.get()


class _FaviconHandler(RequestHandler):
    def get(self) -> None:
        self.set_status(204)
        self.set_header("Cache-Control", "max-age=86400")
        self.finish()

    head = get


class _RobotsHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(_ROBOTS)

    head = get


def root_routes(info: RootInfo) -> list[tuple[str, type, dict[str, Any]]]:
    """Routes for :data:`ROOT_PATHS`; register them before the proxy's catch-all route."""
    return [
        ("/", _RootHandler, {"info": info}),
        ("/favicon.ico", _FaviconHandler, {}),
        ("/robots.txt", _RobotsHandler, {}),
    ]
