from __future__ import annotations

import random
import time

import pytest

from llmtrace_otel.providers.sse import SSEDecoder, SSEEventTooLarge, parse_event
from tests.providers.recorded import decode, fixed_chunks, payload, random_chunks


def test_lf_crlf_and_cr_separators() -> None:
    data = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\n"
    assert [e.data for e in decode([data])] == ["a", "b", "c", "d"]


def test_crlf_lines_inside_an_event() -> None:
    [event] = decode([b"event: message_start\r\ndata: {\"x\":1}\r\n\r\n"])
    assert event.event == "message_start"
    assert event.data == '{"x":1}'


def test_comments_are_ignored_and_a_comment_only_event_has_no_data() -> None:
    events = decode([b": keep-alive\n\n: note\ndata: x\n\n"])
    assert [(e.event, e.data) for e in events] == [(None, ""), (None, "x")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    [event] = decode([b"data: first\ndata:second\ndata:  third\n\n"])
    assert event.data == "first\nsecond\n third"  # one leading space stripped, no more


def test_field_without_colon_and_unknown_fields() -> None:
    [event] = decode([b"data\nid: 7\nretry: 10\ndata: x\n\n"])
    assert event.data == "\nx"  # "data" alone is an empty data line


def test_raw_is_the_exact_bytes_separator_included() -> None:
    data = b"event: ping\ndata: {\"type\": \"ping\"}\n\ndata: [DONE]\n\n"
    events = decode([data])
    assert b"".join(e.raw for e in events) == data
    assert events[0].raw == b"event: ping\ndata: {\"type\": \"ping\"}\n\n"


def test_separator_split_across_chunks() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\n") == []
    assert decoder.feed(b"\r") == []
    [event] = decoder.feed(b"\ndata: b")
    assert event.data == "a"
    assert decoder.pending == b"data: b"


def test_flush_returns_the_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: tail\n") != []
    [tail] = decoder.flush()
    assert tail.data == "tail"
    assert tail.raw == b"data: tail\n"
    assert decoder.pending == b""
    assert decoder.flush() == []


def test_flush_of_whitespace_only_is_nothing() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n\n")
    assert decoder.flush() == []


def test_max_event_bytes_raises_and_resets() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    decoder.feed(b"data: 0123456789")
    with pytest.raises(SSEEventTooLarge, match="16 bytes") as raised:
        decoder.feed(b"abcdefgh")
    assert raised.value.unparsed == b"data: 0123456789abcdefgh"  # nothing it held is lost
    assert isinstance(raised.value, ValueError)
    assert decoder.pending == b""
    assert [e.data for e in decoder.feed(b"data: ok\n\n")] == ["ok"]


def test_events_under_the_limit_in_one_big_chunk_are_fine() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    events = decoder.feed(b"data: 0123456789\n\n" * 50)
    assert len(events) == 50


def test_invalid_utf8_is_replaced_not_raised() -> None:
    event = parse_event(b"data: \xff\xfe\n\n")
    assert event.data == "\ufffd\ufffd"


@pytest.mark.parametrize("name", ["openai_chat_stream.txt", "anthropic_stream.txt",
                                  "openai_responses_stream.txt"])
def test_recorded_streams_decode_identically_whatever_the_chunking(name: str) -> None:
    data = payload(name)
    whole = decode([data])
    assert len(whole) == data.count(b"\n\n")
    for chunks in (fixed_chunks(data, 1), fixed_chunks(data, 7), random_chunks(data, 3)):
        assert decode(chunks) == whole
    crlf = decode(fixed_chunks(data.replace(b"\n", b"\r\n"), 5))
    assert [(e.event, e.data) for e in crlf] == [(e.event, e.data) for e in whole]


def test_the_limit_counts_the_tail_left_after_complete_events() -> None:
    decoder = SSEDecoder(max_event_bytes=16)
    decoder.feed(b"data: 01234")
    with pytest.raises(SSEEventTooLarge) as raised:
        decoder.feed(b"\n\ndata: 0123456789abcdef")
    assert raised.value.unparsed == b"data: 01234\n\ndata: 0123456789abcdef"


@pytest.mark.parametrize("separator", [b"\n\n", b"\r\n\r\n", b"\r\r"])
def test_a_separator_split_over_one_byte_chunks_is_found(separator: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a") == []
    for byte in separator[:-1]:
        assert decoder.feed(bytes([byte])) == []
    [event] = decoder.feed(separator[-1:] + b"data: b")
    assert event.raw == b"data: a" + separator
    assert decoder.pending == b"data: b"


def test_any_chunking_of_mixed_separators_decodes_alike() -> None:
    rng = random.Random(5)
    pieces = [b"data: x", b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n", b"event: e"]
    for _ in range(300):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        whole = SSEDecoder()
        expected = whole.feed(data) + whole.flush()
        chunked = SSEDecoder()
        got = []
        at = 0
        while at < len(data):
            size = rng.randint(1, 4)
            got += chunked.feed(data[at : at + size])
            at += size
        assert got + chunked.flush() == expected, data


def test_one_large_event_in_small_chunks_costs_linear_time() -> None:
    # A base64 image in one data line, relayed 1 KB at a time. Re-joining and re-searching
    # the held tail on every chunk took 11 s of CPU for these 2 MB (quadratic); linear
    # takes ~0.03 s. CPU time of this thread, so other load does not count.
    decoder = SSEDecoder()
    started = time.thread_time()
    assert decoder.feed(b"data: " + b"A" * 1018) == []
    for _ in range(2047):
        assert decoder.feed(b"A" * 1024) == []
    [event] = decoder.feed(b"\n\n")
    used = time.thread_time() - started
    assert len(event.data) == 2047 * 1024 + 1018
    assert used < 2.0, f"{used:.1f} s of CPU for one 2 MB event in 1 KB chunks"
