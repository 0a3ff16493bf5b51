"""Secrets detector: provider formats, JWT, PEM, credential assignments, hard negatives.

Every token is assembled at run time from a prefix and seeded random characters, so no
string in this file looks like a live credential to a secret scanner.
"""

from __future__ import annotations

import base64
import binascii
import json
import random
import string

import pytest

from llmtrace_processors.security.findings import Finding, Severity, Side
from llmtrace_processors.security.secrets import (
    SECRET_ANTHROPIC_KEY,
    SECRET_AUTH_HEADER,
    SECRET_AWS_ACCESS_KEY,
    SECRET_AWS_SECRET_KEY,
    SECRET_GCP_API_KEY,
    SECRET_GCP_SERVICE_ACCOUNT,
    SECRET_GENERIC,
    SECRET_GITHUB_TOKEN,
    SECRET_JWT,
    SECRET_OPENAI_KEY,
    SECRET_PASSWORD,
    SECRET_PRIVATE_KEY,
    SECRET_SLACK_TOKEN,
    SECRET_SLACK_WEBHOOK,
    SECRET_STRIPE_KEY,
    SECRET_TYPES,
    SECRET_URL_CREDENTIAL,
    detect_secrets,
)

ALNUM = string.ascii_letters + string.digits
BASE64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def rand(length: int, alphabet: str = ALNUM, *, seed: int = 0) -> str:
    rng = random.Random(f"{seed}-{length}-{alphabet}")
    return "".join(rng.choice(alphabet) for _ in range(length))


def github_token(prefix: str = "ghp", *, valid_checksum: bool = True) -> str:
    body = rand(30, seed=1)
    number = binascii.crc32(body.encode()) + (0 if valid_checksum else 1)
    checksum = ""
    for _ in range(6):
        number, digit = divmod(number, 62)
        checksum = _BASE62[digit] + checksum
    return f"{prefix}_{body}{checksum}"


def b64url(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def jwt(header: object | None = None, signature: str | None = None) -> str:
    head = b64url(header if header is not None else {"alg": "HS256", "typ": "JWT"})
    body = b64url({"sub": "user-1", "exp": 1_900_000_000})
    return f"{head}.{body}.{rand(43, URLSAFE) if signature is None else signature}"


def pem(kind: str = "RSA PRIVATE KEY", lines: int = 12) -> str:
    body = "\n".join(rand(64, BASE64, seed=i) for i in range(lines))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def one(text: str) -> tuple[Finding, str]:
    findings = detect_secrets(text)
    assert len(findings) == 1, findings
    finding = findings[0]
    return finding, text[finding.start : finding.end]


def assert_redacted(finding: Finding, value: str) -> None:
    assert value not in finding.evidence
    assert value not in finding.message
    assert len(finding.evidence) < len(value) + 40


# --- provider formats ----------------------------------------------------------------------------

AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + "234567")

PROVIDER_CASES = [
    (AWS_ID, SECRET_AWS_ACCESS_KEY, Severity.HIGH),
    ("ASIA" + rand(16, string.ascii_uppercase + "234567"), SECRET_AWS_ACCESS_KEY, Severity.MEDIUM),
    ("AIza" + rand(35, URLSAFE), SECRET_GCP_API_KEY, Severity.HIGH),
    (github_token("ghp"), SECRET_GITHUB_TOKEN, Severity.HIGH),
    (github_token("ghs"), SECRET_GITHUB_TOKEN, Severity.HIGH),
    ("github_pat_" + rand(22) + "_" + rand(59), SECRET_GITHUB_TOKEN, Severity.HIGH),
    ("xoxb-" + rand(12, string.digits) + "-" + rand(12, string.digits) + "-" + rand(24),
     SECRET_SLACK_TOKEN, Severity.HIGH),
    ("https://hooks.slack.com/services/T" + rand(10, string.ascii_uppercase) + "/B"
     + rand(10, string.ascii_uppercase) + "/" + rand(24), SECRET_SLACK_WEBHOOK, Severity.MEDIUM),
    ("sk-proj-" + rand(80, URLSAFE), SECRET_OPENAI_KEY, Severity.HIGH),
    ("sk-" + rand(20) + "T3BlbkFJ" + rand(20), SECRET_OPENAI_KEY, Severity.HIGH),
    ("sk-ant-api03-" + rand(93, URLSAFE) + "AA", SECRET_ANTHROPIC_KEY, Severity.HIGH),
    ("sk_live_" + rand(24), SECRET_STRIPE_KEY, Severity.CRITICAL),
    ("rk_live_" + rand(24), SECRET_STRIPE_KEY, Severity.CRITICAL),
    ("sk_test_" + rand(24), SECRET_STRIPE_KEY, Severity.LOW),
    (jwt(), SECRET_JWT, Severity.MEDIUM),
    (pem(), SECRET_PRIVATE_KEY, Severity.CRITICAL),
    (pem("OPENSSH PRIVATE KEY"), SECRET_PRIVATE_KEY, Severity.CRITICAL),
    (pem("ENCRYPTED PRIVATE KEY"), SECRET_PRIVATE_KEY, Severity.HIGH),
]  # fmt: skip


