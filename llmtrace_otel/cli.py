"""Command line: ``llmtrace-otel serve | collect | validate | traces | trace ID | stats``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from llmtrace_otel import wiring
from llmtrace_otel.config import (
    FIELDS,
    ConfigError,
    Resolution,
    Settings,
    describe,
    load_settings,
    mask_url_credentials,
    resolve,
    split_endpoint,
    worker_count,
)
from llmtrace_otel.exporters.sqlite.queries import SpanReader
from llmtrace_otel.exporters.store import open_store
from llmtrace_otel.logs import configure_logging
from llmtrace_otel.proxy.app import ProxyServer
from llmtrace_otel.query_commands import add_query_commands
from llmtrace_otel.receiver.collector import CollectorServer
from llmtrace_otel.runtime import freeze_startup_heap, run
from llmtrace_otel.supervisor.worker_link import WorkerIdentity, WorkerLink
from llmtrace_otel.version import __version__
from llmtrace_otel.web.server import ListenError, listen, listen_backlog, reserve

__all__ = ["main"]

_log = logging.getLogger("llmtrace_otel")


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config file (also LLMTRACE_CONFIG)")
    group = parser.add_argument_group(
        "settings (flag > env > file > default; every key: docs/configuration.md)")
    for spec in FIELDS:
        help_text = f"{spec.help} [env {spec.env}; file {spec.key}]"
        if spec.is_bool:
            group.add_argument(spec.flag, dest=spec.name, default=None,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            choices = spec.choices
            group.add_argument(spec.flag, dest=spec.name, default=None,
                               metavar="{" + ",".join(choices) + "}" if choices else "VALUE",
                               help=help_text)


def _resolve(args: argparse.Namespace) -> Resolution:
    overrides: dict[str, Any] = {}
    for spec in FIELDS:
        value = getattr(args, spec.name, None)
        if value is not None:
            overrides[spec.name] = value if isinstance(value, bool) else str(value)
    return resolve(args.config, overrides=overrides)


def _start(args: argparse.Namespace) -> Settings:
    """Resolve the settings of a long-running command and set up its logging."""
    resolution = _resolve(args)
    settings = resolution.settings
    configure_logging(logging.getLevelName(settings.log_level.value), settings.log_format)
    for warning in resolution.warnings:
        _log.warning("%s", warning)
    return settings


def _signalled() -> asyncio.Event:
    """An event set by SIGTERM/SIGINT; installed first thing, so that a signal during
    start-up stops the process cleanly instead of killing it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _until_signalled(settings: Settings, stop: asyncio.Event) -> None:
    """The server is listening: freeze the start-up heap, then wait for SIGTERM/SIGINT."""
    if settings.gc_freeze:
        freeze_startup_heap()
    await stop.wait()


def _announce_proxy(settings: Settings, port: int) -> None:
    base = f"http://{settings.host}:{port}"
    _log.info("llmtrace-otel %s proxy listening on %s", __version__, base)
    _log.info("  OpenAI-compatible calls -> %s", mask_url_credentials(settings.upstream_url))
    _log.info("  Anthropic calls         -> %s",
              mask_url_credentials(settings.anthropic_upstream_url))
    if settings.api_enabled:
        _log.info("  trace viewer: %s/ui/   query API: %s/api/v1/traces", base, base)
    _log.info("  health: %s/health%s", base,
              f"   metrics: {base}/metrics" if settings.metrics_enabled else "")
    _log.info("  spans stored in %s; message content %s", settings.sqlite_path
              if settings.sqlite_enabled else "(no local store)",
              "captured" if settings.capture_content else
              "not captured (turn on with --capture-content)")


async def _as_processes(settings: Settings, argv: Sequence[str], stop: asyncio.Event, *,
                        collector: bool) -> bool:
    """Run as a relay worker (started by a telemetry process), or as the telemetry process
    of ``server.workers`` > 1 relay workers; False when this is one process doing it all."""
    identity = WorkerIdentity.from_env(os.environ)
    if identity is not None:
        await _as_worker(settings, identity, stop, collector=collector)
        return True
    workers = worker_count(settings.workers)
    if workers > 1:
        await _supervise(settings, workers, argv, stop, collector=collector)
        return True
    return False


async def _serve(settings: Settings, argv: Sequence[str]) -> None:
    stop = _signalled()
    if await _as_processes(settings, argv, stop, collector=False):
        return
    server = wiring.build_proxy(settings)
    try:
        port = await server.start()
    except BaseException:
        await server.stop(0.1)
        raise
    _announce_proxy(settings, port)
    await _until_signalled(settings, stop)
    _log.info("shutting down: draining in-flight calls (up to %.0fs) and flushing telemetry",
              settings.shutdown_timeout_s)
    await server.stop()


def _warn_oversubscription(settings: Settings, workers: int) -> None:
    cores = worker_count(0)
    busy = workers + 1 + settings.security_workers  # + the telemetry process
    if busy > cores + 1:
        _log.warning("server.workers=%d and security.workers=%d run %d busy processes on %d "
                     "cores: they will compete for them (lower one of the two)", workers,
                     settings.security_workers, busy, cores)


def _hold_ports(settings: Settings, *, collector: bool) -> tuple[dict[str, int],
                                                                  list[socket.socket]]:
    """Reserve the ports the relay workers will listen on: port 0 is resolved here, and a
    port in use is a one-line error before any worker starts."""
    held = reserve(settings.host, settings.port, setting="--port / server.port")
    ports = {"server": held[0].getsockname()[1]}
    if collector:
        for name, endpoint, setting in (
                ("http", settings.receiver_http_endpoint,
                 "--receiver-http-endpoint / receiver.http_endpoint"),
                ("grpc", settings.receiver_grpc_endpoint,
                 "--receiver-grpc-endpoint / receiver.grpc_endpoint")):
            if endpoint is None:
                continue
            host, port = split_endpoint(endpoint)
            if name == "http" and (host, port) == (settings.host, settings.port) and port:
                ports[name] = ports["server"]
                continue
            more = reserve(host, port, setting=setting)
            held.extend(more)
            ports[name] = more[0].getsockname()[1]
    return ports, held


