"""The smaller parts of ``server.workers``: spend events, the worker's identity, merged
provider health, and the hub end to end with a real worker link on a real control socket."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmtrace_otel.supervisor.hub import Hub, Rendered, WorkerSnapshots
from llmtrace_otel.supervisor.shipper import SpanShipper
from llmtrace_otel.supervisor.spend import (
    ForwardedSpend,
    decode_spend,
    encode_spend,
    spend_handler,
)
from llmtrace_otel.supervisor.telemetry_process import merge_providers
from llmtrace_otel.supervisor.worker_link import WORKER_ENV, WorkerIdentity, WorkerLink
from llmtrace_otel.telemetry.provider_health import ProviderState
from llmtrace_otel.tenancy.budgets import SpendEvent
from tests.supervisor.channel_pair import until

# -- spend events ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", [SpendEvent("team-a", "nightly", 0.0125),
                                   SpendEvent("team-b", None, None),
                                   SpendEvent("team-c", None, 0.0)])
def test_spend_events_round_trip(event: SpendEvent) -> None:
    assert decode_spend(encode_spend(event)) == event


def test_an_integer_usd_is_read_as_a_float() -> None:
    event = decode_spend(b'{"tenant":"t","agent":null,"usd":2}')
    assert event == SpendEvent("t", None, 2.0) and isinstance(event.usd, float)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]", "a spend event is a JSON object"),
        (b'"team-a"', "a spend event is a JSON object"),
        (b'{"agent":null,"usd":1}', "not a spend event"),
        (b'{"tenant":7,"agent":null,"usd":1}', "not a spend event"),
        (b'{"tenant":"t","agent":["a"],"usd":1}', "not a spend event"),
        (b'{"tenant":"t","agent":null,"usd":true}', "not a spend event"),
        (b'{"tenant":"t","agent":null,"usd":"1.5"}', "not a spend event"),
        (b'{"tenant":"t","agent":null,"usd":NaN}', "not a spend event"),
        (b'{"tenant":"t","agent":null,"usd":Infinity}', "not a spend event"),
        (b'{"tenant":"t","agent":null,"usd":-0.5}', "not a spend event"),
        (b"not json", "Expecting value"),
        (b"\xff\xfe{", "can.t decode"),
    ],
)
def test_a_malformed_spend_event_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_spend(data)


def test_the_workers_spend_handler_records_events_and_counts_unreadable_ones() -> None:
    recorded: list[SpendEvent] = []
    drops: list[tuple[str, str]] = []
    handle = spend_handler(recorded.append, lambda *drop: drops.append(drop))
    event = SpendEvent("team-a", None, 0.25)
    handle(encode_spend(event))
    handle(b'{"tenant":"t","agent":null,"usd":NaN}')
    assert recorded == [event]
    assert drops == [("worker.spend", "undecodable")]


def test_forwarded_spend_reaches_send_on_the_loop_then_counts_what_arrives_too_late() -> None:
    sent: list[tuple[int, bytes]] = []
    lost: list[bool] = []
    event = SpendEvent("team-a", "agent-1", 0.5)

    def send(data: bytes) -> bool:
        sent.append((threading.get_ident(), data))
        return True

    async def main() -> ForwardedSpend:
        sink = ForwardedSpend(asyncio.get_running_loop(), send, on_lost=lambda: lost.append(True))
        await asyncio.to_thread(sink.submit, event)  # the chain's thread prices calls
        await until(lambda: bool(sent), "the spend to reach send")
        return sink

    sink = asyncio.run(main())
    assert sent == [(threading.get_ident(), encode_spend(event))]  # on the loop's thread
    assert lost == []
    sink.submit(event)  # the loop is closed now (shutdown)
    assert lost == [True] and len(sent) == 1


# -- the worker's identity -----------------------------------------------------------------


def test_the_worker_identity_round_trips_through_the_environment() -> None:
    identity = WorkerIdentity(3, {"server": 8080, "grpc": 4317}, "/tmp/llmtrace-x/control.sock")
    assert WorkerIdentity.from_env({WORKER_ENV: identity.to_env()}) == identity
    assert WorkerIdentity.from_env({}) is None
    assert WorkerIdentity.from_env({WORKER_ENV: ""}) is None


@pytest.mark.parametrize("value", [
    "not json", "[]", '{"index": 1}', '{"index": "one", "ports": {}, "control": "/c"}',
    '{"index": 1, "ports": [8080], "control": "/c"}',
    '{"index": 1, "ports": {"server": "http"}, "control": "/c"}',
])
def test_an_unreadable_worker_identity_is_a_clear_error(value: str) -> None:
    with pytest.raises(RuntimeError, match=f"{WORKER_ENV} is set but unreadable .*not by hand"):
        WorkerIdentity.from_env({WORKER_ENV: value})


# -- provider health as all workers see it ---------------------------------------------------


def _provider(available: bool, calls: int, failures: int, consecutive: int,
              since: float | None) -> dict[str, object]:
    return ProviderState("openai", available, calls, failures, consecutive, since).as_dict()


def test_merged_providers_sum_calls_and_are_available_only_if_every_worker_says_so() -> None:
    reports: list[Mapping[str, Any]] = [
        {"providers": {"openai": _provider(True, 10, 1, 0, 40.0),
                       "anthropic": _provider(True, 4, 0, 0, None)}},
        {"providers": {"openai": _provider(False, 6, 5, 5, 2.5),
                       "anthropic": _provider(True, 1, 0, 0, None)}},
        {"providers": {"openai": _provider(True, 2, 0, 0, None)}},
        {"status": "ok"},  # a worker that has seen no provider yet
    ]
    before = json.dumps(reports)
    merged = merge_providers(reports)
    assert merged == {
        "openai": {"available": False, "calls_in_window": 18, "failures_in_window": 6,
                   "consecutive_failures": 5, "seconds_since_last_failure": 2.5},
        "anthropic": {"available": True, "calls_in_window": 5, "failures_in_window": 0,
                      "consecutive_failures": 0, "seconds_since_last_failure": None},
    }
    assert json.dumps(reports) == before  # the workers' reports are not changed


# -- the hub, with a real worker link -------------------------------------------------------

TELEMETRY = Resource.create({"service.name": "telemetry-process"})


def test_the_hub_serves_a_worker_from_hello_to_disconnect() -> None:
    drops: list[tuple[str, str]] = []
    exported = InMemorySpanExporter()
    rendered: list[tuple[Any, ...]] = []

    def render_metrics(snapshots: WorkerSnapshots, accept: str, encoding: str) -> Rendered:
        rendered.append((threading.get_ident(), dict(snapshots.live), accept, encoding))
        return 200, {"Content-Type": "text/plain"}, b"metrics of " + b",".join(
            snapshots.live.values())

    def render_health(reports: dict[int, Mapping[str, Any]]) -> Rendered:
        return 200, {"Content-Type": "application/json"}, json.dumps(
            {"workers": {str(index): report for index, report in reports.items()}}).encode()

    async def main() -> None:
        retired: list[bytes] = []
        hub = Hub(resource=TELEMETRY, on_drop=lambda *drop: drops.append(drop),
                  on_retired=retired.append)
        hub.feed(SimpleSpanProcessor(exported))
        hub.answer(metrics=render_metrics, health=render_health)
        await hub.start()
        try:
            assert oct(os.stat(hub.control_path).st_mode & 0o777) == "0o600"
            identity = WorkerIdentity(1, {"server": 0}, hub.control_path)
            link = await WorkerLink.connect(identity)
            link.answer(metrics=lambda: b"worker-1 counts",
                        health=lambda: {"status": "ok", "in_flight": 2})
            spends: list[bytes] = []
            link.on_spend(spends.append)
            await asyncio.sleep(0.05)
            assert hub.connected == {}  # connected, not serving yet: not counted
            link.ready()
            await until(lambda: hub.connected == {1: os.getpid()}, "hello")

            shipper = SpanShipper(link.channel, asyncio.get_running_loop(),
                                  on_drop=lambda *drop: drops.append(drop))
            provider = TracerProvider(resource=Resource.create({"service.name": "worker"}))
            provider.add_span_processor(shipper)
            for name in ("first", "second", "third"):
                with provider.get_tracer("t").start_as_current_span(name):
                    pass
            await until(lambda: len(exported.get_finished_spans()) == 3, "the spans")
            spans = exported.get_finished_spans()
            assert [span.name for span in spans] == ["first", "second", "third"]
            assert all(span.resource is TELEMETRY for span in spans)

            assert (await hub.refresh_snapshots()).live == {1: b"worker-1 counts"}
            status, headers, body = await link.render("metrics", "text/plain", "gzip")
            assert (status, headers, body) == (200, {"Content-Type": "text/plain"},
                                               b"metrics of worker-1 counts")
            thread, live, accept, encoding = rendered[0]
            assert (live, accept, encoding) == ({1: b"worker-1 counts"}, "text/plain", "gzip")
            assert thread != threading.get_ident()  # rendered off the event loop
            status, _, body = await link.render("health")
            assert status == 200
            assert json.loads(body) == {"workers": {"1": {"status": "ok", "in_flight": 2}}}

            assert hub.send_spend(b'{"tenant":"t","agent":null,"usd":1.0}') is True
            await until(lambda: bool(spends), "the spend event")
            assert spends == [b'{"tenant":"t","agent":null,"usd":1.0}']

            await link.aclose()
            await until(lambda: hub.connected == {}, "the worker to be gone")
            assert hub.snapshots.live == {}
            assert retired == [b"worker-1 counts"]  # its counts stay in the totals
            assert hub.send_spend(b"{}") is False
            assert drops == [("telemetry_process.spend", "no_worker")]
        finally:
            await hub.stop()
        assert not os.path.exists(hub.control_path)

    asyncio.run(main())


def test_a_full_pipeline_holds_the_workers_batches_and_still_answers_their_requests() -> None:
    exported = InMemorySpanExporter()
    queue = {"depth": 100}  # the pipeline's queue: full until the test empties it

    async def main() -> None:
        hub = Hub(resource=TELEMETRY, on_drop=lambda *drop: None)
        hub.feed(SimpleSpanProcessor(exported), lambda: (queue["depth"], 100))
        hub.answer(metrics=lambda *_: (200, {}, b""),
                   health=lambda reports: (200, {}, json.dumps(reports).encode()))
        await hub.start()
        link = await WorkerLink.connect(WorkerIdentity(0, {"server": 0}, hub.control_path))
        try:
            link.answer(metrics=lambda: b"", health=lambda: {"status": "ok"})
            link.ready()
            await until(lambda: bool(hub.connected), "hello")
            shipper = SpanShipper(link.channel, asyncio.get_running_loop(),
                                  on_drop=lambda *drop: None)
            link.on_hold(shipper.hold, shipper.resume)
            provider = TracerProvider()
            provider.add_span_processor(shipper)
            tracer = provider.get_tracer("t")
            with tracer.start_as_current_span("first"):
                pass
            await until(lambda: len(exported.get_finished_spans()) == 1, "the first span")
            # the queue is full: the worker is told to hold; its next span waits with it
            await until(lambda: shipper._held, "the hold")
            with tracer.start_as_current_span("second"):
                pass
            await asyncio.sleep(0.1)
            assert shipper.queue_depth == 1
            assert len(exported.get_finished_spans()) == 1
            # the connection is still read: /health answers while batches are held
            answer = await link.channel.request("render_health", b"{}", timeout_s=2.0)
            assert json.loads(answer.partition(b"\n")[2]) == {"0": {"status": "ok"}}
            # room again: the worker is let go and sends what waited
            queue["depth"] = 0
            await until(lambda: len(exported.get_finished_spans()) == 2, "the second span")
            assert shipper.queue_depth == 0 and not shipper._held
        finally:
            await link.aclose()
            await hub.stop()

    asyncio.run(main())
