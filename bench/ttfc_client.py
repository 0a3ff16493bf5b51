"""Time to first chunk: an asyncio raw-socket HTTP/1.1 client (wrk cannot see chunks).

Each sample sends one streaming POST on a kept-alive connection and records, with
``time.perf_counter_ns``, the time from just before the request is written to the arrival of
the first byte of the response *body* (payload bytes after the header block; for chunked
responses the first payload byte, not the chunk-size line). The rest of the response is read
and checked, so the next sample starts on a clean connection.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ResponseReader", "TtfcResult", "measure_ttfc"]


class ResponseReader:
    """Incremental HTTP/1.1 response parser: Content-Length or chunked bodies."""

    def __init__(self) -> None:
        self._buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body_bytes = 0
        self.complete = False
        self._in_body = False
        self._chunked = False
        self._remaining = 0  # bytes left in the current chunk / the Content-Length body
        self._trailer_crlf = False

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if not self._in_body:
            self._parse_head()
        if self._in_body:
            self._parse_body()

    def _parse_head(self) -> None:
        head, found, rest = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return
        status_line, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._buffer, self._in_body = rest, True
        self._chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self._chunked:
            if "content-length" not in self.headers:
                raise ValueError("response has neither Content-Length nor chunked encoding")
            self._remaining = int(self.headers["content-length"])

    def _parse_body(self) -> None:
        if not self._chunked:
            taken = min(self._remaining, len(self._buffer))
            self.body_bytes += taken
            self._remaining -= taken
            self._buffer = self._buffer[taken:]
            self.complete = self._remaining == 0
            return
        while not self.complete:
            if self._trailer_crlf:
                if len(self._buffer) < 2:
                    return
                self._buffer, self._trailer_crlf = self._buffer[2:], False
            if self._remaining == 0:
                line, found, rest = self._buffer.partition(b"\r\n")
                if not found:
                    return
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    if len(rest) < 2:
                        return  # wait for the CRLF that ends the body
                    if not rest.startswith(b"\r\n"):
                        raise ValueError("chunked trailers are not supported")
                    self._buffer, self.complete = rest[2:], True
                    return
                self._buffer, self._remaining = rest, size
            taken = min(self._remaining, len(self._buffer))
            if taken == 0:
                return
            self.body_bytes += taken
            self._remaining -= taken
            self._buffer = self._buffer[taken:]
            self._trailer_crlf = self._remaining == 0


@dataclass(frozen=True)
class TtfcResult:
    """Time-to-first-chunk samples in milliseconds (plus whole-response times)."""

    label: str
    ttfc_ms: tuple[float, ...]
    total_ms: tuple[float, ...]
    sent: int  # requests sent, warm-up included


def _request_bytes(host: str, port: int, path: str, body: bytes, headers: Sequence[str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             "Authorization: Bearer sk-bench-not-a-key", "Accept: text/event-stream",
             f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _connect(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return sock


async def _one_sample(sock: socket.socket, request: bytes) -> tuple[int, int, bool]:
    """(ns to first body byte, ns to complete response, connection reusable)."""
    loop = asyncio.get_running_loop()
    reader = ResponseReader()
    first_body_ns = 0
    started = time.perf_counter_ns()
    await loop.sock_sendall(sock, request)
    while not reader.complete:
        data = await loop.sock_recv(sock, 65536)
        now = time.perf_counter_ns()
        if not data:
            raise ConnectionError("server closed the connection mid-response")
        reader.feed(data)
        if not first_body_ns and reader.body_bytes:
            first_body_ns = now - started
    if reader.status != 200:
        raise RuntimeError(f"streaming request answered {reader.status}")
    keep = reader.headers.get("connection", "").lower() != "close"
    return first_body_ns, time.perf_counter_ns() - started, keep


async def _measure(url_host: str, port: int, path: str, body: bytes, headers: Sequence[str],
                   samples: int, label: str) -> TtfcResult:
    request = _request_bytes(url_host, port, path, body, headers)
    ttfc, total = [], []
    sock = await _connect(url_host, port)
    try:
        for _ in range(samples):
            first_ns, all_ns, keep = await _one_sample(sock, request)
            ttfc.append(first_ns / 1e6)
            total.append(all_ns / 1e6)
            if not keep:
                sock.close()
                sock = await _connect(url_host, port)
    finally:
        sock.close()
    return TtfcResult(label=label, ttfc_ms=tuple(ttfc), total_ms=tuple(total), sent=samples)


def measure_ttfc(port: int, *, label: str, body: bytes, headers: Sequence[str] = (),
                 samples: int = 300, path: str = "/v1/chat/completions",
                 warmup: int = 20) -> TtfcResult:
    """``samples`` sequential streaming requests to 127.0.0.1:``port`` (after ``warmup``)."""
    asyncio.run(_measure("127.0.0.1", port, path, body, headers, warmup, label))
    result = asyncio.run(_measure("127.0.0.1", port, path, body, headers, samples, label))
    return TtfcResult(label=label, ttfc_ms=result.ttfc_ms, total_ms=result.total_ms,
                      sent=warmup + samples)
