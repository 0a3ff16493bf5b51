"""Train the learned injection/jailbreak classifier and write its artifact (make train-detector).

    .venv/bin/python bench/train_detector.py [--datasets DIR] [--output FILE] [--check]

Reads the public labelled sets in ``../shared/datasets/`` in place (never copied), turns
every text into the features the runtime reads (``llmtrace_processors.security.classifier.
features`` of the normalised text: the same code, so training and inference cannot drift),
fits a logistic regression (scikit-learn, a training-only dependency: the ``train`` extra)
and writes ``processors/security/models/injection-linear-v1.json.gz``: the weights of the
features that matter, the bias, and how it was trained (files and their SHA-256, row
counts, seed, regularisation, library versions).

Reproducible: fixed seed, deterministic solver (lbfgs), sorted JSON, gzip without a time
stamp; the same data and library versions give the same bytes. ``--check`` trains and
compares with the shipped artifact instead of writing it (exit 1 when they differ).

Data (see the datasets' README): every row of every file, labelled attack or benign, and
``bench/data/benign_trigger_words.txt``: benign prompts full of the words attacks use
("ignore the compiler warning", "how do I kill a process", unlocking, secrets, role-play),
written for this project so that those words alone do not make an attack.
Files weigh in by the square root of their size (per class), so the largest file does not
drown the others, and SPML (whose labels were judged against system prompts the file does
not hold: many "attacks" are ordinary off-topic questions) counts a tenth of that. The two
classes then weigh the same in total. ``detector_eval.py`` uses :func:`train` for its
leave-one-dataset-out evaluation.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from llmtrace_processors.security.classifier import (  # noqa: E402
    ARTIFACT,
    FORMAT,
    LinearClassifier,
    features,
)
from llmtrace_processors.security.normalize import normalize  # noqa: E402

VERSION = "injection-linear-v1"
OUTPUT = ROOT / "processors" / "security" / ARTIFACT
SEED = 1729
#: Inverse regularisation strength, chosen by the leave-one-dataset-out evaluation.
C = 1.0
#: Weight of the noisy SPML file relative to the others.
NOISY_WEIGHT = 0.1
#: Features whose weight is smaller than this are left out of the artifact: they move a
#: logit by ~0.04 on a typical prompt (their signs cancel), and leaving them out keeps the
#: artifact small (60 KB) and its lookups in cache: the model added ~70 µs instead of ~100
#: to the analysis of a typical span (docs/performance.md).
PRUNE_BELOW = 0.1
#: Features must occur in at least this many training texts.
MIN_DF = 2


@dataclass(frozen=True)
class Row:
    file: str  # the dataset it came from (short name)
    text: str
    attack: bool
    group: str = ""  # a category/variant for per-category tables, when the file has one
    system_prompt: str | None = None


#: short name -> (file, text field, how a row's label is read, group field)
FILES: dict[str, tuple[str, str, str | None, str | None]] = {
    "deepset": ("prompt_injection_deepset.json", "text", "label", None),
    "cyberseceval": ("prompt_injection_cyberseceval.json", "user_input", None,
                     "injection_variant"),
    "ivanleomk": ("prompt_injection_ivanleomk.json", "text", "label", None),
    "spml": ("prompt_injection_spml.json", "text", "label", None),
    "xstest": ("overdefense_xstest.json", "text", "label", "subcategory"),
    "bipia": ("indirect_injection_bipia.json", "text", "label", "category"),
    "presidio": ("pii_presidio_generated.json", "full_text", None, None),
}
#: Project-written hard negatives (one benign prompt a line; # comments).
HARD_NEGATIVES = ROOT / "bench" / "data" / "benign_trigger_words.txt"
HARD_NEGATIVES_NAME = "trigger_words"
NOISY = frozenset({"spml"})
_ALWAYS_ATTACK = frozenset({"cyberseceval"})


def default_datasets() -> Path:
    """``shared/datasets`` next to the project root or any parent (git worktrees)."""
    for parent in ROOT.parents:
        candidate = parent / "shared" / "datasets"
        if (candidate / FILES["deepset"][0]).is_file():
            return candidate
    return ROOT.parent / "shared" / "datasets"


def hard_negatives() -> list[Row]:
    lines = HARD_NEGATIVES.read_text(encoding="utf-8").splitlines()
    return [Row(HARD_NEGATIVES_NAME, line.strip(), False) for line in lines
            if line.strip() and not line.startswith("#")]


def load_rows(datasets: Path, names: Iterable[str] = FILES) -> list[Row]:
    """Every row of the named files (shared datasets, and the project's hard negatives
    under ``HARD_NEGATIVES_NAME``), in file order."""
    rows: list[Row] = []
    for name in names:
        if name == HARD_NEGATIVES_NAME:
            rows.extend(hard_negatives())
            continue
        file, text_field, label_field, group_field = FILES[name]
        for raw in json.loads((datasets / file).read_text(encoding="utf-8")):
            attack = name in _ALWAYS_ATTACK or (
                label_field is not None and raw[label_field] == "malicious")
            group = str(raw.get(group_field, "")) if group_field else ""
            if name == "cyberseceval":
                group = f"{raw['injection_type']}/{group}"
            system = str(raw["test_case_prompt"]) if name == "cyberseceval" else None
            rows.append(Row(name, str(raw[text_field]), attack, group, system))
    return rows


def file_digests(datasets: Path, names: Iterable[str]) -> dict[str, str]:
    return {FILES[n][0]: hashlib.sha256((datasets / FILES[n][0]).read_bytes()).hexdigest()
            for n in names}


@functools.cache
def _analyzed(text: str) -> tuple[str, ...]:
    words, grams = features(normalize(text).text)
    return (*words, *("\x00" + g for g in grams))  # one vocabulary, the two kinds apart


def _analyzer(text: str) -> list[str]:
    return list(_analyzed(text))  # the cross-dataset evaluation trains many times


def _weights(rows: Sequence[Row]) -> list[float]:
    sizes: dict[tuple[str, bool], int] = {}
    for row in rows:
        sizes[(row.file, row.attack)] = sizes.get((row.file, row.attack), 0) + 1
    raw = [(NOISY_WEIGHT if row.file in NOISY else 1.0) / math.sqrt(sizes[(row.file, row.attack)])
           for row in rows]
    totals = {cls: sum(w for w, r in zip(raw, rows, strict=True) if r.attack == cls)
              for cls in (False, True)}
    n = len(rows)
    return [w / totals[r.attack] * n / 2 for w, r in zip(raw, rows, strict=True)]


def train(rows: Sequence[Row], *, c: float = C, prune: float = PRUNE_BELOW) -> dict[str, Any]:
    """Fit the classifier on ``rows``; the artifact document (without ``trained``)."""
    import numpy as np
    from scipy.sparse import diags
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    if len({r.attack for r in rows}) < 2:
        raise ValueError("training needs attack and benign rows")
    vectorizer = CountVectorizer(analyzer=_analyzer, min_df=MIN_DF)
    counts = vectorizer.fit_transform([r.text for r in rows])
    # every feature of a text counts, in the vocabulary or not: the runtime divides by the
    # square root of the number of features it extracted
    totals = np.array([len(_analyzer(r.text)) for r in rows], dtype=float)
    x = diags(1.0 / np.sqrt(np.maximum(totals, 1.0))) @ counts
    model = LogisticRegression(C=c, solver="lbfgs", max_iter=5000, random_state=SEED)
    model.fit(x, np.array([r.attack for r in rows]), sample_weight=np.array(_weights(rows)))
    words: dict[str, float] = {}
    chars: dict[str, float] = {}
    for name, weight in zip(vectorizer.get_feature_names_out(), model.coef_[0], strict=True):
        if abs(weight) < prune:
            continue
        rounded = float(f"{weight:.4g}")
        if name.startswith("\x00"):
            chars[name[1:]] = rounded
        else:
            words[name] = rounded
    return {"format": FORMAT, "version": VERSION, "bias": float(f"{model.intercept_[0]:.6g}"),
            "words": dict(sorted(words.items())), "chars": dict(sorted(chars.items()))}


def classifier_of(document: dict[str, Any]) -> LinearClassifier:
    return LinearClassifier.from_document(document)


def artifact_bytes(document: dict[str, Any]) -> bytes:
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def build(datasets: Path) -> dict[str, Any]:
    import scipy
    import sklearn

    names = [*FILES, HARD_NEGATIVES_NAME]
    rows = load_rows(datasets, names)
    document = train(rows)
    files = file_digests(datasets, FILES)
    files[str(HARD_NEGATIVES.relative_to(ROOT))] = hashlib.sha256(
        HARD_NEGATIVES.read_bytes()).hexdigest()
    document["trained"] = {
        "files": files,
        "rows": {"attack": sum(r.attack for r in rows), "benign": sum(not r.attack for r in rows)},
        "noisy_files": {FILES[n][0]: NOISY_WEIGHT for n in sorted(NOISY)},
        "seed": SEED, "C": C, "min_df": MIN_DF, "pruned_below": PRUNE_BELOW,
        "features": {"words": len(document["words"]), "chars": len(document["chars"])},
        "scikit-learn": sklearn.__version__, "scipy": scipy.__version__,
        "script": "bench/train_detector.py",
    }
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--datasets", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with the artifact at --output instead of writing it")
    args = parser.parse_args(argv)
    datasets = args.datasets or default_datasets()
    missing = [f for f, *_ in FILES.values() if not (datasets / f).is_file()]
    if missing:
        print(f"datasets not found in {datasets}: {', '.join(missing)}", file=sys.stderr)
        return 2
    data = artifact_bytes(build(datasets))
    digest = hashlib.sha256(data).hexdigest()[:16]
    if args.check:
        same = args.output.is_file() and args.output.read_bytes() == data
        print(f"{args.output}: {'matches' if same else 'DIFFERS from'} a fresh training "
              f"(sha256 {digest}…)", file=sys.stderr)
        return 0 if same else 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output.relative_to(ROOT)} ({len(data):,} bytes, sha256 {digest}…)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
