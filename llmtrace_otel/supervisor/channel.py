"""One connection between the telemetry process and a relay worker: framed messages.

A frame is a 4-byte big-endian length, a 1-byte kind and the body. Kinds:

* ``SPANS``: a batch of finished spans (``span_wire``), worker to telemetry process, one way;
* ``REQUEST`` / ``RESPONSE``: a call in either direction, correlated by a 4-byte id at the
  start of the body; the rest of a request is ``op`` (a short ASCII name), a newline and the
  argument bytes, and a response carries the answer bytes (or ``ERROR`` and a message);
* ``EVENT``: a one-way message with an ``op`` and bytes (spend the telemetry process sends
  back to the worker that enforces budgets).

Requests are answered by the handler registered for their ``op``; a missing handler, a
handler that raises, or a peer that goes away fails the request with :class:`ChannelError`
(never a hang: every call has a timeout). A handler of an event or a span batch that raises
is logged and the connection goes on; a frame that is too large or malformed closes it.
Everything runs on the event loop that owns the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["ChannelError", "FrameChannel", "Kind"]

_log = logging.getLogger(__name__)
_HEADER = struct.Struct(">IB")
_ID = struct.Struct(">I")
#: Largest frame accepted (a span batch of a few thousand spans with content fits).
MAX_FRAME: Final = 256 * 1024 * 1024

RequestHandler = Callable[[bytes], Awaitable[bytes]]
MessageHandler = Callable[[bytes], None]


class Kind:
    SPANS: Final = 1
    REQUEST: Final = 2
    RESPONSE: Final = 3
    ERROR: Final = 4
    EVENT: Final = 5


class ChannelError(RuntimeError):
    """A request that failed: no handler, the handler raised, timeout, peer gone."""


class FrameChannel:
    """Framed, bidirectional messages over an asyncio stream pair."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, name: str
    ) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._requests: dict[str, RequestHandler] = {}
        self._events: dict[str, MessageHandler] = {}
        self._on_spans: MessageHandler | None = None
        self._closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- wiring handlers ------------------------------------------------------------------

    def on_request(self, op: str, handler: RequestHandler) -> None:
        self._requests[op] = handler

    def on_event(self, op: str, handler: MessageHandler) -> None:
        self._events[op] = handler

    def on_spans(self, handler: MessageHandler) -> None:
        self._on_spans = handler

    # -- sending --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """The peer closed, or the connection failed or is being closed: what is sent
        now would be lost."""
        return self._closed.is_set() or self._writer.is_closing()

    def buffered(self) -> int:
        """Bytes written and not yet sent (back-pressure: the peer is not reading)."""
        transport = self._writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _send(self, kind: int, body: bytes) -> None:
        if self.closed:
            raise ChannelError(f"{self.name}: the connection is closed")
        self._writer.write(_HEADER.pack(len(body), kind) + body)

    def send_spans(self, batch: bytes) -> None:
        self._send(Kind.SPANS, batch)

    def send_event(self, op: str, data: bytes) -> None:
        self._send(Kind.EVENT, op.encode("ascii") + b"\n" + data)

    async def request(self, op: str, data: bytes = b"", *, timeout_s: float = 5.0) -> bytes:
        """Ask the peer; its answer. Raises :class:`ChannelError`."""
        call_id = next(self._ids) & 0xFFFFFFFF
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._send(Kind.REQUEST, _ID.pack(call_id) + op.encode("ascii") + b"\n" + data)
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ChannelError(f"{self.name}: no answer to {op} within {timeout_s:g} s") from None
        finally:
            self._pending.pop(call_id, None)

    # -- receiving ------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the peer closes; then fail every pending request."""
        try:
            while True:
                header = await self._reader.readexactly(_HEADER.size)
                length, kind = _HEADER.unpack(header)
                if length > MAX_FRAME:
                    raise ChannelError(f"{self.name}: a frame of {length} bytes")
                self._dispatch(kind, await self._reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ChannelError as exc:
            _log.error("%s", exc)
        finally:
            self._closed.set()
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ChannelError(f"{self.name}: the connection closed"))
            self._writer.close()

    def _dispatch(self, kind: int, body: bytes) -> None:
        if kind in (Kind.REQUEST, Kind.RESPONSE, Kind.ERROR) and len(body) < _ID.size:
            raise ChannelError(f"{self.name}: a frame of kind {kind} without a call id")
        if kind == Kind.SPANS:
            if self._on_spans is not None:
                self._deliver(self._on_spans, body, "a span batch")
        elif kind in (Kind.RESPONSE, Kind.ERROR):
            (call_id,) = _ID.unpack_from(body)
            future = self._pending.get(call_id)
            if future is not None and not future.done():
                if kind == Kind.RESPONSE:
                    future.set_result(body[_ID.size :])
                else:
                    future.set_exception(ChannelError(body[_ID.size :].decode(errors="replace")))
        elif kind == Kind.REQUEST:
            (call_id,) = _ID.unpack_from(body)
            op, _, data = body[_ID.size :].partition(b"\n")
            task = asyncio.get_running_loop().create_task(
                self._answer(call_id, op.decode("ascii", "replace"), data)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == Kind.EVENT:
            op, _, data = body.partition(b"\n")
            name = op.decode("ascii", "replace")
            handler = self._events.get(name)
            if handler is not None:
                self._deliver(handler, data, f"event {name}")

    def _deliver(self, handler: MessageHandler, data: bytes, what: str) -> None:
        """A one-way message to its handler: one that fails is logged and lost, and the
        connection goes on (the next message is fine)."""
        try:
            handler(data)
        except Exception:
            _log.exception("%s: the handler of %s failed", self.name, what)

    async def _answer(self, call_id: int, op: str, data: bytes) -> None:
        handler = self._requests.get(op)
        try:
            if handler is None:
                raise ChannelError(f"no handler for {op!r}")
            answer = await handler(data)
            kind = Kind.RESPONSE
        except Exception as exc:  # noqa: BLE001 - the peer gets the failure, not a hang
            _log.exception("%s: request %s failed", self.name, op)
            answer, kind = str(exc).encode(), Kind.ERROR
        if not self.closed:
            self._send(kind, _ID.pack(call_id) + answer)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
