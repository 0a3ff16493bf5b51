"""The proxy's I/O without its telemetry: a baseline for what relaying alone costs.

The same Tornado server settings, ``stream_request_body`` handler, header filtering
(``llmtrace_otel.proxy.headers``) and pooled aiohttp client as ``llmtrace-otel serve``,
and nothing else: no parsing, span, metrics, guards or exporters. ``bench/instructions.py
--baseline`` runs it to show how much of the proxy's CPU per request is telemetry.

Usage: ``python bench/baseline_relay.py PORT UPSTREAM_URL [--uvloop]``
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler, stream_request_body
from yarl import URL

from llmtrace_otel.proxy.headers import request_headers, response_headers


@stream_request_body
class RelayHandler(RequestHandler):
    SUPPORTED_METHODS = ("GET", "POST")

    def initialize(self, session: aiohttp.ClientSession, upstream: str) -> None:
        self._session = session
        self._upstream = upstream
        self._chunks: list[bytes] = []

    def set_default_headers(self) -> None:
        self.clear_header("Server")
        self.clear_header("Content-Type")

    def compute_etag(self) -> None:
        return None

    def data_received(self, chunk: bytes) -> None:
        self._chunks.append(chunk)

    async def post(self) -> None:
        response = await self._session.request(
            "POST", URL(self._upstream + self.request.uri, encoded=True),
            headers=request_headers(self.request.headers.get_all()),
            data=b"".join(self._chunks), allow_redirects=False, compress=None)
        try:
            self.set_status(response.status, response.reason)
            for name, value in response_headers(response.headers.items()):
                self.add_header(name, value)
            await self.finish(await response.read())
        finally:
            response.release()

    get = post


async def serve(port: int, upstream: str) -> None:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=512, limit_per_host=0, ttl_dns_cache=300,
                                       keepalive_timeout=30),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        timeout=aiohttp.ClientTimeout(total=600, sock_connect=10, sock_read=300),
        cookie_jar=aiohttp.DummyCookieJar())
    app = Application([(r"/.*", RelayHandler, {"session": session, "upstream": upstream})],
                      compress_response=False, log_function=lambda handler: None)
    server = HTTPServer(app, idle_connection_timeout=75, body_timeout=300,
                        decompress_request=False, max_body_size=100 * 1024 * 1024)
    server.listen(port, "127.0.0.1")
    await asyncio.Event().wait()


def main() -> None:
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    if "--uvloop" in sys.argv[3:]:
        import uvloop
        uvloop.run(serve(port, upstream))
    else:
        asyncio.run(serve(port, upstream))


if __name__ == "__main__":
    main()
