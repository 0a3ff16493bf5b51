"""Cross-dataset evaluation of the injection detectors: rules alone, model alone, combined.

Used by ``security_eval.py`` (``make eval-security``); runnable alone for the tables:

    .venv/bin/python bench/detector_eval.py [--datasets DIR] [--sweep]

Leave one dataset out: for each shared file, the classifier is trained (``train_detector.
train``, the same code and settings as the shipped model) on every *other* file plus the
project's hard negatives, and scores the file it never saw. The rules never saw any of
them either (they were written for attack families, see docs/security.md). Each row is
scored three ways with the real ``assess_injection``:

* rules: ``use_model=False``;
* model: the classifier's evidence alone (``model_weight(p) >= threshold``);
* combined: rules and the held-out model together (what the detector does).

CyberSecEval rows are scored with their system prompt (what a span carries); every text is
read as user input (BIPIA's documents too: a user pasting an e-mail is the case where the
model reads a document). Recall on attack rows, false-positive rate on benign rows.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT))

from train_detector import (  # noqa: E402
    FILES,
    HARD_NEGATIVES_NAME,
    Row,
    classifier_of,
    default_datasets,
    load_rows,
    train,
)

from llmtrace_processors.security.injection import (  # noqa: E402
    DEFAULT_THRESHOLD,
    assess_injection,
)
from llmtrace_processors.security.scoring import (  # noqa: E402
    MODEL_FLOOR,
    MODEL_FULL,
    MODEL_MAX_WEIGHT,
    model_weight,
)

#: Files that hold benign rows only: their false-positive rate is the over-defence.
BENIGN_ONLY = ("xstest", "presidio")
_LABEL = {
    "deepset": "deepset (EN/DE, injection + benign)",
    "cyberseceval": "CyberSecEval (all attacks, with system prompt)",
    "ivanleomk": "ivanleomk password extraction (all attacks)",
    "spml": "SPML chatbot prompts (noisy labels)",
    "xstest": "XSTest (benign, unsafe-looking)",
    "bipia": "BIPIA documents (indirect, as user text)",
    "presidio": "Presidio sentences (benign, PII-heavy)",
}


@dataclass(frozen=True)
class Scored:
    row: Row
    rules: float  # rule score
    probability: float  # held-out classifier
    combined: float


@dataclass
class Rate:
    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    def __str__(self) -> str:
        return "–" if not self.total else f"{100 * self.hits / self.total:.1f}%"


def score_held_out(datasets: Path, names: Sequence[str] = tuple(FILES),
                   log: Callable[[str], None] | None = None) -> list[Scored]:
    """Every row of every named file, scored by a classifier that never saw its file."""
    everything = load_rows(datasets, [*FILES, HARD_NEGATIVES_NAME])
    out: list[Scored] = []
    for held in names:
        model = classifier_of(train([r for r in everything if r.file != held]))
        if log:
            log(f"held out {held}: trained on {sum(r.file != held for r in everything)} rows")
        for row in (r for r in everything if r.file == held):
            rules = assess_injection(row.text, system_prompt=row.system_prompt, use_model=False)
            both = assess_injection(row.text, system_prompt=row.system_prompt,
                                    classifier=model)
            out.append(Scored(row, rules.score, both.model_score or 0.0, both.score))
    return out


def _decisions(scored: Scored, threshold: float) -> tuple[bool, bool, bool]:
    return (scored.rules >= threshold, model_weight(scored.probability) >= threshold,
            scored.combined >= threshold)


def _table(groups: dict[str, list[Scored]], threshold: float, head: str) -> list[str]:
    out = [f"| {head} | attacks | benign | recall: rules / model / combined | "
           "FPR: rules / model / combined |", "|---|---|---|---|---|"]
    for name, rows in groups.items():
        recall = [Rate(), Rate(), Rate()]
        fpr = [Rate(), Rate(), Rate()]
        for scored in rows:
            for rate, hit in zip(recall if scored.row.attack else fpr,
                                 _decisions(scored, threshold), strict=True):
                rate.add(hit)
        attacks, benign = recall[0].total, fpr[0].total
        out.append(f"| {name} | {attacks} | {benign} | "
                   f"{' / '.join(map(str, recall)) if attacks else '–'} | "
                   f"{' / '.join(map(str, fpr)) if benign else '–'} |")
    return out


def _grouped(
    scored: Iterable[Scored], key: Callable[[Scored], str | None]
) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = defaultdict(list)
    for item in scored:
        name = key(item)
        if name is not None:
            groups[name].append(item)
    return dict(sorted(groups.items()))


def _alone_from(threshold: float) -> float:
    """The probability from which the model's evidence alone reaches ``threshold``."""
    if threshold > MODEL_MAX_WEIGHT:
        return float("inf")
    return MODEL_FLOOR + (MODEL_FULL - MODEL_FLOOR) * threshold / MODEL_MAX_WEIGHT


