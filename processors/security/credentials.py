"""Credentials without a recognisable format: assignments, auth headers, URL user:password.

Provider keys have prefixes (``ghp_``, ``AKIA``); most passwords and many API keys do not.
They are found by *where* they stand:

- ``password = "..."``, ``DB_PASSWORD=...``, ``"api_key": "..."``, ``client_secret: ...``,
  ``--token=...`` (a credential key, then ``=``, ``:``, ``:=`` or ``=>``, then a value);
- ``Authorization: Bearer <token>`` / ``Basic <base64 user:pass>``;
- ``scheme://user:password@host`` (database URLs, proxies).

A value is reported only if it could be a secret: not a placeholder (``xxx``,
``<your-key>``, ``changeme``), not a reference (``${VAR}``, ``os.environ[...]``, a
variable name, a call), and random enough: for keys and tokens Shannon entropy >= 3.0
bits/char, 12+ characters, letters and digits (or mixed case at >= 3.5 bits); for
passwords (human-chosen) 6+ characters, entropy >= 2.0, and a digit, a symbol or an
inner capital (or 12+ characters).
Key names that hold no secret (``max_tokens``, ``token_url``, ``secret_name``,
``password_policy``, ``secretary``, ``bypass``) are skipped.

Offsets are those of the value itself, so a redactor removes just the secret.
"""

from __future__ import annotations

import base64
import binascii
import re

from llmtrace_processors.security.evidence import mask_secret
from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.secret_values import is_reference, looks_fake, shannon_entropy

__all__ = [
    "SECRET_AUTH_HEADER",
    "SECRET_GENERIC",
    "SECRET_PASSWORD",
    "SECRET_URL_CREDENTIAL",
    "find_credentials",
]

SECRET_PASSWORD = "secret.password"
SECRET_GENERIC = "secret.generic_credential"
SECRET_AUTH_HEADER = "secret.auth_header"
SECRET_URL_CREDENTIAL = "secret.url_credential"

_KEYWORD = (
    r"pass(?:word|wd|phrase|code)?|pwd|secret|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|"
    r"private[_-]?key|signing[_-]?key|encryption[_-]?key|token|credentials?|creds"
)
_KEY_NAME = re.compile(rf"(?i){_KEYWORD}")
# What follows a credential key: an operator, then a quoted or a bare value.
_ASSIGNED_VALUE = re.compile(
    r"[\"']?[ \t]{0,3}(?P<op>:=|=>|=|:)[ \t]{0,3}"
    r"(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\n]{1,256})(?P=q)|(?P<bare>[^\s\"'`,;<>]{1,256}))"
)
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?P<scheme>bearer|basic|token|apikey)[ \t]+(?P<value>[A-Za-z0-9._~+/=-]{12,})"
)
_URL_CREDENTIAL = re.compile(
    r"\b(?P<scheme>[a-z][a-z0-9+.-]{1,20})://(?P<user>[^\s:/@\"'<>]{1,64}):"
    r"(?P<password>[^\s/@\"'<>]{1,128})@(?P<host>[A-Za-z0-9.-]+)"
)
_NOT_SECRET_KEY = re.compile(
    r"name|file|path|url|uri|endpoint|type|count|limit|max|min|size|length|len\b|page|next|"
    r"expir|ttl|timeout|header|field|prompt|usage|budget|rotation|policy|hint|reset|forgot|"
    r"strength|label|format|prefix|id$|_ids?\b|version|mode|enabled|required|tokens$"
)
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_PASSWORD_CLASS = re.compile(r"[0-9]|[^A-Za-z0-9]|.[A-Z]")
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")
_KEY_HINTS = ("pass", "pwd", "secret", "key", "token", "cred")


def find_credentials(text: str, *, side: str = Side.INPUT, detector: str) -> list[Finding]:
    """Credential findings in ``text`` (offsets into ``text``), possibly overlapping."""
    lowered = text.lower()
    findings: list[Finding] = []
    if "authorization" in lowered:
        findings.extend(_auth_headers(text, side, detector))
    if "://" in text:
        findings.extend(_url_credentials(text, side, detector))
    keys = _credential_keys(text, lowered)
    if keys:
        findings.extend(_assignments(text, keys, side, detector))
    return findings


