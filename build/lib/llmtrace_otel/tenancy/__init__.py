"""Tenants, rate limits, budgets, anomaly alerts (docs/tenancy.md).

Modules, one concept each:

* ``identity``: who is calling (header, API-key HMAC, default)
* ``policy`` / ``settings``: the typed per-tenant limits and budgets, and their checks
* ``windows``: hourly/daily/weekly/monthly budget windows (UTC)
* ``state`` / ``redis_state``: where buckets and spend live (memory, Redis)
* ``limiter`` / ``budgets`` / ``spend``: rate limits, budget windows, spend recording
* ``alerts`` / ``notifiers``: alert dispatch, Slack/PagerDuty/webhook channels
* ``guard``: the request guard; ``api``: ``GET /api/v1/budgets``; ``build``: wiring

This package's ``__init__`` imports nothing: ``llmtrace_otel.config`` imports
``policy``, and the guard imports the proxy, which imports the config.
"""

from __future__ import annotations

__all__: list[str] = []
