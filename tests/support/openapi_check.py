"""Checks real API responses against the schemas in docs/openapi.yaml (JSON Schema 2020-12,
which OpenAPI 3.1 uses), and a small HTTP helper for calling the API."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from email.message import Message
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def response_schema(path_template: str, status: int) -> dict[str, Any]:
    responses = spec()["paths"][path_template]["get"]["responses"]
    assert str(status) in responses, f"{path_template} does not document status {status}"
    response = _resolve(responses[str(status)])
    schema = response["content"]["application/json"]["schema"]
    # The $ref resolves against this document's root, which carries the components.
    return {**schema, "components": spec()["components"]}


def check(path_template: str, status: int, body: Any) -> None:
    """Raise jsonschema.ValidationError unless ``body`` matches the documented schema."""
    Draft202012Validator(response_schema(path_template, status)).validate(body)


@dataclass
class Raw:
    status: int
    headers: Message
    body: bytes


def fetch(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Raw:
    """One HTTP request with the standard library; error statuses are answers, not raises."""
    data = b"{}" if method in ("POST", "PUT", "PATCH") else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Raw(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Raw(exc.code, exc.headers, exc.read())


@dataclass
class Answer:
    status: int
    headers: Message
    body: Any


def call(base_url: str, path: str, params: dict[str, str] | list[tuple[str, str]] | None = None,
         *, token: str | None = None, method: str = "GET",
         template: str | None = None) -> Answer:
    """One request; when ``template`` names the OpenAPI path, the answer is schema-checked."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query = "?" + urllib.parse.urlencode(params) if params else ""
    raw = fetch(base_url + path + query, method=method, headers=headers)
    body = json.loads(raw.body)
    if template is not None:
        check(template, raw.status, body)
    return Answer(raw.status, raw.headers, body)
