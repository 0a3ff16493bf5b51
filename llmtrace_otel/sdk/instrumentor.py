"""``LLMTraceInstrumentor``: GenAI spans for LLM calls made through httpx, in-process.

It wraps ``Client.send`` and ``AsyncClient.send`` of ``httpx2`` (what the current
``openai`` and ``anthropic`` SDKs are built on) and of ``httpx`` when installed, with
``wrapt`` and the ``BaseInstrumentor`` life cycle of opentelemetry-instrumentation, as
opentelemetry-instrumentation-httpx does. ``send`` is one level above the transports
that the HTTP instrumentation wraps, so the two never touch the same attribute and nest
the same way whatever order they are enabled in::

    chat gpt-4o-mini      (ours: CLIENT, the GenAI call; ends when the body is read)
    └── POST              (opentelemetry-instrumentation-httpx, when enabled: one
                           attempt, ends when the response headers arrive)

A request that is not a recognised LLM call is passed straight through. A failure inside
the instrumentation is logged and counted, and the application's call goes on as if we
were not there.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Collection, MutableMapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from typing import Any

from opentelemetry import context as context_api
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.propagate import inject
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from wrapt import wrap_function_wrapper

from llmtrace_otel.compat import preloaded_content, replace_content
from llmtrace_otel.config import ConfigError, Settings, load_settings, split_list
from llmtrace_otel.sdk.attach import (
    PipelineFactory,
    SdkConfig,
    SDKTelemetry,
    build_sdk_telemetry,
)
from llmtrace_otel.sdk.call import ObservedCall, count_fault
from llmtrace_otel.sdk.matching import CallMatcher, RequestLine
from llmtrace_otel.sdk.streams import StreamTypes, stream_types
from llmtrace_otel.telemetry.pipeline import Telemetry

__all__ = ["HTTPX_MODULES", "LLMTraceInstrumentor"]

_log = logging.getLogger(__name__)

#: The httpx-compatible modules instrumented when importable.
HTTPX_MODULES: tuple[str, ...] = ("httpx2", "httpx")
_SEND = "send"


def _importable(names: Collection[str]) -> list[Any]:
    modules = []
    for name in names:
        try:
            modules.append(import_module(name))
        except ImportError:
            continue
    return modules


def _signed(headers: MutableMapping[str, str]) -> bool:
    """A request whose signature covers the body (AWS SigV4): its body is never edited."""
    return "x-amz-date" in headers or headers.get("authorization", "").startswith("AWS4-")


@dataclass
class _Hooks:
    """What the ``send`` wrappers need; one per ``instrument()``."""

    telemetry: SDKTelemetry
    matcher: CallMatcher
    stream_include_usage: bool
    active: bool = True

    def begin(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
              ) -> ObservedCall | None:
        """The call's observer, or None to pass the request through. Never raises."""
        call: ObservedCall | None = None
        try:
            if not self.active or not is_instrumentation_enabled():
                return None
            request = args[0] if args else kwargs["request"]
            url = request.url
            line = RequestLine(request.method, url.scheme, url.host, url.port, url.path)
            headers = request.headers
            if self.matcher.is_proxy(line):
                inject(headers)  # the proxy's span joins the application's trace
                return None
            adapter = self.matcher.adapter_for(line, headers)
            if adapter is None:
                return None
            try:
                body = request.content
            except Exception:  # a streaming request body: not one the SDKs send
                return None
            target = self.matcher.target(adapter, line, body)
            if target is None:
                return None
            call = ObservedCall(self.telemetry, target, line.method)
            llm = target.request
            if (llm.stream and not llm.stream_usage_requested
                    and self.stream_include_usage and not _signed(headers)
                    and "content-length" in headers and "transfer-encoding" not in headers):
                rewritten = adapter.request_with_stream_usage(body)
                if rewritten is not None:
                    request.stream = module.ByteStream(rewritten)
                    replace_content(request, rewritten)
                    headers["Content-Length"] = str(len(rewritten))
                    headers["Accept-Encoding"] = "identity"  # so the stream can be edited
                    call.edit_stream = True
            call.inject(headers)
            return call
        except Exception:
            count_fault(self.telemetry, "request")
            if call is not None:
                call.closed()  # the span was started: end it
            return None

    def observe(self, call: ObservedCall, response: Any, streamed: bool, wrapper: type) -> None:
        """Follow the response; never raises."""
        try:
            status = int(response.status_code)
            if not streamed:
                call.complete(status, response.content)
                return
            headers = response.headers
            content_type = headers.get("content-type", "")
            preloaded = preloaded_content(response)
            if preloaded is not None:
                # A transport that read the body already (mocks, caches): the application
                # reads ``response.content`` (decoded), never the stream.
                call.streaming(status, content_type, "")
                edited = call.chunk(preloaded) + call.exhausted()
                if call.edit_stream:
                    replace_content(response, edited)
                return
            call.streaming(status, content_type,
                           headers.get("content-encoding", "").strip().lower())
            response.stream = wrapper(response.stream, call)
        except Exception:
            count_fault(self.telemetry, "response")
            call.closed()

    def send(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
             kwargs: dict[str, Any], *, module: Any, streams: StreamTypes) -> Any:
        call = self.begin(module, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        token = context_api.attach(call.context())
        try:
            response = wrapped(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            context_api.detach(token)
        self.observe(call, response, bool(kwargs.get("stream", False)), streams.sync)
        return response

    async def send_async(self, wrapped: Callable[..., Any], instance: Any,
                         args: tuple[Any, ...], kwargs: dict[str, Any], *, module: Any,
                         streams: StreamTypes) -> Any:
        call = self.begin(module, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        token = context_api.attach(call.context())
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException as exc:
            call.failed(exc)
            raise
        finally:
            context_api.detach(token)
        self.observe(call, response, bool(kwargs.get("stream", False)), streams.async_)
        return response


@dataclass
class _Installed:
    hooks: _Hooks
    #: (class, attribute, the wrapper we put there)
    patches: list[tuple[type, str, Any]] = field(default_factory=list)
    #: HTTP instrumentors we turned on (``http_spans=True``), to turn off again.
    http: list[Any] = field(default_factory=list)


def _enable_http_spans(telemetry: SDKTelemetry) -> list[Any]:
    """opentelemetry-instrumentation-httpx for every call, unless someone already did."""
    from opentelemetry.instrumentation import httpx as httpx_instrumentation

    enabled = []
    for name, class_name in (("httpx2", "HTTPX2ClientInstrumentor"),
                             ("httpx", "HTTPXClientInstrumentor")):
        if not _importable((name,)):
            continue
        instrumentor = getattr(httpx_instrumentation, class_name)()
        if instrumentor.is_instrumented_by_opentelemetry:
            continue
        instrumentor.instrument(tracer_provider=telemetry.span_provider,
                                meter_provider=telemetry.meter_provider)
        enabled.append(instrumentor)
    return enabled


def sdk_parts(settings: Settings) -> tuple[SdkConfig, PipelineFactory]:
    """The SDK's own config and its pipeline builder, from ``settings``.

    ``instrument()`` is an entry point (like the CLI): this is the one place of the SDK
    that reads :class:`Settings`, and the pipeline comes from the assembly
    (:func:`llmtrace_otel.wiring.build_pipeline`).
    """
    from llmtrace_otel.wiring import Extras, build_pipeline

    config = SdkConfig(
        hosts=split_list(settings.sdk_hosts),
        proxy_urls=split_list(settings.sdk_proxy_urls),
        stream_include_usage=settings.stream_include_usage,
        exporters=settings.sdk_exporters,
        prometheus_port=settings.sdk_prometheus_port,
        prometheus_host=settings.host,
        capture_content=settings.capture_content,
    )

    def pipeline(*, exporters: bool, prometheus: bool, instrumentation_name: str,
                 tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None,
                 span_processors: Sequence[SpanProcessor]) -> Telemetry:
        return build_pipeline(
            dataclasses.replace(settings, metrics_enabled=settings.metrics_enabled and prometheus),
            env=os.environ if exporters else {},
            extras=Extras(span_processors=span_processors),
            instrumentation_name=instrumentation_name,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            exporters=exporters,
        )

    return config, pipeline


class LLMTraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """GenAI spans, metrics, cost (and the rest of the chain) for LLM calls over httpx.

    ``instrument()`` takes the usual ``tracer_provider`` / ``meter_provider`` (default:
    the global ones), ``settings`` (default: :func:`load_settings`, i.e. ``LLMTRACE_*``
    and ``LLMTRACE_CONFIG``) and ``http_spans`` (also turn on
    opentelemetry-instrumentation-httpx, for a plain HTTP span per request).
    Instrumenting twice is a no-op (with a warning, as for every ``BaseInstrumentor``);
    ``uninstrument()`` restores the original ``send`` methods and stops what
    ``instrument()`` started.
    """

    _installed: _Installed | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # httpx2 or httpx, whichever is installed: checked in _instrument

    def _instrument(self, **kwargs: Any) -> None:
        modules = _importable(HTTPX_MODULES)
        if not modules:
            raise ModuleNotFoundError("llmtrace-otel SDK instrumentation needs httpx2 or httpx")
        settings = kwargs.get("settings")
        if settings is None:
            try:
                settings = load_settings()
            except ConfigError as exc:
                # The opentelemetry-instrument path: an exception here would stop every
                # instrumentor after us. The explicit llmtrace_otel.instrument() raises.
                _log.error("llmtrace-otel SDK instrumentation not enabled: invalid "
                           "configuration: %s", exc)
                return
        config, pipeline = sdk_parts(settings)
        telemetry = build_sdk_telemetry(
            config, pipeline,
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
        )
        hooks = _Hooks(
            telemetry=telemetry,
            matcher=CallMatcher(config.hosts, config.proxy_urls),
            stream_include_usage=config.stream_include_usage,
        )
        installed = _Installed(hooks)
        for module in modules:
            streams = stream_types(module)
            for cls, wrapper in (
                (module.Client, partial(hooks.send, module=module, streams=streams)),
                (module.AsyncClient, partial(hooks.send_async, module=module, streams=streams)),
            ):
                wrap_function_wrapper(cls, _SEND, wrapper)
                installed.patches.append((cls, _SEND, cls.__dict__[_SEND]))
        if kwargs.get("http_spans"):
            installed.http = _enable_http_spans(telemetry)
        self._installed = installed
        _log.info("llmtrace-otel SDK instrumentation on for %s (tracing %s, metrics %s)",
                  ", ".join(m.__name__ for m in modules), telemetry.tracing.value,
                  telemetry.metering.value)

    def _uninstrument(self, **kwargs: Any) -> None:
        installed, self._installed = self._installed, None
        if installed is None:
            return
        installed.hooks.active = False  # a wrapper we cannot remove passes through
        for cls, name, ours in installed.patches:
            if cls.__dict__.get(name) is ours:
                unwrap(cls, name)
            else:
                _log.warning("%s.%s was wrapped again after llmtrace-otel; ours is left "
                             "in place, inactive", cls.__qualname__, name)
        for instrumentor in installed.http:
            instrumentor.uninstrument()
        installed.hooks.telemetry.shutdown()

    @property
    def telemetry(self) -> SDKTelemetry | None:
        """The active telemetry (None when not instrumented)."""
        return self._installed.hooks.telemetry if self._installed is not None else None
