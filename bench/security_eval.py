"""Score the security detectors on the shared public datasets; optionally write docs.

    .venv/bin/python bench/security_eval.py [--datasets DIR] [--threshold 0.5]
        [--errors N] [--sweep] [--write-docs]      (make eval-security)

Reads ``../shared/datasets/`` in place (never copied):

* ``prompt_injection_deepset.json``: injection vs benign prompts (English and German).
  Precision, recall, F1 and the false-positive rate on benign rows, overall and per
  language (German by a word-list heuristic).
* ``prompt_injection_cyberseceval.json``: every row is an attack; recall per injection
  type and variant, on the attack text alone and with the row's system prompt given as
  context (what the security processor sees on a real span).
* ``pii_presidio_generated.json``: benign sentences full of PII, as a second benign set
  for the injection detector (false-positive rate); and, when ``processors.security.pii``
  exists, span-level precision/recall/F1 per entity type of its ``detect_pii``.

* every shared file, leave one dataset out (``detector_eval.py``): the learned classifier
  trained without the file it scores; recall and false-positive rate of the rules alone,
  the model alone and both, per file and per category (needs the ``train`` extra).

The per-file tables above the cross-dataset one score the rules alone (``use_model=False``):
the shipped model was trained on these very files, so its numbers there would be
in-sample. The latencies are of the detector as shipped (rules and model).

Latency: ``time.perf_counter_ns`` around one call per text (best of ``--repeat``), median
and p99 over each dataset, and over repeated calls on a typical chat prompt, a 10 KB and
a 100 KB text. Micro-benchmark numbers on a shared machine; compare within one run.

``--write-docs`` replaces the block between ``<!-- eval:begin -->`` and
``<!-- eval:end -->`` in ``docs/security.md`` with the tables printed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from llmtrace_processors.security.injection import (  # noqa: E402
    DEFAULT_THRESHOLD,
    InjectionAssessment,
    assess_injection,
    findings_from,
)

DEEPSET = "prompt_injection_deepset.json"
CYBERSECEVAL = "prompt_injection_cyberseceval.json"
PRESIDIO = "pii_presidio_generated.json"
DOC = ROOT / "docs" / "security.md"
BEGIN, END = "<!-- eval:begin -->", "<!-- eval:end -->"
PII_TYPES = {
    "EMAIL_ADDRESS": "pii.email",
    "PHONE_NUMBER": "pii.phone",
    "CREDIT_CARD": "pii.credit_card",
    "US_SSN": "pii.us_ssn",
    "IBAN_CODE": "pii.iban",
    "IP_ADDRESS": "pii.ip_address",
}
_GERMAN = re.compile(
    r"[äöüß]|\b(?:der|die|das|und|ist|nicht|ich|du|wie|was|ein|eine|mit|für|auf|sind|wir|"
    r"kann|gibt|bitte|vergiss|alle|deine?)\b",
    re.IGNORECASE,
)


def default_datasets() -> Path:
    """``shared/datasets`` next to the project root or any parent (git worktrees)."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "datasets"
        if (candidate / DEEPSET).is_file():
            return candidate
    return ROOT.parent / "shared" / "datasets"


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, attack: bool, flagged: bool) -> None:
        if attack and flagged:
            self.tp += 1
        elif attack:
            self.fn += 1
        elif flagged:
            self.fp += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p and r else None

    @property
    def fpr(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        begin = time.perf_counter_ns()
        call()
        best = min(best, (time.perf_counter_ns() - begin) / 1000)
    return best


# --- injection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    group: str
    attack: bool
    text: str
    assessment: InjectionAssessment
    micros: float


def _score_rows(
    rows: Iterable[tuple[str, bool, str, str | None]], repeat: int
) -> list[Scored]:
    out = []
    for group, attack, text, system in rows:
        assessment = assess_injection(text, system_prompt=system, use_model=False)
        micros = _timed(lambda t=text, s=system: assess_injection(t, system_prompt=s), repeat)
        out.append(Scored(group, attack, text, assessment, micros))
    return out


def _confusions(scored: Iterable[Scored], threshold: float) -> dict[str, Confusion]:
    table: dict[str, Confusion] = defaultdict(Confusion)
    for row in scored:
        table[row.group].add(row.attack, row.assessment.score >= threshold)
    return table


def _deepset_rows(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str, str | None]]:
    out = []
    for row in rows:
        text = str(row["text"])
        lang = "de" if len(_GERMAN.findall(text)) >= 2 else "en"
        out.append((f"deepset/{lang}", row["label"] == "malicious", text, None))
    return out


