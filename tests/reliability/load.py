"""Traffic, a responsiveness probe and the books, for the fault-injection and soak suite.

* :func:`run_load` drives the proxy with concurrent raw aiohttp clients (streaming and not,
  OpenAI and Anthropic shapes, upstream fault scenarios, clients that hang up mid-stream)
  and classifies every answer: the upstream's answer, the upstream's own error relayed, a
  clear proxy error in the API's shape, a stream the proxy broke off on purpose, or
  ``unclear`` (anything else: a test failure).
* :class:`Probe` asks ``/health`` (or a small proxied request) in a loop from its own
  thread and keeps the latencies, so a test can bound the p99 while faults are injected.
* :class:`Books` reads ``/metrics`` (requests, counted drops) and the SQLite store, so a
  test can check that spans stored = requests answered - drops that were counted.

Sizes scale with ``RELIABILITY_FULL=1`` (``make soak``): see :data:`SCALE`.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import sqlite3
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fake_upstream import DELAY_HEADER, SCENARIO_HEADER

__all__ = [
    "FULL",
    "SCALE",
    "Books",
    "Call",
    "LoadReport",
    "Outcome",
    "Probe",
    "mix",
    "rss_bytes",
    "run_load",
    "wait_until",
]

#: ``RELIABILITY_FULL=1``: the full-size run (``make soak``); otherwise the reduced one.
FULL = os.environ.get("RELIABILITY_FULL", "") not in ("", "0")
#: Request counts and durations are multiplied by this in the full-size run.
SCALE = 10 if FULL else 1

_CHAT = "/v1/chat/completions"
_MESSAGES = "/v1/messages"
_TERMINAL = (b"data: [DONE]", b"event: message_stop")


@dataclass(frozen=True, slots=True)
class Call:
    """One request of the load: which API, streamed or not, which upstream behaviour."""

    scenario: str = "ok"
    stream: bool = False
    anthropic: bool = False
    #: The client hangs up after the first chunk of a stream.
    disconnect: bool = False
    delay_s: float | None = None

    def request(self) -> tuple[str, dict[str, str], bytes]:
        headers = {"Content-Type": "application/json", SCENARIO_HEADER: self.scenario}
        if self.delay_s is not None:
            headers[DELAY_HEADER] = str(self.delay_s)
        message = [{"role": "user", "content": f"reliability {self.scenario}"}]
        if self.anthropic:
            headers["anthropic-version"] = "2023-06-01"
            body = {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": message,
                    "stream": self.stream}
            return _MESSAGES, headers, json.dumps(body).encode()
        return _CHAT, headers, json.dumps({"model": "gpt-4o-mini", "messages": message,
                                           "stream": self.stream}).encode()


@dataclass(frozen=True, slots=True)
class Outcome:
    call: Call
    #: answer | upstream_error | proxy_error | broken_stream | client_abort | unclear
    kind: str
    status: int
    detail: str
    latency_s: float


@dataclass
class LoadReport:
    outcomes: list[Outcome] = field(default_factory=list)
    elapsed_s: float = 0.0

    def kinds(self) -> Counter[str]:
        return Counter(outcome.kind for outcome in self.outcomes)

    def by_scenario(self) -> dict[tuple[str, bool], Counter[str]]:
        table: dict[tuple[str, bool], Counter[str]] = {}
        for outcome in self.outcomes:
            key = (outcome.call.scenario, outcome.call.stream)
            table.setdefault(key, Counter())[outcome.kind] += 1
        return table

    @property
    def unclear(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.kind == "unclear"]

    def assert_clear(self, expected: Callable[[Call], set[str]] | None = None) -> None:
        """Every client got the upstream's answer or a clear error (as ``expected``)."""
        wrong = [o for o in self.outcomes if o.kind == "unclear" or (
            expected is not None and o.kind not in expected(o.call))]
        assert not wrong, f"{len(wrong)} unclear or unexpected outcomes, e.g. {wrong[:3]}"

    def assert_all_answered(self) -> None:
        """Telemetry faults: every ``ok`` call got the upstream's answer."""
        self.assert_clear(lambda call: {"client_abort"} if call.disconnect else {"answer"})


