"""SecurityProcessor: scans every GenAI span's content, request and response side.

Reads the span's texts (:mod:`processors.security.segments`), runs each detector on the
segments it applies to, and adds to the exported copy of the span:

* one span event ``llmtrace.security.finding`` per finding at or above ``min_severity``
  (type, severity, confidence, side, detector, location, redacted evidence, message);
* ``llmtrace.security.score``: 0-100, ``100 * (1 - prod(1 - w(severity) * confidence))``
  over the reported findings, with ``w`` = info 0.1, low 0.3, medium 0.55, high 0.8,
  critical 1.0. 0 means analysed and clean; a span without content has no score;
* ``llmtrace.security.findings`` (count), ``llmtrace.security.max_severity`` and
  ``llmtrace.security.finding_types``, when there are findings.

Metrics (through the ``meter_provider`` given): the counter ``llmtrace.security.findings``
(``finding_type``, ``severity``; Prometheus ``llmtrace_security_findings_total``) and the
histogram ``llmtrace.security.detector.duration`` (s, ``detector``; the time one detector
took on one span). The histogram times one scan in ``timing_sample_every`` (16; the
first scan always): an SDK histogram record costs ~85,000 CPU instructions, and one per
detector per span was half of the processor's cost on cached texts. Its ``_count`` is
therefore a 1-in-16 sample of scans; the quantiles are unaffected.

With ``redact=True`` (``security.pii_export: redact``; the pipeline sets it only when
content is exported at all) every value the PII and secrets detectors found, whatever its
severity, is replaced in the exported content attributes by a placeholder
(``[PII:EMAIL]``, ``[SECRET:AWS_ACCESS_KEY]``; :mod:`processors.security.redaction`), the
JSON shape kept; ``llmtrace.security.redacted`` counts the values (0 included: it is the
mark that redaction ran, which the content policy requires before it exports content), and
the findings' ``start``/``end`` index the redacted text. A span on which a detector failed
is not marked (:class:`RedactionIncomplete`): its content is withheld, never exported as is.

Results are remembered per (detector, text, system prompt) for the last ``cache_size``
texts: system instructions, tool definitions and earlier conversation turns repeat on
every call of a conversation and are analysed once.

It declares ``needs_content = True`` (the proxy then puts content on spans for it) and
runs wherever the chain runs: behind a ``BackgroundSpanProcessor``, never on the caller's
thread. Put it before the ``ContentPolicyProcessor`` so content is analysed, then stripped.
A detector that raises is logged and counted (stage ``security.<detector>``, reason
``detector_error``); the others still run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.util.types import AttributeValue

from llmtrace_processors.attributes import (
    LLMTRACE_SECURITY_FINDING_CONFIDENCE,
    LLMTRACE_SECURITY_FINDING_DETECTOR,
    LLMTRACE_SECURITY_FINDING_END,
    LLMTRACE_SECURITY_FINDING_EVENT,
    LLMTRACE_SECURITY_FINDING_EVIDENCE,
    LLMTRACE_SECURITY_FINDING_LOCATION,
    LLMTRACE_SECURITY_FINDING_MESSAGE,
    LLMTRACE_SECURITY_FINDING_MODEL_SCORE,
    LLMTRACE_SECURITY_FINDING_RULES,
    LLMTRACE_SECURITY_FINDING_SEVERITY,
    LLMTRACE_SECURITY_FINDING_SIDE,
    LLMTRACE_SECURITY_FINDING_START,
    LLMTRACE_SECURITY_FINDING_TYPE,
    LLMTRACE_SECURITY_FINDING_TYPES,
    LLMTRACE_SECURITY_FINDINGS,
    LLMTRACE_SECURITY_MAX_SEVERITY,
    LLMTRACE_SECURITY_REDACTED,
    LLMTRACE_SECURITY_SCORE,
)
from llmtrace_processors.chain import DropCounter, EnrichingSpanProcessor, Enrichment
from llmtrace_processors.security.cache import DEFAULT_CACHE_SIZE, FindingsCache
from llmtrace_processors.security.detectors import Detector, ScanContext, default_detectors
from llmtrace_processors.security.evaluation import evaluation_events
from llmtrace_processors.security.findings import Finding, Severity
from llmtrace_processors.security.redaction import Redaction, placeholder, redact_attributes
from llmtrace_processors.security.segments import (
    Segment,
    segments_from_attributes,
    system_prompt_of,
)
from llmtrace_processors.totals import CounterTotals

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "DETECTOR_DURATION_METRIC",
    "FINDINGS_METRIC",
    "MAX_FINDING_EVENTS",
    "LocatedFinding",
    "RedactionIncomplete",
    "SecurityProcessor",
    "security_score",
]

_log = logging.getLogger(__name__)
_METER_NAME = "processors.security"

FINDINGS_METRIC = "llmtrace.security.findings"
DETECTOR_DURATION_METRIC = "llmtrace.security.detector.duration"
#: Finding events per span; more findings are counted (attribute, metric) but not listed.
MAX_FINDING_EVENTS = 64

_DURATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25,
)
_SEVERITY_WEIGHT = {
    Severity.INFO: 0.1,
    Severity.LOW: 0.3,
    Severity.MEDIUM: 0.55,
    Severity.HIGH: 0.8,
    Severity.CRITICAL: 1.0,
}


@dataclass(frozen=True, slots=True)
class LocatedFinding:
    """A finding and the segment it was found in."""

    finding: Finding
    segment: Segment


def security_score(findings: Sequence[Finding]) -> float:
    """0-100: the noisy-OR of severity-weighted confidences (see the module docstring)."""
    miss = 1.0
    for finding in findings:
        weight = _SEVERITY_WEIGHT.get(finding.severity, 0.5)
        miss *= 1.0 - weight * min(max(finding.confidence, 0.0), 1.0)
    return round(100.0 * (1.0 - miss), 1)


#: Segment location -> where its (redacted) text starts in the exported side text.
_Offsets = dict[str, int | None]


def _event_attributes(
    located: LocatedFinding,
    redaction: Redaction | None = None,
    offsets: _Offsets | None = None,
) -> dict[str, AttributeValue]:
    finding = located.finding
    segment = located.segment
    attributes: dict[str, AttributeValue] = {
        LLMTRACE_SECURITY_FINDING_TYPE: finding.finding_type,
        LLMTRACE_SECURITY_FINDING_SEVERITY: finding.severity.label,
        LLMTRACE_SECURITY_FINDING_CONFIDENCE: float(finding.confidence),
        LLMTRACE_SECURITY_FINDING_SIDE: finding.side,
        LLMTRACE_SECURITY_FINDING_DETECTOR: finding.detector,
        LLMTRACE_SECURITY_FINDING_LOCATION: segment.location,
    }
    offset = segment.offset
    start, end = finding.start, finding.end
    if redaction is not None and offsets is not None:  # offsets in the redacted text
        offset = offsets.get(segment.location)
        changed = redaction.texts.get(segment.location)
        if changed is not None and 0 <= start < end:
            start, end = changed.position(start), changed.position(end, end=True)
    if offset is not None and 0 <= start < end:
        attributes[LLMTRACE_SECURITY_FINDING_START] = offset + start
        attributes[LLMTRACE_SECURITY_FINDING_END] = offset + end
    if finding.evidence:
        attributes[LLMTRACE_SECURITY_FINDING_EVIDENCE] = finding.evidence
    if finding.message:
        attributes[LLMTRACE_SECURITY_FINDING_MESSAGE] = finding.message
    if finding.rules:
        attributes[LLMTRACE_SECURITY_FINDING_RULES] = finding.rules
    if finding.model_score is not None:
        attributes[LLMTRACE_SECURITY_FINDING_MODEL_SCORE] = finding.model_score
    return attributes


class RedactionIncomplete(RuntimeError):
    """A detector that finds what redaction replaces failed on a span: its content is not
    known to be redacted (the content policy then withholds it)."""


class SecurityProcessor(EnrichingSpanProcessor):
    """Findings, score and metrics for GenAI spans that carry content."""

    stage = "security"
    needs_content = True

    def __init__(
        self,
        next_processor: SpanProcessor | None = None,
        *,
        detectors: Sequence[Detector] | None = None,
        min_severity: Severity = Severity.LOW,
        meter_provider: MeterProvider | None = None,
        on_drop: DropCounter | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
        timing_sample_every: int = 16,
        redact: bool = False,
        evaluation_events: bool = False,
    ) -> None:
        super().__init__(next_processor, on_drop=on_drop)
        #: Replace PII and secrets in the exported content with placeholders.
        self.redact = redact
        #: Also report the score and findings as gen_ai.evaluation.result events (the latest
        #: GenAI conventions, ``evaluation.py``).
        self.evaluation_events = evaluation_events
        if timing_sample_every < 1:
            raise ValueError(f"timing_sample_every must be >= 1, got {timing_sample_every}")
        self._sample_every = timing_sample_every
        self._scans = 0
        self._cache = FindingsCache(cache_size)
        self.detectors: tuple[Detector, ...] = tuple(
            default_detectors() if detectors is None else detectors
        )
        self.min_severity = min_severity
        meter = get_meter(_METER_NAME, meter_provider=meter_provider)
        self._findings = CounterTotals(
            meter, FINDINGS_METRIC, labels=("finding_type", "severity"), unit="{finding}",
            description="Security findings on GenAI spans, by type and severity.",
        )
        self._duration = meter.create_histogram(
            DETECTOR_DURATION_METRIC, unit="s",
            description="Time one security detector took on one span.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )

    def scan(self, segments: Sequence[Segment]) -> list[LocatedFinding]:
        """Run every detector over ``segments``; findings below ``min_severity`` dropped."""
        return [item for item in self._scan(segments)
                if item.finding.severity >= self.min_severity]

    def _scan(self, segments: Sequence[Segment]) -> list[LocatedFinding]:
        context = ScanContext(system_prompt=system_prompt_of(list(segments)))
        located: list[LocatedFinding] = []
        timed = self._scans % self._sample_every == 0
        self._scans += 1
        failed: list[str] = []
        for detector in self.detectors:
            began = time.perf_counter()
            try:
                for segment in segments:
                    if not detector.applies_to(segment):
                        continue
                    for finding in self._cache.detect(detector, segment, context):
                        located.append(LocatedFinding(finding, segment))
            except Exception:  # one broken detector never stops the others
                _log.exception("security detector %s failed; its findings are lost",
                               detector.name)
                self._on_drop(f"{self.stage}.{detector.name}", "detector_error")
                failed.append(detector.name)
            if timed:
                self._duration.record(time.perf_counter() - began, {"detector": detector.name})
        if failed and self.redact:  # a redaction that missed a detector would leak: fail
            raise RedactionIncomplete(f"detector(s) {', '.join(failed)} failed: the span's "
                                      "content cannot be known to be redacted")
        return located

    @staticmethod
    def _redaction(
        attributes: Mapping[str, AttributeValue], located: Sequence[LocatedFinding]
    ) -> tuple[Redaction, _Offsets] | None:
        by_location: dict[str, list[Finding]] = {}
        for item in located:
            if placeholder(item.finding.finding_type) is not None:
                by_location.setdefault(item.segment.location, []).append(item.finding)
        if not by_location:
            return None
        redaction = redact_attributes(attributes, by_location)
        if redaction is None:
            return None
        exported = segments_from_attributes({**attributes, **redaction.attributes})
        return redaction, {segment.location: segment.offset for segment in exported}

    def scan_all(self, segments: Sequence[Segment]) -> list[LocatedFinding]:
        """Every finding in ``segments``, below ``min_severity`` too (redaction uses them):
        what :meth:`enrichment` takes, so a worker process can scan (``pool.py``)."""
        return self._scan(segments)

    def record_duration(self, detector: str, seconds: float) -> None:
        """Record one sampled detector time measured elsewhere (a worker process)."""
        self._duration.record(seconds, {"detector": detector})

    def enrich(self, span: ReadableSpan) -> Enrichment | None:
        source: Mapping[str, AttributeValue] = span.attributes or {}
        segments = segments_from_attributes(source)
        if not segments:
            return self.nothing_to_analyse()
        return self.enrichment(span, self._scan(segments))

    def nothing_to_analyse(self) -> Enrichment | None:
        """The enrichment of a span without content: no score (not "clean"), and when
        redacting, the mark that there was nothing to redact."""
        return Enrichment(attributes={LLMTRACE_SECURITY_REDACTED: 0}) if self.redact else None

    def enrichment(self, span: ReadableSpan, every: Sequence[LocatedFinding]) -> Enrichment:
        """Score, findings, redaction and the findings metric of ``span`` from ``every``
        (:meth:`scan_all` of its segments, run here or in a worker process)."""
        source: Mapping[str, AttributeValue] = span.attributes or {}
        located = [item for item in every if item.finding.severity >= self.min_severity]
        findings = [item.finding for item in located]
        score = security_score(findings)
        attributes: dict[str, AttributeValue] = {LLMTRACE_SECURITY_SCORE: score}
        redacted = self._redaction(source, every) if self.redact else None
        redaction, offsets = redacted if redacted is not None else (None, None)
        if self.redact:  # the mark the content policy exports redacted content by
            attributes[LLMTRACE_SECURITY_REDACTED] = 0
        if redaction is not None:
            attributes.update(redaction.attributes)
            attributes[LLMTRACE_SECURITY_REDACTED] = redaction.count
        if not findings:
            return Enrichment(attributes=attributes, events=evaluation_events(
                score, (), source, span.end_time) if self.evaluation_events else ())
        for finding in findings:
            self._findings.add(1, (finding.finding_type, finding.severity.label))
        located.sort(key=lambda item: (item.finding.severity, item.finding.confidence),
                     reverse=True)
        attributes[LLMTRACE_SECURITY_FINDINGS] = len(findings)
        attributes[LLMTRACE_SECURITY_MAX_SEVERITY] = located[0].finding.severity.label
        attributes[LLMTRACE_SECURITY_FINDING_TYPES] = tuple(
            sorted({finding.finding_type for finding in findings})
        )
        timestamp = span.end_time
        reported = located[:MAX_FINDING_EVENTS]
        events = [
            Event(LLMTRACE_SECURITY_FINDING_EVENT,
                  _event_attributes(item, redaction, offsets), timestamp)
            for item in reported
        ]
        if self.evaluation_events:
            events += evaluation_events(score, [item.finding for item in reported], source,
                                        timestamp)
        return Enrichment(attributes=attributes, events=events)