@pytest.mark.parametrize("token, finding_type, severity", PROVIDER_CASES)
def test_provider_formats(token: str, finding_type: str, severity: Severity) -> None:
    text = f"here you go: {token}\nthanks"
    finding, value = one(text)
    assert (finding.finding_type, finding.severity) == (finding_type, severity)
    assert value == token  # offsets cover exactly the secret
    assert finding.detector == "secrets"
    assert finding.confidence >= 0.8
    assert_redacted(finding, token)


def test_every_type_is_declared() -> None:
    assert {case[1] for case in PROVIDER_CASES} <= set(SECRET_TYPES)
    assert list(SECRET_TYPES) == sorted(SECRET_TYPES)


def test_github_checksum_raises_confidence() -> None:
    good, _ = one(github_token())
    bad, _ = one(github_token(valid_checksum=False))
    assert good.confidence > 0.95 > bad.confidence >= 0.5


def test_aws_secret_key_by_assignment_and_next_to_key_id() -> None:
    secret = rand(40, BASE64, seed=3)
    finding, value = one(f"aws_secret_access_key = {secret}")
    assert finding.finding_type == SECRET_AWS_SECRET_KEY and value == secret
    assert finding.severity == Severity.CRITICAL
    findings = detect_secrets(f"{AWS_ID},{secret}")
    assert [f.finding_type for f in findings] == [SECRET_AWS_ACCESS_KEY, SECRET_AWS_SECRET_KEY]


def test_gcp_service_account_json() -> None:
    key_id = rand(40, "0123456789abcdef", seed=4)
    private_key = pem("PRIVATE KEY").replace("\n", "\\n")
    document = (
        json.dumps({"type": "service_account", "project_id": "demo", "private_key_id": key_id})[:-1]
        + f', "private_key": "{private_key}"}}'
    )
    findings = detect_secrets(document)
    kinds = {f.finding_type: f for f in findings}
    assert set(kinds) == {SECRET_GCP_SERVICE_ACCOUNT, SECRET_PRIVATE_KEY}
    account = kinds[SECRET_GCP_SERVICE_ACCOUNT]
    assert document[account.start : account.end] == key_id
    assert account.severity == Severity.CRITICAL
    assert_redacted(account, key_id)


def test_zero_width_characters_inside_a_token_do_not_hide_it() -> None:
    token = github_token()
    hidden = token[:10] + "\u200b" + token[10:]
    finding, value = one(f"token {hidden}")
    assert value == hidden  # the original span, zero-width space included


# --- credential assignments, headers, URLs ------------------------------------------------


@pytest.mark.parametrize(
    "text, value, finding_type",
    [
        ('password = "Tr0ub4dor&3"', "Tr0ub4dor&3", SECRET_PASSWORD),
        ("DB_PASSWORD=s3cure-Pa55", "s3cure-Pa55", SECRET_PASSWORD),
        ("PGPASSWORD=hunter2x! psql", "hunter2x!", SECRET_PASSWORD),
        ('{"dbPassword": "correct horse battery staple"}', "correct horse battery staple",
         SECRET_PASSWORD),
        (f'api_key: "{rand(32, seed=5)}"', rand(32, seed=5), SECRET_GENERIC),
        (f"CLIENT_SECRET := {rand(40, seed=6)}", rand(40, seed=6), SECRET_GENERIC),
        (f"--token={rand(24, seed=7)} --verbose", rand(24, seed=7), SECRET_GENERIC),
        (f"x-api-key: {rand(30, seed=8)}", rand(30, seed=8), SECRET_GENERIC),
        (f"Authorization: Bearer {rand(40, URLSAFE, seed=9)}", rand(40, URLSAFE, seed=9),
         SECRET_AUTH_HEADER),
        ("Authorization: Basic " + base64.b64encode(b"admin:" + rand(14).encode()).decode(),
         base64.b64encode(b"admin:" + rand(14).encode()).decode(), SECRET_AUTH_HEADER),
        (f"postgres://app:{rand(16, seed=10)}@db.internal:5432/app", rand(16, seed=10),
         SECRET_URL_CREDENTIAL),
    ],
)  # fmt: skip
def test_credentials(text: str, value: str, finding_type: str) -> None:
    finding, found = one(text)
    assert finding.finding_type == finding_type
    assert found == value
    assert_redacted(finding, value)


def test_password_evidence_shows_no_characters() -> None:
    finding, _ = one("password: Zebra-Horse-42")
    assert finding.evidence == "password:…[14 chars]"