def _cse_rows(
    rows: list[dict[str, Any]], with_context: bool
) -> list[tuple[str, bool, str, str | None]]:
    mode = "with system prompt" if with_context else "text only"
    return [
        (
            f"{r['injection_type']}|{r['injection_variant']}|{mode}",
            True,
            str(r["user_input"]),
            str(r["test_case_prompt"]) if with_context else None,
        )
        for r in rows
    ]


def _merge(table: dict[str, Confusion], pick: Callable[[str], str | None]) -> dict[str, Confusion]:
    merged: dict[str, Confusion] = defaultdict(Confusion)
    for key, c in table.items():
        name = pick(key)
        if name is None:
            continue
        m = merged[name]
        m.tp, m.fp, m.fn, m.tn = m.tp + c.tp, m.fp + c.fp, m.fn + c.fn, m.tn + c.tn
    return merged


def _top_type(assessment: InjectionAssessment, threshold: float) -> str:
    findings = findings_from(assessment, threshold=threshold)
    return findings[0].finding_type if findings else "(not flagged)"


def _latency_row(name: str, micros: Sequence[float]) -> str:
    return (
        f"| {name} | {len(micros)} | {statistics.median(micros):.0f} | "
        f"{_percentile(micros, 0.99):.0f} |"
    )


def _synthetic(size: int) -> str:
    para = (
        "You are a helpful assistant for an online store. The customer asks about the "
        "delivery time of order 4411 and whether the blue jacket comes in size M. Please "
        "answer politely, mention the return policy, and keep it under 120 words.\n"
    )
    return (para * (size // len(para) + 1))[:size]


def injection_report(
    datasets: Path, threshold: float, repeat: int, errors: int, sweep: bool
) -> list[str]:
    deepset = json.loads((datasets / DEEPSET).read_text(encoding="utf-8"))
    cse = json.loads((datasets / CYBERSECEVAL).read_text(encoding="utf-8"))
    presidio = json.loads((datasets / PRESIDIO).read_text(encoding="utf-8"))
    scored_deepset = _score_rows(_deepset_rows(deepset), repeat)
    scored_cse = _score_rows(_cse_rows(cse, False) + _cse_rows(cse, True), repeat)
    scored_benign = _score_rows(
        [("presidio", False, str(r["full_text"]), None) for r in presidio], repeat
    )
    ds = _confusions(scored_deepset, threshold)
    ds_all = _merge(ds, lambda k: "deepset (all)")
    cse_table = _confusions(scored_cse, threshold)
    cse_type = _merge(cse_table, lambda k: f"{k.split('|')[0]}, {k.split('|')[2]}")
    cse_variant = _merge(cse_table, lambda k: k)
    benign = _confusions(scored_benign, threshold)

    out = [
        f"**Rules alone.** Threshold {threshold} on the combined score; a row counts as "
        "flagged when `assess_injection(text, use_model=False).score >= threshold` (the "
        "learned model is scored leave-one-dataset-out below: it was trained on these files).",
        "",
        "| dataset | rows | attacks | benign | TP | FN | FP | precision | recall | F1 | FPR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def line(name: str, c: Confusion) -> str:
        return (
            f"| {name} | {c.tp + c.fn + c.fp + c.tn} | {c.tp + c.fn} | {c.fp + c.tn} | {c.tp} | "
            f"{c.fn} | {c.fp} | {_pct(c.precision)} | {_pct(c.recall)} | {_num(c.f1)} | "
            f"{_pct(c.fpr)} |"
        )

    out.append(line("deepset (all)", ds_all["deepset (all)"]))
    for key in sorted(ds):
        out.append(line(key + " (heuristic language)", ds[key]))
    for key in sorted(cse_type):
        out.append(line(f"CyberSecEval {key}", cse_type[key]))
    out.append(line("Presidio sentences (benign, PII-heavy)", benign["presidio"]))

    out += [
        "",
        "CyberSecEval recall per variant (text only / with the row's system prompt):",
        "",
        "| type | variant | rows | recall, text only | recall, with system prompt |",
        "|---|---|---|---|---|",
    ]
    variants = sorted({(k.split("|")[0], k.split("|")[1]) for k in cse_variant})
    for kind, variant in variants:
        alone = cse_variant[f"{kind}|{variant}|text only"]
        ctx = cse_variant[f"{kind}|{variant}|with system prompt"]
        out.append(
            f"| {kind} | {variant} | {alone.tp + alone.fn} | {_pct(alone.recall)} | "
            f"{_pct(ctx.recall)} |"
        )

    types = Counter(
        _top_type(r.assessment, threshold)
        for r in [*scored_deepset, *scored_cse]
        if r.attack
    )
    out += ["", "Top finding type on attack rows (all injection sets):", "",
            "| finding type | rows |", "|---|---|"]
    out += [f"| `{t}` | {n} |" for t, n in types.most_common()]

    if sweep:
        out += ["", "Threshold sweep:", "",
                "| threshold | deepset P | deepset R | deepset FPR | CSE direct R | "
                "CSE indirect R | Presidio FPR |", "|---|---|---|---|---|---|---|"]
        for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
            d = _merge(_confusions(scored_deepset, t), lambda k: "all")["all"]
            c = _merge(_confusions(scored_cse, t),
                       lambda k: k.split("|")[0] if k.endswith("text only") else None)
            b = _confusions(scored_benign, t)["presidio"]
            out.append(f"| {t} | {_pct(d.precision)} | {_pct(d.recall)} | {_pct(d.fpr)} | "
                       f"{_pct(c['direct'].recall)} | {_pct(c['indirect'].recall)} | "
                       f"{_pct(b.fpr)} |")

    typical = _synthetic(600)
    out += [
        "",
        "Latency of `assess_injection` per text, microseconds (best of "
        f"{repeat} per text; synthetic texts: {max(50, repeat * 20)} calls):",
        "",
        "| texts | n | median µs | p99 µs |",
        "|---|---|---|---|",
        _latency_row("deepset rows", [r.micros for r in scored_deepset]),
        _latency_row("CyberSecEval rows", [r.micros for r in scored_cse]),
        _latency_row("Presidio sentences", [r.micros for r in scored_benign]),
    ]
    for name, size, calls in (("typical chat prompt (600 chars)", 600, max(50, repeat * 20)),
                              ("10 KB text", 10_000, max(20, repeat * 4)),
                              ("100 KB text", 100_000, max(5, repeat))):
        text = typical if size == 600 else _synthetic(size)
        samples = [_timed(lambda t=text: assess_injection(t), 1) for _ in range(calls)]
        out.append(_latency_row(name, samples))

    if errors:
        _print_errors(scored_deepset, scored_cse, scored_benign, threshold, errors)
    return out


def _print_errors(
    deepset: list[Scored], cse: list[Scored], benign: list[Scored], threshold: float, n: int
) -> None:
    def show(title: str, rows: list[Scored]) -> None:
        print(f"\n## {title} ({len(rows)})", file=sys.stderr)
        for row in rows[:n]:
            kinds = {k: round(s.weight, 2) for k, s in row.assessment.kinds.items()}
            print(f"  {row.assessment.score:.2f} {row.group} {row.text[:160]!r} {kinds}",
                  file=sys.stderr)

    show("deepset missed", [r for r in deepset if r.attack and r.assessment.score < threshold])
    show("deepset false positives",
         [r for r in deepset if not r.attack and r.assessment.score >= threshold])
    show("CyberSecEval missed (text only)",
         [r for r in cse if r.group.endswith("text only") and r.assessment.score < threshold])
    show("Presidio false positives", [r for r in benign if r.assessment.score >= threshold])


# --- the learned classifier ------------------------------------------------------------------


def cross_dataset_report(datasets: Path, threshold: float) -> list[str]:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        message = ("scikit-learn is not installed (the `train` extra, `make eval-security` "
                   "installs it): the cross-dataset evaluation was skipped.")
        print(message, file=sys.stderr)
        return [message]
    from detector_eval import report, score_held_out

    from llmtrace_processors.security.classifier import default_classifier

    scored = score_held_out(datasets, log=lambda m: print(m, file=sys.stderr))
    out = report(scored, threshold, sweep=True)
    model = default_classifier()
    deepset = json.loads((datasets / DEEPSET).read_text(encoding="utf-8"))
    rows = [_timed(lambda t=str(r["text"]): model.probability(t), 3) for r in deepset]
    out += ["", f"The shipped model (`{model.version}`, "
            f"{len(model.word_weights):,} word and {len(model.char_weights):,} character "
            "features): `LinearClassifier.probability` per text, microseconds (pure Python; "
            "texts over 4,096 characters are read head and tail, so that is its bound):", "",
            "| texts | n | median µs | p99 µs |", "|---|---|---|---|",
            _latency_row("deepset rows (best of 3)", rows)]
    for name, size in (("typical chat prompt (600 chars)", 600), ("2 KB text", 2000),
                       ("100 KB text", 100_000)):
        text = _synthetic(size)
        samples = [_timed(lambda t=text: model.probability(t), 1) for _ in range(300)]
        out.append(_latency_row(name, samples))
    return out


# --- PII (sec-pii's detector, when present) -------------------------------------------------


@dataclass
class SpanCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def prf(self) -> tuple[float | None, float | None, float | None]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        f = 2 * p * r / (p + r) if p and r else None
        return p, r, f


def _span_scores(
    rows: list[dict[str, Any]], detect: Callable[[str], Sequence[Any]], exact: bool
) -> dict[str, SpanCounts]:
    counts = {kind: SpanCounts() for kind in PII_TYPES.values()}
    for row in rows:
        gold = [
            (PII_TYPES[s["entity_type"]], s["start_position"], s["end_position"])
            for s in row["spans"]
            if s["entity_type"] in PII_TYPES
        ]
        unmatched = list(gold)
        for finding in detect(str(row["full_text"])):
            kind = finding.finding_type
            if kind not in counts:
                continue
            hit = next(
                (g for g in unmatched if g[0] == kind and (
                    (g[1], g[2]) == (finding.start, finding.end) if exact
                    else g[1] < finding.end and finding.start < g[2])),
                None,
            )
            if hit is None:
                counts[kind].fp += 1
            else:
                counts[kind].tp += 1
                unmatched.remove(hit)
        for kind, _, _ in unmatched:
            counts[kind].fn += 1
    return counts


def pii_report(datasets: Path, repeat: int) -> list[str]:
    try:
        pii = importlib.import_module("llmtrace_processors.security.pii")
    except ImportError:
        message = "llmtrace_processors.security.pii is not available: PII detector not scored."
        print(message, file=sys.stderr)
        return [message]
    detect = pii.detect_pii
    rows = json.loads((datasets / PRESIDIO).read_text(encoding="utf-8"))
    exact = _span_scores(rows, detect, exact=True)
    overlap = _span_scores(rows, detect, exact=False)
    out = [
        "Span level: exact offsets / overlapping spans of the same type.",
        "",
        "| entity | gold | precision (exact) | recall (exact) | F1 (exact) | "
        "precision (overlap) | recall (overlap) | F1 (overlap) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in PII_TYPES.values():
        e, o = exact[kind], overlap[kind]
        pe, re_, fe = e.prf()
        po, ro, fo = o.prf()
        out.append(f"| `{kind}` | {e.tp + e.fn} | {_pct(pe)} | {_pct(re_)} | {_num(fe)} | "
                   f"{_pct(po)} | {_pct(ro)} | {_num(fo)} |")
    micros = [_timed(lambda t=str(r["full_text"]): detect(t), repeat) for r in rows]
    out += ["", "| texts | n | median µs | p99 µs |", "|---|---|---|---|",
            _latency_row("`detect_pii` per Presidio sentence", micros)]
    return out


# --- per-span cost ---------------------------------------------------------------------------

_SYSTEM = (
    "You are the support assistant of Acme Outdoor. Answer questions about orders, "
    "shipping and returns politely and briefly. Never reveal internal notes. If you do not "
    "know an answer, say so and offer to connect the customer with a human agent."
)
_USER = (
    "Hi! I ordered the blue Trailrunner jacket (order 4411) last Tuesday and the tracking "
    "page still says 'label created'. Can you tell me when it will arrive? Also, does the "
    "jacket come in size M, and can I exchange it if it does not fit? My email is "
    "jane.doe@example.com if you need it."
)
_ASSISTANT = (
    "Thanks for reaching out! Order 4411 was handed to the carrier yesterday, so the "
    "tracking page should update within 24 hours; delivery is expected by Friday. The "
    "Trailrunner jacket is available in size M. If it does not fit, you can exchange it "
    "free of charge within 30 days: start the exchange from your order page and print the "
    "prepaid label. Is there anything else I can help you with?"
)


def _span_attributes(user: str) -> dict[str, str]:
    def messages(role: str, text: str) -> str:
        return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])

    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system_instructions": json.dumps([{"type": "text", "content": _SYSTEM}]),
        "gen_ai.input.messages": messages("user", user),
        "gen_ai.output.messages": messages("assistant", _ASSISTANT),
    }


def _stats(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples):.0f} / {_percentile(samples, 0.99):.0f}"


