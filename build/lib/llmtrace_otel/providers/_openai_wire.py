"""Wire conventions the OpenAI API shapes share: usage blocks, error bodies, media
parts, and the ``stream_options.include_usage`` rewrite."""

from __future__ import annotations

from typing import Any

from llmtrace_otel.providers._json import (
    dumps_compact,
    loads,
    opt_int,
    opt_object,
    opt_str,
)
from llmtrace_otel.providers.types import MediaPart, Usage

__all__ = [
    "data_url_mime_type",
    "detail_count",
    "error_type",
    "image_part",
    "openai_usage",
    "with_stream_usage",
]


def detail_count(details: dict[str, Any] | None, key: str, where: str) -> int | None:
    """A token-detail count; a reported 0 reads as "not reported".

    OpenAI reports ``cached_tokens: 0`` and ``reasoning_tokens: 0`` on every call; keeping
    them would put zero-valued cache/reasoning attributes on every span.
    """
    if details is None:
        return None
    return opt_int(details, key, where) or None


def openai_usage(usage: dict[str, Any] | None, where: str = "usage.") -> Usage | None:
    """Chat/completions/embeddings usage (``prompt_tokens``/``completion_tokens``)."""
    if usage is None:
        return None
    prompt = opt_object(usage, "prompt_tokens_details", where)
    completion = opt_object(usage, "completion_tokens_details", where)
    return Usage(
        input_tokens=opt_int(usage, "prompt_tokens", where),
        output_tokens=opt_int(usage, "completion_tokens", where),
        cache_read_input_tokens=detail_count(
            prompt, "cached_tokens", where + "prompt_tokens_details."),
        reasoning_output_tokens=detail_count(
            completion, "reasoning_tokens", where + "completion_tokens_details."),
    )


def error_type(obj: dict[str, Any]) -> str | None:
    """``error.type`` (or ``error.code`` when the type is null) of an error body/chunk.

    Also understands the flat ``{"object": "error", "type", "code"}`` body of
    OpenAI-compatible servers (vLLM) and a bare ``{"error": "message"}``.
    """
    error = obj.get("error")
    if isinstance(error, str):
        return "error" if error else None
    if not isinstance(error, dict):
        if obj.get("object") != "error":
            return None
        error = obj
    kind = opt_str(error, "type", "error.")
    if kind:
        return kind
    code = error.get("code")
    if isinstance(code, str | int) and not isinstance(code, bool) and code != "":
        return str(code)
    return "error"


def data_url_mime_type(url: str) -> str | None:
    """``image/png`` from ``data:image/png;base64,...``; None when there is none."""
    header = url[5:].partition(",")[0]
    mime = header.partition(";")[0].strip()
    return mime or None


def image_part(url: str | None, mime_type: str | None = None) -> MediaPart:
    """An image given by URL; a ``data:`` URL keeps only its media type."""
    if url is not None and url.startswith("data:"):
        return MediaPart("image", None, data_url_mime_type(url) or mime_type)
    return MediaPart("image", url, mime_type)


def with_stream_usage(body: bytes) -> bytes | None:
    """The body with ``stream_options.include_usage: true`` when it streams without it."""
    try:
        obj = loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("stream") is not True:
        return None
    options = obj.get("stream_options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        return None  # not ours to repair
    if options.get("include_usage") is True:
        return None
    obj["stream_options"] = {**options, "include_usage": True}
    return dumps_compact(obj).encode()
