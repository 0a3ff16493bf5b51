"""PII detection with validation: email, phone, payment card, US SSN, IBAN, IP address.

:func:`detect_pii` is a pure function over text. Each entity type is found by a cheap
candidate pattern and then *validated* (checksums, issuer ranges, number structure, parsed
addresses, see :mod:`processors.security.pii_rules`); words near the candidate ("ssn",
"card", "phone", "iban", "version", "order" ...) raise or lower its confidence. Findings
below ``min_confidence`` are not returned, so a bare 9-digit number is an SSN only when
the text says so, and ``1.2.3.4`` after "version" is not an IP address.

Offsets index the text as given (full-width digits, zero-width characters and Unicode
dashes are folded for matching only), so a redactor can cut ``text[start:end]``.
Evidence is masked (``****-****-****-1234``, ``j***@example.com``, ``86.231.*.*``).

Finding types: ``pii.email``, ``pii.phone``, ``pii.credit_card``, ``pii.us_ssn``,
``pii.iban``, ``pii.ip_address``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from llmtrace_processors.security._textview import text_view
from llmtrace_processors.security.evidence import mask_digits, mask_email
from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.overlaps import keep_strongest
from llmtrace_processors.security.pii_context import (
    CARD,
    IBAN,
    IP,
    NOT_CARD,
    NOT_IP,
    NOT_PHONE,
    NOT_SSN,
    PHONE,
    SSN,
    STREET,
    context_of,
)
from llmtrace_processors.security.pii_rules import (
    IBAN_LENGTHS,
    card_brand,
    iban_ok,
    ip_kind,
    ipv4_value,
    luhn_ok,
    phone_structure_score,
    ssn_ok,
)

__all__ = [
    "DETECTOR",
    "MIN_CONFIDENCE",
    "PII_CREDIT_CARD",
    "PII_EMAIL",
    "PII_IBAN",
    "PII_IP_ADDRESS",
    "PII_PHONE",
    "PII_TYPES",
    "PII_US_SSN",
    "detect_pii",
]

DETECTOR = "pii"
MIN_CONFIDENCE = 0.5

PII_EMAIL = "pii.email"
PII_PHONE = "pii.phone"
PII_CREDIT_CARD = "pii.credit_card"
PII_US_SSN = "pii.us_ssn"
PII_IBAN = "pii.iban"
PII_IP_ADDRESS = "pii.ip_address"
PII_TYPES: tuple[str, ...] = (
    PII_CREDIT_CARD,
    PII_EMAIL,
    PII_IBAN,
    PII_IP_ADDRESS,
    PII_PHONE,
    PII_US_SSN,
)

# --- candidate patterns ------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")
# A run of digits with the punctuation numbers are written with; every numeric type is
# searched for only around runs with enough digits (one fast pass instead of five).
# A cluster is ``[0-9+(][0-9().\- ]*[0-9]``; the run is matched whole (possessive) and cut
# back to its last digit in _clusters, because that regex would re-read a long run with no
# digit in it (a wall of "(") from every position, in time quadratic in its length.
_CLUSTER_RUN = re.compile(r"[0-9+(][0-9().\- ]*+")
_CLUSTER_TAIL = "(). -"
_PUNCTUATION = str.maketrans("", "", "+(). -")
_V6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_MARGIN = 16  # characters after a run that a match may still use (extensions, boundaries)
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.%+-_'")
_EMAIL_DOMAIN = re.compile(r"(?:[^\W_][\w-]{0,62}\.)+[^\W\d_]{2,63}(?![\w-]|\.[^\W_])")
_CARD = re.compile(
    r"(?<![\w-])(?:\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,4}(?:(?P=s)\d{1,3})?"
    r"|\d{4}(?P<t>[ -])\d{6}(?P=t)\d{4,5}|\d{12,19})(?![\w]|[ -]?\d)"
)
_SSN = re.compile(r"(?<![\w-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[ -]?\d)")
_PHONE_GROUP = r"(?:\(\d{1,5}\)|\d{1,8})"
_PHONE = re.compile(
    rf"(?<![\w@$€£¥+/.:-])(?P<number>(?:\+ ?)?(?:\d{{9,15}}(?![ .-]?\d)|{_PHONE_GROUP}"
    rf"(?:(?:[ .-]|(?<=\)) ?|(?=\(\d)){_PHONE_GROUP}){{1,6}}))"
    r"(?P<ext> ?(?:x|ext\.?|extension|#) ?\d{1,6})?(?![\w@]|[.-]?\d)"
)
_IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w]|\.\d)"
)
_V6_CHARS = frozenset("0123456789abcdefABCDEF:.")
_IBAN_START = re.compile(r"(?<![\w])[A-Za-z]{2}\d{2}(?=[ ]?[A-Za-z0-9])")

_IP_BASE: dict[str, tuple[float, Severity]] = {
    "public": (0.85, Severity.LOW),
    "private": (0.7, Severity.INFO),
    "reserved": (0.6, Severity.INFO),
    "documentation": (0.55, Severity.INFO),
}


@dataclass(frozen=True, slots=True)
class _Hit:
    finding_type: str
    start: int
    end: int
    confidence: float
    severity: Severity
    message: str


def detect_pii(
    text: str, *, side: str = Side.INPUT, min_confidence: float = MIN_CONFIDENCE
) -> list[Finding]:
    """PII findings in ``text`` with confidence >= ``min_confidence``, ordered by offset."""
    if not text:
        return []
    view = text_view(text)
    scan = view.text
    hits: list[_Hit] = []
    if "@" in scan:
        hits.extend(_emails(scan))
    runs = _Runs.of(scan)
    if runs.iban_starts:
        hits.extend(_ibans(scan, runs.iban_starts))
    if runs.phone:  # on a tie of confidence the earlier, more specific type is kept
        hits.extend(_cards(scan, runs.card))
        hits.extend(_ssns(scan, runs.ssn))
        hits.extend(_phones(scan, runs.phone))
    if runs.ipv4:
        hits.extend(_ipv4s(scan, runs.ipv4))
    if ":" in scan:
        hits.extend(_ipv6s(scan))
    findings = []
    for hit in keep_strongest(hit for hit in hits if hit.confidence >= min_confidence):
        start, end = view.span(hit.start, hit.end)
        findings.append(
            Finding(
                finding_type=hit.finding_type,
                severity=hit.severity,
                confidence=round(hit.confidence, 3),
                detector=DETECTOR,
                side=side,
                start=start,
                end=end,
                evidence=_evidence(hit.finding_type, scan[hit.start : hit.end]),
                message=hit.message,
            )
        )
    return findings


def _evidence(finding_type: str, value: str) -> str:
    if finding_type == PII_EMAIL:
        return mask_email(value)
    if finding_type == PII_IP_ADDRESS:
        if ":" in value:
            return value.split(":", 1)[0] + ":****"
        return ".".join(value.split(".")[:2]) + ".*.*"
    if finding_type == PII_IBAN:
        return value[:2].upper() + mask_digits(value[2:], 4)
    return mask_digits(value, 2 if finding_type == PII_PHONE else 4)


@dataclass(slots=True)
class _Runs:
    """Numeric runs (``[start, end)``) with enough digits for each entity type."""

    phone: list[tuple[int, int]]
    ssn: list[tuple[int, int]]
    card: list[tuple[int, int]]
    ipv4: list[tuple[int, int]]
    iban_starts: list[int]

    @classmethod
    def of(cls, text: str) -> _Runs:
        runs = cls([], [], [], [], [])
        for start, end in _clusters(text):
            value = text[start:end]
            digits = len(value.translate(_PUNCTUATION))
            if start >= 2 and text[start - 1].isalpha() and "0" <= value[0] <= "9":
                runs.iban_starts.append(start)
            if digits >= 6:
                runs.phone.append((start, end))
                if digits >= 9:
                    runs.ssn.append((start, end))
                    if digits >= 12:
                        runs.card.append((start, end))
            if digits >= 4 and value.count(".") >= 3:
                runs.ipv4.append((start, end))
        return runs


def _clusters(text: str) -> Iterator[tuple[int, int]]:
    """``[start, end)`` of every numeric cluster, as ``finditer`` of the cluster regex."""
    for match in _CLUSTER_RUN.finditer(text):
        value = match.group().rstrip(_CLUSTER_TAIL)
        if len(value) >= 2:  # a start character and at least one digit after it
            start = match.start()
            yield start, start + len(value)


def _in_runs(
    pattern: re.Pattern[str], text: str, runs: list[tuple[int, int]]
) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` that start inside one of ``runs``."""
    for start, end in runs:
        for match in pattern.finditer(text, start, min(len(text), end + _MARGIN)):
            if match.start() >= end:
                break
            yield match


