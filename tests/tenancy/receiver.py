"""A real local HTTP receiver for alert deliveries (Slack, PagerDuty, webhook).

Records every POST (path, headers, JSON body). ``fail_first`` answers that many requests
with ``fail_status`` before succeeding; ``hang`` holds requests open until closed.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    reply_status: int = 200
    reply_body: bytes = b"ok"
    fail_first: int = 0
    fail_status: int = 500
    hang: bool = False
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._cond:
                    receiver.attempts += 1
                    attempt = receiver.attempts
                if receiver.hang:
                    receiver._release.wait(30)
                    return
                status = receiver.fail_status if attempt <= receiver.fail_first \
                    else receiver.reply_status
                if status < 300:
                    with receiver._cond:
                        receiver.received.append(Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw)))
                        receiver._cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.reply_body)))
                self.end_headers()
                self.wfile.write(receiver.reply_body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