async def _supervise(settings: Settings, workers: int, argv: Sequence[str],
                     stop: asyncio.Event, *, collector: bool) -> None:
    """The telemetry process: hold the ports, start the relay workers listening on them,
    serve them, drain them on SIGTERM/SIGINT."""
    _warn_oversubscription(settings, workers)
    ports, held = _hold_ports(settings, collector=collector)
    process = wiring.build_telemetry_process(settings, collector=collector)
    try:
        await process.start(argv=[sys.executable, "-m", "llmtrace_otel", *argv],
                            env={**os.environ, **({} if collector
                                                  else wiring.worker_environment(settings))},
                            ports=ports)
    except BaseException:
        await process.stop(0.1)
        raise
    if collector:
        _announce_collector(settings, ports.get("grpc"), ports.get("http"), ports["server"])
    else:
        _announce_proxy(settings, ports["server"])
    _log.info("  %d relay workers (server.workers); analysis and export in this process "
              "(pid %d)", workers, os.getpid())
    await _until_signalled(settings, stop)
    _log.info("shutting down: draining the workers (up to %.0fs) and flushing telemetry",
              settings.shutdown_timeout_s)
    await process.stop(settings.shutdown_timeout_s)
    for sock in held:
        sock.close()


async def _as_worker(settings: Settings, identity: WorkerIdentity, stop: asyncio.Event, *,
                     collector: bool) -> None:
    """One relay worker: serve until SIGTERM or the telemetry process goes away, then
    drain (calls end, queued spans are shipped)."""
    link = await WorkerLink.connect(identity)
    server: ProxyServer | CollectorServer
    if collector:
        server = wiring.build_collector_worker(settings, link)
        await server.start(identity.ports)
    else:
        server = wiring.build_proxy_worker(settings, link)
        await server.start(listen(settings.host, identity.ports["server"],
                                  setting="--port / server.port", reuse_port=True,
                                  backlog=listen_backlog(settings.max_connections)))
    link.ready()
    _log.debug("worker %d (pid %d) serving", identity.index, os.getpid())
    signalled = asyncio.ensure_future(_until_signalled(settings, stop))
    orphaned = asyncio.ensure_future(link.closed())
    await asyncio.wait([signalled, orphaned], return_when=asyncio.FIRST_COMPLETED)
    if orphaned.done():
        _log.error("worker %d: the telemetry process is gone; stopping", identity.index)
    signalled.cancel()
    await server.stop()
    await link.aclose()
    orphaned.cancel()


def _announce_collector(settings: Settings, grpc_port: int | None, http_port: int | None,
                        ops_port: int | None) -> None:
    _log.info("llmtrace-otel %s collect: OTLP/gRPC %s, OTLP/HTTP %s, /health and /metrics on "
              "http://%s:%d", __version__, f"port {grpc_port}" if grpc_port else "off",
              f"port {http_port}" if http_port else "off", settings.host, ops_port or 0)


async def _collect(settings: Settings, argv: Sequence[str]) -> None:
    stop = _signalled()
    if await _as_processes(settings, argv, stop, collector=True):
        return
    server = wiring.build_collector(settings)
    try:
        await server.start()
    except BaseException:
        await server.stop(0.1)
        raise
    _announce_collector(settings, server.grpc_port, server.http_port, server.ops_port)
    await _until_signalled(settings, stop)
    _log.info("shutting down: handing queued spans to the pipeline and flushing telemetry")
    await server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _start(args)
    run(_serve(settings, args.argv), settings.event_loop)
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    settings = _start(args)
    run(_collect(settings, args.argv), settings.event_loop)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    resolution = _resolve(args)
    rows = describe(resolution)
    width = max(len(key) for key, _, _ in rows)
    value_width = min(48, max(len(value) for _, value, _ in rows))
    print("configuration is valid; resolved values (secrets masked) and where each comes from:")
    for key, value, source in rows:
        print(f"  {key.ljust(width)}  {value.ljust(value_width)}  ({source})")
    for warning in resolution.warnings:
        print(f"warning: {warning}")
    return 0


def _open_store(args: argparse.Namespace) -> SpanReader | None:
    """``--db`` (SQLite), else the store the config file, the environment and
    ``--storage-url`` name."""
    overrides = {"storage_url": args.storage_url} if args.storage_url else None
    return open_store(load_settings(args.config, overrides=overrides), sqlite_path=args.db)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtrace-otel",
        description="OpenTelemetry-native LLM observability proxy.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the proxy")
    _add_settings_flags(serve)
    serve.set_defaults(func=_cmd_serve)
    collect = sub.add_parser(
        "collect", help="run the OTLP receiver: our processors on spans from any source")
    _add_settings_flags(collect)
    collect.set_defaults(func=_cmd_collect)
    validate = sub.add_parser("validate", help="check the configuration and print it")
    _add_settings_flags(validate)
    validate.set_defaults(func=_cmd_validate)
    add_query_commands(sub, _open_store)  # traces, trace ID, stats
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv  # what relay workers are started with (server.workers)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"llmtrace-otel: invalid configuration: {exc.problems[0]}", file=sys.stderr)
        else:
            print(f"llmtrace-otel: invalid configuration ({len(exc.problems)} problems):",
                  file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
        return 2
    except ListenError as exc:
        print(f"llmtrace-otel: {exc}", file=sys.stderr)
        return 1
