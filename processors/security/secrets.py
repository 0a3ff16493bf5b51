"""Secrets in text: cloud and API keys, tokens, private keys, credential assignments.

:func:`detect_secrets` is a pure function over text. Every provider rule has a literal
anchor (``AKIA``, ``ghp_``, ``sk-``, ``eyJ``, ``PRIVATE KEY`` ...) checked with ``in``
before its pattern runs, so text without one costs a few substring scans. A match must
then pass the rule's validation: the random part is not a placeholder or a keyboard run
(:mod:`processors.security.secret_values`), GitHub tokens are checked against their
CRC32, a JWT header must decode to JSON with ``alg``, a PEM block must hold a key body.
Credentials without a format (``password=``, ``api_key: "..."``, ``Authorization:``,
``user:pass@host``) come from :mod:`processors.security.credentials`.

Offsets index the text as given (zero-width characters inside a token are skipped for
matching); evidence keeps a non-secret prefix, two characters and the length.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from llmtrace_processors.json_text import loads
from llmtrace_processors.security._textview import text_view
from llmtrace_processors.security.credentials import (
    SECRET_AUTH_HEADER,
    SECRET_GENERIC,
    SECRET_PASSWORD,
    SECRET_URL_CREDENTIAL,
    find_credentials,
)
from llmtrace_processors.security.evidence import mask_secret
from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.overlaps import keep_strongest
from llmtrace_processors.security.secret_values import looks_fake, shannon_entropy

__all__ = [
    "DETECTOR",
    "MIN_CONFIDENCE",
    "SECRET_ANTHROPIC_KEY",
    "SECRET_AUTH_HEADER",
    "SECRET_AWS_ACCESS_KEY",
    "SECRET_AWS_SECRET_KEY",
    "SECRET_GCP_API_KEY",
    "SECRET_GCP_SERVICE_ACCOUNT",
    "SECRET_GENERIC",
    "SECRET_GITHUB_TOKEN",
    "SECRET_JWT",
    "SECRET_OPENAI_KEY",
    "SECRET_PASSWORD",
    "SECRET_PRIVATE_KEY",
    "SECRET_SLACK_TOKEN",
    "SECRET_SLACK_WEBHOOK",
    "SECRET_STRIPE_KEY",
    "SECRET_TYPES",
    "SECRET_URL_CREDENTIAL",
    "detect_secrets",
]

DETECTOR = "secrets"
MIN_CONFIDENCE = 0.5

SECRET_AWS_ACCESS_KEY = "secret.aws_access_key"
SECRET_AWS_SECRET_KEY = "secret.aws_secret_key"
SECRET_GCP_SERVICE_ACCOUNT = "secret.gcp_service_account"
SECRET_GCP_API_KEY = "secret.gcp_api_key"
SECRET_GITHUB_TOKEN = "secret.github_token"
SECRET_SLACK_TOKEN = "secret.slack_token"
SECRET_SLACK_WEBHOOK = "secret.slack_webhook"
SECRET_OPENAI_KEY = "secret.openai_key"
SECRET_ANTHROPIC_KEY = "secret.anthropic_key"
SECRET_STRIPE_KEY = "secret.stripe_key"
SECRET_JWT = "secret.jwt"
SECRET_PRIVATE_KEY = "secret.private_key"
SECRET_TYPES: tuple[str, ...] = tuple(
    sorted(
        {
            SECRET_AWS_ACCESS_KEY,
            SECRET_AWS_SECRET_KEY,
            SECRET_GCP_SERVICE_ACCOUNT,
            SECRET_GCP_API_KEY,
            SECRET_GITHUB_TOKEN,
            SECRET_SLACK_TOKEN,
            SECRET_SLACK_WEBHOOK,
            SECRET_OPENAI_KEY,
            SECRET_ANTHROPIC_KEY,
            SECRET_STRIPE_KEY,
            SECRET_JWT,
            SECRET_PRIVATE_KEY,
            SECRET_PASSWORD,
            SECRET_GENERIC,
            SECRET_AUTH_HEADER,
            SECRET_URL_CREDENTIAL,
        }  # fmt: skip
    )
)

_BEFORE = r"(?<![A-Za-z0-9_-])"
_AFTER = r"(?![A-Za-z0-9_-])"


@dataclass(frozen=True, slots=True)
class _Rule:
    """A token with a recognisable format. ``random_from``: where its random part starts."""

    finding_type: str
    anchors: tuple[str, ...]
    pattern: re.Pattern[str]
    severity: Severity
    confidence: float
    message: str
    prefix_length: int
    #: Adjusts (confidence, severity) for a match, or rejects it with None.
    check: Callable[[str, float, Severity], tuple[float, Severity] | None] | None = None


def _github_check(value: str, confidence: float, severity: Severity) -> tuple[float, Severity]:
    # Classic tokens end in 6 base62 characters of the CRC32 of the 30 before them.
    body, checksum = value[4:-6], value[-6:]
    number = 0
    for char in checksum:
        number = number * 62 + _BASE62.index(char)
    if number == binascii.crc32(body.encode("ascii")):
        return 0.99, severity
    return confidence, severity


def _stripe_check(value: str, confidence: float, severity: Severity) -> tuple[float, Severity]:
    return (confidence, severity) if "_live_" in value else (confidence, Severity.LOW)


def _aws_id_check(value: str, confidence: float, severity: Severity) -> tuple[float, Severity]:
    base32 = all(char in _BASE32 for char in value[4:])
    temporary = value.startswith("ASIA")
    return (confidence if base32 else 0.7), (Severity.MEDIUM if temporary else severity)


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")

_RULES: tuple[_Rule, ...] = (
    _Rule(SECRET_AWS_ACCESS_KEY, ("AKIA", "ASIA", "ABIA", "ACCA"),
          re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
          Severity.HIGH, 0.9, "AWS access key id", 4, _aws_id_check),
    _Rule(SECRET_GCP_API_KEY, ("AIza",), re.compile(_BEFORE + r"AIza[0-9A-Za-z_-]{35}" + _AFTER),
          Severity.HIGH, 0.9, "Google API key", 4),
    _Rule(SECRET_GITHUB_TOKEN, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
          re.compile(_BEFORE + r"gh[pousr]_[A-Za-z0-9]{36}" + _AFTER),
          Severity.HIGH, 0.8, "GitHub token", 4, _github_check),
    _Rule(SECRET_GITHUB_TOKEN, ("github_pat_",),
          re.compile(_BEFORE + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + _AFTER),
          Severity.HIGH, 0.97, "GitHub fine-grained token", 11),
    _Rule(SECRET_SLACK_TOKEN, ("xox",),
          re.compile(_BEFORE + r"xox(?:[abposr]|e(?:\.xox[bp])?)-[0-9]{1,13}-[0-9A-Za-z-]{10,}"
                     + _AFTER), Severity.HIGH, 0.95, "Slack token", 5),
    _Rule(SECRET_SLACK_TOKEN, ("xapp-",),
          re.compile(_BEFORE + r"xapp-[0-9]-[A-Z0-9]{8,}-[0-9]{8,}-[a-z0-9]{32,}" + _AFTER),
          Severity.HIGH, 0.95, "Slack app token", 5),
    _Rule(SECRET_SLACK_WEBHOOK, ("https://hooks.slack.com/",),
          re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
                     r"[A-Za-z0-9_-]{6,}/[A-Za-z0-9_-]{6,}/[A-Za-z0-9_-]{16,}"),
          Severity.MEDIUM, 0.95, "Slack incoming webhook", 32),
    _Rule(SECRET_ANTHROPIC_KEY, ("sk-ant-",),
          re.compile(_BEFORE + r"sk-ant-(?:api|admin|sid|oat|ort)[0-9]{2}-[A-Za-z0-9_-]{80,}"
                     + _AFTER), Severity.HIGH, 0.99, "Anthropic API key", 13),
    _Rule(SECRET_ANTHROPIC_KEY, ("sk-ant-",),
          re.compile(_BEFORE + r"sk-ant-[A-Za-z0-9_-]{32,}" + _AFTER),
          Severity.HIGH, 0.85, "Anthropic-style key", 7),
    _Rule(SECRET_OPENAI_KEY, ("sk-proj-", "sk-svcacct-", "sk-admin-"),
          re.compile(_BEFORE + r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}" + _AFTER),
          Severity.HIGH, 0.97, "OpenAI API key", 8),
    _Rule(SECRET_OPENAI_KEY, ("sk-",),
          re.compile(_BEFORE + r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}" + _AFTER),
          Severity.HIGH, 0.99, "OpenAI API key (legacy)", 3),
    _Rule(SECRET_OPENAI_KEY, ("sk-",),
          re.compile(_BEFORE + r"sk-[A-Za-z0-9]{32,64}" + _AFTER),
          Severity.HIGH, 0.7, "sk- style API key (OpenAI-compatible)", 3),
    _Rule(SECRET_STRIPE_KEY, ("sk_live_", "rk_live_", "sk_test_", "rk_test_"),
          re.compile(_BEFORE + r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,247}" + _AFTER),
          Severity.CRITICAL, 0.95, "Stripe secret key", 8, _stripe_check),
    _Rule(SECRET_STRIPE_KEY, ("whsec_",),
          re.compile(_BEFORE + r"whsec_[A-Za-z0-9+/=]{32,}" + _AFTER),
          Severity.HIGH, 0.9, "Stripe webhook signing secret", 6),
)  # fmt: skip

_JWT = re.compile(_BEFORE + r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*" + _AFTER)
_PEM_BEGIN = re.compile(
    r"-----BEGIN (?P<kind>(?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----"
)
_BASE64_CHAR = re.compile(r"[A-Za-z0-9+/=]")
_AWS_SECRET_ASSIGNED = re.compile(
    r"(?i)aws[a-z_.-]{0,20}?secret[a-z_.-]{0,20}[\"']?[ \t]*(?::=|=>|=|:)[ \t]*[\"']?"
    r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
)
_AWS_SECRET_NEARBY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_GCP_TYPE = re.compile(r"\"type\"\s*:\s*\"service_account\"")
_GCP_KEY_ID = re.compile(r"\"private_key_id\"\s*:\s*\"(?P<secret>[0-9a-f]{40})\"")


def detect_secrets(
    text: str, *, side: str = Side.INPUT, min_confidence: float = MIN_CONFIDENCE
) -> list[Finding]:
    """Secret findings in ``text`` with confidence >= ``min_confidence``, by offset."""
    if not text:
        return []
    view = text_view(text)
    scan = view.text
    found: list[Finding] = []
    for rule in _RULES:
        found.extend(_apply(rule, scan, side))
    if "eyJ" in scan:
        found.extend(_jwts(scan, side))
    if "PRIVATE KEY" in scan:
        found.extend(_pem_keys(scan, side))
    if "service_account" in scan or "private_key_id" in scan:
        found.extend(_gcp_service_accounts(scan, side))
    found.extend(_aws_secret_keys(scan, side, found))
    found.extend(find_credentials(scan, side=side, detector=DETECTOR))
    results = []
    for finding in keep_strongest(f for f in found if f.confidence >= min_confidence):
        start, end = view.span(finding.start, finding.end)
        results.append(replace(finding, start=start, end=end))
    return results


def _finding(
    finding_type: str,
    severity: Severity,
    confidence: float,
    side: str,
    span: tuple[int, int],
    evidence: str,
    message: str,
) -> Finding:
    return Finding(
        finding_type=finding_type,
        severity=severity,
        confidence=round(confidence, 3),
        detector=DETECTOR,
        side=side,
        start=span[0],
        end=span[1],
        evidence=evidence,
        message=message,
    )


def _plausible(random_part: str) -> bool:
    """Random enough: 16 random base32 characters average ~3.5 bits, 40 base62 ~4.9."""
    threshold = 3.0 if len(random_part) >= 24 else 2.5
    return not looks_fake(random_part) and shannon_entropy(random_part) >= threshold


def _anchored(pattern: re.Pattern[str], text: str, anchors: tuple[str, ...]) -> list[re.Match[str]]:
    """Matches of ``pattern`` starting where one of ``anchors`` occurs (``str.find`` speed)."""
    matches = []
    for anchor in anchors:
        at = text.find(anchor)
        while at >= 0:
            match = pattern.match(text, at)
            if match is not None:
                matches.append(match)
            at = text.find(anchor, at + 1)
    return matches


def _apply(rule: _Rule, text: str, side: str) -> list[Finding]:
    findings = []
    for match in _anchored(rule.pattern, text, rule.anchors):
        value = match.group()
        if not _plausible(value[rule.prefix_length :]):
            continue
        confidence, severity = rule.confidence, rule.severity
        if rule.check is not None:
            checked = rule.check(value, confidence, severity)
            if checked is None:
                continue
            confidence, severity = checked
        evidence = mask_secret(value, value[: rule.prefix_length])
        findings.append(
            _finding(
                rule.finding_type, severity, confidence, side, match.span(), evidence, rule.message
            )
        )
    return findings


def _b64url_json(part: str) -> object:
    padded = part + "=" * (-len(part) % 4)
    try:
        return loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None


def _jwts(text: str, side: str) -> list[Finding]:
    findings = []
    for match in _anchored(_JWT, text, ("eyJ",)):
        header_part, payload_part, signature = match.group().split(".")
        header = _b64url_json(header_part)
        if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
            continue
        if not isinstance(_b64url_json(payload_part), dict):
            continue
        algorithm = header["alg"]
        unsigned = algorithm.lower() == "none" or len(signature) < 16
        severity = Severity.LOW if unsigned else Severity.MEDIUM
        confidence = 0.6 if unsigned else 0.9
        evidence = f"{header_part[:12]}…[{len(match.group())} chars]"
        message = f"JSON Web Token (alg {algorithm[:16]})"
        findings.append(
            _finding(SECRET_JWT, severity, confidence, side, match.span(), evidence, message)
        )
    return findings


def _pem_keys(text: str, side: str) -> list[Finding]:
    findings = []
    for match in _anchored(_PEM_BEGIN, text, ("-----BEGIN ",)):
        kind = match.group("kind")
        end_marker = f"-----END {kind}-----"
        # A key's body never holds "-----": it ends at the next marker, which is the END
        # line or (truncated key) whatever comes next. Looking no further keeps the cost
        # per BEGIN line bounded by its own body, however many BEGIN lines a text repeats.
        next_marker = text.find("-----", match.end(), match.end() + 65536)
        if next_marker >= 0 and text.startswith(end_marker, next_marker):
            body, confidence = text[match.end() : next_marker], 0.97
            end = next_marker + len(end_marker)
        else:
            limit = next_marker if 0 <= next_marker < match.end() + 8192 else match.end() + 8192
            body = text[match.end() : limit]
            end, confidence = match.end() + len(body.rstrip()), 0.85
        compact = body.replace("\n", "")
        if len(_BASE64_CHAR.findall(body)) < 64 or looks_fake(compact, run_length=40):
            continue
        encrypted = "ENCRYPTED" in kind or "Proc-Type: 4,ENCRYPTED" in body[:200]
        severity = Severity.HIGH if encrypted else Severity.CRITICAL
        evidence = f"-----BEGIN {kind}----- …[{end - match.start()} chars]"
        message = f"{'encrypted ' if encrypted else ''}{kind.lower()}"
        findings.append(
            _finding(
                SECRET_PRIVATE_KEY,
                severity,
                confidence,
                side,
                (match.start(), end),
                evidence,
                message,
            )
        )
    return findings


def _gcp_service_accounts(text: str, side: str) -> list[Finding]:
    findings = []
    typed = _GCP_TYPE.search(text) is not None
    has_key = '"private_key"' in text and "PRIVATE KEY" in text
    for match in _GCP_KEY_ID.finditer(text):
        value = match.group("secret")
        if not _plausible(value):
            continue
        confidence = 0.95 if typed else 0.75
        severity = Severity.CRITICAL if typed and has_key else Severity.HIGH
        message = "GCP service account key" + (" with private key" if has_key else "")
        evidence = f"private_key_id {mask_secret(value)}"
        findings.append(
            _finding(
                SECRET_GCP_SERVICE_ACCOUNT,
                severity,
                confidence,
                side,
                match.span("secret"),
                evidence,
                message,
            )
        )
    return findings


def _aws_secret_keys(text: str, side: str, found: list[Finding]) -> list[Finding]:
    """40-character secret keys: assigned to an ``aws..secret`` key, or next to a key id."""
    candidates: list[tuple[int, int, float]] = []
    lowered = text.lower()
    if "secret" in lowered:
        at = lowered.find("aws")
        while at >= 0:
            match = _AWS_SECRET_ASSIGNED.match(text, at)
            if match is not None:
                candidates.append((match.start("secret"), match.end("secret"), 0.9))
            at = lowered.find("aws", at + 3)
    for key_id in found:
        if key_id.finding_type == SECRET_AWS_ACCESS_KEY:
            window = _AWS_SECRET_NEARBY.finditer(text, key_id.end, min(len(text), key_id.end + 200))
            candidates.extend((m.start(), m.end(), 0.8) for m in window)
    findings = []
    for start, end, confidence in candidates:
        value = text[start:end]
        if (
            looks_fake(value)
            or shannon_entropy(value) < 4.0
            or value.isalnum()
            and (value.islower() or value.isupper())
        ):
            continue
        findings.append(
            _finding(
                SECRET_AWS_SECRET_KEY,
                Severity.CRITICAL,
                confidence,
                side,
                (start, end),
                mask_secret(value),
                "AWS secret access key",
            )
        )
    return findings
