"""Validation rules behind the PII detector: checksums, issuer ranges, number structure.

Each rule takes the characters a candidate pattern matched and says whether (or how
strongly) they are what they look like. Nothing here scans text; :mod:`pii` does that.

- Payment cards: Luhn checksum and a known issuer (IIN) range whose lengths include the
  candidate's length (:func:`card_brand`).
- US SSN: area not 000, 666 or 900-999; group not 00; serial not 0000; numbers the SSA
  voided after publication (078-05-1120, 219-09-9999, 457-55-5462) rejected.
- IBAN: a registered country code, that country's exact length, ISO 7064 mod-97 == 1.
- IP addresses: parsed (no leading zeros); classified by :func:`ip_kind`. Loopback,
  unspecified, multicast, broadcast and ``0.0.0.0/8`` identify nobody and are not PII;
  public, private (RFC 1918, link-local, CGNAT, ULA), documentation and reserved ones are.
- Phone numbers: digit count (6-15, the E.164 maximum), a valid ITU country code after
  ``+``, and the grouping: NANP ``(NXX) NXX-XXXX``, a national trunk ``0``, parenthesised
  area codes; dates, dotted quads, SSN-shaped and repeated-digit runs are rejected.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "IBAN_LENGTHS",
    "calling_code_ok",
    "card_brand",
    "iban_ok",
    "ip_kind",
    "ipv4_value",
    "luhn_ok",
    "phone_structure_score",
    "ssn_ok",
]

# --- payment cards ---------------------------------------------------------------------

# (brand, inclusive IIN prefix range as strings of equal length, allowed lengths)
_CARD_RANGES: tuple[tuple[str, str, str, frozenset[int]], ...] = (
    ("visa", "4", "4", frozenset({13, 16, 19})),
    ("mastercard", "51", "55", frozenset({16})),
    ("mastercard", "2221", "2720", frozenset({16})),
    ("amex", "34", "34", frozenset({15})),
    ("amex", "37", "37", frozenset({15})),
    ("discover", "6011", "6011", frozenset(range(16, 20))),
    ("discover", "644", "649", frozenset(range(16, 20))),
    ("discover", "65", "65", frozenset(range(16, 20))),
    ("diners", "300", "305", frozenset(range(14, 20))),
    ("diners", "36", "36", frozenset(range(14, 20))),
    ("diners", "38", "39", frozenset(range(16, 20))),
    ("jcb", "3528", "3589", frozenset(range(16, 20))),
    ("unionpay", "62", "62", frozenset(range(16, 20))),
    ("unionpay", "81", "81", frozenset(range(16, 20))),
    ("mir", "2200", "2204", frozenset(range(16, 20))),
    ("maestro", "50", "50", frozenset(range(12, 20))),
    ("maestro", "56", "58", frozenset(range(12, 20))),
    ("maestro", "6", "6", frozenset(range(12, 20))),
    ("rupay", "60", "60", frozenset({16})),
    ("rupay", "82", "82", frozenset({16})),
    ("troy", "9792", "9792", frozenset({16})),
)


def luhn_ok(digits: str) -> bool:
    """ISO/IEC 7812 Luhn checksum over an all-digit string."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network whose IIN range and lengths fit ``digits``, else ``None``."""
    length = len(digits)
    for brand, low, high, lengths in _CARD_RANGES:
        if length in lengths and low <= digits[: len(low)] <= high:
            return brand
    return None


# --- US social security numbers -----------------------------------------------------------

_VOIDED_SSNS = frozenset({"078051120", "219099999", "457555462"})


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules for a possible SSN (post-2011 randomisation: any other area is valid)."""
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return area + group + serial not in _VOIDED_SSNS


# --- IBAN ------------------------------------------------------------------------------------

#: IBAN length per country (SWIFT IBAN registry, plus the countries using IBAN nationally).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AO": 25, "AT": 20, "AZ": 28, "BA": 20, "BE": 16,
    "BF": 28, "BG": 22, "BH": 22, "BI": 27, "BJ": 28, "BR": 29, "BY": 28, "CH": 21,
    "CI": 28, "CM": 27, "CR": 22, "CV": 25, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "DZ": 26, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18,
    "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IR": 26, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MG": 27, "MK": 19,
    "ML": 28, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "MZ": 25, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SN": 28, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
    "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_ok(compact: str) -> bool:
    """``compact`` is upper-case with no spaces: country length and mod-97 checksum."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    remainder = 0
    for char in rearranged:
        if "0" <= char <= "9":
            remainder = (remainder * 10 + ord(char) - 48) % 97
        elif "A" <= char <= "Z":
            remainder = (remainder * 100 + ord(char) - 55) % 97
        else:
            return False
    return remainder == 1


# --- phone numbers ----------------------------------------------------------------------------