@pytest.mark.parametrize(
    "text",
    [
        "DB_PASSWORD=changeme",
        "password: ${DB_PASSWORD}",
        'api_key: "<your-key>"',
        "api_key = os.environ['API_KEY']",
        "token = process.env.TOKEN",
        "password = get_password()",
        "password=password",
        "password = user_password",
        "The password: must be at least 8 characters",
        "Password: Required",
        '"max_tokens": 1024, "prompt_tokens": 12345, "token_type": "bearer"',
        "secretary: Jane Doe",
        "bypass: enabled-for-admins-2024",
        "secret_name: prod-db-credentials-2024",
        "token_url: https://auth.example.com/oauth2/token",
        "api_key: xxxxxxxxxxxxxxxxxxxxxxxx",
        "api_key = 'sk-1234567890abcdef1234567890abcdef'",
        "postgres://user:password@localhost/db",
        "postgres://user:${PGPASS}@localhost/db",
        "Authorization: Bearer $TOKEN",
        "The key insight: attention weighs tokens",
    ],
)
def test_credential_hard_negatives(text: str) -> None:
    assert detect_secrets(text) == []


# --- formats that are not secrets ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "AKIAIOSFODNN7EXAMPLE",  # the AWS documentation key
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "sk-" + "x" * 48,
        "ghp_" + "x" * 36,
        "ghp_" + "0123456789" * 3 + "abcdef",
        "sk_live_" + "0" * 24,
        "pk_live_" + rand(24),  # publishable, not secret
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        "-----BEGIN PUBLIC KEY-----\n" + rand(64, BASE64) + "\n-----END PUBLIC KEY-----",
        "commit 3f2a9c1b7e5d4a6f8e9d0c1b2a3f4e5d6c7b8a9f",
        "request id 123e4567-e89b-12d3-a456-426614174000",
        "sha256:" + rand(64, "0123456789abcdef"),
        "eyJub3QiOiJhIGp3dCJ9.eyJ4IjoxfQ.c2ln",  # header has no alg
        "risk-based desk-top task-runner",
        "",
    ],
)
def test_secret_hard_negatives(text: str) -> None:
    assert detect_secrets(text) == []


def test_unsigned_jwt_is_low() -> None:
    token = jwt({"alg": "none"}, signature="")
    finding, value = one(f"token {token} end")
    assert value == token and finding.severity == Severity.LOW


def test_a_token_whose_header_is_nested_too_deep_hides_nothing_else() -> None:
    # A JWT-shaped token whose header decodes to JSON thousands of levels deep: json.loads
    # raises RecursionError, which once escaped the detector and lost every other finding
    # in the text (a way to smuggle a key past the scan).
    header = base64.urlsafe_b64encode(b'{"a":' + b"[" * 30_000).decode().rstrip("=")
    token = f"{header}.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    found = detect_secrets(f"token {token} and the deploy key {AWS_ID}")
    assert SECRET_AWS_ACCESS_KEY in {finding.finding_type for finding in found}


def test_specific_rule_wins_over_generic_assignment() -> None:
    key = "sk-proj-" + rand(60, URLSAFE)
    finding, value = one(f"OPENAI_API_KEY={key}")
    assert finding.finding_type == SECRET_OPENAI_KEY and value == key


def test_side_and_threshold() -> None:
    token = github_token(valid_checksum=False)
    findings = detect_secrets(token, side=Side.OUTPUT)
    assert [f.side for f in findings] == [Side.OUTPUT]
    assert detect_secrets(token, min_confidence=0.99) == []


def test_several_secrets_in_one_text_are_ordered_by_offset() -> None:
    text = f"first {jwt()} then {AWS_ID} and password='Qx7!pLm2#'"
    kinds = [f.finding_type for f in detect_secrets(text)]
    assert kinds == [SECRET_JWT, SECRET_AWS_ACCESS_KEY, SECRET_PASSWORD]


def test_random_tokens_are_not_mistaken_for_placeholders() -> None:
    """The entropy and keyboard-run filters must pass (nearly) every random token."""
    makers = {
        SECRET_AWS_ACCESS_KEY: lambda s: "AKIA"
        + rand(16, string.ascii_uppercase + "234567", seed=s),
        SECRET_OPENAI_KEY: lambda s: "sk-proj-" + rand(64, URLSAFE, seed=s),
        SECRET_SLACK_TOKEN: lambda s: f"xoxb-{rand(11, string.digits, seed=s)}-"
        f"{rand(12, string.digits, seed=s + 1)}-{rand(24, seed=s)}",
        SECRET_GENERIC: lambda s: f"api_key={rand(20, seed=s)}",
    }  # fmt: skip
    for finding_type, make in makers.items():
        missed = [make(s) for s in range(300) if not detect_secrets(make(s))]
        assert len(missed) <= 3, (finding_type, missed[:3])
