"""The pluggable detector interface of the security processor, and the built-in detectors.

A :class:`Detector` sees one :class:`~processors.security.segments.Segment` (a text of the
span with its side and source) plus a :class:`ScanContext` (what the span says about the
call as a whole: its system instructions) and returns findings. To add one, implement the
protocol and pass ``detectors=[*default_detectors(), MyDetector()]`` to the processor.

The PII, secrets and leakage detectors live in their own modules; they are imported
guarded, so this module works without them (and :func:`default_detectors` lists only the
detectors that are installed).
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from llmtrace_processors.security.classifier import LinearClassifier, default_classifier
from llmtrace_processors.security.findings import Finding, Side
from llmtrace_processors.security.injection import DEFAULT_THRESHOLD, detect_injection
from llmtrace_processors.security.restrictions import Restrictions, restricted_topics
from llmtrace_processors.security.segments import Segment, Source

__all__ = [
    "Detector",
    "InjectionDetector",
    "LeakageDetector",
    "PIIDetector",
    "ScanContext",
    "SecretsDetector",
    "default_detectors",
]

#: Sources whose text can carry an injection aimed at the model.
_INJECTION_SOURCES = frozenset({Source.USER, Source.TOOL, Source.DOCUMENT})
_EXFIL_SOURCES = frozenset({Source.ASSISTANT, Source.TOOL_CALL})


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Span-wide facts a detector may use."""

    #: The system instructions of the call (joined), when the span carries them.
    system_prompt: str | None = None


@runtime_checkable
class Detector(Protocol):
    """One kind of analysis over the texts of a span. Holds no per-span state."""

    @property
    def name(self) -> str:
        """Stable, low-cardinality name (metric label, log key)."""
        ...

    def applies_to(self, segment: Segment) -> bool:
        """Whether :meth:`detect` should see this segment at all."""
        ...

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        """Findings in ``segment.text`` (offsets into it)."""
        ...


class InjectionDetector:
    """Prompt injection and jailbreaks in what the model reads (user, tool and document
    text), exfiltration in what it writes (markdown images/links, tool-call arguments).

    Keeps the restricted topics of the last ``prompts`` system prompts it saw (each
    costs a parse of the prompt; every call of a conversation repeats its prompt). User
    text is also read by the learned ``classifier`` (the shipped one by default;
    ``use_model=False`` for rules alone)."""

    name = "injection"

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        prompts: int = 64,
        *,
        classifier: LinearClassifier | None = None,
        use_model: bool = True,
    ) -> None:
        self.threshold = threshold
        #: The learned classifier that reads user text (loaded here, not on the first
        #: text, so no request pays for reading the artifact); None: rules alone.
        self.classifier = (classifier or default_classifier()) if use_model else None
        self._prompts = prompts
        self._restrictions: OrderedDict[str, Restrictions] = OrderedDict()
        self._lock = threading.Lock()

    def applies_to(self, segment: Segment) -> bool:
        if segment.side == Side.INPUT:
            return segment.source in _INJECTION_SOURCES
        return segment.source in _EXFIL_SOURCES

    def _restricted(self, system_prompt: str) -> Restrictions:
        with self._lock:
            found = self._restrictions.get(system_prompt)
            if found is not None:
                self._restrictions.move_to_end(system_prompt)
                return found
        found = restricted_topics(system_prompt)
        with self._lock:
            self._restrictions[system_prompt] = found
            if len(self._restrictions) > self._prompts:
                self._restrictions.popitem(last=False)
        return found

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        prompt = context.system_prompt
        return detect_injection(
            segment.text,
            source=segment.source,
            system_prompt=prompt,
            side=segment.side,
            threshold=self.threshold,
            restrictions=self._restricted(prompt) if prompt and segment.side == Side.INPUT
            else None,
            classifier=self.classifier,
            use_model=self.classifier is not None,
        )


class _Optional:
    """A detector function from a module that may not be installed."""

    def __init__(self, module: str, function: str) -> None:
        self._module = module
        self._function = function

    def load(self) -> Callable[..., list[Finding]] | None:
        try:
            found: Any = importlib.import_module(self._module)
        except ImportError:
            return None
        return getattr(found, self._function, None)


_PII = _Optional("llmtrace_processors.security.pii", "detect_pii")
_SECRETS = _Optional("llmtrace_processors.security.secrets", "detect_secrets")
_LEAKAGE = _Optional("llmtrace_processors.security.leakage", "detect_leakage")


class _WholeTextDetector:
    """A detector function that reads every segment, input and output alike."""

    name: str

    def __init__(self, detect: Callable[..., list[Finding]]) -> None:
        self._detect = detect

    def applies_to(self, segment: Segment) -> bool:
        return True

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        return self._detect(segment.text, side=segment.side)


class PIIDetector(_WholeTextDetector):
    """Validated PII (``processors.security.pii``) on both sides."""

    name = "pii"


class SecretsDetector(_WholeTextDetector):
    """Credentials and keys (``processors.security.secrets``) on both sides."""

    name = "secrets"


class LeakageDetector:
    """The system prompt or its secrets echoed in the output
    (``processors.security.leakage``); needs the span's system instructions."""

    name = "leakage"

    def __init__(self, detect: Callable[..., list[Finding]]) -> None:
        self._detect = detect

    def applies_to(self, segment: Segment) -> bool:
        return segment.side == Side.OUTPUT

    def detect(self, segment: Segment, context: ScanContext) -> Sequence[Finding]:
        if not context.system_prompt:
            return []
        # secrets in the output are the secrets detector's: not reported twice
        return self._detect(segment.text, context.system_prompt, include_secrets=False)


def default_detectors() -> list[Detector]:
    """Injection, plus PII, secrets and leakage when their modules are installed."""
    detectors: list[Detector] = [InjectionDetector()]
    pii = _PII.load()
    if pii is not None:
        detectors.append(PIIDetector(pii))
    secrets = _SECRETS.load()
    if secrets is not None:
        detectors.append(SecretsDetector(secrets))
    leakage = _LEAKAGE.load()
    if leakage is not None:
        detectors.append(LeakageDetector(leakage))
    return detectors
