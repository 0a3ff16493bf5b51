"""Command line: ``llmtrace-otel serve | collect | validate | traces | trace ID | stats``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from llmtrace_otel import __version__
from llmtrace_otel.config import (
    FIELDS,
    ConfigError,
    Settings,
    describe,
    load_settings,
    log_level_number,
)
from llmtrace_otel.logs import configure_logging
from llmtrace_otel.query_commands import add_query_commands
from llmtrace_otel.runtime import freeze_startup_heap, run

__all__ = ["main"]

_log = logging.getLogger("llmtrace_otel")


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config file (also LLMTRACE_CONFIG)")
    group = parser.add_argument_group("settings (flag > env > file > default)")
    for spec in FIELDS:
        help_text = f"{spec.help} [env {spec.env}; file {spec.key}]"
        if spec.parse.__name__ == "_parse_bool":
            group.add_argument(spec.flag, dest=spec.name, default=None,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(spec.flag, dest=spec.name, default=None, metavar="VALUE",
                               help=help_text)


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for spec in FIELDS:
        value = getattr(args, spec.name, None)
        if value is not None:
            overrides[spec.name] = value if isinstance(value, bool) else str(value)
    return load_settings(args.config, overrides=overrides)


async def _until_signalled(settings: Settings) -> None:
    """The server is listening: freeze the start-up heap, then wait for SIGTERM/SIGINT."""
    if settings.gc_freeze:
        freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def _serve(settings: Settings) -> None:
    from llmtrace_otel.proxy.app import ProxyServer
    from llmtrace_otel.telemetry.pipeline import build_telemetry

    telemetry = build_telemetry(settings)
    server = ProxyServer(settings, telemetry)
    await server.start()
    await _until_signalled(settings)
    _log.info("shutting down: draining in-flight calls (up to %.0fs) and flushing telemetry",
              settings.shutdown_timeout_s)
    await server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    configure_logging(log_level_number(settings), settings.log_format)
    run(_serve(settings), settings.event_loop)
    return 0


async def _collect(settings: Settings) -> None:
    from llmtrace_otel.receiver import CollectorServer
    from llmtrace_otel.telemetry.pipeline import build_telemetry

    # Exporters wait instead of dropping: backpressure goes back to the OTLP senders.
    telemetry = build_telemetry(settings, blocking_export=True)
    try:
        server = CollectorServer(settings, telemetry)
    except BaseException:
        telemetry.shutdown()
        raise
    await server.start()
    await _until_signalled(settings)
    _log.info("shutting down: handing queued spans to the pipeline and flushing telemetry")
    await server.stop()


def _cmd_collect(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    configure_logging(log_level_number(settings), settings.log_format)
    run(_collect(settings), settings.event_loop)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    rows = describe(settings)
    width = max(len(key) for key, _, _ in rows)
    print("configuration is valid; resolved values (secrets masked):")
    for key, value, env in rows:
        print(f"  {key.ljust(width)}  {value}    ({env})")
    return 0


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
    add_query_commands(sub, _add_settings_flags, _settings_from)  # traces, trace ID, stats
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"llmtrace-otel: invalid configuration: {exc}", file=sys.stderr)
        return 2
