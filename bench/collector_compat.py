"""The compatibility table of docs/collector.md, measured from the recorded library exports.

Each fixture of ``tests/receiver/fixtures/`` (what a real instrumentation library exported)
is replayed into a real ``collect``, with message capture off (OTLP/HTTP) and on (OTLP/gRPC),
and what ``collect`` then serves is compared call by call with what the upstream reported
(``tests/receiver/compat.py``, the same measurement ``tests/receiver/test_fixtures.py``
asserts on). Prints a Markdown table::

    .venv/bin/python bench/collector_compat.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.receiver.compat import measure  # noqa: E402
from tests.receiver.harness import running_collector  # noqa: E402
from tests.receiver.replay import fixture, fixture_names  # noqa: E402

_COLUMNS = ("fixture", "calls", "usage", "cost", "ttft", "content", "findings")


def main() -> None:
    print("| library / variant | calls | usage = upstream | cost | TTFT | content sent "
          "| analysed | stored, capture off / on |")
    print("|---|---|---|---|---|---|---|---|")
    for name in fixture_names():
        rows = {}
        for capture in (False, True):
            env = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": str(capture).lower()}
            with tempfile.TemporaryDirectory() as tmp, running_collector(
                    Path(tmp), env=env, receiver_join_wait_s=0.5) as collector:
                rows[capture] = measure(collector, fixture(name), capture=capture,
                                        transport="grpc" if capture else "http").row()
        off, on = rows[False], rows[True]
        for key in _COLUMNS[1:]:
            if off[key] != on[key]:
                raise SystemExit(f"{name}: {key} differs with capture on ({on[key]}) and "
                                 f"off ({off[key]})")
        cells = [off[key] for key in _COLUMNS]
        print("| " + " | ".join(cells) + f" | {off['stored']} / {on['stored']} |")


if __name__ == "__main__":
    main()