def _calibrations(scored: list[Scored], threshold: float) -> list[str]:
    """What other (floor, full, max weight) choices would give: the model is its own kind
    of evidence, so the combined score is ``1 - (1 - rules) * (1 - weight(p))``."""
    out = ["| floor / full / max weight | recall: deepset / CyberSecEval / ivanleomk / SPML / "
           "BIPIA | FPR: deepset / XSTest / BIPIA / Presidio |", "|---|---|---|"]
    for floor, full, top in ((0.7, 0.95, 0.75), (0.8, 0.97, 0.75), (MODEL_FLOOR, MODEL_FULL,
                                                                      MODEL_MAX_WEIGHT)):
        recall = {n: Rate() for n in ("deepset", "cyberseceval", "ivanleomk", "spml", "bipia")}
        fpr = {n: Rate() for n in ("deepset", "xstest", "bipia", "presidio")}
        for s in scored:
            weight = top * min(1.0, max(0.0, (s.probability - floor) / (full - floor)))
            hit = 1 - (1 - s.rules) * (1 - weight) >= threshold
            rates = recall if s.row.attack else fpr
            if s.row.file in rates:
                rates[s.row.file].add(hit)
        shipped = " (shipped)" if (floor, full, top) == (MODEL_FLOOR, MODEL_FULL,
                                                         MODEL_MAX_WEIGHT) else ""
        out.append(f"| {floor} / {full} / {top}{shipped} | "
                   f"{' / '.join(map(str, recall.values()))} | "
                   f"{' / '.join(map(str, fpr.values()))} |")
    return out


def report(scored: list[Scored], threshold: float = DEFAULT_THRESHOLD,
           sweep: bool = False) -> list[str]:
    by_file = _grouped(scored, lambda s: s.row.file)
    out = [
        "Leave one dataset out: the model that scores a file was trained on the other files "
        "(and the project's hard negatives), never on it. Rules: `use_model=False`; model: "
        f"its evidence alone (`model_weight(p) >= {threshold}`, i.e. p ≥ "
        f"{_alone_from(threshold):.3f}); combined: the detector as shipped, with that "
        "held-out model.",
        "",
        *_table({_LABEL[n]: by_file[n] for n in FILES if n in by_file}, threshold, "file"),
        "",
        "Per category (CyberSecEval variant, BIPIA carrier and label, XSTest subcategory):",
        "",
    ]
    categories = _grouped(scored, lambda s: (
        f"CyberSecEval {s.row.group}" if s.row.file == "cyberseceval"
        else f"BIPIA {'attack' if s.row.attack else 'benign'} "
             f"{s.row.group.removeprefix('benign_') if not s.row.attack else ''}".rstrip()
        if s.row.file == "bipia"
        else f"XSTest {s.row.group}" if s.row.file == "xstest"
        else f"deepset {'injection' if s.row.attack else 'benign'}" if s.row.file == "deepset"
        else None))
    out += _table(categories, threshold, "category")
    out += ["", "How the model's probability becomes evidence (`scoring.model_weight`: none "
            "up to the floor, rising linearly to the max weight at full), other choices on "
            "the same held-out scores (computed as `1 - (1 - rules) × (1 - weight)`, "
            "without the benign-context damping, so the shipped row can differ from the "
            "table above by a few rows):", "", *_calibrations(scored, threshold)]
    if sweep:
        out += ["", "Combined, by threshold (recall on the attack rows of every file / FPR on "
                "deepset benign, XSTest, BIPIA benign, Presidio):", "",
                "| threshold | recall | deepset FPR | XSTest FPR | BIPIA FPR | Presidio FPR |",
                "|---|---|---|---|---|---|"]
        for t in (0.4, 0.5, 0.6, 0.7):
            rec = Rate()
            fprs = {n: Rate() for n in ("deepset", "xstest", "bipia", "presidio")}
            for s in scored:
                if s.row.attack:
                    rec.add(s.combined >= t)
                elif s.row.file in fprs:
                    fprs[s.row.file].add(s.combined >= t)
            out.append(f"| {t} | {rec} | " + " | ".join(str(fprs[n]) for n in fprs) + " |")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=None)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args(argv)
    scored = score_held_out(args.datasets or default_datasets(),
                            log=lambda m: print(m, file=sys.stderr))
    print("\n".join(report(scored, sweep=args.sweep)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
