"""Fit stance.relevance.THRESHOLD on FNC-1 and print the precision/recall table.

python scripts/fit_relevance.py [--fnc1 ../shared/data/fnc1] [--n 1000] [--seed 0]
    [--markdown docs/snippets/relevance.md]

Prints the fitted threshold (copy it into stance/relevance.py) and, for FNC-1 train (the
fit), FNC-1 test and the seed annotations (skip rows vs labelled rows; never fitted on),
the precision and recall of "on the claim" (kept) and "off the claim" (left out).
"""

import argparse
import logging
import sys
import time
from pathlib import Path

# The repository's benchmarks package, not pysbd's top-level `benchmarks`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine  # noqa: E402
from benchmarks.relevance import fit_and_report  # noqa: E402
from stance.relevance import THRESHOLD, MiniLMEmbedder  # noqa: E402
from stance.snippets import stdout_snippet  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fnc1", default="../shared/data/fnc1", help="FNC-1 folder")
    p.add_argument("--n", type=int, default=1000, help="pairs of each kind per FNC-1 split")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--markdown", metavar="PATH", help="also write the output as a docs snippet")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()
    threshold, report = fit_and_report(MiniLMEmbedder(), Path(args.fnc1), args.n, args.seed)
    m = machine()
    with stdout_snippet(args.markdown, "Relevance: the threshold fitted on FNC-1"):
        print(f"{m['date']}, {m['cpu']}, {m['cores']} cores, commit {m['commit']}")
        print(report)
        print(f"stance.relevance.THRESHOLD now: {THRESHOLD}; {time.perf_counter() - start:.0f} s")
