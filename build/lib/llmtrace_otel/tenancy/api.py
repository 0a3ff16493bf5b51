"""``GET /api/v1/budgets``: current spend, limits, utilisation and reset time.

Query parameters: ``tenant`` (only that tenant). Without it, every configured tenant and
the tenants this instance served recently are listed. Spend is read from the state
backend, so with Redis it is the spend of all instances. When ``api.admin_token`` is set
the request must carry ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

from tornado.web import RequestHandler

from llmtrace_otel.proxy.guards import RequestGuard
from llmtrace_otel.tenancy.guard import TenancyGuard
from llmtrace_otel.tenancy.policy import valid_id
from llmtrace_otel.tenancy.state import StateUnavailable

__all__ = ["BUDGETS_PATH", "BudgetsHandler", "budget_routes"]

BUDGETS_PATH = "/api/v1/budgets"


def _error(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error",
                                 "param": None, "code": code}}).encode()


class BudgetsHandler(RequestHandler):
    def initialize(self, guard: TenancyGuard | None, admin_token: str | None) -> None:
        self._guard = guard
        self._token = admin_token

    def _reply(self, status: int, body: bytes) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)

    def _authorised(self) -> bool:
        if not self._token:
            return True
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                                  self._token.encode())

    async def get(self) -> None:
        if not self._authorised():
            self.set_header("WWW-Authenticate", "Bearer")
            self._reply(401, _error(401, "unauthorized",
                                    "this endpoint needs Authorization: Bearer <api.admin_token>"))
            return
        tenant = self.get_query_argument("tenant", None)
        if tenant is not None and not valid_id(tenant):
            self._reply(400, _error(400, "invalid_tenant_id", f"{tenant!r} is not a tenant id"))
            return
        guard = self._guard
        tracker = guard.budgets if guard is not None else None
        if tracker is None:
            self._reply(200, json.dumps({"enabled": False, "tenants": []}).encode())
            return
        try:
            tenants: list[dict[str, Any]] = await tracker.status(tracker.known(tenant))
        except StateUnavailable as exc:
            self._reply(503, _error(503, "limits_unavailable", f"state backend: {exc}"))
            return
        self._reply(200, json.dumps({
            "enabled": True,
            "backend": tracker.backend.name,
            "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tracker.clock())),
            "tenants": tenants,
        }).encode())


def budget_routes(guards: Sequence[RequestGuard],
                  admin_token: str | None) -> list[tuple[str, type, dict[str, Any]]]:
    """The route, always registered (so the path never reaches the upstream)."""
    guard = next((g for g in guards if isinstance(g, TenancyGuard)), None)
    return [(BUDGETS_PATH, BudgetsHandler, {"guard": guard, "admin_token": admin_token})]
