"""Where the SDK instrumentation's spans and metrics go: the application's providers, or ours.

Tracing, decided from the tracer provider passed in, else the global one:

- **attached** (an SDK ``TracerProvider``): GenAI spans are made by a private provider that
  shares the application's resource, sampler, id generator and span limits, so they are
  ordinary members of the application's traces. Each finished span runs through our
  processor chain (cost, ..., content policy) and the enriched copy is handed to the
  application's own span processors, so *its* exporters receive what ours would. A tiny
  processor put first in the application's provider drains our chain whenever the
  application flushes or shuts down, so no GenAI span is still queued on our side when
  its exporters stop. Our own exporters are off by default here (``sdk.exporters``).
- **standalone** (no provider set): the proxy's pipeline is built for us, with SQLite by
  default and OTLP when configured; nothing is installed globally.
- **foreign** (any other provider, e.g. a vendor's or a no-op): its tracer is used as is;
  no chain runs, so message content is recorded only when capture is on.

Metrics: an SDK ``MeterProvider`` (or any provider passed in) is used as is; otherwise our
own, with a Prometheus endpoint when ``sdk.prometheus_port`` is set and OTLP when our
exporters are on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, cast
from wsgiref.simple_server import WSGIServer

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider as APIMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.trace import ProxyTracerProvider, Tracer

from llmtrace_otel.compat import (
    put_span_processor_first,
    remove_span_processor,
    span_limits_of,
    span_processor_of,
)
from llmtrace_otel.config.choices import SdkExporters
from llmtrace_otel.telemetry.instruments import ProxyInstruments
from llmtrace_otel.telemetry.pipeline import Telemetry
from llmtrace_otel.version import __version__

__all__ = ["SDK_SCOPE", "Mode", "PipelineFactory", "SDKTelemetry", "SdkConfig",
           "build_sdk_telemetry"]

_log = logging.getLogger(__name__)

#: Instrumentation scope of the SDK's spans and metrics.
SDK_SCOPE = "llmtrace_otel.sdk"


class Mode(StrEnum):
    ATTACHED = "attached"
    STANDALONE = "standalone"
    FOREIGN = "foreign"


@dataclass(frozen=True, slots=True)
class SdkConfig:
    """The SDK instrumentation's own settings (``sdk.*`` and the two it shares)."""

    #: Hosts whose calls may be LLM calls (exact, or ``*.suffix``); empty: any host.
    hosts: tuple[str, ...] = ()
    #: Base URLs of llmtrace-otel proxies: their calls get trace context, no SDK span.
    proxy_urls: tuple[str, ...] = ()
    #: Ask OpenAI streams for usage and hide the extra chunk (``upstream.*``).
    stream_include_usage: bool = True
    #: Use our own exporters too: auto (standalone only), on or off (``sdk.exporters``).
    exporters: SdkExporters = SdkExporters.AUTO
    #: Serve Prometheus metrics on this port when we own the meter provider (0 = off).
    prometheus_port: int = 0
    prometheus_host: str = "127.0.0.1"
    #: Export message content (``telemetry.capture_content``).
    capture_content: bool = False


class PipelineFactory(Protocol):
    """Builds our pipeline for the SDK (the assembly provides it)."""

    def __call__(self, *, exporters: bool, prometheus: bool, instrumentation_name: str,
                 tracer_provider: TracerProvider | None,
                 meter_provider: MeterProvider | None,
                 span_processors: Sequence[SpanProcessor]) -> Telemetry: ...


class _ForwardToApplication(SpanProcessor):
    """The last sink of our chain: the application's own span processors."""

    def __init__(self, target: SpanProcessor) -> None:
        self._target = target

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._target.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._target.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # the application flushes its own processors (and drains us first)

    def shutdown(self) -> None:
        return None  # the application owns them


class _DrainFirst(SpanProcessor):
    """Put first in the application's provider: its flush/shutdown drains our chain."""

    def __init__(self, ours: TracerProvider) -> None:
        self._ours = ours

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._ours.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._ours.force_flush(10_000)


