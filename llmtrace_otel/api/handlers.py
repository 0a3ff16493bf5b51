"""Tornado handlers of the read-only query API under ``/api/v1``.

Every query runs on the API's own small thread pool (:class:`ApiContext`), never on the
event loop that relays LLM traffic: SQLite releases the GIL while it works, so a stats query
over a large store does not stall proxied calls. Every answer is JSON; every failure uses the
one error shape of :mod:`llmtrace_otel.api.errors`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from llmtrace_otel.api.errors import ApiError
from llmtrace_otel.api.views import (
    dumps,
    findings_json,
    page_json,
    span_json,
    stats_json,
    trace_json,
)
from llmtrace_otel.exporters.sqlite import (
    CallPage,
    QueryError,
    SpanStore,
    StoreError,
    parse_list_query,
    parse_stats_query,
)
from llmtrace_otel.exporters.sqlite.filters import (
    CallFilter,
    parse_filter_query,
    parse_span_id,
    parse_trace_id,
)
from llmtrace_otel.exporters.sqlite.finding_stats import FindingSummary
from llmtrace_otel.exporters.sqlite.stats import empty_stats
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.errors import error_document

__all__ = [
    "ApiContext",
    "ApiNotFoundHandler",
    "FindingsHandler",
    "SpanHandler",
    "StatsHandler",
    "TraceHandler",
    "TracesHandler",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_MAX_QUERY_BYTES = 4096


@dataclass
class ApiContext:
    """What the API handlers share: the store (None when SQLite is off), the token check
    (``api.admin_token``), the query thread pool and the clock used for relative times."""

    store: SpanStore | None
    auth: BearerToken = field(default_factory=lambda: BearerToken(None, "api.admin_token"))
    workers: int = 2
    clock_ns: Callable[[], int] = time.time_ns
    _executor: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:  # threads start on first use, not at construction
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="llmtrace-api")
        return self._executor

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class _ApiHandler(RequestHandler):
    def initialize(self, context: ApiContext) -> None:
        self._ctx = context

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def prepare(self) -> None:
        refusal = self._ctx.auth.refusal(self.request.headers.get("Authorization"))
        if refusal is not None:
            raise ApiError.of(refusal)

    def _params(self) -> dict[str, str]:
        if len(self.request.query) > _MAX_QUERY_BYTES:
            raise ApiError(400, "invalid_parameter", f"the query string is longer than "
                                                     f"{_MAX_QUERY_BYTES} bytes")
        params: dict[str, str] = {}
        for name, values in self.request.query_arguments.items():
            if len(values) != 1:
                raise ApiError(400, "invalid_parameter", f"{name} is given more than once",
                               name)
            try:
                params[name] = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "invalid_parameter", f"{name} is not UTF-8",
                               name) from None
        return params

    def _store(self) -> SpanStore:
        if self._ctx.store is None:
            raise ApiError(503, "store_disabled", "the SQLite span store is disabled "
                                                  "(sqlite.enabled=false); nothing to query")
        return self._ctx.store

    async def _run(self, work: Callable[[], _T]) -> _T:
        try:
            return await IOLoop.current().run_in_executor(self._ctx.executor, work)
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        except StoreError as exc:
            _log.warning("query API: %s", exc)
            raise ApiError(503, "store_unavailable", "the span store cannot be read right "
                                                     "now; the proxy log says why") from None

    def _has_data(self, store: SpanStore) -> bool:
        """False before the proxy stored its first span: the file does not exist yet."""
        return store.path.exists()

    async def _send(self, document: Callable[[], dict[str, Any]]) -> None:
        """Build and encode the answer on the pool too: a page of spans with captured
        content can be megabytes of JSON, which must not hold up the event loop."""
        self.finish(await self._run(lambda: dumps(document())))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error = exc
        elif isinstance(exc, HTTPError) and exc.status_code == 405:
            error = ApiError(405, "method_not_allowed", f"{self.request.method} is not "
                                                        "allowed: this API is read-only (GET)")
        elif isinstance(exc, HTTPError) and exc.status_code < 500:
            error = ApiError(exc.status_code, "bad_request", exc.log_message or exc.reason
                             or "bad request")
        else:
            error = ApiError(500, "internal_error", "internal error; the proxy log says why")
        reply = error.reply
        self.set_status(reply.status)
        for name, value in reply.headers:  # send_error cleared the headers before calling us
            self.set_header(name, value)
        self.finish(error_document(reply))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, ApiError):
            return  # an answer, not a failure
        super().log_exception(typ, value, tb)


class TracesHandler(_ApiHandler):
    """``GET /api/v1/traces``: a page of calls, newest first."""

    async def get(self) -> None:
        params = self._params()
        try:
            query = parse_list_query(params, self._ctx.clock_ns())
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        store = self._store()
        if not self._has_data(store):
            await self._send(lambda: page_json(CallPage((), None), query.limit))
        else:
            await self._send(lambda: page_json(store.list_calls(query), query.limit))


class TraceHandler(_ApiHandler):
    """``GET /api/v1/traces/{trace_id}``: every stored span of one trace."""

    async def get(self, trace_id: str) -> None:
        self._params_none()
        try:
            trace_id = parse_trace_id(trace_id)
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        store = self._store()
        trace = await self._run(lambda: store.get_trace(trace_id)) if self._has_data(
            store) else None
        if trace is None:
            raise ApiError(404, "not_found", f"no stored spans for trace {trace_id}")
        await self._send(lambda: trace_json(trace))

    def _params_none(self) -> None:
        if self._params():
            raise ApiError(400, "invalid_parameter", "this endpoint takes no query parameters")


class SpanHandler(TraceHandler):
    """``GET /api/v1/spans/{span_id}``: the full record of one span."""

    async def get(self, span_id: str) -> None:  # type: ignore[override]
        self._params_none()
        try:
            span_id = parse_span_id(span_id)
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        store = self._store()
        record = await self._run(lambda: store.get_span(span_id)) if self._has_data(
            store) else None
        if record is None:
            raise ApiError(404, "not_found", f"no stored span {span_id}")
        await self._send(lambda: span_json(record))


class StatsHandler(_ApiHandler):
    """``GET /api/v1/stats``: totals and groups over the filtered calls."""

    async def get(self) -> None:
        params = self._params()
        try:
            query = parse_stats_query(params, self._ctx.clock_ns())
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        store = self._store()
        spec: CallFilter = query.filter
        if not self._has_data(store):
            await self._send(lambda: stats_json(empty_stats(query), spec.since_ns,
                                                spec.until_ns))
        else:
            await self._send(lambda: stats_json(store.stats(query), spec.since_ns,
                                                spec.until_ns))


class FindingsHandler(_ApiHandler):
    """``GET /api/v1/findings``: security findings of the filtered calls, by severity and type."""

    async def get(self) -> None:
        try:
            spec = parse_filter_query(self._params(), self._ctx.clock_ns())
        except QueryError as exc:
            raise ApiError(400, "invalid_parameter", exc.message, exc.param) from None
        store = self._store()
        if not self._has_data(store):
            empty = FindingSummary(0, 0, None, (), (), False)
            await self._send(lambda: findings_json(empty, spec.since_ns, spec.until_ns))
        else:
            await self._send(lambda: findings_json(store.finding_summary(spec), spec.since_ns,
                                                   spec.until_ns))


class ApiNotFoundHandler(_ApiHandler):
    """Any other path under ``/api/v1``: reserved by the API, answered 404, never proxied."""

    def get(self, *_: str) -> None:
        raise ApiError(404, "not_found", f"no API endpoint {self.request.path}; see "
                                         "docs/api.md")

    post = put = patch = delete = get  # type: ignore[assignment]