def _credential_keys(text: str, lowered: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each key name holding a credential keyword, e.g. ``DB_PASSWORD``."""
    keys: set[tuple[int, int]] = set()
    for hint in _KEY_HINTS:
        at = lowered.find(hint)
        while at >= 0:
            start, end = at, at + len(hint)
            while start and text[start - 1] in _KEY_CHARS:
                start -= 1
            while end < len(text) and text[end] in _KEY_CHARS:
                end += 1
            keys.add((start, end))
            at = lowered.find(hint, end)
    return sorted(keys)


def _keyword_in(key: str) -> str | None:
    """The credential keyword standing as a word of ``key`` (snake, kebab, camel, UPPER)."""
    for match in _KEY_NAME.finditer(key):
        start, end = match.span()
        word = match.group()
        before = key[start - 1] if start else ""
        after = key[end] if end < len(key) else ""
        if before.isalpha() and not (
            (before.islower() and word[0].isupper()) or (before.isupper() and word.isupper())
        ):
            continue  # bypass, compass (dbPassword and PGPASSWORD are keys)
        if after.isalpha() and (after.islower() or word[-1].isupper()):
            continue  # secretary, tokenizer, PASSPORT (passwordHash is a key)
        return word
    return None


def _assignments(text: str, keys: list[tuple[int, int]], side: str, detector: str) -> list[Finding]:
    findings = []
    for key_start, key_end in keys:
        match = _ASSIGNED_VALUE.match(text, key_end)
        if match is None:
            continue
        key = text[key_start:key_end]
        keyword = _keyword_in(key)
        if keyword is None or _NOT_SECRET_KEY.search(key.lower()):
            continue
        quoted = match.group("q") is not None
        group = "quoted" if quoted else "bare"
        value = match.group(group)
        start, end = match.span(group)
        if not quoted:
            trimmed = value.rstrip(".)]}")  # sentence punctuation; "!" and "?" stay
            end -= len(value) - len(trimmed)
            value = trimmed
        is_password = keyword.lower().startswith(("pass", "pwd"))
        confidence = _password_confidence(value) if is_password else _key_confidence(value)
        if confidence is None or is_reference(value, quoted=quoted):
            continue
        if quoted:
            confidence += 0.1
        kind = SECRET_PASSWORD if is_password else SECRET_GENERIC
        masked = mask_secret(value, shown=0 if is_password else 2)
        findings.append(
            Finding(
                finding_type=kind,
                severity=Severity.HIGH if is_password else Severity.MEDIUM,
                confidence=round(min(confidence, 0.85), 3),
                detector=detector,
                side=side,
                start=start,
                end=end,
                evidence=f"{key}{match.group('op')}{masked}",
                message=f"{'password' if is_password else 'credential'} assigned to {key!r}",
            )
        )
    return findings


def _password_confidence(value: str) -> float | None:
    if len(value) < 6 or looks_fake(value, run_length=6) or shannon_entropy(value) < 2.0:
        return None
    if " " in value and (len(value) > 64 or value.count(" ") > 5):
        return None  # prose, not a passphrase
    if _PASSWORD_CLASS.search(value) is None and len(value) < 12:
        return None  # "Required", "optional": a word
    return 0.7


def _key_confidence(value: str) -> float | None:
    if len(value) < 12 or " " in value or "://" in value or value.startswith(("/", "./", "~/")):
        return None
    if _LETTER.search(value) is None or looks_fake(value):
        return None
    entropy = shannon_entropy(value)
    mixed_case = value.lower() != value != value.upper()
    if entropy < 3.0 or (_DIGIT.search(value) is None and not (mixed_case and entropy >= 3.5)):
        return None
    return 0.55 + (0.1 if entropy >= 3.8 else 0.0) + (0.05 if len(value) >= 24 else 0.0)


def _auth_headers(text: str, side: str, detector: str) -> list[Finding]:
    findings = []
    for match in _AUTH_HEADER.finditer(text):
        scheme, value = match.group("scheme").lower(), match.group("value")
        if looks_fake(value) or shannon_entropy(value) < 3.0:
            continue
        confidence = 0.8
        if scheme == "basic":
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                continue
            if ":" not in decoded:
                continue
            confidence = 0.85
        findings.append(
            Finding(
                finding_type=SECRET_AUTH_HEADER,
                severity=Severity.HIGH,
                confidence=confidence,
                detector=detector,
                side=side,
                start=match.start("value"),
                end=match.end("value"),
                evidence=f"Authorization: {match.group('scheme')} {mask_secret(value)}",
                message=f"{scheme} credential in an Authorization header",
            )
        )
    return findings


def _url_credentials(text: str, side: str, detector: str) -> list[Finding]:
    findings = []
    at = text.find("://")
    while at >= 0:
        start = at
        while start and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
            start -= 1
        match = _URL_CREDENTIAL.match(text, start)
        at = text.find("://", at + 3)
        if match is None:
            continue
        password = match.group("password")
        if (
            len(password) < 3
            or looks_fake(password, run_length=6)
            or is_reference(password, quoted=True)
        ):
            continue
        findings.append(
            Finding(
                finding_type=SECRET_URL_CREDENTIAL,
                severity=Severity.HIGH,
                confidence=0.85,
                detector=detector,
                side=side,
                start=match.start("password"),
                end=match.end("password"),
                evidence=f"{match.group('scheme')}://***:{mask_secret(password, shown=0)}@"
                f"{match.group('host')}",
                message="password in a URL",
            )
        )
    return findings