# ITU-T E.164 country codes: 1 and 7; these two-digit codes; every other code is three
# digits long and starts with one of the two-digit "zone" prefixes below.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_CC2 = _words(
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"
)
_CC3_ZONES = _words("21 22 23 24 25 26 29 35 37 38 42 50 59 67 68 69 80 85 87 88 96 97 99")
_CC3_UNASSIGNED = _words(
    "210 214 215 217 219 259 292 293 294 295 296 384 422 424 425 426 427 428 429 671 684 "
    "693 694 695 696 697 698 699 801 802 803 804 805 806 807 809 851 854 857 858 859 884 "
    "885 887 889 969 990 999"
)
_DATE = re.compile(
    r"(?:(?:19|20)\d\d[-./ ](?:0?[1-9]|1[0-2])[-./ ](?:0?[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-./ ](?:0?[1-9]|1[0-2])[-./ ](?:19|20)\d\d"
    r"|(?:0?[1-9]|1[0-2])[-./ ](?:0?[1-9]|[12]\d|3[01])[-./ ](?:19|20)\d\d)"
)
_GROUPS = re.compile(r"\d+")
_YEAR = re.compile(r"(?:19|20)\d\d")


def calling_code_ok(digits: str) -> bool:
    """Whether ``digits`` (after a ``+`` or ``00``) start with an assigned country code."""
    if digits[:1] in ("1", "7"):
        return True
    if digits[:2] in _CC2:
        return True
    return digits[:2] in _CC3_ZONES and digits[:3] not in _CC3_UNASSIGNED


def phone_structure_score(number: str) -> float:
    """How phone-like ``number`` (no extension) is on its own, 0.0 when it is not one.

    Context words are added by the caller; this judges digits and grouping only.
    """
    if number.startswith("+"):
        number = number.replace("(0)", "")  # "+44 (0)20 ...": the optional trunk zero
    digits = "".join(_GROUPS.findall(number))
    count = len(digits)
    if count < 6 or count > 15 or len(set(digits)) <= 2:
        return 0.0
    groups = [len(g) for g in _GROUPS.findall(number)]
    separators = "".join(char for char in number if not char.isdigit())
    if _DATE.fullmatch(number) or (groups == [3, 2, 4] and separators == "--"):
        return 0.0  # a date, or SSN-shaped
    if "." in separators and len(groups) == 4 and max(groups) <= 3:
        return 0.0  # a dotted quad: an IP address or a version
    # ISBN-like or enumerations: only a country code or trunk digit may stand alone (and,
    # after a country code, a mobile/area digit: "+33 6 12 34 56 78", "+61 4 1234 5678").
    lone_from = 2 if number.startswith("+") else 1
    if any(length == 1 for length in groups[lone_from:]):
        return 0.0
    if number.startswith("+"):
        return 0.85 if count >= 8 and calling_code_ok(digits) else 0.0
    if len(groups) == 1:
        if count in (10, 11):
            return 0.4 if digits[0] == "0" else 0.35
        return 0.2
    if all(length == 4 for length in groups) and all(
        _YEAR.fullmatch(g) for g in _GROUPS.findall(number)
    ):
        return 0.1  # "2019 2020 2021"
    if groups[-3:] == [3, 3, 4] and (
        len(groups) == 3 or (len(groups) == 4 and digits[: groups[0]] in ("1", "001", "011"))
    ):
        area = digits[-10:]
        return 0.8 if area[0] in "23456789" and area[3] in "23456789" else 0.7
    if "(" in number:
        return 0.7 if count >= 8 else 0.45
    if digits[0] == "0":
        if digits.startswith("00") and calling_code_ok(digits[2:]) and count >= 10:
            return 0.7
        return 0.6 if 9 <= count <= 12 else 0.4
    if count >= 10:
        return 0.45
    return 0.35 if count >= 8 else 0.3


# --- IP addresses -----------------------------------------------------------------------------


def _v4(text: str) -> tuple[int, int]:
    network = ipaddress.IPv4Network(text)
    return int(network.network_address), int(network.broadcast_address)


# (first, last, kind) for IPv4; anything not listed is public.
_V4_RANGES: tuple[tuple[int, int, str | None], ...] = tuple(
    (*_v4(net), kind)
    for net, kind in (
        ("0.0.0.0/8", None),
        ("127.0.0.0/8", None),
        ("224.0.0.0/4", None),
        ("255.255.255.255/32", None),
        ("192.0.2.0/24", "documentation"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("169.254.0.0/16", "private"),
        ("100.64.0.0/10", "private"),
        ("192.0.0.0/24", "reserved"),
        ("198.18.0.0/15", "reserved"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6_DOCUMENTATION = ipaddress.IPv6Network("2001:db8::/32")


def ipv4_value(dotted: str) -> int | None:
    """The address as an int; ``None`` for octets over 255 or with leading zeros."""
    value = 0
    for octet in dotted.split("."):
        if len(octet) > 1 and octet[0] == "0":
            return None  # ambiguous (octal in some parsers), and usually a version or date
        number = int(octet)
        if number > 255:
            return None
        value = value * 256 + number
    return value


def ip_kind(address: int | ipaddress.IPv6Address) -> str | None:
    """``public``, ``private``, ``documentation`` or ``reserved``; ``None``: not PII.

    ``address`` is an IPv4 address as an int (:func:`ipv4_value`) or an IPv6 address.
    """
    if isinstance(address, int):
        for first, last, kind in _V4_RANGES:
            if first <= address <= last:
                return kind
        return "public"
    if address.ipv4_mapped is not None:
        return ip_kind(int(address.ipv4_mapped))
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return None
    if address in _V6_DOCUMENTATION:
        return "documentation"
    if address.is_global:
        return "public"
    if address.is_private or address.is_link_local or address.is_site_local:
        return "private"
    return "reserved"
