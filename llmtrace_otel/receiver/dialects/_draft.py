"""The span being normalised: its attributes and events, and what has been translated.

Every dialect module works on one :class:`Draft`. The rules are the same for all of them:

* a key that is translated is removed (``take``); the semconv key gets its value unless the
  span already has the semconv key, which then wins (``default``);
* a key that is not translated stays, untouched;
* message content is gathered into ``conversation`` and serialised once, at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import Event

from llmtrace_otel.receiver.dialects._messages import Conversation

__all__ = ["Draft", "as_list", "indexed", "ordered"]


@dataclass(slots=True)
class Draft:
    attributes: dict[str, Any]
    events: list[Event]
    conversation: Conversation = field(default_factory=Conversation)
    dialects: list[str] = field(default_factory=list)
    changed: bool = False
    #: The span's start (Unix ns): event times are measured from it.
    start_ns: int = 0

    def take(self, key: str) -> Any:
        """Remove ``key`` and return its value (None when absent)."""
        if key not in self.attributes:
            return None
        self.changed = True
        return self.attributes.pop(key)

    def default(self, key: str, value: Any) -> None:
        """Set ``key`` unless the span already has it or ``value`` is None."""
        if value is not None and key not in self.attributes:
            self.attributes[key] = value
            self.changed = True

    def rename(self, old: str, new: str, convert: Callable[[Any], Any] | None = None) -> None:
        if old in self.attributes:
            value = self.take(old)
            self.default(new, convert(value) if convert is not None else value)

    def mark(self, dialect: str) -> None:
        if dialect not in self.dialects:
            self.dialects.append(dialect)

    def take_events(self, names: frozenset[str]) -> list[Event]:
        """Remove the events named in ``names``; return them in order."""
        taken = [event for event in self.events if event.name in names]
        if taken:
            self.events = [event for event in self.events if event.name not in names]
            self.changed = True
        return taken

    def first_chunk_after(self, events: list[Event]) -> float | None:
        """Seconds from the span's start to the first of ``events`` (a stream's first chunk)."""
        if not events or not self.start_ns:
            return None
        first = min(event.timestamp for event in events)
        return (first - self.start_ns) / 1e9 if first >= self.start_ns else None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, tuple | list):
        return list(value)
    return [value]


def _insert(tree: dict[Any, Any], path: list[str], value: Any) -> None:
    node = tree
    for segment in path[:-1]:
        key: Any = int(segment) if segment.isdigit() else segment
        child = node.get(key)
        if not isinstance(child, dict):
            if child is not None:
                return  # a leaf already sits where a subtree would go: keep the leaf
            child = node[key] = {}
        node = child
    leaf: Any = int(path[-1]) if path[-1].isdigit() else path[-1]
    if not isinstance(node.get(leaf), dict):
        node[leaf] = value


def indexed(draft: Draft, prefix: str, keys: Iterable[str] | None = None) -> list[dict[Any, Any]]:
    """Take every ``{prefix}{N}.a.b`` key; return the N-ordered list of nested dicts.

    ``llm.input_messages.0.message.role = "user"`` with prefix ``llm.input_messages.``
    becomes ``[{"message": {"role": "user"}}]``; numeric segments deeper down (e.g.
    ``tool_calls.1.id``) become dicts with int keys, see :func:`ordered`. Keys after the
    prefix that do not start with an index (``gen_ai.prompt.prompt_filter_results``) stay.
    """
    tree: dict[Any, Any] = {}
    candidates = [key for key in (keys if keys is not None else draft.attributes)
                  if key.startswith(prefix)]
    for key in candidates:
        index, dot, rest = key[len(prefix):].partition(".")
        if not index.isdigit() or not dot or not rest:
            continue
        _insert(tree, [index, *rest.split(".")], draft.take(key))
    return [tree[index] for index in sorted(tree)]


def ordered(node: Any) -> list[Any]:
    """An int-keyed dict built by :func:`indexed` as a list in index order."""
    if isinstance(node, dict):
        return [node[key] for key in sorted(k for k in node if isinstance(k, int))]
    if isinstance(node, list | tuple):
        return list(node)
    return []