def _bounded(value: float) -> float:
    return min(0.99, max(0.0, value))


# --- one scanner per entity type ---------------------------------------------------------------


def _emails(text: str) -> list[_Hit]:
    hits = []
    at = text.find("@")
    while at >= 0:
        start = at
        while start > 0 and at - start < 64 and _email_local_char(text[start - 1]):
            start -= 1
        local = text[start:at].lstrip(".'")
        start = at - len(local)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local and domain is not None and _email_ok(local, domain.group()):
            end = domain.end()
            reserved = domain.group().lower().rsplit(".", 1)[-1] in ("test", "invalid", "local")
            confidence = 0.55 if reserved else 0.9
            hits.append(_Hit(PII_EMAIL, start, end, confidence, Severity.LOW, "email address"))
            at = text.find("@", end)
        else:
            at = text.find("@", at + 1)
    return hits


def _email_local_char(char: str) -> bool:
    return char in _EMAIL_LOCAL or (not char.isascii() and char.isalnum())


def _email_ok(local: str, domain: str) -> bool:
    if local.endswith(".") or ".." in local or len(local) + len(domain) > 253:
        return False
    labels = domain.split(".")
    return all(label and "_" not in label and not label.endswith("-") for label in labels)


def _cards(text: str, runs: list[tuple[int, int]]) -> list[_Hit]:
    hits = []
    for match in _in_runs(_CARD, text, runs):
        digits = re.sub(r"\D", "", match.group())
        if len(set(digits)) <= 2 or not luhn_ok(digits):
            continue
        brand = card_brand(digits)
        context = context_of(text, match.start(), match.end())
        confidence = 0.8 if brand else 0.35
        if context.near(CARD):
            confidence += 0.15 if brand else 0.25
        if context.near(NOT_CARD):
            confidence -= 0.3
        message = f"payment card ({brand or 'unknown issuer'}), Luhn valid"
        start, end = match.span()
        hits.append(_Hit(PII_CREDIT_CARD, start, end, _bounded(confidence), Severity.HIGH, message))
    return hits