def expected_kinds(call: Call) -> set[str]:
    """The clear outcomes a call's scenario allows."""
    if call.disconnect:
        return {"client_abort"}
    if call.scenario.startswith("error-"):
        return {"upstream_error"}
    if call.scenario == "hang":
        return {"proxy_error"}
    if call.scenario == "reset-midstream":
        return {"broken_stream"} if call.stream else {"proxy_error"}
    return {"answer"}


def mix(count: int, *, faults: Sequence[str] = (), fault_every: int = 4,
        disconnect_every: int = 0) -> list[Call]:
    """``count`` calls: half streamed, a fifth Anthropic, and every ``fault_every``-th one
    a fault scenario from ``faults`` (round robin); every ``disconnect_every``-th stream's
    client hangs up after the first chunk."""
    calls = []
    fault_index = 0
    for index in range(count):
        stream = index % 2 == 1
        anthropic = index % 5 == 4
        scenario = "ok"
        if faults and index % fault_every == fault_every - 1:
            scenario = faults[fault_index % len(faults)]
            fault_index += 1
        disconnect = bool(disconnect_every and stream and scenario == "ok"
                          and index % disconnect_every == disconnect_every - 1)
        delay = 0.05 if disconnect else None
        calls.append(Call(scenario, stream, anthropic, disconnect,
                          delay_s=delay))
    for index, call in enumerate(calls):
        if call.disconnect:  # a slow stream, so the hang-up lands mid-stream
            calls[index] = Call("slow-stream", True, call.anthropic, True, call.delay_s)
    return calls


async def _one(session: aiohttp.ClientSession, base: str, call: Call) -> Outcome:
    path, headers, body = call.request()
    started = time.monotonic()

    def outcome(kind: str, status: int, detail: str) -> Outcome:
        return Outcome(call, kind, status, detail, time.monotonic() - started)

    try:
        async with session.post(base + path, data=body, headers=headers) as response:
            status = response.status
            if call.stream and status == 200:
                if call.disconnect:
                    await response.content.readany()
                    response.close()  # hang up mid-stream
                    return outcome("client_abort", status, "")
                try:
                    data = await response.read()
                except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                        aiohttp.ClientOSError) as exc:
                    return outcome("broken_stream", status, type(exc).__name__)
                if any(marker in data for marker in _TERMINAL):
                    return outcome("answer", status, "")
                return outcome("unclear", status, f"stream without its end: {data[-200:]!r}")
            data = await response.read()
            return _classify(call, status, response.headers, data, outcome)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return outcome("unclear", 0, f"{type(exc).__name__}: {exc}")


def _classify(call: Call, status: int, headers: object, data: bytes,
              outcome: Callable[[str, int, str], Outcome]) -> Outcome:
    try:
        payload = json.loads(data)
    except ValueError:
        return outcome("unclear", status, f"not JSON: {data[:200]!r}")
    if status == 200:
        good = payload.get("choices") or payload.get("content")
        return outcome("answer" if good else "unclear", status, "")
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict) or not error.get("message") and not error.get("type"):
        return outcome("unclear", status, f"error without the API's shape: {data[:200]!r}")
    code = str(error.get("code") or "")
    if status in (502, 504) and (code.startswith("upstream_") or "upstream" in str(
            error.get("message", ""))):
        return outcome("proxy_error", status, code or str(error.get("message")))
    if call.scenario == f"error-{status}":
        if status == 429 and "retry-after" not in {k.lower() for k in headers}:  # type: ignore[attr-defined]
            return outcome("unclear", status, "429 relayed without its Retry-After")
        return outcome("upstream_error", status, str(error.get("type")))
    return outcome("unclear", status, f"unexpected error: {data[:200]!r}")


