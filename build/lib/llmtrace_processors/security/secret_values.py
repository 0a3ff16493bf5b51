"""Does a string look like a real secret value, or like a placeholder or a reference?

Shared by the provider rules (``ghp_...``, ``sk-...``) and the generic credential
assignments (``password=...``):

- :func:`shannon_entropy` in bits per character (random base62 of length 40: ~4.9;
  English words: ~2.5-3.2; ``aaaaaaaa``: 0);
- :func:`looks_fake` for values built to be recognised: ``xxxx``, ``<your-key>``,
  ``changeme``, ``EXAMPLE``, repeated or ascending runs (``00000``, ``12345``, ``abcde``);
- :func:`is_reference` for values that *name* a secret instead of holding it:
  ``${DB_PASSWORD}``, ``os.environ["KEY"]``, ``process.env.TOKEN``, ``{{ secret }}``,
  ``get_password()``.
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["is_reference", "looks_fake", "shannon_entropy"]

_PLACEHOLDER_WORDS = (
    "example", "xxxx", "your", "placeholder", "dummy", "sample", "fake", "redacted",
    "changeme", "change_me", "change-me", "insert", "replace", "secret_here", "key_here",
    "token_here", "****", "....", "…", "todo", "fixme", "lorem", "foobar", "notreal",
    "not_real", "dontuse", "do_not_use", "invalid",
)  # fmt: skip
_PLACEHOLDER_VALUES = frozenset(
    str.split(
        "password passwd pass pwd secret token key apikey api_key null none nil undefined true "
        "false required optional string str int bool bytes any value empty default test testing "
        "admin root user username guest demo"
    )
)
_REFERENCE = re.compile(
    r"^(?:\$|%|\{\{|\{%|<|\[\[|@|&|\*)"  # ${VAR} $VAR %VAR% {{ x }} <key> [[x]] @var
    r"|^(?:process\.env|os\.environ|os\.getenv|env\(|getenv|secrets\.|vault:|ENC\[|"
    r"arn:aws:secretsmanager|projects/[^/]+/secrets)"
    r"|\(|\)$"  # a function call
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_.]*")


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    if not value:
        return 0.0
    length = len(value)
    return -sum(n / length * math.log2(n / length) for n in Counter(value).values())


def _runs(value: str, length: int) -> bool:
    """A run of ``length`` identical or consecutive ascending/descending characters."""
    same = ascending = descending = 1
    for previous, char in zip(value, value[1:], strict=False):
        step = ord(char) - ord(previous)
        same = same + 1 if step == 0 else 1
        ascending = ascending + 1 if step == 1 else 1
        descending = descending + 1 if step == -1 else 1
        if max(same, ascending, descending) >= length:
            return True
    return False


def looks_fake(value: str, *, run_length: int = 5) -> bool:
    """A placeholder, documentation value or keyboard pattern rather than a real secret."""
    lowered = value.lower()
    if lowered in _PLACEHOLDER_VALUES or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return True
    return _runs(value, run_length)


def is_reference(value: str, *, quoted: bool) -> bool:
    """``value`` names a secret kept elsewhere (a variable, env lookup, template, call)."""
    if _REFERENCE.search(value):
        return True
    if quoted or _IDENTIFIER.fullmatch(value) is None:
        return False
    # Unquoted letters-only words are variables (password = user_password, key=apiKey),
    # unless they read like random mixed case (API_KEY=UBZZePJIhlOTDXNFqXRM).
    upper = sum(1 for char in value if char.isupper()) / len(value)
    return not (len(value) >= 16 and value.isalpha() and 0.25 <= upper <= 0.75)