def _ssns(text: str, runs: list[tuple[int, int]]) -> list[_Hit]:
    hits = []
    for match in _in_runs(_SSN, text, runs):
        area, separator, group, serial = match.groups()
        if not ssn_ok(area, group, serial):
            continue
        context = context_of(text, match.start(), match.end())
        base, bonus = {"-": (0.75, 0.2), " ": (0.45, 0.3)}.get(separator, (0.2, 0.4))
        confidence = base + (bonus if context.near(SSN) else 0.0)
        if context.near(NOT_SSN):
            confidence -= 0.4
        if area + group + serial == "123456789":
            confidence -= 0.3  # the textbook example
        start, end = match.span()
        message = "US social security number"
        hits.append(_Hit(PII_US_SSN, start, end, _bounded(confidence), Severity.HIGH, message))
    return hits


def _phones(text: str, runs: list[tuple[int, int]]) -> list[_Hit]:
    hits = []
    for match in _in_runs(_PHONE, text, runs):
        number = match.group("number")
        score = phone_structure_score(number)
        if score <= 0.0:
            continue
        context = context_of(text, match.start(), match.end())
        if context.near(PHONE):
            score += 0.3
        if context.near(NOT_PHONE) or context.followed_by(STREET):
            score -= 0.3
        if match.group("ext"):
            score += 0.1
        start, end = match.span()
        hits.append(_Hit(PII_PHONE, start, end, _bounded(score), Severity.LOW, "phone number"))
    return hits


