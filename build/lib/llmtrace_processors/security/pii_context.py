"""Words around a PII candidate that raise or lower its confidence.

"Here's my SSN: 123-45-6789" is an SSN; "license number 123456789" is not; "call me at
785 8949" is a phone number, "see page 785 8949" is not. :func:`context_of` collects the
words of the candidate's line (up to 48 characters before, 24 after; when the value starts
a line, the end of the previous line, where a label such as ``Phone:`` sits), within its
field of structured text (``"phone": "555-0100", "employee_id": ...`` stops at the
``",``; the text after a value stops at the first ``,;{}"|``), and each
:class:`Vocabulary` tells whether any of its words, phrases or prefixes is among them.
Looking words up in a set keeps this cheap enough to run for every candidate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CARD",
    "IBAN",
    "IP",
    "NOT_CARD",
    "NOT_IP",
    "NOT_PHONE",
    "NOT_SSN",
    "PHONE",
    "SSN",
    "STREET",
    "Context",
    "Vocabulary",
    "context_of",
]

_WORD = re.compile(r"[^\W\d_]+|[#§]")
_LETTER = re.compile(r"[^\W\d_]|[#§]")
_BEFORE = 48
_AFTER = 24
# Where a field of structured text (JSON, CSV-ish, tables) ends: "...", "{", "|" ...
_FIELD_BEFORE = ("{", "}", ";", "|", "\t", '",', ',"')
_FIELD_AFTER = re.compile(r"[\n,;{}\"|\t]")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """Words (lower case), phrases (all of their words present) and word prefixes."""

    words: frozenset[str]
    phrases: tuple[tuple[str, ...], ...] = ()
    prefixes: tuple[str, ...] = ()

    def matches(self, words: frozenset[str]) -> bool:
        if not words.isdisjoint(self.words):
            return True
        if any(all(word in words for word in phrase) for phrase in self.phrases):
            return True
        return bool(self.prefixes) and any(word.startswith(self.prefixes) for word in words)


def _vocabulary(
    words: str, phrases: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()
) -> Vocabulary:
    return Vocabulary(frozenset(words.split()), tuple(tuple(p.split()) for p in phrases), prefixes)


PHONE = _vocabulary(
    "phone phones telephone tel mobile cell cellphone fax call calling called reach dial "
    "contact whatsapp sms text hotline office landline ext answering mob ph tlf handy "
    "telefon telefono teléfono téléphone tél telefoon móvil movil celular cellulare "
    "portable rufnummer number",
    prefixes=("telef", "teleph", "phone"),
)
NOT_PHONE = _vocabulary(
    "order invoice account acct isbn serial tracking ref reference ticket zip postal "
    "postcode amount total price balance page version case id sku imei iban ssn card credit "
    "debit license licence passport driver routing social security member employee"
)
#: House numbers and postcodes: a street word right after the number.
STREET = _vocabulary(
    "street st road rd lane ln avenue ave boulevard blvd drive dr court ct parkway pkwy "
    "place pl square sq highway hwy way suite apt floor strasse straße weg rue via calle "
    "avenida"
)
CARD = _vocabulary(
    "card cards credit debit cc visa mastercard amex discover payment pay charge charged "
    "cvv cvc pan kreditkarte carte tarjeta",
    phrases=("american express",),
    prefixes=("expir",),
)
NOT_CARD = _vocabulary("order tracking imei isbn invoice serial phone")
SSN = _vocabulary("ssn ssns taxpayer itin tin", phrases=("social security", "ss #", "social sec"))
NOT_SSN = _vocabulary(
    "license licence driver dl passport phone routing order zip invoice tracking account "
    "acct member employee serial isbn"
)
IBAN = _vocabulary("iban bank account transfer wire sepa bic swift konto rib")
IP = _vocabulary(
    "ip ipv ipv4 ipv6 address addr host server client from ping firewall blocked gateway "
    "dns subnet router",
    prefixes=("connect",),
)
NOT_IP = _vocabulary("version ver v release build firmware section chapter step rule oid sdk api §")


@dataclass(frozen=True, slots=True)
class Context:
    """Lower-cased words near a candidate; ``after`` keeps the order of those after it."""

    words: frozenset[str]
    after: tuple[str, ...]

    def near(self, vocabulary: Vocabulary) -> bool:
        return vocabulary.matches(self.words)

    def followed_by(self, vocabulary: Vocabulary, within: int = 2) -> bool:
        return any(word in vocabulary.words for word in self.after[:within])


_NO_CONTEXT = Context(frozenset(), ())


def context_of(text: str, start: int, end: int) -> Context:
    """The words on the candidate's line around ``text[start:end]``."""
    before = text[max(0, start - _BEFORE) : start]
    cut = before.rfind("\n")
    if cut >= 0:
        line = before[cut + 1 :]
        # When the value starts a line, its label may end the previous one.
        before = line if line.strip() else before[before.rfind("\n", 0, cut) + 1 : cut]
    # Structured text: the previous or next field is not this value's context.
    before = before[max(before.rfind(mark) for mark in _FIELD_BEFORE) + 1 :]
    after_text = text[end : end + _AFTER]
    field_end = _FIELD_AFTER.search(after_text)
    if field_end is not None:
        after_text = after_text[: field_end.start()]
    if _LETTER.search(before) is None and _LETTER.search(after_text) is None:
        return _NO_CONTEXT  # tables and number lists: nothing to look up
    after = tuple(_WORD.findall(after_text.lower()))
    return Context(frozenset(_WORD.findall(before.lower())).union(after), after)
