from __future__ import annotations

import pytest

from llmtrace_otel.providers.sse import SSEDecoder, parse_event
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
    with pytest.raises(ValueError, match="16 bytes"):
        decoder.feed(b"abcdefgh")
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
