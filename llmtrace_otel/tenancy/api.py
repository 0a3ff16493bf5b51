"""``GET /api/v1/budgets``: current spend, limits, utilisation and reset time.

Query parameters: ``tenant`` (only that tenant). Without it, every configured tenant and
the tenants this instance served recently are listed. Spend is read from the state
backend, so with Redis it is the spend of all instances. When ``api.admin_token`` is set
the request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tornado.web import RequestHandler

from llmtrace_otel.config.tenants import valid_id
from llmtrace_otel.tenancy.budgets import BudgetTracker
from llmtrace_otel.tenancy.state import StateUnavailable
from llmtrace_otel.web.auth import BearerToken
from llmtrace_otel.web.errors import ErrorReply, send_error_reply

__all__ = ["BUDGETS_PATH", "BudgetsHandler", "budget_routes"]

BUDGETS_PATH = "/api/v1/budgets"


class BudgetsHandler(RequestHandler):
    def initialize(self, tracker: BudgetTracker | None, auth: BearerToken) -> None:
        self._tracker = tracker
        self._auth = auth

    def _reply(self, body: dict[str, Any]) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body).encode())

    async def get(self) -> None:
        refusal = self._auth.refusal(self.request.headers.get("Authorization"))
        if refusal is not None:
            send_error_reply(self, refusal)
            return
        tenant = self.get_query_argument("tenant", None)
        if tenant is not None and not valid_id(tenant):
            send_error_reply(self, ErrorReply(400, "invalid_tenant_id",
                                              f"{tenant!r} is not a tenant id", param="tenant"))
            return
        tracker = self._tracker
        if tracker is None:
            self._reply({"enabled": False, "tenants": []})
            return
        try:
            tenants: list[dict[str, Any]] = await tracker.status(tracker.known(tenant))
        except StateUnavailable as exc:
            send_error_reply(self, ErrorReply(503, "limits_unavailable",
                                              f"state backend: {exc}"))
            return
        self._reply({
            "enabled": True,
            "backend": tracker.backend.name,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tracker.clock())),
            "tenants": tenants,
        })


def budget_routes(tracker: BudgetTracker | None,
                  auth: BearerToken) -> list[tuple[str, type, dict[str, Any]]]:
    """The budgets route (mounted with the query API, before its catch-all)."""
    return [(BUDGETS_PATH, BudgetsHandler, {"tracker": tracker, "auth": auth})]
