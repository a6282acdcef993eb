"""Choose stance.inference.relevance's THRESHOLD and CONTEXT_WEIGHT; print the precision/recall
table.

python scripts/fit_relevance.py [--fnc1 ../shared/data/fnc1] [--n 1000] [--seed 0]
    [--markdown docs/snippets/relevance.md]

The rule is chosen by whole-article cross-validation on labelled on/off-claim sentences (the
seed rows, data/relevance-offtopic.jsonl, and the data-articles branch's written articles when
present; benchmarks/relevance.py): copy the printed weight and threshold into
stance/inference/relevance.py.
With --fnc1 (a folder that exists), the earlier FNC-1 threshold fit is
printed too, for comparison.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine  # noqa: E402
from benchmarks.relevance import before_report, cv_report, fit_and_report  # noqa: E402
from stance.inference.relevance import CONTEXT_WEIGHT, THRESHOLD, MiniLMEmbedder  # noqa: E402
from stance.util.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fnc1", default=None, help="FNC-1 folder (optional comparison)")
    p.add_argument("--n", type=int, default=1000, help="pairs of each kind per FNC-1 split")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--before",
        type=Path,
        help="an earlier stance/inference/relevance.py "
        "(git show REV:stance/inference/relevance.py > FILE): its "
        "rule on the same labelled set, for comparison",
    )
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    with stdout_snippet(args.markdown, "Relevance: the rule chosen by whole-article CV"):
        embedder = MiniLMEmbedder()
        (weight, threshold), report = cv_report(embedder)
        m = machine()
        print(f"{m['date']}, {m['cpu']}, {m['cores']} cores, commit {m['commit']}")
        print(report)
        print(f"chosen on all articles: CONTEXT_WEIGHT = {weight}, THRESHOLD = {threshold}")
        print(
            f"stance.inference.relevance now: CONTEXT_WEIGHT = {CONTEXT_WEIGHT}, "
            f"THRESHOLD = {THRESHOLD}"
        )
        if args.before is not None:
            print(before_report(embedder, args.before))
        if args.fnc1 is not None and Path(args.fnc1).is_dir():
            print(fit_and_report(embedder, Path(args.fnc1), args.n, args.seed)[1])
        print(f"{time.perf_counter() - start:.0f} s")
