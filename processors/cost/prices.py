"""The price table: model name -> :class:`ModelPrice`, and how a span's model resolves.

Resolution rules live in :mod:`processors.cost._names` and docs/pricing.md. A table is
immutable once built; it owns a bounded cache of resolutions (model names come from
traffic, so their number is not ours to bound).
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Literal

from llmtrace_processors.cost import _names
from llmtrace_processors.cost._formats import ParsedTable, parse_price_document, read_price_file
from llmtrace_processors.cost._price import CostBreakdown, ModelPrice, PriceFileError, TokenUsage

__all__ = [
    "BUILTIN_PRICES_RESOURCE",
    "CostBreakdown",
    "ModelPrice",
    "PriceFileError",
    "PriceTable",
    "ResolvedPrice",
    "TokenUsage",
    "load_price_table",
]

#: The built-in table, shipped as package data of ``processors.cost``.
BUILTIN_PRICES_RESOURCE = "builtin_prices.json"

MatchKind = Literal["exact", "normalized", "prefix"]

_DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class ResolvedPrice:
    """The outcome of :meth:`PriceTable.resolve`.

    ``model`` is the table entry that priced the request (an alias resolves to its
    entry); ``match`` says which resolution step found it.
    """

    requested: str
    model: str
    price: ModelPrice
    match: MatchKind

    def cost(self, usage: TokenUsage) -> CostBreakdown:
        return self.price.cost(usage)


class _ResolutionCache:
    """A small thread-safe LRU of resolutions, including misses."""

    def __init__(self, max_size: int) -> None:
        if max_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {max_size}")
        self._max = max_size
        self._items: OrderedDict[tuple[str, str | None], ResolvedPrice | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str | None]) -> tuple[bool, ResolvedPrice | None]:
        with self._lock:
            if key not in self._items:
                return False, None
            self._items.move_to_end(key)
            return True, self._items[key]

    def put(self, key: tuple[str, str | None], value: ResolvedPrice | None) -> None:
        if self._max == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class PriceTable:
    """Model prices (USD per 1M tokens) with name resolution; immutable once built."""

    def __init__(
        self,
        entries: Mapping[str, ModelPrice],
        *,
        aliases: Mapping[str, str] | None = None,
        as_of: date | None = None,
        sources: tuple[str, ...] = (),
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> None:
        self._entries = {_names.normalize(name): price for name, price in entries.items()}
        self._aliases: dict[str, str] = {}
        for alias, target in (aliases or {}).items():
            alias, target = _names.normalize(alias), _names.normalize(target)
            if target not in self._entries:
                raise ValueError(f"alias {alias!r} points at {target!r}, which has no prices")
            if alias not in self._entries:  # an entry of its own wins over an alias
                self._aliases[alias] = target
        self.as_of = as_of
        self.sources = sources
        self._cache_size = cache_size
        self._cache = _ResolutionCache(cache_size)

    # -- construction ------------------------------------------------------------------

    @classmethod
    def builtin(cls, *, cache_size: int = _DEFAULT_CACHE_SIZE) -> PriceTable:
        """The dated table shipped with the package (see its ``as_of``)."""
        resource = resources.files("llmtrace_processors.cost").joinpath(BUILTIN_PRICES_RESOURCE)
        origin = f"<builtin {BUILTIN_PRICES_RESOURCE}>"
        parsed = parse_price_document(json.loads(resource.read_text(encoding="utf-8")), origin)
        return cls._from_parsed(parsed, origin, cache_size)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, cache_size: int = _DEFAULT_CACHE_SIZE
    ) -> PriceTable:
        """A table from a file in our format (JSON/YAML) or LiteLLM's JSON, detected."""
        return cls._from_parsed(read_price_file(path), os.fspath(path), cache_size)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, object],
        *,
        origin: str = "<mapping>",
        cache_size: int = _DEFAULT_CACHE_SIZE,
    ) -> PriceTable:
        """A table from an already-decoded document in either supported format."""
        return cls._from_parsed(parse_price_document(data, origin), origin, cache_size)

    @classmethod
    def _from_parsed(cls, parsed: ParsedTable, origin: str, cache_size: int) -> PriceTable:
        return cls(
            parsed.entries,
            aliases=parsed.aliases,
            as_of=parsed.as_of,
            sources=(origin,),
            cache_size=cache_size,
        )

    def merged_with(self, other: PriceTable) -> PriceTable:
        """A new table: ``other``'s entries and aliases override and extend this one's.

        An alias of this table that ``other`` defines as a model of its own is replaced
        by that model. The newer ``as_of`` of the two is kept.
        """
        # A name ``other`` makes an alias stops being an entry here, and this table's
        # aliases that pointed at it follow it to its new target.
        entries = {k: v for k, v in self._entries.items() if k not in other._aliases}
        entries.update(other._entries)
        aliases = {
            alias: other._aliases.get(target, target)
            for alias, target in self._aliases.items()
            if alias not in entries
        }
        aliases.update(other._aliases)
        dates = [d for d in (self.as_of, other.as_of) if d is not None]
        return PriceTable(
            entries,
            aliases=aliases,
            as_of=max(dates) if dates else None,
            sources=self.sources + other.sources,
            cache_size=self._cache_size,
        )

    # -- lookup ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __repr__(self) -> str:
        return (
            f"PriceTable({len(self._entries)} models, {len(self._aliases)} aliases, "
            f"as_of={self.as_of}, sources={list(self.sources)})"
        )

    def get(self, name: str) -> ModelPrice | None:
        """The entry for exactly ``name`` (case-insensitive, aliases followed)."""
        found = self._exact(_names.normalize(name))
        return None if found is None else found[1]

    def _exact(self, key: str) -> tuple[str, ModelPrice] | None:
        price = self._entries.get(key)
        if price is not None:
            return key, price
        target = self._aliases.get(key)
        if target is not None:
            return target, self._entries[target]
        return None

    def resolve(self, model: str, provider: str | None = None) -> ResolvedPrice | None:
        """The price for ``model`` as reported on a span, or None if not known.

        ``provider`` (a semconv ``gen_ai.provider.name``) lets provider-qualified keys
        of a LiteLLM table (``azure/gpt-4o``) win over the bare name.
        """
        cache_key = (model, provider)
        hit, cached = self._cache.get(cache_key)
        if hit:
            return cached
        resolved = self._resolve(model, provider)
        self._cache.put(cache_key, resolved)
        return resolved

    def _resolve(self, model: str, provider: str | None) -> ResolvedPrice | None:
        name = _names.normalize(model)
        if not name:
            return None
        last = name
        for index, variant in enumerate(_names.variants(name)):
            last = variant
            for key in (*_names.provider_keys(variant, provider), variant):
                found = self._exact(key)
                if found is not None:
                    kind: MatchKind = "exact" if index == 0 else "normalized"
                    return ResolvedPrice(model, found[0], found[1], kind)
        for key in _names.prefix_candidates(last):
            for candidate in (*_names.provider_keys(key, provider), key):
                found = self._exact(candidate)
                if found is not None:
                    return ResolvedPrice(model, found[0], found[1], "prefix")
        return None


def load_price_table(
    path: str | os.PathLike[str] | None = None, *, cache_size: int = _DEFAULT_CACHE_SIZE
) -> PriceTable:
    """The built-in table, overridden and extended by the file at ``path`` if given."""
    table = PriceTable.builtin(cache_size=cache_size)
    if path is None:
        return table
    return table.merged_with(PriceTable.from_file(path, cache_size=cache_size))
