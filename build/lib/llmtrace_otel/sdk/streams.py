"""Response-body wrappers: the application reads the body, the call span follows it.

``httpx`` ends nothing when a streamed response's headers arrive (and neither may we:
the HTTP instrumentation's span ends there, which is why the call span is our own). The
wrapper replaces ``response.stream``: every chunk the application reads passes through
:meth:`ObservedCall.chunk` on its way, exhaustion and failure end the span, and so do
``close()`` (closed early, or after the end) and garbage collection (dropped unread).

The classes subclass the stream bases of the httpx module they are used with (``httpx2``
or ``httpx``), because ``Response.iter_raw`` checks ``isinstance(stream, SyncByteStream)``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from llmtrace_otel.sdk.call import ObservedCall

__all__ = ["StreamTypes", "stream_types"]


@dataclass(frozen=True, slots=True)
class StreamTypes:
    sync: type
    async_: type


def stream_types(module: Any) -> StreamTypes:
    """Body wrappers for ``module`` (``httpx2`` or ``httpx``)."""

    class ObservedSyncStream(module.SyncByteStream):  # type: ignore[misc,name-defined]
        __slots__ = ("_inner", "_call")

        def __init__(self, inner: Any, call: ObservedCall) -> None:
            self._inner = inner
            self._call = call

        @property
        def elapsed(self) -> Any:
            """``Response.elapsed`` reads it from ``response.stream``."""
            return getattr(self._inner, "elapsed", None)

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            try:
                for chunk in self._inner:
                    out = call.chunk(chunk)
                    if out:
                        yield out
            except Exception as exc:
                call.stream_failed(exc)
                raise
            tail = call.exhausted()
            if tail:
                yield tail

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._call.closed()

        def __del__(self) -> None:
            # The application may drop a response without reading or closing it.
            call = getattr(self, "_call", None)
            if call is not None and not call.finished:
                call.closed()

    class ObservedAsyncStream(module.AsyncByteStream):  # type: ignore[misc,name-defined]
        __slots__ = ("_inner", "_call")

        def __init__(self, inner: Any, call: ObservedCall) -> None:
            self._inner = inner
            self._call = call

        @property
        def elapsed(self) -> Any:
            return getattr(self._inner, "elapsed", None)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            chunks = self._inner.__aiter__()
            try:
                async for chunk in chunks:
                    out = call.chunk(chunk)
                    if out:
                        yield out
            except Exception as exc:
                call.stream_failed(exc)
                raise
            finally:
                # Close a partly read inner generator in the task that read it, not later
                # in a task of the event loop's own.
                if isinstance(chunks, AsyncGenerator):
                    await chunks.aclose()
            tail = call.exhausted()
            if tail:
                yield tail

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._call.closed()

        def __del__(self) -> None:
            call = getattr(self, "_call", None)
            if call is not None and not call.finished:
                call.closed()

    return StreamTypes(ObservedSyncStream, ObservedAsyncStream)
