"""nginx as the fast fake upstream: canned OpenAI chat completion, JSON or SSE.

POST /v1/chat/completions answers the canned JSON; with the request header
``x-bench-stream: 1`` it answers a canned SSE stream (text/event-stream) instead. The proxy
forwards unknown headers, so the same header selects streaming through the proxy.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["STREAM_HEADER", "NginxUpstream", "canned_chat_json", "canned_chat_sse", "free_port"]

STREAM_HEADER = "x-bench-stream"
_MODEL = "gpt-4o-mini-2024-07-18"
_REPLY = ("Hello", " from", " the", " bench", " upstream", ".")


def free_port() -> int:
    """An unused loopback TCP port (bound, read and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _usage() -> dict[str, Any]:
    return {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0}}


def canned_chat_json() -> str:
    """A chat.completion body shaped like the real API's."""
    return json.dumps({
        "id": "chatcmpl-bench0000000000000000000001", "object": "chat.completion",
        "created": 1731456000, "model": _MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(_REPLY),
                                             "refusal": None, "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(), "service_tier": "default", "system_fingerprint": "fp_bench01",
    }, separators=(",", ":"))


def canned_chat_sse() -> str:
    """A chat.completion.chunk stream with a usage chunk and [DONE], as SSE text."""
    base = {"id": "chatcmpl-bench0000000000000000000002", "object": "chat.completion.chunk",
            "created": 1731456000, "model": _MODEL, "system_fingerprint": "fp_bench01"}
    deltas: list[tuple[dict[str, Any], str | None]] = [({"role": "assistant", "content": ""},
                                                         None)]
    deltas += [({"content": piece}, None) for piece in _REPLY]
    deltas.append(({}, "stop"))
    chunks = [{**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                    "finish_reason": finish}], "usage": None}
              for delta, finish in deltas]
    chunks.append({**base, "choices": [], "usage": _usage()})
    lines = [f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n" for chunk in chunks]
    return "".join(lines) + "data: [DONE]\n\n"


def _nginx_string(text: str) -> str:
    """Quote ``text`` for nginx.conf (single quotes; nginx expands \\n itself)."""
    if "$" in text:
        raise ValueError("nginx would expand '$' in a return body")
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    return f"'{escaped}'"


def nginx_config(workdir: Path, port: int) -> str:
    return f"""
worker_processes 1;
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /v1/chat/completions {{
            if ($http_{STREAM_HEADER.replace('-', '_')}) {{ rewrite ^ /__bench_stream last; }}
            default_type application/json;
            return 200 {_nginx_string(canned_chat_json())};
        }}
        location = /__bench_stream {{
            internal;
            default_type text/event-stream;
            return 200 {_nginx_string(canned_chat_sse())};
        }}
    }}
}}
"""


@dataclass
class NginxUpstream:
    """One nginx master + 1 worker, run from a private directory on a free loopback port."""

    binary: str
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NginxUpstream:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_config(self.workdir, self.port))
        log = (self.workdir / "nginx.stderr").open("wb")
        command = [self.binary, "-p", str(self.workdir), "-e", str(self.workdir / "error.log"),
                   "-c", str(conf)]
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        _wait_for_port(self.port, self.process, what="nginx", log=self.workdir / "error.log")
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: fast shutdown of master and worker
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def _wait_for_port(port: int, process: subprocess.Popen[bytes], *, what: str, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            detail = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{what} exited with {process.returncode} at start:\n{detail}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within 10 s")
