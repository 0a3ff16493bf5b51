"""HTTP plumbing shared by every server of llmtrace-otel: the proxy, the query API and
viewer, the budgets endpoint and the OTLP receiver.

* :mod:`~llmtrace_otel.web.errors`: the one error document (``ErrorReply``);
* :mod:`~llmtrace_otel.web.auth`: the one bearer-token check (``BearerToken``);
* :mod:`~llmtrace_otel.web.ops`: ``/health`` and ``/metrics``;
* :mod:`~llmtrace_otel.web.server`: the bounded HTTP server (client limits, timeouts).

Nothing here knows about LLM calls or telemetry; every other part may use it.
"""