@dataclass
class SDKTelemetry:
    """The tracer and instruments of the SDK instrumentation, and how to stop them."""

    tracer: Tracer
    instruments: ProxyInstruments
    #: True when something in-process reads message content before any export.
    needs_content: bool
    tracing: Mode
    metering: Mode
    config: SdkConfig
    telemetry: Telemetry
    #: Where other instrumentation's spans belong (the HTTP spans of ``http_spans=True``):
    #: the application's provider, or ours when standalone.
    span_provider: trace.TracerProvider
    meter_provider: APIMeterProvider
    application_provider: TracerProvider | None = None
    _drain: _DrainFirst | None = None
    _servers: list[WSGIServer] = field(default_factory=list)

    @property
    def prometheus_port(self) -> int | None:
        """Port of our Prometheus endpoint, when one is served."""
        return int(self._servers[0].server_port) if self._servers else None

    def force_flush(self, timeout_millis: int = 10000) -> bool:
        """Spans: through the chain and to every exporter. Metrics are left to their
        readers: ``MeterProvider.force_flush`` makes a ``PrometheusMetricReader`` queue a
        collection that its next scrape repeats (every series twice), and an OTLP reader
        exports on its own schedule and at shutdown."""
        return self.telemetry.tracer_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop what we created; the application's providers are left running."""
        try:
            if self._drain is not None and self.application_provider is not None:
                remove_span_processor(self.application_provider, self._drain)
            self.telemetry.tracer_provider.shutdown()
        finally:
            if self.metering is Mode.STANDALONE:
                self.telemetry.meter_provider.shutdown()
            for server in self._servers:
                server.shutdown()
                server.server_close()
            self._servers.clear()


def _tracing_mode(provider: object) -> Mode:
    if isinstance(provider, TracerProvider):
        return Mode.ATTACHED
    if isinstance(provider, ProxyTracerProvider):
        return Mode.STANDALONE  # nothing set globally (yet)
    return Mode.FOREIGN


def _metering_mode(provider: object, explicit: bool) -> Mode:
    if isinstance(provider, MeterProvider):
        return Mode.ATTACHED
    return Mode.FOREIGN if explicit else Mode.STANDALONE


def build_sdk_telemetry(
    config: SdkConfig,
    pipeline: PipelineFactory,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: APIMeterProvider | None = None,
) -> SDKTelemetry:
    """Attach to the given (else the global) providers, or build our own pipeline."""
    app_tracing = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    app_metering = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    tracing = _tracing_mode(app_tracing)
    metering = _metering_mode(app_metering, explicit=meter_provider is not None)
    own_exporters = config.exporters is SdkExporters.ON or (
        config.exporters is SdkExporters.AUTO and tracing is Mode.STANDALONE)
    shared_meters = (cast(MeterProvider, app_metering)
                     if metering is not Mode.STANDALONE else None)

    private: TracerProvider | None = None
    forward: list[SpanProcessor] = []
    if tracing is Mode.ATTACHED:
        app = cast(TracerProvider, app_tracing)
        private = TracerProvider(
            sampler=app.sampler,
            resource=app.resource,
            id_generator=app.id_generator,
            span_limits=span_limits_of(app),
        )
        forward.append(_ForwardToApplication(span_processor_of(app)))
    telemetry = pipeline(
        exporters=own_exporters,
        prometheus=config.prometheus_port > 0,
        instrumentation_name=SDK_SCOPE,
        tracer_provider=private,
        meter_provider=shared_meters,
        span_processors=forward,
    )
    sdk = SDKTelemetry(
        tracer=telemetry.tracer,
        instruments=telemetry.instruments,
        needs_content=telemetry.needs_content,
        tracing=tracing,
        metering=metering,
        config=config,
        telemetry=telemetry,
        span_provider=(telemetry.tracer_provider if tracing is Mode.STANDALONE
                       else app_tracing),
        meter_provider=shared_meters if shared_meters is not None else telemetry.meter_provider,
    )
    if tracing is Mode.ATTACHED:
        app = cast(TracerProvider, app_tracing)
        sdk.application_provider = app
        sdk._drain = _DrainFirst(telemetry.tracer_provider)
        put_span_processor_first(app, sdk._drain)
    elif tracing is Mode.FOREIGN:
        # No chain sees these spans before the application's exporters: no content
        # unless the user opted in to exporting it.
        sdk.tracer = app_tracing.get_tracer(SDK_SCOPE, __version__)
        sdk.needs_content = config.capture_content
    if telemetry.prometheus_registry is not None and metering is Mode.STANDALONE:
        from prometheus_client import start_http_server

        server, _ = start_http_server(config.prometheus_port, addr=config.prometheus_host,
                                      registry=telemetry.prometheus_registry)
        sdk._servers.append(server)
    _log.debug("llmtrace-otel SDK telemetry: tracing %s, metrics %s, own exporters %s",
               tracing.value, metering.value, own_exporters)
    return sdk
