"""PII detector: validated positives, hard negatives, offsets and redacted evidence.

Card numbers are the networks' published test numbers; SSNs, IBANs and phone numbers are
documentation or example values (555-01xx, the ECBS example IBANs).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.pii import (
    PII_CREDIT_CARD,
    PII_EMAIL,
    PII_IBAN,
    PII_IP_ADDRESS,
    PII_PHONE,
    PII_US_SSN,
    detect_pii,
)
from llmtrace_processors.security.pii_rules import (
    iban_ok,
    ip_kind,
    ipv4_value,
    phone_structure_score,
)


def found(text: str, finding_type: str | None = None) -> list[str]:
    """The exact substrings reported (optionally of one type)."""
    return [
        text[f.start : f.end]
        for f in detect_pii(text)
        if finding_type is None or f.finding_type == finding_type
    ]


def only(text: str) -> Finding:
    findings = detect_pii(text)
    assert len(findings) == 1, findings
    return findings[0]


# --- email ------------------------------------------------------------------------------------


def test_email_with_offsets_and_masked_evidence() -> None:
    text = "Please write to jane.doe+tag@mail.example.co.uk, thanks."
    finding = only(text)
    assert finding.finding_type == PII_EMAIL
    assert text[finding.start : finding.end] == "jane.doe+tag@mail.example.co.uk"
    assert finding.evidence == "j***@mail.example.co.uk"
    assert finding.detector == "pii" and finding.side == Side.INPUT
    assert finding.severity == Severity.LOW


@pytest.mark.parametrize(
    "text",
    [
        "bad..dots@example.com",
        "user@localhost",
        "ping @channel about it",
        "trailing.@example.com",
        "user@under_score.com",
        "a@b.c",
    ],
)
def test_email_hard_negatives(text: str) -> None:
    assert found(text, PII_EMAIL) == []


def test_email_with_a_non_ascii_local_part_is_reported_whole() -> None:
    assert found("schreib an müller@beispiel.de", PII_EMAIL) == ["müller@beispiel.de"]


def test_email_after_a_leading_mention() -> None:
    assert found("@bob: mail jo@example.org", PII_EMAIL) == ["jo@example.org"]


def test_several_emails_and_side() -> None:
    text = "cc: a.b@x.org; b_c@y.io"
    findings = detect_pii(text, side=Side.OUTPUT)
    assert [text[f.start : f.end] for f in findings] == ["a.b@x.org", "b_c@y.io"]
    assert {f.side for f in findings} == {Side.OUTPUT}


# --- phone ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, number",
    [
        ("Call +14155550132 now", "+14155550132"),
        ("Call me at +49 30 1234567 tomorrow", "+49 30 1234567"),
        ("London office +44 (0)20 7946 0958.", "+44 (0)20 7946 0958"),
        ("It is (415) 555-0132 for sales", "(415) 555-0132"),
        ("support: 415-555-0132 x123 (9-5)", "415-555-0132 x123"),
        ("fax 415.555.0132", "415.555.0132"),
        ("Mein Telefon: 030 12345678", "030 12345678"),
        ("Tél : 01 23 45 67 89", "01 23 45 67 89"),
        ("They're not answering at 785 8949", "785 8949"),
        ("Phone:\n 0151 2345678", "0151 2345678"),
        ("001-415-555-0132-Office", "001-415-555-0132"),
        ("reach me on 4155550132 (mobile)", "4155550132"),
        ("my number is 4155550132", "4155550132"),
        ("mobile +33 6 12 34 56 78", "+33 6 12 34 56 78"),
        ("call +61 4 1234 5678", "+61 4 1234 5678"),
        ("Tel +49(0)1234 567890", "+49(0)1234 567890"),
        ("call 07700 900123", "07700 900123"),
        ("phone: 1-800-555-0199", "1-800-555-0199"),
        ('{"phone_number":"555-0100"},{"employee_id":"E1002"}', "555-0100"),
    ],
)
def test_phone_numbers(text: str, number: str) -> None:
    assert found(text, PII_PHONE) == [number]


@pytest.mark.parametrize(
    "text",
    [
        "ISBN 978-3-16-148410-0",
        "the meeting is on 2023-01-04 or 04.01.2023",
        "In 2019 2020 2021 we grew.",
        "order 4155550132 shipped",  # no phone context, a negative one
        "785 8949",  # short and no context
        "I'd like to call a taxi to 03 2657 Koontz Lane",  # a house number
        "timestamp 1700000000 and 1.2.3.4.5",
        "pi is 3.14159 2.71828",
        "+999 1234 5678",  # no such country code
        "000 000 0000",
        "license number 4155550132",
        "card number 4155550132",
    ],
)
def test_phone_hard_negatives(text: str) -> None:
    assert found(text, PII_PHONE) == []


def test_phone_evidence_keeps_only_last_two_digits() -> None:
    finding = only("call (415) 555-0132")
    assert finding.evidence == "(***) ***-**32"


# --- payment cards --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, brand",
    [
        ("4012888888881881", "visa"),
        ("4012 8888 8888 1881", "visa"),
        ("5105-1051-0510-5100", "mastercard"),
        ("378282246310005", "amex"),
        ("3782 822463 10005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
    ],
)
def test_cards_pass_luhn_and_iin(number: str, brand: str) -> None:
    text = f"My card {number} expires soon"
    finding = only(text)
    assert finding.finding_type == PII_CREDIT_CARD
    assert text[finding.start : finding.end] == number
    assert brand in finding.message
    assert finding.severity == Severity.HIGH
    assert finding.confidence >= 0.9  # "card" is nearby


@pytest.mark.parametrize(
    "text",
    [
        "card 4012888888881882",  # fails Luhn
        "card 4012 8888-8888 1881",  # mixed separators
        "id 94012888888881881",  # part of a longer digit run
        "4012888888881881-7",
        "tracking 1234567812345670",  # Luhn valid, no issuer range, no card context
        "card 0000 0000 0000 0000",
    ],
)
def test_card_hard_negatives(text: str) -> None:
    assert found(text, PII_CREDIT_CARD) == []


def test_card_without_context_is_still_reported_but_less_sure() -> None:
    finding = only("4012888888881881")
    assert finding.finding_type == PII_CREDIT_CARD
    assert 0.5 <= finding.confidence < 0.9
    assert finding.evidence == "************1881"


# --- US SSN -------------------------------------------------------------------------------------


def test_ssn_dashed() -> None:
    text = "Here's my SSN: 536-32-3065."
    finding = only(text)
    assert finding.finding_type == PII_US_SSN
    assert text[finding.start : finding.end] == "536-32-3065"
    assert finding.evidence == "***-**-*065"  # at most a third of the digits


@pytest.mark.parametrize(
    "ssn",
    [
        "000-12-3456",
        "666-12-3456",
        "923-45-6789",
        "536-00-3065",
        "536-32-0000",
        "078-05-1120",
        "536-32 3065",
    ],  # fmt: skip
)
def test_ssn_invalid_numbers(ssn: str) -> None:
    assert found(f"ssn {ssn}", PII_US_SSN) == []


def test_bare_nine_digits_need_ssn_context() -> None:
    assert found("social security number 536323065", PII_US_SSN) == ["536323065"]
    assert found("the value is 536323065", PII_US_SSN) == []
    assert found("My driver's license number is 536323065", PII_US_SSN) == []


def test_min_confidence_exposes_weaker_candidates() -> None:
    text = "the value is 536323065"
    weak = [f for f in detect_pii(text, min_confidence=0.1) if f.finding_type == PII_US_SSN]
    assert len(weak) == 1 and weak[0].confidence < 0.5


# --- IBAN -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iban",
    [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "gb82west12345698765432",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
        "CZ65 0800 0000 1920 0014 5399",  # a Z in the country code
        "AZ21NABZ00000000137010001944",  # and in the account part (Z is a letter too)
    ],
)
def test_iban_valid(iban: str) -> None:
    text = f"my IBAN is {iban} Bank of Nowhere"
    finding = only(text)
    assert finding.finding_type == PII_IBAN
    assert text[finding.start : finding.end] == iban
    assert finding.evidence.startswith(iban[:2].upper())
    assert iban not in finding.evidence


@pytest.mark.parametrize(
    "text",
    [
        "IBAN DE89 3704 0044 0532 0130 01",  # checksum
        "IBAN DE8937040044053201300",  # length for DE
        "IBAN ZZ89370400440532013000",  # no such country
        "IBAN DE89 37040 04405 3201 3000",  # not printed in groups of four
        "IBAN GB82WEST12345698765432X",  # runs on
    ],
)
def test_iban_hard_negatives(text: str) -> None:
    assert found(text, PII_IBAN) == []


@pytest.mark.parametrize(
    "compact",
    [
        "GBAKWEST12345698765432",  # letters for check digits (mod-97 would pass)
        "GBD2WEST12345698765432",  # a letter for the first check digit (mod-97 would pass)
        "GB82WEST1234569876543",  # one short for GB
        "GB82WEST1234569876543-",  # a character no IBAN holds
    ],
)
def test_iban_rule_refuses_what_only_looks_like_one(compact: str) -> None:
    assert not iban_ok(compact)
    assert iban_ok("GB82WEST12345698765432")


# --- IP addresses -------------------------------------------------------------------------


def test_ip_public_private_and_not_identifying() -> None:
    text = "from 8.8.8.8 and 192.168.1.10, not 127.0.0.1, 0.0.0.0, 255.255.255.255, 224.0.0.1"
    findings = [f for f in detect_pii(text) if f.finding_type == PII_IP_ADDRESS]
    assert [text[f.start : f.end] for f in findings] == ["8.8.8.8", "192.168.1.10"]
    public, private = findings
    assert "public" in public.message and public.severity == Severity.LOW
    assert "private" in private.message and private.severity == Severity.INFO
    assert public.evidence == "8.8.*.*"


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4 is out",
        "v2.3.4.1",
        "1.2.3.4.5",
        "octets 010.001.002.003",
        "999.1.1.1",
        "std::vector<int> v; at 12:30:45",
        "mac 00:1a:2b:3c:4d:5e",
        "cafe::beef",
        "loopback ::1",
    ],
)
def test_ip_hard_negatives(text: str) -> None:
    assert found(text, PII_IP_ADDRESS) == []


def test_ipv6_full_and_compressed() -> None:
    text = "hosts 2a00:1450:4001:82a::200e and fe80::1ff:fe23:4567:890a."
    assert found(text, PII_IP_ADDRESS) == ["2a00:1450:4001:82a::200e", "fe80::1ff:fe23:4567:890a"]
    assert detect_pii(text)[0].evidence == "2a00:****"


# --- everything together ----------------------------------------------------------------------


def test_uuids_and_git_shas_are_not_pii() -> None:
    text = (
        "request 123e4567-e89b-12d3-a456-426614174000 at commit "
        "3f2a9c1b7e5d4a6f8e9d0c1b2a3f4e5d6c7b8a9f"
    )
    assert detect_pii(text) == []


def test_unicode_folding_keeps_original_offsets() -> None:
    full_width = "ｍｙ ｃａｒｄ ４０１２ ８８８８ ８８８８ １８８１ ok"
    finding = only(full_width)
    assert full_width[finding.start : finding.end] == "４０１２ ８８８８ ８８８８ １８８１"
    zero_width = "card 4012\u200b8888\u200b8888\u200b1881!"
    finding = only(zero_width)
    assert zero_width[finding.start : finding.end] == "4012\u200b8888\u200b8888\u200b1881"


def test_evidence_never_holds_the_value() -> None:
    text = (
        "Name: Jo, email jo.smith@example.org, phone +1 415 555 0132, card 4012888888881881, "
        "ssn 536-32-3065, IBAN GB82WEST12345698765432, ip 8.8.4.4"
    )
    findings = detect_pii(text)
    assert {f.finding_type for f in findings} == {
        PII_EMAIL, PII_PHONE, PII_CREDIT_CARD, PII_US_SSN, PII_IBAN, PII_IP_ADDRESS,
    }  # fmt: skip
    for finding in findings:
        value = text[finding.start : finding.end]
        assert value not in finding.evidence
        assert value not in finding.message
        assert (
            len([c for c in finding.evidence if c.isdigit()])
            <= 4 + (finding.finding_type == PII_IBAN) * 2
        )


def test_overlapping_candidates_keep_the_stronger_type() -> None:
    # An SSN-shaped number is never also a phone number; a card never also an IBAN.
    assert [f.finding_type for f in detect_pii("ssn 536-32-3065")] == [PII_US_SSN]
    assert [f.finding_type for f in detect_pii("card 6011111111111117")] == [PII_CREDIT_CARD]


def test_empty_and_plain_text() -> None:
    assert detect_pii("") == []
    assert detect_pii("Nothing to see here, just words and 42 numbers.") == []


# --- the shared labelled set --------------------------------------------------------------------


def _dataset() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "datasets" / "pii_presidio_generated.json"
        if candidate.is_file():
            return candidate
    return None


@pytest.mark.skipif(_dataset() is None, reason="../shared/datasets not present")
def test_presidio_set_quality_floor() -> None:
    """A regression floor on the shared set (the numbers themselves: bench/pii_eval.py)."""
    path = _dataset()
    assert path is not None
    rows = json.loads(path.read_text(encoding="utf-8"))
    types = {
        "EMAIL_ADDRESS": PII_EMAIL, "PHONE_NUMBER": PII_PHONE, "CREDIT_CARD": PII_CREDIT_CARD,
        "US_SSN": PII_US_SSN, "IBAN_CODE": PII_IBAN, "IP_ADDRESS": PII_IP_ADDRESS,
    }  # fmt: skip
    tp = dict.fromkeys(types.values(), 0)
    fp = dict.fromkeys(types.values(), 0)
    fn = dict.fromkeys(types.values(), 0)
    for row in rows:
        gold = {
            (types[s["entity_type"]], s["start_position"], s["end_position"])
            for s in row["spans"]
            if s["entity_type"] in types
        }
        predicted = {(f.finding_type, f.start, f.end) for f in detect_pii(row["full_text"])}
        for kind in types.values():
            g = {x for x in gold if x[0] == kind}
            p = {x for x in predicted if x[0] == kind}
            tp[kind] += len(g & p)
            fp[kind] += len(p - g)
            fn[kind] += len(g - p)
    for kind in types.values():
        f1 = 2 * tp[kind] / (2 * tp[kind] + fp[kind] + fn[kind])
        assert f1 >= (0.8 if kind == PII_PHONE else 0.9), (kind, tp[kind], fp[kind], fn[kind])


def test_overlap_resolution_keeps_disjoint_strongest() -> None:
    from llmtrace_processors.security.overlaps import keep_strongest

    spans = [
        Finding("a", Severity.LOW, 0.5, "t", start=0, end=10),
        Finding("b", Severity.LOW, 0.9, "t", start=5, end=8),
        Finding("c", Severity.LOW, 0.6, "t", start=8, end=12),
        Finding("d", Severity.LOW, 0.7, "t", start=12, end=13),
        Finding("e", Severity.LOW, 0.7, "t", start=7, end=9),
    ]
    assert [f.finding_type for f in keep_strongest(spans)] == ["b", "c", "d"]


# --- the rules on their own: phone grouping and IPv4 octets ----------------------------------


@pytest.mark.parametrize(("number", "score"), [
    ('+352 621 123 456', 0.85),  # a three-digit country code (zone 35)
    ('+33 12 3 45 67 89', 0.0),  # a lone digit after the area code
    ('020 7 946 0958', 0.0),  # a lone digit after the trunk prefix
    ('192.168.100.200', 0.0),  # a dotted quad with three-digit groups
    ('0090 212 123 4567', 0.7),  # 00 and a country code (Turkey)
    ('+44 (0)20 7946 0958', 0.85),  # international, the optional trunk (0) dropped
    ('+1 415 555 0132', 0.85),
    ('+33 6 12 34 56 78', 0.85),  # a lone mobile digit after the country code
    ('+33 12 34 56', 0.85),  # international: 8 digits are enough
    ('+33 12 345', 0.0),  # 7 are not
    ('+999 1234 5678', 0.0),  # no such country code
    ('+123456789012345', 0.85),  # 15 digits: the E.164 maximum
    ('+1234567890123456', 0.0),  # 16: too long
    ('12345', 0.0),  # too short
    ('123457', 0.2),  # 6 digits: the shortest number
    ('1111112222', 0.0),  # two distinct digits: a filler
    ('1112223333', 0.35),  # three are enough
    ('2024-01-15', 0.0),  # a date
    ('123-45-6789', 0.0),  # SSN-shaped
    ('123 45 6789', 0.35),  # SSN groups, not its dashes
    ('123-45 6789', 0.35),  # SSN groups, one dash
    ('10.20.30.40', 0.0),  # a dotted quad
    ('123.456.789.0123', 0.45),  # a group of 4 is no quad
    ('10.20.30', 0.3),  # three groups are no quad
    ('10.20.30.40.50', 0.45),  # five groups neither
    ('978 0 306 40615 7', 0.0),  # ISBN-like: lone digits
    ('02079460958', 0.4),  # one group of 11, national trunk 0
    ('4155550132', 0.35),  # one group of 10
    ('41555501329', 0.35),  # one group of 11
    ('415555013', 0.2),  # one group of 9
    ('0415555013', 0.4),  # 10 from a trunk 0
    ('1234567', 0.2),  # one group of 7
    ('2019 2020 2021', 0.1),  # years
    ('2019 2020 3021', 0.45),  # not all years
    ('(415) 555-0132', 0.8),  # NANP
    ('(115) 555-0132', 0.7),  # NANP area code cannot start with 1
    ('(415) 155-0132', 0.7),  # nor its exchange
    ('1 415 555 0132', 0.8),  # NANP with the country code
    ('011 415 555 0132', 0.8),  # NANP from abroad
    ('2 415 555 0132', 0.45),  # a leading 2 is no NANP prefix
    ('(020) 7946 0958', 0.7),  # parenthesised area code
    ('(01) 23456', 0.45),  # parenthesised, 7 digits
    ('(012) 34567', 0.7),  # parenthesised, 8 digits
    ('0044 20 7946 0958', 0.7),  # 00 and a country code
    ('0044 2079 46', 0.7),  # 00 and 10 digits
    ('0044 2079 4', 0.0),  # a lone last digit
    ('0080 2079 4612', 0.6),  # 00 but no such country code
    ('020 7946 0958', 0.6),  # trunk 0, 11 digits
    ('012 345 678', 0.6),  # trunk 0, 9 digits
    ('0123 4567 8901', 0.6),  # trunk 0, 12 digits
    ('0123 4567 89012', 0.4),  # trunk 0, 13 digits
    ('012 34567', 0.4),  # trunk 0, 8 digits
    ('415 555 01329', 0.45),  # 11 digits, no known grouping
    ('4155 50132', 0.35),  # 9 digits
    ('4155 501329', 0.45),  # 10 digits
    ('5550 1329', 0.35),  # 8 digits
    ('555 0132', 0.3),  # 7 digits
    ('5550 132', 0.3),  # 7 digits
])
def test_phone_structure_scores(number: str, score: float) -> None:
    """Each rule of the phone scoring on a number that reaches it, and its boundaries:
    the score is the finding's confidence before context words are added."""
    assert phone_structure_score(number) == score


def test_ipv4_octets() -> None:
    assert ipv4_value("10.0.0.1") == 10 * 2**24 + 1
    assert ipv4_value("255.255.255.255") == 2**32 - 1
    assert ipv4_value("256.1.1.1") is None  # over 255
    assert ipv4_value("10.01.0.1") is None  # a leading zero: octal to some parsers
    assert ipv4_value("10.001.0.1") is None


def test_ipv6_kinds() -> None:
    def kind(text: str) -> str | None:
        return ip_kind(ipaddress.IPv6Address(text))

    assert [kind(a) for a in ("::1", "::", "ff02::1")] == [None, None, None]  # nobody
    assert kind("2001:db8::1") == "documentation"
    assert kind("2606:4700::1111") == "public"
    assert [kind(a) for a in ("fe80::1", "fd00::1")] == ["private", "private"]
    assert [kind(a) for a in ("::ffff:8.8.8.8", "::ffff:10.0.0.1")] == ["public", "private"]