async def _drive(base: str, calls: Sequence[Call], concurrency: int,
                 timeout_s: float) -> list[Outcome]:
    queue: asyncio.Queue[Call] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    results: list[Outcome] = []
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector,
                                     auto_decompress=False) as session:

        async def worker() -> None:
            while True:
                try:
                    call = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.append(await _one(session, base, call))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def run_load(base_url: str, calls: Sequence[Call], *, concurrency: int = 16,
             timeout_s: float = 30.0) -> LoadReport:
    """Send ``calls`` with ``concurrency`` clients; blocks until every call has an outcome."""
    started = time.monotonic()
    outcomes = asyncio.run(_drive(base_url, calls, concurrency, timeout_s))
    return LoadReport(outcomes, time.monotonic() - started)


# -- the probe ---------------------------------------------------------------------------


class Probe:
    """``GET path`` in a loop on its own thread; latencies and failures are kept."""

    def __init__(self, port: int, path: str = "/health", interval_s: float = 0.02) -> None:
        self._port = port
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reliability-probe", daemon=True)
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.statuses: list[str] = []

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
                conn.request("GET", self._path)
                response = conn.getresponse()
                body = response.read()
                self.latencies.append(time.monotonic() - started)
                if response.status != 200:
                    self.failures.append(f"status {response.status}")
                elif self._path == "/health":
                    self.statuses.append(json.loads(body)["status"])
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self._interval)
        if conn is not None:
            conn.close()

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        assert ordered, "the probe got no answer at all"
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def assert_responsive(self, p99_bound_s: float = 0.5) -> None:
        assert not self.failures, f"probe failures: {self.failures[:5]}"
        assert len(self.latencies) >= 5, f"only {len(self.latencies)} probes answered"
        p99 = self.quantile(0.99)
        assert p99 < p99_bound_s, f"probe p99 {p99 * 1000:.0f} ms >= {p99_bound_s * 1000:.0f} ms"


# -- the books ---------------------------------------------------------------------------


def metric_samples(base_url: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of one scrape, one per series.

    (A ``MeterProvider.force_flush`` makes the Prometheus reader queue one extra collection
    that the next scrape repeats; keeping the last sample per series reads it right.)
    """
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    series: dict[tuple[str, frozenset[tuple[str, str]]], tuple[str, dict[str, str], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series[(s.name, frozenset(s.labels.items()))] = (s.name, dict(s.labels), s.value)
    return list(series.values())


@dataclass(frozen=True)
class Books:
    """Requests the proxy answered and telemetry it counted as dropped, from /metrics."""

    requests: float
    drops: dict[tuple[str, str], float]

    @classmethod
    def read(cls, base_url: str) -> Books:
        requests = 0.0
        drops: dict[tuple[str, str], float] = {}
        for name, labels, value in metric_samples(base_url):
            if name == "llmtrace_requests_total":
                requests += value
            elif name == "llmtrace_telemetry_dropped_total":
                key = (labels["stage"], labels["reason"])
                drops[key] = drops.get(key, 0.0) + value
        return cls(requests, drops)

    def dropped(self, stage: str, reason: str | None = None) -> int:
        return int(sum(value for (s, r), value in self.drops.items()
                       if s == stage and (reason is None or r == reason)))

    def expected_in(self, sink: str) -> int:
        """Spans that should have reached exporter ``sink``: every request, minus those
        dropped at analysis and those dropped at that exporter."""
        return int(self.requests) - self.dropped("analysis") - self.dropped(f"export.{sink}")


def stored_spans(db: Path) -> int:
    """Rows in the store (0 before the proxy has created it)."""
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # being created right now
            return 0
        raise
    finally:
        conn.close()


def health(base_url: str) -> dict:
    with urllib.request.urlopen(f"{base_url}/health", timeout=10) as response:
        return json.loads(response.read())


def wait_until(condition: Callable[[], object], timeout_s: float = 20.0,
               what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    status = Path(f"/proc/{pid or os.getpid()}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc status")


def iter_chunks(items: Sequence[Call], size: int) -> Iterator[Sequence[Call]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
