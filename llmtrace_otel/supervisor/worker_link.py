"""A relay worker's connection to its telemetry process, and what the worker answers on it.

The worker connects to the control socket the telemetry process gave it
(``WorkerIdentity``), says who it is once it listens (:meth:`WorkerLink.ready`), then:

* ships its finished spans (``shipper.py``);
* answers ``metrics`` (its cumulative metric data, as OTLP protobuf bytes) and ``health``
  (its own ``/health`` report, JSON) when the telemetry process asks;
* asks the telemetry process to render the whole product's ``/metrics`` and ``/health``
  when a client asks this worker for them (``ops_routes`` below): every worker answers for
  all of them;
* receives ``spend`` events (the cost of calls, priced in the telemetry process) for the
  budgets it enforces, and ``hold`` / ``go`` (keep span batches queued while the telemetry
  process's analysis queue is full).

If the telemetry process goes away the worker stops serving: it has nowhere to send
telemetry, and its parent will restart it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tornado.web import RequestHandler

from llmtrace_otel.supervisor.channel import ChannelError, FrameChannel
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.errors import send_error_reply
from llmtrace_otel.web.ops import HEALTH_PATH, METRICS_PATH
from llmtrace_otel.web.server import RouteSpec

__all__ = ["WORKER_ENV", "WorkerIdentity", "WorkerLink", "forwarding_ops_routes"]

#: Environment variable that makes ``llmtrace-otel serve``/``collect`` a worker: its value is
#: :meth:`WorkerIdentity.to_env`. Not an ``LLMTRACE_*`` name: it is not a setting, and the
#: configuration would warn about it.
WORKER_ENV = "_LLMTRACE_WORKER"


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Which worker this process is, the ports it listens on (each worker listens with
    ``SO_REUSEPORT`` on ports its parent holds: port 0 in the settings is resolved there)
    and where its parent's control socket is."""

    index: int
    ports: Mapping[str, int]
    control_path: str

    def to_env(self) -> str:
        return json.dumps({"index": self.index, "ports": dict(self.ports),
                           "control": self.control_path})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> WorkerIdentity | None:
        value = environ.get(WORKER_ENV)
        if not value:
            return None
        try:
            data = json.loads(value)
            return cls(int(data["index"]), {str(k): int(v) for k, v in data["ports"].items()},
                       str(data["control"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise RuntimeError(f"{WORKER_ENV} is set but unreadable ({exc}); it is set by "
                               "the llmtrace-otel that starts relay workers, not by hand"
                               ) from None


class WorkerLink:
    """The worker's end of the channel (see the module docstring)."""

    def __init__(self, channel: FrameChannel, identity: WorkerIdentity) -> None:
        self.channel = channel
        self.identity = identity
        self._serving: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, identity: WorkerIdentity) -> WorkerLink:
        reader, writer = await asyncio.open_unix_connection(identity.control_path)
        channel = FrameChannel(reader, writer, name=f"worker {identity.index}")
        link = cls(channel, identity)
        link._serving = asyncio.get_running_loop().create_task(channel.serve())
        return link

    def ready(self) -> None:
        """Say hello: this worker is serving (listening). The telemetry process counts a
        worker as connected from then on, and announces the product once all are."""
        self.channel.send_event(
            "hello", json.dumps({"index": self.identity.index, "pid": os.getpid()}).encode()
        )

    def answer(
        self, *, metrics: Callable[[], bytes], health: Callable[[], Mapping[str, Any]]
    ) -> None:
        """What this worker answers when the telemetry process asks."""

        async def on_metrics(_: bytes) -> bytes:
            return metrics()

        async def on_health(_: bytes) -> bytes:
            return json.dumps(health()).encode()

        self.channel.on_request("metrics", on_metrics)
        self.channel.on_request("health", on_health)

    def on_hold(self, hold: Callable[[], None], resume: Callable[[], None]) -> None:
        """What the worker does when the telemetry process asks it to hold its span
        batches (its analysis queue is full) and to send them again."""
        self.channel.on_event("hold", lambda _: hold())
        self.channel.on_event("go", lambda _: resume())

    def on_spend(self, handler: Callable[[bytes], None]) -> None:
        self.channel.on_event("spend", handler)

    async def render(
        self, what: str, accept: str = "", accept_encoding: str = ""
    ) -> tuple[int, dict[str, str], bytes]:
        """The telemetry process's rendering of ``metrics`` or ``health`` for the whole
        product: (status, headers, body)."""
        answer = await self.channel.request(
            f"render_{what}",
            json.dumps({"accept": accept, "accept_encoding": accept_encoding}).encode(),
            timeout_s=10.0,
        )
        head, _, body = answer.partition(b"\n")
        meta = json.loads(head)
        return int(meta["status"]), dict(meta["headers"]), body

    async def closed(self) -> None:
        """Wait until the telemetry process closes the connection."""
        if self._serving is not None:
            await asyncio.shield(self._serving)

    async def aclose(self) -> None:
        await self.channel.close()


class _Forwarding(RequestHandler):
    """``/health`` or ``/metrics`` of a worker: the whole product's, from the telemetry
    process (a worker alone knows only its own share)."""

    def initialize(self, what: str, link: WorkerLink, auth: BearerToken | None = None) -> None:
        self._what = what
        self._link = link
        self._auth = auth

    async def get(self) -> None:
        if self._auth is not None:
            refusal = self._auth.refusal(self.request.headers.get("Authorization"))
            if refusal is not None:
                send_error_reply(self, refusal)
                return
        try:
            status, headers, body = await self._link.render(
                self._what,
                self.request.headers.get("Accept", ""),
                self.request.headers.get("Accept-Encoding", ""),
            )
        except ChannelError as exc:
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": "unavailable",
                                    "error": f"the telemetry process did not answer: {exc}"}))
            return
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.finish(body)


def forwarding_ops_routes(link: WorkerLink, *, metrics: bool,
                          metrics_auth: BearerToken | None = None) -> list[RouteSpec]:
    """``/health`` (and ``/metrics``, behind ``metrics_auth``) of a worker, answered for the
    whole product."""
    routes: list[RouteSpec] = [(HEALTH_PATH, _Forwarding, {"what": "health", "link": link})]
    if metrics:
        routes.append((METRICS_PATH, _Forwarding,
                       {"what": "metrics", "link": link, "auth": metrics_auth}))
    return routes
