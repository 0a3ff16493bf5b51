"""Command line: ``llmtrace-otel serve | collect | validate | traces | trace ID | stats``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
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
)
from llmtrace_otel.logs import configure_logging
from llmtrace_otel.query_commands import add_query_commands
from llmtrace_otel.runtime import freeze_startup_heap, run
from llmtrace_otel.version import __version__
from llmtrace_otel.web.server import ListenError

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


async def _until_signalled(settings: Settings) -> None:
    """The server is listening: freeze the start-up heap, then wait for SIGTERM/SIGINT."""
    if settings.gc_freeze:
        freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
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


async def _serve(settings: Settings) -> None:
    server = wiring.build_proxy(settings)
    try:
        port = await server.start()
    except BaseException:
        await server.stop(0.1)
        raise
    _announce_proxy(settings, port)
    await _until_signalled(settings)
    _log.info("shutting down: draining in-flight calls (up to %.0fs) and flushing telemetry",
              settings.shutdown_timeout_s)
    await server.stop()


async def _collect(settings: Settings) -> None:
    server = wiring.build_collector(settings)
    try:
        await server.start()
    except BaseException:
        await server.stop(0.1)
        raise
    _log.info("llmtrace-otel %s collect: OTLP/gRPC %s, OTLP/HTTP %s, /health and /metrics on "
              "http://%s:%d", __version__,
              f"port {server.grpc_port}" if server.grpc_port else "off",
              f"port {server.http_port}" if server.http_port else "off", settings.host,
              server.ops_port)
    await _until_signalled(settings)
    _log.info("shutting down: handing queued spans to the pipeline and flushing telemetry")
    await server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _start(args)
    run(_serve(settings), settings.event_loop)
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    settings = _start(args)
    run(_collect(settings), settings.event_loop)
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


def _store_path(args: argparse.Namespace) -> str:
    """``--db``, else ``sqlite.path`` from the config file and environment."""
    return str(args.db or load_settings(args.config).sqlite_path)


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
    add_query_commands(sub, _store_path)  # traces, trace ID, stats
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