def cost_report(calls: int) -> list[str]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from llmtrace_processors.security.detectors import ScanContext
    from llmtrace_processors.security.processor import SecurityProcessor
    from llmtrace_processors.security.segments import segments_from_attributes, system_prompt_of

    meters = MeterProvider()
    processor = SecurityProcessor(meter_provider=meters, cache_size=0)  # every call analyses
    tracer = TracerProvider().get_tracer("bench")
    spans = {}
    for name, user in (("typical chat span (system 0.3 KB, user 0.4 KB, reply 0.5 KB)", _USER),
                       ("100 KB user prompt", (_USER + " ") * (100_000 // (len(_USER) + 1)))):
        span = tracer.start_span("chat", attributes=_span_attributes(user))
        span.end()
        spans[name] = span
    out = [
        f"`SecurityProcessor.enrich` per span (result cache off: every call analyses) and "
        f"each detector's share, microseconds "
        f"({calls} calls for the typical span, {max(5, calls // 20)} for 100 KB; "
        "median / p99):",
        "",
        "| span | whole processor | " + " | ".join(d.name for d in processor.detectors) + " |",
        "|---|---|" + "---|" * len(processor.detectors),
    ]
    for name, span in spans.items():
        n = calls if name.startswith("typical") else max(5, calls // 20)
        whole = [_timed(lambda s=span: processor.enrich(s), 1) for _ in range(n)]
        segments = segments_from_attributes(span.attributes or {})
        context = ScanContext(system_prompt=system_prompt_of(segments))
        parts = []
        for detector in processor.detectors:
            def run(d: Any = detector, segs: Any = segments, ctx: Any = context) -> None:
                for segment in segs:
                    if d.applies_to(segment):
                        d.detect(segment, ctx)
            parts.append(_stats([_timed(run, 1) for _ in range(n)]))
        out.append(f"| {name} | {_stats(whole)} | " + " | ".join(parts) + " |")
    meters.shutdown()
    out += ["", *_guard_cost(calls)]
    out += ["", *_stream_cost(max(20, calls // 5))]
    return out


_ANSWER = (
    "Sure! To rotate the logs, add a daily cron entry that runs logrotate with your config. "
    "The config below keeps seven files, compresses old ones and reloads nginx afterwards:\n"
    "```\n/var/log/nginx/*.log {\n  daily\n  rotate 7\n  compress\n  postrotate\n"
    "    systemctl reload nginx\n  endscript\n}\n```\nIf you also ship logs to the "
    "collector at https://logs.example.com/ingest, set the token in the agent's environment "
    "rather than in the file. Let me know if the reload fails and we can look at the unit. "
)


def _stream_events(text: str, piece: int = 4) -> list[Any]:
    from llmtrace_otel.providers.types import SSEEvent

    events = []
    for start in range(0, len(text), piece):
        data = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                           "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": {"content": text[start:start + piece]},
                                        "finish_reason": None}]}, separators=(",", ":"))
        events.append(SSEEvent(f"data: {data}\n\n".encode(), None, data))
    return events


def _stream_cost(runs: int) -> list[str]:
    from opentelemetry.sdk.trace import TracerProvider

    from llmtrace_otel.providers.openai_chat import OpenAIChatAdapter
    from llmtrace_otel.proxy.stream_guard import StreamScanPolicy

    text = (_ANSWER * 12)[:4000]
    events = _stream_events(text)
    policy = StreamScanPolicy(mode="observe")
    span = TracerProvider().get_tracer("bench").start_span("chat")
    adapter = OpenAIChatAdapter()
    feed_only: list[float] = []
    scanned: list[float] = []
    for _ in range(runs):
        accumulator = adapter.new_stream_accumulator()
        begin = time.perf_counter_ns()
        for event in events:
            accumulator.feed(event)
        feed_only.append((time.perf_counter_ns() - begin) / 1000)
        accumulator = adapter.new_stream_accumulator()
        watch = policy.watch("openai.chat_completions", None, accumulator, span)
        assert watch is not None
        spent = 0
        for event in events:
            accumulator.feed(event)
            begin = time.perf_counter_ns()
            watch.on_event()
            spent += time.perf_counter_ns() - begin
        begin = time.perf_counter_ns()
        watch.close()
        scanned.append((spent + time.perf_counter_ns() - begin) / 1000)
    per_k = len(text) / 1000
    per_event = [v / len(events) for v in scanned]
    return [
        f"Streaming output scan (`security.stream_scan`), a {len(text)}-character answer in "
        f"{len(events)} chat-completion chunks of 4 characters; microseconds per 1,000 output "
        f"characters ({runs} streams, median / p99), and per relayed event:",
        "",
        "| cost | per 1,000 chars, median / p99 | per event, median |",
        "|---|---|---|",
        f"| parsing the chunks into the accumulator (the relay does this anyway) | "
        f"{_stats([v / per_k for v in feed_only])} | "
        f"{statistics.median(feed_only) / len(events):.1f} |",
        f"| stream scan on top (observe or stop) | {_stats([v / per_k for v in scanned])} | "
        f"{statistics.median(per_event):.1f} |",
        "| `security.stream_scan: off` | 0 (one `is None` test per event) | 0 |",
    ]


def _guard_cost(calls: int) -> list[str]:
    from llmtrace_otel.providers.types import ChatMessage, LLMRequest, Operation, TextPart
    from llmtrace_otel.proxy.security_guard import SecurityGuard

    def chat(user: str) -> LLMRequest:
        return LLMRequest(operation=Operation.CHAT, system_instructions=(TextPart(_SYSTEM),),
                          input_messages=(ChatMessage("user", (TextPart(user),)),))

    request = chat(_USER)
    rows = []
    for types in ("prompt_injection,jailbreak", "prompt_injection,jailbreak,pii,secret"):
        # budget 0: the whole cost is measured, never cut short
        fresh = SecurityGuard(mode="block", enforce_types=types.split(","), cache_size=0,
                              budget_ms=0)
        cached = SecurityGuard(mode="block", enforce_types=types.split(","), budget_ms=0)
        new = [_timed(lambda g=fresh: g.inspect(request), 1) for _ in range(calls)]
        seen = [_timed(lambda g=cached: g.inspect(request), 1) for _ in range(calls)]
        rows.append(f"| `{types}` | {_stats(new)} | {_stats(seen)} |")
    big = chat((_USER + " ") * (100_000 // (len(_USER) + 1)))
    budget_rows = []
    for budget in (0.0, 5.0):
        guard = SecurityGuard(mode="block", cache_size=0, budget_ms=budget,
                              enforce_types=["prompt_injection", "jailbreak", "pii", "secret"])
        scans = [guard.scan(big) for _ in range(max(5, calls // 20))]
        elapsed = [scan.elapsed_ms * 1000 for scan in scans]
        cut = sum(not scan.complete for scan in scans)
        budget_rows.append(f"| 100 KB user message (read: 50,000 chars, head and tail), "
                           f"`guard_budget_ms: {budget:g}` | {_stats(elapsed)} | "
                           f"{cut} of {len(scans)} |")
    return [
        "Request-path cost of the security guard (`security.enforcement` flag/block), "
        "microseconds per typical chat request (system prompt + 0.4 KB user message), by "
        "`security.enforce_types`; new text vs a text seen before (result cache); "
        "`security.guard_budget_ms: 0` so that the whole cost is measured:",
        "",
        "| enforce_types | new text, median / p99 | repeated text, median / p99 |",
        "|---|---|---|",
        *rows,
        "",
        "The time budget on a long prompt (all four detectors enforced): the check stops at "
        "the first safe point after the budget (between detectors, texts and 8 KB pieces); "
        "one detector run on one piece is never interrupted, so that is how far it can "
        "overrun:",
        "",
        "| request | guard time, µs, median / p99 | stopped by the budget |",
        "|---|---|---|",
        *budget_rows,
    ]


# --- main ----------------------------------------------------------------------------------


def _write_docs(lines: list[str]) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + tail, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=None)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per text (best)")
    parser.add_argument("--errors", type=int, default=0, help="print N errors per set")
    parser.add_argument("--sweep", action="store_true", help="add a threshold sweep table")
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC.name}")
    args = parser.parse_args(argv)
    datasets = args.datasets or default_datasets()
    missing = [n for n in (DEEPSET, CYBERSECEVAL, PRESIDIO) if not (datasets / n).is_file()]
    if missing:
        print(f"datasets not found in {datasets}: {', '.join(missing)}", file=sys.stderr)
        return 2
    lines = ["### Prompt injection and jailbreak", ""]
    lines += injection_report(datasets, args.threshold, args.repeat, args.errors, args.sweep)
    lines += ["", "### Rules, model and both, across datasets", ""]
    lines += cross_dataset_report(datasets, args.threshold)
    lines += ["", "### PII (`processors.security.pii`)", ""]
    lines += pii_report(datasets, args.repeat)
    lines += ["", "### Analysis cost per span", ""]
    lines += cost_report(max(100, args.repeat * 100))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Machine: {os.cpu_count()} CPUs, 1-minute load average {load:.1f} at the "
              f"end of the run (other jobs share the CPUs; p99s are the first to suffer)."]
    print("\n".join(lines))
    if args.write_docs:
        _write_docs(lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