def _ibans(text: str, digit_starts: list[int]) -> list[_Hit]:
    hits = []
    for digits_at in digit_starts:
        match = _IBAN_START.match(text, digits_at - 2)
        if match is None:
            continue
        country = match.group()[:2].upper()
        length = IBAN_LENGTHS.get(country)
        if length is None:
            continue
        compact, end = _iban_body(text, match.start(), length)
        if compact is None or not iban_ok(compact):
            continue
        raw = text[match.start() : end]
        confidence = 0.9 if raw[:2].isupper() else 0.8
        if context_of(text, match.start(), end).near(IBAN):
            confidence += 0.05
        message = f"IBAN ({country}), mod-97 valid"
        hits.append(_Hit(PII_IBAN, match.start(), end, confidence, Severity.MEDIUM, message))
    return hits


def _iban_body(text: str, start: int, length: int) -> tuple[str | None, int]:
    """Collect ``length`` alphanumerics from ``start``: compact, or spaced in groups of 4."""
    chars: list[str] = []
    index = start
    while index < len(text) and len(chars) < length:
        char = text[index]
        if char.isascii() and char.isalnum():
            chars.append(char.upper())
        elif (
            char == " "
            and len(chars) % 4 == 0
            and index + 1 < len(text)
            and (text[index + 1].isalnum())
        ):
            pass
        else:
            return None, index
        index += 1
    if len(chars) < length or (index < len(text) and text[index].isalnum()):
        return None, index
    return "".join(chars), index


def _ip_hit(text: str, start: int, end: int, kind: str | None, version: int) -> _Hit | None:
    if kind is None:
        return None
    confidence, severity = _IP_BASE[kind]
    context = context_of(text, start, end)
    if context.near(IP):
        confidence += 0.1
    if context.near(NOT_IP):
        confidence -= 0.45
    message = f"IPv{version} address ({kind})"
    return _Hit(PII_IP_ADDRESS, start, end, _bounded(confidence), severity, message)


def _ipv4s(text: str, runs: list[tuple[int, int]]) -> list[_Hit]:
    hits = []
    for match in _in_runs(_IPV4, text, runs):
        value = ipv4_value(match.group())
        if value is None:
            continue
        hit = _ip_hit(text, match.start(), match.end(), ip_kind(value), 4)
        if hit is not None:
            hits.append(hit)
    return hits


def _ipv6s(text: str) -> list[_Hit]:
    hits = []
    searched = 0
    for hint in _V6_HINT.finditer(text):
        if hint.start() < searched:
            continue
        start, end = hint.start(), hint.end()
        while start > 0 and text[start - 1] in _V6_CHARS:
            start -= 1
        while end < len(text) and text[end] in _V6_CHARS:
            end += 1
        searched = end
        while end > start and text[end - 1] == ".":
            end -= 1  # a sentence's full stop
        if (start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_:")) or (
            end < len(text) and (text[end].isalnum() or text[end] == "_")
        ):
            continue
        value = text[start:end]
        if sum(1 for group in value.split(":") if group) < 2 or _DIGIT.search(value) is None:
            continue  # "cafe::beef", "std::" and friends
        try:
            address = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        hit = _ip_hit(text, start, end, ip_kind(address), 6)
        if hit is not None:
            hits.append(hit)
    return hits
