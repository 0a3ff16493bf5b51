"""Several processes, one product: relay workers and the telemetry process.

With ``server.workers`` the proxy (and the collector) run as one telemetry process and N
relay workers that share its listening sockets:

::

    telemetry process (the parent)                 relay workers (children, 1..N)
    ──────────────────────────────                 ──────────────────────────────
    hub: one connection per worker  <── spans ───  relay, guards, CallRecorder
    chain: cost, security, anomaly, policy          metric instruments (their share)
    exporters: SQLite/PostgreSQL, OTLP     ── spend ──>  budgets they enforce
    /metrics and /health of the whole  <── render ─  /metrics, /health (forwarded)
    pool: starts, restarts, stops them

* :mod:`~llmtrace_otel.supervisor.span_wire`: spans as bytes;
* :mod:`~llmtrace_otel.supervisor.channel`: framed messages on one connection;
* :mod:`~llmtrace_otel.supervisor.shipper`: the worker's span processor;
* :mod:`~llmtrace_otel.supervisor.worker_link`: the worker's end of the connection;
* :mod:`~llmtrace_otel.supervisor.hub`: the telemetry process's end;
* :mod:`~llmtrace_otel.supervisor.pool`: the worker processes.

See docs/architecture.md ("Processes").
"""
